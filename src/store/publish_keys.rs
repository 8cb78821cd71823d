//! Publication keys: what makes a retried publication safe (`publish_keys`
//! tree). An agency client may send, with a new alert or case reference,
//! a key of its choosing (`enlace alert import` sends the SHA-256 of the
//! line's content); the key is written with the record, in the same
//! transaction, so once a publication is acknowledged its key is durable
//! too, and a crash between the node's answer and the client noting it
//! cannot make a second record of one line: the retry finds the key and is
//! answered with the first record.
//!
//! The keys stay at this node. They are not part of the signed record,
//! never replicated and never logged: a content hash of a line is a hash
//! of the clear identifiers in it.
//!
//! Retention: an entry is kept while its record's content is held, i.e.
//! until the record expires; the expiry purge drops the entries of expired
//! records ([`PublishKeys::prune`]), and a lookup ignores an entry whose
//! record has expired, so the same content published again after that is a
//! new record. A store lost and recovered from the peers has no keys.
//!
//! NOTE: unlike the rest of sled (ADR 0010), this tree grows by one entry
//! per keyed publication; only clients that send keys (bulk import) add to
//! it, and expiry bounds it.

use super::{Store, StoreError, keys};

/// Most bytes of a publication key.
pub const MAX_KEY_LEN: usize = 128;

/// The publication keys of a store: see [`Store::publish_keys`].
#[derive(Clone, Copy)]
pub struct PublishKeys<'a> {
    pub(super) store: &'a Store,
}

/// The record a publication key was written with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedRecord {
    pub record_id: String,
    /// When the record expires (ms since the Unix epoch).
    pub expires_at_ms: i64,
}

/// The value of a `publish_keys` entry: `expires_at_ms as u64 BE ‖ record id`.
pub(super) fn encode(record_id: &str, expires_at_ms: Option<i64>) -> Vec<u8> {
    let at = u64::try_from(expires_at_ms.unwrap_or(i64::MAX)).unwrap_or(0);
    let mut v = keys::u64_be(at).to_vec();
    v.extend_from_slice(record_id.as_bytes());
    v
}

fn decode(v: &[u8]) -> Option<KeyedRecord> {
    let at = keys::read_u64(v)?;
    let record_id = std::str::from_utf8(v.get(8..)?).ok()?.to_owned();
    Some(KeyedRecord {
        record_id,
        expires_at_ms: i64::try_from(at).unwrap_or(i64::MAX),
    })
}

impl PublishKeys<'_> {
    /// The record published with `key`, if it is held and has not expired
    /// at `now_ms`.
    pub fn get(&self, key: &[u8], now_ms: i64) -> Result<Option<KeyedRecord>, StoreError> {
        let Some(v) = self.store.trees.publish_keys.get(key)? else {
            return Ok(None);
        };
        let keyed = decode(&v).ok_or_else(|| {
            StoreError::Corrupt("a publish_keys entry does not decode".to_owned())
        })?;
        Ok((keyed.expires_at_ms > now_ms).then_some(keyed))
    }

    /// Drops the entries of records expired at `now_ms`; returns how many.
    /// Not a transaction: an entry dropped and then lost in a crash is
    /// dropped again at the next purge, and is ignored meanwhile.
    pub async fn prune(&self, now_ms: i64) -> Result<usize, StoreError> {
        let mut due = Vec::new();
        for kv in self.store.trees.publish_keys.iter() {
            let (k, v) = kv?;
            if decode(&v).is_none_or(|r| r.expires_at_ms <= now_ms) {
                due.push(k);
            }
        }
        if due.is_empty() {
            return Ok(0);
        }
        let _gate = super::GATE.lock().await;
        let mut batch = sled::Batch::default();
        for k in &due {
            batch.remove(k.clone());
        }
        self.store.trees.publish_keys.apply_batch(batch)?;
        Ok(due.len())
    }
}
