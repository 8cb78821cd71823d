//! The peer side of oblivious hit/no-hit (`Evaluate`, `Confirm`;
//! `docs/selectors.md`): who may ask, the per-identifier budget, the
//! bounds of what a peer sends, and the audit entries at this end. The
//! work is `crate::cases`'.
//!
//! Budget: an evaluation is a query and takes one of the caller's
//! queries of the minute (`query.max_per_minute`, as `Match` does, a
//! refused call too); then every identifier evaluated or confirmed takes
//! one token from the caller's bucket (`query.evaluations_per_minute`),
//! all of a call's or none, before anything is computed. A refusal is
//! recorded within the caller's refusal budget. The entry of an
//! answered evaluation says how many identifiers, the epoch, the
//! justification and who asked: never anything about the identifiers,
//! which this node does not see.

use tonic::{Request, Response, Status};

use super::federation::{FederationService, clip};
use super::{IntoStatus, identity};
use crate::audit::{Action, Entry};
use crate::cases::AnswerError;
use crate::limits;
use crate::records::model::NodeId;
use crate::records::oprf::Output;
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
    /// Identifiers to evaluate or entries to confirm.
    count: usize,
    requested_by: &'a str,
    justification: &'a str,
    query_id: &'a str,
}

impl FederationService {
    /// Who asks and why ([`FederationService::asked`]), then the checks
    /// and budgets both calls share ([`FederationService::admit_oblivious`]).
    async fn admit_call<T>(
        &self,
        request: &Request<T>,
        call: &'static str,
        said: Said<'_>,
    ) -> Result<Asked, Status> {
        let asked = self.asked(
            request,
            call,
            said.requested_by,
            said.justification,
            said.query_id,
        )?;
        self.admit_oblivious(
            &asked,
            call,
            said.count,
            said.requested_by,
            said.justification,
            said.query_id,
        )
        .await?;
        Ok(asked)
    }

    /// Who asks and why, bounded; refuses a client or an observer.
    fn asked<T>(
        &self,
        request: &Request<T>,
        call: &str,
        requested_by: &str,
        justification: &str,
        query_id: &str,
    ) -> Result<Asked, Status> {
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
                clip(requested_by, limits::MAX_PEER_REQUESTED_BY)
            ),
            justification: clip(justification, limits::MAX_PEER_JUSTIFICATION),
            query_id: clip(query_id, limits::MAX_PEER_QUERY_ID),
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

    /// The checks both calls share, in order: an observer does not ask;
    /// the budget is spent (all of the call's identifiers or none); the
    /// strings are within bounds; a justification is given; the count is
    /// within `query.max_selectors`.
    async fn admit_oblivious(
        &self,
        asked: &Asked,
        call: &'static str,
        count: usize,
        requested_by: &str,
        justification: &str,
        query_id: &str,
    ) -> Result<(), Status> {
        let live = self.node.trust.policy();
        let policy = &live.query;
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
            return Err(self.refuse_oblivious(asked, call, s).await);
        }
        if count == 0 || count > policy.max_selectors {
            let s = Status::invalid_argument(format!(
                "between 1 and {} identifiers per call (got {count})",
                policy.max_selectors
            ));
            return Err(self.refuse_oblivious(asked, call, s).await);
        }
        // An evaluation is a query: it first takes one of the caller's
        // queries of the minute (`query.max_per_minute`), like `Match`.
        if call == "Evaluate"
            && let Err(wait) = self.node.cases.admit_query(&asked.caller)
        {
            let s = Status::resource_exhausted(format!(
                "rate limit: at most {} queries per minute from {}; retry in {} s",
                policy.max_per_minute,
                asked.caller,
                wait.as_secs() + 1
            ));
            return Err(self.refuse_oblivious(asked, call, s).await);
        }
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
        for (field, value, max) in [
            (
                "justification",
                justification,
                limits::MAX_PEER_JUSTIFICATION,
            ),
            ("requested_by", requested_by, limits::MAX_PEER_REQUESTED_BY),
            ("query_id", query_id, limits::MAX_PEER_QUERY_ID),
        ] {
            if value.len() > max {
                let s = Status::invalid_argument(format!(
                    "{field}: at most {max} bytes (got {})",
                    value.len()
                ));
                return Err(self.refuse_oblivious(asked, call, s).await);
            }
        }
        if justification.trim().is_empty() {
            let s = Status::invalid_argument("justification: is required: say why you ask");
            return Err(self.refuse_oblivious(asked, call, s).await);
        }
        Ok(())
    }

    pub(super) async fn evaluate_impl(
        &self,
        request: Request<pb::EvaluateRequest>,
    ) -> Result<Response<pb::EvaluateResponse>, Status> {
        let call = "Evaluate";
        let r = request.get_ref();
        let said = Said {
            count: r.blinded.len(),
            requested_by: &r.requested_by,
            justification: &r.justification,
            query_id: &r.query_id,
        };
        let asked = self.admit_call(&request, call, said).await?;
        let req = request.into_inner();
        let evaluated = match self.node.cases.evaluate(req.epoch, &req.blinded) {
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
        let said = Said {
            count: r.entries.len(),
            requested_by: &r.requested_by,
            justification: &r.justification,
            query_id: &r.query_id,
        };
        let asked = self.admit_call(&request, call, said).await?;
        let req = request.into_inner();
        let mut entries = Vec::with_capacity(req.entries.len());
        for (i, e) in req.entries.iter().enumerate() {
            match Output::from_bytes(e) {
                Some(e) => entries.push(e),
                None => {
                    let s = Status::invalid_argument(format!(
                        "entries[{i}]: must be {} bytes, an entry and its tag (got {})",
                        crate::records::oprf::ENTRY_LEN + crate::records::oprf::TAG_LEN,
                        e.len()
                    ));
                    return Err(self.refuse_oblivious(&asked, call, s).await);
                }
            }
        }
        let found = match self.node.cases.confirm(req.epoch, &entries) {
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
