//! `enlace doctor`: checks a node's configuration, key files, certificates,
//! roster entry and peers, and says what is wrong and how to fix it.
//!
//! Every check ends in a verdict — `ok`, `warn` or `FAIL` — and a message
//! that names the file, field or peer concerned. The checks stand on their
//! own where they can: when the configuration does not load, the key files,
//! certificates and roster it names are still examined, read from the raw
//! file with the same `ENLACE__…` environment overrides, so that one run
//! shows every problem. A key file that others can read is refused by the
//! loader but reported here as a `key-file` FAIL, and the configuration is
//! loaded again without that rule, so the checks that need it (the signing
//! key against the roster, dialling the peers) still run. Only a
//! configuration that does not load for another reason skips them.
//!
//! The peer check is real: a TLS 1.3 handshake with the configuration every
//! replicator uses ([`crate::trust::tls::peer_client_config`]) and a gRPC health
//! check of the peer's federation service, so a pass means replication can
//! connect.
//!
//! `certificates` judges the node certificate and the CAs' expiry;
//! `federation` the node's roster entry and its peers.

mod certificates;
mod federation;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::records::model::NodeId;
use crate::trust::roster::{self, Roster};

/// Certificates that expire within this many days are flagged: the same
/// threshold as the running node's warnings and metrics.
pub use crate::trust::reload::EXPIRY_WARNING_DAYS;

/// How long a peer has for the TCP connection, the TLS handshake and the
/// health check together.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(5);

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Ok,
    /// Works today, but needs attention (a certificate near expiry, a data
    /// directory others can list).
    Warn,
    /// Does not work, or would refuse to start.
    Fail,
}

impl Status {
    /// As the human output shows it: `ok`, `warn`, `FAIL`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Fail => "FAIL",
        }
    }

    /// As `--json` shows it: `ok`, `warn`, `fail`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Fail => "fail",
        }
    }
}

/// One verdict.
#[derive(Debug, Clone)]
pub struct Check {
    /// Which check: `config`, `key-file`, `data-dir`, `cert-chain`,
    /// `cert-identity`, `cert-san`, `cert-eku`, `cert-expiry`, `ca-expiry`,
    /// `crl`, `roster` or `peer`.
    pub check: &'static str,
    pub status: Status,
    pub message: String,
}

/// Everything a run found.
#[derive(Debug, Default)]
pub struct Diagnosis {
    pub checks: Vec<Check>,
    /// Whether [`crate::trust::load::settings`] accepted the configuration.
    pub config_loaded: bool,
}

impl Diagnosis {
    pub fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }

    /// No check failed (warnings allowed).
    pub(crate) fn all_ok(&self) -> bool {
        self.count(Status::Fail) == 0
    }
}

/// Runs every check on the node configured by `config` and prints one
/// line per check (or one JSON object per line with `json`). `Ok(all_ok)`
/// when the configuration loads; `Err` when it does not (after printing
/// what could still be checked), which the CLI turns into exit code 64.
pub async fn run(config: &Path, data_dir: Option<&Path>, json: bool) -> Result<bool, String> {
    let diagnosis = diagnose(config, data_dir, |c| print(c, json)).await;
    if !json {
        use std::io::Write;
        let _ = writeln!(
            std::io::stdout().lock(),
            "doctor: {} checks: {} ok, {} warn, {} FAIL",
            diagnosis.checks.len(),
            diagnosis.count(Status::Ok),
            diagnosis.count(Status::Warn),
            diagnosis.count(Status::Fail),
        );
    }
    if !diagnosis.config_loaded {
        return Err(if diagnosis.checks.iter().any(|c| c.check == "peer") {
            format!(
                "configuration {} does not load: a node refuses to start until the FAILs above are fixed",
                config.display()
            )
        } else {
            format!(
                "configuration {} does not load; the signing key against the roster and the peers were not checked",
                config.display()
            )
        });
    }
    Ok(diagnosis.all_ok())
}

fn print(c: &Check, json: bool) {
    use std::io::Write;
    // NOTE: a closed stdout (`enlace doctor | head`) must not panic.
    let mut out = std::io::stdout().lock();
    let _ = if json {
        writeln!(
            out,
            "{}",
            serde_json::json!({"check": c.check, "status": c.status.code(), "message": c.message})
        )
    } else {
        writeln!(
            out,
            "{:<4}  {:<13}  {}",
            c.status.label(),
            c.check,
            c.message
        )
    };
}

/// Runs every check, handing each verdict to `on_check` as it is reached
/// (the peer checks take up to [`PEER_TIMEOUT`]).
pub async fn diagnose(
    config: &Path,
    data_dir_override: Option<&Path>,
    on_check: impl FnMut(&Check),
) -> Diagnosis {
    let mut r = Report {
        diagnosis: Diagnosis::default(),
        on_check,
    };
    let named = Named::read(config);
    let settings = match crate::trust::load::settings(config, data_dir_override) {
        Ok(s) => {
            r.push(
                "config",
                Status::Ok,
                format!(
                    "{} is valid: node {} in federation {}",
                    config.display(),
                    s.node_id,
                    s.roster.federation
                ),
            );
            r.diagnosis.config_loaded = true;
            Some(s)
        }
        Err(e) => {
            for problem in &e.problems {
                r.push(
                    "config",
                    Status::Fail,
                    format!("{}: {problem}", config.display()),
                );
            }
            // A loose key file is refused above and reported below; the
            // checks that need the loaded configuration still run.
            crate::trust::load::settings_despite_key_permissions(config, data_dir_override).ok()
        }
    };
    let named = named.unwrap_or_default();
    let now = OffsetDateTime::now_utc();

    for (field, path) in [
        ("tls.key", &named.tls_key),
        ("signing.key", &named.signing_key),
        ("matching.key", &named.matching_key),
        ("oprf.identifiers_key", &named.identifiers_key),
    ] {
        if let Some(path) = path {
            key_file(&mut r, field, path);
        }
    }
    for (i, path) in named.oprf_keys.iter().enumerate() {
        key_file(&mut r, &format!("oprf.keys[{i}]"), path);
    }
    let dir = settings
        .as_ref()
        .map(|s| s.data_dir.clone())
        .or_else(|| data_dir_override.map(Path::to_path_buf))
        .or(named.data_dir.clone());
    if let Some(dir) = dir
        && data_dir(&mut r, &dir)
        && let Some(s) = &settings
    {
        store(&mut r, &dir, &s.node_id, s.cache_bytes);
    }

    // What the certificate and roster checks need, from the loaded
    // configuration or else straight from the files it names.
    let roster: Option<Arc<Roster>> = match &settings {
        Some(s) => Some(s.roster.clone()),
        None => named
            .chain
            .as_deref()
            .and_then(|p| crate::trust::load::chain_of(p, named.data_dir.as_deref(), None).ok())
            .map(|w| w.head().version.roster.clone()),
    };
    let node_id = match &settings {
        Some(s) => Some(s.node_id.clone()),
        None => named
            .node_id
            .as_deref()
            .and_then(|id| NodeId::parse(id).ok()),
    };
    let chain = match &settings {
        Some(s) => Some(s.tls.chain.clone()),
        None => named
            .tls_cert
            .as_deref()
            .and_then(|p| roster::load_certs(p).ok()),
    };
    let listen = match &settings {
        Some(s) => Some(s.peer_listen),
        None => named.peer_listen.as_deref().and_then(|a| a.parse().ok()),
    };
    let cert_path = named.tls_cert.clone().unwrap_or_default();

    if let (Some(roster), Some(id), Some(chain)) = (&roster, &node_id, &chain)
        && roster.member(id).is_some()
    {
        certificates::node_certificate(&mut r, &cert_path, chain, roster, id, listen, now);
    }
    let agency_ca = match &settings {
        Some(s) => Some(s.agency_ca.clone()),
        None => named
            .agency_ca
            .as_deref()
            .and_then(|p| roster::load_certs(p).ok()),
    };
    if let (Some(certs), Some(path)) = (&agency_ca, &named.agency_ca) {
        for cert in certs {
            certificates::ca_expiry(
                &mut r,
                &format!("tls.agency_client_ca {}", path.display()),
                cert,
                now,
            );
        }
    }
    if let Some(roster) = &roster {
        for m in roster.members() {
            for cert in &m.ca_certs {
                certificates::ca_expiry(&mut r, &format!("roster CA of {}", m.id), cert, now);
            }
        }
        if let Some(id) = &node_id {
            federation::roster_entry(&mut r, roster, id, settings.as_ref(), listen, now);
        }
    }
    if let Some(settings) = &settings {
        let files: Vec<(&'static str, &PathBuf)> = settings
            .tls_files
            .peer_crls
            .iter()
            .map(|p| ("tls.peer_crls", p))
            .chain(
                settings
                    .tls_files
                    .agency_client_crls
                    .iter()
                    .map(|p| ("tls.agency_client_crls", p)),
            )
            .collect();
        certificates::crls(&mut r, &files, settings.tls.chain.first(), now);
        federation::peers(&mut r, settings).await;
    }
    r.diagnosis
}

/// Collects verdicts and hands each to the caller as it comes.
struct Report<F> {
    diagnosis: Diagnosis,
    on_check: F,
}

impl<F: FnMut(&Check)> Report<F> {
    fn push(&mut self, check: &'static str, status: Status, message: String) {
        let c = Check {
            check,
            status,
            message,
        };
        (self.on_check)(&c);
        self.diagnosis.checks.push(c);
    }
}

/// What the raw configuration names, read the way [`crate::config::load`]
/// reads it (the file, then `ENLACE__…` overrides) but without validating,
/// so the files can be checked even when the configuration is refused.
#[derive(Debug, Default)]
struct Named {
    node_id: Option<String>,
    chain: Option<PathBuf>,
    peer_listen: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    agency_ca: Option<PathBuf>,
    signing_key: Option<PathBuf>,
    matching_key: Option<PathBuf>,
    oprf_keys: Vec<PathBuf>,
    identifiers_key: Option<PathBuf>,
    data_dir: Option<PathBuf>,
}

impl Named {
    fn read(path: &Path) -> Option<Self> {
        let built = ::config::Config::builder()
            .add_source(::config::File::from(path).format(::config::FileFormat::Toml))
            .add_source(
                ::config::Environment::with_prefix("ENLACE")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true),
            )
            .build()
            .ok()?;
        let base = path.parent().unwrap_or(Path::new("."));
        let text = |key: &str| built.get_string(key).ok().filter(|s| !s.is_empty());
        let file = |key: &str| {
            text(key).map(|p| {
                let p = PathBuf::from(p);
                if p.is_absolute() { p } else { base.join(p) }
            })
        };
        let node_id = text("node.id");
        Some(Self {
            data_dir: file("node.data_dir")
                .or_else(|| node_id.as_deref().map(|id| PathBuf::from("data").join(id))),
            node_id,
            chain: file("federation.chain"),
            peer_listen: text("listen.peer"),
            tls_cert: file("tls.cert"),
            tls_key: file("tls.key"),
            agency_ca: file("tls.agency_client_ca"),
            signing_key: file("signing.key"),
            matching_key: file("matching.key"),
            oprf_keys: built
                .get_array("oprf.keys")
                .unwrap_or_default()
                .into_iter()
                .filter_map(|v| v.into_string().ok())
                .map(|p| {
                    let p = PathBuf::from(p);
                    if p.is_absolute() { p } else { base.join(p) }
                })
                .collect(),
            identifiers_key: file("oprf.identifiers_key"),
        })
    }
}

/// A private key must be readable and writable by its owner only.
fn key_file<F: FnMut(&Check)>(r: &mut Report<F>, field: &str, path: &Path) {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            r.push(
                "key-file",
                Status::Fail,
                format!("{field} {}: cannot read: {e}", path.display()),
            );
            return;
        }
    };
    if !meta.is_file() {
        r.push(
            "key-file",
            Status::Fail,
            format!("{field} {}: is not a regular file", path.display()),
        );
        return;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            r.push(
                "key-file",
                Status::Fail,
                format!(
                    "{field} {path}: readable or writable by group or others (mode {mode:04o}); run: chmod 600 {path}",
                    path = path.display()
                ),
            );
            return;
        }
        r.push(
            "key-file",
            Status::Ok,
            format!("{field} {}: mode {mode:04o}", path.display()),
        );
    }
    #[cfg(not(unix))]
    r.push(
        "key-file",
        Status::Ok,
        format!(
            "{field} {}: present (permissions not checked on this platform)",
            path.display()
        ),
    );
}

/// The store holds other members' records: owner only.
/// The store in `dir`: opened if the node is stopped, to see that it is
/// this node's and reads whole.
fn store<F: FnMut(&Check)>(r: &mut Report<F>, dir: &Path, id: &NodeId, cache_bytes: u64) {
    use crate::store::{Store, StoreError};
    if Store::in_use(dir) {
        r.push(
            "store",
            Status::Ok,
            format!("{}: in use by the running node (not opened)", dir.display()),
        );
        return;
    }
    match Store::open_existing(dir, id, cache_bytes) {
        Ok(s) => {
            let w = s.watermark();
            r.push(
                "store",
                Status::Ok,
                format!(
                    "{}: node {id}'s store opens whole: own log up to seq {}, audit log of {} entries",
                    dir.display(),
                    w.own_seq,
                    w.audit
                ),
            );
        }
        Err(StoreError::Locked { .. }) => r.push(
            "store",
            Status::Ok,
            format!("{}: in use by the running node (not opened)", dir.display()),
        ),
        Err(StoreError::NoStore { .. }) => r.push(
            "store",
            Status::Warn,
            format!(
                "{}: holds no store: right for a node that never ran here; if it has, node.data_dir or --data-dir names the wrong directory, and the node would start on an empty log",
                dir.display()
            ),
        ),
        Err(e) => r.push("store", Status::Fail, e.to_string()),
    }
}

/// Whether the data directory exists, and is a directory.
fn data_dir<F: FnMut(&Check)>(r: &mut Report<F>, dir: &Path) -> bool {
    // NOTE: only the default (`data/<id>`) is relative, and it is relative
    // to the node's working directory, which need not be doctor's.
    let shown = if dir.is_relative() {
        format!(
            "{} (node.data_dir is unset: relative to the working directory; set an absolute path in production)",
            dir.display()
        )
    } else {
        dir.display().to_string()
    };
    let shown = shown.as_str();
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            r.push(
                "data-dir",
                Status::Warn,
                format!(
                    "{shown}: does not exist yet; the node creates it with mode 0700 at its first start (if this node has run before, node.data_dir names the wrong directory)"
                ),
            );
            return false;
        }
        Err(e) => {
            r.push(
                "data-dir",
                Status::Fail,
                format!("{shown}: cannot read: {e}"),
            );
            return false;
        }
    };
    if !meta.is_dir() {
        r.push(
            "data-dir",
            Status::Fail,
            format!("{shown}: is not a directory"),
        );
        return false;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            r.push(
                "data-dir",
                Status::Warn,
                format!(
                    "{shown}: mode {mode:04o}, so group or others can reach the store; run: chmod 700 {path}",
                    path = dir.display()
                ),
            );
            return true;
        }
        r.push("data-dir", Status::Ok, format!("{shown}: mode {mode:04o}"));
    }
    #[cfg(not(unix))]
    r.push("data-dir", Status::Ok, format!("{shown}: present"));
    true
}
