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
//!   `checkpoints`, `meta` (see `keys`), and `expiries` of records
//!   stored by schema version 2.
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
//! tombstone it composes ([`Store::purge`]), which the store writes over
//! the record's frame so that the content leaves the disk.

pub mod audit_log;
mod compact;
mod index;
mod keys;
pub mod record_log;
mod records;
mod sled_trees;
mod writes;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use sled::transaction::{ConflictableTransactionError, TransactionError};
use tokio::sync::watch;

use crate::records::model::NodeId;
use audit_log::{Anchor, HASH_LEN, RawEntry};
pub use compact::Compacted;
use index::{Expiries, Index};
use record_log::{FrameContent, Kind, RecordLog};

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
pub const SCHEMA_VERSION: u32 = 3;
/// Oldest on-disk format this build opens.
const OLDEST_SCHEMA_VERSION: u32 = 2;

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

/// How much disk the record log takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogUsage {
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

/// `meta` key of the audit anchor (see [`audit_log`]).
const ANCHOR_KEY: &str = "audit_anchor";
/// `meta` key of the committed length of the record log (u64 BE).
const LOG_END_KEY: &str = "record_log_end";
/// `meta` key of the lowest own sequence number the next publication may
/// follow (u64 BE): set when a lost own log is recovered from the peers.
const OWN_SEQ_FLOOR_KEY: &str = "own_seq_floor";
/// `meta` key of the number of the record log file in use (u64 BE; absent:
/// 0, `records.log`), which a compaction moves on.
const LOG_FILE_KEY: &str = "record_log_file";

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

impl WriterState {
    /// Chains `bodies` after the current head, without moving it: the
    /// caller commits with [`WriterState::advance_audit`] once the
    /// transaction holding them succeeded.
    fn chain(&self, bodies: Vec<Vec<u8>>) -> Chained {
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

    fn advance_audit(&mut self, chained: &Chained) {
        if let Some(last) = chained.entries.last() {
            self.audit_n = last.n;
            self.audit_head = last.hash;
            self.written.audit = last.n;
            self.audit_tail = chained.tail;
        }
    }
}

/// The store facade.
pub struct Store {
    db: sled::Db,
    cursors: sled::Tree,
    series: sled::Tree,
    expiries: sled::Tree,
    tombstones: sled::Tree,
    local_cases: sled::Tree,
    case_selectors: sled::Tree,
    audit: sled::Tree,
    checkpoints: sled::Tree,
    meta: sled::Tree,
    log: RecordLog,
    /// The data directory, and the number of the record log file in it.
    dir: PathBuf,
    log_number: u64,
    /// See [`LogUsage::reclaimable`].
    reclaimable: std::sync::atomic::AtomicU64,
    /// Each origin's cursor as far as it is durable: what [`Store::cursor`]
    /// reports, so that a cursor never runs ahead of the records it covers.
    durable_cursors: RwLock<HashMap<NodeId, u64>>,
    /// Serialises record writes across their two phases: the log append
    /// (outside the gate) and the sled transaction (inside it).
    appender: tokio::sync::Mutex<()>,
    index: RwLock<Index>,
    /// Frames whose content is still held, by expiry.
    expiring: Mutex<Expiries>,
    /// Held (shared) while frames are read; a purge takes it (exclusive)
    /// while it rewrites a frame, so no reader sees half a frame.
    frames: RwLock<()>,
    /// Purges committed in sled whose frame is not rewritten yet: record
    /// key → tombstone. Readers see the tombstone meanwhile.
    purging: Mutex<HashMap<Vec<u8>, Vec<u8>>>,
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

/// Audit entries chained after the writer's head, and where they go in
/// `audit_log` (see [`audit_log::plan`]).
struct Chained {
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

/// Writes chained audit entries into their `audit_log` groups within a
/// transaction.
fn put_audit(
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
fn audit_tail(audit: &sled::Tree) -> Result<Option<(audit_log::Tail, RawEntry)>, StoreError> {
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
fn move_v2_audit(legacy: &sled::Tree, audit: &sled::Tree) -> Result<u64, StoreError> {
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
        let tail = audit_tail(audit)?;
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

/// A frame to repair at open: a purge committed in sled whose rewrite of
/// the frame did not finish.
struct Repair {
    offset: u64,
    frame: record_log::Frame,
    key: Vec<u8>,
}

impl Store {
    /// Opens (or creates) the store of node `own` in `dir`, with the
    /// default cache.
    pub fn open(dir: &Path, own: &NodeId) -> Result<Self, StoreError> {
        Self::open_with_cache(dir, own, DEFAULT_CACHE_BYTES)
    }

    /// Opens (or creates) the store with a sled page cache of `cache_bytes`
    /// (sled's default is 1 GiB; a node does not need that much), cuts the
    /// record log back to what sled says is committed, finishes any purge
    /// a crash interrupted and rebuilds the indexes from the log.
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
                if !(OLDEST_SCHEMA_VERSION..=SCHEMA_VERSION).contains(&found) {
                    return Err(StoreError::Schema {
                        path,
                        found,
                        expected: SCHEMA_VERSION,
                    });
                }
                if found < SCHEMA_VERSION {
                    // Nothing to convert (see SCHEMA_VERSION); from now on
                    // an older build must refuse this store.
                    meta.insert("schema_version", &SCHEMA_VERSION.to_be_bytes())?;
                }
            }
            None => {
                // A new sled store beside a non-empty record log: sled's
                // files were lost or replaced. Cutting the log back to the
                // new store's committed length (0) would erase it.
                for (_, log) in log_files(dir)? {
                    if std::fs::metadata(&log).is_ok_and(|m| m.len() > 0) {
                        return Err(StoreError::Corrupt(format!(
                            "{} holds records but the sled store beside it is new",
                            log.display()
                        )));
                    }
                }
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
        let cursors = db.open_tree("cursors")?;
        // Everything on disk at open is durable.
        let mut durable_cursors = HashMap::new();
        for kv in cursors.iter() {
            let (k, v) = kv?;
            let bad = || StoreError::Corrupt("bad entry in cursors".into());
            let origin = std::str::from_utf8(&k)
                .ok()
                .and_then(|o| NodeId::parse(o).ok())
                .ok_or_else(bad)?;
            durable_cursors.insert(origin, keys::read_u64(&v).ok_or_else(bad)?);
        }
        let written_cursors = durable_cursors.clone();
        let series = db.open_tree("series")?;
        let expiries = db.open_tree("expiries")?;
        let tombstones = db.open_tree("tombstones")?;
        let local_cases = db.open_tree("local_cases")?;
        let case_selectors = db.open_tree("case_selectors")?;
        let audit = db.open_tree("audit_log")?;
        let moved = move_v2_audit(&db.open_tree("audit")?, &audit)?;
        if moved > 0 {
            tracing::info!(
                entries = moved,
                "audit entries of a version 2 store moved into groups"
            );
        }
        let checkpoints = db.open_tree("checkpoints")?;

        let committed = match meta.get(LOG_END_KEY)? {
            Some(v) => keys::read_u64(&v)
                .ok_or_else(|| StoreError::Corrupt("meta.record_log_end is not 8 bytes".into()))?,
            None => 0,
        };
        let log_number = match meta.get(LOG_FILE_KEY)? {
            Some(v) => keys::read_u64(&v)
                .ok_or_else(|| StoreError::Corrupt("meta.record_log_file is not 8 bytes".into()))?,
            None => 0,
        };
        let log_path = dir.join(record_log::file_name(log_number));
        // Tombstones in sled: purges in progress, and those too long for
        // their frame. Few; the rest live in the frames.
        let held: HashMap<Vec<u8>, Vec<u8>> = tombstones
            .iter()
            .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())))
            .collect::<Result<_, _>>()?;
        let mut index = Index::default();
        let mut expiring = Expiries::default();
        let mut repairs = Vec::new();
        let mut purged = Vec::new();
        let mut reclaimable = 0u64;
        let log = RecordLog::open(&log_path, committed, |s| {
            let h = &s.head;
            if h.position != index.len() as u64 + 1 {
                return Err(StoreError::Corrupt(format!(
                    "record log frame at offset {} has arrival position {}, expected {}",
                    s.offset,
                    h.position,
                    index.len() + 1
                )));
            }
            let key = keys::record_key(h.origin.as_str(), h.seq);
            match (s.content, held.contains_key(&key)) {
                (None, false) => {
                    return Err(StoreError::Corrupt(format!(
                        "record log frame at offset {} fails its checksum",
                        s.offset
                    )));
                }
                (None, true) | (Some(Kind::Envelope), true) => {
                    repairs.push(Repair {
                        offset: s.offset,
                        frame: record_log::Frame {
                            head: h.clone(),
                            content: FrameContent::TombstoneElsewhere,
                            len: s.len,
                        },
                        key,
                    });
                }
                (Some(Kind::Tombstone(len)), true) => {
                    reclaimable += record_log::slack(s.len, h, len);
                    purged.push(key);
                }
                (Some(Kind::Tombstone(len)), false) => {
                    reclaimable += record_log::slack(s.len, h, len);
                }
                (Some(Kind::TombstoneElsewhere), _) => {
                    reclaimable += record_log::slack(s.len, h, 0);
                }
                (Some(Kind::Envelope), false) => {
                    if let Some(at) = h.expires_at_ms {
                        expiring.insert(at, s.offset);
                    }
                }
            }
            index.insert(&h.origin, h.seq, h.position, &h.record_id, s.offset);
            Ok(())
        })?;
        // Expiries of frames written by schema version 2 are in sled.
        for kv in expiries.iter() {
            let (k, _) = kv?;
            let bad = || StoreError::Corrupt("bad key in expiries".into());
            let at = keys::read_u64(k.get(..8).ok_or_else(bad)?).ok_or_else(bad)?;
            let (origin, seq) = keys::record_key_of_expiry(&k)
                .and_then(keys::parse_record_key)
                .ok_or_else(bad)?;
            let offset = index.offset(&origin, seq).ok_or_else(|| {
                StoreError::Corrupt(format!("expiry of {origin}#{seq}, which is not held"))
            })?;
            expiring.insert(i64::try_from(at).unwrap_or(i64::MAX), offset);
        }
        for r in &repairs {
            let tombstone = held.get(&r.key).map(Vec::as_slice).unwrap_or_default();
            let (frame, inline) = record_log::tombstone_frame(&r.frame, tombstone)?;
            reclaimable += record_log::slack(
                r.frame.len,
                &r.frame.head,
                if inline { tombstone.len() } else { 0 },
            );
            log.overwrite(r.offset, &frame)?;
            if inline {
                purged.push(r.key.clone());
            }
        }
        if !repairs.is_empty() {
            log.sync()?;
        }
        index.shrink();
        expiring.shrink();
        // Another log file is what a compaction left: the old one, once the
        // new one is committed, or the new one, if it never was.
        for (n, path) in log_files(dir)? {
            if n != log_number {
                std::fs::remove_file(&path).map_err(|e| {
                    StoreError::Failed(format!("cannot remove {}: {e}", path.display()))
                })?;
                tracing::info!(file = %path.display(), "removed a record log left by a compaction");
            }
        }

        // After a recovery from the peers, the own log continues above
        // every number they had seen, held here or not.
        let floor = match meta.get(OWN_SEQ_FLOOR_KEY)? {
            Some(v) => keys::read_u64(&v)
                .ok_or_else(|| StoreError::Corrupt("meta.own_seq_floor is not 8 bytes".into()))?,
            None => 0,
        };
        let own_seq = index.last_seq(own).max(floor);
        let last_arrival = index.len() as u64;
        let tail = audit_tail(&audit)?;
        let audit_tail = tail.as_ref().map(|(t, _)| *t);
        let (audit_n, audit_head) = match tail {
            Some((_, e)) => (e.n, e.hash),
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
            cursors,
            series,
            expiries,
            tombstones,
            local_cases,
            case_selectors,
            audit,
            checkpoints,
            meta,
            log,
            dir: dir.to_path_buf(),
            log_number,
            reclaimable: std::sync::atomic::AtomicU64::new(reclaimable),
            durable_cursors: RwLock::new(durable_cursors),
            appender: tokio::sync::Mutex::new(()),
            index: RwLock::new(index),
            expiring: Mutex::new(expiring),
            frames: RwLock::new(()),
            purging: Mutex::new(HashMap::new()),
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
                audit_tail,
                cursors: written_cursors,
                log_end: committed,
                purged,
            }),
            flushed: std::sync::atomic::AtomicU64::new(0),
            durable,
        })
    }

    /// This node's id, as recorded in the store.
    pub fn own(&self) -> &NodeId {
        &self.own
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
        let (upto, written, cursors) = {
            let w = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
            (w.generation, w.written, w.cursors.clone())
        };
        self.db.flush_async().await?;
        self.flushed.fetch_max(upto, Ordering::AcqRel);
        {
            let mut durable = self
                .durable_cursors
                .write()
                .map_err(|_| StoreError::Poisoned)?;
            for (origin, seq) in cursors {
                let c = durable.entry(origin).or_default();
                *c = (*c).max(seq);
            }
        }
        self.durable.send_if_modified(|d| {
            let before = *d;
            d.arrival = d.arrival.max(written.arrival);
            d.own_seq = d.own_seq.max(written.own_seq);
            d.audit = d.audit.max(written.audit);
            *d != before
        });
        Ok(())
    }

    /// The record log's size, and what a compaction would reclaim.
    pub fn log_usage(&self) -> LogUsage {
        LogUsage {
            bytes: self.writer.lock().map_or(0, |w| w.log_end),
            reclaimable: self.reclaimable.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// The durable watermark now.
    pub fn watermark(&self) -> Watermark {
        *self.durable.borrow()
    }

    /// Notified whenever the durable watermark moves.
    pub fn subscribe(&self) -> watch::Receiver<Watermark> {
        self.durable.subscribe()
    }

    /// Flushes everything; used at shutdown.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let _gate = GATE.lock().await;
        self.db.flush_async().await?;
        Ok(())
    }
}

/// The record log files in `dir`, with their numbers.
fn log_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| StoreError::Failed(format!("cannot list {}: {e}", dir.display())))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| StoreError::Failed(format!("cannot list {}: {e}", dir.display())))?;
        if let Some(n) = entry.file_name().to_str().and_then(record_log::file_number) {
            out.push((n, entry.path()));
        }
    }
    Ok(out)
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

#[cfg(test)]
mod tests;
