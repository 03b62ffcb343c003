//! # Service DNAT: kube-proxy (or an eBPF load balancer) on the path
//!
//! ## Scope
//! A first packet addressed to a ClusterIP is DNATed to one endpoint of the
//! Service. With kube-proxy modelled ([`crate::kube_proxy`]) the endpoint
//! comes from its programmed view, which follows endpoint changes only when
//! a sync ends (a pod deleted since still gets connections, which are
//! dropped), and the first packet pays the mode's lookup (the iptables rule
//! walk, a hash lookup for IPVS, nftables and eBPF). Without it the data
//! path follows the Ready endpoints at once and costs nothing. A Service
//! with no endpoint is REJECTed (`connection refused`); the unconfirmed
//! conntrack entry goes with the packet. A packet addressed to a pod IP
//! passes untouched.
//!
//! A Service with a traffic policy (`internalTrafficPolicy: Local`,
//! `trafficDistribution: PreferClose`, Topology Aware Routing's hints)
//! picks among the endpoints on the client's node or for its zone
//! ([`crate::services::TopologyEndpoints`]);
//! a packet to a NodePort is accepted only on the node addresses
//! `nodePortAddresses` allows ([`crate::services::node_port::accepts`];
//! elsewhere the node answers RST) and then follows
//! `externalTrafficPolicy` (Local: the entry node's endpoints or a drop;
//! Cluster: any endpoint, SNAT to the node when it is on another node).
//! These picks follow the Ready endpoints at once (kube-proxy's sync delay
//! and rule-walk cost are modelled for plain ClusterIP traffic only).
//!
//! ## Parameters
//! [`crate::kube_proxy::KubeProxyConfig`] (mode, costs, sync timing, with
//! their calibration rows).
//!
//! ## What it emits
//! [`Trip::pod`], [`Trip::service`] (for the reply's reverse rewrite),
//! [`Trip::first_packet`]; [`Drop::NoEndpoints`], [`Drop::StaleEndpoint`].
//!
//! ## Validation
//! [`crate::kube_proxy`]'s calibration test (lookup cost per mode and size);
//! the cluster run's stale-endpoint test; the cross-level test in
//! sim-scenarios `tests/cross_level.rs` (same endpoint spread and
//! first-packet cost at both levels).

use super::{Cx, Drop, Flow, NodePortTarget, Stage, Target, Trip};
use crate::kube_proxy::KubeProxy;
use crate::services::node_port::accepts;
use crate::services::{Choice, TrafficPolicy};
use sim_core::SimRng;

/// The Service data path of every node.
pub struct ServiceProxy {
    /// kube-proxy's view, when modelled.
    pub kube_proxy: Option<KubeProxy>,
    /// The lookup cost's spread.
    rng: SimRng,
}

impl ServiceProxy {
    /// The data path of `kube_proxy` (or the Ready endpoints when `None`),
    /// drawing lookup costs from `rng`.
    pub fn new(kube_proxy: Option<KubeProxy>, rng: SimRng) -> Self {
        ServiceProxy { kube_proxy, rng }
    }

    /// Whether the data path has no endpoint for `service`.
    pub fn is_empty(&self, service: u32, cx: &Cx<'_>) -> bool {
        match &self.kube_proxy {
            Some(kp) => kp.is_empty(service as usize),
            None => cx.env.endpoints(service).is_empty(),
        }
    }
}

impl Stage for ServiceProxy {
    fn first_packet(&mut self, flow: &Flow, trip: &mut Trip, cx: &mut Cx<'_>) -> Result<(), Drop> {
        let service = match flow.to {
            Target::Pod(p) => {
                trip.pod = Some(p);
                return Ok(());
            }
            Target::Service(s) => s,
            Target::NodePort(np) => return node_port(&np, trip, cx),
        };
        trip.service = Some(service);
        if let Some((spec, eps)) = cx.env.topology(service) {
            if spec.internal_policy == TrafficPolicy::Local || spec.zonal() {
                let node = flow.client.and_then(|c| c.node);
                let zone = node.map(|n| cx.env.node_zone(n));
                let choice = eps.choose(
                    spec.internal_policy,
                    spec.zonal(),
                    node.map(|n| n as usize),
                    zone,
                    cx.pick,
                );
                return chosen(choice, node.unwrap_or(0), trip, cx);
            }
        }
        let picked = match &self.kube_proxy {
            Some(kp) => kp.pick(service as usize, cx.pick).map(|(p, i)| {
                trip.first_packet = Some(kp.first_packet(i, &mut self.rng));
                p
            }),
            None => cx.env.endpoints(service).pick(cx.pick),
        };
        let Some(pod) = picked else {
            if let Some((node, id)) = trip.ct.take() {
                cx.tables.nodes[node as usize].delete(cx.now, id);
            }
            return Err(Drop::NoEndpoints);
        };
        trip.pod = Some(pod);
        if trip.first_packet.is_some() && cx.env.pod_gone(pod) {
            return Err(Drop::StaleEndpoint { pod });
        }
        Ok(())
    }
}

/// A packet from outside reaches node `np.node` at `np.addr`:`np.port`.
fn node_port(np: &NodePortTarget, trip: &mut Trip, cx: &mut Cx<'_>) -> Result<(), Drop> {
    trip.service = Some(np.service);
    let open = cx
        .env
        .edge()
        .is_some_and(|e| accepts(e.mode, &e.node_port_addresses, np.kind, np.addr));
    let listens = |spec: &crate::services::ServiceSpec| {
        spec.kind.has_node_port() && spec.ports.iter().any(|p| p.node_port == Some(np.port))
    };
    let Some((spec, eps)) = cx
        .env
        .topology(np.service)
        .filter(|(spec, _)| open && listens(spec))
    else {
        return Err(Drop::PortClosed { node: np.node });
    };
    let zone = cx.env.node_zone(np.node);
    let choice = eps.choose(
        spec.external_policy,
        spec.zonal(),
        Some(np.node as usize),
        Some(zone),
        cx.pick,
    );
    chosen(choice, np.node, trip, cx)?;
    trip.node_snat = spec.external_policy == TrafficPolicy::Cluster
        && trip.pod.and_then(|p| cx.env.pod_node(p)) != Some(np.node);
    Ok(())
}

/// The endpoint a policy chose, or its drop (the unconfirmed conntrack
/// entry goes with a dropped packet).
fn chosen(choice: Choice, node: u32, trip: &mut Trip, cx: &mut Cx<'_>) -> Result<(), Drop> {
    let drop = match choice {
        Choice::Pod(p) => {
            trip.pod = Some(p);
            return Ok(());
        }
        Choice::NoEndpoints => Drop::NoEndpoints,
        Choice::NoLocalEndpoint => Drop::NoLocalEndpoint { node },
    };
    if let Some((n, id)) = trip.ct.take() {
        cx.tables.nodes[n as usize].delete(cx.now, id);
    }
    Err(drop)
}
