//! The metrics listener: `GET /metrics` over HTTP/1.1 over TLS 1.3.
//!
//! Why by hand: one request per connection, one path, one method (and
//! HEAD). An HTTP server crate would bring keep-alive, pipelining, chunked
//! bodies and upgrades, none of which a scraper needs, and every one of
//! which is code a hostile client could reach.
//!
//! Security choices:
//! - TLS as on the agency listener ([`crate::trust::tls::incoming`]): the node's
//!   own certificate, a client certificate of the local agency CA
//!   required (and checked against its CRLs), handshakes in their own
//!   tasks with a timeout, the configuration read per connection from
//!   [`crate::trust::reload::LiveTls`] so a renewed certificate or CRL applies to
//!   the next scrape. Any client of the agency CA may scrape: the series
//!   carry counts, member ids and certificate subjects, never record
//!   content or selectors.
//! - The request head is read up to [`MAX_HEAD`] bytes; the whole exchange
//!   must finish within [`EXCHANGE_TIMEOUT`]; at most [`MAX_CONNECTIONS`]
//!   are served at once. The request body, if any, is never read, and the
//!   connection is closed after one response.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_stream::StreamExt;

use crate::state::NodeState;
use crate::trust::tls::{self, Identity};

/// Largest request head (request line and headers) read.
pub const MAX_HEAD: usize = 8 * 1024;
/// Time for reading the request and writing the answer.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 16;
/// The content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Largest answer [`scrape`] reads.
const MAX_SCRAPE: u64 = 16 * 1024 * 1024;

/// Serves the metrics listener until `stop` turns true.
pub fn serve(
    state: Arc<NodeState>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send {
    let addr = listener.local_addr();
    let identify: tls::Identify =
        Arc::new(|cert| tls::client_name_from_cert(cert).map(Identity::Client));
    let mut incoming = tls::incoming(
        listener,
        state.tls_live.metrics_server(),
        identify,
        "metrics",
        state.metrics.handshakes.clone(),
        stop.clone(),
    );
    async move {
        match addr {
            Ok(addr) => tracing::info!(node = %state.id, metrics = %addr, "metrics listening"),
            Err(error) => tracing::warn!(%error, "metrics listener has no local address"),
        }
        let mut conns = JoinSet::new();
        loop {
            let next = tokio::select! {
                n = incoming.next() => n,
                _ = crate::shutdown::stopped(&mut stop) => break,
            };
            let Some(Ok(conn)) = next else {
                break;
            };
            while conns.try_join_next().is_some() {}
            if conns.len() >= MAX_CONNECTIONS {
                tracing::warn!(
                    limit = MAX_CONNECTIONS,
                    "metrics listener busy; connection closed"
                );
                continue;
            }
            let state = state.clone();
            conns.spawn(async move {
                match tokio::time::timeout(EXCHANGE_TIMEOUT, exchange(&state, conn)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => tracing::debug!(%error, "metrics connection failed"),
                    Err(_) => tracing::debug!("metrics client too slow; connection closed"),
                }
            });
        }
        conns.abort_all();
    }
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Asked {
    /// `GET /metrics` (`head_only` for HEAD).
    Metrics {
        head_only: bool,
    },
    NotFound,
    MethodNotAllowed,
    BadRequest,
}

fn parse_head(head: &[u8]) -> Asked {
    let Some(line) = head.split(|b| *b == b'\n').next() else {
        return Asked::BadRequest;
    };
    let Ok(line) = std::str::from_utf8(line) else {
        return Asked::BadRequest;
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Asked::BadRequest;
    };
    if !version.starts_with("HTTP/1.") {
        return Asked::BadRequest;
    }
    let path = target.split('?').next().unwrap_or_default();
    if path != "/metrics" {
        return Asked::NotFound;
    }
    match method {
        "GET" => Asked::Metrics { head_only: false },
        "HEAD" => Asked::Metrics { head_only: true },
        _ => Asked::MethodNotAllowed,
    }
}

/// Reads up to the end of the request head. `None`: too large.
async fn read_head<S: AsyncRead + Unpin>(io: &mut S) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let n = io.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buf[..n]);
        // NOTE: rescanning the whole head is fine at these sizes.
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Ok(Some(head));
        }
        if head.len() > MAX_HEAD {
            return Ok(None);
        }
    }
}

fn response(status: &str, content_type: &str, body: &str, head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
        body.len()
    );
    if status.starts_with("405") {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if !head_only {
        bytes.extend_from_slice(body.as_bytes());
    }
    bytes
}

const TEXT: &str = "text/plain; charset=utf-8";

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    state: &NodeState,
    mut io: S,
) -> std::io::Result<()> {
    let answer = match read_head(&mut io).await? {
        None => response(
            "431 Request Header Fields Too Large",
            TEXT,
            "request head too large\n",
            false,
        ),
        Some(head) => match parse_head(&head) {
            Asked::Metrics { head_only } => match super::scrape::render(state) {
                Ok(text) => response("200 OK", CONTENT_TYPE, &text, head_only),
                Err(error) => {
                    tracing::error!(%error, "metrics: the store cannot be read");
                    response(
                        "500 Internal Server Error",
                        TEXT,
                        "the node's store cannot be read\n",
                        head_only,
                    )
                }
            },
            Asked::NotFound => response(
                "404 Not Found",
                TEXT,
                "not found: the metrics are at /metrics\n",
                false,
            ),
            Asked::MethodNotAllowed => {
                response("405 Method Not Allowed", TEXT, "only GET and HEAD\n", false)
            }
            Asked::BadRequest => {
                response("400 Bad Request", TEXT, "not an HTTP/1 request\n", false)
            }
        },
    };
    io.write_all(&answer).await?;
    io.shutdown().await
}

/// Why a scrape failed.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("cannot reach {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS handshake with {addr} failed: {source}")]
    Handshake {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("reading the answer of {addr} failed: {source}")]
    Read {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the answer of {addr} is not HTTP/1.1: {reason}")]
    BadResponse { addr: SocketAddr, reason: String },
}

/// Fetches `path` from a metrics listener as a Prometheus server would:
/// TLS with `config` (see [`crate::trust::tls::metrics_client_config`]),
/// verifying `server_name`. Returns the status code and the body.
pub async fn scrape(
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    server_name: ServerName<'static>,
    path: &str,
) -> Result<(u16, String), ScrapeError> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|source| ScrapeError::Connect { addr, source })?;
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(server_name, tcp)
        .await
        .map_err(|source| ScrapeError::Handshake { addr, source })?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let read = async {
        tls.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        (&mut tls).take(MAX_SCRAPE).read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = read
        .await
        .map_err(|source| ScrapeError::Read { addr, source })?;
    let bad = |reason: &str| ScrapeError::BadResponse {
        addr,
        reason: reason.to_owned(),
    };
    let text = String::from_utf8(raw).map_err(|_| bad("not UTF-8"))?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad("no end of head"))?;
    let status = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad("no status line"))?;
    Ok((status, body.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_heads_are_sorted_out() {
        let p = |s: &str| parse_head(s.as_bytes());
        assert_eq!(
            p("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Asked::Metrics { head_only: false }
        );
        assert_eq!(
            p("GET /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Asked::Metrics { head_only: false }
        );
        assert_eq!(
            p("HEAD /metrics HTTP/1.1\r\n\r\n"),
            Asked::Metrics { head_only: true }
        );
        assert_eq!(p("GET / HTTP/1.1\r\n\r\n"), Asked::NotFound);
        assert_eq!(p("GET /metricsx HTTP/1.1\r\n\r\n"), Asked::NotFound);
        assert_eq!(p("POST /metrics HTTP/1.1\r\n\r\n"), Asked::MethodNotAllowed);
        assert_eq!(p("GET /metrics\r\n\r\n"), Asked::BadRequest);
        assert_eq!(p("GET /metrics HTTP/2\r\n\r\n"), Asked::BadRequest);
        assert_eq!(p("\u{1}\u{2}\r\n\r\n"), Asked::BadRequest);
    }

    #[tokio::test]
    async fn a_head_is_read_to_its_end_and_no_further_than_the_limit() {
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        client
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nbody")
            .await
            .unwrap();
        let head = read_head(&mut server).await.unwrap().unwrap();
        assert!(head.starts_with(b"GET /metrics"));

        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        let long = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX_HEAD));
        client.write_all(long.as_bytes()).await.unwrap();
        assert_eq!(read_head(&mut server).await.unwrap(), None);

        let (client, mut server) = tokio::io::duplex(1024);
        drop(client);
        assert!(read_head(&mut server).await.is_err());
    }
}
