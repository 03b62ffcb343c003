//! # Egress through NAT gateways
//!
//! Connections to an address outside the VPC ([`TrafficSpec::external`]
//! with `snat`) pass the NAT gateway stage of the connection path
//! ([`crate::path::nat_gateway`], [`crate::nat_gateway`]) when they open.
//! This room handles the rest of their life at the gateway: each request
//! sent on the connection (idle RST after 350 s, silence from a gateway
//! that is down) and each reply (lost if the gateway went down), the
//! connection's close (its port released), the timeline's gateway
//! down/up, the operator's events and the CloudWatch figures per window
//! ([`RunOutput::nat_windows`]).

use super::*;
use crate::nat_gateway::{GatewayStats, NatDrop};

/// One NAT gateway over the run.
#[derive(Clone, Debug, PartialEq)]
pub struct NatGatewayOutput {
    /// Its name.
    pub name: String,
    /// Its zone.
    pub zone: String,
    /// Its CloudWatch figures over the run (`active`: at the end).
    pub stats: GatewayStats,
    /// What it cost over the run (it exists from start to end).
    pub cost: crate::nat_gateway::Cost,
}

impl Sim<'_> {
    /// Applies `f` to gateway `g`'s figures of every window open now.
    fn nat_windows(&mut self, g: u32, f: impl Fn(&mut GatewayStats)) {
        let now = self.engine.now();
        let n = self
            .path
            .nat_gateway
            .as_ref()
            .map_or(0, |s| s.gateways.config().gateways.len());
        for (i, w) in self.cfg.windows.iter().enumerate() {
            if w.contains(now) {
                f(&mut self.nat_windows[i * n + g as usize]);
            }
        }
    }

    /// A connection through gateway `g` opened.
    pub(crate) fn egress_opened(&mut self, g: u32) {
        let active = self
            .path
            .nat_gateway
            .as_ref()
            .map_or(0, |s| s.gateways.stats(g).active);
        self.nat_windows(g, |w| {
            w.opened += 1;
            w.peak_active = w.peak_active.max(active);
        });
    }

    /// Request `req` is sent on egress connection `conn`: whether it passed
    /// the gateway. If not, the connection is closed and the request's
    /// outcome is on its way (an RST now, or the client's timeout).
    pub(crate) fn egress_send(&mut self, conn: u32, req: Request) -> bool {
        let now = self.engine.now();
        let bytes = self.cfg.traffic[req.source as usize].request_bytes;
        let (Some(stage), Some(x)) = (self.path.nat_gateway.as_mut(), self.conns.get_mut(conn))
        else {
            return true;
        };
        let Some(h) = x.nat.as_mut() else {
            return true;
        };
        let g = h.gateway();
        let sent = stage.gateways.send(h, now, bytes);
        match sent {
            Ok(()) => {
                self.nat_windows(g, |w| w.bytes_out += bytes);
                true
            }
            Err(drop) => {
                self.egress_failed(drop);
                self.close(conn);
                let req = Request {
                    conn: OptU32::NONE,
                    ..req
                };
                match drop {
                    NatDrop::IdleTimeout { .. } => self.outcome(req, Outcome::NatIdleReset),
                    _ => {
                        self.engine
                            .schedule_at(req.deadline.max(now), Ev::EgressDropped(req));
                    }
                }
                false
            }
        }
    }

    /// The reply to `req` comes back through the gateway of its connection:
    /// whether it was lost there.
    pub(crate) fn egress_reply_lost(&mut self, req: Request) -> bool {
        let now = self.engine.now();
        let bytes = self.cfg.traffic[req.source as usize].response_bytes;
        let Some(conn) = req.conn.get() else {
            return false;
        };
        let (Some(stage), Some(x)) = (self.path.nat_gateway.as_mut(), self.conns.get_mut(conn))
        else {
            return false;
        };
        let Some(h) = x.nat.as_mut() else {
            return false;
        };
        let g = h.gateway();
        match stage.gateways.receive(h, now, bytes) {
            Ok(()) => {
                self.nat_windows(g, |w| w.bytes_in += bytes);
                false
            }
            Err(drop) => {
                self.egress_failed(drop);
                true
            }
        }
    }

    /// The gateway stage failed a SYN, a request or a reply: the per-window
    /// figure and the event an operator would see.
    pub(crate) fn egress_failed(&mut self, drop: NatDrop) {
        if self.path.nat_gateway.is_none() {
            return;
        }
        let (reason, kind) = match drop {
            NatDrop::NoRoute { zone: z } => {
                let key = EventKey::Ids([z, 0, 0]);
                return self.event_by("Warning", "NoRouteToInternet", "vpc", key, |s| {
                    let zone = s
                        .cfg
                        .nat_gateways
                        .as_ref()
                        .and_then(|n| n.zones.get(z as usize))
                        .map_or("(unlisted)", String::as_str);
                    (
                        format!("egress from zone {zone} dropped: {drop}"),
                        format!("zone/{zone}"),
                    )
                });
            }
            NatDrop::GatewayDown { .. } => ("NatGatewayUnavailable", 0),
            NatDrop::PortAllocation { .. } => ("ErrorPortAllocation", 1),
            NatDrop::IdleTimeout { .. } => ("IdleTimeout", 2),
        };
        let Some(g) = drop.gateway() else { return };
        self.nat_windows(g, |w| match kind {
            0 => w.packets_dropped += 1,
            1 => w.error_port_allocation += 1,
            _ => w.idle_timeout += 1,
        });
        let key = EventKey::Ids([g, 0, 0]);
        self.event_by("Warning", reason, "nat-gateway", key, |s| {
            let Some(stage) = s.path.nat_gateway.as_ref() else {
                return (drop.to_string(), String::new());
            };
            let cfg = stage.gateways.config();
            let name = &cfg.gateways[g as usize].name;
            let msg = match drop {
                NatDrop::PortAllocation { destination, .. } => format!(
                    "{name}: {drop} (destination {}: every address holds {} connections)",
                    stage.gateways.tuple(destination),
                    cfg.connections_per_destination
                ),
                _ => format!("{name}: {drop}"),
            };
            (msg, format!("natgateway/{name}"))
        });
    }

    /// The timeline takes gateway `g` down or brings it back.
    pub(crate) fn nat_gateway_action(&mut self, g: usize, up: bool) {
        let Some(stage) = self.path.nat_gateway.as_mut() else {
            return;
        };
        if stage.gateways.is_up(g as u32) == up {
            return;
        }
        stage.gateways.set_up(g as u32, up);
        let name = stage.gateways.config().gateways[g].name.clone();
        let obj = format!("natgateway/{name}");
        if up {
            let msg = format!("{name} available again; connections it carried before are gone");
            self.event("Normal", "NatGatewayAvailable", "nat-gateway", msg, obj);
        } else {
            let msg = format!(
                "{name} down: every subnet routed to it loses egress; its connections are dropped"
            );
            self.event("Warning", "NatGatewayDown", "nat-gateway", msg, obj);
        }
    }

    /// Each gateway's figures and cost over the run.
    pub(crate) fn nat_output(&self) -> Vec<NatGatewayOutput> {
        let (Some(stage), Some(setup)) = (self.path.nat_gateway.as_ref(), &self.cfg.nat_gateways)
        else {
            return Vec::new();
        };
        setup
            .config
            .gateways
            .iter()
            .enumerate()
            .map(|(g, spec)| NatGatewayOutput {
                name: spec.name.clone(),
                zone: setup
                    .zones
                    .get(spec.zone as usize)
                    .cloned()
                    .unwrap_or_default(),
                stats: *stage.gateways.stats(g as u32),
                cost: stage.gateways.cost(g as u32, self.cfg.duration),
            })
            .collect()
    }
}

/// The gateway stage for `cfg`, when it has NAT gateways.
pub(crate) fn stage(cfg: &ClusterConfig) -> Option<NatStage> {
    let setup = cfg.nat_gateways.as_ref()?;
    let mut gateways = NatGateways::new(&setup.config);
    let node_zone = cfg
        .nodes
        .iter()
        .map(|n| {
            setup
                .zones
                .iter()
                .position(|z| *z == n.zone)
                .map_or(u32::MAX, |i| i as u32)
        })
        .collect();
    // Indexed by Service (`TrafficSpec::service` indexes the run's
    // Services: implicit ones first, then explicit).
    let mut by_service = vec![None; cfg.deployments.len() + cfg.services.explicit.len()];
    for t in &cfg.traffic {
        if let (Some(ext), Some(d), true) = (t.external, t.service, t.snat) {
            by_service[d] = Some(gateways.destination(ext));
        }
    }
    Some(NatStage::new(gateways, node_zone, by_service))
}
