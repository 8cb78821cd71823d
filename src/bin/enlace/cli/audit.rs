//! `enlace audit`: verify and export a node's accountability log, and ask
//! for a checkpoint on demand.
//!
//! Two ways in. `--client F` (an admin agency client) reads a running
//! node's log through its agency API; the read is itself written to the
//! log. `--config F` reads a stopped node's store directly and asks the
//! peers for their witnesses with the node's own TLS identity; it adds no
//! entry and no checkpoint to the store it examines.

use std::path::PathBuf;

use anyhow::{Context, anyhow};
use clap::{Args, Subcommand};
use prost::Message;
use tokio_stream::StreamExt;

mod direct;

use super::agency::status_error;
use super::input::parse_time;
use crate::failure::Spelled;
use enlace::audit::checkpoint::KeyBook;
use enlace::audit::verify::{Evidence, Report, Verifier};
use enlace::audit::{self, Action, Entry, Filter};
use enlace::records::model::NodeId;
use enlace::service::client::ClientConfig;
use enlace::store::audit_log::{Anchor, HASH_LEN, RawEntry};
use enlace::wire::pb::v1 as pb;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain, check the node's checkpoints and what its
    /// peers witnessed; name the first entry that does not hold. Exits 0
    /// only when everything holds.
    Verify {
        #[command(flatten)]
        source: Source,
        /// With --config: do not ask the peers for their witnesses (a
        /// truncated or rewritten tail then goes unnoticed).
        #[arg(long, requires = "config")]
        local_only: bool,
        /// An admin client file of a peer's node: ask that peer directly
        /// what it witnessed of this log, instead of trusting the node
        /// under audit to relay it. Repeat for several peers.
        #[arg(long, value_name = "CLIENT_FILE")]
        witnesses_from: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Print the log as JSON lines (n, time, action, actor, counterpart,
    /// hash, …), for a supervisory authority.
    Export {
        #[command(flatten)]
        source: Source,
        /// Only entries at or after this time (YYYY-MM-DD or RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Only entries of this action (e.g. records_disclosed).
        #[arg(long)]
        action: Option<String>,
        /// Only entries that name this member as a counterpart.
        #[arg(long)]
        counterpart: Option<String>,
    },
    /// Sign a checkpoint of the log now and hand it to every peer to
    /// witness (admin client).
    Checkpoint {
        /// Agency client file (client.toml) of an admin client.
        #[arg(long)]
        client: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

/// Where the log comes from.
#[derive(Debug, Args)]
pub struct Source {
    /// Agency client file (client.toml) of an admin client of a running node.
    #[arg(long, required_unless_present = "config", conflicts_with = "config")]
    client: Option<PathBuf>,
    /// Configuration of a stopped node, to read its store directly.
    #[arg(long)]
    config: Option<PathBuf>,
    /// With --config: the store's directory, if not the configured one.
    #[arg(long, requires = "config")]
    data_dir: Option<PathBuf>,
    /// With --client: a trusted copy of the roster chain (a directory of
    /// `<version>.roster` files) whose keys check the signatures (every
    /// key any version listed, with the window its latest version gave
    /// it), instead of the keys the node reports.
    #[arg(long, requires = "client")]
    roster: Option<PathBuf>,
    /// With --client: why the log is read (written to the log).
    #[arg(long, default_value = "audit verification or export")]
    justification: String,
}

pub async fn audit(cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Verify {
            source,
            local_only,
            witnesses_from,
            json,
        } => {
            let report = verify(&source, local_only, &witnesses_from).await?;
            print_report(&report, json);
            if report.holds() {
                Ok(())
            } else {
                Err(match report.first_bad {
                    Some(n) => anyhow!(
                        "the audit log of {} does not hold; first bad entry: {n}",
                        report.node
                    ),
                    None => anyhow!(
                        "the audit log of {} could not be fully verified",
                        report.node
                    ),
                })
            }
        }
        AuditCommand::Export {
            source,
            since,
            action,
            counterpart,
        } => {
            let filter = Filter {
                since_ms: since
                    .as_deref()
                    .map(parse_time)
                    .transpose()
                    .spelled()
                    .context("--since")?,
                action: action
                    .as_deref()
                    .map(Action::parse)
                    .transpose()
                    .spelled()
                    .context("--action")?,
                counterpart: counterpart
                    .map(|c| {
                        NodeId::parse(&c)
                            .map(|id| id.to_string())
                            .spelled()
                            .context("--counterpart")
                    })
                    .transpose()?,
            };
            export(&source, &filter).await
        }
        AuditCommand::Checkpoint { client, json } => checkpoint(client, json).await,
    }
}

/// Everything about the log except its entries, and a way to read them.
enum Opened {
    Remote {
        client: enlace::wire::pb::v1::agency_client::AgencyClient<tonic::transport::Channel>,
        justification: String,
    },
    Local {
        node: enlace::node::Components,
    },
}

async fn open(source: &Source) -> anyhow::Result<Opened> {
    match (&source.client, &source.config) {
        (Some(client), _) => {
            let cfg = ClientConfig::load(client).spelled()?;
            let client = cfg.connect().await.spelled()?;
            Ok(Opened::Remote {
                client,
                justification: source.justification.clone(),
            })
        }
        (None, Some(config)) => {
            let settings =
                enlace::trust::load::settings(config, source.data_dir.as_deref()).spelled()?;
            let node = enlace::node::Node::open_existing(settings).map_err(|e| match e {
                // Only a store in use is a running node's.
                enlace::node::NodeError::Store(enlace::store::StoreError::Locked { .. }) => {
                    anyhow!("{e} (to read a running node's log, use --client with an admin client)")
                }
                e => anyhow!("{e}"),
            })?;
            Ok(Opened::Local {
                node: node.components().clone(),
            })
        }
        (None, None) => Err(anyhow!("give --client or --config")),
    }
}

/// Feeds every entry after `after` to `each`, in order.
async fn read_entries(
    opened: &mut Opened,
    after: u64,
    mut each: impl FnMut(RawEntry) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    match opened {
        Opened::Remote {
            client,
            justification,
        } => {
            let mut stream = client
                .read_audit(pb::ReadAuditRequest {
                    after,
                    justification: justification.clone(),
                })
                .await
                .map_err(status_error)?
                .into_inner();
            while let Some(item) = stream.next().await {
                let e = item.map_err(status_error)?;
                each(raw_from_pb(e)?)?;
            }
            Ok(())
        }
        Opened::Local { node } => {
            let mut after = after;
            loop {
                let batch = node.store.audit().entries(after, 4096).spelled()?;
                let Some(last) = batch.last().map(|e| e.n) else {
                    return Ok(());
                };
                for e in batch {
                    each(e)?;
                }
                after = last;
            }
        }
    }
}

fn raw_from_pb(e: pb::AuditEntry) -> anyhow::Result<RawEntry> {
    let hash: [u8; HASH_LEN] = e
        .hash
        .as_slice()
        .try_into()
        .map_err(|_| anyhow!("entry {}: hash of {} bytes", e.n, e.hash.len()))?;
    let prev: [u8; HASH_LEN] = e
        .prev
        .as_slice()
        .try_into()
        .map_err(|_| anyhow!("entry {}: prev of {} bytes", e.n, e.prev.len()))?;
    Ok(RawEntry {
        n: e.n,
        hash,
        prev,
        body: e.body,
    })
}

/// Every page of a node's checkpoints and its peers' witnesses, as one
/// answer: pages keep each message far below the size limits, however
/// long the history.
async fn all_checkpoints(
    client: &mut enlace::wire::pb::v1::agency_client::AgencyClient<tonic::transport::Channel>,
) -> anyhow::Result<pb::AuditCheckpointsResponse> {
    let mut all: Option<pb::AuditCheckpointsResponse> = None;
    let mut after = 0;
    loop {
        let page = client
            .audit_checkpoints(pb::AuditCheckpointsRequest {
                checkpoint_now: false,
                after_size: after,
                limit: 0,
            })
            .await
            .map_err(status_error)?
            .into_inner();
        let next = page.page_end;
        match &mut all {
            None => all = Some(page),
            Some(all) => {
                all.own.extend(page.own);
                for p in page.peers {
                    match all.peers.iter_mut().find(|q| q.peer == p.peer) {
                        Some(q) => {
                            q.witnesses.extend(p.witnesses);
                            if q.error.is_empty() {
                                q.error = p.error;
                            }
                        }
                        None => all.peers.push(p),
                    }
                }
            }
        }
        if next == 0 || next <= after {
            break;
        }
        after = next;
    }
    all.ok_or_else(|| anyhow!("the node sent no checkpoints answer"))
}

async fn evidence(
    opened: &mut Opened,
    source: &Source,
    local_only: bool,
) -> anyhow::Result<Evidence> {
    match opened {
        Opened::Remote { client, .. } => {
            let resp = all_checkpoints(client).await?;
            let keys = match &source.roster {
                Some(path) => {
                    let walk = enlace::trust::load::chain_of(path, None, None)
                        .map_err(|p| anyhow!("--roster {}: {}", path.display(), p.join("; ")))?;
                    KeyBook::from_chain(walk.chain.iter().map(|s| s.version.roster.as_ref()))
                }
                None => KeyBook::from_keys(
                    &resp
                        .keys
                        .iter()
                        .cloned()
                        .map(enlace::wire::MemberKey::from_pb)
                        .collect::<Vec<_>>(),
                )
                .spelled()?,
            };
            let node = NodeId::parse(&resp.node).spelled().context("node")?;
            let retention = resp
                .anchor
                .as_ref()
                .and_then(|a| a.retention.clone())
                .map(enlace::wire::AuditRecovery::from_pb);
            let anchor = resp
                .anchor
                .map(|a| -> anyhow::Result<Anchor> {
                    Ok(Anchor {
                        n: a.n,
                        hash: a
                            .hash
                            .as_slice()
                            .try_into()
                            .map_err(|_| anyhow!("anchor hash is not 32 bytes"))?,
                        checkpoint: a.checkpoint.map(|c| c.encode_to_vec()).unwrap_or_default(),
                    })
                })
                .transpose()?;
            let mut peers = Vec::new();
            for p in resp.peers {
                let peer = NodeId::parse(&p.peer).spelled().context("peer")?;
                let answer = if p.error.is_empty() {
                    Ok(p.witnesses
                        .into_iter()
                        .map(enlace::wire::Witness::from_pb)
                        .collect())
                } else {
                    Err(p.error)
                };
                peers.push((peer, answer));
            }
            Ok(Evidence {
                node,
                anchor,
                own: resp
                    .own
                    .into_iter()
                    .map(enlace::wire::SignedCheckpoint::from_pb)
                    .collect(),
                peers,
                keys,
                recoveries: resp
                    .recoveries
                    .into_iter()
                    .map(enlace::wire::AuditRecovery::from_pb)
                    .collect(),
                retention,
                now_ms: enlace::clock::now_ms(),
            })
        }
        Opened::Local { node } => Ok(Evidence {
            node: node.id.clone(),
            anchor: node.store.audit().anchor().spelled()?,
            own: node.audit.own_checkpoints().spelled()?,
            peers: if local_only {
                Vec::new()
            } else {
                node.audit.gather_witnesses().await
            },
            keys: node.audit.key_book(),
            recoveries: node.audit.own_recoveries().spelled()?,
            retention: node
                .store
                .audit()
                .retention()
                .spelled()?
                .map(|bytes| enlace::wire::AuditRecovery::decode(&bytes))
                .transpose()
                .context("the retention statement kept with the anchor does not decode")?,
            now_ms: enlace::clock::now_ms(),
        }),
    }
}

async fn verify(
    source: &Source,
    local_only: bool,
    witnesses_from: &[PathBuf],
) -> anyhow::Result<Report> {
    let mut opened = open(source).await?;
    let mut evidence = evidence(&mut opened, source, local_only).await?;
    let mut asked = Vec::new();
    for file in witnesses_from {
        asked.push(direct::ask(file, &evidence.node, &source.justification).await);
    }
    let direct_check = (!asked.is_empty()).then(|| direct::substitute(&mut evidence.peers, asked));
    let start = evidence.anchor.as_ref().map_or(0, |a| a.n);
    let mut verifier = Verifier::new(evidence);
    read_entries(&mut opened, start, |e| {
        verifier.push(&e);
        Ok(())
    })
    .await?;
    let mut report = verifier.finish();
    report.checks.extend(direct_check);
    if local_only && witnesses_from.is_empty() {
        report.checks.push(audit::verify::Check {
            name: "peer witnesses".into(),
            ok: true,
            detail: "not asked (--local-only): a removed or rewritten tail would go unnoticed"
                .into(),
        });
    }
    Ok(report)
}

fn print_report(r: &Report, json: bool) {
    if json {
        let checks: Vec<_> = r
            .checks
            .iter()
            .map(|c| serde_json::json!({"check": c.name, "ok": c.ok, "detail": c.detail}))
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "node": r.node.to_string(),
                "size": r.size,
                "entries": r.entries,
                "first_bad": r.first_bad,
                "holds": r.holds(),
                "checks": checks,
            })
        );
        return;
    }
    println!("audit log of {}: {} entries read", r.node, r.entries);
    for c in &r.checks {
        println!(
            "  {:<5} {:<28} {}",
            if c.ok { "ok" } else { "FAIL" },
            c.name,
            c.detail
        );
    }
    if let Some(n) = r.first_bad {
        println!("first bad entry: {n}");
    }
    println!(
        "verdict: {}",
        if r.holds() {
            "the log holds"
        } else {
            "the log does NOT hold"
        }
    );
}

async fn export(source: &Source, filter: &Filter) -> anyhow::Result<()> {
    let mut opened = open(source).await?;
    let start = match &opened {
        Opened::Local { node } => node.store.audit().anchor().spelled()?.map_or(0, |a| a.n),
        Opened::Remote { .. } => 0,
    };
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    read_entries(&mut opened, start, |raw| {
        let line = match Entry::decode(&raw.body) {
            Ok(entry) if !filter.keeps(&entry) => return Ok(()),
            Ok(entry) => audit::export_json(&raw, &entry),
            Err(error) => serde_json::json!({
                "n": raw.n,
                "hash": audit::hex(&raw.hash),
                "error": error,
            }),
        };
        // NOTE: the io::Error is kept as it is (not spelled), so that
        // `failure::report` can tell a reader that went away.
        writeln!(out, "{line}").context("cannot write to stdout")
    })
    .await?;
    out.flush().context("cannot write to stdout")
}

async fn checkpoint(client: PathBuf, json: bool) -> anyhow::Result<()> {
    let cfg = ClientConfig::load(&client).spelled()?;
    let mut c = cfg.connect().await.spelled()?;
    let resp = c
        .audit_checkpoints(pb::AuditCheckpointsRequest {
            checkpoint_now: true,
            ..Default::default()
        })
        .await
        .map_err(status_error)?
        .into_inner();
    let coverage = audit::checkpoint::Coverage::of(&(&resp).into()).spelled()?;
    let size = coverage.size;
    let witnesses = coverage.witnesses();
    let missing: Vec<&str> = coverage
        .peers
        .iter()
        .map(|(peer, _, _)| peer.as_str())
        .filter(|p| !witnesses.contains(p))
        .collect();
    let rows = &coverage.peers;
    if json {
        let peers: Vec<_> = rows
            .iter()
            .map(|(peer, seen, error)| {
                let refused = coverage
                    .refused
                    .iter()
                    .find(|(p, _)| p == peer)
                    .map_or("", |(_, why)| why.as_str());
                serde_json::json!({"peer": peer, "witnessed_size": seen, "error": error, "refused": refused})
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"node": resp.node, "size": size, "peers": peers})
        );
    } else {
        println!("checkpoint of {}: {size} entries", resp.node);
        for (peer, seen, error) in rows {
            if error.is_empty() {
                println!("  {peer:<12} witnessed up to {seen}");
            } else {
                println!("  {peer:<12} {error}");
            }
        }
    }
    let beyond = coverage.beyond();
    if !beyond.is_empty() {
        let said: Vec<String> = beyond
            .iter()
            .map(|(peer, seen)| format!("{peer} witnessed {seen} entries"))
            .collect();
        return Err(anyhow!(
            "{}, more than the {size} this log holds: entries were lost since (a lost or restored store; runbook sections 6 and 8)",
            said.join(", ")
        ));
    }
    if !coverage.refused.is_empty() {
        let said: Vec<String> = coverage
            .refused
            .iter()
            .map(|(peer, why)| format!("{peer}: {why}"))
            .collect();
        return Err(anyhow!("not witnessed by every peer: {}", said.join("; ")));
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(anyhow!(
            "not yet witnessed by: {} (they get the next checkpoint when they are back)",
            missing.join(", ")
        ))
    }
}
