use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use super::*;
use crate::records::crypto::SigningKey;
use crate::trust::pki;
use crate::trust::roster::RosterSource;

/// CA files and keys on disk, and roster sources compiled from them
/// through the crate's own path (TOML → `RosterVersion` bytes →
/// [`Roster::from_version`]).
struct Fed {
    dir: tempfile::TempDir,
    /// key label → base64 public key
    keys: BTreeMap<String, String>,
}

/// One `[[members]]` entry of a test source.
#[derive(Clone)]
struct M {
    id: &'static str,
    name: String,
    country: String,
    role: &'static str,
    endpoint: Option<String>,
    /// CA file stems (`<stem>.crt`).
    ca: Vec<&'static str>,
    /// (key id, key label, valid_from, valid_until)
    signing: Vec<(String, String, Option<&'static str>, Option<&'static str>)>,
    /// key labels
    governance: Vec<String>,
    /// OPRF key labels (`<id>-o<epoch>`) and their epochs
    oprf: Vec<(String, u32)>,
}

fn m(id: &'static str) -> M {
    M {
        id,
        name: format!("Member {id}"),
        country: id.to_uppercase(),
        role: "member",
        endpoint: Some(format!("{id}.example:7443")),
        ca: vec![id],
        signing: vec![(format!("{id}-2026"), format!("{id}-s1"), None, None)],
        governance: vec![format!("{id}-g1")],
        oprf: vec![(format!("{id}-o1"), 1)],
    }
}

/// A version's content: the threshold, when it expires, its members.
struct V {
    threshold: Option<u32>,
    expires: &'static str,
    members: Vec<M>,
}

fn v(members: Vec<M>) -> V {
    V {
        threshold: None,
        expires: "2036-01-01T00:00:00Z",
        members,
    }
}

impl Fed {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for stem in ["gt", "sv", "hn", "cr", "hn-next"] {
            let ca = pki::new_ca(&format!("{stem} CA"), None, 30).unwrap();
            std::fs::write(dir.path().join(format!("{stem}.crt")), ca.cert_pem).unwrap();
        }
        let mut keys = BTreeMap::new();
        for id in ["gt", "sv", "hn", "cr"] {
            for label in ["s1", "s2", "g1", "g2"] {
                let (key, _) = SigningKey::generate("k").unwrap();
                keys.insert(
                    format!("{id}-{label}"),
                    crypto::encode_public_key(key.public_key()),
                );
            }
            for (label, epoch) in [("o1", 1), ("o1b", 1), ("o2", 2)] {
                let (key, _) = crate::records::oprf::SecretKey::generate(epoch).unwrap();
                keys.insert(
                    format!("{id}-{label}"),
                    base64::Engine::encode(
                        &base64::engine::general_purpose::STANDARD,
                        key.public().key,
                    ),
                );
            }
        }
        Self { dir, keys }
    }

    fn toml(&self, v: &V) -> String {
        let mut t = format!("federation = \"diff-test\"\nexpires = \"{}\"\n", v.expires);
        if let Some(n) = v.threshold {
            let _ = writeln!(t, "threshold = {n}");
        }
        for m in &v.members {
            let _ = write!(
                t,
                "\n[[members]]\nid = \"{}\"\nname = \"{}\"\ncountry = \"{}\"\nrole = \"{}\"\n",
                m.id, m.name, m.country, m.role
            );
            if let Some(e) = &m.endpoint {
                let _ = writeln!(t, "endpoint = \"{e}\"");
            }
            let ca: Vec<String> = m.ca.iter().map(|s| format!("\"{s}.crt\"")).collect();
            let _ = writeln!(t, "ca = [{}]", ca.join(", "));
            let gov: Vec<String> = m
                .governance
                .iter()
                .map(|l| format!("\"{}\"", self.keys[l]))
                .collect();
            let _ = writeln!(t, "governance_keys = [{}]", gov.join(", "));
            for (key_id, label, from, until) in &m.signing {
                let _ = write!(
                    t,
                    "[[members.signing_keys]]\nkey_id = \"{key_id}\"\npublic_key = \"{}\"\n",
                    self.keys[label]
                );
                if let Some(from) = from {
                    let _ = writeln!(t, "valid_from = \"{from}\"");
                }
                if let Some(until) = until {
                    let _ = writeln!(t, "valid_until = \"{until}\"");
                }
            }
            for (label, epoch) in &m.oprf {
                let _ = write!(
                    t,
                    "[[members.oprf_keys]]\nepoch = {epoch}\npublic_key = \"{}\"\n",
                    self.keys[label]
                );
            }
        }
        t
    }

    /// Compiles version 1 from `current` and version 2 after it from
    /// `next`, and returns what version 2 changes.
    fn diff(&self, current: &V, next: &V) -> Vec<Change> {
        let compile = |v: &V, n: u64, previous: Option<[u8; 32]>| {
            RosterSource::parse(&self.toml(v), self.dir.path(), Path::new("federation.toml"))
                .unwrap()
                .compile(n, previous, crate::clock::now_ms())
                .unwrap()
                .1
        };
        let first = compile(current, 1, None);
        let second = compile(next, 2, Some(first.position.hash));
        diff(&first, &second)
    }
}

fn base() -> Vec<M> {
    vec![m("gt"), m("sv"), m("hn")]
}

/// The one change labelled `what`, and what else there was if not one.
fn only<'a>(changes: &'a [Change], what: &str) -> &'a Change {
    let found: Vec<&Change> = changes.iter().filter(|c| c.what == what).collect();
    assert_eq!(found.len(), 1, "one {what} expected in {changes:#?}");
    found[0]
}

fn lines(changes: &[Change]) -> Vec<String> {
    changes.iter().map(|c| c.to_string()).collect()
}

#[test]
fn identical_content_gives_an_empty_diff_whatever_the_order() {
    let fed = Fed::new();
    let mut gt = m("gt");
    gt.signing
        .push(("gt-2027".into(), "gt-s2".into(), None, None));
    gt.governance.push("gt-g2".into());
    gt.ca.push("hn-next");
    let current = v(vec![gt.clone(), m("sv"), m("hn")]);
    assert_eq!(fed.diff(&current, &current), vec![]);
    // The same trust listed in another order is no change either.
    gt.signing.reverse();
    gt.governance.reverse();
    gt.ca.reverse();
    let reordered = v(vec![m("hn"), gt, m("sv")]);
    assert_eq!(fed.diff(&current, &reordered), vec![]);
}

#[test]
fn threshold_and_expiry_come_first_then_members_by_id() {
    let fed = Fed::new();
    let current = V {
        threshold: Some(2),
        ..v(base())
    };
    let mut members = base();
    // Changed in reverse id order, to see the output sorted.
    members[1].name = "El Salvador".into();
    members[0].name = "Guatemala".into();
    let next = V {
        threshold: Some(3),
        expires: "2037-06-01T12:00:00Z",
        members,
    };
    let changes = fed.diff(&current, &next);
    let what: Vec<(Option<&str>, &str)> = changes
        .iter()
        .map(|c| (c.member.as_deref(), c.what))
        .collect();
    assert_eq!(
        what,
        [
            (None, "threshold"),
            (None, "expires"),
            (Some("gt"), "name"),
            (Some("sv"), "name"),
        ]
    );
    let lines = lines(&changes);
    assert_eq!(lines[0], "threshold: 2 -> 3");
    assert_eq!(
        lines[1],
        "expires: 2036-01-01T00:00:00Z -> 2037-06-01T12:00:00Z"
    );
    assert_eq!(lines[2], "gt: name: \"Member gt\" -> \"Guatemala\"");
}

#[test]
fn an_added_member_is_listed_once_with_its_trust_material() {
    let fed = Fed::new();
    let mut cr = m("cr");
    cr.name = "Costa Rica".into();
    let mut members = base();
    members.push(cr);
    // The default threshold follows the number of voting members.
    let current = V {
        threshold: Some(3),
        ..v(base())
    };
    let next = V {
        threshold: Some(3),
        ..v(members)
    };
    let changes = fed.diff(&current, &next);
    assert!(
        changes.iter().all(|c| c.member.as_deref() == Some("cr")),
        "{changes:#?}"
    );
    assert_eq!(changes[0].what, "member_added", "{changes:#?}");
    let what: Vec<&str> = changes.iter().map(|c| c.what).collect();
    assert_eq!(
        what,
        [
            "member_added",
            "ca_added",
            "signing_key_added",
            "governance_key_added",
            "oprf_key_added"
        ]
    );
    let lines = lines(&changes);
    assert_eq!(
        lines[0],
        "+ member cr (Costa Rica, CR, member) at cr.example:7443"
    );
    assert!(
        lines[1].starts_with("cr: CA added: SHA-256 "),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains("CN=cr CA"), "{}", lines[1]);
    assert!(
        lines[2].starts_with("cr: signing key added: cr-2026 (public key "),
        "{}",
        lines[2]
    );
    assert!(lines[2].contains(&fed.keys["cr-s1"]), "{}", lines[2]);
    assert!(lines[3].contains(&fed.keys["cr-g1"]), "{}", lines[3]);
}

#[test]
fn a_removed_member_is_listed_once() {
    let fed = Fed::new();
    let members = vec![m("gt"), m("hn")];
    let changes = fed.diff(&v(base()), &v(members));
    assert_eq!(changes.len(), 1, "{changes:#?}");
    assert_eq!(changes[0].member.as_deref(), Some("sv"));
    assert_eq!(changes[0].what, "member_removed");
    assert_eq!(
        changes[0].to_string(),
        "- member sv (Member sv, SV, member) at sv.example:7443"
    );
}

#[test]
fn name_country_role_and_endpoint_changes_name_the_member() {
    let fed = Fed::new();
    let current = V {
        threshold: Some(2),
        ..v(base())
    };
    let mut members = base();
    members[0].endpoint = Some("gt2.example:7443".into());
    members[0].country = "MX".into();
    members[1].endpoint = None;
    // An observer holds no governance key, nor an OPRF key.
    members[2].role = "observer";
    members[2].governance.clear();
    members[2].oprf.clear();
    let next = V {
        threshold: Some(2),
        ..v(members)
    };
    let changes = fed.diff(&current, &next);

    let endpoints: Vec<String> = changes
        .iter()
        .filter(|c| c.what == "endpoint")
        .map(|c| c.to_string())
        .collect();
    assert_eq!(
        endpoints,
        [
            "gt: endpoint: gt.example:7443 -> gt2.example:7443",
            "sv: endpoint: sv.example:7443 -> none",
        ]
    );
    let country = only(&changes, "country");
    assert_eq!(country.member.as_deref(), Some("gt"));
    assert_eq!(country.to_string(), "gt: country: GT -> MX");
    let role = only(&changes, "role");
    assert_eq!(role.member.as_deref(), Some("hn"));
    assert_eq!(role.to_string(), "hn: role: member -> observer");
    let retired = only(&changes, "governance_key_retired");
    assert_eq!(retired.member.as_deref(), Some("hn"));
    let retired = only(&changes, "oprf_key_retired");
    assert_eq!(retired.member.as_deref(), Some("hn"));
    assert_eq!(changes.len(), 6, "{changes:#?}");
}

#[test]
fn signing_keys_are_compared_by_id() {
    let fed = Fed::new();
    let mut gt = m("gt");
    gt.signing
        .push(("gt-2025".into(), "gt-s2".into(), None, None));
    let current = v(vec![gt, m("sv"), m("hn")]);
    let mut members = base();
    // gt: gt-2025 retired, gt-2027 added.
    members[0]
        .signing
        .push(("gt-2027".into(), "gt-s2".into(), None, None));
    // hn: a new public key under the same id.
    members[2].signing[0].1 = "hn-s2".into();
    // sv: the same key, now with an end.
    members[1].signing[0].3 = Some("2027-01-01T00:00:00Z");
    let changes = fed.diff(&current, &v(members));
    let what: Vec<(&str, &str)> = changes
        .iter()
        .map(|c| (c.member.as_deref().unwrap_or("-"), c.what))
        .collect();
    assert_eq!(
        what,
        [
            ("gt", "signing_key_retired"),
            ("gt", "signing_key_added"),
            ("hn", "signing_key_retired"),
            ("hn", "signing_key_added"),
            ("sv", "signing_key_validity"),
        ]
    );
    let lines = lines(&changes);
    assert!(
        lines[0].starts_with("gt: signing key retired: gt-2025 (public key "),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("gt: signing key added: gt-2027 (public key "),
        "{}",
        lines[1]
    );
    assert!(lines[2].contains(&fed.keys["hn-s1"]), "{}", lines[2]);
    assert!(lines[3].contains(&fed.keys["hn-s2"]), "{}", lines[3]);
    assert_eq!(
        lines[4],
        "sv: signing key validity: sv-2026 valid without limit -> sv-2026 valid until 2027-01-01T00:00:00Z"
    );
}

#[test]
fn governance_keys_are_compared_by_bytes() {
    let fed = Fed::new();
    let mut members = base();
    members[1].governance = vec!["sv-g2".into()];
    let changes = fed.diff(&v(base()), &v(members));
    let what: Vec<&str> = changes.iter().map(|c| c.what).collect();
    assert_eq!(what, ["governance_key_retired", "governance_key_added"]);
    assert!(changes.iter().all(|c| c.member.as_deref() == Some("sv")));
    let (old, new) = (&fed.keys["sv-g1"], &fed.keys["sv-g2"]);
    let name = |b64: &str| key_name(&crypto::decode_public_key(b64).unwrap());
    assert_eq!(
        changes[0].to_string(),
        format!(
            "sv: governance key retired: {} (public key {old})",
            name(old)
        )
    );
    assert_eq!(
        changes[1].to_string(),
        format!("sv: governance key added: {} (public key {new})", name(new))
    );
}

#[test]
fn oprf_keys_are_compared_by_epoch_and_bytes() {
    let fed = Fed::new();
    let mut members = base();
    // sv rotates: epoch 2 added beside epoch 1; hn replaces its epoch 1 key.
    members[1].oprf.push(("sv-o2".into(), 2));
    members[2].oprf = vec![("hn-o1b".into(), 1)];
    let changes = fed.diff(&v(base()), &v(members));
    let lines: Vec<String> = changes.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            format!(
                "hn: OPRF key retired: epoch 1 (public key {})",
                fed.keys["hn-o1"]
            ),
            format!(
                "hn: OPRF key added: epoch 1 (public key {})",
                fed.keys["hn-o1b"]
            ),
            format!(
                "sv: OPRF key added: epoch 2 (public key {})",
                fed.keys["sv-o2"]
            ),
        ]
    );
}

#[test]
fn cas_are_identified_by_hash_and_subject() {
    let fed = Fed::new();
    let mut members = base();
    members[2].ca = vec!["hn-next"];
    let changes = fed.diff(&v(base()), &v(members));
    let what: Vec<&str> = changes.iter().map(|c| c.what).collect();
    assert_eq!(what, ["ca_removed", "ca_added"]);
    assert!(changes.iter().all(|c| c.member.as_deref() == Some("hn")));
    let der = |stem: &str| {
        let pem = std::fs::read(fed.dir.path().join(format!("{stem}.crt"))).unwrap();
        <CertificateDer<'static> as rustls_pki_types::pem::PemObject>::from_pem_slice(&pem).unwrap()
    };
    let short = |stem: &str| ::hex::encode(&super::super::sha256(der(stem).as_ref())[..8]);
    assert_eq!(
        changes[0].to_string(),
        format!("hn: CA removed: SHA-256 {}…, subject CN=hn CA", short("hn"))
    );
    assert_eq!(
        changes[1].to_string(),
        format!(
            "hn: CA added: SHA-256 {}…, subject CN=hn-next CA",
            short("hn-next")
        )
    );
}

#[test]
fn a_change_serializes_with_its_label() {
    let fed = Fed::new();
    let current = V {
        threshold: Some(2),
        ..v(base())
    };
    let next = V {
        threshold: Some(3),
        ..v(base())
    };
    let changes = fed.diff(&current, &next);
    assert_eq!(
        serde_json::to_value(&changes).unwrap(),
        serde_json::json!([
            {"member": null, "what": "threshold", "before": "2", "after": "3"}
        ])
    );
}
