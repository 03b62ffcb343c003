//! # CIDR planning: which address ranges collide, and what breaks
//!
//! ## Scope
//! A network plan is a set of named IPv4 ranges with roles: VPCs (one or
//! several CIDR blocks each) and their subnets (each in a zone), the
//! cluster's pod range(s) and Service range, and peers: a peered VPC (its
//! CIDR blocks), a VPN or on-prem network (the routes it advertises), a
//! second cluster (its pod and Service ranges). [`check`] finds every pair
//! of ranges that share addresses (sorted sweep, O(n log n + pairs found))
//! and says what each overlap breaks, as an operator meets it:
//!
//! - **VPC peering refused**: a peered VPC whose blocks overlap any block of
//!   the cluster's VPC. AWS: "You cannot create a VPC peering connection
//!   between VPCs that have matching or overlapping IPv4 or IPv6 CIDR
//!   blocks", also when only one of several blocks overlaps; the connection
//!   is created and goes to `failed` (CreateVpcPeeringConnection API). The
//!   exact `Status.Message` AWS sets is unknown; the tools' texts are
//!   Terraform's `unexpected state 'failed', wanted target
//!   'pending-acceptance'` and CloudFormation's "VpcPeeringConnection failed
//!   to stabilize" (docs/calibration.md, row `cidr-peering-overlap`).
//! - **Peer addresses cut off**: a peer's range inside the pod or Service
//!   range. Pods send packets for those addresses into the overlay (the
//!   node's route for the pod range, or kube-proxy's rules for Service
//!   addresses), so pods cannot reach them, and replies from the peer to
//!   pods in the shared addresses go to the peer's own hosts. A peer's range
//!   inside the cluster VPC's blocks is cut off too: the VPC's local route
//!   wins even over more specific VPN routes (AWS Site-to-Site VPN, "Route
//!   tables and VPN route priority": "If propagated routes ... overlap with
//!   the local route for your VPC, the local route is most preferred even
//!   if the propagated routes are more specific"; docs/calibration.md, row `cidr-vpn-local-route`).
//!   The pod-range half is the model's reading of node routing, no source
//!   quotes it.
//! - **Node blocks lost**: the Service range inside the pod range.
//!   kube-controller-manager's range allocator marks every node block that
//!   intersects the Service range as used ("Marks all CIDRs with
//!   subNetMaskSize that belongs to serviceCIDR as used", `range_allocator.go`
//!   `filterOutServiceRange`), silently; kubeadm has no check (docs/calibration.md,
//!   row `cidr-service-in-pods`).
//! - **Subnet refused**: a subnet outside its VPC's blocks, overlapping
//!   another subnet of the VPC, or sized outside /16../28 (AWS CreateSubnet:
//!   "a subset of a VPC's IPv4 CIDR block", "the subnets' CIDR blocks must
//!   not overlap", "/28 netmask ... /16 netmask"; docs/calibration.md, row `cidr-aws-subnet`).
//!   A VPC block outside /16../28 is refused the same way. AWS's error codes
//!   are not quoted here (unknown).
//! - Two peers over each other: a note, not counted among the plan's
//!   overlaps (the peers are givens); the cluster VPC's route table sends
//!   the shared addresses to one of them ("Longest prefix", then "Static
//!   routes" before "Propagated routes", AWS VPC user guide, "How route
//!   priority works"; docs/calibration.md, row `cidr-vpn-local-route`).
//! - Any other overlap (a cluster range over a subnet of its own
//!   VPC, two pod ranges): listed, with "addresses claimed twice" and no
//!   named failure. Pod and Service ranges inside the cluster's own VPC
//!   blocks are not overlaps: VPC-native clusters take pod addresses from
//!   the VPC (GKE alias ranges, AWS secondary CIDRs).
//!
//! It also gives the plan's capacity: addresses per range, usable subnet
//! addresses (AWS reserves the first four and the last, docs/calibration.md,
//! row `ipam-reserved`), and the nodes the pod ranges hold for the per-node
//! mask: 2^(node_mask - pod_prefix) blocks per range (docs/calibration.md,
//! row `ipam-gke-node-cap`), less the blocks lost. [`planner::propose`] lays out
//! a plan that fits: given the peers and the sizes wanted, non-overlapping
//! ranges from RFC 1918 space, first fit at the lowest address.
//!
//! ## Parameters
//! None beyond the plan: the AWS limits above (/16../28, five reserved
//! addresses per subnet) are constants with their rows.
//!
//! ## What it emits
//! A [`PlanCheck`]: every overlap with its [`Consequence`], the findings an
//! operator reads (one line each), and the figures (`overlaps`,
//! `peering_refused`, `vpn_addresses_cut_off`, `node_blocks_lost`,
//! `max_nodes`, ...).
//!
//! ## Validation
//! Unit tests: the sweep against a brute-force pairwise reference
//! (property test), containment and adjacency edge cases (/0, /32, touching
//! ranges), node blocks lost, the GKE cap (a /16 in /24 blocks holds 256
//! nodes), and the planner (its plans never overlap and fit the sizes
//! asked, property test).
//!
//! Limitations: IPv4 only; one cluster VPC; routes are taken as written
//! (no route tables per subnet); AWS rules only (GCP has no VPC-wide CIDR).

use crate::ipam::Ipv4Cidr;

pub mod planner;

/// AWS's smallest VPC and subnet block: /28 (CreateSubnet; docs/calibration.md, row `cidr-aws-subnet`).
pub const AWS_MIN_BLOCK_PREFIX: u8 = 28;
/// AWS's largest VPC and subnet block: /16 (docs/calibration.md, row `cidr-aws-subnet`).
pub const AWS_MAX_BLOCK_PREFIX: u8 = 16;
/// Addresses AWS reserves in each subnet: the first four and the last (docs/calibration.md, row `ipam-reserved`).
pub const AWS_SUBNET_RESERVED: u64 = 5;

/// A subnet of a VPC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subnet {
    /// Name.
    pub name: String,
    /// Its block.
    pub cidr: Ipv4Cidr,
    /// Its zone.
    pub zone: String,
}

/// A VPC: its blocks and subnets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vpc {
    /// Name.
    pub name: String,
    /// Its CIDR blocks (primary first).
    pub cidrs: Vec<Ipv4Cidr>,
    /// Its subnets.
    pub subnets: Vec<Subnet>,
}

/// The cluster's own ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterRanges {
    /// Name.
    pub name: String,
    /// Index of its VPC in [`Plan::vpcs`].
    pub vpc: usize,
    /// Pod ranges (the cluster CIDR(s)).
    pub pods: Vec<Ipv4Cidr>,
    /// The Service range.
    pub services: Ipv4Cidr,
    /// The per-node block's prefix length (`--node-cidr-mask-size`).
    pub node_mask: u8,
}

/// What a peer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PeerKind {
    /// A VPC peered with the cluster's VPC: its CIDR blocks.
    Vpc,
    /// A VPN or on-prem network: the routes it advertises.
    Vpn,
    /// A second cluster: its pod and Service ranges.
    Cluster,
}

impl PeerKind {
    /// As written in files (`vpc`, `vpn`, `cluster`).
    pub fn name(self) -> &'static str {
        match self {
            PeerKind::Vpc => "vpc",
            PeerKind::Vpn => "vpn",
            PeerKind::Cluster => "cluster",
        }
    }
}

/// A network the cluster talks to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Name.
    pub name: String,
    /// What it is.
    pub kind: PeerKind,
    /// Its ranges.
    pub cidrs: Vec<Ipv4Cidr>,
}

/// A network plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// VPCs (the cluster's among them).
    pub vpcs: Vec<Vpc>,
    /// The cluster.
    pub cluster: ClusterRanges,
    /// Peers.
    pub peers: Vec<Peer>,
}

/// The role of a range in a plan; the indices point into the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Block `.1` of VPC `.0`.
    VpcBlock(usize, usize),
    /// Subnet `.1` of VPC `.0`.
    Subnet(usize, usize),
    /// The cluster's pod range `.0`.
    Pods(usize),
    /// The cluster's Service range.
    Services,
    /// Range `.1` of peer `.0`.
    Peer(usize, usize),
}

/// One range of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    /// What it is.
    pub role: Role,
    /// Its block.
    pub cidr: Ipv4Cidr,
}

/// What an overlap breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consequence {
    /// A peered VPC overlaps the cluster's VPC: peering refused.
    PeeringRefused,
    /// A peer's addresses that the cluster's pods cannot reach.
    CutOff,
    /// The Service range inside the pod range: node blocks marked used.
    NodeBlocksLost,
    /// AWS refuses the block (a subnet over another subnet of its VPC, or outside it).
    Refused,
    /// Addresses claimed twice, with no failure the model names.
    Ambiguous,
    /// Two peers claim the same addresses: the cluster VPC's route table
    /// sends them to one (longest prefix, then static before propagated).
    /// The peers are givens, so this is not counted among the plan's overlaps.
    PeersOverlap,
}

impl Consequence {
    /// Short name, for reports.
    pub fn name(self) -> &'static str {
        match self {
            Consequence::PeeringRefused => "peering refused",
            Consequence::CutOff => "addresses cut off",
            Consequence::NodeBlocksLost => "node blocks lost",
            Consequence::Refused => "refused by AWS",
            Consequence::Ambiguous => "addresses claimed twice",
            Consequence::PeersOverlap => "peers overlap",
        }
    }
}

/// Two ranges that share addresses (`outer` contains `inner`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Overlap {
    /// Index into [`PlanCheck::ranges`] of the larger (or equal, first listed) range.
    pub outer: usize,
    /// Index of the range inside it.
    pub inner: usize,
    /// What it breaks.
    pub consequence: Consequence,
}

/// What the check found, as an operator meets it: one line each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// What it breaks.
    pub consequence: Consequence,
    /// The line.
    pub message: String,
}

/// The figures of a checked plan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlanFigures {
    /// Overlapping pairs that break something or claim addresses twice.
    pub overlaps: u64,
    /// Pairs of peers that overlap each other (not counted in `overlaps`).
    pub peer_overlaps: u64,
    /// Peered VPCs whose peering is refused.
    pub peering_refused: u64,
    /// VPN and on-prem addresses the cluster's pods cannot reach.
    pub vpn_addresses_cut_off: u64,
    /// Addresses of every peer the cluster's pods cannot reach.
    pub addresses_cut_off: u64,
    /// Node blocks marked used because the Service range lies in the pod range.
    pub node_blocks_lost: u64,
    /// Nodes the pod ranges hold, less the blocks lost.
    pub max_nodes: u64,
    /// Subnets AWS refuses (outside the VPC, overlapping, badly sized).
    pub subnets_refused: u64,
    /// VPC blocks AWS refuses (badly sized).
    pub vpc_blocks_refused: u64,
    /// Addresses in the pod ranges.
    pub pod_addresses: u64,
    /// Addresses in the Service range.
    pub service_addresses: u64,
    /// Usable addresses of the cluster VPC's subnets (five reserved each).
    pub subnet_addresses: u64,
}

/// A checked plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanCheck {
    /// Every range, in plan order (VPC blocks, subnets, pods, Services, peers).
    pub ranges: Vec<Range>,
    /// Every overlap that matters, sorted by (outer, inner).
    pub overlaps: Vec<Overlap>,
    /// What breaks, one line each, in a fixed order.
    pub findings: Vec<Finding>,
    /// Ranges cut off, per peer: (peer index, the blocks).
    pub cut_off: Vec<(usize, Vec<Ipv4Cidr>)>,
    /// The figures.
    pub figures: PlanFigures,
}

/// First address of a block.
pub fn first(c: &Ipv4Cidr) -> u64 {
    u64::from(u32::from(c.network()))
}

/// Last address of a block.
pub fn last(c: &Ipv4Cidr) -> u64 {
    first(c) + c.size() - 1
}

/// Whether `outer` contains all of `inner`.
pub fn contains(outer: &Ipv4Cidr, inner: &Ipv4Cidr) -> bool {
    outer.prefix() <= inner.prefix() && outer.overlaps(inner)
}

/// Every pair of `cidrs` that share an address, as (containing, contained)
/// index pairs, each pair once, sorted. Two CIDR blocks that share an
/// address nest, so a sweep in address order with a stack of the blocks
/// still open finds them all in O(n log n + pairs).
pub fn overlapping_pairs(cidrs: &[Ipv4Cidr]) -> Vec<(usize, usize)> {
    let mut order: Vec<usize> = (0..cidrs.len()).collect();
    // Start ascending, larger blocks first, then input order.
    order.sort_by_key(|&i| (first(&cidrs[i]), cidrs[i].prefix(), i));
    let mut open: Vec<usize> = Vec::new();
    let mut pairs = Vec::new();
    for &i in &order {
        let start = first(&cidrs[i]);
        while open.last().is_some_and(|&j| last(&cidrs[j]) < start) {
            open.pop();
        }
        // Every open block contains this one (they nest).
        pairs.extend(open.iter().map(|&j| (j, i)));
        open.push(i);
    }
    pairs.sort_unstable();
    pairs
}

/// The blocks of `cidrs` not inside another one: their union, as disjoint
/// blocks in address order.
pub fn union(cidrs: &[Ipv4Cidr]) -> Vec<Ipv4Cidr> {
    let mut v = cidrs.to_vec();
    v.sort_by_key(|c| (first(c), c.prefix()));
    let mut out: Vec<Ipv4Cidr> = Vec::new();
    for c in v {
        if out.last().is_some_and(|o| contains(o, &c)) {
            continue;
        }
        out.push(c);
    }
    out
}

/// Addresses in the union of `cidrs`.
pub fn union_size(cidrs: &[Ipv4Cidr]) -> u64 {
    union(cidrs).iter().map(Ipv4Cidr::size).sum()
}

/// Node blocks of `node_mask` a pod range holds: 2^(node_mask - prefix), 0
/// if the range is smaller than one block.
pub fn node_blocks(pods: &Ipv4Cidr, node_mask: u8) -> u64 {
    if node_mask < pods.prefix() || node_mask > 32 {
        0
    } else {
        1u64 << (node_mask - pods.prefix())
    }
}

/// Node blocks of `pods` (per `node_mask`) that intersect `services`: the
/// blocks kube-controller-manager marks used.
pub fn blocks_lost(pods: &Ipv4Cidr, services: &Ipv4Cidr, node_mask: u8) -> u64 {
    if !pods.overlaps(services) || node_blocks(pods, node_mask) == 0 {
        return 0;
    }
    // The shared addresses are the smaller block.
    let shared = if pods.prefix() >= services.prefix() {
        pods
    } else {
        services
    };
    if shared.prefix() <= node_mask {
        1u64 << (node_mask - shared.prefix())
    } else {
        1
    }
}

impl Plan {
    /// Every range of the plan, in plan order.
    pub fn ranges(&self) -> Vec<Range> {
        let mut out = Vec::new();
        for (v, vpc) in self.vpcs.iter().enumerate() {
            for (b, c) in vpc.cidrs.iter().enumerate() {
                out.push(Range {
                    role: Role::VpcBlock(v, b),
                    cidr: *c,
                });
            }
        }
        for (v, vpc) in self.vpcs.iter().enumerate() {
            for (s, sn) in vpc.subnets.iter().enumerate() {
                out.push(Range {
                    role: Role::Subnet(v, s),
                    cidr: sn.cidr,
                });
            }
        }
        for (i, c) in self.cluster.pods.iter().enumerate() {
            out.push(Range {
                role: Role::Pods(i),
                cidr: *c,
            });
        }
        out.push(Range {
            role: Role::Services,
            cidr: self.cluster.services,
        });
        for (p, peer) in self.peers.iter().enumerate() {
            for (i, c) in peer.cidrs.iter().enumerate() {
                out.push(Range {
                    role: Role::Peer(p, i),
                    cidr: *c,
                });
            }
        }
        out
    }

    /// How a range is named in findings: `subnet nodes-a (10.0.0.0/19)`.
    pub fn label(&self, r: &Range) -> String {
        let what = match r.role {
            Role::VpcBlock(v, _) => format!("VPC {}", self.vpcs[v].name),
            Role::Subnet(v, s) => format!(
                "subnet {} of VPC {}",
                self.vpcs[v].subnets[s].name, self.vpcs[v].name
            ),
            Role::Pods(_) => format!("pod range of cluster {}", self.cluster.name),
            Role::Services => format!("Service range of cluster {}", self.cluster.name),
            Role::Peer(p, _) => {
                let peer = &self.peers[p];
                let kind = match peer.kind {
                    PeerKind::Vpc => "peered VPC",
                    PeerKind::Vpn => "VPN",
                    PeerKind::Cluster => "cluster",
                };
                format!("{kind} {}", peer.name)
            }
        };
        format!("{what} ({})", r.cidr)
    }

    /// What an overlap of `a` and `b` breaks; `None` where the two are
    /// meant to nest (a subnet in its VPC, a cluster range in its VPC, two
    /// blocks of one VPC or one peer are refused elsewhere or legal).
    fn consequence(&self, a: Role, b: Role) -> Option<Consequence> {
        use Role::*;
        let home = self.cluster.vpc;
        let (a, b) = if a <= b { (a, b) } else { (b, a) };
        Some(match (a, b) {
            (VpcBlock(v, _), Subnet(w, _)) if v == w => return None,
            (VpcBlock(v, _), Pods(_) | Services) if v == home => return None,
            (VpcBlock(v, _), VpcBlock(w, _)) if v == w => Consequence::Ambiguous,
            (Subnet(v, _), Subnet(w, _)) if v == w => Consequence::Refused,
            (VpcBlock(v, _) | Subnet(v, _), Peer(p, _))
                if v == home && self.peers[p].kind == PeerKind::Vpc =>
            {
                Consequence::PeeringRefused
            }
            (VpcBlock(v, _) | Subnet(v, _), Peer(..)) if v == home => Consequence::CutOff,
            (Pods(_) | Services, Peer(..)) => Consequence::CutOff,
            (Pods(_), Services) => Consequence::NodeBlocksLost,
            (Peer(p, _), Peer(q, _)) if p == q => return None,
            (Peer(..), Peer(..)) => Consequence::PeersOverlap,
            _ => Consequence::Ambiguous,
        })
    }
}

/// Checks a plan: every overlap, what it breaks, and the plan's capacity.
pub fn check(plan: &Plan) -> PlanCheck {
    let ranges = plan.ranges();
    let cidrs: Vec<Ipv4Cidr> = ranges.iter().map(|r| r.cidr).collect();
    let mut overlaps: Vec<Overlap> = overlapping_pairs(&cidrs)
        .into_iter()
        .filter_map(|(outer, inner)| {
            plan.consequence(ranges[outer].role, ranges[inner].role)
                .map(|consequence| Overlap {
                    outer,
                    inner,
                    consequence,
                })
        })
        .collect();
    overlaps.sort_by_key(|o| (o.outer, o.inner));
    let mut findings = Vec::new();
    let mut fig = PlanFigures {
        overlaps: overlaps
            .iter()
            .filter(|o| o.consequence != Consequence::PeersOverlap)
            .count() as u64,
        ..PlanFigures::default()
    };
    let say = |findings: &mut Vec<Finding>, consequence, message: String| {
        findings.push(Finding {
            consequence,
            message,
        })
    };

    // VPC blocks and subnets AWS refuses.
    for (v, vpc) in plan.vpcs.iter().enumerate() {
        for c in &vpc.cidrs {
            if !(AWS_MAX_BLOCK_PREFIX..=AWS_MIN_BLOCK_PREFIX).contains(&c.prefix()) {
                fig.vpc_blocks_refused += 1;
                say(
                    &mut findings,
                    Consequence::Refused,
                    format!(
                        "VPC {} block {c}: refused, AWS takes VPC blocks from /16 to /28",
                        vpc.name
                    ),
                );
            }
        }
        for (s, sn) in vpc.subnets.iter().enumerate() {
            let mut why = Vec::new();
            if !vpc.cidrs.iter().any(|b| contains(b, &sn.cidr)) {
                why.push("it is not inside any block of the VPC".to_string());
            }
            if !(AWS_MAX_BLOCK_PREFIX..=AWS_MIN_BLOCK_PREFIX).contains(&sn.cidr.prefix()) {
                why.push("AWS takes subnets from /16 to /28".to_string());
            }
            for o in &overlaps {
                if o.consequence != Consequence::Refused {
                    continue;
                }
                let other = match (ranges[o.outer].role, ranges[o.inner].role) {
                    (Role::Subnet(w, x), Role::Subnet(_, y)) if w == v && x == s => y,
                    (Role::Subnet(w, x), Role::Subnet(_, y)) if w == v && y == s => x,
                    _ => continue,
                };
                why.push(format!(
                    "it overlaps subnet {} ({})",
                    vpc.subnets[other].name, vpc.subnets[other].cidr
                ));
            }
            if !why.is_empty() {
                fig.subnets_refused += 1;
                say(
                    &mut findings,
                    Consequence::Refused,
                    format!(
                        "subnet {} ({}) of VPC {}: refused, {}",
                        sn.name,
                        sn.cidr,
                        vpc.name,
                        why.join("; ")
                    ),
                );
            }
        }
    }

    // Peering refused, one finding per peered VPC.
    for (p, peer) in plan.peers.iter().enumerate() {
        let pairs: Vec<String> = overlaps
            .iter()
            .filter(|o| o.consequence == Consequence::PeeringRefused)
            .filter(|o| {
                [o.outer, o.inner]
                    .iter()
                    .any(|&i| matches!(ranges[i].role, Role::VpcBlock(..)))
            })
            .filter_map(|o| {
                let (x, y) = (&ranges[o.outer], &ranges[o.inner]);
                match (x.role, y.role) {
                    (Role::Peer(q, _), _) | (_, Role::Peer(q, _)) if q == p => {
                        let (ours, theirs) = if matches!(x.role, Role::Peer(..)) {
                            (y, x)
                        } else {
                            (x, y)
                        };
                        Some(format!("{} overlaps {}", theirs.cidr, ours.cidr))
                    }
                    _ => None,
                }
            })
            .collect();
        if !pairs.is_empty() {
            fig.peering_refused += 1;
            let home = &plan.vpcs[plan.cluster.vpc].name;
            say(
                &mut findings,
                Consequence::PeeringRefused,
                format!(
                    "VPC peering {home} <-> {}: refused, the connection goes to `failed` ({}); \
                     AWS peers no VPCs with overlapping blocks, even if only one of several blocks \
                     overlaps (its exact status message is unknown; Terraform: \"unexpected state \
                     'failed', wanted target 'pending-acceptance'\")",
                    peer.name,
                    pairs.join(", ")
                ),
            );
        }
    }

    // Peer addresses cut off (a refused peering has no connection to cut).
    let refused: Vec<usize> = overlaps
        .iter()
        .filter(|o| o.consequence == Consequence::PeeringRefused)
        .filter_map(|o| match (ranges[o.outer].role, ranges[o.inner].role) {
            (Role::Peer(p, _), _) | (_, Role::Peer(p, _)) => Some(p),
            _ => None,
        })
        .collect();
    let mut cut_off = Vec::new();
    let mut all_cut = Vec::new();
    let mut vpn_cut = Vec::new();
    for (p, peer) in plan.peers.iter().enumerate() {
        if refused.contains(&p) {
            continue;
        }
        let mut parts = Vec::new();
        let mut by = Vec::new();
        for o in overlaps
            .iter()
            .filter(|o| o.consequence == Consequence::CutOff)
        {
            let (x, y) = (&ranges[o.outer], &ranges[o.inner]);
            let (ours, theirs) = match (x.role, y.role) {
                (Role::Peer(q, _), _) if q == p => (y, x),
                (_, Role::Peer(q, _)) if q == p => (x, y),
                _ => continue,
            };
            // The shared addresses: the smaller block (they nest).
            parts.push(if ours.cidr.prefix() >= theirs.cidr.prefix() {
                ours.cidr
            } else {
                theirs.cidr
            });
            by.push(plan.label(ours));
        }
        if parts.is_empty() {
            continue;
        }
        let parts = union(&parts);
        let n: u64 = parts.iter().map(Ipv4Cidr::size).sum();
        all_cut.extend(parts.iter().copied());
        if peer.kind == PeerKind::Vpn {
            vpn_cut.extend(parts.iter().copied());
        }
        by.dedup();
        let list: Vec<String> = parts.iter().map(ToString::to_string).collect();
        say(
            &mut findings,
            Consequence::CutOff,
            format!(
                "{} {}: {n} addresses cut off from the cluster's pods ({}), taken by {}; pods \
                 route them to the overlay or the VPC's local route, and replies to pods in \
                 those addresses go astray",
                match peer.kind {
                    PeerKind::Vpc => "peered VPC",
                    PeerKind::Vpn => "VPN",
                    PeerKind::Cluster => "cluster",
                },
                peer.name,
                list.join(", "),
                by.join(", ")
            ),
        );
        cut_off.push((p, parts));
    }
    fig.addresses_cut_off = union_size(&all_cut);
    fig.vpn_addresses_cut_off = union_size(&vpn_cut);

    // The Service range in the pod range.
    let c = &plan.cluster;
    for pods in &c.pods {
        let lost = blocks_lost(pods, &c.services, c.node_mask);
        if lost > 0 {
            fig.node_blocks_lost += lost;
            say(
                &mut findings,
                Consequence::NodeBlocksLost,
                format!(
                    "Service range {} inside pod range {pods}: kube-controller-manager marks {lost} \
                     /{} node block(s) used, silently; those nodes' worth of pod addresses are lost",
                    c.services, c.node_mask
                ),
            );
        }
        if node_blocks(pods, c.node_mask) == 0 {
            say(
                &mut findings,
                Consequence::NodeBlocksLost,
                format!(
                    "pod range {pods} is smaller than one /{} node block: it holds no node",
                    c.node_mask
                ),
            );
        }
    }
    for o in overlaps
        .iter()
        .filter(|o| o.consequence == Consequence::Ambiguous)
    {
        say(
            &mut findings,
            Consequence::Ambiguous,
            format!(
                "{} and {} share addresses: claimed twice",
                plan.label(&ranges[o.outer]),
                plan.label(&ranges[o.inner])
            ),
        );
    }
    for o in overlaps
        .iter()
        .filter(|o| o.consequence == Consequence::PeersOverlap)
    {
        fig.peer_overlaps += 1;
        say(
            &mut findings,
            Consequence::PeersOverlap,
            format!(
                "note: {} and {} overlap each other; the cluster VPC's routes send the shared \
                 addresses to one of them (longest prefix, then static before propagated)",
                plan.label(&ranges[o.outer]),
                plan.label(&ranges[o.inner])
            ),
        );
    }

    // Capacity.
    fig.pod_addresses = union_size(&c.pods);
    fig.service_addresses = c.services.size();
    let blocks: u64 = c.pods.iter().map(|p| node_blocks(p, c.node_mask)).sum();
    fig.max_nodes = blocks.saturating_sub(fig.node_blocks_lost);
    fig.subnet_addresses = plan.vpcs.get(c.vpc).map_or(0, |v| {
        v.subnets
            .iter()
            .map(|s| s.cidr.size().saturating_sub(AWS_SUBNET_RESERVED))
            .sum()
    });
    PlanCheck {
        ranges,
        overlaps,
        findings,
        cut_off,
        figures: fig,
    }
}

#[cfg(test)]
mod tests;
