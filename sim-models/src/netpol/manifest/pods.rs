//! Pods and the workloads that expand to them (Deployment, StatefulSet):
//! container ports, node and addresses from `status`, replicas.

use std::net::Ipv4Addr;

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};

use super::checked::{Checked, FromRaw};
use super::metadata::Meta;
use super::scalars::{convert, ipv4_field, opt_string, protocol_field, string, want_int};
use super::template::{pod_resources, DnsConfigObject, ReadinessProbe, Resources, ResourcesDoc};
use crate::netpol::names::{check_port_name, check_port_number};
use crate::netpol::policy::ContainerPort;
use crate::netpol::selector::{format_labels, LabelSelector, Labels};
use crate::protocol::Protocol;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawContainerPort {
    container_port: Scalarish,
    #[serde(default, deserialize_with = "opt_string")]
    name: Option<String>,
    #[serde(default, deserialize_with = "protocol_field")]
    protocol: Option<Protocol>,
    #[serde(default, rename = "hostPort")]
    _host_port: Option<IgnoredAny>,
    #[serde(default, rename = "hostIP")]
    _host_ip: Option<IgnoredAny>,
}

/// `containerPort`, validated where it stands.
struct Scalarish(u16);

impl<'de> Deserialize<'de> for Scalarish {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        convert(d, |s| {
            let v = want_int(s, "containerPort", "containerPort is a port number")?;
            check_port_number(i64::try_from(v).unwrap_or(i64::MAX))
                .map(Scalarish)
                .map_err(|e| (e, "a port number is 1-65535".into()))
        })
    }
}

impl FromRaw for ContainerPort {
    type Raw = RawContainerPort;
    fn from_raw(raw: RawContainerPort) -> Result<Self, (String, String)> {
        if let Some(name) = &raw.name {
            check_port_name(name).map_err(|e| {
                (
                    format!("name: {e}"),
                    "port names are at most 15 lowercase letters, digits and '-', with at least one letter".into(),
                )
            })?;
        }
        Ok(ContainerPort {
            name: raw.name,
            port: raw.container_port.0,
            protocol: raw.protocol.unwrap_or(Protocol::Tcp),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Container {
    #[serde(deserialize_with = "string", rename = "name")]
    _name: String,
    #[serde(default)]
    ports: Option<Vec<Checked<ContainerPort>>>,
    #[serde(default, rename = "image")]
    _image: Option<IgnoredAny>,
    #[serde(default, rename = "imagePullPolicy")]
    _image_pull_policy: Option<IgnoredAny>,
    #[serde(default, rename = "command")]
    _command: Option<IgnoredAny>,
    #[serde(default, rename = "args")]
    _args: Option<IgnoredAny>,
    #[serde(default, rename = "workingDir")]
    _working_dir: Option<IgnoredAny>,
    #[serde(default, rename = "env")]
    _env: Option<IgnoredAny>,
    #[serde(default, rename = "envFrom")]
    _env_from: Option<IgnoredAny>,
    #[serde(default)]
    resources: Option<ResourcesDoc>,
    #[serde(default, rename = "resizePolicy")]
    _resize_policy: Option<IgnoredAny>,
    #[serde(default, rename = "restartPolicy")]
    _restart_policy: Option<IgnoredAny>,
    #[serde(default, rename = "restartPolicyRules")]
    _restart_policy_rules: Option<IgnoredAny>,
    #[serde(default, rename = "volumeMounts")]
    _volume_mounts: Option<IgnoredAny>,
    #[serde(default, rename = "volumeDevices")]
    _volume_devices: Option<IgnoredAny>,
    #[serde(default, rename = "livenessProbe")]
    _liveness_probe: Option<IgnoredAny>,
    #[serde(default)]
    readiness_probe: Option<Checked<ReadinessProbe>>,
    #[serde(default, rename = "startupProbe")]
    _startup_probe: Option<IgnoredAny>,
    #[serde(default, rename = "lifecycle")]
    _lifecycle: Option<IgnoredAny>,
    #[serde(default, rename = "terminationMessagePath")]
    _termination_message_path: Option<IgnoredAny>,
    #[serde(default, rename = "terminationMessagePolicy")]
    _termination_message_policy: Option<IgnoredAny>,
    #[serde(default, rename = "securityContext")]
    _security_context: Option<IgnoredAny>,
    #[serde(default, rename = "stdin")]
    _stdin: Option<IgnoredAny>,
    #[serde(default, rename = "stdinOnce")]
    _stdin_once: Option<IgnoredAny>,
    #[serde(default, rename = "tty")]
    _tty: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct PodSpec {
    containers: Vec<Container>,
    #[serde(default)]
    pub(super) host_network: Option<bool>,
    #[serde(default, deserialize_with = "opt_string")]
    pub(super) node_name: Option<String>,
    // Accepted and ignored. Init containers' ports are not used for named-port
    // resolution (see the module docs).
    #[serde(default, rename = "initContainers")]
    _init_containers: Option<IgnoredAny>,
    #[serde(default, rename = "ephemeralContainers")]
    _ephemeral_containers: Option<IgnoredAny>,
    #[serde(default, rename = "activeDeadlineSeconds")]
    _active_deadline_seconds: Option<IgnoredAny>,
    #[serde(default, rename = "affinity")]
    _affinity: Option<IgnoredAny>,
    #[serde(default, rename = "automountServiceAccountToken")]
    _automount_service_account_token: Option<IgnoredAny>,
    #[serde(default)]
    pub(super) dns_config: Option<Checked<DnsConfigObject>>,
    #[serde(default, deserialize_with = "opt_string")]
    pub(super) dns_policy: Option<String>,
    #[serde(default, rename = "enableServiceLinks")]
    _enable_service_links: Option<IgnoredAny>,
    #[serde(default, rename = "hostAliases")]
    _host_aliases: Option<IgnoredAny>,
    #[serde(default, rename = "hostIPC")]
    _host_ipc: Option<IgnoredAny>,
    #[serde(default, rename = "hostPID")]
    _host_pid: Option<IgnoredAny>,
    #[serde(default, rename = "hostUsers")]
    _host_users: Option<IgnoredAny>,
    #[serde(default, rename = "hostname")]
    _hostname: Option<IgnoredAny>,
    #[serde(default, rename = "hostnameOverride")]
    _hostname_override: Option<IgnoredAny>,
    #[serde(default, rename = "imagePullSecrets")]
    _image_pull_secrets: Option<IgnoredAny>,
    #[serde(default, rename = "nodeSelector")]
    _node_selector: Option<IgnoredAny>,
    #[serde(default, rename = "os")]
    _os: Option<IgnoredAny>,
    #[serde(default, rename = "overhead")]
    _overhead: Option<IgnoredAny>,
    #[serde(default, rename = "preemptionPolicy")]
    _preemption_policy: Option<IgnoredAny>,
    #[serde(default, rename = "priority")]
    _priority: Option<IgnoredAny>,
    #[serde(default, rename = "priorityClassName")]
    _priority_class_name: Option<IgnoredAny>,
    #[serde(default, rename = "readinessGates")]
    _readiness_gates: Option<IgnoredAny>,
    #[serde(default, rename = "resourceClaims")]
    _resource_claims: Option<IgnoredAny>,
    #[serde(default, rename = "resources")]
    _resources: Option<IgnoredAny>,
    #[serde(default, rename = "restartPolicy")]
    _restart_policy: Option<IgnoredAny>,
    #[serde(default, rename = "runtimeClassName")]
    _runtime_class_name: Option<IgnoredAny>,
    #[serde(default, rename = "schedulerName")]
    _scheduler_name: Option<IgnoredAny>,
    #[serde(default, rename = "schedulingGates")]
    _scheduling_gates: Option<IgnoredAny>,
    #[serde(default, rename = "securityContext")]
    _security_context: Option<IgnoredAny>,
    #[serde(default, rename = "serviceAccount")]
    _service_account: Option<IgnoredAny>,
    #[serde(default, rename = "serviceAccountName")]
    _service_account_name: Option<IgnoredAny>,
    #[serde(default, rename = "setHostnameAsFQDN")]
    _set_hostname_as_fqdn: Option<IgnoredAny>,
    #[serde(default, rename = "shareProcessNamespace")]
    _share_process_namespace: Option<IgnoredAny>,
    #[serde(default, rename = "subdomain")]
    _subdomain: Option<IgnoredAny>,
    #[serde(default, rename = "terminationGracePeriodSeconds")]
    _termination_grace_period_seconds: Option<IgnoredAny>,
    #[serde(default, rename = "tolerations")]
    _tolerations: Option<IgnoredAny>,
    #[serde(default, rename = "topologySpreadConstraints")]
    _topology_spread_constraints: Option<IgnoredAny>,
    #[serde(default, rename = "volumes")]
    _volumes: Option<IgnoredAny>,
}

impl PodSpec {
    pub(super) fn ports(&self) -> Vec<ContainerPort> {
        self.containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten().map(|p| p.0.clone()))
            .collect()
    }

    /// The pod's requests and limits (see [`Resources`]).
    pub(super) fn resources(&self) -> Resources {
        pod_resources(self.containers.iter().map(|c| c.resources.as_ref()))
    }

    /// The containers' readiness probes, in order.
    pub(super) fn readiness_probes(&self) -> Vec<ReadinessProbe> {
        self.containers
            .iter()
            .filter_map(|c| c.readiness_probe.as_ref().map(|p| p.0))
            .collect()
    }
}

/// Pod status: written by the cluster, so only the fields read are named and
/// everything else is ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PodStatus {
    #[serde(default, rename = "podIP", deserialize_with = "ipv4_field")]
    pub(super) pod_ip: Option<Ipv4Addr>,
    #[serde(default, rename = "hostIP", deserialize_with = "ipv4_field")]
    pub(super) host_ip: Option<Ipv4Addr>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct PodDoc {
    #[serde(rename = "apiVersion")]
    _api_version: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    pub(super) metadata: Checked<Meta>,
    pub(super) spec: PodSpec,
    #[serde(default)]
    pub(super) status: Option<PodStatus>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PodTemplate {
    #[serde(default)]
    metadata: Option<Checked<Meta>>,
    spec: PodSpec,
}

struct Replicas(u32);

impl<'de> Deserialize<'de> for Replicas {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        convert(d, |s| {
            let v = want_int(s, "replicas", "replicas is a whole number")?;
            match u32::try_from(v) {
                Ok(n) if i32::try_from(n).is_ok() => Ok(Replicas(n)),
                _ => Err((
                    format!("{v} must be greater than or equal to 0 (and fit in int32)"),
                    "replicas is a whole number of pods".into(),
                )),
            }
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawWorkloadSpec {
    #[serde(default)]
    replicas: Option<Replicas>,
    selector: Checked<LabelSelector>,
    template: PodTemplate,
    // Deployment fields, ignored.
    #[serde(default, rename = "strategy")]
    _strategy: Option<IgnoredAny>,
    #[serde(default, rename = "minReadySeconds")]
    _min_ready_seconds: Option<IgnoredAny>,
    #[serde(default, rename = "revisionHistoryLimit")]
    _revision_history_limit: Option<IgnoredAny>,
    #[serde(default, rename = "paused")]
    _paused: Option<IgnoredAny>,
    #[serde(default, rename = "progressDeadlineSeconds")]
    _progress_deadline_seconds: Option<IgnoredAny>,
    // StatefulSet fields, ignored.
    #[serde(default, rename = "serviceName")]
    _service_name: Option<IgnoredAny>,
    #[serde(default, rename = "podManagementPolicy")]
    _pod_management_policy: Option<IgnoredAny>,
    #[serde(default, rename = "updateStrategy")]
    _update_strategy: Option<IgnoredAny>,
    #[serde(default, rename = "volumeClaimTemplates")]
    _volume_claim_templates: Option<IgnoredAny>,
    #[serde(default, rename = "persistentVolumeClaimRetentionPolicy")]
    _pvc_retention_policy: Option<IgnoredAny>,
    #[serde(default, rename = "ordinals")]
    _ordinals: Option<IgnoredAny>,
}

pub(super) struct WorkloadSpec {
    pub(super) replicas: u32,
    pub(super) labels: Labels,
    pub(super) spec: PodSpec,
}

impl FromRaw for WorkloadSpec {
    type Raw = RawWorkloadSpec;
    fn from_raw(raw: RawWorkloadSpec) -> Result<Self, (String, String)> {
        let labels = raw
            .template
            .metadata
            .as_ref()
            .map(|m| m.0.labels())
            .unwrap_or_default();
        let selector = raw.selector.0;
        if selector.is_everything() {
            return Err((
                "selector: empty selector is invalid for this workload".into(),
                "select the template's labels, e.g. `selector: {matchLabels: {app: web}}`".into(),
            ));
        }
        if !selector.matches(&labels) {
            return Err((
                format!(
                    "selector: `selector` {selector} does not match template `labels` {}",
                    format_labels(&labels)
                ),
                "the template's metadata.labels must satisfy spec.selector".into(),
            ));
        }
        Ok(WorkloadSpec {
            replicas: raw.replicas.map_or(1, |r| r.0),
            labels,
            spec: raw.template.spec,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct WorkloadDoc {
    #[serde(rename = "apiVersion")]
    _api_version: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    pub(super) metadata: Checked<Meta>,
    pub(super) spec: Checked<WorkloadSpec>,
    #[serde(default, rename = "status")]
    _status: Option<IgnoredAny>,
}
