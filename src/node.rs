//! Wires a node together: store, roster, signing key, the two listeners and
//! one replicator per peer.
//!
//! [`Node::run`] takes listeners that are already bound and a shutdown
//! future, so tests bind `127.0.0.1:0` and drive the real thing, and the
//! binary binds the configured addresses. Shutdown is an API: the future
//! resolves, listeners stop accepting, streams end, replicators finish the
//! batch they are applying, and the store is flushed before `run` returns.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::{Settings, SyncConfig};
use crate::crypto::{self, SigningKey};
use crate::model::wire::{self, Envelope};
use crate::model::{
    self, Distribution, FieldError, NodeId, RecordBody, RecordKind, ValidationErrors,
};
use crate::roster::Roster;
use crate::store::{Store, StoreError, StoredRecord};
use crate::tls::{self, TlsIdentity};
use crate::verify::{self, Rejection, VerifiedRecord};
use crate::{service, sync};

/// How long shutdown waits for connections and replicators to finish.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

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

/// Why a publish was refused.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("invalid request: {0}")]
    Invalid(#[from] ValidationErrors),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Crypto(#[from] crypto::CryptoError),
}

/// The two bound listeners a node serves on.
#[derive(Debug)]
pub struct Listeners {
    pub peer: TcpListener,
    pub agency: TcpListener,
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
        })
    }
}

/// Live replication status of one peer, as shown by `enlace peers`.
#[derive(Debug, Clone, Default)]
pub struct PeerState {
    pub endpoint: String,
    pub connected: bool,
    pub last_error: Option<String>,
    pub last_contact_ms: Option<i64>,
    pub records_received: u64,
    pub records_rejected: u64,
}

/// Shared state of a running node.
pub struct NodeState {
    pub id: NodeId,
    pub roster: Arc<Roster>,
    pub store: Store,
    pub signing: Arc<SigningKey>,
    pub tls: TlsIdentity,
    pub agency_ca: Vec<rustls_pki_types::CertificateDer<'static>>,
    pub sync: SyncConfig,
    /// TLS handshakes on the peer listener.
    pub peer_handshakes: Arc<tls::HandshakeStats>,
    /// TLS handshakes on the agency listener.
    pub agency_handshakes: Arc<tls::HandshakeStats>,
    peers: Mutex<BTreeMap<NodeId, PeerState>>,
}

impl std::fmt::Debug for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeState")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A node, opened and ready to run.
#[derive(Clone, Debug)]
pub struct Node {
    state: Arc<NodeState>,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Node {
    /// Opens the store; nothing is bound or started yet.
    pub fn open(settings: Settings) -> Result<Self, NodeError> {
        let store = Store::open(&settings.data_dir, &settings.node_id)?;
        let peers = settings
            .roster
            .members()
            .filter(|m| m.id != settings.node_id)
            .map(|m| {
                let state = PeerState {
                    endpoint: m
                        .endpoint
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    ..PeerState::default()
                };
                (m.id.clone(), state)
            })
            .collect();
        Ok(Self {
            state: Arc::new(NodeState {
                id: settings.node_id,
                roster: settings.roster,
                store,
                signing: settings.signing,
                tls: settings.tls,
                agency_ca: settings.agency_ca,
                sync: settings.sync,
                peer_handshakes: Arc::default(),
                agency_handshakes: Arc::default(),
                peers: Mutex::new(peers),
            }),
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
        tracing::info!(node = %state.id, peer = %peer_addr, agency = %agency_addr, records = state.store.len(), "node listening");

        let (health, health_service) = tonic_health::server::health_reporter();
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
        // Serving only once the store is open and the roster validated,
        // which is the case by construction here.
        health.set_serving::<crate::pb::v1::federation_server::FederationServer<service::FederationService>>().await;
        health
            .set_serving::<crate::pb::v1::agency_server::AgencyServer<service::AgencyService>>()
            .await;

        let mut replicators = JoinSet::new();
        for member in state.roster.members() {
            if member.id == state.id || member.endpoint.is_none() {
                continue;
            }
            let replicator =
                sync::PeerReplicator::new(state.clone(), member.id.clone(), stop_rx.clone())?;
            replicators.spawn(replicator.run());
        }

        tokio::select! {
            _ = shutdown => tracing::info!(node = %state.id, "shutdown requested"),
            Some(done) = tasks.join_next() => {
                // A listener ended on its own: treat it as fatal.
                let (what, result) = done.map_err(|e| NodeError::Server(e.to_string()))?;
                let _ = stop_tx.send(true);
                return Err(NodeError::Server(format!("{what} stopped: {}", match result { Ok(()) => "without error".to_string(), Err(e) => e.to_string() })));
            }
        }
        health.set_not_serving::<crate::pb::v1::federation_server::FederationServer<service::FederationService>>().await;
        health
            .set_not_serving::<crate::pb::v1::agency_server::AgencyServer<service::AgencyService>>()
            .await;
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
        while Arc::strong_count(&state) > 1 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        state.store.flush().await?;
        tracing::info!(node = %state.id, "node stopped");
        Ok(())
    }
}

impl NodeState {
    /// Validates, signs and durably stores a new record of this node.
    pub async fn publish(
        &self,
        kind: RecordKind,
        recipients: &[String],
    ) -> Result<StoredRecord, PublishError> {
        let mut errors = Vec::new();
        let distribution = match Distribution::from_recipients("to", recipients) {
            Ok(d) => Some(d),
            Err(e) => {
                errors.extend(e.0);
                None
            }
        };
        if let Some(Distribution::Named(members)) = &distribution {
            for m in members {
                if self.roster.member(m).is_none() {
                    errors.push(FieldError::new(
                        "to",
                        format!("{m} is not a member of the federation"),
                    ));
                }
            }
        }
        match &kind {
            RecordKind::Alert(a) => {
                if let Err(e) = a.validate("alert") {
                    errors.extend(e.0);
                }
            }
        }
        ValidationErrors(errors).into_result()?;
        let distribution = distribution.unwrap_or(Distribution::AllMembers);
        let random: [u8; 8] = crypto::random_bytes()?;
        let record_id = model::new_record_id(&self.id, random);
        let created_at_ms = now_ms();
        let stored = self
            .store
            .append_own(|seq| {
                let body = RecordBody {
                    origin: self.id.clone(),
                    seq,
                    record_id: record_id.clone(),
                    created_at_ms,
                    distribution,
                    kind,
                };
                body.validate()?;
                let body_bytes = wire::encode_body(&body);
                let signature = self.signing.sign_record(&body_bytes);
                let envelope = Envelope {
                    body: body_bytes,
                    key_id: self.signing.key_id().to_owned(),
                    signature,
                };
                Ok::<_, ValidationErrors>((record_id.clone(), envelope.encode()))
            })
            .await??;
        tracing::info!(node = %self.id, record_id = %record_id, seq = stored.seq, "record published");
        Ok(stored)
    }

    /// Verifies a stored record's envelope again (for display: the view
    /// shows only what still verifies under the current roster).
    pub fn open_stored(&self, record: &StoredRecord) -> Result<VerifiedRecord, Rejection> {
        let envelope =
            Envelope::decode(&record.envelope).map_err(|e| Rejection::BadBody(e.to_string()))?;
        verify::verify(&self.roster, &envelope)
    }

    /// A snapshot of every peer's replication status.
    pub fn peer_states(&self) -> BTreeMap<NodeId, PeerState> {
        self.peers.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Updates one peer's status.
    pub fn update_peer(&self, peer: &NodeId, f: impl FnOnce(&mut PeerState)) {
        if let Ok(mut peers) = self.peers.lock()
            && let Some(p) = peers.get_mut(peer)
        {
            f(p);
        }
    }
}

/// Resolves once `stop` is true (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
