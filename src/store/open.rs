//! Opening a store: a fixed sequence of steps, each below with why it is
//! there. [`Store::open_with_cache`] is the list.
//!
//! The order matters. The checks that refuse a store (schema version,
//! owner) come before anything creates a tree in it. The log's place in
//! `meta` is read before the scan, which cuts the log back to it. The
//! scan must see every tombstone held in sled before it meets their
//! frames, and the repairs of interrupted purges come after the scan,
//! which finds them. Nothing here flushes sled: a flush may run only
//! inside the store gate (ADR 0004), and opening is synchronous; what
//! opening writes becomes durable with the first commit, and if the node
//! dies before that the next open writes it again.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, RwLock};

use tokio::sync::watch;

use super::audit_log::{self, RawEntry};
use super::index::Index;
use super::{
    DEFAULT_CACHE_BYTES, Durable, Log, OLDEST_SCHEMA_VERSION, SCHEMA_VERSION, Store, StoreError,
    Trees, Watermark, WriterState, audit, cursors, meta,
};
use crate::records::model::NodeId;

mod log_scan;

pub(super) use log_scan::log_files;
use log_scan::{
    LogPlace, LogScan, load_v2_expiries, remove_compaction_leftovers, repair_purges, scan_log,
};

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
    ///
    /// A damaged store is refused with [`StoreError::Corrupt`], which names
    /// the remedy: sled panics on some damaged files rather than returning
    /// an error, and that panic is caught here, so that no tool and no
    /// node dies of it.
    pub fn open_with_cache(dir: &Path, own: &NodeId, cache_bytes: u64) -> Result<Self, StoreError> {
        let steps = std::panic::AssertUnwindSafe(|| Self::open_steps(dir, own, cache_bytes));
        match std::panic::catch_unwind(steps) {
            Ok(Err(StoreError::Sled(e @ sled::Error::Corruption { .. }))) => Err(
                StoreError::Corrupt(format!("{}: sled's files: {e}", dir.display())),
            ),
            Ok(opened) => opened,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".to_owned());
                Err(StoreError::Corrupt(format!(
                    "{}: sled could not read its files ({what})",
                    dir.display()
                )))
            }
        }
    }

    /// Whether a running node (another handle) holds the store in `dir`.
    pub fn in_use(dir: &Path) -> bool {
        lock_held(dir)
    }

    /// Opens the store in `dir` only if there is one: for the tools that
    /// read or rewrite an existing store, where a mistyped directory must
    /// not become a new, empty store. Nothing is created.
    pub fn open_existing(dir: &Path, own: &NodeId, cache_bytes: u64) -> Result<Self, StoreError> {
        if !dir.join("db").is_file() {
            return Err(StoreError::NoStore {
                path: dir.display().to_string(),
            });
        }
        Self::open_with_cache(dir, own, cache_bytes)
    }

    /// The steps, in order.
    fn open_steps(dir: &Path, own: &NodeId, cache_bytes: u64) -> Result<Self, StoreError> {
        prepare_dir(dir)?;
        let db = open_db(dir, cache_bytes)?;
        restrict_files(dir)?;
        let meta = db.open_tree("meta")?;
        check_schema_version(&meta, dir)?;
        claim_for_node(&meta, dir, own)?;
        let (trees, v2_audit) = Trees::open(db, meta)?;
        let durable_cursors = cursors::load(&trees.cursors)?;
        migrate_v2_audit(&v2_audit, &trees.audit)?;
        let place = LogPlace::read(&trees.meta)?;
        let mut scan = scan_log(dir, &place, &trees.tombstones)?;
        load_v2_expiries(&trees.expiries, &mut scan)?;
        repair_purges(&mut scan)?;
        remove_compaction_leftovers(dir, place.number)?;
        let heads = Heads::read(&trees, &scan.index, own)?;
        Ok(Self::assemble(
            own,
            dir,
            trees,
            place,
            scan,
            durable_cursors,
            heads,
        ))
    }

    /// The store from what the steps found. Everything on disk at open is
    /// durable, so what is written and what is durable start equal.
    fn assemble(
        own: &NodeId,
        dir: &Path,
        trees: Trees,
        place: LogPlace,
        mut scan: LogScan,
        durable_cursors: HashMap<NodeId, u64>,
        heads: Heads,
    ) -> Self {
        scan.index.shrink();
        scan.expiring.shrink();
        let (watermark, _) = watch::channel(heads.watermark);
        Self {
            own: own.clone(),
            trees,
            log: Log {
                file: scan.log,
                dir: dir.to_path_buf(),
                number: place.number,
                frames: RwLock::new(()),
                reclaimable: AtomicU64::new(scan.reclaimable),
            },
            index: RwLock::new(scan.index),
            expiring: Mutex::new(scan.expiring),
            purging: Mutex::new(HashMap::new()),
            appender: tokio::sync::Mutex::new(()),
            writer: Mutex::new(WriterState {
                own_seq: heads.watermark.own_seq,
                next_arrival: heads.watermark.arrival + 1,
                written: heads.watermark,
                generation: 0,
                audit_n: heads.watermark.audit,
                audit_head: heads.audit_head,
                audit_tail: heads.audit_tail,
                cursors: durable_cursors.clone(),
                log_end: place.committed,
                purged: scan.purged,
            }),
            durable: Durable {
                flushed: AtomicU64::new(0),
                cursors: RwLock::new(durable_cursors),
                watermark,
            },
        }
    }
}

/// Step 1: the data directory exists and only its owner can enter it: the
/// store holds other members' records. A new directory is made 0700; an
/// existing one that is not 0700 is refused rather than quietly changed,
/// since others may already have read it, which the operator should know.
fn prepare_dir(dir: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let existed = dir.exists();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| StoreError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        let mode = std::fs::metadata(dir)
            .map_err(|source| StoreError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?
            .permissions()
            .mode()
            & 0o777;
        if existed && mode != 0o700 {
            return Err(StoreError::DataDirOpen {
                path: dir.display().to_string(),
                mode,
            });
        }
        if mode != 0o700 {
            // NOTE: a umask can take bits off what DirBuilder asked for.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(
                |source| StoreError::Chmod {
                    path: dir.display().to_string(),
                    mode: 0o700,
                    source,
                },
            )?;
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(())
}

/// Step 2b: what sled created is readable by its owner only (files 0600,
/// directories 0700), whatever the umask of the process that opened it.
/// The binary also sets a umask of 077 at `node run`
/// ([`crate::node::restrict_new_files`]), which covers the files sled
/// makes later (snapshots); the directory's own mode already keeps
/// others out.
fn restrict_files(dir: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut dirs = vec![dir.to_path_buf()];
        while let Some(d) = dirs.pop() {
            let entries = std::fs::read_dir(&d).map_err(|source| StoreError::Chmod {
                path: d.display().to_string(),
                mode: 0o700,
                source,
            })?;
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(meta) = std::fs::symlink_metadata(&path) else {
                    continue;
                };
                let want = if meta.is_dir() {
                    dirs.push(path.clone());
                    0o700
                } else if meta.is_file() {
                    0o600
                } else {
                    continue;
                };
                if meta.permissions().mode() & 0o777 != want {
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(want))
                        .map_err(|source| StoreError::Chmod {
                            path: path.display().to_string(),
                            mode: want,
                            source,
                        })?;
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Step 2: the sled database. sled releases its file lock from a
/// background thread after the last handle is dropped, so a store closed a
/// moment ago (a node restarted in the same process) may still be locked:
/// retry for a short while before reporting that another process holds it.
///
/// sled 0.34 reports a held lock as an untyped I/O error whose only clue
/// is its text, so a failure of kind `Other` is checked against the lock
/// itself ([`lock_held`]) rather than by its message.
fn open_db(dir: &Path, cache_bytes: u64) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    // The lock may be released between sled's attempt and ours: one more
    // attempt then, before the error is taken for what it says.
    let mut tried_after_release = false;
    loop {
        let error = match sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .cache_capacity(cache_bytes)
            .open()
        {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e)) if e.kind() == std::io::ErrorKind::Other => e,
            Err(e) => return Err(e.into()),
        };
        if lock_held(dir) {
            if std::time::Instant::now() > deadline {
                return Err(StoreError::Locked {
                    path: dir.display().to_string(),
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        } else if !tried_after_release {
            tried_after_release = true;
        } else {
            return Err(sled::Error::Io(error).into());
        }
    }
}

/// Whether another handle holds the exclusive lock sled takes on its
/// `db` file at open (`flock` on Unix, `LockFileEx` on Windows). A
/// missing or unreadable file holds no lock.
fn lock_held(dir: &Path) -> bool {
    use fs2::FileExt;
    let Ok(file) = std::fs::File::open(dir.join("db")) else {
        return false;
    };
    match file.try_lock_exclusive() {
        // Taken for a moment only; closing the file releases it.
        Ok(()) => false,
        Err(e) => e.raw_os_error() == fs2::lock_contended_error().raw_os_error(),
    }
}

/// Step 3: the store is in a format this build reads. A version it does
/// not know is refused; an older one it reads is marked as the current
/// version, since nothing on disk needs converting (see `SCHEMA_VERSION`)
/// and an older build must then refuse it. A new store is marked too, but
/// not beside a record log that holds records: sled's files were lost or
/// replaced, and cutting the log back to the new store's committed length
/// (0) would erase it.
fn check_schema_version(meta_tree: &sled::Tree, dir: &Path) -> Result<(), StoreError> {
    match meta::schema_version(meta_tree)? {
        Some(found) => {
            if !(OLDEST_SCHEMA_VERSION..=SCHEMA_VERSION).contains(&found) {
                return Err(StoreError::Schema {
                    path: dir.display().to_string(),
                    found,
                    expected: SCHEMA_VERSION,
                });
            }
            if found < SCHEMA_VERSION {
                meta::set_schema_version(meta_tree, SCHEMA_VERSION)?;
            }
        }
        None => {
            for (_, log) in log_files(dir)? {
                if std::fs::metadata(&log).is_ok_and(|m| m.len() > 0) {
                    return Err(StoreError::Corrupt(format!(
                        "{} holds records but the sled store beside it is new",
                        log.display()
                    )));
                }
            }
            meta::set_schema_version(meta_tree, SCHEMA_VERSION)?;
        }
    }
    Ok(())
}

/// Step 4: the store belongs to this node, or to no node yet (then it is
/// claimed). A node that opened another's store would number its own
/// records in that node's log.
fn claim_for_node(meta_tree: &sled::Tree, dir: &Path, own: &NodeId) -> Result<(), StoreError> {
    match meta_tree.get(meta::NODE_ID_KEY)? {
        Some(v) if v.as_ref() != own.as_str().as_bytes() => Err(StoreError::WrongNode {
            path: dir.display().to_string(),
            found: String::from_utf8_lossy(&v).into_owned(),
            expected: own.to_string(),
        }),
        Some(_) => Ok(()),
        None => {
            meta_tree.insert(meta::NODE_ID_KEY, own.as_str())?;
            Ok(())
        }
    }
}

impl Trees {
    /// Step 5: every tree, opened (created if new) in the order the
    /// format has always opened them. Also returns the schema version 2
    /// `audit` tree, which only the migration of step 7 reads.
    fn open(db: sled::Db, meta: sled::Tree) -> Result<(Self, sled::Tree), StoreError> {
        let cursors = db.open_tree("cursors")?;
        let series = db.open_tree("series")?;
        let expiries = db.open_tree("expiries")?;
        let tombstones = db.open_tree("tombstones")?;
        let local_cases = db.open_tree("local_cases")?;
        let case_selectors = db.open_tree("case_selectors")?;
        let audit = db.open_tree("audit_log")?;
        let v2_audit = db.open_tree("audit")?;
        let checkpoints = db.open_tree("checkpoints")?;
        let publish_keys = db.open_tree("publish_keys")?;
        let own_filter = db.open_tree("own_filter")?;
        let peer_filters = db.open_tree("peer_filters")?;
        let trees = Self {
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
            publish_keys,
            own_filter,
            peer_filters,
        };
        Ok((trees, v2_audit))
    }
}

// Step 6 is `cursors::load`: every origin's cursor as durable.

/// Step 7: a schema version 2 store's audit entries move into groups
/// (ADR 0010). Resumes where an interrupted open left off.
fn migrate_v2_audit(v2_audit: &sled::Tree, audit_tree: &sled::Tree) -> Result<(), StoreError> {
    let moved = audit::move_v2_entries(v2_audit, audit_tree)?;
    if moved > 0 {
        tracing::info!(
            entries = moved,
            "audit entries of a version 2 store moved into groups"
        );
    }
    Ok(())
}

/// Where the writers start: the last arrival position, own sequence number
/// and audit entry held, all durable.
struct Heads {
    watermark: Watermark,
    audit_head: [u8; audit_log::HASH_LEN],
    audit_tail: Option<audit_log::Tail>,
}

impl Heads {
    /// Step 13. After a recovery from the peers the own log continues
    /// above every number they had seen, held here or not (`own_seq_floor`).
    /// The audit chain continues from its last entry, or from the anchor if
    /// pruning left none.
    fn read(trees: &Trees, index: &Index, own: &NodeId) -> Result<Self, StoreError> {
        let floor = meta::read_u64(&trees.meta, meta::OWN_SEQ_FLOOR_KEY)?.unwrap_or(0);
        let own_seq = index.last_seq(own).max(floor);
        let tail: Option<(audit_log::Tail, RawEntry)> = audit::last_group(&trees.audit)?;
        let audit_tail = tail.as_ref().map(|(t, _)| *t);
        let (audit_n, audit_head) = match tail {
            Some((_, e)) => (e.n, e.hash),
            None => match meta::anchor(&trees.meta)? {
                Some(a) => (a.n, a.hash),
                None => (0, audit_log::GENESIS),
            },
        };
        Ok(Self {
            watermark: Watermark {
                arrival: index.len() as u64,
                own_seq,
                audit: audit_n,
            },
            audit_head,
            audit_tail,
        })
    }
}
