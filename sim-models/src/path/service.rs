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

use super::{Cx, Drop, Flow, Stage, Target, Trip};
use crate::kube_proxy::KubeProxy;
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
        };
        trip.service = Some(service);
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
