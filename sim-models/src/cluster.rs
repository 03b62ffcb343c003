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
//! per pod pair.
//!
//! **DNS.** With a [`DnsConfig`], the pods of the DNS workload are CoreDNS
//! containers ([`crate::coredns`]: CPU, cache, forward to an upstream,
//! memory, OOM kill and CrashLoopBackOff) behind the kube-dns Service. A
//! traffic source that resolves a name runs glibc's resolver
//! ([`crate::resolver`]) with the resolv.conf the kubelet writes for the
//! client's pod (cluster search list plus the node's `host_search`, the
//! workload's `dnsConfig` searches and options). The truth CoreDNS serves
//! comes from the cluster: the Services (`<svc>.<ns>.svc.cluster.local`, a
//! ClusterIP, or for a headless Service the addresses of its Ready pods,
//! and `<pod>.<svc>.<ns>...` for StatefulSet pods), and the external names
//! the traffic sources resolve (which exist upstream with an A record and
//! no AAAA); every other name is NXDOMAIN. An application may cache answers
//! itself (for the record's TTL or a fixed time) and retry failed requests,
//! each retry resolving again.
//!
//! Each query goes to the CoreDNS pod its socket's UDP flow was balanced to
//! (a new socket is a new flow; an application with `persistent_dns_socket`
//! keeps one flow per pod); an OOM-killed pod leaves the endpoints until it
//! restarts and passes readiness again; with no endpoint the query gets an
//! ICMP port unreachable. With conntrack modelled on a netfilter data path,
//! the flow is an entry in the client node's table ([`conntrack::UdpDnat`]):
//! it keeps its CoreDNS pod while the entry lives, a deleted pod included,
//! until the entry idles out or kube-proxy deletes the removed endpoint's
//! UDP entries (unless that fails: `flush_udp_on_endpoint_removal`); a
//! lookup's parallel A and AAAA race to insert the entry
//! ([`conntrack::udp_pair_second`]) and the kernel profile decides whether
//! the loser is dropped; a full table drops the query.
//!
//! With NodeLocal DNSCache ([`DnsConfig::node_local`]) every node runs a
//! node-local-dns instance ([`CoreDnsSpec::node_local`]); pods query their
//! node's (a link-local address: no DNAT, no conntrack), which answers from
//! its cache, forwards cluster-zone misses to a Ready kube-dns pod
//! (`force_tcp`) and external names to the upstream. With
//! [`DnsConfig::autoscaler`] a HorizontalPodAutoscaler ([`crate::hpa`]) sets
//! the CoreDNS replica count every 15 s from the CPU its Ready pods used
//! since the last sync (its history at T+0 is the initial count, as for a
//! controller that ran before the steady-state start).
//!
//! Connections are explicit ([`crate::connections`]): per traffic source,
//! a new connection per request, keep-alive pools, long-lived connections
//! pinned to the endpoint picked at connect time, or client-side
//! balancing. The Service's endpoint is picked per connection. When
//! [`ClusterConfig::conntrack`] is set, every new connection's SYN needs an
//! entry in the client node's conntrack table ([`crate::conntrack`]); a SYN
//! dropped there (`nf_conntrack: table full, dropping packet`, an event per
//! node) is retransmitted after 1 s, 3 s, 7 s... until the client's timeout
//! or `tcp_syn_retries`, and a closed connection leaves a TIME_WAIT entry.
//!
//! With a kube-proxy configured ([`ClusterConfig::kube_proxy`]), a new
//! connection to a Service (not client-side balancing, which dials pod IPs)
//! gets its endpoint from [`crate::kube_proxy`]'s data-path view, which
//! follows endpoint changes only when a sync ends: a pod deleted before
//! that still receives connections, whose SYNs are dropped. The first
//! packet pays the Service lookup before the request reaches the pod.
//! Without one, the data path follows the Ready pods at once and costs
//! nothing.
//!
//! Limitations: a policy change acts on new connections only (NetworkPolicy
//! is checked on a connection's first packet);
//! requests from outside the cluster (`from` unset) are not checked against
//! NetworkPolicy (`ipBlock` ingress rules are exercised by `netpol`'s own
//! tests, not by the cluster run). DNS: no network delay between pods and
//! CoreDNS and no Service lookup cost for queries; a new DNS flow gets its
//! CoreDNS pod from kube-proxy's programmed endpoints when kube-proxy is
//! modelled (from the Ready pods otherwise), but kube-proxy's conntrack
//! flush happens when the pod leaves the endpoints, not at the sync; clashing
//! entries that 5.x inserts are not put in the table; a headless name's
//! answer is read as its first Ready pod (clients take the first address);
//! a NodeLocal DNSCache's TCP forwards pick a kube-dns pod per query (no
//! pooled connections, no TCP conntrack entries) and skip NetworkPolicy;
//! an application's give-up does not cancel its
//! `getaddrinfo`, which runs to its end.
//!
//! ## What it emits
//! A [`RunOutput`]: the sampled time series (pod counts by state, IPAM use,
//! request counters, queue depth, latency per sample window), statistics per
//! named measurement window, Kubernetes events aggregated as `kubectl get
//! events` shows them (reason, message, count, first and last seen), the
//! final state, and per-source request totals that satisfy conservation:
//! sent = answered + timed out + refused + rejected + lookup failed + in
//! flight. Per window: connect delays, SYNs dropped, answered requests per
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

use crate::app::{completion_outcome, Admit, Outcome, Request, Server};
use crate::connections::{
    syn_give_up_offset, syn_retransmit_offset, ClientConns, Conn, ConnSlab, ConnectionMode,
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
use crate::netpol::{ContainerPort, PodInfo, SYNTHETIC_NODE_CIDR};
use crate::node_lifecycle;
use crate::path::masquerade::Masquerade;
use crate::path::service::ServiceProxy;
use crate::path::{self, Client, ClientSees, Drop, Flow, Path, PathEnv, Target};
use crate::policy_enforcement::{Enforcer, PolicyConfig};
use crate::resolver::{
    Lookup, LookupOutcome, QType, QueryId, QueryTypes, Rcode, Reply, ResolvConf, ResolverAction,
    SocketId, TimerToken,
};
use crate::scheduler::{self, NodeView};
use crate::service::Endpoints;
use crate::snat::{Snat, SnatConfig};
use crate::topology::NodeSpec;
use crate::workload::{pod_name, DeploymentSpec, PodState, WorkloadKind};
use rand::RngExt;
use sim_core::{
    CounterId, Engine, EventId, GaugeId, HistogramId, LatencyHistogram, Metrics, RngStreams,
    SimDuration, SimRng, SimTime, TraceRecord, TraceSink,
};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

/// Clients sending requests to one Deployment's Service.
#[derive(Clone, Debug, PartialEq)]
pub struct TrafficSpec {
    /// Name in metrics and reports (unique in a run).
    pub name: String,
    /// The workload whose Ready pods send the requests; `None`: clients
    /// outside the cluster.
    pub from: Option<usize>,
    /// Index of the target Deployment (its Service has the same name);
    /// `None`: the request is the name lookup alone (an external name whose
    /// server is outside the model).
    pub deployment: Option<usize>,
    /// The name each request first resolves through the cluster DNS
    /// ([`ClusterConfig::dns`]) from its client pod; `None`: it connects to
    /// the Service without a lookup.
    pub resolve: Option<String>,
    /// The application's own DNS cache; `None`: every request resolves.
    pub dns_cache: Option<ClientDnsCache>,
    /// The application's resolver keeps one UDP socket (one source port)
    /// per pod for all its queries instead of glibc's new socket per name:
    /// through conntrack, all of them are one flow.
    pub persistent_dns_socket: bool,
    /// Times the application retries a failed request (timeout, failed
    /// lookup, refused, 503); each retry is a new try with a fresh timeout
    /// that resolves again unless its cache answers.
    pub retries: u32,
    /// Mean request rate at the start \[requests/s\], Poisson arrivals.
    pub rate: f64,
    /// The client's timeout, per try.
    pub timeout: SimDuration,
    /// How requests use TCP connections (clients in the cluster only).
    pub connections: ConnectionMode,
    /// The connections leave through the client node's MASQUERADE rule
    /// (the target stands in for a destination outside the pod network);
    /// with [`ConntrackSetup::snat`] they race for source ports.
    pub snat: bool,
}

/// How long an application keeps an answer it resolved (per client pod and name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientDnsCache {
    /// For the record's TTL as received (nscd, systemd-resolved, Go's cgo-free
    /// resolver with a caching library).
    RecordTtl,
    /// For a fixed time whatever the TTL (the JVM's `networkaddress.cache.ttl`).
    Fixed(SimDuration),
}

/// Something the timeline does.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// `kubectl scale deployment NAME --replicas=N`.
    Scale {
        /// Deployment index.
        deployment: usize,
        /// New replica count.
        replicas: u32,
    },
    /// The request rate of one traffic source changes \[requests/s\].
    SetRate {
        /// Traffic source index.
        traffic: usize,
        /// New mean rate.
        rate: f64,
    },
    /// A new pod IP pool is added (flat layout).
    AddIpPool {
        /// The new pool.
        cidr: Ipv4Cidr,
    },
    /// The active NetworkPolicy sets become these (indices into
    /// [`PolicyConfig::sets`]); the data path follows after the policy delay.
    SetPolicies {
        /// Sets active from now on.
        sets: Vec<usize>,
    },
    /// The CNI daemon on these nodes stops running (a crash, a bad rollout):
    /// [`crate::node_lifecycle`] says what follows.
    CniDown {
        /// Node indices.
        nodes: Vec<usize>,
    },
    /// The CNI daemon on these nodes runs again.
    CniUp {
        /// Node indices.
        nodes: Vec<usize>,
    },
    /// An operator deletes the UDP conntrack entries on these nodes
    /// (`conntrack -D -p udp`): every DNS flow is balanced afresh.
    FlushUdpConntrack {
        /// Node indices.
        nodes: Vec<usize>,
    },
}

/// An action at a time.
#[derive(Clone, Debug, PartialEq)]
pub struct TimedAction {
    /// When, from the start of the run.
    pub at: SimDuration,
    /// What.
    pub action: Action,
}

impl WindowSpec {
    /// Whether `t` falls in the window.
    pub fn contains(&self, t: SimTime) -> bool {
        let since = t.since_start();
        self.start <= since && since < self.end
    }
}

/// A named stretch of the run to report statistics for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowSpec {
    /// Name used in reports and expectations.
    pub name: String,
    /// Start, from the start of the run (inclusive).
    pub start: SimDuration,
    /// End, from the start of the run (exclusive).
    pub end: SimDuration,
}

/// Everything one run needs.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterConfig {
    /// The nodes.
    pub nodes: Vec<NodeSpec>,
    /// Pod address layout.
    pub ipam: IpamLayout,
    /// Deployments, each with a Service of the same name.
    pub deployments: Vec<DeploymentSpec>,
    /// Clients.
    pub traffic: Vec<TrafficSpec>,
    /// Timed actions, in any order.
    pub timeline: Vec<TimedAction>,
    /// Length of the run.
    pub duration: SimDuration,
    /// Time-series sampling period.
    pub sample_every: SimDuration,
    /// Measurement windows.
    pub windows: Vec<WindowSpec>,
    /// NetworkPolicy and the CNI that enforces it; `None`: no policies.
    pub policy: Option<PolicyConfig>,
    /// The cluster DNS; `None`: no traffic resolves names.
    pub dns: Option<DnsConfig>,
    /// Each node's netfilter conntrack table; `None`: not modelled (no
    /// table ever fills).
    pub conntrack: Option<ConntrackSetup>,
    /// The Service data path; `None`: ideal (endpoint changes apply at
    /// once, lookups cost nothing).
    pub kube_proxy: Option<KubeProxyConfig>,
}

/// The conntrack table every node has, and the data path that decides
/// which flows reach it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConntrackSetup {
    /// Size, timeouts and kernel (the same on every node).
    pub table: ConntrackConfig,
    /// kube-proxy over netfilter, or an eBPF data path that bypasses the
    /// table for pod traffic.
    pub datapath: DataPath,
    /// MASQUERADE's port choice and race window, for traffic with `snat`.
    pub snat: Option<SnatConfig>,
    /// Share of same-socket UDP pairs (glibc's parallel A and AAAA) that
    /// two CPUs put through conntrack at once, so that they race to insert
    /// the flow's entry ([`conntrack::udp_pair_second`]); an input, no
    /// source measures it.
    pub udp_pair_concurrency: f64,
    /// kube-proxy deletes the UDP entries of an endpoint it removes
    /// (`conntrack -D`); false: the deletion fails, as in Preply's DNS
    /// postmortem ("Failed to delete kube-system/kube-dns:dns endpoint
    /// connections"), and flows keep their stale entries.
    pub flush_udp_on_endpoint_removal: bool,
}

/// The cluster DNS Service (kube-dns) and how pods query it.
#[derive(Clone, Debug, PartialEq)]
pub struct DnsConfig {
    /// The workload serving DNS: each of its pods is one CoreDNS container
    /// running [`DnsConfig::coredns`] (the workload's own server model is
    /// not used).
    pub workload: usize,
    /// The kube-dns ClusterIP written into every pod's resolv.conf.
    pub service_ip: Ipv4Addr,
    /// A only, or A and AAAA in parallel.
    pub qtypes: QueryTypes,
    /// Resources, Corefile settings and upstream of every CoreDNS pod.
    pub coredns: CoreDnsSpec,
    /// The node's own search domains, appended by the kubelet after the
    /// cluster's (e.g. `ec2.internal`).
    pub host_search: Vec<String>,
    /// Per client workload: its pod spec's `dnsConfig`.
    pub pod_dns: BTreeMap<usize, PodDnsConfig>,
    /// Workloads whose Service is headless (`clusterIP: None`): their name
    /// resolves to pod addresses, which clients connect to directly.
    pub headless: BTreeSet<usize>,
    /// NodeLocal DNSCache: the node-local-dns instance every node runs
    /// ([`CoreDnsSpec::node_local`]); `None`: pods query kube-dns.
    pub node_local: Option<CoreDnsSpec>,
    /// A HorizontalPodAutoscaler on the CoreDNS pods' CPU ([`crate::hpa`]);
    /// `None`: the replica count changes only on the timeline.
    pub autoscaler: Option<HpaSpec>,
}

/// A pod spec's `dnsConfig` (with `dnsPolicy: ClusterFirst`): searches are
/// appended to the kubelet's, options replace the defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodDnsConfig {
    /// Extra search domains.
    pub searches: Vec<String>,
    /// `ndots`.
    pub ndots: Option<u8>,
    /// `timeout` (whole seconds).
    pub timeout: Option<SimDuration>,
    /// `attempts`.
    pub attempts: Option<u8>,
    /// `single-request`.
    pub single_request: bool,
    /// `single-request-reopen`.
    pub single_request_reopen: bool,
    /// `rotate`.
    pub rotate: bool,
}

impl DnsConfig {
    /// The resolv.conf of a pod of workload `d` in `namespace`.
    pub fn resolv_conf(&self, namespace: &str, d: usize) -> ResolvConf {
        let host: Vec<&str> = self.host_search.iter().map(String::as_str).collect();
        let mut conf =
            ResolvConf::kubernetes_pod(namespace, std::net::IpAddr::V4(self.service_ip), &host);
        if let Some(p) = self.pod_dns.get(&d) {
            conf.search.extend(p.searches.iter().cloned());
            conf.ndots = p.ndots.unwrap_or(conf.ndots);
            conf.timeout = p.timeout.unwrap_or(conf.timeout);
            conf.attempts = p.attempts.unwrap_or(conf.attempts);
            conf.single_request |= p.single_request;
            conf.single_request_reopen |= p.single_request_reopen;
            conf.rotate |= p.rotate;
        }
        conf
    }
}

/// What the CoreDNS pods did in one window.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsWindowStats {
    /// Window name.
    pub window: String,
    /// Queries that reached a CoreDNS pod, by zone (cluster, external).
    pub received: [u64; 2],
    /// Replies by zone and rcode ([`RCODES`] order).
    pub replies: [[u64; 6]; 2],
    /// Replies the cache plugin gave, by zone.
    pub cache_hits: [u64; 2],
    /// Queries lost in a killed or deleted pod.
    pub dropped: u64,
    /// Queries lost on the way, in the client node's conntrack: the second
    /// of an A/AAAA pair that lost the insert race (`insert_failed`).
    pub insert_failed: u64,
    /// Queries a stale conntrack entry sent to a CoreDNS pod already deleted.
    pub stale: u64,
    /// Queries dropped because the client node's conntrack table was full.
    pub table_full: u64,
    /// With NodeLocal DNSCache: queries the node caches received, answered
    /// from their cache, and forwarded to kube-dns.
    pub node_local: [u64; 3],
}

/// The rcodes of [`DnsWindowStats::replies`], in order.
pub const RCODES: [Rcode; 6] = [
    Rcode::NoError,
    Rcode::NxDomain,
    Rcode::ServFail,
    Rcode::Refused,
    Rcode::FormErr,
    Rcode::NotImp,
];

fn rcode_index(r: Rcode) -> usize {
    RCODES.iter().position(|x| *x == r).unwrap_or(0)
}

fn zone_index(z: Zone) -> usize {
    match z {
        Zone::Cluster => 0,
        Zone::External => 1,
    }
}

/// Zone labels in [`DnsWindowStats`] order.
pub const ZONES: [&str; 2] = ["cluster", "external"];

/// Request outcomes of one traffic source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestTotals {
    /// Requests sent.
    pub sent: u64,
    /// Answered within the timeout.
    pub answered: u64,
    /// The client gave up.
    pub timed_out: u64,
    /// No ready endpoint.
    pub refused: u64,
    /// Queue full.
    pub rejected: u64,
    /// Still queued or in service at the end.
    pub in_flight: u64,
    /// Of `timed_out`: answers a server finished after the client had left
    /// (work wasted on nobody).
    pub wasted: u64,
    /// Of `timed_out`: connections whose first packet a NetworkPolicy dropped.
    pub blocked: u64,
    /// Name resolution failed before a connection was tried.
    pub lookup_failed: u64,
    /// Of `timed_out`: connections whose every SYN the client node's
    /// conntrack table dropped (table full).
    pub syn_dropped: u64,
    /// Of `timed_out`: connections the Service's data path sent to a pod
    /// already deleted.
    pub stale: u64,
    /// Of `timed_out`: connections to an address no pod holds (stale DNS).
    pub no_host: u64,
    /// Retries sent (tries after the first; not in `sent`).
    pub retried: u64,
    /// Of `timed_out`: tries still resolving their name at the deadline.
    pub resolving: u64,
}

impl RequestTotals {
    /// Requests that ended in an error the client saw.
    pub fn errors(&self) -> u64 {
        self.timed_out + self.refused + self.rejected + self.lookup_failed
    }
    /// Errors over requests that ended (0 when none ended).
    pub fn error_rate(&self) -> f64 {
        let ended = self.answered + self.errors();
        if ended == 0 {
            0.0
        } else {
            self.errors() as f64 / ended as f64
        }
    }
    fn count(&mut self, o: Outcome) {
        match o {
            Outcome::Answered(_) => self.answered += 1,
            Outcome::TimedOut => self.timed_out += 1,
            Outcome::AnsweredLate => {
                self.timed_out += 1;
                self.wasted += 1;
            }
            Outcome::Blocked => {
                self.timed_out += 1;
                self.blocked += 1;
            }
            Outcome::LookupFailed => self.lookup_failed += 1,
            Outcome::SynDropped => {
                self.timed_out += 1;
                self.syn_dropped += 1;
            }
            Outcome::StaleEndpoint => {
                self.timed_out += 1;
                self.stale += 1;
            }
            Outcome::Refused => self.refused += 1,
            Outcome::Rejected => self.rejected += 1,
            Outcome::NoHost => {
                self.timed_out += 1;
                self.no_host += 1;
            }
        }
    }
}

/// Statistics of one traffic source in one window, by outcome time.
#[derive(Clone, Debug)]
pub struct WindowStats {
    /// Window name.
    pub window: String,
    /// Traffic source name (its target Service's name unless named apart).
    pub service: String,
    /// Outcomes that happened in the window; `sent` counts arrivals in it
    /// and `in_flight` is not tracked per window (always 0).
    pub totals: RequestTotals,
    /// Latency of the answered requests.
    pub latency: LatencyHistogram,
    /// Name lookups started in the window.
    pub lookups: u64,
    /// DNS queries the lookups sent in the window.
    pub dns_queries: u64,
    /// Time `getaddrinfo` took, for lookups that ended in the window.
    pub lookup_latency: LatencyHistogram,
    /// From a connection's first SYN to its establishment, for the
    /// connections opened in the window (0 when the first SYN passed).
    pub connect_delay: LatencyHistogram,
    /// SYNs (first ones and retransmissions) the client nodes' conntrack
    /// tables dropped.
    pub syn_drops: u64,
    /// SYNs dropped because their SNAT port clashed with a concurrent flow's
    /// at conntrack confirmation (`insert_failed`).
    pub insert_failed: u64,
    /// Answered requests per server pod id (index: pod id).
    pub served: Vec<u64>,
    /// First-packet round trip of the connections opened through a
    /// kube-proxy in the window.
    pub first_packet: LatencyHistogram,
    /// CPU time the Service lookups of those connections took.
    pub lookup_cpu: SimDuration,
}

impl WindowStats {
    /// The largest share of the answered requests one pod served (0 when
    /// none was answered).
    pub fn top_pod_share(&self) -> f64 {
        let total: u64 = self.served.iter().sum();
        let top = self.served.iter().copied().max().unwrap_or(0);
        if total == 0 {
            0.0
        } else {
            top as f64 / total as f64
        }
    }
    /// Pods that served at least one answered request.
    pub fn pods_serving(&self) -> usize {
        self.served.iter().filter(|&&n| n > 0).count()
    }
}

/// One line of `kubectl get events`, aggregated like the API server does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventSummary {
    /// `Normal` or `Warning`.
    pub kind: &'static str,
    /// Reason (`FailedScheduling`, `FailedCreatePodSandBox`, `ScalingReplicaSet`...).
    pub reason: &'static str,
    /// Reporting component (`default-scheduler`, `kubelet`...).
    pub source: &'static str,
    /// The message, without the per-object parts.
    pub message: String,
    /// Times seen.
    pub count: u64,
    /// First seen.
    pub first: SimTime,
    /// Last seen.
    pub last: SimTime,
    /// One object it was about (`pod/checkout-...`).
    pub example_object: String,
}

/// Pod counts of one Deployment at the end of the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentState {
    /// Name.
    pub name: String,
    /// Replicas wanted.
    pub desired: u32,
    /// Pods per [`PodState`], in [`PodState::ALL`] order.
    pub by_state: [u32; 5],
}

impl DeploymentState {
    /// Pods `kubectl get pods` shows as Pending or ContainerCreating.
    pub fn pending(&self) -> u32 {
        PodState::ALL
            .iter()
            .zip(self.by_state)
            .filter(|(s, _)| s.is_pending())
            .map(|(_, n)| n)
            .sum()
    }
    /// Pods whose container runs.
    pub fn running(&self) -> u32 {
        self.by_state[3] + self.by_state[4]
    }
    /// Pods in one state.
    pub fn count(&self, s: PodState) -> u32 {
        self.by_state[s as usize]
    }
}

/// What one run produced.
pub struct RunOutput {
    /// Seed of the run.
    pub seed: u64,
    /// Time series and whole-run histograms.
    pub metrics: Metrics,
    /// Per window, per traffic source.
    pub windows: Vec<WindowStats>,
    /// Aggregated Kubernetes events, by first appearance.
    pub events: Vec<EventSummary>,
    /// Per Deployment at the end.
    pub deployments: Vec<DeploymentState>,
    /// Per traffic source over the whole run.
    pub requests: Vec<RequestTotals>,
    /// IPAM addresses usable at the end.
    pub ipam_usable: u64,
    /// IPAM addresses in use at the end.
    pub ipam_allocated: u64,
    /// Events the engine fired.
    pub events_fired: u64,
    /// Per node, what its conntrack table saw (empty when not modelled).
    pub conntrack: Vec<conntrack::CtStats>,
    /// What kube-proxy's syncs did, when one is configured.
    pub kube_proxy: Option<SyncStats>,
    /// Per window, what CoreDNS did (empty without DNS).
    pub dns_windows: Vec<DnsWindowStats>,
    /// CoreDNS container restarts over the run (OOM kills).
    pub dns_restarts: u64,
}

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
    /// kube-proxy's sync loop wakes.
    KubeProxySync,
    /// A connection's first packet, past the Service lookup, reaches pod
    /// `pod`; the request follows on connection `conn` (or on its own).
    FirstPacket {
        pod: u32,
        conn: Option<u32>,
        req: Request,
    },
    /// A policy change reaches the data path.
    PoliciesProgrammed(u32),
    /// The node lifecycle controller brings a node's not-ready taint in
    /// line with its network readiness.
    NodeTaint(u32),
    /// The not-ready toleration of the pods on a node runs out.
    Evict(u32),
    /// The HorizontalPodAutoscaler controller syncs.
    HpaSync,
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
    /// TCP retransmits a SYN the client node dropped.
    SynRetry {
        req: Request,
        client: u32,
        first: SimTime,
        attempt: u32,
    },
    /// `connect()` gives up (timeout or `tcp_syn_retries` used up).
    SynGiveUp(Request),
    /// An idle keep-alive connection is closed.
    IdleClose {
        conn: u32,
        gen: u32,
    },
}

/// A lookup in progress and the request waiting for it.
struct PendingLookup {
    generation: u32,
    lookup: Lookup,
    req: Request,
    client: u32,
    timers: Vec<(TimerToken, EventId)>,
    /// The CoreDNS pod each socket's UDP flow goes to.
    backends: Vec<(SocketId, u32)>,
    /// Data and TTL of the last reply with records.
    answer: Option<(u64, SimDuration)>,
}

/// A query the resolver sends.
struct SentQuery {
    slot: u32,
    generation: u32,
    query: QueryId,
    name: Arc<str>,
    qtype: QType,
    socket: SocketId,
}

/// A query waiting in a CoreDNS pod, by tag.
#[derive(Clone)]
struct DnsTag {
    slot: u32,
    generation: u32,
    query: u32,
    zone: Zone,
    /// Client node and flow key of the query's conntrack entry, if any.
    flow: Option<(u32, u64)>,
    /// Who asked, and who gets the reply.
    via: Via,
    /// The query, for a NodeLocal DNSCache that forwards it.
    name: Arc<str>,
    qtype: QType,
}

impl DnsTag {
    /// The tag of a query a lookup sent.
    fn of(q: &SentQuery, zone: Zone, flow: Option<(u32, u64)>, via: Via) -> DnsTag {
        DnsTag {
            slot: q.slot,
            generation: q.generation,
            query: q.query.0,
            zone,
            flow,
            via,
            name: q.name.clone(),
            qtype: q.qtype,
        }
    }
}

/// Who sent a query to a DNS server.
#[derive(Clone, Copy)]
enum Via {
    /// A pod's resolver, to a kube-dns pod.
    Pod,
    /// A pod's resolver, to its node's NodeLocal DNSCache.
    NodeLocal,
    /// A NodeLocal DNSCache forwarding a cluster-zone miss to a kube-dns
    /// pod (over TCP: `force_tcp`).
    Forward { node: u32, id: ForwardId },
}

/// Why a query was lost between its client and CoreDNS (in the order of
/// [`DnsRt::path_lost`]'s counters).
#[derive(Clone, Copy)]
enum PathLoss {
    /// The second of an A/AAAA pair lost the conntrack insert race.
    InsertFailed,
    /// A stale entry sent it to a CoreDNS pod that is gone.
    StaleEntry,
    /// The client node's conntrack table was full.
    TableFull,
}

/// Where the kube-dns Service's DNAT sends one query.
enum DnsRoute {
    /// To this CoreDNS pod; `Some(pod)` also when the packet created a new
    /// conntrack entry (the pair's second packet may race it).
    Pod {
        pod: u32,
        new_entry: bool,
        flow: Option<(u32, u64)>,
    },
    /// No endpoint: ICMP port unreachable.
    Unreachable,
    /// Lost on the way (counted where it happened).
    Lost,
}

/// The DNS side of a run.
struct DnsRt {
    /// resolv.conf per workload (its pods' namespace and dnsConfig).
    confs: Vec<ResolvConf>,
    /// (namespace, Service name) -> workload.
    services: BTreeMap<(String, String), usize>,
    /// External names that exist upstream.
    external: BTreeSet<String>,
    tags: Vec<Option<DnsTag>>,
    free_tags: Vec<u32>,
    /// Application caches: (client pod, traffic source) -> (rdata, expiry).
    cache: BTreeMap<(u32, u32), (u64, SimTime)>,
    /// Per node, the UDP flows to kube-dns through its DNAT, when the
    /// nodes' conntrack tables see pod traffic (empty otherwise).
    flows: Vec<UdpDnat>,
    /// Counters of queries lost on the way: insert race, stale entry, table full.
    path_lost: [CounterId; 3],
    /// Counters of queries that got an ICMP port unreachable (no endpoint)
    /// and of queries NetworkPolicy dropped.
    unreachable: CounterId,
    blocked: CounterId,
    /// Per node, its NodeLocal DNSCache (empty without one).
    node_local: Vec<CoreDns>,
    /// Counters: queries to the node caches, their cache hits, their
    /// forwards to kube-dns (with NodeLocal DNSCache).
    node_local_counters: Option<[CounterId; 3]>,
    /// The CoreDNS HorizontalPodAutoscaler and each pod's CPU busy time at
    /// its last sync.
    hpa: Option<Hpa>,
    hpa_busy: BTreeMap<u32, SimDuration>,
    /// Draws of the A/AAAA insert race.
    race_rng: SimRng,
    windows: Vec<DnsWindowStats>,
    /// Counters: received by zone, replies by zone x rcode, cache hits, dropped, restarts.
    received: [CounterId; 2],
    replies: [[CounterId; 6]; 2],
    cache_hits: CounterId,
    dropped: CounterId,
    restarts: CounterId,
    /// Gauges: queries inside CoreDNS, CPU used over the limit, most memory of a pod.
    gauges: [GaugeId; 3],
    /// CPU busy time of CoreDNS containers gone (killed or deleted).
    retired_busy: SimDuration,
    busy_at_last_sample: SimDuration,
    last_sample: SimTime,
    restart_total: u64,
}

struct Pod {
    deployment: u32,
    name: String,
    /// StatefulSet ordinal (0 for Deployment pods).
    ordinal: u32,
    state: PodState,
    node: Option<u32>,
    lease: Option<Lease>,
    backoff: SimDuration,
    deleted: bool,
    created: SimTime,
    server: Server,
    /// The CoreDNS container of a DNS pod.
    coredns: Option<Box<CoreDns>>,
}

struct DeploymentRt {
    desired: u32,
    created: u32,
    by_state: [u32; 5],
    live: Vec<u32>,
    endpoints: Endpoints,
    gauges: [GaugeId; 7],
    service_time_rng: SimRng,
}

/// Indices of a traffic source's counters (registered in this order).
const SENT: usize = 0;
const ANSWERED: usize = 1;
const TIMED_OUT: usize = 2;
const REFUSED: usize = 3;
const REJECTED: usize = 4;
const WASTED: usize = 5;
const BLOCKED: usize = 6;
const LOOKUP_FAILED: usize = 7;
const DNS_QUERIES: usize = 8;
const SYN_DROPPED: usize = 9;
const SYN_DROPS: usize = 10;
const CONNECTIONS: usize = 11;
const STALE: usize = 12;
const DNS_LOOKUPS: usize = 13;
const RETRIED: usize = 14;
const NO_HOST: usize = 15;

struct TrafficRt {
    rate: f64,
    next: Option<EventId>,
    arrivals: SimRng,
    pick: SimRng,
    totals: RequestTotals,
    counters: [CounterId; 16],
    latency: HistogramId,
    connect_delay: HistogramId,
    first_packet: HistogramId,
    /// Connections held per client pod (looked up, never iterated).
    clients: std::collections::HashMap<u32, ClientConns>,
    lookup_latency: HistogramId,
}

struct Sim<'a> {
    cfg: &'a ClusterConfig,
    engine: Engine<Ev>,
    metrics: Metrics,
    trace: &'a mut dyn TraceSink,
    ipam: Ipam,
    node_pods: Vec<u32>,
    pods: Vec<Pod>,
    unschedulable: BTreeSet<u32>,
    deps: Vec<DeploymentRt>,
    traffic: Vec<TrafficRt>,
    windows: Vec<WindowStats>,
    /// Aggregated events, each with the order it was first seen in.
    events: BTreeMap<(&'static str, String), (usize, EventSummary)>,
    ipam_gauges: [GaugeId; 2],
    /// What NetworkPolicy needs to know of each pod with an address, by pod id.
    pod_infos: Vec<Option<PodInfo>>,
    /// Lookups in progress, by slot; freed slots are reused.
    lookups: Vec<Option<PendingLookup>>,
    free_lookups: Vec<u32>,
    lookup_generation: u32,
    dns_pick: SimRng,
    rng: RngStreams,
    dns: Option<DnsRt>,
    /// Pod addresses in use -> pod.
    ip_owner: BTreeMap<Ipv4Addr, u32>,
    next_request: u64,
    /// Tries of traffic with retries whose outcome is not known yet.
    open_attempts: BTreeSet<u64>,
    /// Tries whose lookup is in progress.
    resolving: BTreeSet<u64>,
    nodes: Vec<NodeRt>,
    node_lifecycle: SimRng,
    /// Open client connections.
    conns: ConnSlab<CtId>,
    /// The connection path: conntrack, kube-proxy, NetworkPolicy, SNAT.
    path: Path,
    ct_gauge: GaugeId,
    kube_proxy_wake: Option<EventId>,
}

/// What the connection path reads of the run (disjoint fields of [`Sim`],
/// so the path's own state can be borrowed at the same time).
struct Env<'s> {
    cfg: &'s ClusterConfig,
    deps: &'s [DeploymentRt],
    pods: &'s [Pod],
    pod_infos: &'s [Option<PodInfo>],
}

impl PathEnv for Env<'_> {
    fn endpoints(&self, service: u32) -> &Endpoints {
        &self.deps[service as usize].endpoints
    }
    fn pod_gone(&self, pod: u32) -> bool {
        self.pods[pod as usize].deleted
    }
    fn pod_infos(&self) -> &[Option<PodInfo>] {
        self.pod_infos
    }
    fn server_port(&self, pod: u32) -> (crate::netpol::Protocol, u16) {
        let spec = &self.cfg.deployments[self.pods[pod as usize].deployment as usize];
        (spec.port.protocol, spec.port.number)
    }
}

/// What the cluster run tracks of one node beyond its pod count.
#[derive(Default)]
struct NodeRt {
    /// Its CNI daemon is not running: sandboxes cannot be created.
    cni_down: bool,
    /// Tainted `node.kubernetes.io/not-ready`: no new pods are placed here.
    not_ready: bool,
    /// The pending eviction of its pods, while tainted.
    eviction: Option<EventId>,
}

impl DnsRt {
    fn new(cfg: &ClusterConfig, d: &DnsConfig, metrics: &mut Metrics, rng: &RngStreams) -> DnsRt {
        let services = cfg
            .deployments
            .iter()
            .enumerate()
            .map(|(i, dep)| ((dep.namespace.clone(), dep.name.clone()), i))
            .collect();
        let external = cfg
            .traffic
            .iter()
            .filter_map(|t| t.resolve.as_deref())
            .map(|n| n.trim_end_matches('.').to_string())
            .filter(|n| !in_cluster_zone(n))
            .collect();
        let confs = cfg
            .deployments
            .iter()
            .enumerate()
            .map(|(i, dep)| d.resolv_conf(&dep.namespace, i))
            .collect();
        let mut received = Vec::new();
        let mut replies = Vec::new();
        for z in ZONES {
            received.push(metrics.counter(&format!("dns_queries_received{{zone={z}}}")));
            let per: Vec<CounterId> = RCODES
                .iter()
                .map(|r| metrics.counter(&format!("dns_replies{{zone={z},rcode={r}}}")))
                .collect();
            replies.push([per[0], per[1], per[2], per[3], per[4], per[5]]);
        }
        DnsRt {
            confs,
            services,
            external,
            tags: Vec::new(),
            free_tags: Vec::new(),
            cache: BTreeMap::new(),
            flows: cfg
                .conntrack
                .iter()
                .filter(|c| c.datapath.tracks_pod_flows())
                .flat_map(|_| cfg.nodes.iter().map(|_| UdpDnat::default()))
                .collect(),
            path_lost: [
                metrics.counter("dns_queries_insert_failed"),
                metrics.counter("dns_queries_stale_entry"),
                metrics.counter("dns_queries_table_full"),
            ],
            race_rng: rng.stream("conntrack/udp-insert-race"),
            unreachable: metrics.counter("dns_queries_unreachable"),
            blocked: metrics.counter("dns_queries_blocked"),
            node_local: d
                .node_local
                .iter()
                .flat_map(|spec| {
                    cfg.nodes.iter().filter_map(move |n| {
                        let name = format!("node-local-dns/{}", n.name);
                        CoreDns::new(*spec, &name, rng).ok()
                    })
                })
                .collect(),
            // The run starts in steady state: the controller has been
            // recommending the initial replica count.
            hpa: d
                .autoscaler
                .map(|h| Hpa::steady(h, SimTime::ZERO, cfg.deployments[d.workload].replicas)),
            hpa_busy: BTreeMap::new(),
            node_local_counters: d.node_local.map(|_| {
                [
                    metrics.counter("dns_node_local_queries"),
                    metrics.counter("dns_node_local_cache_hits"),
                    metrics.counter("dns_node_local_forwards"),
                ]
            }),
            windows: cfg
                .windows
                .iter()
                .map(|w| DnsWindowStats {
                    window: w.name.clone(),
                    ..DnsWindowStats::default()
                })
                .collect(),
            received: [received[0], received[1]],
            replies: [replies[0], replies[1]],
            cache_hits: metrics.counter("dns_cache_hits"),
            dropped: metrics.counter("dns_queries_dropped"),
            restarts: metrics.counter("dns_restarts"),
            gauges: [
                metrics.gauge("dns_in_flight"),
                metrics.gauge("dns_cpu_utilization"),
                metrics.gauge("dns_memory_mib_max"),
            ],
            retired_busy: SimDuration::ZERO,
            busy_at_last_sample: SimDuration::ZERO,
            last_sample: SimTime::ZERO,
            restart_total: 0,
        }
    }

    fn alloc_tag(&mut self, tag: DnsTag) -> u64 {
        match self.free_tags.pop() {
            Some(i) => {
                self.tags[i as usize] = Some(tag);
                u64::from(i)
            }
            None => {
                self.tags.push(Some(tag));
                (self.tags.len() - 1) as u64
            }
        }
    }

    fn take_tag(&mut self, tag: u64) -> Option<DnsTag> {
        let t = self.tags.get_mut(usize::try_from(tag).ok()?)?.take()?;
        self.free_tags.push(tag as u32);
        Some(t)
    }

    /// Window indices containing `now`.
    fn in_windows<'c>(cfg: &'c ClusterConfig, now: SimTime) -> impl Iterator<Item = usize> + 'c {
        cfg.windows
            .iter()
            .enumerate()
            .filter(move |(_, w)| w.contains(now))
            .map(|(i, _)| i)
    }
}

/// The CoreDNS pod kube-dns's DNAT picks for a new flow: from kube-proxy's
/// programmed endpoints when it is modelled (a pod removed since its last
/// sync may still be picked), else from the Ready pods.
fn kube_dns_pick(
    deps: &[DeploymentRt],
    kube_proxy: Option<&KubeProxy>,
    w: usize,
    rng: &mut SimRng,
) -> Option<u32> {
    match kube_proxy {
        Some(kp) => kp.pick(w, rng).map(|(p, _)| p),
        None => deps[w].endpoints.pick(rng),
    }
}

/// Whether `name` (no trailing dot) is in the `kubernetes` plugin's zone.
fn in_cluster_zone(name: &str) -> bool {
    name == "cluster.local" || name.ends_with(".cluster.local")
}

/// The address an answer's data names: 0 is a Service's ClusterIP (or an
/// address outside the cluster), else 1 + the pod's IPv4 address.
fn rdata_of(ip: Ipv4Addr) -> u64 {
    1 + u64::from(u32::from(ip))
}

fn address_of(rdata: u64) -> Option<Ipv4Addr> {
    rdata
        .checked_sub(1)
        .and_then(|x| u32::try_from(x).ok())
        .map(Ipv4Addr::from)
}

/// Runs `cfg` with `seed`, sending per-event records to `trace`.
pub fn run(cfg: &ClusterConfig, seed: u64, trace: &mut dyn TraceSink) -> RunOutput {
    Sim::new(cfg, seed, trace).run(seed)
}

impl<'a> Sim<'a> {
    fn new(cfg: &'a ClusterConfig, seed: u64, trace: &'a mut dyn TraceSink) -> Self {
        let rng = RngStreams::new(seed);
        let mut metrics = Metrics::new();
        let mut ipam = Ipam::new(cfg.ipam.clone());
        for _ in &cfg.nodes {
            ipam.add_node();
        }
        let deps = cfg
            .deployments
            .iter()
            .map(|d| {
                let g = |m: &mut Metrics, what: &str| {
                    m.gauge(&format!("{what}{{deployment={}}}", d.name))
                };
                DeploymentRt {
                    desired: d.replicas,
                    created: 0,
                    by_state: [0; 5],
                    live: Vec::new(),
                    endpoints: Endpoints::default(),
                    gauges: [
                        g(&mut metrics, "pods_desired"),
                        g(&mut metrics, "pods_pending"),
                        g(&mut metrics, "pods_unschedulable"),
                        g(&mut metrics, "pods_sandbox_failed"),
                        g(&mut metrics, "pods_running"),
                        g(&mut metrics, "pods_ready"),
                        g(&mut metrics, "requests_in_flight"),
                    ],
                    service_time_rng: rng.stream(&format!("service-time/{}", d.name)),
                }
            })
            .collect();
        let traffic = cfg
            .traffic
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let svc = t
                    .deployment
                    .map_or(t.name.as_str(), |d| cfg.deployments[d].name.as_str());
                let name = &t.name;
                let c = |m: &mut Metrics, what: &str| {
                    m.counter(&format!("requests_{what}{{service={name}}}"))
                };
                TrafficRt {
                    rate: t.rate,
                    next: None,
                    arrivals: rng.stream(&format!("traffic/{i}/{svc}")),
                    pick: rng.stream(&format!("service/{i}/{svc}")),
                    totals: RequestTotals::default(),
                    counters: [
                        c(&mut metrics, "sent"),
                        c(&mut metrics, "answered"),
                        c(&mut metrics, "timed_out"),
                        c(&mut metrics, "refused"),
                        c(&mut metrics, "rejected"),
                        c(&mut metrics, "wasted"),
                        c(&mut metrics, "blocked_by_policy"),
                        c(&mut metrics, "lookup_failed"),
                        c(&mut metrics, "dns_queries"),
                        c(&mut metrics, "syn_dropped"),
                        c(&mut metrics, "conntrack_syn_drops"),
                        c(&mut metrics, "connections_opened"),
                        c(&mut metrics, "stale_endpoint"),
                        c(&mut metrics, "dns_lookups"),
                        c(&mut metrics, "retried"),
                        c(&mut metrics, "no_host"),
                    ],
                    latency: metrics.histogram(&format!("request_latency{{service={name}}}")),
                    connect_delay: metrics.histogram(&format!("connect_delay{{service={name}}}")),
                    first_packet: metrics
                        .histogram(&format!("service_first_packet_rtt{{service={name}}}")),
                    clients: std::collections::HashMap::new(),
                    lookup_latency: metrics
                        .histogram(&format!("dns_lookup_latency{{service={name}}}")),
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
                    totals: RequestTotals::default(),
                    latency: LatencyHistogram::new(),
                    connect_delay: LatencyHistogram::new(),
                    syn_drops: 0,
                    insert_failed: 0,
                    served: Vec::new(),
                    first_packet: LatencyHistogram::new(),
                    lookup_cpu: SimDuration::ZERO,
                    lookups: 0,
                    dns_queries: 0,
                    lookup_latency: LatencyHistogram::new(),
                })
            })
            .collect();
        let ipam_gauges = [
            metrics.gauge("ipam_usable"),
            metrics.gauge("ipam_allocated"),
        ];
        let ct_gauge = metrics.gauge("conntrack_entries_max");
        let dns = cfg
            .dns
            .as_ref()
            .map(|d| DnsRt::new(cfg, d, &mut metrics, &rng));
        Sim {
            cfg,
            engine: Engine::new(),
            metrics,
            trace,
            ipam,
            node_pods: vec![0; cfg.nodes.len()],
            pods: Vec::new(),
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
                        .map(|k| KubeProxy::new(k, cfg.deployments.len())),
                    rng.stream("kube-proxy/first-packet"),
                ),
                policy: cfg.policy.as_ref().map(Enforcer::new),
                masquerade: cfg
                    .conntrack
                    .and_then(|c| c.snat)
                    .map(|c| Masquerade::new(Snat::new(c), rng.stream("snat/ports"))),
            },
            ct_gauge,
            kube_proxy_wake: None,
            rng,
            dns,
            ip_owner: BTreeMap::new(),
            next_request: 0,
            open_attempts: BTreeSet::new(),
            resolving: BTreeSet::new(),
        }
    }

    fn run(mut self, seed: u64) -> RunOutput {
        let end = SimTime::ZERO + self.cfg.duration;
        for (i, a) in self.cfg.timeline.iter().enumerate() {
            self.engine
                .schedule_at(SimTime::ZERO + a.at, Ev::Action(i as u32));
        }
        for d in 0..self.deps.len() {
            self.reconcile(d);
        }
        self.warm_start();
        if self.dns.as_ref().is_some_and(|d| d.hpa.is_some()) {
            self.engine
                .schedule_at(SimTime::ZERO + crate::hpa::SYNC_PERIOD, Ev::HpaSync);
        }
        if let Some(kp) = self.path.service.kube_proxy.as_mut() {
            for (d, dep) in self.deps.iter().enumerate() {
                kp.install(d, dep.endpoints.pods());
            }
            let at = kp.next_wake();
            self.kube_proxy_wake = Some(self.engine.schedule_at(at, Ev::KubeProxySync));
        }
        if let Some(p) = &self.cfg.policy {
            if !p.cni.enforces_policy() && p.sets.iter().any(|(_, s)| !s.is_empty()) {
                let msg = format!(
                    "NetworkPolicy objects exist but {} does not enforce them: all traffic passes",
                    p.cni.name()
                );
                self.event(
                    "Warning",
                    "PolicyNotEnforced",
                    "knsim",
                    msg,
                    format!("cni/{}", p.cni.name()),
                );
            }
        }
        for t in 0..self.traffic.len() {
            self.schedule_arrival(t);
        }
        self.engine.schedule_at(SimTime::ZERO, Ev::Sample);
        while let Some(ev) = self.engine.next_until(end) {
            self.handle(ev);
        }
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
                self.deps[d].endpoints.add(p);
            }
        }
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Action(i) => self.action(i as usize),
            Ev::Sample => {
                self.sample();
                if self.cfg.sample_every > SimDuration::ZERO {
                    self.engine.schedule_in(self.cfg.sample_every, Ev::Sample);
                }
            }
            Ev::SandboxAttempt(p) => self.sandbox_attempt(p),
            Ev::ContainerStarted(p) => {
                if self.pod_live_in(p, PodState::Creating) {
                    self.start_container(p);
                    self.set_state(p, PodState::Running);
                    let d = self.pods[p as usize].deployment as usize;
                    self.engine
                        .schedule_in(self.cfg.deployments[d].ready_after, Ev::ReadinessPassed(p));
                }
            }
            Ev::ReadinessPassed(p) => {
                if self.pod_live_in(p, PodState::Running) {
                    self.set_state(p, PodState::Ready);
                    let d = self.pods[p as usize].deployment as usize;
                    self.deps[d].endpoints.add(p);
                    self.endpoints_changed(d);
                }
            }
            Ev::Arrival(t) => self.arrival(t as usize),
            Ev::Completed { pod, req } => self.completed(pod, req),
            Ev::BlockedTimeout(req) => self.outcome(req, Outcome::Blocked),
            Ev::StaleTimeout(req) => self.outcome(req, Outcome::StaleEndpoint),
            Ev::KubeProxySync => self.kube_proxy_wake(),
            Ev::FirstPacket { pod, conn, req } => match conn {
                Some(conn) => self.send_on(conn, req),
                None => self.offer(pod, req),
            },
            Ev::SynRetry {
                req,
                client,
                first,
                attempt,
            } => self.dial(req, Some(client), first, attempt, None),
            Ev::SynGiveUp(req) => self.outcome(req, Outcome::SynDropped),
            Ev::IdleClose { conn, gen } => self.idle_close(conn, gen),
            Ev::NoHostTimeout(req) => self.outcome(req, Outcome::NoHost),
            Ev::ClientGiveUp(req) => self.outcome(req, Outcome::TimedOut),
            Ev::CoreDns { pod, token } => {
                let now = self.engine.now();
                if let Some(c) = self.pods[pod as usize].coredns.as_mut() {
                    let actions = c.on_timer(now, CoreDnsTimer(token));
                    self.coredns_actions(pod, actions);
                }
            }
            Ev::HpaSync => {
                self.hpa_sync();
                self.engine
                    .schedule_in(crate::hpa::SYNC_PERIOD, Ev::HpaSync);
            }
            Ev::NodeLocalDns { node, token } => {
                let now = self.engine.now();
                let actions = self
                    .dns
                    .as_mut()
                    .and_then(|d| d.node_local.get_mut(node as usize))
                    .map(|c| c.on_timer(now, CoreDnsTimer(token)));
                if let Some(actions) = actions {
                    self.node_local_actions(node, actions);
                }
            }
            Ev::PoliciesProgrammed(i) => self.policies_programmed(i as usize),
            Ev::NodeTaint(n) => self.node_taint(n as usize),
            Ev::Evict(n) => self.evict(n as usize),
            Ev::ResolverTimer {
                lookup,
                generation,
                token,
            } => {
                let now = self.engine.now();
                if let Some(p) = self.lookup_mut(lookup, generation) {
                    p.timers.retain(|(t, _)| t.0 != token);
                    let actions = p.lookup.on_timer(now, TimerToken(token));
                    self.resolver_actions(lookup, actions);
                }
            }
        }
    }

    fn pod_live_in(&self, p: u32, s: PodState) -> bool {
        let pod = &self.pods[p as usize];
        !pod.deleted && pod.state == s
    }

    fn action(&mut self, i: usize) {
        match &self.cfg.timeline[i].action {
            Action::Scale {
                deployment,
                replicas,
            } => {
                let (d, replicas) = (*deployment, *replicas);
                self.scale(d, replicas);
            }
            Action::SetRate { traffic, rate } => {
                let t = *traffic;
                self.traffic[t].rate = *rate;
                if let Some(id) = self.traffic[t].next.take() {
                    self.engine.cancel(id);
                }
                self.schedule_arrival(t);
            }
            Action::AddIpPool { cidr } => match self.ipam.add_pool(*cidr) {
                Ok(()) => self.event(
                    "Normal",
                    "IPPoolAdded",
                    "ipam",
                    format!("pod IP pool {cidr} added"),
                    format!("ippool/{cidr}"),
                ),
                Err(e) => self.event(
                    "Warning",
                    "IPPoolRejected",
                    "ipam",
                    e,
                    format!("ippool/{cidr}"),
                ),
            },
            Action::SetPolicies { .. } => {
                let delay = self
                    .cfg
                    .policy
                    .as_ref()
                    .map_or(SimDuration::ZERO, |p| p.delay);
                self.engine
                    .schedule_in(delay, Ev::PoliciesProgrammed(i as u32));
            }
            Action::FlushUdpConntrack { nodes } => {
                let now = self.engine.now();
                if let Some(dns) = self.dns.as_mut() {
                    for &n in nodes {
                        if let (Some(flows), Some(table)) =
                            (dns.flows.get_mut(n), self.path.tables.nodes.get_mut(n))
                        {
                            flows.flush_all(table, now);
                        }
                    }
                }
            }
            Action::CniDown { nodes } | Action::CniUp { nodes } => {
                let down = matches!(self.cfg.timeline[i].action, Action::CniDown { .. });
                for &n in nodes {
                    if self.nodes[n].cni_down == down {
                        continue;
                    }
                    self.nodes[n].cni_down = down;
                    let delay = node_lifecycle::taint_delay(&mut self.node_lifecycle);
                    self.engine.schedule_in(delay, Ev::NodeTaint(n as u32));
                }
            }
        }
    }

    /// `kubectl scale`, or an autoscaler: workload `d` wants `replicas` pods.
    fn scale(&mut self, d: usize, replicas: u32) {
        let spec = &self.cfg.deployments[d];
        let (kind, controller) = match spec.kind {
            WorkloadKind::Deployment => ("deployment", "deployment-controller"),
            WorkloadKind::StatefulSet => ("statefulset", "statefulset-controller"),
        };
        let name = &spec.name;
        let msg = format!(
            "Scaled {kind} {name} from {} to {replicas}",
            self.deps[d].desired
        );
        let obj = format!("{kind}/{name}");
        self.event("Normal", "ScalingReplicaSet", controller, msg, obj);
        self.deps[d].desired = replicas;
        self.reconcile(d);
    }

    /// The HorizontalPodAutoscaler of the CoreDNS workload syncs: the CPU
    /// its Ready pods used since the last sync, as a share of their
    /// request, sets the replica count.
    fn hpa_sync(&mut self) {
        let now = self.engine.now();
        let Some(w) = self.cfg.dns.as_ref().map(|d| d.workload) else {
            return;
        };
        let mut busy = BTreeMap::new();
        let (mut used, mut measured) = (SimDuration::ZERO, 0u32);
        for &p in &self.deps[w].live {
            let Some(c) = self.pods[p as usize].coredns.as_ref() else {
                continue;
            };
            let b = c.stats().cpu_busy;
            busy.insert(p, b);
            let last = self.dns.as_ref().and_then(|d| d.hpa_busy.get(&p).copied());
            // A pod has a metric once it has been seen at one sync before.
            if let (Some(last), true) = (last, self.pod_live_in(p, PodState::Ready)) {
                used = used + SimDuration::from_nanos(b.as_nanos().saturating_sub(last.as_nanos()));
                measured += 1;
            }
        }
        let current = self.deps[w].desired;
        let Some(dns) = self.dns.as_mut() else {
            return;
        };
        dns.hpa_busy = busy;
        let period = crate::hpa::SYNC_PERIOD.as_secs_f64() * f64::from(measured.max(1));
        let utilization = used.as_secs_f64() / period;
        let Some((replicas, why)) = dns
            .hpa
            .as_mut()
            .and_then(|h| h.recommend(now, current, measured, utilization))
        else {
            return;
        };
        let name = self.cfg.deployments[w].name.clone();
        self.event(
            "Normal",
            "SuccessfulRescale",
            "horizontal-pod-autoscaler",
            format!("New size: {replicas}; reason: {}", why.reason()),
            format!("horizontalpodautoscaler/{name}"),
        );
        self.scale(w, replicas);
    }

    /// The node lifecycle controller's pass for node `n`: taint it when its
    /// network is down, untaint it when it is back.
    fn node_taint(&mut self, n: usize) {
        let down = self.nodes[n].cni_down;
        if self.nodes[n].not_ready == down {
            return;
        }
        self.nodes[n].not_ready = down;
        let name = self.cfg.nodes[n].name.clone();
        if down {
            self.event_keyed(
                "Normal",
                "NodeNotReady",
                "node-controller",
                "NodeNotReady".into(),
                format!(
                    "Node {name} status is now: NodeNotReady ({})",
                    node_lifecycle::not_ready_message()
                ),
                format!("node/{name}"),
            );
            let id = self
                .engine
                .schedule_in(node_lifecycle::DEFAULT_TOLERATION, Ev::Evict(n as u32));
            self.nodes[n].eviction = Some(id);
        } else {
            self.event_keyed(
                "Normal",
                "NodeReady",
                "node-controller",
                "NodeReady".into(),
                format!("Node {name} status is now: NodeReady"),
                format!("node/{name}"),
            );
            if let Some(id) = self.nodes[n].eviction.take() {
                self.engine.cancel(id);
            }
            self.schedule_unschedulable();
        }
    }

    /// The taint eviction controller deletes the pods on node `n`; their
    /// controllers create replacements.
    fn evict(&mut self, n: usize) {
        self.nodes[n].eviction = None;
        let doomed: Vec<u32> = (0..self.pods.len() as u32)
            .filter(|&p| {
                let pod = &self.pods[p as usize];
                !pod.deleted && pod.node == Some(n as u32)
            })
            .collect();
        let mut touched = BTreeSet::new();
        for p in doomed {
            let pod = &self.pods[p as usize];
            let d = pod.deployment as usize;
            let msg =
                node_lifecycle::eviction_message(&self.cfg.deployments[d].namespace, &pod.name);
            let obj = format!("pod/{}", pod.name);
            self.event_keyed(
                "Normal",
                "TaintManagerEviction",
                "taint-eviction-controller",
                "TaintManagerEviction".into(),
                msg,
                obj,
            );
            self.deps[d].live.retain(|&q| q != p);
            self.delete_pod(p);
            touched.insert(d);
        }
        for d in touched {
            self.reconcile(d);
        }
    }

    /// Creates or deletes pods until the Deployment has `desired` live pods.
    fn reconcile(&mut self, d: usize) {
        let now = self.engine.now();
        while (self.deps[d].live.len() as u32) < self.deps[d].desired {
            let n = self.deps[d].created;
            self.deps[d].created += 1;
            let id = self.pods.len() as u32;
            let spec = &self.cfg.deployments[d];
            let (name, ordinal) = match spec.kind {
                WorkloadKind::Deployment => (pod_name(&spec.name, n), 0),
                WorkloadKind::StatefulSet => {
                    let used: BTreeSet<u32> = self.deps[d]
                        .live
                        .iter()
                        .map(|&p| self.pods[p as usize].ordinal)
                        .collect();
                    let ordinal = (0..).find(|o| !used.contains(o)).unwrap_or(0);
                    (format!("{}-{ordinal}", spec.name), ordinal)
                }
            };
            self.pods.push(Pod {
                deployment: d as u32,
                name,
                ordinal,
                state: PodState::Unschedulable,
                node: None,
                lease: None,
                backoff: SimDuration::ZERO,
                deleted: false,
                created: now,
                server: Server::default(),
                coredns: None,
            });
            self.deps[d].by_state[PodState::Unschedulable as usize] += 1;
            self.deps[d].live.push(id);
            self.try_schedule(id);
        }
        let excess = self.deps[d]
            .live
            .len()
            .saturating_sub(self.deps[d].desired as usize);
        if excess > 0 {
            let mut live = std::mem::take(&mut self.deps[d].live);
            // ReplicaSet order: lowest rank first, newest first among equals.
            live.sort_by_key(|&p| {
                let pod = &self.pods[p as usize];
                (
                    pod.state.deletion_rank(),
                    std::cmp::Reverse((pod.created, p)),
                )
            });
            let doomed: Vec<u32> = live.drain(..excess).collect();
            live.sort_unstable();
            self.deps[d].live = live;
            for p in doomed {
                self.delete_pod(p);
            }
            self.schedule_unschedulable();
        }
    }

    fn delete_pod(&mut self, p: u32) {
        if let Some(mut c) = self.pods[p as usize].coredns.take() {
            let actions = c.shutdown();
            self.retire_coredns(&c);
            self.coredns_actions(p, actions);
        }
        let pod = &mut self.pods[p as usize];
        pod.deleted = true;
        let (d, state, node, lease) = (
            pod.deployment as usize,
            pod.state,
            pod.node.take(),
            pod.lease.take(),
        );
        self.deps[d].by_state[state as usize] -= 1;
        self.deps[d].endpoints.remove(p);
        self.endpoints_changed(d);
        if self.cfg.dns.as_ref().is_some_and(|c| c.workload == d) {
            self.dns_endpoint_removed(p);
        }
        self.unschedulable.remove(&p);
        if let Some(n) = node {
            self.node_pods[n as usize] -= 1;
        }
        if let Some(l) = lease {
            self.ipam.release(l);
            self.forget_pod_info(p);
        }
    }

    fn try_schedule(&mut self, p: u32) {
        let views: Vec<NodeView> = self
            .cfg
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| NodeView {
                pods: self.node_pods[i],
                max_pods: n.max_pods,
                network_ready: self.ipam.node_has_pod_cidr(i) && !self.nodes[i].not_ready,
            })
            .collect();
        match scheduler::place(&views) {
            Ok(n) => {
                self.unschedulable.remove(&p);
                self.node_pods[n] += 1;
                self.pods[p as usize].node = Some(n as u32);
                self.set_state(p, PodState::Creating);
                self.sandbox_attempt(p);
            }
            Err(msg) => {
                if self.unschedulable.insert(p) {
                    let obj = format!("pod/{}", self.pods[p as usize].name);
                    self.event("Warning", "FailedScheduling", "default-scheduler", msg, obj);
                }
            }
        }
    }

    /// kube-scheduler moves unschedulable pods back to its active queue when
    /// a pod is deleted; they are retried in creation order.
    fn schedule_unschedulable(&mut self) {
        let waiting: Vec<u32> = self.unschedulable.iter().copied().collect();
        for p in waiting {
            self.try_schedule(p);
            if self.unschedulable.contains(&p) {
                break;
            }
        }
    }

    fn sandbox_attempt(&mut self, p: u32) {
        let pod = &self.pods[p as usize];
        if pod.deleted
            || !matches!(pod.state, PodState::Creating | PodState::SandboxFailed)
            || pod.lease.is_some()
        {
            return;
        }
        let node = pod.node.unwrap_or(0) as usize;
        let network = if self.nodes[node].cni_down {
            Err(node_lifecycle::CNI_NOT_INITIALIZED.to_string())
        } else {
            self.ipam.allocate(node)
        };
        match network {
            Ok(lease) => {
                self.pods[p as usize].lease = Some(lease);
                self.pods[p as usize].backoff = SimDuration::ZERO;
                self.record_pod_info(p, lease);
                self.set_state(p, PodState::Creating);
                let d = self.pods[p as usize].deployment as usize;
                self.engine
                    .schedule_in(self.cfg.deployments[d].startup, Ev::ContainerStarted(p));
            }
            Err(cni) => {
                self.set_state(p, PodState::SandboxFailed);
                let pod = &mut self.pods[p as usize];
                pod.backoff = kubelet::next_backoff(pod.backoff);
                let (delay, obj) = (pod.backoff, format!("pod/{}", pod.name));
                self.event(
                    "Warning",
                    "FailedCreatePodSandBox",
                    "kubelet",
                    kubelet::sandbox_failure_message(&cni),
                    obj,
                );
                self.engine.schedule_in(delay, Ev::SandboxAttempt(p));
            }
        }
    }

    fn set_state(&mut self, p: u32, s: PodState) {
        let pod = &mut self.pods[p as usize];
        let dep = &mut self.deps[pod.deployment as usize];
        dep.by_state[pod.state as usize] -= 1;
        dep.by_state[s as usize] += 1;
        pod.state = s;
    }

    fn schedule_arrival(&mut self, t: usize) {
        let tr = &mut self.traffic[t];
        if tr.rate > 0.0 {
            let gap = exponential(&mut tr.arrivals, 1.0 / tr.rate);
            tr.next = Some(self.engine.schedule_in(gap, Ev::Arrival(t as u32)));
        }
    }

    fn arrival(&mut self, t: usize) {
        let now = self.engine.now();
        let spec = &self.cfg.traffic[t];
        // Requests from a workload need a Ready pod of it to send them.
        let client = match spec.from {
            Some(w) => match self.deps[w].endpoints.pick(&mut self.traffic[t].pick) {
                Some(c) => Some(c),
                None => {
                    self.schedule_arrival(t);
                    return;
                }
            },
            None => None,
        };
        self.traffic[t].totals.sent += 1;
        self.traffic[t].totals.in_flight += 1;
        self.metrics.inc(self.traffic[t].counters[SENT]);
        let cfg = self.cfg;
        for (i, w) in cfg.windows.iter().enumerate() {
            if w.contains(now) {
                self.windows[i * cfg.traffic.len() + t].totals.sent += 1;
            }
        }
        self.next_request += 1;
        let req = Request {
            source: t as u32,
            client,
            id: self.next_request,
            attempt: 0,
            sent: now,
            deadline: now + spec.timeout,
            conn: None,
        };
        self.begin_attempt(req);
        self.schedule_arrival(t);
    }

    /// One try of a request: resolve (unless the application's cache
    /// answers) and connect.
    fn begin_attempt(&mut self, req: Request) {
        let t = req.source as usize;
        let spec = &self.cfg.traffic[t];
        if spec.retries > 0 {
            self.open_attempts.insert(req.id);
            self.engine.schedule_at(req.deadline, Ev::ClientGiveUp(req));
        }
        match (spec.resolve.is_some(), req.client) {
            (true, Some(c)) => {
                let now = self.engine.now();
                let cached = self.dns.as_ref().and_then(|d| {
                    d.cache
                        .get(&(c, t as u32))
                        .filter(|(_, expires)| *expires > now)
                        .map(|(rdata, _)| *rdata)
                });
                match cached {
                    Some(rdata) if spec.dns_cache.is_some() => self.after_lookup(req, rdata),
                    _ => self.start_lookup(req, c),
                }
            }
            _ => self.after_lookup(req, 0),
        }
    }

    /// The application retries a failed try.
    fn retry(&mut self, req: Request) {
        let now = self.engine.now();
        let t = req.source as usize;
        self.traffic[t].totals.retried += 1;
        self.metrics.inc(self.traffic[t].counters[RETRIED]);
        let cfg = self.cfg;
        for (i, w) in cfg.windows.iter().enumerate() {
            if w.contains(now) {
                self.windows[i * cfg.traffic.len() + t].totals.retried += 1;
            }
        }
        self.next_request += 1;
        let next = Request {
            id: self.next_request,
            attempt: req.attempt + 1,
            deadline: now + cfg.traffic[t].timeout,
            ..req
        };
        self.begin_attempt(next);
    }

    /// The name is resolved (`rdata`: which address): connect, or for a
    /// lookup-only source, the request is done.
    fn after_lookup(&mut self, req: Request, rdata: u64) {
        let now = self.engine.now();
        match self.cfg.traffic[req.source as usize].deployment {
            None => self.outcome(req, Outcome::Answered(now - req.sent)),
            Some(_) => self.connect(req, address_of(rdata)),
        }
    }

    /// Sends the request over a connection to a Ready endpoint of its
    /// Service (`addr` unset: through its ClusterIP), reusing an open one the
    /// client may reuse, or a new one ([`crate::connections`]); or to the
    /// pod address a headless Service's DNS answer gave.
    fn connect(&mut self, req: Request, addr: Option<Ipv4Addr>) {
        let t = req.source as usize;
        let client = req.client;
        let Some(d) = self.cfg.traffic[t].deployment else {
            return;
        };
        let mut target = None;
        if let Some(ip) = addr {
            match self.ip_owner.get(&ip) {
                None => {
                    self.engine
                        .schedule_at(req.deadline, Ev::NoHostTimeout(req));
                    return;
                }
                Some(&p)
                    if self.pod_live_in(p, PodState::Ready)
                        && self.pods[p as usize].deployment as usize == d =>
                {
                    target = Some(p)
                }
                // Another pod holds the address now, or this one is not
                // serving: its kernel answers the SYN with a reset.
                Some(_) => return self.outcome(req, Outcome::Refused),
            }
        } else if let Some(c) = client {
            match self.reusable_connection(t, c) {
                Ok(conn) => return self.send_on(conn, req),
                Err(want) => target = want,
            }
        }
        let now = self.engine.now();
        self.dial(req, client, now, 0, target);
    }

    /// Opens a connection (SYN number `attempt`, the first sent at `first`)
    /// to `target`, or to the endpoint kube-proxy picks, then sends `req`:
    /// the SYN goes along the connection path ([`crate::path`]); a drop
    /// becomes what the client sees, its follow-up an event.
    fn dial(
        &mut self,
        req: Request,
        client: Option<u32>,
        first: SimTime,
        attempt: u32,
        target: Option<u32>,
    ) {
        let now = self.engine.now();
        let t = req.source as usize;
        let Some(d) = self.cfg.traffic[t].deployment else {
            return;
        };
        let mode = self.cfg.traffic[t].connections;
        // Client-side balancing dials pod IPs: the application picks.
        let to = match (target, mode, client) {
            (Some(p), _, _) => Target::Pod(p),
            (None, ConnectionMode::ClientSide, Some(c)) => {
                if self.deps[d].endpoints.is_empty() {
                    return self.outcome(req, Outcome::Refused);
                }
                match self.next_turn(t, c) {
                    Some(p) => Target::Pod(p),
                    None => return self.outcome(req, Outcome::Refused),
                }
            }
            _ => Target::Service(d as u32),
        };
        let flow = Flow {
            client: client.map(|c| Client {
                pod: c,
                node: self.pods[c as usize].node,
            }),
            to,
            snat: self.cfg.traffic[t].snat,
        };
        let env = Env {
            cfg: self.cfg,
            deps: &self.deps,
            pods: &self.pods,
            pod_infos: &self.pod_infos,
        };
        let (trip, verdict) = self.path.open(&flow, now, &env, &mut self.traffic[t].pick);
        if let Some(fp) = trip.first_packet {
            self.record_first_packet(t, now, fp);
        }
        if let Err(drop) = verdict {
            return self.path_dropped(req, flow, first, attempt, drop);
        }
        let (Some(p), ct) = (trip.pod, trip.ct) else {
            return;
        };
        let first_packet = trip.first_packet;
        let delay = now.saturating_since(first);
        self.metrics.inc(self.traffic[t].counters[CONNECTIONS]);
        self.metrics.record(self.traffic[t].connect_delay, delay);
        self.for_windows(t, now, |w| w.connect_delay.record(delay));
        let Some(c) = client else {
            return match first_packet {
                Some(fp) => {
                    let ev = Ev::FirstPacket {
                        pod: p,
                        conn: None,
                        req,
                    };
                    self.engine.schedule_in(fp.rtt, ev);
                }
                None => self.offer(p, req),
            };
        };
        let conn = self.conns.insert(Conn {
            traffic: t as u32,
            client: c,
            server: p,
            ct,
            idle_timer: None,
            opened: now,
            gen: 0,
        });
        let cc = self.traffic[t].clients.entry(c).or_default();
        match mode {
            ConnectionMode::LongLived { per_client, .. } if (cc.open.len() as u32) < per_client => {
                cc.open.push(conn)
            }
            ConnectionMode::ClientSide => {
                cc.by_server.insert(p, conn);
            }
            _ => {}
        }
        match first_packet {
            Some(fp) => {
                let ev = Ev::FirstPacket {
                    pod: p,
                    conn: Some(conn),
                    req,
                };
                self.engine.schedule_in(fp.rtt, ev);
            }
            None => self.send_on(conn, req),
        }
    }

    /// The first packet's round trip and lookup CPU, per window.
    fn record_first_packet(&mut self, t: usize, now: SimTime, fp: FirstPacket) {
        self.metrics.record(self.traffic[t].first_packet, fp.rtt);
        self.for_windows(t, now, |w| {
            w.first_packet.record(fp.rtt);
            w.lookup_cpu = w.lookup_cpu + fp.lookup;
        });
    }

    /// kube-proxy's data path sent a new connection to pod `p`, already
    /// deleted: its SYNs (the retransmissions follow the same conntrack
    /// entry) are dropped until the client gives up.
    fn stale_endpoint(&mut self, p: u32) {
        let svc = &self.cfg.deployments[self.pods[p as usize].deployment as usize].name;
        let mode = self
            .path
            .service
            .kube_proxy
            .as_ref()
            .map_or("", |k| k.config().mode.name());
        let msg = format!(
            "connections to Service {svc} sent to deleted pod(s): the {mode} data path lists them until its next sync ends; SYNs dropped"
        );
        let obj = format!("pod/{}", self.pods[p as usize].name);
        self.event_keyed(
            "Warning",
            "StaleEndpoint",
            "kube-proxy",
            svc.clone(),
            msg,
            obj,
        );
    }

    /// The Ready pods of Deployment `d` changed: kube-proxy will sync.
    fn endpoints_changed(&mut self, d: usize) {
        let now = self.engine.now();
        if let Some(kp) = self.path.service.kube_proxy.as_mut() {
            let at = kp.changed(now, d);
            if let Some(id) = self.kube_proxy_wake.take() {
                self.engine.cancel(id);
            }
            self.kube_proxy_wake = Some(self.engine.schedule_at(at, Ev::KubeProxySync));
        }
    }

    /// kube-proxy's sync loop runs: a sync ends or starts.
    fn kube_proxy_wake(&mut self) {
        let now = self.engine.now();
        let deps = &self.deps;
        if let Some(kp) = self.path.service.kube_proxy.as_mut() {
            let at = kp.wake(now, |s| deps[s].endpoints.pods().to_vec());
            self.kube_proxy_wake = Some(self.engine.schedule_at(at, Ev::KubeProxySync));
        }
    }

    /// An open connection of client pod `c` the request may use, or the
    /// endpoint a new one must go to (client-side balancing), or neither.
    fn reusable_connection(&mut self, t: usize, c: u32) -> Result<u32, Option<u32>> {
        let mode = self.cfg.traffic[t].connections;
        let cc = self.traffic[t].clients.entry(c).or_default();
        let conn = match mode {
            ConnectionMode::PerRequest => return Err(None),
            ConnectionMode::KeepAlive { .. } => cc.idle.pop(),
            ConnectionMode::LongLived {
                per_client,
                max_age,
            } => {
                if (cc.open.len() as u32) < per_client {
                    return Err(None);
                }
                let i = cc.turn as usize % cc.open.len();
                cc.turn = cc.turn.wrapping_add(1);
                let conn = cc.open[i];
                let now = self.engine.now();
                let too_old = max_age
                    .is_some_and(|age| self.conns.get(conn).is_some_and(|x| x.opened + age <= now));
                if too_old {
                    // The server's GOAWAY: the client reconnects.
                    self.close(conn);
                    return Err(None);
                }
                Some(conn)
            }
            ConnectionMode::ClientSide => {
                let Some(p) = self.next_turn(t, c) else {
                    return Err(None);
                };
                match self.traffic[t]
                    .clients
                    .get(&c)
                    .and_then(|cc| cc.by_server.get(&p))
                {
                    Some(&conn) => Some(conn),
                    None => return Err(Some(p)),
                }
            }
        };
        let Some(conn) = conn else {
            return Err(None);
        };
        if let Some(timer) = self.conns.get_mut(conn).and_then(|x| x.idle_timer.take()) {
            self.engine.cancel(timer);
        }
        let server = self.conns.get(conn).map(|x| x.server);
        if server.is_some_and(|p| self.pod_live_in(p, PodState::Ready)) {
            return Ok(conn);
        }
        // The pod behind it is gone: the connection is found broken (RST or
        // GOAWAY) and a new one is opened.
        self.close(conn);
        match self.next_keepalive_idle(t, c) {
            Some(other) => Ok(other),
            None => Err(None),
        }
    }

    /// Another idle keep-alive connection whose pod still serves, closing
    /// broken ones on the way.
    fn next_keepalive_idle(&mut self, t: usize, c: u32) -> Option<u32> {
        loop {
            let conn = self.traffic[t].clients.get_mut(&c)?.idle.pop()?;
            if let Some(timer) = self.conns.get_mut(conn).and_then(|x| x.idle_timer.take()) {
                self.engine.cancel(timer);
            }
            let server = self.conns.get(conn).map(|x| x.server);
            if server.is_some_and(|p| self.pod_live_in(p, PodState::Ready)) {
                return Some(conn);
            }
            self.close(conn);
        }
    }

    /// Client-side balancing: the next Ready endpoint in turn.
    fn next_turn(&mut self, t: usize, c: u32) -> Option<u32> {
        let d = self.cfg.traffic[t].deployment?;
        let cc = self.traffic[t].clients.entry(c).or_default();
        let p = self.deps[d].endpoints.nth(cc.turn as usize);
        cc.turn = cc.turn.wrapping_add(1);
        p
    }

    /// The request travels on an established connection.
    fn send_on(&mut self, conn: u32, mut req: Request) {
        let now = self.engine.now();
        let Some(x) = self.conns.get(conn).copied() else {
            return self.offer_lost(req);
        };
        if let Some((n, id)) = x.ct {
            self.path.tables.nodes[n as usize].touch(now, id);
        }
        req.conn = Some(conn);
        self.offer(x.server, req);
    }

    /// A request whose connection vanished before it was sent: never, since
    /// connections close only between requests; counted as timed out to
    /// keep conservation if it ever happens.
    fn offer_lost(&mut self, req: Request) {
        self.outcome(req, Outcome::TimedOut);
    }

    /// Offers the request to pod `p`'s server.
    fn offer(&mut self, p: u32, req: Request) {
        let d = self.pods[p as usize].deployment as usize;
        let server_spec = &self.cfg.deployments[d].server;
        match self.pods[p as usize].server.offer(server_spec, req) {
            Admit::Start => self.start_service(p, req),
            Admit::Queued => {}
            Admit::Rejected => {
                self.outcome(req, Outcome::Rejected);
                self.request_done(req, true);
            }
        }
    }

    /// The request on a connection ended; `reusable`: the client still
    /// listens (answered, or a 503), so keep-alive may pool the connection.
    fn request_done(&mut self, req: Request, reusable: bool) {
        let Some(conn) = req.conn else { return };
        let Some(x) = self.conns.get(conn).copied() else {
            return;
        };
        let t = x.traffic as usize;
        match self.cfg.traffic[t].connections {
            ConnectionMode::KeepAlive {
                max_idle,
                idle_timeout,
            } if reusable => {
                let cc = self.traffic[t].clients.entry(x.client).or_default();
                if (cc.idle.len() as u32) < max_idle {
                    cc.idle.push(conn);
                    let timer = self
                        .engine
                        .schedule_in(idle_timeout, Ev::IdleClose { conn, gen: x.gen });
                    if let Some(c) = self.conns.get_mut(conn) {
                        c.idle_timer = Some(timer);
                    }
                } else {
                    self.close(conn);
                }
            }
            m if m.stays_open() => {
                if let Some((n, id)) = x.ct {
                    self.path.tables.nodes[n as usize].touch(self.engine.now(), id);
                }
            }
            _ => self.close(conn),
        }
    }

    /// A keep-alive connection was idle for its timeout.
    fn idle_close(&mut self, conn: u32, gen: u32) {
        let Some(x) = self.conns.get(conn).copied() else {
            return;
        };
        if x.gen != gen {
            return;
        }
        if let Some(cc) = self.traffic[x.traffic as usize].clients.get_mut(&x.client) {
            cc.idle.retain(|&i| i != conn);
        }
        self.close(conn);
    }

    /// The client closes a connection: its conntrack entry goes to TIME_WAIT.
    fn close(&mut self, conn: u32) {
        let now = self.engine.now();
        let Some(x) = self.conns.remove(conn) else {
            return;
        };
        if let Some(timer) = x.idle_timer {
            self.engine.cancel(timer);
        }
        if let Some((n, id)) = x.ct {
            self.path.tables.nodes[n as usize].set_state(now, id, CtState::TimeWait);
        }
        if let Some(cc) = self.traffic[x.traffic as usize].clients.get_mut(&x.client) {
            cc.open.retain(|&i| i != conn);
            if cc.by_server.get(&x.server) == Some(&conn) {
                cc.by_server.remove(&x.server);
            }
        }
    }

    /// The path dropped a new connection's SYN: the event an operator
    /// would see, the counters, and what the client does next.
    fn path_dropped(&mut self, req: Request, flow: Flow, first: SimTime, attempt: u32, drop: Drop) {
        let now = self.engine.now();
        let t = req.source as usize;
        match &drop {
            Drop::NoEndpoints => {}
            Drop::ConntrackFull { node, refused } => {
                self.metrics.inc(self.traffic[t].counters[SYN_DROPS]);
                self.for_windows(t, now, |w| w.syn_drops += 1);
                let obj = format!("node/{}", self.cfg.nodes[*node as usize].name);
                let msg = refused.to_string();
                self.event_keyed(
                    "Warning",
                    "ConntrackTableFull",
                    "kernel",
                    obj.clone(),
                    msg,
                    obj,
                );
            }
            Drop::StaleEndpoint { pod } => self.stale_endpoint(*pod),
            Drop::PolicyDenied { pod, denial } => {
                if let Some(c) = flow.client {
                    self.policy_denied(c.pod, *pod, denial);
                }
            }
            Drop::InsertFailed { node } => {
                self.for_windows(t, now, |w| w.insert_failed += 1);
                let obj = format!("node/{}", self.cfg.nodes[*node as usize].name);
                let msg = "SYN dropped: its SNAT source port clashed with a concurrent connection's at conntrack confirmation (conntrack -S: insert_failed)".to_string();
                self.event_keyed(
                    "Warning",
                    "ConntrackInsertFailed",
                    "kernel",
                    obj.clone(),
                    msg,
                    obj,
                );
            }
        }
        match (drop.client(), flow.client) {
            (ClientSees::Refused, _) => self.outcome(req, Outcome::Refused),
            (ClientSees::Retransmit, Some(c)) => self.syn_dropped(req, c.pod, first, attempt),
            (ClientSees::Retransmit | ClientSees::Silence, _) => {
                let ev = match drop {
                    Drop::PolicyDenied { .. } => Ev::BlockedTimeout(req),
                    _ => Ev::StaleTimeout(req),
                };
                self.engine.schedule_at(req.deadline, ev);
            }
        }
    }

    /// The SYN was dropped: TCP retransmits it, unless the client's timeout
    /// or `tcp_syn_retries` comes first.
    fn syn_dropped(&mut self, req: Request, client: u32, first: SimTime, attempt: u32) {
        let next = attempt + 1;
        match syn_retransmit_offset(next) {
            Some(off) if first + off < req.deadline => {
                self.engine.schedule_at(
                    first + off,
                    Ev::SynRetry {
                        req,
                        client,
                        first,
                        attempt: next,
                    },
                );
            }
            _ => {
                let give_up = (first + syn_give_up_offset()).min(req.deadline);
                self.engine.schedule_at(give_up, Ev::SynGiveUp(req));
            }
        }
    }

    /// Applies `f` to traffic source `t`'s statistics of every window that
    /// contains `now`.
    fn for_windows(&mut self, t: usize, now: SimTime, mut f: impl FnMut(&mut WindowStats)) {
        let cfg = self.cfg;
        for (i, w) in cfg.windows.iter().enumerate() {
            if w.contains(now) {
                f(&mut self.windows[i * cfg.traffic.len() + t]);
            }
        }
    }

    /// Starts resolving the traffic source's name from pod `client`, as
    /// glibc does with the resolv.conf the kubelet writes for the pod.
    fn start_lookup(&mut self, req: Request, client: u32) {
        let now = self.engine.now();
        let t = req.source as usize;
        let (Some(dns), Some(name)) = (&self.dns, self.cfg.traffic[t].resolve.as_deref()) else {
            self.after_lookup(req, 0);
            return;
        };
        let Some(qtypes) = self.cfg.dns.as_ref().map(|d| d.qtypes) else {
            return;
        };
        let conf = &dns.confs[self.pods[client as usize].deployment as usize];
        let Ok(lookup) = Lookup::new(conf, name, qtypes) else {
            self.outcome(req, Outcome::LookupFailed);
            return;
        };
        self.metrics.inc(self.traffic[t].counters[DNS_LOOKUPS]);
        let cfg = self.cfg;
        for (i, w) in cfg.windows.iter().enumerate() {
            if w.contains(now) {
                self.windows[i * cfg.traffic.len() + t].lookups += 1;
            }
        }
        self.resolving.insert(req.id);
        self.lookup_generation = self.lookup_generation.wrapping_add(1);
        let pending = PendingLookup {
            generation: self.lookup_generation,
            lookup,
            req,
            client,
            timers: Vec::new(),
            backends: Vec::new(),
            answer: None,
        };
        let slot = match self.free_lookups.pop() {
            Some(i) => {
                self.lookups[i as usize] = Some(pending);
                i
            }
            None => {
                self.lookups.push(Some(pending));
                (self.lookups.len() - 1) as u32
            }
        };
        let actions = self.lookups[slot as usize]
            .as_mut()
            .map_or_else(Vec::new, |p| p.lookup.start(now));
        self.resolver_actions(slot, actions);
    }

    fn lookup_mut(&mut self, slot: u32, generation: u32) -> Option<&mut PendingLookup> {
        self.lookups
            .get_mut(slot as usize)?
            .as_mut()
            .filter(|p| p.generation == generation)
    }

    /// Carries out what the resolver asks for.
    fn resolver_actions(&mut self, slot: u32, actions: Vec<ResolverAction>) {
        let now = self.engine.now();
        // The last query sent in this batch: its socket, and the endpoint
        // of the conntrack entry it created (glibc's A and AAAA leave in one
        // `sendmmsg`: the second may race the first's insert).
        let mut last_sent: Option<(SocketId, Option<u32>)> = None;
        for action in actions {
            let Some(p) = self.lookups.get_mut(slot as usize).and_then(Option::as_mut) else {
                return;
            };
            let generation = p.generation;
            match action {
                ResolverAction::Send {
                    query_id,
                    name,
                    qtype,
                    socket,
                    ..
                } => {
                    let t = p.req.source as usize;
                    self.metrics.inc(self.traffic[t].counters[DNS_QUERIES]);
                    let cfg = self.cfg;
                    for (i, w) in cfg.windows.iter().enumerate() {
                        if w.contains(now) {
                            self.windows[i * cfg.traffic.len() + t].dns_queries += 1;
                        }
                    }
                    let q = SentQuery {
                        slot,
                        generation,
                        query: query_id,
                        name,
                        qtype,
                        socket,
                    };
                    let racing = last_sent.and_then(|(s, ep)| ep.filter(|_| s == socket));
                    let created = self.send_dns_query(q, racing);
                    last_sent = Some((socket, created));
                }
                ResolverAction::SetTimer { at, token } => {
                    let id = self.engine.schedule_at(
                        at,
                        Ev::ResolverTimer {
                            lookup: slot,
                            generation,
                            token: token.0,
                        },
                    );
                    p.timers.push((token, id));
                }
                ResolverAction::CancelTimer { token } => {
                    if let Some(i) = p.timers.iter().position(|(t, _)| *t == token) {
                        let (_, id) = p.timers.swap_remove(i);
                        self.engine.cancel(id);
                    }
                }
                ResolverAction::Done(result) => {
                    let Some(done) = self.lookups[slot as usize].take() else {
                        return;
                    };
                    self.free_lookups.push(slot);
                    for (_, id) in done.timers {
                        self.engine.cancel(id);
                    }
                    let t = done.req.source as usize;
                    if now < done.req.deadline {
                        self.resolving.remove(&done.req.id);
                    }
                    let latency = result.latency();
                    self.metrics.record(self.traffic[t].lookup_latency, latency);
                    let cfg = self.cfg;
                    for (i, w) in cfg.windows.iter().enumerate() {
                        if w.contains(now) {
                            self.windows[i * cfg.traffic.len() + t]
                                .lookup_latency
                                .record(latency);
                        }
                    }
                    match result.outcome {
                        LookupOutcome::Answered { .. } if now < done.req.deadline => {
                            let (rdata, ttl) = done.answer.unwrap_or((0, SimDuration::ZERO));
                            let keep = match cfg.traffic[t].dns_cache {
                                Some(ClientDnsCache::RecordTtl) => Some(ttl),
                                Some(ClientDnsCache::Fixed(d)) => Some(d),
                                None => None,
                            };
                            if let (Some(keep), Some(dns)) = (keep, self.dns.as_mut()) {
                                dns.cache
                                    .insert((done.client, t as u32), (rdata, now + keep));
                            }
                            self.after_lookup(done.req, rdata);
                        }
                        LookupOutcome::Answered { .. } => {
                            self.outcome(done.req, Outcome::TimedOut);
                            self.resolving.remove(&done.req.id);
                        }
                        _ => {
                            self.outcome(done.req, Outcome::LookupFailed);
                            self.resolving.remove(&done.req.id);
                        }
                    }
                    return;
                }
            }
        }
    }

    /// One DNS query from a lookup to the kube-dns Service: through the
    /// Service's DNAT ([`Sim::dns_route`]) to a CoreDNS pod; dropped by
    /// policy or on the way (the resolver's timer will fire); an ICMP port
    /// unreachable when kube-dns has no endpoint. `racing`: the endpoint of
    /// the entry the previous packet on this socket just created. Returns
    /// the endpoint of the entry this packet created, if it created one.
    fn send_dns_query(&mut self, q: SentQuery, racing: Option<u32>) -> Option<u32> {
        let now = self.engine.now();
        let client = self.lookup_mut(q.slot, q.generation)?.client;
        if let Some(node) = self.pods[client as usize].node.filter(|&n| {
            self.dns
                .as_ref()
                .is_some_and(|d| (n as usize) < d.node_local.len())
        }) {
            self.node_local_query(q, node);
            return None;
        }
        let (server, created, flow) = match self.dns_route(&q, client, racing) {
            DnsRoute::Pod {
                pod,
                new_entry,
                flow,
            } => (pod, new_entry.then_some(pod), flow),
            DnsRoute::Unreachable => {
                if let Some(dns) = self.dns.as_ref() {
                    self.metrics.inc(dns.unreachable);
                }
                if let Some(p) = self.lookup_mut(q.slot, q.generation) {
                    let actions = p.lookup.on_unreachable(now, q.query);
                    self.resolver_actions(q.slot, actions);
                }
                return None;
            }
            DnsRoute::Lost => return None,
        };
        if self.pods[server as usize].deleted || self.pods[server as usize].coredns.is_none() {
            // A stale entry: the packet goes to an address nobody holds.
            self.dns_path_lost(PathLoss::StaleEntry);
            return created;
        }
        if self.policy_denies(client, server) {
            if let Some(dns) = self.dns.as_ref() {
                self.metrics.inc(dns.blocked);
            }
            return created;
        }
        let (zone, existence, rdata) = self.dns_truth(&q.name, q.qtype);
        let dns = self.dns.as_mut()?;
        let z = zone_index(zone);
        self.metrics.inc(dns.received[z]);
        for i in DnsRt::in_windows(self.cfg, now) {
            dns.windows[i].received[z] += 1;
        }
        let tag = dns.alloc_tag(DnsTag::of(&q, zone, flow, Via::Pod));
        let query = DnsQuery {
            tag,
            name: &q.name,
            qtype: q.qtype,
            zone,
            existence,
            rdata,
        };
        let Some(c) = self.pods[server as usize].coredns.as_mut() else {
            dns.take_tag(tag);
            return created;
        };
        let actions = c.offer(now, query);
        self.coredns_actions(server, actions);
        created
    }

    /// The CoreDNS pod the kube-dns Service's DNAT sends query `q` to.
    ///
    /// Without conntrack in the model (or with an eBPF data path), each
    /// socket's flow goes to the pod it was first balanced to while that
    /// pod is Ready, and is balanced afresh otherwise (an ideal kube-proxy
    /// that flushes at once). With it, the client node's table pins the
    /// flow to the endpoint its live entry names, a stale one included,
    /// until the entry idles out or kube-proxy flushes it; a new entry may
    /// find the table full; and the second packet of a same-socket pair
    /// may lose the insert race to the first.
    fn dns_route(&mut self, q: &SentQuery, client: u32, racing: Option<u32>) -> DnsRoute {
        let now = self.engine.now();
        let Some(w) = self.cfg.dns.as_ref().map(|d| d.workload) else {
            return DnsRoute::Lost;
        };
        let conntrack = self.cfg.conntrack.filter(|c| c.datapath.tracks_pod_flows());
        let node = self.pods[client as usize].node;
        let (Some(ct), Some(node), Some(dns)) = (conntrack, node, self.dns.as_mut()) else {
            let Some(p) = self.lookup_mut(q.slot, q.generation) else {
                return DnsRoute::Lost;
            };
            let known = p
                .backends
                .iter()
                .find(|(s, _)| *s == q.socket)
                .map(|(_, b)| *b);
            if let Some(b) = known.filter(|&b| self.pod_live_in(b, PodState::Ready)) {
                return DnsRoute::Pod {
                    pod: b,
                    new_entry: false,
                    flow: None,
                };
            }
            let Some(b) = kube_dns_pick(
                &self.deps,
                self.path.service.kube_proxy.as_ref(),
                w,
                &mut self.dns_pick,
            ) else {
                return DnsRoute::Unreachable;
            };
            if let Some(p) = self.lookup_mut(q.slot, q.generation) {
                p.backends.retain(|(s, _)| *s != q.socket);
                p.backends.push((q.socket, b));
            }
            return DnsRoute::Pod {
                pod: b,
                new_entry: false,
                flow: None,
            };
        };
        let t = self.lookups[q.slot as usize]
            .as_ref()
            .map_or(0, |p| p.req.source);
        // The flow: the client's socket to kube-dns:53.
        let key = if self.cfg.traffic[t as usize].persistent_dns_socket {
            1 << 63 | u64::from(client) << 16 | u64::from(t)
        } else {
            u64::from(q.generation & 0x7fff_ffff) << 32 | u64::from(q.socket.0)
        };
        let (deps, pick_rng) = (&self.deps, &mut self.dns_pick);
        let table = &mut self.path.tables.nodes[node as usize];
        let kp = self.path.service.kube_proxy.as_ref();
        let mut pick = || kube_dns_pick(deps, kp, w, pick_rng);
        if let Some(first) = racing {
            let kernel = table.config().kernel;
            match conntrack::udp_pair_second(
                kernel,
                first,
                ct.udp_pair_concurrency,
                &mut pick,
                &mut dns.race_rng,
            ) {
                UdpPairSecond::InsertFailed => {
                    self.dns_path_lost(PathLoss::InsertFailed);
                    return DnsRoute::Lost;
                }
                UdpPairSecond::Clashed(pod) => {
                    return DnsRoute::Pod {
                        pod,
                        new_entry: false,
                        flow: None,
                    }
                }
                UdpPairSecond::Follows(_) => {}
            }
        }
        let flow = Some((node, key));
        match dns.flows[node as usize].send(table, now, key, pick, &mut self.path.tables.early_drop)
        {
            UdpSend::Existing(pod) => DnsRoute::Pod {
                pod,
                new_entry: false,
                flow,
            },
            UdpSend::New(pod) => DnsRoute::Pod {
                pod,
                new_entry: true,
                flow,
            },
            UdpSend::NoEndpoint => DnsRoute::Unreachable,
            UdpSend::TableFull => {
                self.dns_path_lost(PathLoss::TableFull);
                DnsRoute::Lost
            }
        }
    }

    /// Counts a query lost on the way to CoreDNS.
    fn dns_path_lost(&mut self, why: PathLoss) {
        let now = self.engine.now();
        let Some(dns) = self.dns.as_mut() else {
            return;
        };
        self.metrics.inc(dns.path_lost[why as usize]);
        for i in DnsRt::in_windows(self.cfg, now) {
            let w = &mut dns.windows[i];
            *match why {
                PathLoss::InsertFailed => &mut w.insert_failed,
                PathLoss::StaleEntry => &mut w.stale,
                PathLoss::TableFull => &mut w.table_full,
            } += 1;
        }
    }

    /// kube-proxy removed DNS pod `p` from the endpoints: it deletes the
    /// pod's UDP conntrack entries on every node, unless that fails.
    fn dns_endpoint_removed(&mut self, p: u32) {
        let now = self.engine.now();
        let flush = self
            .cfg
            .conntrack
            .is_some_and(|c| c.flush_udp_on_endpoint_removal);
        if let (true, Some(dns)) = (flush, self.dns.as_mut()) {
            for (flows, table) in dns.flows.iter_mut().zip(self.path.tables.nodes.iter_mut()) {
                flows.flush_endpoint(table, now, p);
            }
        }
    }

    /// What the cluster's DNS truth says about `name`: its zone, whether
    /// it has records of `qtype`, and which address (see [`rdata_of`]).
    fn dns_truth(&self, name: &str, qtype: QType) -> (Zone, Existence, u64) {
        let name = name.trim_end_matches('.');
        let Some(dns) = self.dns.as_ref() else {
            return (Zone::External, Existence::NxDomain, 0);
        };
        if !in_cluster_zone(name) {
            if !dns.external.contains(name) {
                return (Zone::External, Existence::NxDomain, 0);
            }
            return match qtype {
                QType::A => (Zone::External, Existence::Records(1), 0),
                QType::Aaaa => (Zone::External, Existence::NoData, 0),
            };
        }
        let found = name.strip_suffix(".svc.cluster.local").and_then(|rest| {
            let (head, ns) = rest.rsplit_once('.')?;
            if let Some(&d) = dns.services.get(&(ns.to_string(), head.to_string())) {
                return Some(self.service_records(d, None));
            }
            // <pod>.<service>.<ns>: a StatefulSet pod behind a headless Service.
            let (pod, svc) = head.rsplit_once('.')?;
            let &d = dns.services.get(&(ns.to_string(), svc.to_string()))?;
            Some(self.service_records(d, Some(pod)))
        });
        let (existence, rdata) = match found {
            Some(Some((n, rdata))) => (Existence::Records(n), rdata),
            Some(None) => (Existence::NoData, 0),
            None => (Existence::NxDomain, 0),
        };
        match (qtype, existence) {
            (QType::Aaaa, Existence::NxDomain) => (Zone::Cluster, Existence::NxDomain, 0),
            (QType::Aaaa, _) => (Zone::Cluster, Existence::NoData, 0),
            (QType::A, e) => (Zone::Cluster, e, rdata),
        }
    }

    /// A records of workload `d`'s Service: its ClusterIP, or for a
    /// headless Service its Ready pods (the first one's address as the
    /// data), or one pod by name. `None`: the name exists, no address.
    fn service_records(&self, d: usize, pod: Option<&str>) -> Option<(u16, u64)> {
        let headless = self
            .cfg
            .dns
            .as_ref()
            .is_some_and(|c| c.headless.contains(&d));
        if !headless {
            return pod.is_none().then_some((1, 0));
        }
        // StatefulSets are small: their live pods are scanned.
        let mut ready: Vec<(u32, u32)> = self.deps[d]
            .live
            .iter()
            .filter(|&&p| self.pod_live_in(p, PodState::Ready))
            .filter(|&&p| pod.is_none_or(|n| self.pods[p as usize].name == n))
            .map(|&p| (self.pods[p as usize].ordinal, p))
            .collect();
        ready.sort_unstable();
        let &(_, first) = ready.first()?;
        let ip = self.pods[first as usize].lease.map(|l| l.ip)?;
        Some((u16::try_from(ready.len()).unwrap_or(u16::MAX), rdata_of(ip)))
    }

    /// Carries out what a CoreDNS container asks for.
    fn coredns_actions(&mut self, pod: u32, actions: Vec<CoreDnsAction>) {
        let now = self.engine.now();
        for a in actions {
            match a {
                CoreDnsAction::SetTimer { at, token } => {
                    self.engine.schedule_at(
                        at,
                        Ev::CoreDns {
                            pod,
                            token: token.0,
                        },
                    );
                }
                CoreDnsAction::Reply {
                    tag,
                    reply,
                    source,
                    rdata,
                    ttl,
                } => self.dns_reply(tag, reply, source, rdata, ttl),
                // kube-dns pods run `ClusterZone::Kubernetes`: they answer
                // the cluster zone themselves and never forward it.
                CoreDnsAction::Forward { tag, .. } => {
                    if let Some(dns) = self.dns.as_mut() {
                        dns.take_tag(tag);
                    }
                }
                CoreDnsAction::Dropped { tag, .. } => {
                    if let Some(dns) = self.dns.as_mut() {
                        dns.take_tag(tag);
                        self.metrics.inc(dns.dropped);
                        for i in DnsRt::in_windows(self.cfg, now) {
                            dns.windows[i].dropped += 1;
                        }
                    }
                }
                CoreDnsAction::OomKilled {
                    memory, restart_at, ..
                } => self.coredns_killed(pod, memory, restart_at),
                CoreDnsAction::Started => {
                    if self.pod_live_in(pod, PodState::Running) {
                        let d = self.pods[pod as usize].deployment as usize;
                        self.engine.schedule_in(
                            self.cfg.deployments[d].ready_after,
                            Ev::ReadinessPassed(pod),
                        );
                    }
                }
            }
        }
    }

    /// A CoreDNS reply reaches its lookup.
    fn dns_reply(
        &mut self,
        tag: u64,
        reply: Reply,
        source: AnswerSource,
        rdata: u64,
        ttl: SimDuration,
    ) {
        let now = self.engine.now();
        let Some(dns) = self.dns.as_mut() else {
            return;
        };
        let Some(q) = dns.take_tag(tag) else {
            return;
        };
        if let Some((node, key)) = q.flow {
            if let Some(table) = self.path.tables.nodes.get_mut(node as usize) {
                dns.flows[node as usize].reply(table, now, key);
            }
        }
        let (z, r) = (zone_index(q.zone), rcode_index(reply.rcode));
        self.metrics.inc(dns.replies[z][r]);
        let hit = source == AnswerSource::Cache;
        if hit {
            self.metrics.inc(dns.cache_hits);
        }
        for i in DnsRt::in_windows(self.cfg, now) {
            dns.windows[i].replies[z][r] += 1;
            dns.windows[i].cache_hits[z] += u64::from(hit);
        }
        if let Via::Forward { node, id } = q.via {
            let actions = dns
                .node_local
                .get_mut(node as usize)
                .map(|c| c.on_forward_reply(now, id, reply, rdata, ttl));
            if let Some(actions) = actions {
                self.node_local_actions(node, actions);
            }
            return;
        }
        self.deliver_dns_reply(&q, reply, rdata, ttl);
    }

    /// A reply reaches the lookup that sent the query.
    fn deliver_dns_reply(&mut self, q: &DnsTag, reply: Reply, rdata: u64, ttl: SimDuration) {
        let now = self.engine.now();
        let Some(p) = self.lookup_mut(q.slot, q.generation) else {
            return;
        };
        if reply.answers > 0 {
            p.answer = Some((rdata, ttl));
        }
        let actions = p.lookup.on_reply(now, QueryId(q.query), reply);
        self.resolver_actions(q.slot, actions);
    }

    /// A pod's query to its node's NodeLocal DNSCache (169.254.20.10: no
    /// DNAT, and NOTRACK rules keep it out of conntrack).
    fn node_local_query(&mut self, q: SentQuery, node: u32) {
        let now = self.engine.now();
        let (zone, existence, rdata) = self.dns_truth(&q.name, q.qtype);
        let Some(dns) = self.dns.as_mut() else {
            return;
        };
        if let Some(c) = dns.node_local_counters {
            self.metrics.inc(c[0]);
        }
        for i in DnsRt::in_windows(self.cfg, now) {
            dns.windows[i].node_local[0] += 1;
        }
        let tag = dns.alloc_tag(DnsTag::of(&q, zone, None, Via::NodeLocal));
        let query = DnsQuery {
            tag,
            name: &q.name,
            qtype: q.qtype,
            zone,
            existence,
            rdata,
        };
        let Some(c) = dns.node_local.get_mut(node as usize) else {
            return;
        };
        let actions = c.offer(now, query);
        self.node_local_actions(node, actions);
    }

    /// Carries out what a node's NodeLocal DNSCache asks for.
    fn node_local_actions(&mut self, node: u32, actions: Vec<CoreDnsAction>) {
        let now = self.engine.now();
        for a in actions {
            match a {
                CoreDnsAction::SetTimer { at, token } => {
                    self.engine.schedule_at(
                        at,
                        Ev::NodeLocalDns {
                            node,
                            token: token.0,
                        },
                    );
                }
                CoreDnsAction::Reply {
                    tag,
                    reply,
                    source,
                    rdata,
                    ttl,
                } => {
                    let Some(dns) = self.dns.as_mut() else {
                        return;
                    };
                    let Some(q) = dns.take_tag(tag) else {
                        continue;
                    };
                    if source == AnswerSource::Cache {
                        if let Some(c) = dns.node_local_counters {
                            self.metrics.inc(c[1]);
                        }
                        for i in DnsRt::in_windows(self.cfg, now) {
                            dns.windows[i].node_local[1] += 1;
                        }
                    }
                    self.deliver_dns_reply(&q, reply, rdata, ttl);
                }
                CoreDnsAction::Forward { tag, id } => self.node_local_forward(node, tag, id),
                CoreDnsAction::Dropped { tag, .. } => {
                    if let Some(dns) = self.dns.as_mut() {
                        dns.take_tag(tag);
                    }
                }
                // No memory limit (the manifest sets none): never killed.
                CoreDnsAction::OomKilled { .. } | CoreDnsAction::Started => {}
            }
        }
    }

    /// A node cache forwards a cluster-zone miss to kube-dns (`forward .
    /// <kube-dns ClusterIP> { force_tcp }`): to a Ready CoreDNS pod picked
    /// per forward (TCP connections and their conntrack entries are not
    /// modelled); with none, the try goes unanswered and the cache's read
    /// timeout decides.
    fn node_local_forward(&mut self, node: u32, tag: u64, id: ForwardId) {
        let now = self.engine.now();
        let Some(w) = self.cfg.dns.as_ref().map(|d| d.workload) else {
            return;
        };
        let Some(server) = kube_dns_pick(
            &self.deps,
            self.path.service.kube_proxy.as_ref(),
            w,
            &mut self.dns_pick,
        ) else {
            return;
        };
        let Some(dns) = self.dns.as_mut() else {
            return;
        };
        let Some(asked) = dns.tags.get(tag as usize).and_then(Option::as_ref) else {
            return;
        };
        let (name, qtype) = (asked.name.clone(), asked.qtype);
        if let Some(c) = dns.node_local_counters {
            self.metrics.inc(c[2]);
        }
        for i in DnsRt::in_windows(self.cfg, now) {
            dns.windows[i].node_local[2] += 1;
        }
        let (zone, existence, rdata) = self.dns_truth(&name, qtype);
        let Some(dns) = self.dns.as_mut() else {
            return;
        };
        let z = zone_index(zone);
        self.metrics.inc(dns.received[z]);
        for i in DnsRt::in_windows(self.cfg, now) {
            dns.windows[i].received[z] += 1;
        }
        let fwd = dns.alloc_tag(DnsTag {
            slot: 0,
            generation: 0,
            query: 0,
            zone,
            flow: None,
            via: Via::Forward { node, id },
            name: name.clone(),
            qtype,
        });
        let query = DnsQuery {
            tag: fwd,
            name: &name,
            qtype,
            zone,
            existence,
            rdata,
        };
        let Some(c) = self.pods[server as usize].coredns.as_mut() else {
            dns.take_tag(fwd);
            return;
        };
        let actions = c.offer(now, query);
        self.coredns_actions(server, actions);
    }

    /// A DNS pod's container starts: a fresh CoreDNS.
    fn start_container(&mut self, p: u32) {
        let d = self.pods[p as usize].deployment as usize;
        let Some(spec) = self
            .cfg
            .dns
            .as_ref()
            .filter(|c| c.workload == d)
            .map(|c| c.coredns)
        else {
            return;
        };
        match CoreDns::new(spec, &self.pods[p as usize].name, &self.rng) {
            Ok(c) => self.pods[p as usize].coredns = Some(Box::new(c)),
            Err(e) => {
                let obj = format!("pod/{}", self.pods[p as usize].name);
                self.event("Warning", "Failed", "kubelet", e.to_string(), obj);
            }
        }
    }

    /// The kernel killed a CoreDNS container at its memory limit: the pod
    /// leaves the endpoints until it restarts and is Ready again.
    fn coredns_killed(&mut self, p: u32, memory: u64, restart_at: SimTime) {
        let now = self.engine.now();
        let d = self.pods[p as usize].deployment as usize;
        if self.pods[p as usize].state == PodState::Ready {
            self.set_state(p, PodState::Running);
            self.deps[d].endpoints.remove(p);
            self.dns_endpoint_removed(p);
        }
        let limit = self.pods[p as usize]
            .coredns
            .as_ref()
            .map_or(0, |c| c.spec().memory_limit);
        if let Some(dns) = self.dns.as_mut() {
            dns.restart_total += 1;
            self.metrics.inc(dns.restarts);
        }
        let name = self.pods[p as usize].name.clone();
        let workload = self.cfg.deployments[d].name.clone();
        let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
        self.event_keyed(
            "Warning",
            "OOMKilling",
            "kernel-monitor",
            workload.clone(),
            format!(
                "Memory cgroup out of memory: Killed process (coredns) at {:.1} MiB, limit {:.0} MiB",
                mib(memory),
                mib(limit)
            ),
            format!("pod/{name}"),
        );
        if restart_at > now {
            self.event_keyed(
                "Warning",
                "BackOff",
                "kubelet",
                workload,
                format!("Back-off restarting failed container coredns in pod {name}"),
                format!("pod/{name}"),
            );
        }
    }

    /// Keeps the CPU time of a CoreDNS container that is going away.
    fn retire_coredns(&mut self, c: &CoreDns) {
        if let Some(dns) = self.dns.as_mut() {
            dns.retired_busy = dns.retired_busy + c.stats().cpu_busy;
        }
    }

    /// Whether NetworkPolicy drops a new connection from pod `client` to pod
    /// `server` on the server's port; a drop is recorded as an event
    /// aggregated per (client workload, server workload, port).
    fn policy_denies(&mut self, client: u32, server: u32) -> bool {
        let Some(enforcer) = self.path.policy.as_mut() else {
            return false;
        };
        let spec = &self.cfg.deployments[self.pods[server as usize].deployment as usize];
        let (proto, port) = (spec.port.protocol, spec.port.number);
        let Some(denial) = enforcer.check(&self.pod_infos, (client, server), proto, port) else {
            return false;
        };
        let denial = denial.clone();
        self.policy_denied(client, server, &denial);
        true
    }

    /// Records NetworkPolicy's drop of a new connection from pod `client` to
    /// pod `server` as an event aggregated per (client workload, server
    /// workload, port).
    fn policy_denied(&mut self, client: u32, server: u32, denial: &str) {
        let spec = &self.cfg.deployments[self.pods[server as usize].deployment as usize];
        let (proto, port) = (spec.port.protocol, spec.port.number);
        let from = &self.cfg.deployments[self.pods[client as usize].deployment as usize];
        let key = format!(
            "{}/{} -> {}/{} {proto}/{port}",
            from.namespace, from.name, spec.namespace, spec.name
        );
        let obj = format!("pod/{}", self.pods[client as usize].name);
        let cni = self.cfg.policy.as_ref().map_or("cni", |p| p.cni.name());
        let message = format!("{key}: first packet dropped by {cni}: {denial}");
        self.event_keyed("Warning", "PolicyDenied", "netpol", key, message, obj);
    }

    /// A policy change reaches the data path.
    fn policies_programmed(&mut self, action: usize) {
        let (Some(cfg), Some(enforcer), Action::SetPolicies { sets }) = (
            self.cfg.policy.as_ref(),
            self.path.policy.as_mut(),
            &self.cfg.timeline[action].action,
        ) else {
            return;
        };
        enforcer.set_active(cfg, sets);
        let names: Vec<&str> = sets
            .iter()
            .filter_map(|&i| cfg.sets.get(i))
            .map(|(n, _)| n.as_str())
            .collect();
        let msg = format!(
            "active NetworkPolicy sets now [{}], programmed into {}",
            names.join(", "),
            cfg.cni.name()
        );
        self.event(
            "Normal",
            "PolicyProgrammed",
            "netpol",
            msg,
            "networkpolicies".into(),
        );
    }

    /// What NetworkPolicy selectors see of a pod that just got its address.
    fn record_pod_info(&mut self, p: u32, lease: Lease) {
        let pod = &self.pods[p as usize];
        let spec = &self.cfg.deployments[pod.deployment as usize];
        let mut labels = spec.labels.clone();
        match spec.kind {
            WorkloadKind::Deployment => {
                let hash = pod.name.rsplit('-').nth(1).unwrap_or_default().to_string();
                labels.insert("pod-template-hash".into(), hash);
            }
            WorkloadKind::StatefulSet => {
                labels.insert(
                    "statefulset.kubernetes.io/pod-name".into(),
                    pod.name.clone(),
                );
            }
        }
        let nodes: Ipv4Cidr = SYNTHETIC_NODE_CIDR.parse().unwrap_or_else(|_| {
            Ipv4Cidr::new(std::net::Ipv4Addr::new(192, 168, 0, 0), 16).expect("valid")
        });
        let info = PodInfo {
            namespace: spec.namespace.clone(),
            name: pod.name.clone(),
            labels,
            ip: lease.ip,
            host_ip: nodes.nth(u64::from(pod.node.unwrap_or(0)) + 1),
            host_network: false,
            ports: vec![ContainerPort {
                name: spec.port.name.clone(),
                port: spec.port.number,
                protocol: spec.port.protocol,
            }],
        };
        if self.pod_infos.len() <= p as usize {
            self.pod_infos.resize(p as usize + 1, None);
        }
        self.pod_infos[p as usize] = Some(info);
        self.ip_owner.insert(lease.ip, p);
        if let Some(e) = self.path.policy.as_mut() {
            e.pods_changed();
        }
    }

    fn forget_pod_info(&mut self, p: u32) {
        if let Some(slot) = self.pod_infos.get_mut(p as usize) {
            if let Some(info) = slot.take() {
                if self.ip_owner.get(&info.ip) == Some(&p) {
                    self.ip_owner.remove(&info.ip);
                }
            }
        }
        if let Some(e) = self.path.policy.as_mut() {
            e.pods_changed();
        }
    }

    fn start_service(&mut self, p: u32, req: Request) {
        let d = self.pods[p as usize].deployment as usize;
        let mean = self.cfg.deployments[d].server.service_time.as_secs_f64();
        let dt = exponential(&mut self.deps[d].service_time_rng, mean);
        self.engine.schedule_in(dt, Ev::Completed { pod: p, req });
    }

    fn completed(&mut self, p: u32, req: Request) {
        let now = self.engine.now();
        let o = completion_outcome(&req, now);
        let t = req.source as usize;
        if let Outcome::Answered(_) = o {
            self.for_windows(t, now, |w| {
                if w.served.len() <= p as usize {
                    w.served.resize(p as usize + 1, 0);
                }
                w.served[p as usize] += 1;
            });
        }
        self.outcome(req, o);
        self.request_done(req, matches!(o, Outcome::Answered(_)));
        let mut abandoned = Vec::new();
        let next = self.pods[p as usize]
            .server
            .finish(now, |r| abandoned.push(r));
        for r in abandoned {
            self.outcome(r, Outcome::TimedOut);
            self.request_done(r, false);
        }
        if let Some(r) = next {
            self.start_service(p, r);
        }
    }

    /// How one try ended: the request's outcome, or a retry. A try that
    /// already ended (its client gave up at the deadline) counts no more.
    fn outcome(&mut self, req: Request, o: Outcome) {
        let t = req.source as usize;
        let retries = self.cfg.traffic[t].retries;
        if retries > 0 {
            if !self.open_attempts.remove(&req.id) {
                return;
            }
            if o.is_error() && req.attempt < retries {
                self.retry(req);
                return;
            }
        }
        if o == Outcome::TimedOut && self.resolving.contains(&req.id) {
            self.traffic[t].totals.resolving += 1;
            let now = self.engine.now();
            let cfg = self.cfg;
            for (i, w) in cfg.windows.iter().enumerate() {
                if w.contains(now) {
                    self.windows[i * cfg.traffic.len() + t].totals.resolving += 1;
                }
            }
        }
        self.count_outcome(t, o);
    }

    fn count_outcome(&mut self, t: usize, o: Outcome) {
        let now = self.engine.now();
        let tr = &mut self.traffic[t];
        tr.totals.count(o);
        tr.totals.in_flight -= 1;
        let counter = match o {
            Outcome::Answered(d) => {
                self.metrics.record(tr.latency, d);
                tr.counters[ANSWERED]
            }
            Outcome::TimedOut => tr.counters[TIMED_OUT],
            Outcome::AnsweredLate => {
                self.metrics.inc(tr.counters[WASTED]);
                tr.counters[TIMED_OUT]
            }
            Outcome::Blocked => {
                self.metrics.inc(tr.counters[BLOCKED]);
                tr.counters[TIMED_OUT]
            }
            Outcome::LookupFailed => tr.counters[LOOKUP_FAILED],
            Outcome::SynDropped => {
                self.metrics.inc(tr.counters[SYN_DROPPED]);
                tr.counters[TIMED_OUT]
            }
            Outcome::StaleEndpoint => {
                self.metrics.inc(tr.counters[STALE]);
                tr.counters[TIMED_OUT]
            }
            Outcome::NoHost => {
                self.metrics.inc(tr.counters[NO_HOST]);
                tr.counters[TIMED_OUT]
            }
            Outcome::Refused => tr.counters[REFUSED],
            Outcome::Rejected => tr.counters[REJECTED],
        };
        self.metrics.inc(counter);
        let cfg = self.cfg;
        for (i, w) in cfg.windows.iter().enumerate() {
            if w.contains(now) {
                let ws = &mut self.windows[i * cfg.traffic.len() + t];
                ws.totals.count(o);
                if let Outcome::Answered(d) = o {
                    ws.latency.record(d);
                }
            }
        }
    }

    fn event(
        &mut self,
        kind: &'static str,
        reason: &'static str,
        source: &'static str,
        message: String,
        object: String,
    ) {
        self.event_keyed(kind, reason, source, message.clone(), message, object);
    }

    /// Records an event aggregated under `key` rather than its message (the
    /// first message is kept).
    fn event_keyed(
        &mut self,
        kind: &'static str,
        reason: &'static str,
        source: &'static str,
        key: String,
        message: String,
        object: String,
    ) {
        let now = self.engine.now();
        if self.trace.enabled() {
            self.trace.record(TraceRecord {
                time: now,
                source: source.to_string(),
                kind: reason.to_string(),
                message: format!("{object}: {message}"),
            });
        }
        let seq = self.events.len();
        self.events
            .entry((reason, key))
            .and_modify(|(_, e)| {
                e.count += 1;
                e.last = now;
            })
            .or_insert((
                seq,
                EventSummary {
                    kind,
                    reason,
                    source,
                    message,
                    count: 1,
                    first: now,
                    last: now,
                    example_object: object,
                },
            ));
    }

    fn sample(&mut self) {
        for dep in &self.deps {
            let pending: u32 = PodState::ALL
                .iter()
                .filter(|s| s.is_pending())
                .map(|&s| dep.by_state[s as usize])
                .sum();
            let in_flight: usize = dep
                .live
                .iter()
                .map(|&p| self.pods[p as usize].server.in_flight())
                .sum();
            let values = [
                dep.desired,
                pending,
                dep.by_state[PodState::Unschedulable as usize],
                dep.by_state[PodState::SandboxFailed as usize],
                dep.by_state[PodState::Running as usize] + dep.by_state[PodState::Ready as usize],
                dep.by_state[PodState::Ready as usize],
                in_flight as u32,
            ];
            for (g, v) in dep.gauges.iter().zip(values) {
                self.metrics.set(*g, f64::from(v));
            }
        }
        self.sample_dns();
        self.metrics
            .set(self.ipam_gauges[0], self.ipam.usable() as f64);
        self.metrics
            .set(self.ipam_gauges[1], self.ipam.allocated() as f64);
        let now = self.engine.now();
        let most = self.path.tables.nodes.iter_mut().map(|t| t.live(now)).max();
        self.metrics.set(self.ct_gauge, most.unwrap_or(0) as f64);
        self.metrics.sample(now);
    }

    /// CoreDNS gauges: queries inside, CPU used over the sample period as
    /// a share of the running pods' CPU, the largest pod memory.
    fn sample_dns(&mut self) {
        let now = self.engine.now();
        let (Some(dns), Some(cfg)) = (self.dns.as_mut(), self.cfg.dns.as_ref()) else {
            return;
        };
        let (mut in_flight, mut busy, mut running, mut memory) =
            (0usize, dns.retired_busy, 0u32, 0u64);
        for &p in &self.deps[cfg.workload].live {
            if let Some(c) = self.pods[p as usize].coredns.as_ref() {
                in_flight += c.in_flight();
                busy = busy + c.stats().cpu_busy;
                if c.is_running() {
                    running += 1;
                    memory = memory.max(c.memory_bytes());
                }
            }
        }
        let period = (now - dns.last_sample).as_secs_f64() * f64::from(running);
        let used = busy.as_secs_f64() - dns.busy_at_last_sample.as_secs_f64();
        let utilization = if period > 0.0 {
            (used / period).min(1.0)
        } else {
            0.0
        };
        dns.busy_at_last_sample = busy;
        dns.last_sample = now;
        self.metrics.set(dns.gauges[0], in_flight as f64);
        self.metrics.set(dns.gauges[1], utilization);
        self.metrics
            .set(dns.gauges[2], memory as f64 / (1u64 << 20) as f64);
    }

    fn finish(self, seed: u64) -> RunOutput {
        let mut events: Vec<(usize, EventSummary)> = self.events.into_values().collect();
        events.sort_by_key(|(seq, _)| *seq);
        let events = events.into_iter().map(|(_, e)| e).collect();
        RunOutput {
            seed,
            deployments: self
                .cfg
                .deployments
                .iter()
                .zip(&self.deps)
                .map(|(spec, d)| DeploymentState {
                    name: spec.name.clone(),
                    desired: d.desired,
                    by_state: d.by_state,
                })
                .collect(),
            requests: self.traffic.iter().map(|t| t.totals).collect(),
            ipam_usable: self.ipam.usable(),
            ipam_allocated: self.ipam.allocated(),
            events_fired: self.engine.fired(),
            conntrack: self.path.tables.nodes.iter().map(|t| t.stats()).collect(),
            kube_proxy: self.path.service.kube_proxy.as_ref().map(KubeProxy::stats),
            dns_restarts: self.dns.as_ref().map_or(0, |d| d.restart_total),
            dns_windows: self.dns.map(|d| d.windows).unwrap_or_default(),
            metrics: self.metrics,
            windows: self.windows,
            events,
        }
    }
}

/// An exponential variate with the given mean \[s\].
fn exponential(rng: &mut SimRng, mean_s: f64) -> SimDuration {
    let u: f64 = rng.random();
    SimDuration::from_secs_f64(-mean_s * (1.0 - u).ln())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::ServerSpec;
    use crate::ipam::Allocator;
    use crate::topology::spread_nodes;
    use proptest::prelude::*;
    use sim_core::{NullSink, VecSink};

    fn secs(s: u64) -> SimDuration {
        SimDuration::from_secs(s)
    }

    fn config(pod_cidr: &str, replicas_after: u32) -> ClusterConfig {
        let zones = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        ClusterConfig {
            nodes: spread_nodes(6, &zones, 110),
            ipam: IpamLayout::Flat {
                pod_cidr: pod_cidr.parse().unwrap(),
                allocator: Allocator::Flat,
            },
            deployments: vec![DeploymentSpec::new(
                "checkout",
                20,
                secs(5),
                secs(5),
                ServerSpec {
                    concurrency: 2,
                    service_time: SimDuration::from_millis(400),
                    queue_limit: None,
                },
            )],
            traffic: vec![TrafficSpec {
                name: "checkout".into(),
                from: None,
                deployment: Some(0),
                resolve: None,
                dns_cache: None,
                persistent_dns_socket: false,
                retries: 0,
                rate: 50.0,
                timeout: secs(5),
                connections: ConnectionMode::PerRequest,
                snat: false,
            }],
            timeline: vec![
                TimedAction {
                    at: secs(60),
                    action: Action::Scale {
                        deployment: 0,
                        replicas: replicas_after,
                    },
                },
                TimedAction {
                    at: secs(60),
                    action: Action::SetRate {
                        traffic: 0,
                        rate: 1000.0,
                    },
                },
            ],
            duration: secs(600),
            sample_every: secs(30),
            windows: vec![WindowSpec {
                name: "after".into(),
                start: secs(120),
                end: secs(600),
            }],
            policy: None,
            dns: None,
            conntrack: None,
            kube_proxy: None,
        }
    }

    #[test]
    fn a_24_leaves_the_pods_beyond_254_pending_with_the_cni_error() {
        let out = run(&config("10.0.0.0/24", 500), 1, &mut NullSink);
        let d = &out.deployments[0];
        assert_eq!(d.running(), 254, "a flat /24 has 254 usable addresses");
        assert_eq!(d.pending(), 246);
        assert_eq!(d.count(PodState::SandboxFailed), 246);
        let ev = out
            .events
            .iter()
            .find(|e| e.reason == "FailedCreatePodSandBox")
            .expect("event");
        assert!(
            ev.message
                .contains("no IP addresses available in range set: 10.0.0.1-10.0.0.254"),
            "{}",
            ev.message
        );
        // 254 pods x 2 workers / 0.4 s = 1270 req/s capacity > 1000 offered: answered.
        assert!(out.windows[0].totals.error_rate() < 0.01);
    }

    #[test]
    fn capacity_short_of_load_shows_up_as_timeouts_and_latency() {
        let mut cfg = config("10.0.0.0/24", 500);
        cfg.timeline[1].action = Action::SetRate {
            traffic: 0,
            rate: 2000.0,
        };
        let broken = run(&cfg, 1, &mut NullSink);
        cfg.ipam = IpamLayout::Flat {
            pod_cidr: "10.0.0.0/22".parse().unwrap(),
            allocator: Allocator::Flat,
        };
        let fixed = run(&cfg, 1, &mut NullSink);
        assert_eq!(fixed.deployments[0].running(), 500);
        let (b, f) = (&broken.windows[0], &fixed.windows[0]);
        // 1270 req/s of capacity against 2000 offered: at least 36.5% must fail;
        // more do, because queues wait close to the timeout and much of the
        // servers' work finishes after its client has left.
        assert!(
            b.totals.error_rate() > 0.365,
            "broken error rate {}",
            b.totals.error_rate()
        );
        assert!(b.totals.wasted > b.totals.timed_out / 4, "{:?}", b.totals);
        assert!(
            f.totals.error_rate() < 0.01,
            "fixed error rate {}",
            f.totals.error_rate()
        );
        assert!(b.latency.quantile(0.5) > f.latency.quantile(0.5).saturating_mul(3));
    }

    #[test]
    fn adding_a_pool_lets_the_pending_pods_start_on_their_next_retry() {
        let mut cfg = config("10.0.0.0/24", 500);
        cfg.timeline.push(TimedAction {
            at: secs(300),
            action: Action::AddIpPool {
                cidr: "10.0.4.0/22".parse().unwrap(),
            },
        });
        let out = run(&cfg, 1, &mut NullSink);
        assert_eq!(out.deployments[0].count(PodState::Ready), 500);
        assert_eq!(out.ipam_allocated, 500);
    }

    #[test]
    fn scale_down_deletes_pending_pods_first_and_frees_addresses() {
        let mut cfg = config("10.0.0.0/24", 500);
        cfg.timeline.push(TimedAction {
            at: secs(300),
            action: Action::Scale {
                deployment: 0,
                replicas: 254,
            },
        });
        let out = run(&cfg, 1, &mut NullSink);
        assert_eq!(out.deployments[0].count(PodState::Ready), 254);
        assert_eq!(out.deployments[0].pending(), 0);
        assert_eq!(out.ipam_allocated, 254);
    }

    #[test]
    fn full_nodes_leave_pods_unschedulable_with_the_scheduler_message() {
        let mut cfg = config("10.0.0.0/16", 700);
        cfg.nodes = spread_nodes(6, &["a".to_string()], 110);
        let out = run(&cfg, 1, &mut NullSink);
        assert_eq!(out.deployments[0].count(PodState::Unschedulable), 40);
        let ev = out
            .events
            .iter()
            .find(|e| e.reason == "FailedScheduling")
            .expect("event");
        assert!(
            ev.message
                .starts_with("0/6 nodes are available: 6 Too many pods."),
            "{}",
            ev.message
        );
    }

    /// The CNI daemon stops on nodes 1 and 2 at T+60s (with the scale-up
    /// to 30 pods) and runs again on node 1 at T+200s.
    fn cni_fault() -> ClusterConfig {
        let mut cfg = config("10.0.0.0/16", 30);
        // Before the scale-up in the timeline: same instant, earlier entry.
        cfg.timeline.insert(
            0,
            TimedAction {
                at: secs(60),
                action: Action::CniDown { nodes: vec![0, 1] },
            },
        );
        cfg.timeline.push(TimedAction {
            at: secs(200),
            action: Action::CniUp { nodes: vec![0] },
        });
        cfg
    }

    #[test]
    fn a_node_without_its_cni_daemon_fails_sandboxes_then_evicts_after_the_toleration() {
        let out = run(&cni_fault(), 1, &mut NullSink);
        let count = |reason: &str| {
            out.events
                .iter()
                .find(|e| e.reason == reason)
                .map_or(0, |e| e.count)
        };
        assert_eq!(count("NodeNotReady"), 2);
        // Node 1 is back (T+200s + the taint delay) before its pods'
        // 300 s toleration ends; node 2's pods are evicted.
        assert_eq!(count("NodeReady"), 1);
        let evicted = out
            .events
            .iter()
            .find(|e| e.reason == "TaintManagerEviction")
            .expect("evictions");
        let not_ready = out
            .events
            .iter()
            .find(|e| e.reason == "NodeNotReady")
            .unwrap();
        assert!(evicted.first - not_ready.first >= secs(300));
        // Node 2 held a sixth of the pods: 20 old ones spread over 6 nodes
        // (3 or 4) plus the new ones placed at T+60s before the taint.
        assert!((4..=10).contains(&evicted.count), "{}", evicted.count);
        let sandbox = out
            .events
            .iter()
            .find(|e| e.reason == "FailedCreatePodSandBox")
            .expect("sandbox failures");
        assert!(sandbox.message.ends_with("cni plugin not initialized"));
        // Replacements went to the Ready nodes: all 30 run at the end.
        assert_eq!(out.deployments[0].count(PodState::Ready), 30);
    }

    #[test]
    fn same_seed_same_trace_and_series() {
        let cfg = config("10.0.0.0/24", 500);
        let (mut t1, mut t2) = (VecSink::default(), VecSink::default());
        let a = run(&cfg, 9, &mut t1);
        let b = run(&cfg, 9, &mut t2);
        assert_eq!(t1.records, t2.records);
        assert_eq!(a.metrics.rows(), b.metrics.rows());
        assert_eq!(a.requests, b.requests);
        let c = run(&cfg, 10, &mut NullSink);
        assert_ne!(
            a.requests, c.requests,
            "another seed gives another sample path"
        );
    }

    fn db_and_frontend(cni: crate::policy_enforcement::Cni) -> ClusterConfig {
        use crate::netpol::parse_manifests;
        use crate::policy_enforcement::PolicyConfig;
        let mut cfg = config("10.0.0.0/24", 20);
        cfg.timeline.clear();
        let server = cfg.deployments[0].server;
        let mut db = DeploymentSpec::new("db", 20, secs(5), secs(5), server);
        db.namespace = "prod".into();
        db.port.number = 5432;
        let mut web = DeploymentSpec::new("frontend", 4, secs(5), secs(5), server);
        web.namespace = "prod".into();
        cfg.deployments = vec![db, web];
        cfg.traffic = vec![TrafficSpec {
            name: "frontend-db".into(),
            from: Some(1),
            deployment: Some(0),
            resolve: None,
            dns_cache: None,
            persistent_dns_socket: false,
            retries: 0,
            rate: 50.0,
            timeout: secs(6),
            connections: ConnectionMode::PerRequest,
            snat: false,
        }];
        let policy = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: db-from-batch, namespace: prod}\n\
                      spec:\n  podSelector: {matchLabels: {app: db}}\n  ingress:\n  - from: [{podSelector: {matchLabels: {app: batch}}}]\n";
        let m = parse_manifests(&[("p.yaml".into(), policy.into())]).unwrap();
        cfg.policy = Some(PolicyConfig {
            cni,
            delay: secs(3),
            sets: vec![("db-ingress".into(), m.cluster.policies().to_vec())],
            active: vec![],
            namespaces: Vec::new(),
        });
        cfg.timeline = vec![TimedAction {
            at: secs(300),
            action: Action::SetPolicies { sets: vec![0] },
        }];
        cfg.windows = vec![
            WindowSpec {
                name: "before".into(),
                start: secs(0),
                end: secs(300),
            },
            WindowSpec {
                name: "after".into(),
                start: secs(310),
                end: secs(600),
            },
        ];
        cfg
    }

    #[test]
    fn an_ingress_policy_blocks_unlisted_clients_after_the_delay() {
        let out = run(
            &db_and_frontend(crate::policy_enforcement::Cni::Calico),
            3,
            &mut NullSink,
        );
        let (before, after) = (&out.windows[0].totals, &out.windows[1].totals);
        assert_eq!(before.blocked, 0);
        assert!(before.error_rate() < 0.01, "{before:?}");
        assert_eq!(after.blocked, after.timed_out, "{after:?}");
        assert!(after.error_rate() > 0.99, "{after:?}");
        let ev = out
            .events
            .iter()
            .find(|e| e.reason == "PolicyDenied")
            .expect("drop event");
        assert!(
            ev.first >= SimTime::ZERO + secs(303),
            "not before the policy delay: {}",
            ev.first
        );
        assert!(
            ev.message.contains("prod/frontend -> prod/db TCP/5432")
                && ev.message.contains("db-from-batch"),
            "{}",
            ev.message
        );
    }

    /// frontend resolves `db` through a CoreDNS workload before connecting.
    fn with_dns(policy_yaml: Option<&str>) -> ClusterConfig {
        use crate::netpol::{parse_manifests, Protocol};
        use crate::policy_enforcement::Cni;
        let mut cfg = db_and_frontend(Cni::Calico);
        cfg.timeline.clear();
        let dns_server = ServerSpec {
            concurrency: 1,
            service_time: SimDuration::from_micros(564),
            queue_limit: None,
        };
        let mut coredns = DeploymentSpec::new("coredns", 2, secs(5), secs(5), dns_server);
        coredns.namespace = "kube-system".into();
        coredns.labels = [("k8s-app".to_string(), "kube-dns".to_string())]
            .into_iter()
            .collect();
        coredns.port.number = 53;
        coredns.port.protocol = Protocol::Udp;
        cfg.deployments.push(coredns);
        cfg.traffic[0].resolve = Some("db".into());
        cfg.traffic[0].timeout = secs(30);
        cfg.dns = Some(DnsConfig {
            workload: 2,
            service_ip: "10.96.0.10".parse().unwrap(),
            qtypes: QueryTypes::AOnly,
            coredns: CoreDnsSpec::default(),
            host_search: Vec::new(),
            pod_dns: BTreeMap::new(),
            headless: BTreeSet::new(),
            node_local: None,
            autoscaler: None,
        });
        let policy = cfg.policy.as_mut().unwrap();
        policy.sets.clear();
        if let Some(y) = policy_yaml {
            let m = parse_manifests(&[("p.yaml".into(), y.into())]).unwrap();
            policy
                .sets
                .push(("deny".into(), m.cluster.policies().to_vec()));
            policy.active = vec![0];
        }
        cfg
    }

    #[test]
    fn a_cached_headless_answer_outlives_the_pod_it_names() {
        let mut cfg = with_dns(None);
        cfg.deployments[0].kind = WorkloadKind::StatefulSet;
        cfg.deployments[0].replicas = 1;
        if let Some(d) = cfg.dns.as_mut() {
            d.headless.insert(0);
        }
        cfg.traffic[0].resolve = Some("db-0.db.prod.svc.cluster.local".into());
        cfg.traffic[0].dns_cache = Some(ClientDnsCache::Fixed(secs(60)));
        cfg.traffic[0].timeout = secs(5);
        // One db pod serves 2 at a time in 400 ms: 5 requests/s.
        cfg.traffic[0].rate = 2.0;
        cfg.timeline = vec![
            TimedAction {
                at: secs(100),
                action: Action::Scale {
                    deployment: 0,
                    replicas: 0,
                },
            },
            TimedAction {
                at: secs(100),
                action: Action::AddIpPool {
                    cidr: "10.0.8.0/24".parse().unwrap(),
                },
            },
            TimedAction {
                at: secs(101),
                action: Action::Scale {
                    deployment: 0,
                    replicas: 1,
                },
            },
        ];
        cfg.windows = vec![
            WindowSpec {
                name: "before".into(),
                start: secs(0),
                end: secs(100),
            },
            WindowSpec {
                name: "after-ttl".into(),
                start: secs(200),
                end: secs(600),
            },
        ];
        let out = run(&cfg, 5, &mut NullSink);
        let (before, after) = (&out.windows[0].totals, &out.windows[1].totals);
        assert!(before.error_rate() < 0.01, "{before:?}");
        let r = out.requests[0];
        assert!(r.no_host + r.refused > 0, "the old address was used: {r:?}");
        assert!(
            after.error_rate() < 0.01,
            "fresh answers after the cache expired: {after:?}"
        );
    }

    /// `with_dns` through each node's conntrack table (kernel 5.15, no
    /// insert race), the frontend's resolver keeping one socket per pod,
    /// and one of the two CoreDNS pods scaled away at T+60s.
    fn stale_dns(flush: bool) -> ClusterConfig {
        use crate::conntrack::{Kernel, Timeouts};
        let mut cfg = with_dns(None);
        cfg.duration = secs(180);
        cfg.traffic[0].persistent_dns_socket = true;
        cfg.traffic[0].timeout = secs(2);
        cfg.timeline.push(TimedAction {
            at: secs(60),
            action: Action::Scale {
                deployment: 2,
                replicas: 1,
            },
        });
        cfg.conntrack = Some(ConntrackSetup {
            table: ConntrackConfig {
                max: 65536,
                buckets: 16384,
                timeouts: Timeouts::kube_proxy(),
                kernel: Kernel::V5_15,
            },
            datapath: DataPath::Netfilter,
            snat: None,
            udp_pair_concurrency: 0.0,
            flush_udp_on_endpoint_removal: flush,
        });
        cfg
    }

    fn counter(out: &RunOutput, name: &str) -> u64 {
        out.metrics
            .counters()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v)
            .sum()
    }

    #[test]
    fn a_failed_flush_keeps_busy_flows_on_the_deleted_coredns_pod() {
        let broken = run(&stale_dns(false), 3, &mut NullSink);
        let fixed = run(&stale_dns(true), 3, &mut NullSink);
        // Four frontend pods, one flow each, pinned to one of two CoreDNS
        // pods: with seed 3 at least one is pinned to the one deleted.
        let stale = counter(&broken, "dns_queries_stale_entry");
        println!(
            "stale queries: {stale}, lookups failed: {}",
            broken.requests[0].lookup_failed
        );
        assert!(stale > 100, "{stale}");
        assert!(broken.requests[0].lookup_failed > 0);
        assert_eq!(counter(&fixed, "dns_queries_stale_entry"), 0);
        assert_eq!(
            fixed.requests[0].lookup_failed, 0,
            "{:?}",
            fixed.requests[0]
        );
    }

    #[test]
    fn node_local_caches_take_repeated_names_off_coredns() {
        let mut cfg = with_dns(None);
        cfg.duration = secs(120);
        let direct = run(&cfg, 1, &mut NullSink);
        if let Some(d) = cfg.dns.as_mut() {
            d.node_local = Some(CoreDnsSpec::node_local());
        }
        let local = run(&cfg, 1, &mut NullSink);
        let received = |o: &RunOutput| {
            counter(o, "dns_queries_received{zone=cluster}")
                + counter(o, "dns_queries_received{zone=external}")
        };
        let (d, l) = (received(&direct), received(&local));
        println!("CoreDNS received {d} queries direct, {l} behind NodeLocal DNSCache");
        // Each node cache asks CoreDNS about `db` at most once per 30 s.
        let nodes = cfg.nodes.len() as u64;
        assert!(l <= nodes * (120 / 30 + 1), "{l}");
        assert!(d > 50 * l, "{d} vs {l}");
        assert_eq!(
            counter(&local, "dns_node_local_queries"),
            counter(&direct, "requests_dns_queries{service=frontend-db}")
        );
        assert!(local.requests[0].error_rate() < 0.001);
    }

    #[test]
    fn lookups_resolve_in_one_query_then_connect() {
        let out = run(&with_dns(None), 5, &mut NullSink);
        let r = out.requests[0];
        assert!(r.error_rate() < 0.01, "{r:?}");
        let queries = out
            .metrics
            .counters()
            .find(|(n, _)| n.starts_with("requests_dns_queries"))
            .unwrap()
            .1;
        // db.prod.svc.cluster.local is the first search candidate from prod: one A query.
        assert_eq!(queries, r.sent, "one query per request: {r:?}");
    }

    #[test]
    fn default_deny_egress_makes_every_lookup_time_out() {
        let deny = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: default-deny-egress, namespace: prod}\n\
                    spec:\n  podSelector: {}\n  policyTypes: [Egress]\n";
        let out = run(&with_dns(Some(deny)), 5, &mut NullSink);
        let r = out.requests[0];
        assert_eq!(r.answered, 0, "{r:?}");
        assert_eq!(r.lookup_failed + r.in_flight, r.sent, "{r:?}");
        let ev = out
            .events
            .iter()
            .find(|e| e.reason == "PolicyDenied")
            .expect("drops");
        assert!(
            ev.message
                .contains("prod/frontend -> kube-system/coredns UDP/53"),
            "{}",
            ev.message
        );
        // glibc: the timeout ends the search walk, then the name is tried as
        // is: 2 names x 2 attempts x 5 s = 20 s before getaddrinfo fails.
        let first_failure = out.metrics.rows().iter().find(|(_, row)| {
            let col = out
                .metrics
                .columns()
                .iter()
                .position(|c| c.starts_with("requests_lookup_failed"))
                .unwrap();
            row[col] > 0.0
        });
        assert!(
            first_failure.is_some_and(|(t, _)| t.as_secs_f64() >= 20.0),
            "{first_failure:?}"
        );
    }

    #[test]
    fn flannel_warns_and_lets_everything_through() {
        let out = run(
            &db_and_frontend(crate::policy_enforcement::Cni::Flannel),
            3,
            &mut NullSink,
        );
        assert_eq!(out.requests[0].blocked, 0);
        assert!(out.events.iter().any(|e| e.reason == "PolicyNotEnforced"));
    }

    /// `clients` pods send to `api` pods; every node has a conntrack table
    /// of `max` entries on kernel 3.10 (TIME_WAIT entries not evictable).
    fn churn(max: u64, rate: f64, mode: ConnectionMode, datapath: DataPath) -> ClusterConfig {
        use crate::conntrack::{Kernel, Timeouts};
        let mut cfg = config("10.0.0.0/22", 20);
        cfg.nodes = spread_nodes(4, &["a".to_string()], 110);
        cfg.timeline.clear();
        let fast = ServerSpec {
            concurrency: 8,
            service_time: SimDuration::from_millis(5),
            queue_limit: None,
        };
        cfg.deployments = vec![
            DeploymentSpec::new("api", 8, secs(5), secs(5), fast),
            DeploymentSpec::new("client", 8, secs(5), secs(5), fast),
        ];
        cfg.traffic = vec![TrafficSpec {
            name: "client-api".into(),
            from: Some(1),
            deployment: Some(0),
            resolve: None,
            dns_cache: None,
            persistent_dns_socket: false,
            retries: 0,
            rate,
            timeout: secs(10),
            connections: mode,
            snat: false,
        }];
        cfg.conntrack = Some(ConntrackSetup {
            table: ConntrackConfig {
                max,
                buckets: max / 4,
                timeouts: Timeouts::kube_proxy(),
                kernel: Kernel::V3_10,
            },
            datapath,
            snat: None,
            udp_pair_concurrency: 0.0,
            flush_udp_on_endpoint_removal: true,
        });
        cfg.duration = secs(400);
        cfg.windows = vec![WindowSpec {
            name: "full".into(),
            start: secs(200),
            end: secs(400),
        }];
        cfg
    }

    #[test]
    fn connection_churn_fills_the_table_and_syns_are_retransmitted() {
        // 4 nodes x 2 client pods; 400 conn/s x 120 s TIME_WAIT = 48,000
        // entries wanted against 4 x 5,000.
        let out = run(
            &churn(
                5_000,
                400.0,
                ConnectionMode::PerRequest,
                DataPath::Netfilter,
            ),
            1,
            &mut NullSink,
        );
        let w = &out.windows[0];
        assert!(w.syn_drops > 1000, "{}", w.syn_drops);
        // Connect delays sit on the retransmission times: 1 s, 3 s, 7 s.
        let d = &w.connect_delay;
        assert!(d.quantile(0.99) >= secs(1), "{:?}", d.quantile(0.99));
        for q in [0.5, 0.9, 0.99] {
            let x = d.quantile(q).as_secs_f64();
            let on_retransmit = [0.0, 1.0, 3.0, 7.0, 15.0]
                .iter()
                .any(|r| (x - r).abs() < 0.01);
            assert!(on_retransmit, "q{q}: {x}");
        }
        let ev = out
            .events
            .iter()
            .find(|e| e.reason == "ConntrackTableFull")
            .expect("kernel message");
        assert_eq!(ev.message, conntrack::TABLE_FULL_MESSAGE);
        assert!(out.conntrack.iter().all(|s| s.peak <= 5_000));
        let r = out.requests[0];
        assert_eq!(
            r.sent,
            r.answered + r.timed_out + r.refused + r.rejected + r.in_flight
        );
    }

    #[test]
    fn keep_alive_and_ebpf_leave_the_table_alone() {
        let keep = ConnectionMode::KeepAlive {
            max_idle: 16,
            idle_timeout: secs(90),
        };
        let k = run(
            &churn(5_000, 400.0, keep, DataPath::Netfilter),
            1,
            &mut NullSink,
        );
        assert_eq!(k.windows[0].syn_drops, 0);
        let opened = k
            .metrics
            .counters()
            .find(|(n, _)| n.starts_with("requests_connections_opened"))
            .unwrap()
            .1;
        assert!(opened * 100 < k.requests[0].sent, "{opened} connections");
        let e = run(
            &churn(5_000, 400.0, ConnectionMode::PerRequest, DataPath::Ebpf),
            1,
            &mut NullSink,
        );
        assert_eq!(e.windows[0].syn_drops, 0);
        assert!(e.conntrack.iter().all(|s| s.inserted == 0));
        assert!(e.windows[0].totals.error_rate() < 0.001);
    }

    #[test]
    fn long_lived_connections_stay_on_the_pods_they_were_opened_to() {
        let mut cfg = churn(
            100_000,
            200.0,
            ConnectionMode::LongLived {
                per_client: 1,
                max_age: None,
            },
            DataPath::Netfilter,
        );
        cfg.deployments[0].replicas = 2;
        cfg.timeline = vec![TimedAction {
            at: secs(100),
            action: Action::Scale {
                deployment: 0,
                replicas: 10,
            },
        }];
        let pinned = run(&cfg, 2, &mut NullSink);
        let w = &pinned.windows[0];
        assert!(w.pods_serving() <= 2, "{}", w.pods_serving());
        assert!(w.top_pod_share() >= 0.5, "{}", w.top_pod_share());
        cfg.traffic[0].connections = ConnectionMode::ClientSide;
        let balanced = run(&cfg, 2, &mut NullSink);
        let w = &balanced.windows[0];
        assert_eq!(w.pods_serving(), 10);
        assert!(w.top_pod_share() < 0.12, "{}", w.top_pod_share());
    }

    /// 40 pods scaled to 20 at T+60s behind a kube-proxy in `mode` with
    /// 20,000 other Services of 5 endpoints.
    fn scale_in_behind(mode: crate::kube_proxy::Mode, partial: bool) -> RunOutput {
        let mut cfg = config("10.0.0.0/22", 20);
        cfg.deployments[0].replicas = 40;
        cfg.timeline.truncate(1);
        cfg.traffic[0].rate = 400.0;
        cfg.duration = secs(120);
        cfg.windows = vec![WindowSpec {
            name: "scale-in".into(),
            start: secs(60),
            end: secs(120),
        }];
        let mut kp = KubeProxyConfig::new(mode);
        kp.partial_restores = partial;
        kp.other_services = 20_000;
        kp.other_endpoints = 5;
        cfg.kube_proxy = Some(kp);
        run(&cfg, 4, &mut NullSink)
    }

    #[test]
    fn removed_pods_get_connections_until_the_sync_that_removes_them_ends() {
        use crate::kube_proxy::Mode;
        let slow = scale_in_behind(Mode::Iptables, false);
        let stats = slow.kube_proxy.expect("stats");
        // 20,001 Services x (3 + 4 x 5) lines + fixed: 460k lines, ~8.5 s a restore.
        assert!(stats.longest > secs(8), "{stats:?}");
        let w = &slow.windows[0].totals;
        assert!(w.stale > 0, "{w:?}");
        // Half the programmed endpoints are gone for at most two restores
        // (one may be running when the scale-in comes): at most ~15% of a
        // minute's connections.
        let share = w.stale as f64 / w.sent as f64;
        assert!(share > 0.02 && share < 0.2, "stale share {share}");
        let stale_event = slow
            .events
            .iter()
            .find(|e| e.reason == "StaleEndpoint")
            .unwrap();
        assert!(stale_event.last <= SimTime::ZERO + secs(60) + stats.longest_propagation);
        let fast = scale_in_behind(Mode::Ebpf, true);
        assert_eq!(fast.windows[0].totals.stale, 0, "eBPF maps follow at once");
        let fp = |o: &RunOutput| o.windows[0].first_packet.quantile(0.5);
        assert!(
            fp(&slow) > fp(&fast).saturating_mul(10),
            "the walk of 20k rules"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Every DNS query a resolver sends reaches a CoreDNS pod, gets an
        /// ICMP port unreachable, is dropped by policy, or is lost on the
        /// way with a named reason; every request still ends one way.
        #[test]
        fn every_dns_query_is_received_refused_or_lost_with_a_reason(
            seed in 0u64..1000,
            a_and_aaaa in any::<bool>(),
            ct in proptest::option::of((0usize..3, 0.0f64..1.0, any::<bool>(), 1u64..2000)),
            persistent in any::<bool>(),
            scale in proptest::collection::vec((1u64..170, 0u32..4), 0..4),
            rate in 5.0f64..300.0,
            node_local in any::<bool>(),
            kube_proxy in proptest::option::of(0usize..4),
        ) {
            use crate::conntrack::{Kernel, Timeouts};
            let mut cfg = with_dns(None);
            cfg.duration = secs(180);
            cfg.traffic[0].rate = rate;
            cfg.traffic[0].persistent_dns_socket = persistent;
            if let Some(d) = cfg.dns.as_mut() {
                d.qtypes = if a_and_aaaa { QueryTypes::AAndAaaa } else { QueryTypes::AOnly };
                d.node_local = node_local.then(CoreDnsSpec::node_local);
            }
            cfg.kube_proxy = kube_proxy.map(|m| KubeProxyConfig::new(crate::kube_proxy::Mode::ALL[m]));
            for (at, replicas) in scale {
                cfg.timeline.push(TimedAction { at: secs(at), action: Action::Scale { deployment: 2, replicas } });
            }
            cfg.conntrack = ct.map(|(k, concurrency, flush, max)| ConntrackSetup {
                table: ConntrackConfig { max, buckets: max / 4 + 1, timeouts: Timeouts::kube_proxy(), kernel: Kernel::ALL[k] },
                datapath: DataPath::Netfilter,
                snat: None,
                udp_pair_concurrency: concurrency,
                flush_udp_on_endpoint_removal: flush,
            });
            let out = run(&cfg, seed, &mut NullSink);
            let r = out.requests[0];
            prop_assert_eq!(r.sent, r.answered + r.timed_out + r.refused + r.rejected + r.lookup_failed + r.in_flight);
            let sum = |prefix: &str| -> u64 {
                out.metrics.counters().filter(|(n, _)| n.starts_with(prefix)).map(|(_, v)| v).sum()
            };
            let sent = sum("requests_dns_queries");
            let ended = sum("dns_queries_received")
                + sum("dns_queries_unreachable")
                + sum("dns_queries_blocked")
                + sum("dns_queries_insert_failed")
                + sum("dns_queries_stale_entry")
                + sum("dns_queries_table_full");
            prop_assert!(sent > 0);
            if node_local {
                // Every query goes to the client's node cache; CoreDNS sees only its forwards.
                prop_assert_eq!(sent, sum("dns_node_local_queries"));
                prop_assert_eq!(sum("dns_queries_received"), sum("dns_node_local_forwards"));
            } else {
                prop_assert_eq!(sent, ended);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn every_request_is_answered_failed_or_in_flight(
            seed in 0u64..1000,
            prefix in 24u8..29,
            replicas in 0u32..80,
            scale_to in 0u32..120,
            rate in 1.0f64..400.0,
            queue_limit in proptest::option::of(0u32..20),
            timeout_ms in 50u64..5000,
            cni_fault in proptest::option::of((proptest::collection::vec(0usize..6, 1..4), 0u64..400, 0u64..400)),
            mode in 0usize..4,
            ct_max in proptest::option::of(1u64..400),
            kube_proxy in proptest::option::of((0usize..4, 0u64..50_000, any::<bool>())),
        ) {
            let mut cfg = config(&format!("10.9.0.0/{prefix}"), scale_to);
            cfg.duration = secs(180);
            if let Some((nodes, down, up)) = cni_fault {
                // Long enough for the 300 s toleration to run out.
                cfg.duration = secs(420);
                cfg.timeline.push(TimedAction { at: secs(down), action: Action::CniDown { nodes: nodes.clone() } });
                cfg.timeline.push(TimedAction { at: secs(down + up), action: Action::CniUp { nodes } });
            }
            cfg.deployments[0].replicas = replicas;
            cfg.deployments[0].server.queue_limit = queue_limit;
            cfg.traffic[0] = TrafficSpec { name: "checkout".into(), from: None, deployment: Some(0), resolve: None, dns_cache: None, persistent_dns_socket: false, retries: 0, rate, timeout: SimDuration::from_millis(timeout_ms), connections: ConnectionMode::PerRequest, snat: false };
            cfg.timeline[1].action = Action::SetRate { traffic: 0, rate: rate * 2.0 };
            let modes = [
                ConnectionMode::PerRequest,
                ConnectionMode::KeepAlive { max_idle: 2, idle_timeout: secs(90) },
                ConnectionMode::LongLived { per_client: 2, max_age: Some(secs(60)) },
                ConnectionMode::ClientSide,
            ];
            // Clients inside the cluster, through a small conntrack table.
            if let Some(max) = ct_max {
                let mut c = churn(max, rate, modes[mode], DataPath::Netfilter);
                c.deployments[0] = cfg.deployments[0].clone();
                c.traffic[0].timeout = cfg.traffic[0].timeout;
                c.timeline = cfg.timeline.clone();
                c.duration = cfg.duration;
                c.nodes = cfg.nodes.clone();
                c.windows.clear();
                cfg = c;
            }
            cfg.kube_proxy = kube_proxy.map(|(m, services, partial)| {
                let mut k = KubeProxyConfig::new(crate::kube_proxy::Mode::ALL[m]);
                k.other_services = services;
                k.other_endpoints = 3;
                k.partial_restores = partial;
                k
            });
            let out = run(&cfg, seed, &mut NullSink);
            let r = out.requests[0];
            prop_assert_eq!(r.sent, r.answered + r.timed_out + r.refused + r.rejected + r.in_flight);
            for s in &out.conntrack {
                prop_assert!(s.peak <= ct_max.unwrap_or(0));
            }
            let d = &out.deployments[0];
            prop_assert_eq!(d.by_state.iter().sum::<u32>(), d.desired);
            let placed: u32 = out.deployments.iter().map(|d| d.desired - d.count(PodState::Unschedulable) - d.count(PodState::SandboxFailed)).sum();
            prop_assert_eq!(out.ipam_allocated, u64::from(placed));
        }
    }
}
