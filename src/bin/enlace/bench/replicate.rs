//! `enlace bench replicate`: how fast a node catches up on records
//! published at a peer, against the verify limit and the store's own
//! ceiling.

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde_json::json;

use enlace::records::model::NodeId;
use enlace::store::Store;
use enlace::testing::Sandbox;
use enlace::trust::load::LoadedSettings;

use super::FEDERATION;
use super::nodes::{
    load_settings, log_tail, process_cpu, process_cpu_of, spawn_node, start_all, stop_all,
    wait_ready,
};
use super::records::{Records, bulk_load};
use super::report::{Report, Row, cores, cpus, group, round2, round3};
use super::verify_limit::measure_verify_limit;
use crate::failure::Spelled;

/// Most records the store-apply measurement writes.
pub(super) const STORE_APPLY_SAMPLE: u64 = 50_000;
/// Target of the issue: reported, never asserted.
pub(super) const TARGET_RATIO: f64 = 1.0;

pub(super) async fn run(records: u64) -> anyhow::Result<Report> {
    let limit = measure_verify_limit().await?;
    let mut sandbox = Sandbox::create(FEDERATION, &["gt", "hn"]).await.spelled()?;
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
    let with_log = |e: anyhow::Error| anyhow!("{e:#}\n{}", log_tail(&origin_log));
    ready.map_err(with_log)?;
    let origin_pid = origin_process.id()?;
    let cpu_before = process_cpu()? + process_cpu_of(origin_pid)?;
    let started = Instant::now();
    let mut nodes = start_all(&mut sandbox, &["hn"], Vec::new()).await?;
    let b = nodes.pop().context("hn did not start")?;
    let deadline = started + (Duration::from_secs(30) + Duration::from_millis(records * 2));
    let caught_up = async {
        loop {
            if b.components.store.records().cursor(&origin).spelled()? >= records {
                return anyhow::Ok(started.elapsed());
            }
            if Instant::now() > deadline {
                bail!(
                    "hn did not catch up on {records} records within {:?}",
                    deadline - started
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    .await;
    let cpu_after = process_cpu()? + process_cpu_of(origin_pid)?;
    let held = b.components.store.records().count(&origin) as u64;
    nodes.push(b);
    let stopped = stop_all(nodes).await;
    let origin_stopped = origin_process.terminate().await.map_err(with_log);
    let elapsed = caught_up?;
    stopped?;
    origin_stopped?;
    if held != records {
        bail!("hn's cursor reached {records} but it holds {held} records of gt");
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

/// Records per second a store applies as a replicator does — the lookups
/// of `sync::PeerReplicator::prepare`, then [`Store::apply_received`] per
/// pull batch (one transaction, one flush) — into a scratch store, with no
/// network and no verification: the other ceiling of replication.
pub(super) async fn measure_store_apply(
    origin: &LoadedSettings,
    records: u64,
) -> anyhow::Result<f64> {
    let factory = Records::for_node(origin)?;
    let built = tokio::task::spawn_blocking(move || factory.build(1, records))
        .await
        .spelled()??;
    let mut builder = tempfile::Builder::new();
    builder.prefix("enlace-bench-store-");
    // NOTE: the store refuses a data directory others may enter.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o700));
    }
    let dir = builder.tempdir().spelled()?;
    let store = Store::open(dir.path(), &NodeId::parse("hn").spelled()?).spelled()?;
    let from = &origin.node_id;
    let batch = enlace::config::SyncConfig::default().batch_size as usize;
    let started = Instant::now();
    for chunk in built.chunks(batch) {
        for r in chunk {
            std::hint::black_box(store.records().contains(from, r.seq).spelled()?);
            if let Some(s) = &r.series {
                std::hint::black_box(store.series().state(&s.series_id).spelled()?);
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
            .spelled()?;
        if applied.stored != chunk.len() {
            bail!("the scratch store refused records: {applied:?}");
        }
    }
    let elapsed = started.elapsed();
    drop(store);
    Ok(records as f64 / elapsed.as_secs_f64())
}
