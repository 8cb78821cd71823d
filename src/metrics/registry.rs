//! The few metric types enlace needs, and the Prometheus text format
//! (version 0.0.4) they are written in.
//!
//! Why by hand: the exposition format is a page of rules (`# HELP`,
//! `# TYPE`, one sample per line, escaped label values, cumulative
//! histogram buckets ending at `+Inf`), and every value here is a plain
//! count. A metrics crate would bring its own registry, global state and
//! dependency tree for what fits in this file.
//!
//! Counters without labels are atomics. Labelled counters keep a small map
//! behind a mutex: they are touched once per batch, refused record or
//! query, never per byte, and their label sets are bounded (roster members
//! times a fixed set of reasons or results).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A family of counters told apart by label values (in the order the
/// family's label names are given when it is written).
#[derive(Debug, Default)]
pub struct CounterVec(Mutex<BTreeMap<Vec<String>, u64>>);

impl CounterVec {
    /// Adds `n` to the counter with these label values.
    pub fn add(&self, labels: &[&str], n: u64) {
        // NOTE: a poisoned map still holds good counts: a panic elsewhere
        // must not blind the metrics.
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let key: Vec<String> = labels.iter().map(|l| (*l).to_owned()).collect();
        let c = map.entry(key).or_default();
        *c = c.saturating_add(n);
    }

    /// The counter with these label values (0 if never counted).
    pub fn get(&self, labels: &[&str]) -> u64 {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.iter()
            .find(|(k, _)| k.iter().map(String::as_str).eq(labels.iter().copied()))
            .map_or(0, |(_, v)| *v)
    }

    /// Every counter, by label values, in label order.
    pub fn snapshot(&self) -> Vec<(Vec<String>, u64)> {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

/// A histogram of durations with fixed upper bounds, in seconds.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Observations per bucket, not cumulative; the last is above every
    /// bound (`+Inf`).
    counts: Vec<AtomicU64>,
    sum_nanos: AtomicU64,
}

/// A histogram as read at one moment: cumulative bucket counts.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound in seconds, observations at or below it)`.
    pub buckets: Vec<(f64, u64)>,
    /// Every observation (the `+Inf` bucket and `_count`).
    pub count: u64,
    /// Sum of the observations, in seconds.
    pub sum: f64,
}

impl Histogram {
    /// A histogram with these upper bounds (seconds, increasing).
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = self
            .bounds
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(self.bounds.len());
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Observes the time from now until the guard is dropped.
    pub fn start_timer(&self) -> Timer<'_> {
        Timer {
            histogram: self,
            started: Instant::now(),
        }
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut total = 0u64;
        let mut buckets = Vec::with_capacity(self.bounds.len());
        for (bound, c) in self.bounds.iter().zip(&self.counts) {
            total += c.load(Ordering::Relaxed);
            buckets.push((*bound, total));
        }
        // NOTE: `_count` is the sum of the buckets read here, so that it
        // always equals the `+Inf` bucket, even while observations land.
        total += self.counts.last().map_or(0, |c| c.load(Ordering::Relaxed));
        HistogramSnapshot {
            buckets,
            count: total,
            sum: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

/// Observes into its histogram when dropped.
#[derive(Debug)]
pub struct Timer<'a> {
    histogram: &'a Histogram,
    started: Instant,
}

impl Drop for Timer<'_> {
    fn drop(&mut self) {
        self.histogram.observe(self.started.elapsed());
    }
}

/// The metric types of the text format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A sample value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Int(i64),
    Uint(u64),
    Float(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Uint(v)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Uint(u64::from(v))
    }
}

/// A float as the text format writes it (`+Inf`, `-Inf`, `NaN`; no
/// exponent needed: Rust writes plain decimals).
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Int(v) => write!(f, "{v}"),
            Value::Uint(v) => write!(f, "{v}"),
            Value::Float(v) => f.write_str(&format_float(*v)),
        }
    }
}

/// Escapes a label value: backslash, double quote and line feed.
pub fn escape_label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a `# HELP` text: backslash and line feed.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A scrape's worth of text, written family by family.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// Starts a family: its `# HELP` and `# TYPE` lines. Its samples follow.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.name());
    }

    /// One sample line.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Into<Value>) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label_value(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", value.into());
    }

    /// A whole histogram family: `_bucket{le=…}` (cumulative, ending at
    /// `+Inf`), `_sum` and `_count`.
    pub fn histogram(&mut self, name: &str, help: &str, h: &HistogramSnapshot) {
        self.family(name, Kind::Histogram, help);
        let bucket = format!("{name}_bucket");
        for (bound, count) in &h.buckets {
            self.sample(&bucket, &[("le", &format_float(*bound))], *count);
        }
        self.sample(&bucket, &[("le", "+Inf")], h.count);
        self.sample(&format!("{name}_sum"), &[], h.sum);
        self.sample(&format!("{name}_count"), &[], h.count);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut e = Exposition::default();
        e.family("enlace_x", Kind::Gauge, "a \\ back\nslash");
        e.sample(
            "enlace_x",
            &[("a", "q\"uote"), ("b", "back\\slash\nnl")],
            1u64,
        );
        e.sample("enlace_x", &[], -2i64);
        assert_eq!(
            e.finish(),
            "# HELP enlace_x a \\\\ back\\nslash\n\
             # TYPE enlace_x gauge\n\
             enlace_x{a=\"q\\\"uote\",b=\"back\\\\slash\\nnl\"} 1\n\
             enlace_x -2\n"
        );
    }

    #[test]
    fn floats_are_written_as_the_format_wants() {
        assert_eq!(format_float(f64::INFINITY), "+Inf");
        assert_eq!(format_float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_float(f64::NAN), "NaN");
        assert_eq!(format_float(1.0), "1");
        assert_eq!(format_float(0.005), "0.005");
        assert_eq!(format_float(120.0), "120");
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_at_inf() {
        static BOUNDS: [f64; 3] = [0.1, 1.0, 10.0];
        let h = Histogram::new(&BOUNDS);
        for ms in [50, 100, 500, 2_000, 60_000] {
            h.observe(Duration::from_millis(ms));
        }
        let s = h.snapshot();
        assert_eq!(s.buckets, vec![(0.1, 2), (1.0, 3), (10.0, 4)]);
        assert_eq!(s.count, 5);
        assert!((s.sum - 62.65).abs() < 1e-9, "{}", s.sum);
        let mut e = Exposition::default();
        e.histogram("enlace_q_seconds", "time", &s);
        let text = e.finish();
        assert_eq!(
            text,
            "# HELP enlace_q_seconds time\n\
             # TYPE enlace_q_seconds histogram\n\
             enlace_q_seconds_bucket{le=\"0.1\"} 2\n\
             enlace_q_seconds_bucket{le=\"1\"} 3\n\
             enlace_q_seconds_bucket{le=\"10\"} 4\n\
             enlace_q_seconds_bucket{le=\"+Inf\"} 5\n\
             enlace_q_seconds_sum 62.65\n\
             enlace_q_seconds_count 5\n"
        );
    }

    #[test]
    fn a_timer_observes_when_dropped() {
        static BOUNDS: [f64; 1] = [3600.0];
        let h = Histogram::new(&BOUNDS);
        drop(h.start_timer());
        assert_eq!(h.snapshot().count, 1);
    }

    #[test]
    fn labelled_counters_add_per_label_set() {
        let c = CounterVec::default();
        c.add(&["hn", "bad_signature"], 1);
        c.add(&["hn", "bad_signature"], 2);
        c.add(&["sv", "unknown_key"], 1);
        assert_eq!(c.get(&["hn", "bad_signature"]), 3);
        assert_eq!(c.get(&["hn", "unknown_key"]), 0);
        assert_eq!(
            c.snapshot(),
            vec![
                (vec!["hn".to_owned(), "bad_signature".to_owned()], 3),
                (vec!["sv".to_owned(), "unknown_key".to_owned()], 1),
            ]
        );
    }
}
