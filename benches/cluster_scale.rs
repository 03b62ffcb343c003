//! Cluster simulation cost along the three axes of issue 14.
//!
//! Each case builds a [`ClusterConfig`] with
//! `sim_models::cluster::capacity_study` (nodes in three zones, a per-node
//! /24 from a /9, Deployments of pods behind Services, one client outside
//! the cluster per Service, Poisson arrivals) and times one whole
//! `sim_models::cluster::run` with seed 1: scheduling, pod start-up,
//! traffic, sampling and the run's output. The scenario files' parsing and
//! the report are not included.
//!
//! Three groups, three sizes each, and the busy path:
//! - `cluster_pods`: 1,500 / 15,000 / 150,000 idle pods (300 a Deployment,
//!   30 a node on 50 / 500 / 5,000 nodes), 20 s simulated; throughput in
//!   pods.
//! - `cluster_services`: 10 / 100 / 1,000 Services of 10 pods on 100 nodes,
//!   1 request/s each, 20 s simulated; throughput in Services.
//! - `cluster_rate`: 10 Services of 150 pods on 50 nodes at 100 / 1,000 /
//!   10,000 requests/s each, 10 s simulated; throughput in engine events
//!   (counted by a first run, the same for every run: the simulation is
//!   deterministic).
//! - `cluster_busy`: the request path per event at the shape of issue 14's
//!   busy run, 25,000 requests/s in all for 20 s simulated (about 1 M
//!   events; set-up is under 5% of it): 50 Services of 300 pods on 500 nodes
//!   at 500/s each (`15000`, the busy run's cluster), and 5 Services of 300
//!   pods on 50 nodes at 5,000/s each (`1500`): the same events on a tenth
//!   of the pods, so the difference is what the cluster's size costs each
//!   event (cache misses on pods and histograms); throughput in events.
//!
//! Run: `cargo bench -p knsim-benches --bench cluster_scale` (a few minutes
//! on today's code; the 150,000-pod and 1,000-Service cases dominate).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sim_core::{NullSink, SimDuration};
use sim_models::cluster::{capacity_study, run, ClusterConfig};
use std::hint::black_box;
use std::time::Duration;

fn secs(s: u64) -> SimDuration {
    SimDuration::from_secs(s)
}

/// Times whole runs of each `(label, elements, config)` in `group`.
fn bench_runs(c: &mut Criterion, group: &str, cases: Vec<(u64, u64, ClusterConfig)>) {
    let mut g = c.benchmark_group(group);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5));
    for (label, elements, cfg) in &cases {
        g.throughput(Throughput::Elements(*elements));
        g.bench_with_input(BenchmarkId::from_parameter(label), cfg, |b, cfg| {
            b.iter(|| black_box(run(cfg, 1, &mut NullSink).events_fired));
        });
    }
    g.finish();
}

fn cluster_pods(c: &mut Criterion) {
    let cases = [50u32, 500, 5_000]
        .into_iter()
        .map(|nodes| {
            let pods = u64::from(nodes) * 30;
            let cfg = capacity_study(nodes, nodes as usize / 10, 300, None, secs(20));
            (pods, pods, cfg)
        })
        .collect();
    bench_runs(c, "cluster_pods", cases);
}

fn cluster_services(c: &mut Criterion) {
    let cases = [10u64, 100, 1_000]
        .into_iter()
        .map(|services| {
            let cfg = capacity_study(100, services as usize, 10, Some(1.0), secs(20));
            (services, services, cfg)
        })
        .collect();
    bench_runs(c, "cluster_services", cases);
}

fn cluster_rate(c: &mut Criterion) {
    let cases = [100u64, 1_000, 10_000]
        .into_iter()
        .map(|rate| {
            let cfg = capacity_study(50, 10, 150, Some(rate as f64), secs(10));
            let events = run(&cfg, 1, &mut NullSink).events_fired;
            (rate, events, cfg)
        })
        .collect();
    bench_runs(c, "cluster_rate", cases);
}

fn cluster_busy(c: &mut Criterion) {
    let cases = [(50u32, 5usize, 5_000.0), (500, 50, 500.0)]
        .into_iter()
        .map(|(nodes, services, rate)| {
            let cfg = capacity_study(nodes, services, 300, Some(rate), secs(20));
            let events = run(&cfg, 1, &mut NullSink).events_fired;
            (u64::from(nodes) * 30, events, cfg)
        })
        .collect();
    bench_runs(c, "cluster_busy", cases);
}

criterion_group!(
    benches,
    cluster_pods,
    cluster_services,
    cluster_rate,
    cluster_busy
);
criterion_main!(benches);
