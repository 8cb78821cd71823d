//! How statistical tables are printed: text for people, JSON and CSV for
//! programs. Pure functions from the library's tables to text.
//!
//! Text: one line per cell, one column per dimension (labels Spanish
//! first, "Mujer / Female"), then one column per member and the regional
//! total. Suppressed cells read "s" (primary) or "s*" (secondary), a total
//! over a suppressed cell reads "≥ n" (a lower bound), a total over rounded
//! figures "≈ n". Lines whose figures are all zero are left out (the legend
//! says so); the grand total is always shown.
//!
//! JSON: an array, one object per cell and member:
//! `{"table", "period", "member", "sex", "age_group", "exploitation",
//! "citizenship", "stage", "value", "suppressed"}`. A dimension the table
//! lacks is absent; a margin carries "total" (or the group's code, e.g.
//! "foreign") in the summed dimension; values are codes. `value` is null
//! when suppressed, and `suppressed` is "primary", "secondary" or null. In
//! the regional table `member` is each member or "all"; an "all" object
//! whose total is a lower bound has `"bound": "at_least"` and the bound as
//! its value.
//!
//! CSV: long format, as in the UNODC data collection, one row per cell and
//! member, RFC 4180 quoting, codes for labels:
//! - `country`: ISO 3166-1 alpha-2 of the member; empty for "all";
//! - `member`: the member's node id, or "all" for the regional total;
//! - `year`: the period's year; `period`: "2026" or "2026-Q1";
//! - `table`: the table's code ("victims", "persons", "smuggled",
//!   "smuggling_persons");
//! - `indicator`: what the value counts ("victims_detected",
//!   "persons_trafficking", "smuggled_migrants", "persons_smuggling");
//! - `sex`, `age_group`, `exploitation`, `citizenship`, `stage`: the value's
//!   code, "total" or a group's code; empty when the table lacks the
//!   dimension;
//! - `value`: the count, empty when suppressed (the bound for a lower
//!   bound);
//! - `flag`: empty, "suppressed_primary", "suppressed_secondary",
//!   "lower_bound" or "rounded_base_N" (N the rounding base).

use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use enlace::stats::{
    DimName, Figure, Key, MemberReport, Method, Period, Population, Rate, RateRow, RegionalTable,
    Suppression, TableKind, Total,
};

/// Every dimension a JSON object or CSV row can carry, in column order.
const DIMS: [DimName; 5] = [
    DimName::Sex,
    DimName::AgeGroup,
    DimName::Exploitation,
    DimName::Citizenship,
    DimName::Stage,
];

/// "Mujer / Female".
fn both(l: enlace::stats::Label) -> String {
    l.label()
}

/// The method and its parameters, for a header.
pub(crate) fn method_text(m: Method) -> String {
    match m {
        Method::Suppression { threshold } => format!(
            "supresión de celdas de 1 a {} y secundaria / cell suppression, 1 to {} and secondary",
            threshold.saturating_sub(1),
            threshold.saturating_sub(1)
        ),
        Method::Rounding { base } => {
            format!("redondeo a múltiplos de {base} / rounded to multiples of {base}")
        }
    }
}

fn figure_text(f: Figure) -> String {
    match f {
        Figure::Exact(v) | Figure::Rounded(v, _) => v.to_string(),
        Figure::Suppressed(Suppression::Primary) => "s".into(),
        Figure::Suppressed(Suppression::Secondary) => "s*".into(),
    }
}

fn total_text(t: Total) -> String {
    match t {
        Total::Exact(v) => v.to_string(),
        Total::Rounded(v, _) => format!("≈ {v}"),
        Total::AtLeast(v) => format!("≥ {v}"),
    }
}

fn is_zero(f: Figure) -> bool {
    f.value() == Some(0)
}

/// The labels of a cell's coordinates, one per dimension of its table.
fn key_labels(kind: TableKind, key: &Key) -> Vec<String> {
    let spec = kind.spec();
    key.iter()
        .enumerate()
        .map(|(i, c)| both(spec.coord_label(i, *c)))
        .collect()
}

/// Lays out rows of cells as aligned columns (numbers right-aligned).
fn columns(header: &[String], rows: &[Vec<String>], numeric_from: usize) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String]| {
        let mut parts = Vec::with_capacity(cells.len());
        for (i, (c, w)) in cells.iter().zip(&width).enumerate() {
            let pad = w.saturating_sub(c.chars().count());
            if i >= numeric_from {
                parts.push(format!("{}{c}", " ".repeat(pad)));
            } else {
                parts.push(format!("{c}{}", " ".repeat(pad)));
            }
        }
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(&mut out, header);
    let rule: Vec<String> = width.iter().map(|w| "-".repeat(*w)).collect();
    line(&mut out, &rule);
    for r in rows {
        line(&mut out, r);
    }
    out
}

fn header_dims(kind: TableKind) -> Vec<String> {
    kind.spec()
        .dims
        .iter()
        .map(|d| both(d.name.label()))
        .collect()
}

const LEGEND: &str = "s = suprimida (primaria) / suppressed (primary); \
s* = suprimida (secundaria) / suppressed (secondary); \
≥ n = al menos n: un miembro suprimió la celda / at least n: a member suppressed the cell; \
≈ n = suma de cifras redondeadas / sum of rounded figures.\n\
Se omiten las filas en cero / rows of zeros are omitted.\n";

fn population_text(p: Option<&Population>) -> String {
    p.map_or_else(
        || "sin población / no population".into(),
        |p| format!("{} ({}, {})", p.count, p.year, p.source),
    )
}

/// A member's own protected table, for people.
pub(crate) fn text_member(m: &MemberReport) -> String {
    let t = &m.report.table;
    let mut out = String::new();
    let _ = writeln!(out, "{} — {}", both(t.kind.label()), t.period);
    let _ = writeln!(out, "Miembro / Member: {} ({})", m.member, m.country);
    let _ = writeln!(out, "Método / Method: {}", method_text(t.method));
    if let Some(p) = &m.report.population {
        let _ = writeln!(out, "Población / Population: {}", population_text(Some(p)));
    }
    out.push('\n');
    let mut header = header_dims(t.kind);
    let numeric_from = header.len();
    header.push(m.member.clone());
    let last = t.cells.len().saturating_sub(1);
    let rows: Vec<Vec<String>> = t
        .cells
        .iter()
        .enumerate()
        .filter(|(i, c)| *i == last || c.value != Some(0))
        .map(|(_, c)| {
            let mut r = key_labels(t.kind, &c.key);
            r.push(match (c.value, c.suppressed) {
                (Some(v), _) => v.to_string(),
                (None, Some(Suppression::Primary)) => "s".into(),
                (None, _) => "s*".into(),
            });
            r
        })
        .collect();
    out.push_str(&columns(&header, &rows, numeric_from));
    out.push('\n');
    out.push_str(LEGEND);
    out
}

fn rate_text(r: &Rate) -> String {
    match r {
        Rate::Computed {
            per_100k, rounded, ..
        } => format!("{}{per_100k:.2}", if *rounded { "≈ " } else { "" }),
        Rate::NotComputable(n) => format!("n/c ({})", n.code()),
    }
}

fn rate_rows(t: &RegionalTable, title: &str, rows: &[&RateRow], out: &mut String) {
    let _ = writeln!(out, "{title}");
    let mut header = vec![String::new()];
    header.extend(t.members.iter().map(|m| m.member.clone()));
    header.push("total".into());
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut line = vec![both(r.label)];
            line.extend(r.members.iter().map(rate_text));
            line.push(r.regional.per_100k.map_or_else(
                || "n/c".into(),
                |v| format!("{}{v:.2}", if r.regional.rounded { "≈ " } else { "" }),
            ));
            line
        })
        .collect();
    out.push_str(&columns(&header, &body, 1));
}

/// The regional table, for people: one column per member and the total,
/// then the SDG 16.2.2 rates for the victims table.
pub(crate) fn text_regional(t: &RegionalTable) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} — {}", both(t.kind.label()), t.period);
    let _ = writeln!(out, "Tabla regional / Regional table");
    for m in &t.members {
        let _ = writeln!(
            out,
            "  {} ({}): {}",
            m.member,
            m.country,
            method_text(m.method)
        );
    }
    out.push('\n');
    let mut header = header_dims(t.kind);
    let numeric_from = header.len();
    header.extend(t.members.iter().map(|m| m.member.clone()));
    header.push("Total regional / Regional total".into());
    let last = t.rows.len().saturating_sub(1);
    let rows: Vec<Vec<String>> = t
        .rows
        .iter()
        .enumerate()
        .filter(|(i, r)| *i == last || !r.figures.iter().all(|f| is_zero(*f)))
        .map(|(_, r)| {
            let mut line = key_labels(t.kind, &r.key);
            line.extend(r.figures.iter().map(|f| figure_text(*f)));
            line.push(total_text(r.total));
            line
        })
        .collect();
    out.push_str(&columns(&header, &rows, numeric_from));
    out.push('\n');
    out.push_str(LEGEND);
    if let Some(rates) = &t.rates {
        out.push('\n');
        let _ = writeln!(
            out,
            "ODS 16.2.2: víctimas por 100 000 habitantes / SDG 16.2.2: victims per 100,000 population"
        );
        for m in &t.members {
            let _ = writeln!(
                out,
                "  Población / Population {}: {}",
                m.member,
                population_text(m.population.as_ref())
            );
        }
        out.push('\n');
        rate_rows(t, "Total", &[&rates.overall], &mut out);
        out.push('\n');
        let by_sex: Vec<&RateRow> = rates.by_sex.iter().collect();
        rate_rows(t, &both(DimName::Sex.label()), &by_sex, &mut out);
        out.push('\n');
        let by_age: Vec<&RateRow> = rates.by_age.iter().collect();
        rate_rows(t, &both(DimName::AgeGroup.label()), &by_age, &mut out);
        let o = &rates.overall.regional;
        let _ = writeln!(
            out,
            "\nTasa total / Overall rate: incluidos / included: {}; excluidos / excluded: {}",
            list(&o.included),
            list(&o.excluded)
        );
        out.push_str("n/c = no calculable / not computable\n");
    }
    out
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "—".into()
    } else {
        v.join(", ")
    }
}

/// The codes of a cell's coordinates, by dimension.
fn key_codes(kind: TableKind, key: &Key) -> Vec<(DimName, &'static str)> {
    let spec = kind.spec();
    key.iter()
        .enumerate()
        .map(|(i, c)| (spec.dims[i].name, spec.coord_label(i, *c).code))
        .collect()
}

fn cell_json(
    kind: TableKind,
    period: Period,
    member: &str,
    key: &Key,
    value: Option<u64>,
    suppressed: Option<Suppression>,
) -> Map<String, Value> {
    let mut o = Map::new();
    o.insert("table".into(), json!(kind.code()));
    o.insert("period".into(), json!(period.to_string()));
    o.insert("member".into(), json!(member));
    for (dim, code) in key_codes(kind, key) {
        o.insert(dim.code().into(), json!(code));
    }
    o.insert("value".into(), json!(value));
    o.insert("suppressed".into(), json!(suppressed.map(|s| s.code())));
    o
}

fn array(items: Vec<Value>) -> String {
    serde_json::to_string_pretty(&Value::Array(items)).unwrap_or_else(|_| "[]".into())
}

/// A member's own table as a JSON array, one object per cell.
pub(crate) fn json_member(m: &MemberReport) -> String {
    let t = &m.report.table;
    array(
        t.cells
            .iter()
            .map(|c| {
                Value::Object(cell_json(
                    t.kind,
                    t.period,
                    &m.member,
                    &c.key,
                    c.value,
                    c.suppressed,
                ))
            })
            .collect(),
    )
}

/// The regional table as a JSON array: per cell, one object per member,
/// then one for "all".
pub(crate) fn json_regional(t: &RegionalTable) -> String {
    let mut items = Vec::new();
    for r in &t.rows {
        for (m, f) in t.members.iter().zip(&r.figures) {
            let s = match f {
                Figure::Suppressed(s) => Some(*s),
                _ => None,
            };
            items.push(Value::Object(cell_json(
                t.kind,
                t.period,
                &m.member,
                &r.key,
                f.value(),
                s,
            )));
        }
        let mut all = cell_json(t.kind, t.period, "all", &r.key, Some(r.total.value()), None);
        if r.total.is_bound() {
            all.insert("bound".into(), json!("at_least"));
        }
        items.push(Value::Object(all));
    }
    array(items)
}

fn indicator(kind: TableKind) -> &'static str {
    match kind {
        TableKind::Victims => "victims_detected",
        TableKind::Persons => "persons_trafficking",
        TableKind::Smuggled => "smuggled_migrants",
        TableKind::SmugglingPersons => "persons_smuggling",
    }
}

/// One CSV field, quoted when RFC 4180 requires it.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

const CSV_HEADER: &str = "country,member,year,period,table,indicator,sex,age_group,exploitation,citizenship,stage,value,flag\r\n";

#[allow(clippy::too_many_arguments)]
fn csv_row(
    out: &mut String,
    country: &str,
    member: &str,
    kind: TableKind,
    period: Period,
    key: &Key,
    value: Option<u64>,
    flag: &str,
) {
    let codes = key_codes(kind, key);
    let mut fields = vec![
        field(country),
        field(member),
        period.year().to_string(),
        period.to_string(),
        kind.code().to_string(),
        indicator(kind).to_string(),
    ];
    for d in DIMS {
        let code = codes.iter().find(|(n, _)| *n == d).map_or("", |(_, c)| *c);
        fields.push(field(code));
    }
    fields.push(value.map_or_else(String::new, |v| v.to_string()));
    fields.push(field(flag));
    out.push_str(&fields.join(","));
    out.push_str("\r\n");
}

fn suppressed_flag(s: Suppression) -> &'static str {
    match s {
        Suppression::Primary => "suppressed_primary",
        Suppression::Secondary => "suppressed_secondary",
    }
}

fn figure_flag(f: Figure) -> String {
    match f {
        Figure::Exact(_) => String::new(),
        Figure::Rounded(_, base) => format!("rounded_base_{base}"),
        Figure::Suppressed(s) => suppressed_flag(s).into(),
    }
}

/// A member's own table as CSV.
pub(crate) fn csv_member(m: &MemberReport) -> String {
    let t = &m.report.table;
    let mut out = String::from(CSV_HEADER);
    for c in &t.cells {
        let flag = match (c.suppressed, t.method) {
            (Some(s), _) => suppressed_flag(s).to_string(),
            (None, Method::Rounding { base }) => format!("rounded_base_{base}"),
            (None, Method::Suppression { .. }) => String::new(),
        };
        csv_row(
            &mut out, &m.country, &m.member, t.kind, t.period, &c.key, c.value, &flag,
        );
    }
    out
}

/// The regional table as CSV: per cell, one row per member, then "all".
pub(crate) fn csv_regional(t: &RegionalTable) -> String {
    let mut out = String::from(CSV_HEADER);
    for r in &t.rows {
        for (m, f) in t.members.iter().zip(&r.figures) {
            csv_row(
                &mut out,
                &m.country,
                &m.member,
                t.kind,
                t.period,
                &r.key,
                f.value(),
                &figure_flag(*f),
            );
        }
        let flag = match r.total {
            Total::Exact(_) => String::new(),
            Total::Rounded(_, base) => format!("rounded_base_{base}"),
            Total::AtLeast(_) => "lower_bound".into(),
        };
        csv_row(
            &mut out,
            "",
            "all",
            t.kind,
            t.period,
            &r.key,
            Some(r.total.value()),
            &flag,
        );
    }
    out
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
