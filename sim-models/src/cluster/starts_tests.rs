//! Container starts (the `starts` room): an app that dials a dependency as
//! it starts, with and without a sidecar.

use super::*;
use crate::app::ServerSpec;
use crate::ipam::Allocator;
use crate::mesh::lifecycle::{LifecycleSpec, StartOrder, ISTIO_STARTUP_PROBE};
use crate::mesh::{MeshConfig, MeshMode, ProxyKind, ProxyResources};
use crate::services::ServicesConfig;
use crate::topology::spread_nodes;
use crate::workload::StartDial;
use sim_core::NullSink;

fn secs(s: u64) -> SimDuration {
    SimDuration::from_secs(s)
}

fn server() -> ServerSpec {
    ServerSpec {
        concurrency: 8,
        service_time: SimDuration::from_millis(5),
        queue_limit: None,
    }
}

/// `db` (1 pod, created at `db_at`) and `api` (3 pods, created at 10 s)
/// whose app dials `db` 1 s after it starts; 4 nodes, no traffic.
fn cluster(db_at: u64) -> ClusterConfig {
    let zones = vec!["a".to_string(), "b".to_string()];
    let db = DeploymentSpec::new("db", 0, secs(2), secs(5), server());
    let mut api = DeploymentSpec::new("api", 0, secs(2), secs(3), server());
    api.start_dial = Some(StartDial {
        service: 0,
        after: secs(1),
    });
    let scale = |at: u64, deployment: usize, replicas: u32| TimedAction {
        at: secs(at),
        action: Action::Scale {
            deployment,
            replicas,
        },
    };
    ClusterConfig {
        nodes: spread_nodes(4, &zones, 110),
        ipam: IpamLayout::Flat {
            pod_cidr: "10.9.0.0/22".parse().unwrap(),
            allocator: Allocator::Flat,
        },
        deployments: vec![db, api],
        traffic: vec![],
        timeline: vec![scale(db_at, 0, 1), scale(10, 1, 3)],
        duration: secs(300),
        sample_every: secs(1),
        windows: vec![],
        policy: None,
        dns: None,
        conntrack: None,
        kube_proxy: None,
        nat_gateways: None,
        node_pool: None,
        billing: None,
        mesh: None,
        services: ServicesConfig::default(),
    }
}

/// `column` at time `t` \[s\] (the sample at or before it).
fn at(out: &RunOutput, column: &str, t: u64) -> f64 {
    let c = out.metrics.column(column).expect(column);
    let rows = out.metrics.rows();
    let row = rows
        .iter()
        .rev()
        .find(|(time, _)| *time <= SimTime::ZERO + secs(t))
        .expect("a sample");
    row.1[c]
}

/// The first time \[s\] `column` reaches `value`.
fn first_reaching(out: &RunOutput, column: &str, value: f64) -> Option<f64> {
    let c = out.metrics.column(column).expect(column);
    out.metrics
        .rows()
        .iter()
        .find(|(_, v)| v[c] >= value)
        .map(|(t, _)| t.as_secs_f64())
}

#[test]
fn an_app_whose_dependency_is_up_starts_without_restarts() {
    let out = run(&cluster(0), 1, &mut NullSink);
    // Created at 10 s, running at 12 s, dial at 13 s, ready at 15 s.
    assert_eq!(
        first_reaching(&out, "pods_ready{deployment=api}", 3.0),
        Some(15.0)
    );
    assert_eq!(at(&out, "container_restarts{deployment=api}", 300), 0.0);
}

#[test]
fn an_app_whose_dependency_is_down_crash_loops_until_it_is_up() {
    // db is created at 60 s: Ready at 67 s.
    let out = run(&cluster(60), 1, &mut NullSink);
    // Exits at 13 s (restarted at once), 14 s (back-off 10 s), 25 s (20 s),
    // 46 s (40 s); its restart at 86 s dials a Ready db at 87 s: Ready at 89 s.
    assert_eq!(at(&out, "pods_ready{deployment=api}", 86), 0.0);
    assert_eq!(
        first_reaching(&out, "pods_ready{deployment=api}", 3.0),
        Some(89.0)
    );
    assert_eq!(at(&out, "container_restarts{deployment=api}", 300), 12.0);
    assert_eq!(at(&out, "pods_crash_loop_backoff{deployment=api}", 50), 3.0);
    assert_eq!(
        at(&out, "pods_crash_loop_backoff{deployment=api}", 100),
        0.0
    );
    let backoff = out
        .events
        .iter()
        .find(|e| e.reason == "BackOff")
        .expect("a BackOff event");
    assert!(backoff
        .message
        .starts_with("Back-off restarting failed container app in pod api-"));
    assert_eq!(backoff.count, 9);
    let exited = out.events.iter().find(|e| e.reason == "AppExited").unwrap();
    assert!(
        exited.message.contains("db has no Ready endpoint"),
        "{}",
        exited.message
    );
}

/// `cluster(0)` with every workload in an Istio sidecar mesh whose proxies
/// listen exactly `listen` after their start, in start order `order`.
fn meshed(order: StartOrder, listen: SimDuration) -> ClusterConfig {
    let mut c = cluster(0);
    c.mesh = Some(MeshConfig {
        mode: MeshMode::Sidecar(ProxyKind::Istio),
        meshed: vec![true; c.deployments.len()],
        resources: ProxyResources::ISTIO_SIDECAR,
        destination_rules: Vec::new(),
        virtual_services: Vec::new(),
        lifecycle: Some(LifecycleSpec {
            order,
            probe: ISTIO_STARTUP_PROBE,
            listen_min: listen,
            listen_max: listen,
        }),
    });
    c
}

#[test]
fn an_app_that_dials_before_its_sidecar_listens_restarts_with_back_off() {
    // api's containers start at 12 s; its proxy listens at 15 s. The app
    // dials at 13 s (refused, restarted at once), 14 s (refused, back-off
    // 10 s), 25 s (accepted): Ready at 27 s.
    let out = run(&meshed(StartOrder::Concurrent, secs(3)), 1, &mut NullSink);
    assert_eq!(at(&out, "pods_ready{deployment=api}", 26), 0.0);
    assert_eq!(
        first_reaching(&out, "pods_ready{deployment=api}", 3.0),
        Some(27.0)
    );
    assert_eq!(at(&out, "container_restarts{deployment=api}", 300), 6.0);
    let exited = out.events.iter().find(|e| e.reason == "AppExited").unwrap();
    assert!(
        exited.message.contains("sidecar is not listening"),
        "{}",
        exited.message
    );
    let unhealthy = out.events.iter().find(|e| e.reason == "Unhealthy").unwrap();
    assert!(unhealthy.message.starts_with("Startup probe failed"));
}

#[test]
fn holding_the_app_starts_it_after_its_proxy_and_nothing_restarts() {
    // Proxy listens at 15 s; pilot-agent wait sees it at its 3.0 s poll:
    // the app starts at 15 s, dials at 16 s, is Ready 3 s after its start.
    let out = run(
        &meshed(StartOrder::HoldApplication, secs(3)),
        1,
        &mut NullSink,
    );
    assert_eq!(at(&out, "container_restarts{deployment=api}", 300), 0.0);
    assert_eq!(
        first_reaching(&out, "pods_ready{deployment=api}", 3.0),
        Some(18.0)
    );
}

#[test]
fn a_native_sidecar_starts_the_app_after_its_startup_probe() {
    // Proxy listens at 15.2 s; its startup probe passes at 16 s (every 1 s
    // from 12 s); the app starts then, dials at 17 s, is Ready at 19 s.
    let out = run(
        &meshed(StartOrder::NativeSidecar, SimDuration::from_millis(3_200)),
        1,
        &mut NullSink,
    );
    assert_eq!(at(&out, "container_restarts{deployment=api}", 300), 0.0);
    assert_eq!(
        first_reaching(&out, "pods_ready{deployment=api}", 3.0),
        Some(19.0)
    );
}

#[test]
fn a_sidecar_restart_resets_its_connections_and_takes_its_pods_out_until_ready() {
    let mut c = meshed(StartOrder::Concurrent, secs(2));
    // 100 requests/s of 200 ms each: about 20 in service at any time.
    c.deployments[1].server.service_time = SimDuration::from_millis(200);
    c.traffic
        .push(TrafficSpec::to_service("users", 1, 100.0, secs(2)));
    c.windows.push(WindowSpec {
        name: "restart".into(),
        start: secs(100),
        end: secs(110),
    });
    c.timeline.push(TimedAction {
        at: secs(100),
        action: Action::ProxyRestart { deployment: 1 },
    });
    let out = run(&c, 1, &mut NullSink);
    assert_eq!(at(&out, "pods_ready{deployment=api}", 99), 3.0);
    // Restarted at once, listening 2 s later, seen by the probe at 102 s.
    assert_eq!(at(&out, "pods_ready{deployment=api}", 101), 0.0);
    assert_eq!(at(&out, "pods_ready{deployment=api}", 102), 3.0);
    let w = &out.windows[0].totals;
    assert!(w.proxy_reset > 5, "{w:?}");
    assert!(
        w.refused > w.proxy_reset,
        "no endpoint while the proxies start: {w:?}"
    );
    let t = &out.requests[0];
    assert_eq!(
        t.sent,
        t.answered
            + t.timed_out
            + t.refused
            + t.rejected
            + t.lookup_failed
            + t.not_found
            + t.in_flight,
        "{t:?}"
    );
}
