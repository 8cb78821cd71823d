//! Making CAs and certificates in the enlace profile.
//!
//! Separate from renewal and inspection because this is the one place
//! that decides what goes into a certificate: every key, serial, validity
//! window, purpose and SAN an enlace tool signs is set here, so the profile
//! in [`crate::trust::pki`]'s header can be checked against one file.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use super::{Issued, PkiError, Profile};
use crate::records::crypto;

pub(super) fn validity(params: &mut CertificateParams, days: u32) {
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

pub(super) fn new_key() -> Result<KeyPair, PkiError> {
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

pub(super) fn sign(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::model::NodeId;
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
}
