//! # Deployments and their pods
//!
//! ## Scope
//! A Deployment owns `replicas` pods, created and deleted by its ReplicaSet.
//! A pod goes Unschedulable -> (bound to a node) SandboxFailed or Creating ->
//! Running -> Ready; `kubectl get pods` calls the first three `Pending`
//! (`ContainerCreating` for the bound ones). Only Ready pods receive traffic:
//! a pod becomes Ready `ready_after` after its container started (the
//! readiness probe's `initialDelaySeconds` plus the first successful probe).
//! Scale-down deletes pods in the ReplicaSet controller's order: unscheduled
//! before scheduled, pending before running, not-ready before ready, newest
//! first (`controller.ActivePodsWithRanks`).
//!
//! An application may connect to a Service as it starts ([`StartDial`]):
//! when that fails (no Ready endpoint, or its own sidecar not yet
//! listening: [`crate::mesh::lifecycle`]) it exits and its container
//! restarts with CrashLoopBackOff; the pod is not Ready meanwhile.
//!
//! ## Parameters
//! From the scenario: `replicas`, `startup` (image pull and container start),
//! `ready_after`, the start dial's delay. No calibrated default exists for
//! an application's start.
//!
//! ## What it emits
//! Pod counts by state; pod names in the form operators see
//! (`checkout-5d8f7c9b4-x2k9p`).
//!
//! ## Validation
//! Unit tests pin the deletion order and the naming.

use crate::app::ServerSpec;
use crate::netpol::{Labels, Protocol};
use sim_core::SimDuration;

/// The controller that owns the pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadKind {
    /// Pods named `NAME-HASH-SUFFIX`, labelled `pod-template-hash`.
    Deployment,
    /// Pods named `NAME-ORDINAL`, labelled `statefulset.kubernetes.io/pod-name`;
    /// a new pod takes the lowest free ordinal.
    StatefulSet,
}

/// The port a workload's pods serve on (its Service's target port).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServingPort {
    /// Container port name, which policies may use.
    pub name: Option<String>,
    /// Port number.
    pub number: u16,
    /// Protocol.
    pub protocol: Protocol,
}

/// One Deployment as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentSpec {
    /// Name (also the name of the Service that selects its pods).
    pub name: String,
    /// Deployment or StatefulSet.
    pub kind: WorkloadKind,
    /// Namespace.
    pub namespace: String,
    /// Pod template labels.
    pub labels: Labels,
    /// The port its pods serve on.
    pub port: ServingPort,
    /// Pods wanted at the start of the run.
    pub replicas: u32,
    /// From binding to the container running (image pull, start).
    pub startup: SimDuration,
    /// From the container running to the pod passing its readiness probe.
    pub ready_after: SimDuration,
    /// How each pod serves requests.
    pub server: ServerSpec,
    /// Each pod's CPU and memory requests (`resources.requests`; zero:
    /// none stated).
    pub requests: crate::scheduler::Resources,
    /// A topology spread constraint over zones on its pods (the
    /// workload's own pods are the ones counted).
    pub spread: Option<ZoneSpread>,
    /// `tolerationSeconds` of its pods' `NoExecute` tolerations of the
    /// `node.kubernetes.io/not-ready` and `unreachable` taints: how long
    /// they stay on a failed node before the taint eviction controller
    /// deletes them (default [`crate::node_lifecycle::DEFAULT_TOLERATION`],
    /// what the `DefaultTolerationSeconds` admission plugin adds).
    pub toleration: SimDuration,
    /// The application connects to a Service as it starts and exits when
    /// the connection fails; `None`: it does not.
    pub start_dial: Option<StartDial>,
}

/// An application that connects to a dependency as it starts (a database,
/// a configuration service) and exits when it cannot: its container
/// restarts with CrashLoopBackOff ([`crate::kubelet::CrashLoop`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartDial {
    /// Index of the Service in the run's Services.
    pub service: usize,
    /// From the app container's start to its dial (its own initialisation).
    pub after: SimDuration,
}

/// `topologySpreadConstraints` with `topologyKey: topology.kubernetes.io/zone`
/// and the workload's own labels as `labelSelector`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZoneSpread {
    /// `maxSkew` (at least 1).
    pub max_skew: u32,
    /// `whenUnsatisfiable: DoNotSchedule` (true) or `ScheduleAnyway` (false).
    pub do_not_schedule: bool,
}

impl DeploymentSpec {
    /// A Deployment in namespace `default`, labelled `app: NAME`, serving on
    /// TCP port 8080 (knsim's defaults when a scenario does not say).
    pub fn new(
        name: &str,
        replicas: u32,
        startup: SimDuration,
        ready_after: SimDuration,
        server: ServerSpec,
    ) -> Self {
        DeploymentSpec {
            name: name.to_string(),
            kind: WorkloadKind::Deployment,
            namespace: "default".to_string(),
            labels: [("app".to_string(), name.to_string())]
                .into_iter()
                .collect(),
            port: ServingPort {
                name: None,
                number: 8080,
                protocol: Protocol::Tcp,
            },
            replicas,
            startup,
            ready_after,
            server,
            requests: crate::scheduler::Resources::default(),
            spread: None,
            toleration: crate::node_lifecycle::DEFAULT_TOLERATION,
            start_dial: None,
        }
    }
}

/// Where a pod is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PodState {
    /// No node fits (`FailedScheduling`).
    Unschedulable,
    /// Bound, but the CNI could not set up its network (`FailedCreatePodSandBox`).
    SandboxFailed,
    /// Bound, network set up, container starting (`ContainerCreating`).
    Creating,
    /// Container running, readiness probe not yet passed.
    Running,
    /// Ready: an endpoint of its Service.
    Ready,
}

impl PodState {
    /// Every state, in life order.
    pub const ALL: [PodState; 5] = [
        PodState::Unschedulable,
        PodState::SandboxFailed,
        PodState::Creating,
        PodState::Running,
        PodState::Ready,
    ];

    /// Whether `kubectl get pods` shows the pod as `Pending`.
    pub fn is_pending(self) -> bool {
        matches!(
            self,
            PodState::Unschedulable | PodState::SandboxFailed | PodState::Creating
        )
    }

    /// The STATUS column of `kubectl get pods`.
    pub fn kubectl_status(self) -> &'static str {
        match self {
            PodState::Unschedulable => "Pending",
            PodState::SandboxFailed | PodState::Creating => "ContainerCreating",
            PodState::Running | PodState::Ready => "Running",
        }
    }

    /// Deletion rank: lower is deleted first (ReplicaSet controller order).
    pub fn deletion_rank(self) -> u8 {
        match self {
            PodState::Unschedulable => 0,
            PodState::SandboxFailed | PodState::Creating => 1,
            PodState::Running => 2,
            PodState::Ready => 3,
        }
    }
}

/// The pod name a ReplicaSet would give its `n`-th pod: deployment name, a
/// template hash and a five-character suffix, both derived from the name and
/// `n` so that runs are reproducible.
pub fn pod_name(deployment: &str, n: u32) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in deployment.as_bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut hash = String::new();
    let mut x = h;
    for _ in 0..9 {
        hash.push(ALPHABET[(x % ALPHABET.len() as u64) as usize] as char);
        x /= ALPHABET.len() as u64;
    }
    let mut y = h ^ (u64::from(n) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    y ^= y >> 29;
    let mut suffix = String::new();
    for _ in 0..5 {
        suffix.push(ALPHABET[(y % ALPHABET.len() as u64) as usize] as char);
        y /= ALPHABET.len() as u64;
    }
    format!("{deployment}-{hash}-{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletion_prefers_pending_then_not_ready() {
        let mut states = PodState::ALL.to_vec();
        states.sort_by_key(|s| std::cmp::Reverse(s.deletion_rank()));
        assert_eq!(states.last(), Some(&PodState::Unschedulable));
        assert_eq!(states.first(), Some(&PodState::Ready));
        assert!(PodState::SandboxFailed.is_pending() && !PodState::Running.is_pending());
    }

    #[test]
    fn pod_names_look_like_replicaset_names_and_repeat() {
        let a = pod_name("checkout", 0);
        assert_eq!(a, pod_name("checkout", 0));
        assert_ne!(a, pod_name("checkout", 1));
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(
            (parts[0], parts[1].len(), parts[2].len()),
            ("checkout", 9, 5)
        );
    }
}
