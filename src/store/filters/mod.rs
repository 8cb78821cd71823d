//! Match filters (`docs/selectors.md`): this node's own identifiers and
//! their entries (`own_filter`, never replicated), and the filters of its
//! peers as their records built them (`peer_filters`). The store treats
//! identifiers as sealed bytes and entries as opaque 16-byte keys;
//! `crate::cases` composes them.
//!
//! `own_filter`:
//! - `i` ‖ source → the source's identifiers, sealed (a source is `case:<id>`
//!   or `alert:<series id>`; never contains a zero byte)
//! - `f` ‖ epoch BE ‖ entry ‖ source → the entry's confirmation tag: which
//!   sources hold an entry
//! - `s` ‖ source ‖ 0 ‖ epoch BE ‖ entry → empty: a source's entries
//! - `k` ‖ epoch BE → empty: the epoch's entries are built for every source
//! - `p` ‖ epoch BE ‖ entry → empty: entries published in filter records
//! - `c` ‖ epoch BE → empty: the epoch's first publication is complete
//! - `q` ‖ epoch BE → seq BE of the latest filter record of the epoch
//! - `Q` → seq BE: this node's own log is noted up to there (every filter
//!   record at or below it is in `p`, `c` and `q`)
//!
//! `peer_filters`:
//! - `e` ‖ origin ‖ epoch BE ‖ entry → empty
//! - `c` ‖ origin → seq BE: the origin's records read up to there
//! - `r` ‖ origin ‖ epoch BE → empty: the epoch's filter is complete
//! - `x` ‖ origin ‖ epoch BE → empty: entries of the epoch were dropped at
//!   the limit, so the epoch's filter is not whole here (and not used)
//! - `n` ‖ origin ‖ epoch BE → entries held, u64 BE
//! - `g` ‖ origin ‖ epoch BE → seq BE: the epoch is retired (any origin,
//!   this node too): its entries are gone, it takes none again, and the
//!   origin's filter records of it are purged up to that seq (`retired`)
//!
//! where origin is the length-prefixed id of `keys::origin_prefix`.

use std::collections::BTreeSet;

mod retired;

use super::{GATE, Store, StoreError, TxResult, keys, tx_error};
use crate::records::model::NodeId;
use crate::records::oprf::{ENTRY_LEN, Entry, Output, Tag};

/// One epoch's entry of a source.
pub type Keyed = (u32, Entry);

/// A change to one of the node's own sources: its sealed identifiers
/// (`None`: the source is gone), its entries before, and its entries
/// after with their confirmation tags.
#[derive(Debug, Clone, Default)]
pub struct OwnWrite {
    pub source: String,
    pub sealed: Option<Vec<u8>>,
    pub old: Vec<Keyed>,
    pub new: Vec<(u32, Output)>,
}

/// A peer's filter record, as the view applies it.
#[derive(Debug, Clone)]
pub struct PeerChange {
    pub epoch: u32,
    pub added: Vec<Entry>,
    pub removed: Vec<Entry>,
    pub complete: bool,
}

/// The match filters of a store: see [`Store::filters`].
#[derive(Clone, Copy)]
pub struct Filters<'a> {
    pub(super) store: &'a Store,
}

fn epoch_key(tag: u8, epoch: u32) -> Vec<u8> {
    let mut k = vec![tag];
    k.extend_from_slice(&epoch.to_be_bytes());
    k
}

fn entry_key(tag: u8, epoch: u32, entry: &Entry) -> Vec<u8> {
    let mut k = epoch_key(tag, epoch);
    k.extend_from_slice(&entry.0);
    k
}

fn source_key(source: &str) -> Vec<u8> {
    let mut k = vec![b'i'];
    k.extend_from_slice(source.as_bytes());
    k
}

fn source_entries_prefix(source: &str) -> Vec<u8> {
    let mut k = vec![b's'];
    k.extend_from_slice(source.as_bytes());
    k.push(0);
    k
}

fn holder_key(epoch: u32, entry: &Entry, source: &str) -> Vec<u8> {
    let mut k = entry_key(b'f', epoch, entry);
    k.extend_from_slice(source.as_bytes());
    k
}

fn own_entry_key(source: &str, epoch: u32, entry: &Entry) -> Vec<u8> {
    let mut k = source_entries_prefix(source);
    k.extend_from_slice(&epoch.to_be_bytes());
    k.extend_from_slice(&entry.0);
    k
}

fn peer_key(tag: u8, origin: &NodeId) -> Vec<u8> {
    let mut k = vec![tag];
    k.extend_from_slice(&keys::origin_prefix(origin.as_str()));
    k
}

fn peer_entry_key(origin: &NodeId, epoch: u32, entry: &Entry) -> Vec<u8> {
    let mut k = peer_key(b'e', origin);
    k.extend_from_slice(&epoch.to_be_bytes());
    k.extend_from_slice(&entry.0);
    k
}

fn peer_epoch_key(tag: u8, origin: &NodeId, epoch: u32) -> Vec<u8> {
    let mut k = peer_key(tag, origin);
    k.extend_from_slice(&epoch.to_be_bytes());
    k
}

fn u64_of(v: Option<sled::IVec>) -> u64 {
    v.and_then(|v| v.as_ref().try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

impl Filters<'_> {
    /// Runs `write` on the own filter in one transaction, then waits
    /// until it is durable.
    async fn write<F>(&self, write: F) -> Result<(), StoreError>
    where
        F: Fn(&sled::transaction::TransactionalTree) -> TxResult<()>,
    {
        self.write_in(&self.store.trees.own_filter, write).await
    }

    /// Runs `write` on `tree` in one transaction, then waits until it is
    /// durable.
    async fn write_in<F>(&self, tree: &sled::Tree, write: F) -> Result<(), StoreError>
    where
        F: Fn(&sled::transaction::TransactionalTree) -> TxResult<()>,
    {
        let store = self.store;
        let gate = GATE.lock().await;
        let generation = {
            let mut w = store.writer.lock().map_err(|_| StoreError::Poisoned)?;
            tree.transaction(|t| write(t)).map_err(tx_error)?;
            w.generation += 1;
            w.generation
        };
        drop(gate);
        store.make_durable(generation).await
    }

    // ----- own sources -----

    /// A source's sealed identifiers.
    pub fn own_source(&self, source: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .store
            .trees
            .own_filter
            .get(source_key(source))?
            .map(|v| v.to_vec()))
    }

    /// Every source and its sealed identifiers.
    pub fn own_sources(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.store.trees.own_filter.scan_prefix([b'i']) {
            let (k, v) = kv?;
            let source = String::from_utf8_lossy(&k[1..]).into_owned();
            out.push((source, v.to_vec()));
        }
        Ok(out)
    }

    /// A source's entries, every epoch.
    pub fn own_entries_of(&self, source: &str) -> Result<Vec<Keyed>, StoreError> {
        let prefix = source_entries_prefix(source);
        let mut out = Vec::new();
        for kv in self.store.trees.own_filter.scan_prefix(&prefix) {
            let (k, _) = kv?;
            let rest = &k[prefix.len()..];
            if rest.len() == 4 + ENTRY_LEN {
                let epoch = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
                if let Some(e) = Entry::from_slice(&rest[4..]) {
                    out.push((epoch, e));
                }
            }
        }
        Ok(out)
    }

    /// The sources that hold `entry` of `epoch` with confirmation tag
    /// `tag`.
    pub fn own_holders(
        &self,
        epoch: u32,
        entry: &Entry,
        tag: &Tag,
    ) -> Result<Vec<String>, StoreError> {
        let prefix = entry_key(b'f', epoch, entry);
        let mut out = Vec::new();
        for kv in self.store.trees.own_filter.scan_prefix(&prefix) {
            let (k, v) = kv?;
            if v.as_ref() == tag.0 {
                out.push(String::from_utf8_lossy(&k[prefix.len()..]).into_owned());
            }
        }
        Ok(out)
    }

    /// Writes the changes of sources in one durable step: their sealed
    /// identifiers and entries. `only_if` (for a rebuild) skips a source
    /// whose sealed bytes are no longer those given.
    pub async fn put_own(
        &self,
        writes: &[OwnWrite],
        only_if_unchanged: bool,
    ) -> Result<(), StoreError> {
        self.write(|t| {
            for w in writes {
                if only_if_unchanged {
                    let now = t.get(source_key(&w.source))?;
                    if now.as_deref() != w.sealed.as_deref() {
                        continue;
                    }
                }
                Self::apply_own(t, w)?;
            }
            Ok(())
        })
        .await
    }

    pub(super) fn apply_own(
        t: &sled::transaction::TransactionalTree,
        w: &OwnWrite,
    ) -> TxResult<()> {
        for (epoch, e) in &w.old {
            t.remove(holder_key(*epoch, e, &w.source))?;
            t.remove(own_entry_key(&w.source, *epoch, e))?;
        }
        match &w.sealed {
            Some(s) => {
                t.insert(source_key(&w.source), s.as_slice())?;
            }
            None => {
                t.remove(source_key(&w.source))?;
            }
        }
        for (epoch, o) in &w.new {
            t.insert(holder_key(*epoch, &o.entry, &w.source), &o.tag.0)?;
            t.insert(own_entry_key(&w.source, *epoch, &o.entry), &[])?;
        }
        Ok(())
    }

    /// Whether the entries of `epoch` are built for every source.
    pub fn epoch_built(&self, epoch: u32) -> Result<bool, StoreError> {
        Ok(self
            .store
            .trees
            .own_filter
            .contains_key(epoch_key(b'k', epoch))?)
    }

    /// Marks the entries of `epoch` as built for every source.
    pub async fn mark_built(&self, epoch: u32) -> Result<(), StoreError> {
        self.write(|t| {
            t.insert(epoch_key(b'k', epoch), &[])?;
            Ok(())
        })
        .await
    }

    /// What this node's filter of `epoch` lacks and holds too many of, as
    /// published: (entries to add, entries to remove), sorted.
    pub fn own_unpublished(&self, epoch: u32) -> Result<(Vec<Entry>, Vec<Entry>), StoreError> {
        let tree = &self.store.trees.own_filter;
        let mut held = BTreeSet::new();
        let prefix = epoch_key(b'f', epoch);
        for kv in tree.scan_prefix(&prefix) {
            let (k, _) = kv?;
            if let Some(e) = k.get(5..5 + ENTRY_LEN).and_then(Entry::from_slice) {
                held.insert(e);
            }
        }
        let mut published = BTreeSet::new();
        for kv in tree.scan_prefix(epoch_key(b'p', epoch)) {
            let (k, _) = kv?;
            if let Some(e) = k.get(5..5 + ENTRY_LEN).and_then(Entry::from_slice) {
                published.insert(e);
            }
        }
        Ok((
            held.difference(&published).copied().collect(),
            published.difference(&held).copied().collect(),
        ))
    }

    /// Up to which seq of its own log this node noted its filter records.
    pub fn own_noted_seq(&self) -> Result<u64, StoreError> {
        Ok(u64_of(self.store.trees.own_filter.get([b'Q'])?))
    }

    /// Notes this node's own log as read up to `seq` (no filter record
    /// left to note below it).
    pub async fn note_own_up_to(&self, seq: u64) -> Result<(), StoreError> {
        self.write(|t| {
            if u64_of(t.get([b'Q'])?) < seq {
                t.insert(b"Q", &seq.to_be_bytes())?;
            }
            Ok(())
        })
        .await
    }

    /// Whether the first publication of `epoch` is complete.
    pub fn own_complete(&self, epoch: u32) -> Result<bool, StoreError> {
        Ok(self
            .store
            .trees
            .own_filter
            .contains_key(epoch_key(b'c', epoch))?)
    }

    /// The seq of this node's latest filter record of `epoch` (0: none).
    pub fn own_filter_seq(&self, epoch: u32) -> Result<u64, StoreError> {
        Ok(u64_of(
            self.store.trees.own_filter.get(epoch_key(b'q', epoch))?,
        ))
    }

    /// Notes a filter record (number `seq`) as published, once durable.
    pub async fn mark_published(
        &self,
        epoch: u32,
        seq: u64,
        added: &[Entry],
        removed: &[Entry],
        complete: bool,
    ) -> Result<(), StoreError> {
        self.write(|t| {
            t.insert(epoch_key(b'q', epoch), &seq.to_be_bytes())?;
            if u64_of(t.get([b'Q'])?) < seq {
                t.insert(b"Q", &seq.to_be_bytes())?;
            }
            for e in added {
                t.insert(entry_key(b'p', epoch, e), &[])?;
            }
            for e in removed {
                t.remove(entry_key(b'p', epoch, e))?;
            }
            if complete {
                t.insert(epoch_key(b'c', epoch), &[])?;
            }
            Ok(())
        })
        .await
    }

    // ----- peers' filters -----

    /// Up to which seq the view has read `origin`'s records.
    pub fn peer_cursor(&self, origin: &NodeId) -> Result<u64, StoreError> {
        Ok(u64_of(
            self.store.trees.peer_filters.get(peer_key(b'c', origin))?,
        ))
    }

    /// How many entries of `origin` the view holds, every epoch.
    pub fn peer_count(&self, origin: &NodeId) -> Result<u64, StoreError> {
        let mut n = 0;
        for kv in self
            .store
            .trees
            .peer_filters
            .scan_prefix(peer_key(b'n', origin))
        {
            n += u64_of(Some(kv?.1));
        }
        Ok(n)
    }

    /// Applies `origin`'s filter records read up to `up_to`, in order, in
    /// one durable step. Additions beyond `max_entries` held for one epoch
    /// of the origin are dropped, and that epoch is then never complete
    /// here; returns how many were dropped.
    pub async fn apply_peer(
        &self,
        origin: &NodeId,
        up_to: u64,
        changes: &[PeerChange],
        max_entries: u64,
    ) -> Result<u64, StoreError> {
        let store = self.store;
        let gate = GATE.lock().await;
        let (generation, dropped) = {
            let mut w = store.writer.lock().map_err(|_| StoreError::Poisoned)?;
            let dropped = store
                .trees
                .peer_filters
                .transaction(|t| {
                    let mut dropped = 0u64;
                    for c in changes {
                        // A retired epoch takes no entries again.
                        if t.get(peer_epoch_key(b'g', origin, c.epoch))?.is_some() {
                            continue;
                        }
                        let n_key = peer_epoch_key(b'n', origin, c.epoch);
                        let mut count = u64_of(t.get(&n_key)?);
                        for e in &c.removed {
                            if t.remove(peer_entry_key(origin, c.epoch, e))?.is_some() {
                                count = count.saturating_sub(1);
                            }
                        }
                        let mut cut = false;
                        for e in &c.added {
                            if count >= max_entries {
                                dropped += 1;
                                cut = true;
                                continue;
                            }
                            if t.insert(peer_entry_key(origin, c.epoch, e), &[])?.is_none() {
                                count += 1;
                            }
                        }
                        t.insert(n_key, &count.to_be_bytes())?;
                        if cut {
                            t.insert(peer_epoch_key(b'x', origin, c.epoch), &[])?;
                        }
                        if c.complete {
                            t.insert(peer_epoch_key(b'r', origin, c.epoch), &[])?;
                        }
                    }
                    t.insert(peer_key(b'c', origin), &up_to.to_be_bytes())?;
                    Ok(dropped)
                })
                .map_err(tx_error)?;
            w.generation += 1;
            (w.generation, dropped)
        };
        drop(gate);
        store.make_durable(generation).await?;
        Ok(dropped)
    }

    /// Whether `origin`'s filter of `epoch` holds `entry`.
    pub fn peer_holds(
        &self,
        origin: &NodeId,
        epoch: u32,
        entry: &Entry,
    ) -> Result<bool, StoreError> {
        Ok(self
            .store
            .trees
            .peer_filters
            .contains_key(peer_entry_key(origin, epoch, entry))?)
    }

    /// The epochs of `origin`'s filter that are complete here (published
    /// whole, and none of it dropped at the limit), ascending.
    pub fn peer_complete_epochs(&self, origin: &NodeId) -> Result<Vec<u32>, StoreError> {
        let tree = &self.store.trees.peer_filters;
        let prefix = peer_key(b'r', origin);
        let mut out = Vec::new();
        for kv in tree.scan_prefix(&prefix) {
            let (k, _) = kv?;
            if let Some(b) = k.get(prefix.len()..prefix.len() + 4) {
                let epoch = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                if !tree.contains_key(peer_epoch_key(b'x', origin, epoch))? {
                    out.push(epoch);
                }
            }
        }
        Ok(out)
    }
}
