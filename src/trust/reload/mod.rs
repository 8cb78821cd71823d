//! The TLS configurations a running node uses, and reloading them without
//! a restart.
//!
//! Why: certificates are renewed, CRLs republished and rosters amended on
//! schedules of their own, and a restart drops every peer's replication
//! stream and every agency client's live watch. A rotation should not.
//!
//! How: [`LiveTls`] holds the server configurations of the peer, agency
//! and metrics listeners and one client configuration per peer, each
//! behind a `watch` channel. The listeners read theirs once per accepted
//! connection and the connectors once per new connection
//! ([`crate::trust::tls::ServerTls`], [`crate::trust::tls::ClientTls`]), so a swap
//! changes the next handshake; established connections check their peer
//! again against the new configuration and are cut if it no longer
//! passes (see [`crate::trust::tls`]).
//!
//! When: on SIGHUP, and when the content of a watched file changes (the
//! configuration file, the roster and the CA files it names, the node
//! certificate and key, the agency CA and every CRL), checked every
//! `reload.poll_ms`. A reload reads and validates the configuration file
//! whole through [`crate::trust::load::settings`], with the same rules as at start,
//! and builds new configurations from it. If anything fails, the
//! configuration in use stays and an ERROR names the file and the rule.
//! The result is a [`ReloadOutcome`]: which files changed and the old and
//! new certificate, for the log and the audit trail.
//! The certificates of the configuration in use and their expiry
//! ([`LiveTls::certificates`]) are swapped with it, so the daily expiry
//! warning and the certificate metrics see a renewal at once.
//!
//! A changed roster is installed for the whole node ([`LiveTls::roster`]):
//! TLS accepts and dials the members it lists, records are verified with
//! its signing keys, queries go to its members, and the node starts a
//! replicator for each member added and stops the one of each member
//! removed. What a reload does not change: the listen addresses, the store
//! and the node's own signing and matching keys;
//! [`ReloadOutcome::restart_needed`] says so when it applies.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use crate::config::ConfigError;
use crate::records::model::NodeId;
use crate::trust::load::{self, LoadedSettings};
use crate::trust::tls::{self, ClientTls, PeerClientConfigs, ServerSide, ServerTls, TlsError};

mod certificates;
mod persist;
mod stamps;

use certificates::certificates;
pub use certificates::{CertExpiry, CertSummary, EXPIRY_WARNING_DAYS};
use persist::persist_chain;
use stamps::{Stamps, differences, restamp, stamp, watched};

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("node.id changed from {running} to {configured}; that takes a restart")]
    NodeChanged { running: NodeId, configured: NodeId },
    #[error("TLS configuration: {0}")]
    Tls(#[from] TlsError),
    #[error("another reload panicked; the configuration in use is kept")]
    Poisoned,
    #[error(
        "the roster chain went back from version {in_force} to {loaded}: a version this node adopted is missing from {dir}; the roster in use is kept (restore the file, or `enlace roster verify --chain` the directory)"
    )]
    RosterRollback {
        in_force: u64,
        loaded: u64,
        dir: PathBuf,
    },
    #[error("cannot persist roster version {version}: {reason}")]
    RosterPersist { version: u64, reason: String },
}

/// What set a reload off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// SIGHUP.
    Signal,
    /// A watched file's content changed.
    FileChange,
    /// A direct call to [`LiveTls::reload`].
    Request,
    /// A roster version approved by a threshold, just persisted by the
    /// roster governor (`crate::governance`).
    Adoption,
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Signal => "SIGHUP",
            Self::FileChange => "file change",
            Self::Request => "request",
            Self::Adoption => "roster adoption",
        })
    }
}

/// What one reload did.
#[derive(Debug, Clone)]
pub struct ReloadOutcome {
    pub trigger: Trigger,
    /// Watched files whose content changed since the configuration in use
    /// was loaded (or that appeared or disappeared), as `"<role> <path>"`,
    /// e.g. `"tls.cert /etc/enlace/tls/node.crt"`. Empty: nothing changed
    /// and nothing was swapped.
    pub changed: Vec<String>,
    /// The node certificate before the reload.
    pub old_certificate: CertSummary,
    /// The node certificate after it (the same when it did not change).
    pub new_certificate: CertSummary,
    /// Changes read but applied only at the next restart.
    pub restart_needed: Vec<String>,
    /// The roster version in force before and after (version, hash); the
    /// same when the roster did not change.
    pub old_roster: (u64, [u8; 32]),
    pub new_roster: (u64, [u8; 32]),
}

impl ReloadOutcome {
    /// Whether a new roster version came into force.
    pub fn roster_changed(&self) -> bool {
        self.old_roster != self.new_roster
    }

    /// Whether new configurations were installed.
    pub fn applied(&self) -> bool {
        !self.changed.is_empty()
    }
}

/// The configurations built from one [`LoadedSettings`].
struct Built {
    peer_server: ServerSide,
    agency_server: ServerSide,
    metrics_server: ServerSide,
    peer_clients: PeerClientConfigs,
}

fn build(settings: &LoadedSettings, refused: &Arc<AtomicU64>) -> Result<Built, TlsError> {
    let mut peer_clients = PeerClientConfigs::new();
    for m in settings.roster.members() {
        if m.id == settings.node_id {
            continue;
        }
        peer_clients.insert(
            m.id.clone(),
            tls::peer_client_config_with_crls(
                &settings.roster,
                &settings.tls,
                &m.id,
                &settings.peer_crls,
                refused,
            )?,
        );
    }
    Ok(Built {
        peer_server: tls::peer_server_config_with_crls(
            &settings.roster,
            &settings.tls,
            &settings.peer_crls,
        )?,
        agency_server: tls::agency_server_config_with_crls(
            &settings.agency_ca,
            &settings.tls,
            &settings.agency_crls,
        )?,
        metrics_server: tls::metrics_server_config_with_crls(
            &settings.agency_ca,
            &settings.tls,
            &settings.agency_crls,
        )?,
        peer_clients,
    })
}

/// What the configurations in use were built from.
struct Current {
    stamps: Stamps,
    certificate: CertSummary,
    certificates: Vec<CertExpiry>,
    listen: Listen,
}

/// The listen addresses: peer, agency, metrics.
type Listen = (
    std::net::SocketAddr,
    std::net::SocketAddr,
    Option<std::net::SocketAddr>,
);

fn listen(settings: &LoadedSettings) -> Listen {
    (
        settings.peer_listen,
        settings.agency_listen,
        settings.metrics_listen,
    )
}

/// The node's TLS configurations, swappable at run time.
pub struct LiveTls {
    /// The agency roles and query limits in force: reloaded with the rest.
    policy: watch::Sender<Arc<Policy>>,
    node_id: NodeId,
    config_path: PathBuf,
    data_dir: PathBuf,
    poll: Option<Duration>,
    peer_server: watch::Sender<ServerSide>,
    agency_server: watch::Sender<ServerSide>,
    metrics_server: watch::Sender<ServerSide>,
    peer_clients: watch::Sender<Arc<PeerClientConfigs>>,
    /// The roster the whole node uses: TLS, record verification, the
    /// replicators (one per member) and query fan-out.
    roster: watch::Sender<Arc<crate::trust::roster::Roster>>,
    /// The verified chain the roster in force heads.
    chain: Mutex<Arc<crate::trust::chain::Walk>>,
    /// Also serialises reloads.
    current: Mutex<Current>,
    outcomes: broadcast::Sender<ReloadOutcome>,
    /// Server certificates refused on outgoing connections to peers.
    peer_servers_refused: Arc<AtomicU64>,
    #[cfg(unix)]
    hangup: Mutex<Option<tokio::signal::unix::Signal>>,
}

impl std::fmt::Debug for LiveTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveTls")
            .field("node_id", &self.node_id)
            .field("config_path", &self.config_path)
            .finish_non_exhaustive()
    }
}

/// The parts of the configuration that decide what a caller may do, as
/// reloaded: the agency clients' roles and contact point, and the query
/// limits and disclosure policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub agency: crate::config::AgencyConfig,
    pub query: crate::config::QueryConfig,
    pub statistics: crate::config::StatisticsConfig,
}

impl Policy {
    fn of(settings: &LoadedSettings) -> Self {
        Self {
            agency: settings.agency.clone(),
            query: settings.query.clone(),
            statistics: settings.statistics.clone(),
        }
    }
}

impl LiveTls {
    /// The agency roles and query limits in force now.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy.borrow().clone()
    }

    /// Builds the configurations from validated settings. Inside a Tokio
    /// runtime it also installs the SIGHUP handler at once, so that from
    /// here on a SIGHUP reloads rather than ends the process.
    pub fn new(settings: &LoadedSettings) -> Result<Self, ReloadError> {
        persist_chain(settings)?;
        let peer_servers_refused = Arc::new(AtomicU64::new(0));
        let built = build(settings, &peer_servers_refused)?;
        let current = Current {
            stamps: stamp(&watched(settings)),
            certificate: CertSummary::of(settings)?,
            certificates: certificates(settings),
            listen: listen(settings),
        };
        // NOTE: stamped after the chain is persisted, so that writing it
        // is not taken for a change.
        #[cfg(unix)]
        let hangup = match tokio::runtime::Handle::try_current() {
            Ok(_) => match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                Ok(s) => Some(s),
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGHUP; reloads only on file changes");
                    None
                }
            },
            Err(_) => None,
        };
        Ok(Self {
            policy: watch::channel(Arc::new(Policy::of(settings))).0,
            node_id: settings.node_id.clone(),
            config_path: settings.path.clone(),
            data_dir: settings.data_dir.clone(),
            poll: settings.reload.poll,
            peer_server: watch::channel(built.peer_server).0,
            agency_server: watch::channel(built.agency_server).0,
            metrics_server: watch::channel(built.metrics_server).0,
            peer_clients: watch::channel(Arc::new(built.peer_clients)).0,
            roster: watch::channel(settings.roster.clone()).0,
            chain: Mutex::new(settings.chain.clone()),
            current: Mutex::new(current),
            outcomes: broadcast::channel(16).0,
            peer_servers_refused,
            #[cfg(unix)]
            hangup: Mutex::new(hangup),
        })
    }

    /// How many server certificates outgoing connections to peers have
    /// refused (wrong member, no EKU, untrusted, revoked, expired, ...).
    pub fn peer_servers_refused(&self) -> u64 {
        self.peer_servers_refused.load(Ordering::Relaxed)
    }

    /// The peer listener's configuration source.
    pub(crate) fn peer_server(&self) -> ServerTls {
        self.peer_server.subscribe().into()
    }

    /// The agency listener's configuration source.
    pub(crate) fn agency_server(&self) -> ServerTls {
        self.agency_server.subscribe().into()
    }

    /// The metrics listener's configuration source.
    pub(crate) fn metrics_server(&self) -> ServerTls {
        self.metrics_server.subscribe().into()
    }

    /// The configuration source for connections to `peer`.
    pub fn peer_client(&self, peer: &NodeId) -> ClientTls {
        ClientTls::Peer {
            configs: self.peer_clients.subscribe(),
            peer: peer.clone(),
        }
    }

    /// The node certificate new handshakes present.
    pub fn certificate(&self) -> Option<CertSummary> {
        self.current.lock().ok().map(|c| c.certificate.clone())
    }

    /// Every certificate the configuration in use relies on, with its
    /// expiry.
    pub fn certificates(&self) -> Vec<CertExpiry> {
        self.current
            .lock()
            .map(|c| c.certificates.clone())
            .unwrap_or_default()
    }

    /// Every certificate this node relies on (its own chain, the agency CA,
    /// every roster CA) that expires within `days`, with the days left
    /// (negative once expired), as of its last reload.
    pub fn expiring_certificates(&self, days: i64) -> Vec<(String, i64)> {
        certificates::expiring(&self.certificates(), days)
    }

    /// Logs a warning for every certificate expiring within 30 days.
    pub(crate) fn warn_expiring_certificates(&self) {
        certificates::warn_expiring(&self.certificates());
    }

    /// The roster in use now.
    pub fn roster(&self) -> Arc<crate::trust::roster::Roster> {
        self.roster.borrow().clone()
    }

    /// The versions of the chain in force, from the start (version 1 or
    /// the anchored one) to the roster in force, with their approvals.
    pub fn chain(&self) -> Vec<crate::trust::chain::Signed> {
        self.chain
            .lock()
            .map(|c| c.chain.clone())
            .unwrap_or_default()
    }

    /// The node's data directory (its own chain directory is in it).
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// Notified when a reload installs a new roster.
    pub(crate) fn roster_changes(&self) -> watch::Receiver<Arc<crate::trust::roster::Roster>> {
        self.roster.subscribe()
    }

    /// Every successful reload that changed something, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ReloadOutcome> {
        self.outcomes.subscribe()
    }

    /// Re-reads the configuration file and everything it names, and
    /// installs new TLS configurations if any watched file changed. On
    /// error nothing is swapped.
    pub fn reload(&self, trigger: Trigger) -> Result<ReloadOutcome, ReloadError> {
        let mut current = self.current.lock().map_err(|_| ReloadError::Poisoned)?;
        let before = restamp(&current.stamps);
        let settings = load::settings(&self.config_path, Some(&self.data_dir))?;
        if settings.node_id != self.node_id {
            return Err(ReloadError::NodeChanged {
                running: self.node_id.clone(),
                configured: settings.config.node_id,
            });
        }
        // Persisted before it is used (and before the files are stamped,
        // so that writing it is not taken for a change): a crash from here
        // on restarts on the new version, never on one that was acted on
        // and then lost.
        persist_chain(&settings)?;
        let mut stamps = stamp(&watched(&settings));
        // NOTE: a file rewritten while it was being loaded may hold
        // content other than what was loaded: forget its digest, so that
        // the next check sees a change and loads it again.
        for (path, s) in stamps.iter_mut() {
            if before.get(path).is_some_and(|b| b.digest != s.digest) {
                s.digest = None;
            }
        }
        let changed = differences(&current.stamps, &stamps);
        let certificate = CertSummary::of(&settings)?;
        let in_force = self.roster();
        let position = |r: &crate::trust::roster::Roster| (r.position.version, r.position.hash);
        let mut outcome = ReloadOutcome {
            trigger,
            changed,
            old_certificate: current.certificate.clone(),
            new_certificate: certificate.clone(),
            restart_needed: Vec::new(),
            old_roster: position(&in_force),
            new_roster: position(&in_force),
        };
        if !outcome.applied() {
            return Ok(outcome);
        }
        if settings.roster.position.version < in_force.position.version {
            return Err(ReloadError::RosterRollback {
                in_force: in_force.position.version,
                loaded: settings.roster.position.version,
                dir: crate::trust::chain::dir::adopted_dir(&self.data_dir),
            });
        }
        let built = build(&settings, &self.peer_servers_refused)?;
        let roster_changed = settings.roster.position.hash != in_force.position.hash;
        outcome.new_roster = position(&settings.roster);
        let (peer, agency, metrics) = current.listen;
        if (settings.peer_listen, settings.agency_listen) != (peer, agency) {
            outcome.restart_needed.push(format!(
                "listen: the node keeps listening on {peer} and {agency} until a restart"
            ));
        }
        if settings.metrics_listen != metrics {
            outcome.restart_needed.push(format!(
                "metrics.listen: the metrics listener stays {} until a restart",
                metrics.map_or("off".to_owned(), |a| format!("on {a}"))
            ));
        }
        self.peer_server.send_replace(built.peer_server);
        self.agency_server.send_replace(built.agency_server);
        self.metrics_server.send_replace(built.metrics_server);
        self.peer_clients.send_replace(Arc::new(built.peer_clients));
        if roster_changed {
            self.roster.send_replace(settings.roster.clone());
        }
        if let Ok(mut chain) = self.chain.lock() {
            *chain = settings.chain.clone();
        }
        // Roles and query limits take effect now: a privilege the operator
        // removed is gone with the reload that says so.
        self.policy.send_replace(Arc::new(Policy::of(&settings)));
        current.stamps = stamps;
        current.certificate = certificate;
        current.certificates = certificates(&settings);
        drop(current);
        let _ = self.outcomes.send(outcome.clone());
        Ok(outcome)
    }

    /// Reloads on SIGHUP and when a watched file changes, until `stop`.
    /// Each outcome is logged: INFO for a reload, ERROR (naming the file
    /// and the rule) for one that failed and left the old configuration.
    pub async fn watch(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        #[cfg(unix)]
        let mut hangup = self.hangup.lock().ok().and_then(|mut h| h.take());
        let mut tick = self.poll.map(|p| {
            let mut t = tokio::time::interval(p);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        // The stamps of a configuration that failed to load: not retried
        // (nor logged again) until a file changes once more or SIGHUP.
        let mut failed: Option<Stamps> = None;
        loop {
            #[cfg(unix)]
            let signal = async {
                match hangup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let signal = std::future::pending::<Option<()>>();
            let poll = async {
                match tick.as_mut() {
                    Some(t) => t.tick().await,
                    None => std::future::pending().await,
                }
            };
            let trigger = tokio::select! {
                _ = signal => Trigger::Signal,
                _ = poll => Trigger::FileChange,
                _ = crate::shutdown::stopped(&mut stop) => break,
            };
            if trigger == Trigger::FileChange {
                let live = self.clone();
                let Ok(Some(now)) = tokio::task::spawn_blocking(move || {
                    let current = live.current.lock().ok()?;
                    Some(restamp(&current.stamps)).filter(|now| *now != current.stamps)
                })
                .await
                else {
                    continue;
                };
                if failed.as_ref() == Some(&now) {
                    continue;
                }
                failed = Some(now);
            }
            let live = self.clone();
            let result = tokio::task::spawn_blocking(move || live.reload(trigger)).await;
            match result {
                Ok(Ok(outcome)) => {
                    failed = None;
                    log_outcome(&outcome);
                }
                Ok(Err(error)) => {
                    tracing::error!(%trigger, %error, "reload failed; the TLS configuration in use is kept");
                }
                Err(error) => {
                    tracing::error!(%trigger, %error, "reload task failed; the TLS configuration in use is kept");
                }
            }
        }
    }
}

fn log_outcome(o: &ReloadOutcome) {
    if !o.applied() {
        tracing::info!(trigger = %o.trigger, "reload: no TLS file changed");
        return;
    }
    tracing::info!(
        trigger = %o.trigger,
        changed = %o.changed.join(", "),
        old_serial = %o.old_certificate.serial,
        old_sha256 = %o.old_certificate.sha256,
        new_serial = %o.new_certificate.serial,
        new_sha256 = %o.new_certificate.sha256,
        "TLS configuration reloaded; new handshakes use it, established connections are checked again"
    );
    if o.roster_changed() {
        tracing::info!(
            old_version = o.old_roster.0,
            new_version = o.new_roster.0,
            hash = %crate::trust::chain::hex(&o.new_roster.1),
            "roster version adopted"
        );
    }
    for note in &o.restart_needed {
        tracing::warn!(%note, "reload: part of the change needs a restart");
    }
}
