//! Where `enlace stats` output goes: one document for all the tables asked
//! for (one JSON array, one CSV with one header, one HTML file), to stdout
//! or to `--out`.

use std::path::Path;

use anyhow::{Context, bail};

use super::{html, render};
use enlace::stats::{MemberReport, RegionalTable};

/// `--format` of `stats regional`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Csv,
    Html,
}

impl Format {
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            "csv" => Ok(Self::Csv),
            "html" => Ok(Self::Html),
            other => bail!("--format: unknown format {other:?}; one of: text, json, csv, html"),
        }
    }
}

/// JSON arrays, one per table, as one array.
fn one_array(parts: impl IntoIterator<Item = String>) -> anyhow::Result<String> {
    let mut all = Vec::new();
    for p in parts {
        let v: Vec<serde_json::Value> =
            serde_json::from_str(&p).context("a rendered table is not a JSON array")?;
        all.extend(v);
    }
    Ok(serde_json::to_string_pretty(&all)? + "\n")
}

/// CSV documents with the same header, as one.
fn one_csv(parts: impl IntoIterator<Item = String>) -> String {
    let mut out = String::new();
    for (i, p) in parts.into_iter().enumerate() {
        if i == 0 {
            out.push_str(&p);
        } else {
            out.push_str(p.split_once("\r\n").map_or("", |(_, rows)| rows));
        }
    }
    out
}

/// HTML documents, one per table, as one: the first one's head, every
/// one's body.
fn one_html(parts: Vec<String>) -> String {
    let Some(first) = parts.first() else {
        return String::new();
    };
    let head = first.split_once("<body>").map_or("", |(h, _)| h);
    let mut out = format!("{head}<body>");
    for p in &parts {
        let body = p
            .split_once("<body>")
            .and_then(|(_, b)| b.rsplit_once("</body>"))
            .map_or("", |(b, _)| b);
        out.push_str(body);
    }
    out.push_str("</body>\n</html>\n");
    out
}

fn emit(text: &str, out: Option<&Path>) -> anyhow::Result<()> {
    match out {
        Some(path) => {
            std::fs::write(path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("written to {}", path.display());
            Ok(())
        }
        None => {
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(text.as_bytes()) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                r => r.context("cannot write to stdout"),
            }
        }
    }
}

/// This node's own protected tables.
pub fn local(reports: &[MemberReport], json: bool, csv: bool) -> anyhow::Result<()> {
    let text = if json {
        one_array(reports.iter().map(render::json_member))?
    } else if csv {
        one_csv(reports.iter().map(render::csv_member))
    } else {
        reports
            .iter()
            .map(render::text_member)
            .collect::<Vec<_>>()
            .join("\n")
    };
    emit(&text, None)
}

/// Regional tables, in `format`.
pub fn regional(
    tables: &[RegionalTable],
    format: Format,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    let text = match format {
        Format::Text => tables
            .iter()
            .map(render::text_regional)
            .collect::<Vec<_>>()
            .join("\n"),
        Format::Json => one_array(tables.iter().map(render::json_regional))?,
        Format::Csv => one_csv(tables.iter().map(render::csv_regional)),
        Format::Html => one_html(tables.iter().map(html::html_regional).collect()),
    };
    emit(&text, out)
}
