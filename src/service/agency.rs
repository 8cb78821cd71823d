//! The agency-facing `Agency` service: what a national case-management
//! system or the CLI uses to publish and read records.
//!
//! Every request carries the client's verified identity (its certificate's
//! common name): it decides the client's role (reader, publisher, admin) and
//! is the actor written to the logs. Identifiers arrive in clear text only
//! here, from the agency's own systems; they are hashed into selectors
//! before anything is stored and never logged.

use std::pin::Pin;

use tokio::sync::watch;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::{identity, invalid, status};
use crate::audit::{Action, Entry};
use crate::components::Components;
use crate::config::ClientRole;
use crate::publish::{Change, PublishKey, Published};
use crate::records::model::Content;
use crate::trust::tls::Identity;
use crate::wire::pb::v1 as pb;
use crate::wire::pb::v1::agency_server::Agency;

pub struct AgencyService {
    node: Components,
    stop: watch::Receiver<bool>,
    /// `VerifyPeers` calls, all clients together.
    verify_peers: crate::limits::Buckets<()>,
    /// Statistics calls, per client.
    statistics: crate::limits::Buckets<String>,
}

impl AgencyService {
    pub fn new(node: Components, stop: watch::Receiver<bool>) -> Self {
        Self {
            node,
            stop,
            verify_peers: Default::default(),
            statistics: Default::default(),
        }
    }

    /// The statistics calls' budget, per client.
    pub(super) fn statistics_calls(&self) -> &crate::limits::Buckets<String> {
        &self.statistics
    }

    pub(super) fn node(&self) -> &Components {
        &self.node
    }

    /// The node's stop signal, for a stream that must end with it.
    pub(super) fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.clone()
    }

    /// Applies a change for `actor` and answers like a publish.
    pub(super) async fn publish_change(
        &self,
        actor: &str,
        change: Change,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        self.change(actor, change, false).await
    }

    /// The client's name, if its role is at least `needed`.
    pub(super) fn authorize<T>(
        &self,
        req: &Request<T>,
        needed: ClientRole,
    ) -> Result<String, Status> {
        let name = match identity(req)? {
            Identity::Client(name) => name,
            Identity::Peer(_) => {
                return Err(Status::permission_denied(
                    "the agency API is for agency clients",
                ));
            }
        };
        let role = self.node.trust.policy().agency.role_of(&name);
        if role < needed {
            let refusal = Status::permission_denied(format!(
                "client {name:?} has the {} role; this needs {}",
                role.code(),
                needed.code()
            ));
            // Nothing changed, so the entry need not precede the answer;
            // beyond the client's refusal budget it is only counted, with
            // no task and no write.
            if self
                .node
                .audit
                .refusal_gets_an_entry(&Identity::Client(name.clone()), "role")
            {
                let node = self.node.clone();
                let reason = refusal.message().to_owned();
                tokio::spawn(async move {
                    let entry = Entry::new(Action::RequestRejected, &name).result(reason);
                    if let Err(error) = node.audit.record(vec![entry]).await {
                        tracing::error!(%error, "cannot audit a refused request");
                    }
                });
            }
            return Err(refusal);
        }
        Ok(name)
    }

    /// The calling client's name, for the audit of a refusal.
    pub(super) fn client_name<T>(&self, req: &Request<T>) -> String {
        match identity(req) {
            Ok(Identity::Client(name)) => name,
            Ok(Identity::Peer(id)) => id.to_string(),
            Err(_) => "unknown".into(),
        }
    }

    /// Passes a handler's answer through, writing a refusal (bad input, an
    /// unknown or foreign target) to the audit log with its reason first.
    /// A dry run's refusals are the answer asked for, not refusals.
    pub(super) async fn audited<T>(
        &self,
        actor: &str,
        dry_run: bool,
        answer: Result<Response<T>, Status>,
    ) -> Result<Response<T>, Status> {
        use tonic::Code;
        if let Err(refusal) = &answer
            && !dry_run
            && matches!(
                refusal.code(),
                Code::InvalidArgument
                    | Code::NotFound
                    | Code::FailedPrecondition
                    | Code::AlreadyExists
            )
        {
            self.node
                .audit
                .record_refusal(actor, "input", refusal.message())
                .await
                .map_err(status)?;
        }
        answer
    }

    /// Runs a handler that takes the whole request, with its refusals on
    /// record under the calling client's name, taken before the request
    /// is consumed.
    async fn audited_call<T, R, F>(
        &self,
        r: Request<T>,
        handler: impl FnOnce(Request<T>) -> F,
    ) -> Result<Response<R>, Status>
    where
        F: std::future::Future<Output = Result<Response<R>, Status>>,
    {
        let actor = self.client_name(&r);
        let answer = handler(r).await;
        self.audited(&actor, false, answer).await
    }

    pub(super) async fn change(
        &self,
        actor: &str,
        change: Change,
        dry_run: bool,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        match self
            .node
            .publisher
            .apply_change(change, dry_run, actor)
            .await
            .map_err(status)?
        {
            None => Ok(Response::new(pb::PublishResponse {
                origin: self.node.id.to_string(),
                validated_only: true,
                ..Default::default()
            })),
            Some(Published {
                stored,
                body,
                already,
            }) => {
                if already {
                    tracing::info!(actor, record_id = %body.record_id, "publication key already published; nothing stored");
                } else {
                    tracing::info!(actor, record_id = %body.record_id, kind = body.kind.name(), "record published by agency client");
                }
                Ok(Response::new(pb::PublishResponse {
                    record_id: body.record_id.clone(),
                    origin: stored.origin.to_string(),
                    seq: stored.seq,
                    series_id: body.series_id().to_owned(),
                    version: body.version(),
                    validated_only: false,
                    already_published: already,
                }))
            }
        }
    }
}

/// The optional `idempotency_key` of a publish request.
fn publish_key(key: &str) -> Result<Option<PublishKey>, Status> {
    if key.is_empty() {
        return Ok(None);
    }
    PublishKey::parse(key)
        .map(Some)
        .map_err(|rule| invalid("idempotency_key", rule))
}

/// The `WatchRecords` stream (served in [`super::reading`]).
pub(super) type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::RecordView, Status>> + Send>>;
/// The `ReadAudit` stream (served in [`super::audit`]).
pub(super) type AuditStream = Pin<Box<dyn Stream<Item = Result<pb::AuditEntry, Status>> + Send>>;

#[tonic::async_trait]
impl Agency for AgencyService {
    #[tracing::instrument(skip_all, fields(node = %self.node.id))]
    async fn publish_alert(
        &self,
        request: Request<pb::PublishAlertRequest>,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        let actor = self.authorize(&request, ClientRole::Publisher)?;
        let req = request.into_inner();
        let dry_run = req.validate_only;
        let answer = async {
            let key = publish_key(&req.idempotency_key)?;
            let alert = req.alert.ok_or_else(|| invalid("alert", "is required"))?;
            let (alert, ids) = self.alert(alert, req.selector_values, "alert")?;
            let change = Change::Publish {
                content: Content::Alert(alert),
                recipients: req.to,
                key,
            };
            let answer = self.change(&actor, change, req.validate_only).await?;
            self.alert_identifiers(&answer, Some(&ids)).await?;
            Ok(answer)
        }
        .await;
        self.audited(&actor, dry_run, answer).await
    }

    #[tracing::instrument(skip_all, fields(node = %self.node.id))]
    async fn publish_case_reference(
        &self,
        request: Request<pb::PublishCaseReferenceRequest>,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        let actor = self.authorize(&request, ClientRole::Publisher)?;
        let req = request.into_inner();
        let dry_run = req.validate_only;
        let answer = async {
            let case = req
                .case_reference
                .ok_or_else(|| invalid("case_reference", "is required"))?;
            let key = publish_key(&req.idempotency_key)?;
            let case = self.case_reference(case, "case_reference")?;
            let change = Change::Publish {
                content: Content::CaseReference(case),
                recipients: req.to,
                key,
            };
            self.change(&actor, change, req.validate_only).await
        }
        .await;
        self.audited(&actor, dry_run, answer).await
    }

    #[tracing::instrument(skip_all, fields(node = %self.node.id))]
    async fn update_record(
        &self,
        request: Request<pb::UpdateRecordRequest>,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        let actor = self.authorize(&request, ClientRole::Publisher)?;
        let req = request.into_inner();
        let dry_run = req.validate_only;
        let answer = async {
            if req.record_id.is_empty() {
                return Err(invalid("record_id", "is required"));
            }
            let mut ids = None;
            let content = match req.content {
                Some(pb::update_record_request::Content::Alert(a)) => {
                    let (alert, values) = self.alert(a, req.selector_values, "alert")?;
                    ids = Some(values);
                    Content::Alert(alert)
                }
                Some(pb::update_record_request::Content::CaseReference(c)) => {
                    Content::CaseReference(self.case_reference(c, "case_reference")?)
                }
                None => {
                    return Err(invalid(
                        "content",
                        "is required: the whole new alert or case reference",
                    ));
                }
            };
            let change = Change::Update {
                target: req.record_id,
                content,
            };
            let answer = self.change(&actor, change, req.validate_only).await?;
            // An update that names no identifiers keeps the alert's.
            if let Some(ids) = ids.filter(|i| !i.is_empty()) {
                self.alert_identifiers(&answer, Some(&ids)).await?;
            }
            Ok(answer)
        }
        .await;
        self.audited(&actor, dry_run, answer).await
    }

    #[tracing::instrument(skip_all, fields(node = %self.node.id))]
    async fn withdraw_record(
        &self,
        request: Request<pb::WithdrawRecordRequest>,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        let actor = self.authorize(&request, ClientRole::Publisher)?;
        let req = request.into_inner();
        let dry_run = req.validate_only;
        let answer = async {
            if req.record_id.is_empty() {
                return Err(invalid("record_id", "is required"));
            }
            let change = Change::Withdraw {
                target: req.record_id,
                reason: req.reason,
            };
            let answer = self.change(&actor, change, req.validate_only).await?;
            // A withdrawn alert's identifiers leave the match filter.
            self.alert_identifiers(&answer, None).await?;
            Ok(answer)
        }
        .await;
        self.audited(&actor, dry_run, answer).await
    }

    async fn get_record(
        &self,
        r: Request<pb::GetRecordRequest>,
    ) -> Result<Response<pb::RecordView>, Status> {
        self.get_record_impl(r).await
    }

    async fn list_records(
        &self,
        r: Request<pb::ListRecordsRequest>,
    ) -> Result<Response<pb::ListRecordsResponse>, Status> {
        self.list_records_impl(r).await
    }

    type WatchRecordsStream = WatchStream;

    async fn watch_records(
        &self,
        r: Request<pb::WatchRecordsRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        self.watch_records_impl(r).await
    }

    async fn list_peers(
        &self,
        request: Request<pb::ListPeersRequest>,
    ) -> Result<Response<pb::ListPeersResponse>, Status> {
        self.authorize(&request, ClientRole::Reader)?;
        let mut peers = Vec::new();
        for (id, p) in self.node.replication.peer_states() {
            let cursor = self.node.store.records().cursor(&id).map_err(status)?;
            peers.push(pb::PeerStatus {
                node_id: id.to_string(),
                endpoint: p.endpoint,
                connected: p.connected,
                cursor,
                head: p.head.max(cursor),
                lag: p.head.saturating_sub(cursor),
                last_error: p.last_error.unwrap_or_default(),
                last_contact_ms: p.last_contact_ms.unwrap_or(0),
                records_received: p.records_received,
                records_rejected: p.records_rejected,
            });
        }
        Ok(Response::new(pb::ListPeersResponse { peers }))
    }

    async fn verify_peers(
        &self,
        request: Request<pb::VerifyPeersRequest>,
    ) -> Result<Response<pb::VerifyPeersResponse>, Status> {
        self.authorize(&request, ClientRole::Reader)?;
        if let Err(wait) = self
            .verify_peers
            .take(&(), crate::limits::VERIFY_PEERS_PER_MINUTE)
        {
            return Err(Status::resource_exhausted(format!(
                "rate limit: this node compares with its peers at most {} times a minute (each comparison makes every peer read its logs); retry in {} s",
                crate::limits::VERIFY_PEERS_PER_MINUTE,
                wait.as_secs() + 1
            )));
        }
        let comparisons = crate::exchange::convergence::compare_with_peers(
            self.node.store.clone(),
            &self.node.trust.roster(),
            self.node.replication.dialer(),
        )
        .await
        .into_iter()
        .map(|c| pb::PeerComparison {
            peer: c.peer,
            origin: c.origin,
            error: c.error,
            up_to_seq: c.up_to_seq,
            local_count: c.local_count,
            peer_count: c.peer_count,
            equal: c.equal,
        })
        .collect();
        Ok(Response::new(pb::VerifyPeersResponse { comparisons }))
    }

    type ReadAuditStream = AuditStream;

    async fn read_audit(
        &self,
        r: Request<pb::ReadAuditRequest>,
    ) -> Result<Response<Self::ReadAuditStream>, Status> {
        self.read_audit_impl(r).await
    }

    async fn audit_checkpoints(
        &self,
        r: Request<pb::AuditCheckpointsRequest>,
    ) -> Result<Response<pb::AuditCheckpointsResponse>, Status> {
        self.audit_checkpoints_impl(r).await
    }

    async fn audit_witnessed(
        &self,
        r: Request<pb::WitnessedRequest>,
    ) -> Result<Response<pb::WitnessedResponse>, Status> {
        self.audit_witnessed_impl(r).await
    }

    #[tracing::instrument(skip_all, fields(node = %self.node.id))]
    async fn compute_statistics(
        &self,
        r: Request<pb::StatisticsRequest>,
    ) -> Result<Response<pb::StatisticsResponse>, Status> {
        self.compute_statistics_impl(r).await
    }

    #[tracing::instrument(skip_all, fields(node = %self.node.id))]
    async fn publish_statistics(
        &self,
        r: Request<pb::PublishStatisticsRequest>,
    ) -> Result<Response<pb::PublishStatisticsResponse>, Status> {
        self.publish_statistics_impl(r).await
    }

    #[tracing::instrument(skip_all, fields(node = %self.node.id))]
    async fn regional_statistics(
        &self,
        r: Request<pb::StatisticsRequest>,
    ) -> Result<Response<pb::RegionalStatisticsResponse>, Status> {
        self.regional_statistics_impl(r).await
    }

    #[tracing::instrument(skip_all, fields(node = %self.node.id))]
    async fn get_roster(
        &self,
        r: Request<pb::GetRosterRequest>,
    ) -> Result<Response<pb::RosterStatus>, Status> {
        self.get_roster_impl(r).await
    }

    #[tracing::instrument(skip_all, fields(node = %self.node.id))]
    async fn propose_roster(
        &self,
        r: Request<pb::ProposeRosterRequest>,
    ) -> Result<Response<pb::RosterProposalStatus>, Status> {
        self.propose_roster_impl(r).await
    }

    #[tracing::instrument(skip_all, fields(node = %self.node.id))]
    async fn list_roster_proposals(
        &self,
        r: Request<pb::ListRosterProposalsRequest>,
    ) -> Result<Response<pb::ListRosterProposalsResponse>, Status> {
        self.list_roster_proposals_impl(r).await
    }

    #[tracing::instrument(skip_all, fields(node = %self.node.id))]
    async fn get_roster_proposal(
        &self,
        r: Request<pb::GetRosterProposalRequest>,
    ) -> Result<Response<pb::RosterProposalDetail>, Status> {
        self.get_roster_proposal_impl(r).await
    }

    #[tracing::instrument(skip_all, fields(node = %self.node.id))]
    async fn approve_roster(
        &self,
        r: Request<pb::ApproveRosterRequest>,
    ) -> Result<Response<pb::RosterProposalStatus>, Status> {
        self.approve_roster_impl(r).await
    }

    async fn register_case(
        &self,
        r: Request<pb::RegisterCaseRequest>,
    ) -> Result<Response<pb::LocalCase>, Status> {
        self.audited_call(r, |r| self.register_case_impl(r)).await
    }

    async fn update_case(
        &self,
        r: Request<pb::UpdateCaseRequest>,
    ) -> Result<Response<pb::LocalCase>, Status> {
        self.audited_call(r, |r| self.update_case_impl(r)).await
    }

    async fn close_case(
        &self,
        r: Request<pb::CloseCaseRequest>,
    ) -> Result<Response<pb::LocalCase>, Status> {
        self.audited_call(r, |r| self.close_case_impl(r)).await
    }

    async fn list_cases(
        &self,
        r: Request<pb::ListCasesRequest>,
    ) -> Result<Response<pb::ListCasesResponse>, Status> {
        self.list_cases_impl(r).await
    }

    async fn query(
        &self,
        r: Request<pb::QueryRequest>,
    ) -> Result<Response<pb::QueryResponse>, Status> {
        self.audited_call(r, |r| self.query_impl(r)).await
    }

    async fn send_mla(
        &self,
        r: Request<pb::SendMlaRequest>,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        self.audited_call(r, |r| self.send_mla_impl(r)).await
    }

    async fn respond_mla(
        &self,
        r: Request<pb::RespondMlaRequest>,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        self.audited_call(r, |r| self.respond_mla_impl(r)).await
    }

    async fn list_mla(
        &self,
        r: Request<pb::ListMlaRequest>,
    ) -> Result<Response<pb::ListMlaResponse>, Status> {
        self.list_mla_impl(r).await
    }
}
