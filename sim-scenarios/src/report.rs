//! What a run tells people: a text report (figures side by side per variant,
//! the Kubernetes events, the expectations), a JSON summary, and CSV time
//! series and event logs. Every output is a pure function of the runs, so
//! the same scenario and seeds give byte-identical files. The report and
//! summary read the runs only through their digests ([`crate::digest`]), so
//! that `knsim merge` builds them, byte for byte, from a sharded run's
//! digests (`text_of`, `json_of`, `summary_files`).

use crate::digest::{Header, RunDigest};
use crate::figures::{self as table, num, series, series_max, Column, Missing, Unit};
use crate::run::SeedRun;
use crate::spec::Scenario;
use serde_json::{json, Value};
use sim_models::cluster::RunOutput;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

/// One headline number of one run.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Figure {
    /// What it is (`checkout in failover: error rate`).
    pub name: String,
    /// Its value (seconds for durations).
    #[serde(with = "crate::digest::exact")]
    pub value: f64,
    /// How to show it.
    #[serde(with = "crate::digest::unit")]
    pub unit: Unit,
}

/// The rows of [`figures`] as they are built.
struct Rows(Vec<Figure>);

impl Rows {
    /// A row computed here.
    fn push(&mut self, name: String, value: f64, unit: Unit) {
        self.0.push(Figure { name, value, unit });
    }

    /// A row read through the figure table: `value` is the row's reading,
    /// which must exist.
    fn read(
        &mut self,
        name: String,
        row: &table::Figure,
        value: Option<f64>,
    ) -> Result<(), Missing> {
        let value = value.ok_or_else(|| Missing(format!("value of {} for `{name}`", row.name)))?;
        self.push(name, value, row.shown());
        Ok(())
    }
}

/// The headline figures of one run, in a fixed order; a time series or
/// statistic the run lacks is an error.
pub fn figures(scenario: &Scenario, run: &SeedRun) -> Result<Vec<Figure>, Missing> {
    let cfg = &scenario.variants[run.variant].config;
    let out = &run.output;
    let mut f = Rows(Vec::new());
    for d in &out.deployments {
        let most = |c: Column| series_max(out, &c.of(&d.name));
        f.push(
            format!("{}: pods wanted at the end", d.name),
            f64::from(d.desired),
            Unit::Count,
        );
        f.push(
            format!("{}: pods Running at the end", d.name),
            f64::from(d.running()),
            Unit::Count,
        );
        f.push(
            format!("{}: pods Pending at the end", d.name),
            f64::from(d.pending()),
            Unit::Count,
        );
        f.push(
            format!("{}: pods with no IP address, most at once", d.name),
            most(series::PODS_SANDBOX_FAILED)?,
            table::PODS_SANDBOX_FAILED.shown(),
        );
        f.push(
            format!("{}: pods no node fits, most at once", d.name),
            most(series::PODS_UNSCHEDULABLE)?,
            table::PODS_UNSCHEDULABLE.shown(),
        );
    }
    f.push(
        "IPAM: pod addresses usable at the end".into(),
        out.ipam_usable as f64,
        Unit::Count,
    );
    f.push(
        "IPAM: pod addresses in use at the end".into(),
        out.ipam_allocated as f64,
        Unit::Count,
    );
    if let Some(ct) = &cfg.conntrack {
        f.push(
            "conntrack: nf_conntrack_max per node".into(),
            ct.table.max as f64,
            Unit::Count,
        );
        f.push(
            "conntrack: most entries on one node".into(),
            series_max(out, series::CONNTRACK_ENTRIES_MAX.name)?,
            table::CONNTRACK_ENTRIES.shown(),
        );
        f.push(
            "conntrack: packets dropped, table full (all nodes)".into(),
            out.conntrack.iter().map(|c| c.dropped_full).sum::<u64>() as f64,
            Unit::Count,
        );
    }
    if let Some(st) = &out.kube_proxy {
        f.push(
            "Service data path: rules or objects programmed at the end".into(),
            st.programmed as f64,
            Unit::Count,
        );
        f.push(
            "Service data path: syncs".into(),
            st.syncs as f64,
            Unit::Count,
        );
        f.push(
            "Service data path: longest sync".into(),
            st.longest.as_secs_f64(),
            Unit::Seconds,
        );
        f.push(
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
        let span = cfg
            .windows
            .iter()
            .find(|x| &x.name == w)
            .map_or(1.0, |x| x.end.as_secs_f64() - x.start.as_secs_f64());
        let read = |f: &mut Rows, what: &str, row: &table::Figure| {
            f.read(format!("{s} in {w}: {what}"), row, row.window(ws, span))
        };
        read(&mut f, "requests sent", &table::REQUESTS_SENT)?;
        read(&mut f, "error rate", &table::ERROR_RATE)?;
        read(&mut f, "timed out", &table::REQUESTS_TIMED_OUT)?;
        f.push(
            format!("{s} in {w}: answered after the client left"),
            t.wasted as f64,
            Unit::Count,
        );
        read(&mut f, "refused (no endpoint)", &table::REQUESTS_REFUSED)?;
        if cfg
            .traffic
            .iter()
            .any(|x| &x.name == s && x.entry.is_some())
        {
            read(
                &mut f,
                "refused, NodePort not open on the address",
                &table::REQUESTS_PORT_CLOSED,
            )?;
            read(
                &mut f,
                "dropped by the security group",
                &table::REQUESTS_EDGE_DROPPED,
            )?;
            read(
                &mut f,
                "dropped, no local endpoint (policy Local)",
                &table::REQUESTS_NO_LOCAL_ENDPOINT,
            )?;
            read(
                &mut f,
                "connections SNATed to the entry node",
                &table::NODE_PORT_SNAT,
            )?;
            read(
                &mut f,
                "public node addresses the NodePort is open on",
                &table::NODE_PORT_OPEN_PUBLIC,
            )?;
        }
        if cfg
            .traffic
            .iter()
            .any(|x| &x.name == s && x.load_balancer.is_some())
        {
            read(&mut f, "load balancer 502", &table::REQUESTS_LB_502)?;
            read(&mut f, "load balancer 503", &table::REQUESTS_LB_503)?;
            read(&mut f, "load balancer 504", &table::REQUESTS_LB_504)?;
            read(&mut f, "reset through the NLB", &table::REQUESTS_LB_RESET)?;
            read(
                &mut f,
                "no NLB target (SYN timeout)",
                &table::REQUESTS_LB_CONNECT_TIMEOUT,
            )?;
        }
        if cfg.policy.is_some() {
            f.push(
                format!("{s} in {w}: blocked by NetworkPolicy"),
                t.blocked as f64,
                Unit::Count,
            );
        }
        if cfg.dns.is_some() {
            read(
                &mut f,
                "name lookups failed",
                &table::REQUESTS_LOOKUP_FAILED,
            )?;
        }
        read(&mut f, "latency p50", &table::LATENCY_P50)?;
        read(&mut f, "latency p90", &table::LATENCY_P90)?;
        read(&mut f, "latency p99", &table::LATENCY_P99)?;
        if cfg.conntrack.is_some() {
            read(
                &mut f,
                "SYNs dropped, conntrack table full",
                &table::SYN_DROPS,
            )?;
            if cfg.conntrack.is_some_and(|c| c.snat.is_some()) {
                read(
                    &mut f,
                    "SYNs lost to the SNAT port race (insert_failed)",
                    &table::INSERT_FAILED,
                )?;
            }
            read(
                &mut f,
                "failed, every SYN dropped",
                &table::REQUESTS_SYN_DROPPED,
            )?;
            read(&mut f, "connect delay p50", &table::CONNECT_P50)?;
            read(&mut f, "connect delay p99", &table::CONNECT_P99)?;
            // The histogram's top bucket, as the percentiles are read.
            f.push(
                format!("{s} in {w}: connect delay max"),
                ws.connect_delay.quantile(1.0).as_secs_f64(),
                Unit::Seconds,
            );
        }
        if cfg.kube_proxy.is_some() {
            read(&mut f, "first-packet RTT p50", &table::FIRST_PACKET_P50)?;
            read(&mut f, "first-packet RTT p90", &table::FIRST_PACKET_P90)?;
            read(&mut f, "first-packet RTT p99", &table::FIRST_PACKET_P99)?;
            read(
                &mut f,
                "CPU cores on Service lookups",
                &table::LOOKUP_CPU_CORES,
            )?;
            read(
                &mut f,
                "sent to deleted pods",
                &table::REQUESTS_STALE_ENDPOINT,
            )?;
        }
        if cfg.billing.is_some() {
            read(&mut f, "bytes pod to pod", &table::ZONE_BYTES)?;
            read(&mut f, "bytes across zones", &table::CROSS_ZONE_BYTES)?;
            if let Some(share) = table::CROSS_ZONE_SHARE.window(ws, span) {
                f.push(
                    format!("{s} in {w}: share of bytes across zones"),
                    share,
                    Unit::Ratio,
                );
            }
            read(&mut f, "USD across zones", &table::CROSS_ZONE_COST)?;
            read(
                &mut f,
                "USD across zones per 30 days at this rate",
                &table::CROSS_ZONE_COST_PER_MONTH,
            )?;
        }
        if connections_shown {
            read(&mut f, "pods answering", &table::PODS_SERVING)?;
            read(
                &mut f,
                "busiest pod's share of answers",
                &table::TOP_POD_SHARE,
            )?;
        }
    }
    if cfg.dns.is_some() {
        dns_figures(cfg, out, &mut f)?;
    }
    zone_figures(cfg, out, &mut f);
    Ok(f.0)
}

/// With billing: per traffic source over the run, its bytes per (source
/// zone, destination zone) pair and their cost.
fn zone_figures(cfg: &sim_models::cluster::ClusterConfig, out: &RunOutput, f: &mut Rows) {
    if cfg.billing.is_none() {
        return;
    }
    let names = &out.zone_names;
    for (t, z) in cfg.traffic.iter().zip(&out.zone_traffic) {
        if z.bytes.total() == 0 {
            continue;
        }
        let s = &t.name;
        for (i, from) in names.iter().enumerate() {
            for (j, to) in names.iter().enumerate() {
                f.push(
                    format!("{s}: bytes {from} -> {to}"),
                    z.bytes.between(i as u32, j as u32) as f64,
                    Unit::Count,
                );
            }
        }
        f.push(
            format!("{s}: share of bytes across zones"),
            z.bytes.crossing_share(),
            Unit::Ratio,
        );
        f.push(format!("{s}: USD across zones"), z.cost, Unit::Count);
    }
}

/// CoreDNS and lookup figures: per window, queries and replies per second,
/// cache hits, lost queries; per traffic source that resolves, queries per
/// lookup and lookup latency; over the run, restarts and peaks.
fn dns_figures(
    cfg: &sim_models::cluster::ClusterConfig,
    out: &RunOutput,
    f: &mut Rows,
) -> Result<(), Missing> {
    const ALL: &[usize] = &[0, 1];
    for (d, w) in out.dns_windows.iter().zip(&cfg.windows) {
        let secs = w.end.as_secs_f64() - w.start.as_secs_f64();
        let n = &d.window;
        let qps = &table::DNS_QPS;
        let read = |f: &mut Rows, what: &str, row: &table::Figure, zones, rcode| {
            f.read(
                format!("DNS in {n}: {what}"),
                row,
                row.dns(d, zones, rcode, secs),
            )
        };
        read(f, "queries/s at CoreDNS", qps, ALL, None)?;
        read(f, "of which external names", qps, &[1], None)?;
        read(f, "NXDOMAIN replies/s", qps, ALL, Some(1))?;
        read(f, "SERVFAIL replies/s", qps, ALL, Some(2))?;
        read(f, "REFUSED replies/s", qps, ALL, Some(3))?;
        // No reply in the window: no hit either, shown as 0%.
        f.push(
            format!("DNS in {n}: cache hit ratio"),
            table::DNS_CACHE_HIT_RATIO
                .dns(d, ALL, None, secs)
                .unwrap_or(0.0),
            table::DNS_CACHE_HIT_RATIO.shown(),
        );
        f.push(
            format!("DNS in {n}: queries lost in killed pods"),
            d.dropped as f64,
            Unit::Count,
        );
        if cfg.dns.as_ref().is_some_and(|c| c.node_local.is_some()) {
            f.push(
                format!("DNS in {n}: queries/s at the NodeLocal DNSCaches"),
                d.node_local[0] as f64 / secs,
                Unit::Count,
            );
            f.push(
                format!("DNS in {n}: NodeLocal DNSCache hit ratio"),
                d.node_local[1] as f64 / d.node_local[0].max(1) as f64,
                Unit::Ratio,
            );
        }
        // Queries can be lost on the way only through conntrack entries or
        // kube-proxy's programmed (possibly stale) endpoints.
        if !out.conntrack.is_empty() || cfg.kube_proxy.is_some() {
            read(
                f,
                "queries lost to the A/AAAA insert race (insert_failed)",
                &table::DNS_INSERT_FAILED,
                ALL,
                None,
            )?;
            read(
                f,
                "queries sent to a deleted pod (stale conntrack entry)",
                &table::DNS_QUERIES_STALE,
                ALL,
                None,
            )?;
            f.push(
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
        let read = |f: &mut Rows, what: &str, row: &table::Figure| {
            // None of these reads the window's length.
            f.read(format!("{s} in {w}: {what}"), row, row.window(ws, 1.0))
        };
        read(f, "DNS queries per lookup", &table::DNS_QUERIES_PER_LOOKUP)?;
        read(f, "lookup p50", &table::LOOKUP_LATENCY_P50)?;
        read(f, "lookup p99", &table::LOOKUP_LATENCY_P99)?;
        read(f, "retries", &table::REQUESTS_RETRIED)?;
    }
    f.push(
        "CoreDNS: restarts (OOM kills)".into(),
        out.dns_restarts as f64,
        Unit::Count,
    );
    f.push(
        "CoreDNS: most queries inside at once".into(),
        series_max(out, series::DNS_IN_FLIGHT.name)?,
        table::DNS_IN_FLIGHT.shown(),
    );
    f.push(
        "CoreDNS: most memory of a pod [MiB]".into(),
        series_max(out, series::DNS_MEMORY_MIB_MAX.name)?,
        table::DNS_MEMORY_MIB.shown(),
    );
    f.push(
        "CoreDNS: highest CPU use of its limit".into(),
        series_max(out, series::DNS_CPU_UTILIZATION.name)?,
        table::DNS_CPU_UTILIZATION.shown(),
    );
    Ok(())
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

fn runs_of(runs: &[RunDigest], v: usize) -> impl Iterator<Item = &RunDigest> {
    runs.iter().filter(move |r| r.variant == v)
}

/// The text report; a figure the runs lack is an error.
pub fn text(scenario: &Scenario, runs: &[SeedRun]) -> Result<String, Missing> {
    Ok(text_of(
        &Header::of(scenario),
        &RunDigest::all(scenario, runs)?,
    ))
}

/// The text report from the runs' digests, in (variant, seed) order.
pub fn text_of(header: &Header, runs: &[RunDigest]) -> String {
    let mut s = String::new();
    let seeds: Vec<u64> = runs_of(runs, 0).map(|r| r.seed).collect();
    let _ = writeln!(s, "{}: {}", header.name, header.summary);
    let seed_text = seeds
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        s,
        "simulated {} per run; seeds {seed_text}",
        header.duration
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "variants");
    for v in &header.variants {
        let _ = writeln!(s, "  {:<12} {}", v.name, v.description);
    }
    let _ = writeln!(s);

    // Figures side by side: mean over seeds, with the spread when there are several.
    let per_variant: Vec<Vec<&[Figure]>> = (0..header.variants.len())
        .map(|v| runs_of(runs, v).map(|r| r.figures.as_slice()).collect())
        .collect();
    // Figure names in first-seen order; the maps only find, never order.
    let mut names: Vec<(String, Unit)> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for figs in per_variant.iter().flat_map(|runs| runs.first()) {
        for f in figs.iter() {
            if seen.insert(f.name.as_str()) {
                names.push((f.name.clone(), f.unit));
            }
        }
    }
    let by_name: Vec<Vec<HashMap<&str, f64>>> = per_variant
        .iter()
        .map(|runs| {
            runs.iter()
                .map(|figs| {
                    let mut m = HashMap::with_capacity(figs.len());
                    for f in figs.iter() {
                        m.entry(f.name.as_str()).or_insert(f.value);
                    }
                    m
                })
                .collect()
        })
        .collect();
    let width = names.iter().map(|(n, _)| n.len()).max().unwrap_or(10) + 2;
    let mut header_line = format!("{:width$}", "");
    for v in &header.variants {
        let _ = write!(header_line, "{:>22}", v.name);
    }
    let _ = writeln!(s, "{}", header_line.trim_end());
    for (name, unit) in &names {
        let mut line = format!("{name:width$}");
        for runs in &by_name {
            let xs: Vec<f64> = runs
                .iter()
                .filter_map(|figs| figs.get(name.as_str()).copied())
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
        for (v, variant) in header.variants.iter().enumerate() {
            let _ = writeln!(s, "  {}", variant.name);
            for r in runs_of(runs, v) {
                let key: Vec<String> = r
                    .figures
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

    for (v, variant) in header.variants.iter().enumerate() {
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
        for e in &first.events {
            let _ = writeln!(
                s,
                "  {:<9} {:<9} {:>6}  {:<8} {:<23} {}: {}",
                e.first, e.last, e.count, e.kind, e.reason, e.object, e.message
            );
        }
    }

    if runs.iter().any(|r| !r.checks.is_empty()) {
        let _ = writeln!(s);
        let _ = writeln!(s, "expectations");
        for r in runs {
            let name = header.variants[r.variant].name.as_str();
            for c in &r.checks {
                let verdict = if c.pass { "PASS" } else { "FAIL" };
                let _ = writeln!(
                    s,
                    "  {verdict} {name} seed {}: {}: {}",
                    r.seed, c.label, c.text
                );
            }
        }
        let (pass, total) = crate::run::totals(runs.iter().flat_map(|r| &r.checks));
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
pub fn json(scenario: &Scenario, runs: &[SeedRun]) -> Result<Value, Missing> {
    Ok(json_of(
        &Header::of(scenario),
        &RunDigest::all(scenario, runs)?,
    ))
}

/// The JSON summary from the runs' digests, in (variant, seed) order.
pub fn json_of(header: &Header, runs: &[RunDigest]) -> Value {
    let mut variants: Vec<Value> = Vec::new();
    for (v, variant) in header.variants.iter().enumerate() {
        let mine: Vec<&RunDigest> = runs_of(runs, v).collect();
        let per_seed: Vec<Value> = mine
            .iter()
            .map(|r| {
                let figs: serde_json::Map<String, Value> = r.figures.iter().map(|f| (f.name.clone(), json!(f.value))).collect();
                let checks: Vec<Value> = r.checks.iter().map(crate::run::Check::json).collect();
                json!({"seed": r.seed, "figures": figs, "requests": r.requests, "expectations": checks, "events_fired": r.events_fired})
            })
            .collect();
        let mut stats = serde_json::Map::new();
        if let Some(first) = mine.first() {
            for f in &first.figures {
                let xs: Vec<f64> = mine
                    .iter()
                    .filter_map(|g| g.figures.iter().find(|g| g.name == f.name))
                    .map(|g| g.value)
                    .collect();
                let (mean, sd, min, max) = spread(&xs);
                stats.insert(
                    f.name.clone(),
                    json!({"mean": mean, "sd": sd, "min": min, "max": max}),
                );
            }
        }
        variants.push(json!({"name": variant.name, "description": variant.description, "runs": per_seed, "across_seeds": stats}));
    }
    let (pass, total) = crate::run::totals(runs.iter().flat_map(|r| &r.checks));
    json!({
        "scenario": header.name,
        "summary": header.summary,
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
    let digests = RunDigest::all(scenario, runs).map_err(|e| e.to_string())?;
    let mut files = summary_files(&Header::of(scenario), &digests)?;
    for r in runs {
        let [series, events] = run_file_names(&scenario.variants[r.variant].name, r.seed);
        files.push((series, timeseries_csv(&r.output)?));
        files.push((events, events_csv(&r.output)?));
    }
    Ok(files)
}

/// report.txt and summary.json, from the runs' digests.
pub fn summary_files(
    header: &Header,
    runs: &[RunDigest],
) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut summary =
        serde_json::to_vec_pretty(&json_of(header, runs)).map_err(|e| e.to_string())?;
    summary.push(b'\n');
    Ok(vec![
        ("report.txt".to_string(), text_of(header, runs).into_bytes()),
        ("summary.json".to_string(), summary),
    ])
}

/// The names of one run's time series and event log.
pub fn run_file_names(variant: &str, seed: u64) -> [String; 2] {
    let v = file_safe(variant);
    [
        format!("timeseries-{v}-seed{seed}.csv"),
        format!("events-{v}-seed{seed}.csv"),
    ]
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
