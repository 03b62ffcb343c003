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
    let mut p = Proxy::default();
    let mut r = rng();
    let mut arrivals = RngStreams::new(8).stream("arrivals");
    let (mut t, mut total) = (0u64, 0.0);
    for _ in 0..n {
        let s = p.offer(
            &ProxySpec::new(*profile, limits),
            SimTime::from_nanos(t),
            false,
            &mut r,
        );
        total += (s.wait + s.service).as_secs_f64();
        let u: f64 = arrivals.random();
        t += (-(1.0 - u).ln() / rate * 1e9) as u64;
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
fn two_workers_are_an_mm2_queue() {
    // M/M/2 with mu = 5,000/s per worker and lambda = 8,000/s (rho 0.8):
    // mean response 1/mu + C(2, 1.6) / (2 mu - lambda), with Erlang C
    // 1.6^2/2 / ((1 - 0.8)(1 + 1.6) + 1.6^2/2) = 0.7111: 0.2 + 0.3556 ms.
    let (mean, _) = mean_response(
        &ProxyProfile::ISTIO_SIDECAR,
        ProxyResources::ISTIO_SIDECAR,
        8000.0,
        400_000,
    );
    assert!((mean - 0.5556e-3).abs() < 0.03e-3, "{mean}");
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
        let mut p = Proxy::default();
        for _ in 0..16 {
            p.connection_opened(&profile, ONE_CORE);
        }
        let mut r = rng();
        p.offer(
            &ProxySpec::new(profile, ONE_CORE),
            SimTime::ZERO,
            false,
            &mut r,
        );
        assert_eq!(p.memory_bytes(&profile), published);
        assert_eq!(p.stats().peak_memory, published);
        p.left(true);
        assert_eq!(p.in_flight(), 0);
        assert_eq!(p.stats().abandoned, 1);
    }
}

#[test]
fn a_handshake_costs_cpu_and_a_round_trip_on_new_connections_only() {
    let profile = ProxyProfile {
        cpu_per_request: SimDuration::ZERO,
        ..ProxyProfile::ISTIO_SIDECAR
    };
    let limits = ProxyResources::ISTIO_SIDECAR;
    let mut p = Proxy::default();
    let mut r = rng();
    let new = p.offer(
        &ProxySpec::new(profile, limits),
        SimTime::ZERO,
        true,
        &mut r,
    );
    assert_eq!(new.service, HANDSHAKE_CPU + HANDSHAKE_LATENCY);
    let pooled = p.offer(
        &ProxySpec::new(profile, limits),
        SimTime::ZERO,
        false,
        &mut r,
    );
    assert_eq!(pooled.service, SimDuration::ZERO);
    assert_eq!(p.stats().handshakes, 1);
    assert_eq!(p.stats().cpu_busy, HANDSHAKE_CPU);
}

#[test]
fn requests_wait_first_come_first_served_for_the_first_free_worker() {
    let profile = ProxyProfile {
        workers: 2,
        cpu_per_request: SimDuration::ZERO,
        handshake_latency: SimDuration::ZERO,
        handshake_cpu: SimDuration::from_millis(1),
        ..ProxyProfile::ISTIO_SIDECAR
    };
    let limits = ProxyResources::ISTIO_SIDECAR;
    let mut p = Proxy::default();
    let mut r = rng();
    // Each takes 1 ms of a worker: the third waits for the first free one.
    let waits: Vec<SimDuration> = (0..4)
        .map(|_| {
            p.offer(
                &ProxySpec::new(profile, limits),
                SimTime::ZERO,
                true,
                &mut r,
            )
            .wait
        })
        .collect();
    let ms = SimDuration::from_millis;
    assert_eq!(waits, [ms(0), ms(0), ms(1), ms(1)]);
}

#[test]
fn the_charge_past_the_memory_limit_kills_the_proxy_and_the_restart_empties_it() {
    let profile = ProxyProfile::ISTIO_SIDECAR;
    // Room for the base, 4 connections and 2 requests: the third request
    // is the charge the cgroup refuses.
    let limits = ProxyResources {
        memory_limit: profile.base_memory
            + 4 * profile.memory_per_connection
            + 2 * profile.memory_per_request,
        ..ProxyResources::ISTIO_SIDECAR
    };
    let mut p = Proxy::default();
    let mut r = rng();
    for _ in 0..4 {
        p.connection_opened(&profile, limits);
    }
    assert!(!p.over_limit(&profile, limits));
    let t = SimTime::from_nanos(1_000_000);
    for _ in 0..2 {
        assert!(
            !p.offer(&ProxySpec::new(profile, limits), t, false, &mut r)
                .oom
        );
        assert!(!p.over_limit(&profile, limits));
    }
    assert_eq!(p.memory_bytes(&profile), limits.memory_limit);
    let epoch = p.epoch();
    assert!(
        p.offer(&ProxySpec::new(profile, limits), t, false, &mut r)
            .oom
    );
    assert!(p.over_limit(&profile, limits));
    // The usage never passes the limit.
    assert_eq!(p.stats().peak_memory, limits.memory_limit);
    p.oom_kill(t);
    let s = p.stats();
    assert_eq!((s.oom_kills, s.reset), (1, 3));
    assert_eq!(p.in_flight(), 0);
    assert_eq!(p.connections(), 0);
    assert_eq!(p.memory_bytes(&profile), profile.base_memory);
    assert_ne!(p.epoch(), epoch);
    // The new process's workers are idle: a request at the kill does not
    // wait behind the three that were inside.
    let after = p.offer(&ProxySpec::new(profile, limits), t, false, &mut r);
    assert_eq!(after.wait, SimDuration::ZERO);
    assert!(!p.over_limit(&profile, limits));
}

#[test]
fn a_restart_drops_the_pooled_connections_and_a_closed_one_frees_its_memory() {
    let profile = ProxyProfile::ISTIO_SIDECAR;
    let limits = ProxyResources::ISTIO_SIDECAR;
    let mut p = Proxy::default();
    for _ in 0..3 {
        p.connection_opened(&profile, limits);
    }
    p.connection_closed();
    assert_eq!(
        p.memory_bytes(&profile),
        profile.base_memory + 2 * profile.memory_per_connection
    );
    p.restart(SimTime::ZERO);
    assert_eq!(p.connections(), 0);
    assert_eq!(p.stats().oom_kills, 0);
    // A close from the other end after the restart does not go below zero.
    p.connection_closed();
    assert_eq!(p.memory_bytes(&profile), profile.base_memory);
}
