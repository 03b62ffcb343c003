//! The replay told in words: what happened when, why, and what the fix
//! changed. Every sentence is built from a run's outputs (events, the time
//! series, window statistics) and from the models' own arithmetic (the IPAM
//! allocator's reserved addresses, a pod's service capacity); nothing here
//! knows which outage it is telling.

use crate::figures::{column_index, num, series, series_max, value_at, Missing};
use crate::run::SeedRun;
use crate::spec::{Scenario, Variant};
use sim_core::{SimDuration, SimTime};
use sim_models::cluster::{Action, RunOutput};
use sim_models::ipam::{IpamLayout, Pool};
use sim_models::node_lifecycle::{self, not_ready_message, CNI_NOT_INITIALIZED};
use sim_models::workload::PodState;
use sim_models::{connections, coredns, kubelet};
use std::fmt::Write as _;

/// A replay as a teacher would show it: the scenario (a file or a bundled
/// name) run with `seed`, its story, then the numbers. Returns the text and
/// whether every expectation held; bad input or a failed run is an error
/// message naming the problem.
pub fn replay(scenario: &str, seed: u64) -> Result<(String, bool), String> {
    let scenario = crate::load_named(scenario).map_err(|e| e.to_string())?;
    let runs = crate::run::run_all(&scenario, &[seed], None).map_err(|e| format!("error: {e}"))?;
    let mut text = tell(&scenario, &runs).map_err(|e| format!("error: {e}"))?;
    let _ = writeln!(
        text,
        "\n-- the numbers (knsim run {} prints the same report)",
        scenario.name
    );
    text.push_str(&crate::report::text(&scenario, &runs).map_err(|e| format!("error: {e}"))?);
    let (held, total) = crate::report::expectation_totals(&runs);
    Ok((text, held == total))
}

/// Prints [`replay`]'s text and gives the exit status `knsim` uses: 0 when
/// every expectation holds, 1 when one fails, 2 (message on stderr) when the
/// scenario cannot run.
pub fn print_replay(scenario: &str, seed: u64) -> std::process::ExitCode {
    match replay(scenario, seed) {
        Ok((text, all_held)) => {
            print!("{text}");
            std::process::ExitCode::from(if all_held { 0 } else { 1 })
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::from(2)
        }
    }
}

/// The story of the first seed's run of every variant; a time series the
/// runs lack is an error.
pub fn tell(scenario: &Scenario, runs: &[SeedRun]) -> Result<String, Missing> {
    let mut s = String::new();
    let _ = writeln!(s, "{}", scenario.summary);
    let _ = writeln!(s, "{}", "=".repeat(scenario.summary.chars().count()));
    for line in scenario.story.lines() {
        let _ = writeln!(s, "{line}");
    }
    let firsts: Vec<&SeedRun> = (0..scenario.variants.len())
        .filter_map(|v| runs.iter().find(|r| r.variant == v))
        .collect();
    for r in &firsts {
        let v = &scenario.variants[r.variant];
        let _ = writeln!(s);
        let _ = writeln!(s, "-- {}: {} (seed {})", v.name, v.description, r.seed);
        timeline(&mut s, v, &r.output)?;
        why(&mut s, v, &r.output)?;
    }
    if let (Some(base), Some(_)) = (firsts.first(), firsts.get(1)) {
        let _ = writeln!(s);
        let _ = writeln!(s, "-- side by side");
        for r in &firsts[1..] {
            compare(&mut s, scenario, base, r)?;
        }
    }
    Ok(s)
}

/// The value of the column `name` in the last sample at or before `t`.
fn sample(out: &RunOutput, name: &str, t: SimTime) -> Result<f64, Missing> {
    value_at(out, column_index(out, name)?, t)
        .ok_or_else(|| Missing(format!("sample of `{name}` at or before {t}")))
}

/// When every pod of `deployment` was Ready again after the last timeline
/// action (the first such sample), if ever.
fn all_ready_after_last_action(
    v: &Variant,
    out: &RunOutput,
    d: usize,
) -> Result<Option<SimTime>, Missing> {
    let name = &v.config.deployments[d].name;
    let col = column_index(out, &series::PODS_READY.of(name))?;
    let desired = f64::from(out.deployments[d].desired);
    let last_action = v
        .config
        .timeline
        .iter()
        .map(|a| a.at)
        .max()
        .unwrap_or(SimDuration::ZERO);
    Ok(out
        .metrics
        .rows()
        .iter()
        .filter(|(t, _)| t.since_start() >= last_action)
        .find(|(_, r)| r.get(col).copied() == Some(desired))
        .map(|(t, _)| *t))
}

/// ` from W to S` for traffic between workloads, ` to S` otherwise.
fn route(cfg: &sim_models::cluster::ClusterConfig, t: &sim_models::cluster::TrafficSpec) -> String {
    if let Some(through) = crate::story_paths::route(t) {
        return through;
    }
    let target = cfg.target_of(t).map(|(n, _)| n);
    let to = match (&target, &t.resolve) {
        (Some(n), _) => n.as_str(),
        (None, Some(name)) => name.as_str(),
        (None, None) => "",
    };
    match t.from {
        Some(f) => format!(" from {} to {to}", cfg.deployments[f].name),
        None if t.name != to => format!(" to {to}"),
        None => String::new(),
    }
}

fn timeline(s: &mut String, v: &Variant, out: &RunOutput) -> Result<(), Missing> {
    let cfg = &v.config;
    let mut moments: Vec<(SimTime, String)> = Vec::new();
    for d in &cfg.deployments {
        let n = sample(out, &series::PODS_READY.of(&d.name), SimTime::ZERO)?;
        moments.push((SimTime::ZERO, format!("{}: Ready pods: {}", d.name, num(n))));
    }
    for t in &cfg.traffic {
        moments.push((
            SimTime::ZERO,
            format!("{}: {} requests/s{}", t.name, num(t.rate), route(cfg, t)),
        ));
    }
    for a in &cfg.timeline {
        if let Action::SetRate { traffic, rate } = &a.action {
            let name = &cfg.traffic[*traffic].name;
            moments.push((
                SimTime::ZERO + a.at,
                format!("{name}: traffic now {} requests/s", num(*rate)),
            ));
        }
        if let Action::SetServiceTime {
            deployment,
            service_time,
        } = &a.action
        {
            moments.push((
                SimTime::ZERO + a.at,
                format!(
                    "{}: mean service time now {service_time} ({} at the start)",
                    cfg.deployments[*deployment].name,
                    cfg.deployments[*deployment].server.service_time
                ),
            ));
        }
        if let Action::FlushUdpConntrack { nodes } = &a.action {
            moments.push((
                SimTime::ZERO + a.at,
                format!(
                    "an operator runs `conntrack -D -p udp` on {} of {} nodes",
                    nodes.len(),
                    cfg.nodes.len()
                ),
            ));
        }
    }
    for e in &out.events {
        let count = if e.count > 1 {
            format!(" (x{} until {})", e.count, e.last)
        } else {
            String::new()
        };
        moments.push((
            e.first,
            format!("{} {}{count}: {}", e.reason, e.example_object, e.message),
        ));
    }
    for (d, spec) in cfg.deployments.iter().enumerate() {
        let state = &out.deployments[d];
        let ready = column_index(out, &series::PODS_READY.of(&spec.name))?;
        let desired = column_index(out, &series::PODS_DESIRED.of(&spec.name))?;
        let ever_short = out
            .metrics
            .rows()
            .iter()
            .any(|(_, r)| r.get(desired) != r.get(ready));
        if !ever_short {
            continue;
        }
        match all_ready_after_last_action(v, out, d)? {
            Some(t) => moments.push((
                t,
                format!(
                    "{}: all {} pods Ready (first sample)",
                    spec.name, state.desired
                ),
            )),
            None => moments.push((
                SimTime::ZERO + cfg.duration,
                format!(
                    "{}: {} of {} pods Ready at the end",
                    spec.name,
                    state.count(PodState::Ready),
                    state.desired
                ),
            )),
        }
    }
    moments.sort_by_key(|(t, _)| *t);
    let _ = writeln!(s, "what happened");
    for (t, text) in moments {
        let _ = writeln!(s, "  {:<10} {text}", t.to_string());
    }
    for w in &out.windows {
        let t = &w.totals;
        let spec = cfg.windows.iter().find(|x| x.name == w.window);
        let span = spec.map_or(String::new(), |x| format!("{}..{}", x.start, x.end));
        let latency = if t.answered == 0 {
            "none was answered".to_string()
        } else {
            format!(
                "answered ones took p50 {}, p99 {}",
                w.latency.quantile(0.5),
                w.latency.quantile(0.99)
            )
        };
        let _ = writeln!(
            s,
            "  {span:<17} {} in `{}`: {:.1}% of requests failed; {latency}",
            w.service,
            w.window,
            t.error_rate() * 100.0
        );
        if let Some(src) = cfg.traffic.iter().find(|x| x.name == w.service) {
            crate::story_paths::window_lines(s, &span, src, w);
        }
        if let (Some(kp), Some(spec)) = (&cfg.kube_proxy, spec) {
            let span_s = (spec.end.as_secs_f64() - spec.start.as_secs_f64()).max(1e-9);
            let _ = writeln!(
                s,
                "  {span:<17} {} in `{}`: first packets through {} took p50 {}, p99 {}; Service lookups used {} CPU cores",
                w.service,
                w.window,
                kp.mode.name(),
                w.first_packet.quantile(0.5),
                w.first_packet.quantile(0.99),
                num(w.lookup_cpu.as_secs_f64() / span_s)
            );
        }
    }
    Ok(())
}

fn why(s: &mut String, v: &Variant, out: &RunOutput) -> Result<(), Missing> {
    let cfg = &v.config;
    let mut lines: Vec<String> = Vec::new();
    let evictions = out
        .events
        .iter()
        .find(|e| e.reason == "TaintManagerEviction");
    let zone_down = out.events.iter().find(|e| e.reason == "ZoneDown");
    if let (Some(zone), Some(not_ready)) = (
        zone_down,
        out.events.iter().find(|e| e.reason == "NodeNotReady"),
    ) {
        // `zone/NAME`: the object of the ZoneDown event.
        let name = zone.example_object.trim_start_matches("zone/");
        lines.push(format!(
            "Zone {name} failed at {}: its nodes stopped with their pods, which answered nothing more; requests sent to them \
             waited out the client's timeout. The node lifecycle controller heard nothing from those nodes for its {} s grace \
             period and marked them NotReady from {} to {} (`{}`): their pods left the Services' endpoints and the scheduler \
             placed no new pod there (taint node.kubernetes.io/unreachable).",
            zone.first,
            node_lifecycle::NODE_MONITOR_GRACE_PERIOD.as_secs_f64(),
            not_ready.first,
            not_ready.last,
            node_lifecycle::UNREACHABLE_MESSAGE,
        ));
        if let Some(ev) = evictions {
            lines.push(format!(
                "The zone's NoExecute taints went on at {} node(s) a second, and after {} the \
                 taint eviction controller deleted {} pods, from {} to {}. Until then the Deployments still counted them: nothing \
                 replaced them. Their replacements could go only to the other zones' nodes.",
                node_lifecycle::NODE_EVICTION_RATE,
                crate::story_zones::tolerations(cfg),
                ev.count,
                ev.first,
                ev.last
            ));
        }
        lines.extend(crate::story_zones::zonal_during_zone_down(cfg, name, out));
        if let Some(nat) = out.events.iter().find(|e| e.reason == "NatGatewayDown") {
            lines.push(format!(
                "The zone's NAT gateway went with it ({}): the subnets routed to it lost egress.",
                nat.example_object.trim_start_matches("natgateway/")
            ));
        }
    } else if let (Some(ev), Some(not_ready)) = (
        evictions,
        out.events.iter().find(|e| e.reason == "NodeNotReady"),
    ) {
        lines.push(format!(
            "The nodes reported NotReady from {} (`{}`), so the node lifecycle controller tainted them \
             node.kubernetes.io/not-ready: the scheduler placed no new pod there, and after the pods' default \
             {} s toleration the taint eviction controller deleted {} pods, from {}. Their replacements could \
             go only to nodes without the taint.",
            not_ready.first,
            not_ready_message(),
            node_lifecycle::DEFAULT_TOLERATION.as_secs_f64(),
            ev.count,
            ev.first
        ));
    }
    for (d, spec) in cfg.deployments.iter().enumerate() {
        let no_ip = series_max(out, &series::PODS_SANDBOX_FAILED.of(&spec.name))?;
        let cni_down = out.events.iter().find(|e| {
            e.reason == "FailedCreatePodSandBox" && e.message.ends_with(CNI_NOT_INITIALIZED)
        });
        if let (Some(first), true) = (cni_down, no_ip > 0.0) {
            lines.push(format!(
                "From {} the CNI daemon was down: the kubelet could not set up a network for the {} pods placed on those nodes \
                 (FailedCreatePodSandBox: {CNI_NOT_INITIALIZED}) and retried with backoff, {}. Pods already \
                 running kept their network.",
                first.first,
                spec.name,
                backoff_schedule()
            ));
        } else if no_ip > 0.0 {
            if let IpamLayout::Flat {
                pod_cidr,
                allocator,
            } = &cfg.ipam
            {
                if let Some(pool) = Pool::new(*pod_cidr, *allocator) {
                    let reserved = pod_cidr.size() - pool.usable();
                    let wanted = series_max(out, &series::PODS_DESIRED.of(&spec.name))?;
                    lines.push(format!(
                        "The pod network {pod_cidr} has {} addresses; the {} allocator reserves {reserved}, leaving {}. \
                         {} {} pods were wanted, so {} could not get an address.",
                        pod_cidr.size(),
                        allocator.plugin_name(),
                        pool.usable(),
                        num(wanted),
                        spec.name,
                        num(no_ip)
                    ));
                }
            }
            let first_failure = out
                .events
                .iter()
                .find(|e| e.reason == "FailedCreatePodSandBox")
                .map(|e| e.first);
            if let (Some(from), Some(to)) = (first_failure, all_ready_after_last_action(v, out, d)?)
            {
                lines.push(format!(
                    "{} was short of pods from {from} until {to}: {}.",
                    spec.name,
                    to - from
                ));
            }
            lines.push(format!(
                "The scheduler placed those pods anyway: it counts pods per node, not IP addresses. The kubelet then \
                 failed to create their sandboxes (FailedCreatePodSandBox) and retried with backoff, {}, \
                 so they sat in ContainerCreating.",
                backoff_schedule()
            ));
        }
        let unsched = series_max(out, &series::PODS_UNSCHEDULABLE.of(&spec.name))?;
        let tainted = out
            .events
            .iter()
            .any(|e| e.reason == "FailedScheduling" && e.message.contains("not-ready"));
        if unsched > 0.0 && tainted {
            lines.push(format!(
                "At worst {} {} pods found no node: kube-scheduler skips nodes with the not-ready taint.",
                num(unsched),
                spec.name
            ));
        } else if unsched > 0.0 && spec.requests != Default::default() {
            let nodes = out
                .events
                .iter()
                .filter(|e| e.reason == "FailedScheduling")
                .map(|e| e.message.as_str())
                .next_back()
                .unwrap_or_default();
            let why = if nodes.contains("topology spread") {
                match spec.spread {
                    Some(sp) if zone_down.is_some() => format!(
                        "the zone spread constraint (maxSkew {}) held them back: the failed zone's nodes still count for the \
                         spread (nodeTaintsPolicy: Ignore) and it holds none of their pods, so every other zone is too far ahead",
                        sp.max_skew
                    ),
                    _ => "the zone spread constraint held them back".to_string(),
                }
            } else {
                "the nodes had no room left for them".to_string()
            };
            lines.push(format!(
                "At worst {} {} pods found no node: each asks {}m CPU and {} MiB, and {why} (the scheduler's last word: \"{}\").",
                num(unsched),
                spec.name,
                spec.requests.cpu_millis,
                spec.requests.memory >> 20,
                nodes.split(" preemption:").next().unwrap_or_default()
            ));
            if let Some(pool) = &cfg.node_pool {
                let failed = out
                    .events
                    .iter()
                    .find(|e| e.reason == "IP_SPACE_EXHAUSTED")
                    .map(|e| (e.count, e.first, e.last));
                if let Some((count, first, last)) = failed {
                    lines.push(format!(
                        "The cluster autoscaler asked node pool {} for more nodes; GKE could not create them {count} time(s) from {first} to {last}: the pod range had no block left for a new node (IP_SPACE_EXHAUSTED), and each failure backed the pool off before the next try.",
                        pool.name
                    ));
                }
            }
        } else if unsched > 0.0 {
            let slots: u32 = cfg.nodes.iter().map(|n| n.max_pods).sum();
            lines.push(format!(
                "{} {} pods found no node: {} nodes hold at most {slots} pods (--max-pods), so the scheduler reported FailedScheduling.",
                num(unsched),
                spec.name,
                cfg.nodes.len()
            ));
        }
    }
    for w in &out.windows {
        if w.syn_drops > 0 {
            lines.push(conntrack_sentence(w, cfg, out)?);
        }
        if w.insert_failed > 0 {
            lines.push(snat_sentence(w, cfg));
        }
        let t = &w.totals;
        if let Some(line) = cfg
            .traffic
            .iter()
            .find(|x| x.name == w.service)
            .and_then(|x| node_port_sentence(w, x, cfg))
        {
            lines.push(line);
        }
        if t.error_rate() < 0.01 {
            continue;
        }
        let Some(traffic) = cfg.traffic.iter().find(|x| x.name == w.service) else {
            continue;
        };
        let ended = (t.answered + t.errors()).max(1) as f64;
        let share = |n: u64| 100.0 * n as f64 / ended;
        if t.blocked > 0 {
            let denial = out
                .events
                .iter()
                .find(|e| e.reason == "PolicyDenied")
                .map_or(String::new(), |e| format!(" ({})", e.message));
            lines.push(format!(
                "In `{}`, {:.1}% of {} requests failed because NetworkPolicy dropped the first packet of their connections{denial}. \
                 A dropped SYN gets no answer, so each client retransmitted until its {} timeout and saw `dial tcp: i/o timeout`; \
                 the network itself was up.",
                w.window,
                share(t.blocked),
                w.service,
                traffic.timeout
            ));
        }
        let dropped_dns = out
            .events
            .iter()
            .find(|e| e.reason == "PolicyDenied" && e.message.contains("UDP/53"));
        if t.lookup_failed > 0 && dropped_dns.is_none() {
            lines.push(format!(
                "In `{}`, {:.1}% of {} requests failed before connecting: getaddrinfo returned \"Temporary failure in name resolution\" \
                 (every try of a name timed out, was refused, or found no DNS server listening).",
                w.window,
                share(t.lookup_failed),
                w.service
            ));
        }
        if let (true, Some(e)) = (t.lookup_failed > 0, dropped_dns) {
            let dropped_dns = format!(" Their DNS queries were dropped: {}.", e.message);
            lines.push(format!(
                "In `{}`, {:.1}% of {} requests failed before connecting: getaddrinfo returned \"Temporary failure in name resolution\".{dropped_dns} \
                 With the kubelet's resolv.conf (ndots 5, timeout 5 s, attempts 2) glibc waits out each query, gives up the search list at the first \
                 timeout and tries the name as is, so every lookup took tens of seconds to fail while the pods' network was up.",
                w.window,
                share(t.lookup_failed),
                w.service
            ));
        }
        if t.no_host > 0 {
            lines.push(format!(
                "In `{}`, {:.1}% of {} requests went to an address no pod held any more: the application used a DNS answer \
                 it had cached, the packets were dropped and each client waited out its {} timeout (`dial tcp: i/o timeout`).",
                w.window,
                share(t.no_host),
                w.service,
                traffic.timeout
            ));
        }
        let other_refused = t.port_closed + t.lb_502 + t.lb_reset + t.proxy_reset;
        if t.refused > other_refused {
            lines.push(format!(
                "In `{}`, {:.1}% of {} requests were refused: the Service had no Ready endpoint.",
                w.window,
                share(t.refused - other_refused),
                w.service
            ));
        }
        if t.proxy_reset > 0 {
            lines.push(format!(
                "In `{}`, {:.1}% of {} requests were on connections a restarting sidecar proxy reset (`connection reset by peer`).",
                w.window,
                share(t.proxy_reset),
                w.service
            ));
        }
        if t.port_closed > 0 {
            lines.push(format!(
                "In `{}`, {:.1}% of {} requests were refused by the nodes: nothing listens on that port at the address they used (kube-proxy opens a NodePort only on the addresses nodePortAddresses allows, and only for NodePort and LoadBalancer Services), so the node's kernel answered RST (`connection refused`).",
                w.window,
                share(t.port_closed),
                w.service
            ));
        }
        if t.edge_dropped > 0 {
            lines.push(format!(
                "In `{}`, {:.1}% of {} requests never reached a node: the security group in front of the nodes has no inbound rule for their source and port and drops the SYN without an answer, so each client waited out its {} timeout.",
                w.window,
                share(t.edge_dropped),
                w.service,
                traffic.timeout
            ));
        }
        if t.no_local_endpoint > 0 {
            let target = cfg.target_of(traffic).map(|(n, _)| n);
            let health = out
                .health_checks
                .iter()
                .find(|h| Some(&h.service) == target.as_ref())
                .map_or_else(String::new, |h| {
                    format!(
                        " At the end of the run its health-check node port {} answered 503 on {} of {} nodes (no local endpoint), the nodes a load balancer checking it would take out of rotation.",
                        h.port,
                        h.nodes_unavailable,
                        h.nodes_ok + h.nodes_unavailable
                    )
                });
            lines.push(format!(
                "In `{}`, {:.1}% of {} requests reached a node with no Ready endpoint of the Service: with a `Local` traffic policy kube-proxy drops them there and the clients time out.{health}",
                w.window,
                share(t.no_local_endpoint),
                w.service
            ));
        }
        if t.stale > 0 {
            lines.push(stale_sentence(w, traffic, cfg, out, share(t.stale)));
        }
        lines.extend(nat_sentences(w, traffic, cfg, share));
        lines.extend(lb_sentences(w, traffic, out, share));
        if t.resolving > 0 {
            lines.push(format!(
                "In `{}`, {:.1}% of {} requests timed out while still resolving the name: the lookup outlasted the {} timeout.",
                w.window,
                share(t.resolving),
                w.service,
                traffic.timeout
            ));
        }
        let capacity_failures = t.timed_out
            - t.blocked
            - t.syn_dropped
            - t.stale
            - t.no_host
            - t.resolving
            - t.edge_dropped
            - t.no_local_endpoint
            - t.nat_dropped
            - t.nat_port_allocation
            - t.lb_504
            - t.lb_connect_timeout
            + t.rejected
            - t.lb_503;
        if let Some(line) = pinning_sentence(w, traffic, cfg, out)? {
            lines.push(line);
        } else if capacity_failures as f64 / ended >= 0.01 {
            lines.push(capacity_sentence(w, traffic, cfg, out, capacity_failures)?);
        }
    }
    dns_why(&mut lines, cfg, out)?;
    for ing in cfg.traffic.iter().filter_map(|t| t.ingress.as_ref()) {
        lines.extend(crate::story_paths::why_lines(ing));
    }
    nat_gateways_why(&mut lines, cfg, out);
    crate::story_zones::zone_bytes_why(&mut lines, cfg, out);
    lines.extend(crate::story_mesh::why_lines(out));
    if !lines.is_empty() {
        let _ = writeln!(s, "why");
        for l in lines {
            let _ = writeln!(s, "  {l}");
        }
    }
    Ok(())
}

/// Why connections were slow or failed: the client nodes' conntrack tables
/// were full.
fn conntrack_sentence(
    w: &sim_models::cluster::WindowStats,
    cfg: &sim_models::cluster::ClusterConfig,
    out: &RunOutput,
) -> Result<String, Missing> {
    let max = cfg.conntrack.map_or(0, |c| c.table.max);
    let peak = series_max(out, series::CONNTRACK_ENTRIES_MAX.name)?;
    let kernel = cfg.conntrack.map_or("", |c| c.table.kernel.name());
    let time_wait = cfg
        .conntrack
        .map_or(0.0, |c| c.table.timeouts.tcp_time_wait.as_secs_f64());
    let d = &w.connect_delay;
    let retransmits = syn_retransmit_times();
    Ok(format!(
        "In `{}`, the conntrack tables of the client nodes were full (nf_conntrack_max {max}, up to {} entries sampled on one node; \
         each closed connection's TIME_WAIT entry counts for {time_wait} s, and early drop on kernel {kernel} {} evict those). The kernel dropped {} SYNs of {} with \
         `nf_conntrack: table full, dropping packet`; TCP retransmitted them after {retransmits}..., so connect delays reached \
         p99 {} and at most {}, and {} requests failed with every SYN dropped.",
        w.window,
        num(peak),
        if cfg.conntrack.is_some_and(|c| c.table.kernel.early_drops_closing_tcp()) {
            "may"
        } else {
            "may not"
        },
        w.syn_drops,
        w.service,
        delay(d.quantile(0.99)),
        delay(d.max()),
        w.totals.syn_dropped,
    ))
}

/// Why SYNs were lost to the SNAT port race.
fn snat_sentence(
    w: &sim_models::cluster::WindowStats,
    cfg: &sim_models::cluster::ClusterConfig,
) -> String {
    let win = cfg.windows.iter().find(|x| x.name == w.window);
    let secs = win.map_or(1.0, |x| x.end.as_secs_f64() - x.start.as_secs_f64());
    let (choice, window) =
        cfg.conntrack
            .and_then(|c| c.snat)
            .map_or(("?", SimDuration::ZERO), |s| {
                (
                    match s.ports {
                        sim_models::snat::PortChoice::Default => "without --random-fully",
                        sim_models::snat::PortChoice::RandomFully => "with --random-fully",
                    },
                    s.race_window,
                )
            });
    format!(
        "In `{}`, {} SYNs of {} ({:.2} per second) were dropped because two connections from one node to the same destination were \
         NATed within {window} of each other and MASQUERADE ({choice}) gave both the same source port; the second lost the conntrack insert \
         (insert_failed, no log line) and TCP retransmitted its SYN 1 s later.",
        w.window,
        w.insert_failed,
        w.service,
        w.insert_failed as f64 / secs,
    )
}

/// The kubelet's retry backoff as people say it: "10 s doubling to 5 min".
fn backoff_schedule() -> String {
    format!(
        "{} doubling to {}",
        spoken(kubelet::BACKOFF_INITIAL),
        spoken(kubelet::BACKOFF_MAX)
    )
}

/// A whole number of seconds or minutes as a sentence writes it: "10 s", "5 min".
fn spoken(d: SimDuration) -> String {
    let s = d.as_secs_f64();
    if s >= 60.0 && s % 60.0 == 0.0 {
        format!("{} min", num(s / 60.0))
    } else {
        format!("{} s", num(s))
    }
}

/// When a dropped SYN is sent again, from the first SYN: "1 s, 3 s, 7 s, 15 s".
fn syn_retransmit_times() -> String {
    (1..=4)
        .filter_map(connections::syn_retransmit_offset)
        .map(spoken)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A connect delay as people read it (histograms store 0 as 1 ns).
fn delay(d: SimDuration) -> String {
    if d < SimDuration::from_micros(1) {
        "0s".into()
    } else {
        d.to_string()
    }
}

/// Why long-lived connections left Ready pods idle, if they did.
fn pinning_sentence(
    w: &sim_models::cluster::WindowStats,
    traffic: &sim_models::cluster::TrafficSpec,
    cfg: &sim_models::cluster::ClusterConfig,
    out: &RunOutput,
) -> Result<Option<String>, Missing> {
    let sim_models::connections::ConnectionMode::LongLived { per_client, .. } = traffic.connections
    else {
        return Ok(None);
    };
    let (Some(d), Some(win)) = (
        cfg.target_of(traffic).and_then(|(_, w)| w),
        cfg.windows.iter().find(|x| x.name == w.window),
    ) else {
        return Ok(None);
    };
    let dep = &cfg.deployments[d];
    let ready = sample(
        out,
        &series::PODS_READY.of(&dep.name),
        SimTime::ZERO + win.end,
    )?;
    let serving = w.pods_serving() as f64;
    Ok((serving < ready).then(|| {
        format!(
            "In `{}`, only {} of {} Ready {} pods answered any request, and the busiest answered {:.1}% of them: each client pod holds {per_client} \
             long-lived connection(s), and kube-proxy picked the endpoint once, when a connection opened; conntrack keeps every later request \
             of that connection on the same pod. The idle pods had no connection, while the pinned ones queued until {:.1}% of requests failed.",
            w.window,
            num(serving),
            num(ready),
            dep.name,
            100.0 * w.top_pod_share(),
            100.0 * w.totals.error_rate(),
        )
    }))
}

/// Why connections went to pods already deleted: the data path's sync.
fn stale_sentence(
    w: &sim_models::cluster::WindowStats,
    traffic: &sim_models::cluster::TrafficSpec,
    cfg: &sim_models::cluster::ClusterConfig,
    out: &RunOutput,
    percent: f64,
) -> String {
    let (Some(kp), Some(st)) = (&cfg.kube_proxy, &out.kube_proxy) else {
        return format!(
            "In `{}`, {percent:.1}% of {} requests went to pods already deleted.",
            w.window, w.service
        );
    };
    let restore = if kp.mode == sim_models::kube_proxy::Mode::Iptables {
        let kind = if kp.partial_restores {
            "with partial restores, a full one every sync period"
        } else {
            "every sync a full restore"
        };
        format!(" ({kind})")
    } else {
        String::new()
    };
    format!(
        "In `{}`, {percent:.1}% of {} requests were sent to pods already deleted: the {} data path still listed them, because an \
         endpoint change reaches it only when the sync after it ends. The longest sync wrote {} lines or objects and took {}{restore}; \
         an endpoint change waited up to {} to reach the data path. The SYNs to the gone pods were dropped and their clients \
         timed out after {} (`dial tcp: i/o timeout`).",
        w.window,
        w.service,
        kp.mode.name(),
        num(st.longest_written as f64),
        st.longest,
        st.longest_propagation,
        traffic.timeout
    )
}

/// What CoreDNS did about it: CPU saturation against the model's calibrated
/// capacity, OOM kills and the crash loop.
fn dns_why(
    lines: &mut Vec<String>,
    cfg: &sim_models::cluster::ClusterConfig,
    out: &RunOutput,
) -> Result<(), Missing> {
    let Some(dns) = &cfg.dns else { return Ok(()) };
    let spec = &dns.coredns;
    let name = &cfg.deployments[dns.workload].name;
    let busiest = cfg
        .windows
        .iter()
        .zip(&out.dns_windows)
        .map(|(w, d)| {
            let secs = w.end.as_secs_f64() - w.start.as_secs_f64();
            (d.received.iter().sum::<u64>() as f64 / secs, &w.name, w)
        })
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let col = column_index(out, series::DNS_CPU_UTILIZATION.name)?;
    if let Some((qps, window, w)) = busiest {
        let saturated = out
            .metrics
            .rows()
            .iter()
            .filter(|(t, _)| w.contains(*t))
            .any(|(_, r)| r.get(col).is_some_and(|u| *u >= 0.99));
        if saturated {
            let ready = sample(out, &series::PODS_READY.of(name), SimTime::ZERO + w.start)?;
            lines.push(format!(
                "In `{window}`, the {name} pods ran at their CPU limit: at {}m each, {} of CPU per query gives {} queries/s per pod, \
                 {} for {} Ready pods; they received {} queries/s on average over the window. Queries queued inside the pods, lookups waited, and glibc sent \
                 queries again after its {} timeout, adding load.",
                spec.cpu_millicores,
                spec.mean_service_time(),
                num(spec.capacity_qps().round()),
                num((spec.capacity_qps() * ready).round()),
                num(ready),
                num(qps.round()),
                sim_models::resolver::DEFAULT_TIMEOUT,
            ));
        }
    }
    if let Some(local) = &dns.node_local {
        let busiest = cfg
            .windows
            .iter()
            .zip(&out.dns_windows)
            .max_by_key(|(w, d)| (d.node_local[0], std::cmp::Reverse(w.start)));
        if let Some((w, d)) = busiest.filter(|(_, d)| d.node_local[0] > 0) {
            let secs = w.end.as_secs_f64() - w.start.as_secs_f64();
            lines.push(format!(
                "With NodeLocal DNSCache, the pods' queries went to node-local-dns on their own node (a link-local address: no DNAT, \
                 no conntrack entry): in `{}`, {} queries/s over {} nodes, {:.1}% answered from the node's cache (answers kept up to {}, \
                 NXDOMAIN and NODATA up to {}); {} misses/s for cluster names went on to {name} over TCP, external names to the upstream.",
                w.name,
                num((d.node_local[0] as f64 / secs).round()),
                cfg.nodes.len(),
                100.0 * d.node_local[1] as f64 / d.node_local[0] as f64,
                local.cache_max_ttl,
                local.denial_max_ttl,
                num((d.node_local[2] as f64 / secs * 10.0).round() / 10.0),
            ));
        }
    }
    if let Some(ct) = cfg.conntrack {
        for (w, d) in cfg.windows.iter().zip(&out.dns_windows) {
            if d.insert_failed > 0 {
                let lookups: u64 = out
                    .windows
                    .iter()
                    .filter(|x| x.window == w.name)
                    .map(|x| x.lookups)
                    .sum();
                lines.push(format!(
                    "In `{}`, {} DNS queries never reached {name}: glibc sent each lookup's A and AAAA queries together from one socket, \
                     both needed the same conntrack entry for kube-dns's DNAT, and when the two were handled at once (assumed for {:.0}% of \
                     pairs) the second lost the insert race; kernel {} dropped it (`conntrack -S` insert_failed, nothing logged){}. \
                     The resolver heard nothing for its {} timeout, then asked again one query at a time: those lookups ({:.1}% of {}) \
                     took that much longer.",
                    w.name,
                    num(d.insert_failed as f64),
                    100.0 * ct.udp_pair_concurrency,
                    ct.table.kernel.name(),
                    if ct.table.kernel == sim_models::conntrack::Kernel::V4_19 {
                        " unless both had picked the same CoreDNS pod"
                    } else {
                        ""
                    },
                    sim_models::resolver::DEFAULT_TIMEOUT,
                    100.0 * d.insert_failed as f64 / lookups.max(1) as f64,
                    num(lookups as f64),
                ));
            }
            if d.stale > 0 {
                lines.push(format!(
                    "In `{}`, {} DNS queries went to a {name} pod that no longer existed: their sockets' conntrack entries still \
                     named it, every query refreshed the entry's {} s UDP timeout, and {}; the queries were lost and each lookup \
                     waited out its timeout.",
                    w.name,
                    num(d.stale as f64),
                    ct.table.timeouts.udp.as_secs_f64(),
                    if ct.flush_udp_on_endpoint_removal {
                        "kube-proxy had not deleted them yet"
                    } else {
                        "kube-proxy's deletion of the removed endpoint's UDP entries failed (its log: `Failed to delete \
                         kube-system/kube-dns:dns endpoint connections, error: error deleting conntrack entries for UDP peer`)"
                    },
                ));
            }
        }
    }
    if out.dns_restarts > 0 {
        let mib = |b: u64| b as f64 / f64::from(1u32 << 20);
        let peak = series_max(out, series::DNS_MEMORY_MIB_MAX.name)?;
        lines.push(format!(
            "The {name} containers were OOM-killed {} times at their {} MiB limit (largest memory sampled {} MiB): memory is \
             {} MiB at start ({} MiB + 1 MiB per 1,000 pods and Services), the cache, and about {} KiB per query inside the pod, \
             so a queue of queries is what fills it. Each kill lost the queries inside and the cache; the kubelet restarted the \
             container at once the first time, then after {} (CrashLoopBackOff), and the pod left the \
             kube-dns endpoints until it was Ready again.",
            out.dns_restarts,
            num(mib(spec.memory_limit).round()),
            num(peak),
            num(mib(spec.startup_memory())),
            coredns::FORMULA_BASE_MIB - coredns::FORMULA_CACHE_MIB,
            num((spec.memory_per_in_flight as f64 / 1024.0).round()),
            backoff_schedule(),
        ));
    }
    Ok(())
}

/// Why requests timed out at a workload short of capacity: Ready pods x
/// workers / service time against the offered rate.
fn capacity_sentence(
    w: &sim_models::cluster::WindowStats,
    traffic: &sim_models::cluster::TrafficSpec,
    cfg: &sim_models::cluster::ClusterConfig,
    out: &RunOutput,
    failures: u64,
) -> Result<String, Missing> {
    let t = &w.totals;
    let Some((d, dep)) = cfg
        .target_of(traffic)
        .and_then(|(_, w)| w)
        .map(|d| (d, &cfg.deployments[d]))
    else {
        let ended = (w.totals.answered + w.totals.errors()).max(1) as f64;
        return Ok(format!(
            "In `{}`, {failures} {} lookups ({:.1}%) took longer than the application's {} timeout.",
            w.window,
            w.service,
            100.0 * failures as f64 / ended,
            traffic.timeout
        ));
    };
    let Some(win) = cfg.windows.iter().find(|x| x.name == w.window) else {
        return Ok(format!(
            "In `{}`, {failures} {} requests timed out or were rejected.",
            w.window, w.service
        ));
    };
    let ended = (t.answered + t.errors()).max(1) as f64;
    if let Some(call) = cfg
        .traffic
        .iter()
        .find(|c| c.in_handler && c.from == Some(d))
    {
        // The pods' handlers wait for their own call: their speed is the
        // dependency's, not their service time.
        return Ok(format!(
            "In `{}`, {:.1}% of {} requests failed: {} of them ({:.1}%) were answered 503 by {} pods because their own call ({}) had failed.",
            w.window,
            100.0 * failures as f64 / ended,
            w.service,
            t.dependency_failed,
            100.0 * t.dependency_failed as f64 / ended,
            dep.name,
            call.name
        ));
    }
    // The mean service time in effect at the window's end (the timeline
    // may have changed it).
    let service_time = cfg.timeline.iter().filter(|a| a.at < win.end).fold(
        dep.server.service_time,
        |st, a| match a.action {
            Action::SetServiceTime {
                deployment,
                service_time,
            } if deployment == d => service_time,
            _ => st,
        },
    );
    let ready = sample(
        out,
        &series::PODS_READY.of(&dep.name),
        SimTime::ZERO + win.end,
    )?;
    let capacity = ready * f64::from(dep.server.concurrency) / service_time.as_secs_f64();
    let offered = t.sent as f64 / (win.end.as_secs_f64() - win.start.as_secs_f64());
    let zone_down = out
        .events
        .iter()
        .find(|e| e.reason == "ZoneDown" && e.first < SimTime::ZERO + win.end);
    if let (Some(z), true) = (zone_down, capacity >= offered) {
        return Ok(format!(
            "In `{}`, {} Ready {} pods could answer about {} requests/s against {} offered, yet {:.1}% of requests failed: \
             those sent to pods of {} after it failed got no answer, and their clients waited out the {} timeout.",
            w.window,
            num(ready),
            dep.name,
            num(capacity.round()),
            num(offered.round()),
            100.0 * failures as f64 / ended,
            z.example_object.replace('/', " "),
            traffic.timeout,
        ));
    }
    let head = format!(
        "In `{}`, {} Ready {} pods could answer about {} requests/s ({} at a time, {} each), against {}",
        w.window,
        num(ready),
        dep.name,
        num(capacity.round()),
        dep.server.concurrency,
        service_time,
        num(offered.round()),
    );
    if let (Some(q), true) = (dep.server.queue_limit, t.rejected >= t.timed_out) {
        // A bounded queue: the pods refuse at once what does not fit.
        let secs = (win.end.as_secs_f64() - win.start.as_secs_f64()).max(1e-9);
        let tries = (t.sent + t.retried + t.mesh_retried) as f64 / secs;
        return Ok(format!(
            "{head} requests/s offered \
             ({} tries/s with the retries). {:.1}% of requests failed: {} of them ended in a 503, answered at once because the pods' queues \
             ({q} waiting each) were full, {} timed out.",
            num(tries.round()),
            100.0 * failures as f64 / ended,
            t.rejected,
            t.timed_out,
        ));
    }
    Ok(format!(
        "{head} offered: {:.0}% of the load. \
         {:.1}% of requests timed out or were rejected: queues grew until requests waited close to the client's {} timeout, and {} answers \
         ({:.0}% of requests) came after the client had left, work wasted on nobody.",
        100.0 * capacity / offered.max(f64::MIN_POSITIVE),
        100.0 * failures as f64 / ended,
        traffic.timeout,
        t.wasted,
        100.0 * t.wasted as f64 / (t.sent.max(1)) as f64,
    ))
}

fn compare(
    s: &mut String,
    scenario: &Scenario,
    base: &SeedRun,
    other: &SeedRun,
) -> Result<(), Missing> {
    let (bv, ov) = (
        &scenario.variants[base.variant],
        &scenario.variants[other.variant],
    );
    let _ = writeln!(s, "  {} vs {}:", bv.name, ov.name);
    for (b, o) in base
        .output
        .deployments
        .iter()
        .zip(&other.output.deployments)
    {
        let bmax = series_max(&base.output, &series::PODS_SANDBOX_FAILED.of(&b.name))?;
        let omax = series_max(&other.output, &series::PODS_SANDBOX_FAILED.of(&o.name))?;
        if bmax > 0.0 || omax > 0.0 {
            let _ = writeln!(
                s,
                "    {}: pods without an IP address at worst {} -> {}",
                b.name,
                num(bmax),
                num(omax)
            );
        }
    }
    for (b, o) in base.output.windows.iter().zip(&other.output.windows) {
        let _ = writeln!(
            s,
            "    {} in `{}`: errors {:.1}% -> {:.1}%, p50 {} -> {}, p99 {} -> {}",
            b.service,
            b.window,
            b.totals.error_rate() * 100.0,
            o.totals.error_rate() * 100.0,
            b.latency.quantile(0.5),
            o.latency.quantile(0.5),
            b.latency.quantile(0.99),
            o.latency.quantile(0.99),
        );
        let source = |v: &Variant, w: &sim_models::cluster::WindowStats| {
            v.config
                .traffic
                .iter()
                .find(|x| x.name == w.service)
                .cloned()
        };
        if let (Some(bt), Some(ot)) = (source(bv, b), source(ov, o)) {
            crate::story_paths::compare_lines(s, (&bt, b), (&ot, o));
        }
        crate::story_mesh::compare_line(s, (b, &base.output), (o, &other.output));
        crate::story_mesh::compare_chain_line(s, b, o);
        if bv.config.kube_proxy.is_some() && ov.config.kube_proxy.is_some() {
            let _ = writeln!(
                s,
                "    {} in `{}`: first-packet RTT p50 {} -> {}, p99 {} -> {}",
                b.service,
                b.window,
                b.first_packet.quantile(0.5),
                o.first_packet.quantile(0.5),
                b.first_packet.quantile(0.99),
                o.first_packet.quantile(0.99),
            );
        }
        if b.lookups > 0 || o.lookups > 0 {
            let per = |w: &sim_models::cluster::WindowStats| {
                w.dns_queries as f64 / w.lookups.max(1) as f64
            };
            let _ = writeln!(
                s,
                "    {} in `{}`: name lookups p99 {} -> {}, DNS queries per lookup {:.2} -> {:.2}",
                b.service,
                b.window,
                b.lookup_latency.quantile(0.99),
                o.lookup_latency.quantile(0.99),
                per(b),
                per(o),
            );
        }
        let connects = |w: &sim_models::cluster::WindowStats| {
            w.syn_drops > 0 || w.connect_delay.max() >= SimDuration::from_micros(1)
        };
        if (bv.config.conntrack.is_some() || ov.config.conntrack.is_some())
            && (connects(b) || connects(o))
        {
            let _ = writeln!(
                s,
                "    {} in `{}`: SYNs dropped {} -> {}, connect delay p99 {} -> {}, max {} -> {}",
                b.service,
                b.window,
                b.syn_drops,
                o.syn_drops,
                delay(b.connect_delay.quantile(0.99)),
                delay(o.connect_delay.quantile(0.99)),
                delay(b.connect_delay.max()),
                delay(o.connect_delay.max()),
            );
        }
        let pooled = |v: &Variant| {
            v.config
                .traffic
                .iter()
                .any(|t| t.connections != sim_models::connections::ConnectionMode::PerRequest)
        };
        if pooled(bv) || pooled(ov) {
            let _ = writeln!(
                s,
                "    {} in `{}`: pods answering {} -> {}, busiest pod's share {:.1}% -> {:.1}%",
                b.service,
                b.window,
                b.pods_serving(),
                o.pods_serving(),
                b.top_pod_share() * 100.0,
                o.top_pod_share() * 100.0,
            );
        }
    }
    Ok(())
}

/// For a source entering at a node's public address and NodePort that got
/// answers: where the port is open and why.
fn node_port_sentence(
    w: &sim_models::cluster::WindowStats,
    traffic: &sim_models::cluster::TrafficSpec,
    cfg: &sim_models::cluster::ClusterConfig,
) -> Option<String> {
    use sim_models::services::node_port::{NodeAddressKind, NodePortAddresses};
    let entry = traffic.entry?;
    if entry.kind != NodeAddressKind::Public || w.totals.answered == 0 {
        return None;
    }
    let mode = cfg
        .kube_proxy
        .as_ref()
        .map_or(sim_models::kube_proxy::Mode::Iptables, |k| k.mode);
    let rule = match &cfg.services.node_port_addresses {
        NodePortAddresses::Default => format!(
            "kube-proxy {} with nodePortAddresses unset accepts NodePorts on {}",
            mode.name(),
            if mode == sim_models::kube_proxy::Mode::Nftables {
                "the primary address only"
            } else {
                "every local address"
            }
        ),
        NodePortAddresses::Primary => "nodePortAddresses: primary".into(),
        NodePortAddresses::Cidrs(c) => format!(
            "nodePortAddresses [{}]",
            c.iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let edge = match &cfg.services.security_group {
        Some(_) => "the security group allows the source and port",
        None => "no security group stands in front of the nodes",
    };
    Some(format!(
        "In `{}`, {} of {} requests from {} (outside the cluster) were answered at the nodes' public addresses: \
         the NodePort is open on {} of {} public node addresses ({rule}) and {edge}.",
        w.window,
        w.totals.answered,
        w.totals.sent,
        entry.source,
        w.node_port_open_public,
        cfg.nodes.len()
    ))
}

/// Why egress requests of one window failed at a NAT gateway.
/// Why requests through a cloud load balancer failed: what the load
/// balancer's health checks believed of the pods against what the pods did.
fn lb_sentences(
    w: &sim_models::cluster::WindowStats,
    traffic: &sim_models::cluster::TrafficSpec,
    out: &RunOutput,
    share: impl Fn(u64) -> f64,
) -> Vec<String> {
    use sim_models::cloud_lb::CheckPath;
    let t = &w.totals;
    let mut lines = Vec::new();
    let Some(lb) = traffic.load_balancer else {
        return lines;
    };
    let hc = lb.group.health_check;
    let marked = out
        .events
        .iter()
        .find(|e| e.reason == "TargetHealthy")
        .map_or(0, |e| e.count);
    if t.lb_502 > 0 {
        let why = match lb.check {
            CheckPath::Port => format!(
                "the load balancer's health check (every {}; a new target in service after {} passing check{}) asks only whether the \
                 server answers, which it does as soon as the container runs, so new pods were marked healthy ({marked} times over the \
                 run) and sent requests before the application served them (it serves once its readiness probe passes); they closed \
                 those connections unanswered. Requests still in flight at a pod when its deregistration delay ({}) ran out were cut off too",
                hc.interval,
                hc.initial_passes,
                if hc.initial_passes == 1 { "" } else { "s" },
                lb.group.deregistration_delay
            ),
            CheckPath::Readiness => format!(
                "requests still in flight at a deleted pod when its deregistration delay ({}) ran out were cut off",
                lb.group.deregistration_delay
            ),
        };
        lines.push(format!(
            "In `{}`, {:.1}% of {} requests got the load balancer's 502 Bad Gateway: {why}.",
            w.window,
            share(t.lb_502),
            w.service
        ));
    }
    if t.lb_503 > 0 {
        lines.push(format!(
            "In `{}`, {:.1}% of {} requests got the load balancer's 503: no target was registered.",
            w.window,
            share(t.lb_503),
            w.service
        ));
    }
    if t.lb_504 > 0 {
        lines.push(format!(
            "In `{}`, {:.1}% of {} requests got the load balancer's 504: their target did not answer the connection (its node was down).",
            w.window,
            share(t.lb_504),
            w.service
        ));
    }
    if t.lb_reset + t.lb_connect_timeout > 0 {
        lines.push(format!(
            "In `{}`, {:.1}% of {} connections through the NLB were reset by a pod that did not serve yet or was cut off,              and {:.1}% found no target and timed out.",
            w.window,
            share(t.lb_reset),
            w.service,
            share(t.lb_connect_timeout)
        ));
    }
    lines
}

fn nat_sentences(
    w: &sim_models::cluster::WindowStats,
    traffic: &sim_models::cluster::TrafficSpec,
    cfg: &sim_models::cluster::ClusterConfig,
    share: impl Fn(u64) -> f64,
) -> Vec<String> {
    let t = &w.totals;
    let mut lines = Vec::new();
    let dest = traffic
        .external
        .map_or_else(|| "its destination".to_string(), |d| d.to_string());
    if t.nat_dropped > 0 {
        lines.push(format!(
            "In `{}`, {:.1}% of {} requests to {dest} were dropped at the NAT gateway their zone's route table points at: \
             the gateway was down, its SYNs went nowhere and each client waited out its {} timeout (`dial tcp: i/o timeout`).",
            w.window,
            share(t.nat_dropped),
            w.service,
            traffic.timeout
        ));
    }
    if t.nat_port_allocation > 0 {
        let limit = cfg
            .nat_gateways
            .as_ref()
            .map_or(0, |n| n.config.connections_per_destination);
        lines.push(format!(
            "In `{}`, {:.1}% of {} requests found no source port at the NAT gateway (ErrorPortAllocation): every one of its \
             addresses already held {} simultaneous connections to {dest}; the clients timed out.",
            w.window,
            share(t.nat_port_allocation),
            w.service,
            num(f64::from(limit))
        ));
    }
    if t.nat_idle_reset > 0 {
        lines.push(format!(
            "In `{}`, {:.1}% of {} requests were reset (`connection reset by peer`): their connection had been idle past the \
             NAT gateway's idle timeout, which forgot it and answered the next packet with an RST.",
            w.window,
            share(t.nat_idle_reset),
            w.service
        ));
    }
    lines
}

/// What each NAT gateway saw over the run, as CloudWatch and the bill show it.
fn nat_gateways_why(
    lines: &mut Vec<String>,
    cfg: &sim_models::cluster::ClusterConfig,
    out: &RunOutput,
) {
    let Some(setup) = cfg.nat_gateways.as_ref() else {
        return;
    };
    for g in &out.nat_gateways {
        let routed: Vec<&str> = setup
            .config
            .routes
            .iter()
            .enumerate()
            .filter(|(_, r)| r.is_some_and(|i| setup.config.gateways[i as usize].name == g.name))
            .filter_map(|(z, _)| setup.zones.get(z).map(String::as_str))
            .collect();
        let s = &g.stats;
        lines.push(format!(
            "NAT gateway {} (in {}, routed from {}): {} connections opened, at most {} at once; ErrorPortAllocation {}, \
             IdleTimeoutCount {}, PacketsDropCount {}; {} GB processed; ${:.4} ({} gateway-hour(s) ${:.4} + processing ${:.4}).",
            g.name,
            g.zone,
            if routed.is_empty() { "no zone".to_string() } else { routed.join(", ") },
            s.opened,
            s.peak_active,
            s.error_port_allocation,
            s.idle_timeout,
            s.packets_dropped,
            num(g.cost.gb),
            g.cost.total(),
            g.cost.hours,
            g.cost.hours_usd,
            g.cost.gb_usd
        ));
    }
}
