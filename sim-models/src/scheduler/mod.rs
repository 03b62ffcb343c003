//! # kube-scheduler: placing pods on nodes
//!
//! ## Scope
//! The filter and score steps of the default profile that matter for network
//! capacity: a node passes when it is Ready (its network is up: it has a pod
//! CIDR and is not tainted `node.kubernetes.io/not-ready`) and has room under
//! `--max-pods`; among passing nodes the one with the fewest pods wins (the
//! spreading effect of `NodeResourcesFit`/`LeastAllocated` and
//! `PodTopologySpread`), ties going to the first in node order so the
//! placement is deterministic.
//! The scheduler does not see IP addresses: a pod placed on a node whose pool
//! is empty fails later, in the kubelet, with `FailedCreatePodSandBox`; nor
//! does it see the CNI daemon itself, only the taint the node lifecycle
//! controller sets when the node's network is down ([`crate::node_lifecycle`]).
//!
//! ## Cost
//! [`NodeIndex`] keeps the filter's outcome up to date as it changes (a pod
//! bound or gone, a taint set or lifted, a pod CIDR assigned) instead of
//! walking every node per pod: the nodes that pass sit in one ordered set per
//! zone (`topology.kubernetes.io/zone`), keyed by (pods, node index); the
//! choice is the least of the zones' first entries, which is exactly the
//! walk's (fewest pods, then first in node order). The nodes filtered out are
//! counted per reason, so the `FailedScheduling` message is built from two
//! counters. A change costs O(log n), a placement O(zones). The per-zone sets
//! are where topology spread over zones (`whenUnsatisfiable`, `maxSkew` on
//! the zone key) will choose its zone before taking that zone's first node.
//!
//! ## What it emits
//! A node index, or the `FailedScheduling` message an operator reads in
//! `kubectl describe pod`, in kube-scheduler's format: reasons counted per
//! node, sorted, e.g. `0/6 nodes are available: 6 Too many pods. preemption:
//! 0/6 nodes are available: 6 No preemption victims found for incoming pod.`
//!
//! ## Validation
//! Unit tests pin the message format and the choice of node; a property test
//! runs random sequences of binds, deletions, taints, lifted taints and pod
//! CIDRs assigned against a walk over every node (the former implementation)
//! and requires the same node and the same message after every step.

use std::collections::BTreeSet;

/// Why a node was filtered out, in kube-scheduler's words.
const NOT_READY: &str = "node(s) had untolerated taint {node.kubernetes.io/not-ready: }";
const TOO_MANY_PODS: &str = "Too many pods";

/// What the filter says of one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Filter {
    /// Its network is not ready (no pod CIDR, or tainted not-ready).
    NotReady,
    /// It has `--max-pods` pods already.
    TooManyPods,
    /// A pod can go there.
    Fits,
}

/// What the scheduler knows of one node.
#[derive(Clone, Copy, Debug)]
struct Slot {
    /// Index into [`NodeIndex::zones`].
    zone: u32,
    /// Pods bound to the node (terminating pods included until they are gone).
    pods: u32,
    /// `--max-pods`.
    max_pods: u32,
    /// It has a pod CIDR.
    pod_cidr: bool,
    /// Tainted `node.kubernetes.io/not-ready`.
    tainted: bool,
}

impl Slot {
    fn filter(&self) -> Filter {
        if !self.pod_cidr || self.tainted {
            Filter::NotReady
        } else if self.pods >= self.max_pods {
            Filter::TooManyPods
        } else {
            Filter::Fits
        }
    }
}

/// The scheduler's view of every node, kept up to date as nodes change.
#[derive(Clone, Debug, Default)]
pub struct NodeIndex {
    nodes: Vec<Slot>,
    /// Zone names, in order of first appearance.
    zone_names: Vec<String>,
    /// Per zone: the nodes that pass the filter, by (pods, node index).
    zones: Vec<BTreeSet<(u32, u32)>>,
    /// Nodes filtered out as not ready.
    not_ready: usize,
    /// Nodes filtered out as full.
    too_many_pods: usize,
}

impl NodeIndex {
    /// Registers the next node (its index is the number of nodes before it):
    /// in `zone`, with room for `max_pods`, with or without a pod CIDR; no
    /// pods, no taint.
    pub fn add_node(&mut self, zone: &str, max_pods: u32, pod_cidr: bool) -> usize {
        let z = match self.zone_names.iter().position(|n| n == zone) {
            Some(z) => z,
            None => {
                self.zone_names.push(zone.to_string());
                self.zones.push(BTreeSet::new());
                self.zones.len() - 1
            }
        };
        let node = self.nodes.len();
        let slot = Slot {
            zone: z as u32,
            pods: 0,
            max_pods,
            pod_cidr,
            tainted: false,
        };
        self.nodes.push(slot);
        self.count(node, slot, true);
        node
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when there is no node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Pods bound to `node`.
    pub fn pods(&self, node: usize) -> u32 {
        self.nodes[node].pods
    }

    /// Whether `node` is tainted `node.kubernetes.io/not-ready`.
    pub fn tainted(&self, node: usize) -> bool {
        self.nodes[node].tainted
    }

    /// A pod was bound to `node`.
    pub fn bind(&mut self, node: usize) {
        self.update(node, |s| s.pods += 1);
    }

    /// A pod bound to `node` is gone.
    pub fn unbind(&mut self, node: usize) {
        self.update(node, |s| s.pods -= 1);
    }

    /// `node` got or lost the `node.kubernetes.io/not-ready` taint.
    pub fn set_tainted(&mut self, node: usize, tainted: bool) {
        self.update(node, |s| s.tainted = tainted);
    }

    /// `node` got (or lost) its pod CIDR.
    pub fn set_pod_cidr(&mut self, node: usize, pod_cidr: bool) {
        self.update(node, |s| s.pod_cidr = pod_cidr);
    }

    /// Whether some node can take a pod now.
    pub fn fits_somewhere(&self) -> bool {
        self.zones.iter().any(|z| !z.is_empty())
    }

    /// Picks a node for one pod, or returns the `FailedScheduling` message.
    pub fn place(&self) -> Result<usize, String> {
        match self.zones.iter().filter_map(|z| z.first()).min() {
            Some(&(_, node)) => Ok(node as usize),
            None => Err(unschedulable_message(
                self.nodes.len(),
                self.not_ready,
                self.too_many_pods,
            )),
        }
    }

    /// Applies `change` to `node`, moving it between the sets and counters.
    fn update(&mut self, node: usize, change: impl FnOnce(&mut Slot)) {
        let before = self.nodes[node];
        self.count(node, before, false);
        change(&mut self.nodes[node]);
        let after = self.nodes[node];
        self.count(node, after, true);
    }

    /// Adds (`present`) or takes away node `node` in state `slot` from the
    /// per-zone sets or the per-reason counters.
    fn count(&mut self, node: usize, slot: Slot, present: bool) {
        let counter = match slot.filter() {
            Filter::NotReady => &mut self.not_ready,
            Filter::TooManyPods => &mut self.too_many_pods,
            Filter::Fits => {
                let zone = &mut self.zones[slot.zone as usize];
                let key = (slot.pods, node as u32);
                if present {
                    zone.insert(key);
                } else {
                    zone.remove(&key);
                }
                return;
            }
        };
        if present {
            *counter += 1;
        } else {
            *counter -= 1;
        }
    }
}

/// kube-scheduler's `FailedScheduling` message for `total` nodes of which
/// `not_ready` are not ready and `too_many_pods` are full (no other reason
/// is modelled, so they add up to `total` when nothing fits).
fn unschedulable_message(total: usize, not_ready: usize, too_many_pods: usize) -> String {
    let head = if total == 0 {
        "0/0 nodes are available: no nodes available to schedule pods.".to_string()
    } else {
        // kube-scheduler sorts the "COUNT REASON" texts themselves.
        let mut parts: Vec<String> = [(not_ready, NOT_READY), (too_many_pods, TOO_MANY_PODS)]
            .into_iter()
            .filter(|&(c, _)| c > 0)
            .map(|(c, r)| format!("{c} {r}"))
            .collect();
        parts.sort();
        format!("0/{total} nodes are available: {}.", parts.join(", "))
    };
    format!(
        "{head} preemption: 0/{total} nodes are available: {total} No preemption victims found for incoming pod."
    )
}

#[cfg(test)]
mod tests;
