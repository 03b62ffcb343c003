use super::*;
use crate::datapath::cni::InstanceType;
use crate::datapath::link::DEFAULT_QUEUE;
use crate::datapath::packet::Transport;
use proptest::prelude::*;

fn underlay(nic: u32, path: u32) -> UnderlaySpec {
    UnderlaySpec {
        nic_mtu: nic,
        path_mtu: path,
        latency: SimDuration::from_micros(50),
        bandwidth: 10e9,
        icmp_allowed: true,
    }
}

fn pod(name: &str, node: usize) -> PodSpec {
    PodSpec {
        name: name.into(),
        node,
        tcp: TcpSettings::default(),
    }
}

fn tcp_flow(name: &str, from: usize, to: usize, response: u64, count: u32) -> FlowSpec {
    FlowSpec {
        name: name.into(),
        from,
        to: Dest::Endpoint(to),
        kind: FlowKind::Tcp {
            port: 8080,
            request: 300,
            response,
        },
        sizes: Vec::new(),
        start: SimDuration::from_millis(100),
        every: SimDuration::from_secs(1),
        count,
        timeout: SimDuration::from_secs(20),
    }
}

fn ping(name: &str, from: usize, to: usize, sizes: Vec<u32>) -> FlowSpec {
    FlowSpec {
        name: name.into(),
        from,
        to: Dest::Endpoint(to),
        kind: FlowKind::Ping,
        count: sizes.len() as u32,
        sizes,
        start: SimDuration::from_millis(100),
        every: SimDuration::from_millis(100),
        timeout: SimDuration::from_secs(1),
    }
}

fn cluster(cni: Cni, u: UnderlaySpec, flows: Vec<FlowSpec>) -> NetConfig {
    NetConfig {
        cni,
        nodes: 3,
        cluster_cidr: "10.244.0.0/16".parse().unwrap(),
        node_mask: 24,
        pod_mtu: None,
        underlay: u,
        sites: Vec::new(),
        pods: vec![pod("client", 0), pod("web", 1), pod("local", 0)],
        flows,
        faults: Vec::new(),
        bgp_hold_time: BGP_HOLD_TIME,
        duration: SimDuration::from_secs(30),
        services: ServiceSetup::default(),
    }
}

fn conserved(out: &NetOutput) {
    let t = &out.packets;
    assert_eq!(
        t.created,
        t.delivered + t.dropped_total() + t.in_flight,
        "{t:?}"
    );
    for f in &out.flows {
        let failed: u64 = f.failures.values().sum();
        assert_eq!(f.attempts, f.succeeded + failed + f.pending, "{}", f.name);
    }
}

const CNIS: [Cni; 9] = [
    Cni::FlannelVxlan,
    Cni::FlannelHostGw,
    Cni::CalicoBgp,
    Cni::CalicoIpip,
    Cni::CalicoVxlan,
    Cni::CalicoWireguard,
    Cni::Cilium { tunnel: true },
    Cni::Cilium { tunnel: false },
    Cni::AwsVpcCni {
        instance: InstanceType::M5Large,
    },
];

#[test]
fn every_cni_carries_a_transfer_between_nodes() {
    for cni in CNIS {
        let cfg = cluster(
            cni,
            underlay(1500, 1500),
            vec![
                tcp_flow("get", 0, 1, 100_000, 3),
                tcp_flow("same-node", 0, 2, 100_000, 1),
            ],
        );
        let out = run(&cfg, Recording::default()).unwrap();
        conserved(&out);
        assert_eq!(
            out.flows[0].succeeded,
            3,
            "{} {:?}",
            cni.name(),
            out.flows[0].failures
        );
        assert_eq!(out.flows[1].succeeded, 1, "{}", cni.name());
        assert_eq!(out.packets.dropped_total(), 0, "{}", cni.name());
        assert_eq!(out.pod_mtu, cni.default_pod_mtu(1500));
    }
}

#[test]
fn one_packet_can_be_followed_through_the_overlay() {
    let cfg = cluster(
        Cni::CalicoVxlan,
        underlay(1500, 1500),
        vec![ping("p", 0, 1, vec![56])],
    );
    let out = run(
        &cfg,
        Recording {
            trace: true,
            capture: true,
        },
    )
    .unwrap();
    let first: Vec<&String> = out.trace.iter().filter(|l| l.contains("#1 ")).collect();
    for l in &first {
        println!("{l}");
    }
    assert_eq!(
        first.len(),
        5,
        "pod veth, node vxlan, fabric, node veth, delivery"
    );
    assert!(first[1].contains("to-overlay (vxlan)") && first[1].contains("vxlan node-1 -> node-2"));
    assert!(first[4].contains("DELIVERED"));
    // Captured on each of the four links, with the encapsulation between nodes.
    let caps: Vec<u32> = out
        .captured
        .iter()
        .filter(|c| c.packet.id == 1)
        .map(|c| c.packet.ip_len())
        .collect();
    assert_eq!(caps, [84, 134, 134, 84]);
}

#[test]
fn vxlan_on_a_1472_underlay_loses_what_does_not_fit() {
    // Calico's default pod MTU from a 1500 NIC is 1450; the path carries 1472.
    let sizes = vec![1394, 1395, 1422, 1423];
    let cfg = cluster(
        Cni::CalicoVxlan,
        underlay(1500, 1472),
        vec![
            ping("sweep", 0, 1, sizes.clone()),
            tcp_flow("get", 0, 1, 50_000, 1),
        ],
    );
    let out = run(&cfg, Recording::default()).unwrap();
    conserved(&out);
    let by = &out.flows[0].by_size;
    assert_eq!(by[&1394], (1, 0));
    assert_eq!(by[&1395], (0, 1), "inner 1423 + 50 = 1473 > 1472");
    assert_eq!(by[&1422], (0, 1));
    assert_eq!(by[&1423], (0, 1));
    assert!(out.flows[0]
        .failures
        .contains_key("ping: local error: message too long, mtu=1450"));
    assert_eq!(
        out.flows[1].succeeded, 0,
        "full segments vanish: a black hole"
    );
    assert!(out.packets.dropped[&DropKind::L2Mtu] > 0);

    // Fixed: pod MTU = 1472 - 50.
    let mut fixed = cfg.clone();
    fixed.pod_mtu = Some(1422);
    let out = run(&fixed, Recording::default()).unwrap();
    conserved(&out);
    assert_eq!(out.flows[1].succeeded, 1);
    assert!(!out.packets.dropped.contains_key(&DropKind::L2Mtu));
    assert_eq!(out.flows[0].by_size[&1395], (0, 1));
    assert!(out.flows[0]
        .failures
        .contains_key("ping: local error: message too long, mtu=1422"));
}

fn vpn(icmp: bool, clamp: Option<u32>, probing: u8) -> NetConfig {
    let mut cfg = cluster(
        Cni::AwsVpcCni {
            instance: InstanceType::M5Large,
        },
        UnderlaySpec {
            icmp_allowed: icmp,
            ..underlay(9001, 9001)
        },
        Vec::new(),
    );
    cfg.pods[1].tcp.mtu_probing = probing;
    cfg.sites = vec![SiteSpec {
        name: "office".into(),
        link: LinkSpec {
            latency: SimDuration::from_millis(10),
            bandwidth: 100e6,
            mtu: 1500,
            l2_mtu: u32::MAX,
            queue: DEFAULT_QUEUE,
        },
        mss_clamp: clamp,
        hosts: vec![HostSpec {
            name: "laptop".into(),
            mtu: 9001,
            tcp: TcpSettings::default(),
        }],
    }];
    cfg.flows = vec![
        tcp_flow("small", 3, 1, 1_000, 3),
        tcp_flow("large", 3, 1, 1_000_000, 3),
    ];
    cfg
}

#[test]
fn filtered_icmp_makes_a_black_hole_and_each_fix_ends_it() {
    let broken = run(&vpn(false, None, 0), Recording::default()).unwrap();
    conserved(&broken);
    assert_eq!(
        broken.flows[0].succeeded, 3,
        "small responses fit in one 1500 packet"
    );
    assert_eq!(
        broken.flows[1].succeeded, 0,
        "{:?}",
        broken.flows[1].failures
    );
    assert!(broken.packets.dropped[&DropKind::IcmpFiltered] > 0);

    let icmp = run(&vpn(true, None, 0), Recording::default()).unwrap();
    conserved(&icmp);
    assert_eq!(icmp.flows[1].succeeded, 3);
    assert!(icmp.notes.iter().any(|(_, n)| n.contains("path MTU 1500")));

    let clamp = run(&vpn(false, Some(1460), 0), Recording::default()).unwrap();
    conserved(&clamp);
    assert_eq!(clamp.flows[1].succeeded, 3);
    assert!(!clamp.packets.dropped.contains_key(&DropKind::FragNeeded));

    let probing = run(&vpn(false, None, 1), Recording::default()).unwrap();
    conserved(&probing);
    assert_eq!(probing.flows[1].succeeded, 3);
    let t = probing.flows[1].times.quantile(0.5).as_secs_f64();
    println!("with tcp_mtu_probing=1 a 1 MB response takes {t:.2} s (black hole detection ~3 s)");
    assert!((3.0..6.0).contains(&t), "{t}");
}

#[test]
fn bgp_routes_are_withdrawn_after_the_hold_time() {
    let mut f = tcp_flow("get", 0, 1, 10_000, 30);
    f.timeout = SimDuration::from_secs(5);
    f.every = SimDuration::from_secs(10);
    let mut cfg = cluster(Cni::CalicoBgp, underlay(1500, 1500), vec![f]);
    cfg.duration = SimDuration::from_secs(320);
    cfg.faults = vec![
        (SimDuration::from_secs(50), Fault::BgpDown { node: 1 }),
        (SimDuration::from_secs(250), Fault::BgpUp { node: 1 }),
    ];
    let out = run(&cfg, Recording::default()).unwrap();
    conserved(&out);
    // Attempts at 0.1 s + 10 s k: those from 140.1 s (after 50 + 90) to 240.1 s fail.
    let failed: u64 = out.flows[0].failures.values().sum();
    assert_eq!(failed, 11, "{:?}", out.flows[0].failures);
    assert!(out.packets.dropped[&DropKind::NoRoute] > 0);
}

#[test]
fn aws_vpc_cni_max_pods_follow_the_instance_type() {
    let cni = Cni::AwsVpcCni {
        instance: InstanceType::T3Medium,
    };
    assert_eq!(cni.max_pods(), Some(17));
}

#[test]
fn invalid_configurations_are_refused() {
    let mut cfg = cluster(Cni::CalicoVxlan, underlay(1500, 1500), Vec::new());
    cfg.pods.push(pod("far", 7));
    assert!(run(&cfg, Recording::default())
        .unwrap_err()
        .contains("node 8 of 3"));
    let mut cfg = cluster(Cni::CalicoVxlan, underlay(1500, 1500), Vec::new());
    cfg.nodes = 300;
    assert!(cfg.validate().unwrap_err().contains("do not fit"));
}

fn arb_cni() -> impl Strategy<Value = Cni> {
    (0..CNIS.len()).prop_map(|i| CNIS[i])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// Every packet is delivered, dropped with a reason or still in flight;
    /// every attempt succeeded, failed with a reason or is pending.
    #[test]
    fn conservation_over_random_topologies(
        cni in arb_cni(),
        nodes in 1usize..6,
        nic in prop::sample::select(vec![1460u32, 1500, 9001]),
        path_cut in 0u32..120,
        icmp in any::<bool>(),
        vpn_mtu in prop::sample::select(vec![1280u32, 1400, 1500, 9001]),
        clamp in prop::option::of(1200u32..1460),
        probing in 0u8..3,
        queue in 1u32..40,
        pod_nodes in prop::collection::vec(0usize..6, 2..7),
        flows in prop::collection::vec((0usize..8, 0usize..8, 0u8..3, 1u32..9000, 1u64..300_000), 1..6),
        bgp in prop::option::of((0usize..6, 1u64..20, 1u64..20)),
        end in 5u64..40,
    ) {
        let pods: Vec<PodSpec> = pod_nodes.iter().enumerate().map(|(i, n)| PodSpec {
            name: format!("p{i}"),
            node: n % nodes,
            tcp: TcpSettings { mtu_probing: probing, ..TcpSettings::default() },
        }).collect();
        let endpoints = pods.len() + 1;
        let mut fl = Vec::new();
        for (i, (a, b, k, size, resp)) in flows.into_iter().enumerate() {
            let (from, to) = (a % endpoints, b % endpoints);
            if from == to { continue; }
            let kind = match k {
                0 => FlowKind::Tcp { port: 80, request: 200, response: resp },
                1 => FlowKind::Udp { port: 53 },
                _ => FlowKind::Ping,
            };
            fl.push(FlowSpec {
                name: format!("f{i}"), from, to: Dest::Endpoint(to), kind, sizes: vec![size, size / 2],
                start: SimDuration::from_millis(10 * i as u64),
                every: SimDuration::from_millis(700), count: 4,
                timeout: SimDuration::from_secs(3),
            });
        }
        let faults = bgp.map(|(n, d, u)| vec![
            (SimDuration::from_secs(d), Fault::BgpDown { node: n % nodes }),
            (SimDuration::from_secs(d + u), Fault::BgpUp { node: n % nodes }),
        ]).unwrap_or_default();
        let cfg = NetConfig {
            cni, nodes,
            cluster_cidr: "10.244.0.0/16".parse().unwrap(),
            node_mask: 24,
            pod_mtu: None,
            underlay: UnderlaySpec {
                nic_mtu: nic, path_mtu: nic - path_cut, latency: SimDuration::from_micros(50),
                bandwidth: 1e9, icmp_allowed: icmp,
            },
            sites: vec![SiteSpec {
                name: "s".into(),
                link: LinkSpec { latency: SimDuration::from_millis(5), bandwidth: 20e6, mtu: vpn_mtu, l2_mtu: u32::MAX, queue },
                mss_clamp: clamp,
                hosts: vec![HostSpec { name: "h".into(), mtu: 9001, tcp: TcpSettings::default() }],
            }],
            pods, flows: fl, faults,
            bgp_hold_time: SimDuration::from_secs(3),
            duration: SimDuration::from_secs(end),
            services: ServiceSetup::default(),
        };
        let out = run(&cfg, Recording::default()).unwrap();
        let t = &out.packets;
        prop_assert_eq!(t.created, t.delivered + t.dropped_total() + t.in_flight);
        for f in &out.flows {
            let failed: u64 = f.failures.values().sum();
            prop_assert_eq!(f.attempts, f.succeeded + failed + f.pending);
        }
        let again = run(&cfg, Recording::default()).unwrap();
        prop_assert_eq!(&again.packets, &out.packets);
    }
}

/// The cluster of `cluster()` with a Service `web` (10.96.0.10:80 -> :8080)
/// over pods web and local, and a TCP flow from client to it.
fn with_service(mode: crate::kube_proxy::Mode) -> NetConfig {
    let mut flow = tcp_flow("svc", 0, 1, 4_000, 20);
    flow.to = Dest::Service(0);
    flow.kind = FlowKind::Tcp {
        port: 80,
        request: 100,
        response: 4_000,
    };
    let mut cfg = cluster(Cni::CalicoVxlan, underlay(1500, 1500), vec![flow]);
    cfg.services = ServiceSetup {
        services: vec![ServiceSpec {
            name: "web".into(),
            ip: Ipv4Addr::new(10, 96, 0, 10),
            port: 80,
            target_port: 8080,
            endpoints: vec![1, 2],
        }],
        kube_proxy: Some(crate::kube_proxy::KubeProxyConfig::new(mode)),
        seed: 3,
        ..ServiceSetup::default()
    };
    cfg
}

#[test]
fn a_service_flow_is_dnated_at_the_client_node_and_reverse_nated_back() {
    let cfg = with_service(crate::kube_proxy::Mode::Iptables);
    let rec = Recording {
        trace: true,
        capture: true,
    };
    let out = run(&cfg, rec).unwrap();
    conserved(&out);
    let f = &out.flows[0];
    assert_eq!(f.succeeded, 20, "{:?}", f.failures);
    assert_eq!(f.endpoints.values().sum::<u64>(), 20);
    assert_eq!(f.endpoints.len(), 2, "both pods get connections");
    assert_eq!(f.lookups.count(), 20, "one lookup per first packet");
    let cluster_ip = Ipv4Addr::new(10, 96, 0, 10);
    let web = Ipv4Addr::new(10, 244, 1, 2);
    // Between nodes the VXLAN header carries the pod IP and target port.
    let tunnelled: Vec<&Captured> = out
        .captured
        .iter()
        .filter(|c| c.packet.encap.is_some() && c.packet.src == Ipv4Addr::new(10, 244, 0, 2))
        .collect();
    assert!(!tunnelled.is_empty());
    assert!(tunnelled
        .iter()
        .all(|c| c.packet.dst == web
            && matches!(c.packet.transport, Transport::Tcp { dport: 8080, .. })));
    // The client sends to and hears from the ClusterIP only.
    assert!(out.captured.iter().any(|c| c.packet.dst == cluster_ip));
    let to_client: Vec<&Captured> = out
        .captured
        .iter()
        .filter(|c| c.packet.dst == Ipv4Addr::new(10, 244, 0, 2) && c.packet.encap.is_none())
        .filter(|c| c.packet.src != Ipv4Addr::new(10, 244, 0, 3))
        .collect();
    assert!(to_client.iter().any(|c| c.packet.src == cluster_ip));
    assert!(out
        .trace
        .iter()
        .any(|l| l.contains("kube-proxy (iptables) DNAT 10.96.0.10:80")));
    assert!(out.trace.iter().any(|l| l.contains("reverse NAT")));
    // Same seed, same bytes; established packets do not depend on the engine.
    let again = run(&cfg, rec).unwrap();
    assert_eq!(out.trace, again.trace);
    let nft = run(&with_service(crate::kube_proxy::Mode::Nftables), rec).unwrap();
    assert_eq!(nft.flows[0].established, f.established);
    assert_eq!(nft.flows[0].bytes, f.bytes);
    assert_eq!(
        nft.flows[0].endpoints, f.endpoints,
        "the same picks per seed"
    );
}

#[test]
fn a_policy_denied_first_packet_is_dropped_and_retransmitted() {
    let mut cfg = with_service(crate::kube_proxy::Mode::Nftables);
    let manifests = crate::netpol::parse_manifests(&[(
        "deny.yaml".into(),
        "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: default}
spec:
  podSelector: {}
  policyTypes: [Ingress]
"
        .into(),
    )])
    .unwrap();
    cfg.services.policy = Some(crate::policy_enforcement::PolicyConfig {
        cni: crate::datapath::cni::Cni::CalicoVxlan,
        delay: SimDuration::ZERO,
        sets: vec![("deny".into(), manifests.cluster.policies().to_vec())],
        active: vec![0],
        namespaces: Vec::new(),
    });
    cfg.flows[0].count = 1;
    cfg.flows[0].timeout = SimDuration::from_secs(4);
    let out = run(&cfg, Recording::default()).unwrap();
    conserved(&out);
    let f = &out.flows[0];
    assert_eq!(f.succeeded, 0);
    assert!(
        f.failures.keys().any(|k| k.contains("not connected")),
        "{:?}",
        f.failures
    );
    // The SYN at T+1s and its retransmissions at +1 s and +3 s.
    assert_eq!(out.packets.dropped.get(&DropKind::PolicyDenied), Some(&3));
    let (_, text) = &out.first_drops[&DropKind::PolicyDenied];
    assert!(
        text.contains("isolated for ingress by policy [deny-all]"),
        "{text}"
    );
}
