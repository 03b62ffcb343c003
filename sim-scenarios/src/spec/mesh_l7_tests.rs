//! `mesh.destination_rules` and `mesh.virtual_services`: rules over
//! Istio's defaults, handler calls, located mistakes.

use super::super::parse;
use crate::error::InputError;
use sim_core::SimDuration;
use sim_models::mesh::balancer::Policy;
use sim_models::mesh::retry::ConcurrentBudget;
use sim_models::mesh::rules::RetryLimit;

/// Workloads `web` (meshed unless excluded) calling `api`, which calls
/// `db` in its handler; `mesh` and extra traffic as written.
fn with(mesh: &str) -> Result<super::super::Scenario, InputError> {
    let text = format!(
        "name: t\nsummary: s\nduration: 1m\nsample_every: 10s\ncluster:\n  nodes: {{count: 1, zones: [a]}}\n  ipam: {{mode: flat, pod_cidr: 10.0.0.0/24}}\n\
         workloads:\n  - {{name: web, replicas: 1, startup: 1s, ready_after: 1s, concurrency: 1, service_time: 1ms}}\n\
         \x20 - {{name: api, replicas: 1, startup: 1s, ready_after: 1s, concurrency: 1, service_time: 1ms}}\n\
         \x20 - {{name: db, replicas: 1, startup: 1s, ready_after: 1s, concurrency: 1, service_time: 1ms}}\n\
         traffic:\n  - {{from: web, to: api, rate: 1/s, timeout: 1s}}\n\
         \x20 - {{from: api, to: db, in_handler: true, timeout: 1s}}\n\
         {mesh}"
    );
    parse("t.yaml", &text)
}

#[test]
fn rules_parse_over_istios_defaults() {
    let s = with(
        "mesh:\n  mode: sidecar\n  destination_rules:\n    - host: api\n      trafficPolicy:\n        loadBalancer: {simple: ROUND_ROBIN}\n        outlierDetection: {consecutive5xxErrors: 3, maxEjectionPercent: 50}\n        connectionPool: {http: {http2MaxRequests: 100}}\n        retryBudget: {percent: 25}\n    - host: db\n      trafficPolicy: {linkerdRetryBudget: {retryRatio: 0.1}}\n  virtual_services:\n    - {host: api, timeout: 2s, retries: {attempts: 3, perTryTimeout: 500ms, retryOn: \"5xx,connect-failure\"}}\n",
    )
    .unwrap();
    let m = s.variants[0].config.mesh.clone().unwrap();
    let [api, db] = [&m.destination_rules[0], &m.destination_rules[1]];
    assert_eq!((api.service, db.service), (1, 2));
    assert_eq!(api.load_balancer, Some(Policy::RoundRobin));
    let o = api.outlier.unwrap();
    assert_eq!((o.consecutive_5xx, o.max_ejection_percent), (3, 50));
    assert_eq!(o.interval, SimDuration::from_secs(10));
    assert_eq!(api.thresholds.max_requests, 100);
    assert_eq!(api.thresholds.max_connections, u32::MAX);
    assert_eq!(
        api.retry_limit,
        RetryLimit::Concurrent(ConcurrentBudget::Budget {
            percent: 25.0,
            min_concurrency: 3
        })
    );
    assert_eq!(
        db.retry_limit,
        RetryLimit::Ratio {
            ratio: 0.1,
            min_per_second: 10.0,
            ttl_secs: 10
        }
    );
    let vs = &m.virtual_services[0];
    assert_eq!(vs.timeout, Some(SimDuration::from_secs(2)));
    assert_eq!(vs.retries.num_retries, 3);
    assert_eq!(
        vs.retries.per_try_timeout,
        Some(SimDuration::from_millis(500))
    );
    assert!(vs.retries.retry_on.any_5xx && vs.retries.retry_on.connect_failure);
    assert!(!vs.retries.retry_on.refused_stream);
    let t = &s.variants[0].config.traffic;
    assert!(t[1].in_handler && t[1].rate == 0.0);
}

#[test]
fn an_ambient_waypoint_takes_the_rules_ztunnels_alone_do_not() {
    // With a waypoint, the rules apply to the traffic it takes; ztunnels
    // alone are L4 (the mistakes' test: `no proxy sends`).
    let s = with("mesh:\n  mode: ambient\n  waypoint: {cpu: 2, memory_limit: 1Gi}\n  virtual_services: [{host: db, timeout: 2s}]\n").unwrap();
    let m = s.variants[0].config.mesh.as_ref().unwrap();
    assert_eq!(m.virtual_services.len(), 1);
    assert_eq!(
        m.virtual_services[0].timeout,
        Some(SimDuration::from_secs(2))
    );
    let e = with("mesh:\n  mode: ambient\n  destination_rules: [{host: api}]\n").unwrap_err();
    assert!(e.to_string().contains("a waypoint"), "{e}");
}

#[test]
fn rule_and_call_mistakes_are_located_with_a_hint() {
    let cases: [(&str, &str, usize); 7] = [
        ("mesh:\n  mode: sidecar\n  destination_rules: [{host: orders}]\n", "not a Service", 17),
        ("mesh:\n  mode: sidecar\n  exclude: [web, api]\n  destination_rules: [{host: api}]\n", "no proxy sends", 18),
        ("mesh:\n  mode: ambient\n  virtual_services: [{host: db}]\n", "no proxy sends", 17),
        ("mesh:\n  mode: sidecar\n  destination_rules: [{host: api}, {host: api}]\n", "a second DestinationRule", 17),
        ("mesh:\n  mode: sidecar\n  virtual_services: [{host: api, retries: {attempts: 1, retryOn: \"5xx,gateway-eror\"}}]\n", "gateway-eror", 17),
        ("mesh:\n  mode: sidecar\n  destination_rules: [{host: api, trafficPolicy: {retryBudget: {}, linkerdRetryBudget: {}}}]\n", "another limit", 17),
        ("mesh:\n  mode: sidecar\n  destination_rules: [{host: api, trafficPolicy: {connectionPool: {tcp: {maxConnections: 1}}}}]\n", "unknown field", 17),
    ];
    for (mesh, what, line) in cases {
        let e = with(mesh).unwrap_err();
        assert!(e.to_string().contains(what), "{mesh}: {e}");
        assert_eq!(e.at.map(|a| a.0), Some(line), "{mesh}: {e}");
    }
    // Calls: a cycle, a rate on a call, a call without `to`.
    let text = |extra: &str| {
        format!(
            "name: t\nsummary: s\nduration: 1m\nsample_every: 10s\ncluster:\n  nodes: {{count: 1, zones: [a]}}\n  ipam: {{mode: flat, pod_cidr: 10.0.0.0/24}}\n\
             workloads:\n  - {{name: a, replicas: 1, startup: 1s, ready_after: 1s, concurrency: 1, service_time: 1ms}}\n\
             \x20 - {{name: b, replicas: 1, startup: 1s, ready_after: 1s, concurrency: 1, service_time: 1ms}}\n\
             traffic:\n  - {{name: users, to: a, rate: 1/s, timeout: 1s}}\n{extra}"
        )
    };
    for (extra, what) in [
        ("  - {from: a, to: b, in_handler: true, timeout: 1s}\n  - {from: b, to: a, in_handler: true, timeout: 1s}\n", "calls back"),
        ("  - {from: a, to: b, in_handler: true, rate: 1/s, timeout: 1s}\n", "no rate of its own"),
        ("  - {to: b, in_handler: true, timeout: 1s}\n", "needs `from`"),
        ("  - {from: a, to: b, timeout: 1s}\n", "without `rate`"),
    ] {
        let e = parse("t.yaml", &text(extra)).unwrap_err();
        assert!(e.to_string().contains(what), "{extra}: {e}");
        assert!(e.at.is_some(), "{e}");
    }
}
