//! Ambient's waypoint making the L7 decisions (the `l7` room): the same
//! mechanisms as a client sidecar's, with one upstream state shared by all
//! clients, and retries leaving from the waypoint.

use super::l7_tests::{chain, conserved, half_failing_db, istio, pinned, rules, server, tries};
use super::*;
use crate::mesh::outlier::OutlierSpec;
use crate::mesh::rules::DestinationRule;
use crate::mesh::{MeshConfig, MeshMode, ProxyResources};
use sim_core::NullSink;

/// Istio ambient in every pod of `n` workloads: a ztunnel per node, and a
/// waypoint when `waypoint`.
fn ambient(n: usize, waypoint: bool, rules: Vec<DestinationRule>) -> Option<MeshConfig> {
    let mut m = istio(n, rules)?;
    m.mode = MeshMode::Ambient {
        waypoint: waypoint.then_some(ProxyResources::ISTIO_SIDECAR),
    };
    Some(m)
}

#[test]
fn a_waypoint_balances_pinned_connections_per_request() {
    // ztunnels alone are L4: the 4 pinned connections keep at most 4 pods
    // serving, and no proxy decides per request.
    let mut cfg = pinned();
    cfg.mesh = ambient(4, false, Vec::new());
    let l4 = run(&cfg, 1, &mut NullSink);
    assert!(l4.windows[0].served.len() <= 4);
    assert!(l4.mesh_upstreams[0].is_none());
    // With a waypoint, it picks per request (LEAST_REQUEST) over all 9.
    cfg.mesh = ambient(4, true, Vec::new());
    let out = run(&cfg, 1, &mut NullSink);
    let served = &out.windows[0].served;
    assert_eq!(served.len(), 9);
    let total: u64 = served.values().sum();
    let top = *served.values().max().unwrap() as f64 / total as f64;
    assert!(top < 0.13, "busiest pod's share {top}");
    let r = &out.requests[0];
    assert!(r.error_rate() == 0.0, "{r:?}");
    let up = out.mesh_upstreams[0].expect("web-api goes through the waypoint");
    assert!(
        up.tries + r.in_flight >= r.sent && up.tries <= r.sent,
        "{up:?}"
    );
}

#[test]
fn a_waypoint_retry_passes_the_waypoint_and_the_destination_ztunnel_only() {
    // api refuses everything (no worker, no queue): Istio's default route
    // retries a 503 twice, so each request is 3 tries.
    let mut cfg = chain(0, server(0, 2, Some(0)));
    cfg.deployments[1].server = server(0, 2, Some(0));
    cfg.traffic.truncate(1);
    cfg.mesh = ambient(4, true, Vec::new());
    let out = run(&cfg, 1, &mut NullSink);
    let r = &out.requests[0];
    let m = out.mesh.as_ref().expect("a mesh");
    let names: Vec<&str> = m.hops.iter().map(|h| h.hop).collect();
    assert_eq!(names, ["source ztunnel", "waypoint", "destination ztunnel"]);
    let [src, wp, dst] = [0, 1, 2].map(|i| m.hops[i].requests);
    assert!(r.sent > 2_000 && r.answered == 0, "{r:?}");
    // Two retries per ended request (those in flight at the end: 0 to 2).
    assert!(r.mesh_retried >= 2 * (r.sent - r.in_flight) && r.mesh_retried <= 2 * r.sent);
    // The source ztunnel sees each request once (the requests sent at the
    // end may not have reached it yet); the waypoint and the destination
    // ztunnel see every try.
    assert!(src <= r.sent && src + r.in_flight >= r.sent, "{src} {r:?}");
    assert!(wp <= tries(r) && wp + r.in_flight >= tries(r), "{wp} {r:?}");
    assert!(dst <= wp && dst + r.in_flight >= wp, "{dst} {wp}");
    assert!(wp >= 3 * (r.sent - r.in_flight));
    let up = out.mesh_upstreams[0].expect("through the waypoint");
    assert_eq!(up.retries, r.mesh_retried);
    // With sidecars, a retry leaves from the client's sidecar: both hops
    // see every try.
    cfg.mesh = istio(4, Vec::new());
    let side = run(&cfg, 1, &mut NullSink);
    let (r, m) = (&side.requests[0], side.mesh.as_ref().unwrap());
    assert!(m.hops[0].requests + r.in_flight >= tries(r) && m.hops[0].requests <= tries(r));
    assert!(out.requests.iter().chain(&side.requests).all(conserved));
}

#[test]
fn outlier_detection_at_the_waypoint_is_shared_by_every_client() {
    let mut cfg = half_failing_db();
    let detect = Some(OutlierSpec {
        max_ejection_percent: 50,
        ..OutlierSpec::envoy_default()
    });
    cfg.mesh = ambient(5, true, rules(None));
    let without = run(&cfg, 1, &mut NullSink);
    cfg.mesh = ambient(5, true, rules(detect));
    let with = run(&cfg, 1, &mut NullSink);
    cfg.mesh = istio(5, rules(detect));
    let sidecars = run(&cfg, 1, &mut NullSink);
    let (a, b, s) = (
        &without.requests[2],
        &with.requests[2],
        &sidecars.requests[2],
    );
    assert_eq!(a.mesh_ejections, 0);
    assert!(b.mesh_ejections > 0, "{b:?}");
    assert!(
        b.mesh_retried * 2 < a.mesh_retried,
        "{} vs {}",
        b.mesh_retried,
        a.mesh_retried
    );
    // One detector for all of auth's pods: each bad pod is ejected once
    // per ejection period, where each of the 4 sidecars ejects it on its
    // own (after its own 5 consecutive 503s).
    assert!(
        b.mesh_ejections * 2 < s.mesh_ejections,
        "{} vs {}",
        b.mesh_ejections,
        s.mesh_ejections
    );
    assert!(with.requests.iter().all(conserved));
}
