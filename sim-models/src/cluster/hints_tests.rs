//! The cluster run with Topology Aware Routing: hints recomputed at a
//! scale-out and a zone failure, the node-information safeguard, and the
//! conservation of requests while hints come and go.

use super::*;
use crate::app::ServerSpec;
use crate::ipam::Allocator;
use crate::services::hints::{DISABLED_REASON, ENABLED_REASON};
use crate::services::{ServicePort, ServiceSpec, ServicesConfig};
use crate::topology::spread_nodes;
use proptest::prelude::*;
use sim_core::NullSink;

fn secs(s: u64) -> SimDuration {
    SimDuration::from_secs(s)
}

/// 6 nodes (4 CPU) over zones a, b, c; `api` (`replicas`, spread over the
/// zones) behind `api-svc` with topology-mode Auto; `web` (6 pods, 2 per
/// zone) calls it at 200/s. Timeline: `api` scaled to 6 at 60 s, zone c
/// down at 120 s.
fn cluster(replicas: u32) -> ClusterConfig {
    let zones = vec!["a".to_string(), "b".to_string(), "c".to_string()];
    let server = ServerSpec {
        concurrency: 16,
        service_time: SimDuration::from_millis(5),
        queue_limit: None,
    };
    let spread = Some(crate::workload::ZoneSpread {
        max_skew: 1,
        do_not_schedule: false,
    });
    let mut api = DeploymentSpec::new("api", replicas, secs(5), secs(5), server);
    api.spread = spread;
    let mut web = DeploymentSpec::new("web", 6, secs(5), secs(5), server);
    web.spread = spread;
    let mut svc = ServiceSpec::cluster_ip(
        "api-svc",
        "default",
        [("app".to_string(), "api".to_string())].into(),
        ServicePort::tcp(80, 8080, None),
    );
    svc.topology_auto = true;
    let mut nodes = spread_nodes(6, &zones, 110);
    for n in &mut nodes {
        n.allocatable = Some(crate::scheduler::Resources {
            cpu_millis: 4000,
            memory: 16 << 30,
        });
    }
    let deployments = vec![api, web];
    let services = ServicesConfig {
        explicit: vec![svc],
        ..Default::default()
    };
    let target = crate::services::resolve(&deployments, &services.explicit)
        .iter()
        .position(|s| s.spec.name == "api-svc");
    ClusterConfig {
        nat_gateways: None,
        billing: None,
        mesh: None,
        nodes,
        ipam: IpamLayout::Flat {
            pod_cidr: "10.9.0.0/22".parse().unwrap(),
            allocator: Allocator::Flat,
        },
        deployments,
        traffic: vec![TrafficSpec {
            from: Some(1),
            service: target,
            ..TrafficSpec::to_service("web-api", 0, 200.0, secs(2))
        }],
        timeline: vec![
            TimedAction {
                at: secs(60),
                action: Action::Scale {
                    deployment: 0,
                    replicas: 6,
                },
            },
            TimedAction {
                at: secs(120),
                action: Action::ZoneDown {
                    zone: "c".into(),
                    nodes: vec![2, 5],
                },
            },
        ],
        duration: secs(240),
        sample_every: secs(30),
        windows: vec![WindowSpec {
            name: "detection".into(),
            start: secs(120),
            end: secs(160),
        }],
        policy: None,
        dns: None,
        conntrack: None,
        kube_proxy: None,
        services,
        node_pool: None,
    }
}

fn hint_events(out: &RunOutput) -> Vec<(SimTime, &'static str, String)> {
    let mut evs: Vec<_> = out
        .events
        .iter()
        .filter(|e| e.reason == ENABLED_REASON || e.reason == DISABLED_REASON)
        .map(|e| (e.first, e.reason, e.message.clone()))
        .collect();
    evs.sort();
    evs
}

#[test]
fn hints_come_with_the_sixth_pod_and_survive_a_zone_down() {
    let out = run(&cluster(5), 1, &mut NullSink);
    let evs = hint_events(&out);
    // 5 pods at T+0: the overload safeguard; the sixth pod Ready ~10 s
    // after the scale-out: hints on. Zone c down: its nodes leave the CPU
    // shares and its pods the endpoints; the controller recomputes over two
    // zones (4 endpoints, 2 each) and the hints stay on: no new event.
    assert_eq!(evs.len(), 2, "{evs:?}");
    assert_eq!(evs[0].0, SimTime::ZERO);
    assert_eq!(evs[0].1, DISABLED_REASON);
    assert!(evs[0].2.contains("(5 endpoints, 3 zones)"), "{}", evs[0].2);
    assert_eq!(evs[1].1, ENABLED_REASON);
    assert!((secs(60)..secs(80)).contains(&(evs[1].0 - SimTime::ZERO)));
    // Callers in a and b never pick c's pods while they are still
    // endpoints; c's callers stopped with their zone: nothing times out.
    let w = &out.windows[0].totals;
    assert!(w.sent > 0);
    assert_eq!(w.errors(), 0, "{w:?}");
}

#[test]
fn without_hints_the_dead_zone_takes_a_third_of_the_calls() {
    // The same run without the annotation: random picks send a third of the
    // surviving callers' calls to c's pods until they leave the endpoints.
    let mut cfg = cluster(6);
    cfg.services.explicit[0].topology_auto = false;
    let out = run(&cfg, 1, &mut NullSink);
    let w = &out.windows[0].totals;
    let lost = w.timed_out as f64 / w.sent as f64;
    assert!((0.15..0.4).contains(&lost), "{lost}");
}

#[test]
fn nodes_without_allocatable_cpu_keep_the_hints_off() {
    let mut cfg = cluster(6);
    cfg.nodes.iter_mut().for_each(|n| n.allocatable = None);
    cfg.timeline.clear();
    let out = run(&cfg, 1, &mut NullSink);
    let evs = hint_events(&out);
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(
        evs[0].2,
        "Insufficient Node information: allocatable CPU or zone not specified on one or more nodes, addressType: IPv4"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn requests_are_conserved_while_hints_come_and_go(
        seed in 0u64..1000,
        replicas in 0u32..9,
        scale_to in 0u32..9,
        down_at in 10u64..200,
        auto in any::<bool>(),
        prefer_close in any::<bool>(),
    ) {
        let mut cfg = cluster(replicas);
        cfg.services.explicit[0].topology_auto = auto;
        cfg.services.explicit[0].prefer_close = prefer_close;
        cfg.timeline[0].action = Action::Scale { deployment: 0, replicas: scale_to };
        cfg.timeline[1].at = secs(down_at);
        let out = run(&cfg, seed, &mut NullSink);
        let r = out.requests[0];
        prop_assert_eq!(r.sent, r.answered + r.timed_out + r.refused + r.rejected + r.lookup_failed + r.in_flight);
    }
}
