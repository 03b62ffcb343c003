//! # L7: the client proxy's per-request decisions
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
//! ## Tries and the application's request
//! A proxy try is a [`Request`] with its own id, [`MESH_TRY`] set in it, and
//! its own deadline (the per-try timeout, within the route's and the
//! application's); the room keeps a [`Call`] per try in flight: the
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
//! circuit-breaker overflows, ejections).
//!
//! ## Validation
//! Cluster tests (`l7_tests.rs`): request-level balancing evens pinned
//! connections, retries and the budget's cap, outlier ejection of a
//! failing pod, `UO` at `http2MaxRequests`; the conservation proptest
//! covers meshed sources.

use super::*;
use crate::mesh::circuit_breaker::Admission;
use crate::mesh::retry::{backoff, TryFailure};
use crate::mesh::rules::UpstreamPolicy;
use crate::mesh::try_timers::TryTimers;
use crate::mesh::upstream::{Upstream, UpstreamStats};

/// The bit of a request id that marks a proxy's try.
pub(crate) const MESH_TRY: u64 = 1 << 63;

/// A proxy try in flight (or waiting for its back-off or a connection).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Call {
    /// The application's try this proxy try serves.
    app_id: u64,
    app_deadline: SimTime,
    /// The route's timeout (or the application's deadline).
    route_deadline: SimTime,
    /// Tries sent so far, this one included.
    tries: u32,
    /// The host slot and pod of this try (once picked).
    slot: u32,
    /// Whether the try reached the upstream (counted active there).
    sent: bool,
}

/// One client proxy's upstream.
struct Proxy {
    up: Upstream,
}

/// The L7 room's state.
pub(crate) struct L7Rt {
    /// Per traffic source: the policy its proxies apply, `None`: not
    /// through a proxy.
    policies: Vec<Option<UpstreamPolicy>>,
    /// Per traffic source, per client pod.
    proxies: Vec<PodMap<Proxy>>,
    calls: IdMap<Call>,
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
        let policies: Vec<_> = cfg
            .traffic
            .iter()
            .map(|t| {
                let (from, to) = (t.from?, t.deployment?);
                if t.ingress.is_some() || t.load_balancer.is_some() || !cfg.mesh_proxied(from) {
                    return None;
                }
                Some(cfg.mesh_policy(to))
            })
            .collect();
        L7Rt {
            proxies: policies.iter().map(|_| PodMap::default()).collect(),
            rngs: cfg
                .traffic
                .iter()
                .map(|t| rng.stream(&format!("mesh/{}/l7", t.name)))
                .collect(),
            timers: TryTimers::new(policies.len()),
            policies,
            calls: IdMap::default(),
            wake: None,
            expired: Vec::new(),
        }
    }

    /// Whether source `t` goes through a client proxy.
    pub(crate) fn on(&self, t: usize) -> bool {
        self.policies[t].is_some()
    }

    /// Per source: its proxies' figures summed.
    pub(crate) fn stats(&self) -> Vec<Option<UpstreamStats>> {
        self.policies
            .iter()
            .zip(&self.proxies)
            .map(|(p, proxies)| {
                p.map(|_| {
                    // Summed in pod order: the same totals whatever the
                    // map's order.
                    let mut pods: Vec<_> = proxies.iter().collect();
                    pods.sort_by_key(|(c, _)| **c);
                    let mut s = UpstreamStats::default();
                    for (_, x) in pods {
                        s.add(&x.up.stats);
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
        let Some(policy) = self.l7.policies[t] else {
            return;
        };
        let route_deadline = policy
            .timeout
            .map_or(req.deadline, |d| (now + d).min(req.deadline));
        if let Some(c) = req.client.get() {
            let proxies = &mut self.l7.proxies[t];
            let rng = &mut self.l7.rngs[t];
            let proxy = proxies.entry(c).or_insert_with(|| Proxy {
                up: Upstream::new(policy, rng.random_range(0..1024usize)),
            });
            proxy.up.first_try(now);
        }
        let call = Call {
            app_id: req.id,
            app_deadline: req.deadline,
            route_deadline,
            tries: 0,
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
        let L7Rt { proxies, rngs, .. } = &mut self.l7;
        let Some(proxy) = proxies[t].get_mut(&c) else {
            return;
        };
        let Some((pod, slot)) = proxy.up.pick(eps, now, &mut rngs[t]) else {
            // No endpoint: Envoy's `503 UH`, as the Service refuses.
            if call.tries > 0 {
                proxy.up.retry_refused();
            }
            return self.outcome(app, Outcome::Refused);
        };
        if let Admission::Refused(_) = proxy.up.admit(slot) {
            if call.tries > 0 {
                proxy.up.retry_refused();
            }
            return self.outcome(app, Outcome::MeshOverflow);
        }
        self.next_request += 1;
        let id = self.next_request | MESH_TRY;
        call.tries += 1;
        call.slot = slot as u32;
        call.sent = true;
        let deadline = proxy
            .up
            .policy()
            .retries
            .per_try_timeout
            .map_or(call.route_deadline, |p| (now + p).min(call.route_deadline));
        let try_req = Request {
            id,
            deadline,
            conn: OptU32::NONE,
            ..req
        };
        self.l7.calls.insert(id, call);
        if let Some(at) = self.l7.timers.arm(t, deadline, id & !MESH_TRY, try_req) {
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
            .take_due(now, |r| !calls.contains_key(&r.id), &mut expired);
        for &r in &expired {
            // Ended meanwhile by a try before it in the batch (its
            // handler's outcome)?
            if self.l7.calls.contains_key(&r.id) {
                self.outcome(r, Outcome::TimedOut);
            }
        }
        self.l7.expired = expired;
        let calls = &self.l7.calls;
        if let Some(at) = self.l7.timers.next_wake(|r| !calls.contains_key(&r.id)) {
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
        let call = self.l7.calls.remove(&req.id)?;
        let t = req.source as usize;
        let now = self.engine.now();
        let c = req.client.get()?;
        let failure = try_failure(o);
        let proxy = self.l7.proxies[t].get_mut(&c)?;
        let policy = *proxy.up.policy();
        if call.sent {
            let before = proxy.up.stats.ejections;
            proxy
                .up
                .end_try(call.slot as usize, failure.is_some(), call.tries > 1, now);
            if proxy.up.stats.ejections > before {
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
        if policy.retries.may_retry(call.tries, f) && now < call.route_deadline {
            let wait = backoff(
                call.tries,
                policy.retries.backoff_base,
                policy.retries.backoff_max,
                &mut self.l7.rngs[t],
            );
            let admitted = now + wait < call.route_deadline
                && self.l7.proxies[t]
                    .get_mut(&c)
                    .is_some_and(|p| p.up.admit_retry(now));
            if admitted {
                self.traffic[t].totals.mesh_retried += 1;
                self.for_windows(t, now, |w| w.totals.mesh_retried += 1);
                self.next_request += 1;
                let id = self.next_request | MESH_TRY;
                let next = Call {
                    sent: false,
                    ..call
                };
                self.l7.calls.insert(id, next);
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
        if let Some(call) = self.l7.calls.remove(&r.id) {
            self.l7_try(r, call);
        }
    }
}

impl ClusterConfig {
    /// Whether workload `d`'s pods send through a client proxy that makes
    /// L7 decisions: a sidecar (ambient's waypoint is not modelled here).
    pub fn mesh_proxied(&self, d: usize) -> bool {
        self.mesh
            .as_ref()
            .is_some_and(|m| matches!(m.mode, crate::mesh::MeshMode::Sidecar(_)) && m.is_meshed(d))
    }

    /// What a client proxy applies to requests to Service `s`.
    pub fn mesh_policy(&self, s: usize) -> UpstreamPolicy {
        match &self.mesh {
            Some(m) => UpstreamPolicy::resolve(s, &m.destination_rules, &m.virtual_services),
            None => UpstreamPolicy::resolve(s, &[], &[]),
        }
    }
}
