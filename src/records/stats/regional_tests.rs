//! Three members by hand: `cr` rounds to base 5, `gt` publishes every cell
//! exactly, `hn` suppressed a few cells (marked by hand; the protection
//! itself is tested in `protect`).

use super::*;
use crate::records::stats::report::StatisticalReport;
use crate::records::stats::table::{Cell, Counts, ProtectedTable, TOTAL};

const F: Coord = Coord::Value(0); // female
const M: Coord = Coord::Value(1); // male
const U: Coord = Coord::Value(2); // sex unknown
const CHILD: Coord = Coord::Value(0);
const ADULT: Coord = Coord::Value(1);
const SEXUAL: Coord = Coord::Value(0);
const FORCED_LABOUR: Coord = Coord::Value(1);
const BEGGING: Coord = Coord::Value(3);
const OTHER: Coord = Coord::Value(9);
const NATIONAL: Coord = Coord::Value(0);
const CARIBBEAN: Coord = Coord::Value(2);
const T: Coord = Coord::Total;

fn counts(cells: &[([Coord; 4], u64)]) -> Counts {
    let mut c = Counts::zero(TableKind::Victims, Period::Year(2026));
    let spec = TableKind::Victims.spec();
    for (key, n) in cells {
        let i = spec.interior_index(key).expect("interior key");
        c.interior[i] = *n;
    }
    c
}

fn protected(
    counts: &Counts,
    method: Method,
    suppressed: &[([Coord; 4], Suppression)],
) -> ProtectedTable {
    let cells = counts
        .kind
        .spec()
        .all_keys()
        .into_iter()
        .map(
            |key| match suppressed.iter().find(|(k, _)| k[..] == key[..]) {
                Some((_, s)) => Cell {
                    key,
                    value: None,
                    suppressed: Some(*s),
                },
                None => Cell {
                    value: Some(counts.value(&key)),
                    key,
                    suppressed: None,
                },
            },
        )
        .collect();
    ProtectedTable {
        kind: counts.kind,
        period: counts.period,
        method,
        cells,
    }
}

fn member(
    id: &str,
    country: &str,
    table: ProtectedTable,
    pop: Option<(u64, u16, &str)>,
) -> MemberReport {
    MemberReport {
        member: id.into(),
        country: country.into(),
        report: StatisticalReport {
            table,
            population: pop.map(|(count, year, source)| Population {
                count,
                year,
                source: source.into(),
            }),
            correction: None,
            expires_at_ms: 1_900_000_000_000,
        },
    }
}

/// Given in an unsorted order on purpose.
fn three() -> Vec<MemberReport> {
    let hn = counts(&[
        ([F, ADULT, SEXUAL, NATIONAL], 7),
        ([F, CHILD, SEXUAL, NATIONAL], 2),
    ]);
    let hn = protected(
        &hn,
        Method::Suppression { threshold: 3 },
        &[
            ([F, CHILD, SEXUAL, NATIONAL], Suppression::Primary),
            ([F, CHILD, T, T], Suppression::Secondary),
            ([T, CHILD, T, T], Suppression::Secondary),
            ([T, T, T, T], Suppression::Secondary),
        ],
    );
    let gt = counts(&[
        ([F, ADULT, SEXUAL, NATIONAL], 20),
        ([M, CHILD, BEGGING, NATIONAL], 6),
        ([U, ADULT, OTHER, CARIBBEAN], 4),
    ]);
    let gt = protected(&gt, Method::Suppression { threshold: 3 }, &[]);
    let cr = counts(&[
        ([F, ADULT, SEXUAL, NATIONAL], 10),
        ([M, ADULT, FORCED_LABOUR, NATIONAL], 5),
    ]);
    let cr = protected(&cr, Method::Rounding { base: 5 }, &[]);
    vec![
        member("hn", "HN", hn, Some((10_000_000, 2024, "INE Honduras"))),
        member("gt", "GT", gt, Some((20_000_000, 2026, "INE Guatemala"))),
        member("cr", "CR", cr, Some((5_000_000, 2025, "INEC Costa Rica"))),
    ]
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-9)
}

fn rate(r: &Rate) -> Option<f64> {
    match r {
        Rate::Computed { per_100k, .. } => Some(*per_100k),
        Rate::NotComputable(_) => None,
    }
}

#[test]
fn columns_sorted_and_cells_summed() {
    let t = assemble(TableKind::Victims, Period::Year(2026), &three()).expect("assembles");
    let ids: Vec<&str> = t.members.iter().map(|m| m.member.as_str()).collect();
    assert_eq!(ids, ["cr", "gt", "hn"]);
    assert_eq!(t.rows.len(), TableKind::Victims.spec().all_keys().len());

    let row = |k: [Coord; 4]| t.row(&k).expect("row").clone();
    // The grand total: hn suppressed it, so the total is a bound.
    let all = row([T, T, T, T]);
    assert_eq!(
        all.figures,
        [
            Figure::Rounded(15, 5),
            Figure::Exact(30),
            Figure::Suppressed(Suppression::Secondary)
        ]
    );
    assert_eq!(all.total, Total::AtLeast(45));
    assert!(all.total.is_bound());
    // A cell every member published; cr's is rounded.
    let c = row([F, ADULT, SEXUAL, NATIONAL]);
    assert_eq!(
        c.figures,
        [Figure::Rounded(10, 5), Figure::Exact(20), Figure::Exact(7)]
    );
    assert_eq!(c.total, Total::Rounded(37, 5));
    // The primary cell: known parts are zero, the total is "≥ 0".
    assert_eq!(row([F, CHILD, SEXUAL, NATIONAL]).total, Total::AtLeast(0));
    // Margins and the foreign subtotal.
    assert_eq!(row([M, T, T, T]).total, Total::Rounded(11, 5));
    assert_eq!(row([T, T, T, Coord::Group(0)]).figures[1], Figure::Exact(4));
    assert_eq!(t.total_row().map(|r| r.total), Some(Total::AtLeast(45)));
}

#[test]
fn exact_members_give_an_exact_total() {
    let reports: Vec<MemberReport> = three().into_iter().filter(|m| m.member == "gt").collect();
    let t = assemble(TableKind::Victims, Period::Year(2026), &reports).expect("assembles");
    assert_eq!(t.total_row().map(|r| r.total), Some(Total::Exact(30)));
}

#[test]
fn sdg_rates_by_hand() {
    let t = assemble(TableKind::Victims, Period::Year(2026), &three()).expect("assembles");
    let rates = t.rates.expect("victims table has rates");
    // Overall: cr 15 / 5 M = 0.3 (rounded), gt 30 / 20 M = 0.15, hn
    // suppressed its total; regional 45 / 25 M = 0.18.
    let o = &rates.overall;
    assert_eq!(o.label, TOTAL);
    assert!(close(rate(&o.members[0]), 0.3));
    assert!(
        matches!(&o.members[0], Rate::Computed { rounded: true, population, .. }
        if population.year == 2025 && population.source == "INEC Costa Rica")
    );
    assert!(close(rate(&o.members[1]), 0.15));
    assert_eq!(
        o.members[2],
        Rate::NotComputable(NotComputable::Suppressed(Suppression::Secondary))
    );
    assert!(close(o.regional.per_100k, 0.18));
    assert_eq!(
        (o.regional.victims, o.regional.population),
        (45, 25_000_000)
    );
    assert_eq!(o.regional.included, ["cr", "gt"]);
    assert_eq!(o.regional.excluded, ["hn"]);
    assert!(o.regional.rounded);

    // Female: cr 10 → 0.2, gt 20 → 0.1, hn 9 → 0.09; regional 39 / 35 M.
    assert_eq!(rates.by_sex.len(), 3);
    let f = &rates.by_sex[0];
    assert_eq!(f.label.code, "female");
    assert!(close(rate(&f.members[0]), 0.2));
    assert!(close(rate(&f.members[1]), 0.1));
    assert!(close(rate(&f.members[2]), 0.09));
    assert!(close(f.regional.per_100k, 39.0 / 350.0));
    assert_eq!(f.regional.included, ["cr", "gt", "hn"]);

    // Children: cr 0, gt 6 → 0.03, hn suppressed; regional 6 / 25 M.
    let c = &rates.by_age[0];
    assert_eq!(c.label.code, "child");
    assert!(close(rate(&c.members[0]), 0.0));
    assert!(close(rate(&c.members[1]), 0.03));
    assert!(rate(&c.members[2]).is_none());
    assert!(close(c.regional.per_100k, 0.024));
}

#[test]
fn a_member_without_population_is_left_out_of_the_rate() {
    let mut reports = three();
    reports[1].report.population = None; // gt
    let t = assemble(TableKind::Victims, Period::Year(2026), &reports).expect("assembles");
    let o = t.rates.expect("rates").overall;
    assert_eq!(
        o.members[1],
        Rate::NotComputable(NotComputable::NoPopulation)
    );
    assert_eq!(o.regional.included, ["cr"]);
    assert!(close(o.regional.per_100k, 0.3));
}

#[test]
fn rates_only_for_victims() {
    let table = protected_other();
    let t = assemble(
        TableKind::Smuggled,
        Period::Year(2026),
        &[member("gt", "GT", table, None)],
    )
    .expect("assembles");
    assert!(t.rates.is_none());
    assert_eq!(t.total_row().map(|r| r.total), Some(Total::Exact(0)));
}

fn protected_other() -> ProtectedTable {
    let c = Counts::zero(TableKind::Smuggled, Period::Year(2026));
    ProtectedTable {
        kind: c.kind,
        period: c.period,
        method: Method::Suppression { threshold: 3 },
        cells: c
            .kind
            .spec()
            .all_keys()
            .into_iter()
            .map(|key| Cell {
                value: Some(c.value(&key)),
                key,
                suppressed: None,
            })
            .collect(),
    }
}

#[test]
fn bad_reports_are_named() {
    let p = Period::Year(2026);
    assert_eq!(
        assemble(TableKind::Victims, p, &[]),
        Err(RegionalError::NoReports)
    );

    let mut reports = three();
    reports.push(member("pa", "PA", protected_other(), None));
    let e = assemble(TableKind::Victims, p, &reports).expect_err("mismatch");
    assert!(matches!(&e, RegionalError::Mismatch { member, .. } if member == "pa"));
    assert!(e.to_string().contains("pa"));

    let e = assemble(TableKind::Victims, Period::Quarter(2026, 1), &three()).expect_err("period");
    assert!(matches!(&e, RegionalError::Mismatch { member, .. } if member == "hn"));

    let mut reports = three();
    reports.push(reports[0].clone());
    assert_eq!(
        assemble(TableKind::Victims, p, &reports),
        Err(RegionalError::DuplicateMember("hn".into()))
    );

    let mut reports = three();
    reports[1].report.table.cells.pop();
    assert!(matches!(
        assemble(TableKind::Victims, p, &reports),
        Err(RegionalError::MissingCell { member, .. }) if member == "gt"
    ));

    let mut reports = three();
    reports[2].report.table.cells[0].value = None;
    assert!(matches!(
        assemble(TableKind::Victims, p, &reports),
        Err(RegionalError::InvalidCell { member, .. }) if member == "cr"
    ));
}
