//! # enlace — a federated, secure information-exchange node
//!
//! Each member of the federation (a national prosecutors' office, police or
//! migration authority, or a partner organisation) runs one node. The node
//! keeps its agency's data locally and shares only signed, minimal records
//! with the peers that the record's distribution names, over mutually
//! authenticated gRPC. There is no central database.
//!
//! ## Where things live
//!
//! | module | concern |
//! |---|---|
//! | [`clock`] | the wall clock as every module reads it: milliseconds since the Unix epoch |
//! | [`vocabulary`] | the federation's codes (alert types, offences, forms of exploitation, TLP, …) with Spanish and English labels; ISO 3166 countries |
//! | [`model`] | domain types (records, alerts, case references, distribution) and the rules that make them valid; no I/O |
//! | [`selector`] | normalising and hashing personal identifiers into selectors; the matching key |
//! | [`lifecycle`] | record series: versions, withdrawals, expiry and tombstones |
//! | [`publish`] | the origin's side: an agency's request becomes a signed, durable record |
//! | [`cases`] | local cases (never shared), their selector index, and hit/no-hit queries with limits |
//! | [`mla`] | mutual legal assistance: request, automatic acknowledgment, answer; state at both ends |
//! | [`audit`] | the hash-chained accountability log: entries, checkpoints witnessed by peers, verification, retention |
//! | [`pb`] | generated protobuf and gRPC code; converted to [`model`] types at the edges only |
//! | [`crypto`] | Ed25519 record signatures, signing-key files, private-file permissions |
//! | [`roster`] | the federation file: members, their trust roots and signing keys |
//! | [`config`] | the node's configuration file, validated whole |
//! | [`doctor`] | `enlace doctor`: checks a node's configuration, key files, certificates, roster entry and peers, with a verdict each |
//! | [`tls`] | rustls configurations and the roster-bound certificate verifiers |
//! | [`pki`] | issuing and renewing CAs and certificates that follow the enlace certificate profile |
//! | [`crl`] | certificate revocation lists: revoking a certificate, reading and checking CRL files |
//! | [`metrics`] | Prometheus metrics: the counters a node keeps, the series it serves, and its metrics listener (HTTP/1.1 over TLS) |
//! | [`reload`] | the TLS configurations both listeners and outgoing connections use, rebuilt from the files on SIGHUP or when they change |
//! | [`store`] | the durable store: records in an append-only, checksummed log with in-memory indexes; everything else in sled; one facade |
//! | [`verify`] | the gate every shared record passes: roster key, signature, body rules, origin |
//! | [`peers`] | reaching a peer (the mTLS channel, message limit, heartbeat) and what a node keeps per peer (query clients, query token buckets) |
//! | [`convergence`] | digests of what two nodes hold, to check that replication converged |
//! | [`sync`] | per-peer replication: pull from the cursor, follow live, back off |
//! | [`recover`] | a lost own log, asked back from the peers that hold its records |
//! | [`service`] | the tonic services (peer-facing and agency-facing); the one place errors become `Status` |
//! | [`sandbox`] | a throwaway federation on this machine, for `enlace demo` and the integration tests |
//! | [`shutdown`] | the stop signal every listener, stream and replicator waits on |
//! | [`state`] | the shared state of a running node, which the features extend with their own `impl` blocks |
//! | [`node`] | wires everything together; [`node::Node::run`] takes bound listeners |
//! | [`logging`] | the log output every command sets up: `RUST_LOG` or a default, text or JSON |
//! | [`client`] | the agency client: `client.toml` and an mTLS channel to the agency API |
//! | [`cli`] | the `enlace` command tree, including `enlace demo` |
//! | [`bench`](mod@bench) | `enlace bench`: replication, latency, publish rate and memory, measured on this machine |
//!
//! The binary (`src/main.rs`) only parses the command line and calls [`cli::run`].

#![forbid(unsafe_code)]

pub mod audit;
pub mod bench;
pub mod cases;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod convergence;
pub mod crl;
pub mod crypto;
pub mod doctor;
pub mod lifecycle;
pub mod logging;
pub mod metrics;
pub mod mla;
pub mod model;
pub mod node;
pub mod pb;
pub mod peers;
pub mod pki;
pub mod publish;
pub mod recover;
pub mod reload;
pub mod roster;
pub mod sandbox;
pub mod selector;
pub mod service;
pub mod shutdown;
pub mod state;
pub mod store;
pub mod sync;
pub mod tls;
pub mod verify;
pub mod vocabulary;
