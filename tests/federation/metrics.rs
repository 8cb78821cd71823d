//! The metrics listener of real nodes (in-process, real TLS, real sled):
//! every series of the contract is served with plausible values after
//! records travel and a query runs; a renewed certificate shows at once;
//! a client without a certificate of the agency CA is refused at the
//! handshake; other paths are not found.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use common::{eventually, list_all, publish, sample, samples, scrape};
use enlace::testing::Sandbox;
use enlace::trust::reload::Trigger;
use enlace::trust::tls;
use enlace::wire::pb::v1 as pb;

/// Scrapes `id` until `cond` holds for its samples; returns them.
async fn scrape_until(
    fed: &Sandbox,
    id: &str,
    what: &str,
    cond: impl Fn(&BTreeMap<String, f64>) -> bool,
) -> BTreeMap<String, f64> {
    eventually(what, || async {
        let (status, body) = scrape(fed, id, "/metrics").await.ok()?;
        assert_eq!(status, 200, "{body}");
        let s = samples(&body);
        cond(&s).then_some(s)
    })
    .await
}

fn get(s: &BTreeMap<String, f64>, series: &str) -> f64 {
    sample(s, series).unwrap_or_else(|| panic!("{series} is not served: {s:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_endpoint_serves_every_series() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    let hn = fed.start("hn").await.unwrap();
    let mut gt_client = fed.client("gt").await.unwrap();
    let hn_client = fed.client("hn").await.unwrap();

    const N: usize = 3;
    let mut ids = Vec::new();
    for i in 0..N {
        ids.push(
            publish(&mut gt_client, &format!("alerta {i}"), &[])
                .await
                .record_id,
        );
    }
    eventually("hn holds gt's records", || async {
        let mut c = hn_client.clone();
        let held = list_all(&mut c).await;
        ids.iter()
            .all(|id| held.iter().any(|r| &r.record_id == id))
            .then_some(())
    })
    .await;
    // A query from gt, which hn answers (no hit: hn holds no case),
    // obliviously once gt holds hn's match filter.
    let hn_id = enlace::records::model::NodeId::parse("hn").unwrap();
    eventually("gt holds hn's filter", || async {
        gt.components.cases.filter_epoch(&hn_id).await.ok()?
    })
    .await;
    let answer = gt_client
        .query(pb::QueryRequest {
            selector_values: vec![pb::SelectorValue {
                kind: enlace::records::vocabulary::SelectorKind::Passport.wire(),
                value: "X1234567".into(),
            }],
            justification: "prueba de métricas".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.answers.len(), 1);

    let at_gt = scrape_until(&fed, "gt", "gt counts what it sent", |s| {
        sample(s, "enlace_records_sent_total{peer=\"hn\"").unwrap_or(0.0) >= N as f64
            && sample(s, "enlace_peer_connected{peer=\"hn\"") == Some(1.0)
    })
    .await;
    let at_hn = scrape_until(&fed, "hn", "hn is caught up with gt", |s| {
        sample(s, "enlace_records_received_total{peer=\"gt\"").unwrap_or(0.0) >= N as f64
            && sample(s, "enlace_peer_lag_records{peer=\"gt\"") == Some(0.0)
            && sample(s, "enlace_peer_cursor{peer=\"gt\"").unwrap_or(0.0) >= N as f64
    })
    .await;

    // The README's table of series is the public contract: the node serves
    // every family it lists, and it lists every family the node serves.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let documented: BTreeSet<String> = readme
        .lines()
        .filter(|l| l.starts_with("| `enlace_"))
        .flat_map(|l| {
            l.split('|')
                .nth(1)
                .unwrap_or_default()
                .split(',')
                .map(|n| n.trim().trim_matches('`').to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    let (_, body) = scrape(&fed, "gt", "/metrics").await.unwrap();
    let served: BTreeSet<String> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect();
    assert!(served.len() >= 20, "{served:?}");
    assert_eq!(
        documented, served,
        "README's series table and the node disagree"
    );

    for s in [&at_gt, &at_hn] {
        assert_eq!(get(s, "enlace_up"), 1.0);
        assert_eq!(
            get(
                s,
                &format!(
                    "enlace_build_info{{version=\"{}\"",
                    env!("CARGO_PKG_VERSION")
                )
            ),
            1.0
        );
        assert!(get(s, "enlace_audit_entries") > 0.0);
        assert!(get(s, "enlace_audit_checkpoint_size") >= 0.0);
        // N records of a few hundred bytes each, nothing purged yet.
        assert!(get(s, "enlace_store_log_bytes") > (N * 200) as f64);
        assert_eq!(get(s, "enlace_store_log_reclaimable_bytes"), 0.0);
        assert!(
            get(
                s,
                "enlace_tls_handshakes_accepted_total{listener=\"metrics\""
            ) >= 1.0,
            "this scrape's own handshake"
        );
        for listener in ["peer", "agency", "metrics"] {
            get(
                s,
                &format!("enlace_tls_handshakes_refused_total{{listener=\"{listener}\""),
            );
        }
        // Sandbox certificates are valid for 365 days.
        for cert in ["node", "agency_ca", "roster_ca/gt", "roster_ca/hn"] {
            let days = get(
                s,
                &format!("enlace_certificate_days_left{{certificate=\"{cert}\""),
            );
            assert!((300.0..=365.0).contains(&days), "{cert}: {days}");
            assert_eq!(
                get(
                    s,
                    &format!("enlace_certificate_expiring{{certificate=\"{cert}\"")
                ),
                0.0
            );
            let not_after = get(
                s,
                &format!("enlace_certificate_not_after_timestamp_seconds{{certificate=\"{cert}\""),
            );
            let now = enlace::clock::now_ms() as f64 / 1000.0;
            assert!(not_after > now + 300.0 * 86_400.0, "{cert}: {not_after}");
        }
        // The fan-out histogram is always served, even before any query.
        let count = get(s, "enlace_query_duration_seconds_count");
        assert_eq!(
            get(s, "enlace_query_duration_seconds_bucket{le=\"+Inf\""),
            count
        );
        let buckets: Vec<f64> = s
            .iter()
            .filter(|(k, _)| k.starts_with("enlace_query_duration_seconds_bucket"))
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(buckets.len(), enlace::metrics::QUERY_BUCKETS.len() + 1);
        assert!(buckets.iter().all(|b| *b <= count));
    }

    // gt: the peer it serves and the query it asked.
    assert_eq!(get(&at_gt, "enlace_peer_connected{peer=\"hn\""), 1.0);
    assert!(get(&at_gt, "enlace_records_sent_total{peer=\"hn\"") >= N as f64);
    assert!(get(&at_gt, "enlace_query_duration_seconds_count") >= 1.0);
    assert!(get(&at_gt, "enlace_query_duration_seconds_sum") > 0.0);
    assert_eq!(
        get(
            &at_gt,
            "enlace_query_results_total{peer=\"hn\",result=\"no_hit\""
        ),
        1.0
    );
    // hn: gt's log replicated, and gt's query answered.
    assert_eq!(get(&at_hn, "enlace_peer_connected{peer=\"gt\""), 1.0);
    assert!(get(&at_hn, "enlace_peer_head{peer=\"gt\"") >= N as f64);
    assert!(
        get(
            &at_hn,
            "enlace_peer_last_contact_timestamp_seconds{peer=\"gt\""
        ) > 0.0
    );
    assert_eq!(
        get(
            &at_hn,
            "enlace_queries_answered_total{peer=\"gt\",result=\"evaluated\""
        ),
        1.0
    );
    assert_eq!(get(&at_hn, "enlace_query_duration_seconds_count"), 0.0);
    assert!(
        !at_hn
            .keys()
            .any(|k| k.starts_with("enlace_records_rejected_total")),
        "nothing was refused"
    );

    hn.stop().await.unwrap();
    gt.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_shows_in_the_metrics_and_the_expiry_warning() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    let dir = fed.member("gt").unwrap().dir.clone();
    assert!(
        gt.components
            .trust
            .expiring_certificates(enlace::trust::reload::EXPIRY_WARNING_DAYS)
            .is_empty()
    );

    // Renewed for 20 days only: within the warning window.
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let renewed = enlace::trust::pki::renew(
        &read("ca.crt"),
        &read("ca.key"),
        &read("node.crt"),
        Some(&read("node.key")),
        20,
    )
    .unwrap();
    enlace::records::crypto::replace_file(
        &dir.join("node.crt"),
        renewed.issued.cert_pem.as_bytes(),
        false,
    )
    .unwrap();
    // NOTE: the file watcher may get there first; either way it is loaded.
    gt.components.trust.reload(Trigger::Request).unwrap();

    let s = scrape_until(&fed, "gt", "the renewed certificate", |s| {
        sample(s, "enlace_certificate_expiring{certificate=\"node\"") == Some(1.0)
    })
    .await;
    let days = get(&s, "enlace_certificate_days_left{certificate=\"node\"");
    assert!((18.0..=20.0).contains(&days), "{days}");
    assert_eq!(
        get(&s, "enlace_certificate_expiring{certificate=\"agency_ca\""),
        0.0
    );
    let due = gt
        .components
        .trust
        .expiring_certificates(enlace::trust::reload::EXPIRY_WARNING_DAYS);
    assert_eq!(due.len(), 1, "{due:?}");
    assert!(due[0].0.starts_with("node certificate"), "{due:?}");
    assert!((18..=20).contains(&due[0].1), "{due:?}");
    gt.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_agency_clients_scrape_and_only_metrics_is_served() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    let member = fed.member("gt").unwrap();
    let addr = member.metrics_addr;
    let client = enlace::service::client::ClientConfig::load(&member.client_path()).unwrap();
    let name = || tls::server_name("127.0.0.1").unwrap();

    // No client certificate: refused at the handshake. In TLS 1.3 the
    // client may finish first, so the refusal can surface on the read.
    let anonymous = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates({
            let mut roots = rustls::RootCertStore::empty();
            for c in &client.ca {
                roots.add(c.clone()).unwrap();
            }
            roots
        })
        .with_no_client_auth();
    let refused =
        enlace::node::metrics::server::scrape(Arc::new(anonymous), addr, name(), "/metrics").await;
    assert!(refused.is_err(), "{refused:?}");

    // A peer's node certificate (a federation CA, not the agency CA):
    // refused as well.
    let hn_dir = fed.member("hn").unwrap().dir.clone();
    let hn_node =
        common::certs::identity(&common::certs::read_issued(&hn_dir, "node.crt", "node.key"));
    let peer_as_client = tls::metrics_client_config(&client.ca, &hn_node).unwrap();
    let refused =
        enlace::node::metrics::server::scrape(peer_as_client, addr, name(), "/metrics").await;
    assert!(refused.is_err(), "{refused:?}");

    // Both refusals are counted.
    scrape_until(&fed, "gt", "two refused metrics handshakes", |s| {
        sample(
            s,
            "enlace_tls_handshakes_refused_total{listener=\"metrics\"",
        ) == Some(2.0)
    })
    .await;

    // Another path: 404. Another method: 405. Both with a short reason.
    let (status, body) = scrape(&fed, "gt", "/").await.unwrap();
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("/metrics"), "{body}");
    let (status, _) = scrape(&fed, "gt", "/metrics/../admin").await.unwrap();
    assert_eq!(status, 404);
    let (status, body) = scrape(&fed, "gt", "/metrics?name[]=enlace_up")
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("enlace_up 1\n"), "{body}");

    // A client that sends a head larger than the limit gets 431, not an
    // unbounded buffer.
    let config = tls::metrics_client_config(&client.ca, &client.identity).unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut stream = tokio_rustls::TlsConnector::from(config)
        .connect(name(), tcp)
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let huge = format!(
        "GET /metrics HTTP/1.1\r\nX-Filler: {}\r\n",
        "a".repeat(enlace::node::metrics::server::MAX_HEAD)
    );
    stream.write_all(huge.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    let mut raw = Vec::new();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let config = tls::metrics_client_config(&client.ca, &client.identity).unwrap();
    let mut stream = tokio_rustls::TlsConnector::from(config)
        .connect(name(), tcp)
        .await
        .unwrap();
    stream
        .write_all(b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    stream.read_to_end(&mut raw).await.unwrap();
    let answer = String::from_utf8(raw).unwrap();
    assert!(answer.starts_with("HTTP/1.1 405 "), "{answer}");
    assert!(answer.contains("Allow: GET, HEAD\r\n"), "{answer}");
    gt.stop().await.unwrap();
}
