//! Hand-made protected tables for the renderers' tests: three members of
//! the victims table; `cr` rounds to base 5, `gt` is exact, `hn`
//! suppressed a few cells (by hand; protection is tested in the library).

use enlace::stats::{
    Cell, Coord, Counts, MemberReport, Method, Period, Population, ProtectedTable, RegionalTable,
    StatisticalReport, Suppression, TableKind, assemble,
};

pub(crate) const F: Coord = Coord::Value(0);
pub(crate) const M: Coord = Coord::Value(1);
pub(crate) const CHILD: Coord = Coord::Value(0);
pub(crate) const ADULT: Coord = Coord::Value(1);
pub(crate) const SEXUAL: Coord = Coord::Value(0);
pub(crate) const FORCED_LABOUR: Coord = Coord::Value(1);
pub(crate) const BEGGING: Coord = Coord::Value(3);
pub(crate) const NATIONAL: Coord = Coord::Value(0);
pub(crate) const T: Coord = Coord::Total;

pub(crate) fn protected(
    cells: &[([Coord; 4], u64)],
    method: Method,
    suppressed: &[([Coord; 4], Suppression)],
) -> ProtectedTable {
    let mut counts = Counts::zero(TableKind::Victims, Period::Year(2026));
    let spec = TableKind::Victims.spec();
    for (key, n) in cells {
        if let Some(i) = spec.interior_index(key) {
            counts.interior[i] = *n;
        }
    }
    let cells = spec
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
        kind: TableKind::Victims,
        period: Period::Year(2026),
        method,
        cells,
    }
}

pub(crate) fn member(
    id: &str,
    country: &str,
    table: ProtectedTable,
    pop: Option<u64>,
) -> MemberReport {
    MemberReport {
        member: id.into(),
        country: country.into(),
        report: StatisticalReport {
            table,
            population: pop.map(|count| Population {
                count,
                year: 2025,
                source: format!("INE <{country}> & co"),
            }),
            correction: None,
            expires_at_ms: 1_900_000_000_000,
        },
    }
}

pub(crate) fn members() -> Vec<MemberReport> {
    let hn = protected(
        &[
            ([F, ADULT, SEXUAL, NATIONAL], 7),
            ([F, CHILD, SEXUAL, NATIONAL], 2),
        ],
        Method::Suppression { threshold: 3 },
        &[
            ([F, CHILD, SEXUAL, NATIONAL], Suppression::Primary),
            ([F, CHILD, T, T], Suppression::Secondary),
            ([T, CHILD, T, T], Suppression::Secondary),
            ([T, T, T, T], Suppression::Secondary),
        ],
    );
    let gt = protected(
        &[
            ([F, ADULT, SEXUAL, NATIONAL], 20),
            ([M, CHILD, BEGGING, NATIONAL], 6),
        ],
        Method::Suppression { threshold: 3 },
        &[],
    );
    let cr = protected(
        &[
            ([F, ADULT, SEXUAL, NATIONAL], 10),
            ([M, ADULT, FORCED_LABOUR, NATIONAL], 5),
        ],
        Method::Rounding { base: 5 },
        &[],
    );
    vec![
        member("hn", "HN", hn, Some(10_000_000)),
        member("gt", "GT", gt, Some(20_000_000)),
        member("cr", "CR", cr, Some(5_000_000)),
    ]
}

pub(crate) fn regional() -> RegionalTable {
    match assemble(TableKind::Victims, Period::Year(2026), &members()) {
        Ok(t) => t,
        Err(e) => panic!("fixture: {e}"),
    }
}
