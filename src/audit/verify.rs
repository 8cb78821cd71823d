//! Verifying an audit log: the chain, the node's own checkpoints, and what
//! its peers witnessed. No I/O here: the caller feeds entries from a store
//! (offline) or from the agency API (remote), so both paths check the same
//! way.
//!
//! What each check catches:
//! - a changed byte in an entry: its stored hash no longer matches, and the
//!   entry is named;
//! - a removed, inserted or reordered entry: numbers or links break there;
//! - a rewritten or truncated tail, even re-hashed and re-signed with the
//!   node's own key: the checkpoints that peers witnessed and countersigned
//!   no longer match, and the report says which peer saw what, when.

use std::collections::{BTreeMap, BTreeSet};

use super::checkpoint::{self, Checkpoint, KeyBook, RosterStamp, Stamped};
use super::{Entry, rfc3339};
use crate::records::model::NodeId;
use crate::store::audit_log::{Anchor, GENESIS, HASH_LEN, RawEntry};
use crate::wire::{AuditRecovery, ResumeCause, SignedCheckpoint, Witness};

mod anchor;

use anchor::{Resumption, resumption};

/// Everything a verifier needs besides the entries.
#[derive(Debug, Clone)]
pub struct Evidence {
    /// The node whose log this is.
    pub node: NodeId,
    pub anchor: Option<Anchor>,
    /// The node's own checkpoints.
    pub own: Vec<SignedCheckpoint>,
    /// Per peer, its countersigned witnesses, or why it could not be asked.
    pub peers: Vec<(NodeId, Result<Vec<Witness>, String>)>,
    pub keys: KeyBook,
    /// Times the node lost its log and resumed it, with the peers'
    /// countersignatures (see [`super::recovery`]).
    pub recoveries: Vec<AuditRecovery>,
    /// The countersigned retention statement kept with the anchor, if the
    /// log was pruned (see `audit::keeper`'s retention).
    pub retention: Option<AuditRecovery>,
    /// The verifier's clock (ms since the Unix epoch): an anchor is judged
    /// against it and the peers' witness times, never the node's clock.
    pub now_ms: i64,
}

/// How far ahead of the verifier's clock a checkpoint may be dated.
const CLOCK_SKEW_MS: i64 = 10 * 60 * 1000;
/// Between a checkpoint made and a peer witnessing it.
const WITNESS_SLACK_MS: i64 = 60 * 60 * 1000;
/// One verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// The outcome of a verification.
#[derive(Debug, Clone)]
pub struct Report {
    pub node: NodeId,
    /// Number of the last entry read.
    pub size: u64,
    /// Entries read.
    pub entries: u64,
    /// The first entry that does not hold (or may not), if any.
    pub first_bad: Option<u64>,
    pub checks: Vec<Check>,
}

impl Report {
    /// Whether everything holds.
    pub fn holds(&self) -> bool {
        self.first_bad.is_none() && self.checks.iter().all(|c| c.ok)
    }
}

/// Feeds entries in order, then [`Verifier::finish`].
pub struct Verifier {
    evidence: Evidence,
    /// Checkpoints (opened) by size, from whom, for the comparison.
    wanted: BTreeSet<u64>,
    hashes_at: BTreeMap<u64, [u8; HASH_LEN]>,
    expected_n: u64,
    prev: [u8; HASH_LEN],
    last_n: u64,
    entries: u64,
    first_bad: Option<(u64, String)>,
    /// Problems with the evidence itself, found while opening it.
    evidence_checks: Vec<Check>,
    own: Vec<Stamped>,
    witnessed: Vec<(NodeId, Result<Vec<checkpoint::Witnessed>, String>)>,
    anchor_checkpoint: Option<Result<Checkpoint, String>>,
    resumptions: Vec<Result<Resumption, String>>,
    retention: Option<Result<Resumption, String>>,
}

impl Verifier {
    pub fn new(evidence: Evidence) -> Self {
        let mut evidence_checks = Vec::new();
        let mut own = Vec::new();
        let mut bad_own = Vec::new();
        for (i, signed) in evidence.own.iter().enumerate() {
            match checkpoint::open_stamped(signed, &evidence.keys) {
                Ok(s) if s.checkpoint.node == evidence.node => own.push(s),
                Ok(s) => bad_own.push(format!("checkpoint {i} is of node {}", s.checkpoint.node)),
                Err(e) => bad_own.push(format!("checkpoint {i}: {e}")),
            }
        }
        if !bad_own.is_empty() {
            evidence_checks.push(Check {
                name: "own checkpoint signatures".into(),
                ok: false,
                detail: bad_own.join("; "),
            });
        }
        let mut witnessed = Vec::new();
        for (peer, answer) in &evidence.peers {
            let opened = answer.as_ref().map_err(Clone::clone).and_then(|ws| {
                ws.iter()
                    .map(|w| {
                        let seen = checkpoint::open_witness(w, &evidence.keys)
                            .map_err(|e| format!("a witness from {peer} does not verify: {e}"))?;
                        if seen.witness != *peer {
                            return Err(format!(
                                "{peer} handed over a witness signed by {}",
                                seen.witness
                            ));
                        }
                        if seen.checkpoint.node != evidence.node {
                            return Err(format!(
                                "{peer} handed over a checkpoint of {}",
                                seen.checkpoint.node
                            ));
                        }
                        Ok(seen)
                    })
                    .collect::<Result<Vec<_>, String>>()
            });
            witnessed.push((peer.clone(), opened));
        }
        let anchor_checkpoint = evidence.anchor.as_ref().map(|a| {
            SignedCheckpoint::decode(a.checkpoint.as_slice())
                .map_err(|e| format!("anchor checkpoint does not decode: {e}"))
                .and_then(|s| checkpoint::open(&s, &evidence.keys).map_err(|e| e.to_string()))
        });
        let resumptions = evidence
            .recoveries
            .iter()
            .map(|kept| resumption(kept, &evidence.node, &evidence.keys, ResumeCause::Lost))
            .collect();
        let retention = evidence
            .retention
            .as_ref()
            .map(|kept| resumption(kept, &evidence.node, &evidence.keys, ResumeCause::Retention));
        let mut wanted: BTreeSet<u64> = own.iter().map(|s| s.checkpoint.size).collect();
        for (_, w) in &witnessed {
            if let Ok(ws) = w {
                wanted.extend(ws.iter().map(|w| w.checkpoint.size));
            }
        }
        let (expected_n, prev) = match &evidence.anchor {
            Some(a) => (a.n + 1, a.hash),
            None => (1, GENESIS),
        };
        let mut hashes_at = BTreeMap::new();
        if let Some(a) = &evidence.anchor {
            hashes_at.insert(a.n, a.hash);
        }
        Self {
            evidence,
            wanted,
            hashes_at,
            expected_n,
            prev,
            last_n: expected_n - 1,
            entries: 0,
            first_bad: None,
            evidence_checks,
            own,
            witnessed,
            anchor_checkpoint,
            resumptions,
            retention,
        }
    }

    /// Checks the next entry.
    pub fn push(&mut self, e: &RawEntry) {
        self.entries += 1;
        if self.wanted.contains(&e.n) {
            self.hashes_at.insert(e.n, e.hash);
        }
        self.last_n = e.n;
        if self.first_bad.is_some() {
            return;
        }
        let problem = if e.n > self.expected_n {
            Some((
                self.expected_n,
                format!(
                    "entries {}..{} are missing (entry {} follows entry {})",
                    self.expected_n,
                    e.n - 1,
                    e.n,
                    self.expected_n - 1
                ),
            ))
        } else if e.n < self.expected_n {
            Some((
                e.n,
                format!(
                    "entry {} appears again after entry {}",
                    e.n,
                    self.expected_n - 1
                ),
            ))
        } else if !e.hash_holds() {
            Some((
                e.n,
                format!(
                    "entry {} does not match its stored hash: its content was altered",
                    e.n
                ),
            ))
        } else if e.prev != self.prev {
            Some((
                e.n,
                format!(
                    "entry {} does not link to entry {}: an entry was replaced or removed",
                    e.n,
                    e.n.saturating_sub(1)
                ),
            ))
        } else if let Err(why) = Entry::decode(&e.body) {
            Some((e.n, format!("entry {}: {why}", e.n)))
        } else {
            None
        };
        match problem {
            Some(p) => self.first_bad = Some(p),
            None => {
                self.prev = e.hash;
                self.expected_n = e.n + 1;
            }
        }
    }

    /// Compares `cp` with the log; `Err` explains a mismatch.
    fn compare(&self, cp: &Checkpoint) -> Result<(), (u64, String)> {
        let anchor_n = self.evidence.anchor.as_ref().map_or(0, |a| a.n);
        if cp.size == 0 {
            return Ok(());
        }
        if cp.size > self.last_n {
            return Err((
                self.last_n + 1,
                format!(
                    "covers {} entries but the log ends at entry {}: entries {}..{} were removed",
                    cp.size,
                    self.last_n,
                    self.last_n + 1,
                    cp.size
                ),
            ));
        }
        if cp.size < anchor_n {
            // Pruned, under retention: nothing left to compare.
            return Ok(());
        }
        match self.hashes_at.get(&cp.size) {
            Some(h) if *h == cp.head => Ok(()),
            Some(_) => Err((
                cp.size,
                format!(
                    "says entry {} hashes to {}, the log holds something else: the log was rewritten at or before entry {}",
                    cp.size,
                    &super::hex(&cp.head)[..16],
                    cp.size
                ),
            )),
            None => Err((
                cp.size,
                format!("covers entry {}, which the log does not hold", cp.size),
            )),
        }
    }

    /// The verdicts.
    pub fn finish(self) -> Report {
        let mut checks = Vec::new();
        let mut first_bad: Option<u64> = None;
        let mut bad = |n: u64| first_bad = Some(first_bad.map_or(n, |f| f.min(n)));

        match &self.first_bad {
            Some((n, why)) => {
                bad(*n);
                checks.push(Check {
                    name: "hash chain".into(),
                    ok: false,
                    detail: why.clone(),
                });
            }
            None => checks.push(Check {
                name: "hash chain".into(),
                ok: true,
                detail: if self.entries == 0 {
                    "no entries".into()
                } else {
                    format!(
                        "{} entries, {}..{}, each linked to the one before",
                        self.entries,
                        self.last_n + 1 - self.entries,
                        self.last_n
                    )
                },
            }),
        }

        if let (Some(a), Some(opened)) = (&self.evidence.anchor, &self.anchor_checkpoint) {
            let resumed_here = self
                .resumptions
                .iter()
                .flatten()
                .any(|r| r.recovery.resumes.size == a.n);
            let verdict = match opened {
                Ok(cp) if cp.time_ms > self.evidence.now_ms + CLOCK_SKEW_MS => Err(format!(
                    "the anchor at entry {} was signed at {}, ahead of this verifier's clock ({}): \
                     the node's clock was set ahead when it pruned",
                    a.n,
                    rfc3339(cp.time_ms),
                    rfc3339(self.evidence.now_ms)
                )),
                Ok(cp) if cp.node == self.evidence.node && cp.size == a.n && cp.head == a.hash => {
                    if resumed_here {
                        Ok(format!(
                            "the log resumes after entry {}, the checkpoint of the lost log made at {} (see the recovery check)",
                            a.n,
                            rfc3339(cp.time_ms)
                        ))
                    } else {
                        let allowed = self.judge_retention(a);
                        match (allowed, self.pruned_too_young(a.n)) {
                            (Ok(by), None) => Ok(format!(
                                "pruned up to entry {}, signed at {}; {by}",
                                a.n,
                                rfc3339(cp.time_ms)
                            )),
                            (Ok(_), Some(young)) => Err(young),
                            (Err(why), None) => Err(why),
                            (Err(why), Some(young)) => Err(format!("{why}; {young}")),
                        }
                    }
                }
                Ok(_) => Err(format!(
                    "the anchor checkpoint does not describe entry {}",
                    a.n
                )),
                Err(e) => Err(e.clone()),
            };
            if verdict.is_err() {
                bad(a.n);
            }
            checks.push(Check {
                name: "retention anchor".into(),
                ok: verdict.is_ok(),
                detail: verdict.unwrap_or_else(|e| e),
            });
        }

        let anchor_n = self.evidence.anchor.as_ref().map_or(0, |a| a.n);
        for r in &self.resumptions {
            let verdict = match r {
                Err(e) => Err(e.clone()),
                Ok(r) => self.judge_resumption(r, anchor_n),
            };
            if verdict.is_err() {
                bad(r.as_ref().map_or(1, |r| r.recovery.resumes.size + 1));
            }
            checks.push(Check {
                name: "recovery of a lost log".into(),
                ok: verdict.is_ok(),
                detail: verdict.unwrap_or_else(|e| e),
            });
        }

        checks.extend(self.evidence_checks.iter().cloned());
        let mut own_problems = Vec::new();
        for Stamped { checkpoint: cp, .. } in &self.own {
            if let Err((n, why)) = self.compare(cp) {
                bad(n);
                own_problems.push(format!("checkpoint of {}: {why}", rfc3339(cp.time_ms)));
            }
        }
        checks.push(Check {
            name: "own checkpoints".into(),
            ok: own_problems.is_empty(),
            detail: if own_problems.is_empty() {
                match self.own.iter().max_by_key(|s| s.checkpoint.size) {
                    Some(latest) => format!(
                        "{} checkpoints agree; the latest covers {} entries, {}",
                        self.own.len(),
                        latest.checkpoint.size,
                        made_under(latest.roster)
                    ),
                    None => "none made yet".into(),
                }
            } else {
                own_problems.join("; ")
            },
        });

        for (peer, answer) in &self.witnessed {
            let name = format!("witnessed by {peer}");
            let ws = match answer {
                Ok(ws) => ws,
                Err(e) => {
                    checks.push(Check {
                        name,
                        ok: false,
                        detail: e.clone(),
                    });
                    continue;
                }
            };
            let mut problems = Vec::new();
            // The largest witnessed size that agrees, to bound a rewrite.
            let agreeing = ws
                .iter()
                .filter(|w| self.compare(&w.checkpoint).is_ok())
                .map(|w| w.checkpoint.size)
                .max()
                .unwrap_or(0);
            for w in ws {
                if let Err((n, why)) = self.compare(&w.checkpoint) {
                    // A rewrite (not a truncation) lies somewhere after the
                    // last checkpoint that still agrees.
                    let rewritten = w.checkpoint.size <= self.last_n;
                    let from = if rewritten && agreeing < n {
                        agreeing + 1
                    } else {
                        n
                    };
                    bad(from);
                    problems.push(format!(
                        "{peer} witnessed at {} a checkpoint that {why}",
                        rfc3339(w.witnessed_at_ms)
                    ));
                }
            }
            checks.push(Check {
                name,
                ok: problems.is_empty(),
                detail: if problems.is_empty() {
                    let before = ws
                        .iter()
                        .filter(|w| w.checkpoint.size < anchor_n)
                        .count();
                    let uncompared = if before == 0 {
                        String::new()
                    } else {
                        format!(
                            "; {before} precede the anchor at entry {anchor_n} and were not compared"
                        )
                    };
                    match ws.iter().max_by_key(|w| w.checkpoint.size) {
                        Some(w) => format!(
                            "{} checkpoints agree{uncompared}; the latest covers {} entries, {}, witnessed at {}",
                            ws.len() - before,
                            w.checkpoint.size,
                            made_under(w.roster),
                            rfc3339(w.witnessed_at_ms)
                        ),
                        None => "nothing witnessed yet".into(),
                    }
                } else {
                    problems.join("; ")
                },
            });
        }

        Report {
            node: self.evidence.node,
            size: self.last_n,
            entries: self.entries,
            first_bad,
            checks,
        }
    }
}

/// The roster a checkpoint was made under, as the report says it.
fn made_under(roster: Option<RosterStamp>) -> String {
    match roster {
        Some(r) => format!(
            "made under roster version {} ({})",
            r.version,
            &super::hex(&r.sha256)[..16]
        ),
        None => "made before checkpoints named their roster version".into(),
    }
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
