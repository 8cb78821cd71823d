//! Oblivious hit/no-hit (`docs/selectors.md`): both ends.
//!
//! Asking member i about identifiers: (1) bring the view of i's match
//! filter up to the records held; (2) blind the identifiers, have i
//! evaluate them with its OPRF key of the newest epoch whose filter is
//! complete here, and check i's proof against its roster key; (3) look the
//! entries up in i's filter; (4) only if one hits, confirm with i by
//! sending those entries, and i says which of its own cases or alerts hold
//! them. A no-hit shows i nothing but that an evaluation was asked, and
//! why.
//!
//! Answering: evaluate what a peer blinded (never seeing it), and confirm
//! the entries a peer found in this node's filter. Both are budgeted per
//! identifier and peer by the service before they get here.

use std::collections::BTreeSet;

use super::CaseIndex;
use super::index::Question;
use crate::limits::MAX_FILTER_ENTRIES_PER_MEMBER;
use crate::records::model::{NodeId, RecordKind};
use crate::records::oprf::{self, Blinded, ELEMENT_LEN, OprfError, Output, PROOF_LEN};
use crate::store::{PeerChange, StoreError};
use crate::wire::{ConfirmRequest, EvaluateRequest, PeerResult};

/// Records of an origin read per step when the view catches up: at most
/// 8 × 32 768 entries (4 MiB) decoded and written in one transaction.
const CATCH_UP_BATCH: usize = 8;

/// Why this node cannot answer an evaluation or confirmation.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error("this node has no OPRF key ([oprf] in its configuration)")]
    NoOprf,
    #[error(
        "this node holds no OPRF key of epoch {0} that its roster entry lists; ask with an epoch of its filter"
    )]
    NoKey(u32),
    #[error(transparent)]
    Oprf(#[from] OprfError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An evaluation's answer.
#[derive(Debug, Clone)]
pub struct Evaluated {
    pub elements: Vec<[u8; ELEMENT_LEN]>,
    pub proof: [u8; PROOF_LEN],
    /// The seq of this node's latest filter record of the epoch.
    pub filter_seq: u64,
}

/// How long a query waits for its view of a member's filter to reach the
/// member's latest filter record, before it says the view is behind.
const FILTER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// What a confirmation finds: per entry whether a source of this node
/// holds it, the case numbers of the open cases among them, and every
/// source found (for the audit).
#[derive(Debug, Clone, Default)]
pub struct Confirmed {
    pub hits: Vec<bool>,
    pub case_numbers: Vec<String>,
    pub sources: Vec<String>,
}

impl CaseIndex {
    /// Brings this node's view of `origin`'s filter up to the records it
    /// holds of `origin` (up to its replication cursor, so that no record
    /// is skipped that could still arrive).
    pub async fn catch_up(&self, origin: &NodeId) -> Result<(), StoreError> {
        // One catch-up per origin at a time: each reads the view's cursor
        // and moves it on, so two at once could apply a batch twice or
        // move the cursor back.
        let lock = {
            let mut locks = self
                .catching_up
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            locks.entry(origin.clone()).or_default().clone()
        };
        let _one = lock.lock().await;
        let filters = self.store.filters();
        let records = self.store.records();
        let mut from = filters.peer_cursor(origin)?;
        let up_to = records.cursor(origin)?;
        while from < up_to {
            let batch = records.of_origin(origin, from, up_to, CATCH_UP_BATCH)?;
            let last = if batch.len() < CATCH_UP_BATCH {
                up_to
            } else {
                batch.last().map_or(up_to, |r| r.seq)
            };
            let mut changes = Vec::new();
            for r in &batch {
                let Some(envelope) = r.content.envelope() else {
                    continue;
                };
                if let Ok((_, body)) = crate::wire::open_stored(envelope)
                    && let RecordKind::MatchFilter(f) = body.kind
                {
                    changes.push(PeerChange {
                        epoch: f.epoch,
                        added: f.added,
                        removed: f.removed,
                        complete: f.complete,
                    });
                }
            }
            let dropped = filters
                .apply_peer(origin, last, &changes, MAX_FILTER_ENTRIES_PER_MEMBER)
                .await?;
            if dropped > 0 {
                tracing::warn!(
                    security_event = true,
                    peer = %origin,
                    dropped,
                    limit = MAX_FILTER_ENTRIES_PER_MEMBER,
                    "a member's match filter exceeds the entries held per member and epoch; the rest is dropped and that epoch is not used"
                );
            }
            from = last;
        }
        Ok(())
    }

    /// The epoch to ask `peer` with: the newest whose filter is complete
    /// here and whose key the roster lists for it, with that key.
    pub(crate) fn usable_epoch(
        &self,
        peer: &NodeId,
    ) -> Result<Option<oprf::PublicKey>, StoreError> {
        let roster = self.trust.roster();
        let Some(member) = roster.member(peer) else {
            return Ok(None);
        };
        let complete = self.store.filters().peer_complete_epochs(peer)?;
        Ok(complete
            .iter()
            .rev()
            .find_map(|e| member.oprf_key(*e))
            .copied())
    }

    /// Asks `peer` obliviously; one result per identifier. `key` is the
    /// peer's roster key of the epoch to use ([`CaseIndex::usable_epoch`]).
    pub(crate) async fn ask_obliviously(
        &self,
        peer: &NodeId,
        key: oprf::PublicKey,
        q: &Question<'_>,
    ) -> PeerResult {
        let inputs = q
            .ids
            .iter()
            .map(|id| oprf::input(id.kind, &id.value))
            .collect();
        let blinded = match Blinded::new(inputs) {
            Ok(b) => b,
            Err(e) => return PeerResult::Unreachable(format!("cannot blind: {e}")),
        };
        let mut client = match self.peers.client(peer) {
            Ok(c) => c,
            Err(r) => return r,
        };
        let evaluated = client
            .evaluate(EvaluateRequest {
                query_id: q.query_id.to_owned(),
                epoch: key.epoch,
                blinded: blinded.elements.clone(),
                justification: q.justification.to_owned(),
                requested_by: q.actor.to_owned(),
            })
            .await;
        let (elements, proof, filter_seq) = match evaluated {
            Ok(e) => e,
            Err(s) => return super::index::classify(s),
        };
        let entries = match blinded.finalize(&elements, &proof, &key) {
            Ok(e) => e,
            Err(e @ OprfError::Proof { .. }) => {
                tracing::warn!(security_event = true, %peer, epoch = key.epoch, "an evaluation's proof does not verify against the member's roster key");
                return PeerResult::Refused(format!("not an answer: {e}"));
            }
            Err(e) => return PeerResult::Refused(format!("not an answer: {e}")),
        };
        // The member's filter as of its latest record, or nothing: an
        // older view could miss what it added a moment ago.
        if let Err(r) = self.wait_for_filter(peer, filter_seq).await {
            return r;
        }
        let filters = self.store.filters();
        let mut in_filter = Vec::with_capacity(entries.len());
        for e in &entries {
            match filters.peer_holds(peer, key.epoch, &e.entry) {
                Ok(h) => in_filter.push(h),
                Err(e) => return PeerResult::Unreachable(format!("cannot read the filter: {e}")),
            }
        }
        if !in_filter.iter().any(|h| *h) {
            return PeerResult::NoHit;
        }
        // Only the entries that hit go back, once each, with the tags that
        // show this node evaluated them.
        let asked: Vec<Output> = entries
            .iter()
            .zip(&in_filter)
            .filter(|(_, h)| **h)
            .map(|(e, _)| *e)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let answer = client
            .confirm(ConfirmRequest {
                query_id: q.query_id.to_owned(),
                epoch: key.epoch,
                entries: asked.clone(),
                justification: q.justification.to_owned(),
                requested_by: q.actor.to_owned(),
            })
            .await;
        let answer = match answer {
            Ok(a) => a,
            Err(s) => return super::index::classify(s),
        };
        if answer.hits.len() != asked.len() {
            return PeerResult::Refused(format!(
                "not an answer: {} results for {} entries confirmed",
                answer.hits.len(),
                asked.len()
            ));
        }
        let confirmed: BTreeSet<Output> = asked
            .iter()
            .zip(&answer.hits)
            .filter(|(_, h)| **h)
            .map(|(e, _)| *e)
            .collect();
        let hits: Vec<bool> = entries.iter().map(|e| confirmed.contains(e)).collect();
        if hits.iter().any(|h| *h) {
            PeerResult::Hit {
                hits,
                case_refs: answer.case_refs,
                contact: answer.contact,
            }
        } else {
            PeerResult::NoHit
        }
    }

    /// Waits (at most [`FILTER_WAIT`]) until this node's view of `peer`'s
    /// filter has read `peer`'s log up to `seq`.
    async fn wait_for_filter(&self, peer: &NodeId, seq: u64) -> Result<(), PeerResult> {
        let mut changes = self.store.subscribe();
        let wait = async {
            loop {
                self.catch_up(peer).await?;
                if self.store.filters().peer_cursor(peer)? >= seq {
                    return Ok::<_, StoreError>(());
                }
                if changes.changed().await.is_err() {
                    return Err(StoreError::Failed("the store closed".into()));
                }
            }
        };
        match tokio::time::timeout(FILTER_WAIT, wait).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(PeerResult::Unreachable(format!(
                "cannot read the filter: {e}"
            ))),
            Err(_) => Err(PeerResult::Unreachable(format!(
                "this node's copy of {peer}'s match filter is behind its latest record (seq {seq}), so not every identifier could be checked; ask again shortly"
            ))),
        }
    }

    /// Whether a source of this node's identifiers is in force: an open
    /// local case, or an alert whose series is neither withdrawn nor
    /// expired (a crash between an alert's change and its filter's can
    /// leave its identifiers behind for a while; they confirm nothing).
    fn source_in_force(&self, source: &str, now: i64) -> bool {
        if let Some(id) = source.strip_prefix("case:") {
            return self.local_case(id).is_ok_and(|c| !c.closed);
        }
        let Some(series) = source.strip_prefix("alert:") else {
            return false;
        };
        let Ok(Some(state)) = self.store.series().decoded(series) else {
            return false;
        };
        if state.withdrawn.is_some() || !state.recipients.is_empty() {
            return false;
        }
        let current = self.store.records().get_by_id(&state.current);
        matches!(current, Ok(Some(r)) if r.content.envelope().is_some_and(|e| {
            crate::wire::open_stored(e).is_ok_and(|(_, b)| {
                crate::records::lifecycle::expires_at(&b).is_none_or(|at| at > now)
            })
        }))
    }

    /// The epoch this node would ask `peer` with now, once it has read
    /// what it holds of `peer`'s filter records: `None` while it holds no
    /// complete filter of `peer` under a key the roster lists.
    pub async fn filter_epoch(&self, peer: &NodeId) -> Result<Option<u32>, StoreError> {
        self.catch_up(peer).await?;
        Ok(self.usable_epoch(peer)?.map(|k| k.epoch))
    }

    /// Evaluates a peer's blinded elements with this node's key of
    /// `epoch`, if its roster entry lists that key; with the seq of this
    /// node's latest filter record of that epoch.
    pub fn evaluate(&self, epoch: u32, blinded: &[Vec<u8>]) -> Result<Evaluated, AnswerError> {
        let oprf = self.oprf.as_ref().ok_or(AnswerError::NoOprf)?;
        if !self.active_epochs().contains(&epoch) {
            return Err(AnswerError::NoKey(epoch));
        }
        let key = oprf.key(epoch).ok_or(AnswerError::NoKey(epoch))?;
        let (elements, proof) = key.evaluate(blinded)?;
        Ok(Evaluated {
            elements,
            proof,
            filter_seq: self.store.filters().own_filter_seq(epoch)?,
        })
    }

    /// Which of `outputs` (of an active `epoch`) this node's open cases
    /// and alerts in force hold. An output counts only with the tag of its
    /// entry, which only an evaluation yields: entries copied from this
    /// node's published filter confirm nothing.
    pub fn confirm(&self, epoch: u32, outputs: &[Output]) -> Result<Confirmed, AnswerError> {
        if self.oprf.is_none() {
            return Err(AnswerError::NoOprf);
        }
        if !self.active_epochs().contains(&epoch) {
            return Err(AnswerError::NoKey(epoch));
        }
        let filters = self.store.filters();
        let now = self.clock.now_ms();
        let mut out = Confirmed::default();
        let mut sources = BTreeSet::new();
        for o in outputs {
            let holders: Vec<String> = filters
                .own_holders(epoch, &o.entry, &o.tag)?
                .into_iter()
                .filter(|s| self.source_in_force(s, now))
                .collect();
            out.hits.push(!holders.is_empty());
            sources.extend(holders);
        }
        for s in &sources {
            if let Some(id) = s.strip_prefix("case:")
                && let Ok(c) = self.local_case(id)
                && !c.closed
            {
                out.case_numbers.push(c.case_number);
            }
        }
        out.sources = sources.into_iter().collect();
        Ok(out)
    }
}
