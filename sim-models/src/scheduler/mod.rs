//! # kube-scheduler: placing pods on nodes
//!
//! ## Scope
//! The filter and score steps of the default profile that matter for network
//! capacity, run in the default profile's plugin order:
//! - `TaintToleration`: a node is Ready when its network is up (it has a pod
//!   CIDR and is not tainted `node.kubernetes.io/not-ready`) and its kubelet
//!   is heard from (not tainted `node.kubernetes.io/unreachable`, as a
//!   failed zone's nodes are);
//! - `NodeResourcesFit`: room under `--max-pods` (default 110), and, when the
//!   node states its allocatable CPU and memory, room for the pod's requests
//!   on top of the requests of the pods bound to it. A node that states no
//!   allocatable is not checked for CPU or memory, and a pod with no requests
//!   passes them, as `fitsRequest` returns early for a zero request;
//! - `PodTopologySpread` on `topology.kubernetes.io/zone` ([`Spread`]): with
//!   `whenUnsatisfiable: DoNotSchedule`, a zone is filtered out when placing
//!   the pod there would leave it more than `maxSkew` pods of the workload
//!   above the emptiest zone (the zones are those of the nodes in the
//!   cluster, Ready or not, as the plugin's default `nodeTaintsPolicy:
//!   Ignore` counts them).
//!
//! Among the passing nodes the choice is: with a spread constraint (either
//! kind), a node in the zone with the fewest of the workload's pods (the
//! PodTopologySpread score); then the node with the fewest pods (the
//! spreading effect of `NodeResourcesFit`/`LeastAllocated`); ties go to the
//! first in node order so the placement is deterministic. That order of the
//! scores is the model's: kube-scheduler sums weighted scores.
//!
//! The scheduler does not see IP addresses: a pod placed on a node whose pool
//! is empty fails later, in the kubelet, with `FailedCreatePodSandBox`; nor
//! does it see the CNI daemon itself, only the taint the node lifecycle
//! controller sets when the node's network is down ([`crate::node_lifecycle`]).
//! Nodes a node pool may create later ([`NodeIndex::add_standby_node`]) are
//! not in the cluster until [`NodeIndex::set_present`]: they count nowhere.
//!
//! ## Parameters
//! `--max-pods` 110 by default (docs/calibration.md, row `ipam-max-pods`);
//! each node's allocatable and each workload's requests are inputs.
//!
//! ## Cost
//! [`NodeIndex`] keeps the pod-independent part of the filter (Ready, room
//! under `--max-pods`) up to date as it changes (a pod bound or gone, a taint
//! set or lifted, a pod CIDR assigned, a node created) instead of walking
//! every node per pod: the nodes that pass sit in one ordered set per zone
//! (`topology.kubernetes.io/zone`), keyed by (pods, node index); the choice
//! takes, in each zone the spread constraint allows, the first entry with
//! room for the pod's requests, then the least over the zones, which is
//! exactly the walk's order. A change costs O(log n); a placement O(zones)
//! when requests are not modelled or the first node has room, and grows only
//! by the nodes passed over for want of CPU or memory. A placement that fails
//! is cheap; its `FailedScheduling` message ([`NodeIndex::why_not`]) walks
//! the nodes once (it is built once per failed attempt that is reported).
//!
//! ## What it emits
//! A node index, or the `FailedScheduling` message an operator reads in
//! `kubectl describe pod`, in kube-scheduler's format
//! (kubernetes/kubernetes `pkg/scheduler/framework/types.go`, `FitError.Error`:
//! `"0/%v nodes are available"`, then the "COUNT REASON" texts of every node's
//! reasons, sorted as strings and joined with ", "; the reasons of
//! `NodeResourcesFit` are `fitsRequest`'s in
//! `pkg/scheduler/framework/plugins/noderesources/fit.go`: "Too many pods",
//! "Insufficient cpu", "Insufficient memory", every one that holds for the
//! node; PodTopologySpread's is "node(s) didn't match pod topology spread
//! constraints", `ErrReasonConstraintsNotMatch` in
//! `plugins/podtopologyspread/filtering.go`), e.g. `0/6 nodes are available:
//! 2 Insufficient memory, 4 Insufficient cpu. preemption: 0/6 nodes are
//! available: 6 No preemption victims found for incoming pod.`
//!
//! ## Validation
//! Unit tests pin the message format and the choice of node; a property test
//! runs random sequences of binds (with random requests), deletions, taints,
//! lifted taints, pod CIDRs assigned and nodes created against a walk over
//! every node that applies the filter and the spread skew from scratch (the
//! brute-force reference) and requires the same node and the same message
//! after every step.

use std::collections::BTreeSet;

/// Why a node was filtered out, in kube-scheduler's words.
const NOT_READY: &str = "node(s) had untolerated taint {node.kubernetes.io/not-ready: }";
const UNREACHABLE: &str = "node(s) had untolerated taint {node.kubernetes.io/unreachable: }";
const TOO_MANY_PODS: &str = "Too many pods";
const INSUFFICIENT_CPU: &str = "Insufficient cpu";
const INSUFFICIENT_MEMORY: &str = "Insufficient memory";
const SPREAD_NOT_MATCHED: &str = "node(s) didn't match pod topology spread constraints";

/// CPU and memory: a pod's requests or a node's allocatable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Resources {
    /// CPU \[millicores\].
    pub cpu_millis: u64,
    /// Memory \[bytes\].
    pub memory: u64,
}

impl Resources {
    /// Both zero: `NodeResourcesFit` checks nothing but the pod count.
    pub fn is_zero(&self) -> bool {
        self.cpu_millis == 0 && self.memory == 0
    }
}

/// A topology spread constraint over zones, as one placement sees it.
#[derive(Clone, Copy, Debug)]
pub struct Spread<'a> {
    /// `maxSkew` (at least 1).
    pub max_skew: u32,
    /// `whenUnsatisfiable: DoNotSchedule` (true) or `ScheduleAnyway`.
    pub hard: bool,
    /// Pods of the workload per zone, by zone id ([`NodeIndex::zone_of`]);
    /// missing entries count 0.
    pub counts: &'a [u32],
}

/// What one pod asks of the scheduler.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ask<'a> {
    /// Its requests.
    pub requests: Resources,
    /// Its topology spread constraint over zones, if it has one.
    pub spread: Option<Spread<'a>>,
}

/// What the pod-independent part of the filter says of one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Filter {
    /// Not in the cluster (yet): a node pool's standby slot.
    Absent,
    /// Its network is not ready (no pod CIDR, or tainted not-ready).
    NotReady,
    /// It has `--max-pods` pods already.
    TooManyPods,
    /// A pod can go there, CPU and memory permitting.
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
    /// Tainted `node.kubernetes.io/unreachable` (its kubelet went silent).
    unreachable: bool,
    /// In the cluster (false: a standby slot of a node pool).
    present: bool,
    /// Allocatable CPU and memory; `None`: not modelled (never insufficient).
    allocatable: Option<Resources>,
    /// The requests of the pods bound to it.
    requested: Resources,
}

impl Slot {
    fn filter(&self) -> Filter {
        if !self.present {
            Filter::Absent
        } else if !self.pod_cidr || self.tainted || self.unreachable {
            Filter::NotReady
        } else if self.pods >= self.max_pods {
            Filter::TooManyPods
        } else {
            Filter::Fits
        }
    }

    /// (CPU short, memory short) for a pod requesting `r`.
    fn short(&self, r: Resources) -> (bool, bool) {
        match self.allocatable {
            Some(a) if !r.is_zero() => (
                a.cpu_millis < self.requested.cpu_millis + r.cpu_millis,
                a.memory < self.requested.memory + r.memory,
            ),
            _ => (false, false),
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
    /// Per zone: nodes in the cluster (Ready or not).
    present_in_zone: Vec<u32>,
    /// Nodes in the cluster.
    present: usize,
    /// Nodes filtered out as not ready.
    not_ready: usize,
    /// Nodes filtered out as full.
    too_many_pods: usize,
}

impl NodeIndex {
    /// Registers the next node (its index is the number of nodes before it):
    /// in `zone`, with room for `max_pods`, with or without a pod CIDR; no
    /// pods, no taint, CPU and memory not modelled.
    pub fn add_node(&mut self, zone: &str, max_pods: u32, pod_cidr: bool) -> usize {
        self.register(zone, max_pods, pod_cidr, true)
    }

    /// Registers the next node as a node pool's standby slot: not in the
    /// cluster until [`NodeIndex::set_present`].
    pub fn add_standby_node(&mut self, zone: &str, max_pods: u32) -> usize {
        self.register(zone, max_pods, false, false)
    }

    fn register(&mut self, zone: &str, max_pods: u32, pod_cidr: bool, present: bool) -> usize {
        let z = match self.zone_id(zone) {
            Some(z) => z,
            None => {
                self.zone_names.push(zone.to_string());
                self.zones.push(BTreeSet::new());
                self.present_in_zone.push(0);
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
            unreachable: false,
            present,
            allocatable: None,
            requested: Resources::default(),
        };
        self.nodes.push(slot);
        self.count(node, slot, true);
        node
    }

    /// Number of nodes, standby slots included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when there is no node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Nodes in the cluster (standby slots not created excluded).
    pub fn present(&self) -> usize {
        self.present
    }

    /// Whether `node` is in the cluster.
    pub fn is_present(&self, node: usize) -> bool {
        self.nodes[node].present
    }

    /// Pods bound to `node`.
    pub fn pods(&self, node: usize) -> u32 {
        self.nodes[node].pods
    }

    /// Whether `node` is in the cluster and Ready (a pod CIDR, neither
    /// taint): the nodes the EndpointSlice controller counts for
    /// Topology Aware Routing.
    pub fn is_ready(&self, node: usize) -> bool {
        !matches!(self.nodes[node].filter(), Filter::Absent | Filter::NotReady)
    }

    /// `node`'s allocatable CPU and memory, when modelled.
    pub fn allocatable(&self, node: usize) -> Option<Resources> {
        self.nodes[node].allocatable
    }

    /// Whether `node` is tainted `node.kubernetes.io/not-ready`.
    pub fn tainted(&self, node: usize) -> bool {
        self.nodes[node].tainted
    }

    /// The zone id of `node` (an index into the zones in order of first appearance).
    pub fn zone_of(&self, node: usize) -> usize {
        self.nodes[node].zone as usize
    }

    /// The id of zone `name`, if a node is in it.
    pub fn zone_id(&self, name: &str) -> Option<usize> {
        self.zone_names.iter().position(|n| n == name)
    }

    /// Number of zones.
    pub fn zone_count(&self) -> usize {
        self.zone_names.len()
    }

    /// A pod requesting `requests` was bound to `node`.
    pub fn bind(&mut self, node: usize, requests: Resources) {
        self.update(node, |s| {
            s.pods += 1;
            s.requested.cpu_millis += requests.cpu_millis;
            s.requested.memory += requests.memory;
        });
    }

    /// A pod requesting `requests` bound to `node` is gone.
    pub fn unbind(&mut self, node: usize, requests: Resources) {
        self.update(node, |s| {
            s.pods -= 1;
            s.requested.cpu_millis -= requests.cpu_millis;
            s.requested.memory -= requests.memory;
        });
    }

    /// `node` states its allocatable CPU and memory.
    pub fn set_allocatable(&mut self, node: usize, allocatable: Resources) {
        self.update(node, |s| s.allocatable = Some(allocatable));
    }

    /// `node` got or lost the `node.kubernetes.io/not-ready` taint.
    pub fn set_tainted(&mut self, node: usize, tainted: bool) {
        self.update(node, |s| s.tainted = tainted);
    }

    /// `node` got or lost the `node.kubernetes.io/unreachable` taint.
    pub fn set_unreachable(&mut self, node: usize, unreachable: bool) {
        self.update(node, |s| s.unreachable = unreachable);
    }

    /// `node` got (or lost) its pod CIDR.
    pub fn set_pod_cidr(&mut self, node: usize, pod_cidr: bool) {
        self.update(node, |s| s.pod_cidr = pod_cidr);
    }

    /// A standby `node` was created: it is in the cluster from now on.
    pub fn set_present(&mut self, node: usize) {
        self.update(node, |s| s.present = true);
    }

    /// Whether some node passes the pod-independent part of the filter (a
    /// pod with no requests and no spread constraint fits somewhere).
    pub fn fits_somewhere(&self) -> bool {
        self.zones.iter().any(|z| !z.is_empty())
    }

    /// The fewest pods of the workload in a zone that has a node (0 when no
    /// zone has one).
    fn min_count(&self, counts: &[u32]) -> u32 {
        (0..self.zones.len())
            .filter(|&z| self.present_in_zone[z] > 0)
            .map(|z| counts.get(z).copied().unwrap_or(0))
            .min()
            .unwrap_or(0)
    }

    /// Picks a node for one pod; `None`: no node fits ([`NodeIndex::why_not`]
    /// says why).
    pub fn place(&self, ask: &Ask<'_>) -> Option<usize> {
        let min = ask.spread.map_or(0, |s| self.min_count(s.counts));
        let mut best: Option<(u32, u32, u32)> = None;
        for (z, set) in self.zones.iter().enumerate() {
            let zone_pods = match ask.spread {
                Some(s) => {
                    let c = s.counts.get(z).copied().unwrap_or(0);
                    if s.hard && (c + 1).saturating_sub(min) > s.max_skew {
                        continue;
                    }
                    c
                }
                None => 0,
            };
            let first = set
                .iter()
                .find(|&&(_, n)| self.nodes[n as usize].short(ask.requests) == (false, false));
            if let Some(&(pods, n)) = first {
                let key = (zone_pods, pods, n);
                if best.is_none_or(|b| key < b) {
                    best = Some(key);
                }
            }
        }
        best.map(|(_, _, n)| n as usize)
    }

    /// kube-scheduler's `FailedScheduling` message for a pod asking `ask`
    /// that no node fits: every node's reasons, counted.
    pub fn why_not(&self, ask: &Ask<'_>) -> String {
        let total = self.present;
        let min = ask.spread.map_or(0, |s| self.min_count(s.counts));
        let mut counts = [0usize; 6];
        for s in &self.nodes {
            match s.filter() {
                Filter::Absent => continue,
                Filter::NotReady => {
                    // One taint reason per node, as TaintToleration names
                    // the first untolerated taint.
                    counts[if s.unreachable && s.pod_cidr && !s.tainted {
                        5
                    } else {
                        0
                    }] += 1;
                    continue;
                }
                Filter::TooManyPods => counts[1] += 1,
                Filter::Fits => {}
            }
            let (cpu, memory) = s.short(ask.requests);
            counts[2] += usize::from(cpu);
            counts[3] += usize::from(memory);
            if s.filter() == Filter::Fits && !cpu && !memory {
                // Only PodTopologySpread can have filtered it out.
                counts[4] += usize::from(ask.spread.is_some_and(|sp| {
                    let c = sp.counts.get(s.zone as usize).copied().unwrap_or(0);
                    sp.hard && (c + 1).saturating_sub(min) > sp.max_skew
                }));
            }
        }
        let reasons = [
            NOT_READY,
            TOO_MANY_PODS,
            INSUFFICIENT_CPU,
            INSUFFICIENT_MEMORY,
            SPREAD_NOT_MATCHED,
            UNREACHABLE,
        ];
        unschedulable_message(total, counts.iter().copied().zip(reasons))
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
        let add = |c: &mut usize| {
            if present {
                *c += 1;
            } else {
                *c -= 1;
            }
        };
        if slot.present {
            add(&mut self.present);
            let z = &mut self.present_in_zone[slot.zone as usize];
            *z = if present { *z + 1 } else { *z - 1 };
        }
        match slot.filter() {
            Filter::Absent => {}
            Filter::NotReady => add(&mut self.not_ready),
            Filter::TooManyPods => add(&mut self.too_many_pods),
            Filter::Fits => {
                let zone = &mut self.zones[slot.zone as usize];
                let key = (slot.pods, node as u32);
                if present {
                    zone.insert(key);
                } else {
                    zone.remove(&key);
                }
            }
        }
    }
}

/// kube-scheduler's `FailedScheduling` message for `total` nodes and the
/// (count, reason) pairs of their filter failures (a node counts once per
/// reason it has).
fn unschedulable_message<'r>(
    total: usize,
    reasons: impl Iterator<Item = (usize, &'r str)>,
) -> String {
    let head = if total == 0 {
        "0/0 nodes are available: no nodes available to schedule pods.".to_string()
    } else {
        // kube-scheduler sorts the "COUNT REASON" texts themselves.
        let mut parts: Vec<String> = reasons
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
