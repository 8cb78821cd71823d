//! What one peer can make this node spend, in one place.
//!
//! A member is a partner, not a friend: its node can be compromised. Every
//! peer-facing call has a budget per calling member, enforced *before* the
//! work is done or logged, and README's "Limits per identity and listener"
//! table lists each constant here with what happens at the limit.
//!
//! The token bucket is written out here rather than taken from `governor`:
//! governor would decide the same, but even without its default features it
//! adds eleven crates to the lockfile for what is twenty lines here.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Longest `justification` a peer may send with a query: as for an agency
/// client.
pub const MAX_PEER_JUSTIFICATION: usize = 500;
/// Longest `requested_by` (the asking agency user) a peer may send.
pub const MAX_PEER_REQUESTED_BY: usize = 128;
/// Longest `query_id` a peer may send.
pub const MAX_PEER_QUERY_ID: usize = 64;
/// Most entries of one member's match filter of one epoch this node holds
/// (16 bytes each); additions beyond are dropped and logged, and that
/// epoch of the member's filter is then not used here (`enlace bench
/// oblivious`: about 190 bytes of disk per entry held).
pub const MAX_FILTER_ENTRIES_PER_MEMBER: u64 = 1_000_000;
/// Longest signing key id a peer may name in a checkpoint or statement.
pub const MAX_PEER_KEY_ID: usize = 64;
/// Largest checkpoint body a peer may hand over (a real one, with the
/// roster it was made under, is under 140 bytes).
pub const MAX_CHECKPOINT_BODY: usize = 512;
/// Largest recovery statement body (a checkpoint, a time, a reason).
pub const MAX_RECOVERY_BODY: usize = 2048;

/// The shortest audit retention a node may be configured with: entries
/// younger than this are never pruned, and `audit verify` fails on an
/// anchor over an entry a peer saw written more recently.
pub const MIN_AUDIT_RETENTION_DAYS: u32 = 30;
/// Refusals of one peer's calls written to the audit log one by one, per
/// minute; beyond that they are counted, and the count is written once a
/// minute as one `requests_refused` summary per peer.
pub const REFUSALS_AUDITED_PER_MINUTE: u32 = 10;
/// Checkpoints (and recovery statements) one peer may hand over to be
/// witnessed, per minute; a node sends one per checkpoint interval.
pub const WITNESS_PER_MINUTE: u32 = 30;
/// Digests one peer may ask for, per minute; each reads whole logs.
pub const DIGEST_PER_MINUTE: u32 = 6;
/// `RosterChain` calls one peer may make per minute: a node asks when it
/// starts from an anchor.
pub const ROSTER_CHAIN_PER_MINUTE: u32 = 6;
/// Most roster versions in one `RosterChain` answer.
pub const ROSTER_CHAIN_VERSIONS: usize = 64;
/// Most bytes of versions in one `RosterChain` answer (one version at
/// least, whatever its size).
pub const ROSTER_CHAIN_BYTES: usize = 4 * 1024 * 1024;
/// `Pull` streams that follow this node's log, per peer: a new one
/// replaces the old, which ends.
pub const FOLLOW_STREAMS_PER_PEER: usize = 1;
/// `Pull` streams handing a peer's own records back, at once per peer.
pub const HAND_BACK_STREAMS_PER_PEER: usize = 1;
/// Bytes of one peer's `Pull` batches waiting in this node's memory, its
/// streams together; a producer waits for room before it reads more. A
/// peer that does not read stalls only its own streams.
pub const PULL_BUFFER_BYTES_PER_PEER: usize = 16 * 1024 * 1024;

/// `VerifyPeers` calls this node serves per minute, all agency clients
/// together: each makes every peer run a `Digest`, which the peers allow
/// [`DIGEST_PER_MINUTE`] times a minute from this node.
pub const VERIFY_PEERS_PER_MINUTE: u32 = DIGEST_PER_MINUTE;
/// Statistics calls (compute, publish, regional) one agency client may
/// make per minute: each reads every local case or the whole record log
/// and may solve a linear program per suppressed cell.
pub const STATISTICS_PER_MINUTE: u32 = 10;
/// Most record views in one `ListRecords` answer; a larger `limit` gets
/// this many, and the caller pages on with `last_position`.
pub const LIST_RECORDS_PAGE: u32 = 1000;

/// A token bucket per key (a peer's node id, a client, or `()` for one
/// bucket): `per_minute` calls, refilled continuously.
#[derive(Debug)]
pub(crate) struct Buckets<K>(Mutex<HashMap<K, (f64, Instant)>>);

impl<K> Default for Buckets<K> {
    fn default() -> Self {
        Self(Mutex::new(HashMap::new()))
    }
}

impl<K: std::hash::Hash + Eq + Clone> Buckets<K> {
    /// Takes one token for `key`, or says how long until one is free.
    pub(crate) fn take(&self, key: &K, per_minute: u32) -> Result<(), Duration> {
        self.take_n(key, 1, per_minute)
    }

    /// Takes `n` tokens for `key` at once, or none and says how long until
    /// `n` are free (`Duration::MAX` if `n` exceeds the whole budget).
    pub(crate) fn take_n(&self, key: &K, n: u32, per_minute: u32) -> Result<(), Duration> {
        let capacity = f64::from(per_minute.max(1));
        let rate = capacity / 60.0;
        let now = Instant::now();
        // A writer that panicked left whole numbers behind: keep enforcing.
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (tokens, last) = map.entry(key.clone()).or_insert((capacity, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(capacity);
        *last = now;
        let n = f64::from(n);
        if n > capacity {
            return Err(Duration::MAX);
        }
        if *tokens >= n {
            *tokens -= n;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((n - *tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::model::NodeId;

    #[test]
    fn the_bucket_refuses_the_one_too_many_and_says_when() {
        let b = Buckets::<NodeId>::default();
        let gt = NodeId::parse("gt").unwrap();
        for _ in 0..3 {
            b.take(&gt, 3).unwrap();
        }
        let wait = b.take(&gt, 3).unwrap_err();
        assert!(
            wait > Duration::from_secs(10) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        b.take(&NodeId::parse("hn").unwrap(), 3).expect("per peer");
    }

    #[test]
    fn several_tokens_are_taken_at_once_or_not_at_all() {
        let b = Buckets::<NodeId>::default();
        let gt = NodeId::parse("gt").unwrap();
        b.take_n(&gt, 7, 10).unwrap();
        let wait = b.take_n(&gt, 4, 10).unwrap_err();
        assert!(wait > Duration::from_secs(5), "{wait:?}");
        // Nothing was taken by the refusal: three are still there.
        b.take_n(&gt, 3, 10).unwrap();
        assert_eq!(b.take_n(&gt, 11, 10), Err(Duration::MAX));
    }

    #[test]
    fn a_poisoned_bucket_still_refuses_the_one_too_many() {
        let b = std::sync::Arc::new(Buckets::<NodeId>::default());
        let gt = NodeId::parse("gt").unwrap();
        b.take(&gt, 1).unwrap();
        let holder = b.clone();
        let _ = std::thread::spawn(move || {
            let _held = holder.0.lock();
            panic!("a writer panics while holding the lock");
        })
        .join();
        assert!(b.0.is_poisoned());
        assert!(b.take(&gt, 1).is_err(), "fails closed, not open");
    }
}
