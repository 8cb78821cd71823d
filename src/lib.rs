//! # enlace — a federated, secure information-exchange node
//!
//! Each member of the federation (a national prosecutors' office, police or
//! migration authority, or a partner organisation) runs one node. The node
//! keeps its agency's data locally and shares only signed, minimal records
//! with the peers that the record's distribution names, over mutually
//! authenticated gRPC. There is no central database.
//!
//! ## The house, ground floor first
//!
//! Each floor imports only from the floors below it. The command line, the
//! benchmarks and the demo are not here: they live in the `enlace` binary
//! (`src/bin/enlace/`), which calls this library like any other client.
//!
//! | floor | module | concern |
//! |---|---|---|
//! | ground | [`clock`], [`shutdown`] | the wall clock every module reads; the stop signal every task waits on |
//! | records | [`records`] (with [`stats`], re-exported at the root) | the vocabulary, domain types and their rules, selectors, series and MLA states, signing keys; the fixed statistical tables, their counting, protection and regional assembly (a statistical report is a record's content); pure, no I/O |
//! | configuration | [`config`], [`logging`], [`limits`] | the node's configuration file as plain data, validated whole without reading what it names; the log output every command sets up; what one peer may make a node spend, in one place |
//! | wire | [`wire`] | generated protobuf code (`wire::pb`) and every conversion to and from the domain types; the signed envelope |
//! | storage | [`store`] | the durable store: records in an append-only, checksummed log with in-memory indexes; everything else in sled; one facade |
//! | trust | [`trust`] | loading what the configuration names; the roster and its chain of versions approved by a quorum of members (`trust::chain`), TLS configurations and roster-bound verifiers, PKI, CRLs, live reload, and the gate every shared record passes |
//! | counting | [`metrics`] | what a node counts as it happens, and the public table of the series it serves |
//! | audit | [`audit`] | the witnessed audit log: entries, checkpoints, verification, and its keeper |
//! | exchange and features | [`exchange`], [`publish`], [`cases`], [`governance`] | reaching peers and replicating from them, recovering a lost own log, convergence digests; publishing; local cases and hit/no-hit queries; roster proposals and approvals, and adopting the next roster version by quorum |
//! | components | [`components`] | the named components of one node (store, trust, metrics, peers, audit keeper, publisher, case index, replication, roster governor), each with a narrow handle to what it needs |
//! | edge | [`service`], [`node`] | the tonic services (the one place errors become `Status`) and the agency client (`service::client`); the node that owns the components and runs them on bound listeners, with its metrics listener and periodic duties |
//! | tools' operations | [`doctor`], `testing` | `enlace doctor`'s checks; a throwaway federation on this machine for the demo, the benches and the tests, and the bodies of the fuzz targets (`testing::fuzz`, `docs/fuzzing.md`) (cargo feature `testing`, on by default) |

#![forbid(unsafe_code)]

pub mod audit;
pub mod cases;
pub mod clock;
pub mod components;
pub mod config;
pub mod doctor;
pub mod exchange;
pub mod governance;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod node;
pub mod publish;
pub mod records;
pub use records::stats;
pub mod service;
pub mod shutdown;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trust;
pub mod wire;
