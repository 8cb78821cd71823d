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
        })
    }

    /// Opens an mTLS channel to the agency API.
    pub async fn connect(&self) -> Result<AgencyClient<Channel>, ClientError> {
        let config = tls::agency_client_config(&self.ca, &self.identity)?;
        let channel = channel(config, &self.endpoint, &self.server_name)?;
        let channel = channel.await.map_err(|e| ClientError::Connect {
            endpoint: self.endpoint.to_string(),
            reason: error_chain(&e),
        })?;
        Ok(AgencyClient::new(channel)
            .max_decoding_message_size(crate::service::MAX_RESPONSE)
            .max_encoding_message_size(crate::service::MAX_AGENCY_REQUEST))
    }
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
