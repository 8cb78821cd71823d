//! What a presented certificate says, read for the checks and the logs:
//! the node id in its SPIFFE id, an agency client's name, its serial, and
//! why WebPKI refused it.
//!
//! Separate from the verifiers because these readers do not decide trust:
//! the roster check, the listeners' `Identify` functions, the configuration
//! check and the refusal logs all read the same fields the same way, and
//! must not drift apart.

use rustls::CertificateError;
use rustls_pki_types::CertificateDer;

use super::TlsError;
use crate::records::model::NodeId;

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
pub(crate) fn client_name_from_cert(cert: &CertificateDer<'_>) -> Result<String, TlsError> {
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

/// Why WebPKI refused a certificate, in a word or two for the log.
pub(crate) fn refusal_reason(error: &rustls::Error) -> String {
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

/// The serial of a certificate, as the refusal logs print it.
pub(super) fn serial_of(cert: &CertificateDer<'_>) -> String {
    x509_parser::parse_x509_certificate(cert)
        .map(|(_, c)| c.raw_serial_as_string())
        .unwrap_or_else(|_| "unparsable".into())
}
