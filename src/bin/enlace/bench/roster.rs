//! `enlace bench roster`: how long a roster change takes to come into
//! force everywhere — from the approval that reaches the threshold to the
//! new version in force at every member of a five-member federation.
//!
//! Five members (gt, hn, sv, cr, pa), all in version 1: the threshold is
//! 3 of 5, for the version in force and for each proposed one. Each round
//! proposes the next version at one member (that member's name changed,
//! so that every version differs), two members approve it through their
//! own nodes, and the bench waits until every node holds the proposal,
//! pending, with both approvals. The clock starts just before the third
//! approval is sent to its member's own node; every node is then watched
//! in-process (its reload notifications, its store's durable watermark,
//! and a 1 ms tick) until the new version is in force there. For each
//! node the bench also notes when the deciding approval record is held
//! there and when the version's file appears in its own chain directory,
//! which splits its time into replication (the approval reaching it), the
//! governor's work (evaluating, then writing and syncing the version) and
//! the trust reload that brings the version into force. A file's
//! appearance is seen at the next tick, so that split is good to about a
//! millisecond. The approving node adopts before its
//! `ApproveRoster` call returns (the call evaluates); the others once the
//! approval has replicated to them. Proposer and approvers rotate from
//! round to round.
//!
//! NOTE: the five nodes and the bench's clients run in this one process
//! and share the machine's cores (and the store's process-wide transaction
//! gate), as in the other in-process benches; a deployment runs one node
//! per machine.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use serde_json::json;
use tokio::sync::{broadcast, watch};
use tokio_util::task::AbortOnDropHandle;

use enlace::node::Components;
use enlace::records::model::NodeId;
use enlace::store::Watermark;
use enlace::testing::{RunningNode, Sandbox};
use enlace::trust::chain::{Approval, Version, dir};
use enlace::trust::reload::ReloadOutcome;
use enlace::wire::pb::v1 as pb;
use enlace::wire::pb::v1::agency_client::AgencyClient;

use super::nodes::{load_settings, start_all, stop_all};
use super::report::{Report, Row, ms, percentile, round3};
use super::{FEDERATION, rpc};
use crate::failure::Spelled;

/// The federation's members, in the order their nodes start.
const MEMBERS: [&str; 5] = ["gt", "hn", "sv", "cr", "pa"];
/// Goal of the issue, to adoption at every member: reported, never asserted.
pub(super) const GOAL_MS: f64 = 2000.0;
/// How long a round's steps may take before the bench gives up.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a node is looked at besides its notifications.
const POLL: Duration = Duration::from_millis(1);
/// Loads of the configuration timed after the rounds.
const LOADS: usize = 5;

type Client = AgencyClient<tonic::transport::Channel>;

pub(super) async fn run(rounds: u64) -> anyhow::Result<Report> {
    let load_before = load_average();
    let mut sandbox = Sandbox::create(FEDERATION, &MEMBERS).await.spelled()?;
    let base = sandbox.found(&MEMBERS).spelled()?;
    let v1 = sandbox.roster().spelled()?;
    let nodes = start_all(&mut sandbox, &MEMBERS, Vec::new()).await?;
    let measured = measure(&sandbox, &nodes, &base, v1.position.hash, rounds).await;
    let stopped = stop_all(nodes).await;
    let rounds_seen = measured?;
    stopped?;
    let load_after = load_average();
    let load_ms = time_loads(&sandbox)?;

    let threshold = v1.position.threshold;
    let sorted = |f: &dyn Fn(&Round) -> f64| {
        let mut v: Vec<f64> = rounds_seen.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let every = sorted(&|r| r.last().1);
    let first = sorted(&|r| r.first().1);
    let call = sorted(&|r| r.call_ms);
    // The members other than the approving one: replication, then their
    // own work.
    let (mut replicated, mut governed, mut reloaded) = (Vec::new(), Vec::new(), Vec::new());
    for r in &rounds_seen {
        for m in r.members.iter().filter(|m| m.id != r.approver) {
            replicated.push(m.held_ms);
            governed.push(m.persisted_ms - m.held_ms);
            reloaded.push(m.adopted_ms - m.persisted_ms);
        }
    }
    for v in [&mut replicated, &mut governed, &mut reloaded] {
        v.sort_by(f64::total_cmp);
    }
    let last_of = |v: &[f64]| v.last().copied().unwrap_or(0.0);
    let median_max = |v: &[f64]| format!("{:.1} / {:.1} ms", percentile(v, 50.0), last_of(v));
    let (median, p90, max) = (
        percentile(&every, 50.0),
        percentile(&every, 90.0),
        last_of(&every),
    );
    let met = max <= GOAL_MS;

    let mut rows = vec![
        Row::new("to every member, median", format!("{median:.1} ms")),
        Row::new("to every member, p90", format!("{p90:.1} ms")),
        Row::new("to every member, max", format!("{max:.1} ms"))
            .target(format!("≤ {} s", GOAL_MS / 1000.0), met),
        Row::new(
            "to the first member, median",
            format!("{:.1} ms", percentile(&first, 50.0)),
        ),
        Row::new(
            "approving call (adopts there), median / max",
            median_max(&call),
        ),
        Row::new(
            "others: approval held, median / max",
            median_max(&replicated),
        ),
        Row::new(
            "others: held → persisted, median / max",
            median_max(&governed),
        ),
        Row::new(
            "others: persisted → in force, median / max",
            median_max(&reloaded),
        ),
        Row::new(
            "loading the configuration alone, median",
            format!("{:.1} ms", percentile(&load_ms, 50.0)),
        ),
    ];
    for r in &rounds_seen {
        let (first_id, first_ms) = r.first();
        let (last_id, last_ms) = r.last();
        rows.push(Row::new(
            format!(
                "round {}: v{}, {} approves",
                r.number, r.version, r.approver
            ),
            format!("{first_ms:.1} ({first_id}) … {last_ms:.1} ms ({last_id})"),
        ));
    }
    let mut notes = vec![
        "times run from just before the approval that reaches the threshold; \"held\": that approval record is in a member's store (replication); \"persisted\": the new version's file is in the member's own chain directory (the governor woke, evaluated, wrote and synced it); \"in force\": the trust reload installed it; others: the four members besides the approving one, every round".to_owned(),
        format!("the loading alone is gt's configuration, read and verified {LOADS} times after the rounds with the nodes stopped: a reload's first step"),
        format!(
            "load average (1, 5, 15 min) before: {}; after: {}",
            show_load(load_before),
            show_load(load_after)
        ),
    ];
    if rounds < 10 {
        notes.push("fewer than 10 rounds: the p90 is the max or close to it".to_owned());
    }
    let unadopted: Vec<String> = rounds_seen
        .iter()
        .filter(|r| r.call_state != "adopted")
        .map(|r| format!("round {}: {}", r.number, r.call_state))
        .collect();
    if !unadopted.is_empty() {
        notes.push(format!(
            "the approving call returned before its node adopted: {}",
            unadopted.join(", ")
        ));
    }
    Ok(Report {
        heading: format!(
            "roster — {rounds} roster changes on a {}-member federation ({}; threshold {threshold}): from the approval that reaches the threshold to the new version in force at every member",
            MEMBERS.len(),
            MEMBERS.join(", "),
        ),
        rows,
        notes,
        json: json!({
            "bench": "roster",
            "members": MEMBERS,
            "threshold": threshold,
            "rounds": rounds,
            "every_median_ms": round3(median),
            "every_p90_ms": round3(p90),
            "every_max_ms": round3(max),
            "first_median_ms": round3(percentile(&first, 50.0)),
            "approve_call_median_ms": round3(percentile(&call, 50.0)),
            "others_held_median_ms": round3(percentile(&replicated, 50.0)),
            "others_held_max_ms": round3(last_of(&replicated)),
            "others_held_to_persisted_median_ms": round3(percentile(&governed, 50.0)),
            "others_held_to_persisted_max_ms": round3(last_of(&governed)),
            "others_persisted_to_adopted_median_ms": round3(percentile(&reloaded, 50.0)),
            "others_persisted_to_adopted_max_ms": round3(last_of(&reloaded)),
            "config_load_median_ms": round3(percentile(&load_ms, 50.0)),
            "goal_ms": GOAL_MS,
            "goal_met": met,
            "load_average_before": load_before.map(|l| vec![l.0, l.1, l.2]),
            "load_average_after": load_after.map(|l| vec![l.0, l.1, l.2]),
            "per_round": rounds_seen.iter().map(|r| json!({
                "round": r.number,
                "version": r.version,
                "proposer": r.proposer,
                "approver": r.approver,
                "approve_call_ms": round3(r.call_ms),
                "approve_call_state": r.call_state,
                "first_ms": round3(r.first().1),
                "every_ms": round3(r.last().1),
                "members": r.members.iter().map(|m| json!({
                    "id": m.id,
                    "held_ms": round3(m.held_ms),
                    "persisted_ms": round3(m.persisted_ms),
                    "adopted_ms": round3(m.adopted_ms),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }),
    })
}

/// One roster change as measured.
struct Round {
    number: u64,
    /// The version it brought into force.
    version: u64,
    proposer: &'static str,
    /// The member whose approval reached the threshold.
    approver: &'static str,
    /// Its `ApproveRoster` call, in ms.
    call_ms: f64,
    /// The proposal's state in the call's answer.
    call_state: String,
    members: Vec<MemberTimes>,
}

impl Round {
    /// The member that had the version in force first, and when.
    fn first(&self) -> (&'static str, f64) {
        self.members
            .iter()
            .map(|m| (m.id, m.adopted_ms))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or(("", 0.0))
    }

    /// The member that had it last, and when: the round's figure.
    fn last(&self) -> (&'static str, f64) {
        self.members
            .iter()
            .map(|m| (m.id, m.adopted_ms))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or(("", 0.0))
    }
}

/// When, after the deciding approval was sent, a member held it, had
/// persisted the new version and had it in force (ms).
struct MemberTimes {
    id: &'static str,
    held_ms: f64,
    persisted_ms: f64,
    adopted_ms: f64,
}

async fn measure(
    sandbox: &Sandbox,
    nodes: &[RunningNode],
    base: &str,
    v1: [u8; 32],
    rounds: u64,
) -> anyhow::Result<Vec<Round>> {
    let mut clients = Vec::new();
    for id in MEMBERS {
        clients.push(sandbox.client(id).await.spelled()?);
    }
    let mut previous = v1;
    let mut out = Vec::new();
    for number in 1..=rounds {
        let k = ((number - 1) % MEMBERS.len() as u64) as usize;
        let (first, second, deciding) = (k, (k + 1) % MEMBERS.len(), (k + 2) % MEMBERS.len());
        let proposer = MEMBERS[first];
        let text = base.replace(
            &format!("name = \"Sandbox member {proposer}\""),
            &format!("name = \"Sandbox member {proposer}, round {number}\""),
        );
        if text == base {
            bail!("the roster source names no \"Sandbox member {proposer}\" to change");
        }
        let version = sandbox
            .compile_roster(&text, number + 1, Some(previous))
            .spelled()?;
        let hash = version.hash();
        clients[first]
            .propose_roster(pb::ProposeRosterRequest {
                version: version.bytes.to_vec(),
            })
            .await
            .map_err(rpc)?;
        held_everywhere(nodes, &hash, &[]).await?;
        for i in [first, second] {
            approve(&mut clients[i], sandbox, MEMBERS[i], &hash).await?;
        }
        held_everywhere(nodes, &hash, &[MEMBERS[first], MEMBERS[second]]).await?;

        // The third approval reaches the threshold: watch every node from
        // just before it is sent.
        let approver = NodeId::parse(MEMBERS[deciding]).map_err(anyhow::Error::msg)?;
        let before = nodes[deciding].components.store.records().count(&approver);
        let signed =
            Approval::sign(&sandbox.governance_key(MEMBERS[deciding]).spelled()?, &hash).to_pb();
        let deadline = Instant::now() + STEP_TIMEOUT;
        let watchers: Vec<_> = nodes
            .iter()
            .map(|n| {
                let w = Watch::new(&n.components, approver.clone(), before, &version);
                AbortOnDropHandle::new(tokio::spawn(w.run(deadline)))
            })
            .collect();
        let t0 = Instant::now();
        let answer = clients[deciding]
            .approve_roster(pb::ApproveRosterRequest {
                approval: Some(signed),
            })
            .await
            .map_err(rpc)?
            .into_inner();
        let call = t0.elapsed();
        let mut members = Vec::new();
        for (id, w) in MEMBERS.iter().zip(watchers) {
            let seen = w.await.spelled()??;
            members.push(MemberTimes {
                id,
                held_ms: ms(seen.held.saturating_duration_since(t0)),
                persisted_ms: ms(seen.persisted.saturating_duration_since(t0)),
                adopted_ms: ms(seen.adopted.saturating_duration_since(t0)),
            });
        }
        out.push(Round {
            number,
            version: version.number(),
            proposer,
            approver: MEMBERS[deciding],
            call_ms: ms(call),
            call_state: answer.state,
            members,
        });
        previous = hash;
    }
    Ok(out)
}

/// `by`'s approval of the proposal `hash`, sent to its own node.
async fn approve(
    client: &mut Client,
    sandbox: &Sandbox,
    by: &str,
    hash: &[u8; 32],
) -> anyhow::Result<()> {
    let approval = Approval::sign(&sandbox.governance_key(by).spelled()?, hash);
    client
        .approve_roster(pb::ApproveRosterRequest {
            approval: Some(approval.to_pb()),
        })
        .await
        .map_err(rpc)?;
    Ok(())
}

/// Waits until every node holds the proposal `hash`, pending, approved by
/// exactly `approvers`.
async fn held_everywhere(
    nodes: &[RunningNode],
    hash: &[u8; 32],
    approvers: &[&str],
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let lacking: Vec<&str> = nodes
            .iter()
            .filter(|n| {
                !n.components.governor.proposals().iter().any(|p| {
                    p.id == *hash
                        && p.state == enlace::governance::State::Pending
                        && p.approved_by
                            .iter()
                            .map(NodeId::as_str)
                            .collect::<BTreeSet<_>>()
                            == approvers.iter().copied().collect()
                })
            })
            .map(|n| n.id.as_str())
            .collect();
        if lacking.is_empty() {
            return Ok(());
        }
        if started.elapsed() > STEP_TIMEOUT {
            bail!(
                "{} did not hold the proposal, pending, approved by [{}], within {STEP_TIMEOUT:?}",
                lacking.join(", "),
                approvers.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// What one node is watched for during a round.
struct Watch {
    node: Components,
    approver: NodeId,
    /// The approver's records held before its deciding approval.
    before: usize,
    target: [u8; 32],
    /// Where the node persists the version before bringing it into force.
    file: PathBuf,
    reloads: broadcast::Receiver<ReloadOutcome>,
    durable: watch::Receiver<Watermark>,
}

/// When a node held the deciding approval, had persisted the version,
/// and had it in force.
struct Seen {
    held: Instant,
    persisted: Instant,
    adopted: Instant,
}

impl Watch {
    /// Subscribes now, before the approval is sent.
    fn new(node: &Components, approver: NodeId, before: usize, version: &Version) -> Self {
        Self {
            node: node.clone(),
            approver,
            before,
            target: version.hash(),
            file: dir::adopted_dir(node.trust.data_dir()).join(dir::file_name(version.number())),
            reloads: node.trust.subscribe(),
            durable: node.store.subscribe(),
        }
    }

    async fn run(mut self, deadline: Instant) -> anyhow::Result<Seen> {
        let id = self.node.id.clone();
        let (mut held, mut persisted) = (None, None);
        loop {
            self.durable.borrow_and_update();
            let now = Instant::now();
            if held.is_none() && self.node.store.records().count(&self.approver) > self.before {
                held = Some(now);
            }
            if persisted.is_none() && self.file.exists() {
                persisted = Some(now);
            }
            if self.node.trust.roster().position.hash == self.target {
                let persisted = persisted.unwrap_or(now);
                return Ok(Seen {
                    held: held.unwrap_or(persisted),
                    persisted,
                    adopted: now,
                });
            }
            if now > deadline {
                bail!(
                    "{id} did not bring the new roster version into force within {STEP_TIMEOUT:?} of the approval{}",
                    if held.is_some() {
                        " (it held the approval)"
                    } else {
                        " (nor held the approval)"
                    }
                );
            }
            tokio::select! {
                r = self.reloads.recv() => {
                    if let Err(broadcast::error::RecvError::Closed) = r {
                        bail!("{id}'s trust reloads ended");
                    }
                }
                r = self.durable.changed() => r.map_err(|_| anyhow!("{id}'s store closed"))?,
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }
}

/// Times loading gt's configuration (what a reload reads and verifies:
/// the configuration, every certificate, the chain of versions), in ms,
/// sorted.
fn time_loads(sandbox: &Sandbox) -> anyhow::Result<Vec<f64>> {
    let mut out = Vec::with_capacity(LOADS);
    for _ in 0..LOADS {
        let started = Instant::now();
        load_settings(sandbox, MEMBERS[0])?;
        out.push(ms(started.elapsed()));
    }
    out.sort_by(f64::total_cmp);
    Ok(out)
}

/// The machine's load averages (1, 5, 15 minutes), where Linux tells.
fn load_average() -> Option<(f64, f64, f64)> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut v = text.split_whitespace().map(|f| f.parse::<f64>().ok());
    Some((v.next()??, v.next()??, v.next()??))
}

fn show_load(l: Option<(f64, f64, f64)>) -> String {
    l.map_or("unknown".to_owned(), |(a, b, c)| {
        format!("{a:.2}, {b:.2}, {c:.2}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_names_its_first_and_last_member() {
        let r = Round {
            number: 1,
            version: 2,
            proposer: "gt",
            approver: "sv",
            call_ms: 1.0,
            call_state: "adopted".into(),
            members: vec![
                MemberTimes {
                    id: "gt",
                    held_ms: 2.0,
                    persisted_ms: 5.0,
                    adopted_ms: 9.0,
                },
                MemberTimes {
                    id: "sv",
                    held_ms: 0.5,
                    persisted_ms: 0.8,
                    adopted_ms: 1.0,
                },
                MemberTimes {
                    id: "pa",
                    held_ms: 3.0,
                    persisted_ms: 10.0,
                    adopted_ms: 12.0,
                },
            ],
        };
        assert_eq!(r.first(), ("sv", 1.0));
        assert_eq!(r.last(), ("pa", 12.0));
    }
}
