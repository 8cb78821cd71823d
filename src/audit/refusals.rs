//! Refusals of a peer's calls, on record at a bounded rate.
//!
//! Every refusal belongs on the audit log, but a member that sends garbage
//! in a loop must not be able to grow another member's log, whose entries
//! can never be removed, as fast as it can send. So the first
//! [`REFUSALS_AUDITED_PER_MINUTE`] refusals of one peer in a minute are
//! written one by one, with their reasons; the rest are counted, and the
//! count is written once a minute as one `requests_refused` entry per peer
//! ("37 further refusals of Match, Witness since …"). The log of a node
//! under such a flood grows by at most a fixed amount per peer and minute,
//! and nothing goes unrecorded.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::limits::REFUSALS_AUDITED_PER_MINUTE;
use crate::records::model::NodeId;

/// One minute, in ms.
const MINUTE_MS: i64 = 60_000;

/// What to do with one refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Write its own entry.
    Record,
    /// Counted for the next summary.
    Counted,
}

#[derive(Debug, Default)]
struct Minute {
    /// Start of the current minute (ms).
    since_ms: i64,
    /// Refusals written one by one in it.
    recorded: u32,
    /// Refusals counted beyond that, per call.
    counted: BTreeMap<&'static str, u64>,
    /// Start of the first minute with a refusal counted and not yet
    /// summarised.
    counting_since_ms: Option<i64>,
}

/// The per-peer tally.
#[derive(Debug, Default)]
pub(crate) struct Tally(Mutex<HashMap<NodeId, Minute>>);

/// A summary to write: `count` refusals of `calls` from `peer` since
/// `since_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Summary {
    pub peer: NodeId,
    pub since_ms: i64,
    pub count: u64,
    pub calls: Vec<(&'static str, u64)>,
}

impl Tally {
    /// Whether a refusal of `call` from `peer` at `now_ms` gets its own
    /// entry or is counted.
    pub(crate) fn refusal(&self, peer: &NodeId, call: &'static str, now_ms: i64) -> Verdict {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let m = map.entry(peer.clone()).or_default();
        if now_ms - m.since_ms >= MINUTE_MS {
            m.since_ms = now_ms;
            m.recorded = 0;
        }
        if m.recorded < REFUSALS_AUDITED_PER_MINUTE {
            m.recorded += 1;
            Verdict::Record
        } else {
            *m.counted.entry(call).or_default() += 1;
            m.counting_since_ms.get_or_insert(now_ms);
            Verdict::Counted
        }
    }

    /// The counts not yet summarised, emptied.
    pub(crate) fn take(&self) -> Vec<Summary> {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out: Vec<Summary> = map
            .iter_mut()
            .filter_map(|(peer, m)| {
                let since_ms = m.counting_since_ms.take()?;
                let calls: Vec<(&'static str, u64)> =
                    std::mem::take(&mut m.counted).into_iter().collect();
                Some(Summary {
                    peer: peer.clone(),
                    since_ms,
                    count: calls.iter().map(|(_, n)| n).sum(),
                    calls,
                })
            })
            .collect();
        out.sort_by(|a, b| a.peer.cmp(&b.peer));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_written_one_by_one_up_to_the_budget_then_counted() {
        let t = Tally::default();
        let hn = NodeId::parse("hn").unwrap();
        let sv = NodeId::parse("sv").unwrap();
        let start = 1_000_000;
        let verdicts: Vec<Verdict> = (0..25)
            .map(|i| t.refusal(&hn, if i % 2 == 0 { "Match" } else { "Witness" }, start + i))
            .collect();
        let recorded = verdicts.iter().filter(|v| **v == Verdict::Record).count();
        assert_eq!(recorded, REFUSALS_AUDITED_PER_MINUTE as usize);
        // Another peer has its own budget.
        assert_eq!(t.refusal(&sv, "Match", start), Verdict::Record);

        let summaries = t.take();
        assert_eq!(summaries.len(), 1, "{summaries:?}");
        let s = &summaries[0];
        assert_eq!((s.peer.as_str(), s.count), ("hn", 15));
        assert_eq!(s.calls.iter().map(|(_, n)| n).sum::<u64>(), 15);
        assert!(t.take().is_empty(), "summarised once");

        // A new minute: entries of their own again.
        assert_eq!(t.refusal(&hn, "Match", start + MINUTE_MS), Verdict::Record);
    }
}
