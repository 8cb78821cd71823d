//! The shared state of a running node: what every service, replicator and
//! feature reads and updates through one `Arc<NodeState>`.
//!
//! The state is opened here and run by [`crate::node`], which starts the
//! listeners and tasks around it. The features add their own `impl
//! NodeState` blocks (publishing, cases and queries, the audit keeper,
//! replication, the metrics scrape) and so sit above this module. What the
//! state holds for them is its own or comes from the floors below: the
//! configuration, the store and the live TLS configurations from below; the
//! counters ([`counters`]), the per-peer clients and query buckets
//! ([`peers`]) and the publication queue ([`queue`]) here. That keeps the
//! arrows pointing one way: features import the state, the state imports
//! none of them.

pub mod counters;
pub mod peers;
pub mod queue;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::config::{AgencyConfig, AuditConfig, RecordsConfig, SyncConfig};
use crate::records::crypto::SigningKey;
use crate::records::lifecycle::SeriesState;
use crate::records::model::{NodeId, RecordBody};
use crate::records::selector::MatchingKey;
use crate::store::{Store, StoreError, StoredRecord};
use crate::trust::roster::Roster;
use crate::trust::tls::{self, TlsIdentity};
use crate::wire::{self, Envelope, WireError};

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot bind {what} listener on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("server failed: {0}")]
    Server(String),
}

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

/// Shared state of a running node.
pub struct NodeState {
    pub id: NodeId,
    pub store: Store,
    pub signing: Arc<SigningKey>,
    pub tls: TlsIdentity,
    pub agency_ca: Vec<rustls_pki_types::CertificateDer<'static>>,
    pub sync: SyncConfig,
    pub records: RecordsConfig,
    pub agency: AgencyConfig,
    pub matching: Option<Arc<MatchingKey>>,
    pub query: crate::config::QueryConfig,
    /// Checkpoints and retention of the audit log.
    pub audit: AuditConfig,
    /// New publications waiting to be written together.
    pub publish_queue: crate::state::queue::PublishQueue,
    /// Query token buckets, per asking peer.
    pub buckets: crate::state::peers::Buckets,
    /// Federation clients kept for queries.
    pub peer_clients: crate::state::peers::PeerClients,
    /// TLS handshakes on the peer listener.
    pub peer_handshakes: Arc<tls::HandshakeStats>,
    /// TLS handshakes on the agency listener.
    pub agency_handshakes: Arc<tls::HandshakeStats>,
    /// The TLS configurations both listeners and outgoing peer connections
    /// use, reloaded without a restart.
    pub tls_live: Arc<crate::trust::reload::LiveTls>,
    /// Counters and histograms for the metrics listener.
    pub metrics: counters::Metrics,
    /// Where the node reads the time: the system clock, or a test's.
    pub clock: crate::clock::SharedClock,
    peers: Mutex<BTreeMap<NodeId, PeerState>>,
}

impl std::fmt::Debug for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeState")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl NodeState {
    /// Opens the store and the TLS configurations of `settings`; nothing is
    /// bound or started yet.
    pub fn open(settings: crate::trust::load::LoadedSettings) -> Result<Self, NodeError> {
        Self::open_with_clock(settings, crate::clock::system())
    }

    /// As [`NodeState::open`], reading the time from `clock`.
    pub(crate) fn open_with_clock(
        settings: crate::trust::load::LoadedSettings,
        clock: crate::clock::SharedClock,
    ) -> Result<Self, NodeError> {
        let store =
            Store::open_with_cache(&settings.data_dir, &settings.node_id, settings.cache_bytes)?;
        let peers = settings
            .roster
            .members()
            .filter(|m| m.id != settings.node_id)
            .map(|m| {
                let state = PeerState {
                    endpoint: settings
                        .sync
                        .endpoints
                        .get(&m.id)
                        .or(m.endpoint.as_ref())
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    ..PeerState::default()
                };
                (m.id.clone(), state)
            })
            .collect();
        let tls_live = Arc::new(crate::trust::reload::LiveTls::new(&settings)?);
        Ok(Self {
            id: settings.config.node_id,
            store,
            signing: settings.signing,
            tls: settings.tls,
            agency_ca: settings.agency_ca,
            sync: settings.config.sync,
            records: settings.config.records,
            agency: settings.config.agency,
            matching: settings.matching,
            query: settings.config.query,
            audit: settings.config.audit,
            publish_queue: Default::default(),
            buckets: Default::default(),
            peer_clients: Default::default(),
            peer_handshakes: Arc::default(),
            agency_handshakes: Arc::default(),
            tls_live,
            metrics: Default::default(),
            clock,
            peers: Mutex::new(peers),
        })
    }

    /// Decodes a stored record's body. Records are verified before they are
    /// stored, and the store is local, so this does not verify again.
    /// `None` for a tombstone.
    pub(crate) fn open_stored(
        &self,
        record: &StoredRecord,
    ) -> Result<Option<(Envelope, RecordBody)>, WireError> {
        let Some(bytes) = record.content.envelope() else {
            return Ok(None);
        };
        let envelope = Envelope::decode(bytes)?;
        let body = wire::decode_body(&envelope.body)?;
        Ok(Some((envelope, body)))
    }

    /// The stored state of a series.
    pub(crate) fn series_state(&self, series_id: &str) -> Result<Option<SeriesState>, StoreError> {
        Ok(self
            .store
            .series()
            .state(series_id)?
            .and_then(|b| SeriesState::decode(&b)))
    }

    /// Where to dial `peer`: the configured override, else the roster's endpoint.
    pub(crate) fn peer_endpoint(&self, peer: &NodeId) -> Option<crate::trust::roster::Endpoint> {
        self.sync
            .endpoints
            .get(peer)
            .cloned()
            .or_else(|| self.roster().member(peer).and_then(|m| m.endpoint.clone()))
    }

    /// A snapshot of every peer's replication status.
    pub(crate) fn peer_states(&self) -> BTreeMap<NodeId, PeerState> {
        self.peers.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// The roster in use now (it changes on reload: see [`crate::trust::reload`]).
    pub fn roster(&self) -> Arc<Roster> {
        self.tls_live.roster()
    }

    /// Updates one peer's status.
    pub(crate) fn update_peer(&self, peer: &NodeId, f: impl FnOnce(&mut PeerState)) {
        let Ok(mut peers) = self.peers.lock() else {
            return;
        };
        if let Some(p) = peers.get_mut(peer) {
            f(p);
        } else if self.roster().member(peer).is_some() {
            // A member added by a reload gets its entry on first contact
            // (one removed does not get it back from its last words).
            let mut p = PeerState {
                endpoint: self
                    .peer_endpoint(peer)
                    .map(|e| e.to_string())
                    .unwrap_or_default(),
                ..PeerState::default()
            };
            f(&mut p);
            peers.insert(peer.clone(), p);
        }
    }

    /// Drops the status of a member no longer in the roster.
    pub(crate) fn forget_peer(&self, peer: &NodeId) {
        if let Ok(mut peers) = self.peers.lock() {
            peers.remove(peer);
        }
    }
}
