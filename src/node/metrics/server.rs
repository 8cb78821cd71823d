//! The metrics listener: `GET /metrics` over HTTP/1.1 over TLS 1.3,
//! served by hyper's HTTP/1 server, one request per connection.
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
//! - Only what a scraper needs of HTTP is reachable: HTTP/1 only (no
//!   HTTP/2, no upgrades), keep-alive off, and the request body is never
//!   read.
//!
//! Limits (a client that breaks one is answered or cut, never buffered):
//! - The TLS handshake: the handshake timeout of `trust::tls`, and a cap
//!   on handshakes in progress, both in [`crate::trust::tls::incoming`].
//! - At most [`MAX_CONNECTIONS`] connections are served at once; one more
//!   is closed as soon as its handshake completes, unanswered, with a
//!   warning in the log.
//! - The request head (request line and headers) may take at most
//!   [`MAX_HEAD`] bytes: a longer one is answered 431 and the connection
//!   closed (hyper's `max_header_size`).
//! - The whole exchange (reading the request, writing the answer, closing
//!   TLS) must finish within [`EXCHANGE_TIMEOUT`]; a slower client is cut.
//! - One request per connection: hyper answers with `Connection: close`
//!   and closes the connection (TLS `close_notify`) after the answer.
//!
//! Answers, each with `Cache-Control: no-store`: `GET` or `HEAD` on
//! `/metrics` (any query string ignored) gets 200 and the text of
//! [`super::scrape`] ([`CONTENT_TYPE`]); any other path 404; another
//! method on `/metrics` 405 with `Allow: GET, HEAD`; a request that is not
//! HTTP/1.0 or 1.1 gets hyper's 400; a store that cannot be read 500.
//!
//! Shutdown: once `stop` turns true no connection is taken any more and
//! the exchanges under way are aborted.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_stream::StreamExt;

use super::scrape::RenderError;
use crate::node::Components;
use crate::trust::tls::{self, Identity};

/// Largest request head (request line and headers) read.
pub const MAX_HEAD: usize = 8 * 1024;
/// Time for reading the request and writing the answer.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 16;
/// The content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
/// Largest answer [`scrape`] reads.
const MAX_SCRAPE: u64 = 16 * 1024 * 1024;
/// The content type of the short reasons given with an error status.
const TEXT: &str = "text/plain; charset=utf-8";

/// Serves the metrics listener until `stop` turns true.
pub fn serve(
    node: Components,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send {
    let addr = listener.local_addr();
    let identify: tls::Identify =
        Arc::new(|cert| tls::client_name_from_cert(cert).map(Identity::Client));
    let mut incoming = tls::incoming(
        listener,
        node.trust.metrics_server(),
        identify,
        "metrics",
        node.metrics.handshakes.clone(),
        stop.clone(),
    );
    async move {
        match addr {
            Ok(addr) => tracing::info!(node = %node.id, metrics = %addr, "metrics listening"),
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
            let node = node.clone();
            conns.spawn(async move {
                let scrape = || super::scrape::render(&node);
                match tokio::time::timeout(EXCHANGE_TIMEOUT, exchange(conn, scrape)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => tracing::debug!(%error, "metrics connection failed"),
                    Err(_) => tracing::debug!("metrics client too slow; connection closed"),
                }
            });
        }
        conns.abort_all();
    }
}

/// The HTTP/1 server as the limits of this module want it.
fn http() -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(false)
        .max_header_size(MAX_HEAD)
        // NOTE: the names of the headers as they were written before hyper
        // (`Content-Type`, `Allow`), for clients that match them exactly.
        .title_case_headers(true);
    builder
}

/// Serves one request on `io` and closes it; `scrape` writes the series.
async fn exchange<S>(
    io: S,
    scrape: impl Fn() -> Result<String, RenderError>,
) -> Result<(), hyper::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let service =
        service_fn(|request| std::future::ready(Ok::<_, Infallible>(answer(&request, &scrape))));
    http().serve_connection(TokioIo::new(io), service).await
}

/// The answer to `request`.
fn answer<B>(
    request: &Request<B>,
    scrape: impl Fn() -> Result<String, RenderError>,
) -> Response<Full<Bytes>> {
    if request.uri().path() != "/metrics" {
        return response(
            StatusCode::NOT_FOUND,
            TEXT,
            "not found: the metrics are at /metrics\n".into(),
        );
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut r = response(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            "only GET and HEAD\n".into(),
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    // NOTE: hyper leaves the body out of the answer to HEAD and keeps its
    // Content-Length.
    match scrape() {
        Ok(text) => response(StatusCode::OK, CONTENT_TYPE, text),
        Err(error) => {
            tracing::error!(%error, "metrics: the series cannot be written");
            let reason = match error {
                RenderError::Store(_) => "the node's store cannot be read\n",
                RenderError::Encode(_) => "the series cannot be encoded\n",
            };
            response(StatusCode::INTERNAL_SERVER_ERROR, TEXT, reason.into())
        }
    }
}

fn response(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let headers = r.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
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

    /// The answer of the server to `request`, as sent, to the close.
    async fn exchange_raw(request: &[u8]) -> String {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let served = tokio::spawn(exchange(server, || Ok("enlace_up 1\n".to_owned())));
        client.write_all(request).await.unwrap();
        let mut raw = Vec::new();
        // NOTE: the client never closes: the answer ends because the
        // server closes after one response.
        tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut raw))
            .await
            .expect("the server closes after one answer")
            .unwrap();
        let _ = served.await;
        String::from_utf8(raw).unwrap()
    }

    /// The status code answered to `request` (an HTTP/1.0 request is
    /// answered in HTTP/1.0).
    async fn status(request: &str) -> String {
        let answer = exchange_raw(request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1."), "{answer}");
        answer.get(9..12).unwrap_or_default().to_owned()
    }

    #[tokio::test]
    async fn requests_are_sorted_out() {
        assert_eq!(
            status("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await,
            "200"
        );
        assert_eq!(status("GET /metrics?x=1 HTTP/1.0\r\n\r\n").await, "200");
        assert_eq!(status("HEAD /metrics HTTP/1.1\r\n\r\n").await, "200");
        assert_eq!(status("GET / HTTP/1.1\r\n\r\n").await, "404");
        assert_eq!(status("GET /metricsx HTTP/1.1\r\n\r\n").await, "404");
        assert_eq!(status("POST /metrics HTTP/1.1\r\n\r\n").await, "405");
        assert_eq!(status("GET /metrics\r\n\r\n").await, "400");
        assert_eq!(status("GET /metrics HTTP/2\r\n\r\n").await, "400");
        assert_eq!(status("\u{1}\u{2}\r\n\r\n").await, "400");
    }

    #[tokio::test]
    async fn answers_carry_their_headers_and_head_gets_no_body() {
        let get = exchange_raw(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nbody").await;
        assert!(
            get.contains(&format!("\r\nContent-Type: {CONTENT_TYPE}\r\n")),
            "{get}"
        );
        assert!(get.contains("\r\nContent-Length: 12\r\n"), "{get}");
        assert!(get.contains("\r\nCache-Control: no-store\r\n"), "{get}");
        assert!(get.contains("\r\nConnection: close\r\n"), "{get}");
        assert!(get.ends_with("\r\n\r\nenlace_up 1\n"), "{get}");

        let head = exchange_raw(b"HEAD /metrics HTTP/1.1\r\n\r\n").await;
        assert!(head.contains("\r\nContent-Length: 12\r\n"), "{head}");
        assert!(head.ends_with("\r\n\r\n"), "{head}");

        let post = exchange_raw(b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").await;
        assert!(post.contains("\r\nAllow: GET, HEAD\r\n"), "{post}");
    }

    #[tokio::test]
    async fn a_head_past_the_limit_is_refused_not_buffered() {
        let long = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX_HEAD));
        let answer = exchange_raw(long.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
        // Just under the limit is served.
        let fits = format!(
            "GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_HEAD - 64)
        );
        let answer = exchange_raw(fits.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    }

    #[tokio::test]
    async fn a_client_gone_before_its_request_gets_nothing() {
        let (client, server) = tokio::io::duplex(1024);
        drop(client);
        let served = tokio::time::timeout(
            Duration::from_secs(5),
            exchange(server, || -> Result<String, RenderError> {
                panic!("nothing was asked")
            }),
        )
        .await;
        assert!(served.is_ok(), "the exchange ends with the connection");
    }
}
