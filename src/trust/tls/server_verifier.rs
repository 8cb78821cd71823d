//! Whether the server an outgoing connection reached is the roster member
//! that was meant.
//!
//! Separate from the client verifiers because dialling adds what accepting
//! does not: the peer to expect is known in advance (a valid certificate
//! of another member is refused), and the certificate must also be valid
//! for the host name or IP address that was dialled.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::certificates::{Usage, node_id_from_cert, refusal_reason, require_usage, serial_of};
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
    /// Counts every refusal, for the metrics (shared across reloads).
    refused: Arc<AtomicU64>,
}

impl RosterServerVerifier {
    /// The verifier for dialling `peer`: WebPKI against the CAs the roster
    /// allows for it, checking `crls`, counting refusals in `refused`.
    pub(crate) fn new(
        roster: &Roster,
        peer: &NodeId,
        crls: &Crls,
        provider: &Arc<CryptoProvider>,
        refused: Arc<AtomicU64>,
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
            refused,
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
        // NOTE: every refusal is logged and counted, the wrong member's
        // too: a server answering with another member's certificate is a
        // misrouted endpoint at best and an impersonation at worst.
        let found = node_id_from_cert(end_entity, &self.federation);
        let member = match &found {
            Ok(id) => id.to_string(),
            Err(_) => "<none>".to_owned(),
        };
        found
            .and_then(|found| {
                if found != self.expected {
                    return Err(TlsError::WrongMember {
                        expected: self.expected.clone(),
                        found,
                    });
                }
                require_usage(end_entity, Usage::Server)
            })
            .map_err(app_error)
            .and_then(|()| {
                self.inner.verify_server_cert(
                    end_entity,
                    intermediates,
                    server_name,
                    ocsp_response,
                    now,
                )
            })
            .inspect_err(|error| {
                self.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    security_event = true,
                    peer = %self.expected,
                    presented = %member,
                    serial = %serial_of(end_entity),
                    reason = %refusal_reason(error),
                    "peer server certificate refused"
                );
            })
    }

    delegate_handshake_signatures!(inner);
}
