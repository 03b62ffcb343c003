//! # Services: the run's Services, their endpoints, and NodePort entries
//!
//! The resolved Services of the run ([`crate::services::resolve`]): the
//! implicit Service of each workload no explicit Service selects (its
//! endpoints are the workload's Ready pods, kept by the `pods` room) and the
//! explicit ones, whose endpoints this room keeps by zone and by node. A
//! pod's readiness change touches the Services that select its workload
//! ([`SelectorIndex`]), never every Service. A Service with Topology Aware
//! Routing (`topology-mode: Auto`) has its hints recomputed here after each
//! of its endpoint changes, and after a node change when its hints leave a
//! zone under its minimum ([`crate::services::hints`]); the EndpointSlice
//! controller's `TopologyAwareHintsEnabled`/`Disabled` events come from
//! here. Traffic from outside entering
//! at a node address and NodePort picks its node here (uniformly, or the one
//! named) before it goes along the path.

use super::*;
use crate::path::{Edge, NodePortTarget};
use crate::services::hints::{self, Disabled, NodeView};
use crate::services::node_port::NodeAddressKind;
use crate::services::{resolve, HintChange, ResolvedService, SelectorIndex, TopologyEndpoints};

/// The run's Services.
pub(crate) struct ServicesRt {
    /// Every Service, implicit ones first.
    pub(crate) list: Vec<ResolvedService>,
    /// Which Services select each workload.
    pub(crate) index: SelectorIndex,
    /// Explicit Services' endpoints (`None` for implicit ones, which read
    /// their workload's).
    pub(crate) eps: Vec<Option<TopologyEndpoints>>,
    /// Each workload's implicit Service, if it has one.
    implicit: Vec<Option<u32>>,
    /// Each node's zone index.
    pub(crate) zone_of: Vec<usize>,
    /// The nodes' addresses and their guards.
    pub(crate) edge: Edge,
    /// Whether some Service uses Topology Aware Routing.
    auto: bool,
    /// The EndpointSlice controller's CPU share per zone of the Ready
    /// nodes ([`hints::zone_ratios`]).
    ratios: Result<Vec<Option<f64>>, Disabled>,
    /// Hints wait while the run's starting state is set up (the controller
    /// sees the cluster as it stands at T+0).
    hold_hints: bool,
}

impl ServicesRt {
    pub(crate) fn new(cfg: &ClusterConfig) -> Self {
        let list = resolve(&cfg.deployments, &cfg.services.explicit);
        let index = SelectorIndex::new(&list, cfg.deployments.len());
        let mut zones: Vec<&str> = Vec::new();
        let zone_of = cfg
            .nodes
            .iter()
            .map(|n| match zones.iter().position(|z| *z == n.zone) {
                Some(i) => i,
                None => {
                    zones.push(&n.zone);
                    zones.len() - 1
                }
            })
            .collect();
        let eps = list
            .iter()
            .map(|r| {
                r.implicit
                    .is_none()
                    .then(|| TopologyEndpoints::new(&r.spec, zones.len().max(1), cfg.nodes.len()))
            })
            .collect();
        let mut implicit = vec![None; cfg.deployments.len()];
        for (s, r) in list.iter().enumerate() {
            if let Some(w) = r.implicit {
                implicit[w] = Some(s as u32);
            }
        }
        let edge = Edge {
            addressing: cfg.services.addressing.clone(),
            node_port_addresses: cfg.services.node_port_addresses.clone(),
            mode: cfg
                .kube_proxy
                .as_ref()
                .map_or(crate::kube_proxy::Mode::Iptables, |k| k.mode),
            security_group: cfg.services.security_group.clone(),
        };
        let auto = list.iter().any(|r| r.spec.topology_auto);
        ServicesRt {
            list,
            index,
            eps,
            implicit,
            zone_of,
            edge,
            auto,
            ratios: Err(Disabled::InsufficientNodeInfo),
            hold_hints: false,
        }
    }

    /// Workload `w`'s implicit Service (the DNS workload always has one).
    pub(crate) fn implicit_of(&self, w: usize) -> usize {
        self.implicit[w].map_or(w, |s| s as usize)
    }

    /// The Service's Ready endpoints.
    pub(crate) fn endpoints<'e>(&'e self, deps: &'e [DeploymentRt], s: usize) -> &'e Endpoints {
        match (&self.eps[s], self.list[s].implicit) {
            (Some(e), _) => &e.all,
            (None, Some(w)) => &deps[w].endpoints,
            (None, None) => unreachable!("an explicit Service keeps its endpoints"),
        }
    }
}

impl Sim<'_> {
    /// Pod `p` of workload `d` on `node` is Ready: an endpoint of every
    /// Service selecting it.
    pub(crate) fn endpoint_up(&mut self, p: u32, d: usize) {
        self.deps[d].endpoints.add(p);
        let node = self.pods[p as usize].node.unwrap_or(0) as usize;
        self.explicit_endpoint(p, d, node, true);
    }

    /// Pod `p` of workload `d`, last on `node`, is no longer an endpoint.
    pub(crate) fn endpoint_down(&mut self, p: u32, d: usize, node: Option<u32>) {
        self.deps[d].endpoints.remove(p);
        self.explicit_endpoint(p, d, node.unwrap_or(0) as usize, false);
    }

    /// Pod `p` of workload `d` on `node` joins (`up`) or leaves the
    /// endpoints of the explicit Services selecting it; those with Topology
    /// Aware Routing get their hints recomputed.
    fn explicit_endpoint(&mut self, p: u32, d: usize, node: usize, up: bool) {
        let zone = self.services.zone_of.get(node).copied().unwrap_or(0);
        for i in 0..self.services.index.of(d).len() {
            let ServicesRt {
                index,
                eps,
                ratios,
                hold_hints,
                ..
            } = &mut self.services;
            let s = index.of(d)[i] as usize;
            let Some(e) = eps[s].as_mut() else { continue };
            if up {
                e.add(p, node, zone);
            } else {
                e.remove(p, node, zone);
            }
            if e.is_auto() && !*hold_hints {
                let change = e.rehint(ratios);
                self.hint_event(s, change);
            }
        }
    }

    /// Holds (`true`) or releases Topology Aware Routing's hints; on
    /// release every such Service's hints are computed.
    pub(crate) fn hold_hints(&mut self, hold: bool) {
        self.services.hold_hints = hold;
        if hold || !self.services.auto {
            return;
        }
        self.topology_nodes_changed();
        for s in 0..self.services.eps.len() {
            let ServicesRt { eps, ratios, .. } = &mut self.services;
            if let Some(e) = eps[s].as_mut().filter(|e| e.is_auto()) {
                let change = e.rehint(ratios);
                self.hint_event(s, change);
            }
        }
    }

    /// A node joined, left, or changed readiness: the EndpointSlice
    /// controller's CPU shares are recomputed, and the Services whose hints
    /// now leave a zone under its minimum get new ones
    /// ([`hints::overloaded`]).
    pub(crate) fn topology_nodes_changed(&mut self) {
        if !self.services.auto {
            return;
        }
        self.refresh_zone_ratios();
        if self.services.hold_hints {
            return;
        }
        for s in 0..self.services.eps.len() {
            let ServicesRt { eps, ratios, .. } = &mut self.services;
            let Some(e) = eps[s].as_mut() else { continue };
            if e.hinted().is_some_and(|h| hints::overloaded(&h, ratios)) {
                let change = e.rehint(ratios);
                self.hint_event(s, change);
            }
        }
    }

    /// The controller's CPU shares per zone, from the nodes as they are.
    pub(crate) fn refresh_zone_ratios(&mut self) {
        if !self.services.auto {
            return;
        }
        let zones = self.services.zone_of.iter().max().map_or(0, |z| z + 1);
        let sched = &self.sched;
        let views = self
            .services
            .zone_of
            .iter()
            .enumerate()
            .map(|(n, &z)| NodeView {
                zone: Some(z),
                ready: sched.is_ready(n),
                cpu_millis: sched.allocatable(n).map(|a| a.cpu_millis),
            });
        self.services.ratios = hints::zone_ratios(views, zones);
    }

    /// The EndpointSlice controller's event for Service `s`'s hints.
    fn hint_event(&mut self, s: usize, change: HintChange) {
        let object = format!("service/{}", self.services.list[s].spec.name);
        match change {
            HintChange::Unchanged => {}
            HintChange::Enabled => self.event(
                "Normal",
                hints::ENABLED_REASON,
                "endpoint-slice-controller",
                hints::ENABLED_MESSAGE.to_string(),
                object,
            ),
            HintChange::Disabled(why) => self.event(
                "Warning",
                hints::DISABLED_REASON,
                "endpoint-slice-controller",
                why.to_string(),
                object,
            ),
        }
    }

    /// Where a request of source `t` entering at a NodePort goes: the node
    /// (uniform or named), its address and the Service's NodePort.
    pub(crate) fn node_port_target(&mut self, t: usize, s: usize) -> Option<NodePortTarget> {
        let entry = self.cfg.traffic[t].entry?;
        let node = match entry.node {
            Some(n) => n,
            None => self.traffic[t]
                .pick
                .random_range(0..self.cfg.nodes.len().max(1)),
        };
        let addr = self.services.edge.addressing.address(node, entry.kind)?;
        let first = self.services.list[s]
            .spec
            .ports
            .first()
            .and_then(|p| p.node_port);
        let port = entry.port.or(first)?;
        Some(NodePortTarget {
            service: s as u32,
            node: node as u32,
            kind: entry.kind,
            addr,
            port,
            source: entry.source,
        })
    }

    /// For source `t` entering at a NodePort: the public node addresses its
    /// port is open on (0 when the Service does not listen on it).
    pub(crate) fn public_open_for(&self, t: usize) -> u32 {
        let (Some(entry), Some(s)) = (self.cfg.traffic[t].entry, self.cfg.traffic[t].service)
        else {
            return 0;
        };
        let spec = &self.services.list[s].spec;
        let first = spec.ports.first().and_then(|p| p.node_port);
        let Some(port) = entry.port.or(first) else {
            return 0;
        };
        if !spec.kind.has_node_port() || !spec.ports.iter().any(|p| p.node_port == Some(port)) {
            return 0;
        }
        let edge = &self.services.edge;
        (0..self.cfg.nodes.len())
            .filter_map(|n| edge.addressing.address(n, NodeAddressKind::Public))
            .filter(|&a| {
                crate::services::node_port::accepts(
                    edge.mode,
                    &edge.node_port_addresses,
                    NodeAddressKind::Public,
                    a,
                )
            })
            .count() as u32
    }

    /// The NodePorts of the run and the node addresses each is open on.
    pub(crate) fn node_port_report(&self) -> Vec<output::NodePortState> {
        let edge = &self.services.edge;
        self.services
            .list
            .iter()
            .filter(|r| r.spec.kind.has_node_port())
            .flat_map(|r| {
                r.spec.ports.iter().filter_map(move |p| {
                    let port = p.node_port?;
                    let open = |kind| {
                        (0..self.cfg.nodes.len())
                            .filter_map(|n| edge.addressing.address(n, kind))
                            .filter(|&a| {
                                crate::services::node_port::accepts(
                                    edge.mode,
                                    &edge.node_port_addresses,
                                    kind,
                                    a,
                                )
                            })
                            .count() as u32
                    };
                    Some(output::NodePortState {
                        service: r.spec.name.clone(),
                        port,
                        open_internal: open(NodeAddressKind::Internal),
                        open_public: open(NodeAddressKind::Public),
                    })
                })
            })
            .collect()
    }

    /// Each `healthCheckNodePort` and how many nodes answer 200 and 503 on
    /// it now ([`crate::services::health_check_status`]).
    pub(crate) fn health_check_report(&self) -> Vec<output::HealthCheckState> {
        let nodes = self.cfg.nodes.len();
        self.services
            .list
            .iter()
            .zip(&self.services.eps)
            .filter_map(|(r, eps)| {
                let port = r.spec.health_check_node_port?;
                let eps = eps.as_ref()?;
                let ok = (0..nodes)
                    .filter(|&n| crate::services::health_check_status(eps.local(n)) == 200)
                    .count() as u32;
                Some(output::HealthCheckState {
                    service: r.spec.name.clone(),
                    port,
                    nodes_ok: ok,
                    nodes_unavailable: nodes as u32 - ok,
                })
            })
            .collect()
    }
}
