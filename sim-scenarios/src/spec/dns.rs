//! The cluster DNS: the `dns` section and the workloads' `dns_config`.
//!
//! # Scope
//! CoreDNS's resources and Corefile settings (kubeadm's defaults), its
//! upstream, NodeLocal DNSCache, a CPU autoscaler, and each pod's
//! resolv.conf (checked against resolv.conf(5) and glibc's limits).
//!
//! # Validation
//! Every error names the field it is about (`file:line:column`) with a hint.

use super::manifests::{at_manifest, DnsFromManifests, PodExtras, Where};
use super::{OptionValue, PodDnsConfigFile, Validator, WorkloadFile, R};
use crate::envelope::{did_you_mean, Locate};
use crate::locate::Seg;
use crate::path;
use crate::units::{Count, Cpu, Duration, Memory};
use schemars::JsonSchema;
use serde::Deserialize;
use sim_core::SimDuration;
use sim_models::cluster::{DnsConfig, PodDnsConfig};
use sim_models::coredns::{CoreDnsSpec, UpstreamSpec};
use sim_models::hpa::HpaSpec;
use sim_models::resolver::{GlibcVersion, QueryTypes};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// The cluster DNS Service.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsFile {
    /// The workload serving DNS (e.g. coredns in kube-system, port 53 UDP).
    pub workload: String,
    /// kube-dns ClusterIP (default 10.96.0.10, kubeadm's).
    pub service_ip: Option<std::net::Ipv4Addr>,
    /// `A` (default) or `A+AAAA` (both in parallel on one socket, glibc's default for AF_UNSPEC).
    pub queries: Option<String>,
    /// The node's own search domains, appended after the cluster's (e.g. `ec2.internal`).
    #[serde(default)]
    pub host_search: Vec<String>,
    /// Each CoreDNS pod's resources and Corefile settings (default: kubeadm's).
    pub coredns: Option<CoreDnsFile>,
    /// The upstream resolver behind the forward plugin.
    pub upstream: Option<UpstreamFile>,
    /// NodeLocal DNSCache (default false): every node runs node-local-dns
    /// (the nodelocaldns.yaml Corefile); pods query it, it forwards
    /// cluster names to kube-dns over TCP and other names to the upstream.
    #[serde(default)]
    pub node_local_dns: bool,
    /// A HorizontalPodAutoscaler on the CoreDNS Deployment's CPU (default none).
    pub autoscaler: Option<HpaFile>,
    /// The glibc the client images carry: `current` (default; a SERVFAIL,
    /// REFUSED or NOTIMP to the A query in the one-at-a-time modes moves on
    /// at once, as measured on Debian 2.36-9+deb12u14) or `legacy` (the
    /// older `send_dg`, waiting its timeout for an AAAA reply it never
    /// asked for; the 2017-2020 incidents ran on it).
    pub glibc: Option<String>,
}

/// `kubectl autoscale deployment coredns --min=2 --max=10 --cpu-percent=70`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HpaFile {
    /// `minReplicas` (default 1).
    pub min_replicas: Option<Count>,
    /// `maxReplicas`.
    pub max_replicas: Count,
    /// Target average CPU utilization, percent of the request.
    pub target_cpu_utilization: Count,
}

/// One CoreDNS pod: resources and Corefile settings. Defaults: kubeadm's
/// (100m CPU, 170Mi limit, `cache 30`, `max_concurrent 1000`, `ttl 30`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CoreDnsFile {
    /// CPU the pod gets (`100m`).
    pub cpu: Option<Cpu>,
    /// Container memory limit (`170Mi`).
    pub memory_limit: Option<Memory>,
    /// Pods plus Services in the cluster (memory formula).
    pub cluster_objects: Option<Count>,
    /// Entries in each of the two caches; 0 turns the cache off.
    pub cache_capacity: Option<Count>,
    /// `cache` TTL cap.
    pub cache_max_ttl: Option<Duration>,
    /// `kubernetes` plugin `ttl`.
    pub kubernetes_ttl: Option<Duration>,
    /// `forward ... max_concurrent`; 0 is refused (it means no limit in CoreDNS).
    pub max_concurrent: Option<Count>,
}

/// The upstream resolver.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamFile {
    /// Time to answer a forwarded query (default 1ms).
    pub latency: Option<Duration>,
    /// Share of tries that get no reply, 0..1.
    pub loss: Option<f64>,
    /// Share of tries answered SERVFAIL, 0..1.
    pub servfail: Option<f64>,
    /// TTL of its answers (default 30s).
    pub ttl: Option<Duration>,
}

impl Validator<'_> {
    /// The cluster DNS: CoreDNS (its resources and autoscaler from the
    /// manifests, if they give them), its upstream, and every workload's
    /// `dnsConfig` and headless Service.
    pub(super) fn dns(
        &self,
        at: &[Seg],
        d: &DnsFile,
        extras: &[PodExtras],
        workloads: &[&str],
        from_manifests: Option<&DnsFromManifests>,
    ) -> R<DnsConfig> {
        let field = |n: &[Seg]| [at, &path!["dns"], n].concat();
        let Some(workload) = workloads.iter().position(|w| *w == d.workload) else {
            return Err(self.err(
                &field(&path!["workload"]),
                format!("`{}` is not a workload of this scenario", d.workload),
                format!("workloads: {}", workloads.join(", ")),
            ));
        };
        let qtypes = match d.queries.as_deref() {
            None | Some("A") => QueryTypes::AOnly,
            Some("A+AAAA") => QueryTypes::AAndAaaa,
            Some(other) => {
                return Err(self.err(
                    &field(&path!["queries"]),
                    format!("`{other}` is not a query set"),
                    "write A or A+AAAA",
                ));
            }
        };
        let glibc = match d.glibc.as_deref() {
            None | Some("current") => GlibcVersion::Current,
            Some("legacy") => GlibcVersion::Legacy,
            Some(other) => {
                return Err(self.err(
                    &field(&path!["glibc"]),
                    format!("`{other}` is not a glibc generation"),
                    "write current (today's glibc) or legacy (before the SERVFAIL fix, 2017-2020 images)",
                ));
            }
        };
        let mut coredns = CoreDnsSpec::default();
        if let Some(c) = &d.coredns {
            if let Some(cpu) = c.cpu {
                coredns.cpu_millicores = cpu.0;
            }
            if let Some(m) = c.memory_limit {
                coredns.memory_limit = m.0;
            }
            if let Some(n) = c.cluster_objects {
                coredns.cluster_objects = u64::from(n.0);
            }
            if let Some(n) = c.cache_capacity {
                coredns.cache_capacity = n.0;
            }
            if let Some(t) = c.cache_max_ttl {
                // `cache N` caps both the success and the denial cache.
                coredns.cache_max_ttl = t.0;
                coredns.denial_max_ttl = t.0;
                coredns.cache_min_ttl = coredns.cache_min_ttl.min(t.0);
            }
            if let Some(t) = c.kubernetes_ttl {
                coredns.kubernetes_ttl = t.0;
            }
            if let Some(n) = c.max_concurrent {
                coredns.max_concurrent = Some(n.0);
            }
        }
        if let Some(u) = &d.upstream {
            let mut up = UpstreamSpec::default();
            if let Some(l) = u.latency {
                up.latency = l.0;
            }
            up.failure_probability = u.loss.unwrap_or(0.0);
            up.servfail_probability = u.servfail.unwrap_or(0.0);
            if let Some(t) = u.ttl {
                up.record_ttl = t.0;
            }
            coredns.upstream = up;
        }
        if let Err(e) = coredns.validate() {
            let key = if d.coredns.is_some() {
                "coredns"
            } else {
                "upstream"
            };
            return Err(self.err(
                &field(&path![key]),
                e.to_string(),
                "see the defaults in sim-models/src/coredns.rs (kubeadm: 100m CPU, 170Mi)",
            ));
        }
        let mut pod_dns = BTreeMap::new();
        let mut headless = BTreeSet::new();
        for (i, e) in extras.iter().enumerate() {
            if e.headless {
                headless.insert(i);
            }
            if let Some(c) = &e.pod_dns {
                pod_dns.insert(i, c.clone());
            }
        }
        if let Some(m) = from_manifests {
            self.dns_from_manifests(&field, d, m, &mut coredns)?;
        }
        let config = DnsConfig {
            workload,
            service_ip: d.service_ip.unwrap_or(Ipv4Addr::new(10, 96, 0, 10)),
            qtypes,
            coredns,
            host_search: d.host_search.clone(),
            pod_dns,
            headless,
            glibc,
            node_local: d.node_local_dns.then(|| CoreDnsSpec {
                upstream: coredns.upstream,
                ..CoreDnsSpec::node_local()
            }),
            autoscaler: match &d.autoscaler {
                None => from_manifests.and_then(|m| m.autoscaler.as_ref().map(|(h, _)| *h)),
                Some(h) => {
                    let hp = field(&path!["autoscaler"]);
                    let min = h.min_replicas.map_or(1, |c| c.0);
                    self.replicas_within(
                        &[hp.as_slice(), &path!["max_replicas"]].concat(),
                        h.max_replicas.0,
                    )?;
                    if min == 0 || h.max_replicas.0 < min {
                        return Err(self.err(
                            &hp,
                            format!(
                                "min_replicas {min} and max_replicas {} do not make a range of at least one pod",
                                h.max_replicas.0
                            ),
                            "e.g. autoscaler: {min_replicas: 2, max_replicas: 10, target_cpu_utilization: 70}",
                        ));
                    }
                    if h.target_cpu_utilization.0 == 0 {
                        return Err(self.err(
                            &[&hp[..], &path!["target_cpu_utilization"]].concat(),
                            "target_cpu_utilization 0 would scale to max_replicas at any load",
                            "give a percent of the CPU request, e.g. target_cpu_utilization: 70",
                        ));
                    }
                    Some(HpaSpec {
                        min_replicas: min,
                        max_replicas: h.max_replicas.0,
                        target_utilization: f64::from(h.target_cpu_utilization.0) / 100.0,
                    })
                }
            },
        };
        for e in extras {
            let Some(c) = &e.pod_dns else { continue };
            for (k, a) in c.nameservers.iter().enumerate() {
                if config.route(std::net::IpAddr::V4(*a)).is_none() {
                    let hint = if *a == sim_models::cluster::NODE_LOCAL_DNS_IP {
                        "NodeLocal DNSCache's address needs dns.node_local_dns: true".to_string()
                    } else {
                        format!(
                            "the cluster model routes DNS to the kube-dns ClusterIP {}{}",
                            config.service_ip,
                            if config.node_local.is_some() {
                                " and NodeLocal DNSCache's 169.254.20.10"
                            } else {
                                ""
                            }
                        )
                    };
                    let message =
                        format!("nameserver {a} is not a DNS server this cluster model can reach");
                    return Err(match &e.at {
                        Where::Scenario(p) => {
                            self.err(&[&p[..], &path!["nameservers", k]].concat(), message, hint)
                        }
                        Where::Manifest(at, id) => at_manifest(
                            at,
                            format!(
                                "{id}: spec.template.spec.dnsConfig.nameservers[{k}]: {message}"
                            ),
                            hint,
                        ),
                    });
                }
            }
        }
        for (i, e) in extras.iter().enumerate() {
            if let Err(err) = config.resolv_conf(&e.namespace, i).validate() {
                return Err(match &e.at {
                    Where::Scenario(p) if e.pod_dns.is_some() => {
                        self.err(p, err.to_string(), "see resolv.conf(5)")
                    }
                    Where::Scenario(_) => self.err(
                        &field(&path!["host_search"]),
                        err.to_string(),
                        "see resolv.conf(5)",
                    ),
                    Where::Manifest(at, id) => at_manifest(
                        at,
                        format!("{id}: spec.template.spec.dnsConfig: {err}"),
                        "see resolv.conf(5)",
                    ),
                });
            }
        }
        Ok(config)
    }
}

/// Applies one resolv.conf option with its value to `conf`; the error is
/// (message, hint).
pub(super) fn apply_option(
    conf: &mut PodDnsConfig,
    name: &str,
    value: Option<u64>,
) -> Result<(), (String, String)> {
    let small = |max: u64| -> Result<u8, (String, String)> {
        match value {
            Some(v) if v <= max => Ok(v as u8),
            Some(v) => Err((
                format!("option {name} value {v} is above {max}"),
                format!("glibc accepts {name} up to {max}"),
            )),
            None => Err((
                format!("option {name} needs a value"),
                format!("e.g. {{name: {name}, value: \"2\"}}"),
            )),
        }
    };
    let flag = || -> Result<bool, (String, String)> {
        if value.is_some() {
            return Err((
                format!("option {name} takes no value"),
                "remove value".into(),
            ));
        }
        Ok(true)
    };
    match name {
        "ndots" => conf.ndots = Some(small(15)?),
        "timeout" => conf.timeout = Some(SimDuration::from_secs(u64::from(small(30)?).max(1))),
        "attempts" => conf.attempts = Some(small(5)?.max(1)),
        "single-request" => conf.single_request = flag()?,
        "single-request-reopen" => conf.single_request_reopen = flag()?,
        "rotate" => conf.rotate = flag()?,
        other => {
            return Err((
                format!("resolv.conf option `{other}` is not modelled"),
                did_you_mean(other, &DNS_OPTIONS, "modelled"),
            ))
        }
    }
    Ok(())
}

/// The resolv.conf options the resolver models.
pub(super) const DNS_OPTIONS: [&str; 6] = [
    "ndots",
    "timeout",
    "attempts",
    "single-request",
    "single-request-reopen",
    "rotate",
];

impl Validator<'_> {
    /// Each workload's headless Service, `dnsConfig` and namespace, as the
    /// scenario's `workloads:` entries (written at `wp`) state them.
    pub(super) fn pod_extras(&self, wp: &[Seg], workloads: &[WorkloadFile]) -> R<Vec<PodExtras>> {
        let mut out = Vec::new();
        for (i, w) in workloads.iter().enumerate() {
            let p = [wp, &path!["workloads", i, "dns_config"]].concat();
            let policy_at = [wp, &path!["workloads", i, "dns_policy"]].concat();
            let policy_none = match w.dns_policy.as_deref() {
                None | Some("ClusterFirst") => false,
                Some("None") => true,
                Some(other) => {
                    return Err(self.err(
                        &policy_at,
                        format!("dnsPolicy `{other}` is not modelled"),
                        "write ClusterFirst (the kubelet's resolv.conf) or None (dns_config alone)",
                    ));
                }
            };
            let pod_dns = match &w.dns_config {
                Some(c) if policy_none && c.nameservers.is_empty() => {
                    return Err(self.err(
                        &p,
                        "dnsPolicy None needs at least one nameserver in dns_config",
                        "add nameservers: [10.96.0.10]",
                    ));
                }
                Some(c) => Some(PodDnsConfig {
                    policy_none,
                    ..self.pod_dns_config(&p, c)?
                }),
                None if policy_none => {
                    return Err(self.err(
                        &policy_at,
                        "dnsPolicy None needs a dns_config with nameservers (Kubernetes rejects the pod otherwise)",
                        "add dns_config: {nameservers: [10.96.0.10]}",
                    ));
                }
                None => None,
            };
            out.push(PodExtras {
                namespace: w.namespace.clone().unwrap_or_else(|| "default".into()),
                headless: w.headless,
                pod_dns,
                at: Where::Scenario(p),
            });
        }
        Ok(out)
    }

    /// A scenario workload's `dns_config`, written at `p`.
    fn pod_dns_config(&self, p: &[Seg], c: &PodDnsConfigFile) -> R<PodDnsConfig> {
        let mut conf = PodDnsConfig {
            nameservers: c.nameservers.clone(),
            searches: c.searches.clone(),
            ..PodDnsConfig::default()
        };
        for (k, o) in c.options.iter().enumerate() {
            let op = [p, &path!["options", k]].concat();
            let value = match &o.value {
                None => None,
                Some(OptionValue::Number(n)) => Some(*n),
                Some(OptionValue::Text(t)) => Some(t.trim().parse::<u64>().map_err(|_| {
                    self.err(
                        &op,
                        format!("option {} value `{t}` is not a whole number", o.name),
                        "e.g. {name: ndots, value: \"2\"}",
                    )
                })?),
            };
            apply_option(&mut conf, &o.name, value).map_err(|(m, h)| {
                let at = if DNS_OPTIONS.contains(&o.name.as_str()) {
                    op.clone()
                } else {
                    [&op[..], &path!["name"]].concat()
                };
                self.err(&at, m, h)
            })?;
        }
        Ok(conf)
    }

    /// CoreDNS's CPU and memory limit from the DNS workload's manifest; the
    /// `dns` section may not state them again.
    fn dns_from_manifests(
        &self,
        field: &dyn Fn(&[Seg]) -> Vec<Seg>,
        d: &DnsFile,
        m: &DnsFromManifests,
        coredns: &mut CoreDnsSpec,
    ) -> R<()> {
        let repeated = |key: &[Seg], what: &str, at: &sim_models::netpol::manifest::Loc| {
            self.err(
                &field(key),
                format!("{what} is stated by the manifests ({at})"),
                "remove it here: a scenario adds only what the manifests do not say",
            )
        };
        let c = d.coredns.as_ref();
        if let Some((cpu, at)) = &m.cpu {
            if c.is_some_and(|c| c.cpu.is_some()) {
                return Err(repeated(&path!["coredns", "cpu"], "CoreDNS's CPU", at));
            }
            coredns.cpu_millicores = *cpu;
        }
        if let Some((mem, at)) = &m.memory_limit {
            if c.is_some_and(|c| c.memory_limit.is_some()) {
                return Err(repeated(
                    &path!["coredns", "memory_limit"],
                    "CoreDNS's memory limit",
                    at,
                ));
            }
            coredns.memory_limit = *mem;
        }
        if let (Some((_, at)), Some(_)) = (&m.autoscaler, &d.autoscaler) {
            return Err(repeated(&path!["autoscaler"], "CoreDNS's autoscaler", at));
        }
        let at = m.cpu.as_ref().map(|(_, a)| a);
        if let Some(at) = at.or(m.memory_limit.as_ref().map(|(_, a)| a)) {
            if let Err(e) = coredns.validate() {
                return Err(at_manifest(
                    at,
                    format!("the DNS workload's resources: {e}"),
                    "CoreDNS needs at least 1m of CPU and a memory limit above its base use",
                ));
            }
        }
        Ok(())
    }
}
