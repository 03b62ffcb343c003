//! The service mesh: the `mesh` section.
//!
//! # Scope
//! Which data plane the mesh runs (sim-models `mesh`): a sidecar proxy in
//! every meshed pod (Istio's Envoy or Linkerd's proxy), or Istio ambient's
//! ztunnel on every node with an optional waypoint; which workloads are in
//! the mesh (all but the cluster DNS's unless excluded, as a namespace
//! labelled for injection with `kube-system` left out); each proxy's CPU and
//! memory limits (default: Istio's injection defaults, docs/calibration.md
//! row `istio-proxy-resources`). A variant's `mesh:` replaces the top
//! level's.
//!
//! ```yaml
//! mesh:
//!   mode: sidecar            # or ambient
//!   proxy: istio             # or linkerd (sidecar mode)
//!   exclude: [legacy-batch]  # sidecar.istio.io/inject: "false"
//!   resources: {cpu: 2, memory_limit: 1Gi}
//! # mesh: {mode: ambient, waypoint: {cpu: 2, memory_limit: 1Gi}}
//! ```
//!
//! # Validation
//! An unknown field or value is a located serde error; `proxy` outside
//! sidecar mode, `waypoint` outside ambient mode, an excluded name that is
//! not a workload, or one excluded twice, is a located error with a hint;
//! so is a proxy memory limit at or below the proxy's base memory (it would
//! be OOM-killed at its first request: sim-models `mesh::proxy`).

use super::{Validator, R};
use crate::envelope::{did_you_mean, Locate};
use crate::locate::Seg;
use crate::path;
use crate::units::{Cpu, Memory};
use schemars::JsonSchema;
use serde::Deserialize;
use sim_models::mesh::proxy::ProxyProfile;
use sim_models::mesh::{MeshConfig, MeshMode, ProxyKind, ProxyResources};

/// The service mesh.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MeshFile {
    /// `sidecar` (a proxy in every meshed pod) or `ambient` (a ztunnel per
    /// node, an optional waypoint).
    pub mode: MeshModeName,
    /// Sidecar mode: `istio` (default) or `linkerd`.
    pub proxy: Option<ProxyName>,
    /// Ambient mode: a waypoint proxy for L7, with its resources (`{}`:
    /// the defaults); left out: none, L4 only.
    pub waypoint: Option<ProxyResourcesFile>,
    /// Workloads left out of the mesh (`sidecar.istio.io/inject: "false"`,
    /// `istio.io/dataplane-mode: none`). The cluster DNS's workload is
    /// always out.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Each sidecar's or ztunnel's resources (default: 2 CPUs, 1Gi).
    pub resources: Option<ProxyResourcesFile>,
    /// Istio DestinationRules (`mesh_l7.rs`).
    #[serde(default)]
    pub destination_rules: Vec<super::mesh_l7::DestinationRuleFile>,
    /// Istio VirtualServices (`mesh_l7.rs`).
    #[serde(default)]
    pub virtual_services: Vec<super::mesh_l7::VirtualServiceFile>,
    /// How the sidecars start against their app containers (default: not
    /// modelled): `mesh_lifecycle.rs`.
    pub lifecycle: Option<super::mesh_lifecycle::LifecycleFile>,
}

/// How the mesh's data plane is laid out.
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MeshModeName {
    /// A proxy container in every meshed pod.
    Sidecar,
    /// Istio ambient: ztunnel per node, optional waypoint.
    Ambient,
}

/// The sidecar proxy.
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProxyName {
    /// Istio's Envoy.
    Istio,
    /// Linkerd's linkerd2-proxy.
    Linkerd,
}

/// A proxy's CPU and memory limits.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxyResourcesFile {
    /// CPU limit (default `2`, Istio's).
    pub cpu: Option<Cpu>,
    /// Container memory limit (default `1Gi`, Istio's).
    pub memory_limit: Option<Memory>,
}

impl ProxyResourcesFile {
    fn resources(&self) -> ProxyResources {
        let d = ProxyResources::ISTIO_SIDECAR;
        ProxyResources {
            cpu_millis: self.cpu.map_or(d.cpu_millis, |c| c.0),
            memory_limit: self.memory_limit.map_or(d.memory_limit, |m| m.0),
        }
    }
}

impl Validator<'_> {
    /// The mesh of `file` (written at `at`), over `workloads`; `dns`: the
    /// cluster DNS's workload, never meshed.
    pub(super) fn mesh(
        &self,
        at: &[Seg],
        file: Option<&MeshFile>,
        workloads: &[&str],
        dns: Option<usize>,
    ) -> R<Option<MeshConfig>> {
        let Some(f) = file else {
            return Ok(None);
        };
        let field = |n: &[Seg]| [at, &path!["mesh"], n].concat();
        let mode = match f.mode {
            MeshModeName::Sidecar => {
                if f.waypoint.is_some() {
                    return Err(self.err(
                        &field(&path!["waypoint"]),
                        "a waypoint is part of ambient mode, not of sidecar mode",
                        "remove `waypoint`, or write `mode: ambient`",
                    ));
                }
                MeshMode::Sidecar(match f.proxy {
                    None | Some(ProxyName::Istio) => ProxyKind::Istio,
                    Some(ProxyName::Linkerd) => ProxyKind::Linkerd,
                })
            }
            MeshModeName::Ambient => {
                if f.proxy.is_some() {
                    return Err(self.err(
                        &field(&path!["proxy"]),
                        "ambient mode has no sidecar proxy to choose",
                        "remove `proxy` (ambient runs Istio's ztunnel), or write `mode: sidecar`",
                    ));
                }
                MeshMode::Ambient {
                    waypoint: f.waypoint.as_ref().map(ProxyResourcesFile::resources),
                }
            }
        };
        let mut meshed = vec![true; workloads.len()];
        if let Some(d) = dns {
            meshed[d] = false;
        }
        for (i, name) in f.exclude.iter().enumerate() {
            let p = field(&path!["exclude", i]);
            let Some(w) = workloads.iter().position(|x| x == name) else {
                return Err(self.err(
                    &p,
                    format!("`{name}` is not a workload of this scenario"),
                    did_you_mean(name, workloads, "workloads"),
                ));
            };
            if f.exclude[..i].contains(name) {
                return Err(self.err(
                    &p,
                    format!("`{name}` is excluded twice"),
                    "list each workload once",
                ));
            }
            meshed[w] = false;
        }
        let lifecycle = match &f.lifecycle {
            Some(l) => Some(self.mesh_lifecycle(
                &field(&path!["lifecycle"]),
                l,
                matches!(mode, MeshMode::Sidecar(_)),
            )?),
            None => None,
        };
        let resources = f
            .resources
            .as_ref()
            .map_or(ProxyResources::ISTIO_SIDECAR, ProxyResourcesFile::resources);
        let (local, waypoint) = match mode {
            MeshMode::Sidecar(kind) => (ProxyProfile::sidecar(kind), None),
            MeshMode::Ambient { waypoint } => (ProxyProfile::ZTUNNEL, waypoint),
        };
        self.proxy_fits(&field(&path!["resources"]), &local, resources)?;
        if let Some(w) = waypoint {
            self.proxy_fits(&field(&path!["waypoint"]), &ProxyProfile::WAYPOINT, w)?;
        }
        Ok(Some(MeshConfig {
            lifecycle,
            mode,
            meshed,
            resources,
            // Filled once the traffic is known (`mesh_l7.rs`).
            destination_rules: Vec::new(),
            virtual_services: Vec::new(),
        }))
    }
}

impl Validator<'_> {
    /// A proxy whose memory limit is at or below its base (written at
    /// `at`) would be OOM-killed at its first request, for ever.
    fn proxy_fits(&self, at: &[Seg], profile: &ProxyProfile, r: ProxyResources) -> R<()> {
        if r.memory_limit > profile.base_memory {
            return Ok(());
        }
        let mib = |b: u64| b as f64 / f64::from(1u32 << 20);
        Err(self.err(
            &[at, &path!["memory_limit"]].concat(),
            format!(
                "a memory limit of {:.1} MiB is below the proxy's {:.1} MiB with no connection and no request: it would be OOMKilled at its first request",
                mib(r.memory_limit),
                mib(profile.base_memory)
            ),
            "raise `memory_limit` above the proxy's base (Istio's default is 1Gi)",
        ))
    }
}

#[cfg(test)]
#[path = "mesh_tests.rs"]
mod tests;
