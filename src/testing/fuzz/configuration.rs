//! The `roster` and `config` targets: the federation file and the node's
//! configuration file, as an operator hands them over. Its own file, as
//! each target is: see [`super`] for what every target asserts and the
//! fixtures they share.

use std::path::Path;

use super::fixture;
use crate::audit::checkpoint::KeyBook;
use crate::trust::chain;
use crate::trust::roster::{Roster, RosterSource};

/// A roster source (TOML, its relative paths resolved in
/// `certs-example/`), or the bytes of a signed roster version.
pub fn roster(data: &[u8]) {
    let fx = fixture();
    signed_roster(data, &fx.roster);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // NOTE: the roster reads the CA files it names. Only names inside the
    // example directory are let through, so that the fuzzer cannot make it
    // read a device or a file outside the tree.
    if !ca_paths_stay_inside(text) {
        return;
    }
    let compiled = RosterSource::parse(text, &fx.dir, &fx.dir.join("fuzz.toml"))
        .and_then(|s| s.compile(1, None, crate::clock::now_ms()));
    match compiled {
        Ok((bytes, r)) => {
            let again = Roster::from_version(&bytes).expect("a compiled source is a valid version");
            assert_eq!(again.position.hash, r.position.hash);
            assert!(!r.federation.is_empty());
            let mut keys = 0;
            for m in r.members() {
                assert!(!m.ca_certs.is_empty(), "member {} without a CA", m.id);
                for k in &m.signing_keys {
                    keys += 1;
                    let (owner, found) = r.signing_key(&k.key_id).expect("a key is indexed");
                    assert_eq!(owner.id, m.id);
                    assert_eq!(found.public_key, k.public_key);
                }
            }
            assert_eq!(KeyBook::from_roster(&r).0.len(), keys);
        }
        Err(e) => assert!(!e.problems.is_empty(), "a refusal names no problem"),
    }
}

/// A `SignedRoster` offered as the successor of the example's version:
/// it decodes and is refused with a reason, or it verifies, and either
/// way nothing panics.
fn signed_roster(data: &[u8], current: &Roster) {
    let Ok(signed) = chain::Signed::decode(data) else {
        return;
    };
    match chain::verify_successor(current, &signed, Some(crate::clock::now_ms())) {
        Ok(tally) => {
            assert!(tally.current.len() >= current.position.threshold as usize);
            assert_eq!(signed.version.number(), current.position.version + 1);
        }
        Err(r) => assert!(!r.reason().is_empty()),
    }
}

/// Whether every `ca` entry of a roster text is a relative path without
/// `..` (true when the text does not parse: then nothing is read).
fn ca_paths_stay_inside(text: &str) -> bool {
    let Ok(table) = text.parse::<toml::Table>() else {
        return true;
    };
    let Some(members) = table.get("members").and_then(|m| m.as_array()) else {
        return true;
    };
    members
        .iter()
        .filter_map(|m| m.get("ca").and_then(|c| c.as_array()))
        .flatten()
        .all(|ca| {
            ca.as_str().is_some_and(|p| {
                let p = Path::new(p);
                p.is_relative()
                    && p.components()
                        .all(|c| matches!(c, std::path::Component::Normal(_)))
            })
        })
}

/// A node configuration (`node.toml`), read as if from
/// `/etc/enlace/node.toml` and validated whole. Nothing it names is read.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/etc/enlace/node.toml");
    let raw = match crate::config::parse(text, path) {
        Ok(raw) => raw,
        Err(e) => {
            assert!(!e.problems.is_empty(), "a refusal names no problem");
            return;
        }
    };
    match crate::config::validate::settings(&raw, path, None) {
        Ok(s) => {
            assert_eq!(s.path, path);
            assert!(s.tls_files.chain.is_absolute());
        }
        Err(e) => assert!(!e.problems.is_empty(), "a refusal names no problem"),
    }
}
