//! A peer that sends altered records: they are rejected, counted and not
//! stored, and replication carries on with the records after them.
//!
//! The stand-in peer is a real tonic `Federation` server on gt's address
//! with gt's real TLS identity and signing key; only its records are
//! doctored, as a compromised relay or a buggy origin would send them.

mod common;

use std::pin::Pin;
use std::sync::Arc;

use common::{eventually, list_all};
use enlace::records::model::{Distribution, Errors, NodeId, RecordBody, RecordKind};
use enlace::testing::Sandbox;
use enlace::trust::tls::{self, Identity};
use enlace::wire::pb::v1 as pb;
use enlace::wire::pb::v1::federation_server::{Federation, FederationServer};
use enlace::wire::{self, Envelope};
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

struct DoctoredPeer {
    batch: pb::PullBatch,
}

#[tonic::async_trait]
impl Federation for DoctoredPeer {
    type PullStream = Pin<Box<dyn Stream<Item = Result<pb::PullBatch, Status>> + Send>>;

    async fn digest(
        &self,
        _: Request<pb::DigestRequest>,
    ) -> Result<Response<pb::DigestResponse>, Status> {
        Err(Status::unimplemented("a doctored peer answers no digest"))
    }

    async fn r#match(
        &self,
        _: Request<pb::MatchRequest>,
    ) -> Result<Response<pb::MatchResponse>, Status> {
        Err(Status::unimplemented("this stand-in peer answers no query"))
    }

    async fn pull(
        &self,
        _: Request<pb::PullRequest>,
    ) -> Result<Response<Self::PullStream>, Status> {
        let (tx, rx) = mpsc::channel(1);
        let batch = self.batch.clone();
        tokio::spawn(async move {
            let _ = tx.send(Ok(batch)).await;
            // Keep following (silently) until the puller goes away.
            tx.closed().await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn witness(
        &self,
        _: Request<pb::SignedCheckpoint>,
    ) -> Result<Response<pb::WitnessReply>, Status> {
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
}

fn record(settings: &enlace::config::Settings, seq: u64) -> Envelope {
    let origin = NodeId::parse("gt").unwrap();
    let mut alert = enlace::testing::sample_alert(&format!("alerta número {seq}"));
    alert.urgency = enlace::records::vocabulary::Urgency::Routine.wire();
    alert.subject_category = enlace::records::vocabulary::SubjectCategory::Victim.wire();
    alert.expires_at_ms = enlace::clock::now_ms() + 86_400_000;
    let mut errors = Errors::default();
    let alert = wire::alert_from_pb(alert, "alert", &mut errors).unwrap();
    let body = RecordBody {
        record_id: enlace::records::model::new_record_id(&origin, seq.to_be_bytes()),
        origin,
        seq,
        created_at_ms: enlace::clock::now_ms(),
        distribution: Distribution::AllMembers,
        kind: RecordKind::Alert(alert),
    };
    let body = wire::encode_body(&body);
    Envelope {
        signature: settings.signing.sign_record(&body),
        key_id: settings.signing.key_id().into(),
        body,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altered_records_are_rejected_and_sync_carries_on() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let gt_settings = enlace::config::load(&fed.member("gt").unwrap().config_path(), None).unwrap();

    let mut records: Vec<Envelope> = (1..=6).map(|seq| record(&gt_settings, seq)).collect();
    // 2: one byte of the body changed after signing.
    let pos = records[1].body.len() - 3;
    records[1].body[pos] ^= 0x01;
    // 4: the signature changed.
    records[3].signature[10] ^= 0x80;
    // 6: signed by gt but naming hn as origin (a member signing in another's name).
    let origin_hn = {
        let mut body = wire::decode_body(&records[5].body).unwrap();
        body.origin = NodeId::parse("hn").unwrap();
        body.record_id = enlace::records::model::new_record_id(&body.origin, [6; 8]);
        let bytes = wire::encode_body(&body);
        Envelope {
            signature: gt_settings.signing.sign_record(&bytes),
            key_id: gt_settings.signing.key_id().into(),
            body: bytes,
        }
    };
    records[5] = origin_hn;
    let ids: Vec<String> = records
        .iter()
        .map(|e| {
            wire::decode_body(&e.body)
                .map(|b| b.record_id)
                .unwrap_or_default()
        })
        .collect();

    let listeners = fed.take_listeners("gt").unwrap();
    let (stop_tx, stop_rx) = watch::channel(false);
    let config = tls::peer_server_config(&gt_settings.roster, &gt_settings.tls).unwrap();
    let federation = gt_settings.roster.federation.clone();
    let identify: tls::Identify =
        Arc::new(move |c| tls::node_id_from_cert(c, &federation).map(Identity::Peer));
    let incoming = tls::incoming(
        listeners.peer,
        config,
        identify,
        "peer",
        Arc::default(),
        stop_rx.clone(),
    );
    let fake = DoctoredPeer {
        batch: pb::PullBatch {
            records: records.iter().map(Envelope::to_pb).collect(),
            high_water: 6,
            head: 6,
        },
    };
    let mut stop_server = stop_rx.clone();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(FederationServer::new(fake))
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = stop_server.wait_for(|s| *s).await;
            }),
    );

    let hn = fed.start("hn").await.unwrap();
    let hn_client = fed.client("hn").await.unwrap();
    let held = eventually("records 1, 3 and 5 at hn", || {
        let mut c = hn_client.clone();
        async move {
            let all = list_all(&mut c).await;
            (all.len() >= 3).then_some(all)
        }
    })
    .await;
    let status = eventually("3 rejections counted", || {
        let mut c = hn_client.clone();
        async move {
            let peers = c
                .list_peers(pb::ListPeersRequest {})
                .await
                .unwrap()
                .into_inner();
            peers
                .peers
                .into_iter()
                .find(|p| p.node_id == "gt" && p.records_rejected >= 3)
        }
    })
    .await;
    let seqs: Vec<u64> = held.iter().map(|r| r.seq).collect();
    assert_eq!(
        seqs,
        vec![1, 3, 5],
        "only authentic records are stored, and those after a bad one still are"
    );
    for bad in [&ids[1], &ids[3], &ids[5]] {
        assert!(
            hn.state.store.records().get_by_id(bad).unwrap().is_none(),
            "{bad} must not be stored"
        );
    }
    // The cursor stays before the first bad record, so it is asked for
    // again rather than skipped for ever.
    assert_eq!(status.cursor, 1);
    assert_eq!(status.records_received, 3);
    // Each refusal is in hn's audit log, with the peer and the reason.
    let refusals: Vec<_> = common::audit_log(&hn.state)
        .into_iter()
        .filter(|e| e.action == "record_rejected")
        .collect();
    assert!(refusals.len() >= 3, "{refusals:?}");
    assert!(
        refusals
            .iter()
            .all(|e| e.actor == "gt" && e.counterparts == ["gt"] && !e.result.is_empty())
    );
    // The metrics say why: two signatures that do not verify (a changed
    // body, a changed signature) and one record signed in another's name.
    let (code, text) = common::scrape(&fed, "hn", "/metrics").await.unwrap();
    assert_eq!(code, 200, "{text}");
    let metrics = common::samples(&text);
    let rejected = |reason: &str| {
        common::sample(
            &metrics,
            &format!("enlace_records_rejected_total{{peer=\"gt\",reason=\"{reason}\""),
        )
    };
    assert!(rejected("bad_signature") >= Some(2.0), "{text}");
    assert!(rejected("origin_mismatch") >= Some(1.0), "{text}");
    assert_eq!(
        common::sample(&metrics, "enlace_records_received_total{peer=\"gt\""),
        Some(3.0)
    );

    hn.stop().await.unwrap();
    let _ = stop_tx.send(true);
    server.await.unwrap().unwrap();
}
