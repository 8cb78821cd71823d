//! Recovering a node's own log from its peers, after its disk was lost.
//!
//! Every record a member published is held, as a copy, by the peers it was
//! addressed to; a record for named members only is held by those alone.
//! A node restarted on an empty store asks each peer for its own records
//! (`Pull` with `origin` set to itself, which a peer answers with what it
//! holds of the caller's log and how far it had seen it), verifies them as
//! any pulled record (signature, body, series), and stores them. Then it
//! raises its own sequence so that its next publication follows every
//! number any peer saw: reusing one would be a second record for one slot,
//! which peers refuse as a conflict. A number no reachable peer returned
//! stays a hole (a record for a member that is unreachable, or purged
//! everywhere); running the recovery again once that member is back adds
//! what it holds (records already held count as duplicates, as in any
//! pull, and a different record under a held number is refused as a
//! conflict).
//!
//! The node must be stopped (`enlace node recover` opens its store).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::audit::{Action, Entry};
use crate::exchange::Replication;
use crate::exchange::sync::PeerReplicator;
use crate::records::model::NodeId;
use crate::wire::{self, Envelope, PullBatch, PullRequest, Reach};

/// How long one peer may take to hand back everything.
const PEER_TIMEOUT: Duration = Duration::from_secs(120);
/// Records verified and stored per step.
const STEP: usize = 1024;
/// A peer claiming to have seen this node's log beyond this many records is
/// not believed: a buggy or hostile member must not be able to push the
/// own sequence to the end of its range, which would stop this node from
/// ever publishing again.
const MAX_PLAUSIBLE_SEQ: u64 = 1 << 40;

/// What one peer answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerAnswer {
    /// Records handed back, and the highest of this node's numbers it had
    /// seen.
    Returned {
        records: usize,
        seen_up_to: u64,
    },
    Failed(String),
}

impl PeerAnswer {
    /// What the peer answered, for people (the command's output, the audit
    /// entry).
    pub fn describe(&self) -> String {
        match self {
            PeerAnswer::Returned {
                records,
                seen_up_to,
            } => format!("handed back {records} records; had seen the log up to seq {seen_up_to}"),
            PeerAnswer::Failed(e) => format!("FAILED: {e}"),
        }
    }
}

/// What a recovery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    pub peers: Vec<(NodeId, PeerAnswer)>,
    /// Own records stored.
    pub stored: usize,
    /// Highest own sequence number stored.
    pub highest: u64,
    /// The next publication's number follows this.
    pub next_after: u64,
    /// Numbers up to `next_after` that no peer returned.
    pub holes: u64,
}

/// Asks every peer for this node's own records and stores those not held
/// yet; see the module doc.
pub async fn recover_own_log(shared: Arc<Replication>) -> Result<Recovery, String> {
    let own = shared.id.clone();
    let peers: Vec<NodeId> = shared
        .roster()
        .members()
        .filter(|m| m.id != own && shared.dialer.reachable(&m.id))
        .map(|m| m.id.clone())
        .collect();
    let mut records: BTreeMap<u64, Envelope> = BTreeMap::new();
    let mut answers = Vec::new();
    let mut seen = 0;
    for peer in peers {
        let answer = match tokio::time::timeout(PEER_TIMEOUT, ask(&shared, &peer)).await {
            Err(_) => Err(format!("{peer} did not finish in {PEER_TIMEOUT:?}")),
            Ok(a) => a,
        };
        let answer = match answer {
            Ok((got, head)) => {
                seen = seen.max(head);
                let n = got.len();
                for (seq, r) in got {
                    records.entry(seq).or_insert(r);
                }
                PeerAnswer::Returned {
                    records: n,
                    seen_up_to: head,
                }
            }
            Err(e) => PeerAnswer::Failed(e),
        };
        answers.push((peer, answer));
    }

    let replicator = PeerReplicator::for_recovery(shared.clone())?;
    let highest = records.keys().next_back().copied().unwrap_or(0);
    let mut last = 0;
    let all: Vec<(u64, Envelope)> = records.into_iter().collect();
    for step in all.chunks(STEP) {
        let high_water = step.last().map_or(last, |(seq, _)| *seq);
        let batch = PullBatch {
            records: step.iter().map(|(_, r)| r.clone()).collect(),
            high_water,
            head: high_water,
        };
        replicator.apply_recovered(batch, &mut last).await?;
    }
    let stored = shared.store.records().count(&own);
    let floor = seen.max(highest);
    let returned: Vec<String> = answers
        .iter()
        .map(|(peer, a)| format!("{peer}: {}", a.describe()))
        .collect();
    let entry = Entry::new(Action::RecordsReceived, own.as_str())
        .counterparts(answers.iter().map(|(p, _)| p.to_string()))
        .result(format!(
            "own log recovered from the peers: {stored} records stored; next publication after seq {floor}; {}",
            returned.join("; ")
        ));
    let next_after = shared
        .store
        .records()
        .raise_own_seq(floor, entry.encode())
        .await
        .map_err(|e| e.to_string())?;
    Ok(Recovery {
        peers: answers,
        stored,
        highest,
        next_after,
        holes: next_after.saturating_sub(stored as u64),
    })
}

/// One peer's records of this node's log, and how far it had seen it.
async fn ask(shared: &Replication, peer: &NodeId) -> Result<(Vec<(u64, Envelope)>, u64), String> {
    let mut client = shared
        .dialer
        .client(peer)
        .map_err(|r| format!("{peer}: {}", r.reason()))?;
    let request = PullRequest {
        origin: shared.id.clone(),
        after_seq: 0,
        follow: false,
        max_batch: 0,
    };
    let mut stream = client
        .pull(request)
        .await
        .map_err(|s| format!("{peer} refused: {}", s.message()))?;
    let mut out = Vec::new();
    let mut head = 0;
    while let Some(batch) = stream
        .message()
        .await
        .map_err(|s| format!("{peer}: {}", s.message()))?
    {
        if batch.head > MAX_PLAUSIBLE_SEQ {
            return Err(format!(
                "{peer} claims to have seen this node's log up to seq {}, which is not plausible; its answer is ignored",
                batch.head
            ));
        }
        head = head.max(batch.head);
        for r in batch.records {
            // Only the number, to merge the peers' answers; every record is
            // verified in full before it is stored.
            let seq = wire::body_seq(&r.body)
                .map_err(|e| format!("{peer} returned a record that does not decode: {e}"))?;
            out.push((seq, r));
        }
    }
    Ok((out, head))
}
