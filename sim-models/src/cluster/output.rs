//! # What a cluster run returns
//!
//! [`RunOutput`]: sampled series, per-window statistics ([`WindowStats`],
//! [`DnsWindowStats`]), per-source request totals that satisfy conservation
//! ([`RequestTotals`]), Kubernetes events as `kubectl get events` shows them,
//! the final state of each workload.

use super::*;

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

pub(crate) fn rcode_index(r: Rcode) -> usize {
    RCODES.iter().position(|x| *x == r).unwrap_or(0)
}

pub(crate) fn zone_index(z: Zone) -> usize {
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
    /// Of `timed_out`: SYNs a security group in front of the node dropped.
    pub edge_dropped: u64,
    /// Of `refused`: NodePort connections to a node address the port is not
    /// open on.
    pub port_closed: u64,
    /// Of `timed_out`: dropped by a `Local` traffic policy on a node without
    /// a Ready endpoint.
    pub no_local_endpoint: u64,
    /// The ingress controller's default backend answered 404 (no rule
    /// sends the path to a Service).
    pub not_found: u64,
    /// Of `timed_out`: egress a NAT gateway dropped (down, or no route).
    pub nat_dropped: u64,
    /// Of `timed_out`: egress connections a NAT gateway could not give a
    /// source port (`ErrorPortAllocation`).
    pub nat_port_allocation: u64,
    /// Of `refused`: requests on a connection a NAT gateway had dropped
    /// after 350 s idle (RST).
    pub nat_idle_reset: u64,
    /// Of `refused`: a cloud load balancer's `502 Bad Gateway`.
    pub lb_502: u64,
    /// Of `rejected`: a cloud load balancer's `503 Service Unavailable`.
    pub lb_503: u64,
    /// Of `timed_out`: a cloud load balancer's `504 Gateway Timeout`.
    pub lb_504: u64,
    /// Of `refused`: an NLB passed a target's reset through.
    pub lb_reset: u64,
    /// Of `timed_out`: an NLB had no target for the connection.
    pub lb_connect_timeout: u64,
    /// Retries the client's mesh proxy sent (tries after the first, one
    /// per retry; not in `sent`, apart from the application's `retried`).
    pub mesh_retried: u64,
    /// Of `rejected`: the server's call to its dependency failed and it
    /// answered 503.
    pub dependency_failed: u64,
    /// Of `rejected`: a mesh proxy's circuit breaker answered `503 UO`.
    pub mesh_overflow: u64,
    /// Of `timed_out`: a mesh proxy's route or per-try timeout answered
    /// `504 UT`.
    pub mesh_timeout: u64,
    /// Hosts the source's mesh proxies ejected (outlier detection; not a
    /// request outcome).
    pub mesh_ejections: u64,
    /// Of `refused`: connections a restarting sidecar proxy reset (or
    /// refused before the new proxy listened).
    pub proxy_reset: u64,
}

impl RequestTotals {
    /// Requests that ended in an error the client saw.
    pub fn errors(&self) -> u64 {
        self.timed_out + self.refused + self.rejected + self.lookup_failed + self.not_found
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
    pub(crate) fn count(&mut self, o: Outcome) {
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
            Outcome::PortClosed => {
                self.refused += 1;
                self.port_closed += 1;
            }
            Outcome::EdgeDropped => {
                self.timed_out += 1;
                self.edge_dropped += 1;
            }
            Outcome::NoLocalEndpoint => {
                self.timed_out += 1;
                self.no_local_endpoint += 1;
            }
            Outcome::Rejected => self.rejected += 1,
            Outcome::NatDropped => {
                self.timed_out += 1;
                self.nat_dropped += 1;
            }
            Outcome::NatPortAllocation => {
                self.timed_out += 1;
                self.nat_port_allocation += 1;
            }
            Outcome::NatIdleReset => {
                self.refused += 1;
                self.nat_idle_reset += 1;
            }
            Outcome::NoHost => {
                self.timed_out += 1;
                self.no_host += 1;
            }
            Outcome::NotFound => self.not_found += 1,
            Outcome::LbBadGateway => {
                self.refused += 1;
                self.lb_502 += 1;
            }
            Outcome::LbUnavailable => {
                self.rejected += 1;
                self.lb_503 += 1;
            }
            Outcome::LbGatewayTimeout => {
                self.timed_out += 1;
                self.lb_504 += 1;
            }
            Outcome::LbReset => {
                self.refused += 1;
                self.lb_reset += 1;
            }
            Outcome::LbConnectTimeout => {
                self.timed_out += 1;
                self.lb_connect_timeout += 1;
            }
            Outcome::MeshOverflow => {
                self.rejected += 1;
                self.mesh_overflow += 1;
            }
            Outcome::DependencyFailed => {
                self.rejected += 1;
                self.dependency_failed += 1;
            }
            Outcome::MeshTimeout => {
                self.timed_out += 1;
                self.mesh_timeout += 1;
            }
            Outcome::ProxyReset => {
                self.refused += 1;
                self.proxy_reset += 1;
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
    /// NodePort connections SNATed to the entry node's address
    /// (`externalTrafficPolicy: Cluster`, endpoint on another node).
    pub node_snat: u64,
    /// For a source entering at a NodePort: the public node addresses that
    /// port is open on (the same in every window).
    pub node_port_open_public: u32,
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
    /// Answered requests per server pod id (only pods that served some: a
    /// source's window holds its target's pods, not the cluster's).
    pub served: PodMap<u64>,
    /// First-packet round trip of the connections opened through a
    /// kube-proxy in the window.
    pub first_packet: LatencyHistogram,
    /// CPU time the Service lookups of those connections took.
    pub lookup_cpu: SimDuration,
    /// Through an ingress controller: per request path (the source's
    /// [`IngressTraffic::paths`] order), its outcomes; empty otherwise.
    pub paths: Vec<RequestTotals>,
    /// With [`ClusterConfig::billing`]: the source's bytes per zone pair
    /// that moved in the window (empty without).
    pub zone_bytes: crate::transfer_cost::ZoneBytes,
    /// What [`WindowStats::zone_bytes`] cost under the run's billing \[USD\].
    pub zone_cost: f64,
    /// The requests the sources at the head of this source's call chain
    /// sent in the window (the source's own for one not made in handlers;
    /// the `calls` room): what its tries are counted per, as the load one
    /// user request turns into at this hop.
    pub head_sent: u64,
}

impl WindowStats {
    /// The largest share of the answered requests one pod served (0 when
    /// none was answered).
    pub fn top_pod_share(&self) -> f64 {
        let total: u64 = self.served.values().sum();
        let top = self.served.values().copied().max().unwrap_or(0);
        if total == 0 {
            0.0
        } else {
            top as f64 / total as f64
        }
    }
    /// Pods that served at least one answered request.
    pub fn pods_serving(&self) -> usize {
        self.served.values().filter(|&&n| n > 0).count()
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
    /// Per traffic source through an ingress controller, per request path,
    /// the outcomes over the whole run (empty for other sources).
    pub paths: Vec<Vec<RequestTotals>>,
    /// Per NAT gateway over the run (empty without gateways).
    pub nat_gateways: Vec<super::NatGatewayOutput>,
    /// Per window, per NAT gateway (window-major): its figures in the
    /// window (`active` unused, `peak_active` the highest seen at an open).
    pub nat_windows: Vec<crate::nat_gateway::GatewayStats>,
    /// Each NodePort and the node addresses it is open on.
    pub node_ports: Vec<NodePortState>,
    /// Each `healthCheckNodePort` (LoadBalancer Services with
    /// `externalTrafficPolicy: Local`) and what it answers on the nodes at
    /// the end of the run.
    pub health_checks: Vec<HealthCheckState>,
    /// The zones' names by zone id (the nodes' zones in order of first
    /// appearance).
    pub zone_names: Vec<String>,
    /// With [`ClusterConfig::billing`]: per traffic source, its bytes
    /// between zones over the run (empty without).
    pub zone_traffic: Vec<super::ZoneTraffic>,
    /// Per traffic source: its client proxies' figures for its upstream
    /// Service, summed over the proxies (`None`: not through a mesh proxy).
    pub mesh_upstreams: Vec<Option<crate::mesh::upstream::UpstreamStats>>,
    /// The service mesh's figures ([`super::MeshOutput`]); `None`: no mesh.
    pub mesh: Option<super::MeshOutput>,
}

/// A Service's health-check node port and its answers per node, as a load
/// balancer's health checker would read them at the end of the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheckState {
    /// The Service.
    pub service: String,
    /// The `healthCheckNodePort`.
    pub port: u16,
    /// Nodes answering 200 (at least one local Ready endpoint).
    pub nodes_ok: u32,
    /// Nodes answering 503 (none).
    pub nodes_unavailable: u32,
}

/// A NodePort and the node addresses that accept it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodePortState {
    /// The Service.
    pub service: String,
    /// The port.
    pub port: u16,
    /// Internal node addresses it is open on.
    pub open_internal: u32,
    /// Public node addresses it is open on.
    pub open_public: u32,
}
