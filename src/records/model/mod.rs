//! Domain types of the federation and the rules that make them valid.
//!
//! Nothing here does I/O. Every value that enters the node — from an agency
//! client, a peer, the roster or the config — is turned into one of these
//! types through a constructor that checks it, so the code above can rely on
//! an id being well formed or an alert being within its bounds. Validation
//! failures name the field and the rule ([`FieldError`]).
//!
//! Node ids, distributions and record ids are in `ids`; what a record
//! carries (alerts, case references and their parts) in `content`.

pub(crate) mod content;
#[cfg(test)]
pub(crate) mod fixtures;
mod ids;

use std::fmt;

use crate::records::roster::{Approval, MAX_PROPOSAL_BYTES, RosterProposal};
pub use crate::records::stats::StatisticalReport;
pub use content::{
    Alert, CaseReference, ContactPoint, Content, ContentRef, Evaluation, Handling,
    SmugglingElements, TraffickingElements, check_contact, check_text,
};
use ids::check_record_id;
pub use ids::{Distribution, NodeId, check_record_id_format, new_record_id};

/// Longest summary, in characters.
pub(crate) const MAX_SUMMARY_CHARS: usize = 1000;
/// Most named recipients in one distribution.
pub(crate) const MAX_RECIPIENTS: usize = 64;

/// One violated rule: which field, and what the rule is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the field, e.g. `alert.summary`.
    pub field: String,
    /// The rule that was broken, in words.
    pub rule: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            rule: rule.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.rule)
    }
}

/// Every rule a value broke, reported together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join("; "))
    }
}

impl ValidationErrors {
    /// `Ok(())` when no error was collected.
    pub(crate) fn into_result(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }
}

/// Checks a BCP 47 language tag (simplified): a 2–3 letter primary
/// language subtag, optionally followed by `-` and alphanumeric subtags of
/// 1–8 characters.
pub(crate) fn check_language_tag(tag: &str) -> Result<(), String> {
    let mut parts = tag.split('-');
    let primary = parts.next().unwrap_or_default();
    let primary_ok =
        (2..=3).contains(&primary.len()) && primary.chars().all(|c| c.is_ascii_alphabetic());
    let rest_ok =
        parts.all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()));
    if primary_ok && rest_ok && tag.len() <= 35 {
        Ok(())
    } else {
        Err(format!(
            "must be a BCP 47 language tag such as \"es\" or \"en-US\" (got {tag:?})"
        ))
    }
}

/// Collects rule violations; reports them all at once.
#[derive(Debug, Default)]
pub struct Errors(pub Vec<FieldError>);

impl Errors {
    pub fn push(&mut self, field: impl Into<String>, rule: impl Into<String>) {
        self.0.push(FieldError::new(field, rule));
    }

    /// Records `rule` for `field` unless `ok`.
    pub fn check(&mut self, ok: bool, field: impl Into<String>, rule: impl Into<String>) {
        if !ok {
            self.push(field, rule);
        }
    }

    pub fn extend(&mut self, other: ValidationErrors) {
        self.0.extend(other.0);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn finish(self) -> Result<(), ValidationErrors> {
        ValidationErrors(self.0).into_result()
    }
}

/// A new version of an earlier record of the same origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// Record id of the first record of the series.
    pub target: String,
    /// 2, 3, ...
    pub version: u32,
    pub content: Content,
}

/// Withdraws a series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdrawal {
    pub target: String,
    pub reason: String,
}

/// Longest withdrawal reason, in characters.
pub(crate) const MAX_REASON_CHARS: usize = 500;

/// A request for mutual legal assistance, to exactly one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MlaRequest {
    pub to: NodeId,
    pub case_refs: Vec<String>,
    pub query_id: String,
    pub legal_basis: String,
    pub measures: String,
    pub urgency: crate::records::vocabulary::Urgency,
    pub deadline_ms: Option<i64>,
}

/// The requested member's node acknowledges a request on receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MlaAck {
    pub request_id: String,
}

/// The requested member's answer to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MlaResponse {
    pub request_id: String,
    pub outcome: crate::records::vocabulary::MlaOutcome,
    pub text: String,
}

/// Longest legal basis, in characters.
pub(crate) const MAX_LEGAL_BASIS_CHARS: usize = 500;
/// Longest MLA text (measures, response), in characters.
pub(crate) const MAX_MLA_TEXT_CHARS: usize = 2000;

/// What a record is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKind {
    Alert(Alert),
    CaseReference(CaseReference),
    StatisticalReport(StatisticalReport),
    Update(Update),
    Withdrawal(Withdrawal),
    MlaRequest(MlaRequest),
    MlaAck(MlaAck),
    MlaResponse(MlaResponse),
    RosterProposal(RosterProposal),
    RosterApproval(Approval),
    MatchFilter(crate::records::filter::MatchFilter),
}

impl RecordKind {
    /// Short machine name of the kind, as printed by the CLI.
    pub fn name(&self) -> &'static str {
        match self {
            RecordKind::Alert(_) => "alert",
            RecordKind::CaseReference(_) => "case_reference",
            RecordKind::StatisticalReport(_) => "statistical_report",
            RecordKind::Update(_) => "update",
            RecordKind::Withdrawal(_) => "withdrawal",
            RecordKind::MlaRequest(_) => "mla_request",
            RecordKind::MlaAck(_) => "mla_ack",
            RecordKind::MlaResponse(_) => "mla_response",
            RecordKind::RosterProposal(_) => "roster_proposal",
            RecordKind::RosterApproval(_) => "roster_approval",
            RecordKind::MatchFilter(_) => "match_filter",
        }
    }

    /// Whether the record is part of a mutual legal assistance exchange.
    pub(crate) fn is_mla(&self) -> bool {
        matches!(
            self,
            RecordKind::MlaRequest(_) | RecordKind::MlaAck(_) | RecordKind::MlaResponse(_)
        )
    }

    /// Whether the record is part of roster governance.
    pub fn is_roster(&self) -> bool {
        matches!(
            self,
            RecordKind::RosterProposal(_) | RecordKind::RosterApproval(_)
        )
    }

    /// The content a record carries (an alert or case reference, first or
    /// updated); `None` for a withdrawal.
    pub fn content(&self) -> Option<ContentRef<'_>> {
        match self {
            RecordKind::Alert(a) => Some(ContentRef::Alert(a)),
            RecordKind::CaseReference(c) => Some(ContentRef::CaseReference(c)),
            RecordKind::StatisticalReport(r) => Some(ContentRef::StatisticalReport(r)),
            RecordKind::Update(u) => Some(u.content.as_ref()),
            RecordKind::Withdrawal(_)
            | RecordKind::MlaRequest(_)
            | RecordKind::MlaAck(_)
            | RecordKind::MlaResponse(_)
            | RecordKind::RosterProposal(_)
            | RecordKind::RosterApproval(_)
            | RecordKind::MatchFilter(_) => None,
        }
    }

    fn validate(&self, errors: &mut Errors) {
        match self {
            RecordKind::Alert(a) => a.check("alert", errors),
            RecordKind::CaseReference(c) => c.check("case_reference", errors),
            RecordKind::StatisticalReport(r) => {
                crate::records::stats::check_report(r, "statistical_report", errors);
                errors.check(
                    r.correction.is_none(),
                    "statistical_report.correction",
                    "the first version of a report corrects nothing; a correction is an update",
                );
            }
            RecordKind::Update(u) => {
                if let Err(rule) = check_record_id_format(&u.target) {
                    errors.push("update.target_record_id", rule);
                }
                errors.check(
                    u.version >= 2,
                    "update.version",
                    "must be at least 2 (the first record is version 1)",
                );
                match &u.content {
                    Content::Alert(a) => a.check("update.alert", errors),
                    Content::CaseReference(c) => c.check("update.case_reference", errors),
                    Content::StatisticalReport(r) => {
                        crate::records::stats::check_report(r, "update.statistical_report", errors);
                        errors.check(
                            r.correction.is_some(),
                            "update.statistical_report.correction",
                            "a correction says why: one of late_records, data_correction, reclassification, method_change",
                        );
                    }
                }
            }
            RecordKind::Withdrawal(w) => {
                if let Err(rule) = check_record_id_format(&w.target) {
                    errors.push("withdrawal.target_record_id", rule);
                }
                check_text(
                    errors,
                    "withdrawal.reason",
                    &w.reason,
                    MAX_REASON_CHARS,
                    true,
                );
            }
            RecordKind::MlaRequest(r) => {
                check_text(
                    errors,
                    "mla_request.legal_basis",
                    &r.legal_basis,
                    MAX_LEGAL_BASIS_CHARS,
                    true,
                );
                check_text(
                    errors,
                    "mla_request.measures",
                    &r.measures,
                    MAX_MLA_TEXT_CHARS,
                    true,
                );
                errors.check(
                    !r.case_refs.is_empty() || !r.query_id.is_empty(),
                    "mla_request.case_refs",
                    "name the case references or the query (hit) the request is about",
                );
                errors.check(
                    r.case_refs.len() <= 32,
                    "mla_request.case_refs",
                    "at most 32",
                );
                for (i, id) in r.case_refs.iter().enumerate() {
                    if let Err(rule) = check_record_id_format(id) {
                        errors.push(format!("mla_request.case_refs[{i}]"), rule);
                    }
                }
                check_text(errors, "mla_request.query_id", &r.query_id, 64, false);
                if let Some(d) = r.deadline_ms {
                    errors.check(d > 0, "mla_request.deadline", "must be a time");
                }
            }
            RecordKind::MlaAck(a) => {
                if let Err(rule) = check_record_id_format(&a.request_id) {
                    errors.push("mla_ack.request_id", rule);
                }
            }
            RecordKind::MlaResponse(r) => {
                if let Err(rule) = check_record_id_format(&r.request_id) {
                    errors.push("mla_response.request_id", rule);
                }
                check_text(
                    errors,
                    "mla_response.text",
                    &r.text,
                    MAX_MLA_TEXT_CHARS,
                    true,
                );
            }
            RecordKind::RosterProposal(p) => {
                errors.check(
                    !p.version.is_empty(),
                    "roster_proposal.version",
                    "is required: an encoded RosterVersion",
                );
                errors.check(
                    p.version.len() <= MAX_PROPOSAL_BYTES,
                    "roster_proposal.version",
                    format!("at most {MAX_PROPOSAL_BYTES} bytes"),
                );
            }
            RecordKind::MatchFilter(f) => check_filter(f, errors),
            RecordKind::RosterApproval(a) => {
                errors.check(
                    a.signature.len() == 64,
                    "roster_approval.signature",
                    "must be a 64-byte Ed25519 signature",
                );
            }
        }
    }
}

/// The signed content of a shared record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordBody {
    pub origin: NodeId,
    pub seq: u64,
    pub record_id: String,
    pub created_at_ms: i64,
    pub distribution: Distribution,
    pub kind: RecordKind,
}

impl RecordBody {
    /// The rules every record must satisfy, whoever made it. Rules that
    /// depend on the clock or on earlier records live with the publisher
    /// (`node`) and the series logic (`lifecycle`).
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = Errors::default();
        errors.check(self.seq >= 1, "seq", "must be at least 1");
        if let Err(rule) = check_record_id(&self.record_id, &self.origin) {
            errors.push("record_id", rule);
        }
        if let Distribution::Named(m) = &self.distribution {
            errors.check(
                !m.is_empty(),
                "distribution.named.members",
                "must name at least one member",
            );
            errors.check(
                m.len() <= MAX_RECIPIENTS,
                "distribution.named.members",
                format!("at most {MAX_RECIPIENTS} recipients"),
            );
        }
        self.kind.validate(&mut errors);
        // NOTE: a member can only change its own series. Without this, one
        // member could withdraw or rewrite another's record at every recipient.
        let (target_field, target) = match &self.kind {
            RecordKind::Update(u) => ("update.target_record_id", Some(&u.target)),
            RecordKind::Withdrawal(w) => ("withdrawal.target_record_id", Some(&w.target)),
            _ => ("", None),
        };
        // An MLA request goes to exactly one other member, and its answers
        // come from that member to the requester only.
        match &self.kind {
            RecordKind::MlaRequest(r) => {
                errors.check(
                    r.to != self.origin,
                    "mla_request.to",
                    "a member does not send a request to itself",
                );
                errors.check(
                    self.distribution == Distribution::Named([r.to.clone()].into_iter().collect()),
                    "to",
                    format!(
                        "an MLA request is distributed to its recipient {} only",
                        r.to
                    ),
                );
            }
            RecordKind::MlaAck(MlaAck { request_id })
            | RecordKind::MlaResponse(MlaResponse { request_id, .. }) => {
                let requester = request_id
                    .rsplit_once('-')
                    .and_then(|(o, _)| NodeId::parse(o).ok());
                match requester {
                    Some(requester) => {
                        errors.check(
                            requester != self.origin,
                            "request_id",
                            "a member does not answer its own request",
                        );
                        errors.check(
                            self.distribution
                                == Distribution::Named([requester.clone()].into_iter().collect()),
                            "to",
                            format!(
                                "an MLA answer is distributed to the requester {requester} only"
                            ),
                        );
                    }
                    None => errors.push("request_id", "is not a record id"),
                }
            }
            RecordKind::RosterProposal(_) | RecordKind::RosterApproval(_) => {
                errors.check(
                    self.distribution == Distribution::AllMembers,
                    "to",
                    "a roster proposal or approval goes to all members",
                );
            }
            RecordKind::MatchFilter(_) => {
                errors.check(
                    self.distribution == Distribution::AllMembers,
                    "to",
                    "a match filter goes to all members",
                );
            }
            _ => {}
        }
        if let Some(target) = target
            && check_record_id_format(target).is_ok()
            && check_record_id(target, &self.origin).is_err()
        {
            errors.push(
                target_field,
                format!("{target} is not a record of {}: only its origin can update or withdraw a record", self.origin),
            );
        }
        if let Some(content) = self.kind.content() {
            let tlp = content.tlp();
            if tlp.requires_named_recipients() && self.distribution == Distribution::AllMembers {
                errors.push(
                    "to",
                    format!(
                        "{} requires named recipients: name them (e.g. --to hn,sv) instead of sending to all members",
                        tlp.tlp_name()
                    ),
                );
            }
        }
        errors.finish()
    }

    /// The id of the series this record belongs to: its own id for a first
    /// record, the target's for an update or withdrawal.
    pub fn series_id(&self) -> &str {
        match &self.kind {
            RecordKind::Update(u) => &u.target,
            RecordKind::Withdrawal(w) => &w.target,
            RecordKind::MlaAck(a) => &a.request_id,
            RecordKind::MlaResponse(r) => &r.request_id,
            _ => &self.record_id,
        }
    }

    /// For a roster proposal or approval, its key and entry in the state
    /// tree's roster index (see [`crate::records::roster`]).
    pub fn roster_index(&self) -> Option<(String, Vec<u8>)> {
        let (kind, hash) = match &self.kind {
            RecordKind::RosterProposal(p) => ("proposal", p.hash()),
            RecordKind::RosterApproval(a) => ("approval", a.roster_sha256),
            _ => return None,
        };
        let entry = crate::records::roster::Indexed {
            kind: kind.to_owned(),
            record_id: self.record_id.clone(),
            origin: self.origin.to_string(),
            created_at_ms: self.created_at_ms,
        };
        Some((
            crate::records::roster::key(&hash, &self.record_id),
            entry.encode(),
        ))
    }

    /// Version within the series (1 for a first record; a withdrawal has none).
    pub fn version(&self) -> u32 {
        match &self.kind {
            RecordKind::Update(u) => u.version,
            RecordKind::Withdrawal(_)
            | RecordKind::MlaRequest(_)
            | RecordKind::MlaAck(_)
            | RecordKind::MlaResponse(_)
            | RecordKind::RosterProposal(_)
            | RecordKind::RosterApproval(_)
            | RecordKind::MatchFilter(_) => 0,
            _ => 1,
        }
    }
}

/// The rules of a match filter record.
fn check_filter(f: &crate::records::filter::MatchFilter, errors: &mut Errors) {
    errors.check(f.epoch >= 1, "match_filter.epoch", "must be 1 or more");
    for (field, list) in [
        ("match_filter.added", &f.added),
        ("match_filter.removed", &f.removed),
    ] {
        errors.check(
            list.len() <= crate::records::filter::MAX_ENTRIES_PER_RECORD,
            field,
            format!(
                "at most {} entries per record (got {})",
                crate::records::filter::MAX_ENTRIES_PER_RECORD,
                list.len()
            ),
        );
    }
}
