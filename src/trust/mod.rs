//! Who is trusted, and how that is checked: loading what the configuration
//! names, the roster (the federation's
//! members, their certificate authorities, signing and governance keys) and
//! the chain of roster versions a quorum of members approved, the rustls
//! configurations with their roster-bound verifiers, issuing and revoking
//! certificates, the live reload of all of it, and the gate every shared
//! record passes before it is stored.

pub mod chain;
pub mod crl;
pub mod load;
pub mod pki;
pub mod reload;
pub mod roster;
pub mod tls;
pub mod verify;
