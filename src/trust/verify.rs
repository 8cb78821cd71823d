//! The one gate every shared record passes before it is stored or shown.
//!
//! Order matters: the signature is checked against the roster key named by
//! the envelope *before* the body is decoded, so a forged record never
//! reaches the protobuf decoder, and the decoded origin must then be the
//! member that owns the key (a member cannot sign in another's name).

use crate::records::crypto;
use crate::records::model::{Distribution, NodeId, RecordBody};
use crate::trust::roster::{Role, Roster};
use crate::wire::{self, Envelope};

/// Why a record was refused. Each is a security event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("signing key {0:?} is not in the roster")]
    UnknownKey(String),
    #[error("signature does not verify under key {0:?}")]
    BadSignature(String),
    #[error("body is invalid: {0}")]
    BadBody(String),
    #[error("record claims origin {claimed} but key {key_id:?} belongs to {owner}")]
    OriginMismatch {
        claimed: String,
        key_id: String,
        owner: NodeId,
    },
    #[error("key {key_id:?} is not valid at the record's creation time {created_at_ms}")]
    KeyNotValid { key_id: String, created_at_ms: i64 },
    #[error("distribution names {0}, which is not a member of the roster")]
    UnknownRecipient(NodeId),
    #[error("record comes from {found} on a stream for origin {expected}")]
    UnexpectedOrigin { expected: NodeId, found: NodeId },
    #[error("record seq {seq} is outside the batch window ({after}, {high_water}]")]
    OutOfOrder {
        seq: u64,
        after: u64,
        high_water: u64,
    },
    #[error("record is not addressed to this node ({0})")]
    NotEntitled(NodeId),
    #[error(
        "seq {0} is already held with different content: the origin signed two records for one slot"
    )]
    Conflict(u64),
    #[error("record breaks the series rules: {0}")]
    Series(String),
    #[error("record comes from {0}, an observer: observers receive records and publish none")]
    Observer(NodeId),
}

impl Rejection {
    /// Short stable label, for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Rejection::UnknownKey(_) => "unknown_key",
            Rejection::BadSignature(_) => "bad_signature",
            Rejection::BadBody(_) => "bad_body",
            Rejection::OriginMismatch { .. } => "origin_mismatch",
            Rejection::KeyNotValid { .. } => "key_not_valid",
            Rejection::UnknownRecipient(_) => "unknown_recipient",
            Rejection::UnexpectedOrigin { .. } => "unexpected_origin",
            Rejection::OutOfOrder { .. } => "out_of_order",
            Rejection::NotEntitled(_) => "not_entitled",
            Rejection::Conflict(_) => "conflict",
            Rejection::Series(_) => "series",
            Rejection::Observer(_) => "observer",
        }
    }
}

/// A record whose signature and content passed every check.
#[derive(Debug, Clone)]
pub struct VerifiedRecord {
    pub body: RecordBody,
    pub key_id: String,
    /// The envelope to store, re-encoded around the body bytes exactly as signed.
    pub envelope: Vec<u8>,
}

/// Verifies an envelope against the roster.
pub fn verify(roster: &Roster, envelope: &Envelope) -> Result<VerifiedRecord, Rejection> {
    let (member, key) = roster
        .signing_key(&envelope.key_id)
        .ok_or_else(|| Rejection::UnknownKey(envelope.key_id.clone()))?;
    crypto::verify_record(
        &key.public_key,
        &key.key_id,
        &envelope.body,
        &envelope.signature,
    )
    .map_err(|_| Rejection::BadSignature(envelope.key_id.clone()))?;
    // Observers keep signing keys for their audit checkpoints, not for
    // records.
    if member.role == Role::Observer {
        return Err(Rejection::Observer(member.id.clone()));
    }
    let body = wire::decode_body(&envelope.body).map_err(|e| Rejection::BadBody(e.to_string()))?;
    if body.origin != member.id {
        return Err(Rejection::OriginMismatch {
            claimed: body.origin.to_string(),
            key_id: key.key_id.clone(),
            owner: member.id.clone(),
        });
    }
    if !key.covers(body.created_at_ms) {
        return Err(Rejection::KeyNotValid {
            key_id: key.key_id.clone(),
            created_at_ms: body.created_at_ms,
        });
    }
    if let Distribution::Named(members) = &body.distribution
        && let Some(unknown) = members.iter().find(|m| roster.member(m).is_none())
    {
        return Err(Rejection::UnknownRecipient(unknown.clone()));
    }
    Ok(VerifiedRecord {
        body,
        key_id: envelope.key_id.clone(),
        envelope: envelope.encode(),
    })
}
