//! How the bench shows its figures: a small table per bench for people,
//! one JSON object for programs, and the arithmetic behind the numbers.

use std::borrow::Cow;
use std::time::Duration;

use serde_json::Value;

/// One bench's figures: a small table for people, an object for machines.
pub(super) struct Report {
    pub(super) heading: String,
    pub(super) rows: Vec<Row>,
    pub(super) notes: Vec<String>,
    pub(super) json: Value,
}

pub(super) struct Row {
    label: Cow<'static, str>,
    value: String,
    /// The target and whether the figure meets it.
    target: Option<(String, bool)>,
}

impl Row {
    pub(super) fn new(label: impl Into<Cow<'static, str>>, value: String) -> Self {
        Self {
            label: label.into(),
            value,
            target: None,
        }
    }

    pub(super) fn target(mut self, target: String, meets: bool) -> Self {
        self.target = Some((target, meets));
        self
    }
}

impl Report {
    pub(super) fn print(&self) {
        println!("{}", self.heading);
        let lw = self.rows.iter().map(|r| r.label.chars().count()).max();
        let vw = self.rows.iter().map(|r| r.value.chars().count()).max();
        let tw = self
            .rows
            .iter()
            .filter_map(|r| r.target.as_ref().map(|(t, _)| t.chars().count()))
            .max()
            .unwrap_or(0);
        let (lw, vw) = (lw.unwrap_or(0), vw.unwrap_or(0).max(5));
        let header = if tw > 0 {
            format!("  {:<lw$}  {:>vw$}  {:<tw$}  result", "", "value", "target")
        } else {
            format!("  {:<lw$}  {:>vw$}", "", "value")
        };
        println!("{header}");
        for r in &self.rows {
            let (target, verdict) = match &r.target {
                Some((t, true)) => (t.as_str(), "meets"),
                Some((t, false)) => (t.as_str(), "below"),
                None => ("", ""),
            };
            let line = format!(
                "  {:<lw$}  {:>vw$}  {:<tw$}  {verdict}",
                r.label, r.value, target
            );
            println!("{}", line.trim_end());
        }
        for n in &self.notes {
            println!("  note: {n}");
        }
        println!();
    }
}

/// Cores busy on average between two readings of
/// [`process_cpu`](super::nodes::process_cpu).
pub(super) fn cores(cpu_before: Duration, cpu_after: Duration, wall: Duration) -> f64 {
    cpu_after.saturating_sub(cpu_before).as_secs_f64() / wall.as_secs_f64().max(1e-9)
}

/// Nearest-rank percentile of sorted values.
pub(super) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub(super) fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub(super) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(super) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub(super) fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

pub(super) fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// An integer with its thousands grouped: `41 230`.
pub(super) fn group(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(group(0.0), "0");
        assert_eq!(group(999.0), "999");
        assert_eq!(group(41_230.4), "41 230");
        assert_eq!(group(1_000_000.0), "1 000 000");
    }
}
