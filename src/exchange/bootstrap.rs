//! Starting from an anchor: a new member that was given only the hash of
//! one roster version out of band fetches the chain from a peer and
//! verifies it from that version forward, before anything else loads.
//!
//! Why no server check: the node cannot verify a peer's certificate
//! before it holds a roster (the roster names the CAs), and it need not.
//! Nothing fetched is trusted for where it came from: the anchored version
//! must hash to the anchor, and each later one must carry both thresholds
//! of approvals (`crate::trust::chain::verify_chain`). A peer that lies
//! only wastes the attempt; the next configured peer is asked. The
//! connection is still TLS 1.3 with this node's own certificate (the
//! peers admit it once they adopted the version that lists it); since the
//! server's certificate is not checked, this node's certificate (public
//! anyway: it is in every handshake it makes) is shown to whoever answers
//! at the configured endpoint, and nothing else is sent. What a peer
//! serves is bounded: versions numbered one after another, the chain
//! reaching the head the peer states, at most [`MAX_VERSIONS`] versions,
//! within [`FETCH_DEADLINE`].
//!
//! When: at start, when the configuration names `federation.anchor` and
//! neither the operator's chain directory nor the node's own holds a
//! chain that verifies from it. The versions fetched are written to the
//! node's own chain directory (`<data_dir>/roster`), synced, before the
//! configuration is loaded from them.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::config::{self, Endpoint};
use crate::exchange::peers::{MAX_PEER_MESSAGE, peer_channel};
use crate::trust::chain::{self, Signed, dir};
use crate::trust::load;
use crate::trust::tls::{self, TlsIdentity};
use crate::wire::PeerClient;

/// How long one peer gets to answer one page.
const ASK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one peer gets to serve its whole chain.
pub const FETCH_DEADLINE: Duration = Duration::from_secs(60);
/// The longest chain fetched from one peer.
pub const MAX_VERSIONS: usize = 10_000;

/// Fetches and persists the roster chain from the configured peers when
/// the configuration at `path` names an anchor that no local chain
/// reaches. `Ok(None)`: nothing to do; `Ok(Some(n))`: the chain now
/// reaches version `n`. The error says, per peer, why none could serve.
pub async fn chain_from_peers(path: &Path, data_dir: Option<&Path>) -> Result<Option<u64>, String> {
    // An invalid configuration is for the loading that follows to report,
    // whole and precisely.
    let Ok(raw) = config::read(path) else {
        return Ok(None);
    };
    let Ok(settings) = config::validate::settings(&raw, path, data_dir) else {
        return Ok(None);
    };
    let Some(anchor) = settings.tls_files.anchor else {
        return Ok(None);
    };
    let chain_dir = &settings.tls_files.chain;
    if load::chain_of(chain_dir, Some(&settings.data_dir), Some(&anchor)).is_ok() {
        return Ok(None);
    }
    if settings.sync.endpoints.is_empty() {
        return Err(format!(
            "federation.anchor: no chain in {} or {} starts at sha256:{}, and no [[sync.peers]] endpoint is configured to fetch it from: add one, or copy the chain's files into {}",
            chain_dir.display(),
            dir::adopted_dir(&settings.data_dir).display(),
            chain::hex(&anchor),
            chain_dir.display()
        ));
    }
    let identity = TlsIdentity::load(&settings.tls_files.cert, &settings.tls_files.key)
        .map_err(|e| format!("tls: {e}"))?;
    let client_config = anchored_client_config(&identity).map_err(|e| e.to_string())?;
    let mut failures = Vec::new();
    for (peer, endpoint) in &settings.sync.endpoints {
        let fetched = tokio::time::timeout(FETCH_DEADLINE, fetch(&client_config, endpoint))
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "the chain was not served within {FETCH_DEADLINE:?}"
                ))
            });
        match fetched.and_then(|(versions, head)| {
            let walk = chain::verify_chain(versions, Some(&anchor)).map_err(|(at, refusal)| {
                if at == 0 {
                    refusal.to_string()
                } else {
                    format!("version {at}: {refusal}")
                }
            })?;
            match &walk.stopped {
                Some((at, refusal)) => Err(format!("version {at}: {refusal}")),
                None if walk.head().version.number() < head => Err(format!(
                    "the chain served stops at version {} below the head it states ({head})",
                    walk.head().version.number()
                )),
                None => Ok(walk),
            }
        }) {
            Ok(walk) => {
                let own = dir::adopted_dir(&settings.data_dir);
                for signed in &walk.chain {
                    dir::write(&own, signed, dir::Access::OwnerOnly)?;
                }
                let head = walk.head().version.number();
                tracing::info!(
                    %peer,
                    head,
                    anchor = %chain::hex(&anchor),
                    "roster chain fetched from a peer and verified from the anchor"
                );
                return Ok(Some(head));
            }
            Err(reason) => {
                tracing::warn!(%peer, %reason, "cannot fetch the roster chain from this peer");
                failures.push(format!("{peer} at {endpoint}: {reason}"));
            }
        }
    }
    Err(format!(
        "federation.anchor: no peer served a chain that verifies from sha256:{} ({})",
        chain::hex(&anchor),
        failures.join("; ")
    ))
}

/// Every version a peer serves, asked page by page, and the head it
/// states: versions numbered one after another from the first served.
async fn fetch(
    config: &Arc<rustls::ClientConfig>,
    endpoint: &Endpoint,
) -> Result<(Vec<Signed>, u64), String> {
    let channel = peer_channel(
        tls::ClientTls::Fixed(config.clone()),
        &endpoint.host,
        endpoint.port,
    )
    .map_err(|e| e.to_string())?;
    let mut client = PeerClient::new(channel).max_decoding_message_size(MAX_PEER_MESSAGE);
    let mut versions: Vec<Signed> = Vec::new();
    let mut after = 0;
    loop {
        let answer = tokio::time::timeout(ASK_TIMEOUT, client.roster_chain(after))
            .await
            .map_err(|_| format!("no answer within {ASK_TIMEOUT:?}"))?
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
        if answer.versions.is_empty() || after >= answer.head {
            return Ok((versions, answer.head));
        }
        for v in answer.versions {
            use prost::Message;
            let signed = Signed::decode(&v.encode_to_vec()).map_err(|e| e.to_string())?;
            let n = signed.version.number();
            if after > 0 && n != after + 1 {
                return Err(format!("served version {n} after version {after}"));
            }
            after = n;
            versions.push(signed);
            if versions.len() > MAX_VERSIONS {
                return Err(format!("served more than {MAX_VERSIONS} versions"));
            }
        }
    }
}

/// TLS 1.3 with this node's certificate, accepting the server's
/// certificate unverified (see the module documentation) but checking its
/// handshake signature.
fn anchored_client_config(
    identity: &TlsIdentity,
) -> Result<Arc<rustls::ClientConfig>, tls::TlsError> {
    let provider = tls::provider();
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous() // NOTE: what is fetched is verified against the anchor, not the server (module doc).
        .with_custom_certificate_verifier(Arc::new(ContentAnchored(provider)))
        .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())?;
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    cfg.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(cfg))
}

/// Accepts any server certificate whose key signs the handshake.
#[derive(Debug)]
struct ContentAnchored(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for ContentAnchored {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
