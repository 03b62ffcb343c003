//! # The connection path as stages
//!
//! ## Scope
//! What a Linux node does to the first packet of a new connection is an
//! ordered list of netfilter hooks. This module runs the same list for the
//! request-level cluster run ([`crate::cluster`], once per connection) and
//! for the packet-level data path ([`crate::datapath`], on each new flow's
//! first packet, whose later packets and replies follow the conntrack entry
//! and the address rewrite the stages chose):
//!
//! ```text
//! app --SYN--> [conntrack]   new entry in the client node's table (SYN_SENT)
//!                              or dropped: nf_conntrack: table full
//!          --> [service]     kube-proxy: DNAT ClusterIP -> endpoint, paying the
//!                              rule walk of the mode in force; REJECT without
//!                              endpoints; a deleted pod still programmed
//!          --> [policy]      NetworkPolicy verdict on the pod pair and port
//!          --> [masquerade]  SNAT source port for traffic that leaves the node
//!          --> [nat gateway] the cloud's NAT gateway for egress outside the VPC:
//!                              no route, gateway down, ErrorPortAllocation
//!          --> [confirm]     conntrack confirms the entry (ESTABLISHED once the
//!                              handshake ends) or drops the clash: insert_failed
//! ```
//!
//! The order is the kernel's hook order (conntrack at priority -200, nat
//! DNAT -100, filter 0, nat SNAT 100, confirm last). Each stage has one
//! interface, [`Stage::first_packet`]: it may pass, drop with a reason an
//! operator would recognise ([`Drop`]), rewrite the destination (DNAT, into
//! [`Trip::pod`]; the reply direction is rewritten back from
//! [`Trip::service`]), or add simulated delay ([`Trip::first_packet`]).
//! A stage never continues into the next attempt itself: what a drop means
//! for the client ([`Drop::client`]: refused at once, or a SYN the client
//! retransmits from an event, or silence until its timeout) is decided by
//! the caller, which schedules the follow-up on the event queue.
//!
//! Stages keep their own state (a kube-proxy's programmed endpoints, the
//! policy verdict cache, SNAT ports in flight); the conntrack tables are
//! shared by every hook as in the kernel ([`conntrack::Tables`]). What the path
//! needs to know of the cluster (Ready endpoints, which pods are gone, pod
//! labels and ports) it reads through [`PathEnv`], so the same stage code
//! serves both levels.
//!
//! ## Adding a stage
//! A new mechanism is one new file in this folder plus one config field:
//! a struct holding its state and parameters that implements [`Stage`], an
//! `Option` field on [`Path`] set from the config, and its [`Hook`] in
//! [`ORDER`] at the place the kernel (or the cloud) puts it. The smallest
//! real example is [`masquerade`]: MASQUERADE's source-port choice, which
//! only records whether the port clashed so that [`Hook::Confirm`] drops the
//! loser.
//!
//! ## Parameters
//! None of its own: each stage documents its parameters and their sources
//! ([`crate::conntrack`], [`crate::kube_proxy`], [`crate::policy_enforcement`],
//! [`crate::snat`], [`crate::nat_gateway`]).
//!
//! ## What it emits
//! A [`Trip`] (the endpoint, the conntrack entry, the first packet's cost)
//! or a [`Drop`] whose `Display` is the operator's view of it. The caller
//! turns drops into events and counters.
//!
//! ## Validation
//! Unit tests below run a flow through each drop; the cluster run's
//! conservation property and goldens cover the path in use; a cross-level
//! test (sim-scenarios `tests/cross_level.rs`) runs the same Service flow
//! through both levels and compares the endpoint spread and first-packet cost.

pub mod conntrack;
pub mod masquerade;
pub mod nat_gateway;
pub mod policy;
pub mod service;

use crate::conntrack::{CtId, Refused};
use crate::kube_proxy::FirstPacket;
use crate::netpol::{PodInfo, Protocol};
use crate::policy_enforcement::Denied;
use crate::service::Endpoints;
use sim_core::{SimRng, SimTime};
use std::fmt;

/// A new connection's first packet, as the path sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    /// The client pod and its node; `None`: a client outside the cluster
    /// (no conntrack entry on a node of the model, no policy check).
    pub client: Option<Client>,
    /// Where the packet is addressed.
    pub to: Target,
    /// The packet leaves the node through MASQUERADE (SNAT).
    pub snat: bool,
}

/// A client pod and the node its packets leave from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Client {
    /// The pod.
    pub pod: u32,
    /// Its node; `None` while it has none (no conntrack table to pass).
    pub node: Option<u32>,
}

/// The destination address of a first packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A Service's ClusterIP (index of the Service): kube-proxy DNATs it.
    Service(u32),
    /// A pod IP (headless answers, client-side balancing).
    Pod(u32),
}

/// What the stages decided so far for one first packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Trip {
    /// The Service the packet was addressed to (the reply's source is
    /// rewritten back to it).
    pub service: Option<u32>,
    /// The pod the packet goes to (after DNAT).
    pub pod: Option<u32>,
    /// Its entry in the client node's conntrack table, as (node, entry).
    pub ct: Option<(u32, CtId)>,
    /// The first packet's round trip and lookup CPU, when kube-proxy is
    /// modelled.
    pub first_packet: Option<FirstPacket>,
    /// MASQUERADE chose a source port that clashes at confirmation.
    pub port_clash: bool,
    /// The connection's translation at a NAT gateway (egress outside the
    /// VPC).
    pub nat: Option<crate::nat_gateway::NatConn>,
}

/// Why a first packet was dropped, as an operator sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum Drop {
    /// kube-proxy's REJECT for a Service with no endpoints.
    NoEndpoints,
    /// `nf_conntrack: table full, dropping packet` on the client's node.
    ConntrackFull {
        /// The node.
        node: u32,
        /// The kernel's refusal.
        refused: Refused,
    },
    /// kube-proxy's data path still lists a deleted pod and sent the
    /// connection to it.
    StaleEndpoint {
        /// The gone pod.
        pod: u32,
    },
    /// NetworkPolicy drops the first packet.
    PolicyDenied {
        /// The pod the packet was going to.
        pod: u32,
        /// The isolating policies and the missing rule.
        denial: Denied,
    },
    /// The SNAT source port clashed with a concurrent connection's at
    /// conntrack confirmation (`conntrack -S`: `insert_failed`).
    InsertFailed {
        /// The client's node.
        node: u32,
    },
    /// The NAT gateway stage dropped the SYN (no route, gateway down, no
    /// source port left).
    NatGateway(crate::nat_gateway::NatDrop),
}

/// What a dropped first packet means for the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientSees {
    /// A reset or ICMP error: `connect: connection refused` at once.
    Refused,
    /// Nothing: TCP retransmits the SYN (1 s, 3 s, 7 s...), each
    /// retransmission a new trip along the path.
    Retransmit,
    /// Nothing, and every retransmission meets the same fate (it follows
    /// the same conntrack entry or the same policy): the client times out.
    Silence,
}

impl Drop {
    /// What the client sees.
    pub fn client(&self) -> ClientSees {
        match self {
            Drop::NoEndpoints => ClientSees::Refused,
            Drop::ConntrackFull { .. } | Drop::InsertFailed { .. } => ClientSees::Retransmit,
            Drop::StaleEndpoint { .. } | Drop::PolicyDenied { .. } | Drop::NatGateway(_) => {
                ClientSees::Silence
            }
        }
    }
}

impl fmt::Display for Drop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drop::NoEndpoints => f.write_str("REJECT: Service has no endpoints"),
            Drop::ConntrackFull { refused, .. } => write!(f, "{refused}"),
            Drop::StaleEndpoint { .. } => {
                f.write_str("DNAT to a deleted pod: kube-proxy has not synced")
            }
            Drop::PolicyDenied { denial, .. } => write!(f, "policy denied: {denial}"),
            Drop::InsertFailed { .. } => f.write_str("conntrack insert_failed (SNAT port clash)"),
            Drop::NatGateway(d) => write!(f, "{d}"),
        }
    }
}

/// What the path reads of the cluster around it.
pub trait PathEnv {
    /// The Ready endpoints of Service `service` as the control plane lists
    /// them (used when kube-proxy's own view is not modelled, and for
    /// client-side balancing).
    fn endpoints(&self, service: u32) -> &Endpoints;
    /// Whether pod `pod` is gone (deleted).
    fn pod_gone(&self, pod: u32) -> bool;
    /// Every pod with an address (index = pod id), for policy selectors.
    fn pod_infos(&self) -> &[Option<PodInfo>];
    /// The protocol and port pod `pod` serves on.
    fn server_port(&self, pod: u32) -> (Protocol, u16);
}

/// What a stage may use besides its own state.
pub struct Cx<'a> {
    /// The simulated time.
    pub now: SimTime,
    /// The cluster around the path.
    pub env: &'a dyn PathEnv,
    /// The random stream of the flow's traffic source (endpoint picks).
    pub pick: &'a mut SimRng,
    /// Every node's conntrack table.
    pub tables: &'a mut conntrack::Tables,
}

/// One hook on the path.
pub trait Stage {
    /// Acts on a new flow's first packet: `Ok` passes it on (possibly
    /// having rewritten `trip`), `Err` drops it.
    fn first_packet(&mut self, flow: &Flow, trip: &mut Trip, cx: &mut Cx<'_>) -> Result<(), Drop>;
}

/// The hooks, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// conntrack's new entry ([`conntrack::Conntrack`]).
    Conntrack,
    /// kube-proxy's DNAT ([`service::ServiceProxy`]).
    Service,
    /// NetworkPolicy ([`policy`]).
    Policy,
    /// MASQUERADE ([`masquerade::Masquerade`]).
    Masquerade,
    /// The cloud's NAT gateway ([`nat_gateway::NatStage`]).
    NatGateway,
    /// conntrack's confirmation ([`conntrack::Confirm`]).
    Confirm,
}

/// The kernel's hook order.
pub const ORDER: [Hook; 6] = [
    Hook::Conntrack,
    Hook::Service,
    Hook::Policy,
    Hook::Masquerade,
    Hook::NatGateway,
    Hook::Confirm,
];

/// The stages of one run's path, each present when modelled.
pub struct Path {
    /// Each node's conntrack table.
    pub tables: conntrack::Tables,
    /// New conntrack entries, when the tables are modelled and the data
    /// path keeps entries for pod flows.
    pub conntrack: Option<conntrack::Conntrack>,
    /// Service DNAT (always present: without kube-proxy modelled it
    /// follows the Ready endpoints at once and costs nothing).
    pub service: service::ServiceProxy,
    /// NetworkPolicy.
    pub policy: Option<crate::policy_enforcement::Enforcer>,
    /// MASQUERADE's port choice.
    pub masquerade: Option<masquerade::Masquerade>,
    /// The NAT gateways egress outside the VPC goes through.
    pub nat_gateway: Option<nat_gateway::NatStage>,
}

impl Path {
    /// Runs `flow`'s first packet along the path at `now`, `pick` drawing
    /// its endpoint. The returned [`Trip`] holds what the stages decided up
    /// to the drop, if any (a stale endpoint's first-packet cost included).
    pub fn open(
        &mut self,
        flow: &Flow,
        now: SimTime,
        env: &dyn PathEnv,
        pick: &mut SimRng,
    ) -> (Trip, Result<(), Drop>) {
        let mut trip = Trip::default();
        let mut cx = Cx {
            now,
            env,
            pick,
            tables: &mut self.tables,
        };
        for hook in ORDER {
            let step = match hook {
                Hook::Conntrack => match self.conntrack.as_mut() {
                    Some(s) => s.first_packet(flow, &mut trip, &mut cx),
                    None => Ok(()),
                },
                Hook::Service => self.service.first_packet(flow, &mut trip, &mut cx),
                Hook::Policy => match self.policy.as_mut() {
                    Some(s) => s.first_packet(flow, &mut trip, &mut cx),
                    None => Ok(()),
                },
                Hook::Masquerade => match self.masquerade.as_mut() {
                    Some(s) => s.first_packet(flow, &mut trip, &mut cx),
                    None => Ok(()),
                },
                Hook::NatGateway => match self.nat_gateway.as_mut() {
                    Some(s) => s.first_packet(flow, &mut trip, &mut cx),
                    None => Ok(()),
                },
                Hook::Confirm => conntrack::Confirm.first_packet(flow, &mut trip, &mut cx),
            };
            if let Err(drop) = step {
                return (trip, Err(drop));
            }
        }
        (trip, Ok(()))
    }
}
