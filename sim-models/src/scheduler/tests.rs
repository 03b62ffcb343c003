use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

/// The brute-force reference: the whole filter and score, node by node,
/// from the nodes' state alone.
fn walk(index: &NodeIndex, ask: &Ask<'_>) -> Result<usize, String> {
    let nodes = &index.nodes;
    let zones = index.zone_names.len();
    let count = |z: usize| {
        ask.spread
            .map_or(0, |s| s.counts.get(z).copied().unwrap_or(0))
    };
    let min = (0..zones)
        .filter(|&z| nodes.iter().any(|n| n.present && n.zone as usize == z))
        .map(count)
        .min()
        .unwrap_or(0);
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    let mut best: Option<(u32, u32, usize)> = None;
    let mut total = 0;
    for (i, n) in nodes.iter().enumerate() {
        if !n.present {
            continue;
        }
        total += 1;
        if !n.pod_cidr || n.tainted {
            *reasons.entry(NOT_READY).or_default() += 1;
            continue;
        }
        if n.unreachable {
            *reasons.entry(UNREACHABLE).or_default() += 1;
            continue;
        }
        let mut failed = false;
        if n.pods + 1 > n.max_pods {
            *reasons.entry(TOO_MANY_PODS).or_default() += 1;
            failed = true;
        }
        let r = ask.requests;
        if let (Some(a), false) = (n.allocatable, r.is_zero()) {
            if a.cpu_millis < n.requested.cpu_millis + r.cpu_millis {
                *reasons.entry(INSUFFICIENT_CPU).or_default() += 1;
                failed = true;
            }
            if a.memory < n.requested.memory + r.memory {
                *reasons.entry(INSUFFICIENT_MEMORY).or_default() += 1;
                failed = true;
            }
        }
        if failed {
            continue;
        }
        let c = count(n.zone as usize);
        if ask
            .spread
            .is_some_and(|s| s.hard && c as i64 + 1 - min as i64 > s.max_skew as i64)
        {
            *reasons.entry(SPREAD_NOT_MATCHED).or_default() += 1;
            continue;
        }
        let key = (c, n.pods, i);
        if best.is_none_or(|b| key < b) {
            best = Some(key);
        }
    }
    match best {
        Some((_, _, i)) => Ok(i),
        None => {
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

fn place(index: &NodeIndex, ask: &Ask<'_>) -> Result<usize, String> {
    index.place(ask).ok_or_else(|| index.why_not(ask))
}

fn index(nodes: &[(u32, bool)]) -> NodeIndex {
    let mut index = NodeIndex::default();
    for (i, &(pods, ready)) in nodes.iter().enumerate() {
        let n = index.add_node(["a", "b", "c"][i % 3], 110, true);
        (0..pods).for_each(|_| index.bind(n, Resources::default()));
        index.set_tainted(n, !ready);
    }
    index
}

const GI: u64 = 1 << 30;

#[test]
fn spreads_to_the_emptiest_node_first_in_order() {
    let i = index(&[(5, true), (3, true), (3, true)]);
    assert_eq!(place(&i, &Ask::default()), Ok(1));
}

#[test]
fn full_and_not_ready_nodes_give_kube_scheduler_text() {
    let msg = place(
        &index(&[(110, true), (0, false), (110, true)]),
        &Ask::default(),
    )
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
    let msg = place(&index(&nodes), &Ask::default()).unwrap_err();
    assert!(
        msg.starts_with("0/12 nodes are available: 10 Too many pods, 2 node(s) had untolerated"),
        "{msg}"
    );
    assert_eq!(
        place(&NodeIndex::default(), &Ask::default()).unwrap_err(),
        "0/0 nodes are available: no nodes available to schedule pods. preemption: \
         0/0 nodes are available: 0 No preemption victims found for incoming pod."
    );
}

#[test]
fn insufficient_cpu_and_memory_are_counted_per_node_and_sorted_as_texts() {
    // Nodes of 4 CPU / 16 GiB; pods asking 1 CPU / 6 GiB: two fit per node
    // by memory, four by CPU.
    let mut i = NodeIndex::default();
    let shape = Resources {
        cpu_millis: 4000,
        memory: 16 * GI,
    };
    let ask = Ask {
        requests: Resources {
            cpu_millis: 1000,
            memory: 6 * GI,
        },
        spread: None,
    };
    for z in ["a", "b", "c"] {
        let n = i.add_node(z, 110, true);
        i.set_allocatable(n, shape);
    }
    for _ in 0..6 {
        let n = i.place(&ask).expect("room");
        i.bind(n, ask.requests);
    }
    assert_eq!(i.place(&ask), None);
    assert_eq!(
        i.why_not(&ask),
        "0/3 nodes are available: 3 Insufficient memory. preemption: 0/3 nodes are available: \
         3 No preemption victims found for incoming pod."
    );
    // A node short of both counts in both; a full node also counts "Too many pods".
    let big = Ask {
        requests: Resources {
            cpu_millis: 3500,
            memory: 6 * GI,
        },
        spread: None,
    };
    let n = i.add_node("a", 0, true);
    i.set_allocatable(n, shape);
    assert_eq!(
        i.why_not(&big),
        "0/4 nodes are available: 1 Too many pods, 3 Insufficient cpu, 3 Insufficient memory. \
         preemption: 0/4 nodes are available: 4 No preemption victims found for incoming pod."
    );
    // A pod with no requests is not checked for CPU or memory.
    assert!(i.place(&Ask::default()).is_some());
}

#[test]
fn standby_nodes_count_nowhere_until_created() {
    let mut i = NodeIndex::default();
    i.add_node("a", 1, true);
    let s = i.add_standby_node("b", 110);
    i.bind(0, Resources::default());
    assert_eq!(i.present(), 1);
    assert!(place(&i, &Ask::default())
        .unwrap_err()
        .starts_with("0/1 nodes are available: 1 Too many pods."));
    i.set_present(s);
    i.set_pod_cidr(s, true);
    assert_eq!(place(&i, &Ask::default()), Ok(s));
}

#[test]
fn do_not_schedule_keeps_the_skew_and_a_dead_zone_blocks_the_rest() {
    let mut i = NodeIndex::default();
    for z in ["a", "b", "c"] {
        i.add_node(z, 110, true);
    }
    // 2, 1, 1 pods in zones a, b, c: with maxSkew 1, a is out.
    let counts = [2, 1, 1];
    let ask = Ask {
        requests: Resources::default(),
        spread: Some(Spread {
            max_skew: 1,
            hard: true,
            counts: &counts,
        }),
    };
    i.bind(0, Resources::default());
    i.bind(0, Resources::default());
    i.bind(1, Resources::default());
    i.bind(2, Resources::default());
    assert_eq!(place(&i, &ask), Ok(1));
    // Zone c's node is NotReady but still a domain with 1 pod: b and c full
    // to 2, then a zone at 1 pins everything.
    i.set_tainted(2, true);
    let counts = [2, 2, 1];
    let ask = Ask {
        spread: Some(Spread {
            max_skew: 1,
            hard: true,
            counts: &counts,
        }),
        ..ask
    };
    assert_eq!(
        place(&i, &ask).unwrap_err(),
        "0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, \
         2 node(s) didn't match pod topology spread constraints. preemption: 0/3 nodes are available: \
         3 No preemption victims found for incoming pod."
    );
    // ScheduleAnyway places it anyway: zones a and b tie on 2, b's node has fewer pods.
    let soft = Ask {
        spread: Some(Spread {
            max_skew: 1,
            hard: false,
            counts: &counts,
        }),
        ..ask
    };
    assert_eq!(place(&i, &soft), Ok(1));
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
    /// This standby node is created.
    Create(usize),
    /// This node's zone fails (tainted unreachable).
    Unreachable(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => Just(Step::Place),
        2 => (0..12usize).prop_map(Step::Bind),
        3 => (0..12usize).prop_map(Step::Delete),
        1 => (0..12usize).prop_map(Step::Taint),
        1 => (0..12usize).prop_map(Step::Unreachable),
        1 => (0..12usize).prop_map(Step::Untaint),
        1 => (0..12usize).prop_map(Step::PodCidr),
        1 => (0..12usize).prop_map(Step::Create),
    ]
}

proptest! {
    #[test]
    fn index_picks_and_explains_as_the_walk_does(
        nodes in prop::collection::vec(
            (0..4usize, 1..5u32, any::<bool>(), any::<bool>(), prop::option::of((0..4u64, 0..4u64))),
            0..12,
        ),
        asks in prop::collection::vec((0..3u64, 0..3u64), 1..4),
        spread in prop::option::of((1..3u32, any::<bool>())),
        steps in prop::collection::vec((step(), 0..4usize), 0..200),
    ) {
        let mut index = NodeIndex::default();
        for &(zone, max_pods, pod_cidr, standby, alloc) in &nodes {
            let name = ["a", "b", "c", "d"][zone];
            let n = if standby {
                index.add_standby_node(name, max_pods)
            } else {
                index.add_node(name, max_pods, pod_cidr)
            };
            if let Some((c, m)) = alloc {
                index.set_allocatable(n, Resources { cpu_millis: c, memory: m });
            }
        }
        prop_assert_eq!(index.len(), nodes.len());
        // Pods bound, per node: (requests, zone) to count the spread.
        let mut bound: Vec<Vec<Resources>> = vec![Vec::new(); nodes.len()];
        for (s, which) in steps {
            let n = index.len();
            let (c, m) = asks[which % asks.len()];
            let requests = Resources { cpu_millis: c, memory: m };
            let mut counts = vec![0u32; index.zone_count()];
            for (node, pods) in bound.iter().enumerate() {
                counts[index.zone_of(node)] += pods.len() as u32;
            }
            let ask = Ask {
                requests,
                spread: spread.map(|(max_skew, hard)| Spread { max_skew, hard, counts: &counts }),
            };
            match s {
                Step::Place => {
                    if let Some(node) = index.place(&ask) {
                        index.bind(node, requests);
                        bound[node].push(requests);
                    }
                }
                Step::Bind(i) if i < n && index.is_present(i) => {
                    index.bind(i, requests);
                    bound[i].push(requests);
                }
                Step::Delete(i) if i < n => {
                    if let Some(r) = bound[i].pop() {
                        index.unbind(i, r);
                    }
                }
                Step::Taint(i) if i < n => index.set_tainted(i, true),
                Step::Untaint(i) if i < n => index.set_tainted(i, false),
                Step::PodCidr(i) if i < n => index.set_pod_cidr(i, true),
                Step::Create(i) if i < n => index.set_present(i),
                Step::Unreachable(i) if i < n => index.set_unreachable(i, true),
                _ => {}
            }
            let mut counts = vec![0u32; index.zone_count()];
            for (node, pods) in bound.iter().enumerate() {
                counts[index.zone_of(node)] += pods.len() as u32;
            }
            let ask = Ask {
                requests,
                spread: spread.map(|(max_skew, hard)| Spread { max_skew, hard, counts: &counts }),
            };
            let expected = walk(&index, &ask);
            prop_assert_eq!(place(&index, &ask), expected);
            if ask.requests.is_zero() && ask.spread.is_none() {
                prop_assert_eq!(index.fits_somewhere(), place(&index, &ask).is_ok());
            }
        }
    }
}

#[test]
fn a_failed_zone_still_counts_for_the_spread_and_names_its_taint() {
    // Three zones, a node each; zone a's node is unreachable, its pods
    // gone. With DoNotSchedule and maxSkew 1, zone a's 0 pods hold b and c
    // (1 each) back, as PodTopologySpread's default nodeTaintsPolicy:
    // Ignore counts the tainted node's zone.
    let mut i = NodeIndex::default();
    for z in ["a", "b", "c"] {
        i.add_node(z, 110, true);
    }
    i.set_unreachable(0, true);
    let counts = [0, 1, 1];
    let hard = Ask {
        requests: Resources::default(),
        spread: Some(Spread {
            max_skew: 1,
            hard: true,
            counts: &counts,
        }),
    };
    assert_eq!(
        place(&i, &hard),
        Err("0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }, \
             2 node(s) didn't match pod topology spread constraints. preemption: 0/3 nodes are available: \
             3 No preemption victims found for incoming pod."
            .to_string())
    );
    // ScheduleAnyway: the least skewed zone that can take it.
    let soft = Ask {
        spread: Some(Spread {
            max_skew: 1,
            hard: false,
            counts: &counts,
        }),
        ..hard
    };
    assert_eq!(place(&i, &soft), Ok(1));
}
