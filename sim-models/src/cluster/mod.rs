//! # The cluster simulation: nodes, IPAM, scheduler, kubelet, Services, traffic
//!
//! ## Scope
//! Ties the mechanisms of this crate into one discrete-event run:
//! Deployments create pods ([`crate::workload`]); the scheduler binds them to
//! nodes ([`crate::scheduler`]); the kubelet gets each an address from IPAM
//! ([`crate::ipam`], [`crate::kubelet`]); Ready pods become endpoints of
//! their Service ([`crate::service`]); Poisson clients send requests that
//! queue at the pods' servers ([`crate::app`]). A timeline of actions (scale
//! a Deployment, change a request rate, add an IP pool, change the active
//! NetworkPolicies, stop or restart the CNI daemon on nodes, which drives
//! [`crate::node_lifecycle`]) runs on the same clock and acts on whatever is
//! in flight.
//!
//! The run starts in steady state: the initial replicas that find a node and
//! an address are Running and Ready at T+0 (the cluster existed before the
//! story began); the rest go through the normal Pending path.
//!
//! Request-level: the cost per request is O(1) in the number of pods, nodes
//! and Services (O(log) for DNS names); NetworkPolicy verdicts are cached
//! per pod pair. Pod-level: placing a pod is O(log n) in the nodes
//! ([`crate::scheduler::NodeIndex`]); a pod is a compact record whose name
//! is derived when printed, and NetworkPolicy's view of the pods is kept only
//! when policies are configured.
//!
//! ## Rooms
//! The run is one event loop (`Sim::handle`, a short match) that hands
//! each event to the room that owns it:
//! - `config`: the run's input ([`ClusterConfig`] and its parts);
//! - `output`: what a run returns ([`RunOutput`], windows, totals);
//! - `timeline`: the scenario's timed actions;
//! - `pods`: scale, reconcile, schedule, sandbox, taints and eviction, HPA;
//! - `traffic`: arrivals, retries, connections, servers, outcomes;
//! - `dial`: a new connection along the connection path ([`crate::path`]:
//!   conntrack, kube-proxy, NetworkPolicy, SNAT) and kube-proxy's syncs;
//! - `zone_traffic`: bytes per (source zone, destination zone) pair and
//!   their price under the run's billing;
//! - `starts`: container starts with a sidecar or a start dial (the
//!   proxy's readiness, the app's dial, CrashLoopBackOff);
//! - `mesh`: the service mesh's proxies on the request path (sidecars,
//!   ambient's ztunnels and waypoint);
//! - `egress`: connections through NAT gateways after they open (idle
//!   RST, a gateway down, bytes and cost) and the gateways' figures;
//! - `dns`: lookups, query routing through kube-dns and conntrack, the
//!   names' truth, CoreDNS pods, NodeLocal DNSCache;
//! - `events` and `sampling`: Kubernetes events, time series, the output.
//!
//! Limitations: a policy change acts on new connections only (NetworkPolicy
//! is checked on a connection's first packet);
//! requests from outside the cluster (`from` unset) are not checked against
//! NetworkPolicy (`ipBlock` ingress rules are exercised by `netpol`'s own
//! tests, not by the cluster run). DNS limitations: see the `dns` room.
//!
//! ## What it emits
//! A [`RunOutput`]: the sampled time series (pod counts by state, IPAM use,
//! request counters, queue depth, latency per sample window), statistics per
//! named measurement window, Kubernetes events aggregated as `kubectl get
//! events` shows them (reason, message, count, first and last seen), the
//! final state, and per-source request totals that satisfy conservation:
//! sent = answered + timed out + refused + rejected + lookup failed + in
//! flight (egress losses at a NAT gateway are named parts of timed out and
//! refused: [`RequestTotals::nat_dropped`], `nat_port_allocation`,
//! `nat_idle_reset`). With NAT gateways, per gateway its CloudWatch figures
//! and cost over the run and per window ([`RunOutput::nat_gateways`],
//! [`RunOutput::nat_windows`]). Per window: connect delays, SYNs dropped, answered requests per
//! server pod (the busiest pod's share); per node: the conntrack table's
//! statistics. With DNS: queries received by CoreDNS and replies by zone
//! (cluster, external) and rcode, cache hits, dropped queries, OOM kills
//! and restarts, CoreDNS in-flight queries, CPU and memory as time series,
//! and per window ([`DnsWindowStats`]); per traffic source the lookups, the
//! queries they sent and the lookup latency.
//!
//! ## Validation
//! Property tests: request conservation over random configurations and
//! timelines; the same seed gives identical outputs. Scenario golden files
//! (sim-scenarios) pin whole replays.

use crate::app::{completion_outcome, Admit, IdSet, OptU32, Outcome, Request, Server};
use crate::autoscaler::NodePoolSpec;
use crate::connections::{
    syn_give_up_offset, syn_retransmit_offset, ClientConns, Conn, ConnSlab, ConnectionMode,
    IdHashSet, IdMap, PodMap,
};
use crate::conntrack::{
    self, ConntrackConfig, CtId, CtState, DataPath, UdpDnat, UdpPairSecond, UdpSend,
};
use crate::coredns::{
    AnswerSource, CoreDns, CoreDnsAction, CoreDnsSpec, CoreDnsTimer, DnsQuery, Existence,
    ForwardId, Zone,
};
use crate::hpa::{Hpa, HpaSpec};
use crate::ipam::{Ipam, IpamLayout, Ipv4Cidr, Lease};
use crate::kube_proxy::{FirstPacket, KubeProxy, KubeProxyConfig, SyncStats};
use crate::kubelet;
use crate::nat_gateway::{Destination, GatewayStats, NatGatewayConfig, NatGateways};
use crate::netpol::{ContainerPort, PodInfo, SYNTHETIC_NODE_CIDR};
use crate::node_lifecycle;
use crate::path::masquerade::Masquerade;
use crate::path::nat_gateway::NatStage;
use crate::path::service::ServiceProxy;
use crate::path::{self, Client, ClientSees, Drop, Flow, Path, PathEnv, Target};
use crate::policy_enforcement::{Enforcer, PolicyConfig};
use crate::resolver::{
    GlibcVersion, Lookup, LookupOutcome, QType, QueryId, QueryTypes, Rcode, Reply, ResolvConf,
    ResolverAction, SocketId, TimerToken,
};
use crate::scheduler::{Ask, NodeIndex, Resources, Spread};
use crate::service::Endpoints;
use crate::snat::{Snat, SnatConfig};
use crate::topology::NodeSpec;
use crate::workload::{pod_name, DeploymentSpec, PodState, WorkloadKind};
use autoscale::CaRt;
use events::EventKey;
use rand::RngExt;
use sim_core::{
    CounterId, Engine, EventId, GaugeId, HistogramId, LatencyHistogram, Metrics, RngStreams,
    SimDuration, SimRng, SimTime, TraceRecord, TraceSink,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;

mod autoscale;
mod calls;
mod capacity;
mod config;
mod dial;
mod dns;
mod egress;
mod events;
mod ingress;
mod l7;
mod lb;
mod lb_gate;
mod lb_instance;
mod mesh;
mod output;
mod pods;
mod sampling;
mod services;
mod starts;
mod timeline;
mod traffic;
mod zone_traffic;
mod zones;

use dns::{address_of, DnsRt, PendingLookup};
use output::{rcode_index, zone_index};

pub use capacity::capacity_study;
pub use config::{
    Action, ClientDnsCache, ClusterConfig, ConntrackSetup, DnsConfig, NameserverRoute, NatSetup,
    PodDnsConfig, TimedAction, TrafficSpec, WindowSpec, NODE_LOCAL_DNS_IP,
};
pub use dns::name_exists;
pub use egress::NatGatewayOutput;
pub use ingress::{IngressTraffic, RequestPath, MAX_PATHS, SHARE_TOLERANCE};
pub use l7::L7Proxy;
pub use mesh::{MeshHopStats, MeshOutput, RESPONSE_FLAGS};
pub use output::{
    DeploymentState, DnsWindowStats, EventSummary, HealthCheckState, NodePortState, RequestTotals,
    RunOutput, WindowStats, RCODES, ZONES,
};
pub use zone_traffic::ZoneTraffic;

#[derive(Clone, Copy, Debug)]
enum Ev {
    Action(u32),
    Sample,
    SandboxAttempt(u32),
    ContainerStarted(u32),
    ReadinessPassed(u32),
    Arrival(u32),
    Completed {
        pod: u32,
        req: Request,
        /// The handler's call to its dependency failed: it answers 503.
        failed: bool,
    },
    /// A blocked connection's client gives up.
    BlockedTimeout(Request),
    /// A connection to an address nobody holds: the client gives up.
    NoHostTimeout(Request),
    /// A client with retries gives up on one try at its deadline.
    ClientGiveUp(Request),
    /// A timer of the CoreDNS container in a pod.
    CoreDns {
        pod: u32,
        token: u64,
    },
    /// A connection sent to a removed endpoint: its client gives up.
    StaleTimeout(Request),
    /// A SYN a security group dropped: its client gives up.
    EdgeTimeout(Request),
    /// A SYN a `Local` traffic policy dropped: its client gives up.
    NoLocalTimeout(Request),
    /// kube-proxy's sync loop wakes.
    KubeProxySync,
    /// A connection's first packet, past the Service lookup, reaches pod
    /// `pod`; the request follows on its connection `req.conn` (or on its
    /// own, from a client outside the cluster).
    FirstPacket {
        pod: u32,
        req: Request,
    },
    /// A policy change reaches the data path.
    PoliciesProgrammed(u32),
    /// The node lifecycle controller brings a node's not-ready taint in
    /// line with its network readiness.
    NodeTaint(u32),
    /// The not-ready toleration of the pods on a node runs out.
    Evict(u32),
    /// The node lifecycle controller notices a node of a failed zone.
    NodeUnreachable(u32),
    /// The HorizontalPodAutoscaler controller syncs.
    HpaSync,
    /// The cluster autoscaler scans.
    CaScan,
    /// A node the node pool created is Ready.
    NodeCreated(u32),
    /// The unschedulable pods are retried (after nodes were created).
    RetryUnschedulable,
    /// A timer of a node's NodeLocal DNSCache.
    NodeLocalDns {
        node: u32,
        token: u64,
    },
    /// A resolver timer of a lookup fires.
    ResolverTimer {
        lookup: u32,
        generation: u32,
        token: u32,
    },
    /// TCP retransmits a SYN the client node dropped: SYN number
    /// `attempt` of the connection of `req`'s client, due
    /// [`syn_retransmit_offset`]`(attempt)` after the first SYN, to the
    /// same pod address if the client (or its proxy) dialled one.
    SynRetry {
        req: Request,
        attempt: u8,
        pod: OptU32,
    },
    /// `connect()` gives up (timeout or `tcp_syn_retries` used up).
    SynGiveUp(Request),
    /// The application retries a failed try (scheduled at the instant the
    /// try failed: a chain of failing tries never recurses).
    Retry(Request),
    /// The ICMP port unreachable for a query a lookup sent reaches its
    /// socket (scheduled at the instant of the send, after the rest of the
    /// resolver's batch: a chain of unreachable queries never recurses).
    DnsUnreachable {
        lookup: u32,
        generation: u32,
        query: u32,
    },
    /// An idle keep-alive connection is closed.
    IdleClose {
        conn: u32,
        gen: u32,
    },
    /// Egress a NAT gateway dropped (down, no route): the client gives up.
    EgressDropped(Request),
    /// An egress SYN the NAT gateway had no port for: the client gives up.
    EgressNoPort(Request),
    /// A load balancer's health checks of its targets are due.
    LbCheck(u32),
    /// A deregistered target's delay ends: its requests in flight are cut.
    LbDrainEnd {
        lb: u32,
        target: u32,
    },
    /// Nothing answered a request a load balancer sent on (or no target
    /// took an NLB's connection).
    LbSilent(Request),
    /// The mesh proxies' tries: the earliest timer of those in flight
    /// (per-try or route timeout, or the application's deadline) is due.
    MeshTimers,
    /// A mesh proxy's retry back-off ended.
    MeshRetry(Request),
    /// A step of a pod's container start (`starts` room), of its start
    /// number `gen`.
    PodStart {
        pod: u32,
        gen: u32,
        step: starts::Step,
    },
    /// A mesh proxy's worker is done with a request (`at`: its stage and
    /// server pod, packed by the `mesh` room; `epoch`: the proxy's process
    /// the request entered).
    ProxyDone {
        at: u32,
        epoch: u16,
        req: Request,
    },
}

/// One pod. Its name is derived when printed ([`Sim::pod_name`]).
struct Pod {
    deployment: u32,
    /// Which of its ReplicaSet's pods it is (0 for the first created): the
    /// random-looking suffix of a Deployment pod's name derives from it.
    seq: u32,
    /// StatefulSet ordinal (0 for Deployment pods).
    ordinal: u32,
    state: PodState,
    node: Option<u32>,
    lease: Option<Lease>,
    backoff: SimDuration,
    deleted: bool,
    created: SimTime,
    /// The CoreDNS container of a DNS pod.
    coredns: Option<Box<CoreDns>>,
}

struct DeploymentRt {
    desired: u32,
    created: u32,
    by_state: [u32; 5],
    live: Vec<u32>,
    endpoints: Endpoints,
    gauges: WorkloadGauges,
    /// The mean service time of its pods' handlers now (the spec's, until
    /// a timeline action changes it).
    service_time: SimDuration,
    service_time_rng: SimRng,
    /// Its pods bound to nodes, per zone id (topology spread counts these).
    zone_pods: Vec<u32>,
}

/// A workload's gauges, `<metric>{deployment=<name>}` (registered in field
/// order, the order of the CSV columns).
struct WorkloadGauges {
    desired: GaugeId,
    pending: GaugeId,
    unschedulable: GaugeId,
    sandbox_failed: GaugeId,
    running: GaugeId,
    ready: GaugeId,
    in_flight: GaugeId,
}

impl WorkloadGauges {
    fn register(m: &mut Metrics, workload: &str) -> Self {
        let mut g = |what: &str| m.gauge(&format!("{what}{{deployment={workload}}}"));
        WorkloadGauges {
            desired: g("pods_desired"),
            pending: g("pods_pending"),
            unschedulable: g("pods_unschedulable"),
            sandbox_failed: g("pods_sandbox_failed"),
            running: g("pods_running"),
            ready: g("pods_ready"),
            in_flight: g("requests_in_flight"),
        }
    }
}

/// A traffic source's counters, `requests_<metric>{service=<source>}`
/// (registered in field order, which is the order of the CSV columns).
struct SourceCounters {
    /// Requests sent.
    sent: CounterId,
    /// Answered in time.
    answered: CounterId,
    /// Timed out (the client gave up).
    timed_out: CounterId,
    /// Refused (no endpoint, reset).
    refused: CounterId,
    /// Rejected by the server (503).
    rejected: CounterId,
    /// Answered after the client gave up (work wasted).
    wasted: CounterId,
    /// Timed out because NetworkPolicy dropped the SYN.
    blocked: CounterId,
    /// Failed name lookups.
    lookup_failed: CounterId,
    /// DNS queries the lookups sent.
    dns_queries: CounterId,
    /// Timed out because every SYN was dropped.
    syn_dropped: CounterId,
    /// SYNs the client node's conntrack table dropped.
    syn_drops: CounterId,
    /// Connections opened.
    connections: CounterId,
    /// Timed out on a deleted pod kube-proxy still listed.
    stale: CounterId,
    /// Name lookups.
    dns_lookups: CounterId,
    /// Retries.
    retried: CounterId,
    /// Timed out dialing an address no pod holds.
    no_host: CounterId,
}

impl SourceCounters {
    fn register(m: &mut Metrics, source: &str) -> Self {
        let mut c = |what: &str| m.counter(&format!("requests_{what}{{service={source}}}"));
        SourceCounters {
            sent: c("sent"),
            answered: c("answered"),
            timed_out: c("timed_out"),
            refused: c("refused"),
            rejected: c("rejected"),
            wasted: c("wasted"),
            blocked: c("blocked_by_policy"),
            lookup_failed: c("lookup_failed"),
            dns_queries: c("dns_queries"),
            syn_dropped: c("syn_dropped"),
            syn_drops: c("conntrack_syn_drops"),
            connections: c("connections_opened"),
            stale: c("stale_endpoint"),
            dns_lookups: c("dns_lookups"),
            retried: c("retried"),
            no_host: c("no_host"),
        }
    }
}

struct TrafficRt {
    rate: f64,
    next: Option<EventId>,
    arrivals: SimRng,
    pick: SimRng,
    totals: RequestTotals,
    counters: SourceCounters,
    latency: HistogramId,
    connect_delay: HistogramId,
    first_packet: HistogramId,
    /// Connections held per client pod (looked up, never iterated).
    clients: PodMap<ClientConns>,
    lookup_latency: HistogramId,
    /// Draws each request's path (`traffic/{name}/request-path`).
    paths: SimRng,
    /// Per request path, through an ingress controller.
    path_totals: Vec<RequestTotals>,
    /// `requests_not_found`, registered for sources through an ingress
    /// controller only.
    not_found: Option<CounterId>,
}

struct Sim<'a> {
    cfg: &'a ClusterConfig,
    engine: Engine<Ev>,
    metrics: Metrics,
    trace: &'a mut dyn TraceSink,
    ipam: Ipam,
    /// The scheduler's view of the nodes (pods bound, taints, pod CIDRs).
    sched: NodeIndex,
    pods: Vec<Pod>,
    /// Each pod's application server, by pod id: apart from the pod record
    /// so that the request path touches 16 bytes per pod, not the record.
    servers: Vec<Server>,
    unschedulable: BTreeSet<u32>,
    deps: Vec<DeploymentRt>,
    traffic: Vec<TrafficRt>,
    windows: Vec<WindowStats>,
    /// Aggregated events, each with the order it was first seen in.
    events: BTreeMap<(&'static str, events::EventKey), (usize, EventSummary)>,
    /// Pod addresses usable and allocated.
    ipam_gauges: (GaugeId, GaugeId),
    /// What NetworkPolicy needs to know of each pod with an address, by pod id.
    pod_infos: Vec<Option<PodInfo>>,
    /// Lookups in progress, by slot; freed slots are reused.
    lookups: Vec<Option<PendingLookup>>,
    free_lookups: Vec<u32>,
    lookup_generation: u32,
    dns_pick: SimRng,
    rng: RngStreams,
    dns: Option<DnsRt>,
    /// Pod addresses in use -> pod (looked up, never iterated).
    ip_owner: HashMap<Ipv4Addr, u32>,
    next_request: u64,
    /// Tries of traffic with retries whose outcome is not known yet.
    open_attempts: IdSet,
    /// Tries whose lookup is in progress.
    resolving: IdSet,
    nodes: Vec<NodeRt>,
    /// Nodes down with their zone (0: the request path checks nothing).
    nodes_unreachable: u32,
    /// Of those, the ones the node lifecycle controller has marked NotReady.
    nodes_noticed_down: u32,
    /// Per zone id: its `NoExecute` tainting rate limiter.
    zone_limiters: Vec<node_lifecycle::NoExecuteLimiter>,
    node_lifecycle: SimRng,
    /// Open client connections.
    conns: ConnSlab<CtId>,
    /// The connection path: conntrack, kube-proxy, NetworkPolicy, SNAT.
    path: Path,
    ct_gauge: GaugeId,
    kube_proxy_wake: Option<EventId>,
    /// The run's Services and the edge in front of the nodes.
    services: services::ServicesRt,
    /// The node pool's autoscaler, when the run has a node pool.
    ca: Option<CaRt>,
    /// Per window, per NAT gateway: its figures in the window.
    nat_windows: Vec<GatewayStats>,
    /// Cloud load balancers in front of Services.
    lbs: lb::Lbs,
    /// Per traffic source: its bytes between zones.
    zone_traffic: Vec<ZoneTraffic>,
    /// The mesh proxies' L7 decisions.
    l7: l7::L7Rt,
    /// Requests waiting in their handler for a call to a dependency.
    calls: calls::CallsRt,
    /// Container starts with a sidecar or a start dial.
    starts: starts::StartsRt,
    /// The service mesh's proxies, when the run has a mesh.
    mesh: Option<mesh::MeshRt>,
}

/// What the cluster run tracks of one node beyond the scheduler's view.
#[derive(Default)]
struct NodeRt {
    /// Its CNI daemon is not running: sandboxes cannot be created.
    cni_down: bool,
    /// Its zone failed: the node and its pods are stopped.
    unreachable: bool,
    /// The pending eviction of its pods, while tainted.
    eviction: Option<EventId>,
    /// When its `NoExecute` taint went on (the pods' tolerations run from
    /// then).
    tainted_at: SimTime,
    /// The pods bound to it (terminating ones until they are gone), in no
    /// particular order.
    pods: Vec<u32>,
}

/// Runs `cfg` with `seed`, sending per-event records to `trace`.
pub fn run(cfg: &ClusterConfig, seed: u64, trace: &mut dyn TraceSink) -> RunOutput {
    Sim::new(cfg, seed, trace).run(seed, &|_| {})
}

/// [`run`], telling `progress` the simulated time reached about every
/// 1/[`PROGRESS_STEPS`] of the run (for a progress bar; the run does not
/// depend on it).
pub fn run_observed(
    cfg: &ClusterConfig,
    seed: u64,
    trace: &mut dyn TraceSink,
    progress: &dyn Fn(SimTime),
) -> RunOutput {
    Sim::new(cfg, seed, trace).run(seed, progress)
}

/// How many times a run reports its progress.
pub const PROGRESS_STEPS: u64 = 200;

impl<'a> Sim<'a> {
    fn new(cfg: &'a ClusterConfig, seed: u64, trace: &'a mut dyn TraceSink) -> Self {
        let rng = RngStreams::new(seed);
        let mut metrics = Metrics::new();
        let mut ipam = Ipam::new(cfg.ipam.clone());
        let mut sched = NodeIndex::default();
        for (i, n) in cfg.nodes.iter().enumerate() {
            let node = if n.standby {
                ipam.add_standby_node();
                sched.add_standby_node(&n.zone, n.max_pods)
            } else {
                ipam.add_node();
                sched.add_node(&n.zone, n.max_pods, ipam.node_has_pod_cidr(i))
            };
            if let Some(a) = n.allocatable {
                sched.set_allocatable(node, a);
            }
        }
        let deps = cfg
            .deployments
            .iter()
            .map(|d| DeploymentRt {
                desired: d.replicas,
                created: 0,
                by_state: [0; 5],
                live: Vec::new(),
                endpoints: Endpoints::default(),
                gauges: WorkloadGauges::register(&mut metrics, &d.name),
                service_time: d.server.service_time,
                service_time_rng: rng.stream(&format!("service-time/{}", d.name)),
                zone_pods: vec![0; sched.zone_count()],
            })
            .collect();
        let traffic = cfg
            .traffic
            .iter()
            .map(|t| {
                let name = &t.name;
                TrafficRt {
                    rate: t.rate,
                    next: None,
                    arrivals: rng.stream(&format!("traffic/{name}/arrivals")),
                    pick: rng.stream(&format!("traffic/{name}/endpoint-pick")),
                    totals: RequestTotals::default(),
                    counters: SourceCounters::register(&mut metrics, name),
                    latency: metrics.histogram(&format!("request_latency{{service={name}}}")),
                    connect_delay: metrics.histogram(&format!("connect_delay{{service={name}}}")),
                    first_packet: metrics
                        .histogram(&format!("service_first_packet_rtt{{service={name}}}")),
                    clients: PodMap::default(),
                    lookup_latency: metrics
                        .histogram(&format!("dns_lookup_latency{{service={name}}}")),
                    paths: rng.stream(&format!("traffic/{name}/request-path")),
                    path_totals: vec![
                        RequestTotals::default();
                        t.ingress.as_ref().map_or(0, |i| i.paths.len())
                    ],
                    not_found: t
                        .ingress
                        .as_ref()
                        .map(|_| metrics.counter(&format!("requests_not_found{{service={name}}}"))),
                }
            })
            .collect();
        let windows = cfg
            .windows
            .iter()
            .flat_map(|w| {
                cfg.traffic.iter().map(|t| WindowStats {
                    window: w.name.clone(),
                    service: t.name.clone(),
                    node_snat: 0,
                    node_port_open_public: 0,
                    totals: RequestTotals::default(),
                    latency: LatencyHistogram::new(),
                    connect_delay: LatencyHistogram::new(),
                    syn_drops: 0,
                    insert_failed: 0,
                    served: PodMap::default(),
                    first_packet: LatencyHistogram::new(),
                    lookup_cpu: SimDuration::ZERO,
                    lookups: 0,
                    dns_queries: 0,
                    lookup_latency: LatencyHistogram::new(),
                    paths: vec![
                        RequestTotals::default();
                        t.ingress.as_ref().map_or(0, |i| i.paths.len())
                    ],
                    zone_bytes: zone_traffic::empty(cfg),
                    zone_cost: 0.0,
                    head_sent: 0,
                })
            })
            .collect();
        let ipam_gauges = (
            metrics.gauge("ipam_usable"),
            metrics.gauge("ipam_allocated"),
        );
        let ct_gauge = metrics.gauge("conntrack_entries_max");
        let ca = CaRt::new(cfg, &mut metrics);
        let dns = cfg
            .dns
            .as_ref()
            .map(|d| DnsRt::new(cfg, d, &mut metrics, &rng));
        let services = services::ServicesRt::new(cfg);
        let zones = services.zone_of.iter().max().map_or(1, |z| z + 1) as u32;
        let lbs = lb::Lbs::new(cfg, zones, &rng);
        let starts = starts::StartsRt::new(cfg, &mut metrics, &rng);
        let mesh = cfg
            .mesh
            .as_ref()
            .map(|m| mesh::MeshRt::new(cfg, m, &mut metrics, &rng));
        Sim {
            cfg,
            engine: Engine::new(),
            metrics,
            trace,
            ipam,
            sched,
            pods: Vec::with_capacity(cfg.deployments.iter().map(|d| d.replicas as usize).sum()),
            servers: Vec::with_capacity(cfg.deployments.iter().map(|d| d.replicas as usize).sum()),
            unschedulable: BTreeSet::new(),
            deps,
            traffic,
            windows,
            events: BTreeMap::new(),
            ipam_gauges,
            pod_infos: Vec::new(),
            lookups: Vec::new(),
            free_lookups: Vec::new(),
            lookup_generation: 0,
            dns_pick: rng.stream("service/kube-dns"),
            nodes: cfg.nodes.iter().map(|_| NodeRt::default()).collect(),
            nodes_unreachable: 0,
            nodes_noticed_down: 0,
            zone_limiters: Vec::new(),
            node_lifecycle: rng.stream("node-lifecycle"),
            conns: ConnSlab::default(),
            path: Path {
                tables: path::conntrack::Tables {
                    nodes: cfg
                        .conntrack
                        .iter()
                        .flat_map(|c| cfg.nodes.iter().map(|_| conntrack::Table::new(c.table)))
                        .collect(),
                    early_drop: rng.stream("conntrack/early-drop"),
                },
                conntrack: cfg
                    .conntrack
                    .filter(|c| c.datapath.tracks_pod_flows())
                    .map(|_| path::conntrack::Conntrack),
                service: ServiceProxy::new(
                    cfg.kube_proxy
                        .as_ref()
                        .map(|k| KubeProxy::new(k, services.list.len())),
                    rng.stream("kube-proxy/first-packet"),
                ),
                policy: cfg.policy.as_ref().map(Enforcer::new),
                masquerade: cfg
                    .conntrack
                    .and_then(|c| c.snat)
                    .map(|c| Masquerade::new(Snat::new(c), rng.stream("snat/ports"))),
                nat_gateway: egress::stage(cfg),
            },
            nat_windows: vec![
                GatewayStats::default();
                cfg.windows.len()
                    * cfg
                        .nat_gateways
                        .as_ref()
                        .map_or(0, |n| n.config.gateways.len())
            ],
            zone_traffic: cfg
                .traffic
                .iter()
                .map(|_| ZoneTraffic {
                    bytes: zone_traffic::empty(cfg),
                    requests: 0,
                    responses: 0,
                    request_hops: 0,
                    response_hops: 0,
                    cost: 0.0,
                })
                .collect(),
            ct_gauge,
            mesh,
            ca,
            kube_proxy_wake: None,
            services,
            lbs,
            l7: l7::L7Rt::new(cfg, &rng),
            calls: calls::CallsRt::new(cfg),
            starts,
            rng,
            dns,
            ip_owner: HashMap::new(),
            next_request: 0,
            open_attempts: IdSet::default(),
            resolving: IdSet::default(),
        }
    }

    fn run(mut self, seed: u64, progress: &dyn Fn(SimTime)) -> RunOutput {
        let end = SimTime::ZERO + self.cfg.duration;
        let step = SimDuration::from_nanos((self.cfg.duration.as_nanos() / PROGRESS_STEPS).max(1));
        let mut report_at = SimTime::ZERO + step;
        for (i, a) in self.cfg.timeline.iter().enumerate() {
            self.engine
                .schedule_at(SimTime::ZERO + a.at, Ev::Action(i as u32));
        }
        for d in 0..self.deps.len() {
            self.reconcile(d);
        }
        self.hold_hints(true);
        self.warm_start();
        self.hold_hints(false);
        self.lb_start();
        if let Some(pool) = &self.cfg.node_pool {
            self.engine
                .schedule_at(SimTime::ZERO + pool.scan_interval, Ev::CaScan);
        }
        if self.dns.as_ref().is_some_and(|d| d.hpa.is_some()) {
            self.engine
                .schedule_at(SimTime::ZERO + crate::hpa::SYNC_PERIOD, Ev::HpaSync);
        }
        if let Some(kp) = self.path.service.kube_proxy.as_mut() {
            for s in 0..self.services.list.len() {
                kp.install(s, self.services.endpoints(&self.deps, s).pods());
            }
            let at = kp.next_wake();
            self.kube_proxy_wake = Some(self.engine.schedule_at(at, Ev::KubeProxySync));
        }
        if let Some(p) = &self.cfg.policy {
            if !p.cni.enforces_policy() && p.sets.iter().any(|(_, s)| !s.is_empty()) {
                let msg = format!(
                    "NetworkPolicy objects exist but {} does not enforce them: all traffic passes",
                    p.cni.plugin()
                );
                self.event(
                    "Warning",
                    "PolicyNotEnforced",
                    "knsim",
                    msg,
                    format!("cni/{}", p.cni.plugin()),
                );
            }
        }
        for t in 0..self.traffic.len() {
            self.schedule_arrival(t);
        }
        self.engine.schedule_at(SimTime::ZERO, Ev::Sample);
        while let Some(ev) = self.engine.next_until(end) {
            self.handle(ev);
            if self.engine.now() >= report_at {
                progress(self.engine.now());
                report_at = self.engine.now() + step;
            }
        }
        progress(end);
        if self.metrics.rows().last().is_none_or(|(t, _)| *t < end) {
            self.sample();
        }
        self.finish(seed)
    }

    /// The cluster existed before the story began: initial pods that got a
    /// node and an address are Running and Ready at T+0. Their pending
    /// start-up events find them Ready and do nothing.
    fn warm_start(&mut self) {
        for p in 0..self.pods.len() as u32 {
            if self.pod_live_in(p, PodState::Creating) {
                self.start_container(p);
                self.set_state(p, PodState::Ready);
                let d = self.pods[p as usize].deployment as usize;
                self.endpoint_up(p, d);
                self.lb_register(p, true);
            }
        }
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Action(i) => self.action(i as usize),
            Ev::Sample => self.sample_tick(),
            Ev::SandboxAttempt(p) => self.sandbox_attempt(p),
            Ev::ContainerStarted(p) => self.container_started(p),
            Ev::ReadinessPassed(p) => self.readiness_passed(p),
            Ev::Arrival(t) => self.arrival(t as usize),
            Ev::Completed { pod, req, failed } => self.completed(pod, req, failed),
            Ev::BlockedTimeout(req) => self.outcome(req, Outcome::Blocked),
            Ev::StaleTimeout(req) => self.outcome(req, Outcome::StaleEndpoint),
            Ev::EdgeTimeout(req) => self.outcome(req, Outcome::EdgeDropped),
            Ev::NoLocalTimeout(req) => self.outcome(req, Outcome::NoLocalEndpoint),
            Ev::KubeProxySync => self.kube_proxy_wake(),
            Ev::FirstPacket { pod, req } => match req.conn.get() {
                Some(conn) => self.send_on(conn, req),
                None => self.offer(pod, req),
            },
            Ev::SynRetry { req, attempt, pod } => self.syn_retry(req, attempt.into(), pod.get()),
            Ev::SynGiveUp(req) => self.outcome(req, Outcome::SynDropped),
            Ev::Retry(req) => self.retry(req),
            Ev::DnsUnreachable {
                lookup,
                generation,
                query,
            } => self.dns_unreachable(lookup, generation, QueryId(query)),
            Ev::IdleClose { conn, gen } => self.idle_close(conn, gen),
            Ev::NoHostTimeout(req) => self.outcome(req, Outcome::NoHost),
            Ev::EgressDropped(req) => self.outcome(req, Outcome::NatDropped),
            Ev::EgressNoPort(req) => self.outcome(req, Outcome::NatPortAllocation),
            Ev::LbCheck(i) => self.lb_check(i as usize),
            Ev::LbDrainEnd { lb, target } => self.lb_drain_end(lb as usize, target),
            Ev::LbSilent(req) => self.lb_silent(req),
            Ev::MeshTimers => self.l7_timers(),
            Ev::MeshRetry(req) => self.l7_retry(req),
            Ev::PodStart { pod, gen, step } => self.pod_start_step(pod, gen, step),
            Ev::ProxyDone { at, epoch, req } => self.proxy_done(at, epoch, req),
            Ev::ClientGiveUp(req) => self.outcome(req, Outcome::TimedOut),
            Ev::CoreDns { pod, token } => self.coredns_timer(pod, token),
            Ev::HpaSync => self.hpa_tick(),
            Ev::CaScan => self.ca_tick(),
            Ev::NodeCreated(n) => self.node_created(n as usize),
            Ev::RetryUnschedulable => self.retry_unschedulable(),
            Ev::NodeLocalDns { node, token } => self.node_local_timer(node, token),
            Ev::PoliciesProgrammed(i) => self.policies_programmed(i as usize),
            Ev::NodeTaint(n) => self.node_taint(n as usize),
            Ev::NodeUnreachable(n) => self.node_unreachable(n as usize),
            Ev::Evict(n) => self.evict(n as usize),
            Ev::ResolverTimer {
                lookup,
                generation,
                token,
            } => self.resolver_timer(lookup, generation, token),
        }
    }

    fn pod_live_in(&self, p: u32, s: PodState) -> bool {
        let pod = &self.pods[p as usize];
        !pod.deleted && pod.state == s
    }
}

#[cfg(test)]
mod churn_tests;
#[cfg(test)]
mod hints_tests;
#[cfg(test)]
mod l7_tests;
#[cfg(test)]
mod lb_tests;
#[cfg(test)]
mod mesh_tests;
#[cfg(test)]
mod services_tests;
#[cfg(test)]
mod starts_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod waypoint_tests;
