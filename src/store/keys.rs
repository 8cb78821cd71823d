//! Key encodings of the sled trees. Part of the on-disk format: changing one
//! means a new schema version and a migration.
//!
//! Records are not in sled (since schema version 2): they are in the record log
//! (`record_log`). A *record key* below is `len(origin) as u8 ‖ origin ‖
//! seq as u64 BE`.
//!
//! - `cursors`: `origin` → `seq as u64 BE`
//! - `series`: series id (its first record's id) → series state (JSON, see
//!   `lifecycle`) once a later record changed it (the state the first
//!   record sets is in that record's frame, schema version 3);
//!   `mla:<request id>` → MLA request state (JSON, see `mla`)
//! - `expiries`: `expires_at_ms as u64 BE ‖ record key` → empty, only for
//!   records stored by schema version 2 (later ones carry their expiry in
//!   their frame)
//! - `tombstones`: record key → tombstone bytes, for a purge in progress or
//!   a tombstone too long for its frame (see `Records::purge`)
//! - `local_cases`: case id → local case (JSON); never replicated
//! - `publish_keys`: a client's publication key → `expires_at_ms as u64 BE
//!   ‖ record id` of the record published with it; never replicated
//! - `case_selectors`: `kind as u8 ‖ epoch as u32 BE ‖ token (32) ‖ case id` → empty
//! - `own_filter`, `peer_filters`: see `filters`. Two new trees, not a new
//!   format of an existing one, so the schema version stays 3: a store
//!   from before them opens with both empty, which is a node with no
//!   filter yet (it publishes one at its start)
//! - `meta`: `schema_version` → `u32 BE`, `node_id` → node id,
//!   `record_log_end` → committed length of the record log as `u64 BE`,
//!   `own_seq_floor` → the own log continues above this (`u64 BE`; set by
//!   a recovery from the peers),
//!   `record_log_file` → number of the record log file in use as `u64 BE`
//!   (absent: 0, `records.log`; see `record_log::file_name`)
//!
//! The length prefix makes an origin's keys a contiguous range that no
//! other origin's keys can interleave with (`gt` vs `gt-mp`), and big-endian
//! sequence numbers sort numerically.

use crate::records::model::NodeId;

pub(crate) fn origin_prefix(origin: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + origin.len() + 8);
    // NodeId guarantees at most 32 bytes.
    k.push(origin.len() as u8);
    k.extend_from_slice(origin.as_bytes());
    k
}

pub(crate) fn record_key(origin: &str, seq: u64) -> Vec<u8> {
    let mut k = origin_prefix(origin);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Splits a record key into origin and seq.
pub(crate) fn parse_record_key(key: &[u8]) -> Option<(NodeId, u64)> {
    let (&len, rest) = key.split_first()?;
    let len = usize::from(len);
    if rest.len() != len + 8 {
        return None;
    }
    let origin = NodeId::parse(std::str::from_utf8(&rest[..len]).ok()?).ok()?;
    let seq = u64::from_be_bytes(rest[len..].try_into().ok()?);
    Some((origin, seq))
}

/// Key of the expiry index: time first, so a range scan finds what is due.
pub(crate) fn expiry_key(expires_at_ms: i64, record_key: &[u8]) -> Vec<u8> {
    let mut k = expiry_prefix(expires_at_ms).to_vec();
    k.extend_from_slice(record_key);
    k
}

/// The time part of an expiry key (negative times sort as 0).
pub(crate) fn expiry_prefix(at_ms: i64) -> [u8; 8] {
    u64::try_from(at_ms).unwrap_or(0).to_be_bytes()
}

/// The record key inside an expiry key.
pub(crate) fn record_key_of_expiry(k: &[u8]) -> Option<&[u8]> {
    k.get(8..)
}

pub(crate) fn u64_be(v: u64) -> [u8; 8] {
    v.to_be_bytes()
}

pub(crate) fn read_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_keys_round_trip_and_sort_by_seq() {
        let k = record_key("gt", 258);
        let (o, s) = parse_record_key(&k).unwrap();
        assert_eq!((o.as_str(), s), ("gt", 258));
        assert!(record_key("gt", 2) < record_key("gt", 10));
        // "gt" and "gt-mp" never interleave.
        assert!(!record_key("gt-mp", 1).starts_with(&origin_prefix("gt")));
        assert!(parse_record_key(&[5, b'g']).is_none());
    }
}
