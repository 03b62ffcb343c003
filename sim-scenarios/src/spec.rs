//! The scenario file format.
//!
//! A scenario states a cluster, its workloads and their traffic, a timeline
//! of actions, what to measure, and `expect:` assertions, so that a replay
//! checks itself. `variants:` run the same story with some sections replaced
//! (the fix beside the outage). Every field is checked: an unknown or
//! misspelt field is an error, never a silent default, and every error names
//! `file:line:column`, what is wrong and a hint.
//! The envelope this format shares with packet-level scenarios (variants,
//! thresholds, located errors) is in [`crate::envelope`].
//!
//! ```yaml
//! name: black_friday_cidr
//! summary: A /24 pod network meets a region failover
//! duration: 3h30m
//! sample_every: 1m
//! variant: {name: broken, description: the story's /24}
//! cluster:
//!   nodes: {count: 8, zones: [us-west-2a, us-west-2b], max_pods: 110}
//!   ipam: {mode: flat, pod_cidr: 10.0.0.0/24}
//! workloads:
//!   - {name: checkout, replicas: 50, startup: 20s, ready_after: 10s,
//!      concurrency: 2, service_time: 800ms}
//! traffic:
//!   - {to: checkout, rate: 100/s, timeout: 10s}
//! timeline:
//!   - {at: 10m, scale: checkout, replicas: 500}
//!   - {at: 10m, traffic: checkout, rate: 1000/s}
//! measure:
//!   windows: [{name: failover, from: 20m, to: 3h10m}]
//! expect:
//!   - {metric: pods_pending, workload: checkout, at: 1h, equals: 246}
//! variants:
//!   - name: fix
//!     description: a /22
//!     cluster: {nodes: {count: 8, zones: \[a\]}, ipam: {mode: flat, pod_cidr: 10.0.0.0/22}}
//!     expect: [{metric: pods_pending, workload: checkout, at: 1h, equals: 0}]
//! ```

use crate::envelope::{
    self, closest, did_you_mean, serde_error, tagged, Locate, Threshold, VariantLabel,
};
use crate::error::InputError;
use crate::locate::{Positions, Seg};
use crate::path;
use crate::units::{Count, Cpu, Duration, Memory, Rate};
use serde::Deserialize;
use sim_core::SimDuration;
use sim_models::app::ServerSpec;
use sim_models::cluster::{
    Action, ClientDnsCache, ClusterConfig, ConntrackSetup, DnsConfig, PodDnsConfig, TimedAction,
    TrafficSpec, WindowSpec, RCODES, ZONES,
};
use sim_models::connections::{ConnectionMode, GO_IDLE_CONN_TIMEOUT, GO_MAX_IDLE_PER_HOST};
use sim_models::conntrack::{self, ConntrackConfig, DataPath, Kernel, Timeouts};
use sim_models::coredns::{CoreDnsSpec, UpstreamSpec};
use sim_models::hpa::HpaSpec;
use sim_models::ipam::{Allocator, IpamLayout, Ipv4Cidr};
use sim_models::kube_proxy::{KubeProxyConfig, Mode};
use sim_models::netpol::{parse_manifests, Namespace, Protocol};
use sim_models::policy_enforcement::{Cni, PolicyConfig};
use sim_models::resolver::QueryTypes;
use sim_models::snat::{PortChoice, SnatConfig};
use sim_models::topology::{spread_nodes, NodeSpec, DEFAULT_MAX_PODS};
use sim_models::workload::{DeploymentSpec, WorkloadKind};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// A scenario file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Short name (`black_friday_cidr`).
    pub name: String,
    /// One line saying what it replays.
    pub summary: String,
    /// The story, for reports.
    #[serde(default)]
    pub story: String,
    /// Simulated time to run.
    pub duration: Duration,
    /// Time-series sampling period.
    pub sample_every: Duration,
    /// Name and description of the configuration the top level describes.
    #[serde(default)]
    pub variant: Option<VariantLabel>,
    /// The cluster.
    pub cluster: ClusterFile,
    /// Deployments.
    pub workloads: Vec<WorkloadFile>,
    /// Namespaces and their labels (others are created without labels).
    #[serde(default)]
    pub namespaces: Vec<NamespaceFile>,
    /// The CNI and NetworkPolicy.
    #[serde(default)]
    pub network: Option<NetworkFile>,
    /// The cluster DNS.
    #[serde(default)]
    pub dns: Option<DnsFile>,
    /// Clients.
    #[serde(default)]
    pub traffic: Vec<TrafficFile>,
    /// Actions at times.
    #[serde(default)]
    pub timeline: Vec<TimelineFile>,
    /// Measurement windows.
    #[serde(default)]
    pub measure: Option<MeasureFile>,
    /// Assertions on the top-level configuration.
    #[serde(default)]
    pub expect: Vec<ExpectFile>,
    /// Other configurations of the same story.
    #[serde(default)]
    pub variants: Vec<VariantFile>,
}

/// A variant: the top level with some sections replaced.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantFile {
    /// Short name.
    pub name: String,
    /// What differs.
    #[serde(default)]
    pub description: String,
    /// Replaces the cluster.
    pub cluster: Option<ClusterFile>,
    /// Replaces the workloads.
    pub workloads: Option<Vec<WorkloadFile>>,
    /// Replaces the traffic.
    pub traffic: Option<Vec<TrafficFile>>,
    /// Replaces the timeline.
    pub timeline: Option<Vec<TimelineFile>>,
    /// Replaces the network section.
    pub network: Option<NetworkFile>,
    /// Replaces the dns section.
    pub dns: Option<DnsFile>,
    /// Assertions on this variant (not inherited).
    #[serde(default)]
    pub expect: Vec<ExpectFile>,
}

/// The cluster section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    /// Nodes.
    pub nodes: NodesFile,
    /// Pod addressing.
    pub ipam: IpamFile,
}

/// Nodes spread over zones.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodesFile {
    /// How many.
    pub count: Count,
    /// Zones, used round-robin.
    pub zones: Vec<String>,
    /// kubelet `--max-pods` (default 110).
    pub max_pods: Option<Count>,
}

/// Pod addressing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpamFile {
    /// `flat` or `per-node`.
    pub mode: IpamMode,
    /// Flat: the pod network.
    pub pod_cidr: Option<String>,
    /// Flat: `flat` (default), `host-local` or `aws-vpc`.
    pub allocator: Option<AllocatorName>,
    /// Per-node: `--cluster-cidr`.
    pub cluster_cidr: Option<String>,
    /// Per-node: `--node-cidr-mask-size` (default 24).
    pub node_mask: Option<Count>,
}

/// IPAM layouts.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum IpamMode {
    /// One pool for the cluster.
    Flat,
    /// One block per node.
    PerNode,
}

/// Allocator names as written.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum AllocatorName {
    /// Network and broadcast reserved.
    Flat,
    /// Network, gateway and broadcast reserved.
    HostLocal,
    /// First four and last reserved.
    AwsVpc,
}

/// One Deployment and its server.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadFile {
    /// Name (its Service has the same name).
    pub name: String,
    /// Replicas at the start.
    pub replicas: Count,
    /// Binding to container running.
    pub startup: Duration,
    /// Container running to Ready.
    pub ready_after: Duration,
    /// Requests served at once per pod (not for the DNS workload, whose
    /// pods are CoreDNS).
    pub concurrency: Option<Count>,
    /// Mean service time (not for the DNS workload).
    pub service_time: Option<Duration>,
    /// Requests that may wait per pod (default: no limit).
    pub queue_limit: Option<Count>,
    /// `deployment` (default) or `statefulset`.
    pub kind: Option<KindName>,
    /// Namespace (default `default`).
    pub namespace: Option<String>,
    /// Pod labels (default `app: NAME`).
    pub labels: Option<BTreeMap<String, String>>,
    /// Port the pods serve on (default 8080).
    pub port: Option<u16>,
    /// Name of that container port.
    pub port_name: Option<String>,
    /// `TCP` (default), `UDP` or `SCTP`.
    pub protocol: Option<String>,
    /// The Service is headless (`clusterIP: None`): its DNS name gives pod
    /// addresses, which clients connect to directly.
    #[serde(default)]
    pub headless: bool,
    /// The pod spec's `dnsConfig` (with `dnsPolicy: ClusterFirst`).
    pub dns_config: Option<PodDnsConfigFile>,
}

/// A pod's `dnsConfig`, as in the pod spec.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodDnsConfigFile {
    /// Search domains appended to the kubelet's.
    #[serde(default)]
    pub searches: Vec<String>,
    /// resolv.conf options: `ndots`, `timeout`, `attempts` (with a value),
    /// `single-request`, `single-request-reopen`, `rotate`.
    #[serde(default)]
    pub options: Vec<DnsOptionFile>,
}

/// One `dnsConfig.options` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsOptionFile {
    /// Option name.
    pub name: String,
    /// Its value (a number, quoted or not, as Kubernetes takes it).
    pub value: Option<OptionValue>,
}

/// An option value: Kubernetes takes strings, people write numbers too.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OptionValue {
    /// `value: 2`.
    Number(u64),
    /// `value: "2"`.
    Text(String),
}

/// Workload controllers.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum KindName {
    /// A Deployment.
    Deployment,
    /// A StatefulSet.
    Statefulset,
}

/// A namespace.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceFile {
    /// Name.
    pub name: String,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// The CNI and the NetworkPolicy sets.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkFile {
    /// `calico`, `cilium` or `flannel`.
    pub cni: CniName,
    /// From a policy change to its effect in the data path (required when
    /// the timeline changes policies).
    pub policy_delay: Option<Duration>,
    /// Named sets of NetworkPolicy manifests, each a YAML text (several
    /// documents separated by `---`).
    #[serde(default)]
    pub policy_sets: BTreeMap<String, String>,
    /// Named sets read from manifest files (paths relative to the scenario
    /// file), as users keep them beside their workloads.
    #[serde(default)]
    pub policy_files: BTreeMap<String, String>,
    /// Sets active at T+0.
    #[serde(default)]
    pub active: Vec<String>,
    /// Every node's netfilter conntrack table (default: not modelled).
    pub conntrack: Option<ConntrackFile>,
    /// The Service data path: kube-proxy's mode and its parameters
    /// (default: an ideal data path that follows endpoints at once).
    pub kube_proxy: Option<KubeProxyFile>,
    /// The cluster's other Services, which only add rules (needs `kube_proxy`).
    pub services: Option<OtherServicesFile>,
    /// The nodes' MASQUERADE rule for traffic with `snat: true` (needs
    /// `conntrack`).
    pub masquerade: Option<MasqueradeFile>,
}

/// kube-proxy (or the eBPF agent replacing it) and its parameters; every
/// parameter but `mode` has a calibrated default (sim-models `kube_proxy`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeProxyFile {
    /// `iptables`, `ipvs`, `nftables` or `ebpf`.
    pub mode: ProxyModeName,
    /// `--iptables-sync-period` (default 30s).
    pub sync_period: Option<Duration>,
    /// `--iptables-min-sync-period` (default 1s; ebpf 0).
    pub min_sync_period: Option<Duration>,
    /// iptables: partial restores, KEP-3453 (default true; false for
    /// kube-proxy 1.26 and older).
    pub partial_restores: Option<bool>,
    /// iptables: time per rule walked (default 15ns).
    pub per_rule: Option<Duration>,
    /// iptables: log-normal sigma of the walk's spread (default 0.35).
    pub walk_sigma: Option<f64>,
    /// ipvs, nftables, ebpf: lookup time above the measured path (default 0).
    pub hash_lookup: Option<Duration>,
    /// Programming time per rule line or object (default 18.39us, #96018).
    pub per_line: Option<Duration>,
}

/// Forwarding engines as operators name them.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProxyModeName {
    /// `--proxy-mode=iptables`.
    Iptables,
    /// `--proxy-mode=ipvs`.
    Ipvs,
    /// `--proxy-mode=nftables`.
    Nftables,
    /// eBPF service load balancing (Cilium kube-proxy replacement).
    Ebpf,
}

/// The cluster's other Services.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtherServicesFile {
    /// How many Service ports besides the workloads' own.
    pub count: Count,
    /// Endpoints of each.
    pub endpoints: Count,
}

/// MASQUERADE's source-port choice.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MasqueradeFile {
    /// `--random-fully` (default false).
    #[serde(default)]
    pub random_fully: bool,
    /// From the NAT decision to conntrack confirmation of a new flow (an
    /// assumption: no published measurement).
    pub race_window: Duration,
}

/// The conntrack table of every node.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConntrackFile {
    /// Who sets the table up: `kube-proxy` (default: nf_conntrack_max =
    /// max(32768 x cores, 131072), TCP established 86400 s, close_wait
    /// 3600 s) or `kernel` (buckets = RAM / 16384, max per kernel release,
    /// the kernel's timeouts).
    pub sized_by: Option<SizedBy>,
    /// Kernel release profile: `3.10`, `4.19` or `5.15` (default).
    pub kernel: Option<String>,
    /// CPU cores per node (for kube-proxy's formula).
    pub node_cores: Option<Count>,
    /// Memory per node \[GiB\] (for the kernel's formula and the buckets).
    pub node_memory_gib: Option<Count>,
    /// `nf_conntrack_max` set by hand \[entries\]; overrides the formulas.
    pub max: Option<Count>,
    /// Share of same-socket UDP pairs (glibc's parallel A and AAAA) two
    /// CPUs put through conntrack at once, racing to insert the flow's
    /// entry, 0..1 (an assumption: no published measurement). Required
    /// when such pairs go through a kernel that can drop the loser.
    pub udp_pair_concurrency: Option<f64>,
    /// kube-proxy deletes the UDP entries of a removed endpoint (default
    /// true; false: the deletion fails, as in Preply's 2020 postmortem).
    pub flush_udp_on_endpoint_removal: Option<bool>,
}

/// Who sizes the conntrack table.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum SizedBy {
    /// kube-proxy's `conntrack` settings.
    KubeProxy,
    /// The kernel's defaults.
    Kernel,
}

/// The cluster DNS Service.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsFile {
    /// The workload serving DNS (e.g. coredns in kube-system, port 53 UDP).
    pub workload: String,
    /// kube-dns ClusterIP (default 10.96.0.10, kubeadm's).
    pub service_ip: Option<std::net::Ipv4Addr>,
    /// `A` (default) or `A+AAAA` (both in parallel on one socket, glibc's default for AF_UNSPEC).
    pub queries: Option<String>,
    /// The node's own search domains, appended after the cluster's (e.g. `ec2.internal`).
    #[serde(default)]
    pub host_search: Vec<String>,
    /// Each CoreDNS pod's resources and Corefile settings (default: kubeadm's).
    pub coredns: Option<CoreDnsFile>,
    /// The upstream resolver behind the forward plugin.
    pub upstream: Option<UpstreamFile>,
    /// NodeLocal DNSCache (default false): every node runs node-local-dns
    /// (the nodelocaldns.yaml Corefile); pods query it, it forwards
    /// cluster names to kube-dns over TCP and other names to the upstream.
    #[serde(default)]
    pub node_local_dns: bool,
    /// A HorizontalPodAutoscaler on the CoreDNS Deployment's CPU (default none).
    pub autoscaler: Option<HpaFile>,
}

/// `kubectl autoscale deployment coredns --min=2 --max=10 --cpu-percent=70`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HpaFile {
    /// `minReplicas` (default 1).
    pub min_replicas: Option<Count>,
    /// `maxReplicas`.
    pub max_replicas: Count,
    /// Target average CPU utilization, percent of the request.
    pub target_cpu_utilization: Count,
}

/// One CoreDNS pod: resources and Corefile settings. Defaults: kubeadm's
/// (100m CPU, 170Mi limit, `cache 30`, `max_concurrent 1000`, `ttl 30`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoreDnsFile {
    /// CPU the pod gets (`100m`).
    pub cpu: Option<Cpu>,
    /// Container memory limit (`170Mi`).
    pub memory_limit: Option<Memory>,
    /// Pods plus Services in the cluster (memory formula).
    pub cluster_objects: Option<Count>,
    /// Entries in each of the two caches; 0 turns the cache off.
    pub cache_capacity: Option<Count>,
    /// `cache` TTL cap.
    pub cache_max_ttl: Option<Duration>,
    /// `kubernetes` plugin `ttl`.
    pub kubernetes_ttl: Option<Duration>,
    /// `forward ... max_concurrent`; 0 is refused (it means no limit in CoreDNS).
    pub max_concurrent: Option<Count>,
}

/// The upstream resolver.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamFile {
    /// Time to answer a forwarded query (default 1ms).
    pub latency: Option<Duration>,
    /// Share of tries that get no reply, 0..1.
    pub loss: Option<f64>,
    /// Share of tries answered SERVFAIL, 0..1.
    pub servfail: Option<f64>,
    /// TTL of its answers (default 30s).
    pub ttl: Option<Duration>,
}

/// CNI names.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CniName {
    /// Calico.
    Calico,
    /// Cilium.
    Cilium,
    /// Flannel.
    Flannel,
}

/// Clients of one Service.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficFile {
    /// Name for the timeline (default: the target's name).
    pub name: Option<String>,
    /// Workload whose pods send the requests (default: outside the cluster).
    pub from: Option<String>,
    /// Resolve a name through the cluster DNS before each request: `true`
    /// for the target Service's name, or the name to look up (e.g.
    /// `api.example.com`, or `api.example.com.` with a trailing dot);
    /// needs `from` and a `dns` section.
    pub resolve: Option<ResolveFile>,
    /// Target Service (= Deployment) name; without it the request is the
    /// lookup of `resolve` alone.
    pub to: Option<String>,
    /// The application's DNS cache: `ttl` (the record's) or a duration
    /// (`30s`, whatever the TTL); default none.
    pub dns_cache: Option<String>,
    /// The application's resolver keeps one UDP socket per pod for all its
    /// queries (default false: glibc, a new socket per name looked up).
    #[serde(default)]
    pub persistent_dns_socket: bool,
    /// Retries of a failed request (default 0); each resolves again.
    pub retries: Option<Count>,
    /// Mean rate, Poisson.
    pub rate: Rate,
    /// Client timeout (per try).
    pub timeout: Duration,
    /// The connections leave through the client node's MASQUERADE rule
    /// (needs `from` and `network.masquerade`).
    #[serde(default)]
    pub snat: bool,
    /// How requests use TCP connections: `per-request` (default),
    /// `keep-alive` (Go's defaults: 2 idle per pod, 90 s), `client-side`,
    /// `{keep_alive: {max_idle: N, idle_timeout: D}}` or `{long_lived: N}`.
    pub connections: Option<ConnectionsFile>,
}

/// A connection mode as written: a name or a one-key map.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ConnectionsFile {
    /// `per-request`, `keep-alive` or `client-side`.
    Name(String),
    /// `{keep_alive: {...}}` or `{long_lived: N}`.
    Map(ConnectionsMap),
}

/// The map form of `connections`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionsMap {
    /// An HTTP/1.1 keep-alive pool per client pod.
    pub keep_alive: Option<KeepAliveFile>,
    /// Long-lived connections per client pod, pinned at connect time.
    pub long_lived: Option<Count>,
    /// With `long_lived`: the server closes connections this old (gRPC
    /// `MaxConnectionAge`); default never.
    pub max_age: Option<Duration>,
}

/// Keep-alive pool settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeepAliveFile {
    /// Idle connections kept per client pod (default 2, Go's `MaxIdleConnsPerHost`).
    pub max_idle: Option<Count>,
    /// Idle connections close after this (default 90s, Go's `IdleConnTimeout`).
    pub idle_timeout: Option<Duration>,
}

/// `resolve: true` or `resolve: NAME`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ResolveFile {
    /// The target Service's own name.
    Flag(bool),
    /// A name.
    Name(String),
}

/// One timeline entry: `at` plus exactly one action.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimelineFile {
    /// When.
    pub at: Duration,
    /// Scale this Deployment (with `replicas`).
    pub scale: Option<String>,
    /// New replica count.
    pub replicas: Option<Count>,
    /// Change this traffic source's rate (with `rate`).
    pub traffic: Option<String>,
    /// New rate.
    pub rate: Option<Rate>,
    /// Add a pod IP pool (flat IPAM).
    pub add_pod_cidr: Option<String>,
    /// Make these NetworkPolicy sets the active ones.
    pub policies: Option<Vec<String>>,
    /// The CNI daemon stops on these nodes (`all` or a list of node names).
    pub cni_down: Option<NodeNames>,
    /// The CNI daemon runs again on these nodes.
    pub cni_up: Option<NodeNames>,
    /// An operator deletes the UDP conntrack entries on these nodes
    /// (`conntrack -D -p udp`; needs network.conntrack).
    pub conntrack_flush: Option<NodeNames>,
}

/// Nodes an action applies to: `all`, one name, or a list of names.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum NodeNames {
    /// `all` or one node's name.
    One(String),
    /// Node names.
    Many(Vec<String>),
}

/// What to measure.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasureFile {
    /// Named windows.
    #[serde(default)]
    pub windows: Vec<WindowFile>,
}

/// One window.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowFile {
    /// Name.
    pub name: String,
    /// Start.
    pub from: Duration,
    /// End.
    pub to: Duration,
}

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

/// One runnable configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// Short name.
    pub name: String,
    /// What differs.
    pub description: String,
    /// The model configuration.
    pub config: ClusterConfig,
    /// Its assertions.
    pub expect: Vec<Expectation>,
}

/// A validated scenario.
pub type Scenario = envelope::Scenario<Variant>;

/// Parses and validates scenario text; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Scenario, InputError> {
    let empty = text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---"
    });
    if empty {
        return Err(InputError::whole(
            file,
            "the file is empty",
            "a scenario needs at least name, summary, duration, sample_every, cluster and workloads; \
             `knsim list` shows bundled scenarios to start from",
        ));
    }
    let raw: ScenarioFile = serde_yaml_ng::from_str(text).map_err(|e| {
        let mut err = serde_error(file, &e);
        if err.at.is_none() && err.message.contains("more than one document") {
            // serde_yaml_ng gives no position here: point at the second
            // document's separator.
            let sep = text
                .lines()
                .enumerate()
                .filter(|(_, l)| {
                    l.strip_prefix("---")
                        .is_some_and(|r| r.is_empty() || r.starts_with([' ', '\t']))
                })
                .map(|(i, _)| i + 1)
                .find(|&i| i > 1);
            err.at = sep.map(|line| (line, 1));
            err.hint = "a scenario is one YAML document: remove the `---` line".into();
        }
        err
    })?;
    let pos = Positions::of(text);
    Validator {
        file,
        text,
        pos: &pos,
    }
    .scenario(raw)
}

/// Reads and validates a scenario file.
pub fn load(path: &std::path::Path) -> Result<Scenario, InputError> {
    let (file, text) = read(path)?;
    parse(&file, &text)
}

/// Reads a scenario file: (its name for errors, its text).
pub fn read(path: &std::path::Path) -> Result<(String, String), InputError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            "check the path; `knsim list` shows the bundled scenarios, which `knsim run NAME` accepts"
        } else {
            "the file must be readable UTF-8 text"
        };
        InputError::whole(&file, format!("cannot read the file: {e}"), hint)
    })?;
    Ok((file, text))
}

/// The sections one variant is built from, each with the path it was
/// written at (empty: the top level).
struct Sections<'f> {
    at: Vec<Seg>,
    cluster: (&'f ClusterFile, Vec<Seg>),
    workloads: (&'f [WorkloadFile], Vec<Seg>),
    traffic: (&'f [TrafficFile], Vec<Seg>),
    timeline: (&'f [TimelineFile], Vec<Seg>),
    network: (Option<&'f NetworkFile>, Vec<Seg>),
    dns: (Option<&'f DnsFile>, Vec<Seg>),
    expect: &'f [ExpectFile],
}

/// What a timeline entry may refer to.
#[derive(Clone, Copy)]
struct ActionRefs<'a> {
    find: &'a FindWorkload<'a>,
    traffic_names: &'a [String],
    ipam: &'a IpamLayout,
    duration: SimDuration,
    policy: Option<&'a PolicyConfig>,
    nodes: &'a [NodeSpec],
}

/// What every variant shares.
struct Common<'f> {
    namespaces: &'f [NamespaceFile],
    duration: SimDuration,
    sample_every: SimDuration,
    windows: &'f [WindowSpec],
}

pub(crate) struct Validator<'a> {
    pub(crate) file: &'a str,
    pub(crate) text: &'a str,
    pub(crate) pos: &'a Positions,
}

type R<T> = Result<T, InputError>;

/// Looks a workload name up: (name, path of the reference, what refers to it).
type FindWorkload<'a> = dyn Fn(&str, Vec<Seg>, &str) -> R<usize> + 'a;

impl Locate for Validator<'_> {
    fn source(&self) -> (&str, &Positions) {
        (self.file, self.pos)
    }
}

impl Validator<'_> {
    fn scenario(&self, f: ScenarioFile) -> R<Scenario> {
        if f.duration.0 == SimDuration::ZERO {
            return Err(self.err(
                &path!["duration"],
                "duration is 0",
                "give the simulated time to run, e.g. 1h",
            ));
        }
        if f.sample_every.0 == SimDuration::ZERO {
            return Err(self.err(
                &path!["sample_every"],
                "sample_every is 0",
                "give a sampling period, e.g. 1m",
            ));
        }
        let windows = self.windows(&f)?;
        let common = Common {
            namespaces: &f.namespaces,
            duration: f.duration.0,
            sample_every: f.sample_every.0,
            windows: &windows,
        };
        let label = |v: &VariantFile| (v.name.clone(), v.description.clone());
        let variants =
            self.variants(f.variant, &f.variants, label, |name, description, layer| {
                let sections = Sections {
                    at: layer.path(),
                    cluster: layer.pick(|v| v.cluster.as_ref(), &f.cluster),
                    workloads: layer.pick(|v| v.workloads.as_deref(), &f.workloads[..]),
                    traffic: layer.pick(|v| v.traffic.as_deref(), &f.traffic[..]),
                    timeline: layer.pick(|v| v.timeline.as_deref(), &f.timeline[..]),
                    network: layer.pick(|v| v.network.as_ref().map(Some), f.network.as_ref()),
                    dns: layer.pick(|v| v.dns.as_ref().map(Some), f.dns.as_ref()),
                    expect: layer.own(|v| &v.expect[..], &f.expect[..]),
                };
                self.variant(name, description, &sections, &common)
            })?;
        Ok(Scenario {
            name: f.name,
            summary: f.summary,
            story: f.story,
            variants,
        })
    }

    fn windows(&self, f: &ScenarioFile) -> R<Vec<WindowSpec>> {
        let mut out: Vec<WindowSpec> = Vec::new();
        for (i, w) in f.measure.iter().flat_map(|m| &m.windows).enumerate() {
            let p = path!["measure", "windows", i];
            if w.to.0 <= w.from.0 {
                return Err(self.err(
                    &p,
                    format!(
                        "window `{}` ends ({}) before it starts ({})",
                        w.name, w.to.0, w.from.0
                    ),
                    "`to` must be later than `from`",
                ));
            }
            if w.to.0 > f.duration.0 {
                return Err(self.err(
                    &p,
                    format!(
                        "window `{}` ends at {}, after the run ends at {}",
                        w.name, w.to.0, f.duration.0
                    ),
                    "shorten the window or lengthen `duration`",
                ));
            }
            if out.iter().any(|x| x.name == w.name) {
                return Err(self.err(
                    &p,
                    format!("window name `{}` is used twice", w.name),
                    "give each window its own name",
                ));
            }
            out.push(WindowSpec {
                name: w.name.clone(),
                start: w.from.0,
                end: w.to.0,
            });
        }
        Ok(out)
    }

    fn variant(
        &self,
        name: String,
        description: String,
        sec: &Sections<'_>,
        common: &Common<'_>,
    ) -> R<Variant> {
        let (cluster, cp) = (sec.cluster.0, &sec.cluster.1[..]);
        let (workloads, wp) = (sec.workloads.0, &sec.workloads.1[..]);
        let (traffic, tp) = (sec.traffic.0, &sec.traffic.1[..]);
        let (timeline, lp) = (sec.timeline.0, &sec.timeline.1[..]);
        let (expect, at) = (sec.expect, &sec.at[..]);
        let (duration, sample_every, windows) =
            (common.duration, common.sample_every, common.windows);
        let ipam = self.ipam(&[cp, &path!["cluster", "ipam"]].concat(), &cluster.ipam)?;
        let np = [cp, &path!["cluster", "nodes"]].concat();
        if cluster.nodes.zones.is_empty() {
            return Err(self.err(
                &np,
                "no zones given",
                "list at least one zone, e.g. zones: [zone-a]",
            ));
        }
        let nodes = spread_nodes(
            cluster.nodes.count.0,
            &cluster.nodes.zones,
            cluster.nodes.max_pods.map_or(DEFAULT_MAX_PODS, |c| c.0),
        );
        let mut deployments: Vec<DeploymentSpec> = Vec::new();
        for (i, w) in workloads.iter().enumerate() {
            let p = [wp, &path!["workloads", i]].concat();
            if deployments.iter().any(|d| d.name == w.name) {
                return Err(self.err(
                    &p,
                    format!("workload `{}` is defined twice", w.name),
                    "give each workload its own name",
                ));
            }
            let server = self.server(&p, w, sec.dns.0)?;
            let mut d =
                DeploymentSpec::new(&w.name, w.replicas.0, w.startup.0, w.ready_after.0, server);
            if let Some(KindName::Statefulset) = w.kind {
                d.kind = WorkloadKind::StatefulSet;
            }
            if let Some(ns) = &w.namespace {
                d.namespace = ns.clone();
            }
            if let Some(l) = &w.labels {
                d.labels = l.clone();
            }
            if let Some(port) = w.port {
                d.port.number = port;
            }
            d.port.name = w.port_name.clone();
            if let Some(proto) = &w.protocol {
                d.port.protocol = Protocol::parse(proto).ok_or_else(|| {
                    self.err(
                        &[&p[..], &path!["protocol"]].concat(),
                        format!("protocol `{proto}` is not TCP, UDP or SCTP"),
                        "protocols are upper case, as in Kubernetes: TCP, UDP, SCTP",
                    )
                })?;
            }
            deployments.push(d);
        }
        let names: Vec<&str> = deployments.iter().map(|d| d.name.as_str()).collect();
        let find = |n: &str, p: Vec<Seg>, what: &str| -> R<usize> {
            names.iter().position(|x| *x == n).ok_or_else(|| {
                self.err(
                    &p,
                    format!("{what} `{n}` is not a workload of this scenario"),
                    did_you_mean(n, &names, "workloads"),
                )
            })
        };
        let dns = match sec.dns.0 {
            Some(d) => Some(self.dns(&sec.dns.1, d, workloads, wp, &names)?),
            None => None,
        };
        let mut traffic_specs = Vec::new();
        let mut traffic_names: Vec<String> = Vec::new();
        for (i, t) in traffic.iter().enumerate() {
            let p = [tp, &path!["traffic", i]].concat();
            let d = match &t.to {
                Some(to) => Some(find(to, [&p[..], &path!["to"]].concat(), "traffic target")?),
                None => None,
            };
            if let (Some(d), Some(dc)) = (d, &dns) {
                if d == dc.workload {
                    return Err(self.err(
                        &[&p[..], &path!["to"]].concat(),
                        format!(
                            "`{}` is the DNS workload; its pods answer DNS queries, not requests",
                            names[d]
                        ),
                        "send lookups with `resolve: NAME` from a client workload",
                    ));
                }
            }
            let resolve =
                match (&t.resolve, d) {
                    (None | Some(ResolveFile::Flag(false)), _) => None,
                    (Some(ResolveFile::Flag(true)), Some(d)) => Some(names[d].to_string()),
                    (Some(ResolveFile::Flag(true)), None) => return Err(self.err(
                        &[&p[..], &path!["resolve"]].concat(),
                        "`resolve: true` resolves the target's name, but there is no `to`",
                        "add to: WORKLOAD, or write the name to look up: resolve: api.example.com",
                    )),
                    (Some(ResolveFile::Name(n)), _) => Some(n.clone()),
                };
            let Some(default_name) = t.to.clone().or_else(|| resolve.clone()) else {
                return Err(self.err(
                    &p,
                    "a traffic source needs `to` (a workload) or `resolve: NAME` (lookups alone)",
                    "e.g. {from: app, resolve: api.example.com, rate: 10/s, timeout: 30s}",
                ));
            };
            if d.is_some_and(|d| dns.as_ref().is_some_and(|c| c.headless.contains(&d)))
                && resolve.is_none()
            {
                return Err(self.err(
                    &p,
                    "the target's Service is headless (no ClusterIP): clients must resolve its name",
                    "add resolve: true (or the pod's name, e.g. resolve: db-0.db.prod.svc.cluster.local)",
                ));
            }
            let tname = t.name.clone().unwrap_or(default_name);
            if traffic_names.contains(&tname) {
                return Err(self.err(
                    &p,
                    format!("two traffic sources are called `{tname}`"),
                    "name them apart with `name:`",
                ));
            }
            traffic_names.push(tname);
            let from = match &t.from {
                Some(w) => Some(find(
                    w,
                    [&p[..], &path!["from"]].concat(),
                    "traffic source",
                )?),
                None => None,
            };
            if let Some(name) = &resolve {
                let Some(dc) = dns.as_ref().filter(|_| from.is_some()) else {
                    return Err(self.err(
                        &[&p[..], &path!["resolve"]].concat(),
                        "`resolve` needs `from` (the pods that resolve) and a `dns` section",
                        "add from: WORKLOAD and dns: {workload: coredns}",
                    ));
                };
                let f = from.unwrap_or_default();
                let conf = dc.resolv_conf(&deployments[f].namespace, f);
                if let Err(e) = sim_models::resolver::Lookup::new(&conf, name, dc.qtypes) {
                    return Err(self.err(
                        &[&p[..], &path!["resolve"]].concat(),
                        e.to_string(),
                        "write a host name such as api.example.com (a trailing dot makes it absolute)",
                    ));
                }
            }
            let dns_cache = match t.dns_cache.as_deref() {
                None => None,
                Some("ttl") => Some(ClientDnsCache::RecordTtl),
                Some(x) => Some(ClientDnsCache::Fixed(
                    crate::units::parse_duration(x).map_err(|e| {
                        self.err(
                            &[&p[..], &path!["dns_cache"]].concat(),
                            e,
                            "write dns_cache: ttl (the record's TTL) or a duration such as 30s",
                        )
                    })?,
                )),
            };
            if t.persistent_dns_socket && resolve.is_none() {
                return Err(self.err(
                    &[&p[..], &path!["persistent_dns_socket"]].concat(),
                    "`persistent_dns_socket` needs `resolve`: this source looks nothing up",
                    "add resolve: true, or remove persistent_dns_socket",
                ));
            }
            if dns_cache.is_some() && resolve.is_none() {
                return Err(self.err(
                    &[&p[..], &path!["dns_cache"]].concat(),
                    "`dns_cache` needs `resolve`: this source looks nothing up",
                    "add resolve: true, or remove dns_cache",
                ));
            }
            let connections = match &t.connections {
                None => ConnectionMode::PerRequest,
                Some(c) => self.connections(&[&p[..], &path!["connections"]].concat(), c)?,
            };
            if connections != ConnectionMode::PerRequest && from.is_none() {
                return Err(self.err(
                    &[&p[..], &path!["connections"]].concat(),
                    "connection pools belong to client pods; this traffic comes from outside the cluster",
                    "add from: WORKLOAD, or use connections: per-request",
                ));
            }
            if t.snat
                && (from.is_none() || sec.network.0.and_then(|n| n.masquerade.as_ref()).is_none())
            {
                return Err(self.err(
                    &[&p[..], &path!["snat"]].concat(),
                    "`snat: true` needs `from` (the pods whose node masquerades) and network.masquerade",
                    "add from: WORKLOAD and network: {..., conntrack: {...}, masquerade: {race_window: 5us}}",
                ));
            }
            traffic_specs.push(TrafficSpec {
                name: traffic_names[i].clone(),
                resolve,
                from,
                deployment: d,
                dns_cache,
                persistent_dns_socket: t.persistent_dns_socket,
                retries: t.retries.map_or(0, |c| c.0),
                rate: t.rate.0,
                timeout: t.timeout.0,
                connections,
                snat: t.snat,
            });
        }
        let policy = match sec.network.0 {
            Some(n) => Some(self.network(&sec.network.1, n, common.namespaces)?),
            None => None,
        };
        let mut conntrack = match sec.network.0.and_then(|n| n.conntrack.as_ref()) {
            Some(c) => Some(self.conntrack(
                &[&sec.network.1[..], &path!["network", "conntrack"]].concat(),
                c,
            )?),
            None => None,
        };
        let kube_proxy = match sec.network.0 {
            Some(n) => self.kube_proxy(&sec.network.1, n)?,
            None => None,
        };
        if let (Some(ct), Some(Mode::Ebpf)) =
            (conntrack.as_mut(), kube_proxy.as_ref().map(|k| k.mode))
        {
            // The eBPF load balancer tracks pod flows in its own maps.
            ct.datapath = DataPath::Ebpf;
        }
        if let (Some(ct), Some(d), Some(c)) = (
            conntrack.as_ref(),
            dns.as_ref(),
            sec.network.0.and_then(|n| n.conntrack.as_ref()),
        ) {
            let races = d.qtypes == QueryTypes::AAndAaaa
                && ct.datapath.tracks_pod_flows()
                && ct.table.kernel != Kernel::V5_15;
            if races && c.udp_pair_concurrency.is_none() {
                return Err(self.err(
                    &[&sec.network.1[..], &path!["network", "conntrack"]].concat(),
                    format!(
                        "A and AAAA leave on one socket through kube-dns's DNAT, and kernel {} can drop the second when both race to insert the entry; how often they race is not known",
                        ct.table.kernel.name()
                    ),
                    "state it: udp_pair_concurrency: 0.05 (an assumption), or 0 to leave the race out",
                ));
            }
        }
        if let Some(m) = sec.network.0.and_then(|n| n.masquerade.as_ref()) {
            let mp = [&sec.network.1[..], &path!["network", "masquerade"]].concat();
            let Some(ct) = conntrack.as_mut() else {
                return Err(self.err(
                    &mp,
                    "masquerade needs network.conntrack: the port race is a conntrack insert race",
                    "add conntrack: {sized_by: kube-proxy, node_cores: 4}",
                ));
            };
            if m.race_window.0 == SimDuration::ZERO {
                return Err(self.err(
                    &[&mp[..], &path!["race_window"]].concat(),
                    "race_window is 0: no race could happen",
                    "give the NAT-to-confirm time, e.g. race_window: 5us",
                ));
            }
            ct.snat = Some(SnatConfig {
                ports: if m.random_fully {
                    PortChoice::RandomFully
                } else {
                    PortChoice::Default
                },
                race_window: m.race_window.0,
            });
        }
        let mut actions = Vec::new();
        for (i, e) in timeline.iter().enumerate() {
            let p = [lp, &path!["timeline", i]].concat();
            let refs = ActionRefs {
                find: &find,
                traffic_names: &traffic_names,
                ipam: &ipam,
                duration,
                policy: policy.as_ref(),
                nodes: &nodes,
            };
            actions.push(self.action(&p, e, &refs)?);
        }
        if conntrack.is_none() {
            if let Some(i) = actions
                .iter()
                .position(|a| matches!(a.action, Action::FlushUdpConntrack { .. }))
            {
                return Err(self.err(
                    &[lp, &path!["timeline", i, "conntrack_flush"]].concat(),
                    "`conntrack_flush` needs network.conntrack: there is no table to flush",
                    "add network: {cni: calico, conntrack: {node_cores: 4}}",
                ));
            }
        }
        let changes_policies = actions
            .iter()
            .any(|a| matches!(a.action, Action::SetPolicies { .. }));
        if changes_policies && sec.network.0.is_some_and(|n| n.policy_delay.is_none()) {
            return Err(self.err(
                &[&sec.network.1[..], &path!["network"]].concat(),
                "the timeline changes policies but network.policy_delay is not given",
                "give the time from a policy change to its effect in the data path, e.g. policy_delay: 2s",
            ));
        }
        let mut expectations = Vec::new();
        for (i, e) in expect.iter().enumerate() {
            let p = [at, &path!["expect", i]].concat();
            let x = self.expectation(&p, e, &names, &traffic_names, windows, duration)?;
            if x.metric.needs_kube_proxy() && kube_proxy.is_none() {
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
        let config = ClusterConfig {
            nodes,
            ipam,
            deployments,
            traffic: traffic_specs,
            timeline: actions,
            duration,
            sample_every,
            windows: windows.to_vec(),
            policy,
            dns,
            conntrack,
            kube_proxy,
        };
        Ok(Variant {
            name,
            description,
            config,
            expect: expectations,
        })
    }

    /// The CNI and the policy sets; a manifest error is reported at its
    /// place inside the scenario file (policy sets are `|` blocks).
    pub(crate) fn network(
        &self,
        at: &[Seg],
        n: &NetworkFile,
        namespaces: &[NamespaceFile],
    ) -> R<PolicyConfig> {
        let cni = match n.cni {
            CniName::Calico => Cni::Calico,
            CniName::Cilium => Cni::Cilium,
            CniName::Flannel => Cni::Flannel,
        };
        let mut sets = Vec::new();
        for (name, text) in &n.policy_sets {
            let key = [at, &path!["network", "policy_sets", name.as_str()]].concat();
            let manifests =
                parse_manifests(&[(self.file.to_string(), text.clone())]).map_err(|e| {
                    let (line, col) = self.pos.find(&key);
                    // A `|` block starts on the line after its key, indented.
                    let indent = self
                        .text
                        .lines()
                        .nth(line)
                        .map_or(0, |l| l.len() - l.trim_start().len());
                    let at = if e.line > 0 {
                        (line + e.line, indent + e.column)
                    } else {
                        (line, col)
                    };
                    InputError::at(
                        self.file,
                        at,
                        format!("policy set `{name}`: {}", e.message),
                        e.hint,
                    )
                })?;
            sets.push((name.clone(), manifests.cluster.policies().to_vec()));
        }
        for (name, rel) in &n.policy_files {
            let key = [at, &path!["network", "policy_files", name.as_str()]].concat();
            if n.policy_sets.contains_key(name) {
                return Err(self.err(
                    &key,
                    format!("policy set `{name}` is defined inline and as a file"),
                    "give the two sets different names",
                ));
            }
            let dir = std::path::Path::new(self.file)
                .parent()
                .unwrap_or(std::path::Path::new("."));
            let path = dir.join(rel);
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(&path).map_err(|e| {
                self.err(
                    &key,
                    format!("cannot read {shown}: {e}"),
                    "paths are relative to the scenario file",
                )
            })?;
            let manifests = parse_manifests(&[(shown.clone(), text)]).map_err(|e| InputError {
                file: e.file.clone(),
                at: (e.line > 0).then_some((e.line, e.column)),
                message: format!("policy set `{name}`: {}", e.message),
                hint: e.hint.clone(),
            })?;
            sets.push((name.clone(), manifests.cluster.policies().to_vec()));
        }
        let mut active = Vec::new();
        for (i, a) in n.active.iter().enumerate() {
            let Some(k) = sets.iter().position(|(name, _)| name == a) else {
                let known: Vec<&str> = sets.iter().map(|(n, _)| n.as_str()).collect();
                return Err(self.err(
                    &[at, &path!["network", "active", i]].concat(),
                    format!("no policy set is called `{a}`"),
                    format!("policy sets: {}", known.join(", ")),
                ));
            };
            active.push(k);
        }
        Ok(PolicyConfig {
            cni,
            delay: n.policy_delay.map_or(SimDuration::ZERO, |d| d.0),
            sets,
            active,
            namespaces: namespaces
                .iter()
                .map(|ns| Namespace {
                    name: ns.name.clone(),
                    labels: ns.labels.clone(),
                })
                .collect(),
        })
    }

    /// A traffic source's connection mode.
    fn connections(&self, p: &[Seg], c: &ConnectionsFile) -> R<ConnectionMode> {
        let hint = "write per-request, keep-alive, client-side, {keep_alive: {max_idle: 2, idle_timeout: 90s}} or {long_lived: 1}";
        let keep = |max_idle: Option<Count>, idle: Option<Duration>| ConnectionMode::KeepAlive {
            max_idle: max_idle.map_or(GO_MAX_IDLE_PER_HOST, |c| c.0),
            idle_timeout: idle.map_or(GO_IDLE_CONN_TIMEOUT, |d| d.0),
        };
        match c {
            ConnectionsFile::Name(n) => match n.as_str() {
                "per-request" => Ok(ConnectionMode::PerRequest),
                "keep-alive" => Ok(keep(None, None)),
                "client-side" => Ok(ConnectionMode::ClientSide),
                other => {
                    let names = ["per-request", "keep-alive", "client-side"];
                    let h = match closest(other, &names) {
                        Some(b) => format!("did you mean `{b}`? {hint}"),
                        None => hint.to_string(),
                    };
                    Err(self.err(p, format!("`{other}` is not a connection mode"), h))
                }
            },
            ConnectionsFile::Map(m) => match (&m.keep_alive, m.long_lived) {
                (_, None) if m.max_age.is_some() => Err(self.err(
                    &[p, &path!["max_age"]].concat(),
                    "max_age belongs to long_lived connections",
                    "write {long_lived: N, max_age: 5m}",
                )),
                (Some(k), None) => {
                    if k.max_idle.is_some_and(|c| c.0 == 0) {
                        return Err(self.err(
                            &[p, &path!["keep_alive", "max_idle"]].concat(),
                            "max_idle is 0: no connection would ever be reused",
                            "use connections: per-request for that, or max_idle: 1 or more",
                        ));
                    }
                    Ok(keep(k.max_idle, k.idle_timeout))
                }
                (None, Some(n)) if n.0 > 0 => Ok(ConnectionMode::LongLived {
                    per_client: n.0,
                    max_age: m.max_age.map(|d| d.0).filter(|d| *d > SimDuration::ZERO),
                }),
                (None, Some(_)) => Err(self.err(
                    &[p, &path!["long_lived"]].concat(),
                    "long_lived is 0: the clients would hold no connection",
                    "give 1 or more connections per client pod",
                )),
                _ => Err(self.err(
                    p,
                    "connections takes exactly one of keep_alive or long_lived",
                    hint,
                )),
            },
        }
    }

    /// Every node's conntrack table.
    pub(crate) fn conntrack(&self, p: &[Seg], c: &ConntrackFile) -> R<ConntrackSetup> {
        let kernel = match &c.kernel {
            None => Kernel::V5_15,
            Some(k) => Kernel::parse(k).ok_or_else(|| {
                let known: Vec<&str> = Kernel::ALL.iter().map(|k| k.name()).collect();
                self.err(
                    &[p, &path!["kernel"]].concat(),
                    format!("no kernel profile `{k}`"),
                    format!("profiles (write them quoted): {}", known.join(", ")),
                )
            })?,
        };
        let ram = c.node_memory_gib.map(|g| u64::from(g.0) << 30);
        let sized_by = c.sized_by.unwrap_or(SizedBy::KubeProxy);
        let table = match (sized_by, c.max, c.node_cores, ram) {
            (SizedBy::KubeProxy, None, Some(cores), _) => {
                ConntrackConfig::kube_proxy(ram.unwrap_or(0), cores.0, kernel)
            }
            (SizedBy::KubeProxy, None, None, _) => {
                return Err(self.err(
                    p,
                    "kube-proxy sizes the table from the node's cores, and node_cores is not given",
                    "add node_cores: 4 (or set max: N by hand)",
                ))
            }
            (SizedBy::Kernel, None, _, Some(ram)) => ConntrackConfig::kernel_default(ram, kernel),
            (SizedBy::Kernel, None, _, None) => {
                return Err(self.err(
                    p,
                    "the kernel sizes the table from the node's memory, and node_memory_gib is not given",
                    "add node_memory_gib: 8 (or set max: N by hand)",
                ))
            }
            (by, Some(max), _, _) => {
                if max.0 == 0 {
                    return Err(self.err(
                        &[p, &path!["max"]].concat(),
                        "max is 0: no flow could ever be tracked",
                        "give nf_conntrack_max in entries, e.g. max: 131072",
                    ));
                }
                let max = u64::from(max.0);
                let buckets = ram.map_or(max / 4, conntrack::kernel_buckets).max(1);
                ConntrackConfig {
                    max,
                    buckets,
                    timeouts: match by {
                        SizedBy::KubeProxy => Timeouts::kube_proxy(),
                        SizedBy::Kernel => Timeouts::kernel(),
                    },
                    kernel,
                }
            }
        };
        let udp_pair_concurrency = match c.udp_pair_concurrency {
            None => 0.0,
            Some(x) if (0.0..=1.0).contains(&x) => x,
            Some(x) => return Err(self.err(
                &[p, &path!["udp_pair_concurrency"]].concat(),
                format!("udp_pair_concurrency {x} is not a share in 0..1"),
                "give the share of A/AAAA pairs processed at once, e.g. udp_pair_concurrency: 0.05",
            )),
        };
        Ok(ConntrackSetup {
            table,
            datapath: DataPath::Netfilter,
            snat: None,
            udp_pair_concurrency,
            flush_udp_on_endpoint_removal: c.flush_udp_on_endpoint_removal.unwrap_or(true),
        })
    }

    /// The Service data path of a `network` section written at `at`.
    pub(crate) fn kube_proxy(&self, at: &[Seg], n: &NetworkFile) -> R<Option<KubeProxyConfig>> {
        let np = [at, &path!["network"]].concat();
        let Some(k) = &n.kube_proxy else {
            if n.services.is_some() {
                return Err(self.err(
                    &[&np[..], &path!["services"]].concat(),
                    "`services` only adds rules to kube-proxy's data path, and no kube_proxy is given",
                    "add kube_proxy: {mode: iptables} (or ipvs, nftables, ebpf)",
                ));
            }
            return Ok(None);
        };
        let kp = [&np[..], &path!["kube_proxy"]].concat();
        let field = |f: &str| [&kp[..], &path![f]].concat();
        let mode = match k.mode {
            ProxyModeName::Iptables => Mode::Iptables,
            ProxyModeName::Ipvs => Mode::Ipvs,
            ProxyModeName::Nftables => Mode::Nftables,
            ProxyModeName::Ebpf => Mode::Ebpf,
        };
        if mode == Mode::Ebpf && n.cni == CniName::Flannel {
            return Err(self.err(
                &field("mode"),
                "flannel has no eBPF service load balancer",
                "eBPF service load balancing comes with cni: cilium (kubeProxyReplacement) or calico's eBPF data plane",
            ));
        }
        let mut cfg = KubeProxyConfig::new(mode);
        let only = |f: &str, given: bool, ok: bool, what: &str| -> R<()> {
            if given && !ok {
                return Err(self.err(
                    &field(f),
                    format!("`{f}` applies to {what}, not to mode {}", mode.name()),
                    "remove it, or change the mode",
                ));
            }
            Ok(())
        };
        let iptables = mode == Mode::Iptables;
        only(
            "partial_restores",
            k.partial_restores.is_some(),
            iptables,
            "mode iptables",
        )?;
        only(
            "per_rule",
            k.per_rule.is_some(),
            iptables,
            "mode iptables (the rule walk)",
        )?;
        only(
            "walk_sigma",
            k.walk_sigma.is_some(),
            iptables,
            "mode iptables (the rule walk)",
        )?;
        only(
            "hash_lookup",
            k.hash_lookup.is_some(),
            !iptables,
            "the hash modes: ipvs, nftables, ebpf",
        )?;
        if let Some(d) = k.sync_period {
            if d.0 == SimDuration::ZERO {
                return Err(self.err(
                    &field("sync_period"),
                    "sync_period is 0",
                    "kube-proxy's default is 30s",
                ));
            }
            cfg.sync_period = d.0;
        }
        if let Some(d) = k.min_sync_period {
            cfg.min_sync_period = d.0;
        }
        if cfg.min_sync_period > cfg.sync_period {
            return Err(self.err(
                &field("min_sync_period"),
                format!(
                    "min_sync_period {} is longer than sync_period {}",
                    cfg.min_sync_period, cfg.sync_period
                ),
                "kube-proxy's defaults are min_sync_period 1s, sync_period 30s",
            ));
        }
        if let Some(p) = k.partial_restores {
            cfg.partial_restores = p;
        }
        if let Some(d) = k.per_rule {
            cfg.costs.per_rule = d.0;
        }
        if let Some(s) = k.walk_sigma {
            if !(0.0..=3.0).contains(&s) {
                return Err(self.err(
                    &field("walk_sigma"),
                    format!("walk_sigma {s} is outside 0..3"),
                    "the default, fitted to KEP-3866, is 0.35",
                ));
            }
            cfg.costs.walk_sigma = s;
        }
        if let Some(d) = k.hash_lookup {
            cfg.costs.hash_lookup = d.0;
        }
        if let Some(d) = k.per_line {
            cfg.costs.per_line = d.0;
        }
        if let Some(o) = &n.services {
            cfg.other_services = u64::from(o.count.0);
            cfg.other_endpoints = u64::from(o.endpoints.0);
        }
        Ok(Some(cfg))
    }

    /// A workload's server model; the DNS workload's pods are CoreDNS and
    /// take none.
    fn server(&self, p: &[Seg], w: &WorkloadFile, dns: Option<&DnsFile>) -> R<ServerSpec> {
        let field = |n: &str| [p, &path![n]].concat();
        if dns.is_some_and(|d| d.workload == w.name) {
            if w.concurrency.is_some() || w.service_time.is_some() {
                let key = if w.concurrency.is_some() {
                    "concurrency"
                } else {
                    "service_time"
                };
                return Err(self.err(
                    &field(key),
                    format!("`{}` is the DNS workload: its pods are CoreDNS, whose speed comes from its CPU", w.name),
                    "remove concurrency and service_time; set the CPU with dns: {coredns: {cpu: 100m}}",
                ));
            }
            let spec = CoreDnsSpec::default();
            return Ok(ServerSpec {
                concurrency: 1,
                service_time: spec.mean_service_time(),
                queue_limit: None,
            });
        }
        let (Some(c), Some(t)) = (w.concurrency, w.service_time) else {
            let key = if w.concurrency.is_none() {
                "concurrency"
            } else {
                "service_time"
            };
            return Err(self.err(
                p,
                format!("workload `{}` needs `{key}`", w.name),
                "give the requests served at once per pod (concurrency) and their mean time (service_time)",
            ));
        };
        if c.0 == 0 {
            return Err(self.err(
                &field("concurrency"),
                "concurrency is 0: the pods could never answer",
                "give each pod at least one worker",
            ));
        }
        Ok(ServerSpec {
            concurrency: c.0,
            service_time: t.0,
            queue_limit: w.queue_limit.map(|c| c.0),
        })
    }

    /// The cluster DNS: CoreDNS, its upstream, and every workload's
    /// `dnsConfig` and headless Service.
    fn dns(
        &self,
        at: &[Seg],
        d: &DnsFile,
        workload_files: &[WorkloadFile],
        wp: &[Seg],
        workloads: &[&str],
    ) -> R<DnsConfig> {
        let field = |n: &[Seg]| [at, &path!["dns"], n].concat();
        let Some(workload) = workloads.iter().position(|w| *w == d.workload) else {
            return Err(self.err(
                &field(&path!["workload"]),
                format!("`{}` is not a workload of this scenario", d.workload),
                format!("workloads: {}", workloads.join(", ")),
            ));
        };
        let qtypes = match d.queries.as_deref() {
            None | Some("A") => QueryTypes::AOnly,
            Some("A+AAAA") => QueryTypes::AAndAaaa,
            Some(other) => {
                return Err(self.err(
                    &field(&path!["queries"]),
                    format!("`{other}` is not a query set"),
                    "write A or A+AAAA",
                ));
            }
        };
        let mut coredns = CoreDnsSpec::default();
        if let Some(c) = &d.coredns {
            if let Some(cpu) = c.cpu {
                coredns.cpu_millicores = cpu.0;
            }
            if let Some(m) = c.memory_limit {
                coredns.memory_limit = m.0;
            }
            if let Some(n) = c.cluster_objects {
                coredns.cluster_objects = u64::from(n.0);
            }
            if let Some(n) = c.cache_capacity {
                coredns.cache_capacity = n.0;
            }
            if let Some(t) = c.cache_max_ttl {
                // `cache N` caps both the success and the denial cache.
                coredns.cache_max_ttl = t.0;
                coredns.denial_max_ttl = t.0;
                coredns.cache_min_ttl = coredns.cache_min_ttl.min(t.0);
            }
            if let Some(t) = c.kubernetes_ttl {
                coredns.kubernetes_ttl = t.0;
            }
            if let Some(n) = c.max_concurrent {
                coredns.max_concurrent = Some(n.0);
            }
        }
        if let Some(u) = &d.upstream {
            let mut up = UpstreamSpec::default();
            if let Some(l) = u.latency {
                up.latency = l.0;
            }
            up.failure_probability = u.loss.unwrap_or(0.0);
            up.servfail_probability = u.servfail.unwrap_or(0.0);
            if let Some(t) = u.ttl {
                up.record_ttl = t.0;
            }
            coredns.upstream = up;
        }
        if let Err(e) = coredns.validate() {
            let key = if d.coredns.is_some() {
                "coredns"
            } else {
                "upstream"
            };
            return Err(self.err(
                &field(&path![key]),
                e.to_string(),
                "see the defaults in sim-models/src/coredns.rs (kubeadm: 100m CPU, 170Mi)",
            ));
        }
        let mut pod_dns = BTreeMap::new();
        let mut headless = BTreeSet::new();
        for (i, w) in workload_files.iter().enumerate() {
            if w.headless {
                headless.insert(i);
            }
            let Some(c) = &w.dns_config else { continue };
            let p = [wp, &path!["workloads", i, "dns_config"]].concat();
            let mut conf = PodDnsConfig {
                searches: c.searches.clone(),
                ..PodDnsConfig::default()
            };
            for (k, o) in c.options.iter().enumerate() {
                let op = [&p[..], &path!["options", k]].concat();
                let value = match &o.value {
                    None => None,
                    Some(OptionValue::Number(n)) => Some(*n),
                    Some(OptionValue::Text(t)) => Some(t.trim().parse::<u64>().map_err(|_| {
                        self.err(
                            &op,
                            format!("option {} value `{t}` is not a whole number", o.name),
                            "e.g. {name: ndots, value: \"2\"}",
                        )
                    })?),
                };
                let small = |max: u64| -> R<u8> {
                    match value {
                        Some(v) if v <= max => Ok(v as u8),
                        Some(v) => Err(self.err(
                            &op,
                            format!("option {} value {v} is above {max}", o.name),
                            format!("glibc accepts {} up to {max}", o.name),
                        )),
                        None => Err(self.err(
                            &op,
                            format!("option {} needs a value", o.name),
                            format!("e.g. {{name: {}, value: \"2\"}}", o.name),
                        )),
                    }
                };
                let flag = || -> R<bool> {
                    if value.is_some() {
                        return Err(self.err(
                            &op,
                            format!("option {} takes no value", o.name),
                            "remove value",
                        ));
                    }
                    Ok(true)
                };
                match o.name.as_str() {
                    "ndots" => conf.ndots = Some(small(15)?),
                    "timeout" => {
                        conf.timeout = Some(SimDuration::from_secs(u64::from(small(30)?).max(1)))
                    }
                    "attempts" => conf.attempts = Some(small(5)?.max(1)),
                    "single-request" => conf.single_request = flag()?,
                    "single-request-reopen" => conf.single_request_reopen = flag()?,
                    "rotate" => conf.rotate = flag()?,
                    other => {
                        let known = [
                            "ndots",
                            "timeout",
                            "attempts",
                            "single-request",
                            "single-request-reopen",
                            "rotate",
                        ];
                        return Err(self.err(
                            &[&op[..], &path!["name"]].concat(),
                            format!("resolv.conf option `{other}` is not modelled"),
                            did_you_mean(other, &known, "modelled"),
                        ));
                    }
                }
            }
            pod_dns.insert(i, conf);
        }
        let config = DnsConfig {
            workload,
            service_ip: d.service_ip.unwrap_or(Ipv4Addr::new(10, 96, 0, 10)),
            qtypes,
            coredns,
            host_search: d.host_search.clone(),
            pod_dns,
            headless,
            node_local: d.node_local_dns.then(|| CoreDnsSpec {
                upstream: coredns.upstream,
                ..CoreDnsSpec::node_local()
            }),
            autoscaler: match &d.autoscaler {
                None => None,
                Some(h) => {
                    let hp = field(&path!["autoscaler"]);
                    let min = h.min_replicas.map_or(1, |c| c.0);
                    if min == 0 || h.max_replicas.0 < min {
                        return Err(self.err(
                            &hp,
                            format!(
                                "min_replicas {min} and max_replicas {} do not make a range of at least one pod",
                                h.max_replicas.0
                            ),
                            "e.g. autoscaler: {min_replicas: 2, max_replicas: 10, target_cpu_utilization: 70}",
                        ));
                    }
                    if h.target_cpu_utilization.0 == 0 {
                        return Err(self.err(
                            &[&hp[..], &path!["target_cpu_utilization"]].concat(),
                            "target_cpu_utilization 0 would scale to max_replicas at any load",
                            "give a percent of the CPU request, e.g. target_cpu_utilization: 70",
                        ));
                    }
                    Some(HpaSpec {
                        min_replicas: min,
                        max_replicas: h.max_replicas.0,
                        target_utilization: f64::from(h.target_cpu_utilization.0) / 100.0,
                    })
                }
            },
        };
        for (i, w) in workload_files.iter().enumerate() {
            let ns = w.namespace.as_deref().unwrap_or("default");
            if let Err(e) = config.resolv_conf(ns, i).validate() {
                let p = if w.dns_config.is_some() {
                    [wp, &path!["workloads", i, "dns_config"]].concat()
                } else {
                    field(&path!["host_search"])
                };
                return Err(self.err(&p, e.to_string(), "see resolv.conf(5)"));
            }
        }
        Ok(config)
    }

    fn cidr(&self, p: &[Seg], s: &str) -> R<Ipv4Cidr> {
        s.parse::<Ipv4Cidr>().map_err(|e| {
            let hint = match &e {
                sim_models::ipam::CidrError::HostBits { network, .. } => {
                    format!("did you mean {network}?")
                }
                _ => "write an IPv4 network as a.b.c.d/N with N from 0 to 32, e.g. 10.0.0.0/22"
                    .into(),
            };
            self.err(p, e.to_string(), hint)
        })
    }

    fn ipam(&self, p: &[Seg], f: &IpamFile) -> R<IpamLayout> {
        let field = |name: &str| [p, &path![name]].concat();
        match f.mode {
            IpamMode::Flat => {
                if f.cluster_cidr.is_some() || f.node_mask.is_some() {
                    return Err(self.err(
                        &field(if f.cluster_cidr.is_some() {
                            "cluster_cidr"
                        } else {
                            "node_mask"
                        }),
                        "cluster_cidr and node_mask belong to `mode: per-node`",
                        "use pod_cidr with mode: flat, or switch to mode: per-node",
                    ));
                }
                let Some(c) = &f.pod_cidr else {
                    return Err(self.err(
                        p,
                        "mode: flat needs pod_cidr",
                        "add e.g. pod_cidr: 10.0.0.0/22",
                    ));
                };
                let pod_cidr = self.cidr(&field("pod_cidr"), c)?;
                let allocator = match f.allocator.unwrap_or(AllocatorName::Flat) {
                    AllocatorName::Flat => Allocator::Flat,
                    AllocatorName::HostLocal => Allocator::HostLocal,
                    AllocatorName::AwsVpc => Allocator::AwsVpc,
                };
                if allocator.usable_range(&pod_cidr).is_none() {
                    return Err(self.err(&field("pod_cidr"), format!("{pod_cidr} leaves no usable address once the allocator's reserved addresses are taken"), "use a shorter prefix, e.g. /24"));
                }
                Ok(IpamLayout::Flat {
                    pod_cidr,
                    allocator,
                })
            }
            IpamMode::PerNode => {
                if f.pod_cidr.is_some() || f.allocator.is_some() {
                    return Err(self.err(&field(if f.pod_cidr.is_some() { "pod_cidr" } else { "allocator" }), "pod_cidr and allocator belong to `mode: flat`", "per-node layouts take cluster_cidr and node_mask (host-local allocates in each block)"));
                }
                let Some(c) = &f.cluster_cidr else {
                    return Err(self.err(
                        p,
                        "mode: per-node needs cluster_cidr",
                        "add e.g. cluster_cidr: 10.244.0.0/16",
                    ));
                };
                let cluster_cidr = self.cidr(&field("cluster_cidr"), c)?;
                let node_mask = f.node_mask.map_or(24, |m| m.0);
                if node_mask > 30 || node_mask < u32::from(cluster_cidr.prefix()) {
                    return Err(self.err(
                        &field("node_mask"),
                        format!("node_mask /{node_mask} does not fit inside {cluster_cidr}"),
                        format!(
                            "node_mask must be between /{} and /30",
                            cluster_cidr.prefix()
                        ),
                    ));
                }
                Ok(IpamLayout::PerNode {
                    cluster_cidr,
                    node_mask: node_mask as u8,
                })
            }
        }
    }

    /// Node indices named by `which`: `all`, or names of `nodes`.
    fn node_names(&self, p: &[Seg], which: &NodeNames, nodes: &[NodeSpec]) -> R<Vec<usize>> {
        let names: Vec<&str> = match which {
            NodeNames::One(n) if n == "all" => return Ok((0..nodes.len()).collect()),
            NodeNames::One(n) => vec![n.as_str()],
            NodeNames::Many(ns) => ns.iter().map(String::as_str).collect(),
        };
        let mut picked = Vec::new();
        for (i, name) in names.into_iter().enumerate() {
            let Some(n) = nodes.iter().position(|x| x.name == name) else {
                let q = match which {
                    NodeNames::One(_) => p.to_vec(),
                    NodeNames::Many(_) => [p, &path![i]].concat(),
                };
                let last = nodes.last().map_or("none", |n| n.name.as_str());
                return Err(self.err(
                    &q,
                    format!("no node is called `{name}`"),
                    format!("write `all` or names from node-1 to {last}"),
                ));
            };
            if !picked.contains(&n) {
                picked.push(n);
            }
        }
        Ok(picked)
    }

    fn action(&self, p: &[Seg], e: &TimelineFile, refs: &ActionRefs<'_>) -> R<TimedAction> {
        let ActionRefs {
            find,
            traffic_names,
            ipam,
            duration,
            policy,
            nodes,
        } = *refs;
        let set = [
            e.scale.is_some(),
            e.traffic.is_some(),
            e.add_pod_cidr.is_some(),
            e.policies.is_some(),
            e.cni_down.is_some(),
            e.cni_up.is_some(),
            e.conntrack_flush.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        let hint = "each timeline entry has `at` and one action: `scale` + `replicas`, `traffic` + `rate`, `add_pod_cidr`, `policies`, `cni_down`, `cni_up` or `conntrack_flush` (+ `all` or node names)";
        if set != 1 {
            let msg = if set == 0 {
                "timeline entry has no action"
            } else {
                "timeline entry has more than one action"
            };
            return Err(self.err(p, msg, hint));
        }
        if e.at.0 > duration {
            return Err(self.err(
                &[p, &path!["at"]].concat(),
                format!("at {} is after the run ends ({duration})", e.at.0),
                "lengthen `duration` or move the action",
            ));
        }
        let action = if let Some(name) = &e.scale {
            let deployment = find(name, [p, &path!["scale"]].concat(), "scale target")?;
            let (Some(replicas), None) = (e.replicas, e.rate) else {
                return Err(self.err(p, "`scale` needs `replicas` (and no `rate`)", hint));
            };
            Action::Scale {
                deployment,
                replicas: replicas.0,
            }
        } else if let Some(name) = &e.traffic {
            let Some(traffic) = traffic_names.iter().position(|t| t == name) else {
                return Err(self.err(
                    &[p, &path!["traffic"]].concat(),
                    format!("no traffic source is called `{name}`"),
                    format!("traffic sources: {}", traffic_names.join(", ")),
                ));
            };
            let (Some(rate), None) = (e.rate, e.replicas) else {
                return Err(self.err(p, "`traffic` needs `rate` (and no `replicas`)", hint));
            };
            Action::SetRate {
                traffic,
                rate: rate.0,
            }
        } else if let Some(names) = &e.policies {
            let pp = [p, &path!["policies"]].concat();
            let Some(cfg) = policy else {
                return Err(self.err(
                    &pp,
                    "`policies` needs a `network` section with policy_sets",
                    "add network: {cni: calico, policy_delay: 2s, policy_sets: {...}}",
                ));
            };
            let mut sets = Vec::new();
            for n in names {
                let Some(i) = cfg.sets.iter().position(|(name, _)| name == n) else {
                    let known: Vec<&str> = cfg.sets.iter().map(|(n, _)| n.as_str()).collect();
                    return Err(self.err(
                        &pp,
                        format!("no policy set is called `{n}`"),
                        format!("policy sets: {}", known.join(", ")),
                    ));
                };
                sets.push(i);
            }
            Action::SetPolicies { sets }
        } else if let Some(which) = &e.conntrack_flush {
            if e.replicas.is_some() || e.rate.is_some() {
                return Err(self.err(p, "`conntrack_flush` takes no `replicas` or `rate`", hint));
            }
            let nodes = self.node_names(&[p, &path!["conntrack_flush"]].concat(), which, nodes)?;
            Action::FlushUdpConntrack { nodes }
        } else if let Some(which) = e.cni_down.as_ref().or(e.cni_up.as_ref()) {
            let field = if e.cni_down.is_some() {
                "cni_down"
            } else {
                "cni_up"
            };
            if e.replicas.is_some() || e.rate.is_some() {
                return Err(self.err(p, format!("`{field}` takes no `replicas` or `rate`"), hint));
            }
            let picked = self.node_names(&[p, &path![field]].concat(), which, nodes)?;
            if e.cni_down.is_some() {
                Action::CniDown { nodes: picked }
            } else {
                Action::CniUp { nodes: picked }
            }
        } else {
            let cp = [p, &path!["add_pod_cidr"]].concat();
            let cidr = self.cidr(&cp, e.add_pod_cidr.as_deref().unwrap_or_default())?;
            match ipam {
                IpamLayout::Flat { pod_cidr, .. } if pod_cidr.overlaps(&cidr) => {
                    return Err(self.err(
                        &cp,
                        format!("{cidr} overlaps the pod network {pod_cidr}"),
                        "add a pool that does not overlap, e.g. the next free /22",
                    ));
                }
                IpamLayout::PerNode { .. } => {
                    return Err(self.err(
                        &cp,
                        "add_pod_cidr applies to `mode: flat` IPAM",
                        "per-node layouts are sized by cluster_cidr and node_mask",
                    ));
                }
                _ => {}
            }
            if e.replicas.is_some() || e.rate.is_some() {
                return Err(self.err(p, "`add_pod_cidr` takes no `replicas` or `rate`", hint));
            }
            Action::AddIpPool { cidr }
        };
        Ok(TimedAction { at: e.at.0, action })
    }

    fn expectation(
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn closest_suggests_typos_only() {
        assert_eq!(closest("replica", &["name", "replicas"]), Some("replicas"));
        assert_eq!(closest("zzzzzzzz", &["name", "replicas"]), None);
    }

    fn with_lines(traffic_extra: &str, network: &str) -> Result<Scenario, InputError> {
        let text = format!(
            "name: t\nsummary: s\nduration: 1m\nsample_every: 10s\ncluster:\n  nodes: {{count: 1, zones: [a]}}\n  ipam: {{mode: flat, pod_cidr: 10.0.0.0/24}}\n\
             {network}workloads:\n  - {{name: api, replicas: 1, startup: 1s, ready_after: 1s, concurrency: 1, service_time: 1ms}}\n\
             traffic:\n  - {{to: api, rate: 1/s, timeout: 1s{traffic_extra}}}\n"
        );
        parse("t.yaml", &text)
    }

    #[test]
    fn connection_modes_and_conntrack_settings_parse() {
        let ok = with_lines(
            ", from: api, connections: {keep_alive: {max_idle: 4}}",
            "network:\n  cni: calico\n  conntrack: {kernel: \"3.10\", node_cores: 16}\n",
        )
        .unwrap();
        let cfg = &ok.variants[0].config;
        assert_eq!(
            cfg.traffic[0].connections,
            ConnectionMode::KeepAlive {
                max_idle: 4,
                idle_timeout: GO_IDLE_CONN_TIMEOUT
            }
        );
        let ct = cfg.conntrack.unwrap();
        assert_eq!((ct.table.max, ct.table.kernel), (524_288, Kernel::V3_10));
        let ll = with_lines(", from: api, connections: {long_lived: 3}", "").unwrap();
        assert_eq!(
            ll.variants[0].config.traffic[0].connections,
            ConnectionMode::LongLived {
                per_client: 3,
                max_age: None
            }
        );
    }

    #[test]
    fn bad_connection_and_conntrack_settings_are_located() {
        let e = with_lines(", from: api, connections: keep-alvie", "").unwrap_err();
        assert_eq!(e.at.map(|a| a.0), Some(11), "{e}");
        assert!(e.hint.contains("did you mean `keep-alive`"), "{e}");
        let e = with_lines(", connections: keep-alive", "").unwrap_err();
        assert!(e.message.contains("outside the cluster"), "{e}");
        let e = with_lines(", from: api, connections: {long_lived: 0}", "").unwrap_err();
        assert!(e.message.contains("long_lived is 0"), "{e}");
        let e = with_lines(", from: api, connections: {long_lifed: 2}", "").unwrap_err();
        assert!(e.at.is_some() && e.hint.contains("long_lived"), "{e}");
        let e = with_lines(
            "",
            "network:\n  cni: calico\n  conntrack: {kernel: \"4.9\", max: 10}\n",
        )
        .unwrap_err();
        assert_eq!(e.at.map(|a| a.0), Some(10), "{e}");
        assert!(e.hint.contains("3.10, 4.19, 5.15"), "{e}");
        let e = with_lines(
            "",
            "network:\n  cni: calico\n  conntrack: {kernel: \"5.15\"}\n",
        )
        .unwrap_err();
        assert!(e.message.contains("node_cores"), "{e}");
        let e = with_lines("", "network:\n  cni: calico\n  conntrack: {maxx: 5}\n").unwrap_err();
        assert!(e.hint.contains("did you mean `max`"), "{e}");
    }

    /// A small scenario with `network` replaced by `net` (indented 2).
    fn with_network(net: &str, expect: &str) -> String {
        format!(
            "name: t\nsummary: t\nduration: 1m\nsample_every: 10s\n\
             cluster:\n  nodes: {{count: 1, zones: [a]}}\n  ipam: {{mode: flat, pod_cidr: 10.0.0.0/24}}\n\
             workloads:\n  - {{name: web, replicas: 2, startup: 1s, ready_after: 1s, concurrency: 1, service_time: 1ms}}\n\
             traffic:\n  - {{to: web, rate: 1/s, timeout: 1s}}\n\
             measure:\n  windows: [{{name: all, from: 0s, to: 1m}}]\n\
             network:\n{net}expect:\n{expect}"
        )
    }

    #[test]
    fn kube_proxy_sections_parse_with_defaults_and_overrides() {
        let text = with_network(
            "  cni: calico\n  kube_proxy: {mode: iptables, partial_restores: false, per_rule: 20ns}\n  services: {count: 5000, endpoints: 3}\n",
            "  - {metric: first_packet_p99, service: web, window: all, below: 1ms}\n",
        );
        let s = parse("kp.yaml", &text).unwrap();
        let kp = s.variants[0].config.kube_proxy.clone().unwrap();
        assert_eq!(kp.mode, Mode::Iptables);
        assert!(!kp.partial_restores);
        assert_eq!(kp.costs.per_rule, SimDuration::from_nanos(20));
        assert_eq!(kp.sync_period, SimDuration::from_secs(30));
        assert_eq!((kp.other_services, kp.other_endpoints), (5000, 3));
    }

    #[test]
    fn an_ebpf_load_balancer_takes_pod_flows_out_of_the_conntrack_table() {
        let net = |mode: &str| {
            format!("  cni: cilium\n  conntrack: {{max: 1000}}\n  kube_proxy: {{mode: {mode}}}\n")
        };
        let datapath = |mode: &str| {
            let s = parse("kp.yaml", &with_network(&net(mode), "  []\n")).unwrap();
            s.variants[0].config.conntrack.unwrap().datapath
        };
        assert_eq!(datapath("ebpf"), DataPath::Ebpf);
        assert_eq!(datapath("nftables"), DataPath::Netfilter);
    }

    #[test]
    fn the_a_aaaa_insert_race_needs_its_concurrency_stated() {
        let text = crate::bundled::BUNDLED
            .iter()
            .find(|(n, _)| *n == "dns_conntrack_race")
            .map(|(_, t)| *t)
            .unwrap_or_default();
        let base = "conntrack: {kernel: \"3.10\", node_cores: 4, udp_pair_concurrency: 0.05}";
        assert!(text.contains(base));
        let line = text.lines().position(|l| l.contains(base)).unwrap_or(0) + 1;
        let missing = text.replacen(", udp_pair_concurrency: 0.05", "", 1);
        let e = parse("race.yaml", &missing).unwrap_err();
        println!("{e}");
        assert!(
            e.message.contains("how often they race is not known"),
            "{e}"
        );
        assert!(e.hint.contains("udp_pair_concurrency"), "{e}");
        assert_eq!(e.at.map(|(l, _)| l), Some(line), "{e}");
        let wrong = text.replacen("udp_pair_concurrency: 0.05", "udp_pair_concurrency: 5", 1);
        let e = parse("race.yaml", &wrong).unwrap_err();
        assert!(e.message.contains("not a share in 0..1"), "{e}");
        let s = parse("race.yaml", text).unwrap();
        let ct = s.variants[0].config.conntrack.unwrap();
        assert_eq!(ct.udp_pair_concurrency, 0.05);
        assert!(ct.flush_udp_on_endpoint_removal);
    }

    #[test]
    fn a_conntrack_flush_needs_a_table() {
        let text = crate::bundled::BUNDLED
            .iter()
            .find(|(n, _)| *n == "preply_stale_conntrack")
            .map(|(_, t)| *t)
            .unwrap_or_default();
        let table = "  conntrack: {node_cores: 4, kernel: \"4.19\", flush_udp_on_endpoint_removal: false}\n";
        assert!(text.contains(table));
        let e = parse("flush.yaml", &text.replacen(table, "", 1)).unwrap_err();
        println!("{e}");
        assert!(e.message.contains("no table to flush"), "{e}");
        let line = text
            .lines()
            .position(|l| l.contains("conntrack_flush"))
            .unwrap_or(0);
        assert_eq!(e.at.map(|(l, _)| l), Some(line), "{e}");
        let s = parse("flush.yaml", text).unwrap();
        let ct = s.variants[0].config.conntrack.unwrap();
        assert!(!ct.flush_udp_on_endpoint_removal);
    }

    #[test]
    fn kube_proxy_mistakes_are_located_errors() {
        let cases = [
            (
                "  cni: calico\n  kube_proxy: {mode: ipvs, partial_restores: true}\n",
                "",
                "`partial_restores` applies to mode iptables",
                16,
            ),
            (
                "  cni: calico\n  services: {count: 10, endpoints: 1}\n",
                "",
                "only adds rules",
                16,
            ),
            (
                "  cni: calico\n",
                "  - {metric: first_packet_p50, service: web, window: all, below: 1ms}\n",
                "needs network.kube_proxy",
                17,
            ),
            (
                "  cni: flannel\n  kube_proxy: {mode: ebpf}\n",
                "",
                "flannel has no eBPF",
                16,
            ),
            (
                "  cni: calico\n  kube_proxy: {mode: iptables, min_sync_period: 1m}\n",
                "",
                "longer than sync_period",
                16,
            ),
            (
                "  cni: calico\n  kube_proxy: {mode: iptable}\n",
                "",
                "unknown variant `iptable`",
                16,
            ),
        ];
        for (net, expect, want, line) in cases {
            let e = parse("kp.yaml", &with_network(net, expect)).unwrap_err();
            println!("{e}");
            assert!(e.message.contains(want), "{e}");
            assert_eq!(e.at.map(|(l, _)| l), Some(line), "{e}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Whatever the text, parsing returns a value or an error; it never panics.
        #[test]
        fn parse_never_panics(text in "\\PC{0,200}") {
            let _ = parse("fuzz.yaml", &text);
        }

        /// Any single-line edit of a valid file parses or gives a located error.
        #[test]
        fn edited_scenarios_fail_with_a_position(line in 0usize..100, junk in "[a-z:{}\\[\\] -]{0,12}") {
            let base = include_str!("../../scenarios/black_friday_cidr.yaml");
            let mut lines: Vec<&str> = base.lines().collect();
            let i = line % lines.len();
            lines[i] = &junk;
            if let Err(e) = parse("edit.yaml", &lines.join("\n")) {
                prop_assert!(e.at.is_some() || e.message.contains("empty"), "{e}");
            }
        }
    }
}
