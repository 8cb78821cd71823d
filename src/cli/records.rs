//! `enlace alert …` and `enlace peers`: the agency API from the command
//! line. Every command takes `--client FILE` (see [`crate::client`]).
//!
//! Output is for people by default and for programs with `--json`: one JSON
//! object per line, so that `jq` and shell loops work on it.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tonic::Status;

use crate::client::ClientConfig;
use crate::pb::v1 as pb;
use crate::pb::v1::agency_client::AgencyClient;

#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// Publish an alert; prints the new record id on the last line.
    Publish(PublishArgs),
    /// List the records this node holds (its own and those received).
    List(ListArgs),
    /// Show one record.
    Get {
        #[command(flatten)]
        client: ClientArg,
        /// The record id.
        record_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Print records as they arrive, until interrupted.
    Watch(WatchArgs),
}

#[derive(Debug, Args)]
pub struct ClientArg {
    /// Agency client file (endpoint, certificate, key, CA).
    #[arg(long, env = "ENLACE_CLIENT")]
    pub client: PathBuf,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    #[command(flatten)]
    client: ClientArg,
    /// Short text of the alert (at most 1000 characters, no personal data).
    #[arg(long)]
    summary: String,
    /// Language of the summary (BCP 47).
    #[arg(long, default_value = "es")]
    language: String,
    /// Recipients by node id, comma separated; default: all members.
    #[arg(long, value_delimiter = ',')]
    to: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    client: ClientArg,
    /// Only records of this origin.
    #[arg(long)]
    origin: Option<String>,
    /// One JSON object per record per line.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    client: ClientArg,
    /// Also print the records already held, first.
    #[arg(long)]
    existing: bool,
    /// Only records of this origin.
    #[arg(long)]
    origin: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct PeersArgs {
    #[command(flatten)]
    client: ClientArg,
    #[arg(long)]
    json: bool,
}

async fn connect(arg: &ClientArg) -> Result<AgencyClient<tonic::transport::Channel>, String> {
    let cfg = ClientConfig::load(&arg.client).map_err(|e| e.to_string())?;
    cfg.connect().await.map_err(|e| e.to_string())
}

/// A gRPC status as a one-line message for the terminal.
pub fn status_message(s: &Status) -> String {
    let what = match s.code() {
        tonic::Code::InvalidArgument => "invalid request",
        tonic::Code::NotFound => "not found",
        tonic::Code::PermissionDenied => "permission denied",
        tonic::Code::Unauthenticated => "not authenticated",
        tonic::Code::Unavailable => "node unavailable",
        _ => "request failed",
    };
    let mut msg = format!("{what}: {}", s.message());
    if matches!(s.code(), tonic::Code::Unknown | tonic::Code::Unavailable)
        && let Some(src) = std::error::Error::source(s)
    {
        msg.push_str(&format!(" ({})", crate::client::error_chain(src)));
    }
    msg
}

fn time(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

fn recipients(d: &Option<pb::Distribution>) -> Value {
    match d.as_ref().and_then(|d| d.scope.as_ref()) {
        Some(pb::distribution::Scope::Named(n)) => json!(n.members),
        _ => json!("all"),
    }
}

/// The JSON form of a record: one object, stable field names.
pub fn record_json(r: &pb::RecordView) -> Value {
    let mut v = json!({
        "record_id": r.record_id,
        "origin": r.origin,
        "seq": r.seq,
        "created_at": time(r.created_at_ms),
        "key_id": r.key_id,
        "position": r.position,
        "distribution": recipients(&r.distribution),
    });
    match &r.kind {
        Some(pb::record_view::Kind::Alert(a)) => {
            v["kind"] = json!("alert");
            v["summary"] = json!(a.summary);
            v["language"] = json!(a.language);
        }
        None => v["kind"] = json!("unknown"),
    }
    v
}

fn record_line(r: &pb::RecordView) -> String {
    let to = match recipients(&r.distribution) {
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        _ => "all".into(),
    };
    let what = match &r.kind {
        Some(pb::record_view::Kind::Alert(a)) => {
            format!("alerta/alert [{}] {}", a.language, a.summary)
        }
        None => "unknown".into(),
    };
    format!(
        "{}  {}#{}  {}  to:{}  signed:{}  {}",
        r.record_id,
        r.origin,
        r.seq,
        time(r.created_at_ms),
        to,
        r.key_id,
        what
    )
}

fn print_record(r: &pb::RecordView, as_json: bool) {
    if as_json {
        println!("{}", record_json(r));
    } else {
        println!("{}", record_line(r));
    }
}

pub async fn alert(cmd: AlertCommand) -> Result<(), String> {
    match cmd {
        AlertCommand::Publish(a) => {
            let mut c = connect(&a.client).await?;
            let resp = c
                .publish_alert(pb::PublishAlertRequest {
                    alert: Some(pb::Alert {
                        summary: a.summary,
                        language: a.language,
                    }),
                    to: a.to,
                })
                .await
                .map_err(|s| status_message(&s))?
                .into_inner();
            eprintln!("published {}#{} (durable)", resp.origin, resp.seq);
            println!("{}", resp.record_id);
            Ok(())
        }
        AlertCommand::List(a) => {
            let mut c = connect(&a.client).await?;
            let mut after = 0;
            loop {
                let page = c
                    .list_records(pb::ListRecordsRequest {
                        after_position: after,
                        limit: 0,
                        origin: a.origin.clone().unwrap_or_default(),
                    })
                    .await
                    .map_err(|s| status_message(&s))?
                    .into_inner();
                for r in &page.records {
                    print_record(r, a.json);
                }
                if page.last_position == after {
                    break;
                }
                after = page.last_position;
            }
            Ok(())
        }
        AlertCommand::Get {
            client,
            record_id,
            json,
        } => {
            let mut c = connect(&client).await?;
            let r = c
                .get_record(pb::GetRecordRequest { record_id })
                .await
                .map_err(|s| status_message(&s))?
                .into_inner();
            print_record(&r, json);
            Ok(())
        }
        AlertCommand::Watch(a) => {
            let mut c = connect(&a.client).await?;
            let origin = a.origin.clone().unwrap_or_default();
            let after = if a.existing {
                0
            } else {
                // Skip what is already held: find the current end.
                let mut after = 0;
                loop {
                    let page = c
                        .list_records(pb::ListRecordsRequest {
                            after_position: after,
                            limit: 10_000,
                            origin: String::new(),
                        })
                        .await
                        .map_err(|s| status_message(&s))?
                        .into_inner();
                    if page.last_position == after {
                        break after;
                    }
                    after = page.last_position;
                }
            };
            let mut stream = c
                .watch_records(pb::WatchRecordsRequest {
                    after_position: after,
                    origin,
                })
                .await
                .map_err(|s| status_message(&s))?
                .into_inner();
            eprintln!("watching for records; interrupt to stop");
            while let Some(r) = stream.message().await.map_err(|s| status_message(&s))? {
                print_record(&r, a.json);
            }
            Err("the node closed the watch stream".into())
        }
    }
}

pub async fn peers(a: PeersArgs) -> Result<(), String> {
    let mut c = connect(&a.client).await?;
    let resp = c
        .list_peers(pb::ListPeersRequest {})
        .await
        .map_err(|s| status_message(&s))?
        .into_inner();
    for p in resp.peers {
        if a.json {
            println!(
                "{}",
                json!({
                    "node_id": p.node_id,
                    "endpoint": p.endpoint,
                    "connected": p.connected,
                    "cursor": p.cursor,
                    "last_error": if p.last_error.is_empty() { Value::Null } else { json!(p.last_error) },
                    "last_contact": if p.last_contact_ms == 0 { Value::Null } else { json!(time(p.last_contact_ms)) },
                    "records_received": p.records_received,
                    "records_rejected": p.records_rejected,
                })
            );
        } else {
            println!(
                "{:<8} {:<22} {:<12} cursor {:>8}  received {:>8}  rejected {:>4}  {}",
                p.node_id,
                p.endpoint,
                if p.connected {
                    "connected"
                } else {
                    "disconnected"
                },
                p.cursor,
                p.records_received,
                p.records_rejected,
                p.last_error
            );
        }
    }
    Ok(())
}
