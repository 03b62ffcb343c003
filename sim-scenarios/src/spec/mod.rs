//! The scenario file format.
//!
//! A scenario states a cluster, its workloads and their traffic, a timeline
//! of actions, what to measure, and `expect:` assertions, so that a replay
//! checks itself. `variants:` run the same story with some sections replaced
//! (the fix beside the outage). Every field is checked: an unknown or
//! misspelt field is an error, never a silent default, and every error names
//! `file:line:column`, what is wrong and a hint.
//! The envelope this format shares with packet-level scenarios (variants,
//! thresholds, located errors) is in [`crate::envelope`].
//!
//! # Layout
//! This module holds the top level (`parse`, the variant merge, windows)
//! and builds each variant from its sections; each section's file structs
//! and validation live in a file named for what it reads: `cluster.rs`
//! (nodes, IPAM), `workloads.rs`, `mesh.rs` (the service mesh), `manifests.rs` (workloads, Services,
//! policies and an autoscaler from Kubernetes manifests, `cluster.manifests`),
//! `dns.rs`, `traffic.rs`, `network.rs` (NetworkPolicy, conntrack,
//! kube-proxy), `timeline.rs` and `expect.rs`.
//!
//! ```yaml
//! name: black_friday_cidr
//! summary: A /24 pod network meets a region failover
//! duration: 3h30m
//! sample_every: 1m
//! variant: {name: broken, description: the story's /24}
//! cluster:
//!   nodes: {count: 8, zones: [us-west-2a, us-west-2b], max_pods: 110}
//!   ipam: {mode: flat, pod_cidr: 10.0.0.0/24}
//! workloads:
//!   - {name: checkout, replicas: 50, startup: 20s, ready_after: 10s,
//!      concurrency: 2, service_time: 800ms}
//! traffic:
//!   - {to: checkout, rate: 100/s, timeout: 10s}
//! timeline:
//!   - {at: 10m, scale: checkout, replicas: 500}
//!   - {at: 10m, traffic: checkout, rate: 1000/s}
//! measure:
//!   windows: [{name: failover, from: 20m, to: 3h10m}]
//! expect:
//!   - {metric: pods_pending, workload: checkout, at: 1h, equals: 246}
//! variants:
//!   - name: fix
//!     description: a /22
//!     cluster: {nodes: {count: 8, zones: \[a\]}, ipam: {mode: flat, pod_cidr: 10.0.0.0/22}}
//!     expect: [{metric: pods_pending, workload: checkout, at: 1h, equals: 0}]
//! ```

use crate::envelope::{self, did_you_mean, serde_error, Locate, VariantLabel};
use crate::error::InputError;
use crate::locate::{Positions, Seg};
use crate::path;
use crate::units::Duration;
use schemars::JsonSchema;
use serde::Deserialize;
use sim_core::SimDuration;
use sim_models::cluster::{ClusterConfig, WindowSpec};
use sim_models::ipam::IpamLayout;
use sim_models::policy_enforcement::PolicyConfig;
use sim_models::topology::{spread_nodes, NodeSpec, DEFAULT_MAX_PODS};

mod billing;
mod cluster;
mod dns;
mod expect;
mod manifests;
mod mesh;
mod mesh_l7;
mod mesh_lifecycle;
mod nat;
mod network;
mod services;
mod timeline;
mod traffic;
mod via;
mod workloads;

pub use billing::{BillingFile, BillingRule};
pub use cluster::{AllocatorName, ClusterFile, IpamFile, IpamMode, NodesFile};
pub use dns::{CoreDnsFile, DnsFile, HpaFile, UpstreamFile};
pub use expect::{ExpectFile, Expectation, Probe};
pub use mesh::{MeshFile, MeshModeName, ProxyName, ProxyResourcesFile};
pub use mesh_lifecycle::{LifecycleFile, ListenRangeFile};
pub use nat::{NatGatewayFile, NatGatewaysFile};
pub use network::{
    ConntrackFile, KubeProxyFile, MasqueradeFile, NetworkFile, OtherServicesFile, SizedBy,
};
pub use services::{
    DistributionName, EdgeFile, NodePortAddressesFile, PolicyName, PortsFile, ServiceFile,
    ServicePortFile, ServiceTypeName, SgRuleFile,
};
pub use timeline::{NodeNames, TimelineFile};
pub use traffic::{ConnectionsFile, ConnectionsMap, KeepAliveFile, ResolveFile, TrafficFile};
pub use workloads::{
    DnsOptionFile, KindName, NamespaceFile, OptionValue, PodDnsConfigFile, WorkloadFile,
};

/// A scenario file as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Short name (`black_friday_cidr`).
    pub name: String,
    /// One line saying what it replays.
    pub summary: String,
    /// The story, for reports.
    #[serde(default)]
    pub story: String,
    /// Simulated time to run.
    pub duration: Duration,
    /// Time-series sampling period.
    pub sample_every: Duration,
    /// Name and description of the configuration the top level describes.
    #[serde(default)]
    pub variant: Option<VariantLabel>,
    /// The cluster.
    pub cluster: ClusterFile,
    /// Deployments.
    pub workloads: Vec<WorkloadFile>,
    /// Namespaces and their labels (others are created without labels).
    #[serde(default)]
    pub namespaces: Vec<NamespaceFile>,
    /// The CNI and NetworkPolicy.
    #[serde(default)]
    pub network: Option<NetworkFile>,
    /// The cluster DNS.
    #[serde(default)]
    pub dns: Option<DnsFile>,
    /// Clients.
    #[serde(default)]
    pub traffic: Vec<TrafficFile>,
    /// Actions at times.
    #[serde(default)]
    pub timeline: Vec<TimelineFile>,
    /// Measurement windows.
    #[serde(default)]
    pub measure: Option<MeasureFile>,
    /// Assertions on the top-level configuration.
    #[serde(default)]
    pub expect: Vec<ExpectFile>,
    /// Other configurations of the same story.
    #[serde(default)]
    pub variants: Vec<VariantFile>,
    /// Services apart from the workloads (a workload no Service selects
    /// keeps an implicit Service of its own name).
    #[serde(default)]
    pub services: Vec<ServiceFile>,
    /// What is in front of the nodes: `nodePortAddresses`, a security group.
    #[serde(default)]
    pub edge: Option<EdgeFile>,
    /// The service mesh (default none).
    #[serde(default)]
    pub mesh: Option<MeshFile>,
}

/// A variant: the top level with some sections replaced.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantFile {
    /// Short name.
    pub name: String,
    /// What differs.
    #[serde(default)]
    pub description: String,
    /// Replaces the cluster.
    pub cluster: Option<ClusterFile>,
    /// Replaces the workloads.
    pub workloads: Option<Vec<WorkloadFile>>,
    /// Replaces the traffic.
    pub traffic: Option<Vec<TrafficFile>>,
    /// Replaces the timeline.
    pub timeline: Option<Vec<TimelineFile>>,
    /// Replaces the network section.
    pub network: Option<NetworkFile>,
    /// Replaces the dns section.
    pub dns: Option<DnsFile>,
    /// Assertions on this variant (not inherited).
    #[serde(default)]
    pub expect: Vec<ExpectFile>,
    /// Replaces the services.
    pub services: Option<Vec<ServiceFile>>,
    /// Replaces the edge section.
    pub edge: Option<EdgeFile>,
    /// Replaces the mesh section.
    pub mesh: Option<MeshFile>,
}

/// What to measure.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MeasureFile {
    /// Named windows.
    #[serde(default)]
    pub windows: Vec<WindowFile>,
}

/// One window.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowFile {
    /// Name.
    pub name: String,
    /// Start.
    pub from: Duration,
    /// End.
    pub to: Duration,
}

/// One runnable configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// Short name.
    pub name: String,
    /// What differs.
    pub description: String,
    /// The model configuration.
    pub config: ClusterConfig,
    /// Its assertions.
    pub expect: Vec<Expectation>,
    /// What its manifests hold that the model skips or does not model
    /// (`skipped: ...`, `note: ...`), in input order.
    pub notes: Vec<String>,
}

/// A validated scenario.
pub type Scenario = envelope::Scenario<Variant>;

/// Parses and validates scenario text; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Scenario, InputError> {
    let empty = text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---"
    });
    if empty {
        return Err(InputError::whole(
            file,
            "the file is empty",
            "a scenario needs at least name, summary, duration, sample_every, cluster and workloads; \
             `knsim list` shows bundled scenarios to start from",
        ));
    }
    let raw: ScenarioFile = serde_yaml_ng::from_str(text).map_err(|e| {
        let mut err = serde_error(file, &e);
        if err.at.is_none() && err.message.contains("more than one document") {
            // serde_yaml_ng gives no position here: point at the second
            // document's separator.
            let sep = text
                .lines()
                .enumerate()
                .filter(|(_, l)| {
                    l.strip_prefix("---")
                        .is_some_and(|r| r.is_empty() || r.starts_with([' ', '\t']))
                })
                .map(|(i, _)| i + 1)
                .find(|&i| i > 1);
            err.at = sep.map(|line| (line, 1));
            err.hint = "a scenario is one YAML document: remove the `---` line".into();
        }
        err
    })?;
    let pos = Positions::of(text);
    Validator {
        file,
        text,
        pos: &pos,
    }
    .scenario(raw)
}

/// Reads and validates a scenario file.
pub fn load(path: &std::path::Path) -> Result<Scenario, InputError> {
    let (file, text) = read(path)?;
    parse(&file, &text)
}

/// Reads a scenario file: (its name for errors, its text).
pub fn read(path: &std::path::Path) -> Result<(String, String), InputError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            "check the path; `knsim list` shows the bundled scenarios, which `knsim run NAME` accepts"
        } else {
            "the file must be readable UTF-8 text"
        };
        InputError::whole(&file, format!("cannot read the file: {e}"), hint)
    })?;
    Ok((file, text))
}

/// The sections one variant is built from, each with the path it was
/// written at (empty: the top level).
struct Sections<'f> {
    at: Vec<Seg>,
    cluster: (&'f ClusterFile, Vec<Seg>),
    workloads: (&'f [WorkloadFile], Vec<Seg>),
    traffic: (&'f [TrafficFile], Vec<Seg>),
    timeline: (&'f [TimelineFile], Vec<Seg>),
    network: (Option<&'f NetworkFile>, Vec<Seg>),
    dns: (Option<&'f DnsFile>, Vec<Seg>),
    expect: &'f [ExpectFile],
    services: (&'f [ServiceFile], Vec<Seg>),
    edge: (Option<&'f EdgeFile>, Vec<Seg>),
    mesh: (Option<&'f MeshFile>, Vec<Seg>),
}

/// What a timeline entry may refer to.
#[derive(Clone, Copy)]
struct ActionRefs<'a> {
    find: &'a FindWorkload<'a>,
    traffic_names: &'a [String],
    ipam: &'a IpamLayout,
    duration: SimDuration,
    policy: Option<&'a PolicyConfig>,
    nodes: &'a [NodeSpec],
    /// The NAT gateways' names.
    nat_gateways: &'a [&'a str],
    /// Per traffic source: made in a handler (no rate of its own).
    in_handler: &'a [bool],
    /// The DNS workload (CoreDNS pods: no handler service time).
    dns_workload: Option<usize>,
}

/// What every variant shares.
struct Common<'f> {
    namespaces: &'f [NamespaceFile],
    duration: SimDuration,
    sample_every: SimDuration,
    windows: &'f [WindowSpec],
}

pub(crate) struct Validator<'a> {
    pub(crate) file: &'a str,
    pub(crate) text: &'a str,
    pub(crate) pos: &'a Positions,
}

type R<T> = Result<T, InputError>;

/// The most nodes a scenario may have: Kubernetes' documented limit for one
/// cluster ("Considerations for large clusters", kubernetes.io: no more than
/// 5,000 nodes and 150,000 pods). A guard: a count past it would allocate
/// the nodes before any run.
pub const MAX_NODES: u32 = 5_000;
/// The most replicas one workload may ask for, at any time (the same page's
/// 150,000 pods per cluster); the HPA's `max_replicas` included.
pub const MAX_REPLICAS: u32 = 150_000;

impl Validator<'_> {
    /// `n` replicas at `p`, within [`MAX_REPLICAS`].
    fn replicas_within(&self, p: &[Seg], n: u32) -> R<()> {
        if n > MAX_REPLICAS {
            return Err(self.err(
                p,
                format!("{n} replicas is more than one cluster holds ({MAX_REPLICAS} pods)"),
                "Kubernetes supports up to 150,000 pods and 5,000 nodes per cluster",
            ));
        }
        Ok(())
    }
}

/// Looks a workload name up: (name, path of the reference, what refers to it).
type FindWorkload<'a> = dyn Fn(&str, Vec<Seg>, &str) -> R<usize> + 'a;

impl Locate for Validator<'_> {
    fn source(&self) -> (&str, &Positions) {
        (self.file, self.pos)
    }
}

impl Validator<'_> {
    fn scenario(&self, f: ScenarioFile) -> R<Scenario> {
        if f.duration.0 == SimDuration::ZERO {
            return Err(self.err(
                &path!["duration"],
                "duration is 0",
                "give the simulated time to run, e.g. 1h",
            ));
        }
        if f.sample_every.0 == SimDuration::ZERO {
            return Err(self.err(
                &path!["sample_every"],
                "sample_every is 0",
                "give a sampling period, e.g. 1m",
            ));
        }
        let windows = self.windows(&f)?;
        let common = Common {
            namespaces: &f.namespaces,
            duration: f.duration.0,
            sample_every: f.sample_every.0,
            windows: &windows,
        };
        let label = |v: &VariantFile| (v.name.clone(), v.description.clone());
        let variants =
            self.variants(f.variant, &f.variants, label, |name, description, layer| {
                let sections = Sections {
                    at: layer.path(),
                    cluster: layer.pick(|v| v.cluster.as_ref(), &f.cluster),
                    workloads: layer.pick(|v| v.workloads.as_deref(), &f.workloads[..]),
                    traffic: layer.pick(|v| v.traffic.as_deref(), &f.traffic[..]),
                    timeline: layer.pick(|v| v.timeline.as_deref(), &f.timeline[..]),
                    network: layer.pick(|v| v.network.as_ref().map(Some), f.network.as_ref()),
                    dns: layer.pick(|v| v.dns.as_ref().map(Some), f.dns.as_ref()),
                    expect: layer.own(|v| &v.expect[..], &f.expect[..]),
                    services: layer.pick(|v| v.services.as_deref(), &f.services[..]),
                    edge: layer.pick(|v| v.edge.as_ref().map(Some), f.edge.as_ref()),
                    mesh: layer.pick(|v| v.mesh.as_ref().map(Some), f.mesh.as_ref()),
                };
                self.variant(name, description, &sections, &common)
            })?;
        Ok(Scenario {
            name: f.name,
            summary: f.summary,
            story: f.story,
            variants,
        })
    }

    fn windows(&self, f: &ScenarioFile) -> R<Vec<WindowSpec>> {
        let mut out: Vec<WindowSpec> = Vec::new();
        for (i, w) in f.measure.iter().flat_map(|m| &m.windows).enumerate() {
            let p = path!["measure", "windows", i];
            if w.to.0 <= w.from.0 {
                return Err(self.err(
                    &p,
                    format!(
                        "window `{}` ends ({}) before it starts ({})",
                        w.name, w.to.0, w.from.0
                    ),
                    "`to` must be later than `from`",
                ));
            }
            if w.to.0 > f.duration.0 {
                return Err(self.err(
                    &p,
                    format!(
                        "window `{}` ends at {}, after the run ends at {}",
                        w.name, w.to.0, f.duration.0
                    ),
                    "shorten the window or lengthen `duration`",
                ));
            }
            if out.iter().any(|x| x.name == w.name) {
                return Err(self.err(
                    &p,
                    format!("window name `{}` is used twice", w.name),
                    "give each window its own name",
                ));
            }
            out.push(WindowSpec {
                name: w.name.clone(),
                start: w.from.0,
                end: w.to.0,
            });
        }
        Ok(out)
    }

    fn variant(
        &self,
        name: String,
        description: String,
        sec: &Sections<'_>,
        common: &Common<'_>,
    ) -> R<Variant> {
        let (cluster, cp) = (sec.cluster.0, &sec.cluster.1[..]);
        let (workloads, wp) = (sec.workloads.0, &sec.workloads.1[..]);
        let (traffic, tp) = (sec.traffic.0, &sec.traffic.1[..]);
        let (timeline, lp) = (sec.timeline.0, &sec.timeline.1[..]);
        let (duration, sample_every, windows) =
            (common.duration, common.sample_every, common.windows);
        let np = [cp, &path!["cluster", "nodes"]].concat();
        let max_pods = cluster.nodes.max_pods.map_or(DEFAULT_MAX_PODS, |c| c.0);
        let ipam = self.ipam(
            &[cp, &path!["cluster", "ipam"]].concat(),
            &cluster.ipam,
            (max_pods, &[np.as_slice(), &path!["max_pods"]].concat()),
        )?;
        if cluster.nodes.zones.is_empty() {
            return Err(self.err(
                &np,
                "no zones given",
                "list at least one zone, e.g. zones: [zone-a]",
            ));
        }
        if cluster.nodes.count.0 > MAX_NODES {
            return Err(self.err(
                &[np.as_slice(), &path!["count"]].concat(),
                format!(
                    "{} nodes is more than one cluster holds ({MAX_NODES})",
                    cluster.nodes.count.0
                ),
                "Kubernetes supports up to 5,000 nodes per cluster",
            ));
        }
        let mut nodes = spread_nodes(
            cluster.nodes.count.0,
            &cluster.nodes.zones,
            cluster.nodes.max_pods.map_or(DEFAULT_MAX_PODS, |c| c.0),
        );
        if let Some(a) = &cluster.nodes.allocatable {
            nodes
                .iter_mut()
                .for_each(|n| n.allocatable = Some(a.resources()));
        }
        let node_pool = match &cluster.node_pool {
            Some(pool) => Some(self.node_pool(
                &[cp, &path!["cluster", "node_pool"]].concat(),
                &cluster.nodes,
                pool,
                &mut nodes,
                max_pods,
            )?),
            None => None,
        };
        let dns_workload = sec.dns.0.map(|d| d.workload.as_str());
        let mut from_manifests = match &cluster.manifests {
            Some(rel) => Some(self.manifests(
                &[cp, &path!["cluster", "manifests"]].concat(),
                rel,
                wp,
                workloads,
                dns_workload,
            )?),
            None => None,
        };
        let (mut deployments, extras) = match from_manifests.as_mut() {
            Some(m) => (
                std::mem::take(&mut m.deployments),
                std::mem::take(&mut m.extras),
            ),
            None => (
                self.deployments(wp, workloads, dns_workload)?,
                self.pod_extras(wp, workloads)?,
            ),
        };
        let names: Vec<&str> = deployments.iter().map(|d| d.name.as_str()).collect();
        let find = |n: &str, p: Vec<Seg>, what: &str| -> R<usize> {
            names.iter().position(|x| *x == n).ok_or_else(|| {
                self.err(
                    &p,
                    format!("{what} `{n}` is not a workload of this scenario"),
                    did_you_mean(n, &names, "workloads"),
                )
            })
        };
        let dns = match sec.dns.0 {
            Some(d) => Some(self.dns(
                &sec.dns.1,
                d,
                &extras,
                &names,
                from_manifests.as_ref().map(|m| &m.dns),
            )?),
            None => None,
        };
        let mut notes = from_manifests
            .as_mut()
            .map(|m| std::mem::take(&mut m.notes))
            .unwrap_or_default();
        let manifest_services = from_manifests.as_ref().map_or(&[][..], |m| &m.services[..]);
        let (services, resolved) = self.service_section(
            (manifest_services, sec.services.0, &sec.services.1),
            (sec.edge.0, &sec.edge.1),
            &deployments,
            dns.as_ref().map(|d| d.workload),
            cluster.nodes.public_addresses,
            &mut notes,
        )?;
        let start_dials = self.start_dials(wp, workloads, &deployments, &resolved)?;
        let nat_gateways =
            self.nat_gateways(&sec.network.1, sec.network.0, &cluster.nodes.zones)?;
        let billing = self.billing(&sec.network.1, sec.network.0)?;
        let mut mesh = self.mesh(
            &sec.mesh.1,
            sec.mesh.0,
            &names,
            dns.as_ref().map(|d| d.workload),
        )?;
        let (traffic_specs, traffic_names) = self.traffic(
            tp,
            traffic,
            &find,
            (
                &deployments,
                &resolved,
                &nodes,
                cluster.nodes.public_addresses,
            ),
            dns.as_ref(),
            sec.network.0,
        )?;
        let gateway_names: Vec<&str> = nat_gateways
            .iter()
            .flat_map(|n| n.config.gateways.iter().map(|g| g.name.as_str()))
            .collect();
        self.mesh_rules(
            (&sec.mesh.1, sec.mesh.0),
            mesh.as_mut(),
            &resolved,
            &traffic_specs,
        )?;
        let (policy, conntrack, kube_proxy) = self.data_path(
            sec,
            common.namespaces,
            dns.as_ref(),
            from_manifests.as_ref(),
        )?;
        let in_handler: Vec<bool> = traffic_specs.iter().map(|t| t.in_handler).collect();
        let refs = ActionRefs {
            in_handler: &in_handler,
            dns_workload: dns.as_ref().map(|d| d.workload),
            find: &find,
            traffic_names: &traffic_names,
            ipam: &ipam,
            duration,
            policy: policy.as_ref(),
            nodes: &nodes,
            nat_gateways: &gateway_names,
        };
        let actions = self.timeline(
            lp,
            timeline,
            &refs,
            conntrack.is_some(),
            (sec.network.0, &sec.network.1),
        )?;
        self.proxy_restarts_meshed(lp, &actions, mesh.as_ref(), &names)?;
        let expectations = self.expectations(
            sec,
            common,
            &names,
            (&traffic_names, &traffic_specs),
            (kube_proxy.is_some(), billing.is_some()),
        )?;
        for (d, dial) in deployments.iter_mut().zip(start_dials) {
            d.start_dial = dial;
        }
        let config = ClusterConfig {
            nodes,
            ipam,
            deployments,
            traffic: traffic_specs,
            timeline: actions,
            duration,
            sample_every,
            windows: windows.to_vec(),
            policy,
            dns,
            conntrack,
            kube_proxy,
            services,
            node_pool,
            nat_gateways,
            billing,
            mesh,
        };
        Ok(Variant {
            name,
            description,
            config,
            expect: expectations,
            notes,
        })
    }
}

#[cfg(test)]
mod tests;
