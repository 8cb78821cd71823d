//! `enlace bench oblivious`, its filter part: how big a member's match
//! filter of many identifiers is, as records and on a peer's disk, and how
//! long it takes from the agency's registration to a peer's view.

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;
use tokio::task::JoinSet;

use enlace::components::Components;
use enlace::records::filter::{MAX_ENTRIES_PER_RECORD, MatchFilter};
use enlace::records::model::{self, Distribution, NodeId, RecordBody, RecordKind};
use enlace::records::oprf::{Entry, SecretKey};
use enlace::records::selector::normalise;
use enlace::records::vocabulary::SelectorKind;
use enlace::testing::{RunningNode, Sandbox};
use enlace::trust::load::LoadedSettings;
use enlace::wire::pb::v1 as pb;
use enlace::wire::{self, Envelope};

use super::{
    Client, POLL, Tally, ask, filters_complete, node, register_case, selectors_with, value,
};
use crate::bench::FEDERATION;
use crate::bench::nodes::{load_settings, start_all, stop_all};
use crate::bench::report::{Report, Row, group, ms, round3};
use crate::failure::Spelled;

/// Identifiers per registered case: the most a local case holds.
const PER_CASE: u64 = 64;
/// Agency calls registering cases at once.
const REGISTERING: u64 = 8;
/// Where the numbers of the new member's queries' identifiers start.
const FRESH_FROM: u64 = 90_000;
/// Identifiers whose filter entries are timed alone.
const ENTRY_SAMPLE: u64 = 2000;

pub(in crate::bench) async fn run(identifiers: u64) -> anyhow::Result<Report> {
    let mut sandbox = Sandbox::create(FEDERATION, &["gt", "hn", "sv"])
        .await
        .spelled()?;
    let gt_settings = load_settings(&sandbox, "gt")?;
    let fewest = fewest_records(&gt_settings, identifiers)?;
    drop(gt_settings);
    let entry_us = entry_cost()?;
    let nodes = start_all(&mut sandbox, &["gt", "hn"], Vec::new()).await?;
    let (nodes, measured) = match measure_spread(&sandbox, &nodes, identifiers).await {
        // sv starts only now: it has seen none of gt's filter records.
        Ok(s) => {
            let nodes = start_all(&mut sandbox, &["sv"], nodes).await?;
            let fresh = measure_fresh(&sandbox, &nodes, identifiers, s.gt_records).await;
            (nodes, fresh.map(|f| (s, f)))
        }
        Err(e) => (nodes, Err(e)),
    };
    let stopped = stop_all(nodes).await;
    let (s, f) = measured?;
    stopped?;
    Ok(report(identifiers, &fewest, entry_us, &s, &f))
}

/// gt's filter records as published, and the time they took to reach hn.
struct Spread {
    register_s: f64,
    /// From the first registration to gt holding nothing unpublished.
    published_s: f64,
    /// From the first registration to hn's view holding every entry.
    held_s: f64,
    /// One `filter_changes` at gt once all is published: what its filter
    /// duty reads through at each publication.
    scan_ms: f64,
    /// gt's own records once everything is published (its log's head).
    gt_records: u64,
    records: Sizes,
    /// gt's data directory's growth: its cases, its own filter, its records.
    gt_grew: DirSize,
    /// hn's: gt's filter records and hn's view of them.
    hn_grew: DirSize,
}

/// Filter records: how many, their entries and bytes.
#[derive(Debug, Default)]
struct Sizes {
    records: u64,
    entries: u64,
    body_bytes: u64,
    envelope_bytes: u64,
}

async fn measure_spread(
    sandbox: &Sandbox,
    nodes: &[RunningNode],
    identifiers: u64,
) -> anyhow::Result<Spread> {
    let (gt, hn) = (node(nodes, "gt")?, node(nodes, "hn")?);
    filters_complete(hn, nodes, &gt.id, 0, Duration::from_secs(60)).await?;
    let (gt_dir, hn_dir) = (
        sandbox.member("gt").spelled()?.data_dir(),
        sandbox.member("hn").spelled()?.data_dir(),
    );
    let (gt_before, hn_before) = (DirSize::of(&gt_dir)?, DirSize::of(&hn_dir)?);
    let client = sandbox.client("gt").await.spelled()?;

    let t0 = Instant::now();
    register_all(&client, identifiers).await?;
    let register_s = t0.elapsed().as_secs_f64();
    // Generous: the registration's own time again, and a minute.
    let timeout = t0.elapsed() + Duration::from_secs(60);
    let published_s = until("gt to publish every filter entry", timeout, || async {
        let left = gt.components.cases.filter_changes().spelled()?;
        Ok(left.is_empty().then(|| t0.elapsed().as_secs_f64()))
    })
    .await?;
    let gt_records = gt.components.store.watermark().own_seq;
    let held_s = until("hn to hold every entry of gt", timeout, || async {
        hn.components.cases.filter_epoch(&gt.id).await.spelled()?;
        let n = hn.components.store.filters().peer_count(&gt.id).spelled()?;
        Ok((n >= identifiers).then(|| t0.elapsed().as_secs_f64()))
    })
    .await?;
    let (gt_after, hn_after) = (DirSize::of(&gt_dir)?, DirSize::of(&hn_dir)?);
    let scanned = Instant::now();
    if !gt.components.cases.filter_changes().spelled()?.is_empty() {
        bail!("gt found unpublished filter changes after it had none");
    }
    Ok(Spread {
        register_s,
        published_s,
        held_s,
        scan_ms: ms(scanned.elapsed()),
        gt_records,
        records: filter_records(&hn.components, &gt.id)?,
        gt_grew: gt_after.minus(gt_before),
        hn_grew: hn_after.minus(hn_before),
    })
}

/// Registers local cases at a node until it holds `identifiers`
/// identifiers, [`PER_CASE`] a case, [`REGISTERING`] calls at a time.
async fn register_all(client: &Client, identifiers: u64) -> anyhow::Result<()> {
    let cases = identifiers.div_ceil(PER_CASE);
    let mut calls = JoinSet::new();
    for worker in 0..REGISTERING {
        let mut client = client.clone();
        calls.spawn(async move {
            for case in (worker..cases).step_by(REGISTERING as usize) {
                let first = case * PER_CASE;
                let ids = (first..(first + PER_CASE).min(identifiers))
                    .map(identifier)
                    .collect();
                register_case(&mut client, &format!("MP-BENCH-{case:05}"), ids).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = calls.join_next().await {
        done.spelled()??;
    }
    Ok(())
}

/// Identifier number `n`: passports and phones, every one different.
fn identifier(n: u64) -> pb::SelectorValue {
    if n.is_multiple_of(2) {
        value(SelectorKind::Passport, &format!("PB{n:08}"))
    } else {
        value(SelectorKind::Phone, &format!("+5024{n:08}"))
    }
}

/// A new member's catch-up on gt's filter.
struct Fresh {
    deadline: Duration,
    /// From sv's start until its store holds every record of gt.
    replicated_s: f64,
    /// Its first query (asking about two of gt's identifiers), which
    /// catches its view up on gt's filter records first, and the next.
    first_query_ms: f64,
    second_query_ms: f64,
    sv_after: DirSize,
}

async fn measure_fresh(
    sandbox: &Sandbox,
    nodes: &[RunningNode],
    identifiers: u64,
    gt_records: u64,
) -> anyhow::Result<Fresh> {
    let (gt, sv) = (node(nodes, "gt")?, node(nodes, "sv")?);
    let t0 = Instant::now();
    let replicated_s = until(
        "sv to hold every record of gt",
        Duration::from_secs(120),
        || async {
            let cursor = sv.components.store.records().cursor(&gt.id).spelled()?;
            Ok((cursor >= gt_records).then(|| t0.elapsed().as_secs_f64()))
        },
    )
    .await?;
    let mut client = sandbox.client("sv").await.spelled()?;
    let mut tally = Tally::default();
    let mut query_ms = [0.0; 2];
    for (i, took) in query_ms.iter_mut().enumerate() {
        let asked = selectors_with(vec![identifier(0), identifier(1)], FRESH_FROM + i as u64);
        let sent = Instant::now();
        let r = ask(&mut client, asked).await?;
        *took = ms(sent.elapsed());
        tally.add(&r, "gt", 2);
    }
    if !tally.clean() {
        bail!(
            "sv's queries were not answered as gt and hn hold: {}",
            tally.first_problem.unwrap_or_default()
        );
    }
    let held = sv.components.store.filters().peer_count(&gt.id).spelled()?;
    if held < identifiers {
        bail!("sv's view holds {held} entries of gt after its first query, not {identifiers}");
    }
    Ok(Fresh {
        deadline: load_settings(sandbox, "sv")?.query.deadline,
        replicated_s,
        first_query_ms: query_ms[0],
        second_query_ms: query_ms[1],
        sv_after: DirSize::of(&sandbox.member("sv").spelled()?.data_dir())?,
    })
}

/// Polls `check` until it gives a value, for at most `timeout`.
async fn until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("waited {timeout:?} for {what}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The filter records of `origin` that `at` holds.
fn filter_records(at: &Components, origin: &NodeId) -> anyhow::Result<Sizes> {
    let mut out = Sizes::default();
    let mut after = 0;
    loop {
        let (records, last) = at
            .store
            .records()
            .list(after, 1000, Some(origin))
            .spelled()?;
        for r in &records {
            let Some(bytes) = r.content.envelope() else {
                continue;
            };
            let (envelope, body) = wire::open_stored(bytes).spelled()?;
            if let RecordKind::MatchFilter(f) = body.kind {
                out.records += 1;
                out.entries += f.added.len() as u64;
                out.body_bytes += envelope.body.len() as u64;
                out.envelope_bytes += bytes.len() as u64;
            }
        }
        if last == after {
            return Ok(out);
        }
        after = last;
    }
}

/// The fewest filter records that carry `identifiers` entries, as the
/// origin would sign them: [`MAX_ENTRIES_PER_RECORD`] a record, the last
/// completing the epoch. The entries' values do not change the size.
fn fewest_records(origin: &LoadedSettings, identifiers: u64) -> anyhow::Result<Sizes> {
    let entries: Vec<Entry> = (0..identifiers)
        .map(|n| Entry(u128::from(n).to_be_bytes()))
        .collect();
    let chunks: Vec<&[Entry]> = entries.chunks(MAX_ENTRIES_PER_RECORD).collect();
    let mut out = Sizes::default();
    for (i, chunk) in chunks.iter().enumerate() {
        let seq = i as u64 + 2;
        let body = RecordBody {
            origin: origin.node_id.clone(),
            seq,
            record_id: model::new_record_id(&origin.node_id, seq.to_be_bytes()),
            created_at_ms: enlace::clock::now_ms(),
            distribution: Distribution::AllMembers,
            kind: RecordKind::MatchFilter(MatchFilter {
                epoch: 1,
                added: chunk.to_vec(),
                removed: Vec::new(),
                complete: i + 1 == chunks.len(),
            }),
        };
        body.validate().spelled()?;
        let bytes = wire::encode_body(&body);
        let envelope = Envelope {
            signature: origin.signing.sign_record(&bytes),
            key_id: origin.signing.key_id().to_owned(),
            body: bytes,
        };
        out.records += 1;
        out.entries += chunk.len() as u64;
        out.body_bytes += envelope.body.len() as u64;
        out.envelope_bytes += envelope.encode().len() as u64;
    }
    Ok(out)
}

/// Microseconds to compute one identifier's filter entry (normalised,
/// then evaluated with the member's own key), on one thread: what
/// registering an identifier costs in OPRF work.
fn entry_cost() -> anyhow::Result<f64> {
    let (key, _) = SecretKey::generate(1).spelled()?;
    let started = Instant::now();
    for n in 0..ENTRY_SAMPLE {
        let v = identifier(n);
        let kind = SelectorKind::from_wire(v.kind).context("a bench selector's kind")?;
        std::hint::black_box(key.entry(kind, &normalise(kind, &v.value).spelled()?)).spelled()?;
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / ENTRY_SAMPLE as f64)
}

/// What a data directory holds, in bytes.
#[derive(Debug, Clone, Copy, Default)]
struct DirSize {
    /// The record log's files (`records*.log`), by length.
    log: u64,
    /// Everything else (sled's files), by length.
    rest: u64,
    /// Both, as allocated on disk.
    allocated: u64,
}

impl DirSize {
    fn of(dir: &Path) -> anyhow::Result<Self> {
        let mut total = Self::default();
        for entry in
            std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?
        {
            let entry = entry.spelled()?;
            let meta = entry.metadata().spelled()?;
            if meta.is_dir() {
                let sub = Self::of(&entry.path())?;
                total.log += sub.log;
                total.rest += sub.rest;
                total.allocated += sub.allocated;
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("records") && name.ends_with(".log") {
                total.log += meta.len();
            } else {
                total.rest += meta.len();
            }
            total.allocated += allocated(&meta);
        }
        Ok(total)
    }

    fn minus(self, before: Self) -> Self {
        Self {
            log: self.log.saturating_sub(before.log),
            rest: self.rest.saturating_sub(before.rest),
            allocated: self.allocated.saturating_sub(before.allocated),
        }
    }

    fn show(self) -> String {
        let mib = |b: u64| b as f64 / 1_048_576.0;
        format!(
            "{:.1} / {:.1} / {:.1} MiB",
            mib(self.log),
            mib(self.rest),
            mib(self.allocated)
        )
    }
}

#[cfg(unix)]
fn allocated(meta: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::blocks(meta) * 512
}

#[cfg(not(unix))]
fn allocated(meta: &std::fs::Metadata) -> u64 {
    meta.len()
}

fn report(identifiers: u64, fewest: &Sizes, entry_us: f64, s: &Spread, f: &Fresh) -> Report {
    let r = &s.records;
    let kib = |b: u64| b as f64 / 1024.0;
    let deadline_ms = ms(f.deadline);
    let cases = identifiers.div_ceil(PER_CASE);
    Report {
        heading: format!(
            "oblivious filter — {} identifiers registered at gt through its agency API ({} cases of up to {PER_CASE}, {REGISTERING} calls at a time); hn running, sv started afterwards",
            group(identifiers as f64),
            group(cases as f64)
        ),
        rows: vec![
            Row::new(
                "fewest records for them: count / envelopes",
                format!(
                    "{} / {:.0} KiB ({:.2} B per entry)",
                    fewest.records,
                    kib(fewest.envelope_bytes),
                    fewest.envelope_bytes as f64 / fewest.entries.max(1) as f64
                ),
            ),
            Row::new(
                "as gt published them: count / entries",
                format!("{} / {}", r.records, group(r.entries as f64)),
            ),
            Row::new(
                "as gt published them: bodies / envelopes",
                format!(
                    "{:.0} KiB / {:.0} KiB",
                    kib(r.body_bytes),
                    kib(r.envelope_bytes)
                ),
            ),
            Row::new(
                "registration through the agency API",
                format!(
                    "{:.1} s ({} identifiers/s)",
                    s.register_s,
                    group(identifiers as f64 / s.register_s.max(1e-9))
                ),
            ),
            Row::new(
                "  of it, the entries' OPRF work alone (one thread)",
                format!(
                    "{:.1} s ({entry_us:.0} µs an identifier)",
                    entry_us * identifiers as f64 / 1e6
                ),
            ),
            Row::new(
                "from the first registration: all published at gt",
                format!("{:.1} s", s.published_s),
            ),
            Row::new(
                "from the first registration: every entry in hn's view",
                format!("{:.1} s", s.held_s),
            ),
            Row::new(
                "gt: one look for unpublished changes (a publication's read)",
                format!("{:.0} ms", s.scan_ms),
            ),
            Row::new(
                "gt's data directory grew: record log / sled / allocated",
                s.gt_grew.show(),
            ),
            Row::new(
                "hn's data directory grew: record log / sled / allocated",
                s.hn_grew.show(),
            ),
            Row::new(
                "sv (new): from its start to every record of gt held",
                format!("{:.2} s", f.replicated_s),
            ),
            Row::new(
                "sv (new): its first query, which catches up on them",
                format!("{:.0} ms", f.first_query_ms),
            )
            .target(
                format!("≤ deadline {deadline_ms:.0} ms"),
                f.first_query_ms <= deadline_ms,
            ),
            Row::new(
                "sv (new): its second query",
                format!("{:.0} ms", f.second_query_ms),
            ),
            Row::new(
                "sv's data directory then: record log / sled / allocated",
                f.sv_after.show(),
            ),
        ],
        notes: vec![
            format!(
                "fewest: {MAX_ENTRIES_PER_RECORD} entries a record, encoded and signed with gt's key here; as published: gt's filter duty publishes what is new each time a registration wakes it, so the records follow the registration's pace"
            ),
            "a view catches up on the filter records held when a query asks the member (first, within the query's deadline) and on the filter duty's 30 s tick, not when the records arrive; the bench asks every 10 ms once the registration is over".to_owned(),
            "gt's growth: the cases (each with its shared-key selectors), their identifiers sealed and their entries in its own filter, the audit entries (sled), its filter records (log); hn's growth: gt's filter records in its log, their entries in its view of gt's filter and the audit entries of their arrival (sled)".to_owned(),
            "sv asks gt and hn 16 identifiers, two of them gt's: a hit at gt, as checked".to_owned(),
        ],
        json: json!({
            "bench": "oblivious-filter",
            "identifiers": identifiers,
            "cases": cases,
            "fewest_records": fewest.records,
            "fewest_body_bytes": fewest.body_bytes,
            "fewest_envelope_bytes": fewest.envelope_bytes,
            "published_records": r.records,
            "published_entries": r.entries,
            "published_body_bytes": r.body_bytes,
            "published_envelope_bytes": r.envelope_bytes,
            "register_s": round3(s.register_s),
            "entry_us": round3(entry_us),
            "published_s": round3(s.published_s),
            "held_at_peer_s": round3(s.held_s),
            "publication_scan_ms": round3(s.scan_ms),
            "gt_growth_log_bytes": s.gt_grew.log,
            "gt_growth_sled_bytes": s.gt_grew.rest,
            "gt_growth_allocated_bytes": s.gt_grew.allocated,
            "hn_growth_log_bytes": s.hn_grew.log,
            "hn_growth_sled_bytes": s.hn_grew.rest,
            "hn_growth_allocated_bytes": s.hn_grew.allocated,
            "fresh_replicated_s": round3(f.replicated_s),
            "fresh_first_query_ms": round3(f.first_query_ms),
            "fresh_second_query_ms": round3(f.second_query_ms),
            "deadline_ms": deadline_ms,
            "fresh_dir_log_bytes": f.sv_after.log,
            "fresh_dir_sled_bytes": f.sv_after.rest,
            "fresh_dir_allocated_bytes": f.sv_after.allocated,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn registered_identifiers_are_valid_and_all_different() {
        let mut seen = BTreeSet::new();
        for n in (0..1000).chain(99_000..100_000) {
            let v = identifier(n);
            let kind = SelectorKind::from_wire(v.kind).unwrap();
            assert!(seen.insert((kind, normalise(kind, &v.value).unwrap())));
        }
    }
}
