//! The roster in audit checkpoints, on real nodes: every checkpoint names
//! the roster version in force where it was made, a witness refuses one
//! made under a version it knows to be superseded (and puts the refusal on
//! record), and witnesses one made under a newer version than its own.

use crate::common;

use enlace::audit::checkpoint::Stamped;
use enlace::records::model::NodeId;
use enlace::testing::Sandbox;
use enlace::trust::reload::Trigger;
use enlace::wire::pb::v1 as pb;
use enlace::wire::{SignedCheckpoint, Witness};

/// The checkpoint a signed one carries, with its roster.
fn stamped(signed: &SignedCheckpoint) -> Stamped {
    Stamped::decode(&signed.body).expect("a checkpoint body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_under_a_superseded_roster_is_refused_and_one_under_a_newer_is_witnessed() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let (gt_id, hn_id) = (NodeId::parse("gt").unwrap(), NodeId::parse("hn").unwrap());
    // hn stays on version 1: it does not poll its files, and its chain
    // directory holds version 1 only, so that a SIGHUP another test sends
    // this process finds nothing new there either.
    let hn_chain = fed.dir.join("roster-hn");
    std::fs::create_dir_all(&hn_chain).unwrap();
    std::fs::copy(fed.chain_dir().join("1.roster"), hn_chain.join("1.roster")).unwrap();
    let hn_config = fed.member("hn").unwrap().config_path();
    let text = std::fs::read_to_string(&hn_config)
        .unwrap()
        .replace("chain = \"../roster\"", "chain = \"../roster-hn\"");
    std::fs::write(&hn_config, text).unwrap();
    common::certs::edit_config(&hn_config, "", "[reload]\npoll_ms = 0\n");
    let gt = fed.start("gt").await.unwrap();
    let hn = fed.start("hn").await.unwrap();

    // gt adopts version 2; hn is not reloaded.
    let v2 = fed.next_roster_version(&["gt", "hn"]).unwrap();
    gt.components.trust.reload(Trigger::Request).unwrap();
    assert_eq!(gt.components.trust.roster().position.version, 2);
    assert_eq!(hn.components.trust.roster().position.version, 1);

    // hn's log grows (reading it is on record), and hn checkpoints it
    // through its agency API: gt refuses it as superseded.
    let mut h = fed.client("hn").await.unwrap();
    let mut read = h
        .read_audit(pb::ReadAuditRequest {
            after: 0,
            justification: "witness_roster test".into(),
        })
        .await
        .unwrap()
        .into_inner();
    while tokio_stream::StreamExt::next(&mut read).await.is_some() {}
    let answer = h
        .audit_checkpoints(pb::AuditCheckpointsRequest {
            checkpoint_now: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let made = stamped(&SignedCheckpoint::from_pb(
        answer.own.last().cloned().expect("hn's checkpoint"),
    ));
    let hn_roster = made.roster.expect("the checkpoint names its roster");
    assert_eq!(hn_roster.version, 1);
    let size = made.checkpoint.size;
    let at_gt = answer
        .peers
        .iter()
        .find(|p| p.peer == "gt")
        .expect("gt in the answer");
    assert!(
        at_gt
            .refused
            .contains("superseded: made under roster version 1, version 2 is in force here"),
        "{at_gt:?}"
    );
    // gt holds no countersignature of it, and its log says why.
    let (held, _) = gt
        .components
        .audit
        .witnessed(&hn_id, size - 1, 0, 0)
        .unwrap();
    assert!(held.is_empty(), "gt witnessed {held:?}");
    let rejected: Vec<_> = common::audit_log(&gt.components)
        .into_iter()
        .filter(|e| e.action == "checkpoint_rejected")
        .collect();
    assert!(
        rejected.iter().any(|e| e.counterparts == ["hn"]
            && e.result
                .starts_with("superseded: made under roster version 1")),
        "{rejected:?}"
    );

    // gt's checkpoint, under version 2 (newer than hn's own): hn
    // witnesses it.
    let not_witnessed = gt.components.audit.send_checkpoint().await;
    assert!(not_witnessed.is_empty(), "{not_witnessed:?}");
    let (held, _) = hn.components.audit.witnessed(&gt_id, 0, 0, 0).unwrap();
    let under_v2 = held
        .iter()
        .filter_map(|w: &Witness| w.checkpoint.as_ref().map(stamped))
        .filter_map(|s| s.roster)
        .any(|r| r.version == 2 && r.sha256 == v2.version.hash());
    assert!(under_v2, "hn holds no checkpoint of gt under version 2");

    hn.stop().await.unwrap();
    gt.stop().await.unwrap();
}
