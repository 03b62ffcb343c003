//! Services from manifests onto the model's one Service per workload (see
//! the module docs of `spec::manifests`).

use super::{at_manifest, PodExtras};
use crate::spec::{Validator, R};
use sim_models::netpol::manifest::{ClusterObjects, ServiceObject, TargetPort};
use sim_models::netpol::Protocol;
use sim_models::workload::{DeploymentSpec, ServingPort, WorkloadKind};

impl Validator<'_> {
    /// Maps each Service onto the workload whose pods it selects (see the
    /// module docs).
    pub(super) fn services(
        &self,
        objects: &ClusterObjects,
        dns_workload: Option<&str>,
        deployments: &mut [DeploymentSpec],
        extras: &mut [PodExtras],
        notes: &mut Vec<String>,
    ) -> R<()> {
        let needs = "knsim models one ClusterIP Service per workload, named as it (issue 12: Services apart from Deployments)";
        let mut service_of: Vec<Option<&ServiceObject>> = vec![None; deployments.len()];
        for s in &objects.services {
            let id = format!("Service {}/{}", s.namespace, s.name);
            let spec = &s.spec;
            let unsupported = [
                (spec.service_type != "ClusterIP").then(|| format!("type: {}", spec.service_type)),
                spec.external_traffic_policy
                    .as_ref()
                    .map(|p| format!("externalTrafficPolicy: {p}")),
                spec.internal_traffic_policy
                    .as_ref()
                    .filter(|p| *p != "Cluster")
                    .map(|p| format!("internalTrafficPolicy: {p}")),
                spec.session_affinity
                    .as_ref()
                    .filter(|p| *p != "None")
                    .map(|p| format!("sessionAffinity: {p}")),
                spec.publish_not_ready_addresses
                    .then(|| "publishNotReadyAddresses: true".to_string()),
                spec.traffic_distribution
                    .as_ref()
                    .map(|p| format!("trafficDistribution: {p}")),
            ];
            if let Some(what) = unsupported.into_iter().flatten().next() {
                return Err(at_manifest(
                    &s.at,
                    format!("{id}: spec.{what} is not in the cluster model"),
                    format!(
                        "{needs}; in the copy the scenario reads, use a plain ClusterIP Service"
                    ),
                ));
            }
            let Some(selector) = &spec.selector else {
                notes.push(format!(
                    "skipped: {id} ({}): no selector (endpoints managed by hand need issue 12)",
                    s.at
                ));
                continue;
            };
            let selected: Vec<usize> = deployments
                .iter()
                .enumerate()
                .filter(|(_, d)| {
                    d.namespace == s.namespace
                        && selector.iter().all(|(k, v)| d.labels.get(k) == Some(v))
                })
                .map(|(i, _)| i)
                .collect();
            let k = match selected[..] {
                [] => {
                    notes.push(format!(
                        "skipped: {id} ({}): selects no workload's pods",
                        s.at
                    ));
                    continue;
                }
                [k] => k,
                _ => {
                    let names: Vec<&str> = selected
                        .iter()
                        .map(|&i| deployments[i].name.as_str())
                        .collect();
                    return Err(at_manifest(
                        &s.at,
                        format!(
                            "{id} selects the pods of several workloads ({})",
                            names.join(", ")
                        ),
                        needs,
                    ));
                }
            };
            let d = &deployments[k];
            if let Some(first) = service_of[k] {
                return Err(at_manifest(
                    &s.at,
                    format!(
                        "{id} is a second Service for {} (the first is {}/{} at {})",
                        d.name, first.namespace, first.name, first.at
                    ),
                    needs,
                ));
            }
            // The DNS workload's Service is the cluster DNS (kube-dns, with
            // its UDP and TCP ports): its own name, and the UDP port serves.
            let is_dns = dns_workload == Some(d.name.as_str());
            if s.name != d.name && !is_dns {
                return Err(at_manifest(
                    &s.at,
                    format!("{id} selects the pods of `{}` under another name", d.name),
                    format!(
                        "{needs}: in the copy the scenario reads, name the Service {}",
                        d.name
                    ),
                ));
            }
            let udp = spec.ports.iter().find(|p| p.protocol == Protocol::Udp);
            let port = match (&spec.ports[..], udp) {
                (_, Some(p)) if is_dns => p,
                ([p], _) => p,
                (ports, _) => {
                    return Err(at_manifest(
                        &s.at,
                        format!(
                            "{id} has {} ports; the model's Service has one",
                            ports.len()
                        ),
                        format!("{needs}: keep the port the traffic uses"),
                    ))
                }
            };
            // Deployments are built from the manifest workloads, in order.
            let w = &objects.workloads[k];
            let serving = match &port.target_port {
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
            deployments[k].port = serving;
            extras[k].headless = spec.headless;
            service_of[k] = Some(s);
        }
        for (k, d) in deployments.iter().enumerate() {
            if service_of[k].is_none() {
                let kind = match d.kind {
                    WorkloadKind::Deployment => "Deployment",
                    WorkloadKind::StatefulSet => "StatefulSet",
                };
                notes.push(format!(
                    "note: {kind} {}/{} has no Service in the manifests; the model still gives it a ClusterIP Service named {} on port {}",
                    d.namespace, d.name, d.name, d.port.number
                ));
            }
        }
        Ok(())
    }
}
