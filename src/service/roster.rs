//! The agency API's roster governance calls: the version in force, a new
//! proposal, the proposals held, one proposal's bytes, and an approval.
//!
//! Reading needs the reader role; proposing and approving the admin role.
//! A governance key never reaches the node: the client signs the
//! proposal's hash itself (`enlace roster approve`, or `enlace roster
//! sign` offline) and sends the detached approval. What the node checks
//! before it publishes anything is what every receiver will check (it
//! follows the version in force, the key is a governance key of either
//! version, the signature verifies), so that a mistake is refused here,
//! with its reason, rather than broadcast.

use tonic::{Request, Response, Status};

use super::{AgencyService, invalid, status};
use crate::audit::{Action, Entry};
use crate::config::ClientRole;
use crate::governance::{ProposalStatus, State};
use crate::publish::Change;
use crate::records::roster::{MAX_PROPOSAL_BYTES, RosterProposal};
use crate::trust::chain::{self, Approval, Refusal, Version};
use crate::trust::roster::{Role, Roster};
use crate::wire::pb::v1 as pb;

impl AgencyService {
    pub(super) async fn get_roster_impl(
        &self,
        r: Request<pb::GetRosterRequest>,
    ) -> Result<Response<pb::RosterStatus>, Status> {
        self.authorize(&r, ClientRole::Reader)?;
        let roster = self.node().trust.roster();
        let bytes = self
            .node()
            .trust
            .chain()
            .last()
            .map(|s| s.version.bytes.to_vec())
            .unwrap_or_default();
        Ok(Response::new(status_of(&roster, bytes)))
    }

    pub(super) async fn propose_roster_impl(
        &self,
        r: Request<pb::ProposeRosterRequest>,
    ) -> Result<Response<pb::RosterProposalStatus>, Status> {
        let actor = self.authorize(&r, ClientRole::Admin)?;
        let bytes = r.into_inner().version;
        if bytes.is_empty() || bytes.len() > MAX_PROPOSAL_BYTES {
            return Err(invalid(
                "version",
                format!("must be an encoded RosterVersion of 1 to {MAX_PROPOSAL_BYTES} bytes"),
            ));
        }
        let version = Version::parse(bytes.clone()).map_err(|e| {
            invalid(
                "version",
                format!("is not a valid roster version: {}", e.problems.join("; ")),
            )
        })?;
        let hash = version.hash();
        if let Some(held) = self.held(&hash) {
            return Ok(Response::new(proposal_pb(&held)));
        }
        let head = self.node().trust.roster();
        let now = self.node().clock.now_ms();
        if let Err(refusal) = chain::check_link(&head, &version.roster, Some(now)) {
            return Err(self.refuse(&actor, &hash, refusal).await);
        }
        self.publish_change(
            &actor,
            Change::ProposeRoster(RosterProposal { version: bytes }),
        )
        .await?;
        self.node().governor.evaluate().await;
        self.held(&hash)
            .map(|p| Response::new(proposal_pb(&p)))
            .ok_or_else(|| Status::internal("the proposal was published but is not held"))
    }

    pub(super) async fn list_roster_proposals_impl(
        &self,
        r: Request<pb::ListRosterProposalsRequest>,
    ) -> Result<Response<pb::ListRosterProposalsResponse>, Status> {
        self.authorize(&r, ClientRole::Reader)?;
        Ok(Response::new(pb::ListRosterProposalsResponse {
            proposals: self
                .node()
                .governor
                .proposals()
                .iter()
                .map(proposal_pb)
                .collect(),
        }))
    }

    pub(super) async fn get_roster_proposal_impl(
        &self,
        r: Request<pb::GetRosterProposalRequest>,
    ) -> Result<Response<pb::RosterProposalDetail>, Status> {
        self.authorize(&r, ClientRole::Reader)?;
        let held = self.find(&r.into_inner().id)?;
        let bytes = self
            .node()
            .governor
            .proposal_bytes(&held.id)
            .map_err(status)?
            .ok_or_else(|| Status::not_found("the proposal's record is no longer held"))?;
        let previous = self
            .node()
            .trust
            .chain()
            .iter()
            .find(|s| s.version.number() + 1 == held.version)
            .map(|s| s.version.bytes.to_vec())
            .unwrap_or_default();
        Ok(Response::new(pb::RosterProposalDetail {
            status: Some(proposal_pb(&held)),
            version: bytes,
            previous_version: previous,
        }))
    }

    pub(super) async fn approve_roster_impl(
        &self,
        r: Request<pb::ApproveRosterRequest>,
    ) -> Result<Response<pb::RosterProposalStatus>, Status> {
        let actor = self.authorize(&r, ClientRole::Admin)?;
        let approval = r
            .into_inner()
            .approval
            .ok_or_else(|| invalid("approval", "is required"))?;
        let approval = Approval::from_pb(&approval)
            .map_err(|rule| invalid(&format!("approval.{}", field_of(&rule)), rule))?;
        let hash = approval.roster_sha256;
        let held = self.held(&hash).ok_or_else(|| {
            Status::not_found(format!(
                "no proposal sha256:{} is held here (list them with `enlace roster proposals`)",
                chain::hex(&hash)
            ))
        })?;
        if !matches!(held.state, State::Pending | State::Waiting) {
            return Err(Status::failed_precondition(format!(
                "proposal sha256:{} is {}{}: approving it changes nothing",
                chain::hex(&hash),
                held.state.code(),
                if held.reason.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", held.reason)
                }
            )));
        }
        let bytes = self
            .node()
            .governor
            .proposal_bytes(&hash)
            .map_err(status)?
            .ok_or_else(|| Status::not_found("the proposal's record is no longer held"))?;
        let version = Version::parse(bytes)
            .map_err(|e| Status::failed_precondition(e.problems.join("; ")))?;
        let head = self.node().trust.roster();
        let key = &approval.governance_key;
        // For a proposal further ahead, a key of a version in between may
        // be the approver's: the node judges it when its turn comes.
        if held.state == State::Pending
            && head.governance_key_owner(key).is_none()
            && version.roster.governance_key_owner(key).is_none()
        {
            let refusal = Refusal::UnknownKey {
                key: approval.key_name(),
                current: head.position.version,
                next: version.roster.position.version,
            };
            return Err(self.refuse(&actor, &hash, refusal).await);
        }
        if !approval.signature_verifies() {
            let refusal = Refusal::BadSignature {
                key: approval.key_name(),
            };
            return Err(self.refuse(&actor, &hash, refusal).await);
        }
        if self
            .node()
            .governor
            .approved_with(&hash, key)
            .map_err(status)?
        {
            // The same key again: it counts once, and is not sent again.
            return Ok(Response::new(proposal_pb(&held)));
        }
        self.publish_change(&actor, Change::ApproveRoster(approval))
            .await?;
        self.node().governor.evaluate().await;
        self.held(&hash)
            .map(|p| Response::new(proposal_pb(&p)))
            .ok_or_else(|| Status::internal("the approval was published but the proposal is gone"))
    }

    /// A proposal held here, as last evaluated.
    fn held(&self, hash: &[u8; 32]) -> Option<ProposalStatus> {
        self.node()
            .governor
            .proposals()
            .into_iter()
            .find(|p| p.id == *hash)
    }

    /// The proposal an id or an unambiguous prefix of it names.
    fn find(&self, id: &str) -> Result<ProposalStatus, Status> {
        let id = id.trim().trim_start_matches("sha256:").to_ascii_lowercase();
        if id.len() < 8 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(invalid(
                "id",
                "must be a proposal id (64 hex digits) or a prefix of at least 8",
            ));
        }
        let mut matching = self
            .node()
            .governor
            .proposals()
            .into_iter()
            .filter(|p| chain::hex(&p.id).starts_with(&id));
        match (matching.next(), matching.next()) {
            (Some(p), None) => Ok(p),
            (None, _) => Err(Status::not_found(format!(
                "no proposal {id} is held here (list them with `enlace roster proposals`)"
            ))),
            (Some(_), Some(_)) => Err(invalid(
                "id",
                format!("{id} names more than one proposal: give more digits"),
            )),
        }
    }

    /// Refuses a client's proposal or approval: counted, logged and on
    /// record with its reason before the client hears of it.
    async fn refuse(&self, actor: &str, hash: &[u8; 32], refusal: Refusal) -> Status {
        let node = self.node();
        node.governor.count_refusal(refusal.reason());
        tracing::warn!(actor, reason = refusal.reason(), %refusal, "roster change refused");
        let entry = Entry::new(Action::RosterRefused, actor)
            .id(format!("sha256:{}", chain::hex(hash)))
            .result(format!("{}: {refusal}", refusal.reason()));
        if let Err(e) = node.audit.record(vec![entry]).await {
            return status(e);
        }
        Status::failed_precondition(format!("{}: {refusal}", refusal.reason()))
    }
}

/// The field a conversion error names (`"roster_sha256: must be …"`).
fn field_of(rule: &str) -> &str {
    rule.split_once(':').map_or("", |(f, _)| f)
}

/// The wire form of the version in force.
pub(crate) fn status_of(roster: &Roster, bytes: Vec<u8>) -> pb::RosterStatus {
    pb::RosterStatus {
        version: roster.position.version,
        sha256: chain::hex(&roster.position.hash),
        expires_at_ms: roster.position.expires_at_ms,
        threshold: roster.position.threshold,
        members: roster
            .members()
            .map(|m| pb::RosterMemberSummary {
                id: m.id.to_string(),
                name: m.name.clone(),
                country: m.country.clone(),
                role: match m.role {
                    Role::Member => "member",
                    Role::Observer => "observer",
                }
                .to_owned(),
                endpoint: m
                    .endpoint
                    .as_ref()
                    .map(|e| e.to_string())
                    .unwrap_or_default(),
                signing_keys: m.signing_keys.iter().map(|k| k.key_id.clone()).collect(),
                governance_keys: m
                    .governance_keys
                    .iter()
                    .map(|k| chain::key_name(k))
                    .collect(),
                oprf_epochs: m.oprf_keys.iter().map(|k| k.epoch).collect(),
            })
            .collect(),
        version_bytes: bytes,
    }
}

fn proposal_pb(p: &ProposalStatus) -> pb::RosterProposalStatus {
    pb::RosterProposalStatus {
        id: chain::hex(&p.id),
        version: p.version,
        proposed_by: p.proposed_by.clone(),
        record_id: p.record_id.clone(),
        proposed_at_ms: p.proposed_at_ms,
        approved_by: p.approved_by.iter().map(ToString::to_string).collect(),
        current_approvals: p.current_approvals as u32,
        current_threshold: p.current_threshold,
        next_approvals: p.next_approvals as u32,
        next_threshold: p.next_threshold,
        state: p.state.code().to_owned(),
        reason: p.reason.clone(),
    }
}
