//! The stacks of pods and hosts: TCP, UDP, ICMP echo, and the attempts.

use super::{ConnEntry, Dest, DropKind, EndpointId, Ev, FlowKind, Sim, L2};
use crate::datapath::packet::{Icmp, Packet, Protocol, TcpFlags, Transport, IPV4_HEADER};
use crate::datapath::tcp::{Conn, Role, Seg, State, TcpOut, MSS_HEADERS};
use sim_core::SimDuration;
use std::net::Ipv4Addr;

impl Sim<'_> {
    pub(super) fn pmtu_to(&self, ep: EndpointId, dst: Ipv4Addr) -> u32 {
        let s = &self.stacks[ep];
        s.pmtu.get(&dst).copied().unwrap_or(s.mtu).min(s.mtu)
    }

    pub(super) fn send(&mut self, ep: EndpointId, p: Packet) {
        let slot = self.alloc(p);
        let out = self.stacks[ep].out;
        if p.ip_len() > self.links[out as usize].spec.mtu {
            let name = self.stacks[ep].name.clone();
            self.drop_packet(slot, DropKind::MessageTooLong, name, String::new());
            return;
        }
        self.transmit(slot, out, SimDuration::ZERO, L2::None, "from-endpoint");
    }

    pub(super) fn deliver(&mut self, ep: EndpointId, slot: u32) {
        let p = self.take(slot);
        self.totals.delivered += 1;
        if self.rec.trace {
            let name = self.stacks[ep].name.clone();
            self.trace_line(&p, &format!("to-stack {name}"), "DELIVERED");
        }
        let now = self.engine.now();
        if let Some(att) = self.attempts.get(p.app_tag as usize) {
            let fr = &mut self.flows[att.flow];
            match p.transport {
                Transport::Tcp { flags, payload, .. } => {
                    fr.bytes += u64::from(payload);
                    if !flags.has(TcpFlags::SYN) {
                        fr.established.record(now - p.born);
                    }
                }
                Transport::Udp { payload, .. } => fr.bytes += u64::from(payload),
                Transport::Icmp(_) => {}
            }
        }
        match p.transport {
            Transport::Tcp {
                sport,
                dport,
                seq,
                ack,
                flags,
                mss,
                payload,
                win,
                wscale,
                ts,
            } => {
                let seg = Seg {
                    seq,
                    ack,
                    flags,
                    mss,
                    payload,
                    win,
                    wscale,
                    ts,
                };
                let key = (ep, dport, p.src, sport);
                if let Some(&c) = self.conn_index.get(&key) {
                    let mut out = Vec::new();
                    self.conns[c as usize].conn.on_segment(now, seg, &mut out);
                    self.apply_tcp(c, out);
                } else if flags == TcpFlags::SYN {
                    let mut out = Vec::new();
                    let pmtu = self.pmtu_to(ep, p.src);
                    let conn = Conn::accept(self.stacks[ep].tcp, pmtu, seg, now, &mut out);
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
                        syn_sent: now,
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
                            self.conns[c as usize].conn.on_pmtu(mtu, now, &mut out);
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

    pub(super) fn apply_tcp(&mut self, c: u32, out: Vec<TcpOut>) {
        let mut work = out;
        while !work.is_empty() {
            let mut next = Vec::new();
            for o in work {
                let now = self.engine.now();
                let e = &mut self.conns[c as usize];
                match o {
                    TcpOut::Segment(seg) => {
                        let (ep, lport, rip, rport, tag) = (e.ep, e.lport, e.rip, e.rport, e.tag);
                        if seg.flags.has(TcpFlags::SYN) && e.conn.role == Role::Client {
                            e.syn_sent = now;
                        }
                        let t = Transport::Tcp {
                            sport: lport,
                            dport: rport,
                            seq: seg.seq,
                            ack: seg.ack,
                            flags: seg.flags,
                            mss: seg.mss,
                            payload: seg.payload,
                            win: seg.win,
                            wscale: seg.wscale,
                            ts: seg.ts,
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
                            let fr = &mut self.flows[self.attempts[a].flow];
                            fr.connect.record(now - self.attempts[a].start);
                            fr.first_rtt.record(now - e.syn_sent);
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

    pub(super) fn start(&mut self, a: usize) {
        let now = self.engine.now();
        let att = &self.attempts[a];
        let f = &self.cfg.flows[att.flow];
        let (from, to, size) = (f.from, f.to, att.size);
        self.flows[att.flow].attempts += 1;
        self.engine
            .schedule_in(f.timeout, Ev::Deadline { attempt: a as u32 });
        let dst = match to {
            Dest::Endpoint(e) => self.stacks[e].ip,
            Dest::Service(s) => self.cfg.services.services[s].ip,
        };
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
                    syn_sent: now,
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

    pub(super) fn finish_attempt(&mut self, a: usize) -> bool {
        let att = &mut self.attempts[a];
        if att.done {
            return false;
        }
        att.done = true;
        true
    }

    pub(super) fn succeed(&mut self, a: usize) {
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

    pub(super) fn fail(&mut self, a: usize, why: String) {
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

    pub(super) fn deadline(&mut self, a: usize) {
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
                let now = self.engine.now();
                self.conns[c].conn.abort(now, &mut out);
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
