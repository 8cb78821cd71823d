//! The producing side of `Pull`: this node's own log streamed to a peer,
//! and a member's own records handed back to it.
//!
//! Each record is filtered by its distribution before it leaves: a record
//! is never sent to a member it is not addressed to. Only durable records
//! are served (see [`crate::store`]). A bounded channel between the
//! producer and the stream gives backpressure, and each batch waiting in it
//! holds its size in the node's `Pull` byte budget ([`super::budget`]):
//! slow or silent peers together hold at most that much in memory. Every
//! batch disclosed is on the audit log before it is sent.

use std::sync::Arc;

use prost::Message;
use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};
use tonic::Status;

use super::IntoStatus;
use super::budget::{HandBackSlot, PullBudget, StreamSlot};
use crate::audit::{Action, Entry};
use crate::components::Components;
use crate::exchange::peers::shutting_down;
use crate::records::model::{Distribution, NodeId};
use crate::wire;
use crate::wire::pb::v1 as pb;

/// A batch is closed once its records exceed this many bytes.
const MAX_BATCH_BYTES: usize = 2 * 1024 * 1024;

/// What travels from a producer to its stream: a batch (or the error that
/// ends the stream) and its place in the byte budget, given back when the
/// transport takes the batch.
pub(super) type Item = (Result<pb::PullBatch, Status>, Option<OwnedSemaphorePermit>);

/// Sends `batch` to `peer` once its byte budget has room for it; false
/// when the peer went away.
async fn send(
    tx: &mpsc::Sender<Item>,
    budget: &PullBudget,
    peer: &NodeId,
    batch: pb::PullBatch,
) -> bool {
    let room = budget.room(peer, batch.encoded_len()).await;
    tx.send((Ok(batch), room)).await.is_ok()
}

/// Ends the stream with `status`.
async fn fail(tx: &mpsc::Sender<Item>, status: Status) {
    let _ = tx.send((Err(status), None)).await;
}

/// Streams back to `origin` its own records held here, after `after`, up to
/// this node's cursor for it, which each batch gives as `head`: the origin
/// learns which of its numbers were seen, held here or not. Its records
/// are its own, so no distribution rule applies; the handing back is
/// audited like any disclosure. Purged records have nothing to return.
pub(super) async fn hand_back(
    node: Components,
    origin: NodeId,
    mut after: u64,
    max_batch: usize,
    budget: Arc<PullBudget>,
    slot: HandBackSlot,
    tx: mpsc::Sender<Item>,
) {
    let _slot = slot;
    let batches = async {
        let head = node
            .store
            .records()
            .cursor(&origin)
            .map_err(IntoStatus::into_status)?;
        loop {
            let stored = node
                .store
                .records()
                .of_origin(&origin, after, head, max_batch)
                .map_err(IntoStatus::into_status)?;
            let done = stored.len() < max_batch;
            let mut records = Vec::new();
            let mut ids = Vec::new();
            for r in stored {
                after = r.seq;
                if let Some(raw) = r.content.envelope() {
                    let undecodable =
                        |_| Status::internal("this node's store holds an undecodable record");
                    let envelope =
                        pb::SignedRecord::decode(raw).map_err(|e| undecodable(e.to_string()))?;
                    ids.push(
                        Disclosure::of(&envelope.body)
                            .map_err(undecodable)?
                            .record_id,
                    );
                    records.push(envelope);
                }
            }
            if done {
                after = head;
            }
            if !records.is_empty() {
                let entry = Entry::new(Action::RecordsDisclosed, node.id.as_str())
                    .counterpart(&origin)
                    .ids(ids)
                    .result(format!(
                        "{} of its own records handed back to their origin",
                        records.len()
                    ));
                node.audit
                    .record(vec![entry])
                    .await
                    .map_err(IntoStatus::into_status)?;
            }
            let batch = pb::PullBatch {
                records,
                high_water: after,
                head,
            };
            if !send(&tx, &budget, &origin, batch).await {
                return Ok(());
            }
            if done {
                return Ok(());
            }
        }
    };
    if let Err(status) = batches.await {
        fail(&tx, status).await;
    }
}

pub(super) struct Producer {
    pub(super) node: Components,
    pub(super) caller: NodeId,
    pub(super) after: u64,
    pub(super) follow: bool,
    pub(super) max_batch: usize,
    pub(super) stop: watch::Receiver<bool>,
    pub(super) budget: Arc<PullBudget>,
    /// This peer's place for a stream of the own log.
    pub(super) slot: StreamSlot,
}

impl Producer {
    /// Serves the stream until it is done, the peer goes, the node stops,
    /// or a newer stream of the same peer replaces it (whatever the
    /// producer was waiting for: room, the peer, new records).
    pub(super) async fn run(mut self, tx: mpsc::Sender<Item>) {
        let mut replaced = self.slot.replaced.clone();
        tokio::select! {
            _ = self.produce(&tx) => {}
            _ = replaced.wait_for(|r| *r) => {
                // The channel may be full of batches the peer never read.
                let _ = tx.try_send((
                    Err(Status::aborted(format!(
                        "a newer Pull stream from {} replaced this one (one stream of this node's log per peer)",
                        self.caller
                    ))),
                    None,
                ));
            }
        }
    }

    async fn produce(&mut self, tx: &mpsc::Sender<Item>) {
        let mut changes = self.node.store.subscribe();
        // The heartbeat has its own timer: the change notification fires
        // for every audit entry too, and a sleep restarted by each of them
        // would starve a caller this node has nothing new for.
        let every = self.node.replication.heartbeat();
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let durable = changes.borrow_and_update().own_seq;
            // A stretch of records for other members only sends nothing:
            // a message at once would tell this peer when something was
            // published for someone else. Its position travels with the
            // next batch for this peer, or the next heartbeat.
            let mut unsent = false;
            while self.after < durable {
                let (batch, disclosed) = match self.next_batch(durable) {
                    Ok(b) => b,
                    Err(status) => {
                        fail(tx, status).await;
                        return;
                    }
                };
                self.after = batch.high_water;
                if batch.records.is_empty() {
                    unsent = true;
                    continue;
                }
                unsent = false;
                {
                    // The disclosure is on record before the batch leaves.
                    let entry = Entry::new(Action::RecordsDisclosed, self.node.id.as_str())
                        .counterpart(&self.caller)
                        .ids(disclosed)
                        .result(match batch.records.len() {
                            1 => "1 record".to_owned(),
                            n => format!("{n} records"),
                        });
                    if let Err(e) = self.node.audit.record(vec![entry]).await {
                        fail(tx, e.into_status()).await;
                        return;
                    }
                }
                let sent = batch.records.len();
                if !send(tx, &self.budget, &self.caller, batch).await {
                    return; // the peer went away
                }
                heartbeat.reset();
                self.node.metrics.records_sent(&self.caller, sent);
            }
            if !self.follow {
                // A one-shot stream ends with where it got to.
                if unsent {
                    let end = pb::PullBatch {
                        records: Vec::new(),
                        high_water: self.after,
                        head: durable,
                    };
                    send(tx, &self.budget, &self.caller, end).await;
                }
                return;
            }
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return },
                _ = heartbeat.tick() => {
                    // Nothing new: tell the peer we are alive, so that it
                    // can tell a quiet origin from a stalled connection.
                    let beat = pb::PullBatch { records: Vec::new(), high_water: self.after, head: durable };
                    if !send(tx, &self.budget, &self.caller, beat).await {
                        return;
                    }
                }
                _ = crate::shutdown::stopped(&mut self.stop) => {
                    fail(tx, shutting_down(&self.node.id)).await;
                    return;
                }

                _ = tx.closed() => return,
            }
        }
    }

    /// The next batch, and the ids of the records it discloses.
    fn next_batch(&self, durable: u64) -> Result<(pb::PullBatch, Vec<String>), Status> {
        let stored = self
            .node
            .store
            .records()
            .of_origin(&self.node.id, self.after, durable, self.max_batch)
            .map_err(IntoStatus::into_status)?;
        let mut high_water = self.after;
        let mut bytes = 0;
        let mut records = Vec::new();
        let mut disclosed = Vec::new();
        let mut exhausted = stored.len() < self.max_batch;
        let now = self.node.clock.now_ms();
        for r in stored {
            high_water = r.seq;
            // A purged record has nothing left to disclose.
            let Some(raw) = r.content.envelope() else {
                continue;
            };
            let undecodable = |error: String| {
                tracing::error!(seq = r.seq, %error, "own record does not decode");
                Status::internal("this node's store holds an undecodable record")
            };
            let envelope = pb::SignedRecord::decode(raw).map_err(|e| undecodable(e.to_string()))?;
            let facts = Disclosure::of(&envelope.body).map_err(undecodable)?;
            // Expired content is not disclosed, even before the purge runs.
            if facts.expires_at_ms.is_some_and(|t| t <= now) {
                continue;
            }
            // NOTE: the distribution check is the disclosure rule. A record
            // the caller is not entitled to is not sent, not even as a
            // placeholder; high_water lets the caller's cursor pass it.
            if facts.distribution.includes(&self.caller) {
                bytes += raw.len();
                records.push(envelope);
                disclosed.push(facts.record_id);
            }
            if bytes >= MAX_BATCH_BYTES {
                exhausted = false;
                break;
            }
        }
        if exhausted {
            // Nothing else is durable up to `durable`: let the cursor reach it.
            high_water = durable;
        }
        Ok((
            pb::PullBatch {
                records,
                high_water,
                head: durable,
            },
            disclosed,
        ))
    }
}

/// What the disclosure rule reads from a record of this node's own log.
#[derive(Debug, PartialEq, Eq)]
struct Disclosure {
    record_id: String,
    distribution: Distribution,
    /// As [`crate::records::lifecycle::expires_at`] says for the decoded body.
    expires_at_ms: Option<i64>,
}

impl Disclosure {
    /// Reads the facts from an encoded body without validating its content
    /// again: this node validated it when it was published, and every
    /// receiver validates it in full before storing it. A full
    /// [`wire::decode_body`] per record served was most of the origin's
    /// CPU in a catch-up.
    fn of(body: &[u8]) -> Result<Self, String> {
        use pb::record_body::Kind;
        use pb::update::Content;
        let body = pb::RecordBody::decode(body).map_err(|e| e.to_string())?;
        let distribution = body
            .distribution
            .ok_or("distribution is missing")
            .and_then(|d| {
                wire::distribution_from_pb(d, "distribution").map_err(|_| "distribution is invalid")
            })?;
        // NOTE: no wildcard arm, so that a new kind with content cannot
        // be served without its expiry.
        let expires_at_ms = match body.kind.ok_or("kind is missing")? {
            Kind::Alert(a) => Some(a.expires_at_ms),
            Kind::CaseReference(c) => Some(c.expires_at_ms),
            Kind::StatisticalReport(r) => Some(r.expires_at_ms),
            Kind::Update(u) => match u.content.ok_or("update has no content")? {
                Content::Alert(a) => Some(a.expires_at_ms),
                Content::CaseReference(c) => Some(c.expires_at_ms),
                Content::StatisticalReport(r) => Some(r.expires_at_ms),
            },
            Kind::Withdrawal(_)
            | Kind::MlaRequest(_)
            | Kind::MlaAck(_)
            | Kind::MlaResponse(_)
            | Kind::RosterProposal(_)
            | Kind::RosterApproval(_)
            | Kind::MatchFilter(_) => None,
        };
        Ok(Self {
            record_id: body.record_id,
            distribution,
            expires_at_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::lifecycle;
    use crate::records::model::fixtures::{body, sample_alert};
    use crate::records::model::{Content, RecordKind, Update, Withdrawal};

    /// The facts agree with a full decode for each kind of record.
    #[test]
    fn disclosure_facts_agree_with_the_decoded_body() {
        let mut named = body(RecordKind::Alert(sample_alert()));
        named.distribution = Distribution::Named(
            [NodeId::parse("hn").unwrap(), NodeId::parse("sv").unwrap()].into(),
        );
        let kinds = [
            body(RecordKind::Alert(sample_alert())),
            named,
            body(RecordKind::Update(Update {
                target: "gt-0000000000000001".into(),
                version: 2,
                content: Content::Alert(sample_alert()),
            })),
            body(RecordKind::Withdrawal(Withdrawal {
                target: "gt-0000000000000001".into(),
                reason: "resolved".into(),
            })),
        ];
        for b in kinds {
            let bytes = wire::encode_body(&b);
            let decoded = wire::decode_body(&bytes).unwrap();
            assert_eq!(
                Disclosure::of(&bytes).unwrap(),
                Disclosure {
                    record_id: decoded.record_id.clone(),
                    distribution: decoded.distribution.clone(),
                    expires_at_ms: lifecycle::expires_at(&decoded),
                }
            );
        }
        assert!(Disclosure::of(&[0x0a, 0x10]).is_err());
    }
}
