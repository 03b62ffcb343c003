//! Workloads and namespaces: the `workloads` and `namespaces` sections.
//!
//! # Scope
//! Each workload becomes a Deployment (or StatefulSet) with its Service port
//! and its server model (concurrency, service time, queue); the DNS
//! workload's pods are CoreDNS and take no server settings. With
//! `cluster.manifests` the entries only add to the manifests' workloads
//! (`manifests/`); without, `replicas`, `startup` and `ready_after` are
//! required here.
//!
//! # Validation
//! Every error names the field it is about (`file:line:column`) with a hint.

use super::{Validator, R};
use crate::envelope::Locate;
use crate::locate::Seg;
use crate::path;
use crate::units::{Count, Cpu, Duration, Memory};
use schemars::JsonSchema;
use serde::Deserialize;
use sim_models::app::ServerSpec;
use sim_models::coredns::CoreDnsSpec;
use sim_models::netpol::Protocol;
use sim_models::scheduler::Resources;
use sim_models::workload::{DeploymentSpec, StartDial, WorkloadKind, ZoneSpread};
use std::collections::BTreeMap;

/// One Deployment and its server.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkloadFile {
    /// Name (its Service has the same name); with `cluster.manifests`, the
    /// Deployment or StatefulSet this entry adds to.
    pub name: String,
    /// Replicas at the start (not with `cluster.manifests`: the manifest's).
    pub replicas: Option<Count>,
    /// Binding to container running.
    pub startup: Option<Duration>,
    /// Container running to Ready (not with `cluster.manifests`: from the
    /// readiness probe).
    pub ready_after: Option<Duration>,
    /// Requests served at once per pod (not for the DNS workload, whose
    /// pods are CoreDNS).
    pub concurrency: Option<Count>,
    /// Mean service time (not for the DNS workload).
    pub service_time: Option<Duration>,
    /// Requests that may wait per pod (default: no limit).
    pub queue_limit: Option<Count>,
    /// `deployment` (default) or `statefulset`.
    pub kind: Option<KindName>,
    /// Namespace (default `default`).
    pub namespace: Option<String>,
    /// Pod labels (default `app: NAME`).
    pub labels: Option<BTreeMap<String, String>>,
    /// Port the pods serve on (default 8080).
    pub port: Option<u16>,
    /// Name of that container port.
    pub port_name: Option<String>,
    /// `TCP` (default), `UDP` or `SCTP`.
    pub protocol: Option<String>,
    /// The Service is headless (`clusterIP: None`): its DNS name gives pod
    /// addresses, which clients connect to directly.
    #[serde(default)]
    pub headless: bool,
    /// The pod spec's `dnsPolicy`: `ClusterFirst` (default: the kubelet's
    /// resolv.conf, then `dns_config`) or `None` (`dns_config` alone, which
    /// must name `nameservers`).
    pub dns_policy: Option<String>,
    /// The pod spec's `dnsConfig`.
    pub dns_config: Option<PodDnsConfigFile>,
    /// Each pod's `resources` (only `requests` is read: the scheduler
    /// places pods by them on nodes that state `allocatable`).
    pub resources: Option<ResourcesFile>,
    /// A `topologySpreadConstraints` entry over zones
    /// (`topologyKey: topology.kubernetes.io/zone`, the workload's own pods
    /// as `labelSelector`).
    pub topology_spread: Option<TopologySpreadFile>,
    /// `tolerationSeconds` of the pods' `NoExecute` tolerations for
    /// `node.kubernetes.io/not-ready` and `node.kubernetes.io/unreachable`:
    /// how long they stay bound to a failed node before eviction (default
    /// 300, added by the `DefaultTolerationSeconds` admission plugin).
    pub toleration_seconds: Option<Count>,
    /// The application connects to a Service as it starts and exits when
    /// that connection fails (refused by a sidecar not yet listening, or no
    /// Ready endpoint): its container restarts with CrashLoopBackOff.
    pub dials_at_start: Option<StartDialFile>,
}

/// A connection the application opens as it starts.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StartDialFile {
    /// The Service it connects to.
    pub service: String,
    /// From the app container's start to the connection (its own
    /// initialisation), e.g. `800ms`.
    pub after: Duration,
}

/// A container's `resources`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourcesFile {
    /// `requests`: `cpu` (`250m`, `1`) and `memory` (`512Mi`).
    pub requests: RequestsFile,
}

/// CPU and memory as Kubernetes quantities.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestsFile {
    /// CPU (`250m`, `1`).
    pub cpu: Option<Cpu>,
    /// Memory (`512Mi`, `2Gi`).
    pub memory: Option<Memory>,
}

/// `topologySpreadConstraints` over zones.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TopologySpreadFile {
    /// `maxSkew` (at least 1).
    pub max_skew: Count,
    /// `DoNotSchedule` (default) or `ScheduleAnyway`.
    pub when_unsatisfiable: Option<WhenUnsatisfiable>,
}

/// What the scheduler does when the skew cannot be kept.
#[derive(Debug, Deserialize, JsonSchema, Clone, Copy, PartialEq, Eq)]
pub enum WhenUnsatisfiable {
    /// The pod stays Pending.
    DoNotSchedule,
    /// The pod goes to the least skewed zone that can take it.
    ScheduleAnyway,
}

/// Workload controllers.
#[derive(Debug, Deserialize, JsonSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum KindName {
    /// A Deployment.
    Deployment,
    /// A StatefulSet.
    Statefulset,
}

/// A namespace.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NamespaceFile {
    /// Name.
    pub name: String,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A pod's `dnsConfig`, as in the pod spec.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PodDnsConfigFile {
    /// Nameserver addresses (at most 3 in all, glibc's `MAXNS`): the
    /// kube-dns ClusterIP (`dns.service_ip`) or NodeLocal DNSCache's
    /// `169.254.20.10` (with `dns.node_local_dns`). Appended after the
    /// cluster's with `dns_policy: ClusterFirst`, the only ones with `None`.
    #[serde(default)]
    pub nameservers: Vec<std::net::Ipv4Addr>,
    /// Search domains appended to the kubelet's.
    #[serde(default)]
    pub searches: Vec<String>,
    /// resolv.conf options: `ndots`, `timeout`, `attempts` (with a value),
    /// `single-request`, `single-request-reopen`, `rotate`.
    #[serde(default)]
    pub options: Vec<DnsOptionFile>,
}

/// One `dnsConfig.options` entry.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsOptionFile {
    /// Option name.
    pub name: String,
    /// Its value (a number, quoted or not, as Kubernetes takes it).
    pub value: Option<OptionValue>,
}

/// An option value: Kubernetes takes strings, people write numbers too.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum OptionValue {
    /// `value: 2`.
    Number(u64),
    /// `value: "2"`.
    Text(String),
}

impl Validator<'_> {
    /// The Deployments of `workloads` (written at `wp`), each with its server.
    pub(super) fn deployments(
        &self,
        wp: &[Seg],
        workloads: &[WorkloadFile],
        dns_workload: Option<&str>,
    ) -> R<Vec<DeploymentSpec>> {
        let mut deployments: Vec<DeploymentSpec> = Vec::new();
        for (i, w) in workloads.iter().enumerate() {
            let p = [wp, &path!["workloads", i]].concat();
            if deployments.iter().any(|d| d.name == w.name) {
                return Err(self.err(
                    &p,
                    format!("workload `{}` is defined twice", w.name),
                    "give each workload its own name",
                ));
            }
            let need = |field: &str, hint: &str| {
                self.err(&p, format!("workload `{}` needs `{field}`", w.name), hint)
            };
            let replicas = w
                .replicas
                .ok_or_else(|| need("replicas", "give the pods at the start, e.g. replicas: 3"))?;
            let startup = w.startup.ok_or_else(|| {
                need(
                    "startup",
                    "give the time from binding to the container running, e.g. startup: 10s",
                )
            })?;
            let ready_after = w.ready_after.ok_or_else(|| {
                need(
                    "ready_after",
                    "give the time from the container running to Ready, e.g. ready_after: 5s",
                )
            })?;
            self.replicas_within(&[p.as_slice(), &path!["replicas"]].concat(), replicas.0)?;
            let server = self.server(&p, w, dns_workload)?;
            let mut d = DeploymentSpec::new(&w.name, replicas.0, startup.0, ready_after.0, server);
            if let Some(KindName::Statefulset) = w.kind {
                d.kind = WorkloadKind::StatefulSet;
            }
            if let Some(ns) = &w.namespace {
                d.namespace = ns.clone();
            }
            if let Some(l) = &w.labels {
                d.labels = l.clone();
            }
            if let Some(port) = w.port {
                d.port.number = port;
            }
            d.port.name = w.port_name.clone();
            if let Some(proto) = &w.protocol {
                d.port.protocol = Protocol::parse(proto).ok_or_else(|| {
                    self.err(
                        &[&p[..], &path!["protocol"]].concat(),
                        format!("protocol `{proto}` is not TCP, UDP or SCTP"),
                        "protocols are upper case, as in Kubernetes: TCP, UDP, SCTP",
                    )
                })?;
            }
            if let Some(r) = &w.resources {
                d.requests = requests(r);
            }
            d.spread = self.spread(&p, w)?;
            if let Some(t) = w.toleration_seconds {
                d.toleration = sim_core::SimDuration::from_secs(u64::from(t.0));
            }
            deployments.push(d);
        }

        Ok(deployments)
    }

    /// A workload's zone spread constraint, checked.
    pub(super) fn spread(&self, p: &[Seg], w: &WorkloadFile) -> R<Option<ZoneSpread>> {
        let Some(t) = &w.topology_spread else {
            return Ok(None);
        };
        if t.max_skew.0 == 0 {
            return Err(self.err(
                &[p, &path!["topology_spread", "maxSkew"]].concat(),
                "maxSkew 0 can never be met",
                "maxSkew is at least 1, e.g. maxSkew: 1",
            ));
        }
        Ok(Some(ZoneSpread {
            max_skew: t.max_skew.0,
            do_not_schedule: t.when_unsatisfiable != Some(WhenUnsatisfiable::ScheduleAnyway),
        }))
    }

    /// A workload's server model; the DNS workload's pods are CoreDNS and
    /// take none.
    pub(super) fn server(
        &self,
        p: &[Seg],
        w: &WorkloadFile,
        dns_workload: Option<&str>,
    ) -> R<ServerSpec> {
        let field = |n: &str| [p, &path![n]].concat();
        if dns_workload == Some(w.name.as_str()) {
            if w.concurrency.is_some() || w.service_time.is_some() {
                let key = if w.concurrency.is_some() {
                    "concurrency"
                } else {
                    "service_time"
                };
                return Err(self.err(
                    &field(key),
                    format!("`{}` is the DNS workload: its pods are CoreDNS, whose speed comes from its CPU", w.name),
                    "remove concurrency and service_time; set the CPU with dns: {coredns: {cpu: 100m}}",
                ));
            }
            let spec = CoreDnsSpec::default();
            return Ok(ServerSpec {
                concurrency: 1,
                service_time: spec.mean_service_time(),
                queue_limit: None,
            });
        }
        let (Some(c), Some(t)) = (w.concurrency, w.service_time) else {
            let key = if w.concurrency.is_none() {
                "concurrency"
            } else {
                "service_time"
            };
            return Err(self.err(
                p,
                format!("workload `{}` needs `{key}`", w.name),
                "give the requests served at once per pod (concurrency) and their mean time (service_time)",
            ));
        };
        if c.0 == 0 {
            return Err(self.err(
                &field("concurrency"),
                "concurrency is 0: the pods could never answer",
                "give each pod at least one worker",
            ));
        }
        Ok(ServerSpec {
            concurrency: c.0,
            service_time: t.0,
            queue_limit: w.queue_limit.map(|c| c.0),
        })
    }
}

impl Validator<'_> {
    /// Per deployment, its `dials_at_start` (entries at `wp`), the Service
    /// resolved among the run's `services`.
    pub(super) fn start_dials(
        &self,
        wp: &[Seg],
        workloads: &[WorkloadFile],
        deployments: &[DeploymentSpec],
        services: &[sim_models::services::ResolvedService],
    ) -> R<Vec<Option<StartDial>>> {
        let mut out = vec![None; deployments.len()];
        for (i, w) in workloads.iter().enumerate() {
            let Some(dial) = &w.dials_at_start else {
                continue;
            };
            let p = [wp, &path!["workloads", i, "dials_at_start", "service"]].concat();
            let Some(s) = services.iter().position(|s| s.spec.name == dial.service) else {
                let names: Vec<&str> = services.iter().map(|s| s.spec.name.as_str()).collect();
                return Err(self.err(
                    &p,
                    format!("`{}` is not a Service of this scenario", dial.service),
                    crate::envelope::did_you_mean(&dial.service, &names, "Services"),
                ));
            };
            if let Some(d) = deployments.iter().position(|d| d.name == w.name) {
                out[d] = Some(StartDial {
                    service: s,
                    after: dial.after.0,
                });
            }
        }
        Ok(out)
    }
}

/// A pod's requests as the scheduler counts them (absent: 0).
pub(super) fn requests(r: &ResourcesFile) -> Resources {
    Resources {
        cpu_millis: r.requests.cpu.map_or(0, |c| u64::from(c.0)),
        memory: r.requests.memory.map_or(0, |m| m.0),
    }
}
