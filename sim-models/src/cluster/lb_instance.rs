//! # Instance targets: the nodes behind a cloud load balancer
//!
//! ## Scope
//! A target group with `instance` targets ([`crate::cloud_lb::TargetType::Instance`]) holds
//! the cluster's nodes, each on the Service's NodePort (the AWS Load
//! Balancer Controller's `target-type: instance`; a LoadBalancer Service
//! keeps its NodePorts, docs/calibration.md row `svc-lb-node-ports`).
//! - **Registration**: every node present when the run starts, healthy or
//!   not as its first check would find (the cluster existed before the
//!   story began); a node the node pool creates later, when it registers.
//!   Nodes are never deregistered (a node that fails fails its checks).
//! - **Health checks** ([`Sim::lb_node_check`]): with
//!   `externalTrafficPolicy: Cluster` the check is a TCP connection to the
//!   NodePort, which kube-proxy forwards to any Ready endpoint: it passes
//!   while the node is up and the Service has one. With `Local` it is
//!   kube-proxy's `healthCheckNodePort`, which answers 200 with a Ready
//!   endpoint on the node and 503 without
//!   ([`crate::services::health_check_status`], row
//!   `svc-health-check-node-port`).
//! - **Requests**: the load balancer picks a healthy node as for ip
//!   targets (cross-zone balancing on or off, the `lb` room); the
//!   connection then goes along the connection path to that node's
//!   address and NodePort ([`crate::path::Target::NodePort`]): the edge's
//!   security group, then kube-proxy's NodePort stage picks the endpoint
//!   (`Cluster`: any Ready endpoint, SNAT to the node when it is on another
//!   node; `Local`: one on the node, or the packet is dropped). The same
//!   stages serve traffic entering at a NodePort without a load balancer.
//!   What the path drops, the client sees through the load balancer: a
//!   refusal is an ALB 502 or an NLB reset; silence an ALB 504 after its
//!   10 s connect timeout or an NLB connect timeout.
//! - **Zone bytes**: the hop from the load balancer node to the node, and
//!   from the node to the pod (the `zone_traffic` room), both ways.
//!
//! The load balancer's source address is taken in the nodes' subnet (the
//! `1 + zone`-th address: a model choice), which is what a security group
//! rule for the VPC's range admits.
//!
//! Not modelled: requests in flight per node (a node is never deregistered,
//! so nothing drains), the controller's registration delay.
//!
//! ## Parameters
//! The target group's ([`crate::cloud_lb`]); what a node's check finds and
//! the hops (docs/calibration.md, rows `lb-instance-health`,
//! `lb-instance-two-hops`, `svc-external-traffic-policy` and
//! `svc-health-check-node-port`).
//!
//! ## What it emits
//! The same outcomes and target-health events as ip targets; SNATed
//! connections (`node_snat`) and `NoLocalEndpoint` events from the path.
//!
//! ## Validation
//! `lb_tests.rs` (`lb_instance_*`): under `Cluster` every node is healthy
//! and the node-to-pod hop crosses zones in (k-1)/k of requests; under
//! `Local` the nodes without an endpoint fail their check and get nothing;
//! the conservation property covers instance targets.

use super::*;
use crate::cloud_lb::{CheckResult, ClientSees as LbSees, Route, TargetAnswer};
use crate::path::NodePortTarget;
use crate::services::node_port::NodeAddressKind;
use crate::services::{health_check_status, TrafficPolicy};

impl Sim<'_> {
    /// Node `n` joined (or was there when the run started, `warm`): a
    /// target of every instance target group.
    pub(crate) fn lb_node_added(&mut self, n: usize, warm: bool) {
        let zone = self.services.zone_of.get(n).copied().unwrap_or(0) as u32;
        for i in 0..self.lbs.list.len() {
            if !self.lbs.list[i].instance() {
                continue;
            }
            let up = self.lb_node_check(i, n);
            let lb = &mut self.lbs.list[i];
            let id = lb.group.register(zone.min(lb.zones - 1));
            lb.behind.push(n as u32);
            lb.cut.push(false);
            lb.live.push(id);
            if warm {
                // As the checks before T+0 left it.
                let hc = lb.entry.group.health_check;
                let (result, times) = if up {
                    (CheckResult::Pass, hc.initial_passes)
                } else {
                    (CheckResult::Fail, hc.unhealthy_threshold)
                };
                for _ in 0..times {
                    lb.group.record_check(id, result);
                }
            }
        }
    }

    /// What a health check of node `n` by load balancer `i` finds.
    pub(crate) fn lb_node_check(&self, i: usize, n: usize) -> bool {
        if self.nodes.get(n).is_none_or(|x| x.unreachable) {
            return false;
        }
        let s = self.lbs.list[i].service;
        match self.services.list[s].spec.external_policy {
            TrafficPolicy::Local => self.services.eps[s]
                .as_ref()
                .is_some_and(|e| health_check_status(e.local(n)) == 200),
            TrafficPolicy::Cluster => !self.services.endpoints(&self.deps, s).is_empty(),
        }
    }

    /// Load balancer `i` sends `req` (routed by `route`) from its node in
    /// `lb_zone` to node `node`'s NodePort.
    pub(crate) fn lb_send_node(
        &mut self,
        i: usize,
        req: Request,
        route: Route,
        node: u32,
        lb_zone: u32,
    ) {
        let now = self.engine.now();
        let kind = self.lbs.list[i].entry.group.kind;
        if self.nodes[node as usize].unreachable {
            let sees = LbSees::of(kind, route, TargetAnswer::Silent);
            return self.lb_sees(i, req, sees);
        }
        let s = self.lbs.list[i].service;
        let addressing = &self.services.edge.addressing;
        let port = self.services.list[s]
            .spec
            .ports
            .first()
            .and_then(|p| p.node_port);
        let addr = addressing.address(node as usize, NodeAddressKind::Internal);
        let (Some(port), Some(addr)) = (port, addr) else {
            // No NodePort (the scenario reader refuses this) or no address
            // for the node: nothing listens.
            let sees = LbSees::of(kind, route, TargetAnswer::Refused);
            return self.lb_sees(i, req, sees);
        };
        let source = addressing.internal.nth(1 + u64::from(lb_zone));
        let np = NodePortTarget {
            service: s as u32,
            node,
            kind: NodeAddressKind::Internal,
            addr,
            port,
            source,
        };
        self.lb_hop(req, lb_zone, OptU32::some(node));
        self.dial_to(req, None, now, 0, Target::NodePort(np));
    }

    /// The connection from load balancer `i` to a node was dropped on the
    /// path: what its client sees.
    pub(crate) fn lb_path_dropped(&mut self, i: usize, req: Request, drop: &Drop) {
        let answer = match drop.client() {
            ClientSees::Refused => TargetAnswer::Refused,
            _ => TargetAnswer::Silent,
        };
        let kind = self.lbs.list[i].entry.group.kind;
        let sees = LbSees::of_target(kind, answer);
        self.lb_sees(i, req, sees);
    }
}
