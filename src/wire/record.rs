//! A record as it travels and is stored: the signed envelope around the
//! encoded body, and the strict decoding that refuses a body breaking any
//! rule ([`RecordBody::validate`]).

use prost::Message;

use super::pb::v1 as pb;
use crate::records::filter::MatchFilter;
use crate::records::model::{
    Content, Errors, MlaAck, MlaResponse, NodeId, RecordBody, RecordKind, Update, ValidationErrors,
    Withdrawal,
};
use crate::records::roster::{Approval, RosterProposal};
use crate::records::vocabulary::MlaOutcome;

use super::convert::*;
use super::statistics::{report_from_pb, report_to_pb};

/// Why bytes from the wire or the store are not a valid record.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("record envelope does not decode: {0}")]
    Envelope(prost::DecodeError),
    #[error("record body does not decode: {0}")]
    Body(prost::DecodeError),
    #[error("record body is invalid: {0}")]
    Invalid(ValidationErrors),
}

/// The envelope as it travels: body bytes, key id, signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub body: Vec<u8>,
    pub key_id: String,
    pub signature: Vec<u8>,
}

impl Envelope {
    pub fn encode(&self) -> Vec<u8> {
        self.to_pb().encode_to_vec()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let pb = pb::SignedRecord::decode(bytes).map_err(WireError::Envelope)?;
        Ok(Self::from_pb(pb))
    }

    pub fn to_pb(&self) -> pb::SignedRecord {
        pb::SignedRecord {
            body: self.body.clone(),
            key_id: self.key_id.clone(),
            signature: self.signature.clone(),
        }
    }

    pub fn from_pb(pb: pb::SignedRecord) -> Self {
        Self {
            body: pb.body,
            key_id: pb.key_id,
            signature: pb.signature,
        }
    }
}

/// Encodes a body for signing. Deterministic for a given value, but no
/// receiver relies on that: signatures cover the bytes as sent.
pub fn encode_body(body: &RecordBody) -> Vec<u8> {
    let kind = match &body.kind {
        RecordKind::Alert(a) => pb::record_body::Kind::Alert(alert_to_pb(a)),
        RecordKind::CaseReference(c) => pb::record_body::Kind::CaseReference(case_ref_to_pb(c)),
        RecordKind::StatisticalReport(r) => {
            pb::record_body::Kind::StatisticalReport(report_to_pb(r))
        }
        RecordKind::Update(u) => pb::record_body::Kind::Update(pb::Update {
            target_record_id: u.target.clone(),
            version: u.version,
            content: Some(match &u.content {
                Content::Alert(a) => pb::update::Content::Alert(alert_to_pb(a)),
                Content::CaseReference(c) => pb::update::Content::CaseReference(case_ref_to_pb(c)),
                Content::StatisticalReport(r) => {
                    pb::update::Content::StatisticalReport(report_to_pb(r))
                }
            }),
        }),
        RecordKind::Withdrawal(w) => pb::record_body::Kind::Withdrawal(pb::Withdrawal {
            target_record_id: w.target.clone(),
            reason: w.reason.clone(),
        }),
        RecordKind::MlaRequest(r) => pb::record_body::Kind::MlaRequest(pb::MlaRequest {
            to: r.to.to_string(),
            case_refs: r.case_refs.clone(),
            query_id: r.query_id.clone(),
            legal_basis: r.legal_basis.clone(),
            measures: r.measures.clone(),
            urgency: r.urgency.wire(),
            deadline_ms: r.deadline_ms.unwrap_or(0),
        }),
        RecordKind::MlaAck(a) => pb::record_body::Kind::MlaAck(pb::MlaAck {
            request_id: a.request_id.clone(),
        }),
        RecordKind::MlaResponse(r) => pb::record_body::Kind::MlaResponse(pb::MlaResponse {
            request_id: r.request_id.clone(),
            outcome: r.outcome.wire(),
            text: r.text.clone(),
        }),
        RecordKind::RosterProposal(p) => {
            pb::record_body::Kind::RosterProposal(pb::RosterProposal {
                version: p.version.clone(),
            })
        }
        RecordKind::RosterApproval(a) => {
            pb::record_body::Kind::RosterApproval(pb::RosterApproval {
                roster_sha256: a.roster_sha256.to_vec(),
                governance_key: a.governance_key.to_vec(),
                signature: a.signature.clone(),
            })
        }
        RecordKind::MatchFilter(f) => pb::record_body::Kind::MatchFilter(pb::MatchFilter {
            epoch: f.epoch,
            added: MatchFilter::pack(&f.added),
            removed: MatchFilter::pack(&f.removed),
            complete: f.complete,
        }),
    };
    pb::RecordBody {
        origin: body.origin.to_string(),
        seq: body.seq,
        record_id: body.record_id.clone(),
        created_at_ms: body.created_at_ms,
        distribution: Some(distribution_to_pb(&body.distribution)),
        kind: Some(kind),
    }
    .encode_to_vec()
}

/// The seq a body claims, without validating the rest (to order records
/// before each is verified in full).
pub(crate) fn body_seq(bytes: &[u8]) -> Result<u64, prost::DecodeError> {
    pb::RecordBody::decode(bytes).map(|b| b.seq)
}

/// Decodes a stored record's envelope and body. Records are verified
/// before they are stored, and the store is local, so this does not verify
/// the signature again; a tombstone has no envelope to open.
pub fn open_stored(envelope: &[u8]) -> Result<(Envelope, RecordBody), WireError> {
    let envelope = Envelope::decode(envelope)?;
    let body = decode_body(&envelope.body)?;
    Ok((envelope, body))
}

/// Decodes and validates a body.
pub fn decode_body(bytes: &[u8]) -> Result<RecordBody, WireError> {
    let pb = pb::RecordBody::decode(bytes).map_err(WireError::Body)?;
    let mut errors = Errors::default();
    let origin = NodeId::parse(&pb.origin)
        .map_err(|rule| errors.push("origin", rule))
        .ok();
    let distribution = match pb.distribution {
        Some(d) => distribution_from_pb(d, "distribution")
            .map_err(|e| errors.extend(e))
            .ok(),
        None => {
            errors.push("distribution", "is required");
            None
        }
    };
    let kind = match pb.kind {
        Some(pb::record_body::Kind::Alert(a)) => {
            alert_from_pb(a, "alert", &mut errors).map(RecordKind::Alert)
        }
        Some(pb::record_body::Kind::CaseReference(c)) => {
            case_ref_from_pb(c, "case_reference", &mut errors).map(RecordKind::CaseReference)
        }
        Some(pb::record_body::Kind::StatisticalReport(r)) => {
            report_from_pb(r, "statistical_report", &mut errors).map(RecordKind::StatisticalReport)
        }
        Some(pb::record_body::Kind::Update(u)) => {
            let content = match u.content {
                Some(pb::update::Content::Alert(a)) => {
                    alert_from_pb(a, "update.alert", &mut errors).map(Content::Alert)
                }
                Some(pb::update::Content::CaseReference(c)) => {
                    case_ref_from_pb(c, "update.case_reference", &mut errors)
                        .map(Content::CaseReference)
                }
                Some(pb::update::Content::StatisticalReport(r)) => {
                    report_from_pb(r, "update.statistical_report", &mut errors)
                        .map(Content::StatisticalReport)
                }
                None => {
                    errors.push("update.content", "is required");
                    None
                }
            };
            content.map(|content| {
                RecordKind::Update(Update {
                    target: u.target_record_id,
                    version: u.version,
                    content,
                })
            })
        }
        Some(pb::record_body::Kind::Withdrawal(w)) => Some(RecordKind::Withdrawal(Withdrawal {
            target: w.target_record_id,
            reason: w.reason,
        })),
        Some(pb::record_body::Kind::MlaRequest(r)) => {
            mla_request_from_pb(r, &mut errors).map(RecordKind::MlaRequest)
        }
        Some(pb::record_body::Kind::MlaAck(a)) => Some(RecordKind::MlaAck(MlaAck {
            request_id: a.request_id,
        })),
        Some(pb::record_body::Kind::MlaResponse(r)) => req!(
            MlaOutcome,
            r.outcome,
            "mla_response.outcome".to_string(),
            &mut errors
        )
        .map(|outcome| {
            RecordKind::MlaResponse(MlaResponse {
                request_id: r.request_id,
                outcome,
                text: r.text,
            })
        }),
        Some(pb::record_body::Kind::RosterProposal(p)) => {
            Some(RecordKind::RosterProposal(RosterProposal {
                version: p.version,
            }))
        }
        Some(pb::record_body::Kind::RosterApproval(a)) => {
            let hash = <[u8; 32]>::try_from(a.roster_sha256.as_slice())
                .map_err(|_| errors.push("roster_approval.roster_sha256", "must be 32 bytes"))
                .ok();
            let key = <[u8; 32]>::try_from(a.governance_key.as_slice())
                .map_err(|_| errors.push("roster_approval.governance_key", "must be 32 bytes"))
                .ok();
            hash.zip(key).map(|(roster_sha256, governance_key)| {
                RecordKind::RosterApproval(Approval {
                    roster_sha256,
                    governance_key,
                    signature: a.signature,
                })
            })
        }
        Some(pb::record_body::Kind::MatchFilter(f)) => {
            let added = MatchFilter::unpack(&f.added)
                .map_err(|e| errors.push("match_filter.added", e))
                .ok();
            let removed = MatchFilter::unpack(&f.removed)
                .map_err(|e| errors.push("match_filter.removed", e))
                .ok();
            added.zip(removed).map(|(added, removed)| {
                RecordKind::MatchFilter(MatchFilter {
                    epoch: f.epoch,
                    added,
                    removed,
                    complete: f.complete,
                })
            })
        }
        None => {
            errors.push("kind", "is required (unknown or missing record kind)");
            None
        }
    };
    match (origin, distribution, kind) {
        (Some(origin), Some(distribution), Some(kind)) if errors.is_empty() => {
            let body = RecordBody {
                origin,
                seq: pb.seq,
                record_id: pb.record_id,
                created_at_ms: pb.created_at_ms,
                distribution,
                kind,
            };
            body.validate().map_err(WireError::Invalid)?;
            Ok(body)
        }
        _ => Err(WireError::Invalid(ValidationErrors(errors.0))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::model::fixtures::{body, sample_alert};
    use crate::records::model::{CaseReference, Handling, SmugglingElements};
    use crate::records::vocabulary::{CaseStage, HandlingCode, MlaStatus, Offence, Tlp};

    #[test]
    fn bodies_of_every_kind_round_trip() {
        let alert = sample_alert();
        let case = CaseReference {
            case_ref: "MP-2026-0042".into(),
            offence: Offence::Smuggling,
            stage: CaseStage::Investigation,
            competent_authority: "Fiscalía contra el Tráfico Ilícito de Migrantes".into(),
            contact: None,
            mla_status: MlaStatus::Requested,
            linked_alerts: vec!["hn-0102030405060708".into()],
            handling: Handling {
                code: HandlingCode::H3,
                condition: Some("solo para la fiscalía".into()),
            },
            tlp: Tlp::Red,
            expires_at_ms: 1_800_000_000_000,
            review_at_ms: None,
            summary: None,
            language: String::new(),
            trafficking: None,
            smuggling: Some(SmugglingElements {
                material_benefit: true,
                life_endangered: true,
                inhuman_treatment: false,
            }),
        };
        for kind in [
            RecordKind::Alert(alert.clone()),
            RecordKind::CaseReference(case.clone()),
            RecordKind::Update(Update {
                target: "gt-0000000000000001".into(),
                version: 2,
                content: Content::Alert(alert),
            }),
            RecordKind::Withdrawal(Withdrawal {
                target: "gt-0000000000000001".into(),
                reason: "duplicado".into(),
            }),
        ] {
            let b = body(kind);
            assert_eq!(decode_body(&encode_body(&b)).unwrap(), b);
        }
    }

    #[test]
    fn body_without_distribution_is_rejected() {
        let mut pb = pb::RecordBody::decode(
            encode_body(&body(RecordKind::Alert(sample_alert()))).as_slice(),
        )
        .unwrap();
        pb.distribution = None;
        let err = decode_body(&pb.encode_to_vec()).unwrap_err();
        assert!(
            err.to_string().contains("distribution: is required"),
            "{err}"
        );
    }

    #[test]
    fn missing_vocabulary_values_are_named() {
        let mut pb = pb::RecordBody::decode(
            encode_body(&body(RecordKind::Alert(sample_alert()))).as_slice(),
        )
        .unwrap();
        if let Some(pb::record_body::Kind::Alert(a)) = &mut pb.kind {
            a.r#type = 0;
            a.tlp = 99;
        }
        let err = decode_body(&pb.encode_to_vec()).unwrap_err().to_string();
        assert!(
            err.contains("alert.type: is required; one of: possible_victim"),
            "{err}"
        );
        assert!(err.contains("alert.tlp: unknown value 99"), "{err}");
    }

    #[test]
    fn garbage_does_not_decode() {
        assert!(decode_body(&[0xff, 0xff, 0xff]).is_err());
        assert!(Envelope::decode(&[0x0a, 0x10]).is_err());
    }
}
