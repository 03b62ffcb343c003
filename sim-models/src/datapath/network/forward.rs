//! Packets on links and the devices that forward them.

use super::{Addr, Captured, Dev, DropKind, Ev, Fault, Sim, L2, MAX_NOTES};
use crate::datapath::cni::Routing;
use crate::datapath::packet::{
    Encap, EncapKind, Icmp, Packet, Protocol, TcpFlags, Transport, ICMP_ERROR_MAX, IPV4_HEADER,
};
use sim_core::SimDuration;
use std::net::Ipv4Addr;

impl Sim<'_> {
    pub(super) fn alloc(&mut self, p: Packet) -> u32 {
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

    pub(super) fn take(&mut self, slot: u32) -> Packet {
        self.free.push(slot);
        self.packets[slot as usize]
            .take()
            .map(|(p, _)| p)
            .expect("a live slot")
    }

    pub(super) fn pkt(&self, slot: u32) -> &Packet {
        &self.packets[slot as usize].as_ref().expect("a live slot").0
    }

    pub(super) fn new_packet(
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

    pub(super) fn trace_line(&mut self, p: &Packet, point: &str, verdict: &str) {
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

    pub(super) fn drop_packet(&mut self, slot: u32, kind: DropKind, at: String, detail: String) {
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

    pub(super) fn note(&mut self, text: String) {
        if self.notes.len() < MAX_NOTES {
            self.notes.push((self.engine.now(), text));
        }
    }

    /// Puts a packet on a link after `delay` of processing.
    pub(super) fn transmit(
        &mut self,
        slot: u32,
        link: u32,
        delay: SimDuration,
        l2: L2,
        point: &str,
    ) {
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
    pub(super) fn forward(
        &mut self,
        dev: Dev,
        slot: u32,
        link: u32,
        delay: SimDuration,
        l2: L2,
        point: &str,
    ) {
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

    pub(super) fn send_frag_needed(&mut self, dev: Dev, orig: &Packet, mtu: u32) {
        if matches!(orig.transport, Transport::Icmp(Icmp::FragNeeded { .. })) {
            return; // never an ICMP error about an ICMP error (RFC 1122 3.2.2)
        }
        let mut quote = orig.quote();
        quote.quoted = quote.quoted.min(ICMP_ERROR_MAX - IPV4_HEADER - 8);
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

    pub(super) fn handle(&mut self, ev: Ev) {
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

    pub(super) fn fault(&mut self, f: Fault) {
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

    pub(super) fn arrive(&mut self, slot: u32, link: u32) {
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
                    // From one of its pods: the connection path first.
                    if let Some(extra) = self.path_out(n, slot) {
                        let p = *self.pkt(slot);
                        self.route_node(n, slot, &p, extra);
                    }
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

    pub(super) fn clamp_mss(&mut self, s: usize, slot: u32) {
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

    pub(super) fn node_from_fabric(&mut self, n: usize, slot: u32) {
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
                    self.path_in(slot);
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
                self.path_in(slot);
                self.forward(Dev::Node(n), slot, link, cost, L2::None, "to-endpoint");
            }
            _ => self.drop_packet(slot, DropKind::NoRoute, name, format!(" ({})", p.dst)),
        }
    }

    /// Routes a packet at a device (after any ingress processing).
    pub(super) fn route(&mut self, dev: Dev, slot: u32) {
        let p = *self.pkt(slot);
        match dev {
            Dev::Node(n) => self.route_node(n, slot, &p, SimDuration::ZERO),
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

    /// Routes at node `n`, after `extra` processing (the Service lookup
    /// of a first packet) on top of the CNI's.
    pub(super) fn route_node(&mut self, n: usize, slot: u32, p: &Packet, extra: SimDuration) {
        let cni = self.cfg.cni;
        let dev = Dev::Node(n);
        let native = cni.node_cost(false) + extra;
        let up = self.node_up[n];
        match self.classify(p.dst) {
            Addr::Pod { node, ep } if node == n => match ep {
                Some(ep) => {
                    let link = self.pod_down[ep];
                    self.path_in(slot);
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
                    let cost = cni.node_cost(true) + extra;
                    self.forward(dev, slot, up, cost, L2::Node(m), point);
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

    pub(super) fn fabric(&mut self, slot: u32) {
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
}
