//! Whether the server an outgoing connection reached is the roster member
//! that was meant.
//!
//! Separate from the client verifiers because dialling adds what accepting
//! does not: the peer to expect is known in advance (a valid certificate
//! of another member is refused), and the certificate must also be valid
//! for the host name or IP address that was dialled.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::certificates::{node_id_from_cert, refusal_reason, serial_of};
use super::{Crls, TlsError, app_error, roots};
use crate::records::model::NodeId;
use crate::trust::roster::Roster;

/// Outgoing-connection verifier: the server must present the SPIFFE id of
/// the peer we meant to reach, chained to a CA the roster allows for it,
/// and valid for the host name or IP address we dialled.
#[derive(Debug)]
pub(crate) struct RosterServerVerifier {
    federation: String,
    expected: NodeId,
    inner: Arc<WebPkiServerVerifier>,
}

impl RosterServerVerifier {
    /// The verifier for dialling `peer`: WebPKI against the CAs the roster
    /// allows for it, checking `crls`.
    pub(crate) fn new(
        roster: &Roster,
        peer: &NodeId,
        crls: &Crls,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Self, TlsError> {
        let member = roster
            .member(peer)
            .ok_or_else(|| TlsError::NotAMember(peer.to_string()))?;
        let mut builder =
            WebPkiServerVerifier::builder_with_provider(roots(&member.ca_certs)?, provider.clone());
        if !crls.is_empty() {
            // NOTE: see the header of `trust::tls`: a CA without a CRL is not an error.
            builder = builder
                .with_crls(crls.iter().cloned())
                .allow_unknown_revocation_status();
        }
        let inner = builder
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
        Ok(Self {
            federation: roster.federation.clone(),
            expected: peer.clone(),
            inner,
        })
    }
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
