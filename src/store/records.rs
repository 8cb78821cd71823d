//! Reading records: the indexes say where a frame is, the record log holds
//! it (the OS page cache serves repeated reads; the store keeps no cache).

use super::index::IdLookup;
use super::record_log::{Frame, FrameContent};
use super::{Content, Store, StoreError, StoredRecord, keys};
use crate::records::model::NodeId;

/// The records of a store: see [`Store::records`]. Reads are here; writes
/// (own appends, received records, purges) in `writes`, cursors in
/// `cursors`.
#[derive(Clone, Copy)]
pub struct Records<'a> {
    pub(super) store: &'a Store,
}

impl Records<'_> {
    pub(super) fn read_frame(&self, at: u64) -> Result<Frame, StoreError> {
        let _frames = self
            .store
            .log
            .frames
            .read()
            .map_err(|_| StoreError::Poisoned)?;
        self.store.log.file.read(at)
    }

    /// The record a frame holds, its content as the store means it now: a
    /// purge in progress already counts, a tombstone kept in sled is fetched.
    pub(super) fn stored(&self, frame: Frame) -> Result<StoredRecord, StoreError> {
        let content = match frame.content {
            FrameContent::Held(Content::Envelope(bytes)) => {
                let purging = self
                    .store
                    .purging
                    .lock()
                    .map_err(|_| StoreError::Poisoned)?;
                match purging.is_empty() {
                    true => Content::Envelope(bytes),
                    false => {
                        let key = keys::record_key(frame.head.origin.as_str(), frame.head.seq);
                        match purging.get(&key) {
                            Some(t) => Content::Tombstone(t.clone()),
                            None => Content::Envelope(bytes),
                        }
                    }
                }
            }
            FrameContent::Held(c) => c,
            FrameContent::TombstoneElsewhere => {
                let key = keys::record_key(frame.head.origin.as_str(), frame.head.seq);
                match self.store.trees.tombstones.get(&key)? {
                    Some(t) => Content::Tombstone(t.to_vec()),
                    None => {
                        return Err(StoreError::Corrupt(format!(
                            "tombstone of {}#{} is missing",
                            frame.head.origin, frame.head.seq
                        )));
                    }
                }
            }
        };
        Ok(StoredRecord {
            origin: frame.head.origin,
            seq: frame.head.seq,
            position: frame.head.position,
            content,
        })
    }

    /// Offset of the frame of `origin`/`seq`, if held (durable or not).
    pub(super) fn offset_of(&self, origin: &NodeId, seq: u64) -> Result<Option<u64>, StoreError> {
        let index = self.store.index.read().map_err(|_| StoreError::Poisoned)?;
        Ok(index.offset(origin, seq))
    }

    /// The frame of the record with id `record_id`, if held (durable or not).
    pub(super) fn frame_by_id(&self, record_id: &str) -> Result<Option<Frame>, StoreError> {
        let (position, exact) = {
            let index = self.store.index.read().map_err(|_| StoreError::Poisoned)?;
            match index.lookup_id(record_id) {
                IdLookup::Exact(p) => (p, true),
                IdLookup::Candidate(p) => (p, false),
                IdLookup::Absent => return Ok(None),
            }
        };
        let Some(at) = self
            .store
            .index
            .read()
            .map_err(|_| StoreError::Poisoned)?
            .arrival(position)
        else {
            return Err(StoreError::Corrupt(format!(
                "record id {record_id} points at a missing arrival"
            )));
        };
        let frame = self.read_frame(at)?;
        if frame.head.record_id == record_id {
            return Ok(Some(frame));
        }
        if exact {
            return Err(StoreError::Corrupt(format!(
                "record id {record_id} points at another record"
            )));
        }
        // Another id with the same hash. Ours, if held, is in the exact map.
        Ok(None)
    }

    /// Whether a record with id `record_id` is held (durable or not).
    pub(super) fn id_held(&self, record_id: &str) -> Result<bool, StoreError> {
        Ok(self.frame_by_id(record_id)?.is_some())
    }

    /// Records of `origin` with `after < seq <= up_to`, ascending, at most `limit`.
    pub(crate) fn of_origin(
        &self,
        origin: &NodeId,
        after: u64,
        up_to: u64,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        if after >= up_to {
            return Ok(Vec::new());
        }
        let offsets = self
            .store
            .index
            .read()
            .map_err(|_| StoreError::Poisoned)?
            .range(origin, after, up_to, limit);
        let _frames = self
            .store
            .log
            .frames
            .read()
            .map_err(|_| StoreError::Poisoned)?;
        offsets
            .iter()
            .map(|&at| self.stored(self.store.log.file.read(at)?))
            .collect()
    }

    /// Highest sequence number held for `origin` (0: none). Only the
    /// store's tests ask: the node reads its cursors instead.
    #[cfg(test)]
    pub(crate) fn last_seq(&self, origin: &NodeId) -> Result<u64, StoreError> {
        Ok(self
            .store
            .index
            .read()
            .map_err(|_| StoreError::Poisoned)?
            .last_seq(origin))
    }

    /// Number of records held for `origin`.
    pub fn count(&self, origin: &NodeId) -> usize {
        self.store.index.read().map_or(0, |ix| ix.count(origin))
    }

    /// One record by its id, if held and durable.
    pub fn get_by_id(&self, record_id: &str) -> Result<Option<StoredRecord>, StoreError> {
        let Some(frame) = self.frame_by_id(record_id)? else {
            return Ok(None);
        };
        let r = self.stored(frame)?;
        Ok((r.position <= self.store.watermark().arrival).then_some(r))
    }

    /// Durable records in arrival order after `after_position`, at most
    /// `limit` examined; optionally only those of one origin.
    /// Returns the records and the last position examined.
    pub fn list(
        &self,
        after_position: u64,
        limit: usize,
        origin: Option<&NodeId>,
    ) -> Result<(Vec<StoredRecord>, u64), StoreError> {
        let durable = self.store.watermark().arrival;
        if after_position >= durable {
            return Ok((Vec::new(), after_position));
        }
        let last = durable.min(after_position.saturating_add(limit as u64));
        let offsets: Vec<u64> = {
            let index = self.store.index.read().map_err(|_| StoreError::Poisoned)?;
            (after_position + 1..=last)
                .map(|p| {
                    index
                        .arrival(p)
                        .ok_or_else(|| StoreError::Corrupt(format!("arrival {p} is missing")))
                })
                .collect::<Result<_, _>>()?
        };
        let mut out = Vec::new();
        {
            let _frames = self
                .store
                .log
                .frames
                .read()
                .map_err(|_| StoreError::Poisoned)?;
            for &at in &offsets {
                let frame = self.store.log.file.read(at)?;
                if origin.is_some_and(|want| *want != frame.head.origin) {
                    continue;
                }
                out.push(self.stored(frame)?);
            }
        }
        let last = if offsets.is_empty() {
            after_position
        } else {
            last
        };
        Ok((out, last))
    }

    /// Total number of records held.
    pub fn len(&self) -> usize {
        self.store.index.read().map_or(0, |ix| ix.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the record `origin`/`seq` is held (content or tombstone).
    pub fn contains(&self, origin: &NodeId, seq: u64) -> Result<bool, StoreError> {
        Ok(self.offset_of(origin, seq)?.is_some())
    }

    /// Records whose content expires at or before `now_ms`, oldest first,
    /// at most `limit`. They stay due until purged.
    pub fn expired(&self, now_ms: i64, limit: usize) -> Result<Vec<StoredRecord>, StoreError> {
        let due = self
            .store
            .expiring
            .lock()
            .map_err(|_| StoreError::Poisoned)?
            .due(now_ms, limit);
        let mut out = Vec::with_capacity(due.len());
        for (_, at) in due {
            let r = self.stored(self.read_frame(at)?)?;
            // A purge in progress already shows its tombstone.
            if r.content.envelope().is_some() {
                out.push(r);
            }
        }
        Ok(out)
    }
}
