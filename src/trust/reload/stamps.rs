//! Which files a reload watches and how it tells that one changed: each
//! file the configuration was read from, stamped with its role and the
//! digest of its content. Its own file because it is the reload's trigger
//! and its report of what changed; the rest of the reload builds and
//! swaps the configurations.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::trust::load::LoadedSettings;

/// A watched file: its role in the configuration and its content digest
/// (`None` when it cannot be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stamp {
    role: String,
    pub(super) digest: Option<Vec<u8>>,
}

pub(super) type Stamps = BTreeMap<PathBuf, Stamp>;

/// The digest of a file's content; of a directory, of the names and
/// contents of its `*.roster` files (a chain directory).
fn digest(path: &Path) -> Option<Vec<u8>> {
    let bytes = if path.is_dir() {
        let mut names: Vec<PathBuf> = std::fs::read_dir(path)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "roster"))
            .collect();
        names.sort();
        let mut all = Vec::new();
        for n in names {
            all.extend_from_slice(n.as_os_str().as_encoded_bytes());
            all.extend_from_slice(&std::fs::read(&n).ok()?);
        }
        all
    } else {
        std::fs::read(path).ok()?
    };
    Some(
        ring::digest::digest(&ring::digest::SHA256, &bytes)
            .as_ref()
            .to_vec(),
    )
}

/// Every file the TLS configuration of `settings` was read from.
pub(super) fn watched(settings: &LoadedSettings) -> Vec<(String, PathBuf)> {
    let f = &settings.tls_files;
    let mut out = vec![
        ("config".to_owned(), settings.path.clone()),
        ("federation.chain".to_owned(), f.chain.clone()),
        (
            "adopted roster chain".to_owned(),
            crate::trust::chain::dir::adopted_dir(&settings.data_dir),
        ),
    ];
    for m in settings.roster.members() {
        for ca in &m.ca_files {
            out.push((format!("roster CA of {}", m.id), ca.clone()));
        }
    }
    out.push(("tls.cert".into(), f.cert.clone()));
    out.push(("tls.key".into(), f.key.clone()));
    out.push(("tls.agency_client_ca".into(), f.agency_client_ca.clone()));
    for p in &f.peer_crls {
        out.push(("tls.peer_crls".into(), p.clone()));
    }
    for p in &f.agency_client_crls {
        out.push(("tls.agency_client_crls".into(), p.clone()));
    }
    out
}

pub(super) fn stamp(files: &[(String, PathBuf)]) -> Stamps {
    files
        .iter()
        .map(|(role, path)| stamped(role, path))
        .collect()
}

/// Fresh stamps of the same files as `stamps`.
pub(super) fn restamp(stamps: &Stamps) -> Stamps {
    stamps
        .iter()
        .map(|(path, s)| stamped(&s.role, path))
        .collect()
}

/// The file at `path`, in its `role`, as it reads now.
fn stamped(role: &str, path: &Path) -> (PathBuf, Stamp) {
    (
        path.to_path_buf(),
        Stamp {
            role: role.to_owned(),
            digest: digest(path),
        },
    )
}

pub(super) fn differences(old: &Stamps, new: &Stamps) -> Vec<String> {
    let mut out = Vec::new();
    for (path, s) in new {
        if old.get(path).is_none_or(|o| o.digest != s.digest) {
            out.push(format!("{} {}", s.role, path.display()));
        }
    }
    for (path, s) in old {
        if !new.contains_key(path) {
            out.push(format!("{} {} (no longer used)", s.role, path.display()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_changed_added_and_removed_files() {
        let s = |role: &str, d: Option<u8>| Stamp {
            role: role.into(),
            digest: d.map(|b| vec![b]),
        };
        let old: Stamps = [
            (PathBuf::from("a.crt"), s("tls.cert", Some(1))),
            (PathBuf::from("old.crl"), s("tls.peer_crls", Some(2))),
            (PathBuf::from("k"), s("tls.key", Some(3))),
        ]
        .into();
        let new: Stamps = [
            (PathBuf::from("a.crt"), s("tls.cert", Some(9))),
            (PathBuf::from("new.crl"), s("tls.peer_crls", Some(2))),
            (PathBuf::from("k"), s("tls.key", Some(3))),
        ]
        .into();
        assert_eq!(
            differences(&old, &new),
            vec![
                "tls.cert a.crt".to_owned(),
                "tls.peer_crls new.crl".to_owned(),
                "tls.peer_crls old.crl (no longer used)".to_owned(),
            ]
        );
        assert!(differences(&new, &new).is_empty());
    }
}
