//! This node's own identifiers and its match filter.
//!
//! The identifiers an agency gives with a local case or an alert (its
//! *sources*) are normalised, sealed under the node's local key
//! ([`LocalKey`]) and stored with their filter entries under every OPRF key
//! the node holds, in one transaction with the case. The filter published
//! to the members is what the entries of the epochs the roster lists for
//! this node add up to: the node publishes the difference from what it
//! published before as `MatchFilter` records (`crate::node` does, by
//! [`CaseIndex::filter_changes`] and [`CaseIndex::filter_published`]),
//! the first publication of an epoch marked complete.
//!
//! Sealing the values lets the node compute the entries under a new key
//! on its own when the key rotates ([`CaseIndex::build_epochs`]); the ADR
//! `0016-per-member-oprf-keys` says why this and not asking agencies to
//! send everything again. Clear values never leave the node, and are
//! never stored unsealed or logged.

use serde::{Deserialize, Serialize};

use super::CaseIndex;
use super::retire::retired;
use crate::records::filter::{MAX_ENTRIES_PER_RECORD, MatchFilter};
use crate::records::oprf::{Entry, OprfError, Output, SecretKey};
use crate::records::sealed::SealError;
use crate::records::vocabulary::SelectorKind;
use crate::store::{OwnWrite, StoreError};

/// A normalised identifier of this node's own.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Identifier {
    pub kind: SelectorKind,
    /// The normalised form (`records::selector::normalise`).
    pub value: String,
}

pub use crate::records::oprf::KeyRing as OprfKeys;

/// Why this node's own filter could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum OwnError {
    #[error(transparent)]
    Oprf(#[from] OprfError),
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The sealed form of a source's identifiers.
fn seal(ring: &OprfKeys, source: &str, ids: &[Identifier]) -> Result<Vec<u8>, SealError> {
    let plain = serde_json::to_vec(ids).map_err(|_| SealError::Open)?;
    ring.local().seal(source.as_bytes(), &plain)
}

/// A source's identifiers, opened.
fn open(ring: &OprfKeys, source: &str, sealed: &[u8]) -> Result<Vec<Identifier>, SealError> {
    let plain = ring.local().open(source.as_bytes(), sealed)?;
    serde_json::from_slice(&plain).map_err(|_| SealError::Open)
}

/// The entries (with their tags) of `ids` under the key of each epoch in
/// `epochs`.
fn entries(
    ring: &OprfKeys,
    ids: &[Identifier],
    epochs: &[u32],
) -> Result<Vec<(u32, Output)>, OprfError> {
    let mut out = Vec::new();
    for key in ring.keys().iter().filter(|k| epochs.contains(&k.epoch())) {
        for id in ids {
            out.push((key.epoch(), key.output(id.kind, &id.value)?));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The source id of a local case.
pub fn case_source(case_id: &str) -> String {
    format!("case:{case_id}")
}

/// The source id of an alert series.
pub fn alert_source(series_id: &str) -> String {
    format!("alert:{series_id}")
}

impl CaseIndex {
    /// The epochs whose filter this node publishes: the keys it holds that
    /// its roster entry lists with the same public key, ascending.
    pub fn active_epochs(&self) -> Vec<u32> {
        let Some(oprf) = &self.oprf else {
            return Vec::new();
        };
        let roster = self.trust.roster();
        let Some(me) = roster.member(&self.id) else {
            return Vec::new();
        };
        oprf.keys()
            .iter()
            .filter(|k| me.oprf_key(k.epoch()) == Some(&k.public()))
            .map(SecretKey::epoch)
            .collect()
    }

    /// The epochs this node keys its identifiers under: every key it
    /// holds but those the roster retired for it (`store::filters`,
    /// "retired"), ascending.
    pub(crate) fn keyed_epochs(&self) -> Vec<u32> {
        let Some(oprf) = &self.oprf else {
            return Vec::new();
        };
        let roster = self.trust.roster();
        oprf.epochs()
            .into_iter()
            .filter(|e| !roster.member(&self.id).is_some_and(|m| retired(m, *e)))
            .collect()
    }

    /// The lock a write of `source`'s identifiers holds from reading what
    /// the source has to writing what it gets, so that two writes of one
    /// source cannot both remove the same old entries and both add their
    /// own (the first one's would stay, and confirm an identifier the
    /// source no longer has).
    pub(crate) fn own_lock(&self, source: &str) -> &tokio::sync::Mutex<()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        source.hash(&mut h);
        &self.own_locks[(h.finish() % self.own_locks.len() as u64) as usize]
    }

    /// Every [`CaseIndex::own_lock`], in order: no write of this node's
    /// own identifiers is in flight while they are held.
    pub(crate) async fn all_own_locks(&self) -> Vec<tokio::sync::MutexGuard<'_, ()>> {
        let mut all = Vec::with_capacity(self.own_locks.len());
        for lock in &self.own_locks {
            all.push(lock.lock().await);
        }
        all
    }

    /// The write that gives `source` the identifiers `ids` (`None`: the
    /// source goes), with its entries under every key this node keys
    /// ([`CaseIndex::keyed_epochs`]). `None` if the node has no OPRF key,
    /// or nothing would change. The caller holds [`CaseIndex::own_lock`]
    /// until the write is stored.
    pub(crate) fn own_write(
        &self,
        source: &str,
        ids: Option<&[Identifier]>,
    ) -> Result<Option<OwnWrite>, OwnError> {
        let Some(oprf) = &self.oprf else {
            return Ok(None);
        };
        let filters = self.store.filters();
        let old = filters.own_entries_of(source)?;
        let (sealed, new) = match ids {
            Some(ids) if !ids.is_empty() => {
                let mut ids = ids.to_vec();
                ids.sort();
                ids.dedup();
                (
                    Some(seal(oprf, source, &ids)?),
                    entries(oprf, &ids, &self.keyed_epochs())?,
                )
            }
            _ => (None, Vec::new()),
        };
        if sealed.is_none() && old.is_empty() && filters.own_source(source)?.is_none() {
            return Ok(None);
        }
        Ok(Some(OwnWrite {
            source: source.to_owned(),
            sealed,
            old,
            new,
        }))
    }

    /// Gives `source` (an alert's) the identifiers `ids`, durably, and
    /// wakes the filter's publisher.
    pub(crate) async fn put_own_source(
        &self,
        source: &str,
        ids: Option<&[Identifier]>,
    ) -> Result<(), OwnError> {
        let _one = self.own_lock(source).lock().await;
        if let Some(w) = self.own_write(source, ids)? {
            self.store.filters().put_own(&[w], false).await?;
            self.filter_dirty
                .store(true, std::sync::atomic::Ordering::SeqCst);
            self.filter_changed.notify_one();
        }
        Ok(())
    }

    /// Computes the entries of every source under each key whose epoch is
    /// not built yet (a key just added: a rotation, or the move from the
    /// shared key), then marks it built. Sources are opened with the
    /// local key; one that does not open is reported and left out.
    pub async fn build_epochs(&self) -> Result<(), OwnError> {
        let Some(oprf) = &self.oprf else {
            return Ok(());
        };
        let filters = self.store.filters();
        let keyed = self.keyed_epochs();
        for key in oprf.keys() {
            let epoch = key.epoch();
            if !keyed.contains(&epoch) || filters.epoch_built(epoch)? {
                continue;
            }
            let sources = filters.own_sources()?;
            let mut writes = Vec::new();
            let mut unreadable = 0usize;
            for (source, sealed) in sources {
                let ids = match open(oprf, &source, &sealed) {
                    Ok(ids) => ids,
                    Err(_) => {
                        unreadable += 1;
                        continue;
                    }
                };
                let new = entries(oprf, &ids, &[epoch])?;
                writes.push(OwnWrite {
                    source,
                    sealed: Some(sealed),
                    old: Vec::new(),
                    new,
                });
                if writes.len() >= 1024 {
                    filters.put_own(&std::mem::take(&mut writes), true).await?;
                }
            }
            filters.put_own(&writes, true).await?;
            filters.mark_built(epoch).await?;
            if unreadable > 0 {
                tracing::error!(
                    epoch,
                    unreadable,
                    "identifiers of some sources do not open with oprf.identifiers_key: they are not in the filter of this epoch; was the key replaced?"
                );
            } else {
                tracing::info!(
                    epoch,
                    "own identifiers keyed under the OPRF key of this epoch"
                );
            }
        }
        Ok(())
    }

    /// The filter records this node owes its peers: per active epoch, the
    /// entries it holds and has not published, and those it published and
    /// no longer holds, in records of at most
    /// [`MAX_ENTRIES_PER_RECORD`] each way; the last record of an epoch
    /// not yet complete completes it.
    pub fn filter_changes(&self) -> Result<Vec<MatchFilter>, StoreError> {
        let filters = self.store.filters();
        let mut out = Vec::new();
        for epoch in self.active_epochs() {
            if !filters.epoch_built(epoch)? {
                continue;
            }
            let (added, removed) = filters.own_unpublished(epoch)?;
            let complete = filters.own_complete(epoch)?;
            if added.is_empty() && removed.is_empty() && complete {
                continue;
            }
            let chunks = added
                .len()
                .max(removed.len())
                .div_ceil(MAX_ENTRIES_PER_RECORD)
                .max(1);
            for i in 0..chunks {
                let part = |v: &[Entry]| -> Vec<Entry> {
                    v.iter()
                        .skip(i * MAX_ENTRIES_PER_RECORD)
                        .take(MAX_ENTRIES_PER_RECORD)
                        .copied()
                        .collect()
                };
                out.push(MatchFilter {
                    epoch,
                    added: part(&added),
                    removed: part(&removed),
                    complete: !complete && i + 1 == chunks,
                });
            }
        }
        Ok(out)
    }

    /// Notes a filter record (number `seq` of this node's log) as
    /// published, once it is durable.
    pub async fn filter_published(&self, f: &MatchFilter, seq: u64) -> Result<(), StoreError> {
        self.store
            .filters()
            .mark_published(f.epoch, seq, &f.added, &f.removed, f.complete)
            .await
    }

    /// Wakes whoever publishes the filter (after a change made elsewhere).
    pub fn filter_waker(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.filter_changed.clone()
    }
}
