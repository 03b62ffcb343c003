//! Request-level balancing over an upstream's endpoints, as Envoy does it.
//!
//! - `ROUND_ROBIN`: each request to the next endpoint in turn (Envoy starts
//!   each proxy at a random offset; the caller passes it).
//! - `LEAST_REQUEST` with equal weights: the power of two choices: draw
//!   `choice_count` (default 2) endpoints at random, with replacement, and
//!   keep the one with the fewest active requests, the first drawn on a tie
//!   (Envoy `source/extensions/load_balancing_policies/least_request/
//!   least_request_lb.cc`, `unweightedHostPickNChoices`; docs/calibration.md,
//!   row `envoy-least-request`). Which policy Istio applies when a
//!   DestinationRule names none is not asserted here: the caller chooses.
//!
//! Ejected endpoints (outlier detection) are skipped by the caller's list
//! of candidates. O(1) per pick.

use rand::RngExt;
use sim_core::SimRng;

/// The policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// In turn.
    RoundRobin,
    /// Best of `choices` random draws by active requests.
    LeastRequest {
        /// Draws per pick (Envoy's `choice_count`, default 2).
        choices: u32,
    },
}

/// A balancer over endpoints `0..n`, with their active requests.
#[derive(Clone, Debug)]
pub struct Balancer {
    policy: Policy,
    active: Vec<u32>,
    next: usize,
}

impl Balancer {
    /// Over `n` endpoints, round robin starting at `offset` (modulo the
    /// candidates of each pick).
    pub fn new(policy: Policy, n: usize, offset: usize) -> Self {
        Balancer {
            policy,
            active: vec![0; n],
            next: offset,
        }
    }

    /// Requests in flight on endpoint `e` (0 for one never picked).
    pub fn active(&self, e: usize) -> u32 {
        self.active.get(e).copied().unwrap_or(0)
    }

    /// The endpoint for the next request; `None` without endpoints. Counts
    /// it active.
    pub fn pick(&mut self, rng: &mut SimRng) -> Option<usize> {
        let n = self.active.len();
        self.pick_from(n, |i| (i, true), rng)
    }

    /// Endpoints up to `n` in all (new ones with no request active):
    /// endpoints that appeared after the balancer was built.
    pub fn grow_to(&mut self, n: usize) {
        if n > self.active.len() {
            self.active.resize(n, 0);
        }
    }

    /// The candidate for the next request among `n`, candidate `i` being
    /// endpoint `host_of(i).0`, usable unless `host_of(i).1` is false
    /// (ejected): round robin takes the next usable candidate in turn,
    /// least request draws `choices` candidates (an unusable draw moves to
    /// the next usable one). When no candidate is usable every one is
    /// (Envoy's panic mode: all hosts rather than none). Counts its
    /// endpoint active; `None` without candidates. O(1) unless many
    /// candidates are unusable.
    pub fn pick_from(
        &mut self,
        n: usize,
        host_of: impl Fn(usize) -> (usize, bool),
        rng: &mut SimRng,
    ) -> Option<usize> {
        if n == 0 {
            return None;
        }
        // The first usable candidate from `i` on, in turn; `i` if none is
        // (`i` itself, the usual answer, without a division).
        let usable_from = |i: usize| {
            if host_of(i).1 {
                return i;
            }
            (1..n)
                .map(|k| (i + k) % n)
                .find(|&c| host_of(c).1)
                .unwrap_or(i)
        };
        let c = match self.policy {
            Policy::RoundRobin => {
                let i = self.next % n;
                self.next = (i + 1) % n;
                usable_from(i)
            }
            Policy::LeastRequest { choices } => {
                let mut best = usable_from(rng.random_range(0..n));
                let mut fewest = self.active[host_of(best).0];
                for _ in 1..choices.max(1) {
                    let c = usable_from(rng.random_range(0..n));
                    let active = self.active[host_of(c).0];
                    if active < fewest {
                        (best, fewest) = (c, active);
                    }
                }
                best
            }
        };
        self.active[host_of(c).0] += 1;
        Some(c)
    }

    /// A request to `e` ended.
    pub fn done(&mut self, e: usize) {
        self.active[e] = self.active[e].saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sim_core::RngStreams;

    #[test]
    fn round_robin_takes_turns() {
        let mut b = Balancer::new(Policy::RoundRobin, 3, 5);
        let mut rng = RngStreams::new(1).stream("rr");
        let picks: Vec<_> = (0..6).map(|_| b.pick(&mut rng).unwrap()).collect();
        assert_eq!(picks, vec![2, 0, 1, 2, 0, 1]);
        assert_eq!(Balancer::new(Policy::RoundRobin, 0, 0).pick(&mut rng), None);
    }

    #[test]
    fn least_request_avoids_the_busy_endpoint() {
        // Endpoint 0 holds 100 requests; the others none. With two choices
        // it is picked only when both draws land on it: 1/n^2 exactly.
        let n = 4;
        let mut b = Balancer::new(Policy::LeastRequest { choices: 2 }, n, 0);
        for _ in 0..100 {
            b.active[0] += 1;
        }
        let mut rng = RngStreams::new(2).stream("lr");
        let draws = 160_000;
        let mut busy = 0;
        for _ in 0..draws {
            let e = b.pick(&mut rng).unwrap();
            if e == 0 {
                busy += 1;
            }
            b.done(e);
        }
        let p = 1.0 / (n * n) as f64;
        let sd = (p * (1.0 - p) / draws as f64).sqrt();
        let got = busy as f64 / draws as f64;
        assert!((got - p).abs() < 4.0 * sd, "{got} vs {p}");
        // One choice is a uniform random pick.
        let mut one = Balancer::new(Policy::LeastRequest { choices: 1 }, n, 0);
        one.active[0] = 100;
        let busy = (0..40_000)
            .filter(|_| {
                let e = one.pick(&mut rng).unwrap();
                one.done(e);
                e == 0
            })
            .count();
        assert!((busy as f64 / 40_000.0 - 0.25).abs() < 0.01);
    }

    #[test]
    fn request_level_balancing_spreads_long_lived_clients() {
        // grpc_lb_imbalance's point: 4 clients on 3 pods. Per connection
        // one pod may carry two of them; per request each pod gets a third.
        let mut b = Balancer::new(Policy::RoundRobin, 3, 0);
        let mut rng = RngStreams::new(3).stream("grpc");
        let mut served = [0u32; 3];
        for _ in 0..3_000 {
            let e = b.pick(&mut rng).unwrap();
            served[e] += 1;
            b.done(e);
        }
        assert_eq!(served, [1_000, 1_000, 1_000]);
    }
}
