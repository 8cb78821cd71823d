//! The ground floor: what a record is, before anything stores, signs for
//! the wire or sends it.
//!
//! Everything here is pure: the federation's vocabulary, the domain types
//! and their rules, selectors (normalised, hashed identifiers), the series
//! rules of versions and withdrawals, the MLA exchange's states, roster proposals and approvals as records, the
//! statistical tables a report carries (their counting, protection and
//! regional assembly: [`stats`]), and the Ed25519 keys records are signed
//! with. No module here does network I/O or
//! knows the generated protobuf types (those live in [`crate::wire`]).

pub mod crypto;
pub mod filter;
pub mod lifecycle;
pub mod mla;
pub mod model;
pub mod oprf;
pub mod roster;
pub mod sealed;
pub mod selector;
pub mod stats;
pub mod vocabulary;
