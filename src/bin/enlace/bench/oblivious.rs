//! `enlace bench oblivious`: what oblivious hit/no-hit costs
//! (`docs/selectors.md`) — how long an agency waits for a query asked of
//! every member, and how big a member's match filter is and how long it
//! takes to reach a peer.
//!
//! The query part (one report per federation size): one querier and N
//! members, every one a real node in this process. The querier's budget
//! at each member is raised ([`BUDGET`]): the default, 120 identifiers a
//! minute per peer, refuses the eighth query of 16 identifiers within a
//! minute. One member, m001 (the holder), registers a case with two of
//! the identifiers every query asks, so each query hits there and the
//! querier confirms; the other fourteen identifiers of a query are new
//! each time and hit nowhere. Before the clock runs, the querier holds a
//! complete filter of every member and the holder's two entries (waited
//! for with a deadline), and two warm-up queries have set up every
//! connection; the first is checked to have asked every member
//! obliviously (the querier's audit log says so per member). Each timed
//! query is the agency `Query` RPC at the querier, one after the other:
//! Evaluate at every member, the proof checked, the filter looked in,
//! Confirm at the holder. Every answer is checked (a hit at the holder on
//! the held identifiers, no hit elsewhere); an unreachable or refused
//! member is counted, not hidden. To see where the time goes, one
//! member's share of the OPRF work is also timed alone on one thread, and
//! after each query the bench makes the same calls itself with each
//! member's share on a task of its own ([`fanout`]).
//!
//! The filter part ([`filter`]): gt registers local cases through its
//! agency API until it holds the bench's number of identifiers while hn
//! runs; the records gt published and their bytes against the fewest that
//! could carry them, the time until hn's view holds every entry, hn's disk
//! growth; then a member that had not run, sv, starts: its replication of
//! the records and its first query, which catches its view up on them.
//!
//! NOTE: as in the other in-process benches, every node and the bench's
//! clients share this machine's cores and the store's process-wide
//! transaction gate (every durable audit entry of every node goes through
//! it, one at a time); a deployment runs one node per machine. With 50
//! members that is 51 nodes on this machine's cores: the figures are, if
//! anything, pessimistic. The peers' TLS listeners limit handshakes in
//! progress per source address, and here every node dials from
//! 127.0.0.1: while 51 nodes start, some connections are shed and retried
//! (warnings on stderr), which a federation of separate hosts does not see.

mod fanout;
mod filter;

pub(super) use filter::run as filter;

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;

use enlace::components::Components;
use enlace::records::model::NodeId;
use enlace::records::vocabulary::{Offence, SelectorKind};
use enlace::testing::{RunningNode, Sandbox};
use enlace::wire::pb::v1 as pb;
use enlace::wire::pb::v1::agency_client::AgencyClient;

use super::nodes::{load_settings, machine_cpu, proc_status_kib, process_cpu, start_all, stop_all};
use super::report::{Report, Row, cores, cpus, mib, ms, percentile, round2, round3};
use super::{FEDERATION, rpc};
use crate::failure::Spelled;
use fanout::OprfCost;

type Client = AgencyClient<tonic::transport::Channel>;

/// The querying member's node id.
const QUERIER: &str = "querier";
/// Identifiers per query: the most a query may ask (`query.max_selectors`).
const SELECTORS: usize = 16;
/// The identifiers every query asks that the holder's case holds.
const HELD: [(SelectorKind, &str); 2] = [
    (SelectorKind::Passport, "HB0000001"),
    (SelectorKind::Phone, "+50499990001"),
];
/// Untimed queries before the clock runs.
const WARMUP: u64 = 2;
/// Where the numbers of the bench's own fan-out's identifiers start, so
/// that they differ from the queries'.
const SPAWNED_FROM: u64 = 50_000;
/// What the bench adds after `deadline_ms` in each member's `[query]`:
/// budgets no run of the bench reaches, so that nothing is refused for
/// the rate.
const BUDGET: &str = "evaluations_per_minute = 100000\nmax_per_minute = 100000\n";
/// The justification of the bench's queries.
const JUSTIFICATION: &str = "enlace bench: latencia de consulta";
/// How often a condition waited for is looked at.
const POLL: Duration = Duration::from_millis(10);

pub(super) async fn query(members: u64, rounds: u64) -> anyhow::Result<Report> {
    let ids = federation(members);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut sandbox = Sandbox::create(FEDERATION, &refs).await.spelled()?;
    raise_budgets(&sandbox, &refs)?;
    let started = Instant::now();
    let nodes = start_all(&mut sandbox, &refs, Vec::new()).await?;
    let start_s = started.elapsed().as_secs_f64();
    let measured = measure_queries(&sandbox, &nodes, members, rounds).await;
    let rss_kib = proc_status_kib(std::process::id(), "VmRSS").unwrap_or(0);
    let stopped = stop_all(nodes).await;
    let m = measured?;
    stopped?;
    let cost = OprfCost::measure()?;
    Ok(query_report(members, rounds, start_s, rss_kib, &m, &cost))
}

/// The querier first, then members `m001`, `m002`, …; `m001` is the holder.
fn federation(members: u64) -> Vec<String> {
    std::iter::once(QUERIER.to_owned())
        .chain((1..=members).map(member))
        .collect()
}

fn member(i: u64) -> String {
    format!("m{i:03}")
}

/// Gives every member the bench's evaluation and query budget.
fn raise_budgets(sandbox: &Sandbox, ids: &[&str]) -> anyhow::Result<()> {
    const AFTER: &str = "deadline_ms = 3000\n";
    for id in ids {
        let path = sandbox.member(id).spelled()?.config_path();
        let text = std::fs::read_to_string(&path).spelled()?;
        if !text.contains(AFTER) {
            bail!(
                "{}'s node.toml has no {AFTER:?} to add the budget after",
                id
            );
        }
        std::fs::write(&path, text.replace(AFTER, &format!("{AFTER}{BUDGET}"))).spelled()?;
    }
    Ok(())
}

/// What the query part measured.
struct Queries {
    deadline: Duration,
    /// In force at the holder.
    evaluations_per_minute: u32,
    /// From the holder's case registered to every filter complete at the querier.
    filters_ready_s: f64,
    rounds: Rounds,
    /// Confirmations with a hit the holder audited during the rounds.
    confirmed: usize,
}

/// The timed queries.
#[derive(Default)]
struct Rounds {
    /// Query RPC round trips, sorted, in ms.
    latency_ms: Vec<f64>,
    /// The bench's own fan-out after each ([`fanout::spawned`]), sorted, in ms.
    spawned_ms: Vec<f64>,
    /// Cores this process kept busy during the queries.
    cores: f64,
    /// Cores the machine's other processes kept busy meanwhile.
    others: f64,
    tally: Tally,
}

async fn measure_queries(
    sandbox: &Sandbox,
    nodes: &[RunningNode],
    members: u64,
    rounds: u64,
) -> anyhow::Result<Queries> {
    let (querier, holder) = (node(nodes, QUERIER)?, node(nodes, &member(1))?);
    let deadline = load_settings(sandbox, QUERIER)?.query.deadline;
    let evaluations_per_minute = load_settings(sandbox, holder.id.as_str())?
        .query
        .evaluations_per_minute;
    let mut holder_client = sandbox.client(holder.id.as_str()).await.spelled()?;
    register_case(&mut holder_client, "MP-BENCH-HELD", held()).await?;
    let waited = Instant::now();
    let wait_for = Duration::from_secs(60) + Duration::from_secs(members);
    filters_complete(querier, nodes, &holder.id, HELD.len() as u64, wait_for).await?;
    let filters_ready_s = waited.elapsed().as_secs_f64();

    let mut client = sandbox.client(QUERIER).await.spelled()?;
    for w in 0..WARMUP {
        let r = ask(&mut client, selectors(w)).await?;
        if w == 0 {
            asked_obliviously(&querier.components, &r.query_id, members)?;
        }
    }
    let confirmed_before = confirmations(&holder.components)?;
    let timed = time_rounds(&mut client, querier, holder, members, rounds).await?;
    Ok(Queries {
        deadline,
        evaluations_per_minute,
        filters_ready_s,
        rounds: timed,
        confirmed: confirmations(&holder.components)? - confirmed_before,
    })
}

/// `rounds` queries one after the other, each followed by the bench's
/// own fan-out of the same size.
async fn time_rounds(
    client: &mut Client,
    querier: &RunningNode,
    holder: &RunningNode,
    members: u64,
    rounds: u64,
) -> anyhow::Result<Rounds> {
    let mut out = Rounds::default();
    let (mut busy, mut others, mut timed) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for round in 0..rounds {
        let asked = selectors(WARMUP + round);
        let (cpu_before, machine_before) = (process_cpu()?, machine_cpu()?);
        let sent = Instant::now();
        let r = ask(client, asked).await?;
        let took = sent.elapsed();
        let own = process_cpu()?.saturating_sub(cpu_before);
        busy += own;
        others += machine_cpu()?
            .saturating_sub(machine_before)
            .saturating_sub(own);
        timed += took;
        out.latency_ms.push(ms(took));
        out.tally.add(&r, holder.id.as_str(), members as usize);
        let asked = selectors(SPAWNED_FROM + round);
        let spawned = fanout::spawned(querier, &holder.id, &asked, round).await?;
        out.spawned_ms.push(spawned);
    }
    out.cores = cores(Duration::ZERO, busy, timed);
    out.others = cores(Duration::ZERO, others, timed);
    out.latency_ms.sort_by(f64::total_cmp);
    out.spawned_ms.sort_by(f64::total_cmp);
    Ok(out)
}

fn node<'a>(nodes: &'a [RunningNode], id: &str) -> anyhow::Result<&'a RunningNode> {
    nodes
        .iter()
        .find(|n| n.id.as_str() == id)
        .with_context(|| format!("{id} is not running"))
}

fn value(kind: SelectorKind, v: &str) -> pb::SelectorValue {
    pb::SelectorValue {
        kind: kind.wire(),
        value: v.into(),
    }
}

fn held() -> Vec<pb::SelectorValue> {
    HELD.iter().map(|(k, v)| value(*k, v)).collect()
}

/// Query number `n`'s identifiers: the held ones first, then fourteen
/// passports and phones no query asked before.
fn selectors(n: u64) -> Vec<pb::SelectorValue> {
    selectors_with(held(), n)
}

/// `held` first, then new passports and phones up to [`SELECTORS`].
fn selectors_with(held: Vec<pb::SelectorValue>, n: u64) -> Vec<pb::SelectorValue> {
    let mut out = held;
    for i in 0..SELECTORS.saturating_sub(out.len()) as u64 {
        out.push(if i % 2 == 0 {
            value(SelectorKind::Passport, &format!("QB{n:05}{i:02}"))
        } else {
            value(SelectorKind::Phone, &format!("+5037{n:05}{i:02}"))
        });
    }
    out
}

async fn register_case(
    client: &mut Client,
    number: &str,
    selector_values: Vec<pb::SelectorValue>,
) -> anyhow::Result<()> {
    client
        .register_case(pb::RegisterCaseRequest {
            case: Some(pb::LocalCase {
                case_number: number.into(),
                offence: Offence::Trafficking.wire(),
                ..Default::default()
            }),
            selector_values,
        })
        .await
        .map_err(rpc)?;
    Ok(())
}

async fn ask(
    client: &mut Client,
    selector_values: Vec<pb::SelectorValue>,
) -> anyhow::Result<pb::QueryResponse> {
    Ok(client
        .query(pb::QueryRequest {
            selector_values,
            justification: JUSTIFICATION.into(),
            ..Default::default()
        })
        .await
        .map_err(rpc)?
        .into_inner())
}

/// Waits until `at` holds a complete filter of every other node, and at
/// least `entries` entries of `holder`'s. Looking catches the view up on
/// the records held, as a query does.
async fn filters_complete(
    at: &RunningNode,
    nodes: &[RunningNode],
    holder: &NodeId,
    entries: u64,
    timeout: Duration,
) -> anyhow::Result<()> {
    let mut waiting: Vec<NodeId> = nodes
        .iter()
        .filter(|n| n.id != at.id)
        .map(|n| n.id.clone())
        .collect();
    let deadline = Instant::now() + timeout;
    loop {
        let mut left = Vec::new();
        for peer in waiting {
            let epoch = at.components.cases.filter_epoch(&peer).await.spelled()?;
            let enough = peer != *holder
                || at.components.store.filters().peer_count(&peer).spelled()? >= entries;
            if epoch.is_none() || !enough {
                left.push(peer);
            }
        }
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            let names: Vec<&str> = left.iter().map(NodeId::as_str).collect();
            bail!(
                "{} held no complete filter of {} within {timeout:?}",
                at.id,
                names.join(", ")
            );
        }
        waiting = left;
        tokio::time::sleep(POLL).await;
    }
}

/// The querier's audit log must say it asked every member of query
/// `query_id` obliviously.
fn asked_obliviously(querier: &Components, query_id: &str, members: u64) -> anyhow::Result<()> {
    let oblivious = recent_audit(querier, 4 * members as usize + 16)?
        .iter()
        .filter(|e| {
            e.action == "query_result"
                && e.ids.iter().any(|i| i == query_id)
                && e.result.contains("(oblivious, epoch")
        })
        .count();
    if oblivious as u64 != members {
        bail!("the querier asked {oblivious} of {members} members obliviously");
    }
    Ok(())
}

/// The holder's confirmations with a hit of the querier's queries so far
/// (not of the bench's own fan-out).
fn confirmations(holder: &Components) -> anyhow::Result<usize> {
    let last = holder.store.watermark().audit;
    let entries = recent_audit(holder, last as usize)?;
    let query = format!("q-{QUERIER}-");
    Ok(entries
        .iter()
        .filter(|e| {
            e.action == "query_confirmed"
                && e.result.ends_with(": hit")
                && e.ids.iter().any(|i| i.starts_with(&query))
        })
        .count())
}

/// The last `n` durable entries of a node's audit log.
fn recent_audit(node: &Components, n: usize) -> anyhow::Result<Vec<enlace::audit::Entry>> {
    let last = node.store.watermark().audit;
    node.store
        .audit()
        .entries(last.saturating_sub(n as u64), n)
        .spelled()?
        .iter()
        .map(|e| enlace::audit::Entry::decode(&e.body).map_err(anyhow::Error::msg))
        .collect()
}

/// Every member's answers over the rounds.
#[derive(Debug, Default)]
struct Tally {
    hits: u64,
    no_hits: u64,
    unreachable: u64,
    refused: u64,
    /// Answers that are not what the members hold, or missing answers.
    wrong: u64,
    first_problem: Option<String>,
}

impl Tally {
    fn add(&mut self, r: &pb::QueryResponse, holder: &str, members: usize) {
        if r.answers.len() != members {
            self.wrong += 1;
            self.problem(format!("{} answers for {members} members", r.answers.len()));
        }
        let expected: Vec<bool> = (0..SELECTORS).map(|i| i < HELD.len()).collect();
        for a in &r.answers {
            let result = pb::QueryResult::try_from(a.result).unwrap_or_default();
            match result {
                pb::QueryResult::Hit if a.peer == holder && a.hits == expected => self.hits += 1,
                pb::QueryResult::NoHit if a.peer != holder => self.no_hits += 1,
                pb::QueryResult::Unreachable => {
                    self.unreachable += 1;
                    self.problem(format!("{} unreachable: {}", a.peer, a.reason));
                }
                pb::QueryResult::Refused => {
                    self.refused += 1;
                    self.problem(format!("{} refused: {}", a.peer, a.reason));
                }
                other => {
                    self.wrong += 1;
                    self.problem(format!("{} answered {other:?} ({:?})", a.peer, a.hits));
                }
            }
        }
    }

    fn problem(&mut self, p: String) {
        self.first_problem.get_or_insert(p);
    }

    fn clean(&self) -> bool {
        self.unreachable + self.refused + self.wrong == 0
    }
}

fn query_report(
    members: u64,
    rounds: u64,
    start_s: f64,
    rss_kib: u64,
    m: &Queries,
    cost: &OprfCost,
) -> Report {
    let (r, t) = (&m.rounds, &m.rounds.tally);
    let last = |v: &[f64]| v.last().copied().unwrap_or(0.0);
    let v = &r.latency_ms;
    let (p50, p90, max) = (percentile(v, 50.0), percentile(v, 90.0), last(v));
    let deadline_ms = ms(m.deadline);
    let within = max <= deadline_ms && t.clean();
    let querier_oprf = members as f64 * (cost.blind_ms + cost.finalize_ms);
    let (spawned_p50, spawned_max) = (percentile(&r.spawned_ms, 50.0), last(&r.spawned_ms));
    let mut notes = vec![
        format!(
            "{} nodes in this process on {} cores: the querier and {members} members; {SELECTORS} identifiers a query, {} of them held by m001 (a hit and a Confirm every query), the other {} new each query",
            members + 1,
            cpus(),
            HELD.len(),
            SELECTORS - HELD.len()
        ),
        format!(
            "each member's [query] raised to evaluations_per_minute = 100000 and max_per_minute = 100000 (the default, 120 identifiers a minute per peer, allows 7 queries of {SELECTORS} a minute); in force at m001: {}",
            m.evaluations_per_minute
        ),
        format!(
            "OPRF work of one member's share, on one thread (median of {}): the querier blinds {SELECTORS} identifiers in {:.2} ms and checks the proof and unblinds in {:.2} ms; the member evaluates with its proof in {:.2} ms",
            OprfCost::REPS,
            cost.blind_ms,
            cost.finalize_ms,
            cost.evaluate_ms
        ),
        "a query polls every member's share within the one task of its agency call, so the querier's OPRF work is done one member after the other; the bench-side fan-out makes the same Evaluate and Confirm calls with a task per member (no catch-up, no audit at the querier), right after each query".to_owned(),
    ];
    if let Some(p) = &t.first_problem {
        notes.push(format!("first problem: {p}"));
    }
    if rounds < 10 {
        notes.push("fewer than 10 rounds: the p90 is the max or close to it".to_owned());
    }
    Report {
        heading: format!(
            "oblivious query — {rounds} queries of {SELECTORS} identifiers from the querier to {members} members (Evaluate at each, Confirm at the holder)"
        ),
        rows: vec![
            Row::new("median", format!("{p50:.1} ms")),
            Row::new("p90", format!("{p90:.1} ms")),
            Row::new("max", format!("{max:.1} ms")).target(
                format!("≤ deadline {deadline_ms:.0} ms, every member answered"),
                within,
            ),
            Row::new(
                "answers: hit / no hit / unreachable / refused / wrong",
                format!(
                    "{} / {} / {} / {} / {}",
                    t.hits, t.no_hits, t.unreachable, t.refused, t.wrong
                ),
            ),
            Row::new("confirmations with a hit at m001", m.confirmed.to_string()),
            Row::new(
                "querier's OPRF work a query (members × (blind + finalize))",
                format!("{querier_oprf:.1} ms"),
            ),
            Row::new(
                "same calls, a task per member (bench-side): median / max",
                format!("{spawned_p50:.1} / {spawned_max:.1} ms"),
            ),
            Row::new(
                "cores busy during the queries: this process / others",
                format!("{:.2} / {:.2} of {}", r.cores, r.others, cpus()),
            ),
            Row::new(
                "start of the nodes / filters complete at the querier",
                format!("{start_s:.1} s / {:.1} s", m.filters_ready_s),
            ),
            Row::new(
                "RSS of the process, the nodes running",
                format!("{:.0} MiB", mib(rss_kib)),
            ),
        ],
        notes,
        json: json!({
            "bench": "oblivious-query",
            "members": members,
            "nodes": members + 1,
            "selectors": SELECTORS,
            "held": HELD.len(),
            "rounds": rounds,
            "median_ms": round3(p50),
            "p90_ms": round3(p90),
            "max_ms": round3(max),
            "deadline_ms": deadline_ms,
            "within_deadline": within,
            "hits": t.hits,
            "no_hits": t.no_hits,
            "unreachable": t.unreachable,
            "refused": t.refused,
            "wrong": t.wrong,
            "first_problem": t.first_problem,
            "confirmations": m.confirmed,
            "evaluations_per_minute": m.evaluations_per_minute,
            "oprf_blind_ms": round3(cost.blind_ms),
            "oprf_evaluate_ms": round3(cost.evaluate_ms),
            "oprf_finalize_ms": round3(cost.finalize_ms),
            "querier_oprf_ms": round3(querier_oprf),
            "spawned_median_ms": round3(spawned_p50),
            "spawned_max_ms": round3(spawned_max),
            "cores_busy": round2(r.cores),
            "other_processes_cores_busy": round2(r.others),
            "cores": cpus(),
            "start_s": round3(start_s),
            "filters_ready_s": round3(m.filters_ready_s),
            "rss_mib": round2(mib(rss_kib)),
        }),
    }
}

#[cfg(test)]
mod tests;
