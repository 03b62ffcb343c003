//! # conntrack on the path: a new entry for the first packet, confirmed last
//!
//! ## Scope
//! The client node's table ([`crate::conntrack::Table`]) sees a new flow
//! twice, as the kernel does: `nf_conntrack_in` creates an unconfirmed
//! entry when the first packet enters (dropping the packet when the table is
//! full and early drop finds nothing to evict), and `__nf_conntrack_confirm`
//! inserts it once the packet leaves the last hook, where a clash with an
//! entry another CPU confirmed first is `insert_failed`. Flows from clients
//! outside the cluster, from pods without a node, or through a data path that
//! keeps no entries for pod flows (eBPF, [`crate::conntrack::DataPath`]) pass.
//!
//! ## Parameters
//! The table's size and timeouts ([`crate::conntrack`]).
//!
//! ## What it emits
//! [`Trip::ct`]; [`Drop::ConntrackFull`] and [`Drop::InsertFailed`].
//!
//! ## Validation
//! The cluster run's conntrack tests (table-full drops and retransmissions,
//! the SNAT race) and the goldens of `conntrack_exhaustion` and
//! `snat_port_exhaustion`.

use super::{Cx, Drop, Flow, Stage, Trip};
use crate::conntrack::{CtState, Table};
use sim_core::SimRng;

/// Every node's table, shared by the hooks (and by the UDP flows of DNS
/// queries, [`crate::conntrack::UdpDnat`]), as the kernel shares it.
pub struct Tables {
    /// By node (empty when conntrack is not modelled).
    pub nodes: Vec<Table>,
    /// Early drop's luck, for every insert on every node.
    pub early_drop: SimRng,
}

/// The new-entry hook: tracks pod flows on their client's node.
pub struct Conntrack;

impl Stage for Conntrack {
    fn first_packet(&mut self, flow: &Flow, trip: &mut Trip, cx: &mut Cx<'_>) -> Result<(), Drop> {
        let Some(node) = flow.client.and_then(|c| c.node) else {
            return Ok(());
        };
        let ct = &mut *cx.tables;
        match ct.nodes[node as usize].insert(cx.now, CtState::SynSent, &mut ct.early_drop) {
            Ok(id) => {
                trip.ct = Some((node, id));
                Ok(())
            }
            Err(refused) => Err(Drop::ConntrackFull { node, refused }),
        }
    }
}

/// The confirmation hook: the entry is in the table for good, unless
/// MASQUERADE's port clashed ([`Trip::port_clash`]): then the loser's entry
/// goes with its packet.
pub struct Confirm;

impl Stage for Confirm {
    fn first_packet(&mut self, _flow: &Flow, trip: &mut Trip, cx: &mut Cx<'_>) -> Result<(), Drop> {
        let Some((node, id)) = trip.ct else {
            return Ok(());
        };
        let table = &mut cx.tables.nodes[node as usize];
        if trip.port_clash {
            table.delete(cx.now, id);
            trip.ct = None;
            return Err(Drop::InsertFailed { node });
        }
        table.set_state(cx.now, id, CtState::Established);
        Ok(())
    }
}
