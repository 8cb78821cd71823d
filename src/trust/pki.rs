//! Issuing CAs and certificates in the enlace certificate profile.
//!
//! The profile (documented in the README so an agency's own PKI can follow
//! it with openssl or a national CA):
//! - keys: ECDSA P-256, signatures ECDSA with SHA-256 — the algorithm every
//!   gRPC stack and HSM supports;
//! - CA: `basicConstraints CA:TRUE` (critical), key usage `keyCertSign,
//!   cRLSign`;
//! - node certificate: `CA:FALSE`, key usage `digitalSignature`, extended
//!   key usage `serverAuth, clientAuth` (a node is server and client of its
//!   peers), SAN `URI:spiffe://<federation>/node/<id>` exactly once, plus a
//!   DNS name or IP address for each host name the node is reached at;
//! - agency-client certificate: `CA:FALSE`, key usage `digitalSignature`,
//!   extended key usage `clientAuth`, subject CN = the client's name, which
//!   is the actor recorded for its actions.
//!
//! Validity starts one hour in the past to absorb clock skew between the
//! issuing machine and the nodes.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use crate::records::crypto;
use crate::records::model::NodeId;

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Crypto(#[from] crypto::CryptoError),
}

/// A certificate and its fresh private key, both PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// What a certificate is for.
#[derive(Debug, Clone)]
pub enum Profile {
    /// A node: peer listener, agency listener and outgoing peer connections.
    Node {
        federation: String,
        node_id: NodeId,
        dns_names: Vec<String>,
        ip_addresses: Vec<IpAddr>,
    },
    /// An agency client of one node (a case-management system, the CLI).
    Client { name: String },
}

fn validity(params: &mut CertificateParams, days: u32) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(i64::from(days));
}

fn serial() -> Result<SerialNumber, PkiError> {
    let mut bytes: [u8; 16] = crypto::random_bytes()?;
    bytes[0] &= 0x7f; // positive INTEGER
    bytes[0] |= 0x01; // and never shorter than 16 bytes
    Ok(SerialNumber::from_slice(&bytes))
}

fn new_key() -> Result<KeyPair, PkiError> {
    Ok(KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?)
}

/// Makes a self-signed CA.
pub fn new_ca(
    common_name: &str,
    organization: Option<&str>,
    days: u32,
) -> Result<Issued, PkiError> {
    if common_name.trim().is_empty() {
        return Err(PkiError::Invalid("CA common name must not be empty".into()));
    }
    let key = new_key()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    if let Some(o) = organization {
        dn.push(DnType::OrganizationName, o);
    }
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.serial_number = Some(serial()?);
    validity(&mut params, days);
    let cert = params.self_signed(&key)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Issues a certificate under the CA given as PEM certificate and key.
pub fn issue(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    profile: &Profile,
    days: u32,
) -> Result<Issued, PkiError> {
    let mut window = CertificateParams::default();
    validity(&mut window, days);
    issue_with_validity(
        ca_cert_pem,
        ca_key_pem,
        profile,
        window.not_before,
        window.not_after,
    )
}

/// Issues a certificate valid from `not_before` to `not_after`, which may
/// lie in the past: for rehearsing expiry (tests, `enlace doctor`) and for
/// back-dating to an agreed rotation date. [`issue`] is the ordinary path.
pub fn issue_with_validity(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    profile: &Profile,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<Issued, PkiError> {
    sign(
        ca_cert_pem,
        ca_key_pem,
        profile,
        not_before,
        not_after,
        new_key()?,
    )
}

fn sign(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    profile: &Profile,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    key: KeyPair,
) -> Result<Issued, PkiError> {
    if not_after <= not_before {
        return Err(PkiError::Invalid(format!(
            "validity ends ({not_after}) before it starts ({not_before})"
        )));
    }
    let ca_key = KeyPair::from_pem(ca_key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(ca_cert_pem, ca_key)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(serial()?);
    params.not_before = not_before;
    params.not_after = not_after;
    match profile {
        Profile::Node {
            federation,
            node_id,
            dns_names,
            ip_addresses,
        } => {
            dn.push(DnType::CommonName, node_id.as_str());
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            let uri = format!("spiffe://{federation}/node/{node_id}");
            params.subject_alt_names.push(SanType::URI(uri.try_into()?));
            for d in dns_names {
                params
                    .subject_alt_names
                    .push(SanType::DnsName(d.clone().try_into()?));
            }
            for ip in ip_addresses {
                params.subject_alt_names.push(SanType::IpAddress(*ip));
            }
            if dns_names.is_empty() && ip_addresses.is_empty() {
                return Err(PkiError::Invalid(
                    "a node certificate needs at least one DNS name or IP address (--dns or --ip) so that clients can verify it".into(),
                ));
            }
        }
        Profile::Client { name } => {
            if name.trim().is_empty() {
                return Err(PkiError::Invalid("client name must not be empty".into()));
            }
            dn.push(DnType::CommonName, name.as_str());
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
    }
    params.distinguished_name = dn;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Checks that `cert` was issued by `ca`: its issuer is the CA's subject
/// and its signature verifies under the CA's public key. A name match
/// alone is not enough, since anyone can make a CA with any name.
pub fn check_issued_by(cert: &[u8], ca: &[u8]) -> Result<(), PkiError> {
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
pub fn profile_of(cert: &[u8]) -> Result<Profile, PkiError> {
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

/// What [`renew`] made.
#[derive(Debug, Clone)]
pub struct Renewed {
    /// The new certificate, and its key (the old key unless a fresh one was asked for).
    pub issued: Issued,
    pub profile: Profile,
    pub old_serial: String,
    pub new_serial: String,
    /// Whether `issued.key_pem` is a new key.
    pub new_key: bool,
}

/// Re-issues `cert_pem` under the CA that issued it: same profile (subject,
/// SANs, purposes), a new serial and validity of `days` from now. With
/// `key_pem` the certificate keeps that key, which must be the one the
/// old certificate certifies; without it a fresh key is made.
pub fn renew(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    cert_pem: &str,
    key_pem: Option<&str>,
    days: u32,
) -> Result<Renewed, PkiError> {
    use rcgen::PublicKeyData;
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let pem = |what: &str, text: &str| {
        CertificateDer::from_pem_slice(text.as_bytes())
            .map_err(|e| PkiError::Invalid(format!("{what}: not a PEM certificate: {e}")))
    };
    let old = pem("certificate", cert_pem)?;
    let ca = pem("CA certificate", ca_cert_pem)?;
    check_issued_by(&old, &ca)?;
    let profile = profile_of(&old)?;
    let old_info = CertInfo::parse(&old)?;
    let (key, new_key) = match key_pem {
        Some(k) => {
            let key = KeyPair::from_pem(k).map_err(|e| {
                PkiError::Invalid(format!("private key: not a usable PEM key: {e}"))
            })?;
            let (_, parsed) = x509_parser::parse_x509_certificate(&old)
                .map_err(|e| PkiError::Invalid(format!("not an X.509 certificate: {e}")))?;
            if key.subject_public_key_info() != parsed.public_key().raw {
                return Err(PkiError::Invalid(
                    "the private key is not the key this certificate certifies".into(),
                ));
            }
            (key, false)
        }
        None => (new_key()?, true),
    };
    let mut window = CertificateParams::default();
    validity(&mut window, days);
    let issued = sign(
        ca_cert_pem,
        ca_key_pem,
        &profile,
        window.not_before,
        window.not_after,
        key,
    )?;
    let new = pem("renewed certificate", &issued.cert_pem)?;
    // A CA key that does not belong to the CA certificate would yield a
    // certificate nobody accepts: better to fail here than at the peers.
    check_issued_by(&new, &ca).map_err(|_| {
        PkiError::Invalid("the CA private key does not belong to the CA certificate".into())
    })?;
    Ok(Renewed {
        new_serial: CertInfo::parse(&new)?.serial,
        old_serial: old_info.serial,
        issued,
        profile,
        new_key,
    })
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
    pub fn has_eku(&self, purpose: &str) -> bool {
        self.extended_key_usage.iter().any(|p| p == purpose)
    }

    pub fn uris(&self) -> impl Iterator<Item = &str> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    #[test]
    fn node_certificates_carry_the_spiffe_id_and_addresses() {
        let ca = new_ca("GT federation CA", Some("MP"), 30).unwrap();
        let node = issue(
            &ca.cert_pem,
            &ca.key_pem,
            &Profile::Node {
                federation: "fed".into(),
                node_id: NodeId::parse("gt").unwrap(),
                dns_names: vec!["localhost".into()],
                ip_addresses: vec!["127.0.0.1".parse().unwrap()],
            },
            30,
        )
        .unwrap();
        let der = CertificateDer::from_pem_slice(node.cert_pem.as_bytes()).unwrap();
        assert_eq!(
            crate::trust::tls::node_id_from_cert(&der, "fed")
                .unwrap()
                .as_str(),
            "gt"
        );
        assert!(crate::trust::tls::node_id_from_cert(&der, "other").is_err());
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
        let eku = parsed.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        assert!(!parsed.is_ca());
    }

    #[test]
    fn a_node_certificate_needs_an_address() {
        let ca = new_ca("CA", None, 30).unwrap();
        let err = issue(
            &ca.cert_pem,
            &ca.key_pem,
            &Profile::Node {
                federation: "fed".into(),
                node_id: NodeId::parse("gt").unwrap(),
                dns_names: vec![],
                ip_addresses: vec![],
            },
            30,
        )
        .unwrap_err();
        assert!(err.to_string().contains("--dns or --ip"), "{err}");
    }

    fn pem(text: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(text.as_bytes()).unwrap()
    }

    #[test]
    fn renewal_keeps_the_profile_and_the_key_unless_asked() {
        let ca = new_ca("CA", None, 30).unwrap();
        let profile = Profile::Node {
            federation: "fed".into(),
            node_id: NodeId::parse("gt").unwrap(),
            dns_names: vec!["node.gt.example".into()],
            ip_addresses: vec!["127.0.0.1".parse().unwrap()],
        };
        let old = issue(&ca.cert_pem, &ca.key_pem, &profile, 1).unwrap();
        let kept = renew(
            &ca.cert_pem,
            &ca.key_pem,
            &old.cert_pem,
            Some(&old.key_pem),
            90,
        )
        .unwrap();
        assert!(!kept.new_key);
        assert_ne!(kept.old_serial, kept.new_serial);
        let (o, n) = (
            CertInfo::parse(&pem(&old.cert_pem)).unwrap(),
            CertInfo::parse(&pem(&kept.issued.cert_pem)).unwrap(),
        );
        assert_eq!(o.subject, n.subject);
        assert_eq!(o.sans, n.sans);
        assert_eq!(o.extended_key_usage, n.extended_key_usage);
        assert!(n.days_left(OffsetDateTime::now_utc()) >= 89);
        assert_eq!(
            KeyPair::from_pem(&kept.issued.key_pem)
                .unwrap()
                .serialize_der(),
            KeyPair::from_pem(&old.key_pem).unwrap().serialize_der(),
            "same key"
        );
        check_issued_by(&pem(&kept.issued.cert_pem), &pem(&ca.cert_pem)).unwrap();

        let fresh = renew(&ca.cert_pem, &ca.key_pem, &old.cert_pem, None, 90).unwrap();
        assert!(fresh.new_key);
        assert_ne!(fresh.issued.key_pem, old.key_pem);

        let client = issue(
            &ca.cert_pem,
            &ca.key_pem,
            &Profile::Client {
                name: "gt-operator".into(),
            },
            1,
        )
        .unwrap();
        let renewed = renew(&ca.cert_pem, &ca.key_pem, &client.cert_pem, None, 9).unwrap();
        assert!(
            matches!(&renewed.profile, Profile::Client { name } if name == "gt-operator"),
            "{:?}",
            renewed.profile
        );
    }

    #[test]
    fn renewal_refuses_a_foreign_ca_or_a_key_that_does_not_fit() {
        let ca = new_ca("CA", None, 30).unwrap();
        let other = new_ca("CA", None, 30).unwrap();
        let profile = Profile::Client { name: "c".into() };
        let cert = issue(&ca.cert_pem, &ca.key_pem, &profile, 1).unwrap();
        let err = renew(&other.cert_pem, &other.key_pem, &cert.cert_pem, None, 9).unwrap_err();
        assert!(err.to_string().contains("does not verify"), "{err}");
        let stranger = issue(&ca.cert_pem, &ca.key_pem, &profile, 1).unwrap();
        let err = renew(
            &ca.cert_pem,
            &ca.key_pem,
            &cert.cert_pem,
            Some(&stranger.key_pem),
            9,
        )
        .unwrap_err();
        assert!(err.to_string().contains("not the key"), "{err}");
        let err = renew(&ca.cert_pem, &other.key_pem, &cert.cert_pem, None, 9).unwrap_err();
        assert!(
            err.to_string().contains("does not belong to the CA"),
            "{err}"
        );
    }
}
