//! # Node lifecycle: a node's network readiness, the not-ready taint and taint-based eviction
//!
//! ## Scope
//! What happens to a node, and to the pods on it, when its CNI daemon
//! (calico-node, cilium-agent, kube-flannel, aws-node) stops running:
//! 1. At once, the node's CNI plugin can no longer set up pod networks: every
//!    sandbox the kubelet tries to create there fails with
//!    `cni plugin not initialized` ([`CNI_NOT_INITIALIZED`]), and the kubelet
//!    retries with its backoff ([`crate::kubelet`]).
//! 2. The kubelet notices on its next runtime status check and reports the
//!    node `Ready=False` with the runtime's message ([`not_ready_message`]) on
//!    its next status update; the node lifecycle controller sees it on its
//!    next monitoring pass and taints the node `node.kubernetes.io/not-ready`
//!    with effects `NoSchedule` (the scheduler stops placing pods there) and
//!    `NoExecute`. The delay from the crash to the taint is drawn uniformly
//!    within one status-update period plus one monitor period
//!    ([`taint_delay`]).
//! 3. Pods carry the default toleration for the `NoExecute` taint for
//!    [`DEFAULT_TOLERATION`] (300 s); when it runs out the taint eviction
//!    controller deletes them, and their controllers create replacements,
//!    which the scheduler can place only on nodes without the taint.
//! 4. When the daemon runs again, the node reports `Ready` on its next status
//!    update, the controller removes the taint on its next pass (the same
//!    delay model), pending evictions are cancelled, and the kubelet's next
//!    retry of a failed sandbox succeeds.
//!
//! Limitations: the data path of pods already running on the node keeps
//! working while the daemon is down (the routes, iptables rules or eBPF
//! programs it installed stay in the kernel, as with Calico and Cilium);
//! changes it should have made in the meantime (routes to new pods, policy
//! updates) are not modelled. Graceful termination is not modelled: an
//! evicted pod leaves the Service's endpoints and frees its address at once.
//! DaemonSet pods, which tolerate the taint, are not modelled.
//!
//! ## Parameters (Kubernetes defaults; conf H: the component's code and
//! reference docs; docs/calibration.md, row `node-lifecycle`)
//! - [`NODE_STATUS_UPDATE_FREQUENCY`]: kubelet `nodeStatusUpdateFrequency`,
//!   10 s (kubelet configuration reference).
//! - [`NODE_MONITOR_PERIOD`]: kube-controller-manager `--node-monitor-period`,
//!   5 s.
//! - [`DEFAULT_TOLERATION`]: the `DefaultTolerationSeconds` admission
//!   plugin's `--default-not-ready-toleration-seconds`, 300 s.
//!
//! ## What it emits
//! The delays, and the texts an operator reads: the node condition message in
//! `kubectl describe node`, the CNI error in the pod's
//! `FailedCreatePodSandBox` event, the eviction event.
//!
//! ## Validation
//! Unit tests pin the delays' bounds and the texts; the cluster run's tests
//! and the `cni_not_initialized` replay exercise the whole sequence.

use rand::RngExt;
use sim_core::{SimDuration, SimRng};

/// kubelet `nodeStatusUpdateFrequency` default.
pub const NODE_STATUS_UPDATE_FREQUENCY: SimDuration = SimDuration::from_secs(10);
/// kube-controller-manager `--node-monitor-period` default.
pub const NODE_MONITOR_PERIOD: SimDuration = SimDuration::from_secs(5);
/// How long pods tolerate the `not-ready:NoExecute` taint by default
/// (`DefaultTolerationSeconds` admission plugin).
pub const DEFAULT_TOLERATION: SimDuration = SimDuration::from_secs(300);

/// The CNI error a sandbox creation gets while the node's CNI daemon is down
/// (containerd's message when no CNI network is loaded).
pub const CNI_NOT_INITIALIZED: &str = "cni plugin not initialized";

/// The node's `Ready=False` condition message, as `kubectl describe node`
/// shows it.
pub fn not_ready_message() -> String {
    format!(
        "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady \
         message:Network plugin returns error: {CNI_NOT_INITIALIZED}"
    )
}

/// The taint eviction controller's event message for one pod.
pub fn eviction_message(namespace: &str, pod: &str) -> String {
    format!("Marking for deletion Pod {namespace}/{pod}")
}

/// Time from a change of the node's network readiness to the matching taint
/// change: the wait for the kubelet's next status update plus the wait for
/// the controller's next monitoring pass, each uniform over its period.
pub fn taint_delay(rng: &mut SimRng) -> SimDuration {
    let status = rng.random_range(0..NODE_STATUS_UPDATE_FREQUENCY.as_nanos());
    let monitor = rng.random_range(0..NODE_MONITOR_PERIOD.as_nanos());
    SimDuration::from_nanos(status + monitor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sim_core::RngStreams;

    #[test]
    fn taint_follows_within_one_status_update_and_one_monitor_pass() {
        let mut rng = RngStreams::new(7).stream("node-lifecycle");
        let delays: Vec<u64> = (0..10_000)
            .map(|_| taint_delay(&mut rng).as_nanos())
            .collect();
        let max = (NODE_STATUS_UPDATE_FREQUENCY + NODE_MONITOR_PERIOD).as_nanos();
        assert!(delays.iter().all(|&d| d < max));
        let mean = delays.iter().sum::<u64>() as f64 / delays.len() as f64 / 1e9;
        // Two uniform waits: 5 s + 2.5 s on average.
        assert!((mean - 7.5).abs() < 0.1, "mean {mean} s");
    }

    #[test]
    fn texts_are_what_kubectl_shows() {
        assert_eq!(
            not_ready_message(),
            "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady \
             message:Network plugin returns error: cni plugin not initialized"
        );
        assert_eq!(
            eviction_message("default", "web-0"),
            "Marking for deletion Pod default/web-0"
        );
    }
}
