//! A chain on disk: a directory with one file per version,
//! `<version>.roster`, each an encoded `SignedRoster`.
//!
//! Two directories hold a node's chain. The operator's
//! (`federation.chain`) is where versions handed over out of band go:
//! version 1 at a migration, a version approved offline. The node's own
//! (`<data_dir>/roster/`) holds every version it adopted, written before
//! the node acts on it: the file is written beside its final name, synced,
//! renamed into place and the directory synced, so a crash leaves the old
//! chain or the new one. Loading reads both, pools them and verifies the
//! whole from version 1 or the anchor ([`super::verify_chain`]).
//! Versions that conflict (two of one number, each approved by a
//! threshold) go to `evidence/` in the node's directory.

use std::path::{Path, PathBuf};

use super::{Signed, hex};
use crate::records::crypto;

/// The node's own chain directory inside its data directory.
pub fn adopted_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("roster")
}

/// The file name of a version.
pub fn file_name(version: u64) -> String {
    format!("{version}.roster")
}

/// Every version in `dir`. Files not named `*.roster` are skipped. A
/// missing directory holds nothing; one that cannot be read, or a file
/// that is not a `SignedRoster`, is a problem naming the file.
pub fn read(dir: &Path) -> Result<Vec<(PathBuf, Signed)>, Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(vec![format!("cannot read {}: {e}", dir.display())]),
    };
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "roster") && p.is_file())
        .collect();
    paths.sort();
    for path in paths {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                problems.push(format!("cannot read {}: {e}", path.display()));
                continue;
            }
        };
        if bytes.len() > super::super::roster::MAX_VERSION_BYTES * 2 {
            problems.push(format!(
                "{}: too large to be a roster version",
                path.display()
            ));
            continue;
        }
        match Signed::decode(&bytes) {
            Ok(s) => {
                let expected = file_name(s.version.number());
                if path.file_name().is_some_and(|n| n != expected.as_str()) {
                    problems.push(format!(
                        "{}: holds version {}, so it must be named {expected}",
                        path.display(),
                        s.version.number()
                    ));
                    continue;
                }
                out.push((path, s));
            }
            Err(r) => problems.push(format!("{}: {r}", path.display())),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Whether a chain directory is the node's own, inside its data
/// directory (owner-only, like everything there), or one meant to be
/// handed to others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Mode 0700 for directories, 0600 for files.
    OwnerOnly,
    /// Readable by others.
    Shared,
}

fn create(dir: &Path, access: Access) -> Result<(), String> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    if access == Access::OwnerOnly {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))
}

/// Writes a version into `dir` (created if missing) durably and
/// atomically. An existing file for the version is replaced only by the
/// same version (more approvals).
pub fn write(dir: &Path, signed: &Signed, access: Access) -> Result<PathBuf, String> {
    create(dir, access)?;
    let path = dir.join(file_name(signed.version.number()));
    if let Ok(bytes) = std::fs::read(&path)
        && let Ok(existing) = Signed::decode(&bytes)
        && existing.version.hash() != signed.version.hash()
    {
        return Err(format!(
            "{} holds another version {} ({}); refusing to replace it",
            path.display(),
            signed.version.number(),
            hex(&existing.version.hash())
        ));
    }
    crypto::replace_file(&path, &signed.encode(), access == Access::OwnerOnly)
        .map_err(|e| e.to_string())?;
    sync_dir(dir)?;
    Ok(path)
}

/// Keeps a conflicting version as evidence, under `evidence/` of the
/// node's own chain directory.
pub fn keep_evidence(dir: &Path, signed: &Signed) -> Result<PathBuf, String> {
    let dir = dir.join("evidence");
    create(&dir, Access::OwnerOnly)?;
    let path = dir.join(format!(
        "{}-{}.roster",
        signed.version.number(),
        hex(&signed.version.hash())
    ));
    crypto::replace_file(&path, &signed.encode(), true).map_err(|e| e.to_string())?;
    sync_dir(&dir)?;
    Ok(path)
}

fn sync_dir(dir: &Path) -> Result<(), String> {
    #[cfg(unix)]
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("cannot sync {}: {e}", dir.display()))?;
    Ok(())
}
