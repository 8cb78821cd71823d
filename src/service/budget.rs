//! What one peer's `Pull` streams may hold of this node: one stream of the
//! own log per peer, one hand-back at a time, and a byte budget per peer
//! for the batches its streams keep in memory.
//!
//! A compromised member could otherwise open hundreds of streams it never
//! reads, each holding a few batches of up to 2 MiB (measured: 300 unread
//! streams took a node from 253 to 3 598 MiB in 20 s). A real replicator
//! keeps one stream open, so a new stream from the same peer replaces the
//! old one, which ends. The limits are in [`crate::limits`].

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::limits::{HAND_BACK_STREAMS_PER_PEER, PULL_BUFFER_BYTES_PER_PEER};
use crate::records::model::NodeId;

/// Unit of the byte budget.
const KIB: usize = 1024;

/// The `Pull` budget of one node, shared by its streams.
#[derive(Debug)]
pub(crate) struct PullBudget {
    /// Per peer: the generation of its current own-log stream, and the
    /// signal that ends it.
    streams: Mutex<HashMap<NodeId, (u64, watch::Sender<bool>)>>,
    generation: AtomicU64,
    hand_backs: Mutex<HashMap<NodeId, usize>>,
    /// Per peer, KiB of its batches waiting to be taken by the transport.
    bytes: Mutex<HashMap<NodeId, Arc<Semaphore>>>,
    /// Peers already warned about a cursor beyond this node's log.
    warned: Mutex<HashSet<NodeId>>,
}

impl Default for PullBudget {
    fn default() -> Self {
        Self {
            streams: Mutex::default(),
            generation: AtomicU64::new(0),
            hand_backs: Mutex::default(),
            bytes: Mutex::default(),
            warned: Mutex::default(),
        }
    }
}

/// A peer's own-log stream: ends when `replaced` turns true (a newer
/// stream of the same peer took its place); frees its place when dropped.
#[derive(Debug)]
pub(crate) struct StreamSlot {
    budget: Arc<PullBudget>,
    peer: NodeId,
    generation: u64,
    pub(crate) replaced: watch::Receiver<bool>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut map = lock(&self.budget.streams);
        if map
            .get(&self.peer)
            .is_some_and(|(g, _)| *g == self.generation)
        {
            map.remove(&self.peer);
        }
    }
}

/// A hand-back in progress; frees its place when dropped.
#[derive(Debug)]
pub(crate) struct HandBackSlot {
    budget: Arc<PullBudget>,
    peer: NodeId,
}

impl Drop for HandBackSlot {
    fn drop(&mut self) {
        let mut map = lock(&self.budget.hand_backs);
        if let Some(n) = map.get_mut(&self.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.peer);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain maps of small values: a panicked holder left them whole.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl PullBudget {
    /// Takes `peer`'s own-log stream place, ending the stream that held it.
    pub(crate) fn stream(self: &Arc<Self>, peer: &NodeId) -> StreamSlot {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(false);
        if let Some((_, old)) = lock(&self.streams).insert(peer.clone(), (generation, tx)) {
            let _ = old.send(true);
        }
        StreamSlot {
            budget: self.clone(),
            peer: peer.clone(),
            generation,
            replaced: rx,
        }
    }

    /// A place for a hand-back to `peer`, if it has none running.
    pub(crate) fn hand_back(self: &Arc<Self>, peer: &NodeId) -> Option<HandBackSlot> {
        let mut map = lock(&self.hand_backs);
        let n = map.entry(peer.clone()).or_default();
        if *n >= HAND_BACK_STREAMS_PER_PEER {
            return None;
        }
        *n += 1;
        Some(HandBackSlot {
            budget: self.clone(),
            peer: peer.clone(),
        })
    }

    /// Room for a batch of `bytes` for `peer` in memory, once there is:
    /// the permit goes with the batch and is given back when the transport
    /// takes it.
    pub(crate) async fn room(&self, peer: &NodeId, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let kib = bytes
            .div_ceil(KIB)
            .clamp(1, PULL_BUFFER_BYTES_PER_PEER / KIB);
        self.of(peer)
            .acquire_many_owned(u32::try_from(kib).unwrap_or(u32::MAX))
            .await
            .ok()
    }

    fn of(&self, peer: &NodeId) -> Arc<Semaphore> {
        lock(&self.bytes)
            .entry(peer.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(PULL_BUFFER_BYTES_PER_PEER / KIB)))
            .clone()
    }

    /// Whether `peer` was not yet warned about (and now is).
    pub(crate) fn first_warning(&self, peer: &NodeId) -> bool {
        lock(&self.warned).insert(peer.clone())
    }

    /// KiB of `peer`'s batches held now, for tests.
    #[cfg(test)]
    fn held_kib(&self, peer: &NodeId) -> usize {
        PULL_BUFFER_BYTES_PER_PEER / KIB - self.of(peer).available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_stream_of_a_peer_ends_the_old_one() {
        let budget = Arc::new(PullBudget::default());
        let hn = NodeId::parse("hn").unwrap();
        let first = budget.stream(&hn);
        assert!(!*first.replaced.borrow());
        let second = budget.stream(&hn);
        assert!(*first.replaced.borrow(), "the first is told to end");
        assert!(!*second.replaced.borrow());
        // The old one going away does not free the new one's place.
        drop(first);
        let third = budget.stream(&hn);
        assert!(*second.replaced.borrow());
        drop(third);
        assert!(lock(&budget.streams).is_empty());
    }

    #[test]
    fn one_hand_back_at_a_time_per_peer() {
        let budget = Arc::new(PullBudget::default());
        let hn = NodeId::parse("hn").unwrap();
        let slot = budget.hand_back(&hn).expect("the first");
        assert!(budget.hand_back(&hn).is_none());
        assert!(budget.hand_back(&NodeId::parse("sv").unwrap()).is_some());
        drop(slot);
        assert!(budget.hand_back(&hn).is_some());
    }

    #[tokio::test]
    async fn a_peers_batches_wait_for_room_in_its_own_byte_budget() {
        let budget = PullBudget::default();
        let hn = NodeId::parse("hn").unwrap();
        let all = budget.room(&hn, PULL_BUFFER_BYTES_PER_PEER).await.unwrap();
        assert_eq!(budget.held_kib(&hn), PULL_BUFFER_BYTES_PER_PEER / KIB);
        let waiting =
            tokio::time::timeout(std::time::Duration::from_millis(50), budget.room(&hn, 1));
        assert!(waiting.await.is_err(), "no room until a batch is taken");
        // Another peer is not held up by hn's unread batches.
        let sv = NodeId::parse("sv").unwrap();
        assert!(budget.room(&sv, 3 * KIB).await.is_some());
        drop(all);
        assert!(budget.room(&hn, 3 * KIB).await.is_some());
    }
}
