//! The cluster run with a service mesh.

use super::*;
use crate::app::ServerSpec;
use crate::ipam::Allocator;
use crate::mesh::lifecycle::{LifecycleSpec, StartOrder, ISTIO_STARTUP_PROBE};
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
        lifecycle: None,
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

fn sidecars(kind: ProxyKind) -> MeshConfig {
    MeshConfig {
        mode: MeshMode::Sidecar(kind),
        meshed: vec![true, true],
        resources: ProxyResources::ISTIO_SIDECAR,
        destination_rules: Vec::new(),
        virtual_services: Vec::new(),
        lifecycle: None,
    }
}

#[test]
fn sidecars_add_their_cpu_and_hop_latency_and_count_every_response() {
    use crate::mesh::proxy::ProxyProfile;
    let plain = run(&meshed(None), 3, &mut NullSink);
    let out = run(&meshed(Some(sidecars(ProxyKind::Istio))), 3, &mut NullSink);
    let r = out.requests[0];
    assert_eq!(
        r.sent,
        r.answered + r.timed_out + r.refused + r.rejected + r.in_flight
    );
    let m = out.mesh.as_ref().unwrap();
    assert_eq!(m.responses.iter().sum::<u64>() + r.in_flight, r.sent);
    assert_eq!(m.responses[0], r.answered);
    assert_eq!(m.hops.len(), 2);
    assert_eq!(m.hops[0].hop, "client sidecar");
    assert!(
        m.hops.iter().all(|h| h.requests + 2 >= r.answered),
        "{:?}",
        m.hops
    );
    // Each pair of client and server pods opens one connection: at most
    // 3 x 6 handshakes.
    assert!(m.handshakes > 0 && m.handshakes <= 18, "{}", m.handshakes);
    // Mean added latency: two proxies' CPU (0.2 ms each at light load)
    // plus two hop latencies (0.461 ms each), about 1.32 ms.
    let p = ProxyProfile::ISTIO_SIDECAR;
    let want = 2.0 * (p.cpu_per_request + p.hop_latency).as_secs_f64();
    let hist_mean = |o: &RunOutput| {
        let name = "request_latency{service=api-to-web}";
        o.metrics
            .histograms()
            .find(|(n, _)| *n == name)
            .unwrap()
            .1
            .mean()
            .as_secs_f64()
    };
    let added = hist_mean(&out) - hist_mean(&plain);
    assert!((added - want).abs() < 0.25e-3, "added {added} want {want}");
    // CPU: 100 requests/s through two proxies of 0.2 ms each.
    assert!((m.cpu_cores - 0.04).abs() < 0.006, "{}", m.cpu_cores);
    // 9 sidecars, each about its base memory.
    assert_eq!(m.proxies, 9);
    assert!(m.memory_bytes > 9 * p.base_memory && m.memory_bytes < 9 * 61_000_000);
}

#[test]
fn ambient_passes_both_ztunnels_and_the_waypoint_and_is_deterministic() {
    let ambient = MeshConfig {
        mode: MeshMode::Ambient {
            waypoint: Some(ProxyResources::ISTIO_SIDECAR),
        },
        ..sidecars(ProxyKind::Istio)
    };
    let cfg = meshed(Some(ambient));
    let out = run(&cfg, 5, &mut NullSink);
    let m = out.mesh.as_ref().unwrap();
    let names: Vec<&str> = m.hops.iter().map(|h| h.hop).collect();
    assert_eq!(names, ["source ztunnel", "waypoint", "destination ztunnel"]);
    assert!(m.hops.iter().all(|h| h.requests > 5000), "{:?}", m.hops);
    // 3 ztunnels and the waypoint.
    assert_eq!(m.proxies, 4);
    let again = run(&cfg, 5, &mut NullSink);
    assert_eq!(out.metrics.rows(), again.metrics.rows());
    assert_eq!(out.requests, again.requests);
}

/// Sidecars of 100m (each worker at 0.05 of a core: 500 requests/s per
/// proxy) with room for about 64 requests above their base: the api pods'
/// client sidecars get 800 requests/s each, so their queue, and their
/// memory, grows until the kernel kills them.
fn throttled(memory_limit: u64, lifecycle: Option<LifecycleSpec>) -> ClusterConfig {
    let mut c = meshed(Some(MeshConfig {
        resources: ProxyResources {
            cpu_millis: 100,
            memory_limit,
        },
        lifecycle,
        ..sidecars(ProxyKind::Istio)
    }));
    c.traffic[0].rate = 2400.0;
    c
}

fn tight() -> u64 {
    let p = crate::mesh::proxy::ProxyProfile::ISTIO_SIDECAR;
    p.base_memory + (1 << 20)
}

fn conserved(out: &RunOutput) {
    let t = &out.requests[0];
    assert_eq!(
        t.sent,
        t.answered + t.timed_out + t.refused + t.rejected + t.lookup_failed + t.in_flight,
        "{t:?}"
    );
    let m = out.mesh.as_ref().unwrap();
    assert_eq!(m.responses.iter().sum::<u64>() + t.in_flight, t.sent);
}

fn event<'a>(out: &'a RunOutput, reason: &str) -> Option<&'a EventSummary> {
    out.events.iter().find(|e| e.reason == reason)
}

#[test]
fn a_sidecar_past_its_memory_limit_is_oom_killed_and_its_requests_reset_as_uc() {
    let roomy = run(&throttled(1 << 30, None), 1, &mut NullSink);
    let m = roomy.mesh.as_ref().unwrap();
    assert_eq!(m.oom_kills, 0);
    assert!(event(&roomy, "OOMKilling").is_none());
    conserved(&roomy);

    let out = run(&throttled(tight(), None), 1, &mut NullSink);
    conserved(&out);
    let m = out.mesh.as_ref().unwrap();
    assert!(m.oom_kills >= 3, "{}", m.oom_kills);
    // The cgroup's usage never passes its limit.
    let limit = tight();
    assert!(m.memory_bytes <= 9 * limit, "{}", m.memory_bytes);
    let oom = event(&out, "OOMKilling").expect("the kernel's event");
    assert_eq!(oom.source, "kernel-monitor");
    assert!(
        oom.message
            .starts_with("Memory cgroup out of memory: Killed process (envoy)"),
        "{}",
        oom.message
    );
    let restarted = event(&out, "ProxyRestarted").expect("the restart");
    assert!(
        restarted.message.contains("Reason: OOMKilled"),
        "{}",
        restarted.message
    );
    // The requests inside the killed proxies, on their connections, and
    // sent while they were down are reset: UC in the mesh's flags.
    let t = &out.requests[0];
    assert!(t.proxy_reset > 0, "{t:?}");
    assert_eq!(m.responses[4], t.proxy_reset);
    assert_eq!(RESPONSE_FLAGS[4], "UC (upstream connection reset)");
    // The kubelet backs off after the first restart.
    assert!(event(&out, "BackOff").is_some());
    let again = run(&throttled(tight(), None), 1, &mut NullSink);
    assert_eq!(out.requests, again.requests);
    assert_eq!(out.metrics.rows(), again.metrics.rows());
}

#[test]
fn an_oom_killed_sidecar_crash_loops_through_the_lifecycle_model() {
    let lifecycle = LifecycleSpec {
        order: StartOrder::Concurrent,
        probe: ISTIO_STARTUP_PROBE,
        listen_min: secs(1),
        listen_max: secs(1),
    };
    let out = run(&throttled(tight(), Some(lifecycle)), 1, &mut NullSink);
    conserved(&out);
    let m = out.mesh.as_ref().unwrap();
    assert!(m.oom_kills >= 3, "{}", m.oom_kills);
    let col = out
        .metrics
        .column("container_restarts{deployment=api}")
        .unwrap();
    let restarts = out.metrics.rows().last().unwrap().1[col];
    // Every restart of an api pod's container is a kill of its sidecar
    // (the app never exits), and CrashLoopBackOff spaces them: at once,
    // then 10 s, 20 s, 40 s plus 1 s to listen each time, so at most 4
    // restarts per pod in 60 s.
    let api_kills = restarts as u64;
    assert!(api_kills > 0 && api_kills <= 3 * 4, "{restarts}");
    assert!(api_kills <= m.oom_kills);
    let backoff = event(&out, "BackOff").expect("CrashLoopBackOff");
    assert!(
        backoff.message.contains("istio-proxy"),
        "{}",
        backoff.message
    );
}
