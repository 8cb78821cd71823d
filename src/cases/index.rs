//! The case index: the agency's local cases, their selectors indexed for
//! peers' queries, and this node's own queries to every member.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::{CaseError, LocalCase, PeerResult, index_key};
use crate::audit::keeper::AuditKeeper;
use crate::audit::{Action, Entry};
use crate::clock::SharedClock;
use crate::limits::Buckets;
use crate::metrics::Metrics;
use crate::records::model::NodeId;
use crate::records::model::ValidationErrors;
use crate::records::selector::{MatchingKey, Token};
use crate::store::{Store, StoreError};
use crate::trust::reload::LiveTls;
use crate::wire::{MatchAnswer, MatchRequest, Reach};
use tokio::sync::Notify;

use super::own::{Identifier, OprfKeys};
use crate::records::selector::QueryTokens;

/// What an oblivious question needs from the query.
#[derive(Debug, Clone)]
pub(crate) struct Question<'a> {
    pub query_id: &'a str,
    pub justification: &'a str,
    pub actor: &'a str,
    pub ids: &'a [Identifier],
}

/// What a query asks: the identifiers, normalised (asked obliviously of
/// members with a match filter), and the shared-key tokens with their v1
/// companions (asked of the others, while the federation moves off the
/// shared key). One result per identifier comes back either way.
#[derive(Debug, Clone)]
pub struct Ask {
    pub ids: Vec<Identifier>,
    pub legacy: Option<QueryTokens>,
}

/// The case index: local cases and hit/no-hit queries, both ways.
///
/// It needs the store, the audit keeper (every query sent, answered or
/// refused is on record), the roster in use (who to ask), a way to reach
/// peers ([`Reach`]), the matching key that turns identifiers into
/// selectors, the query policy and the counters.
pub struct CaseIndex {
    pub(super) id: NodeId,
    pub(super) clock: SharedClock,
    pub(super) store: Arc<Store>,
    audit: Arc<AuditKeeper>,
    pub(super) trust: Arc<LiveTls>,
    pub(super) peers: Arc<dyn Reach>,
    metrics: Arc<Metrics>,
    /// The federation's shared key selectors were made with before
    /// per-member OPRF keys; `None` if this node makes none.
    pub(crate) matching: Option<Arc<MatchingKey>>,
    /// This member's OPRF keys and local key; `None`: no match filter.
    pub(crate) oprf: Option<Arc<OprfKeys>>,
    /// Woken when this node's own filter changed.
    pub(crate) filter_changed: Arc<Notify>,
    /// This node's own filter changed since it was last published.
    pub(crate) filter_dirty: std::sync::atomic::AtomicBool,
    /// Peers' queries, per asking peer.
    buckets: Buckets<NodeId>,
    /// Peers' oblivious evaluations and confirmations, per identifier.
    evaluations: Buckets<NodeId>,
    /// One catch-up of a member's filter view at a time, per member.
    pub(super) catching_up:
        std::sync::Mutex<std::collections::HashMap<NodeId, Arc<tokio::sync::Mutex<()>>>>,
    /// One write of a source's identifiers at a time, per source (by its
    /// hash: [`CaseIndex::own_lock`]).
    pub(super) own_locks: Vec<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for CaseIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaseIndex")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// What the case index is made of: see [`CaseIndex`].
pub(crate) struct IndexParts {
    pub id: NodeId,
    pub clock: SharedClock,
    pub store: Arc<Store>,
    pub audit: Arc<AuditKeeper>,
    pub trust: Arc<LiveTls>,
    pub peers: Arc<dyn Reach>,
    pub metrics: Arc<Metrics>,
    pub matching: Option<Arc<MatchingKey>>,
    pub oprf: Option<Arc<OprfKeys>>,
}

impl CaseIndex {
    pub(crate) fn new(p: IndexParts) -> Self {
        Self {
            id: p.id,
            clock: p.clock,
            store: p.store,
            audit: p.audit,
            trust: p.trust,
            peers: p.peers,
            metrics: p.metrics,
            matching: p.matching,
            oprf: p.oprf,
            filter_changed: Arc::new(Notify::new()),
            filter_dirty: std::sync::atomic::AtomicBool::new(true),
            buckets: Buckets::default(),
            evaluations: Buckets::default(),
            catching_up: std::sync::Mutex::default(),
            own_locks: (0..64).map(|_| tokio::sync::Mutex::new(())).collect(),
        }
    }

    /// Takes one of `peer`'s queries from its budget
    /// (`query.max_per_minute`), or says how long until one is free.
    pub(crate) fn admit_query(&self, peer: &NodeId) -> Result<(), Duration> {
        self.buckets
            .take(peer, self.trust.policy().query.max_per_minute)
    }

    /// Takes `n` identifiers of `peer`'s evaluations and confirmations
    /// from its budget (`query.evaluations_per_minute`), all or none, or
    /// says how long until they are free (`Duration::MAX`: never, `n` is
    /// more than the whole budget).
    pub(crate) fn admit_evaluations(&self, peer: &NodeId, n: usize) -> Result<(), Duration> {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        self.evaluations
            .take_n(peer, n, self.trust.policy().query.evaluations_per_minute)
    }
}

impl CaseIndex {
    /// Registers or replaces a local case, its selector index entries and
    /// its identifiers in this node's match filter: `ids` replace the
    /// case's identifiers when given, the ones held stay otherwise, and a
    /// closed case's leave the filter. `actor` (the agency client) is
    /// written to the audit entry, in the same transaction as the case.
    pub(crate) async fn put_case(
        &self,
        mut case: LocalCase,
        ids: Option<&[Identifier]>,
        new: bool,
        actor: &str,
    ) -> Result<LocalCase, CaseError> {
        case.check()?;
        // From reading the case held to storing the new one: its index
        // keys and filter entries are replaced by what was read.
        let _one = self
            .own_lock(&super::own::case_source(&case.case_id))
            .lock()
            .await;
        let now = self.clock.now_ms();
        let old = match self.store.cases().get(&case.case_id)? {
            Some(bytes) => serde_json::from_slice::<LocalCase>(&bytes).ok(),
            None if new => None,
            None => return Err(CaseError::NotFound(case.case_id)),
        };
        case.created_at_ms = old.as_ref().map_or(now, |o| o.created_at_ms);
        let action = match &old {
            None => Action::CaseRegistered,
            Some(o) if case.closed && !o.closed => Action::CaseClosed,
            Some(_) => Action::CaseUpdated,
        };
        case.updated_at_ms = now;
        if case.stage_reached_at_ms > now {
            return Err(CaseError::Invalid(ValidationErrors(vec![
                crate::records::model::FieldError::new(
                    "case.stage_reached_at_ms",
                    "is in the future",
                ),
            ])));
        }
        case.track_stage(old.as_ref(), now);
        let old_keys: Vec<Vec<u8>> = old
            .map(|o| o.tokens().iter().map(index_key).collect())
            .unwrap_or_default();
        // A closed case answers no query: its selectors leave the index.
        let new_keys: Vec<Vec<u8>> = if case.closed {
            Vec::new()
        } else {
            case.tokens()
                .iter()
                .map(index_key)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        let bytes = serde_json::to_vec(&case).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let source = super::own::case_source(&case.case_id);
        let own = match (case.closed, ids) {
            (true, _) => self.own_write(&source, None)?,
            (false, Some(ids)) if !ids.is_empty() => self.own_write(&source, Some(ids))?,
            (false, _) => None,
        };
        let in_filter = match (&own, ids) {
            (Some(w), Some(ids)) if w.sealed.is_some() => {
                format!(", {} identifiers in the match filter", ids.len())
            }
            (Some(_), _) => ", its identifiers left the match filter".to_owned(),
            (None, _) => String::new(),
        };
        let entry = Entry::new(action, actor)
            .id(case.case_id.clone())
            .tokens(&case.tokens())
            .result(format!("{} selectors indexed{in_filter}", new_keys.len()));
        self.store
            .cases()
            .put(
                &case.case_id,
                &bytes,
                &old_keys,
                &new_keys,
                own.as_ref(),
                entry.encode(),
            )
            .await?;
        entry.log(&self.id);
        if own.is_some() {
            self.filter_dirty
                .store(true, std::sync::atomic::Ordering::SeqCst);
            self.filter_changed.notify_one();
        }
        Ok(case)
    }

    /// One local case.
    pub(crate) fn local_case(&self, case_id: &str) -> Result<LocalCase, CaseError> {
        let bytes = self
            .store
            .cases()
            .get(case_id)?
            .ok_or_else(|| CaseError::NotFound(case_id.to_owned()))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| CaseError::Store(StoreError::Corrupt(e.to_string())))
    }

    /// Every local case.
    pub(crate) fn local_cases(&self) -> Result<Vec<LocalCase>, StoreError> {
        self.store
            .cases()
            .all()?
            .iter()
            .map(|b| serde_json::from_slice(b).map_err(|e| StoreError::Corrupt(e.to_string())))
            .collect()
    }

    /// Answers a peer's query: per token, whether an open local case holds
    /// it; and the case numbers of the matching cases.
    pub(crate) fn match_tokens(
        &self,
        tokens: &[Token],
    ) -> Result<(Vec<bool>, Vec<String>), StoreError> {
        let mut hits = Vec::with_capacity(tokens.len());
        let mut cases = BTreeSet::new();
        for t in tokens {
            let ids = self.store.cases().with_token(&index_key(t))?;
            hits.push(!ids.is_empty());
            cases.extend(ids);
        }
        let mut numbers = Vec::new();
        for id in cases {
            if let Ok(c) = self.local_case(&id)
                && !c.closed
            {
                numbers.push(c.case_number);
            }
        }
        Ok((hits, numbers))
    }

    /// Asks every member at once whether it holds any of the identifiers,
    /// within the configured deadline: obliviously where this node holds
    /// the member's complete match filter, else with the shared-key tokens
    /// if the query has them. The query is audited before it leaves, and
    /// each member's answer once it is in; one result per identifier.
    pub async fn query(
        &self,
        actor: &str,
        query_id: &str,
        ask: Ask,
        justification: &str,
    ) -> Result<Vec<(NodeId, PeerResult)>, StoreError> {
        let _timer = self.metrics.query_duration.start_timer();
        let asked: Vec<NodeId> = self
            .trust
            .roster()
            .members()
            .filter(|m| m.id != self.id && m.role == crate::trust::roster::Role::Member)
            .map(|m| m.id.clone())
            .collect();
        self.audit
            .record(vec![
                Entry::new(Action::QuerySent, actor)
                    .justification(justification)
                    .counterparts(&asked)
                    .id(query_id)
                    .result(format!("asked {} members", asked.len())),
            ])
            .await?;
        let deadline = self.trust.policy().query.deadline;
        let question = Question {
            query_id,
            justification,
            actor,
            ids: &ask.ids,
        };
        let calls = asked.into_iter().map(|peer| {
            let (ask, question) = (&ask, &question);
            async move {
                let how = std::sync::Mutex::new(How::NotAsked);
                let call = self.ask_one(&peer, ask, question, &how);
                let result = match tokio::time::timeout(deadline, call).await {
                    Err(_) => PeerResult::Unreachable(format!(
                        "no answer within {} ms",
                        deadline.as_millis()
                    )),
                    Ok(r) => r,
                };
                let how = how.into_inner().unwrap_or(How::NotAsked);
                (peer, result, how)
            }
        });
        let mut out = Vec::new();
        let mut answers = Vec::new();
        for (peer, result, how) in futures_util::future::join_all(calls).await {
            self.metrics.query_result(&peer, result.label());
            let summary = match &result {
                PeerResult::Hit { .. } => "hit".to_owned(),
                PeerResult::NoHit => "no_hit".to_owned(),
                PeerResult::Unreachable(r) => format!("unreachable: {r}"),
                PeerResult::Refused(r) => format!("refused: {r}"),
            };
            let mut entry = Entry::new(Action::QueryResult, actor)
                .counterpart(&peer)
                .id(query_id);
            entry = match how {
                How::Oblivious(epoch) => {
                    entry.result(format!("{summary} (oblivious, epoch {epoch})"))
                }
                // NOTE: digests of shared-key tokens only where they were
                // sent: they are testable offline by whoever has that key.
                How::SharedKey => entry
                    .tokens(ask.legacy.as_ref().map_or(&[][..], |t| t.tokens()))
                    .result(format!("{summary} (shared key)")),
                How::NotAsked => entry.result(summary),
            };
            answers.push(entry);
            out.push((peer, result));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        answers.sort_by(|a, b| a.counterparts.cmp(&b.counterparts));
        // The members that answered "hit" are noted with the answers, so
        // that an MLA request can cite this query to them, and only to them.
        let hits: Vec<&str> = out
            .iter()
            .filter(|(_, r)| matches!(r, PeerResult::Hit { .. }))
            .map(|(peer, _)| peer.as_str())
            .collect();
        if hits.is_empty() {
            self.audit.record(answers).await?;
        } else {
            let note = serde_json::to_vec(&hits).unwrap_or_default();
            self.audit
                .record_noting(answers, (&crate::store::query_note(query_id), &note))
                .await?;
        }
        Ok(out)
    }
}

/// How a member was asked.
#[derive(Debug, Clone, Copy)]
enum How {
    NotAsked,
    Oblivious(u32),
    SharedKey,
}

impl CaseIndex {
    /// One member's answer: obliviously if this node holds its complete
    /// filter, else with the shared-key tokens, else a refusal that says
    /// why it could not be asked.
    async fn ask_one(
        &self,
        peer: &NodeId,
        ask: &Ask,
        q: &Question<'_>,
        how: &std::sync::Mutex<How>,
    ) -> PeerResult {
        let note = |h| {
            if let Ok(mut how) = how.lock() {
                *how = h;
            }
        };
        if !ask.ids.is_empty() {
            if let Err(e) = self.catch_up(peer).await {
                return PeerResult::Unreachable(format!("cannot read the filter: {e}"));
            }
            match self.usable_epoch(peer) {
                Ok(Some(key)) => {
                    note(How::Oblivious(key.epoch));
                    return self.ask_obliviously(peer, key, q).await;
                }
                Ok(None) => {}
                Err(e) => return PeerResult::Unreachable(format!("cannot read the filter: {e}")),
            }
        }
        let Some(tokens) = &ask.legacy else {
            return PeerResult::Refused(format!(
                "not asked: this node holds no complete match filter of {peer} under a key its roster entry lists, and has no shared matching key to ask it the old way"
            ));
        };
        note(How::SharedKey);
        let request = MatchRequest {
            query_id: q.query_id.to_owned(),
            tokens: tokens.tokens().to_vec(),
            justification: q.justification.to_owned(),
            requested_by: q.actor.to_owned(),
        };
        let call = async {
            let mut client = self.peers.client(peer)?;
            client.query(request).await.map_err(classify)
        };
        match call.await {
            Err(r) => r,
            Ok(m) => match judge(m, tokens.tokens().len()) {
                PeerResult::Hit {
                    hits,
                    case_refs,
                    contact,
                } => PeerResult::Hit {
                    hits: tokens.fold_hits(hits),
                    case_refs,
                    contact,
                },
                other => other,
            },
        }
    }
}

/// A failure to reach the peer, or its refusal: it answered, and said no,
/// or what it sent back is not an answer (a garbage message is an answer
/// the peer is accountable for, not a network failure).
pub(super) fn classify(s: tonic::Status) -> PeerResult {
    use tonic::Code;
    match s.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {
            PeerResult::Unreachable(format!("{:?}: {}", s.code(), s.message()))
        }
        Code::Internal | Code::DataLoss | Code::Unimplemented | Code::OutOfRange => {
            PeerResult::Refused(format!("not an answer: {:?}: {}", s.code(), s.message()))
        }
        _ => PeerResult::Refused(s.message().to_owned()),
    }
}

/// A peer's answer to a query of `asked` selectors: one result per
/// selector, or it is refused as not an answer.
pub(super) fn judge(m: MatchAnswer, asked: usize) -> PeerResult {
    if m.hits.len() != asked {
        return PeerResult::Refused(format!(
            "not an answer: {} results for {asked} selectors",
            m.hits.len()
        ));
    }
    if m.hits.iter().any(|h| *h) {
        PeerResult::Hit {
            hits: m.hits,
            case_refs: m.case_refs,
            contact: m.contact,
        }
    } else {
        PeerResult::NoHit
    }
}
