//! The `checkpoints` tree: signed checkpoints of this node's audit log and
//! those witnessed of its peers' logs, keyed by node and size (format in
//! [`super::audit_log`]). The store never interprets them; the audit
//! module signs and checks them.

use super::{GATE, Store, StoreError, audit_log, keys};
use crate::records::model::NodeId;

/// The checkpoints held by a store: see [`Store::checkpoints`].
#[derive(Clone, Copy)]
pub struct Checkpoints<'a> {
    pub(super) store: &'a Store,
}

impl Checkpoints<'_> {
    /// Stores a checkpoint of `node`'s audit log at `size` (this node's own,
    /// signed here, or a peer's, witnessed here), durably.
    pub(crate) async fn put(
        &self,
        node: &NodeId,
        size: u64,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        self.insert_durably(audit_log::checkpoint_key(node.as_str(), size), bytes)
            .await
    }

    /// Writes one entry of the tree under the store gate and waits until
    /// it is durable: checkpoints and recoveries alike.
    async fn insert_durably(&self, key: Vec<u8>, bytes: &[u8]) -> Result<(), StoreError> {
        let store = self.store;
        let gate = GATE.lock().await;
        let generation = {
            let mut w = store.writer.lock().map_err(|_| StoreError::Poisoned)?;
            store.trees.checkpoints.insert(key, bytes)?;
            w.generation += 1;
            w.generation
        };
        drop(gate);
        store.make_durable(generation).await
    }

    /// The checkpoints held for `node`'s log with size above `after`,
    /// ascending by size.
    pub fn after(&self, node: &NodeId, after: u64) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.between(node, after, u64::MAX, usize::MAX)
    }

    /// At most `limit` checkpoints held for `node`'s log with size in
    /// (`after`, `up_to`], ascending by size.
    pub fn between(
        &self,
        node: &NodeId,
        after: u64,
        up_to: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        if after >= up_to {
            return Ok(Vec::new());
        }
        let start = audit_log::checkpoint_key(node.as_str(), after.saturating_add(1));
        let end = audit_log::checkpoint_key(node.as_str(), up_to);
        let mut out = Vec::new();
        for kv in self.store.trees.checkpoints.range(start..=end).take(limit) {
            let (k, v) = kv?;
            out.push((size_of(&k)?, v.to_vec()));
        }
        Ok(out)
    }

    /// The checkpoint of `node`'s log with the largest size, if any.
    pub(crate) fn latest(&self, node: &NodeId) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        match self
            .store
            .trees
            .checkpoints
            .scan_prefix(keys::origin_prefix(node.as_str()))
            .next_back()
        {
            Some(kv) => {
                let (k, v) = kv?;
                Ok(Some((size_of(&k)?, v.to_vec())))
            }
            None => Ok(None),
        }
    }
}

impl Checkpoints<'_> {
    /// Stores a recovery of `node`'s audit log resuming after entry
    /// `size` (a countersignature given to a peer), durably.
    pub(crate) async fn put_recovery(
        &self,
        node: &NodeId,
        size: u64,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        self.insert_durably(audit_log::recovery_key(node.as_str(), size), bytes)
            .await
    }

    /// The recoveries held of `node`'s audit log, ascending by the size
    /// they resume after.
    pub fn recoveries(&self, node: &NodeId) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let start = audit_log::recovery_key(node.as_str(), 0);
        let end = audit_log::recovery_key(node.as_str(), u64::MAX);
        let mut out = Vec::new();
        for kv in self.store.trees.checkpoints.range(start..=end) {
            let (k, v) = kv?;
            let size = audit_log::recovery_size(&k)
                .ok_or_else(|| StoreError::Corrupt("bad recovery key in checkpoints".into()))?;
            out.push((size, v.to_vec()));
        }
        Ok(out)
    }
}

/// The log size a checkpoint key names.
fn size_of(key: &[u8]) -> Result<u64, StoreError> {
    let (_, size) = keys::parse_record_key(key)
        .ok_or_else(|| StoreError::Corrupt("bad key in checkpoints".into()))?;
    Ok(size)
}
