//! `enlace bench latency`: publish-to-visible time at both peers of a
//! three-member federation, with publishes issued on schedule.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::task::AbortOnDropHandle;

use enlace::testing::Sandbox;
use enlace::wire::pb::v1 as pb;

use super::nodes::{load_settings, start_all, stop_all};
use super::records::Records;
use super::report::{Report, Row, group, ms, percentile, round3};
use super::{FEDERATION, rpc};
use crate::failure::Spelled;

/// How long to wait for records to become visible after the last publish.
pub(super) const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Target of the issue: reported, never asserted.
pub(super) const TARGET_P99_MS: f64 = 20.0;

pub(super) async fn run(alerts: u64, rate: u64) -> anyhow::Result<Report> {
    let mut sandbox = Sandbox::create(FEDERATION, &["gt", "hn", "sv"])
        .await
        .spelled()?;
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

pub(super) struct Latencies {
    /// Publish-to-visible times at both peers, sorted, in ms.
    visible_ms: Vec<f64>,
    /// Publish call durations at the origin (durable there), sorted, in ms.
    ack_ms: Vec<f64>,
}

pub(super) async fn measure_latency(
    sandbox: &Sandbox,
    alerts: u64,
    rate: u64,
) -> anyhow::Result<Latencies> {
    let records = Records::for_node(&load_settings(sandbox, "gt")?)?;
    let peers = ["hn", "sv"];
    let (seen_tx, mut seen) = mpsc::unbounded_channel::<(usize, String, Instant)>();
    let mut watchers = Vec::new();
    for (i, id) in peers.iter().enumerate() {
        let mut client = sandbox.client(id).await.spelled()?;
        let mut stream = client
            .watch_records(pb::WatchRecordsRequest::default())
            .await
            .map_err(rpc)?
            .into_inner();
        let tx = seen_tx.clone();
        watchers.push(AbortOnDropHandle::new(tokio::spawn(async move {
            while let Ok(Some(r)) = stream.message().await {
                if tx.send((i, r.record_id, Instant::now())).is_err() {
                    break;
                }
            }
        })));
    }
    drop(seen_tx);
    let gt = sandbox.client("gt").await.spelled()?;

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
            .map_err(|_| anyhow!("the warm-up alert did not reach both peers"))?
            .context("watch streams ended")?;
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
        let (sent, took, r) = done.spelled()?;
        let id = r.map_err(rpc)?.into_inner().record_id;
        ack_ms.push(ms(took));
        sent_at.insert(id, sent);
    }

    let mut visible_ms = Vec::with_capacity(2 * alerts as usize);
    let mut seen_by: [std::collections::HashSet<String>; 2] = Default::default();
    let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
    while visible_ms.len() < 2 * sent_at.len() {
        let Ok(next) = tokio::time::timeout_at(deadline, seen.recv()).await else {
            bail!(
                "{} of {} publish/peer pairs were not visible within {SETTLE_TIMEOUT:?} of the last publish",
                2 * sent_at.len() - visible_ms.len(),
                2 * sent_at.len()
            );
        };
        let (peer, id, at) = next.context("watch streams ended")?;
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
