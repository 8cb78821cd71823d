//! A stand-in peer: a real tonic `Federation` server on a sandbox member's
//! peer listener, with that member's real TLS identity, that answers the
//! way a test sets it up rather than as a node would. It plays a member
//! that stalls, one that sends a doctored or implausible batch, or one
//! that keeps the queries it is sent; the node under test cannot tell it
//! from the member it impersonates until it looks at what comes back.

#![allow(dead_code)]

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use enlace::records::model::{Distribution, Errors, NodeId, RecordBody, RecordKind};
use enlace::testing::Sandbox;
use enlace::trust::load::LoadedSettings;
use enlace::trust::tls::{self, Identity};
use enlace::wire::pb::v1 as pb;
use enlace::wire::pb::v1::federation_server::{Federation, FederationServer};
use enlace::wire::{self, Envelope};
use prost::Message;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

/// How the stand-in answers. The default answers every Pull with a
/// stream that stays open and says nothing, and refuses every other call
/// as unimplemented.
#[derive(Default)]
pub struct StandIn {
    /// Sent as the first message of every Pull stream, which then stays
    /// open and silent until the puller goes away.
    pub batch: Option<pb::PullBatch>,
    /// Digest and Witness never answer, as a stalled peer's would not
    /// (otherwise they are refused).
    pub stall: bool,
    /// Counts the Pull calls received.
    pub pulls: Arc<AtomicUsize>,
    /// Keeps every Match request as it came off the wire and answers it
    /// with no hit (otherwise Match is refused).
    pub matches: Option<Arc<Mutex<Vec<Vec<u8>>>>>,
    /// The answer to every RosterChain call (otherwise it is refused).
    pub chain: Option<pb::RosterChainResponse>,
    /// Evaluates every Evaluate call with this key, whatever the roster
    /// says (otherwise Evaluate and Confirm are refused).
    pub evaluate_with: Option<Arc<enlace::records::oprf::SecretKey>>,
}

type PullStream = Pin<Box<dyn Stream<Item = Result<pb::PullBatch, Status>> + Send>>;

#[tonic::async_trait]
impl Federation for StandIn {
    type PullStream = PullStream;

    async fn pull(&self, _: Request<pb::PullRequest>) -> Result<Response<PullStream>, Status> {
        self.pulls.fetch_add(1, Ordering::Relaxed);
        let first = self.batch.clone().map(Ok);
        Ok(Response::new(Box::pin(
            tokio_stream::iter(first).chain(tokio_stream::pending()),
        )))
    }

    async fn digest(
        &self,
        _: Request<pb::DigestRequest>,
    ) -> Result<Response<pb::DigestResponse>, Status> {
        if self.stall {
            return std::future::pending().await;
        }
        Err(Status::unimplemented(
            "this stand-in peer answers no digest",
        ))
    }

    async fn r#match(
        &self,
        request: Request<pb::MatchRequest>,
    ) -> Result<Response<pb::MatchResponse>, Status> {
        let Some(matches) = &self.matches else {
            return Err(Status::unimplemented("this stand-in peer answers no query"));
        };
        let request = request.into_inner();
        let n = request.selectors.len();
        matches
            .lock()
            .expect("the stand-in's record of queries")
            .push(request.encode_to_vec());
        Ok(Response::new(pb::MatchResponse {
            hits: vec![false; n],
            ..Default::default()
        }))
    }

    async fn evaluate(
        &self,
        request: Request<pb::EvaluateRequest>,
    ) -> Result<Response<pb::EvaluateResponse>, Status> {
        let Some(key) = &self.evaluate_with else {
            return Err(Status::unimplemented(
                "this stand-in peer evaluates nothing",
            ));
        };
        let (evaluated, proof) = key
            .evaluate(&request.into_inner().blinded)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok(Response::new(pb::EvaluateResponse {
            evaluated: evaluated.iter().map(|e| e.to_vec()).collect(),
            proof: proof.to_vec(),
            filter_seq: 0,
        }))
    }

    async fn confirm(
        &self,
        _: Request<pb::ConfirmRequest>,
    ) -> Result<Response<pb::MatchResponse>, Status> {
        Err(Status::unimplemented("this stand-in peer confirms nothing"))
    }

    async fn witness(
        &self,
        _: Request<pb::SignedCheckpoint>,
    ) -> Result<Response<pb::WitnessReply>, Status> {
        // A stall here checks that a node handing over its checkpoint is
        // not held up.
        if self.stall {
            return std::future::pending().await;
        }
        Err(Status::unimplemented(
            "this stand-in peer witnesses nothing",
        ))
    }

    async fn witnessed(
        &self,
        _: Request<pb::WitnessedRequest>,
    ) -> Result<Response<pb::WitnessedResponse>, Status> {
        Err(Status::unimplemented(
            "this stand-in peer witnesses nothing",
        ))
    }

    async fn witness_recovery(
        &self,
        _: Request<pb::SignedRecovery>,
    ) -> Result<Response<pb::RecoveryWitness>, Status> {
        Err(Status::unimplemented(
            "this stand-in peer witnesses nothing",
        ))
    }

    async fn roster_chain(
        &self,
        _: Request<pb::RosterChainRequest>,
    ) -> Result<Response<pb::RosterChainResponse>, Status> {
        match &self.chain {
            Some(answer) => Ok(Response::new(answer.clone())),
            None => Err(Status::unimplemented(
                "this stand-in peer has no roster chain",
            )),
        }
    }
}

/// Serves `peer` on member `id`'s peer listener (taken from the sandbox,
/// so `id` must not be started) with `id`'s real identity, until `stop`
/// turns true or its sender goes away.
pub fn serve(
    fed: &mut Sandbox,
    id: &str,
    peer: StandIn,
    stop: watch::Receiver<bool>,
) -> JoinHandle<Result<(), tonic::transport::Error>> {
    let settings =
        enlace::trust::load::settings(&fed.member(id).unwrap().config_path(), None).unwrap();
    let listeners = fed.take_listeners(id).unwrap();
    let config = tls::peer_server_config(&settings.roster, &settings.tls).unwrap();
    let federation = settings.roster.federation.clone();
    let identify: tls::Identify =
        Arc::new(move |c| tls::node_id_from_cert(c, &federation).map(Identity::Peer));
    let incoming = tls::incoming(
        listeners.peer,
        config,
        identify,
        "peer",
        Arc::default(),
        stop.clone(),
    );
    let mut stop = stop;
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(FederationServer::new(peer))
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = stop.wait_for(|s| *s).await;
            }),
    )
}

/// A record of `kind` to all members from `origin`, number `seq`, signed
/// with the key of `settings`.
pub fn signed_record(
    settings: &LoadedSettings,
    origin: &NodeId,
    seq: u64,
    kind: RecordKind,
) -> Envelope {
    let body = wire::encode_body(&RecordBody {
        record_id: enlace::records::model::new_record_id(origin, seq.to_be_bytes()),
        origin: origin.clone(),
        seq,
        created_at_ms: enlace::clock::now_ms(),
        distribution: Distribution::AllMembers,
        kind,
    });
    Envelope {
        signature: settings.signing.sign_record(&body),
        key_id: settings.signing.key_id().into(),
        body,
    }
}

/// A valid routine alert from `origin`, number `seq`, signed with the key
/// of `settings` (the origin's own, or another member's to forge one).
pub fn signed_alert(
    settings: &LoadedSettings,
    origin: &NodeId,
    seq: u64,
    summary: &str,
) -> Envelope {
    let mut alert = enlace::testing::sample_alert(summary);
    alert.urgency = enlace::records::vocabulary::Urgency::Routine.wire();
    alert.subject_category = enlace::records::vocabulary::SubjectCategory::Victim.wire();
    alert.expires_at_ms = enlace::clock::now_ms() + 86_400_000;
    let alert = wire::alert_from_pb(alert, "alert", &mut Errors::default()).unwrap();
    let body = wire::encode_body(&RecordBody {
        record_id: enlace::records::model::new_record_id(origin, seq.to_be_bytes()),
        origin: origin.clone(),
        seq,
        created_at_ms: enlace::clock::now_ms(),
        distribution: Distribution::AllMembers,
        kind: RecordKind::Alert(alert),
    });
    Envelope {
        signature: settings.signing.sign_record(&body),
        key_id: settings.signing.key_id().into(),
        body,
    }
}
