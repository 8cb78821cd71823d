//! Certificate revocation lists: `enlace cert revoke` makes and extends
//! them, and the node reads them for both listeners and for its outgoing
//! peer connections.
//!
//! Why CRL files and not OCSP: a federation node must keep working when
//! another member's infrastructure is down, and must not tell a responder
//! whom it talks to. A CRL is a signed file; a member's CA operator
//! publishes it, the federation distributes it like the roster, and each
//! node names it in `[tls]`. The node re-reads it when it changes
//! ([`crate::trust::reload`]).
//!
//! A CRL is trusted only when its signature verifies under the key of a CA
//! that the node already trusts for that purpose (a roster CA for the peer
//! side, the agency CA for agency clients): a CRL cannot add trust, only
//! take it away, but a forged one could cut a member off.

use std::path::Path;

use rcgen::{
    CertificateRevocationListParams, Issuer, KeyIdMethod, KeyPair, RevocationReason,
    RevokedCertParams, SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use time::{Duration, OffsetDateTime};

use crate::trust::pki;

#[derive(Debug, thiserror::Error)]
pub enum CrlError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}: no PEM CRL (-----BEGIN X509 CRL-----) in the file")]
    Empty { path: String },
    #[error("{what}: not a certificate revocation list: {reason}")]
    Malformed { what: String, reason: String },
    #[error("{what}: issued by {issuer:?}, which is not a CA it may come from ({allowed})")]
    UnknownIssuer {
        what: String,
        issuer: String,
        allowed: String,
    },
    #[error(
        "{what}: names {issuer:?} as its issuer, but its signature does not verify under that CA's key"
    )]
    BadSignature { what: String, issuer: String },
    #[error("{0}")]
    Certificate(#[from] pki::PkiError),
    #[error("certificate {serial} is already revoked in this CRL (since {since})")]
    AlreadyRevoked { serial: String, since: String },
    #[error("CRL generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{0}")]
    Invalid(String),
}

/// One entry of a CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RevokedEntry {
    /// Colon-separated hex, as `enlace cert inspect` and openssl print it.
    pub serial: String,
    /// The serial's DER integer bytes.
    pub raw_serial: Vec<u8>,
    pub revoked_at: OffsetDateTime,
    /// RFC 5280 reason code, if the entry gives one.
    pub reason: Option<u8>,
    pub invalidity_date: Option<OffsetDateTime>,
}

/// What a CRL says.
#[derive(Debug, Clone)]
pub(crate) struct CrlInfo {
    /// The issuer's distinguished name, as x509-parser prints it.
    pub issuer: String,
    /// The issuer's DER-encoded name, to match against a CA's subject.
    pub issuer_raw: Vec<u8>,
    /// The CRL number, when present and no longer than 8 bytes.
    pub number: Option<u64>,
    pub next_update: Option<OffsetDateTime>,
    pub revoked: Vec<RevokedEntry>,
}

impl CrlInfo {
    /// Parses one DER CRL.
    pub(crate) fn parse(der: &[u8]) -> Result<Self, String> {
        let (rest, crl) = x509_parser::parse_x509_crl(der).map_err(|e| e.to_string())?;
        if !rest.is_empty() {
            return Err(format!("{} bytes of trailing data", rest.len()));
        }
        let number = match crl.crl_number() {
            None => None,
            Some(n) => Some(u64_of(&n.to_bytes_be()).ok_or("CRL number longer than 8 bytes")?),
        };
        let revoked = crl
            .iter_revoked_certificates()
            .map(|r| RevokedEntry {
                serial: r.raw_serial_as_string(),
                raw_serial: r.raw_serial().to_vec(),
                revoked_at: r.revocation_date.to_datetime(),
                reason: r.reason_code().map(|(_, code)| code.0),
                invalidity_date: r.invalidity_date().map(|(_, t)| t.to_datetime()),
            })
            .collect();
        Ok(Self {
            issuer: crl.issuer().to_string(),
            issuer_raw: crl.issuer().as_raw().to_vec(),
            number,
            next_update: crl.next_update().map(|t| t.to_datetime()),
            revoked,
        })
    }

    /// The entry for the certificate with this serial (DER integer bytes).
    pub(crate) fn entry(&self, raw_serial: &[u8]) -> Option<&RevokedEntry> {
        self.revoked
            .iter()
            .find(|r| strip_zeros(&r.raw_serial) == strip_zeros(raw_serial))
    }
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    &b[first..]
}

fn u64_of(bytes: &[u8]) -> Option<u64> {
    let bytes = strip_zeros(bytes);
    (bytes.len() <= 8).then(|| bytes.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b)))
}

/// Reads every PEM CRL in `path`; at least one is required.
pub fn load(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, CrlError> {
    let read = |reason: String| CrlError::Read {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read(path).map_err(|e| read(e.to_string()))?;
    let crls: Result<Vec<_>, _> = CertificateRevocationListDer::pem_slice_iter(&text).collect();
    let crls = crls.map_err(|e| read(format!("bad PEM: {e}")))?;
    if crls.is_empty() {
        return Err(CrlError::Empty {
            path: path.display().to_string(),
        });
    }
    for (i, der) in crls.iter().enumerate() {
        CrlInfo::parse(der).map_err(|reason| CrlError::Malformed {
            what: format!("{} (CRL {})", path.display(), i + 1),
            reason,
        })?;
    }
    Ok(crls)
}

/// Which of `cas` signed `crl`: the CA whose subject is the CRL's issuer
/// and whose key verifies its signature. `what` names the CRL in errors.
pub(crate) fn signer<'a>(
    crl: &[u8],
    cas: &'a [CertificateDer<'static>],
    what: &str,
) -> Result<&'a CertificateDer<'static>, CrlError> {
    let (_, parsed) = x509_parser::parse_x509_crl(crl).map_err(|e| CrlError::Malformed {
        what: what.to_owned(),
        reason: e.to_string(),
    })?;
    let issuer = parsed.issuer();
    let mut named = false;
    for ca in cas {
        let Ok((_, ca_parsed)) = x509_parser::parse_x509_certificate(ca) else {
            continue;
        };
        if ca_parsed.subject().as_raw() != issuer.as_raw() {
            continue;
        }
        named = true;
        if parsed.verify_signature(ca_parsed.public_key()).is_ok() {
            return Ok(ca);
        }
    }
    if named {
        return Err(CrlError::BadSignature {
            what: what.to_owned(),
            issuer: issuer.to_string(),
        });
    }
    let allowed: Vec<String> = cas
        .iter()
        .filter_map(|c| x509_parser::parse_x509_certificate(c).ok())
        .map(|(_, c)| c.subject().to_string())
        .collect();
    Err(CrlError::UnknownIssuer {
        what: what.to_owned(),
        issuer: issuer.to_string(),
        allowed: if allowed.is_empty() {
            "none configured".into()
        } else {
            allowed.join("; ")
        },
    })
}

/// Why a certificate is revoked, as `--reason` spells it (RFC 5280 §5.3.1).
pub fn parse_reason(s: &str) -> Result<RevocationReason, String> {
    Ok(match s {
        "unspecified" => RevocationReason::Unspecified,
        "key-compromise" => RevocationReason::KeyCompromise,
        "ca-compromise" => RevocationReason::CaCompromise,
        "affiliation-changed" => RevocationReason::AffiliationChanged,
        "superseded" => RevocationReason::Superseded,
        "cessation-of-operation" => RevocationReason::CessationOfOperation,
        "certificate-hold" => RevocationReason::CertificateHold,
        "privilege-withdrawn" => RevocationReason::PrivilegeWithdrawn,
        other => {
            return Err(format!(
                "unknown reason {other:?}; one of: {}",
                REASONS.join(", ")
            ));
        }
    })
}

/// The reasons `--reason` accepts.
pub(crate) const REASONS: [&str; 8] = [
    "unspecified",
    "key-compromise",
    "ca-compromise",
    "affiliation-changed",
    "superseded",
    "cessation-of-operation",
    "certificate-hold",
    "privilege-withdrawn",
];

fn reason_of(code: u8) -> Option<RevocationReason> {
    Some(match code {
        0 => RevocationReason::Unspecified,
        1 => RevocationReason::KeyCompromise,
        2 => RevocationReason::CaCompromise,
        3 => RevocationReason::AffiliationChanged,
        4 => RevocationReason::Superseded,
        5 => RevocationReason::CessationOfOperation,
        6 => RevocationReason::CertificateHold,
        8 => RevocationReason::RemoveFromCrl,
        9 => RevocationReason::PrivilegeWithdrawn,
        10 => RevocationReason::AaCompromise,
        _ => return None,
    })
}

/// What [`revoke`] made.
#[derive(Debug, Clone)]
pub struct Revocation {
    /// The new CRL, PEM.
    pub crl_pem: String,
    /// Its CRL number.
    pub number: u64,
    /// The revoked certificate's serial, colon-separated hex.
    pub serial: String,
    /// How many certificates the new CRL lists.
    pub listed: usize,
}

/// Adds `cert` to the CRL of the CA that issued it, re-signed by that CA:
/// `existing` (PEM) is extended, with its number incremented, or a first
/// CRL (number 1) is made. The CRL's next update is `days` from now.
pub fn revoke(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    cert: &[u8],
    existing: Option<&str>,
    reason: RevocationReason,
    days: u32,
) -> Result<Revocation, CrlError> {
    if days == 0 {
        return Err(CrlError::Invalid(
            "--days must be at least 1 (the CRL's next update)".into(),
        ));
    }
    let ca = CertificateDer::from_pem_slice(ca_cert_pem.as_bytes())
        .map_err(|e| CrlError::Invalid(format!("CA certificate: not a PEM certificate: {e}")))?;
    pki::check_issued_by(cert, &ca)?;
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).map_err(|e| {
        CrlError::Certificate(pki::PkiError::Invalid(format!(
            "not an X.509 certificate: {e}"
        )))
    })?;
    let serial = parsed.raw_serial_as_string();
    let raw_serial = parsed.raw_serial().to_vec();

    let now = OffsetDateTime::now_utc();
    let mut revoked_certs = Vec::new();
    let mut number = 1;
    if let Some(pem) = existing {
        let der = CertificateRevocationListDer::from_pem_slice(pem.as_bytes()).map_err(|e| {
            CrlError::Malformed {
                what: "existing CRL".into(),
                reason: format!("not a PEM CRL: {e}"),
            }
        })?;
        signer(&der, std::slice::from_ref(&ca), "existing CRL")?;
        let info = CrlInfo::parse(&der).map_err(|reason| CrlError::Malformed {
            what: "existing CRL".into(),
            reason,
        })?;
        if let Some(entry) = info.entry(&raw_serial) {
            return Err(CrlError::AlreadyRevoked {
                serial,
                since: entry.revoked_at.to_string(),
            });
        }
        number = info
            .number
            .unwrap_or(0)
            .checked_add(1)
            .ok_or_else(|| CrlError::Invalid("the existing CRL number cannot grow".into()))?;
        for e in &info.revoked {
            revoked_certs.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(strip_zeros(&e.raw_serial)),
                revocation_time: e.revoked_at,
                reason_code: e.reason.and_then(reason_of),
                invalidity_date: e.invalidity_date,
            });
        }
    }
    revoked_certs.push(RevokedCertParams {
        serial_number: SerialNumber::from_slice(strip_zeros(&raw_serial)),
        revocation_time: now,
        reason_code: Some(reason),
        invalidity_date: None,
    });
    let listed = revoked_certs.len();
    let params = CertificateRevocationListParams {
        this_update: now - Duration::hours(1),
        next_update: now + Duration::days(i64::from(days)),
        crl_number: SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let key = KeyPair::from_pem(ca_key_pem)
        .map_err(|e| CrlError::Invalid(format!("CA private key: not a usable PEM key: {e}")))?;
    let issuer = Issuer::from_ca_cert_pem(ca_cert_pem, key)?;
    let crl = params.signed_by(&issuer).map_err(|e| match e {
        rcgen::Error::IssuerNotCrlSigner => CrlError::Invalid(
            "the CA certificate's key usage lacks cRLSign, so it cannot sign CRLs".into(),
        ),
        e => CrlError::Rcgen(e),
    })?;
    // A CA key that does not belong to the CA certificate signs a CRL no
    // node accepts: refuse it here rather than cut nobody off silently.
    signer(crl.der(), std::slice::from_ref(&ca), "new CRL").map_err(|_| {
        CrlError::Invalid("the CA private key does not belong to the CA certificate".into())
    })?;
    Ok(Revocation {
        crl_pem: crl.pem()?,
        number,
        serial,
        listed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::model::NodeId;
    use crate::trust::pki::Profile;

    fn node(ca: &pki::Issued, id: &str) -> pki::Issued {
        pki::issue(
            &ca.cert_pem,
            &ca.key_pem,
            &Profile::Node {
                federation: "fed".into(),
                node_id: NodeId::parse(id).unwrap(),
                dns_names: vec!["localhost".into()],
                ip_addresses: vec![],
            },
            30,
        )
        .unwrap()
    }

    fn der(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }

    #[test]
    fn a_crl_is_made_then_extended_with_its_number_incremented() {
        let ca = pki::new_ca("CA", None, 30).unwrap();
        let a = node(&ca, "gt");
        let b = node(&ca, "hn");
        let first = revoke(
            &ca.cert_pem,
            &ca.key_pem,
            &der(&a.cert_pem),
            None,
            RevocationReason::KeyCompromise,
            7,
        )
        .unwrap();
        assert_eq!((first.number, first.listed), (1, 1));
        let second = revoke(
            &ca.cert_pem,
            &ca.key_pem,
            &der(&b.cert_pem),
            Some(&first.crl_pem),
            RevocationReason::Superseded,
            7,
        )
        .unwrap();
        assert_eq!((second.number, second.listed), (2, 2));

        let crl = CertificateRevocationListDer::from_pem_slice(second.crl_pem.as_bytes()).unwrap();
        let info = CrlInfo::parse(&crl).unwrap();
        assert_eq!(info.number, Some(2));
        let a_info = pki::CertInfo::parse(&der(&a.cert_pem)).unwrap();
        let a_der = der(&a.cert_pem);
        let (_, a_parsed) = x509_parser::parse_x509_certificate(&a_der).unwrap();
        let entry = info
            .entry(a_parsed.raw_serial())
            .expect("a is still listed");
        assert_eq!(entry.serial, a_info.serial);
        assert_eq!(entry.reason, Some(1), "its reason is carried over");
        let ca_der = der(&ca.cert_pem);
        signer(&crl, std::slice::from_ref(&ca_der), "crl").expect("signed by the CA");

        // Revoking the same certificate twice is refused.
        let again = revoke(
            &ca.cert_pem,
            &ca.key_pem,
            &der(&b.cert_pem),
            Some(&second.crl_pem),
            RevocationReason::Superseded,
            7,
        )
        .unwrap_err();
        assert!(matches!(again, CrlError::AlreadyRevoked { .. }), "{again}");
    }

    #[test]
    fn a_certificate_of_another_ca_is_not_revoked() {
        let ca = pki::new_ca("CA", None, 30).unwrap();
        let other = pki::new_ca("Other", None, 30).unwrap();
        let foreign = node(&other, "gt");
        let err = revoke(
            &ca.cert_pem,
            &ca.key_pem,
            &der(&foreign.cert_pem),
            None,
            RevocationReason::Unspecified,
            7,
        )
        .unwrap_err();
        assert!(err.to_string().contains("not by this CA"), "{err}");

        // Nor is a CRL of another CA extended, even under the same name.
        let twin = pki::new_ca("CA", None, 30).unwrap();
        let mine = node(&ca, "hn");
        let twin_crl = revoke(
            &twin.cert_pem,
            &twin.key_pem,
            &der(&node(&twin, "sv").cert_pem),
            None,
            RevocationReason::Unspecified,
            7,
        )
        .unwrap();
        let err = revoke(
            &ca.cert_pem,
            &ca.key_pem,
            &der(&mine.cert_pem),
            Some(&twin_crl.crl_pem),
            RevocationReason::Unspecified,
            7,
        )
        .unwrap_err();
        assert!(
            matches!(err, CrlError::BadSignature { .. }),
            "a same-named CA's CRL: {err}"
        );
    }

    #[test]
    fn crl_files_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let ca = pki::new_ca("CA", None, 30).unwrap();
        let r = revoke(
            &ca.cert_pem,
            &ca.key_pem,
            &der(&node(&ca, "gt").cert_pem),
            None,
            RevocationReason::Unspecified,
            7,
        )
        .unwrap();
        let good = dir.path().join("good.crl");
        std::fs::write(&good, &r.crl_pem).unwrap();
        assert_eq!(load(&good).unwrap().len(), 1);

        let empty = dir.path().join("empty.crl");
        std::fs::write(&empty, "not pem").unwrap();
        assert!(matches!(load(&empty), Err(CrlError::Empty { .. })));
        let broken = dir.path().join("broken.crl");
        std::fs::write(
            &broken,
            crate::records::crypto::pem_encode("X509 CRL", b"\x30\x03\x02\x01\x01"),
        )
        .unwrap();
        let err = load(&broken).unwrap_err();
        assert!(matches!(err, CrlError::Malformed { .. }), "{err}");
        assert!(matches!(
            load(&dir.path().join("missing.crl")),
            Err(CrlError::Read { .. })
        ));

        // Only a CA it may come from can have signed it.
        let other = pki::new_ca("Other", None, 30).unwrap();
        let crl = &load(&good).unwrap()[0];
        let err = signer(crl, &[der(&other.cert_pem)], "good.crl").unwrap_err();
        assert!(matches!(err, CrlError::UnknownIssuer { .. }), "{err}");
    }

    #[test]
    fn reasons_parse() {
        for r in REASONS {
            parse_reason(r).unwrap();
        }
        assert!(
            parse_reason("because")
                .unwrap_err()
                .contains("key-compromise")
        );
    }
}
