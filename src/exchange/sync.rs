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

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tonic::transport::Channel;
use tracing::Instrument;

use crate::audit::{Action, Entry};
use crate::clock::now_ms;
use crate::exchange::peers::{MAX_PEER_MESSAGE, peer_channel};
use crate::records::model::NodeId;
use crate::state::{NodeError, NodeState};
use crate::wire::Envelope;
use crate::wire::pb::v1 as pb;
use crate::wire::pb::v1::federation_client::FederationClient;
use std::collections::HashMap;

use crate::records::lifecycle::{self, Mode, SeriesState};
use crate::records::mla::{self, MlaState};
use crate::store::{self, NewRecord, SeriesWrite};
use crate::trust::verify::{self, Rejection};

/// Replicates one peer's log into this node.
pub struct PeerReplicator {
    state: Arc<NodeState>,
    peer: NodeId,
    client: FederationClient<Channel>,
    shutdown: watch::Receiver<bool>,
    /// Applying this node's own records handed back by its peers (see
    /// [`crate::exchange::recover`]): the distribution rule does not apply to the
    /// records' own author.
    recovering: bool,
}

/// A batch whose records went through [`verify::verify`].
struct VerifiedBatch {
    records: Vec<Result<verify::VerifiedRecord, Rejection>>,
    high_water: u64,
    head: u64,
}

/// Below this many records a batch is verified on one thread.
const PARALLEL_THRESHOLD: usize = 32;

/// Verifies every record of a batch, spreading the signatures over the
/// machine's cores (the Ed25519 verification is the replication floor).
fn verify_batch(roster: &crate::trust::roster::Roster, batch: pb::PullBatch) -> VerifiedBatch {
    let envelopes: Vec<Envelope> = batch.records.into_iter().map(Envelope::from_pb).collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let records = if envelopes.len() < PARALLEL_THRESHOLD || threads == 1 {
        envelopes
            .iter()
            .map(|e| verify::verify(roster, e))
            .collect()
    } else {
        let chunk = envelopes.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = envelopes
                .chunks(chunk)
                .map(|part| {
                    let handle = scope.spawn(move || {
                        part.iter()
                            .map(|e| verify::verify(roster, e))
                            .collect::<Vec<_>>()
                    });
                    (part.len(), handle)
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|(len, h)| {
                    // A panicking verifier must not shift the results: its
                    // records count as unverified.
                    h.join().unwrap_or_else(|_| {
                        (0..len)
                            .map(|_| Err(Rejection::BadBody("verification failed".into())))
                            .collect()
                    })
                })
                .collect()
        })
    };
    VerifiedBatch {
        records,
        high_water: batch.high_water,
        head: batch.head,
    }
}

/// Aborts a spawned task when dropped, so a session's reader never outlives it.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How a refused record affects the cursor.
enum Refused {
    /// Authentic record at this seq that must not be stored; move past it.
    Skip(u64, Rejection),
    /// Untrustworthy record: keep the cursor before it.
    Pin(Rejection),
    /// The store failed: end the session, retry later.
    Store(crate::store::StoreError),
}

enum SessionEnd {
    Shutdown,
    Failed(String),
}

/// Runs one [`PeerReplicator`] per member of the roster in use until
/// shutdown: a reload that adds a member starts one for it, one that
/// removes a member (or moves its endpoint) stops its replicator (and
/// starts a new one at the new endpoint).
pub async fn replicate_all(state: Arc<NodeState>, mut stop: watch::Receiver<bool>) {
    use std::collections::BTreeMap;
    let mut roster_changes = state.tls_live.roster_changes();
    let mut tasks = tokio::task::JoinSet::new();
    // Per running replicator: the endpoint it dials and its own stop.
    let mut running: BTreeMap<NodeId, (String, watch::Sender<bool>)> = BTreeMap::new();
    let mut first = true;
    loop {
        let roster = state.roster();
        let wanted: BTreeMap<NodeId, String> = roster
            .members()
            .filter(|m| m.id != state.id)
            .filter_map(|m| Some((m.id.clone(), state.peer_endpoint(&m.id)?.to_string())))
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
                state.forget_peer(id);
            }
            false
        });
        for (id, endpoint) in wanted {
            if running.contains_key(&id) {
                continue;
            }
            let (tx, rx) = watch::channel(false);
            match PeerReplicator::new(state.clone(), id.clone(), rx) {
                Ok(r) => {
                    if !first {
                        tracing::info!(peer = %id, %endpoint, "replicating from a new member");
                    }
                    // Listed in the peer status from now on.
                    state.update_peer(&id, |_| {});
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
                state.peer_clients.clear();
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
    pub fn new(
        state: Arc<NodeState>,
        peer: NodeId,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Self, NodeError> {
        if state.roster().member(&peer).is_none() {
            return Err(NodeError::Server(format!("{peer} is not in the roster")));
        }
        let endpoint = state
            .peer_endpoint(&peer)
            .ok_or_else(|| NodeError::Server(format!("{peer} has no endpoint")))?;
        let config = state.tls_live.peer_client(&peer);
        let channel = peer_channel(config, &endpoint.host, endpoint.port)?;
        let client = FederationClient::new(channel)
            .max_decoding_message_size(MAX_PEER_MESSAGE)
            .max_encoding_message_size(64 * 1024);
        Ok(Self {
            state,
            peer,
            client,
            shutdown,
            recovering: false,
        })
    }

    /// A replicator that applies this node's own records, handed back by
    /// its peers, through the same checks and store path as any pull.
    pub fn for_recovery(state: Arc<NodeState>) -> Result<Self, NodeError> {
        let own = state.id.clone();
        let (_, shutdown) = watch::channel(false);
        let mut r = Self::new(state, own, shutdown)?;
        r.recovering = true;
        Ok(r)
    }

    /// Verifies and stores one batch of records handed back (ascending seq,
    /// all above `last_seq`, which moves on).
    pub async fn apply_recovered(
        &self,
        batch: pb::PullBatch,
        last_seq: &mut u64,
    ) -> Result<(), String> {
        let roster = self.state.roster();
        let verified = verify_batch(&roster, batch);
        let mut pinned = None;
        self.apply(verified, last_seq, &mut pinned).await?;
        match pinned {
            None => Ok(()),
            Some(at) => Err(format!(
                "a record after seq {at} did not verify; see the log for why"
            )),
        }
    }

    /// Runs until shutdown.
    pub async fn run(mut self) {
        let span = tracing::info_span!("replicator", node = %self.state.id, peer = %self.peer);
        async move {
            let mut failures: u32 = 0;
            loop {
                match self.session().await {
                    SessionEnd::Shutdown => break,
                    SessionEnd::Failed(error) if error.contains("is shutting down") => {
                        // A clean goodbye: reconnect quietly once it is back.
                        tracing::info!(%error, "peer is shutting down; will reconnect");
                        self.state.update_peer(&self.peer, |p| {
                            p.connected = false;
                            p.last_error = Some(error.clone());
                        });
                        tokio::select! {
                            _ = tokio::time::sleep(self.state.sync.backoff_min) => {}
                            _ = crate::shutdown::stopped(&mut self.shutdown) => break,
                        }
                    }
                    SessionEnd::Failed(error) => {
                        failures = failures.saturating_add(1);
                        self.state.update_peer(&self.peer, |p| {
                            p.connected = false;
                            p.last_error = Some(error.clone());
                        });
                        let delay = backoff(&self.state.sync, failures);
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
                // A session that got as far as a batch resets the backoff.
                if self.state.peer_states().get(&self.peer).is_some_and(|p| p.connected) {
                    failures = 0;
                }
            }
            self.state.update_peer(&self.peer, |p| p.connected = false);
        }
        .instrument(span)
        .await
    }

    async fn session(&mut self) -> SessionEnd {
        let cursor = match self.state.store.records().cursor(&self.peer) {
            Ok(c) => c,
            Err(e) => return SessionEnd::Failed(format!("store: {e}")),
        };
        let request = pb::PullRequest {
            origin: self.peer.to_string(),
            after_seq: cursor,
            follow: true,
            max_batch: self.state.sync.batch_size,
        };
        // A peer that accepts the call but never answers it is as stalled
        // as one that stops sending: the same limit applies.
        let limit = self.state.sync.silence_limit;
        let mut stream = tokio::select! {
            r = tokio::time::timeout(limit, self.client.pull(request)) => match r {
                Ok(Ok(s)) => s.into_inner(),
                Ok(Err(status)) => return SessionEnd::Failed(format!("{:?}: {}", status.code(), status.message())),
                Err(_) => return SessionEnd::Failed(format!("peer did not answer the pull within {} ms", limit.as_millis())),
            },
            _ = crate::shutdown::stopped(&mut self.shutdown) => return SessionEnd::Shutdown,
        };
        self.state.update_peer(&self.peer, |p| {
            p.connected = true;
            p.last_error = None;
            p.last_contact_ms = Some(now_ms());
        });
        tracing::info!(from_seq = cursor, "following peer log");
        // Stage one reads batches and verifies their signatures on every
        // core while stage two (here) applies the previous batch to the
        // store; the channel between them holds at most two batches, so a
        // fast peer cannot make this node buffer without bound.
        let (tx, mut verified) = mpsc::channel::<Result<VerifiedBatch, String>>(2);
        let state = self.state.clone();
        let silence_limit = self.state.sync.silence_limit;
        let reader = tokio::spawn(async move {
            loop {
                let message = tokio::time::timeout(silence_limit, stream.message()).await;
                let Ok(message) = message else {
                    let _ = tx
                        .send(Err(format!(
                            "peer sent nothing for {} ms, not even a heartbeat",
                            silence_limit.as_millis()
                        )))
                        .await;
                    return;
                };
                let batch = match message {
                    Ok(Some(b)) => b,
                    Ok(None) => {
                        let _ = tx.send(Err("peer closed the stream".into())).await;
                        return;
                    }
                    Err(status) => {
                        let _ = tx
                            .send(Err(format!("{:?}: {}", status.code(), status.message())))
                            .await;
                        return;
                    }
                };
                // The roster in use now: a reload's new keys apply to the
                // next batch.
                let roster = state.roster();
                let checked = tokio::task::spawn_blocking(move || verify_batch(&roster, batch))
                    .await
                    .map_err(|e| format!("verification task failed: {e}"));
                if tx.send(checked).await.is_err() {
                    return;
                }
            }
        });
        let _abort_reader = AbortOnDrop(reader);
        // Highest seq seen on this stream, and where the cursor is pinned
        // after a rejected record.
        let mut last_seq = cursor;
        let mut pinned: Option<u64> = None;
        loop {
            let batch = tokio::select! {
                m = verified.recv() => m,
                _ = crate::shutdown::stopped(&mut self.shutdown) => return SessionEnd::Shutdown,
            };
            let batch = match batch {
                Some(Ok(b)) => b,
                Some(Err(e)) => return SessionEnd::Failed(e),
                None => return SessionEnd::Failed("stream reader ended".into()),
            };
            if let Err(e) = self.apply(batch, &mut last_seq, &mut pinned).await {
                return SessionEnd::Failed(e);
            }
        }
    }

    async fn apply(
        &self,
        batch: VerifiedBatch,
        last_seq: &mut u64,
        pinned: &mut Option<u64>,
    ) -> Result<(), String> {
        let high_water = batch.high_water;
        let head = batch.head;
        if high_water < *last_seq {
            return Err(format!(
                "peer sent high_water {high_water} below {last_seq}"
            ));
        }
        let mut accepted = Vec::with_capacity(batch.records.len());
        let mut rejected = 0u64;
        // Refusals, written to the audit log with the batch.
        let mut refusals: Vec<Entry> = Vec::new();
        // Series states changed by earlier records of this batch.
        let mut series: HashMap<String, SeriesState> = HashMap::new();
        let mut mla_states: HashMap<String, MlaState> = HashMap::new();
        // MLA records stored from this batch, for the audit and the acks.
        let mut mla_records: Vec<(String, String)> = Vec::new();
        let now = now_ms();
        for verified in batch.records {
            let checked = self.check(verified, *last_seq, high_water).and_then(|v| {
                let kind = v.body.kind.name();
                let id = v.body.record_id.clone();
                let record = self.prepare(v, &mut series, &mut mla_states, now)?;
                if kind.starts_with("mla_") && record.series.is_some() {
                    mla_records.push((kind.to_owned(), id));
                }
                Ok(record)
            });
            match checked {
                Ok(record) => {
                    *last_seq = record.seq;
                    accepted.push(record);
                }
                Err(Refused::Skip(seq, rejection)) => {
                    // Authentic, but not for us: nothing to ask for again.
                    rejected += 1;
                    self.state
                        .metrics
                        .record_rejected(&self.peer, rejection.label());
                    tracing::warn!(security_event = true, reason = rejection.label(), %rejection, seq, "record rejected");
                    refusals.push(self.refusal(&rejection, Some(seq)));
                    *last_seq = seq;
                }
                Err(Refused::Pin(rejection)) => {
                    // Not authentic or not well formed: its slot stays open
                    // so the record is asked for again after a reconnect.
                    rejected += 1;
                    self.state
                        .metrics
                        .record_rejected(&self.peer, rejection.label());
                    tracing::warn!(security_event = true, reason = rejection.label(), %rejection, "record rejected");
                    refusals.push(self.refusal(&rejection, None));
                    pinned.get_or_insert(*last_seq);
                }
                Err(Refused::Store(e)) => return Err(format!("store: {e}")),
            }
        }
        let cursor = match pinned {
            Some(p) => (*p).min(high_water),
            None => high_water,
        };
        // The receipt, the refusals and the MLA messages are written to the
        // audit log in the same transaction as the records and the cursor.
        let mut written: Vec<Entry> = Vec::new();
        let applied = self
            .state
            .store
            .records()
            .apply_received(&self.peer, &accepted, cursor, |stored, applied| {
                let mut entries = std::mem::take(&mut refusals);
                for seq in &applied.conflicts {
                    entries.push(self.refusal(&Rejection::Conflict(*seq), Some(*seq)));
                }
                if !stored.is_empty() {
                    entries.push(
                        Entry::new(Action::RecordsReceived, self.peer.as_str())
                            .counterpart(&self.peer)
                            .ids(stored.iter().map(|r| r.record_id.clone()))
                            .result(format!(
                                "{} stored, {} already held",
                                stored.len(),
                                applied.duplicates
                            )),
                    );
                }
                for (kind, id) in &mla_records {
                    if stored.iter().any(|r| r.record_id == *id) {
                        entries.push(
                            Entry::new(Action::MlaReceived, self.peer.as_str())
                                .counterpart(&self.peer)
                                .id(id.clone())
                                .result(kind.clone()),
                        );
                    }
                }
                let bodies = entries.iter().map(Entry::encode).collect();
                written = entries;
                bodies
            })
            .await
            .map_err(|e| format!("store: {e}"))?;
        for e in written
            .iter()
            .filter(|e| e.action != Action::RecordsReceived.code())
        {
            e.log(&self.state.id);
        }
        for seq in &applied.conflicts {
            rejected += 1;
            let rejection = Rejection::Conflict(*seq);
            self.state
                .metrics
                .record_rejected(&self.peer, rejection.label());
            tracing::warn!(security_event = true, reason = rejection.label(), %rejection, "record rejected");
        }
        if applied.stored > 0 {
            tracing::debug!(stored = applied.stored, cursor, "batch applied");
        }
        for (kind, id) in mla_records {
            if kind == "mla_request" {
                // The signed acknowledgment goes out on its own, so that a
                // slow store write does not hold up replication.
                let state = self.state.clone();
                tokio::spawn(async move { state.acknowledge_mla(&id).await });
            }
        }
        self.state.update_peer(&self.peer, |p| {
            p.last_contact_ms = Some(now_ms());
            p.records_received += applied.stored as u64;
            p.records_rejected += rejected;
            p.head = p.head.max(head);
        });
        Ok(())
    }

    /// The audit entry of a refused record.
    fn refusal(&self, rejection: &Rejection, seq: Option<u64>) -> Entry {
        let mut e = Entry::new(Action::RecordRejected, self.peer.as_str())
            .counterpart(&self.peer)
            .result(format!("{}: {rejection}", rejection.label()));
        if let Some(seq) = seq {
            e = e.id(format!("{}#{seq}", self.peer));
        }
        e
    }

    /// Turns a verified record into what the store writes: its series
    /// state, and a tombstone instead of content that has already expired.
    fn prepare(
        &self,
        v: verify::VerifiedRecord,
        series: &mut HashMap<String, SeriesState>,
        mla_states: &mut HashMap<String, MlaState>,
        now: i64,
    ) -> Result<NewRecord, Refused> {
        let seq = v.body.seq;
        let expires_at = lifecycle::expires_at(&v.body);
        let mut record = NewRecord {
            seq,
            record_id: v.body.record_id.clone(),
            content: store::Content::Envelope(v.envelope),
            expires_at_ms: expires_at,
            series: None,
        };
        if self
            .state
            .store
            .records()
            .contains(&self.peer, seq)
            .map_err(Refused::Store)?
        {
            // Re-delivery: the store compares bytes; the series is unchanged.
            return Ok(record);
        }
        if v.body.kind.is_mla() {
            let key = mla::key(v.body.series_id());
            let before = match mla_states.get(&key) {
                Some(s) => Some(s.clone()),
                None => self
                    .state
                    .mla_state(v.body.series_id())
                    .map_err(Refused::Store)?,
            };
            let after = mla::next(before.as_ref(), &v.body)
                .map_err(|e| Refused::Skip(seq, Rejection::Series(e.to_string())))?;
            record.series = Some(SeriesWrite {
                series_id: key.clone(),
                state: after.encode(),
            });
            mla_states.insert(key, after);
            return Ok(record);
        }
        let series_id = v.body.series_id().to_owned();
        let before = match series.get(&series_id) {
            Some(s) => Some(s.clone()),
            None => self
                .state
                .series_state(&series_id)
                .map_err(Refused::Store)?,
        };
        let after = lifecycle::next(before.as_ref(), &v.body, Mode::Recipient)
            .map_err(|e| Refused::Skip(seq, Rejection::Series(e.to_string())))?;
        record.series = Some(SeriesWrite {
            series_id: series_id.clone(),
            state: after.encode(),
        });
        series.insert(series_id, after);
        if let (Some(at), store::Content::Envelope(bytes)) = (expires_at, &record.content)
            && at <= now
        {
            let tombstone = lifecycle::Tombstone::of(&v.body, bytes, at, now);
            record.content = store::Content::Tombstone(tombstone.encode());
            record.expires_at_ms = None;
        }
        Ok(record)
    }

    /// Verifies one record of the stream.
    fn check(
        &self,
        verified: Result<verify::VerifiedRecord, Rejection>,
        after: u64,
        high_water: u64,
    ) -> Result<verify::VerifiedRecord, Refused> {
        let v = verified.map_err(Refused::Pin)?;
        let seq = v.body.seq;
        if v.body.origin != self.peer {
            return Err(Refused::Pin(Rejection::UnexpectedOrigin {
                expected: self.peer.clone(),
                found: v.body.origin,
            }));
        }
        if seq <= after || seq > high_water {
            return Err(Refused::Pin(Rejection::OutOfOrder {
                seq,
                after,
                high_water,
            }));
        }
        if !self.recovering && !v.body.distribution.includes(&self.state.id) {
            return Err(Refused::Skip(
                seq,
                Rejection::NotEntitled(self.state.id.clone()),
            ));
        }
        Ok(v)
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
}
