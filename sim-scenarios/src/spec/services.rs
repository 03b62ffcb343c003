//! Services and the edge: the `services` and `edge` sections.
//!
//! # Scope
//! `services:` lists Services apart from the workloads: a selector over the
//! pods of any workload, ports, a type (ClusterIP, NodePort, LoadBalancer),
//! headless or not (`clusterIP: None`: DNS answers the Ready pod
//! addresses, clients connect to them, no DNAT; traffic to one resolves
//! its name), `allocateLoadBalancerNodePorts`, and traffic policies. The
//! Services read from manifests (`spec::manifests`) come first, in one
//! list with these: names are unique per namespace across both, and their
//! NodePorts are checked and allocated together here as the apiserver
//! does ([`node_port::allocate`]; a manifest Service's refusal is located
//! at its `metadata.name`, in the apiserver's words). A workload no
//! Service selects keeps its implicit Service of the same name, which no
//! explicit Service may take. `edge:` says what is in front of the nodes: `nodePortAddresses` and a
//! security group. `cluster.nodes.public_addresses` gives the nodes public
//! addresses.
//!
//! # Validation
//! Every error names the field it is about (`file:line:column`) with a hint;
//! a selector that matches no workload is a warning (the variant's notes,
//! printed on stderr), as the Service is valid but has no endpoints.

use super::manifests::{at_manifest, ManifestService};
use super::{Validator, R};
use crate::envelope::Locate;
use crate::locate::Seg;
use crate::path;
use schemars::JsonSchema;
use serde::Deserialize;
use sim_models::netpol::manifest::Loc;
use sim_models::netpol::Protocol;
use sim_models::security_group::{SecurityGroup, SgRule};
use sim_models::services::node_port::{self, NodeAddressing, NodePortAddresses};
use sim_models::services::{
    resolve, ResolvedService, ServicePort, ServiceSpec, ServiceType, ServicesConfig, TrafficPolicy,
};
use sim_models::workload::DeploymentSpec;
use std::collections::BTreeMap;

/// A Service.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceFile {
    /// Name (unique per namespace; traffic `to:` names it).
    pub name: String,
    /// Namespace (default `default`).
    pub namespace: Option<String>,
    /// `spec.selector`: labels every selected pod has (workloads' pods are
    /// labelled `app: NAME` unless their `labels` say otherwise).
    pub selector: BTreeMap<String, String>,
    /// `spec.ports` (default: one port, the first selected workload's).
    #[serde(default)]
    pub ports: Vec<ServicePortFile>,
    /// `ClusterIP` (default), `NodePort` or `LoadBalancer`.
    #[serde(rename = "type")]
    pub kind: Option<ServiceTypeName>,
    /// `clusterIP: None` (ClusterIP type only): DNS answers the Ready pod
    /// addresses and clients connect to them (no DNAT; traffic to it needs
    /// `resolve`).
    #[serde(default)]
    pub headless: bool,
    /// `allocateLoadBalancerNodePorts` (LoadBalancer only; default true):
    /// `false` opens no NodePort unless a port gives one.
    pub allocate_load_balancer_node_ports: Option<bool>,
    /// `Cluster` (default) or `Local` (NodePort and LoadBalancer only).
    pub external_traffic_policy: Option<PolicyName>,
    /// `Cluster` (default) or `Local`.
    pub internal_traffic_policy: Option<PolicyName>,
    /// `PreferClose`: same-zone endpoints when the client's zone has any.
    pub traffic_distribution: Option<DistributionName>,
    /// `Auto`: the `service.kubernetes.io/topology-mode` annotation
    /// (Topology Aware Routing: the EndpointSlice controller hints
    /// endpoints to zones in proportion to their nodes' allocatable CPU,
    /// unless a safeguard removes every hint; it takes precedence over
    /// `traffic_distribution`). Needs `cluster.nodes.allocatable`: nodes
    /// without allocatable CPU disable the hints, as in Kubernetes.
    pub topology_mode: Option<TopologyModeName>,
}

/// One Service port.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServicePortFile {
    /// Name (required when there are several ports).
    pub name: Option<String>,
    /// The Service's port.
    pub port: u16,
    /// The pods' port (default: `port`).
    pub target_port: Option<u16>,
    /// `TCP` (default), `UDP` or `SCTP`.
    pub protocol: Option<String>,
    /// NodePort (NodePort and LoadBalancer types; default: allocated from
    /// 30000-32767).
    pub node_port: Option<u16>,
}

/// Service types.
#[derive(Debug, Deserialize, JsonSchema, Clone, Copy, PartialEq, Eq)]
pub enum ServiceTypeName {
    /// A virtual IP inside the cluster.
    ClusterIP,
    /// Also a port on every node.
    NodePort,
    /// Also a cloud load balancer (its NodePort stays open).
    LoadBalancer,
}

/// Traffic policies.
#[derive(Debug, Deserialize, JsonSchema, Clone, Copy, PartialEq, Eq)]
pub enum PolicyName {
    /// Any endpoint.
    Cluster,
    /// Node-local endpoints only.
    Local,
}

/// `trafficDistribution` values.
#[derive(Debug, Deserialize, JsonSchema, Clone, Copy, PartialEq, Eq)]
pub enum DistributionName {
    /// Same-zone endpoints first.
    PreferClose,
}

/// `service.kubernetes.io/topology-mode` values.
#[derive(Debug, Deserialize, JsonSchema, Clone, Copy, PartialEq, Eq)]
pub enum TopologyModeName {
    /// Hints by zone CPU, with the controller's safeguards.
    Auto,
}

/// What is in front of the nodes.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EdgeFile {
    /// kube-proxy's `nodePortAddresses`: `primary`, or a list of CIDRs
    /// (default: the mode's, every local address for iptables and IPVS, the
    /// primary address for nftables).
    pub node_port_addresses: Option<NodePortAddressesFile>,
    /// A security group's inbound rules in front of every node (default:
    /// none, everything reaches the nodes).
    pub security_group: Option<Vec<SgRuleFile>>,
}

/// `primary` or CIDRs.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum NodePortAddressesFile {
    /// `primary`.
    Word(String),
    /// CIDRs.
    Cidrs(Vec<String>),
}

/// One inbound rule.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SgRuleFile {
    /// Allowed sources (CIDR).
    pub from: String,
    /// Allowed ports: `443` or `30000-32767`.
    pub ports: PortsFile,
}

/// A port or a range.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum PortsFile {
    /// One port.
    One(u16),
    /// `LOW-HIGH`.
    Range(String),
}

/// Where an explicit Service is written, and whether its ports without a
/// NodePort get one (not for `allocateLoadBalancerNodePorts: false`).
#[derive(Clone, Copy)]
enum Place<'a> {
    /// In the manifests.
    Manifest(&'a Loc, bool),
    /// `services[i]`.
    File(usize, bool),
}

impl Validator<'_> {
    /// The manifests' Services, then the section's (at `sp`), over
    /// `deployments`; the edge (at `ep`) and the node addressing; notes
    /// collects warnings. `dns_workload` may not be selected (kube-dns
    /// stays its implicit Service).
    pub(super) fn service_section(
        &self,
        (manifest, services, sp): (&[ManifestService], &[ServiceFile], &[Seg]),
        (edge, ep): (Option<&EdgeFile>, &[Seg]),
        deployments: &[DeploymentSpec],
        dns_workload: Option<usize>,
        public_addresses: bool,
        notes: &mut Vec<String>,
    ) -> R<(ServicesConfig, Vec<ResolvedService>)> {
        let mut explicit: Vec<ServiceSpec> = manifest.iter().map(|m| m.spec.clone()).collect();
        let mut places: Vec<Place> = manifest
            .iter()
            .map(|m| Place::Manifest(&m.at, m.allocate_node_ports))
            .collect();
        for (i, f) in services.iter().enumerate() {
            let p = [sp, &path!["services", i]].concat();
            let namespace = f.namespace.clone().unwrap_or_else(|| "default".into());
            if let Some(k) = explicit
                .iter()
                .position(|s| s.name == f.name && s.namespace == namespace)
            {
                let first = match places[k] {
                    Place::Manifest(at, _) => format!(" (first in the manifests, {at})"),
                    Place::File(..) => String::new(),
                };
                return Err(self.err(
                    &[&p[..], &path!["name"]].concat(),
                    format!(
                        "Service `{}` in namespace {namespace} is defined twice{first}",
                        f.name
                    ),
                    "give each Service its own name",
                ));
            }
            if f.selector.is_empty() {
                return Err(self.err(
                    &[&p[..], &path!["selector"]].concat(),
                    "the selector is empty: the model's Services get endpoints from a selector",
                    "select the pods by label, e.g. selector: {app: web}",
                ));
            }
            let selected: Vec<usize> = (0..deployments.len())
                .filter(|&w| {
                    deployments[w].namespace == namespace
                        && sim_models::services::selects(&f.selector, &deployments[w].labels)
                })
                .collect();
            if let Some(w) = dns_workload.filter(|w| selected.contains(w)) {
                return Err(self.err(
                    &[&p[..], &path!["selector"]].concat(),
                    format!(
                        "the selector selects `{}`, the DNS workload, whose Service is kube-dns",
                        deployments[w].name
                    ),
                    "narrow the selector to other workloads",
                ));
            }
            if selected.is_empty() {
                notes.push(format!(
                    "warning: Service {namespace}/{}: selector {} matches no pods of any workload; the Service has no endpoints",
                    f.name,
                    f.selector
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                ));
            }
            let kind = match f.kind {
                None | Some(ServiceTypeName::ClusterIP) => ServiceType::ClusterIp,
                Some(ServiceTypeName::NodePort) => ServiceType::NodePort,
                Some(ServiceTypeName::LoadBalancer) => ServiceType::LoadBalancer,
            };
            if f.headless && kind != ServiceType::ClusterIp {
                return Err(self.err(
                    &[&p[..], &path!["headless"]].concat(),
                    format!("a headless Service cannot be of type {}", kind.name()),
                    "remove `headless: true` or use type: ClusterIP",
                ));
            }
            if f.allocate_load_balancer_node_ports.is_some() && kind != ServiceType::LoadBalancer {
                return Err(self.err(
                    &[&p[..], &path!["allocate_load_balancer_node_ports"]].concat(),
                    "allocateLoadBalancerNodePorts applies to LoadBalancer Services only",
                    "remove it, or set type: LoadBalancer",
                ));
            }
            let external = match f.external_traffic_policy {
                None | Some(PolicyName::Cluster) => TrafficPolicy::Cluster,
                Some(PolicyName::Local) => TrafficPolicy::Local,
            };
            if external == TrafficPolicy::Local && !kind.has_node_port() {
                return Err(self.err(
                    &[&p[..], &path!["external_traffic_policy"]].concat(),
                    "externalTrafficPolicy applies to NodePort and LoadBalancer Services only",
                    "remove it, or set type: NodePort or LoadBalancer",
                ));
            }
            let internal = match f.internal_traffic_policy {
                None | Some(PolicyName::Cluster) => TrafficPolicy::Cluster,
                Some(PolicyName::Local) => TrafficPolicy::Local,
            };
            let mut ports = Vec::new();
            if f.ports.is_empty() {
                let Some(&w) = selected.first() else {
                    return Err(self.err(
                        &p,
                        "no `ports` and the selector matches no workload to take a port from",
                        "give ports: [{port: 80, target_port: 8080}]",
                    ));
                };
                let sp = &deployments[w].port;
                ports.push(ServicePort {
                    name: sp.name.clone(),
                    port: sp.number,
                    target_port: sp.number,
                    protocol: sp.protocol,
                    node_port: None,
                });
            }
            for (j, pf) in f.ports.iter().enumerate() {
                let pp = [&p[..], &path!["ports", j]].concat();
                if pf.port == 0 {
                    return Err(self.err(
                        &[&pp[..], &path!["port"]].concat(),
                        "port 0 is not a valid port",
                        "ports run from 1 to 65535",
                    ));
                }
                if f.ports.len() > 1 && pf.name.is_none() {
                    return Err(self.err(
                        &pp,
                        "a Service with several ports must name each",
                        "add name: http (or another name)",
                    ));
                }
                let protocol = match pf.protocol.as_deref() {
                    None | Some("TCP") => Protocol::Tcp,
                    Some("UDP") => Protocol::Udp,
                    Some("SCTP") => Protocol::Sctp,
                    Some(other) => {
                        return Err(self.err(
                            &[&pp[..], &path!["protocol"]].concat(),
                            format!("unknown protocol `{other}`"),
                            "TCP, UDP or SCTP",
                        ))
                    }
                };
                if pf.node_port.is_some() && !kind.has_node_port() {
                    return Err(self.err(
                        &[&pp[..], &path!["node_port"]].concat(),
                        "a ClusterIP Service has no NodePort",
                        "remove node_port, or set type: NodePort or LoadBalancer",
                    ));
                }
                ports.push(ServicePort {
                    name: pf.name.clone(),
                    port: pf.port,
                    target_port: pf.target_port.unwrap_or(pf.port),
                    protocol,
                    node_port: pf.node_port,
                });
            }
            explicit.push(ServiceSpec {
                name: f.name.clone(),
                namespace,
                selector: f.selector.clone(),
                ports,
                kind,
                headless: f.headless,
                external_policy: external,
                internal_policy: internal,
                prefer_close: f.traffic_distribution.is_some(),
                topology_auto: f.topology_mode.is_some(),
                health_check_node_port: None,
            });
            places.push(Place::File(
                i,
                kind != ServiceType::LoadBalancer
                    || f.allocate_load_balancer_node_ports != Some(false),
            ));
        }
        self.allocate_node_ports(sp, services, &places, &mut explicit)?;
        let no_edge = EdgeFile::default();
        let edge = edge.unwrap_or(&no_edge);
        let node_port_addresses = match &edge.node_port_addresses {
            None => NodePortAddresses::Default,
            Some(NodePortAddressesFile::Word(w)) if w == "primary" => NodePortAddresses::Primary,
            Some(NodePortAddressesFile::Word(w)) => {
                return Err(self.err(
                    &[ep, &path!["edge", "node_port_addresses"]].concat(),
                    format!("unknown nodePortAddresses value `{w}`"),
                    "`primary`, or a list of CIDRs such as [10.0.0.0/8]",
                ))
            }
            Some(NodePortAddressesFile::Cidrs(cs)) => NodePortAddresses::Cidrs(
                cs.iter()
                    .enumerate()
                    .map(|(i, c)| {
                        self.cidr(&[ep, &path!["edge", "node_port_addresses", i]].concat(), c)
                    })
                    .collect::<R<_>>()?,
            ),
        };
        let security_group = match &edge.security_group {
            None => None,
            Some(rules) => Some(SecurityGroup {
                rules: rules
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        let rp = [ep, &path!["edge", "security_group", i]].concat();
                        Ok(SgRule {
                            cidr: self.cidr(&[&rp[..], &path!["from"]].concat(), &r.from)?,
                            ports: self.ports(&[&rp[..], &path!["ports"]].concat(), &r.ports)?,
                        })
                    })
                    .collect::<R<_>>()?,
            }),
        };
        let addressing = NodeAddressing {
            public: public_addresses.then(NodeAddressing::documentation_public),
            ..NodeAddressing::default()
        };
        let resolved = resolve(deployments, &explicit);
        // An explicit Service may not take the name of a workload's
        // implicit one (one DNS name, two Services).
        for r in &resolved {
            let Some(w) = r.implicit else { continue };
            let Some(k) = explicit
                .iter()
                .position(|s| s.name == r.spec.name && s.namespace == r.spec.namespace)
            else {
                continue;
            };
            let (what, hint) = (
                format!(
                    "Service {}/{} does not select the pods of workload `{}`, whose own Service has that name",
                    r.spec.namespace, r.spec.name, deployments[w].name
                ),
                "rename the Service, or make it select the workload's pods",
            );
            return Err(match places[k] {
                Place::Manifest(at, _) => at_manifest(at, what, hint),
                Place::File(i, _) => {
                    self.err(&[sp, &path!["services", i, "name"]].concat(), what, hint)
                }
            });
        }
        Ok((
            ServicesConfig {
                explicit,
                addressing,
                node_port_addresses,
                security_group,
            },
            resolved,
        ))
    }

    /// Allocates the NodePorts of `explicit` (written at `places`: the
    /// manifests, or `services:` at `sp`) as the apiserver does; a
    /// collision or a port out of range is located, with the apiserver's
    /// wording.
    fn allocate_node_ports(
        &self,
        sp: &[Seg],
        files: &[ServiceFile],
        places: &[Place],
        explicit: &mut [ServiceSpec],
    ) -> R<()> {
        // (Service, port index; `None`: its healthCheckNodePort, allocated
        // from the same range after the ports given by hand).
        let mut at: Vec<(usize, Option<usize>)> = Vec::new();
        let mut requests = Vec::new();
        for (i, s) in explicit.iter().enumerate() {
            let allocate = match places[i] {
                Place::Manifest(_, a) | Place::File(_, a) => a,
            };
            if s.kind.has_node_port() {
                for (j, p) in s.ports.iter().enumerate() {
                    if allocate || p.node_port.is_some() {
                        at.push((i, Some(j)));
                        requests.push(p.node_port);
                    }
                }
            }
            if s.needs_health_check() {
                at.push((i, None));
                requests.push(None);
            }
        }
        match node_port::allocate(&requests, node_port::DEFAULT_RANGE) {
            Ok(ports) => {
                for (&(i, j), port) in at.iter().zip(ports) {
                    match j {
                        Some(j) => explicit[i].ports[j].node_port = Some(port),
                        None => explicit[i].health_check_node_port = Some(port),
                    }
                }
                Ok(())
            }
            Err((k, why)) => {
                let (i, j) = at[k];
                let hint = match why {
                    node_port::AllocError::Taken { holder, .. } => format!(
                        "Service `{}` already holds it; pick another port or leave the node port out to have one allocated",
                        explicit[at[holder].0].name
                    ),
                    node_port::AllocError::OutOfRange { .. } => {
                        "NodePorts come from --service-node-port-range, 30000-32767 by default".into()
                    }
                    node_port::AllocError::Full => "fewer NodePort Services".into(),
                };
                match places[i] {
                    Place::Manifest(loc, _) => {
                        // As `kubectl apply` prints it.
                        let field = j.map_or("spec.healthCheckNodePort".into(), |j| {
                            format!("spec.ports[{j}].nodePort")
                        });
                        let why = why.to_string().replacen("spec.ports[].nodePort", &field, 1);
                        Err(at_manifest(
                            loc,
                            format!("Service \"{}\" is invalid: {why}", explicit[i].name),
                            hint,
                        ))
                    }
                    Place::File(f, _) => {
                        let p = match j {
                            Some(j) if !files[f].ports.is_empty() => {
                                [sp, &path!["services", f, "ports", j, "node_port"]].concat()
                            }
                            _ => [sp, &path!["services", f]].concat(),
                        };
                        Err(self.err(&p, why.to_string(), hint))
                    }
                }
            }
        }
    }

    /// `443` or `30000-32767`.
    fn ports(&self, p: &[Seg], f: &PortsFile) -> R<(u16, u16)> {
        let bad = || {
            self.err(
                p,
                "ports must be a port or a range LOW-HIGH",
                "e.g. 443 or 30000-32767",
            )
        };
        match f {
            PortsFile::One(n) => Ok((*n, *n)),
            PortsFile::Range(s) => {
                let (lo, hi) = s.split_once('-').ok_or_else(bad)?;
                let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
                let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
                if lo > hi {
                    return Err(self.err(
                        p,
                        format!("the range {lo}-{hi} is empty"),
                        "write the lower port first",
                    ));
                }
                Ok((lo, hi))
            }
        }
    }
}
