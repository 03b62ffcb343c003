//! # What a cluster run's mesh is given
//!
//! [`MeshConfig`]: the data plane's mode (a sidecar proxy per pod, or
//! ambient's node proxy with an optional waypoint), which workloads are in
//! the mesh, and each proxy's resources. Built and validated by
//! sim-scenarios from the scenario's `mesh:` section; the cluster run's
//! `mesh` room puts the proxies on the request path.

/// The proxy a sidecar mesh injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyKind {
    /// Istio's Envoy sidecar (`istio-proxy`), redirected to by the
    /// `istio-init` container's iptables rules.
    Istio,
    /// Linkerd's Rust proxy (`linkerd2-proxy`), redirected to by
    /// `linkerd-init`.
    Linkerd,
}

/// How the mesh's data plane is laid out.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MeshMode {
    /// A proxy container in every meshed pod: a request leaves through its
    /// client's proxy (outbound) and enters through its server's proxy
    /// (inbound).
    Sidecar(ProxyKind),
    /// Istio ambient: one ztunnel per node (L4, mTLS), the source node's
    /// then the destination node's; with a waypoint (an Envoy Deployment
    /// for L7, making the L7 decisions), between them.
    Ambient {
        /// The waypoint's resources; `None`: no waypoint (L4 only).
        waypoint: Option<ProxyResources>,
    },
}

/// One proxy's CPU and memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProxyResources {
    /// CPU it may use (its limit) \[millicores\].
    pub cpu_millis: u32,
    /// Container memory limit \[bytes\]: beyond it the proxy is OOM-killed.
    pub memory_limit: u64,
}

impl ProxyResources {
    /// Istio's injection defaults (`values.global.proxy.resources`):
    /// limits of 2 CPUs and 1 GiB (docs/calibration.md, row
    /// `istio-proxy-resources`).
    pub const ISTIO_SIDECAR: ProxyResources = ProxyResources {
        cpu_millis: 2_000,
        memory_limit: 1 << 30,
    };
}

/// The service mesh of a cluster run.
#[derive(Clone, Debug, PartialEq)]
pub struct MeshConfig {
    /// Sidecars or ambient.
    pub mode: MeshMode,
    /// Per workload (index of [`crate::cluster::ClusterConfig::deployments`]):
    /// whether its pods are in the mesh (sidecar injected, or enrolled in
    /// ambient). The cluster DNS is out by default, as Istio never injects
    /// `kube-system`.
    pub meshed: Vec<bool>,
    /// Each proxy's resources: every sidecar, or every node's ztunnel.
    pub resources: ProxyResources,
    /// Istio DestinationRules the L7 proxies apply ([`super::rules`]):
    /// client sidecars, or in ambient mode the waypoint.
    pub destination_rules: Vec<super::rules::DestinationRule>,
    /// Istio VirtualServices' routes the L7 proxies apply.
    pub virtual_services: Vec<super::rules::VirtualService>,
    /// How the sidecars start against their app containers
    /// ([`crate::mesh::lifecycle`]); `None`: not modelled (a meshed pod
    /// starts as an unmeshed one).
    pub lifecycle: Option<crate::mesh::lifecycle::LifecycleSpec>,
}

impl MeshConfig {
    /// Whether workload `d`'s pods are in the mesh.
    pub fn is_meshed(&self, d: usize) -> bool {
        self.meshed.get(d).copied().unwrap_or(false)
    }
}
