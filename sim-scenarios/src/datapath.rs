//! Packet-level scenarios: the `datapath:` format, its runner and report.
//!
//! A scenario file with a top-level `datapath:` section replays a data-path
//! outage packet by packet on [`sim_models::datapath`]. It keeps the
//! conventions of the cluster format: `name`, `summary`, `story`,
//! `duration`, `variant`, `expect` (each with `because`), `variants` that
//! replace whole sections, strict parsing (unknown fields are errors) and
//! `file:line:column` errors with a hint; the code for these is shared in
//! [`crate::envelope`].
//!
//! ```yaml
//! name: calico_vxlan_mtu
//! summary: one line
//! duration: 30s
//! variant: {name: broken, description: the CNI's default pod MTU}
//! datapath:
//!   cni: calico-vxlan          # flannel-vxlan | flannel-host-gw | calico-bgp | calico-ipip |
//!                              # calico-vxlan | calico-wireguard | cilium | aws-vpc-cni
//!   nodes: 3
//!   underlay: {mtu: 1500, path_mtu: 1472, latency: 50us, bandwidth: 10Gbit/s}
//!   pods: [{name: client, node: 1}, {name: web, node: 2}]
//! flows:
//!   - {name: sweep, from: client, to: web, ping: {sizes: [1394, 1395]}, count: 2, timeout: 1s}
//!   - {name: get, from: client, to: web, tcp: {port: 8080, request: 300B, response: 1MB}}
//! expect:
//!   - {metric: succeeded, flow: get, equals: 0, because: full segments vanish}
//! variants:
//!   - {name: fix, datapath: {...}, expect: [...]}
//! ```
//!
//! Services and NetworkPolicy (`services:` and `network:` under
//! `datapath:`; flows whose `to:` names a Service):
//!
//! ```yaml
//! datapath:
//!   pods: [{name: client, node: 1}, {name: web-1, node: 2, labels: {app: web}}]
//!   services: [{name: web, port: 80, target_port: 8080, selector: {app: web}}]
//!   network:                 # the cluster format's section, parsed by its code
//!     cni: calico            # the CNI's family: calico | cilium | flannel
//!     kube_proxy: {mode: iptables}
//!     services: {count: 9999, endpoints: 3}   # the cluster's other Services
//!     active: [allow]
//!     policy_sets: {allow: "<NetworkPolicy manifests>"}
//! flows:
//!   - {name: get, from: client, to: web, tcp: {request: 200B, response: 20KB}}
//! ```
//!
//! Without Services or conntrack the model draws no random numbers: every
//! seed gives the same run, so such a variant runs once. With them (the
//! endpoint pick, the iptables walk's spread, early drop) a variant runs
//! once per seed of `knsim run --seeds`, byte-identical per seed.

use crate::envelope::{self, did_you_mean, serde_error, tagged, Locate, VariantLabel};
use crate::error::InputError;
use crate::figures::{self, Figure, Filter, Level, PacketFigure, Selector};
use crate::locate::{Positions, Seg};
use crate::path;
use crate::spec::{NamespaceFile, NetworkFile, Validator};
use crate::units::{Bandwidth, Bytes, Count, Duration};
use rayon::prelude::*;
use serde::Deserialize;
use sim_core::SimDuration;
use sim_models::datapath::cni::{Cni, InstanceType};
use sim_models::datapath::link::{LinkSpec, DEFAULT_QUEUE};
use sim_models::datapath::network::{
    run, Dest, DropKind, EndpointId, Fault, FlowKind, FlowSpec, HostSpec, NetConfig, NetOutput,
    PodMeta, PodSpec, Recording, ServiceSetup, ServiceSpec, SiteSpec, UnderlaySpec, BGP_HOLD_TIME,
};
use sim_models::datapath::tcp::TcpSettings;
use sim_models::ipam::Ipv4Cidr;
use sim_models::kube_proxy::Mode;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A packet-level scenario file as written.
#[derive(Debug, Deserialize)]
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
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
#[derive(Debug, Deserialize)]
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
#[derive(Debug, Deserialize)]
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
#[derive(Debug, Deserialize)]
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BgpFile {
    /// Hold time (default 90s, RFC 4271).
    pub hold_time: Duration,
}

/// A pod.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodFile {
    /// Name.
    pub name: String,
    /// Node number, from 1.
    pub node: Count,
    /// `net.ipv4.tcp_mtu_probing` (default 0).
    pub tcp_mtu_probing: Option<Count>,
    /// Namespace (default `default`).
    pub namespace: Option<String>,
    /// Labels (for Service selectors and NetworkPolicy).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A site behind a gateway.
#[derive(Debug, Deserialize)]
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
#[derive(Debug, Deserialize)]
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostFile {
    /// Name.
    pub name: String,
    /// Interface MTU.
    pub mtu: Count,
    /// `net.ipv4.tcp_mtu_probing` (default 0).
    pub tcp_mtu_probing: Option<Count>,
}

/// A flow.
#[derive(Debug, Deserialize)]
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
#[derive(Debug, Deserialize)]
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UdpFile {
    /// Destination port (default 53).
    pub port: Option<u16>,
    /// Payload sizes, in turn.
    pub sizes: Vec<Bytes>,
}

/// ICMP echo traffic.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PingFile {
    /// Payload sizes (`ping -s`), in turn.
    pub sizes: Vec<Bytes>,
}

/// A fault at a time.
#[derive(Debug, Deserialize)]
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
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

/// A validated expectation.
#[derive(Clone, Debug, PartialEq)]
pub struct Expectation {
    /// As shown (`succeeded{flow=large}`).
    pub label: String,
    metric: &'static Figure,
    flow: Option<usize>,
    reason: Option<String>,
    /// `(op, threshold)`.
    pub checks: Vec<(&'static str, f64)>,
    /// Why.
    pub because: String,
}

/// One runnable configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Variant {
    /// Name.
    pub name: String,
    /// What differs.
    pub description: String,
    /// The model configuration.
    pub config: NetConfig,
    /// Endpoint names, by index.
    pub endpoints: Vec<String>,
    /// The connection path's setup, as shown in reports.
    pub path: Option<String>,
    /// Assertions.
    pub expect: Vec<Expectation>,
}

/// A validated packet-level scenario.
pub type DatapathScenario = envelope::Scenario<Variant>;

/// Whether `text` is a packet-level scenario (has a top-level `datapath:`).
pub fn is_datapath(text: &str) -> bool {
    text.lines().any(|l| l.starts_with("datapath:"))
}

/// Parses and validates a packet-level scenario.
pub fn parse(file: &str, text: &str) -> Result<DatapathScenario, InputError> {
    let raw: DatapathFile = serde_yaml_ng::from_str(text).map_err(|e| serde_error(file, &e))?;
    let pos = Positions::of(text);
    V {
        file,
        text,
        pos: &pos,
    }
    .scenario(raw)
}

/// The sections one variant is built from, each with the path it was
/// written at (empty: the top level).
struct Sections<'f> {
    net: (&'f NetFile, Vec<Seg>),
    flows: (&'f [FlowFile], Vec<Seg>),
    timeline: (&'f [FaultFile], Vec<Seg>),
    expect: (&'f [ExpectFile], Vec<Seg>),
}

struct V<'a> {
    file: &'a str,
    text: &'a str,
    pos: &'a Positions,
}

impl Locate for V<'_> {
    fn source(&self) -> (&str, &Positions) {
        (self.file, self.pos)
    }
}

type R<T> = Result<T, InputError>;

fn join(p: &[Seg], more: &[Seg]) -> Vec<Seg> {
    [p, more].concat()
}

impl V<'_> {
    fn scenario(&self, f: DatapathFile) -> R<DatapathScenario> {
        if f.duration.0 == SimDuration::ZERO {
            return Err(self.err(&path!["duration"], "duration is 0", "e.g. duration: 60s"));
        }
        let label = |v: &VariantFile| (v.name.clone(), v.description.clone());
        let variants =
            self.variants(f.variant, &f.variants, label, |name, description, layer| {
                let sections = Sections {
                    net: layer.pick(|v| v.datapath.as_ref(), &f.datapath),
                    flows: layer.pick(|v| v.flows.as_deref(), &f.flows[..]),
                    timeline: layer.pick(|v| v.timeline.as_deref(), &f.timeline[..]),
                    expect: (layer.own(|v| &v.expect[..], &f.expect[..]), layer.path()),
                };
                self.variant(name, description, &sections, f.duration.0)
            })?;
        Ok(DatapathScenario {
            name: f.name,
            summary: f.summary,
            story: f.story,
            variants,
        })
    }

    fn variant(
        &self,
        name: String,
        description: String,
        sec: &Sections<'_>,
        duration: SimDuration,
    ) -> R<Variant> {
        let (net, flows, timeline, expect) = (&sec.net, &sec.flows, &sec.timeline, &sec.expect);
        let (n, np) = (net.0, join(&net.1, &path!["datapath"]));
        let cni = self.cni(&np, n)?;
        let cluster_cidr: Ipv4Cidr = match &n.cluster_cidr {
            Some(c) => c.parse().map_err(|e: sim_models::ipam::CidrError| {
                self.err(
                    &join(&np, &path!["cluster_cidr"]),
                    e.to_string(),
                    "e.g. 10.244.0.0/16",
                )
            })?,
            None => "10.244.0.0/16".parse().expect("a valid CIDR"),
        };
        let node_mask = n.node_mask.map_or(24, |m| m.0).min(255) as u8;
        let nodes = n.nodes.0 as usize;
        let up = join(&np, &path!["underlay"]);
        let icmp_allowed = match n.underlay.icmp.as_deref() {
            None | Some("allow") => true,
            Some("deny") => false,
            Some(other) => {
                return Err(self.err(
                    &join(&up, &path!["icmp"]),
                    format!("`{other}` is not allow or deny"),
                    "write icmp: allow or icmp: deny",
                ))
            }
        };
        let mtu = n.underlay.mtu.0;
        let underlay = UnderlaySpec {
            nic_mtu: mtu,
            path_mtu: n.underlay.path_mtu.map_or(mtu, |m| m.0),
            latency: n
                .underlay
                .latency
                .map_or(SimDuration::from_micros(50), |d| d.0),
            bandwidth: n.underlay.bandwidth.map_or(10e9, |b| b.0),
            icmp_allowed,
        };
        let mut endpoints: Vec<String> = Vec::new();
        let mut pods = Vec::new();
        let mut metas = Vec::new();
        for (i, p) in n.pods.iter().enumerate() {
            let pp = join(&np, &path!["pods", i]);
            if endpoints.contains(&p.name) {
                return Err(self.err(
                    &pp,
                    format!("`{}` is named twice", p.name),
                    "give each pod its own name",
                ));
            }
            if p.node.0 == 0 || p.node.0 as usize > nodes {
                return Err(self.err(
                    &join(&pp, &path!["node"]),
                    format!("node {} does not exist", p.node.0),
                    format!("nodes are numbered 1 to {nodes}"),
                ));
            }
            let tcp = self.tcp_settings(&pp, p.tcp_mtu_probing)?;
            metas.push(PodMeta {
                namespace: p.namespace.clone().unwrap_or_else(|| "default".into()),
                labels: p.labels.clone(),
            });
            endpoints.push(p.name.clone());
            pods.push(PodSpec {
                name: p.name.clone(),
                node: p.node.0 as usize - 1,
                tcp,
            });
        }
        let mut sites = Vec::new();
        for (s, site) in n.sites.iter().enumerate() {
            let sp = join(&np, &path!["sites", s]);
            let mut hosts = Vec::new();
            for (h, host) in site.hosts.iter().enumerate() {
                let hp = join(&sp, &path!["hosts", h]);
                if endpoints.contains(&host.name) {
                    return Err(self.err(
                        &hp,
                        format!("`{}` is named twice", host.name),
                        "give each pod and host its own name",
                    ));
                }
                endpoints.push(host.name.clone());
                hosts.push(HostSpec {
                    name: host.name.clone(),
                    mtu: host.mtu.0,
                    tcp: self.tcp_settings(&hp, host.tcp_mtu_probing)?,
                });
            }
            sites.push(SiteSpec {
                name: site.name.clone(),
                link: LinkSpec {
                    latency: site.link.latency.0,
                    bandwidth: site.link.bandwidth.0,
                    mtu: site.link.mtu.0,
                    l2_mtu: u32::MAX,
                    queue: site.link.queue.map_or(DEFAULT_QUEUE, |q| q.0.max(1)),
                },
                mss_clamp: site.mss_clamp.map(|c| c.0),
                hosts,
            });
        }
        let setup = self.services(&np, n, cni, &metas)?;
        let find = |name: &str, p: Vec<Seg>| -> R<EndpointId> {
            endpoints.iter().position(|e| e == name).ok_or_else(|| {
                let names: Vec<&str> = endpoints.iter().map(String::as_str).collect();
                self.err(
                    &p,
                    format!("`{name}` is not a pod or host of this variant"),
                    did_you_mean(name, &names, "pods and hosts"),
                )
            })
        };
        let mut flow_specs = Vec::new();
        for (i, fl) in flows.0.iter().enumerate() {
            let fp = join(&flows.1, &path!["flows", i]);
            if flow_specs.iter().any(|x: &FlowSpec| x.name == fl.name) {
                return Err(self.err(
                    &fp,
                    format!("flow `{}` is defined twice", fl.name),
                    "give each flow its own name",
                ));
            }
            let from = find(&fl.from, join(&fp, &path!["from"]))?;
            let service = setup.services.iter().position(|s| s.name == fl.to);
            let to = match service {
                Some(s) => Dest::Service(s),
                None => {
                    Dest::Endpoint(find(&fl.to, join(&fp, &path!["to"])).map_err(|mut e| {
                        if !setup.services.is_empty() {
                            e.message = format!(
                                "`{}` is not a pod, host or Service of this variant",
                                fl.to
                            );
                        }
                        e
                    })?)
                }
            };
            if to == Dest::Endpoint(from) {
                return Err(self.err(&fp, "a flow needs two different ends", "change `to`"));
            }
            if let Some(s) = service {
                let svc = &setup.services[s];
                let dialed = fl
                    .tcp
                    .as_ref()
                    .and_then(|t| t.port)
                    .or(fl.udp.as_ref().and_then(|u| u.port));
                if dialed.is_some_and(|p| p != svc.port) || fl.ping.is_some() || from >= pods.len()
                {
                    return Err(self.err(
                        &fp,
                        format!("flow `{}` dials Service {} from {}: a Service takes tcp or udp on its port {} from a pod", fl.name, svc.name, fl.from, svc.port),
                        "leave out the port (the Service's is used), and send from a pod",
                    ));
                }
            }
            let kinds = [fl.tcp.is_some(), fl.udp.is_some(), fl.ping.is_some()];
            if kinds.iter().filter(|k| **k).count() != 1 {
                return Err(self.err(
                    &fp,
                    "a flow has exactly one of tcp, udp, ping",
                    "e.g. tcp: {request: 300B, response: 1MB}",
                ));
            }
            let (kind, sizes) = if let Some(t) = &fl.tcp {
                (
                    FlowKind::Tcp {
                        port: service.map_or(t.port.unwrap_or(8080), |s| setup.services[s].port),
                        request: t.request.0.max(1),
                        response: t.response.0.max(1),
                    },
                    Vec::new(),
                )
            } else if let Some(u) = &fl.udp {
                (
                    FlowKind::Udp {
                        port: service.map_or(u.port.unwrap_or(53), |s| setup.services[s].port),
                    },
                    u.sizes.iter().map(|b| b.0).collect::<Vec<u64>>(),
                )
            } else {
                let sizes = fl
                    .ping
                    .as_ref()
                    .map(|p| p.sizes.iter().map(|b| b.0).collect())
                    .unwrap_or_default();
                (FlowKind::Ping, sizes)
            };
            if !matches!(kind, FlowKind::Tcp { .. })
                && (sizes.is_empty() || sizes.iter().any(|s| *s > 65_000))
            {
                return Err(self.err(
                    &fp,
                    "udp and ping take `sizes`: a list of payload sizes up to 65000 bytes",
                    "e.g. ping: {sizes: [1400, 1450]}",
                ));
            }
            let count = fl.count.map_or(sizes.len().max(1) as u32, |c| c.0);
            if count > 100_000 {
                return Err(self.err(
                    &join(&fp, &path!["count"]),
                    "more than 100000 attempts",
                    "use fewer attempts",
                ));
            }
            flow_specs.push(FlowSpec {
                name: fl.name.clone(),
                from,
                to,
                kind,
                sizes: sizes.into_iter().map(|s| s as u32).collect(),
                start: fl.start.map_or(SimDuration::from_secs(1), |d| d.0),
                every: fl.every.map_or(SimDuration::from_secs(1), |d| d.0),
                count,
                timeout: fl.timeout.0,
            });
        }
        let mut faults = Vec::new();
        for (i, ft) in timeline.0.iter().enumerate() {
            let tp = join(&timeline.1, &path!["timeline", i]);
            if ft.at.0 > duration {
                return Err(self.err(
                    &join(&tp, &path!["at"]),
                    format!("at {} is after the run ends ({duration})", ft.at.0),
                    "move it or lengthen `duration`",
                ));
            }
            let (node, down) = match (&ft.bgp_down, &ft.bgp_up) {
                (Some(n), None) => (n, true),
                (None, Some(n)) => (n, false),
                _ => {
                    return Err(self.err(
                        &tp,
                        "a timeline entry has `at` and one of bgp_down, bgp_up",
                        "e.g. {at: 60s, bgp_down: node-2}",
                    ))
                }
            };
            let key = if down { "bgp_down" } else { "bgp_up" };
            let idx = node
                .strip_prefix("node-")
                .and_then(|x| x.parse::<usize>().ok())
                .filter(|k| (1..=nodes).contains(k))
                .ok_or_else(|| {
                    self.err(
                        &join(&tp, &path![key]),
                        format!("`{node}` is not a node"),
                        format!("nodes are node-1 to node-{nodes}"),
                    )
                })?;
            if cni != Cni::CalicoBgp {
                return Err(self.err(
                    &join(&tp, &path![key]),
                    format!(
                        "{key} needs cni: calico-bgp (this variant runs {})",
                        cni.name()
                    ),
                    "BGP sessions exist only with calico-bgp",
                ));
            }
            faults.push((
                ft.at.0,
                if down {
                    Fault::BgpDown { node: idx - 1 }
                } else {
                    Fault::BgpUp { node: idx - 1 }
                },
            ));
        }
        let config = NetConfig {
            cni,
            nodes,
            cluster_cidr,
            node_mask,
            pod_mtu: n.pod_mtu.map(|m| m.0),
            underlay,
            sites,
            pods,
            flows: flow_specs,
            faults,
            bgp_hold_time: n.bgp.as_ref().map_or(BGP_HOLD_TIME, |b| b.hold_time.0),
            duration,
            services: setup,
        };
        config
            .validate()
            .map_err(|e| self.err(&np, e, "see the datapath section in the README"))?;
        let mut expectations = Vec::new();
        for (i, e) in expect.0.iter().enumerate() {
            let ep = join(&expect.1, &path!["expect", i]);
            expectations.push(self.expectation(&ep, e, &config)?);
        }
        let path = config
            .services
            .is_modelled()
            .then(|| describe_path(&config.services));
        Ok(Variant {
            name,
            description,
            config,
            endpoints,
            path,
            expect: expectations,
        })
    }

    /// The Services, and the cluster format's `network:` section (kube-proxy,
    /// conntrack, NetworkPolicy) parsed by the cluster format's own code.
    fn services(&self, np: &[Seg], n: &NetFile, cni: Cni, metas: &[PodMeta]) -> R<ServiceSetup> {
        let mut setup = ServiceSetup::default();
        let cidr: Ipv4Cidr = match &n.service_cidr {
            Some(c) => c.parse().map_err(|e: sim_models::ipam::CidrError| {
                self.err(
                    &join(np, &path!["service_cidr"]),
                    e.to_string(),
                    "e.g. 10.96.0.0/12",
                )
            })?,
            None => "10.96.0.0/12".parse().expect("a valid CIDR"),
        };
        for (i, f) in n.services.iter().enumerate() {
            let sp = join(np, &path!["services", i]);
            if setup
                .services
                .iter()
                .any(|s: &ServiceSpec| s.name == f.name)
                || n.pods.iter().any(|p| p.name == f.name)
            {
                return Err(self.err(
                    &sp,
                    format!("`{}` is named twice", f.name),
                    "give each pod and Service its own name",
                ));
            }
            let ip = match &f.cluster_ip {
                Some(ip) => ip.parse().map_err(|_| {
                    self.err(
                        &join(&sp, &path!["cluster_ip"]),
                        format!("`{ip}` is not an IPv4 address"),
                        "e.g. cluster_ip: 10.96.0.20",
                    )
                })?,
                None => {
                    if cidr.size() < i as u64 + 3 {
                        return Err(self.err(
                            &join(np, &path!["service_cidr"]),
                            format!("{cidr} has no room for {} Services", n.services.len()),
                            "give a larger service_cidr",
                        ));
                    }
                    cidr.nth(i as u64 + 2)
                }
            };
            let namespace = f.namespace.as_deref().unwrap_or("default");
            let endpoints = metas
                .iter()
                .enumerate()
                .filter(|(_, m)| {
                    m.namespace == namespace
                        && f.selector.iter().all(|(k, v)| m.labels.get(k) == Some(v))
                })
                .map(|(p, _)| p)
                .collect();
            let port = f.port.unwrap_or(80);
            setup.services.push(ServiceSpec {
                name: f.name.clone(),
                ip,
                port,
                target_port: f.target_port.unwrap_or(port),
                endpoints,
            });
        }
        setup.pods = metas.to_vec();
        let Some(net) = &n.network else {
            return Ok(setup);
        };
        let netp = join(np, &path!["network"]);
        let cluster = Validator {
            file: self.file,
            text: self.text,
            pos: self.pos,
        };
        let mut policy = cluster.network(np, net, &n.namespaces)?;
        if policy.cni.plugin() != cni.plugin() {
            return Err(self.err(
                &join(&netp, &path!["cni"]),
                format!(
                    "network.cni is {}, and this variant runs {}",
                    policy.cni.plugin(),
                    cni.name()
                ),
                format!("write cni: {}", cni.plugin()),
            ));
        }
        // The variant's own CNI, mode included, decides enforcement.
        policy.cni = cni;
        for (given, field) in [
            (net.policy_delay.is_some(), "policy_delay"),
            (net.masquerade.is_some(), "masquerade"),
        ] {
            if given {
                return Err(self.err(
                    &join(&netp, &path![field]),
                    format!(
                        "`{field}` is not replayed at packet level (no policy changes, no SNAT)"
                    ),
                    "remove it; the cluster format models it",
                ));
            }
        }
        setup.kube_proxy = cluster.kube_proxy(np, net)?;
        if let Some(c) = &net.conntrack {
            setup.conntrack = Some(
                cluster
                    .conntrack(&join(&netp, &path!["conntrack"]), c)?
                    .table,
            );
        }
        if !policy.active.is_empty() {
            setup.policy = Some(policy);
        }
        Ok(setup)
    }

    fn cni(&self, np: &[Seg], n: &NetFile) -> R<Cni> {
        let cp = join(np, &path!["cni"]);
        let cni = match n.cni.as_str() {
            "flannel-vxlan" => Cni::FlannelVxlan,
            "flannel-host-gw" => Cni::FlannelHostGw,
            "calico-bgp" => Cni::CalicoBgp,
            "calico-ipip" => Cni::CalicoIpip,
            "calico-vxlan" => Cni::CalicoVxlan,
            "calico-wireguard" => Cni::CalicoWireguard,
            "cilium" => match n.routing.as_deref() {
                None | Some("tunnel") => Cni::Cilium { tunnel: true },
                Some("native") => Cni::Cilium { tunnel: false },
                Some(other) => {
                    return Err(self.err(
                        &join(np, &path!["routing"]),
                        format!("`{other}` is not a Cilium routing mode"),
                        "routing: tunnel (default) or native",
                    ))
                }
            },
            "aws-vpc-cni" => {
                let Some(t) = &n.instance_type else {
                    return Err(self.err(
                        np,
                        "aws-vpc-cni needs instance_type (pods per node come from its ENIs)",
                        "e.g. instance_type: m5.large",
                    ));
                };
                let Some(instance) = InstanceType::parse(t) else {
                    let names: Vec<&str> = InstanceType::ALL.iter().map(|i| i.name()).collect();
                    return Err(self.err(
                        &join(np, &path!["instance_type"]),
                        format!("`{t}` is not a known instance type"),
                        format!("known: {}", names.join(", ")),
                    ));
                };
                Cni::AwsVpcCni { instance }
            }
            other => {
                return Err(self.err(
                    &cp,
                    format!("`{other}` is not a CNI configuration"),
                    did_you_mean(other, &Cni::NAMES, "CNIs"),
                ));
            }
        };
        if n.routing.is_some() && !matches!(cni, Cni::Cilium { .. }) {
            return Err(self.err(
                &join(np, &path!["routing"]),
                "routing applies to cilium",
                "remove it",
            ));
        }
        if n.instance_type.is_some() && !matches!(cni, Cni::AwsVpcCni { .. }) {
            return Err(self.err(
                &join(np, &path!["instance_type"]),
                "instance_type applies to aws-vpc-cni",
                "remove it",
            ));
        }
        if n.bgp.is_some() && cni != Cni::CalicoBgp {
            return Err(self.err(
                &join(np, &path!["bgp"]),
                "bgp applies to calico-bgp",
                "remove it",
            ));
        }
        if let Some(max) = cni.max_pods() {
            for node in 1..=n.nodes.0 {
                let on = n.pods.iter().filter(|p| p.node.0 == node).count() as u32;
                if on > max {
                    return Err(self.err(&join(np, &path!["pods"]), format!("node-{node} has {on} pods; {} addresses {max} on {} (ENIs x (IPs per ENI - 1) + 2)", cni.name(), n.instance_type.as_deref().unwrap_or_default()), "spread the pods or pick a larger instance type"));
                }
            }
        }
        Ok(cni)
    }

    fn tcp_settings(&self, p: &[Seg], probing: Option<Count>) -> R<TcpSettings> {
        let v = probing.map_or(0, |c| c.0);
        if v > 2 {
            return Err(self.err(
                &join(p, &path!["tcp_mtu_probing"]),
                format!("tcp_mtu_probing {v} is not 0, 1 or 2"),
                "0 off (default), 1 after a black hole, 2 always",
            ));
        }
        Ok(TcpSettings {
            mtu_probing: v as u8,
            ..TcpSettings::default()
        })
    }

    fn expectation(&self, p: &[Seg], e: &ExpectFile, cfg: &NetConfig) -> R<Expectation> {
        let m = e.metric.0;
        let checks = self.comparisons(
            p,
            [e.equals, e.above, e.below],
            m.name,
            m.is_time(),
            "times are durations, e.g. below: 6s",
        )?;
        let flows: Vec<&str> = cfg.flows.iter().map(|f| f.name.as_str()).collect();
        let flow = match (&e.flow, m.selector == Selector::Flow) {
            (Some(f), true) => Some(flows.iter().position(|x| x == f).ok_or_else(|| {
                self.err(
                    &join(p, &path!["flow"]),
                    format!("no flow is called `{f}`"),
                    format!("flows: {}", flows.join(", ")),
                )
            })?),
            (None, true) => {
                return Err(self.err(
                    p,
                    format!("{} needs `flow`", m.name),
                    format!("flows: {}", flows.join(", ")),
                ))
            }
            (Some(_), false) => {
                return Err(self.err(
                    &join(p, &path!["flow"]),
                    format!("{} is about all packets; it takes no `flow`", m.name),
                    "remove `flow`",
                ))
            }
            (None, false) => None,
        };
        if let Some(r) = &e.reason {
            if !m.takes(Filter::Reason) {
                return Err(self.err(
                    &join(p, &path!["reason"]),
                    format!("{} takes no `reason`", m.name),
                    format!(
                        "reason goes with {}",
                        figures::taking(Level::Packet, Filter::Reason, " or ")
                    ),
                ));
            }
            // A run-wide figure's reason is a drop kind.
            if m.selector == Selector::None && DropKind::parse(r).is_none() {
                let keys: Vec<&str> = DropKind::ALL.iter().map(|k| k.key()).collect();
                return Err(self.err(
                    &join(p, &path!["reason"]),
                    format!("`{r}` is not a drop reason"),
                    format!("reasons: {}", keys.join(", ")),
                ));
            }
        }
        Ok(Expectation {
            label: tagged(m.name, &[("flow", &e.flow), ("reason", &e.reason)]),
            metric: m,
            flow,
            reason: e.reason.clone(),
            checks,
            because: e.because.clone(),
        })
    }
}

/// The connection path of a variant in one line.
fn describe_path(s: &ServiceSetup) -> String {
    let mut parts = Vec::new();
    match &s.kube_proxy {
        Some(k) if k.mode == Mode::Ebpf => parts.push("eBPF load balancer".to_string()),
        Some(k) => parts.push(format!("kube-proxy {}", k.mode.name())),
        None => parts.push("ideal Service data path".to_string()),
    }
    if let Some(k) = &s.kube_proxy {
        let total = k.other_services + s.services.len() as u64;
        parts.push(format!("{total} Services programmed"));
    }
    for svc in &s.services {
        parts.push(format!(
            "Service {} {}:{} -> {} pods :{}",
            svc.name,
            svc.ip,
            svc.port,
            svc.endpoints.len(),
            svc.target_port
        ));
    }
    if let Some(c) = &s.conntrack {
        parts.push(format!("conntrack max {}", c.max));
    }
    if let Some(p) = &s.policy {
        parts.push(format!("NetworkPolicy ({})", p.cni.plugin()));
    }
    parts.join(", ")
}

/// One run of one variant.
pub struct DatapathRun {
    /// Index into the variants.
    pub variant: usize,
    /// The seed, for variants that draw random numbers.
    pub seed: Option<u64>,
    /// What the model produced.
    pub output: NetOutput,
    /// The checks.
    pub checks: Vec<crate::run::Check>,
}

/// Runs every variant (in parallel on `threads`, results in variant
/// order), once per seed of `seeds` for variants that draw random numbers
/// (Service endpoint picks, lookup spreads) and once for the others,
/// recording trace and packets for `record` (variant index; its first
/// seed).
pub fn run_all(
    scenario: &DatapathScenario,
    seeds: &[u64],
    threads: Option<usize>,
    record: Option<(usize, Recording)>,
) -> Result<Vec<DatapathRun>, String> {
    let jobs: Vec<(usize, Option<u64>)> = scenario
        .variants
        .iter()
        .enumerate()
        .flat_map(|(v, variant)| {
            if variant.config.services.draws_random() {
                seeds.iter().map(|&s| (v, Some(s))).collect()
            } else {
                vec![(v, None)]
            }
        })
        .collect();
    crate::run::in_pool(threads, || {
        jobs.par_iter()
            .map(|&(v, seed)| {
                let variant = &scenario.variants[v];
                let rec = match record {
                    Some((i, r)) if i == v && seed.is_none_or(|s| Some(&s) == seeds.first()) => r,
                    _ => Recording::default(),
                };
                let output = match seed {
                    Some(s) => {
                        let mut cfg = variant.config.clone();
                        cfg.services.seed = s;
                        run(&cfg, rec)?
                    }
                    None => run(&variant.config, rec)?,
                };
                let checks = variant.expect.iter().map(|e| check(e, &output)).collect();
                Ok(DatapathRun {
                    variant: v,
                    seed,
                    output,
                    checks,
                })
            })
            .collect::<Result<Vec<_>, String>>()
    })?
}

/// The value an expectation reads.
pub fn measure(e: &Expectation, out: &NetOutput) -> Option<f64> {
    let flow = e.flow.map(|i| &out.flows[i]);
    e.metric.packets(out, flow, e.reason.as_deref())
}

fn check(e: &Expectation, out: &NetOutput) -> crate::run::Check {
    let actual = measure(e, out);
    crate::run::Check::new(&e.label, actual, &e.checks, |x| e.metric.show(x))
}

/// (held, total) over every run's expectations.
pub fn expectation_totals(runs: &[DatapathRun]) -> (usize, usize) {
    crate::run::totals(runs.iter().flat_map(|r| &r.checks))
}

/// The text report: the story, the network of each variant, what each flow
/// saw, where packets were dropped and why, what the stacks and routers
/// noticed, and the expectations.
pub fn text(s: &DatapathScenario, runs: &[DatapathRun]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{}: {}", s.name, s.summary);
    let duration = s.variants[0].config.duration;
    let mut seeds: Vec<u64> = runs.iter().filter_map(|r| r.seed).collect();
    seeds.sort_unstable();
    seeds.dedup();
    let random = match seeds.as_slice() {
        [] => "the model draws no random numbers".to_string(),
        [one] => format!("seed {one}"),
        many => format!("seeds {}..{}", many[0], many[many.len() - 1]),
    };
    let _ = writeln!(
        o,
        "packet-level replay, {duration} simulated per variant ({random})"
    );
    if !s.story.trim().is_empty() {
        let _ = writeln!(o);
        for l in s.story.trim().lines() {
            let _ = writeln!(o, "  {l}");
        }
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "variants");
    for v in &s.variants {
        let c = &v.config;
        let site = c
            .sites
            .iter()
            .map(|x| {
                format!(
                    "; site {} via a {} MTU link{}",
                    x.name,
                    x.link.mtu,
                    x.mss_clamp
                        .map_or(String::new(), |m| format!(", MSS clamped to {m}"))
                )
            })
            .collect::<String>();
        let _ = writeln!(
            o,
            "  {:<14} {}\n  {:<14} {} on {} nodes, NIC MTU {}, underlay path MTU {}, pod MTU {}{}, ICMP {}{site}",
            v.name,
            v.description,
            "",
            c.cni.name(),
            c.nodes,
            c.underlay.nic_mtu,
            c.underlay.path_mtu,
            c.pod_mtu(),
            if c.pod_mtu.is_some() { " (set)" } else { " (CNI default)" },
            if c.underlay.icmp_allowed { "allowed" } else { "denied by the security group" },
        );
        if let Some(p) = &v.path {
            let _ = writeln!(o, "  {:<14} {p}", "");
        }
    }
    for r in runs {
        let v = &s.variants[r.variant];
        let out = &r.output;
        let _ = writeln!(o);
        match r.seed {
            Some(seed) if seeds.len() > 1 => {
                let _ = writeln!(o, "== {} (seed {seed}) ==", v.name);
            }
            _ => {
                let _ = writeln!(o, "== {} ==", v.name);
            }
        }
        let _ = writeln!(o, "  flows");
        for (fi, f) in out.flows.iter().enumerate() {
            let spec = &v.config.flows[fi];
            let what = match spec.kind {
                FlowKind::Tcp {
                    request,
                    response,
                    port,
                } => format!("TCP :{port}, {request} B request, {response} B response"),
                FlowKind::Udp { port } => format!("UDP :{port}"),
                FlowKind::Ping => "ping -M do".to_string(),
            };
            let times = if f.times.count() > 0 {
                format!(", time p50 {} max {}", f.times.quantile(0.5), f.times.max())
            } else {
                String::new()
            };
            let _ = writeln!(
                o,
                "    {:<12} {} -> {} ({what}): {} of {} succeeded{times}{}",
                f.name,
                v.endpoints[spec.from],
                dest_name(v, spec.to),
                f.succeeded,
                f.attempts,
                if f.pending > 0 {
                    format!(", {} still running", f.pending)
                } else {
                    String::new()
                }
            );
            for (why, n) in &f.failures {
                let _ = writeln!(o, "      {n} x {why}");
            }
            if !f.by_size.is_empty() {
                let cells: Vec<String> = f
                    .by_size
                    .iter()
                    .map(|(size, (ok, bad))| {
                        if *bad == 0 {
                            format!("{size} ok")
                        } else if *ok == 0 {
                            format!("{size} FAILED")
                        } else {
                            format!("{size} {ok}/{}", ok + bad)
                        }
                    })
                    .collect();
                let _ = writeln!(o, "      by payload size: {}", cells.join(", "));
            }
            if v.path.is_some() {
                path_lines(&mut o, v, f);
            }
        }
        let t = &out.packets;
        let _ = writeln!(
            o,
            "  packets: {} sent, {} delivered, {} dropped, {} in flight at the end",
            t.created,
            t.delivered,
            t.dropped_total(),
            t.in_flight
        );
        for (k, n) in &t.dropped {
            let _ = writeln!(o, "    {n:>7} x {} ({k})", k.key());
            if let Some((at, first)) = out.first_drops.get(k) {
                let _ = writeln!(o, "            first at {at}: {first}");
            }
        }
        if !out.notes.is_empty() {
            let _ = writeln!(o, "  what the stacks and routers saw");
            let mut shown = 0;
            let mut last: Option<String> = None;
            for (at, n) in &out.notes {
                // The same note per connection says the same thing: show it once.
                let key: String = n.split(':').skip(1).collect();
                if !key.is_empty() && last.as_ref() == Some(&key) {
                    continue;
                }
                last = Some(key);
                let _ = writeln!(o, "    {at:<10} {n}");
                shown += 1;
                if shown == 12 {
                    let _ = writeln!(o, "    ... ({} notes in all)", out.notes.len());
                    break;
                }
            }
        }
    }
    if runs.iter().any(|r| !r.checks.is_empty()) {
        let _ = writeln!(o);
        let _ = writeln!(o, "expectations");
        for r in runs {
            let v = &s.variants[r.variant];
            for (c, e) in r.checks.iter().zip(&v.expect) {
                let verdict = if c.pass { "PASS" } else { "FAIL" };
                let _ = writeln!(o, "  {verdict} {}: {}: {}", v.name, c.label, c.text);
                if !e.because.is_empty() {
                    let _ = writeln!(o, "       because {}", e.because.trim());
                }
            }
        }
        let (held, total) = expectation_totals(runs);
        let _ = writeln!(o, "  {held} of {total} expectations hold");
    }
    o
}

/// Where a flow goes, by name.
fn dest_name(v: &Variant, to: Dest) -> String {
    match to {
        Dest::Endpoint(e) => v.endpoints[e].clone(),
        Dest::Service(s) => format!("svc/{}", v.config.services.services[s].name),
    }
}

/// What the connection path measured of one flow.
fn path_lines(o: &mut String, v: &Variant, f: &sim_models::datapath::network::FlowResult) {
    if f.connect.count() > 0 {
        let _ = writeln!(
            o,
            "      connection setup p50 {} p99 {}; first-packet round trip p50 {} p99 {}",
            f.connect.quantile(0.5),
            f.connect.quantile(0.99),
            f.first_rtt.quantile(0.5),
            f.first_rtt.quantile(0.99)
        );
    }
    if f.lookups.count() > 0 {
        let _ = writeln!(
            o,
            "      Service lookup CPU: {} first packets, mean {} p99 {}, {} in all",
            f.lookups.count(),
            f.lookups.mean(),
            f.lookups.quantile(0.99),
            f.lookups.sum()
        );
    }
    if f.established.count > 0 {
        let _ = writeln!(
            o,
            "      established connections: {} packets delivered, one-way latency mean {} max {}; {} payload bytes delivered",
            f.established.count,
            f.established.mean(),
            f.established.max,
            f.bytes
        );
    }
    if !f.endpoints.is_empty() {
        let cells: Vec<String> = f
            .endpoints
            .iter()
            .map(|(p, n)| format!("{} {n}", v.endpoints[*p]))
            .collect();
        let _ = writeln!(o, "      first packets by server pod: {}", cells.join(", "));
    }
}

/// The JSON summary.
pub fn json(s: &DatapathScenario, runs: &[DatapathRun]) -> serde_json::Value {
    use serde_json::json;
    let variants: Vec<serde_json::Value> = runs
        .iter()
        .map(|r| {
            let v = &s.variants[r.variant];
            let flows: Vec<serde_json::Value> = r.output.flows.iter().map(|f| json!({
                "flow": f.name, "attempts": f.attempts, "succeeded": f.succeeded, "pending": f.pending,
                "failures": f.failures, "time_p50_s": f.times.quantile(0.5).as_secs_f64(),
                "time_max_s": f.times.max().as_secs_f64(),
                "by_size": f.by_size.iter().map(|(k, (a, b))| json!({"size": k, "succeeded": a, "failed": b})).collect::<Vec<_>>(),
            })).collect();
            let t = &r.output.packets;
            let drops: serde_json::Map<String, serde_json::Value> = t.dropped.iter().map(|(k, n)| (k.key().to_string(), json!(n))).collect();
            let mut flows = flows;
            if v.path.is_some() {
                for (j, f) in flows.iter_mut().zip(&r.output.flows) {
                    j["connect_p50_s"] = json!(f.connect.quantile(0.5).as_secs_f64());
                    j["connect_p99_s"] = json!(f.connect.quantile(0.99).as_secs_f64());
                    j["first_rtt_p50_s"] = json!(f.first_rtt.quantile(0.5).as_secs_f64());
                    j["first_rtt_p99_s"] = json!(f.first_rtt.quantile(0.99).as_secs_f64());
                    j["lookup_cpu_s"] = json!(f.lookups.sum().as_secs_f64());
                    j["packet_latency_mean_s"] = json!(f.established.mean().as_secs_f64());
                    j["bytes_delivered"] = json!(f.bytes);
                    j["first_packets_by_pod"] = f.endpoints.iter().map(|(p, n)| (v.endpoints[*p].clone(), json!(n))).collect::<serde_json::Map<_, _>>().into();
                }
            }
            let mut out = json!({
                "name": v.name, "description": v.description, "cni": v.config.cni.name(), "pod_mtu": r.output.pod_mtu,
                "flows": flows,
                "packets": {"created": t.created, "delivered": t.delivered, "dropped": drops, "in_flight": t.in_flight},
                "expectations": r.checks.iter().map(crate::run::Check::json).collect::<Vec<_>>(),
                "events_fired": r.output.events_fired,
            });
            if let Some(seed) = r.seed {
                out["seed"] = json!(seed);
            }
            out
        })
        .collect();
    let (held, total) = expectation_totals(runs);
    json!({"scenario": s.name, "summary": s.summary, "variants": variants, "expectations": {"held": held, "total": total}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MINIMAL: &str = "name: t
summary: s
duration: 10s
datapath:
  cni: calico-vxlan
  nodes: 2
  underlay: {mtu: 1500}
  pods: [{name: a, node: 1}, {name: b, node: 2}]
flows:
  - {name: f, from: a, to: b, ping: {sizes: [100]}, timeout: 1s}
expect:
  - {metric: succeeded, flow: f, equals: 1}
";

    fn err(text: &str) -> InputError {
        parse("t.yaml", text).unwrap_err()
    }

    #[test]
    fn a_minimal_file_runs_and_checks_itself() {
        let s = parse("t.yaml", MINIMAL).unwrap();
        assert!(is_datapath(MINIMAL));
        let runs = run_all(&s, &[1], Some(1), None).unwrap();
        assert_eq!(expectation_totals(&runs), (1, 1), "{}", text(&s, &runs));
    }

    #[test]
    fn mistakes_are_located_with_a_hint() {
        let e = err(&MINIMAL.replace("cni: calico-vxlan", "cni: calico-vxaln"));
        assert_eq!(e.at, Some((5, 3)));
        assert!(e.hint.contains("did you mean `calico-vxlan`"), "{e}");
        let e = err(&MINIMAL.replace("to: b,", "to: bb,"));
        assert_eq!(e.at.map(|a| a.0), Some(10));
        assert!(e.message.contains("`bb` is not a pod or host"), "{e}");
        let e = err(&MINIMAL.replace("{name: b, node: 2}", "{name: b, node: 3}"));
        assert!(e.message.contains("node 3 does not exist"), "{e}");
        assert_eq!(e.at.map(|a| a.0), Some(8));
        let e = err(&MINIMAL.replace(
            "underlay: {mtu: 1500}",
            "underlay: {mtu: 1500, icmp: block}",
        ));
        assert!(e.hint.contains("allow or icmp: deny"), "{e}");
        let e = err(&MINIMAL.replace("nodes: 2", "nodes: 2\n  pod_mut: 1400"));
        assert!(
            e.message.contains("unknown field `pod_mut`") && e.hint.contains("pod_mtu"),
            "{e}"
        );
        let e = err(&MINIMAL.replace("equals: 1}", "equals: 1s}"));
        assert!(e.message.contains("does not fit metric succeeded"), "{e}");
        let e = err(&MINIMAL.replace(
            "{metric: succeeded, flow: f,",
            "{metric: packets_dropped, reason: lost,",
        ));
        assert!(e.hint.contains("frag-needed"), "{e}");
        let e = err(&MINIMAL.replace(
            "timeout: 1s}",
            "timeout: 1s}\ntimeline: [{at: 1s, bgp_down: node-1}]",
        ));
        assert!(e.message.contains("needs cni: calico-bgp"), "{e}");
        let e = err(&MINIMAL.replace("cni: calico-vxlan", "cni: aws-vpc-cni"));
        assert!(e.message.contains("needs instance_type"), "{e}");
    }

    const WITH_SERVICE: &str = "name: t
summary: s
duration: 10s
datapath:
  cni: calico-vxlan
  nodes: 2
  underlay: {mtu: 1500}
  pods: [{name: a, node: 1}, {name: b, node: 2, labels: {app: b}}]
  services: [{name: svc, port: 80, target_port: 8080, selector: {app: b}}]
  network: {cni: calico, kube_proxy: {mode: iptables}, services: {count: 100, endpoints: 3}}
flows:
  - {name: f, from: a, to: svc, tcp: {request: 100B, response: 1KB}, count: 5, timeout: 1s}
expect:
  - {metric: succeeded, flow: f, equals: 5}
  - {metric: endpoints_used, flow: f, equals: 1}
";

    #[test]
    fn a_service_flow_runs_per_seed_and_its_mistakes_are_located() {
        let s = parse("t.yaml", WITH_SERVICE).unwrap();
        assert_eq!(s.variants[0].config.services.services[0].endpoints, vec![1]);
        let runs = run_all(&s, &[1, 2], Some(1), None).unwrap();
        assert_eq!(runs.len(), 2, "one run per seed");
        assert_eq!(expectation_totals(&runs), (4, 4), "{}", text(&s, &runs));
        assert!(text(&s, &runs).contains(" (seed 2) =="));
        let e = err(&WITH_SERVICE.replace("network: {cni: calico,", "network: {cni: cilium,"));
        assert!(e.message.contains("network.cni is cilium"), "{e}");
        assert!(e.hint.contains("cni: calico"), "{e}");
        let e = err(&WITH_SERVICE.replace("tcp: {request", "tcp: {port: 8080, request"));
        assert!(e.message.contains("on its port 80"), "{e}");
        let e = err(&WITH_SERVICE.replace("mode: iptables}", "mode: iptables, per_rul: 1ns}"));
        assert_eq!(e.at.map(|a| a.0), Some(10), "{e}");
        assert!(e.hint.contains("per_rule"), "{e}");
        let e = err(&WITH_SERVICE.replace("to: svc,", "to: svd,"));
        assert!(e.message.contains("not a pod, host or Service"), "{e}");
        let e = err(&WITH_SERVICE.replace(
            "selector: {app: b}}]",
            "selector: {app: b}, cluster_ip: 10.244.0.9}]",
        ));
        assert!(
            e.message.contains("inside the pod, node or site addresses"),
            "{e}"
        );
    }

    #[test]
    fn aws_vpc_cni_refuses_more_pods_than_the_enis_address() {
        let pods: Vec<String> = (0..18)
            .map(|i| format!("{{name: p{i}, node: 1}}"))
            .collect();
        let text = MINIMAL
            .replace(
                "cni: calico-vxlan",
                "cni: aws-vpc-cni\n  instance_type: t3.medium",
            )
            .replace(
                "{name: a, node: 1}, {name: b, node: 2}",
                &format!(
                    "{{name: a, node: 2}}, {{name: b, node: 2}}, {}",
                    pods.join(", ")
                ),
            );
        let e = err(&text);
        assert!(
            e.message
                .contains("node-1 has 18 pods; aws-vpc-cni addresses 17 on t3.medium"),
            "{e}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        /// Any single-line edit of a valid file parses or gives a located error; never a panic.
        #[test]
        fn edited_files_fail_with_a_position(line in 0usize..200, junk in "[a-z0-9:{}\\[\\], -]{0,14}") {
            let base = include_str!("../../scenarios/mtu_blackhole.yaml");
            let mut lines: Vec<&str> = base.lines().collect();
            let i = line % lines.len();
            lines[i] = &junk;
            if let Err(e) = parse("edit.yaml", &lines.join("\n")) {
                prop_assert!(e.at.is_some(), "{e}");
            }
        }
    }
}
