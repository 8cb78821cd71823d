//! Shared harness for the integration tests: real nodes (in-process, on
//! `127.0.0.1:0`), real mTLS, real sled in temporary directories. Waits are
//! for conditions with deadlines, never fixed sleeps, so the suite holds up
//! on a loaded two-core machine.

#![allow(dead_code)]

pub mod certs;
pub mod proxy;
pub mod standin;

use std::future::Future;
use std::time::Duration;

use enlace::wire::pb::v1 as pb;
use enlace::wire::pb::v1::agency_client::AgencyClient;
use tonic::transport::Channel;

/// Generous: a loaded CI machine can be slow, and a passing run never waits this long.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Polls `cond` until it yields `Some`, or panics with `what` after [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut cond: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut pause = Duration::from_millis(5);
    let mut ticks = pace(pause);
    // The first tick is at once; then the pause doubles up to 100 ms.
    ticks.tick().await;
    loop {
        if let Some(v) = cond().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {DEADLINE:?} waiting for: {what}");
        }
        ticks.reset_after(pause);
        ticks.tick().await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// The pace of a polling loop: a tick every `period`, the first at once.
/// A slow poll delays the next tick rather than bunching the missed ones.
pub fn pace(period: Duration) -> tokio::time::Interval {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks
}

/// Every record a node's agency API lists (all versions), in arrival order.
pub async fn list_all(client: &mut AgencyClient<Channel>) -> Vec<pb::RecordView> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = client
            .list_records(pb::ListRecordsRequest {
                after_position: after,
                all_versions: true,
                ..Default::default()
            })
            .await
            .expect("list records")
            .into_inner();
        out.extend(page.records);
        if page.last_position == after {
            return out;
        }
        after = page.last_position;
    }
}

/// Publishes an alert and returns the response.
pub async fn publish(
    client: &mut AgencyClient<Channel>,
    summary: &str,
    to: &[&str],
) -> pb::PublishResponse {
    client
        .publish_alert(pb::PublishAlertRequest {
            alert: Some(enlace::testing::sample_alert(summary)),
            to: to.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
        .await
        .expect("publish")
        .into_inner()
}

/// The cursor node `at` holds for `peer`.
pub async fn cursor(client: &mut AgencyClient<Channel>, peer: &str) -> u64 {
    let peers = client
        .list_peers(pb::ListPeersRequest {})
        .await
        .expect("list peers")
        .into_inner();
    peers
        .peers
        .iter()
        .find(|p| p.node_id == peer)
        .map(|p| p.cursor)
        .unwrap_or(0)
}

/// Fetches `path` from member `id`'s metrics listener as Prometheus
/// would: TLS 1.3 with the member's agency client certificate.
pub async fn scrape(
    fed: &enlace::testing::Sandbox,
    id: &str,
    path: &str,
) -> Result<(u16, String), enlace::node::metrics::server::ScrapeError> {
    let member = fed.member(id).expect("sandbox member");
    let client =
        enlace::service::client::ClientConfig::load(&member.client_path()).expect("client file");
    let config =
        enlace::trust::tls::metrics_client_config(&client.ca, &client.identity).expect("config");
    let name = enlace::trust::tls::server_name("127.0.0.1").expect("server name");
    enlace::node::metrics::server::scrape(config, member.metrics_addr, name, path).await
}

/// The samples of a Prometheus text exposition, by series as written
/// (`name{label="value",…}`), checking that every sample belongs to a
/// family announced by `# HELP` and `# TYPE` lines before it.
pub fn samples(text: &str) -> std::collections::BTreeMap<String, f64> {
    let mut typed = std::collections::BTreeMap::new();
    let mut helped = std::collections::BTreeSet::new();
    let mut out = std::collections::BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP name and text");
            assert!(!help.is_empty(), "{line}");
            helped.insert(name.to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name and kind");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(helped.contains(name), "TYPE before HELP: {line}");
            typed.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        assert!(!line.starts_with('#') && !line.is_empty(), "{line:?}");
        let (series, value) = line.rsplit_once(' ').expect("series and value");
        let name = series.split('{').next().unwrap_or_default();
        let family = match typed.get(name) {
            Some(_) => name,
            None => ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|f| typed.get(*f).is_some_and(|k| k == "histogram"))
                .unwrap_or_else(|| panic!("sample of no announced family: {line}")),
        };
        assert!(typed.contains_key(family), "{line}");
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
        };
        assert!(
            out.insert(series.to_owned(), value).is_none(),
            "repeated: {line}"
        );
    }
    out
}

/// The value of the one series that starts with `prefix` (a name and
/// some of its labels, e.g. `enlace_peer_connected{peer="hn"`).
pub fn sample(samples: &std::collections::BTreeMap<String, f64>, prefix: &str) -> Option<f64> {
    let mut found = samples.iter().filter(|(k, _)| {
        k.as_str() == prefix
            || (k.starts_with(prefix)
                && matches!(k.as_bytes().get(prefix.len()), Some(b'{' | b',' | b'}')))
    });
    let (_, v) = found.next()?;
    assert!(found.next().is_none(), "more than one series for {prefix}");
    Some(*v)
}

/// Tracing output for failing tests (`RUST_LOG=enlace=debug cargo test`).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// The `[oprf]` section every sandbox member's configuration has.
pub const OPRF_SECTION: &str =
    "\n[oprf]\nkeys = [\"oprf-1.key\"]\nidentifiers_key = \"identifiers.key\"\n";

/// Makes sandbox member `id` one that has not moved off the shared
/// matching key (no `[oprf]`: protocol version 1), or (`yes` false) moves
/// it again.
pub fn shared_key_only(fed: &enlace::testing::Sandbox, id: &str, yes: bool) {
    let path = fed.member(id).unwrap().config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let text = if yes {
        assert!(text.contains(OPRF_SECTION), "sandbox config layout changed");
        text.replace(OPRF_SECTION, "\n")
    } else {
        format!("{text}{OPRF_SECTION}")
    };
    std::fs::write(&path, text).unwrap();
}

/// Waits until a node has published its match filter (at a first start,
/// its first record, to all members), so that what a test publishes next
/// follows it; returns the filter record's seq.
pub async fn filter_published(node: &enlace::node::Components) -> u64 {
    eventually("the node's match filter published", || async {
        node.store.filters().own_complete(1).ok().filter(|c| *c)?;
        node.store.filters().own_filter_seq(1).ok()
    })
    .await
}

/// Every entry of a running node's audit log, read from its store.
pub fn audit_log(node: &enlace::node::Components) -> Vec<enlace::audit::Entry> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let batch = node
            .store
            .audit()
            .entries(after, 1000)
            .expect("audit entries");
        let Some(last) = batch.last().map(|e| e.n) else {
            return out;
        };
        out.extend(
            batch
                .iter()
                .map(|e| enlace::audit::Entry::decode(&e.body).expect("an audit entry")),
        );
        after = last;
    }
}
