//! One L7 proxy's (a client sidecar's or a waypoint's) upstream cluster:
//! the mechanisms of this module composed for the requests one proxy
//! forwards to one Service.
//!
//! Per try: [`Upstream::pick`] draws the endpoint (request-level balancing
//! over the Service's Ready endpoints, ejected ones skipped), then
//! [`Upstream::admit`] asks the circuit breaker; a retry first asks the
//! retry limit ([`Upstream::admit_retry`]); [`Upstream::end_try`] feeds
//! the result back (active requests, outlier detection). Endpoints are
//! pods; each is a host by its Service's host number
//! ([`Endpoints::hosts`]: one per pod ever an endpoint, never reused, so a
//! pod that left keeps its number: the outlier detector's ejection
//! percentage counts every host the Service has had, an approximation for
//! Services whose pods are replaced during the run). Outlier sweeps run
//! lazily, at the first use after each interval boundary (at most 64
//! sweeps at once: by then every multiplier is back to zero).
//!
//! No knowledge of the event queue; O(1) per try apart from the hosts'
//! first sight (the per-host vectors grow) and the sweeps (O(hosts) per
//! interval).

use super::balancer::Balancer;
use super::circuit_breaker::{Admission, CircuitBreaker};
use super::outlier::{OutlierDetector, Verdict};
use super::retry::RatioBudget;
use super::rules::{RetryLimit, UpstreamPolicy};
use crate::service::Endpoints;
use sim_core::{SimRng, SimTime};

/// The figures a mesh dashboard shows for one upstream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpstreamStats {
    /// Tries sent (first tries and retries).
    pub tries: u64,
    /// Retries sent (`upstream_rq_retry`).
    pub retries: u64,
    /// Retries the retry limit refused (`upstream_rq_retry_overflow`).
    pub retry_overflows: u64,
    /// Tries the circuit breaker refused, by threshold (connections,
    /// pending, requests): answered 503 `UO`.
    pub overflows: [u64; 3],
    /// Hosts ejected (`ejections_enforced_total`).
    pub ejections: u64,
    /// Ejections the percentage cap refused (`ejections_overflow`).
    pub ejection_overflows: u64,
}

impl UpstreamStats {
    /// Adds `o`'s counts.
    pub fn add(&mut self, o: &UpstreamStats) {
        self.tries += o.tries;
        self.retries += o.retries;
        self.retry_overflows += o.retry_overflows;
        for (a, b) in self.overflows.iter_mut().zip(o.overflows) {
            *a += b;
        }
        self.ejections += o.ejections;
        self.ejection_overflows += o.ejection_overflows;
    }

    /// Tries refused with `UO`.
    pub fn overflowed(&self) -> u64 {
        self.overflows.iter().sum()
    }
}

/// One proxy's state for one upstream Service.
///
/// In the order a try reads and writes it (`repr(C)`), so that a try's
/// pick, admission and end touch a few adjacent cache lines of the 512
/// bytes, not one here and one there: a run's thousands of client proxies
/// are touched in no order.
#[derive(Clone, Debug)]
#[repr(C)]
pub struct Upstream {
    balancer: Balancer,
    cb: CircuitBreaker,
    /// Figures.
    pub stats: UpstreamStats,
    retries_in_flight: u32,
    next_sweep: SimTime,
    outlier: Option<OutlierDetector>,
    ratio: Option<RatioBudget>,
    policy: UpstreamPolicy,
    returned: Vec<usize>,
}

impl Upstream {
    /// A proxy's upstream under `policy`, no endpoint seen yet; `offset`:
    /// where round robin starts.
    pub fn new(policy: UpstreamPolicy, offset: usize) -> Self {
        let ratio = match policy.retry_limit {
            RetryLimit::Ratio {
                ratio,
                min_per_second,
                ttl_secs,
            } => Some(RatioBudget::new(ratio, min_per_second, ttl_secs)),
            RetryLimit::Concurrent(_) => None,
        };
        Upstream {
            policy,
            balancer: Balancer::new(policy.balancer, 0, offset),
            outlier: policy.outlier.map(|s| OutlierDetector::new(s, 0)),
            next_sweep: SimTime::ZERO
                + policy
                    .outlier
                    .map_or(sim_core::SimDuration::ZERO, |s| s.interval),
            returned: Vec::new(),
            cb: CircuitBreaker::new(policy.thresholds),
            retries_in_flight: 0,
            ratio,
            stats: UpstreamStats::default(),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &UpstreamPolicy {
        &self.policy
    }

    /// Runs the outlier sweeps due by `now`.
    fn sweep(&mut self, now: SimTime) {
        let Some(o) = self.outlier.as_mut() else {
            return;
        };
        let interval = self
            .policy
            .outlier
            .map_or(sim_core::SimDuration::ZERO, |s| s.interval);
        if interval == sim_core::SimDuration::ZERO {
            return;
        }
        let mut k = 0;
        while self.next_sweep <= now && k < 64 {
            o.sweep(self.next_sweep, &mut self.returned);
            self.next_sweep += interval;
            k += 1;
        }
        if self.next_sweep <= now {
            // Idle for long: every multiplier is back to zero; later
            // sweeps fall on the same grid.
            let behind = (now - self.next_sweep).as_nanos() / interval.as_nanos() + 1;
            self.next_sweep += interval.saturating_mul(behind);
        }
    }

    /// The endpoint for a try among `eps` (the Service's Ready pods): its
    /// pod and host number; `None` without endpoints. Counts it active on
    /// the host.
    pub fn pick(
        &mut self,
        eps: &Endpoints,
        now: SimTime,
        rng: &mut SimRng,
    ) -> Option<(u32, usize)> {
        self.sweep(now);
        let hosts = eps.hosts();
        self.balancer.grow_to(eps.host_count());
        if let Some(o) = self.outlier.as_mut() {
            o.grow_to(eps.host_count());
        }
        let outlier = &self.outlier;
        let i = self.balancer.pick_from(
            hosts.len(),
            |i| {
                let h = hosts[i] as usize;
                (h, !outlier.as_ref().is_some_and(|o| o.is_ejected(h)))
            },
            rng,
        )?;
        Some((eps.pods()[i], hosts[i] as usize))
    }

    /// The circuit breaker's answer for a try to `slot`, on the pooled
    /// connection to its endpoint (HTTP/2: a request never waits for a
    /// connection, so only `max_requests` refuses). A refused try is
    /// counted inactive again on `slot`.
    pub fn admit(&mut self, slot: usize) -> Admission {
        let a = self.cb.admit(true);
        match a {
            Admission::Refused(o) => {
                self.stats.overflows[o as usize] += 1;
                self.balancer.done(slot);
            }
            _ => self.stats.tries += 1,
        }
        a
    }

    /// A first try is sent at `now` (Linkerd's budget counts requests).
    pub fn first_try(&mut self, now: SimTime) {
        if let Some(r) = self.ratio.as_mut() {
            r.request(now);
        }
    }

    /// Whether a retry may be sent at `now`; if so it is counted (in
    /// flight until [`Upstream::end_try`] with `retry`).
    pub fn admit_retry(&mut self, now: SimTime) -> bool {
        let ok = match (self.policy.retry_limit, self.ratio.as_mut()) {
            (_, Some(r)) => r.try_retry(now),
            (RetryLimit::Concurrent(b), None) => {
                let (active, pending) = self.cb.load();
                b.admits(self.retries_in_flight, active, pending)
            }
            (RetryLimit::Ratio { .. }, None) => true,
        };
        if ok {
            self.retries_in_flight += 1;
            self.stats.retries += 1;
        } else {
            self.stats.retry_overflows += 1;
        }
        ok
    }

    /// A retry the circuit breaker then refused: no longer in flight.
    pub fn retry_refused(&mut self) {
        self.retries_in_flight = self.retries_in_flight.saturating_sub(1);
    }

    /// A try sent to `slot` ended at `now`: `server_error` (a 5xx, or a
    /// connect failure, reset or timeout mapped to one) counts towards the
    /// host's ejection; `retry`: the try was a retry.
    pub fn end_try(&mut self, slot: usize, server_error: bool, retry: bool, now: SimTime) {
        self.balancer.done(slot);
        self.cb.finish();
        if retry {
            self.retries_in_flight = self.retries_in_flight.saturating_sub(1);
        }
        self.sweep(now);
        if let Some(o) = self.outlier.as_mut() {
            match o.record(slot, server_error, now) {
                Verdict::Ejected => self.stats.ejections += 1,
                Verdict::Overflow => self.stats.ejection_overflows += 1,
                Verdict::None => {}
            }
        }
    }

    /// Hosts ejected now.
    pub fn ejected(&self) -> u32 {
        self.outlier.as_ref().map_or(0, |o| o.ejected_count())
    }

    /// Requests in flight on host `host` (0 if never picked).
    pub fn active_on(&self, host: usize) -> u32 {
        self.balancer.active(host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::balancer::Policy;
    use crate::mesh::circuit_breaker::Overflow;
    use crate::mesh::outlier::OutlierSpec;
    use crate::mesh::retry::ConcurrentBudget;
    use sim_core::{RngStreams, SimDuration};

    fn at(ms: u64) -> SimTime {
        SimTime::ZERO + SimDuration::from_millis(ms)
    }

    fn policy() -> UpstreamPolicy {
        UpstreamPolicy::resolve(0, &[], &[])
    }

    fn endpoints(pods: &[u32]) -> Endpoints {
        let mut e = Endpoints::default();
        pods.iter().for_each(|&p| e.add(p));
        e
    }

    #[test]
    fn picks_per_request_over_the_endpoints_seen() {
        let mut up = Upstream::new(
            UpstreamPolicy {
                balancer: Policy::RoundRobin,
                ..policy()
            },
            0,
        );
        let mut rng = RngStreams::new(1).stream("up");
        let mut eps = endpoints(&[40, 41, 42]);
        let picks: Vec<u32> = (0..6)
            .map(|_| up.pick(&eps, at(0), &mut rng).unwrap().0)
            .collect();
        assert_eq!(picks, vec![40, 41, 42, 40, 41, 42]);
        assert_eq!(up.active_on(eps.host_of(41).unwrap() as usize), 2);
        // A pod that appears gets a host; one that left is no candidate.
        eps.remove(40);
        eps.add(43);
        let picks: Vec<(u32, usize)> = (0..3)
            .map(|_| up.pick(&eps, at(0), &mut rng).unwrap())
            .collect();
        assert!(picks.contains(&(43, 3)) && !picks.iter().any(|p| p.0 == 40));
        assert_eq!(up.pick(&endpoints(&[]), at(0), &mut rng), None);
    }

    #[test]
    fn circuit_breaker_refuses_beyond_max_requests() {
        let mut p = policy();
        p.thresholds.max_requests = 2;
        let mut up = Upstream::new(p, 0);
        let mut rng = RngStreams::new(2).stream("up");
        let eps = endpoints(&[1, 2]);
        let mut slots = Vec::new();
        for _ in 0..3 {
            let (_, s) = up.pick(&eps, at(0), &mut rng).unwrap();
            slots.push((s, up.admit(s)));
        }
        assert_eq!(slots[2].1, Admission::Refused(Overflow::Requests));
        assert_eq!(up.stats.overflows, [0, 0, 1]);
        assert_eq!(up.stats.tries, 2);
        // The refused try is not active; one ending frees room for another.
        assert_eq!(up.active_on(0) + up.active_on(1), 2);
        up.end_try(slots[0].0, false, false, at(1));
        let (_, s) = up.pick(&eps, at(1), &mut rng).unwrap();
        assert_eq!(up.admit(s), Admission::Sent);
    }

    #[test]
    fn retry_limits_concurrent_and_ratio() {
        // Envoy's max_retries: 2 in flight at most.
        let mut p = policy();
        p.retry_limit = RetryLimit::Concurrent(ConcurrentBudget::MaxRetries(2));
        let mut up = Upstream::new(p, 0);
        assert!(up.admit_retry(at(0)) && up.admit_retry(at(0)));
        assert!(!up.admit_retry(at(0)));
        up.retry_refused();
        assert!(up.admit_retry(at(0)));
        assert_eq!((up.stats.retries, up.stats.retry_overflows), (3, 1));
        // Linkerd's: 0.2 x 100 requests + 1/s x 10 s = 30 retries in the window.
        p.retry_limit = RetryLimit::Ratio {
            ratio: 0.2,
            min_per_second: 1.0,
            ttl_secs: 10,
        };
        let mut up = Upstream::new(p, 0);
        for _ in 0..100 {
            up.first_try(at(100));
        }
        let granted = (0..100).filter(|_| up.admit_retry(at(200))).count();
        assert_eq!(granted, 30);
    }

    #[test]
    fn consecutive_errors_eject_and_the_sweep_returns() {
        let mut p = policy();
        p.outlier = Some(OutlierSpec {
            max_ejection_percent: 50,
            ..OutlierSpec::envoy_default()
        });
        let mut up = Upstream::new(p, 0);
        let mut rng = RngStreams::new(3).stream("up");
        let eps = endpoints(&[7, 8]);
        up.pick(&eps, at(0), &mut rng);
        let bad = eps.host_of(7).unwrap() as usize;
        for _ in 0..5 {
            up.end_try(bad, true, false, at(1_000));
        }
        assert_eq!((up.ejected(), up.stats.ejections), (1, 1));
        // Ejected: every pick goes to the other pod.
        assert!((0..200).all(|_| up.pick(&eps, at(2_000), &mut rng).unwrap().0 == 8));
        // Back at the first sweep 30 s after: the sweep at 40 s.
        up.pick(&eps, at(39_000), &mut rng);
        assert_eq!(up.ejected(), 1);
        up.pick(&eps, at(40_000), &mut rng);
        assert_eq!(up.ejected(), 0);
        // All hosts ejected would leave none: Envoy's panic mode uses them.
        let mut all = Upstream::new(p, 0);
        all.pick(&endpoints(&[5]), at(0), &mut rng);
        for _ in 0..5 {
            all.end_try(0, true, false, at(1));
        }
        assert_eq!(all.ejected(), 0, "50% cap: one host of one is 100%");
    }
}
