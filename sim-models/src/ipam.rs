//! # IPAM: pod IP address management
//!
//! ## Scope
//! Where a pod's IPv4 address comes from, and what happens when there is none.
//! Two layouts, as operators configure them:
//! - **flat**: one cluster-wide pool that every node draws from (Calico IPAM
//!   without per-node blocks, a cloud subnet, the Black Friday story's /24).
//!   More pools can be added while the cluster runs (a new Calico IPPool, an
//!   AWS secondary CIDR).
//! - **per-node**: kube-controller-manager cuts the cluster CIDR into one
//!   block of `node_mask` bits per node, in node order; the node's host-local
//!   plugin allocates inside its block. A node that gets no block cannot run
//!   pods (its network never becomes ready).
//!
//! Each allocator reserves the addresses its real counterpart reserves:
//! - `flat`: the network and broadcast addresses (a /24 has 254 usable);
//! - `host-local`: network, gateway (`.1`) and broadcast: the CNI host-local
//!   plugin's defaults `rangeStart = .2`, `rangeEnd = .254`, `gateway = .1`
//!   (containernetworking/plugins, plugins/ipam/host-local README), so a /24
//!   node block has 253 usable;
//! - `aws-vpc`: the first four and the last address of the subnet (AWS VPC
//!   user guide, "Subnet CIDR blocks"), so a /24 has 251 usable.
//!
//! host-local hands addresses out round the range (a released one comes
//! back after the rest of the range); the flat and aws-vpc allocators hand
//! out the lowest free one.
//!
//! Limitations: IPv4 only; no IP reuse cool-down (aws-cni's 30 s); addresses
//! are released the moment a pod is deleted.
//!
//! ## Parameters
//! Node block size: `--node-cidr-mask-size` default /24 (docs/calibration.md,
//! row `ipam-node-cidr`, conf H). Reserved addresses: docs/calibration.md,
//! row `ipam-reserved`.
//!
//! The flat allocator is named after whereabouts, a cluster-wide IPAM plugin
//! that also skips the network and broadcast addresses.
//!
//! ## What it emits
//! Allocation results; on exhaustion the CNI error text an operator reads in
//! `kubectl describe pod`, in each plugin's own words, after the runtime's
//! `plugin type="..." failed (add): `:
//! - host-local: `failed to allocate for range 0: no IP addresses available
//!   in range set: 10.0.0.2-10.0.0.254` (containernetworking/plugins,
//!   plugins/ipam/host-local/backend/allocator/allocator.go and main.go);
//! - whereabouts: `error at storage engine: Could not allocate IP in range:
//!   ip: 10.0.0.1 / - 10.0.0.254 / range: 10.0.0.0/24 / excludeRanges: []`
//!   (k8snetworkplumbingwg/whereabouts, pkg/allocate/allocate.go
//!   `AssignmentError`, wrapped by cmd/whereabouts.go), naming the last pool
//!   tried;
//! - aws-cni: `add cmd: failed to assign an IP address to container`
//!   (aws/amazon-vpc-cni-k8s, cmd/routed-eni-cni-plugin/cni.go); the reason,
//!   `no available IP/Prefix addresses`, is only in ipamd's log
//!   (pkg/ipamd/datastore/data_store.go), not in the pod's event.
//!
//! ## Validation
//! Unit tests pin the usable counts of each allocator (/24 flat 254,
//! host-local 253, aws-vpc 251) and the node-block arithmetic (a /16 in /24
//! blocks caps at 256 nodes, a validation against docs/calibration.md, row
//! `ipam-gke-node-cap`); a property test checks that no address is handed
//! out twice and that allocated + free = usable.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 network in CIDR notation, with no host bits set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv4Cidr {
    base: u32,
    prefix: u8,
}

/// Why a CIDR string is not valid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// No `/` separator.
    #[error("`{0}` is not in CIDR notation (address/prefix)")]
    NoPrefix(String),
    /// The address part is not a dotted quad.
    #[error("`{0}` is not an IPv4 address")]
    BadAddress(String),
    /// The prefix length is not a number from 0 to 32.
    #[error("prefix length /{0} is out of range: an IPv4 prefix is /0 to /32")]
    BadPrefix(String),
    /// Bits are set below the prefix.
    #[error("`{given}` has host bits set below the /{prefix} prefix")]
    HostBits {
        /// What was written.
        given: String,
        /// The prefix length.
        prefix: u8,
        /// The network the user probably meant.
        network: String,
    },
}

impl Ipv4Cidr {
    /// The network `addr/prefix`; `None` if `prefix > 32` or host bits are set.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Self> {
        let base = u32::from(addr);
        (prefix <= 32 && base & !mask(prefix) == 0).then_some(Ipv4Cidr { base, prefix })
    }
    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
    /// The first (network) address.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base)
    }
    /// Number of addresses in the block, reserved ones included.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }
    /// The `offset`-th address of the block (offset < size).
    pub fn nth(&self, offset: u64) -> Ipv4Addr {
        Ipv4Addr::from(self.base.wrapping_add(offset as u32))
    }
    /// Whether `ip` lies inside the block.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == self.base
    }
    /// Whether the two blocks share any address.
    pub fn overlaps(&self, other: &Ipv4Cidr) -> bool {
        let p = self.prefix.min(other.prefix);
        self.base & mask(p) == other.base & mask(p)
    }
    /// The `index`-th sub-block of prefix `sub_prefix`, if it exists.
    pub fn subnet(&self, sub_prefix: u8, index: u64) -> Option<Ipv4Cidr> {
        if sub_prefix < self.prefix || sub_prefix > 32 {
            return None;
        }
        let count = 1u64 << (sub_prefix - self.prefix);
        (index < count).then(|| Ipv4Cidr {
            base: self.base + (index << (32 - u32::from(sub_prefix))) as u32,
            prefix: sub_prefix,
        })
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl FromStr for Ipv4Cidr {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Self, CidrError> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| CidrError::NoPrefix(s.to_string()))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| CidrError::BadAddress(addr.to_string()))?;
        let prefix: u8 = match prefix.parse() {
            Ok(p) if p <= 32 => p,
            _ => return Err(CidrError::BadPrefix(prefix.to_string())),
        };
        Ipv4Cidr::new(addr, prefix).ok_or_else(|| CidrError::HostBits {
            given: s.to_string(),
            prefix,
            network: format!(
                "{}/{}",
                Ipv4Addr::from(u32::from(addr) & mask(prefix)),
                prefix
            ),
        })
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix)
    }
}

/// Which CNI IPAM plugin allocates, and so which addresses it reserves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allocator {
    /// Network and broadcast reserved.
    Flat,
    /// CNI host-local: network, gateway `.1` and broadcast reserved.
    HostLocal,
    /// AWS VPC subnet: first four and last reserved.
    AwsVpc,
}

impl Allocator {
    /// The plugin name that appears in CNI error messages.
    pub fn plugin_name(self) -> &'static str {
        match self {
            Allocator::Flat => "whereabouts",
            Allocator::HostLocal => "host-local",
            Allocator::AwsVpc => "aws-cni",
        }
    }

    /// Offsets `[first, last]` (inclusive) that may be handed out in `block`,
    /// or `None` if the block is too small to hold any.
    pub fn usable_range(self, block: &Ipv4Cidr) -> Option<(u64, u64)> {
        let size = block.size();
        let (lo, hi_reserved) = match self {
            Allocator::Flat => (1, 1),
            Allocator::HostLocal => (2, 1),
            Allocator::AwsVpc => (4, 1),
        };
        (size > lo + hi_reserved).then(|| (lo, size - 1 - hi_reserved))
    }
}

/// One block of addresses handed out by one allocator.
#[derive(Clone, Debug)]
pub struct Pool {
    block: Ipv4Cidr,
    allocator: Allocator,
    first: u64,
    last: u64,
    next_unused: u64,
    released: BTreeSet<u64>,
    allocated: u64,
    /// host-local: where the search for a free address starts (one past
    /// the last one handed out).
    cursor: u64,
}

impl Pool {
    /// A pool over `block`; `None` if the allocator can use no address of it.
    pub fn new(block: Ipv4Cidr, allocator: Allocator) -> Option<Self> {
        let (first, last) = allocator.usable_range(&block)?;
        Some(Pool {
            block,
            allocator,
            first,
            last,
            next_unused: first,
            released: BTreeSet::new(),
            allocated: 0,
            cursor: first,
        })
    }
    /// The block this pool allocates from.
    pub fn block(&self) -> Ipv4Cidr {
        self.block
    }
    /// Addresses this pool can ever hand out.
    pub fn usable(&self) -> u64 {
        self.last - self.first + 1
    }
    /// Addresses currently handed out.
    pub fn allocated(&self) -> u64 {
        self.allocated
    }
    /// Addresses still free.
    pub fn free(&self) -> u64 {
        self.usable() - self.allocated
    }
    /// Hands out an address. host-local goes round the range: the first
    /// free address after the last one it handed out, wrapping at the end
    /// (`allocator.go`, `lastReservedIP`), so a released address comes back
    /// only after the rest of the range; whereabouts and aws-cni here hand
    /// out the lowest free address (whereabouts iterates the range from its
    /// start; ipamd's 30 s cool-down is not modelled).
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        let round_robin = self.allocator == Allocator::HostLocal;
        let offset = if round_robin && self.next_unused <= self.last {
            self.next_unused += 1;
            self.next_unused - 1
        } else if round_robin {
            let o = self
                .released
                .range(self.cursor..)
                .next()
                .or_else(|| self.released.first())
                .copied()?;
            self.released.remove(&o);
            o
        } else if let Some(o) = self.released.pop_first() {
            o
        } else if self.next_unused <= self.last {
            self.next_unused += 1;
            self.next_unused - 1
        } else {
            return None;
        };
        self.cursor = offset + 1;
        self.allocated += 1;
        Some(self.block.nth(offset))
    }
    /// Returns an address; false if it was not handed out by this pool.
    pub fn release(&mut self, ip: Ipv4Addr) -> bool {
        if !self.block.contains(ip) {
            return false;
        }
        let offset = u64::from(u32::from(ip) - u32::from(self.block.network()));
        if offset < self.first || offset >= self.next_unused || !self.released.insert(offset) {
            return false;
        }
        self.allocated -= 1;
        true
    }
    /// The range-set text the plugin prints (`10.0.0.1-10.0.0.254`).
    pub fn range_text(&self) -> String {
        format!(
            "{}-{}",
            self.block.nth(self.first),
            self.block.nth(self.last)
        )
    }
    /// The CNI error when this pool (or this set of pools, tried in order)
    /// is exhausted, in the words of the pools' plugin (module docs).
    pub fn exhausted_message(pools: &[Pool]) -> String {
        let Some(last) = pools.last() else {
            return "no IP pool configured".into();
        };
        let plugin = last.allocator.plugin_name();
        let reason = match last.allocator {
            Allocator::HostLocal => {
                let ranges: Vec<String> = pools.iter().map(Pool::range_text).collect();
                format!(
                    "failed to allocate for range 0: no IP addresses available in range set: {}",
                    ranges.join(",")
                )
            }
            Allocator::Flat => format!(
                "error at storage engine: Could not allocate IP in range: ip: {} / - {} / range: {} / excludeRanges: []",
                last.block.nth(last.first),
                last.block.nth(last.last),
                last.block
            ),
            Allocator::AwsVpc => "add cmd: failed to assign an IP address to container".into(),
        };
        format!("plugin type=\"{plugin}\" failed (add): {reason}")
    }
}

/// How pod CIDRs are laid out in the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IpamLayout {
    /// One cluster-wide pool.
    Flat {
        /// The pod network.
        pod_cidr: Ipv4Cidr,
        /// Which allocator reserves addresses.
        allocator: Allocator,
    },
    /// One block per node, cut from the cluster CIDR.
    PerNode {
        /// The cluster CIDR (`--cluster-cidr`).
        cluster_cidr: Ipv4Cidr,
        /// Bits of each node's block (`--node-cidr-mask-size`, default 24).
        node_mask: u8,
    },
}

/// The cluster's pod address pools.
#[derive(Clone, Debug)]
pub struct Ipam {
    layout: IpamLayout,
    /// Flat layout: the pools in order of addition. Per-node: unused.
    shared: Vec<Pool>,
    /// Per-node layout: each node's block (None: no block was left).
    per_node: Vec<Option<Pool>>,
    blocks_assigned: u64,
    /// Per-node layout: ranges added later, with the blocks cut from each.
    extra_ranges: Vec<(Ipv4Cidr, u64)>,
}

/// Where a pod's address came from, so it can be returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The address.
    pub ip: Ipv4Addr,
    /// Flat layout: the pool's index; per-node: the node's.
    pool: u32,
}

impl Ipam {
    /// Pools for `layout`, with nodes registered later by [`Ipam::add_node`].
    pub fn new(layout: IpamLayout) -> Self {
        let shared = match &layout {
            IpamLayout::Flat {
                pod_cidr,
                allocator,
            } => Pool::new(*pod_cidr, *allocator).into_iter().collect(),
            IpamLayout::PerNode { .. } => Vec::new(),
        };
        Ipam {
            layout,
            shared,
            per_node: Vec::new(),
            blocks_assigned: 0,
            extra_ranges: Vec::new(),
        }
    }

    /// Registers the next node; returns its pod CIDR (per-node layout), or
    /// `None` when the cluster CIDR has no block left (the node then never
    /// becomes network-ready) or the layout is flat.
    pub fn add_node(&mut self) -> Option<Ipv4Cidr> {
        match self.layout {
            IpamLayout::Flat { .. } => {
                self.per_node.push(None);
                None
            }
            IpamLayout::PerNode {
                cluster_cidr,
                node_mask,
            } => {
                let block = cluster_cidr.subnet(node_mask, self.blocks_assigned);
                if block.is_some() {
                    self.blocks_assigned += 1;
                }
                self.per_node
                    .push(block.and_then(|b| Pool::new(b, Allocator::HostLocal)));
                block
            }
        }
    }

    /// Registers the next node without a pod CIDR: a node pool's standby
    /// slot, which gets its block when it is created
    /// ([`Ipam::assign_block`]).
    pub fn add_standby_node(&mut self) {
        self.per_node.push(None);
    }

    /// Per-node layout: cuts the next free block for `node` (created after
    /// the start) from the cluster CIDR, then from the ranges added by
    /// [`Ipam::add_node_range`] in order; `None` when every range is spent
    /// (or the layout is flat).
    pub fn assign_block(&mut self, node: usize) -> Option<Ipv4Cidr> {
        let IpamLayout::PerNode {
            cluster_cidr,
            node_mask,
        } = self.layout
        else {
            return None;
        };
        let block = match cluster_cidr.subnet(node_mask, self.blocks_assigned) {
            Some(b) => {
                self.blocks_assigned += 1;
                b
            }
            None => {
                let (range, used) = self
                    .extra_ranges
                    .iter_mut()
                    .find(|(r, used)| r.subnet(node_mask, *used).is_some())?;
                let b = range.subnet(node_mask, *used)?;
                *used += 1;
                b
            }
        };
        if let Some(slot) = self.per_node.get_mut(node) {
            *slot = Pool::new(block, Allocator::HostLocal);
        }
        Some(block)
    }

    /// Per-node layout: another range node blocks are cut from once the
    /// cluster CIDR is spent (GKE's additional pod ranges). Returns an
    /// error text if it overlaps a range in use or the layout is flat.
    pub fn add_node_range(&mut self, range: Ipv4Cidr) -> Result<(), String> {
        let IpamLayout::PerNode {
            cluster_cidr,
            node_mask,
        } = self.layout
        else {
            return Err("node ranges apply to the per-node layout; flat layouts add pools".into());
        };
        if range.prefix() > node_mask {
            return Err(format!(
                "{range} is smaller than one node's /{node_mask} block"
            ));
        }
        let used = std::iter::once(&cluster_cidr).chain(self.extra_ranges.iter().map(|(r, _)| r));
        if let Some(r) = used.into_iter().find(|r| r.overlaps(&range)) {
            return Err(format!("{range} overlaps the pod range {r}"));
        }
        self.extra_ranges.push((range, 0));
        Ok(())
    }

    /// Node blocks still free to assign (per-node layout; 0 when flat).
    pub fn blocks_free(&self) -> u64 {
        let IpamLayout::PerNode {
            cluster_cidr,
            node_mask,
        } = self.layout
        else {
            return 0;
        };
        let blocks = |r: &Ipv4Cidr| 1u64 << (node_mask - r.prefix().min(node_mask));
        blocks(&cluster_cidr).saturating_sub(self.blocks_assigned)
            + self
                .extra_ranges
                .iter()
                .map(|(r, used)| blocks(r).saturating_sub(*used))
                .sum::<u64>()
    }

    /// Whether node `node` can host pods at all (per-node layout: it got a block).
    pub fn node_has_pod_cidr(&self, node: usize) -> bool {
        match self.layout {
            IpamLayout::Flat { .. } => true,
            IpamLayout::PerNode { .. } => matches!(self.per_node.get(node), Some(Some(_))),
        }
    }

    /// Adds a pool to a flat layout (a new IPPool / secondary CIDR).
    /// Returns an error text if it overlaps an existing pool or the layout is per-node.
    pub fn add_pool(&mut self, block: Ipv4Cidr) -> Result<(), String> {
        let allocator =
            match self.layout {
                IpamLayout::Flat { allocator, .. } => allocator,
                IpamLayout::PerNode { .. } => return Err(
                    "extra pools apply to the flat layout; per-node layouts grow the cluster CIDR"
                        .into(),
                ),
            };
        if let Some(p) = self.shared.iter().find(|p| p.block.overlaps(&block)) {
            return Err(format!("{block} overlaps the existing pool {}", p.block));
        }
        let pool =
            Pool::new(block, allocator).ok_or_else(|| format!("{block} has no usable address"))?;
        self.shared.push(pool);
        Ok(())
    }

    /// An address for a pod on `node`, or the CNI's error text.
    pub fn allocate(&mut self, node: usize) -> Result<Lease, String> {
        match self.layout {
            IpamLayout::Flat { .. } => {
                for (i, p) in self.shared.iter_mut().enumerate() {
                    if let Some(ip) = p.allocate() {
                        return Ok(Lease { ip, pool: i as u32 });
                    }
                }
                Err(Pool::exhausted_message(&self.shared))
            }
            IpamLayout::PerNode { .. } => match self.per_node.get_mut(node) {
                Some(Some(p)) => match p.allocate() {
                    Some(ip) => Ok(Lease {
                        ip,
                        pool: node as u32,
                    }),
                    None => Err(Pool::exhausted_message(std::slice::from_ref(p))),
                },
                _ => Err("network plugin not ready: node has no pod CIDR assigned".into()),
            },
        }
    }

    /// Returns a pod's address.
    pub fn release(&mut self, lease: Lease) {
        let pool = match self.layout {
            IpamLayout::Flat { .. } => self.shared.get_mut(lease.pool as usize),
            IpamLayout::PerNode { .. } => self
                .per_node
                .get_mut(lease.pool as usize)
                .and_then(Option::as_mut),
        };
        if let Some(p) = pool {
            p.release(lease.ip);
        }
    }

    /// Addresses that can ever be handed out, over all pools.
    pub fn usable(&self) -> u64 {
        self.pools().map(Pool::usable).sum()
    }
    /// Addresses handed out now, over all pools.
    pub fn allocated(&self) -> u64 {
        self.pools().map(Pool::allocated).sum()
    }
    /// Every pool, flat ones first then per-node ones in node order.
    pub fn pools(&self) -> impl Iterator<Item = &Pool> {
        self.shared.iter().chain(self.per_node.iter().flatten())
    }
    /// The layout this IPAM was built from.
    pub fn layout(&self) -> &IpamLayout {
        &self.layout
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cidr(s: &str) -> Ipv4Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn usable_counts_per_allocator() {
        let b = cidr("10.0.0.0/24");
        assert_eq!(Pool::new(b, Allocator::Flat).unwrap().usable(), 254);
        assert_eq!(Pool::new(b, Allocator::HostLocal).unwrap().usable(), 253);
        assert_eq!(Pool::new(b, Allocator::AwsVpc).unwrap().usable(), 251);
        assert_eq!(
            Pool::new(cidr("10.0.0.0/22"), Allocator::Flat)
                .unwrap()
                .usable(),
            1022
        );
        assert!(Pool::new(cidr("10.0.0.0/31"), Allocator::Flat).is_none());
    }

    #[test]
    fn host_local_goes_round_the_range_and_flat_reuses_the_lowest() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        let mut p = Pool::new(cidr("10.0.0.0/29"), Allocator::HostLocal).unwrap();
        // .2 .. .6 usable.
        let a: Vec<Ipv4Addr> = (0..3).filter_map(|_| p.allocate()).collect();
        assert_eq!(a, [ip("10.0.0.2"), ip("10.0.0.3"), ip("10.0.0.4")]);
        assert!(p.release(ip("10.0.0.3")));
        // The released .3 waits until the rest of the range is used.
        assert_eq!(p.allocate(), Some(ip("10.0.0.5")));
        assert_eq!(p.allocate(), Some(ip("10.0.0.6")));
        assert!(p.release(ip("10.0.0.5")));
        assert_eq!(p.allocate(), Some(ip("10.0.0.3")));
        assert_eq!(p.allocate(), Some(ip("10.0.0.5")));
        assert_eq!(p.allocate(), None);
        let mut f = Pool::new(cidr("10.0.0.0/29"), Allocator::Flat).unwrap();
        let _ = (0..3).filter_map(|_| f.allocate()).count();
        assert!(f.release(ip("10.0.0.2")));
        assert_eq!(f.allocate(), Some(ip("10.0.0.2")));
    }

    #[test]
    fn cidr_parse_errors_name_the_problem() {
        assert!(matches!(
            "10.0.0.0/33".parse::<Ipv4Cidr>(),
            Err(CidrError::BadPrefix(_))
        ));
        assert!(matches!(
            "10.0.0.0".parse::<Ipv4Cidr>(),
            Err(CidrError::NoPrefix(_))
        ));
        assert!(matches!(
            "10.0.300.0/24".parse::<Ipv4Cidr>(),
            Err(CidrError::BadAddress(_))
        ));
        match "10.0.0.5/24".parse::<Ipv4Cidr>() {
            Err(CidrError::HostBits { network, .. }) => assert_eq!(network, "10.0.0.0/24"),
            other => panic!("{other:?}"),
        }
        assert_eq!(cidr("10.244.0.0/16").to_string(), "10.244.0.0/16");
    }

    #[test]
    fn per_node_blocks_cap_the_node_count() {
        // docs/calibration.md, row `ipam-gke-node-cap`: a /16 with /24 per node
        // caps at 256 nodes.
        let mut ipam = Ipam::new(IpamLayout::PerNode {
            cluster_cidr: cidr("10.0.0.0/16"),
            node_mask: 24,
        });
        let got = (0..300).filter(|_| ipam.add_node().is_some()).count();
        assert_eq!(got, 256);
        assert!(ipam.node_has_pod_cidr(255));
        assert!(!ipam.node_has_pod_cidr(256));
        assert!(ipam.allocate(256).is_err());
        assert_eq!(
            ipam.allocate(0).unwrap().ip,
            "10.0.0.2".parse::<Ipv4Addr>().unwrap()
        );
    }

    #[test]
    fn exhaustion_gives_each_plugins_own_message() {
        let exhausted = |allocator, block| {
            let mut ipam = Ipam::new(IpamLayout::Flat {
                pod_cidr: cidr(block),
                allocator,
            });
            while ipam.allocate(0).is_ok() {}
            ipam.allocate(0).unwrap_err()
        };
        assert_eq!(
            exhausted(Allocator::HostLocal, "10.0.0.0/29"),
            "plugin type=\"host-local\" failed (add): failed to allocate for range 0: \
             no IP addresses available in range set: 10.0.0.2-10.0.0.6"
        );
        assert_eq!(
            exhausted(Allocator::Flat, "10.0.0.0/30"),
            "plugin type=\"whereabouts\" failed (add): error at storage engine: Could not allocate IP \
             in range: ip: 10.0.0.1 / - 10.0.0.2 / range: 10.0.0.0/30 / excludeRanges: []"
        );
        assert_eq!(
            exhausted(Allocator::AwsVpc, "10.0.0.0/29"),
            "plugin type=\"aws-cni\" failed (add): add cmd: failed to assign an IP address to container"
        );
    }

    #[test]
    fn a_pool_added_to_an_exhausted_flat_network_serves_the_next_pod() {
        let mut ipam = Ipam::new(IpamLayout::Flat {
            pod_cidr: cidr("10.0.0.0/30"),
            allocator: Allocator::Flat,
        });
        assert!(ipam.allocate(0).is_ok());
        assert!(ipam.allocate(0).is_ok());
        assert!(ipam.allocate(0).is_err());
        ipam.add_pool(cidr("10.0.1.0/30")).unwrap();
        assert!(
            ipam.add_pool(cidr("10.0.0.0/24")).is_err(),
            "overlap refused"
        );
        assert_eq!(
            ipam.allocate(0).unwrap().ip,
            "10.0.1.1".parse::<Ipv4Addr>().unwrap()
        );
    }

    proptest! {
        #[test]
        fn never_hands_out_an_address_twice(ops in proptest::collection::vec(any::<bool>(), 1..400)) {
            let mut pool = Pool::new(cidr("10.1.0.0/25"), Allocator::HostLocal).unwrap();
            let mut held: Vec<Ipv4Addr> = Vec::new();
            for alloc in ops {
                if alloc || held.is_empty() {
                    if let Some(ip) = pool.allocate() {
                        prop_assert!(!held.contains(&ip));
                        held.push(ip);
                    } else {
                        prop_assert_eq!(held.len() as u64, pool.usable());
                    }
                } else {
                    let ip = held.swap_remove(held.len() / 2);
                    prop_assert!(pool.release(ip));
                    prop_assert!(!pool.release(ip), "double release refused");
                }
                prop_assert_eq!(pool.allocated() + pool.free(), pool.usable());
                prop_assert_eq!(pool.allocated(), held.len() as u64);
            }
        }
    }
}
