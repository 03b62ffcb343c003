//! The packet-level report: the story, each variant's network, what each
//! flow saw, where packets were dropped and why, and the expectations; and
//! its JSON summary.

use super::*;

/// The text report: the story, the network of each variant, what each flow
/// saw, where packets were dropped and why, what the stacks and routers
/// noticed, and the expectations.
pub fn text(s: &DatapathScenario, runs: &[DatapathRun]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{}: {}", s.name, s.summary);
    let duration = s.variants[0].config.duration;
    let mut seeds: Vec<u64> = runs.iter().filter_map(|r| r.seed).collect();
    seeds.sort_unstable();
    seeds.dedup();
    let random = match seeds.as_slice() {
        [] => "the model draws no random numbers".to_string(),
        [one] => format!("seed {one}"),
        many => format!("seeds {}..{}", many[0], many[many.len() - 1]),
    };
    let _ = writeln!(
        o,
        "packet-level replay, {duration} simulated per variant ({random})"
    );
    if !s.story.trim().is_empty() {
        let _ = writeln!(o);
        for l in s.story.trim().lines() {
            let _ = writeln!(o, "  {l}");
        }
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "variants");
    for v in &s.variants {
        let c = &v.config;
        let site = c
            .sites
            .iter()
            .map(|x| {
                format!(
                    "; site {} via a {} MTU link{}",
                    x.name,
                    x.link.mtu,
                    x.mss_clamp
                        .map_or(String::new(), |m| format!(", MSS clamped to {m}"))
                )
            })
            .collect::<String>();
        let _ = writeln!(
            o,
            "  {:<14} {}\n  {:<14} {} on {} nodes, NIC MTU {}, underlay path MTU {}, pod MTU {}{}, ICMP {}{site}",
            v.name,
            v.description,
            "",
            c.cni.name(),
            c.nodes,
            c.underlay.nic_mtu,
            c.underlay.path_mtu,
            c.pod_mtu(),
            if c.pod_mtu.is_some() { " (set)" } else { " (CNI default)" },
            if c.underlay.icmp_allowed { "allowed" } else { "denied by the security group" },
        );
        if let Some(p) = &v.path {
            let _ = writeln!(o, "  {:<14} {p}", "");
        }
    }
    for r in runs {
        let v = &s.variants[r.variant];
        let out = &r.output;
        let _ = writeln!(o);
        match r.seed {
            Some(seed) if seeds.len() > 1 => {
                let _ = writeln!(o, "== {} (seed {seed}) ==", v.name);
            }
            _ => {
                let _ = writeln!(o, "== {} ==", v.name);
            }
        }
        let _ = writeln!(o, "  flows");
        for (fi, f) in out.flows.iter().enumerate() {
            let spec = &v.config.flows[fi];
            let what = match spec.kind {
                FlowKind::Tcp {
                    request,
                    response,
                    port,
                } => format!("TCP :{port}, {request} B request, {response} B response"),
                FlowKind::Udp { port } => format!("UDP :{port}"),
                FlowKind::Ping => "ping -M do".to_string(),
            };
            let times = if f.times.count() > 0 {
                format!(", time p50 {} max {}", f.times.quantile(0.5), f.times.max())
            } else {
                String::new()
            };
            let _ = writeln!(
                o,
                "    {:<12} {} -> {} ({what}): {} of {} succeeded{times}{}",
                f.name,
                v.endpoints[spec.from],
                dest_name(v, spec.to),
                f.succeeded,
                f.attempts,
                if f.pending > 0 {
                    format!(", {} still running", f.pending)
                } else {
                    String::new()
                }
            );
            for (why, n) in &f.failures {
                let _ = writeln!(o, "      {n} x {why}");
            }
            if !f.by_size.is_empty() {
                let cells: Vec<String> = f
                    .by_size
                    .iter()
                    .map(|(size, (ok, bad))| {
                        if *bad == 0 {
                            format!("{size} ok")
                        } else if *ok == 0 {
                            format!("{size} FAILED")
                        } else {
                            format!("{size} {ok}/{}", ok + bad)
                        }
                    })
                    .collect();
                let _ = writeln!(o, "      by payload size: {}", cells.join(", "));
            }
            if v.path.is_some() {
                path_lines(&mut o, v, f);
            }
        }
        let t = &out.packets;
        let _ = writeln!(
            o,
            "  packets: {} sent, {} delivered, {} dropped, {} in flight at the end",
            t.created,
            t.delivered,
            t.dropped_total(),
            t.in_flight
        );
        for (k, n) in &t.dropped {
            let _ = writeln!(o, "    {n:>7} x {} ({k})", k.key());
            if let Some((at, first)) = out.first_drops.get(k) {
                let _ = writeln!(o, "            first at {at}: {first}");
            }
        }
        if !out.notes.is_empty() {
            let _ = writeln!(o, "  what the stacks and routers saw");
            let mut shown = 0;
            let mut last: Option<String> = None;
            for (at, n) in &out.notes {
                // The same note per connection says the same thing: show it once.
                let key: String = n.split(':').skip(1).collect();
                if !key.is_empty() && last.as_ref() == Some(&key) {
                    continue;
                }
                last = Some(key);
                let _ = writeln!(o, "    {at:<10} {n}");
                shown += 1;
                if shown == 12 {
                    let _ = writeln!(o, "    ... ({} notes in all)", out.notes.len());
                    break;
                }
            }
        }
    }
    if runs.iter().any(|r| !r.checks.is_empty()) {
        let _ = writeln!(o);
        let _ = writeln!(o, "expectations");
        for r in runs {
            let v = &s.variants[r.variant];
            for (c, e) in r.checks.iter().zip(&v.expect) {
                let verdict = if c.pass { "PASS" } else { "FAIL" };
                let _ = writeln!(o, "  {verdict} {}: {}: {}", v.name, c.label, c.text);
                if !e.because.is_empty() {
                    let _ = writeln!(o, "       because {}", e.because.trim());
                }
            }
        }
        let (held, total) = expectation_totals(runs);
        let _ = writeln!(o, "  {held} of {total} expectations hold");
    }
    o
}

/// Where a flow goes, by name.
fn dest_name(v: &Variant, to: Dest) -> String {
    match to {
        Dest::Endpoint(e) => v.endpoints[e].clone(),
        Dest::Service(s) => format!("svc/{}", v.config.services.services[s].name),
    }
}

/// What the connection path measured of one flow.
fn path_lines(o: &mut String, v: &Variant, f: &sim_models::datapath::network::FlowResult) {
    if f.connect.count() > 0 {
        let _ = writeln!(
            o,
            "      connection setup p50 {} p99 {}; first-packet round trip p50 {} p99 {}",
            f.connect.quantile(0.5),
            f.connect.quantile(0.99),
            f.first_rtt.quantile(0.5),
            f.first_rtt.quantile(0.99)
        );
    }
    if f.lookups.count() > 0 {
        let _ = writeln!(
            o,
            "      Service lookup CPU: {} first packets, mean {} p99 {}, {} in all",
            f.lookups.count(),
            f.lookups.mean(),
            f.lookups.quantile(0.99),
            f.lookups.sum()
        );
    }
    if f.established.count > 0 {
        let _ = writeln!(
            o,
            "      established connections: {} packets delivered, one-way latency mean {} max {}; {} payload bytes delivered",
            f.established.count,
            f.established.mean(),
            f.established.max,
            f.bytes
        );
    }
    if !f.endpoints.is_empty() {
        let cells: Vec<String> = f
            .endpoints
            .iter()
            .map(|(p, n)| format!("{} {n}", v.endpoints[*p]))
            .collect();
        let _ = writeln!(o, "      first packets by server pod: {}", cells.join(", "));
    }
}

/// The JSON summary.
pub fn json(s: &DatapathScenario, runs: &[DatapathRun]) -> serde_json::Value {
    use serde_json::json;
    let variants: Vec<serde_json::Value> = runs
        .iter()
        .map(|r| {
            let v = &s.variants[r.variant];
            let flows: Vec<serde_json::Value> = r.output.flows.iter().map(|f| json!({
                "flow": f.name, "attempts": f.attempts, "succeeded": f.succeeded, "pending": f.pending,
                "failures": f.failures, "time_p50_s": f.times.quantile(0.5).as_secs_f64(),
                "time_max_s": f.times.max().as_secs_f64(),
                "by_size": f.by_size.iter().map(|(k, (a, b))| json!({"size": k, "succeeded": a, "failed": b})).collect::<Vec<_>>(),
            })).collect();
            let t = &r.output.packets;
            let drops: serde_json::Map<String, serde_json::Value> = t.dropped.iter().map(|(k, n)| (k.key().to_string(), json!(n))).collect();
            let mut flows = flows;
            if v.path.is_some() {
                for (j, f) in flows.iter_mut().zip(&r.output.flows) {
                    j["connect_p50_s"] = json!(f.connect.quantile(0.5).as_secs_f64());
                    j["connect_p99_s"] = json!(f.connect.quantile(0.99).as_secs_f64());
                    j["first_rtt_p50_s"] = json!(f.first_rtt.quantile(0.5).as_secs_f64());
                    j["first_rtt_p99_s"] = json!(f.first_rtt.quantile(0.99).as_secs_f64());
                    j["lookup_cpu_s"] = json!(f.lookups.sum().as_secs_f64());
                    j["packet_latency_mean_s"] = json!(f.established.mean().as_secs_f64());
                    j["bytes_delivered"] = json!(f.bytes);
                    j["first_packets_by_pod"] = f.endpoints.iter().map(|(p, n)| (v.endpoints[*p].clone(), json!(n))).collect::<serde_json::Map<_, _>>().into();
                }
            }
            let mut out = json!({
                "name": v.name, "description": v.description, "cni": v.config.cni.name(), "pod_mtu": r.output.pod_mtu,
                "flows": flows,
                "packets": {"created": t.created, "delivered": t.delivered, "dropped": drops, "in_flight": t.in_flight},
                "expectations": r.checks.iter().map(crate::run::Check::json).collect::<Vec<_>>(),
                "events_fired": r.output.events_fired,
            });
            if let Some(seed) = r.seed {
                out["seed"] = json!(seed);
            }
            out
        })
        .collect();
    let (held, total) = expectation_totals(runs);
    json!({"scenario": s.name, "summary": s.summary, "variants": variants, "expectations": {"held": held, "total": total}})
}
