//! Valid records of every kind, for the unit tests of the modules that
//! read or write records (the wire format, lifecycle, MLA, the services).

use super::*;
use crate::records::selector::Token;
use crate::records::vocabulary::{
    AlertType, Exploitation, HandlingCode, InformationAccuracy, Offence, SelectorKind,
    SourceReliability, SubjectCategory, Tlp, TraffickingAct, TraffickingMeans, Urgency,
};

/// A valid alert about a possible victim of trafficking, for tests.
pub(crate) fn sample_alert() -> Alert {
    Alert {
        summary: "Ruta por Tecún Umán".into(),
        language: "es".into(),
        alert_type: AlertType::PossibleVictim,
        offence: Offence::Trafficking,
        trafficking: Some(TraffickingElements {
            acts: vec![TraffickingAct::Recruitment],
            means: vec![TraffickingMeans::Deception],
            child_no_means_required: false,
            exploitation: vec![Exploitation::Sexual],
        }),
        smuggling: None,
        subject: Some(SubjectCategory::Victim),
        origin_countries: vec!["HN".into()],
        transit_countries: vec!["GT".into()],
        destination_countries: vec!["MX".into()],
        evaluation: Some(Evaluation {
            source: SourceReliability::B,
            information: InformationAccuracy::Two,
        }),
        handling: Handling {
            code: HandlingCode::H1,
            condition: None,
        },
        tlp: Tlp::Amber,
        urgency: Urgency::Urgent,
        expires_at_ms: 1_800_000_000_000,
        review_at_ms: Some(1_790_000_000_000),
        selectors: vec![Token {
            kind: SelectorKind::Passport,
            epoch: 1,
            token: [7; 32],
        }],
        contact: Some(ContactPoint {
            unit: "Unidad de Cooperación Internacional".into(),
            email: "cooperacion@mp.example".into(),
            phone: "+502 2411 9191".into(),
        }),
    }
}

pub(crate) fn body(kind: RecordKind) -> RecordBody {
    let gt = NodeId::parse("gt").unwrap();
    RecordBody {
        record_id: super::new_record_id(&gt, [9; 8]),
        origin: gt,
        seq: 7,
        created_at_ms: 1_700_000_000_000,
        distribution: Distribution::Named([NodeId::parse("hn").unwrap()].into_iter().collect()),
        kind,
    }
}
