//! Running a scenario: every variant for every seed, in parallel, each run
//! single-threaded and seeded on its own, so results do not depend on the
//! number of threads or on which thread ran what; then checking each run's
//! expectations.

use crate::figures::{column_index, max_within, value_at};
use crate::spec::{Expectation, Probe, Scenario};
use rayon::prelude::*;
use sim_core::{NullSink, SimDuration, SimTime};
use sim_models::cluster::{run_observed, RunOutput, WindowSpec};

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
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// What was checked.
    pub label: String,
    /// The value the run produced (seconds for latencies), if it exists.
    #[serde(with = "crate::digest::exact::option")]
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
    run_all_observed(scenario, seeds, threads, &|_| {})
}

/// [`run_all`], telling `progress` how much simulated time each run
/// advanced since it last said (summed over runs: the whole is the
/// variants' durations times the seeds), for a progress bar.
pub fn run_all_observed(
    scenario: &Scenario,
    seeds: &[u64],
    threads: Option<usize>,
    progress: &(dyn Fn(SimDuration) + Sync),
) -> Result<Vec<SeedRun>, String> {
    let jobs = jobs(scenario.variants.len(), seeds);
    run_jobs(scenario, &jobs, threads, progress)
}

/// Every (variant, seed) run of `variants` variants and `seeds`, in the
/// order results come back: by variant, then by seed as given.
pub fn jobs(variants: usize, seeds: &[u64]) -> Vec<(usize, u64)> {
    (0..variants)
        .flat_map(|v| seeds.iter().map(move |&s| (v, s)))
        .collect()
}

/// [`run_all_observed`] for the (variant index, seed) runs `jobs` only;
/// results come back in the order of `jobs`.
pub fn run_jobs(
    scenario: &Scenario,
    jobs: &[(usize, u64)],
    threads: Option<usize>,
    progress: &(dyn Fn(SimDuration) + Sync),
) -> Result<Vec<SeedRun>, String> {
    in_pool(threads, || {
        jobs.par_iter()
            .map(|&(v, seed)| {
                let variant = &scenario.variants[v];
                let reached = std::cell::Cell::new(SimTime::ZERO);
                let output = run_observed(&variant.config, seed, &mut NullSink, &|now| {
                    progress(now - reached.replace(now));
                });
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

/// The value `e` reads from a run, if the run has it (a column the run
/// does not have, e.g. a CoreDNS gauge without a `dns` section, or a
/// statistic of no event, gives none: the check fails with "no value").
pub fn measure(e: &Expectation, out: &RunOutput, windows: &[WindowSpec]) -> Option<f64> {
    let span = |w: &WindowSpec| w.end.as_secs_f64() - w.start.as_secs_f64();
    match &e.probe {
        Probe::GaugeAt { column, at } => {
            let col = column_index(out, column).ok()?;
            value_at(out, col, SimTime::ZERO + *at)
        }
        Probe::GaugeMax { column, window } => {
            let col = column_index(out, column).ok()?;
            max_within(out, col, windows.get(*window)?)
        }
        Probe::Requests { window, traffic } => {
            let per_window = out.requests.len();
            let ws = out.windows.get(window * per_window + traffic)?;
            e.metric.window(ws, span(windows.get(*window)?))
        }
        Probe::Path {
            window,
            traffic,
            path,
            by,
        } => {
            let per_window = out.requests.len();
            let ws = out.windows.get(window * per_window + traffic)?;
            e.metric.path(ws.paths.get(*path)?, *by)
        }
        Probe::Dns {
            window,
            zone,
            rcode,
        } => {
            let d = out.dns_windows.get(*window)?;
            let zones: &[usize] = match zone {
                Some(z) => std::slice::from_ref(z),
                None => &[0, 1],
            };
            e.metric.dns(d, zones, *rcode, span(windows.get(*window)?))
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
    Check::new(&e.label, actual, &e.checks, |x| e.metric.show(x))
}
