//! Services from manifests onto the cluster's Service model, the one the
//! `services:` section feeds (see the module docs of `spec::manifests`).

use super::at_manifest;
use crate::spec::{Validator, R};
use sim_models::netpol::manifest::{ClusterObjects, Loc, ServiceObject, TargetPort};
use sim_models::netpol::Protocol;
use sim_models::services::{selects, ServicePort, ServiceSpec, ServiceType, TrafficPolicy};
use sim_models::workload::{DeploymentSpec, ServingPort, WorkloadKind};

/// A Service of the manifests as the model's Service, with what the
/// NodePort allocation needs and its place.
pub(crate) struct ManifestService {
    /// The Service (NodePorts not allocated yet).
    pub spec: ServiceSpec,
    /// Whether ports without a `nodePort` get one (false:
    /// `allocateLoadBalancerNodePorts: false` on a LoadBalancer).
    pub allocate_node_ports: bool,
    /// Its `metadata.name`.
    pub at: Loc,
}

/// Why a field the API accepts changes nothing the cluster run does.
fn why_unmodelled(field: &str) -> &'static str {
    match field {
        "externalIPs" => "traffic to external IPs is not simulated",
        "healthCheckNodePort" => {
            "the model allocates the health-check port from the NodePort range itself"
        }
        // loadBalancerIP, loadBalancerSourceRanges, loadBalancerClass.
        _ => "the cloud load balancer in front is the traffic source's `load_balancer` entry in the scenario, which has no address, source filter or class",
    }
}

/// `Cluster` or `Local`, the API's values; else its refusal.
fn policy(field: &str, value: Option<&str>) -> Result<TrafficPolicy, (String, String)> {
    match value {
        None | Some("Cluster") => Ok(TrafficPolicy::Cluster),
        Some("Local") => Ok(TrafficPolicy::Local),
        Some(other) => Err((
            format!("spec.{field}: Unsupported value: \"{other}\""),
            "supported values: \"Cluster\", \"Local\"".into(),
        )),
    }
}

impl Validator<'_> {
    /// The manifests' Services as the model's (see the module docs); the
    /// DNS workload's Service is kube-dns (its serving port is set here,
    /// it stays the workload's implicit Service). Sets each selected
    /// workload's serving port from the first Service selecting it.
    pub(super) fn services(
        &self,
        objects: &ClusterObjects,
        dns_workload: Option<&str>,
        deployments: &mut [DeploymentSpec],
        notes: &mut Vec<String>,
    ) -> R<Vec<ManifestService>> {
        let mut out = Vec::new();
        // Per workload: the Service that set its serving port.
        let mut port_from: Vec<Option<&ServiceObject>> = vec![None; deployments.len()];
        let dns = dns_workload.and_then(|n| deployments.iter().position(|d| d.name == n));
        for s in &objects.services {
            let id = format!("Service {}/{}", s.namespace, s.name);
            let spec = &s.spec;
            let err =
                |what: String, hint: String| at_manifest(&s.at, format!("{id}: {what}"), hint);
            let not_modelled = |what: &str, why: &str, hint: &str| {
                err(
                    format!("{what} is not in the cluster model ({why})"),
                    format!("in the copy the scenario reads, {hint}"),
                )
            };
            let kind = match spec.service_type.as_str() {
                "NodePort" => ServiceType::NodePort,
                "LoadBalancer" => ServiceType::LoadBalancer,
                "ExternalName" => {
                    return Err(not_modelled(
                        "spec.type: ExternalName",
                        "a CNAME to a name outside the cluster, with no proxying",
                        "drop the Service and have the traffic look the external name up with `resolve: NAME`",
                    ))
                }
                _ => ServiceType::ClusterIp,
            };
            match spec.session_affinity.as_deref() {
                None | Some("None") => {}
                Some("ClientIP") => {
                    return Err(not_modelled(
                        "spec.sessionAffinity: ClientIP",
                        "kube-proxy pinning a client address to one endpoint; the model picks per connection",
                        "remove sessionAffinity",
                    ))
                }
                Some(other) => {
                    return Err(err(
                        format!("spec.sessionAffinity: Unsupported value: \"{other}\""),
                        "supported values: \"ClientIP\", \"None\"".into(),
                    ))
                }
            }
            if spec.publish_not_ready_addresses {
                return Err(not_modelled(
                    "spec.publishNotReadyAddresses: true",
                    "endpoints and DNS answers for pods that are not Ready",
                    "remove it",
                ));
            }
            let external = policy(
                "externalTrafficPolicy",
                spec.external_traffic_policy.as_deref(),
            )
            .map_err(|(m, h)| err(m, h))?;
            let internal = policy(
                "internalTrafficPolicy",
                spec.internal_traffic_policy.as_deref(),
            )
            .map_err(|(m, h)| err(m, h))?;
            let prefer_close = match spec.traffic_distribution.as_deref() {
                None => false,
                Some("PreferClose") => true,
                Some(other) => return Err(not_modelled(
                    &format!("spec.trafficDistribution: {other}"),
                    "the model has PreferClose: same-zone endpoints when the client's zone has any",
                    "use trafficDistribution: PreferClose or remove it",
                )),
            };
            if external == TrafficPolicy::Local && !kind.has_node_port() {
                return Err(err(
                    "spec.externalTrafficPolicy: Local applies to NodePort and LoadBalancer Services only".into(),
                    "remove it, or set type: NodePort or LoadBalancer".into(),
                ));
            }
            if spec.headless && kind != ServiceType::ClusterIp {
                return Err(err(
                    format!(
                        "spec.clusterIP: Invalid value: \"None\": may not be set to 'None' for {} services",
                        kind.name()
                    ),
                    "a headless Service is of type ClusterIP".into(),
                ));
            }
            for field in &spec.unmodelled {
                notes.push(format!(
                    "note: {id} ({}): spec.{field} is not modelled: {}",
                    s.at,
                    why_unmodelled(field)
                ));
            }
            let Some(selector) = &spec.selector else {
                notes.push(format!(
                    "skipped: {id} ({}): no selector (endpoints managed by hand are not modelled: the model's endpoints come from a selector)",
                    s.at
                ));
                continue;
            };
            let selected: Vec<usize> = (0..deployments.len())
                .filter(|&k| {
                    deployments[k].namespace == s.namespace
                        && selects(selector, &deployments[k].labels)
                })
                .collect();
            if let Some(k) = dns.filter(|k| selected.contains(k)) {
                self.dns_service(objects, s, k, &selected, &port_from, deployments)?;
                port_from[k] = Some(s);
                continue;
            }
            if selected.is_empty() {
                notes.push(format!(
                    "warning: {id} ({}): selector {} matches no pods of any workload; the Service has no endpoints",
                    s.at,
                    selector
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                ));
            }
            let mut ports = Vec::new();
            for (j, p) in spec.ports.iter().enumerate() {
                if spec.ports.len() > 1 && p.name.is_none() {
                    return Err(err(
                        format!("spec.ports[{j}].name: Required value"),
                        "a Service with several ports names each".into(),
                    ));
                }
                if p.node_port.is_some() && !kind.has_node_port() {
                    return Err(err(
                        format!("spec.ports[{j}].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"),
                        "remove nodePort, or set type: NodePort or LoadBalancer".into(),
                    ));
                }
                let target_port = match &p.target_port {
                    TargetPort::Number(n) => *n,
                    TargetPort::Name(n) => self.named_target(objects, s, j, n, &selected)?,
                };
                ports.push(ServicePort {
                    name: p.name.clone(),
                    port: p.port,
                    target_port,
                    protocol: p.protocol,
                    node_port: p.node_port,
                });
            }
            if ports.is_empty() {
                // A headless Service may list no ports: the first selected
                // workload's, as `services:` does.
                let Some(&k) = selected.first() else {
                    return Err(err(
                        "spec.ports: Required value".into(),
                        "give the Service a port, e.g. ports: [{port: 80, targetPort: 8080}]"
                            .into(),
                    ));
                };
                let sp = &deployments[k].port;
                ports.push(ServicePort {
                    name: sp.name.clone(),
                    port: sp.number,
                    target_port: sp.number,
                    protocol: sp.protocol,
                    node_port: None,
                });
            }
            let first = &ports[0];
            for &k in &selected {
                let w = &objects.workloads[k];
                match port_from[k] {
                    None => {
                        deployments[k].port = ServingPort {
                            name: w
                                .ports
                                .iter()
                                .find(|c| {
                                    c.port == first.target_port && c.protocol == first.protocol
                                })
                                .and_then(|c| c.name.clone()),
                            number: first.target_port,
                            protocol: first.protocol,
                        };
                        port_from[k] = Some(s);
                    }
                    Some(by) if deployments[k].port.number != first.target_port => {
                        notes.push(format!(
                            "note: {id} ({}) reaches {} on port {}, Service {}/{} on port {}: the model's pods serve one port ({}), and NetworkPolicy verdicts for both Services are on it",
                            s.at,
                            w.id(),
                            first.target_port,
                            by.namespace,
                            by.name,
                            deployments[k].port.number,
                            deployments[k].port.number
                        ));
                    }
                    Some(_) => {}
                }
            }
            out.push(ManifestService {
                spec: ServiceSpec {
                    name: s.name.clone(),
                    namespace: s.namespace.clone(),
                    selector: selector.clone(),
                    ports,
                    kind,
                    headless: spec.headless,
                    external_policy: external,
                    internal_policy: internal,
                    prefer_close,
                    topology_auto: s.topology_auto,
                    health_check_node_port: None,
                },
                allocate_node_ports: kind != ServiceType::LoadBalancer
                    || spec.allocate_load_balancer_node_ports,
                at: s.at.clone(),
            });
        }
        for (k, d) in deployments.iter().enumerate() {
            if port_from[k].is_none() {
                let kind = match d.kind {
                    WorkloadKind::Deployment => "Deployment",
                    WorkloadKind::StatefulSet => "StatefulSet",
                };
                notes.push(format!(
                    "note: {kind} {}/{} has no Service in the manifests; the model gives it a ClusterIP Service named {} on port {}",
                    d.namespace, d.name, d.name, d.port.number
                ));
            }
        }
        Ok(out)
    }

    /// The DNS workload `k`'s Service: kube-dns, at `dns.service_ip`, its
    /// UDP port the serving one; it may select nothing else, and there is
    /// one.
    fn dns_service(
        &self,
        objects: &ClusterObjects,
        s: &ServiceObject,
        k: usize,
        selected: &[usize],
        port_from: &[Option<&ServiceObject>],
        deployments: &mut [DeploymentSpec],
    ) -> R<()> {
        let id = format!("Service {}/{}", s.namespace, s.name);
        let name = deployments[k].name.clone();
        if selected.len() > 1 {
            let names: Vec<&str> = selected
                .iter()
                .map(|&i| deployments[i].name.as_str())
                .collect();
            return Err(at_manifest(
                &s.at,
                format!(
                    "{id} selects the pods of the DNS workload `{name}` and others ({})",
                    names.join(", ")
                ),
                "the DNS workload's Service is kube-dns: narrow the selector",
            ));
        }
        if let Some(first) = port_from[k] {
            return Err(at_manifest(
                &s.at,
                format!(
                    "{id} is a second Service over the DNS workload `{name}` (the first, {}/{} at {}, is kube-dns)",
                    first.namespace, first.name, first.at
                ),
                "the model's DNS workload has one Service, kube-dns: leave the other out of the copy the scenario reads",
            ));
        }
        let Some(port) = s
            .spec
            .ports
            .iter()
            .find(|p| p.protocol == Protocol::Udp)
            .or(s.spec.ports.first())
        else {
            return Ok(());
        };
        let w = &objects.workloads[k];
        deployments[k].port = match &port.target_port {
            TargetPort::Number(n) => ServingPort {
                name: w
                    .ports
                    .iter()
                    .find(|c| c.port == *n && c.protocol == port.protocol)
                    .and_then(|c| c.name.clone()),
                number: *n,
                protocol: port.protocol,
            },
            TargetPort::Name(n) => {
                let Some(c) = w.ports.iter().find(|c| c.name.as_deref() == Some(n)) else {
                    return Err(at_manifest(
                        &s.at,
                        format!(
                            "{id}: targetPort `{n}` names no container port of {}",
                            w.id()
                        ),
                        "name a port of the pod template's containers, or give its number",
                    ));
                };
                ServingPort {
                    name: c.name.clone(),
                    number: c.port,
                    protocol: c.protocol,
                }
            }
        };
        Ok(())
    }

    /// The number a named `targetPort` (port `j` of Service `s`) stands
    /// for in the pods of `selected`: one number in all of them (the
    /// model's Service port has one target port).
    fn named_target(
        &self,
        objects: &ClusterObjects,
        s: &ServiceObject,
        j: usize,
        name: &str,
        selected: &[usize],
    ) -> R<u16> {
        let id = format!("Service {}/{}", s.namespace, s.name);
        let mut found: Option<(u16, String)> = None;
        for &k in selected {
            let w = &objects.workloads[k];
            let Some(c) = w.ports.iter().find(|c| c.name.as_deref() == Some(name)) else {
                return Err(at_manifest(
                    &s.at,
                    format!(
                        "{id}: spec.ports[{j}].targetPort `{name}` names no container port of {}",
                        w.id()
                    ),
                    "name a port of the pod template's containers, or give its number (pods without it would not be endpoints, which the model does not have)",
                ));
            };
            match &found {
                Some((n, by)) if *n != c.port => {
                    return Err(at_manifest(
                        &s.at,
                        format!(
                            "{id}: spec.ports[{j}].targetPort `{name}` is port {n} in {by} and port {} in {}",
                            c.port,
                            w.id()
                        ),
                        "the model's Service port has one target port: give the containers one number for it, or split the Service",
                    ));
                }
                Some(_) => {}
                None => found = Some((c.port, w.id())),
            }
        }
        // Selecting nothing, the Service has no endpoints to resolve it in.
        Ok(found.map_or(s.spec.ports[j].port, |(n, _)| n))
    }
}
