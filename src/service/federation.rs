//! The peer-facing `Federation` service.
//!
//! Each call is checked here: who the caller is (a roster member, by its
//! certificate), what it may ask, and the limits of its request. `Pull`'s
//! producer lives in `pull`; hit/no-hit questions, checkpoints to witness
//! and digests are answered here.

use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::budget::PullBudget;
use super::pull::{Producer, hand_back};
use super::{IntoStatus, identity};
use crate::audit::{Action, Entry};
use crate::components::Components;
use crate::limits;
use crate::records::model::NodeId;
use crate::trust::roster::Role;
use crate::trust::tls::Identity;
use crate::wire;
use crate::wire::pb::v1 as pb;
use crate::wire::pb::v1::federation_server::Federation;
use crate::wire::{SignedCheckpoint, SignedRecovery, Witness};

/// Records per batch when the caller does not say.
const DEFAULT_BATCH: u32 = 256;
/// Most records per batch whatever the caller asks.
const MAX_BATCH: u32 = 1024;
/// Batches buffered per stream before the producer waits for the peer.
const STREAM_BUFFER: usize = 4;

pub struct FederationService {
    pub(super) node: Components,
    stop: watch::Receiver<bool>,
    /// What each peer's `Pull` streams may hold.
    pulls: Arc<PullBudget>,
    /// Checkpoints and recovery statements per peer and minute.
    witnesses: limits::Buckets<NodeId>,
    /// Digests per peer and minute.
    digests: limits::Buckets<NodeId>,
    /// Roster chain requests per peer and minute.
    chains: limits::Buckets<NodeId>,
}

impl FederationService {
    pub fn new(node: Components, stop: watch::Receiver<bool>) -> Self {
        Self {
            node,
            stop,
            pulls: Arc::default(),
            witnesses: limits::Buckets::default(),
            digests: limits::Buckets::default(),
            chains: limits::Buckets::default(),
        }
    }

    /// Takes one of `peer`'s witness tokens, or refuses, on record within
    /// the peer's refusal budget.
    async fn admit_witness(&self, peer: &NodeId, call: &'static str) -> Result<(), Status> {
        let Err(wait) = self.witnesses.take(peer, limits::WITNESS_PER_MINUTE) else {
            return Ok(());
        };
        let status = Status::resource_exhausted(format!(
            "rate limit: at most {} checkpoints per minute from {peer}; retry in {} s",
            limits::WITNESS_PER_MINUTE,
            wait.as_secs() + 1
        ));
        let entry = Entry::new(Action::CheckpointRejected, peer.as_str())
            .counterpart(peer)
            .result(status.message());
        self.node
            .audit
            .record_peer_refusal(peer, call, entry)
            .await
            .map_err(IntoStatus::into_status)?;
        Err(status)
    }
}

type PullStream = Pin<Box<dyn Stream<Item = Result<pb::PullBatch, Status>> + Send>>;

/// `s` cut to at most `max` bytes (at a character boundary), marked when
/// cut: what a peer sent, bounded before it goes on record.
pub(super) fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

/// The stream a producer feeds: each batch gives its place in the byte
/// budget back as the transport takes it.
fn stream_of(rx: mpsc::Receiver<super::pull::Item>) -> PullStream {
    Box::pin(tokio_stream::StreamExt::map(
        ReceiverStream::new(rx),
        |(batch, _room)| batch,
    ))
}

/// Sets its flag when dropped: a handler whose caller went away is
/// dropped by tonic, and the blocking work it started sees the flag.
struct CancelOnDrop(Arc<std::sync::atomic::AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[tonic::async_trait]
impl Federation for FederationService {
    type PullStream = PullStream;

    #[tracing::instrument(skip_all, fields(node = %self.node.id))]
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
        // What goes on record is bounded before anything is: a peer's
        // strings are cut to their limits in the entry (and refused below).
        let actor = format!(
            "{}@{caller}",
            clip(&req.requested_by, limits::MAX_PEER_REQUESTED_BY)
        );
        let justification = clip(&req.justification, limits::MAX_PEER_JUSTIFICATION);
        let query_id = clip(&req.query_id, limits::MAX_PEER_QUERY_ID);
        let live = self.node.trust.policy();
        let policy = &live.query;
        let refuse = async |status: Status, tokens: &[crate::records::selector::Token]| {
            let entry = Entry::new(Action::QueryRefused, &actor)
                .counterpart(&caller)
                .justification(&justification)
                .id(&query_id)
                .tokens(tokens)
                .result(status.message());
            self.node
                .audit
                .record_peer_refusal(&caller, "Match", entry)
                .await
                .map_err(IntoStatus::into_status)?;
            self.node.metrics.query_answered(&caller, "refused");
            Err(status)
        };
        if self
            .node
            .trust
            .roster()
            .member(&caller)
            .is_some_and(|m| m.role == Role::Observer)
        {
            return refuse(
                Status::permission_denied(format!(
                    "{caller} is an observer: observers receive records and do not query"
                )),
                &[],
            )
            .await;
        }
        // Shared-key tokens mean nothing to a node that no longer has the
        // key: it says so instead of answering "no hit" to everything.
        if self.node.cases.matching.is_none() {
            return refuse(
                Status::failed_precondition(
                    "this node has moved off the shared matching key: ask it obliviously (Evaluate)",
                ),
                &[],
            )
            .await;
        }
        // The tokens asked about, for the record (a bounded number, cheap
        // to read); their rules are applied below.
        let mut errors = crate::records::model::Errors::default();
        let tokens = if req.selectors.len() <= policy.max_selectors {
            wire::selectors_from_pb(req.selectors.clone(), "selectors", &mut errors)
        } else {
            Vec::new()
        };
        // Every call spends the caller's budget, a refused one too: garbage
        // in a loop is bounded like queries are.
        if let Err(wait) = self.node.cases.admit_query(&caller) {
            return refuse(
                Status::resource_exhausted(format!(
                    "rate limit: at most {} queries per minute from {caller}; retry in {} s",
                    policy.max_per_minute,
                    wait.as_secs() + 1
                )),
                &tokens,
            )
            .await;
        }
        for (field, value, max) in [
            (
                "justification",
                &req.justification,
                limits::MAX_PEER_JUSTIFICATION,
            ),
            (
                "requested_by",
                &req.requested_by,
                limits::MAX_PEER_REQUESTED_BY,
            ),
            ("query_id", &req.query_id, limits::MAX_PEER_QUERY_ID),
        ] {
            if value.len() > max {
                return refuse(
                    Status::invalid_argument(format!(
                        "{field}: at most {max} bytes (got {})",
                        value.len()
                    )),
                    &[],
                )
                .await;
            }
        }
        if req.justification.trim().is_empty() {
            return refuse(
                Status::invalid_argument("justification: is required: say why you ask"),
                &[],
            )
            .await;
        }
        if req.selectors.is_empty() || req.selectors.len() > policy.max_selectors {
            return refuse(
                Status::invalid_argument(format!(
                    "selectors: between 1 and {} per query (got {})",
                    policy.max_selectors,
                    req.selectors.len()
                )),
                &[],
            )
            .await;
        }
        if let Err(e) = errors.finish() {
            return refuse(Status::invalid_argument(e.to_string()), &tokens).await;
        }
        let (hits, case_numbers) = self
            .node
            .cases
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
        self.node
            .audit
            .record(vec![entry])
            .await
            .map_err(IntoStatus::into_status)?;
        self.node
            .metrics
            .query_answered(&caller, if hit { "hit" } else { "no_hit" });
        let contact = if hit {
            live.agency.contact.as_ref().map(wire::contact_to_pb)
        } else {
            None
        };
        let case_refs = if hit && policy.reveal == crate::config::Reveal::CaseRefs {
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

    #[tracing::instrument(skip_all, fields(node = %self.node.id))]
    async fn evaluate(
        &self,
        request: Request<pb::EvaluateRequest>,
    ) -> Result<Response<pb::EvaluateResponse>, Status> {
        self.evaluate_impl(request).await
    }

    #[tracing::instrument(skip_all, fields(node = %self.node.id))]
    async fn confirm(
        &self,
        request: Request<pb::ConfirmRequest>,
    ) -> Result<Response<pb::MatchResponse>, Status> {
        self.confirm_impl(request).await
    }

    #[tracing::instrument(skip_all, fields(node = %self.node.id))]
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
        self.admit_witness(&caller, "Witness").await?;
        let witness = self
            .node
            .audit
            .witness(&caller, SignedCheckpoint::from_pb(request.into_inner()))
            .await
            .map_err(IntoStatus::into_status)?;
        Ok(Response::new(pb::WitnessReply {
            witness: Some(witness.to_pb()),
        }))
    }

    #[tracing::instrument(skip_all, fields(node = %self.node.id))]
    async fn roster_chain(
        &self,
        request: Request<pb::RosterChainRequest>,
    ) -> Result<Response<pb::RosterChainResponse>, Status> {
        let caller = match identity(&request)? {
            Identity::Peer(id) => id,
            Identity::Client(_) => {
                return Err(Status::permission_denied(
                    "RosterChain is for federation peers",
                ));
            }
        };
        if let Err(wait) = self.chains.take(&caller, limits::ROSTER_CHAIN_PER_MINUTE) {
            return Err(Status::resource_exhausted(format!(
                "rate limit: at most {} roster chain requests per minute from {caller}; retry in {} s",
                limits::ROSTER_CHAIN_PER_MINUTE,
                wait.as_secs() + 1
            )));
        }
        let after = request.into_inner().after;
        let chain = self.node.trust.chain();
        let head = chain.last().map_or(0, |s| s.version.number());
        // At most so many versions and, past the first, so many bytes.
        let mut bytes = 0;
        let versions = chain
            .iter()
            .filter(|s| s.version.number() > after)
            .take(limits::ROSTER_CHAIN_VERSIONS)
            .map(|s| pb::SignedRoster {
                version: s.version.bytes.to_vec(),
                approvals: s.approvals.iter().map(|a| a.to_pb()).collect(),
            })
            .take_while(|v| {
                let first = bytes == 0;
                bytes += v.version.len();
                first || bytes <= limits::ROSTER_CHAIN_BYTES
            })
            .collect();
        Ok(Response::new(pb::RosterChainResponse { versions, head }))
    }

    #[tracing::instrument(skip_all, fields(node = %self.node.id))]
    async fn witness_recovery(
        &self,
        request: Request<pb::SignedRecovery>,
    ) -> Result<Response<pb::RecoveryWitness>, Status> {
        let caller = match identity(&request)? {
            Identity::Peer(id) => id,
            Identity::Client(_) => {
                return Err(Status::permission_denied(
                    "WitnessRecovery is for federation peers",
                ));
            }
        };
        self.admit_witness(&caller, "WitnessRecovery").await?;
        let witness = self
            .node
            .audit
            .witness_recovery(&caller, SignedRecovery::from_pb(request.into_inner()))
            .await
            .map_err(IntoStatus::into_status)?;
        Ok(Response::new(witness.to_pb()))
    }

    #[tracing::instrument(skip_all, fields(node = %self.node.id))]
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
        if self.node.trust.roster().member(&node).is_none() {
            return Err(Status::invalid_argument(format!(
                "node: {node} is not a member"
            )));
        }
        let (witnesses, more) = self
            .node
            .audit
            .witnessed(&node, req.after_size, req.up_to_size, req.limit as usize)
            .map_err(IntoStatus::into_status)?;
        Ok(Response::new(pb::WitnessedResponse {
            more,
            witnesses: witnesses.iter().map(Witness::to_pb).collect(),
            witness: self.node.id.to_string(),
        }))
    }

    #[tracing::instrument(skip_all, fields(node = %self.node.id))]
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
        let roster = self.node.trust.roster();
        let members = roster.members().count();
        if req.origins.len() > members {
            return Err(Status::invalid_argument(format!(
                "origins: at most one per member ({members}), got {}",
                req.origins.len()
            )));
        }
        let mut bounds: Vec<(NodeId, u64)> = Vec::with_capacity(req.origins.len());
        for (i, o) in req.origins.into_iter().enumerate() {
            let origin = NodeId::parse(&o.origin)
                .map_err(|rule| Status::invalid_argument(format!("origins[{i}].origin: {rule}")))?;
            if roster.member(&origin).is_none() {
                return Err(Status::invalid_argument(format!(
                    "origins[{i}].origin: {origin} is not a member"
                )));
            }
            if bounds.iter().any(|(o, _)| *o == origin) {
                return Err(Status::invalid_argument(format!(
                    "origins[{i}].origin: {origin} is asked twice"
                )));
            }
            bounds.push((origin, o.up_to_seq));
        }
        if let Err(wait) = self.digests.take(&caller, limits::DIGEST_PER_MINUTE) {
            return Err(Status::resource_exhausted(format!(
                "rate limit: at most {} digests per minute from {caller}; retry in {} s",
                limits::DIGEST_PER_MINUTE,
                wait.as_secs() + 1
            )));
        }
        let store = self.node.store.clone();
        // Reading a whole log is blocking work: keep it off the async
        // workers, and stop between origins once the caller is gone.
        let gone = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let _cancel = CancelOnDrop(gone.clone());
        let digests = tokio::task::spawn_blocking(move || {
            let mut out = Vec::with_capacity(bounds.len());
            for (origin, up_to) in &bounds {
                if gone.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                out.push(crate::exchange::convergence::digest(
                    &store, origin, *up_to, &caller,
                )?);
            }
            Ok::<_, crate::store::StoreError>(out)
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

    #[tracing::instrument(skip_all, fields(node = %self.node.id, peer))]
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
        if req.origin == caller.as_str() && caller != self.node.id {
            // The caller's own records, handed back (a lost own log).
            if req.follow {
                return Err(Status::invalid_argument(
                    "follow: records are handed back to their origin once, not followed",
                ));
            }
            let Some(slot) = self.pulls.hand_back(&caller) else {
                return Err(Status::resource_exhausted(format!(
                    "a hand-back to {caller} is already running: at most {} at a time",
                    limits::HAND_BACK_STREAMS_PER_PEER
                )));
            };
            let (tx, rx) = mpsc::channel(STREAM_BUFFER);
            tokio::spawn(hand_back(
                self.node.clone(),
                caller,
                req.after_seq,
                max_batch,
                self.pulls.clone(),
                slot,
                tx,
            ));
            return Ok(Response::new(stream_of(rx)));
        }
        if !req.origin.is_empty() && req.origin != self.node.id.as_str() {
            return Err(Status::invalid_argument(format!(
                "origin: this node serves only its own log ({}), or the caller's own records; pull {:?} from that member",
                self.node.id, req.origin
            )));
        }
        let own_seq = self.node.store.watermark().own_seq;
        if req.after_seq > own_seq && self.pulls.first_warning(&caller) {
            // The peer says it saw more of our log than we hold: our store
            // may have been lost or restored from an old backup, or the
            // peer is wrong. Its word alone proves nothing (the publish
            // gate acts only on a record signed here), so this is the
            // peer's claim, logged once per peer.
            tracing::warn!(
                peer = %caller,
                peer_cursor = req.after_seq,
                own_seq,
                "peer claims to have seen this node's own log beyond what the store holds; \
                 if it holds a record of ours above {own_seq}, publishing is refused until \
                 `enlace node recover` (runbook section 6)"
            );
        }
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let producer = Producer {
            slot: self.pulls.stream(&caller),
            node: self.node.clone(),
            caller,
            after: req.after_seq,
            follow: req.follow,
            max_batch,
            stop: self.stop.clone(),
            budget: self.pulls.clone(),
        };
        tokio::spawn(producer.run(tx));
        Ok(Response::new(stream_of(rx)))
    }
}
