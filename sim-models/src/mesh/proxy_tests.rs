//! The proxy as a server: queueing at its CPU, its limit, memory, handshakes.

use super::*;
use sim_core::RngStreams;

fn rng() -> SimRng {
    RngStreams::new(7).stream("proxy-test")
}

const ONE_CORE: ProxyResources = ProxyResources {
    cpu_millis: 1000,
    memory_limit: 1 << 30,
};

/// Poisson arrivals at `rate`/s through one proxy for `n` requests: the
/// mean time from arrival to the end of the CPU work, and the CPU busy time.
fn mean_response(
    profile: &ProxyProfile,
    limits: ProxyResources,
    rate: f64,
    n: usize,
) -> (f64, f64) {
    use rand::RngExt;
    let mut p: Proxy<usize> = Proxy::default();
    let mut r = rng();
    let mut arrivals = RngStreams::new(8).stream("arrivals");
    let far = SimTime::from_nanos(u64::MAX / 2);
    // Event list: (time, kind 0 = arrival / 1 = done, id).
    let mut done: std::collections::BinaryHeap<std::cmp::Reverse<(u64, usize)>> =
        Default::default();
    let mut arrived = vec![0u64; n];
    let (mut t, mut total, mut finished) = (0u64, 0.0, 0usize);
    let mut next = 0usize;
    while finished < n {
        let next_done = done.peek().map(|d| d.0 .0);
        if next < n && next_done.is_none_or(|d| t <= d) {
            let now = SimTime::from_nanos(t);
            arrived[next] = t;
            if let Some(s) = p.offer(profile, limits, next, now, far, false, &mut r) {
                done.push(std::cmp::Reverse((
                    t + (s.wait + s.service).as_nanos(),
                    next,
                )));
            }
            next += 1;
            let u: f64 = arrivals.random();
            t += (-(1.0 - u).ln() / rate * 1e9) as u64;
        } else {
            let std::cmp::Reverse((at, id)) = done.pop().unwrap();
            total += (at - arrived[id]) as f64 / 1e9;
            finished += 1;
            let now = SimTime::from_nanos(at);
            if let Some(s) = p.finish(profile, limits, now, &mut r, |_| unreachable!()) {
                done.push(std::cmp::Reverse((at + s.service.as_nanos(), s.item)));
            }
        }
    }
    (total / n as f64, p.stats().cpu_busy.as_secs_f64())
}

#[test]
fn one_worker_is_an_mm1_queue_and_its_cpu_is_the_work_done() {
    let profile = ProxyProfile {
        workers: 1,
        ..ProxyProfile::ISTIO_SIDECAR
    };
    // mu = 5,000/s at 0.2 ms; lambda = 4,000/s: 1/(mu - lambda) = 1 ms.
    let (mean, busy) = mean_response(&profile, ONE_CORE, 4000.0, 200_000);
    assert!((mean - 1e-3).abs() < 0.05e-3, "{mean}");
    // 200,000 requests x 0.2 ms of work: 40 s, within 1%.
    assert!((busy - 40.0).abs() < 0.4, "{busy}");
}

#[test]
fn a_cpu_limit_below_the_workers_slows_each_of_them() {
    let half = ProxyResources {
        cpu_millis: 500,
        ..ONE_CORE
    };
    assert_eq!(ProxyProfile::ISTIO_SIDECAR.speed(half), 0.25);
    assert_eq!(
        ProxyProfile::ISTIO_SIDECAR.speed(ProxyResources::ISTIO_SIDECAR),
        1.0
    );
    let profile = ProxyProfile {
        workers: 1,
        ..ProxyProfile::ISTIO_SIDECAR
    };
    // At 500m one worker runs at half speed: mu = 2,500/s; lambda 1,500/s:
    // 1/(mu - lambda) = 1 ms.
    let (mean, _) = mean_response(&profile, half, 1500.0, 200_000);
    assert!((mean - 1e-3).abs() < 0.05e-3, "{mean}");
}

#[test]
fn memory_at_the_published_load_is_the_published_figure() {
    for (profile, published) in [
        (ProxyProfile::ISTIO_SIDECAR, 60_000_000),
        (ProxyProfile::ZTUNNEL, 12_000_000),
        (ProxyProfile::WAYPOINT, 60_000_000),
        (ProxyProfile::LINKERD_SIDECAR, 10_000_000),
    ] {
        let mut p: Proxy<u32> = Proxy::default();
        for _ in 0..16 {
            p.connection_opened(&profile);
        }
        let mut r = rng();
        let far = SimTime::from_nanos(u64::MAX / 2);
        assert!(p
            .offer(&profile, ONE_CORE, 1, SimTime::ZERO, far, false, &mut r)
            .is_some());
        assert_eq!(p.memory_bytes(&profile), published);
        assert_eq!(p.stats().peak_memory, published);
    }
}

#[test]
fn a_handshake_costs_cpu_and_a_round_trip_on_new_connections_only() {
    let profile = ProxyProfile {
        cpu_per_request: SimDuration::ZERO,
        ..ProxyProfile::ISTIO_SIDECAR
    };
    let mut p: Proxy<u32> = Proxy::default();
    let mut r = rng();
    let far = SimTime::from_nanos(u64::MAX / 2);
    let new = p
        .offer(
            &profile,
            ProxyResources::ISTIO_SIDECAR,
            1,
            SimTime::ZERO,
            far,
            true,
            &mut r,
        )
        .unwrap();
    assert_eq!(new.service, HANDSHAKE_CPU + HANDSHAKE_LATENCY);
    let pooled = p
        .offer(
            &profile,
            ProxyResources::ISTIO_SIDECAR,
            2,
            SimTime::ZERO,
            far,
            false,
            &mut r,
        )
        .unwrap();
    assert_eq!(pooled.service, SimDuration::ZERO);
    assert_eq!(p.stats().handshakes, 1);
    assert_eq!(p.stats().cpu_busy, HANDSHAKE_CPU);
}

#[test]
fn a_request_whose_client_left_is_dropped_from_the_queue() {
    let profile = ProxyProfile {
        workers: 1,
        ..ProxyProfile::ISTIO_SIDECAR
    };
    let mut p: Proxy<u32> = Proxy::default();
    let mut r = rng();
    let t = |ms: u64| SimTime::from_nanos(ms * 1_000_000);
    assert!(p
        .offer(&profile, ONE_CORE, 1, t(0), t(100), false, &mut r)
        .is_some());
    assert!(p
        .offer(&profile, ONE_CORE, 2, t(0), t(5), false, &mut r)
        .is_none());
    assert!(p
        .offer(&profile, ONE_CORE, 3, t(0), t(100), false, &mut r)
        .is_none());
    let mut gone = Vec::new();
    let next = p
        .finish(&profile, ONE_CORE, t(10), &mut r, |i| gone.push(i))
        .unwrap();
    assert_eq!((next.item, next.wait), (3, SimDuration::from_millis(10)));
    assert_eq!(gone, vec![2]);
    assert_eq!(p.stats().abandoned, 1);
    assert!(p
        .finish(&profile, ONE_CORE, t(11), &mut r, |_| {})
        .is_none());
    assert_eq!(p.in_flight(), 0);
}
