//! The audit keeper on its own: two members' stores and keys from a
//! sandbox, no node running, the clock set by the test.

use std::sync::Arc;

use super::WitnessError;
use crate::audit::checkpoint::{self, Checkpoint, open_witness};
use crate::audit::{Action, Entry};
use crate::clock::ManualClock;
use crate::records::model::NodeId;
use crate::testing::Sandbox;
use crate::wire::Witness;

const NOW: i64 = 1_780_000_000_000;

async fn sandbox() -> Sandbox {
    let mut s = Sandbox::create("audit-test", &["gt", "hn"])
        .await
        .expect("sandbox");
    s.clock = Arc::new(ManualClock::starting_at(NOW));
    s
}

fn entry(actor: &str) -> Vec<Entry> {
    vec![Entry::new(Action::ConfigChanged, actor).result("test")]
}

fn actions(node: &crate::node::Components) -> Vec<String> {
    node.store
        .audit()
        .entries(0, 1000)
        .unwrap()
        .iter()
        .map(|e| Entry::decode(&e.body).unwrap().action)
        .collect()
}

#[tokio::test]
async fn a_checkpoint_signs_the_log_as_it_is_and_is_made_once_per_size() {
    let sandbox = sandbox().await;
    let gt = sandbox.components("gt").unwrap();
    assert!(
        gt.audit.checkpoint_now().await.unwrap().is_none(),
        "an empty log has nothing to sign"
    );
    assert_eq!(gt.audit.record(entry("gt")).await.unwrap(), 1);
    let first = gt.audit.checkpoint_now().await.unwrap().expect("made");
    let again = gt.audit.checkpoint_now().await.unwrap().expect("held");
    assert_eq!(first, again, "the same size gets the same checkpoint");
    gt.audit.record(entry("gt")).await.unwrap();
    let second = gt.audit.checkpoint_now().await.unwrap().expect("made");
    let opened = checkpoint::open(&second, &gt.audit.key_book()).expect("verifies");
    assert_eq!(opened.node, gt.id);
    assert_eq!(opened.size, 2);
    assert_eq!(opened.time_ms, NOW, "the keeper reads the node's clock");
    assert_eq!(gt.audit.own_checkpoints().unwrap().len(), 2);
}

#[tokio::test]
async fn a_peers_checkpoint_is_witnessed_and_a_shrunk_or_foreign_one_is_refused_on_record() {
    let sandbox = sandbox().await;
    let gt = sandbox.components("gt").unwrap();
    let hn = sandbox.components("hn").unwrap();
    let hn_id = NodeId::parse("hn").unwrap();
    hn.audit.record(entry("hn")).await.unwrap();
    let smaller = hn.audit.checkpoint_now().await.unwrap().unwrap();
    hn.audit.record(entry("hn")).await.unwrap();
    let larger = hn.audit.checkpoint_now().await.unwrap().unwrap();

    let witness = gt
        .audit
        .witness(&hn_id, larger.clone())
        .await
        .expect("witnessed");
    let seen = open_witness(&witness, &hn.audit.key_book()).expect("countersignature verifies");
    assert_eq!(seen.witness, gt.id);
    assert_eq!(seen.checkpoint.size, 2);
    assert_eq!(
        gt.audit.witnessed(&hn_id, 0, 0, 0).unwrap(),
        (vec![witness], false)
    );

    let shrunk = gt.audit.witness(&hn_id, smaller).await.expect_err("shrank");
    assert!(
        matches!(
            shrunk,
            WitnessError::Shrank {
                size: 1,
                witnessed: 2,
                ..
            }
        ),
        "{shrunk:?}"
    );
    let foreign = gt
        .audit
        .witness(&gt.id, larger)
        .await
        .expect_err("gt hands over hn's checkpoint");
    assert!(
        matches!(foreign, WitnessError::NotOwn { .. }),
        "{foreign:?}"
    );
    assert_eq!(
        actions(&gt),
        vec!["checkpoint_rejected", "checkpoint_rejected"],
        "every refusal is on record"
    );
}

#[tokio::test]
async fn pruning_keeps_the_chain_verifiable_from_a_signed_anchor() {
    let sandbox = sandbox().await;
    let gt = sandbox.components("gt").unwrap();
    for _ in 0..3 {
        gt.audit.record(entry("gt")).await.unwrap();
    }
    // Entries take their time from the system clock (not the node's).
    let removed = gt
        .audit
        .prune(crate::clock::now_ms() + 60_000)
        .await
        .unwrap();
    assert_eq!(removed, 2, "all but the chain's head");
    let anchor = gt.store.audit().anchor().unwrap().expect("an anchor");
    assert_eq!(anchor.n, 2);
    let at_anchor = gt
        .audit
        .own_checkpoints()
        .unwrap()
        .into_iter()
        .map(|c| checkpoint::open(&c, &gt.audit.key_book()).unwrap())
        .find(|c| c.size == 2)
        .expect("a checkpoint signs the anchor");
    assert_eq!(at_anchor.head, anchor.hash);
}

#[tokio::test]
async fn witnesses_are_handed_out_in_pages_of_a_range_of_sizes() {
    let sandbox = sandbox().await;
    let gt = sandbox.components("gt").unwrap();
    let hn = sandbox.components("hn").unwrap();
    let hn_id = NodeId::parse("hn").unwrap();
    for _ in 0..5 {
        hn.audit.record(entry("hn")).await.unwrap();
        let cp = hn.audit.checkpoint_now().await.unwrap().unwrap();
        gt.audit.witness(&hn_id, cp).await.unwrap();
    }
    let sizes = |page: &[Witness]| -> Vec<u64> {
        page.iter()
            .map(|w| {
                Checkpoint::decode(&w.checkpoint.as_ref().unwrap().body)
                    .unwrap()
                    .size
            })
            .collect()
    };
    let (page, more) = gt.audit.witnessed(&hn_id, 0, 0, 2).unwrap();
    assert_eq!((sizes(&page), more), (vec![1, 2], true));
    let (page, more) = gt.audit.witnessed(&hn_id, 2, 0, 2).unwrap();
    assert_eq!((sizes(&page), more), (vec![3, 4], true));
    let (page, more) = gt.audit.witnessed(&hn_id, 4, 0, 2).unwrap();
    assert_eq!((sizes(&page), more), (vec![5], false));
    // A range with an upper bound.
    let (page, more) = gt.audit.witnessed(&hn_id, 1, 3, 0).unwrap();
    assert_eq!((sizes(&page), more), (vec![2, 3], false));
    // Own checkpoints, likewise.
    let (own, more) = hn.audit.own_checkpoints_between(0, u64::MAX, 3).unwrap();
    assert_eq!((own.len(), more), (3, true));
}

#[tokio::test]
async fn an_oversized_checkpoint_is_refused_before_it_is_opened_or_quoted() {
    let sandbox = sandbox().await;
    let gt = sandbox.components("gt").unwrap();
    let hn_id = NodeId::parse("hn").unwrap();
    let long_key = "k".repeat(10_000);
    let refused = gt
        .audit
        .witness(
            &hn_id,
            crate::wire::SignedCheckpoint {
                body: vec![0; 16],
                key_id: long_key.clone(),
                signature: vec![0; 64],
            },
        )
        .await
        .expect_err("a 10 kB key id");
    assert!(
        matches!(
            refused,
            WitnessError::TooLong {
                field: "key_id",
                ..
            }
        ),
        "{refused:?}"
    );
    let on_record = crate::store::Store::audit(&gt.store)
        .entries(0, 100)
        .unwrap()
        .into_iter()
        .map(|e| e.body.len())
        .max()
        .unwrap_or(0);
    assert!(
        on_record < 1_000,
        "the refusal on record is small: {on_record}"
    );
}
