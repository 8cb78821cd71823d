//! The regional table: the members' protected tables side by side, with a
//! federation-wide total, and the SDG 16.2.2 rate.
//!
//! The assembly only reads what the members published. A cell a member
//! suppressed stays unknown here: the regional total over it is the sum of
//! the parts that are known, shown as a lower bound ("≥ n"), never as an
//! exact figure, and a member whose total is suppressed, or that gave no
//! population, is left out of the regional rate by name rather than
//! counted as zero. Rounded figures stay marked as rounded in every sum
//! they enter.

use std::collections::BTreeSet;
use std::fmt;

use super::period::Period;
use super::report::{MemberReport, Population};
use super::table::{Coord, DimName, Key, Label, Method, Suppression, TableKind};

/// The SDG 16.2.2 rate's unit: victims per this many inhabitants.
pub const RATE_PER: u64 = 100_000;

/// Why reports could not be assembled into one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegionalError {
    /// There was no report to assemble.
    NoReports,
    /// A member's report is of another table or period than the one asked.
    Mismatch {
        member: String,
        kind: TableKind,
        period: Period,
    },
    /// Two reports from the same member.
    DuplicateMember(String),
    /// A member's report lacks a cell of the table.
    MissingCell { member: String, key: Key },
    /// A member's cell has neither a value nor a suppression, or both.
    InvalidCell { member: String, key: Key },
}

impl fmt::Display for RegionalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoReports => f.write_str("no member report to assemble"),
            Self::Mismatch {
                member,
                kind,
                period,
            } => write!(
                f,
                "member {member}'s report is of table {kind}, period {period}; \
                 every report must be of the same table and period"
            ),
            Self::DuplicateMember(m) => write!(f, "two reports from member {m}"),
            Self::MissingCell { member, key } => {
                write!(f, "member {member}'s report lacks the cell {key:?}")
            }
            Self::InvalidCell { member, key } => write!(
                f,
                "member {member}'s cell {key:?} must have either a value or a suppression"
            ),
        }
    }
}

impl std::error::Error for RegionalError {}

/// One member's figure for one cell, as the member published it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Figure {
    /// The count.
    Exact(u64),
    /// Not published.
    Suppressed(Suppression),
    /// A count rounded to a multiple of `base` (or a sum of such counts).
    Rounded(u64, u32),
}

impl Figure {
    /// The published number, if any.
    pub fn value(self) -> Option<u64> {
        match self {
            Self::Exact(v) | Self::Rounded(v, _) => Some(v),
            Self::Suppressed(_) => None,
        }
    }
}

/// The federation-wide figure for one cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Total {
    /// Every member's figure is exact: the sum.
    Exact(u64),
    /// No member's figure is suppressed but some are rounded: the sum of
    /// the published figures, approximate; `base` is the largest rounding
    /// base among them.
    Rounded(u64, u32),
    /// Some member's figure is suppressed: the sum of the published
    /// figures, a lower bound of the true total ("≥ n"). Rounded parts
    /// count at their rounded value.
    AtLeast(u64),
}

impl Total {
    /// The number shown: the sum, or the bound.
    pub fn value(self) -> u64 {
        match self {
            Self::Exact(v) | Self::Rounded(v, _) | Self::AtLeast(v) => v,
        }
    }

    /// Whether the number is only a lower bound.
    pub fn is_bound(self) -> bool {
        matches!(self, Self::AtLeast(_))
    }
}

/// One member's column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberColumn {
    pub member: String,
    /// ISO 3166-1 alpha-2, from the roster.
    pub country: String,
    /// How the member protected its table.
    pub method: Method,
    pub population: Option<Population>,
}

/// One cell of the table: each member's figure, in column order, and the
/// total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionalRow {
    pub key: Key,
    pub figures: Vec<Figure>,
    pub total: Total,
}

/// The federation-wide table for one table and period.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionalTable {
    pub kind: TableKind,
    pub period: Period,
    /// Sorted by member id.
    pub members: Vec<MemberColumn>,
    /// Every cell of the table, in `TableSpec::all_keys` order.
    pub rows: Vec<RegionalRow>,
    /// The SDG 16.2.2 rates; only for the victims table.
    pub rates: Option<Sdg1622>,
}

impl RegionalTable {
    /// The row of a cell.
    pub fn row(&self, key: &[Coord]) -> Option<&RegionalRow> {
        self.rows.iter().find(|r| r.key == key)
    }

    /// The row of the grand total.
    pub fn total_row(&self) -> Option<&RegionalRow> {
        self.rows.last()
    }
}

/// Why a member's rate is not computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotComputable {
    /// The member suppressed the cell the rate counts.
    Suppressed(Suppression),
    /// The member gave no population (or a population of zero).
    NoPopulation,
}

impl NotComputable {
    pub fn code(self) -> &'static str {
        match self {
            Self::Suppressed(Suppression::Primary) => "suppressed_primary",
            Self::Suppressed(Suppression::Secondary) => "suppressed_secondary",
            Self::NoPopulation => "no_population",
        }
    }
}

/// One member's rate for one cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Rate {
    Computed {
        victims: u64,
        /// The population, its year and source.
        population: Population,
        /// Victims per 100 000 inhabitants.
        per_100k: f64,
        /// Whether `victims` is a rounded figure.
        rounded: bool,
    },
    NotComputable(NotComputable),
}

/// The federation-wide rate for one cell: over the members that have both
/// a published figure and a population.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionalRate {
    pub victims: u64,
    pub population: u64,
    /// `None` when no member is included.
    pub per_100k: Option<f64>,
    /// Whether any included figure is rounded.
    pub rounded: bool,
    /// The members counted, by id.
    pub included: Vec<String>,
    /// The members left out, by id.
    pub excluded: Vec<String>,
}

/// The rates of one cell (the total, or one sex, or one age group).
#[derive(Debug, Clone, PartialEq)]
pub struct RateRow {
    pub key: Key,
    /// The value this row is for (`TOTAL` for the overall rate).
    pub label: Label,
    /// One per member, in column order.
    pub members: Vec<Rate>,
    pub regional: RegionalRate,
}

/// SDG indicator 16.2.2: victims of trafficking detected per 100 000
/// population, overall, by sex and by age group. The denominator is always
/// the member's whole population (the indicator's definition).
#[derive(Debug, Clone, PartialEq)]
pub struct Sdg1622 {
    pub overall: RateRow,
    pub by_sex: Vec<RateRow>,
    pub by_age: Vec<RateRow>,
}

/// Builds the federation-wide table of `kind` for `period` from the
/// members' reports: one column per member, sorted by member id, and a
/// total, for every cell of the table.
pub fn assemble(
    kind: TableKind,
    period: Period,
    reports: &[MemberReport],
) -> Result<RegionalTable, RegionalError> {
    if reports.is_empty() {
        return Err(RegionalError::NoReports);
    }
    let mut seen = BTreeSet::new();
    for r in reports {
        if r.report.kind() != kind || r.report.period() != period {
            return Err(RegionalError::Mismatch {
                member: r.member.clone(),
                kind: r.report.kind(),
                period: r.report.period(),
            });
        }
        if !seen.insert(r.member.as_str()) {
            return Err(RegionalError::DuplicateMember(r.member.clone()));
        }
    }
    let mut sorted: Vec<&MemberReport> = reports.iter().collect();
    sorted.sort_by(|a, b| a.member.cmp(&b.member));

    let spec = kind.spec();
    let mut rows = Vec::new();
    for key in spec.all_keys() {
        let mut figures = Vec::with_capacity(sorted.len());
        for r in &sorted {
            figures.push(figure(r, &key)?);
        }
        let total = total(&figures);
        rows.push(RegionalRow {
            key,
            figures,
            total,
        });
    }
    let members: Vec<MemberColumn> = sorted
        .iter()
        .map(|r| MemberColumn {
            member: r.member.clone(),
            country: r.country.clone(),
            method: r.report.method(),
            population: r.report.population.clone(),
        })
        .collect();
    let mut table = RegionalTable {
        kind,
        period,
        members,
        rows,
        rates: None,
    };
    if kind == TableKind::Victims {
        table.rates = Some(sdg_16_2_2(&table));
    }
    Ok(table)
}

/// A member's figure for one cell.
fn figure(r: &MemberReport, key: &[Coord]) -> Result<Figure, RegionalError> {
    let cell = r
        .report
        .cell(key)
        .ok_or_else(|| RegionalError::MissingCell {
            member: r.member.clone(),
            key: key.to_vec(),
        })?;
    match (cell.value, cell.suppressed) {
        (None, Some(s)) => Ok(Figure::Suppressed(s)),
        (Some(v), None) => Ok(match r.report.method() {
            Method::Rounding { base } => Figure::Rounded(v, base),
            Method::Suppression { .. } => Figure::Exact(v),
        }),
        _ => Err(RegionalError::InvalidCell {
            member: r.member.clone(),
            key: key.to_vec(),
        }),
    }
}

/// The total of the members' figures for one cell.
fn total(figures: &[Figure]) -> Total {
    let mut sum = 0u64;
    let mut suppressed = false;
    let mut base: Option<u32> = None;
    for f in figures {
        match *f {
            Figure::Exact(v) => sum = sum.saturating_add(v),
            Figure::Rounded(v, b) => {
                sum = sum.saturating_add(v);
                base = Some(base.map_or(b, |m| m.max(b)));
            }
            Figure::Suppressed(_) => suppressed = true,
        }
    }
    match (suppressed, base) {
        (true, _) => Total::AtLeast(sum),
        (false, Some(b)) => Total::Rounded(sum, b),
        (false, None) => Total::Exact(sum),
    }
}

fn per_100k(victims: u64, population: u64) -> f64 {
    victims as f64 * RATE_PER as f64 / population as f64
}

/// The rates of one cell of the victims table.
fn rate_row(table: &RegionalTable, key: Key, label: Label) -> Option<RateRow> {
    let row = table.row(&key)?;
    let mut members = Vec::with_capacity(table.members.len());
    let mut regional = RegionalRate {
        victims: 0,
        population: 0,
        per_100k: None,
        rounded: false,
        included: Vec::new(),
        excluded: Vec::new(),
    };
    for (col, f) in table.members.iter().zip(&row.figures) {
        let population = col.population.as_ref().filter(|p| p.count > 0);
        let rate = match (f, population) {
            (Figure::Suppressed(s), _) => Rate::NotComputable(NotComputable::Suppressed(*s)),
            (_, None) => Rate::NotComputable(NotComputable::NoPopulation),
            (Figure::Exact(v) | Figure::Rounded(v, _), Some(p)) => {
                let rounded = matches!(f, Figure::Rounded(..));
                regional.victims = regional.victims.saturating_add(*v);
                regional.population = regional.population.saturating_add(p.count);
                regional.rounded |= rounded;
                regional.included.push(col.member.clone());
                Rate::Computed {
                    victims: *v,
                    population: p.clone(),
                    per_100k: per_100k(*v, p.count),
                    rounded,
                }
            }
        };
        if matches!(rate, Rate::NotComputable(_)) {
            regional.excluded.push(col.member.clone());
        }
        members.push(rate);
    }
    if regional.population > 0 {
        regional.per_100k = Some(per_100k(regional.victims, regional.population));
    }
    Some(RateRow {
        key,
        label,
        members,
        regional,
    })
}

/// The one-dimensional margins of dimension `dim`: each value, every other
/// dimension summed.
fn margin_keys(kind: TableKind, dim: DimName) -> Vec<(Key, Label)> {
    let spec = kind.spec();
    let Some(at) = spec.dims.iter().position(|d| d.name == dim) else {
        return Vec::new();
    };
    spec.dims[at]
        .values
        .iter()
        .enumerate()
        .map(|(i, label)| {
            let mut key = vec![Coord::Total; spec.dims.len()];
            key[at] = Coord::Value(i as u8);
            (key, *label)
        })
        .collect()
}

fn sdg_16_2_2(table: &RegionalTable) -> Sdg1622 {
    let dims = table.kind.spec().dims.len();
    let total_key = vec![Coord::Total; dims];
    let empty = || RateRow {
        key: total_key.clone(),
        label: super::table::TOTAL,
        members: Vec::new(),
        regional: RegionalRate {
            victims: 0,
            population: 0,
            per_100k: None,
            rounded: false,
            included: Vec::new(),
            excluded: Vec::new(),
        },
    };
    let rows = |dim| {
        margin_keys(table.kind, dim)
            .into_iter()
            .filter_map(|(k, l)| rate_row(table, k, l))
            .collect()
    };
    Sdg1622 {
        overall: rate_row(table, total_key.clone(), super::table::TOTAL).unwrap_or_else(empty),
        by_sex: rows(DimName::Sex),
        by_age: rows(DimName::AgeGroup),
    }
}

#[cfg(test)]
#[path = "regional_tests.rs"]
mod tests;
