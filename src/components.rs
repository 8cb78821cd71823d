//! The named components a node is made of, and how they are put together.
//!
//! Each component has its own type, its own file and a narrow handle to
//! what it needs, handed to it here and nowhere else:
//!
//! | component | type | needs |
//! |---|---|---|
//! | store | [`Store`] | its directory |
//! | trust | [`LiveTls`] | the loaded settings; reloads itself |
//! | metrics | [`Metrics`] | nothing |
//! | peers | [`Dialer`] | trust, the configured endpoints |
//! | audit keeper | [`AuditKeeper`] | store, signing key, trust, peers (as [`crate::wire::Reach`]) |
//! | publisher | [`Publisher`] | store, signing key, trust, peers (as [`crate::wire::Reach`]) |
//! | case index | [`CaseIndex`] | store, audit keeper, trust, peers, metrics, matching key |
//! | replication | [`Replication`] | store, trust, peers, metrics |
//! | roster governor | [`Governor`] | store, trust, audit keeper; woken by replication and the agency service when a roster record is stored |
//!
//! The arrows point one way: the publisher knows nothing of replication,
//! and replication nothing of the publisher; the one thing replication
//! asks of it (acknowledge an MLA request just received) goes through a
//! channel that the node's run loop drains (`crate::node::Node::run`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::audit::keeper::{AuditKeeper, KeeperParts};
use crate::cases::{CaseIndex, IndexParts};
use crate::clock::SharedClock;
use crate::exchange::peers::Dialer;
use crate::exchange::{Replication, ReplicationParts};
use crate::governance::{Governor, GovernorParts};
use crate::metrics::Metrics;
use crate::publish::Publisher;
use crate::records::model::NodeId;
use crate::store::{Store, StoreError};
use crate::trust::load::LoadedSettings;
use crate::trust::reload::LiveTls;
use crate::trust::tls;

/// Why a node could not open or run.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Trust(#[from] crate::trust::reload::ReloadError),
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

/// The components of one node. Cloning shares them.
#[derive(Clone)]
pub struct Components {
    pub id: NodeId,
    /// Where the node reads the time: the system clock, or a test's.
    pub clock: SharedClock,
    pub store: Arc<Store>,
    /// The TLS configurations and the roster in use, reloaded without a
    /// restart.
    pub trust: Arc<LiveTls>,
    pub metrics: Arc<Metrics>,
    pub peers: Arc<Dialer>,
    pub audit: Arc<AuditKeeper>,
    pub publisher: Arc<Publisher>,
    pub cases: Arc<CaseIndex>,
    pub replication: Arc<Replication>,
    /// Roster proposals and approvals, and adoption by quorum.
    pub governor: Arc<Governor>,

    /// MLA requests stored by replication, for the publisher to
    /// acknowledge; taken once, by the node's run loop.
    pub(crate) to_acknowledge: Arc<Mutex<Option<mpsc::UnboundedReceiver<String>>>>,
    /// One match filter publication at a time (see
    /// [`Components::publish_filter`]).
    filter_publication: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Components {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Components")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Components {
    /// Opens the store and builds every component from `settings`; nothing
    /// is bound or started yet.
    pub(crate) fn open(settings: LoadedSettings, clock: SharedClock) -> Result<Self, NodeError> {
        let store =
            Store::open_with_cache(&settings.data_dir, &settings.node_id, settings.cache_bytes)?;
        Self::around(store, settings, clock)
    }

    /// As [`Components::open`], but only if the store already exists (for
    /// the tools that read a stopped node's store).
    pub(crate) fn open_existing(
        settings: LoadedSettings,
        clock: SharedClock,
    ) -> Result<Self, NodeError> {
        let store =
            Store::open_existing(&settings.data_dir, &settings.node_id, settings.cache_bytes)?;
        Self::around(store, settings, clock)
    }

    /// Every component, around an open store.
    fn around(
        store: Store,
        settings: LoadedSettings,
        clock: SharedClock,
    ) -> Result<Self, NodeError> {
        let id = settings.node_id.clone();
        let store = Arc::new(store);
        let trust = Arc::new(LiveTls::new(&settings)?);
        let metrics = Arc::new(Metrics::default());
        let peers = Arc::new(Dialer::new(trust.clone(), settings.sync.endpoints.clone()));
        let audit = Arc::new(AuditKeeper::new(KeeperParts {
            id: id.clone(),
            clock: clock.clone(),
            store: store.clone(),
            signing: settings.signing.clone(),
            trust: trust.clone(),
            peers: peers.clone(),
            config: settings.audit.clone(),
            tls_leaf: settings.tls.chain.first().cloned(),
            agency_ca: settings.agency_ca.clone(),
        }));
        let publisher = Arc::new(Publisher::new(
            id.clone(),
            clock.clone(),
            store.clone(),
            settings.signing.clone(),
            trust.clone(),
            peers.clone(),
            settings.records.clone(),
        ));
        let cases = Arc::new(CaseIndex::new(IndexParts {
            id: id.clone(),
            clock: clock.clone(),
            store: store.clone(),
            audit: audit.clone(),
            trust: trust.clone(),
            peers: peers.clone(),
            metrics: metrics.clone(),
            matching: settings.matching.clone(),
            oprf: settings.oprf.clone(),
        }));
        let roster_records = Arc::new(tokio::sync::Notify::new());
        let governor = Arc::new(Governor::new(GovernorParts {
            id: id.clone(),
            clock: clock.clone(),
            store: store.clone(),
            trust: trust.clone(),
            audit: audit.clone(),
            wake: roster_records.clone(),
        }));
        let (replication, to_acknowledge) = Replication::new(ReplicationParts {
            clock: clock.clone(),
            store: store.clone(),
            trust: trust.clone(),
            dialer: peers.clone(),
            metrics: metrics.clone(),
            sync: settings.sync.clone(),
            roster_records,
            filter_records: cases.filter_waker(),
        });
        Ok(Self {
            id,
            clock,
            store,
            trust,
            metrics,
            peers,
            audit,
            publisher,
            cases,
            replication: Arc::new(replication),
            governor,
            to_acknowledge: Arc::new(Mutex::new(Some(to_acknowledge))),
            filter_publication: Arc::default(),
        })
    }

    /// Publishes what this node's match filter gained and lost since its
    /// last filter record (the case index says what, the publisher signs
    /// and stores it), each record noted as published once durable; one
    /// call at a time. Stops at the first failure: the node's filter duty
    /// retries. Called by that duty, and by the agency service after a
    /// change to the node's identifiers, so that the change is in a
    /// published filter record when the call returns.
    ///
    /// Unless `force` (at start, and when the roster changed: an epoch may
    /// have become active), nothing is read when nothing changed since the
    /// last publication.
    pub async fn publish_filter(&self, force: bool) -> Result<usize, String> {
        use std::sync::atomic::Ordering;
        let _one = self.filter_publication.lock().await;
        let dirty = self.cases.filter_dirty.swap(false, Ordering::SeqCst);
        if !force && !dirty {
            return Ok(0);
        }
        let outcome = self.publish_filter_changes().await;
        if outcome.is_err() {
            self.cases.filter_dirty.store(true, Ordering::SeqCst);
        }
        outcome
    }

    async fn publish_filter_changes(&self) -> Result<usize, String> {
        self.note_filter_records()
            .await
            .map_err(|e| e.to_string())?;
        let changes = self.cases.filter_changes().map_err(|e| e.to_string())?;
        let mut published = 0;
        for f in changes {
            let p = self
                .publisher
                .apply_change(
                    crate::publish::Change::PublishFilter(f.clone()),
                    false,
                    self.id.as_str(),
                )
                .await
                .map_err(|e| e.to_string())?;
            if let Some(p) = p {
                self.cases
                    .filter_published(&f, p.stored.seq)
                    .await
                    .map_err(|e| e.to_string())?;
                published += 1;
            }
        }
        Ok(published)
    }

    /// Notes as published the filter records of this node's own log that
    /// are durable but not noted yet: the ones a crash interrupted between
    /// the record and its note. Without this, what such a record removed
    /// and an agency then added again would never be published.
    async fn note_filter_records(&self) -> Result<(), StoreError> {
        let filters = self.store.filters();
        let mut after = filters.own_noted_seq()?;
        let head = self.store.watermark().own_seq;
        if after >= head {
            return Ok(());
        }
        while after < head {
            let batch = self.store.records().of_origin(&self.id, after, head, 256)?;
            let Some(last) = batch.last().map(|r| r.seq) else {
                break;
            };
            for r in &batch {
                let Some(Ok((_, body))) = r.content.envelope().map(crate::wire::open_stored) else {
                    continue;
                };
                if let crate::records::model::RecordKind::MatchFilter(f) = body.kind {
                    self.cases.filter_published(&f, r.seq).await?;
                }
            }
            after = last;
        }
        filters.note_own_up_to(head).await
    }
}
