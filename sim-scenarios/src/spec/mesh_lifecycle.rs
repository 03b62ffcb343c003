//! How the sidecars start: the `mesh.lifecycle` section.
//!
//! # Scope
//! The order of the proxy and the app container (sim-models
//! `mesh::lifecycle`): by default ordinary containers started together;
//! `hold_application_until_proxy_starts` (Istio's `postStart` hook,
//! `pilot-agent wait`) or `native_sidecars` (Kubernetes 1.28+ sidecar
//! containers, Istio's `ENABLE_NATIVE_SIDECARS`) hold the app until the
//! proxy is ready; the proxy's time to listen (Envoy's start and first
//! configuration from istiod: an assumption, drawn per start between
//! `min` and `max`); its probe (Istio 1.20+'s startup probe every 1 s, or
//! the older readiness probe after 1 s every 2 s).
//!
//! ```yaml
//! mesh:
//!   mode: sidecar
//!   lifecycle:
//!     proxy_listens_after: {min: 1s, max: 5s}
//!     hold_application_until_proxy_starts: true   # or native_sidecars: true
//!     startup_probe: true                         # default (Istio 1.20+)
//! ```
//!
//! # Validation
//! Sidecar mode only; the two fixes are exclusive; `min` at most `max`.
//! Each is a located error with a hint.

use super::{Validator, R};
use crate::envelope::Locate;
use crate::locate::Seg;
use crate::path;
use crate::units::Duration;
use schemars::JsonSchema;
use serde::Deserialize;
use sim_models::cluster::{Action, TimedAction};
use sim_models::mesh::lifecycle::{
    LifecycleSpec, StartOrder, ISTIO_LEGACY_READINESS_PROBE, ISTIO_STARTUP_PROBE,
};
use sim_models::mesh::{MeshConfig, MeshMode};

/// How the sidecars start.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LifecycleFile {
    /// From the proxy container's start to Envoy listening with its first
    /// configuration: drawn uniformly between `min` and `max` per start
    /// (no published figure: an assumption).
    pub proxy_listens_after: ListenRangeFile,
    /// Istio's `holdApplicationUntilProxyStarts`: the app container starts
    /// once the proxy is ready (default false).
    #[serde(default)]
    pub hold_application_until_proxy_starts: bool,
    /// The proxy is a native sidecar container (Kubernetes 1.28+): the app
    /// starts once its startup probe passed (default false).
    #[serde(default)]
    pub native_sidecars: bool,
    /// The proxy has Istio 1.20+'s startup probe (every 1 s; default
    /// true); false: the older readiness probe (after 1 s, every 2 s).
    pub startup_probe: Option<bool>,
}

/// A range of durations.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenRangeFile {
    /// The shortest.
    pub min: Duration,
    /// The longest.
    pub max: Duration,
}

impl Validator<'_> {
    /// Every `proxy_restart` of the timeline (written at `lp`) names a
    /// workload with sidecars.
    pub(super) fn proxy_restarts_meshed(
        &self,
        lp: &[Seg],
        actions: &[TimedAction],
        mesh: Option<&MeshConfig>,
        names: &[&str],
    ) -> R<()> {
        for (i, a) in actions.iter().enumerate() {
            let Action::ProxyRestart { deployment } = a.action else {
                continue;
            };
            let sidecar = mesh
                .is_some_and(|m| matches!(m.mode, MeshMode::Sidecar(_)) && m.is_meshed(deployment));
            if !sidecar {
                return Err(self.err(
                    &[lp, &path!["timeline", i, "proxy_restart"]].concat(),
                    format!("`{}` has no sidecar proxy to restart", names[deployment]),
                    "add mesh: {mode: sidecar} and keep the workload out of mesh.exclude",
                ));
            }
        }
        Ok(())
    }

    /// The sidecars' start-up of `f`, written at `at` (the `lifecycle` key);
    /// `sidecar`: the mesh runs sidecars.
    pub(super) fn mesh_lifecycle(
        &self,
        at: &[Seg],
        f: &LifecycleFile,
        sidecar: bool,
    ) -> R<LifecycleSpec> {
        if !sidecar {
            return Err(self.err(
                at,
                "ambient mode has no sidecar whose start could race the app's",
                "remove `lifecycle`, or write `mode: sidecar`",
            ));
        }
        let order = match (f.hold_application_until_proxy_starts, f.native_sidecars) {
            (false, false) => StartOrder::Concurrent,
            (true, false) => StartOrder::HoldApplication,
            (false, true) => StartOrder::NativeSidecar,
            (true, true) => {
                return Err(self.err(
                    &[at, &path!["native_sidecars"]].concat(),
                    "native sidecars and hold_application_until_proxy_starts both hold the app",
                    "keep one: native_sidecars (Kubernetes 1.28+) or hold_application_until_proxy_starts",
                ))
            }
        };
        let (min, max) = (f.proxy_listens_after.min.0, f.proxy_listens_after.max.0);
        if min > max {
            return Err(self.err(
                &[at, &path!["proxy_listens_after", "min"]].concat(),
                format!("min {min} is more than max {max}"),
                "give min <= max, e.g. {min: 1s, max: 5s}",
            ));
        }
        Ok(LifecycleSpec {
            order,
            probe: if f.startup_probe.unwrap_or(true) {
                ISTIO_STARTUP_PROBE
            } else {
                ISTIO_LEGACY_READINESS_PROBE
            },
            listen_min: min,
            listen_max: max,
        })
    }
}

#[cfg(test)]
#[path = "mesh_lifecycle_tests.rs"]
mod tests;
