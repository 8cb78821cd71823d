//! On-disk format of the audit chain (`audit_log` tree) and of the
//! checkpoints (`checkpoints` tree). Part of the on-disk format: changing it
//! means a new schema version.
//!
//! - An entry is `hash (32) ‖ prev (32) ‖ body`. Entries are numbered from
//!   1 with no gaps; `prev` is the hash of entry `n - 1` (32 zero bytes for
//!   entry 1, or the anchor's hash after pruning).
//! - `audit_log` (schema version 3): runs of consecutive entries in
//!   groups, each keyed by the number of the first entry it was made with
//!   as `u64 BE` (so the group holding entry `n` is the last key `<= n`);
//!   a group's value is its entries, in order, each as `n as u64 BE ‖ len
//!   as u32 BE ‖ entry`. A group takes at most [`GROUP_ENTRIES`] entries,
//!   and none once it holds [`GROUP_BYTES`]. sled's memory grows with its
//!   number of entries, and a publishing node writes an audit entry per
//!   record: grouped, a million small entries are some 31 000 sled
//!   entries. Appending rewrites the last group, at most 16 KiB.
//! - `audit` (schema version 2): one sled entry per audit entry, `n as u64
//!   BE` → entry; moved into `audit_log` when a version 2 store is opened.
//! - `checkpoints`: `len(node) as u8 ‖ node ‖ size as u64 BE` → the signed
//!   checkpoint (this node's own) or the witnessed checkpoint (a peer's), as
//!   the audit module encoded it.
//! - `checkpoints`, under the byte `0xFF` (which no node id's length byte
//!   can be): `0xFF ‖ len(node) as u8 ‖ node ‖ size as u64 BE` → a recovery
//!   of `node`'s audit log resuming after entry `size`: this node's own
//!   statement with the countersignatures it gathered, or the
//!   countersignature given to a peer's. Added within schema version 3;
//!   earlier versions never read these keys.
//! - `meta` key `audit_anchor`: `n as u64 BE ‖ hash (32) ‖ checkpoint`: the
//!   last pruned entry and the signed checkpoint of the log at that size
//!   (after a recovery, the checkpoint of the lost log it resumes from).
//!
//! The store writes an entry in the same transaction as the action it
//! records, so the two become durable together or not at all; it never
//! interprets the body, which the audit module composes.
//!
//! `hash = SHA-256("enlace/audit/v1\0" ‖ n as u64 BE ‖ prev ‖ body)`: the
//! number is hashed so that an entry cannot be moved, and the domain prefix
//! keeps these hashes apart from every other hash enlace computes.

use ring::digest::{SHA256, digest};

/// Bytes of a chain hash.
pub const HASH_LEN: usize = 32;

/// The `prev` of entry 1.
pub(crate) const GENESIS: [u8; HASH_LEN] = [0; HASH_LEN];

const DOMAIN: &[u8] = b"enlace/audit/v1\0";

/// The hash of entry `n` with predecessor hash `prev` and `body`.
pub(crate) fn chain_hash(n: u64, prev: &[u8; HASH_LEN], body: &[u8]) -> [u8; HASH_LEN] {
    let mut input = Vec::with_capacity(DOMAIN.len() + 8 + HASH_LEN + body.len());
    input.extend_from_slice(DOMAIN);
    input.extend_from_slice(&n.to_be_bytes());
    input.extend_from_slice(prev);
    input.extend_from_slice(body);
    let mut out = [0; HASH_LEN];
    out.copy_from_slice(digest(&SHA256, &input).as_ref());
    out
}

/// One entry as stored, not checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    pub n: u64,
    /// The hash stored with the entry.
    pub hash: [u8; HASH_LEN],
    /// The predecessor hash stored with the entry.
    pub prev: [u8; HASH_LEN],
    pub body: Vec<u8>,
}

impl RawEntry {
    /// Chains `body` after `(n - 1, prev)`.
    pub fn chained(n: u64, prev: [u8; HASH_LEN], body: Vec<u8>) -> Self {
        Self {
            n,
            hash: chain_hash(n, &prev, &body),
            prev,
            body,
        }
    }

    /// The stored value.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(2 * HASH_LEN + self.body.len());
        v.extend_from_slice(&self.hash);
        v.extend_from_slice(&self.prev);
        v.extend_from_slice(&self.body);
        v
    }

    /// Splits a stored key and value (no check of the hash: that is the
    /// verifier's job).
    pub fn decode(key: &[u8], value: &[u8]) -> Result<Self, String> {
        let n = u64::from_be_bytes(
            key.try_into()
                .map_err(|_| format!("audit key of {} bytes, not 8", key.len()))?,
        );
        if value.len() < 2 * HASH_LEN {
            return Err(format!("audit entry {n} is {} bytes long", value.len()));
        }
        let mut hash = [0; HASH_LEN];
        let mut prev = [0; HASH_LEN];
        hash.copy_from_slice(&value[..HASH_LEN]);
        prev.copy_from_slice(&value[HASH_LEN..2 * HASH_LEN]);
        Ok(Self {
            n,
            hash,
            prev,
            body: value[2 * HASH_LEN..].to_vec(),
        })
    }

    /// Whether the stored hash is the hash of what is stored.
    pub(crate) fn hash_holds(&self) -> bool {
        chain_hash(self.n, &self.prev, &self.body) == self.hash
    }
}

/// Where pruning stopped: the last pruned entry and the checkpoint of the
/// log at that size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub n: u64,
    pub hash: [u8; HASH_LEN],
    pub checkpoint: Vec<u8>,
}

impl Anchor {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(8 + HASH_LEN + self.checkpoint.len());
        v.extend_from_slice(&self.n.to_be_bytes());
        v.extend_from_slice(&self.hash);
        v.extend_from_slice(&self.checkpoint);
        v
    }

    pub fn decode(v: &[u8]) -> Result<Self, String> {
        if v.len() < 8 + HASH_LEN {
            return Err("audit anchor is too short".into());
        }
        let n = u64::from_be_bytes(v[..8].try_into().map_err(|_| "anchor")?);
        let mut hash = [0; HASH_LEN];
        hash.copy_from_slice(&v[8..8 + HASH_LEN]);
        Ok(Self {
            n,
            hash,
            checkpoint: v[8 + HASH_LEN..].to_vec(),
        })
    }
}

/// Most entries in one `audit_log` group.
pub const GROUP_ENTRIES: u32 = 32;
/// A group takes no further entry once it holds this many bytes (an entry
/// larger than that gets a group of its own): a receipt lists a whole pull
/// batch's record ids, and appending rewrites the group.
pub const GROUP_BYTES: usize = 16 * 1024;

/// The last group of the log, as the writer knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tail {
    /// The group's key: the number of its first entry when it was made.
    pub key: u64,
    pub entries: u32,
    pub bytes: usize,
}

impl Tail {
    /// The tail that a group's key and decoded entries make.
    pub fn of(key: u64, group: &[RawEntry]) -> Self {
        Self {
            key,
            entries: group.len() as u32,
            bytes: group.iter().map(stored_len).sum(),
        }
    }
}

fn stored_len(e: &RawEntry) -> usize {
    8 + 4 + 2 * HASH_LEN + e.body.len()
}

/// One group a write touches: its key, whether it exists already (the
/// write appends to it), and which of the entries written go into it.
pub(crate) type Placement = (u64, bool, std::ops::Range<usize>);

/// Where entries (ascending, consecutive) go after `tail`, and the tail
/// after them.
pub(crate) fn plan(mut tail: Option<Tail>, entries: &[RawEntry]) -> (Vec<Placement>, Option<Tail>) {
    let mut out: Vec<Placement> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let size = stored_len(e);
        let fits = tail.is_some_and(|t| t.entries < GROUP_ENTRIES && t.bytes + size <= GROUP_BYTES);
        let t = match (fits, tail) {
            (true, Some(t)) => t,
            _ => Tail {
                key: e.n,
                entries: 0,
                bytes: 0,
            },
        };
        match out.last_mut() {
            Some((key, _, range)) if *key == t.key => range.end = i + 1,
            _ => out.push((t.key, t.entries > 0, i..i + 1)),
        }
        tail = Some(Tail {
            key: t.key,
            entries: t.entries + 1,
            bytes: t.bytes + size,
        });
    }
    (out, tail)
}

/// Appends `e` to a group's value.
pub(crate) fn push_to_group(group: &mut Vec<u8>, e: &RawEntry) {
    let entry = e.encode();
    group.extend_from_slice(&e.n.to_be_bytes());
    group.extend_from_slice(&(entry.len() as u32).to_be_bytes());
    group.extend_from_slice(&entry);
}

/// The entries of a group's value, in order.
pub fn decode_group(value: &[u8]) -> Result<Vec<RawEntry>, String> {
    let mut out = Vec::new();
    let mut rest = value;
    while !rest.is_empty() {
        let (n, tail) = rest
            .split_first_chunk::<8>()
            .ok_or("audit group is cut short")?;
        let (len, tail) = tail
            .split_first_chunk::<4>()
            .ok_or("audit group is cut short")?;
        let len = u32::from_be_bytes(*len) as usize;
        let entry = tail.get(..len).ok_or("audit group is cut short")?;
        out.push(RawEntry::decode(n, entry)?);
        rest = &tail[len..];
    }
    Ok(out)
}

/// A group's value holding `entries`.
pub(crate) fn encode_group(entries: &[RawEntry]) -> Vec<u8> {
    let mut v = Vec::new();
    for e in entries {
        push_to_group(&mut v, e);
    }
    v
}

/// `entries` (ascending, consecutive) as a fresh `audit_log`: each group's
/// key (`u64 BE`) and value.
pub fn encode_groups(entries: &[RawEntry]) -> Vec<([u8; 8], Vec<u8>)> {
    plan(None, entries)
        .0
        .into_iter()
        .map(|(key, _, range)| (key.to_be_bytes(), encode_group(&entries[range])))
        .collect()
}

/// Key of a checkpoint of `node`'s log at `size`.
pub(crate) fn checkpoint_key(node: &str, size: u64) -> Vec<u8> {
    super::keys::record_key(node, size)
}

/// First byte of the keys of recoveries in `checkpoints`.
const RECOVERY_TAG: u8 = 0xFF;

/// Key of a recovery of `node`'s log resuming after entry `size`.
pub(crate) fn recovery_key(node: &str, size: u64) -> Vec<u8> {
    let mut k = vec![RECOVERY_TAG];
    k.extend_from_slice(&super::keys::record_key(node, size));
    k
}

/// The size a recovery key names.
pub(crate) fn recovery_size(key: &[u8]) -> Option<u64> {
    let (&tag, rest) = key.split_first()?;
    if tag != RECOVERY_TAG {
        return None;
    }
    super::keys::parse_record_key(rest).map(|(_, size)| size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_any_changed_byte_breaks_the_hash() {
        let e = RawEntry::chained(7, [3; HASH_LEN], b"{\"action\":\"x\"}".to_vec());
        let key = 7u64.to_be_bytes();
        let back = RawEntry::decode(&key, &e.encode()).unwrap();
        assert_eq!(back, e);
        assert!(back.hash_holds());
        let value = e.encode();
        for i in 0..value.len() {
            let mut v = value.clone();
            v[i] ^= 0x01;
            assert!(
                !RawEntry::decode(&key, &v).unwrap().hash_holds(),
                "flip at byte {i}"
            );
        }
        // The number is part of the hash: an entry cannot be moved.
        assert!(
            !RawEntry::decode(&8u64.to_be_bytes(), &value)
                .unwrap()
                .hash_holds()
        );
        assert!(RawEntry::decode(&key, &value[..40]).is_err());
    }

    #[test]
    fn groups_hold_consecutive_entries_up_to_a_count_or_a_size() {
        let chain = |bodies: Vec<Vec<u8>>| {
            let mut prev = GENESIS;
            bodies
                .into_iter()
                .enumerate()
                .map(|(i, body)| {
                    let e = RawEntry::chained(i as u64 + 1, prev, body);
                    prev = e.hash;
                    e
                })
                .collect::<Vec<_>>()
        };
        let small = chain(
            (1..=40)
                .map(|n| format!("entry {n}").into_bytes())
                .collect(),
        );
        let groups = encode_groups(&small);
        assert_eq!(groups.len(), 2, "32 and 8");
        assert_eq!(groups[1].0, 33u64.to_be_bytes());
        let back: Vec<RawEntry> = groups
            .iter()
            .flat_map(|(_, v)| decode_group(v).unwrap())
            .collect();
        assert_eq!(back, small);
        let (_, first) = &groups[0];
        assert!(decode_group(&first[..first.len() - 1]).is_err());

        // Big entries (receipts) close a group by size; one bigger than a
        // group gets its own.
        let big = chain(vec![
            vec![b'a'; 6000],
            vec![b'b'; 6000],
            vec![b'c'; 6000],
            vec![b'd'; 40_000],
            vec![b'e'; 10],
        ]);
        let (plan_, tail) = plan(None, &big);
        let keys: Vec<u64> = plan_.iter().map(|(k, _, _)| *k).collect();
        assert_eq!(keys, vec![1, 3, 4, 5], "a b | c | d | e");
        assert_eq!(tail.unwrap().entries, 1);
        // Appending after a tail continues it while it fits.
        let (next, _) = plan(Some(Tail::of(1, &small[..31])), &small[31..34]);
        assert_eq!(next, vec![(1, true, 0..1), (33, false, 1..3)]);
    }

    #[test]
    fn anchors_round_trip() {
        let a = Anchor {
            n: 42,
            hash: [9; HASH_LEN],
            checkpoint: b"signed".to_vec(),
        };
        assert_eq!(Anchor::decode(&a.encode()).unwrap(), a);
        assert!(Anchor::decode(b"short").is_err());
    }
}
