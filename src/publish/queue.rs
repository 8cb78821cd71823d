//! What an agency's change is, what it comes back as, and the queue where
//! new publications wait to be written together ([`PublishQueue`]), which
//! the publisher drains.

use crate::records::crypto;
use crate::records::model::{Content, MlaRequest, NodeId, RecordBody, ValidationErrors};
use crate::store::{StoreError, StoredRecord};

/// What an agency asks its node to do.
#[derive(Debug, Clone)]
pub enum Change {
    /// A new alert or case reference, to all members (`recipients` empty)
    /// or to the named ones; `key`, if given, makes a retry safe (see
    /// [`crate::store::publish_keys`]).
    Publish {
        content: Content,
        recipients: Vec<String>,
        key: Option<PublishKey>,
    },
    /// A new version of the series that `target` (any of its record ids)
    /// belongs to.
    Update { target: String, content: Content },
    /// Withdraw the series that `target` belongs to.
    Withdraw { target: String, reason: String },
    /// Send a mutual legal assistance request.
    SendMla(MlaRequest),
    /// Acknowledge a request received (done by the node itself).
    AckMla { request_id: String },
    /// Answer a request received.
    RespondMla {
        request_id: String,
        outcome: crate::records::vocabulary::MlaOutcome,
        text: String,
    },
    /// Publish a proposed next roster version to all members.
    ProposeRoster(crate::records::roster::RosterProposal),
    /// Publish a governance key's approval of a proposed version.
    ApproveRoster(crate::records::roster::Approval),
    /// Publish a change to this node's match filter (done by the node).
    PublishFilter(crate::records::filter::MatchFilter),
}

/// A client's publication key (see [`crate::store::publish_keys`]):
/// 1 to 128 ASCII letters, digits, `-` or `_`.
///
/// NOTE: a content hash of clear identifiers; `Debug` does not show it, so
/// that no log line carries it.
#[derive(Clone, PartialEq, Eq)]
pub struct PublishKey(String);

impl PublishKey {
    /// The key, or the rule it breaks.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > crate::store::publish_keys::MAX_KEY_LEN {
            return Err(format!(
                "must be 1 to {} characters, not {}",
                crate::store::publish_keys::MAX_KEY_LEN,
                s.len()
            ));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!(
                "may hold only ASCII letters, digits, '-' and '_', not {c:?}"
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for PublishKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PublishKey(…)")
    }
}

/// Why a publish was refused.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("invalid request: {0}")]
    Invalid(#[from] ValidationErrors),
    #[error("not found: {0}")]
    NotFound(String),
    #[error(
        "{peer} holds this node's own record seq {seen}, but its store holds only {held}: \
         publishing now would reuse numbers the peers refuse. The store was lost, restored from \
         an old backup, or opened from the wrong directory: stop the node, check node.data_dir, \
         and run `enlace node recover` (runbook section 6)"
    )]
    OwnLogBehind { peer: NodeId, seen: u64, held: u64 },
    #[error(
        "this node's store is empty and no peer could say how far it saw this node's log: \
         publishing could reuse numbers the peers refuse. Start the node where its peers are \
         reachable; if its store was lost, run `enlace node recover`; if this is a new member \
         starting before its peers, start it with `enlace node run --new-log`"
    )]
    OwnLogUnconfirmed,
    #[error(
        "this node ({0}) is an observer in the roster: observers receive records and publish none"
    )]
    Observer(NodeId),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Crypto(#[from] crypto::CryptoError),
}

/// A record the node has signed and stored.
#[derive(Debug, Clone)]
pub struct Published {
    pub stored: StoredRecord,
    pub body: RecordBody,
    /// Stored earlier, by a publication with the same key: nothing new
    /// was stored.
    pub already: bool,
}

/// New publications waiting to be written together.
///
/// A transaction costs far more than the records in it (on sled 0.34, one
/// record per transaction tops out near 8 000 records/s on this machine;
/// 64 per transaction, near 24 000), so concurrent publishes are combined:
/// each caller queues its change and waits for the writer's turn; whoever
/// gets the turn writes everything queued by then in one transaction and
/// one flush, and answers each caller. Only new publications are combined:
/// updates, withdrawals and MLA messages read the series state that the
/// one before them may change, so they go one at a time.
#[derive(Default)]
pub(crate) struct PublishQueue {
    pub(crate) jobs: std::sync::Mutex<Vec<Job>>,
    pub(crate) turn: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for PublishQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PublishQueue")
    }
}

/// Most publications written in one transaction.
pub(crate) const MAX_COMBINED: usize = 256;

/// One queued publication and the caller waiting for its outcome.
pub(crate) struct Job {
    pub(crate) change: Change,
    pub(crate) actor: String,
    pub(crate) record_id: String,
    pub(crate) created_at_ms: i64,
    pub(crate) reply: tokio::sync::oneshot::Sender<Result<Published, PublishError>>,
}
