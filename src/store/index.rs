//! In-memory indexes over the record log, rebuilt at open by scanning it.
//!
//! - per origin, the frame offset of each sequence number: a dense vector
//!   indexed by `seq - 1` ([`HOLE`] for a seq not held, e.g. a record this
//!   node is not entitled to), with a sorted map for a seq far beyond it so
//!   that one odd sequence number cannot make the vector huge;
//! - the frame offset of each arrival position (positions are dense from 1);
//! - record id → arrival position, keyed by a 32-bit hash of the id. Two
//!   ids with one hash are told apart by reading the frame (the caller
//!   does); an id whose hash is taken, or whose position does not fit 32
//!   bits, goes to a small exact map instead.
//!
//! - when content expires: a min-heap of (expiry, arrival position) over
//!   the records whose content is still held ([`Expiries`]).
//!
//! At a million records this is about 8 + 8 + 19 + 16 MiB.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use crate::records::model::NodeId;

/// Offset marking a sequence number not held.
const HOLE: u64 = u64::MAX;
/// How far past the dense part a sequence number may land and still
/// extend it (8 bytes per slot: 8 MiB of holes at most).
const DENSE_SLACK: u64 = 1 << 20;

#[derive(Default)]
struct OriginLog {
    /// Offset of seq `i + 1` at `i`.
    dense: Vec<u64>,
    /// Seqs beyond `dense.len() + DENSE_SLACK` when stored; all keys are
    /// above `dense.len()`.
    sparse: BTreeMap<u64, u64>,
    count: usize,
    last: u64,
}

impl OriginLog {
    fn get(&self, seq: u64) -> Option<u64> {
        let Some(i) = seq.checked_sub(1).and_then(|i| usize::try_from(i).ok()) else {
            return self.sparse.get(&seq).copied();
        };
        match self.dense.get(i) {
            Some(&HOLE) => None,
            Some(&off) => Some(off),
            None => self.sparse.get(&seq).copied(),
        }
    }

    fn insert(&mut self, seq: u64, offset: u64) {
        let Some(i) = seq.checked_sub(1) else {
            // Seq 0 is never valid; keep it out of the dense part.
            self.sparse.insert(seq, offset);
            self.count += 1;
            return;
        };
        let len = self.dense.len() as u64;
        if i < len {
            self.dense[i as usize] = offset;
        } else if i - len <= DENSE_SLACK {
            self.dense.resize(i as usize, HOLE);
            self.dense.push(offset);
            // Sparse seqs now inside the dense part move into it.
            let rest = self.sparse.split_off(&(self.dense.len() as u64 + 1));
            let moved = std::mem::replace(&mut self.sparse, rest);
            for (s, off) in moved {
                if s >= 1 {
                    self.dense[(s - 1) as usize] = off;
                } else {
                    self.sparse.insert(s, off);
                }
            }
        } else {
            self.sparse.insert(seq, offset);
        }
        self.count += 1;
        self.last = self.last.max(seq);
    }

    /// Offsets of the seqs in `after < seq <= up_to`, ascending, at most `limit`.
    fn range(&self, after: u64, up_to: u64, limit: usize) -> Vec<u64> {
        let mut out = Vec::new();
        let dense_end = up_to.min(self.dense.len() as u64);
        let mut seq = after.saturating_add(1);
        while seq <= dense_end && out.len() < limit {
            let off = self.dense[(seq - 1) as usize];
            if off != HOLE {
                out.push(off);
            }
            seq += 1;
        }
        if out.len() < limit && after < up_to {
            out.extend(
                self.sparse
                    .range(after.saturating_add(1)..=up_to)
                    .map(|(_, &off)| off)
                    .take(limit - out.len()),
            );
        }
        out
    }
}

/// Spreads a 32-bit hash over 64 bits (hashbrown looks at the top bits).
#[derive(Default)]
struct SpreadHasher(u64);

impl Hasher for SpreadHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u32(&mut self, v: u32) {
        self.0 = u64::from(v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

fn id_hash(record_id: &str) -> u32 {
    // NOTE: `DefaultHasher::new()` has fixed keys, so this is predictable;
    // a peer that crafts colliding ids only fills the exact map (which has
    // random keys). The index lives in memory only, so a change of the
    // algorithm between Rust releases does not matter.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(record_id.as_bytes());
    let v = h.finish();
    (v ^ (v >> 32)) as u32
}

/// Where an id may be.
pub(crate) enum IdLookup {
    /// Certainly at this position.
    Exact(u64),
    /// Perhaps at this position: read the frame to be sure.
    Candidate(u64),
    Absent,
}

/// The indexes.
#[derive(Default)]
pub struct Index {
    origins: HashMap<NodeId, usize>,
    logs: Vec<OriginLog>,
    /// Offset of position `i + 1` at `i`.
    arrivals: Vec<u64>,
    ids: HashMap<u32, u32, BuildHasherDefault<SpreadHasher>>,
    ids_exact: HashMap<String, u64>,
}

impl Index {
    /// Adds a record whose frame is at `offset`. `position` must be the
    /// next one (`len() + 1`); the id must not be held yet.
    pub fn insert(
        &mut self,
        origin: &NodeId,
        seq: u64,
        position: u64,
        record_id: &str,
        offset: u64,
    ) {
        let i = match self.origins.get(origin) {
            Some(&i) => i,
            None => {
                self.logs.push(OriginLog::default());
                self.origins.insert(origin.clone(), self.logs.len() - 1);
                self.logs.len() - 1
            }
        };
        self.logs[i].insert(seq, offset);
        debug_assert_eq!(position, self.arrivals.len() as u64 + 1);
        self.arrivals.push(offset);
        let h = id_hash(record_id);
        match u32::try_from(position) {
            Ok(p) if !self.ids.contains_key(&h) => {
                self.ids.insert(h, p);
            }
            _ => {
                self.ids_exact.insert(record_id.to_owned(), position);
            }
        }
    }

    /// Frees spare capacity (after the scan at open).
    pub(crate) fn shrink(&mut self) {
        self.arrivals.shrink_to_fit();
        self.ids.shrink_to_fit();
        for l in &mut self.logs {
            l.dense.shrink_to_fit();
        }
    }

    pub(crate) fn offset(&self, origin: &NodeId, seq: u64) -> Option<u64> {
        self.logs[*self.origins.get(origin)?].get(seq)
    }

    pub fn range(&self, origin: &NodeId, after: u64, up_to: u64, limit: usize) -> Vec<u64> {
        match self.origins.get(origin) {
            Some(&i) => self.logs[i].range(after, up_to, limit),
            None => Vec::new(),
        }
    }

    pub(crate) fn last_seq(&self, origin: &NodeId) -> u64 {
        self.origins.get(origin).map_or(0, |&i| self.logs[i].last)
    }

    pub fn count(&self, origin: &NodeId) -> usize {
        self.origins.get(origin).map_or(0, |&i| self.logs[i].count)
    }

    /// Number of records (= highest position).
    pub fn len(&self) -> usize {
        self.arrivals.len()
    }

    /// Frame offset of arrival `position`.
    pub fn arrival(&self, position: u64) -> Option<u64> {
        let i = usize::try_from(position.checked_sub(1)?).ok()?;
        self.arrivals.get(i).copied()
    }

    pub(crate) fn lookup_id(&self, record_id: &str) -> IdLookup {
        if let Some(&p) = self.ids_exact.get(record_id) {
            return IdLookup::Exact(p);
        }
        match self.ids.get(&id_hash(record_id)) {
            Some(&p) => IdLookup::Candidate(u64::from(p)),
            None => IdLookup::Absent,
        }
    }
}

/// Records whose content is still held, by expiry. A purge usually takes
/// the earliest, which is the heap's top; one that does not (a purge
/// retried after a crash, records purged out of order) is remembered in
/// `gone` and skipped when it surfaces.
#[derive(Default)]
pub(crate) struct Expiries {
    heap: BinaryHeap<Reverse<(i64, u64)>>,
    gone: HashSet<(i64, u64)>,
}

impl Expiries {
    pub fn insert(&mut self, expires_at_ms: i64, position: u64) {
        self.heap.push(Reverse((expires_at_ms, position)));
    }

    /// Forgets the expiry of the record at `position`.
    pub fn remove(&mut self, expires_at_ms: i64, position: u64) {
        let entry = (expires_at_ms, position);
        if self.heap.peek() == Some(&Reverse(entry)) {
            self.heap.pop();
            self.skip_gone();
        } else {
            self.gone.insert(entry);
        }
    }

    fn skip_gone(&mut self) {
        while let Some(Reverse(top)) = self.heap.peek() {
            if !self.gone.remove(top) {
                break;
            }
            self.heap.pop();
        }
    }

    /// Up to `limit` (expiry, position) due at or before `now_ms`, earliest
    /// first. They stay until removed.
    pub fn due(&mut self, now_ms: i64, limit: usize) -> Vec<(i64, u64)> {
        self.skip_gone();
        let mut out = Vec::new();
        while out.len() < limit {
            match self.heap.peek() {
                Some(Reverse(top)) if top.0 <= now_ms => {
                    let top = *top;
                    self.heap.pop();
                    if !self.gone.remove(&top) {
                        out.push(top);
                    }
                }
                _ => break,
            }
        }
        self.heap.extend(out.iter().map(|&e| Reverse(e)));
        out
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.heap.len() - self.gone.len()
    }

    pub(crate) fn shrink(&mut self) {
        self.heap.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_seqs_join_the_dense_part_when_it_reaches_them() {
        let mut l = OriginLog::default();
        l.insert(1, 10);
        l.insert(DENSE_SLACK + 100, 20);
        assert_eq!(l.dense.len(), 1);
        assert_eq!(l.get(DENSE_SLACK + 100), Some(20));
        l.insert(200, 30);
        l.insert(DENSE_SLACK + 150, 40);
        assert!(l.sparse.is_empty(), "moved into the dense part");
        assert_eq!(l.get(DENSE_SLACK + 100), Some(20));
        assert_eq!(l.get(2), None);
        assert_eq!(l.range(0, u64::MAX, 10), vec![10, 30, 20, 40]);
        assert_eq!(l.range(1, 200, 10), vec![30]);
        assert_eq!((l.count, l.last), (4, DENSE_SLACK + 150));
    }

    #[test]
    fn expiries_come_due_in_order_and_stay_until_removed() {
        let mut e = Expiries::default();
        for (at, pos) in [(30, 3), (10, 1), (20, 2), (40, 4)] {
            e.insert(at, pos);
        }
        assert_eq!(e.due(25, 10), vec![(10, 1), (20, 2)]);
        assert_eq!(e.due(25, 1), vec![(10, 1)], "not removed by looking");
        // Out of order: 2 before 1.
        e.remove(20, 2);
        assert_eq!(e.due(35, 10), vec![(10, 1), (30, 3)]);
        e.remove(10, 1);
        assert_eq!(e.len(), 2);
        assert_eq!(e.due(i64::MAX, 10), vec![(30, 3), (40, 4)]);
        e.remove(40, 4);
        e.remove(30, 3);
        assert_eq!(e.len(), 0);
        assert!(e.due(i64::MAX, 10).is_empty());
        assert!(e.gone.is_empty() && e.heap.is_empty(), "nothing lingers");
    }

    #[test]
    fn ids_with_one_hash_are_both_found() {
        let mut ix = Index::default();
        let gt = NodeId::parse("gt").unwrap();
        ix.insert(&gt, 1, 1, "a", 0);
        // Force the second id into the exact map as a collision would.
        let h = id_hash("a");
        ix.ids_exact.insert("b".into(), 2);
        ix.arrivals.push(100);
        assert!(matches!(ix.lookup_id("a"), IdLookup::Candidate(1)));
        assert!(matches!(ix.lookup_id("b"), IdLookup::Exact(2)));
        assert_eq!(ix.ids.get(&h), Some(&1));
    }
}
