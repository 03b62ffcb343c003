//! Manifests read for a cluster scenario: the objects as written
//! (workloads not expanded to pods), each with its place, and NetworkPolicies
//! grouped by the file they are in. Duplicate objects are errors here; what
//! the cluster model can run is for the scenario reader to judge.

use std::collections::BTreeMap;

use super::documents::{parse_file, Loc, Object, Reading};
use super::hpa::HpaObjectSpec;
use super::service::ServiceSpec;
use super::template::{DnsConfigObject, ReadinessProbe, Resources};
use super::ManifestError;
use crate::netpol::policy::{ContainerPort, Namespace, Policy};
use crate::netpol::selector::Labels;
use crate::workload::WorkloadKind;

/// A Deployment or StatefulSet as written.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadObject {
    /// Deployment or StatefulSet.
    pub kind: WorkloadKind,
    /// `metadata.namespace` (default `default`).
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `spec.replicas` (default 1).
    pub replicas: u32,
    /// The pod template's labels.
    pub labels: Labels,
    /// The containers' ports.
    pub ports: Vec<ContainerPort>,
    /// `hostNetwork`.
    pub host_network: bool,
    /// `dnsPolicy`.
    pub dns_policy: Option<String>,
    /// `dnsConfig`.
    pub dns_config: Option<DnsConfigObject>,
    /// The pod's requests and limits.
    pub resources: Resources,
    /// The containers' readiness probes.
    pub readiness_probes: Vec<ReadinessProbe>,
    /// Where it is written.
    pub at: Loc,
}

impl WorkloadObject {
    /// `Deployment ns/name`.
    pub fn id(&self) -> String {
        let kind = match self.kind {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
        };
        format!("{kind} {}/{}", self.namespace, self.name)
    }
}

/// A Service as written.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceObject {
    /// `metadata.namespace` (default `default`).
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// Topology Aware Routing asked for: the annotation
    /// `service.kubernetes.io/topology-mode` (or the deprecated
    /// `service.kubernetes.io/topology-aware-hints`) is `Auto`.
    pub topology_auto: bool,
    /// Its spec.
    pub spec: ServiceSpec,
    /// Where it is written.
    pub at: Loc,
}

/// A HorizontalPodAutoscaler as written.
#[derive(Clone, Debug, PartialEq)]
pub struct HpaObject {
    /// `metadata.namespace` (default `default`).
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// Its spec.
    pub spec: HpaObjectSpec,
    /// Where it is written.
    pub at: Loc,
}

/// What manifests give a cluster scenario, in input order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterObjects {
    /// Namespace objects.
    pub namespaces: Vec<(Namespace, Loc)>,
    /// Deployments and StatefulSets.
    pub workloads: Vec<WorkloadObject>,
    /// Services.
    pub services: Vec<ServiceObject>,
    /// HorizontalPodAutoscalers.
    pub autoscalers: Vec<HpaObject>,
    /// NetworkPolicies, per file that has any: (file, its policies).
    pub policy_files: Vec<(String, Vec<Policy>)>,
    /// Objects of other kinds, as `Kind namespace/name (file:line)`.
    pub skipped: Vec<String>,
}

/// Reads `(file name, text)` pairs, in the order given, for a cluster
/// scenario: Namespace, Deployment, StatefulSet, Service,
/// HorizontalPodAutoscaler (`autoscaling/v2`) and NetworkPolicy objects;
/// other kinds (bare Pods included) are listed as skipped.
pub fn parse_cluster_objects(files: &[(String, String)]) -> Result<ClusterObjects, ManifestError> {
    let mut objects = Vec::new();
    let mut out = ClusterObjects::default();
    for (file, text) in files {
        parse_file(file, text, Reading::Cluster, &mut objects, &mut out.skipped)?;
    }
    let mut seen: BTreeMap<(&'static str, String, String), Loc> = BTreeMap::new();
    let mut first = |kind: &'static str, ns: &str, name: &str, at: &Loc| {
        let key = (kind, ns.to_string(), name.to_string());
        match seen.get(&key) {
            Some(first) => Err(at.error(
                format!("{kind} {ns}/{name} is defined twice (first at {first})"),
                "names are unique per kind and namespace: remove or rename one",
            )),
            None => {
                seen.insert(key, at.clone());
                Ok(())
            }
        }
    };
    for object in objects {
        match object {
            Object::Namespace(ns, at) => {
                first("Namespace", "", &ns.name, &at)?;
                out.namespaces.push((ns, at));
            }
            Object::Policy(p, at) => {
                first("NetworkPolicy", &p.namespace, &p.name, &at)?;
                match out.policy_files.last_mut() {
                    Some((f, set)) if *f == at.file => set.push(p),
                    _ => out.policy_files.push((at.file.clone(), vec![p])),
                }
            }
            Object::Workload(w) => {
                // A Deployment and a StatefulSet of one name would be one
                // workload (and one Service name) to the model.
                first("workload", &w.namespace, &w.name, &w.at)?;
                out.workloads.push(w);
            }
            Object::Service(s) => {
                first("Service", &s.namespace, &s.name, &s.at)?;
                out.services.push(s);
            }
            Object::Hpa(h) => {
                first("HorizontalPodAutoscaler", &h.namespace, &h.name, &h.at)?;
                out.autoscalers.push(h);
            }
            // Bare pods are skipped when read for a cluster.
            Object::Pods(..) => {}
        }
    }
    Ok(out)
}
