//! The cluster run with a cloud load balancer in front of a LoadBalancer
//! Service (the `lb` room).

use super::*;
use crate::app::ServerSpec;
use crate::cloud_lb::{CheckPath, LbEntry, LbKind, TargetGroupSpec, TargetType};
use crate::ipam::Allocator;
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
    let port = ServicePort::tcp(80, 8080, Some(30080));
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
            load_balancer: Some(LbEntry {
                group,
                check,
                readiness_gate: false,
            }),
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

#[test]
fn lb_readiness_gate_holds_ready_until_the_target_is_healthy() {
    // Readiness check: the new pods serve 30 s after their container
    // starts (about 92 s into the run). Their targets failed the checks
    // until then (unhealthy after 2), so they need the healthy threshold,
    // 2 passes 5 s apart: the gate holds their Ready until the second
    // check after they serve, at most 2 intervals later.
    let ready_at = |gate: bool| {
        let mut cfg = cluster(CheckPath::Readiness, secs(300), 5);
        cfg.traffic[0]
            .load_balancer
            .as_mut()
            .unwrap()
            .readiness_gate = gate;
        cfg.sample_every = SimDuration::from_millis(500);
        let out = run(&cfg, 1, &mut NullSink);
        conserved(&out.requests[0]);
        assert_eq!(out.requests[0].lb_502, 0);
        let ready = out.metrics.column("pods_ready{deployment=web}").unwrap();
        // The first sample with all 8 pods Ready.
        out.metrics
            .rows()
            .iter()
            .find(|(_, row)| row[ready] >= 8.0)
            .map(|(t, _)| *t)
            .unwrap()
    };
    let (without, with) = (ready_at(false), ready_at(true));
    assert!(with > without, "{with:?} vs {without:?}");
    assert!(with <= without + secs(10), "{with:?} vs {without:?}");
}

/// `k` zones of 2 nodes; `web` with `pods` pods spread evenly over the
/// zones behind `web-lb` (`externalTrafficPolicy` Local when `local`), a
/// `kind` load balancer with instance targets and cross-zone balancing in
/// front, AWS billing, 1 kB requests and 10 kB responses.
fn instance_cluster(kind: LbKind, local: bool, k: usize, pods: u32) -> ClusterConfig {
    let mut cfg = cluster(CheckPath::Port, secs(300), 5);
    let zones: Vec<String> = (0..k).map(|z| format!("zone-{z}")).collect();
    cfg.nodes = spread_nodes(2 * k as u32, &zones, 110);
    cfg.timeline.clear();
    cfg.duration = secs(120);
    cfg.windows = vec![WindowSpec {
        name: "steady".into(),
        start: secs(30),
        end: secs(120),
    }];
    cfg.deployments[0].replicas = pods;
    cfg.deployments[0].spread = Some(crate::workload::ZoneSpread {
        max_skew: 1,
        do_not_schedule: true,
    });
    if local {
        cfg.services.explicit[0].external_policy = crate::services::TrafficPolicy::Local;
    }
    let e = cfg.traffic[0].load_balancer.as_mut().unwrap();
    e.group.kind = kind;
    e.group.target_type = TargetType::Instance;
    e.group.cross_zone = true;
    cfg.traffic[0].request_bytes = 1_000;
    cfg.traffic[0].response_bytes = 10_000;
    cfg.billing = Some(crate::transfer_cost::Billing::aws());
    cfg
}

/// `got` within 4 standard deviations of the binomial share `p` over `n`.
fn near_share(got: f64, p: f64, n: u64, what: &str) {
    let sd = (p * (1.0 - p) / n as f64).sqrt();
    assert!(
        (got - p).abs() < 4.0 * sd,
        "{what}: {got} vs {p} (n={n}, sd={sd})"
    );
}

#[test]
fn lb_instance_nlb_cross_zone_crosses_twice_and_bills_both_hops() {
    use crate::transfer_cost::Carrier;
    for k in [2usize, 3] {
        let cfg = instance_cluster(LbKind::Network, false, k, 2 * k as u32);
        let out = run(&cfg, 5, &mut NullSink);
        let t = &out.requests[0];
        conserved(t);
        assert_eq!(t.errors(), 0, "{t:?}");
        let z = &out.zone_traffic[0];
        assert!(z.requests > 10_000, "{z:?}");
        assert_eq!(
            z.request_hops,
            2 * z.requests,
            "to the node, then to the pod"
        );
        assert_eq!(z.response_hops, 2 * z.responses);
        assert_eq!(
            z.bytes.total(),
            1_000 * z.request_hops + 10_000 * z.response_hops,
            "bytes conserved over the hops"
        );
        // Each hop crosses in (k-1)/k of requests: the load balancer
        // node's zone is drawn, the node is any healthy one (cross-zone
        // on); kube-proxy's endpoint is any Ready pod.
        let closed = (k - 1) as f64 / k as f64;
        for c in [Carrier::NetworkLb, Carrier::Instance] {
            let share = z.bytes.crossing_of(c) as f64 / z.bytes.total_of(c) as f64;
            near_share(share, closed, z.requests, &format!("k={k} {c:?}"));
        }
        // Both hops billed: $0.01/GB out and in.
        let dollars = 0.02 * z.bytes.crossing() as f64 / 1e9;
        assert!((z.cost - dollars).abs() < 1e-12, "{} vs {dollars}", z.cost);
        // Under Cluster a pod on another node sees the node's address.
        assert!(out.windows[0].node_snat > 0);
    }
}

#[test]
fn lb_instance_alb_hop_is_free_the_node_to_pod_hop_is_billed() {
    use crate::transfer_cost::Carrier;
    let out = run(
        &instance_cluster(LbKind::Application, false, 3, 6),
        5,
        &mut NullSink,
    );
    let z = &out.zone_traffic[0];
    assert_eq!(out.requests[0].errors(), 0);
    assert!(
        z.bytes.crossing_of(Carrier::ApplicationLb) > 0,
        "it crosses"
    );
    let billed = 0.02 * z.bytes.crossing_of(Carrier::Instance) as f64 / 1e9;
    assert!((z.cost - billed).abs() < 1e-12, "{} vs {billed}", z.cost);
}

#[test]
fn lb_instance_local_policy_keeps_the_second_hop_on_the_node() {
    use crate::transfer_cost::Carrier;
    // One pod per zone on 2 nodes per zone: half the nodes have none.
    let cfg = instance_cluster(LbKind::Network, true, 3, 3);
    let out = run(&cfg, 5, &mut NullSink);
    let t = &out.requests[0];
    conserved(t);
    // The nodes without a pod fail the healthCheckNodePort (503) and get
    // nothing: no drop, no timeout.
    assert_eq!(t.errors(), 0, "{t:?}");
    let z = &out.zone_traffic[0];
    assert!(z.requests > 10_000);
    assert_eq!(z.bytes.crossing_of(Carrier::Instance), 0);
    assert_eq!(
        out.windows[0].node_snat, 0,
        "Local keeps the client's address"
    );
    near_share(
        z.bytes.crossing_of(Carrier::NetworkLb) as f64
            / z.bytes.total_of(Carrier::NetworkLb) as f64,
        2.0 / 3.0,
        z.requests,
        "the load balancer's hop",
    );
    // The same pods under Cluster: every node is healthy, half hold no
    // pod and forward with SNAT.
    let out = run(
        &instance_cluster(LbKind::Network, false, 3, 3),
        5,
        &mut NullSink,
    );
    assert_eq!(out.requests[0].errors(), 0);
    assert!(out.windows[0].node_snat > 0);
}

#[test]
fn lb_instance_local_node_without_endpoint_fails_after_its_pod_leaves() {
    // Scale 6 -> 3 under Local: the nodes whose pod went fail their
    // healthCheckNodePort; until the unhealthy threshold, requests the load
    // balancer still sends them are dropped by kube-proxy (NLB: the
    // client's connection times out).
    let mut cfg = instance_cluster(LbKind::Network, true, 3, 6);
    cfg.timeline.push(TimedAction {
        at: secs(40),
        action: Action::Scale {
            deployment: 0,
            replicas: 3,
        },
    });
    cfg.windows.push(WindowSpec {
        name: "after".into(),
        start: secs(80),
        end: secs(120),
    });
    let out = run(&cfg, 5, &mut NullSink);
    let t = &out.requests[0];
    conserved(t);
    assert!(t.lb_connect_timeout > 0, "{t:?}");
    assert!(out
        .events
        .iter()
        .any(|e| e.reason == "TargetUnhealthy" && e.message.contains("node")));
    assert!(out.events.iter().any(|e| e.reason == "NoLocalEndpoint"));
    // Once those nodes are unhealthy (3 failed checks 5 s apart), nothing
    // more is lost.
    let after = &out.windows[1].totals;
    assert!(after.answered > 1_000 && after.errors() == 0, "{after:?}");
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
        instance in any::<bool>(),
        local in any::<bool>(),
    ) {
        let check = if port || instance { CheckPath::Port } else { CheckPath::Readiness };
        let mut cfg = cluster(check, secs(dereg), ms);
        cfg.duration = secs(200);
        cfg.billing = Some(crate::transfer_cost::Billing::aws());
        if local {
            cfg.services.explicit[0].external_policy = crate::services::TrafficPolicy::Local;
        }
        let e = cfg.traffic[0].load_balancer.as_mut().unwrap();
        e.group.cross_zone = cross;
        if nlb {
            e.group.kind = LbKind::Network;
        }
        if instance {
            e.group.target_type = TargetType::Instance;
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
        let z = &out.zone_traffic[0];
        prop_assert!(z.responses <= t.answered);
        prop_assert_eq!(
            z.bytes.total(),
            cfg.traffic[0].request_bytes * z.request_hops
                + cfg.traffic[0].response_bytes * z.response_hops
        );
    }
}
