//! The cluster DNS: the `dns` section and the workloads' `dns_config`.
//!
//! # Scope
//! CoreDNS's resources and Corefile settings (kubeadm's defaults), its
//! upstream, NodeLocal DNSCache, a CPU autoscaler, and each pod's
//! resolv.conf (checked against resolv.conf(5) and glibc's limits).
//!
//! # Validation
//! Every error names the field it is about (`file:line:column`) with a hint.

use super::{OptionValue, Validator, WorkloadFile, R};
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
    /// The cluster DNS: CoreDNS, its upstream, and every workload's
    /// `dnsConfig` and headless Service.
    pub(super) fn dns(
        &self,
        at: &[Seg],
        d: &DnsFile,
        workload_files: &[WorkloadFile],
        wp: &[Seg],
        workloads: &[&str],
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
        for (i, w) in workload_files.iter().enumerate() {
            if w.headless {
                headless.insert(i);
            }
            let policy_none = match w.dns_policy.as_deref() {
                None | Some("ClusterFirst") => false,
                Some("None") => true,
                Some(other) => {
                    return Err(self.err(
                        &[wp, &path!["workloads", i, "dns_policy"]].concat(),
                        format!("dnsPolicy `{other}` is not modelled"),
                        "write ClusterFirst (the kubelet's resolv.conf) or None (dns_config alone)",
                    ));
                }
            };
            let Some(c) = &w.dns_config else {
                if policy_none {
                    return Err(self.err(
                        &[wp, &path!["workloads", i, "dns_policy"]].concat(),
                        "dnsPolicy None needs a dns_config with nameservers (Kubernetes rejects the pod otherwise)",
                        "add dns_config: {nameservers: [10.96.0.10]}",
                    ));
                }
                continue;
            };
            let p = [wp, &path!["workloads", i, "dns_config"]].concat();
            if policy_none && c.nameservers.is_empty() {
                return Err(self.err(
                    &p,
                    "dnsPolicy None needs at least one nameserver in dns_config",
                    "add nameservers: [10.96.0.10]",
                ));
            }
            let mut conf = PodDnsConfig {
                policy_none,
                nameservers: c.nameservers.clone(),
                searches: c.searches.clone(),
                ..PodDnsConfig::default()
            };
            for (k, o) in c.options.iter().enumerate() {
                let op = [&p[..], &path!["options", k]].concat();
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
                let small = |max: u64| -> R<u8> {
                    match value {
                        Some(v) if v <= max => Ok(v as u8),
                        Some(v) => Err(self.err(
                            &op,
                            format!("option {} value {v} is above {max}", o.name),
                            format!("glibc accepts {} up to {max}", o.name),
                        )),
                        None => Err(self.err(
                            &op,
                            format!("option {} needs a value", o.name),
                            format!("e.g. {{name: {}, value: \"2\"}}", o.name),
                        )),
                    }
                };
                let flag = || -> R<bool> {
                    if value.is_some() {
                        return Err(self.err(
                            &op,
                            format!("option {} takes no value", o.name),
                            "remove value",
                        ));
                    }
                    Ok(true)
                };
                match o.name.as_str() {
                    "ndots" => conf.ndots = Some(small(15)?),
                    "timeout" => {
                        conf.timeout = Some(SimDuration::from_secs(u64::from(small(30)?).max(1)))
                    }
                    "attempts" => conf.attempts = Some(small(5)?.max(1)),
                    "single-request" => conf.single_request = flag()?,
                    "single-request-reopen" => conf.single_request_reopen = flag()?,
                    "rotate" => conf.rotate = flag()?,
                    other => {
                        let known = [
                            "ndots",
                            "timeout",
                            "attempts",
                            "single-request",
                            "single-request-reopen",
                            "rotate",
                        ];
                        return Err(self.err(
                            &[&op[..], &path!["name"]].concat(),
                            format!("resolv.conf option `{other}` is not modelled"),
                            did_you_mean(other, &known, "modelled"),
                        ));
                    }
                }
            }
            pod_dns.insert(i, conf);
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
                None => None,
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
        for (i, w) in workload_files.iter().enumerate() {
            let Some(c) = &w.dns_config else { continue };
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
                    return Err(self.err(
                        &[wp, &path!["workloads", i, "dns_config", "nameservers", k]].concat(),
                        format!("nameserver {a} is not a DNS server this cluster model can reach"),
                        hint,
                    ));
                }
            }
        }
        for (i, w) in workload_files.iter().enumerate() {
            let ns = w.namespace.as_deref().unwrap_or("default");
            if let Err(e) = config.resolv_conf(ns, i).validate() {
                let p = if w.dns_config.is_some() {
                    [wp, &path!["workloads", i, "dns_config"]].concat()
                } else {
                    field(&path!["host_search"])
                };
                return Err(self.err(&p, e.to_string(), "see resolv.conf(5)"));
            }
        }
        Ok(config)
    }
}
