//! Writing records (the write half of [`Records`]): appends to this node's
//! own log and its floor after a recovery, records received from
//! peers, purges at expiry.
//!
//! A record write goes in two phases, both under the store's `appender`
//! lock, which serialises record writes: first (outside the gate) its
//! numbers are chosen, its frames appended to the record log and synced;
//! then (inside the gate) one sled transaction writes the rest with the
//! log's new committed length, and the indexes learn the frames. Then the
//! writer waits for a shared sled flush. Keeping the log's `fdatasync`
//! outside the gate lets it overlap the previous write's sled flush.

use sled::Transactional;

use super::audit::{Chained, put_audit};
use super::{
    Applied, Content, GATE, NewRecord, Records, StoreError, StoredRecord, TxResult, WriterState,
    keys, meta, tx_error,
};
use super::{publish_keys, record_log};
use crate::records::model::NodeId;

/// A record write prepared under the appender lock.
struct PendingWrite<'a> {
    origin: &'a NodeId,
    seq: u64,
    position: u64,
    record: &'a NewRecord,
}

impl<'a> PendingWrite<'a> {
    fn new(origin: &'a NodeId, seq: u64, position: u64, record: &'a NewRecord) -> Self {
        Self {
            origin,
            seq,
            position,
            record,
        }
    }

    /// When the content expires, if it is held (a tombstone has nothing
    /// left to purge).
    fn expires_at_ms(&self) -> Option<i64> {
        match self.record.content {
            Content::Envelope(_) => self.record.expires_at_ms,
            Content::Tombstone(_) => None,
        }
    }

    /// Whether the series state goes into the frame: that of the series
    /// the record opens (its id is the record's). Later states go to sled.
    fn state_in_frame(&self) -> bool {
        self.record
            .series
            .as_ref()
            .is_some_and(|s| s.series_id == self.record.record_id)
    }

    fn head(&self) -> record_log::Head {
        record_log::Head {
            origin: self.origin.clone(),
            seq: self.seq,
            position: self.position,
            record_id: self.record.record_id.clone(),
            expires_at_ms: self.expires_at_ms(),
            series_state: match (&self.record.series, self.state_in_frame()) {
                (Some(s), true) => Some(s.state.clone()),
                _ => None,
            },
            v2: false,
        }
    }
}

/// Frames appended and synced, not yet committed.
struct Appended {
    /// The log's length with them.
    end: u64,
    /// Offset of each frame.
    offsets: Vec<u64>,
}

impl Records<'_> {
    /// Own appends and received records, as the writer sees them now:
    /// next own seq, next arrival position, log end.
    fn positions(&self) -> Result<(u64, u64, u64), StoreError> {
        let w = self.store.writer.lock().map_err(|_| StoreError::Poisoned)?;
        Ok((w.own_seq, w.next_arrival, w.log_end))
    }

    /// Appends to this node's own log, with its audit entry.
    /// `make` receives the next gapless sequence number and returns the
    /// record to store and the body of the audit entry that records it; it
    /// runs under the appender lock, so no other record of this node is
    /// written between what it reads (series state) and what it returns.
    /// Returns once the record and its entry are durable.
    pub(crate) async fn append_own<E>(
        &self,
        make: impl FnOnce(u64) -> Result<(NewRecord, Vec<u8>), E>,
    ) -> Result<Result<StoredRecord, E>, StoreError> {
        self.append_own_many(vec![make])
            .await?
            .pop()
            .ok_or_else(|| StoreError::NoOutcome)
    }

    /// Appends several records to this node's own log, each with its audit
    /// entry, in one transaction and one flush: concurrent publishes share
    /// the cost of a transaction as well as that of a flush. Each maker is
    /// called, in order, with the next free sequence number; one that
    /// fails gets its error back and uses no number. Returns each maker's
    /// outcome once the records written are durable.
    pub(crate) async fn append_own_many<E, F>(
        &self,
        makers: Vec<F>,
    ) -> Result<Vec<Result<StoredRecord, E>>, StoreError>
    where
        F: FnOnce(u64) -> Result<(NewRecord, Vec<u8>), E>,
    {
        let appender = self.store.appender.lock().await;
        let (own_seq, first_position, log_end) = self.positions()?;
        // Per maker: its sequence number, record and audit entry body.
        type Made<E> = Result<(u64, NewRecord, Vec<u8>), E>;
        let mut made: Vec<Made<E>> = Vec::with_capacity(makers.len());
        let mut seq = own_seq;
        for make in makers {
            match make(seq + 1) {
                Ok((record, entry)) => {
                    seq += 1;
                    made.push(Ok((seq, record, entry)));
                }
                Err(e) => made.push(Err(e)),
            }
        }
        let mut writes = Vec::new();
        let mut bodies = Vec::new();
        let mut position = first_position;
        for (seq, record, entry) in made.iter().flatten() {
            if self.id_held(&record.record_id)?
                || writes
                    .iter()
                    .any(|p: &PendingWrite<'_>| p.record.record_id == record.record_id)
            {
                return Err(StoreError::DuplicateRecordId(record.record_id.clone()));
            }
            writes.push(PendingWrite::new(&self.store.own, *seq, position, record));
            bodies.push(entry.clone());
            position += 1;
        }
        let mut generation = 0;
        if !writes.is_empty() {
            let appended = self.append(log_end, &writes)?;
            let gate = GATE.lock().await;
            let mut w = self.store.writer.lock().map_err(|_| StoreError::Poisoned)?;
            let entries = w.chain(bodies);
            self.commit(&mut w, &writes, appended, None, &entries)?;
            w.advance_audit(&entries);
            w.own_seq = seq;
            w.next_arrival = position;
            w.written.own_seq = seq;
            w.written.arrival = position - 1;
            w.generation += 1;
            generation = w.generation;
            drop(w);
            drop(gate);
        }
        drop(writes);
        drop(appender);
        let mut position = first_position;
        let outcomes: Vec<Result<StoredRecord, E>> = made
            .into_iter()
            .map(|m| {
                m.map(|(seq, record, _)| {
                    let stored = StoredRecord {
                        origin: self.store.own.clone(),
                        seq,
                        position,
                        content: record.content,
                    };
                    position += 1;
                    stored
                })
            })
            .collect();
        self.store.make_durable(generation).await?;
        Ok(outcomes)
    }

    /// Appends `count` records to this node's own log in one transaction and
    /// one flush, for bulk loads (migrations, benchmarks), with the audit
    /// entries that `audit` composes from the records' sequence numbers.
    /// `make` is called with each record's sequence number, in order.
    /// Returns the records' sequence numbers once all are durable.
    pub async fn append_own_batch<E>(
        &self,
        count: usize,
        mut make: impl FnMut(u64) -> Result<NewRecord, E>,
        audit: impl FnOnce(&[NewRecord]) -> Vec<Vec<u8>>,
    ) -> Result<Result<Vec<u64>, E>, StoreError> {
        let appender = self.store.appender.lock().await;
        let (own_seq, first_position, log_end) = self.positions()?;
        let mut records = Vec::with_capacity(count);
        for i in 0..count as u64 {
            match make(own_seq + 1 + i) {
                Ok(r) => records.push(r),
                Err(e) => return Ok(Err(e)),
            }
        }
        let mut writes = Vec::with_capacity(count);
        for (i, r) in records.iter().enumerate() {
            if self.id_held(&r.record_id)?
                || writes
                    .iter()
                    .any(|p: &PendingWrite<'_>| p.record.record_id == r.record_id)
            {
                return Err(StoreError::DuplicateRecordId(r.record_id.clone()));
            }
            let i = i as u64;
            writes.push(PendingWrite::new(
                &self.store.own,
                own_seq + 1 + i,
                first_position + i,
                r,
            ));
        }
        let bodies = audit(&records);
        let appended = self.append(log_end, &writes)?;
        let gate = GATE.lock().await;
        let generation = {
            let mut w = self.store.writer.lock().map_err(|_| StoreError::Poisoned)?;
            let entries = w.chain(bodies);
            self.commit(&mut w, &writes, appended, None, &entries)?;
            w.advance_audit(&entries);
            w.own_seq = own_seq + count as u64;
            w.next_arrival = first_position + count as u64;
            w.written.own_seq = w.own_seq;
            w.written.arrival = w.next_arrival - 1;
            w.generation += 1;
            w.generation
        };
        drop(gate);
        drop(appender);
        self.store.make_durable(generation).await?;
        Ok(Ok((1..=count as u64).map(|i| own_seq + i).collect()))
    }

    /// Phase one of a record write: the frames of `writes` appended at
    /// `log_end` in one write and synced. Nothing refers to them yet; if
    /// the commit does not follow, the next append overwrites them, or the
    /// next open cuts them off.
    fn append(&self, log_end: u64, writes: &[PendingWrite<'_>]) -> Result<Appended, StoreError> {
        let mut frames = Vec::new();
        let mut offsets = Vec::with_capacity(writes.len());
        for p in writes {
            offsets.push(log_end + frames.len() as u64);
            frames.extend_from_slice(&record_log::encode(&p.head(), &p.record.content)?);
        }
        if !frames.is_empty() {
            self.store.log.file.append(log_end, &frames)?;
        }
        Ok(Appended {
            end: log_end + frames.len() as u64,
            offsets,
        })
    }

    /// Phase two, under the gate: one transaction for the series states
    /// not in the frames, the publication keys, optionally a cursor, the
    /// audit entries that record them and the log's committed length; then
    /// the indexes.
    fn commit(
        &self,
        w: &mut WriterState,
        writes: &[PendingWrite<'_>],
        appended: Appended,
        cursor: Option<(&NodeId, u64)>,
        entries: &Chained,
    ) -> Result<(), StoreError> {
        let end_value = keys::u64_be(appended.end);
        // A state in a frame replaces one in sled (a series whose first
        // record arrives after a later one: never from an honest origin,
        // which numbers them in order, but the newest write must win).
        let mut superseded = Vec::new();
        for p in writes.iter().filter(|p| p.state_in_frame()) {
            if self
                .store
                .trees
                .series
                .contains_key(p.record.record_id.as_bytes())?
            {
                superseded.push(p.record.record_id.as_bytes());
            }
        }
        (
            &self.store.trees.cursors,
            &self.store.trees.series,
            &self.store.trees.audit,
            &self.store.trees.meta,
            &self.store.trees.publish_keys,
        )
            .transaction(|(cur, ser, aud, meta, keyed)| -> TxResult<()> {
                for p in writes {
                    match &p.record.series {
                        Some(s) if !p.state_in_frame() => {
                            ser.insert(s.series_id.as_bytes(), s.state.as_slice())?;
                        }
                        _ => {}
                    }
                    if let Some(k) = &p.record.publish_key {
                        keyed.insert(
                            k.as_slice(),
                            publish_keys::encode(&p.record.record_id, p.record.expires_at_ms),
                        )?;
                    }
                }
                for k in &superseded {
                    ser.remove(*k)?;
                }
                if let Some((origin, seq)) = cursor {
                    cur.insert(origin.as_str().as_bytes(), &keys::u64_be(seq))?;
                }
                put_audit(aud, entries)?;
                if !writes.is_empty() {
                    meta.insert(meta::LOG_END_KEY, &end_value)?;
                }
                Ok(())
            })
            .map_err(tx_error)?;
        w.log_end = appended.end;
        if let Some((origin, seq)) = cursor {
            w.cursors.insert(origin.clone(), seq);
        }
        let mut index = self.store.index.write().map_err(|_| StoreError::Poisoned)?;
        let mut expiring = self
            .store
            .expiring
            .lock()
            .map_err(|_| StoreError::Poisoned)?;
        for (p, at) in writes.iter().zip(appended.offsets) {
            index.insert(p.origin, p.seq, p.position, &p.record.record_id, at);
            if let Some(expires) = p.expires_at_ms() {
                expiring.insert(expires, at);
            }
        }
        Ok(())
    }

    /// Makes this node's next own sequence number follow `floor` at least,
    /// durably and with its audit entry: after a lost own log was recovered
    /// from the peers, numbers they saw must not be used again even where
    /// no peer returned the record.
    pub(crate) async fn raise_own_seq(
        &self,
        floor: u64,
        audit: Vec<u8>,
    ) -> Result<u64, StoreError> {
        let store = self.store;
        let gate = GATE.lock().await;
        let generation = {
            let mut w = store.writer.lock().map_err(|_| StoreError::Poisoned)?;
            let entries = w.chain(vec![audit]);
            let floor = floor.max(w.own_seq);
            (&store.trees.audit, &store.trees.meta)
                .transaction(|(aud, meta)| -> TxResult<()> {
                    put_audit(aud, &entries)?;
                    meta.insert(meta::OWN_SEQ_FLOOR_KEY, &keys::u64_be(floor))?;
                    Ok(())
                })
                .map_err(tx_error)?;
            w.advance_audit(&entries);
            w.own_seq = floor;
            w.written.own_seq = floor;
            w.generation += 1;
            w.generation
        };
        drop(gate);
        store.make_durable(generation).await?;
        Ok(store.watermark().own_seq)
    }

    /// Stores verified records received from `origin` and advances its
    /// cursor to `cursor` (never backwards), with the audit entries that
    /// `audit` composes from the records newly stored and the outcome, in
    /// one atomic, durable step.
    pub async fn apply_received(
        &self,
        origin: &NodeId,
        records: &[NewRecord],
        cursor: u64,
        audit: impl FnOnce(&[&NewRecord], &Applied) -> Vec<Vec<u8>>,
    ) -> Result<Applied, StoreError> {
        let mut applied = Applied::default();
        let appender = self.store.appender.lock().await;
        let (_, first_position, log_end) = self.positions()?;
        let mut writes: Vec<PendingWrite<'_>> = Vec::new();
        let mut position = first_position;
        for r in records {
            if let Some(at) = self.offset_of(origin, r.seq)? {
                let existing = self.stored(self.read_frame(at)?)?;
                let same = match (existing.content, &r.content) {
                    (Content::Envelope(a), Content::Envelope(b)) => a == *b,
                    // Purged here already: nothing left to compare.
                    (Content::Tombstone(_), _) | (_, Content::Tombstone(_)) => true,
                };
                if same {
                    applied.duplicates += 1;
                } else {
                    applied.conflicts.push(r.seq);
                }
                continue;
            }
            if self.id_held(&r.record_id)?
                || writes.iter().any(|w| w.record.record_id == r.record_id)
            {
                applied.conflicts.push(r.seq);
                continue;
            }
            writes.push(PendingWrite::new(origin, r.seq, position, r));
            position += 1;
        }
        let old_cursor = self.cursor(origin)?;
        let new_cursor = cursor.max(old_cursor);
        applied.stored = writes.len();
        let stored: Vec<&NewRecord> = writes.iter().map(|w| w.record).collect();
        let bodies = audit(&stored, &applied);
        if writes.is_empty() && new_cursor == old_cursor && bodies.is_empty() {
            return Ok(applied);
        }
        let appended = self.append(log_end, &writes)?;
        let gate = GATE.lock().await;
        let generation = {
            let mut w = self.store.writer.lock().map_err(|_| StoreError::Poisoned)?;
            let entries = w.chain(bodies);
            self.commit(
                &mut w,
                &writes,
                appended,
                Some((origin, new_cursor)),
                &entries,
            )?;
            w.advance_audit(&entries);
            w.next_arrival = position;
            w.written.arrival = position - 1;
            w.generation += 1;
            w.generation
        };
        drop(gate);
        drop(appender);
        self.store.make_durable(generation).await?;
        Ok(applied)
    }

    /// Replaces a record's content with `tombstone` and forgets its expiry,
    /// in one durable step; the content is then overwritten on disk.
    /// `expires_at_ms` is the expiry the record was stored with (it finds
    /// the sled entry of a record stored by schema version 2).
    ///
    /// Crash safety: the tombstone goes into sled (`tombstones`) in the
    /// transaction that removes the expiry and writes the audit entry; only
    /// once that is durable is the frame rewritten in place and synced. A
    /// crash in between leaves the frame holding the envelope (or torn);
    /// the next open finds the tombstone in sled and rewrites the frame.
    pub async fn purge(
        &self,
        origin: &NodeId,
        seq: u64,
        expires_at_ms: i64,
        tombstone: Vec<u8>,
        audit: Vec<u8>,
    ) -> Result<(), StoreError> {
        let key = keys::record_key(origin.as_str(), seq);
        let gate = GATE.lock().await;
        let (generation, at, frame) = {
            let mut w = self.store.writer.lock().map_err(|_| StoreError::Poisoned)?;
            let Some(at) = self.offset_of(origin, seq)? else {
                return Err(StoreError::Corrupt(format!(
                    "no record {origin}#{seq} to purge"
                )));
            };
            let frame = self.read_frame(at)?;
            // Where the expiry is: in the frame, or for a version 2 frame
            // in sled (its key's time is clamped at 0).
            let (expiry_ms, legacy) = match frame.head.expires_at_ms {
                Some(ms) => (Some(ms), None),
                None if frame.head.v2 => {
                    let k = keys::expiry_key(expires_at_ms, &key);
                    match self.store.trees.expiries.contains_key(&k)? {
                        true => (Some(expires_at_ms.max(0)), Some(k)),
                        false => (None, None),
                    }
                }
                None => (None, None),
            };
            let entries = w.chain(vec![audit]);
            let finished = &w.purged;
            (
                &self.store.trees.tombstones,
                &self.store.trees.expiries,
                &self.store.trees.audit,
            )
                .transaction(|(tomb, exp, aud)| -> TxResult<()> {
                    for k in finished.iter().filter(|k| **k != key) {
                        tomb.remove(k.as_slice())?;
                    }
                    tomb.insert(key.as_slice(), tombstone.as_slice())?;
                    if let Some(k) = &legacy {
                        exp.remove(k.as_slice())?;
                    }
                    put_audit(aud, &entries)?;
                    Ok(())
                })
                .map_err(tx_error)?;
            w.purged.clear();
            w.advance_audit(&entries);
            w.generation += 1;
            if let Some(ms) = expiry_ms {
                self.store
                    .expiring
                    .lock()
                    .map_err(|_| StoreError::Poisoned)?
                    .remove(ms, at);
            }
            self.store
                .purging
                .lock()
                .map_err(|_| StoreError::Poisoned)?
                .insert(key.clone(), tombstone.clone());
            (w.generation, at, frame)
        };
        drop(gate);
        self.store.make_durable(generation).await?;

        // The purge is durable: now take the content off the disk.
        let (rewrite, inline) = record_log::tombstone_frame(&frame, &tombstone)?;
        {
            let _frames = self
                .store
                .log
                .frames
                .write()
                .map_err(|_| StoreError::Poisoned)?;
            self.store.log.file.overwrite(at, &rewrite)?;
        }
        self.store.log.file.sync()?;
        self.store.log.reclaimable.fetch_add(
            record_log::slack(
                frame.len,
                &frame.head,
                if inline { tombstone.len() } else { 0 },
            ),
            std::sync::atomic::Ordering::Relaxed,
        );
        self.store
            .purging
            .lock()
            .map_err(|_| StoreError::Poisoned)?
            .remove(&key);
        if inline {
            // The frame holds the tombstone; sled's copy is no longer needed.
            self.store
                .writer
                .lock()
                .map_err(|_| StoreError::Poisoned)?
                .purged
                .push(key);
        }
        Ok(())
    }
}
