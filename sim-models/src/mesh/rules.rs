//! Istio's traffic rules, resolved: what an L7 proxy (client sidecar or
//! waypoint) applies to the requests it forwards to one Service.
//!
//! - A [`DestinationRule`] (`host`, `trafficPolicy`): the balancing policy,
//!   outlier detection, the connection pool's circuit-breaker thresholds
//!   and the limit on concurrent retries (Envoy's `max_retries` or retry
//!   budget), or Linkerd's ratio budget in its place.
//! - A [`VirtualService`] (`host`, `timeout`, `retries`): the route's
//!   timeout and retry policy.
//!
//! [`UpstreamPolicy::resolve`] merges them with Istio's defaults where a
//! rule is absent or silent (docs/calibration.md rows `istio-default-retry`,
//! `istio-connection-pool-defaults`, `istio-default-lb`):
//! - balancing `LEAST_REQUEST` with Envoy's two choices;
//! - connection-pool thresholds 2^32 - 1 each (Istio sets Envoy's circuit
//!   breakers to that when a DestinationRule leaves them unset, so without
//!   one nothing overflows), `maxRetries` likewise;
//! - no outlier detection;
//! - the route: no timeout, 2 retries on Istio's default conditions.
//!
//! Rules are matched by Service index (Istio's short `host` name, resolved
//! by the scenario parser); the last rule for a Service wins (Istio merges
//! none; the parser refuses two for one host).

use super::balancer::Policy;
use super::circuit_breaker::Thresholds;
use super::outlier::OutlierSpec;
use super::retry::{ConcurrentBudget, RetryPolicy};
use sim_core::SimDuration;

/// What limits retries to one upstream.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RetryLimit {
    /// Envoy's concurrent limit: `max_retries` or the retry budget
    /// ([`ConcurrentBudget`]).
    Concurrent(ConcurrentBudget),
    /// Linkerd's budget: retries at most `ratio` of the requests of the
    /// last `ttl_secs` plus `min_per_second` x `ttl_secs`
    /// ([`super::retry::RatioBudget`]).
    Ratio {
        /// Retries per request.
        ratio: f64,
        /// Retries per second always allowed.
        min_per_second: f64,
        /// The window \[s\].
        ttl_secs: u32,
    },
}

/// A DestinationRule's traffic policy for one Service.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DestinationRule {
    /// The Service (index in the run's Services).
    pub service: usize,
    /// `loadBalancer.simple`; `None`: Istio's default.
    pub load_balancer: Option<Policy>,
    /// `outlierDetection`; `None`: off.
    pub outlier: Option<OutlierSpec>,
    /// `connectionPool` (`tcp.maxConnections`,
    /// `http.http1MaxPendingRequests`, `http.http2MaxRequests`).
    pub thresholds: Thresholds,
    /// `connectionPool.http.maxRetries`, `retryBudget`, or Linkerd's
    /// budget.
    pub retry_limit: RetryLimit,
}

/// A VirtualService's route for one Service.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VirtualService {
    /// The Service (index in the run's Services).
    pub service: usize,
    /// The route's timeout, every retry included; `None`: none.
    pub timeout: Option<SimDuration>,
    /// `retries` (attempts, perTryTimeout, retryOn).
    pub retries: RetryPolicy,
}

/// Istio's unset connection-pool limit: 2^32 - 1.
pub const ISTIO_UNLIMITED: u32 = u32::MAX;

impl Thresholds {
    /// Istio's thresholds when a DestinationRule sets none: 2^32 - 1 each.
    pub fn istio_default() -> Self {
        Thresholds {
            max_connections: ISTIO_UNLIMITED,
            max_pending_requests: ISTIO_UNLIMITED,
            max_requests: ISTIO_UNLIMITED,
        }
    }
}

impl RetryLimit {
    /// Istio's `maxRetries` when unset: 2^32 - 1 concurrent retries.
    pub fn istio_default() -> Self {
        RetryLimit::Concurrent(ConcurrentBudget::MaxRetries(ISTIO_UNLIMITED))
    }
}

impl DestinationRule {
    /// A rule for `service` that sets nothing (Istio's defaults).
    pub fn istio_default(service: usize) -> Self {
        DestinationRule {
            service,
            load_balancer: None,
            outlier: None,
            thresholds: Thresholds::istio_default(),
            retry_limit: RetryLimit::istio_default(),
        }
    }
}

/// Istio's balancing policy when a DestinationRule names none.
pub const ISTIO_DEFAULT_LB: Policy = Policy::LeastRequest { choices: 2 };

/// Everything a client proxy applies to the requests to one Service.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UpstreamPolicy {
    /// Request-level balancing.
    pub balancer: Policy,
    /// Outlier detection; `None`: off.
    pub outlier: Option<OutlierSpec>,
    /// Circuit-breaker thresholds.
    pub thresholds: Thresholds,
    /// The limit on retries.
    pub retry_limit: RetryLimit,
    /// The route's retry policy.
    pub retries: RetryPolicy,
    /// The route's timeout; `None`: none.
    pub timeout: Option<SimDuration>,
}

impl UpstreamPolicy {
    /// The policy for `service`: its rules (the last of each kind naming
    /// it) over Istio's defaults.
    pub fn resolve(
        service: usize,
        destination_rules: &[DestinationRule],
        virtual_services: &[VirtualService],
    ) -> Self {
        let dr = destination_rules
            .iter()
            .rev()
            .find(|r| r.service == service)
            .copied()
            .unwrap_or(DestinationRule::istio_default(service));
        let vs = virtual_services.iter().rev().find(|v| v.service == service);
        UpstreamPolicy {
            balancer: dr.load_balancer.unwrap_or(ISTIO_DEFAULT_LB),
            outlier: dr.outlier,
            thresholds: dr.thresholds,
            retry_limit: dr.retry_limit,
            retries: vs.map_or(RetryPolicy::istio_default(), |v| v.retries),
            timeout: vs.and_then(|v| v.timeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_without_rules_and_rules_override() {
        let p = UpstreamPolicy::resolve(0, &[], &[]);
        assert_eq!(p.balancer, Policy::LeastRequest { choices: 2 });
        assert_eq!(p.outlier, None);
        assert_eq!(p.thresholds.max_requests, u32::MAX);
        assert_eq!(p.retries.num_retries, 2);
        assert_eq!(p.timeout, None);
        let dr = DestinationRule {
            load_balancer: Some(Policy::RoundRobin),
            outlier: Some(OutlierSpec::envoy_default()),
            ..DestinationRule::istio_default(1)
        };
        let vs = VirtualService {
            service: 1,
            timeout: Some(SimDuration::from_secs(2)),
            retries: RetryPolicy::none(),
        };
        let p = UpstreamPolicy::resolve(1, &[dr], &[vs]);
        assert_eq!(p.balancer, Policy::RoundRobin);
        assert!(p.outlier.is_some());
        assert_eq!(p.retries.num_retries, 0);
        assert_eq!(p.timeout, Some(SimDuration::from_secs(2)));
        // Rules for another Service do not apply.
        assert_eq!(
            UpstreamPolicy::resolve(0, &[dr], &[vs]).retries.num_retries,
            2
        );
    }
}
