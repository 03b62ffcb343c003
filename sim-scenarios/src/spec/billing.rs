//! Billing for bytes between zones: `network.billing`.
//!
//! # Scope
//! How the cloud bills traffic between zones of one region (sim-models
//! `transfer_cost`): AWS's rule ($0.01/GB out at the sender and again in at
//! the receiver) or GCP's ($0.01/GiB of egress at the source), each with
//! its default price (docs/calibration.md rows `price-aws-inter-az`,
//! `price-gcp-inter-zone`) or a price of the user's. With it the run counts
//! each pod-to-pod request's bytes per (source zone, destination zone) and
//! reports them with their cost; without it nothing is counted.
//!
//! ```yaml
//! network:
//!   cni: calico
//!   billing: {rule: aws}              # $0.01/GB each direction
//!   # billing: {rule: gcp, price: 0.01}  # USD per GiB of egress
//! ```
//!
//! # Validation
//! An unknown rule or field is a located serde error; a price that is not
//! a finite number of 0 or more is a located error with a hint.

use super::{NetworkFile, Validator, R};
use crate::envelope::Locate;
use crate::locate::Seg;
use crate::path;
use schemars::JsonSchema;
use serde::Deserialize;
use sim_models::transfer_cost::Billing;

/// The billing rule for bytes between zones, and its price.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BillingFile {
    /// `aws` (per GB, out and in) or `gcp` (per GiB, egress only).
    pub rule: BillingRule,
    /// USD per unit of the rule (default 0.01 for either: AWS per GB in
    /// each direction, GCP per GiB of egress).
    pub price: Option<f64>,
}

/// A cloud's billing rule for traffic between zones.
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BillingRule {
    /// AWS: each GB (1e9 bytes) billed out at the sender and in at the
    /// receiver.
    Aws,
    /// GCP: each GiB billed once, at the source.
    Gcp,
}

impl Validator<'_> {
    /// The billing of `network` (written at `np`).
    pub(super) fn billing(&self, np: &[Seg], network: Option<&NetworkFile>) -> R<Option<Billing>> {
        let Some(file) = network.and_then(|n| n.billing.as_ref()) else {
            return Ok(None);
        };
        let default = match file.rule {
            BillingRule::Aws => Billing::aws(),
            BillingRule::Gcp => Billing::gcp(),
        };
        let Some(price) = file.price else {
            return Ok(Some(default));
        };
        if !(price.is_finite() && price >= 0.0) {
            return Err(self.err(
                &[np, &path!["network", "billing", "price"]].concat(),
                format!("price: {price} is not a price"),
                "give USD per unit as a number of 0 or more, e.g. 0.01",
            ));
        }
        Ok(Some(match file.rule {
            BillingRule::Aws => Billing::Aws { per_gb: price },
            BillingRule::Gcp => Billing::Gcp { per_gib: price },
        }))
    }
}
