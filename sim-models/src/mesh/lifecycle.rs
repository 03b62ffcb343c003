//! # Sidecar start-up: the proxy's readiness against the app container
//!
//! ## Scope
//! A pod with an injected sidecar runs two containers that share its
//! network: the proxy (Istio's `istio-proxy`) and the application. The
//! init container's iptables rules redirect every outbound connection to
//! the proxy's port 15001 from the start, but Envoy listens there only once
//! it has its first configuration from the control plane; until then a
//! connection the app opens is refused. Whether the app meets that window
//! depends on how the kubelet orders the two containers ([`StartOrder`]):
//! - [`StartOrder::Concurrent`]: both are ordinary containers; the kubelet
//!   starts them one after the other without waiting for either to be ready,
//!   so the app starts with the proxy. An app that dials its dependencies at
//!   start before the proxy listens is refused; if it exits on that, its
//!   container restarts with CrashLoopBackOff ([`crate::kubelet::CrashLoop`]);
//! - [`StartOrder::HoldApplication`]: Istio's `holdApplicationUntilProxyStarts`
//!   puts the proxy first with a `postStart` hook, `pilot-agent wait`,
//!   which polls `http://localhost:15021/healthz/ready` every 500 ms for at
//!   most 60 s; the kubelet starts the next container only when the hook
//!   returns. A hook that times out fails the proxy container
//!   (`FailedPostStartHook`), which the kubelet kills and restarts;
//! - [`StartOrder::NativeSidecar`]: Kubernetes 1.28+ sidecar containers (an
//!   init container with `restartPolicy: Always`, Istio's
//!   `ENABLE_NATIVE_SIDECARS`): the kubelet starts the app once the proxy's
//!   startup probe has passed.
//!
//! The pod is Ready when both containers are: the proxy when its probe
//! passes ([`ProxyProbe`]), the app after its own readiness.
//!
//! ## Parameters
//! - The proxy's time to listen (Envoy's start plus its first xDS push
//!   from istiod): no published figure; drawn per proxy start uniformly
//!   between the scenario's bounds, an **assumption**
//!   (docs/calibration.md, row `istio-proxy-start`).
//! - The proxy's probe on `:15021/healthz/ready`: since Istio 1.20 a
//!   startup probe every 1 s (failure threshold 600: 10 min), before it a
//!   readiness probe after 1 s every 2 s.
//! - `pilot-agent wait`: every 500 ms, 60 s timeout.
//! - Native sidecars: the next container starts once the sidecar's startup
//!   probe passed.
//!
//! (docs/calibration.md, rows `istio-proxy-probes`, `istio-hold-application`
//! and `native-sidecar-start`.)
//!
//! ## What it emits
//! Offsets from the proxy container's start: when the app container starts
//! ([`app_start`]), when the kubelet sees the proxy ready
//! ([`ProxyProbe::passes_at`]), whether a dial is refused ([`dial_refused`]).
//! The cluster run turns them into events, restarts and Ready pods.
//!
//! ## Validation
//! Unit tests: the ordering of each start order, the probe's ticks, the
//! hook's poll and timeout.

use sim_core::SimDuration;

/// How the kubelet orders the proxy and the app container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartOrder {
    /// Ordinary containers, started together.
    Concurrent,
    /// `holdApplicationUntilProxyStarts: true`: the proxy's `postStart`
    /// hook holds the app until the proxy is ready.
    HoldApplication,
    /// A native sidecar: the app starts once the proxy's startup probe passed.
    NativeSidecar,
}

/// How the sidecars of a run start (`mesh.lifecycle`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LifecycleSpec {
    /// The proxy and the app container's order.
    pub order: StartOrder,
    /// The kubelet's probe of the proxy.
    pub probe: ProxyProbe,
    /// The shortest time from the proxy container's start to Envoy
    /// listening with its first configuration (an assumption).
    pub listen_min: SimDuration,
    /// The longest (each start draws uniformly between the two).
    pub listen_max: SimDuration,
}

/// The kubelet's probe of the proxy (`httpGet :15021/healthz/ready`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProxyProbe {
    /// `initialDelaySeconds`.
    pub initial_delay: SimDuration,
    /// `periodSeconds`.
    pub period: SimDuration,
}

/// Istio 1.20+: the sidecar's startup probe (every 1 s from the start,
/// 600 failures allowed).
pub const ISTIO_STARTUP_PROBE: ProxyProbe = ProxyProbe {
    initial_delay: SimDuration::ZERO,
    period: SimDuration::from_secs(1),
};

/// Istio before 1.20 (or the startup probe disabled): the readiness probe
/// after 1 s, every 2 s.
pub const ISTIO_LEGACY_READINESS_PROBE: ProxyProbe = ProxyProbe {
    initial_delay: SimDuration::from_secs(1),
    period: SimDuration::from_secs(2),
};

/// `pilot-agent wait --periodMillis` default.
pub const HOLD_POLL_PERIOD: SimDuration = SimDuration::from_millis(500);
/// `pilot-agent wait --timeoutSeconds` default.
pub const HOLD_TIMEOUT: SimDuration = SimDuration::from_secs(60);

impl ProxyProbe {
    /// The first probe at or after `ready` (both from the container's
    /// start): when the kubelet marks the proxy ready.
    pub fn passes_at(self, ready: SimDuration) -> SimDuration {
        first_tick_at_or_after(self.initial_delay, self.period, ready)
    }
}

/// The first of `first, first + period, ...` at or after `at`.
fn first_tick_at_or_after(first: SimDuration, period: SimDuration, at: SimDuration) -> SimDuration {
    if at <= first || period == SimDuration::ZERO {
        return first.max(at);
    }
    let p = period.as_nanos();
    let k = (at.as_nanos() - first.as_nanos()).div_ceil(p);
    SimDuration::from_nanos(first.as_nanos() + k * p)
}

/// The `postStart` hook gave up: the proxy was not ready within
/// [`HOLD_TIMEOUT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HookTimedOut;

/// When the app container starts, from the proxy container's start, for a
/// proxy that listens `ready` after its start.
pub fn app_start(
    order: StartOrder,
    probe: ProxyProbe,
    ready: SimDuration,
) -> Result<SimDuration, HookTimedOut> {
    match order {
        StartOrder::Concurrent => Ok(SimDuration::ZERO),
        StartOrder::HoldApplication => {
            let at = first_tick_at_or_after(HOLD_POLL_PERIOD, HOLD_POLL_PERIOD, ready);
            if at > HOLD_TIMEOUT {
                Err(HookTimedOut)
            } else {
                Ok(at)
            }
        }
        StartOrder::NativeSidecar => Ok(probe.passes_at(ready)),
    }
}

/// Whether a connection the app opens `at` after the proxy's start is
/// refused: iptables sends it to port 15001, where nothing listens yet.
pub fn dial_refused(at: SimDuration, ready: SimDuration) -> bool {
    at < ready
}

/// The message a client sees when its sidecar is not listening (what the
/// app logs before it exits).
pub const REFUSED_MESSAGE: &str = "connect: connection refused";

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: u64) -> SimDuration {
        SimDuration::from_secs(x)
    }
    fn ms(x: u64) -> SimDuration {
        SimDuration::from_millis(x)
    }

    #[test]
    fn concurrent_start_refuses_an_early_dial_and_passes_a_late_one() {
        let ready = ms(2_300);
        let start = app_start(StartOrder::Concurrent, ISTIO_STARTUP_PROBE, ready).unwrap();
        assert_eq!(start, SimDuration::ZERO);
        assert!(dial_refused(start + s(1), ready));
        assert!(!dial_refused(start + s(3), ready));
    }

    #[test]
    fn hold_starts_the_app_at_the_first_poll_after_the_proxy_listens() {
        // Polls at 0.5 s, 1 s, 1.5 s, ...: a proxy ready at 2.3 s is seen at 2.5 s.
        let start = app_start(StartOrder::HoldApplication, ISTIO_STARTUP_PROBE, ms(2_300));
        assert_eq!(start, Ok(ms(2_500)));
        // Ready on a poll: that poll.
        let on_tick = app_start(StartOrder::HoldApplication, ISTIO_STARTUP_PROBE, ms(1_000));
        assert_eq!(on_tick, Ok(ms(1_000)));
        // No dial the app makes from its start can be refused.
        for r in [1u64, 499, 500, 2_300, 59_999] {
            let at = app_start(StartOrder::HoldApplication, ISTIO_STARTUP_PROBE, ms(r)).unwrap();
            assert!(!dial_refused(at, ms(r)), "ready {r} ms");
        }
    }

    #[test]
    fn hold_times_out_after_sixty_seconds() {
        assert_eq!(
            app_start(StartOrder::HoldApplication, ISTIO_STARTUP_PROBE, s(60)),
            Ok(s(60))
        );
        assert_eq!(
            app_start(StartOrder::HoldApplication, ISTIO_STARTUP_PROBE, ms(60_001)),
            Err(HookTimedOut)
        );
    }

    #[test]
    fn native_sidecar_starts_the_app_when_the_startup_probe_passes() {
        let at = app_start(StartOrder::NativeSidecar, ISTIO_STARTUP_PROBE, ms(2_300)).unwrap();
        assert_eq!(at, s(3));
        assert!(!dial_refused(at, ms(2_300)));
        // With the legacy probe (1 s, then every 2 s): 1, 3, 5 s.
        let legacy = app_start(
            StartOrder::NativeSidecar,
            ISTIO_LEGACY_READINESS_PROBE,
            ms(3_100),
        );
        assert_eq!(legacy, Ok(s(5)));
    }

    #[test]
    fn probes_tick_from_their_initial_delay() {
        assert_eq!(
            ISTIO_STARTUP_PROBE.passes_at(SimDuration::ZERO),
            SimDuration::ZERO
        );
        assert_eq!(ISTIO_STARTUP_PROBE.passes_at(ms(1)), s(1));
        assert_eq!(ISTIO_LEGACY_READINESS_PROBE.passes_at(ms(200)), s(1));
        assert_eq!(ISTIO_LEGACY_READINESS_PROBE.passes_at(s(1)), s(1));
        assert_eq!(ISTIO_LEGACY_READINESS_PROBE.passes_at(ms(1_001)), s(3));
    }

    #[test]
    fn the_orders_rank_by_how_late_the_app_starts() {
        // The fixes trade the refused dials for a later app start.
        for r in [ms(300), ms(1_700), s(7)] {
            let c = app_start(StartOrder::Concurrent, ISTIO_STARTUP_PROBE, r).unwrap();
            let h = app_start(StartOrder::HoldApplication, ISTIO_STARTUP_PROBE, r).unwrap();
            let n = app_start(StartOrder::NativeSidecar, ISTIO_STARTUP_PROBE, r).unwrap();
            assert!(c < r && h >= r && n >= r);
        }
    }
}
