//! One scrape: the series of [`crate::metrics`] written from the node's
//! components.
//!
//! Most series are read from the running node at scrape time, so this is
//! the part of the metrics that needs the components; the counters it
//! also writes out ([`crate::metrics::Metrics`]) are a component of their
//! own and need nothing of the others. Keeping the two apart lets every
//! component count without importing the code that reads them all.
//!
//! Each scrape fills a fresh `prometheus_client` [`Registry`]: the values
//! read from the node as `Readings`, the live counters as clones of
//! their families (which share their counts), and encodes it in the
//! Prometheus text format (version 0.0.4, no `# EOF` line). Two rules of
//! the crate shape the calls below: a counter is registered without its
//! `_total` suffix, which the encoder writes, and the encoder ends every
//! `HELP` text with a full stop, so the texts here have none.

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use crate::metrics::PeerLabels;
use crate::node::Components;
use crate::store::StoreError;
use crate::trust::reload::EXPIRY_WARNING_DAYS;

/// Why a scrape could not be written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RenderError {
    #[error("the node's store cannot be read: {0}")]
    Store(#[from] StoreError),
    #[error("the series cannot be encoded")]
    Encode(#[from] std::fmt::Error),
}

/// One family as read from the node at scrape time: its label sets and
/// values, written in this order.
///
/// NOTE: unlike a `Family`, it is listed (`# HELP`, `# TYPE`) even with no
/// sample, as the series table promises every family.
#[derive(Debug)]
struct Readings<L, M>(Vec<(L, M)>);

impl<L, V> FromIterator<(L, V)> for Readings<L, ConstGauge<V>> {
    fn from_iter<I: IntoIterator<Item = (L, V)>>(rows: I) -> Self {
        Self(
            rows.into_iter()
                .map(|(l, v)| (l, ConstGauge::new(v)))
                .collect(),
        )
    }
}

impl<L> FromIterator<(L, u64)> for Readings<L, ConstCounter<u64>> {
    fn from_iter<I: IntoIterator<Item = (L, u64)>>(rows: I) -> Self {
        Self(
            rows.into_iter()
                .map(|(l, v)| (l, ConstCounter::new(v)))
                .collect(),
        )
    }
}

impl<L, M> EncodeMetric for Readings<L, M>
where
    L: EncodeLabelSet,
    M: EncodeMetric + TypedMetric,
{
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (labels, metric) in &self.0 {
            metric.encode(encoder.encode_family(labels)?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        M::TYPE
    }
}

/// A live family of counters, listed even before its first count (the
/// crate leaves an empty family out).
#[derive(Debug)]
struct Listed<M>(M);

impl<M: EncodeMetric> EncodeMetric for Listed<M> {
    fn encode(&self, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        self.0.metric_type()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertificateLabels {
    certificate: String,
    subject: String,
}

/// The text of one scrape. Fails only when the store cannot be read.
pub(crate) fn render(node: &Components) -> Result<String, RenderError> {
    let mut r = Registry::default();
    r.register(
        "enlace_up",
        "1 while the node serves",
        ConstGauge::new(1i64),
    );
    r.register(
        "enlace_build_info",
        "The enlace version this node runs, in the version label",
        Readings::from_iter([(
            VersionLabels {
                version: env!("CARGO_PKG_VERSION"),
            },
            1i64,
        )]),
    );

    let peers = node.replication.peer_states();
    let mut rows = Vec::with_capacity(peers.len());
    for (id, p) in &peers {
        rows.push((PeerLabels::new(id), id, p, node.store.records().cursor(id)?));
    }
    let per_peer = |value: &dyn Fn(&crate::exchange::PeerState, u64) -> u64| -> Readings<_, _> {
        rows.iter()
            .map(|(labels, _, p, cursor)| (labels.clone(), value(p, *cursor)))
            .collect::<Readings<_, ConstGauge<u64>>>()
    };
    r.register(
        "enlace_peer_connected",
        "1 while the pull stream from the peer is up",
        per_peer(&|p, _| u64::from(p.connected)),
    );
    r.register(
        "enlace_peer_cursor",
        "Sequence number up to which the peer's log is resolved here",
        per_peer(&|_, cursor| cursor),
    );
    r.register(
        "enlace_peer_head",
        "The peer's log head, as its last batch said",
        per_peer(&|p, cursor| p.head.max(cursor)),
    );
    r.register(
        "enlace_peer_lag_records",
        "Records of the peer's log not yet resolved here (head minus cursor)",
        per_peer(&|p, cursor| p.head.saturating_sub(cursor)),
    );
    r.register(
        "enlace_peer_last_contact_timestamp_seconds",
        "Last batch or heartbeat from the peer, in Unix time",
        rows.iter()
            .filter_map(|(labels, _, p, _)| {
                p.last_contact_ms
                    .map(|ms| (labels.clone(), ms as f64 / 1000.0))
            })
            .collect::<Readings<_, ConstGauge<f64>>>(),
    );

    r.register(
        "enlace_records_received",
        "Records from the peer stored here since the node started",
        rows.iter()
            .map(|(labels, _, p, _)| (labels.clone(), p.records_received))
            .collect::<Readings<_, ConstCounter<u64>>>(),
    );
    r.register(
        "enlace_records_sent",
        "Records of this node disclosed to the peer in pull batches since the node started",
        rows.iter()
            .map(|(labels, id, _, _)| (labels.clone(), node.metrics.sent_to(id)))
            .collect::<Readings<_, ConstCounter<u64>>>(),
    );
    r.register(
        "enlace_records_rejected",
        "Records from the peer refused, by reason (a security event each)",
        Listed(node.metrics.records_rejected.clone()),
    );

    let listeners = [
        ("peer", &node.metrics.peer_handshakes),
        ("agency", &node.metrics.agency_handshakes),
        ("metrics", &node.metrics.handshakes),
    ];
    let per_listener = |value: &dyn Fn(&crate::trust::tls::HandshakeStats) -> u64| {
        listeners
            .iter()
            .map(|(listener, stats)| (ListenerLabels { listener }, value(stats)))
            .collect::<Readings<_, ConstCounter<u64>>>()
    };
    use std::sync::atomic::Ordering::Relaxed;
    r.register(
        "enlace_tls_handshakes_accepted",
        "TLS handshakes completed with a verified identity, per listener",
        per_listener(&|s| s.accepted.load(Relaxed)),
    );
    r.register(
        "enlace_tls_handshakes_refused",
        "TLS handshakes refused (bad, missing, revoked or expired certificate; timeout), per listener",
        per_listener(&|s| s.refused.load(Relaxed)),
    );
    r.register(
        "enlace_tls_connections_shed",
        "Connections closed unserved before their handshake because the listener or their source address had too many handshakes in progress, per listener",
        per_listener(&|s| s.shed.load(Relaxed)),
    );
    r.register(
        "enlace_tls_peer_servers_refused",
        "Server certificates refused on outgoing connections to peers (wrong member, no EKU, untrusted, revoked, expired)",
        ConstCounter::new(node.trust.peer_servers_refused()),
    );
    r.register(
        "enlace_tls_connections_capped",
        "Authenticated connections closed right after their handshake because their identity or the listener had as many open as allowed, per listener",
        per_listener(&|s| s.capped.load(Relaxed)),
    );
    r.register(
        "enlace_tls_connections_cut",
        "Established connections cut because, after a reload, the client's certificate no longer passed, per listener",
        per_listener(&|s| s.cut.load(Relaxed)),
    );

    r.register(
        "enlace_query_duration_seconds",
        "Duration of a hit/no-hit query across every member, deadline included",
        node.metrics.query_duration.0.clone(),
    );
    r.register(
        "enlace_query_results",
        "Answers to this node's queries, per peer: hit, no_hit, unreachable, refused",
        Listed(node.metrics.query_results.clone()),
    );
    r.register(
        "enlace_queries_answered",
        "Peers' queries this node answered, per peer: hit, no_hit, refused",
        Listed(node.metrics.queries_answered.clone()),
    );

    let own_log = node.publisher.own_log();
    r.register(
        "enlace_own_log_behind",
        "1 when a peer holds a record of this node's own log above what its store holds: publishing is refused until `enlace node recover`",
        ConstGauge::new(i64::from(matches!(own_log, crate::publish::OwnLog::Behind { .. }))),
    );
    r.register(
        "enlace_own_log_confirmed",
        "1 once a peer confirmed how far it saw this node's own log since start",
        ConstGauge::new(i64::from(own_log == crate::publish::OwnLog::Confirmed)),
    );
    r.register(
        "enlace_publications_held_back",
        "Publications refused since start because this node's own log is behind what a peer saw, or unconfirmed (its own MLA acknowledgments included)",
        ConstCounter::new(node.publisher.held_back()),
    );
    r.register(
        "enlace_audit_lost_entries",
        "Entries of this node's audit log that a peer witnessed and the store no longer holds, as found at start (0: none)",
        ConstGauge::new(node.audit.lost_entries()),
    );
    let usage = node.store.log_usage();
    r.register(
        "enlace_store_log_bytes",
        "Committed length of the record log, in bytes",
        ConstGauge::new(usage.bytes),
    );
    r.register(
        "enlace_store_log_reclaimable_bytes",
        "Bytes of the record log that purged records left and `enlace node compact` reclaims",
        ConstGauge::new(usage.reclaimable),
    );

    r.register(
        "enlace_audit_entries",
        "Size of the audit log: the number of its last durable entry, pruned entries included",
        ConstGauge::new(node.store.watermark().audit),
    );
    let checkpoint = node
        .store
        .checkpoints()
        .latest(&node.id)?
        .map_or(0, |c| c.0);
    r.register(
        "enlace_audit_checkpoint_size",
        "Size of the audit log at its latest signed checkpoint (0: none yet)",
        ConstGauge::new(checkpoint),
    );

    let roster = node.trust.roster();
    r.register(
        "enlace_roster_version",
        "Version of the roster chain in force (docs/roster.md)",
        ConstGauge::new(roster.position.version),
    );
    r.register(
        "enlace_roster_expiry_timestamp_seconds",
        "When the roster version in force expires, in Unix time: after it links keep working, but a change needs a new version approved",
        ConstGauge::new(roster.position.expires_at_ms.div_euclid(1000)),
    );
    r.register(
        "enlace_roster_expiring",
        format!(
            "1 when the roster version in force expires within {EXPIRY_WARNING_DAYS} days (or has expired): approve a successor"
        ),
        ConstGauge::new(i64::from(
            roster.position.expires_at_ms
                <= node.clock.now_ms() + EXPIRY_WARNING_DAYS * 86_400_000,
        )),
    );

    r.register(
        "enlace_roster_pending_proposals",
        "Roster proposals that follow the version in force and wait for approvals",
        ConstGauge::new(node.governor.pending() as i64),
    );
    r.register(
        "enlace_roster_refused",
        "Roster proposals, approvals and versions refused since start, by reason (docs/roster.md)",
        node.governor
            .refused()
            .into_iter()
            .map(|(reason, n)| (ReasonLabels { reason }, n))
            .collect::<Readings<_, ConstCounter<u64>>>(),
    );

    let now = time::OffsetDateTime::now_utc();
    let certificates = node.trust.certificates();
    let per_certificate = |value: &dyn Fn(&crate::trust::reload::CertExpiry) -> i64| {
        certificates
            .iter()
            .map(|c| {
                let labels = CertificateLabels {
                    certificate: c.name.clone(),
                    subject: c.subject.clone(),
                };
                (labels, value(c))
            })
            .collect::<Readings<_, ConstGauge<i64>>>()
    };
    r.register(
        "enlace_certificate_days_left",
        "Whole days until the certificate expires; negative once expired",
        per_certificate(&|c| c.days_left(now)),
    );
    r.register(
        "enlace_certificate_not_after_timestamp_seconds",
        "When the certificate expires, in Unix time",
        per_certificate(&|c| c.not_after.unix_timestamp()),
    );
    r.register(
        "enlace_certificate_expiring",
        format!(
            "1 when the certificate expires within {EXPIRY_WARNING_DAYS} days (or has expired): renew it"
        ),
        per_certificate(&|c| i64::from(c.days_left(now) <= EXPIRY_WARNING_DAYS)),
    );

    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &r)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use prometheus_client::metrics::histogram::Histogram;

    use super::*;
    use crate::metrics::{Metrics, QueryDuration};
    use crate::records::model::NodeId;

    fn encode(r: &Registry) -> String {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, r).unwrap();
        text
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut r = Registry::default();
        let rows: [(Vec<(&str, &str)>, i64); 2] = [
            (vec![("a", "q\"uote"), ("b", "back\\slash\nnl")], 1),
            (vec![], -2),
        ];
        r.register(
            "enlace_x",
            "a \\ back\nslash",
            Readings::<_, ConstGauge<i64>>::from_iter(rows),
        );
        assert_eq!(
            encode(&r),
            "# HELP enlace_x a \\\\ back\\nslash.\n\
             # TYPE enlace_x gauge\n\
             enlace_x{a=\"q\\\"uote\",b=\"back\\\\slash\\nnl\"} 1\n\
             enlace_x -2\n"
        );
    }

    #[test]
    fn floats_are_written_as_the_format_wants() {
        let mut r = Registry::default();
        let rows = [
            (vec![("v", "inf")], f64::INFINITY),
            (vec![("v", "-inf")], f64::NEG_INFINITY),
            (vec![("v", "nan")], f64::NAN),
            (vec![("v", "one")], 1.0),
            (vec![("v", "small")], 0.005),
        ];
        r.register(
            "enlace_f",
            "floats",
            Readings::<_, ConstGauge<f64>>::from_iter(rows),
        );
        let text = encode(&r);
        let values: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' ').map(|(_, v)| v))
            .collect();
        assert_eq!(values[..3], ["+Inf", "-Inf", "NaN"], "{text}");
        assert_eq!(values[3].parse::<f64>(), Ok(1.0), "{text}");
        assert_eq!(values[4].parse::<f64>(), Ok(0.005), "{text}");
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_at_inf() {
        let h = Histogram::new([0.1, 1.0, 10.0]);
        for ms in [50, 100, 500, 2_000, 60_000] {
            h.observe(Duration::from_millis(ms).as_secs_f64());
        }
        let mut r = Registry::default();
        r.register("enlace_q_seconds", "time", h);
        let text = encode(&r);
        let (head, sum) = text.split_once("enlace_q_seconds_sum ").unwrap();
        assert_eq!(
            head,
            "# HELP enlace_q_seconds time.\n\
             # TYPE enlace_q_seconds histogram\n\
             enlace_q_seconds_bucket{le=\"0.1\"} 2\n\
             enlace_q_seconds_bucket{le=\"1\"} 3\n\
             enlace_q_seconds_bucket{le=\"10\"} 4\n\
             enlace_q_seconds_bucket{le=\"+Inf\"} 5\n"
        );
        let (sum, count) = sum.split_once('\n').unwrap();
        let sum: f64 = sum.parse().unwrap();
        assert!((sum - 62.65).abs() < 1e-9, "{sum}");
        assert_eq!(count, "enlace_q_seconds_count 5\n");
    }

    #[test]
    fn a_timer_observes_when_dropped() {
        let h = QueryDuration::default();
        drop(h.start_timer());
        let mut r = Registry::default();
        r.register("enlace_q_seconds", "time", h.0);
        assert!(encode(&r).contains("\nenlace_q_seconds_count 1\n"));
    }

    #[test]
    fn labelled_counters_add_per_label_set_and_are_listed_before_any() {
        let m = Metrics::default();
        let mut r = Registry::default();
        r.register("enlace_r", "refused", Listed(m.records_rejected.clone()));
        assert_eq!(
            encode(&r),
            "# HELP enlace_r_total refused.\n# TYPE enlace_r_total counter\n"
        );

        let (hn, sv) = (NodeId::parse("hn").unwrap(), NodeId::parse("sv").unwrap());
        for _ in 0..3 {
            m.record_rejected(&hn, "bad_signature");
        }
        m.record_rejected(&sv, "unknown_key");
        m.records_sent(&hn, 2);
        m.records_sent(&hn, 3);
        assert_eq!(m.sent_to(&hn), 5);
        assert_eq!(m.sent_to(&sv), 0);
        let text = encode(&r);
        let mut samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        samples.sort_unstable();
        assert_eq!(
            samples,
            [
                "enlace_r_total{peer=\"hn\",reason=\"bad_signature\"} 3",
                "enlace_r_total{peer=\"sv\",reason=\"unknown_key\"} 1",
            ]
        );
    }
}
