//! Who may connect to the listeners: the client-certificate verifiers.
//!
//! Separate from the server-side verifier because the two trust different
//! CAs for different reasons: on the peer listener a client must be a
//! roster member whose chain ends at a CA the roster allows for *that*
//! member; on the agency and metrics listeners it must hold a certificate
//! of the node's local agency CA, which is never a roster CA.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DistinguishedName, RootCertStore};
use rustls_pki_types::{CertificateDer, UnixTime};

use super::certificates::{
    Usage, client_name_from_cert, node_id_from_cert, node_spiffe_id, refusal_reason, require_usage,
    serial_of,
};
use super::{Crls, TlsError, app_error, roots};
use crate::records::model::NodeId;
use crate::trust::roster::Roster;

/// Makes a WebPKI client verifier over `roots`, checking `crls`.
fn client_verifier(
    roots: Arc<RootCertStore>,
    crls: &Crls,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let mut builder = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
    if !crls.is_empty() {
        // NOTE: see the header of `trust::tls`: a CA without a CRL is not an error.
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
pub(crate) struct RosterClientVerifier {
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
    pub(crate) fn new(roster: &Roster, provider: &Arc<CryptoProvider>) -> Result<Self, TlsError> {
        Self::build(roster, &[], provider, false)
    }

    /// The peer listener's verifier: checks `crls` and logs every refusal.
    pub(crate) fn for_listener(
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
        require_usage(end_entity, Usage::Client)
            .map_err(app_error)
            .and_then(|()| verifier.verify_client_cert(end_entity, intermediates, now))
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

    delegate_handshake_signatures!(any);
}

/// Agency-listener client verifier: WebPKI against the local agency CA
/// (and its CRLs), logging every refusal with the client's name.
#[derive(Debug)]
pub(crate) struct AgencyClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

impl AgencyClientVerifier {
    pub(crate) fn new(
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
        require_usage(end_entity, Usage::Client)
            .and_then(|()| match node_spiffe_id(end_entity)? {
                Some(uri) => Err(TlsError::NodeOnAgencyListener(uri)),
                None => Ok(()),
            })
            .map_err(app_error)
            .and_then(|()| {
                self.inner
                    .verify_client_cert(end_entity, intermediates, now)
            })
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

    delegate_handshake_signatures!(inner);
}
