//! Renewing a certificate: re-issuing it under the CA that issued it, with
//! the same profile, a new serial and a new validity window.
//!
//! Separate from issuing because its inputs are an existing certificate
//! and possibly its key, which must be checked before anything is signed:
//! the certificate must come from this CA, its SANs must fit the profile,
//! a kept key must be the one it certifies, and the CA key must belong to
//! the CA certificate.

use rcgen::{CertificateParams, KeyPair};

use super::inspect::{CertInfo, check_issued_by, profile_of};
use super::issue::{new_key, sign, validity};
use super::{Issued, PkiError, Profile};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::model::NodeId;
    use crate::trust::pki::{issue, new_ca};
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    use time::OffsetDateTime;

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
