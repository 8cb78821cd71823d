//! `enlace bench`: the federation's performance figures, measured on this
//! machine with the real thing — nodes on loopback with real mTLS, real
//! gRPC and durable sled stores in temporary directories (removed at the
//! end). Run it from a release build; a debug build says so and is slow.
//!
//! What is measured, and how:
//!
//! - `verify-limit`: Ed25519 record verifications per second on one thread
//!   ([`crypto::verify_record`], ring), over a few thousand distinct records
//!   of the bench's size (an alert whose encoded `RecordBody` is about
//!   [`BODY_BYTES`] bytes), for at least a second. Also the rate of body
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
//!
//! To tell a CPU-bound figure from a serialised one, `replicate` and
//! `publish` also report how many cores the process kept busy, and
//! `replicate` measures the store's own ceiling: a replicator's store work
//! alone (lookups, then one transaction and one flush per pull batch) into
//! a scratch store, with no network and no verification.
//!
//! NOTE: `replicate`, `latency` and `publish` run their nodes and their
//! clients in this one process, as the integration tests do. The nodes
//! therefore share the machine's cores with each other and with the load
//! generator, and share the store's process-wide transaction gate (see
//! [`enlace::store`]); a deployment runs one node per machine. The figures
//! are, if anything, pessimistic.

use std::collections::HashMap;
use std::fmt::Display;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use enlace::clock::now_ms;
use enlace::config::LogFormat;
use enlace::records::crypto::{self, SigningKey};
use enlace::records::lifecycle::{self, Mode, SeriesState};
use enlace::records::model::{
    self, ContactPoint, Distribution, Errors, NodeId, RecordBody, RecordKind,
};
use enlace::records::selector::MatchingKey;
use enlace::records::vocabulary::{SelectorKind, SubjectCategory, Urgency};
use enlace::service::client::ClientConfig;
use enlace::store::{self, NewRecord, SeriesWrite, Store};
use enlace::testing::{RunningNode, Sandbox};
use enlace::trust::load::LoadedSettings;
use enlace::wire::pb::v1 as pb;
use enlace::wire::{self, Envelope};

/// Target size of an encoded record body, in bytes.
pub const BODY_BYTES: usize = 512;
/// Records written per store transaction by the bulk load.
const LOAD_CHUNK: u64 = 2000;
/// Distinct signed records the verify-limit loop cycles through.
const VERIFY_SAMPLE: u64 = 2048;
/// How long the verify-limit loop runs, at least.
const VERIFY_TIME: Duration = Duration::from_secs(1);
/// Most records the store-apply measurement writes.
const STORE_APPLY_SAMPLE: u64 = 50_000;
/// Agency channels shared by the publish bench's clients.
const PUBLISH_CHANNELS: usize = 8;
/// Records the memory bench lists and has pulled.
const EXERCISE_RECORDS: usize = 10_000;
/// How long a node run as a process has to answer its agency API.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long to wait for records to become visible after the last publish.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The passport number hashed into each bench alert's selector.
const SAMPLE_PASSPORT: &str = "X1234567";
/// The sandbox federation's name.
const FEDERATION: &str = "enlace-bench";

/// Targets of the issue: reported, never asserted.
const TARGET_RATIO: f64 = 1.0;
const TARGET_P99_MS: f64 = 20.0;
const TARGET_PUBLISH_PER_S: f64 = 5000.0;
const TARGET_RSS_MIB: f64 = 100.0;
const TARGET_RSS_RECORDS: u64 = 1_000_000;

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
    },
}

/// Runs the benches the command line names and prints their figures.
pub async fn run(args: BenchArgs) -> Result<(), String> {
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
        BenchCommand::VerifyLimit => (vec![show(verify_limit().await?)], false),
        BenchCommand::Replicate { records } => (vec![show(replicate(records).await?)], false),
        BenchCommand::Latency { alerts, rate } => (vec![show(latency(alerts, rate).await?)], false),
        BenchCommand::Publish { clients, seconds } => {
            (vec![show(publish(clients, seconds).await?)], false)
        }
        BenchCommand::Memory { records } => (vec![show(memory(records).await?)], false),
        BenchCommand::All {
            records,
            alerts,
            rate,
            clients,
            seconds,
            memory_records,
        } => (
            vec![
                show(verify_limit().await?),
                show(replicate(records).await?),
                show(latency(alerts, rate).await?),
                show(publish(clients, seconds).await?),
                show(memory(memory_records).await?),
            ],
            true,
        ),
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

// ---------------------------------------------------------------------------
// The benches

async fn verify_limit() -> Result<Report, String> {
    let limit = measure_verify_limit().await?;
    Ok(Report {
        heading: format!(
            "verify-limit — Ed25519 record verifications on one thread ({}-byte bodies)",
            limit.body_bytes
        ),
        rows: vec![
            Row::new("verifications/s", group(limit.per_s)),
            Row::new("body decodes/s", group(limit.decode_per_s)),
        ],
        notes: Vec::new(),
        json: json!({
            "bench": "verify-limit",
            "verify_limit_per_s": limit.per_s.round(),
            "decode_per_s": limit.decode_per_s.round(),
            "body_bytes": limit.body_bytes,
        }),
    })
}

async fn replicate(records: u64) -> Result<Report, String> {
    let limit = measure_verify_limit().await?;
    let mut sandbox = Sandbox::create(FEDERATION, &["gt", "hn"])
        .await
        .map_err(err)?;
    let settings = load_settings(&sandbox, "gt")?;
    let apply = measure_store_apply(&settings, records.min(STORE_APPLY_SAMPLE)).await?;
    let (load, _) = bulk_load(&settings, records).await?;
    let origin = settings.node_id.clone();
    drop(settings);

    // The origin runs as a process of its own, as a member's node runs on
    // a machine of its own: the two nodes share the cores, not the store
    // gate of one process.
    drop(sandbox.take_listeners("gt"));
    let (mut origin_process, origin_log) = spawn_node(&sandbox, "gt")?;
    let ready = wait_ready(&sandbox, "gt", &mut origin_process).await;
    let with_log = |e: String| format!("{e}\n{}", log_tail(&origin_log));
    ready.map_err(with_log)?;
    let origin_pid = origin_process.id()?;
    let cpu_before = process_cpu()? + process_cpu_of(origin_pid)?;
    let started = Instant::now();
    let mut nodes = start_all(&mut sandbox, &["hn"], Vec::new()).await?;
    let b = nodes.pop().ok_or("hn did not start")?;
    let deadline = started + (Duration::from_secs(30) + Duration::from_millis(records * 2));
    let caught_up = async {
        loop {
            if b.state.store.records().cursor(&origin).map_err(err)? >= records {
                return Ok::<_, String>(started.elapsed());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "hn did not catch up on {records} records within {:?}",
                    deadline - started
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    .await;
    let cpu_after = process_cpu()? + process_cpu_of(origin_pid)?;
    let held = b.state.store.records().count(&origin) as u64;
    nodes.push(b);
    let stopped = stop_all(nodes).await;
    let origin_stopped = origin_process.terminate().await.map_err(with_log);
    let elapsed = caught_up?;
    stopped?;
    origin_stopped?;
    if held != records {
        return Err(format!(
            "hn's cursor reached {records} but it holds {held} records of gt"
        ));
    }

    let per_s = records as f64 / elapsed.as_secs_f64();
    let ratio = per_s / limit.per_s;
    let busy = cores(cpu_before, cpu_after, elapsed);
    Ok(Report {
        heading: format!(
            "replicate — {} records ({}-byte bodies) from gt to hn: mTLS on loopback, verified, durable",
            group(records as f64),
            limit.body_bytes
        ),
        rows: vec![
            Row::new("records/s", group(per_s)),
            Row::new("verify limit/s (1 core)", group(limit.per_s)),
            Row::new("ratio", format!("{ratio:.2}")).target(
                format!("≥ {TARGET_RATIO:.1} × verify limit"),
                ratio >= TARGET_RATIO,
            ),
            Row::new("catch-up time", format!("{:.2} s", elapsed.as_secs_f64())),
            Row::new("cores busy (gt + hn)", format!("{busy:.2} of {}", cpus())),
            Row::new("store apply limit/s", group(apply)),
        ],
        notes: vec![
            format!(
                "store apply limit: a replicator's store work alone (lookups, one transaction and one flush per batch of {}), one writer, {} records",
                enlace::config::SyncConfig::default().batch_size,
                group(records.min(STORE_APPLY_SAMPLE) as f64)
            ),
            format!(
                "bulk load of gt's store (signing included) took {:.1} s; not counted",
                load.as_secs_f64()
            ),
        ],
        json: json!({
            "bench": "replicate",
            "records": records,
            "body_bytes": limit.body_bytes,
            "records_per_s": per_s.round(),
            "verify_limit_per_s": limit.per_s.round(),
            "ratio": round2(ratio),
            "seconds": round3(elapsed.as_secs_f64()),
            "load_seconds": round3(load.as_secs_f64()),
            "cores_busy": round2(busy),
            "cores": cpus(),
            "store_apply_per_s": apply.round(),
        }),
    })
}

async fn latency(alerts: u64, rate: u64) -> Result<Report, String> {
    let mut sandbox = Sandbox::create(FEDERATION, &["gt", "hn", "sv"])
        .await
        .map_err(err)?;
    let nodes = start_all(&mut sandbox, &["gt", "hn", "sv"], Vec::new()).await?;
    let measured = measure_latency(&sandbox, alerts, rate).await;
    let stopped = stop_all(nodes).await;
    let m = measured?;
    stopped?;

    let p50 = percentile(&m.visible_ms, 50.0);
    let p95 = percentile(&m.visible_ms, 95.0);
    let p99 = percentile(&m.visible_ms, 99.0);
    let max = m.visible_ms.last().copied().unwrap_or(0.0);
    let mut notes = Vec::new();
    if alerts < 1000 {
        notes.push("the target is stated over at least 1 000 alerts".to_owned());
    }
    Ok(Report {
        heading: format!(
            "latency — {} alerts at {rate}/s published at gt, seen on the watch streams of hn and sv ({} samples)",
            group(alerts as f64),
            m.visible_ms.len()
        ),
        rows: vec![
            Row::new("p50", format!("{p50:.2} ms")),
            Row::new("p95", format!("{p95:.2} ms")),
            Row::new("p99", format!("{p99:.2} ms"))
                .target(format!("≤ {TARGET_P99_MS} ms"), p99 <= TARGET_P99_MS),
            Row::new("max", format!("{max:.2} ms")),
            Row::new(
                "publish ack p50/p99",
                format!(
                    "{:.2} / {:.2} ms",
                    percentile(&m.ack_ms, 50.0),
                    percentile(&m.ack_ms, 99.0)
                ),
            ),
        ],
        notes,
        json: json!({
            "bench": "latency",
            "alerts": alerts,
            "rate_per_s": rate,
            "samples": m.visible_ms.len(),
            "p50_ms": round3(p50),
            "p95_ms": round3(p95),
            "p99_ms": round3(p99),
            "max_ms": round3(max),
            "ack_p50_ms": round3(percentile(&m.ack_ms, 50.0)),
            "ack_p99_ms": round3(percentile(&m.ack_ms, 99.0)),
        }),
    })
}

async fn publish(clients: u64, seconds: u64) -> Result<Report, String> {
    let mut sandbox = Sandbox::create(FEDERATION, &["gt"]).await.map_err(err)?;
    let nodes = start_all(&mut sandbox, &["gt"], Vec::new()).await?;
    let measured = measure_publish(&sandbox, clients as usize, seconds).await;
    let durable = nodes
        .first()
        .map_or(0, |n| n.state.store.watermark().own_seq);
    let stopped = stop_all(nodes).await;
    let m = measured?;
    stopped?;

    let per_s = m.ok as f64 / m.elapsed.as_secs_f64();
    let busy = cores(m.cpu.0, m.cpu.1, m.elapsed);
    let mut notes = vec![format!(
        "{} publishes succeeded; the node's log holds {durable} durable records (warm-up included)",
        m.ok
    )];
    if m.failed > 0 {
        notes.push(format!(
            "{} publishes failed; first: {}",
            m.failed,
            m.first_error.as_deref().unwrap_or("?")
        ));
    }
    Ok(Report {
        heading: format!(
            "publish — {clients} concurrent clients over {} mTLS channels, {seconds} s, one node, durable",
            m.channels
        ),
        rows: vec![
            Row::new("alerts/s", group(per_s)).target(
                format!("≥ {} alerts/s", group(TARGET_PUBLISH_PER_S)),
                per_s >= TARGET_PUBLISH_PER_S,
            ),
            Row::new(
                "cores busy (node + clients)",
                format!("{busy:.2} of {}", cpus()),
            ),
        ],
        notes,
        json: json!({
            "bench": "publish",
            "clients": clients,
            "channels": m.channels,
            "seconds": round3(m.elapsed.as_secs_f64()),
            "published": m.ok,
            "failed": m.failed,
            "alerts_per_s": per_s.round(),
            "cores_busy": round2(busy),
            "cores": cpus(),
        }),
    })
}

async fn memory(records: u64) -> Result<Report, String> {
    let mut sandbox = Sandbox::create(FEDERATION, &["gt", "hn"])
        .await
        .map_err(err)?;
    let settings = load_settings(&sandbox, "gt")?;
    let (load, body_bytes) = bulk_load(&settings, records).await?;
    drop(settings);
    // The node binds its own ports. hn does not run (gt's replicator for it
    // backs off); its identity only pulls.
    drop(sandbox.take_listeners("gt"));
    drop(sandbox.take_listeners("hn"));

    // The node logs as an operator would run it (its default level): what
    // it does at start counts.
    let (mut child, log_path) = spawn_node(&sandbox, "gt")?;
    let measured = measure_memory(&sandbox, &mut child).await;
    let stopped = child.terminate().await;
    let with_log = |e: String| format!("{e}\n{}", log_tail(&log_path));
    let m = measured.map_err(with_log)?;
    stopped.map_err(with_log)?;

    let peak = mib(m.peak_kib);
    let idle = mib(m.idle_kib);
    let mut notes = vec![
        format!(
            "node process ready {:.1} s after start; idle {}",
            m.ready.as_secs_f64(),
            if m.settled {
                "settled (two samples 500 ms apart within 1 MiB)"
            } else {
                "had not settled after 10 s"
            }
        ),
        format!(
            "exercise: listed {} records through the agency API, served {} to a peer's pull",
            m.listed, m.pulled
        ),
        format!(
            "bulk load of the store (signing included) took {:.1} s",
            load.as_secs_f64()
        ),
    ];
    if records != TARGET_RSS_RECORDS {
        notes.push(format!(
            "the target is stated for {} records",
            group(TARGET_RSS_RECORDS as f64)
        ));
    }
    let target = format!("≤ {TARGET_RSS_MIB} MiB");
    Ok(Report {
        heading: format!(
            "memory — a node process holding {} records ({}-byte bodies)",
            group(records as f64),
            body_bytes
        ),
        rows: vec![
            Row::new("peak RSS (VmHWM)", format!("{peak:.1} MiB"))
                .target(target.clone(), peak <= TARGET_RSS_MIB),
            Row::new("idle RSS", format!("{idle:.1} MiB")).target(target, idle <= TARGET_RSS_MIB),
            Row::new(
                "peak before exercise",
                format!("{:.1} MiB", mib(m.startup_peak_kib)),
            ),
            Row::new(
                "peak after listing",
                format!("{:.1} MiB", mib(m.listed_hwm_kib)),
            ),
            Row::new("RSS after exercise", format!("{:.1} MiB", mib(m.after_kib))),
        ],
        notes,
        json: json!({
            "bench": "memory",
            "records": records,
            "peak_rss_mib": round2(peak),
            "idle_rss_mib": round2(idle),
            "after_rss_mib": round2(mib(m.after_kib)),
            "startup_peak_rss_mib": round2(mib(m.startup_peak_kib)),
            "listed_peak_rss_mib": round2(mib(m.listed_hwm_kib)),
            "idle_settled": m.settled,
            "ready_seconds": round3(m.ready.as_secs_f64()),
            "load_seconds": round3(load.as_secs_f64()),
        }),
    })
}

// ---------------------------------------------------------------------------
// Measurements

struct VerifyLimit {
    per_s: f64,
    decode_per_s: f64,
    body_bytes: usize,
}

/// Signature verifications (and body decodes) per second on one thread.
async fn measure_verify_limit() -> Result<VerifyLimit, String> {
    let origin = NodeId::parse("gt").map_err(err)?;
    let (signing, _) = SigningKey::generate("gt-bench-1").map_err(err)?;
    let (matching, _) = MatchingKey::generate().map_err(err)?;
    let records = Records::new(
        origin,
        Arc::new(signing),
        Some(&matching),
        Some(sample_contact()),
        Duration::from_secs(365 * 86_400),
    )?;
    tokio::task::spawn_blocking(move || {
        let envelopes = (1..=VERIFY_SAMPLE)
            .map(|seq| records.signed(seq).map(|(_, e, _)| e))
            .collect::<Result<Vec<_>, _>>()?;
        let key = records.signing.public_key().to_vec();
        let key_id = records.signing.key_id().to_owned();
        let per_s = rate_on_one_thread(&envelopes, |e| {
            crypto::verify_record(&key, &key_id, &e.body, &e.signature).map_err(err)
        })?;
        let decode_per_s = rate_on_one_thread(&envelopes, |e| {
            std::hint::black_box(wire::decode_body(&e.body).map_err(err)?);
            Ok(())
        })?;
        Ok(VerifyLimit {
            per_s,
            decode_per_s,
            body_bytes: records.body_bytes,
        })
    })
    .await
    .map_err(err)?
}

/// Records per second a store applies as a replicator does — the lookups
/// of `sync::PeerReplicator::prepare`, then `store.records().apply_received` per
/// pull batch (one transaction, one flush) — into a scratch store, with no
/// network and no verification: the other ceiling of replication.
async fn measure_store_apply(origin: &LoadedSettings, records: u64) -> Result<f64, String> {
    let factory = Records::for_node(origin)?;
    let built = tokio::task::spawn_blocking(move || factory.build(1, records))
        .await
        .map_err(err)??;
    let dir = tempfile::Builder::new()
        .prefix("enlace-bench-store-")
        .tempdir()
        .map_err(err)?;
    let store = Store::open(dir.path(), &NodeId::parse("hn")?).map_err(err)?;
    let from = &origin.node_id;
    let batch = enlace::config::SyncConfig::default().batch_size as usize;
    let started = Instant::now();
    for chunk in built.chunks(batch) {
        for r in chunk {
            std::hint::black_box(store.records().contains(from, r.seq).map_err(err)?);
            if let Some(s) = &r.series {
                std::hint::black_box(store.series().state(&s.series_id).map_err(err)?);
            }
        }
        let high_water = chunk.last().map_or(0, |r| r.seq);
        // The same audit entry the replicator writes with each batch.
        let applied = store
            .records()
            .apply_received(from, chunk, high_water, |stored, _| {
                vec![
                    enlace::audit::Entry::new(
                        enlace::audit::Action::RecordsReceived,
                        from.as_str(),
                    )
                    .counterpart(from)
                    .ids(stored.iter().map(|r| r.record_id.clone()))
                    .encode(),
                ]
            })
            .await
            .map_err(err)?;
        if applied.stored != chunk.len() {
            return Err(format!("the scratch store refused records: {applied:?}"));
        }
    }
    let elapsed = started.elapsed();
    drop(store);
    Ok(records as f64 / elapsed.as_secs_f64())
}

/// Runs `f` over `items` again and again for at least [`VERIFY_TIME`];
/// returns calls per second.
fn rate_on_one_thread<T>(items: &[T], f: impl Fn(&T) -> Result<(), String>) -> Result<f64, String> {
    // One untimed pass: caches and lazy initialisation.
    for item in items.iter().take(64) {
        f(item)?;
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < VERIFY_TIME {
        for item in items {
            f(item)?;
        }
        n += items.len() as u64;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

struct Latencies {
    /// Publish-to-visible times at both peers, sorted, in ms.
    visible_ms: Vec<f64>,
    /// Publish call durations at the origin (durable there), sorted, in ms.
    ack_ms: Vec<f64>,
}

async fn measure_latency(sandbox: &Sandbox, alerts: u64, rate: u64) -> Result<Latencies, String> {
    let records = Records::for_node(&load_settings(sandbox, "gt")?)?;
    let peers = ["hn", "sv"];
    let (seen_tx, mut seen) = mpsc::unbounded_channel::<(usize, String, Instant)>();
    let mut watchers = Vec::new();
    for (i, id) in peers.iter().enumerate() {
        let mut client = sandbox.client(id).await.map_err(err)?;
        let mut stream = client
            .watch_records(pb::WatchRecordsRequest::default())
            .await
            .map_err(rpc)?
            .into_inner();
        let tx = seen_tx.clone();
        watchers.push(AbortOnDrop(tokio::spawn(async move {
            while let Ok(Some(r)) = stream.message().await {
                if tx.send((i, r.record_id, Instant::now())).is_err() {
                    break;
                }
            }
        })));
    }
    drop(seen_tx);
    let gt = sandbox.client("gt").await.map_err(err)?;

    // Warm-up: one record through the whole path, so connections are up.
    let warm = gt
        .clone()
        .publish_alert(records.request())
        .await
        .map_err(rpc)?
        .into_inner()
        .record_id;
    let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
    let mut warm_seen = [false; 2];
    while !warm_seen.iter().all(|s| *s) {
        let (peer, id, _) = tokio::time::timeout_at(deadline, seen.recv())
            .await
            .map_err(|_| "the warm-up alert did not reach both peers".to_owned())?
            .ok_or("watch streams ended")?;
        if id == warm {
            warm_seen[peer] = true;
        }
    }

    // Publishes are issued on schedule, each on its own task, so a slow one
    // does not delay the next (no coordinated omission).
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut publishes = JoinSet::new();
    for _ in 0..alerts {
        tick.tick().await;
        let mut client = gt.clone();
        let request = records.request();
        publishes.spawn(async move {
            let sent = Instant::now();
            let r = client.publish_alert(request).await;
            (sent, sent.elapsed(), r)
        });
    }
    let mut sent_at: HashMap<String, Instant> = HashMap::new();
    let mut ack_ms = Vec::with_capacity(alerts as usize);
    while let Some(done) = publishes.join_next().await {
        let (sent, took, r) = done.map_err(err)?;
        let id = r.map_err(rpc)?.into_inner().record_id;
        ack_ms.push(ms(took));
        sent_at.insert(id, sent);
    }

    let mut visible_ms = Vec::with_capacity(2 * alerts as usize);
    let mut seen_by: [std::collections::HashSet<String>; 2] = Default::default();
    let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
    while visible_ms.len() < 2 * sent_at.len() {
        let Ok(next) = tokio::time::timeout_at(deadline, seen.recv()).await else {
            return Err(format!(
                "{} of {} publish/peer pairs were not visible within {SETTLE_TIMEOUT:?} of the last publish",
                2 * sent_at.len() - visible_ms.len(),
                2 * sent_at.len()
            ));
        };
        let (peer, id, at) = next.ok_or("watch streams ended")?;
        if let Some(sent) = sent_at.get(&id)
            && seen_by[peer].insert(id)
        {
            visible_ms.push(ms(at.saturating_duration_since(*sent)));
        }
    }
    drop(watchers);
    visible_ms.sort_by(f64::total_cmp);
    ack_ms.sort_by(f64::total_cmp);
    Ok(Latencies { visible_ms, ack_ms })
}

struct PublishRun {
    /// Process CPU time before and after.
    cpu: (Duration, Duration),
    ok: u64,
    failed: u64,
    first_error: Option<String>,
    elapsed: Duration,
    channels: usize,
}

async fn measure_publish(
    sandbox: &Sandbox,
    clients: usize,
    seconds: u64,
) -> Result<PublishRun, String> {
    let records = Records::for_node(&load_settings(sandbox, "gt")?)?;
    let config =
        ClientConfig::load(&sandbox.member("gt").map_err(err)?.client_path()).map_err(err)?;
    let mut channels = Vec::new();
    for _ in 0..PUBLISH_CHANNELS.min(clients) {
        let mut c = config.connect().await.map_err(err)?;
        c.publish_alert(records.request()).await.map_err(rpc)?;
        channels.push(c);
    }
    let request = records.request();
    let cpu_before = process_cpu()?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut tasks = JoinSet::new();
    for i in 0..clients {
        let mut client = channels[i % channels.len()].clone();
        let request = request.clone();
        tasks.spawn(async move {
            let (mut ok, mut failed, mut first_error) = (0u64, 0u64, None);
            while Instant::now() < deadline {
                match client.publish_alert(request.clone()).await {
                    Ok(_) => ok += 1,
                    Err(s) => {
                        failed += 1;
                        first_error.get_or_insert_with(|| rpc(s));
                    }
                }
            }
            (ok, failed, first_error)
        });
    }
    let mut run = PublishRun {
        cpu: (cpu_before, cpu_before),
        ok: 0,
        failed: 0,
        first_error: None,
        elapsed: Duration::ZERO,
        channels: channels.len(),
    };
    while let Some(done) = tasks.join_next().await {
        let (ok, failed, first_error) = done.map_err(err)?;
        run.ok += ok;
        run.failed += failed;
        if run.first_error.is_none() {
            run.first_error = first_error;
        }
    }
    run.elapsed = start.elapsed();
    run.cpu.1 = process_cpu()?;
    if run.ok == 0 {
        return Err(format!(
            "no publish succeeded: {}",
            run.first_error.as_deref().unwrap_or("?")
        ));
    }
    Ok(run)
}

struct MemoryRun {
    ready: Duration,
    idle_kib: u64,
    settled: bool,
    /// VmHWM before the exercise: what opening the store took.
    startup_peak_kib: u64,
    /// VmHWM after listing, before serving the pull.
    listed_hwm_kib: u64,
    peak_kib: u64,
    after_kib: u64,
    listed: usize,
    pulled: usize,
}

async fn measure_memory(sandbox: &Sandbox, child: &mut ChildProcess) -> Result<MemoryRun, String> {
    let pid = child.id()?;
    let gt = sandbox.member("gt").map_err(err)?;
    let config = ClientConfig::load(&gt.client_path()).map_err(err)?;
    let started = Instant::now();
    let mut client = loop {
        if let Some(status) = child.exited()? {
            return Err(format!(
                "the node process exited before it answered: {status}"
            ));
        }
        if let Ok(mut c) = config.connect().await
            && c.list_peers(pb::ListPeersRequest {}).await.is_ok()
        {
            break c;
        }
        if started.elapsed() > READY_TIMEOUT {
            return Err(format!(
                "the node process did not answer within {READY_TIMEOUT:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let ready = started.elapsed();
    let (idle_kib, settled) = settle(pid).await?;
    let startup_peak_kib = proc_status_kib(pid, "VmHWM")?;

    let mut listed = 0;
    let mut after = 0;
    while listed < EXERCISE_RECORDS {
        let page = client
            .list_records(pb::ListRecordsRequest {
                after_position: after,
                limit: 1000,
                ..Default::default()
            })
            .await
            .map_err(rpc)?
            .into_inner();
        if page.records.is_empty() {
            break;
        }
        listed += page.records.len();
        after = page.last_position;
    }
    let listed_hwm_kib = proc_status_kib(pid, "VmHWM")?;
    let pulled = pull_as_peer(sandbox, "hn", "gt", EXERCISE_RECORDS).await?;
    Ok(MemoryRun {
        listed_hwm_kib,
        ready,
        idle_kib,
        settled,
        startup_peak_kib,
        peak_kib: proc_status_kib(pid, "VmHWM")?,
        after_kib: proc_status_kib(pid, "VmRSS")?,
        listed,
        pulled,
    })
}

/// Samples RSS every 500 ms until two samples are within 1 MiB (at most
/// 10 s). Returns the last sample and whether it settled.
async fn settle(pid: u32) -> Result<(u64, bool), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = proc_status_kib(pid, "VmRSS")?;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = proc_status_kib(pid, "VmRSS")?;
        if now.abs_diff(last) <= 1024 {
            return Ok((now, true));
        }
        if Instant::now() > deadline {
            return Ok((now, false));
        }
        last = now;
    }
}

/// Pulls up to `want` records of `origin`'s log with `peer`'s identity, as
/// `peer`'s replicator would; returns how many arrived.
async fn pull_as_peer(
    sandbox: &Sandbox,
    peer: &str,
    origin: &str,
    want: usize,
) -> Result<usize, String> {
    let settings = load_settings(sandbox, peer)?;
    let origin_id = NodeId::parse(origin)?;
    let addr = sandbox.member(origin).map_err(err)?.peer_addr;
    let tls = enlace::trust::tls::peer_client_config(&settings.roster, &settings.tls, &origin_id)
        .map_err(err)?;
    let channel = enlace::exchange::peers::peer_channel(tls, &addr.ip().to_string(), addr.port())
        .map_err(err)?;
    let mut client = pb::federation_client::FederationClient::new(channel)
        .max_decoding_message_size(enlace::exchange::peers::MAX_PEER_MESSAGE);
    let mut stream = client
        .pull(pb::PullRequest {
            origin: origin.to_owned(),
            after_seq: 0,
            follow: false,
            max_batch: 1024,
        })
        .await
        .map_err(rpc)?
        .into_inner();
    let mut got = 0;
    while got < want {
        match stream.message().await.map_err(rpc)? {
            Some(batch) => got += batch.records.len(),
            None => break,
        }
    }
    Ok(got)
}

// ---------------------------------------------------------------------------
// Records as the publish path makes them

/// Signed alerts of about [`BODY_BYTES`] encoded bytes, built and signed
/// the way [`enlace::publish`] does for an agency's publish: the agency
/// API's defaults, the alert rules, the series state of a first record.
struct Records {
    origin: NodeId,
    signing: Arc<SigningKey>,
    alert: model::Alert,
    /// The padded summary, for requests through the agency API.
    summary: String,
    with_selector: bool,
    body_bytes: usize,
}

impl Records {
    fn for_node(settings: &LoadedSettings) -> Result<Self, String> {
        Self::new(
            settings.node_id.clone(),
            settings.signing.clone(),
            settings.matching.as_deref(),
            settings.agency.contact.clone(),
            settings.records.default_validity,
        )
    }

    fn new(
        origin: NodeId,
        signing: Arc<SigningKey>,
        matching: Option<&MatchingKey>,
        contact: Option<ContactPoint>,
        validity: Duration,
    ) -> Result<Self, String> {
        let selector = matching
            .map(|k| k.hash(SelectorKind::Passport, SAMPLE_PASSPORT))
            .transpose()
            .map_err(err)?
            .map(|t| wire::selector_to_pb(&t));
        let expires_at_ms =
            now_ms().saturating_add(i64::try_from(validity.as_millis()).unwrap_or(i64::MAX));
        // What the agency API does to a request before it is published.
        let make = |summary: &str| -> Result<model::Alert, String> {
            let mut a = enlace::testing::sample_alert(summary);
            a.urgency = Urgency::Routine.wire();
            a.subject_category = SubjectCategory::Victim.wire();
            a.expires_at_ms = expires_at_ms;
            a.contact = contact.as_ref().map(|c| pb::ContactPoint {
                unit: c.unit.clone(),
                email: c.email.clone(),
                phone: c.phone.clone(),
            });
            a.selectors.extend(selector.clone());
            let mut errors = Errors::default();
            let alert = wire::alert_from_pb(a, "alert", &mut errors);
            if let Some(alert) = &alert {
                alert.check("alert", &mut errors);
            }
            errors.finish().map_err(err)?;
            alert.ok_or_else(|| "the bench alert is invalid".to_owned())
        };
        let size = |alert: model::Alert| {
            wire::encode_body(&RecordBody {
                origin: origin.clone(),
                seq: 100_000,
                record_id: model::new_record_id(&origin, [0xa5; 8]),
                created_at_ms: now_ms(),
                distribution: Distribution::AllMembers,
                kind: RecordKind::Alert(alert),
            })
            .len()
        };
        // Padding is ASCII, so one character is one byte; a few rounds
        // absorb the length prefix growing with the field.
        let mut pad = 0usize;
        let mut summary = padded_summary(pad);
        let mut body_bytes = size(make(&summary)?);
        for _ in 0..8 {
            if body_bytes == BODY_BYTES {
                break;
            }
            pad = if body_bytes < BODY_BYTES {
                pad + (BODY_BYTES - body_bytes)
            } else {
                pad.saturating_sub(body_bytes - BODY_BYTES)
            };
            summary = padded_summary(pad);
            body_bytes = size(make(&summary)?);
        }
        Ok(Self {
            alert: make(&summary)?,
            origin,
            signing,
            summary,
            with_selector: selector.is_some(),
            body_bytes,
        })
    }

    /// A signed first record at `seq`: its body, envelope and series state.
    fn signed(&self, seq: u64) -> Result<(RecordBody, Envelope, SeriesState), String> {
        let random: [u8; 8] = crypto::random_bytes().map_err(err)?;
        let body = RecordBody {
            origin: self.origin.clone(),
            seq,
            record_id: model::new_record_id(&self.origin, random),
            created_at_ms: now_ms(),
            distribution: Distribution::AllMembers,
            kind: RecordKind::Alert(self.alert.clone()),
        };
        body.validate().map_err(err)?;
        let series = lifecycle::next(None, &body, Mode::Origin).map_err(err)?;
        let bytes = wire::encode_body(&body);
        let signature = self.signing.sign_record(&bytes);
        let envelope = Envelope {
            body: bytes,
            key_id: self.signing.key_id().to_owned(),
            signature,
        };
        Ok((body, envelope, series))
    }

    /// What the store writes for the record at `seq`.
    fn record(&self, seq: u64) -> Result<NewRecord, String> {
        let (body, envelope, series) = self.signed(seq)?;
        Ok(NewRecord {
            seq,
            record_id: body.record_id.clone(),
            content: store::Content::Envelope(envelope.encode()),
            expires_at_ms: lifecycle::expires_at(&body),
            series: Some(SeriesWrite {
                series_id: body.series_id().to_owned(),
                state: series.encode(),
            }),
        })
    }

    /// Records `first..first + count`, signed on every core.
    fn build(&self, first: u64, count: u64) -> Result<Vec<NewRecord>, String> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        let per = count.div_ceil(threads).max(1);
        let end = first + count;
        std::thread::scope(|scope| {
            let parts: Vec<_> = (0..threads)
                .map(|t| {
                    let lo = first + t * per;
                    let hi = (lo + per).min(end);
                    scope.spawn(move || {
                        (lo..hi)
                            .map(|seq| self.record(seq))
                            .collect::<Result<Vec<_>, _>>()
                    })
                })
                .collect();
            let mut out = Vec::with_capacity(count as usize);
            for part in parts {
                out.extend(
                    part.join()
                        .map_err(|_| "a signing thread panicked".to_owned())??,
                );
            }
            Ok(out)
        })
    }

    /// The same alert as an agency client sends it.
    fn request(&self) -> pb::PublishAlertRequest {
        pb::PublishAlertRequest {
            alert: Some(enlace::testing::sample_alert(&self.summary)),
            to: Vec::new(),
            selector_values: if self.with_selector {
                vec![pb::SelectorValue {
                    kind: SelectorKind::Passport.wire(),
                    value: SAMPLE_PASSPORT.into(),
                }]
            } else {
                Vec::new()
            },
            validate_only: false,
        }
    }
}

/// The sample alert's summary, padded with `pad` ASCII characters.
fn padded_summary(pad: usize) -> String {
    const FILLER: &str = " Ruta Tecun Uman - Tapachula; victima trasladada en autobus, documentos retenidos por el reclutador.";
    let mut s = String::from(
        "Posible víctima de trata con fines de explotación sexual; ruta Tecún Umán – Tapachula.",
    );
    s.extend(FILLER.chars().cycle().take(pad));
    s
}

fn sample_contact() -> ContactPoint {
    ContactPoint {
        unit: "Unidad de Cooperación Internacional (gt)".into(),
        email: "cooperacion@gt.example".into(),
        phone: String::new(),
    }
}

/// Writes `records` signed records into the node's own log, straight into
/// its store (the node must not be running). Returns how long it took and
/// the size of an encoded body.
async fn bulk_load(settings: &LoadedSettings, records: u64) -> Result<(Duration, usize), String> {
    let started = Instant::now();
    let factory = Arc::new(Records::for_node(settings)?);
    let store = Store::open_with_cache(&settings.data_dir, &settings.node_id, settings.cache_bytes)
        .map_err(err)?;
    let first = store.watermark().own_seq + 1;
    let end = first + records;
    let build = |from: u64| {
        let factory = factory.clone();
        let count = LOAD_CHUNK.min(end - from);
        tokio::task::spawn_blocking(move || factory.build(from, count))
    };
    // Signing the next chunk overlaps writing this one.
    let mut next = first;
    let mut pending = Some(build(next));
    while let Some(job) = pending.take() {
        let batch = job.await.map_err(err)??;
        let count = batch.len();
        next += count as u64;
        if next < end {
            pending = Some(build(next));
        }
        let mut batch = batch.into_iter();
        store
            .records()
            .append_own_batch(
                count,
                |seq| match batch.next() {
                    Some(r) if r.seq == seq => Ok(r),
                    _ => Err(format!("the store gave seq {seq}, not the one signed")),
                },
                // One entry per record, as publishing through the agency
                // API writes: the audit log a publishing node really holds.
                |records| {
                    records
                        .iter()
                        .map(|r| {
                            enlace::audit::Entry::new(
                                enlace::audit::Action::RecordPublished,
                                "enlace-bench",
                            )
                            .id(r.record_id.clone())
                            .result("alert")
                            .encode()
                        })
                        .collect()
                },
            )
            .await
            .map_err(err)??;
    }
    Ok((started.elapsed(), factory.body_bytes))
}

// ---------------------------------------------------------------------------
// Processes, nodes and small helpers

/// Starts member `id` of `sandbox` as a node process of its own (its
/// listeners must have been released), logging at its default level to a
/// file in the sandbox.
fn spawn_node(sandbox: &Sandbox, id: &str) -> Result<(ChildProcess, std::path::PathBuf), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let config = sandbox.member(id).map_err(err)?.config_path();
    let log_path = sandbox.dir.join(format!("{id}-node.log"));
    let log = std::fs::File::create(&log_path)
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let child = std::process::Command::new(exe)
        .args(["node", "run", "--config"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start the node process: {e}"))?;
    Ok((ChildProcess(Some(child)), log_path))
}

/// Waits until member `id`, run as `child`, answers on its agency API.
async fn wait_ready(sandbox: &Sandbox, id: &str, child: &mut ChildProcess) -> Result<(), String> {
    let config =
        ClientConfig::load(&sandbox.member(id).map_err(err)?.client_path()).map_err(err)?;
    let started = Instant::now();
    loop {
        if let Some(status) = child.exited()? {
            return Err(format!(
                "the node process exited before it answered: {status}"
            ));
        }
        if let Ok(mut c) = config.connect().await
            && c.list_peers(pb::ListPeersRequest {}).await.is_ok()
        {
            return Ok(());
        }
        if started.elapsed() > READY_TIMEOUT {
            return Err(format!(
                "the node process did not answer within {READY_TIMEOUT:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A node process; killed if dropped before [`ChildProcess::terminate`].
struct ChildProcess(Option<std::process::Child>);

impl ChildProcess {
    fn id(&self) -> Result<u32, String> {
        self.0
            .as_ref()
            .map(std::process::Child::id)
            .ok_or_else(|| "the node process is gone".to_owned())
    }

    fn exited(&mut self) -> Result<Option<std::process::ExitStatus>, String> {
        match &mut self.0 {
            Some(c) => c.try_wait().map_err(err),
            None => Err("the node process is gone".into()),
        }
    }

    /// SIGTERM, as an operator would stop it; SIGKILL after 10 s.
    async fn terminate(&mut self) -> Result<(), String> {
        let Some(mut child) = self.0.take() else {
            return Ok(());
        };
        if child.try_wait().map_err(err)?.is_some() {
            return Err("the node process had already exited".into());
        }
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().map_err(err)? {
                return if status.success() {
                    Ok(())
                } else {
                    Err(format!("the node process ended with {status}"))
                };
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err("the node process did not stop within 10 s of SIGTERM".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The last lines of a node's log, for an error message.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(10)..].join("\n");
    format!("last lines of {}:\n{tail}", path.display())
}

/// Starts members `ids` after the already running `nodes`; on a failure,
/// stops every node it has.
async fn start_all(
    sandbox: &mut Sandbox,
    ids: &[&str],
    mut nodes: Vec<RunningNode>,
) -> Result<Vec<RunningNode>, String> {
    for id in ids {
        match sandbox.start(id).await {
            Ok(n) => nodes.push(n),
            Err(e) => {
                let _ = stop_all(nodes).await;
                return Err(format!("cannot start {id}: {e}"));
            }
        }
    }
    Ok(nodes)
}

/// Stops every node at once (one by one, the survivors would log their
/// failed reconnections); the first failure, if any.
async fn stop_all(nodes: Vec<RunningNode>) -> Result<(), String> {
    let mut stopping = JoinSet::new();
    for node in nodes {
        stopping.spawn(async move { (node.id.clone(), node.stop().await) });
    }
    let mut first = Ok(());
    while let Some(done) = stopping.join_next().await {
        let failed = match done {
            Ok((_, Ok(()))) => continue,
            Ok((id, Err(e))) => format!("node {id} did not stop cleanly: {e}"),
            Err(e) => format!("a node's stop task failed: {e}"),
        };
        if first.is_ok() {
            first = Err(failed);
        }
    }
    first
}

fn load_settings(sandbox: &Sandbox, id: &str) -> Result<LoadedSettings, String> {
    let path = sandbox.member(id).map_err(err)?.config_path();
    enlace::trust::load::settings(&path, None).map_err(err)
}

/// A value from `/proc/<pid>/status`, in KiB.
fn proc_status_kib(pid: u32, field: &str) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("{path} has no {field}"))
}

/// CPU time this process has used so far (all threads, user and system).
/// `/proc/self/stat` counts in USER_HZ ticks, 100 per second on Linux.
fn process_cpu() -> Result<Duration, String> {
    cpu_of("/proc/self/stat")
}

/// CPU time used so far by process `pid`.
fn process_cpu_of(pid: u32) -> Result<Duration, String> {
    cpu_of(&format!("/proc/{pid}/stat"))
}

fn cpu_of(path: &str) -> Result<Duration, String> {
    let stat = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    // Fields after the command name (which may hold spaces), from field 3.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    match (tick(11), tick(12)) {
        (Some(user), Some(system)) => Ok(Duration::from_millis((user + system) * 10)),
        _ => Err(format!("{path} has no utime/stime")),
    }
}

/// Cores busy on average between two readings of [`process_cpu`].
fn cores(cpu_before: Duration, cpu_after: Duration, wall: Duration) -> f64 {
    cpu_after.saturating_sub(cpu_before).as_secs_f64() / wall.as_secs_f64().max(1e-9)
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// An integer with its thousands grouped: `41 230`.
fn group(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

fn err(e: impl Display) -> String {
    e.to_string()
}

fn rpc(s: tonic::Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

// ---------------------------------------------------------------------------
// Output

/// One bench's figures: a small table for people, an object for machines.
struct Report {
    heading: String,
    rows: Vec<Row>,
    notes: Vec<String>,
    json: Value,
}

struct Row {
    label: &'static str,
    value: String,
    /// The target and whether the figure meets it.
    target: Option<(String, bool)>,
}

impl Row {
    fn new(label: &'static str, value: String) -> Self {
        Self {
            label,
            value,
            target: None,
        }
    }

    fn target(mut self, target: String, meets: bool) -> Self {
        self.target = Some((target, meets));
        self
    }
}

impl Report {
    fn print(&self) {
        println!("{}", self.heading);
        let lw = self.rows.iter().map(|r| r.label.chars().count()).max();
        let vw = self.rows.iter().map(|r| r.value.chars().count()).max();
        let tw = self
            .rows
            .iter()
            .filter_map(|r| r.target.as_ref().map(|(t, _)| t.chars().count()))
            .max()
            .unwrap_or(0);
        let (lw, vw) = (lw.unwrap_or(0), vw.unwrap_or(0).max(5));
        let header = if tw > 0 {
            format!("  {:<lw$}  {:>vw$}  {:<tw$}  result", "", "value", "target")
        } else {
            format!("  {:<lw$}  {:>vw$}", "", "value")
        };
        println!("{header}");
        for r in &self.rows {
            let (target, verdict) = match &r.target {
                Some((t, true)) => (t.as_str(), "meets"),
                Some((t, false)) => (t.as_str(), "below"),
                None => ("", ""),
            };
            let line = format!(
                "  {:<lw$}  {:>vw$}  {:<tw$}  {verdict}",
                r.label, r.value, target
            );
            println!("{}", line.trim_end());
        }
        for n in &self.notes {
            println!("  note: {n}");
        }
        println!();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(group(0.0), "0");
        assert_eq!(group(999.0), "999");
        assert_eq!(group(41_230.4), "41 230");
        assert_eq!(group(1_000_000.0), "1 000 000");
    }

    #[test]
    fn bench_records_are_valid_signed_and_about_the_target_size() {
        let origin = NodeId::parse("gt").unwrap();
        let (signing, _) = SigningKey::generate("gt-1").unwrap();
        let (matching, _) = MatchingKey::generate().unwrap();
        let records = Records::new(
            origin,
            Arc::new(signing),
            Some(&matching),
            Some(sample_contact()),
            Duration::from_secs(86_400),
        )
        .unwrap();
        assert!(
            records.body_bytes.abs_diff(BODY_BYTES) <= 2,
            "{}",
            records.body_bytes
        );
        let (body, envelope, _) = records.signed(7).unwrap();
        crypto::verify_record(
            records.signing.public_key(),
            "gt-1",
            &envelope.body,
            &envelope.signature,
        )
        .unwrap();
        assert_eq!(wire::decode_body(&envelope.body).unwrap(), body);
        let built = records.build(10, 5).unwrap();
        assert_eq!(
            built.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![10, 11, 12, 13, 14]
        );
    }
}
