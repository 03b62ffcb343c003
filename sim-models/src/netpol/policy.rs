//! The model: policies after the API server's defaulting and validation, pods,
//! namespaces, and the [`Cluster`] that holds them.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use super::names::check_port_name;
use super::selector::{LabelSelector, Labels};
use crate::ipam::Ipv4Cidr;
use crate::protocol::Protocol;

/// The label the API server puts on every namespace (since Kubernetes 1.21),
/// whose value is the namespace's name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Which directions a policy isolates (`spec.policyTypes` after defaulting).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PolicyTypes {
    /// The policy isolates the pods it selects for ingress.
    pub ingress: bool,
    /// The policy isolates the pods it selects for egress.
    pub egress: bool,
}

impl PolicyTypes {
    /// The API server's defaulting (`SetDefaults_NetworkPolicy`): an empty or
    /// absent `policyTypes` becomes `[Ingress]`, plus `Egress` when the policy has
    /// at least one egress rule (`len(spec.egress) != 0`: `egress: []` does not
    /// count). A non-empty list is taken as written.
    pub fn defaulted(declared: &[Direction], egress_rules: usize) -> PolicyTypes {
        if declared.is_empty() {
            PolicyTypes {
                ingress: true,
                egress: egress_rules != 0,
            }
        } else {
            PolicyTypes {
                ingress: declared.contains(&Direction::Ingress),
                egress: declared.contains(&Direction::Egress),
            }
        }
    }

    /// Whether this direction is isolated.
    pub fn has(&self, direction: Direction) -> bool {
        match direction {
            Direction::Ingress => self.ingress,
            Direction::Egress => self.egress,
        }
    }
}

/// A traffic direction relative to the selected pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// Traffic arriving at the pod.
    Ingress,
    /// Traffic leaving the pod.
    Egress,
}

impl Direction {
    /// `ingress`/`egress`, as the spec's field names.
    pub fn field(&self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

/// An `ipBlock`: a CIDR minus the `except` CIDRs (each a strict subset).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IpBlock {
    /// `cidr`.
    pub cidr: Ipv4Cidr,
    /// `except`.
    pub except: Vec<Ipv4Cidr>,
}

impl IpBlock {
    /// Whether `ip` is in `cidr` and in none of `except`.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.cidr.contains(ip) && !self.except.iter().any(|e| e.contains(ip))
    }

    /// The API server's `ValidateIPBlock` rule for `except`: each entry inside
    /// `cidr` and with a longer prefix (a strict subset).
    pub fn validate(&self) -> Result<(), String> {
        for (i, e) in self.except.iter().enumerate() {
            if !(self.cidr.contains(e.network()) && e.prefix() > self.cidr.prefix()) {
                return Err(format!(
                    "except[{i}]: {e} must be a strict subset of `cidr` {}",
                    self.cidr
                ));
            }
        }
        Ok(())
    }
}

/// One entry of a rule's `from`/`to` list.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Peer {
    /// `podSelector` and/or `namespaceSelector`. With only `pod_selector`, pods in
    /// the policy's own namespace; with only `namespace_selector`, all pods in the
    /// matching namespaces; with both, pods matching both (AND).
    Selector {
        /// `namespaceSelector`, if given.
        namespace_selector: Option<LabelSelector>,
        /// `podSelector`, if given.
        pod_selector: Option<LabelSelector>,
    },
    /// `ipBlock`, matched against the remote IP, pod IPs included.
    IpBlock(IpBlock),
}

impl Peer {
    /// The API server's `ValidateNetworkPolicyPeer` (an `IpBlock` cannot be
    /// combined with selectors by construction).
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Peer::Selector {
                namespace_selector: None,
                pod_selector: None,
            } => Err("must specify a peer (podSelector, namespaceSelector or ipBlock)".into()),
            Peer::Selector {
                namespace_selector,
                pod_selector,
            } => {
                if let Some(s) = pod_selector {
                    s.validate().map_err(|e| format!("podSelector.{e}"))?;
                }
                if let Some(s) = namespace_selector {
                    s.validate().map_err(|e| format!("namespaceSelector.{e}"))?;
                }
                Ok(())
            }
            Peer::IpBlock(b) => b.validate().map_err(|e| format!("ipBlock.{e}")),
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Selector {
                namespace_selector: None,
                pod_selector: Some(p),
            } => write!(f, "pods {p} in the policy's namespace"),
            Peer::Selector {
                namespace_selector: Some(n),
                pod_selector: None,
            } => write!(f, "all pods in namespaces {n}"),
            Peer::Selector {
                namespace_selector: Some(n),
                pod_selector: Some(p),
            } => write!(f, "pods {p} in namespaces {n}"),
            Peer::Selector {
                namespace_selector: None,
                pod_selector: None,
            } => f.write_str("no peer"),
            Peer::IpBlock(b) if b.except.is_empty() => write!(f, "ipBlock {}", b.cidr),
            Peer::IpBlock(b) => {
                let except: Vec<String> = b.except.iter().map(|e| e.to_string()).collect();
                write!(f, "ipBlock {} except [{}]", b.cidr, except.join(", "))
            }
        }
    }
}

/// The port part of a [`PolicyPort`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PortSpec {
    /// A numeric port, or the inclusive range `port..=end_port`.
    Number {
        /// `port`.
        port: u16,
        /// `endPort`, if given.
        end_port: Option<u16>,
    },
    /// A named port, resolved on the destination pod's container ports with the
    /// same protocol.
    Named(String),
}

/// One entry of a rule's `ports` list, after defaulting (`protocol` is TCP when
/// omitted).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PolicyPort {
    /// `protocol`.
    pub protocol: Protocol,
    /// `port` (+ `endPort`); `None` means every port of the protocol.
    pub port: Option<PortSpec>,
}

impl PolicyPort {
    /// The API server's `ValidateNetworkPolicyPort`.
    pub fn validate(&self) -> Result<(), String> {
        match &self.port {
            Some(PortSpec::Number {
                port,
                end_port: Some(end),
            }) if end < port => Err(format!(
                "endPort: {end} must be greater than or equal to `port` ({port})"
            )),
            Some(PortSpec::Number { port: 0, .. }) => {
                Err("port: 0 is out of range: must be between 1 and 65535, inclusive".into())
            }
            Some(PortSpec::Named(name)) => check_port_name(name).map_err(|e| format!("port: {e}")),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for PolicyPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.port {
            None => write!(f, "all {} ports", self.protocol),
            Some(PortSpec::Number {
                port,
                end_port: None,
            }) => write!(f, "{}/{port}", self.protocol),
            Some(PortSpec::Number {
                port,
                end_port: Some(end),
            }) => write!(f, "{}/{port}-{end}", self.protocol),
            Some(PortSpec::Named(name)) => write!(f, "{}/{name} (named)", self.protocol),
        }
    }
}

/// One ingress or egress rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rule {
    /// `from` (ingress) or `to` (egress). Empty means every peer, including IPs
    /// outside the cluster.
    pub peers: Vec<Peer>,
    /// `ports`. Empty means every port and protocol.
    pub ports: Vec<PolicyPort>,
}

/// A NetworkPolicy after defaulting.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Policy {
    /// `metadata.namespace` (default `default`).
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `spec.podSelector`: which pods of `namespace` the policy applies to.
    pub pod_selector: LabelSelector,
    /// `spec.policyTypes`, defaulted.
    pub policy_types: PolicyTypes,
    /// `spec.ingress`.
    pub ingress: Vec<Rule>,
    /// `spec.egress`.
    pub egress: Vec<Rule>,
}

impl Policy {
    /// Whether the policy applies to `pod` (same namespace, selector matches;
    /// host-network pods are never selected, see the module docs).
    pub fn selects(&self, pod: &PodInfo) -> bool {
        !pod.host_network
            && pod.namespace == self.namespace
            && self.pod_selector.matches(&pod.labels)
    }

    /// The rules of one direction.
    pub fn rules(&self, direction: Direction) -> &[Rule] {
        match direction {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }

    /// The API server's `ValidateNetworkPolicySpec` on an already-typed policy.
    pub fn validate(&self) -> Result<(), String> {
        self.pod_selector
            .validate()
            .map_err(|e| format!("spec.podSelector.{e}"))?;
        for direction in [Direction::Ingress, Direction::Egress] {
            let peers = match direction {
                Direction::Ingress => "from",
                Direction::Egress => "to",
            };
            for (i, rule) in self.rules(direction).iter().enumerate() {
                for (j, peer) in rule.peers.iter().enumerate() {
                    peer.validate().map_err(|e| {
                        format!("spec.{}[{i}].{peers}[{j}]: {e}", direction.field())
                    })?;
                }
                for (j, port) in rule.ports.iter().enumerate() {
                    port.validate()
                        .map_err(|e| format!("spec.{}[{i}].ports[{j}].{e}", direction.field()))?;
                }
            }
        }
        Ok(())
    }
}

/// A container port of a pod.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContainerPort {
    /// `name`, which policies may refer to.
    pub name: Option<String>,
    /// `containerPort`.
    pub port: u16,
    /// `protocol` (default TCP).
    pub protocol: Protocol,
}

/// What the policy engine needs to know about a pod.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodInfo {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: Labels,
    /// Pod IP (equal to `host_ip` for host-network pods).
    pub ip: Ipv4Addr,
    /// The IP of the node the pod runs on.
    pub host_ip: Ipv4Addr,
    /// `spec.hostNetwork`.
    pub host_network: bool,
    /// Container ports of `spec.containers`.
    pub ports: Vec<ContainerPort>,
}

impl PodInfo {
    /// Whether this pod serves the named port `name` as `protocol`/`port`.
    pub fn has_named_port(&self, name: &str, protocol: Protocol, port: u16) -> bool {
        self.ports
            .iter()
            .any(|p| p.name.as_deref() == Some(name) && p.protocol == protocol && p.port == port)
    }
}

/// A namespace and its labels.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Namespace {
    /// Name.
    pub name: String,
    /// Labels (the automatic `kubernetes.io/metadata.name` label is added by
    /// [`Cluster::new`]).
    pub labels: Labels,
}

/// Policies, namespaces and pods: everything a verdict depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    namespaces: BTreeMap<String, Namespace>,
    pods: Vec<PodInfo>,
    policies: Vec<Policy>,
    by_ip: BTreeMap<Ipv4Addr, usize>,
}

impl Cluster {
    /// Builds a cluster. Namespaces referenced by pods or policies but not listed
    /// are created with no labels; every namespace gets the automatic
    /// `kubernetes.io/metadata.name=<name>` label, as the API server does. Pods
    /// and policies are sorted by (namespace, name). If two pod-network pods
    /// share an IP, the first in that order owns it (the manifest loader rejects
    /// such input).
    pub fn new(
        namespaces: Vec<Namespace>,
        mut pods: Vec<PodInfo>,
        mut policies: Vec<Policy>,
    ) -> Cluster {
        let mut map: BTreeMap<String, Namespace> = BTreeMap::new();
        for ns in namespaces {
            map.insert(ns.name.clone(), ns);
        }
        let referenced = pods
            .iter()
            .map(|p| p.namespace.clone())
            .chain(policies.iter().map(|p| p.namespace.clone()));
        for name in referenced.collect::<Vec<_>>() {
            map.entry(name.clone()).or_insert_with(|| Namespace {
                name,
                labels: Labels::new(),
            });
        }
        for ns in map.values_mut() {
            ns.labels
                .insert(NAMESPACE_NAME_LABEL.to_string(), ns.name.clone());
        }
        pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        policies.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let mut by_ip = BTreeMap::new();
        for (i, pod) in pods.iter().enumerate() {
            if !pod.host_network {
                by_ip.entry(pod.ip).or_insert(i);
            }
        }
        Cluster {
            namespaces: map,
            pods,
            policies,
            by_ip,
        }
    }

    /// The same pods and namespaces with a different set of policies.
    pub fn with_policies(&self, policies: Vec<Policy>) -> Cluster {
        Cluster::new(
            self.namespaces.values().cloned().collect(),
            self.pods.clone(),
            policies,
        )
    }

    /// Namespaces, by name.
    pub fn namespaces(&self) -> impl Iterator<Item = &Namespace> {
        self.namespaces.values()
    }

    /// Labels of a namespace (`None` if the namespace is unknown).
    pub fn namespace_labels(&self, name: &str) -> Option<&Labels> {
        self.namespaces.get(name).map(|n| &n.labels)
    }

    /// Pods, sorted by (namespace, name).
    pub fn pods(&self) -> &[PodInfo] {
        &self.pods
    }

    /// A pod by namespace and name.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<&PodInfo> {
        self.pods
            .iter()
            .find(|p| p.namespace == namespace && p.name == name)
    }

    /// The pod-network pod that owns `ip`, if any (host-network pods share their
    /// node's IP and are never returned).
    pub fn pod_by_ip(&self, ip: Ipv4Addr) -> Option<&PodInfo> {
        self.by_ip.get(&ip).map(|&i| &self.pods[i])
    }

    /// Whether `ip` is the host IP of a node that runs at least one pod.
    pub fn is_node_ip(&self, ip: Ipv4Addr) -> bool {
        self.pods.iter().any(|p| p.host_ip == ip)
    }

    /// Policies, sorted by (namespace, name).
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }
}
