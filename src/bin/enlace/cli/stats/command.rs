//! `enlace stats`: this node's protected tables, their publication and
//! correction, and the regional table assembled from every member's latest
//! reports. The node counts and protects; this command only asks, then
//! assembles and prints (docs/statistics.md).

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::cli::agency::{ClientArg, connect, status_error};
use crate::failure::Spelled;
use enlace::records::model::Errors;
use enlace::stats::{
    CorrectionReason, MemberReport, Period, StatisticalReport, TableKind, regional,
};
use enlace::wire::pb::v1 as pb;

#[derive(Debug, Subcommand)]
pub enum StatsCommand {
    /// This node's protected tables for a period, computed from its local
    /// cases; nothing is published. Suppressed cells are marked primary or
    /// secondary.
    Compute {
        #[command(flatten)]
        client: ClientArg,
        /// A year (2026) or a quarter (2026-Q1).
        #[arg(long)]
        period: String,
        /// victims, persons or smuggling (both smuggling tables); default all.
        #[arg(long)]
        table: Option<String>,
        /// One object per cell.
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// CSV in the layout of the UNODC data collection.
        #[arg(long)]
        csv: bool,
    },
    /// Publish this node's protected tables for a period as signed reports
    /// to every member, or correct the ones published before.
    Publish {
        #[command(flatten)]
        client: ClientArg,
        #[arg(long)]
        period: String,
        #[arg(long)]
        table: Option<String>,
        /// Why a new version replaces the published one: late_records,
        /// data_correction, reclassification, method_change. Required when
        /// a report for the table and period exists.
        #[arg(long)]
        correction: Option<String>,
        /// Check and compute, publish nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// The regional table: every member's latest report, one column per
    /// member and the regional total, with SDG 16.2.2 rates.
    Regional {
        #[command(flatten)]
        client: ClientArg,
        #[arg(long)]
        period: String,
        #[arg(long)]
        table: Option<String>,
        /// text (default), json, csv (UNODC data-collection layout) or html
        /// (a self-contained report with charts).
        #[arg(long, default_value = "text")]
        format: String,
        /// Write to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Withdraw this node's published report for a table and period.
    Withdraw {
        #[command(flatten)]
        client: ClientArg,
        #[arg(long)]
        period: String,
        /// victims, persons, smuggled or smuggling_persons.
        #[arg(long)]
        table: String,
        #[arg(long)]
        reason: String,
    },
}

/// The period and tables of the command line, checked before connecting.
fn selection(period: &str, table: Option<&str>) -> anyhow::Result<(Period, Vec<TableKind>)> {
    let period = Period::parse(period).spelled().context("--period")?;
    let kinds = match table {
        Some(t) => TableKind::parse_selection(t).spelled().context("--table")?,
        None => TableKind::ALL.to_vec(),
    };
    Ok((period, kinds))
}

fn request(period: Period, kinds: &[TableKind]) -> pb::StatisticsRequest {
    pb::StatisticsRequest {
        period: period.to_string(),
        tables: kinds.iter().map(|k| k.wire()).collect(),
    }
}

/// A report as the node sent it, read back into the library's type.
pub(crate) fn decode(report: pb::StatisticalReport) -> anyhow::Result<StatisticalReport> {
    let mut errors = Errors::default();
    match enlace::wire::report_from_pb(report, "report", &mut errors) {
        Some(r) if errors.0.is_empty() => Ok(r),
        _ => bail!(
            "the node sent a report this version cannot read: {}",
            enlace::records::model::ValidationErrors(errors.0)
        ),
    }
}

pub async fn stats(cmd: StatsCommand) -> anyhow::Result<()> {
    match cmd {
        StatsCommand::Compute {
            client,
            period,
            table,
            json,
            csv,
        } => {
            let (period, kinds) = selection(&period, table.as_deref())?;
            let mut c = connect(&client).await?;
            let resp = c
                .compute_statistics(request(period, &kinds))
                .await
                .map_err(status_error)?
                .into_inner();
            let reports: Vec<MemberReport> = resp
                .reports
                .into_iter()
                .map(|r| {
                    Ok(MemberReport {
                        member: resp.member.clone(),
                        country: resp.country.clone(),
                        report: decode(r)?,
                    })
                })
                .collect::<anyhow::Result<_>>()?;
            super::output::local(&reports, json, csv)
        }
        StatsCommand::Publish {
            client,
            period,
            table,
            correction,
            dry_run,
            json,
        } => {
            let (period, kinds) = selection(&period, table.as_deref())?;
            let correction = correction
                .map(|c| {
                    CorrectionReason::parse(&c)
                        .spelled()
                        .context("--correction")
                })
                .transpose()?;
            let mut c = connect(&client).await?;
            let resp = c
                .publish_statistics(pb::PublishStatisticsRequest {
                    period: period.to_string(),
                    tables: kinds.iter().map(|k| k.wire()).collect(),
                    correction: correction.map_or(0, CorrectionReason::wire),
                    validate_only: dry_run,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            for r in &resp.reports {
                let table = TableKind::from_wire(r.table).map_or("?", |k| k.code());
                if json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "table": table,
                            "period": period.to_string(),
                            "outcome": if dry_run { "checked" } else { r.outcome.as_str() },
                            "record_id": r.record_id,
                            "version": r.version,
                        })
                    );
                } else if dry_run {
                    println!("{table} {period}: checked, nothing published");
                } else if r.record_id.is_empty() {
                    println!("{table} {period}: {} (version {})", r.outcome, r.version);
                } else {
                    println!(
                        "{table} {period}: {} as version {} ({})",
                        r.outcome, r.version, r.record_id
                    );
                }
            }
            Ok(())
        }
        StatsCommand::Regional {
            client,
            period,
            table,
            format,
            out,
        } => {
            let (period, kinds) = selection(&period, table.as_deref())?;
            let format = super::output::Format::parse(&format)?;
            let mut c = connect(&client).await?;
            let resp = c
                .regional_statistics(request(period, &kinds))
                .await
                .map_err(status_error)?
                .into_inner();
            let mut reports = Vec::new();
            for m in resp.reports {
                let report = m
                    .report
                    .map(decode)
                    .transpose()?
                    .with_context(|| format!("{}'s report is empty", m.member))?;
                reports.push(MemberReport {
                    member: m.member,
                    country: m.country,
                    report,
                });
            }
            let mut tables = Vec::new();
            for kind in kinds {
                let of_kind: Vec<MemberReport> = reports
                    .iter()
                    .filter(|r| r.report.kind() == kind)
                    .cloned()
                    .collect();
                if of_kind.is_empty() {
                    eprintln!("no member has published the {kind} table for {period}");
                    continue;
                }
                tables.push(
                    regional::assemble(kind, period, &of_kind)
                        .with_context(|| format!("the {kind} table"))?,
                );
            }
            if tables.is_empty() {
                bail!("no report for {period} is held by this node yet");
            }
            super::output::regional(&tables, format, out.as_deref())
        }
        StatsCommand::Withdraw {
            client,
            period,
            table,
            reason,
        } => {
            let (period, kinds) = selection(&period, Some(&table))?;
            let mut c = connect(&client).await?;
            let held = c
                .regional_statistics(request(period, &kinds))
                .await
                .map_err(status_error)?
                .into_inner();
            let own = held.member;
            let mine: Vec<_> = held
                .reports
                .into_iter()
                .filter(|m| m.member == own)
                .collect();
            if mine.is_empty() {
                bail!("this node has no published {table} report for {period}");
            }
            for m in mine {
                c.withdraw_record(pb::WithdrawRecordRequest {
                    record_id: m.record_id.clone(),
                    reason: reason.clone(),
                    validate_only: false,
                })
                .await
                .map_err(status_error)?;
                println!("withdrawn: {}", m.record_id);
            }
            Ok(())
        }
    }
}
