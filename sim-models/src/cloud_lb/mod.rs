//! # Cloud load balancers: target groups, health checks, deregistration
//!
//! ## Scope
//! What an AWS Application or Network Load Balancer (and, with its own
//! defaults, a GKE load balancer) does between a client and the targets of
//! one target group:
//! - **Targets**: pod IPs (`ip` target type, what the AWS Load Balancer
//!   Controller registers for `target-type: ip`) or nodes (`instance`, the
//!   Service's NodePort on every node); each in a zone.
//! - **Health**: each target is checked every interval and moves between
//!   `initial`, `healthy` and `unhealthy` by its thresholds ([`health`]).
//!   What a check finds is the caller's: the model of the pod or node behind
//!   the target answers it ([`CheckResult`]).
//! - **Routing**: a request (ALB) or a connection (NLB) entering at a load
//!   balancer node in some zone goes to a uniformly random healthy target:
//!   of its own zone when cross-zone load balancing is off (NLB's default),
//!   of every zone when it is on (ALB's). A zone without a healthy target
//!   is taken out of DNS, so its clients reach another zone's node (NLB:
//!   "If an AZ has no healthy target, its IP is removed from DNS"). With no
//!   healthy target at all the load balancer **fails open**: it routes
//!   across the unhealthy ones (ALB: "If a target group contains only
//!   unhealthy registered targets, the load balancer nodes route requests
//!   across its unhealthy targets"; NLB: "If no AZ has a healthy target,
//!   traffic goes to all AZs"). Targets still `initial` get nothing; with
//!   no registered target the ALB answers 503 itself.
//! - **Deregistration**: a deregistered target drains: no new requests;
//!   requests in flight may finish until the deregistration delay (default
//!   300 s) ends; with none in flight it is gone at once ("If a deregistering
//!   target has no in-flight requests and no active connections, Elastic Load
//!   Balancing immediately completes the deregistration process"). A request
//!   still in flight when the delay ends, or when the target goes away
//!   first, gets a 502 (ALB) or a reset (NLB).
//! - **What the client sees** ([`ClientSees`]): ALB's own answers from
//!   load-balancer-troubleshooting.md: 502 when the target refuses or resets
//!   the connection or drops an outstanding request, 503 with no registered
//!   targets, 504 when the target does not accept the connection within
//!   10 s or does not answer within the idle timeout; NLB passes TCP
//!   through: a refused connection is a reset, no target is a SYN timeout.
//!
//! Not modelled: ALB's slow start, least-outstanding-requests routing,
//! stickiness, weighted target groups, NLB's passive health checks, LCU
//! pricing, the controller's propagation delay from an EndpointSlice change
//! to a registration (unknown; the caller adds one if it has a figure).
//!
//! ## Parameters
//! [`HealthCheck`] per controller (docs/calibration.md, row
//! `lb-health-check-defaults`); deregistration delay 300 s (row
//! `lb-deregistration-delay`); cross-zone on for ALB, off for NLB (row
//! `lb-cross-zone`). All from the edge calibration notes, sections 1 and 3.
//!
//! ## What it emits
//! [`TargetGroup::route`] gives the target a new request goes to, or why
//! there is none; [`TargetGroup::record_check`] the health transitions
//! (`describe-target-health`'s states); counts of healthy targets per zone
//! (CloudWatch's `HealthyHostCount`).
//!
//! ## Validation
//! Unit tests (`tests.rs`): the state machine against the thresholds of
//! every controller's defaults and the derived detection times of
//! the edge calibration notes, section 3 (ALB defaults: unhealthy after ~60 s,
//! healthy again after ~150 s); routing with and without cross-zone, the
//! DNS removal of empty zones and fail-open, checked against enumerations;
//! routing draws uniform over the eligible targets (chi-square);
//! deregistration with and without requests in flight. The cost of a route
//! is O(1) in targets and zones.

pub mod health;
#[cfg(test)]
mod tests;

pub use health::{CheckResult, Health, HealthCheck, TargetHealth};

use rand::RngExt;
use sim_core::{SimDuration, SimRng, SimTime};

/// Which kind of load balancer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LbKind {
    /// HTTP: routes each request; answers 502/503/504 itself.
    Application,
    /// TCP: routes each connection; passes resets and silence through.
    Network,
}

/// What a target is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetType {
    /// A pod IP: the load balancer reaches the pod directly.
    Ip,
    /// A node: the Service's NodePort, and kube-proxy from there.
    Instance,
}

/// A target group's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TargetGroupSpec {
    /// ALB or NLB.
    pub kind: LbKind,
    /// Pod IPs or nodes.
    pub target_type: TargetType,
    /// The health check.
    pub health_check: HealthCheck,
    /// How long a deregistered target keeps its requests in flight.
    pub deregistration_delay: SimDuration,
    /// Whether a load balancer node routes to targets in every zone.
    pub cross_zone: bool,
}

impl TargetGroupSpec {
    /// ELB's defaults for `kind`: its health check, 300 s deregistration
    /// delay, cross-zone on for ALB and off for NLB.
    pub fn elb_defaults(kind: LbKind, target_type: TargetType) -> Self {
        TargetGroupSpec {
            kind,
            target_type,
            health_check: match kind {
                LbKind::Application => HealthCheck::elb_alb(),
                LbKind::Network => HealthCheck::elb_nlb_tcp(),
            },
            deregistration_delay: DEFAULT_DEREGISTRATION_DELAY,
            cross_zone: kind == LbKind::Application,
        }
    }
}

/// What a target's health check asks of the pod behind it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckPath {
    /// A TCP check, or a path the server answers as soon as its process
    /// listens (e.g. `/`): passes once the container runs, whether the
    /// application can serve requests yet or not.
    Port,
    /// The readiness probe's path: passes once the application serves
    /// (the pod passed its readiness probe).
    Readiness,
}

/// Where a load balancer sends traffic of a cluster run: its target
/// group's settings and what its health check asks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LbEntry {
    /// The target group.
    pub group: TargetGroupSpec,
    /// What the health check asks of a pod.
    pub check: CheckPath,
    /// The AWS Load Balancer Controller's pod readiness gate
    /// (`target-health.elbv2.k8s.aws`, ip targets only): a pod is Ready
    /// only once its target is healthy.
    pub readiness_gate: bool,
}

/// ELB's default deregistration delay (row `lb-deregistration-delay`).
pub const DEFAULT_DEREGISTRATION_DELAY: SimDuration = SimDuration::from_secs(300);

/// ALB's connection timeout towards a target before it answers 504.
pub const ALB_CONNECT_TIMEOUT: SimDuration = SimDuration::from_secs(10);

/// A target's index in its group.
pub type TargetId = u32;

/// Where a new request goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Route {
    /// A healthy target.
    Healthy(TargetId),
    /// No target is healthy: an unhealthy one, fail-open.
    FailOpen(TargetId),
    /// No target can take it: an ALB answers 503; an NLB leaves the SYN
    /// unanswered.
    NoTarget,
}

/// What the target did with a request the load balancer sent it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetAnswer {
    /// Answered (any status code of its own: passed through).
    Served,
    /// Refused the connection (nothing listening): a TCP RST.
    Refused,
    /// Closed or reset the connection with the request outstanding
    /// (crashed, killed, deregistration delay over).
    Reset,
    /// Did not accept the connection in time, or did not answer.
    Silent,
}

/// What the client sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientSees {
    /// The target's own answer.
    Answer,
    /// ALB `502 Bad Gateway`.
    BadGateway,
    /// ALB `503 Service Unavailable` (no registered targets).
    Unavailable,
    /// ALB `504 Gateway Timeout`.
    GatewayTimeout,
    /// NLB: the connection is reset.
    Reset,
    /// NLB: the connection attempt times out.
    ConnectTimeout,
}

impl ClientSees {
    /// What a client of a `kind` load balancer sees for `route` and, when a
    /// target was chosen, its `answer`.
    pub fn of(kind: LbKind, route: Route, answer: TargetAnswer) -> ClientSees {
        match (kind, route) {
            (LbKind::Application, Route::NoTarget) => ClientSees::Unavailable,
            (LbKind::Network, Route::NoTarget) => ClientSees::ConnectTimeout,
            _ => ClientSees::of_target(kind, answer),
        }
    }

    /// What a client of a `kind` load balancer sees when the target it
    /// chose answered `answer`.
    pub fn of_target(kind: LbKind, answer: TargetAnswer) -> ClientSees {
        match kind {
            LbKind::Application => match answer {
                TargetAnswer::Served => ClientSees::Answer,
                TargetAnswer::Refused | TargetAnswer::Reset => ClientSees::BadGateway,
                TargetAnswer::Silent => ClientSees::GatewayTimeout,
            },
            LbKind::Network => match answer {
                TargetAnswer::Served => ClientSees::Answer,
                TargetAnswer::Refused | TargetAnswer::Reset => ClientSees::Reset,
                TargetAnswer::Silent => ClientSees::ConnectTimeout,
            },
        }
    }

    /// The HTTP status an ALB writes to its access log, when it answers.
    pub fn status(self) -> Option<u16> {
        match self {
            ClientSees::BadGateway => Some(502),
            ClientSees::Unavailable => Some(503),
            ClientSees::GatewayTimeout => Some(504),
            _ => None,
        }
    }
}

/// What a deregistration leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deregistered {
    /// Nothing in flight: gone at once.
    Now,
    /// Requests in flight: draining until this time, when any still in
    /// flight are cut off ([`TargetGroup::drain_ends`]).
    DrainingUntil(SimTime),
}

/// A set of target ids with O(1) insert, remove and uniform pick.
#[derive(Clone, Debug, Default)]
struct Members {
    ids: Vec<TargetId>,
}

impl Members {
    fn insert(&mut self, id: TargetId, pos: &mut u32) {
        *pos = self.ids.len() as u32;
        self.ids.push(id);
    }

    /// Removes `id` at `pos`; returns the id moved into its place, if any.
    fn remove(&mut self, pos: u32) -> Option<TargetId> {
        let pos = pos as usize;
        self.ids.swap_remove(pos);
        self.ids.get(pos).copied()
    }

    fn pick(&self, rng: &mut SimRng) -> Option<TargetId> {
        if self.ids.is_empty() {
            None
        } else {
            Some(self.ids[rng.random_range(0..self.ids.len())])
        }
    }

    fn len(&self) -> usize {
        self.ids.len()
    }
}

/// The routable lists a target can be in: healthy or unhealthy, across
/// the group and in its zone.
#[derive(Clone, Debug, Default)]
struct Pool {
    all: Members,
    by_zone: Vec<Members>,
}

#[derive(Clone, Copy, Debug)]
struct Target {
    zone: u32,
    health: TargetHealth,
    registered: bool,
    in_flight: u32,
    /// Positions in the group-wide and the zone's list of its pool.
    pos_all: u32,
    pos_zone: u32,
}

/// One target group and the health of its targets.
#[derive(Clone, Debug)]
pub struct TargetGroup {
    spec: TargetGroupSpec,
    targets: Vec<Target>,
    healthy: Pool,
    unhealthy: Pool,
    /// Zones with at least one healthy target (for DNS), with positions.
    live_zones: Vec<u32>,
    live_pos: Vec<u32>,
    registered: u32,
}

const ABSENT: u32 = u32::MAX;

impl TargetGroup {
    /// An empty group over `zones` zones.
    pub fn new(spec: TargetGroupSpec, zones: u32) -> Self {
        TargetGroup {
            spec,
            targets: Vec::new(),
            healthy: Pool {
                all: Members::default(),
                by_zone: vec![Members::default(); zones as usize],
            },
            unhealthy: Pool {
                all: Members::default(),
                by_zone: vec![Members::default(); zones as usize],
            },
            live_zones: Vec::new(),
            live_pos: vec![ABSENT; zones as usize],
            registered: 0,
        }
    }

    /// The group's settings.
    pub fn spec(&self) -> &TargetGroupSpec {
        &self.spec
    }

    /// Registers a new target in `zone`; it starts `initial`.
    pub fn register(&mut self, zone: u32) -> TargetId {
        let id = self.targets.len() as TargetId;
        self.targets.push(Target {
            zone,
            health: TargetHealth::registered(),
            registered: true,
            in_flight: 0,
            pos_all: ABSENT,
            pos_zone: ABSENT,
        });
        self.registered += 1;
        id
    }

    /// The target's state.
    pub fn health(&self, id: TargetId) -> Health {
        self.targets[id as usize].health.health
    }

    /// The zone of target `id`.
    pub fn zone(&self, id: TargetId) -> u32 {
        self.targets[id as usize].zone
    }

    /// Healthy targets in `zone` (CloudWatch's `HealthyHostCount` per AZ).
    pub fn healthy_in_zone(&self, zone: u32) -> usize {
        self.healthy.by_zone[zone as usize].len()
    }

    /// Healthy targets in all.
    pub fn healthy_count(&self) -> usize {
        self.healthy.all.len()
    }

    /// Targets registered (not deregistered).
    pub fn registered_count(&self) -> u32 {
        self.registered
    }

    /// Counts a health check's result on `id`; returns the new state when
    /// it changed.
    pub fn record_check(&mut self, id: TargetId, result: CheckResult) -> Option<Health> {
        let hc = self.spec.health_check;
        let before = self.health(id);
        let after = self.targets[id as usize].health.record(result, &hc)?;
        self.leave_pool(id, before);
        self.enter_pool(id, after);
        Some(after)
    }

    /// Deregisters `id` at `now`: it drains ([`Deregistered`]).
    pub fn deregister(&mut self, id: TargetId, now: SimTime) -> Deregistered {
        let before = self.health(id);
        self.leave_pool(id, before);
        let t = &mut self.targets[id as usize];
        if t.registered {
            t.registered = false;
            self.registered -= 1;
        }
        t.health.drain();
        if t.in_flight == 0 || self.spec.deregistration_delay == SimDuration::ZERO {
            Deregistered::Now
        } else {
            Deregistered::DrainingUntil(now + self.spec.deregistration_delay)
        }
    }

    /// The deregistration delay of a draining target has ended: the
    /// requests it still had in flight are cut off (returned: each gets a
    /// 502 from an ALB, a reset from an NLB).
    pub fn drain_ends(&mut self, id: TargetId) -> u32 {
        std::mem::take(&mut self.targets[id as usize].in_flight)
    }

    /// Where a new request entering at a load balancer node in `zone` goes.
    /// O(1) in targets and zones.
    pub fn route(&self, zone: u32, rng: &mut SimRng) -> Route {
        if let Some(id) = self.pick_healthy(zone, rng) {
            return Route::Healthy(id);
        }
        // Fail open: no healthy target anywhere.
        let fail_open = if self.spec.cross_zone {
            self.unhealthy.all.pick(rng)
        } else {
            self.unhealthy.by_zone[zone as usize]
                .pick(rng)
                .or_else(|| self.unhealthy.all.pick(rng))
        };
        fail_open.map_or(Route::NoTarget, Route::FailOpen)
    }

    fn pick_healthy(&self, zone: u32, rng: &mut SimRng) -> Option<TargetId> {
        if self.spec.cross_zone {
            return self.healthy.all.pick(rng);
        }
        if let Some(id) = self.healthy.by_zone[zone as usize].pick(rng) {
            return Some(id);
        }
        // The zone's node is out of DNS: the client resolved another zone's.
        if self.live_zones.is_empty() {
            return None;
        }
        let other = self.live_zones[rng.random_range(0..self.live_zones.len())];
        self.healthy.by_zone[other as usize].pick(rng)
    }

    /// A request is sent to `id`.
    pub fn begin(&mut self, id: TargetId) {
        self.targets[id as usize].in_flight += 1;
    }

    /// A request to `id` ended (answered or failed). Returns `true` when it
    /// was the last one of a draining target, whose deregistration then
    /// completes.
    pub fn end(&mut self, id: TargetId) -> bool {
        let t = &mut self.targets[id as usize];
        t.in_flight = t.in_flight.saturating_sub(1);
        t.in_flight == 0 && t.health.health == Health::Draining
    }

    fn pool(&mut self, health: Health) -> Option<&mut Pool> {
        match health {
            Health::Healthy => Some(&mut self.healthy),
            Health::Unhealthy => Some(&mut self.unhealthy),
            Health::Initial | Health::Draining => None,
        }
    }

    fn leave_pool(&mut self, id: TargetId, health: Health) {
        let Target {
            zone,
            pos_all,
            pos_zone,
            ..
        } = self.targets[id as usize];
        let Some(pool) = self.pool(health) else {
            return;
        };
        let moved_all = pool.all.remove(pos_all);
        let moved_zone = pool.by_zone[zone as usize].remove(pos_zone);
        let zone_empty = pool.by_zone[zone as usize].len() == 0;
        if let Some(m) = moved_all {
            self.targets[m as usize].pos_all = pos_all;
        }
        if let Some(m) = moved_zone {
            self.targets[m as usize].pos_zone = pos_zone;
        }
        let t = &mut self.targets[id as usize];
        t.pos_all = ABSENT;
        t.pos_zone = ABSENT;
        if health == Health::Healthy && zone_empty {
            let pos = std::mem::replace(&mut self.live_pos[zone as usize], ABSENT) as usize;
            self.live_zones.swap_remove(pos);
            if let Some(&m) = self.live_zones.get(pos) {
                self.live_pos[m as usize] = pos as u32;
            }
        }
    }

    fn enter_pool(&mut self, id: TargetId, health: Health) {
        let zone = self.targets[id as usize].zone;
        let (mut pos_all, mut pos_zone) = (ABSENT, ABSENT);
        let Some(pool) = self.pool(health) else {
            return;
        };
        pool.all.insert(id, &mut pos_all);
        pool.by_zone[zone as usize].insert(id, &mut pos_zone);
        let first_in_zone = pool.by_zone[zone as usize].len() == 1;
        let t = &mut self.targets[id as usize];
        t.pos_all = pos_all;
        t.pos_zone = pos_zone;
        if health == Health::Healthy && first_in_zone {
            self.live_pos[zone as usize] = self.live_zones.len() as u32;
            self.live_zones.push(zone);
        }
    }
}
