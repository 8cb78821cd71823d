//! The gate in front of publishing: a node publishes only what its peers
//! will accept.
//!
//! Peers refuse a record whose number they have already seen from its
//! origin with other content. A node whose store was lost, replaced by an
//! old backup, or opened from the wrong directory would number its next
//! record as if its log were new, and every peer would drop it: an
//! agency's alert acknowledged as durable that no one ever receives.
//!
//! So before the first publication after start (the node's own MLA
//! acknowledgments included) the publisher asks every peer how far it saw
//! this node's log ([`Gate::check`]: a `Pull` of the node's own records
//! above what it holds, at most one, which also returns the peer's cursor).
//!
//! A member is a partner, not a friend: a cursor is only a claim, and a
//! member that lies about it must not be able to stop this node from
//! publishing. So a peer shows that it saw more by handing back a record
//! of this node's, signed with this node's key, numbered above what the
//! store holds. A peer that claims more without one is logged (WARN) and
//! confirms nothing. Then:
//!
//! | answers | the gate | publishing |
//! |---|---|---|
//! | a peer handed back a record above what the store holds | [`OwnLog::Behind`] | refused, naming `enlace node recover`; ERROR in the log; `enlace_own_log_behind` is 1 |
//! | at least one peer answered, and its cursor is not beyond the store | [`OwnLog::Confirmed`] | allowed; a new federation, where every peer saw 0, is this case |
//! | no peer answered (isolated start) | [`OwnLog::Unconfirmed`] | allowed if the store holds records of its own; with an empty store, refused unless the node was started with `--new-log` (a new member starting before its peers) |
//!
//! A closed gate stays closed until the node is recovered and restarted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use super::PublishError;
use crate::records::model::NodeId;
use crate::trust::roster::Roster;
use crate::trust::verify;
use crate::wire::{PullRequest, Reach};

/// How long the start check waits for the peers' answers.
pub(crate) const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// While no peer has answered, a publication asks them again, but at most
/// this often when the gate would let it through anyway: a peer that drops
/// packets costs a check [`CHECK_TIMEOUT`] long, and an isolated node must
/// not make every publication wait that long. A publication the gate would
/// refuse (an empty store, no `--new-log`) always asks first.
pub(crate) const RECHECK_INTERVAL: Duration = Duration::from_secs(30);

/// What the peers said of this node's own log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnLog {
    /// Not asked yet: the node has just started.
    Unchecked,
    /// At least one peer answered, and none saw more than this node holds.
    Confirmed,
    /// No peer answered.
    Unconfirmed,
    /// `peer` saw this node's log up to `seen`; the store holds `held`.
    Behind { peer: NodeId, seen: u64, held: u64 },
}

/// The gate: what the peers said of this node's own log, and whether a
/// new member's first start was declared.
#[derive(Debug)]
pub(crate) struct Gate {
    state: watch::Sender<OwnLog>,
    new_log: AtomicBool,
    /// Publications refused here since start (the node's own
    /// acknowledgments included).
    held_back: AtomicU64,
    /// Checks run since start.
    checks: AtomicU64,
    /// When a publication last asked the peers again; held while it asks,
    /// so concurrent publications wait for one answer instead of each
    /// asking.
    rechecked: tokio::sync::Mutex<Option<tokio::time::Instant>>,
}

/// A peer's answer to "how far did you see my log?".
struct Answer {
    /// Its cursor of this node's log: a claim.
    head: u64,
    /// The seq of a record of this node's, verified, above what the store
    /// holds: the proof.
    shown: Option<u64>,
}

async fn ask(
    peers: &dyn Reach,
    roster: &Roster,
    own: &NodeId,
    peer: &NodeId,
    held: u64,
) -> Result<Answer, String> {
    let mut client = peers.client(peer).map_err(|r| r.reason())?;
    let request = PullRequest {
        origin: own.clone(),
        after_seq: held,
        follow: false,
        max_batch: 1,
    };
    let mut stream = client
        .pull(request)
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
    let batch = stream
        .message()
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
        .ok_or_else(|| "the peer sent no batch".to_string())?;
    let shown = batch.records.iter().find_map(|envelope| {
        let v = verify::verify(roster, envelope).ok()?;
        (v.body.origin == *own && v.body.seq > held).then_some(v.body.seq)
    });
    Ok(Answer {
        head: batch.head,
        shown,
    })
}

impl Gate {
    pub(crate) fn new() -> Self {
        Self {
            state: watch::Sender::new(OwnLog::Unchecked),
            new_log: AtomicBool::new(false),
            held_back: AtomicU64::new(0),
            checks: AtomicU64::new(0),
            rechecked: tokio::sync::Mutex::new(None),
        }
    }

    /// Asks every peer of `roster` how far it saw `own`'s log, of which
    /// the store holds `held`, and sets the gate.
    pub(crate) async fn check(
        &self,
        own: &NodeId,
        held: u64,
        roster: &Roster,
        peers: &dyn Reach,
    ) -> OwnLog {
        self.checks.fetch_add(1, Ordering::Relaxed);
        let asked: Vec<NodeId> = roster
            .members()
            .filter(|m| m.id != *own && peers.reachable(&m.id))
            .map(|m| m.id.clone())
            .collect();
        let others = roster.members().any(|m| m.id != *own);
        let asks = asked.iter().map(|peer| async move {
            let answer = tokio::time::timeout(CHECK_TIMEOUT, ask(peers, roster, own, peer, held))
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {CHECK_TIMEOUT:?}")));
            (peer.clone(), answer)
        });
        let answers = futures_util::future::join_all(asks).await;
        let mut confirmed = Vec::new();
        let mut state = if others {
            OwnLog::Unconfirmed
        } else {
            // A federation of one: nobody else numbers this log.
            OwnLog::Confirmed
        };
        for (peer, answer) in answers {
            match answer {
                Ok(Answer {
                    shown: Some(seen), ..
                }) => {
                    state = OwnLog::Behind { peer, seen, held };
                    break;
                }
                Ok(Answer { head, .. }) if head > held => {
                    tracing::warn!(
                        peer = %peer, claimed = head, held,
                        security_event = true,
                        "peer claims to have seen more of this node's log than the store holds, \
                         but hands back no record of it: not believed"
                    );
                }
                Ok(_) => {
                    confirmed.push(peer.to_string());
                    state = OwnLog::Confirmed;
                }
                Err(error) => {
                    tracing::info!(peer = %peer, %error, "peer could not say how far it saw this node's log");
                }
            }
        }
        match &state {
            OwnLog::Confirmed => {
                tracing::info!(held, peers = %confirmed.join(", "), "own log confirmed by the peers")
            }
            OwnLog::Unconfirmed => {
                tracing::warn!(held, "no peer could say how far it saw this node's own log")
            }
            _ => {}
        }
        self.close_or_set(state.clone());
        state
    }

    /// This run is a new member's first, alone: with an empty store and no
    /// peer to confirm it, publishing is allowed anyway.
    pub(crate) fn declare_new_log(&self) {
        self.new_log.store(true, Ordering::SeqCst);
    }

    /// What the peers said so far.
    pub(crate) fn state(&self) -> OwnLog {
        self.state.borrow().clone()
    }

    /// Sets the gate, unless it is closed already (a closed gate stays
    /// closed until the node is recovered and restarted).
    fn close_or_set(&self, state: OwnLog) {
        self.state.send_if_modified(|s| {
            if matches!(s, OwnLog::Behind { .. }) || *s == state {
                return false;
            }
            if let OwnLog::Behind { peer, seen, held } = &state {
                tracing::error!(
                    peer = %peer, seen, held,
                    "a peer saw this node's own log further than its store holds: the store was \
                     lost, restored from an old backup, or opened from the wrong directory. \
                     Publishing is refused. Stop the node, check node.data_dir, and run \
                     `enlace node recover` (runbook section 6)"
                );
            }
            *s = state;
            true
        });
    }

    /// Waits for the start check, then says whether a publication may go
    /// from a store that holds `held` of its own records.
    pub(crate) async fn admit(&self, held: u64) -> Result<(), PublishError> {
        let mut watch = self.state.subscribe();
        let state = watch
            .wait_for(|s| *s != OwnLog::Unchecked)
            .await
            .map(|s| s.clone())
            .unwrap_or(OwnLog::Unconfirmed);
        let verdict = match state {
            OwnLog::Behind { peer, seen, held } => {
                Err(PublishError::OwnLogBehind { peer, seen, held })
            }
            OwnLog::Unconfirmed if held == 0 && !self.new_log.load(Ordering::SeqCst) => {
                Err(PublishError::OwnLogUnconfirmed)
            }
            _ => Ok(()),
        };
        if verdict.is_err() {
            self.held_back.fetch_add(1, Ordering::Relaxed);
        }
        verdict
    }

    /// Before a publication while no peer has answered: asks the peers
    /// again (through `check`) if the gate would refuse, or if the last
    /// such question is [`RECHECK_INTERVAL`] old; concurrent callers share
    /// one question.
    pub(crate) async fn recheck<F, Fut>(&self, held: u64, check: F)
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = OwnLog>,
    {
        let mut last = self.rechecked.lock().await;
        if self.state() != OwnLog::Unconfirmed {
            return;
        }
        let would_refuse = held == 0 && !self.new_log.load(Ordering::SeqCst);
        if !would_refuse && last.is_some_and(|t| t.elapsed() < RECHECK_INTERVAL) {
            return;
        }
        check().await;
        *last = Some(tokio::time::Instant::now());
    }

    /// How many times the peers were asked since start.
    #[cfg(test)]
    pub(crate) fn checks(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }

    /// Publications refused since start because the own log is behind or
    /// unconfirmed.
    pub(crate) fn held_back(&self) -> u64 {
        self.held_back.load(Ordering::Relaxed)
    }
}
