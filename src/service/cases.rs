//! The agency API's local cases, queries and mutual legal assistance:
//! conversions between the wire and [`crate::cases`] / [`crate::records::mla`], and
//! the handlers the `Agency` trait delegates to.

use tonic::{Request, Response, Status};

use super::agency::AgencyService;
use super::{IntoStatus, status};
use crate::cases::{
    Ask, CaseError, Identifier, LocalCase, OffenderStat, PeerResult, StoredToken, VictimStat,
};
use crate::config::ClientRole;
use crate::publish::Change;
use crate::records::mla::MlaState;
use crate::records::model::{Errors, FieldError, ValidationErrors};
use crate::records::selector::{Hashed, QueryTokens, normalise};
use crate::records::vocabulary::{
    AgeGroup, CaseStage, Exploitation, MlaOutcome, Offence, SelectorKind, Sex, Urgency,
};
use crate::wire;
use crate::wire::pb::v1 as pb;

/// Clear identifiers as the node keeps them: normalised, and hashed with
/// the shared key while it has one.
#[derive(Debug, Default)]
pub(super) struct Values {
    pub ids: Vec<Identifier>,
    pub hashed: Vec<Hashed>,
}

impl IntoStatus for CaseError {
    fn into_status(self) -> Status {
        match self {
            CaseError::Own(e) => Status::internal(e.to_string()),
            CaseError::Invalid(e) => Status::invalid_argument(e.to_string()),
            CaseError::NotFound(id) => Status::not_found(format!("no local case {id}")),
            CaseError::Store(e) => e.into_status(),
        }
    }
}

fn invalid(field: &str, rule: impl Into<String>) -> Status {
    Status::invalid_argument(ValidationErrors(vec![FieldError::new(field, rule)]).to_string())
}

pub(crate) fn case_to_pb(c: &LocalCase) -> pb::LocalCase {
    pb::LocalCase {
        case_id: c.case_id.clone(),
        case_number: c.case_number.clone(),
        offence: c.offence.wire(),
        stage: c.stage.wire(),
        contact: c.contact.as_ref().map(wire::contact_to_pb),
        selectors: c.tokens().iter().map(wire::selector_to_pb).collect(),
        victims: c
            .victims
            .iter()
            .map(|v| pb::Victim {
                sex: v.sex.wire(),
                age_group: v.age_group.wire(),
                exploitation: v.exploitation.iter().map(|e| e.wire()).collect(),
                citizenship: v.citizenship.clone(),
            })
            .collect(),
        offenders: c
            .offenders
            .iter()
            .map(|o| pb::Offender {
                sex: o.sex.wire(),
                citizenship: o.citizenship.clone(),
            })
            .collect(),
        closed: c.closed,
        created_at_ms: c.created_at_ms,
        updated_at_ms: c.updated_at_ms,
        stage_reached_at_ms: c.reached().1,
        highest_stage: c.reached().0.wire(),
    }
}

impl AgencyService {
    /// Normalises clear identifiers (for this node's match filter and
    /// oblivious queries) and, while the node still holds the federation's
    /// shared matching key, hashes them with it, each with its v1 companion
    /// token where it has one (`docs/selectors.md`, "Versions"). The clear
    /// values go no further.
    pub(super) fn identifiers(
        &self,
        values: Vec<pb::SelectorValue>,
        field: &str,
        errors: &mut Errors,
    ) -> Values {
        let mut out = Values::default();
        let cases = &self.node().cases;
        for (i, v) in values.into_iter().enumerate() {
            let at = format!("{field}[{i}]");
            let Some(kind) = SelectorKind::from_wire(v.kind) else {
                errors.push(format!("{at}.kind"), "is required: a selector kind");
                continue;
            };
            if cases.oprf.is_none() && cases.matching.is_none() {
                errors.push(
                    at,
                    "this node has no OPRF key ([oprf] in its configuration) nor a shared matching key ([matching])",
                );
                continue;
            }
            let value = match normalise(kind, &v.value) {
                Ok(n) => n,
                Err(e) => {
                    errors.push(at, e.to_string());
                    continue;
                }
            };
            if let Some(key) = &cases.matching {
                match key.hash_with_v1(kind, &v.value) {
                    Ok(t) => out.hashed.push(t),
                    Err(e) => errors.push(at, e.to_string()),
                }
            }
            out.ids.push(Identifier { kind, value });
        }
        out
    }

    /// A wire case and its clear identifiers, converted and checked; the
    /// identifiers normalised, for the match filter.
    fn case_from_pb(
        &self,
        c: pb::LocalCase,
        values: Vec<pb::SelectorValue>,
    ) -> Result<(LocalCase, Vec<Identifier>), Status> {
        let mut errors = Errors::default();
        let offence = Offence::from_wire(c.offence);
        errors.check(offence.is_some(), "case.offence", "is required");
        let stage = if c.stage == 0 {
            Some(CaseStage::Investigation)
        } else {
            CaseStage::from_wire(c.stage)
        };
        errors.check(
            stage.is_some(),
            "case.stage",
            format!("unknown value {}", c.stage),
        );
        let mut tokens = wire::selectors_from_pb(c.selectors, "case.selectors", &mut errors);
        // NOTE: the v1 companions are indexed too, so that the queries of a
        // node not yet upgraded still find the case.
        let values = self.identifiers(values, "selector_values", &mut errors);
        tokens.extend(values.hashed.iter().flat_map(Hashed::all));
        let victims = c
            .victims
            .into_iter()
            .map(|v| VictimStat {
                sex: Sex::from_wire(v.sex).unwrap_or(Sex::Unknown),
                age_group: AgeGroup::from_wire(v.age_group).unwrap_or(AgeGroup::Unknown),
                exploitation: v
                    .exploitation
                    .into_iter()
                    .filter_map(Exploitation::from_wire)
                    .collect(),
                citizenship: v.citizenship.to_ascii_uppercase(),
            })
            .collect();
        let offenders = c
            .offenders
            .into_iter()
            .map(|o| OffenderStat {
                sex: Sex::from_wire(o.sex).unwrap_or(Sex::Unknown),
                citizenship: o.citizenship.to_ascii_uppercase(),
            })
            .collect();
        errors
            .finish()
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok((
            LocalCase {
                case_id: c.case_id,
                case_number: c.case_number,
                offence: offence.unwrap_or(Offence::Undetermined),
                stage: stage.unwrap_or(CaseStage::Investigation),
                contact: wire::contact_from_pb(c.contact),
                selectors: tokens.iter().map(StoredToken::from_token).collect(),
                victims,
                offenders,
                closed: c.closed,
                created_at_ms: 0,
                updated_at_ms: 0,
                highest_stage: None,
                stage_reached_at_ms: c.stage_reached_at_ms,
            },
            values.ids,
        ))
    }

    /// Stores `case` for `actor` (`new`: a registration, with the id just
    /// drawn) and answers with the case as stored.
    async fn save_case(
        &self,
        case: LocalCase,
        ids: Option<&[Identifier]>,
        new: bool,
        actor: &str,
    ) -> Result<Response<pb::LocalCase>, Status> {
        let case = self
            .node()
            .cases
            .put_case(case, ids, new, actor)
            .await
            .map_err(status)?;
        self.filter_changed().await;
        Ok(Response::new(case_to_pb(&case)))
    }

    pub(super) async fn register_case_impl(
        &self,
        r: Request<pb::RegisterCaseRequest>,
    ) -> Result<Response<pb::LocalCase>, Status> {
        let actor = self.authorize(&r, ClientRole::Publisher)?;
        let req = r.into_inner();
        let (mut case, ids) =
            self.case_from_pb(req.case.unwrap_or_default(), req.selector_values)?;
        let random: [u8; 8] =
            crate::records::crypto::random_bytes().map_err(|e| Status::internal(e.to_string()))?;
        case.case_id = format!("case-{:016x}", u64::from_be_bytes(random));
        case.closed = false;
        self.save_case(case, Some(&ids), true, &actor).await
    }

    pub(super) async fn update_case_impl(
        &self,
        r: Request<pb::UpdateCaseRequest>,
    ) -> Result<Response<pb::LocalCase>, Status> {
        let actor = self.authorize(&r, ClientRole::Publisher)?;
        let req = r.into_inner();
        let (case, ids) = self.case_from_pb(req.case.unwrap_or_default(), req.selector_values)?;
        if case.case_id.is_empty() {
            return Err(invalid("case.case_id", "is required"));
        }
        self.save_case(case, Some(&ids), false, &actor).await
    }

    pub(super) async fn close_case_impl(
        &self,
        r: Request<pb::CloseCaseRequest>,
    ) -> Result<Response<pb::LocalCase>, Status> {
        let actor = self.authorize(&r, ClientRole::Publisher)?;
        let id = r.into_inner().case_id;
        let mut case = self.node().cases.local_case(&id).map_err(status)?;
        case.closed = true;
        self.save_case(case, None, false, &actor).await
    }

    pub(super) async fn list_cases_impl(
        &self,
        r: Request<pb::ListCasesRequest>,
    ) -> Result<Response<pb::ListCasesResponse>, Status> {
        self.authorize(&r, ClientRole::Reader)?;
        let include_closed = r.into_inner().include_closed;
        let cases = self
            .node()
            .cases
            .local_cases()
            .map_err(status)?
            .iter()
            .filter(|c| include_closed || !c.closed)
            .map(case_to_pb)
            .collect();
        Ok(Response::new(pb::ListCasesResponse { cases }))
    }

    pub(super) async fn query_impl(
        &self,
        r: Request<pb::QueryRequest>,
    ) -> Result<Response<pb::QueryResponse>, Status> {
        let actor = self.authorize(&r, ClientRole::Publisher)?;
        let req = r.into_inner();
        let mut errors = Errors::default();
        let justification = req.justification.trim().to_owned();
        errors.check(
            !justification.is_empty(),
            "justification",
            "is required: say why you ask (it is recorded at both ends)",
        );
        crate::records::model::check_text(&mut errors, "justification", &justification, 500, false);
        let tokens = wire::selectors_from_pb(req.selectors, "selectors", &mut errors);
        let values = self.identifiers(req.selector_values, "selector_values", &mut errors);
        // NOTE: selectors sent already hashed can only be asked the old
        // way; mixed with clear values, those values would go out as
        // shared-key tokens to members that could be asked obliviously.
        let prehashed = tokens.len();
        errors.check(
            prehashed == 0 || values.ids.is_empty(),
            "selectors",
            "send either clear selector_values (asked obliviously where possible) or selectors already hashed with the shared key (asked the old way), not both in one query",
        );
        let ids = if prehashed == 0 {
            values.ids.clone()
        } else {
            Vec::new()
        };
        let has_tokens = prehashed > 0 || !values.hashed.is_empty();
        let tokens = QueryTokens::new(tokens, &values.hashed);
        errors.check(
            prehashed + values.ids.len() > 0,
            "selector_values",
            "at least one selector is required",
        );
        let max = self.node().trust.policy().query.max_selectors;
        let sent = tokens.tokens().len().max(ids.len());
        errors.check(
            sent <= max,
            "selector_values",
            match tokens.companions() {
                0 => format!("at most {max} selectors per query (got {sent})"),
                n => format!(
                    "at most {max} selectors per query, counting the v1 tokens sent along for names whose normalisation changed in v2 ({n} of them; got {sent})"
                ),
            },
        );
        if !req.case_id.is_empty() && self.node().cases.local_case(&req.case_id).is_err() {
            errors.push("case_id", format!("no local case {}", req.case_id));
        }
        errors
            .finish()
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let random: [u8; 8] =
            crate::records::crypto::random_bytes().map_err(|e| Status::internal(e.to_string()))?;
        let query_id = format!("q-{}-{:016x}", self.node().id, u64::from_be_bytes(random));
        let answers = self
            .node()
            .cases
            .query(
                &actor,
                &query_id,
                Ask {
                    ids,
                    legacy: has_tokens.then(|| tokens.clone()),
                },
                &justification,
            )
            .await
            .map_err(status)?;
        let answers = answers
            .into_iter()
            .map(|(peer, result)| {
                let mut a = pb::PeerAnswer {
                    peer: peer.to_string(),
                    ..Default::default()
                };
                match result {
                    PeerResult::Hit {
                        hits,
                        case_refs,
                        contact,
                    } => {
                        a.result = pb::QueryResult::Hit as i32;
                        a.hits = hits;
                        a.case_refs = case_refs;
                        a.contact = contact.as_ref().map(wire::contact_to_pb);
                    }
                    PeerResult::NoHit => a.result = pb::QueryResult::NoHit as i32,
                    PeerResult::Unreachable(reason) => {
                        a.result = pb::QueryResult::Unreachable as i32;
                        a.reason = reason;
                    }
                    PeerResult::Refused(reason) => {
                        a.result = pb::QueryResult::Refused as i32;
                        a.reason = reason;
                    }
                }
                a
            })
            .collect();
        Ok(Response::new(pb::QueryResponse { query_id, answers }))
    }

    pub(super) async fn send_mla_impl(
        &self,
        r: Request<pb::SendMlaRequest>,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        let actor = self.authorize(&r, ClientRole::Publisher)?;
        let mut request = r
            .into_inner()
            .request
            .ok_or_else(|| invalid("request", "is required"))?;
        if request.urgency == 0 {
            request.urgency = Urgency::Routine.wire();
        }
        let mut errors = Errors::default();
        let request = wire::mla_request_from_pb(request, &mut errors);
        errors
            .finish()
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let request = request.ok_or_else(|| invalid("request", "is invalid"))?;
        self.publish_change(&actor, Change::SendMla(request)).await
    }

    pub(super) async fn respond_mla_impl(
        &self,
        r: Request<pb::RespondMlaRequest>,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        let actor = self.authorize(&r, ClientRole::Publisher)?;
        let req = r.into_inner();
        let outcome = MlaOutcome::from_wire(req.outcome).ok_or_else(|| {
            invalid(
                "outcome",
                "is required; one of: executed, partial, refused, need_info",
            )
        })?;
        let change = Change::RespondMla {
            request_id: req.request_id.clone(),
            outcome,
            text: req.text,
        };
        self.publish_change(&actor, change).await
    }

    pub(super) async fn list_mla_impl(
        &self,
        r: Request<pb::ListMlaRequest>,
    ) -> Result<Response<pb::ListMlaResponse>, Status> {
        self.authorize(&r, ClientRole::Reader)?;
        let now = self.node().clock.now_ms();
        let mut requests = Vec::new();
        for (_, bytes) in self
            .node()
            .store
            .series()
            .with_prefix(crate::records::mla::KEY_PREFIX)
            .map_err(status)?
        {
            let Some(s) = MlaState::decode(&bytes) else {
                continue;
            };
            requests.push(mla_view(&s, now));
        }
        requests.sort_by_key(|v| std::cmp::Reverse(v.sent_at_ms));
        Ok(Response::new(pb::ListMlaResponse { requests }))
    }
}

fn mla_view(s: &MlaState, now: i64) -> pb::MlaView {
    pb::MlaView {
        request_id: s.request_id.clone(),
        from: s.from.clone(),
        to: s.to.clone(),
        state: s.state().to_owned(),
        overdue: s.overdue(now),
        deadline_ms: s.deadline_ms.unwrap_or(0),
        legal_basis: s.legal_basis.clone(),
        measures: s.measures.clone(),
        case_refs: s.case_refs.clone(),
        query_id: s.query_id.clone(),
        sent_at_ms: s.sent_at_ms,
        acknowledged_at_ms: s.ack.as_ref().map_or(0, |a| a.at_ms),
        responses: s
            .responses
            .iter()
            .map(|r| pb::MlaAnswer {
                record_id: r.record_id.clone(),
                outcome: MlaOutcome::parse(&r.outcome).map_or(0, |o| o.wire()),
                text: r.text.clone(),
                at_ms: r.at_ms,
            })
            .collect(),
        urgency: Urgency::parse(&s.urgency).map_or(0, |u| u.wire()),
    }
}
