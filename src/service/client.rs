//! The agency client: how a case-management system or the CLI reaches its
//! own node's agency API over mTLS.
//!
//! A client is described by a small TOML file (`--client FILE`); relative
//! paths in it resolve against the file's directory:
//!
//! ```toml
//! endpoint = "127.0.0.1:7201"   # the node's agency listener
//! # server_name = "enlace.mp.gob.gt"  # name to verify; default: the endpoint host
//! cert = "client.crt"           # issued by the node's local agency CA
//! key = "client.key"            # mode 0600
//! ca = "ca.crt"                 # CA that issued the node's certificate
//! ```
//!
//! A TLS failure is reported as what to fix ([`ClientError::NodeNotTrusted`],
//! [`ClientError::ClientRefused`]): a TLS alert or a closed pipe names no
//! setting, and the usual causes are few (the peer port instead of the
//! agency port, the wrong `ca`, a certificate from another agency CA). In
//! TLS 1.3 the node judges the client's certificate after the client
//! considers the handshake done, so [`ClientConfig::connect`] asks the
//! node's health service once: a refusal shows there, at connect, where
//! the client file is at hand, rather than as a broken pipe on the first
//! request.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use serde::Deserialize;
use tonic::transport::{Channel, Endpoint as TonicEndpoint};

use crate::trust::roster::{self, Endpoint};
use crate::trust::tls::{self, TlsIdentity};
use crate::wire::pb::v1::agency_client::AgencyClient;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("client file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot reach the node's agency API at {endpoint}: {reason}")]
    Connect { endpoint: String, reason: String },
    /// The client does not trust the certificate the node presented.
    #[error(
        "the node's certificate at {endpoint} is not issued by the CA in `ca = {ca}` of the \
         client file {file} ({reason}): set `ca` to the CA that issued the node's certificate \
         (the CA of the node's `tls.cert`); if the certificate is for another name than \
         {server_name}, set `server_name`"
    )]
    NodeNotTrusted {
        endpoint: String,
        ca: String,
        file: String,
        server_name: String,
        reason: String,
    },
    /// The node refused the client's certificate.
    #[error(
        "the server at {endpoint} did not accept this client's certificate ({reason}): is \
         {endpoint} the node's agency listener (`listen.agency` in its node.toml) rather than \
         its peer listener (`listen.peer`)? If it is, the node's `tls.agency_client_ca` must \
         hold the CA that issued `cert = {cert}` of the client file {file}"
    )]
    ClientRefused {
        endpoint: String,
        cert: String,
        file: String,
        reason: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    endpoint: String,
    server_name: Option<String>,
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

/// A loaded `client.toml`.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub endpoint: Endpoint,
    pub server_name: String,
    pub identity: TlsIdentity,
    pub ca: Vec<CertificateDer<'static>>,
    /// Where it was read, and its `cert` and `ca` as written: named by the
    /// errors that say which setting to fix.
    pub file: PathBuf,
    pub cert_setting: String,
    pub ca_setting: String,
}

impl ClientConfig {
    /// Reads and checks a client file.
    pub fn load(path: &Path) -> Result<Self, ClientError> {
        let fail = |reason: String| ClientError::File {
            path: path.to_owned(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        let raw: RawClient = toml::from_str(&text).map_err(|e| fail(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let endpoint =
            Endpoint::parse(&raw.endpoint).map_err(|e| fail(format!("endpoint: {e}")))?;
        let identity = TlsIdentity::load(&base.join(&raw.cert), &base.join(&raw.key))
            .map_err(|e| fail(format!("cert/key: {e}")))?;
        let ca = roster::load_certs(&base.join(&raw.ca)).map_err(|e| fail(format!("ca: {e}")))?;
        Ok(Self {
            server_name: raw.server_name.unwrap_or_else(|| endpoint.host.clone()),
            endpoint,
            identity,
            ca,
            file: path.to_owned(),
            cert_setting: raw.cert.display().to_string(),
            ca_setting: raw.ca.display().to_string(),
        })
    }

    /// Opens an mTLS channel to the agency API.
    pub async fn connect(&self) -> Result<AgencyClient<Channel>, ClientError> {
        let config = tls::agency_client_config(&self.ca, &self.identity)?;
        let channel = channel(config, &self.endpoint, &self.server_name)?;
        let channel = channel.await.map_err(|e| self.explain(&e))?;
        // The node's verdict on this client's certificate (see the module
        // docs). Any answer, even "unknown service", means it was accepted.
        let probe = tonic_health::pb::health_client::HealthClient::new(channel.clone())
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await;
        if let Err(status) = probe
            && let Some(source) = std::error::Error::source(&status)
        {
            return Err(self.explain(source));
        }
        Ok(AgencyClient::new(channel)
            .max_decoding_message_size(crate::service::MAX_RESPONSE)
            .max_encoding_message_size(crate::service::MAX_AGENCY_REQUEST))
    }
}

impl ClientConfig {
    /// What a failure to connect means for this client file.
    fn explain(&self, e: &(dyn std::error::Error + 'static)) -> ClientError {
        let endpoint = self.endpoint.to_string();
        let reason = error_chain(e);
        match tls_failure(e) {
            Some(TlsFailure::NodeNotTrusted) => ClientError::NodeNotTrusted {
                endpoint,
                ca: self.ca_setting.clone(),
                file: self.file.display().to_string(),
                server_name: self.server_name.clone(),
                reason: innermost(e),
            },
            Some(TlsFailure::ClientRefused) => ClientError::ClientRefused {
                endpoint,
                cert: self.cert_setting.clone(),
                file: self.file.display().to_string(),
                reason: innermost(e),
            },
            None => ClientError::Connect { endpoint, reason },
        }
    }
}

/// How a TLS connection failed, as far as the client can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsFailure {
    /// This client rejected the node's certificate.
    NodeNotTrusted,
    /// The node rejected this client's certificate: it sent an alert, or
    /// closed the connection right after the handshake.
    ClientRefused,
}

/// Classifies `e` by the rustls error or the I/O failure in its chain.
fn tls_failure(e: &(dyn std::error::Error + 'static)) -> Option<TlsFailure> {
    let mut cause = Some(e);
    while let Some(c) = cause {
        // NOTE: an io::Error's `source()` skips the error it wraps, so the
        // rustls error inside is reached through `get_ref`.
        let rustls_error = c.downcast_ref::<rustls::Error>().or_else(|| {
            c.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        match rustls_error {
            Some(rustls::Error::InvalidCertificate(_)) => {
                return Some(TlsFailure::NodeNotTrusted);
            }
            Some(rustls::Error::AlertReceived(_)) => return Some(TlsFailure::ClientRefused),
            _ => {}
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            )
        {
            return Some(TlsFailure::ClientRefused);
        }
        cause = c.source();
    }
    // hyper and h2 report a connection the server closed during the
    // handshake in words only.
    let text = error_chain(e);
    [
        "broken pipe",
        "connection reset",
        "operation was canceled",
        "received fatal alert",
    ]
    .iter()
    .any(|w| text.contains(w))
    .then_some(TlsFailure::ClientRefused)
}

/// The last error of `e`'s chain: the one that says what happened.
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e;
    while let Some(s) = last.source() {
        last = s;
    }
    if let Some(inner) = last
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        return inner.to_string();
    }
    last.to_string()
}

/// Connects (eagerly) to `endpoint`, doing TLS with `config`.
fn channel(
    config: Arc<rustls::ClientConfig>,
    endpoint: &Endpoint,
    server_name: &str,
) -> Result<impl Future<Output = Result<Channel, tonic::transport::Error>>, ClientError> {
    let server_name = tls::server_name(server_name)?;
    let uri = format!("https://{endpoint}");
    let ep = TonicEndpoint::from_shared(uri.clone())
        .map_err(|e| ClientError::Connect {
            endpoint: uri,
            reason: e.to_string(),
        })?
        .connect_timeout(Duration::from_secs(5));
    let connector = tls::connector(config, endpoint.host.clone(), endpoint.port, server_name);
    Ok(async move { ep.connect_with_connector(connector).await })
}

/// An error with its sources, on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        source = s.source();
    }
    out
}
