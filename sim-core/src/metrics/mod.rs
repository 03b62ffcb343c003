//! Counters, gauges sampled over time, and latency histograms.
//!
//! Models register a metric once (by its Prometheus-style name, for example
//! `requests_total{service="checkout"}`) and keep the returned handle; updates
//! through a handle are an index into a vector, cheap enough for the hot path.
//! [`Metrics::sample`] appends one row of a time series: every counter's
//! cumulative value, every gauge's current value, and for every histogram the
//! count, p50 and p99 of the values recorded since the previous sample.
//! Percentiles come from an HdrHistogram with 3 significant digits, so a
//! reported percentile is within 0.1% of the exact order statistic.
//!
//! Cost: a value is recorded once, in its histogram's open window (written in
//! batches of 1,024 values, see [`Metrics::record`]), which [`Metrics::sample`]
//! reads and then merges into the values of the windows before. A histogram
//! allocates nothing until written and stays under 4 KiB while it holds up to
//! 512 distinct bins; see [`LatencyHistogram`] for its tiers and how it is
//! validated against the `hdrhistogram` crate. [`Metrics::column`] finds a
//! column of the time series in O(1) after one pass over the names, so
//! reports can look up thousands of columns.

mod histogram;

pub use histogram::LatencyHistogram;

use crate::time::{SimDuration, SimTime};
use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

/// Handle to a counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CounterId(usize);
/// Handle to a gauge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GaugeId(usize);
/// Handle to a latency histogram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistogramId(usize);

/// A histogram's values: a value is recorded once, in the open window (by
/// batches, see [`Metrics::record`]), which [`Metrics::sample`] folds into
/// `closed`.
#[derive(Default)]
struct HistogramEntry {
    /// Values of the windows already sampled.
    closed: LatencyHistogram,
    /// Values since the last sample, except zeros.
    window: LatencyHistogram,
    /// Zeros since the last sample (counted here, not batched: see
    /// [`Metrics::record`]).
    zeros: u64,
}

/// One metric's column in the sampled time series.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    /// Metric name, with a suffix for histogram columns (`:count`, `:p50_ms`, `:p99_ms`).
    pub name: String,
}

/// Every metric of one run, and their sampled time series.
#[derive(Default)]
pub struct Metrics {
    names: BTreeMap<String, Kind>,
    counters: Vec<(String, u64)>,
    gauges: Vec<(String, f64)>,
    histograms: Vec<(String, HistogramEntry)>,
    rows: Vec<(SimTime, Vec<f64>)>,
    /// Column name to index, built by the first [`Metrics::column`] call
    /// after a registration.
    column_table: OnceLock<HashMap<String, usize>>,
    /// Values recorded but not yet in their histogram's window.
    pending: Vec<(HistogramId, SimDuration)>,
}

/// Values [`Metrics::record`] holds before writing them to their histograms
/// in one pass.
const PENDING_MAX: usize = 1024;

#[derive(Clone, Copy)]
enum Kind {
    Counter(usize),
    Gauge(usize),
    Histogram(usize),
}

impl Metrics {
    /// No metrics yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counter called `name`, registered on first use.
    ///
    /// # Panics
    /// If `name` is already registered as another kind of metric (a model bug).
    pub fn counter(&mut self, name: &str) -> CounterId {
        match self.names.get(name) {
            Some(Kind::Counter(i)) => CounterId(*i),
            Some(_) => panic!("metric {name} registered twice with different kinds"),
            None => {
                self.counters.push((name.to_string(), 0));
                self.column_table.take();
                let i = self.counters.len() - 1;
                self.names.insert(name.to_string(), Kind::Counter(i));
                CounterId(i)
            }
        }
    }

    /// The gauge called `name`, registered on first use (initial value 0).
    ///
    /// # Panics
    /// If `name` is already registered as another kind of metric (a model bug).
    pub fn gauge(&mut self, name: &str) -> GaugeId {
        match self.names.get(name) {
            Some(Kind::Gauge(i)) => GaugeId(*i),
            Some(_) => panic!("metric {name} registered twice with different kinds"),
            None => {
                self.gauges.push((name.to_string(), 0.0));
                self.column_table.take();
                let i = self.gauges.len() - 1;
                self.names.insert(name.to_string(), Kind::Gauge(i));
                GaugeId(i)
            }
        }
    }

    /// The histogram called `name`, registered on first use.
    ///
    /// # Panics
    /// If `name` is already registered as another kind of metric (a model bug).
    pub fn histogram(&mut self, name: &str) -> HistogramId {
        match self.names.get(name) {
            Some(Kind::Histogram(i)) => HistogramId(*i),
            Some(_) => panic!("metric {name} registered twice with different kinds"),
            None => {
                let entry = HistogramEntry::default();
                self.histograms.push((name.to_string(), entry));
                self.column_table.take();
                let i = self.histograms.len() - 1;
                self.names.insert(name.to_string(), Kind::Histogram(i));
                HistogramId(i)
            }
        }
    }

    /// Adds `n` to a counter.
    pub fn add(&mut self, id: CounterId, n: u64) {
        self.counters[id.0].1 += n;
    }

    /// Adds one to a counter.
    pub fn inc(&mut self, id: CounterId) {
        self.add(id, 1);
    }

    /// Sets a gauge.
    pub fn set(&mut self, id: GaugeId, value: f64) {
        self.gauges[id.0].1 = value;
    }

    /// Records one latency.
    ///
    /// The value waits with up to `PENDING_MAX` others and they are written
    /// in one pass: the writes of a batch do not depend on each other, so the
    /// processor overlaps their cache misses (a histogram spread over many
    /// bins misses on nearly every write). A zero (a connection that needed
    /// no retransmitted SYN, say) only adds to a count that joins the window
    /// when it is read. Counts do not depend on the order of the writes, so
    /// nothing a run reports changes.
    #[inline]
    pub fn record(&mut self, id: HistogramId, d: SimDuration) {
        if d == SimDuration::ZERO {
            self.histograms[id.0].1.zeros += 1;
            return;
        }
        if self.pending.len() == PENDING_MAX {
            self.flush();
        }
        self.pending.push((id, d));
    }

    /// Writes the pending values to their histograms' windows.
    fn flush(&mut self) {
        for (id, d) in self.pending.drain(..) {
            self.histograms[id.0].1.window.record(d);
        }
    }

    /// Every value histogram `id` recorded so far.
    fn total(&self, id: HistogramId) -> LatencyHistogram {
        let e = &self.histograms[id.0].1;
        let mut total = e.closed.clone();
        total.merge(&e.window);
        total.record_n(SimDuration::ZERO, e.zeros);
        for (_, d) in self.pending.iter().filter(|(i, _)| *i == id) {
            total.record(*d);
        }
        total
    }

    /// A counter's current value.
    pub fn counter_value(&self, id: CounterId) -> u64 {
        self.counters[id.0].1
    }

    /// A gauge's current value.
    pub fn gauge_value(&self, id: GaugeId) -> f64 {
        self.gauges[id.0].1
    }

    /// Every value a histogram recorded in the run so far: the sampled
    /// windows merged with the open one (built on each call).
    pub fn histogram_total(&self, id: HistogramId) -> LatencyHistogram {
        self.total(id)
    }

    /// Counters by name, in name order.
    pub fn counters(&self) -> impl Iterator<Item = (&str, u64)> {
        self.names.iter().filter_map(|(n, k)| match k {
            Kind::Counter(i) => Some((n.as_str(), self.counters[*i].1)),
            _ => None,
        })
    }

    /// Histograms by name, in name order, each with every value it recorded
    /// so far (built on the fly, as [`Metrics::histogram_total`]).
    pub fn histograms(&self) -> impl Iterator<Item = (&str, LatencyHistogram)> {
        self.names.iter().filter_map(|(n, k)| match k {
            Kind::Histogram(i) => Some((n.as_str(), self.total(HistogramId(*i)))),
            _ => None,
        })
    }

    /// Appends one row to the time series at `now` and starts a new
    /// histogram window.
    pub fn sample(&mut self, now: SimTime) {
        self.flush();
        let mut row = Vec::with_capacity(self.names.len() + 2 * self.histograms.len());
        for kind in self.names.values() {
            match *kind {
                Kind::Counter(i) => row.push(self.counters[i].1 as f64),
                Kind::Gauge(i) => row.push(self.gauges[i].1),
                Kind::Histogram(i) => {
                    let e = &mut self.histograms[i].1;
                    let w = &mut e.window;
                    w.record_n(SimDuration::ZERO, std::mem::take(&mut e.zeros));
                    row.push(w.count() as f64);
                    row.push(w.quantile(0.5).as_millis_f64());
                    row.push(w.quantile(0.99).as_millis_f64());
                    e.closed.merge(w);
                    w.clear();
                }
            }
        }
        self.rows.push((now, row));
    }

    /// Column names of the sampled time series, in name order. Rows sampled
    /// before a metric was registered are shorter than this list.
    pub fn columns(&self) -> Vec<String> {
        let mut cols = Vec::new();
        for (name, kind) in &self.names {
            match kind {
                Kind::Histogram(_) => {
                    cols.push(format!("{name}:count"));
                    cols.push(format!("{name}:p50_ms"));
                    cols.push(format!("{name}:p99_ms"));
                }
                _ => cols.push(name.clone()),
            }
        }
        cols
    }

    /// The index of the column `name` (spelled as in [`Metrics::columns`]) in
    /// the sampled rows, the first one if two metrics give the same column
    /// name; O(1) once a table is built on the first call after a
    /// registration.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.column_table
            .get_or_init(|| {
                let mut table = HashMap::new();
                for (i, c) in self.columns().into_iter().enumerate() {
                    table.entry(c).or_insert(i);
                }
                table
            })
            .get(name)
            .copied()
    }

    /// The sampled rows, oldest first.
    pub fn rows(&self) -> &[(SimTime, Vec<f64>)] {
        &self.rows
    }
}

#[cfg(test)]
mod tests;
