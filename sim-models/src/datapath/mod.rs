//! # The packet-level data path
//!
//! Packets cross the cluster hop by hop, so that MTU, encapsulation and
//! routing outages can be replayed and one packet followed from its send to
//! its delivery or its named drop. Packet-level because these mechanisms act
//! per packet (an MTU drops the 1500-byte segment and lets the SYN through);
//! the request-level [`crate::cluster`] run covers scheduling, IPAM and
//! application load.
//!
//! - [`packet`]: headers and their sizes, DF, protocols, encapsulations;
//! - [`link`]: latency, bandwidth, MTU, finite queues;
//! - [`cni`]: the CNI configurations users name, their overheads and MTUs;
//! - [`tcp`]: the TCP state machine (handshake, RTO, PMTU, MTU probing);
//! - [`network`]: the topology, routing, the stacks, Services and
//!   NetworkPolicy on the path (kube-proxy DNAT at the client's node), and
//!   the run;
//! - [`pcap`]: the packets as a capture file for tcpdump and Wireshark.

pub mod cni;
pub mod link;
pub mod network;
pub mod packet;
pub mod pcap;
pub mod tcp;
