//! Wires a node together: its state ([`crate::state`]: store, roster,
//! signing key, TLS), the two listeners, the metrics listener, one
//! replicator per peer and the node's periodic duties (expiry purge,
//! certificate warnings, checkpoints, audit retention).
//!
//! [`Node::run`] takes listeners that are already bound and a shutdown
//! future, so tests bind `127.0.0.1:0` and drive the real thing, and the
//! binary binds the configured addresses. Shutdown is an API: the future
//! resolves, listeners stop accepting, streams end, replicators finish the
//! batch they are applying, and the store is flushed before `run` returns.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::exchange::sync;
use crate::records::lifecycle;
use crate::records::model::NodeId;
use crate::service;
use crate::shutdown::stopped;
use crate::state::{NodeError, NodeState};
use crate::store::StoreError;
use crate::trust::load::LoadedSettings;
use crate::trust::reload::EXPIRY_WARNING_DAYS;

/// How long shutdown waits for connections and replicators to finish.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The bound listeners a node serves on.
#[derive(Debug)]
pub struct Listeners {
    pub peer: TcpListener,
    pub agency: TcpListener,
    /// The metrics listener, if the configuration names one.
    pub metrics: Option<TcpListener>,
}

impl Listeners {
    /// Binds the configured addresses.
    pub async fn bind(peer: SocketAddr, agency: SocketAddr) -> Result<Self, NodeError> {
        let peer_l = TcpListener::bind(peer)
            .await
            .map_err(|source| NodeError::Bind {
                what: "peer",
                addr: peer,
                source,
            })?;
        let agency_l = TcpListener::bind(agency)
            .await
            .map_err(|source| NodeError::Bind {
                what: "agency",
                addr: agency,
                source,
            })?;
        Ok(Self {
            peer: peer_l,
            agency: agency_l,
            metrics: None,
        })
    }

    /// Also binds the metrics listener at `addr`, if there is one.
    pub async fn with_metrics(mut self, addr: Option<SocketAddr>) -> Result<Self, NodeError> {
        if let Some(addr) = addr {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|source| NodeError::Bind {
                    what: "metrics",
                    addr,
                    source,
                })?;
            self.metrics = Some(l);
        }
        Ok(self)
    }
}

/// A node, opened and ready to run.
#[derive(Clone, Debug)]
pub struct Node {
    state: Arc<NodeState>,
}

impl Node {
    /// Opens the store; nothing is bound or started yet.
    pub fn open(settings: LoadedSettings) -> Result<Self, NodeError> {
        Self::open_with_clock(settings, crate::clock::system())
    }

    /// As [`Node::open`], with the node reading the time from `clock` (a
    /// test's [`crate::clock::ManualClock`]).
    pub(crate) fn open_with_clock(
        settings: LoadedSettings,
        clock: crate::clock::SharedClock,
    ) -> Result<Self, NodeError> {
        Ok(Self {
            state: Arc::new(NodeState::open_with_clock(settings, clock)?),
        })
    }

    pub fn id(&self) -> &NodeId {
        &self.state.id
    }

    pub fn state(&self) -> &Arc<NodeState> {
        &self.state
    }

    /// Serves both listeners and replicates from every peer until `shutdown`
    /// resolves; then drains and flushes.
    pub async fn run(
        self,
        listeners: Listeners,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), NodeError> {
        let state = self.state;
        let (stop_tx, stop_rx) = watch::channel(false);
        let peer_addr = listeners.peer.local_addr()?;
        let agency_addr = listeners.agency.local_addr()?;
        // NOTE: no record count here: sled's len() walks the whole tree, which at
        // a million records costs seconds and tens of MiB at every start.
        tracing::info!(node = %state.id, peer = %peer_addr, agency = %agency_addr, "node listening");

        // The start is on record before anything is served.
        state.audit_start().await?;
        let (health, health_service) = tonic_health::server::health_reporter();
        // Serving only once the store is open and the roster validated,
        // which is the case by construction here; and before the listeners
        // accept anything, so no client ever sees an unknown service.
        service::set_serving(&health, true).await;
        let mut tasks = JoinSet::new();
        let peer_server = service::peer_server(
            state.clone(),
            listeners.peer,
            health_service.clone(),
            stop_rx.clone(),
        )?;
        tasks.spawn(async move { ("peer listener", peer_server.await) });
        let agency_server = service::agency_server(
            state.clone(),
            listeners.agency,
            health_service,
            stop_rx.clone(),
        )?;
        tasks.spawn(async move { ("agency listener", agency_server.await) });
        if let Some(l) = listeners.metrics {
            let metrics = crate::metrics::server::serve(state.clone(), l, stop_rx.clone());
            tasks.spawn(async move {
                metrics.await;
                ("metrics listener", Ok(()))
            });
        }

        let mut replicators = JoinSet::new();
        {
            let state = state.clone();
            replicators.spawn(async move { state.acknowledge_pending_mla().await });
        }
        {
            let state = state.clone();
            let mut stop = stop_rx.clone();
            replicators.spawn(async move {
                let mut daily = tokio::time::interval(Duration::from_secs(86_400));
                loop {
                    tokio::select! {
                        _ = daily.tick() => state.warn_expiring_certificates(),
                        _ = stopped(&mut stop) => break,
                    }
                }
            });
        }
        {
            let state = state.clone();
            let mut stop = stop_rx.clone();
            replicators.spawn(async move {
                let mut tick = tokio::time::interval(state.records.expiry_check);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {
                            if let Err(error) = state.purge_expired().await {
                                tracing::error!(%error, "expiry purge failed");
                            }
                        }
                        _ = stopped(&mut stop) => break,
                    }
                }
            });
        }
        {
            let state = state.clone();
            let mut stop = stop_rx.clone();
            replicators.spawn(async move {
                let mut tick = tokio::time::interval(state.audit.checkpoint_interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                // Hourly retention sweeps, the first at start.
                let mut sweep = tokio::time::interval(Duration::from_secs(3_600));
                loop {
                    tokio::select! {
                        _ = tick.tick() => {
                            state.send_checkpoint().await;
                        }
                        _ = sweep.tick() => {
                            if let Some(keep) = state.audit.retention {
                                let before = state.clock.now_ms().saturating_sub(keep.as_millis() as i64);
                                if let Err(error) = state.prune_audit(before).await {
                                    tracing::error!(%error, "audit retention sweep failed");
                                }
                            }
                        }
                        _ = stopped(&mut stop) => break,
                    }
                }
            });
        }
        // Certificates, keys, CRLs and roster reloaded: on record.
        {
            let state = state.clone();
            let mut stop = stop_rx.clone();
            let mut reloads = state.tls_live.subscribe();
            replicators.spawn(async move {
                loop {
                    let outcome = tokio::select! {
                        o = reloads.recv() => o,
                        _ = stopped(&mut stop) => break,
                    };
                    match outcome {
                        Ok(o) if o.applied() => {
                            let entry = crate::audit::Entry::new(
                                crate::audit::Action::ConfigChanged,
                                state.id.as_str(),
                            )
                            .ids(o.changed.clone())
                            .result(format!(
                                "reloaded ({}); certificate serial {} -> {}{}",
                                o.trigger,
                                o.old_certificate.serial,
                                o.new_certificate.serial,
                                if o.restart_needed.is_empty() {
                                    String::new()
                                } else {
                                    format!("; at next restart: {}", o.restart_needed.join(", "))
                                }
                            ));
                            if let Err(error) = state.audit(vec![entry]).await {
                                tracing::error!(%error, "cannot audit a reload");
                            }
                        }
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    }
                }
            });
        }
        replicators.spawn(state.tls_live.clone().watch(stop_rx.clone()));
        replicators.spawn(sync::replicate_all(state.clone(), stop_rx.clone()));

        tokio::select! {
            _ = shutdown => tracing::info!(node = %state.id, "shutdown requested"),
            Some(done) = tasks.join_next() => {
                // A listener ended on its own: treat it as fatal.
                let (what, result) = done.map_err(|e| NodeError::Server(e.to_string()))?;
                let _ = stop_tx.send(true);
                return Err(NodeError::Server(format!("{what} stopped: {}", match result { Ok(()) => "without error".to_string(), Err(e) => e.to_string() })));
            }
        }
        service::set_serving(&health, false).await;
        let _ = stop_tx.send(true);

        let deadline = Instant::now() + DRAIN_TIMEOUT;
        let drain = async {
            while replicators.join_next().await.is_some() {}
            while let Some(done) = tasks.join_next().await {
                if let Ok((what, Err(error))) = done {
                    tracing::warn!(listener = what, %error, "listener ended with an error");
                }
            }
        };
        if tokio::time::timeout_at(deadline.into(), drain)
            .await
            .is_err()
        {
            tracing::warn!(node = %state.id, "drain timed out; closing anyway");
            replicators.abort_all();
            tasks.abort_all();
        }
        // Wait for request handlers and stream producers to let go of the
        // state, so the store really closes when this returns.
        // The stop is on record, and a last checkpoint goes to the peers
        // that are still up, so that the log's final state is witnessed.
        state
            .audit(vec![crate::audit::Entry::new(
                crate::audit::Action::NodeStopped,
                state.id.as_str(),
            )])
            .await?;
        let _ = tokio::time::timeout_at(deadline.into(), state.send_final_checkpoint()).await;
        while Arc::strong_count(&state) > 1 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        state.store.flush().await?;
        tracing::info!(node = %state.id, "node stopped");
        Ok(())
    }
}

impl NodeState {
    /// Replaces the content of every record whose validity has ended with a
    /// tombstone. Returns how many were purged.
    pub(crate) async fn purge_expired(&self) -> Result<usize, StoreError> {
        let now = self.clock.now_ms();
        let mut purged = 0;
        loop {
            let due = self.store.records().expired(now, 256)?;
            if due.is_empty() {
                return Ok(purged);
            }
            for record in due {
                let (tombstone, expires_at) = match self.open_stored(&record) {
                    Ok(Some((envelope, body))) => {
                        let expires_at = lifecycle::expires_at(&body).unwrap_or(now);
                        let t =
                            lifecycle::Tombstone::of(&body, &envelope.encode(), expires_at, now);
                        (t, expires_at)
                    }
                    _ => {
                        tracing::error!(origin = %record.origin, seq = record.seq, "expired record does not decode");
                        return Err(StoreError::Corrupt(format!(
                            "expired record {}#{} does not decode",
                            record.origin, record.seq
                        )));
                    }
                };
                let entry =
                    crate::audit::Entry::new(crate::audit::Action::RecordPurged, self.id.as_str())
                        .counterpart(&record.origin)
                        .id(tombstone.record_id.clone())
                        .result("content purged at expiry");
                self.store
                    .records()
                    .purge(
                        &record.origin,
                        record.seq,
                        expires_at,
                        tombstone.encode(),
                        entry.encode(),
                    )
                    .await?;
                tracing::info!(origin = %record.origin, seq = record.seq, record_id = %tombstone.record_id, "record content purged at expiry");
                purged += 1;
            }
        }
    }

    /// Every certificate this node relies on (its own chain, the agency CA,
    /// every roster CA) that expires within `days`, with the days left
    /// (negative once expired). Read from the configuration in use, so a
    /// renewed certificate counts from its reload on.
    pub fn expiring_certificates(&self, days: i64) -> Vec<(String, i64)> {
        let now = time::OffsetDateTime::now_utc();
        self.tls_live
            .certificates()
            .iter()
            .map(|c| (c.describe(), c.days_left(now)))
            .filter(|(_, left)| *left <= days)
            .collect()
    }

    /// Logs a warning for every certificate expiring within 30 days.
    pub(crate) fn warn_expiring_certificates(&self) {
        for (which, days_left) in self.expiring_certificates(EXPIRY_WARNING_DAYS) {
            if days_left < 0 {
                tracing::error!(certificate = %which, days_left, "certificate has expired");
            } else {
                tracing::warn!(certificate = %which, days_left, "certificate expires soon; renew it");
            }
        }
    }
}
