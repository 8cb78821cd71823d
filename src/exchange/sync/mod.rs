//! Replication from one peer: pull that peer's log from our cursor, then
//! follow it live on the same stream; on any failure, back off with jitter
//! and resume from the durable cursor.
//!
//! Exactly-once comes from the store, not from the network: verified
//! records and the cursor move together in one atomic, durable step, and
//! re-delivered records are recognised byte for byte. A record that fails
//! verification is not stored and pins the cursor just before it, so it is
//! asked for again after the next reconnect rather than skipped for ever;
//! the records after it are still stored.
//!
//! The backoff is written out here rather than taken from `backon` (one
//! crate more): backon's jitter lengthens a delay by up to as much again,
//! past the cap, where this one waits between half and all of it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::task::AbortOnDropHandle;
use tonic::Status;
use tracing::Instrument;

use super::Replication;
use crate::audit::{Action, Entry};
use crate::exchange::peers::{self, MAX_PEER_MESSAGE};
use crate::records::model::NodeId;
use crate::wire::{PeerClient, PeerResult, PullBatch, PullRequest};

use crate::records::lifecycle::{self, Mode, SeriesState};
use crate::records::mla::{self, MlaState};
use crate::store::{self, NewRecord, SeriesWrite, StoreError};
use crate::trust::verify::{self, Rejection};

mod apply;
mod batch;

use batch::{VerifiedBatch, verify_batch};

/// Replicates one peer's log into this node.
pub struct PeerReplicator {
    shared: Arc<Replication>,
    peer: NodeId,
    client: PeerClient,
    shutdown: watch::Receiver<bool>,
    /// Applying this node's own records handed back by its peers (see
    /// [`crate::exchange::recover`]): the distribution rule does not apply to the
    /// records' own author.
    recovering: bool,
    /// How long to wait before the next attempt.
    retry: Retry,
}

/// The reconnect backoff of one replicator: it grows with each failure in
/// a row, and a stream that delivered (a batch or a heartbeat applied)
/// starts it again from its minimum.
#[derive(Debug, Default)]
struct Retry {
    failures: u32,
    healthy: bool,
}

impl Retry {
    /// The stream delivered.
    fn delivered(&mut self) {
        self.healthy = true;
    }

    /// The peer said goodbye: no failure, but a healthy stream before it
    /// still resets the count.
    fn goodbye(&mut self) {
        if std::mem::take(&mut self.healthy) {
            self.failures = 0;
        }
    }

    /// A failure: the delay before the next attempt, and how many failures
    /// in a row this is.
    fn failed(&mut self, cfg: &crate::config::SyncConfig) -> (Duration, u32) {
        self.goodbye();
        self.failures = self.failures.saturating_add(1);
        (backoff(cfg, self.failures), self.failures)
    }
}

/// Why a replication session ended.
enum SessionEnd {
    /// This node is stopping.
    Shutdown,
    /// A new roster came into force while a record of this stream was
    /// refused and its slot kept open (say, signed with a key the new
    /// version adds): pull again from that slot at once, under the new
    /// roster, rather than wait for the stream to break.
    Resume,
    Failed(SessionError),
}

/// Why a replication session failed. The text is what the peer status
/// shows as its last error.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    /// The peer said goodbye ([`peers::shutting_down`]): reconnect quietly
    /// once it is back rather than back off.
    #[error("{:?}: {}", .0.code(), .0.message())]
    PeerShuttingDown(Status),
    #[error("{:?}: {}", .0.code(), .0.message())]
    Peer(Status),
    #[error("peer did not answer the pull within {} ms", .0.as_millis())]
    NoAnswer(Duration),
    #[error("peer sent nothing for {} ms, not even a heartbeat", .0.as_millis())]
    Silent(Duration),
    #[error("peer closed the stream")]
    StreamClosed,
    #[error("verification task failed: {0}")]
    VerificationTask(tokio::task::JoinError),
    #[error("stream reader ended")]
    ReaderEnded,
    #[error("peer sent high_water {high_water} below {last_seq}")]
    HighWaterBelow { high_water: u64, last_seq: u64 },
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl From<Status> for SessionError {
    fn from(status: Status) -> Self {
        if peers::is_shutting_down(&status) {
            SessionError::PeerShuttingDown(status)
        } else {
            SessionError::Peer(status)
        }
    }
}

/// Runs one [`PeerReplicator`] per member of the roster in use until
/// shutdown: a reload that adds a member starts one for it, one that
/// removes a member (or moves its endpoint) stops its replicator (and
/// starts a new one at the new endpoint).
pub(crate) async fn replicate_all(shared: Arc<Replication>, mut stop: watch::Receiver<bool>) {
    use std::collections::BTreeMap;
    let mut roster_changes = shared.trust.roster_changes();
    let mut tasks = tokio::task::JoinSet::new();
    // Per running replicator: the endpoint it dials and its own stop.
    let mut running: BTreeMap<NodeId, (String, watch::Sender<bool>)> = BTreeMap::new();
    let mut first = true;
    loop {
        let roster = shared.roster();
        let wanted: BTreeMap<NodeId, String> = roster
            .members()
            .filter(|m| m.id != shared.id)
            .filter_map(|m| Some((m.id.clone(), shared.dialer.endpoint(&m.id)?.to_string())))
            .collect();
        running.retain(|id, (endpoint, tx)| {
            if wanted.get(id) == Some(endpoint) {
                return true;
            }
            let _ = tx.send(true);
            if wanted.contains_key(id) {
                tracing::info!(peer = %id, "member's endpoint changed: replication restarts");
            } else {
                tracing::info!(peer = %id, "member left the roster: replication stopped");
                shared.forget_peer(id);
            }
            false
        });
        for (id, endpoint) in wanted {
            if running.contains_key(&id) {
                continue;
            }
            let (tx, rx) = watch::channel(false);
            match PeerReplicator::new(shared.clone(), id.clone(), rx) {
                Ok(r) => {
                    if !first {
                        tracing::info!(peer = %id, %endpoint, "replicating from a new member");
                    }
                    // Listed in the peer status from now on.
                    shared.update_peer(&id, |_| {});
                    tasks.spawn(r.run());
                    running.insert(id, (endpoint, tx));
                }
                Err(error) => tracing::warn!(peer = %id, %error, "cannot replicate from member"),
            }
        }
        first = false;
        tokio::select! {
            changed = roster_changes.changed() => {
                if changed.is_err() {
                    break;
                }
                shared.dialer.forget_clients();
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = crate::shutdown::stopped(&mut stop) => break,
        }
    }
    for (_, tx) in running.values() {
        let _ = tx.send(true);
    }
    while tasks.join_next().await.is_some() {}
}

impl PeerReplicator {
    pub(crate) fn new(
        shared: Arc<Replication>,
        peer: NodeId,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Self, String> {
        if shared.roster().member(&peer).is_none() {
            return Err(format!("{peer} is not in the roster"));
        }
        let channel = shared
            .dialer
            .channel(&peer)
            .map_err(|e| format!("{peer}: {}", PeerResult::reason(e)))?;
        let client = PeerClient::new(channel)
            .max_decoding_message_size(MAX_PEER_MESSAGE)
            .max_encoding_message_size(64 * 1024);
        Ok(Self {
            shared,
            peer,
            client,
            shutdown,
            recovering: false,
            retry: Retry::default(),
        })
    }

    /// A replicator that applies this node's own records, handed back by
    /// its peers, through the same checks and store path as any pull.
    pub(crate) fn for_recovery(shared: Arc<Replication>) -> Result<Self, String> {
        let own = shared.id.clone();
        let (_, shutdown) = watch::channel(false);
        let mut r = Self::new(shared, own, shutdown)?;
        r.recovering = true;
        Ok(r)
    }

    /// Verifies and stores one batch of records handed back (ascending seq,
    /// all above `last_seq`, which moves on).
    pub(crate) async fn apply_recovered(
        &self,
        batch: PullBatch,
        last_seq: &mut u64,
    ) -> Result<(), String> {
        let roster = self.shared.roster();
        let verified = verify_batch(&roster, batch);
        let mut pinned = None;
        self.apply(verified, last_seq, &mut pinned)
            .await
            .map_err(|e| e.to_string())?;
        match pinned {
            None => Ok(()),
            Some(at) => Err(format!(
                "a record after seq {at} did not verify; see the log for why"
            )),
        }
    }

    /// Runs until shutdown.
    pub async fn run(mut self) {
        let span = tracing::info_span!("replicator", node = %self.shared.id, peer = %self.peer);
        async move {
            loop {
                match self.session().await {
                    SessionEnd::Shutdown => break,
                    SessionEnd::Resume => {
                        tracing::info!("roster changed with a record pinned; pulling again from it");
                    }
                    SessionEnd::Failed(error @ SessionError::PeerShuttingDown(_)) => {
                        // A clean goodbye: reconnect quietly once it is back.
                        self.retry.goodbye();
                        tracing::info!(%error, "peer is shutting down; will reconnect");
                        self.shared.update_peer(&self.peer, |p| {
                            p.connected = false;
                            p.last_error = Some(error.to_string());
                        });
                        tokio::select! {
                            _ = tokio::time::sleep(self.shared.sync.backoff_min) => {}
                            _ = crate::shutdown::stopped(&mut self.shutdown) => break,
                        }
                    }
                    SessionEnd::Failed(error) => {
                        let (delay, failures) = self.retry.failed(&self.shared.sync);
                        self.shared.update_peer(&self.peer, |p| {
                            p.connected = false;
                            p.last_error = Some(error.to_string());
                        });
                        tracing::debug!(%error, retry_in_ms = delay.as_millis() as u64, "pull stream failed");
                        if failures == 1 || failures.is_multiple_of(10) {
                            tracing::warn!(%error, failures, "pull stream failed; retrying with backoff");
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = self.shutdown.wait_for(|s| *s) => break,
                        }
                    }
                }
            }
            self.shared.update_peer(&self.peer, |p| p.connected = false);
        }
        .instrument(span)
        .await
    }

    async fn session(&mut self) -> SessionEnd {
        let cursor = match self.shared.store.records().cursor(&self.peer) {
            Ok(c) => c,
            Err(e) => return SessionEnd::Failed(e.into()),
        };
        let request = PullRequest {
            origin: self.peer.clone(),
            after_seq: cursor,
            follow: true,
            max_batch: self.shared.sync.batch_size,
        };
        // A peer that accepts the call but never answers it is as stalled
        // as one that stops sending: the same limit applies.
        let limit = self.shared.sync.silence_limit;
        let mut stream = tokio::select! {
            r = tokio::time::timeout(limit, self.client.pull(request)) => match r {
                Ok(Ok(s)) => s,
                Ok(Err(status)) => return SessionEnd::Failed(status.into()),
                Err(_) => return SessionEnd::Failed(SessionError::NoAnswer(limit)),
            },
            _ = crate::shutdown::stopped(&mut self.shutdown) => return SessionEnd::Shutdown,
        };
        self.shared.update_peer(&self.peer, |p| {
            p.connected = true;
            p.last_error = None;
            p.last_contact_ms = Some(self.shared.clock.now_ms());
        });
        tracing::info!(from_seq = cursor, "following peer log");
        // Stage one reads batches and verifies their signatures on every
        // core while stage two (here) applies the previous batch to the
        // store; the channel between them holds at most two batches, so a
        // fast peer cannot make this node buffer without bound.
        let (tx, mut verified) = mpsc::channel::<Result<VerifiedBatch, SessionError>>(2);
        // Subscribed before the reader starts: a roster that changes after
        // a batch was checked under the old one is seen (see `Resume`).
        let mut roster_changes = self.shared.trust.roster_changes();
        roster_changes.mark_unchanged();
        let shared = self.shared.clone();
        let silence_limit = self.shared.sync.silence_limit;
        let reader = tokio::spawn(async move {
            loop {
                let message = tokio::time::timeout(silence_limit, stream.message()).await;
                let Ok(message) = message else {
                    let _ = tx.send(Err(SessionError::Silent(silence_limit))).await;
                    return;
                };
                let batch = match message {
                    Ok(Some(b)) => b,
                    Ok(None) => {
                        let _ = tx.send(Err(SessionError::StreamClosed)).await;
                        return;
                    }
                    Err(status) => {
                        let _ = tx.send(Err(status.into())).await;
                        return;
                    }
                };
                // The roster in use now: a reload's new keys apply to the
                // next batch.
                let roster = shared.roster();
                let checked = tokio::task::spawn_blocking(move || verify_batch(&roster, batch))
                    .await
                    .map_err(SessionError::VerificationTask);
                if tx.send(checked).await.is_err() {
                    return;
                }
            }
        });
        // Aborted when dropped, so a session's reader never outlives it.
        let _abort_reader = AbortOnDropHandle::new(reader);
        // Highest seq seen on this stream, and where the cursor is pinned
        // after a rejected record.
        let mut last_seq = cursor;
        let mut pinned: Option<u64> = None;
        loop {
            let batch = tokio::select! {
                m = verified.recv() => m,
                Ok(()) = roster_changes.changed(), if pinned.is_some() => return SessionEnd::Resume,
                _ = crate::shutdown::stopped(&mut self.shutdown) => return SessionEnd::Shutdown,
            };
            let batch = match batch {
                Some(Ok(b)) => b,
                Some(Err(e)) => return SessionEnd::Failed(e),
                None => return SessionEnd::Failed(SessionError::ReaderEnded),
            };
            if let Err(e) = self.apply(batch, &mut last_seq, &mut pinned).await {
                return SessionEnd::Failed(e);
            }
            self.retry.delivered();
        }
    }
}

/// Exponential backoff with jitter: between half and all of
/// `min * 2^(failures-1)`, capped at `max`. The jitter keeps a federation
/// whose hub just restarted from reconnecting in lock step.
fn backoff(cfg: &crate::config::SyncConfig, failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    let base = cfg
        .backoff_min
        .saturating_mul(1u32 << exp)
        .min(cfg.backoff_max);
    let r: [u8; 4] = crate::records::crypto::random_bytes().unwrap_or([0; 4]);
    let frac = f64::from(u32::from_be_bytes(r)) / f64::from(u32::MAX);
    base.mul_f64(0.5 + 0.5 * frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let cfg = crate::config::SyncConfig {
            batch_size: 1,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            ..Default::default()
        };
        let first = backoff(&cfg, 1);
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        let later = backoff(&cfg, 30);
        assert!(later >= Duration::from_secs(1) && later <= Duration::from_secs(2));
    }

    #[test]
    fn a_stream_that_delivered_starts_the_backoff_again_from_its_minimum() {
        let cfg = crate::config::SyncConfig {
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            ..Default::default()
        };
        let mut retry = Retry::default();
        for _ in 0..9 {
            retry.failed(&cfg);
        }
        let (long, n) = retry.failed(&cfg);
        assert_eq!(n, 10);
        assert!(long >= Duration::from_secs(15), "{long:?}");
        retry.delivered();
        let (short, n) = retry.failed(&cfg);
        assert_eq!(n, 1, "the count starts again after a healthy stream");
        assert!(short <= Duration::from_millis(100), "{short:?}");
        // A goodbye after a healthy stream resets too, without counting.
        for _ in 0..5 {
            retry.failed(&cfg);
        }
        retry.delivered();
        retry.goodbye();
        assert_eq!(retry.failed(&cfg).1, 1);
        // Failures without a delivery in between keep growing.
        assert_eq!(retry.failed(&cfg).1, 2);
    }
}
