//! The region of a foreign citizenship: ISO 3166-1 alpha-2 code to one of
//! [`REGIONS`](super::table::REGIONS), after the UN M49 standard
//! ("Standard country or area codes for statistical use").
//!
//! The victims table counts foreign victims by region rather than by
//! country: a country column would be mostly cells of 1 and 2, all
//! suppressed, and would name the few foreign victims' countries. M49 is
//! the grouping UNODC and the SDG database use. In the Americas the M49
//! sub-regions are kept (Central America, Caribbean, South America,
//! Northern America), because that is where the federation is; elsewhere
//! the M49 region (Europe, Asia, Africa, Oceania).
//!
//! M49 puts Mexico in Central America, Bermuda, Greenland and Saint Pierre
//! and Miquelon in Northern America, Bouvet Island and South Georgia in
//! South America, and Heard and McDonald Islands, Christmas Island and the
//! Cocos (Keeling) Islands in Oceania ("Australia and New Zealand").
//! Antarctica (`AQ`) belongs to no M49 region: [`region_of`] returns `None`
//! for it, and a citizenship without a region is counted as unknown, like
//! an empty or invalid code.

/// Indexes into `table::REGIONS`.
const CENTRAL_AMERICA: u8 = 0;
const CARIBBEAN: u8 = 1;
const SOUTH_AMERICA: u8 = 2;
const NORTHERN_AMERICA: u8 = 3;
const EUROPE: u8 = 4;
const ASIA: u8 = 5;
const AFRICA: u8 = 6;
const OCEANIA: u8 = 7;

/// The codes that belong to no region (counted as unknown).
pub const WITHOUT_REGION: &[&str] = &["AQ"];

/// The region (an index into `table::REGIONS`) of an ISO 3166-1 alpha-2
/// code, in either case; `None` for Antarctica and for anything that is not
/// an assigned code.
pub fn region_of(country: &str) -> Option<usize> {
    let upper = country.trim().to_ascii_uppercase();
    REGION_OF
        .binary_search_by(|(code, _)| (*code).cmp(upper.as_str()))
        .ok()
        .map(|i| usize::from(REGION_OF[i].1))
}

// NOTE: generated, not written by hand. For every code of
// `records::vocabulary::all_countries()` (sorted), the M49
// sub-region is the `UNregion` column of `country_data.tsv` as shipped by
// the country_converter package (PyPI, version 1.3.2; its `ISO2` column is a
// regex such as `^GB$|^UK$`, so every two-letter code in it counts). The
// sub-region maps to a region: Central America, Caribbean, South America and
// Northern America to themselves; Australia and New Zealand, Melanesia,
// Micronesia and Polynesia to Oceania; any other sub-region ending in
// Europe, Asia or Africa to that region; Antarctica to none (left out of the
// table). Regenerate rather than edit, and keep the spot checks in the tests.
#[rustfmt::skip]
static REGION_OF: &[(&str, u8)] = &[
    ("AD", EUROPE),
    ("AE", ASIA),
    ("AF", ASIA),
    ("AG", CARIBBEAN),
    ("AI", CARIBBEAN),
    ("AL", EUROPE),
    ("AM", ASIA),
    ("AO", AFRICA),
    ("AR", SOUTH_AMERICA),
    ("AS", OCEANIA),
    ("AT", EUROPE),
    ("AU", OCEANIA),
    ("AW", CARIBBEAN),
    ("AX", EUROPE),
    ("AZ", ASIA),
    ("BA", EUROPE),
    ("BB", CARIBBEAN),
    ("BD", ASIA),
    ("BE", EUROPE),
    ("BF", AFRICA),
    ("BG", EUROPE),
    ("BH", ASIA),
    ("BI", AFRICA),
    ("BJ", AFRICA),
    ("BL", CARIBBEAN),
    ("BM", NORTHERN_AMERICA),
    ("BN", ASIA),
    ("BO", SOUTH_AMERICA),
    ("BQ", CARIBBEAN),
    ("BR", SOUTH_AMERICA),
    ("BS", CARIBBEAN),
    ("BT", ASIA),
    ("BV", SOUTH_AMERICA),
    ("BW", AFRICA),
    ("BY", EUROPE),
    ("BZ", CENTRAL_AMERICA),
    ("CA", NORTHERN_AMERICA),
    ("CC", OCEANIA),
    ("CD", AFRICA),
    ("CF", AFRICA),
    ("CG", AFRICA),
    ("CH", EUROPE),
    ("CI", AFRICA),
    ("CK", OCEANIA),
    ("CL", SOUTH_AMERICA),
    ("CM", AFRICA),
    ("CN", ASIA),
    ("CO", SOUTH_AMERICA),
    ("CR", CENTRAL_AMERICA),
    ("CU", CARIBBEAN),
    ("CV", AFRICA),
    ("CW", CARIBBEAN),
    ("CX", OCEANIA),
    ("CY", ASIA),
    ("CZ", EUROPE),
    ("DE", EUROPE),
    ("DJ", AFRICA),
    ("DK", EUROPE),
    ("DM", CARIBBEAN),
    ("DO", CARIBBEAN),
    ("DZ", AFRICA),
    ("EC", SOUTH_AMERICA),
    ("EE", EUROPE),
    ("EG", AFRICA),
    ("EH", AFRICA),
    ("ER", AFRICA),
    ("ES", EUROPE),
    ("ET", AFRICA),
    ("FI", EUROPE),
    ("FJ", OCEANIA),
    ("FK", SOUTH_AMERICA),
    ("FM", OCEANIA),
    ("FO", EUROPE),
    ("FR", EUROPE),
    ("GA", AFRICA),
    ("GB", EUROPE),
    ("GD", CARIBBEAN),
    ("GE", ASIA),
    ("GF", SOUTH_AMERICA),
    ("GG", EUROPE),
    ("GH", AFRICA),
    ("GI", EUROPE),
    ("GL", NORTHERN_AMERICA),
    ("GM", AFRICA),
    ("GN", AFRICA),
    ("GP", CARIBBEAN),
    ("GQ", AFRICA),
    ("GR", EUROPE),
    ("GS", SOUTH_AMERICA),
    ("GT", CENTRAL_AMERICA),
    ("GU", OCEANIA),
    ("GW", AFRICA),
    ("GY", SOUTH_AMERICA),
    ("HK", ASIA),
    ("HM", OCEANIA),
    ("HN", CENTRAL_AMERICA),
    ("HR", EUROPE),
    ("HT", CARIBBEAN),
    ("HU", EUROPE),
    ("ID", ASIA),
    ("IE", EUROPE),
    ("IL", ASIA),
    ("IM", EUROPE),
    ("IN", ASIA),
    ("IO", AFRICA),
    ("IQ", ASIA),
    ("IR", ASIA),
    ("IS", EUROPE),
    ("IT", EUROPE),
    ("JE", EUROPE),
    ("JM", CARIBBEAN),
    ("JO", ASIA),
    ("JP", ASIA),
    ("KE", AFRICA),
    ("KG", ASIA),
    ("KH", ASIA),
    ("KI", OCEANIA),
    ("KM", AFRICA),
    ("KN", CARIBBEAN),
    ("KP", ASIA),
    ("KR", ASIA),
    ("KW", ASIA),
    ("KY", CARIBBEAN),
    ("KZ", ASIA),
    ("LA", ASIA),
    ("LB", ASIA),
    ("LC", CARIBBEAN),
    ("LI", EUROPE),
    ("LK", ASIA),
    ("LR", AFRICA),
    ("LS", AFRICA),
    ("LT", EUROPE),
    ("LU", EUROPE),
    ("LV", EUROPE),
    ("LY", AFRICA),
    ("MA", AFRICA),
    ("MC", EUROPE),
    ("MD", EUROPE),
    ("ME", EUROPE),
    ("MF", CARIBBEAN),
    ("MG", AFRICA),
    ("MH", OCEANIA),
    ("MK", EUROPE),
    ("ML", AFRICA),
    ("MM", ASIA),
    ("MN", ASIA),
    ("MO", ASIA),
    ("MP", OCEANIA),
    ("MQ", CARIBBEAN),
    ("MR", AFRICA),
    ("MS", CARIBBEAN),
    ("MT", EUROPE),
    ("MU", AFRICA),
    ("MV", ASIA),
    ("MW", AFRICA),
    ("MX", CENTRAL_AMERICA),
    ("MY", ASIA),
    ("MZ", AFRICA),
    ("NA", AFRICA),
    ("NC", OCEANIA),
    ("NE", AFRICA),
    ("NF", OCEANIA),
    ("NG", AFRICA),
    ("NI", CENTRAL_AMERICA),
    ("NL", EUROPE),
    ("NO", EUROPE),
    ("NP", ASIA),
    ("NR", OCEANIA),
    ("NU", OCEANIA),
    ("NZ", OCEANIA),
    ("OM", ASIA),
    ("PA", CENTRAL_AMERICA),
    ("PE", SOUTH_AMERICA),
    ("PF", OCEANIA),
    ("PG", OCEANIA),
    ("PH", ASIA),
    ("PK", ASIA),
    ("PL", EUROPE),
    ("PM", NORTHERN_AMERICA),
    ("PN", OCEANIA),
    ("PR", CARIBBEAN),
    ("PS", ASIA),
    ("PT", EUROPE),
    ("PW", OCEANIA),
    ("PY", SOUTH_AMERICA),
    ("QA", ASIA),
    ("RE", AFRICA),
    ("RO", EUROPE),
    ("RS", EUROPE),
    ("RU", EUROPE),
    ("RW", AFRICA),
    ("SA", ASIA),
    ("SB", OCEANIA),
    ("SC", AFRICA),
    ("SD", AFRICA),
    ("SE", EUROPE),
    ("SG", ASIA),
    ("SH", AFRICA),
    ("SI", EUROPE),
    ("SJ", EUROPE),
    ("SK", EUROPE),
    ("SL", AFRICA),
    ("SM", EUROPE),
    ("SN", AFRICA),
    ("SO", AFRICA),
    ("SR", SOUTH_AMERICA),
    ("SS", AFRICA),
    ("ST", AFRICA),
    ("SV", CENTRAL_AMERICA),
    ("SX", CARIBBEAN),
    ("SY", ASIA),
    ("SZ", AFRICA),
    ("TC", CARIBBEAN),
    ("TD", AFRICA),
    ("TF", AFRICA),
    ("TG", AFRICA),
    ("TH", ASIA),
    ("TJ", ASIA),
    ("TK", OCEANIA),
    ("TL", ASIA),
    ("TM", ASIA),
    ("TN", AFRICA),
    ("TO", OCEANIA),
    ("TR", ASIA),
    ("TT", CARIBBEAN),
    ("TV", OCEANIA),
    ("TW", ASIA),
    ("TZ", AFRICA),
    ("UA", EUROPE),
    ("UG", AFRICA),
    ("UM", OCEANIA),
    ("US", NORTHERN_AMERICA),
    ("UY", SOUTH_AMERICA),
    ("UZ", ASIA),
    ("VA", EUROPE),
    ("VC", CARIBBEAN),
    ("VE", SOUTH_AMERICA),
    ("VG", CARIBBEAN),
    ("VI", CARIBBEAN),
    ("VN", ASIA),
    ("VU", OCEANIA),
    ("WF", OCEANIA),
    ("WS", OCEANIA),
    ("YE", ASIA),
    ("YT", AFRICA),
    ("ZA", AFRICA),
    ("ZM", AFRICA),
    ("ZW", AFRICA),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::stats::table::REGIONS;
    use crate::records::vocabulary::all_countries;

    #[test]
    fn every_country_has_a_region_but_the_documented_exceptions() {
        for c in all_countries() {
            let region = region_of(c.code);
            if WITHOUT_REGION.contains(&c.code) {
                assert_eq!(region, None, "{}", c.code);
            } else {
                assert!(
                    region.is_some_and(|r| r < REGIONS.len()),
                    "{} has no region",
                    c.code
                );
            }
        }
        // No code in the table that is not a country; sorted and unique.
        assert_eq!(
            REGION_OF.len() + WITHOUT_REGION.len(),
            all_countries().len()
        );
        assert!(REGION_OF.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn spot_checks() {
        let code = |c: &str| region_of(c).map(|r| REGIONS[r].code);
        assert_eq!(code("GT"), Some("central_america"));
        assert_eq!(code("MX"), Some("central_america"));
        assert_eq!(code("DO"), Some("caribbean"));
        assert_eq!(code("CO"), Some("south_america"));
        assert_eq!(code("US"), Some("northern_america"));
        assert_eq!(code("ES"), Some("europe"));
        assert_eq!(code("JP"), Some("asia"));
        assert_eq!(code("NG"), Some("africa"));
        assert_eq!(code("AU"), Some("oceania"));
        assert_eq!(code("gb"), Some("europe"));
        assert_eq!(code("AQ"), None);
        assert_eq!(code(""), None);
        assert_eq!(code("XX"), None);
        assert_eq!(code("GTM"), None);
    }
}
