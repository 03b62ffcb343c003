//! # kube-scheduler: placing pods on nodes
//!
//! ## Scope
//! The filter and score steps of the default profile that matter for network
//! capacity: a node passes when it is Ready (its network is up: it has a pod
//! CIDR and a working CNI) and has room under `--max-pods`; among passing
//! nodes the one with the fewest pods wins (the spreading effect of
//! `NodeResourcesFit`/`LeastAllocated` and `PodTopologySpread`), ties going to
//! the first in node order so the placement is deterministic.
//! The scheduler does not see IP addresses: a pod placed on a node whose pool
//! is empty fails later, in the kubelet, with `FailedCreatePodSandBox`.
//!
//! ## What it emits
//! A node index, or the `FailedScheduling` message an operator reads in
//! `kubectl describe pod`, in kube-scheduler's format: reasons counted per
//! node, sorted, e.g. `0/6 nodes are available: 6 Too many pods. preemption:
//! 0/6 nodes are available: 6 No preemption victims found for incoming pod.`
//!
//! ## Validation
//! Unit tests pin the message format and the choice of node.

use std::collections::BTreeMap;

/// What the scheduler needs to know of one node right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeView {
    /// Pods bound to the node (terminating pods included until they are gone).
    pub pods: u32,
    /// `--max-pods`.
    pub max_pods: u32,
    /// The node's network is ready (it has a pod CIDR and its CNI runs).
    pub network_ready: bool,
}

/// Why a node was filtered out, in kube-scheduler's words.
const NOT_READY: &str = "node(s) had untolerated taint {node.kubernetes.io/not-ready: }";
const TOO_MANY_PODS: &str = "Too many pods";

/// Picks a node for one pod, or returns the `FailedScheduling` message.
pub fn place(nodes: &[NodeView]) -> Result<usize, String> {
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    let mut best: Option<(u32, usize)> = None;
    for (i, n) in nodes.iter().enumerate() {
        if !n.network_ready {
            *reasons.entry(NOT_READY).or_default() += 1;
        } else if n.pods >= n.max_pods {
            *reasons.entry(TOO_MANY_PODS).or_default() += 1;
        } else if best.is_none_or(|(pods, _)| n.pods < pods) {
            best = Some((n.pods, i));
        }
    }
    match best {
        Some((_, i)) => Ok(i),
        None => {
            let total = nodes.len();
            let mut parts: Vec<String> = reasons.iter().map(|(r, c)| format!("{c} {r}")).collect();
            parts.sort();
            let head = if total == 0 {
                "0/0 nodes are available: no nodes available to schedule pods.".to_string()
            } else {
                format!("0/{total} nodes are available: {}.", parts.join(", "))
            };
            Err(format!(
                "{head} preemption: 0/{total} nodes are available: {total} No preemption victims found for incoming pod."
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(pods: u32, ready: bool) -> NodeView {
        NodeView {
            pods,
            max_pods: 110,
            network_ready: ready,
        }
    }

    #[test]
    fn spreads_to_the_emptiest_node_first_in_order() {
        assert_eq!(place(&[node(5, true), node(3, true), node(3, true)]), Ok(1));
    }

    #[test]
    fn full_and_not_ready_nodes_give_kube_scheduler_text() {
        let msg = place(&[node(110, true), node(0, false), node(110, true)]).unwrap_err();
        assert_eq!(
            msg,
            "0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, \
             2 Too many pods. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
        );
    }
}
