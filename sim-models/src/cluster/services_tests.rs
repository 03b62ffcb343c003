//! The cluster run with explicit Services, NodePorts, traffic policies and
//! a security group.

use super::*;
use crate::app::ServerSpec;
use crate::ipam::Allocator;
use crate::security_group::{SecurityGroup, SgRule};
use crate::services::node_port::{NodeAddressKind, NodeAddressing, NodePortAddresses};
use crate::services::{
    NodePortEntry, ServicePort, ServiceSpec, ServiceType, ServicesConfig, TrafficPolicy,
};
use crate::topology::spread_nodes;
use proptest::prelude::*;
use sim_core::NullSink;

fn secs(s: u64) -> SimDuration {
    SimDuration::from_secs(s)
}

fn cidr(s: &str) -> Ipv4Cidr {
    s.parse().unwrap()
}

/// 4 nodes over 2 zones; `web` (`replicas` pods) behind a NodePort Service
/// `web-np` (30080); a second Service `all-tier` selects `web` and `api`.
fn cluster(replicas: u32, external: TrafficPolicy) -> ClusterConfig {
    let zones = vec!["a".to_string(), "b".to_string()];
    let server = ServerSpec {
        concurrency: 8,
        service_time: SimDuration::from_millis(5),
        queue_limit: None,
    };
    let mut web = DeploymentSpec::new("web", replicas, secs(5), secs(5), server);
    web.labels.insert("tier".into(), "front".into());
    let mut api = DeploymentSpec::new("api", 2, secs(5), secs(5), server);
    api.labels.insert("tier".into(), "front".into());
    let port = ServicePort::tcp(80, 8080, Some(30080));
    let mut np = ServiceSpec::cluster_ip(
        "web-np",
        "default",
        [("app".to_string(), "web".to_string())].into(),
        port,
    );
    np.kind = ServiceType::NodePort;
    np.external_policy = external;
    let tier = ServiceSpec::cluster_ip(
        "all-tier",
        "default",
        [("tier".to_string(), "front".to_string())].into(),
        ServicePort {
            node_port: None,
            ..np.ports[0].clone()
        },
    );
    let internet = NodePortEntry {
        node: None,
        kind: NodeAddressKind::Public,
        source: Ipv4Addr::new(198, 51, 100, 7),
        port: None,
    };
    ClusterConfig {
        nodes: spread_nodes(4, &zones, 110),
        ipam: IpamLayout::Flat {
            pod_cidr: cidr("10.9.0.0/22"),
            allocator: Allocator::Flat,
        },
        deployments: vec![web, api],
        traffic: vec![
            TrafficSpec {
                entry: Some(internet),
                ..TrafficSpec::to_service("internet", 0, 40.0, secs(2))
            },
            TrafficSpec::to_service("tier", 1, 20.0, secs(2)),
        ],
        timeline: Vec::new(),
        duration: secs(120),
        sample_every: secs(30),
        windows: vec![WindowSpec {
            name: "all".into(),
            start: secs(0),
            end: secs(120),
        }],
        policy: None,
        dns: None,
        conntrack: None,
        kube_proxy: None,
        nat_gateways: None,
        billing: None,
        mesh: None,
        node_pool: None,
        services: ServicesConfig {
            explicit: vec![np, tier],
            addressing: NodeAddressing {
                public: Some(NodeAddressing::documentation_public()),
                ..NodeAddressing::default()
            },
            node_port_addresses: NodePortAddresses::Default,
            security_group: None,
        },
    }
}

#[test]
fn explicit_services_get_the_pods_they_select() {
    let cfg = cluster(3, TrafficPolicy::Cluster);
    let list = cfg.service_list();
    let names: Vec<&str> = list.iter().map(|s| s.spec.name.as_str()).collect();
    assert_eq!(names, ["web-np", "all-tier"], "both workloads are claimed");
    // The cluster DNS knows the Services, not the claimed workloads' names.
    for (name, exists) in [("web-np", true), ("all-tier", true), ("web", false)] {
        let fqdn = format!("{name}.default.svc.cluster.local");
        assert_eq!(name_exists(&cfg, &fqdn), exists, "{fqdn}");
    }
    let out = run(&cfg, 1, &mut NullSink);
    let tier = &out.windows[1];
    // all-tier spreads over web's 3 and api's 2 pods.
    assert_eq!(tier.pods_serving(), 5);
    assert_eq!(
        out.requests[0].answered + out.requests[0].in_flight,
        out.requests[0].sent
    );
    assert_eq!(out.node_ports[0].port, 30080);
    assert_eq!(
        (
            out.node_ports[0].open_internal,
            out.node_ports[0].open_public
        ),
        (4, 4)
    );
}

#[test]
fn external_policy_local_drops_on_nodes_without_an_endpoint() {
    // 2 pods on 4 nodes: about half the entries find no local endpoint.
    let out = run(&cfg_local(2), 3, &mut NullSink);
    let r = out.requests[0];
    assert!(r.no_local_endpoint > 0, "{r:?}");
    assert!(r.answered > 0);
    let share = r.no_local_endpoint as f64 / r.sent as f64;
    assert!((0.35..0.65).contains(&share), "{share}");
    assert_eq!(
        out.windows[0].node_snat, 0,
        "Local keeps the client's address"
    );
    assert!(out.events.iter().any(|e| e.reason == "NoLocalEndpoint"));
    // Cluster: nothing dropped, about 3/4 of the connections leave the node.
    let out = run(&cluster(4, TrafficPolicy::Cluster), 3, &mut NullSink);
    let r = out.requests[0];
    assert_eq!(r.no_local_endpoint, 0);
    let snat = out.windows[0].node_snat as f64 / r.sent as f64;
    assert!((0.65..0.85).contains(&snat), "{snat}");
}

fn cfg_local(replicas: u32) -> ClusterConfig {
    cluster(replicas, TrafficPolicy::Local)
}

#[test]
fn node_port_addresses_and_the_security_group_close_the_public_door() {
    let mut cfg = cluster(2, TrafficPolicy::Cluster);
    cfg.services.node_port_addresses = NodePortAddresses::Cidrs(vec![cidr("10.0.0.0/16")]);
    let r = run(&cfg, 1, &mut NullSink).requests[0];
    assert_eq!(r.answered, 0);
    assert_eq!(r.port_closed, r.refused);
    assert_eq!(r.refused + r.in_flight, r.sent);
    let mut cfg = cluster(2, TrafficPolicy::Cluster);
    cfg.services.security_group = Some(SecurityGroup {
        rules: vec![SgRule {
            cidr: cidr("10.0.0.0/8"),
            ports: (30000, 32767),
        }],
    });
    let r = run(&cfg, 1, &mut NullSink).requests[0];
    assert_eq!(r.answered, 0);
    assert_eq!(r.edge_dropped, r.timed_out);
    assert!(r.edge_dropped > 0);
}

#[test]
fn internal_local_and_prefer_close_pick_near_endpoints() {
    // Clients in `api` call web through a Service with
    // internalTrafficPolicy Local: the nodes without a web pod drop.
    let mut cfg = cluster(1, TrafficPolicy::Cluster);
    cfg.services.explicit[1].selector = [("app".to_string(), "web".to_string())].into();
    cfg.services.explicit[1].internal_policy = TrafficPolicy::Local;
    cfg.deployments.push(DeploymentSpec::new(
        "client",
        8,
        secs(5),
        secs(5),
        cfg.deployments[0].server,
    ));
    // `api` and `client` now have implicit Services, listed first.
    let list = cfg.service_list();
    let index = |name: &str| list.iter().position(|s| s.spec.name == name);
    cfg.traffic[0].service = index("web-np");
    cfg.traffic[1] = TrafficSpec {
        from: Some(2),
        service: index("all-tier"),
        ..TrafficSpec::to_service("near", 0, 40.0, secs(2))
    };
    let r = run(&cfg, 2, &mut NullSink).requests[1];
    assert!(r.no_local_endpoint > 0 && r.answered > 0, "{r:?}");
    // PreferClose instead: never dropped.
    cfg.services.explicit[1].internal_policy = TrafficPolicy::Cluster;
    cfg.services.explicit[1].prefer_close = true;
    let r = run(&cfg, 2, &mut NullSink).requests[1];
    assert_eq!(r.no_local_endpoint, 0);
    assert_eq!(r.answered + r.in_flight, r.sent);
}

#[test]
fn health_check_node_port_answers_503_where_local_traffic_is_dropped() {
    // A LoadBalancer Service with externalTrafficPolicy Local gets a
    // healthCheckNodePort; a NodePort one does not.
    let mut cfg = cluster(2, TrafficPolicy::Local);
    assert!(!cfg.services.explicit[0].needs_health_check());
    cfg.services.explicit[0].kind = ServiceType::LoadBalancer;
    assert!(cfg.services.explicit[0].needs_health_check());
    cfg.services.explicit[0].health_check_node_port = Some(32000);
    // Traffic sent to each node in turn: a node whose health check answers
    // 503 drops all of it, one answering 200 answers all of it.
    let mut dropping = 0;
    let mut report = None;
    for n in 0..4 {
        if let Some(e) = cfg.traffic[0].entry.as_mut() {
            e.node = Some(n);
        }
        let out = run(&cfg, 5, &mut NullSink);
        let r = out.requests[0];
        assert!(
            r.no_local_endpoint == 0 || r.answered == 0,
            "node {n}: {r:?}"
        );
        if r.no_local_endpoint > 0 {
            dropping += 1;
        }
        assert!(
            report.as_ref().is_none_or(|h| *h == out.health_checks),
            "same seed, same placement"
        );
        report = Some(out.health_checks);
    }
    let h = report.unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!((h[0].service.as_str(), h[0].port), ("web-np", 32000));
    assert_eq!(h[0].nodes_ok + h[0].nodes_unavailable, 4);
    assert_eq!(h[0].nodes_unavailable, dropping);
    assert!(h[0].nodes_ok >= 1 && h[0].nodes_ok <= 2, "{h:?}");
    // Scaled to zero: every node answers 503.
    cfg.timeline.push(TimedAction {
        at: secs(60),
        action: Action::Scale {
            deployment: 0,
            replicas: 0,
        },
    });
    let h = &run(&cfg, 5, &mut NullSink).health_checks[0];
    assert_eq!((h.nodes_ok, h.nodes_unavailable), (0, 4));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    /// Requests entering at a NodePort end one way each: sent = answered +
    /// timed out + refused + rejected + in flight, with the edge's drops
    /// inside timed out and refused.
    #[test]
    fn edge_requests_are_conserved(
        seed in 0u64..1000,
        replicas in 0u32..6,
        scale_to in 0u32..6,
        local in any::<bool>(),
        addresses in 0usize..3,
        sg in proptest::option::of(any::<bool>()),
        public in any::<bool>(),
        node in proptest::option::of(0usize..4),
    ) {
        let mut cfg = cluster(replicas, if local { TrafficPolicy::Local } else { TrafficPolicy::Cluster });
        cfg.services.node_port_addresses = match addresses {
            0 => NodePortAddresses::Default,
            1 => NodePortAddresses::Primary,
            _ => NodePortAddresses::Cidrs(vec![cidr("10.0.0.0/16")]),
        };
        cfg.services.security_group = sg.map(|open| SecurityGroup {
            rules: vec![SgRule {
                cidr: cidr(if open { "0.0.0.0/0" } else { "10.0.0.0/8" }),
                ports: (30000, 32767),
            }],
        });
        if let Some(e) = cfg.traffic[0].entry.as_mut() {
            e.kind = if public { NodeAddressKind::Public } else { NodeAddressKind::Internal };
            e.node = node;
        }
        cfg.timeline.push(TimedAction { at: secs(60), action: Action::Scale { deployment: 0, replicas: scale_to } });
        let out = run(&cfg, seed, &mut NullSink);
        for r in &out.requests {
            prop_assert_eq!(r.sent, r.answered + r.timed_out + r.refused + r.rejected + r.in_flight);
            prop_assert!(r.edge_dropped + r.no_local_endpoint <= r.timed_out);
            prop_assert!(r.port_closed <= r.refused);
        }
    }
}

/// `with_dns`'s frontend resolving `db-peers`, a headless Service (or, with
/// `headless` false, a ClusterIP one) over `db` and a second workload
/// `db2`, both labelled `tier: data`, behind kube-proxy in iptables mode;
/// `db` scaled to 0 at T+60s.
fn peers(headless: bool) -> RunOutput {
    use crate::kube_proxy::{KubeProxyConfig, Mode};
    let mut cfg = super::tests::with_dns(None);
    let mut db2 = cfg.deployments[0].clone();
    db2.name = "db2".into();
    db2.labels = [("app".to_string(), "db2".to_string())].into();
    cfg.deployments.push(db2);
    for d in [0, 3] {
        cfg.deployments[d]
            .labels
            .insert("tier".into(), "data".into());
    }
    let mut peers = ServiceSpec::cluster_ip(
        "db-peers",
        "prod",
        [("tier".to_string(), "data".to_string())].into(),
        ServicePort::tcp(5432, 5432, None),
    );
    peers.headless = headless;
    cfg.services.explicit = vec![peers];
    let list = cfg.service_list();
    let s = list.iter().position(|r| r.spec.name == "db-peers").unwrap();
    assert_eq!(list[s].workloads, [0, 3]);
    cfg.traffic[0].service = Some(s);
    cfg.traffic[0].resolve = Some("db-peers".into());
    cfg.traffic[0].timeout = secs(5);
    // One db pod serves 2 at a time in 400 ms (5 requests/s), and the
    // answer names the first pod.
    cfg.traffic[0].rate = 2.0;
    cfg.kube_proxy = Some(KubeProxyConfig::new(Mode::Iptables));
    cfg.duration = secs(120);
    cfg.timeline = vec![TimedAction {
        at: secs(60),
        action: Action::Scale {
            deployment: 0,
            replicas: 0,
        },
    }];
    cfg.windows = vec![
        WindowSpec {
            name: "both".into(),
            start: secs(20),
            end: secs(60),
        },
        WindowSpec {
            name: "db2-only".into(),
            start: secs(70),
            end: secs(120),
        },
    ];
    run(&cfg, 3, &mut NullSink)
}

#[test]
fn a_headless_service_answers_ready_pods_of_every_workload_and_is_dialled_without_dnat() {
    let out = peers(true);
    for w in &out.windows {
        assert!(w.totals.error_rate() < 0.01, "{}: {:?}", w.window, w.totals);
        // Clients connect to the pod address the answer gave: no
        // Service lookup on the first packet.
        assert_eq!(w.first_packet.count(), 0, "{}", w.window);
    }
    // Once db is gone the name answers db2's pods.
    assert!(out.windows[1].totals.answered > 0);
    // The same Service with a ClusterIP goes through kube-proxy's DNAT.
    let proxied = peers(false);
    assert!(proxied.windows[0].first_packet.count() > 0);
    assert!(proxied.windows[1].totals.error_rate() < 0.01);
}
