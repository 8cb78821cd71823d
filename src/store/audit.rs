//! The audit chain in sled (`audit_log` tree, entries in groups; format in
//! [`super::audit_log`]) and the store's view of it, [`Audit`].
//!
//! An entry that records a store change is written in the transaction that
//! makes the change (by the records, cases and own-log writes); the view
//! appends the entries that record no change of their own, reads durable
//! entries and prunes. The writer chains entries after its head
//! ([`WriterState::chain`]) and moves the head only once the transaction
//! holding them committed ([`WriterState::advance_audit`]).

use sled::Transactional;

use super::audit_log::{self, Anchor, RawEntry};
use super::{GATE, Store, StoreError, TxResult, WriterState, keys, meta, tx_error};

/// The audit chain of a store: see [`Store::audit`].
#[derive(Clone, Copy)]
pub struct Audit<'a> {
    pub(super) store: &'a Store,
}

/// Audit entries chained after the writer's head, and where they go in
/// `audit_log` (see [`audit_log::plan`]).
pub(super) struct Chained {
    entries: Vec<RawEntry>,
    plan: Vec<audit_log::Placement>,
    tail: Option<audit_log::Tail>,
}

impl std::ops::Deref for Chained {
    type Target = [RawEntry];
    fn deref(&self) -> &[RawEntry] {
        &self.entries
    }
}

impl WriterState {
    /// Chains `bodies` after the current head, without moving it: the
    /// caller commits with [`WriterState::advance_audit`] once the
    /// transaction holding them succeeded.
    pub(super) fn chain(&self, bodies: Vec<Vec<u8>>) -> Chained {
        let mut prev = self.audit_head;
        let mut n = self.audit_n;
        let entries: Vec<RawEntry> = bodies
            .into_iter()
            .map(|body| {
                n += 1;
                let e = RawEntry::chained(n, prev, body);
                prev = e.hash;
                e
            })
            .collect();
        let (plan, tail) = audit_log::plan(self.audit_tail, &entries);
        Chained {
            entries,
            plan,
            tail,
        }
    }

    /// Moves the head past `chained`, whose transaction committed.
    pub(super) fn advance_audit(&mut self, chained: &Chained) {
        if let Some(last) = chained.entries.last() {
            self.audit_n = last.n;
            self.audit_head = last.hash;
            self.written.audit = last.n;
            self.audit_tail = chained.tail;
        }
    }
}

/// Writes chained audit entries into their `audit_log` groups within a
/// transaction.
pub(super) fn put_audit(
    aud: &sled::transaction::TransactionalTree,
    chained: &Chained,
) -> Result<(), sled::transaction::UnabortableTransactionError> {
    for (key, exists, range) in &chained.plan {
        let key = keys::u64_be(*key);
        let mut group = match exists {
            true => aud.get(key)?.map(|v| v.to_vec()).unwrap_or_default(),
            false => Vec::new(),
        };
        for e in &chained.entries[range.clone()] {
            audit_log::push_to_group(&mut group, e);
        }
        aud.insert(&key, group)?;
    }
    Ok(())
}

/// The last group of `audit_log`: its tail and its last entry.
pub(super) fn last_group(
    audit: &sled::Tree,
) -> Result<Option<(audit_log::Tail, RawEntry)>, StoreError> {
    let Some((k, v)) = audit.last()? else {
        return Ok(None);
    };
    let key = keys::read_u64(&k).ok_or_else(|| StoreError::Corrupt("bad audit_log key".into()))?;
    let mut group = audit_log::decode_group(&v).map_err(StoreError::Corrupt)?;
    let tail = audit_log::Tail::of(key, &group);
    Ok(group.pop().map(|last| (tail, last)))
}

/// Moves the audit entries of a schema version 2 store (`audit`, one sled
/// entry each) into `audit_log` groups, a few at a time: they are written
/// into their groups, then removed. Not in a transaction (none may run
/// outside the gate, and opening is not async); an entry already moved is
/// not added twice, so an interrupted move resumes cleanly.
pub(super) fn move_v2_entries(legacy: &sled::Tree, audit: &sled::Tree) -> Result<u64, StoreError> {
    let mut moved = 0;
    loop {
        let batch: Vec<RawEntry> = legacy
            .iter()
            .take(audit_log::GROUP_ENTRIES as usize)
            .map(|kv| {
                let (k, v) = kv?;
                RawEntry::decode(&k, &v).map_err(StoreError::Corrupt)
            })
            .collect::<Result<_, _>>()?;
        if batch.is_empty() {
            return Ok(moved);
        }
        let tail = last_group(audit)?;
        let held = tail.as_ref().map_or(0, |(_, last)| last.n);
        let fresh: Vec<RawEntry> = batch.iter().filter(|e| e.n > held).cloned().collect();
        let (plan, _) = audit_log::plan(tail.map(|(t, _)| t), &fresh);
        for (key, exists, range) in plan {
            let key = keys::u64_be(key);
            let mut group = match exists {
                true => audit.get(key)?.map(|v| v.to_vec()).unwrap_or_default(),
                false => Vec::new(),
            };
            for e in &fresh[range] {
                audit_log::push_to_group(&mut group, e);
            }
            audit.insert(key, group)?;
        }
        for e in &batch {
            legacy.remove(keys::u64_be(e.n))?;
        }
        moved += batch.len() as u64;
    }
}

impl Audit<'_> {
    /// Appends audit entries that record no store change of their own (a
    /// query answered, a disclosure, a refusal). Returns the number of the
    /// last entry once all are durable.
    pub async fn append(&self, bodies: Vec<Vec<u8>>) -> Result<u64, StoreError> {
        self.append_noting(bodies, None).await
    }

    /// [`Audit::append`], also setting a note (a `meta` value) in the same
    /// transaction (e.g. the fingerprints that a `config_changed` entry
    /// compares against next time).
    pub(crate) async fn append_noting(
        &self,
        bodies: Vec<Vec<u8>>,
        note: Option<(&str, &[u8])>,
    ) -> Result<u64, StoreError> {
        let store = self.store;
        let gate = GATE.lock().await;
        let (last, generation) = {
            let mut w = store.writer.lock().map_err(|_| StoreError::Poisoned)?;
            let entries = w.chain(bodies);
            (&store.trees.audit, &store.trees.meta)
                .transaction(|(aud, meta)| -> TxResult<()> {
                    put_audit(aud, &entries)?;
                    if let Some((k, v)) = note {
                        meta.insert(meta::note_key(k), v)?;
                    }
                    Ok(())
                })
                .map_err(tx_error)?;
            w.advance_audit(&entries);
            w.generation += 1;
            (w.audit_n, w.generation)
        };
        drop(gate);
        store.make_durable(generation).await?;
        Ok(last)
    }

    /// The members that answered "hit" to this node's query `id` (noted
    /// with the query's entries); `None` if this node sent no such query,
    /// or none answered "hit".
    pub fn query_hits(&self, id: &str) -> Result<Option<Vec<String>>, StoreError> {
        Ok(self
            .note(&query_note(id))?
            .and_then(|bytes| serde_json::from_slice(&bytes).ok()))
    }

    /// A note set by `Audit::append_noting`.
    pub fn note(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .store
            .trees
            .meta
            .get(meta::note_key(key))?
            .map(|v| v.to_vec()))
    }

    /// Durable audit entries with `n > after`, ascending, at most `limit`.
    pub fn entries(&self, after: u64, limit: usize) -> Result<Vec<RawEntry>, StoreError> {
        let durable = self.store.watermark().audit;
        if after >= durable {
            return Ok(Vec::new());
        }
        let tree = &self.store.trees.audit;
        let first = after.saturating_add(1);
        // From the group that holds `first` (or the first group, if the
        // log was pruned past it).
        let start = match tree.range(..=keys::u64_be(first)).next_back() {
            Some(kv) => kv?.0,
            None => sled::IVec::from(&keys::u64_be(0)),
        };
        let mut out = Vec::new();
        for kv in tree.range(start..=sled::IVec::from(&keys::u64_be(durable))) {
            let (_, v) = kv?;
            let group = audit_log::decode_group(&v).map_err(StoreError::Corrupt)?;
            out.extend(
                group
                    .into_iter()
                    .filter(|e| (first..=durable).contains(&e.n))
                    .take(limit - out.len()),
            );
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// One durable audit entry, if held.
    pub fn entry(&self, n: u64) -> Result<Option<RawEntry>, StoreError> {
        if n > self.store.watermark().audit {
            return Ok(None);
        }
        match self.store.trees.audit.range(..=keys::u64_be(n)).next_back() {
            Some(kv) => Ok(audit_log::decode_group(&kv?.1)
                .map_err(StoreError::Corrupt)?
                .into_iter()
                .find(|e| e.n == n)),
            None => Ok(None),
        }
    }

    /// Resumes a lost audit log after `anchor`: the checkpoint of the lost
    /// log that the peers witnessed. The log must hold no anchor and
    /// exactly `carried` entries: those a node started on the empty store
    /// wrote before the recovery. They are chained again after the anchor
    /// (renumbered from `anchor.n + 1`, bodies unchanged; no peer witnessed
    /// them, since a peer refuses a checkpoint smaller than one it holds),
    /// and this node's own checkpoints of them are dropped. Then `bodies`
    /// follow. The anchor, the recovery (`recovery`, this node's statement
    /// with its countersignatures, kept in `checkpoints` under `node` and
    /// the anchor's size) and the entries are written in one durable step.
    /// Returns the number of the last entry.
    pub(crate) async fn resume(
        &self,
        node: &str,
        anchor: &Anchor,
        recovery: &[u8],
        carried: u64,
        bodies: Vec<Vec<u8>>,
    ) -> Result<u64, StoreError> {
        let store = self.store;
        let gate = GATE.lock().await;
        let (last, generation) = {
            let mut w = store.writer.lock().map_err(|_| StoreError::Poisoned)?;
            if w.audit_n != carried || meta::anchor(&store.trees.meta)?.is_some() {
                return Err(StoreError::AuditNotEmpty { held: w.audit_n });
            }
            let mut old_groups = Vec::new();
            let mut all = Vec::new();
            for kv in store.trees.audit.iter() {
                let (k, v) = kv?;
                old_groups.push(k);
                all.extend(
                    audit_log::decode_group(&v)
                        .map_err(StoreError::Corrupt)?
                        .into_iter()
                        .map(|e| e.body),
                );
            }
            all.extend(bodies);
            let own_checkpoints: Vec<sled::IVec> = store
                .trees
                .checkpoints
                .range(
                    audit_log::checkpoint_key(node, 0)..=audit_log::checkpoint_key(node, carried),
                )
                .keys()
                .collect::<Result<_, _>>()?;
            // Chain after the anchor; put back if the transaction fails.
            let before = (w.audit_n, w.audit_head, w.audit_tail);
            w.audit_n = anchor.n;
            w.audit_head = anchor.hash;
            w.audit_tail = None;
            let entries = w.chain(all);
            let anchor_value = anchor.encode();
            let key = audit_log::recovery_key(node, anchor.n);
            let written = (
                &store.trees.audit,
                &store.trees.meta,
                &store.trees.checkpoints,
            )
                .transaction(|(aud, meta, cps)| -> TxResult<()> {
                    for k in &old_groups {
                        aud.remove(k)?;
                    }
                    put_audit(aud, &entries)?;
                    meta.insert(meta::ANCHOR_KEY, anchor_value.as_slice())?;
                    for k in &own_checkpoints {
                        cps.remove(k)?;
                    }
                    cps.insert(key.as_slice(), recovery)?;
                    Ok(())
                })
                .map_err(tx_error);
            if let Err(e) = written {
                (w.audit_n, w.audit_head, w.audit_tail) = before;
                return Err(e);
            }
            w.advance_audit(&entries);
            w.generation += 1;
            (w.audit_n, w.generation)
        };
        drop(gate);
        store.make_durable(generation).await?;
        Ok(last)
    }

    /// Where pruning stopped, if the log was ever pruned.
    pub fn anchor(&self) -> Result<Option<Anchor>, StoreError> {
        meta::anchor(&self.store.trees.meta)
    }

    /// The countersigned retention statement kept with the anchor (an
    /// encoded `AuditRecovery`), if pruning wrote one.
    pub fn retention(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .store
            .trees
            .meta
            .get(meta::RETENTION_KEY)?
            .map(|v| v.to_vec()))
    }

    /// Removes audit entries up to `anchor.n` and records `anchor`, with
    /// the retention statement that allows it, in one durable step. The
    /// entries after it still chain to `anchor.hash`.
    pub async fn prune(
        &self,
        anchor: &Anchor,
        retention: Option<&[u8]>,
    ) -> Result<usize, StoreError> {
        let store = self.store;
        let gate = GATE.lock().await;
        let (removed, generation) = {
            let mut w = store.writer.lock().map_err(|_| StoreError::Poisoned)?;
            // Whole groups up to the anchor go; the group it ends in is
            // written again with what follows the anchor.
            let mut doomed: Vec<sled::IVec> = Vec::new();
            let mut removed = 0;
            let mut kept = None;
            for kv in store.trees.audit.range(..=keys::u64_be(anchor.n)) {
                let (k, v) = kv?;
                let group = audit_log::decode_group(&v).map_err(StoreError::Corrupt)?;
                let (gone, stay): (Vec<RawEntry>, Vec<RawEntry>) =
                    group.into_iter().partition(|e| e.n <= anchor.n);
                removed += gone.len();
                if stay.is_empty() {
                    doomed.push(k);
                } else {
                    kept = Some((k, audit_log::encode_group(&stay)));
                }
            }
            let value = anchor.encode();
            (&store.trees.audit, &store.trees.meta)
                .transaction(|(aud, meta)| -> TxResult<()> {
                    for k in &doomed {
                        aud.remove(k)?;
                    }
                    if let Some((k, group)) = &kept {
                        aud.insert(k, group.as_slice())?;
                    }
                    meta.insert(meta::ANCHOR_KEY, value.as_slice())?;
                    if let Some(statement) = retention {
                        meta.insert(meta::RETENTION_KEY, statement)?;
                    }
                    Ok(())
                })
                .map_err(tx_error)?;
            w.generation += 1;
            // The group pruning rewrote may be the last one.
            w.audit_tail = last_group(&store.trees.audit)?.map(|(t, _)| t);
            (removed, w.generation)
        };
        drop(gate);
        store.make_durable(generation).await?;
        Ok(removed)
    }
}

/// The note that holds the members that answered "hit" to query `id`.
pub(crate) fn query_note(id: &str) -> String {
    format!("query_hits:{id}")
}
