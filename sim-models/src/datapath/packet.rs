//! # Packets: headers, sizes, DF bit, protocol
//!
//! ## Scope
//! One IPv4 packet as the simulator carries it: the inner IP header (source,
//! destination, DF bit, TTL), one transport header (TCP with its options,
//! UDP, or ICMP), a payload length (the bytes themselves are not kept; the
//! pcap writer fills them with zeros), and at most one encapsulation added
//! by a CNI (VXLAN, IP-in-IP or WireGuard). Every header is counted in the
//! sizes, so MTU checks see what the wire sees.
//!
//! Limitations: IPv4 only; no IP options; TCP options are the ones Linux
//! sends by default (MSS, SACK-permitted, timestamps, window scale on SYNs;
//! timestamps on every other segment); SACK blocks are not carried.
//!
//! ## Parameters (header sizes, each from its RFC)
//! Listed in docs/calibration.md, row `pkt-header-sizes`.
//!
//! | header | bytes | source |
//! |---|---|---|
//! | Ethernet II | 14 | IEEE 802.3 (not counted against the MTU) |
//! | IPv4 | 20 | RFC 791, no options |
//! | TCP | 20 | RFC 9293 |
//! | TCP options on a Linux SYN | 20 | MSS 4 + SACK-permitted 2 + timestamps 10 + NOP 1 + window scale 3 (tcp_options_write, net/ipv4/tcp_output.c) |
//! | TCP timestamps on other segments | 12 | NOP NOP + timestamps 10 (RFC 7323; Linux tcp_timestamps=1) |
//! | UDP | 8 | RFC 768 |
//! | ICMP | 8 | RFC 792 |
//! | VXLAN | 8 (+ outer IPv4 20, UDP 8, inner Ethernet 14 = 50) | RFC 7348; docs/calibration.md, row `pkt-encap-overhead`: VXLAN 50 B |
//! | IP-in-IP | outer IPv4 20 | RFC 2003; docs/calibration.md, row `pkt-encap-overhead`: IPIP 20 B |
//! | WireGuard | outer IPv4 20 + UDP 8 + data header 16 + Poly1305 tag 16 = 60 | WireGuard paper §5.4.6; docs/calibration.md, row `pkt-encap-overhead`: WG 60 B |
//!
//! An ICMP error quotes as much of the offending packet as fits in 576
//! bytes (RFC 1812 §4.3.2.3; Linux `icmp_send`).
//!
//! ## What it emits
//! Sizes ([`Packet::ip_len`], [`Packet::frame_len`]) and a one-line summary
//! in tcpdump's words ([`Packet::summary`]).
//!
//! ## Validation
//! Unit tests pin every size against the RFC figures and the encapsulation
//! overheads against the Calico figures (validation: the overheads are
//! summed from the header sizes, docs/calibration.md, rows `pkt-header-sizes`
//! and `pkt-encap-overhead`).

use sim_core::SimTime;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

pub use crate::protocol::Protocol;

/// Ethernet II header \[bytes\]; frames carry it, MTUs do not count it.
pub const ETHERNET_HEADER: u32 = 14;
/// IPv4 header without options \[bytes\].
pub const IPV4_HEADER: u32 = 20;
/// TCP header without options \[bytes\].
pub const TCP_HEADER: u32 = 20;
/// TCP options Linux puts on a SYN \[bytes\].
pub const TCP_SYN_OPTIONS: u32 = 20;
/// TCP timestamp option with its padding, on every non-SYN segment \[bytes\].
pub const TCP_TIMESTAMP_OPTION: u32 = 12;
/// UDP header \[bytes\].
pub const UDP_HEADER: u32 = 8;
/// ICMP header \[bytes\].
pub const ICMP_HEADER: u32 = 8;
/// VXLAN header \[bytes\].
pub const VXLAN_HEADER: u32 = 8;
/// WireGuard data message header (type, receiver, counter) \[bytes\].
pub const WIREGUARD_HEADER: u32 = 16;
/// WireGuard's Poly1305 authentication tag \[bytes\].
pub const WIREGUARD_TAG: u32 = 16;
/// Largest ICMP error datagram (RFC 1812 §4.3.2.3) \[bytes\].
pub const ICMP_ERROR_MAX: u32 = 576;
/// VXLAN's IANA UDP port (RFC 7348).
pub const VXLAN_PORT: u16 = 4789;
/// WireGuard's customary UDP port.
pub const WIREGUARD_PORT: u16 = 51820;

/// TCP flags (the bits of the header's flags byte).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// FIN.
    pub const FIN: TcpFlags = TcpFlags(0x01);
    /// SYN.
    pub const SYN: TcpFlags = TcpFlags(0x02);
    /// RST.
    pub const RST: TcpFlags = TcpFlags(0x04);
    /// PSH.
    pub const PSH: TcpFlags = TcpFlags(0x08);
    /// ACK.
    pub const ACK: TcpFlags = TcpFlags(0x10);

    /// Whether every bit of `other` is set.
    pub fn has(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }
    /// Both sets of bits.
    pub fn with(self, other: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | other.0)
    }
    /// As hubble prints them: `SYN, ACK`.
    pub fn names(self) -> String {
        let mut v = Vec::new();
        for (f, n) in [
            (TcpFlags::SYN, "SYN"),
            (TcpFlags::FIN, "FIN"),
            (TcpFlags::RST, "RST"),
            (TcpFlags::PSH, "PSH"),
            (TcpFlags::ACK, "ACK"),
        ] {
            if self.has(f) {
                v.push(n);
            }
        }
        v.join(", ")
    }
}

/// The first bytes of a packet an ICMP error refers to: enough to find the
/// socket it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quote {
    /// Source of the original packet.
    pub src: Ipv4Addr,
    /// Destination of the original packet.
    pub dst: Ipv4Addr,
    /// Its protocol.
    pub protocol: Protocol,
    /// Its source port (ICMP: the echo identifier).
    pub sport: u16,
    /// Its destination port (ICMP: 0).
    pub dport: u16,
    /// Bytes of it quoted (its IP length, capped so the error fits 576).
    pub quoted: u32,
}

/// ICMP messages the data path produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Icmp {
    /// Echo request (type 8), as `ping` sends it.
    EchoRequest {
        /// Identifier.
        id: u16,
        /// Sequence number.
        seq: u16,
        /// Data bytes after the ICMP header (`ping -s`).
        payload: u32,
    },
    /// Echo reply (type 0).
    EchoReply {
        /// Identifier.
        id: u16,
        /// Sequence number.
        seq: u16,
        /// Data bytes.
        payload: u32,
    },
    /// Destination unreachable, fragmentation needed and DF set (type 3
    /// code 4), with the next-hop MTU (RFC 1191).
    FragNeeded {
        /// MTU of the hop that could not forward \[bytes\].
        mtu: u32,
        /// The packet it refers to.
        quote: Quote,
    },
}

impl Icmp {
    /// ICMP (type, code).
    pub fn type_code(&self) -> (u8, u8) {
        match self {
            Icmp::EchoRequest { .. } => (8, 0),
            Icmp::EchoReply { .. } => (0, 0),
            Icmp::FragNeeded { .. } => (3, 4),
        }
    }
    /// Bytes after the ICMP header.
    pub fn body_len(&self) -> u32 {
        match self {
            Icmp::EchoRequest { payload, .. } | Icmp::EchoReply { payload, .. } => *payload,
            Icmp::FragNeeded { quote, .. } => quote.quoted,
        }
    }
}

/// The transport header and payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// A TCP segment.
    Tcp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Sequence number (relative to the initial one, SYN = 0).
        seq: u64,
        /// Acknowledgement number (relative).
        ack: u64,
        /// Flags.
        flags: TcpFlags,
        /// MSS option (SYN and SYN-ACK only) \[bytes\].
        mss: Option<u32>,
        /// Payload \[bytes\].
        payload: u32,
        /// Window field (scaled by the sender's window scale except on SYNs).
        win: u16,
        /// Window-scale option (SYN and SYN-ACK only).
        wscale: Option<u8>,
        /// Timestamp option: TSval and TSecr \[ms\].
        ts: (u32, u32),
    },
    /// A UDP datagram.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Payload \[bytes\].
        payload: u32,
    },
    /// An ICMP message.
    Icmp(Icmp),
}

/// Encapsulations CNIs add between nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EncapKind {
    /// VXLAN over UDP 4789 (flannel vxlan, Calico VXLAN, Cilium tunnel).
    Vxlan,
    /// IP-in-IP (Calico IPIP).
    Ipip,
    /// WireGuard (Calico/Cilium encryption).
    Wireguard,
}

impl EncapKind {
    /// Bytes added to the inner IP packet, counted against the underlay MTU
    /// (docs/calibration.md, row `pkt-encap-overhead`, H).
    pub fn overhead(self) -> u32 {
        match self {
            EncapKind::Vxlan => IPV4_HEADER + UDP_HEADER + VXLAN_HEADER + ETHERNET_HEADER,
            EncapKind::Ipip => IPV4_HEADER,
            EncapKind::Wireguard => IPV4_HEADER + UDP_HEADER + WIREGUARD_HEADER + WIREGUARD_TAG,
        }
    }
    /// Name as `ip -d link` shows the device kind.
    pub fn name(self) -> &'static str {
        match self {
            EncapKind::Vxlan => "vxlan",
            EncapKind::Ipip => "ipip",
            EncapKind::Wireguard => "wireguard",
        }
    }
}

/// An outer header added by a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Encap {
    /// Which encapsulation.
    pub kind: EncapKind,
    /// Outer source: the sending node.
    pub src: Ipv4Addr,
    /// Outer destination: the receiving node.
    pub dst: Ipv4Addr,
}

/// One packet in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Unique per run, in creation order (hubble's trace follows it).
    pub id: u64,
    /// Inner source.
    pub src: Ipv4Addr,
    /// Inner destination.
    pub dst: Ipv4Addr,
    /// Don't Fragment.
    pub df: bool,
    /// Time to live.
    pub ttl: u8,
    /// Transport header and payload.
    pub transport: Transport,
    /// Outer header, while between nodes.
    pub encap: Option<Encap>,
    /// When the packet was created.
    pub born: SimTime,
    /// What the application asked for (a request names the response size
    /// it wants, as a URL would); not part of any header.
    pub app_tag: u32,
}

impl Packet {
    /// The transport protocol.
    pub fn protocol(&self) -> Protocol {
        match self.transport {
            Transport::Tcp { .. } => Protocol::Tcp,
            Transport::Udp { .. } => Protocol::Udp,
            Transport::Icmp(_) => Protocol::Icmp,
        }
    }

    /// Transport header bytes, options included.
    pub fn transport_header_len(&self) -> u32 {
        match self.transport {
            Transport::Tcp { flags, .. } => {
                if flags.has(TcpFlags::SYN) {
                    TCP_HEADER + TCP_SYN_OPTIONS
                } else if flags.has(TcpFlags::RST) {
                    TCP_HEADER
                } else {
                    TCP_HEADER + TCP_TIMESTAMP_OPTION
                }
            }
            Transport::Udp { .. } => UDP_HEADER,
            Transport::Icmp(_) => ICMP_HEADER,
        }
    }

    /// Bytes after the transport header.
    pub fn payload_len(&self) -> u32 {
        match self.transport {
            Transport::Tcp { payload, .. } | Transport::Udp { payload, .. } => payload,
            Transport::Icmp(m) => m.body_len(),
        }
    }

    /// Total length of the inner IP packet \[bytes\].
    pub fn inner_len(&self) -> u32 {
        IPV4_HEADER + self.transport_header_len() + self.payload_len()
    }

    /// IP length on the wire now, encapsulation included: what an MTU is
    /// checked against \[bytes\].
    pub fn ip_len(&self) -> u32 {
        self.inner_len() + self.encap.map_or(0, |e| e.kind.overhead())
    }

    /// Ethernet frame length (no FCS) \[bytes\].
    pub fn frame_len(&self) -> u32 {
        self.ip_len() + ETHERNET_HEADER
    }

    /// The quote an ICMP error about this packet carries.
    pub fn quote(&self) -> Quote {
        let (sport, dport) = match self.transport {
            Transport::Tcp { sport, dport, .. } | Transport::Udp { sport, dport, .. } => {
                (sport, dport)
            }
            Transport::Icmp(Icmp::EchoRequest { id, .. } | Icmp::EchoReply { id, .. }) => (id, 0),
            Transport::Icmp(Icmp::FragNeeded { .. }) => (0, 0),
        };
        Quote {
            src: self.src,
            dst: self.dst,
            protocol: self.protocol(),
            sport,
            dport,
            quoted: self
                .inner_len()
                .min(ICMP_ERROR_MAX - IPV4_HEADER - ICMP_HEADER),
        }
    }

    /// One line in tcpdump's words: `10.0.0.1.40000 > 10.0.0.2.8080: Flags [S], seq 0, length 0`.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        if let Some(e) = self.encap {
            let _ = write!(s, "{} > {}: {}: ", e.src, e.dst, e.kind.name());
        }
        match self.transport {
            Transport::Tcp {
                sport,
                dport,
                seq,
                ack,
                flags,
                mss,
                payload,
                ..
            } => {
                let _ = write!(
                    s,
                    "{}.{sport} > {}.{dport}: TCP [{}] seq {seq}",
                    self.src,
                    self.dst,
                    flags.names()
                );
                if flags.has(TcpFlags::ACK) {
                    let _ = write!(s, " ack {ack}");
                }
                if let Some(m) = mss {
                    let _ = write!(s, " mss {m}");
                }
                let _ = write!(s, " length {payload}");
            }
            Transport::Udp {
                sport,
                dport,
                payload,
            } => {
                let _ = write!(
                    s,
                    "{}.{sport} > {}.{dport}: UDP length {payload}",
                    self.src, self.dst
                );
            }
            Transport::Icmp(m) => {
                let _ = write!(s, "{} > {}: ICMP ", self.src, self.dst);
                let _ = match m {
                    Icmp::EchoRequest { id, seq, payload } => {
                        write!(s, "echo request id {id} seq {seq} length {payload}")
                    }
                    Icmp::EchoReply { id, seq, payload } => {
                        write!(s, "echo reply id {id} seq {seq} length {payload}")
                    }
                    Icmp::FragNeeded { mtu, quote } => {
                        write!(s, "{} unreachable - need to frag (mtu {mtu})", quote.dst)
                    }
                };
            }
        }
        let _ = write!(
            s,
            " (ip len {}{})",
            self.ip_len(),
            if self.df { ", DF" } else { "" }
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(flags: TcpFlags, payload: u32) -> Packet {
        Packet {
            id: 1,
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(10, 0, 0, 2),
            df: true,
            ttl: 64,
            transport: Transport::Tcp {
                sport: 40000,
                dport: 8080,
                seq: 0,
                ack: 0,
                flags,
                mss: None,
                payload,
                win: 502,
                wscale: None,
                ts: (0, 0),
            },
            encap: None,
            born: SimTime::ZERO,
            app_tag: 0,
        }
    }

    #[test]
    fn every_header_is_counted() {
        // A Linux SYN is 60 bytes of IP (20 + 20 + 20 options).
        assert_eq!(tcp(TcpFlags::SYN, 0).ip_len(), 60);
        // A full data segment on a 1500 MTU carries 1448 bytes with timestamps.
        assert_eq!(tcp(TcpFlags::ACK, 1448).ip_len(), 1500);
        assert_eq!(tcp(TcpFlags::ACK, 1448).frame_len(), 1514);
        let mut p = tcp(TcpFlags::ACK, 0);
        p.transport = Transport::Udp {
            sport: 1,
            dport: 2,
            payload: 1472,
        };
        assert_eq!(p.ip_len(), 1500);
        p.transport = Transport::Icmp(Icmp::EchoRequest {
            id: 1,
            seq: 1,
            payload: 1472,
        });
        assert_eq!(p.ip_len(), 1500, "ping -s 1472 fills a 1500 MTU");
    }

    #[test]
    fn encapsulation_overheads_match_calico_docs() {
        // Validation, docs/calibration.md, row `pkt-encap-overhead`: IPIP 20 B,
        // VXLAN 50 B, WireGuard 60 B (IPv4).
        assert_eq!(EncapKind::Ipip.overhead(), 20);
        assert_eq!(EncapKind::Vxlan.overhead(), 50);
        assert_eq!(EncapKind::Wireguard.overhead(), 60);
        let mut p = tcp(TcpFlags::ACK, 1398);
        p.encap = Some(Encap {
            kind: EncapKind::Vxlan,
            src: Ipv4Addr::new(10, 0, 0, 10),
            dst: Ipv4Addr::new(10, 0, 0, 11),
        });
        assert_eq!(p.inner_len(), 1450);
        assert_eq!(p.ip_len(), 1500);
    }

    #[test]
    fn icmp_errors_quote_at_most_576_bytes() {
        let big = tcp(TcpFlags::ACK, 8000);
        assert_eq!(big.quote().quoted, 548);
        let small = tcp(TcpFlags::SYN, 0);
        assert_eq!(small.quote().quoted, 60);
    }

    #[test]
    fn summary_reads_like_tcpdump() {
        let p = tcp(TcpFlags::SYN.with(TcpFlags::ACK), 0);
        assert_eq!(
            p.summary(),
            "10.0.0.1.40000 > 10.0.0.2.8080: TCP [SYN, ACK] seq 0 ack 0 length 0 (ip len 60, DF)"
        );
    }
}
