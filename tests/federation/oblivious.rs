//! Oblivious hit/no-hit between real nodes (`docs/selectors.md`): each
//! member's identifiers are in its match filter under its own OPRF key; a
//! querier has each member evaluate its blinded identifiers, checks the
//! proof against the roster, looks in that member's filter, and confirms
//! only a hit. What each end learns, audits and refuses.

use std::sync::Arc;

use crate::common::{self, eventually};
use crate::query_mla::{add_case, answer, passport_answer, query, value};
use common::standin::{self, StandIn};
use enlace::audit::Entry;
use enlace::components::Components;
use enlace::records::filter::MatchFilter;
use enlace::records::model::{NodeId, RecordKind};
use enlace::records::oprf::{Blinded, Output, SecretKey, Tag, input};
use enlace::records::vocabulary::SelectorKind;
use enlace::testing::Sandbox;
use enlace::wire::pb::v1 as pb;

fn id(s: &str) -> NodeId {
    NodeId::parse(s).unwrap()
}

/// Every entry of a node's audit log.
fn audit(c: &Components) -> Vec<Entry> {
    c.store
        .audit()
        .entries(0, 100_000)
        .unwrap()
        .iter()
        .map(|e| Entry::decode(&e.body).unwrap())
        .collect()
}

/// Waits until `at` holds a complete filter of each of `peers` with at
/// least `entries` entries.
async fn filters_ready(at: &Components, peers: &[&str], entries: u64) {
    for p in peers {
        let peer = id(p);
        eventually(&format!("{} holds {p}'s filter", at.id), || {
            let (at, peer) = (at.clone(), peer.clone());
            async move {
                let epoch = at.cases.filter_epoch(&peer).await.unwrap()?;
                let n = at.store.filters().peer_count(&peer).unwrap();
                (n >= entries).then_some(epoch)
            }
        })
        .await;
    }
}

/// hn and sv, hn answering at most 4 identifiers a call and 5 a minute
/// per peer, once sv holds hn's (empty) filter.
async fn budgeted() -> (
    Sandbox,
    enlace::testing::RunningNode,
    enlace::testing::RunningNode,
) {
    let mut fed = Sandbox::create("test-fed", &["hn", "sv"]).await.unwrap();
    let hn_config = fed.member("hn").unwrap().config_path();
    let text = std::fs::read_to_string(&hn_config).unwrap().replace(
        "deadline_ms = 3000\n",
        "deadline_ms = 3000\nmax_selectors = 4\nevaluations_per_minute = 5\n",
    );
    std::fs::write(&hn_config, text).unwrap();
    let hn = fed.start("hn").await.unwrap();
    let sv = fed.start("sv").await.unwrap();
    filters_ready(&sv.components, &["hn"], 0).await;
    (fed, hn, sv)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_hits_at_the_holder_without_showing_the_others_anything_but_the_question() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn", "sv"])
        .await
        .unwrap();
    let gt = fed.start("gt").await.unwrap();
    let hn = fed.start("hn").await.unwrap();
    let sv = fed.start("sv").await.unwrap();
    let mut hn_client = fed.client("hn").await.unwrap();
    let mut gt_client = fed.client("gt").await.unwrap();
    let mut sv_client = fed.client("sv").await.unwrap();
    let case = add_case(
        &mut hn_client,
        "MP-HN-2026-17",
        vec![value(SelectorKind::Passport, "X1234567")],
    )
    .await;
    add_case(
        &mut gt_client,
        "MP-GT-2026-3",
        vec![value(SelectorKind::Passport, "Y7654321")],
    )
    .await;
    filters_ready(&sv.components, &["gt", "hn"], 1).await;

    let justification = "Investigación de red de trata en frontera norte";
    let r = query(
        &mut sv_client,
        vec![
            value(SelectorKind::Passport, "x 123-4567"),
            value(SelectorKind::Phone, "+502 5555 0000"),
        ],
        justification,
    )
    .await
    .unwrap();
    let at_hn = answer(&r, "hn");
    assert_eq!(at_hn.result, pb::QueryResult::Hit as i32, "{at_hn:?}");
    assert_eq!(at_hn.hits, vec![true, false], "per identifier");
    assert_eq!(at_hn.case_refs, vec!["MP-HN-2026-17".to_string()]);
    assert!(
        at_hn
            .contact
            .as_ref()
            .is_some_and(|c| c.unit.contains("(hn)"))
    );
    let at_gt = answer(&r, "gt");
    assert_eq!(at_gt.result, pb::QueryResult::NoHit as i32, "{at_gt:?}");

    // gt evaluated, with the justification, and learnt nothing else: no
    // confirmation, no token digest anywhere in its log.
    let gt_log = audit(&gt.components);
    let evaluated: Vec<&Entry> = gt_log
        .iter()
        .filter(|e| e.action == "query_evaluated" && e.ids == vec![r.query_id.clone()])
        .collect();
    assert_eq!(evaluated.len(), 1, "{gt_log:#?}");
    assert_eq!(evaluated[0].justification, justification);
    assert_eq!(evaluated[0].actor, "sv-operator@sv");
    assert!(evaluated[0].result.starts_with("2 identifiers evaluated"));
    assert!(!gt_log.iter().any(|e| e.action == "query_confirmed"));
    assert!(
        gt_log
            .iter()
            .filter(|e| e.ids.contains(&r.query_id))
            .all(|e| e.token_digests.is_empty())
    );

    // hn evaluated, then confirmed the one hit: its log names its own case.
    let hn_log = audit(&hn.components);
    let confirmed: Vec<&Entry> = hn_log
        .iter()
        .filter(|e| e.action == "query_confirmed" && e.ids.contains(&r.query_id))
        .collect();
    assert_eq!(confirmed.len(), 1, "{hn_log:#?}");
    assert!(confirmed[0].ids.contains(&format!("case:{}", case.case_id)));
    assert!(confirmed[0].result.ends_with(": hit"), "{:?}", confirmed[0]);
    assert!(hn_log.iter().any(|e| e.action == "query_evaluated"));

    // sv says how it asked each member, and sent no shared-key token.
    let sv_log = audit(&sv.components);
    let results: Vec<&Entry> = sv_log
        .iter()
        .filter(|e| e.action == "query_result" && e.ids.contains(&r.query_id))
        .collect();
    assert_eq!(results.len(), 2);
    for e in &results {
        assert!(e.result.contains("(oblivious, epoch 1)"), "{e:?}");
        assert!(e.token_digests.is_empty(), "{e:?}");
    }

    // A confirmation counts only with the tag an evaluation yields: the
    // entry alone, as copied from hn's published filter, confirms nothing.
    let hn_key = SecretKey::read(&fed.member("hn").unwrap().dir.join("oprf-1.key")).unwrap();
    let real = hn_key.output(SelectorKind::Passport, "X1234567").unwrap();
    let copied = Output {
        entry: real.entry,
        tag: Tag([0; 16]),
    };
    let confirm = |o: Output| hn.components.cases.confirm(1, &[o]).unwrap().hits;
    assert_eq!(confirm(copied), vec![false]);
    assert_eq!(confirm(real), vec![true]);
    assert!(matches!(
        hn.components.cases.confirm(2, &[real]),
        Err(enlace::cases::AnswerError::NoKey(2))
    ));

    // Closing the case takes its identifier out of hn's filter, and the
    // removal reaches sv; the next query finds nothing there.
    let hn_id = id("hn");
    let before = sv.components.store.filters().peer_count(&hn_id).unwrap();
    hn_client
        .close_case(pb::CloseCaseRequest {
            case_id: case.case_id.clone(),
        })
        .await
        .unwrap();
    eventually("sv holds hn's removal", || async {
        sv.components.cases.catch_up(&hn_id).await.ok()?;
        (sv.components.store.filters().peer_count(&hn_id).ok()? < before).then_some(())
    })
    .await;
    let r = query(
        &mut sv_client,
        vec![value(SelectorKind::Passport, "X1234567")],
        justification,
    )
    .await
    .unwrap();
    assert_eq!(answer(&r, "hn").result, pb::QueryResult::NoHit as i32);
    for n in [gt, hn, sv] {
        n.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_carries_no_selector_and_its_identifiers_hit_until_it_is_withdrawn() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["hn", "sv"]).await.unwrap();
    let hn = fed.start("hn").await.unwrap();
    let sv = fed.start("sv").await.unwrap();
    let mut hn_client = fed.client("hn").await.unwrap();
    let mut sv_client = fed.client("sv").await.unwrap();
    let published = hn_client
        .publish_alert(pb::PublishAlertRequest {
            alert: Some(enlace::testing::sample_alert("Posible víctima en tránsito")),
            selector_values: vec![value(SelectorKind::Passport, "X1234567")],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    // The record sv receives has no selector.
    let held = eventually("sv holds the alert", || {
        let mut c = sv_client.clone();
        let record_id = published.record_id.clone();
        async move {
            c.get_record(pb::GetRecordRequest { record_id })
                .await
                .ok()
                .map(tonic::Response::into_inner)
        }
    })
    .await;
    match held.kind {
        Some(pb::record_view::Kind::Alert(a)) => assert!(a.selectors.is_empty(), "{a:?}"),
        other => panic!("not an alert: {other:?}"),
    }
    // sv's view of hn's filter follows the records as they arrive, not
    // only when a query needs it.
    eventually("sv's view holds hn's entry unasked", || async {
        (sv.components.store.filters().peer_count(&id("hn")).ok()? >= 1).then_some(())
    })
    .await;
    filters_ready(&sv.components, &["hn"], 1).await;
    let r = query(
        &mut sv_client,
        vec![value(SelectorKind::Passport, "X1234567")],
        "Verificación de alerta",
    )
    .await
    .unwrap();
    let at_hn = answer(&r, "hn");
    assert_eq!(at_hn.result, pb::QueryResult::Hit as i32, "{at_hn:?}");
    assert!(at_hn.case_refs.is_empty(), "an alert is no case reference");

    // An alert for named members puts nothing into the filter: every
    // member would see it change right after a record it did not receive.
    let sources = || hn.components.store.filters().own_sources().unwrap().len();
    assert_eq!(sources(), 1);
    let seq = hn.components.store.filters().own_filter_seq(1).unwrap();
    hn_client
        .publish_alert(pb::PublishAlertRequest {
            alert: Some(enlace::testing::sample_alert("Solo para sv")),
            to: vec!["sv".into()],
            selector_values: vec![value(SelectorKind::Passport, "Q7777777")],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(sources(), 1, "no identifiers of the named alert");
    assert_eq!(
        hn.components.store.filters().own_filter_seq(1).unwrap(),
        seq
    );
    // Clear values and shared-key tokens are not mixed in one query.
    let mixed = sv_client
        .query(pb::QueryRequest {
            selector_values: vec![value(SelectorKind::Passport, "X1234567")],
            selectors: vec![pb::Selector {
                kind: SelectorKind::Passport.wire(),
                epoch: 1,
                token: vec![7; 32],
            }],
            justification: "Mezcla".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        mixed.message().contains("not both in one query"),
        "{mixed:?}"
    );

    let hn_id = id("hn");
    let before = sv.components.store.filters().peer_count(&hn_id).unwrap();
    hn_client
        .withdraw_record(pb::WithdrawRecordRequest {
            record_id: published.record_id.clone(),
            reason: "Persona localizada".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    eventually("sv holds hn's removal", || async {
        sv.components.cases.catch_up(&hn_id).await.ok()?;
        (sv.components.store.filters().peer_count(&hn_id).ok()? < before).then_some(())
    })
    .await;
    let r = query(
        &mut sv_client,
        vec![value(SelectorKind::Passport, "X1234567")],
        "Verificación de alerta",
    )
    .await
    .unwrap();
    assert_eq!(answer(&r, "hn").result, pb::QueryResult::NoHit as i32);
    hn.stop().await.unwrap();
    sv.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_evaluates_with_another_key_than_its_roster_key_is_refused() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["hn", "sv"]).await.unwrap();
    let hn_id = id("hn");
    // hn's filter holds the passport under its real roster key, in a
    // record signed by hn: only the proof can tell the answer is wrong.
    let hn_dir = fed.member("hn").unwrap().dir.clone();
    let roster_key = SecretKey::read(&hn_dir.join("oprf-1.key")).unwrap();
    let filter = MatchFilter {
        epoch: 1,
        added: vec![
            roster_key
                .entry(SelectorKind::Passport, "X1234567")
                .unwrap(),
        ],
        removed: Vec::new(),
        complete: true,
    };
    let settings =
        enlace::trust::load::settings(&fed.member("hn").unwrap().config_path(), None).unwrap();
    let record = standin::signed_record(&settings, &hn_id, 1, RecordKind::MatchFilter(filter));
    let (other, _) = SecretKey::generate(1).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    standin::serve(
        &mut fed,
        "hn",
        StandIn {
            batch: Some(pb::PullBatch {
                records: vec![record.to_pb()],
                high_water: 1,
                head: 1,
            }),
            evaluate_with: Some(Arc::new(other)),
            ..Default::default()
        },
        stop_rx,
    );
    let sv = fed.start("sv").await.unwrap();
    filters_ready(&sv.components, &["hn"], 1).await;
    let mut sv_client = fed.client("sv").await.unwrap();
    let r = query(
        &mut sv_client,
        vec![value(SelectorKind::Passport, "X1234567")],
        "Prueba de clave",
    )
    .await
    .unwrap();
    let at_hn = answer(&r, "hn");
    assert_eq!(at_hn.result, pb::QueryResult::Refused as i32, "{at_hn:?}");
    assert!(
        at_hn
            .reason
            .contains("the proof does not verify against the member's roster key of epoch 1"),
        "{at_hn:?}"
    );
    let log = audit(&sv.components);
    assert!(log.iter().any(|e| {
        e.action == "query_result"
            && e.ids.contains(&r.query_id)
            && e.result
                .starts_with("refused: not an answer: the proof does not verify")
    }));
    let _ = stop_tx.send(true);
    sv.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluations_are_budgeted_per_identifier_and_a_refusal_is_explicit_and_audited() {
    common::init_tracing();
    let (fed, hn, sv) = budgeted().await;
    let mut sv_client = fed.client("sv").await.unwrap();
    let phones = |from: u32| -> Vec<pb::SelectorValue> {
        (from..from + 4)
            .map(|n| value(SelectorKind::Phone, &format!("+50255550{n:03}")))
            .collect()
    };
    let first = query(&mut sv_client, phones(0), "Presupuesto")
        .await
        .unwrap();
    assert_eq!(answer(&first, "hn").result, pb::QueryResult::NoHit as i32);
    // Four more identifiers: one is left of the five a minute.
    let second = query(&mut sv_client, phones(4), "Presupuesto")
        .await
        .unwrap();
    let at_hn = answer(&second, "hn");
    assert_eq!(at_hn.result, pb::QueryResult::Refused as i32, "{at_hn:?}");
    assert!(
        at_hn.reason.contains(
            "rate limit: at most 5 identifiers evaluated or confirmed per minute for sv; 4 asked"
        ),
        "{at_hn:?}"
    );
    let log = audit(&hn.components);
    let refused: Vec<&Entry> = log
        .iter()
        .filter(|e| e.action == "query_refused" && e.ids.contains(&second.query_id))
        .collect();
    assert_eq!(refused.len(), 1, "{log:#?}");
    assert!(refused[0].result.starts_with("Evaluate: rate limit"));
    assert_eq!(refused[0].justification, "Presupuesto");
    // The refused call took nothing: the one left still answers.
    let third = query(&mut sv_client, phones(8)[..1].to_vec(), "Presupuesto")
        .await
        .unwrap();
    assert_eq!(answer(&third, "hn").result, pb::QueryResult::NoHit as i32);
    hn.stop().await.unwrap();
    sv.stop().await.unwrap();
}

/// An alert is stored before its identifiers go into the filter; a node
/// that stops in between has acknowledged nothing, and the agency's retry
/// with its idempotency key stores nothing twice and puts the identifiers
/// in (`docs/selectors.md`, "Alerts").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publication_retried_with_its_key_puts_the_identifiers_it_lost_in_the_filter() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["hn", "sv"]).await.unwrap();
    let hn = fed.start("hn").await.unwrap();
    let sv = fed.start("sv").await.unwrap();
    let mut hn_client = fed.client("hn").await.unwrap();
    let sv_client = fed.client("sv").await.unwrap();
    common::filter_published(&hn.components).await;
    // The record stored, and the node gone before the identifiers.
    let sample = || enlace::testing::sample_alert("Posible víctima en tránsito");
    let mut errors = enlace::records::model::Errors::default();
    let mut wire = sample();
    wire.expires_at_ms = enlace::clock::now_ms() + 86_400_000;
    wire.urgency = enlace::records::vocabulary::Urgency::Routine.wire();
    wire.subject_category = enlace::records::vocabulary::SubjectCategory::Victim.wire();
    let alert = enlace::wire::alert_from_pb(wire, "alert", &mut errors);
    let alert = alert.unwrap_or_else(|| panic!("{errors:?}"));
    let first = hn
        .components
        .publisher
        .apply_change(
            enlace::publish::Change::Publish {
                content: enlace::records::model::Content::Alert(alert),
                recipients: Vec::new(),
                key: Some(enlace::publish::PublishKey::parse("HN-ALERTA-77").unwrap()),
            },
            false,
            "hn-operator",
        )
        .await
        .unwrap()
        .unwrap();
    let sources = || hn.components.store.filters().own_sources().unwrap().len();
    assert_eq!(sources(), 0);

    let retried = hn_client
        .publish_alert(pb::PublishAlertRequest {
            alert: Some(sample()),
            selector_values: vec![value(SelectorKind::Passport, "X1234567")],
            idempotency_key: "HN-ALERTA-77".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(retried.already_published, "{retried:?}");
    assert_eq!(retried.record_id, first.body.record_id);
    assert_eq!(sources(), 1, "the retry put the identifiers in");
    filters_ready(&sv.components, &["hn"], 1).await;
    passport_answer(
        &sv_client,
        "X1234567",
        "Verificación de alerta",
        "hn",
        pb::QueryResult::Hit,
    )
    .await;
    hn.stop().await.unwrap();
    sv.stop().await.unwrap();
}

/// A malformed `Evaluate` or `Confirm` (epoch 0, an element that is not a
/// ristretto255 point, an entry without its tag) is refused as an invalid
/// argument naming the field, on record, and before any identifier's
/// budget: the caller's identifiers of the minute are all still there.
/// A malformed evaluation still takes one of the caller's queries of the
/// minute, so that garbage in a loop runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_evaluation_or_confirmation_is_refused_before_any_identifier_budget() {
    common::init_tracing();
    let (fed, hn, sv) = budgeted().await;
    // sv's own node identity, sending what its node never would.
    let mut raw = crate::budgets::raw_peer(&fed, "sv", "hn");
    let point = Blinded::new(vec![input(SelectorKind::Phone, "+50255550000")])
        .unwrap()
        .elements
        .remove(0);
    let evaluate = |epoch: u32, blinded: Vec<Vec<u8>>| pb::EvaluateRequest {
        query_id: "q-sv-malformed".into(),
        epoch,
        blinded,
        justification: "Malformada".into(),
        requested_by: "analyst".into(),
    };
    let mut not_a_point = vec![point.clone(); 4];
    not_a_point[3] = vec![0xff; 32];
    // Each would have taken four of the five identifiers of the minute.
    for _ in 0..3 {
        for (req, message) in [
            (
                evaluate(0, vec![point.clone(); 4]),
                "epoch: must be 1 or more",
            ),
            (
                evaluate(1, not_a_point.clone()),
                "blinded[3]: is not a ristretto255 element",
            ),
        ] {
            let refused = raw.evaluate(req).await.expect_err("refused");
            assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
            assert!(refused.message().starts_with(message), "{refused:?}");
        }
        let refused = raw
            .confirm(pb::ConfirmRequest {
                query_id: "q-sv-malformed".into(),
                epoch: 1,
                entries: vec![vec![7; 16]; 4],
                justification: "Malformada".into(),
                requested_by: "analyst".into(),
            })
            .await
            .expect_err("refused");
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
        assert!(
            refused
                .message()
                .starts_with("entries[0]: must be 32 bytes, an entry and its tag (got 16)"),
            "{refused:?}"
        );
    }
    // Nothing was spent: four identifiers are still evaluated.
    let mut sv_client = fed.client("sv").await.unwrap();
    let phones = (0..4)
        .map(|n| value(SelectorKind::Phone, &format!("+50255550{n:03}")))
        .collect();
    let r = query(&mut sv_client, phones, "Presupuesto").await.unwrap();
    assert_eq!(
        answer(&r, "hn").result,
        pb::QueryResult::NoHit as i32,
        "{r:?}"
    );
    let log = audit(&hn.components);
    assert!(
        log.iter().any(|e| e.action == "query_refused"
            && e.result.starts_with("Evaluate: epoch: must be 1 or more")),
        "{log:#?}"
    );
    // hn's 30 queries a minute (7 spent) run out on malformed calls too.
    let mut exhausted = None;
    for _ in 0..40 {
        let refused = raw
            .evaluate(evaluate(0, vec![point.clone()]))
            .await
            .expect_err("refused");
        if refused.code() == tonic::Code::ResourceExhausted {
            exhausted = Some(refused);
            break;
        }
    }
    let exhausted = exhausted.expect("malformed evaluations take queries of the minute");
    assert!(
        exhausted.message().contains("queries per minute"),
        "{exhausted:?}"
    );
    hn.stop().await.unwrap();
    sv.stop().await.unwrap();
}
