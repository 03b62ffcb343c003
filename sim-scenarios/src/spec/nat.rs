//! NAT gateways: `network.nat_gateways`.
//!
//! # Scope
//! The cloud's NAT gateways for egress outside the VPC (sim-models
//! `nat_gateway`): each gateway's zone and public addresses, each zone's
//! route (which gateway its subnets' default route points at), and the
//! limits and prices, whose defaults are AWS's (docs/calibration.md, rows
//! `natgw-connections`, `natgw-idle-timeout` and `natgw-price`). They sit
//! in `network:` beside the node's own data path (conntrack, MASQUERADE)
//! because they are the next hop of the same path, and a fix variant
//! replaces `network:` as a whole.
//!
//! ```yaml
//! network:
//!   cni: calico
//!   nat_gateways:
//!     gateways: [{name: nat-a, zone: us-east-1a, addresses: 1}]
//!     routes: {us-east-1a: nat-a, us-east-1b: nat-a, us-east-1c: nat-a}
//! ```
//!
//! # Validation
//! Every error names the field it is about (`file:line:column`) with a hint.

use super::{NetworkFile, Validator, R};
use crate::envelope::{did_you_mean, Locate};
use crate::locate::Seg;
use crate::path;
use crate::units::{Count, Duration};
use schemars::JsonSchema;
use serde::Deserialize;
use sim_models::cluster::NatSetup;
use sim_models::nat_gateway::{GatewaySpec, NatGatewayConfig, Pricing, MAX_ADDRESSES};
use std::collections::BTreeMap;

/// The NAT gateways and the route tables of the zones' subnets.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NatGatewaysFile {
    /// The gateways.
    pub gateways: Vec<NatGatewayFile>,
    /// Per zone: the gateway its private subnets route `0.0.0.0/0` to. A
    /// zone left out has no route to the outside.
    pub routes: BTreeMap<String, String>,
    /// Simultaneous connections per address per destination (default
    /// 55000, AWS's).
    pub connections_per_destination: Option<Count>,
    /// Idle timeout (default 350s, AWS's).
    pub idle_timeout: Option<Duration>,
    /// USD per gateway-hour (default 0.045, us-east-1).
    pub price_per_hour: Option<f64>,
    /// USD per GB processed (default 0.045, us-east-1).
    pub price_per_gb: Option<f64>,
}

/// One NAT gateway.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NatGatewayFile {
    /// Name (unique), used by `routes`, the timeline and `expect`.
    pub name: String,
    /// The zone it lives in (one of `cluster.nodes.zones`).
    pub zone: String,
    /// Public addresses, 1 to 8 (default 1).
    pub addresses: Option<Count>,
}

impl Validator<'_> {
    /// The NAT gateways of `network` (written at `np`), over `zones`.
    pub(super) fn nat_gateways(
        &self,
        np: &[Seg],
        network: Option<&NetworkFile>,
        zones: &[String],
    ) -> R<Option<NatSetup>> {
        let Some(file) = network.and_then(|n| n.nat_gateways.as_ref()) else {
            return Ok(None);
        };
        let p = [np, &path!["network", "nat_gateways"]].concat();
        let zone_names: Vec<&str> = zones.iter().map(String::as_str).collect();
        if file.gateways.is_empty() {
            return Err(self.err(
                &[&p[..], &path!["gateways"]].concat(),
                "no NAT gateway given",
                "e.g. gateways: [{name: nat-a, zone: ZONE}]",
            ));
        }
        let mut gateways: Vec<GatewaySpec> = Vec::new();
        for (i, g) in file.gateways.iter().enumerate() {
            let gp = [&p[..], &path!["gateways", i]].concat();
            if gateways.iter().any(|x| x.name == g.name) {
                return Err(self.err(
                    &[&gp[..], &path!["name"]].concat(),
                    format!("two NAT gateways are called `{}`", g.name),
                    "name them apart",
                ));
            }
            let Some(zone) = zones.iter().position(|z| *z == g.zone) else {
                return Err(self.err(
                    &[&gp[..], &path!["zone"]].concat(),
                    format!("`{}` is not a zone of the cluster", g.zone),
                    did_you_mean(&g.zone, &zone_names, "zones"),
                ));
            };
            let addresses = g.addresses.map_or(1, |c| c.0);
            if !(1..=u32::from(MAX_ADDRESSES)).contains(&addresses) {
                return Err(self.err(
                    &[&gp[..], &path!["addresses"]].concat(),
                    format!("addresses: {addresses} is outside 1..={MAX_ADDRESSES}"),
                    "a NAT gateway has 1 primary and up to 7 secondary public addresses",
                ));
            }
            gateways.push(GatewaySpec {
                name: g.name.clone(),
                zone: zone as u32,
                addresses: addresses as u8,
            });
        }
        let names: Vec<&str> = gateways.iter().map(|g| g.name.as_str()).collect();
        let mut routes = vec![None; zones.len()];
        for (zone, gw) in &file.routes {
            let rp = [&p[..], &path!["routes", zone.as_str()]].concat();
            let Some(z) = zones.iter().position(|x| x == zone) else {
                return Err(self.err(
                    &rp,
                    format!("`{zone}` is not a zone of the cluster"),
                    did_you_mean(zone, &zone_names, "zones"),
                ));
            };
            let Some(g) = names.iter().position(|n| n == gw) else {
                return Err(self.err(
                    &rp,
                    format!("no NAT gateway is called `{gw}`"),
                    did_you_mean(gw, &names, "gateways"),
                ));
            };
            routes[z] = Some(g as u32);
        }
        let mut config = NatGatewayConfig::new(gateways, routes);
        if let Some(c) = file.connections_per_destination {
            if c.0 == 0 {
                return Err(self.err(
                    &[&p[..], &path!["connections_per_destination"]].concat(),
                    "connections_per_destination must be at least 1",
                    "AWS's limit is 55000 (the default)",
                ));
            }
            config.connections_per_destination = c.0;
        }
        if let Some(d) = file.idle_timeout {
            if d.0.as_nanos() == 0 {
                return Err(self.err(
                    &[&p[..], &path!["idle_timeout"]].concat(),
                    "idle_timeout must be longer than 0",
                    "AWS's is 350s (the default)",
                ));
            }
            config.idle_timeout = d.0;
        }
        let price = |v: Option<f64>, field: &str, default: f64| -> R<f64> {
            match v {
                None => Ok(default),
                Some(x) if x.is_finite() && x >= 0.0 => Ok(x),
                Some(x) => Err(self.err(
                    &[&p[..], &path![field]].concat(),
                    format!("{field}: {x} is not a price"),
                    "give USD as a number of 0 or more, e.g. 0.045",
                )),
            }
        };
        config.pricing = Pricing {
            per_hour: price(
                file.price_per_hour,
                "price_per_hour",
                Pricing::US_EAST_1.per_hour,
            )?,
            per_gb: price(file.price_per_gb, "price_per_gb", Pricing::US_EAST_1.per_gb)?,
        };
        Ok(Some(NatSetup {
            zones: zones.to_vec(),
            config,
        }))
    }
}
