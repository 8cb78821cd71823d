//! The interval of a cell's value that is consistent with everything
//! published: two linear programs over the suppressed interior cells.
//!
//! Variables are the suppressed interior cells (≥ 0); published interior
//! cells are constants; every published margin that covers a suppressed
//! interior cell is an equality constraint. Only the constraints connected
//! to the cell's own unknowns are built, so the programs stay small on the
//! sparse tables members actually have.
//!
//! NOTE: this is the LP relaxation (as in τ-Argus and sdcTable): the true
//! cells are integers, so the integer interval may be narrower than the
//! relaxed one on tables of three or more dimensions. The bounds are rounded
//! inwards (ceil of the minimum, floor of the maximum) before they are used.

use std::collections::BTreeSet;

use microlp::{ComparisonOp, LinearExpr, OptimizationDirection, Problem};

/// A table's cells as the interval computation sees them.
pub(super) struct Layout {
    /// Per cell (in `all_keys` order), the interior positions it covers.
    pub covered: Vec<Vec<usize>>,
    /// Per interior position, the cells covering it (itself included).
    pub covering: Vec<Vec<usize>>,
    /// Per interior position, its cell index.
    pub interior_cell: Vec<usize>,
}

impl Layout {
    pub fn new(
        spec: &crate::records::stats::table::TableSpec,
        keys: &[Vec<crate::records::stats::Coord>],
    ) -> Self {
        let n = spec.interior_len();
        let covered: Vec<Vec<usize>> = keys.iter().map(|k| spec.covered(k)).collect();
        let mut covering = vec![Vec::new(); n];
        let mut interior_cell = vec![0; n];
        for (c, cov) in covered.iter().enumerate() {
            for &i in cov {
                covering[i].push(c);
            }
            if let Some(i) = spec.interior_index(&keys[c]) {
                interior_cell[i] = c;
            }
        }
        Self {
            covered,
            covering,
            interior_cell,
        }
    }

    /// Whether cell `c` is interior.
    pub fn is_interior(&self, c: usize) -> bool {
        self.covered[c].len() == 1 && self.interior_cell[self.covered[c][0]] == c
    }
}

/// Why an interval could not be computed.
#[derive(Debug)]
pub(super) enum IntervalError {
    /// The published cells contradict each other.
    Inconsistent,
    /// The solver failed.
    Solver(String),
}

/// The integer bounds `[lo, hi]` of cell `cell` given the published values
/// (`None` for suppressed cells). `hi` is `None` when the cell is unbounded;
/// `lo` is then only the sum of its published interior cells. With `enough`
/// (the true value plus the threshold, known only to the member), the
/// minimum is not computed when the maximum reaches it, and `lo` is again
/// only the published part.
pub(super) fn interval(
    layout: &Layout,
    values: &[Option<u64>],
    cell: usize,
    enough: Option<u64>,
) -> Result<(u64, Option<u64>), IntervalError> {
    let published = |c: usize| values[c];
    let unknown = |i: usize| published(layout.interior_cell[i]).is_none();
    let mut known: u64 = 0;
    let mut own: Vec<usize> = Vec::new();
    for &i in &layout.covered[cell] {
        match published(layout.interior_cell[i]) {
            Some(v) => known = known.saturating_add(v),
            None => own.push(i),
        }
    }
    if own.is_empty() {
        return Ok((known, Some(known)));
    }
    // The component: unknowns and the published margins linking them.
    let mut vars: BTreeSet<usize> = own.iter().copied().collect();
    let mut constraints: BTreeSet<usize> = BTreeSet::new();
    let mut frontier: Vec<usize> = own.clone();
    while let Some(i) = frontier.pop() {
        for &m in &layout.covering[i] {
            if published(m).is_none() || layout.is_interior(m) || !constraints.insert(m) {
                continue;
            }
            for &j in &layout.covered[m] {
                if unknown(j) && vars.insert(j) {
                    frontier.push(j);
                }
            }
        }
    }
    let vars: Vec<usize> = vars.into_iter().collect();
    let solve = |direction: OptimizationDirection| -> Result<Option<f64>, IntervalError> {
        let mut problem = Problem::new(direction);
        let handles: Vec<_> = vars
            .iter()
            .map(|i| {
                let coeff = if own.binary_search(i).is_ok() {
                    1.0
                } else {
                    0.0
                };
                problem.add_var(coeff, (0.0, f64::INFINITY))
            })
            .collect();
        for &m in &constraints {
            let mut expr = LinearExpr::empty();
            let mut rhs = published(m).unwrap_or(0) as f64;
            for &j in &layout.covered[m] {
                match published(layout.interior_cell[j]) {
                    Some(v) => rhs -= v as f64,
                    None => {
                        if let Ok(k) = vars.binary_search(&j) {
                            expr.add(handles[k], 1.0);
                        }
                    }
                }
            }
            if rhs < -0.5 {
                return Err(IntervalError::Inconsistent);
            }
            problem.add_constraint(expr, ComparisonOp::Eq, rhs);
        }
        // NOTE: microlp warns that it may panic on hard problems; a panic
        // here must not take the node down with it, so it is an error.
        let solved = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| problem.solve()))
            .map_err(|_| IntervalError::Solver("the LP solver panicked".to_string()))?;
        match solved {
            Ok(solution) => Ok(Some(solution.objective())),
            Err(microlp::Error::Unbounded) => Ok(None),
            Err(microlp::Error::Infeasible) => Err(IntervalError::Inconsistent),
            Err(e) => Err(IntervalError::Solver(e.to_string())),
        }
    };
    // An unknown of the cell's own that no published margin constrains can
    // grow without bound; and an unbounded cell is safe whatever its lower
    // bound, which is then not computed (reported as the known part).
    let free = own.iter().any(|i| {
        layout.covering[*i]
            .iter()
            .all(|m| published(*m).is_none() || layout.is_interior(*m))
    });
    if free {
        return Ok((known, None));
    }
    let Some(hi) = solve(OptimizationDirection::Maximize)? else {
        return Ok((known, None));
    };
    // The true value lies in the interval, so a maximum at least `enough`
    // (true value + threshold) makes the cell safe without the minimum.
    if enough.is_some_and(|e| hi + 1e-6 >= e as f64) {
        let hi = (hi + 1e-6).floor().max(0.0) as u64;
        return Ok((known, Some(known.saturating_add(hi))));
    }
    let hi = Some(hi);
    let lo = solve(OptimizationDirection::Minimize)?.unwrap_or(0.0);
    let lo = (lo - 1e-6).ceil().max(0.0) as u64;
    let hi = hi.map(|h| (h + 1e-6).floor().max(0.0) as u64);
    Ok((
        known.saturating_add(lo),
        hi.map(|h| known.saturating_add(h)),
    ))
}

/// The protection property: the interval is at least `t` wide, or contains
/// 0 … t−1 entirely (or is unbounded).
pub(super) fn is_safe(lo: u64, hi: Option<u64>, threshold: u32) -> bool {
    let t = u64::from(threshold);
    match hi {
        None => true,
        Some(hi) => hi.saturating_sub(lo) >= t || (lo == 0 && hi + 1 >= t),
    }
}
