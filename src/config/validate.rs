//! Validating a configuration file without reading anything it names.
//!
//! A [`Validation`] goes through the sections one method at a time, in the
//! order of the file, and collects every problem rather than stopping at
//! the first; [`Validation::finish`] returns the [`Settings`] or one
//! [`ConfigError`] naming them all. [`settings`] runs every section.
//!
//! The trust floor's loader runs the same methods in the same order and
//! loads what each one names between them (adding its own problems with
//! [`Validation::problem`]), so a configuration is reported the same way
//! whether or not its files were read. A check that needs a loaded file
//! takes what it needs as plain data: [`Validation::sync`] asks whether a
//! node id is a roster member through a function, not a roster.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::schema::{
    RawConfig, RawFederation, RawListen, RawMatching, RawMetrics, RawNode, RawOprf, RawReload,
    RawSigning, RawSync, RawTls,
};
use super::{
    AgencyConfig, AuditConfig, ConfigError, Endpoint, HEARTBEAT, KeyFiles, LogFormat,
    MatchingKeyFile, OprfFiles, QueryConfig, RecordsConfig, ReloadConfig, Settings,
    StatisticsConfig, SyncConfig, TlsFiles,
};
use crate::records::model::NodeId;

mod plain;

/// Validates `raw`, read from `path`, without reading the files it names.
/// `data_dir` (from `--data-dir`) overrides `node.data_dir`.
pub fn settings(
    raw: &RawConfig,
    path: &Path,
    data_dir: Option<&Path>,
) -> Result<Settings, ConfigError> {
    let mut v = Validation::new(path, data_dir);
    v.node(&raw.node);
    v.federation(&raw.federation);
    v.listen(&raw.listen, &raw.metrics);
    v.tls_identity(&raw.tls);
    v.agency_client_ca(&raw.tls);
    v.crls(&raw.tls);
    v.reload(&raw.reload);
    v.signing(&raw.signing);
    v.sync(&raw.sync, None);
    v.matching(raw.matching.as_ref());
    v.oprf(raw.oprf.as_ref());
    v.plain_sections(raw);
    v.finish()
}

/// A configuration being validated: the problems found so far and the
/// parts of [`Settings`] already checked.
#[derive(Debug)]
pub struct Validation<'a> {
    path: &'a Path,
    base: PathBuf,
    data_dir_override: Option<&'a Path>,
    problems: Vec<String>,
    node_id: Option<NodeId>,
    chain: Option<PathBuf>,
    anchor: Option<[u8; 32]>,
    peer_listen: Option<SocketAddr>,
    agency_listen: Option<SocketAddr>,
    metrics_listen: Option<SocketAddr>,
    identity: Option<(PathBuf, PathBuf)>,
    agency_client_ca: Option<PathBuf>,
    peer_crls: Vec<PathBuf>,
    agency_client_crls: Vec<PathBuf>,
    reload: ReloadConfig,
    signing: Option<(PathBuf, String)>,
    sync: SyncConfig,
    matching: Option<MatchingKeyFile>,
    oprf: Option<OprfFiles>,
    cache_bytes: u64,
    records: RecordsConfig,
    audit: AuditConfig,
    agency: AgencyConfig,
    query: QueryConfig,
    statistics: StatisticsConfig,
    log_format: LogFormat,
    data_dir: Option<PathBuf>,
}

impl<'a> Validation<'a> {
    /// Starts validating the configuration file at `path`; relative paths
    /// in it resolve against its directory.
    pub fn new(path: &'a Path, data_dir_override: Option<&'a Path>) -> Self {
        Self {
            path,
            base: path.parent().unwrap_or(Path::new(".")).to_owned(),
            data_dir_override,
            problems: Vec::new(),
            node_id: None,
            chain: None,
            anchor: None,
            peer_listen: None,
            agency_listen: None,
            metrics_listen: None,
            identity: None,
            agency_client_ca: None,
            peer_crls: Vec::new(),
            agency_client_crls: Vec::new(),
            reload: ReloadConfig::default(),
            signing: None,
            sync: SyncConfig::default(),
            matching: None,
            oprf: None,
            cache_bytes: super::DEFAULT_CACHE_BYTES,
            records: RecordsConfig::default(),
            audit: AuditConfig::default(),
            agency: AgencyConfig::default(),
            query: QueryConfig::default(),
            statistics: StatisticsConfig::default(),
            log_format: LogFormat::default(),
            data_dir: None,
        }
    }

    /// Records a problem found outside these checks (in a loaded file).
    pub fn problem(&mut self, problem: impl Into<String>) {
        self.problems.push(problem.into());
    }

    fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.base.join(p)
        }
    }

    fn required(&mut self, field: &str, v: &Option<PathBuf>) -> Option<PathBuf> {
        match v {
            Some(p) if !p.as_os_str().is_empty() => Some(self.resolve(p)),
            _ => {
                self.problem(format!("{field}: is required"));
                None
            }
        }
    }

    fn address(&mut self, field: &str, v: &Option<String>) -> Option<SocketAddr> {
        match v.as_deref().map(str::parse::<SocketAddr>) {
            Some(Ok(a)) => Some(a),
            Some(Err(_)) => {
                self.problem(format!(
                    "{field}: {:?} is not an IP address and port such as 127.0.0.1:7101",
                    v.as_deref().unwrap_or_default()
                ));
                None
            }
            None => {
                self.problem(format!("{field}: is required"));
                None
            }
        }
    }

    /// `node.id`; the node id, if valid.
    pub fn node(&mut self, raw: &RawNode) -> Option<NodeId> {
        self.node_id = match raw.id.as_deref().map(NodeId::parse) {
            Some(Ok(id)) => Some(id),
            Some(Err(e)) => {
                self.problem(format!("node.id: {e}"));
                None
            }
            None => {
                self.problem("node.id: is required");
                None
            }
        };
        self.data_dir = match (self.data_dir_override, &raw.data_dir, &self.node_id) {
            (Some(d), _, _) => Some(d.to_owned()),
            (None, Some(d), _) => Some(self.resolve(d)),
            (None, None, Some(id)) => Some(PathBuf::from("data").join(id.as_str())),
            (None, None, None) => None,
        };
        self.node_id.clone()
    }

    /// The store's directory, once [`Validation::node`] has run.
    pub fn data_dir(&self) -> Option<&Path> {
        self.data_dir.as_deref()
    }

    /// `[federation]`: the chain directory and the anchor, if given.
    pub fn federation(&mut self, raw: &RawFederation) -> Option<(PathBuf, Option<[u8; 32]>)> {
        if raw.roster.is_some() {
            self.problem(
                "federation.roster: an unsigned roster is no longer accepted; a threshold of members signs it as version 1 of the roster chain (docs/roster.md, \"Migrating from federation.toml\") and federation.chain names the directory that holds it",
            );
        }
        self.chain = self.required("federation.chain", &raw.chain);
        self.anchor = match raw
            .anchor
            .as_deref()
            .map(crate::records::crypto::parse_sha256_hex)
        {
            Some(Ok(a)) => Some(a),
            Some(Err(e)) => {
                self.problem(format!(
                    "federation.anchor: must be the SHA-256 of a roster version as 64 hex digits: {e}"
                ));
                None
            }
            None => None,
        };
        self.chain.clone().map(|c| (c, self.anchor))
    }

    /// `[listen]` and `metrics.listen`: three addresses, the metrics one
    /// optional, no two the same (a port serves one TLS trust domain).
    pub fn listen(&mut self, raw: &RawListen, metrics: &RawMetrics) {
        let peer = self.address("listen.peer", &raw.peer);
        let agency = self.address("listen.agency", &raw.agency);
        if let (Some(p), Some(a)) = (peer, agency)
            && p == a
            && p.port() != 0
        {
            self.problem(format!(
                "listen.agency: must differ from listen.peer (both are {p}); the two listeners trust different CAs"
            ));
        }
        self.metrics_listen = metrics_address(
            metrics.listen.as_deref(),
            [("listen.peer", peer), ("listen.agency", agency)],
            &mut self.problems,
        );
        self.peer_listen = peer;
        self.agency_listen = agency;
    }

    /// `tls.cert` and `tls.key`; both files, if both are given.
    pub(crate) fn tls_identity(&mut self, raw: &RawTls) -> Option<(PathBuf, PathBuf)> {
        let cert = self.required("tls.cert", &raw.cert);
        let key = self.required("tls.key", &raw.key);
        self.identity = cert.zip(key);
        self.identity.clone()
    }

    /// `tls.agency_client_ca`; the file, if given.
    pub fn agency_client_ca(&mut self, raw: &RawTls) -> Option<PathBuf> {
        self.agency_client_ca = self.required("tls.agency_client_ca", &raw.agency_client_ca);
        self.agency_client_ca.clone()
    }

    /// `tls.peer_crls` and `tls.agency_client_crls`, resolved, empty
    /// entries dropped (an empty environment override means none).
    pub fn crls(&mut self, raw: &RawTls) -> (Vec<PathBuf>, Vec<PathBuf>) {
        let files = |v: &Vec<PathBuf>| -> Vec<PathBuf> {
            v.iter()
                .filter(|p| !p.as_os_str().is_empty())
                .map(|p| self.resolve(p))
                .collect()
        };
        let (peer, agency) = (files(&raw.peer_crls), files(&raw.agency_client_crls));
        self.peer_crls = peer.clone();
        self.agency_client_crls = agency.clone();
        (peer, agency)
    }

    /// `reload.poll_ms`: 0 (SIGHUP only) or at least 100.
    pub fn reload(&mut self, raw: &RawReload) {
        match raw.poll_ms {
            0 => self.reload.poll = None,
            ms if ms >= 100 => self.reload.poll = Some(Duration::from_millis(ms)),
            ms => self.problem(format!(
                "reload.poll_ms: must be 0 (SIGHUP only) or at least 100 (got {ms})"
            )),
        }
    }

    /// `[signing]`; the key file, if given, and the key id (empty when
    /// missing, which is a problem).
    pub fn signing(&mut self, raw: &RawSigning) -> (Option<PathBuf>, String) {
        let key_id = raw.key_id.clone().unwrap_or_default();
        if key_id.is_empty() {
            self.problem("signing.key_id: is required");
        }
        let key = self.required("signing.key", &raw.key);
        self.signing = key.clone().map(|k| (k, key_id.clone()));
        (key, key_id)
    }

    /// `[sync]`. `in_roster`, when the roster is known, says whether a node
    /// id is a member of it: each `[[sync.peers]]` must be.
    pub fn sync(&mut self, raw: &RawSync, in_roster: Option<&dyn Fn(&NodeId) -> bool>) {
        let mut sync = SyncConfig::default();
        if (1..=4096).contains(&raw.batch_size) {
            sync.batch_size = raw.batch_size;
        } else {
            self.problem(format!(
                "sync.batch_size: must be between 1 and 4096 (got {})",
                raw.batch_size
            ));
        }
        sync.backoff_min = Duration::from_millis(raw.backoff_min_ms);
        sync.backoff_max = Duration::from_millis(raw.backoff_max_ms);
        if raw.silence_limit_ms >= 100 {
            sync.silence_limit = Duration::from_millis(raw.silence_limit_ms);
        } else {
            self.problem(format!(
                "sync.silence_limit_ms: must be at least 100 (got {})",
                raw.silence_limit_ms
            ));
        }
        // The heartbeat this node sends defaults to a third of the silence
        // limit it applies, so that a federation configured alike never
        // drops a quiet stream.
        let heartbeat_ms = raw
            .heartbeat_ms
            .unwrap_or_else(|| (raw.silence_limit_ms / 3).clamp(100, HEARTBEAT.as_millis() as u64));
        if heartbeat_ms < 100 {
            self.problem(format!(
                "sync.heartbeat_ms: must be at least 100 (got {heartbeat_ms})"
            ));
        } else if heartbeat_ms >= raw.silence_limit_ms.max(100) {
            self.problem(format!(
                "sync.heartbeat_ms: must be below sync.silence_limit_ms ({}), or peers configured alike drop quiet streams (got {heartbeat_ms})",
                raw.silence_limit_ms
            ));
        } else {
            sync.heartbeat = Duration::from_millis(heartbeat_ms);
        }
        for (i, p) in raw.peers.iter().enumerate() {
            let id = match NodeId::parse(&p.id) {
                Ok(id) => id,
                Err(e) => {
                    self.problem(format!("sync.peers[{i}].id: {e}"));
                    continue;
                }
            };
            if let Some(in_roster) = in_roster
                && !in_roster(&id)
            {
                self.problem(format!(
                    "sync.peers[{i}].id: {id} is not a member of the roster"
                ));
            }
            match Endpoint::parse(&p.endpoint) {
                Ok(e) => {
                    sync.endpoints.insert(id, e);
                }
                Err(e) => self.problem(format!("sync.peers[{i}].endpoint: {e}")),
            }
        }
        if sync.backoff_min.is_zero() || sync.backoff_min > sync.backoff_max {
            self.problem(format!(
                "sync.backoff_min_ms: must be at least 1 and at most sync.backoff_max_ms ({} > {})",
                sync.backoff_min.as_millis(),
                sync.backoff_max.as_millis()
            ));
        }
        self.sync = sync;
    }

    /// `[matching]`, if present; the key file and epoch, if valid.
    pub fn matching(&mut self, raw: Option<&RawMatching>) -> Option<MatchingKeyFile> {
        let raw = raw?;
        if raw.epoch == 0 {
            self.problem("matching.epoch: must be at least 1");
            return None;
        }
        let path = self.required("matching.key", &raw.key)?;
        self.matching = Some(MatchingKeyFile {
            path,
            epoch: raw.epoch,
        });
        self.matching.clone()
    }

    /// `[oprf]`, if present; the files, if the section is whole.
    pub fn oprf(&mut self, raw: Option<&RawOprf>) -> Option<OprfFiles> {
        let raw = raw?;
        if raw.keys.is_empty() {
            self.problem(
                "oprf.keys: at least one OPRF key file is required (enlace keys generate-oprf)",
            );
        }
        let identifiers_key = self.required("oprf.identifiers_key", &raw.identifiers_key);
        let keys: Vec<PathBuf> = raw.keys.iter().map(|p| self.resolve(p)).collect();
        if raw.keys.is_empty() {
            return None;
        }
        self.oprf = Some(OprfFiles {
            keys,
            identifiers_key: identifiers_key?,
        });
        self.oprf.clone()
    }

    /// The [`Settings`], or every problem found.
    pub fn finish(self) -> Result<Settings, ConfigError> {
        let fail = |problems| ConfigError {
            path: self.path.to_owned(),
            problems,
        };
        if !self.problems.is_empty() {
            return Err(fail(self.problems));
        }
        let (
            Some(node_id),
            Some(data_dir),
            Some(peer_listen),
            Some(agency_listen),
            Some(chain),
            Some((cert, key)),
            Some(agency_client_ca),
            Some((signing, signing_key_id)),
        ) = (
            self.node_id,
            self.data_dir,
            self.peer_listen,
            self.agency_listen,
            self.chain,
            self.identity,
            self.agency_client_ca,
            self.signing,
        )
        else {
            return Err(fail(vec!["incomplete configuration".into()]));
        };
        Ok(Settings {
            node_id,
            data_dir,
            cache_bytes: self.cache_bytes,
            peer_listen,
            agency_listen,
            metrics_listen: self.metrics_listen,
            tls_files: TlsFiles {
                chain,
                anchor: self.anchor,
                cert,
                key,
                agency_client_ca,
                peer_crls: self.peer_crls,
                agency_client_crls: self.agency_client_crls,
            },
            key_files: KeyFiles {
                signing,
                signing_key_id,
                matching: self.matching,
                oprf: self.oprf,
            },
            reload: self.reload,
            sync: self.sync,
            log_format: self.log_format,
            records: self.records,
            agency: self.agency,
            query: self.query,
            statistics: self.statistics,
            audit: self.audit,
            path: self.path.to_owned(),
        })
    }
}

/// `metrics.listen`: absent or empty means no metrics listener; otherwise
/// an IP address and port, not one the other listeners use (a port can
/// serve one TLS trust domain only).
fn metrics_address(
    raw: Option<&str>,
    others: [(&str, Option<SocketAddr>); 2],
    problems: &mut Vec<String>,
) -> Option<SocketAddr> {
    let text = raw.map(str::trim).filter(|t| !t.is_empty())?;
    let Ok(addr) = text.parse::<SocketAddr>() else {
        problems.push(format!(
            "metrics.listen: {text:?} is not an address: give an IP address and port such as 127.0.0.1:9101"
        ));
        return None;
    };
    for (field, other) in others {
        if other == Some(addr) && addr.port() != 0 {
            problems.push(format!(
                "metrics.listen: must differ from {field} (both are {addr})"
            ));
        }
    }
    Some(addr)
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metrics_address_is_optional_and_must_be_an_address_of_its_own() {
        let peer: SocketAddr = "127.0.0.1:7101".parse().unwrap();
        let agency: SocketAddr = "127.0.0.1:7201".parse().unwrap();
        let others = [("listen.peer", Some(peer)), ("listen.agency", Some(agency))];
        let check = |raw: Option<&str>| {
            let mut problems = Vec::new();
            let addr = metrics_address(raw, others, &mut problems);
            (addr, problems)
        };
        assert_eq!(check(None), (None, vec![]));
        assert_eq!(check(Some("  ")), (None, vec![]));
        assert_eq!(
            check(Some("127.0.0.1:9101")),
            (Some("127.0.0.1:9101".parse().unwrap()), vec![])
        );
        let (addr, problems) = check(Some("localhost:9101"));
        assert_eq!(addr, None);
        assert_eq!(
            problems,
            vec![
                "metrics.listen: \"localhost:9101\" is not an address: give an IP address and port such as 127.0.0.1:9101"
                    .to_owned()
            ]
        );
        let (_, problems) = check(Some("127.0.0.1:7201"));
        assert_eq!(
            problems,
            vec![
                "metrics.listen: must differ from listen.agency (both are 127.0.0.1:7201)"
                    .to_owned()
            ]
        );
        // Port 0 (tests) may repeat: each bind gets its own port.
        let zero = [
            ("listen.peer", Some("127.0.0.1:0".parse().unwrap())),
            ("listen.agency", None),
        ];
        let mut problems = Vec::new();
        assert!(metrics_address(Some("127.0.0.1:0"), zero, &mut problems).is_some());
        assert!(problems.is_empty());
    }
}
