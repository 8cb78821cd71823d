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
//! `deploy/config/node.toml` is a complete, commented example of every
//! section; a test checks that it parses and validates.
//!
//! This module is plain data, below the floors that use it: the file's
//! schema ([`schema`]), the validated sections, and [`validate`], which
//! checks a file without reading anything it names and reports every
//! problem at once ([`ConfigError`]; the CLI exits with code 64 on it).
//! Loading what a configuration names — the roster, certificates, keys,
//! CRLs — and the checks that need them are the trust floor's
//! (`trust::load`), which runs the same section checks in the same order
//! around its loads, so one report still names every problem.

mod endpoint;
pub mod schema;
mod sections;
pub mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use endpoint::Endpoint;
pub use schema::RawConfig;
pub use sections::{
    AgencyConfig, AuditConfig, ClientRole, DEFAULT_CACHE_BYTES, DEFAULT_CACHE_MB, HEARTBEAT,
    LogFormat, QueryConfig, RecordsConfig, ReloadConfig, Reveal, StatisticsConfig, SyncConfig,
};

use crate::records::model::NodeId;

/// Every problem found in a configuration.
#[derive(Debug, thiserror::Error)]
#[error("configuration {path} is invalid:\n  - {}", .problems.join("\n  - "))]
pub struct ConfigError {
    /// The configuration file.
    pub path: PathBuf,
    /// Each problem, naming its key (`section.key: …`).
    pub problems: Vec<String>,
}

/// The files a configuration names for TLS, resolved: what the trust
/// floor loads, and its live reload watches and re-reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// The operator's roster chain directory (`federation.chain`): the
    /// versions handed over out of band, one `<version>.roster` file each.
    pub chain: PathBuf,
    /// `federation.anchor`: the SHA-256 of the version this node trusts
    /// first; `None` to start from version 1. Not a file.
    pub anchor: Option<[u8; 32]>,
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

/// The record keys a configuration names, resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyFiles {
    /// `signing.key`.
    pub signing: PathBuf,
    /// `signing.key_id`.
    pub signing_key_id: String,
    /// `matching.key` and `matching.epoch`, if there is a `[matching]`.
    pub matching: Option<MatchingKeyFile>,
    /// `[oprf]`, if there is one.
    pub oprf: Option<OprfFiles>,
}

/// This member's OPRF key files and its identifiers key (`[oprf]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OprfFiles {
    /// `oprf.keys`, one per epoch.
    pub keys: Vec<PathBuf>,
    /// `oprf.identifiers_key`.
    pub identifiers_key: PathBuf,
}

/// The federation's matching key file and its epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchingKeyFile {
    /// `matching.key`.
    pub path: PathBuf,
    /// `matching.epoch`.
    pub epoch: u32,
}

/// A validated configuration: what the file says, checked and resolved,
/// with nothing it names read yet.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This node's id (`node.id`).
    pub node_id: NodeId,
    /// Where the store lives (`--data-dir`, else `node.data_dir`, else
    /// `data/<id>`).
    pub data_dir: PathBuf,
    /// Page cache of the store, in bytes.
    pub cache_bytes: u64,
    /// Address of the peer listener.
    pub peer_listen: SocketAddr,
    /// Address of the agency listener.
    pub agency_listen: SocketAddr,
    /// Address of the metrics listener (`metrics.listen`); `None`: no
    /// metrics listener.
    pub metrics_listen: Option<SocketAddr>,
    /// Where the TLS material comes from.
    pub tls_files: TlsFiles,
    /// Where the signing and matching keys come from.
    pub key_files: KeyFiles,
    /// How changed TLS files are noticed.
    pub reload: ReloadConfig,
    /// Replication tuning.
    pub sync: SyncConfig,
    /// The log output.
    pub log_format: LogFormat,
    /// Record validity rules.
    pub records: RecordsConfig,
    /// Agency clients' roles and the default contact point.
    pub agency: AgencyConfig,
    /// Hit/no-hit query limits and policy.
    pub query: QueryConfig,
    /// Statistical protection and population figures.
    pub statistics: StatisticsConfig,
    /// Checkpoints and retention of the audit log.
    pub audit: AuditConfig,
    /// The file it came from.
    pub path: PathBuf,
}

/// Reads the file at `path` and the `ENLACE__…` environment, without
/// validating what they say.
pub fn read(path: &Path) -> Result<RawConfig, ConfigError> {
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
    build(
        ::config::File::from(path).format(::config::FileFormat::Toml),
        path,
    )
}

/// Reads configuration `text` (as if from the file at `path`, which is
/// not read) and the `ENLACE__…` environment, without validating what they
/// say: [`read`] for text already in memory (the fuzzers, a config handed
/// over by another tool).
pub fn parse(text: &str, path: &Path) -> Result<RawConfig, ConfigError> {
    build(
        ::config::File::from_str(text, ::config::FileFormat::Toml),
        path,
    )
}

/// The file source, then the environment over it.
fn build(
    source: impl ::config::Source + Send + Sync + 'static,
    path: &Path,
) -> Result<RawConfig, ConfigError> {
    let fail = |problem: String| ConfigError {
        path: path.to_owned(),
        problems: vec![problem],
    };
    let built = ::config::Config::builder()
        .add_source(source)
        .add_source(
            ::config::Environment::with_prefix("ENLACE")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("tls.peer_crls")
                .with_list_parse_key("tls.agency_client_crls"),
        )
        .build()
        .map_err(|e| fail(format!("cannot read: {e}")))?;
    built.try_deserialize().map_err(|e| fail(format!("{e}")))
}

/// Reads `path` and the environment and validates them, without reading
/// any file the configuration names. `data_dir` (from `--data-dir`)
/// overrides the file. The node loads through `trust::load::settings`,
/// which also loads and checks what the configuration names.
pub fn load(path: &Path, data_dir: Option<&Path>) -> Result<Settings, ConfigError> {
    validate::settings(&read(path)?, path, data_dir)
}

#[cfg(test)]
mod tests;
