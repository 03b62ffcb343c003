//! # The cluster autoscaler and GKE's per-node pod ranges
//!
//! ## Scope
//! One node pool ([`NodePoolSpec`]): a node shape (allocatable CPU and
//! memory, `--max-pods`), a maximum size, the zones its nodes go to (those
//! of the cluster's nodes, round-robin). The cluster autoscaler wakes every
//! scan interval; when pods are unschedulable and would fit on a new node of
//! the shape, it asks the pool for as many nodes as a first-fit packing of
//! those pods onto empty nodes needs ([`nodes_needed`]), less the nodes
//! already on their way, up to the maximum. Each new node needs a pod range
//! block of GKE's per-node mask ([`gke_node_mask`]), cut from the cluster's
//! pod range, then from the ranges added later; when none is left the
//! instance creation fails with GKE's `IP_SPACE_EXHAUSTED` message
//! ([`ip_space_exhausted_message`]) and the autoscaler backs the pool off
//! (first [`INITIAL_BACKOFF`], doubling up to [`MAX_BACKOFF`]) before it
//! tries again. A created node joins the cluster Ready after the
//! provisioning time.
//!
//! Not modelled: scale-down; several node pools and the expander; node
//! start-up failures other than the pod range; the time the autoscaler
//! takes to notice a failed creation (`--max-node-provision-time`, 15 min,
//! for instances that never appear: here GKE's error comes back at once).
//!
//! ## Parameters
//! - scan interval 10 s (docs/calibration.md, row `ca-scan-interval`);
//! - node provisioning time: an assumption, 90 s by default (row
//!   `ca-node-startup`);
//! - backoff after a failed scale-up 5 min doubling to 30 min (row
//!   `ca-backoff`);
//! - per-node mask from max pods per node: GKE's table 8 -> /28, 9-16 ->
//!   /27, 17-32 -> /26, 33-64 -> /25, 65-110 -> /24, the smallest block
//!   holding twice the max pods (so 111-128 -> /24 and 129-256 -> /23 by
//!   the same rule) (row `gke-node-mask`); 110 pods by default
//!   (row `ipam-max-pods`).
//!
//! ## What it emits
//! Decisions for the cluster run: how many nodes to ask for; the texts of
//! its events. GKE's node-creation error is quoted from GKE (row
//! `gke-ip-space-exhausted`); the scale-up event is the autoscaler's
//! `ScaledUpGroup` text ([`scale_up_message`], kubernetes/autoscaler
//! `cluster-autoscaler/core/scaleup/orchestrator/executor.go`,
//! `executeScaleUp`); what the autoscaler says of a scale-up that failed for
//! want of pod range has no source found (docs/calibration.md, row
//! `ca-backoff`): [`backoff_message`] is the model's wording and says so in
//! the text.
//!
//! ## Validation
//! Unit tests: the mask table, the node cap of a /16 (256 nodes at /24),
//! the packing decisions, the backoff sequence, the message text.

use crate::scheduler::Resources;
use sim_core::SimDuration;

/// The cluster autoscaler's `--scan-interval` default.
pub const SCAN_INTERVAL: SimDuration = SimDuration::from_secs(10);
/// From the creation request to the node Ready: an assumption (VM boot,
/// kubelet registration, CNI ready), no measured source.
pub const NODE_STARTUP: SimDuration = SimDuration::from_secs(90);
/// `--initial-node-group-backoff-duration` default.
pub const INITIAL_BACKOFF: SimDuration = SimDuration::from_secs(300);
/// `--max-node-group-backoff-duration` default.
pub const MAX_BACKOFF: SimDuration = SimDuration::from_secs(1800);

/// A node pool the cluster autoscaler may grow.
#[derive(Clone, Debug, PartialEq)]
pub struct NodePoolSpec {
    /// Its name (`gke-<cluster>-<pool>` in instance names).
    pub name: String,
    /// Most nodes the pool may have (the cluster's nodes at the start count).
    pub max_nodes: u32,
    /// A new node's allocatable CPU and memory (`None`: not modelled, only
    /// the pod count limits a node).
    pub shape: Option<Resources>,
    /// A new node's `--max-pods`.
    pub max_pods: u32,
    /// `--scan-interval`.
    pub scan_interval: SimDuration,
    /// From the creation request to the node Ready.
    pub node_startup: SimDuration,
    /// The subnetwork GKE names in `IP_SPACE_EXHAUSTED`
    /// (`projects/P/regions/R/subnetworks/S`).
    pub subnetwork: String,
}

/// GKE's per-node pod range mask for `max_pods` per node: the smallest
/// block that holds twice `max_pods` addresses; `None` outside 8..=256.
pub fn gke_node_mask(max_pods: u32) -> Option<u8> {
    if !(8..=256).contains(&max_pods) {
        return None;
    }
    let addresses = (2 * max_pods).next_power_of_two();
    Some(32 - addresses.trailing_zeros() as u8)
}

/// Node blocks of `/node_mask` in a range of `/prefix` (the cluster's node
/// cap from one pod range).
pub fn nodes_in_range(prefix: u8, node_mask: u8) -> u64 {
    if node_mask < prefix {
        0
    } else {
        1u64 << (node_mask - prefix)
    }
}

/// New nodes of `shape` (`max_pods` each) a first-fit packing of the
/// pending pods needs, given as (requests, count) groups in queue order;
/// pods that fit no empty node are left out (they cannot trigger a
/// scale-up). Returns (nodes, pods that would fit on them).
pub fn nodes_needed(
    pending: &[(Resources, u32)],
    shape: Option<Resources>,
    max_pods: u32,
) -> (u32, u32) {
    // Per open node: (pods, cpu, memory) used.
    let mut open: Vec<(u32, u64, u64)> = Vec::new();
    let mut placed = 0;
    let fits = |n: &(u32, u64, u64), r: &Resources| {
        n.0 < max_pods
            && shape
                .is_none_or(|s| n.1 + r.cpu_millis <= s.cpu_millis && n.2 + r.memory <= s.memory)
    };
    for &(r, count) in pending {
        if !fits(&(0, 0, 0), &r) {
            continue;
        }
        let mut left = count;
        for n in open.iter_mut() {
            while left > 0 && fits(n, &r) {
                *n = (n.0 + 1, n.1 + r.cpu_millis, n.2 + r.memory);
                left -= 1;
            }
        }
        while left > 0 {
            let mut n = (0, 0, 0);
            while left > 0 && fits(&n, &r) {
                n = (n.0 + 1, n.1 + r.cpu_millis, n.2 + r.memory);
                left -= 1;
            }
            open.push(n);
        }
        placed += count;
    }
    (open.len() as u32, placed)
}

/// The backoff after the `failures`-th failed scale-up in a row (1 first).
pub fn backoff(failures: u32) -> SimDuration {
    let doubled = INITIAL_BACKOFF
        .as_nanos()
        .saturating_mul(1u64 << failures.saturating_sub(1).min(16));
    SimDuration::from_nanos(doubled.min(MAX_BACKOFF.as_nanos()))
}

/// GKE's node-creation error when the pod range has no block left for a
/// new node (reason `IP_SPACE_EXHAUSTED`).
pub fn ip_space_exhausted_message(instance: &str, subnetwork: &str) -> String {
    format!("Instance '{instance}' creation failed: IP space of '{subnetwork}' is exhausted.")
}

/// The cluster autoscaler's `ScaledUpGroup` event text.
pub fn scale_up_message(pool: &str, from: u32, to: u32, max: u32) -> String {
    format!("Scale-up: setting group {pool} size to {to} instead of {from} (max: {max})")
}

/// The model's wording (no source found) for a pool backed off after a
/// failed scale-up.
pub fn backoff_message(pool: &str, failed: u32, wait: SimDuration) -> String {
    format!(
        "Scale-up of {pool} failed: {failed} node(s) could not be created (IP_SPACE_EXHAUSTED); node group backed off for {}s [knsim's wording: no source found for the autoscaler's]",
        wait.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_follows_gkes_table() {
        // The table in GKE's flexible Pod CIDR docs.
        for (pods, mask) in [
            (8, 28),
            (9, 27),
            (16, 27),
            (17, 26),
            (32, 26),
            (33, 25),
            (64, 25),
            (65, 24),
            (110, 24),
            // Past the table, by its rule.
            (128, 24),
            (129, 23),
            (256, 23),
        ] {
            assert_eq!(gke_node_mask(pods), Some(mask), "{pods} pods");
        }
        assert_eq!(gke_node_mask(7), None);
        assert_eq!(gke_node_mask(257), None);
    }

    #[test]
    fn a_slash_16_holds_256_nodes_of_110_pods_and_1024_of_32() {
        assert_eq!(nodes_in_range(16, gke_node_mask(110).unwrap()), 256);
        assert_eq!(nodes_in_range(16, gke_node_mask(32).unwrap()), 1024);
        assert_eq!(nodes_in_range(14, gke_node_mask(110).unwrap()), 1024);
        assert_eq!(nodes_in_range(20, 24), 16);
    }

    #[test]
    fn packing_counts_nodes_by_the_scarcest_resource() {
        let shape = Some(Resources {
            cpu_millis: 3920,
            memory: 14 << 30,
        });
        let r = Resources {
            cpu_millis: 1000,
            memory: 2 << 30,
        };
        // 3 per node by CPU: 10 pods need 4 nodes.
        assert_eq!(nodes_needed(&[(r, 10)], shape, 110), (4, 10));
        // Without a shape, max pods alone: 220 pods on 110-pod nodes.
        assert_eq!(nodes_needed(&[(r, 220)], None, 110), (2, 220));
        // A pod larger than the shape triggers nothing.
        let huge = Resources {
            cpu_millis: 8000,
            memory: 0,
        };
        assert_eq!(nodes_needed(&[(huge, 5)], shape, 110), (0, 0));
        // A second group fills the room the first left.
        let small = Resources {
            cpu_millis: 900,
            memory: 1 << 30,
        };
        assert_eq!(nodes_needed(&[(r, 3), (small, 1)], shape, 110), (1, 4));
    }

    #[test]
    fn backoff_doubles_to_its_cap() {
        let s = |f| backoff(f).as_secs_f64();
        assert_eq!(
            (s(1), s(2), s(3), s(4), s(9)),
            (300.0, 600.0, 1200.0, 1800.0, 1800.0)
        );
    }

    #[test]
    fn the_autoscalers_texts_say_whose_they_are() {
        assert_eq!(
            scale_up_message("default-pool", 220, 292, 400),
            "Scale-up: setting group default-pool size to 292 instead of 220 (max: 400)"
        );
        assert!(backoff_message("default-pool", 36, backoff(1)).ends_with(
            "backed off for 300s [knsim's wording: no source found for the autoscaler's]"
        ));
    }

    #[test]
    fn ip_space_exhausted_reads_as_gke_writes_it() {
        assert_eq!(
            ip_space_exhausted_message(
                "gke-prod-pool-1-node-257",
                "projects/p/regions/europe-west1/subnetworks/s"
            ),
            "Instance 'gke-prod-pool-1-node-257' creation failed: IP space of \
             'projects/p/regions/europe-west1/subnetworks/s' is exhausted."
        );
    }
}
