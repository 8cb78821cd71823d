//! The node's durable store: sled behind one facade.
//!
//! Nothing above this module names sled, so the engine can be replaced
//! without touching the rest (garage had to drop sled; see
//! `docs/decisions/0001-store.md`).
//!
//! Durability rule: a write is acknowledged only after `flush` returns, and
//! everything a write changes (a record, its id index, its arrival entry,
//! the origin's cursor) goes in one sled transaction, so after a crash either
//! all of it is there or none of it is.
//!
//! Visibility rule: readers see only what is durable. The store keeps a
//! [`Watermark`] of the highest arrival position and own sequence number
//! known to be flushed; pull streams and watches never look past it. Without
//! it, a peer could receive a record that the origin then loses in a crash,
//! and the origin would later reuse that sequence number for another record.
//!
//! Writers are serialised by one lock held only for the in-memory
//! transaction; flushes are shared: a writer whose transaction is already
//! covered by a completed flush does not flush again (group commit).
//!
//! NOTE: sled 0.34 guards transactions with a lock that is global to the
//! process, and a flush holds that lock's read side while it waits for its
//! I/O. A transaction queued behind a flush, with more flushes queued behind
//! it on sled's I/O threads, deadlocks the process (seen here with several
//! stores in one process). So every transaction and every flush of every
//! store in the process goes through one gate (`GATE`): a flush never
//! overlaps a transaction, and only one flush is in flight at a time.
//!
//! The store does not interpret records. Callers hand it, with each record,
//! the series state to write in the same transaction and the time the
//! record expires; at expiry the node replaces the content with a
//! tombstone it composes ([`Store::purge`]).

pub mod audit_log;
mod keys;

use std::path::Path;
use std::sync::Mutex;

use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use tokio::sync::watch;

use crate::model::NodeId;
use audit_log::{Anchor, HASH_LEN, RawEntry};

/// Serialises sled transactions and flushes across the whole process (see
/// the module's NOTE).
static GATE: std::sync::LazyLock<tokio::sync::Mutex<()>> =
    std::sync::LazyLock::new(|| tokio::sync::Mutex::new(()));

/// Page cache of a store unless configured otherwise: 32 MiB.
pub const DEFAULT_CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// Version of the on-disk format written by this build.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store I/O failed: {0}")]
    Sled(#[from] sled::Error),
    #[error("store at {path} has schema version {found}; this enlace reads version {expected}")]
    Schema {
        path: String,
        found: u32,
        expected: u32,
    },
    #[error("store at {path} belongs to node {found}, not {expected}")]
    WrongNode {
        path: String,
        found: String,
        expected: String,
    },
    #[error(
        "store at {0} is in use by another process (is another node running on this data directory?)"
    )]
    Locked(String),
    #[error("store is corrupt: {0}")]
    Corrupt(String),
    #[error("record id {0} is already used by another record")]
    DuplicateRecordId(String),
    #[error("a writer panicked while holding the store lock")]
    Poisoned,
    #[error("store write failed: {0}")]
    Failed(String),
}

/// Highest durable positions; only these are visible to readers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Watermark {
    /// Highest arrival position that is durable.
    pub arrival: u64,
    /// Highest sequence number of this node's own log that is durable.
    pub own_seq: u64,
    /// Number of the last durable audit entry.
    pub audit: u64,
}

/// What the store holds for a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// The `SignedRecord` bytes, exactly as signed and received.
    Envelope(Vec<u8>),
    /// What is left after expiry: caller-composed bytes (no record content).
    Tombstone(Vec<u8>),
}

impl Content {
    fn encode(&self, position: u64) -> Vec<u8> {
        let (tag, bytes) = match self {
            Content::Envelope(b) => (TAG_ENVELOPE, b),
            Content::Tombstone(b) => (TAG_TOMBSTONE, b),
        };
        let mut value = Vec::with_capacity(9 + bytes.len());
        value.extend_from_slice(&keys::u64_be(position));
        value.push(tag);
        value.extend_from_slice(bytes);
        value
    }

    /// The envelope, if the content has not been purged.
    pub fn envelope(&self) -> Option<&[u8]> {
        match self {
            Content::Envelope(b) => Some(b),
            Content::Tombstone(_) => None,
        }
    }
}

const TAG_ENVELOPE: u8 = 0;
/// `meta` key of the audit anchor (see [`audit_log`]).
const ANCHOR_KEY: &str = "audit_anchor";
const TAG_TOMBSTONE: u8 = 1;

/// A record as held by this node.
#[derive(Debug, Clone)]
pub struct StoredRecord {
    pub origin: NodeId,
    pub seq: u64,
    /// Arrival position: the order in which records were stored here.
    pub position: u64,
    pub content: Content,
}

/// State of a record series, written with the record that changes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesWrite {
    pub series_id: String,
    pub state: Vec<u8>,
}

/// A verified record ready to be stored.
#[derive(Debug, Clone)]
pub struct NewRecord {
    pub seq: u64,
    pub record_id: String,
    pub content: Content,
    /// When to purge the content (ms since the Unix epoch); `None` if never
    /// or if `content` is already a tombstone.
    pub expires_at_ms: Option<i64>,
    /// Series state to write in the same transaction.
    pub series: Option<SeriesWrite>,
}

/// What [`Store::apply_received`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Newly stored.
    pub stored: usize,
    /// Already held with identical bytes (harmless re-delivery).
    pub duplicates: usize,
    /// Sequence numbers already held with *different* bytes, or whose
    /// record id is taken: the origin signed two records for one slot.
    pub conflicts: Vec<u64>,
}

struct WriterState {
    own_seq: u64,
    next_arrival: u64,
    /// What has been written, durable or not.
    written: Watermark,
    /// Number of write transactions so far.
    generation: u64,
    /// The last audit entry written (durable or not): number and hash.
    audit_n: u64,
    audit_head: [u8; HASH_LEN],
}

impl WriterState {
    /// Chains `bodies` after the current head, without moving it: the
    /// caller commits with [`WriterState::advance_audit`] once the
    /// transaction holding them succeeded.
    fn chain(&self, bodies: Vec<Vec<u8>>) -> Vec<RawEntry> {
        let mut prev = self.audit_head;
        let mut n = self.audit_n;
        bodies
            .into_iter()
            .map(|body| {
                n += 1;
                let e = RawEntry::chained(n, prev, body);
                prev = e.hash;
                e
            })
            .collect()
    }

    fn advance_audit(&mut self, entries: &[RawEntry]) {
        if let Some(last) = entries.last() {
            self.audit_n = last.n;
            self.audit_head = last.hash;
            self.written.audit = last.n;
        }
    }
}

/// The store facade.
pub struct Store {
    db: sled::Db,
    records: sled::Tree,
    record_ids: sled::Tree,
    arrivals: sled::Tree,
    cursors: sled::Tree,
    series: sled::Tree,
    expiries: sled::Tree,
    local_cases: sled::Tree,
    case_selectors: sled::Tree,
    audit: sled::Tree,
    checkpoints: sled::Tree,
    meta: sled::Tree,
    own: NodeId,
    writer: Mutex<WriterState>,
    /// Generation covered by the last completed flush.
    flushed: std::sync::atomic::AtomicU64,
    durable: watch::Sender<Watermark>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("own", &self.own)
            .field("durable", &*self.durable.borrow())
            .finish_non_exhaustive()
    }
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

fn tx_error(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Sled(e),
    }
}

impl Store {
    /// Opens (or creates) the store of node `own` in `dir`, with the
    /// default cache.
    pub fn open(dir: &Path, own: &NodeId) -> Result<Self, StoreError> {
        Self::open_with_cache(dir, own, DEFAULT_CACHE_BYTES)
    }

    /// Opens (or creates) the store with a page cache of `cache_bytes`
    /// (sled's default is 1 GiB; a node does not need that much).
    pub fn open_with_cache(dir: &Path, own: &NodeId, cache_bytes: u64) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Sled(e.into()))?;
        #[cfg(unix)]
        {
            // The store holds other members' records: owner only.
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
        let db = open_db(dir, cache_bytes)?;
        let meta = db.open_tree("meta")?;
        let path = dir.display().to_string();
        match meta.get("schema_version")? {
            Some(v) => {
                let found = u32::from_be_bytes(v.as_ref().try_into().map_err(|_| {
                    StoreError::Corrupt("meta.schema_version is not 4 bytes".into())
                })?);
                if found != SCHEMA_VERSION {
                    return Err(StoreError::Schema {
                        path,
                        found,
                        expected: SCHEMA_VERSION,
                    });
                }
            }
            None => {
                meta.insert("schema_version", &SCHEMA_VERSION.to_be_bytes())?;
            }
        }
        match meta.get("node_id")? {
            Some(v) if v.as_ref() != own.as_str().as_bytes() => {
                return Err(StoreError::WrongNode {
                    path,
                    found: String::from_utf8_lossy(&v).into_owned(),
                    expected: own.to_string(),
                });
            }
            Some(_) => {}
            None => {
                meta.insert("node_id", own.as_str())?;
            }
        }
        // NOTE: no flush here: it would run outside the gate. The metadata
        // becomes durable with the first commit; if the node dies before
        // that, the next open writes it again.
        let records = db.open_tree("records")?;
        let record_ids = db.open_tree("record_ids")?;
        let arrivals = db.open_tree("arrivals")?;
        let cursors = db.open_tree("cursors")?;
        let series = db.open_tree("series")?;
        let expiries = db.open_tree("expiries")?;
        let local_cases = db.open_tree("local_cases")?;
        let case_selectors = db.open_tree("case_selectors")?;
        let audit = db.open_tree("audit")?;
        let checkpoints = db.open_tree("checkpoints")?;

        let own_seq = match records
            .scan_prefix(keys::origin_prefix(own.as_str()))
            .next_back()
        {
            Some(kv) => {
                let (k, _) = kv?;
                keys::parse_record_key(&k)
                    .ok_or_else(|| StoreError::Corrupt("bad key in records".into()))?
                    .1
            }
            None => 0,
        };
        let last_arrival = match arrivals.last()? {
            Some((k, _)) => keys::read_u64(&k)
                .ok_or_else(|| StoreError::Corrupt("bad key in arrivals".into()))?,
            None => 0,
        };
        let (audit_n, audit_head) = match audit.last()? {
            Some((k, v)) => {
                let e = RawEntry::decode(&k, &v).map_err(StoreError::Corrupt)?;
                (e.n, e.hash)
            }
            None => match meta.get(ANCHOR_KEY)? {
                Some(v) => {
                    let a = Anchor::decode(&v).map_err(StoreError::Corrupt)?;
                    (a.n, a.hash)
                }
                None => (0, audit_log::GENESIS),
            },
        };
        // Everything on disk at open is durable.
        let (durable, _) = watch::channel(Watermark {
            arrival: last_arrival,
            own_seq,
            audit: audit_n,
        });
        Ok(Self {
            db,
            records,
            record_ids,
            arrivals,
            cursors,
            series,
            expiries,
            local_cases,
            case_selectors,
            audit,
            checkpoints,
            meta,
            own: own.clone(),
            writer: Mutex::new(WriterState {
                own_seq,
                next_arrival: last_arrival + 1,
                written: Watermark {
                    arrival: last_arrival,
                    own_seq,
                    audit: audit_n,
                },
                generation: 0,
                audit_n,
                audit_head,
            }),
            flushed: std::sync::atomic::AtomicU64::new(0),
            durable,
        })
    }

    /// This node's id, as recorded in the store.
    pub fn own(&self) -> &NodeId {
        &self.own
    }

    /// Appends a record to this node's own log, with its audit entry.
    /// `make` receives the next gapless sequence number and returns the
    /// record to store and the body of the audit entry that records it; it
    /// runs under the writer lock, so no other record of this node is
    /// written between what it reads (series state) and what it returns.
    /// Returns once the record and its entry are durable.
    pub async fn append_own<E>(
        &self,
        make: impl FnOnce(u64) -> Result<(NewRecord, Vec<u8>), E>,
    ) -> Result<Result<StoredRecord, E>, StoreError> {
        let gate = GATE.lock().await;
        let (stored, generation) = {
            let mut w = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
            let seq = w.own_seq + 1;
            let (record, entry) = match make(seq) {
                Ok(v) => v,
                Err(e) => return Ok(Err(e)),
            };
            if self.record_ids.contains_key(record.record_id.as_bytes())? {
                return Err(StoreError::DuplicateRecordId(record.record_id));
            }
            let position = w.next_arrival;
            let key = keys::record_key(self.own.as_str(), seq);
            let write = PendingWrite::new(key, position, &record);
            let entries = w.chain(vec![entry]);
            self.write(&[write], None, &entries)?;
            w.advance_audit(&entries);
            w.own_seq = seq;
            w.next_arrival += 1;
            w.written.own_seq = seq;
            w.written.arrival = position;
            w.generation += 1;
            let stored = StoredRecord {
                origin: self.own.clone(),
                seq,
                position,
                content: record.content,
            };
            (stored, w.generation)
        };
        drop(gate);
        self.make_durable(generation).await?;
        Ok(Ok(stored))
    }

    /// Appends several records to this node's own log, each with its audit
    /// entry, in one transaction and one flush: concurrent publishes share
    /// the cost of a transaction as well as that of a flush. Each maker is
    /// called, in order, with the next free sequence number; one that
    /// fails gets its error back and uses no number. Returns each maker's
    /// outcome once the records written are durable.
    pub async fn append_own_many<E, F>(
        &self,
        makers: Vec<F>,
    ) -> Result<Vec<Result<StoredRecord, E>>, StoreError>
    where
        F: FnOnce(u64) -> Result<(NewRecord, Vec<u8>), E>,
    {
        let gate = GATE.lock().await;
        let (outcomes, generation) = {
            let mut w = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
            // Per maker: its sequence number, record and audit entry body.
            type Made<E> = Result<(u64, NewRecord, Vec<u8>), E>;
            let mut made: Vec<Made<E>> = Vec::with_capacity(makers.len());
            let mut seq = w.own_seq;
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
            let mut position = w.next_arrival;
            for (seq, record, entry) in made.iter().flatten() {
                if self.record_ids.contains_key(record.record_id.as_bytes())? {
                    return Err(StoreError::DuplicateRecordId(record.record_id.clone()));
                }
                let key = keys::record_key(self.own.as_str(), *seq);
                writes.push(PendingWrite::new(key, position, record));
                bodies.push(entry.clone());
                position += 1;
            }
            let entries = w.chain(bodies);
            if !writes.is_empty() {
                self.write(&writes, None, &entries)?;
                w.advance_audit(&entries);
                w.own_seq = seq;
                w.next_arrival = position;
                w.written.own_seq = seq;
                w.written.arrival = position - 1;
                w.generation += 1;
            }
            let mut position = w.next_arrival - writes.len() as u64;
            drop(writes);
            let outcomes: Vec<Result<StoredRecord, E>> = made
                .into_iter()
                .map(|m| {
                    m.map(|(seq, record, _)| {
                        let stored = StoredRecord {
                            origin: self.own.clone(),
                            seq,
                            position,
                            content: record.content,
                        };
                        position += 1;
                        stored
                    })
                })
                .collect();
            (outcomes, w.generation)
        };
        drop(gate);
        self.make_durable(generation).await?;
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
        let gate = GATE.lock().await;
        let (seqs, generation) = {
            let mut w = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
            let mut records = Vec::with_capacity(count);
            for i in 0..count as u64 {
                match make(w.own_seq + 1 + i) {
                    Ok(r) => records.push(r),
                    Err(e) => return Ok(Err(e)),
                }
            }
            let mut writes = Vec::with_capacity(count);
            for (i, r) in records.iter().enumerate() {
                if self.record_ids.contains_key(r.record_id.as_bytes())? {
                    return Err(StoreError::DuplicateRecordId(r.record_id.clone()));
                }
                let seq = w.own_seq + 1 + i as u64;
                let key = keys::record_key(self.own.as_str(), seq);
                writes.push(PendingWrite::new(key, w.next_arrival + i as u64, r));
            }
            let entries = w.chain(audit(&records));
            self.write(&writes, None, &entries)?;
            w.advance_audit(&entries);
            let seqs: Vec<u64> = (1..=count as u64).map(|i| w.own_seq + i).collect();
            w.own_seq += count as u64;
            w.next_arrival += count as u64;
            w.written.own_seq = w.own_seq;
            w.written.arrival = w.next_arrival - 1;
            w.generation += 1;
            (seqs, w.generation)
        };
        drop(gate);
        self.make_durable(generation).await?;
        Ok(Ok(seqs))
    }

    /// One transaction for a set of record writes, optionally a cursor, and
    /// the audit entries that record them.
    fn write(
        &self,
        writes: &[PendingWrite<'_>],
        cursor: Option<(&NodeId, u64)>,
        entries: &[RawEntry],
    ) -> Result<(), StoreError> {
        (
            &self.records,
            &self.record_ids,
            &self.arrivals,
            &self.cursors,
            &self.series,
            &self.expiries,
            &self.audit,
        )
            .transaction(|(rec, ids, arr, cur, ser, exp, aud)| -> TxResult<()> {
                for w in writes {
                    rec.insert(w.key.as_slice(), w.value.as_slice())?;
                    ids.insert(w.record.record_id.as_bytes(), w.key.as_slice())?;
                    arr.insert(&keys::u64_be(w.position), w.key.as_slice())?;
                    if let Some(s) = &w.record.series {
                        ser.insert(s.series_id.as_bytes(), s.state.as_slice())?;
                    }
                    if let (Some(at), Content::Envelope(_)) =
                        (w.record.expires_at_ms, &w.record.content)
                    {
                        exp.insert(keys::expiry_key(at, &w.key), &[])?;
                    }
                }
                if let Some((origin, seq)) = cursor {
                    cur.insert(origin.as_str().as_bytes(), &keys::u64_be(seq))?;
                }
                for e in entries {
                    aud.insert(&keys::u64_be(e.n), e.encode())?;
                }
                Ok(())
            })
            .map_err(tx_error)
    }

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
                    for e in &entries {
                        aud.insert(&keys::u64_be(e.n), e.encode())?;
                    }
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
        let start = keys::u64_be(after.saturating_add(1));
        let end = keys::u64_be(durable);
        let mut out = Vec::new();
        for kv in self.audit.range(start..=end).take(limit) {
            let (k, v) = kv?;
            out.push(RawEntry::decode(&k, &v).map_err(StoreError::Corrupt)?);
        }
        Ok(out)
    }

    /// One durable audit entry, if held.
    pub fn audit_entry(&self, n: u64) -> Result<Option<RawEntry>, StoreError> {
        if n > self.watermark().audit {
            return Ok(None);
        }
        match self.audit.get(keys::u64_be(n))? {
            Some(v) => Ok(Some(
                RawEntry::decode(&keys::u64_be(n), &v).map_err(StoreError::Corrupt)?,
            )),
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
            let end = keys::u64_be(anchor.n);
            let doomed: Vec<sled::IVec> =
                self.audit.range(..=end).keys().collect::<Result<_, _>>()?;
            let value = anchor.encode();
            (&self.audit, &self.meta)
                .transaction(|(aud, meta)| -> TxResult<()> {
                    for k in &doomed {
                        aud.remove(k)?;
                    }
                    meta.insert(ANCHOR_KEY, value.as_slice())?;
                    Ok(())
                })
                .map_err(tx_error)?;
            w.generation += 1;
            (doomed.len(), w.generation)
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
        let gate = GATE.lock().await;
        let generation = {
            let mut w = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
            let mut writes: Vec<PendingWrite<'_>> = Vec::new();
            let mut position = w.next_arrival;
            for r in records {
                let key = keys::record_key(origin.as_str(), r.seq);
                if let Some(existing) = self.records.get(&key)? {
                    let same = match (decode_content(&existing)?, &r.content) {
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
                if self.record_ids.contains_key(r.record_id.as_bytes())?
                    || writes.iter().any(|w| w.record.record_id == r.record_id)
                {
                    applied.conflicts.push(r.seq);
                    continue;
                }
                writes.push(PendingWrite::new(key, position, r));
                position += 1;
            }
            let old_cursor = self.cursor(origin)?;
            let new_cursor = cursor.max(old_cursor);
            applied.stored = writes.len();
            let stored: Vec<&NewRecord> = writes.iter().map(|w| w.record).collect();
            let entries = w.chain(audit(&stored, &applied));
            if writes.is_empty() && new_cursor == old_cursor && entries.is_empty() {
                return Ok(applied);
            }
            self.write(&writes, Some((origin, new_cursor)), &entries)?;
            w.advance_audit(&entries);
            w.next_arrival = position;
            w.written.arrival = position - 1;
            w.generation += 1;
            w.generation
        };
        drop(gate);
        self.make_durable(generation).await?;
        Ok(applied)
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
                    for e in &entries {
                        aud.insert(&keys::u64_be(e.n), e.encode())?;
                    }
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

    /// The stored state of a series, if any.
    pub fn series(&self, series_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.series.get(series_id.as_bytes())?.map(|v| v.to_vec()))
    }

    /// Whether the record `origin`/`seq` is held (content or tombstone).
    pub fn contains(&self, origin: &NodeId, seq: u64) -> Result<bool, StoreError> {
        Ok(self
            .records
            .contains_key(keys::record_key(origin.as_str(), seq))?)
    }

    /// Records whose content expires at or before `now_ms`, oldest first,
    /// at most `limit`.
    pub fn expired(&self, now_ms: i64, limit: usize) -> Result<Vec<StoredRecord>, StoreError> {
        let end = keys::expiry_prefix(now_ms.max(0).saturating_add(1));
        let mut out = Vec::new();
        for kv in self.expiries.range(..end).take(limit) {
            let (k, _) = kv?;
            let record_key = keys::record_key_of_expiry(&k)
                .ok_or_else(|| StoreError::Corrupt("bad key in expiries".into()))?;
            match self.records.get(record_key)? {
                Some(v) => out.push(self.decode_stored(record_key, &v)?),
                None => {
                    return Err(StoreError::Corrupt(
                        "expiry points at a missing record".into(),
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Replaces a record's content with `tombstone` and forgets its expiry,
    /// in one durable step.
    pub async fn purge(
        &self,
        origin: &NodeId,
        seq: u64,
        expires_at_ms: i64,
        tombstone: Vec<u8>,
        audit: Vec<u8>,
    ) -> Result<(), StoreError> {
        let gate = GATE.lock().await;
        let generation = {
            let mut w = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
            let key = keys::record_key(origin.as_str(), seq);
            let Some(value) = self.records.get(&key)? else {
                return Err(StoreError::Corrupt(format!(
                    "no record {origin}#{seq} to purge"
                )));
            };
            let position = keys::read_u64(&value)
                .ok_or_else(|| StoreError::Corrupt("short value in records".into()))?;
            let new_value = Content::Tombstone(tombstone).encode(position);
            let expiry = keys::expiry_key(expires_at_ms, &key);
            let entries = w.chain(vec![audit]);
            (&self.records, &self.expiries, &self.audit)
                .transaction(|(rec, exp, aud)| -> TxResult<()> {
                    rec.insert(key.as_slice(), new_value.as_slice())?;
                    exp.remove(expiry.as_slice())?;
                    for e in &entries {
                        aud.insert(&keys::u64_be(e.n), e.encode())?;
                    }
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

    /// Returns once write `generation` is on disk. One flush covers every
    /// write before it, so writers waiting together share it (group commit).
    async fn make_durable(&self, generation: u64) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        if self.flushed.load(Ordering::Acquire) >= generation {
            return Ok(());
        }
        let _gate = GATE.lock().await;
        if self.flushed.load(Ordering::Acquire) >= generation {
            return Ok(());
        }
        let (upto, written) = {
            let w = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
            (w.generation, w.written)
        };
        self.db.flush_async().await?;
        self.flushed.fetch_max(upto, Ordering::AcqRel);
        self.durable.send_if_modified(|d| {
            let before = *d;
            d.arrival = d.arrival.max(written.arrival);
            d.own_seq = d.own_seq.max(written.own_seq);
            d.audit = d.audit.max(written.audit);
            *d != before
        });
        Ok(())
    }

    /// The durable watermark now.
    pub fn watermark(&self) -> Watermark {
        *self.durable.borrow()
    }

    /// Notified whenever the durable watermark moves.
    pub fn subscribe(&self) -> watch::Receiver<Watermark> {
        self.durable.subscribe()
    }

    /// Highest resolved sequence number of `origin`'s log (0: none).
    pub fn cursor(&self, origin: &NodeId) -> Result<u64, StoreError> {
        Ok(match self.cursors.get(origin.as_str().as_bytes())? {
            Some(v) => {
                keys::read_u64(&v).ok_or_else(|| StoreError::Corrupt("bad cursor value".into()))?
            }
            None => 0,
        })
    }

    /// Records of `origin` with `after < seq <= up_to`, ascending, at most `limit`.
    pub fn records_after(
        &self,
        origin: &NodeId,
        after: u64,
        up_to: u64,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        if after >= up_to {
            return Ok(Vec::new());
        }
        let start = keys::record_key(origin.as_str(), after.saturating_add(1));
        let end = keys::record_key(origin.as_str(), up_to);
        let mut out = Vec::new();
        for kv in self.records.range(start..=end).take(limit) {
            let (k, v) = kv?;
            out.push(self.decode_stored(&k, &v)?);
        }
        Ok(out)
    }

    /// Highest sequence number held for `origin` (0: none).
    pub fn last_seq(&self, origin: &NodeId) -> Result<u64, StoreError> {
        match self
            .records
            .scan_prefix(keys::origin_prefix(origin.as_str()))
            .next_back()
        {
            Some(kv) => {
                let (k, _) = kv?;
                Ok(keys::parse_record_key(&k)
                    .ok_or_else(|| StoreError::Corrupt("bad key in records".into()))?
                    .1)
            }
            None => Ok(0),
        }
    }

    /// Number of records held for `origin`.
    pub fn count(&self, origin: &NodeId) -> usize {
        self.records
            .scan_prefix(keys::origin_prefix(origin.as_str()))
            .count()
    }

    /// One record by its id, if held and durable.
    pub fn get_by_id(&self, record_id: &str) -> Result<Option<StoredRecord>, StoreError> {
        let Some(key) = self.record_ids.get(record_id.as_bytes())? else {
            return Ok(None);
        };
        let Some(value) = self.records.get(&key)? else {
            return Err(StoreError::Corrupt(format!(
                "record id {record_id} points at a missing record"
            )));
        };
        let r = self.decode_stored(&key, &value)?;
        Ok((r.position <= self.watermark().arrival).then_some(r))
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
        let durable = self.watermark().arrival;
        let mut out = Vec::new();
        let mut last = after_position;
        if after_position >= durable {
            return Ok((out, last));
        }
        let start = keys::u64_be(after_position + 1);
        let end = keys::u64_be(durable);
        for kv in self.arrivals.range(start..=end).take(limit) {
            let (pos, key) = kv?;
            last = keys::read_u64(&pos)
                .ok_or_else(|| StoreError::Corrupt("bad arrival key".into()))?;
            let (o, _) = keys::parse_record_key(&key)
                .ok_or_else(|| StoreError::Corrupt("bad record key in arrivals".into()))?;
            if origin.is_some_and(|want| *want != o) {
                continue;
            }
            let value = self
                .records
                .get(&key)?
                .ok_or_else(|| StoreError::Corrupt("arrival points at a missing record".into()))?;
            out.push(self.decode_stored(&key, &value)?);
        }
        Ok((out, last))
    }

    /// Total number of records held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Flushes everything; used at shutdown.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let _gate = GATE.lock().await;
        self.db.flush_async().await?;
        Ok(())
    }

    fn decode_stored(&self, key: &[u8], value: &[u8]) -> Result<StoredRecord, StoreError> {
        let (origin, seq) = keys::parse_record_key(key)
            .ok_or_else(|| StoreError::Corrupt("bad key in records".into()))?;
        let position = keys::read_u64(value)
            .ok_or_else(|| StoreError::Corrupt("short value in records".into()))?;
        Ok(StoredRecord {
            origin,
            seq,
            position,
            content: decode_content(value)?,
        })
    }
}

/// Opens the sled database. sled releases its file lock from a background
/// thread after the last handle is dropped, so a store closed a moment ago
/// (a node restarted in the same process) may still be locked: retry for a
/// short while before reporting that another process holds it.
fn open_db(dir: &Path, cache_bytes: u64) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .cache_capacity(cache_bytes)
            .open()
        {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                if std::time::Instant::now() > deadline {
                    return Err(StoreError::Locked(dir.display().to_string()));
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn decode_content(value: &[u8]) -> Result<Content, StoreError> {
    match value.get(8) {
        Some(&TAG_ENVELOPE) => Ok(Content::Envelope(value[9..].to_vec())),
        Some(&TAG_TOMBSTONE) => Ok(Content::Tombstone(value[9..].to_vec())),
        _ => Err(StoreError::Corrupt("unknown record value tag".into())),
    }
}

/// A record write prepared under the writer lock.
struct PendingWrite<'a> {
    key: Vec<u8>,
    value: Vec<u8>,
    position: u64,
    record: &'a NewRecord,
}

impl<'a> PendingWrite<'a> {
    fn new(key: Vec<u8>, position: u64, record: &'a NewRecord) -> Self {
        Self {
            value: record.content.encode(position),
            key,
            position,
            record,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        NodeId::parse(s).unwrap()
    }

    fn no_audit(_: &[&NewRecord], _: &Applied) -> Vec<Vec<u8>> {
        Vec::new()
    }

    fn rec(seq: u64, bytes: Vec<u8>) -> NewRecord {
        NewRecord {
            seq,
            record_id: format!("gt-{seq:016x}"),
            content: Content::Envelope(bytes),
            expires_at_ms: None,
            series: None,
        }
    }

    #[tokio::test]
    async fn own_log_is_gapless_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), &id("gt")).unwrap();
            for i in 1..=3u64 {
                let r = store
                    .append_own(|seq| Ok::<_, ()>((rec(seq, vec![i as u8]), b"published".to_vec())))
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(r.seq, i);
            }
            assert_eq!(
                store.watermark(),
                Watermark {
                    arrival: 3,
                    own_seq: 3,
                    audit: 3
                }
            );
        }
        let store = Store::open(dir.path(), &id("gt")).unwrap();
        assert_eq!(store.watermark().own_seq, 3);
        let r = store
            .append_own(|seq| Ok::<_, ()>((rec(seq, vec![4]), b"published".to_vec())))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((r.seq, r.position), (4, 4));
        let got = store.get_by_id("gt-0000000000000002").unwrap().unwrap();
        assert_eq!(got.content, Content::Envelope(vec![2]));
    }

    #[tokio::test]
    async fn a_store_refuses_another_node() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path(), &id("gt")).unwrap());
        let err = Store::open(dir.path(), &id("hn")).unwrap_err();
        assert!(err.to_string().contains("belongs to node gt"), "{err}");
    }

    #[tokio::test]
    async fn received_records_are_idempotent_and_conflicts_detected() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &id("hn")).unwrap();
        let gt = id("gt");
        let recs: Vec<NewRecord> = (1..=3).map(|s| rec(s, vec![s as u8; 4])).collect();
        let a = store.apply_received(&gt, &recs, 5, no_audit).await.unwrap();
        assert_eq!(a.stored, 3);
        assert_eq!(store.cursor(&gt).unwrap(), 5);
        let again = store.apply_received(&gt, &recs, 2, no_audit).await.unwrap();
        assert_eq!((again.stored, again.duplicates), (0, 3));
        assert_eq!(store.cursor(&gt).unwrap(), 5, "cursor never moves back");
        let mut forged = rec(2, vec![9]);
        forged.record_id = "gt-ffffffffffffffff".into();
        let c = store
            .apply_received(&gt, &[forged], 5, no_audit)
            .await
            .unwrap();
        assert_eq!(c.conflicts, vec![2]);
        let (listed, last) = store.list(0, 100, None).unwrap();
        assert_eq!(listed.len(), 3);
        assert_eq!(last, 3);
        assert_eq!(store.records_after(&gt, 1, 3, 10).unwrap().len(), 2);
    }

    #[tokio::test]
    async fn series_state_is_written_with_its_record_and_expiry_purges_content() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &id("hn")).unwrap();
        let gt = id("gt");
        let mut r = rec(1, b"secret content".to_vec());
        r.expires_at_ms = Some(1_000);
        r.series = Some(SeriesWrite {
            series_id: r.record_id.clone(),
            state: b"v1".to_vec(),
        });
        let mut later = rec(2, b"later".to_vec());
        later.expires_at_ms = Some(5_000);
        store
            .apply_received(&gt, &[r, later], 2, no_audit)
            .await
            .unwrap();
        assert_eq!(
            store.series("gt-0000000000000001").unwrap().as_deref(),
            Some(&b"v1"[..])
        );

        assert!(store.expired(999, 10).unwrap().is_empty());
        let due = store.expired(1_000, 10).unwrap();
        assert_eq!(due.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1]);
        store
            .purge(&gt, 1, 1_000, b"tombstone".to_vec(), b"purged".to_vec())
            .await
            .unwrap();
        assert!(
            store.expired(1_000, 10).unwrap().is_empty(),
            "expiry entry removed"
        );
        let got = store.get_by_id("gt-0000000000000001").unwrap().unwrap();
        assert_eq!(got.content, Content::Tombstone(b"tombstone".to_vec()));
        // Re-delivery of a purged record is a duplicate, not a conflict.
        let again = store
            .apply_received(&gt, &[rec(1, b"secret content".to_vec())], 2, no_audit)
            .await
            .unwrap();
        assert_eq!(again.duplicates, 1);
        assert!(again.conflicts.is_empty());
    }

    #[tokio::test]
    async fn combined_appends_skip_failed_makers_without_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &id("gt")).unwrap();
        let makers: Vec<_> = (0..5u8)
            .map(|i| {
                move |seq: u64| {
                    if i == 1 || i == 3 {
                        Err(format!("maker {i} refused"))
                    } else {
                        Ok((rec(seq, vec![i]), format!("entry {i}").into_bytes()))
                    }
                }
            })
            .collect();
        let out = store.append_own_many(makers).await.unwrap();
        let seqs: Vec<Result<u64, String>> = out.into_iter().map(|r| r.map(|s| s.seq)).collect();
        assert_eq!(
            seqs,
            vec![
                Ok(1),
                Err("maker 1 refused".into()),
                Ok(2),
                Err("maker 3 refused".into()),
                Ok(3)
            ]
        );
        assert_eq!(
            store.watermark(),
            Watermark {
                arrival: 3,
                own_seq: 3,
                audit: 3
            }
        );
        let entries = store.audit_entries(0, 10).unwrap();
        let bodies: Vec<&[u8]> = entries.iter().map(|e| e.body.as_slice()).collect();
        assert_eq!(bodies, vec![&b"entry 0"[..], b"entry 2", b"entry 4"]);
        assert!(entries.iter().all(RawEntry::hash_holds));
        assert_eq!(
            store
                .get_by_id("gt-0000000000000002")
                .unwrap()
                .unwrap()
                .content,
            Content::Envelope(vec![2])
        );
    }

    #[tokio::test]
    async fn a_bulk_append_is_gapless_and_durable_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &id("gt")).unwrap();
        store
            .append_own(|seq| Ok::<_, ()>((rec(seq, vec![1]), b"published".to_vec())))
            .await
            .unwrap()
            .unwrap();
        let seqs = store
            .append_own_batch(
                100,
                |seq| Ok::<_, ()>(rec(seq, vec![seq as u8])),
                |_| vec![b"bulk".to_vec()],
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(seqs, (2..=101).collect::<Vec<u64>>());
        assert_eq!(
            store.watermark(),
            Watermark {
                arrival: 101,
                own_seq: 101,
                audit: 2
            }
        );
        drop(store);
        let store = Store::open(dir.path(), &id("gt")).unwrap();
        assert_eq!(store.last_seq(&id("gt")).unwrap(), 101);
        assert_eq!(store.list(0, 1000, None).unwrap().0.len(), 101);
    }
}
