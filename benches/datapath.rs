//! Data-path throughput: packets through a multi-hop overlay path, and
//! whether the simulator's cost per packet grows with the cluster.
//!
//! Each run is a calico-vxlan cluster of `N` nodes (10 or 1000) with one pod
//! per node and 200 UDP flows between pods on different nodes (chosen by a
//! fixed LCG among the first `busy` nodes' pods: all of them, or 10 as a
//! control that keeps the touched state as small as in the 10-node
//! cluster), 200 datagrams each: 40,000 packets, each crossing four hops
//! (pod veth, the node's VXLAN encapsulation and uplink, the underlay, the
//! far node's decapsulation and veth) before delivery. Throughput is
//! reported in packets per second of wall time. Route lookups are
//! arithmetic on the pod CIDR, so the time per packet should not depend on
//! `N`; building the topology is O(N) and is part of each run (about 5,000
//! links at 1000 nodes), so the `topology_only` group times the same
//! clusters with no traffic: (overlay - topology) / 40,000 is the cost per
//! packet.
//!
//! Measured on the shared 2-core VM (load average about 9 while others
//! compiled; medians of 10 samples, noisy: earlier runs under different load
//! gave 10-node medians from 26 to 134 ms): 10 nodes 55.4 ms per 40,000
//! packets (0.72 M packets/s), 1000 nodes 62.6 ms (0.64 M packets/s), ratio
//! 1.13; 1000 nodes with the traffic on 10 of them 55.6 ms, as fast as the
//! 10-node cluster, so the difference is the larger set of links and stacks
//! the traffic touches (cache), not the node count. Building the topology
//! alone: 10.7 µs at 10 nodes, 0.90 ms at 1000.
//!
//! Run: `cargo bench -p knsim-benches --bench datapath -- --warm-up-time 1 --measurement-time 3`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sim_core::SimDuration;
use sim_models::datapath::cni::Cni;
use sim_models::datapath::network::{
    run, Dest, FlowKind, FlowSpec, NetConfig, PodSpec, Recording, ServiceSetup, UnderlaySpec,
    BGP_HOLD_TIME,
};
use sim_models::datapath::tcp::TcpSettings;
use std::hint::black_box;
use std::time::Duration;

const FLOWS: u32 = 200;
const PER_FLOW: u32 = 200;

/// `nodes` nodes with one pod each; the flows run between the pods of the
/// first `busy` nodes.
fn cluster(nodes: usize, busy: usize) -> NetConfig {
    let pods = (0..nodes)
        .map(|n| PodSpec {
            name: format!("pod-{n}"),
            node: n,
            tcp: TcpSettings::default(),
        })
        .collect();
    let mut x: u64 = 12345;
    let mut next = || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) as usize % busy
    };
    let flows = (0..FLOWS)
        .map(|i| {
            let from = next();
            let to = (from + 1 + next() % (busy - 1)) % busy;
            FlowSpec {
                name: format!("f{i}"),
                from,
                to: Dest::Endpoint(to),
                kind: FlowKind::Udp { port: 53 },
                sizes: vec![512],
                start: SimDuration::from_micros(u64::from(i)),
                every: SimDuration::from_micros(250),
                count: PER_FLOW,
                timeout: SimDuration::from_secs(1),
            }
        })
        .collect();
    NetConfig {
        cni: Cni::CalicoVxlan,
        nodes,
        cluster_cidr: "10.128.0.0/14".parse().expect("a valid CIDR"),
        node_mask: 24,
        pod_mtu: None,
        underlay: UnderlaySpec {
            nic_mtu: 1500,
            path_mtu: 1500,
            latency: SimDuration::from_micros(50),
            bandwidth: 10e9,
            icmp_allowed: true,
        },
        sites: Vec::new(),
        pods,
        flows,
        faults: Vec::new(),
        bgp_hold_time: BGP_HOLD_TIME,
        duration: SimDuration::from_secs(2),
        services: ServiceSetup::default(),
    }
}

fn overlay_path(c: &mut Criterion) {
    let mut g = c.benchmark_group("datapath_overlay");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (nodes, busy) in [(10usize, 10usize), (1000, 1000), (1000, 10)] {
        let cfg = cluster(nodes, busy);
        let check = run(&cfg, Recording::default()).expect("a valid configuration");
        assert_eq!(check.packets.created, u64::from(FLOWS * PER_FLOW));
        assert_eq!(check.packets.delivered, check.packets.created);
        g.throughput(Throughput::Elements(check.packets.created));
        let id = format!("{nodes}_nodes_traffic_on_{busy}");
        g.bench_with_input(BenchmarkId::new("cluster", id), &cfg, |b, cfg| {
            b.iter(|| black_box(run(cfg, Recording::default()).expect("valid")))
        });
    }
    g.finish();
    let mut g = c.benchmark_group("datapath_topology_only");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    for nodes in [10usize, 1000] {
        let mut cfg = cluster(nodes, nodes);
        cfg.flows.clear();
        g.bench_with_input(BenchmarkId::new("nodes", nodes), &cfg, |b, cfg| {
            b.iter(|| black_box(run(cfg, Recording::default()).expect("valid")))
        });
    }
    g.finish();
}

criterion_group!(benches, overlay_path);
criterion_main!(benches);
