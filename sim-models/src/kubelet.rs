//! # kubelet: pod sandbox creation and its retry backoff
//!
//! ## Scope
//! When a pod is bound to a node, the kubelet asks the container runtime for
//! a sandbox, and the runtime asks the CNI plugin for the pod's network. If
//! IPAM has no address, sandbox creation fails, the kubelet records
//! `FailedCreatePodSandBox` and retries the pod's sync with exponential
//! backoff: 10 s doubling to at most 5 min (kubelet `backOffPeriod` and
//! `MaxContainerBackOff`, pkg/kubelet/kubelet.go; the same constants give
//! CrashLoopBackOff its 10 s .. 5 min schedule; docs/calibration.md, row
//! `kubelet-backoff`). The pod keeps its node and stays `ContainerCreating`
//! until a retry finds an address.
//!
//! A container that exits is restarted on the same schedule
//! ([`CrashLoop`]): at once after its first exit (the back-off entry does
//! not exist yet), then after 10 s, 20 s, ... 5 min, the kubelet reporting
//! `BackOff` ("Back-off restarting failed container") while it waits; an
//! exit more than 10 min (2 x 5 min) after the last restart starts afresh
//! (`kuberuntime_manager.go` `doBackOff`, client-go `flowcontrol.Backoff`
//! `IsInBackOffSince`, `Next`, `hasExpired`).
//!
//! ## What it emits
//! The event messages an operator reads in `kubectl describe pod`.
//!
//! ## Validation
//! Unit tests pin the backoff schedule and the crash-loop restarts.

use sim_core::{SimDuration, SimTime};

/// First retry delay after a failed sandbox creation.
pub const BACKOFF_INITIAL: SimDuration = SimDuration::from_secs(10);
/// Longest retry delay.
pub const BACKOFF_MAX: SimDuration = SimDuration::from_secs(300);

/// The delay after `previous` (zero for the first failure).
pub fn next_backoff(previous: SimDuration) -> SimDuration {
    if previous == SimDuration::ZERO {
        BACKOFF_INITIAL
    } else {
        previous.saturating_mul(2).min(BACKOFF_MAX)
    }
}

/// One container's CrashLoopBackOff state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrashLoop {
    backoff: SimDuration,
    updated: Option<SimTime>,
    restarts: u32,
}

impl CrashLoop {
    /// The container exited at `now`: the delay before the kubelet starts
    /// it again (zero: at once; more: it is in `CrashLoopBackOff` meanwhile).
    pub fn exited(&mut self, now: SimTime) -> SimDuration {
        self.restarts += 1;
        let fresh = self
            .updated
            .is_none_or(|t| now.saturating_since(t) > BACKOFF_MAX.saturating_mul(2));
        let delay = if fresh {
            self.backoff = BACKOFF_INITIAL;
            SimDuration::ZERO
        } else {
            let d = self.backoff;
            self.backoff = next_backoff(self.backoff);
            d
        };
        self.updated = Some(now + delay);
        delay
    }

    /// Restarts so far (`kubectl get pods` RESTARTS).
    pub fn restarts(&self) -> u32 {
        self.restarts
    }
}

/// The `BackOff` event text for `container` of pod `pod` in `namespace`
/// (kubelet's `format.Pod` adds the pod's UID, left out here).
pub fn backoff_message(container: &str, pod: &str, namespace: &str) -> String {
    format!("Back-off restarting failed container {container} in pod {pod}_{namespace}")
}

/// The `FailedCreatePodSandBox` event text for a CNI error.
pub fn sandbox_failure_message(cni_error: &str) -> String {
    format!("Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for sandbox: {cni_error}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_10s_to_5min() {
        let mut d = SimDuration::ZERO;
        let mut got = Vec::new();
        for _ in 0..7 {
            d = next_backoff(d);
            got.push(d.as_nanos() / 1_000_000_000);
        }
        assert_eq!(got, [10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn a_crash_loop_restarts_at_once_then_backs_off_and_forgets_after_ten_minutes() {
        let mut c = CrashLoop::default();
        let mut now = SimTime::ZERO;
        let mut got = Vec::new();
        for _ in 0..8 {
            let d = c.exited(now);
            got.push(d.as_nanos() / 1_000_000_000);
            now = now + d + SimDuration::from_secs(1);
        }
        assert_eq!(got, [0, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(c.restarts(), 8);
        // Ten minutes and more after the last restart: at once again.
        let later = now + SimDuration::from_secs(601);
        assert_eq!(c.exited(later), SimDuration::ZERO);
        assert_eq!(c.exited(later + SimDuration::from_secs(1)), BACKOFF_INITIAL);
    }
}
