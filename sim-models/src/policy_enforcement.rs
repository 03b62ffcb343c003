//! # NetworkPolicy enforcement in the data path
//!
//! ## Scope
//! Where the CNI enforces the verdicts of [`crate::netpol`]. Calico (iptables
//! or eBPF) and Cilium enforce NetworkPolicy; Flannel does not, so with
//! Flannel every flow passes and knsim warns that the policies are ignored
//! (Kubernetes docs, "Network Policies": policies need a network plugin that
//! implements them). Enforcement is per connection, as conntrack-based
//! dataplanes do it: the first packet is checked, replies and later packets
//! of an admitted connection follow conntrack, and a denied first packet is
//! dropped silently, so a TCP client retransmits its SYN until its own
//! timeout (`dial tcp ...: i/o timeout`) and a DNS client waits out its
//! resolver timeout.
//!
//! A policy change reaches the data path after a propagation delay (the
//! agent's watch, compute and program time); connections admitted before it
//! keep working, new ones get the new verdict.
//!
//! ## Parameters
//! `policy_delay`: from the scenario. No source gives policy programming
//! latency; it must be given, not defaulted (docs/calibration.md, row
//! `netpol-delay`).
//!
//! ## Cost
//! A verdict is a pure function of policies and pods (netpol's
//! `evaluate`), cached per (source pod, destination pod, protocol, port); the
//! cache is dropped when pods come or go or the policies change, so the cost
//! per connection does not grow with the number of policies.
//!
//! ## What it emits
//! Allowed, or denied with the operator's sentence of which policies isolate
//! which pod and what rule is missing.
//!
//! ## Validation
//! Unit tests: Flannel never denies; a default-deny egress policy denies with
//! a sentence; the cache follows policy and pod changes.

use crate::datapath::cni::Cni;
use crate::netpol::{evaluate, Cluster, Flow, Namespace, PodInfo, Policy, Protocol};
use sim_core::SimDuration;
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// Named sets of policies and which are active at the start.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyConfig {
    /// The network plugin (its mode does not matter here).
    pub cni: Cni,
    /// From a policy change to its effect in the data path.
    pub delay: SimDuration,
    /// Named sets of policies (a file of manifests each).
    pub sets: Vec<(String, Vec<Policy>)>,
    /// Indices into `sets` active at T+0.
    pub active: Vec<usize>,
    /// Namespaces and their labels.
    pub namespaces: Vec<Namespace>,
}

/// A denied connection's explanation.
pub type Denied = String;

/// Verdicts for the connections of one run.
#[derive(Debug)]
pub struct Enforcer {
    cni: Cni,
    namespaces: Vec<Namespace>,
    policies: Vec<Policy>,
    cluster: Option<Cluster>,
    cache: HashMap<(u32, u32, Protocol, u16), Option<Denied>>,
}

impl Enforcer {
    /// An enforcer with the policies of `active` sets of `cfg`.
    pub fn new(cfg: &PolicyConfig) -> Self {
        let mut e = Enforcer {
            cni: cfg.cni,
            namespaces: cfg.namespaces.clone(),
            policies: Vec::new(),
            cluster: None,
            cache: HashMap::new(),
        };
        e.set_active(cfg, &cfg.active);
        e
    }

    /// Replaces the active policies with those of `sets`.
    pub fn set_active(&mut self, cfg: &PolicyConfig, sets: &[usize]) {
        self.policies = sets
            .iter()
            .filter_map(|&i| cfg.sets.get(i))
            .flat_map(|(_, p)| p.iter().cloned())
            .collect();
        self.pods_changed();
    }

    /// Whether any policy is active.
    pub fn has_policies(&self) -> bool {
        !self.policies.is_empty()
    }

    /// Pods came or went: verdicts must be recomputed.
    pub fn pods_changed(&mut self) {
        self.cluster = None;
        self.cache.clear();
    }

    /// The verdict for a connection from pod `src` to pod `dst` on
    /// `protocol`/`port`: `None` if admitted, else the denial. `pods` lists
    /// every pod that has an address (index = pod id), for the selectors.
    pub fn check(
        &mut self,
        pods: &[Option<PodInfo>],
        (src, dst): (u32, u32),
        protocol: Protocol,
        port: u16,
    ) -> Option<&Denied> {
        if !self.cni.enforces_policy() || self.policies.is_empty() {
            return None;
        }
        let key = (src, dst, protocol, port);
        if !self.cache.contains_key(&key) {
            let cluster = self.cluster.get_or_insert_with(|| {
                Cluster::new(
                    self.namespaces.clone(),
                    pods.iter().flatten().cloned().collect(),
                    self.policies.clone(),
                )
            });
            let ip = |p: u32| {
                pods.get(p as usize)
                    .and_then(Option::as_ref)
                    .map_or(Ipv4Addr::UNSPECIFIED, |i| i.ip)
            };
            let verdict = evaluate(
                cluster,
                &Flow {
                    src: ip(src),
                    dst: ip(dst),
                    protocol,
                    port,
                },
            );
            let denial = verdict.denials().next().map(|d| d.sentence.clone());
            self.cache.insert(key, denial);
        }
        self.cache.get(&key).and_then(Option::as_ref)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netpol::parse_manifests;

    fn pod(ns: &str, name: &str, app: &str, ip: [u8; 4]) -> Option<PodInfo> {
        Some(PodInfo {
            namespace: ns.into(),
            name: name.into(),
            labels: [("app".to_string(), app.to_string())].into_iter().collect(),
            ip: Ipv4Addr::from(ip),
            host_ip: Ipv4Addr::new(192, 168, 0, 1),
            host_network: false,
            ports: Vec::new(),
        })
    }

    fn config(cni: Cni, yaml: &str) -> PolicyConfig {
        let m = parse_manifests(&[("p.yaml".into(), yaml.into())]).unwrap();
        PolicyConfig {
            cni,
            delay: SimDuration::ZERO,
            sets: vec![("deny".into(), m.cluster.policies().to_vec())],
            active: vec![0],
            namespaces: Vec::new(),
        }
    }

    const DENY_EGRESS: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: default-deny-egress, namespace: prod}\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n";

    #[test]
    fn default_deny_egress_denies_with_a_sentence_unless_flannel() {
        let pods = vec![
            pod("prod", "web-0", "web", [10, 0, 0, 2]),
            pod("kube-system", "coredns-0", "kube-dns", [10, 0, 0, 3]),
        ];
        let mut calico = Enforcer::new(&config(Cni::CalicoIpip, DENY_EGRESS));
        let denial = calico
            .check(&pods, (0, 1), Protocol::Udp, 53)
            .cloned()
            .expect("denied");
        assert!(denial.contains("default-deny-egress"), "{denial}");
        assert!(
            calico.check(&pods, (1, 0), Protocol::Tcp, 80).is_none(),
            "kube-system is not isolated"
        );
        let mut flannel = Enforcer::new(&config(Cni::FlannelVxlan, DENY_EGRESS));
        assert!(flannel.check(&pods, (0, 1), Protocol::Udp, 53).is_none());
    }

    #[test]
    fn removing_the_policies_admits_again() {
        let cfg = config(Cni::Cilium { tunnel: true }, DENY_EGRESS);
        let pods = vec![
            pod("prod", "web-0", "web", [10, 0, 0, 2]),
            pod("prod", "db-0", "db", [10, 0, 0, 3]),
        ];
        let mut e = Enforcer::new(&cfg);
        assert!(e.check(&pods, (0, 1), Protocol::Tcp, 5432).is_some());
        e.set_active(&cfg, &[]);
        assert!(e.check(&pods, (0, 1), Protocol::Tcp, 5432).is_none());
    }
}
