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
//!   agency CA, which is a different CA from any in the roster.
//! - revocation: CRLs named in `[tls]` are handed to every WebPKI verifier
//!   (both listeners and outgoing connections). A certificate is checked
//!   against the CRL of the CA that issued it; a CA that publishes no CRL
//!   is not an error (`allow_unknown_revocation_status`), since members
//!   run their own PKI and not all of them publish one. A CRL past its
//!   next update still counts (rustls's default): a stale list of revoked
//!   certificates is still a list of revoked certificates, and refusing
//!   every peer of a CA whose CRL lapsed would be a federation-wide outage.
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

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;

use crate::records::crypto;
use crate::records::model::NodeId;
use crate::trust::roster::{self, Roster};

/// How long a TLS handshake may take before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once per listener; more wait in the backlog.
const MAX_CONCURRENT_HANDSHAKES: usize = 256;

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
}

// NOTE: rustls reports verifier errors with `{:?}`, and operators read
// those in logs and client errors: make Debug say what Display says.
impl std::fmt::Debug for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Counts of TLS handshakes on one listener.
#[derive(Debug, Default)]
pub struct HandshakeStats {
    /// Handshakes completed with a verified, usable identity.
    pub accepted: std::sync::atomic::AtomicU64,
    /// Handshakes refused (bad or missing certificate, wrong identity, timeout).
    pub refused: std::sync::atomic::AtomicU64,
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
    fn count_accepted(&self) {
        self.accepted
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
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
        let chain = roster::load_certs(cert).map_err(TlsError::File)?;
        crypto::check_private_permissions(key)?;
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
            path: key.display().to_string(),
            reason: format!("not a PEM private key: {e}"),
        })?;
        Ok(Self { chain, key })
    }
}

/// Who is on the other end of an accepted connection, as its verified
/// certificate says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A federation peer.
    Peer(NodeId),
    /// An agency client, by its certificate's common name.
    Client(String),
}

/// Connection facts that tonic hands to every request on the connection
/// (`request.extensions().get::<ConnInfo>()`).
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    pub identity: Identity,
}

/// The node id in a certificate's `spiffe://<federation>/node/<id>` URI SAN.
pub fn node_id_from_cert(cert: &CertificateDer<'_>, federation: &str) -> Result<NodeId, TlsError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
    let prefix = format!("spiffe://{federation}/node/");
    let mut found = Vec::new();
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::URI(uri) = name
                && let Some(id) = uri.strip_prefix(&prefix)
            {
                found.push(id.to_owned());
            }
        }
    }
    // Exactly one node identity per certificate: two would make the
    // roster check ambiguous.
    match found.as_slice() {
        [one] => NodeId::parse(one).map_err(|_| TlsError::NotAMember(one.clone())),
        _ => Err(TlsError::NoSpiffeId {
            federation: federation.to_owned(),
        }),
    }
}

/// The subject common name of an agency client certificate.
pub fn client_name_from_cert(cert: &CertificateDer<'_>) -> Result<String, TlsError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
    parsed
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned)
        .filter(|s| !s.is_empty())
        .ok_or(TlsError::NoClientName)
}

fn roots(certs: &[CertificateDer<'static>]) -> Result<Arc<RootCertStore>, TlsError> {
    let mut store = RootCertStore::empty();
    for c in certs {
        store.add(c.clone()).map_err(|e| {
            TlsError::Verifier(format!("CA certificate not usable as a trust anchor: {e}"))
        })?;
    }
    Ok(Arc::new(store))
}

fn app_error(e: TlsError) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(e))))
}

/// CRLs as the verifiers take them.
pub type Crls = [CertificateRevocationListDer<'static>];

/// Why WebPKI refused a certificate, in a word or two for the log.
pub fn refusal_reason(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(e) => match e {
            CertificateError::Revoked => "revoked".into(),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired".into(),
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "not yet valid".into()
            }
            CertificateError::UnknownIssuer => "unknown issuer".into(),
            other => format!("{other:?}"),
        },
        other => other.to_string(),
    }
}

fn serial_of(cert: &CertificateDer<'_>) -> String {
    x509_parser::parse_x509_certificate(cert)
        .map(|(_, c)| c.raw_serial_as_string())
        .unwrap_or_else(|_| "unparsable".into())
}

/// Makes a WebPKI client verifier over `roots`, checking `crls`.
fn client_verifier(
    roots: Arc<RootCertStore>,
    crls: &Crls,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let mut builder = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
    if !crls.is_empty() {
        // NOTE: see the module header: a CA without a CRL is not an error.
        builder = builder
            .with_crls(crls.iter().cloned())
            .allow_unknown_revocation_status();
    }
    builder
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))
}

/// Peer-listener client verifier: the chain must end at one of the CAs the
/// roster allows for the node id that the certificate itself names.
#[derive(Debug)]
pub struct RosterClientVerifier {
    federation: String,
    per_member: HashMap<NodeId, Arc<dyn ClientCertVerifier>>,
    hints: Vec<DistinguishedName>,
    any: Arc<dyn ClientCertVerifier>,
    /// Whether refusals are logged: yes on a listener, not when the
    /// configuration check runs the verifier on the node's own certificate.
    log_refusals: bool,
}

impl RosterClientVerifier {
    /// A verifier without CRLs that does not log refusals: for checking a
    /// certificate the way peers will (configuration checks, doctor).
    pub fn new(roster: &Roster, provider: &Arc<CryptoProvider>) -> Result<Self, TlsError> {
        Self::build(roster, &[], provider, false)
    }

    /// The peer listener's verifier: checks `crls` and logs every refusal.
    pub fn for_listener(
        roster: &Roster,
        crls: &Crls,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Self, TlsError> {
        Self::build(roster, crls, provider, true)
    }

    fn build(
        roster: &Roster,
        crls: &Crls,
        provider: &Arc<CryptoProvider>,
        log_refusals: bool,
    ) -> Result<Self, TlsError> {
        let mut per_member = HashMap::new();
        let mut all = Vec::new();
        for m in roster.members() {
            // NOTE: every member's verifier gets every CRL; WebPKI consults
            // only the one whose issuer issued the certificate at hand.
            let v = client_verifier(roots(&m.ca_certs)?, crls, provider)?;
            per_member.insert(m.id.clone(), v);
            all.extend(m.ca_certs.iter().cloned());
        }
        let any = client_verifier(roots(&all)?, &[], provider)?;
        Ok(Self {
            federation: roster.federation.clone(),
            hints: any.root_hint_subjects().to_vec(),
            per_member,
            any,
            log_refusals,
        })
    }
}

impl ClientCertVerifier for RosterClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let id = node_id_from_cert(end_entity, &self.federation).map_err(app_error)?;
        let verifier = self
            .per_member
            .get(&id)
            .ok_or_else(|| app_error(TlsError::NotAMember(id.to_string())))?;
        verifier
            .verify_client_cert(end_entity, intermediates, now)
            .inspect_err(|error| {
                if self.log_refusals {
                    tracing::warn!(
                        listener = "peer",
                        peer = %id,
                        serial = %serial_of(end_entity),
                        reason = %refusal_reason(error),
                        "peer certificate refused"
                    );
                }
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.any.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.any.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.any.supported_verify_schemes()
    }
}

/// Agency-listener client verifier: WebPKI against the local agency CA
/// (and its CRLs), logging every refusal with the client's name.
#[derive(Debug)]
pub struct AgencyClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

impl AgencyClientVerifier {
    pub fn new(
        agency_ca: &[CertificateDer<'static>],
        crls: &Crls,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Self, TlsError> {
        Ok(Self {
            inner: client_verifier(roots(agency_ca)?, crls, provider)?,
        })
    }
}

impl ClientCertVerifier for AgencyClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
            .inspect_err(|error| {
                let client =
                    client_name_from_cert(end_entity).unwrap_or_else(|_| "<no common name>".into());
                tracing::warn!(
                    listener = "agency",
                    %client,
                    serial = %serial_of(end_entity),
                    reason = %refusal_reason(error),
                    "agency client certificate refused"
                );
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Outgoing-connection verifier: the server must present the SPIFFE id of
/// the peer we meant to reach, chained to a CA the roster allows for it,
/// and valid for the host name or IP address we dialled.
#[derive(Debug)]
pub struct RosterServerVerifier {
    federation: String,
    expected: NodeId,
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for RosterServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let found = node_id_from_cert(end_entity, &self.federation).map_err(app_error)?;
        if found != self.expected {
            return Err(app_error(TlsError::WrongMember {
                expected: self.expected.clone(),
                found,
            }));
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .inspect_err(|error| {
                tracing::warn!(
                    peer = %self.expected,
                    serial = %serial_of(end_entity),
                    reason = %refusal_reason(error),
                    "peer server certificate refused"
                );
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
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
pub fn peer_server_config_with_crls(
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
    Ok(ServerSide {
        config: Arc::new(cfg),
        verifier: Some(verifier),
    })
}

/// Server config of the agency listener: clients of the local agency CA.
pub fn agency_server_config(
    agency_ca: &[CertificateDer<'static>],
    identity: &TlsIdentity,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    Ok(agency_server_config_with_crls(agency_ca, identity, &[])?.config)
}

/// Server config of the agency listener, checking clients against `crls`.
pub fn agency_server_config_with_crls(
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
pub fn metrics_server_config_with_crls(
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
    Ok(peer_client_config_with_crls(roster, identity, peer, &[])?.config)
}

/// Client config for dialling one peer, checking its certificate against `crls`.
pub fn peer_client_config_with_crls(
    roster: &Roster,
    identity: &TlsIdentity,
    peer: &NodeId,
    crls: &Crls,
) -> Result<ClientSide, TlsError> {
    let member = roster
        .member(peer)
        .ok_or_else(|| TlsError::NotAMember(peer.to_string()))?;
    let provider = provider();
    let mut builder =
        WebPkiServerVerifier::builder_with_provider(roots(&member.ca_certs)?, provider.clone());
    if !crls.is_empty() {
        builder = builder
            .with_crls(crls.iter().cloned())
            .allow_unknown_revocation_status();
    }
    let inner = builder
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let verifier = Arc::new(RosterServerVerifier {
        federation: roster.federation.clone(),
        expected: peer.clone(),
        inner,
    });
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous() // NOTE: not dangerous here: the custom verifier runs full WebPKI path validation and adds the roster check.
        .with_custom_certificate_verifier(verifier.clone())
        .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())?;
    cfg.alpn_protocols = vec![H2.to_vec()];
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

/// A server configuration with the verifier it checks clients with, so
/// that an established connection's client can be checked again after a
/// reload (rustls does not hand the verifier back out of a config).
#[derive(Clone)]
pub struct ServerSide {
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
    fn recheck(&self, chain: Vec<CertificateDer<'static>>) -> Recheck {
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

/// A client configuration for dialling one peer, with its verifier (see
/// [`ServerSide`]).
#[derive(Clone)]
pub struct ClientSide {
    pub config: Arc<rustls::ClientConfig>,
    pub verifier: Arc<RosterServerVerifier>,
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
    fn recheck(
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

/// A verified peer chain, owned.
fn owned_chain(certs: Option<&[CertificateDer<'_>]>) -> Vec<CertificateDer<'static>> {
    certs
        .unwrap_or_default()
        .iter()
        .map(|c| c.clone().into_owned())
        .collect()
}

type Check = Box<dyn Fn() -> Result<(), rustls::Error> + Send + Sync>;

/// The check an established connection runs again after each change of its
/// configuration source; once it fails, the connection is cut for good.
struct Recheck {
    changes: Pin<Box<dyn tokio_stream::Stream<Item = ()> + Send + Sync>>,
    check: Check,
    cut: Option<String>,
}

impl Recheck {
    fn new<T: Clone + Send + Sync + 'static>(source: watch::Receiver<T>, check: Check) -> Self {
        use tokio_stream::StreamExt;
        Self {
            changes: Box::pin(
                tokio_stream::wrappers::WatchStream::from_changes(source).map(|_| ()),
            ),
            check,
            cut: None,
        }
    }

    /// Runs the check if the configuration changed since the last call,
    /// and registers `cx` for the next change. `Some(reason)` the first
    /// time the check fails; an error every time after.
    fn poll_changed(&mut self, cx: &mut Context<'_>) -> Result<Option<String>, std::io::Error> {
        if let Some(reason) = &self.cut {
            return Err(cut_error(reason));
        }
        let mut changed = false;
        while let Poll::Ready(Some(())) = self.changes.as_mut().poll_next(cx) {
            changed = true;
        }
        if changed && let Err(error) = (self.check)() {
            let reason = refusal_reason(&error);
            self.cut = Some(reason.clone());
            return Ok(Some(reason));
        }
        Ok(None)
    }
}

fn cut_error(reason: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        format!("connection cut: the peer's certificate is no longer accepted ({reason})"),
    )
}

/// A TLS stream whose peer certificate is checked again at every change of
/// its configuration (see the module doc), with what is known of the
/// connection (`info`). `on_cut` runs once, when the connection is cut.
pub struct Guarded<S, I = ()> {
    stream: S,
    recheck: Option<Recheck>,
    on_cut: Option<OnCut>,
    info: I,
}

/// What a connection does once, when it is cut (log, count).
type OnCut = Box<dyn FnOnce(&str) + Send + Sync>;

impl<S, I> Guarded<S, I> {
    fn check(&mut self, cx: &mut Context<'_>) -> std::io::Result<()> {
        let Some(recheck) = &mut self.recheck else {
            return Ok(());
        };
        match recheck.poll_changed(cx)? {
            None => Ok(()),
            Some(reason) => {
                if let Some(on_cut) = self.on_cut.take() {
                    on_cut(&reason);
                }
                Err(cut_error(&reason))
            }
        }
    }
}

impl<S: AsyncRead + Unpin, I: Unpin> AsyncRead for Guarded<S, I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin, I: Unpin> AsyncWrite for Guarded<S, I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.check(cx)?;
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.check(cx)?;
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
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
/// connections whose certificates passed. Ends when `shutdown` turns true.
pub fn incoming(
    listener: TcpListener,
    config: impl Into<ServerTls>,
    identify: Identify,
    listener_name: &'static str,
    stats: Arc<HandshakeStats>,
    mut shutdown: watch::Receiver<bool>,
) -> ReceiverStream<Result<TlsConn, std::io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    let config = config.into();
    let permits = Arc::new(Semaphore::new(MAX_CONCURRENT_HANDSHAKES));
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
            let _ = tcp.set_nodelay(true);
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            // Read per connection, so a reloaded configuration applies to
            // the next handshake and to none already made.
            let acceptor = TlsAcceptor::from(config.current());
            let recheck_source = config.clone();
            let identify = identify.clone();
            let tx = tx.clone();
            let stats = stats.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
                    .await
                {
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
                        stats.count_accepted();
                        tracing::debug!(listener = listener_name, %remote, ?identity, "connection accepted");
                        let who = format!("{identity:?}");
                        let conn = Guarded {
                            stream,
                            info: ConnInfo { remote, identity },
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

/// A connector for tonic channels that dials `host:port` over TCP and runs
/// the TLS handshake with `config`, verifying `server_name`. Every channel
/// enlace opens goes through it, so there is no plaintext path.
pub fn connector(
    config: impl Into<ClientTls>,
    host: String,
    port: u16,
    server_name: ServerName<'static>,
) -> impl tower::Service<
    tonic::transport::Uri,
    Response = hyper_util::rt::TokioIo<Guarded<tokio_rustls::client::TlsStream<TcpStream>>>,
    Error = std::io::Error,
    Future: Send,
> + Clone
+ Send
+ 'static {
    let source: ClientTls = config.into();
    tower::service_fn(move |_: tonic::transport::Uri| {
        let config = source.current();
        let source = source.clone();
        let server_name = server_name.clone();
        let host = host.clone();
        async move {
            let connector = tokio_rustls::TlsConnector::from(config?);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let stream = connector.connect(server_name.clone(), tcp).await?;
            let chain = owned_chain(stream.get_ref().1.peer_certificates());
            let target = format!("{host}:{port}");
            Ok(hyper_util::rt::TokioIo::new(Guarded {
                stream,
                info: (),
                recheck: source.recheck(chain, server_name),
                on_cut: Some(Box::new(move |reason: &str| {
                    tracing::warn!(
                        security_event = true,
                        peer = %target,
                        reason,
                        "connection to a peer cut: after a reload its certificate is no longer accepted"
                    );
                })),
            }))
        }
    })
}
