//! The `meta` tree: what the store records about itself. Its keys (see
//! `keys` for the full list and encodings):
//!
//! - `schema_version`, `node_id`: checked at every open (`open`), so that
//!   a build never reads a format it does not know and a node never opens
//!   another node's store;
//! - `record_log_file`, `record_log_end`: which record log file is in use
//!   and how much of it is committed (ADR 0009), moved by every record
//!   write and by a compaction;
//! - `own_seq_floor`: the own log continues above it, after a recovery
//!   from the peers (ADR 0011);
//! - `audit_anchor`: where pruning stopped (see `audit_log`);
//! - `note:<key>`: values written with an audit entry (see
//!   [`super::Audit::append_noting`]).

use super::StoreError;
use super::audit_log::Anchor;
use super::keys;

/// Version of the store's format (`u32 BE`).
pub(super) const SCHEMA_VERSION_KEY: &str = "schema_version";
/// The node the store belongs to.
pub(super) const NODE_ID_KEY: &str = "node_id";
/// The audit anchor (see [`Anchor`]).
pub(super) const ANCHOR_KEY: &str = "audit_anchor";
/// The countersigned retention statement that allowed the last pruning
/// (an encoded `AuditRecovery`), written with the anchor.
pub(super) const RETENTION_KEY: &str = "audit_retention";
/// Committed length of the record log (u64 BE).
pub(super) const LOG_END_KEY: &str = "record_log_end";
/// Lowest own sequence number the next publication may follow (u64 BE):
/// set when a lost own log is recovered from the peers.
pub(super) const OWN_SEQ_FLOOR_KEY: &str = "own_seq_floor";
/// Number of the record log file in use (u64 BE; absent: 0,
/// `records.log`), which a compaction moves on.
pub(super) const LOG_FILE_KEY: &str = "record_log_file";

/// The `meta` key of note `key`.
pub(super) fn note_key(key: &str) -> Vec<u8> {
    format!("note:{key}").into_bytes()
}

/// A `u64 BE` value of `meta`, if set.
pub(super) fn read_u64(meta: &sled::Tree, key: &str) -> Result<Option<u64>, StoreError> {
    match meta.get(key)? {
        Some(v) => keys::read_u64(&v)
            .map(Some)
            .ok_or_else(|| StoreError::Corrupt(format!("meta.{key} is not 8 bytes"))),
        None => Ok(None),
    }
}

/// The schema version recorded, if any.
pub(super) fn schema_version(meta: &sled::Tree) -> Result<Option<u32>, StoreError> {
    match meta.get(SCHEMA_VERSION_KEY)? {
        Some(v) => Ok(Some(u32::from_be_bytes(v.as_ref().try_into().map_err(
            |_| StoreError::Corrupt("meta.schema_version is not 4 bytes".into()),
        )?))),
        None => Ok(None),
    }
}

/// Records `version` as the store's schema version. Not flushed here (see
/// `open`): it becomes durable with the first commit.
pub(super) fn set_schema_version(meta: &sled::Tree, version: u32) -> Result<(), StoreError> {
    meta.insert(SCHEMA_VERSION_KEY, &version.to_be_bytes())?;
    Ok(())
}

/// Where pruning stopped, if the audit log was ever pruned.
pub(super) fn anchor(meta: &sled::Tree) -> Result<Option<Anchor>, StoreError> {
    match meta.get(ANCHOR_KEY)? {
        Some(v) => Ok(Some(Anchor::decode(&v).map_err(StoreError::Corrupt)?)),
        None => Ok(None),
    }
}
