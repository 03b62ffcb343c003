use super::node_port::{
    accepts, allocate, static_band, AllocError, NodeAddressKind, NodeAddressing, NodePortAddresses,
};
use super::*;
use crate::app::ServerSpec;
use crate::ipam::Ipv4Cidr;
use crate::kube_proxy::Mode;
use proptest::prelude::*;
use sim_core::{RngStreams, SimDuration};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn workload(name: &str, l: Labels) -> DeploymentSpec {
    let server = ServerSpec {
        concurrency: 1,
        service_time: SimDuration::from_millis(1),
        queue_limit: None,
    };
    let s = SimDuration::from_secs(1);
    let mut d = DeploymentSpec::new(name, 1, s, s, server);
    d.labels = l;
    d
}

fn port(p: u16) -> ServicePort {
    ServicePort::tcp(p, p, None)
}

#[test]
fn selector_needs_every_key_and_an_empty_one_selects_nothing() {
    let pod = labels(&[("app", "web"), ("tier", "front")]);
    assert!(selects(&labels(&[("app", "web")]), &pod));
    assert!(selects(&labels(&[("app", "web"), ("tier", "front")]), &pod));
    assert!(!selects(&labels(&[("app", "web"), ("tier", "back")]), &pod));
    assert!(!selects(&Labels::new(), &pod));
}

#[test]
fn implicit_services_keep_workload_indices_and_explicit_ones_claim() {
    let ws = vec![
        workload("a", labels(&[("app", "a"), ("tier", "x")])),
        workload("b", labels(&[("app", "b"), ("tier", "x")])),
        workload("c", labels(&[("app", "c")])),
    ];
    let r = resolve(&ws, &[]);
    assert_eq!(r.len(), 3);
    assert!(r.iter().enumerate().all(|(i, s)| s.implicit == Some(i)));
    // One Service over two workloads, two Services over one.
    let tier = ServiceSpec::cluster_ip("tier-x", "default", labels(&[("tier", "x")]), port(80));
    let a = ServiceSpec::cluster_ip("a-admin", "default", labels(&[("app", "a")]), port(9090));
    let r = resolve(&ws, &[tier, a]);
    let names: Vec<&str> = r.iter().map(|s| s.spec.name.as_str()).collect();
    assert_eq!(names, ["c", "tier-x", "a-admin"]);
    assert_eq!(r[1].workloads, [0, 1]);
    assert_eq!(r[2].workloads, [0]);
    let idx = SelectorIndex::new(&r, 3);
    assert_eq!(idx.of(0), [1, 2]);
    assert_eq!(idx.of(1), [1]);
    assert_eq!(idx.of(2), [0]);
}

#[test]
fn other_namespaces_are_not_selected() {
    let mut w = workload("a", labels(&[("app", "a")]));
    w.namespace = "prod".into();
    let s = ServiceSpec::cluster_ip("a", "default", labels(&[("app", "a")]), port(80));
    let r = resolve(&[w], &[s]);
    assert_eq!(r.len(), 2, "the workload keeps its implicit Service");
    assert!(r[1].workloads.is_empty());
}

fn spec_with(internal: TrafficPolicy, prefer_close: bool) -> ServiceSpec {
    let mut s = ServiceSpec::cluster_ip("s", "default", labels(&[("app", "s")]), port(80));
    s.internal_policy = internal;
    s.prefer_close = prefer_close;
    s
}

#[test]
fn local_policy_picks_the_node_or_drops() {
    let mut e = TopologyEndpoints::new(&spec_with(TrafficPolicy::Local, false), 2, 3);
    e.add(7, 0, 0);
    e.add(8, 1, 1);
    let mut rng = RngStreams::new(1).stream("t");
    for _ in 0..50 {
        assert_eq!(
            e.choose(TrafficPolicy::Local, false, Some(0), Some(0), &mut rng),
            Choice::Pod(7)
        );
    }
    assert_eq!(
        e.choose(TrafficPolicy::Local, false, Some(2), Some(0), &mut rng),
        Choice::NoLocalEndpoint
    );
    assert_eq!(e.local(1), 1);
    e.remove(8, 1, 1);
    assert_eq!(e.local(1), 0);
    assert_eq!(health_check_status(e.local(0)), 200);
    assert_eq!(health_check_status(e.local(1)), 503);
    // Cluster policy: any endpoint.
    assert_eq!(
        e.choose(TrafficPolicy::Cluster, false, Some(2), None, &mut rng),
        Choice::Pod(7)
    );
}

#[test]
fn prefer_close_stays_in_zone_and_falls_back_to_all() {
    let mut e = TopologyEndpoints::new(&spec_with(TrafficPolicy::Cluster, true), 3, 3);
    e.add(1, 0, 0);
    e.add(2, 0, 0);
    e.add(3, 1, 1);
    let mut rng = RngStreams::new(2).stream("t");
    let mut seen = BTreeSet::new();
    for _ in 0..200 {
        match e.choose(TrafficPolicy::Cluster, true, Some(0), Some(0), &mut rng) {
            Choice::Pod(p) => {
                seen.insert(p);
            }
            c => panic!("{c:?}"),
        }
    }
    assert_eq!(
        seen,
        BTreeSet::from([1, 2]),
        "zone 0 clients stay in zone 0"
    );
    // Zone 2 has no endpoint: every endpoint serves it.
    let mut seen = BTreeSet::new();
    for _ in 0..300 {
        if let Choice::Pod(p) = e.choose(TrafficPolicy::Cluster, true, Some(2), Some(2), &mut rng) {
            seen.insert(p);
        }
    }
    assert_eq!(seen, BTreeSet::from([1, 2, 3]));
    e.remove(1, 0, 0);
    e.remove(2, 0, 0);
    e.remove(3, 1, 1);
    assert_eq!(
        e.choose(TrafficPolicy::Cluster, true, Some(0), Some(0), &mut rng),
        Choice::NoEndpoints
    );
}

#[test]
fn node_ports_are_given_or_allocated_from_the_dynamic_band() {
    let range = node_port::DEFAULT_RANGE;
    assert_eq!(static_band(2768), 86);
    let got = allocate(&[None, Some(30080), None], range).unwrap();
    assert_eq!(got, [30086, 30080, 30087]);
    // A port given twice is refused, naming the holder.
    assert_eq!(
        allocate(&[Some(30080), Some(30080)], range),
        Err((
            1,
            AllocError::Taken {
                port: 30080,
                holder: 0
            }
        ))
    );
    // Out of range.
    assert!(matches!(
        allocate(&[Some(8080)], range),
        Err((0, AllocError::OutOfRange { port: 8080, .. }))
    ));
    // The dynamic band full: the static band is used, then the range is full.
    let small = (30000, 30019); // 20 ports, a static band of 16
    let got = allocate(&[None; 20], small).unwrap();
    assert_eq!(got[0], 30016);
    assert_eq!(got[4], 30000);
    assert_eq!(allocate(&[None; 21], small), Err((20, AllocError::Full)));
    assert!(AllocError::Taken {
        port: 30080,
        holder: 0
    }
    .to_string()
    .contains("provided port is already allocated"));
}

#[test]
fn node_port_addresses_per_mode() {
    let addressing = NodeAddressing {
        public: Some(NodeAddressing::documentation_public()),
        ..NodeAddressing::default()
    };
    let internal = addressing.address(0, NodeAddressKind::Internal).unwrap();
    let public = addressing.address(0, NodeAddressKind::Public).unwrap();
    assert_eq!(internal, Ipv4Addr::new(10, 0, 0, 10));
    assert_eq!(public, Ipv4Addr::new(203, 0, 113, 10));
    let d = NodePortAddresses::Default;
    for mode in [Mode::Iptables, Mode::Ipvs] {
        assert!(accepts(mode, &d, NodeAddressKind::Public, public));
        assert!(accepts(mode, &d, NodeAddressKind::Internal, internal));
    }
    assert!(!accepts(
        Mode::Nftables,
        &d,
        NodeAddressKind::Public,
        public
    ));
    assert!(accepts(
        Mode::Nftables,
        &d,
        NodeAddressKind::Internal,
        internal
    ));
    let private =
        NodePortAddresses::Cidrs(vec![Ipv4Cidr::new(Ipv4Addr::new(10, 0, 0, 0), 8).unwrap()]);
    assert!(!accepts(
        Mode::Iptables,
        &private,
        NodeAddressKind::Public,
        public
    ));
    assert!(accepts(
        Mode::Iptables,
        &private,
        NodeAddressKind::Internal,
        internal
    ));
    assert!(!accepts(
        Mode::Iptables,
        &NodePortAddresses::Primary,
        NodeAddressKind::Public,
        public
    ));
    assert!(NodeAddressing::default()
        .address(0, NodeAddressKind::Public)
        .is_none());
}

proptest! {
    /// Endpoints kept incrementally per Service (through the selector
    /// index, one pod event at a time) equal the endpoints recomputed from
    /// scratch from the selectors and the Ready pods.
    #[test]
    fn incremental_endpoints_match_a_recomputation(
        workload_labels in prop::collection::vec((0u8..3, 0u8..3), 1..6),
        selectors in prop::collection::vec((prop::option::of(0u8..3), prop::option::of(0u8..3)), 0..5),
        events in prop::collection::vec((0usize..6, 0u32..4, any::<bool>(), 0usize..3), 0..80),
    ) {
        let lab = |a: Option<u8>, t: Option<u8>| {
            let mut l = Labels::new();
            if let Some(a) = a { l.insert("app".into(), format!("a{a}")); }
            if let Some(t) = t { l.insert("tier".into(), format!("t{t}")); }
            l
        };
        let ws: Vec<DeploymentSpec> = workload_labels
            .iter()
            .enumerate()
            .map(|(i, &(a, t))| workload(&format!("w{i}"), lab(Some(a), Some(t))))
            .collect();
        let explicit: Vec<ServiceSpec> = selectors
            .iter()
            .enumerate()
            .map(|(i, &(a, t))| {
                let mut s = ServiceSpec::cluster_ip(&format!("s{i}"), "default", lab(a, t), port(80));
                s.prefer_close = true;
                s.internal_policy = TrafficPolicy::Local;
                s
            })
            .collect();
        let services = resolve(&ws, &explicit);
        let index = SelectorIndex::new(&services, ws.len());
        let mut eps: Vec<TopologyEndpoints> =
            services.iter().map(|s| TopologyEndpoints::new(&s.spec, 3, 3)).collect();
        // pod id = workload * 4 + k; node = zone = chosen per event.
        let mut ready: std::collections::BTreeMap<u32, (usize, usize)> = Default::default();
        for &(w, k, up, node) in &events {
            let w = w % ws.len();
            let pod = w as u32 * 4 + k;
            match (up, ready.get(&pod).copied()) {
                (true, None) => {
                    ready.insert(pod, (w, node));
                    for &s in index.of(w) { eps[s as usize].add(pod, node, node); }
                }
                (false, Some((_, n))) => {
                    ready.remove(&pod);
                    for &s in index.of(w) { eps[s as usize].remove(pod, n, n); }
                }
                _ => {}
            }
        }
        for (s, svc) in services.iter().enumerate() {
            let want: BTreeSet<u32> = ready
                .iter()
                .filter(|(_, (w, _))| match svc.implicit {
                    Some(i) => i == *w,
                    None => ws[*w].namespace == svc.spec.namespace && svc.spec.selects(&ws[*w].labels),
                })
                .map(|(&p, _)| p)
                .collect();
            let got: BTreeSet<u32> = eps[s].all.pods().iter().copied().collect();
            prop_assert_eq!(&got, &want);
            for node in (0..3).filter(|_| svc.implicit.is_none()) {
                let local = want.iter().filter(|p| ready[p].1 == node).count();
                prop_assert_eq!(eps[s].local(node), local);
            }
        }
    }
}
