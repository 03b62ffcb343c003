//! # NAT gateways: egress from private subnets to addresses outside the VPC
//!
//! ## Scope
//! A pod's connection to an address outside the VPC leaves its node through
//! MASQUERADE ([`crate::path::masquerade`]) with the node's address, then
//! follows its subnet's route table to a NAT gateway, which rewrites the
//! source to one of its public addresses and a source port. This module is
//! that last stage, per connection (not per packet):
//!
//! - **Zonal gateways, route tables per subnet.** A gateway lives in one
//!   zone and has 1 to 8 public addresses. Each zone's subnets route
//!   `0.0.0.0/0` to one gateway ([`NatGatewayConfig::routes`]): one gateway
//!   for every zone, or one per zone. A zone without a route has no egress.
//! - **Port accounting.** Per (gateway address, destination IP, destination
//!   port, protocol) at most [`CONNECTIONS_PER_DESTINATION`] simultaneous
//!   connections, source ports from [`SOURCE_PORTS`]. A new connection takes
//!   the first address with room, starting from a cursor that turns per
//!   destination (AWS does not document its choice; this spreads the load
//!   evenly). With every address full the connection fails and
//!   `ErrorPortAllocation` counts it ([`NatDrop::PortAllocation`]).
//! - **Idle timeout.** A connection idle for [`IDLE_TIMEOUT`] or more is
//!   forgotten; the client's next packet on it gets an RST, not a FIN
//!   ([`NatDrop::IdleTimeout`], counted as `IdleTimeoutCount`).
//! - **Failure.** A gateway that is down (its zone failed, or the timeline
//!   takes it down) drops every packet routed through it: a SYN goes
//!   nowhere, so the client times out ([`NatDrop::GatewayDown`], counted as
//!   `PacketsDropCount`). Its translation state is gone: a connection opened
//!   before the failure is dead even after the gateway is back.
//! - **Cost.** Gateway-hours (a partial hour billed whole) and GB processed
//!   in both directions ([`Pricing`], [`NatGateways::cost`]).
//!
//! Cost: memory O(gateways x destinations x addresses) for the port counts
//! and O(1) per connection ([`NatConn`], held by the caller); a new
//! connection looks at most [`MAX_ADDRESSES`] counters, a packet on an open
//! one at its own handle. No walk of connections or destinations; a gateway
//! failure clears its counts (O(destinations x addresses), once per
//! failure).
//!
//! Limitations: the idle timeout is applied lazily, when the client next
//! sends on the connection or closes it, so an idle connection holds its
//! port count until then (it is not released at exactly 350 s); the
//! bandwidth (5-100 Gbps) and packet-rate (1-10 Mpps) limits are not
//! modelled; `PacketsDropCount` counts dropped connection attempts and
//! requests, not packets; `ActiveConnectionCount` counts every protocol
//! (CloudWatch's counts TCP only); regional NAT gateways are not modelled.
//!
//! ## Parameters
//! - [`CONNECTIONS_PER_DESTINATION`] 55,000 per address per unique
//!   destination, [`SOURCE_PORTS`] 1024-65535, [`MAX_ADDRESSES`] 8
//!   (docs/calibration.md, row `natgw-connections`).
//! - [`IDLE_TIMEOUT`] 350 s and the RST on the next packet
//!   (docs/calibration.md, row `natgw-idle-timeout`).
//! - [`Pricing::US_EAST_1`]: $0.045 per gateway-hour and $0.045 per GB
//!   processed (docs/calibration.md, row `natgw-price`); [`BYTES_PER_GB`]
//!   (docs/calibration.md, row `natgw-gb`).
//! - Zonal failure domain (docs/calibration.md, row `natgw-zonal`).
//!
//! ## What it emits
//! [`NatConn`] handles, [`NatDrop`]s whose `Display` is the operator's view,
//! and per gateway the CloudWatch figures ([`GatewayStats`]:
//! `ActiveConnectionCount`, `ErrorPortAllocation`, `IdleTimeoutCount`,
//! `PacketsDropCount`, bytes to and from the destinations) and its
//! [`Cost`].
//!
//! ## Validation
//! Unit tests (`tests.rs`): the 55,000 edge per destination tuple and per
//! address, release on close, the idle RST at exactly 350 s against
//! 349.999 s, a failed gateway and its recovery, the cost arithmetic
//! (partial hours, both directions). The bench `nat_gateway` shows the cost
//! per connection flat in destinations and addresses.

#[cfg(test)]
mod tests;

use crate::protocol::Protocol;
use sim_core::{SimDuration, SimTime};
use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

/// Simultaneous connections per gateway address per unique destination.
pub const CONNECTIONS_PER_DESTINATION: u32 = 55_000;
/// The source ports a NAT gateway uses (inclusive).
pub const SOURCE_PORTS: (u16, u16) = (1024, 65535);
/// Public addresses per gateway at most (1 primary + 7 secondary).
pub const MAX_ADDRESSES: u8 = 8;
/// A connection idle this long or longer is forgotten.
pub const IDLE_TIMEOUT: SimDuration = SimDuration::from_secs(350);
/// Bytes in the GB that processing is billed by.
pub const BYTES_PER_GB: f64 = 1e9;

/// A unique destination: the tuple the port limit is counted on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Destination {
    /// Destination IP address.
    pub ip: Ipv4Addr,
    /// Destination port.
    pub port: u16,
    /// Protocol.
    pub protocol: Protocol,
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.ip, self.port, self.protocol)
    }
}

/// One gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewaySpec {
    /// Name in metrics and events (unique).
    pub name: String,
    /// The zone it lives in (index into the run's zones).
    pub zone: u32,
    /// Public addresses (1..=[`MAX_ADDRESSES`]).
    pub addresses: u8,
}

/// Prices \[USD\].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pricing {
    /// Per gateway-hour; a partial hour is billed as a whole one.
    pub per_hour: f64,
    /// Per GB processed, in either direction.
    pub per_gb: f64,
}

impl Pricing {
    /// AWS us-east-1 (docs/calibration.md, row `natgw-price`).
    pub const US_EAST_1: Pricing = Pricing {
        per_hour: 0.045,
        per_gb: 0.045,
    };
}

impl Default for Pricing {
    fn default() -> Self {
        Pricing::US_EAST_1
    }
}

/// The gateways of a run and the route tables of its zones' subnets.
#[derive(Clone, Debug, PartialEq)]
pub struct NatGatewayConfig {
    /// The gateways.
    pub gateways: Vec<GatewaySpec>,
    /// Per zone (index): the gateway its subnets' default route points at;
    /// `None`: no route to the outside.
    pub routes: Vec<Option<u32>>,
    /// Simultaneous connections per address per destination.
    pub connections_per_destination: u32,
    /// Idle timeout.
    pub idle_timeout: SimDuration,
    /// Prices.
    pub pricing: Pricing,
}

impl NatGatewayConfig {
    /// `gateways` routed as `routes`, with AWS's limits and us-east-1 prices.
    pub fn new(gateways: Vec<GatewaySpec>, routes: Vec<Option<u32>>) -> Self {
        NatGatewayConfig {
            gateways,
            routes,
            connections_per_destination: CONNECTIONS_PER_DESTINATION,
            idle_timeout: IDLE_TIMEOUT,
            pricing: Pricing::default(),
        }
    }
}

/// Why the gateway stage failed a connection or a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatDrop {
    /// The client's zone has no route to the outside.
    NoRoute {
        /// The zone.
        zone: u32,
    },
    /// The gateway is down: the packet goes nowhere.
    GatewayDown {
        /// The gateway.
        gateway: u32,
    },
    /// Every address of the gateway holds the limit of connections to the
    /// destination (`ErrorPortAllocation`).
    PortAllocation {
        /// The gateway.
        gateway: u32,
        /// The destination (index from [`NatGateways::destination`]).
        destination: u32,
    },
    /// The connection was idle for the idle timeout or longer: the gateway
    /// answers the client's next packet with an RST.
    IdleTimeout {
        /// The gateway.
        gateway: u32,
    },
}

impl NatDrop {
    /// The gateway involved, if any.
    pub fn gateway(&self) -> Option<u32> {
        match *self {
            NatDrop::NoRoute { .. } => None,
            NatDrop::GatewayDown { gateway }
            | NatDrop::PortAllocation { gateway, .. }
            | NatDrop::IdleTimeout { gateway } => Some(gateway),
        }
    }
}

impl fmt::Display for NatDrop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NatDrop::NoRoute { .. } => {
                f.write_str("no route to 0.0.0.0/0 in the subnet's route table")
            }
            NatDrop::GatewayDown { .. } => {
                f.write_str("NAT gateway unavailable: packets dropped, SYN unanswered")
            }
            NatDrop::PortAllocation { .. } => f.write_str(
                "ErrorPortAllocation: no source port left on any address for this destination",
            ),
            NatDrop::IdleTimeout { .. } => f.write_str(
                "connection reset by peer: idle at the NAT gateway for its idle timeout or more",
            ),
        }
    }
}

/// A connection through a gateway, as the caller holds it (O(1) state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatConn {
    gateway: u16,
    address: u8,
    /// The gateway's epoch at open; [`DEAD`]: released already.
    epoch: u32,
    destination: u32,
    last: SimTime,
}

/// The epoch of a handle whose port is released.
const DEAD: u32 = u32::MAX;

impl NatConn {
    /// The gateway.
    pub fn gateway(&self) -> u32 {
        u32::from(self.gateway)
    }
    /// The index of the public address it uses.
    pub fn address(&self) -> u8 {
        self.address
    }
}

/// One gateway's CloudWatch figures since the start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GatewayStats {
    /// `ActiveConnectionCount` now.
    pub active: u64,
    /// The highest `ActiveConnectionCount` seen.
    pub peak_active: u64,
    /// Connections opened (`ConnectionEstablishedCount`).
    pub opened: u64,
    /// `ErrorPortAllocation`.
    pub error_port_allocation: u64,
    /// `IdleTimeoutCount`.
    pub idle_timeout: u64,
    /// `PacketsDropCount` (attempts and requests dropped while down).
    pub packets_dropped: u64,
    /// Bytes from the clients to the destinations (`BytesOutToDestination`).
    pub bytes_out: u64,
    /// Bytes from the destinations back (`BytesInFromDestination`).
    pub bytes_in: u64,
}

/// What a gateway costs over a stretch of time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cost {
    /// Gateway-hours billed (partial hours rounded up).
    pub hours: u64,
    /// GB processed, both directions.
    pub gb: f64,
    /// USD for the hours.
    pub hours_usd: f64,
    /// USD for the GB.
    pub gb_usd: f64,
}

impl Cost {
    /// Hours and processing together \[USD\].
    pub fn total(&self) -> f64 {
        self.hours_usd + self.gb_usd
    }
}

struct Gateway {
    up: bool,
    epoch: u32,
    addresses: u8,
    /// Connections per (destination, address): index d * addresses + a.
    ports: Vec<u32>,
    /// Per destination: the address to try first.
    cursor: Vec<u8>,
    stats: GatewayStats,
}

/// The gateways of a run, their translation state and figures.
pub struct NatGateways {
    cfg: NatGatewayConfig,
    gateways: Vec<Gateway>,
    destinations: BTreeMap<Destination, u32>,
    /// By index.
    tuples: Vec<Destination>,
}

impl NatGateways {
    /// Every gateway up, no destination yet.
    pub fn new(cfg: &NatGatewayConfig) -> Self {
        let gateways = cfg
            .gateways
            .iter()
            .map(|g| Gateway {
                up: true,
                epoch: 0,
                addresses: g.addresses.clamp(1, MAX_ADDRESSES),
                ports: Vec::new(),
                cursor: Vec::new(),
                stats: GatewayStats::default(),
            })
            .collect();
        NatGateways {
            cfg: cfg.clone(),
            gateways,
            destinations: BTreeMap::new(),
            tuples: Vec::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &NatGatewayConfig {
        &self.cfg
    }

    /// The index of destination `d`, registering it (setup time: it grows
    /// every gateway's counts).
    pub fn destination(&mut self, d: Destination) -> u32 {
        if let Some(&i) = self.destinations.get(&d) {
            return i;
        }
        let i = self.destinations.len() as u32;
        self.destinations.insert(d, i);
        self.tuples.push(d);
        for g in &mut self.gateways {
            g.ports
                .extend(std::iter::repeat_n(0, usize::from(g.addresses)));
            g.cursor.push(0);
        }
        i
    }

    /// Destination `i`'s tuple.
    pub fn tuple(&self, i: u32) -> Destination {
        self.tuples[i as usize]
    }

    /// The gateway zone `zone`'s subnets route to.
    pub fn route(&self, zone: u32) -> Option<u32> {
        self.cfg.routes.get(zone as usize).copied().flatten()
    }

    /// Whether gateway `g` is up.
    pub fn is_up(&self, g: u32) -> bool {
        self.gateways[g as usize].up
    }

    /// Opens a connection from a node in `zone` to `destination` at `now`.
    pub fn open(&mut self, zone: u32, destination: u32, now: SimTime) -> Result<NatConn, NatDrop> {
        let Some(gi) = self.route(zone) else {
            return Err(NatDrop::NoRoute { zone });
        };
        let limit = self.cfg.connections_per_destination;
        let g = &mut self.gateways[gi as usize];
        if !g.up {
            g.stats.packets_dropped += 1;
            return Err(NatDrop::GatewayDown { gateway: gi });
        }
        let n = g.addresses;
        let d = destination as usize;
        let start = g.cursor[d];
        for k in 0..n {
            let a = (start + k) % n;
            let slot = &mut g.ports[d * usize::from(n) + usize::from(a)];
            if *slot < limit {
                *slot += 1;
                g.cursor[d] = (a + 1) % n;
                g.stats.opened += 1;
                g.stats.active += 1;
                g.stats.peak_active = g.stats.peak_active.max(g.stats.active);
                return Ok(NatConn {
                    gateway: gi as u16,
                    address: a,
                    epoch: g.epoch,
                    destination,
                    last: now,
                });
            }
        }
        g.stats.error_port_allocation += 1;
        Err(NatDrop::PortAllocation {
            gateway: gi,
            destination,
        })
    }

    /// The client sends `bytes` on `conn` at `now`. An error ends the
    /// connection (its port is released or already gone): an RST after an
    /// idle timeout, or silence from a gateway that is down or lost it.
    pub fn send(&mut self, conn: &mut NatConn, now: SimTime, bytes: u64) -> Result<(), NatDrop> {
        let gateway = conn.gateway();
        self.alive(conn)?;
        if now.saturating_since(conn.last) >= self.cfg.idle_timeout {
            let g = &mut self.gateways[gateway as usize];
            g.stats.idle_timeout += 1;
            release(g, conn);
            return Err(NatDrop::IdleTimeout { gateway });
        }
        conn.last = now;
        self.gateways[gateway as usize].stats.bytes_out += bytes;
        Ok(())
    }

    /// The destination's `bytes` come back on `conn` at `now`; an error:
    /// the gateway is down or lost the connection, the reply is dropped.
    pub fn receive(&mut self, conn: &mut NatConn, now: SimTime, bytes: u64) -> Result<(), NatDrop> {
        self.alive(conn)?;
        conn.last = now;
        self.gateways[conn.gateway as usize].stats.bytes_in += bytes;
        Ok(())
    }

    /// Whether `conn` still has its translation; counts the dropped packet
    /// when not.
    fn alive(&mut self, conn: &mut NatConn) -> Result<(), NatDrop> {
        let gateway = conn.gateway();
        let g = &mut self.gateways[gateway as usize];
        if !g.up || conn.epoch != g.epoch {
            if conn.epoch != DEAD {
                g.stats.packets_dropped += 1;
            }
            conn.epoch = DEAD;
            return Err(NatDrop::GatewayDown { gateway });
        }
        Ok(())
    }

    /// The connection closes: its port is released (once; a handle
    /// released already, or from before a failure, releases nothing).
    pub fn close(&mut self, conn: &mut NatConn) {
        let g = &mut self.gateways[conn.gateway as usize];
        if conn.epoch == g.epoch {
            release(g, conn);
        }
        conn.epoch = DEAD;
    }

    /// Gateway `g` goes down (`up` false: its translations are lost) or
    /// comes back.
    pub fn set_up(&mut self, g: u32, up: bool) {
        let gw = &mut self.gateways[g as usize];
        if gw.up == up {
            return;
        }
        gw.up = up;
        if !up {
            gw.epoch = gw.epoch.wrapping_add(1) % DEAD;
            gw.ports.iter_mut().for_each(|p| *p = 0);
            gw.stats.active = 0;
        }
    }

    /// Gateway `g`'s figures.
    pub fn stats(&self, g: u32) -> &GatewayStats {
        &self.gateways[g as usize].stats
    }

    /// Connections gateway `g` holds on address `a` to `destination`.
    pub fn connections(&self, g: u32, destination: u32, a: u8) -> u32 {
        let gw = &self.gateways[g as usize];
        gw.ports[destination as usize * usize::from(gw.addresses) + usize::from(a)]
    }

    /// What gateway `g` costs after existing for `elapsed`, with what it
    /// processed so far.
    pub fn cost(&self, g: u32, elapsed: SimDuration) -> Cost {
        let s = &self.gateways[g as usize].stats;
        cost(&self.cfg.pricing, elapsed, s.bytes_out + s.bytes_in)
    }
}

/// The bill for a gateway that existed for `elapsed` and processed `bytes`
/// (both directions together).
pub fn cost(pricing: &Pricing, elapsed: SimDuration, bytes: u64) -> Cost {
    let hour = SimDuration::from_secs(3600).as_nanos();
    let hours = elapsed.as_nanos().div_ceil(hour);
    let gb = bytes as f64 / BYTES_PER_GB;
    Cost {
        hours,
        gb,
        hours_usd: hours as f64 * pricing.per_hour,
        gb_usd: gb * pricing.per_gb,
    }
}

fn release(g: &mut Gateway, conn: &mut NatConn) {
    let i = conn.destination as usize * usize::from(g.addresses) + usize::from(conn.address);
    g.ports[i] = g.ports[i].saturating_sub(1);
    g.stats.active = g.stats.active.saturating_sub(1);
    conn.epoch = DEAD;
}
