//! Resuming an audit log that was lost, with the peers as witnesses.
//!
//! When a node's disk is lost, its records come back from the peers
//! (`exchange::recover`), but its audit log cannot: no peer holds the
//! entries, only countersigned checkpoints of them. Starting a new log at
//! entry 1 would contradict every checkpoint the peers witnessed, and
//! `audit verify` would fail forever. Pretending nothing happened would be
//! worse. So the node states the loss, in a form it cannot later deny and
//! the peers can check:
//!
//! - The **statement** ([`Recovery`]) names the largest checkpoint of the
//!   lost log that any peer witnessed (`resumes`, signed by this node when
//!   it was made), the time, and a reason. The new log continues after it:
//!   its first entry is number `resumes.size + 1` and links to
//!   `resumes.head`, as after pruning. Entries `1..=resumes.size` are gone;
//!   anything written after `resumes` and before the loss is unknown.
//! - Each reachable **peer countersigns** it after checking it against what
//!   it witnessed itself: never a smaller log, never another head at the
//!   same size, never a statement dated far from its own clock. It records
//!   the incident in its own audit log, where this node's operator cannot
//!   reach it. A statement is therefore no way to trim a log quietly: the
//!   entries it gives up are named, and every peer keeps the record.
//! - `audit verify` reports the incident (entries lost, when, which peers
//!   countersigned) instead of failing, and checks every checkpoint
//!   witnessed after it against the new log as usual.
//!
//! The same statement, with cause `retention`, is how a node prunes its
//! log under the retention period: the peers countersign only entries they
//! saw exist at least the minimum retention ago, by their own clocks
//! ([`judge_retention`]; the keeper's `retention` module). The cause is
//! signed, so a countersignature of one kind never passes for the other.
//!
//! The checks here are pure: the keeper ([`super::keeper`]) gathers the
//! witnesses, stores the outcome and talks to the peers.

use super::checkpoint::{self, Checkpoint, CheckpointError, KeyBook, witness_message};
use crate::records::crypto::{
    RECOVERY_SIGNATURE_CONTEXT, RECOVERY_WITNESS_SIGNATURE_CONTEXT, SigningKey,
};
use crate::records::model::NodeId;
use crate::wire::{
    RecoveryBody, RecoveryWitness, ResumeCause, SignedCheckpoint, SignedRecovery, Witness,
};

/// How far a statement's time may be from the witness's clock. A statement
/// is made and sent within seconds; an old one replayed, or one dated to
/// look older than it is, is refused.
pub const MAX_SKEW_MS: i64 = 10 * 60 * 1000;

/// A recovery statement's content, opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    pub node: NodeId,
    /// The checkpoint of the lost log the new log continues from.
    pub resumes: Checkpoint,
    /// The same, as signed when it was made.
    pub resumes_signed: SignedCheckpoint,
    pub time_ms: i64,
    pub reason: String,
    /// A lost log, or a retention step (see the module docs).
    pub cause: ResumeCause,
}

/// A statement a peer countersigned, after both signatures were checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Countersigned {
    pub recovery: Recovery,
    pub witness: NodeId,
    pub witnessed_at_ms: i64,
}

impl Recovery {
    /// Signs the statement with the node's key.
    pub fn sign(&self, key: &SigningKey) -> SignedRecovery {
        let body = RecoveryBody {
            node: self.node.to_string(),
            resumes: Some(self.resumes_signed.clone()),
            time_ms: self.time_ms,
            reason: self.reason.clone(),
            cause: self.cause.code(),
        }
        .encode();
        SignedRecovery {
            signature: key.sign_in(RECOVERY_SIGNATURE_CONTEXT, &body),
            key_id: key.key_id().to_owned(),
            body,
        }
    }
}

/// Checks a signed statement: it decodes, its node signed it with a key
/// valid when it was made, and `resumes` is that node's own checkpoint.
pub fn open(signed: &SignedRecovery, keys: &KeyBook) -> Result<Recovery, CheckpointError> {
    let body = RecoveryBody::decode(&signed.body)
        .map_err(|e| CheckpointError::Decode(format!("recovery statement: {e}")))?;
    let node = NodeId::parse(&body.node).map_err(|_| CheckpointError::Node(body.node.clone()))?;
    keys.check(
        RECOVERY_SIGNATURE_CONTEXT,
        &node,
        &signed.key_id,
        body.time_ms,
        &signed.body,
        &signed.signature,
    )?;
    let resumes_signed = body.resumes.ok_or(CheckpointError::Missing)?;
    let resumes = checkpoint::open(&resumes_signed, keys)?;
    if resumes.node != node {
        return Err(CheckpointError::Foreign {
            node,
            checkpoint_of: resumes.node,
        });
    }
    Ok(Recovery {
        node,
        resumes,
        resumes_signed,
        time_ms: body.time_ms,
        reason: body.reason,
        cause: ResumeCause::from_code(body.cause).ok_or_else(|| {
            CheckpointError::Decode(format!(
                "recovery statement: cause {} is not one this node knows",
                body.cause
            ))
        })?,
    })
}

/// The countersignature of `signed` by `witness` at `at_ms`.
pub fn countersign(
    signed: &SignedRecovery,
    witness: &NodeId,
    at_ms: i64,
    key: &SigningKey,
) -> RecoveryWitness {
    let message = witness_message(&signed.body, witness.as_str(), at_ms);
    RecoveryWitness {
        recovery: Some(signed.clone()),
        witness: witness.to_string(),
        witnessed_at_ms: at_ms,
        key_id: key.key_id().to_owned(),
        signature: key.sign_in(RECOVERY_WITNESS_SIGNATURE_CONTEXT, &message),
    }
}

/// Checks a countersignature: the statement's signatures, and the
/// witness's.
pub fn open_witness(w: &RecoveryWitness, keys: &KeyBook) -> Result<Countersigned, CheckpointError> {
    let signed = w.recovery.as_ref().ok_or(CheckpointError::Missing)?;
    let recovery = open(signed, keys)?;
    let witness =
        NodeId::parse(&w.witness).map_err(|_| CheckpointError::Node(w.witness.clone()))?;
    let message = witness_message(&signed.body, witness.as_str(), w.witnessed_at_ms);
    keys.check(
        RECOVERY_WITNESS_SIGNATURE_CONTEXT,
        &witness,
        &w.key_id,
        w.witnessed_at_ms,
        &message,
        &w.signature,
    )?;
    Ok(Countersigned {
        recovery,
        witness,
        witnessed_at_ms: w.witnessed_at_ms,
    })
}

/// Where a lost log resumes: the largest checkpoint of `node`'s log that
/// a peer witnessed, with the peers that witnessed it. `Ok(None)` when no
/// peer witnessed any (the log may start afresh at entry 1). Refused when
/// two peers witnessed different heads at one size: the log forked, and no
/// statement can paper over that.
pub fn resume_point(
    node: &NodeId,
    answers: &[(NodeId, Vec<Witness>)],
    keys: &KeyBook,
) -> Result<Option<(SignedCheckpoint, Checkpoint, Vec<NodeId>)>, String> {
    let mut best: Option<(SignedCheckpoint, Checkpoint, Vec<NodeId>)> = None;
    for (peer, witnesses) in answers {
        for w in witnesses {
            // A witness that does not verify proves nothing either way.
            let Ok(seen) = checkpoint::open_witness(w, keys) else {
                continue;
            };
            if seen.checkpoint.node != *node || seen.witness != *peer {
                continue;
            }
            let Some(signed) = w.checkpoint.clone() else {
                continue;
            };
            match &mut best {
                Some((_, cp, who)) if cp.size == seen.checkpoint.size => {
                    if cp.head != seen.checkpoint.head {
                        return Err(format!(
                            "the peers witnessed two different logs of {node} at entry {}: {} and {peer} disagree; \
                             the log forked, and a recovery cannot resume from either",
                            cp.size,
                            who.iter()
                                .map(NodeId::as_str)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                    if !who.contains(peer) {
                        who.push(peer.clone());
                    }
                }
                Some((_, cp, _)) if cp.size > seen.checkpoint.size => {}
                _ => best = Some((signed, seen.checkpoint, vec![peer.clone()])),
            }
        }
    }
    Ok(best)
}

/// Why a peer refuses to countersign a statement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryRefusal {
    #[error(
        "the statement resumes {node}'s log after entry {resumes}, but this node witnessed a checkpoint of {witnessed} entries: it would hide entries peers saw"
    )]
    Behind {
        node: NodeId,
        resumes: u64,
        witnessed: u64,
    },
    #[error(
        "the statement resumes {node}'s log after entry {size} with another head than the one this node witnessed at that size"
    )]
    Forked { node: NodeId, size: u64 },
    #[error(
        "the statement was made at {made_ms} ms, {skew_s} s from this node's clock (at most {} s): send a fresh one",
        MAX_SKEW_MS / 1000
    )]
    Stale { made_ms: i64, skew_s: i64 },
    #[error(
        "this node already countersigned a recovery of {node}'s log after entry {held}; a new one must resume further"
    )]
    Superseded { node: NodeId, held: u64 },
    #[error(
        "pruning {node}'s log up to entry {size}: this node never witnessed a checkpoint that reaches entry {size}"
    )]
    Unseen { node: NodeId, size: u64 },
    #[error(
        "pruning {node}'s log up to entry {size}: this node first witnessed a log that reaches entry {size} at {seen_ms} ms, \
         {age_days} days ago by its clock; entries younger than {min_days} days are never pruned"
    )]
    TooYoung {
        node: NodeId,
        size: u64,
        seen_ms: i64,
        age_days: i64,
        min_days: u32,
    },
}

/// Refuses a statement made too far from the witness's clock: one
/// replayed long after it was made, or dated by a clock far off.
fn fresh(r: &Recovery, now_ms: i64) -> Result<(), RecoveryRefusal> {
    let skew = (now_ms - r.time_ms).abs();
    if skew > MAX_SKEW_MS {
        return Err(RecoveryRefusal::Stale {
            made_ms: r.time_ms,
            skew_s: skew / 1000,
        });
    }
    Ok(())
}

/// A witness's judgement of a statement: `latest` is the largest
/// checkpoint of the node it witnessed (size, head), `held` the `resumes`
/// size of the last statement it countersigned for that node.
pub fn judge(
    r: &Recovery,
    latest: Option<(u64, [u8; 32])>,
    held: Option<u64>,
    now_ms: i64,
) -> Result<(), RecoveryRefusal> {
    fresh(r, now_ms)?;
    if let Some((size, head)) = latest {
        if r.resumes.size < size {
            return Err(RecoveryRefusal::Behind {
                node: r.node.clone(),
                resumes: r.resumes.size,
                witnessed: size,
            });
        }
        if r.resumes.size == size && r.resumes.head != head {
            return Err(RecoveryRefusal::Forked {
                node: r.node.clone(),
                size,
            });
        }
    }
    // The same point again (a recovery run twice) is countersigned anew;
    // an earlier one is not.
    if let Some(held) = held
        && r.resumes.size < held
    {
        return Err(RecoveryRefusal::Superseded {
            node: r.node.clone(),
            held,
        });
    }
    Ok(())
}

/// A witness's judgement of a retention statement: `at_size` is the head
/// it witnessed at exactly `resumes.size` (if it did), `first_reaching`
/// when it first witnessed a checkpoint of `resumes.size` entries or more
/// (if it did). It countersigns only entries it saw exist at least the
/// federation's minimum retention ago, by its own clock: neither the
/// node's clock nor its operator decides how old an entry is.
pub fn judge_retention(
    r: &Recovery,
    at_size: Option<[u8; 32]>,
    first_reaching: Option<i64>,
    now_ms: i64,
) -> Result<(), RecoveryRefusal> {
    fresh(r, now_ms)?;
    if at_size.is_some_and(|head| head != r.resumes.head) {
        return Err(RecoveryRefusal::Forked {
            node: r.node.clone(),
            size: r.resumes.size,
        });
    }
    let Some(seen_ms) = first_reaching else {
        return Err(RecoveryRefusal::Unseen {
            node: r.node.clone(),
            size: r.resumes.size,
        });
    };
    let min_days = crate::limits::MIN_AUDIT_RETENTION_DAYS;
    if now_ms - seen_ms < i64::from(min_days) * 86_400_000 {
        return Err(RecoveryRefusal::TooYoung {
            node: r.node.clone(),
            size: r.resumes.size,
            seen_ms,
            age_days: (now_ms - seen_ms) / 86_400_000,
            min_days,
        });
    }
    Ok(())
}

#[cfg(test)]
#[path = "recovery_tests.rs"]
mod tests;
