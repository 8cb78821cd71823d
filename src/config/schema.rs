//! The configuration file as written: one struct per `[section]`, read by
//! serde from the TOML file and the `ENLACE__…` environment overrides.
//!
//! Nothing here is checked beyond its type: [`super::validate`] turns a
//! [`RawConfig`] into [`super::Settings`] and names every problem. A key
//! with a safe default has it here, so a file states only what differs;
//! keys without one (the node id, the listen addresses, the files) are
//! `Option`s, and validation says when one is missing. Unknown keys are
//! refused, so a misspelt key is an error rather than a silent default.

use std::path::PathBuf;

use serde::Deserialize;

use super::sections::{self as defaults, LogFormat};

/// The whole file: every section, each optional as a table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[node]`: who this node is and where it keeps its store.
    #[serde(default)]
    pub node: RawNode,
    /// `[federation]`: the roster chain.
    #[serde(default)]
    pub federation: RawFederation,
    /// `[listen]`: the peer and agency listeners.
    #[serde(default)]
    pub listen: RawListen,
    /// `[tls]`: the node's certificate and key, the agency CA, the CRLs.
    #[serde(default)]
    pub tls: RawTls,
    /// `[signing]`: the key records are signed with.
    #[serde(default)]
    pub signing: RawSigning,
    /// `[sync]`: replication tuning.
    #[serde(default)]
    pub sync: RawSync,
    /// `[log]`: the log output.
    #[serde(default)]
    pub log: RawLog,
    /// `[matching]`: the federation's matching key; absent: no selectors
    /// can be hashed.
    pub matching: Option<RawMatching>,
    /// `[oprf]`: this member's OPRF keys and the key its own identifiers
    /// are kept under; absent: no match filter, no oblivious queries.
    pub oprf: Option<RawOprf>,
    /// `[records]`: validity of published records.
    #[serde(default)]
    pub records: RawRecords,
    /// `[agency]`: agency clients' roles and the default contact point.
    #[serde(default)]
    pub agency: RawAgency,
    /// `[query]`: hit/no-hit query limits and policy.
    #[serde(default)]
    pub query: RawQuery,
    /// `[audit]`: the accountability log's schedule.
    #[serde(default)]
    pub audit: RawAudit,
    /// `[reload]`: how changed TLS files are noticed.
    #[serde(default)]
    pub reload: RawReload,
    /// `[metrics]`: the Prometheus listener.
    #[serde(default)]
    pub metrics: RawMetrics,
    /// `[statistics]`: how this node protects the statistical tables it
    /// publishes, and its population figures.
    #[serde(default)]
    pub statistics: RawStatistics,
}

/// `[node]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    /// This node's id in the roster. Required.
    pub id: Option<String>,
    /// Where the store lives. Default: `data/<id>` in the working directory.
    pub data_dir: Option<PathBuf>,
    /// Page cache of the store, in MiB (1..=65536).
    #[serde(default = "defaults::cache_mb")]
    pub cache_mb: u64,
}

impl Default for RawNode {
    fn default() -> Self {
        Self {
            id: None,
            data_dir: None,
            cache_mb: defaults::cache_mb(),
        }
    }
}

/// `[federation]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFederation {
    /// No longer accepted: an unsigned roster file. Named here so that
    /// the refusal can say what replaced it.
    pub roster: Option<PathBuf>,
    /// The roster chain directory: signed versions, `<version>.roster`.
    /// Required.
    pub chain: Option<PathBuf>,
    /// The SHA-256 (hex) of the version to trust first, handed over out of
    /// band; without it the chain is verified from version 1.
    pub anchor: Option<String>,
}

/// `[listen]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListen {
    /// Address of the peer listener (mTLS, roster CAs). Required.
    pub peer: Option<String>,
    /// Address of the agency listener (mTLS, the agency CA). Required.
    pub agency: Option<String>,
}

/// `[tls]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// The node certificate: leaf first, then intermediates. Required.
    pub cert: Option<PathBuf>,
    /// Its private key (mode 0600). Required.
    pub key: Option<PathBuf>,
    /// The local CA of the agency's clients. Required.
    pub agency_client_ca: Option<PathBuf>,
    /// CRLs of roster CAs. Default: none.
    #[serde(default)]
    pub peer_crls: Vec<PathBuf>,
    /// CRLs of the agency CA. Default: none.
    #[serde(default)]
    pub agency_client_crls: Vec<PathBuf>,
}

/// `[signing]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSigning {
    /// The Ed25519 PKCS#8 PEM key (mode 0600). Required.
    pub key: Option<PathBuf>,
    /// Its id, as listed for this node in the roster. Required.
    pub key_id: Option<String>,
}

/// `[sync]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSync {
    /// Most records per pull batch (1..=4096).
    #[serde(default = "defaults::batch_size")]
    pub batch_size: u32,
    /// First reconnect delay, in ms.
    #[serde(default = "defaults::backoff_min_ms")]
    pub backoff_min_ms: u64,
    /// Longest reconnect delay, in ms.
    #[serde(default = "defaults::backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// An empty batch on every follow stream this node serves, this often,
    /// in ms (at least 100, below the silence limit). Default: 15 000, or
    /// a third of the silence limit when that is shorter.
    #[serde(default)]
    pub heartbeat_ms: Option<u64>,
    /// A follow stream silent this long is reopened, in ms (at least 100).
    #[serde(default = "defaults::silence_limit_ms")]
    pub silence_limit_ms: u64,
    /// Peers dialled elsewhere than at their roster endpoint.
    #[serde(default)]
    pub peers: Vec<RawPeerEndpoint>,
}

impl Default for RawSync {
    fn default() -> Self {
        Self {
            batch_size: defaults::batch_size(),
            backoff_min_ms: defaults::backoff_min_ms(),
            backoff_max_ms: defaults::backoff_max_ms(),
            heartbeat_ms: None,
            silence_limit_ms: defaults::silence_limit_ms(),
            peers: Vec::new(),
        }
    }
}

/// `[[sync.peers]]`: where this node dials a peer, when not at the
/// roster's endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPeerEndpoint {
    /// The peer's node id; a roster member.
    pub id: String,
    /// `host:port` to dial instead.
    pub endpoint: String,
}

/// `[log]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// `text` (the default) or `json`.
    #[serde(default)]
    pub format: LogFormat,
}

/// `[matching]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatching {
    /// The federation's matching key (mode 0600). Required in the section.
    pub key: Option<PathBuf>,
    /// The key's epoch (at least 1).
    #[serde(default = "defaults::matching_epoch")]
    pub epoch: u32,
}

/// `[oprf]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOprf {
    /// This member's OPRF key files (mode 0600), one per epoch, as
    /// `enlace keys generate-oprf` writes them. At least one.
    #[serde(default)]
    pub keys: Vec<PathBuf>,
    /// The key this node keeps its agencies' identifiers under, so that
    /// it can re-key them at a rotation (mode 0600, `enlace keys
    /// generate-local`). Required in the section.
    pub identifiers_key: Option<PathBuf>,
}

/// `[records]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRecords {
    /// `expires_at` of a record whose publisher gives none, in days.
    #[serde(default = "defaults::default_validity_days")]
    pub default_validity_days: u32,
    /// The longest validity a record may have, in days.
    #[serde(default = "defaults::max_validity_days")]
    pub max_validity_days: u32,
    /// How often expired content is purged, in ms (at least 10).
    #[serde(default = "defaults::expiry_check_ms")]
    pub expiry_check_ms: u64,
}

impl Default for RawRecords {
    fn default() -> Self {
        Self {
            default_validity_days: defaults::default_validity_days(),
            max_validity_days: defaults::max_validity_days(),
            expiry_check_ms: defaults::expiry_check_ms(),
        }
    }
}

/// `[agency]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgency {
    /// Role of a client not listed: `reader` (the default), `publisher`
    /// or `admin`.
    pub default_role: Option<String>,
    /// Roles of named clients.
    #[serde(default)]
    pub clients: Vec<RawClientRole>,
    /// Contact point set on published records that name none.
    pub contact: Option<RawContact>,
}

/// `[[agency.clients]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClientRole {
    /// The client certificate's CN.
    pub name: String,
    /// `reader`, `publisher` or `admin`.
    pub role: String,
}

/// `[agency.contact]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawContact {
    /// The unit to contact.
    pub unit: String,
    /// Its e-mail address.
    #[serde(default)]
    pub email: String,
    /// Its phone number.
    #[serde(default)]
    pub phone: String,
}

/// `[query]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuery {
    /// Most selectors per query (1..=256).
    #[serde(default = "defaults::max_selectors")]
    pub max_selectors: usize,
    /// Most queries per minute per asking peer (at least 1).
    #[serde(default = "defaults::max_per_minute")]
    pub max_per_minute: u32,
    /// Fan-out deadline, in ms (100..=120000).
    #[serde(default = "defaults::deadline_ms")]
    pub deadline_ms: u64,
    /// Most identifiers per minute one peer may have this node evaluate
    /// obliviously (at least 1).
    #[serde(default = "defaults::evaluations_per_minute")]
    pub evaluations_per_minute: u32,
    /// What a peer learns on a hit: `contact` (the default) or `case_refs`.
    pub reveal: Option<String>,
}

impl Default for RawQuery {
    fn default() -> Self {
        Self {
            max_selectors: defaults::max_selectors(),
            max_per_minute: defaults::max_per_minute(),
            deadline_ms: defaults::deadline_ms(),
            evaluations_per_minute: defaults::evaluations_per_minute(),
            reveal: None,
        }
    }
}

/// `[statistics]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStatistics {
    /// `suppression` (the default) or `rounding`.
    pub method: Option<String>,
    /// Cells of 1 .. threshold-1 are suppressed (at least 3; default 5).
    pub threshold: Option<u32>,
    /// The rounding base (at least 2; default 5).
    pub rounding_base: Option<u32>,
    /// How long a published report stays (days; default 1825, at most
    /// `records.max_validity_days`).
    pub validity_days: Option<u32>,
    /// `[[statistics.population]]`: the population for SDG 16.2.2 rates.
    #[serde(default)]
    pub population: Vec<RawPopulation>,
}

/// `[[statistics.population]]`: one year's population figure.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPopulation {
    pub year: u32,
    pub count: u64,
    pub source: String,
}

/// `[audit]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    /// How often the latest checkpoint is sent to the peers, in ms
    /// (100..=86400000).
    #[serde(default = "defaults::checkpoint_interval_ms")]
    pub checkpoint_interval_ms: u64,
    /// Days an entry is kept: 0 (the default) keeps everything; else at
    /// least 30.
    #[serde(default)]
    pub retention_days: u32,
}

impl Default for RawAudit {
    fn default() -> Self {
        Self {
            checkpoint_interval_ms: defaults::checkpoint_interval_ms(),
            retention_days: 0,
        }
    }
}

/// `[reload]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReload {
    /// How often the TLS files are checked for changes, in ms; 0: on
    /// SIGHUP only; else at least 100.
    #[serde(default = "defaults::poll_ms")]
    pub poll_ms: u64,
}

impl Default for RawReload {
    fn default() -> Self {
        Self {
            poll_ms: defaults::poll_ms(),
        }
    }
}

/// `[metrics]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    /// Address of the metrics listener; absent or empty: none.
    pub listen: Option<String>,
}
