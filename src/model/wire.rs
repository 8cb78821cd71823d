//! The record wire format: protobuf `RecordBody` inside a `SignedRecord`.
//!
//! The encoded body bytes are what the origin signs and what every node
//! stores and forwards unchanged, so this is the only place outside the
//! service edge that touches generated types. Decoding is strict: a body
//! that decodes but breaks a rule ([`RecordBody::validate`]) is rejected.

use std::collections::BTreeSet;

use prost::Message;

use super::{Alert, Distribution, FieldError, NodeId, RecordBody, RecordKind, ValidationErrors};
use crate::pb::v1 as pb;

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

/// Decodes and validates a body.
pub fn decode_body(bytes: &[u8]) -> Result<RecordBody, WireError> {
    let pb = pb::RecordBody::decode(bytes).map_err(WireError::Body)?;
    let mut errors = Vec::new();
    let origin = NodeId::parse(&pb.origin)
        .map_err(|rule| errors.push(FieldError::new("origin", rule)))
        .ok();
    let distribution = match pb.distribution {
        Some(d) => distribution_from_pb(d, "distribution")
            .map_err(|e| errors.extend(e.0))
            .ok(),
        None => {
            errors.push(FieldError::new("distribution", "is required"));
            None
        }
    };
    let kind = match pb.kind {
        Some(pb::record_body::Kind::Alert(a)) => Some(RecordKind::Alert(alert_from_pb(a))),
        None => {
            errors.push(FieldError::new(
                "kind",
                "is required (unknown or missing record kind)",
            ));
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
        _ => Err(WireError::Invalid(ValidationErrors(errors))),
    }
}

pub fn alert_to_pb(a: &Alert) -> pb::Alert {
    pb::Alert {
        summary: a.summary.clone(),
        language: a.language.clone(),
    }
}

pub fn alert_from_pb(a: pb::Alert) -> Alert {
    Alert {
        summary: a.summary,
        language: a.language,
    }
}

pub fn distribution_to_pb(d: &Distribution) -> pb::Distribution {
    let scope = match d {
        Distribution::AllMembers => pb::distribution::Scope::AllMembers(pb::AllMembers {}),
        Distribution::Named(m) => pb::distribution::Scope::Named(pb::NamedMembers {
            members: m.iter().map(ToString::to_string).collect(),
        }),
    };
    pb::Distribution { scope: Some(scope) }
}

pub fn distribution_from_pb(
    d: pb::Distribution,
    field: &str,
) -> Result<Distribution, ValidationErrors> {
    match d.scope {
        Some(pb::distribution::Scope::AllMembers(_)) => Ok(Distribution::AllMembers),
        Some(pb::distribution::Scope::Named(n)) => {
            if n.members.is_empty() {
                return Err(ValidationErrors(vec![FieldError::new(
                    format!("{field}.named.members"),
                    "must name at least one member",
                )]));
            }
            match Distribution::from_recipients(&format!("{field}.named.members"), &n.members)? {
                Distribution::Named(m) => Ok(Distribution::Named(m)),
                Distribution::AllMembers => Ok(Distribution::Named(BTreeSet::new())),
            }
        }
        None => Err(ValidationErrors(vec![FieldError::new(
            field,
            "must be either all_members or named",
        )])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> RecordBody {
        let gt = NodeId::parse("gt").unwrap();
        RecordBody {
            record_id: super::super::new_record_id(&gt, [9; 8]),
            origin: gt,
            seq: 7,
            created_at_ms: 1_700_000_000_000,
            distribution: Distribution::Named([NodeId::parse("hn").unwrap()].into_iter().collect()),
            kind: RecordKind::Alert(Alert {
                summary: "Ruta por Tecún Umán".into(),
                language: "es".into(),
            }),
        }
    }

    #[test]
    fn body_round_trips() {
        let b = body();
        assert_eq!(decode_body(&encode_body(&b)).unwrap(), b);
    }

    #[test]
    fn body_without_distribution_is_rejected() {
        let mut pb = pb::RecordBody::decode(encode_body(&body()).as_slice()).unwrap();
        pb.distribution = None;
        let err = decode_body(&pb.encode_to_vec()).unwrap_err();
        assert!(
            err.to_string().contains("distribution: is required"),
            "{err}"
        );
    }

    #[test]
    fn garbage_does_not_decode() {
        assert!(decode_body(&[0xff, 0xff, 0xff]).is_err());
        assert!(Envelope::decode(&[0x0a, 0x10]).is_err());
    }
}
