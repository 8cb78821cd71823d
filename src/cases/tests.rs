//! The case index on its own: a real store from a sandbox, no node
//! running; the one test that queries dials members whose ports are shut.

use std::sync::Arc;

use super::index::{classify, judge};
use super::{CaseError, LocalCase, PeerResult, StoredToken, index_key};
use crate::audit::Entry;
use crate::clock::ManualClock;
use crate::records::model::NodeId;
use crate::records::selector::Token;
use crate::records::vocabulary::{CaseStage, Offence, SelectorKind};
use crate::store::Store;
use crate::testing::Sandbox;

#[test]
fn stored_tokens_round_trip() {
    let t = Token {
        kind: SelectorKind::Passport,
        epoch: 2,
        token: [0xab; 32],
    };
    assert_eq!(StoredToken::from_token(&t).to_token(), Some(t));
    assert_eq!(index_key(&t).len(), 37);
}

const NOW: i64 = 1_780_000_000_000;

async fn sandbox(ids: &[&str]) -> Sandbox {
    let mut s = Sandbox::create("cases-test", ids).await.expect("sandbox");
    s.clock = Arc::new(ManualClock::starting_at(NOW));
    s
}

fn token(byte: u8) -> Token {
    Token {
        kind: SelectorKind::Passport,
        epoch: 1,
        token: [byte; 32],
    }
}

fn case(id: &str, tokens: &[Token]) -> LocalCase {
    LocalCase {
        case_id: id.into(),
        case_number: format!("MP-{id}"),
        offence: Offence::Trafficking,
        stage: CaseStage::Investigation,
        contact: None,
        selectors: tokens.iter().map(StoredToken::from_token).collect(),
        victims: Vec::new(),
        offenders: Vec::new(),
        closed: false,
        created_at_ms: 0,
        updated_at_ms: 0,
        highest_stage: None,
        stage_reached_at_ms: 0,
    }
}

fn audit_log(store: &Store) -> Vec<Entry> {
    store
        .audit()
        .entries(0, 1000)
        .expect("audit entries")
        .iter()
        .map(|e| Entry::decode(&e.body).expect("entry"))
        .collect()
}

#[tokio::test]
async fn a_case_answers_for_its_selectors_until_it_is_closed() {
    let sandbox = sandbox(&["gt", "hn"]).await;
    let gt = sandbox.components("gt").unwrap();
    let stored = gt
        .cases
        .put_case(case("c1", &[token(1)]), None, true, "gt-operator")
        .await
        .expect("registered");
    assert_eq!(stored.created_at_ms, NOW);
    let (hits, numbers) = gt.cases.match_tokens(&[token(1), token(2)]).unwrap();
    assert_eq!(hits, vec![true, false]);
    assert_eq!(numbers, vec!["MP-c1".to_string()]);
    let entry = audit_log(&gt.store).pop().expect("audited");
    assert_eq!(entry.action, "case_registered");
    assert_eq!(entry.ids, vec!["c1".to_string()]);
    assert_eq!(entry.token_digests.len(), 1);

    let mut closed = case("c1", &[token(1)]);
    closed.closed = true;
    gt.cases
        .put_case(closed, None, false, "gt-operator")
        .await
        .unwrap();
    let (hits, numbers) = gt.cases.match_tokens(&[token(1)]).unwrap();
    assert_eq!(hits, vec![false], "a closed case answers no query");
    assert!(numbers.is_empty());
    assert_eq!(audit_log(&gt.store).pop().unwrap().action, "case_closed");
    assert!(gt.cases.local_case("c1").unwrap().closed);

    let missing = gt
        .cases
        .put_case(case("c2", &[]), None, false, "gt-operator")
        .await
        .expect_err("an update of an unknown case");
    assert!(matches!(missing, CaseError::NotFound(ref id) if id == "c2"));
    assert_eq!(gt.cases.local_cases().unwrap().len(), 1);
}

#[tokio::test]
async fn each_peer_spends_its_own_query_budget() {
    let sandbox = sandbox(&["gt", "hn", "sv"]).await;
    let gt = sandbox.components("gt").unwrap();
    let (hn, sv) = (NodeId::parse("hn").unwrap(), NodeId::parse("sv").unwrap());
    for _ in 0..gt.trust.policy().query.max_per_minute {
        gt.cases.admit_query(&hn).expect("within the budget");
    }
    let wait = gt.cases.admit_query(&hn).expect_err("one too many");
    assert!(!wait.is_zero());
    gt.cases.admit_query(&sv).expect("sv has its own budget");
}

#[tokio::test]
async fn a_query_is_audited_before_it_leaves_and_each_answer_when_it_is_in() {
    let mut sandbox = sandbox(&["gt", "hn"]).await;
    // hn's ports are shut: dialling it is refused at once.
    drop(sandbox.take_listeners("hn"));
    let gt = sandbox.components("gt").unwrap();
    let answers = gt
        .cases
        .query(
            "gt-operator",
            "q-1",
            super::Ask {
                ids: Vec::new(),
                legacy: Some(crate::records::selector::QueryTokens::new(
                    vec![token(1)],
                    &[],
                )),
            },
            "Caso MP-c1",
        )
        .await
        .expect("asked");
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].0.as_str(), "hn");
    assert!(
        matches!(answers[0].1, PeerResult::Unreachable(_)),
        "{:?}",
        answers[0].1
    );
    let log = audit_log(&gt.store);
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, vec!["query_sent", "query_result"]);
    assert_eq!(log[0].justification, "Caso MP-c1");
    assert_eq!(log[0].counterparts, vec!["hn".to_string()]);
    assert!(
        log[1].result.starts_with("unreachable"),
        "{}",
        log[1].result
    );
}

#[test]
fn an_answer_that_is_not_one_is_refused_and_a_network_failure_is_unreachable() {
    let garbage = classify(tonic::Status::internal("failed to decode Protobuf message"));
    assert!(
        matches!(garbage, PeerResult::Refused(ref why) if why.contains("not an answer")),
        "{garbage:?}"
    );
    let down = classify(tonic::Status::unavailable("tcp connect error"));
    assert!(matches!(down, PeerResult::Unreachable(_)), "{down:?}");
    let no = classify(tonic::Status::resource_exhausted("rate limit"));
    assert_eq!(no, PeerResult::Refused("rate limit".into()));

    let answer = |hits: Vec<bool>| crate::wire::MatchAnswer {
        hits,
        case_refs: Vec::new(),
        contact: None,
    };
    assert!(
        matches!(judge(answer(vec![true]), 2), PeerResult::Refused(ref why) if why.contains("1 results for 2"))
    );
    assert_eq!(judge(answer(vec![false, false]), 2), PeerResult::NoHit);
    assert!(matches!(
        judge(answer(vec![false, true]), 2),
        PeerResult::Hit { .. }
    ));
}

#[test]
fn a_case_counts_at_the_highest_stage_it_reached_and_when() {
    let mut c = case("c1", &[]);
    c.track_stage(None, 100);
    assert_eq!(c.reached(), (CaseStage::Investigation, 100));
    let stored = c.clone();
    let mut up = stored.clone();
    up.stage = CaseStage::Prosecution;
    up.track_stage(Some(&stored), 200);
    assert_eq!(up.reached(), (CaseStage::Prosecution, 200));
    // Closing does not lower the stage nor move the date.
    let stored = up.clone();
    let mut closed = stored.clone();
    closed.stage = CaseStage::Closed;
    closed.track_stage(Some(&stored), 300);
    assert_eq!(closed.reached(), (CaseStage::Prosecution, 200));
    // A client that sends the stored date back gives nothing: the date
    // follows the stage when it rises.
    let stored = closed.clone();
    let mut trial = stored.clone();
    trial.stage = CaseStage::Trial;
    trial.track_stage(Some(&stored), 400);
    assert_eq!(trial.reached(), (CaseStage::Trial, 400));
    // A date given for a case recorded after the fact is kept.
    let mut late = case("c2", &[]);
    late.stage = CaseStage::Convicted;
    late.stage_reached_at_ms = 50;
    late.track_stage(None, 500);
    assert_eq!(late.reached(), (CaseStage::Convicted, 50));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_of_one_source_leave_only_the_last_ones_entries() {
    use super::own::{Identifier, alert_source};
    let sandbox = sandbox(&["gt"]).await;
    let gt = sandbox.components("gt").unwrap();
    let source = alert_source("series-1");
    for round in 0..40u32 {
        let writes: Vec<_> = (0..8u32)
            .map(|i| {
                let cases = gt.cases.clone();
                let source = source.clone();
                tokio::spawn(async move {
                    let id = Identifier {
                        kind: SelectorKind::Passport,
                        value: format!("X{round:03}{i:04}"),
                    };
                    cases.put_own_source(&source, Some(&[id])).await
                })
            })
            .collect();
        for w in writes {
            w.await.expect("task").expect("written");
        }
        // Each write gives the source one identifier: whichever came last,
        // the source has one entry under the node's one key, not one left
        // behind by a write that read the same old entries.
        let entries = gt.store.filters().own_entries_of(&source).expect("read");
        assert_eq!(entries.len(), 1, "round {round}: {entries:?}");
    }
}
