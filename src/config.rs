//! The node's configuration: one TOML file plus environment overrides,
//! validated whole before anything binds.
//!
//! Every key can be overridden from the environment as
//! `ENLACE__<SECTION>__<KEY>` (e.g. `ENLACE__LISTEN__PEER=0.0.0.0:7101`);
//! the CRL lists take comma-separated paths
//! (`ENLACE__TLS__PEER_CRLS=crl/gt.crl,crl/hn.crl`, empty for none).
//! Relative paths resolve against the directory holding the config file.
//! Secrets (TLS and signing keys) are always files named here, never inline
//! values, so they can be kept with mode 0600 or mounted from a secret store.
//!
//! Validation loads everything the node will need — the roster, the TLS
//! certificate and key, the agency CA, the signing key — and reports every
//! problem at once ([`ConfigError`]). The CLI exits with code 64 on it.
//!
//! ```toml
//! [node]
//! id = "gt"
//! # data_dir = "/var/lib/enlace"   # default: ./data/<id> in the working directory
//! # cache_mb = 32                  # the store's page cache
//!
//! [federation]
//! roster = "../federation.toml"
//!
//! [listen]
//! peer = "127.0.0.1:7101"      # federation peers (mTLS, roster CAs)
//! agency = "127.0.0.1:7201"    # agency clients (mTLS, local agency CA)
//!
//! [tls]
//! cert = "node.crt"            # leaf first, then intermediates
//! key = "node.key"             # mode 0600
//! agency_client_ca = "agency-ca.crt"
//! # peer_crls = ["crl/gt.crl", "crl/hn.crl"]   # CRLs of roster CAs (default: none)
//! # agency_client_crls = ["agency.crl"]        # CRLs of the agency CA (default: none)
//!
//! [reload]                     # optional
//! poll_ms = 5000               # how often the TLS files are checked for changes; 0: on SIGHUP only
//!
//! [signing]
//! key = "signing.key"          # Ed25519 PKCS#8 PEM, mode 0600
//! key_id = "gt-2026"           # as listed for this node in the roster
//!
//! [sync]                       # optional
//! batch_size = 1024
//! backoff_min_ms = 200
//! backoff_max_ms = 30000
//! [[sync.peers]]               # dial a peer elsewhere than its roster endpoint
//! id = "hn"
//! endpoint = "10.8.0.2:7443"
//!
//! [log]                        # optional
//! format = "text"              # or "json"
//!
//! [matching]                   # needed to hash selectors
//! key = "matching.key"         # the federation's matching key, mode 0600
//! epoch = 1
//!
//! [records]                    # optional
//! default_validity_days = 365  # expires_at when a publisher gives none
//! max_validity_days = 1825
//! expiry_check_ms = 60000      # how often expired content is purged
//!
//! [agency]                     # who may do what on the agency API
//! default_role = "reader"      # reader | publisher | admin
//! [[agency.clients]]
//! name = "gt-operator"         # the client certificate's CN
//! role = "publisher"
//! [query]                      # hit/no-hit queries
//! max_selectors = 16           # per query
//! max_per_minute = 30          # per asking peer
//! deadline_ms = 5000           # fan-out deadline
//! reveal = "contact"           # on a hit: "case_refs" or only "contact"
//!
//! [audit]                      # the accountability log
//! checkpoint_interval_ms = 300000  # sign a checkpoint and send it to peers
//! retention_days = 0           # 0: keep everything; else at least 30
//!
//! [metrics]                    # optional; absent (or listen = ""): no metrics listener
//! listen = "127.0.0.1:9101"    # Prometheus text over HTTPS, clients of the agency CA only
//!
//! [agency.contact]             # default contact point of published records
//! unit = "Unidad de Cooperación Internacional"
//! email = "cooperacion@mp.gob.gt"
//! phone = "+502 2411 9191"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use serde::Deserialize;

use crate::records::crypto::SigningKey;
use crate::records::model::{ContactPoint, Errors, NodeId};
use crate::records::selector::MatchingKey;
use crate::trust::roster::{self, Roster};
use crate::trust::tls::{self, TlsIdentity};

/// Every problem found in a configuration.
#[derive(Debug, thiserror::Error)]
#[error("configuration {path} is invalid:\n  - {}", .problems.join("\n  - "))]
pub struct ConfigError {
    pub path: PathBuf,
    pub problems: Vec<String>,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    node: RawNode,
    #[serde(default)]
    federation: RawFederation,
    #[serde(default)]
    listen: RawListen,
    #[serde(default)]
    tls: RawTls,
    #[serde(default)]
    signing: RawSigning,
    #[serde(default)]
    sync: RawSync,
    #[serde(default)]
    log: RawLog,
    matching: Option<RawMatching>,
    #[serde(default)]
    records: RawRecords,
    #[serde(default)]
    agency: RawAgency,
    #[serde(default)]
    query: RawQuery,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default)]
    reload: RawReload,
    #[serde(default)]
    metrics: RawMetrics,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    /// Address of the metrics listener; absent or empty: none.
    listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    checkpoint_interval_ms: Option<u64>,
    retention_days: Option<u32>,
}

/// The accountability log's schedule.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// How often the latest checkpoint is sent to the peers to witness (a
    /// new one is signed only when the log grew).
    pub checkpoint_interval: Duration,
    /// Entries older than this are pruned, keeping a signed anchor; `None`
    /// keeps everything.
    pub retention: Option<Duration>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            checkpoint_interval: Duration::from_secs(300),
            retention: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReload {
    poll_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuery {
    max_selectors: Option<usize>,
    max_per_minute: Option<u32>,
    deadline_ms: Option<u64>,
    reveal: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatching {
    key: Option<PathBuf>,
    epoch: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecords {
    default_validity_days: Option<u32>,
    max_validity_days: Option<u32>,
    expiry_check_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgency {
    default_role: Option<String>,
    #[serde(default)]
    clients: Vec<RawClientRole>,
    contact: Option<RawContact>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClientRole {
    name: String,
    role: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContact {
    unit: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    phone: String,
}

/// What an agency client may do on the agency API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ClientRole {
    /// List, get and watch records.
    Reader,
    /// Also publish, update, withdraw and import.
    Publisher,
    /// Also administer the node (audit export and verification).
    Admin,
}

impl ClientRole {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "reader" => Ok(Self::Reader),
            "publisher" => Ok(Self::Publisher),
            "admin" => Ok(Self::Admin),
            _ => Err(format!(
                "unknown role {s:?}; one of: reader, publisher, admin"
            )),
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::Reader => "reader",
            Self::Publisher => "publisher",
            Self::Admin => "admin",
        }
    }
}

/// Agency clients' roles and the default contact point.
#[derive(Debug, Clone)]
pub struct AgencyConfig {
    /// Role of a client not listed in `clients`.
    pub default_role: ClientRole,
    /// Role per client name (certificate CN).
    pub clients: std::collections::BTreeMap<String, ClientRole>,
    /// Contact point set on published records that name none.
    pub contact: Option<ContactPoint>,
}

impl Default for AgencyConfig {
    fn default() -> Self {
        Self {
            default_role: ClientRole::Reader,
            clients: Default::default(),
            contact: None,
        }
    }
}

impl AgencyConfig {
    pub fn role_of(&self, client: &str) -> ClientRole {
        self.clients
            .get(client)
            .copied()
            .unwrap_or(self.default_role)
    }
}

/// Record validity rules.
#[derive(Debug, Clone)]
pub struct RecordsConfig {
    pub default_validity: Duration,
    pub max_validity: Duration,
    pub expiry_check: Duration,
}

impl Default for RecordsConfig {
    fn default() -> Self {
        Self {
            default_validity: Duration::from_secs(365 * 86_400),
            max_validity: Duration::from_secs(1825 * 86_400),
            expiry_check: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    /// This node's id in the roster.
    id: Option<String>,
    /// Where the store lives. Default: `data/<id>` in the working directory.
    data_dir: Option<PathBuf>,
    /// Page cache of the store, in MiB. Default 32.
    cache_mb: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFederation {
    /// The federation file.
    roster: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListen {
    /// Address of the peer listener.
    peer: Option<String>,
    /// Address of the agency listener.
    agency: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    agency_client_ca: Option<PathBuf>,
    #[serde(default)]
    peer_crls: Vec<PathBuf>,
    #[serde(default)]
    agency_client_crls: Vec<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSigning {
    key: Option<PathBuf>,
    key_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSync {
    batch_size: Option<u32>,
    backoff_min_ms: Option<u64>,
    backoff_max_ms: Option<u64>,
    silence_limit_ms: Option<u64>,
    #[serde(default)]
    peers: Vec<RawPeerEndpoint>,
}

/// Where this node dials a peer, when not at the roster's endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeerEndpoint {
    id: String,
    endpoint: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Option<LogFormat>,
}

/// Replication tuning.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// Most records per pull batch (1..=4096). Default 1024, the most a
    /// peer serves in one batch: a catch-up pays one store transaction,
    /// one flush and one audit entry per batch at each end, so fewer,
    /// larger batches cost less CPU per record.
    pub batch_size: u32,
    /// First reconnect delay. Default 200 ms.
    pub backoff_min: Duration,
    /// Longest reconnect delay. Default 30 s.
    pub backoff_max: Duration,
    /// A follow stream silent this long (no record, no heartbeat) is
    /// dropped and reopened. Default 45 s (three heartbeats).
    pub silence_limit: Duration,
    /// Peers dialled at another address than the roster's (a VPN address,
    /// split-horizon DNS, a relay). The TLS checks are unchanged.
    pub endpoints: std::collections::BTreeMap<NodeId, crate::trust::roster::Endpoint>,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            batch_size: 1024,
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
            silence_limit: Duration::from_secs(3 * crate::exchange::peers::HEARTBEAT.as_secs()),
            endpoints: Default::default(),
        }
    }
}

/// What a peer learns on a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reveal {
    /// The case numbers of the matching cases and the contact point.
    CaseRefs,
    /// Only "hit — contact us", with the contact point.
    ContactOnly,
}

/// Query limits and policy (`[query]` in the configuration).
#[derive(Debug, Clone)]
pub struct QueryConfig {
    pub max_selectors: usize,
    pub max_per_minute: u32,
    pub deadline: Duration,
    pub reveal: Reveal,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            max_selectors: 16,
            max_per_minute: 30,
            deadline: Duration::from_secs(5),
            reveal: Reveal::ContactOnly,
        }
    }
}

/// The files a configuration names for TLS, resolved: what
/// [`crate::trust::reload`] watches and re-reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// The roster (`federation.roster`); the CA files it names are in
    /// [`crate::trust::roster::Member::ca_files`].
    pub roster: PathBuf,
    /// `tls.cert`.
    pub cert: PathBuf,
    /// `tls.key`.
    pub key: PathBuf,
    /// `tls.agency_client_ca`.
    pub agency_client_ca: PathBuf,
    /// `tls.peer_crls`.
    pub peer_crls: Vec<PathBuf>,
    /// `tls.agency_client_crls`.
    pub agency_client_crls: Vec<PathBuf>,
}

/// How the node notices changed TLS files.
#[derive(Debug, Clone)]
pub struct ReloadConfig {
    /// How often the files are checked (`reload.poll_ms`, default 5 s);
    /// `None` (`poll_ms = 0`): only on SIGHUP.
    pub poll: Option<Duration>,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        Self {
            poll: Some(Duration::from_secs(5)),
        }
    }
}

/// A validated configuration with everything it names loaded.
#[derive(Debug)]
pub struct Settings {
    pub node_id: NodeId,
    pub data_dir: PathBuf,
    /// Page cache of the store, in bytes.
    pub cache_bytes: u64,
    pub peer_listen: SocketAddr,
    pub agency_listen: SocketAddr,
    /// Address of the metrics listener (`metrics.listen`); `None`: no
    /// metrics listener. See [`crate::metrics`].
    pub metrics_listen: Option<SocketAddr>,
    pub roster: Arc<Roster>,
    pub tls: TlsIdentity,
    pub agency_ca: Vec<CertificateDer<'static>>,
    /// CRLs of roster CAs, checked on the peer listener and outgoing
    /// connections; each verified as signed by a roster CA.
    pub peer_crls: Vec<CertificateRevocationListDer<'static>>,
    /// CRLs of the agency CA, checked on the agency listener.
    pub agency_crls: Vec<CertificateRevocationListDer<'static>>,
    /// Where the TLS material came from.
    pub tls_files: TlsFiles,
    pub reload: ReloadConfig,
    pub signing: Arc<SigningKey>,
    pub sync: SyncConfig,
    pub log_format: LogFormat,
    /// The federation's matching key, if configured.
    pub matching: Option<Arc<MatchingKey>>,
    pub records: RecordsConfig,
    pub agency: AgencyConfig,
    /// Hit/no-hit query limits and policy.
    pub query: QueryConfig,
    /// Checkpoints and retention of the audit log.
    pub audit: AuditConfig,
    /// The file it came from.
    pub path: PathBuf,
}

/// Reads `path` and the environment, validates, and loads what it names.
/// `data_dir` (from `--data-dir`) overrides the file.
pub fn load(path: &Path, data_dir: Option<&Path>) -> Result<Settings, ConfigError> {
    let fail = |problem: String| ConfigError {
        path: path.to_owned(),
        problems: vec![problem],
    };
    if !path.is_file() {
        return Err(fail(format!(
            "{} does not exist or is not a file",
            path.display()
        )));
    }
    let built = config::Config::builder()
        .add_source(config::File::from(path).format(config::FileFormat::Toml))
        .add_source(
            config::Environment::with_prefix("ENLACE")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("tls.peer_crls")
                .with_list_parse_key("tls.agency_client_crls"),
        )
        .build()
        .map_err(|e| fail(format!("cannot read: {e}")))?;
    let raw: RawConfig = built.try_deserialize().map_err(|e| fail(format!("{e}")))?;
    let base = path.parent().unwrap_or(Path::new(".")).to_owned();
    validate(raw, &base, path, data_dir)
}

fn validate(
    raw: RawConfig,
    base: &Path,
    path: &Path,
    data_dir_override: Option<&Path>,
) -> Result<Settings, ConfigError> {
    let mut problems: Vec<String> = Vec::new();
    let resolve = |p: &Path| {
        if p.is_absolute() {
            p.to_owned()
        } else {
            base.join(p)
        }
    };
    let required =
        |field: &str, v: &Option<PathBuf>, problems: &mut Vec<String>| -> Option<PathBuf> {
            match v {
                Some(p) if !p.as_os_str().is_empty() => Some(resolve(p)),
                _ => {
                    problems.push(format!("{field}: is required"));
                    None
                }
            }
        };

    let node_id = match raw.node.id.as_deref().map(NodeId::parse) {
        Some(Ok(id)) => Some(id),
        Some(Err(e)) => {
            problems.push(format!("node.id: {e}"));
            None
        }
        None => {
            problems.push("node.id: is required".into());
            None
        }
    };

    let roster_path = required("federation.roster", &raw.federation.roster, &mut problems);
    let roster = roster_path.and_then(|p| match Roster::load(&p) {
        Ok(r) => Some(r),
        Err(e) => {
            for problem in e.problems {
                problems.push(format!("federation.roster ({}): {problem}", p.display()));
            }
            None
        }
    });
    if let (Some(roster), Some(id)) = (&roster, &node_id)
        && roster.member(id).is_none()
    {
        problems.push(format!(
            "node.id: {id} is not a member of the roster {}",
            roster.path.display()
        ));
    }

    let addr =
        |field: &str, v: &Option<String>, problems: &mut Vec<String>| -> Option<SocketAddr> {
            match v.as_deref().map(str::parse::<SocketAddr>) {
                Some(Ok(a)) => Some(a),
                Some(Err(_)) => {
                    problems.push(format!(
                        "{field}: {:?} is not an IP address and port such as 127.0.0.1:7101",
                        v.as_deref().unwrap_or_default()
                    ));
                    None
                }
                None => {
                    problems.push(format!("{field}: is required"));
                    None
                }
            }
        };
    let peer_listen = addr("listen.peer", &raw.listen.peer, &mut problems);
    let agency_listen = addr("listen.agency", &raw.listen.agency, &mut problems);
    if let (Some(p), Some(a)) = (peer_listen, agency_listen)
        && p == a
        && p.port() != 0
    {
        problems.push(format!(
            "listen.agency: must differ from listen.peer (both are {p}); the two listeners trust different CAs"
        ));
    }
    let metrics_listen = metrics_address(
        raw.metrics.listen.as_deref(),
        [
            ("listen.peer", peer_listen),
            ("listen.agency", agency_listen),
        ],
        &mut problems,
    );

    let cert = required("tls.cert", &raw.tls.cert, &mut problems);
    let key = required("tls.key", &raw.tls.key, &mut problems);
    let tls = match (cert, key) {
        (Some(c), Some(k)) => match TlsIdentity::load(&c, &k) {
            Ok(t) => Some(t),
            Err(e) => {
                problems.push(format!("tls: {e}"));
                None
            }
        },
        _ => None,
    };
    if let (Some(tls), Some(roster), Some(id)) = (&tls, &roster, &node_id)
        && roster.member(id).is_some()
    {
        check_own_certificate(tls, roster, id, &mut problems);
    }

    let agency_ca = required(
        "tls.agency_client_ca",
        &raw.tls.agency_client_ca,
        &mut problems,
    )
    .and_then(|p| match roster::load_ca_certs(&p) {
        Ok(c) => Some(c),
        Err(e) => {
            problems.push(format!("tls.agency_client_ca: {e}"));
            None
        }
    });
    if let (Some(agency), Some(roster)) = (&agency_ca, &roster)
        && roster
            .members()
            .any(|m| m.ca_certs.iter().any(|c| agency.contains(c)))
    {
        problems.push(
            "tls.agency_client_ca: must be a local CA of its own, not one of the federation CAs in the roster; otherwise any peer node could act as an agency client".into(),
        );
    }

    let roster_cas: Vec<CertificateDer<'static>> = roster
        .iter()
        .flat_map(|r| r.members().flat_map(|m| m.ca_certs.iter().cloned()))
        .collect();
    let peer_crl_files: Vec<PathBuf> = raw
        .tls
        .peer_crls
        .iter()
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| resolve(p))
        .collect();
    let agency_crl_files: Vec<PathBuf> = raw
        .tls
        .agency_client_crls
        .iter()
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| resolve(p))
        .collect();
    let peer_crls = load_crls(
        "tls.peer_crls",
        &peer_crl_files,
        roster.as_ref().map(|_| roster_cas.as_slice()),
        &mut problems,
    );
    let agency_crls = load_crls(
        "tls.agency_client_crls",
        &agency_crl_files,
        agency_ca.as_deref(),
        &mut problems,
    );
    let mut reload = ReloadConfig::default();
    match raw.reload.poll_ms {
        None => {}
        Some(0) => reload.poll = None,
        Some(ms) if ms >= 100 => reload.poll = Some(Duration::from_millis(ms)),
        Some(ms) => problems.push(format!(
            "reload.poll_ms: must be 0 (SIGHUP only) or at least 100 (got {ms})"
        )),
    }

    let key_id = raw.signing.key_id.clone().unwrap_or_default();
    if key_id.is_empty() {
        problems.push("signing.key_id: is required".into());
    }
    let signing =
        required("signing.key", &raw.signing.key, &mut problems).and_then(
            |p| match SigningKey::load(&p, &key_id) {
                Ok(k) => Some(k),
                Err(e) => {
                    problems.push(format!("signing.key: {e}"));
                    None
                }
            },
        );
    if let (Some(signing), Some(roster), Some(id)) = (&signing, &roster, &node_id)
        && !key_id.is_empty()
    {
        match roster.signing_key(&key_id) {
            None => problems.push(format!(
                "signing.key_id: {key_id:?} is not listed in the roster"
            )),
            Some((member, _)) if member.id != *id => problems.push(format!(
                "signing.key_id: {key_id:?} belongs to member {}, not to {id}",
                member.id
            )),
            Some((_, k)) if k.public_key.as_slice() != signing.public_key() => problems.push(
                format!("signing.key: its public key does not match the roster's key {key_id:?}"),
            ),
            Some(_) => {}
        }
    }

    let mut sync = SyncConfig::default();
    if let Some(b) = raw.sync.batch_size {
        if (1..=4096).contains(&b) {
            sync.batch_size = b;
        } else {
            problems.push(format!(
                "sync.batch_size: must be between 1 and 4096 (got {b})"
            ));
        }
    }
    if let Some(ms) = raw.sync.backoff_min_ms {
        sync.backoff_min = Duration::from_millis(ms);
    }
    if let Some(ms) = raw.sync.backoff_max_ms {
        sync.backoff_max = Duration::from_millis(ms);
    }
    if let Some(ms) = raw.sync.silence_limit_ms {
        if ms >= 100 {
            sync.silence_limit = Duration::from_millis(ms);
        } else {
            problems.push(format!(
                "sync.silence_limit_ms: must be at least 100 (got {ms})"
            ));
        }
    }
    for (i, p) in raw.sync.peers.iter().enumerate() {
        let id = match NodeId::parse(&p.id) {
            Ok(id) => id,
            Err(e) => {
                problems.push(format!("sync.peers[{i}].id: {e}"));
                continue;
            }
        };
        if let Some(roster) = &roster
            && roster.member(&id).is_none()
        {
            problems.push(format!(
                "sync.peers[{i}].id: {id} is not a member of the roster"
            ));
        }
        match crate::trust::roster::Endpoint::parse(&p.endpoint) {
            Ok(e) => {
                sync.endpoints.insert(id, e);
            }
            Err(e) => problems.push(format!("sync.peers[{i}].endpoint: {e}")),
        }
    }
    if sync.backoff_min.is_zero() || sync.backoff_min > sync.backoff_max {
        problems.push(format!(
            "sync.backoff_min_ms: must be at least 1 and at most sync.backoff_max_ms ({} > {})",
            sync.backoff_min.as_millis(),
            sync.backoff_max.as_millis()
        ));
    }

    let matching = raw.matching.as_ref().and_then(|m| {
        let epoch = m.epoch.unwrap_or(1);
        if epoch == 0 {
            problems.push("matching.epoch: must be at least 1".into());
            return None;
        }
        let path = required("matching.key", &m.key, &mut problems)?;
        match MatchingKey::load(&path, epoch) {
            Ok(k) => Some(Arc::new(k)),
            Err(e) => {
                problems.push(format!("matching.key: {e}"));
                None
            }
        }
    });

    if let Some(mb) = raw.node.cache_mb
        && !(1..=65_536).contains(&mb)
    {
        problems.push(format!(
            "node.cache_mb: must be between 1 and 65536 (got {mb})"
        ));
    }
    let mut records = RecordsConfig::default();
    if let Some(d) = raw.records.default_validity_days {
        records.default_validity = Duration::from_secs(u64::from(d) * 86_400);
    }
    if let Some(d) = raw.records.max_validity_days {
        records.max_validity = Duration::from_secs(u64::from(d) * 86_400);
    }
    if let Some(ms) = raw.records.expiry_check_ms {
        records.expiry_check = Duration::from_millis(ms);
    }
    if records.default_validity.is_zero() || records.default_validity > records.max_validity {
        problems.push(
            "records.default_validity_days: must be at least 1 and at most records.max_validity_days".into(),
        );
    }
    if records.expiry_check < Duration::from_millis(10) {
        problems.push("records.expiry_check_ms: must be at least 10".into());
    }

    let mut audit = AuditConfig::default();
    if let Some(ms) = raw.audit.checkpoint_interval_ms {
        if (100..=86_400_000).contains(&ms) {
            audit.checkpoint_interval = Duration::from_millis(ms);
        } else {
            problems.push(format!(
                "audit.checkpoint_interval_ms: must be between 100 and 86400000 (got {ms})"
            ));
        }
    }
    match raw.audit.retention_days {
        None | Some(0) => {}
        Some(d) if d < 30 => problems.push(format!(
            "audit.retention_days: must be 0 (keep everything) or at least 30 (got {d})"
        )),
        Some(d) => audit.retention = Some(Duration::from_secs(u64::from(d) * 86_400)),
    }

    let mut agency = AgencyConfig::default();
    if let Some(r) = &raw.agency.default_role {
        match ClientRole::parse(r) {
            Ok(role) => agency.default_role = role,
            Err(e) => problems.push(format!("agency.default_role: {e}")),
        }
    }
    for (i, c) in raw.agency.clients.iter().enumerate() {
        match ClientRole::parse(&c.role) {
            Ok(role) => {
                if agency.clients.insert(c.name.clone(), role).is_some() {
                    problems.push(format!(
                        "agency.clients[{i}].name: {:?} is listed twice",
                        c.name
                    ));
                }
            }
            Err(e) => problems.push(format!("agency.clients[{i}].role: {e}")),
        }
    }
    if let Some(c) = &raw.agency.contact {
        let contact = ContactPoint {
            unit: c.unit.clone(),
            email: c.email.clone(),
            phone: c.phone.clone(),
        };
        let mut errors = Errors::default();
        crate::records::model::check_contact(&mut errors, "agency", &contact);
        for e in errors.0 {
            problems.push(e.to_string());
        }
        agency.contact = Some(contact);
    }

    let mut query = QueryConfig::default();
    if let Some(n) = raw.query.max_selectors {
        if (1..=256).contains(&n) {
            query.max_selectors = n;
        } else {
            problems.push(format!(
                "query.max_selectors: must be between 1 and 256 (got {n})"
            ));
        }
    }
    if let Some(n) = raw.query.max_per_minute {
        if n >= 1 {
            query.max_per_minute = n;
        } else {
            problems.push("query.max_per_minute: must be at least 1".into());
        }
    }
    if let Some(ms) = raw.query.deadline_ms {
        if (100..=120_000).contains(&ms) {
            query.deadline = Duration::from_millis(ms);
        } else {
            problems.push(format!(
                "query.deadline_ms: must be between 100 and 120000 (got {ms})"
            ));
        }
    }
    match raw.query.reveal.as_deref() {
        None => {}
        Some("case_refs") => query.reveal = Reveal::CaseRefs,
        Some("contact") => query.reveal = Reveal::ContactOnly,
        Some(other) => problems.push(format!(
            "query.reveal: {other:?} is not a policy; one of: case_refs (name the matching cases), contact (only \"hit, contact us\")"
        )),
    }

    let data_dir = match (data_dir_override, &raw.node.data_dir, &node_id) {
        (Some(d), _, _) => Some(d.to_owned()),
        (None, Some(d), _) => Some(resolve(d)),
        (None, None, Some(id)) => Some(PathBuf::from("data").join(id.as_str())),
        (None, None, None) => None,
    };

    if !problems.is_empty() {
        return Err(ConfigError {
            path: path.to_owned(),
            problems,
        });
    }
    match (
        node_id,
        data_dir,
        peer_listen,
        agency_listen,
        roster,
        tls,
        agency_ca,
        signing,
    ) {
        (
            Some(node_id),
            Some(data_dir),
            Some(peer_listen),
            Some(agency_listen),
            Some(roster),
            Some(tls),
            Some(agency_ca),
            Some(signing),
        ) => Ok(Settings {
            node_id,
            data_dir,
            cache_bytes: raw
                .node
                .cache_mb
                .map_or(crate::store::DEFAULT_CACHE_BYTES, |mb| mb * 1024 * 1024),
            peer_listen,
            agency_listen,
            metrics_listen,
            roster: Arc::new(roster),
            tls,
            agency_ca,
            peer_crls,
            agency_crls,
            tls_files: TlsFiles {
                roster: resolve(raw.federation.roster.as_deref().unwrap_or(Path::new(""))),
                cert: resolve(raw.tls.cert.as_deref().unwrap_or(Path::new(""))),
                key: resolve(raw.tls.key.as_deref().unwrap_or(Path::new(""))),
                agency_client_ca: resolve(
                    raw.tls.agency_client_ca.as_deref().unwrap_or(Path::new("")),
                ),
                peer_crls: peer_crl_files,
                agency_client_crls: agency_crl_files,
            },
            reload,
            signing: Arc::new(signing),
            sync,
            log_format: raw.log.format.unwrap_or_default(),
            matching,
            records,
            agency,
            query,
            audit,
            path: path.to_owned(),
        }),
        _ => Err(ConfigError {
            path: path.to_owned(),
            problems: vec!["incomplete configuration".into()],
        }),
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

/// Loads the CRL files of `field`, each of which must be signed by one of
/// `cas` (`None` when those CAs did not load: then only parsing is checked).
/// Only one CRL per CA is allowed, since WebPKI consults the first CRL of
/// an issuer and would silently ignore a second.
fn load_crls(
    field: &str,
    files: &[PathBuf],
    cas: Option<&[CertificateDer<'static>]>,
    problems: &mut Vec<String>,
) -> Vec<CertificateRevocationListDer<'static>> {
    let mut out = Vec::new();
    let mut issuers: Vec<(Vec<u8>, String)> = Vec::new();
    for (i, path) in files.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let crls = match crate::trust::crl::load(path) {
            Ok(c) => c,
            Err(e) => {
                problems.push(format!("{at}: {e}"));
                continue;
            }
        };
        for (j, crl) in crls.into_iter().enumerate() {
            let what = format!("{} (CRL {})", path.display(), j + 1);
            if let Some(cas) = cas
                && let Err(e) = crate::trust::crl::signer(&crl, cas, &what)
            {
                problems.push(format!("{at}: {e}"));
                continue;
            }
            if let Ok(info) = crate::trust::crl::CrlInfo::parse(&crl) {
                if let Some((_, first)) = issuers.iter().find(|(raw, _)| *raw == info.issuer_raw) {
                    problems.push(format!(
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
fn check_own_certificate(
    tls: &TlsIdentity,
    roster: &Roster,
    id: &NodeId,
    problems: &mut Vec<String>,
) {
    let Some(leaf) = tls.chain.first() else {
        return;
    };
    match tls::node_id_from_cert(leaf, &roster.federation) {
        Ok(found) if found == *id => {}
        Ok(found) => problems.push(format!(
            "tls.cert: names node {found}, but this node is {id}"
        )),
        Err(e) => problems.push(format!("tls.cert: {e}")),
    }
    match tls::RosterClientVerifier::new(roster, &tls::provider()) {
        Ok(v) => {
            use rustls::server::danger::ClientCertVerifier;
            let now = rustls_pki_types::UnixTime::now();
            if let Err(e) = v.verify_client_cert(leaf, &tls.chain[1..], now) {
                problems.push(format!(
                    "tls.cert: is not accepted under the roster's CAs for {id}: {e}"
                ));
            }
        }
        Err(e) => problems.push(format!("federation.roster: {e}")),
    }
    if let Err(e) = tls::peer_server_config(roster, tls) {
        problems.push(format!("tls.key: does not fit tls.cert: {e}"));
    }
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
