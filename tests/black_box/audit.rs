//! The accountability log between real nodes: every kind of action leaves
//! its entry; a changed byte is named; a truncated or rewritten tail is
//! caught through the checkpoints a peer witnessed; pruning keeps the log
//! verifiable from its anchor. The store is tampered with as an attacker
//! would: with sled, directly on the stopped node's files.

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::eventually;
use enlace::audit::Entry;
use enlace::audit::checkpoint::Checkpoint;
use enlace::records::vocabulary::{Offence, SelectorKind};
use enlace::store::audit_log::{self, RawEntry};
use enlace::testing::{Sandbox, sample_alert};
use enlace::wire::pb::v1 as pb;
use enlace::wire::pb::v1::agency_client::AgencyClient;
use serde_json::Value;
use tonic::transport::Channel;

type Client = AgencyClient<Channel>;

const DAY_MS: i64 = 86_400_000;

fn enlace() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_enlace"));
    c.env_remove("RUST_LOG");
    c
}

/// Runs `enlace audit …` and returns (exit code, stdout, stderr).
fn audit(args: &[&str], config_or_client: (&str, &Path)) -> (i32, String, String) {
    let out = enlace()
        .arg("audit")
        .args(args)
        .arg(config_or_client.0)
        .arg(config_or_client.1)
        .output()
        .expect("run enlace audit");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The log as `enlace audit export` prints it.
async fn export(client_toml: &Path, extra: &[&str]) -> Vec<Value> {
    let client_toml = client_toml.to_owned();
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let mut args = vec!["export"];
        args.extend(extra);
        audit(&args, ("--client", &client_toml))
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "export failed: {err}");
    out.lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn with_action<'a>(log: &'a [Value], action: &str) -> Vec<&'a Value> {
    log.iter().filter(|e| e["action"] == action).collect()
}

fn ids(e: &Value) -> Vec<String> {
    e["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

async fn checkpoint(c: &mut Client) -> pb::AuditCheckpointsResponse {
    c.audit_checkpoints(pb::AuditCheckpointsRequest {
        checkpoint_now: true,
        ..Default::default()
    })
    .await
    .expect("checkpoint")
    .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_action_leaves_its_entry() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn", "sv"])
        .await
        .unwrap();
    let gt = fed.start("gt").await.unwrap();
    let hn = fed.start("hn").await.unwrap();
    let sv = fed.start("sv").await.unwrap();
    let mut g = fed.client("gt").await.unwrap();
    let mut h = fed.client("hn").await.unwrap();

    // Publication with a selector, update, withdrawal.
    let first = g
        .publish_alert(pb::PublishAlertRequest {
            alert: Some(sample_alert("primera versión")),
            selector_values: vec![pb::SelectorValue {
                kind: SelectorKind::Passport.wire(),
                value: "X1234567".into(),
            }],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let update = g
        .update_record(pb::UpdateRecordRequest {
            record_id: first.record_id.clone(),
            content: Some(pb::update_record_request::Content::Alert(sample_alert(
                "segunda versión",
            ))),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    g.withdraw_record(pb::WithdrawRecordRequest {
        record_id: first.record_id.clone(),
        reason: "información errónea".into(),
        validate_only: false,
    })
    .await
    .unwrap();
    // A refused request: nothing stored, but on record with its reason.
    let refused = g
        .publish_alert(pb::PublishAlertRequest {
            alert: Some(pb::Alert::default()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    // A short-lived alert, purged at expiry everywhere.
    let mut short = sample_alert("caduca pronto");
    short.expires_at_ms = enlace::clock::now_ms() + 2_000;
    let short = g
        .publish_alert(pb::PublishAlertRequest {
            alert: Some(short),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    // A local case at hn and a query from gt that hits it.
    let case = h
        .register_case(pb::RegisterCaseRequest {
            case: Some(pb::LocalCase {
                case_number: "MP-HN-2026-77".into(),
                offence: Offence::Trafficking.wire(),
                ..Default::default()
            }),
            selector_values: vec![pb::SelectorValue {
                kind: SelectorKind::Passport.wire(),
                value: "X1234567".into(),
            }],
        })
        .await
        .unwrap()
        .into_inner();
    // gt asks obliviously once it holds hn's and sv's filters.
    for (peer, entries) in [("hn", 1), ("sv", 0)] {
        let peer = enlace::records::model::NodeId::parse(peer).unwrap();
        eventually("gt holds the filter", || async {
            let epoch = gt.components.cases.filter_epoch(&peer).await.ok()??;
            (gt.components.store.filters().peer_count(&peer).ok()? >= entries).then_some(epoch)
        })
        .await;
    }
    let answer = g
        .query(pb::QueryRequest {
            selector_values: vec![pb::SelectorValue {
                kind: SelectorKind::Passport.wire(),
                value: "x 123 4567".into(),
            }],
            justification: "investigación 2026-114".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    // MLA: request (on a case reference hn holds), automatic
    // acknowledgment, answer.
    let case_ref = g
        .publish_case_reference(pb::PublishCaseReferenceRequest {
            case_reference: Some(pb::CaseReference {
                case_ref: "MP-GT-2026-0114".into(),
                offence: Offence::Trafficking.wire(),
                stage: enlace::records::vocabulary::CaseStage::Investigation.wire(),
                competent_authority: "Fiscalía contra la Trata de Personas".into(),
                handling: Some(pb::Handling {
                    code: enlace::records::vocabulary::HandlingCode::H1.wire(),
                    condition: String::new(),
                }),
                tlp: enlace::records::vocabulary::Tlp::Amber.wire(),
                ..Default::default()
            }),
            to: vec!["hn".into()],
            validate_only: false,
            idempotency_key: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let mla = g
        .send_mla(pb::SendMlaRequest {
            request: Some(pb::MlaRequest {
                to: "hn".into(),
                case_refs: vec![case_ref.record_id.clone()],
                legal_basis: "UNTOC art. 18".into(),
                measures: "Confirmar identidad".into(),
                deadline_ms: enlace::clock::now_ms() + 86_400_000,
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    eventually("the MLA request at hn", || {
        let mut h = h.clone();
        let id = mla.record_id.clone();
        async move {
            let list = h.list_mla(pb::ListMlaRequest {}).await.ok()?.into_inner();
            list.requests
                .iter()
                .any(|r| r.request_id == id && r.state == "acknowledged")
                .then_some(())
        }
    })
    .await;
    h.respond_mla(pb::RespondMlaRequest {
        request_id: mla.record_id.clone(),
        outcome: enlace::records::vocabulary::MlaOutcome::Executed.wire(),
        text: "Identidad confirmada".into(),
    })
    .await
    .unwrap();
    h.close_case(pb::CloseCaseRequest {
        case_id: case.case_id.clone(),
    })
    .await
    .unwrap();
    // Wait until the short alert is purged and the answer is back at gt.
    let gt_client = fed.member("gt").unwrap().client_path();
    let hn_client = fed.member("hn").unwrap().client_path();
    eventually("purge and answer at gt", || async {
        let purged = export(&gt_client, &["--action", "record_purged"]).await;
        let received = export(&gt_client, &["--action", "mla_received"]).await;
        (purged.iter().any(|e| ids(e).contains(&short.record_id))
            && received.iter().any(|e| e["result"] == "mla_response"))
        .then_some(())
    })
    .await;

    let gt_log = export(&gt_client, &[]).await;
    let hn_log = export(&hn_client, &[]).await;
    for e in gt_log.iter().chain(&hn_log) {
        for field in ["n", "time", "action", "actor", "counterpart", "hash"] {
            assert!(e.get(field).is_some(), "{field} missing in {e}");
        }
    }
    let actor = "gt-operator";
    let published = with_action(&gt_log, "record_published");
    let p = published
        .iter()
        .find(|e| ids(e).contains(&first.record_id))
        .expect("publication entry");
    assert_eq!(p["actor"], actor);
    assert!(p["counterpart"].as_str().unwrap().contains("hn"));
    assert_eq!(
        p["token_digests"].as_array().unwrap().len(),
        0,
        "an alert carries no selector, so its entry no digest"
    );
    assert!(
        !p.to_string().contains("X1234567"),
        "no clear identifier in the log"
    );
    assert!(
        with_action(&gt_log, "record_updated")
            .iter()
            .any(|e| ids(e).contains(&update.record_id) && e["actor"] == actor)
    );
    let w = with_action(&gt_log, "record_withdrawn");
    assert_eq!(w.len(), 1);
    assert_eq!(w[0]["justification"], "información errónea");
    let r = with_action(&gt_log, "request_rejected");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["actor"], actor);
    assert!(
        r[0]["result"]
            .as_str()
            .unwrap()
            .contains(refused.message().split(':').next().unwrap()),
        "the reason: {} vs {}",
        r[0]["result"],
        refused.message()
    );
    // Disclosure to each peer at gt, receipt from gt at hn.
    for peer in ["hn", "sv"] {
        let disclosed: BTreeSet<String> = gt_log
            .iter()
            .filter(|e| e["action"] == "records_disclosed" && e["counterpart"] == peer)
            .flat_map(ids)
            .collect();
        assert!(disclosed.contains(&first.record_id), "disclosed to {peer}");
    }
    let received: BTreeSet<String> = with_action(&hn_log, "records_received")
        .iter()
        .filter(|e| e["actor"] == "gt")
        .flat_map(|e| ids(e))
        .collect();
    assert!(received.contains(&first.record_id) && received.contains(&update.record_id));
    // Queries: sent at gt (the justification, no digest), evaluated at
    // hn and sv, confirmed at hn only.
    let sent = with_action(&gt_log, "query_sent");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["justification"], "investigación 2026-114");
    assert_eq!(ids(sent[0]), vec![answer.query_id.clone()]);
    assert!(sent[0]["token_digests"].as_array().unwrap().is_empty());
    assert!(
        with_action(&gt_log, "query_result")
            .iter()
            .any(|e| e["counterpart"] == "hn" && e["result"] == "hit (oblivious, epoch 1)")
    );
    let evaluated = with_action(&hn_log, "query_evaluated");
    assert_eq!(evaluated.len(), 1);
    assert_eq!(evaluated[0]["counterpart"], "gt");
    assert_eq!(evaluated[0]["justification"], "investigación 2026-114");
    assert!(evaluated[0]["token_digests"].as_array().unwrap().is_empty());
    let confirmed = with_action(&hn_log, "query_confirmed");
    assert_eq!(confirmed.len(), 1);
    assert!(ids(confirmed[0]).contains(&format!("case:{}", case.case_id)));
    assert!(with_action(&hn_log, "query_answered").is_empty());
    // Each node published its match filter.
    assert!(!with_action(&hn_log, "filter_published").is_empty());
    // MLA at both ends.
    assert_eq!(with_action(&gt_log, "mla_sent").len(), 1);
    assert!(!with_action(&hn_log, "mla_received").is_empty());
    assert_eq!(with_action(&hn_log, "mla_acknowledged")[0]["actor"], "hn");
    assert_eq!(
        with_action(&hn_log, "mla_responded")[0]["result"],
        "executed"
    );
    // Local cases and purges.
    assert_eq!(with_action(&hn_log, "case_registered").len(), 1);
    assert_eq!(with_action(&hn_log, "case_closed").len(), 1);
    assert!(
        with_action(&gt_log, "record_purged")
            .iter()
            .any(|e| ids(e).contains(&short.record_id))
    );
    // Start, and reads of the log itself.
    assert_eq!(with_action(&gt_log, "node_started").len(), 1);
    assert!(!with_action(&gt_log, "audit_read").is_empty());
    // Filters.
    let only_sv = export(&gt_client, &["--counterpart", "sv"]).await;
    assert!(!only_sv.is_empty());
    assert!(only_sv.iter().all(|e| {
        e["counterparts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "sv")
    }));

    // A clean stop is on record after a restart, and the whole log verifies
    // against what the peers witnessed.
    checkpoint(&mut g).await;
    gt.stop().await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    let gt_log = export(&gt_client, &["--action", "node_stopped"]).await;
    assert_eq!(gt_log.len(), 1);
    let (code, out, err) =
        tokio::task::spawn_blocking(move || audit(&["verify", "--json"], ("--client", &gt_client)))
            .await
            .unwrap();
    assert_eq!(code, 0, "{out}\n{err}");
    let report: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["holds"], true);
    for n in [gt, hn, sv] {
        n.stop().await.unwrap();
    }
}

/// Runs a few actions at gt, has hn witness a checkpoint, and stops gt
/// (which hands hn a last checkpoint). Returns the sandbox with hn running.
async fn history() -> (Sandbox, enlace::testing::RunningNode) {
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    let hn = fed.start("hn").await.unwrap();
    let mut g = fed.client("gt").await.unwrap();
    for i in 0..6 {
        common::publish(&mut g, &format!("alerta {i}"), &[]).await;
    }
    let cp = checkpoint(&mut g).await;
    let hn_saw = cp.peers.iter().find(|p| p.peer == "hn").unwrap();
    assert!(hn_saw.error.is_empty() && !hn_saw.witnesses.is_empty());
    drop(g);
    gt.stop().await.unwrap();
    (fed, hn)
}

fn gt_config(fed: &Sandbox) -> std::path::PathBuf {
    fed.member("gt").unwrap().config_path()
}

/// Opens gt's stopped store as an attacker would, once the stopped
/// process has let go of its lock (the OS may take a moment under load).
fn raw_store(fed: &Sandbox) -> sled::Db {
    let dir = fed.member("gt").unwrap().data_dir();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match sled::open(&dir) {
            Ok(db) => return db,
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("open gt's sled files: {e}"),
        }
    }
}

/// The audit entries held in gt's `audit_log` tree.
fn entries(tree: &sled::Tree) -> Vec<RawEntry> {
    tree.iter()
        .flat_map(|kv| audit_log::decode_group(&kv.unwrap().1).unwrap())
        .collect()
}

/// Replaces gt's audit entries with `entries`, as the store groups them.
fn write_entries(tree: &sled::Tree, entries: &[RawEntry]) {
    tree.clear().unwrap();
    for (k, v) in audit_log::encode_groups(entries) {
        tree.insert(k, v).unwrap();
    }
}

async fn verify_config(config: std::path::PathBuf, extra: &[&str]) -> (i32, Value) {
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        let mut args = vec!["verify", "--json"];
        args.extend(extra.iter().map(String::as_str));
        audit(&args, ("--config", &config))
    })
    .await
    .unwrap();
    let report = serde_json::from_str(out.trim()).unwrap_or_else(|_| panic!("{out}\n{err}"));
    (code, report)
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_names_its_entry() {
    common::init_tracing();
    let (fed, hn) = history().await;
    let (code, report) = verify_config(gt_config(&fed), &[]).await;
    assert_eq!(code, 0, "intact: {report}");
    assert_eq!(check(&report, "witnessed by hn")["ok"], true);

    let victim = {
        let db = raw_store(&fed);
        let tree = db.open_tree("audit_log").unwrap();
        let mut all = entries(&tree);
        assert!(all.len() > 5);
        let mid = all.len() / 2;
        let victim = &mut all[mid];
        // One byte of the body: a record id, an actor, a time.
        let at = victim.body.len() - 10;
        victim.body[at] ^= 0x01;
        let n = victim.n;
        write_entries(&tree, &all);
        db.flush().unwrap();
        n
    };
    let (code, report) = verify_config(gt_config(&fed), &[]).await;
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["first_bad"], victim);
    assert!(
        check(&report, "hash chain")["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("entry {victim} ")),
        "{report}"
    );
    hn.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_tail_is_caught_by_the_checkpoint_a_peer_witnessed() {
    common::init_tracing();
    let (mut fed, hn) = history().await;
    // Remove the last entries, and the node's own checkpoints that cover
    // them: only the peer's copy remains.
    let kept = {
        let db = raw_store(&fed);
        let tree = db.open_tree("audit_log").unwrap();
        let all = entries(&tree);
        let kept = all[all.len() - 4].n;
        write_entries(&tree, &all[..all.len() - 3]);
        db.open_tree("checkpoints").unwrap().clear().unwrap();
        db.flush().unwrap();
        kept
    };
    // The chain alone still holds: that is what the witnesses are for.
    let (code, report) = verify_config(gt_config(&fed), &["--local-only"]).await;
    assert_eq!(code, 0, "{report}");
    // Asked directly, with an admin client of hn and not gt's identity.
    let hn_client = fed.member("hn").unwrap().client_path();
    let hn_client = hn_client.to_str().unwrap();
    let (code, report) = verify_config(
        gt_config(&fed),
        &["--local-only", "--witnesses-from", hn_client],
    )
    .await;
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["first_bad"], kept + 1, "{report}");
    let direct = check(&report, "witnesses asked directly");
    assert_eq!(direct["ok"], true, "{report}");
    assert!(
        direct["detail"].as_str().unwrap().starts_with("hn: "),
        "{report}"
    );
    assert!(
        check(&report, "witnessed by hn")["detail"]
            .as_str()
            .unwrap()
            .contains("were removed"),
        "{report}"
    );
    // The read is on hn's record, naming whose log it was.
    let h = fed.client("hn").await.unwrap();
    let at_hn = common::audit_log(&hn.components);
    assert!(
        at_hn
            .iter()
            .any(|e| e.action == "audit_read" && e.counterparts == vec!["gt".to_string()]),
        "hn records the read"
    );
    // gt's own client is no witness of gt.
    let gt_client = fed.member("gt").unwrap().client_path();
    let (code, report) = verify_config(
        gt_config(&fed),
        &[
            "--local-only",
            "--witnesses-from",
            gt_client.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(code, 1, "{report}");
    let direct = check(&report, "witnesses asked directly");
    assert_eq!(direct["ok"], false, "{report}");
    let (code, report) = verify_config(gt_config(&fed), &[]).await;
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["first_bad"], kept + 1, "{report}");
    let detail = check(&report, "witnessed by hn")["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(detail.contains("were removed"), "{detail}");

    // Restarted, gt hands hn a checkpoint of its shorter log: hn refuses it
    // and writes the refusal to its own log.
    let gt = fed.start("gt").await.unwrap();
    eventually("hn refused gt's shrunken checkpoint", || {
        let mut h = h.clone();
        async move {
            let mut stream = h
                .read_audit(pb::ReadAuditRequest {
                    after: 0,
                    justification: "test".into(),
                })
                .await
                .ok()?
                .into_inner();
            while let Some(Ok(e)) = tokio_stream::StreamExt::next(&mut stream).await {
                let entry = Entry::decode(&e.body).ok()?;
                if entry.action == "checkpoint_rejected" && entry.result.contains("shrank") {
                    return Some(());
                }
            }
            None
        }
    })
    .await;
    gt.stop().await.unwrap();
    hn.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_tail_is_caught_even_when_rehashed() {
    common::init_tracing();
    let (fed, hn) = history().await;
    let from = {
        let db = raw_store(&fed);
        let tree = db.open_tree("audit_log").unwrap();
        let mut all = entries(&tree);
        // Rewrite the last three entries into other history, hashes and
        // links recomputed: the chain is consistent again.
        let from = all.len() - 3;
        let mut prev = all[from - 1].hash;
        for e in &mut all[from..] {
            let mut entry = Entry::decode(&e.body).unwrap();
            entry.actor = "nobody".into();
            entry.ids.clear();
            *e = RawEntry::chained(e.n, prev, entry.encode());
            prev = e.hash;
        }
        write_entries(&tree, &all);
        db.open_tree("checkpoints").unwrap().clear().unwrap();
        db.flush().unwrap();
        all[from].n
    };
    let (code, report) = verify_config(gt_config(&fed), &[]).await;
    assert_eq!(code, 1, "{report}");
    assert_eq!(check(&report, "hash chain")["ok"], true, "{report}");
    let detail = check(&report, "witnessed by hn")["detail"]
        .as_str()
        .unwrap();
    assert!(detail.contains("rewritten"), "{detail}");
    let first_bad = report["first_bad"].as_u64().unwrap();
    assert!(first_bad <= from, "{first_bad} vs rewritten from {from}");
    hn.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_keeps_the_log_verifiable_from_its_anchor() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    // The nodes' clocks read 40 days ago; what hn witnesses then is old
    // enough to be pruned (at least 30 days) once the clocks catch up.
    let clock = std::sync::Arc::new(enlace::clock::ManualClock::starting_at(
        enlace::clock::now_ms() - 40 * DAY_MS,
    ));
    fed.clock = clock.clone();
    let gt = fed.start("gt").await.unwrap();
    let hn = fed.start("hn").await.unwrap();
    let mut g = fed.client("gt").await.unwrap();
    for i in 0..4 {
        common::publish(&mut g, &format!("antigua {i}"), &[]).await;
    }
    // `enlace audit checkpoint`: signed now, countersigned by hn.
    let client = fed.member("gt").unwrap().client_path();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        let out = enlace()
            .args(["audit", "checkpoint", "--json", "--client"])
            .arg(&client)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{out}\n{err}");
    let answer: Value = serde_json::from_str(out.trim()).unwrap();
    let size = answer["size"].as_u64().unwrap();
    assert!(size >= 5, "{answer}");
    assert_eq!(answer["peers"][0]["peer"], "hn");
    assert_eq!(answer["peers"][0]["witnessed_size"], size, "{answer}");
    let before = enlace::clock::now_ms() + 1;
    eventually("a later clock tick", || async {
        (enlace::clock::now_ms() > before).then_some(())
    })
    .await;
    common::publish(&mut g, "reciente", &[]).await;
    // No checkpoint is 30 days old yet: nothing is prunable.
    assert_eq!(gt.components.audit.prune(before).await.unwrap(), 0);
    assert!(gt.components.store.audit().anchor().unwrap().is_none());
    // 40 days on, hn countersigns, and records that it did.
    clock.advance(std::time::Duration::from_millis(40 * DAY_MS as u64));
    let removed = gt.components.audit.prune(before).await.unwrap();
    assert!(removed >= 5, "removed {removed}");
    let at_hn = common::audit_log(&hn.components);
    let witnessed = at_hn
        .iter()
        .find(|e| e.action == "retention_witnessed")
        .expect("hn records the pruning it countersigned");
    assert_eq!(witnessed.counterparts, vec!["gt".to_string()]);
    let anchor = gt
        .components
        .store
        .audit()
        .anchor()
        .unwrap()
        .expect("an anchor");
    assert!(
        gt.components
            .store
            .audit()
            .entry(anchor.n)
            .unwrap()
            .is_none()
    );
    let log = export(&fed.member("gt").unwrap().client_path(), &[]).await;
    assert_eq!(log[0]["n"], anchor.n + 1, "the log starts after the anchor");
    assert!(!with_action(&log, "audit_pruned").is_empty());
    checkpoint(&mut g).await;
    let client = fed.member("gt").unwrap().client_path();
    let (code, out, err) =
        tokio::task::spawn_blocking(move || audit(&["verify"], ("--client", &client)))
            .await
            .unwrap();
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("retention anchor"), "{out}");
    assert!(out.contains("countersigned by hn"), "{out}");
    // With a trusted copy of the roster instead of the keys gt reports.
    let client = fed.member("gt").unwrap().client_path();
    let roster = fed.chain_dir();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        let roster = roster.display().to_string();
        audit(&["verify", "--roster", &roster], ("--client", &client))
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}\n{err}");
    // A roster in which gt's key is another's: nothing verifies.
    let client = fed.member("gt").unwrap().client_path();
    let other = fed.dir.join("other-roster");
    let text = std::fs::read_to_string(fed.dir.join("federation.toml")).unwrap();
    let (gt_key, hn_key) = (public_key_of(&text, "gt"), public_key_of(&text, "hn"));
    fed.sign_roster_into(&text.replace(&gt_key, &hn_key), &other)
        .unwrap();
    let (code, out, _) = tokio::task::spawn_blocking(move || {
        let other = other.display().to_string();
        audit(&["verify", "--roster", &other], ("--client", &client))
    })
    .await
    .unwrap();
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("does not verify"), "{out}");
    gt.stop().await.unwrap();
    hn.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_and_witnesses_come_in_pages() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    let hn = fed.start("hn").await.unwrap();
    let mut g = fed.client("gt").await.unwrap();
    let mut sizes = Vec::new();
    for i in 0..3 {
        common::publish(&mut g, &format!("página {i}"), &[]).await;
        let c = checkpoint(&mut g).await;
        sizes.push(
            Checkpoint::decode(&c.own.last().unwrap().body)
                .unwrap()
                .size,
        );
    }
    let size_of = |c: &pb::SignedCheckpoint| Checkpoint::decode(&c.body).unwrap().size;
    let page = |after: u64, limit: u32| {
        let mut g = g.clone();
        async move {
            g.audit_checkpoints(pb::AuditCheckpointsRequest {
                checkpoint_now: false,
                after_size: after,
                limit,
            })
            .await
            .unwrap()
            .into_inner()
        }
    };
    let whole = page(0, 0).await;
    assert_eq!(whole.page_end, 0, "one page holds it all");
    let all: Vec<u64> = whole.own.iter().map(size_of).collect();
    assert!(
        sizes.iter().all(|s| all.contains(s)),
        "{sizes:?} in {all:?}"
    );
    assert!(all.len() >= 3);
    // Two at a time: the same checkpoints, and each page's witnesses are
    // those of its range of sizes.
    let (mut walked, mut after, mut pages) = (Vec::new(), 0, 0);
    loop {
        let p = page(after, 2).await;
        pages += 1;
        let own: Vec<u64> = p.own.iter().map(size_of).collect();
        assert!(own.len() <= 2);
        let end = if p.page_end == 0 {
            u64::MAX
        } else {
            p.page_end
        };
        if p.page_end != 0 {
            assert_eq!(own.last(), Some(&p.page_end));
        }
        for w in &p.peers[0].witnesses {
            let s = size_of(w.checkpoint.as_ref().unwrap());
            assert!(s > after && s <= end, "{s} in ({after}, {end}]");
        }
        walked.extend(own);
        if p.page_end == 0 {
            break;
        }
        after = p.page_end;
    }
    assert_eq!(walked, all);
    assert!(pages >= 2, "{pages} pages");
    // `audit verify` walks every page.
    let client = fed.member("gt").unwrap().client_path();
    let (code, out, err) =
        tokio::task::spawn_blocking(move || audit(&["verify"], ("--client", &client)))
            .await
            .unwrap();
    assert_eq!(code, 0, "{out}\n{err}");
    gt.stop().await.unwrap();
    hn.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prune_of_young_entries_is_refused_by_the_peers_and_caught_by_verify() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    // gt's clock is its own, and its operator will set it ahead; hn's is
    // right.
    let gt_clock = std::sync::Arc::new(enlace::clock::ManualClock::starting_at(
        enlace::clock::now_ms(),
    ));
    fed.clock = gt_clock.clone();
    let gt = fed.start("gt").await.unwrap();
    fed.clock = enlace::clock::system();
    let hn = fed.start("hn").await.unwrap();
    let mut g = fed.client("gt").await.unwrap();
    for i in 0..4 {
        common::publish(&mut g, &format!("de hoy {i}"), &[]).await;
    }
    checkpoint(&mut g).await;
    common::publish(&mut g, "otra de hoy", &[]).await;
    let last = checkpoint(&mut g).await;
    let last_signed = last.own.last().unwrap().clone();
    let last_cp = Checkpoint::decode(&last_signed.body).unwrap();
    // The retention sweep under a clock set 40 days ahead: every entry
    // looks older than 30 days to gt, but hn judges by its own clock.
    gt_clock.advance(std::time::Duration::from_millis(40 * DAY_MS as u64));
    let before = gt.components.clock.now_ms() - 30 * DAY_MS;
    let refused = gt.components.audit.prune(before).await.unwrap_err();
    assert!(
        refused.to_string().contains("from this node's clock"),
        "{refused}"
    );
    assert!(gt.components.store.audit().anchor().unwrap().is_none());
    let at_hn = common::audit_log(&hn.components);
    assert!(
        at_hn
            .iter()
            .any(|e| e.action == "checkpoint_rejected" && e.result.contains("clock")),
        "hn records the refusal"
    );
    // The operator prunes with a tool instead, anchored on gt's own signed
    // checkpoint: `audit verify` says so.
    let anchor = audit_log::Anchor {
        n: last_cp.size,
        hash: last_cp.head,
        checkpoint: prost::Message::encode_to_vec(&last_signed),
    };
    let removed = gt
        .components
        .store
        .audit()
        .prune(&anchor, None)
        .await
        .unwrap();
    assert!(removed >= 5, "removed {removed}");
    checkpoint(&mut g).await;
    let client = fed.member("gt").unwrap().client_path();
    let (code, out, err) =
        tokio::task::spawn_blocking(move || audit(&["verify", "--json"], ("--client", &client)))
            .await
            .unwrap();
    assert_eq!(code, 1, "{out}\n{err}");
    let report: Value = serde_json::from_str(out.trim()).unwrap();
    let anchor = check(&report, "retention anchor");
    assert_eq!(anchor["ok"], false, "{report}");
    let detail = anchor["detail"].as_str().unwrap();
    assert!(
        detail.contains("no statement that a peer countersigned"),
        "{report}"
    );
    assert!(
        detail.contains("entries younger than 30 days were removed"),
        "{report}"
    );
    gt.stop().await.unwrap();
    hn.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_renewed_while_the_node_was_down_is_on_record_at_its_next_start() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt"]).await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    let first = common::audit_log(&gt.components);
    assert!(first.iter().all(|e| e.action != "config_changed"));
    gt.stop().await.unwrap();

    let dir = fed.member("gt").unwrap().dir.clone();
    let out = enlace()
        .args(["cert", "renew", "--ca-cert"])
        .arg(dir.join("ca.crt"))
        .arg("--ca-key")
        .arg(dir.join("ca.key"))
        .arg("--cert")
        .arg(dir.join("node.crt"))
        .arg("--key")
        .arg(dir.join("node.key"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let gt = fed.start("gt").await.unwrap();
    // The node records its start as it begins to run, just after `start`.
    let log = eventually("the second start on record", || async {
        let log = common::audit_log(&gt.components);
        (log.iter().filter(|e| e.action == "node_started").count() == 2).then_some(log)
    })
    .await;
    let changed: Vec<_> = log
        .iter()
        .filter(|e| e.action == "config_changed")
        .collect();
    assert_eq!(changed.len(), 1, "{log:?}");
    assert_eq!(changed[0].ids.len(), 1, "only the certificate changed");
    assert!(changed[0].ids[0].starts_with("tls_certificate:"));
    assert_eq!(log.iter().filter(|e| e.action == "node_started").count(), 2);
    assert_eq!(log.iter().filter(|e| e.action == "node_stopped").count(), 1);
    gt.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_refuses_a_log_that_shrank_or_forked_and_a_checkpoint_in_another_s_name() {
    use enlace::audit::checkpoint::Checkpoint;
    use enlace::records::model::NodeId;
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn", "sv"])
        .await
        .unwrap();
    // sv never runs: its ports are shut, so nobody waits on it.
    drop(fed.take_listeners("sv"));
    let hn = fed.start("hn").await.unwrap();
    // gt, as itself on the wire and with its own signing key, but not
    // running: the test speaks for it.
    let gt_dir = fed.member("gt").unwrap().dir.clone();
    let gt_key =
        enlace::records::crypto::SigningKey::load(&gt_dir.join("signing.key"), "gt-sandbox-1")
            .unwrap();
    let sv_key = enlace::records::crypto::SigningKey::load(
        &fed.member("sv").unwrap().dir.join("signing.key"),
        "sv-sandbox-1",
    )
    .unwrap();
    let roster = fed.roster().unwrap();
    let gt_tls =
        common::certs::identity(&common::certs::read_issued(&gt_dir, "node.crt", "node.key"));
    let config =
        enlace::trust::tls::peer_client_config(&roster, &gt_tls, &NodeId::parse("hn").unwrap())
            .unwrap();
    let port = fed.member("hn").unwrap().peer_addr.port();
    let channel = enlace::exchange::peers::peer_channel(config, "127.0.0.1", port).unwrap();
    let mut to_hn = enlace::wire::pb::v1::federation_client::FederationClient::new(channel);
    let checkpoint =
        |node: &str, size: u64, head: u8, key: &enlace::records::crypto::SigningKey| {
            Checkpoint {
                node: NodeId::parse(node).unwrap(),
                size,
                head: [head; 32],
                time_ms: enlace::clock::now_ms(),
            }
            .sign(key)
            .to_pb()
        };

    let witness = to_hn
        .witness(checkpoint("gt", 10, 1, &gt_key))
        .await
        .expect("a first checkpoint is witnessed")
        .into_inner()
        .witness
        .unwrap();
    assert_eq!(witness.witness, "hn");
    // The same state again is fine (hn hands back what it already
    // countersigned, and stores nothing new); a larger one too.
    let again = to_hn
        .witness(checkpoint("gt", 10, 1, &gt_key))
        .await
        .unwrap()
        .into_inner()
        .witness
        .unwrap();
    assert_eq!(again, witness);
    to_hn
        .witness(checkpoint("gt", 12, 2, &gt_key))
        .await
        .unwrap();

    let forked = to_hn
        .witness(checkpoint("gt", 12, 3, &gt_key))
        .await
        .unwrap_err();
    assert_eq!(forked.code(), tonic::Code::FailedPrecondition);
    assert!(forked.message().contains("forked"), "{}", forked.message());
    let shrank = to_hn
        .witness(checkpoint("gt", 11, 4, &gt_key))
        .await
        .unwrap_err();
    assert_eq!(shrank.code(), tonic::Code::FailedPrecondition);
    assert!(shrank.message().contains("shrank"), "{}", shrank.message());
    // gt cannot hand over sv's checkpoint, even one sv signed.
    let not_own = to_hn
        .witness(checkpoint("sv", 5, 5, &sv_key))
        .await
        .unwrap_err();
    assert_eq!(not_own.code(), tonic::Code::PermissionDenied);
    // Nor sign as gt with sv's key.
    let forged = to_hn
        .witness(checkpoint("gt", 20, 6, &sv_key))
        .await
        .unwrap_err();
    assert_eq!(forged.code(), tonic::Code::InvalidArgument);

    // hn hands back exactly what it witnessed, and its log names the refusals.
    let held = to_hn
        .witnessed(enlace::wire::pb::v1::WitnessedRequest {
            node: "gt".into(),
            after_size: 0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .witnesses;
    let sizes: Vec<u64> = held
        .iter()
        .map(|w| {
            Checkpoint::decode(&w.checkpoint.as_ref().unwrap().body)
                .unwrap()
                .size
        })
        .collect();
    assert_eq!(sizes, vec![10, 12]);
    let refusals: Vec<String> = common::audit_log(&hn.components)
        .into_iter()
        .filter(|e| e.action == "checkpoint_rejected")
        .map(|e| e.result)
        .collect();
    assert_eq!(refusals.len(), 4, "{refusals:?}");
    assert!(refusals[0].contains("forked") && refusals[1].contains("shrank"));
    assert!(refusals[2].contains("of node sv") && refusals[3].contains("belongs to sv"));

    // The real gt starts on a log of a few entries: hn, which witnessed 12,
    // refuses its checkpoint, and `audit checkpoint` says so and fails.
    let gt = fed.start("gt").await.unwrap();
    let gt_client = fed.member("gt").unwrap().client_path();
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
        audit(&["checkpoint", "--json"], ("--client", &gt_client))
    })
    .await
    .unwrap();
    assert_eq!(code, 1, "{stdout}{stderr}");
    let report: Value = serde_json::from_str(stdout.trim()).expect("json");
    let at_hn = report["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["peer"] == "hn")
        .expect("hn listed")
        .clone();
    assert!(
        at_hn["refused"].as_str().unwrap().contains("shrank"),
        "{report}"
    );
    assert!(
        stderr.contains("hn witnessed 12 entries"),
        "the loss is named: {stderr}"
    );
    gt.stop().await.unwrap();
    hn.stop().await.unwrap();
}

/// The `public_key` of member `id` in a sandbox roster's text.
fn public_key_of(roster: &str, id: &str) -> String {
    let block = roster
        .split("\n[[members]]\n")
        .find(|b| b.contains(&format!("id = \"{id}\"")))
        .expect("the member's block");
    let line = block
        .lines()
        .find(|l| l.starts_with("public_key = "))
        .expect("a public key");
    line.trim_start_matches("public_key = ")
        .trim_matches('"')
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retention_sweep_runs_at_start_and_keeps_what_is_recent() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let data_dir = fed.member("gt").unwrap().data_dir();
    let long_ago = enlace::clock::now_ms() - 40 * DAY_MS;
    // A log with 40 entries written 40 days ago.
    {
        let gt = enlace::records::model::NodeId::parse("gt").unwrap();
        let store = enlace::store::Store::open(&data_dir, &gt).unwrap();
        let old = (0..40)
            .map(|i| {
                let mut e = Entry::new(enlace::audit::Action::RecordPublished, "cliente-antiguo");
                e.time_ms = long_ago + i;
                e.encode()
            })
            .collect();
        store.audit().append(old).await.unwrap();
    }
    common::certs::edit_config(
        &fed.member("gt").unwrap().config_path(),
        "",
        "[audit]\nretention_days = 30\n",
    );
    // Then, 40 days ago, the node ran and hn witnessed its log.
    let clock = std::sync::Arc::new(enlace::clock::ManualClock::starting_at(long_ago + 1_000));
    fed.clock = clock.clone();
    let hn = fed.start("hn").await.unwrap();
    let gt = fed.start("gt").await.unwrap();
    let mut g = fed.client("gt").await.unwrap();
    let witnessed = checkpoint(&mut g).await;
    assert!(witnessed.peers[0].refused.is_empty(), "{witnessed:?}");
    common::publish(&mut g, "reciente", &[]).await;
    gt.stop().await.unwrap();
    // Today: no call to prune; the node's own hourly sweep runs once at
    // start. The anchor is written first, the `audit_pruned` entry right
    // after.
    clock.advance(std::time::Duration::from_millis(40 * DAY_MS as u64));
    let gt = fed.start("gt").await.unwrap();
    let log = eventually("the sweep at start pruned the old entries", || async {
        let anchor = gt.components.store.audit().anchor().ok().flatten()?;
        let log = common::audit_log(&gt.components);
        (anchor.n == 40 && log.iter().any(|e| e.action == "audit_pruned")).then_some(log)
    })
    .await;
    assert!(log.iter().all(|e| e.actor != "cliente-antiguo"));
    // What the node wrote when it ran is recent by the entries' own times:
    // kept.
    assert!(log.iter().any(|e| e.action == "record_published"));
    assert!(log.iter().any(|e| e.action == "node_started"));
    gt.stop().await.unwrap();
    hn.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mistyped_data_dir_is_refused_and_not_created() {
    let fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let config = gt_config(&fed);
    let typo = fed.dir.join("gt").join("dta");
    let typo_arg = typo.to_str().unwrap().to_owned();
    for args in [
        &["verify", "--local-only", "--data-dir", &typo_arg][..],
        &["export", "--data-dir", &typo_arg][..],
    ] {
        let (code, _, stderr) = audit(args, ("--config", &config));
        assert_eq!(code, 1, "{args:?}: {stderr}");
        assert!(
            stderr.contains("no store at") && stderr.contains("--data-dir"),
            "{args:?}: {stderr}"
        );
        assert!(!typo.exists(), "{args:?} created {}", typo.display());
    }
    let out = enlace()
        .args(["node", "compact", "--config"])
        .arg(&config)
        .args(["--data-dir", &typo_arg])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no store at"), "{stderr}");
    assert!(!typo.exists(), "node compact created {}", typo.display());
}
