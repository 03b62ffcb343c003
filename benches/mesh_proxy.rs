//! The simulator's cost per request with the service mesh's proxies on the
//! path, against the same requests without a mesh, at three sizes of the
//! called Service.
//!
//! Each case: 24 client pods call a Service of `pods` server pods (on
//! `pods / 2` nodes) at 2,000 requests/s on keep-alive connections, with a
//! 1 s timeout; no mesh, Istio sidecars in every pod (two proxies per
//! request, the client's making the L7 decisions: a pick per request,
//! retries, a per-try timer), ambient with ztunnels only (two, L4: no L7
//! decision), or ambient with a waypoint (three, the waypoint making the
//! L7 decisions with one upstream state for all clients).
//!
//! What is timed is the steady state: each iteration runs the case for
//! 20 s and for 40 s simulated and counts the difference, so the cost is
//! that of the second 20 s (40,000 requests): set-up, pod start-up and the
//! pools' warm-up (the first request from a client proxy to each server
//! pod opens and handshakes a pooled connection: at 384 server pods, 9,216
//! pairs, most opened in the first 20 s) fall out. Throughput is in those
//! requests (counted by a first pair of runs: the simulation is
//! deterministic), so criterion's time per element is the cost of one
//! request. The issue asks: with a mesh within 2x of without; flat in the
//! size (largest/smallest <= 1.3).
//!
//! Each proxy is a queue the request waits in, so each costs one engine
//! event: a request without a mesh costs two (its arrival, its answer),
//! with sidecars four, with ambient and a waypoint five.
//!
//! Run: `cargo bench -p knsim-benches --bench mesh_proxy`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sim_core::{NullSink, SimDuration};
use sim_models::cluster::{capacity_study, run, ClusterConfig, TrafficSpec};
use sim_models::connections::{ConnectionMode, GO_IDLE_CONN_TIMEOUT};
use sim_models::mesh::{MeshConfig, MeshMode, ProxyKind, ProxyResources};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Client pods: the same at every size, so the connections a request
/// opens do not grow with the Service (only the endpoints do).
const CLIENTS: u32 = 24;

/// The cases: name and mesh mode.
const MESHES: [(&str, Option<MeshMode>); 4] = [
    ("none", None),
    ("sidecars", Some(MeshMode::Sidecar(ProxyKind::Istio))),
    ("ambient", Some(MeshMode::Ambient { waypoint: None })),
    (
        "ambient-waypoint",
        Some(MeshMode::Ambient {
            waypoint: Some(ProxyResources::ISTIO_SIDECAR),
        }),
    ),
];

/// The case with `pods` server pods under `mode`, run for `secs` seconds.
fn config(pods: u32, mode: Option<MeshMode>, secs: u64) -> ClusterConfig {
    let duration = SimDuration::from_secs(secs);
    let mut cfg = capacity_study(pods / 2, 2, pods, None, duration);
    cfg.deployments[1].replicas = CLIENTS;
    cfg.traffic = vec![TrafficSpec {
        from: Some(1),
        connections: ConnectionMode::KeepAlive {
            max_idle: 4,
            idle_timeout: GO_IDLE_CONN_TIMEOUT,
        },
        ..TrafficSpec::to_service("svc1-svc0", 0, 2_000.0, SimDuration::from_secs(1))
    }];
    cfg.mesh = mode.map(|mode| MeshConfig {
        mode,
        meshed: vec![true; cfg.deployments.len()],
        resources: ProxyResources::ISTIO_SIDECAR,
        destination_rules: Vec::new(),
        virtual_services: Vec::new(),
        lifecycle: None,
    });
    cfg
}

fn mesh_proxy(c: &mut Criterion) {
    for (name, mode) in MESHES {
        let mut g = c.benchmark_group(format!("mesh_proxy/{name}/pods"));
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(4));
        for pods in [24u32, 96, 384] {
            let (short, long) = (config(pods, mode, 20), config(pods, mode, 40));
            let sent = |cfg: &ClusterConfig| run(cfg, 1, &mut NullSink).requests[0].sent;
            g.throughput(Throughput::Elements(sent(&long) - sent(&short)));
            g.bench_with_input(BenchmarkId::from_parameter(pods), &pods, |b, _| {
                b.iter_custom(|iters| {
                    let mut marginal = Duration::ZERO;
                    for _ in 0..iters {
                        let t = Instant::now();
                        black_box(run(&short, 1, &mut NullSink).events_fired);
                        let first = t.elapsed();
                        let t = Instant::now();
                        black_box(run(&long, 1, &mut NullSink).events_fired);
                        marginal += t.elapsed().saturating_sub(first);
                    }
                    marginal
                });
            });
        }
        g.finish();
    }
}

criterion_group!(benches, mesh_proxy);
criterion_main!(benches);
