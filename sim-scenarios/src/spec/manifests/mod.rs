//! A cluster from Kubernetes manifests: `cluster.manifests`.
//!
//! # Scope
//! `cluster.manifests: PATH` (a file, or a directory whose `*.yaml`/`*.yml`
//! files are read in name order; relative to the scenario file) reads the
//! objects users keep beside their application (sim-models
//! `netpol::manifest::parse_cluster_objects`) and maps them onto the
//! cluster model:
//! - Deployments and StatefulSets become the workloads: namespace, replicas,
//!   template labels, container ports, the pod template's `dnsConfig`
//!   (`searches` and `options`), and the readiness delay from the
//!   readiness probe as the kubelet applies it
//!   ([`sim_models::netpol::manifest::ReadinessProbe::ready_after`];
//!   no probe: Ready when the container runs).
//! - What manifests do not say comes from the scenario's `workloads:`
//!   entries, one per manifest workload, named by its name: `startup`
//!   (binding to container running), `concurrency`, `service_time` and
//!   `queue_limit`. **Rule:** an entry may not repeat what the manifests say
//!   (`replicas`, `ready_after`, `kind`, `namespace`, `labels`, `port`,
//!   `port_name`, `protocol`, `headless`, `dns_config`): that is an error at
//!   the entry's field, so the manifests stay the one source of those
//!   figures. A manifest workload without an entry, and an entry naming no
//!   manifest workload, are errors.
//! - Services feed the same Service model as the scenario's `services:`
//!   section (sim-models `services`), in input order, before the
//!   section's own: a selector over the pods of any workloads of the
//!   namespace, several Services per workload, type ClusterIP, NodePort or
//!   LoadBalancer, `clusterIP: None` (headless: DNS answers the Ready pod
//!   addresses and clients connect to them, no DNAT), ports with their
//!   `nodePort` (checked and allocated with the `services:` ones, in
//!   30000-32767, a clash refused with the apiserver's wording),
//!   `allocateLoadBalancerNodePorts: false`, `externalTrafficPolicy`,
//!   `internalTrafficPolicy` and `trafficDistribution: PreferClose`. A
//!   named `targetPort` is resolved against the selected pods' container
//!   ports: every selected workload must have it, with one number (the
//!   model's Service port has one target port). The first Service
//!   selecting a workload sets the port its pods serve on (its first
//!   port's target): the port NetworkPolicy verdicts are on (a second
//!   Service targeting another port gets a note). Refused with a located
//!   error, as what the model has no mechanism for: `type: ExternalName`,
//!   `sessionAffinity: ClientIP`, `publishNotReadyAddresses`, another
//!   `trafficDistribution`; as the apiserver refuses them: a `nodePort` on
//!   a ClusterIP Service, unnamed ports of a multi-port Service, headless
//!   NodePort or LoadBalancer Services. `externalIPs` and the
//!   `loadBalancer*` fields are noted as not modelled. A Service without a
//!   selector is skipped (noted: endpoints managed by hand are not
//!   modelled); one selecting no pods is kept, with no endpoints (a
//!   warning). A workload no Service selects keeps the model's implicit
//!   Service of its name (noted). The DNS workload's Service is the
//!   cluster DNS (kube-dns at `dns.service_ip`, the workload's implicit
//!   Service): of its ports (UDP and TCP 53, metrics) the UDP one is the
//!   serving port; it may select nothing else, and a second Service over
//!   the DNS pods is refused.
//! - NetworkPolicies form one policy set per file, named by the file's
//!   name without its extension, active at T+0 (beside `network.active`);
//!   the timeline's `policies:` replaces the active sets as for any set.
//!   They need a `network` section (the CNI that enforces them).
//! - Namespaces add their labels to the scenario's `namespaces:`.
//! - A HorizontalPodAutoscaler (`autoscaling/v2`, one CPU `Utilization`
//!   metric, the default behaviour) on the DNS workload is CoreDNS's
//!   autoscaler (`dns.autoscaler`); the DNS workload's CPU (its limit, else
//!   its request) and memory limit are CoreDNS's `cpu` and `memory_limit`.
//!   The `dns` section may not state them again. Application pods have no
//!   CPU model (their speed is `concurrency` and `service_time`): an
//!   autoscaler on them is an error, and their resources are noted as not
//!   modelled.
//! - `dnsPolicy` ClusterFirst, or None with `dnsConfig.nameservers` (the
//!   kube-dns ClusterIP or NodeLocal DNSCache's address; another address is
//!   an error, as in scenario files); other policies (the DNS workload's
//!   own `Default` excepted: CoreDNS forwards to the node's resolver, the
//!   model's upstream) and `hostNetwork` are errors.
//! - Other kinds (ConfigMap, Ingress, bare Pods...) are listed as skipped.
//!
//! # What it emits
//! The variant's workloads, their Services and DNS settings, the policy
//! sets and namespaces, and `notes`: the skipped objects and what is not
//! modelled, in input order (printed by `knsim run` on stderr).
//!
//! # Validation
//! Every error names the manifest's `file:line:column` (the object's
//! `metadata.name`, or the value itself for malformed values) or the
//! scenario field; tests in `manifests/tests.rs` and the bundled scenario
//! `shop_manifests`.

use super::dns::{apply_option, DNS_OPTIONS};

mod autoscaler;
mod services;
pub(crate) use services::ManifestService;
#[cfg(test)]
mod service_tests;
#[cfg(test)]
mod tests;

use super::{Validator, WorkloadFile, R};
use crate::bundled;
use crate::envelope::{did_you_mean, Locate};
use crate::error::InputError;
use crate::locate::Seg;
use crate::path;
use sim_core::SimDuration;
use sim_models::cluster::PodDnsConfig;
use sim_models::hpa::HpaSpec;
use sim_models::netpol::manifest::{
    parse_cluster_objects, read_files, ClusterObjects, Loc, ManifestError, WorkloadObject,
};
use sim_models::netpol::{Namespace, Policy};
use sim_models::workload::{DeploymentSpec, ServingPort};

/// Where a workload's settings were written, for errors found later.
pub(crate) enum Where {
    /// A scenario path.
    Scenario(Vec<Seg>),
    /// A manifest object, and its `Kind ns/name`.
    Manifest(Loc, String),
}

/// A workload's pod settings besides its Deployment.
pub(crate) struct PodExtras {
    /// Its namespace.
    pub namespace: String,
    /// Its Service is headless.
    pub headless: bool,
    /// Its pod spec's `dnsConfig`.
    pub pod_dns: Option<PodDnsConfig>,
    /// Where the `dnsConfig` was written.
    pub at: Where,
}

/// What the manifests say about CoreDNS, each with its place.
#[derive(Default)]
pub(crate) struct DnsFromManifests {
    /// CPU \[millicores\].
    pub cpu: Option<(u32, Loc)>,
    /// Memory limit \[bytes\].
    pub memory_limit: Option<(u64, Loc)>,
    /// The HorizontalPodAutoscaler.
    pub autoscaler: Option<(HpaSpec, Loc)>,
}

/// A variant's cluster as its manifests give it.
pub(crate) struct FromManifests {
    /// The workloads.
    pub deployments: Vec<DeploymentSpec>,
    /// Their pod settings.
    pub extras: Vec<PodExtras>,
    /// CoreDNS's settings.
    pub dns: DnsFromManifests,
    /// One policy set per file with NetworkPolicies: (name, policies, file).
    pub policy_sets: Vec<(String, Vec<Policy>, String)>,
    /// Namespaces and their labels, with their places.
    pub namespaces: Vec<(Namespace, Loc)>,
    /// The Services (the DNS workload's kube-dns apart), in input order.
    pub services: Vec<ManifestService>,
    /// Skipped objects and what is not modelled.
    pub notes: Vec<String>,
    /// Where `cluster.manifests` is written.
    pub at: Vec<Seg>,
}

/// An error at a manifest object.
pub(super) fn at_manifest(
    at: &Loc,
    message: impl Into<String>,
    hint: impl Into<String>,
) -> InputError {
    InputError::at(&at.file, (at.line, at.column), message, hint)
}

fn from_manifest_error(e: ManifestError) -> InputError {
    InputError {
        file: e.file,
        at: (e.line > 0).then_some((e.line, e.column)),
        message: e.message,
        hint: e.hint,
    }
}

/// `a/./b/../c` as `a/c`, with `/` separators: the key of bundled files.
pub(super) fn normal(path: &std::path::Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir if parts.last().is_some_and(|p| p != "..") => {
                parts.pop();
            }
            c => parts.push(c.as_os_str().to_string_lossy().into_owned()),
        }
    }
    parts.join("/")
}

/// The fields an entry may not give for a manifest workload, and whether
/// it gives them.
fn repeated_fields(w: &WorkloadFile) -> [(&'static str, bool); 10] {
    [
        ("replicas", w.replicas.is_some()),
        ("ready_after", w.ready_after.is_some()),
        ("kind", w.kind.is_some()),
        ("namespace", w.namespace.is_some()),
        ("labels", w.labels.is_some()),
        ("port", w.port.is_some()),
        ("port_name", w.port_name.is_some()),
        ("protocol", w.protocol.is_some()),
        ("headless", w.headless),
        ("dns_config", w.dns_config.is_some()),
    ]
}

impl Validator<'_> {
    /// Reads the manifests `rel` (written at `mp`) and builds the variant's
    /// workloads from them and the scenario's entries (written at `wp`).
    pub(super) fn manifests(
        &self,
        mp: &[Seg],
        rel: &str,
        wp: &[Seg],
        entries: &[WorkloadFile],
        dns_workload: Option<&str>,
    ) -> R<FromManifests> {
        let objects = self.read_manifests(mp, rel)?;
        let mut notes = objects
            .skipped
            .iter()
            .map(|s| format!("skipped: {s}"))
            .collect::<Vec<_>>();
        // Entries and manifest workloads, one to one.
        let mut entry_of = vec![None; objects.workloads.len()];
        for (i, e) in entries.iter().enumerate() {
            let p = [wp, &path!["workloads", i]].concat();
            let Some(k) = objects.workloads.iter().position(|w| w.name == e.name) else {
                let names: Vec<&str> = objects.workloads.iter().map(|w| w.name.as_str()).collect();
                return Err(self.err(
                    &[&p[..], &path!["name"]].concat(),
                    format!(
                        "workload `{}` names no Deployment or StatefulSet in the manifests ({rel})",
                        e.name
                    ),
                    did_you_mean(&e.name, &names, "manifest workloads"),
                ));
            };
            if entry_of[k].is_some() {
                return Err(self.err(
                    &p,
                    format!("workload `{}` has two entries", e.name),
                    "give each manifest workload one entry",
                ));
            }
            if let Some((field, _)) = repeated_fields(e).into_iter().find(|(_, set)| *set) {
                return Err(self.err(
                    &[&p[..], &path![field]].concat(),
                    format!(
                        "`{field}` of `{}` is stated by the manifests ({}, {})",
                        e.name,
                        objects.workloads[k].id(),
                        objects.workloads[k].at
                    ),
                    "remove it here: with cluster.manifests, an entry adds only startup, concurrency, service_time and queue_limit",
                ));
            }
            entry_of[k] = Some(i);
        }
        let mut deployments = Vec::new();
        let mut extras = Vec::new();
        let mut dns = DnsFromManifests::default();
        for (k, w) in objects.workloads.iter().enumerate() {
            if let Some(other) = objects.workloads[..k].iter().find(|o| o.name == w.name) {
                return Err(at_manifest(
                    &w.at,
                    format!("{} has the name of {} ({})", w.id(), other.id(), other.at),
                    "knsim names workloads (and their Services) by name alone: rename one",
                ));
            }
            let Some(i) = entry_of[k] else {
                let example = if dns_workload == Some(w.name.as_str()) {
                    format!("{{name: {}, startup: 5s}}", w.name)
                } else {
                    format!(
                        "{{name: {}, startup: 10s, concurrency: 8, service_time: 20ms}}",
                        w.name
                    )
                };
                return Err(at_manifest(
                    &w.at,
                    format!("{} has no entry in the scenario's workloads", w.id()),
                    format!("add {example} under workloads: (the application's figures manifests do not give)"),
                ));
            };
            let p = [wp, &path!["workloads", i]].concat();
            let e = &entries[i];
            let Some(startup) = e.startup else {
                return Err(self.err(
                    &p,
                    format!("workload `{}` needs `startup`", e.name),
                    "give the time from binding to the container running (image pull and start), e.g. startup: 10s",
                ));
            };
            self.check_pod(w, dns_workload)?;
            if w.replicas > super::MAX_REPLICAS {
                return Err(at_manifest(
                    &w.at,
                    format!(
                        "{}: {} replicas is more than one cluster holds ({} pods)",
                        w.id(),
                        w.replicas,
                        super::MAX_REPLICAS
                    ),
                    "Kubernetes supports up to 150,000 pods and 5,000 nodes per cluster",
                ));
            }
            let server = self.server(&p, e, dns_workload)?;
            let ready_after = w
                .readiness_probes
                .iter()
                .map(|r| r.ready_after())
                .max()
                .unwrap_or(SimDuration::ZERO);
            let mut d = DeploymentSpec::new(&w.name, w.replicas, startup.0, ready_after, server);
            d.kind = w.kind;
            d.requests = sim_models::scheduler::Resources {
                cpu_millis: w.resources.cpu_request.map_or(0, u64::from),
                memory: w.resources.memory_request.unwrap_or(0),
            };
            d.namespace = w.namespace.clone();
            d.labels = w.labels.clone();
            if let Some(port) = w.ports.first() {
                d.port = ServingPort {
                    name: port.name.clone(),
                    number: port.port,
                    protocol: port.protocol,
                };
            }
            if dns_workload == Some(w.name.as_str()) {
                let r = w.resources;
                match r.cpu_limit.or(r.cpu_request) {
                    Some(cpu) => dns.cpu = Some((cpu, w.at.clone())),
                    None => notes.push(format!(
                        "note: {} ({}) states no CPU: CoreDNS gets the model's default (kubeadm's 100m request)",
                        w.id(),
                        w.at
                    )),
                }
                match r.memory_limit {
                    Some(m) => dns.memory_limit = Some((m, w.at.clone())),
                    None => notes.push(format!(
                        "note: {} ({}) states no memory limit: CoreDNS gets the model's default (kubeadm's 170Mi)",
                        w.id(),
                        w.at
                    )),
                }
            } else if w.resources.is_stated() {
                notes.push(format!(
                    "note: {} ({}): resources are not modelled for application pods (their speed is the scenario's concurrency and service_time; the scheduler reads the requests when nodes state allocatable)",
                    w.id(),
                    w.at
                ));
            }
            deployments.push(d);
            extras.push(PodExtras {
                namespace: w.namespace.clone(),
                headless: false,
                pod_dns: self.manifest_dns_config(w)?,
                at: Where::Manifest(w.at.clone(), w.id()),
            });
        }
        let services = self.services(&objects, dns_workload, &mut deployments, &mut notes)?;
        dns.autoscaler = self.autoscaler(&objects, dns_workload)?;
        let mut policy_sets: Vec<(String, Vec<Policy>, String)> = Vec::new();
        for (file, policies) in &objects.policy_files {
            let stem = std::path::Path::new(file)
                .file_stem()
                .map_or_else(|| file.clone(), |s| s.to_string_lossy().into_owned());
            if let Some((_, _, first)) = policy_sets.iter().find(|(n, _, _)| *n == stem) {
                return Err(InputError::whole(
                    file,
                    format!("policy set `{stem}` (this file's name) is also the set of {first}"),
                    "each manifest file with NetworkPolicies is a policy set named by its file name: rename one",
                ));
            }
            policy_sets.push((stem, policies.clone(), file.clone()));
        }
        Ok(FromManifests {
            deployments,
            extras,
            dns,
            policy_sets,
            namespaces: objects.namespaces,
            services,
            notes,
            at: mp.to_vec(),
        })
    }

    /// The manifest files: on disk beside the scenario, else bundled with
    /// knsim under the same path (or beside the bundled scenario whose text
    /// this is).
    fn read_manifests(&self, mp: &[Seg], rel: &str) -> R<ClusterObjects> {
        let dir = std::path::Path::new(self.file)
            .parent()
            .unwrap_or(std::path::Path::new("."));
        let path = dir.join(rel);
        let files = if path.exists() {
            read_files(&path).map_err(from_manifest_error)?
        } else {
            let mut bundled = bundled::manifest_files(&normal(&path));
            // A bundled scenario's text, whatever name it is parsed under,
            // reads the manifests bundled beside it.
            if bundled.is_empty() && bundled::BUNDLED.iter().any(|(_, t)| *t == self.text) {
                bundled =
                    bundled::manifest_files(&normal(&std::path::Path::new("scenarios").join(rel)));
            }
            if bundled.is_empty() {
                return Err(self.err(
                    mp,
                    format!("cannot read {}: no such file or directory", path.display()),
                    "paths are relative to the scenario file: a manifest file, or a directory of *.yaml/*.yml manifests",
                ));
            }
            bundled
        };
        parse_cluster_objects(&files).map_err(from_manifest_error)
    }

    /// What the pod spec asks for that the model does not have yet.
    fn check_pod(&self, w: &WorkloadObject, dns_workload: Option<&str>) -> R<()> {
        if w.host_network {
            return Err(at_manifest(
                &w.at,
                format!("{}: spec.template.spec.hostNetwork: the cluster model gives every pod its own address", w.id()),
                "remove hostNetwork from the copy the scenario reads",
            ));
        }
        match w.dns_policy.as_deref() {
            None | Some("ClusterFirst") => {}
            // CoreDNS itself forwards to the node's resolver, as the model's
            // upstream does.
            Some("Default") if dns_workload == Some(w.name.as_str()) => {}
            Some("None")
                if w.dns_config
                    .as_ref()
                    .is_some_and(|c| !c.nameservers.is_empty()) => {}
            Some("None") => {
                return Err(at_manifest(
                    &w.at,
                    format!("{}: spec.template.spec.dnsPolicy: None needs dnsConfig.nameservers (Kubernetes rejects the pod otherwise)", w.id()),
                    "add dnsConfig: {nameservers: [10.96.0.10]}",
                ))
            }
            Some(other) => {
                return Err(at_manifest(
                    &w.at,
                    format!("{}: spec.template.spec.dnsPolicy: {other} is not supported yet: the cluster model's pods query the cluster DNS (ClusterFirst, or None with dnsConfig.nameservers)", w.id()),
                    "use dnsPolicy: ClusterFirst (the default), or None with nameservers",
                ))
            }
        }
        Ok(())
    }

    /// The pod template's `dnsConfig` as the resolver takes it.
    fn manifest_dns_config(&self, w: &WorkloadObject) -> R<Option<PodDnsConfig>> {
        let Some(c) = &w.dns_config else {
            return Ok(None);
        };
        let mut nameservers = Vec::new();
        for (k, text) in c.nameservers.iter().enumerate() {
            nameservers.push(text.parse::<std::net::Ipv4Addr>().map_err(|_| {
                at_manifest(
                    &w.at,
                    format!("{}: spec.template.spec.dnsConfig.nameservers[{k}]: `{text}` is not an IPv4 address", w.id()),
                    "e.g. nameservers: [10.96.0.10]",
                )
            })?);
        }
        let mut conf = PodDnsConfig {
            policy_none: w.dns_policy.as_deref() == Some("None"),
            nameservers,
            searches: c.searches.clone(),
            ..PodDnsConfig::default()
        };
        for (k, (name, value)) in c.options.iter().enumerate() {
            let field = format!("{}: spec.template.spec.dnsConfig.options[{k}]", w.id());
            let value = match value {
                None => None,
                Some(t) => Some(t.trim().parse::<u64>().map_err(|_| {
                    at_manifest(
                        &w.at,
                        format!("{field}: option {name} value `{t}` is not a whole number"),
                        "e.g. {name: ndots, value: \"2\"}",
                    )
                })?),
            };
            apply_option(&mut conf, name, value).map_err(|(m, h)| {
                let h = if DNS_OPTIONS.contains(&name.as_str()) {
                    h
                } else {
                    format!("{h} (an option the resolver does not model cannot be simulated)")
                };
                at_manifest(&w.at, format!("{field}: {m}"), h)
            })?;
        }
        Ok(Some(conf))
    }
}
