//! The forwarding engines' cost to the simulator, per packet: the
//! packet-level run of `scenarios/forwarding_engines.yaml` (Calico VXLAN, 3
//! nodes, one ClusterIP Service with 3 pods) for kube-proxy iptables, IPVS,
//! nftables and an eBPF load balancer at 1k, 10k and 30k Services.
//!
//! Each run opens 2,000 short connections (200 B up, 1 KB down; 11 packets
//! each, so about one packet in eleven is a first packet that runs the
//! connection path: the engine's DNAT and lookup; no conntrack table or
//! policy modelled here). The engine's lookup is charged as simulated time computed in O(1)
//! (sim-models `kube_proxy`), and later packets follow the flow's NAT by one
//! hash lookup, so wall time per packet should not grow with the Service
//! count: the 30k/1k ratio should stay at or below 1.2, as `service_lookup`
//! holds for the lookups alone. `forwarding_engines.yaml` is the replay
//! with expectations; this bench times the simulator.
//!
//! Measured on the shared 2-core VM while other agents compiled (medians of
//! 10 samples of about 14,000 packets, noisy: sample ranges overlap across
//! all twelve cases), ms per run at 1k / 10k / 30k Services and the 30k/1k
//! ratio: iptables 16.97 / 12.91 / 14.51 (0.86), IPVS 13.76 / 16.08 / 15.50
//! (1.13), nftables 15.37 / 12.81 / 14.46 (0.94), eBPF 13.31 / 17.14 /
//! 15.52 (1.17); about 1 us of wall time per packet whatever the engine and
//! the Service count.
//!
//! Run: `cargo bench -p knsim-benches --bench forwarding -- --warm-up-time 1 --measurement-time 3`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sim_core::SimDuration;
use sim_models::datapath::cni::Cni;
use sim_models::datapath::network::{
    run, Dest, FlowKind, FlowSpec, NetConfig, PodSpec, Recording, ServiceSetup, ServiceSpec,
    UnderlaySpec, BGP_HOLD_TIME,
};
use sim_models::datapath::tcp::TcpSettings;
use sim_models::kube_proxy::{KubeProxyConfig, Mode};
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Duration;

const CONNECTIONS: u32 = 2_000;

/// The forwarding_engines topology with `services` Services programmed in
/// `mode`.
fn network(mode: Mode, services: u64) -> NetConfig {
    let pod = |name: &str, node| PodSpec {
        name: name.into(),
        node,
        tcp: TcpSettings::default(),
    };
    let mut kp = KubeProxyConfig::new(mode);
    kp.other_services = services - 1;
    kp.other_endpoints = 3;
    NetConfig {
        cni: Cni::CalicoVxlan,
        nodes: 3,
        cluster_cidr: "10.244.0.0/16".parse().expect("a valid CIDR"),
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
        pods: vec![
            pod("client", 0),
            pod("web-1", 1),
            pod("web-2", 2),
            pod("web-3", 2),
        ],
        flows: vec![FlowSpec {
            name: "get".into(),
            from: 0,
            to: Dest::Service(0),
            kind: FlowKind::Tcp {
                port: 80,
                request: 200,
                response: 1_000,
            },
            sizes: Vec::new(),
            start: SimDuration::from_millis(1),
            every: SimDuration::from_micros(500),
            count: CONNECTIONS,
            timeout: SimDuration::from_secs(5),
        }],
        faults: Vec::new(),
        bgp_hold_time: BGP_HOLD_TIME,
        duration: SimDuration::from_secs(2),
        services: ServiceSetup {
            services: vec![ServiceSpec {
                name: "web".into(),
                ip: Ipv4Addr::new(10, 96, 0, 2),
                port: 80,
                target_port: 8080,
                endpoints: vec![1, 2, 3],
            }],
            kube_proxy: Some(kp),
            seed: 1,
            ..ServiceSetup::default()
        },
    }
}

fn forwarding(c: &mut Criterion) {
    let mut g = c.benchmark_group("forwarding");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for mode in Mode::ALL {
        for services in [1_000u64, 10_000, 30_000] {
            let cfg = network(mode, services);
            let out = run(&cfg, Recording::default()).expect("a valid network");
            assert_eq!(out.flows[0].succeeded, u64::from(CONNECTIONS));
            g.throughput(Throughput::Elements(out.packets.created));
            g.bench_with_input(BenchmarkId::new(mode.name(), services), &cfg, |b, cfg| {
                b.iter(|| black_box(run(cfg, Recording::default()).expect("valid")))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, forwarding);
criterion_main!(benches);
