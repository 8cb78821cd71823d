//! Wires a node together: its components ([`Components`]: store, trust,
//! metrics, peers, audit keeper, publisher, case index, replication), the
//! two listeners, the metrics listener ([`metrics`]), one replicator per
//! peer and the node's periodic duties (expiry purge, certificate
//! warnings, checkpoints, audit retention).
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
use crate::records::model::NodeId;
use crate::service;
use crate::trust::load::LoadedSettings;

mod filter;
mod maintenance;
pub mod metrics;

pub use crate::components::{Components, NodeError};
pub use filter::purge_shared_tokens;

/// How long shutdown waits for connections and replicators to finish.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Makes every file and directory this process creates from now on
/// readable by its owner only (umask 077): the store, its snapshots, the
/// logs a node writes. For the binary's `node run`: the umask is
/// process-wide, so a library caller (a test running several nodes)
/// must not have it set behind its back. Returns the previous umask.
#[cfg(unix)]
pub fn restrict_new_files() -> u32 {
    use rustix::fs::Mode;
    rustix::process::umask(Mode::from_raw_mode(0o077)).as_raw_mode()
}

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
    components: Components,
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
            components: Components::open(settings, clock)?,
        })
    }

    /// Opens an existing store only, for the tools that read a stopped
    /// node's store: a data directory without one is refused
    /// ([`crate::store::StoreError::NoStore`]) and nothing is created.
    pub fn open_existing(settings: LoadedSettings) -> Result<Self, NodeError> {
        Ok(Self {
            components: Components::open_existing(settings, crate::clock::system())?,
        })
    }

    pub fn id(&self) -> &NodeId {
        &self.components.id
    }

    /// The node's components, for the tools that work on a stopped node
    /// (recovery, audit verification) and for tests.
    pub fn components(&self) -> &Components {
        &self.components
    }

    /// Serves both listeners and replicates from every peer until `shutdown`
    /// resolves; then drains and flushes.
    pub async fn run(
        self,
        listeners: Listeners,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), NodeError> {
        let node = self.components;
        let (stop_tx, stop_rx) = watch::channel(false);
        let peer_addr = listeners.peer.local_addr()?;
        let agency_addr = listeners.agency.local_addr()?;
        // NOTE: no record count here: sled's len() walks the whole tree, which at
        // a million records costs seconds and tens of MiB at every start.
        tracing::info!(node = %node.id, peer = %peer_addr, agency = %agency_addr, "node listening");

        // The start is on record before anything is served.
        node.audit.record_start().await?;
        // The roster records already held are assessed before anything
        // new can arrive: refusals found from here on are all new ones.
        node.governor.evaluate().await;
        let (health, health_service) = tonic_health::server::health_reporter();
        // Serving only once the store is open and the roster validated,
        // which is the case by construction here; and before the listeners
        // accept anything, so no client ever sees an unknown service.
        service::set_serving(&health, true).await;
        let mut tasks = JoinSet::new();
        let peer_server = service::peer_server(
            node.clone(),
            listeners.peer,
            health_service.clone(),
            stop_rx.clone(),
        );
        tasks.spawn(async move { ("peer listener", peer_server.await) });
        let agency_server = service::agency_server(
            node.clone(),
            listeners.agency,
            health_service,
            stop_rx.clone(),
        )
        .map_err(|e| NodeError::Server(format!("reflection: {e}")))?;
        tasks.spawn(async move { ("agency listener", agency_server.await) });
        if let Some(l) = listeners.metrics {
            let metrics = metrics::server::serve(node.clone(), l, stop_rx.clone());
            tasks.spawn(async move {
                metrics.await;
                ("metrics listener", Ok(()))
            });
        }

        let mut duties = JoinSet::new();
        maintenance::spawn_duties(&node, &mut duties, &stop_rx);
        filter::spawn(&node, &mut duties, &stop_rx);
        duties.spawn(node.trust.clone().watch(stop_rx.clone()));
        duties.spawn(node.governor.clone().run(stop_rx.clone()));
        duties.spawn(sync::replicate_all(
            node.replication.clone(),
            stop_rx.clone(),
        ));

        tokio::select! {
            _ = shutdown => tracing::info!(node = %node.id, "shutdown requested"),
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
            while duties.join_next().await.is_some() {}
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
            tracing::warn!(node = %node.id, "drain timed out; closing anyway");
            duties.abort_all();
            tasks.abort_all();
        }
        // The refusals still counted, the stop, on record; and a last
        // checkpoint goes to the peers that are still up, so that the log's
        // final state is witnessed.
        node.audit.summarise_refusals().await?;
        node.audit
            .record(vec![crate::audit::Entry::new(
                crate::audit::Action::NodeStopped,
                node.id.as_str(),
            )])
            .await?;
        let _ = tokio::time::timeout_at(deadline.into(), node.audit.send_final_checkpoint()).await;
        node.store.flush().await?;
        // Wait for request handlers and stream producers to let go of the
        // components, so the store really closes when this returns.
        let id = node.id.clone();
        let store = Arc::downgrade(&node.store);
        drop(node);
        while store.strong_count() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if store.strong_count() > 0 {
            tracing::warn!(node = %id, "a request still holds the store; it closes when that ends");
        }
        tracing::info!(node = %id, "node stopped");
        Ok(())
    }
}
