//! Running a scenario: every variant for every seed, in parallel, each run
//! single-threaded and seeded on its own, so results do not depend on the
//! number of threads or on which thread ran what; then checking each run's
//! expectations.

use crate::spec::{Expectation, Metric, Probe, Scenario};
use rayon::prelude::*;
use sim_core::{NullSink, SimDuration};
use sim_models::cluster::{run, RunOutput, WindowSpec};

/// One run of one variant with one seed.
pub struct SeedRun {
    /// Index into `Scenario::variants`.
    pub variant: usize,
    /// The seed.
    pub seed: u64,
    /// What the models produced.
    pub output: RunOutput,
    /// The variant's expectations checked against `output`.
    pub checks: Vec<Check>,
}

/// One expectation checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    /// What was checked.
    pub label: String,
    /// The value the run produced (seconds for latencies), if it exists.
    pub actual: Option<f64>,
    /// Whether every comparison held.
    pub pass: bool,
    /// `actual OP threshold` as text.
    pub text: String,
}

/// Runs every variant with every seed on `threads` worker threads (`None`:
/// rayon's default). Results come back in (variant, seed) order.
pub fn run_all(
    scenario: &Scenario,
    seeds: &[u64],
    threads: Option<usize>,
) -> Result<Vec<SeedRun>, String> {
    let jobs: Vec<(usize, u64)> = (0..scenario.variants.len())
        .flat_map(|v| seeds.iter().map(move |&s| (v, s)))
        .collect();
    in_pool(threads, || {
        jobs.par_iter()
            .map(|&(v, seed)| {
                let variant = &scenario.variants[v];
                let output = run(&variant.config, seed, &mut NullSink);
                let checks = variant
                    .expect
                    .iter()
                    .map(|e| check(e, &output, &variant.config.windows))
                    .collect();
                SeedRun {
                    variant: v,
                    seed,
                    output,
                    checks,
                }
            })
            .collect()
    })
}

/// Runs `work` on a pool of `threads` worker threads (`None`: rayon's
/// global pool), so that its parallel iterators use that many.
pub fn in_pool<T: Send>(
    threads: Option<usize>,
    work: impl FnOnce() -> T + Send,
) -> Result<T, String> {
    match threads {
        None => Ok(work()),
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map(|pool| pool.install(work))
            .map_err(|e| format!("cannot start {n} worker threads: {e}")),
    }
}

/// The value `e` reads from a run, if the run has it.
pub fn measure(e: &Expectation, out: &RunOutput, windows: &[WindowSpec]) -> Option<f64> {
    match &e.probe {
        Probe::GaugeAt { column, at } => {
            let col = out.metrics.columns().iter().position(|c| c == column)?;
            let at = sim_core::SimTime::ZERO + *at;
            out.metrics
                .rows()
                .iter()
                .rev()
                .find(|(t, _)| *t <= at)
                .and_then(|(_, row)| row.get(col).copied())
        }
        Probe::GaugeMax { column, window } => {
            let col = out.metrics.columns().iter().position(|c| c == column)?;
            let w = windows.get(*window)?;
            out.metrics
                .rows()
                .iter()
                .filter(|(t, _)| w.contains(*t))
                .filter_map(|(_, row)| row.get(col).copied())
                .reduce(f64::max)
        }
        Probe::Requests { window, traffic } => {
            let per_window = out.requests.len();
            let ws = out.windows.get(window * per_window + traffic)?;
            let t = &ws.totals;
            let secs = |d: SimDuration| d.as_secs_f64();
            Some(match e.metric {
                Metric::ErrorRate => t.error_rate(),
                Metric::RequestsSent => t.sent as f64,
                Metric::RequestsAnswered => t.answered as f64,
                Metric::RequestsTimedOut => t.timed_out as f64,
                Metric::RequestsRefused => t.refused as f64,
                Metric::RequestsLookupFailed => t.lookup_failed as f64,
                Metric::LatencyP50 => secs(ws.latency.quantile(0.5)),
                Metric::LatencyP90 => secs(ws.latency.quantile(0.9)),
                Metric::LatencyP99 => secs(ws.latency.quantile(0.99)),
                Metric::LatencyMax => secs(ws.latency.max()),
                Metric::FirstPacketP50 => secs(ws.first_packet.quantile(0.5)),
                Metric::FirstPacketP90 => secs(ws.first_packet.quantile(0.9)),
                Metric::FirstPacketP99 => secs(ws.first_packet.quantile(0.99)),
                Metric::LookupCpuCores => {
                    let w = windows.get(*window)?;
                    secs(ws.lookup_cpu) / (secs(w.end) - secs(w.start))
                }
                Metric::RequestsStaleEndpoint => t.stale as f64,
                Metric::ConnectP50 => secs(ws.connect_delay.quantile(0.5)),
                Metric::ConnectP90 => secs(ws.connect_delay.quantile(0.9)),
                Metric::ConnectP99 => secs(ws.connect_delay.quantile(0.99)),
                Metric::ConnectMax => secs(ws.connect_delay.max()),
                Metric::SynDrops => ws.syn_drops as f64,
                Metric::InsertFailed => ws.insert_failed as f64,
                Metric::RequestsSynDropped => t.syn_dropped as f64,
                Metric::TopPodShare => ws.top_pod_share(),
                Metric::PodsServing => ws.pods_serving() as f64,
                Metric::RequestsRetried => t.retried as f64,
                Metric::DnsQueriesPerLookup if ws.lookups > 0 => {
                    ws.dns_queries as f64 / ws.lookups as f64
                }
                Metric::LookupLatencyP50 => secs(ws.lookup_latency.quantile(0.5)),
                Metric::LookupLatencyP99 => secs(ws.lookup_latency.quantile(0.99)),
                Metric::LookupLatencyMax => secs(ws.lookup_latency.max()),
                _ => return None,
            })
        }
        Probe::Dns {
            window,
            zone,
            rcode,
        } => {
            let d = out.dns_windows.get(*window)?;
            let w = windows.get(*window)?;
            let zones: Vec<usize> = match zone {
                Some(z) => vec![*z],
                None => vec![0, 1],
            };
            let replies: u64 = zones
                .iter()
                .map(|&z| d.replies[z].iter().sum::<u64>())
                .sum();
            match e.metric {
                Metric::DnsQps => {
                    let n: u64 = match rcode {
                        Some(r) => zones.iter().map(|&z| d.replies[z][*r]).sum(),
                        None => zones.iter().map(|&z| d.received[z]).sum(),
                    };
                    Some(n as f64 / (w.end.as_secs_f64() - w.start.as_secs_f64()))
                }
                Metric::DnsCacheHitRatio if replies > 0 => {
                    let hits: u64 = zones.iter().map(|&z| d.cache_hits[z]).sum();
                    Some(hits as f64 / replies as f64)
                }
                Metric::DnsInsertFailed => Some(d.insert_failed as f64),
                Metric::DnsQueriesStale => Some(d.stale as f64),
                _ => None,
            }
        }
    }
}

impl Check {
    /// `actual` compared with every `(op, threshold)` (`==`, `>`, `<`); a
    /// missing value fails. `show` formats values for the text.
    pub fn new(
        label: &str,
        actual: Option<f64>,
        checks: &[(&'static str, f64)],
        show: impl Fn(f64) -> String,
    ) -> Check {
        let mut pass = actual.is_some();
        let mut parts = Vec::new();
        for &(op, want) in checks {
            pass &= actual.is_some_and(|a| match op {
                "==" => (a - want).abs() < 1e-9,
                ">" => a > want,
                _ => a < want,
            });
            parts.push(format!("{op} {}", show(want)));
        }
        let got = actual.map_or("no value".to_string(), &show);
        Check {
            label: label.to_string(),
            actual,
            pass,
            text: format!("{got} (want {})", parts.join(" and ")),
        }
    }

    /// The check as JSON, for summaries.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({"check": self.label, "actual": self.actual, "pass": self.pass, "text": self.text})
    }
}

/// (held, total) over `checks`.
pub fn totals<'c>(checks: impl Iterator<Item = &'c Check> + Clone) -> (usize, usize) {
    (checks.clone().filter(|c| c.pass).count(), checks.count())
}

/// Checks one expectation against one run.
pub fn check(e: &Expectation, out: &RunOutput, windows: &[WindowSpec]) -> Check {
    let actual = measure(e, out, windows);
    let show = |x: f64| {
        if e.metric.is_latency() && x < 1e-6 {
            // Histograms store 0 as 1 ns.
            "0s".to_string()
        } else if e.metric.is_latency() {
            SimDuration::from_secs_f64(x).to_string()
        } else {
            crate::figures::num(x)
        }
    };
    Check::new(&e.label, actual, &e.checks, show)
}
