//! What a proposed roster version changes, in words an administrator
//! reviews before approving it.
//!
//! Approving a version means signing its exact bytes, and those bytes are
//! not readable: CA certificates are DER, keys are raw bytes. Before a
//! member's administrator approves version N+1, they read what it changes
//! compared with the version in force — members added or removed, keys
//! added or retired, endpoints, CAs, the threshold — and approve only if
//! that is the change that was agreed. [`diff`] computes that list. It is
//! pure (no I/O, no clock), so every tool that shows it shows the same
//! lines for the same two versions.
//!
//! What is compared is what a version grants, not how it is encoded: the
//! version number, the previous version's hash and the proposal time differ
//! between any two versions and are not reported, and neither is the order
//! in which members, CAs or keys are listed, which carries no meaning. An
//! empty list therefore means the two versions grant exactly the same
//! trust.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use rustls_pki_types::CertificateDer;

use super::{GovernanceKey, Member, Role, Roster, RosterKey};
use crate::records::crypto;
use crate::records::model::NodeId;
use crate::records::oprf::PublicKey as OprfKey;
use crate::trust::chain::key_name;

/// One difference between two versions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    /// The member concerned (its node id); `None` for a federation-wide
    /// change.
    pub member: Option<String>,
    /// What changed, as a machine label. Federation-wide: `federation`,
    /// `threshold`, `expires`. Per member: `member_added`,
    /// `member_removed`, `name`, `country`, `role`, `endpoint`, `ca_added`,
    /// `ca_removed`, `signing_key_added`, `signing_key_retired`,
    /// `signing_key_validity`, `governance_key_added`,
    /// `governance_key_retired`, `oprf_key_added`, `oprf_key_retired`.
    pub what: &'static str,
    /// The value in force, readable; empty when something is added.
    pub before: String,
    /// The proposed value, readable; empty when something is removed.
    pub after: String,
}

impl fmt::Display for Change {
    /// One line, e.g. `threshold: 2 -> 3`, `+ member cr (Costa Rica, CR,
    /// member) at cr.example:7443` or `hn: CA added: SHA-256 …`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (b, a) = (&self.before, &self.after);
        let Some(m) = &self.member else {
            return write!(f, "{}: {b} -> {a}", self.what);
        };
        match self.what {
            "member_added" => write!(f, "+ member {a}"),
            "member_removed" => write!(f, "- member {b}"),
            "name" => write!(f, "{m}: name: {b:?} -> {a:?}"),
            "ca_added" => write!(f, "{m}: CA added: {a}"),
            "ca_removed" => write!(f, "{m}: CA removed: {b}"),
            "signing_key_added" => write!(f, "{m}: signing key added: {a}"),
            "signing_key_retired" => write!(f, "{m}: signing key retired: {b}"),
            "signing_key_validity" => write!(f, "{m}: signing key validity: {b} -> {a}"),
            "governance_key_added" => write!(f, "{m}: governance key added: {a}"),
            "governance_key_retired" => write!(f, "{m}: governance key retired: {b}"),
            "oprf_key_added" => write!(f, "{m}: OPRF key added: {a}"),
            "oprf_key_retired" => write!(f, "{m}: OPRF key retired: {b}"),
            what => write!(f, "{m}: {what}: {b} -> {a}"),
        }
    }
}

/// What `next` changes compared with `current`: federation-wide changes
/// first, then each member's, members in id order. Empty when both grant
/// the same trust.
pub fn diff(current: &Roster, next: &Roster) -> Vec<Change> {
    let mut out = Vec::new();
    let federation = |what, before: String, after: String| Change {
        member: None,
        what,
        before,
        after,
    };
    if current.federation != next.federation {
        out.push(federation(
            "federation",
            current.federation.clone(),
            next.federation.clone(),
        ));
    }
    let (was, will) = (&current.position, &next.position);
    if was.threshold != will.threshold {
        out.push(federation(
            "threshold",
            was.threshold.to_string(),
            will.threshold.to_string(),
        ));
    }
    if was.expires_at_ms != will.expires_at_ms {
        out.push(federation(
            "expires",
            rfc3339(was.expires_at_ms),
            rfc3339(will.expires_at_ms),
        ));
    }
    let ids: BTreeSet<&NodeId> = current
        .members()
        .chain(next.members())
        .map(|m| &m.id)
        .collect();
    for id in ids {
        match (current.member(id), next.member(id)) {
            (None, Some(m)) => {
                let mut changes = Changes::new(m);
                changes.push("member_added", String::new(), describe_member(m));
                // A new member's trust material is what there is to check.
                changes.cas(&[], &m.ca_certs);
                changes.signing_keys(&[], &m.signing_keys);
                changes.governance_keys(&[], &m.governance_keys);
                changes.oprf_keys(&[], &m.oprf_keys);
                out.extend(changes.out);
            }
            (Some(m), None) => {
                let mut changes = Changes::new(m);
                changes.push("member_removed", describe_member(m), String::new());
                out.extend(changes.out);
            }
            (Some(a), Some(b)) => {
                let mut changes = Changes::new(a);
                changes.member(a, b);
                out.extend(changes.out);
            }
            (None, None) => {}
        }
    }
    out
}

/// The changes of one member.
struct Changes {
    id: String,
    out: Vec<Change>,
}

impl Changes {
    fn new(m: &Member) -> Self {
        Self {
            id: m.id.to_string(),
            out: Vec::new(),
        }
    }

    fn push(&mut self, what: &'static str, before: String, after: String) {
        self.out.push(Change {
            member: Some(self.id.clone()),
            what,
            before,
            after,
        });
    }

    fn member(&mut self, a: &Member, b: &Member) {
        if a.name != b.name {
            self.push("name", a.name.clone(), b.name.clone());
        }
        if a.country != b.country {
            self.push("country", a.country.clone(), b.country.clone());
        }
        if a.role != b.role {
            self.push("role", role(a.role).into(), role(b.role).into());
        }
        if a.endpoint != b.endpoint {
            let shown = |e: &Option<super::Endpoint>| {
                e.as_ref()
                    .map_or_else(|| "none".to_owned(), |e| e.to_string())
            };
            self.push("endpoint", shown(&a.endpoint), shown(&b.endpoint));
        }
        self.cas(&a.ca_certs, &b.ca_certs);
        self.signing_keys(&a.signing_keys, &b.signing_keys);
        self.governance_keys(&a.governance_keys, &b.governance_keys);
        self.oprf_keys(&a.oprf_keys, &b.oprf_keys);
    }

    /// OPRF keys are compared by value: a new key under an old epoch is
    /// the old key retired and a new one added.
    fn oprf_keys(&mut self, before: &[OprfKey], after: &[OprfKey]) {
        let (removed, added) = removed_added(before, after);
        let describe = |k: &OprfKey| {
            format!(
                "epoch {} (public key {})",
                k.epoch,
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, k.key)
            )
        };
        for k in removed {
            self.push("oprf_key_retired", describe(k), String::new());
        }
        for k in added {
            self.push("oprf_key_added", String::new(), describe(k));
        }
    }

    fn cas(&mut self, before: &[CertificateDer<'static>], after: &[CertificateDer<'static>]) {
        let (removed, added) = removed_added(before, after);
        for ca in removed {
            self.push("ca_removed", describe_ca(ca), String::new());
        }
        for ca in added {
            self.push("ca_added", String::new(), describe_ca(ca));
        }
    }

    /// Keys are compared by id: a new public key under an old id is the
    /// old key retired and a new one added.
    fn signing_keys(&mut self, before: &[RosterKey], after: &[RosterKey]) {
        let by_id = |keys: &[RosterKey]| -> BTreeMap<String, RosterKey> {
            keys.iter().map(|k| (k.key_id.clone(), k.clone())).collect()
        };
        let (before, after) = (by_id(before), by_id(after));
        let ids: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        for id in ids {
            match (before.get(id), after.get(id)) {
                (Some(a), Some(b)) if a.public_key != b.public_key => {
                    self.push("signing_key_retired", describe_key(a), String::new());
                    self.push("signing_key_added", String::new(), describe_key(b));
                }
                (Some(a), Some(b)) => {
                    if (a.valid_from_ms, a.valid_until_ms) != (b.valid_from_ms, b.valid_until_ms) {
                        self.push(
                            "signing_key_validity",
                            format!("{} {}", a.key_id, validity(a)),
                            format!("{} {}", b.key_id, validity(b)),
                        );
                    }
                }
                (Some(a), None) => {
                    self.push("signing_key_retired", describe_key(a), String::new());
                }
                (None, Some(b)) => {
                    self.push("signing_key_added", String::new(), describe_key(b));
                }
                (None, None) => {}
            }
        }
    }

    fn governance_keys(&mut self, before: &[GovernanceKey], after: &[GovernanceKey]) {
        let (removed, added) = removed_added(before, after);
        let describe = |k: &GovernanceKey| {
            format!(
                "{} (public key {})",
                key_name(k),
                crypto::encode_public_key(k)
            )
        };
        for k in removed {
            self.push("governance_key_retired", describe(k), String::new());
        }
        for k in added {
            self.push("governance_key_added", String::new(), describe(k));
        }
    }
}

/// The items of `before` missing from `after`, and those of `after` missing
/// from `before`, each once, in list order.
fn removed_added<'a, T: PartialEq>(before: &'a [T], after: &'a [T]) -> (Vec<&'a T>, Vec<&'a T>) {
    let missing = |from: &'a [T], other: &'a [T]| {
        let mut out: Vec<&T> = Vec::new();
        for item in from {
            if !other.contains(item) && !out.contains(&item) {
                out.push(item);
            }
        }
        out
    };
    (missing(before, after), missing(after, before))
}

fn role(role: Role) -> &'static str {
    match role {
        Role::Member => "member",
        Role::Observer => "observer",
    }
}

/// `cr (Costa Rica, CR, member) at cr.example:7443`
fn describe_member(m: &Member) -> String {
    let at = m
        .endpoint
        .as_ref()
        .map_or_else(|| ", no endpoint".to_owned(), |e| format!(" at {e}"));
    format!("{} ({}, {}, {}){at}", m.id, m.name, m.country, role(m.role))
}

/// `SHA-256 0123456789abcdef…, subject CN=…`: the first 16 hex digits of
/// the SHA-256 of the DER, and the subject when the certificate parses
/// (it always does in a validated roster).
fn describe_ca(ca: &CertificateDer<'_>) -> String {
    let hash = super::sha256(ca.as_ref());
    let short = ::hex::encode(hash.get(..8).unwrap_or(&hash));
    match x509_parser::parse_x509_certificate(ca.as_ref()) {
        Ok((_, cert)) => format!("SHA-256 {short}…, subject {}", cert.subject()),
        Err(_) => format!("SHA-256 {short}…"),
    }
}

/// `cr-2026 (public key <base64>, valid from … until …)`: the public key in
/// the base64 a member hands over in its `[[members.signing_keys]]`.
fn describe_key(k: &RosterKey) -> String {
    format!(
        "{} (public key {}, {})",
        k.key_id,
        crypto::encode_public_key(&k.public_key),
        validity(k)
    )
}

fn validity(k: &RosterKey) -> String {
    match (k.valid_from_ms, k.valid_until_ms) {
        (None, None) => "valid without limit".to_owned(),
        (Some(from), None) => format!("valid from {}", rfc3339(from)),
        (None, Some(until)) => format!("valid until {}", rfc3339(until)),
        (Some(from), Some(until)) => {
            format!("valid from {} until {}", rfc3339(from), rfc3339(until))
        }
    }
}

/// A time in ms since the Unix epoch as RFC 3339 UTC.
fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{ms} ms after the Unix epoch"))
}

#[cfg(test)]
#[path = "diff_tests.rs"]
mod tests;
