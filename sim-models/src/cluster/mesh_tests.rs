//! The cluster run with a service mesh.

use super::*;
use crate::app::ServerSpec;
use crate::ipam::Allocator;
use crate::mesh::{MeshConfig, MeshMode, ProxyKind, ProxyResources};
use crate::topology::spread_nodes;
use sim_core::NullSink;

fn secs(s: u64) -> SimDuration {
    SimDuration::from_secs(s)
}

/// 3 nodes; `web` (6 pods) called by `api` (3 pods); `mesh` as given.
pub(super) fn meshed(mesh: Option<MeshConfig>) -> ClusterConfig {
    let server = ServerSpec {
        concurrency: 8,
        service_time: SimDuration::from_millis(5),
        queue_limit: None,
    };
    let web = DeploymentSpec::new("web", 6, secs(5), secs(5), server);
    let api = DeploymentSpec::new("api", 3, secs(5), secs(5), server);
    ClusterConfig {
        nodes: spread_nodes(3, &["a".to_string()], 110),
        ipam: IpamLayout::Flat {
            pod_cidr: "10.9.0.0/22".parse().unwrap(),
            allocator: Allocator::Flat,
        },
        deployments: vec![web, api],
        traffic: vec![TrafficSpec {
            from: Some(1),
            ..TrafficSpec::to_service("api-to-web", 0, 100.0, secs(2))
        }],
        timeline: Vec::new(),
        duration: secs(60),
        sample_every: secs(30),
        windows: Vec::new(),
        policy: None,
        dns: None,
        conntrack: None,
        kube_proxy: None,
        nat_gateways: None,
        billing: None,
        mesh,
        node_pool: None,
        services: crate::services::ServicesConfig::default(),
    }
}

fn last_gauge(out: &RunOutput, name: &str) -> f64 {
    let col = out
        .metrics
        .columns()
        .iter()
        .position(|c| c == name)
        .unwrap();
    out.metrics.rows().last().unwrap().1[col]
}

#[test]
fn every_meshed_pod_has_a_sidecar_and_ambient_one_ztunnel_per_node() {
    let sidecar = MeshConfig {
        mode: MeshMode::Sidecar(ProxyKind::Istio),
        meshed: vec![true, true],
        resources: ProxyResources::ISTIO_SIDECAR,
        destination_rules: Vec::new(),
        virtual_services: Vec::new(),
    };
    let out = run(&meshed(Some(sidecar.clone())), 1, &mut NullSink);
    assert_eq!(last_gauge(&out, "mesh_proxies"), 9.0);
    let partly = MeshConfig {
        meshed: vec![true, false],
        ..sidecar.clone()
    };
    let out = run(&meshed(Some(partly)), 1, &mut NullSink);
    assert_eq!(last_gauge(&out, "mesh_proxies"), 6.0);
    let ambient = MeshConfig {
        mode: MeshMode::Ambient { waypoint: None },
        ..sidecar
    };
    let out = run(&meshed(Some(ambient)), 1, &mut NullSink);
    assert_eq!(last_gauge(&out, "mesh_proxies"), 3.0);
    let out = run(&meshed(None), 1, &mut NullSink);
    assert!(!out.metrics.columns().iter().any(|c| c == "mesh_proxies"));
}
