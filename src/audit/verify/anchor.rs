//! What stands before the log's first entry held: the anchor a pruning or
//! a recovery left, the countersigned statements that account for it
//! (retention, lost log), and the judgements on them. Its own file because
//! these check evidence about entries that are gone, where the rest of the
//! verifier checks the entries it is fed.

use super::{Verifier, WITNESS_SLACK_MS};
use crate::audit::checkpoint::KeyBook;
use crate::audit::recovery::{self, Recovery};
use crate::audit::rfc3339;
use crate::records::model::NodeId;
use crate::store::audit_log::Anchor;
use crate::wire::{AuditRecovery, ResumeCause};

/// A recovery whose statement verified, and who countersigned it when.
#[derive(Debug, Clone)]
pub(super) struct Resumption {
    pub(super) recovery: Recovery,
    pub(super) countersigned: Vec<(NodeId, i64)>,
    /// Countersignatures that do not verify, with why.
    pub(super) bad: Vec<String>,
}

impl Resumption {
    /// Who countersigned the statement, when: `gt at 2026-…, hn at …`.
    fn countersigned_by(&self) -> String {
        let by: Vec<String> = self
            .countersigned
            .iter()
            .map(|(who, at)| format!("{who} at {}", rfc3339(*at)))
            .collect();
        by.join(", ")
    }

    /// Why the countersignatures offered did not count, in parentheses
    /// after a space; empty when none was offered.
    fn why_uncountersigned(&self) -> String {
        if self.bad.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.bad.join("; "))
        }
    }
}

/// Opens a kept recovery: its statement, and each countersignature of it.
pub(super) fn resumption(
    kept: &AuditRecovery,
    node: &NodeId,
    keys: &KeyBook,
    cause: ResumeCause,
) -> Result<Resumption, String> {
    let r = recovery::open(&kept.statement, keys)
        .map_err(|e| format!("the statement does not verify: {e}"))?;
    if r.node != *node {
        return Err(format!("a statement of {} is kept here", r.node));
    }
    if r.cause != cause {
        return Err(format!(
            "a statement of cause {:?} is kept where one of cause {cause:?} belongs",
            r.cause
        ));
    }
    let mut countersigned = Vec::new();
    let mut bad = Vec::new();
    for w in &kept.witnesses {
        match recovery::open_witness(w, keys) {
            Ok(c) if w.recovery.as_ref() != Some(&kept.statement) => {
                bad.push(format!("{} countersigned another statement", c.witness));
            }
            Ok(c) if c.witness == *node => {
                bad.push(format!("{node} countersigned its own statement"));
            }
            Ok(c) => {
                if !countersigned.iter().any(|(who, _)| *who == c.witness) {
                    countersigned.push((c.witness, c.witnessed_at_ms));
                }
            }
            Err(e) => bad.push(format!(
                "the countersignature of {} does not verify: {e}",
                w.witness
            )),
        }
    }
    Ok(Resumption {
        recovery: r,
        countersigned,
        bad,
    })
}

impl Verifier {
    /// Whether a peer's witnesses show that entry `n` was written less than
    /// the minimum retention before now: a checkpoint of fewer than `n`
    /// entries, witnessed at `w` by the peer's clock, means entry `n` did
    /// not exist until about then. Entries that young are never pruned, so
    /// the anchor is evidence of a clock set ahead or of tampering.
    pub(super) fn pruned_too_young(&self, n: u64) -> Option<String> {
        let floor_ms = i64::from(crate::limits::MIN_AUDIT_RETENTION_DAYS) * 86_400_000;
        self.witnessed
            .iter()
            .filter_map(|(peer, ws)| {
                let w = ws
                    .as_ref()
                    .ok()?
                    .iter()
                    .filter(|w| w.checkpoint.size < n)
                    .map(|w| w.witnessed_at_ms)
                    .max()?;
                (self.evidence.now_ms - w + WITNESS_SLACK_MS < floor_ms).then(|| {
                    format!(
                        "pruned up to entry {n}, but {peer} witnessed at {} a log that did not reach \
                         entry {n} yet: entries younger than {} days were removed (a clock set ahead?)",
                        rfc3339(w),
                        crate::limits::MIN_AUDIT_RETENTION_DAYS
                    )
                })
            })
            .next()
    }

    /// Whether a countersigned retention statement allows the pruning up
    /// to the anchor: a peer agreed, by its own clock, that it saw those
    /// entries exist at least the minimum retention ago. The detail names
    /// who countersigned when.
    pub(super) fn judge_retention(&self, a: &Anchor) -> Result<String, String> {
        let r = match &self.retention {
            None => {
                return Err(format!(
                    "pruned up to entry {} with no statement that a peer countersigned: \
                     entries were removed that no peer agreed were old enough",
                    a.n
                ));
            }
            Some(Err(e)) => return Err(format!("the retention statement: {e}")),
            Some(Ok(r)) => r,
        };
        let s = &r.recovery.resumes;
        if s.size < a.n || (s.size == a.n && s.head != a.hash) {
            return Err(format!(
                "pruned up to entry {}, but the countersigned retention statement allows entries 1..{} only",
                a.n, s.size
            ));
        }
        if r.countersigned.is_empty() {
            let why = r.why_uncountersigned();
            return Err(format!(
                "pruned up to entry {} under a retention statement that no peer countersigned{why}",
                a.n
            ));
        }
        Ok(format!(
            "a peer agreed the entries were at least {} days old: countersigned by {}",
            crate::limits::MIN_AUDIT_RETENTION_DAYS,
            r.countersigned_by()
        ))
    }

    /// A verified recovery statement holds when a peer countersigned it
    /// and the log does resume where it says (the anchor is at or past
    /// it); its detail is the incident, for people.
    pub(super) fn judge_resumption(&self, r: &Resumption, anchor_n: u64) -> Result<String, String> {
        let s = r.recovery.resumes.size;
        if r.countersigned.is_empty() {
            let why = r.why_uncountersigned();
            return Err(format!(
                "the statement that entries 1..{s} were lost is countersigned by no peer{why}"
            ));
        }
        if anchor_n < s {
            return Err(format!(
                "a recovery says the log resumes after entry {s}, but the log does not start there (anchor at entry {anchor_n})"
            ));
        }
        let mut detail = format!(
            "entries 1..{s} were lost (and any written after entry {s} before the loss); stated at {}{}; \
             the log resumes after entry {s}, a checkpoint made at {}; countersigned by {}",
            rfc3339(r.recovery.time_ms),
            if r.recovery.reason.is_empty() {
                String::new()
            } else {
                format!(" ({})", r.recovery.reason)
            },
            rfc3339(r.recovery.resumes.time_ms),
            r.countersigned_by()
        );
        if !r.bad.is_empty() {
            detail.push_str(&format!("; ignored: {}", r.bad.join("; ")));
        }
        Ok(detail)
    }
}
