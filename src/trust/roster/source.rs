//! The roster as people write it: TOML, with CA certificates named by file.
//!
//! A source is what `enlace roster propose` and `enlace roster compile`
//! read. Compiling it embeds the CA certificates and encodes a
//! `RosterVersion`; the rules a roster obeys are checked once, on those
//! bytes, by [`Roster::from_version`]. The TOML is never signed: it can be
//! re-formatted, commented and diffed freely.
//!
//! ```toml
//! federation = "enlace-demo"          # SPIFFE trust domain
//! threshold = 2                       # optional: a strict majority by default
//! expires = "2027-12-01T00:00:00Z"    # optional: a year after compiling by default
//!
//! [[members]]
//! id = "gt"
//! name = "Guatemala — Ministerio Público"
//! country = "GT"
//! role = "member"                     # or "observer"
//! endpoint = "127.0.0.1:7101"         # peer listener, host:port
//! ca = ["gt/ca.crt"]                  # CAs allowed to issue gt's certificates
//! governance_keys = ["base64 of a 32-byte Ed25519 public key"]
//!
//! [[members.signing_keys]]
//! key_id = "gt-2026"
//! public_key = "base64 of the 32-byte Ed25519 public key"
//!
//! [[members.oprf_keys]]                # what `enlace keys generate-oprf` prints
//! epoch = 1
//! public_key = "base64 of the 32-byte ristretto255 element"
//! ```
//!
//! Relative CA paths resolve against the directory that holds the file.

use std::path::{Path, PathBuf};

use prost::Message;
use serde::Deserialize;

use super::{Role, Roster, RosterError};
use crate::records::crypto;
use crate::wire::pb::v1 as pb;

/// Default life of a compiled version when the source names no `expires`.
pub const DEFAULT_VALIDITY_DAYS: i64 = 365;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoster {
    federation: Option<String>,
    threshold: Option<u32>,
    expires: Option<String>,
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
    #[serde(default)]
    governance_keys: Vec<String>,
    #[serde(default)]
    oprf_keys: Vec<RawOprfKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOprfKey {
    epoch: Option<u32>,
    public_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    key_id: Option<String>,
    public_key: Option<String>,
    valid_from: Option<String>,
    valid_until: Option<String>,
}

/// A parsed roster source, its CA files read.
#[derive(Debug, Clone)]
pub struct RosterSource {
    federation: String,
    threshold: Option<u32>,
    expires_at_ms: Option<i64>,
    members: Vec<pb::RosterMember>,
    /// Per member (in order), the CA files read.
    ca_files: Vec<Vec<PathBuf>>,
    /// Where it was read from.
    pub path: PathBuf,
}

impl RosterSource {
    /// Reads a source file; relative CA paths resolve against its directory.
    pub fn load(path: &Path) -> Result<Self, RosterError> {
        let text = std::fs::read_to_string(path).map_err(|e| RosterError {
            path: path.to_owned(),
            problems: vec![format!("cannot read: {e}")],
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base, path)
    }

    /// Parses source text; relative CA paths resolve against `base`.
    pub fn parse(text: &str, base: &Path, path: &Path) -> Result<Self, RosterError> {
        let fail = |problems: Vec<String>| RosterError {
            path: path.to_owned(),
            problems,
        };
        let raw: RawRoster =
            toml::from_str(text).map_err(|e| fail(vec![format!("is not a valid roster: {e}")]))?;
        let mut problems = Vec::new();
        let federation = raw.federation.unwrap_or_else(|| {
            problems.push(
                "federation: is required (the SPIFFE trust domain, e.g. \"enlace-demo\")".into(),
            );
            String::new()
        });
        let expires_at_ms = parse_time(raw.expires.as_deref(), "expires", &mut problems);
        let mut members = Vec::new();
        let mut ca_files = Vec::new();
        for (i, m) in raw.members.into_iter().enumerate() {
            let at = match &m.id {
                Some(id) => format!("members[{i}] ({id})"),
                None => format!("members[{i}]"),
            };
            let mut cas = Vec::new();
            let mut files = Vec::new();
            for (j, ca) in m.ca.iter().enumerate() {
                let file = base.join(ca);
                match super::load_ca_certs(&file) {
                    Ok(certs) => {
                        cas.extend(certs.into_iter().map(|c| c.as_ref().to_vec()));
                        files.push(file);
                    }
                    Err(e) => problems.push(format!("{at}.ca[{j}]: {e}")),
                }
            }
            let mut signing_keys = Vec::new();
            for (j, k) in m.signing_keys.into_iter().enumerate() {
                let kat = format!("{at}.signing_keys[{j}]");
                let public_key = match k.public_key.as_deref().map(crypto::decode_public_key) {
                    Some(Ok(pk)) => pk.to_vec(),
                    Some(Err(e)) => {
                        problems.push(format!("{kat}.public_key: {e}"));
                        vec![0; crypto::PUBLIC_KEY_LEN]
                    }
                    None => {
                        problems.push(format!("{kat}.public_key: is required"));
                        vec![0; crypto::PUBLIC_KEY_LEN]
                    }
                };
                signing_keys.push(pb::RosterSigningKey {
                    key_id: k.key_id.unwrap_or_default(),
                    public_key,
                    valid_from_ms: parse_time(
                        k.valid_from.as_deref(),
                        &format!("{kat}.valid_from"),
                        &mut problems,
                    )
                    .unwrap_or(0),
                    valid_until_ms: parse_time(
                        k.valid_until.as_deref(),
                        &format!("{kat}.valid_until"),
                        &mut problems,
                    )
                    .unwrap_or(0),
                });
            }
            let mut governance_keys = Vec::new();
            for (j, k) in m.governance_keys.iter().enumerate() {
                match crypto::decode_public_key(k) {
                    Ok(pk) => governance_keys.push(pk.to_vec()),
                    Err(e) => problems.push(format!("{at}.governance_keys[{j}]: {e}")),
                }
            }
            let mut oprf_keys = Vec::new();
            for (j, k) in m.oprf_keys.iter().enumerate() {
                let kat = format!("{at}.oprf_keys[{j}]");
                let Some(epoch) = k.epoch else {
                    problems.push(format!("{kat}.epoch: is required (1 or more)"));
                    continue;
                };
                match k.public_key.as_deref().map(|b| {
                    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b.trim())
                }) {
                    Some(Ok(public_key)) => oprf_keys.push(pb::RosterOprfKey { epoch, public_key }),
                    Some(Err(_)) => {
                        problems.push(format!("{kat}.public_key: is not standard padded base64"))
                    }
                    None => problems.push(format!("{kat}.public_key: is required")),
                }
            }
            members.push(pb::RosterMember {
                id: m.id.unwrap_or_default(),
                name: m.name.unwrap_or_default(),
                country: m.country.unwrap_or_default(),
                role: match m.role.unwrap_or(Role::Member) {
                    Role::Member => pb::RosterRole::Member,
                    Role::Observer => pb::RosterRole::Observer,
                } as i32,
                endpoint: m.endpoint.unwrap_or_default(),
                ca_certificates: cas,
                signing_keys,
                governance_keys,
                oprf_keys,
            });
            ca_files.push(files);
        }
        let source = Self {
            federation,
            threshold: raw.threshold,
            expires_at_ms,
            members,
            ca_files,
            path: path.to_owned(),
        };
        // The rules on the whole roster are the version's: check them now,
        // so that a source with a problem is refused before anyone signs.
        let (_, roster) = source.compile_checked(1, None, crate::clock::now_ms(), &mut problems);
        match roster {
            Some(_) if problems.is_empty() => Ok(source),
            _ => Err(fail(problems)),
        }
    }

    /// Encodes the source as version `version` after `previous` (the hash
    /// of the version it follows; `None` for version 1), proposed at
    /// `now_ms`. Returns the exact bytes to approve and the roster they
    /// describe.
    pub fn compile(
        &self,
        version: u64,
        previous: Option<[u8; 32]>,
        now_ms: i64,
    ) -> Result<(Vec<u8>, Roster), RosterError> {
        let mut problems = Vec::new();
        match self.compile_checked(version, previous, now_ms, &mut problems) {
            (bytes, Some(roster)) if problems.is_empty() => Ok((bytes, roster)),
            _ => Err(RosterError {
                path: self.path.clone(),
                problems,
            }),
        }
    }

    fn compile_checked(
        &self,
        version: u64,
        previous: Option<[u8; 32]>,
        now_ms: i64,
        problems: &mut Vec<String>,
    ) -> (Vec<u8>, Option<Roster>) {
        let voting = self
            .members
            .iter()
            .filter(|m| m.role == pb::RosterRole::Member as i32)
            .count() as u32;
        let expires_at_ms = self
            .expires_at_ms
            .unwrap_or(now_ms + DEFAULT_VALIDITY_DAYS * 86_400_000);
        if expires_at_ms <= now_ms {
            problems.push("expires: is in the past".into());
        }
        let v = pb::RosterVersion {
            federation: self.federation.clone(),
            version,
            previous: previous.map(|p| p.to_vec()).unwrap_or_default(),
            expires_at_ms,
            threshold: self.threshold.unwrap_or(voting / 2 + 1),
            members: self.members.clone(),
            proposed_at_ms: now_ms,
        };
        let bytes = v.encode_to_vec();
        match Roster::from_version(&bytes) {
            Ok(mut roster) => {
                for (m, files) in self.members.iter().zip(&self.ca_files) {
                    if let Ok(id) = crate::records::model::NodeId::parse(&m.id)
                        && let Some(member) = roster.members.get_mut(&id)
                    {
                        member.ca_files = files.clone();
                    }
                }
                roster.path = self.path.clone();
                (bytes, Some(roster))
            }
            Err(e) => {
                for p in e.problems {
                    // Problems already reported while reading the source
                    // (a CA file, a key's encoding) are not repeated.
                    if !problems.iter().any(|q| same_field(q, &p)) {
                        problems.push(p);
                    }
                }
                (bytes, None)
            }
        }
    }
}

/// Whether two problems concern the same field, or one a part of the
/// other (`members[0].ca` and `members[0].ca[1]`): the text before ": ".
fn same_field(a: &str, b: &str) -> bool {
    let field = |s: &str| s.split(": ").next().unwrap_or(s).to_owned();
    let (fa, fb) = (field(a), field(b));
    let within =
        |x: &str, y: &str| y.starts_with(&format!("{x}.")) || y.starts_with(&format!("{x}["));
    fa == fb || within(&fa, &fb) || within(&fb, &fa)
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
