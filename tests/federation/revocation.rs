//! Revocation without a restart: a member's CA revokes a certificate, the
//! CRL is written where a running node's configuration names it, and from
//! then on that certificate is refused at the handshake on the listener it
//! was for, while everyone else carries on. Real nodes, real mTLS, real
//! CRLs made by `enlace cert revoke`'s code.

use crate::common;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::certs::{self, der, edit_config, identity, pull_as, read_issued, refused};
use common::{eventually, list_all, publish};
use enlace::records::model::NodeId;
use enlace::testing::Sandbox;
use enlace::trust::crl;
use enlace::trust::pki::{self, Profile};
use enlace::trust::reload::ReloadOutcome;
use enlace::trust::tls;
use enlace::wire::pb::v1 as pb;

/// A CRL of `ca` at `out` that lists a throwaway certificate, so the file
/// exists (and is valid) before anything of interest is revoked.
fn first_crl(ca: &pki::Issued, profile: &Profile, out: &Path) {
    let throwaway = pki::issue(&ca.cert_pem, &ca.key_pem, profile, 1).unwrap();
    let r = crl::revoke(
        &ca.cert_pem,
        &ca.key_pem,
        &der(&throwaway.cert_pem),
        None,
        rcgen::RevocationReason::Superseded,
        30,
    )
    .unwrap();
    std::fs::write(out, r.crl_pem).unwrap();
}

/// Revokes `cert` into the CRL at `path`, replacing the file atomically as
/// an operator's `enlace cert revoke --crl` does.
fn revoke_into(ca: &pki::Issued, cert: &pki::Issued, path: &Path) -> crl::Revocation {
    let existing = std::fs::read_to_string(path).unwrap();
    let r = crl::revoke(
        &ca.cert_pem,
        &ca.key_pem,
        &der(&cert.cert_pem),
        Some(&existing),
        rcgen::RevocationReason::KeyCompromise,
        30,
    )
    .unwrap();
    enlace::records::crypto::replace_file(path, r.crl_pem.as_bytes(), false).unwrap();
    r
}

async fn next_reload(
    outcomes: &mut tokio::sync::broadcast::Receiver<ReloadOutcome>,
    file: &str,
) -> ReloadOutcome {
    tokio::time::timeout(common::DEADLINE, async {
        loop {
            let o = outcomes.recv().await.expect("reload outcomes");
            if o.changed.iter().any(|c| c.contains(file)) {
                return o;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no reload picked up {file}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_peer_is_refused_without_a_restart_and_the_others_carry_on() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn", "sv"])
        .await
        .unwrap();
    let gt_dir = fed.member("gt").unwrap().dir.clone();
    let hn_dir = fed.member("hn").unwrap().dir.clone();
    let sv_dir = fed.member("sv").unwrap().dir.clone();
    let hn_ca = read_issued(&hn_dir, "ca.crt", "ca.key");
    let hn_profile = Profile::Node {
        federation: "test-fed".into(),
        node_id: NodeId::parse("hn").unwrap(),
        dns_names: vec!["localhost".into()],
        ip_addresses: vec![],
    };
    let crl_path = gt_dir.join("hn.crl");
    first_crl(&hn_ca, &hn_profile, &crl_path);
    edit_config(
        &fed.member("gt").unwrap().config_path(),
        "peer_crls = [\"hn.crl\"]\n",
        "[reload]\npoll_ms = 100\n",
    );

    let gt = fed.start("gt").await.unwrap();
    let hn = fed.start("hn").await.unwrap();
    let sv = fed.start("sv").await.unwrap();
    let roster = fed.roster().unwrap();
    let gt_port = fed.member("gt").unwrap().peer_addr.port();
    let hn_addr = fed.member("hn").unwrap().peer_addr;
    let hn_cert = read_issued(&hn_dir, "node.crt", "node.key");
    let sv_cert = read_issued(&sv_dir, "node.crt", "node.key");

    // Before: hn is served, and replication reaches both peers.
    pull_as(&roster, &identity(&hn_cert), "gt", gt_port)
        .await
        .expect("hn is a member in good standing");
    let mut gt_client = fed.client("gt").await.unwrap();
    let sv_client = fed.client("sv").await.unwrap();
    let first = publish(&mut gt_client, "antes de la revocación", &[]).await;
    eventually("gt's first record at sv", || async {
        let mut c = sv_client.clone();
        list_all(&mut c)
            .await
            .into_iter()
            .find(|r| r.record_id == first.record_id)
    })
    .await;

    // hn's CA revokes hn's node certificate; the CRL lands where gt's
    // configuration names it. gt is not restarted.
    let mut outcomes = gt.components.trust.subscribe();
    let revocation = revoke_into(&hn_ca, &hn_cert, &crl_path);
    assert_eq!(revocation.number, 2);
    assert_eq!(revocation.serial, certs::serial(&hn_cert.cert_pem));
    let outcome = next_reload(&mut outcomes, "hn.crl").await;
    assert_eq!(
        outcome.old_certificate, outcome.new_certificate,
        "gt's own certificate did not change"
    );

    // hn's live pull stream from gt, established before, is cut at once,
    // and so is gt's own stream from hn: neither waits for a reconnect.
    eventually("hn's established connection to gt is cut", || async {
        (gt.components
            .metrics
            .peer_handshakes
            .cut
            .load(Ordering::Relaxed)
            >= 1)
            .then_some(())
    })
    .await;
    let (_, text) = common::scrape(&fed, "gt", "/metrics").await.unwrap();
    assert!(
        common::sample(
            &common::samples(&text),
            "enlace_tls_connections_cut_total{listener=\"peer\""
        ) >= Some(1.0),
        "the cut is counted"
    );
    let gt_peers = gt_client.clone();
    eventually("gt's replication from hn is no longer connected", || {
        let mut c = gt_peers.clone();
        async move {
            let peers = c
                .list_peers(pb::ListPeersRequest {})
                .await
                .ok()?
                .into_inner();
            let hn = peers.peers.into_iter().find(|p| p.node_id == "hn")?;
            (!hn.connected).then_some(())
        }
    })
    .await;

    // hn's new handshakes with gt are refused, and counted.
    let before = refused(&gt.components.metrics.peer_handshakes);
    // NOTE: in TLS 1.3 the client may finish its side of the handshake
    // before the server's alert arrives, so what the client sees (the
    // alert, or a closed connection) depends on timing; the server's
    // count and the controls around it are what show the cause.
    pull_as(&roster, &identity(&hn_cert), "gt", gt_port)
        .await
        .expect_err("a revoked certificate is refused");
    eventually("the refusal is counted", || async {
        (refused(&gt.components.metrics.peer_handshakes) > before).then_some(())
    })
    .await;

    // gt's outgoing connections to hn refuse hn's certificate too.
    let gt_to_hn = gt
        .components
        .trust
        .peer_client(&NodeId::parse("hn").unwrap())
        .current()
        .unwrap();
    let err = certs::server_serial(gt_to_hn, hn_addr)
        .await
        .expect_err("gt refuses hn's server certificate");
    assert!(err.to_lowercase().contains("revoked"), "{err}");

    // sv is unaffected: new handshakes work, and replication carries on.
    pull_as(&roster, &identity(&sv_cert), "gt", gt_port)
        .await
        .expect("sv is still served");
    let second = publish(&mut gt_client, "después de la revocación", &[]).await;
    eventually("gt's second record at sv", || async {
        let mut c = sv_client.clone();
        list_all(&mut c)
            .await
            .into_iter()
            .find(|r| r.record_id == second.record_id)
    })
    .await;
    // ...and not at hn, whose stream was cut before it was published.
    assert!(
        hn.components
            .store
            .records()
            .get_by_id(&second.record_id)
            .unwrap()
            .is_none(),
        "a revoked member receives nothing published after its revocation"
    );

    sv.stop().await.unwrap();
    hn.stop().await.unwrap();
    gt.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_agency_client_is_refused_on_the_agency_listener() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt"]).await.unwrap();
    let dir = fed.member("gt").unwrap().dir.clone();
    let agency_addr = fed.member("gt").unwrap().agency_addr;
    let agency_ca = read_issued(&dir, "agency-ca.crt", "agency-ca.key");
    let crl_path = dir.join("agency.crl");
    first_crl(
        &agency_ca,
        &Profile::Client {
            name: "retired".into(),
        },
        &crl_path,
    );
    edit_config(
        &fed.member("gt").unwrap().config_path(),
        "agency_client_crls = [\"agency.crl\"]\n",
        "[reload]\npoll_ms = 100\n",
    );
    // A second client of the same agency CA, which stays in good standing.
    let colleague = pki::issue(
        &agency_ca.cert_pem,
        &agency_ca.key_pem,
        &Profile::Client {
            name: "gt-colleague".into(),
        },
        1,
    )
    .unwrap();
    let gt = fed.start("gt").await.unwrap();
    let server_ca = vec![der(&std::fs::read_to_string(dir.join("ca.crt")).unwrap())];

    type Client = enlace::wire::pb::v1::agency_client::AgencyClient<tonic::transport::Channel>;
    async fn connect(
        ca: &[rustls_pki_types::CertificateDer<'static>],
        who: &enlace::trust::tls::TlsIdentity,
        addr: std::net::SocketAddr,
    ) -> Result<Client, String> {
        let config = tls::agency_client_config(ca, who).unwrap();
        let channel = tonic::transport::Endpoint::from_shared(format!("https://{addr}"))
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .connect_with_connector(tls::connector(
                config,
                "127.0.0.1".into(),
                addr.port(),
                tls::server_name("127.0.0.1").unwrap(),
            ))
            .await
            .map_err(|e| enlace::service::client::error_chain(&e))?;
        Ok(Client::new(channel))
    }
    async fn list_with(client: &mut Client) -> Result<(), String> {
        client
            .list_records(pb::ListRecordsRequest::default())
            .await
            .map(|_| ())
            .map_err(|s| enlace::service::client::error_chain(&s))
    }
    async fn list(
        ca: &[rustls_pki_types::CertificateDer<'static>],
        who: &enlace::trust::tls::TlsIdentity,
        addr: std::net::SocketAddr,
    ) -> Result<(), String> {
        list_with(&mut connect(ca, who, addr).await?).await
    }

    let operator = read_issued(&dir, "client.crt", "client.key");
    // A connection made before the revocation, then left idle: nothing is
    // sent on it after, so only the reload itself can end it.
    let mut idle = connect(&server_ca, &identity(&operator), agency_addr)
        .await
        .unwrap();
    list_with(&mut idle).await.expect("the operator is served");

    let mut outcomes = gt.components.trust.subscribe();
    revoke_into(&agency_ca, &operator, &crl_path);
    next_reload(&mut outcomes, "agency.crl").await;
    eventually(
        "the idle connection is cut by the reload itself",
        || async {
            (gt.components
                .metrics
                .agency_handshakes
                .cut
                .load(Ordering::Relaxed)
                >= 1)
                .then_some(())
        },
    )
    .await;

    let before = refused(&gt.components.metrics.agency_handshakes);
    list(&server_ca, &identity(&operator), agency_addr)
        .await
        .expect_err("a revoked agency client is refused");
    eventually("the refusal is counted", || async {
        (refused(&gt.components.metrics.agency_handshakes) > before).then_some(())
    })
    .await;
    list_with(&mut idle)
        .await
        .expect_err("the idle client's connection is gone, and it cannot make another");
    list(&server_ca, &identity(&colleague), agency_addr)
        .await
        .expect("another client of the same CA is still served");
    gt.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_peer_certificate_is_refused_and_counted() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    let roster = fed.roster().unwrap();
    let gt_port = fed.member("gt").unwrap().peer_addr.port();
    let hn_ca = read_issued(&fed.member("hn").unwrap().dir, "ca.crt", "ca.key");
    let now = time::OffsetDateTime::now_utc();
    let expired = pki::issue_with_validity(
        &hn_ca.cert_pem,
        &hn_ca.key_pem,
        &Profile::Node {
            federation: "test-fed".into(),
            node_id: NodeId::parse("hn").unwrap(),
            dns_names: vec!["localhost".into()],
            ip_addresses: vec![],
        },
        now - time::Duration::days(30),
        now - time::Duration::days(1),
    )
    .unwrap();
    let before = refused(&gt.components.metrics.peer_handshakes);
    pull_as(&roster, &identity(&expired), "gt", gt_port)
        .await
        .expect_err("an expired certificate is refused");
    eventually("the refusal is counted", || async {
        (refused(&gt.components.metrics.peer_handshakes) > before).then_some(())
    })
    .await;
    gt.stop().await.unwrap();
}
