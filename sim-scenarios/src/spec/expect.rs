//! Assertions: the `expect` section.
//!
//! # Scope
//! Which figure an expectation reads (a time-series column, a request or
//! CoreDNS window statistic), with which selector, and its thresholds.
//!
//! # Validation
//! Every error names the field it is about (`file:line:column`) with a hint.

use super::{Common, Sections, Validator, R};
use crate::envelope::{tagged, Locate, Threshold};
use crate::locate::Seg;
use crate::path;
use crate::units::Duration;
use serde::Deserialize;
use sim_core::SimDuration;
use sim_models::cluster::{WindowSpec, RCODES, ZONES};

/// Metrics an expectation can check.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Pods Pending or ContainerCreating (`workload`).
    PodsPending,
    /// Pods whose container runs (`workload`).
    PodsRunning,
    /// Ready pods (`workload`).
    PodsReady,
    /// Pods no node fits (`workload`).
    PodsUnschedulable,
    /// Pods whose sandbox failed (`workload`).
    PodsSandboxFailed,
    /// Pod addresses in use.
    IpamAllocated,
    /// Pod addresses usable.
    IpamUsable,
    /// Errors / ended requests in a window (`service`).
    ErrorRate,
    /// Requests sent in a window (`service`).
    RequestsSent,
    /// Requests answered in time in a window (`service`).
    RequestsAnswered,
    /// Requests timed out in a window (`service`).
    RequestsTimedOut,
    /// Requests refused (no endpoint) in a window (`service`).
    RequestsRefused,
    /// Requests whose name lookup failed in a window (`service`).
    RequestsLookupFailed,
    /// Median latency of answered requests in a window (`service`).
    LatencyP50,
    /// 90th percentile latency (`service`).
    LatencyP90,
    /// 99th percentile latency (`service`).
    LatencyP99,
    /// Largest latency (`service`).
    LatencyMax,
    /// Median connect delay: first SYN to established (`service`).
    ConnectP50,
    /// 90th percentile connect delay (`service`).
    ConnectP90,
    /// 99th percentile connect delay (`service`).
    ConnectP99,
    /// Largest connect delay (`service`).
    ConnectMax,
    /// SYNs the client nodes' conntrack tables dropped (`service`).
    SynDrops,
    /// Requests that failed because every SYN was dropped (`service`).
    RequestsSynDropped,
    /// Largest share of answered requests one server pod served (`service`).
    TopPodShare,
    /// Server pods that answered at least one request (`service`).
    PodsServing,
    /// Entries in the fullest node's conntrack table (gauge, no workload).
    ConntrackEntries,
    /// Median first-packet round trip through the Service data path (`service`).
    FirstPacketP50,
    /// 90th percentile first-packet round trip (`service`).
    FirstPacketP90,
    /// 99th percentile first-packet round trip (`service`).
    FirstPacketP99,
    /// CPU cores busy with Service lookups (rule walks) for this traffic (`service`).
    LookupCpuCores,
    /// Connections sent to pods already deleted (`service`).
    RequestsStaleEndpoint,
    /// SYNs lost to the SNAT port race (`insert_failed`) (`service`).
    InsertFailed,
    /// Retries sent in a window (`service`).
    RequestsRetried,
    /// DNS queries per name lookup started in a window (`service`).
    DnsQueriesPerLookup,
    /// Median `getaddrinfo` time of lookups ending in a window (`service`).
    LookupLatencyP50,
    /// 99th percentile lookup time (`service`).
    LookupLatencyP99,
    /// Longest lookup (`service`).
    LookupLatencyMax,
    /// Queries per second reaching CoreDNS in a window; with `rcode`,
    /// replies with that rcode; `zone` narrows to cluster or external names.
    DnsQps,
    /// Cache hits over replies in a window (optionally one `zone`).
    DnsCacheHitRatio,
    /// CoreDNS restarts (OOM kills) so far (gauge).
    DnsRestarts,
    /// Queries inside CoreDNS pods (gauge).
    DnsInFlight,
    /// CPU used over the CoreDNS pods' CPU, per sample period (gauge, 0..1).
    DnsCpuUtilization,
    /// Memory of the largest running CoreDNS pod \[MiB\] (gauge).
    DnsMemoryMib,
    /// DNS queries lost in a window to the conntrack insert race of a
    /// same-socket A/AAAA pair (`insert_failed`).
    DnsInsertFailed,
    /// DNS queries a stale conntrack entry sent to a deleted CoreDNS pod in a window.
    DnsQueriesStale,
}

impl Metric {
    /// Whether the metric is a pod/IPAM gauge read from the time series.
    pub fn is_gauge(self) -> bool {
        matches!(
            self,
            Metric::PodsPending
                | Metric::PodsRunning
                | Metric::PodsReady
                | Metric::PodsUnschedulable
                | Metric::PodsSandboxFailed
                | Metric::IpamAllocated
                | Metric::IpamUsable
                | Metric::ConntrackEntries
                | Metric::DnsRestarts
                | Metric::DnsInFlight
                | Metric::DnsCpuUtilization
                | Metric::DnsMemoryMib
        )
    }
    /// Whether the metric is about one workload.
    pub fn needs_workload(self) -> bool {
        self.is_gauge() && self.cluster_column().is_none()
    }
    /// The time-series column of a cluster-wide gauge.
    pub fn cluster_column(self) -> Option<&'static str> {
        Some(match self {
            Metric::IpamAllocated => "ipam_allocated",
            Metric::IpamUsable => "ipam_usable",
            Metric::DnsRestarts => "dns_restarts",
            Metric::DnsInFlight => "dns_in_flight",
            Metric::DnsCpuUtilization => "dns_cpu_utilization",
            Metric::DnsMemoryMib => "dns_memory_mib_max",
            Metric::ConntrackEntries => "conntrack_entries_max",
            _ => return None,
        })
    }
    /// Whether the metric reads the CoreDNS window statistics.
    pub fn is_dns_window(self) -> bool {
        self.takes_zone() || matches!(self, Metric::DnsInsertFailed | Metric::DnsQueriesStale)
    }
    /// Whether `zone` and `rcode` narrow the metric.
    pub fn takes_zone(self) -> bool {
        matches!(self, Metric::DnsQps | Metric::DnsCacheHitRatio)
    }
    /// Whether the metric is a latency \[s\].
    pub fn is_latency(self) -> bool {
        matches!(
            self,
            Metric::LatencyP50
                | Metric::LatencyP90
                | Metric::LatencyP99
                | Metric::LatencyMax
                | Metric::ConnectP50
                | Metric::ConnectP90
                | Metric::ConnectP99
                | Metric::ConnectMax
                | Metric::FirstPacketP50
                | Metric::FirstPacketP90
                | Metric::FirstPacketP99
                | Metric::LookupLatencyP50
                | Metric::LookupLatencyP99
                | Metric::LookupLatencyMax
        )
    }
    /// Whether the metric needs a kube-proxy data path.
    pub fn needs_kube_proxy(self) -> bool {
        matches!(
            self,
            Metric::FirstPacketP50
                | Metric::FirstPacketP90
                | Metric::FirstPacketP99
                | Metric::LookupCpuCores
                | Metric::RequestsStaleEndpoint
        )
    }
    /// The name as written in files.
    pub fn name(self) -> &'static str {
        match self {
            Metric::PodsPending => "pods_pending",
            Metric::PodsRunning => "pods_running",
            Metric::PodsReady => "pods_ready",
            Metric::PodsUnschedulable => "pods_unschedulable",
            Metric::PodsSandboxFailed => "pods_sandbox_failed",
            Metric::IpamAllocated => "ipam_allocated",
            Metric::IpamUsable => "ipam_usable",
            Metric::ErrorRate => "error_rate",
            Metric::RequestsSent => "requests_sent",
            Metric::RequestsAnswered => "requests_answered",
            Metric::RequestsTimedOut => "requests_timed_out",
            Metric::RequestsRefused => "requests_refused",
            Metric::RequestsLookupFailed => "requests_lookup_failed",
            Metric::LatencyP50 => "latency_p50",
            Metric::LatencyP90 => "latency_p90",
            Metric::LatencyP99 => "latency_p99",
            Metric::LatencyMax => "latency_max",
            Metric::ConnectP50 => "connect_p50",
            Metric::ConnectP90 => "connect_p90",
            Metric::ConnectP99 => "connect_p99",
            Metric::ConnectMax => "connect_max",
            Metric::SynDrops => "syn_drops",
            Metric::RequestsSynDropped => "requests_syn_dropped",
            Metric::TopPodShare => "top_pod_share",
            Metric::PodsServing => "pods_serving",
            Metric::ConntrackEntries => "conntrack_entries",
            Metric::FirstPacketP50 => "first_packet_p50",
            Metric::FirstPacketP90 => "first_packet_p90",
            Metric::FirstPacketP99 => "first_packet_p99",
            Metric::LookupCpuCores => "lookup_cpu_cores",
            Metric::RequestsStaleEndpoint => "requests_stale_endpoint",
            Metric::InsertFailed => "insert_failed",
            Metric::RequestsRetried => "requests_retried",
            Metric::DnsQueriesPerLookup => "dns_queries_per_lookup",
            Metric::LookupLatencyP50 => "lookup_latency_p50",
            Metric::LookupLatencyP99 => "lookup_latency_p99",
            Metric::LookupLatencyMax => "lookup_latency_max",
            Metric::DnsQps => "dns_qps",
            Metric::DnsCacheHitRatio => "dns_cache_hit_ratio",
            Metric::DnsRestarts => "dns_restarts",
            Metric::DnsInFlight => "dns_in_flight",
            Metric::DnsCpuUtilization => "dns_cpu_utilization",
            Metric::DnsMemoryMib => "dns_memory_mib",
            Metric::DnsInsertFailed => "dns_insert_failed",
            Metric::DnsQueriesStale => "dns_queries_stale",
        }
    }
}

/// One assertion.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectFile {
    /// What to check.
    pub metric: Metric,
    /// Which workload (pod metrics).
    pub workload: Option<String>,
    /// Which Service (request metrics).
    pub service: Option<String>,
    /// Gauges: read at this time (the last sample at or before it).
    pub at: Option<Duration>,
    /// Request metrics: over this window; gauges: the maximum within it.
    pub window: Option<String>,
    /// `dns_qps`: only replies with this rcode (`NXDOMAIN`...).
    pub rcode: Option<String>,
    /// `dns_qps`, `dns_cache_hit_ratio`: only this zone (`cluster`, `external`).
    pub zone: Option<String>,
    /// Must equal.
    pub equals: Option<Threshold>,
    /// Must be greater.
    pub above: Option<Threshold>,
    /// Must be smaller.
    pub below: Option<Threshold>,
    /// Why this is expected (shown in reports).
    #[serde(default)]
    pub because: String,
}

/// Where a validated expectation reads its value.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// A time-series column at a time.
    GaugeAt {
        /// Column name in the time series.
        column: String,
        /// When.
        at: SimDuration,
    },
    /// A time-series column's maximum within a window.
    GaugeMax {
        /// Column name.
        column: String,
        /// Window index.
        window: usize,
    },
    /// A request statistic of one traffic source in one window.
    Requests {
        /// Window index.
        window: usize,
        /// Traffic source index.
        traffic: usize,
    },
    /// A CoreDNS statistic in one window.
    Dns {
        /// Window index.
        window: usize,
        /// Only this zone ([`ZONES`] index).
        zone: Option<usize>,
        /// Only replies with this rcode ([`RCODES`] index).
        rcode: Option<usize>,
    },
}

/// A validated expectation.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    /// What is checked, as the user wrote it (`pods_pending{workload=checkout} at 1h`).
    pub label: String,
    /// The metric.
    pub metric: Metric,
    /// Where the value comes from.
    pub probe: Probe,
    /// `(comparison, threshold)`: `==`, `>`, `<`.
    pub checks: Vec<(&'static str, f64)>,
    /// Why.
    pub because: String,
}

impl Validator<'_> {
    /// The assertions of one variant.
    pub(super) fn expectations(
        &self,
        sec: &Sections<'_>,
        common: &Common<'_>,
        workloads: &[&str],
        traffic_names: &[String],
        has_kube_proxy: bool,
    ) -> R<Vec<Expectation>> {
        let mut expectations = Vec::new();
        for (i, e) in sec.expect.iter().enumerate() {
            let p = [&sec.at[..], &path!["expect", i]].concat();
            let x = self.expectation(
                &p,
                e,
                workloads,
                traffic_names,
                common.windows,
                common.duration,
            )?;
            if x.metric.needs_kube_proxy() && !has_kube_proxy {
                return Err(self.err(
                    &[&p[..], &path!["metric"]].concat(),
                    format!(
                        "{} is measured in the Service data path, which needs network.kube_proxy",
                        x.metric.name()
                    ),
                    "add network: {cni: calico, kube_proxy: {mode: iptables}}",
                ));
            }
            expectations.push(x);
        }

        Ok(expectations)
    }

    pub(super) fn expectation(
        &self,
        p: &[Seg],
        e: &ExpectFile,
        workloads: &[&str],
        traffic_names: &[String],
        windows: &[WindowSpec],
        duration: SimDuration,
    ) -> R<Expectation> {
        let m = e.metric;
        let field = |n: &str| [p, &path![n]].concat();
        if !m.takes_zone() && (e.zone.is_some() || e.rcode.is_some()) {
            let key = if e.zone.is_some() { "zone" } else { "rcode" };
            return Err(self.err(
                &field(key),
                format!(
                    "`{key}` applies to dns_qps and dns_cache_hit_ratio, not {}",
                    m.name()
                ),
                "remove it",
            ));
        }
        let window = match &e.window {
            Some(w) => Some(windows.iter().position(|x| &x.name == w).ok_or_else(|| {
                let names: Vec<&str> = windows.iter().map(|x| x.name.as_str()).collect();
                self.err(
                    &field("window"),
                    format!("no window is called `{w}`"),
                    format!(
                        "windows defined under measure.windows: {}",
                        names.join(", ")
                    ),
                )
            })?),
            None => None,
        };
        let checks = self.comparisons(
            p,
            [e.equals, e.above, e.below],
            m.name(),
            m.is_latency(),
            "latency thresholds are durations, e.g. below: 2s",
        )?;
        let (probe, target) = if m.is_gauge() {
            let column_base = match m.cluster_column() {
                Some(c) => c.to_string(),
                None => {
                    let Some(w) = &e.workload else {
                        return Err(self.err(
                            p,
                            format!("{} needs `workload`", m.name()),
                            format!("workloads: {}", workloads.join(", ")),
                        ));
                    };
                    if !workloads.contains(&w.as_str()) {
                        return Err(self.err(
                            &field("workload"),
                            format!("`{w}` is not a workload of this variant"),
                            format!("workloads: {}", workloads.join(", ")),
                        ));
                    }
                    format!("{}{{deployment={w}}}", m.name())
                }
            };
            if e.service.is_some() {
                return Err(self.err(
                    &field("service"),
                    format!(
                        "{} is a pod metric; it takes `workload`, not `service`",
                        m.name()
                    ),
                    "use workload: NAME",
                ));
            }
            let probe = match (e.at, window) {
                (Some(at), None) if at.0 <= duration => Probe::GaugeAt {
                    column: column_base.clone(),
                    at: at.0,
                },
                (Some(at), None) => {
                    return Err(self.err(
                        &field("at"),
                        format!("at {} is after the run ends ({duration})", at.0),
                        "pick a time within the run",
                    ))
                }
                (None, Some(w)) => Probe::GaugeMax {
                    column: column_base.clone(),
                    window: w,
                },
                _ => {
                    return Err(self.err(
                        p,
                        format!(
                        "{} needs exactly one of `at` (value then) or `window` (maximum within)",
                        m.name()
                    ),
                        "e.g. at: 1h",
                    ))
                }
            };
            let when = match &probe {
                Probe::GaugeAt { at, .. } => format!("at {at}"),
                _ => format!("max in {}", e.window.clone().unwrap_or_default()),
            };
            (probe, format!("{column_base} {when}"))
        } else if m.is_dns_window() {
            if e.workload.is_some() || e.at.is_some() || e.service.is_some() {
                return Err(self.err(
                    p,
                    format!(
                        "{} is a CoreDNS metric over a window; it takes `window` (and `zone`, `rcode`)",
                        m.name()
                    ),
                    "e.g. metric: dns_qps, window: peak, rcode: NXDOMAIN",
                ));
            }
            let Some(w) = window else {
                return Err(self.err(
                    p,
                    format!("{} needs `window`", m.name()),
                    "name a window from measure.windows",
                ));
            };
            let zone = match &e.zone {
                None => None,
                Some(z) => Some(ZONES.iter().position(|x| x == z).ok_or_else(|| {
                    self.err(
                        &field("zone"),
                        format!("zone `{z}` is not cluster or external"),
                        "write zone: cluster (names under cluster.local) or zone: external",
                    )
                })?),
            };
            let rcode = match &e.rcode {
                None => None,
                Some(_) if m != Metric::DnsQps => {
                    return Err(self.err(
                        &field("rcode"),
                        "`rcode` applies to dns_qps",
                        "remove rcode, or use metric: dns_qps",
                    ))
                }
                Some(r) => Some(RCODES.iter().position(|x| x.to_string() == *r).ok_or_else(
                    || {
                        self.err(
                            &field("rcode"),
                            format!("`{r}` is not an rcode"),
                            "write NOERROR, NXDOMAIN, SERVFAIL, REFUSED, FORMERR or NOTIMP",
                        )
                    },
                )?),
            };
            let label = tagged(m.name(), &[("zone", &e.zone), ("rcode", &e.rcode)]);
            (
                Probe::Dns {
                    window: w,
                    zone,
                    rcode,
                },
                format!("{label} in {}", windows[w].name),
            )
        } else {
            if e.workload.is_some() || e.at.is_some() {
                return Err(self.err(
                    p,
                    format!(
                        "{} is a request metric over a window; it takes `service` and `window`",
                        m.name()
                    ),
                    "e.g. service: checkout, window: failover",
                ));
            }
            let Some(w) = window else {
                return Err(self.err(
                    p,
                    format!("{} needs `window`", m.name()),
                    "name a window from measure.windows",
                ));
            };
            let Some(s) = &e.service else {
                return Err(self.err(
                    p,
                    format!("{} needs `service`", m.name()),
                    format!("traffic sources: {}", traffic_names.join(", ")),
                ));
            };
            let Some(t) = traffic_names.iter().position(|n| n == s) else {
                return Err(self.err(
                    &field("service"),
                    format!("no traffic goes to a source called `{s}`"),
                    format!("traffic sources: {}", traffic_names.join(", ")),
                ));
            };
            (
                Probe::Requests {
                    window: w,
                    traffic: t,
                },
                format!("{}{{service={s}}} in {}", m.name(), windows[w].name),
            )
        };
        Ok(Expectation {
            label: target,
            metric: m,
            probe,
            checks,
            because: e.because.clone(),
        })
    }
}
