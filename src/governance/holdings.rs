//! What the roster index points at, read from the store: each member's
//! latest proposals and, for those, its latest approvals, chosen from the
//! index before a record is read (the budget in the module documentation
//! of [`super`]).

use std::collections::{BTreeMap, HashSet};

use super::{
    GovernanceError, Governor, Held, HeldApproval, Holdings, MAX_APPROVALS_PER_MEMBER,
    MAX_PROPOSALS_PER_MEMBER,
};
use crate::records::model::RecordKind;
use crate::records::roster::{self as records_roster, Indexed};
use crate::trust::chain;
use crate::wire;

impl Governor {
    /// The bytes of a proposal held here: one prefix scan of the index
    /// entries about it, and the first proposal record read.
    pub fn proposal_bytes(&self, hash: &[u8; 32]) -> Result<Option<Vec<u8>>, GovernanceError> {
        for indexed in self.about(hash, "proposal")? {
            if let Some(RecordKind::RosterProposal(p)) = self.read(&indexed.record_id)? {
                return Ok(Some(p.version));
            }
        }
        Ok(None)
    }

    /// Whether a valid approval of the proposal `hash` by `key` is held
    /// here (a forged one under the key does not count: it must not stop
    /// the real one from being published).
    pub fn approved_with(&self, hash: &[u8; 32], key: &[u8; 32]) -> Result<bool, GovernanceError> {
        for indexed in self.about(hash, "approval")? {
            if let Some(RecordKind::RosterApproval(a)) = self.read(&indexed.record_id)?
                && a.governance_key == *key
                && a.signature_verifies()
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The index entries of kind `kind` about the version hashing to
    /// `hash` (the index keys start with it).
    fn about(&self, hash: &[u8; 32], kind: &str) -> Result<Vec<Indexed>, GovernanceError> {
        let prefix = format!("{}{}:", records_roster::KEY_PREFIX, chain::hex(hash));
        Ok(self
            .store
            .series()
            .with_prefix(&prefix)?
            .into_iter()
            .filter_map(|(_, value)| Indexed::decode(&value))
            .filter(|i| i.kind == kind)
            .collect())
    }

    /// Every proposal and approval the roster index points at.
    pub(super) fn holdings(&self) -> Result<Holdings, GovernanceError> {
        // First the index alone (small entries), to choose what to read:
        // each member's latest proposals, and for those its latest
        // approvals, so that a member flooding either costs this node a
        // bounded amount of reading and checking per evaluation.
        let mut proposals: BTreeMap<String, Vec<([u8; 32], Indexed)>> = BTreeMap::new();
        let mut approvals: BTreeMap<([u8; 32], String), Vec<Indexed>> = BTreeMap::new();
        for (key, value) in self
            .store
            .series()
            .with_prefix(records_roster::KEY_PREFIX)?
        {
            let hash = key
                .strip_prefix(records_roster::KEY_PREFIX)
                .and_then(|rest| rest.split(':').next())
                .and_then(|h| chain::parse_hash(h).ok());
            let (Some(hash), Some(indexed)) = (hash, Indexed::decode(&value)) else {
                tracing::error!(key, "a roster index entry does not decode");
                continue;
            };
            match indexed.kind.as_str() {
                "proposal" => proposals
                    .entry(indexed.origin.clone())
                    .or_default()
                    .push((hash, indexed)),
                _ => approvals
                    .entry((hash, indexed.origin.clone()))
                    .or_default()
                    .push(indexed),
            }
        }
        let mut h = Holdings::default();
        let in_chain: HashSet<[u8; 32]> = self
            .trust
            .chain()
            .iter()
            .map(|s| s.version.hash())
            .collect();
        for (_, mine) in proposals {
            // Versions in the chain are read whatever their number (the
            // chain bounds them); the budget is for the others.
            let (adopted, open): (Vec<_>, Vec<_>) = mine
                .into_iter()
                .partition(|(hash, _)| in_chain.contains(hash));
            let open = latest(
                open,
                |e: &([u8; 32], Indexed)| e.1.created_at_ms,
                MAX_PROPOSALS_PER_MEMBER,
            );
            for (hash, indexed) in adopted.into_iter().chain(open) {
                let Some(RecordKind::RosterProposal(p)) = self.read(&indexed.record_id)? else {
                    continue;
                };
                let held = Held {
                    indexed,
                    bytes: p.version,
                };
                // The same version proposed twice: the first counts.
                match h.proposals.get(&hash) {
                    Some(o) if o.indexed.created_at_ms <= held.indexed.created_at_ms => {}
                    _ => {
                        h.proposals.insert(hash, held);
                    }
                }
            }
        }
        for ((hash, _), theirs) in approvals {
            if !h.proposals.contains_key(&hash) {
                continue;
            }
            for indexed in latest(
                theirs,
                |e: &Indexed| e.created_at_ms,
                MAX_APPROVALS_PER_MEMBER,
            ) {
                let Some(RecordKind::RosterApproval(a)) = self.read(&indexed.record_id)? else {
                    continue;
                };
                h.approvals.entry(hash).or_default().push(HeldApproval {
                    record_id: indexed.record_id,
                    origin: indexed.origin,
                    approval: a,
                });
            }
        }
        Ok(h)
    }

    /// What a stored record is, if it is still held whole.
    fn read(&self, record_id: &str) -> Result<Option<RecordKind>, GovernanceError> {
        let Some(stored) = self.store.records().get_by_id(record_id)? else {
            return Ok(None);
        };
        let Some(envelope) = stored.content.envelope() else {
            return Ok(None);
        };
        match wire::open_stored(envelope) {
            Ok((_, body)) => Ok(Some(body.kind)),
            Err(error) => {
                tracing::error!(record_id, %error, "a stored roster record does not decode");
                Ok(None)
            }
        }
    }
}

/// The `n` newest of `v` by `created_at`.
fn latest<T>(mut v: Vec<T>, created_at: impl Fn(&T) -> i64, n: usize) -> Vec<T> {
    v.sort_by_key(|e| std::cmp::Reverse(created_at(e)));
    v.truncate(n);
    v
}
