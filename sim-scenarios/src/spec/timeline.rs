//! Actions at times: the `timeline` section.
//!
//! # Scope
//! Each entry is `at` plus exactly one action (scale, a rate change, a
//! workload's service time, a new IP pool or pod range, policy sets, the CNI daemon down or up, a conntrack
//! flush, a zone failure, a sidecar restart); names are checked against the variant's
//! workloads, traffic, policy sets, nodes and zones.
//!
//! # Validation
//! Every error names the field it is about (`file:line:column`) with a hint.

use super::{ActionRefs, NetworkFile, Validator, R};
use crate::envelope::Locate;
use crate::locate::Seg;
use crate::path;
use crate::units::{Count, Duration, Rate};
use schemars::JsonSchema;
use serde::Deserialize;
use sim_core::SimDuration;
use sim_models::cluster::{Action, TimedAction};
use sim_models::ipam::IpamLayout;
use sim_models::topology::NodeSpec;

/// One timeline entry: `at` plus exactly one action.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimelineFile {
    /// When.
    pub at: Duration,
    /// Scale this Deployment (with `replicas`).
    pub scale: Option<String>,
    /// New replica count.
    pub replicas: Option<Count>,
    /// Change this workload's mean service time (with `service_time`): a
    /// dependency slows down, or recovers.
    pub workload: Option<String>,
    /// New mean service time of the workload's handlers (exponential).
    pub service_time: Option<Duration>,
    /// Change this traffic source's rate (with `rate`).
    pub traffic: Option<String>,
    /// New rate.
    pub rate: Option<Rate>,
    /// Add a pod IP pool (flat IPAM).
    pub add_pod_cidr: Option<String>,
    /// Make these NetworkPolicy sets the active ones.
    pub policies: Option<Vec<String>>,
    /// The CNI daemon stops on these nodes (`all` or a list of node names).
    pub cni_down: Option<NodeNames>,
    /// The CNI daemon runs again on these nodes.
    pub cni_up: Option<NodeNames>,
    /// An operator deletes the UDP conntrack entries on these nodes
    /// (`conntrack -D -p udp`; needs network.conntrack).
    pub conntrack_flush: Option<NodeNames>,
    /// Add a pod range new nodes' blocks are cut from (`mode: gke` IPAM:
    /// GKE's additional pod ranges).
    pub add_pod_range: Option<String>,
    /// A zone fails (one of `nodes.zones`): its nodes stop with their
    /// pods; the node lifecycle controller marks them NotReady after its
    /// grace period and evicts their pods after the toleration.
    pub zone_down: Option<String>,
    /// This NAT gateway goes down (a stand-in for its zone failing; needs
    /// network.nat_gateways).
    pub nat_gateway_down: Option<String>,
    /// This NAT gateway is available again.
    pub nat_gateway_up: Option<String>,
    /// The sidecar proxy of every running pod of this workload restarts
    /// (needs `mesh` with sidecars): its connections are reset, the pod is
    /// not Ready until the new proxy's probe passes.
    pub proxy_restart: Option<String>,
}

/// Nodes an action applies to: `all`, one name, or a list of names.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum NodeNames {
    /// `all` or one node's name.
    One(String),
    /// Node names.
    Many(Vec<String>),
}

impl Validator<'_> {
    /// The timeline (written at `lp`); `has_conntrack`: the nodes track
    /// connections, so conntrack can be flushed.
    pub(super) fn timeline(
        &self,
        lp: &[Seg],
        timeline: &[TimelineFile],
        refs: &ActionRefs<'_>,
        has_conntrack: bool,
        network: (Option<&NetworkFile>, &[Seg]),
    ) -> R<Vec<TimedAction>> {
        let mut actions = Vec::new();
        for (i, e) in timeline.iter().enumerate() {
            let p = [lp, &path!["timeline", i]].concat();
            actions.push(self.action(&p, e, refs)?);
        }
        if !has_conntrack {
            if let Some(i) = actions
                .iter()
                .position(|a| matches!(a.action, Action::FlushUdpConntrack { .. }))
            {
                return Err(self.err(
                    &[lp, &path!["timeline", i, "conntrack_flush"]].concat(),
                    "`conntrack_flush` needs network.conntrack: there is no table to flush",
                    "add network: {cni: calico, conntrack: {node_cores: 4}}",
                ));
            }
        }
        let changes_policies = actions
            .iter()
            .any(|a| matches!(a.action, Action::SetPolicies { .. }));
        if changes_policies && network.0.is_some_and(|n| n.policy_delay.is_none()) {
            return Err(self.err(
                &[network.1, &path!["network"]].concat(),
                "the timeline changes policies but network.policy_delay is not given",
                "give the time from a policy change to its effect in the data path, e.g. policy_delay: 2s",
            ));
        }

        Ok(actions)
    }

    pub(super) fn action(
        &self,
        p: &[Seg],
        e: &TimelineFile,
        refs: &ActionRefs<'_>,
    ) -> R<TimedAction> {
        let ActionRefs {
            find,
            traffic_names,
            ipam,
            duration,
            policy,
            nodes,
            nat_gateways,
            in_handler,
            dns_workload,
        } = *refs;
        let set = [
            e.scale.is_some(),
            e.workload.is_some(),
            e.traffic.is_some(),
            e.add_pod_cidr.is_some(),
            e.policies.is_some(),
            e.cni_down.is_some(),
            e.cni_up.is_some(),
            e.conntrack_flush.is_some(),
            e.add_pod_range.is_some(),
            e.zone_down.is_some(),
            e.nat_gateway_down.is_some(),
            e.nat_gateway_up.is_some(),
            e.proxy_restart.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        let hint = "each timeline entry has `at` and one action: `scale` + `replicas`, `traffic` + `rate`, `workload` + `service_time`, `add_pod_cidr`, `add_pod_range`, `policies`, `cni_down`, `cni_up` or `conntrack_flush` (+ `all` or node names), `zone_down` (+ a zone), `nat_gateway_down` or `nat_gateway_up` (+ a gateway's name), `proxy_restart` (+ a workload)";
        if e.service_time.is_some() && e.workload.is_none() {
            return Err(self.err(
                &[p, &path!["service_time"]].concat(),
                "`service_time` belongs to a `workload` action",
                "name the workload whose handlers slow down: {at: 2m, workload: db, service_time: 100ms}",
            ));
        }
        if set != 1 {
            let msg = if set == 0 {
                "timeline entry has no action"
            } else {
                "timeline entry has more than one action"
            };
            return Err(self.err(p, msg, hint));
        }
        if e.at.0 > duration {
            return Err(self.err(
                &[p, &path!["at"]].concat(),
                format!("at {} is after the run ends ({duration})", e.at.0),
                "lengthen `duration` or move the action",
            ));
        }
        let action = if let Some(name) = &e.workload {
            let wp = [p, &path!["workload"]].concat();
            let deployment = find(name, wp.clone(), "workload")?;
            let Some(service_time) = e.service_time else {
                return Err(self.err(
                    &wp,
                    format!("`workload: {name}` needs `service_time`: the new mean service time of its handlers"),
                    "e.g. {at: 2m, workload: db, service_time: 100ms}",
                ));
            };
            if e.replicas.is_some() || e.rate.is_some() {
                return Err(self.err(
                    p,
                    "`workload` takes `service_time` (and no `replicas` or `rate`)",
                    hint,
                ));
            }
            if dns_workload == Some(deployment) {
                return Err(self.err(
                    &wp,
                    format!("`{name}` is the DNS workload: its pods are CoreDNS, whose speed comes from its CPU"),
                    "change the speed of an application workload",
                ));
            }
            if service_time.0 == SimDuration::ZERO {
                return Err(self.err(
                    &[p, &path!["service_time"]].concat(),
                    "service_time is 0: a handler takes some time",
                    "give a positive mean, e.g. 100ms",
                ));
            }
            Action::SetServiceTime {
                deployment,
                service_time: service_time.0,
            }
        } else if let Some(name) = &e.scale {
            let deployment = find(name, [p, &path!["scale"]].concat(), "scale target")?;
            let (Some(replicas), None) = (e.replicas, e.rate) else {
                return Err(self.err(p, "`scale` needs `replicas` (and no `rate`)", hint));
            };
            self.replicas_within(&[p, &path!["replicas"]].concat(), replicas.0)?;
            Action::Scale {
                deployment,
                replicas: replicas.0,
            }
        } else if let Some(name) = &e.proxy_restart {
            let deployment = find(
                name,
                [p, &path!["proxy_restart"]].concat(),
                "proxy_restart target",
            )?;
            if e.replicas.is_some() || e.rate.is_some() {
                return Err(self.err(p, "`proxy_restart` takes no `replicas` or `rate`", hint));
            }
            Action::ProxyRestart { deployment }
        } else if let Some(name) = &e.traffic {
            let Some(traffic) = traffic_names.iter().position(|t| t == name) else {
                return Err(self.err(
                    &[p, &path!["traffic"]].concat(),
                    format!("no traffic source is called `{name}`"),
                    format!("traffic sources: {}", traffic_names.join(", ")),
                ));
            };
            let (Some(rate), None) = (e.rate, e.replicas) else {
                return Err(self.err(p, "`traffic` needs `rate` (and no `replicas`)", hint));
            };
            if in_handler.get(traffic).copied().unwrap_or(false) {
                return Err(self.err(
                    &[p, &path!["traffic"]].concat(),
                    format!("`{name}` is made in a handler (in_handler): it has no rate to set"),
                    "set the rate of the source at the head of the chain",
                ));
            }
            Action::SetRate {
                traffic,
                rate: rate.0,
            }
        } else if let Some(names) = &e.policies {
            let pp = [p, &path!["policies"]].concat();
            let Some(cfg) = policy else {
                return Err(self.err(
                    &pp,
                    "`policies` needs a `network` section with policy_sets",
                    "add network: {cni: calico, policy_delay: 2s, policy_sets: {...}}",
                ));
            };
            let mut sets = Vec::new();
            for n in names {
                let Some(i) = cfg.sets.iter().position(|(name, _)| name == n) else {
                    let known: Vec<&str> = cfg.sets.iter().map(|(n, _)| n.as_str()).collect();
                    return Err(self.err(
                        &pp,
                        format!("no policy set is called `{n}`"),
                        format!("policy sets: {}", known.join(", ")),
                    ));
                };
                sets.push(i);
            }
            Action::SetPolicies { sets }
        } else if let Some(range) = &e.add_pod_range {
            let cp = [p, &path!["add_pod_range"]].concat();
            let cidr = self.cidr(&cp, range)?;
            let IpamLayout::PerNode { cluster_cidr, .. } = ipam else {
                return Err(self.err(
                    &cp,
                    "add_pod_range applies to `mode: gke` (per-node) IPAM",
                    "flat layouts add pools with add_pod_cidr",
                ));
            };
            if cluster_cidr.overlaps(&cidr) {
                return Err(self.err(
                    &cp,
                    format!("{cidr} overlaps the pod range {cluster_cidr}"),
                    "add a range that does not overlap, e.g. the next free /16",
                ));
            }
            if e.replicas.is_some() || e.rate.is_some() {
                return Err(self.err(p, "`add_pod_range` takes no `replicas` or `rate`", hint));
            }
            Action::AddPodRange { cidr }
        } else if let Some(zone) = &e.zone_down {
            if e.replicas.is_some() || e.rate.is_some() {
                return Err(self.err(p, "`zone_down` takes no `replicas` or `rate`", hint));
            }
            let picked: Vec<usize> = (0..nodes.len())
                .filter(|&n| nodes[n].zone == *zone)
                .collect();
            if picked.is_empty() {
                let mut zones: Vec<&str> = nodes.iter().map(|n| n.zone.as_str()).collect();
                zones.dedup();
                zones.sort_unstable();
                zones.dedup();
                return Err(self.err(
                    &[p, &path!["zone_down"]].concat(),
                    format!("no node is in zone `{zone}`"),
                    format!("zones of cluster.nodes: {}", zones.join(", ")),
                ));
            }
            Action::ZoneDown {
                zone: zone.clone(),
                nodes: picked,
            }
        } else if let Some(name) = e.nat_gateway_down.as_ref().or(e.nat_gateway_up.as_ref()) {
            let up = e.nat_gateway_up.is_some();
            let field = if up {
                "nat_gateway_up"
            } else {
                "nat_gateway_down"
            };
            if e.replicas.is_some() || e.rate.is_some() {
                return Err(self.err(p, format!("`{field}` takes no `replicas` or `rate`"), hint));
            }
            let Some(gateway) = nat_gateways.iter().position(|g| g == name) else {
                let hint = if nat_gateways.is_empty() {
                    "add network.nat_gateways: {gateways: [...], routes: {...}}".to_string()
                } else {
                    crate::envelope::did_you_mean(name, nat_gateways, "NAT gateways")
                };
                return Err(self.err(
                    &[p, &path![field]].concat(),
                    format!("no NAT gateway is called `{name}`"),
                    hint,
                ));
            };
            Action::NatGateway { gateway, up }
        } else if let Some(which) = &e.conntrack_flush {
            if e.replicas.is_some() || e.rate.is_some() {
                return Err(self.err(p, "`conntrack_flush` takes no `replicas` or `rate`", hint));
            }
            let nodes = self.node_names(&[p, &path!["conntrack_flush"]].concat(), which, nodes)?;
            Action::FlushUdpConntrack { nodes }
        } else if let Some(which) = e.cni_down.as_ref().or(e.cni_up.as_ref()) {
            let field = if e.cni_down.is_some() {
                "cni_down"
            } else {
                "cni_up"
            };
            if e.replicas.is_some() || e.rate.is_some() {
                return Err(self.err(p, format!("`{field}` takes no `replicas` or `rate`"), hint));
            }
            let picked = self.node_names(&[p, &path![field]].concat(), which, nodes)?;
            if e.cni_down.is_some() {
                Action::CniDown { nodes: picked }
            } else {
                Action::CniUp { nodes: picked }
            }
        } else {
            let cp = [p, &path!["add_pod_cidr"]].concat();
            let cidr = self.cidr(&cp, e.add_pod_cidr.as_deref().unwrap_or_default())?;
            match ipam {
                IpamLayout::Flat { pod_cidr, .. } if pod_cidr.overlaps(&cidr) => {
                    return Err(self.err(
                        &cp,
                        format!("{cidr} overlaps the pod network {pod_cidr}"),
                        "add a pool that does not overlap, e.g. the next free /22",
                    ));
                }
                IpamLayout::PerNode { .. } => {
                    return Err(self.err(
                        &cp,
                        "add_pod_cidr applies to `mode: flat` IPAM",
                        "per-node layouts are sized by cluster_cidr and node_mask",
                    ));
                }
                _ => {}
            }
            if e.replicas.is_some() || e.rate.is_some() {
                return Err(self.err(p, "`add_pod_cidr` takes no `replicas` or `rate`", hint));
            }
            Action::AddIpPool { cidr }
        };
        Ok(TimedAction { at: e.at.0, action })
    }

    /// Node indices named by `which`: `all`, or names of `nodes`.
    pub(super) fn node_names(
        &self,
        p: &[Seg],
        which: &NodeNames,
        nodes: &[NodeSpec],
    ) -> R<Vec<usize>> {
        let names: Vec<&str> = match which {
            NodeNames::One(n) if n == "all" => return Ok((0..nodes.len()).collect()),
            NodeNames::One(n) => vec![n.as_str()],
            NodeNames::Many(ns) => ns.iter().map(String::as_str).collect(),
        };
        let mut picked = Vec::new();
        for (i, name) in names.into_iter().enumerate() {
            let Some(n) = nodes.iter().position(|x| x.name == name) else {
                let q = match which {
                    NodeNames::One(_) => p.to_vec(),
                    NodeNames::Many(_) => [p, &path![i]].concat(),
                };
                let last = nodes.last().map_or("none", |n| n.name.as_str());
                return Err(self.err(
                    &q,
                    format!("no node is called `{name}`"),
                    format!("write `all` or names from node-1 to {last}"),
                ));
            };
            if !picked.contains(&n) {
                picked.push(n);
            }
        }
        Ok(picked)
    }
}
