//! The same Service flow at both levels: the request-level cluster run and
//! the packet-level data path share the connection path's stages
//! (sim-models `path`), so with the same kube-proxy configuration they must
//! spread connections over the endpoints alike and charge first packets
//! the same lookup cost distribution.
//!
//! Cluster side: a client Deployment opening a new connection per request
//! to a 3-pod backend through kube-proxy iptables with 30,000 Services;
//! what it answers per pod (`WindowStats::served`) and its first-packet
//! histogram (round trip = the KEP-3866 path, median 12 us, + the lookup)
//! with the lookup CPU summed. Packet side: a client pod opening
//! connections to the ClusterIP of a 3-pod Service with the same
//! kube-proxy settings; first packets per pod and the lookup per first
//! packet.
//!
//! Tolerances (sampling: about 3,000 connections on each side): each pod's
//! share within 0.04 of the other level's (sorted shares; the standard
//! error of a third over 3,000 draws is 0.009); the mean lookup within 10%;
//! the lookup's p50, p90 and p99 within 15% of the cluster's first-packet
//! quantiles less the path's median (12 us: the lookup is hundreds of
//! microseconds at 30k Services, so the path's spread moves the sum's
//! quantiles by a few percent at most).

use sim_scenarios::{datapath, parse, run};

const CLUSTER: &str = "name: cross
summary: one Service flow, request level
duration: 40s
sample_every: 10s
cluster:
  nodes: {count: 3, zones: [zone-a]}
  ipam: {mode: per-node, cluster_cidr: 10.244.0.0/16, node_mask: 24}
network:
  cni: calico
  kube_proxy: {mode: iptables}
  services: {count: 29999, endpoints: 3}
workloads:
  - {name: web, replicas: 3, startup: 1s, ready_after: 1s, concurrency: 50, service_time: 1ms}
  - {name: client, replicas: 1, startup: 1s, ready_after: 1s, concurrency: 50, service_time: 1ms}
traffic:
  - {from: client, to: web, rate: 100/s, timeout: 5s}
measure:
  windows:
    - {name: steady, from: 10s, to: 40s}
";

const PACKETS: &str = "name: cross
summary: one Service flow, packet level
duration: 40s
datapath:
  cni: calico-vxlan
  nodes: 3
  underlay: {mtu: 1500}
  pods:
    - {name: client, node: 1}
    - {name: web-1, node: 2, labels: {app: web}}
    - {name: web-2, node: 3, labels: {app: web}}
    - {name: web-3, node: 3, labels: {app: web}}
  services:
    - {name: web, selector: {app: web}}
  network:
    cni: calico
    kube_proxy: {mode: iptables}
    services: {count: 29999, endpoints: 3}
flows:
  - {name: get, from: client, to: web, tcp: {request: 100B, response: 1KB}, start: 1s, every: 10ms, count: 3000, timeout: 5s}
";

fn sorted_shares(counts: &[u64]) -> Vec<f64> {
    let total: u64 = counts.iter().sum();
    assert!(total > 0);
    let mut s: Vec<f64> = counts.iter().map(|&c| c as f64 / total as f64).collect();
    s.sort_by(f64::total_cmp);
    s
}

#[test]
fn a_service_flow_spreads_and_costs_the_same_at_both_levels() {
    let cluster = parse("cross.yaml", CLUSTER).unwrap();
    let runs = run::run_all(&cluster, &[7], Some(1)).unwrap();
    let w = &runs[0].output.windows[0];
    let served: Vec<u64> = w.served.values().copied().filter(|&n| n > 0).collect();
    assert_eq!(served.len(), 3, "{served:?}");
    let cluster_shares = sorted_shares(&served);
    let conns = w.first_packet.count();
    assert!(conns > 2_500, "{conns}");
    let cluster_mean = w.lookup_cpu.as_secs_f64() / conns as f64;

    let packets = datapath::parse("cross.yaml", PACKETS).unwrap();
    let runs = datapath::run_all(&packets, &[7], Some(1), None).unwrap();
    let f = &runs[0].output.flows[0];
    assert_eq!(f.succeeded, 3_000);
    let by_pod: Vec<u64> = f.endpoints.values().copied().collect();
    assert_eq!(by_pod.len(), 3, "{by_pod:?}");
    let packet_shares = sorted_shares(&by_pod);
    for (c, p) in cluster_shares.iter().zip(&packet_shares) {
        assert!(
            (c - p).abs() < 0.04,
            "shares {cluster_shares:?} vs {packet_shares:?}"
        );
    }

    let packet_mean = f.lookups.mean().as_secs_f64();
    let r = packet_mean / cluster_mean;
    assert!(
        (r - 1.0).abs() < 0.10,
        "mean lookup {packet_mean} vs {cluster_mean}"
    );
    let path_median = 12e-6;
    for q in [0.5, 0.9, 0.99] {
        let c = w.first_packet.quantile(q).as_secs_f64() - path_median;
        let p = f.lookups.quantile(q).as_secs_f64();
        assert!(
            ((p / c) - 1.0).abs() < 0.15,
            "lookup q{q}: packet level {p}, cluster {c}"
        );
    }
}
