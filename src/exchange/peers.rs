//! What the node keeps per peer, and how it reaches one.
//!
//! Replication, hit/no-hit queries, checkpoint witnessing and convergence
//! checks all dial peers the same way: the mTLS channel built here, with the
//! largest message a node accepts from a peer. The peer protocol's heartbeat
//! is fixed here too, since the serving side sends it and the pulling side's
//! silence limit counts in it. The node state keeps, per peer, the
//! federation clients made for queries and the token bucket that bounds
//! each peer's queries. All of this sits below the node state and below
//! every feature that talks to peers, so that none of them has to import
//! another (or the node) to do so. So does [`PeerResult`], what one peer
//! answered (or why it did not), which queries and checkpoint witnessing
//! both read.
//!
//! The token bucket is written out here rather than taken from `governor`:
//! governor would decide the same, but even without its default features it
//! adds eleven crates to the lockfile for what is twenty lines here.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::records::model::{ContactPoint, NodeId};
use crate::trust::tls;
use crate::wire::PeerClient;

/// One member's answer to a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerResult {
    Hit {
        hits: Vec<bool>,
        case_refs: Vec<String>,
        contact: Option<ContactPoint>,
    },
    NoHit,
    Unreachable(String),
    Refused(String),
}

impl PeerResult {
    /// `hit`, `no_hit`, `unreachable` or `refused`.
    pub fn label(&self) -> &'static str {
        match self {
            PeerResult::Hit { .. } => "hit",
            PeerResult::NoHit => "no_hit",
            PeerResult::Unreachable(_) => "unreachable",
            PeerResult::Refused(_) => "refused",
        }
    }

    /// Why a peer could not be asked (or, for an answer, what it was): for
    /// callers that only need to say what went wrong.
    pub fn reason(self) -> String {
        match self {
            PeerResult::Unreachable(why) | PeerResult::Refused(why) => why,
            other => format!("{other:?}"),
        }
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

/// A token bucket per peer: `per_minute` queries, refilled continuously.
#[derive(Debug, Default)]
pub struct Buckets(Mutex<HashMap<NodeId, (f64, Instant)>>);

impl Buckets {
    /// Takes one token for `peer`, or says how long until one is free.
    pub fn take(&self, peer: &NodeId, per_minute: u32) -> Result<(), Duration> {
        let capacity = f64::from(per_minute.max(1));
        let rate = capacity / 60.0;
        let now = Instant::now();
        let Ok(mut map) = self.0.lock() else {
            return Ok(());
        };
        let (tokens, last) = map.entry(peer.clone()).or_insert((capacity, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(capacity);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / rate))
        }
    }
}

/// Federation clients per peer, kept across queries.
#[derive(Default)]
pub struct PeerClients(pub(crate) Mutex<HashMap<NodeId, PeerClient>>);

impl PeerClients {
    /// Forgets every client (the roster changed: endpoints or trust may have).
    pub fn clear(&self) {
        if let Ok(mut c) = self.0.lock() {
            c.clear();
        }
    }
}

impl std::fmt::Debug for PeerClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerClients")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_refuses_the_one_too_many_and_says_when() {
        let b = Buckets::default();
        let gt = NodeId::parse("gt").unwrap();
        for _ in 0..3 {
            b.take(&gt, 3).unwrap();
        }
        let wait = b.take(&gt, 3).unwrap_err();
        assert!(
            wait > Duration::from_secs(10) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        b.take(&NodeId::parse("hn").unwrap(), 3).expect("per peer");
    }

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
