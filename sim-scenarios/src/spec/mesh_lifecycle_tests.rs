//! The `mesh.lifecycle` section, `dials_at_start` and `proxy_restart`:
//! what they build and their located mistakes.

use super::super::parse;
use crate::error::InputError;
use sim_core::SimDuration;
use sim_models::cluster::Action;
use sim_models::mesh::lifecycle::{StartOrder, ISTIO_LEGACY_READINESS_PROBE, ISTIO_STARTUP_PROBE};
use sim_models::workload::StartDial;

/// Workloads `db` and `api` (whose app dials `dial` at start), the `mesh`
/// section and `timeline` as written.
fn scenario(mesh: &str, dial: &str, timeline: &str) -> Result<super::super::Scenario, InputError> {
    let text = format!(
        "name: t\nsummary: s\nduration: 1m\nsample_every: 10s\ncluster:\n  nodes: {{count: 1, zones: [a]}}\n  ipam: {{mode: flat, pod_cidr: 10.0.0.0/24}}\n\
         {mesh}workloads:\n  - {{name: db, replicas: 1, startup: 1s, ready_after: 1s, concurrency: 1, service_time: 1ms}}\n\
         \x20 - {{name: api, replicas: 1, startup: 1s, ready_after: 1s, concurrency: 1, service_time: 1ms, dials_at_start: {{service: {dial}, after: 800ms}}}}\n\
         traffic:\n  - {{to: api, rate: 1/s, timeout: 1s}}\n{timeline}"
    );
    parse("t.yaml", &text)
}

#[test]
fn lifecycle_start_orders_probes_and_dials_build() {
    let s = scenario(
        "mesh:\n  mode: sidecar\n  lifecycle: {proxy_listens_after: {min: 1s, max: 4s}}\n",
        "db",
        "",
    )
    .unwrap();
    let c = &s.variants[0].config;
    let l = c.mesh.as_ref().unwrap().lifecycle.unwrap();
    assert_eq!(l.order, StartOrder::Concurrent);
    assert_eq!(l.probe, ISTIO_STARTUP_PROBE);
    assert_eq!(
        (l.listen_min, l.listen_max),
        (SimDuration::from_secs(1), SimDuration::from_secs(4))
    );
    assert_eq!(
        c.deployments[1].start_dial,
        Some(StartDial {
            service: 0,
            after: SimDuration::from_millis(800)
        })
    );
    assert_eq!(c.deployments[0].start_dial, None);
    let held = "mesh:\n  mode: sidecar\n  lifecycle: {proxy_listens_after: {min: 1s, max: 1s}, hold_application_until_proxy_starts: true, startup_probe: false}\n";
    let l = scenario(held, "db", "").unwrap().variants[0]
        .config
        .mesh
        .clone()
        .unwrap()
        .lifecycle
        .unwrap();
    assert_eq!(l.order, StartOrder::HoldApplication);
    assert_eq!(l.probe, ISTIO_LEGACY_READINESS_PROBE);
    let native = "mesh:\n  mode: sidecar\n  lifecycle: {proxy_listens_after: {min: 1s, max: 1s}, native_sidecars: true}\n";
    let l = scenario(native, "db", "").unwrap().variants[0]
        .config
        .mesh
        .clone()
        .unwrap()
        .lifecycle
        .unwrap();
    assert_eq!(l.order, StartOrder::NativeSidecar);
    let restart = scenario(
        "mesh: {mode: sidecar}\n",
        "db",
        "timeline:\n  - {at: 30s, proxy_restart: api}\n",
    )
    .unwrap();
    assert_eq!(
        restart.variants[0].config.timeline[0].action,
        Action::ProxyRestart { deployment: 1 }
    );
}

#[test]
fn lifecycle_mistakes_are_located_with_a_hint() {
    let both = "mesh:\n  mode: sidecar\n  lifecycle: {proxy_listens_after: {min: 1s, max: 2s}, hold_application_until_proxy_starts: true, native_sidecars: true}\n";
    let e = scenario(both, "db", "").unwrap_err();
    assert_eq!(e.at.map(|a| a.0), Some(10), "{e}");
    assert!(e.hint.contains("keep one"), "{e}");
    let backwards =
        "mesh:\n  mode: sidecar\n  lifecycle: {proxy_listens_after: {min: 3s, max: 2s}}\n";
    let e = scenario(backwards, "db", "").unwrap_err();
    assert!(e.message.contains("more than max"), "{e}");
    let ambient =
        "mesh:\n  mode: ambient\n  lifecycle: {proxy_listens_after: {min: 1s, max: 2s}}\n";
    let e = scenario(ambient, "db", "").unwrap_err();
    assert!(e.hint.contains("mode: sidecar"), "{e}");
    let typo = "mesh:\n  mode: sidecar\n  lifecycle: {proxy_listens_after: {min: 1s, max: 2s}, hold_app: true}\n";
    assert!(scenario(typo, "db", "").is_err());
    let e = scenario("", "dbb", "").unwrap_err();
    assert_eq!(e.at.map(|a| a.0), Some(10), "{e}");
    assert!(e.hint.contains("did you mean `db`"), "{e}");
    let e = scenario("", "db", "timeline:\n  - {at: 30s, proxy_restart: api}\n").unwrap_err();
    assert!(e.message.contains("no sidecar proxy"), "{e}");
    assert_eq!(e.at.map(|a| a.0), Some(14), "{e}");
}
