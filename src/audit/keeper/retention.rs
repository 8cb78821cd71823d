//! Pruning under the retention period, with the peers as the judges of age.
//!
//! A node removes audit entries older than its retention period. Left to
//! itself, its operator could set the clock ahead and prune yesterday's
//! entries, or prune with a tool, and nothing would show. So a pruning
//! step needs a statement that the log resumes after entry `n`, made by
//! this node (cause "retention", see [`crate::audit::recovery`]) and
//! countersigned by at least one peer. A peer countersigns only when, by
//! its own clock, it witnessed a checkpoint that reaches entry `n` at least
//! [`crate::limits::MIN_AUDIT_RETENTION_DAYS`] ago, and it records the
//! pruning in its own log, where this node's operator cannot reach it.
//!
//! The countersigned statement is kept with the anchor, written in the
//! same transaction as each step; `audit verify` fails on an anchor that
//! no such statement covers. When no peer countersigns (none reachable,
//! or all refuse), nothing is removed: the entries stay until the next
//! sweep, which is the safe side of a retention period.

use super::{AuditKeeper, PRUNE_STEP, WitnessError};
use crate::audit::checkpoint::Checkpoint;
use crate::audit::recovery::{self, Recovery};
use crate::audit::{Action, Entry, hex, rfc3339};
use crate::records::model::NodeId;
use crate::store::StoreError;
use crate::store::audit_log::{Anchor, HASH_LEN};
use crate::wire::{AuditRecovery, RecoveryWitness, ResumeCause, SignedRecovery};

/// Why a retention sweep removed nothing.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error(
        "no peer countersigned pruning the audit log up to entry {upto} ({}); the entries stay until a peer does",
        refused_list(.refused)
    )]
    NotCountersigned {
        upto: u64,
        refused: Vec<(NodeId, String)>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn refused_list(refused: &[(NodeId, String)]) -> String {
    if refused.is_empty() {
        return "no peer to ask".into();
    }
    refused
        .iter()
        .map(|(p, e)| format!("{p}: {e}"))
        .collect::<Vec<_>>()
        .join("; ")
}

impl AuditKeeper {
    /// Removes the entries written before `before_ms` that a peer agrees
    /// are old enough (see the module docs), keeping the chain verifiable:
    /// each step records an anchor at its last removed entry, with the
    /// countersigned statement, in the same transaction as the removal.
    /// Returns the number of entries removed.
    pub async fn prune(&self, before_ms: i64) -> Result<usize, PruneError> {
        let Some((n, head)) = self.prunable(before_ms)? else {
            return Ok(0);
        };
        let now = self.clock.now_ms();
        let resumes = Checkpoint {
            node: self.id.clone(),
            size: n,
            head,
            time_ms: now,
        };
        let roster = Some(self.roster_stamp());
        let resumes_signed = resumes.clone().under(roster).sign(&self.signing);
        let statement = Recovery {
            node: self.id.clone(),
            resumes,
            resumes_signed: resumes_signed.clone(),
            time_ms: now,
            reason: format!("retention: entries written before {}", rfc3339(before_ms)),
            cause: ResumeCause::Retention,
        }
        .sign(&self.signing);
        let (witnesses, refused) = self
            .ask_countersignatures(&statement, &self.key_book())
            .await;
        if witnesses.is_empty() {
            return Err(PruneError::NotCountersigned { upto: n, refused });
        }
        let countersigned: Vec<String> = witnesses.iter().map(|w| w.witness.clone()).collect();
        let retention = AuditRecovery {
            statement,
            witnesses,
        }
        .encode();
        let anchor_checkpoint = resumes_signed.encode();
        self.store
            .checkpoints()
            .put(&self.id, n, &anchor_checkpoint)
            .await?;
        let mut removed = 0;
        loop {
            let start = self.store.audit().anchor()?.map_or(0, |a| a.n);
            if start >= n {
                break;
            }
            let batch = self.store.audit().entries(start, PRUNE_STEP)?;
            let Some(upto) = batch.iter().take_while(|e| e.n <= n).last() else {
                break;
            };
            // Each step's anchor is signed; the last is the checkpoint the
            // peers countersigned.
            let checkpoint = if upto.n == n {
                anchor_checkpoint.clone()
            } else {
                Checkpoint {
                    node: self.id.clone(),
                    size: upto.n,
                    head: upto.hash,
                    time_ms: now,
                }
                .under(roster)
                .sign(&self.signing)
                .encode()
            };
            let anchor = Anchor {
                n: upto.n,
                hash: upto.hash,
                checkpoint,
            };
            removed += self.store.audit().prune(&anchor, Some(&retention)).await?;
        }
        if removed > 0 {
            let entry = Entry::new(Action::AuditPruned, self.id.as_str()).result(format!(
                "removed {removed} entries written before {}; the log now starts at entry {}; countersigned by {}",
                rfc3339(before_ms),
                n + 1,
                countersigned.join(", ")
            ));
            self.record(vec![entry]).await?;
        }
        Ok(removed)
    }

    /// The last entry a sweep may remove, with its hash: written before
    /// `before_ms` (by the entries' own times), never the chain's head,
    /// and covered by an own checkpoint made at least the minimum
    /// retention ago, so that a peer can have witnessed it that long ago.
    /// `None` when nothing is prunable.
    fn prunable(&self, before_ms: i64) -> Result<Option<(u64, [u8; HASH_LEN])>, StoreError> {
        let start = self.store.audit().anchor()?.map_or(0, |a| a.n);
        let min_age = i64::from(crate::limits::MIN_AUDIT_RETENTION_DAYS) * 86_400_000;
        let old_enough = self.clock.now_ms() - min_age;
        let witnessable = self
            .own_checkpoints()?
            .iter()
            .filter_map(|c| Checkpoint::decode(&c.body).ok())
            .filter(|c| c.time_ms <= old_enough)
            .map(|c| c.size)
            .max()
            .unwrap_or(0);
        let last_durable = self.store.watermark().audit;
        let mut target = None;
        let mut from = start;
        'scan: loop {
            let batch = self.store.audit().entries(from, PRUNE_STEP)?;
            for e in &batch {
                let old = Entry::decode(&e.body).is_ok_and(|x| x.time_ms < before_ms);
                if !old || e.n >= last_durable || e.n > witnessable {
                    break 'scan;
                }
                target = Some((e.n, e.hash));
            }
            match batch.last() {
                Some(last) if batch.len() == PRUNE_STEP => from = last.n,
                _ => break,
            }
        }
        Ok(target)
    }

    /// Judges a peer's retention statement (see the module docs), records
    /// the pruning in this node's log, and countersigns.
    pub(super) async fn witness_retention(
        &self,
        caller: &NodeId,
        signed: &SignedRecovery,
        r: &Recovery,
    ) -> Result<RecoveryWitness, WitnessError> {
        let n = r.resumes.size;
        let (first, _) = self.witnessed(caller, n.saturating_sub(1), 0, 1)?;
        let first = first.into_iter().next();
        let at_size = first
            .as_ref()
            .and_then(|w| w.checkpoint.as_ref())
            .and_then(|c| Checkpoint::decode(&c.body).ok())
            .filter(|c| c.size == n)
            .map(|c| c.head);
        let first_reaching = first.as_ref().map(|w| w.witnessed_at_ms);
        recovery::judge_retention(r, at_size, first_reaching, self.clock.now_ms())?;
        let entry = Entry::new(Action::RetentionWitnessed, caller.as_str())
            .counterpart(caller)
            .justification(r.reason.clone())
            .result(format!(
                "{caller} prunes its audit log up to entry {n} (head {}); this node saw that entry exist at {}",
                &hex(&r.resumes.head)[..16],
                rfc3339(first_reaching.unwrap_or_default())
            ));
        self.record(vec![entry]).await?;
        Ok(recovery::countersign(
            signed,
            &self.id,
            self.clock.now_ms(),
            &self.signing,
        ))
    }
}
