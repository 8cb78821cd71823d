//! `enlace alert import`: alerts and case references from a JSON-lines
//! file, all or nothing.

use std::io::BufRead;
use std::path::Path;

use anyhow::{Context, bail};

use super::super::agency::{ClientArg, connect, status_message};
use super::super::input::ImportLine;
use enlace::wire::pb::v1 as pb;

enum Prepared {
    Alert(pb::PublishAlertRequest),
    Case(pb::PublishCaseReferenceRequest),
}

/// Imports a JSON-lines file: parse every line, have the node check every
/// record (`validate_only`), and only then publish them, in order.
pub(super) async fn import(client: &ClientArg, file: &Path, dry_run: bool) -> anyhow::Result<()> {
    let f = std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut prepared = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let n = i + 1;
        let line = line.with_context(|| format!("{}: line {n}", file.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: ImportLine = match serde_json::from_str(&line) {
            Ok(p) => p,
            Err(e) => {
                problems.push(format!("line {n}: {e}"));
                continue;
            }
        };
        match parsed {
            ImportLine::Alert(a) => match a.to_pb() {
                Ok((alert, values)) => prepared.push((
                    n,
                    Prepared::Alert(pb::PublishAlertRequest {
                        alert: Some(alert),
                        to: a.to.clone(),
                        selector_values: values,
                        validate_only: true,
                    }),
                )),
                Err(e) => problems.push(format!("line {n}: {e}")),
            },
            ImportLine::CaseReference(c) => match c.to_pb() {
                Ok(case) => prepared.push((
                    n,
                    Prepared::Case(pb::PublishCaseReferenceRequest {
                        case_reference: Some(case),
                        to: c.to.clone(),
                        validate_only: true,
                    }),
                )),
                Err(e) => problems.push(format!("line {n}: {e}")),
            },
        }
    }
    if !problems.is_empty() {
        bail!(
            "{}: nothing was published:\n  {}",
            file.display(),
            problems.join("\n  ")
        );
    }
    let mut c = connect(client).await?;
    for (n, p) in &prepared {
        let r = match p {
            Prepared::Alert(req) => c.publish_alert(req.clone()).await,
            Prepared::Case(req) => c.publish_case_reference(req.clone()).await,
        };
        if let Err(s) = r {
            problems.push(format!("line {n}: {}", status_message(&s)));
        }
    }
    if !problems.is_empty() {
        bail!(
            "{}: nothing was published:\n  {}",
            file.display(),
            problems.join("\n  ")
        );
    }
    if dry_run {
        eprintln!(
            "{}: {} records are valid; nothing was published (--dry-run)",
            file.display(),
            prepared.len()
        );
        return Ok(());
    }
    let mut published = 0;
    for (n, p) in prepared {
        let r = match p {
            Prepared::Alert(mut req) => {
                req.validate_only = false;
                c.publish_alert(req).await
            }
            Prepared::Case(mut req) => {
                req.validate_only = false;
                c.publish_case_reference(req).await
            }
        };
        match r {
            Ok(resp) => {
                published += 1;
                println!("{}", resp.into_inner().record_id);
            }
            Err(s) => {
                bail!(
                    "line {n}: {} ({published} records before it were published)",
                    status_message(&s)
                );
            }
        }
    }
    eprintln!("{}: {published} records published", file.display());
    Ok(())
}
