//! Store operations on the trees that stay in sled: the audit chain and
//! its checkpoints, local cases and their selector index, series and other
//! states, notes. Records are in the record log (see `records`).

use sled::Transactional;

use super::audit_log::{self, Anchor, RawEntry};
use super::{ANCHOR_KEY, GATE, Store, StoreError, TxResult, keys, put_audit, tx_error};
use crate::records::model::NodeId;

impl Store {
    /// Appends audit entries that record no store change of their own (a
    /// query answered, a disclosure, a refusal). Returns the number of the
    /// last entry once all are durable.
    pub async fn append_audit(&self, bodies: Vec<Vec<u8>>) -> Result<u64, StoreError> {
        self.append_audit_noting(bodies, None).await
    }

    /// [`Store::append_audit`], also setting a `meta` value in the same
    /// transaction (e.g. the fingerprints that a `config_changed` entry
    /// compares against next time).
    pub async fn append_audit_noting(
        &self,
        bodies: Vec<Vec<u8>>,
        note: Option<(&str, &[u8])>,
    ) -> Result<u64, StoreError> {
        let gate = GATE.lock().await;
        let (last, generation) = {
            let mut w = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
            let entries = w.chain(bodies);
            (&self.audit, &self.meta)
                .transaction(|(aud, meta)| -> TxResult<()> {
                    put_audit(aud, &entries)?;
                    if let Some((k, v)) = note {
                        meta.insert(format!("note:{k}").as_bytes(), v)?;
                    }
                    Ok(())
                })
                .map_err(tx_error)?;
            w.advance_audit(&entries);
            w.generation += 1;
            (w.audit_n, w.generation)
        };
        drop(gate);
        self.make_durable(generation).await?;
        Ok(last)
    }

    /// Makes this node's next own sequence number follow `floor` at least,
    /// durably and with its audit entry: after a lost own log was recovered
    /// from the peers, numbers they saw must not be used again even where
    /// no peer returned the record.
    pub async fn raise_own_seq(&self, floor: u64, audit: Vec<u8>) -> Result<u64, StoreError> {
        let gate = GATE.lock().await;
        let generation = {
            let mut w = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
            let entries = w.chain(vec![audit]);
            let floor = floor.max(w.own_seq);
            (&self.audit, &self.meta)
                .transaction(|(aud, meta)| -> TxResult<()> {
                    put_audit(aud, &entries)?;
                    meta.insert(super::OWN_SEQ_FLOOR_KEY, &keys::u64_be(floor))?;
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
        self.make_durable(generation).await?;
        Ok(self.watermark().own_seq)
    }

    /// A value set by [`Store::append_audit_noting`].
    pub fn note(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .meta
            .get(format!("note:{key}").as_bytes())?
            .map(|v| v.to_vec()))
    }

    /// Durable audit entries with `n > after`, ascending, at most `limit`.
    pub fn audit_entries(&self, after: u64, limit: usize) -> Result<Vec<RawEntry>, StoreError> {
        let durable = self.watermark().audit;
        if after >= durable {
            return Ok(Vec::new());
        }
        let first = after.saturating_add(1);
        // From the group that holds `first` (or the first group, if the
        // log was pruned past it).
        let start = match self.audit.range(..=keys::u64_be(first)).next_back() {
            Some(kv) => kv?.0,
            None => sled::IVec::from(&keys::u64_be(0)),
        };
        let mut out = Vec::new();
        for kv in self
            .audit
            .range(start..=sled::IVec::from(&keys::u64_be(durable)))
        {
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
    pub fn audit_entry(&self, n: u64) -> Result<Option<RawEntry>, StoreError> {
        if n > self.watermark().audit {
            return Ok(None);
        }
        match self.audit.range(..=keys::u64_be(n)).next_back() {
            Some(kv) => Ok(audit_log::decode_group(&kv?.1)
                .map_err(StoreError::Corrupt)?
                .into_iter()
                .find(|e| e.n == n)),
            None => Ok(None),
        }
    }

    /// Where pruning stopped, if the log was ever pruned.
    pub fn audit_anchor(&self) -> Result<Option<Anchor>, StoreError> {
        match self.meta.get(ANCHOR_KEY)? {
            Some(v) => Ok(Some(Anchor::decode(&v).map_err(StoreError::Corrupt)?)),
            None => Ok(None),
        }
    }

    /// Removes audit entries up to `anchor.n` and records `anchor` in one
    /// durable step. The entries after it still chain to `anchor.hash`.
    pub async fn prune_audit(&self, anchor: &Anchor) -> Result<usize, StoreError> {
        let gate = GATE.lock().await;
        let (removed, generation) = {
            let mut w = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
            // Whole groups up to the anchor go; the group it ends in is
            // written again with what follows the anchor.
            let mut doomed: Vec<sled::IVec> = Vec::new();
            let mut removed = 0;
            let mut kept = None;
            for kv in self.audit.range(..=keys::u64_be(anchor.n)) {
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
            (&self.audit, &self.meta)
                .transaction(|(aud, meta)| -> TxResult<()> {
                    for k in &doomed {
                        aud.remove(k)?;
                    }
                    if let Some((k, group)) = &kept {
                        aud.insert(k, group.as_slice())?;
                    }
                    meta.insert(ANCHOR_KEY, value.as_slice())?;
                    Ok(())
                })
                .map_err(tx_error)?;
            w.generation += 1;
            // The group pruning rewrote may be the last one.
            w.audit_tail = super::audit_tail(&self.audit)?.map(|(t, _)| t);
            (removed, w.generation)
        };
        drop(gate);
        self.make_durable(generation).await?;
        Ok(removed)
    }

    /// Stores a checkpoint of `node`'s audit log at `size` (this node's own,
    /// signed here, or a peer's, witnessed here), durably.
    pub async fn put_checkpoint(
        &self,
        node: &NodeId,
        size: u64,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        let gate = GATE.lock().await;
        let generation = {
            let mut w = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
            self.checkpoints
                .insert(audit_log::checkpoint_key(node.as_str(), size), bytes)?;
            w.generation += 1;
            w.generation
        };
        drop(gate);
        self.make_durable(generation).await
    }

    /// The checkpoints held for `node`'s log with size above `after`,
    /// ascending by size.
    pub fn checkpoints(
        &self,
        node: &NodeId,
        after: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let start = audit_log::checkpoint_key(node.as_str(), after.saturating_add(1));
        let end = audit_log::checkpoint_key(node.as_str(), u64::MAX);
        let mut out = Vec::new();
        for kv in self.checkpoints.range(start..=end) {
            let (k, v) = kv?;
            let (_, size) = keys::parse_record_key(&k)
                .ok_or_else(|| StoreError::Corrupt("bad key in checkpoints".into()))?;
            out.push((size, v.to_vec()));
        }
        Ok(out)
    }

    /// The checkpoint of `node`'s log with the largest size, if any.
    pub fn latest_checkpoint(&self, node: &NodeId) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        match self
            .checkpoints
            .scan_prefix(keys::origin_prefix(node.as_str()))
            .next_back()
        {
            Some(kv) => {
                let (k, v) = kv?;
                let (_, size) = keys::parse_record_key(&k)
                    .ok_or_else(|| StoreError::Corrupt("bad key in checkpoints".into()))?;
                Ok(Some((size, v.to_vec())))
            }
            None => Ok(None),
        }
    }

    /// Writes a local case (never replicated) and moves its selector index
    /// entries from `old_tokens` to `new_tokens`, in one durable step.
    /// Tokens are opaque index keys (kind, epoch and token bytes).
    pub async fn put_case(
        &self,
        case_id: &str,
        value: &[u8],
        old_tokens: &[Vec<u8>],
        new_tokens: &[Vec<u8>],
        audit: Vec<u8>,
    ) -> Result<(), StoreError> {
        let gate = GATE.lock().await;
        let generation = {
            let mut w = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
            let entries = w.chain(vec![audit]);
            let index_key = |t: &Vec<u8>| {
                let mut k = t.clone();
                k.extend_from_slice(case_id.as_bytes());
                k
            };
            (&self.local_cases, &self.case_selectors, &self.audit)
                .transaction(|(cases, index, aud)| -> TxResult<()> {
                    cases.insert(case_id.as_bytes(), value)?;
                    for t in old_tokens {
                        index.remove(index_key(t))?;
                    }
                    for t in new_tokens {
                        index.insert(index_key(t), &[])?;
                    }
                    put_audit(aud, &entries)?;
                    Ok(())
                })
                .map_err(tx_error)?;
            w.advance_audit(&entries);
            w.generation += 1;
            w.generation
        };
        drop(gate);
        self.make_durable(generation).await
    }

    /// A local case by id.
    pub fn case(&self, case_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .local_cases
            .get(case_id.as_bytes())?
            .map(|v| v.to_vec()))
    }

    /// Every local case.
    pub fn cases(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        self.local_cases
            .iter()
            .values()
            .map(|v| v.map(|v| v.to_vec()).map_err(StoreError::from))
            .collect()
    }

    /// Ids of the local cases indexed under `token` (an index key of
    /// `token_len` bytes, as given to [`Store::put_case`]).
    pub fn cases_with_token(&self, token: &[u8]) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for kv in self.case_selectors.scan_prefix(token) {
            let (k, _) = kv?;
            if let Some(id) = k
                .get(token.len()..)
                .and_then(|b| std::str::from_utf8(b).ok())
            {
                out.push(id.to_owned());
            }
        }
        Ok(out)
    }

    /// Every state whose key starts with `prefix` (e.g. MLA requests).
    pub fn states_with_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.series.scan_prefix(prefix.as_bytes()) {
            let (k, v) = kv?;
            out.push((String::from_utf8_lossy(&k).into_owned(), v.to_vec()));
        }
        Ok(out)
    }

    /// The stored state of a series, if any: the latest in sled, else the
    /// one in the frame of the record that opened it.
    pub fn series(&self, series_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.series.get(series_id.as_bytes())? {
            return Ok(Some(v.to_vec()));
        }
        Ok(self
            .frame_by_id(series_id)?
            .and_then(|f| f.head.series_state))
    }
}
