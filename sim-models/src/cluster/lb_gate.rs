//! # Pod readiness gates tied to target health
//!
//! ## Scope
//! The AWS Load Balancer Controller's pod readiness gate
//! (`target-health.elbv2.k8s.aws`, injected by its webhook in namespaces
//! labelled `elbv2.k8s.aws/pod-readiness-gate-inject: enabled`; `ip`
//! targets only): "The condition status on a pod will be set to `True`
//! only when the corresponding target in the ALB/NLB target group shows a
//! health state of »Healthy«". With [`crate::cloud_lb::LbEntry::readiness_gate`]
//! a pod whose readiness probe passed stays Running, not Ready (no endpoint
//! of its Services), until its target in every gated group is healthy; it
//! is then Ready at the check that made the target healthy. While it
//! waits its application serves: a readiness-path health check passes and
//! a request the load balancer sends it (fail-open) is answered.
//!
//! What the gate is for: a rolling update waits for new pods to be Ready
//! before it removes old ones, so with the gate it cannot outrun the target
//! group. The cluster run has no rolling update (its timeline scales), so
//! here the gate only delays a pod's Ready by its target's health checks.
//!
//! Not modelled: the controller's delay in setting the condition; the
//! condition going back to False when a Ready pod's target turns unhealthy
//! (the model sets it once); the webhook's failure policy.
//!
//! ## Parameters
//! None of its own: the target group's health check (docs/calibration.md,
//! rows `lb-health-check-defaults` and `lb-readiness-gate`).
//!
//! ## What it emits
//! Pods Ready later, through the same path as a passed readiness probe.
//!
//! ## Validation
//! `lb_tests.rs`: `lb_readiness_gate_holds_ready_until_the_target_is_healthy`.

use super::*;
use crate::cloud_lb::Health;

impl Sim<'_> {
    /// Pod `p` passed its readiness probe: whether a readiness gate holds
    /// it (a gated target of it is not healthy yet; the target then waits).
    pub(crate) fn lb_gate_holds(&mut self, p: u32) -> bool {
        let mut held = false;
        for i in 0..self.lbs.list.len() {
            if !self.lbs.list[i].entry.readiness_gate {
                continue;
            }
            let Some(id) = self.lbs.target(i, p) else {
                continue;
            };
            let lb = &mut self.lbs.list[i];
            if lb.group.health(id) != Health::Healthy {
                lb.waiting[id as usize] = true;
                held = true;
            }
        }
        held
    }

    /// A gated target of pod `p` became healthy: Ready, unless another
    /// gate still holds it.
    pub(crate) fn lb_gate_released(&mut self, p: u32) {
        let open = (0..self.lbs.list.len()).all(|i| {
            let lb = &self.lbs.list[i];
            !lb.entry.readiness_gate
                || self
                    .lbs
                    .target(i, p)
                    .is_none_or(|id| !lb.waiting[id as usize])
        });
        if open && self.pod_live_in(p, PodState::Running) && !self.pod_unreachable(p) {
            self.pod_ready(p);
        }
    }
}
