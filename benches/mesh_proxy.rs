//! The simulator's cost per request with the service mesh's proxies on the
//! path, against the same run without a mesh, at three cluster sizes.
//!
//! Each case: a client Deployment and a server Deployment of `pods` pods
//! each on `pods / 2` nodes, 2,000 pod-to-pod requests/s on keep-alive
//! connections for 10 s simulated; no mesh, Istio sidecars in every pod
//! (two proxies per request), or ambient with a waypoint (three). Throughput
//! is in requests sent (counted by a first run of the case: the simulation
//! is deterministic), so criterion's time per element is the cost per
//! request. The issue asks: with a mesh within 2x of without; flat in the
//! size (largest/smallest <= 1.3).
//!
//! Run: `cargo bench -p knsim-benches --bench mesh_proxy`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sim_core::{NullSink, SimDuration};
use sim_models::cluster::{capacity_study, run, ClusterConfig, TrafficSpec};
use sim_models::connections::{ConnectionMode, GO_IDLE_CONN_TIMEOUT};
use sim_models::mesh::{MeshConfig, MeshMode, ProxyKind, ProxyResources};
use std::hint::black_box;
use std::time::Duration;

/// The case with `pods` pods per Deployment and `mesh` (0: none, 1:
/// sidecars, 2: ambient with a waypoint).
fn config(pods: u32, mesh: usize) -> ClusterConfig {
    let duration = SimDuration::from_secs(10);
    let mut cfg = capacity_study(pods / 2, 2, pods, None, duration);
    cfg.traffic = vec![TrafficSpec {
        from: Some(1),
        connections: ConnectionMode::KeepAlive {
            max_idle: 4,
            idle_timeout: GO_IDLE_CONN_TIMEOUT,
        },
        ..TrafficSpec::to_service("svc1-svc0", 0, 2_000.0, SimDuration::from_secs(10))
    }];
    let mode = match mesh {
        0 => None,
        1 => Some(MeshMode::Sidecar(ProxyKind::Istio)),
        _ => Some(MeshMode::Ambient {
            waypoint: Some(ProxyResources::ISTIO_SIDECAR),
        }),
    };
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
    for (mesh, name) in [(0, "none"), (1, "sidecars"), (2, "ambient")] {
        let mut g = c.benchmark_group(format!("mesh_proxy/{name}/pods"));
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
        for pods in [24u32, 96, 384] {
            let cfg = config(pods, mesh);
            let requests = run(&cfg, 1, &mut NullSink).requests[0].sent;
            g.throughput(Throughput::Elements(requests));
            g.bench_with_input(BenchmarkId::from_parameter(pods), &cfg, |b, cfg| {
                b.iter(|| black_box(run(cfg, 1, &mut NullSink).events_fired));
            });
        }
        g.finish();
    }
}

criterion_group!(benches, mesh_proxy);
criterion_main!(benches);
