//! The `enlace` command tree.
//!
//! Exit codes: 0 success; 1 failure (the message says what failed);
//! 2 bad command line (clap); 64 invalid configuration, before anything
//! binds.

mod demo;
mod pki;
mod records;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::LogFormat;

/// Exit code for an invalid configuration (EX_USAGE).
pub const EXIT_CONFIG: u8 = 64;

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
    /// Record-signing keys.
    #[command(subcommand)]
    Keys(pki::KeysCommand),
    /// Publish, list and watch alerts through a node's agency API.
    #[command(subcommand)]
    Alert(records::AlertCommand),
    /// Replication status of the node's peers.
    Peers(records::PeersArgs),
    /// Start a three-member federation on this machine and show an alert
    /// travelling between members.
    Demo(demo::DemoArgs),
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
    },
    /// Check a configuration and everything it names, then exit.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
}

/// Sets up logging: `RUST_LOG` if set, else `default`.
pub fn init_tracing(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Node(NodeCommand::Run { config, data_dir }) => {
                run_node(config, data_dir).await
            }
            Command::Node(NodeCommand::Check { config }) => {
                match crate::config::load(&config, None) {
                    Ok(s) => {
                        println!(
                            "configuration {} is valid: node {} in federation {}",
                            config.display(),
                            s.node_id,
                            s.roster.federation
                        );
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        ExitCode::from(EXIT_CONFIG)
                    }
                }
            }
            Command::Ca(c) => report(pki::ca(c)),
            Command::Cert(c) => report(pki::cert(c)),
            Command::Keys(c) => report(pki::keys(c)),
            Command::Alert(c) => {
                init_tracing(LogFormat::Text, "warn");
                report(records::alert(c).await)
            }
            Command::Peers(a) => {
                init_tracing(LogFormat::Text, "warn");
                report(records::peers(a).await)
            }
            Command::Demo(a) => report(demo::run(a).await),
        }
    })
}

fn report(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_node(config: PathBuf, data_dir: Option<PathBuf>) -> ExitCode {
    let settings = match crate::config::load(&config, data_dir.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    init_tracing(settings.log_format, "info");
    let listeners =
        match crate::node::Listeners::bind(settings.peer_listen, settings.agency_listen).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
    let node = match crate::node::Node::open(settings) {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(error = %e, "cannot open the node");
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match node.run(listeners, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "node failed");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
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
