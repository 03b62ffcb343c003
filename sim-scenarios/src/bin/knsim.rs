//! `knsim`: run, tell, sweep, check and list Kubernetes networking scenarios;
//! run a multi-seed run or a sweep in shards and merge them.
//!
//! Exit status: 0 when every expectation holds, 1 when a run completed but
//! some expectation failed, 2 for bad input (the message names
//! file:line:column and gives a hint).

use clap::{Parser, Subcommand};
use sim_core::SimDuration;
use sim_models::netpol;
use sim_scenarios::digest::{Header, RunDigest};
use sim_scenarios::shard::{self, Shard};
use sim_scenarios::{
    bundled, datapath, estimate, load_datapath, load_named, load_network_plan, report, run, story,
    sweep,
};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "knsim",
    version,
    about = "Deterministic simulator of Kubernetes cluster networking"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario (a file, or the name of a bundled one) and report.
    Run {
        /// Scenario file, or a bundled scenario's name (see `knsim list`).
        scenario: String,
        /// The seed of a single run.
        #[arg(long, conflicts_with = "seeds", default_value_t = 1)]
        seed: u64,
        /// Several seeds, inclusive: `1..8` runs seeds 1 to 8 in parallel.
        #[arg(long, value_parser = parse_seeds)]
        seeds: Option<Seeds>,
        /// Also write report.txt, summary.json and per-run CSV files here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Run only part I of N of the (variant, seed) runs and write their
        /// files, digests and a manifest to --out, for `knsim merge`.
        #[arg(long, value_name = "I/N", value_parser = shard::parse_shard, requires = "out")]
        shard: Option<Shard>,
        /// Worker threads (default: one per core). Results do not depend on it.
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        threads: Option<u16>,
        /// Packet-level scenarios: print a hubble-style line per packet per
        /// hop (time, packet, endpoints, hop, verdict) after the report.
        #[arg(long)]
        trace: bool,
        /// Packet-level scenarios: write the variant's packets, as they left
        /// each interface and with their encapsulation, to this pcap file
        /// (for tcpdump -r or Wireshark).
        #[arg(long)]
        pcap: Option<PathBuf>,
        /// Packet-level scenarios: the variant --trace and --pcap follow
        /// (default: the first).
        #[arg(long)]
        variant: Option<String>,
        /// Run even when the work estimate is beyond the limits.
        #[arg(long)]
        force: bool,
    },
    /// Tell a replay in words: what happened when, why, and what the fix
    /// changed, then the report (one seed).
    Story {
        /// Scenario file, or a bundled scenario's name.
        scenario: String,
        /// The seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Run even when the work estimate is beyond the limits.
        #[arg(long)]
        force: bool,
    },
    /// Run a scenario once per value of a field (`--set PATH=V1,V2,...`;
    /// several `--set` sweep every combination, the first flag outermost)
    /// and compare: the report's columns are the values; with `--out`, also
    /// sweep.csv (mean, sd, min, max over the seeds per value and figure)
    /// and one SVG chart per `--plot`. Exits 0 whatever the expectations say.
    Sweep {
        /// Scenario file, or a bundled scenario's name.
        scenario: String,
        /// The field and its values, e.g. `cluster.ipam.pod_cidr=10.0.0.0/24,10.0.0.0/22`
        /// or `workloads.checkout.replicas=100,200,400` (repeatable: the
        /// cross product, variants named `V1, W1`, `V1, W2`, ...).
        #[arg(long = "set", value_parser = sweep::parse_setting, required = true)]
        set: Vec<sweep::Setting>,
        /// The variant of the file to sweep (default: the top level).
        #[arg(long)]
        variant: Option<String>,
        /// The seed of a single run per value.
        #[arg(long, conflicts_with = "seeds", default_value_t = 1)]
        seed: u64,
        /// Several seeds per value, inclusive: `1..8`.
        #[arg(long, value_parser = parse_seeds)]
        seeds: Option<Seeds>,
        /// Write report.txt, summary.json, sweep.csv, CSV series and charts here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Chart the figures whose name contains this text (needs --out; repeatable;
        /// with --shard, give it to `knsim merge`).
        #[arg(long, requires = "out", conflicts_with = "shard")]
        plot: Vec<String>,
        /// Run only part I of N of the (value, seed) runs and write their
        /// files, digests and a manifest to --out, for `knsim merge`.
        #[arg(long, value_name = "I/N", value_parser = shard::parse_shard, requires = "out")]
        shard: Option<Shard>,
        /// Worker threads (default: one per core). Results do not depend on it.
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        threads: Option<u16>,
        /// Run even when the work estimate is beyond the limits.
        #[arg(long)]
        force: bool,
    },
    /// Join the --out directories of the N shards of one `run --shard` or
    /// `sweep --shard` into the files the unsharded command writes with
    /// --out (byte for byte), and print its report.
    Merge {
        /// The shards' --out directories, in any order.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Where to write the joined output.
        #[arg(long)]
        out: PathBuf,
        /// For a sweep: chart the figures whose name contains this text (repeatable).
        #[arg(long)]
        plot: Vec<String>,
    },
    /// Validate a scenario without running it.
    Check {
        /// Scenario file, or a bundled scenario's name.
        scenario: String,
    },
    /// List the bundled scenarios.
    List,
    /// Print the JSON Schema of scenario files (both levels), for editors:
    /// the repository keeps it at schema/knsim-scenario.schema.json.
    Schema,
    /// NetworkPolicy reachability: read the manifests in DIR (NetworkPolicy,
    /// Namespace, Pod, Deployment, StatefulSet) and print who can reach whom
    /// on which port (pods, nodes as node:NAME, --peer addresses as
    /// peer:NAME), explaining every denied cell; or check a file of
    /// expected verdicts (--expect) and exit 1 if one differs.
    Netpol {
        /// A directory of *.yaml / *.yml manifests.
        dir: PathBuf,
        /// An address outside the pod network (the internet, a partner
        /// network) as a row and column `peer:NAME`, e.g.
        /// `--peer internet=8.8.8.8` (repeatable).
        #[arg(long = "peer", value_name = "NAME=IP", value_parser = parse_peer)]
        peers: Vec<netpol::OutsidePeer>,
        /// A port to probe besides the default ones (container ports and
        /// numeric ports of policies), e.g. `--port TCP/443` (repeatable).
        #[arg(long = "port", value_name = "PROTO/PORT", value_parser = netpol::parse_probe_port)]
        ports: Vec<(netpol::Protocol, u16)>,
        /// `text`: the truth table; `json`: one JSON array of flows
        /// {from, to, protocol, port, allowed, egress, ingress, why}.
        #[arg(long, value_enum, default_value_t = NetpolOutput::Text)]
        output: NetpolOutput,
        /// A YAML list of {from, to, protocol, port, allowed} (names as in
        /// the table): print whether each holds; exit 1 if one does not.
        #[arg(long, value_name = "FILE", conflicts_with = "output")]
        expect: Option<PathBuf>,
    },
    /// Ingress routing: read the Ingress manifests at PATH (a file or a
    /// directory) and print which backend answers each request, as a
    /// conformant controller or ingress-nginx routes it (with ingress-nginx,
    /// use-regex or rewrite-target on one Ingress makes every path of its
    /// host a case-insensitive regex prefix); Gateway API HTTPRoutes among
    /// them are routed by the API's own rules (lines marked [HTTPRoute]);
    /// without --request, the routing table; with --expect, check expected
    /// routes and exit 1 if one differs.
    Ingress {
        /// A manifest file, or a directory of *.yaml / *.yml manifests.
        path: PathBuf,
        /// The controller that serves the Ingresses.
        #[arg(long, value_enum)]
        controller: IngressController,
        /// A request to route, `HOST/PATH` (repeatable), e.g.
        /// `--request shop.example.com/api-docs`.
        #[arg(long = "request", value_name = "HOST/PATH")]
        requests: Vec<sim_scenarios::ingress::Request>,
        /// `text` or `json` (the routes of the --request flags).
        #[arg(long, value_enum, default_value_t = NetpolOutput::Text)]
        output: NetpolOutput,
        /// A YAML list of {host, path, backend} (`service:port`, or
        /// `default` for the controller's 404): print whether each holds;
        /// exit 1 if one does not.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["output", "requests"])]
        expect: Option<PathBuf>,
    },
}

/// Which Ingress controller `knsim ingress` routes as.
#[derive(Clone, Copy, clap::ValueEnum)]
enum IngressController {
    /// The semantics the Ingress API states (ImplementationSpecific as Prefix).
    Conformant,
    /// kubernetes/ingress-nginx.
    IngressNginx,
}

/// `knsim ingress`: the routing table, the routes of the requests, or the
/// expectations checked.
fn run_ingress(
    path: &Path,
    controller: IngressController,
    requests: &[sim_scenarios::ingress::Request],
    output: NetpolOutput,
    expect: Option<&Path>,
) -> ExitCode {
    use sim_models::ingress::Controller;
    use sim_scenarios::ingress;
    let controller = match controller {
        IngressController::Conformant => Controller::Conformant,
        IngressController::IngressNginx => Controller::IngressNginx,
    };
    let built = ingress::load(path).and_then(|l| ingress::router(&l, controller).map(|r| (l, r)));
    let (loaded, router) = match built {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if !loaded.skipped.is_empty() {
        let kinds: Vec<String> = loaded
            .skipped
            .iter()
            .map(|(k, n)| format!("{n} {}", if k.is_empty() { "without kind" } else { k }))
            .collect();
        eprintln!(
            "knsim: skipped objects of other kinds: {}",
            kinds.join(", ")
        );
    }
    if let Some(file) = expect {
        let name = file.display().to_string();
        let checked = std::fs::read_to_string(file)
            .map_err(|e| {
                sim_scenarios::error::InputError::whole(
                    &name,
                    format!("cannot read file: {e}"),
                    "pass a readable YAML list of {host, path, backend}",
                )
            })
            .and_then(|text| ingress::check_expectations(&name, &text, &loaded, &router));
        return match checked {
            Ok((report, all_hold)) => {
                print!("{report}");
                if all_hold {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        };
    }
    if requests.is_empty() {
        print!("{}", ingress::table_text(&loaded, &router));
        return ExitCode::SUCCESS;
    }
    let routes = ingress::route_all(&loaded, &router, requests);
    match output {
        NetpolOutput::Text => print!("{}", ingress::routes_text(&routes)),
        NetpolOutput::Json => match serde_json::to_string_pretty(&routes) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("knsim: error: {e}");
                return ExitCode::from(2);
            }
        },
    }
    ExitCode::SUCCESS
}

/// What `knsim netpol` and `knsim ingress` print.
#[derive(Clone, Copy, clap::ValueEnum)]
enum NetpolOutput {
    Text,
    Json,
}

fn parse_peer(s: &str) -> Result<netpol::OutsidePeer, String> {
    s.parse()
}

/// `knsim netpol`: the table as text or JSON, or the expectations checked.
fn run_netpol(
    dir: &Path,
    peers: &[netpol::OutsidePeer],
    ports: &[(netpol::Protocol, u16)],
    output: NetpolOutput,
    expect: Option<&Path>,
) -> ExitCode {
    let table = match netpol::load_dir(dir) {
        Ok(m) => match netpol::Reachability::new(m, peers, ports) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("knsim: error: {e}");
                return ExitCode::from(2);
            }
        },
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Some(file) = expect {
        let name = file.display().to_string();
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{name}: error: cannot read file: {e}\n  hint: pass a readable YAML list of {{from, to, protocol, port, allowed}}");
                return ExitCode::from(2);
            }
        };
        let expectations = match netpol::parse_expectations(&name, &text, &table) {
            Ok(list) => list,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        };
        let (report, all_hold) = netpol::check_expectations(&table, &expectations);
        print!("{report}");
        return if all_hold {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        };
    }
    match output {
        NetpolOutput::Text => print!("{}", table.text()),
        NetpolOutput::Json => match serde_json::to_string_pretty(&table.flows()) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("knsim: error: {e}");
                return ExitCode::from(2);
            }
        },
    }
    ExitCode::SUCCESS
}

/// An inclusive range of seeds.
#[derive(Clone)]
struct Seeds(Vec<u64>);

fn parse_seeds(s: &str) -> Result<Seeds, String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("`{s}` is not a range; write e.g. 1..8"))?;
    let b = b.strip_prefix('=').unwrap_or(b);
    let a: u64 = a
        .trim()
        .parse()
        .map_err(|_| format!("`{a}` is not a seed (a whole number)"))?;
    let b: u64 = b
        .trim()
        .parse()
        .map_err(|_| format!("`{b}` is not a seed (a whole number)"))?;
    if b < a {
        return Err(format!(
            "range {a}..{b} is empty; the end must be >= the start"
        ));
    }
    if b - a >= 10_000 {
        return Err(format!(
            "{} seeds is too many for one run; at most 10000",
            b - a + 1
        ));
    }
    Ok(Seeds((a..=b).collect()))
}

/// The variants of `s` that `jobs` run, as a scenario of their own, and
/// the most runs of one of them: what a shard's work estimate covers.
fn share(s: &sim_scenarios::Scenario, jobs: &[(usize, u64)]) -> (sim_scenarios::Scenario, usize) {
    let mut per_variant = vec![0usize; s.variants.len()];
    for &(v, _) in jobs {
        per_variant[v] += 1;
    }
    let mut part = s.clone();
    part.variants = s
        .variants
        .iter()
        .zip(&per_variant)
        .filter(|(_, &n)| n > 0)
        .map(|(v, _)| v.clone())
        .collect();
    if part.variants.is_empty() {
        part.variants = s.variants[..1].to_vec();
    }
    (part, per_variant.into_iter().max().unwrap_or(0))
}

/// What `knsim run` and `knsim sweep` were asked, for both.
struct Job<'a> {
    command: shard::Command,
    file: &'a str,
    text: &'a str,
    scenario: &'a sim_scenarios::Scenario,
    variant: Option<String>,
    settings: Vec<sweep::Setting>,
    seeds: Vec<u64>,
    shard: Option<Shard>,
    threads: Option<u16>,
    force: bool,
}

/// Runs `job`'s runs (all, or its shard's), with the work estimate first
/// and a progress bar; the exit status when it failed (said on stderr).
fn execute(job: &Job, what: &str) -> Result<Vec<run::SeedRun>, ExitCode> {
    let s = job.scenario;
    let all = run::jobs(s.variants.len(), &job.seeds);
    let mine = &all[job.shard.unwrap_or(Shard::WHOLE).range(all.len())];
    let (part, per_variant) = share(s, mine);
    let estimated = if job.shard.is_some() {
        (&part, per_variant)
    } else {
        (s, job.seeds.len())
    };
    let (bar, total) = admit(
        (job.file, job.text),
        estimated.0,
        estimated.1,
        job.threads,
        job.force,
    )?;
    match job.shard {
        Some(shard) => eprintln!(
            "knsim: {what}, shard {shard}: {} of {} runs ({})...",
            mine.len(),
            all.len(),
            total.summary()
        ),
        None => eprintln!("knsim: {what} ({})...", total.summary()),
    }
    let runs = timed(
        || {
            let runs = run::run_jobs(s, mine, job.threads.map(usize::from), &|d| bar.advance(d));
            bar.finish();
            runs
        },
        |r| r.output.events_fired,
    );
    runs.ok_or(ExitCode::from(2))
}

/// A shard's output: its runs' files, digests and manifest in `dir`, and a
/// line per run on stdout.
fn write_shard(job: &Job, shard: Shard, runs: &[run::SeedRun], dir: &Path) -> Result<(), String> {
    let s = job.scenario;
    let mut manifest = shard::Manifest {
        knsim: env!("CARGO_PKG_VERSION").to_string(),
        command: job.command,
        scenario_file: job.file.to_string(),
        scenario_text: job.text.to_string(),
        variant: job.variant.clone(),
        settings: job.settings.clone(),
        seeds: job.seeds.clone(),
        shard,
        header: Header::of(s),
        runs: Vec::new(),
    };
    manifest.runs = manifest.entries(shard);
    let files = shard::shard_files(&manifest, s, runs)?;
    report::write_all(dir, &files)?;
    println!(
        "{}: shard {shard}: {} of {} runs",
        s.name,
        runs.len(),
        manifest.all_jobs().len()
    );
    for r in runs {
        let (held, total) = run::totals(r.checks.iter());
        println!(
            "  {} seed {}: {held} of {total} expectations hold",
            s.variants[r.variant].name, r.seed
        );
    }
    eprintln!(
        "knsim: wrote {} (join the shards with `knsim merge`)",
        dir.display()
    );
    Ok(())
}

/// `knsim merge`: the shards joined, written and reported.
fn merge(dirs: &[PathBuf], out: &Path, plots: &[String]) -> ExitCode {
    let mut merged = match shard::read(dirs) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let m = merged.manifest.clone();
    if m.command == shard::Command::Run && !plots.is_empty() {
        eprintln!("knsim: error: --plot charts a sweep's figures; these shards are of `knsim run`\n  hint: leave out --plot");
        return ExitCode::from(2);
    }
    let files = shard::whole_files(m.command, &m.header, &merged.digests, &m.settings, plots)
        .and_then(|mut files| {
            files.append(&mut merged.run_files);
            report::write_all(out, &files)
        });
    if let Err(e) = files {
        eprintln!("knsim: error: {e}");
        return ExitCode::from(2);
    }
    eprintln!("knsim: wrote {}", out.display());
    print!("{}", report::text_of(&m.header, &merged.digests));
    let (held, total) = run::totals(merged.digests.iter().flat_map(|d| &d.checks));
    if m.command == shard::Command::Sweep || held == total {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The work estimate of every run of `s` (`seeds` each, `threads` at a
/// time), read from `file` whose `text` locates its error: beyond the
/// limits, the error and exit 2 unless `force`; else a progress bar for runs
/// expected to take more than a couple of seconds. First, on stderr, what
/// the scenario's manifests hold that the model skips or does not model.
fn admit(
    (file, text): (&str, &str),
    s: &sim_scenarios::Scenario,
    seeds: usize,
    threads: Option<u16>,
    force: bool,
) -> Result<(Progress, estimate::Total), ExitCode> {
    // What the manifests hold that the model skips, once per line.
    let mut noted: Vec<&str> = Vec::new();
    for note in s.variants.iter().flat_map(|v| &v.notes) {
        if !noted.contains(&note.as_str()) {
            eprintln!("knsim: {note}");
            noted.push(note);
        }
    }
    let threads = threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, usize::from),
        usize::from,
    );
    let total = match estimate::guard(file, text, s, seeds, threads, estimate::LIMITS) {
        Ok(total) => total,
        Err(e) if force => {
            eprintln!("knsim: warning (--force): {e}");
            return Ok((Progress(None), estimate::Total::default()));
        }
        Err(e) => {
            eprintln!("{e}");
            return Err(ExitCode::from(2));
        }
    };
    if total.seconds() < 2.0 {
        return Ok((Progress(None), total));
    }
    let simulated: u64 = s
        .variants
        .iter()
        .map(|v| v.config.duration.as_nanos())
        .sum::<u64>()
        .saturating_mul(seeds as u64);
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(simulated),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {percent:>3}% of the simulated time, ETA {eta}",
        )
        .expect("a valid template"),
    );
    Ok((Progress(Some(bar)), total))
}

/// A progress bar over simulated time, drawn on stderr only when it is a
/// terminal (indicatif hides it otherwise).
struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    fn advance(&self, simulated: SimDuration) {
        if let Some(bar) = &self.0 {
            bar.inc(simulated.as_nanos());
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// Runs `all`, then says on stderr how long it took and how many events
/// the runs fired; `None` (the error said) if it failed.
fn timed<R, E: std::fmt::Display>(
    all: impl FnOnce() -> Result<Vec<R>, E>,
    events: impl Fn(&R) -> u64,
) -> Option<Vec<R>> {
    let started = std::time::Instant::now();
    match all() {
        Ok(runs) => {
            let fired: u64 = runs.iter().map(events).sum();
            eprintln!(
                "knsim: done in {:.1} s ({fired} events)",
                started.elapsed().as_secs_f64()
            );
            Some(runs)
        }
        Err(e) => {
            eprintln!("knsim: error: {e}");
            None
        }
    }
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Schema => {
            print!("{}", sim_scenarios::schema::json_schema());
            ExitCode::SUCCESS
        }
        Command::List => {
            for (name, text) in bundled::BUNDLED {
                let summary = if sim_scenarios::datapath::is_datapath(text) {
                    sim_scenarios::datapath::parse(name, text).map(|s| s.summary)
                } else if sim_scenarios::network_plan::is_network_plan(text) {
                    sim_scenarios::network_plan::parse(name, text).map(|s| s.summary)
                } else {
                    sim_scenarios::parse(name, text).map(|s| s.summary)
                }
                .unwrap_or_else(|e| format!("(invalid: {e})"));
                println!("{name:<24} {summary}");
            }
            ExitCode::SUCCESS
        }
        Command::Netpol {
            dir,
            peers,
            ports,
            output,
            expect,
        } => run_netpol(&dir, &peers, &ports, output, expect.as_deref()),
        Command::Ingress {
            path,
            controller,
            requests,
            output,
            expect,
        } => run_ingress(&path, controller, &requests, output, expect.as_deref()),
        Command::Story { scenario, .. } if load_network_plan(&scenario).is_some() => {
            // A network plan's report is its story.
            run_network_plan(load_network_plan(&scenario).expect("checked above"), None)
        }
        Command::Story { scenario, seed, .. } if load_datapath(&scenario).is_some() => {
            // A packet-level replay's report is its story.
            let opts = PacketOptions {
                seeds: vec![seed],
                threads: None,
                out: None,
                trace: false,
                pcap: None,
                variant: None,
            };
            run_packet_level(load_datapath(&scenario).expect("checked above"), &opts)
        }
        Command::Story {
            scenario,
            seed,
            force,
        } => {
            let read = sim_scenarios::read_named(&scenario);
            if let Ok((file, text)) = &read {
                if let Ok(s) = sim_scenarios::parse(file, text) {
                    if let Err(code) = admit((file, text), &s, 1, Some(1), force) {
                        return code;
                    }
                }
            }
            story::print_replay(&scenario, seed)
        }
        Command::Sweep {
            scenario,
            set,
            variant,
            seed,
            seeds,
            out,
            plot,
            shard,
            threads,
            force,
        } => {
            if load_datapath(&scenario).is_some() {
                eprintln!(
                    "knsim: error: {scenario} is a packet-level (datapath) scenario; sweeps cover cluster scenarios\n  hint: run its variants side by side with `knsim run {scenario}`"
                );
                return ExitCode::from(2);
            }
            if load_network_plan(&scenario).is_some() {
                eprintln!(
                    "knsim: error: {scenario} is a network plan (network_plan:); sweeps cover cluster scenarios\n  hint: check its variants side by side with `knsim run {scenario}`"
                );
                return ExitCode::from(2);
            }
            let built = sim_scenarios::read_named(&scenario).and_then(|(file, text)| {
                let s = sweep::build(&file, &text, &set, variant.as_deref())?;
                Ok((file, text, s))
            });
            let (file, text, s) = match built {
                Ok(built) => built,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            let job = Job {
                command: shard::Command::Sweep,
                file: &file,
                text: &text,
                scenario: &s,
                variant,
                settings: set,
                seeds: seeds.map_or_else(|| vec![seed], |s| s.0),
                shard,
                threads,
                force,
            };
            let what = format!(
                "sweeping {} over {} value(s) x {} seed(s)",
                sweep::paths_label(&job.settings),
                s.variants.len(),
                job.seeds.len()
            );
            let runs = match execute(&job, &what) {
                Ok(runs) => runs,
                Err(code) => return code,
            };
            match finish(&job, &runs, out.as_deref(), &plot) {
                Ok(_) => ExitCode::SUCCESS,
                Err(code) => code,
            }
        }
        Command::Merge { dirs, out, plot } => merge(&dirs, &out, &plot),
        Command::Check { scenario } => {
            let variants = |names: Vec<(&str, usize)>| -> Vec<(String, usize)> {
                names.into_iter().map(|(n, c)| (n.to_string(), c)).collect()
            };
            let checked = match (load_datapath(&scenario), load_network_plan(&scenario)) {
                (Some(r), _) => r.map(|s| {
                    let v = s.variants.iter().map(|v| (v.name.as_str(), v.expect.len()));
                    ("packet-level; ", variants(v.collect()))
                }),
                (None, Some(r)) => r.map(|s| {
                    let v = s.variants.iter().map(|v| (v.name.as_str(), v.expect.len()));
                    ("network plan; ", variants(v.collect()))
                }),
                (None, None) => load_named(&scenario).map(|s| {
                    let v = s.variants.iter().map(|v| (v.name.as_str(), v.expect.len()));
                    ("", variants(v.collect()))
                }),
            };
            match checked {
                Ok((kind, vs)) => {
                    let names: Vec<&str> = vs.iter().map(|(n, _)| n.as_str()).collect();
                    let checks: usize = vs.iter().map(|(_, c)| c).sum();
                    println!(
                        "{scenario}: ok ({kind}{} variants: {}; {checks} expectations)",
                        names.len(),
                        names.join(", ")
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Run {
            scenario,
            seed,
            seeds,
            out,
            shard,
            threads,
            trace,
            pcap,
            variant,
            force,
        } => {
            if let Some(parsed) = load_network_plan(&scenario) {
                if shard.is_some() || trace || pcap.is_some() || variant.is_some() {
                    eprintln!("knsim: error: --shard, --trace, --pcap and --variant do not apply to network plans; {scenario} is one (network_plan:)\n  hint: run it whole: `knsim run {scenario}`");
                    return ExitCode::from(2);
                }
                return run_network_plan(parsed, out.as_deref());
            }
            if let Some(parsed) = load_datapath(&scenario) {
                if shard.is_some() {
                    eprintln!("knsim: error: --shard applies to cluster scenarios; {scenario} is a packet-level (datapath) scenario\n  hint: run it whole, without --shard");
                    return ExitCode::from(2);
                }
                let opts = PacketOptions {
                    seeds: seeds.map_or_else(|| vec![seed], |s| s.0),
                    threads: threads.map(usize::from),
                    out,
                    trace,
                    pcap,
                    variant,
                };
                return run_packet_level(parsed, &opts);
            }
            if trace || pcap.is_some() || variant.is_some() {
                eprintln!("knsim: error: --trace, --pcap and --variant apply to packet-level scenarios (a `datapath:` section); {scenario} is a cluster scenario");
                return ExitCode::from(2);
            }
            let loaded = sim_scenarios::read_named(&scenario).and_then(|(file, text)| {
                let s = sim_scenarios::parse(&file, &text)?;
                Ok((file, text, s))
            });
            let (file, text, s) = match loaded {
                Ok(loaded) => loaded,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            let job = Job {
                command: shard::Command::Run,
                file: &file,
                text: &text,
                scenario: &s,
                variant: None,
                settings: Vec::new(),
                seeds: seeds.map_or_else(|| vec![seed], |s| s.0),
                shard,
                threads,
                force,
            };
            let what = format!(
                "running {} variant(s) x {} seed(s)",
                s.variants.len(),
                job.seeds.len()
            );
            let runs = match execute(&job, &what) {
                Ok(runs) => runs,
                Err(code) => return code,
            };
            if let Err(code) = finish(&job, &runs, out.as_deref(), &[]) {
                return code;
            }
            let (held, total) = report::expectation_totals(&runs);
            if held == total {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// After the runs: a shard writes its part; a whole prints its report and
/// writes its files to `out` (`knsim run` prints first, `knsim sweep`
/// writes first, as they always have).
fn finish(
    job: &Job,
    runs: &[run::SeedRun],
    out: Option<&Path>,
    plots: &[String],
) -> Result<(), ExitCode> {
    let fail = |e: String| {
        eprintln!("knsim: error: {e}");
        ExitCode::from(2)
    };
    if let (Some(shard), Some(dir)) = (job.shard, out) {
        return write_shard(job, shard, runs, dir).map_err(fail);
    }
    let s = job.scenario;
    let header = Header::of(s);
    let digests = RunDigest::all(s, runs).map_err(|e| fail(e.to_string()))?;
    let text = report::text_of(&header, &digests);
    if job.command == shard::Command::Run {
        print!("{text}");
    }
    if let Some(dir) = out {
        let mut files = shard::whole_files(job.command, &header, &digests, &job.settings, plots)
            .map_err(fail)?;
        for r in runs {
            let [series, events] = report::run_file_names(&s.variants[r.variant].name, r.seed);
            files.push((series, report::timeseries_csv(&r.output).map_err(fail)?));
            files.push((events, report::events_csv(&r.output).map_err(fail)?));
        }
        report::write_all(dir, &files).map_err(fail)?;
        eprintln!("knsim: wrote {}", dir.display());
    }
    if job.command == shard::Command::Sweep {
        print!("{text}");
    }
    Ok(())
}

/// What `knsim run` was asked for a packet-level scenario.
struct PacketOptions {
    /// Seeds, for variants that draw random numbers (Services).
    seeds: Vec<u64>,
    threads: Option<usize>,
    out: Option<PathBuf>,
    trace: bool,
    pcap: Option<PathBuf>,
    variant: Option<String>,
}

fn run_packet_level(
    parsed: Result<datapath::DatapathScenario, sim_scenarios::InputError>,
    opts: &PacketOptions,
) -> ExitCode {
    let s = match parsed {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let v = match &opts.variant {
        None => 0,
        Some(name) => match s.variants.iter().position(|v| &v.name == name) {
            Some(i) => i,
            None => {
                let names: Vec<&str> = s.variants.iter().map(|v| v.name.as_str()).collect();
                eprintln!(
                    "knsim: error: no variant is called `{name}`\n  hint: variants: {}",
                    names.join(", ")
                );
                return ExitCode::from(2);
            }
        },
    };
    let rec = sim_models::datapath::network::Recording {
        trace: opts.trace,
        capture: opts.pcap.is_some(),
    };
    eprintln!(
        "knsim: running {} variant(s) packet by packet...",
        s.variants.len()
    );
    let Some(runs) = timed(
        || datapath::run_all(&s, &opts.seeds, opts.threads, Some((v, rec))),
        |r| r.output.events_fired,
    ) else {
        return ExitCode::from(2);
    };
    let text = datapath::text(&s, &runs);
    print!("{text}");
    // The recorded run: the variant's first (or only) one.
    let recorded = runs.iter().position(|r| r.variant == v).unwrap_or(0);
    if opts.trace {
        println!();
        println!(
            "trace: {} (time, packet, source -> destination, hop, verdict)",
            s.variants[v].name
        );
        for line in &runs[recorded].output.trace {
            println!("{line}");
        }
    }
    if let Some(file) = &opts.pcap {
        let written = std::fs::File::create(file)
            .map_err(|e| e.to_string())
            .and_then(|f| {
                let mut w = std::io::BufWriter::new(f);
                sim_models::datapath::pcap::write(&mut w, &runs[recorded].output.captured)?;
                std::io::Write::flush(&mut w).map_err(|e| e.to_string())
            });
        if let Err(e) = written {
            eprintln!("knsim: error: cannot write {}: {e}", file.display());
            return ExitCode::from(2);
        }
        eprintln!(
            "knsim: wrote {} ({} packets of variant {})",
            file.display(),
            runs[recorded].output.captured.len(),
            s.variants[v].name
        );
    }
    if let Some(dir) = &opts.out {
        let mut summary = match serde_json::to_vec_pretty(&datapath::json(&s, &runs)) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("knsim: error: {e}");
                return ExitCode::from(2);
            }
        };
        summary.push(b'\n');
        let files = vec![
            ("report.txt".to_string(), text.into_bytes()),
            ("summary.json".to_string(), summary),
        ];
        if let Err(e) = report::write_all(dir, &files) {
            eprintln!("knsim: error: {e}");
            return ExitCode::from(2);
        }
        eprintln!("knsim: wrote {}", dir.display());
    }
    let (held, total) = datapath::expectation_totals(&runs);
    if held == total {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `knsim run` (and `story`) for a network plan: checks every variant,
/// prints the report, writes report.txt and summary.json to `out`; exit 1
/// if an expectation fails, 2 on bad input.
fn run_network_plan(
    parsed: Result<sim_scenarios::network_plan::PlanScenario, sim_scenarios::InputError>,
    out: Option<&Path>,
) -> ExitCode {
    use sim_scenarios::network_plan;
    let s = match parsed {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runs = network_plan::run_all(&s);
    let text = network_plan::text(&s, &runs);
    print!("{text}");
    if let Some(dir) = out {
        let mut summary = match serde_json::to_vec_pretty(&network_plan::json(&s, &runs)) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("knsim: error: {e}");
                return ExitCode::from(2);
            }
        };
        summary.push(b'\n');
        let files = vec![
            ("report.txt".to_string(), text.into_bytes()),
            ("summary.json".to_string(), summary),
        ];
        if let Err(e) = report::write_all(dir, &files) {
            eprintln!("knsim: error: {e}");
            return ExitCode::from(2);
        }
        eprintln!("knsim: wrote {}", dir.display());
    }
    let (held, total) = network_plan::expectation_totals(&runs);
    if held == total {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
