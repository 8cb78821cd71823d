//! Mutual legal assistance (asistencia judicial recíproca): a request to one
//! member, that member node's automatic signed acknowledgment, and its
//! agency's answer.
//!
//! All three are ordinary signed records on their origin's log, addressed
//! to the other party only, so they travel, survive crashes and are audited
//! like every record. Each node keeps the state of every request it sent or
//! received (under the key `mla:<request id>` of the store's state tree),
//! written in the same transaction as the record that changes it; both ends
//! therefore see the same lifecycle: sent → acknowledged → answered, and
//! whether the request is overdue.

use serde::{Deserialize, Serialize};

use crate::records::model::{FieldError, RecordBody, RecordKind};

/// Key of a request's state in the store's state tree.
pub fn key(request_id: &str) -> String {
    format!("mla:{request_id}")
}

/// Prefix of every MLA state key.
pub(crate) const KEY_PREFIX: &str = "mla:";

/// An acknowledgment or answer, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub record_id: String,
    /// MlaOutcome code; empty for the acknowledgment.
    #[serde(default)]
    pub outcome: String,
    #[serde(default)]
    pub text: String,
    pub at_ms: i64,
}

/// The lifecycle of one request (JSON; fields are only ever added).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MlaState {
    pub request_id: String,
    pub from: String,
    pub to: String,
    pub legal_basis: String,
    pub measures: String,
    #[serde(default)]
    pub case_refs: Vec<String>,
    #[serde(default)]
    pub query_id: String,
    /// Urgency code.
    pub urgency: String,
    #[serde(default)]
    pub deadline_ms: Option<i64>,
    pub sent_at_ms: i64,
    #[serde(default)]
    pub ack: Option<Answer>,
    #[serde(default)]
    pub responses: Vec<Answer>,
}

impl MlaState {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }

    /// sent, acknowledged, or the latest answer's outcome
    /// (executed, partially_executed, refused, need_info).
    pub fn state(&self) -> &str {
        match self.responses.last() {
            Some(r) => match r.outcome.as_str() {
                "partial" => "partially_executed",
                other => other,
            },
            None if self.ack.is_some() => "acknowledged",
            None => "sent",
        }
    }

    /// Whether the request has a final answer (executed or refused).
    /// "More information needed" is not final, and neither is "partially
    /// executed": the rest is often carried out later, and answered then.
    pub fn answered(&self) -> bool {
        self.responses
            .last()
            .is_some_and(|r| matches!(r.outcome.as_str(), "executed" | "refused"))
    }

    /// The deadline has passed without a final answer.
    pub fn overdue(&self, now_ms: i64) -> bool {
        self.deadline_ms.is_some_and(|d| now_ms > d) && !self.answered()
    }
}

/// The state after `body` (an MLA record), given the state before it.
/// The rules are the same at both ends: a request is new; only its
/// recipient acknowledges it, once, and answers it.
pub fn next(before: Option<&MlaState>, body: &RecordBody) -> Result<MlaState, FieldError> {
    match &body.kind {
        RecordKind::MlaRequest(r) => {
            if before.is_some() {
                return Err(FieldError::new(
                    "record_id",
                    format!("request {} already exists", body.record_id),
                ));
            }
            Ok(MlaState {
                request_id: body.record_id.clone(),
                from: body.origin.to_string(),
                to: r.to.to_string(),
                legal_basis: r.legal_basis.clone(),
                measures: r.measures.clone(),
                case_refs: r.case_refs.clone(),
                query_id: r.query_id.clone(),
                urgency: r.urgency.code().into(),
                deadline_ms: r.deadline_ms,
                sent_at_ms: body.created_at_ms,
                ack: None,
                responses: Vec::new(),
            })
        }
        RecordKind::MlaAck(a) => {
            let before = known(before, &a.request_id)?;
            answered_by_recipient(before, body)?;
            if before.ack.is_some() {
                return Err(FieldError::new(
                    "request_id",
                    format!("request {} is already acknowledged", a.request_id),
                ));
            }
            let mut after = before.clone();
            after.ack = Some(Answer {
                record_id: body.record_id.clone(),
                outcome: String::new(),
                text: String::new(),
                at_ms: body.created_at_ms,
            });
            Ok(after)
        }
        RecordKind::MlaResponse(r) => {
            let before = known(before, &r.request_id)?;
            answered_by_recipient(before, body)?;
            if before.answered() {
                return Err(FieldError::new(
                    "request_id",
                    format!(
                        "request {} already has a final answer ({})",
                        r.request_id,
                        before.state()
                    ),
                ));
            }
            let mut after = before.clone();
            after.responses.push(Answer {
                record_id: body.record_id.clone(),
                outcome: r.outcome.code().into(),
                text: r.text.clone(),
                at_ms: body.created_at_ms,
            });
            Ok(after)
        }
        _ => Err(FieldError::new("kind", "not an MLA record")),
    }
}

fn known<'a>(before: Option<&'a MlaState>, request_id: &str) -> Result<&'a MlaState, FieldError> {
    before.ok_or_else(|| {
        FieldError::new(
            "request_id",
            format!("no MLA request {request_id} at this node"),
        )
    })
}

fn answered_by_recipient(state: &MlaState, body: &RecordBody) -> Result<(), FieldError> {
    if body.origin.as_str() != state.to {
        return Err(FieldError::new(
            "request_id",
            format!(
                "request {} is addressed to {}; {} cannot answer it",
                state.request_id, state.to, body.origin
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::model::fixtures::body;
    use crate::records::model::{Distribution, MlaAck, MlaRequest, MlaResponse, NodeId};
    use crate::records::vocabulary::{MlaOutcome, Urgency};

    fn request() -> RecordBody {
        let mut b = body(RecordKind::MlaRequest(MlaRequest {
            to: NodeId::parse("hn").unwrap(),
            case_refs: vec!["gt-0000000000000001".into()],
            query_id: String::new(),
            legal_basis: "UNTOC Art. 18".into(),
            measures: "Información bancaria".into(),
            urgency: Urgency::Urgent,
            deadline_ms: Some(1_000),
        }));
        b.distribution = Distribution::Named([NodeId::parse("hn").unwrap()].into_iter().collect());
        b
    }

    fn answer(kind: RecordKind, from: &str, id: u8) -> RecordBody {
        let mut b = body(kind);
        b.origin = NodeId::parse(from).unwrap();
        b.record_id = format!("{from}-{:016x}", id);
        b.distribution = Distribution::Named([NodeId::parse("gt").unwrap()].into_iter().collect());
        b
    }

    #[test]
    fn a_request_is_acknowledged_then_answered_by_its_recipient_only() {
        let req = request();
        let s = next(None, &req).unwrap();
        assert_eq!(
            (s.state(), s.overdue(500), s.overdue(2_000)),
            ("sent", false, true)
        );
        let ack = answer(
            RecordKind::MlaAck(MlaAck {
                request_id: req.record_id.clone(),
            }),
            "hn",
            1,
        );
        let s = next(Some(&s), &ack).unwrap();
        assert_eq!(s.state(), "acknowledged");
        assert!(next(Some(&s), &ack).is_err(), "acknowledged once");
        let by_sv = answer(
            RecordKind::MlaAck(MlaAck {
                request_id: req.record_id.clone(),
            }),
            "sv",
            2,
        );
        assert!(
            next(Some(&s), &by_sv)
                .unwrap_err()
                .rule
                .contains("cannot answer")
        );
        let info = answer(
            RecordKind::MlaResponse(MlaResponse {
                request_id: req.record_id.clone(),
                outcome: MlaOutcome::NeedInfo,
                text: "falta el auto".into(),
            }),
            "hn",
            3,
        );
        let s = next(Some(&s), &info).unwrap();
        assert_eq!((s.state(), s.overdue(2_000)), ("need_info", true));
        let done = answer(
            RecordKind::MlaResponse(MlaResponse {
                request_id: req.record_id.clone(),
                outcome: MlaOutcome::Executed,
                text: "ejecutada".into(),
            }),
            "hn",
            4,
        );
        let s = next(Some(&s), &done).unwrap();
        assert_eq!((s.state(), s.overdue(2_000)), ("executed", false));
        assert!(
            next(Some(&s), &done).is_err(),
            "no answer after a final one"
        );
        assert_eq!(MlaState::decode(&s.encode()), Some(s));
    }

    #[test]
    fn a_partial_execution_is_completed_later_and_then_final() {
        let req = request();
        let s = next(None, &req).unwrap();
        let partial = answer(
            RecordKind::MlaResponse(MlaResponse {
                request_id: req.record_id.clone(),
                outcome: MlaOutcome::Partial,
                text: "primera parte".into(),
            }),
            "hn",
            2,
        );
        let s = next(Some(&s), &partial).unwrap();
        assert_eq!(s.state(), "partially_executed");
        assert!(!s.answered(), "a partial execution is not final");
        assert!(s.overdue(2_000), "still pending once the deadline passed");
        let rest = answer(
            RecordKind::MlaResponse(MlaResponse {
                request_id: req.record_id.clone(),
                outcome: MlaOutcome::Executed,
                text: "el resto".into(),
            }),
            "hn",
            3,
        );
        let s = next(Some(&s), &rest).expect("the rest, answered later");
        assert_eq!((s.state(), s.answered()), ("executed", true));
        assert_eq!(s.responses.len(), 2);
        assert!(
            next(Some(&s), &partial).is_err(),
            "nothing after a final answer"
        );
    }
}
