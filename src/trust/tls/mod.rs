//! TLS for both listeners and for outgoing peer connections.
//!
//! Security choices, each deliberate:
//! - one `CryptoProvider`, *ring*, passed explicitly everywhere (no process
//!   default, so no other provider can sneak in);
//! - TLS 1.3 only: no renegotiation, no static-RSA or CBC suites, encrypted
//!   certificates;
//! - ALPN `h2` only, since every connection carries gRPC;
//! - client certificates are mandatory on both listeners. On the peer
//!   listener a client is accepted only when its certificate names a roster
//!   member (`spiffe://<federation>/node/<id>` URI SAN) **and** its chain
//!   ends at a CA the roster allows for that member: a valid certificate
//!   from another member's CA is refused. Outgoing connections check the
//!   server the same way, plus its DNS name or IP address.
//! - on the agency listener, clients need a certificate from the node's local
//!   agency CA, which is a different CA from any in the roster: a CA with
//!   the key of a roster CA is refused at load, however its bytes differ
//!   (a re-issued copy of a federation CA would otherwise make every node
//!   certificate an agency client), and a client certificate that carries
//!   a node SPIFFE id is refused at the handshake.
//! - every certificate must carry the extended key usage it is used for
//!   (`serverAuth` from servers, `clientAuth` from clients), as the enlace
//!   profile issues them: WebPKI alone lets a certificate without the
//!   extension through for any purpose.
//! - revocation: CRLs named in `[tls]` are handed to every WebPKI verifier
//!   (both listeners and outgoing connections). A certificate is checked
//!   against the CRL of the CA that issued it; a CA that publishes no CRL
//!   is not an error (`allow_unknown_revocation_status`), since members
//!   run their own PKI and not all of them publish one. A CRL past its
//!   next update still counts (rustls's default): a stale list of revoked
//!   certificates is still a list of revoked certificates, and refusing
//!   every peer of a CA whose CRL lapsed would be a federation-wide outage.
//! - no TLS session resumption, on either side: a resumed session skips
//!   the certificate check, so a certificate that expired (or a CA or
//!   member removed) since the first handshake would still get in until
//!   the next reload. Servers issue no tickets and keep no session cache,
//!   clients offer none. A full handshake costs one signature per side,
//!   which the handshake budgets of `admission` already bound.
//! - every refused certificate is logged at WARN with who it names (node
//!   id or client name), its serial and the reason (revoked, expired, …).
//! - the configurations are read per connection from a [`ServerTls`] or
//!   [`ClientTls`] source, so [`crate::trust::reload`] can swap them at run time:
//!   new handshakes use the new one, and every established connection
//!   checks its peer's certificate again against the new one. A connection
//!   whose peer no longer passes (revoked by a new CRL, its member gone
//!   from the roster, its CA no longer trusted, expired) is cut at once:
//!   its reads and writes fail, which ends every stream on it. Otherwise a
//!   revoked member kept a live pull stream for as long as it stayed
//!   connected.
//!
//! The module is split by concern, so that each security decision sits in
//! one short file next to the code it governs:
//! - this file: the rustls configurations of every listener and every
//!   outgoing connection, the node's own [`TlsIdentity`] and the errors;
//! - `certificates`: what a presented certificate names (node id, client
//!   name, serial) and why WebPKI refused one, for checks and logs;
//! - `client_verifiers`: who may connect to the listeners (roster-bound on
//!   the peer listener, the agency CA on the agency and metrics listeners);
//! - `server_verifier`: whether the server an outgoing connection reached
//!   is the roster member that was meant;
//! - `sources`: where listeners and connectors take their configuration
//!   from, so that a reload reaches new and established connections;
//! - `guard`: the stream wrapper that checks an established connection's
//!   peer again after each reload and cuts it once it no longer passes;
//! - `admission`: how many handshakes and connections a listener takes on,
//!   per source address and per identity, before it sheds;
//! - `listener` and `connector`: where a TCP connection becomes a guarded
//!   TLS connection, accepted or dialled.

/// The handshake-signature half of a rustls verifier, handed to the
/// WebPKI verifier it wraps (the field `$inner`). Every verifier here
/// judges the certificate itself (roster, usage, node id) and leaves the
/// signatures to WebPKI, with the one ring provider's algorithms.
macro_rules! delegate_handshake_signatures {
    ($inner:ident) => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &rustls_pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            self.$inner.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &rustls_pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            self.$inner.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.$inner.supported_verify_schemes()
        }
    };
}

mod admission;
mod certificates;
mod client_verifiers;
mod connector;
mod guard;
mod identity;
mod listener;
mod server_verifier;
mod sources;

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::{CertificateError, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName};

use crate::records::crypto;
use crate::records::model::NodeId;
use crate::trust::roster::{self, Roster};

pub use admission::{
    ConnectionSlot, ListenerLimits, MAX_CONNECTIONS, MAX_CONNECTIONS_PER_CLIENT,
    MAX_CONNECTIONS_PER_PEER, MAX_HANDSHAKES, MAX_HANDSHAKES_PER_SOURCE,
};
pub use certificates::node_id_from_cert;
pub(crate) use certificates::{client_name_from_cert, refusal_reason};
pub(crate) use client_verifiers::{AgencyClientVerifier, RosterClientVerifier};
pub use connector::connector;
pub use guard::Guarded;
pub use identity::Identity;
pub use listener::{
    ConnInfo, FIRST_BYTE_TIMEOUT, HANDSHAKE_TIMEOUT, HandshakeStats, Identify, PREFACE_TIMEOUT,
    TlsConn, incoming, incoming_with_limits,
};
pub(crate) use server_verifier::RosterServerVerifier;
pub(crate) use sources::ServerSide;
pub use sources::{ClientSide, ClientTls, PeerClientConfigs, ServerTls};

#[derive(thiserror::Error)]
pub enum TlsError {
    #[error("{0}")]
    File(String),
    #[error("private key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error(transparent)]
    Permissions(#[from] crypto::CryptoError),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("TLS verifier: {0}")]
    Verifier(String),
    #[error("certificate does not parse: {0}")]
    BadCertificate(String),
    #[error(
        "certificate carries no SPIFFE id of federation {federation:?} (expected a URI SAN spiffe://{federation}/node/<id>)"
    )]
    NoSpiffeId { federation: String },
    #[error("certificate names node {0:?}, which is not a member of the roster")]
    NotAMember(String),
    #[error("certificate names node {found}, but {expected} was expected")]
    WrongMember { expected: NodeId, found: NodeId },
    #[error("certificate has no subject common name to identify the agency client")]
    NoClientName,
    #[error(
        "certificate carries no extended key usage {0}; the enlace certificate profile requires it (reissue it with `enlace cert issue`)"
    )]
    MissingUsage(&'static str),
    #[error(
        "certificate carries the node identity {0}: a node certificate is never an agency client, even when the agency CA issued it"
    )]
    NodeOnAgencyListener(String),
}

// NOTE: rustls reports verifier errors with `{:?}`, and operators read
// those in logs and client errors: make Debug say what Display says.
impl std::fmt::Debug for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// A [`TlsError`] as rustls takes it from a verifier: an invalid
/// certificate, so that the handshake fails with a certificate alert.
fn app_error(e: TlsError) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(e))))
}

/// The one crypto provider enlace uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate chain and its private key, loaded from PEM files.
#[derive(Debug)]
pub struct TlsIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Clone for TlsIdentity {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl TlsIdentity {
    /// Loads `cert` (leaf first, then any intermediates) and `key`, refusing
    /// a key file that others can read.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        crypto::check_private_permissions(key)?;
        Self::read(cert, key)
    }

    /// [`TlsIdentity::load`] without the permission check: for `enlace
    /// doctor`, which reports loose permissions itself and goes on checking.
    pub fn read(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let chain = roster::load_certs(cert).map_err(TlsError::File)?;
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
            path: key.display().to_string(),
            reason: format!("not a PEM private key: {e}"),
        })?;
        Ok(Self { chain, key })
    }
}

/// CRLs as the verifiers take them.
pub(crate) type Crls = [CertificateRevocationListDer<'static>];

fn roots(certs: &[CertificateDer<'static>]) -> Result<Arc<RootCertStore>, TlsError> {
    let mut store = RootCertStore::empty();
    for c in certs {
        store.add(c.clone()).map_err(|e| {
            TlsError::Verifier(format!("CA certificate not usable as a trust anchor: {e}"))
        })?;
    }
    Ok(Arc::new(store))
}

/// Turns session resumption off on a server (see the module header):
/// no tickets, no session cache.
fn no_resumption(cfg: &mut rustls::ServerConfig) {
    cfg.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    cfg.ticketer = Arc::new(NoTickets);
    cfg.send_tls13_tickets = 0;
}

/// A ticketer that never issues a ticket (rustls's own is private).
#[derive(Debug)]
struct NoTickets;

impl rustls::server::ProducesTickets for NoTickets {
    fn enabled(&self) -> bool {
        false
    }
    fn lifetime(&self) -> u32 {
        0
    }
    fn encrypt(&self, _plain: &[u8]) -> Option<Vec<u8>> {
        None
    }
    fn decrypt(&self, _cipher: &[u8]) -> Option<Vec<u8>> {
        None
    }
}

const H2: &[u8] = b"h2";
/// ALPN of the metrics listener. A client that offers no ALPN is served
/// too; one that offers only `h2` is refused at the handshake.
const HTTP11: &[u8] = b"http/1.1";

/// Server config of the peer listener, without CRLs.
pub fn peer_server_config(
    roster: &Roster,
    identity: &TlsIdentity,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    Ok(peer_server_config_with_crls(roster, identity, &[])?.config)
}

/// Server config of the peer listener, checking peers against `crls`.
pub(crate) fn peer_server_config_with_crls(
    roster: &Roster,
    identity: &TlsIdentity,
    crls: &Crls,
) -> Result<ServerSide, TlsError> {
    let provider = provider();
    let verifier: Arc<dyn ClientCertVerifier> =
        Arc::new(RosterClientVerifier::for_listener(roster, crls, &provider)?);
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier.clone())
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())?;
    cfg.alpn_protocols = vec![H2.to_vec()];
    no_resumption(&mut cfg);
    Ok(ServerSide {
        config: Arc::new(cfg),
        verifier: Some(verifier),
    })
}

/// Server config of the agency listener, checking clients against `crls`.
pub(crate) fn agency_server_config_with_crls(
    agency_ca: &[CertificateDer<'static>],
    identity: &TlsIdentity,
    crls: &Crls,
) -> Result<ServerSide, TlsError> {
    agency_ca_server_config(agency_ca, identity, crls, H2)
}

/// Server config of the metrics listener: the same trust as the agency
/// listener (clients of the local agency CA, checked against its CRLs),
/// since whoever scrapes is one of the agency's own systems; but HTTP/1.1,
/// which is what Prometheus speaks.
pub(crate) fn metrics_server_config_with_crls(
    agency_ca: &[CertificateDer<'static>],
    identity: &TlsIdentity,
    crls: &Crls,
) -> Result<ServerSide, TlsError> {
    agency_ca_server_config(agency_ca, identity, crls, HTTP11)
}

fn agency_ca_server_config(
    agency_ca: &[CertificateDer<'static>],
    identity: &TlsIdentity,
    crls: &Crls,
    alpn: &[u8],
) -> Result<ServerSide, TlsError> {
    let provider = provider();
    let verifier: Arc<dyn ClientCertVerifier> =
        Arc::new(AgencyClientVerifier::new(agency_ca, crls, &provider)?);
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier.clone())
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())?;
    cfg.alpn_protocols = vec![alpn.to_vec()];
    no_resumption(&mut cfg);
    Ok(ServerSide {
        config: Arc::new(cfg),
        verifier: Some(verifier),
    })
}

/// Client config for dialling one peer, without CRLs.
pub fn peer_client_config(
    roster: &Roster,
    identity: &TlsIdentity,
    peer: &NodeId,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    Ok(peer_client_config_with_crls(roster, identity, peer, &[], &Arc::default())?.config)
}

/// Client config for dialling one peer, checking its certificate against
/// `crls` and counting refused server certificates in `refused`.
pub(crate) fn peer_client_config_with_crls(
    roster: &Roster,
    identity: &TlsIdentity,
    peer: &NodeId,
    crls: &Crls,
    refused: &Arc<std::sync::atomic::AtomicU64>,
) -> Result<ClientSide, TlsError> {
    let provider = provider();
    let verifier = Arc::new(RosterServerVerifier::new(
        roster,
        peer,
        crls,
        &provider,
        refused.clone(),
    )?);
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous() // NOTE: not dangerous here: the custom verifier runs full WebPKI path validation and adds the roster check.
        .with_custom_certificate_verifier(verifier.clone())
        .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())?;
    cfg.alpn_protocols = vec![H2.to_vec()];
    // See the module header: a resumed session skips the server's certificate check.
    cfg.resumption = rustls::client::Resumption::disabled();
    Ok(ClientSide {
        config: Arc::new(cfg),
        verifier,
    })
}

/// Client config for an agency client: ordinary WebPKI server verification
/// against the CA that issued the node's certificate.
pub fn agency_client_config(
    ca: &[CertificateDer<'static>],
    identity: &TlsIdentity,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    ca_client_config(ca, identity, H2)
}

/// Client config for scraping the metrics listener (what Prometheus's
/// `tls_config` does): WebPKI server verification against `ca`, a client
/// certificate of the agency CA, HTTP/1.1.
pub fn metrics_client_config(
    ca: &[CertificateDer<'static>],
    identity: &TlsIdentity,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    ca_client_config(ca, identity, HTTP11)
}

fn ca_client_config(
    ca: &[CertificateDer<'static>],
    identity: &TlsIdentity,
    alpn: &[u8],
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(ca)?)
        .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())?;
    cfg.alpn_protocols = vec![alpn.to_vec()];
    // See the module header: a resumed session skips the server's certificate check.
    cfg.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(cfg))
}

/// The server name to verify when dialling `host`.
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(host.to_owned()).map_err(|e| {
        TlsError::Verifier(format!(
            "{host:?} is not a valid DNS name or IP address: {e}"
        ))
    })
}
