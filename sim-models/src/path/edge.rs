//! # The edge: a security group in front of the node
//!
//! ## Scope
//! A first packet from outside the cluster addressed to a node's address
//! and NodePort ([`Target::NodePort`]) meets the security group of the
//! node's instance first ([`crate::security_group`]): with no rule for its
//! source and port it is dropped silently ([`Drop::EdgeDenied`]). Other
//! packets pass untouched, as does everything when no security group is
//! modelled.
//!
//! ## Parameters
//! The rules ([`crate::security_group::SecurityGroup`], inputs).
//!
//! ## What it emits
//! [`Drop::EdgeDenied`].
//!
//! ## Validation
//! The security group's unit tests; the `nodeport_exposure` replay.

use super::{Cx, Drop, Flow, Stage, Target, Trip};

/// The security-group check (stateless: the rules live in [`super::Edge`]).
pub struct SecurityGroupStage;

impl Stage for SecurityGroupStage {
    fn first_packet(&mut self, flow: &Flow, _trip: &mut Trip, cx: &mut Cx<'_>) -> Result<(), Drop> {
        let Target::NodePort(np) = flow.to else {
            return Ok(());
        };
        match cx.env.edge().and_then(|e| e.security_group.as_ref()) {
            Some(sg) if !sg.allows(np.source, np.port) => Err(Drop::EdgeDenied { node: np.node }),
            _ => Ok(()),
        }
    }
}
