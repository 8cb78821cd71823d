//! The peer-facing `Federation` service.
//!
//! Each call is checked here: who the caller is (a roster member, by its
//! certificate), what it may ask, and the limits of its request. `Pull`'s
//! producer lives in `pull`; hit/no-hit questions, checkpoints to witness
//! and digests are answered here.

use std::pin::Pin;

use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::pull::{Producer, hand_back};
use super::{IntoStatus, identity};
use crate::audit::{Action, Entry};
use crate::components::Components;
use crate::records::model::NodeId;
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
    node: Components,
    stop: watch::Receiver<bool>,
}

impl FederationService {
    pub fn new(node: Components, stop: watch::Receiver<bool>) -> Self {
        Self { node, stop }
    }
}

type PullStream = Pin<Box<dyn Stream<Item = Result<pb::PullBatch, Status>> + Send>>;

/// Most origins in one digest request.
const MAX_DIGEST_ORIGINS: usize = 256;

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
        let actor = format!("{}@{caller}", req.requested_by);
        let limits = &self.node.cases.policy;
        let refuse = async |status: Status, tokens: &[crate::records::selector::Token]| {
            let entry = Entry::new(Action::QueryRefused, &actor)
                .counterpart(&caller)
                .justification(&req.justification)
                .id(&req.query_id)
                .tokens(tokens)
                .result(status.message());
            self.node
                .audit
                .record(vec![entry])
                .await
                .map_err(IntoStatus::into_status)?;
            self.node.metrics.query_answered(&caller, "refused");
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
        if let Err(wait) = self.node.cases.admit_query(&caller) {
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
            self.node.cases.contact.as_ref().map(wire::contact_to_pb)
        } else {
            None
        };
        let case_refs = if hit && self.node.cases.policy.reveal == crate::config::Reveal::CaseRefs {
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
        let witnesses = self
            .node
            .audit
            .witnessed(&node, req.after_size)
            .map_err(IntoStatus::into_status)?;
        Ok(Response::new(pb::WitnessedResponse {
            witnesses: witnesses.iter().map(Witness::to_pb).collect(),
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
        if req.origins.len() > MAX_DIGEST_ORIGINS {
            return Err(Status::invalid_argument(format!(
                "origins: at most {MAX_DIGEST_ORIGINS}"
            )));
        }
        let mut bounds = Vec::with_capacity(req.origins.len());
        for (i, o) in req.origins.into_iter().enumerate() {
            let origin = NodeId::parse(&o.origin)
                .map_err(|rule| Status::invalid_argument(format!("origins[{i}].origin: {rule}")))?;
            if self.node.trust.roster().member(&origin).is_none() {
                return Err(Status::invalid_argument(format!(
                    "origins[{i}].origin: {origin} is not a member"
                )));
            }
            bounds.push((origin, o.up_to_seq));
        }
        let store = self.node.store.clone();
        // Reading a whole log is blocking work: keep it off the async workers.
        let digests = tokio::task::spawn_blocking(move || {
            bounds
                .iter()
                .map(|(origin, up_to)| {
                    crate::exchange::convergence::digest(&store, origin, *up_to, &caller)
                })
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
            let (tx, rx) = mpsc::channel(STREAM_BUFFER);
            tokio::spawn(hand_back(
                self.node.clone(),
                caller,
                req.after_seq,
                max_batch,
                tx,
            ));
            return Ok(Response::new(Box::pin(ReceiverStream::new(rx))));
        }
        if !req.origin.is_empty() && req.origin != self.node.id.as_str() {
            return Err(Status::invalid_argument(format!(
                "origin: this node serves only its own log ({}), or the caller's own records; pull {:?} from that member",
                self.node.id, req.origin
            )));
        }
        let own_seq = self.node.store.watermark().own_seq;
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
            node: self.node.clone(),
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
