//! One scrape: the series of [`super`] written from the node's state.
//!
//! Most series are read from the running node at scrape time, so this is
//! the part of the metrics that needs the node state; the counters it also
//! writes out ([`super::Metrics`]) are kept in that state and need nothing
//! of it. Keeping the two apart lets the node state hold its counters
//! without the metrics module importing the node state back.

use registry::{CounterVec, Exposition, Kind};

use super::registry;
use crate::state::NodeState;
use crate::store::StoreError;
use crate::trust::reload::EXPIRY_WARNING_DAYS;
use crate::trust::tls::HandshakeStats;

fn handshakes(stats: &HandshakeStats) -> (u64, u64) {
    use std::sync::atomic::Ordering::Relaxed;
    (stats.accepted.load(Relaxed), stats.refused.load(Relaxed))
}

fn labelled(e: &mut Exposition, name: &str, names: &[&str], c: &CounterVec) {
    for (values, v) in c.snapshot() {
        let labels: Vec<(&str, &str)> = names
            .iter()
            .copied()
            .zip(values.iter().map(String::as_str))
            .collect();
        e.sample(name, &labels, v);
    }
}

/// The text of one scrape. Fails only when the store cannot be read.
pub fn render(state: &NodeState) -> Result<String, StoreError> {
    let mut e = Exposition::default();
    e.family("enlace_up", Kind::Gauge, "1 while the node serves.");
    e.sample("enlace_up", &[], 1u64);
    e.family(
        "enlace_build_info",
        Kind::Gauge,
        "The enlace version this node runs, in the version label.",
    );
    e.sample(
        "enlace_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1u64,
    );

    let peers = state.peer_states();
    let mut cursors = Vec::with_capacity(peers.len());
    for id in peers.keys() {
        cursors.push(state.store.records().cursor(id)?);
    }
    let rows: Vec<_> = peers.iter().zip(cursors).collect();
    e.family(
        "enlace_peer_connected",
        Kind::Gauge,
        "1 while the pull stream from the peer is up.",
    );
    for ((id, p), _) in &rows {
        e.sample(
            "enlace_peer_connected",
            &[("peer", id.as_str())],
            p.connected,
        );
    }
    e.family(
        "enlace_peer_cursor",
        Kind::Gauge,
        "Sequence number up to which the peer's log is resolved here.",
    );
    for ((id, _), cursor) in &rows {
        e.sample("enlace_peer_cursor", &[("peer", id.as_str())], *cursor);
    }
    e.family(
        "enlace_peer_head",
        Kind::Gauge,
        "The peer's log head, as its last batch said.",
    );
    for ((id, p), cursor) in &rows {
        e.sample(
            "enlace_peer_head",
            &[("peer", id.as_str())],
            p.head.max(*cursor),
        );
    }
    e.family(
        "enlace_peer_lag_records",
        Kind::Gauge,
        "Records of the peer's log not yet resolved here (head minus cursor).",
    );
    for ((id, p), cursor) in &rows {
        e.sample(
            "enlace_peer_lag_records",
            &[("peer", id.as_str())],
            p.head.saturating_sub(*cursor),
        );
    }
    e.family(
        "enlace_peer_last_contact_timestamp_seconds",
        Kind::Gauge,
        "Last batch or heartbeat from the peer, in Unix time.",
    );
    for ((id, p), _) in &rows {
        if let Some(ms) = p.last_contact_ms {
            e.sample(
                "enlace_peer_last_contact_timestamp_seconds",
                &[("peer", id.as_str())],
                ms as f64 / 1000.0,
            );
        }
    }

    e.family(
        "enlace_records_received_total",
        Kind::Counter,
        "Records from the peer stored here since the node started.",
    );
    for ((id, p), _) in &rows {
        e.sample(
            "enlace_records_received_total",
            &[("peer", id.as_str())],
            p.records_received,
        );
    }
    e.family(
        "enlace_records_sent_total",
        Kind::Counter,
        "Records of this node disclosed to the peer in pull batches since the node started.",
    );
    for ((id, _), _) in &rows {
        e.sample(
            "enlace_records_sent_total",
            &[("peer", id.as_str())],
            state.metrics.sent_to(id),
        );
    }
    e.family(
        "enlace_records_rejected_total",
        Kind::Counter,
        "Records from the peer refused, by reason (a security event each).",
    );
    labelled(
        &mut e,
        "enlace_records_rejected_total",
        &["peer", "reason"],
        &state.metrics.records_rejected,
    );

    let listeners = [
        ("peer", &state.peer_handshakes),
        ("agency", &state.agency_handshakes),
        ("metrics", &state.metrics.handshakes),
    ];
    e.family(
        "enlace_tls_handshakes_accepted_total",
        Kind::Counter,
        "TLS handshakes completed with a verified identity, per listener.",
    );
    for (name, stats) in listeners {
        e.sample(
            "enlace_tls_handshakes_accepted_total",
            &[("listener", name)],
            handshakes(stats).0,
        );
    }
    e.family(
        "enlace_tls_handshakes_refused_total",
        Kind::Counter,
        "TLS handshakes refused (bad, missing, revoked or expired certificate; timeout), per listener.",
    );
    for (name, stats) in listeners {
        e.sample(
            "enlace_tls_handshakes_refused_total",
            &[("listener", name)],
            handshakes(stats).1,
        );
    }

    e.family(
        "enlace_tls_connections_cut_total",
        Kind::Counter,
        "Established connections cut because, after a reload, the client's certificate no longer passed, per listener.",
    );
    for (name, stats) in listeners {
        e.sample(
            "enlace_tls_connections_cut_total",
            &[("listener", name)],
            stats.cut.load(std::sync::atomic::Ordering::Relaxed),
        );
    }

    e.histogram(
        "enlace_query_duration_seconds",
        "Duration of a hit/no-hit query across every member, deadline included.",
        &state.metrics.query_duration.snapshot(),
    );
    e.family(
        "enlace_query_results_total",
        Kind::Counter,
        "Answers to this node's queries, per peer: hit, no_hit, unreachable, refused.",
    );
    labelled(
        &mut e,
        "enlace_query_results_total",
        &["peer", "result"],
        &state.metrics.query_results,
    );
    e.family(
        "enlace_queries_answered_total",
        Kind::Counter,
        "Peers' queries this node answered, per peer: hit, no_hit, refused.",
    );
    labelled(
        &mut e,
        "enlace_queries_answered_total",
        &["peer", "result"],
        &state.metrics.queries_answered,
    );

    let usage = state.store.log_usage();
    e.family(
        "enlace_store_log_bytes",
        Kind::Gauge,
        "Committed length of the record log, in bytes.",
    );
    e.sample("enlace_store_log_bytes", &[], usage.bytes);
    e.family(
        "enlace_store_log_reclaimable_bytes",
        Kind::Gauge,
        "Bytes of the record log that purged records left and `enlace node compact` reclaims.",
    );
    e.sample("enlace_store_log_reclaimable_bytes", &[], usage.reclaimable);

    e.family(
        "enlace_audit_entries",
        Kind::Gauge,
        "Size of the audit log: the number of its last durable entry, pruned entries included.",
    );
    e.sample("enlace_audit_entries", &[], state.store.watermark().audit);
    e.family(
        "enlace_audit_checkpoint_size",
        Kind::Gauge,
        "Size of the audit log at its latest signed checkpoint (0: none yet).",
    );
    let checkpoint = state
        .store
        .checkpoints()
        .latest(&state.id)?
        .map_or(0, |c| c.0);
    e.sample("enlace_audit_checkpoint_size", &[], checkpoint);

    let now = time::OffsetDateTime::now_utc();
    let certificates = state.tls_live.certificates();
    e.family(
        "enlace_certificate_days_left",
        Kind::Gauge,
        "Whole days until the certificate expires; negative once expired.",
    );
    for c in &certificates {
        e.sample(
            "enlace_certificate_days_left",
            &[("certificate", &c.name), ("subject", &c.subject)],
            c.days_left(now),
        );
    }
    e.family(
        "enlace_certificate_not_after_timestamp_seconds",
        Kind::Gauge,
        "When the certificate expires, in Unix time.",
    );
    for c in &certificates {
        e.sample(
            "enlace_certificate_not_after_timestamp_seconds",
            &[("certificate", &c.name), ("subject", &c.subject)],
            c.not_after.unix_timestamp(),
        );
    }
    e.family(
        "enlace_certificate_expiring",
        Kind::Gauge,
        &format!(
            "1 when the certificate expires within {EXPIRY_WARNING_DAYS} days (or has expired): renew it."
        ),
    );
    for c in &certificates {
        e.sample(
            "enlace_certificate_expiring",
            &[("certificate", &c.name), ("subject", &c.subject)],
            c.days_left(now) <= EXPIRY_WARNING_DAYS,
        );
    }
    Ok(e.finish())
}
