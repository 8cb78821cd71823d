//! The peer-facing `Federation` service.
//!
//! `Pull` streams this node's own log to a peer, filtered by each record's
//! distribution: a record is never sent to a member it is not addressed to.
//! Only durable records are served (see [`crate::store`]). A bounded channel
//! between the producer and the stream gives backpressure: a slow peer
//! holds at most a few batches in memory.

use std::pin::Pin;
use std::sync::Arc;

use prost::Message;
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{IntoStatus, identity};
use crate::audit::{Action, Entry};
use crate::clock::now_ms;
use crate::exchange::peers::HEARTBEAT;
use crate::records::model::{Distribution, NodeId};
use crate::state::NodeState;
use crate::trust::tls::Identity;
use crate::wire;
use crate::wire::pb::v1 as pb;
use crate::wire::pb::v1::federation_server::Federation;

/// Records per batch when the caller does not say.
const DEFAULT_BATCH: u32 = 256;
/// Most records per batch whatever the caller asks.
const MAX_BATCH: u32 = 1024;
/// A batch is closed once its records exceed this many bytes.
const MAX_BATCH_BYTES: usize = 2 * 1024 * 1024;
/// Batches buffered per stream before the producer waits for the peer.
const STREAM_BUFFER: usize = 4;

pub struct FederationService {
    state: Arc<NodeState>,
    stop: watch::Receiver<bool>,
}

impl FederationService {
    pub fn new(state: Arc<NodeState>, stop: watch::Receiver<bool>) -> Self {
        Self { state, stop }
    }
}

type PullStream = Pin<Box<dyn Stream<Item = Result<pb::PullBatch, Status>> + Send>>;

/// Most origins in one digest request.
const MAX_DIGEST_ORIGINS: usize = 256;

#[tonic::async_trait]
impl Federation for FederationService {
    type PullStream = PullStream;

    #[tracing::instrument(skip_all, fields(node = %self.state.id))]
    async fn r#match(
        &self,
        request: Request<pb::MatchRequest>,
    ) -> Result<Response<pb::MatchResponse>, Status> {
        let caller = match identity(&request)? {
            Identity::Peer(id) => id,
            Identity::Client(_) => {
                return Err(Status::permission_denied("Match is for federation peers"));
            }
        };
        let req = request.into_inner();
        let actor = format!("{}@{caller}", req.requested_by);
        let limits = &self.state.query;
        let refuse = async |status: Status, tokens: &[crate::records::selector::Token]| {
            let entry = Entry::new(Action::QueryRefused, &actor)
                .counterpart(&caller)
                .justification(&req.justification)
                .id(&req.query_id)
                .tokens(tokens)
                .result(status.message());
            self.state
                .audit(vec![entry])
                .await
                .map_err(IntoStatus::into_status)?;
            self.state.metrics.query_answered(&caller, "refused");
            Err(status)
        };
        if req.justification.trim().is_empty() {
            return refuse(
                Status::invalid_argument("justification: is required: say why you ask"),
                &[],
            )
            .await;
        }
        if req.selectors.is_empty() || req.selectors.len() > limits.max_selectors {
            return refuse(
                Status::invalid_argument(format!(
                    "selectors: between 1 and {} per query (got {})",
                    limits.max_selectors,
                    req.selectors.len()
                )),
                &[],
            )
            .await;
        }
        let mut errors = crate::records::model::Errors::default();
        let tokens = wire::selectors_from_pb(req.selectors.clone(), "selectors", &mut errors);
        if let Err(e) = errors.finish() {
            return refuse(Status::invalid_argument(e.to_string()), &tokens).await;
        }
        if let Err(wait) = self.state.buckets.take(&caller, limits.max_per_minute) {
            return refuse(
                Status::resource_exhausted(format!(
                    "rate limit: at most {} queries per minute from {caller}; retry in {} s",
                    limits.max_per_minute,
                    wait.as_secs() + 1
                )),
                &tokens,
            )
            .await;
        }
        let (hits, case_numbers) = self
            .state
            .match_tokens(&tokens)
            .map_err(IntoStatus::into_status)?;
        let hit = hits.iter().any(|h| *h);
        // The answer leaves only once its audit entry is durable.
        let entry = Entry::new(Action::QueryAnswered, &actor)
            .counterpart(&caller)
            .justification(&req.justification)
            .id(&req.query_id)
            .tokens(&tokens)
            .result(if hit { "hit" } else { "no_hit" });
        self.state
            .audit(vec![entry])
            .await
            .map_err(IntoStatus::into_status)?;
        self.state
            .metrics
            .query_answered(&caller, if hit { "hit" } else { "no_hit" });
        let contact = if hit {
            self.state.agency.contact.as_ref().map(wire::contact_to_pb)
        } else {
            None
        };
        let case_refs = if hit && self.state.query.reveal == crate::config::Reveal::CaseRefs {
            case_numbers
        } else {
            Vec::new()
        };
        Ok(Response::new(pb::MatchResponse {
            hits,
            case_refs,
            contact,
        }))
    }

    #[tracing::instrument(skip_all, fields(node = %self.state.id))]
    async fn witness(
        &self,
        request: Request<pb::SignedCheckpoint>,
    ) -> Result<Response<pb::WitnessReply>, Status> {
        let caller = match identity(&request)? {
            Identity::Peer(id) => id,
            Identity::Client(_) => {
                return Err(Status::permission_denied("Witness is for federation peers"));
            }
        };
        let witness = self
            .state
            .witness(&caller, request.into_inner())
            .await
            .map_err(IntoStatus::into_status)?;
        Ok(Response::new(pb::WitnessReply {
            witness: Some(witness),
        }))
    }

    #[tracing::instrument(skip_all, fields(node = %self.state.id))]
    async fn witnessed(
        &self,
        request: Request<pb::WitnessedRequest>,
    ) -> Result<Response<pb::WitnessedResponse>, Status> {
        if let Identity::Client(_) = identity(&request)? {
            return Err(Status::permission_denied(
                "Witnessed is for federation peers",
            ));
        }
        let req = request.into_inner();
        let node = NodeId::parse(&req.node)
            .map_err(|rule| Status::invalid_argument(format!("node: {rule}")))?;
        if self.state.roster().member(&node).is_none() {
            return Err(Status::invalid_argument(format!(
                "node: {node} is not a member"
            )));
        }
        let witnesses = self
            .state
            .witnessed(&node, req.after_size)
            .map_err(IntoStatus::into_status)?;
        Ok(Response::new(pb::WitnessedResponse { witnesses }))
    }

    #[tracing::instrument(skip_all, fields(node = %self.state.id))]
    async fn digest(
        &self,
        request: Request<pb::DigestRequest>,
    ) -> Result<Response<pb::DigestResponse>, Status> {
        let caller = match identity(&request)? {
            Identity::Peer(id) => id,
            Identity::Client(_) => {
                return Err(Status::permission_denied("Digest is for federation peers"));
            }
        };
        let req = request.into_inner();
        if req.origins.len() > MAX_DIGEST_ORIGINS {
            return Err(Status::invalid_argument(format!(
                "origins: at most {MAX_DIGEST_ORIGINS}"
            )));
        }
        let mut bounds = Vec::with_capacity(req.origins.len());
        for (i, o) in req.origins.into_iter().enumerate() {
            let origin = NodeId::parse(&o.origin)
                .map_err(|rule| Status::invalid_argument(format!("origins[{i}].origin: {rule}")))?;
            if self.state.roster().member(&origin).is_none() {
                return Err(Status::invalid_argument(format!(
                    "origins[{i}].origin: {origin} is not a member"
                )));
            }
            bounds.push((origin, o.up_to_seq));
        }
        let state = self.state.clone();
        // Reading a whole log is blocking work: keep it off the async workers.
        let digests = tokio::task::spawn_blocking(move || {
            bounds
                .iter()
                .map(|(origin, up_to)| state.digest(origin, *up_to, &caller))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(|e| Status::internal(format!("digest task failed: {e}")))?
        .map_err(IntoStatus::into_status)?;
        Ok(Response::new(pb::DigestResponse {
            digests: digests
                .into_iter()
                .map(|d| pb::OriginDigest {
                    origin: d.origin.to_string(),
                    up_to_seq: d.up_to_seq,
                    count: d.count,
                    hash: d.hash,
                })
                .collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(node = %self.state.id, peer))]
    async fn pull(
        &self,
        request: Request<pb::PullRequest>,
    ) -> Result<Response<PullStream>, Status> {
        let caller = match identity(&request)? {
            Identity::Peer(id) => id,
            Identity::Client(_) => {
                return Err(Status::permission_denied("Pull is for federation peers"));
            }
        };
        tracing::Span::current().record("peer", tracing::field::display(&caller));
        let req = request.into_inner();
        let max_batch = match req.max_batch {
            0 => DEFAULT_BATCH,
            n => n.min(MAX_BATCH),
        } as usize;
        if req.origin == caller.as_str() && caller != self.state.id {
            // The caller's own records, handed back (a lost own log).
            if req.follow {
                return Err(Status::invalid_argument(
                    "follow: records are handed back to their origin once, not followed",
                ));
            }
            let (tx, rx) = mpsc::channel(STREAM_BUFFER);
            tokio::spawn(hand_back(
                self.state.clone(),
                caller,
                req.after_seq,
                max_batch,
                tx,
            ));
            return Ok(Response::new(Box::pin(ReceiverStream::new(rx))));
        }
        if !req.origin.is_empty() && req.origin != self.state.id.as_str() {
            return Err(Status::invalid_argument(format!(
                "origin: this node serves only its own log ({}), or the caller's own records; pull {:?} from that member",
                self.state.id, req.origin
            )));
        }
        let own_seq = self.state.store.watermark().own_seq;
        if req.after_seq > own_seq {
            // The peer holds more of our log than we do: our store was lost
            // or restored from an old backup. Do not reuse those numbers
            // silently; say so loudly.
            tracing::error!(
                peer_cursor = req.after_seq,
                own_seq,
                "peer is ahead of this node's own log (store lost or restored from an old backup): \
                 publishing now would reuse numbers the peer has seen; stop the node and run \
                 `enlace node recover` (runbook section 6)"
            );
        }
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let producer = Producer {
            state: self.state.clone(),
            caller,
            after: req.after_seq,
            follow: req.follow,
            max_batch,
            stop: self.stop.clone(),
        };
        tokio::spawn(producer.run(tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Streams back to `origin` its own records held here, after `after`, up to
/// this node's cursor for it, which each batch gives as `head`: the origin
/// learns which of its numbers were seen, held here or not. Its records
/// are its own, so no distribution rule applies; the handing back is
/// audited like any disclosure. Purged records have nothing to return.
async fn hand_back(
    state: Arc<NodeState>,
    origin: NodeId,
    mut after: u64,
    max_batch: usize,
    tx: mpsc::Sender<Result<pb::PullBatch, Status>>,
) {
    let batches = async {
        let head = state
            .store
            .records()
            .cursor(&origin)
            .map_err(IntoStatus::into_status)?;
        loop {
            let stored = state
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
                let entry = Entry::new(Action::RecordsDisclosed, state.id.as_str())
                    .counterpart(&origin)
                    .ids(ids)
                    .result(format!(
                        "{} of its own records handed back to their origin",
                        records.len()
                    ));
                state
                    .audit(vec![entry])
                    .await
                    .map_err(IntoStatus::into_status)?;
            }
            let batch = pb::PullBatch {
                records,
                high_water: after,
                head,
            };
            if tx.send(Ok(batch)).await.is_err() {
                return Ok(());
            }
            if done {
                return Ok(());
            }
        }
    };
    if let Err(status) = batches.await {
        let _ = tx.send(Err(status)).await;
    }
}

struct Producer {
    state: Arc<NodeState>,
    caller: NodeId,
    after: u64,
    follow: bool,
    max_batch: usize,
    stop: watch::Receiver<bool>,
}

impl Producer {
    async fn run(mut self, tx: mpsc::Sender<Result<pb::PullBatch, Status>>) {
        let mut changes = self.state.store.subscribe();
        loop {
            let durable = changes.borrow_and_update().own_seq;
            while self.after < durable {
                let (batch, disclosed) = match self.next_batch(durable) {
                    Ok(b) => b,
                    Err(status) => {
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                };
                self.after = batch.high_water;
                if !batch.records.is_empty() {
                    // The disclosure is on record before the batch leaves.
                    let entry = Entry::new(Action::RecordsDisclosed, self.state.id.as_str())
                        .counterpart(&self.caller)
                        .ids(disclosed)
                        .result(match batch.records.len() {
                            1 => "1 record".to_owned(),
                            n => format!("{n} records"),
                        });
                    if let Err(e) = self.state.audit(vec![entry]).await {
                        let _ = tx.send(Err(e.into_status())).await;
                        return;
                    }
                }
                let sent = batch.records.len();
                if tx.send(Ok(batch)).await.is_err() {
                    return; // the peer went away
                }
                self.state.metrics.records_sent(&self.caller, sent);
            }
            if !self.follow {
                return;
            }
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(HEARTBEAT) => {
                    // Nothing new: tell the peer we are alive, so that it
                    // can tell a quiet origin from a stalled connection.
                    let beat = pb::PullBatch { records: Vec::new(), high_water: self.after, head: durable };
                    if tx.send(Ok(beat)).await.is_err() {
                        return;
                    }
                }
                _ = crate::shutdown::stopped(&mut self.stop) => {
                    let _ = tx.send(Err(Status::unavailable(format!("node {} is shutting down", self.state.id)))).await;
                    return;
                }
                _ = tx.closed() => return,
            }
        }
    }

    /// The next batch, and the ids of the records it discloses.
    fn next_batch(&self, durable: u64) -> Result<(pb::PullBatch, Vec<String>), Status> {
        let stored = self
            .state
            .store
            .records()
            .of_origin(&self.state.id, self.after, durable, self.max_batch)
            .map_err(IntoStatus::into_status)?;
        let mut high_water = self.after;
        let mut bytes = 0;
        let mut records = Vec::new();
        let mut disclosed = Vec::new();
        let mut exhausted = stored.len() < self.max_batch;
        let now = now_ms();
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
            Kind::Update(u) => match u.content.ok_or("update has no content")? {
                Content::Alert(a) => Some(a.expires_at_ms),
                Content::CaseReference(c) => Some(c.expires_at_ms),
            },
            Kind::Withdrawal(_) | Kind::MlaRequest(_) | Kind::MlaAck(_) | Kind::MlaResponse(_) => {
                None
            }
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
