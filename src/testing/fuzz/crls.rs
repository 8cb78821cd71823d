//! The `crl` target: CRL files, as a CA publishes them. Its own file, as
//! each target is: see [`super`] for what every target asserts and the
//! fixtures they share.

use rustls_pki_types::CertificateRevocationListDer;
use rustls_pki_types::pem::PemObject;

use super::{Fixture, fixture, input_file};
use crate::trust::crl::{self, CrlInfo};

/// The input as one DER CRL, and as a PEM CRL file: parsed, its issuer
/// looked for among the example CAs, and handed to a WebPKI verifier as
/// the node does.
pub fn crl(data: &[u8]) {
    let fx = fixture();
    crl_der(fx, data);
    if let Some(file) = input_file(data)
        && let Ok(crls) = crl::load(file.path())
    {
        for der in &crls {
            assert!(CrlInfo::parse(der).is_ok(), "load let a bad CRL through");
            crl_der(fx, der);
        }
        let mut roots = rustls::RootCertStore::empty();
        for ca in &fx.cas {
            let _ = roots.add(ca.clone());
        }
        let _ = rustls::server::WebPkiClientVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            crate::trust::tls::provider(),
        )
        .with_crls(crls)
        .allow_unknown_revocation_status()
        .build();
    }
    for der in CertificateRevocationListDer::pem_slice_iter(data).flatten() {
        crl_der(fx, &der);
    }
}

fn crl_der(fx: &Fixture, der: &[u8]) {
    if let Ok(info) = CrlInfo::parse(der) {
        for r in &info.revoked {
            assert!(info.entry(&r.raw_serial).is_some());
        }
    }
    if let Ok(ca) = crl::signer(der, &fx.cas, "fuzz input") {
        assert!(fx.cas.contains(ca));
    }
}
