//! # Container starts: the sidecar's readiness, the app's start dial, crash loops
//!
//! A pod whose workload has a sidecar ([`crate::mesh::lifecycle`]) or whose
//! application dials a dependency as it starts
//! ([`crate::workload::StartDial`]) does not become Ready after its plain
//! `ready_after`: its containers start in the order of the run's
//! [`LifecycleSpec`], the proxy listens after a drawn time, the kubelet's
//! probe sees it ready on a probe tick, and the app dials its dependency
//! `after` its own start. A dial is refused while the pod's own proxy does
//! not listen (iptables already sends it there) or while the Service has no
//! Ready endpoint; the app then exits and the kubelet restarts its
//! container with CrashLoopBackOff ([`crate::kubelet::CrashLoop`]). The pod
//! is Ready when the proxy's probe has passed and the app is ready
//! (`ready_after` from its start, not before its dial succeeded).
//!
//! Events as an operator sees them: the proxy's failed probes (`Unhealthy`),
//! the app's exit (`knsim`'s `AppExited`, what `kubectl logs --previous`
//! shows), `BackOff` ("Back-off restarting failed container"),
//! `FailedPostStartHook` when `pilot-agent wait` gives up. Per workload,
//! in a run where some workload has such pods, the time series
//! `container_restarts` (restarts so far) and `pods_crash_loop_backoff`
//! (pods waiting out a back-off now).
//!
//! The app's dial is one connection attempt with no retry inside the app
//! (docs/calibration.md, row `app-start-dial`); the kubelet's schedule is
//! row `kubelet-backoff`.
//!
//! A sidecar also restarts when the timeline says so (`proxy_restart`, an
//! Envoy crash) or when the kernel OOM-kills it at its memory limit (the
//! `mesh` room detects the charge past the limit): [`Sim::proxy_restart`]
//! and [`Sim::proxy_oom_killed`] share one path, the proxy's CrashLoopBackOff
//! (a second kill within 10 min waits 10 s, then 20 s, ...). Events: the
//! kernel's `OOMKilling` (node-problem-detector's words, as for CoreDNS:
//! `Memory cgroup out of memory: Killed process (envoy) ...`), `ProxyRestarted`
//! with the container's last state (`Reason: OOMKilled, Exit Code: 137`),
//! `BackOff`.
//!
//! Limitations: the kubelet's pod sync period and probe jitter are not
//! modelled (a restart or a probe tick happens at its nominal instant).

use super::*;
use crate::kubelet::CrashLoop;
use crate::mesh::lifecycle::{self, LifecycleSpec, StartOrder};
use crate::mesh::{MeshMode, ProxyKind};
use mesh::ProxyAt;

/// The name the app container has in events.
const APP: &str = "app";
/// The sidecar container's name.
const PROXY: &str = "istio-proxy";

/// One step of a pod's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// The kubelet's probe sees the proxy ready.
    ProxyReady,
    /// The app container starts (or restarts).
    AppStart,
    /// The app dials its dependency.
    AppDial,
    /// The app's readiness probe passes.
    AppReady,
    /// The proxy's `postStart` hook gives up.
    HookTimeout,
    /// The proxy container starts again after its hook failed.
    ProxyStart,
    /// The kubelet records this many failed probes of the proxy.
    ProbeFailed(u32),
}

impl Step {
    /// A step of the proxy container (the others are the app's).
    fn of_proxy(self) -> bool {
        matches!(
            self,
            Step::ProxyReady | Step::HookTimeout | Step::ProxyStart | Step::ProbeFailed(_)
        )
    }
}

/// What the run tracks of one pod's containers.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PodStart {
    /// Bumped at each start of the app container's steps: a step of an
    /// earlier start is stale.
    gen: u32,
    /// The same for the proxy's steps.
    proxy_gen: u32,
    /// When its proxy listens (`None`: no sidecar; `SimTime::MAX`: its
    /// proxy is down).
    listens: Option<SimTime>,
    /// When its proxy last restarted (its connections were reset).
    restarted: Option<SimTime>,
    proxy_ready: bool,
    app_running: bool,
    /// An app start is scheduled.
    app_pending: bool,
    app_started: SimTime,
    app_ready: bool,
    /// Waiting out a back-off (counted in `pods_crash_loop_backoff`).
    backing_off: bool,
    app: CrashLoop,
    proxy: CrashLoop,
}

/// The run's view of container starts.
pub(crate) struct StartsRt {
    /// By pod id (grown as pods are created).
    pods: Vec<PodStart>,
    /// Per workload: (restarts so far, pods in back-off now, their gauges).
    workloads: Vec<Option<(u64, u32, GaugeId, GaugeId)>>,
    /// Draws each proxy start's time to listen.
    listen: SimRng,
    /// A proxy restarted in this run (until then the request path checks
    /// nothing).
    any_restart: bool,
}

impl StartsRt {
    /// Gauges for every workload when some workload's pods go through
    /// this room (none otherwise).
    pub(crate) fn new(cfg: &ClusterConfig, metrics: &mut Metrics, rng: &RngStreams) -> Self {
        let any = (0..cfg.deployments.len()).any(|d| staged(cfg, d));
        let workloads = (0..cfg.deployments.len())
            .map(|d| {
                any.then(|| {
                    let name = &cfg.deployments[d].name;
                    (
                        0,
                        0,
                        metrics.gauge(&format!("container_restarts{{deployment={name}}}")),
                        metrics.gauge(&format!("pods_crash_loop_backoff{{deployment={name}}}")),
                    )
                })
            })
            .collect();
        StartsRt {
            pods: Vec::new(),
            workloads,
            listen: rng.stream("mesh/proxy-listen"),
            any_restart: false,
        }
    }
}

impl StartsRt {
    /// Pod `p`'s sidecar does not listen at `now`.
    pub(crate) fn closed(&self, p: u32, now: SimTime) -> bool {
        self.any_restart
            && self
                .pods
                .get(p as usize)
                .and_then(|s| s.listens)
                .is_some_and(|l| l > now)
    }
}

/// The sidecar lifecycle of workload `d`'s pods, if they have a sidecar.
pub(crate) fn sidecar_of(cfg: &ClusterConfig, d: usize) -> Option<&LifecycleSpec> {
    let mesh = cfg.mesh.as_ref()?;
    match mesh.mode {
        crate::mesh::MeshMode::Sidecar(_) if mesh.is_meshed(d) => mesh.lifecycle.as_ref(),
        _ => None,
    }
}

/// Whether workload `d`'s pods start through this room.
pub(crate) fn staged(cfg: &ClusterConfig, d: usize) -> bool {
    sidecar_of(cfg, d).is_some() || cfg.deployments[d].start_dial.is_some()
}

impl Sim<'_> {
    /// Pod `p`'s containers start (the pod is Running, not Ready).
    pub(crate) fn containers_start(&mut self, p: u32) {
        let i = p as usize;
        if self.starts.pods.len() <= i {
            self.starts.pods.resize(i + 1, PodStart::default());
        }
        let st = &mut self.starts.pods[i];
        *st = PodStart {
            gen: st.gen.wrapping_add(1),
            proxy_gen: st.proxy_gen.wrapping_add(1),
            ..PodStart::default()
        };
        let d = self.pods[i].deployment as usize;
        if sidecar_of(self.cfg, d).is_some() {
            self.proxy_start(p);
        } else {
            self.starts.pods[i].proxy_ready = true;
            self.step_in(p, SimDuration::ZERO, Step::AppStart);
        }
    }

    fn step_in(&mut self, p: u32, after: SimDuration, step: Step) {
        let st = &mut self.starts.pods[p as usize];
        let gen = if step.of_proxy() {
            st.proxy_gen
        } else {
            if step == Step::AppStart {
                st.app_pending = true;
            }
            st.gen
        };
        self.engine
            .schedule_in(after, Ev::PodStart { pod: p, gen, step });
    }

    /// The proxy container starts: it listens after a drawn time; the app
    /// container, if not running yet, starts as the start order says.
    fn proxy_start(&mut self, p: u32) {
        let d = self.pods[p as usize].deployment as usize;
        let Some(spec) = sidecar_of(self.cfg, d).copied() else {
            // A sidecar restarted (OOM-killed) in a run without
            // `mesh.lifecycle`: it listens as the kubelet starts it.
            let st = &mut self.starts.pods[p as usize];
            st.listens = Some(self.engine.now());
            st.proxy_ready = true;
            return self.maybe_ready(p);
        };
        let span =
            spec.listen_max.as_nanos() - spec.listen_min.as_nanos().min(spec.listen_max.as_nanos());
        let draw = if span == 0 {
            0
        } else {
            self.starts.listen.random_range(0..=span)
        };
        let listen = SimDuration::from_nanos(spec.listen_min.as_nanos() + draw);
        let now = self.engine.now();
        let seen = spec.probe.passes_at(listen);
        let st = &mut self.starts.pods[p as usize];
        st.listens = Some(now + listen);
        st.proxy_ready = false;
        let app_waits = st.app_running || st.app_pending;
        self.step_in(p, seen, Step::ProxyReady);
        self.probe_failures(p, spec, seen);
        if app_waits {
            return;
        }
        match lifecycle::app_start(spec.order, spec.probe, listen) {
            Ok(at) => self.step_in(p, at, Step::AppStart),
            Err(lifecycle::HookTimedOut) => {
                self.step_in(p, lifecycle::HOLD_TIMEOUT, Step::HookTimeout)
            }
        }
    }

    /// The probes of the proxy that fail before `seen` (from its start):
    /// the first recorded at its tick, the others at the last one's (the
    /// aggregated event's first and last seen and count are the kubelet's).
    fn probe_failures(&mut self, p: u32, spec: LifecycleSpec, seen: SimDuration) {
        let (first, period) = (spec.probe.initial_delay, spec.probe.period);
        if seen <= first || period == SimDuration::ZERO {
            return;
        }
        let failed = ((seen.as_nanos() - first.as_nanos()) / period.as_nanos()) as u32;
        self.step_in(p, first, Step::ProbeFailed(1));
        if failed > 1 {
            let last = SimDuration::from_nanos(seen.as_nanos() - period.as_nanos());
            self.step_in(p, last, Step::ProbeFailed(failed - 1));
        }
    }

    /// `Unhealthy` events for `failed` probes of pod `p`'s proxy.
    fn probes_failed(&mut self, p: u32, failed: u32) {
        let d = self.pods[p as usize].deployment as usize;
        let Some(spec) = sidecar_of(self.cfg, d).copied() else {
            return;
        };
        let kind = if spec.order == StartOrder::NativeSidecar
            || spec.probe == lifecycle::ISTIO_STARTUP_PROBE
        {
            "Startup"
        } else {
            "Readiness"
        };
        for _ in 0..failed {
            let key = EventKey::Ids([d as u32, 0, 0]);
            self.event_by("Warning", "Unhealthy", "kubelet", key, |s| {
                (
                    format!("{kind} probe failed: HTTP probe failed with statuscode: 503"),
                    format!("pod/{}", s.pod_name(p)),
                )
            });
        }
    }

    /// A step of pod `p`'s start, unless the pod or that start is gone.
    pub(crate) fn pod_start_step(&mut self, p: u32, gen: u32, step: Step) {
        let i = p as usize;
        let st = &self.starts.pods[i];
        let current = if step.of_proxy() {
            st.proxy_gen
        } else {
            st.gen
        };
        if self.pods[i].deleted || self.pods[i].state != PodState::Running || current != gen {
            return;
        }
        let now = self.engine.now();
        let d = self.pods[i].deployment as usize;
        match step {
            Step::ProxyReady => {
                self.starts.pods[i].proxy_ready = true;
                self.maybe_ready(p);
            }
            Step::AppStart => {
                let st = &mut self.starts.pods[i];
                st.app_running = true;
                st.app_pending = false;
                st.app_started = now;
                st.app_ready = false;
                if std::mem::take(&mut st.backing_off) {
                    if let Some(w) = self.starts.workloads[d].as_mut() {
                        w.1 -= 1;
                    }
                }
                let spec = &self.cfg.deployments[d];
                match spec.start_dial {
                    Some(dial) => self.step_in(p, dial.after, Step::AppDial),
                    None => self.step_in(p, spec.ready_after, Step::AppReady),
                }
            }
            Step::AppDial => self.app_dial(p),
            Step::AppReady => {
                self.starts.pods[i].app_ready = true;
                self.maybe_ready(p);
            }
            Step::HookTimeout => {
                let key = EventKey::Ids([d as u32, 0, 0]);
                self.event_by("Warning", "FailedPostStartHook", "kubelet", key, |s| {
                    (
                        format!(
                            "PostStartHook failed: pilot-agent wait: timeout waiting for Envoy proxy to become ready (container {PROXY})"
                        ),
                        format!("pod/{}", s.pod_name(p)),
                    )
                });
                let delay = self.starts.pods[i].proxy.exited(now);
                self.restarted(p, d, PROXY, delay);
                self.step_in(p, delay, Step::ProxyStart);
            }
            Step::ProxyStart => self.proxy_start(p),
            Step::ProbeFailed(n) => self.probes_failed(p, n),
        }
    }

    /// The app dials its dependency: refused while its proxy does not
    /// listen or the Service has no Ready endpoint; then it exits.
    fn app_dial(&mut self, p: u32) {
        let i = p as usize;
        let now = self.engine.now();
        let d = self.pods[i].deployment as usize;
        let Some(dial) = self.cfg.deployments[d].start_dial else {
            return;
        };
        let st = self.starts.pods[i];
        let proxy_down = st
            .listens
            .is_some_and(|l| lifecycle::dial_refused(now.since_start(), l.since_start()));
        let no_endpoint = self.services.endpoints(&self.deps, dial.service).is_empty();
        if !proxy_down && !no_endpoint {
            let spec = &self.cfg.deployments[d];
            let ready = (st.app_started + spec.ready_after).max(now);
            self.step_in(p, ready - now, Step::AppReady);
            return;
        }
        let key = EventKey::Ids([d as u32, u32::from(proxy_down), 0]);
        self.event_by("Warning", "AppExited", "knsim", key, |s| {
            let service = &s.services.list[dial.service].spec.name;
            let why = if proxy_down {
                format!(
                    "dial tcp {service}: {} (the {PROXY} sidecar is not listening yet)",
                    lifecycle::REFUSED_MESSAGE
                )
            } else if st.listens.is_some() {
                format!("503 from {PROXY}: no healthy upstream ({service} has no Ready endpoint)")
            } else {
                format!(
                    "dial tcp {service}: connect: connection refused ({service} has no Ready endpoint)"
                )
            };
            (
                format!("container {APP} exited with code 1: {why}"),
                format!("pod/{}", s.pod_name(p)),
            )
        });
        let st = &mut self.starts.pods[i];
        st.app_running = false;
        st.app_ready = false;
        let delay = st.app.exited(now);
        self.restarted(p, d, APP, delay);
        self.step_in(p, delay, Step::AppStart);
    }

    /// Container `container` of pod `p` (workload `d`) exited; the kubelet
    /// starts it again after `delay` (a back-off when not zero).
    fn restarted(&mut self, p: u32, d: usize, container: &str, delay: SimDuration) {
        if let Some(w) = self.starts.workloads[d].as_mut() {
            w.0 += 1;
            if delay > SimDuration::ZERO {
                w.1 += 1;
            }
        }
        if delay == SimDuration::ZERO {
            return;
        }
        self.starts.pods[p as usize].backing_off = true;
        let key = EventKey::Ids([d as u32, u32::from(container == APP), 0]);
        self.event_by("Warning", "BackOff", "kubelet", key, |s| {
            let name = s.pod_name(p);
            let ns = &s.cfg.deployments[d].namespace;
            (
                kubelet::backoff_message(container, &name, ns),
                format!("pod/{name}"),
            )
        });
    }

    /// Pod `p` is deleted: a back-off it waited out no longer counts.
    pub(crate) fn forget_start(&mut self, p: u32) {
        let Some(st) = self.starts.pods.get_mut(p as usize) else {
            return;
        };
        if std::mem::take(&mut st.backing_off) {
            let d = self.pods[p as usize].deployment as usize;
            if let Some(w) = self.starts.workloads[d].as_mut() {
                w.1 -= 1;
            }
        }
    }

    /// The sidecar of every running pod of workload `d` restarts: the pod
    /// is not Ready until the new proxy's probe passes, its connections
    /// are reset ([`Sim::proxy_cut`]) and new ones refused meanwhile.
    pub(crate) fn proxy_restart(&mut self, d: usize) {
        if sidecar_of(self.cfg, d).is_none() {
            return;
        }
        let mut live = self.deps[d].live.clone();
        live.sort_unstable();
        let mut changed = false;
        for p in live {
            changed |= self.sidecar_exited(p, false);
        }
        if changed {
            self.endpoints_changed(d);
        }
    }

    /// The kernel OOM-killed the mesh proxy `at` at its memory limit
    /// (the charge past it was just made): a sidecar restarts as
    /// [`Sim::proxy_restart`]'s do, with the kernel's and the kubelet's
    /// events; a ztunnel or the waypoint restarts at once (their pods'
    /// start is not modelled).
    pub(crate) fn proxy_oom_killed(&mut self, at: ProxyAt) {
        let ProxyAt::Sidecar(p) = at else {
            self.mesh_proxy_restarted(at, true);
            return self.oom_event(at);
        };
        if self.sidecar_exited(p, true) {
            let d = self.pods[p as usize].deployment as usize;
            self.endpoints_changed(d);
        }
    }

    /// The kernel's event for an OOM kill of `at`, as node-problem-detector
    /// reports CoreDNS's.
    fn oom_event(&mut self, at: ProxyAt) {
        let Some(mesh) = self.cfg.mesh.as_ref() else {
            return;
        };
        let (process, limit) = match (mesh.mode, at) {
            (MeshMode::Sidecar(ProxyKind::Linkerd), _) => ("linkerd2-proxy", mesh.resources),
            (MeshMode::Ambient { waypoint: Some(w) }, ProxyAt::Waypoint) => ("envoy", w),
            (MeshMode::Ambient { .. }, _) => ("ztunnel", mesh.resources),
            _ => ("envoy", mesh.resources),
        };
        let mib = limit.memory_limit as f64 / f64::from(1u32 << 20);
        let key = EventKey::Ids(match at {
            ProxyAt::Sidecar(p) => [self.pods[p as usize].deployment, 0, 0],
            ProxyAt::Ztunnel(n) => [u32::MAX, n, 0],
            ProxyAt::Waypoint => [u32::MAX, u32::MAX, 0],
        });
        self.event_by("Warning", "OOMKilling", "kernel-monitor", key, |s| {
            let object = match at {
                ProxyAt::Sidecar(p) => format!("pod/{}", s.pod_name(p)),
                ProxyAt::Ztunnel(n) => format!("node/{}", s.cfg.nodes[n as usize].name),
                ProxyAt::Waypoint => "deployment/waypoint".to_string(),
            };
            (
                format!(
                    "Memory cgroup out of memory: Killed process ({process}) at {mib:.1} MiB, limit {mib:.0} MiB"
                ),
                object,
            )
        });
    }

    /// Pod `p`'s sidecar exits (`oom`: the kernel killed it at its memory
    /// limit) and the kubelet restarts it: its requests and connections
    /// are reset, the pod leaves its Services until the new proxy's probe
    /// passes. True if the pod left its workload's endpoints.
    fn sidecar_exited(&mut self, p: u32, oom: bool) -> bool {
        let now = self.engine.now();
        let i = p as usize;
        let d = self.pods[i].deployment as usize;
        let state = self.pods[i].state;
        if !matches!(state, PodState::Running | PodState::Ready) || self.pod_unreachable(p) {
            return false;
        }
        if self.starts.pods.len() <= i {
            self.starts.pods.resize(i + 1, PodStart::default());
        }
        let st = &mut self.starts.pods[i];
        if st.gen == 0 {
            // Ready since before the run (or started outside this room):
            // both containers run.
            st.app_running = true;
            st.app_ready = true;
        }
        st.proxy_gen = st.proxy_gen.wrapping_add(1);
        st.listens = Some(SimTime::MAX);
        st.restarted = Some(now);
        st.proxy_ready = false;
        self.starts.any_restart = true;
        self.mesh_proxy_restarted(ProxyAt::Sidecar(p), oom);
        let mut changed = false;
        if state == PodState::Ready {
            self.set_state(p, PodState::Running);
            let node = self.pods[i].node;
            self.endpoint_down(p, d, node);
            changed = true;
        }
        let key = EventKey::Ids([d as u32, 0, 0]);
        if oom {
            self.oom_event(ProxyAt::Sidecar(p));
            let key = EventKey::Ids([d as u32, 1, 0]);
            self.event_by("Warning", "ProxyRestarted", "knsim", key, |s| {
                (
                    format!("container {PROXY} (Last State: Terminated, Reason: OOMKilled, Exit Code: 137) restarts: the pod's connections through it are reset"),
                    format!("pod/{}", s.pod_name(p)),
                )
            });
        } else {
            self.event_by("Warning", "ProxyRestarted", "knsim", key, |s| {
                (
                    format!("container {PROXY} exited and restarts: the pod's connections through it are reset"),
                    format!("pod/{}", s.pod_name(p)),
                )
            });
        }
        let delay = self.starts.pods[i].proxy.exited(now);
        self.restarted(p, d, PROXY, delay);
        self.step_in(p, delay, Step::ProxyStart);
        changed
    }

    /// Pod `p`'s sidecar does not listen now: connections to it are
    /// refused.
    pub(crate) fn proxy_closed(&self, p: u32) -> bool {
        self.starts.closed(p, self.engine.now())
    }

    /// The try `req`, ending now at pod `p`, was on a connection a
    /// restarting sidecar reset: the server pod's or its client pod's own
    /// proxy restarted since the try began.
    pub(crate) fn proxy_cut(&self, p: u32, req: &Request) -> bool {
        if !self.starts.any_restart {
            return false;
        }
        let began = SimTime::from_nanos(
            req.deadline
                .as_nanos()
                .saturating_sub(self.cfg.traffic[req.source as usize].timeout.as_nanos()),
        );
        let cut = |q: u32| {
            self.starts
                .pods
                .get(q as usize)
                .and_then(|s| s.restarted)
                .is_some_and(|r| r >= began)
        };
        cut(p) || req.client.get().is_some_and(cut)
    }

    /// Both containers ready: the pod is Ready.
    fn maybe_ready(&mut self, p: u32) {
        let st = self.starts.pods[p as usize];
        if st.proxy_ready && st.app_ready {
            self.readiness_passed(p);
        }
    }

    /// The restart gauges, at a sample.
    pub(crate) fn sample_starts(&mut self) {
        for &(restarts, backing_off, g_restarts, g_backoff) in
            self.starts.workloads.iter().flatten()
        {
            self.metrics.set(g_restarts, restarts as f64);
            self.metrics.set(g_backoff, f64::from(backing_off));
        }
    }
}
