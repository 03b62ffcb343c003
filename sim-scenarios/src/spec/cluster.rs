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
use crate::units::{Count, Cpu, Memory};
use schemars::JsonSchema;
use serde::Deserialize;
use sim_models::ipam::{Allocator, IpamLayout, Ipv4Cidr};
use sim_models::scheduler::Resources;

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
}

/// IPAM layouts.
#[derive(Debug, Deserialize, JsonSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum IpamMode {
    /// One pool for the cluster.
    Flat,
    /// One block per node.
    PerNode,
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
    pub(super) fn ipam(&self, p: &[Seg], f: &IpamFile) -> R<IpamLayout> {
        let field = |name: &str| [p, &path![name]].concat();
        match f.mode {
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
