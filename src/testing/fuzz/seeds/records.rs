//! Seeds of the `record` and `pull_batch` targets: a record of every
//! kind, signed with the example federation's keys, and a Pull batch of
//! them.

use prost::Message;

use crate::records::vocabulary::{
    CaseStage, HandlingCode, MlaOutcome, MlaStatus, Offence, SubjectCategory, Tlp, Urgency,
};
use crate::testing::fuzz::{PEER, THIS_NODE, fixture};
use crate::wire::Envelope;
use crate::wire::pb::v1 as pb;

pub(super) fn record_id(origin: &str, n: u64) -> String {
    format!("{origin}-{n:016x}")
}

fn named(ids: &[&str]) -> Option<pb::Distribution> {
    Some(pb::Distribution {
        scope: Some(pb::distribution::Scope::Named(pb::NamedMembers {
            members: ids.iter().map(|s| (*s).to_owned()).collect(),
        })),
    })
}

fn all_members() -> Option<pb::Distribution> {
    Some(pb::Distribution {
        scope: Some(pb::distribution::Scope::AllMembers(pb::AllMembers {})),
    })
}

fn alert(expires_at_ms: i64) -> pb::Alert {
    pb::Alert {
        expires_at_ms,
        urgency: Urgency::Urgent.wire(),
        subject_category: SubjectCategory::Victim.wire(),
        ..crate::testing::sample_alert("Ruta por Tecún Umán hacia Tapachula")
    }
}

fn case_reference() -> pb::CaseReference {
    pb::CaseReference {
        case_ref: "MP-2026-0042".into(),
        offence: Offence::Smuggling.wire(),
        stage: CaseStage::Investigation.wire(),
        competent_authority: "Fiscalía contra el Tráfico Ilícito de Migrantes".into(),
        mla_status: MlaStatus::Requested.wire(),
        linked_alerts: vec![record_id(PEER, 1)],
        handling: Some(pb::Handling {
            code: HandlingCode::H3.wire(),
            condition: "solo para la fiscalía".into(),
        }),
        tlp: Tlp::Red.wire(),
        expires_at_ms: 1_800_000_000_000,
        smuggling: Some(pb::SmugglingElements {
            material_benefit: true,
            life_endangered: true,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn body(
    origin: &str,
    seq: u64,
    distribution: Option<pb::Distribution>,
    kind: pb::record_body::Kind,
) -> Vec<u8> {
    pb::RecordBody {
        origin: origin.into(),
        seq,
        record_id: record_id(origin, seq),
        created_at_ms: 1_750_000_000_000 + seq as i64,
        distribution,
        kind: Some(kind),
    }
    .encode_to_vec()
}

/// A record of every kind, in the order `gt`'s log would hold them
/// (seq 1 to 7), then the answers from `hn`.
pub(super) fn record_bodies() -> Vec<(&'static str, Vec<u8>)> {
    use pb::record_body::Kind;
    vec![
        (
            "alert",
            body(
                PEER,
                1,
                named(&[THIS_NODE]),
                Kind::Alert(alert(1_800_000_000_000)),
            ),
        ),
        (
            "update",
            body(
                PEER,
                2,
                named(&[THIS_NODE]),
                Kind::Update(pb::Update {
                    target_record_id: record_id(PEER, 1),
                    version: 2,
                    content: Some(pb::update::Content::Alert(alert(1_810_000_000_000))),
                }),
            ),
        ),
        (
            "case-reference-not-for-hn",
            body(
                PEER,
                3,
                named(&["sv"]),
                Kind::CaseReference(case_reference()),
            ),
        ),
        (
            "withdrawal",
            body(
                PEER,
                4,
                named(&[THIS_NODE]),
                Kind::Withdrawal(pb::Withdrawal {
                    target_record_id: record_id(PEER, 1),
                    reason: "duplicado de otra alerta".into(),
                }),
            ),
        ),
        (
            "alert-expired",
            body(
                PEER,
                5,
                all_members(),
                Kind::Alert(alert(1_755_000_000_000)),
            ),
        ),
        (
            "mla-request",
            body(
                PEER,
                6,
                named(&[THIS_NODE]),
                Kind::MlaRequest(pb::MlaRequest {
                    to: THIS_NODE.into(),
                    case_refs: vec![record_id(PEER, 3)],
                    legal_basis: "Convención de Palermo, art. 18".into(),
                    measures: "Registros migratorios de la persona".into(),
                    urgency: Urgency::Urgent.wire(),
                    ..Default::default()
                }),
            ),
        ),
        (
            "case-reference",
            body(
                PEER,
                7,
                named(&[THIS_NODE, "sv"]),
                Kind::CaseReference(case_reference()),
            ),
        ),
        (
            "mla-ack",
            body(
                THIS_NODE,
                1,
                named(&[PEER]),
                Kind::MlaAck(pb::MlaAck {
                    request_id: record_id(PEER, 6),
                }),
            ),
        ),
        (
            "mla-response",
            body(
                THIS_NODE,
                2,
                named(&[PEER]),
                Kind::MlaResponse(pb::MlaResponse {
                    request_id: record_id(PEER, 6),
                    outcome: MlaOutcome::Executed.wire(),
                    text: "Se adjuntan los registros solicitados".into(),
                }),
            ),
        ),
        (
            "statistical-report",
            body(
                PEER,
                8,
                all_members(),
                Kind::StatisticalReport(statistical_report()),
            ),
        ),
        (
            "roster-proposal",
            body(
                PEER,
                9,
                all_members(),
                Kind::RosterProposal(pb::RosterProposal {
                    version: example_version().version,
                }),
            ),
        ),
        (
            "roster-approval",
            body(
                PEER,
                10,
                all_members(),
                Kind::RosterApproval(
                    example_version()
                        .approvals
                        .into_iter()
                        .next()
                        .unwrap_or_default(),
                ),
            ),
        ),
    ]
}

/// The example federation's version 1 with its approvals.
fn example_version() -> pb::SignedRoster {
    let bytes = std::fs::read(fixture().dir.join("roster/1.roster")).unwrap_or_default();
    pb::SignedRoster::decode(bytes.as_slice()).unwrap_or_default()
}

/// The smuggled-migrants table of 2026: 5 women and 6 men, nothing to
/// suppress.
fn statistical_report() -> pb::StatisticalReport {
    use crate::records::stats::{
        Cell, Counts, Method, Period, ProtectedTable, StatisticalReport, TableKind,
    };
    let mut counts = Counts::zero(TableKind::Smuggled, Period::Year(2026));
    // female/adult and male/adult, in row-major order (sex, age group).
    counts.interior[1] = 5;
    counts.interior[4] = 6;
    let cells = TableKind::Smuggled
        .spec()
        .all_keys()
        .into_iter()
        .map(|key| Cell {
            value: Some(counts.value(&key)),
            key,
            suppressed: None,
        })
        .collect();
    crate::wire::report_to_pb(&StatisticalReport {
        table: ProtectedTable {
            kind: TableKind::Smuggled,
            period: Period::Year(2026),
            method: Method::Suppression { threshold: 5 },
            cells,
        },
        population: None,
        correction: None,
        expires_at_ms: 1_900_000_000_000,
    })
}

/// `body` in an envelope signed by the member it names.
pub(super) fn sign(body: &[u8]) -> Vec<u8> {
    crate::testing::fuzz::records::resign_record(fixture(), body).encode()
}

pub(super) fn pull_batch() -> Vec<u8> {
    let records: Vec<_> = record_bodies()
        .into_iter()
        .filter(|(name, _)| {
            !name.starts_with("mla-a")
                && !name.starts_with("mla-r")
                && !name.starts_with("stat")
                && !name.starts_with("roster")
        })
        .chain(
            record_bodies()
                .into_iter()
                .filter(|(n, _)| *n == "mla-request"),
        )
        .map(|(_, b)| Envelope::decode(&sign(&b)).map(|e| e.to_pb()))
        .collect::<Result<_, _>>()
        .unwrap_or_default();
    pb::PullBatch {
        records,
        high_water: 7,
        head: 9,
    }
    .encode_to_vec()
}
