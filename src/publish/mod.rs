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
    self, Content, Distribution, Errors, FieldError, MlaAck, MlaResponse, NodeId, RecordBody,
    RecordKind, Update, ValidationErrors, Withdrawal,
};
use std::sync::Arc;

use crate::clock::SharedClock;
use crate::config::RecordsConfig;
use crate::records::crypto::SigningKey;
use crate::store::{self, NewRecord, SeriesWrite, Store, StoreError};
use crate::trust::reload::LiveTls;
use crate::trust::roster::Role;
use crate::wire::{self, Envelope, Reach};

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
    pub(crate) async fn apply_change(
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
            // this node): ask again before refusing.
            if self.gate.state() == OwnLog::Unconfirmed {
                self.check_own_log().await;
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
            series: Some(series),
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
        let (action, justification, result) = match change {
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
                Content::CaseReference(_) => Vec::new(),
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

    /// The case references an MLA request cites must be case references
    /// held here, and ones its recipient can see (its own, or addressed to
    /// it): a request cannot point at an alert, at nothing, or at a record
    /// the recipient was never given. A query it cites must be one this
    /// node sent, to which the recipient answered "hit".
    fn check_case_refs(
        &self,
        request: &model::MlaRequest,
        errors: &mut Errors,
    ) -> Result<(), PublishError> {
        for (i, id) in request.case_refs.iter().enumerate() {
            let field = format!("mla_request.case_refs[{i}]");
            if model::check_record_id_format(id).is_err() {
                continue; // the body's own rules name it
            }
            let body = match self.held_body(id)? {
                Ok(body) => body,
                Err(why) => {
                    errors.push(field, why);
                    continue;
                }
            };
            if !matches!(
                body.kind.content(),
                Some(model::ContentRef::CaseReference(_))
            ) {
                errors.push(
                    field,
                    format!(
                        "{id} is not a case reference (its kind: {})",
                        body.kind.name()
                    ),
                );
            } else if body.origin != request.to && !body.distribution.includes(&request.to) {
                errors.push(
                    field,
                    format!(
                        "{id} is not disclosed to {}: a request may cite only what its recipient holds",
                        request.to
                    ),
                );
            }
        }
        if !request.query_id.is_empty() {
            match self.store.audit().query_hits(&request.query_id)? {
                None => errors.push(
                    "mla_request.query_id",
                    format!(
                        "{} is not a query this node sent with a hit: a request may cite only its own query that {} answered \"hit\"",
                        request.query_id, request.to
                    ),
                ),
                Some(hits) if !hits.iter().any(|m| *m == request.to.as_str()) => errors.push(
                    "mla_request.query_id",
                    format!(
                        "{} did not answer \"hit\" to query {} (hits: {})",
                        request.to,
                        request.query_id,
                        hits.join(", ")
                    ),
                ),
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// The body of a record held here, or why there is none to refer to.
    fn held_body(&self, id: &str) -> Result<Result<RecordBody, String>, PublishError> {
        let Some(stored) = self.store.records().get_by_id(id)? else {
            return Ok(Err(format!("{id} is not a record held by this node")));
        };
        let Some(bytes) = stored.content.envelope() else {
            return Ok(Err(format!("{id} has expired and its content was purged")));
        };
        let (_, body) = wire::open_stored(bytes).map_err(|e| {
            PublishError::Store(StoreError::Corrupt(format!(
                "stored record {id} does not decode: {e}"
            )))
        })?;
        Ok(Ok(body))
    }

    /// The alerts a case reference links must be alerts held here that
    /// every recipient of the case reference holds too: a link cannot
    /// point at nothing, at another kind of record, or tell a member the
    /// id of an alert it was never given.
    fn check_links(
        &self,
        content: &model::Content,
        distribution: &Distribution,
    ) -> Result<(), PublishError> {
        let model::Content::CaseReference(case) = content else {
            return Ok(());
        };
        let roster = self.trust.roster();
        let recipients: Vec<NodeId> = roster
            .members()
            .map(|m| m.id.clone())
            .filter(|m| *m != self.id && distribution.includes(m))
            .collect();
        let mut errors = Errors::default();
        for (i, id) in case.linked_alerts.iter().enumerate() {
            let field = format!("case_reference.linked_alerts[{i}]");
            if model::check_record_id_format(id).is_err() {
                continue; // the body's own rules name it
            }
            let body = match self.held_body(id)? {
                Ok(body) => body,
                Err(why) => {
                    errors.push(field, why);
                    continue;
                }
            };
            if !matches!(body.kind.content(), Some(model::ContentRef::Alert(_))) {
                errors.push(
                    field,
                    format!("{id} is not an alert (its kind: {})", body.kind.name()),
                );
                continue;
            }
            let blind: Vec<&str> = recipients
                .iter()
                .filter(|m| body.origin != **m && !body.distribution.includes(m))
                .map(NodeId::as_str)
                .collect();
            if !blind.is_empty() {
                errors.push(
                    field,
                    format!(
                        "{id} is not disclosed to {}: a case reference may link only alerts all its recipients hold",
                        blind.join(", ")
                    ),
                );
            }
        }
        errors.finish()?;
        Ok(())
    }

    /// Rules that depend on the clock: a record is published to be valid
    /// for a while, and not for ever.
    fn check_times(&self, change: &Change) -> Result<(), PublishError> {
        let content = match change {
            Change::Publish { content, .. } | Change::Update { content, .. } => content.as_ref(),
            Change::SendMla(r) => {
                let mut errors = Errors::default();
                if let Some(d) = r.deadline_ms {
                    errors.check(
                        d > self.clock.now_ms(),
                        "mla_request.deadline",
                        "must be in the future",
                    );
                }
                return Ok(errors.finish()?);
            }
            Change::Withdraw { .. } | Change::AckMla { .. } | Change::RespondMla { .. } => {
                return Ok(());
            }
        };
        let at = content.kind_name();
        let now = self.clock.now_ms();
        let max_ms = i64::try_from(self.records.max_validity.as_millis()).unwrap_or(i64::MAX);
        let mut errors = Errors::default();
        let expires = content.expires_at_ms();
        errors.check(
            expires > now,
            format!("{at}.expires_at"),
            "must be in the future",
        );
        errors.check(
            expires <= now.saturating_add(max_ms),
            format!("{at}.expires_at"),
            format!(
                "must be at most {} days ahead",
                self.records.max_validity.as_secs() / 86_400
            ),
        );
        if let Some(review) = content.review_at_ms() {
            errors.check(
                review > now,
                format!("{at}.review_at"),
                "must be in the future",
            );
        }
        Ok(errors.finish()?)
    }

    /// Builds and checks the record body for `change` at `seq`, and the
    /// series state it leads to.
    fn prepare(
        &self,
        change: &Change,
        seq: u64,
        record_id: &str,
        created_at_ms: i64,
    ) -> Result<(RecordBody, SeriesWrite), PublishError> {
        let (kind, distribution, before) = match change {
            Change::SendMla(request) => {
                let mut errors = Errors::default();
                match self.trust.roster().member(&request.to) {
                    None => errors.push(
                        "mla_request.to",
                        format!("{} is not a member of the federation", request.to),
                    ),
                    Some(m) if m.role == Role::Observer => errors.push(
                        "mla_request.to",
                        format!(
                            "{} is an observer: it publishes nothing, so it cannot acknowledge or answer a request",
                            request.to
                        ),
                    ),
                    Some(_) => {}
                }
                self.check_case_refs(request, &mut errors)?;
                errors.finish()?;
                let distribution = Distribution::Named([request.to.clone()].into_iter().collect());
                (RecordKind::MlaRequest(request.clone()), distribution, None)
            }
            Change::AckMla { request_id } | Change::RespondMla { request_id, .. } => {
                let state = self.store.series().mla(request_id)?.ok_or_else(|| {
                    PublishError::NotFound(format!("no MLA request {request_id} at this node"))
                })?;
                let from =
                    NodeId::parse(&state.from).map_err(|rule| invalid("request_id", rule))?;
                let kind = match change {
                    Change::RespondMla { outcome, text, .. } => {
                        RecordKind::MlaResponse(MlaResponse {
                            request_id: request_id.clone(),
                            outcome: *outcome,
                            text: text.clone(),
                        })
                    }
                    _ => RecordKind::MlaAck(MlaAck {
                        request_id: request_id.clone(),
                    }),
                };
                (
                    kind,
                    Distribution::Named([from].into_iter().collect()),
                    None,
                )
            }
            Change::Publish {
                content,
                recipients,
                ..
            } => {
                let distribution = Distribution::from_recipients("to", recipients)?;
                if let Distribution::Named(members) = &distribution {
                    let mut errors = Errors::default();
                    for m in members {
                        errors.check(
                            self.trust.roster().member(m).is_some(),
                            "to",
                            format!("{m} is not a member of the federation"),
                        );
                    }
                    errors.finish()?;
                }
                self.check_links(content, &distribution)?;
                let kind = match content {
                    Content::Alert(a) => RecordKind::Alert(a.clone()),
                    Content::CaseReference(c) => RecordKind::CaseReference(c.clone()),
                };
                (kind, distribution, None)
            }
            Change::Update { target, content } => {
                let (series_id, state) = self.resolve_series(target)?;
                let distribution = state.distribution()?;
                self.check_links(content, &distribution)?;
                let kind = RecordKind::Update(Update {
                    target: series_id,
                    version: state.version + 1,
                    content: content.clone(),
                });
                (kind, distribution, Some(state))
            }
            Change::Withdraw { target, reason } => {
                let (series_id, state) = self.resolve_series(target)?;
                let kind = RecordKind::Withdrawal(Withdrawal {
                    target: series_id,
                    reason: reason.clone(),
                });
                (kind, state.distribution()?, Some(state))
            }
        };
        let body = RecordBody {
            origin: self.id.clone(),
            seq,
            record_id: record_id.to_owned(),
            created_at_ms,
            distribution,
            kind,
        };
        body.validate()?;
        if body.kind.is_mla() {
            let key = mla::key(body.series_id());
            let before = self.store.series().mla(body.series_id())?;
            let after = mla::next(before.as_ref(), &body)
                .map_err(|e| PublishError::Invalid(ValidationErrors(vec![e])))?;
            return Ok((
                body,
                SeriesWrite {
                    series_id: key,
                    state: after.encode(),
                },
            ));
        }
        let state = lifecycle::next(before.as_ref(), &body, Mode::Origin)
            .map_err(|e| PublishError::Invalid(ValidationErrors(vec![e])))?;
        Ok((
            body.clone(),
            SeriesWrite {
                series_id: body.series_id().to_owned(),
                state: state.encode(),
            },
        ))
    }

    /// The series that `target` (any record id in it) belongs to.
    fn resolve_series(&self, target: &str) -> Result<(String, SeriesState), PublishError> {
        model::check_record_id_format(target).map_err(|rule| invalid("record_id", rule))?;
        let stored = self.store.records().get_by_id(target)?.ok_or_else(|| {
            PublishError::NotFound(format!("record {target} is not held by this node"))
        })?;
        if stored.origin != self.id {
            return Err(invalid(
                "record_id",
                format!(
                    "{target} comes from {}; only its origin can update or withdraw it",
                    stored.origin
                ),
            ));
        }
        let series_id = match stored.content.envelope().map(wire::open_stored).transpose() {
            Ok(Some((_, body))) => body.series_id().to_owned(),
            Ok(None) => {
                return Err(invalid(
                    "record_id",
                    format!(
                        "{target} has expired and its content was purged; publish a new record"
                    ),
                ));
            }
            Err(e) => {
                return Err(invalid(
                    "record_id",
                    format!("{target} does not decode: {e}"),
                ));
            }
        };
        let state = self.store.series().decoded(&series_id)?.ok_or_else(|| {
            PublishError::NotFound(format!("series {series_id} is not held by this node"))
        })?;
        if let Some(current) = self.store.records().get_by_id(&state.current)?
            && current.content.envelope().is_none()
        {
            return Err(invalid(
                "record_id",
                format!("the current version of {series_id} has expired; publish a new record"),
            ));
        }
        Ok((series_id, state))
    }
}
