//! The data path: the `network` section.
//!
//! # Scope
//! The CNI and NetworkPolicy sets (inline or from manifest files), the
//! nodes' conntrack tables (kube-proxy's or the kernel's sizing), the
//! MASQUERADE port race, and kube-proxy's mode and costs (defaults and
//! sources in sim-models `conntrack`, `snat` and `kube_proxy`).
//!
//! # Validation
//! Every error names the field it is about (`file:line:column`) with a hint.

use super::manifests::FromManifests;
use super::{NamespaceFile, Sections, Validator, R};
use crate::envelope::{did_you_mean, Locate};
use crate::error::InputError;
use crate::locate::Seg;
use crate::path;
use crate::units::{Count, Duration};
use schemars::JsonSchema;
use serde::Deserialize;
use sim_core::SimDuration;
use sim_models::cluster::{ConntrackSetup, DnsConfig};
use sim_models::conntrack::{self, ConntrackConfig, DataPath, Kernel, Timeouts};
use sim_models::datapath::cni::Cni;
use sim_models::kube_proxy::{KubeProxyConfig, Mode};
use sim_models::netpol::{parse_manifests, Namespace};
use sim_models::policy_enforcement::PolicyConfig;
use sim_models::resolver::QueryTypes;
use sim_models::snat::{PortChoice, SnatConfig};
use std::collections::BTreeMap;

/// The CNI and the NetworkPolicy sets.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkFile {
    /// `calico`, `cilium` or `flannel` ([`Cni::plugin_default`]).
    pub cni: String,
    /// From a policy change to its effect in the data path (required when
    /// the timeline changes policies).
    pub policy_delay: Option<Duration>,
    /// Named sets of NetworkPolicy manifests, each a YAML text (several
    /// documents separated by `---`).
    #[serde(default)]
    pub policy_sets: BTreeMap<String, String>,
    /// Named sets read from manifest files (paths relative to the scenario
    /// file), as users keep them beside their workloads.
    #[serde(default)]
    pub policy_files: BTreeMap<String, String>,
    /// Sets active at T+0.
    #[serde(default)]
    pub active: Vec<String>,
    /// Every node's netfilter conntrack table (default: not modelled).
    pub conntrack: Option<ConntrackFile>,
    /// The Service data path: kube-proxy's mode and its parameters
    /// (default: an ideal data path that follows endpoints at once).
    pub kube_proxy: Option<KubeProxyFile>,
    /// The cluster's other Services, which only add rules (needs `kube_proxy`).
    pub services: Option<OtherServicesFile>,
    /// The nodes' MASQUERADE rule for traffic with `snat: true` (needs
    /// `conntrack`).
    pub masquerade: Option<MasqueradeFile>,
    /// The cloud's NAT gateways for traffic with `external` (default: not
    /// modelled).
    pub nat_gateways: Option<super::nat::NatGatewaysFile>,
    /// How the cloud bills bytes between zones (default: not counted).
    pub billing: Option<super::billing::BillingFile>,
}

/// kube-proxy (or the eBPF agent replacing it) and its parameters; every
/// parameter but `mode` has a calibrated default (sim-models `kube_proxy`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubeProxyFile {
    /// `iptables`, `ipvs`, `nftables` or `ebpf`.
    #[schemars(schema_with = "proxy_mode_schema")]
    pub mode: Mode,
    /// `--iptables-sync-period` (default 30s).
    pub sync_period: Option<Duration>,
    /// `--iptables-min-sync-period` (default 1s; ebpf 0).
    pub min_sync_period: Option<Duration>,
    /// iptables: partial restores, KEP-3453 (default true; false for
    /// kube-proxy 1.26 and older).
    pub partial_restores: Option<bool>,
    /// iptables: time per rule walked (default 15ns).
    pub per_rule: Option<Duration>,
    /// iptables: log-normal sigma of the walk's spread (default 0.35).
    pub walk_sigma: Option<f64>,
    /// ipvs, nftables, ebpf: lookup time above the measured path (default 0).
    pub hash_lookup: Option<Duration>,
    /// Programming time per rule line or object (default 18.39us, #96018).
    pub per_line: Option<Duration>,
}

/// The cluster's other Services.
/// kube-proxy's modes by the names `--proxy-mode` takes.
fn proxy_mode_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let names: Vec<&str> = Mode::ALL.iter().map(|m| m.name()).collect();
    schemars::json_schema!({"type": "string", "enum": names})
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OtherServicesFile {
    /// How many Service ports besides the workloads' own.
    pub count: Count,
    /// Endpoints of each.
    pub endpoints: Count,
}

/// MASQUERADE's source-port choice.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MasqueradeFile {
    /// `--random-fully` (default false).
    #[serde(default)]
    pub random_fully: bool,
    /// From the NAT decision to conntrack confirmation of a new flow (an
    /// assumption: no published measurement).
    pub race_window: Duration,
}

/// The conntrack table of every node.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConntrackFile {
    /// Who sets the table up: `kube-proxy` (default: nf_conntrack_max =
    /// max(32768 x cores, 131072), TCP established 86400 s, close_wait
    /// 3600 s) or `kernel` (buckets = RAM / 16384, max per kernel release,
    /// the kernel's timeouts).
    pub sized_by: Option<SizedBy>,
    /// Kernel release profile: `3.10`, `4.19` or `5.15` (default).
    pub kernel: Option<String>,
    /// CPU cores per node (for kube-proxy's formula).
    pub node_cores: Option<Count>,
    /// Memory per node \[GiB\] (for the kernel's formula and the buckets).
    pub node_memory_gib: Option<Count>,
    /// `nf_conntrack_max` set by hand \[entries\]; overrides the formulas.
    pub max: Option<Count>,
    /// Share of same-socket UDP pairs (glibc's parallel A and AAAA) two
    /// CPUs put through conntrack at once, racing to insert the flow's
    /// entry, 0..1 (an assumption: no published measurement). Required
    /// when such pairs go through a kernel that can drop the loser.
    pub udp_pair_concurrency: Option<f64>,
    /// kube-proxy deletes the UDP entries of a removed endpoint (default
    /// true; false: the deletion fails, as in Preply's 2020 postmortem).
    pub flush_udp_on_endpoint_removal: Option<bool>,
}

/// Who sizes the conntrack table.
#[derive(Debug, Deserialize, JsonSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum SizedBy {
    /// kube-proxy's `conntrack` settings.
    KubeProxy,
    /// The kernel's defaults.
    Kernel,
}

impl Validator<'_> {
    /// The data path of the `network` section: NetworkPolicy, the conntrack
    /// tables (with MASQUERADE's port race) and kube-proxy.
    pub(super) fn data_path(
        &self,
        sec: &Sections<'_>,
        namespaces: &[NamespaceFile],
        dns: Option<&DnsConfig>,
        manifests: Option<&FromManifests>,
    ) -> R<DataPathParts> {
        let policy = match sec.network.0 {
            Some(n) => Some(self.network(&sec.network.1, n, namespaces, manifests)?),
            None => {
                if let Some((_, _, file)) = manifests.and_then(|m| m.policy_sets.first()) {
                    return Err(self.err(
                        &manifests.map(|m| m.at.clone()).unwrap_or_default(),
                        format!("the manifests hold NetworkPolicies ({file}) and the scenario has no network section to enforce them"),
                        "add network: {cni: calico} (or cilium, flannel)",
                    ));
                }
                None
            }
        };
        let mut conntrack = match sec.network.0.and_then(|n| n.conntrack.as_ref()) {
            Some(c) => Some(self.conntrack(
                &[&sec.network.1[..], &path!["network", "conntrack"]].concat(),
                c,
            )?),
            None => None,
        };
        let kube_proxy = match sec.network.0 {
            Some(n) => self.kube_proxy(&sec.network.1, n)?,
            None => None,
        };
        if let (Some(ct), Some(Mode::Ebpf)) =
            (conntrack.as_mut(), kube_proxy.as_ref().map(|k| k.mode))
        {
            // The eBPF load balancer tracks pod flows in its own maps.
            ct.datapath = DataPath::Ebpf;
        }
        if let (Some(ct), Some(d), Some(c)) = (
            conntrack.as_ref(),
            dns.as_ref(),
            sec.network.0.and_then(|n| n.conntrack.as_ref()),
        ) {
            let races = d.qtypes == QueryTypes::AAndAaaa
                && ct.datapath.tracks_pod_flows()
                && ct.table.kernel != Kernel::V5_15;
            if races && c.udp_pair_concurrency.is_none() {
                return Err(self.err(
                    &[&sec.network.1[..], &path!["network", "conntrack"]].concat(),
                    format!(
                        "A and AAAA leave on one socket through kube-dns's DNAT, and kernel {} can drop the second when both race to insert the entry; how often they race is not known",
                        ct.table.kernel.name()
                    ),
                    "state it: udp_pair_concurrency: 0.05 (an assumption), or 0 to leave the race out",
                ));
            }
        }
        if let Some(m) = sec.network.0.and_then(|n| n.masquerade.as_ref()) {
            let mp = [&sec.network.1[..], &path!["network", "masquerade"]].concat();
            let Some(ct) = conntrack.as_mut() else {
                return Err(self.err(
                    &mp,
                    "masquerade needs network.conntrack: the port race is a conntrack insert race",
                    "add conntrack: {sized_by: kube-proxy, node_cores: 4}",
                ));
            };
            if m.race_window.0 == SimDuration::ZERO {
                return Err(self.err(
                    &[&mp[..], &path!["race_window"]].concat(),
                    "race_window is 0: no race could happen",
                    "give the NAT-to-confirm time, e.g. race_window: 5us",
                ));
            }
            ct.snat = Some(SnatConfig {
                ports: if m.random_fully {
                    PortChoice::RandomFully
                } else {
                    PortChoice::Default
                },
                race_window: m.race_window.0,
            });
        }

        Ok((policy, conntrack, kube_proxy))
    }

    /// The CNI and the policy sets; a manifest error is reported at its
    /// place inside the scenario file (policy sets are `|` blocks).
    pub(crate) fn network(
        &self,
        at: &[Seg],
        n: &NetworkFile,
        namespaces: &[NamespaceFile],
        manifests: Option<&FromManifests>,
    ) -> R<PolicyConfig> {
        let Some(cni) = Cni::plugin_default(&n.cni) else {
            return Err(self.err(
                &[at, &path!["network", "cni"]].concat(),
                format!("`{}` is not a CNI plugin a cluster scenario knows", n.cni),
                did_you_mean(&n.cni, &Cni::PLUGINS, "valid here"),
            ));
        };
        let mut sets = Vec::new();
        for (name, text) in &n.policy_sets {
            let key = [at, &path!["network", "policy_sets", name.as_str()]].concat();
            let manifests =
                parse_manifests(&[(self.file.to_string(), text.clone())]).map_err(|e| {
                    let (line, col) = self.pos.find(&key);
                    // A `|` block starts on the line after its key, indented.
                    let indent = self
                        .text
                        .lines()
                        .nth(line)
                        .map_or(0, |l| l.len() - l.trim_start().len());
                    let at = if e.line > 0 {
                        (line + e.line, indent + e.column)
                    } else {
                        (line, col)
                    };
                    InputError::at(
                        self.file,
                        at,
                        format!("policy set `{name}`: {}", e.message),
                        e.hint,
                    )
                })?;
            sets.push((name.clone(), manifests.cluster.policies().to_vec()));
        }
        for (name, rel) in &n.policy_files {
            let key = [at, &path!["network", "policy_files", name.as_str()]].concat();
            if n.policy_sets.contains_key(name) {
                return Err(self.err(
                    &key,
                    format!("policy set `{name}` is defined inline and as a file"),
                    "give the two sets different names",
                ));
            }
            let dir = std::path::Path::new(self.file)
                .parent()
                .unwrap_or(std::path::Path::new("."));
            let path = dir.join(rel);
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(&path).map_err(|e| {
                self.err(
                    &key,
                    format!("cannot read {shown}: {e}"),
                    "paths are relative to the scenario file",
                )
            })?;
            let manifests = parse_manifests(&[(shown.clone(), text)]).map_err(|e| InputError {
                file: e.file.clone(),
                at: (e.line > 0).then_some((e.line, e.column)),
                message: format!("policy set `{name}`: {}", e.message),
                hint: e.hint.clone(),
            })?;
            sets.push((name.clone(), manifests.cluster.policies().to_vec()));
        }
        for (name, policies, file) in manifests.iter().flat_map(|m| &m.policy_sets) {
            if sets.iter().any(|(n, _)| n == name) {
                return Err(InputError::whole(
                    file,
                    format!("policy set `{name}` (this file's name) is also a set of the scenario's network section"),
                    "give the scenario's set another name",
                ));
            }
            sets.push((name.clone(), policies.clone()));
        }
        let mut active = Vec::new();
        for (i, a) in n.active.iter().enumerate() {
            let Some(k) = sets.iter().position(|(name, _)| name == a) else {
                let known: Vec<&str> = sets.iter().map(|(n, _)| n.as_str()).collect();
                return Err(self.err(
                    &[at, &path!["network", "active", i]].concat(),
                    format!("no policy set is called `{a}`"),
                    format!("policy sets: {}", known.join(", ")),
                ));
            };
            active.push(k);
        }
        // Manifest sets are active from the start.
        for (name, _, _) in manifests.iter().flat_map(|m| &m.policy_sets) {
            let k = sets
                .iter()
                .position(|(n, _)| n == name)
                .expect("pushed above");
            if !active.contains(&k) {
                active.push(k);
            }
        }
        let mut all_namespaces: Vec<Namespace> = namespaces
            .iter()
            .map(|ns| Namespace {
                name: ns.name.clone(),
                labels: ns.labels.clone(),
            })
            .collect();
        for (ns, at) in manifests.iter().flat_map(|m| &m.namespaces) {
            if all_namespaces.iter().any(|n| n.name == ns.name) {
                return Err(super::manifests::at_manifest(
                    at,
                    format!("Namespace {} is also in the scenario's namespaces", ns.name),
                    "state it in one place: remove it from the scenario's namespaces",
                ));
            }
            all_namespaces.push(ns.clone());
        }
        Ok(PolicyConfig {
            cni,
            delay: n.policy_delay.map_or(SimDuration::ZERO, |d| d.0),
            sets,
            active,
            namespaces: all_namespaces,
        })
    }

    /// Every node's conntrack table.
    pub(crate) fn conntrack(&self, p: &[Seg], c: &ConntrackFile) -> R<ConntrackSetup> {
        let kernel = match &c.kernel {
            None => Kernel::V5_15,
            Some(k) => Kernel::parse(k).ok_or_else(|| {
                let known: Vec<&str> = Kernel::ALL.iter().map(|k| k.name()).collect();
                self.err(
                    &[p, &path!["kernel"]].concat(),
                    format!("no kernel profile `{k}`"),
                    format!("profiles (write them quoted): {}", known.join(", ")),
                )
            })?,
        };
        let ram = c.node_memory_gib.map(|g| u64::from(g.0) << 30);
        let sized_by = c.sized_by.unwrap_or(SizedBy::KubeProxy);
        let table = match (sized_by, c.max, c.node_cores, ram) {
            (SizedBy::KubeProxy, None, Some(cores), _) => {
                ConntrackConfig::kube_proxy(ram.unwrap_or(0), cores.0, kernel)
            }
            (SizedBy::KubeProxy, None, None, _) => {
                return Err(self.err(
                    p,
                    "kube-proxy sizes the table from the node's cores, and node_cores is not given",
                    "add node_cores: 4 (or set max: N by hand)",
                ))
            }
            (SizedBy::Kernel, None, _, Some(ram)) => ConntrackConfig::kernel_default(ram, kernel),
            (SizedBy::Kernel, None, _, None) => {
                return Err(self.err(
                    p,
                    "the kernel sizes the table from the node's memory, and node_memory_gib is not given",
                    "add node_memory_gib: 8 (or set max: N by hand)",
                ))
            }
            (by, Some(max), _, _) => {
                if max.0 == 0 {
                    return Err(self.err(
                        &[p, &path!["max"]].concat(),
                        "max is 0: no flow could ever be tracked",
                        "give nf_conntrack_max in entries, e.g. max: 131072",
                    ));
                }
                let max = u64::from(max.0);
                let buckets = ram
                    .map_or(max / 4, |r| conntrack::kernel_buckets(r, kernel))
                    .max(1);
                ConntrackConfig {
                    max,
                    buckets,
                    timeouts: match by {
                        SizedBy::KubeProxy => Timeouts::kube_proxy(),
                        SizedBy::Kernel => Timeouts::kernel(),
                    },
                    kernel,
                }
            }
        };
        let udp_pair_concurrency = match c.udp_pair_concurrency {
            None => 0.0,
            Some(x) if (0.0..=1.0).contains(&x) => x,
            Some(x) => return Err(self.err(
                &[p, &path!["udp_pair_concurrency"]].concat(),
                format!("udp_pair_concurrency {x} is not a share in 0..1"),
                "give the share of A/AAAA pairs processed at once, e.g. udp_pair_concurrency: 0.05",
            )),
        };
        Ok(ConntrackSetup {
            table,
            datapath: DataPath::Netfilter,
            snat: None,
            udp_pair_concurrency,
            flush_udp_on_endpoint_removal: c.flush_udp_on_endpoint_removal.unwrap_or(true),
        })
    }

    /// The Service data path of a `network` section written at `at`.
    pub(crate) fn kube_proxy(&self, at: &[Seg], n: &NetworkFile) -> R<Option<KubeProxyConfig>> {
        let np = [at, &path!["network"]].concat();
        let Some(k) = &n.kube_proxy else {
            if n.services.is_some() {
                return Err(self.err(
                    &[&np[..], &path!["services"]].concat(),
                    "`services` only adds rules to kube-proxy's data path, and no kube_proxy is given",
                    "add kube_proxy: {mode: iptables} (or ipvs, nftables, ebpf)",
                ));
            }
            return Ok(None);
        };
        let kp = [&np[..], &path!["kube_proxy"]].concat();
        let field = |f: &str| [&kp[..], &path![f]].concat();
        let mode = k.mode;
        if mode == Mode::Ebpf && n.cni == "flannel" {
            return Err(self.err(
                &field("mode"),
                "flannel has no eBPF service load balancer",
                "eBPF service load balancing comes with cni: cilium (kubeProxyReplacement) or calico's eBPF data plane",
            ));
        }
        let mut cfg = KubeProxyConfig::new(mode);
        let only = |f: &str, given: bool, ok: bool, what: &str| -> R<()> {
            if given && !ok {
                return Err(self.err(
                    &field(f),
                    format!("`{f}` applies to {what}, not to mode {}", mode.name()),
                    "remove it, or change the mode",
                ));
            }
            Ok(())
        };
        let iptables = mode == Mode::Iptables;
        only(
            "partial_restores",
            k.partial_restores.is_some(),
            iptables,
            "mode iptables",
        )?;
        only(
            "per_rule",
            k.per_rule.is_some(),
            iptables,
            "mode iptables (the rule walk)",
        )?;
        only(
            "walk_sigma",
            k.walk_sigma.is_some(),
            iptables,
            "mode iptables (the rule walk)",
        )?;
        only(
            "hash_lookup",
            k.hash_lookup.is_some(),
            !iptables,
            "the hash modes: ipvs, nftables, ebpf",
        )?;
        if let Some(d) = k.sync_period {
            if d.0 == SimDuration::ZERO {
                return Err(self.err(
                    &field("sync_period"),
                    "sync_period is 0",
                    "kube-proxy's default is 30s",
                ));
            }
            cfg.sync_period = d.0;
        }
        if let Some(d) = k.min_sync_period {
            cfg.min_sync_period = d.0;
        }
        if cfg.min_sync_period > cfg.sync_period {
            return Err(self.err(
                &field("min_sync_period"),
                format!(
                    "min_sync_period {} is longer than sync_period {}",
                    cfg.min_sync_period, cfg.sync_period
                ),
                "kube-proxy's defaults are min_sync_period 1s, sync_period 30s",
            ));
        }
        if let Some(p) = k.partial_restores {
            cfg.partial_restores = p;
        }
        if let Some(d) = k.per_rule {
            cfg.costs.per_rule = d.0;
        }
        if let Some(s) = k.walk_sigma {
            if !(0.0..=3.0).contains(&s) {
                return Err(self.err(
                    &field("walk_sigma"),
                    format!("walk_sigma {s} is outside 0..3"),
                    "the default, fitted to KEP-3866, is 0.35",
                ));
            }
            cfg.costs.walk_sigma = s;
        }
        if let Some(d) = k.hash_lookup {
            cfg.costs.hash_lookup = d.0;
        }
        if let Some(d) = k.per_line {
            cfg.costs.per_line = d.0;
        }
        if let Some(o) = &n.services {
            cfg.other_services = u64::from(o.count.0);
            cfg.other_endpoints = u64::from(o.endpoints.0);
        }
        Ok(Some(cfg))
    }
}

/// What the `network` section configures: NetworkPolicy, the conntrack
/// tables and kube-proxy, each if given.
pub(super) type DataPathParts = (
    Option<PolicyConfig>,
    Option<ConntrackSetup>,
    Option<KubeProxyConfig>,
);
