//! What the node keeps per peer, and how it reaches one.
//!
//! Replication, hit/no-hit queries, checkpoint witnessing and convergence
//! checks all dial peers the same way: the mTLS channel built here, with the
//! largest message a node accepts from a peer. The peer protocol's heartbeat
//! is fixed here too, since the serving side sends it and the pulling side's
//! silence limit counts in it; and so is the goodbye a stopping node sends.
//! What the node keeps per peer (clients, query buckets) is held by the
//! node state (`crate::state::peers`).

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::records::model::NodeId;
use crate::trust::tls;

/// Largest gRPC message a node accepts from a peer.
pub const MAX_PEER_MESSAGE: usize = 8 * 1024 * 1024;

/// Builds a lazily connecting mTLS channel to a peer. The connector does
/// TLS itself, with the roster-bound verifier for that peer; no plaintext
/// path exists.
pub fn peer_channel(
    tls_config: impl Into<tls::ClientTls>,
    host: &str,
    port: u16,
) -> Result<Channel, tls::TlsError> {
    let server_name = tls::server_name(host)?;
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let endpoint = Endpoint::from_shared(format!("https://{authority}"))
        .map_err(|e| tls::TlsError::Verifier(format!("bad endpoint {authority}: {e}")))?
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(15))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    Ok(endpoint.connect_with_connector_lazy(tls::connector(
        tls_config,
        host.to_owned(),
        port,
        server_name,
    )))
}

/// How often an idle follow stream carries an empty batch; the
/// configuration's silence limit is counted in these, so it is defined there.
pub use crate::config::HEARTBEAT;

/// How a serving node's goodbye ends its message: the pulling side reads it
/// to tell a peer that is stopping from one that failed.
const SHUTTING_DOWN: &str = " is shutting down";

/// The status a serving node ends a follow stream with when it stops, so
/// that the pulling side reconnects quietly once it is back instead of
/// backing off as after a failure.
pub(crate) fn shutting_down(node: &NodeId) -> Status {
    Status::unavailable(format!("node {node}{SHUTTING_DOWN}"))
}

/// Whether a peer's status is the goodbye made by [`shutting_down`]. The
/// peer protocol carries no more than a code and a message, and older
/// nodes send exactly this, so the message is what can be checked.
pub(crate) fn is_shutting_down(status: &Status) -> bool {
    status.code() == Code::Unavailable && status.message().ends_with(SHUTTING_DOWN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_goodbye_is_recognised_and_a_failure_is_not() {
        let hn = NodeId::parse("hn").unwrap();
        let goodbye = shutting_down(&hn);
        assert_eq!(goodbye.message(), "node hn is shutting down");
        assert!(is_shutting_down(&goodbye));
        assert!(!is_shutting_down(&Status::unavailable("tcp connect error")));
        assert!(!is_shutting_down(&Status::internal(
            "node hn is shutting down"
        )));
    }
}
