//! Roster governance at a node: the proposals and approvals it holds, and
//! adopting the next roster version by itself once a threshold of members
//! has approved it.
//!
//! Why: the federation has no centre to sign its roster. A change is in
//! force when a threshold of distinct members of the version in force
//! **and** of the proposed one approved it (`crate::trust::chain`), and
//! every node must reach that conclusion on its own, from what it holds,
//! without waiting for its operator.
//!
//! How: proposals and approvals are ordinary records to all members
//! (`crate::records::roster`), indexed in the store's state tree as they
//! are stored. Whenever one arrives (from a peer, or published here) the
//! [`Governor`] evaluates what it holds against the version in force:
//! - a proposal that follows it (version N+1, previous = its hash, not
//!   expired) is pending until its approvals reach both thresholds;
//! - exactly one such proposal with both thresholds is adopted: sealed
//!   with its approvals, persisted (written and synced to the node's own
//!   chain directory) before anything acts on it, then brought into force
//!   through the trust reload ([`LiveTls::reload`]), which swaps CAs, CRLs,
//!   signing keys and endpoints, starts and stops replicators and cuts the
//!   connections of members no longer admitted. Then the next version is
//!   tried, so a node that was offline walks N+1, N+2, … in order;
//! - two such proposals of one number halt adoption: both are kept as
//!   evidence of double signing, an ERROR is logged and the conflict
//!   counted; the node stays on N until the federation resolves it;
//! - a proposal that skips ahead waits; one at or below the version in
//!   force is superseded (or refused as a rollback when it arrives after
//!   its number came into force); one with a wrong `previous`, an expired
//!   one, or an approval by a key of neither version is refused with its
//!   reason in the log, the audit log and `enlace_roster_refused_total`.
//!
//! Budget: a node reads each member's latest [`MAX_PROPOSALS_PER_MEMBER`]
//! proposals and, for those, each member's latest
//! [`MAX_APPROVALS_PER_MEMBER`] approvals, chosen from the index before
//! any record is read; an approval costs one signature check at most, and
//! only when its key is a governance key of N or N+1; each key gets at
//! most [`TRIES_PER_KEY`] checks per proposal and publishing member (so
//! forged approvals under a key cannot crowd out the real one). A member flooding proposals
//! or forged approvals therefore spends its own record budget and costs
//! every other node a bounded amount of work per evaluation. Each refusal is written to the audit log once
//! per run of the node (refusals already held at start are not repeated).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::audit::keeper::AuditKeeper;
use crate::audit::{Action, Entry};
use crate::clock::SharedClock;
use crate::records::model::NodeId;
use crate::records::roster::{Approval, Indexed};
use crate::store::{Store, StoreError};
use crate::trust::chain::{self, Refusal, Signed, Tally, Version, dir};
use crate::trust::reload::{LiveTls, Trigger};
use crate::trust::roster::Roster;

mod assess;
mod holdings;

/// Signature checks one governance key gets per proposal and publishing
/// member.
pub const TRIES_PER_KEY: usize = 4;
/// A member's latest proposals that a node considers; older ones of the
/// same member are not read.
pub const MAX_PROPOSALS_PER_MEMBER: usize = 8;
/// A member's latest approvals of one proposal that a node considers.
pub const MAX_APPROVALS_PER_MEMBER: usize = 64;

/// Where a proposal stands at this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Follows the version in force; approvals still below a threshold.
    Pending,
    /// In force, or was: part of the chain.
    Adopted,
    /// Another version of its number came into force first.
    Superseded,
    /// Skips ahead: waits for the versions before it.
    Waiting,
    /// Cannot follow the version in force (wrong previous, expired,
    /// invalid, a rollback).
    Refused,
    /// Another version of its number also has both thresholds: adoption
    /// halted.
    Conflict,
}

impl State {
    pub fn code(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Adopted => "adopted",
            State::Superseded => "superseded",
            State::Waiting => "waiting",
            State::Refused => "refused",
            State::Conflict => "conflict",
        }
    }
}

/// One proposal as this node sees it.
#[derive(Debug, Clone)]
pub struct ProposalStatus {
    /// The SHA-256 of the proposed version's bytes.
    pub id: [u8; 32],
    /// The version number; 0 when the bytes are not a valid version.
    pub version: u64,
    pub proposed_by: String,
    pub record_id: String,
    pub proposed_at_ms: i64,
    /// Distinct members whose valid approvals are held.
    pub approved_by: BTreeSet<NodeId>,
    pub current_approvals: usize,
    pub current_threshold: u32,
    pub next_approvals: usize,
    pub next_threshold: u32,
    pub state: State,
    pub reason: String,
}

/// A proposal held here: its record, and its bytes.
struct Held {
    indexed: Indexed,
    bytes: Vec<u8>,
}

/// An approval held here, with the record that carried it.
struct HeldApproval {
    record_id: String,
    origin: String,
    approval: Approval,
}

/// Everything the roster index points at, read from the store.
#[derive(Default)]
struct Holdings {
    proposals: BTreeMap<[u8; 32], Held>,
    approvals: BTreeMap<[u8; 32], Vec<HeldApproval>>,
}

/// Why the governor could not evaluate.
#[derive(Debug, thiserror::Error)]
pub enum GovernanceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the roster governor's state is poisoned")]
    Poisoned,
}

/// The node's roster governance: see the module documentation.
pub struct Governor {
    id: NodeId,
    clock: SharedClock,
    store: Arc<Store>,
    trust: Arc<LiveTls>,
    audit: Arc<AuditKeeper>,
    /// Poked when a roster record is stored.
    wake: Arc<Notify>,
    /// The proposals as last evaluated.
    view: Mutex<Vec<ProposalStatus>>,
    /// Refusals counted by reason label, since start.
    refused: Mutex<BTreeMap<&'static str, u64>>,
    /// Refusals already put on record in this run, by a key naming the
    /// record and the reason; `None` until the first evaluation, which
    /// only takes note of what is already held.
    reported: Mutex<Option<HashSet<String>>>,
    /// One evaluation at a time.
    turn: tokio::sync::Mutex<()>,
    /// Proposals' bytes parsed, by hash (the rules' verdict on the bytes
    /// does not change), so an evaluation parses only what is new.
    parsed: Mutex<BTreeMap<[u8; 32], Parsed>>,
    /// The version whose adoption last failed, and when: retried after
    /// [`ADOPTION_RETRY`], not at every roster record that arrives.
    failed: Mutex<Option<([u8; 32], std::time::Instant)>>,
}

/// A proposal's bytes as a version, or the rules they break.
type Parsed = Result<Version, Vec<String>>;

/// How long a version whose adoption failed (its reload refused) waits
/// before it is tried again.
const ADOPTION_RETRY: std::time::Duration = std::time::Duration::from_secs(30);

impl std::fmt::Debug for Governor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Governor")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// What the governor is made of.
pub(crate) struct GovernorParts {
    pub id: NodeId,
    pub clock: SharedClock,
    pub store: Arc<Store>,
    pub trust: Arc<LiveTls>,
    pub audit: Arc<AuditKeeper>,
    pub wake: Arc<Notify>,
}

/// A refusal to put on record: its dedup key, reason and words.
struct Finding {
    key: String,
    reason: &'static str,
    text: String,
    ids: Vec<String>,
}

impl Governor {
    pub(crate) fn new(p: GovernorParts) -> Self {
        Self {
            id: p.id,
            clock: p.clock,
            store: p.store,
            trust: p.trust,
            audit: p.audit,
            wake: p.wake,
            view: Mutex::new(Vec::new()),
            refused: Mutex::new(BTreeMap::new()),
            reported: Mutex::new(None),
            turn: tokio::sync::Mutex::new(()),
            parsed: Mutex::new(BTreeMap::new()),
            failed: Mutex::new(None),
        }
    }

    /// Asks for an evaluation soon (a roster record was stored).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Evaluates at start, then whenever woken, until `stop`.
    pub(crate) async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            self.evaluate().await;
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = crate::shutdown::stopped(&mut stop) => break,
            }
        }
    }

    /// The proposals as last evaluated, newest version first.
    pub fn proposals(&self) -> Vec<ProposalStatus> {
        self.view.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Proposals pending approval.
    pub fn pending(&self) -> usize {
        self.proposals()
            .iter()
            .filter(|p| p.state == State::Pending)
            .count()
    }

    /// Refusals counted since start, by reason (every reason listed).
    pub fn refused(&self) -> Vec<(&'static str, u64)> {
        let counted = self.refused.lock().map(|r| r.clone()).unwrap_or_default();
        Refusal::REASONS
            .iter()
            .map(|r| (*r, counted.get(r).copied().unwrap_or(0)))
            .collect()
    }

    /// Counts a refusal made outside the evaluation (a proposal an agency
    /// client submitted that cannot follow the version in force).
    pub(crate) fn count_refusal(&self, reason: &'static str) {
        if let Ok(mut r) = self.refused.lock() {
            *r.entry(reason).or_default() += 1;
        }
    }

    /// Evaluates now and returns once done; errors are logged.
    pub async fn evaluate(self: &Arc<Self>) {
        let _turn = self.turn.lock().await;
        let this = self.clone();
        let outcome = tokio::task::spawn_blocking(move || this.evaluate_blocking()).await;
        let findings = match outcome {
            Ok(Ok(findings)) => findings,
            Ok(Err(error)) => {
                tracing::error!(%error, "roster governance: cannot evaluate the proposals held");
                return;
            }
            Err(error) => {
                tracing::error!(%error, "roster governance: the evaluation failed");
                return;
            }
        };
        let mut entries = Vec::new();
        for (action, f) in findings {
            entries.push(
                Entry::new(action, self.id.as_str())
                    .ids(f.ids)
                    .result(format!("{}: {}", f.reason, f.text)),
            );
        }
        if !entries.is_empty()
            && let Err(error) = self.audit.record(entries).await
        {
            tracing::error!(%error, "cannot audit a roster governance decision");
        }
    }

    /// Reads what is held, adopts what may be adopted (repeatedly: N+1,
    /// N+2, …), and records the view. Returns the audit entries to write.
    fn evaluate_blocking(&self) -> Result<Vec<(Action, Finding)>, GovernanceError> {
        let mut out: Vec<(Action, Finding)> = Vec::new();
        loop {
            let holdings = self.holdings()?;
            let head = self.trust.roster();
            let (statuses, candidates, findings) = self.assess(&head, &holdings);
            out.extend(findings.into_iter().map(|f| (Action::RosterRefused, f)));
            match candidates.len() {
                1 if self.halted_at(candidates[0].0.version.number()) => {
                    let n = candidates[0].0.version.number();
                    tracing::error!(
                        version = n,
                        "roster adoption stays halted: a conflict at this version was found before (evidence in the roster directory's evidence/); place the version the federation agreed in federation.chain"
                    );
                    self.publish(
                        statuses
                            .into_iter()
                            .map(|mut s| {
                                if s.version == n && s.state == State::Pending {
                                    s.state = State::Conflict;
                                    s.reason = format!(
                                        "adoption of version {n} halted by an earlier conflict"
                                    );
                                }
                                s
                            })
                            .collect(),
                    );
                }
                1 if self.failed_recently(&candidates[0].0.version.hash()) => {
                    self.publish(statuses);
                }
                1 => {
                    let (signed, tally) = &candidates[0];
                    match self.adopt(&head, signed, tally) {
                        Ok(finding) => {
                            out.push((Action::RosterAdopted, finding));
                            continue;
                        }
                        Err(text) => {
                            if let Ok(mut f) = self.failed.lock() {
                                *f = Some((signed.version.hash(), std::time::Instant::now()));
                            }
                            tracing::error!(
                                version = signed.version.number(),
                                error = %text,
                                "roster version approved but not brought into force; retried at the next roster record or restart"
                            );
                            self.publish(statuses);
                        }
                    }
                }
                0 => self.publish(statuses),
                _ => {
                    let own = dir::adopted_dir(self.trust.data_dir());
                    for (signed, _) in &candidates {
                        if let Err(reason) = dir::keep_evidence(&own, signed) {
                            tracing::error!(%reason, "cannot keep the evidence of a roster conflict");
                        }
                    }
                    let refusal = Refusal::Conflict {
                        version: candidates[0].0.version.number(),
                        first: chain::hex(&candidates[0].0.version.hash()),
                        second: chain::hex(&candidates[1].0.version.hash()),
                    };
                    tracing::error!(
                        reason = refusal.reason(),
                        %refusal,
                        "roster adoption halted: the node stays on the version in force"
                    );
                    let ids = candidates
                        .iter()
                        .map(|(s, _)| format!("sha256:{}", chain::hex(&s.version.hash())))
                        .collect();
                    if let Some(f) = self.finding(
                        format!("conflict:{}", refusal),
                        refusal.reason(),
                        refusal.to_string(),
                        ids,
                    ) {
                        out.push((Action::RosterRefused, f));
                    }
                    let conflicting: HashSet<[u8; 32]> =
                        candidates.iter().map(|(s, _)| s.version.hash()).collect();
                    let statuses = statuses
                        .into_iter()
                        .map(|mut s| {
                            if conflicting.contains(&s.id) {
                                s.state = State::Conflict;
                                s.reason = refusal.to_string();
                            }
                            s
                        })
                        .collect();
                    self.publish(statuses);
                }
            }
            break;
        }
        if let Ok(mut reported) = self.reported.lock()
            && reported.is_none()
        {
            // The first evaluation of a run: what was held already was
            // put on record when it arrived.
            *reported = Some(out.iter().map(|(_, f)| f.key.clone()).collect());
            out.retain(|(action, _)| *action == Action::RosterAdopted);
        }
        Ok(out)
    }

    /// Whether the adoption of `hash` failed less than [`ADOPTION_RETRY`]
    /// ago.
    fn failed_recently(&self, hash: &[u8; 32]) -> bool {
        self.failed
            .lock()
            .ok()
            .and_then(|f| *f)
            .is_some_and(|(h, at)| h == *hash && at.elapsed() < ADOPTION_RETRY)
    }

    /// Whether a conflict at version `n` was kept as evidence: adoption
    /// of `n` stays halted (even if one of the two versions drops out of
    /// view) until the operator places the agreed version in
    /// `federation.chain`.
    fn halted_at(&self, n: u64) -> bool {
        let evidence = dir::adopted_dir(self.trust.data_dir()).join("evidence");
        std::fs::read_dir(evidence)
            .map(|entries| {
                entries.filter_map(Result::ok).any(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with(&format!("{n}-"))
                })
            })
            .unwrap_or(false)
    }

    /// A refusal to put on record, unless it was already in this run;
    /// counted either way only once.
    fn finding(
        &self,
        key: String,
        reason: &'static str,
        text: String,
        ids: Vec<String>,
    ) -> Option<Finding> {
        let mut reported = self.reported.lock().ok()?;
        if let Some(seen) = reported.as_mut() {
            if !seen.insert(key.clone()) {
                return None;
            }
            drop(reported);
            self.count_refusal(reason);
            tracing::warn!(security_event = true, reason, %text, "roster governance refused");
        }
        Some(Finding {
            key,
            reason,
            text,
            ids,
        })
    }

    fn publish(&self, mut statuses: Vec<ProposalStatus>) {
        statuses.sort_by(|a, b| b.version.cmp(&a.version).then(a.id.cmp(&b.id)));
        if let Ok(mut v) = self.view.lock() {
            *v = statuses;
        }
    }

    /// A proposal's bytes as a version, or the rules they break; parsed
    /// once per hash.
    pub(crate) fn parse(&self, hash: &[u8; 32], bytes: &[u8]) -> Result<Version, Vec<String>> {
        if let Ok(cache) = self.parsed.lock()
            && let Some(v) = cache.get(hash)
        {
            return v.clone();
        }
        let parsed = Version::parse(bytes.to_vec()).map_err(|e| e.problems);
        if let Ok(mut cache) = self.parsed.lock() {
            // Bounded like what is read: members times their budget.
            if cache.len() >= 1024 {
                cache.clear();
            }
            cache.insert(*hash, parsed.clone());
        }
        parsed
    }

    /// Persists `signed` in the node's own chain directory, then brings it
    /// into force through the trust reload.
    fn adopt(&self, head: &Roster, signed: &Signed, tally: &Tally) -> Result<Finding, String> {
        // NOTE: checked once more against the version in force right now,
        // from the exact bytes that will be written.
        chain::verify_successor(head, signed, Some(self.clock.now_ms()))
            .map_err(|r| r.to_string())?;
        let own = dir::adopted_dir(self.trust.data_dir());
        dir::write(&own, signed, dir::Access::OwnerOnly)?;
        let n = signed.version.number();
        let hash = chain::hex(&signed.version.hash());
        tracing::info!(version = n, %hash, "roster version approved by a threshold: persisted, bringing it into force");
        pause_after_persist();
        let outcome = self
            .trust
            .reload(Trigger::Adoption)
            .map_err(|e| e.to_string())?;
        if outcome.new_roster.1 != signed.version.hash() {
            return Err(format!(
                "the reload brought version {} into force, not {n} ({hash})",
                outcome.new_roster.0
            ));
        }
        let approvers: BTreeSet<&NodeId> = tally.current.union(&tally.next).collect();
        let approvers: Vec<&str> = approvers.iter().map(|m| m.as_str()).collect();
        Ok(Finding {
            key: format!("adopted:{hash}"),
            reason: "adopted",
            text: format!(
                "version {n} sha256:{hash} in force (was {}), approved by {}",
                head.position.version,
                approvers.join(", ")
            ),
            ids: vec![format!("sha256:{hash}")],
        })
    }
}

/// A test's kill point: with `ENLACE_TEST_PAUSE_AFTER_ROSTER_PERSIST` set
/// (builds with the `testing` feature only), the adoption stops for good
/// right after the version is persisted and before the governor brings it
/// into force, so that a test can kill the process exactly there. (The
/// reload's file watch still sees the persisted file within
/// `reload.poll_ms`: a test using this sets `poll_ms = 0`.)
fn pause_after_persist() {
    #[cfg(feature = "testing")]
    if std::env::var_os("ENLACE_TEST_PAUSE_AFTER_ROSTER_PERSIST").is_some() {
        tracing::warn!("test kill point: pausing after persisting a roster version");
        loop {
            std::thread::park();
        }
    }
}
