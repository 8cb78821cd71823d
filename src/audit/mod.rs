//! The accountability log: who saw, sent, received and searched what, when
//! and why, in a form no member can quietly rewrite.
//!
//! - **Entries** ([`Entry`]) are composed here and chained by the store
//!   (`store::audit_log`): each holds the hash of the one before, and the
//!   store writes an entry *in the same transaction* as the action it
//!   records (a record published, a batch received, a purge, a case
//!   registered). An acknowledged action therefore always has its entry,
//!   and an entry never describes an action that did not happen. Actions
//!   that change nothing else (a disclosure, a query answered, a refusal)
//!   are made durable before the action takes effect: the batch is sent,
//!   the answer returned, only afterwards.
//! - **Checkpoints** ([`checkpoint`]) sign the log's size and head hash with
//!   the node's key and go to every peer, which stores and countersigns
//!   them. A node that truncates or rewrites its log, even with its own key
//!   in hand, disagrees with what its peers witnessed.
//! - **Verification** ([`verify`]) recomputes the chain, checks the node's
//!   own checkpoints and its peers' witnesses, and names the first entry
//!   that does not hold.
//!
//! No clear identifier ever enters the log: selectors appear as digests of
//! their tokens ([`token_digest`]), records by id.

pub mod checkpoint;
pub mod keeper;
pub mod recovery;
pub(crate) mod refusals;
pub mod verify;

use ring::digest::{SHA256, digest};
use serde::{Deserialize, Serialize};

use crate::records::model::NodeId;
use crate::records::selector::Token;
use crate::store::audit_log::RawEntry;

/// What happened. The codes are part of the log format and of `enlace
/// audit export --action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The node started; `ids` carry the fingerprints of its certificate,
    /// signing key and roster.
    NodeStarted,
    /// The node stopped cleanly.
    NodeStopped,
    /// Certificates, keys, CRLs or the roster changed since the last start
    /// or were reloaded.
    ConfigChanged,
    /// An agency client published, updated or withdrew a record.
    RecordPublished,
    RecordUpdated,
    RecordWithdrawn,
    /// Records of this node were sent to a peer.
    RecordsDisclosed,
    /// Records were received from a peer and stored.
    RecordsReceived,
    /// A record from a peer was refused (reason in `result`).
    RecordRejected,
    /// An agency client's request was refused (reason in `result`).
    RequestRejected,
    /// A record's content was purged at expiry.
    RecordPurged,
    /// This node asked its peers whether they hold selectors.
    QuerySent,
    /// A peer's answer to this node's query (hit, no hit, unreachable,
    /// refused).
    QueryResult,
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
    /// A local case was registered, changed or closed.
    CaseRegistered,
    CaseUpdated,
    CaseClosed,
    /// A peer's checkpoint was refused (its log shrank or forked).
    CheckpointRejected,
    /// The audit log itself was read through the agency API.
    AuditRead,
    /// Entries older than the retention period were removed.
    AuditPruned,
    /// This node's audit log was lost and resumes after the checkpoint
    /// its peers witnessed (`result` names the entries lost and the peers
    /// that countersigned).
    AuditResumed,
    /// A peer's statement that it lost its audit log was countersigned
    /// here (or refused: `checkpoint_rejected`).
    RecoveryWitnessed,
    /// A peer's statement that it prunes its audit log up to an entry was
    /// countersigned here: this node saw that entry exist at least the
    /// minimum retention ago (or refused: `checkpoint_rejected`).
    RetentionWitnessed,
    /// A peer's calls refused beyond the refusals written one by one in a
    /// minute: how many, of which calls, since when.
    RequestsRefused,
    /// This node published a statistical report (or a correction):
    /// `result` names the table, period and version.
    StatisticsPublished,
    /// A peer's statistical report was stored here.
    StatisticsReceived,
    /// An agency client assembled the regional table from the members'
    /// reports (`counterparts` are the members whose reports it used).
    StatisticsAssembled,
    /// This node published a proposed roster version (`ids`: the record
    /// and the version's hash).
    RosterProposed,
    /// This node published a governance key's approval of a proposal.
    RosterApproved,
    /// A roster version came into force here through its approvals:
    /// `result` names the version, its hash and the approving members.
    RosterAdopted,
    /// A roster proposal, approval or version was refused, or adoption
    /// halted: `result` starts with the reason label.
    RosterRefused,
    /// This node evaluated a peer's blinded identifiers with its OPRF key
    /// (an oblivious query's first step): how many, the epoch, the
    /// justification and the asking client; never anything about the
    /// identifiers, which this node cannot see.
    QueryEvaluated,
    /// A peer confirmed a hit in this node's match filter: `ids` name this
    /// node's own cases and alerts that hold the identifier.
    QueryConfirmed,
    /// This node published a change to its match filter (`result`: the
    /// epoch and how many entries were added and removed).
    FilterPublished,
}

impl Action {
    pub const ALL: [Action; 39] = [
        Action::NodeStarted,
        Action::NodeStopped,
        Action::ConfigChanged,
        Action::RecordPublished,
        Action::RecordUpdated,
        Action::RecordWithdrawn,
        Action::RecordsDisclosed,
        Action::RecordsReceived,
        Action::RecordRejected,
        Action::RequestRejected,
        Action::RecordPurged,
        Action::QuerySent,
        Action::QueryResult,
        Action::QueryAnswered,
        Action::QueryRefused,
        Action::MlaSent,
        Action::MlaAcknowledged,
        Action::MlaResponded,
        Action::MlaReceived,
        Action::CaseRegistered,
        Action::CaseUpdated,
        Action::CaseClosed,
        Action::CheckpointRejected,
        Action::AuditRead,
        Action::AuditPruned,
        Action::AuditResumed,
        Action::RecoveryWitnessed,
        Action::RetentionWitnessed,
        Action::RequestsRefused,
        Action::StatisticsPublished,
        Action::StatisticsReceived,
        Action::StatisticsAssembled,
        Action::RosterProposed,
        Action::RosterApproved,
        Action::RosterAdopted,
        Action::RosterRefused,
        Action::QueryEvaluated,
        Action::QueryConfirmed,
        Action::FilterPublished,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Action::NodeStarted => "node_started",
            Action::NodeStopped => "node_stopped",
            Action::ConfigChanged => "config_changed",
            Action::RecordPublished => "record_published",
            Action::RecordUpdated => "record_updated",
            Action::RecordWithdrawn => "record_withdrawn",
            Action::RecordsDisclosed => "records_disclosed",
            Action::RecordsReceived => "records_received",
            Action::RecordRejected => "record_rejected",
            Action::RequestRejected => "request_rejected",
            Action::RecordPurged => "record_purged",
            Action::QuerySent => "query_sent",
            Action::QueryResult => "query_result",
            Action::QueryAnswered => "query_answered",
            Action::QueryRefused => "query_refused",
            Action::MlaSent => "mla_sent",
            Action::MlaAcknowledged => "mla_acknowledged",
            Action::MlaResponded => "mla_responded",
            Action::MlaReceived => "mla_received",
            Action::CaseRegistered => "case_registered",
            Action::CaseUpdated => "case_updated",
            Action::CaseClosed => "case_closed",
            Action::CheckpointRejected => "checkpoint_rejected",
            Action::AuditRead => "audit_read",
            Action::AuditPruned => "audit_pruned",
            Action::AuditResumed => "audit_resumed",
            Action::RecoveryWitnessed => "recovery_witnessed",
            Action::RetentionWitnessed => "retention_witnessed",
            Action::RequestsRefused => "requests_refused",
            Action::StatisticsPublished => "statistics_published",
            Action::StatisticsReceived => "statistics_received",
            Action::StatisticsAssembled => "statistics_assembled",
            Action::RosterProposed => "roster_proposed",
            Action::RosterApproved => "roster_approved",
            Action::RosterAdopted => "roster_adopted",
            Action::RosterRefused => "roster_refused",
            Action::QueryEvaluated => "query_evaluated",
            Action::QueryConfirmed => "query_confirmed",
            Action::FilterPublished => "filter_published",
        }
    }

    pub fn parse(code: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|a| a.code() == code)
            .ok_or_else(|| {
                format!(
                    "unknown audit action {code:?}; one of: {}",
                    Self::ALL.map(Action::code).join(", ")
                )
            })
    }
}

/// One entry's content. Serialised as JSON, field order fixed, and chained
/// by the store; a verifier reads older and newer entries alike, so
/// `action` stays a string here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// When (ms since the Unix epoch, this node's clock).
    pub time_ms: i64,
    pub action: String,
    /// The agency client (its certificate name) or the peer node that
    /// caused it; the node itself for what it does on its own.
    pub actor: String,
    /// Why, as the actor stated it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub justification: String,
    /// The other members involved.
    #[serde(default)]
    pub counterparts: Vec<String>,
    /// Record ids, query ids, MLA request ids, case ids.
    #[serde(default)]
    pub ids: Vec<String>,
    /// Digests of the selector tokens involved ([`token_digest`]).
    #[serde(default)]
    pub token_digests: Vec<String>,
    /// The outcome, or the reason of a refusal.
    #[serde(default)]
    pub result: String,
}

impl Entry {
    pub fn new(action: Action, actor: impl Into<String>) -> Self {
        Self {
            time_ms: crate::clock::now_ms(),
            action: action.code().to_owned(),
            actor: actor.into(),
            justification: String::new(),
            counterparts: Vec::new(),
            ids: Vec::new(),
            token_digests: Vec::new(),
            result: String::new(),
        }
    }

    pub fn justification(mut self, why: impl Into<String>) -> Self {
        self.justification = why.into();
        self
    }

    pub fn counterpart(mut self, who: impl ToString) -> Self {
        self.counterparts.push(who.to_string());
        self
    }

    pub fn counterparts<T: ToString>(mut self, who: impl IntoIterator<Item = T>) -> Self {
        self.counterparts
            .extend(who.into_iter().map(|w| w.to_string()));
        self
    }

    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.ids.push(id.into());
        self
    }

    pub fn ids<T: Into<String>>(mut self, ids: impl IntoIterator<Item = T>) -> Self {
        self.ids.extend(ids.into_iter().map(Into::into));
        self
    }

    pub fn tokens(mut self, tokens: &[Token]) -> Self {
        self.token_digests.extend(tokens.iter().map(token_digest));
        self
    }

    pub fn result(mut self, result: impl Into<String>) -> Self {
        self.result = result.into();
        self
    }

    /// The bytes the store chains.
    pub fn encode(&self) -> Vec<u8> {
        // NOTE: serialising a plain struct of strings and integers cannot
        // fail; an empty body would still chain and show up as unreadable.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(body: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(body).map_err(|e| format!("body is not an audit entry: {e}"))
    }

    /// Writes the entry to the `enlace::audit` log target too, for the
    /// operator's log pipeline (the store's copy is the one that counts).
    pub fn log(&self, node: &NodeId) {
        tracing::info!(
            target: "enlace::audit",
            node = %node,
            action = %self.action,
            actor = %self.actor,
            counterparts = %self.counterparts.join(","),
            justification = %self.justification,
            ids = self.ids.len(),
            token_digests = %self.token_digests.join(","),
            result = %self.result,
            "audit"
        );
    }
}

/// The first 16 hex digits of SHA-256 of a token: enough to correlate
/// audit entries, useless for matching.
pub fn token_digest(t: &Token) -> String {
    let mut input = Vec::with_capacity(37);
    input.push(t.kind.wire() as u8);
    input.extend_from_slice(&t.epoch.to_be_bytes());
    input.extend_from_slice(&t.token);
    hex(&digest(&SHA256, &input).as_ref()[..8])
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// One line of `enlace audit export`: the entry with its number, time in
/// RFC 3339, and hashes. `counterpart` joins the counterparts with commas
/// (empty when none), for spreadsheets; `counterparts` keeps the list.
pub fn export_json(raw: &RawEntry, entry: &Entry) -> serde_json::Value {
    serde_json::json!({
        "n": raw.n,
        "time": rfc3339(entry.time_ms),
        "time_ms": entry.time_ms,
        "action": entry.action,
        "actor": entry.actor,
        "counterpart": entry.counterparts.join(","),
        "counterparts": entry.counterparts,
        "justification": entry.justification,
        "ids": entry.ids,
        "token_digests": entry.token_digests,
        "result": entry.result,
        "prev": hex(&raw.prev),
        "hash": hex(&raw.hash),
    })
}

/// Milliseconds since the epoch as RFC 3339 (UTC).
pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// What `enlace audit export` keeps.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only entries at or after this time (ms).
    pub since_ms: Option<i64>,
    pub action: Option<Action>,
    /// Only entries that name this member as a counterpart.
    pub counterpart: Option<String>,
}

impl Filter {
    pub fn keeps(&self, e: &Entry) -> bool {
        self.since_ms.is_none_or(|t| e.time_ms >= t)
            && self.action.is_none_or(|a| e.action == a.code())
            && self
                .counterpart
                .as_ref()
                .is_none_or(|c| e.counterparts.iter().any(|x| x == c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_codes_are_unique_and_parse_back() {
        let mut codes: Vec<_> = Action::ALL.iter().map(|a| a.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Action::ALL.len());
        for a in Action::ALL {
            assert_eq!(Action::parse(a.code()).unwrap(), a);
        }
        let err = Action::parse("deleted_everything").unwrap_err();
        assert!(err.contains("record_published"), "{err}");
    }

    #[test]
    fn entries_round_trip_and_export_names_the_required_fields() {
        let e = Entry::new(Action::RecordsDisclosed, "gt")
            .counterpart("hn")
            .ids(["gt-1", "gt-2"])
            .result("2 records");
        let back = Entry::decode(&e.encode()).unwrap();
        assert_eq!(back, e);
        let raw = RawEntry::chained(1, crate::store::audit_log::GENESIS, e.encode());
        let line = export_json(&raw, &e);
        for field in ["n", "time", "action", "actor", "counterpart", "hash"] {
            assert!(line.get(field).is_some(), "{field} missing from {line}");
        }
        assert_eq!(line["counterpart"], "hn");
        assert_eq!(line["hash"].as_str().unwrap().len(), 64);
        assert!(Entry::decode(b"{not json").is_err());
    }

    #[test]
    fn filters_select_by_time_action_and_counterpart() {
        let mut e = Entry::new(Action::QueryAnswered, "analyst@hn").counterpart("hn");
        e.time_ms = 1_000;
        assert!(Filter::default().keeps(&e));
        let f = Filter {
            since_ms: Some(1_000),
            action: Some(Action::QueryAnswered),
            counterpart: Some("hn".into()),
        };
        assert!(f.keeps(&e));
        assert!(
            !Filter {
                since_ms: Some(1_001),
                ..Filter::default()
            }
            .keeps(&e)
        );
        assert!(
            !Filter {
                action: Some(Action::QuerySent),
                ..Filter::default()
            }
            .keeps(&e)
        );
        assert!(
            !Filter {
                counterpart: Some("sv".into()),
                ..Filter::default()
            }
            .keeps(&e)
        );
    }
}
