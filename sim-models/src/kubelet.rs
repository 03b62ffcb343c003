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
//! ## What it emits
//! The event message an operator reads in `kubectl describe pod`.
//!
//! ## Validation
//! A unit test pins the backoff schedule.

use sim_core::SimDuration;

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
}
