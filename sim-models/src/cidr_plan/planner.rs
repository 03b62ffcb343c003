//! A plan that fits: ranges for a new cluster that overlap none of its
//! peers, from RFC 1918 space.
//!
//! Sizes, from what is wanted:
//! - the node mask: the smallest block with at least twice the maximum
//!   pods per node (GKE's rule: 110 pods -> /24, 8 -> /28; docs/calibration.md,
//!   row `cidr-gke-node-mask`);
//! - the pod range: one node block per node, 2^(node_mask - prefix) >= nodes;
//! - one subnet per zone holding its share of the nodes plus the five
//!   addresses AWS reserves (docs/calibration.md, row `ipam-reserved`), at least /28; the VPC
//!   block holds the subnets; both at most /16 (docs/calibration.md, row `cidr-aws-subnet`);
//! - the Service range: at least as many addresses as Services wanted
//!   (kube-apiserver's own reservations in it are not modelled).
//!
//! Placement is deterministic: the VPC block, then the pod range, then the
//! Service range, each at the lowest address of 10.0.0.0/8, 172.16.0.0/12,
//! 192.168.0.0/16 (in that order, RFC 1918) aligned to its size that
//! overlaps no peer range and no range placed before it (first fit).

use super::{first, last, ClusterRanges, Peer, Plan, Subnet, Vpc};
use super::{AWS_MAX_BLOCK_PREFIX, AWS_MIN_BLOCK_PREFIX, AWS_SUBNET_RESERVED};
use crate::ipam::Ipv4Cidr;
use std::net::Ipv4Addr;

/// What the new cluster needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    /// Nodes.
    pub nodes: u64,
    /// Maximum pods per node (kubelet `--max-pods`).
    pub max_pods_per_node: u64,
    /// Services.
    pub services: u64,
    /// Zones, one subnet each.
    pub zones: Vec<String>,
}

/// Why no plan was proposed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A range would be larger than its limit.
    #[error("the {what} would need a /{prefix}, larger than the /{limit} {why}")]
    TooLarge {
        /// Which range.
        what: &'static str,
        /// The prefix it needs.
        prefix: u8,
        /// The largest allowed.
        limit: u8,
        /// Whose limit.
        why: &'static str,
    },
    /// No free block of that size is left in RFC 1918 space.
    #[error("no free /{prefix} is left in RFC 1918 space for the {what}")]
    NoSpace {
        /// Which range.
        what: &'static str,
        /// Its prefix.
        prefix: u8,
    },
    /// Nothing to plan for.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
}

/// RFC 1918 private space, in the order the planner tries it.
pub fn rfc1918() -> [Ipv4Cidr; 3] {
    let block = |a, b, p| Ipv4Cidr::new(Ipv4Addr::new(a, b, 0, 0), p).expect("aligned");
    [block(10, 0, 8), block(172, 16, 12), block(192, 168, 16)]
}

/// ceil(log2(n)) for n >= 1.
fn ceil_log2(n: u64) -> u32 {
    if n <= 1 {
        0
    } else {
        64 - (n - 1).leading_zeros()
    }
}

/// The prefix of the smallest block holding `n` addresses (n >= 1), or
/// `None` beyond a /0.
fn prefix_holding(n: u64) -> Option<u8> {
    32u32.checked_sub(ceil_log2(n)).map(|p| p as u8)
}

/// GKE's node mask for a maximum of `max_pods` pods per node: the smallest
/// block with at least twice as many addresses.
pub fn node_mask_for(max_pods: u64) -> Option<u8> {
    prefix_holding(max_pods.checked_mul(2)?)
}

/// The lowest block of `prefix` in RFC 1918 space that overlaps none of `taken`.
pub fn first_fit(prefix: u8, taken: &[Ipv4Cidr]) -> Option<Ipv4Cidr> {
    let size = 1u64 << (32 - u32::from(prefix));
    for space in rfc1918() {
        if space.prefix() > prefix {
            continue;
        }
        let mut at = first(&space);
        while at + size - 1 <= last(&space) {
            let cand = Ipv4Cidr::new(Ipv4Addr::from(at as u32), prefix).expect("aligned");
            match taken.iter().filter(|t| t.overlaps(&cand)).map(last).max() {
                None => return Some(cand),
                // Past the furthest blocker, aligned up.
                Some(end) => at = (end + 1).max(at + size).div_ceil(size) * size,
            }
        }
    }
    None
}

/// Proposes a plan for cluster `name` (its VPC `name-vpc`, subnets
/// `nodes-ZONE`) that overlaps none of `peers`, holding what is `wanted`.
pub fn propose(name: &str, peers: &[Peer], wanted: &Wanted) -> Result<Plan, PlanError> {
    if wanted.nodes == 0 {
        return Err(PlanError::Zero("nodes"));
    }
    if wanted.max_pods_per_node == 0 {
        return Err(PlanError::Zero("max_pods_per_node"));
    }
    if wanted.zones.is_empty() {
        return Err(PlanError::Zero("the number of zones"));
    }
    let too_large = |what, prefix, limit, why| PlanError::TooLarge {
        what,
        prefix,
        limit,
        why,
    };
    let aws = "AWS allows";
    let rfc = "RFC 1918 space holds";
    let zones = wanted.zones.len() as u64;
    let per_zone = wanted.nodes.div_ceil(zones) + AWS_SUBNET_RESERVED;
    let subnet_prefix = prefix_holding(per_zone)
        .unwrap_or(0)
        .min(AWS_MIN_BLOCK_PREFIX);
    if subnet_prefix < AWS_MAX_BLOCK_PREFIX {
        return Err(too_large(
            "subnet",
            subnet_prefix,
            AWS_MAX_BLOCK_PREFIX,
            aws,
        ));
    }
    let vpc_prefix = subnet_prefix.saturating_sub(ceil_log2(zones).min(32) as u8);
    if vpc_prefix < AWS_MAX_BLOCK_PREFIX {
        return Err(too_large(
            "VPC block",
            vpc_prefix,
            AWS_MAX_BLOCK_PREFIX,
            aws,
        ));
    }
    let node_mask = node_mask_for(wanted.max_pods_per_node).ok_or(too_large(
        "node block",
        0,
        0,
        "an IPv4 address holds",
    ))?;
    let pods_prefix = u32::from(node_mask)
        .checked_sub(ceil_log2(wanted.nodes))
        .map_or(0, |p| p as u8);
    if pods_prefix < 8 || u32::from(node_mask) < ceil_log2(wanted.nodes) {
        return Err(too_large("pod range", pods_prefix, 8, rfc));
    }
    let services_prefix = prefix_holding(wanted.services.max(1)).unwrap_or(0);
    if services_prefix < 8 {
        return Err(too_large("Service range", services_prefix, 8, rfc));
    }
    let mut taken: Vec<Ipv4Cidr> = peers.iter().flat_map(|p| p.cidrs.iter().copied()).collect();
    let mut place = |what, prefix| {
        let c = first_fit(prefix, &taken).ok_or(PlanError::NoSpace { what, prefix })?;
        taken.push(c);
        Ok::<_, PlanError>(c)
    };
    let vpc_block = place("VPC block", vpc_prefix)?;
    let pods = place("pod range", pods_prefix)?;
    let services = place("Service range", services_prefix)?;
    let subnets = wanted
        .zones
        .iter()
        .enumerate()
        .map(|(i, zone)| Subnet {
            name: format!("nodes-{zone}"),
            cidr: vpc_block
                .subnet(subnet_prefix, i as u64)
                .expect("the VPC block holds one subnet per zone"),
            zone: zone.clone(),
        })
        .collect();
    Ok(Plan {
        vpcs: vec![Vpc {
            name: format!("{name}-vpc"),
            cidrs: vec![vpc_block],
            subnets,
        }],
        cluster: ClusterRanges {
            name: name.to_string(),
            vpc: 0,
            pods: vec![pods],
            services,
            node_mask,
        },
        peers: peers.to_vec(),
    })
}
