//! # The service mesh's proxies on the request path
//!
//! With [`ClusterConfig::mesh`], the proxies a request passes: in sidecar
//! mode the client pod's proxy (outbound, where `istio-init`'s iptables
//! rules redirect the pod's connections) then the server pod's proxy
//! (inbound); in ambient mode the source node's ztunnel, the waypoint if
//! one is deployed, and the destination node's ztunnel.
//!
//! [`Sim::proxy_of`] answers "the proxy of this pod" in O(1): a sidecar is
//! indexed by its pod's id, a ztunnel by its node's index.

use super::*;
use crate::mesh::{MeshConfig, MeshMode};

/// A proxy of the mesh, by where it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProxyAt {
    /// The sidecar of pod `.0` (indexed by pod id).
    Sidecar(u32),
    /// The ztunnel of node `.0` (indexed by node).
    Ztunnel(u32),
}

/// What the run tracks of the mesh.
pub(crate) struct MeshRt {
    /// `mesh_proxies`: proxies running (sidecars of meshed pods on a node,
    /// or ztunnels of nodes running meshed pods).
    proxies: GaugeId,
}

impl MeshRt {
    pub(crate) fn new(m: &mut Metrics) -> Self {
        MeshRt {
            proxies: m.gauge("mesh_proxies"),
        }
    }
}

impl Sim<'_> {
    /// The mesh, when the run has one.
    fn mesh_config(&self) -> Option<&MeshConfig> {
        self.cfg.mesh.as_ref()
    }

    /// The proxy of pod `p`: its sidecar, or its node's ztunnel; `None`:
    /// no mesh, the pod's workload is not in it, or the pod has no node.
    pub(crate) fn proxy_of(&self, p: u32) -> Option<ProxyAt> {
        let mesh = self.mesh_config()?;
        let pod = &self.pods[p as usize];
        if !mesh.is_meshed(pod.deployment as usize) {
            return None;
        }
        let node = pod.node?;
        Some(match mesh.mode {
            MeshMode::Sidecar(_) => ProxyAt::Sidecar(p),
            MeshMode::Ambient { .. } => ProxyAt::Ztunnel(node),
        })
    }

    /// The mesh's gauges (at each sample).
    pub(crate) fn sample_mesh(&mut self) {
        let Some(rt) = self.mesh.as_ref() else {
            return;
        };
        let gauge = rt.proxies;
        let mut sidecars = 0u32;
        let mut ztunnel_nodes = BTreeSet::new();
        for dep in &self.deps {
            for &p in &dep.live {
                match self.proxy_of(p) {
                    Some(ProxyAt::Sidecar(_)) => sidecars += 1,
                    Some(ProxyAt::Ztunnel(n)) => {
                        ztunnel_nodes.insert(n);
                    }
                    None => {}
                }
            }
        }
        let proxies = sidecars as usize + ztunnel_nodes.len();
        self.metrics.set(gauge, proxies as f64);
    }
}
