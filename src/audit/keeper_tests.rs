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
    sandbox_and_clock().await.0
}

async fn sandbox_and_clock() -> (Sandbox, Arc<ManualClock>) {
    let mut s = Sandbox::create("audit-test", &["gt", "hn"])
        .await
        .expect("sandbox");
    let clock = Arc::new(ManualClock::starting_at(NOW));
    s.clock = clock.clone();
    (s, clock)
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
async fn a_checkpoint_under_a_superseded_or_conflicting_roster_is_refused_on_record() {
    use crate::audit::checkpoint::{RosterRefusal, RosterStamp, Stamped};
    use crate::trust::reload::Trigger;
    let sandbox = sandbox().await;
    let gt = sandbox.components("gt").unwrap();
    let hn = sandbox.components("hn").unwrap();
    let (gt_id, hn_id) = (gt.id.clone(), hn.id.clone());
    let roster_of = |signed: &crate::wire::SignedCheckpoint| {
        Stamped::decode(&signed.body).unwrap().roster.unwrap()
    };

    // Both on version 1: every checkpoint names it, and is witnessed.
    hn.audit.record(entry("hn")).await.unwrap();
    let hn_v1 = hn.audit.checkpoint_now().await.unwrap().unwrap();
    assert_eq!(roster_of(&hn_v1), RosterStamp::of(&hn.trust.roster()));
    assert_eq!(roster_of(&hn_v1).version, 1);
    gt.audit.witness(&hn_id, hn_v1.clone()).await.unwrap();
    gt.audit.record(entry("gt")).await.unwrap();
    let gt_v1 = gt.audit.checkpoint_now().await.unwrap().unwrap();

    // gt adopts version 2; hn does not (yet).
    let v2 = sandbox.next_roster_version(&["gt", "hn"]).unwrap();
    gt.trust.reload(Trigger::Request).unwrap();
    assert_eq!(gt.trust.roster().position.version, 2);

    // gt's idle log is checkpointed again under version 2 (same size,
    // same head), then that one is kept.
    let gt_v2 = gt.audit.checkpoint_now().await.unwrap().unwrap();
    assert_ne!(gt_v2, gt_v1);
    assert_eq!(
        roster_of(&gt_v2),
        RosterStamp {
            version: 2,
            sha256: v2.version.hash()
        }
    );
    assert_eq!(
        Checkpoint::decode(&gt_v2.body).unwrap(),
        Checkpoint::decode(&gt_v1.body).unwrap()
    );
    assert_eq!(gt.audit.checkpoint_now().await.unwrap().unwrap(), gt_v2);
    // hn, still on version 1, witnesses a checkpoint under a newer one.
    hn.audit
        .witness(&gt_id, gt_v2)
        .await
        .expect("a newer version is witnessed");

    // At gt, hn's checkpoints under version 1 are superseded: the state
    // gt already countersigned, and a larger log alike.
    hn.audit.record(entry("hn")).await.unwrap();
    let hn_larger = hn.audit.checkpoint_now().await.unwrap().unwrap();
    for signed in [hn_v1, hn_larger] {
        let refused = gt.audit.witness(&hn_id, signed).await.unwrap_err();
        assert!(
            matches!(
                refused,
                WitnessError::Roster(RosterRefusal::Superseded { made: 1, .. })
            ),
            "{refused:?}"
        );
        assert!(
            refused
                .to_string()
                .starts_with("superseded: made under roster version 1, version 2 is in force here"),
            "{refused}"
        );
    }
    // hn claims another version 2 than gt's: conflicting.
    let state = |size: u64| Checkpoint {
        node: hn_id.clone(),
        size,
        head: [size as u8; 32],
        time_ms: NOW,
    };
    let other_v2 = state(10)
        .under(Some(RosterStamp {
            version: 2,
            sha256: [9; 32],
        }))
        .sign(&hn.audit.signing);
    let conflicting = gt.audit.witness(&hn_id, other_v2).await.unwrap_err();
    assert!(
        matches!(
            conflicting,
            WitnessError::Roster(RosterRefusal::Conflicting { version: 2, .. })
        ),
        "{conflicting:?}"
    );
    // A checkpoint that names no roster, from a node whose checkpoints
    // named it before: refused (a node cannot drop its roster statement).
    let unstamped = gt
        .audit
        .witness(&hn_id, state(11).sign(&hn.audit.signing))
        .await
        .unwrap_err();
    assert!(
        matches!(
            unstamped,
            WitnessError::Roster(RosterRefusal::Unstamped { .. })
        ),
        "{unstamped:?}"
    );

    let refusals: Vec<String> = gt
        .store
        .audit()
        .entries(0, 1000)
        .unwrap()
        .iter()
        .map(|e| Entry::decode(&e.body).unwrap())
        .filter(|e| e.action == "checkpoint_rejected")
        .map(|e| e.result)
        .collect();
    assert_eq!(refusals.len(), 4, "{refusals:?}");
    assert!(refusals[..2].iter().all(|r| r.starts_with("superseded")));
    assert!(refusals[2].starts_with("conflicting"), "{refusals:?}");
    assert!(refusals[3].starts_with("unstamped"), "{refusals:?}");
}

const DAY: std::time::Duration = std::time::Duration::from_secs(86_400);

/// gt's statement that its log resumes after entry `size` (cause
/// retention), made now by the sandbox clock.
fn retention_statement(gt: &crate::node::Components, size: u64) -> crate::wire::SignedRecovery {
    let entry = gt.store.audit().entry(size).unwrap().unwrap();
    let resumes = Checkpoint {
        node: gt.id.clone(),
        size,
        head: entry.hash,
        time_ms: gt.audit.clock.now_ms(),
    };
    crate::audit::recovery::Recovery {
        node: gt.id.clone(),
        resumes_signed: resumes.clone().sign(&gt.audit.signing),
        resumes,
        time_ms: gt.audit.clock.now_ms(),
        reason: "retention".into(),
        cause: crate::wire::ResumeCause::Retention,
    }
    .sign(&gt.audit.signing)
}

#[tokio::test]
async fn a_peer_countersigns_pruning_only_of_entries_it_saw_long_enough_ago() {
    let (sandbox, clock) = sandbox_and_clock().await;
    let gt = sandbox.components("gt").unwrap();
    let hn = sandbox.components("hn").unwrap();
    let gt_id = NodeId::parse("gt").unwrap();
    for _ in 0..4 {
        gt.audit.record(entry("gt")).await.unwrap();
    }
    let cp = gt.audit.checkpoint_now().await.unwrap().unwrap();
    let witnessed = Checkpoint::decode(&cp.body).unwrap().size;
    hn.audit.witness(&gt_id, cp).await.unwrap();
    // A day short of the minimum retention: refused, and on record.
    clock.advance(DAY * (crate::limits::MIN_AUDIT_RETENTION_DAYS - 1));
    let young = hn
        .audit
        .witness_recovery(&gt_id, retention_statement(&gt, 3))
        .await
        .unwrap_err();
    assert!(young.to_string().contains("never pruned"), "{young}");
    assert_eq!(actions(&hn).last().unwrap(), "checkpoint_rejected");
    // Two days later: countersigned, and on record at hn.
    clock.advance(DAY * 2);
    let w = hn
        .audit
        .witness_recovery(&gt_id, retention_statement(&gt, 3))
        .await
        .unwrap();
    let opened = crate::audit::recovery::open_witness(&w, &hn.audit.key_book()).unwrap();
    assert_eq!(opened.witness.as_str(), "hn");
    assert_eq!(actions(&hn).last().unwrap(), "retention_witnessed");
    // Beyond what hn ever witnessed: refused.
    for _ in 0..2 {
        gt.audit.record(entry("gt")).await.unwrap();
    }
    let unseen = hn
        .audit
        .witness_recovery(&gt_id, retention_statement(&gt, witnessed + 1))
        .await
        .unwrap_err();
    assert!(unseen.to_string().contains("never witnessed"), "{unseen}");
}

#[tokio::test]
async fn a_prune_no_peer_countersigns_removes_nothing() {
    let (sandbox, clock) = sandbox_and_clock().await;
    let gt = sandbox.components("gt").unwrap();
    for _ in 0..3 {
        gt.audit.record(entry("gt")).await.unwrap();
    }
    // No checkpoint made long enough ago: nothing is even prunable.
    let later = crate::clock::now_ms() + 60_000;
    assert_eq!(gt.audit.prune(later).await.unwrap(), 0);
    gt.audit.checkpoint_now().await.unwrap().unwrap();
    clock.advance(DAY * 40);
    // Prunable now, but hn is not running: nobody countersigns.
    let e = gt.audit.prune(later).await.unwrap_err();
    assert!(
        matches!(e, super::PruneError::NotCountersigned { upto: 2, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("the entries stay"), "{e}");
    assert!(gt.store.audit().anchor().unwrap().is_none());
    assert_eq!(gt.store.audit().entries(0, 100).unwrap().len(), 3);
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
