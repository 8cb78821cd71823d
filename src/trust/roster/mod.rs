//! The roster: who the members are, where they listen, which CAs may issue
//! their TLS certificates, which Ed25519 keys sign their records, and which
//! governance keys approve changes to all of that.
//!
//! A roster in force is always one version of the federation's roster
//! chain ([`crate::trust::chain`]): the exact bytes of an encoded
//! `RosterVersion` (`proto/enlace/v1/roster.proto`) that a threshold of
//! members approved. [`Roster::from_version`] is the one place that decides
//! whether such bytes describe a valid roster; it reports every problem at
//! once, with the member and field it concerns.
//!
//! People write rosters in TOML ([`source`]): that text is what a proposal
//! is made from, never what is signed. Compiling it reads the CA files it
//! names and embeds the certificates, so a version means the same thing on
//! every machine that verifies it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use prost::Message;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::records::crypto;
use crate::records::model::NodeId;
use crate::wire::pb::v1 as pb;

pub mod diff;
pub mod source;
#[cfg(test)]
mod tests;

pub use source::RosterSource;

/// Every problem found in a roster (a TOML source or a version's bytes).
#[derive(Debug, thiserror::Error)]
#[error("roster {path} is invalid:\n  - {}", .problems.join("\n  - "))]
pub struct RosterError {
    /// The file, or a description of the bytes (`"version 3"`).
    pub path: PathBuf,
    pub problems: Vec<String>,
}

/// A member's role in the federation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Publishes, receives records and votes on roster changes.
    Member,
    /// Receives records only (e.g. an international partner); no vote.
    Observer,
}

/// A network endpoint `host:port`; the configuration's `[[sync.peers]]`
/// name them too, so the type lives with it.
pub use crate::config::Endpoint;

/// One of a member's record-signing keys.
#[derive(Debug, Clone)]
pub struct RosterKey {
    pub key_id: String,
    pub public_key: [u8; crypto::PUBLIC_KEY_LEN],
    /// Records created before this time (ms) are not accepted under this key.
    pub valid_from_ms: Option<i64>,
    /// Records created after this time (ms) are not accepted under this key.
    pub valid_until_ms: Option<i64>,
}

impl RosterKey {
    /// Whether a record created at `created_at_ms` may be signed by this key.
    pub(crate) fn covers(&self, created_at_ms: i64) -> bool {
        self.valid_from_ms.is_none_or(|t| created_at_ms >= t)
            && self.valid_until_ms.is_none_or(|t| created_at_ms <= t)
    }
}

/// A governance public key (Ed25519, 32 bytes).
pub type GovernanceKey = [u8; crypto::PUBLIC_KEY_LEN];

/// A member of the federation.
#[derive(Debug, Clone)]
pub struct Member {
    pub id: NodeId,
    pub name: String,
    pub country: String,
    pub role: Role,
    /// Peer listener; `None` for a member that only pulls.
    pub endpoint: Option<Endpoint>,
    /// CA certificates allowed to issue this member's TLS certificates.
    pub ca_certs: Vec<CertificateDer<'static>>,
    /// The files `ca_certs` were read from when the roster came from a
    /// TOML source; empty for a version, which carries the certificates.
    pub ca_files: Vec<PathBuf>,
    pub signing_keys: Vec<RosterKey>,
    /// The keys that approve roster changes for this member.
    pub governance_keys: Vec<GovernanceKey>,
    /// The public halves of the member's OPRF keys, by epoch (ascending).
    pub oprf_keys: Vec<crate::records::oprf::PublicKey>,
}

impl Member {
    /// The member's OPRF key of `epoch`, if the roster lists one.
    pub fn oprf_key(&self, epoch: u32) -> Option<&crate::records::oprf::PublicKey> {
        self.oprf_keys.iter().find(|k| k.epoch == epoch)
    }
}

/// Where a roster stands in the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// 1, 2, ...; 0 for a TOML source not yet made a version.
    pub version: u64,
    /// SHA-256 of the version's bytes.
    pub hash: [u8; 32],
    /// SHA-256 of the previous version's bytes; zero for version 1.
    pub previous: [u8; 32],
    /// ms since the Unix epoch.
    pub expires_at_ms: i64,
    pub proposed_at_ms: i64,
    /// Distinct voting members a change needs.
    pub threshold: u32,
}

/// A validated roster.
#[derive(Debug, Clone)]
pub struct Roster {
    /// Trust domain of the SPIFFE ids: `spiffe://<federation>/node/<id>`.
    pub federation: String,
    members: BTreeMap<NodeId, Member>,
    /// key id → (member, index into its signing_keys)
    keys: HashMap<String, (NodeId, usize)>,
    /// Where it stands in the chain.
    pub position: Position,
    /// Where it was loaded from (a file, or `"roster version N"`).
    pub path: PathBuf,
}

pub use crate::records::crypto::sha256;

/// Longest accepted encoded version: CA certificates are the bulk; a
/// hundred members with a few CAs each stay far below it.
pub const MAX_VERSION_BYTES: usize = 4 << 20;

impl Roster {
    /// Decodes and validates a version's bytes, exactly as they travel.
    pub fn from_version(bytes: &[u8]) -> Result<Self, RosterError> {
        let fail = |problem: String| RosterError {
            path: PathBuf::from("roster version"),
            problems: vec![problem],
        };
        if bytes.len() > MAX_VERSION_BYTES {
            return Err(fail(format!(
                "is {} bytes, more than the {MAX_VERSION_BYTES} a version may have",
                bytes.len()
            )));
        }
        let v = pb::RosterVersion::decode(bytes)
            .map_err(|e| fail(format!("is not an encoded RosterVersion: {e}")))?;
        let path = PathBuf::from(format!("roster version {}", v.version));
        let mut problems = Vec::new();
        let position = Position {
            version: v.version,
            hash: sha256(bytes),
            previous: match (v.version, v.previous.as_slice()) {
                (0, _) => {
                    problems.push("version: must be 1 or more".into());
                    [0; 32]
                }
                (1, []) => [0; 32],
                (1, _) => {
                    problems.push("previous: must be empty in version 1".into());
                    [0; 32]
                }
                (_, p) => p.try_into().unwrap_or_else(|_| {
                    problems.push(format!(
                        "previous: must be the 32-byte SHA-256 of the previous version (got {} bytes)",
                        p.len()
                    ));
                    [0; 32]
                }),
            },
            expires_at_ms: v.expires_at_ms,
            proposed_at_ms: v.proposed_at_ms,
            threshold: v.threshold,
        };
        if v.expires_at_ms <= 0 {
            problems.push("expires_at_ms: is required".into());
        } else if v.proposed_at_ms > 0 && v.expires_at_ms <= v.proposed_at_ms {
            problems.push("expires_at_ms: must be after proposed_at_ms".into());
        }
        let roster = Self::from_parts(v.federation, v.members, position, path, &mut problems);
        if problems.is_empty() {
            Ok(roster)
        } else {
            Err(RosterError {
                path: roster.path,
                problems,
            })
        }
    }

    /// The rules every roster obeys, wherever it came from.
    fn from_parts(
        federation: String,
        raw: Vec<pb::RosterMember>,
        position: Position,
        path: PathBuf,
        problems: &mut Vec<String>,
    ) -> Self {
        if let Err(e) = check_trust_domain(&federation) {
            problems.push(format!("federation: {e}"));
        }
        if raw.is_empty() {
            problems.push("members: at least one member is required".into());
        }
        let mut members = BTreeMap::new();
        let mut keys = HashMap::new();
        let mut governance: HashMap<GovernanceKey, NodeId> = HashMap::new();
        for (i, m) in raw.into_iter().enumerate() {
            let at = if m.id.is_empty() {
                format!("members[{i}]")
            } else {
                format!("members[{i}] ({})", m.id)
            };
            let id = match NodeId::parse(&m.id) {
                Ok(id) => Some(id),
                Err(_) if m.id.is_empty() => {
                    problems.push(format!("{at}.id: is required"));
                    None
                }
                Err(e) => {
                    problems.push(format!("{at}.id: {e}"));
                    None
                }
            };
            if m.name.trim().is_empty() {
                problems.push(format!("{at}.name: is required"));
            }
            if !(m.country.len() == 2 && m.country.chars().all(|c| c.is_ascii_uppercase())) {
                problems.push(format!(
                    "{at}.country: must be an ISO 3166-1 alpha-2 code in upper case, e.g. \"GT\" (got {:?})",
                    m.country
                ));
            }
            let role = match pb::RosterRole::try_from(m.role) {
                Ok(pb::RosterRole::Member) => Role::Member,
                Ok(pb::RosterRole::Observer) => Role::Observer,
                _ => {
                    problems.push(format!("{at}.role: must be member or observer"));
                    Role::Observer
                }
            };
            let endpoint = if m.endpoint.is_empty() {
                None
            } else {
                match Endpoint::parse(&m.endpoint) {
                    Ok(e) => Some(e),
                    Err(e) => {
                        problems.push(format!("{at}.endpoint: {e}"));
                        None
                    }
                }
            };
            if m.ca_certificates.is_empty() {
                problems.push(format!("{at}.ca: at least one CA certificate is required"));
            }
            let mut ca_certs = Vec::new();
            for (j, der) in m.ca_certificates.into_iter().enumerate() {
                let cert = CertificateDer::from(der);
                match check_ca(&cert) {
                    Ok(()) => ca_certs.push(cert),
                    Err(e) => problems.push(format!("{at}.ca[{j}]: {e}")),
                }
            }
            if m.signing_keys.is_empty() && role == Role::Member {
                problems.push(format!(
                    "{at}.signing_keys: a member needs at least one signing key"
                ));
            }
            let mut signing_keys = Vec::new();
            for (j, k) in m.signing_keys.into_iter().enumerate() {
                let kat = format!("{at}.signing_keys[{j}]");
                if !valid_key_id(&k.key_id) {
                    problems.push(format!(
                        "{kat}.key_id: must be 1 to 64 characters of letters, digits, '-', '_' or '.' (got {:?})",
                        k.key_id
                    ));
                }
                let public_key: Option<[u8; crypto::PUBLIC_KEY_LEN]> =
                    k.public_key.as_slice().try_into().ok();
                if public_key.is_none() {
                    problems.push(format!(
                        "{kat}.public_key: must be {} bytes of Ed25519 public key (got {})",
                        crypto::PUBLIC_KEY_LEN,
                        k.public_key.len()
                    ));
                }
                let valid_from_ms = (k.valid_from_ms != 0).then_some(k.valid_from_ms);
                let valid_until_ms = (k.valid_until_ms != 0).then_some(k.valid_until_ms);
                if let (Some(a), Some(b)) = (valid_from_ms, valid_until_ms)
                    && a > b
                {
                    problems.push(format!("{kat}: valid_from is after valid_until"));
                }
                if let (Some(id), Some(pk)) = (&id, public_key) {
                    if let Some((other, _)) = keys.get(&k.key_id) {
                        problems.push(format!(
                            "{kat}.key_id: {:?} is already used by member {other}; key ids are unique in the federation",
                            k.key_id
                        ));
                    } else {
                        keys.insert(k.key_id.clone(), (id.clone(), signing_keys.len()));
                    }
                    signing_keys.push(RosterKey {
                        key_id: k.key_id,
                        public_key: pk,
                        valid_from_ms,
                        valid_until_ms,
                    });
                }
            }
            if m.governance_keys.is_empty() && role == Role::Member {
                problems.push(format!(
                    "{at}.governance_keys: a voting member needs at least one governance key"
                ));
            }
            if !m.governance_keys.is_empty() && role == Role::Observer {
                problems.push(format!(
                    "{at}.governance_keys: an observer does not vote and holds no governance key"
                ));
            }
            let mut governance_keys = Vec::new();
            for (j, k) in m.governance_keys.into_iter().enumerate() {
                let gat = format!("{at}.governance_keys[{j}]");
                let Ok(key) = GovernanceKey::try_from(k.as_slice()) else {
                    problems.push(format!(
                        "{gat}: must be {} bytes of Ed25519 public key (got {})",
                        crypto::PUBLIC_KEY_LEN,
                        k.len()
                    ));
                    continue;
                };
                // NOTE: one key listed for two members would let one
                // signature count twice toward a threshold.
                if let Some(id) = &id {
                    match governance.get(&key) {
                        Some(other) if other == id => problems.push(format!(
                            "{gat}: is listed twice for {id}"
                        )),
                        Some(other) => problems.push(format!(
                            "{gat}: is already a governance key of member {other}; a key speaks for one member only"
                        )),
                        None => {
                            governance.insert(key, id.clone());
                        }
                    }
                    if signing_keys.iter().any(|s| s.public_key == key) {
                        problems.push(format!(
                            "{gat}: is also one of {id}'s signing keys; governance keys are separate keys"
                        ));
                    }
                }
                governance_keys.push(key);
            }
            let mut oprf_keys: Vec<crate::records::oprf::PublicKey> = Vec::new();
            if !m.oprf_keys.is_empty() && role == Role::Observer {
                problems.push(format!(
                    "{at}.oprf_keys: an observer holds no identifiers and has no OPRF key"
                ));
            }
            for (j, k) in m.oprf_keys.into_iter().enumerate() {
                let oat = format!("{at}.oprf_keys[{j}]");
                match crate::records::oprf::PublicKey::parse(k.epoch, &k.public_key) {
                    Ok(key) if oprf_keys.iter().any(|o| o.epoch == key.epoch) => {
                        problems.push(format!("{oat}.epoch: epoch {} is listed twice", key.epoch))
                    }
                    Ok(key) => oprf_keys.push(key),
                    Err(e) => problems.push(format!("{oat}: {e}")),
                }
            }
            oprf_keys.sort_by_key(|k| k.epoch);
            if let Some(id) = id {
                if members.contains_key(&id) {
                    problems.push(format!("{at}.id: member {id} is listed twice"));
                    continue;
                }
                members.insert(
                    id.clone(),
                    Member {
                        id,
                        name: m.name,
                        country: m.country,
                        role,
                        endpoint,
                        ca_certs,
                        ca_files: Vec::new(),
                        signing_keys,
                        governance_keys,
                        oprf_keys,
                    },
                );
            }
        }
        let voting = members.values().filter(|m| m.role == Role::Member).count() as u32;
        let t = position.threshold;
        if t == 0 || t * 2 <= voting || t > voting {
            problems.push(format!(
                "threshold: must be a strict majority of the {voting} voting members, {} to {voting} (got {t})",
                voting / 2 + 1
            ));
        }
        Self {
            federation,
            members,
            keys,
            position,
            path,
        }
    }

    pub fn member(&self, id: &NodeId) -> Option<&Member> {
        self.members.get(id)
    }

    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// The members that vote on roster changes.
    pub fn voting_members(&self) -> impl Iterator<Item = &Member> {
        self.members.values().filter(|m| m.role == Role::Member)
    }

    /// The member a governance key speaks for.
    pub fn governance_key_owner(&self, key: &[u8]) -> Option<&Member> {
        self.voting_members()
            .find(|m| m.governance_keys.iter().any(|k| k.as_slice() == key))
    }

    /// The member that owns `key_id`, and the key.
    pub fn signing_key(&self, key_id: &str) -> Option<(&Member, &RosterKey)> {
        let (id, idx) = self.keys.get(key_id)?;
        let member = self.members.get(id)?;
        Some((member, member.signing_keys.get(*idx)?))
    }

    /// The SPIFFE id of a member's node.
    pub(crate) fn spiffe_id(&self, id: &NodeId) -> String {
        format!("spiffe://{}/node/{}", self.federation, id)
    }
}

fn valid_key_id(key_id: &str) -> bool {
    !key_id.is_empty()
        && key_id.len() <= 64
        && key_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// A SPIFFE trust domain: lower-case letters, digits, '-', '.' and '_'.
fn check_trust_domain(s: &str) -> Result<(), String> {
    if s.is_empty()
        || s.len() > 255
        || !s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-._".contains(c))
    {
        return Err(format!(
            "must be a SPIFFE trust domain: lower-case letters, digits, '-', '.' or '_' (got {s:?})"
        ));
    }
    Ok(())
}

/// Checks that a certificate is an X.509 CA certificate.
fn check_ca(cert: &CertificateDer<'_>) -> Result<(), String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let is_ca = parsed
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|bc| bc.value.ca);
    if !is_ca {
        return Err(format!(
            "certificate {} is not a CA certificate (basicConstraints CA:TRUE is missing)",
            parsed.subject()
        ));
    }
    Ok(())
}

/// Reads one or more PEM certificates and checks each is a CA certificate.
pub(crate) fn load_ca_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = load_certs(path)?;
    for cert in &certs {
        check_ca(cert).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(certs)
}

/// Reads every PEM certificate in a file; at least one is required.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .collect();
    let certs = certs.map_err(|e| format!("{}: bad PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate found", path.display()));
    }
    Ok(certs)
}
