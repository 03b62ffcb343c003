//! # What a cluster run is given
//!
//! [`ClusterConfig`] and its parts: nodes, IPAM, workloads, traffic
//! sources, the timeline of actions, measurement windows, and the optional
//! subsystems (conntrack, kube-proxy, NetworkPolicy, DNS). Built and
//! validated by sim-scenarios from a scenario file; every field documents its
//! unit.

use super::*;

/// Clients sending requests to one Service.
#[derive(Clone, Debug, PartialEq)]
pub struct TrafficSpec {
    /// Name in metrics and reports (unique in a run).
    pub name: String,
    /// The workload whose Ready pods send the requests; `None`: clients
    /// outside the cluster.
    pub from: Option<usize>,
    /// Index of the target Service in the run's Services
    /// ([`crate::services::resolve`]: with no explicit Services, the
    /// implicit Service of Deployment `i` is Service `i`); `None`: the
    /// request is the name lookup alone (an external name whose server is
    /// outside the model).
    pub service: Option<usize>,
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
    /// Worker threads per client pod that call `getaddrinfo` (at least 1):
    /// glibc keeps its resolver state per thread (the `single-request`
    /// fallback after a timeout with one reply), and each lookup runs in
    /// one of them, drawn at random.
    pub threads: u32,
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
    /// Clients outside the cluster enter at a node address and the target
    /// Service's NodePort ([`crate::services::NodePortEntry`]); `None`:
    /// through the Service's ClusterIP.
    pub entry: Option<crate::services::NodePortEntry>,
    /// Clients outside the cluster enter through a cloud load balancer in
    /// front of the target Service ([`crate::cloud_lb::LbEntry`]): its
    /// target group routes each request to a pod (the `lb` room).
    pub load_balancer: Option<crate::cloud_lb::LbEntry>,
    /// The requests go through an ingress controller, each to the backend
    /// routed for the path it draws ([`IngressTraffic`]); `service` is
    /// then `None`, and `from` too (users outside the cluster).
    pub ingress: Option<IngressTraffic>,
    /// The address outside the VPC the target Deployment stands for: with
    /// `snat` and [`ClusterConfig::nat_gateways`], connections go through the
    /// client zone's NAT gateway, counted on this destination.
    pub external: Option<Destination>,
    /// Bytes of each request \[bytes\] (the NAT gateway's processing).
    pub request_bytes: u64,
    /// Bytes of each response \[bytes\].
    pub response_bytes: u64,
    /// No arrivals of its own (`rate` unused): each request a pod of
    /// `from` starts serving makes one request of this source, and waits
    /// for it before answering (the `calls` room).
    pub in_handler: bool,
}

impl TrafficSpec {
    /// The plainest source: clients outside the cluster sending `rate`
    /// requests/s to Service `service` with `timeout`, a connection per
    /// request, no lookup, no retries, no SNAT. Other sources change
    /// fields from it.
    pub fn to_service(name: &str, service: usize, rate: f64, timeout: SimDuration) -> Self {
        TrafficSpec {
            name: name.to_string(),
            from: None,
            service: Some(service),
            resolve: None,
            dns_cache: None,
            persistent_dns_socket: false,
            threads: 1,
            retries: 0,
            rate,
            timeout,
            connections: ConnectionMode::PerRequest,
            snat: false,
            entry: None,
            load_balancer: None,
            ingress: None,
            external: None,
            request_bytes: 0,
            response_bytes: 0,
            in_handler: false,
        }
    }
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
    /// A zone fails: its nodes stop with their pods (`zone_down`).
    ZoneDown {
        /// The zone's name.
        zone: String,
        /// Its nodes (node pool slots included).
        nodes: Vec<usize>,
    },
    /// A pod range is added that new nodes' blocks are cut from (GKE's
    /// additional pod ranges; per-node layout).
    AddPodRange {
        /// The range.
        cidr: Ipv4Cidr,
    },
    /// An operator deletes the UDP conntrack entries on these nodes
    /// (`conntrack -D -p udp`): every DNS flow is balanced afresh.
    FlushUdpConntrack {
        /// Node indices.
        nodes: Vec<usize>,
    },
    /// The sidecar proxy of every running pod of a meshed workload restarts
    /// (an Envoy crash, an OOM kill): its connections are reset and the pod
    /// is not Ready until the new proxy's probe passes (`starts` room).
    ProxyRestart {
        /// Workload index.
        deployment: usize,
    },
    /// The mean service time of a workload's handlers becomes
    /// `service_time` (a dependency slows down: a slow query plan, a
    /// degraded disk, a noisy neighbour; or recovers): requests that start
    /// service from now on take it, those in service keep theirs.
    SetServiceTime {
        /// Workload index.
        deployment: usize,
        /// The new mean (exponential, as [`crate::app::ServerSpec`]).
        service_time: SimDuration,
    },
    /// A NAT gateway goes down (its translations lost, every packet routed
    /// to it dropped) or comes back: a stand-in for its zone failing.
    NatGateway {
        /// Gateway index in [`NatSetup::config`].
        gateway: usize,
        /// Up (true) or down.
        up: bool,
    },
}

impl ClusterConfig {
    /// The run's Services, as [`TrafficSpec::service`] indexes them
    /// ([`crate::services::resolve`]; computed on each call, for reports).
    pub fn service_list(&self) -> Vec<crate::services::ResolvedService> {
        crate::services::resolve(&self.deployments, &self.services.explicit)
    }

    /// The target Service's name and the first workload it selects.
    pub fn target_of(&self, t: &TrafficSpec) -> Option<(String, Option<usize>)> {
        let s = t.service?;
        let list = self.service_list();
        let r = list.get(s)?;
        Some((r.spec.name.clone(), r.workloads.first().copied()))
    }
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
    /// Explicit Services, node addresses and the edge
    /// ([`crate::services::ServicesConfig`]; default: the implicit Service
    /// of each workload, no public addresses, no security group).
    pub services: crate::services::ServicesConfig,
    /// The node pool the cluster autoscaler grows into the standby node
    /// slots of [`ClusterConfig::nodes`]; `None`: the nodes are fixed.
    pub node_pool: Option<NodePoolSpec>,
    /// NAT gateways for egress outside the VPC; `None`: not modelled.
    pub nat_gateways: Option<NatSetup>,
    /// How the cloud bills bytes between zones: with it, the run counts
    /// each pod-to-pod request's bytes per zone pair and prices them
    /// ([`crate::transfer_cost`]); `None`: not counted.
    pub billing: Option<crate::transfer_cost::Billing>,
    /// The service mesh: a proxy per meshed pod or per node on the request
    /// path ([`crate::mesh::MeshConfig`]); `None`: no mesh.
    pub mesh: Option<crate::mesh::MeshConfig>,
}

/// The NAT gateways and the zones their route tables are indexed by.
#[derive(Clone, Debug, PartialEq)]
pub struct NatSetup {
    /// Zone names: index i of [`NatGatewayConfig::routes`] and of a
    /// gateway's zone is `zones[i]`; a node whose zone is not listed has
    /// no route out.
    pub zones: Vec<String>,
    /// Gateways, routes, limits and prices.
    pub config: NatGatewayConfig,
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
    /// The glibc generation the client pods' images carry
    /// ([`GlibcVersion`]): how a SERVFAIL in the one-at-a-time modes is
    /// handled.
    pub glibc: GlibcVersion,
}

/// NodeLocal DNSCache's link-local listen address (the nodelocaldns.yaml
/// default `169.254.20.10`).
pub const NODE_LOCAL_DNS_IP: Ipv4Addr = Ipv4Addr::new(169, 254, 20, 10);

/// Where a nameserver address in a pod's resolv.conf leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameserverRoute {
    /// The kube-dns ClusterIP, through the Service's DNAT to a CoreDNS pod.
    KubeDns,
    /// The node's NodeLocal DNSCache (no DNAT, no conntrack).
    NodeLocal,
}

/// A pod spec's `dnsConfig`. With `dnsPolicy: ClusterFirst` searches are
/// appended to the kubelet's and options replace the defaults; with
/// `dnsPolicy: None` ([`PodDnsConfig::policy_none`]) the resolv.conf is
/// the `dnsConfig` alone, on glibc's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodDnsConfig {
    /// `dnsPolicy: None`: nothing from the kubelet.
    pub policy_none: bool,
    /// Nameservers, in order: after the cluster's with `ClusterFirst`, the
    /// only ones with `dnsPolicy: None` (at most 3 in all, glibc's `MAXNS`).
    pub nameservers: Vec<Ipv4Addr>,
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
    /// With NodeLocal DNSCache the kubelet's `clusterDNS` is the node-local
    /// address (as node-local-dns is set up with IPVS kube-proxy; in
    /// iptables mode it also binds the kube-dns ClusterIP, to the same
    /// effect for `ClusterFirst` pods).
    pub fn resolv_conf(&self, namespace: &str, d: usize) -> ResolvConf {
        let host: Vec<&str> = self.host_search.iter().map(String::as_str).collect();
        let cluster_dns = if self.node_local.is_some() {
            NODE_LOCAL_DNS_IP
        } else {
            self.service_ip
        };
        let mut conf =
            ResolvConf::kubernetes_pod(namespace, std::net::IpAddr::V4(cluster_dns), &host);
        conf.glibc = self.glibc;
        if let Some(p) = self.pod_dns.get(&d) {
            if p.policy_none {
                conf = ResolvConf {
                    glibc: self.glibc,
                    ..ResolvConf::glibc_default(Vec::new())
                };
            }
            conf.nameservers
                .extend(p.nameservers.iter().map(|a| std::net::IpAddr::V4(*a)));
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

    /// Where queries to nameserver `addr` go; `None`: nowhere this cluster
    /// model knows (the kube-dns ClusterIP, or the NodeLocal DNSCache
    /// address when the cluster runs it).
    pub fn route(&self, addr: std::net::IpAddr) -> Option<NameserverRoute> {
        match addr {
            std::net::IpAddr::V4(a) if a == self.service_ip => Some(NameserverRoute::KubeDns),
            std::net::IpAddr::V4(a) if a == NODE_LOCAL_DNS_IP && self.node_local.is_some() => {
                Some(NameserverRoute::NodeLocal)
            }
            _ => None,
        }
    }
}
