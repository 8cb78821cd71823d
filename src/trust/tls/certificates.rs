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

/// What a certificate is presented for, and so which extended key usage
/// it must carry.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Usage {
    /// By a server: `serverAuth`.
    Server,
    /// By a client: `clientAuth`.
    Client,
}

/// Refuses a certificate without the extended key usage of `usage`.
///
/// NOTE: WebPKI checks the EKU only when the certificate has one: a
/// certificate without the extension passes for any purpose. The enlace
/// profile (`enlace cert issue`) always sets it, so its absence means a
/// certificate made for something else.
pub(crate) fn require_usage(cert: &CertificateDer<'_>, usage: Usage) -> Result<(), TlsError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
    let eku = parsed
        .extended_key_usage()
        .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
    let (has, name) = match (usage, eku) {
        (Usage::Server, Some(e)) => (e.value.server_auth, "serverAuth"),
        (Usage::Client, Some(e)) => (e.value.client_auth, "clientAuth"),
        (Usage::Server, None) => (false, "serverAuth"),
        (Usage::Client, None) => (false, "clientAuth"),
    };
    if has {
        Ok(())
    } else {
        Err(TlsError::MissingUsage(name))
    }
}

/// The first URI SAN of `cert` that is a node SPIFFE id of any federation
/// (`spiffe://<federation>/node/<id>`), if there is one.
pub(crate) fn node_spiffe_id(cert: &CertificateDer<'_>) -> Result<Option<String>, TlsError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
    let Ok(Some(san)) = parsed.subject_alternative_name() else {
        return Ok(None);
    };
    Ok(san.value.general_names.iter().find_map(|name| match name {
        x509_parser::extensions::GeneralName::URI(uri)
            if uri
                .strip_prefix("spiffe://")
                .is_some_and(|rest| rest.contains("/node/")) =>
        {
            Some((*uri).to_owned())
        }
        _ => None,
    }))
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
            CertificateError::Other(e) => e.to_string(),
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
