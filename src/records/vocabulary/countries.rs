//! ISO 3166-1 alpha-2 country codes with English and Spanish names.
//!
//! Citizenship, nationality and the countries of an alert are recorded as the
//! two-letter code, never as a name, so that "Panamá", "Panama" and "PAN"
//! cannot become three countries in the statistics. The names are for people.

/// One officially assigned ISO 3166-1 alpha-2 code and its short names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Country {
    /// Upper-case alpha-2 code, e.g. `GT`.
    pub code: &'static str,
    /// English short name as in ISO 3166-1, e.g. "Guatemala".
    pub en: &'static str,
    /// Spanish name, e.g. "República Dominicana".
    pub es: &'static str,
}

/// Looks up an exact, upper-case alpha-2 code.
pub fn country(code: &str) -> Option<&'static Country> {
    COUNTRIES
        .binary_search_by(|c| c.code.cmp(code))
        .ok()
        .map(|i| &COUNTRIES[i])
}

/// Parses a two-letter code in either case and returns the canonical
/// upper-case code.
pub fn parse_country(s: &str) -> Result<&'static str, String> {
    let upper = s.to_ascii_uppercase();
    country(&upper)
        .map(|c| c.code)
        .ok_or_else(|| format!("{s:?} is not an ISO 3166-1 alpha-2 country code"))
}

/// Every officially assigned code, sorted by code.
pub fn all_countries() -> &'static [Country] {
    COUNTRIES
}

// NOTE: generated, not written by hand. Codes and English short names are
// ISO 3166-1 as shipped by the pycountry package (version 26.2.16, which
// bundles the Debian iso-codes data); Spanish names are the iso-codes
// project's Spanish translation of those names (iso3166-1 es catalogue,
// PO-Revision-Date 2025-05-12). Six Spanish names are corrected by hand
// where the catalogue is wrong (AX Islas Åland, CI Costa de Marfil,
// DZ Argelia, NE Níger, SR Surinam, TN Túnez); keep them when regenerating.
// Regenerate rather than edit otherwise: for each entry of
// `pycountry.countries` sorted by `alpha_2`, the row is (`alpha_2`, `name`,
// the `name` translated with `gettext.translation("iso3166-1",
// pycountry.LOCALES_DIR, languages=["es"])`).
#[rustfmt::skip]
static COUNTRIES: &[Country] = &[
    Country { code: "AD", en: "Andorra", es: "Andorra" },
    Country { code: "AE", en: "United Arab Emirates", es: "Emiratos Árabes Unidos" },
    Country { code: "AF", en: "Afghanistan", es: "Afganistán" },
    Country { code: "AG", en: "Antigua and Barbuda", es: "Antigua y Barbuda" },
    Country { code: "AI", en: "Anguilla", es: "Anguila" },
    Country { code: "AL", en: "Albania", es: "Albania" },
    Country { code: "AM", en: "Armenia", es: "Armenia" },
    Country { code: "AO", en: "Angola", es: "Angola" },
    Country { code: "AQ", en: "Antarctica", es: "Antártida" },
    Country { code: "AR", en: "Argentina", es: "Argentina" },
    Country { code: "AS", en: "American Samoa", es: "Samoa Estadounidense" },
    Country { code: "AT", en: "Austria", es: "Austria" },
    Country { code: "AU", en: "Australia", es: "Australia" },
    Country { code: "AW", en: "Aruba", es: "Aruba" },
    Country { code: "AX", en: "Åland Islands", es: "Islas Åland" },
    Country { code: "AZ", en: "Azerbaijan", es: "Azerbaiyán" },
    Country { code: "BA", en: "Bosnia and Herzegovina", es: "Bosnia y Herzegovina" },
    Country { code: "BB", en: "Barbados", es: "Barbados" },
    Country { code: "BD", en: "Bangladesh", es: "Bangladés" },
    Country { code: "BE", en: "Belgium", es: "Bélgica" },
    Country { code: "BF", en: "Burkina Faso", es: "Burquina Faso" },
    Country { code: "BG", en: "Bulgaria", es: "Bulgaria" },
    Country { code: "BH", en: "Bahrain", es: "Baréin" },
    Country { code: "BI", en: "Burundi", es: "Burundi" },
    Country { code: "BJ", en: "Benin", es: "Benín" },
    Country { code: "BL", en: "Saint Barthélemy", es: "San Bartolomé" },
    Country { code: "BM", en: "Bermuda", es: "Islas Bermudas" },
    Country { code: "BN", en: "Brunei Darussalam", es: "Brunei Darussalam" },
    Country { code: "BO", en: "Bolivia, Plurinational State of", es: "Bolivia, Estado plurinacional de" },
    Country { code: "BQ", en: "Bonaire, Sint Eustatius and Saba", es: "Islas BES (Caribe Neerlandés)" },
    Country { code: "BR", en: "Brazil", es: "Brasil" },
    Country { code: "BS", en: "Bahamas", es: "Bahamas" },
    Country { code: "BT", en: "Bhutan", es: "Bután" },
    Country { code: "BV", en: "Bouvet Island", es: "Isla Bouvet" },
    Country { code: "BW", en: "Botswana", es: "Botsuana" },
    Country { code: "BY", en: "Belarus", es: "Bielorrusia" },
    Country { code: "BZ", en: "Belize", es: "Belice" },
    Country { code: "CA", en: "Canada", es: "Canadá" },
    Country { code: "CC", en: "Cocos (Keeling) Islands", es: "Islas Cocos (Keeling)" },
    Country { code: "CD", en: "Congo, The Democratic Republic of the", es: "Congo, República Democrática del" },
    Country { code: "CF", en: "Central African Republic", es: "República Centroafricana" },
    Country { code: "CG", en: "Congo", es: "Congo" },
    Country { code: "CH", en: "Switzerland", es: "Suiza" },
    Country { code: "CI", en: "Côte d'Ivoire", es: "Costa de Marfil" },
    Country { code: "CK", en: "Cook Islands", es: "Islas Cook" },
    Country { code: "CL", en: "Chile", es: "Chile" },
    Country { code: "CM", en: "Cameroon", es: "Camerún" },
    Country { code: "CN", en: "China", es: "China" },
    Country { code: "CO", en: "Colombia", es: "Colombia" },
    Country { code: "CR", en: "Costa Rica", es: "Costa Rica" },
    Country { code: "CU", en: "Cuba", es: "Cuba" },
    Country { code: "CV", en: "Cabo Verde", es: "Cabo Verde" },
    Country { code: "CW", en: "Curaçao", es: "Curazao" },
    Country { code: "CX", en: "Christmas Island", es: "Isla de Navidad" },
    Country { code: "CY", en: "Cyprus", es: "Chipre" },
    Country { code: "CZ", en: "Czechia", es: "Chequia" },
    Country { code: "DE", en: "Germany", es: "Alemania" },
    Country { code: "DJ", en: "Djibouti", es: "Yibuti" },
    Country { code: "DK", en: "Denmark", es: "Dinamarca" },
    Country { code: "DM", en: "Dominica", es: "Dominica" },
    Country { code: "DO", en: "Dominican Republic", es: "República Dominicana" },
    Country { code: "DZ", en: "Algeria", es: "Argelia" },
    Country { code: "EC", en: "Ecuador", es: "Ecuador" },
    Country { code: "EE", en: "Estonia", es: "Estonia" },
    Country { code: "EG", en: "Egypt", es: "Egipto" },
    Country { code: "EH", en: "Western Sahara", es: "Sahara Occidental" },
    Country { code: "ER", en: "Eritrea", es: "Eritrea" },
    Country { code: "ES", en: "Spain", es: "España" },
    Country { code: "ET", en: "Ethiopia", es: "Etiopía" },
    Country { code: "FI", en: "Finland", es: "Finlandia" },
    Country { code: "FJ", en: "Fiji", es: "Fiyi" },
    Country { code: "FK", en: "Falkland Islands (Malvinas)", es: "Islas Falkland (Malvinas)" },
    Country { code: "FM", en: "Micronesia, Federated States of", es: "Micronesia, Estados Federados de" },
    Country { code: "FO", en: "Faroe Islands", es: "Islas Feroe" },
    Country { code: "FR", en: "France", es: "Francia" },
    Country { code: "GA", en: "Gabon", es: "Gabón" },
    Country { code: "GB", en: "United Kingdom", es: "Reino Unido" },
    Country { code: "GD", en: "Grenada", es: "Granada" },
    Country { code: "GE", en: "Georgia", es: "Georgia" },
    Country { code: "GF", en: "French Guiana", es: "Guayana Francesa" },
    Country { code: "GG", en: "Guernsey", es: "Guernsey" },
    Country { code: "GH", en: "Ghana", es: "Ghana" },
    Country { code: "GI", en: "Gibraltar", es: "Gibraltar" },
    Country { code: "GL", en: "Greenland", es: "Groenlandia" },
    Country { code: "GM", en: "Gambia", es: "Gambia" },
    Country { code: "GN", en: "Guinea", es: "Guinea" },
    Country { code: "GP", en: "Guadeloupe", es: "Guadalupe" },
    Country { code: "GQ", en: "Equatorial Guinea", es: "Guinea Ecuatorial" },
    Country { code: "GR", en: "Greece", es: "Grecia" },
    Country { code: "GS", en: "South Georgia and the South Sandwich Islands", es: "Islas Georgias del Sur y Sándwich del Sur" },
    Country { code: "GT", en: "Guatemala", es: "Guatemala" },
    Country { code: "GU", en: "Guam", es: "Guam" },
    Country { code: "GW", en: "Guinea-Bissau", es: "Guinea-Bisáu" },
    Country { code: "GY", en: "Guyana", es: "Guyana" },
    Country { code: "HK", en: "Hong Kong", es: "Hong Kong" },
    Country { code: "HM", en: "Heard Island and McDonald Islands", es: "Isla Heard e Islas McDonald" },
    Country { code: "HN", en: "Honduras", es: "Honduras" },
    Country { code: "HR", en: "Croatia", es: "Croacia" },
    Country { code: "HT", en: "Haiti", es: "Haití" },
    Country { code: "HU", en: "Hungary", es: "Hungría" },
    Country { code: "ID", en: "Indonesia", es: "Indonesia" },
    Country { code: "IE", en: "Ireland", es: "Irlanda" },
    Country { code: "IL", en: "Israel", es: "Israel" },
    Country { code: "IM", en: "Isle of Man", es: "Isla de Man" },
    Country { code: "IN", en: "India", es: "India" },
    Country { code: "IO", en: "British Indian Ocean Territory", es: "Territorio Británico del Océano Índico" },
    Country { code: "IQ", en: "Iraq", es: "Irak" },
    Country { code: "IR", en: "Iran, Islamic Republic of", es: "Irán, República islámica de" },
    Country { code: "IS", en: "Iceland", es: "Islandia" },
    Country { code: "IT", en: "Italy", es: "Italia" },
    Country { code: "JE", en: "Jersey", es: "Jersey" },
    Country { code: "JM", en: "Jamaica", es: "Jamaica" },
    Country { code: "JO", en: "Jordan", es: "Jordania" },
    Country { code: "JP", en: "Japan", es: "Japón" },
    Country { code: "KE", en: "Kenya", es: "Kenia" },
    Country { code: "KG", en: "Kyrgyzstan", es: "Kirguistán" },
    Country { code: "KH", en: "Cambodia", es: "Camboya" },
    Country { code: "KI", en: "Kiribati", es: "Kiribati" },
    Country { code: "KM", en: "Comoros", es: "Comores, Islas" },
    Country { code: "KN", en: "Saint Kitts and Nevis", es: "San Cristóbal y Nieves" },
    Country { code: "KP", en: "Korea, Democratic People's Republic of", es: "Corea, República Democrática Popular de" },
    Country { code: "KR", en: "Korea, Republic of", es: "Corea, República de" },
    Country { code: "KW", en: "Kuwait", es: "Kuwait" },
    Country { code: "KY", en: "Cayman Islands", es: "Islas Caimán" },
    Country { code: "KZ", en: "Kazakhstan", es: "Kazajistán" },
    Country { code: "LA", en: "Lao People's Democratic Republic", es: "República Democrática Popular de Lao" },
    Country { code: "LB", en: "Lebanon", es: "Líbano" },
    Country { code: "LC", en: "Saint Lucia", es: "Santa Lucía" },
    Country { code: "LI", en: "Liechtenstein", es: "Liechtenstein" },
    Country { code: "LK", en: "Sri Lanka", es: "Sri Lanka" },
    Country { code: "LR", en: "Liberia", es: "Liberia" },
    Country { code: "LS", en: "Lesotho", es: "Lesoto" },
    Country { code: "LT", en: "Lithuania", es: "Lituania" },
    Country { code: "LU", en: "Luxembourg", es: "Luxemburgo" },
    Country { code: "LV", en: "Latvia", es: "Letonia" },
    Country { code: "LY", en: "Libya", es: "Libia" },
    Country { code: "MA", en: "Morocco", es: "Marruecos" },
    Country { code: "MC", en: "Monaco", es: "Mónaco" },
    Country { code: "MD", en: "Moldova, Republic of", es: "Moldavia, República de" },
    Country { code: "ME", en: "Montenegro", es: "Montenegro" },
    Country { code: "MF", en: "Saint Martin (French part)", es: "San Martín (zona francesa)" },
    Country { code: "MG", en: "Madagascar", es: "Madagascar" },
    Country { code: "MH", en: "Marshall Islands", es: "Islas Marshall" },
    Country { code: "MK", en: "North Macedonia", es: "Macedonia del Norte" },
    Country { code: "ML", en: "Mali", es: "Malí" },
    Country { code: "MM", en: "Myanmar", es: "Birmania" },
    Country { code: "MN", en: "Mongolia", es: "Mongolia" },
    Country { code: "MO", en: "Macao", es: "Macao" },
    Country { code: "MP", en: "Northern Mariana Islands", es: "Islas Marianas del Norte" },
    Country { code: "MQ", en: "Martinique", es: "Martinica" },
    Country { code: "MR", en: "Mauritania", es: "Mauritania" },
    Country { code: "MS", en: "Montserrat", es: "Montserrat" },
    Country { code: "MT", en: "Malta", es: "Malta" },
    Country { code: "MU", en: "Mauritius", es: "Mauricio" },
    Country { code: "MV", en: "Maldives", es: "Islas Maldivas" },
    Country { code: "MW", en: "Malawi", es: "Malaui" },
    Country { code: "MX", en: "Mexico", es: "México" },
    Country { code: "MY", en: "Malaysia", es: "Malasia" },
    Country { code: "MZ", en: "Mozambique", es: "Mozambique" },
    Country { code: "NA", en: "Namibia", es: "Namibia" },
    Country { code: "NC", en: "New Caledonia", es: "Nueva Caledonia" },
    Country { code: "NE", en: "Niger", es: "Níger" },
    Country { code: "NF", en: "Norfolk Island", es: "Isla Norfolk" },
    Country { code: "NG", en: "Nigeria", es: "Nigeria" },
    Country { code: "NI", en: "Nicaragua", es: "Nicaragua" },
    Country { code: "NL", en: "Netherlands", es: "Países Bajos" },
    Country { code: "NO", en: "Norway", es: "Noruega" },
    Country { code: "NP", en: "Nepal", es: "Nepal" },
    Country { code: "NR", en: "Nauru", es: "Nauru" },
    Country { code: "NU", en: "Niue", es: "Niue" },
    Country { code: "NZ", en: "New Zealand", es: "Nueva Zelanda" },
    Country { code: "OM", en: "Oman", es: "Omán" },
    Country { code: "PA", en: "Panama", es: "Panamá" },
    Country { code: "PE", en: "Peru", es: "Perú" },
    Country { code: "PF", en: "French Polynesia", es: "Polinesia Francesa" },
    Country { code: "PG", en: "Papua New Guinea", es: "Papúa Nueva Guinea" },
    Country { code: "PH", en: "Philippines", es: "Filipinas" },
    Country { code: "PK", en: "Pakistan", es: "Pakistán" },
    Country { code: "PL", en: "Poland", es: "Polonia" },
    Country { code: "PM", en: "Saint Pierre and Miquelon", es: "San Pedro y Miquelon" },
    Country { code: "PN", en: "Pitcairn", es: "Pitcairn" },
    Country { code: "PR", en: "Puerto Rico", es: "Puerto Rico" },
    Country { code: "PS", en: "Palestine, State of", es: "Palestina, Estado de" },
    Country { code: "PT", en: "Portugal", es: "Portugal" },
    Country { code: "PW", en: "Palau", es: "Palaos" },
    Country { code: "PY", en: "Paraguay", es: "Paraguay" },
    Country { code: "QA", en: "Qatar", es: "Catar" },
    Country { code: "RE", en: "Réunion", es: "Reunión" },
    Country { code: "RO", en: "Romania", es: "Rumanía" },
    Country { code: "RS", en: "Serbia", es: "Serbia" },
    Country { code: "RU", en: "Russian Federation", es: "Federación Rusa" },
    Country { code: "RW", en: "Rwanda", es: "Ruanda" },
    Country { code: "SA", en: "Saudi Arabia", es: "Arabia Saudí" },
    Country { code: "SB", en: "Solomon Islands", es: "Islas Salomón" },
    Country { code: "SC", en: "Seychelles", es: "Seychelles" },
    Country { code: "SD", en: "Sudan", es: "Sudán" },
    Country { code: "SE", en: "Sweden", es: "Suecia" },
    Country { code: "SG", en: "Singapore", es: "Singapur" },
    Country { code: "SH", en: "Saint Helena, Ascension and Tristan da Cunha", es: "Santa Elena, Ascensión y Tristán de Acuña" },
    Country { code: "SI", en: "Slovenia", es: "Eslovenia" },
    Country { code: "SJ", en: "Svalbard and Jan Mayen", es: "Svalbard y Jan Mayen" },
    Country { code: "SK", en: "Slovakia", es: "Eslovaquia" },
    Country { code: "SL", en: "Sierra Leone", es: "Sierra Leona" },
    Country { code: "SM", en: "San Marino", es: "San Marino" },
    Country { code: "SN", en: "Senegal", es: "Senegal" },
    Country { code: "SO", en: "Somalia", es: "Somalia" },
    Country { code: "SR", en: "Suriname", es: "Surinam" },
    Country { code: "SS", en: "South Sudan", es: "Sudán del Sur" },
    Country { code: "ST", en: "Sao Tome and Principe", es: "Santo Tomé y Príncipe" },
    Country { code: "SV", en: "El Salvador", es: "El Salvador" },
    Country { code: "SX", en: "Sint Maarten (Dutch part)", es: "Isla de San Martín (zona holandesa)" },
    Country { code: "SY", en: "Syrian Arab Republic", es: "República árabe de Siria" },
    Country { code: "SZ", en: "Eswatini", es: "Esuatini" },
    Country { code: "TC", en: "Turks and Caicos Islands", es: "Islas Turcas y Caicos" },
    Country { code: "TD", en: "Chad", es: "Chad" },
    Country { code: "TF", en: "French Southern Territories", es: "Territorios Franceses del Sur" },
    Country { code: "TG", en: "Togo", es: "Togo" },
    Country { code: "TH", en: "Thailand", es: "Tailandia" },
    Country { code: "TJ", en: "Tajikistan", es: "Tayikistán" },
    Country { code: "TK", en: "Tokelau", es: "Tokelau" },
    Country { code: "TL", en: "Timor-Leste", es: "Timor Oriental" },
    Country { code: "TM", en: "Turkmenistan", es: "Turkmenistán" },
    Country { code: "TN", en: "Tunisia", es: "Túnez" },
    Country { code: "TO", en: "Tonga", es: "Tonga" },
    Country { code: "TR", en: "Türkiye", es: "Turquía" },
    Country { code: "TT", en: "Trinidad and Tobago", es: "Trinidad y Tobago" },
    Country { code: "TV", en: "Tuvalu", es: "Tuvalu" },
    Country { code: "TW", en: "Taiwan, Province of China", es: "Taiwán, Provincia de China" },
    Country { code: "TZ", en: "Tanzania, United Republic of", es: "Tanzania, República unida de" },
    Country { code: "UA", en: "Ukraine", es: "Ucrania" },
    Country { code: "UG", en: "Uganda", es: "Uganda" },
    Country { code: "UM", en: "United States Minor Outlying Islands", es: "Islas Ultramarinas Menores de Estados Unidos" },
    Country { code: "US", en: "United States", es: "Estados Unidos" },
    Country { code: "UY", en: "Uruguay", es: "Uruguay" },
    Country { code: "UZ", en: "Uzbekistan", es: "Uzbekistán" },
    Country { code: "VA", en: "Holy See (Vatican City State)", es: "Santa Sede (Ciudad Estado del Vaticano)" },
    Country { code: "VC", en: "Saint Vincent and the Grenadines", es: "San Vicente y las Granadinas" },
    Country { code: "VE", en: "Venezuela, Bolivarian Republic of", es: "Venezuela, República Bolivariana de" },
    Country { code: "VG", en: "Virgin Islands, British", es: "Islas Vírgenes, Británicas" },
    Country { code: "VI", en: "Virgin Islands, U.S.", es: "Islas Vírgenes, de EEUU." },
    Country { code: "VN", en: "Viet Nam", es: "Vietnam" },
    Country { code: "VU", en: "Vanuatu", es: "Vanuatu" },
    Country { code: "WF", en: "Wallis and Futuna", es: "Wallis y Futuna" },
    Country { code: "WS", en: "Samoa", es: "Samoa" },
    Country { code: "YE", en: "Yemen", es: "Yemen" },
    Country { code: "YT", en: "Mayotte", es: "Mayotte" },
    Country { code: "ZA", en: "South Africa", es: "Sudáfrica" },
    Country { code: "ZM", en: "Zambia", es: "Zambia" },
    Country { code: "ZW", en: "Zimbabwe", es: "Zimbabue" },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_assigned_code_once_in_order() {
        assert_eq!(COUNTRIES.len(), 249);
        for pair in COUNTRIES.windows(2) {
            assert!(
                pair[0].code < pair[1].code,
                "{} then {}",
                pair[0].code,
                pair[1].code
            );
        }
        for c in COUNTRIES {
            assert_eq!(c.code.len(), 2, "{}", c.code);
            assert!(c.code.bytes().all(|b| b.is_ascii_uppercase()), "{}", c.code);
            assert!(!c.en.is_empty() && !c.es.is_empty(), "{}", c.code);
            assert_eq!(country(c.code), Some(c));
        }
    }

    #[test]
    fn region_names() {
        let gt = country("GT").expect("GT is assigned");
        assert_eq!((gt.en, gt.es), ("Guatemala", "Guatemala"));
        let dominican = country("DO").expect("DO is assigned");
        assert_eq!(dominican.en, "Dominican Republic");
        assert_eq!(dominican.es, "República Dominicana");
        assert_eq!(country("PA").map(|c| c.es), Some("Panamá"));
        assert_eq!(country("BZ").map(|c| c.es), Some("Belice"));
        assert_eq!(country("MX").map(|c| c.es), Some("México"));
    }

    #[test]
    fn parse_accepts_either_case_and_returns_upper() {
        assert_eq!(parse_country("gt"), Ok("GT"));
        assert_eq!(parse_country("Do"), Ok("DO"));
        assert_eq!(parse_country("SV"), Ok("SV"));
    }

    #[test]
    fn lookup_is_exact() {
        assert_eq!(country("gt"), None);
        assert_eq!(country("GTM"), None);
        assert_eq!(country(""), None);
    }

    #[test]
    fn refuses_unassigned_and_malformed() {
        assert_eq!(
            parse_country("XZ"),
            Err("\"XZ\" is not an ISO 3166-1 alpha-2 country code".to_string())
        );
        // Reserved or user-assigned, not officially assigned.
        for s in ["XK", "UK", "EU", "AA", "ZZ", "GTM", "", " GT", "G"] {
            assert!(parse_country(s).is_err(), "{s:?} accepted");
        }
    }
}
