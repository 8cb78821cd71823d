//! Retired epochs (ADR 0016, "Rotation by epoch"; `docs/selectors.md`,
//! "Per-member keys and match filters"). Once the roster no
//! longer lists an epoch of a member below one it does list, that epoch
//! never comes back (the roster chain refuses a version that brings it
//! back), so what was kept for it goes: the origin's own entries at the
//! origin, the view's entries at every receiver, and the origin's filter
//! records of it, purged to tombstones wherever they are held
//! (`crate::node`). A rotation is thus also how a member's filter
//! history is compacted.
//!
//! The mark `g` ‖ origin ‖ epoch is written first, so that nothing read
//! afterwards adds entries to the epoch again; the entries are then
//! removed in batches, and a crash in between leaves the mark, which the
//! next pass finishes from.

use std::collections::BTreeSet;

use super::{Filters, epoch_key, peer_epoch_key, peer_key, u64_of};
use crate::records::model::NodeId;
use crate::records::oprf::ENTRY_LEN;
use crate::store::StoreError;

/// Keys removed per transaction when an epoch's entries go.
const DROP_BATCH: usize = 8192;

/// The epoch of a key `prefix` ‖ epoch BE ‖ …, if it has one.
fn epoch_after(key: &[u8], prefix: usize) -> Option<u32> {
    let b = key.get(prefix..prefix + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

impl Filters<'_> {
    /// The epochs of `origin`'s filter the view holds anything of.
    pub fn peer_epochs(&self, origin: &NodeId) -> Result<BTreeSet<u32>, StoreError> {
        let tree = &self.store.trees.peer_filters;
        let mut out = BTreeSet::new();
        for tag in [b'n', b'r', b'x'] {
            let prefix = peer_key(tag, origin);
            for kv in tree.scan_prefix(&prefix) {
                out.extend(epoch_after(&kv?.0, prefix.len()));
            }
        }
        Ok(out)
    }

    /// The epochs this node keyed its own identifiers under.
    pub fn own_built_epochs(&self) -> Result<BTreeSet<u32>, StoreError> {
        let mut out = BTreeSet::new();
        for kv in self.store.trees.own_filter.scan_prefix([b'k']) {
            out.extend(epoch_after(&kv?.0, 1));
        }
        Ok(out)
    }

    /// The retired epochs of `origin`, each with the seq up to which its
    /// filter records are purged here.
    pub fn retired(&self, origin: &NodeId) -> Result<Vec<(u32, u64)>, StoreError> {
        let prefix = peer_key(b'g', origin);
        let mut out = Vec::new();
        for kv in self.store.trees.peer_filters.scan_prefix(&prefix) {
            let (k, v) = kv?;
            if let Some(epoch) = epoch_after(&k, prefix.len()) {
                out.push((epoch, u64_of(Some(v))));
            }
        }
        Ok(out)
    }

    /// Marks `origin`'s `epoch` retired (unless it is already).
    async fn mark_retired(&self, origin: &NodeId, epoch: u32) -> Result<(), StoreError> {
        let key = peer_epoch_key(b'g', origin, epoch);
        self.write_in(&self.store.trees.peer_filters, |t| {
            if t.get(&key)?.is_none() {
                t.insert(key.as_slice(), &0u64.to_be_bytes())?;
            }
            Ok(())
        })
        .await
    }

    /// Notes `origin`'s filter records of `epoch` purged up to `seq`.
    pub async fn purged_up_to(
        &self,
        origin: &NodeId,
        epoch: u32,
        seq: u64,
    ) -> Result<(), StoreError> {
        let key = peer_epoch_key(b'g', origin, epoch);
        self.write_in(&self.store.trees.peer_filters, |t| {
            t.insert(key.as_slice(), &seq.to_be_bytes())?;
            Ok(())
        })
        .await
    }

    /// Retires `origin`'s `epoch` in the view: marks it, then drops its
    /// entries and counts.
    pub async fn retire_peer_epoch(&self, origin: &NodeId, epoch: u32) -> Result<(), StoreError> {
        self.mark_retired(origin, epoch).await?;
        let tree = &self.store.trees.peer_filters;
        let marks: Vec<Vec<u8>> = [b'n', b'r', b'x']
            .iter()
            .map(|tag| peer_epoch_key(*tag, origin, epoch))
            .collect();
        self.remove_batches(tree, vec![peer_epoch_key(b'e', origin, epoch)], marks)
            .await
    }

    /// Retires this node's own `epoch` (`own` is this node's id): marks
    /// it, then drops its entries, their holders and what was noted of
    /// its publication; `k` ‖ epoch (built) goes last.
    pub async fn retire_own_epoch(&self, own: &NodeId, epoch: u32) -> Result<(), StoreError> {
        self.mark_retired(own, epoch).await?;
        let tree = &self.store.trees.own_filter;
        // A source's entries: `s` ‖ source ‖ 0 ‖ epoch ‖ entry.
        let mut due = Vec::new();
        for kv in tree.scan_prefix([b's']) {
            let (k, _) = kv?;
            let Some(zero) = k.iter().position(|b| *b == 0) else {
                continue;
            };
            if k.len() == zero + 1 + 4 + ENTRY_LEN && epoch_after(&k, zero + 1) == Some(epoch) {
                due.push(k);
            }
        }
        for chunk in due.chunks(DROP_BATCH) {
            self.write_in(tree, |t| {
                for k in chunk {
                    t.remove(k)?;
                }
                Ok(())
            })
            .await?;
        }
        let marks = [b'c', b'q', b'k']
            .iter()
            .map(|tag| epoch_key(*tag, epoch))
            .collect();
        self.remove_batches(
            tree,
            vec![epoch_key(b'f', epoch), epoch_key(b'p', epoch)],
            marks,
        )
        .await
    }

    /// Removes every key under each of `prefixes`, in transactions of
    /// [`DROP_BATCH`] keys, then the single keys `marks`.
    async fn remove_batches(
        &self,
        tree: &sled::Tree,
        prefixes: Vec<Vec<u8>>,
        marks: Vec<Vec<u8>>,
    ) -> Result<(), StoreError> {
        for prefix in prefixes {
            loop {
                let mut due = Vec::with_capacity(DROP_BATCH);
                for kv in tree.scan_prefix(&prefix).take(DROP_BATCH) {
                    due.push(kv?.0);
                }
                if due.is_empty() {
                    break;
                }
                self.write_in(tree, |t| {
                    for k in &due {
                        t.remove(k)?;
                    }
                    Ok(())
                })
                .await?;
            }
        }
        // Last: until they go, the epoch is held, and the next pass
        // finishes what a crash cut short.
        self.write_in(tree, |t| {
            for k in &marks {
                t.remove(k.as_slice())?;
            }
            Ok(())
        })
        .await
    }
}
