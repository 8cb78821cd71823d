//! Local cases and hit/no-hit queries.
//!
//! A local case is the agency's own: its case number, offence, stage,
//! contact, the selectors (hashed identifiers) of the people and things in
//! it, and the statistics the UNODC data collection asks for. It never
//! leaves the node. Its selectors are indexed, so that when a peer asks
//! "do you hold any of these tokens?" the node answers per selector, hit or
//! no hit, and on a hit either names its case numbers and contact point or
//! says only "hit, contact us", as its policy (`[query] reveal`) says.
//!
//! Queries are bounded: selectors per query, and queries per peer per
//! minute (a token bucket). A refusal says why. Every query sent, answered
//! or refused goes to the audit path.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::audit::{Action, Entry};
use crate::records::model::{
    ContactPoint, Errors, NodeId, ValidationErrors, check_contact, check_text,
};
use crate::records::selector::Token;
use crate::records::vocabulary::{
    AgeGroup, CaseStage, Exploitation, Offence, SelectorKind, Sex, parse_country,
};
use crate::state::NodeState;
use crate::store::StoreError;
use crate::wire::{MatchRequest, PeerClient};

/// Victims of a case, for statistics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VictimStat {
    pub sex: Sex,
    pub age_group: AgeGroup,
    #[serde(default)]
    pub exploitation: Vec<Exploitation>,
    #[serde(default)]
    pub citizenship: String,
}

/// Offenders of a case, for statistics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffenderStat {
    pub sex: Sex,
    #[serde(default)]
    pub citizenship: String,
}

/// A selector as stored with a local case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredToken {
    pub kind: SelectorKind,
    pub epoch: u32,
    /// 64 hex digits.
    pub token: String,
}

impl StoredToken {
    pub(crate) fn from_token(t: &Token) -> Self {
        Self {
            kind: t.kind,
            epoch: t.epoch,
            token: t.hex(),
        }
    }

    pub(crate) fn to_token(&self) -> Option<Token> {
        let bytes: Vec<u8> = (0..self.token.len())
            .step_by(2)
            .map(|i| {
                self.token
                    .get(i..i + 2)
                    .and_then(|b| u8::from_str_radix(b, 16).ok())
            })
            .collect::<Option<_>>()?;
        Some(Token {
            kind: self.kind,
            epoch: self.epoch,
            token: bytes.try_into().ok()?,
        })
    }
}

/// An agency's own case (stored as JSON in `local_cases`; fields are only
/// ever added).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalCase {
    pub case_id: String,
    pub case_number: String,
    pub offence: Offence,
    pub stage: CaseStage,
    #[serde(default)]
    pub contact: Option<ContactPoint>,
    #[serde(default)]
    pub selectors: Vec<StoredToken>,
    #[serde(default)]
    pub victims: Vec<VictimStat>,
    #[serde(default)]
    pub offenders: Vec<OffenderStat>,
    #[serde(default)]
    pub closed: bool,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// The selector index key of a token: kind, epoch, token bytes.
pub(crate) fn index_key(t: &Token) -> Vec<u8> {
    let mut k = Vec::with_capacity(37);
    k.push(t.kind.wire() as u8);
    k.extend_from_slice(&t.epoch.to_be_bytes());
    k.extend_from_slice(&t.token);
    k
}

impl LocalCase {
    /// The rules of a local case; every problem at once.
    pub fn check(&self) -> Result<(), ValidationErrors> {
        let mut errors = Errors::default();
        check_text(
            &mut errors,
            "case.case_number",
            &self.case_number,
            100,
            true,
        );
        if let Some(c) = &self.contact {
            check_contact(&mut errors, "case", c);
        }
        errors.check(self.selectors.len() <= 64, "case.selectors", "at most 64");
        errors.check(self.victims.len() <= 1000, "case.victims", "at most 1000");
        errors.check(
            self.offenders.len() <= 1000,
            "case.offenders",
            "at most 1000",
        );
        for (i, v) in self.victims.iter().enumerate() {
            if !v.citizenship.is_empty()
                && let Err(e) = parse_country(&v.citizenship)
            {
                errors.push(format!("case.victims[{i}].citizenship"), e);
            }
        }
        for (i, o) in self.offenders.iter().enumerate() {
            if !o.citizenship.is_empty()
                && let Err(e) = parse_country(&o.citizenship)
            {
                errors.push(format!("case.offenders[{i}].citizenship"), e);
            }
        }
        errors.finish()
    }

    pub fn tokens(&self) -> Vec<Token> {
        self.selectors
            .iter()
            .filter_map(StoredToken::to_token)
            .collect()
    }
}

/// Why a case operation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CaseError {
    #[error("invalid request: {0}")]
    Invalid(#[from] ValidationErrors),
    #[error("no local case {0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub use crate::wire::PeerResult;

impl NodeState {
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
        self: &Arc<Self>,
        actor: &str,
        query_id: &str,
        tokens: Vec<Token>,
        justification: &str,
    ) -> Result<Vec<(NodeId, PeerResult)>, StoreError> {
        let _timer = self.metrics.query_duration.start_timer();
        let asked: Vec<NodeId> = self
            .roster()
            .members()
            .filter(|m| m.id != self.id && m.role == crate::trust::roster::Role::Member)
            .map(|m| m.id.clone())
            .collect();
        self.audit(vec![
            Entry::new(Action::QuerySent, actor)
                .justification(justification)
                .counterparts(&asked)
                .id(query_id)
                .tokens(&tokens)
                .result(format!("asked {} members", asked.len())),
        ])
        .await?;
        let mut tasks = tokio::task::JoinSet::new();
        for peer in asked {
            let state = self.clone();
            let request = MatchRequest {
                query_id: query_id.to_owned(),
                tokens: tokens.clone(),
                justification: justification.to_owned(),
                requested_by: actor.to_owned(),
            };
            let deadline = self.query.deadline;
            tasks.spawn(async move {
                let call = async {
                    let mut client = state.peer_client(&peer)?;
                    client.query(request).await.map_err(classify)
                };
                let result = match tokio::time::timeout(deadline, call).await {
                    Err(_) => PeerResult::Unreachable(format!(
                        "no answer within {} ms",
                        deadline.as_millis()
                    )),
                    Ok(Err(r)) => r,
                    Ok(Ok(m)) if m.hits.iter().any(|h| *h) => PeerResult::Hit {
                        hits: m.hits,
                        case_refs: m.case_refs,
                        contact: m.contact,
                    },
                    Ok(Ok(_)) => PeerResult::NoHit,
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
        self.audit(answers).await?;
        Ok(out)
    }

    /// A federation client for `peer`, made once and kept.
    pub(crate) fn peer_client(&self, peer: &NodeId) -> Result<PeerClient, PeerResult> {
        if let Ok(clients) = self.peer_clients.0.lock()
            && let Some(c) = clients.get(peer)
        {
            return Ok(c.clone());
        }
        let endpoint = self
            .peer_endpoint(peer)
            .ok_or_else(|| PeerResult::Unreachable("no endpoint".into()))?;
        let config = self.tls_live.peer_client(peer);
        let channel = crate::exchange::peers::peer_channel(config, &endpoint.host, endpoint.port)
            .map_err(|e| PeerResult::Unreachable(e.to_string()))?;
        let client = PeerClient::new(channel);
        if let Ok(mut clients) = self.peer_clients.0.lock() {
            clients.insert(peer.clone(), client.clone());
        }
        Ok(client)
    }
}

/// A peer's refusal (it answered, and said no) or a failure to reach it.
fn classify(s: tonic::Status) -> PeerResult {
    use tonic::Code;
    match s.code() {
        Code::ResourceExhausted
        | Code::InvalidArgument
        | Code::PermissionDenied
        | Code::FailedPrecondition => PeerResult::Refused(s.message().to_owned()),
        _ => PeerResult::Unreachable(format!("{:?}: {}", s.code(), s.message())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_tokens_round_trip() {
        let t = Token {
            kind: SelectorKind::Passport,
            epoch: 2,
            token: [0xab; 32],
        };
        assert_eq!(StoredToken::from_token(&t).to_token(), Some(t));
        assert_eq!(index_key(&t).len(), 37);
    }
}
