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
//!
//! Split by what is done with a certificate, since each has its own
//! inputs and its own ways to go wrong:
//! - this file: the profile itself ([`Profile`]) and what issuing yields;
//! - `issue`: making CAs and certificates in the profile;
//! - `renew`: re-issuing an existing certificate under the CA that issued
//!   it, keeping its profile (and its key, if asked);
//! - `inspect`: reading a certificate back in the terms of the profile
//!   (`enlace cert inspect`, `enlace doctor`, renewal, revocation).

mod inspect;
mod issue;
mod renew;

use std::net::IpAddr;

use crate::records::crypto;
use crate::records::model::NodeId;

pub(crate) use inspect::check_issued_by;
pub use inspect::{BasicConstraintsInfo, CertInfo, San};
pub use issue::{issue, issue_with_validity, new_ca};
pub use renew::{Renewed, renew};

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
