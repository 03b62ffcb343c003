//! # Services as their own objects: selectors, types, traffic policies
//!
//! ## Scope
//! A Service is a name in a namespace, a label selector over the pods of
//! any workload, ports (name, port, targetPort, protocol, nodePort), a type
//! (ClusterIP, NodePort, LoadBalancer), headless or not, and the traffic
//! policies kube-proxy applies when it picks an endpoint:
//! `externalTrafficPolicy`, `internalTrafficPolicy` and
//! `trafficDistribution: PreferClose`. Several Services may select one
//! workload and one Service may select several workloads.
//!
//! A workload that no Service selects keeps the model's historical implicit
//! Service: same name and namespace, selecting it alone, ClusterIP, its
//! serving port ([`resolve`]). Explicit Services come after the implicit
//! ones in the resolved list, so a run without explicit Services numbers its
//! Services as its workloads.
//!
//! Labels belong to a workload's pod template: every pod of a workload has
//! the same labels, so which Services select which workload is computed once
//! per run ([`SelectorIndex`]) and a pod's readiness change touches only the
//! Services that select its workload (no walk of every Service per pod
//! event). Endpoints are kept per Service, per zone and per node
//! ([`TopologyEndpoints`]) so that a pick under any policy is O(1) whatever
//! the number of Services, endpoints or zones.
//!
//! ## Parameters
//! - Endpoint choice: uniform among the usable endpoints (docs/calibration.md,
//!   row `kp-iptables-rule-walk`).
//! - `internalTrafficPolicy: Local`: node-local Ready endpoints only, dropped
//!   when there is none (row `svc-internal-traffic-policy`).
//! - `externalTrafficPolicy: Local`: node-local endpoints only, the client's
//!   source address kept; traffic reaching a node without one is dropped;
//!   `Cluster`: any endpoint, SNAT to the node's address when the endpoint is
//!   on another node (row `svc-external-traffic-policy`). The health-check
//!   node port answers 200 with at least one local endpoint, else 503
//!   ([`health_check_status`], row `svc-health-check-node-port`).
//! - `trafficDistribution: PreferClose`: same-zone endpoints when the
//!   client's zone has any, else all (row `svc-prefer-close`).
//! - NodePort range and the node addresses it opens on: [`node_port`].
//!
//! ## What it emits
//! [`resolve`]'s list of Services with the workloads each selects; per pick,
//! the endpoint ([`Choice`]) or why there is none.
//!
//! ## Validation
//! `tests.rs`: incremental endpoints against endpoints recomputed from the
//! selector from scratch (a proptest over random label sets and readiness
//! changes), each policy's choice, PreferClose's fallback, NodePort
//! allocation and collisions, the addresses a NodePort opens on per mode.

pub mod hints;
pub mod node_port;

use crate::netpol::{Labels, Protocol};
use crate::service::Endpoints;
use crate::workload::DeploymentSpec;
use sim_core::SimRng;
use std::fmt;

/// The Services of a run beyond the workloads' implicit ones, and the
/// edge in front of the nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServicesConfig {
    /// Explicit Services (NodePorts already allocated).
    pub explicit: Vec<ServiceSpec>,
    /// The nodes' internal and public addresses.
    pub addressing: node_port::NodeAddressing,
    /// kube-proxy's `nodePortAddresses`.
    pub node_port_addresses: node_port::NodePortAddresses,
    /// The security group in front of the nodes; `None`: none.
    pub security_group: Option<crate::security_group::SecurityGroup>,
}

/// Traffic from outside the cluster entering at a node address and a
/// Service's NodePort.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodePortEntry {
    /// The node (index); `None`: a node drawn uniformly per connection.
    pub node: Option<usize>,
    /// Which of its addresses.
    pub kind: node_port::NodeAddressKind,
    /// The client's source address.
    pub source: std::net::Ipv4Addr,
    /// The port it sends to; `None`: the Service's first NodePort.
    pub port: Option<u16>,
}

/// `spec.type`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ServiceType {
    /// A virtual IP inside the cluster.
    #[default]
    ClusterIp,
    /// ClusterIP, plus a port in the NodePort range on the nodes.
    NodePort,
    /// NodePort, plus a cloud load balancer in front (the load balancer
    /// itself is outside this module).
    LoadBalancer,
}

impl ServiceType {
    /// The API's spelling.
    pub fn name(self) -> &'static str {
        match self {
            ServiceType::ClusterIp => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
        }
    }

    /// Whether the type opens node ports (a LoadBalancer keeps its
    /// NodePorts: row `svc-lb-node-ports`).
    pub fn has_node_port(self) -> bool {
        !matches!(self, ServiceType::ClusterIp)
    }
}

/// `externalTrafficPolicy` / `internalTrafficPolicy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TrafficPolicy {
    /// Any Ready endpoint in the cluster.
    #[default]
    Cluster,
    /// Endpoints on the node the traffic reached only.
    Local,
}

/// One entry of `spec.ports`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    /// `name` (required by the API when there are several ports).
    pub name: Option<String>,
    /// `port`: the port on the ClusterIP.
    pub port: u16,
    /// `targetPort`: the pods' port.
    pub target_port: u16,
    /// `protocol`.
    pub protocol: Protocol,
    /// `nodePort`: given in the spec, or allocated ([`node_port::allocate`]).
    pub node_port: Option<u16>,
}

/// A Service as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSpec {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// `spec.selector` (equality on every key; an empty selector selects
    /// nothing, as for a Service without a selector).
    pub selector: Labels,
    /// `spec.ports`.
    pub ports: Vec<ServicePort>,
    /// `spec.type`.
    pub kind: ServiceType,
    /// `clusterIP: None`.
    pub headless: bool,
    /// `spec.externalTrafficPolicy` (NodePort and LoadBalancer only).
    pub external_policy: TrafficPolicy,
    /// `spec.internalTrafficPolicy`.
    pub internal_policy: TrafficPolicy,
    /// `spec.trafficDistribution: PreferClose`.
    pub prefer_close: bool,
    /// The `service.kubernetes.io/topology-mode: Auto` annotation: Topology
    /// Aware Routing ([`hints`]); it takes precedence over PreferClose.
    pub topology_auto: bool,
    /// `spec.healthCheckNodePort`: allocated from the NodePort range for a
    /// LoadBalancer Service with `externalTrafficPolicy: Local`
    /// ([`ServiceSpec::needs_health_check`]); kube-proxy answers on it with
    /// [`health_check_status`].
    pub health_check_node_port: Option<u16>,
}

impl ServicePort {
    /// An unnamed TCP port `port` to the pods' `target_port`, with
    /// `node_port` when the Service opens one.
    pub fn tcp(port: u16, target_port: u16, node_port: Option<u16>) -> Self {
        ServicePort {
            name: None,
            port,
            target_port,
            protocol: Protocol::Tcp,
            node_port,
        }
    }
}

impl ServiceSpec {
    /// A ClusterIP Service `name` in `namespace` over the pods labelled
    /// `selector`, with one port.
    pub fn cluster_ip(name: &str, namespace: &str, selector: Labels, port: ServicePort) -> Self {
        ServiceSpec {
            name: name.to_string(),
            namespace: namespace.to_string(),
            selector,
            ports: vec![port],
            kind: ServiceType::ClusterIp,
            headless: false,
            external_policy: TrafficPolicy::Cluster,
            internal_policy: TrafficPolicy::Cluster,
            prefer_close: false,
            topology_auto: false,
            health_check_node_port: None,
        }
    }

    /// Whether kube-proxy filters this Service's endpoints by zone:
    /// `trafficDistribution: PreferClose` or Topology Aware Routing.
    pub fn zonal(&self) -> bool {
        self.prefer_close || self.topology_auto
    }

    /// Whether the apiserver allocates a `healthCheckNodePort`: type
    /// LoadBalancer with `externalTrafficPolicy: Local` (row
    /// `svc-health-check-node-port`).
    pub fn needs_health_check(&self) -> bool {
        self.kind == ServiceType::LoadBalancer && self.external_policy == TrafficPolicy::Local
    }

    /// Whether the selector selects pods labelled `labels`.
    pub fn selects(&self, labels: &Labels) -> bool {
        selects(&self.selector, labels)
    }
}

/// Whether `selector` (equality on every key) selects `labels`; an empty
/// selector selects nothing.
pub fn selects(selector: &Labels, labels: &Labels) -> bool {
    !selector.is_empty()
        && selector
            .iter()
            .all(|(k, v)| labels.get(k).is_some_and(|l| l == v))
}

/// A Service of the run: explicit, or the implicit one of a workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedService {
    /// The Service.
    pub spec: ServiceSpec,
    /// `Some(w)`: the implicit Service of workload `w`.
    pub implicit: Option<usize>,
    /// The workloads it selects, in workload order.
    pub workloads: Vec<usize>,
}

/// The Services of a run: the implicit Service of every workload that no
/// explicit Service selects (in workload order), then the explicit ones.
pub fn resolve(deployments: &[DeploymentSpec], explicit: &[ServiceSpec]) -> Vec<ResolvedService> {
    let selected: Vec<Vec<usize>> = explicit
        .iter()
        .map(|s| {
            (0..deployments.len())
                .filter(|&w| {
                    deployments[w].namespace == s.namespace && s.selects(&deployments[w].labels)
                })
                .collect()
        })
        .collect();
    let claimed = |w: usize| selected.iter().any(|ws| ws.contains(&w));
    let mut out: Vec<ResolvedService> = deployments
        .iter()
        .enumerate()
        .filter(|&(w, _)| !claimed(w))
        .map(|(w, d)| ResolvedService {
            spec: ServiceSpec::cluster_ip(
                &d.name,
                &d.namespace,
                d.labels.clone(),
                ServicePort {
                    name: d.port.name.clone(),
                    port: d.port.number,
                    target_port: d.port.number,
                    protocol: d.port.protocol,
                    node_port: None,
                },
            ),
            implicit: Some(w),
            workloads: vec![w],
        })
        .collect();
    out.extend(
        explicit
            .iter()
            .zip(selected)
            .map(|(s, workloads)| ResolvedService {
                spec: s.clone(),
                implicit: None,
                workloads,
            }),
    );
    out
}

/// Which Services select each workload (index = workload), built once.
#[derive(Clone, Debug, Default)]
pub struct SelectorIndex {
    by_workload: Vec<Vec<u32>>,
}

impl SelectorIndex {
    /// The index of `services` over `workloads` workloads.
    pub fn new(services: &[ResolvedService], workloads: usize) -> Self {
        let mut by_workload = vec![Vec::new(); workloads];
        for (s, r) in services.iter().enumerate() {
            for &w in &r.workloads {
                by_workload[w].push(s as u32);
            }
        }
        SelectorIndex { by_workload }
    }

    /// The Services selecting workload `w`'s pods.
    pub fn of(&self, w: usize) -> &[u32] {
        &self.by_workload[w]
    }
}

/// One Service's Ready endpoints, all of them and by zone and by node (the
/// latter two only when a policy needs them).
#[derive(Clone, Debug, Default)]
pub struct TopologyEndpoints {
    /// Every Ready endpoint.
    pub all: Endpoints,
    /// Per zone index, the endpoints kube-proxy on a node of that zone
    /// keeps when it filters by zone: with PreferClose those in the zone,
    /// with Topology Aware Routing those hinted for it (empty unless one
    /// of them is on; all empty while hints are off).
    by_zone: Vec<Endpoints>,
    /// Per node index (empty unless a Local policy or a node port).
    by_node: Vec<Endpoints>,
    /// Topology Aware Routing's state, when the Service asks for it.
    auto: Option<AutoHints>,
}

/// What Topology Aware Routing keeps for one Service.
#[derive(Clone, Debug)]
struct AutoHints {
    /// The Ready endpoints by the zone they are in.
    located: Vec<Endpoints>,
    /// The last computation's outcome (`None` before the first).
    state: Option<Result<(), hints::Disabled>>,
}

/// What one recomputation of a Service's hints changed, for the events an
/// operator reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HintChange {
    /// Hints written where there were none (`TopologyAwareHintsEnabled`).
    Enabled,
    /// Hints removed, or removed for another reason than before
    /// (`TopologyAwareHintsDisabled`).
    Disabled(hints::Disabled),
    /// Same state as before (hints possibly reallocated).
    Unchanged,
}

impl TopologyEndpoints {
    /// Endpoints for a Service of `spec` over `zones` zones and `nodes`
    /// nodes: the per-zone and per-node lists exist only when used.
    pub fn new(spec: &ServiceSpec, zones: usize, nodes: usize) -> Self {
        let local = spec.internal_policy == TrafficPolicy::Local
            || spec.external_policy == TrafficPolicy::Local;
        TopologyEndpoints {
            all: Endpoints::default(),
            by_zone: if spec.zonal() {
                vec![Endpoints::default(); zones]
            } else {
                Vec::new()
            },
            by_node: if local {
                vec![Endpoints::default(); nodes]
            } else {
                Vec::new()
            },
            auto: spec.topology_auto.then(|| AutoHints {
                located: vec![Endpoints::default(); zones],
                state: None,
            }),
        }
    }

    /// Whether the Service uses Topology Aware Routing (its hints are
    /// recomputed with [`TopologyEndpoints::rehint`] after each change).
    pub fn is_auto(&self) -> bool {
        self.auto.is_some()
    }

    /// Pod `pod` on `node` in `zone` is Ready.
    pub fn add(&mut self, pod: u32, node: usize, zone: usize) {
        self.all.add(pod);
        let zonal = match self.auto.as_mut() {
            Some(a) => &mut a.located,
            None => &mut self.by_zone,
        };
        if let Some(z) = zonal.get_mut(zone) {
            z.add(pod);
        }
        if let Some(n) = self.by_node.get_mut(node) {
            n.add(pod);
        }
    }

    /// Pod `pod` (last on `node` in `zone`) is no longer an endpoint.
    pub fn remove(&mut self, pod: u32, node: usize, zone: usize) {
        self.all.remove(pod);
        let zonal = match self.auto.as_mut() {
            Some(a) => &mut a.located,
            None => &mut self.by_zone,
        };
        if let Some(z) = zonal.get_mut(zone) {
            z.remove(pod);
        }
        if let Some(n) = self.by_node.get_mut(node) {
            n.remove(pod);
        }
    }

    /// The EndpointSlice controller recomputes the hints with the zones'
    /// CPU `ratios` ([`hints::zone_ratios`]): the per-zone lists become the
    /// endpoints hinted for each zone, or all empty when a safeguard
    /// removes the hints. A no-op without Topology Aware Routing.
    pub fn rehint(&mut self, ratios: &Result<Vec<Option<f64>>, hints::Disabled>) -> HintChange {
        let Some(auto) = self.auto.as_mut() else {
            return HintChange::Unchanged;
        };
        for z in &mut self.by_zone {
            *z = Endpoints::default();
        }
        let outcome = ratios
            .clone()
            .and_then(|r| hints::allocations(&r, self.all.len()));
        let now = match outcome {
            Ok(allocs) => {
                let counts: Vec<usize> = auto.located.iter().map(Endpoints::len).collect();
                let moves = hints::hint(&allocs, &counts);
                for (z, here) in auto.located.iter().enumerate() {
                    let mut pods = here.pods().iter();
                    for m in moves.iter().filter(|m| m.from == z) {
                        for &p in pods.by_ref().take(m.count) {
                            self.by_zone[m.to].add(p);
                        }
                    }
                    for &p in pods {
                        self.by_zone[z].add(p);
                    }
                }
                Ok(())
            }
            Err(d) => Err(d),
        };
        let before = auto.state.replace(now);
        match (before, now) {
            (Some(Ok(())), Ok(())) => HintChange::Unchanged,
            (_, Ok(())) => HintChange::Enabled,
            (Some(Err(b)), Err(d)) if b == d => HintChange::Unchanged,
            (_, Err(d)) => HintChange::Disabled(d),
        }
    }

    /// Endpoints hinted for each zone, when Topology Aware Routing's hints
    /// are on (`None` otherwise).
    pub fn hinted(&self) -> Option<Vec<usize>> {
        matches!(self.auto.as_ref()?.state, Some(Ok(())))
            .then(|| self.by_zone.iter().map(Endpoints::len).collect())
    }

    /// Topology Aware Routing's current outcome: `None` without it or
    /// before the first computation.
    pub fn hint_state(&self) -> Option<Result<(), hints::Disabled>> {
        self.auto.as_ref()?.state
    }

    /// Ready endpoints on `node` (0 when per-node lists are not kept).
    pub fn local(&self, node: usize) -> usize {
        self.by_node.get(node).map_or(0, Endpoints::len)
    }

    /// Picks an endpoint for traffic that reached node `node` in zone
    /// `zone` under `policy` (the policy in force for this traffic:
    /// internal or external); with `zonal` (PreferClose or Topology Aware
    /// Routing, [`ServiceSpec::zonal`]) kube-proxy keeps the endpoints for
    /// its zone when there are any, else uses them all (its fallback when
    /// hints are off or none is for its zone: `topologyModeFromHints`).
    pub fn choose(
        &self,
        policy: TrafficPolicy,
        zonal: bool,
        node: Option<usize>,
        zone: Option<usize>,
        rng: &mut SimRng,
    ) -> Choice {
        if policy == TrafficPolicy::Local {
            let Some(set) = node.and_then(|n| self.by_node.get(n)) else {
                return Choice::NoLocalEndpoint;
            };
            return set.pick(rng).map_or(Choice::NoLocalEndpoint, Choice::Pod);
        }
        if zonal {
            if let Some(set) = zone.and_then(|z| self.by_zone.get(z)) {
                if let Some(p) = set.pick(rng) {
                    return Choice::Pod(p);
                }
            }
        }
        self.all.pick(rng).map_or(Choice::NoEndpoints, Choice::Pod)
    }
}

/// What a Service's pick gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// This endpoint.
    Pod(u32),
    /// No Ready endpoint at all: kube-proxy's REJECT.
    NoEndpoints,
    /// A `Local` policy and none on this node: dropped.
    NoLocalEndpoint,
}

/// The health-check node port's answer (kube-proxy's `ServeHTTP` in
/// `pkg/proxy/healthcheck/service_health.go`): 200 with at least one local
/// endpoint, 503 without (row `svc-health-check-node-port`).
pub fn health_check_status(local_endpoints: usize) -> u16 {
    if local_endpoints > 0 {
        200
    } else {
        503
    }
}

impl fmt::Display for TrafficPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrafficPolicy::Cluster => "Cluster",
            TrafficPolicy::Local => "Local",
        })
    }
}

#[cfg(test)]
mod tests;
