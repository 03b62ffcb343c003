//! The cluster run with handler calls (the `calls` room) and mesh proxies'
//! L7 decisions (the `l7` room).

use super::*;
use crate::app::ServerSpec;
use crate::ipam::Allocator;
use crate::mesh::outlier::OutlierSpec;
use crate::mesh::retry::ConcurrentBudget;
use crate::mesh::rules::{DestinationRule, RetryLimit};
use crate::mesh::{MeshConfig, MeshMode, ProxyKind, ProxyResources};
use crate::topology::spread_nodes;
use sim_core::NullSink;

pub(super) fn secs(s: u64) -> SimDuration {
    SimDuration::from_secs(s)
}

pub(super) fn server(concurrency: u32, ms: u64, queue_limit: Option<u32>) -> ServerSpec {
    ServerSpec {
        concurrency,
        service_time: SimDuration::from_millis(ms),
        queue_limit,
    }
}

/// web (outside: Poisson users) -> api -> auth -> db, each hop's client
/// retrying `retries` times; db's server as given.
pub(super) fn chain(retries: u32, db: ServerSpec) -> ClusterConfig {
    let zones = vec!["a".to_string(), "b".to_string()];
    let dep = |name: &str, n: u32, s: ServerSpec| DeploymentSpec::new(name, n, secs(1), secs(1), s);
    let call = |name: &str, from: usize, to: usize| TrafficSpec {
        from: Some(from),
        in_handler: true,
        retries,
        connections: ConnectionMode::KeepAlive {
            max_idle: 64,
            idle_timeout: secs(90),
        },
        ..TrafficSpec::to_service(name, to, 0.0, secs(2))
    };
    ClusterConfig {
        nodes: spread_nodes(4, &zones, 110),
        ipam: IpamLayout::Flat {
            pod_cidr: "10.9.0.0/22".parse().unwrap(),
            allocator: Allocator::Flat,
        },
        deployments: vec![
            dep("web", 4, server(64, 2, None)),
            dep("api", 4, server(64, 2, None)),
            dep("auth", 4, server(64, 2, None)),
            dep("db", 2, db),
        ],
        traffic: vec![
            TrafficSpec {
                from: Some(0),
                retries,
                ..TrafficSpec::to_service("web-api", 1, 50.0, secs(5))
            },
            call("api-auth", 1, 2),
            call("auth-db", 2, 3),
        ],
        timeline: Vec::new(),
        duration: secs(60),
        sample_every: secs(10),
        windows: Vec::new(),
        policy: None,
        dns: None,
        conntrack: None,
        kube_proxy: None,
        services: Default::default(),
        node_pool: None,
        nat_gateways: None,
        billing: None,
        mesh: None,
    }
}

/// Istio sidecars in every pod, with `rules`.
pub(super) fn istio(n: usize, rules: Vec<DestinationRule>) -> Option<MeshConfig> {
    Some(MeshConfig {
        mode: MeshMode::Sidecar(ProxyKind::Istio),
        meshed: vec![true; n],
        resources: ProxyResources::ISTIO_SIDECAR,
        destination_rules: rules,
        virtual_services: Vec::new(),
        lifecycle: None,
    })
}

/// The chain with db's Service selecting 2 good pods and 2 that refuse
/// everything (`db-bad`).
pub(super) fn half_failing_db() -> ClusterConfig {
    let mut cfg = chain(0, server(64, 2, None));
    cfg.deployments[3].replicas = 2;
    let mut bad = cfg.deployments[3].clone();
    bad.name = "db-bad".into();
    bad.server = server(0, 2, Some(0));
    cfg.deployments.push(bad);
    let port = crate::services::ServicePort::tcp(8080, 8080, None);
    let labels = [("tier".to_string(), "db".to_string())];
    for d in &mut cfg.deployments[3..] {
        d.labels.extend(labels.clone());
    }
    cfg.services.explicit = vec![crate::services::ServiceSpec::cluster_ip(
        "db",
        "default",
        labels.into(),
        port,
    )];
    cfg.traffic[2].service = Some(3);
    cfg
}

/// db's DestinationRule with `outlier` (Istio's defaults otherwise).
pub(super) fn rules(outlier: Option<OutlierSpec>) -> Vec<DestinationRule> {
    vec![DestinationRule {
        outlier,
        ..DestinationRule::istio_default(3)
    }]
}

/// web (4 pods, one long-lived connection each) -> api (9 pods), measured
/// from 10 s.
pub(super) fn pinned() -> ClusterConfig {
    let mut cfg = chain(0, server(64, 2, None));
    cfg.deployments[1].replicas = 9;
    cfg.traffic.truncate(1);
    cfg.traffic[0].connections = ConnectionMode::LongLived {
        per_client: 1,
        max_age: None,
    };
    cfg.traffic[0].rate = 900.0;
    cfg.windows = vec![WindowSpec {
        name: "all".into(),
        start: secs(10),
        end: secs(60),
    }];
    cfg
}

pub(super) fn tries(r: &RequestTotals) -> u64 {
    r.sent + r.retried + r.mesh_retried
}

pub(super) fn conserved(r: &RequestTotals) -> bool {
    r.sent == r.answered + r.errors() + r.in_flight
}

#[test]
fn a_chain_answers_through_every_hop() {
    let out = run(&chain(0, server(64, 2, None)), 1, &mut NullSink);
    let [web, api, auth] = [&out.requests[0], &out.requests[1], &out.requests[2]];
    assert!(web.sent > 2_000 && web.error_rate() == 0.0, "{web:?}");
    // One call per request served at each hop (the requests in flight at
    // the end may have made theirs or not yet).
    for (parent, call) in [(web, api), (api, auth)] {
        assert!(call.sent <= parent.sent && call.sent + parent.in_flight >= parent.sent);
    }
    assert!(out.requests.iter().all(conserved));
}

#[test]
fn retries_multiply_along_a_failing_chain() {
    // db refuses everything (no worker, no queue): each hop's 2 tries fail
    // with 503, so db sees (1 + 1)^3 = 8 tries per user request, exactly.
    let out = run(&chain(1, server(0, 2, Some(0))), 1, &mut NullSink);
    let [web, api, auth] = [&out.requests[0], &out.requests[1], &out.requests[2]];
    assert!(web.sent > 2_000);
    assert_eq!(web.rejected, web.sent - web.in_flight);
    assert_eq!(web.dependency_failed, web.rejected);
    assert_eq!(tries(web), 2 * web.sent);
    assert_eq!(api.sent, tries(web));
    assert_eq!(auth.sent, tries(api));
    assert_eq!(tries(auth), 8 * web.sent);
    assert!(out.requests.iter().all(conserved));
}

#[test]
fn mesh_retries_multiply_with_the_clients_at_every_hop() {
    // Istio's default: 2 retries on 503 at each of the 3 hops, and each
    // hop's client retries once: (1 + 1) x (1 + 2) = 6 tries per request
    // at every hop, 6^3 = 216 at db per user request, the closed form,
    // when every try fails.
    let mut cfg = chain(1, server(0, 2, Some(0)));
    cfg.mesh = istio(4, Vec::new());
    let out = run(&cfg, 1, &mut NullSink);
    let [web, api, auth] = [&out.requests[0], &out.requests[1], &out.requests[2]];
    assert!(web.sent > 2_000 && web.answered == 0, "{web:?}");
    // The requests still in flight at the end (back-offs take up to 250 ms
    // per retry) have sent part of their tries: between the counts of the
    // ended requests and of all of them.
    let ended = (web.sent - web.in_flight) as f64;
    for hop in [web, api, auth] {
        let per = 6.0;
        let t = tries(hop) as f64;
        assert!(
            t >= per * (hop.sent - hop.in_flight) as f64 && t <= per * hop.sent as f64,
            "{hop:?}"
        );
    }
    let per_request = tries(auth) as f64;
    assert!(
        per_request >= 216.0 * ended && per_request <= 216.0 * web.sent as f64,
        "{per_request}"
    );
    assert!(out.requests.iter().all(conserved));
    let up = out.mesh_upstreams[2].expect("auth-db goes through proxies");
    assert_eq!(up.retries, auth.mesh_retried);
    // Every try reached the proxy, but for the retries still in their
    // back-off at the end (one at most per request in flight).
    assert!(up.tries <= tries(auth) && up.tries + auth.in_flight >= tries(auth));
    // Envoy's retry budget (20% of active requests, at least 3 at once)
    // cuts the retries the proxies may have out at once.
    let budget = DestinationRule {
        retry_limit: RetryLimit::Concurrent(ConcurrentBudget::MaxRetries(1)),
        ..DestinationRule::istio_default(3)
    };
    cfg.mesh = istio(4, vec![budget]);
    let capped = run(&cfg, 1, &mut NullSink);
    let up = capped.mesh_upstreams[2].unwrap();
    assert!(up.retry_overflows > 0, "{up:?}");
    assert!(capped.requests[2].mesh_retried < auth.mesh_retried);
}

#[test]
fn request_level_balancing_spreads_pinned_connections() {
    // 4 web pods, one long-lived connection each, to 9 api pods: per
    // connection at most 4 pods serve; per request through the sidecars
    // all 9 do.
    let mut cfg = pinned();
    let pinned = run(&cfg, 1, &mut NullSink);
    assert!(pinned.windows[0].served.len() <= 4);
    cfg.mesh = istio(4, Vec::new());
    let out = run(&cfg, 1, &mut NullSink);
    let served = &out.windows[0].served;
    assert_eq!(served.len(), 9);
    let total: u64 = served.values().sum();
    let top = *served.values().max().unwrap() as f64 / total as f64;
    assert!(top < 0.13, "busiest pod's share {top}");
    assert!(out.requests[0].error_rate() == 0.0);
}

#[test]
fn outlier_detection_ejects_the_failing_pods() {
    let mut cfg = half_failing_db();
    cfg.mesh = istio(5, rules(None));
    let without = run(&cfg, 1, &mut NullSink);
    cfg.mesh = istio(
        5,
        rules(Some(OutlierSpec {
            max_ejection_percent: 50,
            ..OutlierSpec::envoy_default()
        })),
    );
    let with = run(&cfg, 1, &mut NullSink);
    let (a, b) = (&without.requests[2], &with.requests[2]);
    assert_eq!(a.mesh_ejections, 0);
    assert!(b.mesh_ejections > 0, "{b:?}");
    // Ejected, the refusing pods get fewer tries: fewer retries needed.
    assert!(
        b.mesh_retried * 2 < a.mesh_retried,
        "{} vs {}",
        b.mesh_retried,
        a.mesh_retried
    );
    assert!(with.requests.iter().all(conserved));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(16))]
    /// Through handler calls and mesh proxies (client sidecars, or ambient's
    /// waypoint deciding), per source: sent = answered
    /// + each loss + in flight; the proxies' retries are those counted,
    /// one per retry; the proxies' tries are the tries sent, but for
    /// retries still in their back-off.
    #[test]
    fn conservation_through_calls_and_proxies(
        retries in 0u32..2,
        db_workers in 0u32..3,
        db_queue in proptest::option::of(0u32..4),
        db_ms in 1u64..40,
        mesh in proptest::option::of((
            proptest::option::of(1u32..4),
            proptest::option::of(1u32..6),
            proptest::bool::ANY,
            proptest::option::of(50u64..2_000),
            proptest::option::of(20u64..500),
            0u32..3,
        )),
        waypoint in proptest::bool::ANY,
        seed in 1u64..1_000,
    ) {
        let mut cfg = chain(retries, server(db_workers, db_ms, db_queue));
        cfg.duration = secs(20);
        if let Some((max_retries, max_requests, outlier, timeout, per_try, attempts)) = mesh {
            let mut dr = DestinationRule::istio_default(3);
            if let Some(n) = max_retries {
                dr.retry_limit = RetryLimit::Concurrent(ConcurrentBudget::MaxRetries(n));
            }
            if let Some(n) = max_requests {
                dr.thresholds.max_requests = n;
            }
            if outlier {
                dr.outlier = Some(OutlierSpec {
                    consecutive_5xx: 2,
                    interval: secs(1),
                    base_ejection_time: secs(2),
                    max_ejection_percent: 100,
                    ..OutlierSpec::envoy_default()
                });
            }
            let mut route = crate::mesh::retry::RetryPolicy::istio_default();
            route.num_retries = attempts;
            route.per_try_timeout = per_try.map(SimDuration::from_millis);
            let vs = crate::mesh::rules::VirtualService {
                service: 2,
                timeout: timeout.map(SimDuration::from_millis),
                retries: route,
            };
            let mut m = istio(4, vec![dr]);
            if let Some(m) = m.as_mut() {
                m.virtual_services = vec![vs];
                if waypoint {
                    m.mode = MeshMode::Ambient {
                        waypoint: Some(ProxyResources::ISTIO_SIDECAR),
                    };
                }
            }
            cfg.mesh = m;
        }
        let out = run(&cfg, seed, &mut NullSink);
        for (r, up) in out.requests.iter().zip(&out.mesh_upstreams) {
            proptest::prop_assert!(conserved(r), "{r:?}");
            match up {
                Some(up) => {
                    proptest::prop_assert_eq!(up.retries, r.mesh_retried);
                    proptest::prop_assert!(up.tries <= tries(r));
                    proptest::prop_assert!(up.tries + up.overflowed() + r.in_flight >= tries(r));
                }
                None => proptest::prop_assert_eq!(r.mesh_retried, 0),
            }
        }
    }
}

#[test]
fn a_dependency_that_slows_down_on_the_timeline() {
    // db's mean service time goes from 2 ms to 20 ms at T+30s: the calls
    // to it take about ten times longer; every hop counts its tries per
    // request of the chain's head (web-api's users).
    let mut cfg = chain(0, server(64, 2, None));
    cfg.windows = vec![
        WindowSpec {
            name: "before".into(),
            start: secs(10),
            end: secs(30),
        },
        WindowSpec {
            name: "after".into(),
            start: secs(35),
            end: secs(60),
        },
    ];
    cfg.timeline = vec![TimedAction {
        at: secs(30),
        action: Action::SetServiceTime {
            deployment: 3,
            service_time: SimDuration::from_millis(20),
        },
    }];
    let out = run(&cfg, 1, &mut NullSink);
    let n = cfg.traffic.len();
    let p50 = |w: usize| out.windows[w * n + 2].latency.quantile(0.5).as_secs_f64();
    // Exponential service: the median is ln 2 of the mean (1.4 ms, then
    // 13.9 ms), plus the same network and queueing time in both.
    let (before, after) = (p50(0), p50(1));
    assert!(
        before < 0.004 && after > 0.0125 && after < 0.0165,
        "{before} {after}"
    );
    for w in 0..2 {
        let head = out.windows[w * n].totals.sent;
        assert!(out.windows[w * n..(w + 1) * n]
            .iter()
            .all(|x| x.head_sent == head));
    }
    assert!(out.requests.iter().all(conserved));
}
