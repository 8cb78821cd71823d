//! Refusals of a peer's or an agency client's calls, on record at a bounded
//! rate.
//!
//! Every refusal belongs on the audit log, but a member that sends garbage
//! in a loop must not be able to grow another member's log, whose entries
//! can never be removed, as fast as it can send; nor can an agency client
//! (a reader's certificate on a compromised workstation). So the first
//! [`REFUSALS_AUDITED_PER_MINUTE`] refusals of one caller in a minute are
//! written one by one, with their reasons; the rest are counted, and the
//! count is written once a minute as one `requests_refused` entry per
//! caller ("37 further refusals of Match, Witness since …"). The log of a
//! node under such a flood grows by at most a fixed amount per caller and
//! minute, and nothing goes unrecorded. The verdict is taken before any
//! work for the entry is done (no task, no write for a counted one).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::limits::REFUSALS_AUDITED_PER_MINUTE;

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

/// Whose calls were refused: a peer, or an agency client by name (the two
/// never share a budget).
pub(crate) type Caller = crate::trust::tls::Identity;

/// The per-caller tally.
#[derive(Debug, Default)]
pub(crate) struct Tally(Mutex<HashMap<Caller, Minute>>);

/// A summary to write: `count` refusals of `calls` from `caller` since
/// `since_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Summary {
    pub caller: Caller,
    pub since_ms: i64,
    pub count: u64,
    pub calls: Vec<(&'static str, u64)>,
}

impl Tally {
    /// Whether a refusal of `call` from `caller` at `now_ms` gets its own
    /// entry or is counted.
    pub(crate) fn refusal(&self, caller: &Caller, call: &'static str, now_ms: i64) -> Verdict {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let m = map.entry(caller.clone()).or_default();
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
            .filter_map(|(caller, m)| {
                let since_ms = m.counting_since_ms.take()?;
                let calls: Vec<(&'static str, u64)> =
                    std::mem::take(&mut m.counted).into_iter().collect();
                Some(Summary {
                    caller: caller.clone(),
                    since_ms,
                    count: calls.iter().map(|(_, n)| n).sum(),
                    calls,
                })
            })
            .collect();
        out.sort_by(|a, b| a.caller.cmp(&b.caller));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::model::NodeId;

    #[test]
    fn a_flood_is_written_one_by_one_up_to_the_budget_then_counted() {
        let t = Tally::default();
        let hn = Caller::Peer(NodeId::parse("hn").unwrap());
        let sv = Caller::Peer(NodeId::parse("sv").unwrap());
        // A client named like a peer has a budget of its own.
        let client = Caller::Client("hn".into());
        let start = 1_000_000;
        let verdicts: Vec<Verdict> = (0..25)
            .map(|i| t.refusal(&hn, if i % 2 == 0 { "Match" } else { "Witness" }, start + i))
            .collect();
        let recorded = verdicts.iter().filter(|v| **v == Verdict::Record).count();
        assert_eq!(recorded, REFUSALS_AUDITED_PER_MINUTE as usize);
        // Another peer has its own budget.
        assert_eq!(t.refusal(&sv, "Match", start), Verdict::Record);
        assert_eq!(t.refusal(&client, "role", start), Verdict::Record);

        let summaries = t.take();
        assert_eq!(summaries.len(), 1, "{summaries:?}");
        let s = &summaries[0];
        assert_eq!((&s.caller, s.count), (&hn, 15));
        assert_eq!(s.calls.iter().map(|(_, n)| n).sum::<u64>(), 15);
        assert!(t.take().is_empty(), "summarised once");

        // A new minute: entries of their own again.
        assert_eq!(t.refusal(&hn, "Match", start + MINUTE_MS), Verdict::Record);
    }
}
