//! Every vocabulary enum round-trips its wire numbers and codes, has
//! unique codes and filled labels, and is listed in `docs/vocabulary.md`.

use super::*;
use std::collections::HashSet;

/// Runs `$check!(Type)` for every vocabulary enum. A new enum must be
/// added here and to `docs/vocabulary.md`.
macro_rules! for_each_enum {
    ($check:ident) => {
        $check!(AlertType);
        $check!(Offence);
        $check!(TraffickingAct);
        $check!(TraffickingMeans);
        $check!(Exploitation);
        $check!(SubjectCategory);
        $check!(SourceReliability);
        $check!(InformationAccuracy);
        $check!(HandlingCode);
        $check!(Tlp);
        $check!(Urgency);
        $check!(CaseStage);
        $check!(MlaStatus);
        $check!(MlaOutcome);
        $check!(SelectorKind);
        $check!(Sex);
        $check!(AgeGroup);
    };
}

#[test]
fn wire_numbers_round_trip_and_zero_is_unspecified() {
    macro_rules! check {
        ($t:ident) => {{
            assert_eq!($t::from_wire(0), None, "{}", $t::WHAT);
            assert_eq!($t::from_wire(-1), None, "{}", $t::WHAT);
            assert_eq!($t::from_wire(i32::MAX), None, "{}", $t::WHAT);
            for (i, &v) in $t::ALL.iter().enumerate() {
                assert_eq!($t::from_wire(v.wire()), Some(v), "{v:?}");
                // Wire numbers are 1, 2, 3, ... in declaration order, as
                // in record.proto, and the derived order follows them.
                assert_eq!(usize::try_from(v.wire()), Ok(i + 1), "{v:?}");
            }
            assert!($t::ALL.windows(2).all(|w| w[0] < w[1]), "{}", $t::WHAT);
        }};
    }
    for_each_enum!(check);
}

#[test]
fn codes_parse_in_any_spelling() {
    macro_rules! check {
        ($t:ident) => {{
            for &v in $t::ALL {
                let code = v.code();
                assert_eq!($t::parse(code), Ok(v), "{code}");
                assert_eq!(code.parse::<$t>(), Ok(v), "{code}");
                assert_eq!($t::parse(&code.to_uppercase()), Ok(v), "{code}");
                assert_eq!($t::parse(&code.replace('_', "-")), Ok(v), "{code}");
                assert_eq!($t::parse(&code.replace('_', " ")), Ok(v), "{code}");
                assert_eq!($t::parse(&code.replace('_', "+")), Ok(v), "{code}");
                assert_eq!($t::parse(&format!(" {code}\n")), Ok(v), "{code}");
                assert_eq!(v.to_string(), code);
            }
        }};
    }
    for_each_enum!(check);
}

#[test]
fn codes_are_unique_snake_case_and_labels_are_filled() {
    macro_rules! check {
        ($t:ident) => {{
            let mut codes = HashSet::new();
            let mut en = HashSet::new();
            let mut es = HashSet::new();
            for &v in $t::ALL {
                let code = v.code();
                assert!(codes.insert(code), "duplicate code {code}");
                assert!(en.insert(v.en()), "duplicate English label {v:?}");
                assert!(es.insert(v.es()), "duplicate Spanish label {v:?}");
                assert!(
                    !code.is_empty()
                        && !code.starts_with('_')
                        && !code.ends_with('_')
                        && code
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                    "{code} is not snake_case"
                );
                assert!(!v.en().trim().is_empty(), "{v:?}");
                assert!(!v.es().trim().is_empty(), "{v:?}");
                // Every label pair in the sources differs between the
                // two languages.
                assert_ne!(v.en(), v.es(), "{v:?}");
                assert_eq!(v.label(), format!("{} / {}", v.es(), v.en()));
            }
        }};
    }
    for_each_enum!(check);
}

#[test]
fn unknown_code_error_names_the_input_and_lists_every_code() {
    macro_rules! check {
        ($t:ident) => {{
            let err = $t::parse("foo").expect_err("foo is not a code");
            let expected = format!("unknown {} \"foo\"; expected one of: ", $t::WHAT);
            assert!(err.starts_with(&expected), "{err}");
            let listed: Vec<&str> = err[expected.len()..].split(", ").collect();
            let all: Vec<&str> = $t::ALL.iter().map(|v| v.code()).collect();
            assert_eq!(listed, all);
            assert!($t::parse("").is_err());
        }};
    }
    for_each_enum!(check);
    assert_eq!(
        AlertType::parse("foo"),
        Err(
            "unknown alert type \"foo\"; expected one of: possible_victim, wanted, \
             person_of_interest, modus_operandi, fraudulent_document, warning, \
             criminal_assets"
                .to_string()
        )
    );
}

#[test]
fn spellings_from_the_brief() {
    assert_eq!(
        AlertType::parse("possible-victim"),
        Ok(AlertType::PossibleVictim)
    );
    assert_eq!(
        AlertType::parse("POSSIBLE_VICTIM"),
        Ok(AlertType::PossibleVictim)
    );
    assert_eq!(Tlp::parse("amber+strict"), Ok(Tlp::AmberStrict));
    assert_eq!(Tlp::parse("amber-strict"), Ok(Tlp::AmberStrict));
    assert_eq!(Tlp::parse("AMBER+STRICT"), Ok(Tlp::AmberStrict));
    assert_eq!(HandlingCode::parse("H1"), Ok(HandlingCode::H1));
    assert_eq!(SourceReliability::parse("X"), Ok(SourceReliability::X));
    assert_eq!(
        InformationAccuracy::parse("3"),
        Ok(InformationAccuracy::Three)
    );
    // Near misses are refused, not guessed.
    assert!(Tlp::parse("amberstrict").is_err());
    assert!(Tlp::parse("TLP:AMBER").is_err());
    assert!(Offence::parse("tráfico").is_err());
    assert!(Offence::parse("trata").is_err());
}

#[test]
fn trafficking_and_smuggling_keep_their_names() {
    assert_eq!(Offence::Trafficking.es(), "Trata de personas");
    assert_eq!(Offence::Smuggling.es(), "Tráfico ilícito de migrantes");
    assert_eq!(Offence::Trafficking.en(), "Trafficking in persons");
    assert_eq!(Offence::Smuggling.en(), "Smuggling of migrants");
    assert_eq!(
        Offence::Trafficking.label(),
        "Trata de personas / Trafficking in persons"
    );
    assert_eq!(
        SubjectCategory::Victim.label(),
        "Víctima o posible víctima / Victim or possible victim"
    );
}

#[test]
fn alert_types_have_interpol_analogues() {
    let analogues: Vec<&str> = AlertType::ALL
        .iter()
        .map(|t| t.interpol_analogue())
        .collect();
    assert_eq!(
        analogues,
        [
            "Yellow",
            "Red / Diffusion",
            "Blue / Green",
            "Purple",
            "SLTD",
            "Orange",
            "Silver"
        ]
    );
}

#[test]
fn tlp_names_and_named_recipients() {
    let names: Vec<&str> = Tlp::ALL.iter().map(|t| t.tlp_name()).collect();
    assert_eq!(
        names,
        [
            "TLP:CLEAR",
            "TLP:GREEN",
            "TLP:AMBER",
            "TLP:AMBER+STRICT",
            "TLP:RED"
        ]
    );
    let named: Vec<Tlp> = Tlp::ALL
        .iter()
        .copied()
        .filter(|t| t.requires_named_recipients())
        .collect();
    assert_eq!(named, [Tlp::AmberStrict, Tlp::Red]);
}

/// The `##` section of `docs/vocabulary.md` whose heading names `ty`
/// in backticks, e.g. "## Alert type (`AlertType`)".
fn doc_section<'a>(doc: &'a str, ty: &str) -> &'a str {
    let marker = format!("(`{ty}`)");
    let start = doc
        .match_indices("\n## ")
        .map(|(i, _)| i + 1)
        .find(|&i| doc[i..].lines().next().is_some_and(|h| h.contains(&marker)))
        .unwrap_or_else(|| panic!("docs/vocabulary.md has no section for {ty}"));
    let end = doc[start + 3..]
        .find("\n## ")
        .map_or(doc.len(), |i| start + 3 + i);
    &doc[start..end]
}

#[test]
fn docs_list_every_code_and_label() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/vocabulary.md");
    let doc = std::fs::read_to_string(path).expect("docs/vocabulary.md is readable");
    let mut rows = 0;
    macro_rules! check {
        ($t:ident) => {{
            let section = doc_section(&doc, stringify!($t));
            for &v in $t::ALL {
                let row = format!("| `{}` | {} | {} |", v.code(), v.es(), v.en());
                assert!(
                    section.contains(&row),
                    "docs/vocabulary.md, section {}: missing row {row}",
                    stringify!($t)
                );
                rows += 1;
            }
            let table_rows = section.lines().filter(|l| l.starts_with("| `")).count();
            assert_eq!(
                table_rows,
                $t::ALL.len(),
                "docs/vocabulary.md, section {}: rows for unknown codes",
                stringify!($t)
            );
        }};
    }
    for_each_enum!(check);
    for t in AlertType::ALL {
        let row_start = format!("| `{}` | {} | {} | ", t.code(), t.es(), t.en());
        let analogue = doc
            .lines()
            .find_map(|l| l.strip_prefix(row_start.as_str()))
            .unwrap_or_default();
        assert!(
            analogue.starts_with(t.interpol_analogue()),
            "docs/vocabulary.md: INTERPOL analogue of {t}"
        );
    }
    assert!(rows > 0);
}
