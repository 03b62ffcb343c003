use super::*;
use proptest::prelude::*;
use sim_core::RngStreams;
use std::collections::BTreeSet;

fn rng() -> SimRng {
    RngStreams::new(7).stream("cloud_lb")
}

fn group(kind: LbKind, cross_zone: bool, zones: u32) -> TargetGroup {
    let mut spec = TargetGroupSpec::elb_defaults(kind, TargetType::Ip);
    spec.cross_zone = cross_zone;
    TargetGroup::new(spec, zones)
}

/// Passes `id` until healthy.
fn make_healthy(g: &mut TargetGroup, id: TargetId) {
    for _ in 0..10 {
        if g.record_check(id, CheckResult::Pass) == Some(Health::Healthy) {
            return;
        }
    }
    panic!("target {id} never became healthy");
}

/// Fails `id` until unhealthy.
fn make_unhealthy(g: &mut TargetGroup, id: TargetId) {
    for _ in 0..10 {
        if g.record_check(id, CheckResult::Fail) == Some(Health::Unhealthy) {
            return;
        }
    }
    panic!("target {id} never became unhealthy");
}

/// Checks every `interval` from `start` with `result` until the state
/// changes; returns when (time since `start`).
fn detection(hc: &HealthCheck, state: &mut TargetHealth, result: CheckResult) -> SimDuration {
    for k in 1..=20u64 {
        if state.record(result, hc).is_some() {
            return hc.interval.saturating_mul(k);
        }
    }
    panic!("no transition in 20 checks");
}

#[test]
fn controller_defaults_are_the_documented_ones() {
    let row = |hc: HealthCheck| {
        (
            hc.interval.as_secs_f64(),
            hc.timeout.as_secs_f64(),
            hc.healthy_threshold,
            hc.unhealthy_threshold,
        )
    };
    assert_eq!(row(HealthCheck::elb_alb()), (30.0, 5.0, 5, 2));
    assert_eq!(row(HealthCheck::elb_nlb_tcp()), (30.0, 10.0, 5, 2));
    assert_eq!(row(HealthCheck::aws_lbc_ingress()), (15.0, 5.0, 2, 2));
    assert_eq!(row(HealthCheck::aws_lbc_service()), (10.0, 10.0, 3, 3));
    assert_eq!(row(HealthCheck::gke_instance_group()), (60.0, 60.0, 1, 10));
    assert_eq!(row(HealthCheck::gke_neg()), (15.0, 15.0, 1, 2));
    for hc in [
        HealthCheck::elb_alb(),
        HealthCheck::elb_nlb_tcp(),
        HealthCheck::aws_lbc_ingress(),
        HealthCheck::aws_lbc_service(),
        HealthCheck::gke_instance_group(),
        HealthCheck::gke_neg(),
    ] {
        hc.validate().unwrap();
    }
}

#[test]
fn detection_times_match_the_derived_figures() {
    // The edge calibration notes, section 3, "Derived detection times": ALB with
    // ELB defaults unhealthy after ~2 x 30 s, healthy again after ~5 x 30 s;
    // the controller's ALB ~2 x 15 s either way; its NLB ~3 x 10 s.
    let cases = [
        (HealthCheck::elb_alb(), 60.0, 150.0),
        (HealthCheck::aws_lbc_ingress(), 30.0, 30.0),
        (HealthCheck::aws_lbc_service(), 30.0, 30.0),
    ];
    for (hc, down, up) in cases {
        let mut s = TargetHealth::registered();
        // In service first (initial passes), then failing, then passing.
        let _ = detection(&hc, &mut s, CheckResult::Pass);
        assert_eq!(s.health, Health::Healthy);
        assert_eq!(
            detection(&hc, &mut s, CheckResult::Fail).as_secs_f64(),
            down
        );
        assert_eq!(detection(&hc, &mut s, CheckResult::Pass).as_secs_f64(), up);
    }
}

#[test]
fn a_new_alb_target_is_in_service_after_one_pass() {
    let hc = HealthCheck::elb_alb();
    let mut s = TargetHealth::registered();
    assert_eq!(s.record(CheckResult::Pass, &hc), Some(Health::Healthy));
    assert_eq!(
        hc.time_to_healthy(SimDuration::from_secs(5)).as_secs_f64(),
        5.0
    );
    // NLB (an assumption: the healthy threshold applies to new targets).
    let hc = HealthCheck::elb_nlb_tcp();
    let mut s = TargetHealth::registered();
    for _ in 0..4 {
        assert_eq!(s.record(CheckResult::Pass, &hc), None);
    }
    assert_eq!(s.record(CheckResult::Pass, &hc), Some(Health::Healthy));
    assert_eq!(hc.time_to_healthy(SimDuration::ZERO).as_secs_f64(), 120.0);
}

#[test]
fn a_broken_streak_starts_again() {
    let hc = HealthCheck::elb_alb();
    let mut s = TargetHealth::registered();
    s.record(CheckResult::Pass, &hc);
    // Healthy: fail, pass, fail, fail -> unhealthy only at the fourth.
    assert_eq!(s.record(CheckResult::Fail, &hc), None);
    assert_eq!(s.record(CheckResult::Pass, &hc), None);
    assert_eq!(s.record(CheckResult::Fail, &hc), None);
    assert_eq!(s.record(CheckResult::Fail, &hc), Some(Health::Unhealthy));
    // Unhealthy: four passes, a fail, then five passes.
    for _ in 0..4 {
        assert_eq!(s.record(CheckResult::Pass, &hc), None);
    }
    assert_eq!(s.record(CheckResult::Fail, &hc), None);
    for _ in 0..4 {
        assert_eq!(s.record(CheckResult::Pass, &hc), None);
    }
    assert_eq!(s.record(CheckResult::Pass, &hc), Some(Health::Healthy));
    // Draining ignores checks.
    s.drain();
    assert_eq!(s.record(CheckResult::Fail, &hc), None);
    assert_eq!(s.record(CheckResult::Fail, &hc), None);
    assert_eq!(s.health, Health::Draining);
}

#[test]
fn bad_parameters_are_refused() {
    let mut hc = HealthCheck::elb_alb();
    hc.timeout = SimDuration::from_secs(31);
    assert!(hc.validate().unwrap_err().contains("must not exceed"));
    let mut hc = HealthCheck::elb_alb();
    hc.unhealthy_threshold = 0;
    assert!(hc.validate().is_err());
    let mut hc = HealthCheck::elb_alb();
    hc.interval = SimDuration::ZERO;
    assert!(hc.validate().is_err());
}

fn routes(g: &TargetGroup, zone: u32, n: usize) -> BTreeSet<Route> {
    let mut r = rng();
    (0..n).map(|_| g.route(zone, &mut r)).collect()
}

#[test]
fn routing_follows_zones_and_cross_zone() {
    // Zone 0: targets 0, 1; zone 1: target 2; zone 2: none.
    for cross in [false, true] {
        let mut g = group(LbKind::Network, cross, 3);
        let ids: Vec<_> = [0, 0, 1].iter().map(|&z| g.register(z)).collect();
        // Initial targets get nothing.
        assert_eq!(routes(&g, 0, 50), BTreeSet::from([Route::NoTarget]));
        for &id in &ids {
            make_healthy(&mut g, id);
        }
        let all = BTreeSet::from([Route::Healthy(0), Route::Healthy(1), Route::Healthy(2)]);
        if cross {
            for zone in 0..3 {
                assert_eq!(routes(&g, zone, 300), all);
            }
        } else {
            assert_eq!(
                routes(&g, 0, 300),
                BTreeSet::from([Route::Healthy(0), Route::Healthy(1)])
            );
            assert_eq!(routes(&g, 1, 300), BTreeSet::from([Route::Healthy(2)]));
            // Zone 2 has no target: its node is out of DNS.
            assert_eq!(routes(&g, 2, 300), all);
        }
    }
}

#[test]
fn no_healthy_target_fails_open_over_the_unhealthy_ones() {
    let mut g = group(LbKind::Application, true, 2);
    let a = g.register(0);
    let b = g.register(1);
    let c = g.register(1);
    for id in [a, b, c] {
        make_healthy(&mut g, id);
    }
    make_unhealthy(&mut g, a);
    make_unhealthy(&mut g, b);
    assert_eq!(routes(&g, 0, 100), BTreeSet::from([Route::Healthy(c)]));
    make_unhealthy(&mut g, c);
    assert_eq!(
        routes(&g, 0, 300),
        BTreeSet::from([Route::FailOpen(a), Route::FailOpen(b), Route::FailOpen(c)])
    );
    // Without cross-zone a node fails open over its own zone first.
    let mut g = group(LbKind::Network, false, 2);
    let a = g.register(0);
    let b = g.register(1);
    for id in [a, b] {
        make_unhealthy(&mut g, id);
    }
    assert_eq!(routes(&g, 0, 100), BTreeSet::from([Route::FailOpen(a)]));
    assert_eq!(routes(&g, 1, 100), BTreeSet::from([Route::FailOpen(b)]));
}

#[test]
fn picks_are_uniform_over_the_healthy_targets() {
    let mut g = group(LbKind::Application, true, 3);
    let ids: Vec<_> = (0..9).map(|i| g.register(i % 3)).collect();
    for &id in &ids {
        make_healthy(&mut g, id);
    }
    let mut counts = [0u32; 9];
    let mut r = rng();
    let n = 90_000;
    for _ in 0..n {
        match g.route(0, &mut r) {
            Route::Healthy(id) => counts[id as usize] += 1,
            other => panic!("{other:?}"),
        }
    }
    let expected = n as f64 / 9.0;
    let chi2: f64 = counts
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum();
    // 8 degrees of freedom: p = 0.001 at 26.1.
    assert!(chi2 < 26.1, "chi-square {chi2}: {counts:?}");
}

#[test]
fn deregistration_drains_requests_in_flight() {
    let mut g = group(LbKind::Application, true, 1);
    let a = g.register(0);
    let b = g.register(0);
    make_healthy(&mut g, a);
    make_healthy(&mut g, b);
    let t0 = SimTime::ZERO + SimDuration::from_secs(100);
    // Nothing in flight: gone at once.
    assert_eq!(g.deregister(a, t0), Deregistered::Now);
    assert_eq!(routes(&g, 0, 100), BTreeSet::from([Route::Healthy(b)]));
    assert_eq!(g.registered_count(), 1);
    // Two in flight: draining 300 s; the first end is not the last.
    g.begin(b);
    g.begin(b);
    assert_eq!(
        g.deregister(b, t0),
        Deregistered::DrainingUntil(t0 + SimDuration::from_secs(300))
    );
    assert_eq!(g.health(b), Health::Draining);
    assert_eq!(routes(&g, 0, 10), BTreeSet::from([Route::NoTarget]));
    assert_eq!(
        ClientSees::of(LbKind::Application, Route::NoTarget, TargetAnswer::Served).status(),
        Some(503)
    );
    assert!(!g.end(b));
    // The delay ends with one still in flight: it is cut off (a 502).
    assert_eq!(g.drain_ends(b), 1);
    // Without a delay a deregistration is immediate whatever is in flight.
    let mut spec = TargetGroupSpec::elb_defaults(LbKind::Application, TargetType::Ip);
    spec.deregistration_delay = SimDuration::ZERO;
    let mut g = TargetGroup::new(spec, 1);
    let c = g.register(0);
    make_healthy(&mut g, c);
    g.begin(c);
    assert_eq!(g.deregister(c, t0), Deregistered::Now);
    assert!(g.end(c));
}

#[test]
fn what_the_client_sees() {
    use ClientSees::*;
    use TargetAnswer::*;
    let alb = LbKind::Application;
    let nlb = LbKind::Network;
    let to = Route::Healthy(0);
    let table = [
        (alb, to, Served, Answer, None),
        (alb, to, Refused, BadGateway, Some(502)),
        (alb, to, TargetAnswer::Reset, BadGateway, Some(502)),
        (alb, to, Silent, GatewayTimeout, Some(504)),
        (alb, Route::NoTarget, Served, Unavailable, Some(503)),
        (alb, Route::FailOpen(0), Refused, BadGateway, Some(502)),
        (nlb, to, Served, Answer, None),
        (nlb, to, Refused, ClientSees::Reset, None),
        (nlb, to, TargetAnswer::Reset, ClientSees::Reset, None),
        (nlb, to, Silent, ConnectTimeout, None),
        (nlb, Route::NoTarget, Served, ConnectTimeout, None),
    ];
    for (kind, route, answer, sees, status) in table {
        let got = ClientSees::of(kind, route, answer);
        assert_eq!(got, sees, "{kind:?} {route:?} {answer:?}");
        assert_eq!(got.status(), status);
    }
}

/// One operation on a group in the property test.
#[derive(Clone, Debug)]
enum Op {
    Register(u32),
    Check(usize, bool),
    Deregister(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u32..3).prop_map(Op::Register),
        (0usize..40, any::<bool>()).prop_map(|(i, p)| Op::Check(i, p)),
        (0usize..40).prop_map(Op::Deregister),
    ]
}

/// The routable lists agree with the targets' states (brute force).
fn check_invariants(g: &TargetGroup) {
    let zones = g.live_pos.len() as u32;
    for (health, pool) in [
        (Health::Healthy, &g.healthy),
        (Health::Unhealthy, &g.unhealthy),
    ] {
        let want: BTreeSet<TargetId> = (0..g.targets.len() as TargetId)
            .filter(|&id| g.health(id) == health)
            .collect();
        let got: BTreeSet<TargetId> = pool.all.ids.iter().copied().collect();
        assert_eq!(got, want, "{health:?} across zones");
        assert_eq!(pool.all.ids.len(), want.len(), "no duplicates");
        for zone in 0..zones {
            let want_z: BTreeSet<TargetId> = want
                .iter()
                .copied()
                .filter(|&id| g.targets[id as usize].zone == zone)
                .collect();
            let got_z: BTreeSet<TargetId> =
                pool.by_zone[zone as usize].ids.iter().copied().collect();
            assert_eq!(got_z, want_z, "{health:?} in zone {zone}");
        }
        for (pos, &id) in pool.all.ids.iter().enumerate() {
            assert_eq!(g.targets[id as usize].pos_all as usize, pos);
        }
        for members in &pool.by_zone {
            for (pos, &id) in members.ids.iter().enumerate() {
                assert_eq!(g.targets[id as usize].pos_zone as usize, pos);
            }
        }
    }
    let live: BTreeSet<u32> = (0..zones).filter(|&z| g.healthy_in_zone(z) > 0).collect();
    assert_eq!(g.live_zones.iter().copied().collect::<BTreeSet<_>>(), live);
    for (pos, &z) in g.live_zones.iter().enumerate() {
        assert_eq!(g.live_pos[z as usize] as usize, pos);
    }
}

proptest! {
    #[test]
    fn routing_lists_match_the_states(ops in prop::collection::vec(op(), 1..200), cross in any::<bool>()) {
        let mut g = group(LbKind::Network, cross, 3);
        let mut r = rng();
        for op in ops {
            match op {
                Op::Register(z) => {
                    g.register(z);
                }
                Op::Check(i, pass) if i < g.targets.len() => {
                    let result = if pass { CheckResult::Pass } else { CheckResult::Fail };
                    g.record_check(i as TargetId, result);
                }
                Op::Deregister(i) if i < g.targets.len() => {
                    g.deregister(i as TargetId, SimTime::ZERO);
                }
                _ => {}
            }
            check_invariants(&g);
            // A route never names a target that may not take it.
            for zone in 0..3 {
                match g.route(zone, &mut r) {
                    Route::Healthy(id) => prop_assert_eq!(g.health(id), Health::Healthy),
                    Route::FailOpen(id) => {
                        prop_assert_eq!(g.health(id), Health::Unhealthy);
                        prop_assert_eq!(g.healthy_count(), 0);
                    }
                    Route::NoTarget => {
                        prop_assert_eq!(g.healthy_count() + g.unhealthy.all.len(), 0)
                    }
                }
            }
        }
    }
}
