//! Reading a certificate back in the terms of the enlace profile: what it
//! says ([`CertInfo`], for `enlace cert inspect` and `enlace doctor`), which
//! profile it was issued under, and whether a given CA really issued it.
//!
//! Separate from issuing because it reads certificates enlace did not
//! make: an agency's own PKI may follow the profile with openssl or a
//! national CA, so nothing here may assume the fields are well formed.

use std::net::IpAddr;

use time::OffsetDateTime;

use super::{PkiError, Profile};
use crate::records::model::NodeId;

/// Checks that `cert` was issued by `ca`: its issuer is the CA's subject
/// and its signature verifies under the CA's public key. A name match
/// alone is not enough, since anyone can make a CA with any name.
pub(crate) fn check_issued_by(cert: &[u8], ca: &[u8]) -> Result<(), PkiError> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| PkiError::Invalid(format!("not an X.509 certificate: {e}")))?;
    let (_, ca) = x509_parser::parse_x509_certificate(ca)
        .map_err(|e| PkiError::Invalid(format!("CA certificate: not an X.509 certificate: {e}")))?;
    if cert.issuer().as_raw() != ca.subject().as_raw() {
        return Err(PkiError::Invalid(format!(
            "certificate {} was issued by {:?}, not by this CA ({:?})",
            cert.raw_serial_as_string(),
            cert.issuer().to_string(),
            ca.subject().to_string()
        )));
    }
    cert.verify_signature(Some(ca.public_key())).map_err(|e| {
        PkiError::Invalid(format!(
            "certificate {} names {:?} as its issuer, but its signature does not verify under that CA's key ({e})",
            cert.raw_serial_as_string(),
            ca.subject().to_string()
        ))
    })
}

/// The enlace profile a certificate was issued under, read back from it:
/// a node certificate by its SPIFFE id (plus its DNS and IP SANs), an
/// agency-client certificate by its `clientAuth`-only purpose and CN.
pub(super) fn profile_of(cert: &[u8]) -> Result<Profile, PkiError> {
    let info = CertInfo::parse(cert)?;
    let (_, parsed) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| PkiError::Invalid(format!("not an X.509 certificate: {e}")))?;
    let common_name = parsed
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    let spiffe: Vec<&str> = info.uris().filter(|u| u.starts_with("spiffe://")).collect();
    match spiffe.as_slice() {
        [uri] => {
            let rest = uri.trim_start_matches("spiffe://");
            let (federation, id) = rest.split_once("/node/").ok_or_else(|| {
                PkiError::Invalid(format!(
                    "SPIFFE id {uri} is not of the form spiffe://<federation>/node/<id>"
                ))
            })?;
            let node_id = NodeId::parse(id)
                .map_err(|e| PkiError::Invalid(format!("SPIFFE id {uri}: {e}")))?;
            let mut dns_names = Vec::new();
            let mut ip_addresses = Vec::new();
            for san in &info.sans {
                match san {
                    San::Uri(u) if u == uri => {}
                    San::Dns(d) => dns_names.push(d.clone()),
                    San::Ip(ip) => ip_addresses.push(*ip),
                    other => {
                        return Err(PkiError::Invalid(format!(
                            "SAN {other} is outside the enlace node profile; issue a new certificate instead of renewing this one"
                        )));
                    }
                }
            }
            Ok(Profile::Node {
                federation: federation.to_owned(),
                node_id,
                dns_names,
                ip_addresses,
            })
        }
        [] if info.has_eku("clientAuth") && !info.has_eku("serverAuth") => Ok(Profile::Client {
            name: common_name.filter(|n| !n.is_empty()).ok_or_else(|| {
                PkiError::Invalid("an agency-client certificate needs a subject CN".into())
            })?,
        }),
        [] => Err(PkiError::Invalid(
            "neither a node certificate (no SPIFFE id) nor an agency-client certificate (extended key usage is not clientAuth alone)".into(),
        )),
        many => Err(PkiError::Invalid(format!(
            "carries {} SPIFFE ids; a node certificate has exactly one",
            many.len()
        ))),
    }
}

/// A subject alternative name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum San {
    Uri(String),
    Dns(String),
    Ip(IpAddr),
    /// Any other kind (e-mail, directory name, …), as x509-parser prints it.
    Other(String),
}

impl std::fmt::Display for San {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Uri(u) => write!(f, "URI:{u}"),
            Self::Dns(d) => write!(f, "DNS:{d}"),
            Self::Ip(ip) => write!(f, "IP:{ip}"),
            Self::Other(o) => f.write_str(o),
        }
    }
}

/// `basicConstraints` of a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BasicConstraintsInfo {
    pub ca: bool,
    pub path_len: Option<u32>,
    pub critical: bool,
}

/// What a certificate says, in the terms of the certificate profile: read
/// by `enlace cert inspect` and checked by `enlace doctor`.
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    /// Colon-separated hex, as openssl prints it.
    pub serial: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// e.g. "ECDSA P-256", "Ed25519", "RSA 2048".
    pub key_algorithm: String,
    /// e.g. "ecdsa-with-SHA256".
    pub signature_algorithm: String,
    pub basic_constraints: Option<BasicConstraintsInfo>,
    /// RFC 5280 names: digitalSignature, keyCertSign, cRLSign, …
    pub key_usage: Vec<&'static str>,
    pub key_usage_critical: bool,
    /// serverAuth, clientAuth, …; other purposes as dotted OIDs.
    pub extended_key_usage: Vec<String>,
    pub sans: Vec<San>,
    /// SHA-256 of the DER encoding, colon-separated upper-case hex.
    pub sha256: String,
}

impl CertInfo {
    /// Parses one DER certificate.
    pub fn parse(der: &[u8]) -> Result<Self, PkiError> {
        use x509_parser::extensions::GeneralName;
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| PkiError::Invalid(format!("not an X.509 certificate: {e}")))?;
        let bad = |what: &str, e: x509_parser::error::X509Error| {
            PkiError::Invalid(format!("certificate {what} does not parse: {e}"))
        };
        let basic_constraints = cert
            .basic_constraints()
            .map_err(|e| bad("basicConstraints", e))?
            .map(|bc| BasicConstraintsInfo {
                ca: bc.value.ca,
                path_len: bc.value.path_len_constraint,
                critical: bc.critical,
            });
        let (key_usage, key_usage_critical) =
            match cert.key_usage().map_err(|e| bad("keyUsage", e))? {
                Some(ku) => (key_usage_names(ku.value.flags), ku.critical),
                None => (Vec::new(), false),
            };
        let extended_key_usage = match cert
            .extended_key_usage()
            .map_err(|e| bad("extendedKeyUsage", e))?
        {
            Some(eku) => {
                let v = eku.value;
                let mut names: Vec<String> = [
                    (v.server_auth, "serverAuth"),
                    (v.client_auth, "clientAuth"),
                    (v.code_signing, "codeSigning"),
                    (v.email_protection, "emailProtection"),
                    (v.time_stamping, "timeStamping"),
                    (v.ocsp_signing, "OCSPSigning"),
                    (v.any, "anyExtendedKeyUsage"),
                ]
                .into_iter()
                .filter(|(set, _)| *set)
                .map(|(_, name)| name.to_owned())
                .collect();
                names.extend(v.other.iter().map(|oid| oid.to_id_string()));
                names
            }
            None => Vec::new(),
        };
        let mut sans = Vec::new();
        if let Some(san) = cert
            .subject_alternative_name()
            .map_err(|e| bad("subjectAltName", e))?
        {
            for name in &san.value.general_names {
                sans.push(match name {
                    GeneralName::URI(u) => San::Uri((*u).to_owned()),
                    GeneralName::DNSName(d) => San::Dns((*d).to_owned()),
                    GeneralName::IPAddress(bytes) => match ip_from_bytes(bytes) {
                        Some(ip) => San::Ip(ip),
                        None => San::Other(format!("IP:<{} bytes>", bytes.len())),
                    },
                    other => San::Other(other.to_string()),
                });
            }
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        Ok(Self {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            serial: cert.raw_serial_as_string(),
            not_before: cert.validity().not_before.to_datetime(),
            not_after: cert.validity().not_after.to_datetime(),
            key_algorithm: key_algorithm(cert.public_key()),
            signature_algorithm: oid_name(&cert.signature_algorithm.algorithm),
            basic_constraints,
            key_usage,
            key_usage_critical,
            extended_key_usage,
            sans,
            sha256: digest
                .as_ref()
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(":"),
        })
    }

    /// Whole days from `now` until the certificate expires; negative once
    /// it has.
    pub fn days_left(&self, now: OffsetDateTime) -> i64 {
        (self.not_after - now).whole_days()
    }

    /// Whether the extended key usage lists `purpose` ("serverAuth", …).
    pub(crate) fn has_eku(&self, purpose: &str) -> bool {
        self.extended_key_usage.iter().any(|p| p == purpose)
    }

    pub(crate) fn uris(&self) -> impl Iterator<Item = &str> {
        self.sans.iter().filter_map(|s| match s {
            San::Uri(u) => Some(u.as_str()),
            _ => None,
        })
    }
}

fn key_usage_names(flags: u16) -> Vec<&'static str> {
    // RFC 5280 §4.2.1.3, in bit order.
    const NAMES: [&str; 9] = [
        "digitalSignature",
        "nonRepudiation",
        "keyEncipherment",
        "dataEncipherment",
        "keyAgreement",
        "keyCertSign",
        "cRLSign",
        "encipherOnly",
        "decipherOnly",
    ];
    NAMES
        .iter()
        .enumerate()
        .filter(|(bit, _)| flags >> bit & 1 == 1)
        .map(|(_, name)| *name)
        .collect()
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

fn oid_name(oid: &x509_parser::der_parser::oid::Oid<'_>) -> String {
    x509_parser::objects::oid2sn(oid, x509_parser::objects::oid_registry())
        .map(str::to_owned)
        .unwrap_or_else(|_| oid.to_id_string())
}

fn key_algorithm(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> String {
    let bits = spki.parsed().map(|k| k.key_size()).unwrap_or(0);
    match spki.algorithm.algorithm.to_id_string().as_str() {
        "1.2.840.10045.2.1" => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| x509_parser::der_parser::oid::Oid::try_from(p).ok())
                .map(|oid| oid.to_id_string());
            match curve.as_deref() {
                Some("1.2.840.10045.3.1.7") => "ECDSA P-256".into(),
                Some("1.3.132.0.34") => "ECDSA P-384".into(),
                Some("1.3.132.0.35") => "ECDSA P-521".into(),
                Some(other) => format!("ECDSA (curve {other})"),
                None => "ECDSA (no curve named)".into(),
            }
        }
        "1.3.101.112" => "Ed25519".into(),
        "1.3.101.113" => "Ed448".into(),
        "1.2.840.113549.1.1.1" => format!("RSA {bits}"),
        _ => oid_name(&spki.algorithm.algorithm),
    }
}
