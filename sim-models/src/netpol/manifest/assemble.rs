//! Assembling the cluster: duplicate objects are errors, then pods get nodes,
//! nodes get addresses (one each) and pods get pod addresses.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

use super::documents::{Loc, Object, PodSeed};
use super::{ManifestError, Manifests, DEFAULT_NODE_NAME, SYNTHETIC_NODE_CIDR, SYNTHETIC_POD_CIDR};
use crate::ipam::Ipv4Cidr;
use crate::netpol::policy::{Cluster, Namespace, PodInfo, Policy};

pub(super) fn build(
    objects: Vec<Object>,
    skipped: Vec<String>,
) -> Result<Manifests, ManifestError> {
    let mut namespaces: BTreeMap<String, (Namespace, Loc)> = BTreeMap::new();
    let mut policies: BTreeMap<(String, String), (Policy, Loc)> = BTreeMap::new();
    let mut seeds: BTreeMap<(String, String), (PodSeed, String)> = BTreeMap::new();
    for object in objects {
        match object {
            Object::Namespace(ns, at) => {
                if let Some((_, first)) = namespaces.get(&ns.name) {
                    return Err(at.error(
                        format!("Namespace {} is defined twice (first at {first})", ns.name),
                        "remove or rename one of them",
                    ));
                }
                namespaces.insert(ns.name.clone(), (ns, at));
            }
            Object::Policy(p, at) => {
                let key = (p.namespace.clone(), p.name.clone());
                if let Some((_, first)) = policies.get(&key) {
                    return Err(at.error(
                        format!(
                            "NetworkPolicy {}/{} is defined twice (first at {first})",
                            key.0, key.1
                        ),
                        "names are unique per namespace: rename one, or merge their rules",
                    ));
                }
                policies.insert(key, (p, at));
            }
            // Read only for cluster scenarios (`Reading::Cluster`).
            Object::Workload(_) | Object::Service(_) | Object::Hpa(_) => {}
            Object::Pods(origin, pods) => {
                for pod in pods {
                    let key = (pod.namespace.clone(), pod.name.clone());
                    if let Some((first, first_origin)) = seeds.get(&key) {
                        return Err(pod.at.error(
                            format!(
                                "pod {}/{} (from {origin}) already exists (from {first_origin} at {})",
                                key.0, key.1, first.at
                            ),
                            "pod names are unique per namespace; workloads expand to <name>-0..<name>-(n-1)",
                        ));
                    }
                    seeds.insert(key, (pod, origin.clone()));
                }
            }
        }
    }
    let (pods, nodes) = assign_addresses(seeds.into_values().map(|(s, _)| s).collect())?;
    let cluster = Cluster::new(
        namespaces.into_values().map(|(n, _)| n).collect(),
        pods,
        policies.into_values().map(|(p, _)| p).collect(),
    );
    Ok(Manifests {
        cluster,
        nodes,
        skipped,
    })
}

/// The node of each pod (in `seeds` order) and the address of each node.
///
/// A pod runs on `spec.nodeName`; a pod without one runs on the node whose
/// address its `status.hostIP` states (a node of that address, named by
/// the address when no named node has it), or on [`DEFAULT_NODE_NAME`]. A
/// node has one address: the `status.hostIP` its pods state (two different
/// ones are an error, and so is one address stated for two nodes), else a
/// synthetic one from [`SYNTHETIC_NODE_CIDR`], given in node-name order and
/// skipping the stated ones.
fn assign_nodes(
    seeds: &[PodSeed],
) -> Result<(Vec<String>, BTreeMap<String, Ipv4Addr>), ManifestError> {
    let node_range: Ipv4Cidr = SYNTHETIC_NODE_CIDR.parse().map_err(internal)?;
    // Stated addresses of named nodes, with the pod that stated it first.
    let mut stated: BTreeMap<String, (Ipv4Addr, &PodSeed)> = BTreeMap::new();
    for s in seeds {
        let (Some(node), Some(ip)) = (&s.node_name, s.host_ip) else {
            continue;
        };
        match stated.get(node) {
            Some((first, by)) if *first != ip => {
                return Err(s.at.error(
                    format!(
                        "pod {}/{}: status.hostIP {ip} differs from {first}, which pod {}/{} states for node {node}",
                        s.namespace, s.name, by.namespace, by.name
                    ),
                    format!("a node has one address: give the pods on node {node} the same status.hostIP, or state it on one of them only"),
                ));
            }
            Some(_) => {}
            None => {
                stated.insert(node.clone(), (ip, s));
            }
        }
    }
    let mut by_address: BTreeMap<Ipv4Addr, (&String, &PodSeed)> = BTreeMap::new();
    for (node, (ip, by)) in &stated {
        if let Some((other, other_by)) = by_address.insert(*ip, (node, by)) {
            return Err(by.at.error(
                format!(
                    "pod {}/{}: status.hostIP {ip} of node {node} is already the address of node {other} (stated by pod {}/{})",
                    by.namespace, by.name, other_by.namespace, other_by.name
                ),
                "node addresses are unique: fix the status.hostIP or the spec.nodeName of one of these pods",
            ));
        }
    }
    let mut nodes: BTreeMap<String, Option<Ipv4Addr>> = stated
        .iter()
        .map(|(node, (ip, _))| (node.clone(), Some(*ip)))
        .collect();
    let mut node_of = Vec::with_capacity(seeds.len());
    for s in seeds {
        let (node, ip) = match (&s.node_name, s.host_ip) {
            (Some(node), _) => (node.clone(), None),
            (None, Some(ip)) => match by_address.get(&ip) {
                Some((node, _)) => ((*node).clone(), None),
                None => (ip.to_string(), Some(ip)),
            },
            (None, None) => (DEFAULT_NODE_NAME.to_string(), None),
        };
        let entry = nodes.entry(node.clone()).or_insert(ip);
        if entry.is_none() {
            *entry = ip;
        }
        node_of.push(node);
    }
    let taken: BTreeSet<Ipv4Addr> = nodes.values().flatten().copied().collect();
    let mut next = u32::from(node_range.network()) + 2;
    let mut addresses = BTreeMap::new();
    for (node, ip) in nodes {
        let ip = match ip {
            Some(ip) => ip,
            None => {
                while taken.contains(&Ipv4Addr::from(next)) {
                    next += 1;
                }
                next += 1;
                Ipv4Addr::from(next - 1)
            }
        };
        addresses.insert(node, ip);
    }
    Ok((node_of, addresses))
}

fn assign_addresses(
    seeds: Vec<PodSeed>,
) -> Result<(Vec<PodInfo>, BTreeMap<String, Ipv4Addr>), ManifestError> {
    let pod_range: Ipv4Cidr = SYNTHETIC_POD_CIDR.parse().map_err(internal)?;
    let (node_of, nodes) = assign_nodes(&seeds)?;
    // Pod IPs: explicit ones must be unique among pod-network pods.
    let mut used: BTreeMap<Ipv4Addr, String> = BTreeMap::new();
    for s in seeds.iter().filter(|s| !s.host_network) {
        if let Some(ip) = s.pod_ip {
            if let Some(other) = used.insert(ip, format!("{}/{}", s.namespace, s.name)) {
                return Err(s.at.error(
                    format!(
                        "pod {}/{}: status.podIP {ip} is already the IP of pod {other}",
                        s.namespace, s.name
                    ),
                    "pod IPs are unique; remove status.podIP to get a synthetic address",
                ));
            }
        }
    }
    let mut next_pod = u32::from(pod_range.network()) + 1;
    let last_pod = u32::from(pod_range.network()) | 0xfffe;
    let mut pods = Vec::with_capacity(seeds.len());
    for (s, node) in seeds.into_iter().zip(node_of) {
        let host_ip = nodes
            .get(&node)
            .copied()
            .ok_or_else(|| internal("node without address"))?;
        let ip = if s.host_network {
            host_ip
        } else if let Some(ip) = s.pod_ip {
            ip
        } else {
            while used.contains_key(&Ipv4Addr::from(next_pod)) {
                next_pod += 1;
            }
            if next_pod > last_pod {
                return Err(s.at.error(
                    format!(
                        "no synthetic address left in {SYNTHETIC_POD_CIDR} for pod {}/{}",
                        s.namespace, s.name
                    ),
                    "give pods explicit status.podIP values, or fewer replicas",
                ));
            }
            let ip = Ipv4Addr::from(next_pod);
            used.insert(ip, format!("{}/{}", s.namespace, s.name));
            ip
        };
        pods.push(PodInfo {
            namespace: s.namespace,
            name: s.name,
            labels: s.labels,
            ip,
            host_ip,
            host_network: s.host_network,
            ports: s.ports,
        });
    }
    Ok((pods, nodes))
}

fn internal(e: impl fmt::Display) -> ManifestError {
    ManifestError {
        file: "<knsim>".into(),
        line: 0,
        column: 0,
        message: format!("internal error: {e}"),
        hint: "please report this as a knsim bug".into(),
    }
}
