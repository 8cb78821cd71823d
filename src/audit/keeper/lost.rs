//! Statements that the log resumes after a checkpoint, countersigned by
//! the peers: asking for them (a lost log, see [`crate::audit::recovery`])
//! and judging the ones peers send.

use super::{AuditKeeper, MAX_CARRIED, Resumed, WITNESS_TIMEOUT, WitnessError, bounded};
use crate::audit::checkpoint::{Checkpoint, KeyBook};
use crate::audit::recovery::{self, Recovery};
use crate::audit::{Action, Entry, hex};
use crate::records::model::NodeId;
use crate::store::StoreError;
use crate::store::audit_log::Anchor;
use crate::wire::{
    AuditRecovery, PeerResult, RecoveryWitness, ResumeCause, SignedRecovery, Witness,
};

impl AuditKeeper {
    /// Resumes this node's audit log after the largest checkpoint of it
    /// that the peers witnessed, when the log was lost with the disk (see
    /// [`crate::audit::recovery`]): the peers countersign a statement of the loss,
    /// and the new log continues after that checkpoint. The entries a node
    /// started on the empty store wrote meanwhile are carried over after
    /// it. A log resumed before is left alone. Fails, changing nothing,
    /// when no peer answers or none countersigns: run it again once one
    /// does.
    pub async fn resume_lost_log(&self, reason: &str) -> Result<Resumed, String> {
        let held = self.store.watermark().audit;
        let anchored = self.store.audit().anchor().map_err(|e| e.to_string())?;
        if anchored.is_some() {
            // Resumed before (a recovery run again), or pruned: not a log
            // that started afresh on an empty store.
            return Ok(Resumed::Untouched { held });
        }
        let keys = self.key_book();
        let mut answered = Vec::new();
        let mut failed = Vec::new();
        for (peer, answer) in self.gather_witnesses().await {
            match answer {
                Ok(ws) => answered.push((peer, ws)),
                Err(e) => failed.push(e),
            }
        }
        if answered.is_empty() {
            return Err(format!(
                "no peer said what it witnessed of this node's audit log ({}); run the recovery again once a peer is reachable",
                failed.join("; ")
            ));
        }
        let Some((resumes_signed, resumes, witnessed_by)) =
            recovery::resume_point(&self.id, &answered, &keys)?
        else {
            return Ok(Resumed::Fresh);
        };
        if held >= resumes.size {
            let head = self
                .store
                .audit()
                .entry(resumes.size)
                .map_err(|e| e.to_string())?
                .map(|e| e.hash);
            if head == Some(resumes.head) {
                // The log holds what the peers witnessed: nothing was lost.
                return Ok(Resumed::Untouched { held });
            }
            return Err(format!(
                "the audit log holds {held} entries that are not the log the peers witnessed up to entry {}: \
                 the node ran on a new store long enough to write past the lost log; restore the data \
                 directory from a backup, or keep the peers' witnesses as the record (runbook section 6)",
                resumes.size
            ));
        }
        if held > MAX_CARRIED {
            return Err(format!(
                "the audit log written since the loss holds {held} entries, more than the {MAX_CARRIED} a recovery carries over"
            ));
        }
        let statement = Recovery {
            node: self.id.clone(),
            resumes: resumes.clone(),
            resumes_signed: resumes_signed.clone(),
            time_ms: self.clock.now_ms(),
            reason: reason.to_owned(),
            cause: ResumeCause::Lost,
        }
        .sign(&self.signing);
        let (witnesses, refused) = self.ask_countersignatures(&statement, &keys).await;
        if witnesses.is_empty() {
            let why: Vec<String> = refused.iter().map(|(p, e)| format!("{p}: {e}")).collect();
            return Err(format!(
                "no peer countersigned the statement that the audit log was lost ({}); run the recovery again once a peer does",
                why.join("; ")
            ));
        }
        let countersigned: Vec<NodeId> = witnesses
            .iter()
            .filter_map(|w| NodeId::parse(&w.witness).ok())
            .collect();
        let list = |ids: &[NodeId]| {
            ids.iter()
                .map(NodeId::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let entry = Entry::new(Action::AuditResumed, self.id.as_str())
            .counterparts(countersigned.iter())
            .justification(reason)
            .result(format!(
                "the audit log was lost: entries 1..{n} are gone, and any written after entry {n} before the loss; \
                 the log resumes after entry {n}, as {witnessed} witnessed it on {at}; countersigned by {signed}{carried}",
                n = resumes.size,
                witnessed = list(&witnessed_by),
                at = crate::audit::rfc3339(resumes.time_ms),
                signed = list(&countersigned),
                carried = if held == 0 {
                    String::new()
                } else {
                    format!(
                        "; the {held} entries written on the empty store since the loss follow as entries {}..{}",
                        resumes.size + 1,
                        resumes.size + held
                    )
                },
            ));
        entry.log(&self.id);
        let kept = AuditRecovery {
            statement,
            witnesses,
        };
        let anchor = Anchor {
            n: resumes.size,
            hash: resumes.head,
            checkpoint: resumes_signed.encode(),
        };
        self.store
            .audit()
            .resume(
                self.id.as_str(),
                &anchor,
                &kept.encode(),
                held,
                vec![entry.encode()],
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(Resumed::After {
            after: resumes.size,
            witnessed_by,
            countersigned,
            refused,
        })
    }

    /// Hands a recovery statement to every reachable peer; the
    /// countersignatures that verify, and each peer that gave none, with why.
    pub(super) async fn ask_countersignatures(
        &self,
        statement: &SignedRecovery,
        keys: &KeyBook,
    ) -> (Vec<RecoveryWitness>, Vec<(NodeId, String)>) {
        let peers: Vec<NodeId> = self
            .trust
            .roster()
            .members()
            .filter(|m| m.id != self.id && self.peers.reachable(&m.id))
            .map(|m| m.id.clone())
            .collect();
        let asks = peers.into_iter().map(|peer| async move {
            let outcome = async {
                let mut client = self.peers.client(&peer).map_err(PeerResult::reason)?;
                let w = tokio::time::timeout(WITNESS_TIMEOUT, client.witness_recovery(statement))
                    .await
                    .map_err(|_| "timed out".to_string())?
                    .map_err(|s| s.message().to_string())?;
                let opened = recovery::open_witness(&w, keys)
                    .map_err(|e| format!("countersignature does not verify: {e}"))?;
                if opened.witness != peer || w.recovery.as_ref() != Some(statement) {
                    return Err("answered with a countersignature of something else".to_string());
                }
                Ok(w)
            }
            .await;
            (peer, outcome)
        });
        let mut witnesses = Vec::new();
        let mut refused = Vec::new();
        for (peer, outcome) in futures_util::future::join_all(asks).await {
            match outcome {
                Ok(w) => witnesses.push(w),
                Err(e) => {
                    tracing::warn!(peer = %peer, error = %e, "peer did not countersign the audit recovery");
                    refused.push((peer, e));
                }
            }
        }
        (witnesses, refused)
    }

    /// Checks a peer's statement that it lost its audit log against what
    /// this node witnessed of it, records the incident, and countersigns
    /// (see [`crate::audit::recovery`]). The same statement again gets the same
    /// countersignature.
    pub async fn witness_recovery(
        &self,
        caller: &NodeId,
        signed: SignedRecovery,
    ) -> Result<RecoveryWitness, WitnessError> {
        let outcome = self.witness_recovery_checked(caller, &signed).await;
        if let Err(error) = &outcome {
            tracing::warn!(security_event = true, peer = %caller, %error, "audit recovery statement refused");
            self.record_witness_refusal(caller, "WitnessRecovery", error)
                .await?;
        }
        outcome
    }

    async fn witness_recovery_checked(
        &self,
        caller: &NodeId,
        signed: &SignedRecovery,
    ) -> Result<RecoveryWitness, WitnessError> {
        bounded(
            "key_id",
            signed.key_id.len(),
            crate::limits::MAX_PEER_KEY_ID,
        )?;
        bounded("body", signed.body.len(), crate::limits::MAX_RECOVERY_BODY)?;
        let r = recovery::open(signed, &self.key_book())?;
        bounded(
            "reason",
            r.reason.len(),
            crate::limits::MAX_PEER_JUSTIFICATION,
        )?;
        if r.node != *caller {
            return Err(WitnessError::NotOwn {
                claimed: r.node,
                caller: caller.clone(),
            });
        }
        if r.cause == ResumeCause::Retention {
            return self.witness_retention(caller, signed, &r).await;
        }
        let held = self.store.checkpoints().recoveries(caller)?.pop();
        if let Some((_, bytes)) = &held
            && let Ok(w) = RecoveryWitness::decode(bytes.as_slice())
            && w.recovery.as_ref() == Some(signed)
        {
            return Ok(w);
        }
        let latest = match self.store.checkpoints().latest(caller)? {
            Some((size, bytes)) => Witness::decode(bytes.as_slice())
                .ok()
                .and_then(|w| w.checkpoint)
                .and_then(|c| Checkpoint::decode(&c.body).ok())
                .map(|c| (size, c.head)),
            None => None,
        };
        let held_size = held.as_ref().map(|(size, _)| *size);
        recovery::judge(&r, latest, held_size, self.clock.now_ms())?;
        // The incident goes on record here once, before the
        // countersignature leaves; the same point restated does not add
        // another entry.
        if held_size != Some(r.resumes.size) {
            let entry = Entry::new(Action::RecoveryWitnessed, caller.as_str())
                .counterpart(caller)
                .justification(r.reason.clone())
                .result(format!(
                    "{caller} lost its audit log; it resumes after entry {} (head {}), stated at {}",
                    r.resumes.size,
                    &hex(&r.resumes.head)[..16],
                    crate::audit::rfc3339(r.time_ms)
                ));
            self.record(vec![entry]).await?;
        }
        let w = recovery::countersign(signed, &self.id, self.clock.now_ms(), &self.signing);
        self.store
            .checkpoints()
            .put_recovery(caller, r.resumes.size, &w.encode())
            .await?;
        Ok(w)
    }

    /// This node's own recoveries of its audit log, oldest first.
    pub fn own_recoveries(&self) -> Result<Vec<AuditRecovery>, StoreError> {
        Ok(self
            .store
            .checkpoints()
            .recoveries(&self.id)?
            .into_iter()
            .filter_map(|(_, bytes)| AuditRecovery::decode(bytes.as_slice()).ok())
            .collect())
    }
}
