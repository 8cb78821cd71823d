//! The rules a change must pass before anything is written: the case
//! references and links it cites, its times, and the series it belongs to.
//! They live apart from the writing path (`publish/mod.rs`) because a dry
//! run (`validate_only`) and bulk import run them alone.

use super::*;

impl Publisher {
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
        for (field, id, body) in self.cited(&request.case_refs, "mla_request.case_refs", errors)? {
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

    /// The records `ids` (the list field `list`) cites, with each one's
    /// field name and body; one not held here is an error on its field, a
    /// malformed id is left to the body's own rules.
    fn cited<'a>(
        &self,
        ids: &'a [String],
        list: &str,
        errors: &mut Errors,
    ) -> Result<Vec<(String, &'a str, RecordBody)>, PublishError> {
        let mut held = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let field = format!("{list}[{i}]");
            if model::check_record_id_format(id).is_err() {
                continue;
            }
            match self.held_body(id)? {
                Ok(body) => held.push((field, id.as_str(), body)),
                Err(why) => errors.push(field, why),
            }
        }
        Ok(held)
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
        for (field, id, body) in self.cited(
            &case.linked_alerts,
            "case_reference.linked_alerts",
            &mut errors,
        )? {
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
    pub(super) fn check_times(&self, change: &Change) -> Result<(), PublishError> {
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
            Change::Withdraw { .. }
            | Change::AckMla { .. }
            | Change::RespondMla { .. }
            | Change::ProposeRoster(_)
            | Change::ApproveRoster(_)
            | Change::PublishFilter(_) => {
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
    /// series state it leads to (none for a match filter, which belongs to
    /// no series).
    pub(super) fn prepare(
        &self,
        change: &Change,
        seq: u64,
        record_id: &str,
        created_at_ms: i64,
    ) -> Result<(RecordBody, Option<SeriesWrite>), PublishError> {
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
                    Content::StatisticalReport(r) => RecordKind::StatisticalReport(r.clone()),
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
            Change::ProposeRoster(p) => (
                RecordKind::RosterProposal(p.clone()),
                Distribution::AllMembers,
                None,
            ),
            Change::ApproveRoster(a) => (
                RecordKind::RosterApproval(a.clone()),
                Distribution::AllMembers,
                None,
            ),
            Change::PublishFilter(f) => (
                RecordKind::MatchFilter(f.clone()),
                Distribution::AllMembers,
                None,
            ),
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
        if let Some((series_id, state)) = body.roster_index() {
            return Ok((body, Some(SeriesWrite { series_id, state })));
        }
        if matches!(body.kind, RecordKind::MatchFilter(_)) {
            return Ok((body, None));
        }
        if body.kind.is_mla() {
            let key = mla::key(body.series_id());
            let before = self.store.series().mla(body.series_id())?;
            let after = mla::next(before.as_ref(), &body)
                .map_err(|e| PublishError::Invalid(ValidationErrors(vec![e])))?;
            return Ok((
                body,
                Some(SeriesWrite {
                    series_id: key,
                    state: after.encode(),
                }),
            ));
        }
        let state = lifecycle::next(before.as_ref(), &body, Mode::Origin)
            .map_err(|e| PublishError::Invalid(ValidationErrors(vec![e])))?;
        Ok((
            body.clone(),
            Some(SeriesWrite {
                series_id: body.series_id().to_owned(),
                state: state.encode(),
            }),
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
