//! # pcap: the simulated packets as a capture file
//!
//! ## Scope
//! Turns [`Captured`] packets (one per interface a packet left, in the
//! order of the times they left) into Ethernet frames and writes them as a
//! classic libpcap file (LINKTYPE_ETHERNET, microsecond timestamps from
//! the start of the run), which tcpdump, Wireshark and tshark read. Between
//! nodes the frame carries the CNI's encapsulation as the wire does: an
//! outer Ethernet/IPv4/UDP 4789/VXLAN header around the inner Ethernet
//! frame, an outer IPv4 header with protocol 4 for IP-in-IP, an outer UDP
//! 51820 with a WireGuard data header and tag for WireGuard. Headers are
//! built by `etherparse` (checksums included); the file is written by
//! `pcap-file`. Payload bytes are zeros (the simulator keeps lengths, not
//! contents); an ICMP error quotes a rebuilt header of the packet it is
//! about. MAC addresses are synthetic: `02:00` followed by the IPv4 address
//! of the hop's sender and receiver.
//!
//! ## What it emits
//! Bytes. Every frame is exactly [`Packet::frame_len`] long, so the pcap
//! shows the sizes the model used.
//!
//! ## Validation
//! Tests build every packet kind and check its length against the model's
//! and that `etherparse` parses it back (VXLAN inner frame included); the
//! CLI test writes a scenario's pcap and reads it back with `pcap-file`.

use super::network::Captured;
use super::packet::{
    EncapKind, Icmp, Packet, Protocol, TcpFlags, Transport, VXLAN_PORT, WIREGUARD_HEADER,
    WIREGUARD_PORT, WIREGUARD_TAG,
};
use etherparse::{
    icmpv4::DestUnreachableHeader, IcmpEchoHeader, Icmpv4Type, IpHeaders, IpNumber, Ipv4Header,
    PacketBuilder, TcpOptionElement,
};
use pcap_file::pcap::{PcapPacket, PcapWriter};
use std::net::Ipv4Addr;
use std::time::Duration;

fn mac(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x00, o[0], o[1], o[2], o[3]]
}

fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, df: bool, ttl: u8) -> IpHeaders {
    let mut h = Ipv4Header::new(0, ttl, IpNumber::UDP, src.octets(), dst.octets())
        .expect("a zero payload length fits");
    h.dont_fragment = df;
    IpHeaders::Ipv4(h, Default::default())
}

fn zeros(n: u32) -> Vec<u8> {
    vec![0; n as usize]
}

/// The inner IP packet (no Ethernet header) of `p`.
fn inner_ip(p: &Packet) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(p.inner_len() as usize);
    let ip = PacketBuilder::ip(ipv4(p.src, p.dst, p.df, p.ttl));
    let err = |e: etherparse::err::packet::BuildWriteError| e.to_string();
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
            let mut b = ip.tcp(sport, dport, seq as u32, win);
            if flags.has(TcpFlags::SYN) {
                b = b.syn();
            }
            if flags.has(TcpFlags::RST) {
                b = b.rst();
            }
            if flags.has(TcpFlags::PSH) {
                b = b.psh();
            }
            if flags.has(TcpFlags::ACK) {
                b = b.ack(ack as u32);
            }
            let ts = TcpOptionElement::Timestamp(ts.0, ts.1);
            let opts: Vec<TcpOptionElement> = if flags.has(TcpFlags::SYN) {
                vec![
                    TcpOptionElement::MaximumSegmentSize(mss.unwrap_or(536).min(65_535) as u16),
                    TcpOptionElement::SelectiveAcknowledgementPermitted,
                    ts,
                    TcpOptionElement::Noop,
                    TcpOptionElement::WindowScale(wscale.unwrap_or(0)),
                ]
            } else if flags.has(TcpFlags::RST) {
                Vec::new()
            } else {
                vec![TcpOptionElement::Noop, TcpOptionElement::Noop, ts]
            };
            let b = b.options(&opts).map_err(|e| e.to_string())?;
            b.write(&mut out, &zeros(payload)).map_err(err)?;
        }
        Transport::Udp {
            sport,
            dport,
            payload,
        } => ip
            .udp(sport, dport)
            .write(&mut out, &zeros(payload))
            .map_err(err)?,
        Transport::Icmp(m) => {
            let (ty, body) = match m {
                Icmp::EchoRequest { id, seq, payload } => (
                    Icmpv4Type::EchoRequest(IcmpEchoHeader { id, seq }),
                    zeros(payload),
                ),
                Icmp::EchoReply { id, seq, payload } => (
                    Icmpv4Type::EchoReply(IcmpEchoHeader { id, seq }),
                    zeros(payload),
                ),
                Icmp::FragNeeded { mtu, quote } => {
                    // Rebuild the quoted packet's headers, as much as was quoted.
                    let transport = match quote.protocol {
                        Protocol::Tcp => Transport::Tcp {
                            sport: quote.sport,
                            dport: quote.dport,
                            seq: 0,
                            ack: 0,
                            flags: TcpFlags::ACK,
                            mss: None,
                            payload: 0,
                            win: 0,
                            wscale: None,
                            ts: (0, 0),
                        },
                        Protocol::Udp => Transport::Udp {
                            sport: quote.sport,
                            dport: quote.dport,
                            payload: 0,
                        },
                        Protocol::Icmp => Transport::Icmp(Icmp::EchoRequest {
                            id: quote.sport,
                            seq: 0,
                            payload: 0,
                        }),
                        Protocol::Sctp => return Err("packets carry no SCTP to quote".into()),
                    };
                    let orig = Packet {
                        src: quote.src,
                        dst: quote.dst,
                        transport,
                        encap: None,
                        df: true,
                        ..*p
                    };
                    let mut q = inner_ip(&orig)?;
                    q.resize(quote.quoted as usize, 0);
                    (
                        Icmpv4Type::DestinationUnreachable(
                            DestUnreachableHeader::FragmentationNeeded {
                                next_hop_mtu: mtu.min(65_535) as u16,
                            },
                        ),
                        q,
                    )
                }
            };
            ip.icmpv4(ty).write(&mut out, &body).map_err(err)?;
        }
    }
    Ok(out)
}

/// `p` as an Ethernet frame, encapsulation included.
pub fn frame(p: &Packet) -> Result<Vec<u8>, String> {
    let inner = inner_ip(p)?;
    let mut out = Vec::with_capacity(p.frame_len() as usize);
    let err = |e: etherparse::err::packet::BuildWriteError| e.to_string();
    match p.encap {
        None => {
            out.extend_from_slice(&mac(p.dst));
            out.extend_from_slice(&mac(p.src));
            out.extend_from_slice(&0x0800u16.to_be_bytes());
            out.extend_from_slice(&inner);
        }
        Some(e) => {
            let outer = PacketBuilder::ethernet2(mac(e.src), mac(e.dst)).ip(ipv4(
                e.src,
                e.dst,
                e.kind == EncapKind::Ipip && p.df,
                64,
            ));
            match e.kind {
                EncapKind::Vxlan => {
                    // VXLAN header (flags I, VNI 4096 as Calico uses), then the inner frame.
                    let mut body = vec![0x08, 0, 0, 0, 0x00, 0x10, 0x00, 0];
                    body.extend_from_slice(&mac(p.dst));
                    body.extend_from_slice(&mac(p.src));
                    body.extend_from_slice(&0x0800u16.to_be_bytes());
                    body.extend_from_slice(&inner);
                    outer
                        .udp(VXLAN_PORT, VXLAN_PORT)
                        .write(&mut out, &body)
                        .map_err(err)?;
                }
                EncapKind::Ipip => outer.write(&mut out, IpNumber::IPV4, &inner).map_err(err)?,
                EncapKind::Wireguard => {
                    // Type 4 (transport data), then ciphertext of the inner packet and the tag.
                    let mut body = vec![4, 0, 0, 0];
                    body.resize((WIREGUARD_HEADER + WIREGUARD_TAG) as usize + inner.len(), 0);
                    outer
                        .udp(WIREGUARD_PORT, WIREGUARD_PORT)
                        .write(&mut out, &body)
                        .map_err(err)?;
                }
            }
        }
    }
    Ok(out)
}

/// Writes `captured` (any order; sorted by time here, ties in capture
/// order) as a pcap file.
pub fn write<W: std::io::Write>(w: W, captured: &[Captured]) -> Result<(), String> {
    let mut order: Vec<&Captured> = captured.iter().collect();
    order.sort_by_key(|c| c.time);
    let mut pw = PcapWriter::new(w).map_err(|e| e.to_string())?;
    for c in order {
        let bytes = frame(&c.packet)?;
        let ts = Duration::from_nanos(c.time.as_nanos());
        pw.write_packet(&PcapPacket::new(ts, bytes.len() as u32, &bytes))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datapath::packet::Encap;
    use crate::datapath::packet::Quote;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    use sim_core::SimTime;

    fn packets() -> Vec<Packet> {
        let base = Packet {
            id: 1,
            src: Ipv4Addr::new(10, 244, 0, 2),
            dst: Ipv4Addr::new(10, 244, 1, 2),
            df: true,
            ttl: 64,
            transport: Transport::Tcp {
                sport: 40000,
                dport: 8080,
                seq: 0,
                ack: 0,
                flags: TcpFlags::SYN,
                mss: Some(1410),
                payload: 0,
                win: 62_727,
                wscale: Some(7),
                ts: (5, 0),
            },
            encap: None,
            born: SimTime::from_nanos(5),
            app_tag: 0,
        };
        let mut v = vec![base];
        let data = Transport::Tcp {
            sport: 40000,
            dport: 8080,
            seq: 1,
            ack: 301,
            flags: TcpFlags::ACK.with(TcpFlags::PSH),
            mss: None,
            payload: 1398,
            win: 502,
            wscale: None,
            ts: (25, 5),
        };
        v.push(Packet {
            transport: data,
            ..base
        });
        v.push(Packet {
            transport: Transport::Tcp {
                sport: 1,
                dport: 2,
                seq: 9,
                ack: 0,
                flags: TcpFlags::RST,
                mss: None,
                payload: 0,
                win: 0,
                wscale: None,
                ts: (0, 0),
            },
            ..base
        });
        v.push(Packet {
            transport: Transport::Udp {
                sport: 5353,
                dport: 53,
                payload: 512,
            },
            ..base
        });
        v.push(Packet {
            transport: Transport::Icmp(Icmp::EchoRequest {
                id: 1,
                seq: 2,
                payload: 1394,
            }),
            ..base
        });
        let quote = Quote {
            src: base.dst,
            dst: base.src,
            protocol: Protocol::Tcp,
            sport: 8080,
            dport: 40000,
            quoted: 548,
        };
        v.push(Packet {
            transport: Transport::Icmp(Icmp::FragNeeded { mtu: 1500, quote }),
            df: false,
            ..base
        });
        let mut out = v.clone();
        for kind in [EncapKind::Vxlan, EncapKind::Ipip, EncapKind::Wireguard] {
            for p in &v {
                out.push(Packet {
                    encap: Some(Encap {
                        kind,
                        src: Ipv4Addr::new(172, 16, 0, 16),
                        dst: Ipv4Addr::new(172, 16, 0, 17),
                    }),
                    ..*p
                });
            }
        }
        out
    }

    #[test]
    fn frames_have_the_model_sizes_and_parse_back() {
        for p in packets() {
            let f = frame(&p).unwrap();
            assert_eq!(f.len() as u32, p.frame_len(), "{}", p.summary());
            let s = SlicedPacket::from_ethernet(&f).unwrap();
            let Some(NetSlice::Ipv4(ip)) = &s.net else {
                panic!("no IPv4: {}", p.summary())
            };
            assert_eq!(u32::from(ip.header().total_len()), p.ip_len());
            if let Some(e) = p.encap {
                assert_eq!(ip.header().destination_addr(), e.dst);
                if e.kind == EncapKind::Vxlan {
                    let Some(TransportSlice::Udp(u)) = &s.transport else {
                        panic!("VXLAN rides on UDP")
                    };
                    assert_eq!(u.destination_port(), 4789);
                    // The inner frame starts after the 8-byte VXLAN header.
                    let inner = SlicedPacket::from_ethernet(&u.payload()[8..]).unwrap();
                    let Some(NetSlice::Ipv4(i)) = &inner.net else {
                        panic!("no inner IPv4")
                    };
                    assert_eq!(i.header().destination_addr(), p.dst);
                    assert_eq!(u32::from(i.header().total_len()), p.inner_len());
                }
            } else {
                assert_eq!(ip.header().dont_fragment(), p.df);
                let proto = match &s.transport {
                    Some(TransportSlice::Tcp(_)) => Protocol::Tcp,
                    Some(TransportSlice::Udp(_)) => Protocol::Udp,
                    Some(TransportSlice::Icmpv4(_)) => Protocol::Icmp,
                    other => panic!("unexpected transport {other:?}"),
                };
                assert_eq!(proto, p.protocol(), "{}", p.summary());
            }
        }
    }
}
