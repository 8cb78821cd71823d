//! The node's durable store: records in an append-only log with in-memory
//! indexes, everything else in sled, behind one facade.
//!
//! Nothing above this module names sled or the log, so either can be
//! replaced without touching the rest (garage had to drop sled; see
//! `docs/decisions/0001-store-behind-a-facade.md` and
//! `docs/decisions/0009-record-log.md`).
//!
//! - [`record_log`]: the records, framed and checksummed, appended to one
//!   file; a purge rewrites a frame in place, and an offline compaction
//!   (`compact`) writes them all again without the purges' padding.
//! - `index`: per origin seq → frame, arrival position → frame, record id
//!   → position, expiry → frame, all in memory, rebuilt from the log at
//!   open.
//! - sled: `series` (states after a series' first record), `cursors`,
//!   `tombstones`, `local_cases`, `case_selectors`, `audit_log` (entries
//!   in groups, see [`audit_log`]),
//!   `checkpoints`, `meta` (see `keys`), `publish_keys` (the keys that
//!   make a retried publication safe, see [`publish_keys`]), and
//!   `expiries` of records stored by schema version 2.
//!
//! Each concern has its module and, for callers, a borrowed view:
//! `records` and `writes` ([`Store::records`]: the record log, its
//! indexes and the trees written with a record), `cursors`, `series`
//! ([`Store::series`]), `cases` ([`Store::cases`]: `local_cases` and
//! `case_selectors`), `audit` ([`Store::audit`]: `audit_log`),
//! `checkpoints` ([`Store::checkpoints`]) and `meta`. `open` is the
//! sequence of steps that opens a store; `compact` rewrites the log
//! offline.
//!
//! Nothing in sled grows by an entry with each record stored: what does
//! (a record's expiry, the state of the series it opens) travels in its
//! frame, and audit entries (one per publication) share a sled entry with
//! 31 others. sled's memory grows with the number of its entries, whatever
//! its cache size (ADR 0010).
//!
//! Durability rule: a write is acknowledged only after it is on disk.
//! Order per write: the frames are appended and `fdatasync`ed, then one
//! sled transaction writes everything else the write changes (later
//! series states, the origin's cursor, the audit entries) together with the new
//! committed length of the log (`meta` key `record_log_end`), then sled is
//! flushed. At open the log is cut back to `record_log_end`: frames past it
//! belong to a transaction that never committed, so nothing refers to them.
//!
//! Visibility rule: readers see only what is durable. The store keeps a
//! [`Watermark`] of the highest arrival position and own sequence number
//! known to be flushed; pull streams and watches never look past it. Without
//! it, a peer could receive a record that the origin then loses in a crash,
//! and the origin would later reuse that sequence number for another record.
//!
//! Record writers are serialised by one lock held across the log append
//! and the in-memory transaction; sled flushes are shared: a writer whose
//! transaction is already covered by a completed flush does not flush again
//! (group commit).
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
//! tombstone it composes ([`Records::purge`]), which the store writes over
//! the record's frame so that the content leaves the disk.

mod audit;
pub mod audit_log;
mod cases;
mod checkpoints;
mod compact;
mod cursors;
mod filters;
mod index;
mod keys;
mod meta;
mod open;
pub mod publish_keys;
pub mod record_log;
mod records;
mod series;
mod writes;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use sled::transaction::{ConflictableTransactionError, TransactionError};
use tokio::sync::watch;

use crate::records::model::NodeId;
pub use audit::Audit;
pub(crate) use audit::query_note;
use audit_log::HASH_LEN;
pub use cases::Cases;
pub use checkpoints::Checkpoints;
pub use compact::Compacted;
pub use filters::{Filters, Keyed, OwnWrite, PeerChange};
use index::{Expiries, Index};
pub use publish_keys::PublishKeys;
use record_log::RecordLog;
pub use records::Records;
pub use series::Series;

/// Serialises sled transactions and flushes across the whole process (see
/// the module's NOTE).
static GATE: std::sync::LazyLock<tokio::sync::Mutex<()>> =
    std::sync::LazyLock::new(|| tokio::sync::Mutex::new(()));

/// Page cache of a store unless configured otherwise: 32 MiB, the
/// default of `node.cache_mb`, where it is defined.
pub use crate::config::DEFAULT_CACHE_BYTES;

/// Version of the on-disk format written by this build. Version 2 moved
/// the records out of sled into the record log; version 3 moved each
/// record's expiry and the state of the series it opens into its frame.
/// A version 2 store is upgraded in place at open: its frames and sled
/// entries stay valid and are read as they are.
pub(crate) const SCHEMA_VERSION: u32 = 3;
/// Oldest on-disk format this build opens.
const OLDEST_SCHEMA_VERSION: u32 = 2;

/// Why the store could not open, read or write. Each variant names the
/// condition; the messages are part of what an operator sees.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled reported an error of its own.
    #[error("store I/O failed: {0}")]
    Sled(#[from] sled::Error),
    /// The data directory could not be created.
    #[error("store I/O failed: IO error: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The data directory lets others in.
    #[error(
        "data directory {path} has mode {mode:03o}; it holds other members' records, so only its owner may enter it: run `chmod 700 {path}` (and check who could read it meanwhile)"
    )]
    DataDirOpen { path: String, mode: u32 },
    /// A file or directory of the store could not be made owner-only.
    #[error("cannot set mode {mode:04o} on {path}: {source}")]
    Chmod {
        path: String,
        mode: u32,
        source: std::io::Error,
    },
    /// The store was written by a build whose format this one does not read.
    #[error("store at {path} has schema version {found}; this enlace reads version {expected}")]
    Schema {
        path: String,
        found: u32,
        expected: u32,
    },
    /// The store belongs to another node.
    #[error("store at {path} belongs to node {found}, not {expected}")]
    WrongNode {
        path: String,
        found: String,
        expected: String,
    },
    /// Another handle (another process, most likely) holds sled's lock on
    /// the data directory.
    #[error(
        "store at {path} is in use by another process (is another node running on this data directory?)"
    )]
    Locked { path: String },
    /// A tool that reads an existing store found none: a mistyped data
    /// directory must not become a new, empty store.
    #[error(
        "no store at {path}: check --data-dir or node.data_dir (a running node's store is read \
         with --client)"
    )]
    NoStore { path: String },
    /// What is on disk contradicts itself or the format.
    #[error(
        "store is corrupt: {0}. Restore the data directory from its backup; without one, move it \
         aside and run `enlace node recover` (runbook section 6)"
    )]
    Corrupt(String),
    /// A record to store reuses the id of another.
    #[error("record id {0} is already used by another record")]
    DuplicateRecordId(String),
    /// A lock of the store was poisoned by a panic.
    #[error("a writer panicked while holding the store lock")]
    Poisoned,
    /// The data directory could not be listed.
    #[error("store write failed: cannot list {}: {source}", path.display())]
    ListDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A record log file that a compaction left behind could not be removed.
    #[error("store write failed: cannot remove {}: {source}", path.display())]
    RemoveLeftover {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The record log file could not be opened.
    #[error("store write failed: record log: open {}: {source}", path.display())]
    LogOpen {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The record log file could not be read, written or synced.
    #[error("store write failed: record log: {action}: {source}")]
    LogIo {
        action: &'static str,
        source: std::io::Error,
    },
    /// A compaction could not write, sync or remove a file.
    #[error("store write failed: compaction: {action} {}: {source}", path.display())]
    CompactionIo {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A lost audit log can be resumed only in a store whose log is empty.
    #[error(
        "the audit log already holds entries up to {held}: only an empty log (a store created by `enlace node recover`) resumes after a lost one"
    )]
    AuditNotEmpty { held: u64 },
    /// A field of a record is longer than its frame can say.
    #[error("store write failed: {field} of {len} bytes")]
    FieldTooLong { field: &'static str, len: usize },
    /// A frame would be longer than the log's length prefix can say.
    #[error("store write failed: record frame over 4 GiB")]
    FrameTooLong,
    /// A write of one record gave back no outcome for it.
    #[error("store write failed: no outcome for the one record appended")]
    NoOutcome,
    /// A write failed for a reason its caller states (the publish queue
    /// uses this to hand one failure to every publication it batched).
    #[error("store write failed: {0}")]
    Failed(String),
}

/// How much disk the record log takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LogUsage {
    /// Committed length of the record log.
    pub bytes: u64,
    /// Of those, what `enlace node compact` would reclaim: the padding that
    /// purges left in place of content.
    pub reclaimable: u64,
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
    /// The envelope, if the content has not been purged.
    pub fn envelope(&self) -> Option<&[u8]> {
        match self {
            Content::Envelope(b) => Some(b),
            Content::Tombstone(_) => None,
        }
    }
}

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
    /// The publication key its client sent, to write in the same
    /// transaction (see [`publish_keys`]); only for this node's own new
    /// records.
    pub publish_key: Option<Vec<u8>>,
}

/// What [`Records::apply_received`] did.
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

/// What the writers have written, durable or not; one lock, taken inside
/// the gate for the length of a transaction.
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
    /// The last `audit_log` group, as written (durable or not).
    audit_tail: Option<audit_log::Tail>,
    /// Each origin's cursor as written (durable or not).
    cursors: HashMap<NodeId, u64>,
    /// Bytes of the record log written and committed.
    log_end: u64,
    /// Record keys whose `tombstones` entry served only to finish a purge
    /// that has since finished; the next purge's transaction removes them.
    purged: Vec<Vec<u8>>,
}

/// The sled database and its trees (key encodings in `keys`; each tree's
/// operations in the module named for what it holds).
struct Trees {
    db: sled::Db,
    /// Each origin's cursor (see `cursors`).
    cursors: sled::Tree,
    /// Series states after a series' first record, and MLA request states
    /// (see `series`).
    series: sled::Tree,
    /// Expiries of records stored by schema version 2.
    expiries: sled::Tree,
    /// Tombstones of purges in progress, and those too long for their frame.
    tombstones: sled::Tree,
    /// Local cases and their selector index (see `cases`).
    local_cases: sled::Tree,
    case_selectors: sled::Tree,
    /// The audit chain, in groups (`audit_log`; see `audit`).
    audit: sled::Tree,
    /// Checkpoints of audit logs, this node's and its peers' (see
    /// `checkpoints`).
    checkpoints: sled::Tree,
    /// Schema version, node id, log place, audit anchor, notes (see `meta`).
    meta: sled::Tree,
    /// Publication keys → the record published with each (see
    /// `publish_keys`); never replicated.
    publish_keys: sled::Tree,
    /// This node's own identifiers, sealed, and their filter entries;
    /// never replicated (see `filters`).
    own_filter: sled::Tree,
    /// Peers' match filters as their records built them (see `filters`).
    peer_filters: sled::Tree,
}

/// The record log file in use and what goes with it.
struct Log {
    file: RecordLog,
    /// The data directory, and the number of the record log file in it.
    dir: PathBuf,
    number: u64,
    /// Held (shared) while frames are read; a purge takes it (exclusive)
    /// while it rewrites a frame, so no reader sees half a frame.
    frames: RwLock<()>,
    /// See [`LogUsage::reclaimable`].
    reclaimable: AtomicU64,
}

/// What is known to be on disk: only this is shown to readers.
struct Durable {
    /// Generation covered by the last completed flush.
    flushed: AtomicU64,
    /// Each origin's cursor as far as it is durable: what
    /// [`Records::cursor`] reports, so that a cursor never runs ahead of
    /// the records it covers.
    cursors: RwLock<HashMap<NodeId, u64>>,
    /// The durable watermark, and those watching it move.
    watermark: watch::Sender<Watermark>,
}

/// The store facade. Its operations are reached by concern through
/// borrowed views: [`Store::records`], [`Store::audit`], [`Store::cases`],
/// [`Store::checkpoints`], [`Store::series`].
pub struct Store {
    own: NodeId,
    trees: Trees,
    log: Log,
    /// Per origin seq → frame, arrival → frame, record id → arrival.
    index: RwLock<Index>,
    /// Frames whose content is still held, by expiry.
    expiring: Mutex<Expiries>,
    /// Purges committed in sled whose frame is not rewritten yet: record
    /// key → tombstone. Readers see the tombstone meanwhile.
    purging: Mutex<HashMap<Vec<u8>, Vec<u8>>>,
    /// Serialises record writes across their two phases: the log append
    /// (outside the gate) and the sled transaction (inside it).
    appender: tokio::sync::Mutex<()>,
    writer: Mutex<WriterState>,
    durable: Durable,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("own", &self.own)
            .field("durable", &*self.durable.watermark.borrow())
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
    /// The records: this node's own log, what peers send, reads by origin,
    /// id and arrival, expiry and purge, cursors.
    pub fn records(&self) -> Records<'_> {
        Records { store: self }
    }

    /// The audit chain: appends, reads, pruning, and notes written with an
    /// entry.
    pub fn audit(&self) -> Audit<'_> {
        Audit { store: self }
    }

    /// Local cases and their selector index.
    pub fn cases(&self) -> Cases<'_> {
        Cases { store: self }
    }

    /// This node's own identifiers and filter entries, and its peers'
    /// match filters.
    pub fn filters(&self) -> Filters<'_> {
        Filters { store: self }
    }

    /// Checkpoints of audit logs: this node's own and its peers'.
    pub fn checkpoints(&self) -> Checkpoints<'_> {
        Checkpoints { store: self }
    }

    /// Series states and other keyed states (MLA requests).
    pub fn series(&self) -> Series<'_> {
        Series { store: self }
    }

    /// The keys that make a retried publication safe.
    pub fn publish_keys(&self) -> PublishKeys<'_> {
        PublishKeys { store: self }
    }

    /// This node's id, as recorded in the store.
    pub fn own(&self) -> &NodeId {
        &self.own
    }

    /// Returns once write `generation` is on disk. One flush covers every
    /// write before it, so writers waiting together share it (group commit).
    async fn make_durable(&self, generation: u64) -> Result<(), StoreError> {
        if self.durable.flushed.load(Ordering::Acquire) >= generation {
            return Ok(());
        }
        let _gate = GATE.lock().await;
        if self.durable.flushed.load(Ordering::Acquire) >= generation {
            return Ok(());
        }
        let (upto, written, cursors) = {
            let w = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
            (w.generation, w.written, w.cursors.clone())
        };
        self.trees.db.flush_async().await?;
        self.durable.flushed.fetch_max(upto, Ordering::AcqRel);
        {
            let mut durable = self
                .durable
                .cursors
                .write()
                .map_err(|_| StoreError::Poisoned)?;
            for (origin, seq) in cursors {
                let c = durable.entry(origin).or_default();
                *c = (*c).max(seq);
            }
        }
        self.durable.watermark.send_if_modified(|d| {
            let before = *d;
            d.arrival = d.arrival.max(written.arrival);
            d.own_seq = d.own_seq.max(written.own_seq);
            d.audit = d.audit.max(written.audit);
            *d != before
        });
        Ok(())
    }

    /// The record log's size, and what a compaction would reclaim.
    pub(crate) fn log_usage(&self) -> LogUsage {
        LogUsage {
            bytes: self.writer.lock().map_or(0, |w| w.log_end),
            reclaimable: self.log.reclaimable.load(Ordering::Relaxed),
        }
    }

    /// The durable watermark now.
    pub fn watermark(&self) -> Watermark {
        *self.durable.watermark.borrow()
    }

    /// Notified whenever the durable watermark moves.
    pub fn subscribe(&self) -> watch::Receiver<Watermark> {
        self.durable.watermark.subscribe()
    }

    /// Flushes everything; used at shutdown.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let _gate = GATE.lock().await;
        self.trees.db.flush_async().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
