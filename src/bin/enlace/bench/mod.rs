//! `enlace bench`: the federation's performance figures, measured on this
//! machine with the real thing — nodes on loopback with real mTLS, real
//! gRPC and durable sled stores in temporary directories (removed at the
//! end). Run it from a release build; a debug build says so and is slow.
//!
//! What is measured, and how:
//!
//! - `verify-limit`: Ed25519 record verifications per second on one thread
//!   ([`enlace::records::crypto::verify_record`], ring), over a few thousand distinct records
//!   of the bench's size (an alert whose encoded `RecordBody` is about
//!   [`BODY_BYTES`](records::BODY_BYTES) bytes), for at least a second. Also the rate of body
//!   decoding, the other per-record cost of the verification gate.
//! - `replicate`: N records are bulk-loaded into member A's store before any
//!   node starts, signed by A's key exactly as its publish path would sign
//!   them; then A and B start and the clock runs from B's start until B's
//!   durable cursor for A reaches N. Records per second, and their ratio to
//!   the verify limit measured in the same run.
//! - `latency`: three members; the two peers watch their agency API; A
//!   publishes through its agency API at a steady rate (each publish is
//!   issued on schedule, not after the previous one returns). Latency is
//!   the time from just before a publish call to the moment the record
//!   arrives on a peer's watch stream, for both peers.
//! - `publish`: one node; many concurrent agency clients (over a few mTLS
//!   channels) publish for a fixed time; every success is durable.
//! - `memory`: N records are bulk-loaded into a member's store, then the
//!   node runs as a separate process (`enlace node run`); idle RSS once it
//!   has settled, then peak RSS (VmHWM) after it has listed 10 000 records
//!   to an agency client and served 10 000 records to a peer's pull.
//! - `roster`: five members, threshold 3 of 5; each round proposes the next
//!   roster version, two members approve it through their own nodes, and
//!   once every node holds those two approvals the clock runs from just
//!   before the third approval (the one that reaches the threshold) until
//!   the new version is in force at every member, each node watched
//!   in-process. Median, p90 and max over the rounds, and where the time
//!   goes (the approval replicating, each member's own adoption).
//! - `oblivious`: oblivious hit/no-hit (`docs/selectors.md`). A querier and
//!   N members (3 and 50 by default, each a federation of its own): the
//!   agency `Query` round trip with 16 identifiers, Evaluate at every
//!   member and Confirm at the one that holds two of them, median, p90 and
//!   max against the query deadline. Then one member registers 100 000
//!   identifiers through its agency API: its filter records and their
//!   bytes, the time until a peer's view holds every entry, the peer's
//!   disk growth, and a new member's first query. Details in the module.
//!
//! To tell a CPU-bound figure from a serialised one, `replicate` and
//! `publish` also report how many cores the process kept busy, and
//! `replicate` measures the store's own ceiling: a replicator's store work
//! alone (lookups, then one transaction and one flush per pull batch) into
//! a scratch store, with no network and no verification.
//!
//! NOTE: `replicate`, `latency`, `publish`, `roster` and `oblivious` run
//! their nodes and their clients in this one process, as the integration
//! tests do. The nodes therefore share the machine's cores with each other
//! and with the load generator, and share the store's process-wide
//! transaction gate (see [`enlace::store`]); a deployment runs one node per
//! machine. The figures are, if anything, pessimistic.

mod latency;
mod memory;
mod nodes;
mod oblivious;
mod publish;
mod records;
mod replicate;
mod report;
mod roster;
mod verify_limit;

use clap::{Args, Subcommand};
use serde_json::Value;

use enlace::config::LogFormat;

use report::Report;

/// The sandbox federation's name.
const FEDERATION: &str = "enlace-bench";

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    which: BenchCommand,
    /// Print JSON (one object per bench; `all` prints an array) instead of tables.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Ed25519 record verifications per second on one core.
    VerifyLimit,
    /// How fast a node catches up on records published at a peer.
    Replicate {
        /// Records published at A before B starts.
        #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
        records: u64,
    },
    /// Publish-to-visible time at both peers of a three-member federation.
    Latency {
        /// Alerts to publish.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        alerts: u64,
        /// Alerts per second.
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        rate: u64,
    },
    /// Durable publishes per second through the agency API.
    Publish {
        /// Concurrent clients.
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
        clients: u64,
        /// How long to publish.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
        seconds: u64,
    },
    /// Idle and peak RSS of a node process that holds many records.
    Memory {
        /// Records the node holds.
        #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
        records: u64,
    },
    /// Approval reaching the threshold to the new roster version in force at
    /// every member of a five-member federation.
    Roster {
        /// Roster changes to measure, one after the other.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000))]
        rounds: u64,
    },
    /// Oblivious hit/no-hit: query latency with 16 identifiers asked of
    /// every member, and a match filter's size and spread.
    Oblivious {
        /// Members asked, one federation (plus the querier) per number.
        #[arg(long, value_delimiter = ',', default_values_t = [3, 50], value_parser = clap::value_parser!(u64).range(1..=100))]
        members: Vec<u64>,
        /// Queries timed per federation.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        rounds: u64,
        /// Identifiers registered at one member for the filter part (0: skip it).
        #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
        identifiers: u64,
    },
    /// Every bench, one after the other.
    All {
        /// Records for `replicate`.
        #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
        records: u64,
        /// Alerts for `latency`.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        alerts: u64,
        /// Alerts per second for `latency`.
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        rate: u64,
        /// Concurrent clients for `publish`.
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
        clients: u64,
        /// Seconds of `publish`.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
        seconds: u64,
        /// Records for `memory`.
        #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
        memory_records: u64,
        /// Roster changes for `roster`.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000))]
        roster_rounds: u64,
        /// Members asked for `oblivious`, one federation per number. The
        /// whole of `oblivious` takes about 80 s on two cores, some 35 s of
        /// it the 51 nodes of the 50-member federation (0.65 GiB); `3`
        /// leaves that federation out.
        #[arg(long, value_delimiter = ',', default_values_t = [3, 50], value_parser = clap::value_parser!(u64).range(1..=100))]
        oblivious_members: Vec<u64>,
        /// Queries timed per federation for `oblivious`.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        oblivious_rounds: u64,
        /// Identifiers for `oblivious`'s filter part (0: skip it).
        #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
        oblivious_identifiers: u64,
    },
}

/// Runs the benches the command line names and prints their figures.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    enlace::logging::init_tracing(LogFormat::Text, "warn");
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: this is a debug build; its figures mean little (cargo build --release)"
        );
    }
    let json = args.json;
    // Tables are printed as each bench ends, so `all` shows its progress.
    let show = |r: Report| {
        if !json {
            r.print();
        }
        r
    };
    let (reports, several) = match args.which {
        BenchCommand::VerifyLimit => (vec![show(verify_limit::run().await?)], false),
        BenchCommand::Replicate { records } => (vec![show(replicate::run(records).await?)], false),
        BenchCommand::Latency { alerts, rate } => {
            (vec![show(latency::run(alerts, rate).await?)], false)
        }
        BenchCommand::Publish { clients, seconds } => {
            (vec![show(publish::run(clients, seconds).await?)], false)
        }
        BenchCommand::Memory { records } => (vec![show(memory::run(records).await?)], false),
        BenchCommand::Roster { rounds } => (vec![show(roster::run(rounds).await?)], false),
        BenchCommand::Oblivious {
            members,
            rounds,
            identifiers,
        } => {
            let mut reports = Vec::new();
            run_oblivious(&mut reports, &members, rounds, identifiers, &show).await?;
            let several = reports.len() > 1;
            (reports, several)
        }
        BenchCommand::All {
            records,
            alerts,
            rate,
            clients,
            seconds,
            memory_records,
            roster_rounds,
            oblivious_members,
            oblivious_rounds,
            oblivious_identifiers,
        } => {
            let mut reports = vec![
                show(verify_limit::run().await?),
                show(replicate::run(records).await?),
                show(latency::run(alerts, rate).await?),
                show(publish::run(clients, seconds).await?),
                show(memory::run(memory_records).await?),
                show(roster::run(roster_rounds).await?),
            ];
            run_oblivious(
                &mut reports,
                &oblivious_members,
                oblivious_rounds,
                oblivious_identifiers,
                &show,
            )
            .await?;
            (reports, true)
        }
    };
    if json {
        let mut objects: Vec<Value> = reports.into_iter().map(|r| r.json).collect();
        let out = match objects.pop() {
            Some(one) if !several => one,
            last => {
                objects.extend(last);
                Value::Array(objects)
            }
        };
        println!("{out}");
    }
    Ok(())
}

/// `oblivious`: a query report per federation size, then the filter's
/// (unless `identifiers` is 0), each shown as it ends.
async fn run_oblivious(
    reports: &mut Vec<Report>,
    members: &[u64],
    rounds: u64,
    identifiers: u64,
    show: &impl Fn(Report) -> Report,
) -> anyhow::Result<()> {
    for n in members {
        reports.push(show(oblivious::query(*n, rounds).await?));
    }
    if identifiers > 0 {
        reports.push(show(oblivious::filter(identifiers).await?));
    }
    Ok(())
}

/// A gRPC failure of the bench's own calls: its code and message.
fn rpc_message(s: &tonic::Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

/// [`rpc_message`] as an error.
fn rpc(s: tonic::Status) -> anyhow::Error {
    anyhow::Error::msg(rpc_message(&s))
}
