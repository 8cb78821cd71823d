//! The node's audit path: every query and every MLA event is handed here,
//! with who, why, when, which counterpart, digests of the selector tokens
//! (never the tokens, never a clear identifier) and the result.
//!
//! Today an event is written as a structured log line on the `enlace::audit`
//! target (one JSON object per line with `[log] format = "json"`). The
//! tamper-evident, hash-chained accountability log witnessed by peers builds
//! on this same call: producers do not change when it lands.

use ring::digest::{SHA256, digest};

use crate::model::NodeId;
use crate::selector::Token;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// This node asked a peer whether it holds a selector.
    QuerySent,
    /// This node answered a peer's query.
    QueryAnswered,
    /// This node refused a peer's query (limit, rules).
    QueryRefused,
    /// An MLA request was sent, acknowledged or answered by this node.
    MlaSent,
    MlaAcknowledged,
    MlaResponded,
    /// An MLA record from a peer was stored here.
    MlaReceived,
}

impl Action {
    pub fn code(self) -> &'static str {
        match self {
            Action::QuerySent => "query_sent",
            Action::QueryAnswered => "query_answered",
            Action::QueryRefused => "query_refused",
            Action::MlaSent => "mla_sent",
            Action::MlaAcknowledged => "mla_acknowledged",
            Action::MlaResponded => "mla_responded",
            Action::MlaReceived => "mla_received",
        }
    }
}

/// One audit event.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub action: Action,
    /// The agency client or the peer node that caused it.
    pub actor: &'a str,
    pub counterpart: Option<&'a NodeId>,
    pub justification: Option<&'a str>,
    /// Record ids or query ids involved.
    pub ids: Vec<String>,
    pub tokens: &'a [Token],
    pub result: &'a str,
}

/// The first 16 hex digits of SHA-256 of a token: enough to correlate
/// audit entries, useless for matching.
pub fn token_digest(t: &Token) -> String {
    let mut input = Vec::with_capacity(37);
    input.push(t.kind.wire() as u8);
    input.extend_from_slice(&t.epoch.to_be_bytes());
    input.extend_from_slice(&t.token);
    digest(&SHA256, &input).as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Hands an event to the audit path.
pub fn emit(node: &NodeId, e: Event<'_>) {
    let tokens: Vec<String> = e.tokens.iter().map(token_digest).collect();
    tracing::info!(
        target: "enlace::audit",
        node = %node,
        action = e.action.code(),
        actor = e.actor,
        counterpart = e.counterpart.map(ToString::to_string).unwrap_or_default(),
        justification = e.justification.unwrap_or_default(),
        ids = %e.ids.join(","),
        token_digests = %tokens.join(","),
        result = e.result,
        "audit"
    );
}
