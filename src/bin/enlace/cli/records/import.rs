//! `enlace alert import`: alerts and case references from a JSON-lines
//! file, all or nothing, and safe to run again.
//!
//! Three passes. First every line is read and parsed: a line longer than
//! the node accepts ([`MAX_LINE_BYTES`]) is refused here, before anything
//! is sent. Then the node checks every parsed line (`validate_only`), so
//! that the JSON errors and the node's rule errors of the whole file are
//! reported together, each with its line; if any line is bad, nothing is
//! published. Only then are the lines published, in order.
//!
//! Each request carries an idempotency key: the SHA-256 of the request
//! the line makes (its canonical form: what the line says, whatever its
//! spacing, key order or list-output fields). The node stores the key with
//! the record, in the same transaction, and answers a repeat with the
//! record it already holds (see `enlace::store::publish_keys`). So a run
//! that was interrupted (the client killed, the node restarted, a crash
//! between the node's acknowledgement and the client noting it) is resumed
//! by running it again: what went through is reported as already
//! published and skipped, the rest is published. Identical lines in one
//! file make one record.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

use anyhow::{Context, bail};
use prost::Message;

use super::super::agency::{Client, ClientArg, connect, status_message};
use super::super::input::{ImportLine, import_line};
use enlace::wire::pb::v1 as pb;

/// Longest line read: the largest request the node accepts. No valid
/// record comes near it.
pub const MAX_LINE_BYTES: usize = enlace::service::MAX_AGENCY_REQUEST;
/// Lines between two progress reports on stderr.
const PROGRESS_EVERY: usize = 100;
/// Domain of the idempotency key, so that it can never collide with a
/// hash of anything else; bump it if the request's meaning changes.
const KEY_DOMAIN: &[u8] = b"enlace alert import v1\n";

#[derive(Clone)]
enum Request {
    Alert(pb::PublishAlertRequest),
    Case(pb::PublishCaseReferenceRequest),
}

impl Request {
    /// The canonical form's hash, hex: the request as it is encoded, with
    /// neither `validate_only` nor a key.
    fn content_key(&self) -> String {
        let encoded = match self {
            Request::Alert(r) => [b"alert\n".as_slice(), &r.encode_to_vec()].concat(),
            Request::Case(r) => [b"case-reference\n".as_slice(), &r.encode_to_vec()].concat(),
        };
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(KEY_DOMAIN);
        ctx.update(&encoded);
        hex::encode(ctx.finish().as_ref())
    }

    fn with(mut self, key: &str, validate_only: bool) -> Self {
        match &mut self {
            Request::Alert(r) => {
                r.idempotency_key = key.to_owned();
                r.validate_only = validate_only;
            }
            Request::Case(r) => {
                r.idempotency_key = key.to_owned();
                r.validate_only = validate_only;
            }
        }
        self
    }

    async fn send(self, c: &mut Client) -> Result<pb::PublishResponse, tonic::Status> {
        match self {
            Request::Alert(r) => c.publish_alert(r).await,
            Request::Case(r) => c.publish_case_reference(r).await,
        }
        .map(tonic::Response::into_inner)
    }
}

/// A line that parsed.
struct Line {
    n: usize,
    request: Request,
    key: String,
    /// The record it was published as, by this run or an earlier one.
    published_as: Option<String>,
}

/// What the first pass made of the file: the lines to send, the numbers of
/// lines that repeat an earlier one, and every problem found.
#[derive(Default)]
struct Read {
    lines: Vec<Line>,
    repeats: Vec<(usize, usize)>,
    problems: Vec<String>,
}

fn read_file(file: &Path) -> anyhow::Result<Read> {
    let f = std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut reader = std::io::BufReader::new(f);
    let mut out = Read::default();
    let mut first_of: HashMap<String, usize> = HashMap::new();
    let mut buf = Vec::new();
    let mut n = 0;
    loop {
        buf.clear();
        let len = reader
            .read_until(b'\n', &mut buf)
            .with_context(|| format!("cannot read {} after line {n}", file.display()))?;
        if len == 0 {
            break;
        }
        n += 1;
        while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            buf.pop();
        }
        if buf.len() > MAX_LINE_BYTES {
            out.problems.push(format!(
                "line {n}: the line is {} bytes; a line may be at most {MAX_LINE_BYTES} bytes \
                 (the largest request the node accepts)",
                buf.len()
            ));
            continue;
        }
        let Ok(text) = std::str::from_utf8(&buf) else {
            out.problems
                .push(format!("line {n}: the line is not UTF-8 text"));
            continue;
        };
        if text.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                out.problems.push(format!("line {n}: not JSON: {e}"));
                continue;
            }
        };
        let request = match import_line(value) {
            Ok(ImportLine::Alert(a)) => a.to_pb().map(|(alert, values)| {
                Request::Alert(pb::PublishAlertRequest {
                    alert: Some(alert),
                    to: a.to.clone(),
                    selector_values: values,
                    validate_only: false,
                    idempotency_key: String::new(),
                })
            }),
            Ok(ImportLine::CaseReference(c)) => c.to_pb().map(|case| {
                Request::Case(pb::PublishCaseReferenceRequest {
                    case_reference: Some(case),
                    to: c.to.clone(),
                    validate_only: false,
                    idempotency_key: String::new(),
                })
            }),
            Err(problems) => {
                out.problems
                    .extend(problems.into_iter().map(|p| format!("line {n}: {p}")));
                continue;
            }
        };
        match request {
            Ok(request) => {
                let key = request.content_key();
                if let Some(first) = first_of.get(&key) {
                    out.repeats.push((n, *first));
                    continue;
                }
                first_of.insert(key.clone(), n);
                out.lines.push(Line {
                    n,
                    request,
                    key,
                    published_as: None,
                });
            }
            Err(problems) => out
                .problems
                .extend(problems.0.into_iter().map(|p| format!("line {n}: {p}"))),
        }
    }
    Ok(out)
}

/// The node's refusal of a line, one problem per `field: rule`.
fn refusal(n: usize, s: &tonic::Status) -> Vec<String> {
    if s.code() == tonic::Code::InvalidArgument {
        s.message()
            .split("; ")
            .map(|p| format!("line {n}: {p}"))
            .collect()
    } else {
        vec![format!("line {n}: {}", status_message(s))]
    }
}

/// Counts for the progress lines.
#[derive(Default)]
struct Tally {
    published: usize,
    already: usize,
    failed: usize,
}

impl Tally {
    fn report(&self, file: &Path, done: usize, total: usize) {
        eprintln!(
            "{}: {done}/{total} lines: {} published, {} skipped as already published, {} failed",
            file.display(),
            self.published,
            self.already,
            self.failed
        );
    }
}

/// Imports a JSON-lines file (see the module docs).
pub(super) async fn import(client: &ClientArg, file: &Path, dry_run: bool) -> anyhow::Result<()> {
    let Read {
        mut lines,
        repeats,
        mut problems,
    } = read_file(file)?;
    for (n, first) in &repeats {
        eprintln!(
            "{}: line {n} repeats line {first}; it makes one record",
            file.display()
        );
    }
    // The node checks every line that parsed, even when others did not:
    // one run names every problem of the file.
    let mut c = match connect(client).await {
        Ok(c) => Some(c),
        Err(e) if !problems.is_empty() => {
            problems.push(format!("the node could not check the other lines: {e:#}"));
            None
        }
        Err(e) => return Err(e),
    };
    if let Some(c) = c.as_mut() {
        for line in &mut lines {
            match line.request.clone().with(&line.key, true).send(c).await {
                Ok(resp) if resp.already_published => line.published_as = Some(resp.record_id),
                Ok(_) => {}
                Err(s) => problems.extend(refusal(line.n, &s)),
            }
        }
    }
    if !problems.is_empty() {
        bail!(
            "{}: nothing was published; {} problems:\n  {}",
            file.display(),
            problems.len(),
            problems.join("\n  ")
        );
    }
    let Some(mut c) = c else {
        bail!("{}: no node to publish to", file.display());
    };
    let total = lines.len() + repeats.len();
    let already = lines.iter().filter(|l| l.published_as.is_some()).count();
    if dry_run {
        eprintln!(
            "{}: {} records are valid ({already} already published); nothing was published (--dry-run)",
            file.display(),
            lines.len()
        );
        return Ok(());
    }
    let mut tally = Tally::default();
    let mut done = repeats.len();
    for line in &mut lines {
        done += 1;
        let answer = match &line.published_as {
            Some(id) => Ok((id.clone(), true)),
            None => line
                .request
                .clone()
                .with(&line.key, false)
                .send(&mut c)
                .await
                .map(|r| (r.record_id, r.already_published)),
        };
        match answer {
            Ok((id, already)) => {
                if already {
                    tally.already += 1;
                } else {
                    tally.published += 1;
                }
                println!("{id}");
                line.published_as = Some(id);
            }
            Err(s) => {
                tally.failed += 1;
                tally.report(file, done, total);
                bail!(
                    "{}: line {}: {}\n  the lines before it are published; run the same import \
                     again to publish the rest (lines already published are skipped)",
                    file.display(),
                    line.n,
                    status_message(&s)
                );
            }
        }
        if done % PROGRESS_EVERY == 0 {
            tally.report(file, done, total);
        }
    }
    tally.report(file, total, total);
    Ok(())
}
