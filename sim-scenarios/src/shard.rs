//! Sharded runs and sweeps, and `knsim merge`: one multi-seed run or sweep
//! split over machines, then joined into the output one machine would have
//! written.
//!
//! Scope: `--shard I/N` (1 <= I <= N) picks one of N disjoint parts of the
//! list of (variant, seed) runs, in the order an unsharded run reports them
//! (by variant, then by seed). The parts are contiguous: with K runs, shard
//! I runs those numbered `K*(I-1)/N` up to but not including `K*I/N`
//! (rounded down), so every run is in exactly one shard for any N, the
//! sizes differ by one at most, and a shard may be empty when N > K. A
//! shard writes, into its `--out` directory, each run's time series and
//! event log (as an unsharded run names them), each run's digest
//! (`digest-<variant>-seed<n>.json`, see [`crate::digest`]) and
//! [`MANIFEST`], which says what it ran: the knsim version, the command,
//! the scenario file's name and text, the swept variant and settings, every
//! seed of the whole, the shard, the report's header and its runs.
//!
//! `knsim merge DIR... --out DIR` reads the manifests, checks that they are
//! the N shards of one run or sweep (same version, command, scenario text,
//! variant, settings, seeds and N; each shard once; each listing the runs
//! its number gives it), reads the digests and copies the per-run files,
//! and writes what the unsharded command writes with `--out`, byte for
//! byte: the report and summary are built from the digests by the same
//! functions in both cases. On any error nothing is written.
//!
//! Parameters: none (no model figures).
//!
//! Validation: `tests` (the partition covers every run once for any N) and
//! `tests/cli.rs` (a two-setting sweep as 2 shards and 7 seeds as 3 shards,
//! merged, equal the whole byte for byte; missing, duplicate and foreign
//! shards are refused).

use crate::digest::{Header, RunDigest};
use crate::report;
use crate::sweep::{self, Setting};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The manifest a shard writes beside its runs' files.
pub const MANIFEST: &str = "knsim-shard.json";

/// Which of N parts: `index` from 1 to `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shard {
    /// This part, from 1.
    pub index: usize,
    /// How many parts.
    pub count: usize,
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Parses `I/N` with 1 <= I <= N.
pub fn parse_shard(s: &str) -> Result<Shard, String> {
    let hint = "write I/N with 1 <= I <= N, e.g. --shard 2/8 for the second of 8 parts";
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}` is not a shard; {hint}"))?;
    let number = |x: &str| -> Result<usize, String> {
        x.trim()
            .parse()
            .map_err(|_| format!("`{x}` in `{s}` is not a whole number; {hint}"))
    };
    let (index, count) = (number(i)?, number(n)?);
    if count == 0 || index == 0 || index > count {
        return Err(format!("shard {s} does not exist; {hint}"));
    }
    Ok(Shard { index, count })
}

impl Shard {
    /// The whole, as one shard.
    pub const WHOLE: Shard = Shard { index: 1, count: 1 };

    /// The positions of this shard's runs among `total` runs.
    pub fn range(self, total: usize) -> std::ops::Range<usize> {
        let at = |i: usize| (total as u128 * i as u128 / self.count as u128) as usize;
        at(self.index - 1)..at(self.index)
    }
}

/// Which command a shard ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Command {
    /// `knsim run --seeds`.
    Run,
    /// `knsim sweep`.
    Sweep,
}

/// What a shard ran, and everything `knsim merge` needs besides the digests.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The knsim version that ran it.
    pub knsim: String,
    /// `run` or `sweep`.
    pub command: Command,
    /// The scenario file as named on the command line.
    pub scenario_file: String,
    /// The scenario file's text.
    pub scenario_text: String,
    /// The swept variant of the file (`sweep --variant`), if any.
    pub variant: Option<String>,
    /// The `--set` flags of a sweep, in order.
    pub settings: Vec<Setting>,
    /// Every seed of the whole run, in order.
    pub seeds: Vec<u64>,
    /// This part.
    pub shard: Shard,
    /// What the report reads from the scenario.
    pub header: Header,
    /// The runs of this part, in order.
    pub runs: Vec<RunEntry>,
}

/// One run of a shard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunEntry {
    /// Index into the header's variants.
    pub variant: usize,
    /// The seed.
    pub seed: u64,
    /// Its digest's file name.
    pub digest: String,
}

impl Manifest {
    /// Every (variant, seed) run of the whole, in report order.
    pub fn all_jobs(&self) -> Vec<(usize, u64)> {
        crate::run::jobs(self.header.variants.len(), &self.seeds)
    }

    /// The runs shard `shard` of this whole has, with their digests' names.
    pub fn entries(&self, shard: Shard) -> Vec<RunEntry> {
        let jobs = self.all_jobs();
        jobs[shard.range(jobs.len())]
            .iter()
            .map(|&(variant, seed)| RunEntry {
                variant,
                seed,
                digest: digest_name(&self.header.variants[variant].name, seed),
            })
            .collect()
    }

    /// What differs between this whole and `other`'s, if anything.
    fn differs(&self, other: &Manifest) -> Option<&'static str> {
        [
            (self.knsim != other.knsim, "the knsim version"),
            (self.command != other.command, "the command (run or sweep)"),
            (
                self.scenario_text != other.scenario_text,
                "the scenario file's text",
            ),
            (self.variant != other.variant, "the swept --variant"),
            (self.settings != other.settings, "the --set settings"),
            (self.seeds != other.seeds, "the seeds"),
            (
                self.shard.count != other.shard.count,
                "the number of shards N",
            ),
            (self.header != other.header, "the report header"),
        ]
        .into_iter()
        .find_map(|(d, what)| d.then_some(what))
    }
}

/// The file name of a run's digest.
pub fn digest_name(variant: &str, seed: u64) -> String {
    format!("digest-{}-seed{seed}.json", report::file_safe(variant))
}

/// The report, summary and (for a sweep) table and charts of a whole, from
/// its runs' digests in report order: what `--out` holds besides each
/// run's time series and event log.
pub fn whole_files(
    command: Command,
    header: &Header,
    digests: &[RunDigest],
    settings: &[Setting],
    plots: &[String],
) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut files = report::summary_files(header, digests)?;
    if command == Command::Sweep {
        files.push((
            "sweep.csv".into(),
            sweep::table_csv(header, digests, settings)?,
        ));
        for pattern in plots {
            let names = sweep::matching_figures(digests, pattern);
            if names.is_empty() {
                return Err(format!(
                    "--plot `{pattern}` matches no figure; the report's first column lists them (e.g. `error rate`, `latency p99`)"
                ));
            }
            for name in names {
                let svg = sweep::plot_svg(header, digests, settings, &name)?;
                files.push((
                    format!("plot-{}.svg", report::file_safe(&name)),
                    svg.into_bytes(),
                ));
            }
        }
    }
    Ok(files)
}

/// A shard's files: per run its time series, event log and digest, then
/// the manifest.
pub fn shard_files(
    manifest: &Manifest,
    scenario: &crate::Scenario,
    runs: &[crate::run::SeedRun],
) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut files = Vec::with_capacity(3 * runs.len() + 1);
    for (r, entry) in runs.iter().zip(&manifest.runs) {
        let [series, events] = report::run_file_names(&scenario.variants[r.variant].name, r.seed);
        files.push((series, report::timeseries_csv(&r.output)?));
        files.push((events, report::events_csv(&r.output)?));
        let digest = RunDigest::of(scenario, r).map_err(|e| e.to_string())?;
        files.push((entry.digest.clone(), pretty(&digest)?));
    }
    files.push((MANIFEST.to_string(), pretty(manifest)?));
    Ok(files)
}

fn pretty<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| e.to_string())?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// The shards of one whole, read and checked, joined.
pub struct Merged {
    /// The first shard's manifest (the whole's description).
    pub manifest: Manifest,
    /// Every run's digest, in report order.
    pub digests: Vec<RunDigest>,
    /// Every run's time series and event log, as the shards wrote them.
    pub run_files: Vec<(String, Vec<u8>)>,
}

/// Reads the shards in `dirs` and checks they are the N parts of one whole,
/// each once; errors name the directory or the missing shard.
pub fn read(dirs: &[PathBuf]) -> Result<Merged, String> {
    let hint = "pass the --out directories of `knsim run --shard I/N` or `knsim sweep --shard I/N`";
    let mut shards: Vec<(PathBuf, Manifest)> = Vec::with_capacity(dirs.len());
    for dir in dirs {
        let file = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&file).map_err(|e| {
            format!(
                "{}: error: cannot read the shard manifest: {e}\n  hint: {hint}",
                file.display()
            )
        })?;
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| {
            format!(
                "{}:{}:{}: error: not a knsim shard manifest: {e}\n  hint: {hint}",
                file.display(),
                e.line(),
                e.column()
            )
        })?;
        shards.push((dir.clone(), manifest));
    }
    let Some((first_dir, first)) = shards.first() else {
        return Err(format!(
            "knsim: error: no shard directories given\n  hint: {hint}"
        ));
    };
    // Which directory holds each shard (a map: N comes from a file).
    let mut at: HashMap<usize, &Path> = HashMap::new();
    for (dir, m) in &shards {
        if let Some(what) = first.differs(m) {
            return Err(format!(
                "{}: error: shard {} is not part of the same {} as {} (shard {}): {what} differs\n  hint: merge only the shards of one command line",
                dir.display(),
                m.shard,
                command_name(first.command),
                first_dir.display(),
                first.shard,
            ));
        }
        if m.shard.index == 0 || m.shard.index > m.shard.count {
            return Err(format!(
                "{}: error: shard {} does not exist\n  hint: {hint}",
                dir.display(),
                m.shard
            ));
        }
        if let Some(other) = at.insert(m.shard.index, dir) {
            return Err(format!(
                "{}: error: shard {} is given twice, also as {}\n  hint: pass each shard's directory once",
                dir.display(),
                m.shard,
                other.display()
            ));
        }
        if m.runs != m.entries(m.shard) {
            return Err(format!(
                "{}: error: shard {} lists other runs than its part of the whole\n  hint: {hint}",
                dir.display(),
                m.shard
            ));
        }
    }
    let n = first.shard.count;
    if at.len() < n {
        // At most a few named: N may be large.
        let missing: Vec<String> = (1..=n)
            .filter(|i| !at.contains_key(i))
            .take(8)
            .map(|i| format!("{i}/{n}"))
            .collect();
        let more = n - at.len() - missing.len();
        return Err(format!(
            "knsim: error: shard{} {}{} missing\n  hint: pass the --out directory of every shard, 1/{n} to {n}/{n}",
            if n - at.len() > 1 { "s" } else { "" },
            missing.join(", "),
            if more > 0 { format!(" and {more} more") } else { String::new() },
        ));
    }
    // Runs in report order: the shards' parts in shard order.
    let mut order: Vec<(usize, usize)> = (0..shards.len())
        .map(|k| (shards[k].1.shard.index, k))
        .collect();
    order.sort_unstable();
    let mut digests = Vec::new();
    let mut run_files = Vec::new();
    let mut seen: HashMap<String, &Path> = HashMap::new();
    for (_, k) in order {
        let (dir, m) = &shards[k];
        for entry in &m.runs {
            let file = dir.join(&entry.digest);
            let text = std::fs::read_to_string(&file).map_err(|e| {
                format!(
                    "{}: error: cannot read a run's digest: {e}\n  hint: {hint}",
                    file.display()
                )
            })?;
            let digest: RunDigest = serde_json::from_str(&text).map_err(|e| {
                format!(
                    "{}:{}:{}: error: not a knsim run digest: {e}\n  hint: {hint}",
                    file.display(),
                    e.line(),
                    e.column()
                )
            })?;
            if (digest.variant, digest.seed) != (entry.variant, entry.seed) {
                return Err(format!(
                    "{}: error: the digest is of another run than the manifest says (variant {}, seed {})\n  hint: {hint}",
                    file.display(),
                    entry.variant,
                    entry.seed
                ));
            }
            for name in report::run_file_names(&m.header.variants[entry.variant].name, entry.seed) {
                let path = dir.join(&name);
                let bytes = std::fs::read(&path).map_err(|e| {
                    format!(
                        "{}: error: cannot read a run's file: {e}\n  hint: {hint}",
                        path.display()
                    )
                })?;
                if let Some(other) = seen.insert(name.clone(), dir) {
                    return Err(format!(
                        "{}: error: {name} is also written by {}; two variants share a file name\n  hint: give the variants names that differ in letters or digits",
                        dir.display(),
                        other.display()
                    ));
                }
                run_files.push((name, bytes));
            }
            digests.push(digest);
        }
    }
    Ok(Merged {
        manifest: first.clone(),
        digests,
        run_files,
    })
}

fn command_name(c: Command) -> &'static str {
    match c {
        Command::Run => "run",
        Command::Sweep => "sweep",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_parsed_and_bad_ones_refused() {
        assert_eq!(parse_shard("2/3"), Ok(Shard { index: 2, count: 3 }));
        assert_eq!(parse_shard("1/1"), Ok(Shard::WHOLE));
        for bad in ["0/2", "3/2", "x", "1/0", "/2", "1/", "-1/2", "1/2/3"] {
            assert!(parse_shard(bad).is_err(), "{bad} accepted");
        }
        assert!(parse_shard("3/2").unwrap_err().contains("does not exist"));
    }

    #[test]
    fn the_shards_cover_every_run_exactly_once_for_any_n() {
        for total in 0..40 {
            for count in 1..50 {
                let mut next = 0;
                let mut sizes = Vec::new();
                for index in 1..=count {
                    let r = Shard { index, count }.range(total);
                    assert_eq!(r.start, next, "{total} runs, shard {index}/{count}");
                    next = r.end;
                    sizes.push(r.len());
                }
                assert_eq!(next, total, "{total} runs in {count} shards");
                let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                assert!(hi - lo <= 1, "{total} in {count}: {sizes:?}");
            }
        }
        // 7 runs in 3 shards: 2, 2, 3.
        let sizes: Vec<usize> = (1..=3)
            .map(|i| Shard { index: i, count: 3 }.range(7).len())
            .collect();
        assert_eq!(sizes, [2, 2, 3]);
    }
}
