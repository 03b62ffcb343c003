//! # L7: the mesh proxy's per-request decisions (client sidecar or waypoint)
//!
//! ## Scope
//! Requests from a pod with a mesh proxy to a Service go through the
//! proxy's upstream cluster for that Service ([`crate::mesh::upstream`]):
//! the proxy, not kube-proxy, picks the endpoint, once per request
//! (`LEAST_REQUEST` with two choices, or `ROUND_ROBIN`), over the pooled
//! connections it keeps, one per endpoint (HTTP/2, as gRPC and Istio's
//! mTLS between proxies carry it), dialled to the pod address. The
//! application's own connection habit (one long-lived connection, a pool)
//! ends at its proxy. Per try the circuit breaker may refuse (`503 UO`);
//! a failed try may be retried after Envoy's back-off when the route's
//! retry policy matches the failure and the retry limit (Envoy's
//! `max_retries` or retry budget, or Linkerd's ratio budget) admits it; a
//! try ends at its per-try timeout, the route's timeout ends the request
//! (`504 UT`); each try's result feeds outlier detection.
//!
//! The rules come from [`crate::mesh::rules`] (Istio's DestinationRule and
//! VirtualService, resolved per Service, Istio's defaults where none).
//! Each (traffic source, client pod) has its own upstream state, as each
//! sidecar has its own Envoy (two sources from one pod to one Service
//! keep two: a simplification).
//!
//! ## Ambient: the waypoint decides
//! In ambient mode a ztunnel is L4 only: without a waypoint nothing here
//! applies (kube-proxy's per-connection pick, the application's own
//! retries, as without a mesh). With a waypoint, a request from a pod in
//! the cluster to a Service whose workloads are enrolled goes source
//! ztunnel, waypoint, destination ztunnel (the `mesh` room's chain), and
//! the waypoint makes every decision above, under the same rules
//! ([`MeshConfig::l7_proxy`] says which proxy, for the scenario's
//! validation too). What differs from sidecars, as in Istio's ambient data
//! plane:
//! - the upstream state is the waypoint's, one per Service shared by every
//!   client pod and every traffic source to it (one Envoy): least-request
//!   sees all their requests in flight, outlier detection all their
//!   failures, the circuit breaker and the retry budget all their tries;
//! - a retry leaves from the waypoint: its try carries [`FROM_WAYPOINT`],
//!   and the chain starts it at the waypoint (waypoint, destination
//!   ztunnel), not at the source ztunnel.
//!
//! Approximations: the waypoint decides when the application sends (the
//! source ztunnel's hop is not waited for before the pick: it is paid on
//! the way, as every hop's); the tries travel on the client pod's pooled
//! connections, one per endpoint as a sidecar's (the waypoint's own
//! connections to the endpoints are not told apart: setup time is not
//! waited for anyway); traffic entering through a load balancer or an
//! Ingress gets no L7 decision, as for sidecars. For Istio's own ingress
//! gateway that is Istio's default: it sends to a Service's waypoint only
//! when the Service is labelled `istio.io/ingress-use-waypoint: "true"`
//! (istiod's endpoint builder, `findServiceWaypoint`: "Ingress behaves
//! differently, must explicitly opt in"); an ingress controller enrolled
//! in the mesh as an ordinary workload would pass the waypoint, which is
//! not modelled.
//!
//! ## Tries and the application's request
//! A proxy try is a [`Request`] with its own id, [`MESH_TRY`] set in it, and
//! its own deadline (the per-try timeout, within the route's and the
//! application's); the room keeps a [`Call`] per try in flight, in a slab
//! whose slot the try's id carries ([`Calls`]): the
//! application's id and deadline, the route's deadline, the host, the
//! tries so far. Its deadline is a timer in [`TryTimers`] (a lane per
//! traffic source), woken by one `Ev::MeshTimers` at the earliest try
//! still in flight: a try that ends in time costs no event for its timer.
//! Everything downstream (dial, connections, servers)
//! handles a try as any request. When a try ends,
//! [`Sim::l7_try_ended`] decides: a retry (an `Ev::MeshRetry` after the
//! back-off), or the request's end, handed back to the application's
//! outcome under its own id (so its retries and give-up work as without a
//! mesh). A try whose call is gone (it timed out, the server answers
//! later) counts no more: the server's work on it is wasted, as Envoy's
//! reset stream leaves the upstream application working.
//!
//! Limitations: the connection's setup time is not waited for (as for
//! client-side balancing), so no request waits for a connection: the
//! circuit breaker's `maxConnections` and `http1MaxPendingRequests` are
//! not modelled (the scenario format refuses them), `http2MaxRequests`
//! is; a connect failure is passed to the application as the try's own
//! outcome (Envoy would answer `503 UF`).
//!
//! ## What it emits
//! Per traffic source: the retries the proxies sent
//! ([`RequestTotals::mesh_retried`], once per retry), the requests
//! answered `UO` and `UT` ([`RequestTotals::mesh_overflow`],
//! [`RequestTotals::mesh_timeout`]), and per upstream the proxies' figures
//! summed ([`RunOutput::mesh_upstreams`]: tries, retries, retry overflows,
//! circuit-breaker overflows, ejections; for a source through a waypoint,
//! the waypoint's upstream for its Service, the same figures under every
//! source to that Service).
//!
//! ## Validation
//! Cluster tests (`l7_tests.rs`): request-level balancing evens pinned
//! connections, retries and the budget's cap, outlier ejection of a
//! failing pod, `UO` at `http2MaxRequests`; `waypoint_tests.rs`: the same
//! through a waypoint (balancing, ejection by the shared state), a retry
//! passing the waypoint and the destination ztunnel only (the hops'
//! requests counted), ztunnels alone making no L7 decision; the
//! conservation proptest covers sidecar and waypoint sources.

use super::*;
use crate::mesh::circuit_breaker::Admission;
use crate::mesh::retry::{backoff, TryFailure};
use crate::mesh::rules::UpstreamPolicy;
use crate::mesh::try_timers::TryTimers;
use crate::mesh::upstream::{Upstream, UpstreamStats};
use crate::mesh::{MeshConfig, MeshMode};
use crate::services::ResolvedService;

/// The bit of a request id that marks a proxy's try.
pub(crate) const MESH_TRY: u64 = 1 << 63;
/// The bit of a proxy try's id that marks a retry sent by a waypoint: the
/// mesh chain starts it at the waypoint.
pub(crate) const FROM_WAYPOINT: u64 = 1 << 62;

/// A proxy try in flight (or waiting for its back-off or a connection).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Call {
    /// The try's id; 0: the slot is free.
    id: u64,
    /// The application's try this proxy try serves.
    app_id: u64,
    app_deadline: SimTime,
    /// The route's timeout (or the application's deadline).
    route_deadline: SimTime,
    /// Tries sent so far, this one included.
    tries: u32,
    /// The upstream deciding ([`L7Rt::upstreams`]).
    up: u32,
    /// The host slot and pod of this try (once picked).
    slot: u32,
    /// Whether the try reached the upstream (counted active there).
    sent: bool,
}

/// The proxy tries in flight, by id: a slab (no hashing, and the slots of
/// ended tries are reused while still in the cache). A try's id is
/// [`MESH_TRY`], its mark ([`FROM_WAYPOINT`] or none), its slot in bits
/// 0..31 and the slot's use count in bits 32..61, so that a try that ended
/// is told from the slot's next one: ids repeat only after 2^30 uses of one
/// slot, far more than the tries that start while one try is on its way.
#[derive(Default)]
struct Calls {
    slots: Vec<Call>,
    free: Vec<u32>,
}

/// The bits of a try's id that count its slot's uses.
const USES: u64 = ((1 << 30) - 1) << 32;
const _: () = assert!(USES & (MESH_TRY | FROM_WAYPOINT) == 0);

impl Calls {
    /// Keeps `call`; returns the id of its try (`mark` set in it).
    fn insert(&mut self, mark: u64, call: Call) -> u64 {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(Call::default());
            (self.slots.len() - 1) as u32
        });
        let c = &mut self.slots[slot as usize];
        let uses = (c.id & USES).wrapping_add(1 << 32) & USES;
        let id = MESH_TRY | mark | uses | u64::from(slot);
        *c = Call { id, ..call };
        id
    }

    /// Whether the try `id` is still in flight.
    fn live(&self, id: u64) -> bool {
        self.slots
            .get(id as u32 as usize)
            .is_some_and(|c| c.id == id)
    }

    /// The try `id`'s call, taken out; `None` if it ended already.
    fn remove(&mut self, id: u64) -> Option<Call> {
        let slot = id as u32;
        let c = self.slots.get_mut(slot as usize).filter(|c| c.id == id)?;
        let call = *c;
        // Free, keeping the use count for the slot's next id.
        c.id = id & USES;
        self.free.push(slot);
        Some(call)
    }
}

/// Which proxy makes a traffic source's L7 decisions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L7Proxy {
    /// The client pod's sidecar.
    Sidecar,
    /// Ambient's waypoint (for the destination Service).
    Waypoint,
}

/// The L7 room's state.
pub(crate) struct L7Rt {
    /// Per traffic source: the policy its proxies apply, `None`: not
    /// through a proxy.
    policies: Vec<Option<UpstreamPolicy>>,
    /// Per traffic source: the Service whose waypoint decides, `None`: its
    /// client sidecars do (or no proxy).
    waypoint_of: Vec<Option<u32>>,
    /// Every client proxy's (and waypoint's) upstream state, in the order
    /// the first request made each; a [`Call`] names its own.
    upstreams: Vec<Upstream>,
    /// Per traffic source, per client pod (sidecars): its upstream.
    proxies: Vec<PodMap<u32>>,
    /// Per Service: the waypoint's upstream, once a request went to it.
    waypoints: Vec<Option<u32>>,
    calls: Calls,
    /// Per traffic source: picks and back-offs.
    rngs: Vec<SimRng>,
    /// The tries' timers, a lane per traffic source, and the one wake-up
    /// event for them.
    timers: TryTimers<Request>,
    wake: Option<EventId>,
    /// The tries whose timer fires at a wake-up (kept for its buffer).
    expired: Vec<Request>,
}

impl L7Rt {
    /// The room for `cfg`: sources from workloads whose pods have a proxy,
    /// to a Service, go through it.
    pub(crate) fn new(cfg: &ClusterConfig, rng: &RngStreams) -> Self {
        let services = cfg.service_list();
        let via: Vec<_> = cfg
            .traffic
            .iter()
            .map(|t| Some((cfg.mesh.as_ref()?.l7_proxy(t, &services)?, t.service?)))
            .collect();
        let policies: Vec<_> = via
            .iter()
            .map(|v| v.map(|(_, to)| cfg.mesh_policy(to)))
            .collect();
        let waypoint_of = via
            .iter()
            .map(|v| match v {
                Some((L7Proxy::Waypoint, to)) => Some(*to as u32),
                _ => None,
            })
            .collect();
        L7Rt {
            upstreams: Vec::new(),
            proxies: via.iter().map(|_| PodMap::default()).collect(),
            waypoints: services.iter().map(|_| None).collect(),
            waypoint_of,
            rngs: cfg
                .traffic
                .iter()
                .map(|t| rng.stream(&format!("mesh/{}/l7", t.name)))
                .collect(),
            timers: TryTimers::new(policies.len()),
            policies,
            calls: Calls::default(),
            wake: None,
            expired: Vec::new(),
        }
    }

    /// Whether source `t` goes through a client proxy.
    pub(crate) fn on(&self, t: usize) -> bool {
        self.policies[t].is_some()
    }

    /// The upstream deciding for client pod `c` of source `t` (its
    /// sidecar's, or its Service's waypoint's), made by the first request;
    /// `None`: source `t` goes through no proxy.
    fn upstream_of(&mut self, t: usize, c: u32) -> Option<u32> {
        let L7Rt {
            upstreams,
            proxies,
            waypoints,
            waypoint_of,
            policies,
            rngs,
            ..
        } = self;
        let policy = policies[t].as_ref()?;
        let new = || {
            let offset = rngs[t].random_range(0..1024usize);
            upstreams.push(Upstream::new(*policy, offset));
            (upstreams.len() - 1) as u32
        };
        Some(match waypoint_of[t] {
            Some(s) => *waypoints[s as usize].get_or_insert_with(new),
            None => *proxies[t].entry(c).or_insert_with(new),
        })
    }

    /// The mark of source `t`'s try after `tries` tries: a retry through a
    /// waypoint leaves from it ([`FROM_WAYPOINT`]).
    fn retry_mark(&self, t: usize, tries: u32) -> u64 {
        match self.waypoint_of[t] {
            Some(_) if tries > 0 => FROM_WAYPOINT,
            _ => 0,
        }
    }

    /// Per source: its proxies' figures summed (its Service's waypoint's).
    pub(crate) fn stats(&self) -> Vec<Option<UpstreamStats>> {
        self.policies
            .iter()
            .zip(&self.proxies)
            .zip(&self.waypoint_of)
            .map(|((p, proxies), w)| {
                p.map(|_| {
                    if let Some(s) = w {
                        return self.waypoints[*s as usize]
                            .map_or_else(UpstreamStats::default, |u| {
                                self.upstreams[u as usize].stats
                            });
                    }
                    // Summed in pod order: the same totals whatever the
                    // map's order.
                    let mut pods: Vec<_> = proxies.iter().collect();
                    pods.sort_by_key(|(c, _)| **c);
                    let mut s = UpstreamStats::default();
                    for (_, &u) in pods {
                        s.add(&self.upstreams[u as usize].stats);
                    }
                    s
                })
            })
            .collect()
    }
}

/// How Envoy's `retry_on` sees a try's outcome.
fn try_failure(o: Outcome) -> Option<TryFailure> {
    match o {
        Outcome::Answered(_) => None,
        Outcome::Rejected | Outcome::MeshOverflow | Outcome::DependencyFailed => {
            Some(TryFailure::Status(503))
        }
        Outcome::TimedOut | Outcome::AnsweredLate | Outcome::MeshTimeout => {
            Some(TryFailure::PerTryTimeout)
        }
        // A restarting sidecar's reset (or its refusal before it listens)
        // is taken as a reset: Istio's default `retryOn` does not retry it.
        Outcome::NatIdleReset | Outcome::LbReset | Outcome::ProxyReset => Some(TryFailure::Reset),
        Outcome::LbBadGateway => Some(TryFailure::Status(502)),
        Outcome::LbUnavailable => Some(TryFailure::Status(503)),
        Outcome::LbGatewayTimeout => Some(TryFailure::Status(504)),
        Outcome::NotFound => Some(TryFailure::Status(404)),
        Outcome::LookupFailed
        | Outcome::Refused
        | Outcome::PortClosed
        | Outcome::Blocked
        | Outcome::SynDropped
        | Outcome::StaleEndpoint
        | Outcome::NoHost
        | Outcome::EdgeDropped
        | Outcome::NoLocalEndpoint
        | Outcome::NatDropped
        | Outcome::NatPortAllocation
        | Outcome::LbConnectTimeout => Some(TryFailure::ConnectFailure),
    }
}

impl Sim<'_> {
    /// The application's try `req` leaves its pod through the proxy.
    pub(crate) fn l7_request(&mut self, req: Request) {
        let t = req.source as usize;
        let now = self.engine.now();
        let l7 = &mut self.l7;
        let (Some(policy), Some(c)) = (&l7.policies[t], req.client.get()) else {
            return;
        };
        let route_deadline = policy
            .timeout
            .map_or(req.deadline, |d| (now + d).min(req.deadline));
        let Some(up) = l7.upstream_of(t, c) else {
            return;
        };
        self.l7.upstreams[up as usize].first_try(now);
        let call = Call {
            id: 0,
            app_id: req.id,
            app_deadline: req.deadline,
            route_deadline,
            tries: 0,
            up,
            slot: 0,
            sent: false,
        };
        self.l7_try(req, call);
    }

    /// Sends the next try of `call` (the application's request `req`).
    fn l7_try(&mut self, req: Request, mut call: Call) {
        let t = req.source as usize;
        let now = self.engine.now();
        let Some(c) = req.client.get() else { return };
        let Some(d) = self.target_of(&req) else {
            return;
        };
        let app = Request {
            id: call.app_id,
            deadline: call.app_deadline,
            conn: OptU32::NONE,
            ..req
        };
        let eps = self.services.endpoints(&self.deps, d);
        let mark = self.l7.retry_mark(t, call.tries);
        let L7Rt {
            upstreams, rngs, ..
        } = &mut self.l7;
        let up = &mut upstreams[call.up as usize];
        let Some((pod, slot)) = up.pick(eps, now, &mut rngs[t]) else {
            // No endpoint: Envoy's `503 UH`, as the Service refuses.
            if call.tries > 0 {
                up.retry_refused();
            }
            return self.outcome(app, Outcome::Refused);
        };
        if let Admission::Refused(_) = up.admit(slot) {
            if call.tries > 0 {
                up.retry_refused();
            }
            return self.outcome(app, Outcome::MeshOverflow);
        }
        self.next_request += 1;
        call.tries += 1;
        call.slot = slot as u32;
        call.sent = true;
        let deadline = up
            .policy()
            .retries
            .per_try_timeout
            .map_or(call.route_deadline, |p| (now + p).min(call.route_deadline));
        let id = self.l7.calls.insert(mark, call);
        let try_req = Request {
            id,
            deadline,
            conn: OptU32::NONE,
            ..req
        };
        if let Some(at) = self.l7.timers.arm(t, deadline, self.next_request, try_req) {
            let wake = self.engine.schedule_at(at, Ev::MeshTimers);
            if let Some(old) = self.l7.wake.replace(wake) {
                self.engine.cancel(old);
            }
        }
        let pooled = self.traffic[t]
            .clients
            .get(&c)
            .and_then(|cc| cc.by_server.get(&pod))
            .copied();
        match pooled {
            Some(conn) => self.send_on(conn, try_req),
            None => self.dial(try_req, Some(c), now, 0, Some(pod)),
        }
    }

    /// The tries' wake-up: the tries whose per-try timeout (or the
    /// route's, or the application's deadline) passed and that are still
    /// in flight end, timed out.
    pub(crate) fn l7_timers(&mut self) {
        let now = self.engine.now();
        self.l7.wake = None;
        let mut expired = std::mem::take(&mut self.l7.expired);
        let calls = &self.l7.calls;
        self.l7
            .timers
            .take_due(now, |r| !calls.live(r.id), &mut expired);
        for &r in &expired {
            // Ended meanwhile by a try before it in the batch (its
            // handler's outcome)?
            if self.l7.calls.live(r.id) {
                self.outcome(r, Outcome::TimedOut);
            }
        }
        self.l7.expired = expired;
        let calls = &self.l7.calls;
        if let Some(at) = self.l7.timers.next_wake(|r| !calls.live(r.id)) {
            self.l7.wake = Some(self.engine.schedule_at(at, Ev::MeshTimers));
        }
    }

    /// A try ended with `o`: `None` when the room takes it from here (a
    /// retry, or a try that no longer counts), or the application's
    /// request and what it sees.
    pub(crate) fn l7_try_ended(&mut self, req: Request, o: Outcome) -> Option<(Request, Outcome)> {
        if req.id & MESH_TRY == 0 {
            return Some((req, o));
        }
        let call = self.l7.calls.remove(req.id)?;
        let t = req.source as usize;
        let now = self.engine.now();
        let failure = try_failure(o);
        let up = &mut self.l7.upstreams[call.up as usize];
        if call.sent {
            let before = up.stats.ejections;
            up.end_try(call.slot as usize, failure.is_some(), call.tries > 1, now);
            if up.stats.ejections > before {
                self.traffic[t].totals.mesh_ejections += 1;
                self.for_windows(t, now, |w| w.totals.mesh_ejections += 1);
            }
        }
        let app = Request {
            id: call.app_id,
            deadline: call.app_deadline,
            conn: OptU32::NONE,
            ..req
        };
        let Some(f) = failure else {
            return Some((app, o));
        };
        let L7Rt {
            upstreams, rngs, ..
        } = &mut self.l7;
        let up = &mut upstreams[call.up as usize];
        let retries = &up.policy().retries;
        if retries.may_retry(call.tries, f) && now < call.route_deadline {
            let wait = backoff(
                call.tries,
                retries.backoff_base,
                retries.backoff_max,
                &mut rngs[t],
            );
            let admitted = now + wait < call.route_deadline && up.admit_retry(now);
            if admitted {
                self.traffic[t].totals.mesh_retried += 1;
                self.for_windows(t, now, |w| w.totals.mesh_retried += 1);
                self.next_request += 1;
                let next = Call {
                    sent: false,
                    ..call
                };
                let id = self.l7.calls.insert(0, next);
                let r = Request { id, ..req };
                self.engine.schedule_at(now + wait, Ev::MeshRetry(r));
                return None;
            }
        }
        // The request ends here: a try that ran out of time is the route's
        // `504 UT` unless the application had given up by then.
        let o = match o {
            Outcome::TimedOut if now < call.app_deadline => Outcome::MeshTimeout,
            o => o,
        };
        Some((app, o))
    }

    /// A retry's back-off ended: the try goes out.
    pub(crate) fn l7_retry(&mut self, r: Request) {
        if let Some(call) = self.l7.calls.remove(r.id) {
            self.l7_try(r, call);
        }
    }
}

impl MeshConfig {
    /// The proxy that makes traffic `t`'s L7 decisions (`services`: the
    /// run's, resolved): the client's sidecar when its workload is meshed;
    /// in ambient mode with a waypoint, the waypoint when a workload behind
    /// the target Service is enrolled (ztunnels alone are L4: `None`).
    /// Traffic from outside the cluster, through a load balancer or an
    /// Ingress: `None`.
    pub fn l7_proxy(&self, t: &TrafficSpec, services: &[ResolvedService]) -> Option<L7Proxy> {
        let (from, to) = (t.from?, t.service?);
        if t.ingress.is_some() || t.load_balancer.is_some() {
            return None;
        }
        match self.mode {
            MeshMode::Sidecar(_) => self.is_meshed(from).then_some(L7Proxy::Sidecar),
            MeshMode::Ambient { waypoint: Some(_) } => services
                .get(to)
                .is_some_and(|s| s.workloads.iter().any(|&w| self.is_meshed(w)))
                .then_some(L7Proxy::Waypoint),
            MeshMode::Ambient { waypoint: None } => None,
        }
    }
}

impl ClusterConfig {
    /// What a client proxy applies to requests to Service `s`.
    pub fn mesh_policy(&self, s: usize) -> UpstreamPolicy {
        match &self.mesh {
            Some(m) => UpstreamPolicy::resolve(s, &m.destination_rules, &m.virtual_services),
            None => UpstreamPolicy::resolve(s, &[], &[]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slot is reused once its try ended, under a new id; the ended
    /// try's id no longer finds a call, and the mark stays in the id.
    #[test]
    fn a_reused_call_slot_gets_a_new_id() {
        let mut calls = Calls::default();
        let call = |tries| Call {
            tries,
            ..Call::default()
        };
        let a = calls.insert(0, call(1));
        let b = calls.insert(FROM_WAYPOINT, call(2));
        assert_ne!(a as u32, b as u32, "two live tries, two slots");
        assert_eq!(a & MESH_TRY, MESH_TRY);
        assert_eq!(b & FROM_WAYPOINT, FROM_WAYPOINT);
        assert!(calls.live(a) && calls.live(b));
        assert_eq!(calls.remove(a).map(|c| c.tries), Some(1));
        assert!(!calls.live(a));
        assert!(calls.remove(a).is_none(), "a try ends once");
        let c = calls.insert(0, call(3));
        assert_eq!(c as u32, a as u32, "the freed slot is reused");
        assert_ne!(c, a);
        assert!(!calls.live(a) && calls.live(c));
        assert_eq!(calls.remove(c).map(|c| c.tries), Some(3));
        assert_eq!(calls.remove(b).map(|c| c.tries), Some(2));
    }
}
