//! Replication's peer status and the dialer, on their own: a sandbox's
//! roster and trust, no node running.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::exchange::peers::Dialer;
use crate::records::model::NodeId;
use crate::testing::Sandbox;
use crate::trust::roster::Endpoint;
use crate::wire::{PeerResult, Reach};

fn id(s: &str) -> NodeId {
    NodeId::parse(s).unwrap()
}

#[tokio::test]
async fn every_other_member_is_listed_with_where_it_is_dialled() {
    let sandbox = Sandbox::create("replication-test", &["gt", "hn", "sv"])
        .await
        .unwrap();
    let gt = sandbox.components("gt").unwrap();
    let status = gt.replication.peer_states();
    assert_eq!(
        status.keys().cloned().collect::<Vec<_>>(),
        vec![id("hn"), id("sv")]
    );
    for (peer, state) in &status {
        let roster = gt.trust.roster();
        let listed = roster.member(peer).unwrap().endpoint.clone().unwrap();
        assert_eq!(state.endpoint, listed.to_string());
        assert!(!state.connected);
    }
}

#[tokio::test]
async fn status_is_kept_for_members_only_and_a_forgotten_member_returns_on_contact() {
    let sandbox = Sandbox::create("replication-test", &["gt", "hn"])
        .await
        .unwrap();
    let gt = sandbox.components("gt").unwrap();
    let replication = &gt.replication;
    replication.update_peer(&id("hn"), |p| {
        p.connected = true;
        p.head = 7;
    });
    let hn = &replication.peer_states()[&id("hn")];
    assert!(hn.connected);
    assert_eq!(hn.head, 7);

    replication.update_peer(&id("xx"), |p| p.connected = true);
    assert!(
        !replication.peer_states().contains_key(&id("xx")),
        "a node outside the roster gets no status"
    );

    replication.forget_peer(&id("hn"));
    assert!(replication.peer_states().is_empty());
    replication.update_peer(&id("hn"), |p| p.head = 9);
    let back = &replication.peer_states()[&id("hn")];
    assert_eq!(back.head, 9);
    assert!(!back.connected, "a fresh status, not the forgotten one");
    assert!(!back.endpoint.is_empty());
}

#[tokio::test]
async fn the_configured_endpoint_wins_over_the_roster_and_an_unknown_node_is_unreachable() {
    let sandbox = Sandbox::create("replication-test", &["gt", "hn", "sv"])
        .await
        .unwrap();
    let gt = sandbox.components("gt").unwrap();
    let elsewhere = Endpoint::parse("127.0.0.1:9").unwrap();
    let dialer = Dialer::new(
        gt.trust.clone(),
        BTreeMap::from([(id("hn"), elsewhere.clone())]),
    );
    assert_eq!(dialer.endpoint(&id("hn")), Some(elsewhere));
    let roster = gt.trust.roster();
    assert_eq!(
        dialer.endpoint(&id("sv")),
        roster.member(&id("sv")).unwrap().endpoint.clone()
    );
    assert!(!dialer.reachable(&id("xx")));
    let reach: Arc<dyn Reach> = Arc::new(dialer);
    assert!(matches!(
        reach.client(&id("xx")),
        Err(PeerResult::Unreachable(_))
    ));
}
