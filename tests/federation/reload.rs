//! A node's certificate replaced on disk while it runs: new handshakes
//! present the new certificate, streams opened before keep delivering, a
//! broken file changes nothing, and SIGHUP reloads as a file change does.

use crate::common;

use common::certs::{self, accepted, edit_config, identity, read_issued};
use common::{eventually, list_all, publish};
use enlace::records::model::NodeId;
use enlace::testing::Sandbox;
use enlace::trust::pki;
use enlace::trust::reload::{ReloadOutcome, Trigger};
use enlace::trust::tls;
use enlace::wire::pb::v1 as pb;

async fn next_reload(
    outcomes: &mut tokio::sync::broadcast::Receiver<ReloadOutcome>,
) -> ReloadOutcome {
    tokio::time::timeout(common::DEADLINE, outcomes.recv())
        .await
        .expect("a reload within the deadline")
        .expect("reload outcomes")
}

/// Renews `dir/node.crt` under `dir/ca.crt` (same key) and installs it
/// the way `enlace cert renew` does. Returns the new certificate's serial.
fn renew_node_certificate(dir: &std::path::Path) -> String {
    let ca = read_issued(dir, "ca.crt", "ca.key");
    let old = read_issued(dir, "node.crt", "node.key");
    let renewed = pki::renew(
        &ca.cert_pem,
        &ca.key_pem,
        &old.cert_pem,
        Some(&old.key_pem),
        30,
    )
    .unwrap();
    enlace::records::crypto::replace_file(
        &dir.join("node.crt"),
        renewed.issued.cert_pem.as_bytes(),
        false,
    )
    .unwrap();
    renewed.new_serial
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_certificate_serves_new_handshakes_and_old_streams_survive() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let gt_dir = fed.member("gt").unwrap().dir.clone();
    let hn_dir = fed.member("hn").unwrap().dir.clone();
    edit_config(
        &fed.member("gt").unwrap().config_path(),
        "",
        "[reload]\npoll_ms = 100\n",
    );
    let gt = fed.start("gt").await.unwrap();
    let hn = fed.start("hn").await.unwrap();
    let gt_peer = fed.member("gt").unwrap().peer_addr;
    let gt_agency = fed.member("gt").unwrap().agency_addr;
    let roster = fed.roster().unwrap();
    let old_serial = certs::serial(&std::fs::read_to_string(gt_dir.join("node.crt")).unwrap());
    let hn_identity = identity(&read_issued(&hn_dir, "node.crt", "node.key"));
    let to_gt = || tls::peer_client_config(&roster, &hn_identity, &NodeId::parse("gt").unwrap());
    assert_eq!(
        certs::server_serial(to_gt().unwrap(), gt_peer)
            .await
            .unwrap(),
        old_serial
    );

    // Two live streams opened before the swap: an agency client's watch on
    // gt, and hn's replication stream following gt's log.
    let mut gt_client = fed.client("gt").await.unwrap();
    let hn_client = fed.client("hn").await.unwrap();
    let first = publish(&mut gt_client, "antes del cambio", &[]).await;
    eventually("hn follows gt", || async {
        let mut c = hn_client.clone();
        list_all(&mut c)
            .await
            .into_iter()
            .find(|r| r.record_id == first.record_id)
    })
    .await;
    let mut watch = gt_client
        .clone()
        .watch_records(pb::WatchRecordsRequest {
            after_position: 0,
            origin: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let seen = watch.message().await.unwrap().unwrap();
    assert_eq!(seen.record_id, first.record_id);
    let peer_handshakes = accepted(&gt.components.metrics.peer_handshakes);
    let agency_handshakes = accepted(&gt.components.metrics.agency_handshakes);

    // The certificate is renewed on disk; gt is not restarted.
    let mut outcomes = gt.components.trust.subscribe();
    let new_serial = renew_node_certificate(&gt_dir);
    assert_ne!(new_serial, old_serial);
    let outcome = next_reload(&mut outcomes).await;
    assert_eq!(outcome.trigger, Trigger::FileChange);
    assert!(
        outcome.changed.iter().any(|c| c.starts_with("tls.cert")),
        "{:?}",
        outcome.changed
    );
    assert_eq!(outcome.old_certificate.serial, old_serial);
    assert_eq!(outcome.new_certificate.serial, new_serial);
    assert_ne!(
        outcome.old_certificate.sha256,
        outcome.new_certificate.sha256
    );
    assert!(outcome.restart_needed.is_empty(), "{outcome:?}");

    // The streams opened before the swap keep delivering, on the same
    // connections: no new handshake on either listener.
    let second = publish(&mut gt_client, "después del cambio", &[]).await;
    let delivered = tokio::time::timeout(common::DEADLINE, watch.message())
        .await
        .expect("the watch delivers within the deadline")
        .expect("the watch stream is still up")
        .expect("a record");
    assert_eq!(delivered.record_id, second.record_id);
    eventually("hn's old follow stream delivers the new record", || async {
        let mut c = hn_client.clone();
        list_all(&mut c)
            .await
            .into_iter()
            .find(|r| r.record_id == second.record_id)
    })
    .await;
    assert_eq!(
        accepted(&gt.components.metrics.peer_handshakes),
        peer_handshakes,
        "hn's replication stream was not re-established"
    );
    assert_eq!(
        accepted(&gt.components.metrics.agency_handshakes),
        agency_handshakes,
        "the agency client's connection was not re-established"
    );

    // New handshakes, on both listeners, see the new certificate.
    assert_eq!(
        certs::server_serial(to_gt().unwrap(), gt_peer)
            .await
            .unwrap(),
        new_serial
    );
    let client =
        enlace::service::client::ClientConfig::load(&fed.member("gt").unwrap().client_path())
            .unwrap();
    let agency_config = tls::agency_client_config(&client.ca, &client.identity).unwrap();
    assert_eq!(
        certs::server_serial(agency_config, gt_agency)
            .await
            .unwrap(),
        new_serial
    );
    assert_eq!(
        gt.components.trust.certificate().unwrap().serial,
        new_serial
    );

    hn.stop().await.unwrap();
    gt.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_file_keeps_the_configuration_in_use_and_sighup_reloads() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let gt_dir = fed.member("gt").unwrap().dir.clone();
    let hn_dir = fed.member("hn").unwrap().dir.clone();
    // Polling off: only SIGHUP (or a direct request) reloads.
    edit_config(
        &fed.member("gt").unwrap().config_path(),
        "",
        "[reload]\npoll_ms = 0\n",
    );
    let gt = fed.start("gt").await.unwrap();
    let gt_peer = fed.member("gt").unwrap().peer_addr;
    let roster = fed.roster().unwrap();
    let hn_identity = identity(&read_issued(&hn_dir, "node.crt", "node.key"));
    let to_gt =
        || tls::peer_client_config(&roster, &hn_identity, &NodeId::parse("gt").unwrap()).unwrap();
    let old_serial = certs::server_serial(to_gt(), gt_peer).await.unwrap();

    // A truncated certificate: the reload fails, says which file, and the
    // node goes on serving with what it had.
    let good = std::fs::read_to_string(gt_dir.join("node.crt")).unwrap();
    std::fs::write(gt_dir.join("node.crt"), &good[..good.len() / 2]).unwrap();
    let err = gt
        .components
        .trust
        .reload(Trigger::Request)
        .expect_err("a broken certificate is not loaded");
    let message = err.to_string();
    assert!(message.contains("tls"), "{message}");
    assert!(message.contains("node.crt"), "{message}");
    assert_eq!(
        certs::server_serial(to_gt(), gt_peer).await.unwrap(),
        old_serial,
        "still serving the old certificate"
    );

    // A renewed certificate, then SIGHUP.
    std::fs::write(gt_dir.join("node.crt"), &good).unwrap();
    let mut outcomes = gt.components.trust.subscribe();
    let new_serial = renew_node_certificate(&gt_dir);
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .expect("kill(1) is available");
    assert!(status.success());
    let outcome = next_reload(&mut outcomes).await;
    assert_eq!(outcome.trigger, Trigger::Signal);
    assert_eq!(outcome.new_certificate.serial, new_serial);
    eventually("new handshakes present the renewed certificate", || async {
        (certs::server_serial(to_gt(), gt_peer).await.ok()? == new_serial).then_some(())
    })
    .await;
    // The change is in the audit log: which file, which serials.
    let entry = eventually("the reload in the audit log", || async {
        common::audit_log(&gt.components)
            .into_iter()
            .find(|e| e.action == "config_changed")
    })
    .await;
    assert!(
        entry.ids.iter().any(|f| f.contains("node.crt")),
        "{entry:?}"
    );
    assert!(entry.result.contains(&new_serial), "{entry:?}");
    gt.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_added_and_removed_by_a_roster_reload_are_replicated_or_dropped() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn", "sv"])
        .await
        .unwrap();
    let roster_path = fed.dir.join("federation.toml");
    let full = std::fs::read_to_string(&roster_path).unwrap();
    // Version 1: gt and hn. Version 2 adds sv, approved by all three.
    std::fs::write(&roster_path, Sandbox::without_member(&full, "sv")).unwrap();
    fed.sign_roster().unwrap();
    std::fs::write(&roster_path, &full).unwrap();
    let v2 = fed.next_roster_version(&["gt", "hn", "sv"]).unwrap();
    // sv starts from version 2 (its own chain directory); gt and hn from
    // version 1, not yet knowing sv.
    let full_chain = fed.dir.join("roster-full");
    std::fs::create_dir_all(&full_chain).unwrap();
    for f in ["1.roster", "2.roster"] {
        std::fs::copy(fed.chain_dir().join(f), full_chain.join(f)).unwrap();
    }
    std::fs::remove_file(fed.chain_dir().join("2.roster")).unwrap();
    let sv_config = fed.member("sv").unwrap().config_path();
    let text = std::fs::read_to_string(&sv_config)
        .unwrap()
        .replace("../roster", "../roster-full");
    std::fs::write(&sv_config, text).unwrap();
    for id in ["gt", "hn"] {
        edit_config(
            &fed.member(id).unwrap().config_path(),
            "",
            "[reload]\npoll_ms = 0\n",
        );
    }
    let gt = fed.start("gt").await.unwrap();
    let hn = fed.start("hn").await.unwrap();
    let sv = fed.start("sv").await.unwrap();
    // gt and hn do not know sv yet, so none can confirm its empty log:
    // a new member's first start, before its peers take it in.
    sv.components.publisher.declare_new_log();
    let mut g = fed.client("gt").await.unwrap();
    let mut s = fed.client("sv").await.unwrap();
    let from_sv = publish(&mut s, "desde El Salvador", &[]).await.record_id;
    let from_gt = publish(&mut g, "desde Guatemala", &[]).await.record_id;
    let peers =
        |c: &enlace::wire::pb::v1::agency_client::AgencyClient<tonic::transport::Channel>| {
            let mut c = c.clone();
            async move {
                c.list_peers(pb::ListPeersRequest {})
                    .await
                    .unwrap()
                    .into_inner()
                    .peers
                    .into_iter()
                    .map(|p| p.node_id)
                    .collect::<Vec<_>>()
            }
        };
    assert_eq!(peers(&g).await, vec!["hn"], "gt does not know sv yet");

    // sv joins: version 2 reaches the chain directory; gt and hn reload.
    enlace::trust::chain::dir::write(
        &fed.chain_dir(),
        &v2,
        enlace::trust::chain::dir::Access::Shared,
    )
    .unwrap();
    for n in [&gt, &hn] {
        let outcome = n.components.trust.reload(Trigger::Request).unwrap();
        assert!(
            outcome
                .changed
                .iter()
                .any(|c| c.starts_with("federation.chain")),
            "{outcome:?}"
        );
        assert_eq!(n.components.trust.roster().position.version, 2);
        assert!(outcome.restart_needed.is_empty(), "{outcome:?}");
    }
    eventually("gt holds sv's record, and sv holds gt's", || async {
        let at_gt = list_all(&mut g.clone()).await;
        let at_sv = list_all(&mut s.clone()).await;
        (at_gt.iter().any(|r| r.record_id == from_sv)
            && at_sv.iter().any(|r| r.record_id == from_gt))
        .then_some(())
    })
    .await;
    assert_eq!(peers(&g).await, vec!["hn", "sv"]);

    // hn leaves: version 3, approved by gt and sv; gt stops replicating
    // from hn and forgets its status.
    std::fs::write(&roster_path, Sandbox::without_member(&full, "hn")).unwrap();
    fed.next_roster_version(&["gt", "sv"]).unwrap();
    gt.components.trust.reload(Trigger::Request).unwrap();
    eventually("gt no longer lists hn", || async {
        (peers(&g).await == vec!["sv"]).then_some(())
    })
    .await;
    eventually("both roster changes on record at gt", || async {
        let changed = common::audit_log(&gt.components)
            .into_iter()
            .filter(|e| e.action == "config_changed")
            .count();
        (changed >= 2).then_some(())
    })
    .await;
    for n in [gt, hn, sv] {
        n.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_query_limits_change_with_a_reload() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt"]).await.unwrap();
    let config = fed.member("gt").unwrap().config_path();
    edit_config(&config, "", "[reload]\npoll_ms = 100\n");
    let gt = fed.start("gt").await.unwrap();
    gt.components.publisher.declare_new_log();
    let mut client = fed.client("gt").await.unwrap();
    common::publish(&mut client, "antes del cambio", &[]).await;

    // The operator takes the publisher's privilege away and lowers the
    // query limit: both are in force once the reload says so.
    let mut outcomes = gt.components.trust.subscribe();
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("role = \"admin\""), "sandbox layout changed");
    let text = text
        .replacen("role = \"admin\"", "role = \"reader\"", 1)
        .replacen("[query]\n", "[query]\nmax_per_minute = 7\n", 1);
    std::fs::write(&config, text).unwrap();
    let outcome = next_reload(&mut outcomes).await;
    assert!(outcome.applied(), "{outcome:?}");
    assert_eq!(gt.components.trust.policy().query.max_per_minute, 7);
    let refused = client
        .publish_alert(pb::PublishAlertRequest {
            alert: Some(enlace::testing::sample_alert("después del cambio")),
            ..Default::default()
        })
        .await
        .expect_err("gt-operator is a reader now");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    gt.stop().await.unwrap();
}
