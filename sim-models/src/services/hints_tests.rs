//! Topology Aware Routing hints against worked examples: the Kubernetes
//! docs ("Topology Aware Routing": two zones with 2 and 1 CPU cores get
//! endpoints 2:1; safeguards) and the controller's own tests
//! (`topologycache_test.go`, `TestAddHints` and `TestSetNodes`).

use super::*;
use crate::netpol::Labels;
use crate::services::{Choice, HintChange};
use crate::services::{ServicePort, ServiceSpec, TopologyEndpoints, TrafficPolicy};
use sim_core::RngStreams;

fn node(zone: usize, cpu: u64) -> NodeView {
    NodeView {
        zone: Some(zone),
        ready: true,
        cpu_millis: Some(cpu),
    }
}

#[test]
fn zone_ratios_follow_ready_nodes_cpu() {
    // The docs: a zone with 2 cores and one with 1 core: 2/3 and 1/3.
    let r = zone_ratios([node(0, 2000), node(1, 1000)], 2).unwrap();
    assert!((r[0].unwrap() - 2.0 / 3.0).abs() < 1e-12);
    assert!((r[1].unwrap() - 1.0 / 3.0).abs() < 1e-12);
    // A not-Ready node is skipped, even one without CPU or zone
    // (`TestSetNodes`); a zone with no Ready node has no ratio.
    let mut down = node(2, 0);
    down.ready = false;
    down.zone = None;
    let r = zone_ratios([node(0, 1000), node(1, 1000), down], 3).unwrap();
    assert_eq!(r[2], None);
    assert_eq!(r[0], Some(0.5));
}

#[test]
fn a_node_without_cpu_or_zone_or_a_single_zone_disables_hints() {
    let mut no_cpu = node(1, 1000);
    no_cpu.cpu_millis = None;
    let mut no_zone = node(1, 1000);
    no_zone.zone = None;
    for nodes in [
        vec![node(0, 1000), no_cpu],
        vec![node(0, 1000), no_zone],
        vec![node(0, 1000), node(0, 1000)],
        vec![],
    ] {
        assert_eq!(zone_ratios(nodes, 2), Err(Disabled::InsufficientNodeInfo));
    }
    assert_eq!(
        Disabled::InsufficientNodeInfo.to_string(),
        "Insufficient Node information: allocatable CPU or zone not specified on one or more nodes, addressType: IPv4"
    );
}

#[test]
fn fewer_endpoints_than_zones_disables_hints() {
    // `TestAddHints`: "slice to create with 2 endpoints, zone ratios require 3".
    let r = [Some(0.3), Some(0.4), Some(0.3)];
    let e = allocations(&r, 2).unwrap_err();
    assert_eq!(
        e,
        Disabled::TooFewEndpoints {
            endpoints: 2,
            zones: 3
        }
    );
    assert_eq!(
        e.to_string(),
        "Insufficient number of endpoints (2 endpoints, 3 zones), addressType: IPv4"
    );
}

#[test]
fn the_overload_threshold_needs_six_endpoints_over_three_even_zones() {
    // Even zones: desired n/3, minimum ceil(n/3 / 1.2). n = 4 and 5 need 2
    // per zone (6 > n): disabled; n = 6 fits exactly.
    let r = [Some(1.0 / 3.0); 3];
    for n in [4, 5] {
        let e = allocations(&r, n).unwrap_err();
        assert_eq!(
            e,
            Disabled::OverloadThreshold {
                endpoints: n,
                zones: 3
            }
        );
    }
    assert_eq!(
        allocations(&r, 5).unwrap_err().to_string(),
        "Unable to allocate minimum required endpoints to each zone without exceeding overload threshold (5 endpoints, 3 zones), addressType: IPv4"
    );
    let a = allocations(&r, 6).unwrap();
    assert!(a
        .iter()
        .all(|a| a.unwrap().minimum == 2 && a.unwrap().maximum == 2));
    // 3 endpoints, one per zone: minimum ceil(1/1.2) = 1 each, fits.
    assert!(allocations(&r, 3).is_ok());
    // The docs' 2:1 zones with 3 endpoints: minimums ceil(2/1.2) = 2 and
    // ceil(1/1.2) = 1, maximums the same.
    let a = allocations(&[Some(2.0 / 3.0), Some(1.0 / 3.0)], 3).unwrap();
    assert_eq!((a[0].unwrap().minimum, a[0].unwrap().maximum), (2, 2));
    assert_eq!((a[1].unwrap().minimum, a[1].unwrap().maximum), (1, 1));
}

#[test]
fn two_to_one_cpu_gives_twice_the_endpoints() {
    // The docs' example: zone a has twice zone b's CPU; 6 endpoints, 3 in
    // each zone: desired 4 and 2, so one of b's endpoints is hinted for a.
    let a = allocations(&[Some(2.0 / 3.0), Some(1.0 / 3.0)], 6).unwrap();
    assert_eq!(
        hint(&a, &[3, 3]),
        vec![Move {
            from: 1,
            to: 0,
            count: 1
        }]
    );
}

#[test]
fn redistribution_matches_the_controllers_three_zone_case() {
    // `TestAddHints`: "slices to create and update within 3 zone threshold":
    // ratios .35/.35/.30, 10 endpoints located 5/2/3, hints 4/3/3.
    let a = allocations(&[Some(0.35), Some(0.35), Some(0.30)], 10).unwrap();
    let moves = hint(&a, &[5, 2, 3]);
    assert_eq!(
        moves,
        vec![Move {
            from: 0,
            to: 1,
            count: 1
        }]
    );
    // "zone ratios only require 2": .45/.55 with one endpoint each: no move.
    let a = allocations(&[Some(0.45), Some(0.55)], 2).unwrap();
    assert!(hint(&a, &[1, 1]).is_empty());
}

#[test]
fn a_zone_without_endpoints_receives_hints_from_the_others() {
    // Even zones, 6 endpoints all in zones 0 and 1: zone 2 wants 2 and gets
    // one from each.
    let a = allocations(&[Some(1.0 / 3.0); 3], 6).unwrap();
    let moves = hint(&a, &[3, 3, 0]);
    let to_2: usize = moves.iter().filter(|m| m.to == 2).map(|m| m.count).sum();
    assert_eq!(to_2, 2);
    assert_eq!(
        moves
            .iter()
            .filter(|m| m.from == 0)
            .map(|m| m.count)
            .sum::<usize>(),
        1
    );
}

#[test]
fn overload_after_a_node_change_triggers_a_recompute() {
    let even = Ok(vec![Some(1.0 / 3.0); 3]);
    assert!(!overloaded(&[2, 2, 2], &even));
    // A zone grew: 6 hints, zone 0 now has half the CPU (minimum
    // ceil(3/1.2) = 3 > 2).
    let skew = Ok(vec![Some(0.5), Some(0.25), Some(0.25)]);
    assert!(overloaded(&[2, 2, 2], &skew));
    // Node info lost: any Service with hints is recomputed; none without.
    assert!(overloaded(&[2, 2, 2], &Err(Disabled::InsufficientNodeInfo)));
    assert!(!overloaded(
        &[0, 0, 0],
        &Err(Disabled::InsufficientNodeInfo)
    ));
}

fn auto_spec() -> ServiceSpec {
    let mut s = ServiceSpec::cluster_ip(
        "svc",
        "default",
        Labels::from([("app".to_string(), "x".to_string())]),
        ServicePort::tcp(80, 80, None),
    );
    s.topology_auto = true;
    s
}

/// Endpoints `pods[z]` in each zone `z` (node = zone), hints computed.
fn endpoints(per_zone: &[u32], ratios: &Result<Vec<Option<f64>>, Disabled>) -> TopologyEndpoints {
    let mut e = TopologyEndpoints::new(&auto_spec(), per_zone.len(), per_zone.len());
    let mut p = 0;
    for (z, &n) in per_zone.iter().enumerate() {
        for _ in 0..n {
            e.add(p, z, z);
            p += 1;
        }
    }
    e.rehint(ratios);
    e
}

fn zone_of(p: u32, per_zone: &[u32]) -> usize {
    let mut first = 0;
    for (z, &n) in per_zone.iter().enumerate() {
        if p < first + n {
            return z;
        }
        first += n;
    }
    unreachable!()
}

/// Share of `tries` picks from each client zone that land in another zone.
fn cross_share(e: &TopologyEndpoints, per_zone: &[u32]) -> f64 {
    let mut rng = RngStreams::new(7).stream("hints");
    let (mut cross, tries) = (0, 3000);
    for i in 0..tries {
        let z = i % per_zone.len();
        match e.choose(TrafficPolicy::Cluster, true, Some(z), Some(z), &mut rng) {
            Choice::Pod(p) => cross += usize::from(zone_of(p, per_zone) != z),
            other => panic!("no endpoint: {other:?}"),
        }
    }
    cross as f64 / tries as f64
}

#[test]
fn kube_proxy_keeps_its_zones_hints_and_falls_back_when_they_are_off() {
    let even = Ok(vec![Some(1.0 / 3.0); 3]);
    // 2 per zone: hints on, every pick stays in zone.
    let e = endpoints(&[2, 2, 2], &even);
    assert_eq!(e.hinted(), Some(vec![2, 2, 2]));
    assert_eq!(cross_share(&e, &[2, 2, 2]), 0.0);
    // 2/2/1: the overload safeguard removes every hint; kube-proxy uses all
    // five endpoints, 2/3 of picks leave the zone.
    let e = endpoints(&[2, 2, 1], &even);
    assert_eq!(e.hinted(), None);
    assert_eq!(
        e.hint_state(),
        Some(Err(Disabled::OverloadThreshold {
            endpoints: 5,
            zones: 3
        }))
    );
    let share = cross_share(&e, &[2, 2, 1]);
    assert!((share - 2.0 / 3.0).abs() < 0.03, "{share}");
    // Zone 2 has no Ready node (down): only zones 0 and 1 get hints, and
    // kube-proxy in zone 2, with none for its zone, falls back to all.
    let two = Ok(vec![Some(0.5), Some(0.5), None]);
    let e = endpoints(&[2, 2, 0], &two);
    assert_eq!(e.hinted(), Some(vec![2, 2, 0]));
    let mut rng = RngStreams::new(1).stream("x");
    let mut seen = [false; 2];
    for _ in 0..200 {
        if let Choice::Pod(p) = e.choose(TrafficPolicy::Cluster, true, Some(2), Some(2), &mut rng) {
            seen[zone_of(p, &[2, 2, 0])] = true;
        }
    }
    assert_eq!(seen, [true, true]);
}

#[test]
fn rehint_reports_transitions_once() {
    let even = Ok(vec![Some(1.0 / 3.0); 3]);
    let mut e = TopologyEndpoints::new(&auto_spec(), 3, 3);
    for p in 0..6 {
        e.add(p, (p % 3) as usize, (p % 3) as usize);
    }
    assert_eq!(e.rehint(&even), HintChange::Enabled);
    assert_eq!(e.rehint(&even), HintChange::Unchanged);
    e.remove(5, 2, 2);
    let d = Disabled::OverloadThreshold {
        endpoints: 5,
        zones: 3,
    };
    assert_eq!(e.rehint(&even), HintChange::Disabled(d));
    assert_eq!(e.rehint(&even), HintChange::Unchanged);
    e.remove(4, 1, 1);
    assert!(matches!(e.rehint(&even), HintChange::Disabled(_)));
    e.add(4, 1, 1);
    e.add(5, 2, 2);
    assert_eq!(e.rehint(&even), HintChange::Enabled);
}
