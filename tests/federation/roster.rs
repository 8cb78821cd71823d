//! The roster chain on real nodes: a version adopted from the chain
//! directory is persisted before use and never given up, and a version
//! that does not carry its approvals is refused with the reason.

use crate::common;

use enlace::testing::Sandbox;
use enlace::trust::chain::dir::{self, Access};
use enlace::trust::reload::{ReloadError, Trigger};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_version_is_persisted_kept_across_restarts_and_never_rolled_back() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn", "sv"])
        .await
        .unwrap();
    let gt = fed.start("gt").await.unwrap();
    assert_eq!(gt.components.trust.roster().position.version, 1);
    let own = dir::adopted_dir(&fed.member("gt").unwrap().data_dir());
    assert!(
        own.join("1.roster").exists(),
        "version 1 persisted at start"
    );

    // Version 2 (same members, new expiry) approved by gt and sv.
    let v2 = fed.next_roster_version(&["gt", "sv"]).unwrap();
    gt.components.trust.reload(Trigger::Request).unwrap();
    assert_eq!(
        gt.components.trust.roster().position.hash,
        v2.version.hash()
    );
    assert!(own.join("2.roster").exists(), "version 2 persisted");

    // The operator's copy disappears: a reload keeps version 2 (the
    // node's own copy), and so does a restart.
    std::fs::remove_file(fed.chain_dir().join("2.roster")).unwrap();
    gt.components.trust.reload(Trigger::Request).unwrap();
    assert_eq!(gt.components.trust.roster().position.version, 2);
    gt.stop().await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    assert_eq!(gt.components.trust.roster().position.version, 2);

    // The node's own copy disappears too: the reload refuses to go back.
    std::fs::remove_file(own.join("2.roster")).unwrap();
    let refused = gt.components.trust.reload(Trigger::Request).unwrap_err();
    assert!(
        matches!(
            refused,
            ReloadError::RosterRollback {
                in_force: 2,
                loaded: 1,
                ..
            }
        ),
        "{refused}"
    );
    assert_eq!(gt.components.trust.roster().position.version, 2);
    gt.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_without_a_threshold_is_refused_and_the_roster_in_use_kept() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn", "sv"])
        .await
        .unwrap();
    let gt = fed.start("gt").await.unwrap();
    // One approval of three: below the threshold of 2.
    let weak = fed.next_roster_version(&["hn"]).unwrap();
    let refused = gt.components.trust.reload(Trigger::Request).unwrap_err();
    let text = refused.to_string();
    assert!(
        text.contains("2.roster") || text.contains("version 2"),
        "{text}"
    );
    assert!(text.contains("needs 2"), "{text}");
    assert_eq!(gt.components.trust.roster().position.version, 1);
    // The same member approving twice still counts once.
    let mut doubled = weak.clone();
    doubled.approvals.push(doubled.approvals[0].clone());
    dir::write(&fed.chain_dir(), &doubled, Access::Shared).unwrap();
    assert!(gt.components.trust.reload(Trigger::Request).is_err());
    assert_eq!(gt.components.trust.roster().position.version, 1);
    // A second member's approval brings it in force.
    let mut enough = weak;
    enough.approvals.push(enlace::trust::chain::Approval::sign(
        &fed.governance_key("gt").unwrap(),
        &enough.version.hash(),
    ));
    dir::write(&fed.chain_dir(), &enough, Access::Shared).unwrap();
    gt.components.trust.reload(Trigger::Request).unwrap();
    assert_eq!(gt.components.trust.roster().position.version, 2);
    gt.stop().await.unwrap();
}
