//! A statistical report: one member's protected table for one period, as
//! it travels in a signed record.

use super::table::{Cell, Coord, Method, Period, ProtectedTable, TableKind};

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
