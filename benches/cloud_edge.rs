//! The simulator's own cost of routing one request through a cloud load
//! balancer's target group ([`TargetGroup::route`] plus the request's
//! in-flight bookkeeping and its bytes per zone pair), against the number
//! of targets and of zones.
//!
//! Groups: `cloud_lb/targets` with 10, 100 and 1,000 healthy targets over 3
//! zones; `cloud_lb/zones` with 1, 3 and 6 zones of 100 targets each, cross-zone
//! off (the per-zone lists and the DNS fallback). And a whole cluster run
//! through an NLB with `instance` targets (cross-zone on, AWS billing: the
//! load balancer's hop, kube-proxy's NodePort stage and both hops' zone
//! bytes on every request): `cloud_lb/instance_targets` with 12, 120 and
//! 1,200 nodes (the targets) over 3 zones, 24 server pods, 2,000
//! requests/s for 10 s simulated; throughput in engine events (counted by a
//! first run: the run is deterministic), so the time per element is the
//! cost per event, a request being a fixed number of events whatever the
//! targets. The issue asks the largest/smallest ratio of each group to
//! stay at or under 1.3.
//!
//! Run: `cargo bench -p knsim-benches --bench cloud_edge -- --warm-up-time 1 --measurement-time 3`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sim_core::{NullSink, RngStreams, SimDuration};
use sim_models::cloud_lb::{
    CheckPath, CheckResult, LbEntry, LbKind, Route, TargetGroup, TargetGroupSpec, TargetType,
};
use sim_models::cluster::{capacity_study, run, ClusterConfig, TrafficSpec};
use sim_models::services::{ServicePort, ServiceSpec, ServiceType};
use sim_models::transfer_cost::{Billing, Carrier, ZoneBytes};
use std::hint::black_box;
use std::time::Duration;

fn group(zones: u32, targets: u32, cross_zone: bool) -> TargetGroup {
    let mut spec = TargetGroupSpec::elb_defaults(LbKind::Network, TargetType::Ip);
    spec.cross_zone = cross_zone;
    let mut g = TargetGroup::new(spec, zones);
    for i in 0..targets {
        let id = g.register(i % zones);
        while g.record_check(id, CheckResult::Pass).is_none() {}
    }
    g
}

fn bench_case(c: &mut Criterion, name: &str, cases: &[(u32, u32)], cross_zone: bool) {
    let mut g = c.benchmark_group(format!("cloud_lb/{name}"));
    g.throughput(Throughput::Elements(1));
    for &(zones, targets) in cases {
        let mut tg = group(zones, targets, cross_zone);
        let mut bytes = ZoneBytes::new(zones);
        let mut rng = RngStreams::new(1).stream("bench");
        let mut entry = 0u32;
        let label = if name == "zones" { zones } else { targets };
        g.bench_with_input(BenchmarkId::from_parameter(label), &label, |b, _| {
            b.iter(|| {
                entry = (entry + 1) % zones;
                let Route::Healthy(id) = tg.route(entry, &mut rng) else {
                    unreachable!("every target is healthy")
                };
                tg.begin(id);
                bytes.add(entry, id % zones, Carrier::NetworkLb, 1_500);
                black_box(tg.end(id))
            })
        });
    }
    g.finish();
}

fn routing(c: &mut Criterion) {
    bench_case(c, "targets", &[(3, 10), (3, 100), (3, 1_000)], true);
    bench_case(c, "zones", &[(1, 100), (3, 300), (6, 600)], false);
}

/// `nodes` nodes over 3 zones, `svc0`'s 24 pods behind LoadBalancer Service
/// `web-lb`, an NLB with instance targets and cross-zone balancing in
/// front at 2,000 requests/s, AWS billing.
fn instance_config(nodes: u32) -> ClusterConfig {
    let duration = SimDuration::from_secs(10);
    let mut cfg = capacity_study(nodes, 1, 24, None, duration);
    let port = ServicePort::tcp(80, 8080, Some(30080));
    let mut svc = ServiceSpec::cluster_ip(
        "web-lb",
        "default",
        [("app".to_string(), "svc0".to_string())].into(),
        port,
    );
    svc.kind = ServiceType::LoadBalancer;
    cfg.services.explicit = vec![svc];
    let mut group = TargetGroupSpec::elb_defaults(LbKind::Network, TargetType::Instance);
    group.cross_zone = true;
    cfg.traffic = vec![TrafficSpec {
        load_balancer: Some(LbEntry {
            group,
            check: CheckPath::Port,
            readiness_gate: false,
        }),
        request_bytes: 2_000,
        response_bytes: 20_000,
        ..TrafficSpec::to_service("users", 0, 2_000.0, SimDuration::from_secs(10))
    }];
    cfg.billing = Some(Billing::aws());
    cfg
}

fn instance_targets(c: &mut Criterion) {
    let mut g = c.benchmark_group("cloud_lb/instance_targets");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4));
    for nodes in [12u32, 120, 1_200] {
        let cfg = instance_config(nodes);
        let out = run(&cfg, 1, &mut NullSink);
        assert_eq!(
            out.requests[0].errors(),
            0,
            "the bench's requests are answered"
        );
        assert_eq!(
            out.zone_traffic[0].request_hops,
            2 * out.zone_traffic[0].requests
        );
        g.throughput(Throughput::Elements(out.events_fired));
        g.bench_with_input(BenchmarkId::from_parameter(nodes), &cfg, |b, cfg| {
            b.iter(|| black_box(run(cfg, 1, &mut NullSink).events_fired));
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = routing, instance_targets
}
criterion_main!(benches);
