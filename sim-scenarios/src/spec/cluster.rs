//! Nodes and pod addressing: the `cluster` section.
//!
//! # Scope
//! The nodes (spread round-robin over the zones) and the IPAM layout
//! (`flat` with an allocator, or `per-node` blocks), and the node names the
//! timeline refers to.
//!
//! # Validation
//! Every error names the field it is about (`file:line:column`) with a hint.

use super::{Validator, R};
use crate::envelope::Locate;
use crate::locate::Seg;
use crate::path;
use crate::units::{Count, Cpu, Duration, Memory};
use schemars::JsonSchema;
use serde::Deserialize;
use sim_models::autoscaler::{NodePoolSpec, NODE_STARTUP, SCAN_INTERVAL};
use sim_models::ipam::{Allocator, IpamLayout, Ipv4Cidr};
use sim_models::scheduler::Resources;
use sim_models::topology::{spread_nodes, NodeSpec};

/// The cluster section.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    /// Nodes.
    pub nodes: NodesFile,
    /// Pod addressing.
    pub ipam: IpamFile,
    /// Kubernetes manifests the workloads, Services, policies and
    /// autoscaler come from: a file, or a directory of `*.yaml`/`*.yml`
    /// files read in name order, relative to the scenario file (see
    /// `spec/manifests.rs`).
    pub manifests: Option<String>,
    /// A node pool the cluster autoscaler grows (nodes of the `nodes`
    /// shape, in its zones round-robin); without it the nodes are fixed.
    pub node_pool: Option<NodePoolFile>,
}

/// A node pool and its cluster autoscaler.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodePoolFile {
    /// Its name (default `default-pool`).
    pub name: Option<String>,
    /// Most nodes in the pool, the starting `nodes.count` included.
    pub max_nodes: Count,
    /// Creation request to node Ready (default 90s, an assumption).
    pub node_startup: Option<Duration>,
    /// The autoscaler's `--scan-interval` (default 10s).
    pub scan_interval: Option<Duration>,
    /// The subnetwork GKE names when the pod range is spent (default
    /// `projects/my-project/regions/REGION/subnetworks/default`, the
    /// region being the first zone's name without its last `-x`).
    pub subnetwork: Option<String>,
}

/// Nodes spread over zones.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodesFile {
    /// How many.
    pub count: Count,
    /// Zones, used round-robin.
    pub zones: Vec<String>,
    /// kubelet `--max-pods` (default 110).
    pub max_pods: Option<Count>,
    /// Each node also has a public address on its interface (default
    /// false: internal addresses only), as on bare metal and hosting
    /// providers that put it there.
    #[serde(default)]
    pub public_addresses: bool,
    /// Each node's allocatable CPU and memory (default: not modelled; the
    /// scheduler then checks the pod count only).
    pub allocatable: Option<AllocatableFile>,
}

/// A node's allocatable resources.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AllocatableFile {
    /// CPU (`3920m`, `4`).
    pub cpu: Cpu,
    /// Memory (`14Gi`).
    pub memory: Memory,
}

impl AllocatableFile {
    /// As the scheduler counts it.
    pub fn resources(&self) -> Resources {
        Resources {
            cpu_millis: u64::from(self.cpu.0),
            memory: self.memory.0,
        }
    }
}

/// Pod addressing.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IpamFile {
    /// `flat` or `per-node`.
    pub mode: IpamMode,
    /// Flat: the pod network.
    pub pod_cidr: Option<String>,
    /// Flat: `flat` (default), `host-local` or `aws-vpc`.
    pub allocator: Option<AllocatorName>,
    /// Per-node: `--cluster-cidr`.
    pub cluster_cidr: Option<String>,
    /// Per-node: `--node-cidr-mask-size` (default 24).
    pub node_mask: Option<Count>,
    /// GKE: the cluster's pod range (its secondary range); each node's
    /// block has the mask GKE derives from `nodes.max_pods`.
    pub pod_range: Option<String>,
}

/// IPAM layouts.
#[derive(Debug, Deserialize, JsonSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum IpamMode {
    /// One pool for the cluster.
    Flat,
    /// One block per node.
    PerNode,
    /// GKE VPC-native: one block per node from the pod range, its mask
    /// from max pods per node.
    Gke,
}

/// Allocator names as written.
#[derive(Debug, Deserialize, JsonSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum AllocatorName {
    /// Network and broadcast reserved.
    Flat,
    /// Network, gateway and broadcast reserved.
    HostLocal,
    /// First four and last reserved.
    AwsVpc,
}

impl Validator<'_> {
    /// The IPAM layout; `max_pods` is the nodes' (with its path, for GKE's
    /// per-node mask).
    pub(super) fn ipam(&self, p: &[Seg], f: &IpamFile, max_pods: (u32, &[Seg])) -> R<IpamLayout> {
        let field = |name: &str| [p, &path![name]].concat();
        if f.mode != IpamMode::Gke && f.pod_range.is_some() {
            return Err(self.err(
                &field("pod_range"),
                "pod_range belongs to `mode: gke`",
                "use mode: gke, or pod_cidr (flat) / cluster_cidr (per-node)",
            ));
        }
        match f.mode {
            IpamMode::Gke => {
                if let Some(other) = [
                    ("pod_cidr", f.pod_cidr.is_some()),
                    ("allocator", f.allocator.is_some()),
                    ("cluster_cidr", f.cluster_cidr.is_some()),
                    ("node_mask", f.node_mask.is_some()),
                ]
                .iter()
                .find(|(_, set)| *set)
                {
                    return Err(self.err(
                        &field(other.0),
                        format!("{} does not apply to `mode: gke`", other.0),
                        "GKE takes pod_range; each node's mask follows from nodes.max_pods",
                    ));
                }
                let Some(c) = &f.pod_range else {
                    return Err(self.err(
                        p,
                        "mode: gke needs pod_range",
                        "add e.g. pod_range: 10.4.0.0/16",
                    ));
                };
                let cluster_cidr = self.cidr(&field("pod_range"), c)?;
                let Some(node_mask) = sim_models::autoscaler::gke_node_mask(max_pods.0) else {
                    return Err(self.err(
                        max_pods.1,
                        format!("GKE takes 8 to 256 max pods per node, not {}", max_pods.0),
                        "GKE's per-node mask comes from max pods: 8 -> /28 ... 65-128 -> /24, 129-256 -> /23",
                    ));
                };
                if node_mask < cluster_cidr.prefix() {
                    return Err(self.err(
                        &field("pod_range"),
                        format!("{cluster_cidr} is smaller than one node's /{node_mask} block"),
                        format!("use a range of /{node_mask} or larger"),
                    ));
                }
                Ok(IpamLayout::PerNode {
                    cluster_cidr,
                    node_mask,
                })
            }
            IpamMode::Flat => {
                if f.cluster_cidr.is_some() || f.node_mask.is_some() {
                    return Err(self.err(
                        &field(if f.cluster_cidr.is_some() {
                            "cluster_cidr"
                        } else {
                            "node_mask"
                        }),
                        "cluster_cidr and node_mask belong to `mode: per-node`",
                        "use pod_cidr with mode: flat, or switch to mode: per-node",
                    ));
                }
                let Some(c) = &f.pod_cidr else {
                    return Err(self.err(
                        p,
                        "mode: flat needs pod_cidr",
                        "add e.g. pod_cidr: 10.0.0.0/22",
                    ));
                };
                let pod_cidr = self.cidr(&field("pod_cidr"), c)?;
                let allocator = match f.allocator.unwrap_or(AllocatorName::Flat) {
                    AllocatorName::Flat => Allocator::Flat,
                    AllocatorName::HostLocal => Allocator::HostLocal,
                    AllocatorName::AwsVpc => Allocator::AwsVpc,
                };
                if allocator.usable_range(&pod_cidr).is_none() {
                    return Err(self.err(&field("pod_cidr"), format!("{pod_cidr} leaves no usable address once the allocator's reserved addresses are taken"), "use a shorter prefix, e.g. /24"));
                }
                Ok(IpamLayout::Flat {
                    pod_cidr,
                    allocator,
                })
            }
            IpamMode::PerNode => {
                if f.pod_cidr.is_some() || f.allocator.is_some() {
                    return Err(self.err(&field(if f.pod_cidr.is_some() { "pod_cidr" } else { "allocator" }), "pod_cidr and allocator belong to `mode: flat`", "per-node layouts take cluster_cidr and node_mask (host-local allocates in each block)"));
                }
                let Some(c) = &f.cluster_cidr else {
                    return Err(self.err(
                        p,
                        "mode: per-node needs cluster_cidr",
                        "add e.g. cluster_cidr: 10.244.0.0/16",
                    ));
                };
                let cluster_cidr = self.cidr(&field("cluster_cidr"), c)?;
                let node_mask = f.node_mask.map_or(24, |m| m.0);
                if node_mask > 30 || node_mask < u32::from(cluster_cidr.prefix()) {
                    return Err(self.err(
                        &field("node_mask"),
                        format!("node_mask /{node_mask} does not fit inside {cluster_cidr}"),
                        format!(
                            "node_mask must be between /{} and /30",
                            cluster_cidr.prefix()
                        ),
                    ));
                }
                Ok(IpamLayout::PerNode {
                    cluster_cidr,
                    node_mask: node_mask as u8,
                })
            }
        }
    }

    pub(super) fn cidr(&self, p: &[Seg], s: &str) -> R<Ipv4Cidr> {
        s.parse::<Ipv4Cidr>().map_err(|e| {
            let hint = match &e {
                sim_models::ipam::CidrError::HostBits { network, .. } => {
                    format!("did you mean {network}?")
                }
                _ => "write an IPv4 network as a.b.c.d/N with N from 0 to 32, e.g. 10.0.0.0/22"
                    .into(),
            };
            self.err(p, e.to_string(), hint)
        })
    }
}

impl Validator<'_> {
    /// The node pool, and the standby node slots it may fill (appended to
    /// `nodes`, named and zoned as the next nodes would be).
    pub(super) fn node_pool(
        &self,
        p: &[Seg],
        f: &NodesFile,
        pool: &NodePoolFile,
        nodes: &mut Vec<NodeSpec>,
        max_pods: u32,
    ) -> R<NodePoolSpec> {
        let max = pool.max_nodes.0;
        if max < f.count.0 || max > super::MAX_NODES {
            return Err(self.err(
                &[p, &path!["max_nodes"]].concat(),
                format!(
                    "max_nodes {max} must be between nodes.count ({}) and {}",
                    f.count.0,
                    super::MAX_NODES
                ),
                "max_nodes counts the pool's nodes at the start too",
            ));
        }
        let mut all = spread_nodes(max, &f.zones, max_pods);
        for n in all.iter_mut().skip(f.count.0 as usize) {
            n.standby = true;
            n.allocatable = f.allocatable.as_ref().map(AllocatableFile::resources);
        }
        nodes.extend(all.drain(f.count.0 as usize..));
        let region = f.zones[0]
            .rsplit_once('-')
            .map_or(f.zones[0].as_str(), |(r, _)| r);
        Ok(NodePoolSpec {
            name: pool.name.clone().unwrap_or_else(|| "default-pool".into()),
            max_nodes: max,
            shape: f.allocatable.as_ref().map(AllocatableFile::resources),
            max_pods,
            scan_interval: pool.scan_interval.map_or(SCAN_INTERVAL, |d| d.0),
            node_startup: pool.node_startup.map_or(NODE_STARTUP, |d| d.0),
            subnetwork: pool.subnetwork.clone().unwrap_or_else(|| {
                format!("projects/my-project/regions/{region}/subnetworks/default")
            }),
        })
    }
}
