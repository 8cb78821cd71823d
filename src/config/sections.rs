//! The validated sections of a configuration, with the defaults they share
//! with the file's schema, and the limits other modules take from here.
//!
//! Each default is written once, as a function: serde fills an absent key
//! with it ([`super::schema`]) and the section's `Default` is built from
//! it, so the file and the code cannot disagree.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::Endpoint;
use crate::records::model::{ContactPoint, NodeId};

/// How often an idle follow stream carries an empty batch, unless
/// configured otherwise (`sync.heartbeat_ms`). The follow stream's silence
/// limit defaults to three of these.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// Page cache of a store unless configured otherwise (`node.cache_mb`), in
/// MiB.
pub const DEFAULT_CACHE_MB: u64 = 32;

/// Page cache of a store unless configured otherwise: 32 MiB.
pub const DEFAULT_CACHE_BYTES: u64 = DEFAULT_CACHE_MB * 1024 * 1024;

pub(super) fn cache_mb() -> u64 {
    DEFAULT_CACHE_MB
}
pub(super) fn batch_size() -> u32 {
    1024
}
pub(super) fn backoff_min_ms() -> u64 {
    200
}
pub(super) fn backoff_max_ms() -> u64 {
    30_000
}
pub(super) fn silence_limit_ms() -> u64 {
    3 * HEARTBEAT.as_secs() * 1000
}
pub(super) fn matching_epoch() -> u32 {
    1
}
pub(super) fn default_validity_days() -> u32 {
    365
}
pub(super) fn max_validity_days() -> u32 {
    1825
}
pub(super) fn expiry_check_ms() -> u64 {
    60_000
}
pub(super) fn max_selectors() -> usize {
    16
}
pub(super) fn max_per_minute() -> u32 {
    30
}
pub(super) fn deadline_ms() -> u64 {
    5_000
}
pub(super) fn evaluations_per_minute() -> u32 {
    120
}
pub(super) fn checkpoint_interval_ms() -> u64 {
    300_000
}
pub(super) fn poll_ms() -> u64 {
    5_000
}

fn days(d: u32) -> Duration {
    Duration::from_secs(u64::from(d) * 86_400)
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per event.
    Json,
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
            checkpoint_interval: Duration::from_millis(checkpoint_interval_ms()),
            retention: None,
        }
    }
}

/// What an agency client may do on the agency API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ClientRole {
    /// Nothing on the agency API: a certificate issued by the agency CA for
    /// another purpose (a metrics scraper) is no reader by default.
    None,
    /// List, get and watch records.
    Reader,
    /// Also publish, update, withdraw and import.
    Publisher,
    /// Also administer the node (audit export and verification).
    Admin,
}

impl ClientRole {
    /// The role a configuration names (`none`, `reader`, `publisher`,
    /// `admin`).
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Self::None),
            "reader" => Ok(Self::Reader),
            "publisher" => Ok(Self::Publisher),
            "admin" => Ok(Self::Admin),
            _ => Err(format!(
                "unknown role {s:?}; one of: none, reader, publisher, admin"
            )),
        }
    }

    /// The name a configuration gives it.
    pub fn code(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Reader => "reader",
            Self::Publisher => "publisher",
            Self::Admin => "admin",
        }
    }
}

/// Agency clients' roles and the default contact point.
#[derive(Debug, Clone)]
pub struct AgencyConfig {
    /// Role of a client not listed in `clients` (default `none`).
    pub default_role: ClientRole,
    /// Role per client name (certificate CN).
    pub clients: BTreeMap<String, ClientRole>,
    /// Contact point set on published records that name none.
    pub contact: Option<ContactPoint>,
}

impl Default for AgencyConfig {
    fn default() -> Self {
        Self {
            default_role: ClientRole::None,
            clients: Default::default(),
            contact: None,
        }
    }
}

impl AgencyConfig {
    /// The role of the client whose certificate names `client`.
    pub(crate) fn role_of(&self, client: &str) -> ClientRole {
        self.clients
            .get(client)
            .copied()
            .unwrap_or(self.default_role)
    }
}

/// Record validity rules.
#[derive(Debug, Clone)]
pub struct RecordsConfig {
    /// Validity of a record whose publisher gives no `expires_at`.
    pub default_validity: Duration,
    /// The longest validity a record may have.
    pub max_validity: Duration,
    /// How often expired content is purged.
    pub expiry_check: Duration,
}

impl Default for RecordsConfig {
    fn default() -> Self {
        Self {
            default_validity: days(default_validity_days()),
            max_validity: days(max_validity_days()),
            expiry_check: Duration::from_millis(expiry_check_ms()),
        }
    }
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
    /// How often this node sends an empty batch on a follow stream it
    /// serves, whatever else it stores meanwhile. Default 15 s.
    pub heartbeat: Duration,
    /// A follow stream silent this long (no record, no heartbeat) is
    /// dropped and reopened. Default 45 s (three heartbeats).
    pub silence_limit: Duration,
    /// Peers dialled at another address than the roster's (a VPN address,
    /// split-horizon DNS, a relay). The TLS checks are unchanged.
    pub endpoints: BTreeMap<NodeId, Endpoint>,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            batch_size: batch_size(),
            backoff_min: Duration::from_millis(backoff_min_ms()),
            backoff_max: Duration::from_millis(backoff_max_ms()),
            heartbeat: HEARTBEAT,
            silence_limit: Duration::from_millis(silence_limit_ms()),
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

/// How this node protects the statistical tables it publishes
/// (`[statistics]`; docs/statistics.md).
#[derive(Debug, Clone)]
pub struct StatisticsConfig {
    /// Suppression with a threshold, or rounding to a base.
    pub method: crate::records::stats::Method,
    /// How long a published report stays.
    pub validity: Duration,
    /// Population figures by year, for SDG 16.2.2 rates.
    pub population: BTreeMap<u16, crate::records::stats::Population>,
}

impl Default for StatisticsConfig {
    fn default() -> Self {
        Self {
            method: crate::records::stats::Method::Suppression { threshold: 5 },
            validity: days(1825),
            population: BTreeMap::new(),
        }
    }
}

impl StatisticsConfig {
    /// The population for a period's year, or the latest earlier one.
    pub fn population_for(&self, year: u16) -> Option<&crate::records::stats::Population> {
        self.population.range(..=year).next_back().map(|(_, p)| p)
    }
}

/// Query limits and policy (`[query]` in the configuration).
#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// Most selectors per query.
    pub max_selectors: usize,
    /// Most queries per minute per asking peer.
    pub max_per_minute: u32,
    /// Fan-out deadline.
    pub deadline: Duration,
    /// Most identifiers per minute one peer may have evaluated (oblivious
    /// queries and confirmations count one per identifier).
    pub evaluations_per_minute: u32,
    /// What a peer learns on a hit.
    pub reveal: Reveal,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            max_selectors: max_selectors(),
            max_per_minute: max_per_minute(),
            deadline: Duration::from_millis(deadline_ms()),
            evaluations_per_minute: evaluations_per_minute(),
            reveal: Reveal::ContactOnly,
        }
    }
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
            poll: Some(Duration::from_millis(poll_ms())),
        }
    }
}
