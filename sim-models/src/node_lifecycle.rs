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
//! ## A zone failure (`zone_down`)
//! When a zone fails its nodes stop at once: the pods there answer nothing
//! more, and their kubelets post no more status. The node lifecycle
//! controller marks a node `Ready=Unknown` ("Kubelet stopped posting node
//! status.", [`UNREACHABLE_MESSAGE`]) once its last status is older than
//! [`NODE_MONITOR_GRACE_PERIOD`], on its next monitoring pass
//! ([`unreachable_delay`]); it then marks the node's pods not Ready (they
//! leave their Services' endpoints) and taints the node
//! `node.kubernetes.io/unreachable` `NoSchedule` at once and `NoExecute`
//! through the zone's eviction rate limiter, [`NODE_EVICTION_RATE`] nodes
//! a second with a burst of one ([`NoExecuteLimiter`]; a fully disrupted
//! zone keeps the healthy rate while some zone is not fully disrupted; when
//! every zone is, evictions stop). The pods tolerate the `NoExecute` taint
//! for [`DEFAULT_TOLERATION`] (the plugin's
//! `--default-unreachable-toleration-seconds`, also 300 s), then they are
//! deleted and replaced wherever the scheduler finds room.
//! Not modelled: a partially disrupted zone's reduced rate
//! (`--secondary-node-eviction-rate`, `--unhealthy-zone-threshold`), the
//! zone coming back.
//!
//! ## Parameters (Kubernetes defaults; conf H: the component's code and
//! reference docs; docs/calibration.md, row `node-lifecycle`)
//! - [`NODE_STATUS_UPDATE_FREQUENCY`]: kubelet `nodeStatusUpdateFrequency`,
//!   10 s (kubelet configuration reference).
//! - [`NODE_MONITOR_PERIOD`]: kube-controller-manager `--node-monitor-period`,
//!   5 s.
//! - [`DEFAULT_TOLERATION`]: the `DefaultTolerationSeconds` admission
//!   plugin's `--default-not-ready-toleration-seconds`, 300 s (and
//!   `--default-unreachable-toleration-seconds`, 300 s).
//! - The grace period, [`NODE_MONITOR_GRACE_PERIOD`]:
//!   kube-controller-manager `--node-monitor-grace-period`, 50 s (40 s
//!   before v1.32) (docs/calibration.md, row `node-unreachable`).
//! - The eviction rate, [`NODE_EVICTION_RATE`]: `--node-eviction-rate`, 0.1
//!   nodes/s (same row).
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
use sim_core::{SimDuration, SimRng, SimTime};

/// kubelet `nodeStatusUpdateFrequency` default.
pub const NODE_STATUS_UPDATE_FREQUENCY: SimDuration = SimDuration::from_secs(10);
/// kube-controller-manager `--node-monitor-period` default.
pub const NODE_MONITOR_PERIOD: SimDuration = SimDuration::from_secs(5);
/// How long pods tolerate the `not-ready:NoExecute` taint by default
/// (`DefaultTolerationSeconds` admission plugin).
pub const DEFAULT_TOLERATION: SimDuration = SimDuration::from_secs(300);

/// kube-controller-manager `--node-monitor-grace-period` default (v1.32+;
/// 40 s before).
pub const NODE_MONITOR_GRACE_PERIOD: SimDuration = SimDuration::from_secs(50);
/// kube-controller-manager `--node-eviction-rate` default \[nodes/s\]: the
/// zone's `NoExecute` tainting rate while it is healthy or fully disrupted.
pub const NODE_EVICTION_RATE: f64 = 0.1;

/// The `Ready=Unknown` condition message of a node whose kubelet went
/// silent (kube-controller-manager's node lifecycle controller).
pub const UNREACHABLE_MESSAGE: &str = "Kubelet stopped posting node status.";

/// Time from a node going silent to the controller marking it
/// `Ready=Unknown`: its last status was posted uniformly within one update
/// period before, the grace period runs from there, and the controller
/// notices on its next monitoring pass.
pub fn unreachable_delay(rng: &mut SimRng) -> SimDuration {
    let age = rng.random_range(0..NODE_STATUS_UPDATE_FREQUENCY.as_nanos());
    let monitor = rng.random_range(0..NODE_MONITOR_PERIOD.as_nanos());
    SimDuration::from_nanos(NODE_MONITOR_GRACE_PERIOD.as_nanos() - age + monitor)
}

/// One zone's `NoExecute` tainting rate limiter: a token bucket of
/// [`NODE_EVICTION_RATE`] with a burst of one, as the controller's
/// `RateLimitedTimedQueue` per zone.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoExecuteLimiter {
    /// The earliest time the next node may be tainted.
    next: SimTime,
}

impl NoExecuteLimiter {
    /// When a node queued at `now` is tainted; the next waits 1/rate more.
    pub fn admit(&mut self, now: SimTime) -> SimTime {
        let at = self.next.max(now);
        self.next = at + SimDuration::from_secs_f64(1.0 / NODE_EVICTION_RATE);
        at
    }
}

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
    fn an_unreachable_node_is_noticed_after_the_grace_period() {
        let mut rng = RngStreams::new(7).stream("node-lifecycle");
        let delays: Vec<f64> = (0..10_000)
            .map(|_| unreachable_delay(&mut rng).as_secs_f64())
            .collect();
        // 50 s less the status age (0..10 s) plus the pass (0..5 s).
        assert!(delays.iter().all(|&d| (40.0..55.0).contains(&d)));
        let mean = delays.iter().sum::<f64>() / delays.len() as f64;
        assert!((mean - 47.5).abs() < 0.1, "mean {mean} s");
    }

    #[test]
    fn a_zone_taints_one_node_every_ten_seconds() {
        let mut l = NoExecuteLimiter::default();
        let t = |s| SimTime::ZERO + SimDuration::from_secs(s);
        // A burst of one, then 1/0.1 s apart.
        assert_eq!(l.admit(t(100)), t(100));
        assert_eq!(l.admit(t(100)), t(110));
        assert_eq!(l.admit(t(101)), t(120));
        // An idle limiter admits at once again.
        assert_eq!(l.admit(t(500)), t(500));
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
