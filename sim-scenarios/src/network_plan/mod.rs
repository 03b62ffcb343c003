//! Network-plan scenarios: the `network_plan:` format, its check and report.
//!
//! A scenario file with a top-level `network_plan:` section checks a plan
//! of address ranges on [`sim_models::cidr_plan`]: which ranges overlap and
//! what breaks (VPC peering refused, VPN addresses cut off, node blocks
//! lost, subnets refused) and what the plan holds. There is no simulation
//! and no randomness: a variant is checked once, the same for every seed.
//! It keeps the envelope of the other formats ([`crate::envelope`]):
//! `name`, `summary`, `story`, `variant`, `expect` (each with `because`),
//! `variants` that replace the whole `network_plan:`, strict parsing
//! (unknown fields are errors) and `file:line:column` errors with a hint.
//!
//! ```yaml
//! name: cidr_overlap
//! summary: one line
//! variant: {name: broken, description: what is wrong}
//! network_plan:
//!   vpcs:
//!     - name: prod
//!       cidrs: [10.0.0.0/16]
//!       subnets: [{name: nodes-a, cidr: 10.0.0.0/19, zone: a}]
//!   cluster: {name: prod, vpc: prod, pods: [10.0.128.0/17], services: 172.20.0.0/16, node_mask: 24}
//!   peers:
//!     - {name: analytics, kind: vpc, cidrs: [10.0.0.0/16]}   # vpc | vpn | cluster
//! expect:
//!   - {metric: peering_refused, equals: 1, because: the blocks overlap}
//! variants:
//!   - name: fix
//!     network_plan:          # instead of vpcs and cluster: the planner lays them out
//!       peers: [...]
//!       propose: {cluster: prod, nodes: 200, max_pods_per_node: 110, services: 4000, zones: [a, b, c]}
//! ```

use crate::envelope::{self, did_you_mean, serde_error, Locate, VariantLabel};
use crate::error::InputError;
use crate::figures::{Figure, PlanFigure};
use crate::locate::{Positions, Seg};
use crate::path;
use crate::units::Count;
use schemars::JsonSchema;
use serde::Deserialize;
use sim_models::cidr_plan::planner::{self, Wanted};
use sim_models::cidr_plan::{check, ClusterRanges, Peer, PeerKind, Plan, PlanCheck, Subnet, Vpc};
use sim_models::ipam::{CidrError, Ipv4Cidr};

mod report;

pub use report::{json, text};

/// A network-plan scenario file as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanScenarioFile {
    /// Short name.
    pub name: String,
    /// One line.
    pub summary: String,
    /// The story, for reports.
    #[serde(default)]
    pub story: String,
    /// Name and description of the top-level plan.
    #[serde(default)]
    pub variant: Option<VariantLabel>,
    /// The plan.
    pub network_plan: NetworkPlanFile,
    /// Assertions on the top level.
    #[serde(default)]
    pub expect: Vec<PlanExpectFile>,
    /// Other plans.
    #[serde(default)]
    pub variants: Vec<PlanVariantFile>,
}

/// A variant: its own plan.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanVariantFile {
    /// Short name.
    pub name: String,
    /// What differs.
    #[serde(default)]
    pub description: String,
    /// Replaces the plan.
    pub network_plan: Option<NetworkPlanFile>,
    /// Assertions on this variant.
    #[serde(default)]
    pub expect: Vec<PlanExpectFile>,
}

/// The plan: VPCs and the cluster written out, or `propose` for the planner.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkPlanFile {
    /// VPCs, the cluster's among them.
    #[serde(default)]
    pub vpcs: Vec<VpcFile>,
    /// The cluster's ranges.
    pub cluster: Option<ClusterFile>,
    /// Networks the cluster talks to.
    #[serde(default)]
    pub peers: Vec<PeerFile>,
    /// Instead of `vpcs` and `cluster`: the sizes wanted; the planner lays
    /// out ranges that overlap no peer.
    pub propose: Option<ProposeFile>,
}

/// A VPC.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VpcFile {
    /// Name.
    pub name: String,
    /// CIDR blocks (`10.0.0.0/16`), primary first.
    pub cidrs: Vec<String>,
    /// Subnets.
    #[serde(default)]
    pub subnets: Vec<SubnetFile>,
}

/// A subnet.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubnetFile {
    /// Name.
    pub name: String,
    /// Its block.
    pub cidr: String,
    /// Its zone.
    pub zone: String,
}

/// The cluster's ranges.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    /// Name.
    pub name: String,
    /// The VPC it runs in (a name under `vpcs`).
    pub vpc: String,
    /// Pod ranges (cluster CIDRs).
    pub pods: Vec<String>,
    /// The Service range.
    pub services: String,
    /// Per-node pod block prefix (default 24, `--node-cidr-mask-size`).
    pub node_mask: Option<Count>,
}

/// What a peer is.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PeerKindFile {
    /// A VPC peered with the cluster's VPC.
    Vpc,
    /// A VPN or on-prem network: its routes.
    Vpn,
    /// A second cluster: its pod and Service ranges.
    Cluster,
}

/// A peer network.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PeerFile {
    /// Name.
    pub name: String,
    /// What it is.
    pub kind: PeerKindFile,
    /// Its ranges.
    pub cidrs: Vec<String>,
}

/// The sizes the planner is asked for.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposeFile {
    /// The cluster's name (default `cluster`).
    pub cluster: Option<String>,
    /// Nodes.
    pub nodes: Count,
    /// Maximum pods per node (default 110, kubelet `--max-pods`).
    pub max_pods_per_node: Option<Count>,
    /// Services.
    pub services: Count,
    /// Zones, one subnet each.
    pub zones: Vec<String>,
}

/// An assertion on a checked plan.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanExpectFile {
    /// What to check.
    pub metric: PlanFigure,
    /// Must equal.
    pub equals: Option<envelope::Threshold>,
    /// Must be greater.
    pub above: Option<envelope::Threshold>,
    /// Must be smaller.
    pub below: Option<envelope::Threshold>,
    /// Why.
    pub because: String,
}

/// A validated expectation.
#[derive(Clone, Debug, PartialEq)]
pub struct Expectation {
    /// As shown.
    pub label: String,
    metric: &'static Figure,
    /// `(op, threshold)`.
    pub checks: Vec<(&'static str, f64)>,
    /// Why.
    pub because: String,
}

/// How a variant's plan came about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Written out in the file.
    Written,
    /// Laid out by the planner for these sizes.
    Proposed(Wanted),
}

/// One plan to check.
#[derive(Clone, Debug, PartialEq)]
pub struct Variant {
    /// Name.
    pub name: String,
    /// What differs.
    pub description: String,
    /// The plan.
    pub plan: Plan,
    /// Where it came from.
    pub origin: Origin,
    /// Assertions.
    pub expect: Vec<Expectation>,
}

/// A validated network-plan scenario.
pub type PlanScenario = envelope::Scenario<Variant>;

/// Whether `text` is a network-plan scenario (has a top-level `network_plan:`).
pub fn is_network_plan(text: &str) -> bool {
    text.lines().any(|l| l.starts_with("network_plan:"))
}

/// Parses and validates a network-plan scenario.
pub fn parse(file: &str, text: &str) -> Result<PlanScenario, InputError> {
    let raw: PlanScenarioFile = serde_yaml_ng::from_str(text).map_err(|e| serde_error(file, &e))?;
    let pos = Positions::of(text);
    V { file, pos: &pos }.scenario(raw)
}

/// One checked variant.
pub struct PlanRun {
    /// Index into the variants.
    pub variant: usize,
    /// What the check found.
    pub check: PlanCheck,
    /// The expectations' results.
    pub checks: Vec<crate::run::Check>,
}

/// Checks every variant's plan, in variant order.
pub fn run_all(s: &PlanScenario) -> Vec<PlanRun> {
    s.variants
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let checked = check(&v.plan);
            let checks = v
                .expect
                .iter()
                .map(|e| {
                    let actual = e.metric.plan(&checked.figures);
                    crate::run::Check::new(&e.label, actual, &e.checks, |x| e.metric.show(x))
                })
                .collect();
            PlanRun {
                variant: i,
                check: checked,
                checks,
            }
        })
        .collect()
}

/// (held, total) over every variant's expectations.
pub fn expectation_totals(runs: &[PlanRun]) -> (usize, usize) {
    crate::run::totals(runs.iter().flat_map(|r| &r.checks))
}

struct V<'a> {
    file: &'a str,
    pos: &'a Positions,
}

impl Locate for V<'_> {
    fn source(&self) -> (&str, &Positions) {
        (self.file, self.pos)
    }
}

type R<T> = Result<T, InputError>;

fn join(p: &[Seg], more: &[Seg]) -> Vec<Seg> {
    [p, more].concat()
}

impl V<'_> {
    fn scenario(&self, f: PlanScenarioFile) -> R<PlanScenario> {
        let label = |v: &PlanVariantFile| (v.name.clone(), v.description.clone());
        let variants =
            self.variants(f.variant, &f.variants, label, |name, description, layer| {
                let (plan, at) = layer.pick(|v| v.network_plan.as_ref(), &f.network_plan);
                let expect = layer.own(|v| &v.expect[..], &f.expect[..]);
                let (plan, origin) = self.plan(&join(&at, &path!["network_plan"]), plan)?;
                let ep = join(&layer.path(), &path!["expect"]);
                let expect = expect
                    .iter()
                    .enumerate()
                    .map(|(i, e)| self.expectation(&join(&ep, &path![i]), e))
                    .collect::<R<Vec<_>>>()?;
                Ok(Variant {
                    name,
                    description,
                    plan,
                    origin,
                    expect,
                })
            })?;
        Ok(PlanScenario {
            name: f.name,
            summary: f.summary,
            story: f.story,
            variants,
        })
    }

    fn cidr(&self, p: &[Seg], s: &str) -> R<Ipv4Cidr> {
        s.parse().map_err(|e: CidrError| {
            let hint = match &e {
                CidrError::HostBits { network, .. } => format!("did you mean {network}?"),
                _ => "write a block as address/prefix, e.g. 10.0.0.0/16".to_string(),
            };
            self.err(p, e.to_string(), hint)
        })
    }

    fn cidrs(&self, p: &[Seg], v: &[String]) -> R<Vec<Ipv4Cidr>> {
        if v.is_empty() {
            return Err(self.err(p, "no CIDR block given", "e.g. cidrs: [10.0.0.0/16]"));
        }
        v.iter()
            .enumerate()
            .map(|(i, s)| self.cidr(&join(p, &path![i]), s))
            .collect()
    }

    fn unique<'n>(&self, p: &[Seg], names: impl Iterator<Item = &'n str>, what: &str) -> R<()> {
        let mut seen: Vec<&str> = Vec::new();
        for (i, n) in names.enumerate() {
            if seen.contains(&n) {
                return Err(self.err(
                    &join(p, &path![i, "name"]),
                    format!("{what} name `{n}` is used twice"),
                    format!("give each {what} its own name"),
                ));
            }
            seen.push(n);
        }
        Ok(())
    }

    fn plan(&self, p: &[Seg], f: &NetworkPlanFile) -> R<(Plan, Origin)> {
        self.unique(
            &join(p, &path!["peers"]),
            f.peers.iter().map(|x| x.name.as_str()),
            "peer",
        )?;
        let peers = f
            .peers
            .iter()
            .enumerate()
            .map(|(i, x)| {
                Ok(Peer {
                    name: x.name.clone(),
                    kind: match x.kind {
                        PeerKindFile::Vpc => PeerKind::Vpc,
                        PeerKindFile::Vpn => PeerKind::Vpn,
                        PeerKindFile::Cluster => PeerKind::Cluster,
                    },
                    cidrs: self.cidrs(&join(p, &path!["peers", i, "cidrs"]), &x.cidrs)?,
                })
            })
            .collect::<R<Vec<_>>>()?;
        match (&f.propose, &f.cluster) {
            (Some(_), Some(_)) => Err(self.err(
                &join(p, &path!["propose"]),
                "`propose` and `cluster` are both given",
                "write the cluster's ranges out, or ask the planner with `propose`, not both",
            )),
            (Some(_), None) if !f.vpcs.is_empty() => Err(self.err(
                &join(p, &path!["vpcs"]),
                "`vpcs` is given with `propose`",
                "the planner lays out the cluster's VPC; remove `vpcs` or `propose`",
            )),
            (None, None) => Err(self.err(
                p,
                "the plan has no cluster",
                "add `cluster` (with `vpcs`), or `propose` for the planner",
            )),
            (Some(w), None) => {
                let pp = join(p, &path!["propose"]);
                let wanted = Wanted {
                    nodes: u64::from(w.nodes.0),
                    max_pods_per_node: u64::from(w.max_pods_per_node.map_or(110, |c| c.0)),
                    services: u64::from(w.services.0),
                    zones: w.zones.clone(),
                };
                let name = w.cluster.clone().unwrap_or_else(|| "cluster".into());
                let plan = planner::propose(&name, &peers, &wanted).map_err(|e| {
                    self.err(
                        &pp,
                        format!("no plan fits: {e}"),
                        "ask for fewer nodes, pods per node or Services, or more zones",
                    )
                })?;
                Ok((plan, Origin::Proposed(wanted)))
            }
            (None, Some(c)) => {
                let vp = join(p, &path!["vpcs"]);
                self.unique(&vp, f.vpcs.iter().map(|v| v.name.as_str()), "VPC")?;
                let mut vpcs = Vec::new();
                for (i, v) in f.vpcs.iter().enumerate() {
                    let at = join(&vp, &path![i]);
                    let mut subnets = Vec::new();
                    for (j, s) in v.subnets.iter().enumerate() {
                        subnets.push(Subnet {
                            name: s.name.clone(),
                            cidr: self.cidr(&join(&at, &path!["subnets", j, "cidr"]), &s.cidr)?,
                            zone: s.zone.clone(),
                        });
                    }
                    vpcs.push(Vpc {
                        name: v.name.clone(),
                        cidrs: self.cidrs(&join(&at, &path!["cidrs"]), &v.cidrs)?,
                        subnets,
                    });
                }
                let cp = join(p, &path!["cluster"]);
                let names: Vec<&str> = f.vpcs.iter().map(|v| v.name.as_str()).collect();
                let vpc = names.iter().position(|n| *n == c.vpc).ok_or_else(|| {
                    self.err(
                        &join(&cp, &path!["vpc"]),
                        format!("no VPC is called `{}`", c.vpc),
                        if names.is_empty() {
                            "add the cluster's VPC under `vpcs`".to_string()
                        } else {
                            did_you_mean(&c.vpc, &names, "VPCs")
                        },
                    )
                })?;
                let node_mask = c.node_mask.map_or(24, |m| m.0);
                if node_mask > 32 {
                    return Err(self.err(
                        &join(&cp, &path!["node_mask"]),
                        format!("node_mask /{node_mask} is not an IPv4 prefix"),
                        "a prefix length from 0 to 32; 24 is kube-controller-manager's default",
                    ));
                }
                let cluster = ClusterRanges {
                    name: c.name.clone(),
                    vpc,
                    pods: self.cidrs(&join(&cp, &path!["pods"]), &c.pods)?,
                    services: self.cidr(&join(&cp, &path!["services"]), &c.services)?,
                    node_mask: node_mask as u8,
                };
                Ok((
                    Plan {
                        vpcs,
                        cluster,
                        peers,
                    },
                    Origin::Written,
                ))
            }
        }
    }

    fn expectation(&self, p: &[Seg], e: &PlanExpectFile) -> R<Expectation> {
        let m = e.metric.0;
        let checks = self.comparisons(
            p,
            [e.equals, e.above, e.below],
            m.name,
            false,
            "plan figures are plain numbers",
        )?;
        Ok(Expectation {
            label: m.name.to_string(),
            metric: m,
            checks,
            because: e.because.clone(),
        })
    }
}

#[cfg(test)]
mod tests;
