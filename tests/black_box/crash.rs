//! Black-box crash test: the built binary, catching up on a large backlog,
//! is killed with SIGKILL at several moments and restarted on the same
//! store. In the end no record is lost, none is duplicated, and the cursor
//! agrees with what is stored.
//!
//! The kill moments are chosen by progress (the victim's cursor passing a
//! random threshold), not by time, so they land mid-catch-up however fast
//! or slow the machine is.

use crate::common;

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};

use common::eventually;
use enlace::records::model::NodeId;
use enlace::store::Store;
use enlace::testing::{Sandbox, sample_alert};
use enlace::wire::pb::v1 as pb;

const BACKLOG: usize = 1500;

fn start(config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_enlace"))
        .args(["node", "run", "--config"])
        .arg(config)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the node")
}

/// The victim's cursor for `origin`, through its agency API; `None` while
/// it is not up.
async fn cursor(client_toml: &std::path::Path, origin: &str) -> Option<u64> {
    let cfg = enlace::service::client::ClientConfig::load(client_toml).ok()?;
    let mut c = cfg.connect().await.ok()?;
    let peers = c
        .list_peers(pb::ListPeersRequest {})
        .await
        .ok()?
        .into_inner()
        .peers;
    peers.iter().find(|p| p.node_id == origin).map(|p| p.cursor)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_catch_up_loses_and_duplicates_nothing() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    // Small batches: many commits, many places for a kill to land.
    let hn_config = fed.member("hn").unwrap().config_path();
    let mut text = std::fs::read_to_string(&hn_config).unwrap();
    text = text.replace("[sync]\n", "[sync]\nbatch_size = 8\n");
    std::fs::write(&hn_config, text).unwrap();
    drop(fed.take_listeners("hn"));

    // The backlog, published at gt while hn is down.
    let gt = fed.start("gt").await.unwrap();
    // hn is down: gt's first start is a new member's, alone.
    gt.components.publisher.declare_new_log();
    // gt's first record is its match filter; the backlog follows.
    eventually("gt's filter published", || async {
        gt.components
            .store
            .filters()
            .own_complete(1)
            .ok()
            .filter(|c| *c)
    })
    .await;
    let gt_records = BACKLOG + 1;
    let gt_client = fed.client("gt").await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..8 {
        let mut c = gt_client.clone();
        tasks.spawn(async move {
            for i in (w..BACKLOG).step_by(8) {
                c.publish_alert(pb::PublishAlertRequest {
                    alert: Some(sample_alert(&format!("registro {i}"))),
                    ..Default::default()
                })
                .await
                .expect("publish");
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }

    let hn_client_toml = fed.member("hn").unwrap().client_path();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill schedule seed: {seed}");
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut last = 0u64;
    let mut kills = 0;
    for round in 0..4 {
        let mut child = start(&hn_config);
        let span = (BACKLOG as u64 - last) / (5 - round);
        let threshold = last + 1 + next() % span.max(1);
        let reached = eventually(&format!("hn's cursor past {threshold}"), || async {
            cursor(&hn_client_toml, "gt")
                .await
                .filter(|c| *c >= threshold)
        })
        .await;
        if reached < BACKLOG as u64 {
            child.kill().expect("SIGKILL");
            kills += 1;
        }
        child.wait().ok();
        last = reached;
        eprintln!("round {round}: killed at cursor {reached}");
    }
    assert!(kills > 0, "at least one kill landed mid-catch-up");

    // Last start: catch up fully, then stop cleanly.
    let mut child = start(&hn_config);
    eventually("hn caught up", || async {
        cursor(&hn_client_toml, "gt")
            .await
            .filter(|c| *c == gt_records as u64)
    })
    .await;
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(child.wait().unwrap().success());

    // Inspect hn's store directly.
    let store = Store::open(
        &fed.member("hn").unwrap().data_dir(),
        &NodeId::parse("hn").unwrap(),
    )
    .unwrap();
    let gt_id = NodeId::parse("gt").unwrap();
    assert_eq!(
        store.records().cursor(&gt_id).unwrap(),
        gt_records as u64,
        "cursor"
    );
    assert_eq!(store.records().count(&gt_id), gt_records, "no record lost");
    let (arrivals, _) = store.records().list(0, 10 * BACKLOG, Some(&gt_id)).unwrap();
    assert_eq!(arrivals.len(), gt_records, "each record arrived once");
    let seqs: BTreeSet<u64> = arrivals.iter().map(|r| r.seq).collect();
    assert_eq!(
        seqs,
        (1..=gt_records as u64).collect(),
        "no gap, no duplicate"
    );

    // A crash between storing a record and writing its audit entry cannot
    // happen: both are in one transaction. After four kills, every record
    // held has exactly one receipt entry and every receipt names a record
    // held, and the chain is intact.
    let mut receipts = Vec::new();
    let mut verifier = enlace::audit::verify::Verifier::new(enlace::audit::verify::Evidence {
        node: NodeId::parse("hn").unwrap(),
        anchor: None,
        own: Vec::new(),
        peers: Vec::new(),
        keys: Default::default(),
        recoveries: Vec::new(),
        retention: None,
        now_ms: enlace::clock::now_ms(),
    });
    let mut after = 0;
    loop {
        let batch = store.audit().entries(after, 1000).unwrap();
        let Some(last) = batch.last().map(|e| e.n) else {
            break;
        };
        for e in &batch {
            verifier.push(e);
            let entry = enlace::audit::Entry::decode(&e.body).unwrap();
            if entry.action == "records_received" {
                receipts.extend(entry.ids);
            }
        }
        after = last;
    }
    assert!(verifier.finish().holds(), "the chain survived the kills");
    let held: BTreeSet<String> = arrivals
        .iter()
        .map(|r| {
            let envelope = r.content.envelope().unwrap();
            let env = enlace::wire::Envelope::decode(envelope).unwrap();
            enlace::wire::decode_body(&env.body).unwrap().record_id
        })
        .collect();
    assert_eq!(
        receipts.len(),
        gt_records,
        "one receipt per record, none twice"
    );
    assert_eq!(
        receipts.into_iter().collect::<BTreeSet<_>>(),
        held,
        "the receipts name exactly the records held"
    );
    drop(store);
    gt.stop().await.unwrap();
}
