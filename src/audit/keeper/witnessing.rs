//! Witnessing: judging and countersigning the checkpoints peers send of
//! their own logs, and reading back what was witnessed, here and at the
//! peers. Its own file because it is the keeper's answer to others' logs;
//! the rest of the keeper writes and checkpoints this node's own.

use super::{AuditKeeper, WITNESS_PAGE, WITNESS_TIMEOUT, WitnessError, bounded};
use crate::audit::checkpoint::{self, Checkpoint, RosterStamp};
use crate::audit::{Action, Entry};
use crate::records::model::NodeId;
use crate::store::StoreError;
use crate::wire::{PeerResult, SignedCheckpoint, Witness};

impl AuditKeeper {
    /// Checks, stores and countersigns a peer's checkpoint of its own log.
    pub async fn witness(
        &self,
        caller: &NodeId,
        signed: SignedCheckpoint,
    ) -> Result<Witness, WitnessError> {
        let outcome = self.witness_checked(caller, &signed).await;
        if let Err(error) = &outcome {
            tracing::warn!(security_event = true, peer = %caller, %error, "audit checkpoint refused");
            self.record_witness_refusal(caller, "Witness", error)
                .await?;
        }
        outcome
    }

    /// Puts a peer's refused checkpoint or recovery statement on record
    /// (within the peer's budget) as a `CheckpointRejected` entry; a store
    /// failure is not a refusal and is not written.
    pub(super) async fn record_witness_refusal(
        &self,
        caller: &NodeId,
        call: &'static str,
        error: &WitnessError,
    ) -> Result<(), StoreError> {
        if matches!(error, WitnessError::Store(_)) {
            return Ok(());
        }
        let entry = Entry::new(Action::CheckpointRejected, caller.as_str())
            .counterpart(caller)
            .result(error.to_string());
        self.record_peer_refusal(caller, call, entry).await
    }

    async fn witness_checked(
        &self,
        caller: &NodeId,
        signed: &SignedCheckpoint,
    ) -> Result<Witness, WitnessError> {
        bounded(
            "key_id",
            signed.key_id.len(),
            crate::limits::MAX_PEER_KEY_ID,
        )?;
        bounded(
            "body",
            signed.body.len(),
            crate::limits::MAX_CHECKPOINT_BODY,
        )?;
        let stamped = checkpoint::open_stamped(signed, &self.key_book())?;
        let cp = &stamped.checkpoint;
        if cp.node != *caller {
            return Err(WitnessError::NotOwn {
                claimed: cp.node.clone(),
                caller: caller.clone(),
            });
        }
        // What this node already countersigned at this size: the same
        // state again is answered with it, once the roster is judged.
        let mut held_same = None;
        let mut stamped_before = false;
        if let Some((witnessed, bytes)) = self.store.checkpoints().latest(caller)? {
            stamped_before = Witness::decode(bytes.as_slice())
                .ok()
                .and_then(|w| w.checkpoint)
                .and_then(|c| checkpoint::Stamped::decode(&c.body).ok())
                .is_some_and(|s| s.roster.is_some());
            if cp.size < witnessed {
                return Err(WitnessError::Shrank {
                    node: caller.clone(),
                    size: cp.size,
                    witnessed,
                });
            }
            if cp.size == witnessed {
                let held = Witness::decode(bytes.as_slice()).ok();
                let held_head = held
                    .as_ref()
                    .and_then(|w| w.checkpoint.as_ref())
                    .and_then(|c| Checkpoint::decode(&c.body).ok())
                    .map(|c| c.head);
                match (held, held_head) {
                    (_, Some(head)) if head != cp.head => {
                        return Err(WitnessError::Forked {
                            node: caller.clone(),
                            size: cp.size,
                        });
                    }
                    // The same state again (an idle node's periodic
                    // checkpoint): the countersignature already held. The
                    // same head under another roster (made again after an
                    // adoption) is countersigned anew: the held one covers
                    // the old roster.
                    (Some(held), Some(_))
                        if held
                            .checkpoint
                            .as_ref()
                            .is_some_and(|c| checkpoint::same_state(&c.body, &signed.body)) =>
                    {
                        held_same = Some(held)
                    }
                    _ => {}
                }
            }
        }
        // After the log checks (a shrunken or forked log is the graver
        // finding, and is reported whatever the roster), before anything
        // is countersigned: not even the same state again is vouched for
        // under a roster this node knows to be superseded or conflicting.
        let in_force = self.roster_stamp();
        let chain: Vec<RosterStamp> = self
            .trust
            .chain()
            .iter()
            .map(|s| RosterStamp {
                version: s.version.number(),
                sha256: s.version.hash(),
            })
            .collect();
        checkpoint::judge_roster(caller, stamped.roster, in_force, &chain, stamped_before)?;
        if let Some(held) = held_same {
            return Ok(held);
        }
        let witness = checkpoint::countersign(signed, &self.id, self.clock.now_ms(), &self.signing);
        self.store
            .checkpoints()
            .put(caller, cp.size, &witness.encode())
            .await?;
        Ok(witness)
    }

    /// One page of what this node witnessed of `node`'s log, in (`after`,
    /// `up_to`] (0: no upper bound), at most `limit` (capped at
    /// [`WITNESS_PAGE`]), and whether more follow.
    pub fn witnessed(
        &self,
        node: &NodeId,
        after: u64,
        up_to: u64,
        limit: usize,
    ) -> Result<(Vec<Witness>, bool), StoreError> {
        let limit = if limit == 0 {
            WITNESS_PAGE
        } else {
            limit.min(WITNESS_PAGE)
        };
        let up_to = if up_to == 0 { u64::MAX } else { up_to };
        let mut held = self
            .store
            .checkpoints()
            .between(node, after, up_to, limit + 1)?;
        let more = held.len() > limit;
        held.truncate(limit);
        Ok((
            held.into_iter()
                .filter_map(|(_, bytes)| Witness::decode(bytes.as_slice()).ok())
                .collect(),
            more,
        ))
    }

    /// This node's own checkpoints.
    pub fn own_checkpoints(&self) -> Result<Vec<SignedCheckpoint>, StoreError> {
        Ok(self.own_checkpoints_between(0, u64::MAX, usize::MAX)?.0)
    }

    /// At most `limit` of this node's own checkpoints with size in
    /// (`after`, `up_to`], and whether more follow.
    pub fn own_checkpoints_between(
        &self,
        after: u64,
        up_to: u64,
        limit: usize,
    ) -> Result<(Vec<SignedCheckpoint>, bool), StoreError> {
        let mut held =
            self.store
                .checkpoints()
                .between(&self.id, after, up_to, limit.saturating_add(1))?;
        let more = held.len() > limit;
        held.truncate(limit);
        Ok((
            held.into_iter()
                .filter_map(|(_, bytes)| SignedCheckpoint::decode(bytes.as_slice()).ok())
                .collect(),
            more,
        ))
    }

    /// Asks every peer what it witnessed of this node's log.
    pub async fn gather_witnesses(&self) -> Vec<(NodeId, Result<Vec<Witness>, String>)> {
        self.gather_witnesses_between(0, 0).await
    }

    /// Asks every peer what it witnessed of this node's log in (`after`,
    /// `up_to`] (0: no upper bound), page by page.
    pub async fn gather_witnesses_between(
        &self,
        after: u64,
        up_to: u64,
    ) -> Vec<(NodeId, Result<Vec<Witness>, String>)> {
        let peers: Vec<NodeId> = self
            .trust
            .roster()
            .members()
            .filter(|m| m.id != self.id)
            .map(|m| m.id.clone())
            .collect();
        let asks = peers.into_iter().map(|peer| async move {
            let answer = async {
                if !self.peers.reachable(&peer) {
                    return Err(format!("{peer} has no endpoint to ask"));
                }
                let mut client = self.peers.client(&peer).map_err(PeerResult::reason)?;
                let mut all: Vec<Witness> = Vec::new();
                let mut from = after;
                loop {
                    let (page, more) = tokio::time::timeout(
                        WITNESS_TIMEOUT,
                        client.witnessed(&self.id, from, up_to),
                    )
                    .await
                    .map_err(|_| format!("{peer} did not answer in time"))?
                    .map_err(|s| match s.code() {
                        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => {
                            format!("could not reach {peer}: {}", s.message())
                        }
                        _ => format!("{peer} refused: {}", s.message()),
                    })?;
                    // The next page starts after the last size held; a
                    // page that does not move on ends the walk.
                    let last = page
                        .last()
                        .and_then(|w| w.checkpoint.as_ref())
                        .and_then(|c| Checkpoint::decode(&c.body).ok())
                        .map(|c| c.size);
                    all.extend(page);
                    match last {
                        Some(size) if more && size > from => from = size,
                        _ => break,
                    }
                }
                Ok(all)
            }
            .await;
            (peer, answer)
        });
        futures_util::future::join_all(asks).await
    }
}
