//! The federation file ("roster"): who the members are, where they listen,
//! which CAs may issue their TLS certificates, and which Ed25519 keys sign
//! their records.
//!
//! The roster is the root of trust between members, so it is validated whole
//! at start: every problem is reported at once, with the member and field it
//! concerns. Relative paths in it are resolved against the directory that
//! holds the roster file, so the same file works wherever it is used from.
//!
//! ```toml
//! federation = "enlace-demo"          # SPIFFE trust domain
//!
//! [[members]]
//! id = "gt"
//! name = "Guatemala — Ministerio Público"
//! country = "GT"
//! role = "member"                     # or "observer"
//! endpoint = "127.0.0.1:7101"         # peer listener, host:port
//! ca = ["gt/ca.crt"]                  # CAs allowed to issue gt's certificates
//!
//! [[members.signing_keys]]
//! key_id = "gt-2026"
//! public_key = "base64 of the 32-byte Ed25519 public key"
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;

use crate::records::crypto;
use crate::records::model::NodeId;

/// Every problem found in a roster file.
#[derive(Debug, thiserror::Error)]
#[error("roster {path} is invalid:\n  - {}", .problems.join("\n  - "))]
pub struct RosterError {
    pub path: PathBuf,
    pub problems: Vec<String>,
}

/// A member's role in the federation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Publishes and receives records.
    Member,
    /// Receives records only (e.g. an international partner).
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
    /// The files `ca_certs` were read from, so that a change to one can
    /// be noticed and the TLS configuration reloaded.
    pub ca_files: Vec<PathBuf>,
    pub signing_keys: Vec<RosterKey>,
}

/// The validated federation file.
#[derive(Debug, Clone)]
pub struct Roster {
    /// Trust domain of the SPIFFE ids: `spiffe://<federation>/node/<id>`.
    pub federation: String,
    members: BTreeMap<NodeId, Member>,
    /// key id → (member, index into its signing_keys)
    keys: HashMap<String, (NodeId, usize)>,
    /// Where it was loaded from.
    pub path: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoster {
    federation: Option<String>,
    #[serde(default)]
    members: Vec<RawMember>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMember {
    id: Option<String>,
    name: Option<String>,
    country: Option<String>,
    role: Option<Role>,
    endpoint: Option<String>,
    #[serde(default)]
    ca: Vec<PathBuf>,
    #[serde(default)]
    signing_keys: Vec<RawKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    key_id: Option<String>,
    public_key: Option<String>,
    valid_from: Option<String>,
    valid_until: Option<String>,
}

impl Roster {
    /// Reads and validates a roster file.
    pub fn load(path: &Path) -> Result<Self, RosterError> {
        let fail = |problem: String| RosterError {
            path: path.to_owned(),
            problems: vec![problem],
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        let raw: RawRoster =
            toml::from_str(&text).map_err(|e| fail(format!("is not a valid roster: {e}")))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_raw(raw, base, path)
    }

    /// Parses a roster from TOML text; relative paths resolve against `base`.
    pub fn from_toml(text: &str, base: &Path) -> Result<Self, RosterError> {
        let raw: RawRoster = toml::from_str(text).map_err(|e| RosterError {
            path: base.to_owned(),
            problems: vec![format!("is not a valid roster: {e}")],
        })?;
        Self::from_raw(raw, base, base)
    }

    fn from_raw(raw: RawRoster, base: &Path, path: &Path) -> Result<Self, RosterError> {
        let mut problems = Vec::new();
        let federation = match raw.federation {
            Some(f) => {
                if let Err(e) = check_trust_domain(&f) {
                    problems.push(format!("federation: {e}"));
                }
                f
            }
            None => {
                problems.push(
                    "federation: is required (the SPIFFE trust domain, e.g. \"enlace-demo\")"
                        .into(),
                );
                String::new()
            }
        };
        if raw.members.is_empty() {
            problems.push("members: at least one [[members]] entry is required".into());
        }
        let mut members = BTreeMap::new();
        let mut keys = HashMap::new();
        for (i, m) in raw.members.into_iter().enumerate() {
            let at = match &m.id {
                Some(id) => format!("members[{i}] ({id})"),
                None => format!("members[{i}]"),
            };
            let id = match m.id.as_deref().map(NodeId::parse) {
                Some(Ok(id)) => Some(id),
                Some(Err(e)) => {
                    problems.push(format!("{at}.id: {e}"));
                    None
                }
                None => {
                    problems.push(format!("{at}.id: is required"));
                    None
                }
            };
            let name = m.name.unwrap_or_default();
            if name.trim().is_empty() {
                problems.push(format!("{at}.name: is required"));
            }
            let country = m.country.unwrap_or_default();
            if !(country.len() == 2 && country.chars().all(|c| c.is_ascii_uppercase())) {
                problems.push(format!(
                    "{at}.country: must be an ISO 3166-1 alpha-2 code in upper case, e.g. \"GT\" (got {country:?})"
                ));
            }
            let role = m.role.unwrap_or(Role::Member);
            let endpoint = match m.endpoint.as_deref().map(Endpoint::parse) {
                Some(Ok(e)) => Some(e),
                Some(Err(e)) => {
                    problems.push(format!("{at}.endpoint: {e}"));
                    None
                }
                None => None,
            };
            let mut ca_certs = Vec::new();
            let mut ca_files = Vec::new();
            if m.ca.is_empty() {
                problems.push(format!(
                    "{at}.ca: at least one CA certificate file is required"
                ));
            }
            for (j, ca) in m.ca.iter().enumerate() {
                let file = base.join(ca);
                match load_ca_certs(&file) {
                    Ok(certs) => {
                        ca_certs.extend(certs);
                        ca_files.push(file);
                    }
                    Err(e) => problems.push(format!("{at}.ca[{j}]: {e}")),
                }
            }
            let mut signing_keys = Vec::new();
            if m.signing_keys.is_empty() && role == Role::Member {
                problems.push(format!(
                    "{at}.signing_keys: a member needs at least one signing key"
                ));
            }
            for (j, k) in m.signing_keys.into_iter().enumerate() {
                let kat = format!("{at}.signing_keys[{j}]");
                let key_id = k.key_id.unwrap_or_default();
                if key_id.is_empty()
                    || key_id.len() > 64
                    || !key_id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                {
                    problems.push(format!(
                        "{kat}.key_id: must be 1 to 64 characters of letters, digits, '-', '_' or '.' (got {key_id:?})"
                    ));
                }
                let public_key = match k.public_key.as_deref().map(crypto::decode_public_key) {
                    Some(Ok(pk)) => Some(pk),
                    Some(Err(e)) => {
                        problems.push(format!("{kat}.public_key: {e}"));
                        None
                    }
                    None => {
                        problems.push(format!("{kat}.public_key: is required"));
                        None
                    }
                };
                let valid_from_ms = parse_time(
                    k.valid_from.as_deref(),
                    &format!("{kat}.valid_from"),
                    &mut problems,
                );
                let valid_until_ms = parse_time(
                    k.valid_until.as_deref(),
                    &format!("{kat}.valid_until"),
                    &mut problems,
                );
                if let (Some(a), Some(b)) = (valid_from_ms, valid_until_ms)
                    && a > b
                {
                    problems.push(format!("{kat}: valid_from is after valid_until"));
                }
                if let (Some(id), Some(pk)) = (&id, public_key) {
                    if let Some((other, _)) = keys.get(&key_id) {
                        problems.push(format!(
                            "{kat}.key_id: {key_id:?} is already used by member {other}; key ids are unique in the federation"
                        ));
                    } else {
                        keys.insert(key_id.clone(), (id.clone(), signing_keys.len()));
                    }
                    signing_keys.push(RosterKey {
                        key_id,
                        public_key: pk,
                        valid_from_ms,
                        valid_until_ms,
                    });
                }
            }
            if let Some(id) = id {
                if members.contains_key(&id) {
                    problems.push(format!("{at}.id: member {id} is listed twice"));
                    continue;
                }
                members.insert(
                    id.clone(),
                    Member {
                        id,
                        name,
                        country,
                        role,
                        endpoint,
                        ca_certs,
                        ca_files,
                        signing_keys,
                    },
                );
            }
        }
        if !problems.is_empty() {
            return Err(RosterError {
                path: path.to_owned(),
                problems,
            });
        }
        Ok(Self {
            federation,
            members,
            keys,
            path: path.to_owned(),
        })
    }

    pub fn member(&self, id: &NodeId) -> Option<&Member> {
        self.members.get(id)
    }

    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
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

fn parse_time(s: Option<&str>, field: &str, problems: &mut Vec<String>) -> Option<i64> {
    let s = s?;
    match time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        Ok(t) => Some((t.unix_timestamp_nanos() / 1_000_000) as i64),
        Err(e) => {
            problems.push(format!(
                "{field}: must be an RFC 3339 time such as 2026-01-01T00:00:00Z ({e})"
            ));
            None
        }
    }
}

/// Reads one or more PEM certificates and checks each is a CA certificate.
pub(crate) fn load_ca_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = load_certs(path)?;
    for cert in &certs {
        let (_, parsed) = x509_parser::parse_x509_certificate(cert)
            .map_err(|e| format!("{}: not an X.509 certificate: {e}", path.display()))?;
        let is_ca = parsed
            .basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|bc| bc.value.ca);
        if !is_ca {
            return Err(format!(
                "{}: certificate {} is not a CA certificate (basicConstraints CA:TRUE is missing)",
                path.display(),
                parsed.subject()
            ));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            Endpoint::parse("127.0.0.1:7101").unwrap(),
            Endpoint {
                host: "127.0.0.1".into(),
                port: 7101
            }
        );
        assert_eq!(Endpoint::parse("[::1]:80").unwrap().host, "::1");
        assert_eq!(
            Endpoint::parse("https://node.gt.example:443").unwrap().port,
            443
        );
        for bad in ["nohost", ":80", "host:0", "host:99999"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = r#"
            federation = "Bad Domain"
            [[members]]
            id = "GT"
            name = ""
            country = "gt"
            endpoint = "nowhere"
            ca = ["missing.crt"]
            [[members.signing_keys]]
            key_id = "k 1"
            public_key = "AAAA"
        "#;
        let err = Roster::from_toml(text, Path::new("/nonexistent")).unwrap_err();
        let joined = err.problems.join("\n");
        for expected in [
            "federation:",
            ".id:",
            ".name: is required",
            ".country:",
            ".endpoint:",
            ".ca[0]:",
            ".key_id:",
            ".public_key:",
        ] {
            assert!(
                joined.contains(expected),
                "missing {expected:?} in:\n{joined}"
            );
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err =
            Roster::from_toml("federation = \"x\"\nmembrs = []\n", Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("membrs"), "{err}");
    }
}
