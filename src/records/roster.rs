//! Roster governance as records: a member publishes a proposed next
//! version of the federation's roster, and governance keys' detached
//! approvals of it follow, each as an ordinary signed record to all
//! members (docs/roster.md). They travel, survive crashes and are audited
//! like every record; what they mean (whether a version may follow the one
//! in force, and when it has enough approvals) is decided by
//! `crate::trust::chain`, above this floor.
//!
//! Every node indexes the roster records it holds under
//! `roster:<version hash>:<record id>` in the store's state tree, written
//! in the same transaction as the record, so that the node finds a
//! proposal's approvals without reading its whole log.

use serde::{Deserialize, Serialize};

use crate::records::crypto::{PUBLIC_KEY_LEN, sha256};

/// The largest proposed version a record carries, in bytes.
pub const MAX_PROPOSAL_BYTES: usize = 512 * 1024;

/// A proposed next version: the encoded `RosterVersion`, verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterProposal {
    pub version: Vec<u8>,
}

impl RosterProposal {
    /// The SHA-256 of the version's bytes: what approvals sign.
    pub fn hash(&self) -> [u8; 32] {
        sha256(&self.version)
    }
}

/// One governance key's approval of one version: an Ed25519 signature
/// over the version's hash (see `crate::trust::chain::Approval::sign`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub roster_sha256: [u8; 32],
    pub governance_key: [u8; PUBLIC_KEY_LEN],
    pub signature: Vec<u8>,
}

/// Prefix of every roster record's key in the state tree.
pub const KEY_PREFIX: &str = "roster:";

/// The state-tree key of a roster record about the version hashing to
/// `hash`.
pub fn key(hash: &[u8; 32], record_id: &str) -> String {
    format!("{KEY_PREFIX}{}:{record_id}", hex::encode(hash))
}

/// What the state tree holds for a roster record (JSON; fields are only
/// ever added).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Indexed {
    /// "proposal" or "approval".
    pub kind: String,
    pub record_id: String,
    pub origin: String,
    pub created_at_ms: i64,
}

impl Indexed {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}
