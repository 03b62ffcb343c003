//! # NetworkPolicy on the path
//!
//! ## Scope
//! The first packet of a pod-to-pod flow gets the verdict of the active
//! policies on (client pod, server pod, the server's protocol and port)
//! from [`crate::policy_enforcement::Enforcer`] (which knows whether the CNI
//! enforces policy at all). Later packets and replies follow conntrack.
//! Flows from outside the cluster pass (see that module's limitations).
//!
//! ## Parameters
//! The policies, the CNI and the propagation delay
//! ([`crate::policy_enforcement::PolicyConfig`]).
//!
//! ## What it emits
//! [`Drop::PolicyDenied`] with the sentence naming the isolating policies.
//!
//! ## Validation
//! [`crate::netpol`]'s e2e-matrix suite for the verdicts; the cluster run's
//! policy tests and the `default_deny_dns` golden for their place on the path.

use super::{Cx, Drop, Flow, Stage, Trip};
use crate::policy_enforcement::Enforcer;

impl Stage for Enforcer {
    fn first_packet(&mut self, flow: &Flow, trip: &mut Trip, cx: &mut Cx<'_>) -> Result<(), Drop> {
        let (Some(client), Some(pod)) = (flow.client, trip.pod) else {
            return Ok(());
        };
        let (proto, port) = cx.env.server_port(pod);
        match self.check(cx.env.pod_infos(), (client.pod, pod), proto, port) {
            None => Ok(()),
            Some(denial) => Err(Drop::PolicyDenied {
                pod,
                denial: denial.clone(),
            }),
        }
    }
}
