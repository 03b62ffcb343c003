//! # Work estimate: how big a run is before it runs
//!
//! ## Scope
//! From a validated cluster configuration alone, before the run allocates
//! anything that grows with the input: the requests its traffic sends (rates
//! integrated over the timeline's rate changes), the events the engine will
//! fire, the time-series rows and columns, and so the wall time and memory
//! to expect. [`guard`] refuses a scenario beyond [`Limits`] with the
//! estimate and the field that drove it; `--force` skips the refusal.
//!
//! ## How the events are counted
//! A request is an arrival and a completion (or a timeout): 2 events, 1 for a
//! lookup with no connection after it, 1 more with kube-proxy modelled (the
//! first packet's round trip). Each DNS query is 1 event. A lookup of a name
//! sends the queries [`resolver::count_queries`] gives for the client's
//! resolv.conf and the names the cluster serves (the same function the
//! resolver model is checked against); an application cache
//! (`dns_cache`) leaves one lookup per client pod per 30 s at most. Pods
//! cost [`EVENTS_PER_INITIAL_POD`] or [`EVENTS_PER_NEW_POD`] events.
//! [`Estimate::events`] assumes requests succeed at the first try;
//! [`Estimate::events_bound`] assumes every try fails after its whole
//! search list on every attempt, and every retry is taken: the counts that
//! multiply (retries x search domains x A/AAAA x attempts) are in it. A
//! source made in handlers (`in_handler`) sends one request per request
//! its workload serves: its callers' requests, or, in the bound, their
//! every try (the application's retries times its client proxy's), so a
//! chain's retries multiply hop by hop in the bound and in the memory
//! of the requests open at once.
//!
//! ## Parameters
//! [`EVENTS_PER_SECOND`], [`SECONDS_PER_QUERY`] and the `BYTES_PER_*`
//! constants are this simulator's own costs, measured on this project's
//! machine class (2 cores, release build) with the busy run of issue 14,
//! the DNS replays, the `scale_memory` test and conntrack_table_full; they
//! are not Kubernetes figures. Memory counts pods, Services with their
//! traffic, nodes (with conntrack: their tables), conntrack entries (each
//! request and query a flow living until TIME_WAIT or the UDP timeout, at
//! most the tables' size), CoreDNS state and queries in flight, open
//! requests and the time series. An overloaded CoreDNS holds the queries
//! beyond its CPU until its memory limit kills it (the model, as CoreDNS,
//! answers every query it has read): its backlog is at most what the
//! limits of its most pods let in (a bound the model keeps), and about the
//! queries offered beyond its fewest pods' CPU over the run (typical
//! queries per lookup, every retry taken; the resolver's own resends after
//! its timeout are not counted, so this part is an estimate, and
//! [`BYTES_PER_QUERY_IN_FLIGHT`] is about three times what a queued query
//! takes: 104 MB for 310,000 on zalando_dns_oom/fix-2000Mi).
//!
//! ## Validation
//! Tests hold the estimate to runs: over the bundled replays and generated
//! clusters, the events fired are at most `events_bound` and within a
//! factor [`EVENTS_FACTOR`] of `events` for runs where tries succeed
//! (`tests` below); the peak bytes a run allocates, counted by a counting
//! allocator, are at most `memory` and within a factor 16 of it
//! (`tests/estimate_memory.rs`). The wall-time estimate is rougher:
//! the 5,000-node study runs 14 s against 2.8 s estimated (per-node
//! conntrack and DNS work grow with the cluster; not modelled here).

use crate::error::InputError;
use crate::locate::{Positions, Seg};
use crate::path;
use crate::spec::Scenario;
use sim_core::SimDuration;
use sim_models::cluster::{name_exists, Action, ClientDnsCache, ClusterConfig, TrafficSpec};
use sim_models::resolver::{self, QueryTypes};
use sim_models::services::ResolvedService;

/// Engine events per pod of the initial replicas: the cluster existed before
/// the story began, so they are Running at T+0 and only their pending
/// start-up event fires (measured: 1.0).
pub const EVENTS_PER_INITIAL_POD: f64 = 1.0;
/// Engine events per pod a scale-up creates (sandbox, start, readiness;
/// measured: 2.0, sandbox retries on exhausted pools add more).
pub const EVENTS_PER_NEW_POD: f64 = 3.0;
/// Model events a run fires per second of wall time on this project's
/// machine class (2 cores, release build; measured: the issue-14 busy run,
/// 30 M events in 6.0 s).
pub const EVENTS_PER_SECOND: f64 = 5.0e6;
/// Wall time per DNS query beyond its event (resolver, CoreDNS, conntrack's
/// UDP entry; measured on coredns_cpu_throttled and dns_conntrack_race:
/// 1.2-1.4 us) \[s\].
pub const SECONDS_PER_QUERY: f64 = 1.5e-6;
/// Bytes of model state per pod (measured by the scale_memory test: 320-400
/// B idle; NetworkPolicy's view of a pod adds about 540 B when policies
/// exist).
pub const BYTES_PER_POD: f64 = 1_000.0;
/// Bytes of model state per Service with its traffic source: counters,
/// gauges, latency histograms as they fill (measured: 12-17 KB with its 10
/// pods).
pub const BYTES_PER_SERVICE: f64 = 16_000.0;
/// Bytes of model state per node without conntrack (scheduler index, IPAM
/// pool).
pub const BYTES_PER_NODE: f64 = 2_000.0;
/// Bytes per node with a conntrack table (its entries and timers; measured
/// on cluster_5k_nodes and its small copy: 100-150 KB).
pub const BYTES_PER_CONNTRACK_NODE: f64 = 150_000.0;
/// Bytes per conntrack entry with its timer (measured on
/// conntrack_table_full: about 600 B).
pub const BYTES_PER_CONNTRACK_ENTRY: f64 = 600.0;
/// Bytes of CoreDNS state (caches, queues, per-pod resolver configurations)
/// when the cluster DNS is modelled.
pub const BYTES_DNS: f64 = 3.0e6;
/// Bytes per DNS query in flight (its lookup, queue entry and conntrack
/// UDP flow while it waits), held for `DNS_IN_FLIGHT_S`.
pub const BYTES_PER_QUERY_IN_FLIGHT: f64 = 1_000.0;
/// How long a query's state lives in the estimate \[s\].
const DNS_IN_FLIGHT_S: f64 = 0.05;
/// Bytes per open request (in flight while it waits for its timeout).
pub const BYTES_PER_OPEN_REQUEST: f64 = 200.0;
/// How far `events` may be from the events a run fires when its tries
/// succeed (a factor either way).
pub const EVENTS_FACTOR: f64 = 2.0;
/// The longest time an application cache keeps a lookup in the estimate.
const CACHE_TTL_S: f64 = 30.0;

/// What one run of one variant will take.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    /// Requests the traffic sends (first tries).
    pub requests: f64,
    /// Events when tries succeed at once.
    pub events: f64,
    /// Events when every try fails and is retried: no run fires more.
    pub events_bound: f64,
    /// Time-series rows.
    pub samples: f64,
    /// Time-series columns.
    pub columns: f64,
    /// DNS queries.
    pub queries: f64,
    /// Peak memory \[bytes\].
    pub memory: f64,
    /// What drives the event count most: a field of the scenario file and
    /// what to do with it.
    pub driver: Driver,
}

impl Estimate {
    /// The estimate for one configuration.
    pub fn of(cfg: &ClusterConfig) -> Estimate {
        let duration = cfg.duration.as_secs_f64();
        let kube_proxy = f64::from(u8::from(cfg.kube_proxy.is_some()));
        let mut events = 0.0;
        let mut bound = 0.0;
        let mut requests = 0.0;
        let mut open = 0.0;
        let mut traffic_events = 0.0;
        let mut busiest = (0.0, 0);
        let mut queries = 0.0;
        let mut flows_per_s = 0.0;
        let chain = chain_rates(cfg);
        for (t, spec) in cfg.traffic.iter().enumerate() {
            let Chained {
                sent,
                sent_bound,
                peak_bound,
                tries,
            } = chain[t];
            let (typical_q, worst_q) = queries_per_lookup(cfg, spec);
            let lookups = lookups(cfg, spec, sent);
            // Through an ingress controller a request still reaches a
            // backend Service's pod, as a source's own would.
            // A mesh adds one event per proxy on the way (at most 3).
            let proxies = cfg.mesh.as_ref().map_or(0.0, |_| 3.0);
            let per_request = if spec.service.is_some() || spec.ingress.is_some() {
                2.0 + kube_proxy + proxies
            } else {
                1.0
            };
            let e = sent * per_request + lookups * typical_q;
            queries += lookups * typical_q;
            flows_per_s += (sent + lookups * typical_q) / duration.max(1e-9);
            // A try that fails: its SYNs retransmitted until the timeout
            // (1 s doubling), each query sent and timed out.
            let syns = (spec.timeout.as_secs_f64() + 1.0).log2().ceil() + 1.0;
            bound += sent_bound * tries * (per_request + syns + worst_q * 2.0);
            events += e;
            traffic_events += e;
            if e > busiest.0 {
                busiest = (e, t);
            }
            requests += sent;
            // In flight: answered requests leave within a second; those that
            // wait out their timeout are the outage, bounded in `events_bound`.
            open += peak_bound * spec.timeout.as_secs_f64().min(1.0) * tries;
        }
        let (initial, added) = pods_created(cfg);
        let pods = initial + added;
        let pod_events = initial * EVENTS_PER_INITIAL_POD + added * EVENTS_PER_NEW_POD;
        let samples = (cfg.duration.as_nanos() / cfg.sample_every.as_nanos().max(1)) as f64 + 1.0;
        let kube_proxy_syncs = cfg.kube_proxy.as_ref().map_or(0.0, |k| {
            duration / k.min_sync_period.as_secs_f64().max(1e-3)
        });
        let fixed = pod_events + samples + kube_proxy_syncs + cfg.timeline.len() as f64;
        events += fixed;
        bound += fixed * 2.0;
        let services = cfg.deployments.len() as f64;
        let columns = services * 7.0 + cfg.traffic.len() as f64 * 28.0 + 40.0;
        let per_node = if cfg.conntrack.is_some() {
            BYTES_PER_CONNTRACK_NODE
        } else {
            BYTES_PER_NODE
        };
        // Conntrack entries: each connection and query a flow that lives
        // until its TIME_WAIT or UDP timeout, at most the tables' size.
        let conntrack = cfg.conntrack.as_ref().map_or(0.0, |c| {
            let t = &c.table.timeouts;
            let life = t.tcp_time_wait.max(t.udp).max(t.udp_stream).as_secs_f64();
            let most = c.table.max as f64 * cfg.nodes.len() as f64;
            (flows_per_s * life).min(most) * BYTES_PER_CONNTRACK_ENTRY
        });
        let dns = if cfg.dns.is_some() {
            BYTES_DNS
                + (queries / duration.max(1e-9) * DNS_IN_FLIGHT_S + coredns_backlog(cfg))
                    * BYTES_PER_QUERY_IN_FLIGHT
        } else {
            0.0
        };
        let memory = 1.0e6
            + dns
            + conntrack
            + pods * BYTES_PER_POD
            + services.max(cfg.traffic.len() as f64) * BYTES_PER_SERVICE
            + cfg.nodes.len() as f64 * per_node
            + open * BYTES_PER_OPEN_REQUEST
            + samples * columns * 8.0;
        let driver = if samples >= traffic_events.max(pod_events) {
            Driver::SampleEvery
        } else if traffic_events >= pod_events {
            Driver::Rate(busiest.1)
        } else {
            Driver::Replicas
        };
        Estimate {
            requests,
            events,
            events_bound: bound,
            samples,
            columns,
            queries,
            memory,
            driver,
        }
    }

    /// Wall time to expect on this project's machine class \[s\].
    pub fn seconds(&self) -> f64 {
        self.events / EVENTS_PER_SECOND + self.queries * SECONDS_PER_QUERY
    }
}

/// The field of a scenario file that drives an estimate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Driver {
    /// `sample_every`: the time series' rows.
    SampleEvery,
    /// `traffic[i].rate` (and its timeline changes) over the duration.
    Rate(usize),
    /// The workloads' replicas.
    #[default]
    Replicas,
}

impl Driver {
    /// Where it is written (in the top level of the file).
    fn path(self) -> Vec<Seg> {
        match self {
            Driver::SampleEvery => path!["sample_every"].to_vec(),
            Driver::Rate(t) => path!["traffic", t, "rate"].to_vec(),
            Driver::Replicas => path!["workloads"].to_vec(),
        }
    }

    /// What to do about it.
    fn advice(self) -> String {
        match self {
            Driver::SampleEvery => "`sample_every` drives it: raise it or shorten `duration`".into(),
            Driver::Rate(t) => format!(
                "`traffic[{t}].rate` over `duration` drives it: lower the rate or shorten the duration"
            ),
            Driver::Replicas => "the workloads' `replicas` drive it: lower them".into(),
        }
    }
}

/// A source's requests, along call chains.
#[derive(Clone, Copy, Debug, Default)]
struct Chained {
    /// Requests sent over the run when every try succeeds.
    sent: f64,
    /// Requests sent when every try fails and every retry is taken.
    sent_bound: f64,
    /// Its highest rate then \[requests/s\].
    peak_bound: f64,
    /// Tries per request when every try fails: the application's, times
    /// its client proxy's.
    tries: f64,
}

/// Tries per request of source `t` when every try fails: the
/// application's times its L7 proxy's (client sidecar or waypoint).
fn tries_of(cfg: &ClusterConfig, services: &[ResolvedService], t: usize) -> f64 {
    let spec = &cfg.traffic[t];
    let app = f64::from(spec.retries) + 1.0;
    let proxied = cfg
        .mesh
        .as_ref()
        .is_some_and(|m| m.l7_proxy(spec, services).is_some());
    let mesh = match (proxied, spec.service) {
        (true, Some(s)) => f64::from(cfg.mesh_policy(s).retries.num_retries) + 1.0,
        _ => 1.0,
    };
    app * mesh
}

/// Per source, its requests: a source with arrivals of its own sends its
/// rate over the run; one made in the handlers of workload `w` (`in_handler`)
/// sends one request per request served at `w`: the requests of the
/// sources whose Service selects `w`, their every try when tries fail.
fn chain_rates(cfg: &ClusterConfig) -> Vec<Chained> {
    let services = cfg.service_list();
    let n = cfg.traffic.len();
    let mut c: Vec<Chained> = (0..n)
        .map(|t| {
            let sent = requests_sent(cfg, t);
            Chained {
                sent,
                sent_bound: sent,
                peak_bound: peak_rate(cfg, t),
                tries: tries_of(cfg, &services, t),
            }
        })
        .collect();
    let callers = cfg.chain_callers();
    // A chain is at most `n` deep: `n` rounds reach its end.
    for _ in 0..n {
        for t in (0..n).filter(|&t| cfg.traffic[t].in_handler) {
            let mut x = Chained {
                tries: c[t].tries,
                ..Chained::default()
            };
            for &p in &callers[t] {
                x.sent += c[p].sent;
                x.sent_bound += c[p].sent_bound * c[p].tries;
                x.peak_bound += c[p].peak_bound * c[p].tries;
            }
            c[t] = x;
        }
    }
    c
}

/// Requests source `t` sends over the run: its rate integrated over the
/// timeline's rate changes.
fn requests_sent(cfg: &ClusterConfig, t: usize) -> f64 {
    let end = cfg.duration;
    let mut changes: Vec<(SimDuration, f64)> = cfg
        .timeline
        .iter()
        .filter_map(|a| match a.action {
            Action::SetRate { traffic, rate } if traffic == t && a.at < end => Some((a.at, rate)),
            _ => None,
        })
        .collect();
    changes.sort_by_key(|c| c.0);
    let mut total = 0.0;
    let mut from = SimDuration::ZERO;
    let mut rate = cfg.traffic[t].rate;
    for (at, r) in changes {
        total += rate * (at.as_secs_f64() - from.as_secs_f64());
        from = at;
        rate = r;
    }
    total + rate * (end.as_secs_f64() - from.as_secs_f64())
}

/// The highest rate source `t` reaches \[requests/s\].
fn peak_rate(cfg: &ClusterConfig, t: usize) -> f64 {
    cfg.timeline
        .iter()
        .filter_map(|a| match a.action {
            Action::SetRate { traffic, rate } if traffic == t => Some(rate),
            _ => None,
        })
        .fold(cfg.traffic[t].rate, f64::max)
}

/// Lookups `sent` requests make: one each, or with an application cache one
/// per client pod per [`CACHE_TTL_S`] at most.
fn lookups(cfg: &ClusterConfig, spec: &TrafficSpec, sent: f64) -> f64 {
    if spec.resolve.is_none() || cfg.dns.is_none() {
        return 0.0;
    }
    match spec.dns_cache {
        None => sent,
        Some(cache) => {
            let ttl = match cache {
                ClientDnsCache::RecordTtl => CACHE_TTL_S,
                ClientDnsCache::Fixed(d) => d.as_secs_f64().clamp(1e-3, CACHE_TTL_S),
            };
            let clients = spec
                .from
                .map_or(1.0, |w| f64::from(cfg.deployments[w].replicas.max(1)));
            sent.min(clients * cfg.duration.as_secs_f64() / ttl + clients)
        }
    }
}

/// Queries one lookup sends: when the cluster's names answer (typical), and
/// when none does and every attempt times out (worst).
fn queries_per_lookup(cfg: &ClusterConfig, spec: &TrafficSpec) -> (f64, f64) {
    let (Some(dns), Some(name)) = (&cfg.dns, &spec.resolve) else {
        return (0.0, 0.0);
    };
    let (namespace, workload) = match spec.from {
        Some(w) => (cfg.deployments[w].namespace.as_str(), w),
        None => ("default", usize::MAX),
    };
    let conf = dns.resolv_conf(namespace, workload);
    let types = match dns.qtypes {
        QueryTypes::AOnly => 1.0,
        QueryTypes::AAndAaaa => 2.0,
    };
    let typical = resolver::count_queries(name, &conf, dns.qtypes, |n| name_exists(cfg, n))
        .map_or(types, |c| f64::from(c.total()));
    let names = resolver::candidates(name, &conf).map_or(1, |c| c.len()) as f64;
    let worst = names * types * f64::from(conf.attempts.max(1));
    (typical, worst)
}

/// Queries an overloaded cluster DNS holds at once: at most what its
/// memory limits let in (each pod
/// [`sim_models::coredns::CoreDnsSpec::max_in_flight`], at the most pods
/// it runs), and about the queries offered beyond its CPU over the run
/// (`excess_queries`). Node-local instances, which have no memory limit,
/// are estimated by the second alone.
fn coredns_backlog(cfg: &ClusterConfig) -> f64 {
    let Some(dns) = &cfg.dns else {
        return 0.0;
    };
    let d = dns.workload;
    let scaled: Vec<u32> = cfg
        .timeline
        .iter()
        .filter_map(|a| match a.action {
            Action::Scale {
                deployment,
                replicas,
            } if deployment == d => Some(replicas),
            _ => None,
        })
        .collect();
    let initial = cfg.deployments[d].replicas;
    let hpa = dns.autoscaler.as_ref();
    let fewest = scaled
        .iter()
        .copied()
        .chain(hpa.map(|h| h.min_replicas))
        .fold(initial, u32::min);
    let most = scaled
        .iter()
        .copied()
        .chain(hpa.map(|h| h.max_replicas))
        .fold(initial, u32::max);
    let spec = &dns.coredns;
    let held = f64::from(most) * spec.max_in_flight() as f64;
    let kube_dns = held.min(excess_queries(cfg, f64::from(fewest) * spec.capacity_qps()));
    let node_local = dns.node_local.as_ref().map_or(0.0, |n| {
        excess_queries(cfg, cfg.nodes.len() as f64 * n.capacity_qps())
    });
    kube_dns + node_local
}

/// Queries the traffic offers beyond `capacity` \[queries/s\] over the run:
/// the integral of (offered - capacity)+ over the timeline's rate changes,
/// each lookup its typical queries, each request all its tries.
fn excess_queries(cfg: &ClusterConfig, capacity: f64) -> f64 {
    let end = cfg.duration.as_secs_f64();
    let per_request: Vec<f64> = cfg
        .traffic
        .iter()
        .map(|spec| {
            let lookup = if lookups(cfg, spec, 1.0) > 0.0 && spec.dns_cache.is_none() {
                queries_per_lookup(cfg, spec).0
            } else {
                0.0
            };
            lookup * (f64::from(spec.retries) + 1.0)
        })
        .collect();
    let mut rates: Vec<f64> = cfg.traffic.iter().map(|t| t.rate).collect();
    let mut changes: Vec<(f64, usize, f64)> = cfg
        .timeline
        .iter()
        .filter_map(|a| match a.action {
            Action::SetRate { traffic, rate } => Some((a.at.as_secs_f64(), traffic, rate)),
            _ => None,
        })
        .filter(|c| c.0 < end)
        .collect();
    changes.sort_by(|a, b| a.0.total_cmp(&b.0));
    let offered =
        |rates: &[f64]| -> f64 { rates.iter().zip(&per_request).map(|(r, q)| r * q).sum() };
    let mut total = 0.0;
    let mut from = 0.0;
    for (at, t, rate) in changes {
        total += (offered(&rates) - capacity).max(0.0) * (at - from);
        from = at;
        rates[t] = rate;
    }
    total + (offered(&rates) - capacity).max(0.0) * (end - from)
}

/// Pods the run starts with, and pods its scale-ups add (each workload up to
/// the largest replica count it reaches).
fn pods_created(cfg: &ClusterConfig) -> (f64, f64) {
    cfg.deployments
        .iter()
        .enumerate()
        .map(|(d, dep)| {
            let scaled = cfg.timeline.iter().filter_map(|a| match a.action {
                Action::Scale {
                    deployment,
                    replicas,
                } if deployment == d => Some(replicas),
                _ => None,
            });
            let most = scaled.fold(dep.replicas, u32::max);
            (f64::from(dep.replicas), f64::from(most - dep.replicas))
        })
        .fold((0.0, 0.0), |(i, a), (di, da)| (i + di, a + da))
}

/// What a run may take before knsim refuses it (without `--force`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Events of all runs together, at most.
    pub events: f64,
    /// Peak memory of the runs that run at once \[bytes\], at most.
    pub memory: f64,
}

/// The limits: an hour of events on this machine class, and 16 GiB.
pub const LIMITS: Limits = Limits {
    events: 3600.0 * EVENTS_PER_SECOND,
    memory: 16.0 * 1024.0 * 1024.0 * 1024.0,
};

/// The estimate of `runs` runs of each variant of `scenario` (read from
/// `file`, whose `text` locates the error), `threads` at a time; an error at
/// the field that drove it, with the estimate, when it is beyond `limits`.
pub fn guard(
    file: &str,
    text: &str,
    scenario: &Scenario,
    runs: usize,
    threads: usize,
    limits: Limits,
) -> Result<Total, InputError> {
    let mut total = Total::default();
    for cfg in scenario.variants.iter().map(|v| &v.config) {
        let e = Estimate::of(cfg);
        total.events += e.events * runs as f64;
        total.seconds += e.seconds() * runs as f64;
        total.events_bound += e.events_bound * runs as f64;
        if e.memory > total.memory_per_run {
            total.memory_per_run = e.memory;
            total.driver_memory = if e.samples * e.columns * 8.0 > e.memory / 2.0 {
                Driver::SampleEvery
            } else {
                Driver::Replicas
            };
        }
        if e.events * runs as f64 > total.largest_events {
            total.largest_events = e.events * runs as f64;
            total.driver = e.driver;
        }
    }
    total.memory = total.memory_per_run * threads.clamp(1, runs.max(1)) as f64;
    let at = |driver: Driver| Positions::of(text).find(&driver.path());
    if total.events_bound > limits.events {
        return Err(InputError::at(
            file,
            at(total.driver),
            format!(
                "this scenario is too big to run: about {} events ({} at most when every try \
                 fails and is retried), {} on one core; the limit is {} events",
                si(total.events),
                si(total.events_bound),
                human_seconds(total.seconds),
                si(limits.events),
            ),
            format!(
                "{}, or pass --force to run it anyway",
                total.driver.advice()
            ),
        ));
    }
    if total.memory > limits.memory {
        return Err(InputError::at(
            file,
            at(total.driver_memory),
            format!(
                "this scenario needs about {} of memory ({} per run); the limit is {}",
                bytes(total.memory),
                bytes(total.memory_per_run),
                bytes(limits.memory),
            ),
            format!(
                "{} (or run fewer seeds or threads at once), or pass --force to run it anyway",
                total.driver_memory.advice()
            ),
        ));
    }
    Ok(total)
}

/// The estimate of every run of a scenario together.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Total {
    /// Events when tries succeed.
    pub events: f64,
    /// Events at most.
    pub events_bound: f64,
    /// Wall time on one core \[s\].
    pub seconds: f64,
    /// Peak memory of the largest run \[bytes\].
    pub memory_per_run: f64,
    /// Peak memory with the runs that run at once \[bytes\].
    pub memory: f64,
    largest_events: f64,
    driver: Driver,
    driver_memory: Driver,
}

impl Total {
    /// Wall time to expect on one core \[s\].
    pub fn seconds(&self) -> f64 {
        self.seconds
    }

    /// `about 29.0 M events, 5.8 s on one core`.
    pub fn summary(&self) -> String {
        format!(
            "about {} events, {} on one core",
            si(self.events),
            human_seconds(self.seconds())
        )
    }
}

/// `1.2e9` as `1.2 G`.
fn si(x: f64) -> String {
    let (v, unit) = if x >= 1e12 {
        (x / 1e12, " T")
    } else if x >= 1e9 {
        (x / 1e9, " G")
    } else if x >= 1e6 {
        (x / 1e6, " M")
    } else if x >= 1e3 {
        (x / 1e3, " k")
    } else {
        (x, "")
    };
    format!("{v:.1}{unit}")
}

fn bytes(x: f64) -> String {
    let gib = 1024.0 * 1024.0 * 1024.0;
    if x >= gib {
        format!("{:.1} GiB", x / gib)
    } else {
        format!("{:.0} MiB", x / (1024.0 * 1024.0))
    }
}

fn human_seconds(s: f64) -> String {
    if s >= 86_400.0 {
        format!("{:.0} days", s / 86_400.0)
    } else if s >= 3600.0 {
        format!("{:.1} hours", s / 3600.0)
    } else if s >= 60.0 {
        format!("{:.0} minutes", s / 60.0)
    } else {
        format!("{s:.1} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sim_core::NullSink;
    use sim_models::cluster::{run, RunOutput};

    /// A run where the traffic was sent as written and every request
    /// succeeded at its first try.
    fn healthy(e: &Estimate, out: &RunOutput) -> bool {
        let sent: u64 = out.requests.iter().map(|r| r.sent).sum();
        let answered: u64 = out.requests.iter().map(|r| r.answered).sum();
        let retried: u64 = out.requests.iter().map(|r| r.retried).sum();
        retried == 0
            && answered as f64 >= 0.99 * sent as f64
            && (sent as f64 - e.requests).abs() <= 0.2 * e.requests + 10.0
    }

    /// The estimate against the run: never above the bound; within
    /// [`EVENTS_FACTOR`] of the events when tries succeed.
    fn holds(name: &str, cfg: &ClusterConfig) {
        let e = Estimate::of(cfg);
        let out = run(cfg, 1, &mut NullSink);
        let fired = out.events_fired as f64;
        assert!(
            fired <= e.events_bound,
            "{name}: {fired} events fired, bound {}",
            e.events_bound
        );
        if healthy(&e, &out) {
            assert!(
                fired <= e.events * EVENTS_FACTOR && fired >= e.events / EVENTS_FACTOR,
                "{name}: {fired} events fired, estimate {}",
                e.events
            );
        }
    }

    #[test]
    fn holds_for_the_small_bundled_replays() {
        for (name, text) in crate::bundled::BUNDLED {
            if crate::datapath::is_datapath(text) || crate::network_plan::is_network_plan(text) {
                continue;
            }
            let s = crate::parse(name, text).expect("bundled scenarios parse");
            for v in &s.variants {
                // The large replays run in the golden tests; a few million
                // events each here keeps the suite fast.
                if Estimate::of(&v.config).events_bound < 1.5e6 {
                    holds(&format!("{name}/{}", v.name), &v.config);
                }
            }
        }
    }

    #[test]
    fn bounds_a_failing_call_chain_through_proxies() {
        // db refuses nearly every try: the users' 3 tries, then 3 per
        // meshed hop, up to 27 at db per user request; the bound (which
        // `holds` checks against the events fired) multiplies them.
        let text = "name: c\nsummary: s\nduration: 20s\nsample_every: 5s\ncluster:\n  nodes: {count: 2, zones: [a]}\n  ipam: {mode: flat, pod_cidr: 10.0.0.0/24}\n\
                    workloads:\n  - {name: web, replicas: 2, startup: 1s, ready_after: 1s, concurrency: 64, service_time: 1ms}\n\
                    \x20 - {name: api, replicas: 2, startup: 1s, ready_after: 1s, concurrency: 64, service_time: 1ms}\n\
                    \x20 - {name: db, replicas: 1, startup: 1s, ready_after: 1s, concurrency: 1, service_time: 2s, queue_limit: 0}\n\
                    mesh: {mode: sidecar}\ntraffic:\n  - {name: users, to: web, rate: 20/s, timeout: 5s, retries: 2}\n\
                    \x20 - {name: web-api, from: web, to: api, in_handler: true, timeout: 3s}\n\
                    \x20 - {name: api-db, from: api, to: db, in_handler: true, timeout: 1s}\n";
        let s = crate::parse("c.yaml", text).unwrap();
        let cfg = &s.variants[0].config;
        let e = Estimate::of(cfg);
        let out = run(cfg, 1, &mut NullSink);
        let db = &out.requests[2];
        let tries = db.sent + db.retried + db.mesh_retried;
        assert!(tries as f64 > 10.0 * out.requests[0].sent as f64, "{db:?}");
        holds("chain", cfg);
        // The requests open at once: the users' 20/s x 1 s x 3, then x 3
        // at each hop (60 + 180 + 540 x 1 s), in the memory.
        assert!(e.memory >= 1.0e6 + 780.0 * BYTES_PER_OPEN_REQUEST);
    }

    /// A small cluster scenario: nodes, workloads, a client per workload,
    /// optionally DNS with a search list and retries, optionally kube-proxy.
    fn scenario(
        nodes: u32,
        replicas: &[u32],
        rate: u32,
        seconds: u32,
        dns: Option<(u8, u32)>,
        kube_proxy: bool,
    ) -> String {
        let mut s = format!(
            "name: gen\nsummary: generated\nduration: {seconds}s\nsample_every: 5s\n\
             cluster:\n  nodes: {{count: {nodes}, zones: [a, b]}}\n  ipam: {{mode: per-node, cluster_cidr: 10.244.0.0/16, node_mask: 24}}\n"
        );
        if kube_proxy {
            s += "network:\n  cni: calico\n  kube_proxy: {mode: iptables}\n";
        }
        if dns.is_some() {
            s += "dns:\n  workload: coredns\n  coredns: {cpu: \"2\"}\n";
        }
        s += "workloads:\n";
        if dns.is_some() {
            s += "  - {name: coredns, namespace: kube-system, port: 53, protocol: UDP, replicas: 2, startup: 1s, ready_after: 1s}\n";
        }
        for (i, r) in replicas.iter().enumerate() {
            s += &format!(
                "  - {{name: w{i}, replicas: {r}, startup: 1s, ready_after: 1s, concurrency: 8, service_time: 5ms}}\n"
            );
        }
        s += "traffic:\n";
        for i in 0..replicas.len() {
            match dns {
                Some((ndots, retries)) => {
                    s += &format!(
                        "  - {{name: t{i}, from: w0, to: w{i}, resolve: true, retries: {retries}, rate: {rate}/s, timeout: 2s}}\n"
                    );
                    if i == 0 {
                        s = s.replace(
                            "  - {name: w0,",
                            &format!("  - {{dns_config: {{options: [{{name: ndots, value: \"{ndots}\"}}]}}, name: w0,"),
                        );
                    }
                }
                None => {
                    s += &format!("  - {{name: t{i}, to: w{i}, rate: {rate}/s, timeout: 2s}}\n")
                }
            }
        }
        s
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 100, ..ProptestConfig::default() })]
        #[test]
        fn holds_for_generated_clusters(
            nodes in 1u32..12,
            replicas in proptest::collection::vec(0u32..12, 1..4),
            rate in 1u32..300,
            seconds in 5u32..60,
            dns in proptest::option::of((1u8..6, 0u32..3)),
            kube_proxy in any::<bool>(),
        ) {
            let text = scenario(nodes, &replicas, rate, seconds, dns, kube_proxy);
            let s = crate::parse("gen.yaml", &text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
            holds(&text, &s.variants[0].config);
        }
    }
}
