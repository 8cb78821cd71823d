//! Black-box tests of `enlace doctor` and `enlace cert inspect`: the built
//! binary against sandbox federations, with peers running in-process on
//! real sockets, and with the faults operators actually meet — a key file
//! others can read, an expired certificate, a certificate whose names do
//! not match the roster endpoint, peers that are down or silent.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::eventually;
use enlace::doctor::{self, Status};
use enlace::records::model::NodeId;
use enlace::testing::Sandbox;
use enlace::trust::pki::{self, Profile};
use time::OffsetDateTime;

fn enlace() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_enlace"));
    c.env_remove("RUST_LOG");
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn doctor_sync(config: &Path, json: bool) -> Output {
    let mut c = enlace();
    c.args(["doctor", "--config"]).arg(config);
    if json {
        c.arg("--json");
    }
    c.output().expect("run enlace doctor")
}

/// Runs the binary off the runtime's workers, so that the nodes this test
/// runs in-process keep serving meanwhile.
async fn doctor(config: &Path, json: bool) -> Output {
    let config = config.to_owned();
    tokio::task::spawn_blocking(move || doctor_sync(&config, json))
        .await
        .expect("doctor task")
}

/// The output lines of one check, e.g. `lines(&out, "FAIL", "cert-san")`.
fn lines<'a>(stdout: &'a str, status: &str, check: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .filter(|l| {
            let mut words = l.split_whitespace();
            words.next() == Some(status) && words.next() == Some(check)
        })
        .collect()
}

/// Replaces member `id`'s node certificate (and key) with one issued by its
/// own federation CA, valid from `from` until `until`.
fn reissue_node_cert(
    fed: &Sandbox,
    id: &str,
    profile: Profile,
    from: OffsetDateTime,
    until: OffsetDateTime,
) {
    let dir = &fed.member(id).unwrap().dir;
    let ca_cert = std::fs::read_to_string(dir.join("ca.crt")).unwrap();
    let ca_key = std::fs::read_to_string(dir.join("ca.key")).unwrap();
    let issued = pki::issue_with_validity(&ca_cert, &ca_key, &profile, from, until).unwrap();
    enlace::records::crypto::write_public_file(
        &dir.join("node.crt"),
        issued.cert_pem.as_bytes(),
        true,
    )
    .unwrap();
    enlace::records::crypto::write_private_file(
        &dir.join("node.key"),
        issued.key_pem.as_bytes(),
        true,
    )
    .unwrap();
}

fn node_profile(fed: &Sandbox, id: &str, dns: &[&str], ips: &[&str]) -> Profile {
    Profile::Node {
        federation: fed.federation.clone(),
        node_id: NodeId::parse(id).unwrap(),
        dns_names: dns.iter().map(|d| d.to_string()).collect(),
        ip_addresses: ips.iter().map(|ip| ip.parse().unwrap()).collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_member_with_running_peers_passes() {
    let mut fed = Sandbox::create("test-fed", &["gt", "hn", "sv"])
        .await
        .unwrap();
    let hn = fed.start("hn").await.unwrap();
    let sv = fed.start("sv").await.unwrap();
    let config = fed.member("gt").unwrap().config_path();

    // The library entry point first, until both peers report serving (they
    // were started a moment ago).
    eventually("hn and sv to answer the peer check", || {
        let config = config.clone();
        async move {
            let d = doctor::diagnose(&config, None, |_| {}).await;
            let peers: Vec<_> = d.checks.iter().filter(|c| c.check == "peer").collect();
            (peers.len() == 2 && peers.iter().all(|c| c.status == Status::Ok)).then_some(())
        }
    })
    .await;

    let out = doctor(&config, false).await;
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "doctor failed:\n{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(!stdout.contains("FAIL "), "{stdout}");
    for check in [
        "config",
        "key-file",
        "cert-chain",
        "cert-identity",
        "cert-san",
        "cert-eku",
        "roster",
    ] {
        assert!(
            !lines(&stdout, "ok", check).is_empty(),
            "no ok {check} in:\n{stdout}"
        );
    }
    assert_eq!(
        lines(&stdout, "ok", "key-file").len(),
        5,
        "tls, signing, matching, identifiers and OPRF keys:\n{stdout}"
    );
    let peers = lines(&stdout, "ok", "peer");
    assert_eq!(peers.len(), 2, "{stdout}");
    assert!(
        peers[0].contains("hn at 127.0.0.1:") && peers[1].contains("sv at 127.0.0.1:"),
        "{stdout}"
    );
    assert!(stdout.contains("spiffe://test-fed/node/gt"), "{stdout}");
    // Sandbox certificates live a year: nothing to warn about.
    assert!(!lines(&stdout, "ok", "cert-expiry").is_empty(), "{stdout}");
    assert!(lines(&stdout, "warn", "cert-expiry").is_empty(), "{stdout}");
    assert!(stdout.contains("days left"), "{stdout}");

    let out = doctor(&config, true).await;
    assert!(out.status.success(), "{}", text(&out.stdout));
    let checks: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    assert!(checks.len() >= 15, "{checks:?}");
    for c in &checks {
        assert!(c["check"].is_string() && c["message"].is_string(), "{c}");
        assert!(
            ["ok", "warn"].contains(&c["status"].as_str().unwrap()),
            "{c}"
        );
    }
    assert_eq!(checks.iter().filter(|c| c["check"] == "peer").count(), 2);

    hn.stop().await.unwrap();
    sv.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_others_can_read_fails_with_the_chmod_that_fixes_it() {
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let hn = fed.start("hn").await.unwrap();
    let member = fed.member("gt").unwrap();
    let key = member.dir.join("signing.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let out = doctor(&member.config_path(), false).await;
    let stdout = text(&out.stdout);
    // The configuration itself is refused (a node would not start): 64.
    assert_eq!(
        out.status.code(),
        Some(64),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    let fails = lines(&stdout, "FAIL", "key-file");
    assert_eq!(fails.len(), 1, "{stdout}");
    assert!(
        fails[0].contains("signing.key") && fails[0].contains("mode 0644"),
        "{stdout}"
    );
    assert!(
        fails[0].contains(&format!("chmod 600 {}", key.display())),
        "{stdout}"
    );
    assert!(!lines(&stdout, "FAIL", "config").is_empty(), "{stdout}");
    // The rest was still examined from the raw configuration.
    assert_eq!(lines(&stdout, "ok", "key-file").len(), 4, "{stdout}");
    assert!(!lines(&stdout, "ok", "cert-chain").is_empty(), "{stdout}");
    assert!(
        text(&out.stderr).contains("does not load"),
        "{}",
        text(&out.stderr)
    );
    // The loose key does not hide the checks that need the loaded
    // configuration: the peer is still dialled.
    assert!(
        stdout
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some("peer") && l.contains("hn")),
        "{stdout}"
    );
    hn.stop().await.unwrap();
}

#[tokio::test]
async fn an_expired_node_certificate_fails() {
    let fed = Sandbox::create("test-fed", &["gt"]).await.unwrap();
    let now = OffsetDateTime::now_utc();
    let day = time::Duration::days(1);
    reissue_node_cert(
        &fed,
        "gt",
        node_profile(&fed, "gt", &["localhost"], &["127.0.0.1"]),
        now - 400 * day,
        now - 5 * day,
    );
    let out = doctor(&fed.member("gt").unwrap().config_path(), false).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(64), "{stdout}");
    let fails = lines(&stdout, "FAIL", "cert-expiry");
    assert_eq!(fails.len(), 1, "{stdout}");
    assert!(
        fails[0].contains("expired on") && fails[0].contains("5 days ago"),
        "{stdout}"
    );
    // Expiry is reported once: the chain itself is sound.
    let chain = lines(&stdout, "ok", "cert-chain");
    assert_eq!(chain.len(), 1, "{stdout}");
    assert!(chain[0].contains("within its validity period"), "{stdout}");
}

#[tokio::test]
async fn a_certificate_that_does_not_name_the_roster_endpoint_is_a_san_mismatch() {
    let fed = Sandbox::create("test-fed", &["gt"]).await.unwrap();
    let now = OffsetDateTime::now_utc();
    reissue_node_cert(
        &fed,
        "gt",
        node_profile(&fed, "gt", &["elsewhere.example"], &[]),
        now - time::Duration::hours(1),
        now + time::Duration::days(365),
    );
    let out = doctor(&fed.member("gt").unwrap().config_path(), false).await;
    let stdout = text(&out.stdout);
    // The node would start, and every peer would refuse it: exit 1.
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    let fails = lines(&stdout, "FAIL", "cert-san");
    assert_eq!(fails.len(), 1, "{stdout}");
    let endpoint = fed.member("gt").unwrap().peer_addr;
    for part in [
        "SAN mismatch",
        "DNS:elsewhere.example",
        &endpoint.to_string(),
        "--ip 127.0.0.1",
    ] {
        assert!(fails[0].contains(part), "{part:?} missing in:\n{stdout}");
    }
    // Nothing else is wrong with it.
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("FAIL")).count(),
        1,
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_that_are_down_or_silent_are_unreachable() {
    let mut fed = Sandbox::create("test-fed", &["gt", "hn", "sv", "cr"])
        .await
        .unwrap();
    let hn = fed.start("hn").await.unwrap();
    // sv is down: nothing listens at its endpoint.
    drop(fed.take_listeners("sv"));
    // cr is silent: its port accepts TCP connections (the sandbox holds the
    // bound listener) but nothing ever answers the TLS handshake.
    let config = fed.member("gt").unwrap().config_path();
    eventually("hn to answer the peer check", || {
        let config = config.clone();
        async move {
            let d = doctor::diagnose(&config, None, |_| {}).await;
            d.checks
                .iter()
                .any(|c| {
                    c.check == "peer" && c.status == Status::Ok && c.message.starts_with("hn ")
                })
                .then_some(())
        }
    })
    .await;

    let started = Instant::now();
    let out = doctor(&config, false).await;
    let took = started.elapsed();
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert_eq!(lines(&stdout, "ok", "peer").len(), 1, "{stdout}");
    let fails = lines(&stdout, "FAIL", "peer");
    assert_eq!(fails.len(), 2, "{stdout}");
    assert!(
        fails[0].contains("cr at 127.0.0.1:") && fails[0].contains("unreachable:"),
        "{stdout}"
    );
    assert!(
        fails[1].contains("sv at") && fails[1].contains("unreachable:"),
        "{stdout}"
    );
    assert!(fails[1].to_lowercase().contains("refused"), "{stdout}");
    // Peers are dialled together, each within the 5 s limit.
    assert!(took < Duration::from_secs(20), "doctor took {took:?}");

    hn.stop().await.unwrap();
}

#[tokio::test]
async fn cert_inspect_shows_the_spiffe_id_and_the_days_left() {
    let fed = Sandbox::create("test-fed", &["gt"]).await.unwrap();
    let cert = fed.member("gt").unwrap().dir.join("node.crt");
    let out = enlace()
        .args(["cert", "inspect"])
        .arg(&cert)
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    for part in [
        "URI:spiffe://test-fed/node/gt",
        "DNS:localhost",
        "IP:127.0.0.1",
        "CN=gt federation CA",
        "ECDSA P-256",
        "CA:FALSE",
        "serverAuth, clientAuth",
        "SHA-256",
    ] {
        assert!(stdout.contains(part), "{part:?} missing in:\n{stdout}");
    }
    // Sandbox certificates are issued for a year.
    assert!(
        stdout.contains("(364 days left)") || stdout.contains("(365 days left)"),
        "{stdout}"
    );

    let out = enlace()
        .args(["cert", "inspect", "--json"])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(v["san"]["uri"][0], "spiffe://test-fed/node/gt");
    assert!(
        (364..=365).contains(&v["days_left"].as_i64().unwrap()),
        "{v}"
    );
    assert_eq!(
        v["extended_key_usage"],
        serde_json::json!(["serverAuth", "clientAuth"])
    );

    // A file with no certificate in it is an error.
    let out = enlace()
        .args(["cert", "inspect"])
        .arg(fed.member("gt").unwrap().config_path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no PEM certificate"),
        "{}",
        text(&out.stderr)
    );
}

/// Revokes `cert` of member `id` into `crl` (under `id`'s directory), with
/// the next update `days` ahead.
fn revoke(fed: &Sandbox, id: &str, cert: &Path, crl: &str, days: u32) {
    let dir = fed.member(id).unwrap().dir.clone();
    let out = enlace()
        .args(["cert", "revoke", "--ca-cert"])
        .arg(dir.join("ca.crt"))
        .arg("--ca-key")
        .arg(dir.join("ca.key"))
        .arg("--cert")
        .arg(cert)
        .arg("--crl")
        .arg(dir.join(crl))
        .args(["--days", &days.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[tokio::test]
async fn crls_are_checked_for_freshness_and_for_the_node_s_own_certificate() {
    let fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let gt = fed.member("gt").unwrap();
    let hn_dir = fed.member("hn").unwrap().dir.clone();
    // A fresh CRL of hn's CA, revoking an old hn certificate.
    let old = hn_dir.join("old.crt");
    std::fs::copy(hn_dir.join("node.crt"), &old).unwrap();
    revoke(&fed, "hn", &old, "hn.crl", 30);
    // gt's own CA revokes gt's own certificate: every peer refuses it.
    revoke(&fed, "gt", &gt.dir.join("node.crt"), "gt.crl", 30);
    common::certs::edit_config(
        &gt.config_path(),
        &format!(
            "peer_crls = [\"{}\", \"gt.crl\"]\n",
            hn_dir.join("hn.crl").display()
        ),
        "",
    );
    let out = doctor(&gt.config_path(), false).await;
    let stdout = text(&out.stdout);
    let ok = lines(&stdout, "ok", "crl");
    assert_eq!(ok.len(), 1, "{stdout}");
    assert!(
        ok[0].contains("hn.crl") && ok[0].contains("1 revoked"),
        "{stdout}"
    );
    let fail = lines(&stdout, "FAIL", "crl");
    assert_eq!(fail.len(), 1, "{stdout}");
    assert!(
        fail[0].contains("this node's own certificate") && fail[0].contains("is revoked"),
        "{stdout}"
    );
    assert_ne!(out.status.code(), Some(0), "{stdout}");

    // A stale CRL (its next update passed yesterday): still used, but a
    // warning that says what to do.
    let fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let gt = fed.member("gt").unwrap();
    let hn_dir = fed.member("hn").unwrap().dir.clone();
    let now = OffsetDateTime::now_utc();
    let key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(hn_dir.join("ca.key")).unwrap()).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(
        &std::fs::read_to_string(hn_dir.join("ca.crt")).unwrap(),
        key,
    )
    .unwrap();
    let stale = rcgen::CertificateRevocationListParams {
        this_update: now - time::Duration::days(31),
        next_update: now - time::Duration::days(1),
        crl_number: rcgen::SerialNumber::from(7u64),
        issuing_distribution_point: None,
        revoked_certs: Vec::new(),
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    }
    .signed_by(&issuer)
    .unwrap();
    std::fs::write(hn_dir.join("hn.crl"), stale.pem().unwrap()).unwrap();
    common::certs::edit_config(
        &gt.config_path(),
        &format!("peer_crls = [\"{}\"]\n", hn_dir.join("hn.crl").display()),
        "",
    );
    let out = doctor(&gt.config_path(), false).await;
    let stdout = text(&out.stdout);
    let warn = lines(&stdout, "warn", "crl");
    assert_eq!(warn.len(), 1, "{stdout}");
    assert!(
        warn[0].contains("stale since") && warn[0].contains("publish a fresh CRL"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_opens_a_stopped_node_s_store_and_says_what_it_holds() {
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    drop(fed.take_listeners("hn"));
    let config = fed.member("gt").unwrap().config_path();
    let store = |d: &doctor::Diagnosis| {
        d.checks
            .iter()
            .find(|c| c.check == "store")
            .map(|c| (c.status, c.message.clone()))
            .expect("a store check")
    };
    let gt = fed.start("gt").await.unwrap();
    gt.components.publisher.declare_new_log();
    let mut c = fed.client("gt").await.unwrap();
    common::publish(&mut c, "uno", &[]).await;
    common::publish(&mut c, "dos", &[]).await;
    // And its match filter: three records.
    common::eventually("gt's filter published", || async {
        gt.components
            .store
            .filters()
            .own_complete(1)
            .ok()
            .filter(|c| *c)
    })
    .await;
    let (status, said) = store(&doctor::diagnose(&config, None, |_| {}).await);
    assert_eq!(status, Status::Ok, "{said}");
    assert!(said.contains("in use by the running node"), "{said}");
    gt.stop().await.unwrap();

    let (status, said) = store(&doctor::diagnose(&config, None, |_| {}).await);
    assert_eq!(status, Status::Ok, "{said}");
    assert!(said.contains("own log up to seq 3"), "{said}");

    // A mistyped --data-dir that exists but holds no store.
    let empty = fed.dir.join("gt").join("elsewhere");
    std::fs::create_dir(&empty).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let (status, said) = store(&doctor::diagnose(&config, Some(&empty), |_| {}).await);
    assert_eq!(status, Status::Warn, "{said}");
    assert!(said.contains("holds no store"), "{said}");
    assert!(!empty.join("db").exists(), "doctor created nothing");

    // A damaged record log fails, with the remedy.
    let log = fed.member("gt").unwrap().data_dir().join("records.log");
    let mut bytes = std::fs::read(&log).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&log, bytes).unwrap();
    let (status, said) = store(&doctor::diagnose(&config, None, |_| {}).await);
    assert_eq!(status, Status::Fail, "{said}");
    assert!(
        said.contains("store is corrupt") && said.contains("enlace node recover"),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_roster_version_that_expires_within_30_days_is_a_warning() {
    common::init_tracing();
    let fed = Sandbox::create("test-fed", &["gt", "hn", "sv"])
        .await
        .unwrap();
    let config = fed.member("gt").unwrap().config_path();
    let roster_checks = |d: &doctor::Diagnosis| -> Vec<(Status, String)> {
        d.checks
            .iter()
            .filter(|c| c.check == "roster")
            .map(|c| (c.status, c.message.clone()))
            .collect()
    };
    let fresh = doctor::diagnose(&config, None, |_| {}).await;
    assert!(
        roster_checks(&fresh).iter().all(|(s, _)| *s == Status::Ok),
        "{:?}",
        roster_checks(&fresh)
    );

    // Version 1 again, now expiring in ten days.
    let path = fed.dir.join("federation.toml");
    let soon = (OffsetDateTime::now_utc() + time::Duration::days(10))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        "federation = \"test-fed\"\n",
        &format!("federation = \"test-fed\"\nexpires = \"{soon}\"\n"),
        1,
    );
    assert!(text.contains("expires = "), "{text}");
    std::fs::write(&path, text).unwrap();
    fed.sign_roster().unwrap();
    let soon = doctor::diagnose(&config, None, |_| {}).await;
    let checks = roster_checks(&soon);
    assert!(
        checks.iter().any(|(s, m)| *s == Status::Warn
            && (m.contains("expires in 9 days") || m.contains("expires in 10 days"))),
        "{checks:?}"
    );
}
