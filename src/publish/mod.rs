//! The origin's side of the record lifecycle: turning an agency's request
//! (publish, update, withdraw) into a signed, durable record.
//!
//! Every rule is checked before anything is written, and the series rules
//! run under the store's writer lock, so two concurrent updates of one
//! series cannot both become version n+1. A dry run (`validate_only`) runs
//! the same checks and writes nothing; bulk import uses it to refuse a
//! whole file when one line is bad.

use crate::audit::{Action, Entry};
use crate::records::crypto;
use crate::records::lifecycle::{self, Mode, SeriesState};
use crate::records::mla::{self, MlaState};
use crate::records::model::{
    self, Content, ContentRef, Distribution, Errors, FieldError, MlaAck, MlaResponse, NodeId,
    RecordBody, RecordKind, Update, ValidationErrors, Withdrawal,
};
use std::sync::Arc;

use crate::clock::SharedClock;
use crate::config::RecordsConfig;
use crate::records::crypto::SigningKey;
use crate::store::{self, NewRecord, SeriesWrite, Store, StoreError};
use crate::trust::reload::LiveTls;
use crate::trust::roster::Role;
use crate::wire::{self, Envelope, Reach};

mod checks;
mod gate;
mod queue;
#[cfg(all(test, feature = "testing"))]
mod tests;

pub use gate::OwnLog;
pub use queue::{Change, PublishError, PublishKey, Published};
use queue::{Job, MAX_COMBINED, PublishQueue};

fn invalid(field: &str, rule: impl Into<String>) -> PublishError {
    PublishError::Invalid(ValidationErrors(vec![FieldError::new(field, rule)]))
}

/// The publisher: this node's own records, signed with its key and stored
/// with the audit entry that names who asked.
///
/// It needs the store, the signing key, the roster in use (to check named
/// recipients and MLA addressees, and to name a record's counterparts in
/// the audit log), the clock, and a way to ask the peers how far they saw
/// this node's log before it publishes (the gate, `publish/gate.rs`);
/// nothing else of the node.
pub struct Publisher {
    id: NodeId,
    clock: SharedClock,
    store: Arc<Store>,
    signing: Arc<SigningKey>,
    trust: Arc<LiveTls>,
    peers: Arc<dyn Reach>,
    /// Validity limits and the expiry check interval.
    pub(crate) records: RecordsConfig,
    queue: PublishQueue,
    /// What the peers said of this node's own log.
    gate: gate::Gate,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    pub(crate) fn new(
        id: NodeId,
        clock: SharedClock,
        store: Arc<Store>,
        signing: Arc<SigningKey>,
        trust: Arc<LiveTls>,
        peers: Arc<dyn Reach>,
        records: RecordsConfig,
    ) -> Self {
        Self {
            id,
            clock,
            store,
            signing,
            trust,
            peers,
            records,
            queue: PublishQueue::default(),
            gate: gate::Gate::new(),
        }
    }

    /// Asks every peer how far it saw this node's log before anything is
    /// published (see [`gate`]).
    pub(crate) async fn check_own_log(&self) -> OwnLog {
        let held = self.store.watermark().own_seq;
        self.gate
            .check(&self.id, held, &self.trust.roster(), self.peers.as_ref())
            .await
    }

    /// This run is a new member's first, before its peers are up: with an
    /// empty store and no peer to confirm it, publishing is allowed.
    pub fn declare_new_log(&self) {
        self.gate.declare_new_log();
    }

    /// What the peers said of this node's own log, so far.
    /// Publications (the node's own MLA acknowledgments included) refused
    /// since start because the own log is behind or unconfirmed.
    pub fn held_back(&self) -> u64 {
        self.gate.held_back()
    }

    pub fn own_log(&self) -> OwnLog {
        self.gate.state()
    }

    /// Sends the signed acknowledgment of a request received, unless it was
    /// sent already. Failures are logged; the node retries at its next start.
    pub(crate) async fn acknowledge_mla(&self, request_id: &str) {
        match self.store.series().mla(request_id) {
            Ok(Some(s)) if s.ack.is_none() && s.to == self.id.as_str() => {}
            _ => return,
        }
        match self
            .apply_change(
                Change::AckMla {
                    request_id: request_id.to_owned(),
                },
                false,
                self.id.as_str(),
            )
            .await
        {
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(request_id, %error, "cannot acknowledge MLA request; will retry at next start")
            }
        }
    }

    /// Acknowledges every request received here that is not acknowledged
    /// yet (after a crash between storing a request and acknowledging it).
    pub(crate) async fn acknowledge_pending_mla(&self) {
        let Ok(states) = self.store.series().with_prefix(mla::KEY_PREFIX) else {
            return;
        };
        for (_, bytes) in states {
            if let Some(s) = MlaState::decode(&bytes)
                && s.to == self.id.as_str()
                && s.ack.is_none()
            {
                self.acknowledge_mla(&s.request_id).await;
            }
        }
    }

    /// Checks `change` and, unless `dry_run`, signs and stores the record
    /// with the audit entry that names `actor` (the agency client, or the
    /// node itself), in one transaction. Returns once both are durable;
    /// `None` for a dry run. A publication whose key was published already
    /// answers with that record ([`Published::already`]), dry run or not,
    /// before any rule is checked: the rules that depend on the clock may
    /// no longer hold for a line published yesterday.
    ///
    /// Public for the tests that play a compromised member: the checks
    /// that need more than the record itself (a roster proposal follows
    /// the version in force, an approval's key is known) are the agency
    /// service's, and every receiver makes them again.
    pub async fn apply_change(
        &self,
        change: Change,
        dry_run: bool,
        actor: &str,
    ) -> Result<Option<Published>, PublishError> {
        if let Change::Publish { key: Some(key), .. } = &change
            && let Some(earlier) = self.already_published(key)?
        {
            return Ok(Some(earlier));
        }
        if self
            .trust
            .roster()
            .member(&self.id)
            .is_some_and(|m| m.role == Role::Observer)
        {
            return Err(PublishError::Observer(self.id.clone()));
        }
        self.check_times(&change)?;
        let random: [u8; 8] = crypto::random_bytes()?;
        let record_id = model::new_record_id(&self.id, random);
        let created_at_ms = self.clock.now_ms();
        if !dry_run {
            // No peer could answer at start (they may have started after
            // this node): ask again before refusing, and now and then
            // otherwise (see `gate::RECHECK_INTERVAL`).
            if self.gate.state() == OwnLog::Unconfirmed {
                let held = self.store.watermark().own_seq;
                self.gate.recheck(held, || self.check_own_log()).await;
            }
            self.gate.admit(self.store.watermark().own_seq).await?;
        }
        if dry_run {
            let seq = self.store.watermark().own_seq + 1;
            self.prepare(&change, seq, &record_id, created_at_ms)?;
            return Ok(None);
        }
        if matches!(change, Change::Publish { .. }) {
            return self
                .publish_combined(change, actor, record_id, created_at_ms)
                .await
                .map(Some);
        }
        let mut published = None;
        let mut audited = None;
        let stored = self
            .store
            .records()
            .append_own(|seq| {
                let (record, body, entry) =
                    self.seal(&change, seq, &record_id, created_at_ms, actor)?;
                let bytes = entry.encode();
                audited = Some(entry);
                published = Some(body);
                Ok::<_, PublishError>((record, bytes))
            })
            .await??;
        let body = published.ok_or_else(|| invalid("record", "was not prepared"))?;
        if let Some(entry) = audited {
            entry.log(&self.id);
        }
        tracing::info!(node = %self.id, record_id = %record_id, seq = stored.seq, kind = body.kind.name(), "record published");
        Ok(Some(Published {
            stored,
            body,
            already: false,
        }))
    }

    /// The record published earlier with `key`, if it is held and unexpired.
    fn already_published(&self, key: &PublishKey) -> Result<Option<Published>, PublishError> {
        let now = self.clock.now_ms();
        let Some(keyed) = self.store.publish_keys().get(key.as_bytes(), now)? else {
            return Ok(None);
        };
        let Some(stored) = self.store.records().get_by_id(&keyed.record_id)? else {
            return Ok(None);
        };
        let Some(bytes) = stored.content.envelope() else {
            return Ok(None);
        };
        let (_, body) = wire::open_stored(bytes).map_err(|e| {
            PublishError::Store(StoreError::Corrupt(format!(
                "stored record {} does not decode: {e}",
                keyed.record_id
            )))
        })?;
        Ok(Some(Published {
            stored,
            body,
            already: true,
        }))
    }

    /// Queues a new publication and returns once it is durable, written
    /// with whatever else was queued (see [`PublishQueue`]).
    async fn publish_combined(
        &self,
        change: Change,
        actor: &str,
        record_id: String,
        created_at_ms: i64,
    ) -> Result<Published, PublishError> {
        let (reply, mut answer) = tokio::sync::oneshot::channel();
        let queue = &self.queue;
        queue
            .jobs
            .lock()
            .map_err(|_| StoreError::Poisoned)?
            .push(Job {
                change,
                actor: actor.to_owned(),
                record_id,
                created_at_ms,
                reply,
            });
        use tokio::sync::oneshot::error::TryRecvError;
        let interrupted = || {
            PublishError::Store(StoreError::Failed(
                "the publication was interrupted before its outcome was known; list the records to see whether it was stored".into(),
            ))
        };
        loop {
            let turn = queue.turn.lock().await;
            match answer.try_recv() {
                Ok(done) => return done,
                // The writer that took it was cancelled.
                Err(TryRecvError::Closed) => return Err(interrupted()),
                Err(TryRecvError::Empty) => {}
            }
            // Ours is still queued: write it, with everything queued since.
            let jobs: Vec<Job> = {
                let mut q = queue.jobs.lock().map_err(|_| StoreError::Poisoned)?;
                let n = q.len().min(MAX_COMBINED);
                q.drain(..n).collect()
            };
            self.write_publications(jobs).await;
            drop(turn);
            match answer.try_recv() {
                Ok(done) => return done,
                Err(TryRecvError::Closed) => return Err(interrupted()),
                Err(TryRecvError::Empty) => {}
            }
        }
    }

    /// Signs and stores queued publications in one transaction, and
    /// answers each caller. A publication whose key was stored since it
    /// was queued, or that repeats the key of one before it in this batch
    /// (a client's retry racing its first try), gets the first one's
    /// record: only one record is ever stored per key.
    async fn write_publications(&self, queued: Vec<Job>) {
        let mut jobs = Vec::with_capacity(queued.len());
        let mut repeats: Vec<(usize, Job)> = Vec::new();
        for job in queued {
            let key = match &job.change {
                Change::Publish { key: Some(k), .. } => Some(k.clone()),
                _ => None,
            };
            if let Some(key) = key {
                match self.already_published(&key) {
                    Ok(Some(earlier)) => {
                        let _ = job.reply.send(Ok(earlier));
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        let _ = job.reply.send(Err(e));
                        continue;
                    }
                }
                if let Some(first) = jobs.iter().position(|j: &Job| {
                    matches!(&j.change, Change::Publish { key: Some(k), .. } if *k == key)
                }) {
                    repeats.push((first, job));
                    continue;
                }
            }
            jobs.push(job);
        }
        let mut made: Vec<Option<(RecordBody, Entry)>> = jobs.iter().map(|_| None).collect();
        let makers: Vec<_> = jobs
            .iter()
            .zip(made.iter_mut())
            .map(|(job, slot)| {
                move |seq: u64| {
                    let (record, body, entry) = self.seal(
                        &job.change,
                        seq,
                        &job.record_id,
                        job.created_at_ms,
                        &job.actor,
                    )?;
                    let bytes = entry.encode();
                    *slot = Some((body, entry));
                    Ok::<_, PublishError>((record, bytes))
                }
            })
            .collect();
        let outcomes = self.store.records().append_own_many(makers).await;
        match outcomes {
            Ok(outcomes) => {
                let mut firsts: Vec<Result<Published, String>> = Vec::with_capacity(jobs.len());
                for ((job, outcome), slot) in jobs.into_iter().zip(outcomes).zip(made) {
                    let answer = outcome.and_then(|stored| {
                        let (body, entry) =
                            slot.ok_or_else(|| invalid("record", "was not prepared"))?;
                        entry.log(&self.id);
                        tracing::info!(node = %self.id, record_id = %body.record_id, seq = stored.seq, kind = body.kind.name(), "record published");
                        Ok(Published {
                            stored,
                            body,
                            already: false,
                        })
                    });
                    firsts.push(match &answer {
                        Ok(p) => Ok(p.clone()),
                        Err(e) => Err(e.to_string()),
                    });
                    let _ = job.reply.send(answer);
                }
                for (first, job) in repeats {
                    let answer = match firsts.get(first) {
                        Some(Ok(p)) => Ok(Published {
                            already: true,
                            ..p.clone()
                        }),
                        Some(Err(reason)) => {
                            Err(PublishError::Store(StoreError::Failed(reason.clone())))
                        }
                        None => Err(invalid("record", "was not prepared")),
                    };
                    let _ = job.reply.send(answer);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot store publications");
                let reason = e.to_string();
                for job in jobs.into_iter().chain(repeats.into_iter().map(|(_, j)| j)) {
                    let _ = job
                        .reply
                        .send(Err(PublishError::Store(StoreError::Failed(reason.clone()))));
                }
            }
        }
    }

    /// Builds, checks and signs the record for `change` at `seq`, with its
    /// series state and the audit entry that names `actor`.
    fn seal(
        &self,
        change: &Change,
        seq: u64,
        record_id: &str,
        created_at_ms: i64,
        actor: &str,
    ) -> Result<(NewRecord, RecordBody, Entry), PublishError> {
        let (body, series) = self.prepare(change, seq, record_id, created_at_ms)?;
        let body_bytes = wire::encode_body(&body);
        let signature = self.signing.sign_record(&body_bytes);
        let envelope = Envelope {
            body: body_bytes,
            key_id: self.signing.key_id().to_owned(),
            signature,
        };
        let record = NewRecord {
            seq,
            record_id: record_id.to_owned(),
            content: store::Content::Envelope(envelope.encode()),
            expires_at_ms: lifecycle::expires_at(&body),
            series,
            publish_key: match change {
                Change::Publish { key, .. } => key.as_ref().map(|k| k.as_bytes().to_vec()),
                _ => None,
            },
        };
        let entry = self.change_entry(change, &body, actor);
        Ok((record, body, entry))
    }

    /// The audit entry of a change about to be stored as `body`.
    fn change_entry(&self, change: &Change, body: &RecordBody, actor: &str) -> Entry {
        let report = match body.kind.content() {
            Some(ContentRef::StatisticalReport(r)) => Some(format!(
                "{} {} version {}",
                r.kind(),
                r.period(),
                body.version()
            )),
            _ => None,
        };
        let (action, justification, result) = match change {
            Change::Publish { .. } | Change::Update { .. } if report.is_some() => (
                Action::StatisticsPublished,
                match &body.kind {
                    RecordKind::Update(Update {
                        content: Content::StatisticalReport(r),
                        ..
                    }) => r
                        .correction
                        .map(|c| c.code().to_owned())
                        .unwrap_or_default(),
                    _ => String::new(),
                },
                report.unwrap_or_default(),
            ),
            Change::Publish { .. } => (
                Action::RecordPublished,
                String::new(),
                body.kind.name().to_owned(),
            ),
            Change::Update { .. } => (
                Action::RecordUpdated,
                String::new(),
                format!("version {}", body.version()),
            ),
            Change::Withdraw { reason, .. } => (
                Action::RecordWithdrawn,
                reason.clone(),
                "withdrawn".to_owned(),
            ),
            Change::SendMla(r) => (Action::MlaSent, r.legal_basis.clone(), "sent".to_owned()),
            Change::PublishFilter(f) => (
                Action::FilterPublished,
                String::new(),
                format!(
                    "epoch {}: {} added, {} removed{}",
                    f.epoch,
                    f.added.len(),
                    f.removed.len(),
                    if f.complete { ", complete" } else { "" }
                ),
            ),
            Change::AckMla { .. } => (
                Action::MlaAcknowledged,
                String::new(),
                "acknowledged".to_owned(),
            ),
            Change::RespondMla { outcome, .. } => (
                Action::MlaResponded,
                String::new(),
                outcome.code().to_owned(),
            ),
            Change::ProposeRoster(p) => (
                Action::RosterProposed,
                String::new(),
                format!("proposal sha256:{}", hex::encode(p.hash())),
            ),
            Change::ApproveRoster(a) => (
                Action::RosterApproved,
                String::new(),
                format!(
                    "approval of sha256:{} by governance key {}",
                    hex::encode(a.roster_sha256),
                    crate::trust::chain::key_name(&a.governance_key)
                ),
            ),
        };
        let counterparts: Vec<String> = match &body.distribution {
            Distribution::Named(members) => members.iter().map(ToString::to_string).collect(),
            Distribution::AllMembers => self
                .trust
                .roster()
                .members()
                .filter(|m| m.id != self.id)
                .map(|m| m.id.to_string())
                .collect(),
        };
        let mut ids = vec![body.record_id.clone()];
        if body.series_id() != body.record_id {
            ids.push(body.series_id().to_owned());
        }
        let tokens = match &body.kind {
            RecordKind::Alert(a) => a.selectors.clone(),
            RecordKind::Update(u) => match &u.content {
                Content::Alert(a) => a.selectors.clone(),
                Content::CaseReference(_) | Content::StatisticalReport(_) => Vec::new(),
            },
            _ => Vec::new(),
        };
        Entry::new(action, actor)
            .justification(justification)
            .counterparts(counterparts)
            .ids(ids)
            .tokens(&tokens)
            .result(result)
    }
}
