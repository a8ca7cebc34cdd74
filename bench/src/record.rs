//! Latency histograms: one over the whole run and one per second of it (for the plot), in
//! microseconds, with three significant digits.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The highest latency a histogram tracks (longer ones count as this).
const MAX_MICROS: u64 = 600_000_000;

fn histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, MAX_MICROS, 3) {
        Ok(h) => h,
        // Only bad bounds fail, and these are constants hdrhistogram accepts.
        Err(e) => unreachable!("histogram bounds: {e}"),
    }
}

/// Latencies of one kind (e.g. send to acknowledgement) over a run.
pub struct Latency {
    start: Instant,
    total: Histogram<u64>,
    per_second: Vec<Histogram<u64>>,
}

impl Latency {
    /// An empty record whose timeline starts at `start`.
    pub fn new(start: Instant) -> Self {
        Self { start, total: histogram(), per_second: Vec::new() }
    }

    /// Records one latency, observed at `at`.
    pub fn record(&mut self, at: Instant, latency: Duration) {
        let micros = (latency.as_micros() as u64).clamp(1, MAX_MICROS);
        self.total.saturating_record(micros);
        let second = at.saturating_duration_since(self.start).as_secs() as usize;
        if self.per_second.len() <= second {
            self.per_second.resize_with(second + 1, histogram);
        }
        self.per_second[second].saturating_record(micros);
    }

    /// How many were recorded.
    pub fn count(&self) -> u64 {
        self.total.len()
    }

    /// Percentiles over the whole run.
    pub fn summary(&self) -> Summary {
        Summary::of(&self.total)
    }

    /// Count, p50 and p99 for each second.
    pub fn timeline(&self) -> Vec<Second> {
        self.per_second
            .iter()
            .enumerate()
            .map(|(t, h)| Second {
                t: t as u64,
                count: h.len(),
                p50_ms: ms(h.value_at_quantile(0.50)),
                p99_ms: ms(h.value_at_quantile(0.99)),
            })
            .collect()
    }
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// Percentiles of one kind of latency, in milliseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Summary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Summary {
    fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// One second of a latency timeline.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Second {
    pub t: u64,
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Named latency records and errors, shared by the tasks of a run.
pub struct Recorder {
    start: Instant,
    latencies: Mutex<BTreeMap<&'static str, Latency>>,
    errors: Mutex<Errors>,
}

/// Errors seen during a run: how many, and the first few in full.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Errors {
    pub count: u64,
    pub first: Vec<String>,
}

/// How many errors are kept word for word.
const ERRORS_KEPT: usize = 10;

impl Recorder {
    /// An empty recorder whose timelines start now.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            latencies: Mutex::new(BTreeMap::new()),
            errors: Mutex::new(Errors::default()),
        }
    }

    /// Records a latency of kind `name` that ended now.
    pub fn latency(&self, name: &'static str, latency: Duration) {
        let now = Instant::now();
        if let Ok(mut all) = self.latencies.lock() {
            all.entry(name).or_insert_with(|| Latency::new(self.start)).record(now, latency);
        }
    }

    /// Counts an error, keeping its text if it is among the first.
    pub fn error(&self, what: impl std::fmt::Display) {
        if let Ok(mut errors) = self.errors.lock() {
            errors.count += 1;
            if errors.first.len() < ERRORS_KEPT {
                errors.first.push(what.to_string());
            }
        }
    }

    /// How many latencies of kind `name` were recorded.
    pub fn count(&self, name: &str) -> u64 {
        self.latencies.lock().ok().and_then(|all| all.get(name).map(Latency::count)).unwrap_or(0)
    }

    /// The summaries and timelines of every kind, and the errors.
    pub fn finish(&self) -> (BTreeMap<String, Summary>, BTreeMap<String, Vec<Second>>, Errors) {
        let all = self.latencies.lock().map(|all| {
            let summaries = all.iter().map(|(k, v)| ((*k).to_owned(), v.summary())).collect();
            let timelines = all.iter().map(|(k, v)| ((*k).to_owned(), v.timeline())).collect();
            (summaries, timelines)
        });
        let (summaries, timelines) = all.unwrap_or_default();
        let errors = self.errors.lock().map(|e| e.clone()).unwrap_or_default();
        (summaries, timelines, errors)
    }
}
