//! Protection: a hand-worked example, the errors, and properties over
//! random sparse tables checked by an independent interval computation over
//! the published cells only ([`check`]).

use std::time::Instant;

use proptest::prelude::*;

use super::*;
use crate::records::stats::Period;

const Y: Period = Period::Year(2026);

fn counts(kind: TableKind, interior: Vec<u64>) -> Counts {
    Counts {
        kind,
        period: Y,
        interior,
    }
}

fn v(coords: &[u8]) -> Key {
    coords.iter().map(|c| Coord::Value(*c)).collect()
}

fn cell<'a>(table: &'a ProtectedTable, key: &[Coord]) -> &'a Cell {
    table
        .cells
        .iter()
        .find(|c| c.key == key)
        .expect("every key is a cell")
}

#[test]
fn one_primary_cell_forces_the_rectangle() {
    // sex (female, male, unknown) × age (child, adult, unknown):
    //   1  4  0 |  5
    //   5  6  0 | 11
    //   0  0  0 |  0
    //   6 10  0 | 16
    // (female, child) = 1 is primary. Row and column totals fix it, so the
    // smallest sibling in its row (4) is suppressed, then the one in its
    // column (5), then (male, adult) = 6, which closes the rectangle:
    // x00 = a ∈ [0, 5], x01 = 5 − a, x10 = 6 − a, x11 = 5 + a.
    let c = counts(TableKind::Smuggled, vec![1, 4, 0, 5, 6, 0, 0, 0, 0]);
    let t = protect(&c, Method::Suppression { threshold: 3 }, &[]).expect("protects");
    assert_eq!(cell(&t, &v(&[0, 0])).suppressed, Some(Suppression::Primary));
    for k in [[0, 1], [1, 0], [1, 1]] {
        assert_eq!(cell(&t, &v(&k)).suppressed, Some(Suppression::Secondary));
    }
    assert_eq!(suppressed_keys(&t).len(), 4);
    let total = vec![Coord::Total, Coord::Total];
    assert_eq!(cell(&t, &total).value, Some(16));
    assert_eq!(cell(&t, &[Coord::Value(0), Coord::Total]).value, Some(5));
    assert_eq!(cell(&t, &v(&[2, 2])).value, Some(0));
    check(&t, 3).expect("safe");
    // Publishing (male, adult) instead would expose the primary cell.
    let mut exposed = t.clone();
    for cell in &mut exposed.cells {
        if cell.key == v(&[1, 1]) {
            cell.value = Some(6);
            cell.suppressed = None;
        }
    }
    let mut wrong = t.clone();
    if let Some(c) = wrong.cells.iter_mut().find(|c| c.key == v(&[2, 2])) {
        c.value = Some(1);
    }
    assert!(matches!(
        check(&wrong, 3),
        Err(ProtectError::Inconsistent { .. })
    ));
    let err = check(&exposed, 3).expect_err("recoverable");
    assert!(matches!(err, ProtectError::Recoverable { .. }), "{err}");
    assert!(
        err.to_string().contains("sex=female, age_group=child"),
        "{err}"
    );
}

#[test]
fn no_more_is_hidden_than_protection_needs() {
    // Two girls and six women:
    //   2  6  0 |  8
    //   0  0  0 |  0
    //   0  0  0 |  0
    //   2  6  0 |  8
    // (female, child) and (total, child) are primary. The female total
    // would give the girls away through the women, so the women are
    // hidden, and the adult total with them. That is enough: from the
    // female total and the grand total (both 8) the girls can be anything
    // from 0 to 8. The greedy pass alone also hid both totals.
    let c = counts(TableKind::Smuggled, vec![2, 6, 0, 0, 0, 0, 0, 0, 0]);
    let t = protect(&c, Method::Suppression { threshold: 5 }, &[]).expect("protects");
    let hidden: Vec<(Key, Suppression)> = t
        .cells
        .iter()
        .filter_map(|c| c.suppressed.map(|s| (c.key.clone(), s)))
        .collect();
    assert_eq!(
        hidden,
        vec![
            (v(&[0, 0]), Suppression::Primary),
            (v(&[0, 1]), Suppression::Secondary),
            (vec![Coord::Total, Coord::Value(0)], Suppression::Primary),
            (vec![Coord::Total, Coord::Value(1)], Suppression::Secondary),
        ]
    );
    assert_eq!(cell(&t, &[Coord::Value(0), Coord::Total]).value, Some(8));
    assert_eq!(cell(&t, &[Coord::Total, Coord::Total]).value, Some(8));
    check(&t, 5).expect("safe");
}

#[test]
fn a_victims_table_with_small_cells_still_publishes_its_totals() {
    // Girls (2) and women (6) sexually exploited, women in forced labour
    // (10), all nationals. Without the second pass every non-zero cell of
    // this table was hidden, the grand total included.
    let spec = TableKind::Victims.spec();
    let mut c = Counts::zero(TableKind::Victims, Y);
    let at = |sex, age, form| spec.interior_index(&v(&[sex, age, form, 0])).unwrap();
    c.interior[at(0, 0, 0)] = 2;
    c.interior[at(0, 1, 0)] = 6;
    c.interior[at(0, 1, 1)] = 10;
    let t = protect(&c, Method::Suppression { threshold: 5 }, &[]).expect("protects");
    check(&t, 5).expect("safe");
    let total = vec![Coord::Total; 4];
    assert_eq!(cell(&t, &total).value, Some(18));
    assert_eq!(
        cell(&t, &v(&[0, 0, 0, 0])).suppressed,
        Some(Suppression::Primary)
    );
    let published = t
        .cells
        .iter()
        .filter(|c| c.value.is_some_and(|v| v > 0))
        .count();
    assert!(published >= 10, "only {published} non-zero cells published");
}

#[test]
fn parameters_and_shapes_are_checked() {
    let c = Counts::zero(TableKind::Smuggled, Y);
    assert_eq!(
        protect(&c, Method::Suppression { threshold: 2 }, &[]),
        Err(ProtectError::ThresholdTooLow(2))
    );
    assert_eq!(
        protect(&c, Method::Rounding { base: 1 }, &[]),
        Err(ProtectError::BaseTooLow(1))
    );
    let short = counts(TableKind::Smuggled, vec![0; 4]);
    assert!(matches!(
        protect(&short, Method::Rounding { base: 5 }, &[]),
        Err(ProtectError::Shape { .. })
    ));
    let bad = vec![Coord::Value(7), Coord::Total];
    assert!(matches!(
        protect(&c, Method::Suppression { threshold: 3 }, &[bad]),
        Err(ProtectError::NotACell { .. })
    ));
}

#[test]
fn rounding_half_up_and_adds_up() {
    let c = counts(TableKind::Smuggled, vec![1, 2, 3, 7, 8, 12, 13, 0, 100]);
    let t = protect(&c, Method::Rounding { base: 5 }, &[]).expect("rounds");
    let interior: Vec<u64> = (0..9)
        .map(|i| {
            let key = TableKind::Smuggled.spec().interior_key(i);
            cell(&t, &key).value.unwrap_or(u64::MAX)
        })
        .collect();
    assert_eq!(interior, vec![0, 0, 5, 5, 10, 10, 15, 0, 100]);
    check(&t, 3).expect("adds up");
    let mut off = t.clone();
    off.cells[0].value = Some(10);
    assert!(matches!(
        check(&off, 3),
        Err(ProtectError::Inconsistent { .. })
    ));
    off.cells[0].value = Some(1);
    assert!(matches!(
        check(&off, 3),
        Err(ProtectError::Inconsistent { .. })
    ));
}

/// A sparse victims table with a handful of victims; reports the time.
#[test]
fn sparse_victims_table_is_protected_quickly() {
    let spec = TableKind::Victims.spec();
    let mut interior = vec![0; spec.interior_len()];
    for (i, n) in [
        (0usize, 1u64),
        (13, 4),
        (140, 2),
        (141, 9),
        (500, 1),
        (980, 15),
    ] {
        interior[i] = n;
    }
    let c = counts(TableKind::Victims, interior);
    let started = Instant::now();
    let t = protect(&c, Method::Suppression { threshold: 3 }, &[]).expect("protects");
    let elapsed = started.elapsed();
    eprintln!(
        "protect(victims, 6 non-zero interior cells): {elapsed:?}, {} of {} cells suppressed",
        suppressed_keys(&t).len(),
        t.cells.len()
    );
    check(&t, 3).expect("safe");
    assert_published_truth(&c, &t, &[]);
}

/// A busier victims table: 40 non-zero interior cells spread by a fixed
/// linear congruential sequence; reports the time.
#[test]
fn busier_victims_table_is_protected() {
    let spec = TableKind::Victims.spec();
    let mut interior = vec![0; spec.interior_len()];
    let mut x: u64 = 12345;
    for _ in 0..40 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let i = ((x >> 33) as usize) % interior.len();
        interior[i] = 1 + (x >> 20) % 15;
    }
    let c = counts(TableKind::Victims, interior);
    let started = Instant::now();
    let t = protect(&c, Method::Suppression { threshold: 3 }, &[]).expect("protects");
    let elapsed = started.elapsed();
    eprintln!(
        "protect(victims, 40 non-zero interior cells): {elapsed:?}, {} of {} cells suppressed",
        suppressed_keys(&t).len(),
        t.cells.len()
    );
    check(&t, 3).expect("safe");
    assert_published_truth(&c, &t, &[]);
}

fn assert_published_truth(c: &Counts, t: &ProtectedTable, previous: &[Key]) {
    assert_eq!(t.cells.len(), c.kind.spec().all_keys().len());
    for cell in &t.cells {
        let truth = c.value(&cell.key);
        match cell.value {
            Some(v) => assert_eq!(v, truth, "{:?}", cell.key),
            None => assert!(cell.suppressed.is_some()),
        }
        // Zeros are published, unless cells kept from an earlier version
        // are zero now and can only be protected by other zeros.
        if truth == 0 && previous.is_empty() {
            assert_eq!(cell.value, Some(0), "a zero is published");
        }
        if let Method::Suppression { threshold } = t.method
            && (1..u64::from(threshold)).contains(&truth)
        {
            assert_eq!(cell.suppressed, Some(Suppression::Primary));
        }
    }
    for key in previous {
        assert!(cell(t, key).value.is_none(), "previous cell published");
    }
}

/// A sparse table: about a third of the interior cells non-zero.
fn sparse(kind: TableKind) -> impl Strategy<Value = Counts> {
    let n = kind.spec().interior_len();
    proptest::collection::vec(prop_oneof![3 => Just(0u64), 1 => 1u64..4, 1 => 4u64..20], n)
        .prop_map(move |interior| counts(kind, interior))
}

fn small_table() -> impl Strategy<Value = Counts> {
    prop_oneof![sparse(TableKind::Smuggled), sparse(TableKind::Persons)]
}

/// A victims table with up to six non-zero interior cells.
fn victims_handful() -> impl Strategy<Value = Counts> {
    let n = TableKind::Victims.spec().interior_len();
    proptest::collection::vec((0..n, 1u64..12), 1..6).prop_map(move |cells| {
        let mut interior = vec![0; n];
        for (i, v) in cells {
            interior[i] = v;
        }
        counts(TableKind::Victims, interior)
    })
}

fn previous_of(c: &Counts, picks: &[proptest::sample::Index]) -> Vec<Key> {
    let keys = c.kind.spec().all_keys();
    picks
        .iter()
        .map(|p| keys[p.index(keys.len())].clone())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn suppression_protects_small_tables(
        c in small_table(),
        threshold in 3u32..6,
        picks in proptest::collection::vec(any::<proptest::sample::Index>(), 0..3),
    ) {
        let previous = previous_of(&c, &picks);
        let t = protect(&c, Method::Suppression { threshold }, &previous).expect("protects");
        prop_assert!(check(&t, threshold).is_ok(), "{:?}", check(&t, threshold));
        assert_published_truth(&c, &t, &previous);
        // The next version keeps this one's suppressed cells.
        let again = protect(&c, Method::Suppression { threshold }, &suppressed_keys(&t)).expect("protects");
        for key in suppressed_keys(&t) {
            prop_assert!(cell(&again, &key).value.is_none());
        }
    }

    #[test]
    fn rounding_adds_up_in_multiples(c in small_table(), base in 2u32..11) {
        let t = protect(&c, Method::Rounding { base }, &[]).expect("rounds");
        prop_assert!(check(&t, 3).is_ok());
        for cell in &t.cells {
            prop_assert!(cell.suppressed.is_none());
            prop_assert_eq!(cell.value.unwrap_or(1) % u64::from(base), 0);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn suppression_protects_sparse_victims_tables(c in victims_handful(), threshold in 3u32..5) {
        let t = protect(&c, Method::Suppression { threshold }, &[]).expect("protects");
        prop_assert!(check(&t, threshold).is_ok(), "{:?}", check(&t, threshold));
        assert_published_truth(&c, &t, &[]);
    }
}
