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
//! | records | [`records`] | the vocabulary, domain types and their rules, selectors, series and MLA states, signing keys; pure, no I/O |
//! | configuration | [`config`], [`logging`] | the node's configuration file as plain data, validated whole without reading what it names; the log output every command sets up |
//! | wire | [`wire`] | generated protobuf code (`wire::pb`) and every conversion to and from the domain types; the signed envelope |
//! | storage | [`store`] | the durable store: records in an append-only, checksummed log with in-memory indexes; everything else in sled; one facade |
//! | trust | [`trust`] | loading what the configuration names; the roster, TLS configurations and roster-bound verifiers, PKI, CRLs, live reload, and the gate every shared record passes |
//! | state | [`state`] | the shared state of a running node, which the features extend: with its counters, per-peer clients and query buckets, and publication queue |
//! | exchange | [`exchange`] | reaching peers, per-peer replication, recovering a lost own log, convergence digests |
//! | features | [`publish`], [`cases`], [`audit`], [`metrics`] | publishing, local cases and hit/no-hit queries, the witnessed audit log, Prometheus metrics |
//! | edge | [`service`], [`node`] | the tonic services (the one place errors become `Status`) and the agency client (`service::client`); the node that wires it all and runs on bound listeners |
//! | tools' operations | [`doctor`], `testing` | `enlace doctor`'s checks; a throwaway federation on this machine for the demo, the benches and the tests (cargo feature `testing`, on by default) |

#![forbid(unsafe_code)]

pub mod audit;
pub mod cases;

pub mod clock;
pub mod config;
pub mod doctor;
pub mod exchange;
pub mod logging;
pub mod metrics;
pub mod node;
pub mod publish;
pub mod records;
pub mod service;
pub mod shutdown;
pub mod state;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trust;
pub mod wire;
