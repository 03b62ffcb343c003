//! The simulator's own cost of routing one request through a cloud load
//! balancer's target group ([`TargetGroup::route`] plus the request's
//! in-flight bookkeeping and its bytes per zone pair), against the number
//! of targets and of zones.
//!
//! Groups: `cloud_lb/targets` with 10, 100 and 1,000 healthy targets over 3
//! zones; `cloud_lb/zones` with 1, 3 and 6 zones of 100 targets each, cross-zone
//! off (the per-zone lists and the DNS fallback). The issue asks the
//! largest/smallest ratio of each group to stay at or under 1.3.
//!
//! Run: `cargo bench -p knsim-benches --bench cloud_edge -- --warm-up-time 1 --measurement-time 3`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sim_core::RngStreams;
use sim_models::cloud_lb::{CheckResult, LbKind, Route, TargetGroup, TargetGroupSpec, TargetType};
use sim_models::transfer_cost::{Carrier, ZoneBytes};
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

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = routing
}
criterion_main!(benches);
