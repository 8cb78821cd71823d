//! `enlace bench memory`: idle and peak RSS of a node process that holds
//! many records, before and after serving them.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use serde_json::json;

use enlace::records::model::NodeId;
use enlace::service::client::ClientConfig;
use enlace::testing::Sandbox;
use enlace::wire::pb::v1 as pb;

use super::nodes::{
    ChildProcess, READY_TIMEOUT, load_settings, log_tail, proc_status_kib, spawn_node,
};
use super::records::bulk_load;
use super::report::{Report, Row, group, mib, round2, round3};
use super::{FEDERATION, rpc};
use crate::failure::Spelled;

/// Records the memory bench lists and has pulled.
pub(super) const EXERCISE_RECORDS: usize = 10_000;
/// Targets of the issue: reported, never asserted.
pub(super) const TARGET_RSS_MIB: f64 = 100.0;
pub(super) const TARGET_RSS_RECORDS: u64 = 1_000_000;

pub(super) async fn run(records: u64) -> anyhow::Result<Report> {
    let mut sandbox = Sandbox::create(FEDERATION, &["gt", "hn"]).await.spelled()?;
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
    let with_log = |e: anyhow::Error| anyhow!("{e:#}\n{}", log_tail(&log_path));
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

pub(super) struct MemoryRun {
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

pub(super) async fn measure_memory(
    sandbox: &Sandbox,
    child: &mut ChildProcess,
) -> anyhow::Result<MemoryRun> {
    let pid = child.id()?;
    let gt = sandbox.member("gt").spelled()?;
    let config = ClientConfig::load(&gt.client_path()).spelled()?;
    let started = Instant::now();
    let mut client = loop {
        if let Some(status) = child.exited()? {
            bail!("the node process exited before it answered: {status}");
        }
        if let Ok(mut c) = config.connect().await
            && c.list_peers(pb::ListPeersRequest {}).await.is_ok()
        {
            break c;
        }
        if started.elapsed() > READY_TIMEOUT {
            bail!("the node process did not answer within {READY_TIMEOUT:?}");
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
pub(super) async fn settle(pid: u32) -> anyhow::Result<(u64, bool)> {
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
pub(super) async fn pull_as_peer(
    sandbox: &Sandbox,
    peer: &str,
    origin: &str,
    want: usize,
) -> anyhow::Result<usize> {
    let settings = load_settings(sandbox, peer)?;
    let origin_id = NodeId::parse(origin).spelled()?;
    let addr = sandbox.member(origin).spelled()?.peer_addr;
    let tls = enlace::trust::tls::peer_client_config(&settings.roster, &settings.tls, &origin_id)
        .spelled()?;
    let channel = enlace::exchange::peers::peer_channel(tls, &addr.ip().to_string(), addr.port())
        .spelled()?;
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
