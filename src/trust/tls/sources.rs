//! Where the listeners and connectors take their rustls configuration
//! from: a fixed one, or the receiving end of the configurations
//! [`crate::trust::reload`] swaps at run time.
//!
//! Separate from the configurations themselves because this is what makes
//! a reload reach the connections: each new handshake reads the current
//! configuration here, and each established connection is re-checked (see
//! `guard`) with the verifier kept next to it, since rustls does not hand a
//! verifier back out of a config.

use std::collections::BTreeMap;
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::sync::watch;

use super::guard::Recheck;
use super::{RosterServerVerifier, TlsError};
use crate::records::model::NodeId;

/// A server configuration with the verifier it checks clients with, so
/// that an established connection's client can be checked again after a
/// reload (rustls does not hand the verifier back out of a config).
#[derive(Clone)]
pub(crate) struct ServerSide {
    pub config: Arc<rustls::ServerConfig>,
    /// `None` for a fixed configuration, which never changes.
    pub verifier: Option<Arc<dyn ClientCertVerifier>>,
}

/// Where a listener takes its server configuration from, once per
/// accepted connection. A fixed configuration converts into one; a node
/// hands out the receiving end of the configuration [`crate::trust::reload`] swaps.
#[derive(Clone)]
pub struct ServerTls(watch::Receiver<ServerSide>);

impl ServerTls {
    /// The configuration a handshake starting now uses.
    pub fn current(&self) -> Arc<rustls::ServerConfig> {
        self.0.borrow().config.clone()
    }

    /// Checks an established connection's client again whenever the
    /// configuration changes.
    pub(super) fn recheck(&self, chain: Vec<CertificateDer<'static>>) -> Recheck {
        let source = self.0.clone();
        Recheck::new(
            self.0.clone(),
            Box::new(move || {
                let verifier = source.borrow().verifier.clone();
                match (verifier, chain.split_first()) {
                    (Some(v), Some((leaf, rest))) => v
                        .verify_client_cert(leaf, rest, UnixTime::now())
                        .map(|_| ()),
                    _ => Ok(()),
                }
            }),
        )
    }
}

impl From<Arc<rustls::ServerConfig>> for ServerTls {
    fn from(config: Arc<rustls::ServerConfig>) -> Self {
        // NOTE: the sender is dropped at once; the receiver keeps the value.
        let fixed = ServerSide {
            config,
            verifier: None,
        };
        Self(watch::channel(fixed).1)
    }
}

impl From<watch::Receiver<ServerSide>> for ServerTls {
    fn from(rx: watch::Receiver<ServerSide>) -> Self {
        Self(rx)
    }
}

/// A client configuration for dialling one peer, with the verifier it
/// checks the server with, so that an established connection's server can
/// be checked again after a reload (rustls does not hand the verifier back
/// out of a config).
#[derive(Clone)]
pub struct ClientSide {
    pub(crate) config: Arc<rustls::ClientConfig>,
    pub(crate) verifier: Arc<RosterServerVerifier>,
}

/// One client configuration per roster member, replaced as a whole.
pub type PeerClientConfigs = BTreeMap<NodeId, ClientSide>;

/// Where a connector takes its client configuration from, once per new
/// connection.
#[derive(Clone)]
pub enum ClientTls {
    /// Always the same configuration.
    Fixed(Arc<rustls::ClientConfig>),
    /// Peer `peer`'s entry in a set of configurations swapped at run time.
    Peer {
        configs: watch::Receiver<Arc<PeerClientConfigs>>,
        peer: NodeId,
    },
}

impl ClientTls {
    /// The configuration a connection opened now uses.
    pub fn current(&self) -> Result<Arc<rustls::ClientConfig>, std::io::Error> {
        match self {
            Self::Fixed(c) => Ok(c.clone()),
            Self::Peer { configs, peer } => configs
                .borrow()
                .get(peer)
                .map(|side| side.config.clone())
                .ok_or_else(|| std::io::Error::other(TlsError::NotAMember(peer.to_string()))),
        }
    }

    /// Checks an established connection's server again whenever the
    /// configurations change; `None` for a fixed configuration.
    pub(super) fn recheck(
        &self,
        chain: Vec<CertificateDer<'static>>,
        server_name: ServerName<'static>,
    ) -> Option<Recheck> {
        let Self::Peer { configs, peer } = self else {
            return None;
        };
        let (source, peer) = (configs.clone(), peer.clone());
        Some(Recheck::new(
            configs.clone(),
            Box::new(move || {
                let Some(verifier) = source.borrow().get(&peer).map(|s| s.verifier.clone()) else {
                    return Err(rustls::Error::General(format!(
                        "{peer} is no longer a member"
                    )));
                };
                let Some((leaf, rest)) = chain.split_first() else {
                    return Ok(());
                };
                verifier
                    .verify_server_cert(leaf, rest, &server_name, &[], UnixTime::now())
                    .map(|_| ())
            }),
        ))
    }
}

impl From<Arc<rustls::ClientConfig>> for ClientTls {
    fn from(config: Arc<rustls::ClientConfig>) -> Self {
        Self::Fixed(config)
    }
}
