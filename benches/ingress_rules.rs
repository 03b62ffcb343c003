//! Cost per request through an ingress controller against the number of
//! Ingress rules (issue 12: "does not grow with the number of ... Ingress
//! rules", ratio largest/smallest <= 1.3).
//!
//! `ingress_rules/httproute_lookup/N`: one `GatewayRouter::route` lookup
//! per request, over N HTTPRoute rules (N - 3 `PathPrefix /team-i/v1` rules
//! dealt over 5 routes: 4 hostnames, one a wildcard, and one without, plus
//! `PathPrefix /api`, `Exact /api-docs` and `PathPrefix /` on the shop's
//! host), routing a fixed mix of 8 requests; throughput in requests.
//!
//! `ingress_rules/cluster_run/N`: each case builds 10 / 100 / 1,000 Ingress paths on one host (ingress-nginx,
//! regex mode on, the costlier case: every location a regex), routes the
//! source's four request paths once with `sim_models::ingress::Router` (as
//! a scenario's build does; not timed), and times one whole
//! `sim_models::cluster::run` with seed 1 of 2 Services of 10 pods on 10
//! nodes and 2,000 requests/s for 10 s simulated; throughput in engine
//! events (the same count at every size: the paths and the draws are).
//!
//! Run: `cargo bench -p knsim-benches --bench ingress_rules`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sim_core::{NullSink, SimDuration};
use sim_models::cluster::{capacity_study, run, ClusterConfig, IngressTraffic, RequestPath};
use sim_models::ingress::httproute::{
    GatewayRouter, HttpBackendRef, HttpPathMatch, HttpRequest, HttpRoute, HttpRouteMatch,
    HttpRouteRule,
};
use sim_models::ingress::{
    Backend, Controller, Ingress, IngressPath, IngressRule, PathType, Router,
};
use std::hint::black_box;
use std::time::Duration;

/// A cluster whose one source goes through `rules` Ingress paths.
fn config(rules: usize) -> ClusterConfig {
    let mut cfg = capacity_study(10, 2, 10, Some(2_000.0), SimDuration::from_secs(10));
    let svc = |d: usize| Backend::Service {
        name: cfg.deployments[d].name.clone(),
        port: "80".into(),
    };
    let mut paths: Vec<IngressPath> = (0..rules.saturating_sub(2))
        .map(|i| IngressPath {
            path: format!("/team-{i}/v1"),
            path_type: PathType::Prefix,
            backend: svc(i % 2),
        })
        .collect();
    paths.push(IngressPath {
        path: "/api".into(),
        path_type: PathType::Prefix,
        backend: svc(1),
    });
    paths.push(IngressPath {
        path: "/".into(),
        path_type: PathType::Prefix,
        backend: svc(0),
    });
    let ingress = Ingress {
        namespace: "default".into(),
        name: "shop".into(),
        use_regex: true,
        rewrite_target: false,
        default_backend: None,
        rules: vec![IngressRule {
            host: Some("shop.example.com".into()),
            paths,
        }],
    };
    let router = Router::new(&[ingress], Controller::IngressNginx).expect("valid paths");
    let requests = [
        ("/products/42", 0.5),
        ("/api/v1/cart", 0.3),
        ("/api-docs", 0.1),
        ("/team-7/v1/x", 0.1),
    ];
    let routed = requests
        .iter()
        .map(|(path, share)| {
            let route = router.route("shop.example.com", path);
            let backend = route.backend.and_then(|b| match b {
                Backend::Service { name, .. } => {
                    cfg.deployments.iter().position(|d| &d.name == name)
                }
                Backend::Resource { .. } => None,
            });
            RequestPath {
                host: "shop.example.com".into(),
                path: path.to_string(),
                share: *share,
                backend,
                answered_by: route
                    .backend
                    .map_or("default backend (404)".into(), |b| b.to_string()),
                because: String::new(),
            }
        })
        .collect();
    let t = &mut cfg.traffic[0];
    t.service = None;
    t.ingress = Some(IngressTraffic::new("ingress-nginx", routed).expect("shares sum to 1"));
    cfg.traffic.truncate(1);
    cfg
}

/// HTTPRoutes holding `rules` rules in all.
fn gateway(rules: usize) -> GatewayRouter {
    let hosts = [
        None,
        Some("shop.example.com"),
        Some("*.example.com"),
        Some("api.example.org"),
        Some("docs.example.org"),
    ];
    let rule = |m: HttpPathMatch, svc: &str| HttpRouteRule {
        matches: vec![HttpRouteMatch::path(m)],
        backends: vec![HttpBackendRef {
            backend: Backend::Service {
                name: svc.into(),
                port: "80".into(),
            },
            weight: 1,
        }],
    };
    // One route per hostname class at every size (so every size does the
    // same host lookups); the team rules dealt round-robin over them.
    let mut routes: Vec<HttpRoute> = hosts
        .iter()
        .enumerate()
        .map(|(k, h)| HttpRoute {
            namespace: "default".into(),
            name: format!("team-{k}"),
            created: None,
            hostnames: h.map(|h| vec![h.to_string()]).unwrap_or_default(),
            rules: Vec::new(),
        })
        .collect();
    for i in 0..rules.saturating_sub(3) {
        routes[i % hosts.len()].rules.push(rule(
            HttpPathMatch::PathPrefix(format!("/team-{i}/v1")),
            if i % 2 == 0 { "web" } else { "api" },
        ));
    }
    routes.push(HttpRoute {
        namespace: "shop".into(),
        name: "shop".into(),
        created: None,
        hostnames: vec!["shop.example.com".into()],
        rules: vec![
            rule(HttpPathMatch::PathPrefix("/api".into()), "api"),
            rule(HttpPathMatch::Exact("/api-docs".into()), "docs"),
            rule(HttpPathMatch::PathPrefix("/".into()), "web"),
        ],
    });
    GatewayRouter::new(routes)
}

/// The requests each lookup iteration routes.
const MIX: [(&str, &str); 8] = [
    ("shop.example.com", "/products/42"),
    ("shop.example.com", "/api/v1/cart"),
    ("shop.example.com", "/api-docs"),
    ("shop.example.com", "/api"),
    ("shop.example.com", "/team-6/v1/x"),
    ("a.example.com", "/team-2/v1/y/z"),
    ("other.example.net", "/team-0/v1"),
    ("docs.example.org", "/nothing/here"),
];

fn ingress_rules(c: &mut Criterion) {
    let mut g = c.benchmark_group("ingress_rules/httproute_lookup");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for rules in [10usize, 100, 1_000] {
        let router = gateway(rules);
        let routed = MIX
            .iter()
            .filter(|(h, p)| router.route(&HttpRequest::get(h, p)).is_some())
            .count();
        assert_eq!(routed, 7, "the mix reaches the same rules at {rules}");
        g.throughput(Throughput::Elements(MIX.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(rules), &router, |b, r| {
            b.iter(|| {
                let mut n = 0usize;
                for (h, p) in MIX {
                    if let Some(m) = r.route(&HttpRequest::get(black_box(h), black_box(p))) {
                        n += m.rule;
                    }
                }
                black_box(n)
            });
        });
    }
    g.finish();
    let mut g = c.benchmark_group("ingress_rules/cluster_run");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5));
    for rules in [10usize, 100, 1_000] {
        let cfg = config(rules);
        let events = run(&cfg, 1, &mut NullSink).events_fired;
        g.throughput(Throughput::Elements(events));
        g.bench_with_input(BenchmarkId::from_parameter(rules), &cfg, |b, cfg| {
            b.iter(|| black_box(run(cfg, 1, &mut NullSink).events_fired));
        });
    }
    g.finish();
}

criterion_group!(benches, ingress_rules);
criterion_main!(benches);
