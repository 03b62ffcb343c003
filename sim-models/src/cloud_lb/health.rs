//! A target's health as a cloud load balancer sees it: the health-check
//! parameters per controller and the state machine one target goes through.
//!
//! A check is sent every `interval`; it passes when the target answers
//! within `timeout` with a code the matcher accepts (a TCP check: when the
//! port accepts the connection). A target becomes healthy after
//! `healthy_threshold` passes in a row (a newly registered target: after
//! [`HealthCheck::initial_passes`]) and unhealthy after
//! `unhealthy_threshold` failures in a row.
//!
//! Defaults (docs/calibration.md, row `lb-health-check-defaults`, from the
//! edge calibration notes, section 3): the ELB target-group
//! defaults for ALB (30 s, 5 s, 5, 2) and NLB (30 s, 10 s TCP, 5, 2); the AWS
//! Load Balancer Controller's for an Ingress (15 s, 5 s, 2, 2) and a Service
//! (10 s, 10 s, 3, 3); GKE Ingress (instance groups 60 s, 60 s, 1, 10; NEG 15 s,
//! 15 s, 1, 2). ALB: "Your target is not in service until it passes one health
//! check" (awsdocs elb-application-load-balancers-user-guide,
//! load-balancer-troubleshooting.md); for the other load balancers a new
//! target needs the healthy threshold (an assumption: their documents say
//! nothing of the first checks).

use sim_core::SimDuration;

/// Health-check parameters of one target group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    /// Time between two checks of one target.
    pub interval: SimDuration,
    /// A check with no answer by then fails.
    pub timeout: SimDuration,
    /// Passes in a row that make an unhealthy target healthy.
    pub healthy_threshold: u32,
    /// Failures in a row that make a healthy target unhealthy.
    pub unhealthy_threshold: u32,
    /// Passes in a row that make a newly registered target healthy.
    pub initial_passes: u32,
}

impl HealthCheck {
    fn of(interval_s: u64, timeout_s: u64, healthy: u32, unhealthy: u32, initial: u32) -> Self {
        HealthCheck {
            interval: SimDuration::from_secs(interval_s),
            timeout: SimDuration::from_secs(timeout_s),
            healthy_threshold: healthy,
            unhealthy_threshold: unhealthy,
            initial_passes: initial,
        }
    }

    /// An ALB target group created with ELB's defaults: 30 s, 5 s, 5, 2;
    /// in service after one passing check.
    pub fn elb_alb() -> Self {
        Self::of(30, 5, 5, 2, 1)
    }

    /// An NLB target group with a TCP check and ELB's defaults: 30 s, 10 s,
    /// 5, 2.
    pub fn elb_nlb_tcp() -> Self {
        Self::of(30, 10, 5, 2, 5)
    }

    /// The AWS Load Balancer Controller's defaults for an Ingress (ALB):
    /// 15 s, 5 s, 2, 2; in service after one passing check (ALB).
    pub fn aws_lbc_ingress() -> Self {
        Self::of(15, 5, 2, 2, 1)
    }

    /// The AWS Load Balancer Controller's defaults for a Service (NLB):
    /// 10 s, 10 s, 3, 3.
    pub fn aws_lbc_service() -> Self {
        Self::of(10, 10, 3, 3, 3)
    }

    /// GKE Ingress with instance-group backends (ingress-gce
    /// `pkg/translator/healthchecks.go`): 60 s, 60 s, 1, 10.
    pub fn gke_instance_group() -> Self {
        Self::of(60, 60, 1, 10, 1)
    }

    /// GKE Ingress with NEG (container-native) backends: 15 s, 15 s, 1, 2.
    pub fn gke_neg() -> Self {
        Self::of(15, 15, 1, 2, 1)
    }

    /// Whether the parameters are ones a cloud accepts: thresholds of at
    /// least 1, a timeout no longer than the interval, a non-zero interval.
    pub fn validate(&self) -> Result<(), String> {
        if self.interval == SimDuration::ZERO {
            return Err("the health-check interval must be above 0".into());
        }
        if self.timeout > self.interval {
            return Err(format!(
                "the health-check timeout ({}) must not exceed the interval ({})",
                self.timeout, self.interval
            ));
        }
        if self.healthy_threshold == 0 || self.unhealthy_threshold == 0 || self.initial_passes == 0
        {
            return Err("health-check thresholds must be at least 1".into());
        }
        Ok(())
    }

    /// The earliest time after registration at which a target that passes
    /// every check is healthy, with the first check `first_after` after
    /// registration: the checks are an interval apart.
    pub fn time_to_healthy(&self, first_after: SimDuration) -> SimDuration {
        first_after
            + self
                .interval
                .saturating_mul(u64::from(self.initial_passes - 1))
    }
}

/// What one check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckResult {
    /// An answer within the timeout that the matcher accepts.
    Pass,
    /// Refused, reset, a code the matcher refuses, or no answer in time.
    Fail,
}

/// Where a target stands, in the words of `describe-target-health`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Registered, not yet passed its first checks: gets no traffic.
    Initial,
    /// In service.
    Healthy,
    /// Failed its checks.
    Unhealthy,
    /// Deregistered: no new requests, in-flight ones may finish until the
    /// deregistration delay ends.
    Draining,
}

impl Health {
    /// The state's name as the AWS API writes it.
    pub fn name(self) -> &'static str {
        match self {
            Health::Initial => "initial",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
            Health::Draining => "draining",
        }
    }
}

/// One target's health and its passes and failures in a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetHealth {
    /// The state.
    pub health: Health,
    /// Passing checks in a row.
    passes: u32,
    /// Failing checks in a row.
    fails: u32,
}

impl TargetHealth {
    /// A target just registered.
    pub fn registered() -> Self {
        TargetHealth {
            health: Health::Initial,
            passes: 0,
            fails: 0,
        }
    }

    /// Counts one check's result; returns the new state when it changed.
    /// A draining target's checks change nothing.
    pub fn record(&mut self, result: CheckResult, hc: &HealthCheck) -> Option<Health> {
        if self.health == Health::Draining {
            return None;
        }
        match result {
            CheckResult::Pass => {
                self.passes += 1;
                self.fails = 0;
            }
            CheckResult::Fail => {
                self.fails += 1;
                self.passes = 0;
            }
        }
        let next = match self.health {
            Health::Initial if self.passes >= hc.initial_passes => Health::Healthy,
            Health::Unhealthy if self.passes >= hc.healthy_threshold => Health::Healthy,
            Health::Initial | Health::Healthy if self.fails >= hc.unhealthy_threshold => {
                Health::Unhealthy
            }
            _ => return None,
        };
        self.health = next;
        self.passes = 0;
        self.fails = 0;
        Some(next)
    }

    /// Starts draining (the target was deregistered).
    pub fn drain(&mut self) {
        self.health = Health::Draining;
        self.passes = 0;
        self.fails = 0;
    }
}
