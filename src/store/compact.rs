//! Compaction of the record log, offline.
//!
//! A purge rewrites a frame in place at its old length: the content is gone
//! from the disk, but its bytes stay as padding, so the log only grows.
//! Compaction writes every frame again at its natural length into the next
//! log file (`records.<n>.log`), then one sled transaction names that file
//! and its length (`meta` keys `record_log_file`, `record_log_end`) and
//! drops the tombstones that moved into their frames. Only then is the old
//! file removed. A crash before the transaction leaves the new file
//! unnamed, and one after it leaves the old file; the next open removes
//! whichever is not named (see `open`).
//!
//! A compaction never grows the log: tombstones kept in sled (too long
//! for the frame they replaced) move into their frames, and where that
//! outweighs the padding reclaimed, the new file is dropped and the old
//! one kept ([`Compacted::rewritten`] is false).
//!
//! It takes the store by value: nothing else can read or write it
//! meanwhile, which is why it is a command for a stopped node
//! (`enlace node compact`) rather than a background task. Frame offsets
//! change, but nothing on disk refers to them: the indexes are rebuilt at
//! every open.

use std::io::Write;

use sled::Transactional;

use super::record_log::{self, FrameContent};
use super::{GATE, Store, StoreError, TxResult, keys, meta, tx_error};

/// What a compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    /// Frames written (every record held).
    pub frames: u64,
    /// Length of the log before and after, in bytes.
    pub before: u64,
    pub after: u64,
    /// Whether the log was rewritten; false when that would have made it
    /// longer.
    pub rewritten: bool,
}

fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> StoreError {
    StoreError::CompactionIo {
        action,
        path: path.to_path_buf(),
        source,
    }
}

impl Store {
    /// Rewrites the record log without a purge's padding and closes the
    /// store; reopen it to go on. See the module doc.
    pub async fn compact(self) -> Result<Compacted, StoreError> {
        let before = self
            .writer
            .lock()
            .map_err(|_| StoreError::Poisoned)?
            .log_end;
        let offsets: Vec<u64> = {
            let index = self.index.read().map_err(|_| StoreError::Poisoned)?;
            (1..=index.len() as u64)
                .map(|p| {
                    index
                        .arrival(p)
                        .ok_or_else(|| StoreError::Corrupt(format!("arrival {p} is missing")))
                })
                .collect::<Result<_, _>>()?
        };
        let next = self.log.number + 1;
        let path = self.log.dir.join(record_log::file_name(next));
        let file = record_log::create_owner_only(&path, true)?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, &file);
        let mut after = 0u64;
        // Tombstones in sled that the new frames hold.
        let mut moved: Vec<Vec<u8>> = Vec::new();
        for &at in &offsets {
            let frame = self.log.file.read(at)?;
            let key = keys::record_key(frame.head.origin.as_str(), frame.head.seq);
            let elsewhere = match frame.content {
                FrameContent::TombstoneElsewhere => self.trees.tombstones.get(&key)?,
                FrameContent::Held(_) => None,
            };
            let bytes = record_log::compacted(&frame, elsewhere.as_deref())?;
            if elsewhere.is_some() {
                moved.push(key);
            }
            out.write_all(&bytes)
                .map_err(|e| io("cannot write", &path, e))?;
            after += bytes.len() as u64;
        }
        out.flush().map_err(|e| io("cannot write", &path, e))?;
        drop(out);
        file.sync_all().map_err(|e| io("cannot sync", &path, e))?;
        if after > before {
            // Nothing to reclaim: the new file is not named anywhere yet,
            // so dropping it changes nothing.
            drop(file);
            std::fs::remove_file(&path).map_err(|e| io("cannot remove", &path, e))?;
            sync_dir(&self.log.dir)?;
            return Ok(Compacted {
                frames: offsets.len() as u64,
                before,
                after: before,
                rewritten: false,
            });
        }
        sync_dir(&self.log.dir)?;

        let finished =
            std::mem::take(&mut self.writer.lock().map_err(|_| StoreError::Poisoned)?.purged);
        {
            let _gate = GATE.lock().await;
            (&self.trees.meta, &self.trees.tombstones)
                .transaction(|(meta, tomb)| -> TxResult<()> {
                    meta.insert(meta::LOG_FILE_KEY, &keys::u64_be(next))?;
                    meta.insert(meta::LOG_END_KEY, &keys::u64_be(after))?;
                    for k in moved.iter().chain(&finished) {
                        tomb.remove(k.as_slice())?;
                    }
                    Ok(())
                })
                .map_err(tx_error)?;
            self.trees.db.flush_async().await?;
        }
        let old = self.log.dir.join(record_log::file_name(self.log.number));
        std::fs::remove_file(&old).map_err(|e| io("cannot remove", &old, e))?;
        sync_dir(&self.log.dir)?;
        Ok(Compacted {
            frames: offsets.len() as u64,
            before,
            after,
            rewritten: true,
        })
    }
}

/// Makes a directory's entries (a new file, a removal) durable.
fn sync_dir(dir: &std::path::Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("cannot sync", dir, e))
}
