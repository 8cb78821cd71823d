//! Opening's steps 8 to 12, the record log's: where the log is and how
//! much of it is committed, the scan that rebuilds the indexes from it,
//! and the repairs a crash may have left to do (expiries of old frames,
//! interrupted purges, compaction leftovers). Its own file because these
//! steps read and mend the log file, where the others open sled.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::store::StoreError;
use crate::store::index::{Expiries, Index};
use crate::store::record_log::{self, FrameContent, Kind, RecordLog};
use crate::store::{keys, meta};

/// Which record log file is in use and how much of it is committed.
pub(super) struct LogPlace {
    pub(super) number: u64,
    pub(super) committed: u64,
}

impl LogPlace {
    /// Step 8: read from `meta`, where every record write and every
    /// compaction commits them.
    pub(super) fn read(meta_tree: &sled::Tree) -> Result<Self, StoreError> {
        Ok(Self {
            committed: meta::read_u64(meta_tree, meta::LOG_END_KEY)?.unwrap_or(0),
            number: meta::read_u64(meta_tree, meta::LOG_FILE_KEY)?.unwrap_or(0),
        })
    }
}

/// A frame to repair at open: a purge committed in sled whose rewrite of
/// the frame did not finish.
struct Repair {
    offset: u64,
    frame: record_log::Frame,
    key: Vec<u8>,
}

/// What the scan of the record log found.
pub(super) struct LogScan {
    pub(super) log: RecordLog,
    pub(super) index: Index,
    pub(super) expiring: Expiries,
    /// Tombstones in sled: purges in progress, and those too long for
    /// their frame. Few; the rest live in the frames.
    held: HashMap<Vec<u8>, Vec<u8>>,
    repairs: Vec<Repair>,
    /// See `WriterState::purged`.
    pub(super) purged: Vec<Vec<u8>>,
    pub(super) reclaimable: u64,
}

/// Step 9: the record log, cut back to its committed length (frames past
/// it belong to a transaction that never committed), scanned once to
/// rebuild the indexes. Every frame must carry the next arrival position
/// and pass its checksum, unless sled holds its tombstone: then it is a
/// purge whose rewrite a crash interrupted, to repair in step 11.
pub(super) fn scan_log(
    dir: &Path,
    place: &LogPlace,
    tombstones: &sled::Tree,
) -> Result<LogScan, StoreError> {
    let held: HashMap<Vec<u8>, Vec<u8>> = tombstones
        .iter()
        .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())))
        .collect::<Result<_, _>>()?;
    let mut index = Index::default();
    let mut expiring = Expiries::default();
    let mut repairs = Vec::new();
    let mut purged = Vec::new();
    let mut reclaimable = 0u64;
    let path = dir.join(record_log::file_name(place.number));
    let log = RecordLog::open(&path, place.committed, |s| {
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
    Ok(LogScan {
        log,
        index,
        expiring,
        held,
        repairs,
        purged,
        reclaimable,
    })
}

/// Step 10: expiries of frames written by schema version 2, which carry
/// none in the frame: they are in sled's `expiries` tree.
pub(super) fn load_v2_expiries(
    expiries: &sled::Tree,
    scan: &mut LogScan,
) -> Result<(), StoreError> {
    for kv in expiries.iter() {
        let (k, _) = kv?;
        let bad = || StoreError::Corrupt("bad key in expiries".into());
        let at = keys::read_u64(k.get(..8).ok_or_else(bad)?).ok_or_else(bad)?;
        let (origin, seq) = keys::record_key_of_expiry(&k)
            .and_then(keys::parse_record_key)
            .ok_or_else(bad)?;
        let offset = scan.index.offset(&origin, seq).ok_or_else(|| {
            StoreError::Corrupt(format!("expiry of {origin}#{seq}, which is not held"))
        })?;
        scan.expiring
            .insert(i64::try_from(at).unwrap_or(i64::MAX), offset);
    }
    Ok(())
}

/// Step 11: purges whose rewrite a crash interrupted are finished: the
/// frame is rewritten with the tombstone sled holds, then the log synced.
/// Until then the content would still be on disk past its expiry.
pub(super) fn repair_purges(scan: &mut LogScan) -> Result<(), StoreError> {
    for r in &scan.repairs {
        let tombstone = scan.held.get(&r.key).map(Vec::as_slice).unwrap_or_default();
        let (frame, inline) = record_log::tombstone_frame(&r.frame, tombstone)?;
        scan.reclaimable += record_log::slack(
            r.frame.len,
            &r.frame.head,
            if inline { tombstone.len() } else { 0 },
        );
        scan.log.overwrite(r.offset, &frame)?;
        if inline {
            scan.purged.push(r.key.clone());
        }
    }
    if !scan.repairs.is_empty() {
        scan.log.sync()?;
    }
    Ok(())
}

/// Step 12: a record log file other than the one in use is what a
/// compaction left: the old one, once the new one is committed, or the
/// new one, if it never was (see `compact`).
pub(super) fn remove_compaction_leftovers(dir: &Path, in_use: u64) -> Result<(), StoreError> {
    for (n, path) in log_files(dir)? {
        if n != in_use {
            std::fs::remove_file(&path).map_err(|source| StoreError::RemoveLeftover {
                path: path.clone(),
                source,
            })?;
            tracing::info!(file = %path.display(), "removed a record log left by a compaction");
        }
    }
    Ok(())
}

/// The record log files in `dir`, with their numbers.
pub(in crate::store) fn log_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let list_error = |source| StoreError::ListDir {
        path: dir.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(list_error)? {
        let entry = entry.map_err(list_error)?;
        if let Some(n) = entry.file_name().to_str().and_then(record_log::file_number) {
            out.push((n, entry.path()));
        }
    }
    Ok(out)
}
