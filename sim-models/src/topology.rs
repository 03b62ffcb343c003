//! # Cluster topology: nodes, zones, capacity
//!
//! ## Scope
//! The nodes of one cluster, each in an availability zone, with the kubelet's
//! pod capacity. Node resources other than the pod count (CPU, memory) are
//! not modelled yet; the scheduler filters on pod count, network readiness
//! and node health only.
//!
//! ## Parameters
//! `max_pods`: the kubelet's `--max-pods`, default 110 (docs/calibration.md,
//! row `ipam-max-pods`, conf H).
//!
//! ## Validation
//! Exercised through the scheduler's tests.

/// The kubelet's default `--max-pods` (docs/calibration.md, row `ipam-max-pods`).
pub const DEFAULT_MAX_PODS: u32 = 110;

/// One node as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSpec {
    /// Node name as `kubectl get nodes` shows it.
    pub name: String,
    /// Availability zone (`topology.kubernetes.io/zone`).
    pub zone: String,
    /// Pod capacity (`--max-pods`).
    pub max_pods: u32,
    /// Allocatable CPU and memory; `None`: the scheduler checks pod count
    /// only.
    pub allocatable: Option<crate::scheduler::Resources>,
    /// A node pool's slot for a node the cluster autoscaler may create
    /// later (the cluster autoscaler); false: in the cluster from the start.
    pub standby: bool,
}

/// `count` nodes spread round-robin over `zones`, named `node-1`, `node-2`...
pub fn spread_nodes(count: u32, zones: &[String], max_pods: u32) -> Vec<NodeSpec> {
    (0..count)
        .map(|i| NodeSpec {
            name: format!("node-{}", i + 1),
            zone: zones[i as usize % zones.len().max(1)].clone(),
            max_pods,
            allocatable: None,
            standby: false,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_spread_over_zones_in_order() {
        let zones = vec!["a".to_string(), "b".to_string()];
        let nodes = spread_nodes(3, &zones, DEFAULT_MAX_PODS);
        let got: Vec<(&str, &str)> = nodes
            .iter()
            .map(|n| (n.name.as_str(), n.zone.as_str()))
            .collect();
        assert_eq!(got, [("node-1", "a"), ("node-2", "b"), ("node-3", "a")]);
    }
}
