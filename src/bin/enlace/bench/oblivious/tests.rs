use std::collections::BTreeSet;

use enlace::records::selector::normalise;

use super::*;

fn normalised(v: &[pb::SelectorValue]) -> Vec<String> {
    v.iter()
        .map(|s| {
            let kind = SelectorKind::from_wire(s.kind).unwrap();
            normalise(kind, &s.value).unwrap()
        })
        .collect()
}

#[test]
fn a_query_asks_sixteen_valid_identifiers_the_held_ones_first() {
    let (a, b) = (normalised(&selectors(0)), normalised(&selectors(1)));
    assert_eq!(a.len(), SELECTORS);
    assert_eq!(a.iter().collect::<BTreeSet<_>>().len(), SELECTORS, "{a:?}");
    assert_eq!(a[..HELD.len()], normalised(&held())[..]);
    assert_eq!(a[..HELD.len()], b[..HELD.len()]);
    let new: BTreeSet<_> = a[HELD.len()..].iter().collect();
    assert!(b[HELD.len()..].iter().all(|v| !new.contains(v)), "{b:?}");
}

#[test]
fn a_tally_counts_each_answer_and_keeps_the_first_problem() {
    let answer = |peer: &str, result: pb::QueryResult, hits: Vec<bool>| pb::PeerAnswer {
        peer: peer.into(),
        result: result as i32,
        hits,
        reason: "why".into(),
        ..Default::default()
    };
    let held: Vec<bool> = (0..SELECTORS).map(|i| i < HELD.len()).collect();
    let mut t = Tally::default();
    t.add(
        &pb::QueryResponse {
            query_id: "q".into(),
            answers: vec![
                answer("m001", pb::QueryResult::Hit, held.clone()),
                answer("m002", pb::QueryResult::NoHit, Vec::new()),
                answer("m003", pb::QueryResult::Unreachable, Vec::new()),
            ],
        },
        "m001",
        3,
    );
    assert!(!t.clean());
    assert_eq!((t.hits, t.no_hits, t.unreachable), (1, 1, 1));
    t.add(
        &pb::QueryResponse {
            query_id: "q".into(),
            answers: vec![answer("m002", pb::QueryResult::Hit, held)],
        },
        "m001",
        3,
    );
    assert_eq!(t.wrong, 2, "a missing answer and a hit at the wrong member");
    assert_eq!(t.first_problem.as_deref(), Some("m003 unreachable: why"));
}
