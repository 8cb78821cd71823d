//! The replication component: what the replicators share, and the live
//! status of every peer that `enlace peers`, the metrics and the agency's
//! `ListPeers` show.
//!
//! The replicators themselves ([`super::sync`]) run one per member; they
//! reach the store, the roster in use and the counters through this
//! component, and report each peer's state here. An MLA request addressed
//! to this node that a replicator stores is handed on through a channel
//! ([`Replication::new`] returns its receiving end): the node acknowledges
//! it with the publisher, which replication does not import.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::peers::Dialer;
use crate::clock::SharedClock;
use crate::config::SyncConfig;
use crate::metrics::Metrics;
use crate::records::model::NodeId;
use crate::store::Store;
use crate::trust::reload::LiveTls;
use crate::trust::roster::Roster;

/// Live replication status of one peer, as shown by `enlace peers`.
#[derive(Debug, Clone, Default)]
pub(crate) struct PeerState {
    pub endpoint: String,
    pub connected: bool,
    pub last_error: Option<String>,
    pub last_contact_ms: Option<i64>,
    pub records_received: u64,
    pub records_rejected: u64,
    /// The peer's own log head, as its last batch reported.
    pub head: u64,
}

/// What every replicator of this node shares, and every peer's status.
pub struct Replication {
    pub(super) id: NodeId,
    pub(super) clock: SharedClock,
    pub(super) store: Arc<Store>,
    pub(super) trust: Arc<LiveTls>,
    pub(super) dialer: Arc<Dialer>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) sync: SyncConfig,
    /// MLA requests to this node, stored by a replicator, to acknowledge.
    pub(super) received_mla: mpsc::UnboundedSender<String>,
    /// Poked when a roster proposal or approval is stored.
    pub(super) roster_records: Arc<tokio::sync::Notify>,
    /// Woken when a batch stored a match filter record, so that the
    /// node's view of that filter is brought up to date before a query
    /// needs it.
    pub(super) filter_records: Arc<tokio::sync::Notify>,
    status: Mutex<BTreeMap<NodeId, PeerState>>,
}

impl std::fmt::Debug for Replication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replication")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// What replication is made of: see [`Replication`].
pub(crate) struct ReplicationParts {
    pub clock: SharedClock,
    pub store: Arc<Store>,
    pub trust: Arc<LiveTls>,
    pub dialer: Arc<Dialer>,
    pub metrics: Arc<Metrics>,
    pub sync: SyncConfig,
    pub roster_records: Arc<tokio::sync::Notify>,
    /// Woken when a batch stored a match filter record.
    pub filter_records: Arc<tokio::sync::Notify>,
}

impl Replication {
    /// The component, every member of the roster in use listed with its
    /// endpoint, and the receiving end of the MLA requests to acknowledge.
    pub(crate) fn new(p: ReplicationParts) -> (Self, mpsc::UnboundedReceiver<String>) {
        let id = p.store.own().clone();
        let status = p
            .trust
            .roster()
            .members()
            .filter(|m| m.id != id)
            .map(|m| {
                let state = PeerState {
                    endpoint: p
                        .dialer
                        .endpoint(&m.id)
                        .map(|e| e.to_string())
                        .unwrap_or_default(),
                    ..PeerState::default()
                };
                (m.id.clone(), state)
            })
            .collect();
        let (received_mla, to_acknowledge) = mpsc::unbounded_channel();
        let replication = Self {
            id,
            clock: p.clock,
            store: p.store,
            trust: p.trust,
            dialer: p.dialer,
            metrics: p.metrics,
            sync: p.sync,
            received_mla,
            roster_records: p.roster_records,
            filter_records: p.filter_records,
            status: Mutex::new(status),
        };
        (replication, to_acknowledge)
    }

    /// The roster in use now.
    pub(crate) fn roster(&self) -> Arc<Roster> {
        self.trust.roster()
    }

    /// How often a follow stream this node serves carries an empty batch.
    pub(crate) fn heartbeat(&self) -> std::time::Duration {
        self.sync.heartbeat
    }

    /// How this node reaches its peers.
    pub(crate) fn dialer(&self) -> &Arc<Dialer> {
        &self.dialer
    }

    /// A snapshot of every peer's replication status.
    pub(crate) fn peer_states(&self) -> BTreeMap<NodeId, PeerState> {
        self.status.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Updates one peer's status.
    pub(crate) fn update_peer(&self, peer: &NodeId, f: impl FnOnce(&mut PeerState)) {
        let Ok(mut status) = self.status.lock() else {
            return;
        };
        if let Some(p) = status.get_mut(peer) {
            f(p);
        } else if self.roster().member(peer).is_some() {
            // A member added by a reload gets its entry on first contact
            // (one removed does not get it back from its last words).
            let mut p = PeerState {
                endpoint: self
                    .dialer
                    .endpoint(peer)
                    .map(|e| e.to_string())
                    .unwrap_or_default(),
                ..PeerState::default()
            };
            f(&mut p);
            status.insert(peer.clone(), p);
        }
    }

    /// Drops the status of a member no longer in the roster.
    pub(crate) fn forget_peer(&self, peer: &NodeId) {
        if let Ok(mut status) = self.status.lock() {
            status.remove(peer);
        }
    }
}

#[cfg(all(test, feature = "testing"))]
#[path = "replication_tests.rs"]
mod tests;
