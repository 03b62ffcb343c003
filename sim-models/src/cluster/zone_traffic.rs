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
//! Hops not counted (yet): requests from outside the cluster (no client
//! zone; the NodePort entry node and the ingress controller are not carried
//! with the request), traffic to a destination outside the VPC (`external`:
//! it leaves the region's zones; the NAT gateway's own processing is
//! [`crate::nat_gateway`]'s), DNS queries, a load balancer's leg (its
//! carrier exists in the model, [`crate::transfer_cost::Carrier`], and the
//! run has load balancers, but their hops are not counted yet), and a response the server finished after
//! its client gave up.
//!
//! ## Parameters
//! The billing rule and price: inputs, with AWS's and GCP's defaults
//! (docs/calibration.md rows `price-aws-inter-az`, `price-gcp-inter-zone`).
//!
//! ## What it emits
//! Per source and per window: bytes per zone pair, the crossing share, the
//! dollars; the requests and responses counted (so that bytes are
//! conserved: sum over pairs = request_bytes x requests + response_bytes x
//! responses).
//!
//! ## Validation
//! `cluster/tests.rs`: pods spread evenly over k = 2, 3, 4 zones with random
//! endpoint picks cross zones in a share within 4 standard deviations of
//! (k-1)/k; conservation of bytes against the counts; no bytes without
//! `billing`.

use super::*;
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
        self.services.zone_of.get(n as usize).map(|&z| z as u32)
    }

    /// The (from, to) zones of a hop of `req` served by pod `p`, when it
    /// is counted.
    #[inline]
    fn hop_zones(&self, p: u32, req: &Request) -> Option<(u32, u32)> {
        self.cfg.billing?;
        let spec = &self.cfg.traffic[req.source as usize];
        if spec.external.is_some() {
            return None;
        }
        let c = req.client.get()?;
        Some((self.pod_zone(c)?, self.pod_zone(p)?))
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

    /// One leg of `req` between its client and pod `p`, counted per source
    /// and in its open windows.
    fn zone_hop(&mut self, p: u32, req: &Request, leg: Leg) {
        let Some((client, server)) = self.hop_zones(p, req) else {
            return;
        };
        let t = req.source as usize;
        let spec = &self.cfg.traffic[t];
        let (from, to, bytes) = match leg {
            Leg::Request => (client, server, spec.request_bytes),
            Leg::Response => (server, client, spec.response_bytes),
        };
        let z = &mut self.zone_traffic[t];
        z.bytes.add(from, to, Carrier::Instance, bytes);
        match leg {
            Leg::Request => z.requests += 1,
            Leg::Response => z.responses += 1,
        }
        let now = self.engine.now();
        self.for_windows(t, now, |w| {
            w.zone_bytes.add(from, to, Carrier::Instance, bytes)
        });
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

/// Which way a request's bytes cross.
#[derive(Clone, Copy)]
enum Leg {
    /// Client to server.
    Request,
    /// Server to client.
    Response,
}
