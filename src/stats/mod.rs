//! Uniform statistics without moving case data.
//!
//! The federation's members count their own local cases into fixed tables
//! (the UNODC data collection and SDG indicator 16.2.2), protect each table
//! at the member before anything leaves it, and share only the protected
//! tables, as signed statistical reports. A regional table is assembled
//! from the members' latest reports; it never pretends to know a figure a
//! member suppressed.
//!
//! This module is pure (no I/O), below the wire floor, so that the wire can
//! convert reports and peers can check them with the same code:
//! - [`table`]: the fixed tables, their cells and periods;
//! - `count`: the counting rules, from a case's facts to a table;
//! - `protect`: primary and secondary suppression, controlled rounding, and
//!   the check that no suppressed cell can be recovered;
//! - `regional`: the federation-wide table and the SDG 16.2.2 rate.
//!
//! `docs/statistics.md` states the tables, their sources and the rules.

pub mod regional;
pub mod report;
pub mod table;

pub use regional::{
    Figure, MemberColumn, NotComputable, Rate, RateRow, RegionalError, RegionalRate, RegionalRow,
    RegionalTable, Sdg1622, Total, assemble,
};
pub use report::{
    CorrectionReason, MAX_POPULATION_SOURCE, MIN_ROUNDING_BASE, MIN_THRESHOLD, MemberReport,
    Population, StatisticalReport, check_report, key_code, suppressed_codes, suppressed_keys,
};
pub use table::{
    Cell, Coord, Counts, DimName, Dimension, Key, Label, Method, Period, ProtectedTable,
    Suppression, TableKind, TableSpec,
};

// TEMPORARY until count.rs lands (stats-protect branch).
/// What the statistics count of one case.
#[derive(Debug, Clone)]
pub struct CaseFacts {
    pub offence: crate::records::vocabulary::Offence,
    pub highest_stage: crate::records::vocabulary::CaseStage,
    pub stage_at_ms: i64,
    pub victims: Vec<VictimFacts>,
    pub offenders: Vec<OffenderFacts>,
}
/// A victim, as counted.
#[derive(Debug, Clone)]
pub struct VictimFacts {
    pub sex: crate::records::vocabulary::Sex,
    pub age_group: crate::records::vocabulary::AgeGroup,
    pub exploitation: Vec<crate::records::vocabulary::Exploitation>,
    pub citizenship: String,
}
/// An offender, as counted.
#[derive(Debug, Clone)]
pub struct OffenderFacts {
    pub sex: crate::records::vocabulary::Sex,
    pub citizenship: String,
}
// TEMPORARY until count.rs and protect.rs land (stats-protect branch).
#[allow(missing_docs)]
pub fn count(kind: TableKind, period: Period, _national: &str, _cases: &[CaseFacts]) -> Counts {
    Counts::zero(kind, period)
}
#[allow(missing_docs)]
pub fn protect(
    counts: &Counts,
    method: Method,
    _previous: &[Key],
) -> Result<ProtectedTable, String> {
    let spec = counts.kind.spec();
    Ok(ProtectedTable {
        kind: counts.kind,
        period: counts.period,
        method,
        cells: spec
            .all_keys()
            .into_iter()
            .map(|key| Cell {
                value: Some(counts.value(&key)),
                key,
                suppressed: None,
            })
            .collect(),
    })
}

#[cfg(test)]
mod report_tests;
