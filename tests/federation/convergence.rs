//! Replication that converges: five real nodes in a full mesh whose links
//! go up and down, a partition that heals, and hostile peers that must not
//! hold anyone back. Every link between two nodes runs through a test proxy
//! (`common::proxy`) that can cut it.

use crate::common;

use std::collections::BTreeMap;

use common::eventually;
use common::proxy::Proxy;
use enlace::testing::{RunningNode, Sandbox, sample_alert};
use enlace::wire::pb::v1 as pb;
use enlace::wire::pb::v1::agency_client::AgencyClient;
use tonic::transport::Channel;

type Client = AgencyClient<Channel>;

/// A small deterministic generator, seeded per run and printed, so a
/// failing schedule can be replayed.
struct Rng(u64);

impl Rng {
    fn seeded() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        eprintln!("link schedule seed: {seed}");
        Self(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A federation whose every directed link A→B runs through its own proxy.
struct Mesh {
    fed: Sandbox,
    links: BTreeMap<(String, String), Proxy>,
    nodes: Vec<RunningNode>,
}

impl Mesh {
    async fn start(ids: &[&str]) -> Self {
        let fed = Sandbox::create("test-fed", ids).await.unwrap();
        let mut links = BTreeMap::new();
        for a in ids {
            for b in ids {
                if a == b {
                    continue;
                }
                let proxy = Proxy::start(fed.member(b).unwrap().peer_addr).await;
                fed.set_peer_endpoint(a, b, proxy.addr).unwrap();
                links.insert((a.to_string(), b.to_string()), proxy);
            }
        }
        let mut mesh = Self {
            fed,
            links,
            nodes: Vec::new(),
        };
        for id in ids {
            let node = mesh.fed.start(id).await.unwrap();
            mesh.nodes.push(node);
        }
        mesh
    }

    /// Cuts (or heals) the link between `a` and `b`, both directions.
    fn set_link(&self, a: &str, b: &str, up: bool) {
        for key in [
            (a.to_string(), b.to_string()),
            (b.to_string(), a.to_string()),
        ] {
            let p = &self.links[&key];
            if up { p.heal() } else { p.cut() }
        }
    }

    async fn client(&self, id: &str) -> Client {
        self.fed.client(id).await.unwrap()
    }

    async fn stop(self) {
        for n in self.nodes {
            n.stop().await.unwrap();
        }
    }
}

/// Publishes `n` alerts at `client`, `parallel` at a time.
async fn publish_many(client: Client, tag: &str, n: usize, parallel: usize) {
    publish_counted(client, tag, n, parallel, None).await
}

/// Like `publish_many`, counting each publish on `progress`.
async fn publish_counted(
    client: Client,
    tag: &str,
    n: usize,
    parallel: usize,
    progress: Option<std::sync::Arc<tokio::sync::watch::Sender<usize>>>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..parallel {
        let mut c = client.clone();
        let tag = tag.to_owned();
        let progress = progress.clone();
        tasks.spawn(async move {
            let mut i = worker;
            while i < n {
                let alert = sample_alert(&format!("{tag} {i}"));
                // A link may be down; the agency API of the node itself is not.
                c.publish_alert(pb::PublishAlertRequest {
                    alert: Some(alert),
                    ..Default::default()
                })
                .await
                .expect("publish");
                if let Some(p) = &progress {
                    p.send_modify(|count| *count += 1);
                }
                i += parallel;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
}

/// True when every comparison `client`'s node makes with its peers is equal.
async fn converged(client: &Client) -> bool {
    let mut c = client.clone();
    let Ok(resp) = c.verify_peers(pb::VerifyPeersRequest {}).await else {
        return false;
    };
    let comparisons = resp.into_inner().comparisons;
    !comparisons.is_empty() && comparisons.iter().all(|p| p.error.is_empty() && p.equal)
}

async fn count(client: &Client) -> usize {
    let mut c = client.clone();
    let mut n = 0;
    let mut after = 0;
    loop {
        let page = c
            .list_records(pb::ListRecordsRequest {
                after_position: after,
                limit: 1_000,
                all_versions: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        n += page.records.len();
        if page.last_position == after {
            return n;
        }
        after = page.last_position;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_converge_while_links_go_up_and_down() {
    common::init_tracing();
    const PER_NODE: usize = 500;
    let ids = ["gt", "hn", "sv", "cr", "pa"];
    let mesh = Mesh::start(&ids).await;
    let mut clients = Vec::new();
    for id in ids {
        clients.push(mesh.client(id).await);
    }

    // Links flap while everyone publishes.
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    // A link flips every 10 to 30 publishes: the schedule follows the
    // federation's progress, not the clock, so it is the same on any machine.
    let (progress_tx, mut progress_rx) = tokio::sync::watch::channel(0usize);
    let progress_tx = std::sync::Arc::new(progress_tx);
    let flapper = {
        let pairs: Vec<(String, String)> =
            mesh.links.keys().filter(|(a, b)| a < b).cloned().collect();
        let mut rng = Rng::seeded();
        let mesh_ref = &mesh;
        async move {
            let mut flips = 0u32;
            let mut next = 0usize;
            loop {
                let done = *progress_rx.borrow_and_update();
                if done >= next {
                    let (a, b) = &pairs[rng.below(pairs.len() as u64) as usize];
                    let up = rng.below(3) != 0;
                    mesh_ref.set_link(a, b, up);
                    flips += 1;
                    next = done + 10 + rng.below(20) as usize;
                }
                tokio::select! {
                    changed = progress_rx.changed() => if changed.is_err() { break },
                    _ = stop_rx.changed() => break,
                }
            }
            flips
        }
    };
    let publishers = async {
        let mut all = tokio::task::JoinSet::new();
        for (id, c) in ids.iter().zip(&clients) {
            all.spawn(publish_counted(
                c.clone(),
                id,
                PER_NODE,
                4,
                Some(progress_tx.clone()),
            ));
        }
        while let Some(r) = all.join_next().await {
            r.unwrap();
        }
        let _ = stop_tx.send(true);
    };
    let (flips, ()) = tokio::join!(flapper, publishers);
    assert!(flips > 0, "links were flipped");

    // All links back up: everyone converges to identical digests.
    for (a, b) in mesh.links.keys() {
        mesh.set_link(a, b, true);
    }
    for (id, c) in ids.iter().zip(&clients) {
        eventually(&format!("{id} holds every record"), || async {
            (count(c).await == PER_NODE * ids.len()).then_some(())
        })
        .await;
    }
    for (id, c) in ids.iter().zip(&clients) {
        eventually(&format!("{id}'s digests equal its peers'"), || async {
            converged(c).await.then_some(())
        })
        .await;
    }
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_heals_and_holds_nobody_else_back() {
    common::init_tracing();
    let ids = ["gt", "hn", "sv"];
    let mesh = Mesh::start(&ids).await;
    let gt = mesh.client("gt").await;
    let hn = mesh.client("hn").await;
    let sv = mesh.client("sv").await;

    mesh.set_link("gt", "hn", false);
    publish_many(gt.clone(), "desde gt", 20, 2).await;
    publish_many(hn.clone(), "desde hn", 20, 2).await;
    // sv is not held back: it gets both sides while gt and hn are cut off.
    eventually("sv holds both sides' records", || async {
        (count(&sv).await == 40).then_some(())
    })
    .await;
    // gt and hn have only their own and nothing of each other.
    assert_eq!(count(&gt).await, 20);
    assert_eq!(count(&hn).await, 20);
    let mut g = gt.clone();
    let peers = g
        .list_peers(pb::ListPeersRequest {})
        .await
        .unwrap()
        .into_inner()
        .peers;
    let to_hn = peers.iter().find(|p| p.node_id == "hn").unwrap();
    assert!(!to_hn.connected, "gt sees hn as disconnected");
    assert!(!to_hn.last_error.is_empty(), "and says why");

    mesh.set_link("gt", "hn", true);
    for (id, c) in [("gt", &gt), ("hn", &hn), ("sv", &sv)] {
        eventually(&format!("{id} converged after healing"), || async {
            (count(c).await == 40 && converged(c).await).then_some(())
        })
        .await;
    }
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_compares_what_both_have_resolved_and_names_unreachable_peers() {
    common::init_tracing();
    let ids = ["gt", "hn"];
    let mesh = Mesh::start(&ids).await;
    let gt = mesh.client("gt").await;
    let hn = mesh.client("hn").await;
    // gt's first record is its match filter; then five alerts.
    assert_eq!(common::filter_published(&mesh.nodes[0].components).await, 1);
    publish_many(gt.clone(), "uno", 5, 1).await;
    // Converged *and* caught up: a lagging peer also compares equal.
    eventually("hn caught up and converged", || async {
        (count(&hn).await == 5 && converged(&hn).await).then_some(())
    })
    .await;

    // hn can no longer reach gt (one direction only): it lags behind.
    mesh.links[&("hn".to_string(), "gt".to_string())].cut();
    // The cut takes effect asynchronously: wait until hn's stream from gt
    // is down, so that nothing published next slips through.
    eventually("hn sees gt as disconnected", || async {
        let peers = hn
            .clone()
            .list_peers(pb::ListPeersRequest {})
            .await
            .ok()?
            .into_inner()
            .peers;
        peers
            .iter()
            .any(|p| p.node_id == "gt" && !p.connected)
            .then_some(())
    })
    .await;
    publish_many(gt.clone(), "dos", 3, 1).await;
    // Seen from gt, hn is behind but holds the same up to where it is:
    // a lagging peer is not a differing peer.
    let mut c = gt.clone();
    let resp = c
        .verify_peers(pb::VerifyPeersRequest {})
        .await
        .unwrap()
        .into_inner();
    let own = resp.comparisons.iter().find(|p| p.origin == "gt").unwrap();
    assert!(own.equal, "{resp:?}");
    assert_eq!(own.up_to_seq, 6, "compared up to what hn has resolved");
    // Seen from hn, gt is unreachable: verify says so, it does not claim equality.
    let mut c = hn.clone();
    let resp = c
        .verify_peers(pb::VerifyPeersRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        resp.comparisons
            .iter()
            .any(|p| !p.error.is_empty() && !p.equal),
        "{resp:?}"
    );

    mesh.links[&("hn".to_string(), "gt".to_string())].heal();
    eventually("hn caught up", || async {
        (count(&hn).await == 8 && converged(&hn).await).then_some(())
    })
    .await;
    let mut c = hn.clone();
    let peers = c
        .list_peers(pb::ListPeersRequest {})
        .await
        .unwrap()
        .into_inner()
        .peers;
    // gt's match filter and its eight alerts.
    assert_eq!((peers[0].cursor, peers[0].lag), (9, 0));
    mesh.stop().await;
}
