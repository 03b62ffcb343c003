//! The mesh's L7 rules: `mesh.destination_rules` and `mesh.virtual_services`.
//!
//! # Scope
//! Istio's traffic objects as the client proxies (sidecars, or ambient's
//! waypoint) apply them to the requests they forward (sim-models `mesh::rules`, `mesh::upstream`), in
//! Istio's own field names: a DestinationRule's `host` and
//! `trafficPolicy` (`loadBalancer.simple`, `outlierDetection`,
//! `connectionPool`, `retryBudget`), and a VirtualService's `host`,
//! `timeout` and `retries` (`attempts`, `perTryTimeout`, `retryOn`). One
//! knsim extension: `linkerdRetryBudget` puts Linkerd's ServiceProfile
//! budget (`retryRatio`, `minRetriesPerSecond`, `ttl`) in Envoy's place.
//! A Service without rules gets Istio's defaults (docs/calibration.md rows
//! `istio-default-lb`, `istio-connection-pool-defaults`,
//! `istio-default-retry`).
//!
//! ```yaml
//! mesh:
//!   destination_rules:
//!     - host: orders
//!       trafficPolicy:
//!         loadBalancer: {simple: ROUND_ROBIN}
//!         outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50}
//!         connectionPool: {http: {http2MaxRequests: 100}}
//!         retryBudget: {percent: 20, minRetryConcurrency: 3}
//!   virtual_services:
//!     - {host: orders, timeout: 2s, retries: {attempts: 3, perTryTimeout: 500ms, retryOn: "5xx,connect-failure"}}
//! ```
//!
//! # Validation
//! Located errors (`file:line:column`, what, hint) for: a `host` that names
//! no Service, two rules of one kind for one host, a rule for a Service no
//! proxy sends to (no workload with a proxy has traffic to it: the rule
//! would apply to nothing), an unknown `retryOn` condition, a percentage
//! outside 0..100, a budget ratio that is not a number of 0 or more, and
//! both an Envoy and a Linkerd budget on one rule. Unknown fields are serde
//! errors.

use super::{MeshFile, Validator, R};
use crate::envelope::{did_you_mean, Locate};
use crate::locate::Seg;
use crate::path;
use crate::units::{Count, Duration};
use schemars::JsonSchema;
use serde::Deserialize;
use sim_core::SimDuration;
use sim_models::cluster::TrafficSpec;
use sim_models::mesh::balancer::Policy;
use sim_models::mesh::circuit_breaker::Thresholds;
use sim_models::mesh::outlier::OutlierSpec;
use sim_models::mesh::retry::{ConcurrentBudget, RetryOn, RetryPolicy};
use sim_models::mesh::rules::{DestinationRule, RetryLimit, VirtualService};
use sim_models::mesh::MeshConfig;
use sim_models::services::ResolvedService;

/// An Istio DestinationRule: the traffic policy for one Service.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DestinationRuleFile {
    /// The Service (its short name).
    pub host: String,
    /// What the client proxies apply to requests to it.
    #[serde(rename = "trafficPolicy", default)]
    pub traffic_policy: Option<TrafficPolicyFile>,
}

/// A DestinationRule's `trafficPolicy`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrafficPolicyFile {
    /// `loadBalancer.simple` (default: `LEAST_REQUEST`).
    #[serde(rename = "loadBalancer", default)]
    pub load_balancer: Option<LoadBalancerFile>,
    /// Ejection after consecutive 5xx (default: off).
    #[serde(rename = "outlierDetection", default)]
    pub outlier_detection: Option<OutlierDetectionFile>,
    /// Circuit-breaker thresholds (default: 2^32 - 1 each).
    #[serde(rename = "connectionPool", default)]
    pub connection_pool: Option<ConnectionPoolFile>,
    /// Envoy's retry budget: concurrent retries at most `percent` of the
    /// active and pending requests, at least `minRetryConcurrency`.
    #[serde(rename = "retryBudget", default)]
    pub retry_budget: Option<RetryBudgetFile>,
    /// knsim extension: Linkerd's budget (ServiceProfile `retryBudget`)
    /// instead of Envoy's limits.
    #[serde(rename = "linkerdRetryBudget", default)]
    pub linkerd_retry_budget: Option<LinkerdRetryBudgetFile>,
}

/// `loadBalancer`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancerFile {
    /// The policy.
    pub simple: SimpleLb,
}

/// Request-level balancing policies modelled.
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema)]
pub enum SimpleLb {
    /// Each request to the next endpoint in turn.
    #[serde(rename = "ROUND_ROBIN")]
    RoundRobin,
    /// The power of two choices by active requests (`LEAST_CONN` is
    /// Istio's deprecated name for it).
    #[serde(rename = "LEAST_REQUEST", alias = "LEAST_CONN")]
    LeastRequest,
}

/// `outlierDetection` (defaults: Envoy's, as Istio passes them).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutlierDetectionFile {
    /// Consecutive 5xx that eject a host (default 5).
    #[serde(rename = "consecutive5xxErrors", default)]
    pub consecutive_5xx_errors: Option<Count>,
    /// Time between sweeps (default 10s).
    #[serde(default)]
    pub interval: Option<Duration>,
    /// Ejection time per ejection in a row (default 30s).
    #[serde(rename = "baseEjectionTime", default)]
    pub base_ejection_time: Option<Duration>,
    /// The largest share of hosts ejected at once, in percent (default 10).
    #[serde(rename = "maxEjectionPercent", default)]
    pub max_ejection_percent: Option<Count>,
}

/// `connectionPool` (its `tcp` part, and `http1MaxPendingRequests`, are
/// not modelled: the proxies' pooled HTTP/2 connections never make a
/// request wait for one).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionPoolFile {
    /// HTTP settings.
    #[serde(default)]
    pub http: Option<HttpPoolFile>,
}

/// `connectionPool.http`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpPoolFile {
    /// Requests in flight (503 `UO` beyond).
    #[serde(rename = "http2MaxRequests", default)]
    pub http2_max_requests: Option<Count>,
    /// Retries in flight.
    #[serde(rename = "maxRetries", default)]
    pub max_retries: Option<Count>,
}

/// `retryBudget`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryBudgetFile {
    /// Share of active plus pending requests \[%\] (default 20).
    #[serde(default)]
    pub percent: Option<f64>,
    /// The floor (default 3).
    #[serde(rename = "minRetryConcurrency", default)]
    pub min_retry_concurrency: Option<Count>,
}

/// Linkerd's retry budget.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkerdRetryBudgetFile {
    /// Retries per request (default 0.2).
    #[serde(rename = "retryRatio", default)]
    pub retry_ratio: Option<f64>,
    /// Retries per second always allowed (default 10).
    #[serde(rename = "minRetriesPerSecond", default)]
    pub min_retries_per_second: Option<f64>,
    /// The window (default 10s, whole seconds).
    #[serde(default)]
    pub ttl: Option<Duration>,
}

/// An Istio VirtualService's route to one Service.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VirtualServiceFile {
    /// The Service (its short name).
    pub host: String,
    /// The route's timeout, every retry included (default: none).
    #[serde(default)]
    pub timeout: Option<Duration>,
    /// The retry policy (default: Istio's, 2 retries).
    #[serde(default)]
    pub retries: Option<RetriesFile>,
}

/// A VirtualService's `retries`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetriesFile {
    /// Retries after the first try (0: none).
    pub attempts: Count,
    /// Each try's timeout (default: the route's).
    #[serde(rename = "perTryTimeout", default)]
    pub per_try_timeout: Option<Duration>,
    /// Conditions, comma-separated (default: Istio's
    /// `connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes`
    /// with 503).
    #[serde(rename = "retryOn", default)]
    pub retry_on: Option<String>,
}

/// The `retryOn` conditions modelled.
const RETRY_ON: [&str; 7] = [
    "5xx",
    "gateway-error",
    "connect-failure",
    "refused-stream",
    "unavailable",
    "cancelled",
    "retriable-status-codes",
];

/// Which Services a mesh rule may name.
struct RuleTargets<'a> {
    /// The run's Services, by name.
    names: &'a [&'a str],
    /// Per Service: whether a client proxy sends requests to it.
    proxied: &'a [bool],
}

impl Validator<'_> {
    /// The rules of the `mesh` section (written at `at`) into `mesh`, over
    /// the run's Services and traffic.
    pub(super) fn mesh_rules(
        &self,
        (at, file): (&[Seg], Option<&MeshFile>),
        mesh: Option<&mut MeshConfig>,
        services: &[ResolvedService],
        traffic: &[TrafficSpec],
    ) -> R<()> {
        let (Some(f), Some(m)) = (file, mesh) else {
            return Ok(());
        };
        let names: Vec<&str> = services.iter().map(|s| s.spec.name.as_str()).collect();
        // A Service gets a proxy's L7 decisions when a sidecar's workload
        // sends to it, or, in ambient mode, when its waypoint takes the
        // traffic (the cluster run's `l7` room, same rule).
        let mut proxied = vec![false; services.len()];
        for t in traffic {
            if let (Some(_), Some(to)) = (m.l7_proxy(t, services), t.service) {
                proxied[to] = true;
            }
        }
        let to = RuleTargets {
            names: &names,
            proxied: &proxied,
        };
        let p = [at, &path!["mesh"]].concat();
        m.destination_rules = self.destination_rules(
            &[&p[..], &path!["destination_rules"]].concat(),
            &f.destination_rules,
            &to,
        )?;
        m.virtual_services = self.virtual_services(
            &[&p[..], &path!["virtual_services"]].concat(),
            &f.virtual_services,
            &to,
        )?;
        Ok(())
    }

    /// The Service a rule's `host` (at `p`) names.
    fn rule_host(&self, p: &[Seg], host: &str, to: &RuleTargets<'_>, kind: &str) -> R<usize> {
        let Some(s) = to.names.iter().position(|n| *n == host) else {
            return Err(self.err(
                p,
                format!("{kind} host `{host}` is not a Service of this scenario"),
                did_you_mean(host, to.names, "Services"),
            ));
        };
        if !to.proxied.get(s).copied().unwrap_or(false) {
            return Err(self.err(
                p,
                format!("no proxy sends requests to `{host}`: the {kind} would apply to nothing"),
                "give the client workload a proxy (mesh: injection; in ambient mode, a waypoint), or send its traffic to this Service",
            ));
        }
        Ok(s)
    }

    /// `mesh.destination_rules` (at `p`).
    fn destination_rules(
        &self,
        p: &[Seg],
        rules: &[DestinationRuleFile],
        to: &RuleTargets<'_>,
    ) -> R<Vec<DestinationRule>> {
        let mut out: Vec<DestinationRule> = Vec::with_capacity(rules.len());
        for (i, r) in rules.iter().enumerate() {
            let rp = [p, &path![i]].concat();
            let service = self.rule_host(
                &[&rp[..], &path!["host"]].concat(),
                &r.host,
                to,
                "DestinationRule",
            )?;
            if out.iter().any(|o| o.service == service) {
                return Err(self.err(
                    &[&rp[..], &path!["host"]].concat(),
                    format!("a second DestinationRule for `{}`", r.host),
                    "merge the two into one rule: Istio applies only one per host",
                ));
            }
            let mut dr = DestinationRule::istio_default(service);
            if let Some(tp) = &r.traffic_policy {
                let tpp = [&rp[..], &path!["trafficPolicy"]].concat();
                self.traffic_policy(&tpp, tp, &mut dr)?;
            }
            out.push(dr);
        }
        Ok(out)
    }

    fn traffic_policy(&self, p: &[Seg], tp: &TrafficPolicyFile, dr: &mut DestinationRule) -> R<()> {
        dr.load_balancer = tp.load_balancer.as_ref().map(|lb| match lb.simple {
            SimpleLb::RoundRobin => Policy::RoundRobin,
            SimpleLb::LeastRequest => Policy::LeastRequest { choices: 2 },
        });
        if let Some(od) = &tp.outlier_detection {
            let d = OutlierSpec::envoy_default();
            let percent = od
                .max_ejection_percent
                .map_or(d.max_ejection_percent, |c| c.0);
            if percent > 100 {
                return Err(self.err(
                    &[p, &path!["outlierDetection", "maxEjectionPercent"]].concat(),
                    format!("maxEjectionPercent: {percent} is more than 100"),
                    "give a percentage from 0 to 100",
                ));
            }
            let interval = od.interval.map_or(d.interval, |x| x.0);
            if interval == SimDuration::ZERO {
                return Err(self.err(
                    &[p, &path!["outlierDetection", "interval"]].concat(),
                    "interval: 0 would sweep without end",
                    "give a time, e.g. 10s (Envoy's default)",
                ));
            }
            dr.outlier = Some(OutlierSpec {
                consecutive_5xx: od
                    .consecutive_5xx_errors
                    .map_or(d.consecutive_5xx, |c| c.0.max(1)),
                interval,
                base_ejection_time: od.base_ejection_time.map_or(d.base_ejection_time, |x| x.0),
                max_ejection_time: d.max_ejection_time,
                max_ejection_percent: percent,
                always_eject_one_host: false,
            });
        }
        let mut max_retries = None;
        if let Some(cp) = &tp.connection_pool {
            let mut t = Thresholds::istio_default();
            if let Some(h) = &cp.http {
                if let Some(c) = h.http2_max_requests {
                    t.max_requests = c.0;
                }
                max_retries = h.max_retries.map(|c| c.0);
            }
            dr.thresholds = t;
        }
        let both = |what: &str| {
            self.err(
                &[p, &path![what]].concat(),
                format!("{what} beside another limit on retries"),
                "keep one of connectionPool.http.maxRetries, retryBudget, linkerdRetryBudget",
            )
        };
        dr.retry_limit = match (max_retries, &tp.retry_budget, &tp.linkerd_retry_budget) {
            (_, Some(_), Some(_)) | (Some(_), _, Some(_)) => {
                return Err(both("linkerdRetryBudget"))
            }
            (Some(_), Some(_), None) => return Err(both("retryBudget")),
            (Some(n), None, None) => RetryLimit::Concurrent(ConcurrentBudget::MaxRetries(n)),
            (None, Some(b), None) => {
                let percent = b.percent.unwrap_or(20.0);
                if !(percent.is_finite() && (0.0..=100.0).contains(&percent)) {
                    return Err(self.err(
                        &[p, &path!["retryBudget", "percent"]].concat(),
                        format!("percent: {percent} is not a percentage"),
                        "give a number from 0 to 100 (Envoy's default: 20)",
                    ));
                }
                RetryLimit::Concurrent(ConcurrentBudget::Budget {
                    percent,
                    min_concurrency: b.min_retry_concurrency.map_or(3, |c| c.0),
                })
            }
            (None, None, Some(l)) => {
                let lp = [p, &path!["linkerdRetryBudget"]].concat();
                let ratio = l.retry_ratio.unwrap_or(0.2);
                let min = l.min_retries_per_second.unwrap_or(10.0);
                for (v, f) in [(ratio, "retryRatio"), (min, "minRetriesPerSecond")] {
                    if !(v.is_finite() && v >= 0.0) {
                        return Err(self.err(
                            &[&lp[..], &path![f]].concat(),
                            format!("{f}: {v} is not a number of 0 or more"),
                            "Linkerd's defaults: retryRatio 0.2, minRetriesPerSecond 10",
                        ));
                    }
                }
                let ttl = l.ttl.map_or(10, |d| d.0.as_nanos() / 1_000_000_000);
                if ttl == 0 {
                    return Err(self.err(
                        &[&lp[..], &path!["ttl"]].concat(),
                        "ttl: shorter than the budget's one-second buckets",
                        "give whole seconds, e.g. 10s (Linkerd's default)",
                    ));
                }
                RetryLimit::Ratio {
                    ratio,
                    min_per_second: min,
                    ttl_secs: ttl.min(u64::from(u32::MAX)) as u32,
                }
            }
            (None, None, None) => RetryLimit::istio_default(),
        };
        Ok(())
    }

    /// `mesh.virtual_services` (at `p`).
    fn virtual_services(
        &self,
        p: &[Seg],
        routes: &[VirtualServiceFile],
        to: &RuleTargets<'_>,
    ) -> R<Vec<VirtualService>> {
        let mut out: Vec<VirtualService> = Vec::with_capacity(routes.len());
        for (i, v) in routes.iter().enumerate() {
            let vp = [p, &path![i]].concat();
            let service = self.rule_host(
                &[&vp[..], &path!["host"]].concat(),
                &v.host,
                to,
                "VirtualService",
            )?;
            if out.iter().any(|o| o.service == service) {
                return Err(self.err(
                    &[&vp[..], &path!["host"]].concat(),
                    format!("a second VirtualService for `{}`", v.host),
                    "merge the two into one: one route per host is modelled",
                ));
            }
            let mut retries = RetryPolicy::istio_default();
            if let Some(r) = &v.retries {
                let rp = [&vp[..], &path!["retries"]].concat();
                retries.num_retries = r.attempts.0;
                retries.per_try_timeout = r.per_try_timeout.map(|d| d.0);
                if let Some(on) = &r.retry_on {
                    retries.retry_on = self.retry_on(&[&rp[..], &path!["retryOn"]].concat(), on)?;
                }
            }
            out.push(VirtualService {
                service,
                timeout: v.timeout.map(|d| d.0).filter(|d| *d > SimDuration::ZERO),
                retries,
            });
        }
        Ok(out)
    }

    /// A `retryOn` list (at `p`).
    fn retry_on(&self, p: &[Seg], s: &str) -> R<RetryOn> {
        let mut on = RetryOn {
            connect_failure: false,
            refused_stream: false,
            unavailable: false,
            cancelled: false,
            any_5xx: false,
            gateway_error: false,
            status_codes: [0; 4],
        };
        let mut codes = 0;
        for token in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            match token {
                "5xx" => on.any_5xx = true,
                "gateway-error" => on.gateway_error = true,
                "connect-failure" => on.connect_failure = true,
                "refused-stream" => on.refused_stream = true,
                "unavailable" => on.unavailable = true,
                "cancelled" => on.cancelled = true,
                // Istio's retriable status code: 503.
                "retriable-status-codes" => on.status_codes[0] = 503,
                code if code.parse::<u16>().is_ok_and(|c| (100..600).contains(&c)) => {
                    if codes == 3 {
                        return Err(self.err(
                            p,
                            "more than 3 status codes in retryOn",
                            "keep 3 at most",
                        ));
                    }
                    codes += 1;
                    on.status_codes[codes] = code.parse().unwrap_or(0);
                }
                other => {
                    return Err(self.err(
                        p,
                        format!("retryOn: `{other}` is not a condition modelled"),
                        did_you_mean(other, &RETRY_ON, "conditions (or an HTTP status code)"),
                    ))
                }
            }
        }
        Ok(on)
    }
}

#[cfg(test)]
#[path = "mesh_l7_tests.rs"]
mod tests;
