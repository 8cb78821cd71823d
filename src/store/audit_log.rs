//! On-disk format of the audit chain (`audit` tree) and of the checkpoints
//! (`checkpoints` tree). Part of the on-disk format: changing it means a new
//! schema version.
//!
//! - `audit`: `n as u64 BE` → `hash (32) ‖ prev (32) ‖ body`. Entries are
//!   numbered from 1 with no gaps; `prev` is the hash of entry `n - 1`
//!   (32 zero bytes for entry 1, or the anchor's hash after pruning).
//! - `checkpoints`: `len(node) as u8 ‖ node ‖ size as u64 BE` → the signed
//!   checkpoint (this node's own) or the witnessed checkpoint (a peer's), as
//!   the audit module encoded it.
//! - `meta` key `audit_anchor`: `n as u64 BE ‖ hash (32) ‖ checkpoint`: the
//!   last pruned entry and the signed checkpoint of the log at that size.
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
pub const GENESIS: [u8; HASH_LEN] = [0; HASH_LEN];

const DOMAIN: &[u8] = b"enlace/audit/v1\0";

/// The hash of entry `n` with predecessor hash `prev` and `body`.
pub fn chain_hash(n: u64, prev: &[u8; HASH_LEN], body: &[u8]) -> [u8; HASH_LEN] {
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
    pub fn hash_holds(&self) -> bool {
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

/// Key of a checkpoint of `node`'s log at `size`.
pub fn checkpoint_key(node: &str, size: u64) -> Vec<u8> {
    super::keys::record_key(node, size)
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
