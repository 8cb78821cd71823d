//! Loading what a configuration names: the roster, the node's certificate
//! and key, the agency CA, the CRLs, the signing and matching keys.
//!
//! [`settings`] reads the configuration file, runs the section checks of
//! [`crate::config::validate`] in the file's order, and loads each file
//! right after the section naming it, with the checks that need it (the
//! node is in the roster, its certificate names it and chains to its
//! roster CA, the signing key is the roster's, each CRL is signed by a CA
//! it covers). Every problem, in the file or in a file it names, lands in
//! one [`ConfigError`]: an operator fixes them in one pass, and the CLI
//! exits with code 64 on it before anything binds. The node starts from
//! this, and the live reload re-runs it whole.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};

use crate::config::validate::Validation;
use crate::config::{self, ConfigError, Settings};
use crate::records::crypto::SigningKey;
use crate::records::model::NodeId;
use crate::records::selector::MatchingKey;
use crate::trust::chain::{self, dir as chain_dir};
use crate::trust::crl;
use crate::trust::roster::{self, Roster};
use crate::trust::tls::{self, TlsIdentity};

/// A validated configuration with everything it names loaded.
///
/// It dereferences to the plain [`Settings`] it was loaded from, so
/// `loaded.node_id` or `loaded.sync` read as on the settings themselves.
#[derive(Debug)]
pub struct LoadedSettings {
    /// What the file says, validated.
    pub config: Settings,
    /// The roster in force: the newest version of the chain that verifies
    /// from version 1 or the anchor (`federation.chain`, with what this
    /// node adopted itself in `<data_dir>/roster/`).
    pub roster: Arc<Roster>,
    /// That chain, as verified, and where a walk past it stopped.
    pub chain: Arc<chain::Walk>,
    /// The node's certificate chain and key (`tls.cert`, `tls.key`).
    pub tls: TlsIdentity,
    /// The agency CA's certificates (`tls.agency_client_ca`).
    pub agency_ca: Vec<CertificateDer<'static>>,
    /// CRLs of roster CAs, checked on the peer listener and outgoing
    /// connections; each verified as signed by a roster CA.
    pub peer_crls: Vec<CertificateRevocationListDer<'static>>,
    /// CRLs of the agency CA, checked on the agency listener.
    pub agency_crls: Vec<CertificateRevocationListDer<'static>>,
    /// The record-signing key (`signing.key`), listed for this node in
    /// the roster.
    pub signing: Arc<SigningKey>,
    /// The federation's matching key, if configured.
    pub matching: Option<Arc<MatchingKey>>,
    /// This member's OPRF keys and identifiers key, if configured.
    pub oprf: Option<Arc<crate::records::oprf::KeyRing>>,
}

impl Deref for LoadedSettings {
    type Target = Settings;

    fn deref(&self) -> &Settings {
        &self.config
    }
}

/// Reads `path` and the environment, validates, and loads what it names.
/// `data_dir` (from `--data-dir`) overrides the file.
pub fn settings(path: &Path, data_dir: Option<&Path>) -> Result<LoadedSettings, ConfigError> {
    load(path, data_dir, KeyFiles::Private)
}

/// Whether loading refuses key files that others can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyFiles {
    /// As a node starts: a key file readable by group or others is refused.
    Private,
    /// As `enlace doctor` looks further: it reports the permissions itself.
    AsTheyAre,
}

/// [`settings`] for `enlace doctor` once [`settings`] refused: the same
/// checks except the key files' permissions, which the doctor reports on
/// its own, so that a loose key does not hide every check that needs the
/// loaded configuration (the signing key against the roster, the peers).
/// Never for starting a node.
pub fn settings_despite_key_permissions(
    path: &Path,
    data_dir: Option<&Path>,
) -> Result<LoadedSettings, ConfigError> {
    load(path, data_dir, KeyFiles::AsTheyAre)
}

fn load(
    path: &Path,
    data_dir: Option<&Path>,
    keys: KeyFiles,
) -> Result<LoadedSettings, ConfigError> {
    let raw = config::read(path)?;
    let mut v = Validation::new(path, data_dir);

    let node_id = v.node(&raw.node);
    let data_dir = v.data_dir().map(Path::to_owned);
    let walk = v.federation(&raw.federation).and_then(|(dir, anchor)| {
        match chain_of(&dir, data_dir.as_deref(), anchor.as_ref()) {
            Ok(walk) => Some(walk),
            Err(problems) => {
                for problem in problems {
                    v.problem(format!("federation.chain ({}): {problem}", dir.display()));
                }
                None
            }
        }
    });
    let roster = walk
        .as_ref()
        .map(|w| w.head().version.roster.as_ref().clone());
    if let (Some(roster), Some(id)) = (&roster, &node_id)
        && roster.member(id).is_none()
    {
        v.problem(format!(
            "node.id: {id} is not a member of roster version {} ({})",
            roster.position.version,
            roster.path.display()
        ));
    }

    v.listen(&raw.listen, &raw.metrics);

    let tls = v.tls_identity(&raw.tls).and_then(|(cert, key)| {
        match match keys {
            KeyFiles::Private => TlsIdentity::load(&cert, &key),
            KeyFiles::AsTheyAre => TlsIdentity::read(&cert, &key),
        } {
            Ok(t) => Some(t),
            Err(e) => {
                v.problem(format!("tls: {e}"));
                None
            }
        }
    });
    if let (Some(tls), Some(roster), Some(id)) = (&tls, &roster, &node_id)
        && roster.member(id).is_some()
    {
        check_own_certificate(tls, roster, id, &mut v);
    }

    let agency_ca = v
        .agency_client_ca(&raw.tls)
        .and_then(|p| match roster::load_ca_certs(&p) {
            Ok(c) => Some(c),
            Err(e) => {
                v.problem(format!("tls.agency_client_ca: {e}"));
                None
            }
        });
    if let (Some(agency), Some(roster)) = (&agency_ca, &roster) {
        for problem in agency_ca_overlaps(agency, roster) {
            v.problem(problem);
        }
    }

    let roster_cas: Vec<CertificateDer<'static>> = roster
        .iter()
        .flat_map(|r| r.members().flat_map(|m| m.ca_certs.iter().cloned()))
        .collect();
    let (peer_crl_files, agency_crl_files) = v.crls(&raw.tls);
    let peer_crls = load_crls(
        "tls.peer_crls",
        &peer_crl_files,
        roster.as_ref().map(|_| roster_cas.as_slice()),
        &mut v,
    );
    let agency_crls = load_crls(
        "tls.agency_client_crls",
        &agency_crl_files,
        agency_ca.as_deref(),
        &mut v,
    );

    v.reload(&raw.reload);

    let (signing_file, key_id) = v.signing(&raw.signing);
    let signing = signing_file.and_then(|p| {
        match match keys {
            KeyFiles::Private => SigningKey::load(&p, &key_id),
            KeyFiles::AsTheyAre => SigningKey::read(&p, &key_id),
        } {
            Ok(k) => Some(k),
            Err(e) => {
                v.problem(format!("signing.key: {e}"));
                None
            }
        }
    });
    if let (Some(signing), Some(roster), Some(id)) = (&signing, &roster, &node_id)
        && !key_id.is_empty()
    {
        match roster.signing_key(&key_id) {
            None => v.problem(format!(
                "signing.key_id: {key_id:?} is not listed in the roster"
            )),
            Some((member, _)) if member.id != *id => v.problem(format!(
                "signing.key_id: {key_id:?} belongs to member {}, not to {id}",
                member.id
            )),
            Some((_, k)) if k.public_key.as_slice() != signing.public_key() => v.problem(format!(
                "signing.key: its public key does not match the roster's key {key_id:?}"
            )),
            Some(_) => {}
        }
    }

    let in_roster = |id: &NodeId| roster.as_ref().is_some_and(|r| r.member(id).is_some());
    v.sync(
        &raw.sync,
        roster
            .as_ref()
            .map(|_| &in_roster as &dyn Fn(&NodeId) -> bool),
    );

    let matching = v.matching(raw.matching.as_ref()).and_then(|m| {
        match match keys {
            KeyFiles::Private => MatchingKey::load(&m.path, m.epoch),
            KeyFiles::AsTheyAre => MatchingKey::read(&m.path, m.epoch),
        } {
            Ok(k) => Some(Arc::new(k)),
            Err(e) => {
                v.problem(format!("matching.key: {e}"));
                None
            }
        }
    });

    let oprf = v
        .oprf(raw.oprf.as_ref())
        .and_then(|files| load_oprf(&files, keys, roster.as_ref(), node_id.as_ref(), &mut v));

    v.plain_sections(&raw);
    let config = v.finish()?;
    match (roster, walk, tls, agency_ca, signing) {
        (Some(roster), Some(walk), Some(tls), Some(agency_ca), Some(signing)) => {
            Ok(LoadedSettings {
                config,
                roster: Arc::new(roster),
                chain: Arc::new(walk),
                tls,
                agency_ca,
                peer_crls,
                agency_crls,
                signing: Arc::new(signing),
                matching,
                oprf,
            })
        }
        _ => Err(ConfigError {
            path: path.to_owned(),
            problems: vec!["incomplete configuration".into()],
        }),
    }
}

/// Loads `[oprf]`: each key file (distinct epochs, and the public key of
/// an epoch the roster lists for this node must be the roster's) and the
/// identifiers key. A key the roster does not list yet is loaded: it is
/// the next epoch's, waiting for its roster version.
fn load_oprf(
    files: &crate::config::OprfFiles,
    keys: KeyFiles,
    roster: Option<&Roster>,
    id: Option<&NodeId>,
    v: &mut Validation<'_>,
) -> Option<Arc<crate::records::oprf::KeyRing>> {
    use crate::records::oprf::{KeyRing, SecretKey};
    use crate::records::sealed::LocalKey;
    let me = roster.zip(id).and_then(|(r, id)| r.member(id));
    let mut loaded: Vec<SecretKey> = Vec::new();
    let mut complete = true;
    for (i, path) in files.keys.iter().enumerate() {
        let key = match keys {
            KeyFiles::Private => SecretKey::load(path),
            KeyFiles::AsTheyAre => SecretKey::read(path),
        };
        match key {
            Err(e) => {
                v.problem(format!("oprf.keys[{i}]: {e}"));
                complete = false;
            }
            Ok(k) if loaded.iter().any(|o| o.epoch() == k.epoch()) => {
                v.problem(format!(
                    "oprf.keys[{i}]: epoch {} is already the epoch of another key file; one key per epoch",
                    k.epoch()
                ));
                complete = false;
            }
            Ok(k) => {
                if let Some(listed) = me.and_then(|m| m.oprf_key(k.epoch()))
                    && *listed != k.public()
                {
                    v.problem(format!(
                        "oprf.keys[{i}]: its public key does not match the roster's OPRF key of epoch {} for this node",
                        k.epoch()
                    ));
                    complete = false;
                }
                loaded.push(k);
            }
        }
    }
    let local = match keys {
        KeyFiles::Private => LocalKey::load(&files.identifiers_key),
        KeyFiles::AsTheyAre => LocalKey::read(&files.identifiers_key),
    };
    let local = match local {
        Ok(l) => l,
        Err(e) => {
            v.problem(format!("oprf.identifiers_key: {e}"));
            return None;
        }
    };
    complete.then(|| Arc::new(KeyRing::new(loaded, local)))
}

/// Loads the CRL files of `field`, each of which must be signed by one of
/// `cas` (`None` when those CAs did not load: then only parsing is checked).
/// Only one CRL per CA is allowed, since WebPKI consults the first CRL of
/// an issuer and would silently ignore a second.
fn load_crls(
    field: &str,
    files: &[PathBuf],
    cas: Option<&[CertificateDer<'static>]>,
    v: &mut Validation<'_>,
) -> Vec<CertificateRevocationListDer<'static>> {
    let mut out = Vec::new();
    let mut issuers: Vec<(Vec<u8>, String)> = Vec::new();
    for (i, path) in files.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let crls = match crl::load(path) {
            Ok(c) => c,
            Err(e) => {
                v.problem(format!("{at}: {e}"));
                continue;
            }
        };
        for (j, crl) in crls.into_iter().enumerate() {
            let what = format!("{} (CRL {})", path.display(), j + 1);
            if let Some(cas) = cas
                && let Err(e) = crl::signer(&crl, cas, &what)
            {
                v.problem(format!("{at}: {e}"));
                continue;
            }
            if let Ok(info) = crl::CrlInfo::parse(&crl) {
                if let Some((_, first)) = issuers.iter().find(|(raw, _)| *raw == info.issuer_raw) {
                    v.problem(format!(
                        "{at}: {what} is a second CRL from {:?} (the first is {first}); keep only the newest, since only one CRL per CA is consulted",
                        info.issuer
                    ));
                    continue;
                }
                issuers.push((info.issuer_raw, what));
            }
            out.push(crl);
        }
    }
    out
}

/// The node's own certificate must name it and chain to its roster CA, or
/// every peer will refuse it: better to say so before binding.
fn check_own_certificate(tls: &TlsIdentity, roster: &Roster, id: &NodeId, v: &mut Validation<'_>) {
    let Some(leaf) = tls.chain.first() else {
        return;
    };
    match tls::node_id_from_cert(leaf, &roster.federation) {
        Ok(found) if found == *id => {}
        Ok(found) => v.problem(format!(
            "tls.cert: names node {found}, but this node is {id}"
        )),
        Err(e) => v.problem(format!("tls.cert: {e}")),
    }
    match tls::RosterClientVerifier::new(roster, &tls::provider()) {
        Ok(verifier) => {
            use rustls::server::danger::ClientCertVerifier;
            let now = rustls_pki_types::UnixTime::now();
            if let Err(e) = verifier.verify_client_cert(leaf, &tls.chain[1..], now) {
                v.problem(format!(
                    "tls.cert: is not accepted under the roster's CAs for {id}: {e}"
                ));
            }
        }
        Err(e) => v.problem(format!("federation.roster: {e}")),
    }
    if let Err(e) = tls::peer_server_config(roster, tls) {
        v.problem(format!("tls.key: does not fit tls.cert: {e}"));
    }
}

/// Why the agency CA is one of the roster's federation CAs, if it is.
///
/// NOTE: a CA is compared by its public key, not by its bytes: a copy of a
/// federation CA re-issued with the same key (new serial, new validity)
/// differs in every byte and still verifies every certificate that CA
/// signed, so every node certificate of that member would pass as an
/// agency client.
fn agency_ca_overlaps(agency: &[CertificateDer<'static>], roster: &Roster) -> Vec<String> {
    let identity = |c: &CertificateDer<'_>| {
        x509_parser::parse_x509_certificate(c)
            .ok()
            .map(|(_, p)| (p.public_key().raw.to_vec(), p.subject().to_string()))
    };
    let mut problems = Vec::new();
    for a in agency.iter().filter_map(identity) {
        for m in roster.members() {
            for f in m.ca_certs.iter().filter_map(identity) {
                if a.0 == f.0 {
                    problems.push(format!(
                        "tls.agency_client_ca: the CA {:?} has the public key of the federation CA {:?} of member {} in the roster; the agency CA must be a local CA of its own, with its own key, or any node certificate that CA issued could act as an agency client",
                        a.1, f.1, m.id
                    ));
                }
            }
        }
    }
    problems
}

/// The chain a node stands on: the versions in the operator's directory
/// and in its own (`<data_dir>/roster/`), pooled and verified from
/// version 1 or `anchor`. A version that does not follow stops the walk
/// and is reported, except a conflict (two versions of one number, each
/// approved by a threshold), which halts on the version before it and is
/// logged as an ERROR by whoever installs the roster: the node keeps
/// working on what it can verify.
pub fn chain_of(
    operator: &Path,
    data_dir: Option<&Path>,
    anchor: Option<&[u8; 32]>,
) -> Result<chain::Walk, Vec<String>> {
    if !operator.is_dir() {
        return Err(vec![format!(
            "is not a directory; it holds the signed roster versions, <version>.roster"
        )]);
    }
    let mut problems = Vec::new();
    let mut versions = Vec::new();
    let own = data_dir.map(chain_dir::adopted_dir);
    for dir in std::iter::once(operator.to_owned()).chain(own) {
        match chain_dir::read(&dir) {
            Ok(found) => versions.extend(found.into_iter().map(|(_, s)| s)),
            Err(p) => problems.extend(p),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let walk = chain::verify_chain(versions, anchor).map_err(|(at, refusal)| {
        vec![format!(
            "cannot start the chain at version {at}: {refusal}{}",
            match anchor {
                Some(_) => "",
                None => " (version 1 must carry approvals from a threshold of its own members; or set federation.anchor)",
            }
        )]
    })?;
    if let Some((at, refusal)) = &walk.stopped
        && !matches!(refusal, chain::Refusal::Conflict { .. })
    {
        return Err(vec![format!(
            "version {at} does not follow version {}: {refusal}; remove the file or obtain the missing versions or approvals",
            walk.head().version.number()
        )]);
    }
    Ok(walk)
}
