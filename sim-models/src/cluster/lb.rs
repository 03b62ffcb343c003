//! # Cloud load balancers in front of LoadBalancer Services
//!
//! ## Scope
//! A traffic source with a `load_balancer` entry sends its requests through
//! a cloud load balancer's target group ([`crate::cloud_lb`]) instead of the
//! Service's ClusterIP. One target group per such source, with `ip`
//! targets: the pods of the workloads its Service selects.
//! - **Registration**: a pod is registered when its container starts (its
//!   address exists and its port opens), in its node's zone. Pods Ready at
//!   T+0 (the cluster existed before the story began) are registered and
//!   healthy at T+0. That the controller registers a pod before it is
//!   Ready is an assumption of the model (the AWS Load Balancer
//!   Controller registers pods as they come up when its readiness gate is
//!   injected; whether a given controller waits for Ready is not modelled).
//! - **Health checks**: one periodic event per target group, every
//!   `interval`, checks every registered target: [`CheckPath::Port`] passes
//!   when the pod's container runs (whether its application serves or
//!   not), [`CheckPath::Readiness`] when the pod is Ready (the application
//!   serves: its readiness probe passed). A pod whose node is down fails
//!   either. The target's state follows the thresholds
//!   ([`crate::cloud_lb::health`]); each change is a Kubernetes-style event
//!   (`TargetHealthy`, `TargetUnhealthy`).
//! - **Requests**: the client's DNS answer names a load balancer node in a
//!   zone drawn uniformly; the group routes (O(1)): a healthy target,
//!   fail-open to an unhealthy one, or none (ALB 503, NLB SYN timeout). At
//!   the pod: Ready, it queues at the server as any request; Running but not
//!   Ready (the port is open, the application does not serve yet) it closes
//!   the connection unanswered (ALB 502, NLB reset); on a node that is down
//!   nothing answers (ALB 504 after its 10 s connect timeout, NLB: the
//!   client's timeout).
//! - **Deregistration**: when the pod is deleted its target is deregistered:
//!   no new requests; those in flight at the pod may finish until the
//!   deregistration delay ends, and the ones still outstanding then get a
//!   502 (ALB) or a reset (NLB). With no delay they are cut at once. A cut
//!   request's 502 is counted when the pod would have answered it (the
//!   instant differs from the cut by at most the request's remaining
//!   service and queueing time; the count is exact).
//!
//! - **Instance targets** ([`crate::cloud_lb::TargetType::Instance`]): the
//!   targets are the nodes, on the Service's NodePort, registered when the
//!   run starts (or when the node pool creates a node); their checks, the
//!   path from the node to a pod and the zone bytes are the `lb_instance`
//!   room's.
//! - **Zone bytes**: with `billing`, each request's hop from the load
//!   balancer node to its target (and on to the pod, for instance targets)
//!   is remembered until the request ends ([`LbHop`]) so that the
//!   `zone_traffic` room counts its bytes both ways.
//!
//! - **Readiness gate** (`lb_gate` room): with it, a pod whose readiness
//!   probe passed is Ready only once its targets are healthy.
//!
//! Not modelled: the controller's propagation delay, checks staggered per
//! target (all of a group's targets are checked at the same instants), the
//! load balancer's own capacity.
//!
//! ## Parameters
//! The target group's (per controller defaults, docs/calibration.md rows
//! `lb-health-check-defaults`, `lb-deregistration-delay`, `lb-cross-zone`),
//! overridable in the scenario; what the client sees and the ALB's 10 s
//! connect timeout (`ALB_CONNECT_TIMEOUT`) from row `lb-client-errors`.
//!
//! ## What it emits
//! Per source, the load balancer's answers as named parts of the request
//! totals ([`RequestTotals::lb_502`], `lb_503`, `lb_504`, `lb_reset`,
//! `lb_connect_timeout`), so conservation holds; target health events.
//!
//! ## Validation
//! `cluster::tests` (`lb_*`): a port check sends requests to pods that do
//! not serve yet (502s after a scale-up), a readiness check does not; no
//! deregistration delay cuts requests in flight at scale-in, a long one
//! lets them finish; conservation with a load balancer. The scenario
//! `health_check_502` replays the outage side by side with its fix.

use super::*;
use crate::cloud_lb::{
    CheckPath, CheckResult, ClientSees, Deregistered, Health, LbEntry, LbKind, Route, TargetAnswer,
    TargetGroup, TargetId, TargetType, ALB_CONNECT_TIMEOUT,
};

/// One load balancer's target group in the run.
pub(crate) struct LbRt {
    /// The traffic source it serves.
    source: u32,
    /// The Service it fronts.
    pub(crate) service: usize,
    pub(crate) entry: LbEntry,
    pub(crate) group: TargetGroup,
    /// Target -> the pod (ip targets) or the node (instance targets).
    pub(crate) behind: Vec<u32>,
    /// Targets registered (not deregistered), in no particular order.
    pub(crate) live: Vec<TargetId>,
    /// Targets whose in-flight requests were cut (deregistration over).
    pub(crate) cut: Vec<bool>,
    /// Targets whose pod passed its readiness probe and waits for its
    /// readiness gate (the target healthy).
    pub(crate) waiting: Vec<bool>,
    /// Zones of the cluster (load balancer nodes: one per zone).
    pub(crate) zones: u32,
    /// Draws the load balancer node and the target.
    rng: SimRng,
}

impl LbRt {
    /// Whether its targets are nodes.
    pub(crate) fn instance(&self) -> bool {
        self.entry.group.target_type == TargetType::Instance
    }
}

/// Where a request through a load balancer went, kept while it is open
/// (only with `billing`: the zone bytes of its legs).
#[derive(Clone, Copy, Debug)]
pub(crate) struct LbHop {
    /// The zone of the load balancer node that sent it on.
    pub(crate) lb_zone: u32,
    /// Instance targets: the node it entered at.
    pub(crate) node: OptU32,
}

/// The run's load balancers, and each pod's target in each.
#[derive(Default)]
pub(crate) struct Lbs {
    pub(crate) list: Vec<LbRt>,
    /// Per traffic source: its load balancer's index.
    by_source: Vec<OptU32>,
    /// Per load balancer, per pod id: its target (grown as pods start; ip
    /// targets only).
    target_of: Vec<Vec<OptU32>>,
    /// Open requests' hops by request id (looked up, never iterated: the
    /// hasher cannot change a run's output).
    pub(crate) hops: IdMap<LbHop>,
}

impl Lbs {
    pub(crate) fn new(cfg: &ClusterConfig, zones: u32, rng: &RngStreams) -> Self {
        let mut lbs = Lbs {
            by_source: vec![OptU32::NONE; cfg.traffic.len()],
            ..Lbs::default()
        };
        for (t, spec) in cfg.traffic.iter().enumerate() {
            let (Some(entry), Some(service)) = (spec.load_balancer, spec.service) else {
                continue;
            };
            lbs.by_source[t] = OptU32::some(lbs.list.len() as u32);
            lbs.list.push(LbRt {
                source: t as u32,
                service,
                entry,
                group: TargetGroup::new(entry.group, zones.max(1)),
                behind: Vec::new(),
                live: Vec::new(),
                cut: Vec::new(),
                waiting: Vec::new(),
                zones: zones.max(1),
                rng: rng.stream(&format!("load-balancer/{}", spec.name)),
            });
            lbs.target_of.push(Vec::new());
        }
        lbs
    }

    pub(crate) fn target(&self, lb: usize, p: u32) -> Option<TargetId> {
        self.target_of[lb].get(p as usize).and_then(|t| t.get())
    }
}

impl Sim<'_> {
    /// Registers the nodes of instance target groups and schedules each
    /// target group's first health checks.
    pub(crate) fn lb_start(&mut self) {
        for n in 0..self.cfg.nodes.len() {
            if !self.cfg.nodes[n].standby {
                self.lb_node_added(n, true);
            }
        }
        for (i, lb) in self.lbs.list.iter().enumerate() {
            let interval = lb.entry.group.health_check.interval;
            self.engine.schedule_in(interval, Ev::LbCheck(i as u32));
        }
    }

    /// Pod `p`'s container started: a target of every ip target group
    /// whose Service selects it; `warm`: the cluster existed before the
    /// story began, and the target is healthy already.
    pub(crate) fn lb_register(&mut self, p: u32, warm: bool) {
        if self.lbs.list.is_empty() {
            return;
        }
        let d = self.pods[p as usize].deployment as usize;
        let node = self.pods[p as usize].node.unwrap_or(0) as usize;
        let zone = self.services.zone_of.get(node).copied().unwrap_or(0) as u32;
        for i in 0..self.lbs.list.len() {
            let lb = &mut self.lbs.list[i];
            if lb.instance() || !self.services.index.of(d).contains(&(lb.service as u32)) {
                continue;
            }
            let id = lb.group.register(zone.min(lb.zones - 1));
            lb.behind.push(p);
            lb.cut.push(false);
            lb.waiting.push(false);
            lb.live.push(id);
            if warm {
                for _ in 0..lb.entry.group.health_check.initial_passes {
                    lb.group.record_check(id, CheckResult::Pass);
                }
            }
            let map = &mut self.lbs.target_of[i];
            if map.len() <= p as usize {
                map.resize(p as usize + 1, OptU32::NONE);
            }
            map[p as usize] = OptU32::some(id);
        }
    }

    /// Pod `p` is deleted: its targets are deregistered and drain.
    pub(crate) fn lb_deregister(&mut self, p: u32) {
        let now = self.engine.now();
        for i in 0..self.lbs.list.len() {
            let Some(id) = self.lbs.target(i, p) else {
                continue;
            };
            let lb = &mut self.lbs.list[i];
            if let Some(k) = lb.live.iter().position(|&x| x == id) {
                lb.live.swap_remove(k);
            } else {
                continue;
            }
            match lb.group.deregister(id, now) {
                Deregistered::Now => lb.cut[id as usize] = true,
                Deregistered::DrainingUntil(at) => {
                    self.engine.schedule_at(
                        at,
                        Ev::LbDrainEnd {
                            lb: i as u32,
                            target: id,
                        },
                    );
                }
            }
        }
    }

    /// The deregistration delay of a target ended: what it still has in
    /// flight is cut off.
    pub(crate) fn lb_drain_end(&mut self, lb: usize, id: TargetId) {
        let lb = &mut self.lbs.list[lb];
        lb.group.drain_ends(id);
        lb.cut[id as usize] = true;
    }

    /// What a check of target `id`, pod `p`, of load balancer `i` finds
    /// (ip targets).
    fn lb_pod_check(&self, i: usize, id: TargetId, p: u32, check: CheckPath) -> bool {
        let pod = &self.pods[p as usize];
        !pod.deleted
            && !self.pod_unreachable(p)
            && match check {
                CheckPath::Port => matches!(pod.state, PodState::Running | PodState::Ready),
                CheckPath::Readiness => self.lb_serving(i, id, p),
            }
    }

    /// Whether pod `p` (target `id` of load balancer `i`) serves: Ready, or
    /// held by a readiness gate after its readiness probe passed.
    fn lb_serving(&self, i: usize, id: TargetId, p: u32) -> bool {
        self.pods[p as usize].state == PodState::Ready
            || self.lbs.list[i].waiting.get(id as usize) == Some(&true)
    }

    /// A target group's health checks are due: every registered target is
    /// checked, and the next round scheduled.
    pub(crate) fn lb_check(&mut self, i: usize) {
        let lb = &self.lbs.list[i];
        let interval = lb.entry.group.health_check.interval;
        let check = lb.entry.check;
        let instance = lb.instance();
        let mut changes: Vec<Health> = Vec::new();
        let mut released: Vec<u32> = Vec::new();
        for k in 0..self.lbs.list[i].live.len() {
            let lb = &self.lbs.list[i];
            let id = lb.live[k];
            let behind = lb.behind[id as usize];
            let up = if instance {
                self.lb_node_check(i, behind as usize)
            } else {
                self.lb_pod_check(i, id, behind, check)
            };
            let result = if up {
                CheckResult::Pass
            } else {
                CheckResult::Fail
            };
            let lb = &mut self.lbs.list[i];
            if let Some(h) = lb.group.record_check(id, result) {
                changes.push(h);
                if h == Health::Healthy && lb.waiting.get(id as usize) == Some(&true) {
                    lb.waiting[id as usize] = false;
                    released.push(behind);
                }
            }
        }
        for p in released {
            self.lb_gate_released(p);
        }
        let name = &self.cfg.traffic[self.lbs.list[i].source as usize].name;
        let what = if instance { "node" } else { "pod IP" };
        for h in changes {
            let (kind, reason) = match h {
                Health::Healthy => ("Normal", "TargetHealthy"),
                _ => ("Warning", "TargetUnhealthy"),
            };
            let msg = format!("A target ({what}) is {}", h.name());
            let obj = format!("targetgroup/{name}");
            self.event(kind, reason, "load-balancer", msg, obj);
        }
        self.engine.schedule_in(interval, Ev::LbCheck(i as u32));
    }

    /// Whether source `t` enters through a load balancer.
    pub(crate) fn lb_of(&self, t: usize) -> Option<usize> {
        self.lbs
            .by_source
            .get(t)
            .and_then(|x| x.get())
            .map(|x| x as usize)
    }

    /// A request of source `t` enters at its load balancer: routed to a
    /// target, or answered by the load balancer itself.
    pub(crate) fn lb_send(&mut self, i: usize, req: Request) {
        let lb = &mut self.lbs.list[i];
        let kind = lb.entry.group.kind;
        let drawn = lb.rng.random_range(0..lb.zones);
        let route = lb.group.route(drawn, &mut lb.rng);
        let id = match route {
            Route::Healthy(id) | Route::FailOpen(id) => id,
            Route::NoTarget => {
                let sees = ClientSees::of(kind, route, TargetAnswer::Silent);
                return self.lb_sees(i, req, sees);
            }
        };
        // Without cross-zone balancing a node sends only to its own zone's
        // targets: a target elsewhere means the client resolved that
        // zone's node.
        let lb_zone = if lb.entry.group.cross_zone {
            drawn
        } else {
            lb.group.zone(id)
        };
        let behind = lb.behind[id as usize];
        if lb.instance() {
            return self.lb_send_node(i, req, route, behind, lb_zone);
        }
        let p = behind;
        let pod = &self.pods[p as usize];
        let answer = if pod.deleted || self.pod_unreachable(p) {
            TargetAnswer::Silent
        } else if self.lb_serving(i, id, p) {
            TargetAnswer::Served
        } else {
            // The port is open; the application does not serve yet.
            TargetAnswer::Reset
        };
        let sees = ClientSees::of(kind, route, answer);
        if sees == ClientSees::Answer {
            self.lbs.list[i].group.begin(id);
            self.lb_hop(req, lb_zone, OptU32::NONE);
            return self.offer(p, req);
        }
        self.lb_sees(i, req, sees)
    }

    /// The request's hop, remembered for its zone bytes (with `billing`).
    pub(crate) fn lb_hop(&mut self, req: Request, lb_zone: u32, node: OptU32) {
        if self.cfg.billing.is_some() {
            self.lbs.hops.insert(req.id, LbHop { lb_zone, node });
        }
    }

    /// The request ended: its hop is forgotten.
    pub(crate) fn lb_forget(&mut self, req: &Request) {
        if !self.lbs.hops.is_empty() {
            self.lbs.hops.remove(&req.id);
        }
    }

    /// The client of load balancer `i` sees `sees` (not the target's
    /// answer): the outcome now, or when the silence ends.
    pub(crate) fn lb_sees(&mut self, i: usize, req: Request, sees: ClientSees) {
        let now = self.engine.now();
        let kind = self.lbs.list[i].entry.group.kind;
        match sees {
            ClientSees::Answer => unreachable!("the target's answer is not the load balancer's"),
            ClientSees::BadGateway => self.outcome(req, Outcome::LbBadGateway),
            ClientSees::Reset => self.outcome(req, Outcome::LbReset),
            ClientSees::Unavailable => self.outcome(req, Outcome::LbUnavailable),
            ClientSees::GatewayTimeout | ClientSees::ConnectTimeout => {
                let at = match kind {
                    LbKind::Application => (now + ALB_CONNECT_TIMEOUT).min(req.deadline),
                    LbKind::Network => req.deadline,
                };
                self.engine.schedule_at(at.max(now), Ev::LbSilent(req));
            }
        }
    }

    /// Nothing answered a request a load balancer sent on: by the client's
    /// deadline it timed out; before it, an ALB answers 504.
    pub(crate) fn lb_silent(&mut self, req: Request) {
        let now = self.engine.now();
        let t = req.source as usize;
        let kind = self
            .lb_of(t)
            .map_or(LbKind::Network, |i| self.lbs.list[i].entry.group.kind);
        let o = match kind {
            LbKind::Application if now < req.deadline => Outcome::LbGatewayTimeout,
            LbKind::Application => Outcome::TimedOut,
            LbKind::Network => Outcome::LbConnectTimeout,
        };
        self.outcome(req, o);
    }

    /// A request a load balancer sent to pod `p` left the pod (answered,
    /// rejected, abandoned): returns whether its target's requests were
    /// cut off (the client got a 502 or a reset instead).
    pub(crate) fn lb_end(&mut self, p: u32, req: &Request) -> bool {
        let Some(i) = self.lb_of(req.source as usize) else {
            return false;
        };
        let Some(id) = self.lbs.target(i, p) else {
            return false;
        };
        let lb = &mut self.lbs.list[i];
        lb.group.end(id);
        lb.cut[id as usize]
    }

    /// What a cut-off request's client sees.
    pub(crate) fn lb_cut_outcome(&self, req: &Request) -> Outcome {
        match self
            .lb_of(req.source as usize)
            .map(|i| self.lbs.list[i].entry.group.kind)
        {
            Some(LbKind::Network) => Outcome::LbReset,
            _ => Outcome::LbBadGateway,
        }
    }
}
