//! The simulator's cost per request of counting bytes between zones in a
//! whole cluster run, against the number of zones.
//!
//! Each case: 12 nodes spread over 1, 3 or 6 zones, a client Deployment and
//! a server Deployment of 24 pods each, 2,000 pod-to-pod requests/s (2 kB
//! out, 20 kB back) for 10 s simulated, AWS billing on, one measurement
//! window over the run (so both the run's and the window's zone counts are
//! kept). Throughput is in engine events (counted by a first run of the
//! case: the simulation is deterministic), so criterion's time per element
//! is the cost per event; a request is a fixed number of events whatever
//! the zones. The issue asks largest/smallest <= 1.3.
//!
//! Run: `cargo bench -p knsim-benches --bench zone_bytes`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sim_core::{NullSink, SimDuration};
use sim_models::cluster::{capacity_study, run, ClusterConfig, TrafficSpec, WindowSpec};
use sim_models::topology::spread_nodes;
use sim_models::transfer_cost::Billing;
use std::hint::black_box;
use std::time::Duration;

/// The case over `zones` zones.
fn config(zones: usize) -> ClusterConfig {
    let duration = SimDuration::from_secs(10);
    let mut cfg = capacity_study(12, 2, 24, None, duration);
    let names: Vec<String> = (0..zones).map(|z| format!("zone-{z}")).collect();
    cfg.nodes = spread_nodes(12, &names, 110);
    cfg.traffic = vec![TrafficSpec {
        from: Some(1),
        request_bytes: 2_000,
        response_bytes: 20_000,
        ..TrafficSpec::to_service("svc1-svc0", 0, 2_000.0, SimDuration::from_secs(10))
    }];
    cfg.windows = vec![WindowSpec {
        name: "all".into(),
        start: SimDuration::ZERO,
        end: duration,
    }];
    cfg.billing = Some(Billing::aws());
    cfg
}

fn zone_bytes(c: &mut Criterion) {
    let mut g = c.benchmark_group("zone_bytes/zones");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4));
    for zones in [1usize, 3, 6] {
        let cfg = config(zones);
        let events = run(&cfg, 1, &mut NullSink).events_fired;
        g.throughput(Throughput::Elements(events));
        g.bench_with_input(BenchmarkId::from_parameter(zones), &cfg, |b, cfg| {
            b.iter(|| black_box(run(cfg, 1, &mut NullSink).events_fired));
        });
    }
    g.finish();
}

criterion_group!(benches, zone_bytes);
criterion_main!(benches);
