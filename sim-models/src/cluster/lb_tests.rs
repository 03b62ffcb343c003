//! The cluster run with a cloud load balancer in front of a LoadBalancer
//! Service (the `lb` room).

use super::*;
use crate::app::ServerSpec;
use crate::cloud_lb::{CheckPath, LbEntry, LbKind, TargetGroupSpec, TargetType};
use crate::ipam::Allocator;
use crate::netpol::Protocol;
use crate::services::node_port::{NodeAddressing, NodePortAddresses};
use crate::services::{ServicePort, ServiceSpec, ServiceType, ServicesConfig};
use crate::topology::spread_nodes;
use proptest::prelude::*;
use sim_core::NullSink;

fn secs(s: u64) -> SimDuration {
    SimDuration::from_secs(s)
}

/// 4 nodes over 2 zones; `web` (4 pods, serving 30 s after their container
/// starts) behind LoadBalancer Service `web-lb`, an ALB in front checking
/// `check` every 5 s; scaled to 8 at 60 s and back to 4 at 180 s.
fn cluster(check: CheckPath, dereg: SimDuration, service_time_ms: u64) -> ClusterConfig {
    let zones = vec!["a".to_string(), "b".to_string()];
    let server = ServerSpec {
        concurrency: 64,
        service_time: SimDuration::from_millis(service_time_ms),
        queue_limit: None,
    };
    let web = DeploymentSpec::new("web", 4, secs(2), secs(30), server);
    let port = ServicePort {
        name: None,
        port: 80,
        target_port: 8080,
        protocol: Protocol::Tcp,
        node_port: Some(30080),
    };
    let mut svc = ServiceSpec::cluster_ip(
        "web-lb",
        "default",
        [("app".to_string(), "web".to_string())].into(),
        port,
    );
    svc.kind = ServiceType::LoadBalancer;
    let mut group = TargetGroupSpec::elb_defaults(LbKind::Application, TargetType::Ip);
    group.health_check.interval = secs(5);
    group.health_check.timeout = secs(2);
    group.health_check.healthy_threshold = 2;
    group.deregistration_delay = dereg;
    ClusterConfig {
        nodes: spread_nodes(4, &zones, 110),
        ipam: IpamLayout::Flat {
            pod_cidr: "10.9.0.0/22".parse().unwrap(),
            allocator: Allocator::Flat,
        },
        deployments: vec![web],
        traffic: vec![TrafficSpec {
            load_balancer: Some(LbEntry { group, check }),
            ..TrafficSpec::to_service("users", 0, 100.0, secs(5))
        }],
        timeline: vec![
            TimedAction {
                at: secs(60),
                action: Action::Scale {
                    deployment: 0,
                    replicas: 8,
                },
            },
            TimedAction {
                at: secs(180),
                action: Action::Scale {
                    deployment: 0,
                    replicas: 4,
                },
            },
        ],
        duration: secs(240),
        sample_every: secs(30),
        windows: vec![
            WindowSpec {
                name: "scale-out".into(),
                start: secs(60),
                end: secs(120),
            },
            WindowSpec {
                name: "scale-in".into(),
                start: secs(180),
                end: secs(240),
            },
        ],
        policy: None,
        dns: None,
        conntrack: None,
        kube_proxy: None,
        nat_gateways: None,
        node_pool: None,
        billing: None,
        mesh: None,
        services: ServicesConfig {
            explicit: vec![svc],
            addressing: NodeAddressing::default(),
            node_port_addresses: NodePortAddresses::Default,
            security_group: None,
        },
    }
}

fn conserved(t: &RequestTotals) {
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

#[test]
fn lb_port_check_sends_requests_to_pods_that_do_not_serve_yet() {
    let cfg = cluster(CheckPath::Port, secs(300), 5);
    let out = run(&cfg, 1, &mut NullSink);
    let t = &out.requests[0];
    conserved(t);
    let out_w = &out.windows[0].totals;
    // 4 new pods of 8 healthy for ~25 s before they serve: about a third
    // of ~6,000 requests in the window.
    assert!(out_w.lb_502 > 500, "{out_w:?}");
    assert_eq!(
        out_w.lb_502, out_w.refused,
        "every refusal is the ALB's 502"
    );
    assert!(
        out.events.iter().any(|e| e.reason == "TargetHealthy"),
        "the new targets become healthy"
    );
}

#[test]
fn lb_readiness_check_waits_for_the_application() {
    let cfg = cluster(CheckPath::Readiness, secs(300), 5);
    let out = run(&cfg, 1, &mut NullSink);
    let t = &out.requests[0];
    conserved(t);
    assert!(t.answered > 0, "{t:?}");
    assert_eq!(t.lb_502, 0, "{t:?}");
    assert_eq!(t.errors(), 0, "{t:?}");
}

#[test]
fn lb_no_deregistration_delay_cuts_requests_in_flight() {
    // Slow requests (2 s) so that many are in flight at the scale-in.
    let cut = run(
        &cluster(CheckPath::Readiness, SimDuration::ZERO, 2000),
        3,
        &mut NullSink,
    );
    let w = &cut.windows[1].totals;
    assert!(w.lb_502 > 50, "{w:?}");
    let drained = run(
        &cluster(CheckPath::Readiness, secs(30), 2000),
        3,
        &mut NullSink,
    );
    let w = &drained.windows[1].totals;
    assert_eq!(w.lb_502, 0, "a 30 s delay lets 2 s requests finish: {w:?}");
    conserved(&cut.requests[0]);
    conserved(&drained.requests[0]);
}

#[test]
fn lb_runs_are_deterministic() {
    let cfg = cluster(CheckPath::Port, secs(0), 50);
    let a = run(&cfg, 9, &mut NullSink);
    let b = run(&cfg, 9, &mut NullSink);
    assert_eq!(a.requests, b.requests);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn lb_requests_are_conserved(
        seed in 0u64..1000,
        port in any::<bool>(),
        nlb in any::<bool>(),
        dereg in 0u64..20,
        cross in any::<bool>(),
        ms in 1u64..1500,
        zone_down in any::<bool>(),
    ) {
        let check = if port { CheckPath::Port } else { CheckPath::Readiness };
        let mut cfg = cluster(check, secs(dereg), ms);
        cfg.duration = secs(200);
        let e = cfg.traffic[0].load_balancer.as_mut().unwrap();
        e.group.cross_zone = cross;
        if nlb {
            e.group.kind = LbKind::Network;
        }
        if zone_down {
            cfg.timeline.push(TimedAction {
                at: secs(100),
                action: Action::ZoneDown {
                    zone: "a".into(),
                    nodes: (0..cfg.nodes.len()).filter(|&n| cfg.nodes[n].zone == "a").collect(),
                },
            });
        }
        let out = run(&cfg, seed, &mut NullSink);
        let t = &out.requests[0];
        prop_assert_eq!(
            t.sent,
            t.answered + t.timed_out + t.refused + t.rejected + t.lookup_failed + t.not_found
                + t.in_flight
        );
        prop_assert!(t.lb_502 + t.lb_reset <= t.refused);
        prop_assert!(t.lb_504 + t.lb_connect_timeout <= t.timed_out);
        prop_assert!(t.lb_503 <= t.rejected);
    }
}
