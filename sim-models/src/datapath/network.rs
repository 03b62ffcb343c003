//! # The packet-level network: pods, veths, nodes, underlay, VPN sites
//!
//! ## Scope
//! Packets cross the cluster hop by hop on the `sim-core` engine, one event
//! per hop:
//!
//! ```text
//!  pod --veth--> node --eth0--> fabric (L2 + VPC router) --eth0--> node --veth--> pod
//!                                  |
//!                               gateway --VPN link--> site router --> host
//! ```
//!
//! - **Pods** and **hosts** run a stack ([`super::tcp`], UDP, ICMP echo)
//!   with an interface MTU and a per-destination path-MTU cache.
//! - **Nodes** route by destination: a local pod goes out its veth; a pod on
//!   another node goes as the CNI says ([`super::cni`]): encapsulated to the
//!   node's IP, or natively to the node as next hop (flannel host-gw,
//!   Cilium native, Calico BGP while its routes are not withdrawn), or to
//!   the VPC router (aws-vpc-cni; anything else). Inbound, a node's
//!   security group may deny ICMP, and it decapsulates overlay packets.
//!   A node forwarding a DF packet that does not fit its egress MTU drops
//!   it and sends ICMP "fragmentation needed" (for an encapsulating node,
//!   with the MTU left for the inner packet, as Linux tunnels report it).
//! - The **fabric** is the underlay: an L2 segment whose MTU may be smaller
//!   than the nodes' NICs believe (larger frames vanish without ICMP) and a
//!   VPC router that knows node IPs, the VPN sites, and pod IPs only when the
//!   CNI puts pods on VPC addresses.
//! - A **gateway** per site (a VPN appliance) forwards between the VPC and
//!   the site link, may clamp the MSS of SYNs (`iptables -j TCPMSS
//!   --set-mss`), and is a router: DF packets too big for the VPN link are
//!   dropped with ICMP. Behind the link, a site router serves the hosts.
//! - **BGP** (calico-bgp): a node whose BGP session fails keeps its routes
//!   on its peers until the hold time expires; then every peer withdraws its
//!   pod CIDR and it withdraws theirs (full mesh), so traffic between it and
//!   the other nodes falls to the default route and the VPC router drops it.
//!   Restoring the session re-advertises at once.
//!
//! Per-packet simulator cost does not depend on the number of nodes or
//! pods: every address is classified by arithmetic on its CIDR (pod CIDR
//! index = offset >> host bits), every route lookup is O(1).
//!
//! Limitations: IPv4; no IP fragmentation (hosts send with DF, as Linux TCP
//! does and UDP with `IP_PMTUDISC_DO`; VXLAN/WireGuard outer headers without
//! DF only cross the L2 underlay, so a non-DF packet never meets a smaller
//! routed MTU in the topologies built here, and would be dropped with a
//! reason saying so); no ICMP rate limiting; no Services, kube-proxy or
//! NetworkPolicy; no SNAT (so outside hosts and pods only talk when pod IPs
//! are VPC addresses); path-MTU cache entries do not expire (600 s in Linux).
//!
//! ## Parameters
//! Link defaults: veth 10 µs, 100 Gbit/s (in-kernel copy; an assumption,
//! docs/calibration.md, row `link-veth`); queue 1000 packets
//! ([`super::link`]). Node processing per packet from [`super::cni`]. BGP
//! hold time: RFC 4271 §10's suggested 90 s unless the scenario sets one
//! (BIRD, which Calico runs, documents 240 s as its own default: set
//! `hold_time` to match the cluster; docs/calibration.md, row
//! `net-bgp-hold-time`).
//!
//! ## What it emits
//! A [`NetOutput`]: per-flow attempts and their outcomes in the words an
//! application prints (`connect: Connection timed out`, `ping: local
//! error: message too long, mtu=1450`), packet totals with every drop under
//! a named [`DropKind`] (and the first drop's full text), notes (PMTU
//! learned, black hole detected, routes withdrawn), optionally a hubble-style
//! trace line per hop and the packets for a pcap file.
//!
//! ## Validation
//! A property test checks conservation over random topologies, CNIs and
//! traffic: packets created = delivered + dropped + in flight, and every
//! attempt ends succeeded, failed with a reason, or pending. Unit tests
//! follow one packet through each CNI and check the MTU boundaries.

use super::cni::{Cni, Routing};
use super::link::{Link, LinkSpec};
use super::packet::{Encap, EncapKind, Icmp, Packet, Protocol, TcpFlags, Transport, IPV4_HEADER};
use super::tcp::{Conn, Role, Seg, State, TcpOut, TcpSettings, MSS_HEADERS};
use crate::ipam::Ipv4Cidr;
use sim_core::{Engine, EventId, SimDuration, SimTime};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::Ipv4Addr;

/// Underlay the nodes share.
#[derive(Clone, Debug, PartialEq)]
pub struct UnderlaySpec {
    /// MTU of the nodes' NICs (what the CNI auto-detects) \[bytes\].
    pub nic_mtu: u32,
    /// Largest IP packet the underlay segment carries \[bytes\]; smaller than
    /// `nic_mtu` when some hop in between is.
    pub path_mtu: u32,
    /// One-way latency node to fabric.
    pub latency: SimDuration,
    /// NIC bandwidth \[bit/s\].
    pub bandwidth: f64,
    /// Whether the nodes' security group lets inbound ICMP through.
    pub icmp_allowed: bool,
}

/// A site reached through a gateway (VPN, peering, on-premises).
#[derive(Clone, Debug, PartialEq)]
pub struct SiteSpec {
    /// Name (`office`).
    pub name: String,
    /// The link between the gateway and the site (both directions).
    pub link: LinkSpec,
    /// MSS the gateway clamps SYNs to, if it does.
    pub mss_clamp: Option<u32>,
    /// Hosts at the site.
    pub hosts: Vec<HostSpec>,
}

/// A host outside the cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct HostSpec {
    /// Name.
    pub name: String,
    /// Interface MTU \[bytes\].
    pub mtu: u32,
    /// Its TCP sysctls.
    pub tcp: TcpSettings,
}

/// A pod.
#[derive(Clone, Debug, PartialEq)]
pub struct PodSpec {
    /// Name.
    pub name: String,
    /// Node index.
    pub node: usize,
    /// Its TCP sysctls (a pod's network namespace has its own).
    pub tcp: TcpSettings,
}

/// One end of a flow: an index into pods, then hosts in site order.
pub type EndpointId = usize;

/// What a flow sends.
#[derive(Clone, Debug, PartialEq)]
pub enum FlowKind {
    /// A TCP connection per attempt: `request` bytes up, `response` down.
    Tcp {
        /// Server port.
        port: u16,
        /// Bytes the client sends \[bytes\].
        request: u64,
        /// Bytes the server answers \[bytes\].
        response: u64,
    },
    /// One UDP datagram per attempt, DF set (payload sizes from `sizes`).
    Udp {
        /// Destination port.
        port: u16,
    },
    /// One ICMP echo per attempt, DF set (`ping -M do -s SIZE`).
    Ping,
}

/// Traffic between two endpoints.
#[derive(Clone, Debug, PartialEq)]
pub struct FlowSpec {
    /// Name.
    pub name: String,
    /// Sender.
    pub from: EndpointId,
    /// Receiver.
    pub to: EndpointId,
    /// What.
    pub kind: FlowKind,
    /// Payload sizes, used in turn by successive attempts (UDP, ping) \[bytes\].
    pub sizes: Vec<u32>,
    /// First attempt.
    pub start: SimDuration,
    /// Between attempts.
    pub every: SimDuration,
    /// Attempts.
    pub count: u32,
    /// The application gives up on an attempt after this.
    pub timeout: SimDuration,
}

/// Something that happens to the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A node's BGP daemon loses its sessions (calico-bgp).
    BgpDown {
        /// Node index.
        node: usize,
    },
    /// It comes back.
    BgpUp {
        /// Node index.
        node: usize,
    },
}

/// The whole configuration of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct NetConfig {
    /// The CNI.
    pub cni: Cni,
    /// Nodes.
    pub nodes: usize,
    /// Pod network; node `i` gets the `i`-th block of `node_mask` bits.
    pub cluster_cidr: Ipv4Cidr,
    /// `--node-cidr-mask-size`.
    pub node_mask: u8,
    /// Pod MTU; `None`: the CNI's default from the NIC MTU.
    pub pod_mtu: Option<u32>,
    /// The underlay.
    pub underlay: UnderlaySpec,
    /// Sites outside the cluster.
    pub sites: Vec<SiteSpec>,
    /// Pods.
    pub pods: Vec<PodSpec>,
    /// Traffic.
    pub flows: Vec<FlowSpec>,
    /// Faults at times.
    pub faults: Vec<(SimDuration, Fault)>,
    /// BGP hold time.
    pub bgp_hold_time: SimDuration,
    /// Simulated time.
    pub duration: SimDuration,
}

/// Default BGP hold time (RFC 4271 §10).
pub const BGP_HOLD_TIME: SimDuration = SimDuration::from_secs(90);
/// veth latency.
pub const VETH_LATENCY: SimDuration = SimDuration::from_micros(10);
/// veth bandwidth \[bit/s\].
pub const VETH_BANDWIDTH: f64 = 100e9;
/// The underlay's address block: gateways at .2.., nodes from .16.
pub const UNDERLAY: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 0);
/// Most sites (gateway addresses .2 to .15).
pub const MAX_SITES: usize = 14;
/// Most hosts per site (192.168.S.10 to .254).
pub const MAX_HOSTS: usize = 245;

impl NetConfig {
    /// The pod MTU in force.
    pub fn pod_mtu(&self) -> u32 {
        self.pod_mtu
            .unwrap_or_else(|| self.cni.default_pod_mtu(self.underlay.nic_mtu))
    }

    /// Checks what the model relies on; the text says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let host_bits = 32 - u32::from(self.node_mask);
        if self.node_mask < self.cluster_cidr.prefix() || self.node_mask > 30 {
            return Err(format!(
                "node mask /{} does not fit in {}",
                self.node_mask, self.cluster_cidr
            ));
        }
        let blocks = 1u64 << (u32::from(self.node_mask) - u32::from(self.cluster_cidr.prefix()));
        if self.nodes == 0 || self.nodes as u64 > blocks || self.nodes > 60_000 {
            return Err(format!(
                "{} nodes do not fit: {} has {blocks} blocks of /{} (and at most 60000 nodes)",
                self.nodes, self.cluster_cidr, self.node_mask
            ));
        }
        let per_node = (1u64 << host_bits) - 3;
        let mut count = vec![0u64; self.nodes];
        for p in &self.pods {
            if p.node >= self.nodes {
                return Err(format!(
                    "pod {} is on node {} of {}",
                    p.name,
                    p.node + 1,
                    self.nodes
                ));
            }
            count[p.node] += 1;
            if count[p.node] > per_node {
                return Err(format!(
                    "more pods on node-{} than its /{} block holds",
                    p.node + 1,
                    self.node_mask
                ));
            }
        }
        if self.sites.len() > MAX_SITES {
            return Err(format!("at most {MAX_SITES} sites"));
        }
        if self.sites.iter().any(|s| s.hosts.len() > MAX_HOSTS) {
            return Err(format!("at most {MAX_HOSTS} hosts per site"));
        }
        let mtus = std::iter::once(self.pod_mtu())
            .chain([self.underlay.nic_mtu, self.underlay.path_mtu])
            .chain(self.sites.iter().map(|s| s.link.mtu))
            .chain(
                self.sites
                    .iter()
                    .flat_map(|s| s.hosts.iter().map(|h| h.mtu)),
            );
        for m in mtus {
            if !(576..=65_535).contains(&m) {
                return Err(format!("MTU {m} is outside 576..65535"));
            }
        }
        let endpoints = self.pods.len() + self.sites.iter().map(|s| s.hosts.len()).sum::<usize>();
        for f in &self.flows {
            if f.from >= endpoints || f.to >= endpoints || f.from == f.to {
                return Err(format!("flow {} needs two different endpoints", f.name));
            }
            if !matches!(f.kind, FlowKind::Tcp { .. }) && f.sizes.is_empty() {
                return Err(format!("flow {} needs payload sizes", f.name));
            }
            if f.sizes.iter().any(|s| *s > 65_000) {
                return Err(format!("flow {}: payloads are at most 65000 bytes", f.name));
            }
        }
        for (_, f) in &self.faults {
            let (Fault::BgpDown { node } | Fault::BgpUp { node }) = *f;
            if node >= self.nodes {
                return Err(format!("fault on node {} of {}", node + 1, self.nodes));
            }
        }
        Ok(())
    }
}

/// Why a packet was dropped, as operators name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropKind {
    /// A router could not forward a DF packet and answered with ICMP.
    FragNeeded,
    /// A frame larger than an L2 segment's MTU vanished.
    L2Mtu,
    /// ICMP denied by a security group.
    IcmpFiltered,
    /// A transmit queue was full.
    QueueFull,
    /// No route.
    NoRoute,
    /// A packet larger than the sender's own interface.
    MessageTooLong,
    /// A non-DF packet needed fragmenting.
    FragmentationNotModelled,
}

impl DropKind {
    /// Every kind, for hints.
    pub const ALL: [DropKind; 7] = [
        DropKind::FragNeeded,
        DropKind::L2Mtu,
        DropKind::IcmpFiltered,
        DropKind::QueueFull,
        DropKind::NoRoute,
        DropKind::MessageTooLong,
        DropKind::FragmentationNotModelled,
    ];
    /// Short name for files and reports.
    pub fn key(self) -> &'static str {
        match self {
            DropKind::FragNeeded => "frag-needed",
            DropKind::L2Mtu => "l2-mtu",
            DropKind::IcmpFiltered => "icmp-filtered",
            DropKind::QueueFull => "queue-full",
            DropKind::NoRoute => "no-route",
            DropKind::MessageTooLong => "message-too-long",
            DropKind::FragmentationNotModelled => "fragmentation",
        }
    }
    /// From the short name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.key() == s)
    }
}

impl fmt::Display for DropKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DropKind::FragNeeded => "fragmentation needed and DF set (ICMP type 3 code 4 sent)",
            DropKind::L2Mtu => "frame larger than the underlay MTU, dropped silently at layer 2",
            DropKind::IcmpFiltered => "security group: inbound ICMP not allowed",
            DropKind::QueueFull => "tail drop: transmit queue full",
            DropKind::NoRoute => "no route to host",
            DropKind::MessageTooLong => "sendmsg: Message too long",
            DropKind::FragmentationNotModelled => "needs IP fragmentation, which is not modelled",
        })
    }
}

/// Packet totals of a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PacketTotals {
    /// Packets created (by stacks and by routers sending ICMP).
    pub created: u64,
    /// Packets that reached their destination's stack.
    pub delivered: u64,
    /// Drops by reason.
    pub dropped: BTreeMap<DropKind, u64>,
    /// Still on a link or in a queue at the end.
    pub in_flight: u64,
}

impl PacketTotals {
    /// All drops.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }
}

/// What happened to one flow.
#[derive(Clone, Debug)]
pub struct FlowResult {
    /// Its name.
    pub name: String,
    /// Attempts started.
    pub attempts: u64,
    /// Attempts that completed.
    pub succeeded: u64,
    /// Failed attempts by the error the application saw.
    pub failures: BTreeMap<String, u64>,
    /// Attempts still running at the end.
    pub pending: u64,
    /// Completion times of the successful ones.
    pub times: Times,
    /// Per payload size: (succeeded, failed) (UDP and ping).
    pub by_size: BTreeMap<u32, (u64, u64)>,
}

/// Completion times of a flow's successful attempts, kept exactly (a flow
/// has few attempts; a histogram per flow would cost more to create than
/// the run).
#[derive(Clone, Debug, Default)]
pub struct Times(Vec<SimDuration>);

impl Times {
    fn record(&mut self, d: SimDuration) {
        self.0.push(d);
    }
    fn sort(&mut self) {
        self.0.sort_unstable();
    }
    /// How many.
    pub fn count(&self) -> u64 {
        self.0.len() as u64
    }
    /// The nearest-rank `q` quantile (zero when empty).
    pub fn quantile(&self, q: f64) -> SimDuration {
        if self.0.is_empty() {
            return SimDuration::ZERO;
        }
        let rank = (q.clamp(0.0, 1.0) * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1]
    }
    /// The largest (zero when empty).
    pub fn max(&self) -> SimDuration {
        self.0.last().copied().unwrap_or(SimDuration::ZERO)
    }
}

/// One packet as it left an interface (for pcap).
#[derive(Clone, Copy, Debug)]
pub struct Captured {
    /// When it started to leave.
    pub time: SimTime,
    /// The packet, encapsulation included.
    pub packet: Packet,
}

/// Everything a run produced.
#[derive(Clone, Debug)]
pub struct NetOutput {
    /// The pod MTU used.
    pub pod_mtu: u32,
    /// Per flow, in configuration order.
    pub flows: Vec<FlowResult>,
    /// Packet accounting.
    pub packets: PacketTotals,
    /// The first drop of each kind: (time, hop, full text).
    pub first_drops: BTreeMap<DropKind, (SimTime, String)>,
    /// What happened, in time order (at most [`MAX_NOTES`]).
    pub notes: Vec<(SimTime, String)>,
    /// Events handled.
    pub events_fired: u64,
    /// hubble-style lines, if asked for.
    pub trace: Vec<String>,
    /// Packets per hop, if asked for.
    pub captured: Vec<Captured>,
}

/// Notes kept per run.
pub const MAX_NOTES: usize = 200;

/// What to record besides the totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recording {
    /// A trace line per hop.
    pub trace: bool,
    /// Every packet as it leaves an interface.
    pub capture: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dev {
    Stack(EndpointId),
    Node(usize),
    Fabric,
    Gateway(usize),
    SiteRouter(usize),
}

/// Where the fabric delivers a frame (its destination MAC, in effect).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum L2 {
    Node(usize),
    VpcRouter,
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Addr {
    Pod { node: usize, ep: Option<EndpointId> },
    Node(usize),
    Gateway(usize),
    SiteRouter(usize),
    Host { site: usize, ep: EndpointId },
    Unknown,
}

#[derive(Clone, Copy, Debug)]
enum Ev {
    Arrive { slot: u32, link: u32 },
    Rto { conn: u32 },
    Start { attempt: u32 },
    Deadline { attempt: u32 },
    Fault { index: u32 },
    HoldExpired { node: u32 },
}

struct Stack {
    ip: Ipv4Addr,
    name: String,
    mtu: u32,
    tcp: TcpSettings,
    pmtu: BTreeMap<Ipv4Addr, u32>,
    out: u32,
    next_port: u16,
}

struct ConnEntry {
    ep: EndpointId,
    lport: u16,
    rip: Ipv4Addr,
    rport: u16,
    tag: u32,
    conn: Conn,
    timer: Option<EventId>,
    responded: bool,
}

struct Attempt {
    flow: usize,
    index: u32,
    size: u32,
    start: SimTime,
    done: bool,
    conn: Option<u32>,
}

struct Sim<'a> {
    cfg: &'a NetConfig,
    engine: Engine<Ev>,
    links: Vec<Link>,
    link_to: Vec<Dev>,
    pod_down: Vec<u32>,
    node_up: Vec<u32>,
    node_down: Vec<u32>,
    gw_up: Vec<u32>,
    gw_down: Vec<u32>,
    site_out: Vec<u32>,
    site_in: Vec<u32>,
    host_down: Vec<u32>,
    stacks: Vec<Stack>,
    node_pods: Vec<Vec<EndpointId>>,
    host_bits: u32,
    packets: Vec<Option<(Packet, L2)>>,
    free: Vec<u32>,
    next_id: u64,
    conns: Vec<ConnEntry>,
    conn_index: HashMap<(usize, u16, Ipv4Addr, u16), u32>,
    attempts: Vec<Attempt>,
    flows: Vec<FlowResult>,
    totals: PacketTotals,
    first_drops: BTreeMap<DropKind, (SimTime, String)>,
    notes: Vec<(SimTime, String)>,
    bgp_withdrawn: Vec<bool>,
    hold: Vec<Option<EventId>>,
    rec: Recording,
    trace: Vec<String>,
    captured: Vec<Captured>,
}

fn ip_add(base: Ipv4Addr, off: u64) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(base).wrapping_add(off as u32))
}

/// Runs the network for `cfg.duration`.
pub fn run(cfg: &NetConfig, rec: Recording) -> Result<NetOutput, String> {
    cfg.validate()?;
    let mut sim = Sim::build(cfg, rec);
    let end = SimTime::ZERO + cfg.duration;
    while let Some(ev) = sim.engine.next_until(end) {
        sim.handle(ev);
    }
    Ok(sim.finish())
}

impl<'a> Sim<'a> {
    fn build(cfg: &'a NetConfig, rec: Recording) -> Self {
        let pod_mtu = cfg.pod_mtu();
        let mut links: Vec<Link> = Vec::new();
        let mut link_to = Vec::new();
        let mut add = |spec: LinkSpec, name: String, to: Dev| {
            links.push(Link::new(spec, name));
            link_to.push(to);
            (links.len() - 1) as u32
        };
        let veth = |mtu: u32| LinkSpec {
            latency: VETH_LATENCY,
            bandwidth: VETH_BANDWIDTH,
            mtu,
            l2_mtu: u32::MAX,
            queue: super::link::DEFAULT_QUEUE,
        };
        let u = &cfg.underlay;
        let host_bits = 32 - u32::from(cfg.node_mask);
        let mut stacks = Vec::new();
        let (mut pod_down, mut node_pods) = (Vec::new(), vec![Vec::new(); cfg.nodes]);
        for (i, p) in cfg.pods.iter().enumerate() {
            let slot = node_pods[p.node].len() as u64;
            node_pods[p.node].push(i);
            let ip = ip_add(
                cfg.cluster_cidr.network(),
                ((p.node as u64) << host_bits) + 2 + slot,
            );
            let up = add(veth(pod_mtu), format!("{}/eth0", p.name), Dev::Node(p.node));
            let down = add(
                veth(pod_mtu),
                format!("node-{}/cali-{}", p.node + 1, p.name),
                Dev::Stack(i),
            );
            pod_down.push(down);
            stacks.push(Stack {
                ip,
                name: p.name.clone(),
                mtu: pod_mtu,
                tcp: p.tcp,
                pmtu: BTreeMap::new(),
                out: up,
                next_port: 32768,
            });
        }
        let nic = LinkSpec {
            latency: u.latency,
            bandwidth: u.bandwidth,
            mtu: u.nic_mtu,
            l2_mtu: u.path_mtu,
            queue: super::link::DEFAULT_QUEUE,
        };
        let fabric_side = LinkSpec {
            mtu: u32::MAX,
            l2_mtu: u32::MAX,
            ..nic
        };
        let (mut node_up, mut node_down) = (Vec::new(), Vec::new());
        for n in 0..cfg.nodes {
            node_up.push(add(nic, format!("node-{}/eth0", n + 1), Dev::Fabric));
            node_down.push(add(
                fabric_side,
                format!("vpc->node-{}", n + 1),
                Dev::Node(n),
            ));
        }
        let (mut gw_up, mut gw_down, mut site_out, mut site_in, mut host_down) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (s, site) in cfg.sites.iter().enumerate() {
            gw_up.push(add(nic, format!("{}-gw/eth0", site.name), Dev::Fabric));
            gw_down.push(add(
                fabric_side,
                format!("vpc->{}-gw", site.name),
                Dev::Gateway(s),
            ));
            site_out.push(add(
                site.link,
                format!("{}-gw/vpn0", site.name),
                Dev::SiteRouter(s),
            ));
            site_in.push(add(
                site.link,
                format!("{}-router/vpn0", site.name),
                Dev::Gateway(s),
            ));
            for (h, host) in site.hosts.iter().enumerate() {
                let ep = stacks.len();
                let access = LinkSpec {
                    latency: SimDuration::from_micros(50),
                    bandwidth: 10e9,
                    mtu: host.mtu,
                    l2_mtu: u32::MAX,
                    queue: super::link::DEFAULT_QUEUE,
                };
                let up = add(access, format!("{}/eth0", host.name), Dev::SiteRouter(s));
                host_down.push(add(
                    access,
                    format!("{}-router/eth1", site.name),
                    Dev::Stack(ep),
                ));
                stacks.push(Stack {
                    ip: Ipv4Addr::new(192, 168, s as u8, 10 + h as u8),
                    name: host.name.clone(),
                    mtu: host.mtu,
                    tcp: host.tcp,
                    pmtu: BTreeMap::new(),
                    out: up,
                    next_port: 32768,
                });
            }
        }
        let mut engine = Engine::new();
        let mut attempts = Vec::new();
        let mut flows = Vec::new();
        for (fi, f) in cfg.flows.iter().enumerate() {
            for i in 0..f.count {
                let size = if f.sizes.is_empty() {
                    0
                } else {
                    f.sizes[i as usize % f.sizes.len()]
                };
                let at = SimTime::ZERO + f.start + f.every.saturating_mul(u64::from(i));
                engine.schedule_at(
                    at,
                    Ev::Start {
                        attempt: attempts.len() as u32,
                    },
                );
                attempts.push(Attempt {
                    flow: fi,
                    index: i,
                    size,
                    start: at,
                    done: false,
                    conn: None,
                });
            }
            flows.push(FlowResult {
                name: f.name.clone(),
                attempts: 0,
                succeeded: 0,
                failures: BTreeMap::new(),
                pending: 0,
                times: Times::default(),
                by_size: BTreeMap::new(),
            });
        }
        for (i, (at, _)) in cfg.faults.iter().enumerate() {
            engine.schedule_at(SimTime::ZERO + *at, Ev::Fault { index: i as u32 });
        }
        Sim {
            cfg,
            engine,
            links,
            link_to,
            pod_down,
            node_up,
            node_down,
            gw_up,
            gw_down,
            site_out,
            site_in,
            host_down,
            stacks,
            node_pods,
            host_bits,
            packets: Vec::new(),
            free: Vec::new(),
            next_id: 0,
            conns: Vec::new(),
            conn_index: HashMap::new(),
            attempts,
            flows,
            totals: PacketTotals::default(),
            first_drops: BTreeMap::new(),
            notes: Vec::new(),
            bgp_withdrawn: vec![false; cfg.nodes],
            hold: vec![None; cfg.nodes],
            rec,
            trace: Vec::new(),
            captured: Vec::new(),
        }
    }

    fn finish(mut self) -> NetOutput {
        self.totals.in_flight = self.packets.iter().filter(|p| p.is_some()).count() as u64;
        for f in &mut self.flows {
            f.times.sort();
        }
        for a in &self.attempts {
            let started = a.start <= self.engine.now();
            if started && !a.done {
                self.flows[a.flow].pending += 1;
            }
        }
        NetOutput {
            pod_mtu: self.cfg.pod_mtu(),
            flows: self.flows,
            packets: self.totals,
            first_drops: self.first_drops,
            notes: self.notes,
            events_fired: self.engine.fired(),
            trace: self.trace,
            captured: self.captured,
        }
    }

    // ---- addresses -------------------------------------------------------

    fn node_ip(&self, n: usize) -> Ipv4Addr {
        ip_add(UNDERLAY, 16 + n as u64)
    }

    fn gateway_ip(&self, s: usize) -> Ipv4Addr {
        ip_add(UNDERLAY, 2 + s as u64)
    }

    fn classify(&self, ip: Ipv4Addr) -> Addr {
        let cfg = self.cfg;
        if cfg.cluster_cidr.contains(ip) {
            let off = u64::from(u32::from(ip) - u32::from(cfg.cluster_cidr.network()));
            let node = (off >> self.host_bits) as usize;
            if node >= cfg.nodes {
                return Addr::Unknown;
            }
            let host = off & ((1 << self.host_bits) - 1);
            let ep = host
                .checked_sub(2)
                .and_then(|k| self.node_pods[node].get(k as usize).copied());
            return Addr::Pod { node, ep };
        }
        let o = ip.octets();
        let base = UNDERLAY.octets();
        if o[0] == base[0] && o[1] == base[1] {
            let off = (u64::from(o[2]) << 8) | u64::from(o[3]);
            if off >= 16 && ((off - 16) as usize) < cfg.nodes {
                return Addr::Node((off - 16) as usize);
            }
            if (2..16).contains(&off) && ((off - 2) as usize) < cfg.sites.len() {
                return Addr::Gateway((off - 2) as usize);
            }
            return Addr::Unknown;
        }
        if o[0] == 192 && o[1] == 168 && (o[2] as usize) < cfg.sites.len() {
            let s = o[2] as usize;
            if o[3] == 1 {
                return Addr::SiteRouter(s);
            }
            let h = usize::from(o[3]).wrapping_sub(10);
            if h < cfg.sites[s].hosts.len() {
                let ep = cfg.pods.len()
                    + cfg.sites[..s].iter().map(|x| x.hosts.len()).sum::<usize>()
                    + h;
                return Addr::Host { site: s, ep };
            }
        }
        Addr::Unknown
    }

    fn name_of(&self, ip: Ipv4Addr) -> String {
        match self.classify(ip) {
            Addr::Pod { ep: Some(ep), .. } | Addr::Host { ep, .. } => self.stacks[ep].name.clone(),
            Addr::Node(n) => format!("node-{}", n + 1),
            Addr::Gateway(s) => format!("{}-gw", self.cfg.sites[s].name),
            Addr::SiteRouter(s) => format!("{}-router", self.cfg.sites[s].name),
            _ => ip.to_string(),
        }
    }

    fn dev_ip(&self, dev: Dev) -> Ipv4Addr {
        match dev {
            Dev::Stack(ep) => self.stacks[ep].ip,
            Dev::Node(n) => self.node_ip(n),
            Dev::Fabric => ip_add(UNDERLAY, 1),
            Dev::Gateway(s) => self.gateway_ip(s),
            Dev::SiteRouter(s) => Ipv4Addr::new(192, 168, s as u8, 1),
        }
    }

    fn dev_name(&self, dev: Dev) -> String {
        match dev {
            Dev::Stack(ep) => self.stacks[ep].name.clone(),
            Dev::Node(n) => format!("node-{}", n + 1),
            Dev::Fabric => "vpc".into(),
            Dev::Gateway(s) => format!("{}-gw", self.cfg.sites[s].name),
            Dev::SiteRouter(s) => format!("{}-router", self.cfg.sites[s].name),
        }
    }

    // ---- packets ---------------------------------------------------------

    fn alloc(&mut self, p: Packet) -> u32 {
        self.totals.created += 1;
        match self.free.pop() {
            Some(s) => {
                self.packets[s as usize] = Some((p, L2::None));
                s
            }
            None => {
                self.packets.push(Some((p, L2::None)));
                (self.packets.len() - 1) as u32
            }
        }
    }

    fn take(&mut self, slot: u32) -> Packet {
        self.free.push(slot);
        self.packets[slot as usize]
            .take()
            .map(|(p, _)| p)
            .expect("a live slot")
    }

    fn pkt(&self, slot: u32) -> &Packet {
        &self.packets[slot as usize].as_ref().expect("a live slot").0
    }

    fn new_packet(
        &mut self,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        df: bool,
        t: Transport,
        tag: u32,
    ) -> Packet {
        self.next_id += 1;
        Packet {
            id: self.next_id,
            src,
            dst,
            df,
            ttl: 64,
            transport: t,
            encap: None,
            born: self.engine.now(),
            app_tag: tag,
        }
    }

    fn trace_line(&mut self, p: &Packet, point: &str, verdict: &str) {
        let (sp, dp) = match p.transport {
            Transport::Tcp { sport, dport, .. } | Transport::Udp { sport, dport, .. } => {
                (format!(":{sport}"), format!(":{dport}"))
            }
            Transport::Icmp(_) => (String::new(), String::new()),
        };
        let detail = match p.transport {
            Transport::Tcp { flags, payload, .. } => {
                format!("TCP Flags: {}, {payload} B", flags.names())
            }
            Transport::Udp { payload, .. } => format!("UDP, {payload} B"),
            Transport::Icmp(m) => {
                let (t, c) = m.type_code();
                format!("ICMPv4 type {t} code {c}")
            }
        };
        let encap = p
            .encap
            .map(|e| {
                format!(
                    ", {} {} -> {}",
                    e.kind.name(),
                    self.name_of(e.src),
                    self.name_of(e.dst)
                )
            })
            .unwrap_or_default();
        let line = format!(
            "T+{:.6}s #{:<5} {}{} ({}) -> {}{} ({}) {point} {verdict} ({detail}, ip len {}{encap})",
            self.engine.now().as_secs_f64(),
            p.id,
            self.name_of(p.src),
            sp,
            p.src,
            self.name_of(p.dst),
            dp,
            p.dst,
            p.ip_len(),
        );
        self.trace.push(line);
    }

    fn drop_packet(&mut self, slot: u32, kind: DropKind, at: String, detail: String) {
        let p = self.take(slot);
        *self.totals.dropped.entry(kind).or_insert(0) += 1;
        if self.rec.trace {
            self.trace_line(&p, &at, &format!("DROPPED ({kind}{detail})"));
        }
        let now = self.engine.now();
        self.first_drops.entry(kind).or_insert_with(|| {
            (
                now,
                format!("#{} at {at}: {kind}{detail}: {}", p.id, p.summary()),
            )
        });
    }

    fn note(&mut self, text: String) {
        if self.notes.len() < MAX_NOTES {
            self.notes.push((self.engine.now(), text));
        }
    }

    /// Puts a packet on a link after `delay` of processing.
    fn transmit(&mut self, slot: u32, link: u32, delay: SimDuration, l2: L2, point: &str) {
        let now = self.engine.now();
        let l = &mut self.links[link as usize];
        let entry = self.packets[slot as usize].as_mut().expect("a live slot");
        entry.1 = l2;
        let frame = entry.0.frame_len();
        if !l.up {
            let name = l.name.clone();
            self.drop_packet(slot, DropKind::NoRoute, name, ": link down".into());
            return;
        }
        match l.enqueue(now, now + delay, frame) {
            Ok((start, arrival)) => {
                if self.rec.capture || self.rec.trace {
                    let p = *self.pkt(slot);
                    if self.rec.capture {
                        self.captured.push(Captured {
                            time: start,
                            packet: p,
                        });
                    }
                    if self.rec.trace {
                        let name = self.links[link as usize].name.clone();
                        self.trace_line(&p, &format!("{point} {name}"), "FORWARDED");
                    }
                }
                self.engine.schedule_at(arrival, Ev::Arrive { slot, link });
            }
            Err(q) => {
                let name = l.name.clone();
                self.drop_packet(
                    slot,
                    DropKind::QueueFull,
                    name,
                    format!(" ({} packets)", q.limit),
                );
            }
        }
    }

    /// A router (or an encapsulating node) forwards onto `link`: MTU check,
    /// ICMP on a DF packet that does not fit.
    fn forward(&mut self, dev: Dev, slot: u32, link: u32, delay: SimDuration, l2: L2, point: &str) {
        let mtu = self.links[link as usize].spec.mtu;
        let p = *self.pkt(slot);
        if p.ip_len() > mtu {
            let name = self.links[link as usize].name.clone();
            if p.df {
                // A tunnel reports what is left for the inner packet.
                let overhead = p.encap.map_or(0, |e| e.kind.overhead());
                let mtu_left = mtu - overhead;
                self.drop_packet(
                    slot,
                    DropKind::FragNeeded,
                    name,
                    format!(" (mtu {mtu_left})"),
                );
                self.send_frag_needed(dev, &p, mtu_left);
            } else {
                self.drop_packet(
                    slot,
                    DropKind::FragmentationNotModelled,
                    name,
                    String::new(),
                );
            }
            return;
        }
        self.transmit(slot, link, delay, l2, point);
    }

    fn send_frag_needed(&mut self, dev: Dev, orig: &Packet, mtu: u32) {
        if matches!(orig.transport, Transport::Icmp(Icmp::FragNeeded { .. })) {
            return; // never an ICMP error about an ICMP error (RFC 1122 3.2.2)
        }
        let mut quote = orig.quote();
        quote.quoted = quote
            .quoted
            .min(super::packet::ICMP_ERROR_MAX - IPV4_HEADER - 8);
        let p = self.new_packet(
            self.dev_ip(dev),
            orig.src,
            false,
            Transport::Icmp(Icmp::FragNeeded { mtu, quote }),
            orig.app_tag,
        );
        let slot = self.alloc(p);
        if self.rec.trace {
            let name = self.dev_name(dev);
            self.trace_line(&p, &format!("from-host {name}"), "GENERATED");
        }
        self.route(dev, slot);
    }

    // ---- devices ---------------------------------------------------------

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Arrive { slot, link } => self.arrive(slot, link),
            Ev::Rto { conn } => {
                let c = &mut self.conns[conn as usize];
                c.timer = None;
                let mut out = Vec::new();
                c.conn.on_timeout(self.engine.now(), &mut out);
                self.apply_tcp(conn, out);
            }
            Ev::Start { attempt } => self.start(attempt as usize),
            Ev::Deadline { attempt } => self.deadline(attempt as usize),
            Ev::Fault { index } => self.fault(self.cfg.faults[index as usize].1),
            Ev::HoldExpired { node } => {
                let n = node as usize;
                self.hold[n] = None;
                self.bgp_withdrawn[n] = true;
                let block = self
                    .cfg
                    .cluster_cidr
                    .subnet(self.cfg.node_mask, n as u64)
                    .map_or_else(String::new, |b| b.to_string());
                self.note(format!(
                    "BGP hold timer expired: peers withdraw node-{}'s pod CIDR {block}, node-{} withdraws theirs",
                    n + 1,
                    n + 1
                ));
            }
        }
    }

    fn fault(&mut self, f: Fault) {
        match f {
            Fault::BgpDown { node } => {
                if self.hold[node].is_none() && !self.bgp_withdrawn[node] {
                    let hold = self.cfg.bgp_hold_time;
                    self.hold[node] = Some(
                        self.engine
                            .schedule_in(hold, Ev::HoldExpired { node: node as u32 }),
                    );
                    self.note(format!(
                        "BGP sessions of node-{} down (no keepalives); peers keep its routes until the hold time ({hold}) expires",
                        node + 1
                    ));
                }
            }
            Fault::BgpUp { node } => {
                if let Some(id) = self.hold[node].take() {
                    self.engine.cancel(id);
                }
                if self.bgp_withdrawn[node] {
                    self.bgp_withdrawn[node] = false;
                }
                self.note(format!(
                    "BGP sessions of node-{} Established; routes re-advertised",
                    node + 1
                ));
            }
        }
    }

    fn arrive(&mut self, slot: u32, link: u32) {
        let l = &self.links[link as usize];
        let len = self.pkt(slot).ip_len();
        if len > l.spec.l2_mtu {
            let (name, mtu) = (l.name.clone(), l.spec.l2_mtu);
            self.drop_packet(slot, DropKind::L2Mtu, name, format!(" ({len} > {mtu})"));
            return;
        }
        match self.link_to[link as usize] {
            Dev::Stack(ep) => self.deliver(ep, slot),
            Dev::Node(n) => {
                if link == self.node_down[n] {
                    self.node_from_fabric(n, slot);
                } else {
                    self.route(Dev::Node(n), slot);
                }
            }
            Dev::Fabric => self.fabric(slot),
            Dev::Gateway(s) => {
                self.clamp_mss(s, slot);
                let inbound = link == self.gw_down[s];
                let p = self.pkt(slot);
                if inbound
                    && !matches!(self.classify(p.dst), Addr::Host { site, .. } | Addr::SiteRouter(site) if site == s)
                {
                    let name = self.dev_name(Dev::Gateway(s));
                    self.drop_packet(slot, DropKind::NoRoute, name, String::new());
                    return;
                }
                self.route(Dev::Gateway(s), slot);
            }
            Dev::SiteRouter(s) => self.route(Dev::SiteRouter(s), slot),
        }
    }

    fn clamp_mss(&mut self, s: usize, slot: u32) {
        let Some(clamp) = self.cfg.sites[s].mss_clamp else {
            return;
        };
        let entry = self.packets[slot as usize].as_mut().expect("a live slot");
        if let Transport::Tcp {
            flags,
            mss: Some(m),
            ..
        } = &mut entry.0.transport
        {
            if flags.has(TcpFlags::SYN) && *m > clamp {
                *m = clamp;
            }
        }
    }

    fn node_from_fabric(&mut self, n: usize, slot: u32) {
        let p = *self.pkt(slot);
        let name = format!("node-{}/eth0", n + 1);
        if p.encap.is_none() && p.protocol() == Protocol::Icmp && !self.cfg.underlay.icmp_allowed {
            let (t, c) = match p.transport {
                Transport::Icmp(m) => m.type_code(),
                _ => (0, 0),
            };
            self.drop_packet(
                slot,
                DropKind::IcmpFiltered,
                name,
                format!(" (type {t} code {c} from {})", p.src),
            );
            return;
        }
        if let Some(e) = p.encap {
            if e.dst != self.node_ip(n) {
                self.drop_packet(slot, DropKind::NoRoute, name, format!(" (outer {})", e.dst));
                return;
            }
            if let Some(entry) = self.packets[slot as usize].as_mut() {
                entry.0.encap = None;
            }
            let cost = self.cfg.cni.node_cost(true);
            match self.classify(p.dst) {
                Addr::Pod { node, ep: Some(ep) } if node == n => {
                    let link = self.pod_down[ep];
                    self.forward(Dev::Node(n), slot, link, cost, L2::None, "to-endpoint");
                }
                _ => self.drop_packet(slot, DropKind::NoRoute, name, format!(" ({})", p.dst)),
            }
            return;
        }
        match self.classify(p.dst) {
            Addr::Pod { node, ep: Some(ep) } if node == n => {
                let link = self.pod_down[ep];
                let cost = self.cfg.cni.node_cost(false);
                self.forward(Dev::Node(n), slot, link, cost, L2::None, "to-endpoint");
            }
            _ => self.drop_packet(slot, DropKind::NoRoute, name, format!(" ({})", p.dst)),
        }
    }

    /// Routes a packet at a device (after any ingress processing).
    fn route(&mut self, dev: Dev, slot: u32) {
        let p = *self.pkt(slot);
        match dev {
            Dev::Node(n) => self.route_node(n, slot, &p),
            Dev::Gateway(s) => match self.classify(p.dst) {
                Addr::Host { site, .. } | Addr::SiteRouter(site) if site == s => {
                    let link = self.site_out[s];
                    self.forward(dev, slot, link, SimDuration::ZERO, L2::None, "to-network");
                }
                _ => {
                    let link = self.gw_up[s];
                    self.forward(
                        dev,
                        slot,
                        link,
                        SimDuration::ZERO,
                        L2::VpcRouter,
                        "to-network",
                    );
                }
            },
            Dev::SiteRouter(s) => match self.classify(p.dst) {
                Addr::Host { site, ep } if site == s => {
                    let link = self.host_down[ep - self.cfg.pods.len()];
                    self.forward(dev, slot, link, SimDuration::ZERO, L2::None, "to-endpoint");
                }
                Addr::SiteRouter(site) if site == s => {
                    let name = self.dev_name(dev);
                    self.drop_packet(
                        slot,
                        DropKind::NoRoute,
                        name,
                        " (nothing listens on the router)".into(),
                    );
                }
                _ => {
                    let link = self.site_in[s];
                    self.forward(dev, slot, link, SimDuration::ZERO, L2::None, "to-network");
                }
            },
            Dev::Stack(_) | Dev::Fabric => {
                let name = self.dev_name(dev);
                self.drop_packet(slot, DropKind::NoRoute, name, String::new());
            }
        }
    }

    fn route_node(&mut self, n: usize, slot: u32, p: &Packet) {
        let cni = self.cfg.cni;
        let dev = Dev::Node(n);
        let native = cni.node_cost(false);
        let up = self.node_up[n];
        match self.classify(p.dst) {
            Addr::Pod { node, ep } if node == n => match ep {
                Some(ep) => {
                    let link = self.pod_down[ep];
                    self.forward(dev, slot, link, native, L2::None, "to-endpoint");
                }
                None => {
                    let name = self.dev_name(dev);
                    self.drop_packet(
                        slot,
                        DropKind::NoRoute,
                        name,
                        format!(" ({}: no such pod)", p.dst),
                    );
                }
            },
            Addr::Pod { node: m, .. } => match cni.routing() {
                Routing::Overlay(kind) => {
                    let encap = Encap {
                        kind,
                        src: self.node_ip(n),
                        dst: self.node_ip(m),
                    };
                    if let Some(entry) = self.packets[slot as usize].as_mut() {
                        entry.0.encap = Some(encap);
                    }
                    let point = match kind {
                        EncapKind::Vxlan => "to-overlay (vxlan)",
                        EncapKind::Ipip => "to-overlay (ipip)",
                        EncapKind::Wireguard => "to-overlay (wireguard)",
                    };
                    self.forward(dev, slot, up, cni.node_cost(true), L2::Node(m), point);
                }
                Routing::StaticRoutes => {
                    self.forward(dev, slot, up, native, L2::Node(m), "to-network")
                }
                Routing::Bgp => {
                    if self.bgp_withdrawn[n] || self.bgp_withdrawn[m] {
                        self.forward(
                            dev,
                            slot,
                            up,
                            native,
                            L2::VpcRouter,
                            "to-network (default route)",
                        );
                    } else {
                        self.forward(
                            dev,
                            slot,
                            up,
                            native,
                            L2::Node(m),
                            "to-network (bird route)",
                        );
                    }
                }
                Routing::Underlay => {
                    self.forward(dev, slot, up, native, L2::VpcRouter, "to-network")
                }
            },
            _ => self.forward(dev, slot, up, native, L2::VpcRouter, "to-network"),
        }
    }

    fn fabric(&mut self, slot: u32) {
        let (p, l2) = self.packets[slot as usize].expect("a live slot");
        let to = match l2 {
            L2::Node(m) => Some(self.node_down[m]),
            L2::VpcRouter | L2::None => {
                let dst = p.encap.map_or(p.dst, |e| e.dst);
                match self.classify(dst) {
                    Addr::Node(m) => Some(self.node_down[m]),
                    Addr::Pod { node, .. } if self.cfg.cni.routing() == Routing::Underlay => {
                        Some(self.node_down[node])
                    }
                    Addr::Host { site, .. } | Addr::SiteRouter(site) => Some(self.gw_down[site]),
                    _ => None,
                }
            }
        };
        match to {
            Some(link) => self.transmit(slot, link, SimDuration::ZERO, L2::None, "to-network"),
            None => {
                let dst = p.encap.map_or(p.dst, |e| e.dst);
                self.drop_packet(
                    slot,
                    DropKind::NoRoute,
                    "vpc".into(),
                    format!(" (the VPC route table has no route to {dst})"),
                );
            }
        }
    }

    // ---- stacks ----------------------------------------------------------

    fn pmtu_to(&self, ep: EndpointId, dst: Ipv4Addr) -> u32 {
        let s = &self.stacks[ep];
        s.pmtu.get(&dst).copied().unwrap_or(s.mtu).min(s.mtu)
    }

    fn send(&mut self, ep: EndpointId, p: Packet) {
        let slot = self.alloc(p);
        let out = self.stacks[ep].out;
        if p.ip_len() > self.links[out as usize].spec.mtu {
            let name = self.stacks[ep].name.clone();
            self.drop_packet(slot, DropKind::MessageTooLong, name, String::new());
            return;
        }
        self.transmit(slot, out, SimDuration::ZERO, L2::None, "from-endpoint");
    }

    fn deliver(&mut self, ep: EndpointId, slot: u32) {
        let p = self.take(slot);
        self.totals.delivered += 1;
        if self.rec.trace {
            let name = self.stacks[ep].name.clone();
            self.trace_line(&p, &format!("to-stack {name}"), "DELIVERED");
        }
        let now = self.engine.now();
        match p.transport {
            Transport::Tcp {
                sport,
                dport,
                seq,
                ack,
                flags,
                mss,
                payload,
            } => {
                let seg = Seg {
                    seq,
                    ack,
                    flags,
                    mss,
                    payload,
                };
                let key = (ep, dport, p.src, sport);
                if let Some(&c) = self.conn_index.get(&key) {
                    let mut out = Vec::new();
                    self.conns[c as usize].conn.on_segment(now, seg, &mut out);
                    self.apply_tcp(c, out);
                } else if flags == TcpFlags::SYN {
                    let mut out = Vec::new();
                    let pmtu = self.pmtu_to(ep, p.src);
                    let conn = Conn::accept(self.stacks[ep].tcp, pmtu, mss, now, &mut out);
                    let id = self.conns.len() as u32;
                    self.conns.push(ConnEntry {
                        ep,
                        lport: dport,
                        rip: p.src,
                        rport: sport,
                        tag: p.app_tag,
                        conn,
                        timer: None,
                        responded: false,
                    });
                    self.conn_index.insert(key, id);
                    self.apply_tcp(id, out);
                }
            }
            Transport::Udp { .. } => self.succeed(p.app_tag as usize),
            Transport::Icmp(Icmp::EchoRequest { id, seq, payload }) => {
                let r = self.new_packet(
                    self.stacks[ep].ip,
                    p.src,
                    true,
                    Transport::Icmp(Icmp::EchoReply { id, seq, payload }),
                    p.app_tag,
                );
                self.send(ep, r);
            }
            Transport::Icmp(Icmp::EchoReply { .. }) => self.succeed(p.app_tag as usize),
            Transport::Icmp(Icmp::FragNeeded { mtu, quote }) => {
                let st = &mut self.stacks[ep];
                let e = st.pmtu.entry(quote.dst).or_insert(st.mtu);
                *e = (*e).min(mtu.max(MSS_HEADERS + 68));
                match quote.protocol {
                    Protocol::Tcp => {
                        let key = (ep, quote.sport, quote.dst, quote.dport);
                        if let Some(&c) = self.conn_index.get(&key) {
                            let mut out = Vec::new();
                            self.conns[c as usize].conn.on_pmtu(mtu, &mut out);
                            self.apply_tcp(c, out);
                        }
                    }
                    Protocol::Icmp => {
                        self.fail(
                            p.app_tag as usize,
                            format!("Frag needed and DF set (mtu = {mtu})"),
                        );
                    }
                    Protocol::Udp | Protocol::Sctp => {}
                }
            }
        }
    }

    fn apply_tcp(&mut self, c: u32, out: Vec<TcpOut>) {
        let mut work = out;
        while !work.is_empty() {
            let mut next = Vec::new();
            for o in work {
                let now = self.engine.now();
                let e = &mut self.conns[c as usize];
                match o {
                    TcpOut::Segment(seg) => {
                        let (ep, lport, rip, rport, tag) = (e.ep, e.lport, e.rip, e.rport, e.tag);
                        let t = Transport::Tcp {
                            sport: lport,
                            dport: rport,
                            seq: seg.seq,
                            ack: seg.ack,
                            flags: seg.flags,
                            mss: seg.mss,
                            payload: seg.payload,
                        };
                        let p = self.new_packet(self.stacks[ep].ip, rip, true, t, tag);
                        self.send(ep, p);
                    }
                    TcpOut::Arm(d) => {
                        if let Some(id) = e.timer.take() {
                            self.engine.cancel(id);
                        }
                        let id = self.engine.schedule_in(d, Ev::Rto { conn: c });
                        self.conns[c as usize].timer = Some(id);
                    }
                    TcpOut::Disarm => {
                        if let Some(id) = e.timer.take() {
                            self.engine.cancel(id);
                        }
                    }
                    TcpOut::Established => {
                        if e.conn.role == Role::Client {
                            let a = e.tag as usize;
                            if let FlowKind::Tcp { request, .. } =
                                self.cfg.flows[self.attempts[a].flow].kind
                            {
                                self.conns[c as usize].conn.write(request, now, &mut next);
                            }
                        }
                    }
                    TcpOut::Received(n) => {
                        let a = e.tag as usize;
                        let FlowKind::Tcp {
                            request, response, ..
                        } = self.cfg.flows[self.attempts[a].flow].kind
                        else {
                            continue;
                        };
                        match e.conn.role {
                            Role::Client if n >= response => {
                                self.succeed(a);
                                let e = &mut self.conns[c as usize];
                                e.conn.state = State::Closed;
                                if let Some(id) = e.timer.take() {
                                    self.engine.cancel(id);
                                }
                            }
                            Role::Server if n >= request && !e.responded => {
                                e.responded = true;
                                e.conn.write(response, now, &mut next);
                            }
                            _ => {}
                        }
                    }
                    TcpOut::Failed(text) => {
                        if let Some(id) = e.timer.take() {
                            self.engine.cancel(id);
                        }
                        let (role, a) = (e.conn.role, e.tag as usize);
                        let name = self.stacks[e.ep].name.clone();
                        if role == Role::Client {
                            let established = self.attempts[a].conn.is_some()
                                && self.conns[c as usize].conn.received() > 0;
                            let what = if established { "recv" } else { "connect" };
                            self.fail(a, format!("{what}: {text}"));
                        } else {
                            self.note(format!(
                                "{name}: server side of the connection closed: {text}"
                            ));
                        }
                    }
                    TcpOut::Note(text) => {
                        let name = self.stacks[e.ep].name.clone();
                        self.note(format!("{name}: {text}"));
                    }
                }
            }
            work = next;
        }
    }

    fn start(&mut self, a: usize) {
        let now = self.engine.now();
        let att = &self.attempts[a];
        let f = &self.cfg.flows[att.flow];
        let (from, to, size) = (f.from, f.to, att.size);
        self.flows[att.flow].attempts += 1;
        self.engine
            .schedule_in(f.timeout, Ev::Deadline { attempt: a as u32 });
        let dst = self.stacks[to].ip;
        let pmtu = self.pmtu_to(from, dst);
        let tag = a as u32;
        match f.kind {
            FlowKind::Tcp { port, .. } => {
                let st = &mut self.stacks[from];
                let lport = st.next_port;
                st.next_port = if st.next_port >= 60999 {
                    32768
                } else {
                    st.next_port + 1
                };
                let mut out = Vec::new();
                let conn = Conn::connect(st.tcp, pmtu, now, &mut out);
                let id = self.conns.len() as u32;
                self.conns.push(ConnEntry {
                    ep: from,
                    lport,
                    rip: dst,
                    rport: port,
                    tag,
                    conn,
                    timer: None,
                    responded: false,
                });
                self.conn_index.insert((from, lport, dst, port), id);
                self.attempts[a].conn = Some(id);
                self.apply_tcp(id, out);
            }
            FlowKind::Udp { port } => {
                if size + IPV4_HEADER + 8 > pmtu {
                    self.fail(a, "sendto: Message too long".into());
                    return;
                }
                let t = Transport::Udp {
                    sport: 20000 + (att.flow as u16 % 10000),
                    dport: port,
                    payload: size,
                };
                let p = self.new_packet(self.stacks[from].ip, dst, true, t, tag);
                self.send(from, p);
            }
            FlowKind::Ping => {
                if size + IPV4_HEADER + 8 > pmtu {
                    self.fail(
                        a,
                        format!("ping: local error: message too long, mtu={pmtu}"),
                    );
                    return;
                }
                let seq = att.index as u16;
                let t = Transport::Icmp(Icmp::EchoRequest {
                    id: att.flow as u16,
                    seq,
                    payload: size,
                });
                let p = self.new_packet(self.stacks[from].ip, dst, true, t, tag);
                self.send(from, p);
            }
        }
    }

    fn finish_attempt(&mut self, a: usize) -> bool {
        let att = &mut self.attempts[a];
        if att.done {
            return false;
        }
        att.done = true;
        true
    }

    fn succeed(&mut self, a: usize) {
        if a >= self.attempts.len() || !self.finish_attempt(a) {
            return;
        }
        let att = &self.attempts[a];
        let took = self.engine.now() - att.start;
        let fr = &mut self.flows[att.flow];
        fr.succeeded += 1;
        fr.times.record(took);
        if !self.cfg.flows[att.flow].sizes.is_empty() {
            fr.by_size.entry(att.size).or_insert((0, 0)).0 += 1;
        }
    }

    fn fail(&mut self, a: usize, why: String) {
        if a >= self.attempts.len() || !self.finish_attempt(a) {
            return;
        }
        let att = &self.attempts[a];
        let fr = &mut self.flows[att.flow];
        *fr.failures.entry(why).or_insert(0) += 1;
        if !self.cfg.flows[att.flow].sizes.is_empty() {
            fr.by_size.entry(att.size).or_insert((0, 0)).1 += 1;
        }
    }

    fn deadline(&mut self, a: usize) {
        if self.attempts[a].done {
            return;
        }
        let f = &self.cfg.flows[self.attempts[a].flow];
        let why = match f.kind {
            FlowKind::Tcp { .. } => {
                let c = self.attempts[a]
                    .conn
                    .expect("TCP attempts have a connection") as usize;
                let state = self.conns[c].conn.state;
                let mut out = Vec::new();
                self.conns[c].conn.abort(&mut out);
                self.apply_tcp(c as u32, out);
                if state == State::SynSent {
                    format!("timed out after {} (not connected)", f.timeout)
                } else {
                    format!("timed out after {} (response incomplete)", f.timeout)
                }
            }
            FlowKind::Udp { .. } => format!("not delivered within {}", f.timeout),
            FlowKind::Ping => format!("no reply within {}", f.timeout),
        };
        self.fail(a, why);
    }
}

#[cfg(test)]
mod tests;
