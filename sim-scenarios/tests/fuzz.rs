//! # Fuzzing: the scenario parser and short runs of parsed scenarios
//!
//! ## Scope
//! A stable-Rust driver (no cargo-fuzz, which needs nightly): inputs are the
//! bundled scenarios changed by seeded ChaCha draws, each case reproducible
//! from (seed, case number) alone.
//! - **parse**: a bundled text with one to four mutations (a byte replaced,
//!   a line deleted, duplicated or moved, a number set to an edge value
//!   such as 0, 1, 7, 1000, -1, 2^32, 1e309 or NaN, a key misspelt, the text
//!   cut short, a line of another scenario inserted) goes through what
//!   `knsim check` calls (`datapath::parse` for a file with `datapath:`,
//!   `network_plan::parse` for one with `network_plan:`,
//!   `parse` otherwise). Errors are fine; a panic is a finding.
//! - **run**: a bundled scenario with one to three of its numbers set to
//!   0, 1, 2, 3, 7 or 1000 (units kept: `7s`, `1000/s`, `0Mi`), parsed; if
//!   valid, every variant runs for at most [`RUN_CAP`] (rates capped at
//!   [`RATE_CAP`] per second) with a seed from 1 to 8 on a thread with a
//!   1 MiB stack, then the report and the story are written. A panic, or a
//!   traffic source whose requests do not add up (sent = answered + errors +
//!   in flight), is a finding.
//!
//! ## Parameters
//! `KNSIM_FUZZ_CASES` (parser cases, default [`PARSE_CASES`]),
//! `KNSIM_FUZZ_RUNS` (run cases, default [`RUN_CASES`]), `KNSIM_FUZZ_SEED`
//! (default 0), `KNSIM_FUZZ_FROM` (first case number, default 0). A soak:
//!
//! ```text
//! KNSIM_FUZZ_CASES=1000000 KNSIM_FUZZ_RUNS=10000 KNSIM_FUZZ_SEED=7 \
//!   cargo test --release -p sim-scenarios --test fuzz -- --nocapture
//! ```
//!
//! ## What it emits
//! Every finding's input is written to `target/tmp/fuzz-findings/` and the
//! test fails naming the files; with `--nocapture`, progress every 10% of
//! the cases. During a soak the case being run is also in
//! `target/tmp/fuzz-current-{parse,run}.yaml`, so a crash the process cannot
//! survive (an abort) leaves its input behind. A finding, once fixed at its
//! root, is kept as a file in `tests/data/fuzz-regressions/`, which
//! [`regressions_parse_and_run`] replays through both targets.
//!
//! ## Validation
//! The counts of a soak and the findings go in the README's Fuzzing section.

use rand::RngExt;
use sim_core::{NullSink, RngStreams, SimDuration, SimRng};
use sim_models::cluster::{Action, ClusterConfig};
use sim_scenarios::{bundled, datapath, network_plan, report, run, story};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// Parser cases in the normal test command.
const PARSE_CASES: u64 = 5_000;
/// Run cases in the normal test command.
const RUN_CASES: u64 = 48;
/// The longest simulated time of a fuzzed run.
const RUN_CAP: SimDuration = SimDuration::from_secs(30);
/// The highest request rate of a fuzzed run \[1/s\].
const RATE_CAP: f64 = 200.0;

/// Edge values a parser case may put in place of a number.
const PARSE_EDGES: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "7",
    "1000",
    "-1",
    "-0",
    "0.5",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999",
    "1e309",
    "-1e309",
    "NaN",
    ".inf",
    "1_000",
    "0x10",
    "",
];

/// Edge values a run case may put in place of a number.
const RUN_EDGES: &[&str] = &["0", "1", "2", "3", "7", "1000"];

/// Characters a byte may be replaced with.
const BYTES: &[u8] = b"{}[]:,-#'\"\n\t &*!|>%@`?09az.\\/\x00";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
        })
        .unwrap_or(default)
}

/// The driver's settings for one target.
struct Plan {
    target: &'static str,
    cases: u64,
    seed: u64,
    from: u64,
    /// Keep the current case on disk (a soak).
    soak: bool,
}

impl Plan {
    fn new(target: &'static str, var: &str, default: u64) -> Plan {
        let cases = env_u64(var, default);
        Plan {
            target,
            cases,
            seed: env_u64("KNSIM_FUZZ_SEED", 0),
            from: env_u64("KNSIM_FUZZ_FROM", 0),
            soak: cases > default,
        }
    }

    /// The draws of case `i`.
    fn rng(&self, i: u64) -> SimRng {
        RngStreams::new(self.seed).stream(&format!("fuzz/{}/{i}", self.target))
    }

    /// Runs `case` on every case number on a thread with a 1 MiB stack
    /// (`case` says whether the input was valid, or names a finding);
    /// panics naming the files of the findings.
    fn drive(self, case: fn(&Plan, u64) -> Result<bool, String>) {
        let label = self.target;
        let findings = std::thread::Builder::new()
            .name(format!("fuzz-{label}"))
            .stack_size(1 << 20)
            .spawn(move || {
                let mut findings = Vec::new();
                let mut valid = 0;
                let step = (self.cases / 10).max(1);
                let mut report_at = step;
                for i in self.from..self.from + self.cases {
                    match case(&self, i) {
                        Ok(v) => valid += u64::from(v),
                        Err(f) => findings.push(f),
                    }
                    if i - self.from + 1 == report_at {
                        report_at += step;
                        println!(
                            "fuzz {label}: {} cases (seed {}, from {}), {valid} valid, {} findings",
                            i - self.from + 1,
                            self.seed,
                            self.from,
                            findings.len()
                        );
                    }
                }
                findings
            })
            .unwrap()
            .join()
            .expect("the driver itself does not panic");
        assert!(
            findings.is_empty(),
            "{} finding(s) (fix each at its root, then copy the file into \
             sim-scenarios/tests/data/fuzz-regressions/):\n{}",
            findings.len(),
            findings.join("\n")
        );
    }

    /// Writes the input of a finding and returns a line naming it.
    fn finding(&self, i: u64, text: &str, what: &str) -> String {
        let dir = tmp().join("fuzz-findings");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{}-seed{}-case{i}.yaml", self.target, self.seed));
        std::fs::write(&file, text).unwrap();
        format!("{}: {what}", file.display())
    }

    /// During a soak, the case about to run, for an abort to leave behind.
    fn current(&self, text: &str) {
        if self.soak {
            let file = tmp().join(format!("fuzz-current-{}.yaml", self.target));
            std::fs::write(file, text).unwrap();
        }
    }
}

fn tmp() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

/// The panic's message.
fn message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

/// What `knsim check` does with a text: `Ok` or `Err` both fine.
fn check(text: &str) -> Result<(), String> {
    if datapath::is_datapath(text) {
        datapath::parse("fuzz.yaml", text).map(drop)
    } else if network_plan::is_network_plan(text) {
        network_plan::parse("fuzz.yaml", text).map(drop)
    } else {
        sim_scenarios::parse("fuzz.yaml", text).map(drop)
    }
    .map_err(|e| e.to_string())
}

/// Byte ranges of the numbers in `text` (a run of digits not inside a word,
/// not part of an address or a decimal).
fn numbers(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit()
            && (i == 0
                || !(b[i - 1].is_ascii_alphanumeric()
                    || b[i - 1] == b'.'
                    || b[i - 1] == b'-'
                    || b[i - 1] == b'_'))
        {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if b.get(i) != Some(&b'.') && b.get(i) != Some(&b'-') {
                out.push((start, i));
            }
        } else {
            i += 1;
        }
    }
    out
}

/// Byte ranges of the keys in `text` (`word:` at a line's start, after
/// `{`, `,` or `- `).
fn keys(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let starts = i == 0 || matches!(b[i - 1], b'\n' | b' ' | b'{' | b',');
        if starts && (b[i].is_ascii_lowercase() || b[i] == b'_') {
            let start = i;
            while i < b.len() && (b[i].is_ascii_lowercase() || b[i] == b'_') {
                i += 1;
            }
            if b.get(i) == Some(&b':') {
                out.push((start, i));
            }
        } else {
            i += 1;
        }
    }
    out
}

fn pick<'a, T>(rng: &mut SimRng, xs: &'a [T]) -> &'a T {
    &xs[rng.random_range(0..xs.len())]
}

/// Replaces bytes `at` of `text` with `with` (the result is made UTF-8).
fn splice(text: &str, (s, e): (usize, usize), with: &[u8]) -> String {
    let mut b = text.as_bytes()[..s].to_vec();
    b.extend_from_slice(with);
    b.extend_from_slice(&text.as_bytes()[e..]);
    String::from_utf8_lossy(&b).into_owned()
}

/// One mutation for the parser target.
fn mutate(rng: &mut SimRng, text: &str) -> String {
    if text.is_empty() {
        return pick(rng, bundled::BUNDLED).1.to_string();
    }
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    match rng.random_range(0..9u32) {
        0 => {
            let at = rng.random_range(0..text.len());
            let byte = if rng.random_bool(0.2) {
                rng.random::<u8>()
            } else {
                *pick(rng, BYTES)
            };
            splice(text, (at, at + 1), &[byte])
        }
        1 => {
            lines.remove(rng.random_range(0..lines.len()));
            lines.concat()
        }
        2 => {
            let i = rng.random_range(0..lines.len());
            lines.insert(i, lines[i]);
            lines.concat()
        }
        3 => {
            let line = lines.remove(rng.random_range(0..lines.len()));
            lines.insert(rng.random_range(0..=lines.len()), line);
            lines.concat()
        }
        4 | 5 => match numbers(text) {
            ns if ns.is_empty() => text.to_string(),
            ns => splice(text, *pick(rng, &ns), pick(rng, PARSE_EDGES).as_bytes()),
        },
        6 => match keys(text) {
            ks if ks.is_empty() => text.to_string(),
            ks => {
                let (s, e) = *pick(rng, &ks);
                let mut key = text.as_bytes()[s..e].to_vec();
                let j = rng.random_range(0..key.len());
                match rng.random_range(0..4u32) {
                    0 => {
                        key.remove(j);
                    }
                    1 => key.insert(j, key[j]),
                    2 if j + 1 < key.len() => key.swap(j, j + 1),
                    _ => key[j] = key[j].to_ascii_uppercase(),
                }
                splice(text, (s, e), &key)
            }
        },
        7 => {
            let mut at = rng.random_range(0..text.len());
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            text[..at].to_string()
        }
        _ => {
            let other: Vec<&str> = pick(rng, bundled::BUNDLED)
                .1
                .split_inclusive('\n')
                .collect();
            let line = *pick(rng, &other);
            lines.insert(rng.random_range(0..=lines.len()), line);
            lines.concat()
        }
    }
}

/// Parser case `i`: never a panic.
fn parse_case(plan: &Plan, i: u64) -> Result<bool, String> {
    let mut rng = plan.rng(i);
    let mut text = pick(&mut rng, bundled::BUNDLED).1.to_string();
    for _ in 0..rng.random_range(1..=4u32) {
        text = mutate(&mut rng, &text);
    }
    plan.current(&text);
    match catch_unwind(AssertUnwindSafe(|| check(&text))) {
        Ok(r) => Ok(r.is_ok()),
        Err(p) => Err(plan.finding(i, &text, &format!("parse panicked: {}", message(p)))),
    }
}

/// Keeps a fuzzed run short.
fn cap(cfg: &mut ClusterConfig) {
    cfg.duration = cfg.duration.min(RUN_CAP);
    for t in &mut cfg.traffic {
        t.rate = t.rate.min(RATE_CAP);
    }
    for a in &mut cfg.timeline {
        if let Action::SetRate { rate, .. } = &mut a.action {
            *rate = rate.min(RATE_CAP);
        }
    }
}

/// Parses `text` and, if valid, runs every variant briefly, then writes the
/// report and the story: whether it was valid, `Err` on a panic or requests
/// that do not add up.
fn parse_and_run(text: &str, seed: u64) -> Result<bool, String> {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        if network_plan::is_network_plan(text) {
            let Ok(s) = network_plan::parse("fuzz.yaml", text) else {
                return Ok(false);
            };
            network_plan::text(&s, &network_plan::run_all(&s));
            return Ok(true);
        }
        if datapath::is_datapath(text) {
            let Ok(mut s) = datapath::parse("fuzz.yaml", text) else {
                return Ok(false);
            };
            for v in &mut s.variants {
                v.config.duration = v.config.duration.min(RUN_CAP);
            }
            if let Ok(runs) = datapath::run_all(&s, &[1], Some(1), None) {
                datapath::text(&s, &runs);
            }
            return Ok(true);
        }
        let Ok(mut s) = sim_scenarios::parse("fuzz.yaml", text) else {
            return Ok(false);
        };
        let mut runs = Vec::new();
        for (v, variant) in s.variants.iter_mut().enumerate() {
            cap(&mut variant.config);
            let output = sim_models::cluster::run(&variant.config, seed, &mut NullSink);
            for (t, r) in output.requests.iter().enumerate() {
                if r.sent != r.answered + r.errors() + r.in_flight {
                    return Err(format!(
                        "variant {} source {t}: requests do not add up: {r:?}",
                        variant.name
                    ));
                }
            }
            let checks = variant
                .expect
                .iter()
                .map(|e| run::check(e, &output, &variant.config.windows))
                .collect();
            runs.push(run::SeedRun {
                variant: v,
                seed,
                output,
                checks,
            });
        }
        // A figure a run does not have is an error, not a finding.
        let _ = report::text(&s, &runs);
        let _ = story::tell(&s, &runs);
        Ok(true)
    }));
    outcome.unwrap_or_else(|p| Err(format!("panicked: {}", message(p))))
}

/// Bundled scenarios too big for a short run (150,000 pods): parsed, not run.
const NOT_RUN: &[&str] = &["cluster_5k_nodes"];

/// Run case `i`: a bundled scenario with edge values in its numbers.
fn run_case(plan: &Plan, i: u64) -> Result<bool, String> {
    let mut rng = plan.rng(i);
    let runnable: Vec<&(&str, &str)> = bundled::BUNDLED
        .iter()
        .filter(|(name, _)| !NOT_RUN.contains(name))
        .collect();
    let mut text = pick(&mut rng, &runnable).1.to_string();
    for _ in 0..rng.random_range(1..=3u32) {
        let ns = numbers(&text);
        if !ns.is_empty() {
            text = splice(
                &text,
                *pick(&mut rng, &ns),
                pick(&mut rng, RUN_EDGES).as_bytes(),
            );
        }
    }
    let seed = rng.random_range(1..=8u64);
    plan.current(&text);
    parse_and_run(&text, seed)
        .map_err(|e| plan.finding(i, &text, &format!("run with seed {seed}: {e}")))
}

#[test]
fn parser_never_panics() {
    Plan::new("parse", "KNSIM_FUZZ_CASES", PARSE_CASES).drive(parse_case);
}

#[test]
fn short_runs_never_panic() {
    Plan::new("run", "KNSIM_FUZZ_RUNS", RUN_CASES).drive(run_case);
}

/// Every finding kept in the repository parses without a panic and, if
/// valid, runs briefly (seeds 1 and 2) without one.
#[test]
fn regressions_parse_and_run() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz-regressions");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no cases in {}", dir.display());
    for file in files {
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
        let parsed = catch_unwind(AssertUnwindSafe(|| check(&text)));
        assert!(parsed.is_ok(), "{}: parse panicked", file.display());
        for seed in [1, 2] {
            if let Err(e) = parse_and_run(&text, seed) {
                panic!("{}: seed {seed}: {e}", file.display());
            }
        }
    }
}
