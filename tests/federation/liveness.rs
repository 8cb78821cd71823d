//! A follow stream stays up however busy its origin is: the heartbeat
//! has its own timer, whatever else the serving node stores meanwhile.

use std::time::Duration;

use crate::common::{self, eventually};
use enlace::audit::{Action, Entry};
use enlace::testing::Sandbox;
use enlace::wire::pb::v1 as pb;
use enlace::wire::pb::v1::agency_client::AgencyClient;
use tonic::transport::Channel;

/// Adds `lines` to the `[sync]` section of `id`'s configuration.
fn add_to_sync(fed: &Sandbox, id: &str, lines: &str) {
    let path = fed.member(id).unwrap().config_path();
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("[sync]\n", &format!("[sync]\n{lines}"));
    std::fs::write(&path, text).unwrap();
}

async fn status_of(client: &mut AgencyClient<Channel>, peer: &str) -> pb::PeerStatus {
    client
        .list_peers(pb::ListPeersRequest {})
        .await
        .unwrap()
        .into_inner()
        .peers
        .into_iter()
        .find(|p| p.node_id == peer)
        .expect("listed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_stores_something_all_the_time_still_heartbeats() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    add_to_sync(&fed, "hn", "heartbeat_ms = 200\n");
    // gt drops a stream silent for 1 s, and then waits at least 0.5 s
    // before it reconnects: a drop cannot slip between two looks.
    let gt_config = fed.member("gt").unwrap().config_path();
    let text = std::fs::read_to_string(&gt_config)
        .unwrap()
        .replace("backoff_min_ms = 50", "backoff_min_ms = 1000")
        .replace("backoff_max_ms = 1000", "backoff_max_ms = 2000")
        .replace("[sync]\n", "[sync]\nsilence_limit_ms = 1000\n");
    std::fs::write(&gt_config, text).unwrap();
    let hn = fed.start("hn").await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    let gt_client = fed.client("gt").await.unwrap();
    eventually("gt follows hn", || {
        let mut c = gt_client.clone();
        async move { status_of(&mut c, "hn").await.connected.then_some(()) }
    })
    .await;

    // For five of gt's silence limits, hn writes an audit entry every
    // 50 ms: nothing for gt, but its change notification fires throughout.
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut looks = 0;
    let mut ticks = common::pace(Duration::from_millis(50));
    while tokio::time::Instant::now() < until {
        ticks.tick().await;
        hn.components
            .audit
            .record(vec![Entry::new(Action::ConfigChanged, "hn").result("busy")])
            .await
            .unwrap();
        let status = status_of(&mut gt_client.clone(), "hn").await;
        assert!(
            status.connected && status.last_error.is_empty(),
            "gt dropped its stream from a busy hn: {status:?}"
        );
        looks += 1;
    }
    assert!(looks > 20, "looked often enough ({looks})");
    gt.stop().await.unwrap();
    hn.stop().await.unwrap();
}
