//! Retries: the route's policy, Envoy's back-off, and retry budgets.
//!
//! - **Policy** ([`RetryPolicy`]): how many retries and on what. Istio's
//!   default when a VirtualService sets none: 2 retries on
//!   `connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes`
//!   with 503 retriable, preferring hosts not tried yet (istio/istio
//!   `route/retry/retry.go`, `DefaultPolicy`; docs/calibration.md, row
//!   `istio-default-retry`). A route's timeout includes every retry.
//! - **Back-off** ([`backoff`]): Envoy's fully jittered exponential
//!   back-off: retry N waits a uniform time in [0, (2^N - 1) B) with base
//!   B = 25 ms, capped at 10 B = 250 ms (Envoy `router_filter.rst`; row
//!   `envoy-retry-backoff`).
//! - **Budgets**: Envoy's retry budget allows concurrent retries up to
//!   `budget_percent` (20%) of active plus pending requests, never fewer
//!   than `min_retry_concurrency` (3); without a budget the `max_retries`
//!   circuit breaker (3 concurrent) applies ([`ConcurrentBudget`];
//!   `circuit_breaker.proto`; row `envoy-retry-budget`). Linkerd's budget
//!   is a ratio over time: retries may add at most `retry_ratio` (0.2) of
//!   the requests of the last `ttl` (10 s) plus `min_retries_per_second`
//!   (10) ([`RatioBudget`]; Linkerd ServiceProfile `retryBudget`; row
//!   `linkerd-retry-budget`).

use rand::RngExt;
use sim_core::{SimDuration, SimRng, SimTime};

/// Why a try failed, in the words of Envoy's `retry_on` conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryFailure {
    /// The connection to the upstream failed (refused, timed out, reset
    /// before the request went out): `connect-failure`.
    ConnectFailure,
    /// An HTTP/2 stream refused by the upstream (`REFUSED_STREAM`).
    RefusedStream,
    /// gRPC status `UNAVAILABLE`.
    Unavailable,
    /// gRPC status `CANCELLED`.
    Cancelled,
    /// An HTTP status from the upstream (5xx or other).
    Status(u16),
    /// The per-try timeout passed.
    PerTryTimeout,
    /// The upstream reset the stream after the request went out.
    Reset,
}

/// The conditions a route retries on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryOn {
    /// `connect-failure`.
    pub connect_failure: bool,
    /// `refused-stream`.
    pub refused_stream: bool,
    /// `unavailable` (gRPC).
    pub unavailable: bool,
    /// `cancelled` (gRPC).
    pub cancelled: bool,
    /// `5xx`: any 5xx, a reset, a connect failure or a per-try timeout.
    pub any_5xx: bool,
    /// `gateway-error`: 502, 503, 504.
    pub gateway_error: bool,
    /// `retriable-status-codes`: these codes (at most four kept).
    pub status_codes: [u16; 4],
}

impl RetryOn {
    /// Istio's default conditions: connect-failure, refused-stream,
    /// unavailable, cancelled, and 503.
    pub fn istio_default() -> Self {
        RetryOn {
            connect_failure: true,
            refused_stream: true,
            unavailable: true,
            cancelled: true,
            any_5xx: false,
            gateway_error: false,
            status_codes: [503, 0, 0, 0],
        }
    }

    /// Whether a try that failed with `f` may be retried.
    pub fn matches(&self, f: TryFailure) -> bool {
        match f {
            TryFailure::ConnectFailure => self.connect_failure || self.any_5xx,
            TryFailure::RefusedStream => self.refused_stream,
            TryFailure::Unavailable => self.unavailable,
            TryFailure::Cancelled => self.cancelled,
            TryFailure::PerTryTimeout | TryFailure::Reset => self.any_5xx,
            TryFailure::Status(code) => {
                (self.any_5xx && (500..600).contains(&code))
                    || (self.gateway_error && matches!(code, 502..=504))
                    || self.status_codes.contains(&code)
            }
        }
    }
}

/// A route's retry policy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first try (`attempts` in Istio, `num_retries` in
    /// Envoy).
    pub num_retries: u32,
    /// What is retried.
    pub retry_on: RetryOn,
    /// Each try's own timeout; `None`: only the route's timeout.
    pub per_try_timeout: Option<SimDuration>,
    /// The back-off's base interval.
    pub backoff_base: SimDuration,
    /// The back-off's cap.
    pub backoff_max: SimDuration,
}

/// Envoy's default back-off base interval (row `envoy-retry-backoff`).
pub const ENVOY_BACKOFF_BASE: SimDuration = SimDuration::from_millis(25);

impl RetryPolicy {
    /// Istio's default policy (row `istio-default-retry`).
    pub fn istio_default() -> Self {
        RetryPolicy {
            num_retries: 2,
            retry_on: RetryOn::istio_default(),
            per_try_timeout: None,
            backoff_base: ENVOY_BACKOFF_BASE,
            backoff_max: ENVOY_BACKOFF_BASE.saturating_mul(10),
        }
    }

    /// No retries (Istio `attempts: 0`).
    pub fn none() -> Self {
        RetryPolicy {
            num_retries: 0,
            ..Self::istio_default()
        }
    }

    /// Whether try number `tries_done` (1 = the first try) that failed with
    /// `f` may be followed by another, budget aside.
    pub fn may_retry(&self, tries_done: u32, f: TryFailure) -> bool {
        tries_done <= self.num_retries && self.retry_on.matches(f)
    }
}

/// The back-off before retry `n` (1 = the first retry): uniform in
/// [0, min((2^n - 1) base, max)), in whole nanoseconds. One draw.
pub fn backoff(n: u32, base: SimDuration, max: SimDuration, rng: &mut SimRng) -> SimDuration {
    let factor = if n >= 63 { u64::MAX } else { (1u64 << n) - 1 };
    let bound = base.saturating_mul(factor).min(max).as_nanos();
    if bound == 0 {
        return SimDuration::ZERO;
    }
    SimDuration::from_nanos(rng.random_range(0..bound))
}

/// Envoy's limit on concurrent retries to one upstream cluster.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ConcurrentBudget {
    /// The `max_retries` circuit breaker: at most this many retries in
    /// flight (default 3).
    MaxRetries(u32),
    /// The retry budget: at most `percent` of active plus pending
    /// requests, and never fewer than `min_concurrency`.
    Budget {
        /// Share of active plus pending requests \[%\] (default 20).
        percent: f64,
        /// The floor (default 3).
        min_concurrency: u32,
    },
}

impl ConcurrentBudget {
    /// Envoy's default without a budget: `max_retries` 3.
    pub fn envoy_default() -> Self {
        ConcurrentBudget::MaxRetries(3)
    }

    /// Envoy's retry budget with its defaults: 20%, at least 3.
    pub fn envoy_budget() -> Self {
        ConcurrentBudget::Budget {
            percent: 20.0,
            min_concurrency: 3,
        }
    }

    /// How many retries may be in flight with `active` requests and
    /// `pending` ones waiting for a connection.
    pub fn limit(&self, active: u32, pending: u32) -> u32 {
        match *self {
            ConcurrentBudget::MaxRetries(n) => n,
            ConcurrentBudget::Budget {
                percent,
                min_concurrency,
            } => {
                let share = (f64::from(active + pending) * percent / 100.0) as u32;
                share.max(min_concurrency)
            }
        }
    }

    /// Whether one more retry may start with `retries_in_flight` already
    /// out. A refused retry is Envoy's `upstream_rq_retry_overflow`.
    pub fn admits(&self, retries_in_flight: u32, active: u32, pending: u32) -> bool {
        retries_in_flight < self.limit(active, pending)
    }
}

/// Linkerd's retry budget: retries may add `ratio` of the requests of the
/// last `ttl`, plus `min_per_second` x `ttl`. Counted in buckets of one
/// second: O(1) per request, a fixed ring of `ttl` seconds.
#[derive(Clone, Debug)]
pub struct RatioBudget {
    ratio: f64,
    min_per_second: f64,
    /// Requests (first tries) and retries per one-second bucket.
    requests: Vec<u32>,
    retries: Vec<u32>,
    /// The second the newest bucket counts.
    second: u64,
}

impl RatioBudget {
    /// Linkerd's defaults: ratio 0.2, 10 per second, ttl 10 s.
    pub fn linkerd_default() -> Self {
        Self::new(0.2, 10.0, 10)
    }

    /// A budget of `ratio` plus `min_per_second` over `ttl_secs` seconds.
    pub fn new(ratio: f64, min_per_second: f64, ttl_secs: u32) -> Self {
        let n = ttl_secs.max(1) as usize;
        RatioBudget {
            ratio,
            min_per_second,
            requests: vec![0; n],
            retries: vec![0; n],
            second: 0,
        }
    }

    fn advance(&mut self, now: SimTime) {
        let s = now.as_nanos() / 1_000_000_000;
        let n = self.requests.len() as u64;
        if s <= self.second {
            return;
        }
        let gap = (s - self.second).min(n);
        for k in 1..=gap {
            let i = ((self.second + k) % n) as usize;
            self.requests[i] = 0;
            self.retries[i] = 0;
        }
        self.second = s;
    }

    fn slot(&self) -> usize {
        (self.second % self.requests.len() as u64) as usize
    }

    /// A first try is sent at `now`.
    pub fn request(&mut self, now: SimTime) {
        self.advance(now);
        let i = self.slot();
        self.requests[i] += 1;
    }

    /// Whether a retry may be sent at `now`; if so it is counted.
    pub fn try_retry(&mut self, now: SimTime) -> bool {
        self.advance(now);
        let ttl = self.requests.len() as f64;
        let requests: u32 = self.requests.iter().sum();
        let retries: u32 = self.retries.iter().sum();
        let allowed = self.ratio * f64::from(requests) + self.min_per_second * ttl;
        if f64::from(retries) + 1.0 <= allowed {
            let i = self.slot();
            self.retries[i] += 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sim_core::RngStreams;

    #[test]
    fn backoff_ranges_are_envoys() {
        // router_filter.rst: "the first retry will be delayed randomly by
        // 0-24ms, the 2nd by 0-74ms, the 3rd by 0-174ms ... capped at ...
        // 250ms".
        let p = RetryPolicy::istio_default();
        let mut rng = RngStreams::new(1).stream("backoff");
        for (n, bound_ms) in [(1, 25.0), (2, 75.0), (3, 175.0), (4, 250.0), (9, 250.0)] {
            let mut max_seen: f64 = 0.0;
            for _ in 0..20_000 {
                let b = backoff(n, p.backoff_base, p.backoff_max, &mut rng).as_millis_f64();
                assert!(b < bound_ms, "retry {n}: {b} ms");
                max_seen = max_seen.max(b);
            }
            assert!(max_seen > 0.98 * bound_ms, "retry {n}: max {max_seen}");
        }
        assert_eq!(
            backoff(1, SimDuration::ZERO, SimDuration::ZERO, &mut rng),
            SimDuration::ZERO
        );
        // No overflow for absurd retry numbers.
        assert!(backoff(200, p.backoff_base, p.backoff_max, &mut rng).as_millis_f64() < 250.0);
    }

    #[test]
    fn istio_default_policy() {
        let p = RetryPolicy::istio_default();
        assert_eq!(p.num_retries, 2);
        // Retries 503, connect failures; not 500, not a per-try timeout.
        assert!(p.may_retry(1, TryFailure::Status(503)));
        assert!(p.may_retry(1, TryFailure::ConnectFailure));
        assert!(p.may_retry(2, TryFailure::RefusedStream));
        assert!(
            !p.may_retry(3, TryFailure::Status(503)),
            "2 retries: 3 tries"
        );
        assert!(!p.may_retry(1, TryFailure::Status(500)));
        assert!(!p.may_retry(1, TryFailure::PerTryTimeout));
        assert!(!p.may_retry(1, TryFailure::Reset));
        let mut on = RetryOn::istio_default();
        on.any_5xx = true;
        assert!(on.matches(TryFailure::Status(500)));
        assert!(on.matches(TryFailure::PerTryTimeout));
        assert!(!on.matches(TryFailure::Status(404)));
        assert!(!RetryPolicy::none().may_retry(1, TryFailure::ConnectFailure));
    }

    #[test]
    fn concurrent_budget_arithmetic() {
        let b = ConcurrentBudget::envoy_budget();
        // circuit_breaker.proto: "if there are 100 active requests and the
        // budget_percent is set to 25, there may be 25 active retries".
        let quarter = ConcurrentBudget::Budget {
            percent: 25.0,
            min_concurrency: 3,
        };
        assert_eq!(quarter.limit(100, 0), 25);
        assert_eq!(b.limit(100, 0), 20);
        assert_eq!(b.limit(60, 40), 20);
        assert_eq!(b.limit(5, 0), 3, "never below min_retry_concurrency");
        assert!(b.admits(19, 100, 0));
        assert!(!b.admits(20, 100, 0));
        let d = ConcurrentBudget::envoy_default();
        assert_eq!(d.limit(10_000, 0), 3);
    }

    #[test]
    fn ratio_budget_over_a_window() {
        let mut b = RatioBudget::linkerd_default();
        let t = |s: f64| SimTime::ZERO + SimDuration::from_secs_f64(s);
        // 1,000 requests in the first second: 0.2 x 1,000 + 10 x 10 = 300.
        for _ in 0..1_000 {
            b.request(t(0.5));
        }
        let granted = (0..1_000).filter(|_| b.try_retry(t(0.6))).count();
        assert_eq!(granted, 300);
        // Ten seconds later the window has forgotten them: only the floor.
        let granted = (0..1_000).filter(|_| b.try_retry(t(10.7))).count();
        assert_eq!(granted, 100);
        // A gap longer than the window clears it.
        let granted = (0..1_000).filter(|_| b.try_retry(t(100.0))).count();
        assert_eq!(granted, 100);
    }
}
