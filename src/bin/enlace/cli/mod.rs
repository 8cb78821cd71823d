//! The `enlace` command tree.
//!
//! Exit codes: 0 success; 1 failure (the message says what failed);
//! 2 bad command line (clap); 64 invalid configuration, before anything
//! binds. [`crate::failure`] prints a failure and chooses its code.

mod agency;
mod audit;
mod cases;
mod demo;
mod demo_roster;
mod input;
mod keys;
mod output;
mod pki;
mod records;
mod roster;
mod roster_client;
mod roster_files;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use clap::{Parser, Subcommand};

use crate::failure::{InvalidConfig, Spelled, logged, report};
use enlace::config::LogFormat;
use enlace::logging::init_tracing;

#[derive(Debug, Parser)]
#[command(
    name = "enlace",
    version,
    about = "A federated node for exchanging signed alerts and case references between national agencies",
    long_about = None,
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run and manage a node.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Certificate authorities for the federation and for agency clients.
    #[command(subcommand)]
    Ca(pki::CaCommand),
    /// Node and agency-client certificates.
    #[command(subcommand)]
    Cert(pki::CertCommand),
    /// Record-signing and governance keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// The federation's roster chain: propose, review and approve changes
    /// through a node, or compile, sign and seal them offline; verify.
    #[command(subcommand)]
    Roster(roster::RosterCommand),
    /// Publish, update, withdraw, list, watch and import alerts through a
    /// node's agency API.
    #[command(subcommand)]
    Alert(records::AlertCommand),
    /// Publish, update, withdraw and list case references.
    #[command(subcommand, name = "case-ref")]
    CaseRef(records::CaseCommand),
    /// The agency's own cases (never shared), indexed for peers' queries.
    #[command(subcommand)]
    Case(cases::CaseCommand),
    /// Ask every member whether it holds a case with these identifiers
    /// (hit / no hit); only their hashes leave this node.
    Query(cases::QueryArgs),
    /// Mutual legal assistance: send, list and answer requests.
    #[command(subcommand)]
    Mla(cases::MlaCommand),
    /// Show what an identifier becomes: its normalised form and its token.
    #[command(subcommand)]
    Selector(SelectorCommand),
    /// Statistics: this node's protected tables (UNODC data collection,
    /// SDG 16.2.2), their publication, and the regional table.
    #[command(subcommand)]
    Stats(stats::StatsCommand),
    /// Replication status of the node's peers.
    Peers(records::PeersArgs),
    /// The accountability log: verify it, export it, checkpoint it.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Check a node's configuration, keys, certificates, roster and peers.
    Doctor {
        /// The node's configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Where the store lives; overrides `node.data_dir`, as for
        /// `node run`.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// One JSON object per check: {"check", "status", "message"}.
        #[arg(long)]
        json: bool,
    },
    /// Start a three-member federation on this machine and show an alert
    /// travelling between members.
    Demo(demo::DemoArgs),
    /// Measure replication, latency, publish rate and memory on this
    /// machine (use a release build).
    Bench(crate::bench::BenchArgs),
}

#[derive(Debug, Subcommand)]
pub enum SelectorCommand {
    /// Normalise and hash one identifier, e.g. `enlace selector hash
    /// passport X1234567 --config node.toml`. Shows the operator what the
    /// node stores and sends instead of the clear value.
    Hash {
        /// passport, national-id, name-dob, phone, email, vehicle-plate,
        /// bank-account, imei.
        kind: String,
        /// The identifier; for name-dob "NAME|YYYY-MM-DD".
        value: String,
        /// Take the matching key from this node configuration.
        #[arg(long, conflicts_with = "key")]
        config: Option<PathBuf>,
        /// Or from this matching key file.
        #[arg(long, required_unless_present = "config")]
        key: Option<PathBuf>,
        /// The key's epoch (with --key).
        #[arg(long, default_value_t = 1)]
        epoch: u32,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Run a node until SIGINT or SIGTERM.
    Run {
        /// The node's configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Where the store lives; overrides `node.data_dir`.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// A new member's first start, before any peer is up: with an
        /// empty store and no peer to confirm that it saw nothing of this
        /// node's log, publish anyway (see "Before the first publication"
        /// in the README).
        #[arg(long)]
        new_log: bool,
    },
    /// Check a configuration and everything it names, then exit.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Recover a stopped node's own log from its peers, after its store was
    /// lost: they hand back the records of this node they hold.
    Recover(StoppedNode),
    /// Compact a stopped node's record log: drop the space that purged
    /// records left, then exit.
    Compact(StoppedNode),
    /// End the move off the shared matching key on a stopped node whose
    /// configuration no longer names [matching]: purge the content of every
    /// alert version no longer in force that carries shared-key selectors
    /// (docs/runbook.md, section 5), then exit.
    PurgeSharedTokens(StoppedNode),
}

/// The maintenance commands' arguments: a node that is not running.
#[derive(clap::Args, Debug)]
pub struct StoppedNode {
    /// The node's configuration file.
    #[arg(long, short)]
    config: PathBuf,
    /// Where the store lives; overrides `node.data_dir`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

impl StoppedNode {
    /// Loads the configuration and runs `task` with it; an
    /// [`InvalidConfig`] if the configuration is invalid.
    async fn run<F, Fut>(self, task: F) -> anyhow::Result<()>
    where
        F: FnOnce(enlace::trust::load::LoadedSettings, bool) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>>,
    {
        init_tracing(LogFormat::Text, "warn");
        let settings = enlace::trust::load::settings(&self.config, self.data_dir.as_deref())
            .map_err(InvalidConfig::new)?;
        task(settings, self.json).await
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return report(Err(e).context("cannot start the runtime")),
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Node(NodeCommand::Run {
                config,
                data_dir,
                new_log,
            }) => report(run_node(config, data_dir, new_log).await),
            Command::Node(NodeCommand::Check { config }) => report(check(&config)),
            Command::Node(NodeCommand::Recover(a)) => report(a.run(recover).await),
            Command::Node(NodeCommand::Compact(a)) => report(a.run(compact).await),
            Command::Node(NodeCommand::PurgeSharedTokens(a)) => {
                report(a.run(purge_shared_tokens).await)
            }
            Command::Ca(c) => report(pki::ca(c)),
            Command::Cert(c) => report(pki::cert(c)),
            Command::Keys(c) => report(keys::keys(c)),
            Command::Roster(c) => {
                init_tracing(LogFormat::Text, "warn");
                report(roster::roster(c).await)
            }
            Command::Alert(c) => {
                init_tracing(LogFormat::Text, "warn");
                report(records::alert(c).await)
            }
            Command::CaseRef(c) => {
                init_tracing(LogFormat::Text, "warn");
                report(records::case_ref(c).await)
            }
            Command::Selector(c) => report(selector(c)),
            Command::Case(c) => {
                init_tracing(LogFormat::Text, "warn");
                report(cases::case(c).await)
            }
            Command::Query(a) => {
                init_tracing(LogFormat::Text, "warn");
                report(cases::query(a).await)
            }
            Command::Mla(c) => {
                init_tracing(LogFormat::Text, "warn");
                report(cases::mla(c).await)
            }
            Command::Stats(c) => {
                init_tracing(LogFormat::Text, "warn");
                report(stats::stats(c).await)
            }
            Command::Peers(a) => {
                init_tracing(LogFormat::Text, "warn");
                report(records::peers(a).await)
            }
            Command::Audit(c) => {
                init_tracing(LogFormat::Text, "warn");
                report(audit::audit(c).await)
            }
            // The doctor prints its own findings: a failed check is exit
            // code 1 with nothing more to say.
            Command::Doctor {
                config,
                data_dir,
                json,
            } => match enlace::doctor::run(&config, data_dir.as_deref(), json).await {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => report(Err(InvalidConfig::new(e).into())),
            },
            Command::Demo(a) => report(demo::run(a).await),
            Command::Bench(a) => report(crate::bench::run(a).await),
        }
    })
}

/// `enlace node check`: an [`InvalidConfig`] if the configuration, or
/// anything it names, is not usable.
fn check(config: &std::path::Path) -> anyhow::Result<()> {
    let s = enlace::trust::load::settings(config, None).map_err(InvalidConfig::new)?;
    println!(
        "configuration {} is valid: node {} in federation {}",
        config.display(),
        s.node_id,
        s.roster.federation
    );
    Ok(())
}

/// Why the audit log was resumed, as the recovery statement says.
const RECOVERY_REASON: &str = "the store was lost; own log recovered with `enlace node recover`";

/// `enlace node recover`: the node must be stopped (its store is locked
/// while it runs).
async fn recover(settings: enlace::trust::load::LoadedSettings, json: bool) -> anyhow::Result<()> {
    use enlace::audit::keeper::Resumed;
    use enlace::exchange::recover::PeerAnswer;
    let id = settings.node_id.clone();
    let node = enlace::node::Node::open(settings)
        .spelled()
        .with_context(|| format!("cannot open the store of node {id}"))?;
    // The audit log first: its first entries must follow the lost log's,
    // and the records recovery below writes entries of its own.
    let resumed = node
        .components()
        .audit
        .resume_lost_log(RECOVERY_REASON)
        .await
        .map_err(|e| anyhow::anyhow!("cannot resume the audit log: {e}"))?;
    let done = enlace::exchange::recover::recover_own_log(node.components().replication.clone())
        .await
        .spelled()?;
    let audit = match &resumed {
        Resumed::Untouched { held } => serde_json::json!({ "resumed": false, "held": held }),
        Resumed::Fresh => serde_json::json!({ "resumed": false, "held": 0 }),
        Resumed::After {
            after,
            witnessed_by,
            countersigned,
            refused,
        } => serde_json::json!({
            "resumed": true,
            "after": after,
            "witnessed_by": witnessed_by.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
            "countersigned_by": countersigned.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
            "refused": refused
                .iter()
                .map(|(p, why)| serde_json::json!({ "peer": p.as_str(), "error": why }))
                .collect::<Vec<_>>(),
        }),
    };
    if json {
        let peers: Vec<serde_json::Value> = done
            .peers
            .iter()
            .map(|(peer, a)| match a {
                PeerAnswer::Returned {
                    records,
                    seen_up_to,
                } => serde_json::json!({
                    "peer": peer.as_str(),
                    "records": records,
                    "seen_up_to": seen_up_to,
                }),
                PeerAnswer::Failed(e) => serde_json::json!({
                    "peer": peer.as_str(),
                    "error": e,
                }),
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "node": id.as_str(),
                "stored": done.stored,
                "highest": done.highest,
                "next_after": done.next_after,
                "holes": done.holes,
                "peers": peers,
                "audit": audit,
            })
        );
    } else {
        for (peer, a) in &done.peers {
            println!("{peer}: {}", a.describe());
        }
        println!(
            "node {id}: {} own records recovered (highest seq {}); the next publication follows seq {}; {} numbers not returned by any peer",
            done.stored, done.highest, done.next_after, done.holes
        );
        match &resumed {
            Resumed::After {
                after,
                countersigned,
                refused,
                ..
            } => {
                let names: Vec<&str> = countersigned.iter().map(|p| p.as_str()).collect();
                println!(
                    "audit log: entries 1..{after} were lost; it resumes after entry {after}, as the peers witnessed it; the statement was countersigned by {}",
                    names.join(", ")
                );
                for (peer, why) in refused {
                    println!("audit log: {peer} did not countersign: {why}");
                }
            }
            Resumed::Untouched { held } => {
                println!("audit log: {held} entries, as the peers witnessed; nothing to resume")
            }
            Resumed::Fresh => println!("audit log: no peer witnessed any of it; it starts afresh"),
        }
    }
    if done
        .peers
        .iter()
        .any(|(_, a)| matches!(a, PeerAnswer::Failed(_)))
    {
        bail!("some peers could not be asked; run it again when they are back");
    }
    Ok(())
}

/// `enlace node compact`: the node must be stopped (its store is locked
/// while it runs).
async fn compact(settings: enlace::trust::load::LoadedSettings, json: bool) -> anyhow::Result<()> {
    let store = enlace::store::Store::open_existing(
        &settings.data_dir,
        &settings.node_id,
        settings.cache_bytes,
    )
    .spelled()
    .with_context(|| format!("cannot open the store of node {}", settings.node_id))?;
    let done = store.compact().await.spelled()?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "node": settings.node_id.as_str(),
                "records": done.frames,
                "bytes_before": done.before,
                "bytes_after": done.after,
                "rewritten": done.rewritten,
            })
        );
    } else if !done.rewritten {
        println!(
            "record log of node {} left as it is: {} records, {} bytes; rewriting it would make it longer",
            settings.node_id, done.frames, done.before
        );
    } else {
        println!(
            "record log of node {} compacted: {} records, {} → {} bytes ({} reclaimed)",
            settings.node_id,
            done.frames,
            done.before,
            done.after,
            done.before.saturating_sub(done.after)
        );
    }
    Ok(())
}

/// `enlace node purge-shared-tokens`: refused while the configuration
/// still names the shared key, or names no OPRF key.
async fn purge_shared_tokens(
    settings: enlace::trust::load::LoadedSettings,
    json: bool,
) -> anyhow::Result<()> {
    if settings.config.key_files.matching.is_some() {
        bail!(
            "the configuration still names [matching]: remove it, restart the node once, stop it, and destroy the shared key first (docs/runbook.md, section 5)"
        );
    }
    if settings.config.key_files.oprf.is_none() {
        bail!("the configuration names no [oprf]: this node has not moved off the shared key");
    }
    let store = enlace::store::Store::open_existing(
        &settings.data_dir,
        &settings.node_id,
        settings.cache_bytes,
    )
    .spelled()
    .with_context(|| format!("cannot open the store of node {}", settings.node_id))?;
    let purged =
        enlace::node::purge_shared_tokens(&store, &settings.node_id, enlace::clock::now_ms())
            .await
            .spelled()?;
    if json {
        println!(
            "{}",
            serde_json::json!({"node": settings.node_id.as_str(), "purged": purged})
        );
    } else {
        println!(
            "node {}: {purged} alert versions no longer in force that carried shared-key selectors purged (tombstones kept)",
            settings.node_id
        );
    }
    Ok(())
}

fn selector(cmd: SelectorCommand) -> anyhow::Result<()> {
    let SelectorCommand::Hash {
        kind,
        value,
        config,
        key,
        epoch,
        json,
    } = cmd;
    let kind = enlace::records::vocabulary::SelectorKind::parse(&kind).spelled()?;
    // NOTE: a bad --config here is a failure (exit code 1), not an
    // invalid configuration: this command does not run the node.
    let matching = match (config, key) {
        (Some(config), _) => enlace::trust::load::settings(&config, None)
            .spelled()?
            .matching
            .ok_or_else(|| anyhow!("{} has no [matching] key", config.display()))?,
        (None, Some(key)) => std::sync::Arc::new(
            enlace::records::selector::MatchingKey::load(&key, epoch).spelled()?,
        ),
        (None, None) => bail!("give --config or --key"),
    };
    use enlace::records::selector::{NormalisationVersion, normalise, normalise_as};
    let normalised = normalise(kind, &value).spelled()?;
    let hashed = matching.hash_with_v1(kind, &value).spelled()?;
    let token = hashed.token;
    // NOTE: during the v1 → v2 transition an agency comparing older
    // records needs the v1 token too (docs/selectors.md, "Versions").
    let v1 = match hashed.v1 {
        Some(t) => Some((
            normalise_as(NormalisationVersion::V1, kind, &value).spelled()?,
            t,
        )),
        None => None,
    };
    if json {
        let v1 = v1
            .as_ref()
            .map(|(n, t)| serde_json::json!({"normalised": n, "token": t.hex()}));
        println!(
            "{}",
            serde_json::json!({"kind": kind.code(), "normalised": normalised, "epoch": token.epoch, "token": token.hex(), "v1": v1})
        );
    } else {
        println!("kind           {}", kind.code());
        println!("normalised     {normalised}");
        println!("epoch          {}", token.epoch);
        println!("token          {}", token.hex());
        if let Some((n, t)) = &v1 {
            println!("v1 normalised  {n}");
            println!("v1 token       {}", t.hex());
        }
    }
    Ok(())
}

/// `enlace node run`: an [`InvalidConfig`] before anything binds; a
/// failure to start or to run is logged, then returned.
async fn run_node(config: PathBuf, data_dir: Option<PathBuf>, new_log: bool) -> anyhow::Result<()> {
    // A new member given only an anchor fetches the chain first.
    if let Some(head) = enlace::exchange::bootstrap::chain_from_peers(&config, data_dir.as_deref())
        .await
        .map_err(|e| anyhow::anyhow!(e))?
    {
        eprintln!(
            "roster chain fetched from a peer and verified from the anchor, up to version {head}"
        );
    }
    let settings =
        enlace::trust::load::settings(&config, data_dir.as_deref()).map_err(InvalidConfig::new)?;
    init_tracing(settings.log_format, "info");
    #[cfg(unix)]
    enlace::node::restrict_new_files();
    let bound = async {
        enlace::node::Listeners::bind(settings.peer_listen, settings.agency_listen)
            .await?
            .with_metrics(settings.metrics_listen)
            .await
    };
    let listeners = bound
        .await
        .spelled()
        .map_err(|e| logged(e, "cannot start"))?;
    let node = enlace::node::Node::open(settings)
        .spelled()
        .map_err(|e| logged(e, "cannot open the node"))?;
    if new_log {
        node.components().publisher.declare_new_log();
    }
    node.run(listeners, shutdown_signal())
        .await
        .spelled()
        .map_err(|e| logged(e, "node failed"))
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
