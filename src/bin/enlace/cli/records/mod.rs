//! `enlace alert …`, `enlace case-ref …` and `enlace peers`: the agency API
//! from the command line. Every command takes `--client FILE` (see
//! [`enlace::service::client`]).
//!
//! Output is for people by default (labels in Spanish and English) and for
//! programs with `--json`: one JSON object per line, so that `jq` and shell
//! loops work on it.

mod fields;
mod import;
mod peers;
mod watch;

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, Subcommand};

use super::agency::{Client, ClientArg, connect, status_error};
use super::input::{AlertInput, CaseInput, parse_time};
use super::output::{record_json, record_text};
use crate::failure::Spelled;
use enlace::records::vocabulary::{AlertType, Offence};
use enlace::wire::pb::v1 as pb;

use fields::{alert_input, case_input};
use import::import;

pub use fields::{AlertFields, CaseFields};
pub use peers::{PeersArgs, peers};
pub use watch::WatchArgs;
use watch::watch;

#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// Publish an alert; prints the new record id on the last line.
    Publish {
        #[command(flatten)]
        client: ClientArg,
        #[command(flatten)]
        fields: AlertFields,
        /// Recipients by node id, comma separated; default: all members.
        #[arg(long, value_delimiter = ',')]
        to: Vec<String>,
        /// Check everything, store nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Publish a new version of one of this node's alerts: the flags given
    /// replace those fields, the rest is kept.
    Update {
        #[command(flatten)]
        client: ClientArg,
        /// Any record id of the alert's series.
        record_id: String,
        #[command(flatten)]
        fields: AlertFields,
        /// Drop the existing selectors (new --selector values are kept).
        #[arg(long)]
        clear_selectors: bool,
        #[arg(long)]
        dry_run: bool,
    },
    /// Withdraw one of this node's alerts (its whole series).
    Withdraw {
        #[command(flatten)]
        client: ClientArg,
        record_id: String,
        #[arg(long)]
        reason: String,
    },
    /// List the records this node holds: by default the current version of
    /// each series, flagging withdrawn and expired ones.
    List(ListArgs),
    /// Show one record.
    Get {
        #[command(flatten)]
        client: ClientArg,
        record_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Print records as they arrive, until interrupted.
    Watch(WatchArgs),
    /// Publish alerts and case references from a JSON-lines file (one
    /// record per line, fields as in `list --json`, `"kind"` alert or
    /// case-reference). Every line is checked first; if any is bad, nothing
    /// is published. Run it again after an interruption: lines already
    /// published are skipped.
    Import {
        #[command(flatten)]
        client: ClientArg,
        file: PathBuf,
        /// Check every line, publish nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum CaseCommand {
    /// Publish a case reference; prints the new record id on the last line.
    Publish {
        #[command(flatten)]
        client: ClientArg,
        #[command(flatten)]
        fields: CaseFields,
        #[arg(long, value_delimiter = ',')]
        to: Vec<String>,
        #[arg(long)]
        dry_run: bool,
    },
    /// Publish a new version of one of this node's case references.
    Update {
        #[command(flatten)]
        client: ClientArg,
        record_id: String,
        #[command(flatten)]
        fields: CaseFields,
        #[arg(long)]
        dry_run: bool,
    },
    /// Withdraw one of this node's case references.
    Withdraw {
        #[command(flatten)]
        client: ClientArg,
        record_id: String,
        #[arg(long)]
        reason: String,
    },
    /// List case references.
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    client: ClientArg,
    /// Only records of this origin.
    #[arg(long)]
    origin: Option<String>,
    /// Only alerts of this type.
    #[arg(long = "type")]
    alert_type: Option<String>,
    #[arg(long)]
    offence: Option<String>,
    /// Only records naming this country (origin, transit or destination).
    #[arg(long)]
    country: Option<String>,
    /// active, superseded, withdrawn or expired.
    #[arg(long)]
    status: Option<String>,
    /// Only records created since this date or time.
    #[arg(long)]
    since: Option<String>,
    /// Also superseded versions and withdrawal records.
    #[arg(long)]
    all_versions: bool,
    /// alert, case-reference or withdrawal (`alert list` only).
    #[arg(long)]
    kind: Option<String>,
    /// One JSON object per record per line.
    #[arg(long)]
    json: bool,
}

fn print_record(r: &pb::RecordView, as_json: bool) {
    if as_json {
        println!("{}", record_json(r));
    } else {
        println!("{}", record_text(r));
    }
}

fn report_published(resp: pb::PublishResponse) {
    if resp.validated_only {
        eprintln!("valid: nothing was published (--dry-run)");
    } else {
        eprintln!(
            "published {}#{} (series {}, version {}; durable)",
            resp.origin, resp.seq, resp.series_id, resp.version
        );
        println!("{}", resp.record_id);
    }
}

async fn current(c: &mut Client, id: &str) -> anyhow::Result<pb::RecordView> {
    c.get_record(pb::GetRecordRequest {
        record_id: id.to_owned(),
    })
    .await
    .map(tonic::Response::into_inner)
    .map_err(status_error)
}

/// Which list command runs: `alert list` lists every kind (`--kind`
/// narrows it), `case-ref list` only case references.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Listing {
    Records,
    CaseReferences,
}

/// The wire name of a `--kind` value; kebab or snake case.
fn kind_filter(k: &str) -> anyhow::Result<&'static str> {
    match k.trim().to_ascii_lowercase().replace('-', "_").as_str() {
        "alert" => Ok("alert"),
        "case_reference" => Ok("case_reference"),
        "withdrawal" => Ok("withdrawal"),
        _ => bail!("--kind: unknown kind {k:?}; one of: alert, case-reference, withdrawal"),
    }
}

async fn list(c: &mut Client, a: &ListArgs, listing: Listing) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    // NOTE: a flag that cannot apply is refused, not ignored: a filter
    // silently dropped lists more than was asked for.
    let kind = match listing {
        Listing::CaseReferences => {
            for (given, flag, why) in [
                (
                    a.kind.is_some(),
                    "--kind",
                    "`case-ref list` lists case references only; use `alert list --kind KIND`",
                ),
                (
                    a.alert_type.is_some(),
                    "--type",
                    "case references have no alert type; use `alert list --type T`",
                ),
                (
                    a.country.is_some(),
                    "--country",
                    "case references name no countries; use `alert list --country XX`",
                ),
            ] {
                if given {
                    problems.push(format!("{flag}: {why}"));
                }
            }
            Some("case_reference")
        }
        Listing::Records => match a.kind.as_deref().map(kind_filter).transpose() {
            Ok(k) => k,
            Err(e) => {
                problems.push(e.to_string());
                None
            }
        },
    };
    let mut code =
        |field: &str, v: &Option<String>, parse: &dyn Fn(&str) -> anyhow::Result<i32>| match v {
            Some(v) => parse(v).unwrap_or_else(|e| {
                problems.push(format!("--{field}: {e}"));
                0
            }),
            None => 0,
        };
    let alert_type = code("type", &a.alert_type, &|s| {
        AlertType::parse(s).map(|t| t.wire()).spelled()
    });
    let offence = code("offence", &a.offence, &|s| {
        Offence::parse(s).map(|t| t.wire()).spelled()
    });
    let status = code("status", &a.status, &|s| {
        enlace::records::lifecycle::Status::parse(s)
            .map(|st| match st {
                enlace::records::lifecycle::Status::Active => pb::RecordStatus::Active as i32,
                enlace::records::lifecycle::Status::Superseded => {
                    pb::RecordStatus::Superseded as i32
                }
                enlace::records::lifecycle::Status::Withdrawn => pb::RecordStatus::Withdrawn as i32,
                enlace::records::lifecycle::Status::Expired => pb::RecordStatus::Expired as i32,
            })
            .spelled()
    });
    let since_ms = match &a.since {
        Some(s) => parse_time(s).unwrap_or_else(|e| {
            problems.push(format!("--since: {e}"));
            0
        }),
        None => 0,
    };
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    let mut after = 0;
    loop {
        let page = c
            .list_records(pb::ListRecordsRequest {
                after_position: after,
                limit: 0,
                origin: a.origin.clone().unwrap_or_default(),
                r#type: alert_type,
                offence,
                country: a.country.clone().unwrap_or_default(),
                status,
                since_ms,
                all_versions: a.all_versions,
                kind: kind.unwrap_or_default().to_owned(),
            })
            .await
            .map_err(status_error)?
            .into_inner();
        for r in &page.records {
            print_record(r, a.json);
        }
        if page.last_position == after {
            return Ok(());
        }
        after = page.last_position;
    }
}

pub async fn alert(cmd: AlertCommand) -> anyhow::Result<()> {
    match cmd {
        AlertCommand::Publish {
            client,
            fields,
            to,
            dry_run,
        } => {
            let mut input = AlertInput::default();
            fields.apply(&mut input)?;
            let (alert, selector_values) = input.to_pb()?;
            let mut c = connect(&client).await?;
            let resp = c
                .publish_alert(pb::PublishAlertRequest {
                    alert: Some(alert),
                    to,
                    selector_values,
                    validate_only: dry_run,
                    idempotency_key: String::new(),
                })
                .await
                .map_err(status_error)?
                .into_inner();
            report_published(resp);
            Ok(())
        }
        AlertCommand::Update {
            client,
            record_id,
            fields,
            clear_selectors,
            dry_run,
        } => {
            let mut c = connect(&client).await?;
            let now = current(&mut c, &record_id).await?;
            let Some(pb::record_view::Kind::Alert(old)) = now.kind else {
                bail!(
                    "{record_id} is not an alert with content (kind {}, status {})",
                    now.kind_name,
                    record_json(&now)["status"]
                );
            };
            let mut input = alert_input(&old);
            fields.apply(&mut input)?;
            let (mut alert, selector_values) = input.to_pb()?;
            if !clear_selectors {
                alert.selectors = old.selectors;
            }
            let resp = c
                .update_record(pb::UpdateRecordRequest {
                    record_id,
                    content: Some(pb::update_record_request::Content::Alert(alert)),
                    selector_values,
                    validate_only: dry_run,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            report_published(resp);
            Ok(())
        }
        AlertCommand::Withdraw {
            client,
            record_id,
            reason,
        } => withdraw(&client, record_id, reason).await,
        AlertCommand::List(a) => {
            let mut c = connect(&a.client).await?;
            list(&mut c, &a, Listing::Records).await
        }
        AlertCommand::Get {
            client,
            record_id,
            json,
        } => {
            let mut c = connect(&client).await?;
            print_record(&current(&mut c, &record_id).await?, json);
            Ok(())
        }
        AlertCommand::Watch(a) => watch(a).await,
        AlertCommand::Import {
            client,
            file,
            dry_run,
        } => import(&client, &file, dry_run).await,
    }
}

async fn withdraw(client: &ClientArg, record_id: String, reason: String) -> anyhow::Result<()> {
    let mut c = connect(client).await?;
    let resp = c
        .withdraw_record(pb::WithdrawRecordRequest {
            record_id,
            reason,
            validate_only: false,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    report_published(resp);
    Ok(())
}

pub async fn case_ref(cmd: CaseCommand) -> anyhow::Result<()> {
    match cmd {
        CaseCommand::Publish {
            client,
            fields,
            to,
            dry_run,
        } => {
            let mut input = CaseInput::default();
            fields.apply(&mut input);
            let case = input.to_pb()?;
            let mut c = connect(&client).await?;
            let resp = c
                .publish_case_reference(pb::PublishCaseReferenceRequest {
                    case_reference: Some(case),
                    to,
                    validate_only: dry_run,
                    idempotency_key: String::new(),
                })
                .await
                .map_err(status_error)?
                .into_inner();
            report_published(resp);
            Ok(())
        }
        CaseCommand::Update {
            client,
            record_id,
            fields,
            dry_run,
        } => {
            let mut c = connect(&client).await?;
            let now = current(&mut c, &record_id).await?;
            let Some(pb::record_view::Kind::CaseReference(old)) = now.kind else {
                bail!(
                    "{record_id} is not a case reference with content (kind {})",
                    now.kind_name
                );
            };
            let mut input = case_input(&old);
            fields.apply(&mut input);
            let case = input.to_pb()?;
            let resp = c
                .update_record(pb::UpdateRecordRequest {
                    record_id,
                    content: Some(pb::update_record_request::Content::CaseReference(case)),
                    selector_values: Vec::new(),
                    validate_only: dry_run,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            report_published(resp);
            Ok(())
        }
        CaseCommand::Withdraw {
            client,
            record_id,
            reason,
        } => withdraw(&client, record_id, reason).await,
        CaseCommand::List(a) => {
            let mut c = connect(&a.client).await?;
            list(&mut c, &a, Listing::CaseReferences).await
        }
    }
}
