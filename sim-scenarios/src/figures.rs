//! The figures a run can be asked for: one table for cluster and
//! packet-level scenarios.
//!
//! # Scope
//! Every figure an `expect:` entry can name is one row of [`FIGURES`]: its
//! YAML name, its [`Kind`] and unit, the [`Selector`] it needs, the filters
//! that may narrow it, and how it is read from a run's output ([`Read`]);
//! the level it belongs to (cluster or packet) follows from how it is read.
//! The time-series columns figures and reports read are [`Column`]s named
//! here once. `expect:` parsing (names, `did you mean`), the checks, the
//! text report, the story and summary.json all read figures through these
//! rows, and show values with [`num`] and [`Unit`].
//!
//! # Parameters
//! None: the columns are those the sim-models cluster simulation registers
//! (`sim_models::cluster`, `Metrics::gauge`), the statistics those of its
//! `RunOutput` and of the packet-level `NetOutput`.
//!
//! # What it emits
//! Values in the units of each row (seconds for durations), or `None` when
//! the run has no value (no answered request, an empty window).
//!
//! # Validation
//! Reading a column a run does not have is an error ([`Missing`]), never 0.
//! The time-series CSV files carry the model's own column names; a test
//! runs a scenario with every section and checks that every column named
//! here is among them, so a column renamed in the model fails it.

use serde::de::{self, Deserializer, Visitor};
use sim_core::{SimDuration, SimTime};
use sim_models::cidr_plan::PlanFigures;
use sim_models::cluster::{DnsWindowStats, RequestTotals, RunOutput, WindowSpec, WindowStats};
use sim_models::datapath::network::{DropKind, FlowResult, NetOutput};
use std::fmt;

/// How a figure is shown in reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// A count.
    Count,
    /// A fraction shown as a percentage.
    Ratio,
    /// Seconds shown as a duration.
    Seconds,
}

impl Unit {
    /// The unit's name in CSV tables and digests.
    pub fn name(self) -> &'static str {
        match self {
            Unit::Count => "count",
            Unit::Ratio => "ratio",
            Unit::Seconds => "seconds",
        }
    }

    /// The unit called `name` ([`Unit::name`]).
    pub fn from_name(name: &str) -> Option<Unit> {
        [Unit::Count, Unit::Ratio, Unit::Seconds]
            .into_iter()
            .find(|u| u.name() == name)
    }
}

/// A number as people read it: whole numbers plainly, others to 4 significant digits.
pub fn num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        let digits = x.abs().log10().floor() as i32 + 1;
        let decimals = (4 - digits).clamp(0, 6) as usize;
        let s = format!("{x:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    }
}

impl Unit {
    /// `value` as people read it in this unit.
    pub fn show(self, value: f64) -> String {
        match self {
            Unit::Count => num(value),
            Unit::Ratio => format!("{:.1}%", value * 100.0),
            // Histograms store 0 as 1 ns.
            Unit::Seconds if value < 1e-6 => "0s".to_string(),
            Unit::Seconds => SimDuration::from_secs_f64(value).to_string(),
        }
    }
}

/// Something a run does not have that a report or story reads: a column
/// renamed in the model, or a figure read where it does not exist. It is
/// reported, never read as 0.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the run has no {0}")]
pub struct Missing(pub String);

/// The index of the time-series column `name` in `out`.
pub fn column_index(out: &RunOutput, name: &str) -> Result<usize, Missing> {
    out.metrics
        .column(name)
        .ok_or_else(|| Missing(format!("time series `{name}`")))
}

/// The largest sampled value of the time-series column `name`.
pub fn series_max(out: &RunOutput, name: &str) -> Result<f64, Missing> {
    let col = column_index(out, name)?;
    Ok(out
        .metrics
        .rows()
        .iter()
        .filter_map(|(_, r)| r.get(col).copied())
        .fold(0.0, f64::max))
}

/// The value of column `col` in the last sample at or before `t`.
pub fn value_at(out: &RunOutput, col: usize, t: SimTime) -> Option<f64> {
    out.metrics
        .rows()
        .iter()
        .rev()
        .find(|(at, _)| *at <= t)
        .and_then(|(_, r)| r.get(col).copied())
}

/// The largest value of column `col` sampled within `w`.
pub fn max_within(out: &RunOutput, col: usize, w: &WindowSpec) -> Option<f64> {
    out.metrics
        .rows()
        .iter()
        .filter(|(t, _)| w.contains(*t))
        .filter_map(|(_, row)| row.get(col).copied())
        .reduce(f64::max)
}

/// The scenarios a figure belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Cluster scenarios (`sim_models::cluster`).
    Cluster,
    /// Packet-level scenarios (`sim_models::datapath`).
    Packet,
    /// Network plans (`sim_models::cidr_plan`).
    Plan,
}

/// What a figure measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A number of things (pods, requests, packets).
    Count,
    /// A share, 0..1.
    Ratio,
    /// Per second of the window.
    Rate,
    /// An average per event.
    Mean,
    /// A duration percentile or maximum \[s\]; thresholds are durations.
    Duration,
    /// A size.
    Bytes,
}

/// What an expectation must name to read the figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selector {
    /// Nothing: the figure is about the whole run (a cluster gauge, all packets).
    None,
    /// `workload:` (the gauge of one workload's pods).
    Workload,
    /// `service:` (one traffic source).
    Service,
    /// `flow:` (one packet-level flow).
    Flow,
    /// `service:`, `path:` and `backend:` (one request path of a traffic
    /// source through an ingress controller, and a backend).
    Path,
}

/// An optional key that narrows a figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// `zone:` (`cluster` or `external` names).
    Zone,
    /// `rcode:` (replies with that rcode).
    Rcode,
    /// `reason:` (a substring of the error, or a drop kind).
    Reason,
}

/// A time-series column of the cluster simulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Column {
    /// Its name (for a workload's gauge, without the `{deployment=...}` tag).
    pub name: &'static str,
    /// One column per workload: `NAME{deployment=W}`.
    pub per_workload: bool,
}

impl Column {
    /// The column's name in the time series, for `workload` if it has one per workload.
    pub fn of(self, workload: &str) -> String {
        if self.per_workload {
            format!("{}{{deployment={workload}}}", self.name)
        } else {
            self.name.to_string()
        }
    }
}

const fn per_workload(name: &'static str) -> Column {
    Column {
        name,
        per_workload: true,
    }
}

const fn cluster_wide(name: &'static str) -> Column {
    Column {
        name,
        per_workload: false,
    }
}

/// The time-series columns figures, reports and stories read.
pub mod series {
    use super::Column;

    /// Pods the workload wants (its replicas).
    pub const PODS_DESIRED: Column = super::per_workload("pods_desired");
    /// Pods Pending or ContainerCreating.
    pub const PODS_PENDING: Column = super::per_workload("pods_pending");
    /// Pods no node fits.
    pub const PODS_UNSCHEDULABLE: Column = super::per_workload("pods_unschedulable");
    /// Pods whose sandbox failed (no IP address).
    pub const PODS_SANDBOX_FAILED: Column = super::per_workload("pods_sandbox_failed");
    /// Pods whose container runs.
    pub const PODS_RUNNING: Column = super::per_workload("pods_running");
    /// Ready pods.
    pub const PODS_READY: Column = super::per_workload("pods_ready");
    /// Pod addresses usable.
    pub const IPAM_USABLE: Column = super::cluster_wide("ipam_usable");
    /// Pod addresses in use.
    pub const IPAM_ALLOCATED: Column = super::cluster_wide("ipam_allocated");
    /// Entries in the fullest node's conntrack table.
    pub const CONNTRACK_ENTRIES_MAX: Column = super::cluster_wide("conntrack_entries_max");
    /// CoreDNS restarts so far.
    pub const DNS_RESTARTS: Column = super::cluster_wide("dns_restarts");
    /// Queries inside CoreDNS pods.
    pub const DNS_IN_FLIGHT: Column = super::cluster_wide("dns_in_flight");
    /// CoreDNS CPU used over its limit, per sample period.
    pub const DNS_CPU_UTILIZATION: Column = super::cluster_wide("dns_cpu_utilization");
    /// Memory of the largest running CoreDNS pod \[MiB\].
    pub const DNS_MEMORY_MIB_MAX: Column = super::cluster_wide("dns_memory_mib_max");
    /// Nodes in the cluster (runs with a node pool).
    pub const NODES: Column = super::cluster_wide("nodes");
    /// Node creations that failed so far (runs with a node pool).
    pub const NODE_CREATE_FAILURES: Column = super::cluster_wide("node_create_failures");
    /// Container restarts so far (runs with a sidecar lifecycle or a start dial).
    pub const CONTAINER_RESTARTS: Column = super::per_workload("container_restarts");
    /// Pods waiting out a CrashLoopBackOff now (same workloads).
    pub const PODS_CRASH_LOOP_BACKOFF: Column = super::per_workload("pods_crash_loop_backoff");
    /// The mesh's proxies' CPU over the sample period, in cores (runs with a mesh).
    pub const MESH_PROXY_CPU_CORES: Column = super::cluster_wide("mesh_proxy_cpu_cores");
    /// The mesh's proxies' memory, summed \[MiB\] (runs with a mesh).
    pub const MESH_PROXY_MEMORY_MIB: Column = super::cluster_wide("mesh_proxy_memory_mib");

    /// Every column named here.
    pub const COLUMNS: &[Column] = &[
        PODS_DESIRED,
        PODS_PENDING,
        PODS_UNSCHEDULABLE,
        PODS_SANDBOX_FAILED,
        PODS_RUNNING,
        PODS_READY,
        IPAM_USABLE,
        IPAM_ALLOCATED,
        CONNTRACK_ENTRIES_MAX,
        DNS_RESTARTS,
        DNS_IN_FLIGHT,
        DNS_CPU_UTILIZATION,
        DNS_MEMORY_MIB_MAX,
    ];
}

/// CoreDNS window statistics: (the window's, zones to count, rcode, window length \[s\]).
pub type DnsRead = fn(&DnsWindowStats, &[usize], Option<usize>, f64) -> Option<f64>;

/// How a figure is read from a run's output.
#[derive(Clone, Copy, Debug)]
pub enum Read {
    /// A time-series column: its value at a time or its maximum in a window.
    Series(Column),
    /// One traffic source's statistics in one window (and the window's length \[s\]).
    Window(fn(&WindowStats, f64) -> Option<f64>),
    /// CoreDNS statistics in one window.
    Dns(DnsRead),
    /// One flow's results (with the `reason` filter, if given).
    Flow(fn(&FlowResult, Option<&str>) -> Option<f64>),
    /// One request path's outcomes in one window, and how the backend an
    /// expectation names relates to the path's route.
    Path(fn(&RequestTotals, ByBackend) -> Option<f64>),
    /// The whole packet-level run (with the `reason` filter, if given).
    Packets(fn(&NetOutput, Option<&str>) -> Option<f64>),
    /// A checked network plan.
    Plan(fn(&PlanFigures) -> u64),
}

/// How the backend an expectation names relates to a request path's route
/// (routing is fixed when the run is built).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByBackend {
    /// The Service the path is routed to.
    Routed,
    /// Another Service.
    Other,
    /// `default`: the controller's default backend (404).
    NotFound,
}

/// One figure.
#[derive(Clone, Copy, Debug)]
pub struct Figure {
    /// Its name in `expect:` (`pods_pending`).
    pub name: &'static str,
    /// What it measures.
    pub kind: Kind,
    /// Its unit, for people (`pods`, `s`, `queries/s`).
    pub unit: &'static str,
    /// What an expectation must name.
    pub selector: Selector,
    /// Keys that may narrow it.
    pub filters: &'static [Filter],
    /// It is measured in the Service data path, which needs `network.kube_proxy`.
    pub needs_kube_proxy: bool,
    /// How it is read.
    pub read: Read,
}

impl PartialEq for Figure {
    fn eq(&self, other: &Figure) -> bool {
        self.name == other.name
    }
}

impl Figure {
    /// The scenarios it belongs to.
    pub const fn level(&self) -> Level {
        match self.read {
            Read::Series(_) | Read::Window(_) | Read::Dns(_) | Read::Path(_) => Level::Cluster,
            Read::Flow(_) | Read::Packets(_) => Level::Packet,
            Read::Plan(_) => Level::Plan,
        }
    }

    /// Whether thresholds and values are durations.
    pub fn is_time(&self) -> bool {
        self.kind == Kind::Duration
    }

    /// How reports show it.
    pub fn shown(&self) -> Unit {
        match self.kind {
            Kind::Duration => Unit::Seconds,
            Kind::Ratio => Unit::Ratio,
            _ => Unit::Count,
        }
    }

    /// The time-series column it reads, if it reads one.
    pub fn column(&self) -> Option<Column> {
        match self.read {
            Read::Series(c) => Some(c),
            _ => None,
        }
    }

    /// Whether `filter` may narrow it.
    pub fn takes(&self, filter: Filter) -> bool {
        self.filters.contains(&filter)
    }

    /// A value as checks show it: durations as durations (histograms store
    /// 0 as 1 ns), others as [`num`].
    pub fn show(&self, x: f64) -> String {
        if self.is_time() {
            Unit::Seconds.show(x)
        } else {
            num(x)
        }
    }

    /// The value of a [`Read::Flow`] figure for `flow`, or of a
    /// [`Read::Packets`] figure for the run, with the `reason` filter.
    pub fn packets(
        &self,
        out: &NetOutput,
        flow: Option<&FlowResult>,
        reason: Option<&str>,
    ) -> Option<f64> {
        match self.read {
            Read::Flow(f) => f(flow?, reason),
            Read::Packets(f) => f(out, reason),
            _ => None,
        }
    }

    /// The value of a [`Read::Plan`] figure for a checked plan.
    pub fn plan(&self, f: &PlanFigures) -> Option<f64> {
        match self.read {
            Read::Plan(read) => Some(read(f) as f64),
            _ => None,
        }
    }

    /// The value of a [`Read::Window`] figure for `ws`, over a window of `secs`.
    pub fn window(&self, ws: &WindowStats, secs: f64) -> Option<f64> {
        match self.read {
            Read::Window(f) => f(ws, secs),
            _ => None,
        }
    }

    /// The value of a [`Read::Path`] figure for one path's totals.
    pub fn path(&self, totals: &RequestTotals, by: ByBackend) -> Option<f64> {
        match self.read {
            Read::Path(f) => f(totals, by),
            _ => None,
        }
    }

    /// The value of a [`Read::Dns`] figure.
    pub fn dns(
        &self,
        d: &DnsWindowStats,
        zones: &[usize],
        rcode: Option<usize>,
        secs: f64,
    ) -> Option<f64> {
        match self.read {
            Read::Dns(f) => f(d, zones, rcode, secs),
            _ => None,
        }
    }
}

fn secs(d: SimDuration) -> f64 {
    d.as_secs_f64()
}

const fn window(
    name: &'static str,
    kind: Kind,
    unit: &'static str,
    read: fn(&WindowStats, f64) -> Option<f64>,
) -> Figure {
    Figure {
        name,
        kind,
        unit,
        selector: Selector::Service,
        filters: &[],
        needs_kube_proxy: false,
        read: Read::Window(read),
    }
}

const fn gauge(name: &'static str, unit: &'static str, column: Column) -> Figure {
    Figure {
        name,
        kind: Kind::Count,
        unit,
        selector: if column.per_workload {
            Selector::Workload
        } else {
            Selector::None
        },
        filters: &[],
        needs_kube_proxy: false,
        read: Read::Series(column),
    }
}

const fn flow(
    name: &'static str,
    kind: Kind,
    unit: &'static str,
    read: fn(&FlowResult, Option<&str>) -> Option<f64>,
) -> Figure {
    Figure {
        name,
        kind,
        unit,
        selector: Selector::Flow,
        filters: &[],
        needs_kube_proxy: false,
        read: Read::Flow(read),
    }
}

const fn dns(name: &'static str, kind: Kind, unit: &'static str, read: DnsRead) -> Figure {
    Figure {
        name,
        kind,
        unit,
        selector: Selector::None,
        filters: &[],
        needs_kube_proxy: false,
        read: Read::Dns(read),
    }
}

const fn with(mut f: Figure, filters: &'static [Filter]) -> Figure {
    f.filters = filters;
    f
}

const fn as_kind(mut f: Figure, kind: Kind) -> Figure {
    f.kind = kind;
    f
}

/// Pods Pending or ContainerCreating.
pub const PODS_PENDING: Figure = gauge("pods_pending", "pods", series::PODS_PENDING);
/// Pods whose container runs.
pub const PODS_RUNNING: Figure = gauge("pods_running", "pods", series::PODS_RUNNING);
/// Ready pods.
pub const PODS_READY: Figure = gauge("pods_ready", "pods", series::PODS_READY);
/// Pods no node fits.
pub const PODS_UNSCHEDULABLE: Figure =
    gauge("pods_unschedulable", "pods", series::PODS_UNSCHEDULABLE);
/// Pods whose sandbox failed.
pub const PODS_SANDBOX_FAILED: Figure =
    gauge("pods_sandbox_failed", "pods", series::PODS_SANDBOX_FAILED);
/// Pod addresses in use.
pub const IPAM_ALLOCATED: Figure = gauge("ipam_allocated", "addresses", series::IPAM_ALLOCATED);
/// Pod addresses usable.
pub const IPAM_USABLE: Figure = gauge("ipam_usable", "addresses", series::IPAM_USABLE);
/// Nodes in the cluster (runs with a node pool).
pub const NODES: Figure = gauge("nodes", "nodes", series::NODES);
/// Node creations that failed so far (runs with a node pool).
pub const NODE_CREATE_FAILURES: Figure = gauge(
    "node_create_failures",
    "nodes",
    series::NODE_CREATE_FAILURES,
);
/// Container restarts so far (workloads with a sidecar or a start dial).
pub const CONTAINER_RESTARTS: Figure =
    gauge("container_restarts", "restarts", series::CONTAINER_RESTARTS);
/// Pods waiting out a CrashLoopBackOff (workloads with a sidecar or a start dial).
pub const PODS_CRASH_LOOP_BACKOFF: Figure = gauge(
    "pods_crash_loop_backoff",
    "pods",
    series::PODS_CRASH_LOOP_BACKOFF,
);
/// Errors / ended requests in a window.
pub const ERROR_RATE: Figure = window("error_rate", Kind::Ratio, "1", |w, _| {
    Some(w.totals.error_rate())
});
/// Requests sent in a window.
pub const REQUESTS_SENT: Figure = window("requests_sent", Kind::Count, "requests", |w, _| {
    Some(w.totals.sent as f64)
});
/// Requests answered in time in a window.
pub const REQUESTS_ANSWERED: Figure =
    window("requests_answered", Kind::Count, "requests", |w, _| {
        Some(w.totals.answered as f64)
    });
/// Requests timed out in a window.
pub const REQUESTS_TIMED_OUT: Figure =
    window("requests_timed_out", Kind::Count, "requests", |w, _| {
        Some(w.totals.timed_out as f64)
    });
/// Requests refused (no endpoint) in a window.
pub const REQUESTS_REFUSED: Figure = window("requests_refused", Kind::Count, "requests", |w, _| {
    Some(w.totals.refused as f64)
});
/// Requests whose name lookup failed in a window.
pub const REQUESTS_LOOKUP_FAILED: Figure =
    window("requests_lookup_failed", Kind::Count, "requests", |w, _| {
        Some(w.totals.lookup_failed as f64)
    });
/// Median latency of answered requests in a window.
pub const LATENCY_P50: Figure = window("latency_p50", Kind::Duration, "s", |w, _| {
    Some(secs(w.latency.quantile(0.5)))
});
/// 90th percentile latency.
pub const LATENCY_P90: Figure = window("latency_p90", Kind::Duration, "s", |w, _| {
    Some(secs(w.latency.quantile(0.9)))
});
/// 99th percentile latency.
pub const LATENCY_P99: Figure = window("latency_p99", Kind::Duration, "s", |w, _| {
    Some(secs(w.latency.quantile(0.99)))
});
/// Largest latency.
pub const LATENCY_MAX: Figure = window("latency_max", Kind::Duration, "s", |w, _| {
    Some(secs(w.latency.max()))
});
/// Median connect delay: first SYN to established.
pub const CONNECT_P50: Figure = window("connect_p50", Kind::Duration, "s", |w, _| {
    Some(secs(w.connect_delay.quantile(0.5)))
});
/// 90th percentile connect delay.
pub const CONNECT_P90: Figure = window("connect_p90", Kind::Duration, "s", |w, _| {
    Some(secs(w.connect_delay.quantile(0.9)))
});
/// 99th percentile connect delay.
pub const CONNECT_P99: Figure = window("connect_p99", Kind::Duration, "s", |w, _| {
    Some(secs(w.connect_delay.quantile(0.99)))
});
/// Largest connect delay.
pub const CONNECT_MAX: Figure = window("connect_max", Kind::Duration, "s", |w, _| {
    Some(secs(w.connect_delay.max()))
});
/// SYNs the client nodes' conntrack tables dropped.
pub const SYN_DROPS: Figure = window("syn_drops", Kind::Count, "SYNs", |w, _| {
    Some(w.syn_drops as f64)
});
/// Requests that failed because every SYN was dropped.
pub const REQUESTS_SYN_DROPPED: Figure =
    window("requests_syn_dropped", Kind::Count, "requests", |w, _| {
        Some(w.totals.syn_dropped as f64)
    });
/// Requests the ingress controller's default backend answered 404 in a window.
pub const REQUESTS_NOT_FOUND: Figure =
    window("requests_not_found", Kind::Count, "requests", |w, _| {
        Some(w.totals.not_found as f64)
    });
/// Of one request path's requests that ended in a window, the share the
/// named backend answered (`default`: the controller's 404).
pub const ANSWERED_BY: Figure = Figure {
    name: "answered_by",
    kind: Kind::Ratio,
    unit: "1",
    selector: Selector::Path,
    filters: &[],
    needs_kube_proxy: false,
    read: Read::Path(|t, by| {
        let ended = t.answered + t.errors();
        let hits = match by {
            ByBackend::Routed => t.answered,
            ByBackend::Other => 0,
            ByBackend::NotFound => t.not_found,
        };
        (ended > 0).then(|| hits as f64 / ended as f64)
    }),
};
/// Largest share of answered requests one server pod served.
pub const TOP_POD_SHARE: Figure = window("top_pod_share", Kind::Ratio, "1", |w, _| {
    Some(w.top_pod_share())
});
/// Server pods that answered at least one request.
pub const PODS_SERVING: Figure = window("pods_serving", Kind::Count, "pods", |w, _| {
    Some(w.pods_serving() as f64)
});
/// Entries in the fullest node's conntrack table.
pub const CONNTRACK_ENTRIES: Figure = gauge(
    "conntrack_entries",
    "entries",
    series::CONNTRACK_ENTRIES_MAX,
);
/// Median first-packet round trip through the Service data path.
pub const FIRST_PACKET_P50: Figure =
    kube_proxy(window("first_packet_p50", Kind::Duration, "s", |w, _| {
        Some(secs(w.first_packet.quantile(0.5)))
    }));
/// 90th percentile first-packet round trip.
pub const FIRST_PACKET_P90: Figure =
    kube_proxy(window("first_packet_p90", Kind::Duration, "s", |w, _| {
        Some(secs(w.first_packet.quantile(0.9)))
    }));
/// 99th percentile first-packet round trip.
pub const FIRST_PACKET_P99: Figure =
    kube_proxy(window("first_packet_p99", Kind::Duration, "s", |w, _| {
        Some(secs(w.first_packet.quantile(0.99)))
    }));
/// CPU cores busy with Service lookups (rule walks) for this traffic.
pub const LOOKUP_CPU_CORES: Figure = kube_proxy(window(
    "lookup_cpu_cores",
    Kind::Rate,
    "cores",
    |w, span| Some(secs(w.lookup_cpu) / span),
));
/// Connections sent to pods already deleted.
pub const REQUESTS_STALE_ENDPOINT: Figure = kube_proxy(window(
    "requests_stale_endpoint",
    Kind::Count,
    "requests",
    |w, _| Some(w.totals.stale as f64),
));
/// Requests whose SYN a security group in front of the node dropped.
pub const REQUESTS_EDGE_DROPPED: Figure =
    window("requests_edge_dropped", Kind::Count, "requests", |w, _| {
        Some(w.totals.edge_dropped as f64)
    });
/// Requests to a node address the NodePort is not open on (RST).
pub const REQUESTS_PORT_CLOSED: Figure =
    window("requests_port_closed", Kind::Count, "requests", |w, _| {
        Some(w.totals.port_closed as f64)
    });
/// Requests dropped by a `Local` traffic policy on a node without endpoints.
pub const REQUESTS_NO_LOCAL_ENDPOINT: Figure = window(
    "requests_no_local_endpoint",
    Kind::Count,
    "requests",
    |w, _| Some(w.totals.no_local_endpoint as f64),
);
/// NodePort connections SNATed to the entry node (endpoint elsewhere).
pub const NODE_PORT_SNAT: Figure = window("node_port_snat", Kind::Count, "connections", |w, _| {
    Some(w.node_snat as f64)
});
/// Public node addresses the source's NodePort is open on.
pub const NODE_PORT_OPEN_PUBLIC: Figure =
    window("node_port_open_public", Kind::Count, "addresses", |w, _| {
        Some(f64::from(w.node_port_open_public))
    });
/// SYNs lost to the SNAT port race (insert_failed).
pub const INSERT_FAILED: Figure = window("insert_failed", Kind::Count, "SYNs", |w, _| {
    Some(w.insert_failed as f64)
});
/// Egress requests a NAT gateway dropped (down, or no route) in a window.
pub const REQUESTS_NAT_DROPPED: Figure =
    window("requests_nat_dropped", Kind::Count, "requests", |w, _| {
        Some(w.totals.nat_dropped as f64)
    });
/// Egress connections the NAT gateway had no source port for
/// (`ErrorPortAllocation`) in a window.
pub const REQUESTS_NAT_PORT_ALLOCATION: Figure = window(
    "requests_nat_port_allocation",
    Kind::Count,
    "requests",
    |w, _| Some(w.totals.nat_port_allocation as f64),
);
/// Egress requests reset by the NAT gateway after 350 s idle in a window.
pub const REQUESTS_NAT_IDLE_RESET: Figure = window(
    "requests_nat_idle_reset",
    Kind::Count,
    "requests",
    |w, _| Some(w.totals.nat_idle_reset as f64),
);
/// A cloud load balancer's `502 Bad Gateway` answers in a window.
pub const REQUESTS_LB_502: Figure = window("requests_lb_502", Kind::Count, "requests", |w, _| {
    Some(w.totals.lb_502 as f64)
});
/// A cloud load balancer's `503 Service Unavailable` answers in a window.
pub const REQUESTS_LB_503: Figure = window("requests_lb_503", Kind::Count, "requests", |w, _| {
    Some(w.totals.lb_503 as f64)
});
/// A cloud load balancer's `504 Gateway Timeout` answers in a window.
pub const REQUESTS_LB_504: Figure = window("requests_lb_504", Kind::Count, "requests", |w, _| {
    Some(w.totals.lb_504 as f64)
});
/// Connections an NLB passed a target's reset through, in a window.
pub const REQUESTS_LB_RESET: Figure =
    window("requests_lb_reset", Kind::Count, "requests", |w, _| {
        Some(w.totals.lb_reset as f64)
    });
/// Requests whose connection a restarting sidecar proxy reset (or refused
/// before the new proxy listened), in a window.
pub const REQUESTS_PROXY_RESET: Figure =
    window("requests_proxy_reset", Kind::Count, "requests", |w, _| {
        Some(w.totals.proxy_reset as f64)
    });
/// Connections no NLB target took (the client timed out), in a window.
pub const REQUESTS_LB_CONNECT_TIMEOUT: Figure = window(
    "requests_lb_connect_timeout",
    Kind::Count,
    "requests",
    |w, _| Some(w.totals.lb_connect_timeout as f64),
);
/// Retries the source's mesh proxies sent in a window (one per retry).
pub const REQUESTS_MESH_RETRIED: Figure =
    window("requests_mesh_retried", Kind::Count, "requests", |w, _| {
        Some(w.totals.mesh_retried as f64)
    });
/// Requests a mesh proxy's circuit breaker answered `503 UO`, in a window.
pub const REQUESTS_MESH_OVERFLOW: Figure =
    window("requests_mesh_overflow", Kind::Count, "requests", |w, _| {
        Some(w.totals.mesh_overflow as f64)
    });
/// Requests a mesh proxy's timeout answered `504 UT`, in a window.
pub const REQUESTS_MESH_TIMEOUT: Figure =
    window("requests_mesh_timeout", Kind::Count, "requests", |w, _| {
        Some(w.totals.mesh_timeout as f64)
    });
/// Hosts the source's mesh proxies ejected (outlier detection), in a window.
pub const MESH_EJECTIONS: Figure = window("mesh_ejections", Kind::Count, "hosts", |w, _| {
    Some(w.totals.mesh_ejections as f64)
});
/// Requests answered 503 because the server's call to its dependency
/// failed, in a window.
pub const REQUESTS_DEPENDENCY_FAILED: Figure = window(
    "requests_dependency_failed",
    Kind::Count,
    "requests",
    |w, _| Some(w.totals.dependency_failed as f64),
);
/// Tries that left the source's clients (first tries, application retries
/// and mesh retries) per request sent, in a window: the hop's retry
/// amplification.
pub const TRIES_PER_REQUEST: Figure = window("tries_per_request", Kind::Mean, "tries", |w, _| {
    let t = &w.totals;
    (t.sent > 0).then(|| (t.sent + t.retried + t.mesh_retried) as f64 / t.sent as f64)
});
/// Tries that left the source's clients (first tries, application retries
/// and mesh retries) per request its call chain's head sources sent, in a
/// window: what one user request turns into at this hop, every hop's
/// retries multiplied (the source's own `tries_per_request` at the head).
pub const TRIES_PER_USER_REQUEST: Figure =
    window("tries_per_user_request", Kind::Mean, "tries", |w, _| {
        let t = &w.totals;
        (w.head_sent > 0).then(|| (t.sent + t.retried + t.mesh_retried) as f64 / w.head_sent as f64)
    });
/// A window's bytes between zones, when the run counts them
/// (`network.billing`); `None` otherwise.
fn zone_bytes(w: &WindowStats) -> Option<&sim_models::transfer_cost::ZoneBytes> {
    (w.zone_bytes.zones() > 0).then_some(&w.zone_bytes)
}
/// Seconds in the month of `cross_zone_cost_per_month` (30 days).
pub const MONTH_SECS: f64 = 30.0 * 86_400.0;
/// Pod-to-pod bytes (requests and responses) the source moved in a window,
/// within and between zones.
pub const ZONE_BYTES: Figure = window("zone_bytes", Kind::Bytes, "B", |w, _| {
    zone_bytes(w).map(|z| z.total() as f64)
});
/// Of those, the bytes that crossed a zone boundary.
pub const CROSS_ZONE_BYTES: Figure = window("cross_zone_bytes", Kind::Bytes, "B", |w, _| {
    zone_bytes(w).map(|z| z.crossing() as f64)
});
/// The share of the source's bytes that crossed a zone boundary.
pub const CROSS_ZONE_SHARE: Figure = window("cross_zone_share", Kind::Ratio, "share", |w, _| {
    zone_bytes(w)
        .filter(|z| z.total() > 0)
        .map(|z| z.crossing_share())
});
/// What the crossing bytes cost in the window under the run's billing.
pub const CROSS_ZONE_COST: Figure = window("cross_zone_cost", Kind::Count, "USD", |w, _| {
    zone_bytes(w).map(|_| w.zone_cost)
});
/// The window's crossing cost at the same rate for 30 days.
pub const CROSS_ZONE_COST_PER_MONTH: Figure = window(
    "cross_zone_cost_per_month",
    Kind::Count,
    "USD/month",
    |w, secs| {
        zone_bytes(w)
            .filter(|_| secs > 0.0)
            .map(|_| w.zone_cost / secs * MONTH_SECS)
    },
);
/// The figures counted only with `network.billing`.
pub const ZONE_FIGURES: &[Figure] = &[
    ZONE_BYTES,
    CROSS_ZONE_BYTES,
    CROSS_ZONE_SHARE,
    CROSS_ZONE_COST,
    CROSS_ZONE_COST_PER_MONTH,
];
/// Retries sent in a window.
pub const REQUESTS_RETRIED: Figure = window("requests_retried", Kind::Count, "requests", |w, _| {
    Some(w.totals.retried as f64)
});
/// DNS queries per name lookup started in a window.
pub const DNS_QUERIES_PER_LOOKUP: Figure =
    window("dns_queries_per_lookup", Kind::Mean, "queries", |w, _| {
        (w.lookups > 0).then(|| w.dns_queries as f64 / w.lookups as f64)
    });
/// Median getaddrinfo time of lookups ending in a window.
pub const LOOKUP_LATENCY_P50: Figure = window("lookup_latency_p50", Kind::Duration, "s", |w, _| {
    Some(secs(w.lookup_latency.quantile(0.5)))
});
/// 99th percentile lookup time.
pub const LOOKUP_LATENCY_P99: Figure = window("lookup_latency_p99", Kind::Duration, "s", |w, _| {
    Some(secs(w.lookup_latency.quantile(0.99)))
});
/// Longest lookup.
pub const LOOKUP_LATENCY_MAX: Figure = window("lookup_latency_max", Kind::Duration, "s", |w, _| {
    Some(secs(w.lookup_latency.max()))
});
/// Queries per second reaching CoreDNS in a window; with `rcode`, replies with that rcode.
pub const DNS_QPS: Figure = with(
    dns("dns_qps", Kind::Rate, "queries/s", dns_qps),
    &[Filter::Zone, Filter::Rcode],
);
/// Cache hits over replies in a window.
pub const DNS_CACHE_HIT_RATIO: Figure = with(
    dns("dns_cache_hit_ratio", Kind::Ratio, "1", dns_cache_hit_ratio),
    &[Filter::Zone],
);
/// CoreDNS restarts (OOM kills) so far.
pub const DNS_RESTARTS: Figure = gauge("dns_restarts", "restarts", series::DNS_RESTARTS);
/// Queries inside CoreDNS pods.
pub const DNS_IN_FLIGHT: Figure = gauge("dns_in_flight", "queries", series::DNS_IN_FLIGHT);
/// CPU used over the CoreDNS pods' CPU, per sample period.
pub const DNS_CPU_UTILIZATION: Figure = as_kind(
    gauge("dns_cpu_utilization", "1", series::DNS_CPU_UTILIZATION),
    Kind::Ratio,
);
/// Memory of the largest running CoreDNS pod.
pub const DNS_MEMORY_MIB: Figure = as_kind(
    gauge("dns_memory_mib", "MiB", series::DNS_MEMORY_MIB_MAX),
    Kind::Bytes,
);
/// The mesh's proxies' CPU in cores (each sample period's).
pub const MESH_PROXY_CPU_CORES: Figure = gauge(
    "mesh_proxy_cpu_cores",
    "cores",
    series::MESH_PROXY_CPU_CORES,
);
/// The mesh's proxies' memory, summed over the proxies.
pub const MESH_PROXY_MEMORY_MIB: Figure = gauge(
    "mesh_proxy_memory_mib",
    "MiB",
    series::MESH_PROXY_MEMORY_MIB,
);
/// DNS queries lost in a window to the conntrack insert race of a same-socket A/AAAA pair.
pub const DNS_INSERT_FAILED: Figure =
    dns("dns_insert_failed", Kind::Count, "queries", |d, _, _, _| {
        Some(d.insert_failed as f64)
    });
/// DNS queries a stale conntrack entry sent to a deleted CoreDNS pod in a window.
pub const DNS_QUERIES_STALE: Figure =
    dns("dns_queries_stale", Kind::Count, "queries", |d, _, _, _| {
        Some(d.stale as f64)
    });
/// Attempts started.
pub const ATTEMPTS: Figure = flow("attempts", Kind::Count, "attempts", |f, _| {
    Some(f.attempts as f64)
});
/// Attempts that completed.
pub const SUCCEEDED: Figure = flow("succeeded", Kind::Count, "attempts", |f, _| {
    Some(f.succeeded as f64)
});
/// Attempts that failed (`reason`: a substring of the error).
pub const FAILED: Figure = with(
    flow("failed", Kind::Count, "attempts", failed),
    &[Filter::Reason],
);
/// Attempts still running at the end.
pub const FLOW_PENDING: Figure = flow("pending", Kind::Count, "attempts", |f, _| {
    Some(f.pending as f64)
});
/// Succeeded / attempts.
pub const SUCCESS_RATE: Figure = flow("success_rate", Kind::Ratio, "1", |f, _| {
    (f.attempts > 0).then(|| f.succeeded as f64 / f.attempts as f64)
});
/// Median completion time.
pub const TIME_P50: Figure = flow("time_p50", Kind::Duration, "s", |f, _| {
    (f.times.count() > 0).then(|| secs(f.times.quantile(0.5)))
});
/// Longest completion time.
pub const TIME_MAX: Figure = flow("time_max", Kind::Duration, "s", |f, _| {
    (f.times.count() > 0).then(|| secs(f.times.max()))
});
/// Largest payload size all of whose attempts succeeded.
pub const LARGEST_OK_SIZE: Figure = flow("largest_ok_size", Kind::Bytes, "B", |f, _| {
    f.by_size
        .iter()
        .filter(|(_, (_, bad))| *bad == 0)
        .map(|(s, _)| f64::from(*s))
        .reduce(f64::max)
});
/// Smallest payload size some attempt of which failed.
pub const SMALLEST_FAILED_SIZE: Figure = flow("smallest_failed_size", Kind::Bytes, "B", |f, _| {
    f.by_size
        .iter()
        .filter(|(_, (_, bad))| *bad > 0)
        .map(|(s, _)| f64::from(*s))
        .reduce(f64::min)
});
/// Packets dropped (`reason`: a drop kind).
pub const PACKETS_DROPPED: Figure = with(
    packets("packets_dropped", Kind::Count, "packets", packets_dropped),
    &[Filter::Reason],
);
/// Packets delivered.
pub const PACKETS_DELIVERED: Figure =
    packets("packets_delivered", Kind::Count, "packets", |o, _| {
        Some(o.packets.delivered as f64)
    });
/// The pod MTU in force.
pub const POD_MTU: Figure = packets("pod_mtu", Kind::Bytes, "B", |o, _| {
    Some(f64::from(o.pod_mtu))
});

/// Median TCP connection setup, connect() to ESTABLISHED.
pub const CONNECT_SETUP_P50: Figure = flow("connect_p50", Kind::Duration, "s", |f, _| {
    (f.connect.count() > 0).then(|| secs(f.connect.quantile(0.5)))
});
/// 99th percentile of connection setup.
pub const CONNECT_SETUP_P99: Figure = flow("connect_p99", Kind::Duration, "s", |f, _| {
    (f.connect.count() > 0).then(|| secs(f.connect.quantile(0.99)))
});
/// Median first-packet round trip, SYN to SYN-ACK.
pub const FIRST_RTT_P50: Figure = flow("first_rtt_p50", Kind::Duration, "s", |f, _| {
    (f.first_rtt.count() > 0).then(|| secs(f.first_rtt.quantile(0.5)))
});
/// 99th percentile of the first-packet round trip.
pub const FIRST_RTT_P99: Figure = flow("first_rtt_p99", Kind::Duration, "s", |f, _| {
    (f.first_rtt.count() > 0).then(|| secs(f.first_rtt.quantile(0.99)))
});
/// Service lookup CPU over the run, all first packets.
pub const LOOKUP_CPU: Figure = flow("lookup_cpu", Kind::Duration, "s", |f, _| {
    Some(secs(f.lookups.sum()))
});
/// 99th percentile of the lookup CPU per first packet.
pub const LOOKUP_P99: Figure = flow("lookup_p99", Kind::Duration, "s", |f, _| {
    (f.lookups.count() > 0).then(|| secs(f.lookups.quantile(0.99)))
});
/// Mean one-way latency of established-connection packets.
pub const PACKET_LATENCY: Figure = flow("packet_latency", Kind::Duration, "s", |f, _| {
    (f.established.count > 0).then(|| secs(f.established.mean()))
});
/// Payload bytes delivered to the flow's stacks.
pub const BYTES_DELIVERED: Figure = flow("bytes_delivered", Kind::Bytes, "B", |f, _| {
    Some(f.bytes as f64)
});
/// Server pods that got first packets.
pub const ENDPOINTS_USED: Figure = flow("endpoints_used", Kind::Count, "pods", |f, _| {
    Some(f.endpoints.len() as f64)
});
/// Largest share of first packets one pod got.
pub const ENDPOINT_SHARE_MAX: Figure = flow("endpoint_share_max", Kind::Ratio, "1", |f, _| {
    let total: u64 = f.endpoints.values().sum();
    (total > 0).then(|| f.endpoints.values().copied().max().unwrap_or(0) as f64 / total as f64)
});

const fn plan(name: &'static str, unit: &'static str, read: fn(&PlanFigures) -> u64) -> Figure {
    Figure {
        name,
        kind: Kind::Count,
        unit,
        selector: Selector::None,
        filters: &[],
        needs_kube_proxy: false,
        read: Read::Plan(read),
    }
}

/// Overlapping pairs of a plan that break something (peers over each other not counted).
pub const PLAN_OVERLAPS: Figure = plan("overlaps", "pairs", |f| f.overlaps);
/// Peers that overlap each other.
pub const PLAN_PEER_OVERLAPS: Figure = plan("peer_overlaps", "pairs", |f| f.peer_overlaps);
/// Peered VPCs refused.
pub const PLAN_PEERING_REFUSED: Figure = plan("peering_refused", "peerings", |f| f.peering_refused);
/// VPN addresses the cluster's pods cannot reach.
pub const PLAN_VPN_CUT_OFF: Figure = plan("vpn_addresses_cut_off", "addresses", |f| {
    f.vpn_addresses_cut_off
});
/// Peer addresses the cluster's pods cannot reach.
pub const PLAN_CUT_OFF: Figure = plan("addresses_cut_off", "addresses", |f| f.addresses_cut_off);
/// Node blocks lost to the Service range.
pub const PLAN_NODE_BLOCKS_LOST: Figure =
    plan("node_blocks_lost", "blocks", |f| f.node_blocks_lost);
/// Nodes the pod ranges hold.
pub const PLAN_MAX_NODES: Figure = plan("max_nodes", "nodes", |f| f.max_nodes);
/// Subnets AWS refuses.
pub const PLAN_SUBNETS_REFUSED: Figure = plan("subnets_refused", "subnets", |f| f.subnets_refused);
/// VPC blocks AWS refuses.
pub const PLAN_VPC_BLOCKS_REFUSED: Figure =
    plan("vpc_blocks_refused", "blocks", |f| f.vpc_blocks_refused);
/// Addresses in the pod ranges.
pub const PLAN_POD_ADDRESSES: Figure = plan("pod_addresses", "addresses", |f| f.pod_addresses);
/// Addresses in the Service range.
pub const PLAN_SERVICE_ADDRESSES: Figure =
    plan("service_addresses", "addresses", |f| f.service_addresses);
/// Usable addresses of the cluster VPC's subnets.
pub const PLAN_SUBNET_ADDRESSES: Figure =
    plan("subnet_addresses", "addresses", |f| f.subnet_addresses);

/// Every figure `expect:` can name, cluster figures first; within a level,
/// in the order errors list them.
pub const FIGURES: &[Figure] = &[
    PODS_PENDING,
    PODS_RUNNING,
    PODS_READY,
    PODS_UNSCHEDULABLE,
    PODS_SANDBOX_FAILED,
    IPAM_ALLOCATED,
    IPAM_USABLE,
    NODES,
    NODE_CREATE_FAILURES,
    CONTAINER_RESTARTS,
    PODS_CRASH_LOOP_BACKOFF,
    ERROR_RATE,
    REQUESTS_SENT,
    REQUESTS_ANSWERED,
    REQUESTS_TIMED_OUT,
    REQUESTS_REFUSED,
    REQUESTS_LOOKUP_FAILED,
    LATENCY_P50,
    LATENCY_P90,
    LATENCY_P99,
    LATENCY_MAX,
    CONNECT_P50,
    CONNECT_P90,
    CONNECT_P99,
    CONNECT_MAX,
    SYN_DROPS,
    REQUESTS_SYN_DROPPED,
    TOP_POD_SHARE,
    PODS_SERVING,
    CONNTRACK_ENTRIES,
    FIRST_PACKET_P50,
    FIRST_PACKET_P90,
    FIRST_PACKET_P99,
    LOOKUP_CPU_CORES,
    REQUESTS_STALE_ENDPOINT,
    INSERT_FAILED,
    REQUESTS_RETRIED,
    REQUESTS_EDGE_DROPPED,
    REQUESTS_PORT_CLOSED,
    REQUESTS_NO_LOCAL_ENDPOINT,
    NODE_PORT_SNAT,
    NODE_PORT_OPEN_PUBLIC,
    REQUESTS_NAT_DROPPED,
    REQUESTS_NAT_PORT_ALLOCATION,
    REQUESTS_NAT_IDLE_RESET,
    REQUESTS_LB_502,
    REQUESTS_LB_503,
    REQUESTS_LB_504,
    REQUESTS_LB_RESET,
    REQUESTS_LB_CONNECT_TIMEOUT,
    REQUESTS_MESH_RETRIED,
    REQUESTS_MESH_OVERFLOW,
    REQUESTS_MESH_TIMEOUT,
    MESH_EJECTIONS,
    REQUESTS_DEPENDENCY_FAILED,
    TRIES_PER_REQUEST,
    TRIES_PER_USER_REQUEST,
    REQUESTS_PROXY_RESET,
    ZONE_BYTES,
    CROSS_ZONE_BYTES,
    CROSS_ZONE_SHARE,
    CROSS_ZONE_COST,
    CROSS_ZONE_COST_PER_MONTH,
    DNS_QUERIES_PER_LOOKUP,
    LOOKUP_LATENCY_P50,
    LOOKUP_LATENCY_P99,
    LOOKUP_LATENCY_MAX,
    DNS_QPS,
    DNS_CACHE_HIT_RATIO,
    DNS_RESTARTS,
    DNS_IN_FLIGHT,
    DNS_CPU_UTILIZATION,
    DNS_MEMORY_MIB,
    MESH_PROXY_CPU_CORES,
    MESH_PROXY_MEMORY_MIB,
    DNS_INSERT_FAILED,
    DNS_QUERIES_STALE,
    REQUESTS_NOT_FOUND,
    ANSWERED_BY,
    ATTEMPTS,
    SUCCEEDED,
    FAILED,
    FLOW_PENDING,
    SUCCESS_RATE,
    TIME_P50,
    TIME_MAX,
    LARGEST_OK_SIZE,
    SMALLEST_FAILED_SIZE,
    PACKETS_DROPPED,
    PACKETS_DELIVERED,
    POD_MTU,
    CONNECT_SETUP_P50,
    CONNECT_SETUP_P99,
    FIRST_RTT_P50,
    FIRST_RTT_P99,
    LOOKUP_CPU,
    LOOKUP_P99,
    PACKET_LATENCY,
    BYTES_DELIVERED,
    ENDPOINTS_USED,
    ENDPOINT_SHARE_MAX,
    PLAN_OVERLAPS,
    PLAN_PEER_OVERLAPS,
    PLAN_PEERING_REFUSED,
    PLAN_VPN_CUT_OFF,
    PLAN_CUT_OFF,
    PLAN_NODE_BLOCKS_LOST,
    PLAN_MAX_NODES,
    PLAN_SUBNETS_REFUSED,
    PLAN_VPC_BLOCKS_REFUSED,
    PLAN_POD_ADDRESSES,
    PLAN_SERVICE_ADDRESSES,
    PLAN_SUBNET_ADDRESSES,
];

const fn kube_proxy(mut f: Figure) -> Figure {
    f.needs_kube_proxy = true;
    f
}

const fn packets(
    name: &'static str,
    kind: Kind,
    unit: &'static str,
    read: fn(&NetOutput, Option<&str>) -> Option<f64>,
) -> Figure {
    Figure {
        name,
        kind,
        unit,
        selector: Selector::None,
        filters: &[],
        needs_kube_proxy: false,
        read: Read::Packets(read),
    }
}

/// Queries reaching CoreDNS per second, or replies with `rcode`, in `zones`.
fn dns_qps(d: &DnsWindowStats, zones: &[usize], rcode: Option<usize>, secs: f64) -> Option<f64> {
    let n: u64 = match rcode {
        Some(r) => zones.iter().map(|&z| d.replies[z][r]).sum(),
        None => zones.iter().map(|&z| d.received[z]).sum(),
    };
    Some(n as f64 / secs)
}

/// Cache hits over replies in `zones`, if there were replies.
fn dns_cache_hit_ratio(
    d: &DnsWindowStats,
    zones: &[usize],
    _: Option<usize>,
    _: f64,
) -> Option<f64> {
    let replies: u64 = zones
        .iter()
        .map(|&z| d.replies[z].iter().sum::<u64>())
        .sum();
    let hits: u64 = zones.iter().map(|&z| d.cache_hits[z]).sum();
    (replies > 0).then(|| hits as f64 / replies as f64)
}

/// Failed attempts, those whose error contains `reason` if given.
fn failed(f: &FlowResult, reason: Option<&str>) -> Option<f64> {
    Some(
        f.failures
            .iter()
            .filter(|(k, _)| reason.is_none_or(|r| k.contains(r)))
            .map(|(_, n)| *n)
            .sum::<u64>() as f64,
    )
}

/// Packets dropped, of the drop kind `reason` if given.
fn packets_dropped(o: &NetOutput, reason: Option<&str>) -> Option<f64> {
    Some(match reason {
        Some(r) => DropKind::parse(r)
            .and_then(|k| o.packets.dropped.get(&k).copied())
            .unwrap_or(0) as f64,
        None => o.packets.dropped_total() as f64,
    })
}

const fn count(level: Level) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < FIGURES.len() {
        if FIGURES[i].level() as u8 == level as u8 {
            n += 1;
        }
        i += 1;
    }
    n
}

const fn names<const N: usize>(level: Level) -> [&'static str; N] {
    let mut out = [""; N];
    let (mut i, mut n) = (0, 0);
    while i < FIGURES.len() {
        if FIGURES[i].level() as u8 == level as u8 {
            out[n] = FIGURES[i].name;
            n += 1;
        }
        i += 1;
    }
    out
}

/// The names of the cluster figures, in table order.
pub const CLUSTER_NAMES: [&str; count(Level::Cluster)] = names(Level::Cluster);
/// The names of the packet-level figures, in table order.
pub const PACKET_NAMES: [&str; count(Level::Packet)] = names(Level::Packet);
/// The names of the network-plan figures, in table order.
pub const PLAN_NAMES: [&str; count(Level::Plan)] = names(Level::Plan);

/// The figure of `level` called `name`.
pub fn find(level: Level, name: &str) -> Option<&'static Figure> {
    FIGURES
        .iter()
        .find(|f| f.level() == level && f.name == name)
}

/// The names of the figures of `level` that `filter` narrows, joined with `sep`.
pub fn taking(level: Level, filter: Filter, sep: &str) -> String {
    let names: Vec<&str> = FIGURES
        .iter()
        .filter(|f| f.level() == level && f.takes(filter))
        .map(|f| f.name)
        .collect();
    names.join(sep)
}

/// Reads a figure's name as serde reads an enum of them, so that an
/// unknown name gets serde's `unknown variant` error listing `names`.
struct Named {
    level: Level,
    names: &'static [&'static str],
}

impl<'de> Visitor<'de> for Named {
    type Value = &'static Figure;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("enum Metric")
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        let (name, variant): (String, A::Variant) = data.variant()?;
        let Some(figure) = find(self.level, &name) else {
            return Err(de::Error::unknown_variant(&name, self.names));
        };
        de::VariantAccess::unit_variant(variant)?;
        Ok(figure)
    }
}

/// A cluster figure named in a file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClusterFigure(pub &'static Figure);

/// A packet-level figure named in a file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PacketFigure(pub &'static Figure);

impl<'de> serde::Deserialize<'de> for ClusterFigure {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names: &'static [&'static str] = &CLUSTER_NAMES;
        d.deserialize_enum(
            "Metric",
            names,
            Named {
                level: Level::Cluster,
                names,
            },
        )
        .map(ClusterFigure)
    }
}

impl<'de> serde::Deserialize<'de> for PacketFigure {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names: &'static [&'static str] = &PACKET_NAMES;
        d.deserialize_enum(
            "Metric",
            names,
            Named {
                level: Level::Packet,
                names,
            },
        )
        .map(PacketFigure)
    }
}

/// The figure names a file may give, as a JSON Schema enumeration.
macro_rules! figure_schema {
    ($t:ty, $name:literal, $names:expr) => {
        impl schemars::JsonSchema for $t {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                $name.into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                let names: &[&str] = &$names;
                schemars::json_schema!({"type": "string", "enum": names})
            }
        }
    };
}
figure_schema!(ClusterFigure, "ClusterMetric", CLUSTER_NAMES);
figure_schema!(PacketFigure, "PacketMetric", PACKET_NAMES);

/// A network-plan figure named in a file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlanFigure(pub &'static Figure);

impl<'de> serde::Deserialize<'de> for PlanFigure {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names: &'static [&'static str] = &PLAN_NAMES;
        d.deserialize_enum(
            "Metric",
            names,
            Named {
                level: Level::Plan,
                names,
            },
        )
        .map(PlanFigure)
    }
}
figure_schema!(PlanFigure, "PlanMetric", PLAN_NAMES);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_within_a_level_and_listed_in_table_order() {
        for (level, names) in [
            (Level::Cluster, &CLUSTER_NAMES[..]),
            (Level::Packet, &PACKET_NAMES[..]),
            (Level::Plan, &PLAN_NAMES[..]),
        ] {
            let rows: Vec<&str> = FIGURES
                .iter()
                .filter(|f| f.level() == level)
                .map(|f| f.name)
                .collect();
            assert_eq!(rows, names);
            for n in names {
                assert_eq!(find(level, n).map(|f| f.name), Some(*n));
                assert_eq!(names.iter().filter(|m| *m == n).count(), 1, "{n}");
            }
        }
        assert!(find(Level::Packet, "pods_pending").is_none());
    }

    #[test]
    fn durations_are_the_time_figures_and_selectors_fit_the_reads() {
        for f in FIGURES {
            assert_eq!(f.is_time(), f.unit == "s", "{}", f.name);
            let fits = match f.read {
                Read::Series(c) => {
                    f.selector
                        == if c.per_workload {
                            Selector::Workload
                        } else {
                            Selector::None
                        }
                }
                Read::Window(_) => f.selector == Selector::Service,
                Read::Dns(_) | Read::Packets(_) | Read::Plan(_) => f.selector == Selector::None,
                Read::Flow(_) => f.selector == Selector::Flow,
                Read::Path(_) => f.selector == Selector::Path,
            };
            assert!(fits, "{}", f.name);
        }
    }

    #[test]
    fn every_column_named_here_is_in_a_runs_time_series() {
        let text = "name: t\nsummary: s\nduration: 1m\nsample_every: 10s\n\
             cluster: {nodes: {count: 1, zones: [a]}, ipam: {mode: flat, pod_cidr: 10.0.0.0/24}, node_pool: {max_nodes: 1}}\n\
             network: {cni: calico, conntrack: {node_cores: 4}, kube_proxy: {mode: iptables}}\n\
             dns: {workload: coredns}\n\
             mesh: {mode: sidecar}\n\
             workloads:\n  - {name: api, replicas: 1, startup: 1s, ready_after: 1s, concurrency: 1, service_time: 1ms, dials_at_start: {service: coredns, after: 1s}}\n  \
             - {name: coredns, replicas: 1, startup: 1s, ready_after: 1s, port: 53, protocol: UDP}\n";
        let scenario = crate::parse("t.yaml", text).unwrap();
        let out =
            sim_models::cluster::run(&scenario.variants[0].config, 1, &mut sim_core::NullSink);
        let columns = FIGURES.iter().filter_map(Figure::column);
        for c in series::COLUMNS.iter().copied().chain(columns) {
            for name in [c.of("api"), c.of("coredns")] {
                assert!(column_index(&out, &name).is_ok(), "no column {name}");
                assert!(series_max(&out, &name).is_ok());
            }
        }
        assert_eq!(
            series_max(&out, "pods_renamed{deployment=api}")
                .unwrap_err()
                .to_string(),
            "the run has no time series `pods_renamed{deployment=api}`"
        );
    }
}
