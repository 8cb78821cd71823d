//! Hostile or broken peers must not take a node down or hold back the rest
//! of the federation: a peer that answers with garbage, one that stalls,
//! one that drops the connection in the middle of a batch, and clients that
//! open connections and say nothing. Meanwhile the node keeps replicating
//! with its honest peer and serving it.

use std::sync::Arc;

use crate::common::{self, eventually};
use common::proxy::Proxy;
use common::standin::{self, StandIn};
use enlace::records::model::NodeId;
use enlace::testing::Sandbox;
use enlace::trust::tls;
use enlace::wire::pb::v1 as pb;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

/// A batch of `n` valid records signed by member `id`.
fn big_batch(fed: &Sandbox, id: &str, n: u64) -> pb::PullBatch {
    let settings =
        enlace::trust::load::settings(&fed.member(id).unwrap().config_path(), None).unwrap();
    let origin = NodeId::parse(id).unwrap();
    let records = (1..=n)
        .map(|seq| {
            let summary = format!("registro {seq} {}", "x".repeat(400));
            standin::signed_alert(&settings, &origin, seq, &summary).to_pb()
        })
        .collect();
    pb::PullBatch {
        records,
        high_water: n,
        head: n,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_peers_do_not_hold_back_the_node_or_its_honest_peer() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "sv", "garbage", "stall", "cut"])
        .await
        .unwrap();
    let (stop_tx, stop_rx) = watch::channel(false);

    // "garbage": answers every connection with bytes that are not TLS.
    let garbage = fed.take_listeners("garbage").unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = garbage.peer.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let junk: Vec<u8> = (0..8192u32)
                    .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                    .collect();
                let _ = s.write_all(&junk).await;
                let _ = s.shutdown().await;
            });
        }
    });
    // "stall": a real TLS peer whose Pull and Digest never answer.
    let stalled_pulls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    standin::serve(
        &mut fed,
        "stall",
        StandIn {
            stall: true,
            pulls: stalled_pulls.clone(),
            ..StandIn::default()
        },
        stop_rx.clone(),
    );
    // "cut": a real peer with a large batch, behind a proxy that drops each
    // connection after 20 kB, in the middle of the batch.
    let batch = big_batch(&fed, "cut", 200);
    let cut_addr = fed.member("cut").unwrap().peer_addr;
    standin::serve(
        &mut fed,
        "cut",
        StandIn {
            batch: Some(batch),
            stall: true,
            ..StandIn::default()
        },
        stop_rx.clone(),
    );
    // gt gives up on a stream that stays silent for 300 ms (no heartbeat).
    let gt_config = fed.member("gt").unwrap().config_path();
    let text = std::fs::read_to_string(&gt_config)
        .unwrap()
        .replace("[sync]\n", "[sync]\nsilence_limit_ms = 300\n");
    std::fs::write(&gt_config, text).unwrap();
    let truncating = Proxy::start_with(cut_addr, Some(20_000)).await;
    fed.set_peer_endpoint("gt", "cut", truncating.addr).unwrap();

    let gt = fed.start("gt").await.unwrap();
    // A new member started before its only honest peer, among peers that
    // stall or answer garbage: what `node run --new-log` says. (This test
    // is about the hostile peers, not about the own-log check.)
    gt.components.publisher.declare_new_log();
    let sv = fed.start("sv").await.unwrap();

    // Clients that connect to gt's peer listener and say nothing.
    let gt_peer = fed.member("gt").unwrap().peer_addr;
    // Fewer than the handshakes one source may hold (16): the honest sv
    // connects from the same loopback address (a flood from one address is
    // `tls_limits`' slow-loris test).
    let mut silent = Vec::new();
    for _ in 0..12 {
        silent.push(tokio::net::TcpStream::connect(gt_peer).await.unwrap());
    }

    // The honest exchange goes on both ways.
    let mut gt_client = fed.client("gt").await.unwrap();
    let mut sv_client = fed.client("sv").await.unwrap();
    let from_gt = common::publish(&mut gt_client, "de gt", &[]).await;
    let from_sv = common::publish(&mut sv_client, "de sv", &[]).await;
    eventually("gt's alert at sv", || async {
        let mut c = sv_client.clone();
        c.get_record(pb::GetRecordRequest {
            record_id: from_gt.record_id.clone(),
        })
        .await
        .ok()
    })
    .await;
    eventually("sv's alert at gt", || async {
        let mut c = gt_client.clone();
        c.get_record(pb::GetRecordRequest {
            record_id: from_sv.record_id.clone(),
        })
        .await
        .ok()
    })
    .await;
    // The truncated stream was tried, failed, and stored nothing partial.
    eventually(
        "the truncating proxy was used at least twice (a retry)",
        || async {
            (truncating
                .connections
                .load(std::sync::atomic::Ordering::Relaxed)
                >= 2)
                .then_some(())
        },
    )
    .await;
    // The stalled stream was noticed and reopened.
    eventually("gt reopened the stalled stream", || async {
        (stalled_pulls.load(std::sync::atomic::Ordering::Relaxed) >= 2).then_some(())
    })
    .await;
    let cut = NodeId::parse("cut").unwrap();
    assert_eq!(
        gt.components.store.records().count(&cut),
        0,
        "nothing from a batch that never arrived whole"
    );
    assert_eq!(gt.components.store.records().cursor(&cut).unwrap(), 0);

    // gt reports each broken peer, stays healthy, and still answers quickly.
    let peers = gt_client
        .list_peers(pb::ListPeersRequest {})
        .await
        .unwrap()
        .into_inner()
        .peers;
    for broken in ["garbage", "cut"] {
        let p = peers.iter().find(|p| p.node_id == broken).unwrap();
        assert!(!p.connected || !p.last_error.is_empty(), "{broken}: {p:?}");
    }
    let sv_status = peers.iter().find(|p| p.node_id == "sv").unwrap();
    assert!(sv_status.connected, "{sv_status:?}");
    let health = {
        use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
        let cfg =
            enlace::service::client::ClientConfig::load(&fed.member("gt").unwrap().client_path())
                .unwrap();
        let channel = tonic::transport::Endpoint::from_shared(format!("https://{}", cfg.endpoint))
            .unwrap()
            .connect_with_connector(tls::connector(
                tls::agency_client_config(&cfg.ca, &cfg.identity).unwrap(),
                cfg.endpoint.host.clone(),
                cfg.endpoint.port,
                tls::server_name(&cfg.server_name).unwrap(),
            ))
            .await
            .unwrap();
        HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: "enlace.v1.Federation".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status
    };
    assert_eq!(
        health,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    drop(silent);
    sv.stop().await.unwrap();
    gt.stop().await.unwrap();
    let _ = stop_tx.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_claiming_an_implausible_head_cannot_stop_a_recovery() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "liar"]).await.unwrap();
    let (stop_tx, stop_rx) = watch::channel(false);
    // "liar" answers gt's recovery saying it saw gt's log up to u64::MAX:
    // believed, gt could never publish again.
    standin::serve(
        &mut fed,
        "liar",
        StandIn {
            batch: Some(pb::PullBatch {
                records: Vec::new(),
                high_water: u64::MAX,
                head: u64::MAX,
            }),
            stall: true,
            ..StandIn::default()
        },
        stop_rx,
    );
    let settings =
        enlace::trust::load::settings(&fed.member("gt").unwrap().config_path(), None).unwrap();
    let node = enlace::node::Node::open(settings).unwrap();
    let done = enlace::exchange::recover::recover_own_log(node.components().replication.clone())
        .await
        .unwrap();
    match &done.peers[..] {
        [(peer, enlace::exchange::recover::PeerAnswer::Failed(why))] => {
            assert_eq!(peer.as_str(), "liar");
            assert!(why.contains("not plausible"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(done.next_after, 0);
    assert_eq!(node.components().store.watermark().own_seq, 0);
    let _ = stop_tx.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_claiming_more_of_the_own_log_without_a_record_cannot_stop_publishing() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn", "liar"])
        .await
        .unwrap();
    let (stop_tx, stop_rx) = watch::channel(false);
    // "liar" says it saw gt's log up to 1000 and hands back nothing: a
    // claim, not proof.
    standin::serve(
        &mut fed,
        "liar",
        StandIn {
            batch: Some(pb::PullBatch {
                records: Vec::new(),
                high_water: 1000,
                head: 1000,
            }),
            ..StandIn::default()
        },
        stop_rx,
    );
    let gt = fed.start("gt").await.unwrap();
    let hn = fed.start("hn").await.unwrap();
    let mut g = fed.client("gt").await.unwrap();
    let published = common::publish(&mut g, "pese al mentiroso", &[]).await;
    // 1, or 2 after gt's match filter: not 1001.
    assert!((1..=2).contains(&published.seq), "{published:?}");
    assert_eq!(
        gt.components.publisher.own_log(),
        enlace::publish::OwnLog::Confirmed,
        "hn confirmed; the liar's claim did not close the gate"
    );
    hn.stop().await.unwrap();
    gt.stop().await.unwrap();
    let _ = stop_tx.send(true);
}
