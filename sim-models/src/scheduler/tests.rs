use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

/// What the former implementation saw of one node.
#[derive(Clone, Copy, Debug)]
struct NodeView {
    pods: u32,
    max_pods: u32,
    network_ready: bool,
}

/// The former implementation: a walk over every node per pod.
fn walk(nodes: &[NodeView]) -> Result<usize, String> {
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

/// The index's nodes as the walk sees them.
fn views(index: &NodeIndex) -> Vec<NodeView> {
    index
        .nodes
        .iter()
        .map(|s| NodeView {
            pods: s.pods,
            max_pods: s.max_pods,
            network_ready: s.pod_cidr && !s.tainted,
        })
        .collect()
}

fn index(nodes: &[(u32, bool)]) -> NodeIndex {
    let mut index = NodeIndex::default();
    for (i, &(pods, ready)) in nodes.iter().enumerate() {
        let n = index.add_node(["a", "b", "c"][i % 3], 110, true);
        (0..pods).for_each(|_| index.bind(n));
        index.set_tainted(n, !ready);
    }
    index
}

#[test]
fn spreads_to_the_emptiest_node_first_in_order() {
    assert_eq!(index(&[(5, true), (3, true), (3, true)]).place(), Ok(1));
}

#[test]
fn full_and_not_ready_nodes_give_kube_scheduler_text() {
    let msg = index(&[(110, true), (0, false), (110, true)])
        .place()
        .unwrap_err();
    assert_eq!(
        msg,
        "0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, \
         2 Too many pods. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
    );
}

#[test]
fn reasons_sort_as_texts_and_no_node_has_its_own_text() {
    // "10 Too many pods" sorts before "2 node(s)...": the texts are sorted, counts first.
    let mut nodes = vec![(110, true); 10];
    nodes.extend([(0, false); 2]);
    let msg = index(&nodes).place().unwrap_err();
    assert!(
        msg.starts_with("0/12 nodes are available: 10 Too many pods, 2 node(s) had untolerated"),
        "{msg}"
    );
    assert_eq!(
        NodeIndex::default().place().unwrap_err(),
        "0/0 nodes are available: no nodes available to schedule pods. preemption: \
         0/0 nodes are available: 0 No preemption victims found for incoming pod."
    );
}

/// One change to the cluster's nodes.
#[derive(Clone, Debug)]
enum Step {
    /// The scheduler places a pod (if it can) and binds it.
    Place,
    /// A pod is bound to this node directly (fills nodes past the choice).
    Bind(usize),
    /// A pod on this node is deleted (if it has one).
    Delete(usize),
    Taint(usize),
    Untaint(usize),
    /// This node gets its pod CIDR.
    PodCidr(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => Just(Step::Place),
        2 => (0..12usize).prop_map(Step::Bind),
        3 => (0..12usize).prop_map(Step::Delete),
        1 => (0..12usize).prop_map(Step::Taint),
        1 => (0..12usize).prop_map(Step::Untaint),
        1 => (0..12usize).prop_map(Step::PodCidr),
    ]
}

proptest! {
    #[test]
    fn index_picks_and_explains_as_the_walk_does(
        nodes in prop::collection::vec((0..4usize, 1..5u32, any::<bool>()), 0..12),
        steps in prop::collection::vec(step(), 0..200),
    ) {
        let mut index = NodeIndex::default();
        for &(zone, max_pods, pod_cidr) in &nodes {
            index.add_node(["a", "b", "c", "d"][zone], max_pods, pod_cidr);
        }
        prop_assert_eq!(index.len(), nodes.len());
        for s in steps {
            let n = index.len();
            match s {
                Step::Place => {
                    if let Ok(node) = index.place() {
                        index.bind(node);
                    }
                }
                Step::Bind(i) if i < n => index.bind(i),
                Step::Delete(i) if i < n && index.pods(i) > 0 => index.unbind(i),
                Step::Taint(i) if i < n => index.set_tainted(i, true),
                Step::Untaint(i) if i < n => index.set_tainted(i, false),
                Step::PodCidr(i) if i < n => index.set_pod_cidr(i, true),
                _ => {}
            }
            let expected = walk(&views(&index));
            prop_assert_eq!(index.fits_somewhere(), expected.is_ok());
            prop_assert_eq!(index.place(), expected);
        }
    }
}
