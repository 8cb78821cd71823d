//! Protection before anything leaves the member: cell suppression with a
//! checked secondary pattern, or rounding.
//!
//! The practices this follows: DataSHIELD's `nfilter` (no cell below a
//! threshold leaves the data owner), sdcTable's frequency rule and Statistics
//! Norway's GaussSuppression (secondary suppression until no suppressed cell
//! can be recovered from the published cells by linear algebra), and
//! OpenSAFELY's rounding of every count.
//!
//! **Suppression** (threshold `t` ≥ 3). Primary: every cell, interior or
//! margin, whose value is 1 … t−1. A zero is never a primary cell and is
//! published as 0. Then, for every suppressed cell, the interval of values
//! consistent with everything published is computed (`interval.rs`); a cell
//! is safe when that interval is at least `t` wide or contains 0 … t−1
//! entirely. While a cell is unsafe, one more published non-zero cell is
//! suppressed (secondary): the smallest interior cell that shares the
//! tightest published margin with it, else the smallest related margin, else
//! the smallest non-zero cell anywhere. Intervals only widen as cells are
//! suppressed, so a cell found safe stays safe, and the loop ends at the
//! latest when every non-zero cell is suppressed.
//!
//! **Versions.** The cells suppressed in earlier versions of the same report
//! (`previous`) stay suppressed, whatever their value now, zero included:
//! two versions are protected as a union so they cannot be differenced.
//!
//! **Rounding** (base ≥ 2). Interior cells are rounded half up to the
//! nearest multiple of the base (with base 5: 1 and 2 become 0, 3 … 7
//! become 5); margins are the sums of the rounded interior cells, so the
//! table adds up; nothing is suppressed and `previous` is not used (a
//! rounded figure hides the difference between versions by itself).

mod interval;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap, HashSet};

use thiserror::Error;

use super::table::{Cell, Coord, Counts, Key, Method, ProtectedTable, Suppression, TableKind};
use interval::{IntervalError, Layout, is_safe};

/// Why a table cannot be protected, or a published table fails the check.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtectError {
    #[error("suppression threshold {0} is below 3")]
    ThresholdTooLow(u32),
    #[error("rounding base {0} is below 2")]
    BaseTooLow(u32),
    #[error("table {kind} has {expected} cells, got {got}")]
    Shape {
        kind: TableKind,
        expected: usize,
        got: usize,
    },
    #[error("table {kind} has no cell {key} at this position")]
    NotACell { kind: TableKind, key: String },
    #[error("cell {cell} of table {kind} can be recovered: its value lies in {lo}..={hi}")]
    Recoverable {
        kind: TableKind,
        cell: String,
        lo: u64,
        hi: u64,
    },
    #[error("the published cells of table {kind} contradict each other{detail}")]
    Inconsistent { kind: TableKind, detail: String },
    #[error("the interval of a cell of table {kind} could not be computed: {message}")]
    Solver { kind: TableKind, message: String },
}

/// A cell by its codes, e.g. `sex=female, age_group=total`.
pub fn describe(kind: TableKind, key: &[Coord]) -> String {
    let spec = kind.spec();
    if !spec.is_key(key) {
        return format!("{key:?}");
    }
    spec.dims
        .iter()
        .zip(key)
        .enumerate()
        .map(|(d, (dim, c))| format!("{}={}", dim.name.code(), spec.coord_label(d, *c).code))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Protects one table with `method`; `previous` is the union of the cells
/// suppressed in earlier versions of the same report. Every cell of the
/// table is in the result, in `TableSpec::all_keys` order.
pub fn protect(
    counts: &Counts,
    method: Method,
    previous: &[Key],
) -> Result<ProtectedTable, ProtectError> {
    let kind = counts.kind;
    let spec = kind.spec();
    if counts.interior.len() != spec.interior_len() {
        return Err(ProtectError::Shape {
            kind,
            expected: spec.interior_len(),
            got: counts.interior.len(),
        });
    }
    let keys = spec.all_keys();
    let cells = match method {
        Method::Suppression { threshold } => {
            if threshold < 3 {
                return Err(ProtectError::ThresholdTooLow(threshold));
            }
            suppress(counts, &keys, threshold, previous)?
        }
        Method::Rounding { base } => {
            if base < 2 {
                return Err(ProtectError::BaseTooLow(base));
            }
            round(counts, &keys, base)
        }
    };
    Ok(ProtectedTable {
        kind,
        period: counts.period,
        method,
        cells,
    })
}

fn solver_error(kind: TableKind) -> impl Fn(IntervalError) -> ProtectError {
    move |e| match e {
        IntervalError::Inconsistent => ProtectError::Inconsistent {
            kind,
            detail: String::new(),
        },
        IntervalError::Solver(message) => ProtectError::Solver { kind, message },
    }
}

fn suppress(
    counts: &Counts,
    keys: &[Key],
    threshold: u32,
    previous: &[Key],
) -> Result<Vec<Cell>, ProtectError> {
    let kind = counts.kind;
    let layout = Layout::new(kind.spec(), keys);
    let truth: Vec<u64> = layout
        .covered
        .iter()
        .map(|cov| cov.iter().map(|i| counts.interior[*i]).sum())
        .collect();
    let position: HashMap<&Key, usize> = keys.iter().enumerate().map(|(i, k)| (k, i)).collect();
    let mut status: Vec<Option<Suppression>> = truth
        .iter()
        .map(|v| {
            (1..u64::from(threshold))
                .contains(v)
                .then_some(Suppression::Primary)
        })
        .collect();
    let mut kept = HashSet::new();
    for key in previous {
        let c = *position.get(key).ok_or_else(|| ProtectError::NotACell {
            kind,
            key: describe(kind, key),
        })?;
        status[c].get_or_insert(Suppression::Secondary);
        kept.insert(c);
    }
    let mut values: Vec<Option<u64>> = truth
        .iter()
        .zip(&status)
        .map(|(v, s)| s.is_none().then_some(*v))
        .collect();
    let mut pending: BTreeSet<usize> = (0..keys.len()).filter(|c| status[*c].is_some()).collect();
    let err = solver_error(kind);
    'outer: loop {
        let mut safe = Vec::new();
        let mut unsafe_cell = None;
        for &c in &pending {
            let enough = truth[c].saturating_add(u64::from(threshold));
            let (lo, hi) = interval::interval(&layout, &values, c, Some(enough)).map_err(&err)?;
            if is_safe(lo, hi, threshold) || hi.is_some_and(|h| h >= enough) {
                safe.push(c);
            } else {
                unsafe_cell = Some(c);
                break;
            }
        }
        for c in safe {
            pending.remove(&c);
        }
        let Some(c) = unsafe_cell else { break 'outer };
        let Some(next) = candidate(&layout, &values, c) else {
            // Everything is suppressed: nothing is left to recover from.
            break 'outer;
        };
        status[next] = Some(Suppression::Secondary);
        values[next] = None;
        pending.insert(next);
    }
    let mut state = Suppressed {
        layout: &layout,
        truth: &truth,
        values,
        status,
        threshold,
    };
    state.prune(&kept).map_err(&err)?;
    let Suppressed { values, status, .. } = state;
    Ok(keys
        .iter()
        .zip(values.iter().zip(&status))
        .map(|(key, (value, suppressed))| Cell {
            key: key.clone(),
            value: *value,
            suppressed: *suppressed,
        })
        .collect())
}

/// Most secondary cells offered back after the greedy pass, the most
/// useful first (each offer re-checks every suppressed cell).
const PRUNE_TRIES: usize = 48;

/// A table being suppressed: the true values, and what is published.
struct Suppressed<'a> {
    layout: &'a Layout,
    truth: &'a [u64],
    values: Vec<Option<u64>>,
    status: Vec<Option<Suppression>>,
    threshold: u32,
}

impl Suppressed<'_> {
    fn publish(&mut self, c: usize) {
        self.values[c] = Some(self.truth[c]);
        self.status[c] = None;
    }

    /// Whether every suppressed cell is safe. A secondary cell (not kept
    /// from an earlier version) that turns out exactly known hides nothing
    /// and is published on the way.
    fn all_safe(&mut self, kept: &HashSet<usize>) -> Result<bool, IntervalError> {
        'again: loop {
            for c in 0..self.values.len() {
                if self.status[c].is_none() {
                    continue;
                }
                let enough = self.truth[c].saturating_add(u64::from(self.threshold));
                let (lo, hi) = interval::interval(self.layout, &self.values, c, Some(enough))?;
                if is_safe(lo, hi, self.threshold) || hi.is_some_and(|h| h >= enough) {
                    continue;
                }
                if self.status[c] == Some(Suppression::Secondary) && !kept.contains(&c) {
                    let (lo, hi) = interval::interval(self.layout, &self.values, c, None)?;
                    if hi == Some(lo) {
                        self.publish(c);
                        continue 'again;
                    }
                }
                return Ok(false);
            }
            return Ok(true);
        }
    }

    // NOTE: the greedy pass picks one cell at a time for the cell in
    // trouble and can hide far more than needed: for two girls and six
    // women it hid every total. This pass offers secondary cells back,
    // margins over the most cells first (the totals readers want), then
    // the largest, and keeps each one published if every suppressed cell
    // stays safe without it. Cells kept from earlier versions stay
    // suppressed.
    fn prune(&mut self, kept: &HashSet<usize>) -> Result<(), IntervalError> {
        let secondary =
            |s: &Self, c: usize| s.status[c] == Some(Suppression::Secondary) && !kept.contains(&c);
        let mut order: Vec<usize> = (0..self.values.len())
            .filter(|c| secondary(self, *c))
            .collect();
        order.sort_by_key(|c| {
            (
                std::cmp::Reverse(self.layout.covered[*c].len()),
                std::cmp::Reverse(self.truth[*c]),
                *c,
            )
        });
        for c in order.into_iter().take(PRUNE_TRIES) {
            if !secondary(self, c) {
                continue;
            }
            let saved = (self.values.clone(), self.status.clone());
            self.publish(c);
            if !self.all_safe(kept)? {
                (self.values, self.status) = saved;
            }
        }
        Ok(())
    }
}

/// The next cell to suppress so that `cell` becomes safer.
fn candidate(layout: &Layout, values: &[Option<u64>], cell: usize) -> Option<usize> {
    let nonzero = |c: usize| values[c].filter(|v| *v > 0);
    // The published margins sharing an interior cell with `cell`.
    let mut margins: HashSet<usize> = HashSet::new();
    for &i in &layout.covered[cell] {
        for &m in &layout.covering[i] {
            if values[m].is_some() && !layout.is_interior(m) {
                margins.insert(m);
            }
        }
    }
    // Interior cells: by the size of the tightest margin relating them to
    // `cell` (0 when `cell` covers them), then by value, then by position.
    let mut best: Option<(usize, u64, usize)> = None;
    let consider = |distance: usize, c: usize, best: &mut Option<(usize, u64, usize)>| {
        if let Some(v) = nonzero(c) {
            let rank = (distance, v, c);
            if best.is_none_or(|b| rank < b) {
                *best = Some(rank);
            }
        }
    };
    for &i in &layout.covered[cell] {
        consider(0, layout.interior_cell[i], &mut best);
    }
    for &m in &margins {
        let size = layout.covered[m].len();
        for &i in &layout.covered[m] {
            consider(size, layout.interior_cell[i], &mut best);
        }
    }
    if let Some((_, _, c)) = best {
        return Some(c);
    }
    let smallest = |cells: &mut dyn Iterator<Item = usize>| {
        cells
            .filter_map(|c| nonzero(c).map(|v| (v, c)))
            .min()
            .map(|(_, c)| c)
    };
    smallest(&mut margins.iter().copied())
        .or_else(|| smallest(&mut layout.interior_cell.iter().copied()))
        .or_else(|| smallest(&mut (0..values.len())))
        .or_else(|| (0..values.len()).find(|c| values[*c].is_some()))
}

fn round(counts: &Counts, keys: &[Key], base: u32) -> Vec<Cell> {
    let spec = counts.kind.spec();
    let base = u64::from(base);
    let rounded: Vec<u64> = counts
        .interior
        .iter()
        .map(|v| (v.saturating_add(base / 2) / base).saturating_mul(base))
        .collect();
    keys.iter()
        .map(|key| Cell {
            key: key.clone(),
            value: Some(spec.covered(key).into_iter().map(|i| rounded[i]).sum()),
            suppressed: None,
        })
        .collect()
}

/// The keys of the suppressed cells of a published table, to carry into
/// the next version's `previous`.
pub fn suppressed_keys(table: &ProtectedTable) -> Vec<Key> {
    table
        .cells
        .iter()
        .filter(|c| c.value.is_none())
        .map(|c| c.key.clone())
        .collect()
}

/// Checks a published table as a peer would: every cell present in order,
/// the published cells consistent with each other, and, under a threshold
/// `threshold`, no suppressed cell recoverable (interval at least
/// `threshold` wide or containing 0 … threshold−1). A rounded table must add
/// up, in multiples of its base, with no suppressed cell.
pub fn check(table: &ProtectedTable, threshold: u32) -> Result<(), ProtectError> {
    let kind = table.kind;
    if threshold < 3 {
        return Err(ProtectError::ThresholdTooLow(threshold));
    }
    let spec = kind.spec();
    let keys = spec.all_keys();
    if table.cells.len() != keys.len() {
        return Err(ProtectError::Shape {
            kind,
            expected: keys.len(),
            got: table.cells.len(),
        });
    }
    if let Some(cell) = table.cells.iter().zip(&keys).find(|(c, k)| c.key != **k) {
        return Err(ProtectError::NotACell {
            kind,
            key: describe(kind, &cell.0.key),
        });
    }
    let layout = Layout::new(spec, &keys);
    let values: Vec<Option<u64>> = table.cells.iter().map(|c| c.value).collect();
    // Every published cell whose interior cells are all published is their
    // sum; a rounded table has every cell published, in multiples of its base.
    for (c, cov) in layout.covered.iter().enumerate() {
        let sum: Option<u64> = cov.iter().map(|i| values[layout.interior_cell[*i]]).sum();
        let rounded_wrong = match table.method {
            Method::Rounding { base } => {
                base < 2 || values[c].is_none_or(|v| v % u64::from(base) != 0)
            }
            Method::Suppression { .. } => false,
        };
        if rounded_wrong || (values[c].is_some() && sum.is_some() && sum != values[c]) {
            return Err(ProtectError::Inconsistent {
                kind,
                detail: format!(": cell {} does not add up", describe(kind, &keys[c])),
            });
        }
    }
    if let Method::Rounding { .. } = table.method {
        return Ok(());
    }
    let err = solver_error(kind);
    for c in (0..keys.len()).filter(|c| values[*c].is_none()) {
        let (lo, hi) = interval::interval(&layout, &values, c, None).map_err(&err)?;
        if !is_safe(lo, hi, threshold) {
            return Err(ProtectError::Recoverable {
                kind,
                cell: describe(kind, &keys[c]),
                lo,
                hi: hi.unwrap_or(u64::MAX),
            });
        }
    }
    Ok(())
}
