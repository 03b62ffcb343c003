//! Multi-document loading: each file's documents in passes (syntax, kinds and
//! API versions, positions, then the objects), and the kinds that are skipped.

use std::fmt;
use std::net::Ipv4Addr;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::checked::{Checked, FromRaw};
use super::cluster_objects::{HpaObject, ServiceObject, WorkloadObject};
use super::errors::yaml_error;
use super::hpa::HpaDoc;
use super::metadata::{Meta, NamespaceDoc};
use super::network_policy::{NetworkPolicyDoc, PolicySpec};
use super::pods::{PodDoc, PodStatus, WorkloadDoc};
use super::scalars::{convert, opt_string, want_string};
use super::service::ServiceDoc;
use super::{ManifestError, MAX_PODS};
use crate::did_you_mean::suggest;
use crate::netpol::names::check_dns1123_label;
use crate::netpol::policy::{ContainerPort, Namespace, Policy, PolicyTypes};
use crate::netpol::selector::{LabelSelector, Labels};
use crate::workload::WorkloadKind;

/// Fails at `metadata.name` if present, else at the document's root mapping:
/// the error's position is where object-level errors point.
struct Locator;

impl<'de> Deserialize<'de> for Locator {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Root;
        impl<'de> Visitor<'de> for Root {
            type Value = Locator;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("here")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Locator, A::Error> {
                while let Some(key) = map.next_key::<String>()? {
                    if key == "metadata" {
                        map.next_value::<MetaLocator>()?;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Err(de::Error::custom("here"))
            }
        }
        struct MetaLocator;
        impl<'de> Deserialize<'de> for MetaLocator {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct M;
                impl<'de> Visitor<'de> for M {
                    type Value = MetaLocator;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("here")
                    }
                    fn visit_map<A: MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<MetaLocator, A::Error> {
                        while let Some(key) = map.next_key::<String>()? {
                            if key == "name" {
                                map.next_value::<Here>()?;
                            } else {
                                map.next_value::<IgnoredAny>()?;
                            }
                        }
                        Ok(MetaLocator)
                    }
                }
                d.deserialize_any(M)
            }
        }
        struct Here;
        impl<'de> Deserialize<'de> for Here {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct H;
                impl Visitor<'_> for H {
                    type Value = Here;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("here")
                    }
                }
                d.deserialize_any(H)
            }
        }
        d.deserialize_any(Root)
    }
}

const SUPPORTED_KINDS: [&str; 5] = [
    "NetworkPolicy",
    "Namespace",
    "Pod",
    "Deployment",
    "StatefulSet",
];

/// The kinds a cluster scenario reads besides [`SUPPORTED_KINDS`].
const CLUSTER_KINDS: [&str; 7] = [
    "NetworkPolicy",
    "Namespace",
    "Pod",
    "Deployment",
    "StatefulSet",
    "Service",
    "HorizontalPodAutoscaler",
];

/// What the manifests are read for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Reading {
    /// NetworkPolicy reasoning (`knsim netpol`): workloads expand to pods,
    /// Services and autoscalers are skipped.
    Netpol,
    /// A cluster scenario: workloads, Services and autoscalers as objects.
    Cluster,
}

fn expected_api_version(kind: &str) -> &'static str {
    match kind {
        "NetworkPolicy" => "networking.k8s.io/v1",
        "Deployment" | "StatefulSet" => "apps/v1",
        "HorizontalPodAutoscaler" => "autoscaling/v2",
        _ => "v1",
    }
}

#[derive(Deserialize)]
struct RawHeader<const CLUSTER: bool> {
    #[serde(default, rename = "apiVersion", deserialize_with = "opt_string")]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<KindField<CLUSTER>>,
}

struct KindField<const CLUSTER: bool>(String);

fn kinds(cluster: bool) -> &'static [&'static str] {
    if cluster {
        &CLUSTER_KINDS
    } else {
        &SUPPORTED_KINDS
    }
}

impl<'de, const CLUSTER: bool> Deserialize<'de> for KindField<CLUSTER> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        convert(d, |s| {
            let kind = want_string(s)?;
            let known = kinds(CLUSTER);
            if !known.contains(&kind.as_str()) {
                if let Some(c) = suggest(&kind, known) {
                    return Err((
                        format!("kind: unknown kind `{kind}`"),
                        format!("did you mean `{c}`? (kinds are case-sensitive)"),
                    ));
                }
            }
            Ok(KindField(kind))
        })
    }
}

/// `(kind, apiVersion)` of a document, checked.
struct Header<const CLUSTER: bool>(String);

impl<const CLUSTER: bool> FromRaw for Header<CLUSTER> {
    type Raw = RawHeader<CLUSTER>;
    fn from_raw(raw: RawHeader<CLUSTER>) -> Result<Self, (String, String)> {
        let Some(KindField(kind)) = raw.kind else {
            return Err((
                "missing field `kind`".into(),
                "every manifest states its `apiVersion` and `kind`, e.g. `kind: NetworkPolicy`"
                    .into(),
            ));
        };
        if kinds(CLUSTER).contains(&kind.as_str()) {
            let want = expected_api_version(&kind);
            match raw.api_version.as_deref() {
                Some(v) if v == want => {}
                Some(v) => {
                    return Err((
                        format!("apiVersion `{v}` is not served for kind {kind}"),
                        format!("use `apiVersion: {want}`"),
                    ))
                }
                None => {
                    return Err((
                        "missing field `apiVersion`".into(),
                        format!("add `apiVersion: {want}`"),
                    ))
                }
            }
        }
        Ok(Header(kind))
    }
}

/// A pod before addresses are assigned.
pub(super) struct PodSeed {
    pub(super) namespace: String,
    pub(super) name: String,
    pub(super) labels: Labels,
    pub(super) host_network: bool,
    pub(super) node_name: Option<String>,
    pub(super) pod_ip: Option<Ipv4Addr>,
    pub(super) host_ip: Option<Ipv4Addr>,
    pub(super) ports: Vec<ContainerPort>,
    pub(super) at: Loc,
}

/// Where an object is written: its `metadata.name`, else its first line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loc {
    /// The file, as given to the loader.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl Loc {
    /// An error at this place.
    pub fn error(&self, message: String, hint: impl Into<String>) -> ManifestError {
        ManifestError {
            file: self.file.clone(),
            line: self.line,
            column: self.column,
            message,
            hint: hint.into(),
        }
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

pub(super) enum Object {
    Policy(Policy, Loc),
    Namespace(Namespace, Loc),
    Pods(String, Vec<PodSeed>),
    Workload(WorkloadObject),
    Service(ServiceObject),
    Hpa(HpaObject),
}

fn docs(text: &str) -> serde_yaml_ng::Deserializer<'_> {
    serde_yaml_ng::Deserializer::from_str(text)
}

pub(super) fn parse_file(
    file: &str,
    text: &str,
    reading: Reading,
    objects: &mut Vec<Object>,
    skipped: &mut Vec<String>,
) -> Result<(), ManifestError> {
    let err = |e: serde_yaml_ng::Error| yaml_error(file, &e);
    // Pass 1: syntax, stopping at the first broken document (the parser does
    // not recover from it).
    // (Walking the events reaches the parse error, if any, before anything is
    // interpreted, so a broken document is reported as such.)
    for doc in docs(text) {
        IgnoredAny::deserialize(doc).map_err(err)?;
    }
    // Pass 2: kinds.
    let mut headers = Vec::new();
    for doc in docs(text) {
        let header = if reading == Reading::Cluster {
            Option::<Checked<Header<true>>>::deserialize(doc).map(|h| h.map(|h| h.0 .0))
        } else {
            Option::<Checked<Header<false>>>::deserialize(doc).map(|h| h.map(|h| h.0 .0))
        };
        headers.push(header.map_err(err)?);
    }
    // Pass 3: where each object is (its metadata.name, else its first line).
    let mut locs = Vec::new();
    for doc in docs(text) {
        let (line, column) = match Locator::deserialize(doc) {
            Err(e) => e.location().map_or((1, 1), |l| (l.line(), l.column())),
            Ok(Locator) => (1, 1),
        };
        locs.push(Loc {
            file: file.to_string(),
            line,
            column,
        });
    }
    // Pass 4: the objects.
    for ((doc, kind), at) in docs(text).zip(headers).zip(locs) {
        let Some(kind) = kind else { continue };
        match kind.as_str() {
            "NetworkPolicy" => {
                let d = NetworkPolicyDoc::deserialize(doc).map_err(err)?;
                let meta = d.metadata.0;
                let name = required_name(&meta, &kind, &at)?;
                let spec = d.spec.map(|s| s.0).unwrap_or(PolicySpec {
                    pod_selector: LabelSelector::everything(),
                    policy_types: PolicyTypes::defaulted(&[], 0),
                    ingress: Vec::new(),
                    egress: Vec::new(),
                });
                let policy = Policy {
                    namespace: meta.namespace.clone().unwrap_or_else(|| "default".into()),
                    name,
                    pod_selector: spec.pod_selector,
                    policy_types: spec.policy_types,
                    ingress: spec.ingress,
                    egress: spec.egress,
                };
                objects.push(Object::Policy(policy, at));
            }
            "Namespace" => {
                let d = NamespaceDoc::deserialize(doc).map_err(err)?;
                let meta = d.metadata.0;
                let name = required_name(&meta, &kind, &at)?;
                check_dns1123_label(&name).map_err(|e| {
                    at.error(
                        format!("metadata.name: {e}"),
                        "namespace names are lowercase letters, digits and '-', at most 63 characters",
                    )
                })?;
                let labels = meta.labels();
                objects.push(Object::Namespace(Namespace { name, labels }, at));
            }
            "Pod" if reading == Reading::Cluster => {
                let d = PodDoc::deserialize(doc).map_err(err)?;
                let meta = d.metadata.0;
                let ns = meta.namespace.as_deref().unwrap_or("default");
                let name = meta.name.as_deref().unwrap_or_default();
                skipped.push(format!(
                    "Pod {ns}/{name} ({at}): a bare pod is not a workload the cluster model runs (use a Deployment or StatefulSet)"
                ));
            }
            "Deployment" | "StatefulSet" if reading == Reading::Cluster => {
                let d = WorkloadDoc::deserialize(doc).map_err(err)?;
                let meta = d.metadata.0;
                let name = required_name(&meta, &kind, &at)?;
                let spec = d.spec.0;
                objects.push(Object::Workload(WorkloadObject {
                    kind: if kind == "Deployment" {
                        WorkloadKind::Deployment
                    } else {
                        WorkloadKind::StatefulSet
                    },
                    namespace: meta.namespace.clone().unwrap_or_else(|| "default".into()),
                    name,
                    replicas: spec.replicas,
                    labels: spec.labels.clone(),
                    ports: spec.spec.ports(),
                    host_network: spec.spec.host_network.unwrap_or(false),
                    dns_policy: spec.spec.dns_policy.clone(),
                    dns_config: spec.spec.dns_config.as_ref().map(|c| c.0.clone()),
                    resources: spec.spec.resources(),
                    readiness_probes: spec.spec.readiness_probes(),
                    at,
                }));
            }
            "Service" if reading == Reading::Cluster => {
                let d = ServiceDoc::deserialize(doc).map_err(err)?;
                let meta = d.metadata.0;
                let name = required_name(&meta, &kind, &at)?;
                // kube-controller-manager's `hintsEnabled`: the annotation,
                // else its deprecated predecessor; "Auto" or "auto" turns
                // hints on, any other value leaves them off.
                let mode = meta
                    .annotation("service.kubernetes.io/topology-mode")
                    .or_else(|| meta.annotation("service.kubernetes.io/topology-aware-hints"));
                objects.push(Object::Service(ServiceObject {
                    namespace: meta.namespace.clone().unwrap_or_else(|| "default".into()),
                    name,
                    topology_auto: matches!(mode, Some("Auto" | "auto")),
                    spec: d.spec.0,
                    at,
                }));
            }
            "HorizontalPodAutoscaler" if reading == Reading::Cluster => {
                let d = HpaDoc::deserialize(doc).map_err(err)?;
                let meta = d.metadata.0;
                let name = required_name(&meta, &kind, &at)?;
                objects.push(Object::Hpa(HpaObject {
                    namespace: meta.namespace.clone().unwrap_or_else(|| "default".into()),
                    name,
                    spec: d.spec.0,
                    at,
                }));
            }
            "Pod" => {
                let d = PodDoc::deserialize(doc).map_err(err)?;
                let meta = d.metadata.0;
                let name = required_name(&meta, &kind, &at)?;
                let status = d.status.unwrap_or(PodStatus {
                    pod_ip: None,
                    host_ip: None,
                });
                let seed = PodSeed {
                    namespace: meta.namespace.clone().unwrap_or_else(|| "default".into()),
                    name,
                    labels: meta.labels(),
                    host_network: d.spec.host_network.unwrap_or(false),
                    node_name: d.spec.node_name.clone(),
                    pod_ip: status.pod_ip,
                    host_ip: status.host_ip,
                    ports: d.spec.ports(),
                    at,
                };
                objects.push(Object::Pods("Pod".into(), vec![seed]));
            }
            "Deployment" | "StatefulSet" => {
                let d = WorkloadDoc::deserialize(doc).map_err(err)?;
                let meta = d.metadata.0;
                let name = required_name(&meta, &kind, &at)?;
                let spec = d.spec.0;
                let namespace = meta.namespace.clone().unwrap_or_else(|| "default".into());
                let total: usize = objects
                    .iter()
                    .map(|o| match o {
                        Object::Pods(_, p) => p.len(),
                        _ => 0,
                    })
                    .sum();
                if total + spec.replicas as usize > MAX_PODS {
                    return Err(at.error(
                        format!(
                            "{kind} {namespace}/{name}: {} replicas would exceed knsim's limit of {MAX_PODS} pods",
                            spec.replicas
                        ),
                        "the truth table is for policy reasoning; use a handful of replicas per workload",
                    ));
                }
                let pods = (0..spec.replicas)
                    .map(|i| PodSeed {
                        namespace: namespace.clone(),
                        name: format!("{name}-{i}"),
                        labels: spec.labels.clone(),
                        host_network: spec.spec.host_network.unwrap_or(false),
                        node_name: spec.spec.node_name.clone(),
                        pod_ip: None,
                        host_ip: None,
                        ports: spec.spec.ports(),
                        at: at.clone(),
                    })
                    .collect();
                objects.push(Object::Pods(format!("{kind} {namespace}/{name}"), pods));
            }
            other => {
                let d = SkippedDoc::deserialize(doc).map_err(err)?;
                let ns = d.metadata.as_ref().and_then(|m| m.namespace.clone());
                let name = d.metadata.and_then(|m| m.name).unwrap_or_default();
                let id = match ns {
                    Some(ns) => format!("{ns}/{name}"),
                    None => name,
                };
                skipped.push(format!("{other} {id} ({at})"));
            }
        }
    }
    Ok(())
}

/// Any other kind: only its name is read, for the "skipped" list.
#[derive(Deserialize)]
struct SkippedDoc {
    #[serde(default)]
    metadata: Option<SkippedMeta>,
}

#[derive(Deserialize)]
struct SkippedMeta {
    #[serde(default, deserialize_with = "opt_string")]
    name: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    namespace: Option<String>,
}

fn required_name(meta: &Meta, kind: &str, at: &Loc) -> Result<String, ManifestError> {
    meta.name.clone().ok_or_else(|| {
        let hint = if meta._generate_name.is_some() {
            "knsim needs a fixed `metadata.name`; `generateName` alone is not supported"
        } else {
            "add `metadata: {name: ...}`"
        };
        at.error(format!("{kind}: metadata.name: Required value"), hint)
    })
}
