//! The simulator's own cost of one Service lookup, per forwarding engine,
//! against the number of Services in the cluster.
//!
//! Each step is what the cluster run does for a new connection: pick the
//! endpoint from the data path's view ([`KubeProxy::pick`]) and charge the
//! first packet ([`KubeProxy::first_packet`]), whose simulated cost for
//! iptables grows linearly with the Services. The simulator's cost must
//! not: the iptables walk is charged as `rules x per_rule` without visiting
//! the rules. Groups are per mode, cases 100, 1k, 10k and 100k Services
//! (each with 3 endpoints); compare the medians across cases (the target
//! is a 100k/100 ratio under 1.2).
//!
//! Run: `cargo bench -p knsim-benches --bench service_lookup -- --warm-up-time 1 --measurement-time 3`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sim_core::RngStreams;
use sim_models::kube_proxy::{KubeProxy, KubeProxyConfig, Mode};
use std::hint::black_box;
use std::time::Duration;

const SERVICES: [u64; 4] = [100, 1_000, 10_000, 100_000];

fn lookup(c: &mut Criterion) {
    for mode in Mode::ALL {
        let mut g = c.benchmark_group(format!("service_lookup/{}", mode.name()));
        g.throughput(Throughput::Elements(1));
        for n in SERVICES {
            let mut cfg = KubeProxyConfig::new(mode);
            cfg.other_services = n - 1;
            cfg.other_endpoints = 3;
            let mut kp = KubeProxy::new(&cfg, 1);
            kp.install(0, &[10, 11, 12]);
            let mut rng = RngStreams::new(1).stream("bench");
            g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
                b.iter(|| {
                    let (pod, pick) = kp.pick(0, &mut rng).expect("endpoints");
                    let fp = kp.first_packet(pick, &mut rng);
                    black_box((pod, fp))
                })
            });
        }
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = lookup
}
criterion_main!(benches);
