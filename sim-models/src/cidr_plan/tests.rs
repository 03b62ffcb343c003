use super::planner::{first_fit, node_mask_for, propose, PlanError, Wanted};
use super::*;
use proptest::prelude::*;
use std::net::Ipv4Addr;

fn c(s: &str) -> Ipv4Cidr {
    s.parse().unwrap()
}

fn cs(v: &[&str]) -> Vec<Ipv4Cidr> {
    v.iter().map(|s| c(s)).collect()
}

/// The brute-force reference: every pair, both orders normalised to
/// (containing, contained), ties by index.
fn pairwise(v: &[Ipv4Cidr]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for i in 0..v.len() {
        for j in i + 1..v.len() {
            if v[i].overlaps(&v[j]) {
                out.push(if v[i].prefix() <= v[j].prefix() {
                    (i, j)
                } else {
                    (j, i)
                });
            }
        }
    }
    out.sort_unstable();
    out
}

fn broken() -> Plan {
    Plan {
        vpcs: vec![Vpc {
            name: "prod".into(),
            cidrs: cs(&["10.0.0.0/16"]),
            subnets: vec![
                Subnet {
                    name: "a".into(),
                    cidr: c("10.0.0.0/19"),
                    zone: "a".into(),
                },
                Subnet {
                    name: "b".into(),
                    cidr: c("10.0.32.0/19"),
                    zone: "b".into(),
                },
            ],
        }],
        cluster: ClusterRanges {
            name: "prod".into(),
            vpc: 0,
            pods: cs(&["10.0.128.0/17"]),
            services: c("172.20.0.0/16"),
            node_mask: 24,
        },
        peers: vec![
            Peer {
                name: "analytics".into(),
                kind: PeerKind::Vpc,
                cidrs: cs(&["10.0.0.0/16"]),
            },
            Peer {
                name: "corp".into(),
                kind: PeerKind::Vpn,
                cidrs: cs(&["10.0.192.0/18", "192.168.0.0/16"]),
            },
        ],
    }
}

#[test]
fn the_sweep_finds_nesting_and_skips_touching_ranges() {
    // Touching blocks share no address.
    let v = cs(&["10.0.0.0/24", "10.0.1.0/24"]);
    assert!(overlapping_pairs(&v).is_empty());
    // /0 holds everything, /32 sits in its /24, equal blocks pair once.
    let v = cs(&["10.0.0.7/32", "0.0.0.0/0", "10.0.0.0/24", "10.0.0.0/24"]);
    assert_eq!(
        overlapping_pairs(&v),
        vec![(1, 0), (1, 2), (1, 3), (2, 0), (2, 3), (3, 0)]
    );
    assert_eq!(overlapping_pairs(&v), pairwise(&v));
    // The last address of the space and a /32 next to a block.
    let v = cs(&["255.255.255.255/32", "255.255.255.254/31", "10.0.1.0/32"]);
    assert_eq!(overlapping_pairs(&v), vec![(1, 0)]);
    assert!(contains(&c("0.0.0.0/0"), &c("255.255.255.255/32")));
    assert!(!contains(&c("10.0.0.0/24"), &c("10.0.0.0/23")));
}

#[test]
fn unions_count_shared_addresses_once() {
    let v = cs(&["10.0.0.0/16", "10.0.1.0/24", "10.1.0.0/24", "10.0.0.0/16"]);
    assert_eq!(union(&v), cs(&["10.0.0.0/16", "10.1.0.0/24"]));
    assert_eq!(union_size(&v), 65_536 + 256);
    assert_eq!(union_size(&cs(&["0.0.0.0/0", "10.0.0.0/8"])), 1 << 32);
}

#[test]
fn node_blocks_follow_the_mask() {
    // A /16 in /24 blocks caps at 256 nodes (row ipam-gke-node-cap), a /20 at 16.
    assert_eq!(node_blocks(&c("10.4.0.0/16"), 24), 256);
    assert_eq!(node_blocks(&c("10.4.0.0/20"), 24), 16);
    assert_eq!(node_blocks(&c("10.4.0.0/25"), 24), 0);
    // The Service range inside the pod range.
    let pods = c("10.244.0.0/16");
    assert_eq!(blocks_lost(&pods, &c("10.244.16.0/20"), 24), 16);
    assert_eq!(blocks_lost(&pods, &c("10.244.3.128/28"), 24), 1);
    assert_eq!(blocks_lost(&pods, &c("10.245.0.0/20"), 24), 0);
    // The Service range holding the pod range takes every block.
    assert_eq!(blocks_lost(&pods, &c("10.240.0.0/12"), 24), 256);
    // GKE's table: 110 -> /24, 64 -> /25, 32 -> /26, 16 -> /27, 8 -> /28.
    let masks: Vec<u8> = [110, 65, 64, 33, 32, 17, 16, 9, 8]
        .iter()
        .map(|&m| node_mask_for(m).unwrap())
        .collect();
    assert_eq!(masks, vec![24, 24, 25, 25, 26, 26, 27, 27, 28]);
}

#[test]
fn the_broken_plan_refuses_peering_and_cuts_off_vpn_users() {
    let check = check(&broken());
    let f = &check.figures;
    assert_eq!(f.peering_refused, 1);
    // 10.0.192.0/18 lies in the pod range and the VPC.
    assert_eq!(f.vpn_addresses_cut_off, 16_384);
    // The refused peering cuts off nothing more: there is no connection.
    assert_eq!(check.cut_off, vec![(1, cs(&["10.0.192.0/18"]))]);
    assert_eq!(f.addresses_cut_off, 16_384);
    assert_eq!(f.node_blocks_lost, 0);
    assert_eq!(f.max_nodes, 128);
    assert_eq!(f.subnets_refused, 0);
    assert_eq!(f.subnet_addresses, 2 * (8192 - 5));
    // Overlaps: analytics over the VPC and its two subnets (refused) and
    // the pods (cut off), corp's /18 under the VPC and the pods (cut off);
    // and corp's /18 under analytics (two peers, a note, not counted).
    let kinds: Vec<&str> = check
        .overlaps
        .iter()
        .map(|o| o.consequence.name())
        .collect();
    assert_eq!((f.overlaps, check.overlaps.len()), (6, 7));
    assert!(kinds.contains(&"peering refused"));
    assert!(kinds.contains(&"peers overlap"));
    assert_eq!(f.peer_overlaps, 1);
    let first = &check.findings[0].message;
    assert!(
        first.starts_with("VPC peering prod <-> analytics: refused"),
        "{first}"
    );
}

#[test]
fn subnets_outside_their_vpc_or_over_each_other_are_refused() {
    let mut plan = broken();
    plan.peers.clear();
    plan.vpcs[0].subnets.push(Subnet {
        name: "c".into(),
        cidr: c("10.0.16.0/20"),
        zone: "c".into(),
    });
    plan.vpcs[0].subnets.push(Subnet {
        name: "d".into(),
        cidr: c("10.9.0.0/20"),
        zone: "d".into(),
    });
    let check = check(&plan);
    // c is inside a, so both a and c are refused; d is outside the VPC.
    assert_eq!(check.figures.subnets_refused, 3);
    let msgs: Vec<&str> = check.findings.iter().map(|f| f.message.as_str()).collect();
    assert!(msgs
        .iter()
        .any(|m| m.contains("subnet d (10.9.0.0/20) of VPC prod: refused, it is not inside")));
    assert!(msgs
        .iter()
        .any(|m| m.contains("subnet c") && m.contains("overlaps subnet a")));
}

#[test]
fn a_service_range_in_the_pod_range_loses_node_blocks() {
    let mut plan = broken();
    plan.peers.clear();
    plan.cluster.services = c("10.0.240.0/20");
    let check = check(&plan);
    assert_eq!(check.figures.node_blocks_lost, 16);
    assert_eq!(check.figures.max_nodes, 128 - 16);
    assert_eq!(check.figures.overlaps, 1);
}

#[test]
fn the_planner_avoids_the_peers() {
    let peers = broken().peers;
    let wanted = Wanted {
        nodes: 200,
        max_pods_per_node: 110,
        services: 4000,
        zones: vec!["a".into(), "b".into(), "c".into()],
    };
    let plan = propose("prod", &peers, &wanted).unwrap();
    assert_eq!(plan.vpcs[0].cidrs, cs(&["10.1.0.0/23"]));
    assert_eq!(plan.vpcs[0].subnets[2].cidr, c("10.1.1.0/25"));
    assert_eq!(plan.cluster.pods, cs(&["10.2.0.0/16"]));
    assert_eq!(plan.cluster.services, c("10.1.16.0/20"));
    assert_eq!(plan.cluster.node_mask, 24);
    let check = check(&plan);
    assert_eq!(check.figures.overlaps, 0, "{:?}", check.findings);
    assert_eq!(check.figures.peer_overlaps, 1);
    assert_eq!(check.findings.len(), 1);
    assert!(check.findings[0]
        .message
        .starts_with("note: peered VPC analytics"));
    assert_eq!(check.figures.max_nodes, 256);
    // Nothing fits a /7 pod range.
    let huge = Wanted {
        nodes: 1 << 17,
        ..wanted
    };
    assert!(matches!(
        propose("prod", &peers, &huge),
        Err(PlanError::TooLarge { .. })
    ));
    // With all of 10/8 taken, the next space.
    assert_eq!(
        first_fit(16, &cs(&["10.0.0.0/8"])),
        Some(c("172.16.0.0/16"))
    );
    assert_eq!(
        first_fit(8, &cs(&["10.0.0.0/8"])),
        None,
        "172.16/12 and 192.168/16 hold no /8"
    );
}

fn cidr() -> impl Strategy<Value = Ipv4Cidr> {
    // Small prefixes and a crowded address space, so overlaps are common.
    (0u32..64, 0u8..=32, prop::bool::ANY).prop_map(|(hi, prefix, wide)| {
        let base = if wide {
            hi << 26
        } else {
            (10 << 24) | (hi << 12)
        };
        let prefix = if wide { prefix.min(8) } else { prefix.max(16) };
        let masked = if prefix == 0 {
            0
        } else {
            base & (u32::MAX << (32 - prefix))
        };
        Ipv4Cidr::new(Ipv4Addr::from(masked), prefix).unwrap()
    })
}

proptest! {
    #[test]
    fn the_sweep_matches_the_pairwise_reference(v in prop::collection::vec(cidr(), 0..40)) {
        prop_assert_eq!(overlapping_pairs(&v), pairwise(&v));
    }

    #[test]
    fn proposed_plans_never_overlap_and_fit(
        peers in prop::collection::vec(cidr(), 0..12),
        nodes in 1u64..3000,
        max_pods in 1u64..256,
        services in 1u64..70_000,
        zones in 1usize..5,
    ) {
        let peers: Vec<Peer> = peers
            .into_iter()
            .enumerate()
            .map(|(i, c)| Peer {
                name: format!("p{i}"),
                kind: [PeerKind::Vpc, PeerKind::Vpn, PeerKind::Cluster][i % 3],
                cidrs: vec![c],
            })
            .collect();
        let wanted = Wanted {
            nodes,
            max_pods_per_node: max_pods,
            services,
            zones: (0..zones).map(|z| format!("z{z}")).collect(),
        };
        match propose("k", &peers, &wanted) {
            Ok(plan) => {
                let check = check(&plan);
                // Peers may overlap each other; nothing planned overlaps anything.
                let planned = |i: usize| !matches!(check.ranges[i].role, Role::Peer(..));
                let ours: Vec<&Overlap> = check
                    .overlaps
                    .iter()
                    .filter(|o| planned(o.outer) || planned(o.inner))
                    .collect();
                prop_assert!(ours.is_empty(), "{:?}", check.findings);
                prop_assert_eq!(check.figures.overlaps, 0);
                prop_assert!(check
                    .findings
                    .iter()
                    .all(|f| f.consequence == Consequence::PeersOverlap), "{:?}", check.findings);
                prop_assert!(check.figures.max_nodes >= nodes);
                prop_assert!(check.figures.service_addresses >= services);
                let mask = plan.cluster.node_mask;
                prop_assert!(1u64 << (32 - mask) >= 2 * max_pods);
                let per_zone = nodes.div_ceil(zones as u64);
                for s in &plan.vpcs[0].subnets {
                    prop_assert!(s.cidr.size() - AWS_SUBNET_RESERVED >= per_zone);
                }
            }
            // Only a plan larger than AWS or RFC 1918 allow, or a full space.
            Err(PlanError::TooLarge { .. } | PlanError::NoSpace { .. }) => {}
            Err(e) => prop_assert!(false, "{e}"),
        }
    }
}
