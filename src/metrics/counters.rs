//! What a node counts as it happens: records disclosed and refused per
//! peer, queries answered and asked, the fan-out query's duration, and TLS
//! handshakes per listener. The node's metrics listener
//! (`crate::node::metrics`) renders them with everything else it reads
//! from the components at scrape time.

use std::sync::Arc;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

use crate::records::model::NodeId;
use crate::trust::tls::HandshakeStats;

/// Upper bounds of the query duration histogram, in seconds: from a
/// federation on one LAN up to the longest deadline `query.deadline_ms`
/// allows (120 s).
pub const QUERY_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// The labels of a per-peer series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PeerLabels {
    peer: String,
}

impl PeerLabels {
    pub(crate) fn new(peer: &NodeId) -> Self {
        Self {
            peer: peer.as_str().to_owned(),
        }
    }
}

/// The labels of a refused record: the peer it came from and why.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RejectionLabels {
    peer: String,
    reason: String,
}

/// The labels of a query's answer: the peer and its result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ResultLabels {
    peer: String,
    result: String,
}

impl ResultLabels {
    pub(crate) fn new(peer: &NodeId, result: &str) -> Self {
        Self {
            peer: peer.as_str().to_owned(),
            result: result.to_owned(),
        }
    }
}

/// What a node counts as it happens; the rest is read at scrape time.
///
/// The families share their counts with their clones (the crate keeps
/// them behind an `Arc`), so a scrape registers clones of them.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Records disclosed per peer.
    pub(crate) records_sent: Family<PeerLabels, Counter>,
    /// Records refused per peer and reason.
    pub(crate) records_rejected: Family<RejectionLabels, Counter>,
    /// This node's queries, per peer and answer.
    pub(crate) query_results: Family<ResultLabels, Counter>,
    /// Peers' queries this node answered, per peer and result.
    pub(crate) queries_answered: Family<ResultLabels, Counter>,
    /// Duration of the fan-out query.
    pub query_duration: QueryDuration,
    /// TLS handshakes on the peer listener.
    pub peer_handshakes: Arc<HandshakeStats>,
    /// TLS handshakes on the agency listener.
    pub agency_handshakes: Arc<HandshakeStats>,
    /// TLS handshakes on the metrics listener.
    pub handshakes: Arc<HandshakeStats>,
}

impl Metrics {
    /// `n` records of this node went to `peer` in a pull batch.
    pub(crate) fn records_sent(&self, peer: &NodeId, n: usize) {
        self.records_sent
            .get_or_create(&PeerLabels::new(peer))
            .inc_by(n as u64);
    }

    /// A record from `peer` was refused for `reason`
    /// ([`crate::trust::verify::Rejection::label`]).
    pub fn record_rejected(&self, peer: &NodeId, reason: &str) {
        let labels = RejectionLabels {
            peer: peer.as_str().to_owned(),
            reason: reason.to_owned(),
        };
        self.records_rejected.get_or_create(&labels).inc();
    }

    /// `peer` answered one of this node's queries with `result`.
    pub fn query_result(&self, peer: &NodeId, result: &str) {
        self.query_results
            .get_or_create(&ResultLabels::new(peer, result))
            .inc();
    }

    /// This node answered a query of `peer` with `result`.
    pub fn query_answered(&self, peer: &NodeId, result: &str) {
        self.queries_answered
            .get_or_create(&ResultLabels::new(peer, result))
            .inc();
    }

    /// Records sent to `peer` so far.
    pub(crate) fn sent_to(&self, peer: &NodeId) -> u64 {
        self.records_sent
            .get(&PeerLabels::new(peer))
            .map_or(0, |c| c.get())
    }
}

/// The histogram of the fan-out query's duration, in seconds, with
/// [`QUERY_BUCKETS`].
#[derive(Debug, Clone)]
pub struct QueryDuration(pub(crate) Histogram);

impl Default for QueryDuration {
    fn default() -> Self {
        Self(Histogram::new(QUERY_BUCKETS))
    }
}

impl QueryDuration {
    /// Observes the time from now until the guard is dropped.
    pub(crate) fn start_timer(&self) -> QueryTimer<'_> {
        QueryTimer {
            histogram: &self.0,
            started: Instant::now(),
        }
    }
}

/// Observes into its histogram when dropped.
#[derive(Debug)]
pub(crate) struct QueryTimer<'a> {
    histogram: &'a Histogram,
    started: Instant,
}

impl Drop for QueryTimer<'_> {
    fn drop(&mut self) {
        self.histogram.observe(self.started.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_sent_add_up_per_peer() {
        let m = Metrics::default();
        let (gt, hn) = (NodeId::parse("gt").unwrap(), NodeId::parse("hn").unwrap());
        m.records_sent(&gt, 2);
        m.records_sent(&gt, 3);
        assert_eq!(m.sent_to(&gt), 5);
        assert_eq!(m.sent_to(&hn), 0, "a peer never sent to counts nothing");
    }
}
