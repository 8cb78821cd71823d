//! How the node reaches a peer.
//!
//! Replication, hit/no-hit queries, checkpoint witnessing and convergence
//! checks all dial peers the same way: the mTLS channel built here, with the
//! largest message a node accepts from a peer, to the endpoint the
//! configuration or the roster names ([`Dialer`]). The peer protocol's
//! heartbeat is fixed here too, since the serving side sends it and the
//! pulling side's silence limit counts in it; and so is the goodbye a
//! stopping node sends.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::records::model::NodeId;
use crate::trust::reload::LiveTls;
use crate::trust::roster::Endpoint as PeerEndpoint;
use crate::trust::tls;
use crate::wire::{PeerClient, PeerResult, Reach};

/// Where each peer is and how to dial it: the configured endpoint
/// overrides (`[sync.endpoints]`) over the roster in use, and the TLS
/// client configuration of the moment for that peer. It keeps one
/// federation client per peer for queries and witnessing, dropped when the
/// roster changes (`Dialer::forget_clients`); replicators make their own
/// channels (`Dialer::channel`).
pub struct Dialer {
    trust: Arc<LiveTls>,
    overrides: BTreeMap<NodeId, PeerEndpoint>,
    clients: Mutex<HashMap<NodeId, PeerClient>>,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer")
            .field("overrides", &self.overrides)
            .finish_non_exhaustive()
    }
}

impl Dialer {
    pub fn new(trust: Arc<LiveTls>, overrides: BTreeMap<NodeId, PeerEndpoint>) -> Self {
        Self {
            trust,
            overrides,
            clients: Mutex::default(),
        }
    }

    /// Where to dial `peer`: the configured override, else the roster's endpoint.
    pub fn endpoint(&self, peer: &NodeId) -> Option<PeerEndpoint> {
        self.overrides.get(peer).cloned().or_else(|| {
            self.trust
                .roster()
                .member(peer)
                .and_then(|m| m.endpoint.clone())
        })
    }

    /// A new, lazily connecting channel to `peer`, with the TLS client
    /// configuration in use now.
    pub(crate) fn channel(&self, peer: &NodeId) -> Result<Channel, PeerResult> {
        let endpoint = self
            .endpoint(peer)
            .ok_or_else(|| PeerResult::Unreachable("no endpoint".into()))?;
        peer_channel(self.trust.peer_client(peer), &endpoint.host, endpoint.port)
            .map_err(|e| PeerResult::Unreachable(e.to_string()))
    }

    /// Forgets every kept client (the roster changed: endpoints or trust may have).
    pub(crate) fn forget_clients(&self) {
        if let Ok(mut c) = self.clients.lock() {
            c.clear();
        }
    }
}

impl Reach for Dialer {
    fn reachable(&self, peer: &NodeId) -> bool {
        self.endpoint(peer).is_some()
    }

    fn client(&self, peer: &NodeId) -> Result<PeerClient, PeerResult> {
        if let Ok(clients) = self.clients.lock()
            && let Some(c) = clients.get(peer)
        {
            return Ok(c.clone());
        }
        let client = PeerClient::new(self.channel(peer)?);
        if let Ok(mut clients) = self.clients.lock() {
            clients.insert(peer.clone(), client.clone());
        }
        Ok(client)
    }
}

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
