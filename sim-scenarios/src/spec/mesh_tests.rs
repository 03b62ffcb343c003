//! The `mesh` section: defaults, modes, exclusions, located mistakes.

use super::super::parse;
use crate::error::InputError;
use sim_models::mesh::{MeshMode, ProxyKind, ProxyResources};

/// A scenario with workloads `api` and `coredns` (the cluster DNS) and
/// `mesh` as written.
fn with_mesh(mesh: &str) -> Result<super::super::Scenario, InputError> {
    let text = format!(
        "name: t\nsummary: s\nduration: 1m\nsample_every: 10s\ncluster:\n  nodes: {{count: 1, zones: [a]}}\n  ipam: {{mode: flat, pod_cidr: 10.0.0.0/24}}\n\
         {mesh}workloads:\n  - {{name: api, replicas: 1, startup: 1s, ready_after: 1s, concurrency: 1, service_time: 1ms}}\n\
         \x20 - {{name: coredns, replicas: 1, startup: 1s, ready_after: 1s}}\n\
         dns: {{workload: coredns}}\n\
         traffic:\n  - {{to: api, rate: 1/s, timeout: 1s}}\n"
    );
    parse("t.yaml", &text)
}

#[test]
fn sidecar_mesh_defaults_to_istio_and_leaves_the_cluster_dns_out() {
    let s = with_mesh("mesh:\n  mode: sidecar\n").unwrap();
    let m = s.variants[0].config.mesh.clone().unwrap();
    assert_eq!(m.mode, MeshMode::Sidecar(ProxyKind::Istio));
    assert_eq!(m.meshed, vec![true, false]);
    assert_eq!(m.resources, ProxyResources::ISTIO_SIDECAR);
    assert_eq!(with_mesh("").unwrap().variants[0].config.mesh, None);
}

#[test]
fn linkerd_ambient_waypoint_exclusions_and_resources_parse() {
    let s = with_mesh("mesh: {mode: sidecar, proxy: linkerd, exclude: [api], resources: {cpu: 500m, memory_limit: 256Mi}}\n").unwrap();
    let m = s.variants[0].config.mesh.clone().unwrap();
    assert_eq!(m.mode, MeshMode::Sidecar(ProxyKind::Linkerd));
    assert_eq!(m.meshed, vec![false, false]);
    assert_eq!(
        m.resources,
        ProxyResources {
            cpu_millis: 500,
            memory_limit: 256 << 20
        }
    );
    let s = with_mesh("mesh: {mode: ambient, waypoint: {cpu: 1}}\n").unwrap();
    let m = s.variants[0].config.mesh.clone().unwrap();
    assert_eq!(
        m.mode,
        MeshMode::Ambient {
            waypoint: Some(ProxyResources {
                cpu_millis: 1000,
                memory_limit: 1 << 30
            })
        }
    );
}

#[test]
fn mesh_mistakes_are_located_with_a_hint() {
    let e = with_mesh("mesh: {mode: sidecar, waypoint: {}}\n").unwrap_err();
    assert_eq!(e.at.map(|a| a.0), Some(8), "{e}");
    assert!(e.hint.contains("mode: ambient"), "{e}");
    let e = with_mesh("mesh: {mode: ambient, proxy: istio}\n").unwrap_err();
    assert!(e.message.contains("no sidecar proxy"), "{e}");
    assert!(e.at.is_some(), "{e}");
    let e = with_mesh("mesh: {mode: sidecar, exclude: [apx]}\n").unwrap_err();
    assert!(e.hint.contains("did you mean `api`"), "{e}");
    assert!(e.at.is_some(), "{e}");
    let e = with_mesh("mesh: {mode: sidecar, exclude: [api, api]}\n").unwrap_err();
    assert!(e.message.contains("twice"), "{e}");
    let e = with_mesh("mesh: {mode: sidecars}\n").unwrap_err();
    assert!(e.at.is_some(), "{e}");
    assert!(e.message.contains("sidecars"), "{e}");
    let e = with_mesh("mesh: {mode: sidecar, injection: all}\n").unwrap_err();
    assert!(e.message.contains("injection"), "{e}");
    assert!(e.at.is_some(), "{e}");
}

#[test]
fn a_proxy_memory_limit_below_its_base_is_a_located_error() {
    // Istio's sidecar holds about 56.7 MiB with nothing in it.
    let e = with_mesh("mesh:\n  mode: sidecar\n  resources: {memory_limit: 50Mi}\n").unwrap_err();
    assert_eq!(e.at.map(|a| a.0), Some(10), "{e}");
    assert!(
        e.to_string().contains("OOMKilled at its first request"),
        "{e}"
    );
    assert!(e.hint.contains("memory_limit"), "{e}");
    let e = with_mesh("mesh: {mode: ambient, waypoint: {memory_limit: 10Mi}}\n").unwrap_err();
    assert!(e.to_string().contains("OOMKilled"), "{e}");
    assert!(with_mesh("mesh: {mode: ambient, resources: {memory_limit: 64Mi}}\n").is_ok());
}
