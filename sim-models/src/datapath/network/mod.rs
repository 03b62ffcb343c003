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
//! The code, by mechanism: this file holds the configuration, the outputs
//! and the run; `addr.rs` what an address is (arithmetic on its block);
//! `forward.rs` links, routing and the devices that forward; `stack.rs` the
//! pods' and hosts' stacks and the application attempts; `service.rs`
//! Services and NetworkPolicy: the connection path of [`crate::path`] run
//! on each new flow's first packet at the client's node (kube-proxy DNAT,
//! the policy verdict, conntrack), its NAT kept per 5-tuple for later
//! packets and reversed on replies.
//!
//! Per-packet simulator cost does not depend on the number of nodes or
//! pods: every address is classified by arithmetic on its CIDR (pod CIDR
//! index = offset >> host bits), every route lookup is O(1).
//!
//! Limitations: IPv4; no IP fragmentation (hosts send with DF, as Linux TCP
//! does and UDP with `IP_PMTUDISC_DO`; VXLAN/WireGuard outer headers without
//! DF only cross the L2 underlay, so a non-DF packet never meets a smaller
//! routed MTU in the topologies built here, and would be dropped with a
//! reason saying so); no ICMP rate limiting; Services, kube-proxy,
//! conntrack and NetworkPolicy act on first packets at the client's node
//! with the limitations `service.rs` lists; no SNAT (so outside hosts and
//! pods only talk when pod IPs are VPC addresses); path-MTU cache entries
//! do not expire (600 s in Linux).
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

mod addr;
mod forward;
mod service;
mod stack;

use super::cni::Cni;
use super::link::{Link, LinkSpec};
use super::packet::Packet;
use super::tcp::{Conn, TcpSettings};
use crate::conntrack::Refused;
use crate::ipam::Ipv4Cidr;
use crate::path::Drop as PathDrop;
use sim_core::{Engine, EventId, SimDuration, SimTime};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::Ipv4Addr;

pub use service::{PodMeta, ServiceSetup, ServiceSpec};

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

/// Where a flow's packets are addressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dest {
    /// A pod or host (its own address).
    Endpoint(EndpointId),
    /// A Service's ClusterIP (index into [`ServiceSetup::services`]): the
    /// client's node DNATs the first packet to an endpoint.
    Service(usize),
}

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
    pub to: Dest,
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
    /// Services, kube-proxy, conntrack and NetworkPolicy on the path
    /// (default: none of them).
    pub services: ServiceSetup,
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
            let to_ok = match f.to {
                Dest::Endpoint(to) => to < endpoints && to != f.from,
                Dest::Service(s) => s < self.services.services.len(),
            };
            if f.from >= endpoints || !to_ok {
                return Err(format!("flow {} needs two different endpoints", f.name));
            }
            if matches!(f.to, Dest::Service(_))
                && (f.from >= self.pods.len() || matches!(f.kind, FlowKind::Ping))
            {
                return Err(format!(
                    "flow {}: a Service takes TCP or UDP from a pod (ClusterIPs answer no ping, and hosts outside reach no ClusterIP)",
                    f.name
                ));
            }
            if !matches!(f.kind, FlowKind::Tcp { .. }) && f.sizes.is_empty() {
                return Err(format!("flow {} needs payload sizes", f.name));
            }
            if f.sizes.iter().any(|s| *s > 65_000) {
                return Err(format!("flow {}: payloads are at most 65000 bytes", f.name));
            }
        }
        self.services.validate(self)?;
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
    /// kube-proxy REJECTs a first packet to a Service without endpoints.
    NoEndpoints,
    /// The client node's conntrack table is full.
    ConntrackFull,
    /// kube-proxy DNATed a first packet to a deleted pod.
    StaleEndpoint,
    /// NetworkPolicy dropped a first packet.
    PolicyDenied,
    /// conntrack confirmation lost a SNAT port clash.
    InsertFailed,
}

impl DropKind {
    /// Every kind, for hints.
    pub const ALL: [DropKind; 12] = [
        DropKind::FragNeeded,
        DropKind::L2Mtu,
        DropKind::IcmpFiltered,
        DropKind::QueueFull,
        DropKind::NoRoute,
        DropKind::MessageTooLong,
        DropKind::FragmentationNotModelled,
        DropKind::NoEndpoints,
        DropKind::ConntrackFull,
        DropKind::StaleEndpoint,
        DropKind::PolicyDenied,
        DropKind::InsertFailed,
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
            DropKind::NoEndpoints => "no-endpoints",
            DropKind::ConntrackFull => "conntrack-full",
            DropKind::StaleEndpoint => "stale-endpoint",
            DropKind::PolicyDenied => "policy-denied",
            DropKind::InsertFailed => "insert-failed",
        }
    }
    /// From the short name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.key() == s)
    }
}

impl fmt::Display for DropKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The connection path's drops read as the path says them.
        let path = |d: PathDrop| d.to_string();
        f.write_str(match self {
            DropKind::FragNeeded => "fragmentation needed and DF set (ICMP type 3 code 4 sent)",
            DropKind::L2Mtu => "frame larger than the underlay MTU, dropped silently at layer 2",
            DropKind::IcmpFiltered => "security group: inbound ICMP not allowed",
            DropKind::QueueFull => "tail drop: transmit queue full",
            DropKind::NoRoute => "no route to host",
            DropKind::MessageTooLong => "sendmsg: Message too long",
            DropKind::FragmentationNotModelled => "needs IP fragmentation, which is not modelled",
            DropKind::NoEndpoints => return f.write_str(&path(PathDrop::NoEndpoints)),
            DropKind::ConntrackFull => {
                return f.write_str(&path(PathDrop::ConntrackFull {
                    node: 0,
                    refused: Refused::TableFull,
                }))
            }
            DropKind::StaleEndpoint => {
                return f.write_str(&path(PathDrop::StaleEndpoint { pod: 0 }))
            }
            DropKind::PolicyDenied => "policy denied",
            DropKind::InsertFailed => {
                return f.write_str(&path(PathDrop::InsertFailed { node: 0 }))
            }
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
    /// TCP connection setup: from `connect()` to ESTABLISHED at the client,
    /// SYN retransmissions included.
    pub connect: Times,
    /// TCP first-packet round trip: the answered SYN to its SYN-ACK.
    pub first_rtt: Times,
    /// The Service lookup's CPU time, per first packet that paid it
    /// (kube-proxy modelled).
    pub lookups: Times,
    /// First packets let through per server pod (Services and policy
    /// modelled).
    pub endpoints: BTreeMap<EndpointId, u64>,
    /// Packets of established TCP connections (no SYN) delivered to the
    /// flow's stacks, with their one-way latencies.
    pub established: Latency,
    /// Payload bytes delivered to the flow's stacks (TCP and UDP).
    pub bytes: u64,
}

/// One-way latencies of many packets, summed (too many to keep each).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Latency {
    /// Packets.
    pub count: u64,
    /// Their latencies, summed.
    pub sum: SimDuration,
    /// The largest.
    pub max: SimDuration,
}

impl Latency {
    fn record(&mut self, d: SimDuration) {
        self.count += 1;
        self.sum = self.sum + d;
        self.max = self.max.max(d);
    }
    /// The mean (zero when empty).
    pub fn mean(&self) -> SimDuration {
        if self.count == 0 {
            return SimDuration::ZERO;
        }
        SimDuration::from_nanos(self.sum.as_nanos() / self.count)
    }
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
    /// All of them added up.
    pub fn sum(&self) -> SimDuration {
        self.0.iter().fold(SimDuration::ZERO, |a, &d| a + d)
    }
    /// The mean (zero when empty).
    pub fn mean(&self) -> SimDuration {
        if self.0.is_empty() {
            return SimDuration::ZERO;
        }
        SimDuration::from_nanos(self.sum().as_nanos() / self.0.len() as u64)
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
    Service(usize),
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
    /// When the client last sent its SYN.
    syn_sent: SimTime,
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
    /// Services, conntrack and policy on the path, when modelled.
    path: Option<service::PathRt>,
    /// ClusterIP -> Service.
    service_ips: HashMap<Ipv4Addr, usize>,
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
                connect: Times::default(),
                first_rtt: Times::default(),
                lookups: Times::default(),
                endpoints: BTreeMap::new(),
                established: Latency::default(),
                bytes: 0,
            });
        }
        for (i, (at, _)) in cfg.faults.iter().enumerate() {
            engine.schedule_at(SimTime::ZERO + *at, Ev::Fault { index: i as u32 });
        }
        let pod_ips: Vec<Ipv4Addr> = stacks[..cfg.pods.len()].iter().map(|s| s.ip).collect();
        let path = service::PathRt::new(cfg, &pod_ips);
        let service_ips = cfg
            .services
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.ip, i))
            .collect();
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
            path,
            service_ips,
        }
    }

    fn finish(mut self) -> NetOutput {
        self.totals.in_flight = self.packets.iter().filter(|p| p.is_some()).count() as u64;
        for f in &mut self.flows {
            f.times.sort();
            f.connect.sort();
            f.first_rtt.sort();
            f.lookups.sort();
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
}

#[cfg(test)]
mod tests;
