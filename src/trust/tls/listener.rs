//! The listeners' accept loop: where an accepted TCP connection becomes a
//! guarded TLS connection with a verified identity, or is dropped.
//!
//! Separate because it is the part a hostile client can reach before it
//! has proved anything. The loop only accepts: it never waits for room,
//! since a loop that waits lets a few idle sockets starve every honest
//! client (issue 14, H1). Each connection then needs a handshake slot
//! (see `admission`: per listener and per source address) or is closed at
//! once; its ClientHello must start arriving within
//! [`FIRST_BYTE_TIMEOUT`] and the whole handshake end within
//! [`HANDSHAKE_TIMEOUT`], in a task of its own. The counts feed the
//! metrics.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;

use super::admission::{Admission, ListenerLimits, Throttled};
use super::guard::{Guarded, Preface, owned_chain};
use super::identity::Identity;
use super::{ServerTls, TlsError};

/// How long an accepted connection may stay silent before its ClientHello
/// starts to arrive. Short, because a silent socket holds a handshake
/// slot: a real client sends its ClientHello right after connecting.
pub const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a whole TLS handshake may take, from accept, before the
/// connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long after the TLS handshake a client has to send its first 24
/// bytes (the HTTP/2 connection preface; the start of an HTTP/1.1 request
/// on the metrics listener) before the connection is closed.
pub const PREFACE_TIMEOUT: Duration = Duration::from_secs(5);
/// The length of the HTTP/2 client connection preface (RFC 9113, 3.4).
const PREFACE_BYTES: usize = 24;
/// At most one WARN line this often for connections shed or silent: a
/// flood must not fill the log (the counters count every one).
const SHED_LOG_EVERY: Duration = Duration::from_secs(10);

/// Counts of TLS handshakes on one listener.
#[derive(Debug, Default)]
pub struct HandshakeStats {
    /// Handshakes completed with a verified, usable identity.
    pub accepted: std::sync::atomic::AtomicU64,
    /// Handshakes refused (bad or missing certificate, wrong identity, timeout).
    pub refused: std::sync::atomic::AtomicU64,
    /// Connections closed at once, unserved, because the listener or their
    /// source address had as many handshakes in progress as allowed.
    pub shed: std::sync::atomic::AtomicU64,
    /// Authenticated connections closed right after their handshake
    /// because their identity or the listener had as many open as allowed.
    pub capped: std::sync::atomic::AtomicU64,
    /// Established connections cut because, after a reload, the client's
    /// certificate no longer passed.
    pub cut: std::sync::atomic::AtomicU64,
}

impl HandshakeStats {
    fn count_cut(&self) {
        self.cut.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    fn count_refused(&self) {
        self.refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    fn count_capped(&self) {
        self.capped
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    fn count_shed(&self) {
        self.shed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    fn count_accepted(&self) {
        self.accepted
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Connection facts that tonic hands to every request on the connection
/// (`request.extensions().get::<ConnInfo>()`).
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    pub identity: Identity,
}

/// How an accepted connection's identity is read from its verified leaf.
pub type Identify = Arc<dyn Fn(&CertificateDer<'_>) -> Result<Identity, TlsError> + Send + Sync>;

/// An accepted, handshaken TLS connection with its verified identity.
pub type TlsConn = Guarded<tokio_rustls::server::TlsStream<TcpStream>, ConnInfo>;

impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

/// Accepts TCP connections, runs each TLS handshake in its own task (so a
/// slow or hostile client cannot hold up the others), and yields the
/// connections whose certificates passed. Never waits for room: a
/// connection beyond the handshake budgets of `admission` is closed at
/// once, and an authenticated one beyond the connection budgets right
/// after its handshake. Ends when `shutdown` turns true.
pub fn incoming(
    listener: TcpListener,
    config: impl Into<ServerTls>,
    identify: Identify,
    listener_name: &'static str,
    stats: Arc<HandshakeStats>,
    shutdown: watch::Receiver<bool>,
) -> ReceiverStream<Result<TlsConn, std::io::Error>> {
    incoming_with_limits(
        listener,
        config,
        identify,
        listener_name,
        stats,
        ListenerLimits::default(),
        shutdown,
    )
}

/// [`incoming`] with the budgets of `limits`.
pub fn incoming_with_limits(
    listener: TcpListener,
    config: impl Into<ServerTls>,
    identify: Identify,
    listener_name: &'static str,
    stats: Arc<HandshakeStats>,
    limits: ListenerLimits,
    mut shutdown: watch::Receiver<bool>,
) -> ReceiverStream<Result<TlsConn, std::io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    let config = config.into();
    let admission = Admission::new(limits);
    let shed_log = Arc::new(Throttled::new(SHED_LOG_EVERY));
    let silent_log = Arc::new(Throttled::new(SHED_LOG_EVERY));
    let capped_log = Arc::new(Throttled::new(SHED_LOG_EVERY));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = shutdown.wait_for(|s| *s) => break,
            };
            let (tcp, remote) = match accepted {
                Ok(a) => a,
                Err(error) => {
                    // Typically EMFILE: back off briefly rather than spin.
                    tracing::warn!(listener = listener_name, %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let slot = match admission.handshake(remote.ip()) {
                Ok(slot) => slot,
                Err(why) => {
                    // NOTE: closed before a byte is read: shedding costs an
                    // accept and a close, nothing an outsider can make grow.
                    drop(tcp);
                    stats.count_shed();
                    if let Some(n) = shed_log.due() {
                        tracing::warn!(
                            security_event = true,
                            listener = listener_name,
                            %remote,
                            reason = %why,
                            shed = n,
                            "connections closed unserved: too many TLS handshakes in progress"
                        );
                    }
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            // Read per connection, so a reloaded configuration applies to
            // the next handshake and to none already made.
            let acceptor = TlsAcceptor::from(config.current());
            let recheck_source = config.clone();
            let identify = identify.clone();
            let tx = tx.clone();
            let stats = stats.clone();
            let silent_log = silent_log.clone();
            let capped_log = capped_log.clone();
            let admission = admission.clone();
            tokio::spawn(async move {
                let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
                match tokio::time::timeout(FIRST_BYTE_TIMEOUT, tcp.peek(&mut [0u8; 1])).await {
                    Ok(Ok(n)) if n > 0 => {}
                    // Closed or failed before a byte: nothing to refuse.
                    Ok(_) => return,
                    Err(_) => {
                        stats.count_refused();
                        if let Some(n) = silent_log.due() {
                            tracing::warn!(
                                listener = listener_name,
                                %remote,
                                silent = n,
                                "connections closed: no TLS ClientHello within {FIRST_BYTE_TIMEOUT:?}"
                            );
                        }
                        return;
                    }
                }
                let stream = match tokio::time::timeout_at(deadline, acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(error)) => {
                        stats.count_refused();
                        tracing::warn!(listener = listener_name, %remote, %error, "TLS handshake refused");
                        return;
                    }
                    Err(_) => {
                        stats.count_refused();
                        tracing::warn!(listener = listener_name, %remote, "TLS handshake timed out");
                        return;
                    }
                };
                drop(slot);
                let (identity, chain) = {
                    let (_, conn) = stream.get_ref();
                    let chain = owned_chain(conn.peer_certificates());
                    match chain.first() {
                        Some(leaf) => (identify(leaf), chain),
                        None => (Err(TlsError::NoClientName), chain),
                    }
                };
                match identity {
                    Ok(identity) => {
                        let slot = match admission.connection(&identity) {
                            Ok(slot) => slot,
                            Err(why) => {
                                // NOTE: the identity is known, so the
                                // refusal names it; throttled all the same,
                                // since a member could open thousands.
                                stats.count_capped();
                                if let Some(n) = capped_log.due() {
                                    tracing::warn!(
                                        security_event = true,
                                        listener = listener_name,
                                        %remote,
                                        peer = ?identity,
                                        reason = %why,
                                        capped = n,
                                        "authenticated connection closed: over its connection budget"
                                    );
                                }
                                return;
                            }
                        };
                        stats.count_accepted();
                        tracing::debug!(listener = listener_name, %remote, ?identity, "connection accepted");
                        let who = format!("{identity:?}");
                        let conn = Guarded {
                            stream,
                            info: ConnInfo { remote, identity },
                            _slot: Some(slot),
                            preface: Some(Preface::within(
                                PREFACE_BYTES,
                                PREFACE_TIMEOUT,
                                "connection closed: the client sent no protocol preface in time after the TLS handshake",
                            )),
                            recheck: Some(recheck_source.recheck(chain)),
                            on_cut: Some(Box::new(move |reason: &str| {
                                stats.count_cut();
                                tracing::warn!(
                                    security_event = true,
                                    listener = listener_name,
                                    %remote,
                                    peer = %who,
                                    reason,
                                    "established connection cut: after a reload its certificate is no longer accepted"
                                );
                            })),
                        };
                        let _ = tx.send(Ok(conn)).await;
                    }
                    Err(error) => {
                        stats.count_refused();
                        tracing::warn!(listener = listener_name, %remote, %error, "verified certificate carries no usable identity");
                    }
                }
            });
        }
    });
    ReceiverStream::new(rx)
}
