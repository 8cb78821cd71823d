//! Conversions of statistical reports to and from the wire. Decoding checks
//! the shape (a known table, a period, every cell of the table exactly once,
//! no value on a suppressed cell); the record rules then check that the
//! figures add up and that the protection holds (`stats::check_report`).

use std::collections::BTreeSet;

use super::pb::v1 as pb;
use crate::records::model::Errors;
use crate::records::stats::{
    Cell, Coord, CorrectionReason, Key, Method, Period, Population, ProtectedTable,
    StatisticalReport, Suppression, TableKind,
};

/// Group coordinates start here on the wire (`StatisticalCell.coords`).
const GROUP_BASE: u32 = 1001;

fn coord_to_wire(c: Coord) -> u32 {
    match c {
        Coord::Total => 0,
        Coord::Value(v) => 1 + u32::from(v),
        Coord::Group(g) => GROUP_BASE + u32::from(g),
    }
}

fn coord_from_wire(v: u32) -> Option<Coord> {
    match v {
        0 => Some(Coord::Total),
        1..=256 => u8::try_from(v - 1).ok().map(Coord::Value),
        GROUP_BASE.. => u8::try_from(v - GROUP_BASE).ok().map(Coord::Group),
        _ => None,
    }
}

pub fn report_to_pb(r: &StatisticalReport) -> pb::StatisticalReport {
    let (method, parameter) = match r.table.method {
        Method::Suppression { threshold } => (pb::ProtectionMethod::Suppression, threshold),
        Method::Rounding { base } => (pb::ProtectionMethod::Rounding, base),
    };
    pb::StatisticalReport {
        table: r.table.kind.wire(),
        period: r.table.period.to_string(),
        method: method as i32,
        parameter,
        cells: r
            .table
            .cells
            .iter()
            .map(|c| pb::StatisticalCell {
                coords: c.key.iter().copied().map(coord_to_wire).collect(),
                value: c.value.unwrap_or(0),
                suppressed: match c.suppressed {
                    None => pb::CellSuppression::None,
                    Some(Suppression::Primary) => pb::CellSuppression::Primary,
                    Some(Suppression::Secondary) => pb::CellSuppression::Secondary,
                } as i32,
            })
            .collect(),
        population: r.population.as_ref().map(|p| pb::Population {
            count: p.count,
            year: u32::from(p.year),
            source: p.source.clone(),
        }),
        correction: r.correction.map(CorrectionReason::wire).unwrap_or(0),
        expires_at_ms: r.expires_at_ms,
    }
}

pub fn report_from_pb(
    r: pb::StatisticalReport,
    at: &str,
    errors: &mut Errors,
) -> Option<StatisticalReport> {
    let before = errors.0.len();
    let kind = TableKind::from_wire(r.table);
    if kind.is_none() {
        errors.push(
            format!("{at}.table"),
            format!(
                "is required; one of: {}",
                TableKind::ALL
                    .iter()
                    .map(|k| k.code())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    let period = Period::parse(&r.period)
        .map_err(|e| errors.push(format!("{at}.period"), e))
        .ok();
    let method = match pb::ProtectionMethod::try_from(r.method) {
        Ok(pb::ProtectionMethod::Suppression) => Some(Method::Suppression {
            threshold: r.parameter,
        }),
        Ok(pb::ProtectionMethod::Rounding) => Some(Method::Rounding { base: r.parameter }),
        _ => {
            errors.push(
                format!("{at}.method"),
                "is required; one of: suppression, rounding",
            );
            None
        }
    };
    let correction = match r.correction {
        0 => None,
        v => {
            let reason = CorrectionReason::from_wire(v);
            if reason.is_none() {
                errors.push(format!("{at}.correction"), format!("unknown value {v}"));
            }
            reason
        }
    };
    let population = r.population.map(|p| Population {
        count: p.count,
        year: u16::try_from(p.year).unwrap_or(u16::MAX),
        source: p.source,
    });
    let cells = kind.map(|kind| cells_from_pb(kind, r.cells, at, errors));
    if errors.0.len() > before {
        return None;
    }
    Some(StatisticalReport {
        table: ProtectedTable {
            kind: kind?,
            period: period?,
            method: method?,
            cells: cells?,
        },
        population,
        correction,
        expires_at_ms: r.expires_at_ms,
    })
}

/// The cells, in the table's canonical order; every cell of the table
/// exactly once.
fn cells_from_pb(
    kind: TableKind,
    cells: Vec<pb::StatisticalCell>,
    at: &str,
    errors: &mut Errors,
) -> Vec<Cell> {
    let spec = kind.spec();
    let expected = spec.all_keys();
    let field = format!("{at}.cells");
    if cells.len() != expected.len() {
        errors.push(
            &field,
            format!(
                "the {kind} table has {} cells; the report lists {}",
                expected.len(),
                cells.len()
            ),
        );
        return Vec::new();
    }
    let mut out = Vec::with_capacity(cells.len());
    let mut seen = BTreeSet::new();
    for (i, c) in cells.into_iter().enumerate() {
        let key: Option<Key> = c.coords.iter().copied().map(coord_from_wire).collect();
        let Some(key) = key.filter(|k| spec.is_key(k)) else {
            errors.push(
                format!("{field}[{i}].coords"),
                format!("{:?} is not a cell of the {kind} table", c.coords),
            );
            continue;
        };
        if !seen.insert(key.clone()) {
            errors.push(
                format!("{field}[{i}].coords"),
                format!("cell {:?} is listed twice", c.coords),
            );
            continue;
        }
        let suppressed = match pb::CellSuppression::try_from(c.suppressed) {
            Ok(pb::CellSuppression::None) => None,
            Ok(pb::CellSuppression::Primary) => Some(Suppression::Primary),
            Ok(pb::CellSuppression::Secondary) => Some(Suppression::Secondary),
            Err(_) => {
                errors.push(
                    format!("{field}[{i}].suppressed"),
                    format!("unknown value {}", c.suppressed),
                );
                continue;
            }
        };
        if suppressed.is_some() && c.value != 0 {
            errors.push(
                format!("{field}[{i}].value"),
                "a suppressed cell carries no value",
            );
            continue;
        }
        out.push(Cell {
            key,
            value: suppressed.is_none().then_some(c.value),
            suppressed,
        });
    }
    // Canonical order, so that equal tables compare equal.
    let order: std::collections::BTreeMap<&Key, usize> =
        expected.iter().enumerate().map(|(i, k)| (k, i)).collect();
    out.sort_by_key(|c| order.get(&c.key).copied().unwrap_or(usize::MAX));
    out
}
