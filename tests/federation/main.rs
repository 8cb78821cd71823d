//! Federations of real nodes started in this process through the library
//! (each on `127.0.0.1:0`, real mTLS, real sled in temporary directories),
//! stand-in peers that misbehave, and the properties of the record format.
//!
//! One test binary rather than one per file: each binary links the whole
//! library, so the suite builds much faster as a few. The tests run as
//! threads of one process, so none may change anything process-wide
//! (environment, current directory, fixed ports). NOTE: one test sends
//! SIGHUP to this process (`reload`); a node of another test that gets it
//! only reloads files that changed, as its own file watcher would.

#[path = "../common/mod.rs"]
mod common;

mod budgets;
mod convergence;
mod dictionary;
mod governance;
mod hostile;
mod lifecycle;
mod liveness;
mod metrics;
mod oblivious;
mod properties;
mod query_mla;
mod reload;
mod replication;
mod revocation;
mod roster;
mod rotation;
mod statistics;
mod tamper;
mod tls;
mod tls_limits;
mod witness_roster;
