//! # hpa: the HorizontalPodAutoscaler on CPU utilization
//!
//! ## Scope
//! One HorizontalPodAutoscaler (`autoscaling/v2`) with a single CPU
//! utilization target and the default `behavior`, as the controller
//! manager's `horizontal.go` and `replica_calculator.go` compute it: every
//! sync period the controller reads the pods' CPU use over the last period
//! as a share of their request, and
//! - recommends `ceil(ready pods x utilization / target)`, or the current
//!   count when `utilization / target` is within the 0.1 tolerance;
//! - clamps it to `min_replicas..=max_replicas`;
//! - stabilizes it: a scale-down only goes as low as the highest
//!   recommendation of the last 300 s (scale-up: no window);
//! - limits the rate: up by at most `max(100%, 4 pods)` per 15 s, down by at
//!   most 100% per 15 s (the default policies).
//!
//! Limitations: the average is over Ready pods only (the controller also
//! assumes 0% for unready pods when scaling up and 100% for pods without
//! metrics when scaling down); no CPU initialization period; metrics are
//! exact (metrics-server's scrape delay is not modelled); one metric.
//!
//! ## Parameters
//! [`HpaSpec`]: `min_replicas` (default 1), `max_replicas` and the target
//! utilization are the object's fields; the rest are the controller's
//! defaults (Kubernetes documentation "Horizontal Pod Autoscaling"):
//! `--horizontal-pod-autoscaler-sync-period` 15 s, tolerance 0.1,
//! `scaleDown.stabilizationWindowSeconds` 300, scale-up policies
//! `{Percent: 100, Pods: 4, periodSeconds: 15}` with `selectPolicy: Max`,
//! scale-down `{Percent: 100, periodSeconds: 15}` (docs/calibration.md, row
//! `hpa-defaults`).
//!
//! ## What it emits
//! [`Hpa::recommend`] returns the replica count to set at this sync, with
//! the reason the controller's `SuccessfulRescale` event gives.
//!
//! ## Validation
//! Unit tests: the tolerance band; the ceil formula; the clamp; the
//! 300 s scale-down stabilization (a dip shorter than the window changes
//! nothing, a longer one scales down at its end, a controller in steady
//! state at the start waits the window from there); the scale-up rate limit.

use sim_core::{SimDuration, SimTime};
use std::collections::VecDeque;

/// `--horizontal-pod-autoscaler-sync-period`.
pub const SYNC_PERIOD: SimDuration = SimDuration::from_secs(15);
/// `--horizontal-pod-autoscaler-tolerance`.
pub const TOLERANCE: f64 = 0.1;
/// Default `behavior.scaleDown.stabilizationWindowSeconds`.
pub const SCALE_DOWN_STABILIZATION: SimDuration = SimDuration::from_secs(300);
/// Default scale-up policy: at least this many pods per period may be added.
pub const SCALE_UP_PODS: u32 = 4;

/// One HorizontalPodAutoscaler's spec.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HpaSpec {
    /// `minReplicas`.
    pub min_replicas: u32,
    /// `maxReplicas`.
    pub max_replicas: u32,
    /// `target.averageUtilization` of the CPU resource, as a share of the
    /// request (0.7 for 70%).
    pub target_utilization: f64,
}

/// Why the replica count changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rescale {
    /// Utilization above target.
    Up,
    /// Every metric below target.
    Down,
}

impl Rescale {
    /// The reason in the controller's `SuccessfulRescale` event.
    pub fn reason(self) -> &'static str {
        match self {
            Rescale::Up => "cpu resource utilization (percentage of request) above target",
            Rescale::Down => "All metrics below target",
        }
    }
}

/// The controller's state for one HorizontalPodAutoscaler.
#[derive(Clone, Debug)]
pub struct Hpa {
    spec: HpaSpec,
    /// Recommendations of the last stabilization window, oldest first.
    recommendations: VecDeque<(SimTime, u32)>,
}

impl Hpa {
    /// A controller for `spec`.
    pub fn new(spec: HpaSpec) -> Self {
        Hpa {
            spec,
            recommendations: VecDeque::new(),
        }
    }

    /// A controller that has been recommending `replicas` until `now`, as
    /// one that ran before a run starting in steady state: a scale-down
    /// waits for the stabilization window from `now`.
    pub fn steady(spec: HpaSpec, now: SimTime, replicas: u32) -> Self {
        Hpa {
            spec,
            recommendations: VecDeque::from([(now, replicas)]),
        }
    }

    /// The spec.
    pub fn spec(&self) -> &HpaSpec {
        &self.spec
    }

    /// One sync at `now`: `current` replicas (the scale target's spec),
    /// `ready` of them Ready with metrics, averaging `utilization` of their
    /// CPU request over the last period. Returns the new count and why, if
    /// it changes.
    pub fn recommend(
        &mut self,
        now: SimTime,
        current: u32,
        ready: u32,
        utilization: f64,
    ) -> Option<(u32, Rescale)> {
        let s = self.spec;
        let ratio = utilization / s.target_utilization;
        let raw = if ready == 0 || (ratio - 1.0).abs() <= TOLERANCE {
            current
        } else {
            let want = (f64::from(ready) * ratio).ceil();
            if want >= f64::from(u32::MAX) {
                u32::MAX
            } else {
                want as u32
            }
        };
        let recommended = raw.clamp(s.min_replicas, s.max_replicas.max(s.min_replicas));
        while self
            .recommendations
            .front()
            .is_some_and(|&(t, _)| now - t >= SCALE_DOWN_STABILIZATION)
        {
            self.recommendations.pop_front();
        }
        self.recommendations.push_back((now, recommended));
        // Scale-down: no lower than any recommendation in the window;
        // scale-up: no window.
        let floor = self
            .recommendations
            .iter()
            .map(|&(_, r)| r)
            .max()
            .unwrap_or(recommended);
        let stabilized = if recommended > current {
            recommended
        } else {
            floor.min(current)
        };
        let limited = if stabilized > current {
            stabilized.min(current.saturating_mul(2).max(current + SCALE_UP_PODS))
        } else {
            stabilized
        };
        match limited.cmp(&current) {
            std::cmp::Ordering::Greater => Some((limited, Rescale::Up)),
            std::cmp::Ordering::Less => Some((limited, Rescale::Down)),
            std::cmp::Ordering::Equal => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> SimTime {
        SimTime::ZERO + SimDuration::from_secs(s)
    }

    fn hpa(min: u32, max: u32) -> Hpa {
        Hpa::new(HpaSpec {
            min_replicas: min,
            max_replicas: max,
            target_utilization: 0.7,
        })
    }

    #[test]
    fn within_the_tolerance_nothing_changes() {
        let mut h = hpa(1, 10);
        assert_eq!(h.recommend(at(15), 4, 4, 0.7 * 1.09), None);
        assert_eq!(h.recommend(at(30), 4, 4, 0.7 * 0.91), None);
        assert_eq!(
            h.recommend(at(45), 4, 4, 0.7 * 1.11),
            Some((5, Rescale::Up))
        );
    }

    #[test]
    fn scale_up_is_ceil_of_ready_times_ratio_within_the_rate_limit() {
        let mut h = hpa(1, 100);
        // 3 pods at 100% of request against 70%: ceil(3 x 1.43) = 5.
        assert_eq!(h.recommend(at(15), 3, 3, 1.0), Some((5, Rescale::Up)));
        // 2 pods at 700%: ceil(20) = 20, limited to max(2 x 2, 2 + 4) = 6.
        assert_eq!(h.recommend(at(30), 2, 2, 7.0), Some((6, Rescale::Up)));
        // 10 pods at 700%: limited to 20 (100%).
        assert_eq!(h.recommend(at(45), 10, 10, 7.0), Some((20, Rescale::Up)));
        // Clamped to maxReplicas.
        let mut h = hpa(1, 8);
        assert_eq!(h.recommend(at(15), 6, 6, 7.0), Some((8, Rescale::Up)));
    }

    #[test]
    fn scale_down_waits_for_the_stabilization_window() {
        let mut h = hpa(2, 10);
        // Busy until T+60s (recommendation 3), idle after.
        for s in (15..=60).step_by(15) {
            assert_eq!(h.recommend(at(s), 3, 3, 0.7), None);
        }
        for s in (75..360).step_by(15) {
            assert_eq!(h.recommend(at(s), 3, 3, 0.01), None, "at {s} s");
        }
        // 300 s after the last recommendation of 3: down to minReplicas.
        assert_eq!(h.recommend(at(360), 3, 3, 0.01), Some((2, Rescale::Down)));
        assert_eq!(Rescale::Down.reason(), "All metrics below target");
    }

    #[test]
    fn a_controller_in_steady_state_waits_the_window_from_the_start() {
        let spec = *hpa(2, 10).spec();
        let mut fresh = Hpa::new(spec);
        assert_eq!(
            fresh.recommend(at(15), 3, 3, 0.01),
            Some((2, Rescale::Down))
        );
        let mut steady = Hpa::steady(spec, at(0), 3);
        for s in (15..300).step_by(15) {
            assert_eq!(steady.recommend(at(s), 3, 3, 0.01), None, "at {s} s");
        }
        assert_eq!(
            steady.recommend(at(300), 3, 3, 0.01),
            Some((2, Rescale::Down))
        );
    }

    #[test]
    fn no_ready_pods_keep_the_count_and_min_replicas_holds() {
        let mut h = hpa(2, 10);
        assert_eq!(h.recommend(at(15), 3, 0, 0.0), None);
        let mut h = hpa(3, 10);
        assert_eq!(h.recommend(at(15), 1, 1, 0.0), Some((3, Rescale::Up)));
    }
}
