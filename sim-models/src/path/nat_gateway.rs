//! # The NAT gateway hop: egress to addresses outside the VPC
//!
//! ## Scope
//! After the node's MASQUERADE, a flow to an address outside the VPC
//! follows its subnet's route to a NAT gateway ([`crate::nat_gateway`]),
//! which translates it to one of its public addresses and a source port,
//! or drops it (no route, the gateway down, no port left). This stage
//! acts on flows with `snat` addressed to a Service that stands for an
//! external destination ([`NatStage::new`]'s `by_service`); the client
//! pod's zone is its node's.
//!
//! ## Parameters
//! [`crate::nat_gateway::NatGatewayConfig`] (limits, idle timeout, prices,
//! with sources).
//!
//! ## What it emits
//! [`Trip::nat`], the connection's handle at the gateway, or
//! [`Drop::NatGateway`].
//!
//! ## Validation
//! [`crate::nat_gateway`]'s unit tests; the cluster run's conservation
//! property and the `nat_gateway_spof` golden.

use super::{Cx, Drop, Flow, Stage, Trip};
use crate::nat_gateway::NatGateways;

/// The gateways and what the path needs to send flows to them.
pub struct NatStage {
    /// The gateways' state.
    pub gateways: NatGateways,
    /// Per node: its zone's index in the gateways' route tables.
    node_zone: Vec<u32>,
    /// Per Service: the external destination it stands for (index at the
    /// gateways), if any.
    by_service: Vec<Option<u32>>,
}

impl NatStage {
    /// `gateways`, with each node's zone index and each Service's external
    /// destination.
    pub fn new(gateways: NatGateways, node_zone: Vec<u32>, by_service: Vec<Option<u32>>) -> Self {
        NatStage {
            gateways,
            node_zone,
            by_service,
        }
    }

    /// The external destination Service `s` stands for.
    pub fn destination_of(&self, s: u32) -> Option<u32> {
        self.by_service.get(s as usize).copied().flatten()
    }
}

impl Stage for NatStage {
    fn first_packet(&mut self, flow: &Flow, trip: &mut Trip, cx: &mut Cx<'_>) -> Result<(), Drop> {
        let (true, Some(client), Some(s)) = (flow.snat, flow.client, trip.service) else {
            return Ok(());
        };
        let (Some(node), Some(dest)) = (client.node, self.destination_of(s)) else {
            return Ok(());
        };
        let zone = self.node_zone[node as usize];
        match self.gateways.open(zone, dest, cx.now) {
            Ok(conn) => {
                trip.nat = Some(conn);
                Ok(())
            }
            Err(drop) => Err(Drop::NatGateway(drop)),
        }
    }
}
