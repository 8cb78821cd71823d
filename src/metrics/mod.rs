//! Prometheus metrics: what a node counts, and the series it serves on its
//! metrics listener (`[metrics] listen`).
//!
//! Why: an operator has to see, without reading logs, whether the
//! federation is replicating (peers connected, how far behind), whether
//! anyone is sending forged or broken records, how long the agency waits
//! for a query, whether the audit log grows and is checkpointed, and how
//! many days each certificate has left. These are the series an alert
//! rule is written against (`docs/runbook.md`).
//!
//! How: most series are read from the node's components at scrape time
//! (peer status, cursors, the audit watermark, the certificates of the TLS
//! configuration in use; see `crate::node::metrics`), so they need no hook
//! at all. Only what is not
//! kept anywhere else is counted as it happens ([`Metrics`]): records
//! disclosed to each peer, records refused by reason, queries answered,
//! and the duration of the fan-out query. Both are written with the
//! `prometheus-client` crate, in the Prometheus text format (version
//! 0.0.4) that every scraper reads. No series carries record
//! content, selectors or personal data; labels take only member ids and
//! fixed codes, so their number is bounded by the roster.
//!
//! The listener (`crate::node::metrics`) speaks HTTP/1.1 over TLS 1.3 with the node's
//! own certificate and admits only clients of the local agency CA, like
//! the agency listener: enlace has no plaintext listener.
//!
//! ## The series (a public contract: names and labels are only added)
//!
//! | series | type | labels | meaning |
//! |---|---|---|---|
//! | `enlace_up` | gauge | | 1 while the node serves |
//! | `enlace_build_info` | gauge | `version` | 1; the version in the label |
//! | `enlace_peer_connected` | gauge | `peer` | 1 while the pull stream from the peer is up |
//! | `enlace_peer_cursor` | gauge | `peer` | the peer's log is held up to this seq |
//! | `enlace_peer_head` | gauge | `peer` | the peer's log head, as its last batch said |
//! | `enlace_peer_lag_records` | gauge | `peer` | head minus cursor: records not yet resolved here |
//! | `enlace_peer_last_contact_timestamp_seconds` | gauge | `peer` | last batch or heartbeat from the peer (Unix time); absent before the first |
//! | `enlace_records_received_total` | counter | `peer` | records from the peer stored here |
//! | `enlace_records_sent_total` | counter | `peer` | records of this node disclosed to the peer in `Pull` batches |
//! | `enlace_records_rejected_total` | counter | `peer`, `reason` | records from the peer refused; `reason` is [`crate::trust::verify::Rejection::label`] |
//! | `enlace_tls_handshakes_accepted_total` | counter | `listener` | `peer`, `agency`, `metrics` |
//! | `enlace_tls_handshakes_refused_total` | counter | `listener` | bad, missing, revoked or expired certificate; timeout |
//! | `enlace_tls_connections_shed_total` | counter | `listener` | connections closed unserved before their handshake: the listener or the source address had too many handshakes in progress |
//! | `enlace_tls_connections_capped_total` | counter | `listener` | authenticated connections closed right after their handshake: their identity or the listener had as many open as allowed |
//! | `enlace_tls_peer_servers_refused_total` | counter | | server certificates refused on outgoing connections to peers: another member's, no EKU, untrusted, revoked, expired (a WARN `security_event` each) |
//! | `enlace_tls_connections_cut_total` | counter | `listener` | established connections cut because, after a reload, the client's certificate no longer passed (revoked, removed from the roster, expired) |
//! | `enlace_query_duration_seconds` | histogram | | a hit/no-hit query asked by an agency client, across every member, deadline included |
//! | `enlace_query_results_total` | counter | `peer`, `result` | answers to this node's queries: `hit`, `no_hit`, `unreachable`, `refused` |
//! | `enlace_queries_answered_total` | counter | `peer`, `result` | peers' queries this node answered: `hit`, `no_hit`, `refused` |
//! | `enlace_own_log_behind` | gauge | | 1 when a peer holds a record of this node's own log above what its store holds: publishing is refused until `enlace node recover` |
//! | `enlace_publications_held_back_total` | counter | | publications refused since start because the own log is behind or unconfirmed, the node's own MLA acknowledgments included |
//! | `enlace_own_log_confirmed` | gauge | | 1 once a peer confirmed, since start, how far it saw this node's own log |
//! | `enlace_audit_lost_entries` | gauge | | entries of the audit log a peer witnessed that the store no longer holds, as found at start (0: none) |
//! | `enlace_store_log_bytes` | gauge | | committed length of the record log |
//! | `enlace_store_log_reclaimable_bytes` | gauge | | of it, the space purged records left, which `enlace node compact` reclaims |
//! | `enlace_audit_entries` | gauge | | size of the audit log (number of its last durable entry; pruned ones included) |
//! | `enlace_audit_checkpoint_size` | gauge | | size of the latest signed checkpoint of it (0: none yet) |
//! | `enlace_roster_version` | gauge | | the roster version in force (docs/roster.md) |
//! | `enlace_roster_expiry_timestamp_seconds` | gauge | | when the roster version in force expires (Unix time) |
//! | `enlace_roster_expiring` | gauge | | 1 when it expires within 30 days, or has expired |
//! | `enlace_roster_pending_proposals` | gauge | | proposals that follow the version in force and wait for approvals |
//! | `enlace_roster_refused_total` | counter | `reason` | roster proposals, approvals and versions refused since start; `reason` is [`crate::trust::chain::Refusal::reason`] (`version_skip`, `rollback`, `wrong_previous`, `expired`, `unknown_key`, `duplicate_signer`, `conflict`, `oprf_epoch`, …) |
//! | `enlace_certificate_days_left` | gauge | `certificate`, `subject` | whole days to expiry, negative once expired |
//! | `enlace_certificate_not_after_timestamp_seconds` | gauge | `certificate`, `subject` | expiry (Unix time) |
//! | `enlace_certificate_expiring` | gauge | `certificate`, `subject` | 1 within [`crate::trust::reload::EXPIRY_WARNING_DAYS`] days of expiry (the log warns too) |
//!
//! `certificate` is `node` (the node certificate; `node/1`… its
//! intermediates), `agency_ca` or `roster_ca/<member>` (`/2`… for further
//! CAs of one member): see [`crate::trust::reload::CertExpiry`]. They are read
//! from the TLS configuration in use, so a renewed certificate shows from
//! its reload on. Counters start at 0 when the node starts; a record
//! refused again after a reconnect counts again.

mod counters;

pub(crate) use counters::PeerLabels;
pub use counters::{Metrics, QUERY_BUCKETS, QueryDuration};
