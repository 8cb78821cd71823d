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
//! - `regions`: the UN M49 region of a foreign citizenship;
//! - `protect`: primary and secondary suppression, controlled rounding, and
//!   the check that no suppressed cell can be recovered;
//! - `regional`: the federation-wide table and the SDG 16.2.2 rate.
//!
//! `docs/statistics.md` states the tables, their sources and the rules.

pub mod count;
pub mod period;
pub mod protect;
pub mod regional;
pub mod regions;
pub mod report;
pub mod table;

pub use count::{CaseFacts, OffenderFacts, VictimFacts, count};
pub use period::Period;
pub use protect::{ProtectError, check, protect, suppressed_keys};
pub use regional::{
    Figure, MemberColumn, NotComputable, Rate, RateRow, RegionalError, RegionalRate, RegionalRow,
    RegionalTable, Sdg1622, Total, assemble,
};
pub use regions::region_of;
pub use report::{
    CorrectionReason, MAX_POPULATION_SOURCE, MIN_ROUNDING_BASE, MIN_THRESHOLD, MemberReport,
    Population, StatisticalReport, check_report, key_code, suppressed_codes,
};
pub use table::{
    Cell, Coord, Counts, DimName, Dimension, Key, Label, Method, ProtectedTable, Suppression,
    TableKind, TableSpec,
};

#[cfg(test)]
mod report_tests;
