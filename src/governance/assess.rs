//! Where each proposal held stands against the version in force: the
//! rules of `crate::trust::chain` applied to what the records say, with
//! the refusals to put on record. Its own file because it is the one
//! place that decides a proposal's state; adopting is the module's.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::{Finding, Governor, HeldApproval, Holdings, ProposalStatus, State, TRIES_PER_KEY};
use crate::records::roster::Approval;
use crate::trust::chain::{self, Refusal, Signed, Tally};
use crate::trust::roster::Roster;

impl Governor {
    /// Where each proposal stands against `head`, the versions that may be
    /// adopted now (with their tallies), and the refusals found.
    #[allow(clippy::type_complexity)]
    pub(super) fn assess(
        &self,
        head: &Roster,
        holdings: &Holdings,
    ) -> (Vec<ProposalStatus>, Vec<(Signed, Tally)>, Vec<Finding>) {
        let now = self.clock.now_ms();
        let chain = self.trust.chain();
        let in_chain: HashSet<[u8; 32]> = chain.iter().map(|s| s.version.hash()).collect();
        let mut statuses = Vec::new();
        let mut candidates = Vec::new();
        let mut findings = Vec::new();
        for (hash, held) in &holdings.proposals {
            let mut status = ProposalStatus {
                id: *hash,
                version: 0,
                proposed_by: held.indexed.origin.clone(),
                record_id: held.indexed.record_id.clone(),
                proposed_at_ms: held.indexed.created_at_ms,
                approved_by: BTreeSet::new(),
                current_approvals: 0,
                current_threshold: 0,
                next_approvals: 0,
                next_threshold: 0,
                state: State::Refused,
                reason: String::new(),
            };
            let proposal_id = format!("sha256:{}", chain::hex(hash));
            let ids = vec![held.indexed.record_id.clone(), proposal_id.clone()];
            let version = match self.parse(hash, &held.bytes) {
                Ok(v) => v,
                Err(problems) => {
                    let refusal = Refusal::Invalid(problems);
                    status.reason = refusal.to_string();
                    findings.extend(self.finding(
                        format!("{proposal_id}:invalid"),
                        refusal.reason(),
                        format!("proposal {proposal_id}: {refusal}"),
                        ids,
                    ));
                    statuses.push(status);
                    continue;
                }
            };
            let next = &version.roster;
            let n = next.position.version;
            status.version = n;
            status.next_threshold = next.position.threshold;
            // The version it follows: the one in force, or for a version
            // already in the chain, the one before it there.
            let base: Option<&Roster> = if n == head.position.version + 1 {
                Some(head)
            } else {
                chain
                    .iter()
                    .find(|s| s.version.number() + 1 == n)
                    .map(|s| s.version.roster.as_ref())
            };
            status.current_threshold = base.map_or(0, |b| b.position.threshold);
            let approvals = bounded(
                holdings
                    .approvals
                    .get(hash)
                    .map(Vec::as_slice)
                    .unwrap_or_default(),
                base.unwrap_or(head),
                next,
            );
            let tally = Tally::count(
                base,
                next,
                &approvals
                    .iter()
                    .map(|a| a.approval.clone())
                    .collect::<Vec<_>>(),
            );
            status.current_approvals = tally.current.len();
            status.next_approvals = tally.next.len();
            status.approved_by = tally.current.union(&tally.next).cloned().collect();
            if in_chain.contains(hash) {
                status.state = State::Adopted;
                statuses.push(status);
                continue;
            }
            // The approvals whose keys neither version knows (judged only
            // for the version next in line: for a later one, a key of a
            // version in between may be the approver's).
            let next_in_line = n == head.position.version + 1;
            for a in holdings.approvals.get(hash).into_iter().flatten() {
                if next_in_line
                    && head
                        .governance_key_owner(&a.approval.governance_key)
                        .is_none()
                    && next
                        .governance_key_owner(&a.approval.governance_key)
                        .is_none()
                {
                    let refusal = Refusal::UnknownKey {
                        key: a.approval.key_name(),
                        current: head.position.version,
                        next: n,
                    };
                    findings.extend(self.finding(
                        format!("{}:unknown_key", a.record_id),
                        refusal.reason(),
                        format!(
                            "approval {} from {} of {proposal_id}: {refusal}",
                            a.record_id, a.origin
                        ),
                        vec![a.record_id.clone(), proposal_id.clone()],
                    ));
                }
            }
            let link = if n <= head.position.version {
                Err(Refusal::Rollback {
                    current: head.position.version,
                    got: n,
                })
            } else if n > head.position.version + 1 {
                status.state = State::Waiting;
                status.reason = format!(
                    "waits for version {} to come into force",
                    head.position.version + 1
                );
                statuses.push(status);
                continue;
            } else {
                chain::check_link(head, next, Some(now))
            };
            if let Err(refusal) = link {
                status.state = if matches!(refusal, Refusal::Rollback { .. }) {
                    State::Superseded
                } else {
                    State::Refused
                };
                status.reason = refusal.to_string();
                findings.extend(self.finding(
                    format!("{proposal_id}:{}", refusal.reason()),
                    refusal.reason(),
                    format!("proposal {proposal_id}: {refusal}"),
                    ids,
                ));
                statuses.push(status);
                continue;
            }
            for refusal in &tally.ignored {
                if matches!(
                    refusal,
                    Refusal::DuplicateSigner { .. } | Refusal::BadSignature { .. }
                ) {
                    findings.extend(self.finding(
                        format!("{proposal_id}:{refusal}"),
                        refusal.reason(),
                        format!("approval of {proposal_id}: {refusal}"),
                        vec![proposal_id.clone()],
                    ));
                }
            }
            match tally.decide(Some(head), next) {
                Ok(()) => {
                    status.state = State::Pending;
                    let signed = chain::seal(&version, counted(&approvals));
                    candidates.push((signed, tally));
                }
                // Below a threshold: pending, which the counts say.
                Err(_) => status.state = State::Pending,
            }
            statuses.push(status);
        }
        (statuses, candidates, findings)
    }
}

/// The approvals worth checking: keys of `head` or `next` only, at most
/// [`TRIES_PER_KEY`] per key **and publishing member**, in the order held.
///
/// NOTE: per publisher, not per key alone: otherwise a member could
/// publish a few forged approvals under another member's key ahead of the
/// real one, use up that key's tries, and so veto any change.
fn bounded<'a>(held: &'a [HeldApproval], head: &Roster, next: &Roster) -> Vec<&'a HeldApproval> {
    let mut tries: BTreeMap<([u8; 32], &str), usize> = BTreeMap::new();
    held.iter()
        .filter(|a| {
            let key = &a.approval.governance_key;
            head.governance_key_owner(key).is_some() || next.governance_key_owner(key).is_some()
        })
        .filter(|a| {
            let n = tries
                .entry((a.approval.governance_key, a.origin.as_str()))
                .or_default();
            *n += 1;
            *n <= TRIES_PER_KEY
        })
        .collect()
}

/// The approvals a sealed version carries: one valid signature per key.
fn counted(approvals: &[&HeldApproval]) -> Vec<Approval> {
    let mut keys = HashSet::new();
    approvals
        .iter()
        .filter(|a| a.approval.signature_verifies() && keys.insert(a.approval.governance_key))
        .map(|a| a.approval.clone())
        .collect()
}
