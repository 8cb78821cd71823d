//! A member is a partner, not a friend: a compromised member's node, with
//! its real certificate, calling another member's peer API in a loop. Each
//! test reproduces one attack and checks the budget that bounds it: audit
//! entries written per minute, checkpoints witnessed, `Pull` streams held,
//! digests computed; and an observer that neither queries nor publishes.

use std::time::Duration;

use crate::common::{self, eventually, standin};
use enlace::records::model::NodeId;
use enlace::testing::Sandbox;
use enlace::trust::tls::{self, TlsIdentity};
use enlace::wire::pb::v1 as pb;
use enlace::wire::pb::v1::federation_client::FederationClient;
use tonic::transport::Channel;

/// A raw `Federation` client on `to`'s peer listener with `who`'s real
/// node identity: what a compromised member can send.
pub(crate) fn raw_peer(fed: &Sandbox, who: &str, to: &str) -> FederationClient<Channel> {
    let dir = fed.member(who).unwrap().dir.clone();
    let roster = fed.roster().unwrap();
    let identity = TlsIdentity::load(&dir.join("node.crt"), &dir.join("node.key")).unwrap();
    let config = tls::peer_client_config(&roster, &identity, &NodeId::parse(to).unwrap()).unwrap();
    let port = fed.member(to).unwrap().peer_addr.port();
    FederationClient::new(enlace::exchange::peers::peer_channel(config, "127.0.0.1", port).unwrap())
}

/// gt's audit entries with `action`, read from its store once it stopped.
fn entries_of(fed: &Sandbox, action: &str) -> Vec<enlace::audit::Entry> {
    let gt = fed.components("gt").unwrap();
    common::audit_log(&gt)
        .into_iter()
        .filter(|e| e.action == action)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_queries_grows_the_audit_log_at_a_bounded_rate() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    let mut hn = raw_peer(&fed, "hn", "gt");
    let before = gt.components.store.watermark().audit;
    // 200 queries, each with a 60 kB justification and no selector.
    let long = "x".repeat(60_000);
    for i in 0..200 {
        let refused = hn
            .r#match(pb::MatchRequest {
                query_id: format!("q-hn-{i:016x}"),
                justification: long.clone(),
                requested_by: "analyst".into(),
                ..Default::default()
            })
            .await
            .expect_err("refused");
        assert!(
            matches!(
                refused.code(),
                tonic::Code::InvalidArgument | tonic::Code::ResourceExhausted
            ),
            "{refused:?}"
        );
    }
    let written = gt.components.store.watermark().audit - before;
    gt.stop().await.unwrap();

    // At most the refusals written one by one in a minute (two minutes
    // if the flood straddled one), plus the summaries: not 200.
    let one_by_one = entries_of(&fed, "query_refused");
    let budget = enlace::limits::REFUSALS_AUDITED_PER_MINUTE as usize;
    assert!(
        !one_by_one.is_empty() && one_by_one.len() <= 2 * budget,
        "{} refusals written one by one",
        one_by_one.len()
    );
    assert!(written as usize <= 2 * budget + 4, "{written} entries");
    // What a peer sent is cut before it goes on record.
    assert!(
        one_by_one
            .iter()
            .all(|e| e.justification.len() < 600 && e.justification.contains("(60000 bytes)")),
        "justifications on record are bounded"
    );
    // The rest are counted, and the count is on record.
    let summaries = entries_of(&fed, "requests_refused");
    let counted: u64 = summaries
        .iter()
        .map(|e| {
            e.result
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(
        counted as usize + one_by_one.len(),
        200,
        "every refusal is accounted for: {summaries:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_checkpoints_is_rate_limited_before_any_work() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    let mut hn = raw_peer(&fed, "hn", "gt");
    let mut exhausted = 0;
    for i in 0..100u8 {
        let refused = hn
            .witness(pb::SignedCheckpoint {
                body: vec![i; 64],
                key_id: "hn-key".into(),
                signature: vec![0; 64],
            })
            .await
            .expect_err("garbage");
        if refused.code() == tonic::Code::ResourceExhausted {
            exhausted += 1;
        }
    }
    let per_minute = enlace::limits::WITNESS_PER_MINUTE as usize;
    assert!(
        exhausted >= 100 - 2 * per_minute,
        "{exhausted} refused by the rate limit"
    );
    gt.stop().await.unwrap();
    let one_by_one = entries_of(&fed, "checkpoint_rejected");
    assert!(
        one_by_one.len() <= 2 * enlace::limits::REFUSALS_AUDITED_PER_MINUTE as usize,
        "{} refusals written one by one",
        one_by_one.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_gets_one_stream_of_the_log_and_a_new_one_replaces_the_old() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    gt.components.publisher.declare_new_log();
    // gt's match filter is its record 1; the log from 2 on is this test's.
    assert_eq!(common::filter_published(&gt.components).await, 1);
    let mut client = fed.client("gt").await.unwrap();
    common::publish(&mut client, "para hn", &[]).await;
    let follow = || pb::PullRequest {
        origin: "gt".into(),
        after_seq: 1,
        follow: true,
        max_batch: 0,
    };
    let mut hn = raw_peer(&fed, "hn", "gt");
    let mut first = hn.pull(follow()).await.unwrap().into_inner();
    // Many more, none of them read.
    let mut unread = Vec::new();
    for _ in 0..50 {
        unread.push(hn.pull(follow()).await.unwrap().into_inner());
    }
    // The first ends, replaced (after what it had buffered).
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match first.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => return None,
                Err(s) => return Some(s),
            }
        }
    })
    .await
    .expect("the first stream ends once replaced");
    let status = ended.expect("ended with a status");
    assert_eq!(status.code(), tonic::Code::Aborted, "{status:?}");
    assert!(status.message().contains("replaced"), "{status:?}");
    // The newest is served.
    let mut newest = unread.pop().unwrap();
    let batch = tokio::time::timeout(Duration::from_secs(20), newest.message())
        .await
        .expect("the newest stream is served")
        .unwrap()
        .unwrap();
    assert_eq!(batch.records.len(), 1);
    drop(unread);
    gt.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_asks_each_origin_once() {
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    let mut hn = raw_peer(&fed, "hn", "gt");
    let origin = |o: &str| pb::OriginBound {
        origin: o.into(),
        up_to_seq: 10,
    };
    let refused = hn
        .digest(pb::DigestRequest {
            origins: vec![origin("gt"), origin("gt")],
        })
        .await
        .expect_err("gt twice");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(refused.message().contains("asked twice"), "{refused:?}");
    let refused = hn
        .digest(pb::DigestRequest {
            origins: vec![origin("gt"), origin("hn"), origin("gt")],
        })
        .await
        .expect_err("more origins than members");
    assert!(refused.message().contains("one per member"), "{refused:?}");
    hn.digest(pb::DigestRequest {
        origins: vec![origin("gt"), origin("hn")],
    })
    .await
    .expect("each member once");
    gt.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_neither_queries_nor_publishes() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "io"]).await.unwrap();
    // io (a partner organisation) is an observer.
    let roster = fed.dir.join("federation.toml");
    let text = std::fs::read_to_string(&roster).unwrap();
    let at = text.find("id = \"io\"").unwrap();
    let role = at + text[at..].find("role = \"member\"").unwrap();
    let rest = &text[role + "role = \"member\"".len()..];
    // An observer does not vote: it holds no governance key.
    let gk = rest.find("governance_keys = ").unwrap();
    let gk_end = gk + rest[gk..].find('\n').unwrap();
    // Nor an OPRF key: it holds no identifiers (its entry is the last).
    let oprf = rest.find("[[members.oprf_keys]]").unwrap();
    let text = format!(
        "{}role = \"observer\"{}{}",
        &text[..role],
        &rest[..gk],
        &rest[gk_end..oprf]
    );
    std::fs::write(&roster, text).unwrap();
    fed.sign_roster().unwrap();

    // Records signed with io's key, served by a stand-in io: gt refuses
    // them, whatever they say.
    let settings =
        enlace::trust::load::settings(&fed.member("io").unwrap().config_path(), None).unwrap();
    let io = NodeId::parse("io").unwrap();
    let batch = pb::PullBatch {
        records: vec![standin::signed_alert(&settings, &io, 1, "de un observador").to_pb()],
        high_water: 1,
        head: 1,
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    standin::serve(
        &mut fed,
        "io",
        standin::StandIn {
            batch: Some(batch),
            ..Default::default()
        },
        stopped,
    );
    let gt = fed.start("gt").await.unwrap();
    eventually("gt refuses io's record", || async {
        let (_, metrics) = common::scrape(&fed, "gt", "/metrics").await.ok()?;
        let samples = common::samples(&metrics);
        samples
            .iter()
            .any(|(name, v)| {
                name.starts_with("enlace_records_rejected_total")
                    && name.contains("reason=\"observer\"")
                    && *v >= 1.0
            })
            .then_some(())
    })
    .await;
    assert_eq!(gt.components.store.records().count(&io), 0);

    // io asks gt about an identifier: refused.
    let mut from_io = raw_peer(&fed, "io", "gt");
    let refused = from_io
        .r#match(pb::MatchRequest {
            query_id: "q-io-0000000000000001".into(),
            justification: "consulta".into(),
            requested_by: "analyst".into(),
            ..Default::default()
        })
        .await
        .expect_err("an observer does not query");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("observer"), "{refused:?}");

    // An MLA request to io is refused at gt: io could never acknowledge it.
    gt.components.publisher.declare_new_log();
    let mut client = fed.client("gt").await.unwrap();
    let refused = client
        .send_mla(pb::SendMlaRequest {
            request: Some(pb::MlaRequest {
                to: "io".into(),
                case_refs: vec!["gt-0000000000000001".into()],
                legal_basis: "UNTOC art. 18".into(),
                measures: "Información".into(),
                ..Default::default()
            }),
        })
        .await
        .expect_err("io is an observer");
    assert!(refused.message().contains("is an observer"), "{refused:?}");
    let _ = stop.send(true);
    gt.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_for_another_member_sends_this_peer_nothing() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn", "sv"])
        .await
        .unwrap();
    // Heartbeats far apart: any message hn gets now is caused by a record.
    let config = fed.member("gt").unwrap().config_path();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[sync]\n",
        "[sync]\nheartbeat_ms = 60000\nsilence_limit_ms = 180000\n",
    );
    std::fs::write(&config, text).unwrap();
    let gt = fed.start("gt").await.unwrap();
    gt.components.publisher.declare_new_log();
    // gt's match filter is its record 1; the log from 2 on is this test's.
    assert_eq!(common::filter_published(&gt.components).await, 1);
    let mut client = fed.client("gt").await.unwrap();
    let mut hn = raw_peer(&fed, "hn", "gt");
    let mut stream = hn
        .pull(pb::PullRequest {
            origin: "gt".into(),
            after_seq: 1,
            follow: true,
            max_batch: 0,
        })
        .await
        .unwrap()
        .into_inner();

    // A record for sv alone: hn is not told that anything happened, not
    // even by a cursor moving.
    common::publish(&mut client, "solo para sv", &["sv"]).await;
    let early = tokio::time::timeout(Duration::from_millis(500), stream.message()).await;
    assert!(early.is_err(), "hn was sent {early:?}");
    // A record for hn: its batch carries the position past sv's record.
    let for_hn = common::publish(&mut client, "para hn", &["hn"]).await;
    let batch = tokio::time::timeout(Duration::from_secs(20), stream.message())
        .await
        .expect("hn's record arrives")
        .unwrap()
        .unwrap();
    assert_eq!(batch.records.len(), 1, "{batch:?}");
    assert_eq!(batch.high_water, for_hn.seq);
    gt.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agency_client_refused_in_a_loop_grows_the_audit_log_at_a_bounded_rate() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt"]).await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    let mut analyst = common::certs::unlisted_client(&fed, "gt", "analyst").await;
    let before = gt.components.store.watermark().audit;
    for _ in 0..150 {
        let refused = analyst
            .publish_alert(pb::PublishAlertRequest {
                alert: Some(enlace::testing::sample_alert("no")),
                ..Default::default()
            })
            .await
            .expect_err("a reader cannot publish");
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    }
    // The entries within the budget are written by tasks: wait for them.
    let budget = enlace::limits::REFUSALS_AUDITED_PER_MINUTE as u64;
    eventually("the refusals within the budget are on record", || async {
        (gt.components.store.watermark().audit > before).then_some(())
    })
    .await;
    let written = gt.components.store.watermark().audit - before;
    gt.stop().await.unwrap();
    let one_by_one = entries_of(&fed, "request_rejected");
    assert!(
        !one_by_one.is_empty() && one_by_one.len() as u64 <= 2 * budget,
        "{} refusals written one by one",
        one_by_one.len()
    );
    assert!(
        written <= 2 * budget + 4,
        "{written} entries for 150 refusals"
    );
    let summaries = entries_of(&fed, "requests_refused");
    let counted: u64 = summaries
        .iter()
        .filter(|e| e.actor == "analyst")
        .map(|e| {
            e.result
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(
        counted + one_by_one.len() as u64,
        150,
        "every refusal is accounted for: {summaries:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_cannot_make_the_peers_compare_logs_in_a_loop() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    let _hn = fed.start("hn").await.unwrap();
    let mut analyst = common::certs::unlisted_client(&fed, "gt", "analyst").await;
    let mut served = 0;
    let refused = loop {
        match analyst.verify_peers(pb::VerifyPeersRequest {}).await {
            Ok(_) => served += 1,
            Err(status) => break status,
        }
        assert!(
            served <= enlace::limits::VERIFY_PEERS_PER_MINUTE,
            "never refused"
        );
    };
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    assert!(refused.message().contains("retry in"), "{refused:?}");
    // The budget is the node's, not the client's: the operator waits too.
    let mut operator = fed.client("gt").await.unwrap();
    let also = operator
        .verify_peers(pb::VerifyPeersRequest {})
        .await
        .unwrap_err();
    assert_eq!(also.code(), tonic::Code::ResourceExhausted);
    assert!(served >= 1);
    gt.stop().await.unwrap();
}

/// Resident memory of a process, from /proc (Linux), in bytes.
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Kills the node process when the test ends, however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_unread_pulls_from_one_peer_stay_within_its_memory_budget() {
    common::init_tracing();
    const RECORDS: usize = 2_000;
    const STREAMS: usize = 300;
    let mut fed = Sandbox::create("test-fed", &["gt", "sv"]).await.unwrap();
    // gt is the built binary, so that its memory is its own; sv is the
    // compromised member, calling with its real identity.
    drop(fed.take_listeners("gt"));
    let config = fed.member("gt").unwrap().config_path();
    let node = Killed(
        std::process::Command::new(env!("CARGO_BIN_EXE_enlace"))
            .args(["node", "run", "--new-log", "--config"])
            .arg(&config)
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start gt"),
    );
    let pid = node.0.id();
    let client_toml = fed.member("gt").unwrap().client_path();
    let client = eventually("gt is up", || async {
        enlace::service::client::ClientConfig::load(&client_toml)
            .ok()?
            .connect()
            .await
            .ok()
    })
    .await;
    // About 3 MiB of log, in records of about 1.4 kB: 300 streams each
    // buffering it would hold near 900 MiB without the budget.
    let started = std::time::Instant::now();
    let long = "x".repeat(990);
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..8 {
        let mut c = client.clone();
        let long = long.clone();
        tasks.spawn(async move {
            for i in (w..RECORDS).step_by(8) {
                common::publish(&mut c, &format!("{i:05} {long}"), &[]).await;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    eprintln!("published {RECORDS} in {:?}", started.elapsed());
    let before = rss_bytes(pid).expect("gt's RSS");
    // 300 streams of gt's log, over 15 connections (the per-member cap is
    // 16), none of them read: half follow it (each replaces the previous
    // follower), half ask for what is there.
    let mut unread = Vec::new();
    for c in 0..15 {
        let mut sv = raw_peer(&fed, "sv", "gt");
        for i in 0..STREAMS / 15 {
            if let Ok(s) = sv
                .pull(pb::PullRequest {
                    origin: "gt".into(),
                    after_seq: 0,
                    follow: (c + i) % 2 == 0,
                    max_batch: 0,
                })
                .await
            {
                unread.push(s.into_inner());
            }
        }
    }
    assert!(
        unread.len() >= STREAMS / 2,
        "{} streams opened",
        unread.len()
    );
    // Watch gt's memory while the streams sit unread: ten samples a
    // second, until gt has had time to fill every buffer it would.
    eprintln!(
        "{} streams open after {:?}",
        unread.len(),
        started.elapsed()
    );
    let budget = enlace::limits::PULL_BUFFER_BYTES_PER_PEER as u64;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut peak = before;
    for _ in 0..50 {
        tick.tick().await;
        peak = peak.max(rss_bytes(pid).expect("gt is still running"));
    }
    let grown = peak.saturating_sub(before);
    eprintln!(
        "gt: {} MiB before, peak {} MiB with {} unread streams",
        before >> 20,
        peak >> 20,
        unread.len()
    );
    // The budget, plus room for 300 streams' bookkeeping and HTTP/2
    // windows: far below 300 streams times 8 MiB.
    assert!(
        grown <= budget + 64 * 1024 * 1024,
        "gt grew by {} MiB with {} unread streams from one peer",
        grown >> 20,
        unread.len()
    );
    drop(unread);
    drop(node);
}
