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

/// The case index: local cases and hit/no-hit queries, both ways.
///
/// It needs the store, the audit keeper (every query sent, answered or
/// refused is on record), the roster in use (who to ask), a way to reach
/// peers ([`Reach`]), the matching key that turns identifiers into
/// selectors, the query policy and the counters.
pub struct CaseIndex {
    id: NodeId,
    clock: SharedClock,
    store: Arc<Store>,
    audit: Arc<AuditKeeper>,
    trust: Arc<LiveTls>,
    peers: Arc<dyn Reach>,
    metrics: Arc<Metrics>,
    /// The key selectors are made with; `None` if this node makes none.
    pub(crate) matching: Option<Arc<MatchingKey>>,
    /// Peers' queries, per asking peer.
    buckets: Buckets<NodeId>,
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
            buckets: Buckets::default(),
        }
    }

    /// Takes one of `peer`'s queries from its budget
    /// (`query.max_per_minute`), or says how long until one is free.
    pub(crate) fn admit_query(&self, peer: &NodeId) -> Result<(), Duration> {
        self.buckets
            .take(peer, self.trust.policy().query.max_per_minute)
    }
}

impl CaseIndex {
    /// Registers or replaces a local case and its selector index entries.
    /// `actor` (the agency client) is written to the audit entry, in the
    /// same transaction as the case.
    pub(crate) async fn put_case(
        &self,
        mut case: LocalCase,
        new: bool,
        actor: &str,
    ) -> Result<LocalCase, CaseError> {
        case.check()?;
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
        let entry = Entry::new(action, actor)
            .id(case.case_id.clone())
            .tokens(&case.tokens())
            .result(format!("{} selectors indexed", new_keys.len()));
        self.store
            .cases()
            .put(&case.case_id, &bytes, &old_keys, &new_keys, entry.encode())
            .await?;
        entry.log(&self.id);
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

    /// Asks every member in parallel whether it holds any of `tokens`,
    /// within the configured deadline. The query is audited before it
    /// leaves, and each member's answer once it is in.
    pub async fn query(
        &self,
        actor: &str,
        query_id: &str,
        tokens: Vec<Token>,
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
                    .tokens(&tokens)
                    .result(format!("asked {} members", asked.len())),
            ])
            .await?;
        let mut tasks = tokio::task::JoinSet::new();
        let selectors = tokens.len();
        for peer in asked {
            let peers = self.peers.clone();
            let request = MatchRequest {
                query_id: query_id.to_owned(),
                tokens: tokens.clone(),
                justification: justification.to_owned(),
                requested_by: actor.to_owned(),
            };
            let deadline = self.trust.policy().query.deadline;
            tasks.spawn(async move {
                let call = async {
                    let mut client = peers.client(&peer)?;
                    client.query(request).await.map_err(classify)
                };
                let result = match tokio::time::timeout(deadline, call).await {
                    Err(_) => PeerResult::Unreachable(format!(
                        "no answer within {} ms",
                        deadline.as_millis()
                    )),
                    Ok(Err(r)) => r,
                    Ok(Ok(m)) => judge(m, selectors),
                };
                (peer, result)
            });
        }
        let mut out = Vec::new();
        let mut answers = Vec::new();
        while let Some(done) = tasks.join_next().await {
            if let Ok((peer, result)) = done {
                self.metrics.query_result(&peer, result.label());
                let summary = match &result {
                    PeerResult::Hit { .. } => "hit".to_owned(),
                    PeerResult::NoHit => "no_hit".to_owned(),
                    PeerResult::Unreachable(r) => format!("unreachable: {r}"),
                    PeerResult::Refused(r) => format!("refused: {r}"),
                };
                answers.push(
                    Entry::new(Action::QueryResult, actor)
                        .counterpart(&peer)
                        .id(query_id)
                        .result(summary),
                );
                out.push((peer, result));
            }
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
