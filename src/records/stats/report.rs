//! A statistical report: one member's protected table for one period, as
//! it travels in a signed record.

use super::period::Period;
use super::table::{Cell, Coord, Method, ProtectedTable, TableKind};

/// The population a member's rates are computed on (SDG 16.2.2: victims
/// per 100 000), with the year of the figure and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Population {
    pub count: u64,
    pub year: u16,
    /// The publisher of the figure, e.g. "INE, proyecciones 2026"; at most
    /// 120 characters, set by the operator in `[statistics]`, never case data.
    pub source: String,
}

/// Why a report replaces an earlier version of itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CorrectionReason {
    /// Cases of the period were recorded after the report.
    LateRecords,
    /// Cases of the period were corrected (stage, victims, offenders).
    DataCorrection,
    /// A case's offence was reclassified (e.g. smuggling to trafficking).
    Reclassification,
    /// The protection parameters changed.
    MethodChange,
}

impl CorrectionReason {
    pub const ALL: &'static [Self] = &[
        Self::LateRecords,
        Self::DataCorrection,
        Self::Reclassification,
        Self::MethodChange,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::LateRecords => "late_records",
            Self::DataCorrection => "data_correction",
            Self::Reclassification => "reclassification",
            Self::MethodChange => "method_change",
        }
    }

    pub fn wire(self) -> i32 {
        match self {
            Self::LateRecords => 1,
            Self::DataCorrection => 2,
            Self::Reclassification => 3,
            Self::MethodChange => 4,
        }
    }

    pub fn from_wire(v: i32) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| r.wire() == v)
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .iter()
            .copied()
            .find(|r| r.code().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!(
                    "unknown correction reason {s:?}; expected one of: late_records, data_correction, reclassification, method_change"
                )
            })
    }
}

/// The content of a statistical report record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatisticalReport {
    pub table: ProtectedTable,
    /// Required for the victims table (the SDG rate); absent otherwise.
    pub population: Option<Population>,
    /// Set on every version after the first.
    pub correction: Option<CorrectionReason>,
    /// After this time (ms since the Unix epoch) every node purges the
    /// report's content, like any record's.
    pub expires_at_ms: i64,
}

/// A member's latest report, as the regional assembly reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberReport {
    /// The member's node id.
    pub member: String,
    /// The member's country (ISO 3166-1 alpha-2), from the roster.
    pub country: String,
    pub report: StatisticalReport,
}

impl StatisticalReport {
    pub fn kind(&self) -> TableKind {
        self.table.kind
    }

    pub fn period(&self) -> Period {
        self.table.period
    }

    pub fn method(&self) -> Method {
        self.table.method
    }

    /// The published cell at `key`, if the table has it.
    pub fn cell(&self, key: &[Coord]) -> Option<&Cell> {
        self.table.cells.iter().find(|c| c.key == key)
    }
}

/// A cell key as text, for the stored state of a report series and for
/// messages: one code per dimension, joined by `/` (`female/child/total/foreign`).
pub fn key_code(kind: TableKind, key: &[Coord]) -> String {
    let spec = kind.spec();
    key.iter()
        .enumerate()
        .map(|(d, c)| {
            if d < spec.dims.len() && spec.is_coord(d, *c) {
                spec.coord_label(d, *c).code
            } else {
                "?"
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The keys of the suppressed cells of a table, as [`key_code`]s.
pub fn suppressed_codes(table: &ProtectedTable) -> Vec<String> {
    table
        .cells
        .iter()
        .filter(|c| c.suppressed.is_some())
        .map(|c| key_code(table.kind, &c.key))
        .collect()
}

/// The lowest threshold a member may configure (DataSHIELD's `nfilter.tab`
/// is 3 at its lowest).
pub const MIN_THRESHOLD: u32 = 3;
/// The smallest rounding base.
pub const MIN_ROUNDING_BASE: u32 = 2;
/// The longest population source, in characters.
pub const MAX_POPULATION_SOURCE: usize = 120;

/// The rules of a report, whoever made it: the table is whole and adds up,
/// and nothing below the threshold is published. Every problem is pushed to
/// `errors` under the field path `at`.
pub fn check_report(r: &StatisticalReport, at: &str, errors: &mut crate::records::model::Errors) {
    let table = &r.table;
    let spec = table.kind.spec();
    errors.check(
        r.expires_at_ms > 0,
        format!("{at}.expires_at_ms"),
        "is required",
    );
    if let Some(p) = &r.population {
        errors.check(
            table.kind == TableKind::Victims,
            format!("{at}.population"),
            "only the victims table carries a population (SDG 16.2.2)",
        );
        errors.check(
            p.count > 0,
            format!("{at}.population.count"),
            "must be positive",
        );
        errors.check(
            (1900..=2999).contains(&p.year),
            format!("{at}.population.year"),
            "must be a year between 1900 and 2999",
        );
        crate::records::model::check_text(
            errors,
            &format!("{at}.population.source"),
            &p.source,
            MAX_POPULATION_SOURCE,
            true,
        );
    }
    match table.method {
        Method::Suppression { threshold } => errors.check(
            threshold >= MIN_THRESHOLD,
            format!("{at}.parameter"),
            format!("the suppression threshold must be at least {MIN_THRESHOLD} (got {threshold})"),
        ),
        Method::Rounding { base } => errors.check(
            base >= MIN_ROUNDING_BASE,
            format!("{at}.parameter"),
            format!("the rounding base must be at least {MIN_ROUNDING_BASE} (got {base})"),
        ),
    }
    let keys = spec.all_keys();
    if table.cells.len() != keys.len() || table.cells.iter().zip(&keys).any(|(c, k)| &c.key != k) {
        errors.push(
            format!("{at}.cells"),
            format!(
                "must list the {} cells of the {} table, each once",
                keys.len(),
                table.kind
            ),
        );
        return;
    }
    // Published interior values, by row-major position.
    let mut interior: Vec<Option<u64>> = vec![None; spec.interior_len()];
    for c in &table.cells {
        if let Some(i) = spec.interior_index(&c.key) {
            interior[i] = c.value;
        }
    }
    for (i, c) in table.cells.iter().enumerate() {
        let field = format!("{at}.cells[{i}]");
        let name = key_code(table.kind, &c.key);
        match (table.method, c.value, c.suppressed) {
            (Method::Rounding { .. }, _, Some(_)) => errors.push(
                &field,
                format!("cell {name}: a rounded table suppresses no cell"),
            ),
            (Method::Rounding { base }, Some(v), None) if v % u64::from(base.max(1)) != 0 => errors
                .push(
                    &field,
                    format!("cell {name}: {v} is not a multiple of the rounding base {base}"),
                ),
            (Method::Suppression { threshold }, Some(v), None)
                if v > 0 && v < u64::from(threshold) =>
            {
                errors.push(
                    &field,
                    format!(
                        "cell {name}: {v} is below the threshold {threshold} and must be suppressed"
                    ),
                )
            }
            (_, None, None) | (_, Some(_), Some(_)) => errors.push(
                &field,
                format!("cell {name}: a value or a suppression, not both"),
            ),
            _ => {}
        }
        // Margins add up: a published margin equals the sum of its interior
        // cells when they are all published, and is never less than the
        // published part.
        if let (Some(v), None) = (c.value, spec.interior_index(&c.key)) {
            let covered = spec.covered(&c.key);
            let known: u64 = covered.iter().filter_map(|&j| interior[j]).sum();
            let all_known = covered.iter().all(|&j| interior[j].is_some());
            if (all_known && known != v) || known > v {
                errors.push(
                    &field,
                    format!(
                        "cell {name}: {v} does not add up with the published cells it covers (their sum is {known})"
                    ),
                );
            }
        }
    }
}
