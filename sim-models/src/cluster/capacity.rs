//! # A capacity study's cluster, built in code
//!
//! ## Scope
//! The cluster a capacity planner writes to size a cluster (issue 14's
//! shape): `nodes` nodes in three zones with kubelet's default 110 pods,
//! a per-node /24 from a /9, `services` Deployments of `replicas` pods each
//! behind its Service (4 concurrent requests of 20 ms per pod), and with a
//! `rate`, one client outside the cluster per Service (Poisson arrivals,
//! 10 s timeout, a connection per request). Nothing else is modelled (no
//! DNS, conntrack, kube-proxy or policy) so that what it measures is the
//! cluster model's own cost per pod, Service and event.
//!
//! ## What it emits
//! A [`ClusterConfig`], sampled every 10 s, without windows or timeline; the
//! `cluster_scale` bench and the memory tests build their sizes with it.

use super::{ClusterConfig, TrafficSpec};
use crate::app::ServerSpec;
use crate::ipam::{IpamLayout, Ipv4Cidr};
use crate::topology::spread_nodes;
use crate::workload::DeploymentSpec;
use sim_core::SimDuration;

/// `services` Deployments of `replicas` pods on `nodes` nodes, run for
/// `duration`; with `rate` \[requests/s\], a client per Service at that rate.
pub fn capacity_study(
    nodes: u32,
    services: usize,
    replicas: u32,
    rate: Option<f64>,
    duration: SimDuration,
) -> ClusterConfig {
    let secs = SimDuration::from_secs;
    let zones = ["a", "b", "c"].map(String::from);
    let server = ServerSpec {
        concurrency: 4,
        service_time: SimDuration::from_millis(20),
        queue_limit: None,
    };
    let traffic = rate.map_or_else(Vec::new, |rate| {
        (0..services)
            .map(|i| TrafficSpec::to_service(&format!("svc{i}"), i, rate, secs(10)))
            .collect()
    });
    ClusterConfig {
        nat_gateways: None,
        billing: None,
        mesh: None,
        nodes: spread_nodes(nodes, &zones, 110),
        ipam: IpamLayout::PerNode {
            cluster_cidr: Ipv4Cidr::new(std::net::Ipv4Addr::new(10, 0, 0, 0), 9)
                .expect("a valid /9"),
            node_mask: 24,
        },
        deployments: (0..services)
            .map(|i| DeploymentSpec::new(&format!("svc{i}"), replicas, secs(5), secs(5), server))
            .collect(),
        traffic,
        timeline: Vec::new(),
        duration,
        sample_every: secs(10),
        windows: Vec::new(),
        policy: None,
        dns: None,
        conntrack: None,
        kube_proxy: None,
        services: Default::default(),
        node_pool: None,
    }
}
