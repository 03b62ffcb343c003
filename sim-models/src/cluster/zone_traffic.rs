//! # Bytes between zones in the run, and what the cloud bills for them
//!
//! ## Scope
//! With [`ClusterConfig::billing`] set, every request between two pods of
//! the cluster adds its bytes to the (source zone, destination zone) pair of
//! [`crate::transfer_cost::ZoneBytes`]: the request's `request_bytes` from
//! the client pod's zone to the server pod's zone when it reaches the
//! server (answered, queued, or turned away with a 503: the bytes moved),
//! and its `response_bytes` back when the server answers it in time. The
//! count is kept per traffic source over the run ([`RunOutput::zone_traffic`])
//! and per window and source ([`WindowStats::zone_bytes`]); each is priced
//! once at the end with the run's [`crate::transfer_cost::Billing`].
//!
//! Zone ids are the nodes' zones in order of first appearance (as the
//! Services room numbers them), known when the run is built: a hop is one
//! O(1) add into a dense zones x zones array, no allocation, no lookup by
//! name; without `billing` it is one branch.
//!
//! A request through a cloud load balancer (the `lb` room) is counted on
//! the load balancer's hops instead: with `ip` targets from the load
//! balancer node's zone to the pod's (carrier [`Carrier::ApplicationLb`] or
//! [`Carrier::NetworkLb`]); with `instance` targets from the load balancer
//! node to the node it chose (same carrier), then from that node to the
//! pod kube-proxy chose ([`Carrier::Instance`]: EC2 traffic between
//! instances). The response takes the same hops back: under
//! `externalTrafficPolicy: Cluster` the reply is un-SNATed at the node it
//! entered, under `Local` the pod is on that node. The client's leg to the
//! load balancer comes from outside the region's zones and is not counted.
//! Billing then follows the carrier (docs/calibration.md, rows
//! `price-aws-lb-targets` and `lb-instance-two-hops`): an ALB's
//! hop to targets on private IPs is free even across zones, an NLB's is
//! billed (cross-zone balancing on: "EC2 data transfer charges apply"),
//! the node-to-pod hop is billed whatever the load balancer.
//!
//! Hops not counted (yet): requests from outside the cluster at a NodePort
//! without a load balancer (no client zone), traffic to a destination
//! outside the VPC (`external`: it leaves the region's zones; the NAT
//! gateway's own processing is [`crate::nat_gateway`]'s), DNS queries, and
//! a response the server finished after its client gave up.
//!
//! ## Parameters
//! The billing rule and price: inputs, with AWS's and GCP's defaults
//! (docs/calibration.md rows `price-aws-inter-az`, `price-gcp-inter-zone`).
//!
//! ## What it emits
//! Per source and per window: bytes per zone pair and carrier, the
//! crossing share, the dollars; the requests and responses counted and the
//! hops they took (so that bytes are conserved: sum over pairs =
//! request_bytes x request hops + response_bytes x response hops).
//!
//! ## Validation
//! `cluster/tests.rs`: pods spread evenly over k = 2, 3, 4 zones with random
//! endpoint picks cross zones in a share within 4 standard deviations of
//! (k-1)/k; conservation of bytes against the counts; no bytes without
//! `billing`. `lb_tests.rs`: through an NLB with instance targets and
//! cross-zone balancing, each of the two hops crosses in (k-1)/k of
//! requests and both are billed; through an ALB only the node-to-pod hop
//! is billed.

use super::*;
use crate::cloud_lb::LbKind;
use crate::transfer_cost::{Carrier, ZoneBytes};

/// One traffic source's bytes between zones over the run.
#[derive(Clone, Debug, PartialEq)]
pub struct ZoneTraffic {
    /// Bytes per zone pair (zone ids: [`RunOutput::zone_names`]).
    pub bytes: ZoneBytes,
    /// Requests whose bytes were counted (they reached a server pod).
    pub requests: u64,
    /// Responses whose bytes were counted (answered in time).
    pub responses: u64,
    /// Hops the counted requests took (one per request, two through a
    /// load balancer with instance targets: to the node, then to the pod).
    pub request_hops: u64,
    /// Hops the counted responses took back.
    pub response_hops: u64,
    /// Dollars under the run's billing.
    pub cost: f64,
}

/// The zone count and names of the run, in zone-id order.
pub(crate) fn zone_names(cfg: &ClusterConfig) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for n in &cfg.nodes {
        if !names.contains(&n.zone) {
            names.push(n.zone.clone());
        }
    }
    names
}

/// An empty count for `cfg` (no storage without billing).
pub(crate) fn empty(cfg: &ClusterConfig) -> ZoneBytes {
    match cfg.billing {
        Some(_) => ZoneBytes::new(zone_names(cfg).len().max(1) as u32),
        None => ZoneBytes::new(0),
    }
}

impl Sim<'_> {
    /// The zone id of pod `p`'s node.
    #[inline]
    fn pod_zone(&self, p: u32) -> Option<u32> {
        let n = self.pods[p as usize].node?;
        self.node_zone(n)
    }

    /// The zone id of node `n`.
    #[inline]
    fn node_zone(&self, n: u32) -> Option<u32> {
        self.services.zone_of.get(n as usize).map(|&z| z as u32)
    }

    /// The hops of `req` served by pod `p`, when they are counted: each as
    /// (from, to, carrier) in the request's direction.
    #[inline]
    fn hops_of(&self, p: u32, req: &Request) -> Option<Hops> {
        self.cfg.billing?;
        let t = req.source as usize;
        if self.cfg.traffic[t].external.is_some() {
            return None;
        }
        let server = self.pod_zone(p)?;
        if let Some(i) = self.lb_of(t) {
            let hop = self.lbs.hops.get(&req.id)?;
            let carrier = match self.lbs.list[i].entry.group.kind {
                LbKind::Application => Carrier::ApplicationLb,
                LbKind::Network => Carrier::NetworkLb,
            };
            return Some(match hop.node.get() {
                // Instance targets: to the node, then kube-proxy's hop.
                Some(n) => {
                    let node = self.node_zone(n)?;
                    Hops {
                        first: (hop.lb_zone, node, carrier),
                        second: Some((node, server, Carrier::Instance)),
                    }
                }
                None => Hops {
                    first: (hop.lb_zone, server, carrier),
                    second: None,
                },
            });
        }
        let c = req.client.get()?;
        Some(Hops {
            first: (self.pod_zone(c)?, server, Carrier::Instance),
            second: None,
        })
    }

    /// `req` reached pod `p`'s server: its request bytes crossed from the
    /// client's zone to the pod's.
    pub(crate) fn zone_request(&mut self, p: u32, req: &Request) {
        self.zone_hop(p, req, Leg::Request);
    }

    /// Pod `p` answered `req` in time: its response bytes crossed back.
    pub(crate) fn zone_response(&mut self, p: u32, req: &Request) {
        self.zone_hop(p, req, Leg::Response);
    }

    /// One leg of `req` between its client and pod `p` (over each hop),
    /// counted per source and in its open windows.
    fn zone_hop(&mut self, p: u32, req: &Request, leg: Leg) {
        let Some(hops) = self.hops_of(p, req) else {
            return;
        };
        let t = req.source as usize;
        let spec = &self.cfg.traffic[t];
        let bytes = match leg {
            Leg::Request => spec.request_bytes,
            Leg::Response => spec.response_bytes,
        };
        let n = 1 + u64::from(hops.second.is_some());
        let z = &mut self.zone_traffic[t];
        match leg {
            Leg::Request => {
                z.requests += 1;
                z.request_hops += n;
            }
            Leg::Response => {
                z.responses += 1;
                z.response_hops += n;
            }
        }
        for (a, b, carrier) in std::iter::once(hops.first).chain(hops.second) {
            let (from, to) = match leg {
                Leg::Request => (a, b),
                Leg::Response => (b, a),
            };
            self.zone_traffic[t].bytes.add(from, to, carrier, bytes);
            let now = self.engine.now();
            self.for_windows(t, now, |w| w.zone_bytes.add(from, to, carrier, bytes));
        }
    }

    /// Prices the counts at the end of the run.
    pub(crate) fn zone_priced(&mut self) {
        let Some(billing) = self.cfg.billing else {
            return;
        };
        for z in &mut self.zone_traffic {
            z.cost = z.bytes.cost(billing);
        }
        for w in &mut self.windows {
            w.zone_cost = w.zone_bytes.cost(billing);
        }
    }
}

/// The hops a request's bytes take, as (from zone, to zone, carrier) in
/// the request's direction.
#[derive(Clone, Copy)]
struct Hops {
    /// Client pod to server pod; or load balancer node to its target.
    first: (u32, u32, Carrier),
    /// Instance targets: the node to the pod.
    second: Option<(u32, u32, Carrier)>,
}

/// Which way a request's bytes cross.
#[derive(Clone, Copy)]
enum Leg {
    /// Client to server.
    Request,
    /// Server to client.
    Response,
}
