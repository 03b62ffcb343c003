//! # MASQUERADE: the SNAT source port of traffic leaving the node
//!
//! ## Scope
//! A flow that leaves the pod network (the traffic source's `snat`) is
//! source-NATed to its node's address by the MASQUERADE rule; the port is
//! chosen before the entry is confirmed, so two flows to the same
//! destination may pick the same one ([`crate::snat`]: the race, the port
//! range in use, `--random-fully`). This stage records the clash; the
//! confirmation hook ([`super::conntrack::Confirm`]) drops the loser.
//!
//! ## Parameters
//! [`crate::snat::SnatConfig`] (race window and port choice, with sources).
//!
//! ## What it emits
//! [`Trip::port_clash`], which becomes [`super::Drop::InsertFailed`].
//!
//! ## Validation
//! [`crate::snat`]'s tests and the `snat_port_exhaustion` golden.

use super::{Cx, Drop, Flow, Stage, Trip};
use crate::snat::{Snat, EPHEMERAL_PORTS};
use sim_core::SimRng;

/// MASQUERADE on every node.
pub struct Masquerade {
    snat: Snat,
    rng: SimRng,
}

impl Masquerade {
    /// The rule with its allocations in flight `snat`, drawing from `rng`.
    pub fn new(snat: Snat, rng: SimRng) -> Self {
        Masquerade { snat, rng }
    }
}

impl Stage for Masquerade {
    fn first_packet(&mut self, flow: &Flow, trip: &mut Trip, cx: &mut Cx<'_>) -> Result<(), Drop> {
        let (true, Some((node, _)), Some(pod)) = (flow.snat, trip.ct, trip.pod) else {
            return Ok(());
        };
        let live = cx.tables.nodes[node as usize].live(cx.now);
        let in_use = (live as f64 / f64::from(EPHEMERAL_PORTS)).min(1.0);
        trip.port_clash = self.snat.allocate(cx.now, node, pod, in_use, &mut self.rng);
        Ok(())
    }
}
