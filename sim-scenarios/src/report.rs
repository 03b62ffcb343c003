//! What a run tells people: a text report (figures side by side per variant,
//! the Kubernetes events, the expectations), a JSON summary, and CSV time
//! series and event logs. Every output is a pure function of the runs, so
//! the same scenario and seeds give byte-identical files.

use crate::figures::{num, Unit};
use crate::run::SeedRun;
use crate::spec::Scenario;
use serde_json::{json, Value};
use sim_models::cluster::RunOutput;
use std::fmt::Write as _;

/// One headline number of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    /// What it is (`checkout in failover: error rate`).
    pub name: String,
    /// Its value (seconds for durations).
    pub value: f64,
    /// How to show it.
    pub unit: Unit,
}

/// The headline figures of one run, in a fixed order.
pub fn figures(scenario: &Scenario, run: &SeedRun) -> Vec<Figure> {
    let cfg = &scenario.variants[run.variant].config;
    let out = &run.output;
    let mut f = Vec::new();
    let mut push = |name: String, value: f64, unit: Unit| f.push(Figure { name, value, unit });
    for d in &out.deployments {
        let most = |what: &str| series_max(out, &format!("{what}{{deployment={}}}", d.name));
        push(
            format!("{}: pods wanted at the end", d.name),
            f64::from(d.desired),
            Unit::Count,
        );
        push(
            format!("{}: pods Running at the end", d.name),
            f64::from(d.running()),
            Unit::Count,
        );
        push(
            format!("{}: pods Pending at the end", d.name),
            f64::from(d.pending()),
            Unit::Count,
        );
        push(
            format!("{}: pods with no IP address, most at once", d.name),
            most("pods_sandbox_failed"),
            Unit::Count,
        );
        push(
            format!("{}: pods no node fits, most at once", d.name),
            most("pods_unschedulable"),
            Unit::Count,
        );
    }
    push(
        "IPAM: pod addresses usable at the end".into(),
        out.ipam_usable as f64,
        Unit::Count,
    );
    push(
        "IPAM: pod addresses in use at the end".into(),
        out.ipam_allocated as f64,
        Unit::Count,
    );
    if let Some(ct) = &cfg.conntrack {
        push(
            "conntrack: nf_conntrack_max per node".into(),
            ct.table.max as f64,
            Unit::Count,
        );
        push(
            "conntrack: most entries on one node".into(),
            series_max(out, "conntrack_entries_max"),
            Unit::Count,
        );
        push(
            "conntrack: packets dropped, table full (all nodes)".into(),
            out.conntrack.iter().map(|c| c.dropped_full).sum::<u64>() as f64,
            Unit::Count,
        );
    }
    if let Some(st) = &out.kube_proxy {
        push(
            "Service data path: rules or objects programmed at the end".into(),
            st.programmed as f64,
            Unit::Count,
        );
        push(
            "Service data path: syncs".into(),
            st.syncs as f64,
            Unit::Count,
        );
        push(
            "Service data path: longest sync".into(),
            st.longest.as_secs_f64(),
            Unit::Seconds,
        );
        push(
            "Service data path: longest endpoint change to data path".into(),
            st.longest_propagation.as_secs_f64(),
            Unit::Seconds,
        );
    }
    let connections_shown = cfg.conntrack.is_some()
        || cfg
            .traffic
            .iter()
            .any(|t| t.connections != sim_models::connections::ConnectionMode::PerRequest);
    for ws in &out.windows {
        let t = &ws.totals;
        let w = &ws.window;
        let s = &ws.service;
        push(
            format!("{s} in {w}: requests sent"),
            t.sent as f64,
            Unit::Count,
        );
        push(
            format!("{s} in {w}: error rate"),
            t.error_rate(),
            Unit::Ratio,
        );
        push(
            format!("{s} in {w}: timed out"),
            t.timed_out as f64,
            Unit::Count,
        );
        push(
            format!("{s} in {w}: answered after the client left"),
            t.wasted as f64,
            Unit::Count,
        );
        push(
            format!("{s} in {w}: refused (no endpoint)"),
            t.refused as f64,
            Unit::Count,
        );
        if cfg.policy.is_some() {
            push(
                format!("{s} in {w}: blocked by NetworkPolicy"),
                t.blocked as f64,
                Unit::Count,
            );
        }
        if cfg.dns.is_some() {
            push(
                format!("{s} in {w}: name lookups failed"),
                t.lookup_failed as f64,
                Unit::Count,
            );
        }
        push(
            format!("{s} in {w}: latency p50"),
            ws.latency.quantile(0.5).as_secs_f64(),
            Unit::Seconds,
        );
        push(
            format!("{s} in {w}: latency p90"),
            ws.latency.quantile(0.9).as_secs_f64(),
            Unit::Seconds,
        );
        push(
            format!("{s} in {w}: latency p99"),
            ws.latency.quantile(0.99).as_secs_f64(),
            Unit::Seconds,
        );
        if cfg.conntrack.is_some() {
            push(
                format!("{s} in {w}: SYNs dropped, conntrack table full"),
                ws.syn_drops as f64,
                Unit::Count,
            );
            if cfg.conntrack.is_some_and(|c| c.snat.is_some()) {
                push(
                    format!("{s} in {w}: SYNs lost to the SNAT port race (insert_failed)"),
                    ws.insert_failed as f64,
                    Unit::Count,
                );
            }
            push(
                format!("{s} in {w}: failed, every SYN dropped"),
                t.syn_dropped as f64,
                Unit::Count,
            );
            for (q, name) in [(0.5, "p50"), (0.99, "p99"), (1.0, "max")] {
                push(
                    format!("{s} in {w}: connect delay {name}"),
                    ws.connect_delay.quantile(q).as_secs_f64(),
                    Unit::Seconds,
                );
            }
        }
        if cfg.kube_proxy.is_some() {
            for (q, name) in [(0.5, "p50"), (0.9, "p90"), (0.99, "p99")] {
                push(
                    format!("{s} in {w}: first-packet RTT {name}"),
                    ws.first_packet.quantile(q).as_secs_f64(),
                    Unit::Seconds,
                );
            }
            let span = cfg
                .windows
                .iter()
                .find(|x| &x.name == w)
                .map_or(1.0, |x| x.end.as_secs_f64() - x.start.as_secs_f64());
            push(
                format!("{s} in {w}: CPU cores on Service lookups"),
                ws.lookup_cpu.as_secs_f64() / span,
                Unit::Count,
            );
            push(
                format!("{s} in {w}: sent to deleted pods"),
                t.stale as f64,
                Unit::Count,
            );
        }
        if connections_shown {
            push(
                format!("{s} in {w}: pods answering"),
                ws.pods_serving() as f64,
                Unit::Count,
            );
            push(
                format!("{s} in {w}: busiest pod's share of answers"),
                ws.top_pod_share(),
                Unit::Ratio,
            );
        }
    }
    if cfg.dns.is_some() {
        dns_figures(cfg, out, &mut push);
    }
    f
}

/// CoreDNS and lookup figures: per window, queries and replies per second,
/// cache hits, lost queries; per traffic source that resolves, queries per
/// lookup and lookup latency; over the run, restarts and peaks.
fn dns_figures(
    cfg: &sim_models::cluster::ClusterConfig,
    out: &RunOutput,
    push: &mut impl FnMut(String, f64, Unit),
) {
    for (d, w) in out.dns_windows.iter().zip(&cfg.windows) {
        let secs = w.end.as_secs_f64() - w.start.as_secs_f64();
        let n = &d.window;
        let received: u64 = d.received.iter().sum();
        let replies: u64 = d.replies.iter().flatten().sum();
        let by_rcode = |r: usize| d.replies.iter().map(|z| z[r]).sum::<u64>() as f64 / secs;
        push(
            format!("DNS in {n}: queries/s at CoreDNS"),
            received as f64 / secs,
            Unit::Count,
        );
        push(
            format!("DNS in {n}: of which external names"),
            d.received[1] as f64 / secs,
            Unit::Count,
        );
        push(
            format!("DNS in {n}: NXDOMAIN replies/s"),
            by_rcode(1),
            Unit::Count,
        );
        push(
            format!("DNS in {n}: SERVFAIL replies/s"),
            by_rcode(2),
            Unit::Count,
        );
        push(
            format!("DNS in {n}: REFUSED replies/s"),
            by_rcode(3),
            Unit::Count,
        );
        push(
            format!("DNS in {n}: cache hit ratio"),
            d.cache_hits.iter().sum::<u64>() as f64 / replies.max(1) as f64,
            Unit::Ratio,
        );
        push(
            format!("DNS in {n}: queries lost in killed pods"),
            d.dropped as f64,
            Unit::Count,
        );
        if cfg.dns.as_ref().is_some_and(|c| c.node_local.is_some()) {
            push(
                format!("DNS in {n}: queries/s at the NodeLocal DNSCaches"),
                d.node_local[0] as f64 / secs,
                Unit::Count,
            );
            push(
                format!("DNS in {n}: NodeLocal DNSCache hit ratio"),
                d.node_local[1] as f64 / d.node_local[0].max(1) as f64,
                Unit::Ratio,
            );
        }
        // Queries can be lost on the way only through conntrack entries or
        // kube-proxy's programmed (possibly stale) endpoints.
        if !out.conntrack.is_empty() || cfg.kube_proxy.is_some() {
            push(
                format!("DNS in {n}: queries lost to the A/AAAA insert race (insert_failed)"),
                d.insert_failed as f64,
                Unit::Count,
            );
            push(
                format!("DNS in {n}: queries sent to a deleted pod (stale conntrack entry)"),
                d.stale as f64,
                Unit::Count,
            );
            push(
                format!("DNS in {n}: queries dropped, conntrack table full"),
                d.table_full as f64,
                Unit::Count,
            );
        }
    }
    for ws in &out.windows {
        if ws.lookups == 0 {
            continue;
        }
        let (s, w) = (&ws.service, &ws.window);
        push(
            format!("{s} in {w}: DNS queries per lookup"),
            ws.dns_queries as f64 / ws.lookups as f64,
            Unit::Count,
        );
        push(
            format!("{s} in {w}: lookup p50"),
            ws.lookup_latency.quantile(0.5).as_secs_f64(),
            Unit::Seconds,
        );
        push(
            format!("{s} in {w}: lookup p99"),
            ws.lookup_latency.quantile(0.99).as_secs_f64(),
            Unit::Seconds,
        );
        push(
            format!("{s} in {w}: retries"),
            ws.totals.retried as f64,
            Unit::Count,
        );
    }
    push(
        "CoreDNS: restarts (OOM kills)".into(),
        out.dns_restarts as f64,
        Unit::Count,
    );
    push(
        "CoreDNS: most queries inside at once".into(),
        series_max(out, "dns_in_flight"),
        Unit::Count,
    );
    push(
        "CoreDNS: most memory of a pod [MiB]".into(),
        series_max(out, "dns_memory_mib_max"),
        Unit::Count,
    );
    push(
        "CoreDNS: highest CPU use of its limit".into(),
        series_max(out, "dns_cpu_utilization"),
        Unit::Ratio,
    );
}

/// The largest sampled value of a time-series column (0 if absent).
pub fn series_max(out: &RunOutput, column: &str) -> f64 {
    let Some(col) = out.metrics.columns().iter().position(|c| c == column) else {
        return 0.0;
    };
    out.metrics
        .rows()
        .iter()
        .filter_map(|(_, r)| r.get(col).copied())
        .fold(0.0, f64::max)
}

/// Mean, sample standard deviation, min and max.
pub fn spread(xs: &[f64]) -> (f64, f64, f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 {
        xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (mean, var.sqrt(), min, max)
}

fn runs_of(runs: &[SeedRun], v: usize) -> impl Iterator<Item = &SeedRun> {
    runs.iter().filter(move |r| r.variant == v)
}

/// The text report.
pub fn text(scenario: &Scenario, runs: &[SeedRun]) -> String {
    let mut s = String::new();
    let seeds: Vec<u64> = runs_of(runs, 0).map(|r| r.seed).collect();
    let duration = scenario.variants[0].config.duration;
    let _ = writeln!(s, "{}: {}", scenario.name, scenario.summary);
    let seed_text = seeds
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(s, "simulated {duration} per run; seeds {seed_text}");
    let _ = writeln!(s);
    let _ = writeln!(s, "variants");
    for v in &scenario.variants {
        let _ = writeln!(s, "  {:<12} {}", v.name, v.description);
    }
    let _ = writeln!(s);

    // Figures side by side: mean over seeds, with the spread when there are several.
    let per_variant: Vec<Vec<Vec<Figure>>> = (0..scenario.variants.len())
        .map(|v| runs_of(runs, v).map(|r| figures(scenario, r)).collect())
        .collect();
    let mut names: Vec<(String, Unit)> = Vec::new();
    for figs in per_variant.iter().flat_map(|runs| runs.first()) {
        for f in figs {
            if !names.iter().any(|(n, _)| n == &f.name) {
                names.push((f.name.clone(), f.unit));
            }
        }
    }
    let width = names.iter().map(|(n, _)| n.len()).max().unwrap_or(10) + 2;
    let mut header = format!("{:width$}", "");
    for v in &scenario.variants {
        let _ = write!(header, "{:>22}", v.name);
    }
    let _ = writeln!(s, "{}", header.trim_end());
    for (name, unit) in &names {
        let mut line = format!("{name:width$}");
        for runs in &per_variant {
            let xs: Vec<f64> = runs
                .iter()
                .filter_map(|figs| figs.iter().find(|f| &f.name == name))
                .map(|f| f.value)
                .collect();
            let cell = if xs.is_empty() {
                "-".to_string()
            } else {
                let (mean, sd, _, _) = spread(&xs);
                if xs.len() > 1 && sd > 0.0 {
                    format!("{} ±{}", unit.show(mean), unit.show(sd))
                } else {
                    unit.show(mean)
                }
            };
            let _ = write!(line, "{cell:>22}");
        }
        let _ = writeln!(s, "{line}");
    }

    if seeds.len() > 1 {
        let _ = writeln!(s);
        let _ = writeln!(s, "per seed");
        for (v, variant) in scenario.variants.iter().enumerate() {
            let _ = writeln!(s, "  {}", variant.name);
            for r in runs_of(runs, v) {
                let figs = figures(scenario, r);
                let key: Vec<String> = figs
                    .iter()
                    .filter(|f| {
                        f.name.ends_with("error rate")
                            || f.name.ends_with("no IP address, most at once")
                            || f.name.ends_with("latency p99")
                    })
                    .map(|f| format!("{} {}", short(&f.name), f.unit.show(f.value)))
                    .collect();
                let _ = writeln!(s, "    seed {:<6} {}", r.seed, key.join("  "));
            }
        }
    }

    for (v, variant) in scenario.variants.iter().enumerate() {
        let Some(first) = runs_of(runs, v).next() else {
            continue;
        };
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "events: {} (seed {}), as `kubectl get events` aggregates them",
            variant.name, first.seed
        );
        let _ = writeln!(
            s,
            "  {:<9} {:<9} {:>6}  {:<8} {:<23} MESSAGE",
            "FIRST", "LAST", "COUNT", "TYPE", "REASON"
        );
        for e in &first.output.events {
            let _ = writeln!(
                s,
                "  {:<9} {:<9} {:>6}  {:<8} {:<23} {}: {}",
                e.first.since_start().to_string(),
                e.last.since_start().to_string(),
                e.count,
                e.kind,
                e.reason,
                e.example_object,
                e.message
            );
        }
    }

    let checks: Vec<(&str, &SeedRun)> = runs
        .iter()
        .map(|r| (scenario.variants[r.variant].name.as_str(), r))
        .collect();
    if checks.iter().any(|(_, r)| !r.checks.is_empty()) {
        let _ = writeln!(s);
        let _ = writeln!(s, "expectations");
        for (name, r) in checks {
            for c in &r.checks {
                let verdict = if c.pass { "PASS" } else { "FAIL" };
                let _ = writeln!(
                    s,
                    "  {verdict} {name} seed {}: {}: {}",
                    r.seed, c.label, c.text
                );
            }
        }
        let (pass, total) = expectation_totals(runs);
        let _ = writeln!(s, "  {pass} of {total} expectations hold");
    }
    s
}

fn short(name: &str) -> String {
    name.replace(": pods with no IP address, most at once", " max without IP")
        .replace(" error rate", " errors")
}

/// (held, total) over every run's expectations.
pub fn expectation_totals(runs: &[SeedRun]) -> (usize, usize) {
    crate::run::totals(runs.iter().flat_map(|r| &r.checks))
}

/// The JSON summary: per variant, per seed, every figure and check, and the
/// mean, standard deviation, min and max over seeds.
pub fn json(scenario: &Scenario, runs: &[SeedRun]) -> Value {
    let variants: Vec<Value> = scenario
        .variants
        .iter()
        .enumerate()
        .map(|(v, variant)| {
            let mine: Vec<&SeedRun> = runs_of(runs, v).collect();
            let per_seed: Vec<Value> = mine
                .iter()
                .map(|r| {
                    let figs: serde_json::Map<String, Value> = figures(scenario, r).into_iter().map(|f| (f.name, json!(f.value))).collect();
                    let checks: Vec<Value> = r.checks.iter().map(crate::run::Check::json).collect();
                    let totals: Vec<Value> = r
                        .output
                        .requests
                        .iter()
                        .zip(&variant.config.traffic)
                        .map(|(t, spec)| {
                            json!({
                                "service": spec.name,
                                "sent": t.sent, "answered": t.answered, "timed_out": t.timed_out,
                                "answered_after_client_left": t.wasted, "refused": t.refused,
                                "rejected": t.rejected, "in_flight": t.in_flight,
                            })
                        })
                        .collect();
                    json!({"seed": r.seed, "figures": figs, "requests": totals, "expectations": checks, "events_fired": r.output.events_fired})
                })
                .collect();
            let mut stats = serde_json::Map::new();
            if let Some(first) = mine.first() {
                for f in figures(scenario, first) {
                    let xs: Vec<f64> = mine.iter().filter_map(|r| figures(scenario, r).into_iter().find(|g| g.name == f.name)).map(|g| g.value).collect();
                    let (mean, sd, min, max) = spread(&xs);
                    stats.insert(f.name, json!({"mean": mean, "sd": sd, "min": min, "max": max}));
                }
            }
            json!({"name": variant.name, "description": variant.description, "runs": per_seed, "across_seeds": stats})
        })
        .collect();
    let (pass, total) = expectation_totals(runs);
    json!({
        "scenario": scenario.name,
        "summary": scenario.summary,
        "seeds": runs_of(runs, 0).map(|r| r.seed).collect::<Vec<_>>(),
        "variants": variants,
        "expectations": {"held": pass, "total": total},
    })
}

/// The sampled time series of one run as CSV: `time_s` then one column per metric.
pub fn timeseries_csv(out: &RunOutput) -> Result<Vec<u8>, String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let cols = out.metrics.columns();
    let mut header = vec!["time_s".to_string()];
    header.extend(cols.iter().cloned());
    w.write_record(&header).map_err(|e| e.to_string())?;
    for (t, row) in out.metrics.rows() {
        let mut rec = vec![num(t.as_secs_f64())];
        rec.extend((0..cols.len()).map(|i| row.get(i).map_or(String::new(), |x| num(*x))));
        w.write_record(&rec).map_err(|e| e.to_string())?;
    }
    w.into_inner().map_err(|e| e.to_string())
}

/// The aggregated events of one run as CSV.
pub fn events_csv(out: &RunOutput) -> Result<Vec<u8>, String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "first_s", "last_s", "count", "type", "reason", "source", "object", "message",
    ])
    .map_err(|e| e.to_string())?;
    for e in &out.events {
        w.write_record([
            num(e.first.as_secs_f64()),
            num(e.last.as_secs_f64()),
            e.count.to_string(),
            e.kind.to_string(),
            e.reason.to_string(),
            e.source.to_string(),
            e.example_object.clone(),
            e.message.clone(),
        ])
        .map_err(|e| e.to_string())?;
    }
    w.into_inner().map_err(|e| e.to_string())
}

/// Every output file of a run set: report, JSON summary, and per run a
/// time series and an event log.
pub fn files(scenario: &Scenario, runs: &[SeedRun]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut files = vec![
        ("report.txt".to_string(), text(scenario, runs).into_bytes()),
        ("summary.json".to_string(), {
            let mut b =
                serde_json::to_vec_pretty(&json(scenario, runs)).map_err(|e| e.to_string())?;
            b.push(b'\n');
            b
        }),
    ];
    for r in runs {
        let v = file_safe(&scenario.variants[r.variant].name);
        files.push((
            format!("timeseries-{v}-seed{}.csv", r.seed),
            timeseries_csv(&r.output)?,
        ));
        files.push((
            format!("events-{v}-seed{}.csv", r.seed),
            events_csv(&r.output)?,
        ));
    }
    Ok(files)
}

/// `name` usable in a file name: characters other than ASCII letters,
/// digits, `-`, `_` and `.` become `_` (`10.0.0.0/24` -> `10.0.0.0_24`).
pub fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes `files` into `dir` all or nothing: everything goes to a fresh
/// temporary directory beside `dir` first, then each file is renamed into
/// place; on any failure the temporary directory is removed.
pub fn write_all(dir: &std::path::Path, files: &[(String, Vec<u8>)]) -> Result<(), String> {
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = dir
        .file_name()
        .map_or("out".into(), |n| n.to_string_lossy().into_owned());
    let tmp = parent.join(format!(".{name}.knsim-tmp-{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        std::fs::create_dir_all(&tmp)?;
        for (f, bytes) in files {
            std::fs::write(tmp.join(f), bytes)?;
        }
        std::fs::create_dir_all(dir)?;
        for (f, _) in files {
            std::fs::rename(tmp.join(f), dir.join(f))?;
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result.map_err(|e| format!("cannot write {}: {e}", dir.display()))
}
