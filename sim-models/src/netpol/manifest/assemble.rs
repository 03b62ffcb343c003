//! Assembling the cluster: duplicate objects are errors, then pods get node
//! and pod addresses.

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
    let pods = assign_addresses(seeds.into_values().map(|(s, _)| s).collect())?;
    let cluster = Cluster::new(
        namespaces.into_values().map(|(n, _)| n).collect(),
        pods,
        policies.into_values().map(|(p, _)| p).collect(),
    );
    Ok(Manifests { cluster, skipped })
}

fn assign_addresses(seeds: Vec<PodSeed>) -> Result<Vec<PodInfo>, ManifestError> {
    // Nodes: explicit host IPs are kept; named nodes get synthetic addresses.
    let node_range: Ipv4Cidr = SYNTHETIC_NODE_CIDR.parse().map_err(internal)?;
    let pod_range: Ipv4Cidr = SYNTHETIC_POD_CIDR.parse().map_err(internal)?;
    let explicit_hosts: BTreeSet<Ipv4Addr> = seeds.iter().filter_map(|s| s.host_ip).collect();
    let node_names: BTreeSet<String> = seeds
        .iter()
        .filter(|s| s.host_ip.is_none())
        .map(|s| {
            s.node_name
                .clone()
                .unwrap_or_else(|| DEFAULT_NODE_NAME.into())
        })
        .collect();
    let mut node_ips = BTreeMap::new();
    let mut next = u32::from(node_range.network()) + 2;
    for name in node_names {
        while explicit_hosts.contains(&Ipv4Addr::from(next)) {
            next += 1;
        }
        node_ips.insert(name, Ipv4Addr::from(next));
        next += 1;
    }
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
    for s in seeds {
        let host_ip = match s.host_ip {
            Some(ip) => ip,
            None => {
                let node = s
                    .node_name
                    .clone()
                    .unwrap_or_else(|| DEFAULT_NODE_NAME.into());
                node_ips
                    .get(&node)
                    .copied()
                    .ok_or_else(|| internal("node without address"))?
            }
        };
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
    Ok(pods)
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
