//! `enlace bench publish`: durable publishes per second through one
//! node's agency API, from many concurrent clients.

use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::json;
use tokio::task::JoinSet;

use enlace::service::client::ClientConfig;
use enlace::testing::Sandbox;

use super::nodes::{load_settings, process_cpu, start_all, stop_all};
use super::records::Records;
use super::report::{Report, Row, cores, cpus, group, round2, round3};
use super::{FEDERATION, rpc, rpc_message};
use crate::failure::Spelled;

/// Agency channels shared by the publish bench's clients.
pub(super) const PUBLISH_CHANNELS: usize = 8;
/// Target of the issue: reported, never asserted.
pub(super) const TARGET_PUBLISH_PER_S: f64 = 5000.0;

pub(super) async fn run(clients: u64, seconds: u64) -> anyhow::Result<Report> {
    let mut sandbox = Sandbox::create(FEDERATION, &["gt"]).await.spelled()?;
    let nodes = start_all(&mut sandbox, &["gt"], Vec::new()).await?;
    let measured = measure_publish(&sandbox, clients as usize, seconds).await;
    let durable = nodes
        .first()
        .map_or(0, |n| n.components.store.watermark().own_seq);
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

pub(super) struct PublishRun {
    /// Process CPU time before and after.
    cpu: (Duration, Duration),
    ok: u64,
    failed: u64,
    first_error: Option<String>,
    elapsed: Duration,
    channels: usize,
}

pub(super) async fn measure_publish(
    sandbox: &Sandbox,
    clients: usize,
    seconds: u64,
) -> anyhow::Result<PublishRun> {
    let records = Records::for_node(&load_settings(sandbox, "gt")?)?;
    let config = ClientConfig::load(&sandbox.member("gt").spelled()?.client_path()).spelled()?;
    let mut channels = Vec::new();
    for _ in 0..PUBLISH_CHANNELS.min(clients) {
        let mut c = config.connect().await.spelled()?;
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
                        first_error.get_or_insert_with(|| rpc_message(&s));
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
        let (ok, failed, first_error) = done.spelled()?;
        run.ok += ok;
        run.failed += failed;
        if run.first_error.is_none() {
            run.first_error = first_error;
        }
    }
    run.elapsed = start.elapsed();
    run.cpu.1 = process_cpu()?;
    if run.ok == 0 {
        bail!(
            "no publish succeeded: {}",
            run.first_error.as_deref().unwrap_or("?")
        );
    }
    Ok(run)
}
