//! # Services and NetworkPolicy on the packet path
//!
//! ## Scope
//! A flow may address a ClusterIP Service. Its first packet leaves the
//! client pod with the ClusterIP as destination; at the client's node it
//! runs the connection path of [`crate::path`] (the same stages as the
//! cluster run: conntrack's new entry, the kube-proxy mode's DNAT with its
//! lookup cost, the NetworkPolicy verdict, conntrack's confirmation), then
//! leaves rewritten to the chosen pod's IP and target port, so that between
//! nodes the VXLAN or IPIP header carries the pod IP. The node keeps the
//! flow's NAT (the DNAT choice keyed by its 5-tuple, as the conntrack entry
//! holds it): later packets and retransmitted SYNs are rewritten without
//! running the stages again, and replies get the reverse rewrite (pod IP
//! back to the ClusterIP) before the node hands them to the client pod; so
//! does the header an ICMP error quotes. Pod-to-pod flows run the same path
//! when NetworkPolicy or conntrack is modelled (no DNAT).
//!
//! The lookup's CPU time ([`crate::kube_proxy::FirstPacket::lookup`]) is
//! added to the client node's processing of the first packet only; the
//! request-level round-trip floor is not used (here the network is
//! simulated). A dropped first packet is dropped under a [`DropKind`] with
//! the path's own words; TCP retransmits the SYN, which runs the path
//! again.
//!
//! Random numbers (the endpoint pick, the iptables walk's spread, early
//! drop) come from streams named after what draws them (the flow's name,
//! `kube-proxy/first-packet`, `conntrack/early-drop`) under
//! [`ServiceSetup::seed`]: a run is byte-identical per seed.
//!
//! Limitations: ClusterIP Services, TCP and UDP; ICMP is not policed and a
//! ClusterIP answers no ping; kube-proxy's view is the one installed at the
//! start (no endpoint changes or syncs during a packet-level run); no SNAT;
//! the server node's conntrack table is not modelled (as in the cluster
//! run); NAT entries live as long as the run.
//!
//! ## Parameters
//! Those of the stages ([`crate::kube_proxy::KubeProxyConfig`],
//! [`crate::conntrack::ConntrackConfig`],
//! [`crate::policy_enforcement::PolicyConfig`], with their sources).
//!
//! ## What it emits
//! Per flow: first packets per server pod, the lookup CPU per first packet
//! ([`super::FlowResult`]); trace lines for the DNAT hop, the policy verdict
//! and the reverse NAT; drops under the path's [`DropKind`]s.
//!
//! ## Validation
//! Unit tests in `tests.rs` follow a Service flow across nodes (DNAT, the
//! reverse rewrite, the pcap's inner addresses) and check that a policy
//! drop is retransmitted; the cross-level test (sim-scenarios
//! `tests/cross_level.rs`) runs the same Service flow through the cluster
//! run and this path and compares the endpoint spread and the lookup-cost
//! distribution.

use super::{ip_add, Addr, DropKind, EndpointId, NetConfig, Sim, UNDERLAY};
use crate::conntrack::{ConntrackConfig, Table};
use crate::datapath::packet::{Icmp, Packet, Protocol as PacketProtocol, TcpFlags, Transport};
use crate::kube_proxy::{KubeProxy, KubeProxyConfig, Mode};
use crate::netpol::{ContainerPort, Labels, PodInfo, Protocol};
use crate::path::service::ServiceProxy;
use crate::path::{self, Client, Flow, Path, PathEnv, Target};
use crate::policy_enforcement::{Enforcer, PolicyConfig};
use crate::service::Endpoints;
use sim_core::{RngStreams, SimDuration, SimRng};
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// A ClusterIP Service.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceSpec {
    /// Name.
    pub name: String,
    /// Its ClusterIP.
    pub ip: Ipv4Addr,
    /// The Service port clients dial.
    pub port: u16,
    /// The port the pods serve on.
    pub target_port: u16,
    /// The pods it selects (all Ready from the start).
    pub endpoints: Vec<EndpointId>,
}

/// What NetworkPolicy selectors see of a pod.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodMeta {
    /// Namespace (empty: `default`).
    pub namespace: String,
    /// Labels.
    pub labels: Labels,
}

/// Services, kube-proxy, conntrack and NetworkPolicy on the path.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceSetup {
    /// The Services flows may address.
    pub services: Vec<ServiceSpec>,
    /// kube-proxy's mode and costs; `None`: the ideal data path (Ready
    /// endpoints, no lookup cost).
    pub kube_proxy: Option<KubeProxyConfig>,
    /// Every node's conntrack table, when modelled (the eBPF load balancer
    /// keeps pod flows out of it).
    pub conntrack: Option<ConntrackConfig>,
    /// NetworkPolicy, when modelled.
    pub policy: Option<PolicyConfig>,
    /// Per pod (by index; missing ones: `default`, no labels).
    pub pods: Vec<PodMeta>,
    /// Seed of the random streams.
    pub seed: u64,
}

impl ServiceSetup {
    /// Whether first packets run the connection path at all.
    pub fn is_modelled(&self) -> bool {
        !self.services.is_empty()
            || self.kube_proxy.is_some()
            || self.conntrack.is_some()
            || self.policy.is_some()
    }

    /// Whether the run draws random numbers (so seeds differ).
    pub fn draws_random(&self) -> bool {
        !self.services.is_empty() || self.conntrack.is_some()
    }

    pub(super) fn validate(&self, cfg: &NetConfig) -> Result<(), String> {
        for s in &self.services {
            let ip = s.ip;
            let o = ip.octets();
            if cfg.cluster_cidr.contains(ip)
                || (o[0] == 172 && o[1] == 16)
                || (o[0] == 192 && o[1] == 168)
            {
                return Err(format!(
                    "Service {}: ClusterIP {ip} is inside the pod, node or site addresses",
                    s.name
                ));
            }
            if s.endpoints.iter().any(|&e| e >= cfg.pods.len()) {
                return Err(format!("Service {}: endpoints are pods", s.name));
            }
        }
        let mut ips: Vec<Ipv4Addr> = self.services.iter().map(|s| s.ip).collect();
        ips.sort_unstable();
        if ips.windows(2).any(|w| w[0] == w[1]) {
            return Err("two Services share a ClusterIP".into());
        }
        Ok(())
    }
}

/// A flow's addresses, as conntrack keys it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Tuple {
    src: Ipv4Addr,
    sport: u16,
    dst: Ipv4Addr,
    dport: u16,
    udp: bool,
}

impl Tuple {
    fn of(p: &Packet) -> Option<Tuple> {
        let (sport, dport, udp) = match p.transport {
            Transport::Tcp { sport, dport, .. } => (sport, dport, false),
            Transport::Udp { sport, dport, .. } => (sport, dport, true),
            Transport::Icmp(_) => return None,
        };
        Some(Tuple {
            src: p.src,
            sport,
            dst: p.dst,
            dport,
            udp,
        })
    }
}

/// What the path reads of the packet-level network.
struct NetEnv {
    endpoints: Vec<Endpoints>,
    infos: Vec<Option<PodInfo>>,
    /// The protocol and port of the first packet on the path (after DNAT).
    port: (Protocol, u16),
}

impl PathEnv for NetEnv {
    fn endpoints(&self, service: u32) -> &Endpoints {
        &self.endpoints[service as usize]
    }
    fn pod_gone(&self, _pod: u32) -> bool {
        false
    }
    fn pod_infos(&self) -> &[Option<PodInfo>] {
        &self.infos
    }
    fn server_port(&self, _pod: u32) -> (Protocol, u16) {
        self.port
    }
}

/// The path's state during a run.
pub(super) struct PathRt {
    path: Path,
    env: NetEnv,
    /// Per flow: its endpoint picks.
    picks: Vec<SimRng>,
    /// Original direction -> the destination after DNAT (`None`: kept).
    orig: HashMap<Tuple, Option<(Ipv4Addr, u16)>>,
    /// Reply direction -> the source to restore (`None`: kept).
    reply: HashMap<Tuple, Option<(Ipv4Addr, u16)>>,
}

impl PathRt {
    /// The path of `cfg` (pods at `pod_ips`), or `None` when nothing on
    /// it is modelled.
    pub(super) fn new(cfg: &NetConfig, pod_ips: &[Ipv4Addr]) -> Option<PathRt> {
        let s = &cfg.services;
        if !s.is_modelled() {
            return None;
        }
        let rng = RngStreams::new(s.seed);
        let mut endpoints = vec![Endpoints::default(); s.services.len()];
        let mut ports: Vec<Vec<ContainerPort>> = vec![Vec::new(); cfg.pods.len()];
        for (i, svc) in s.services.iter().enumerate() {
            for &e in &svc.endpoints {
                endpoints[i].add(e as u32);
                ports[e].push(ContainerPort {
                    name: None,
                    port: svc.target_port,
                    protocol: Protocol::Tcp,
                });
            }
        }
        let kube_proxy = s.kube_proxy.as_ref().map(|k| {
            let mut kp = KubeProxy::new(k, s.services.len());
            for (i, e) in endpoints.iter().enumerate() {
                kp.install(i, e.pods());
            }
            kp
        });
        let tracks = s.kube_proxy.as_ref().is_none_or(|k| k.mode != Mode::Ebpf);
        let path = Path {
            tables: path::conntrack::Tables {
                nodes: s
                    .conntrack
                    .iter()
                    .flat_map(|c| (0..cfg.nodes).map(|_| Table::new(*c)))
                    .collect(),
                early_drop: rng.stream("conntrack/early-drop"),
            },
            conntrack: s
                .conntrack
                .filter(|_| tracks)
                .map(|_| path::conntrack::Conntrack),
            service: ServiceProxy::new(kube_proxy, rng.stream("kube-proxy/first-packet")),
            policy: s.policy.as_ref().map(Enforcer::new),
            masquerade: None,
            nat_gateway: None,
        };
        let infos = cfg
            .pods
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let meta = s.pods.get(i).cloned().unwrap_or_default();
                Some(PodInfo {
                    namespace: if meta.namespace.is_empty() {
                        "default".into()
                    } else {
                        meta.namespace
                    },
                    name: p.name.clone(),
                    labels: meta.labels,
                    ip: pod_ips[i],
                    host_ip: ip_add(UNDERLAY, 16 + p.node as u64),
                    host_network: false,
                    ports: std::mem::take(&mut ports[i]),
                })
            })
            .collect();
        let picks = cfg
            .flows
            .iter()
            .map(|f| rng.stream(&format!("flow/{}", f.name)))
            .collect();
        Some(PathRt {
            path,
            env: NetEnv {
                endpoints,
                infos,
                port: (Protocol::Tcp, 0),
            },
            picks,
            orig: HashMap::new(),
            reply: HashMap::new(),
        })
    }
}

fn set_dst(p: &mut Packet, ip: Ipv4Addr, port: u16) {
    p.dst = ip;
    if let Transport::Tcp { dport, .. } | Transport::Udp { dport, .. } = &mut p.transport {
        *dport = port;
    }
}

impl Sim<'_> {
    /// A packet from one of node `n`'s pods, before routing: a known flow
    /// follows its NAT; a new one runs the connection path. Returns the
    /// extra processing time at the node, or `None` when the path dropped
    /// the packet.
    pub(super) fn path_out(&mut self, n: usize, slot: u32) -> Option<SimDuration> {
        let Some(rt) = self.path.as_ref() else {
            return Some(SimDuration::ZERO);
        };
        let p = *self.pkt(slot);
        let Some(t) = Tuple::of(&p) else {
            return Some(SimDuration::ZERO);
        };
        if let Some(nat) = rt.orig.get(&t) {
            if let (Some((ip, port)), Some(entry)) = (*nat, self.packets[slot as usize].as_mut()) {
                set_dst(&mut entry.0, ip, port);
            }
            return Some(SimDuration::ZERO);
        }
        let first = match p.transport {
            Transport::Tcp { flags, .. } => flags == TcpFlags::SYN,
            _ => true,
        };
        if rt.reply.contains_key(&t) {
            return Some(SimDuration::ZERO);
        }
        if !first {
            if let Addr::Service(_) = self.classify(p.dst) {
                // conntrack: INVALID (no entry); kube-proxy's KUBE-FORWARD drops it.
                let name = format!("node-{} conntrack", n + 1);
                let detail = " (INVALID: no conntrack entry for this flow to the ClusterIP)".into();
                self.drop_packet(slot, DropKind::NoRoute, name, detail);
                return None;
            }
            return Some(SimDuration::ZERO);
        }
        let (to, port) = match self.classify(p.dst) {
            Addr::Service(s) => (
                Target::Service(s as u32),
                self.cfg.services.services[s].target_port,
            ),
            Addr::Pod { ep: Some(e), .. } => (Target::Pod(e as u32), t.dport),
            _ => return Some(SimDuration::ZERO),
        };
        let Addr::Pod { ep: Some(c), .. } = self.classify(p.src) else {
            return Some(SimDuration::ZERO);
        };
        let Some(fi) = self.attempts.get(p.app_tag as usize).map(|a| a.flow) else {
            return Some(SimDuration::ZERO);
        };
        let flow = Flow {
            client: Some(Client {
                pod: c as u32,
                node: Some(n as u32),
            }),
            to,
            snat: false,
        };
        let now = self.engine.now();
        let rt = self.path.as_mut().expect("checked above");
        rt.env.port = (if t.udp { Protocol::Udp } else { Protocol::Tcp }, port);
        let (trip, verdict) = rt.path.open(&flow, now, &rt.env, &mut rt.picks[fi]);
        let lookup = trip.first_packet.map_or(SimDuration::ZERO, |fp| fp.lookup);
        if trip.first_packet.is_some() {
            self.flows[fi].lookups.record(lookup);
        }
        let mode = rt.path.service.kube_proxy.as_ref().map(|k| k.config().mode);
        let policed = rt.path.policy.is_some();
        let node = n + 1;
        if let Err(drop) = verdict {
            if let Some((node, id)) = trip.ct {
                rt.path.tables.nodes[node as usize].delete(now, id);
            }
            let kind = match drop {
                path::Drop::NoEndpoints => DropKind::NoEndpoints,
                path::Drop::ConntrackFull { .. } => DropKind::ConntrackFull,
                path::Drop::StaleEndpoint { .. } => DropKind::StaleEndpoint,
                path::Drop::PolicyDenied { .. } => DropKind::PolicyDenied,
                path::Drop::InsertFailed { .. } => DropKind::InsertFailed,
                // The packet level has no NAT gateway stage (`nat_gateway`
                // is `None` above); the nearest kind, should one be added.
                path::Drop::NatGateway(_) => DropKind::NoRoute,
            };
            let text = drop.to_string();
            let detail = if text == kind.to_string() {
                String::new()
            } else {
                format!(
                    ": {}",
                    text.strip_prefix("policy denied: ").unwrap_or(&text)
                )
            };
            let hook = match kind {
                DropKind::PolicyDenied => "policy-verdict",
                DropKind::ConntrackFull | DropKind::InsertFailed => "conntrack",
                _ => "service-lookup",
            };
            self.drop_packet(slot, kind, format!("node-{node} {hook}"), detail);
            return None;
        }
        let pod = trip.pod.expect("a passed first packet has its pod") as usize;
        *self.flows[fi].endpoints.entry(pod).or_insert(0) += 1;
        let nat = match to {
            Target::Service(_) => Some((self.stacks[pod].ip, port)),
            Target::Pod(_) => None,
        };
        let (back_ip, back_port) = nat.unwrap_or((t.dst, t.dport));
        let back = Tuple {
            src: back_ip,
            sport: back_port,
            dst: t.src,
            dport: t.sport,
            udp: t.udp,
        };
        let rt = self.path.as_mut().expect("checked above");
        rt.orig.insert(t, nat);
        rt.reply.insert(back, nat.map(|_| (t.dst, t.dport)));
        if let (Some((ip, port)), Some(entry)) = (nat, self.packets[slot as usize].as_mut()) {
            set_dst(&mut entry.0, ip, port);
        }
        if self.rec.trace {
            if let Target::Service(s) = to {
                let name = match mode {
                    Some(m) => format!("kube-proxy ({})", m.name()),
                    None => "service data path".into(),
                };
                let svc = &self.cfg.services.services[s as usize];
                let verdict = format!(
                    "DNAT {}:{} -> {} {}:{port} (endpoint {} of {}, lookup {lookup})",
                    svc.ip,
                    svc.port,
                    self.stacks[pod].name,
                    self.stacks[pod].ip,
                    svc.endpoints
                        .iter()
                        .position(|&e| e == pod)
                        .map_or(0, |i| i + 1),
                    svc.endpoints.len(),
                );
                self.trace_line(&p, &format!("node-{node} {name}"), &verdict);
            }
            if policed {
                let after = *self.pkt(slot);
                self.trace_line(&after, &format!("node-{node} policy-verdict"), "ALLOWED");
            }
        }
        Some(lookup)
    }

    /// A packet about to be handed to a pod at its node: a reply of a
    /// DNATed flow gets the ClusterIP back as its source, and an ICMP error
    /// quoting a DNATed packet gets it back in the quote.
    pub(super) fn path_in(&mut self, slot: u32) {
        let Some(rt) = self.path.as_ref() else {
            return;
        };
        let p = *self.pkt(slot);
        let (key, quoted) = match p.transport {
            Transport::Icmp(Icmp::FragNeeded { quote, .. }) => {
                let sent = Tuple {
                    src: quote.dst,
                    sport: quote.dport,
                    dst: quote.src,
                    dport: quote.sport,
                    udp: quote.protocol == PacketProtocol::Udp,
                };
                (sent, true)
            }
            _ => match Tuple::of(&p) {
                Some(t) => (t, false),
                None => return,
            },
        };
        let Some(&Some((ip, port))) = rt.reply.get(&key) else {
            return;
        };
        let mut q = p;
        match &mut q.transport {
            Transport::Icmp(Icmp::FragNeeded { quote, .. }) if quoted => {
                quote.dst = ip;
                quote.dport = port;
            }
            Transport::Tcp { sport, .. } | Transport::Udp { sport, .. } => {
                q.src = ip;
                *sport = port;
                if self.rec.trace {
                    let to = self.name_of(p.dst);
                    let verdict = format!("reverse NAT {}:{} -> {ip}:{port}", p.src, key.sport);
                    self.trace_line(&p, &format!("to-endpoint {to}"), &verdict);
                }
            }
            Transport::Icmp(_) => return,
        }
        if let Some(entry) = self.packets[slot as usize].as_mut() {
            entry.0 = q;
        }
    }
}
