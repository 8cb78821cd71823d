//! The regional table as one self-contained HTML file: the table, the SDG
//! 16.2.2 rates and SVG bar charts, with no script, font, style sheet or
//! link from elsewhere, so that it can be mailed, archived and opened
//! offline.
//!
//! The charts are drawn with `plotters`' SVG backend, which writes text as
//! `<text>` elements (the reader's browser draws the glyphs): no font is
//! read or rasterised here, so no system font library is needed. One chart
//! per dimension of the table (for the victims table: sex, age group, form
//! of exploitation, citizenship), one group of bars per value, one bar per
//! member. A suppressed figure has no bar: it is labelled "s" or "s*" on
//! the axis, never drawn as zero. The markup is well-formed XML (void
//! elements self-closed) and every text is escaped.

use std::fmt::Write as _;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use enlace::stats::{Coord, Figure, RegionalTable, Suppression};

use super::render::{self, method_text};

/// Escapes text for HTML element content and attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em}\
table{border-collapse:collapse;font-size:0.85em}\
th,td{border:1px solid #999;padding:2px 6px}\
td.n{text-align:right}\
.note{color:#555;font-size:0.85em}";

fn figure_cell(f: Figure) -> String {
    match f {
        Figure::Exact(v) | Figure::Rounded(v, _) => v.to_string(),
        Figure::Suppressed(Suppression::Primary) => "s".into(),
        Figure::Suppressed(Suppression::Secondary) => "s*".into(),
    }
}

fn total_cell(t: enlace::stats::Total) -> String {
    match t {
        enlace::stats::Total::Exact(v) => v.to_string(),
        enlace::stats::Total::Rounded(v, _) => format!("≈ {v}"),
        enlace::stats::Total::AtLeast(v) => format!("≥ {v}"),
    }
}

/// The regional table as a self-contained HTML document.
pub(crate) fn html_regional(t: &RegionalTable) -> String {
    let spec = t.kind.spec();
    let title = format!("{} — {}", t.kind.label().label(), t.period);
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"es\">\n<head>\n<meta charset=\"utf-8\"/>\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        escape(&title),
        escape(&title)
    );
    out.push_str("<h2>Métodos / Methods</h2>\n<ul>\n");
    for m in &t.members {
        let _ = writeln!(
            out,
            "<li>{} ({}): {}</li>",
            escape(&m.member),
            escape(&m.country),
            escape(&method_text(m.method))
        );
    }
    out.push_str("</ul>\n");

    out.push_str("<h2>Tabla regional / Regional table</h2>\n<table>\n<tr>");
    for d in &spec.dims {
        let _ = write!(out, "<th>{}</th>", escape(&d.name.label().label()));
    }
    for m in &t.members {
        let _ = write!(out, "<th>{}</th>", escape(&m.member));
    }
    out.push_str("<th>Total regional / Regional total</th></tr>\n");
    let last = t.rows.len().saturating_sub(1);
    for (i, r) in t.rows.iter().enumerate() {
        if i != last && r.figures.iter().all(|f| f.value() == Some(0)) {
            continue;
        }
        out.push_str("<tr>");
        for (d, c) in r.key.iter().enumerate() {
            let _ = write!(out, "<td>{}</td>", escape(&spec.coord_label(d, *c).label()));
        }
        for f in &r.figures {
            let _ = write!(out, "<td class=\"n\">{}</td>", escape(&figure_cell(*f)));
        }
        let _ = writeln!(
            out,
            "<td class=\"n\">{}</td></tr>",
            escape(&total_cell(r.total))
        );
    }
    out.push_str("</table>\n<p class=\"note\">");
    out.push_str(&escape(
        "s = suprimida (primaria) / suppressed (primary); s* = suprimida (secundaria) / \
         suppressed (secondary); ≥ n = al menos n / at least n; ≈ n = suma de cifras \
         redondeadas / sum of rounded figures. Se omiten las filas en cero / rows of zeros \
         are omitted.",
    ));
    out.push_str("</p>\n");

    if t.rates.is_some() {
        out.push_str("<h2>ODS / SDG 16.2.2</h2>\n<pre>");
        let text = render::text_regional(t);
        let sdg = text.split_once("ODS 16.2.2").map_or("", |(_, s)| s);
        out.push_str(&escape(&format!("ODS 16.2.2{sdg}")));
        out.push_str("</pre>\n");
    }

    out.push_str("<h2>Gráficos / Charts</h2>\n");
    for d in 0..spec.dims.len() {
        out.push_str("<figure>\n");
        match chart(t, d) {
            Ok(svg) => out.push_str(&svg),
            Err(e) => {
                let _ = write!(
                    out,
                    "<p>No se pudo dibujar / could not draw: {}</p>",
                    escape(&e)
                );
            }
        }
        out.push_str("</figure>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

const WIDTH: u32 = 960;

/// One grouped bar chart: the one-dimensional margins of dimension `dim`,
/// one bar per member.
fn chart(t: &RegionalTable, dim: usize) -> Result<String, String> {
    let spec = t.kind.spec();
    let d = &spec.dims[dim];
    let n = d.values.len();
    let members = t.members.len().max(1);
    let rows: Vec<(String, Vec<Figure>)> = d
        .values
        .iter()
        .enumerate()
        .map(|(i, label)| {
            let mut key = vec![Coord::Total; spec.dims.len()];
            key[dim] = Coord::Value(i as u8);
            let figures = t.row(&key).map(|r| r.figures.clone()).unwrap_or_default();
            (label.es.to_string(), figures)
        })
        .collect();
    let max = rows
        .iter()
        .flat_map(|(_, f)| f.iter().filter_map(|f| f.value()))
        .max()
        .unwrap_or(0);
    let ymax = (max as f64 * 1.15).max(1.0);
    let rotate = n > 4;
    let label_area = if rotate { 170 } else { 40 };
    let height = 320 + label_area;

    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let caption = format!("{} — {}", t.kind.label().es, d.name.label().label());
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(label_area)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..n as f64, 0f64..ymax)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc("Víctimas / Victims")
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(err)?;

        let width = 0.8 / members as f64;
        let value_style =
            TextStyle::from(("sans-serif", 11)).pos(Pos::new(HPos::Center, VPos::Bottom));
        for (j, m) in t.members.iter().enumerate() {
            let colour = Palette99::pick(j).to_rgba();
            let bars: Vec<Rectangle<(f64, f64)>> = rows
                .iter()
                .enumerate()
                .filter_map(|(i, (_, f))| {
                    let v = f.get(j)?.value()?;
                    let x0 = i as f64 + 0.1 + j as f64 * width;
                    Some(Rectangle::new(
                        [(x0, 0.0), (x0 + width, v as f64)],
                        colour.filled(),
                    ))
                })
                .collect();
            chart
                .draw_series(bars)
                .map_err(err)?
                .label(m.member.clone())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour.filled())
                });
            // The figures above the bars; "s" / "s*" where there is none.
            let labels: Vec<Text<(f64, f64), String>> = rows
                .iter()
                .enumerate()
                .filter_map(|(i, (_, f))| {
                    let f = *f.get(j)?;
                    let x = i as f64 + 0.1 + (j as f64 + 0.5) * width;
                    let (text, y) = match f {
                        Figure::Suppressed(_) => (figure_cell(f), 0.0),
                        _ => (figure_cell(f), f.value().unwrap_or(0) as f64),
                    };
                    Some(Text::new(text, (x, y), value_style.clone()))
                })
                .collect();
            chart.draw_series(labels).map_err(err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;

        // The categories under the axis.
        let style = if rotate {
            TextStyle::from(("sans-serif", 12))
                .transform(FontTransform::Rotate90)
                .pos(Pos::new(HPos::Left, VPos::Center))
        } else {
            TextStyle::from(("sans-serif", 12)).pos(Pos::new(HPos::Center, VPos::Top))
        };
        for (i, (label, _)) in rows.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
            root.draw(&Text::new(label.clone(), (x, y + 6), style.clone()))
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(buf)
}

#[cfg(test)]
#[path = "html_tests.rs"]
mod tests;
