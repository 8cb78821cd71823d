//! OPRF key rotation between real nodes (`docs/runbook.md`, section 5):
//! a member adds the next epoch's key, the roster lists it, the member
//! publishes that epoch's filter by itself (it keyed its sealed
//! identifiers again at its restart), and queries move to the new epoch;
//! matches hold before, across and after the boundary, and once the old
//! key leaves the roster it is used no more.

use crate::common::{self, eventually};
use crate::query_mla::{add_case, passport_answer, value};
use enlace::audit::Entry;
use enlace::records::crypto;
use enlace::records::model::NodeId;
use enlace::records::oprf::SecretKey;
use enlace::records::vocabulary::SelectorKind;
use enlace::testing::Sandbox;
use enlace::trust::reload::Trigger;
use enlace::wire::pb::v1 as pb;

/// The roster source's entry of one OPRF key.
fn oprf_block(epoch: u32, key: &SecretKey) -> String {
    format!(
        "[[members.oprf_keys]]\nepoch = {epoch}\npublic_key = \"{}\"\n",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key.public().key)
    )
}

/// How sv asked hn in its last query's audit entry.
fn last_way(log: &[Entry], query_id: &str) -> String {
    log.iter()
        .rev()
        .find(|e| e.action == "query_result" && e.ids.iter().any(|i| i == query_id))
        .map(|e| e.result.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matches_hold_across_an_oprf_key_rotation() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["hn", "sv"]).await.unwrap();
    let hn_id = NodeId::parse("hn").unwrap();
    let hn_dir = fed.member("hn").unwrap().dir.clone();
    let mut hn = fed.start("hn").await.unwrap();
    let sv = fed.start("sv").await.unwrap();
    let mut h = fed.client("hn").await.unwrap();
    let mut s = fed.client("sv").await.unwrap();
    add_case(
        &mut h,
        "MP-HN-2026-40",
        vec![value(SelectorKind::Passport, "X1234567")],
    )
    .await;
    let ask = |s: &mut crate::query_mla::Client| {
        let s = s.clone();
        async move {
            passport_answer(&s, "X1234567", "Rotación", "hn", pb::QueryResult::Hit)
                .await
                .query_id
        }
    };
    eventually("sv holds hn's epoch 1 filter", || async {
        (sv.components.cases.filter_epoch(&hn_id).await.ok()?? == 1
            && sv.components.store.filters().peer_count(&hn_id).ok()? >= 1)
            .then_some(())
    })
    .await;
    let q = ask(&mut s).await;
    assert!(last_way(&common::audit_log(&sv.components), &q).contains("epoch 1"));

    // hn adds the epoch 2 key and restarts: it keys its identifiers under
    // it, but uses it only once the roster lists it.
    let one = SecretKey::read(&hn_dir.join("oprf-1.key")).unwrap();
    let (two, file) = SecretKey::generate(2).unwrap();
    crypto::write_private_file(&hn_dir.join("oprf-2.key"), file.as_bytes(), false).unwrap();
    let config = fed.member("hn").unwrap().config_path();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "keys = [\"oprf-1.key\"]",
        "keys = [\"oprf-1.key\", \"oprf-2.key\"]",
    );
    std::fs::write(&config, text).unwrap();
    hn.stop().await.unwrap();
    hn = fed.start("hn").await.unwrap();
    eventually("hn keyed its identifiers under epoch 2", || async {
        hn.components
            .store
            .filters()
            .epoch_built(2)
            .ok()?
            .then_some(())
    })
    .await;
    let q = ask(&mut s).await;
    assert!(last_way(&common::audit_log(&sv.components), &q).contains("epoch 1"));

    // The roster lists both keys: hn publishes its epoch 2 filter, and sv
    // moves to it once it holds it whole.
    let roster = fed.dir.join("federation.toml");
    let text = std::fs::read_to_string(&roster).unwrap();
    let both = text.replace(
        &oprf_block(1, &one),
        &format!("{}\n{}", oprf_block(1, &one), oprf_block(2, &two)),
    );
    assert_ne!(both, text, "hn's epoch 1 key is in the roster source");
    std::fs::write(&roster, &both).unwrap();
    fed.next_roster_version(&["hn", "sv"]).unwrap();
    for n in [&hn, &sv] {
        n.components.trust.reload(Trigger::Request).unwrap();
    }
    eventually("sv holds hn's epoch 2 filter", || async {
        (sv.components.cases.filter_epoch(&hn_id).await.ok()?? == 2).then_some(())
    })
    .await;
    let q = ask(&mut s).await;
    assert!(last_way(&common::audit_log(&sv.components), &q).contains("epoch 2"));

    // The epoch 1 key leaves the roster: hn no longer evaluates with it,
    // and sv asks with epoch 2 only.
    std::fs::write(
        &roster,
        both.replace(&format!("{}\n", oprf_block(1, &one)), ""),
    )
    .unwrap();
    fed.next_roster_version(&["hn", "sv"]).unwrap();
    for n in [&hn, &sv] {
        n.components.trust.reload(Trigger::Request).unwrap();
    }
    assert_eq!(hn.components.cases.active_epochs(), vec![2]);
    assert!(matches!(
        hn.components.cases.evaluate(1, &[]),
        Err(enlace::cases::AnswerError::NoKey(1))
    ));
    let q = ask(&mut s).await;
    assert!(last_way(&common::audit_log(&sv.components), &q).contains("epoch 2"));

    // The retired epoch's filter goes: hn's own entries, sv's view of
    // it, and hn's filter records of it at both nodes, purged to
    // tombstones (audited); epoch 2 stays whole and keeps matching.
    eventually("epoch 1 dropped at both nodes", || async {
        (hn.components.store.filters().own_built_epochs().ok()? == [2].into()
            && sv.components.store.filters().peer_epochs(&hn_id).ok()? == [2].into())
        .then_some(())
    })
    .await;
    for n in [&hn, &sv] {
        let (kept, purged) = eventually("epoch 1's records purged", || async {
            let held = filter_records(n, &hn_id);
            (held.0.iter().all(|e| *e != 1)).then_some(held)
        })
        .await;
        assert!(kept.contains(&2), "{}: {kept:?}", n.components.id);
        assert!(purged >= 1, "{}: no tombstone", n.components.id);
        assert!(
            common::audit_log(&n.components)
                .iter()
                .any(|e| e.action == "record_purged" && e.result.contains("retired epoch 1")),
            "{}",
            n.components.id
        );
    }
    // A purged filter record is still the node's machinery: no listing,
    // every version included, shows its tombstone (as a withdrawal, say).
    let listed = s
        .list_records(pb::ListRecordsRequest {
            origin: "hn".into(),
            all_versions: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .records;
    assert!(
        listed
            .iter()
            .all(|r| !["withdrawal", "match_filter"].contains(&r.kind_name.as_str())),
        "{listed:?}"
    );
    let own = hn.components.store.filters();
    let sources = own.own_sources().unwrap();
    assert!(!sources.is_empty());
    for (source, _) in sources {
        let epochs: Vec<u32> = own
            .own_entries_of(&source)
            .unwrap()
            .iter()
            .map(|(e, _)| *e)
            .collect();
        assert_eq!(epochs, vec![2], "{source}");
    }
    let q = ask(&mut s).await;
    assert!(last_way(&common::audit_log(&sv.components), &q).contains("epoch 2"));
    hn.stop().await.unwrap();
    sv.stop().await.unwrap();
}

/// The epochs of `origin`'s filter records `node` holds whole, and how
/// many of them it holds as tombstones.
fn filter_records(node: &enlace::testing::RunningNode, origin: &NodeId) -> (Vec<u32>, usize) {
    let (records, _) = node
        .components
        .store
        .records()
        .list(0, 100_000, Some(origin))
        .unwrap();
    let mut epochs = Vec::new();
    let mut purged = 0;
    for r in records {
        match &r.content {
            enlace::store::Content::Tombstone(t) => {
                let t = enlace::records::lifecycle::Tombstone::decode(t).unwrap();
                purged += usize::from(t.kind == "match_filter");
            }
            c => {
                let (_, body) = enlace::wire::open_stored(c.envelope().unwrap()).unwrap();
                if let enlace::records::model::RecordKind::MatchFilter(f) = body.kind {
                    epochs.push(f.epoch);
                }
            }
        }
    }
    (epochs, purged)
}
