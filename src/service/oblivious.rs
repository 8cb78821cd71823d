//! The peer side of oblivious hit/no-hit (`Evaluate`, `Confirm`;
//! `docs/selectors.md`): who may ask, the per-identifier budget, the
//! bounds of what a peer sends, and the audit entries at this end. The
//! work is `crate::cases`'.
//!
//! What a request must be is checked first, by pure functions
//! ([`check_evaluate`], [`check_confirm`]; fuzzed by the `oblivious`
//! target, `docs/fuzzing.md`): a malformed request is refused
//! (`InvalidArgument`, naming the field and the rule it breaks) before
//! an identifier's budget is spent, any key is looked up or anything is
//! evaluated.
//! Its refusal is still recorded, within the caller's refusal budget.
//!
//! Budget: an evaluation is a query and takes one of the caller's
//! queries of the minute (`query.max_per_minute`, as `Match` does), a
//! malformed one too, since its check decodes points; then every
//! identifier of a well-formed call evaluated or confirmed takes one
//! token from the caller's bucket (`query.evaluations_per_minute`), all of
//! a call's or none, before anything is computed. A well-formed call
//! refused after that (an epoch without a key) has taken them; a
//! malformed one takes none: one bad element must not burn the caller's
//! tokens for the identifiers beside it. A confirmation's check only
//! measures lengths. A refusal is
//! recorded within the caller's refusal budget. The entry of an answered
//! evaluation says how many identifiers, the epoch, the justification
//! and who asked: never anything about the identifiers, which this node
//! does not see.

use tonic::{Request, Response, Status};

use super::federation::{FederationService, clip};
use super::{IntoStatus, identity};
use crate::audit::{Action, Entry};
use crate::cases::AnswerError;
use crate::limits;
use crate::records::model::NodeId;
use crate::records::oprf::{self, ELEMENT_LEN, ENTRY_LEN, OprfError, Output, TAG_LEN};
use crate::trust::roster::Role;
use crate::trust::tls::Identity;
use crate::wire;
use crate::wire::pb::v1 as pb;

/// What every oblivious call carries, bounded for the record.
struct Asked {
    caller: NodeId,
    actor: String,
    justification: String,
    query_id: String,
}

impl IntoStatus for AnswerError {
    fn into_status(self) -> Status {
        match self {
            AnswerError::NoOprf | AnswerError::NoKey(_) => {
                Status::failed_precondition(self.to_string())
            }
            AnswerError::Oprf(e) => Status::invalid_argument(e.to_string()),
            AnswerError::Store(e) => e.into_status(),
        }
    }
}

/// What a call says about itself, as sent (bounded only once checked).
struct Said<'a> {
    requested_by: &'a str,
    justification: &'a str,
    query_id: &'a str,
}

impl<'a> Said<'a> {
    fn of_evaluate(r: &'a pb::EvaluateRequest) -> Self {
        Self {
            requested_by: &r.requested_by,
            justification: &r.justification,
            query_id: &r.query_id,
        }
    }

    fn of_confirm(r: &'a pb::ConfirmRequest) -> Self {
        Self {
            requested_by: &r.requested_by,
            justification: &r.justification,
            query_id: &r.query_id,
        }
    }
}

/// Why a peer's `Evaluate` or `Confirm` request is refused before any
/// work: the field, and the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("{field}: between 1 and {max} identifiers per call (got {got})")]
    Count {
        field: &'static str,
        max: usize,
        got: usize,
    },
    #[error("{field}: at most {max} bytes (got {got})")]
    TooLong {
        field: &'static str,
        max: usize,
        got: usize,
    },
    #[error("justification: is required: say why you ask")]
    NoJustification,
    #[error("epoch: must be 1 or more (0 is what an unset field reads as)")]
    ZeroEpoch,
    #[error("blinded[{index}]: must be {ELEMENT_LEN} bytes of a ristretto255 element (got {got})")]
    ElementLength { index: usize, got: usize },
    #[error(
        "blinded[{index}]: is not a ristretto255 element (the canonical encoding of a point other than the identity)"
    )]
    NotAnElement { index: usize },
    #[error("entries[{index}]: must be {} bytes, an entry and its tag (got {got})", ENTRY_LEN + TAG_LEN)]
    EntryLength { index: usize, got: usize },
}

impl IntoStatus for RequestError {
    fn into_status(self) -> Status {
        Status::invalid_argument(self.to_string())
    }
}

/// An `Evaluate` request that [`check_evaluate`] let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evaluation<'a> {
    /// 1 or more.
    pub epoch: u32,
    /// Between 1 and `max_selectors` elements, each a valid ristretto255
    /// element other than the identity.
    pub blinded: &'a [Vec<u8>],
}

/// A `Confirm` request that [`check_confirm`] let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    /// 1 or more.
    pub epoch: u32,
    /// Between 1 and `max_selectors` entries with their tags, in request
    /// order.
    pub entries: Vec<Output>,
}

/// What [`FederationService::admit_call`] spends the budget for.
trait Counted {
    /// Identifiers to evaluate or entries to confirm.
    fn count(&self) -> usize;
}

impl Counted for Evaluation<'_> {
    fn count(&self) -> usize {
        self.blinded.len()
    }
}

impl Counted for Confirmation {
    fn count(&self) -> usize {
        self.entries.len()
    }
}

/// Checks an `Evaluate` request as a peer sent it, in order: between 1
/// and `max_selectors` (`query.max_selectors`) blinded elements; the
/// strings within their bounds; a justification given; an epoch of 1 or
/// more; then each blinded element ([`oprf::check_blinded`]). Pure: the
/// first rule broken is the refusal.
pub fn check_evaluate(
    req: &pb::EvaluateRequest,
    max_selectors: usize,
) -> Result<Evaluation<'_>, RequestError> {
    check_said(
        &Said::of_evaluate(req),
        "blinded",
        req.blinded.len(),
        req.epoch,
        max_selectors,
    )?;
    for (index, b) in req.blinded.iter().enumerate() {
        oprf::check_blinded(b).map_err(|e| match e {
            OprfError::ElementLength { got, .. } => RequestError::ElementLength { index, got },
            _ => RequestError::NotAnElement { index },
        })?;
    }
    Ok(Evaluation {
        epoch: req.epoch,
        blinded: &req.blinded,
    })
}

/// Checks a `Confirm` request as a peer sent it: the rules
/// [`check_evaluate`] applies before the elements (with `entries` for
/// `blinded`), then each entry is [`ENTRY_LEN`] bytes of an entry and
/// [`TAG_LEN`] of its tag. Pure: the first rule broken is the refusal.
pub fn check_confirm(
    req: &pb::ConfirmRequest,
    max_selectors: usize,
) -> Result<Confirmation, RequestError> {
    check_said(
        &Said::of_confirm(req),
        "entries",
        req.entries.len(),
        req.epoch,
        max_selectors,
    )?;
    let entries = req
        .entries
        .iter()
        .enumerate()
        .map(|(index, e)| {
            Output::from_bytes(e).ok_or(RequestError::EntryLength {
                index,
                got: e.len(),
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Confirmation {
        epoch: req.epoch,
        entries,
    })
}

/// The rules both calls share, in order: between 1 and `max_selectors`
/// items (`count` of `field`); the strings within their bounds; a
/// justification given; an epoch of 1 or more.
fn check_said(
    said: &Said<'_>,
    field: &'static str,
    count: usize,
    epoch: u32,
    max_selectors: usize,
) -> Result<(), RequestError> {
    if count == 0 || count > max_selectors {
        return Err(RequestError::Count {
            field,
            max: max_selectors,
            got: count,
        });
    }
    for (field, value, max) in [
        (
            "justification",
            said.justification,
            limits::MAX_PEER_JUSTIFICATION,
        ),
        (
            "requested_by",
            said.requested_by,
            limits::MAX_PEER_REQUESTED_BY,
        ),
        ("query_id", said.query_id, limits::MAX_PEER_QUERY_ID),
    ] {
        if value.len() > max {
            return Err(RequestError::TooLong {
                field,
                max,
                got: value.len(),
            });
        }
    }
    if said.justification.trim().is_empty() {
        return Err(RequestError::NoJustification);
    }
    if epoch == 0 {
        return Err(RequestError::ZeroEpoch);
    }
    Ok(())
}

impl FederationService {
    /// Admits a call, in order: who asks and why
    /// ([`FederationService::asked`]); an observer does not ask; an
    /// evaluation takes one of the caller's queries of the minute (a
    /// malformed one too: its check decodes points); the request is well
    /// formed (`check`, its pure check, run only for a peer that may ask);
    /// the identifiers' tokens are taken
    /// ([`FederationService::spend_identifiers`]). Every refusal but a
    /// client's is on record.
    async fn admit_call<T, C: Counted>(
        &self,
        request: &Request<T>,
        call: &'static str,
        said: Said<'_>,
        check: impl FnOnce() -> Result<C, RequestError>,
    ) -> Result<(Asked, C), Status> {
        let asked = self.asked(request, call, &said)?;
        if self
            .node
            .trust
            .roster()
            .member(&asked.caller)
            .is_some_and(|m| m.role == Role::Observer)
        {
            let s = Status::permission_denied(format!(
                "{} is an observer: observers receive records and do not query",
                asked.caller
            ));
            return Err(self.refuse_oblivious(&asked, call, s).await);
        }
        if call == "Evaluate" {
            self.spend_query(&asked, call).await?;
        }
        let checked = match check() {
            Ok(c) => c,
            Err(e) => return Err(self.refuse_oblivious(&asked, call, e.into_status()).await),
        };
        self.spend_identifiers(&asked, call, checked.count())
            .await?;
        Ok((asked, checked))
    }

    /// Who asks and why, bounded; refuses a client.
    fn asked<T>(&self, request: &Request<T>, call: &str, said: &Said<'_>) -> Result<Asked, Status> {
        let caller = match identity(request)? {
            Identity::Peer(id) => id,
            Identity::Client(_) => {
                return Err(Status::permission_denied(format!(
                    "{call} is for federation peers"
                )));
            }
        };
        Ok(Asked {
            actor: format!(
                "{}@{caller}",
                clip(said.requested_by, limits::MAX_PEER_REQUESTED_BY)
            ),
            justification: clip(said.justification, limits::MAX_PEER_JUSTIFICATION),
            query_id: clip(said.query_id, limits::MAX_PEER_QUERY_ID),
            caller,
        })
    }

    /// Refuses `asked`'s call with `status`, on record within the caller's
    /// refusal budget.
    async fn refuse_oblivious(&self, asked: &Asked, call: &'static str, status: Status) -> Status {
        let entry = Entry::new(Action::QueryRefused, &asked.actor)
            .counterpart(&asked.caller)
            .justification(&asked.justification)
            .id(&asked.query_id)
            .result(format!("{call}: {}", status.message()));
        if let Err(e) = self
            .node
            .audit
            .record_peer_refusal(&asked.caller, call, entry)
            .await
        {
            return e.into_status();
        }
        self.node.metrics.query_answered(&asked.caller, "refused");
        status
    }

    /// An evaluation is a query: it takes one of the caller's queries of
    /// the minute (`query.max_per_minute`), like `Match`, a refused call
    /// too.
    async fn spend_query(&self, asked: &Asked, call: &'static str) -> Result<(), Status> {
        if let Err(wait) = self.node.cases.admit_query(&asked.caller) {
            let s = Status::resource_exhausted(format!(
                "rate limit: at most {} queries per minute from {}; retry in {} s",
                self.node.trust.policy().query.max_per_minute,
                asked.caller,
                wait.as_secs() + 1
            ));
            return Err(self.refuse_oblivious(asked, call, s).await);
        }
        Ok(())
    }

    /// Takes a well-formed call's `count` identifier tokens (all or none).
    async fn spend_identifiers(
        &self,
        asked: &Asked,
        call: &'static str,
        count: usize,
    ) -> Result<(), Status> {
        let live = self.node.trust.policy();
        let policy = &live.query;
        if let Err(wait) = self.node.cases.admit_evaluations(&asked.caller, count) {
            let when = if wait == std::time::Duration::MAX {
                "more than the whole budget: ask fewer at a time".to_owned()
            } else {
                format!("retry in {} s", wait.as_secs().saturating_add(1))
            };
            let s = Status::resource_exhausted(format!(
                "rate limit: at most {} identifiers evaluated or confirmed per minute for {}; {count} asked, {when}",
                policy.evaluations_per_minute, asked.caller,
            ));
            return Err(self.refuse_oblivious(asked, call, s).await);
        }
        Ok(())
    }

    /// `query.max_selectors` as the policy in force says.
    fn max_selectors(&self) -> usize {
        self.node.trust.policy().query.max_selectors
    }

    pub(super) async fn evaluate_impl(
        &self,
        request: Request<pb::EvaluateRequest>,
    ) -> Result<Response<pb::EvaluateResponse>, Status> {
        let call = "Evaluate";
        let r = request.get_ref();
        let check = || check_evaluate(r, self.max_selectors());
        let (asked, req) = self
            .admit_call(&request, call, Said::of_evaluate(r), check)
            .await?;
        let evaluated = match self.node.cases.evaluate(req.epoch, req.blinded) {
            Ok(answer) => answer,
            Err(e) => {
                let s = e.into_status();
                return Err(self.refuse_oblivious(&asked, call, s).await);
            }
        };
        // The answer leaves only once its audit entry is durable.
        let entry = Entry::new(Action::QueryEvaluated, &asked.actor)
            .counterpart(&asked.caller)
            .justification(&asked.justification)
            .id(&asked.query_id)
            .result(format!(
                "{} identifiers evaluated with the OPRF key of epoch {}",
                evaluated.elements.len(),
                req.epoch
            ));
        self.node
            .audit
            .record(vec![entry])
            .await
            .map_err(IntoStatus::into_status)?;
        self.node.metrics.query_answered(&asked.caller, "evaluated");
        Ok(Response::new(pb::EvaluateResponse {
            evaluated: evaluated.elements.iter().map(|e| e.to_vec()).collect(),
            proof: evaluated.proof.to_vec(),
            filter_seq: evaluated.filter_seq,
        }))
    }

    pub(super) async fn confirm_impl(
        &self,
        request: Request<pb::ConfirmRequest>,
    ) -> Result<Response<pb::MatchResponse>, Status> {
        let call = "Confirm";
        let r = request.get_ref();
        let check = || check_confirm(r, self.max_selectors());
        let (asked, req) = self
            .admit_call(&request, call, Said::of_confirm(r), check)
            .await?;
        let found = match self.node.cases.confirm(req.epoch, &req.entries) {
            Ok(f) => f,
            Err(e) => {
                let s = e.into_status();
                return Err(self.refuse_oblivious(&asked, call, s).await);
            }
        };
        let hit = found.hits.iter().any(|h| *h);
        let entry = Entry::new(Action::QueryConfirmed, &asked.actor)
            .counterpart(&asked.caller)
            .justification(&asked.justification)
            .id(&asked.query_id)
            .ids(found.sources.iter().cloned())
            .result(format!(
                "{} of {} entries of epoch {} held{}",
                found.hits.iter().filter(|h| **h).count(),
                found.hits.len(),
                req.epoch,
                if hit { ": hit" } else { ": no_hit" }
            ));
        self.node
            .audit
            .record(vec![entry])
            .await
            .map_err(IntoStatus::into_status)?;
        self.node
            .metrics
            .query_answered(&asked.caller, if hit { "hit" } else { "no_hit" });
        let live = self.node.trust.policy();
        let contact = if hit {
            live.agency.contact.as_ref().map(wire::contact_to_pb)
        } else {
            None
        };
        let case_refs = if hit && live.query.reveal == crate::config::Reveal::CaseRefs {
            found.case_numbers
        } else {
            Vec::new()
        };
        Ok(Response::new(pb::MatchResponse {
            hits: found.hits,
            case_refs,
            contact,
        }))
    }
}

#[cfg(test)]
#[path = "oblivious_tests.rs"]
mod tests;
