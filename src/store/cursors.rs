//! Replication cursors: per origin, the highest sequence number of its log
//! that this node has resolved (stored, or known to be a hole it is not
//! entitled to; ADR 0003). The `cursors` tree holds them (origin →
//! `u64 BE`), written in the transaction that stores the records a cursor
//! covers (see `writes`). Readers see only durable cursors, kept in memory.

use std::collections::HashMap;

use super::{Records, StoreError, keys};
use crate::records::model::NodeId;

/// Every cursor in the tree. At open, everything on disk is durable.
pub(super) fn load(cursors: &sled::Tree) -> Result<HashMap<NodeId, u64>, StoreError> {
    let mut out = HashMap::new();
    for kv in cursors.iter() {
        let (k, v) = kv?;
        let bad = || StoreError::Corrupt("bad entry in cursors".into());
        let origin = std::str::from_utf8(&k)
            .ok()
            .and_then(|o| NodeId::parse(o).ok())
            .ok_or_else(bad)?;
        out.insert(origin, keys::read_u64(&v).ok_or_else(bad)?);
    }
    Ok(out)
}

impl Records<'_> {
    /// Highest resolved sequence number of `origin`'s log (0: none).
    /// Only what is durable counts, as for the records themselves: a
    /// cursor never covers a record that a crash could still take back.
    pub fn cursor(&self, origin: &NodeId) -> Result<u64, StoreError> {
        let durable = self
            .store
            .durable
            .cursors
            .read()
            .map_err(|_| StoreError::Poisoned)?;
        Ok(durable.get(origin).copied().unwrap_or(0))
    }
}
