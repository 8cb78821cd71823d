//! No member can reverse an identifier (`docs/selectors.md`, "Threat
//! model"): every byte a member holds after an exchange — its store, the
//! log its process wrote at trace level, its audit log as exported —
//! attacked with a dictionary and every key that member has. The member
//! (`sv`) runs as operators run it, the built binary. Under the shared-key scheme
//! the attack recovers the passport, which shows it can succeed; under
//! per-member OPRF keys it recovers nothing. And the move itself: once a
//! member has its OPRF key, no active record anywhere carries a
//! shared-key selector.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::common::{self, eventually};
use crate::query_mla::{add_case, passport_answer, value};
use enlace::records::model::NodeId;
use enlace::records::oprf::SecretKey;
use enlace::records::sealed::LocalKey;
use enlace::records::selector::MatchingKey;
use enlace::records::vocabulary::SelectorKind;
use enlace::store::Store;
use enlace::testing::Sandbox;
use enlace::wire::pb::v1 as pb;

/// The passport the exchange is about, and the dictionary that holds it:
/// one letter and seven digits, a thousand of them.
const PASSPORT: &str = "X1234567";

fn dictionary() -> impl Iterator<Item = String> {
    (0..1000).map(|n| format!("X1234{n:03}"))
}

fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The candidates of the dictionary that member `id` (stopped) can
/// recover from what it holds — its data directory byte for byte (store,
/// record log), the log its process wrote, and its audit log as exported
/// — in clear or with every key it has:
/// the shared matching key (token bytes, their hex, their audit digest),
/// its own OPRF key (entry bytes and hex), and its identifiers key (every
/// sealed value it holds, opened).
fn recovered(fed: &Sandbox, id: &str) -> Vec<String> {
    let member = fed.member(id).unwrap();
    let matching = MatchingKey::read(&member.dir.join("matching.key"), 1).unwrap();
    let oprf = SecretKey::read(&member.dir.join("oprf-1.key")).unwrap();
    let local = LocalKey::read(&member.dir.join("identifiers.key")).unwrap();
    let mut hay: Vec<Vec<u8>> = files(&member.data_dir())
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let log = std::fs::read(Binary::log_path(fed, id)).unwrap();
    assert!(
        String::from_utf8_lossy(&log).contains("DEBUG"),
        "the node's log holds what it logs at debug level and below"
    );
    hay.push(log);
    hay.push(audit_export(&member.config_path()));
    let store = Store::open(&member.data_dir(), &NodeId::parse(id).unwrap()).unwrap();
    let mut opened = Vec::new();
    for (source, sealed) in store.filters().own_sources().unwrap() {
        if let Ok(plain) = local.open(source.as_bytes(), &sealed) {
            opened.push(plain);
        }
    }
    drop(store);
    // Every form each candidate takes under sv's keys, by length, so that
    // each length slides over the bytes once.
    let mut needles: BTreeMap<usize, HashMap<Vec<u8>, String>> = BTreeMap::new();
    for candidate in dictionary() {
        let token = matching.token(SelectorKind::Passport, &candidate);
        let entry = oprf.entry(SelectorKind::Passport, &candidate).unwrap();
        for form in [
            candidate.clone().into_bytes(),
            token.token.to_vec(),
            token.hex().into_bytes(),
            enlace::audit::token_digest(&token).into_bytes(),
            entry.0.to_vec(),
            entry.hex().into_bytes(),
        ] {
            needles
                .entry(form.len())
                .or_default()
                .insert(form, candidate.clone());
        }
    }
    let mut found = BTreeSet::new();
    for h in &hay {
        for (len, forms) in &needles {
            for w in h.windows(*len) {
                if let Some(c) = forms.get(w) {
                    found.insert(c.clone());
                }
            }
        }
    }
    for candidate in dictionary() {
        if opened.iter().any(|p| {
            p.windows(candidate.len())
                .any(|w| w == candidate.as_bytes())
        }) {
            found.insert(candidate);
        }
    }
    found.into_iter().collect()
}

/// A member's node as operators run it: the built binary, with what
/// enlace logs at every level (and the libraries at info) written to a
/// file beside its data directory.
struct Binary {
    child: Child,
}

impl Binary {
    fn log_path(fed: &Sandbox, id: &str) -> PathBuf {
        fed.member(id).unwrap().dir.join("node.log")
    }

    async fn start(fed: &mut Sandbox, id: &str) -> Binary {
        drop(fed.take_listeners(id));
        let log = std::fs::File::create(Self::log_path(fed, id)).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_enlace"))
            .args(["node", "run", "--config"])
            .arg(fed.member(id).unwrap().config_path())
            .env("RUST_LOG", "enlace=trace,info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start the node");
        eventually("the node answers its agencies", || async {
            fed.client(id).await.ok().map(|_| ())
        })
        .await;
        Binary { child }
    }

    /// Stops the node as an operator does (SIGTERM), and waits for it.
    async fn stop(mut self) {
        let pid = self.child.id().to_string();
        let status = tokio::task::spawn_blocking(move || {
            Command::new("kill").args(["-TERM", &pid]).status().unwrap();
            self.child.wait().unwrap()
        })
        .await
        .unwrap();
        assert!(status.success(), "the node stopped cleanly: {status}");
    }
}

/// The audit log as `enlace audit export` prints it from a stopped
/// node's store.
fn audit_export(config: &Path) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_enlace"))
        .args(["audit", "export", "--config"])
        .arg(config)
        .env_remove("RUST_LOG")
        .stderr(Stdio::inherit())
        .output()
        .expect("run enlace audit export");
    assert!(out.status.success(), "audit export failed");
    assert!(!out.stdout.is_empty());
    out.stdout
}

/// Whether `c`'s node (sv) asked hn obliviously in a query it audited
/// after entry `after`; returns the last entry read.
async fn asked_obliviously(c: &mut crate::query_mla::Client, after: &mut u64) -> bool {
    let mut entries = c
        .read_audit(pb::ReadAuditRequest {
            after: *after,
            justification: "Prueba: ¿se preguntó a hn sin revelar nada?".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut seen = false;
    while let Some(e) = entries.message().await.unwrap() {
        *after = e.n;
        let e = enlace::audit::Entry::decode(&e.body).unwrap();
        seen |= e.action == "query_result"
            && e.counterparts == ["hn"]
            && e.result.contains("(oblivious, epoch 1)");
    }
    seen
}

/// hn publishes an alert about the passport and registers a case with
/// it; sv (the binary) receives the alert and asks about another
/// passport, `control`, obliviously if `oblivious` (once it holds hn's
/// filter).
async fn exchange(
    fed: &mut Sandbox,
    oblivious: bool,
    control: &str,
) -> (enlace::testing::RunningNode, Binary, String) {
    let hn = fed.start("hn").await.unwrap();
    let sv = Binary::start(fed, "sv").await;
    let mut h = fed.client("hn").await.unwrap();
    let mut s = fed.client("sv").await.unwrap();
    let alert = h
        .publish_alert(pb::PublishAlertRequest {
            alert: Some(enlace::testing::sample_alert(
                "Posible víctima, pasaporte retenido",
            )),
            selector_values: vec![value(SelectorKind::Passport, PASSPORT)],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    add_case(
        &mut h,
        "MP-HN-2026-31",
        vec![value(SelectorKind::Passport, PASSPORT)],
    )
    .await;
    eventually("sv holds the alert", || {
        let mut s = s.clone();
        let id = alert.record_id.clone();
        async move {
            s.get_record(pb::GetRecordRequest { record_id: id })
                .await
                .ok()
                .map(|_| ())
        }
    })
    .await;
    let probe = s.clone();
    let ask = || passport_answer(&probe, control, "Control", "hn", pb::QueryResult::NoHit);
    if oblivious {
        // sv holds every record of hn's, its filter records with them...
        let head = hn.components.store.watermark().own_seq;
        eventually("sv holds hn's records", || {
            let mut s = s.clone();
            async move {
                let peers = s.list_peers(pb::ListPeersRequest {}).await.ok()?;
                let at = peers
                    .into_inner()
                    .peers
                    .into_iter()
                    .find(|p| p.node_id == "hn")?;
                (at.cursor >= head).then_some(())
            }
        })
        .await;
        // ... and asks obliviously once its view has read them (asked
        // again within hn's 30 queries a minute until it does).
        let mut after = 0;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(14);
        let mut ticks = common::pace(std::time::Duration::from_millis(500));
        loop {
            ticks.tick().await;
            ask().await;
            if asked_obliviously(&mut s, &mut after).await {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "sv never asked hn obliviously"
            );
        }
    } else {
        ask().await;
    }
    (hn, sv, alert.record_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_shared_key_a_member_recovers_the_passport_from_what_it_holds() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["hn", "sv"]).await.unwrap();
    common::shared_key_only(&fed, "hn", true);
    common::shared_key_only(&fed, "sv", true);
    // The control passport is outside the dictionary: under the shared
    // key, sv's own audit keeps a testable digest of what it asked.
    let (hn, sv, _) = exchange(&mut fed, false, "Z9999999").await;
    hn.stop().await.unwrap();
    sv.stop().await;
    assert_eq!(recovered(&fed, "sv"), vec![PASSPORT.to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_per_member_keys_a_member_recovers_nothing_from_what_it_holds() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["hn", "sv"]).await.unwrap();
    // sv holds hn's filter with the passport, and asked hn obliviously
    // about another passport of the dictionary: of that one, too, it
    // keeps nothing a key of its own reverses.
    let (hn, sv, _) = exchange(&mut fed, true, "X1234999").await;
    hn.stop().await.unwrap();
    sv.stop().await;
    assert_eq!(recovered(&fed, "sv"), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_a_member_has_its_oprf_key_no_active_record_carries_a_shared_key_selector() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["hn", "sv"]).await.unwrap();
    common::shared_key_only(&fed, "hn", true);
    let (hn, sv, record_id) = exchange(&mut fed, false, "Z9999999").await;
    let selectors_of_current = |c: &mut crate::query_mla::Client| {
        let mut c = c.clone();
        async move {
            c.list_records(pb::ListRecordsRequest::default())
                .await
                .unwrap()
                .into_inner()
                .records
                .into_iter()
                .filter_map(|r| match r.kind {
                    Some(pb::record_view::Kind::Alert(a)) => Some((r.record_id, a.selectors.len())),
                    _ => None,
                })
                .collect::<Vec<_>>()
        }
    };
    let mut s = fed.client("sv").await.unwrap();
    assert_eq!(
        selectors_of_current(&mut s).await,
        vec![(record_id.clone(), 1)],
        "before: the alert carries its shared-key token"
    );
    hn.stop().await.unwrap();
    common::shared_key_only(&fed, "hn", false);
    let hn = fed.start("hn").await.unwrap();
    let mut h = fed.client("hn").await.unwrap();
    for c in [&mut h, &mut s] {
        let current = eventually("the alert republished without its selector", || {
            let mut c = c.clone();
            let first = record_id.clone();
            async move {
                let now = selectors_of_current(&mut c).await;
                (now.len() == 1 && now[0].0 != first).then_some(now)
            }
        })
        .await;
        assert_eq!(current[0].1, 0, "{current:?}");
    }
    // The republication is hn's own act, on its record.
    let log = common::audit_log(&hn.components);
    assert!(
        log.iter()
            .any(|e| e.action == "record_updated" && e.actor == "hn")
    );
    hn.stop().await.unwrap();
    sv.stop().await;

    // sv still holds the first version, token and all: a copy of the
    // shared key reverses it. The purge that ends the move takes it.
    assert_eq!(recovered(&fed, "sv"), vec![PASSPORT.to_string()]);
    let sv_id = NodeId::parse("sv").unwrap();
    let store = Store::open(&fed.member("sv").unwrap().data_dir(), &sv_id).unwrap();
    let purged = enlace::node::purge_shared_tokens(&store, &sv_id, enlace::clock::now_ms())
        .await
        .unwrap();
    assert_eq!(purged, 1, "the superseded version");
    let again = enlace::node::purge_shared_tokens(&store, &sv_id, enlace::clock::now_ms())
        .await
        .unwrap();
    assert_eq!(again, 0, "nothing twice");
    drop(store);
    assert_eq!(recovered(&fed, "sv"), Vec::<String>::new());
}
