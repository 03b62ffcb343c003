//! The packet-level scenario file as written: one serde struct per section,
//! strict (`deny_unknown_fields`), validated by [`super::validate`].

use super::*;
use schemars::JsonSchema;

/// A packet-level scenario file as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatapathFile {
    /// Short name.
    pub name: String,
    /// One line.
    pub summary: String,
    /// The story, for reports.
    #[serde(default)]
    pub story: String,
    /// Simulated time to run.
    pub duration: Duration,
    /// Name and description of the top-level configuration.
    #[serde(default)]
    pub variant: Option<VariantLabel>,
    /// The network.
    pub datapath: NetFile,
    /// Traffic.
    #[serde(default)]
    pub flows: Vec<FlowFile>,
    /// Faults at times.
    #[serde(default)]
    pub timeline: Vec<FaultFile>,
    /// Assertions on the top level.
    #[serde(default)]
    pub expect: Vec<ExpectFile>,
    /// Other configurations.
    #[serde(default)]
    pub variants: Vec<VariantFile>,
}

/// A variant: sections replaced.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "PacketVariantFile")]
pub struct VariantFile {
    /// Short name.
    pub name: String,
    /// What differs.
    #[serde(default)]
    pub description: String,
    /// Replaces the network.
    pub datapath: Option<NetFile>,
    /// Replaces the flows.
    pub flows: Option<Vec<FlowFile>>,
    /// Replaces the timeline.
    pub timeline: Option<Vec<FaultFile>>,
    /// Assertions on this variant.
    #[serde(default)]
    pub expect: Vec<ExpectFile>,
}

/// The network section.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetFile {
    /// CNI name.
    pub cni: String,
    /// Cilium: `tunnel` (default) or `native`.
    pub routing: Option<String>,
    /// aws-vpc-cni: the EC2 instance type (pods per node from its ENIs).
    pub instance_type: Option<String>,
    /// Number of nodes.
    pub nodes: Count,
    /// Pod network (default 10.244.0.0/16).
    pub cluster_cidr: Option<String>,
    /// Per-node block (default 24).
    pub node_mask: Option<Count>,
    /// Pod MTU (default: the CNI's, from the underlay MTU).
    pub pod_mtu: Option<Count>,
    /// The underlay.
    pub underlay: UnderlayFile,
    /// BGP (calico-bgp).
    pub bgp: Option<BgpFile>,
    /// Pods.
    pub pods: Vec<PodFile>,
    /// Sites outside the cluster.
    #[serde(default)]
    pub sites: Vec<SiteFile>,
    /// Namespaces and their labels (for NetworkPolicy namespace selectors).
    #[serde(default)]
    pub namespaces: Vec<NamespaceFile>,
    /// ClusterIP Services flows may address (`to:` a Service's name).
    #[serde(default)]
    pub services: Vec<ServiceFile>,
    /// Where Services without `cluster_ip` get theirs (default
    /// 10.96.0.0/12; the first address is the API server's).
    pub service_cidr: Option<String>,
    /// The Service data path, conntrack and NetworkPolicy, written as the
    /// cluster format's `network:` section: `cni` (the CNI's family:
    /// calico, cilium or flannel), `kube_proxy`, `services` (the cluster's
    /// other Services, which only add rules), `conntrack`, `policy_sets`,
    /// `policy_files`, `active`.
    pub network: Option<NetworkFile>,
}

/// A ClusterIP Service.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceFile {
    /// Name.
    pub name: String,
    /// Namespace (default `default`): it selects pods of its own.
    pub namespace: Option<String>,
    /// The ClusterIP (default: the next one of `service_cidr`).
    pub cluster_ip: Option<String>,
    /// The port clients dial (default 80).
    pub port: Option<u16>,
    /// The port the pods serve on (default: `port`).
    pub target_port: Option<u16>,
    /// Labels of the pods it selects.
    pub selector: BTreeMap<String, String>,
}

/// The underlay.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UnderlayFile {
    /// The nodes' NIC MTU.
    pub mtu: Count,
    /// Largest packet the path between nodes carries (default: `mtu`).
    pub path_mtu: Option<Count>,
    /// Node to fabric latency (default 50us).
    pub latency: Option<Duration>,
    /// NIC bandwidth (default 10Gbit/s).
    pub bandwidth: Option<Bandwidth>,
    /// Inbound ICMP in the nodes' security group: `allow` (default) or `deny`.
    pub icmp: Option<String>,
}

/// BGP settings.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BgpFile {
    /// Hold time (default 90s, RFC 4271).
    pub hold_time: Duration,
}

/// A pod.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PodFile {
    /// Name.
    pub name: String,
    /// Node number, from 1.
    pub node: Count,
    /// `net.ipv4.tcp_mtu_probing` (default 0).
    pub tcp_mtu_probing: Option<Count>,
    /// `net.ipv4.tcp_congestion_control`: `cubic` (default), `reno` or `bbr`.
    pub tcp_congestion_control: Option<String>,
    /// `net.ipv4.tcp_rmem`: min, default and max receive buffer \[bytes\]
    /// (default 4096, 131072, 6291456).
    pub tcp_rmem: Option<Vec<Count>>,
    /// Namespace (default `default`).
    pub namespace: Option<String>,
    /// Labels (for Service selectors and NetworkPolicy).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A site behind a gateway.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteFile {
    /// Name.
    pub name: String,
    /// The link between gateway and site.
    pub link: LinkFile,
    /// The gateway clamps SYN MSS options to this.
    pub mss_clamp: Option<Count>,
    /// Hosts.
    pub hosts: Vec<HostFile>,
}

/// A link.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkFile {
    /// MTU.
    pub mtu: Count,
    /// One-way latency.
    pub latency: Duration,
    /// Bandwidth.
    pub bandwidth: Bandwidth,
    /// Transmit queue (default 1000 packets).
    pub queue: Option<Count>,
}

/// A host at a site.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostFile {
    /// Name.
    pub name: String,
    /// Interface MTU.
    pub mtu: Count,
    /// `net.ipv4.tcp_mtu_probing` (default 0).
    pub tcp_mtu_probing: Option<Count>,
    /// `net.ipv4.tcp_congestion_control`: `cubic` (default), `reno` or `bbr`.
    pub tcp_congestion_control: Option<String>,
    /// `net.ipv4.tcp_rmem`: min, default and max receive buffer \[bytes\]
    /// (default 4096, 131072, 6291456).
    pub tcp_rmem: Option<Vec<Count>>,
}

/// A flow.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowFile {
    /// Name.
    pub name: String,
    /// Sending pod or host.
    pub from: String,
    /// Receiving pod or host, or a Service (its ClusterIP).
    pub to: String,
    /// A TCP request/response per attempt.
    pub tcp: Option<TcpFile>,
    /// A UDP datagram per attempt.
    pub udp: Option<UdpFile>,
    /// An ICMP echo per attempt (`ping -M do`).
    pub ping: Option<PingFile>,
    /// First attempt (default 1s).
    pub start: Option<Duration>,
    /// Between attempts (default 1s).
    pub every: Option<Duration>,
    /// Attempts (default 1; with `sizes`, one per size).
    pub count: Option<Count>,
    /// The application gives up after this.
    pub timeout: Duration,
}

/// TCP traffic.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TcpFile {
    /// Server port (default 8080).
    pub port: Option<u16>,
    /// Request size.
    pub request: Bytes,
    /// Response size.
    pub response: Bytes,
}

/// UDP traffic.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UdpFile {
    /// Destination port (default 53).
    pub port: Option<u16>,
    /// Payload sizes, in turn.
    pub sizes: Vec<Bytes>,
}

/// ICMP echo traffic.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PingFile {
    /// Payload sizes (`ping -s`), in turn.
    pub sizes: Vec<Bytes>,
}

/// A fault at a time.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultFile {
    /// When.
    pub at: Duration,
    /// This node's BGP sessions fail (`node-2`).
    pub bgp_down: Option<String>,
    /// They come back.
    pub bgp_up: Option<String>,
}

/// One assertion.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "PacketExpectFile")]
pub struct ExpectFile {
    /// What to check.
    pub metric: PacketFigure,
    /// Which flow.
    pub flow: Option<String>,
    /// `failed`: a substring of the error; `packets_dropped`: a drop kind.
    pub reason: Option<String>,
    /// Must equal.
    pub equals: Option<envelope::Threshold>,
    /// Must be greater.
    pub above: Option<envelope::Threshold>,
    /// Must be smaller.
    pub below: Option<envelope::Threshold>,
    /// Why.
    #[serde(default)]
    pub because: String,
}
