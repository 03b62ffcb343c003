//! # The service mesh's proxies on the request path
//!
//! With [`ClusterConfig::mesh`], a request to a pod passes the mesh's
//! proxies before the pod's application takes it: in sidecar mode the
//! client pod's proxy (outbound: `istio-init`'s iptables rules redirect
//! every connection the application opens to it) then the server pod's
//! proxy (inbound, redirected the same way); in ambient mode the source
//! node's ztunnel, the waypoint if one is deployed, and the destination
//! node's ztunnel. A client outside the mesh (outside the cluster, or a
//! workload left out) skips the client side; a server outside the mesh
//! skips the server side and the waypoint. Each proxy is a
//! [`crate::mesh::proxy::Proxy`]: its CPU work queues at its workers; the
//! hops' non-CPU latency is added once, after the last proxy of the
//! chain (one event, not one per hop); the request then reaches the pod's
//! server as without a mesh ([`Sim::offer_app`]).
//!
//! mTLS: each proxy keeps one pooled connection per upstream proxy (a
//! sidecar per server pod, a ztunnel per destination node, the waypoint);
//! the first request over a pair pays the handshake on the originating
//! proxy and opens a connection on both.
//!
//! [`Sim::proxy_of`] answers "the proxy of this pod" in O(1): a sidecar is
//! indexed by its pod's id, a ztunnel by its node's index. Per request the
//! mesh costs one event per proxy plus one, one pool lookup per proxy
//! pair, no allocation once the proxies' queues have grown.
//!
//! What it emits ([`MeshOutput`]): per hop, requests and the latency at
//! the proxy (queue and CPU); responses of meshed traffic by what the
//! client's proxy would log (`response_flags`-style); proxies' CPU (cores
//! over the run) and memory (the sum of each proxy's peak); handshakes; the
//! gauges `mesh_proxies`, `mesh_proxy_cpu_cores`, `mesh_proxy_memory_mib`.
//!
//! Limitations: the mesh does not change which endpoint kube-proxy or the
//! client picks (L7 balancing is the proxies' L7 model's); traffic through
//! a cloud load balancer or an ingress controller passes only the server
//! side; proxies start with their pods and never restart (the lifecycle
//! model's).

use super::*;
use crate::mesh::proxy::{Proxy, ProxyProfile, Started};
use crate::mesh::{MeshConfig, MeshMode, ProxyResources};
use std::collections::HashSet;

/// A proxy of the mesh, by where it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProxyAt {
    /// The sidecar of pod `.0` (indexed by pod id).
    Sidecar(u32),
    /// The ztunnel of node `.0` (indexed by node).
    Ztunnel(u32),
    /// Ambient's waypoint.
    Waypoint,
}

impl ProxyAt {
    /// A key unique among the run's proxies.
    fn key(self) -> u64 {
        match self {
            ProxyAt::Sidecar(p) => u64::from(p),
            ProxyAt::Ztunnel(n) => (1 << 31) | u64::from(n),
            ProxyAt::Waypoint => u64::from(u32::MAX),
        }
    }
}

/// The stages of the chain, in order.
const CLIENT: u32 = 0;
const WAYPOINT: u32 = 1;
const SERVER: u32 = 2;
/// A stage and the server pod in one `u32` (pods stay below 2^30).
const STAGE_SHIFT: u32 = 30;

/// A request at a proxy: its stage and server pod, and the request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hop {
    at: u32,
    req: Request,
}

/// Responses of meshed traffic by what the client's proxy logs.
pub const RESPONSE_FLAGS: [&str; 5] = [
    "200",
    "503 (from the app)",
    "503 UF (upstream connect failure)",
    "DC (client gave up)",
    "other",
];

/// One stage of the chain over the run.
#[derive(Clone, Debug)]
pub struct MeshHopStats {
    /// `client sidecar`, `server sidecar`, `source ztunnel`, `waypoint`,
    /// `destination ztunnel`.
    pub hop: &'static str,
    /// Requests a proxy of this stage started work on.
    pub requests: u64,
    /// Time at the proxy: queue and CPU (the non-CPU hop latency apart).
    pub latency: LatencyHistogram,
    /// The non-CPU latency this stage adds to each request.
    pub hop_latency: SimDuration,
}

/// What a mesh dashboard shows for the run.
#[derive(Clone, Debug)]
pub struct MeshOutput {
    /// Per stage the chain has (two for sidecars; two or three for ambient).
    pub hops: Vec<MeshHopStats>,
    /// Responses of meshed traffic sources, by [`RESPONSE_FLAGS`].
    pub responses: [u64; RESPONSE_FLAGS.len()],
    /// Proxies that ran.
    pub proxies: u32,
    /// Their CPU work over the run, in cores (busy time / duration).
    pub cpu_cores: f64,
    /// The sum of each proxy's peak memory \[bytes\].
    pub memory_bytes: u64,
    /// mTLS handshakes (new pooled connections).
    pub handshakes: u64,
    /// Requests dropped from a proxy's queue because their client had left.
    pub abandoned: u64,
}

/// The run's proxies.
struct Proxies {
    /// The per-pod or per-node proxy's profile and limits.
    local: (ProxyProfile, ProxyResources),
    /// The waypoint's, when there is one.
    waypoint_spec: Option<(ProxyProfile, ProxyResources)>,
    /// Sidecars by pod id (grown as pods are created).
    sidecars: Vec<Proxy<Hop>>,
    /// ztunnels by node.
    ztunnels: Vec<Proxy<Hop>>,
    waypoint: Proxy<Hop>,
}

/// What the run tracks of the mesh.
pub(crate) struct MeshRt {
    proxies_gauge: GaugeId,
    cpu_gauge: GaugeId,
    memory_gauge: GaugeId,
    proxies: Proxies,
    /// Pooled mTLS connections: (originating proxy key << 32 | upstream key).
    pools: HashSet<u64>,
    rng: SimRng,
    hops: [MeshHopStats; 3],
    /// Per traffic source: its client or its target is in the mesh.
    meshed_source: Vec<bool>,
    responses: [u64; RESPONSE_FLAGS.len()],
    busy_at_last_sample: SimDuration,
    last_sample: SimTime,
}

impl MeshRt {
    pub(crate) fn new(
        cfg: &ClusterConfig,
        mesh: &MeshConfig,
        m: &mut Metrics,
        rng: &RngStreams,
    ) -> Self {
        let (local, waypoint_spec, names) = match mesh.mode {
            MeshMode::Sidecar(kind) => (
                ProxyProfile::sidecar(kind),
                None,
                ["client sidecar", "", "server sidecar"],
            ),
            MeshMode::Ambient { waypoint } => (
                ProxyProfile::ZTUNNEL,
                waypoint.map(|w| (ProxyProfile::WAYPOINT, w)),
                ["source ztunnel", "waypoint", "destination ztunnel"],
            ),
        };
        let stage = |i: usize, p: &ProxyProfile| MeshHopStats {
            hop: names[i],
            requests: 0,
            latency: LatencyHistogram::new(),
            hop_latency: p.hop_latency,
        };
        let services = crate::services::resolve(&cfg.deployments, &cfg.services.explicit);
        let meshed_source = cfg
            .traffic
            .iter()
            .map(|t| {
                t.from.is_some_and(|w| mesh.is_meshed(w))
                    || t.deployment
                        .and_then(|s| services.get(s))
                        .is_some_and(|s| s.workloads.iter().any(|&w| mesh.is_meshed(w)))
            })
            .collect();
        MeshRt {
            proxies_gauge: m.gauge("mesh_proxies"),
            cpu_gauge: m.gauge("mesh_proxy_cpu_cores"),
            memory_gauge: m.gauge("mesh_proxy_memory_mib"),
            proxies: Proxies {
                local: (local, mesh.resources),
                waypoint_spec,
                sidecars: Vec::new(),
                ztunnels: cfg.nodes.iter().map(|_| Proxy::default()).collect(),
                waypoint: Proxy::default(),
            },
            pools: HashSet::new(),
            rng: rng.stream("mesh/proxy-cpu"),
            hops: [
                stage(0, &local),
                stage(1, &waypoint_spec.map_or(local, |w| w.0)),
                stage(2, &local),
            ],
            meshed_source,
            responses: [0; RESPONSE_FLAGS.len()],
            busy_at_last_sample: SimDuration::ZERO,
            last_sample: SimTime::ZERO,
        }
    }
}

impl Proxies {
    /// The proxy at `at` with its profile and limits.
    fn get(&mut self, at: ProxyAt) -> (&mut Proxy<Hop>, ProxyProfile, ProxyResources) {
        match at {
            ProxyAt::Sidecar(p) => {
                let i = p as usize;
                if i >= self.sidecars.len() {
                    self.sidecars.resize_with(i + 1, Proxy::default);
                }
                (&mut self.sidecars[i], self.local.0, self.local.1)
            }
            ProxyAt::Ztunnel(n) => (&mut self.ztunnels[n as usize], self.local.0, self.local.1),
            ProxyAt::Waypoint => {
                let (p, r) = self.waypoint_spec.unwrap_or(self.local);
                (&mut self.waypoint, p, r)
            }
        }
    }

    /// Every proxy that ran, with its profile.
    fn all(&self) -> impl Iterator<Item = (&Proxy<Hop>, &ProxyProfile)> {
        let local = &self.local.0;
        let wp = self.waypoint_spec.as_ref().map(|w| (&self.waypoint, &w.0));
        self.sidecars
            .iter()
            .chain(&self.ztunnels)
            .map(move |p| (p, local))
            .chain(wp)
            .filter(|(p, _)| p.stats().served > 0 || p.stats().peak_memory > 0)
    }
}

/// The flag a client's proxy logs for an outcome.
fn response_flag(o: Outcome) -> usize {
    match o {
        Outcome::Answered(_) => 0,
        Outcome::Rejected => 1,
        Outcome::Refused | Outcome::PortClosed => 2,
        Outcome::TimedOut
        | Outcome::AnsweredLate
        | Outcome::SynDropped
        | Outcome::StaleEndpoint
        | Outcome::NoHost
        | Outcome::Blocked => 3,
        _ => 4,
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

    /// The proxy of stage `stage` for a request from `req`'s client to
    /// pod `p`, if the chain has one there.
    fn stage_proxy(&self, stage: u32, p: u32, req: &Request) -> Option<ProxyAt> {
        match stage {
            CLIENT => self.proxy_of(req.client.get()?),
            WAYPOINT => {
                let has = self.mesh.as_ref()?.proxies.waypoint_spec.is_some();
                (has && self.proxy_of(p).is_some()).then_some(ProxyAt::Waypoint)
            }
            _ => self.proxy_of(p),
        }
    }

    /// The first stage at or after `from` with a proxy, and the proxy.
    fn next_stage(&self, from: u32, p: u32, req: &Request) -> Option<(u32, ProxyAt)> {
        (from..=SERVER).find_map(|s| self.stage_proxy(s, p, req).map(|x| (s, x)))
    }

    /// A request for pod `p` enters the mesh; false: no proxy is on its
    /// way (the caller offers it to the pod).
    pub(crate) fn mesh_offer(&mut self, p: u32, req: Request) -> bool {
        match self.next_stage(CLIENT, p, &req) {
            Some((stage, at)) => {
                self.enter_proxy(stage, at, p, req);
                true
            }
            None => false,
        }
    }

    /// The request reaches the proxy `at` of stage `stage`.
    fn enter_proxy(&mut self, stage: u32, at: ProxyAt, p: u32, req: Request) {
        let now = self.engine.now();
        let upstream = self.next_stage(stage + 1, p, &req).map(|(_, u)| u);
        let Some(MeshRt {
            proxies,
            pools,
            rng,
            ..
        }) = self.mesh.as_mut()
        else {
            return;
        };
        let handshake = upstream.is_some_and(|u| pools.insert((at.key() << 32) | u.key()));
        if let (true, Some(u)) = (handshake, upstream) {
            let (up, profile, _) = proxies.get(u);
            up.connection_opened(&profile);
        }
        let item = Hop {
            at: p | (stage << STAGE_SHIFT),
            req,
        };
        let (proxy, profile, limits) = proxies.get(at);
        if handshake {
            proxy.connection_opened(&profile);
        }
        let started = proxy.offer(&profile, limits, item, now, req.deadline, handshake, rng);
        if let Some(s) = started {
            self.proxy_started(stage, s);
        }
    }

    /// A proxy's worker takes a request: its time there is known now.
    fn proxy_started(&mut self, stage: u32, s: Started<Hop>) {
        if let Some(mesh) = self.mesh.as_mut() {
            let h = &mut mesh.hops[stage as usize];
            h.requests += 1;
            h.latency.record(s.wait + s.service);
        }
        self.engine.schedule_in(
            s.service,
            Ev::ProxyDone {
                at: s.item.at,
                req: s.item.req,
            },
        );
    }

    /// A proxy's worker is done with a request: the next one starts, and
    /// the request goes on to the next proxy, or (after the hops' latency)
    /// to the pod.
    pub(crate) fn proxy_done(&mut self, at: u32, req: Request) {
        let stage = at >> STAGE_SHIFT;
        let p = at & ((1 << STAGE_SHIFT) - 1);
        let now = self.engine.now();
        if let Some(x) = self.stage_proxy(stage, p, &req) {
            let mut abandoned = Vec::new();
            let next = self.mesh.as_mut().and_then(|mesh| {
                let (proxy, profile, limits) = mesh.proxies.get(x);
                proxy.finish(&profile, limits, now, &mut mesh.rng, |h| abandoned.push(h))
            });
            for h in abandoned {
                let q = h.at & ((1 << STAGE_SHIFT) - 1);
                self.lb_end(q, &h.req);
                self.outcome(h.req, Outcome::TimedOut);
                self.request_done(h.req, false);
            }
            if let Some(s) = next {
                self.proxy_started(h_stage(s.item.at), s);
            }
        }
        match self.next_stage(stage + 1, p, &req) {
            Some((s, x)) => self.enter_proxy(s, x, p, req),
            None => {
                let delay = self.chain_latency(p, &req);
                self.engine
                    .schedule_in(delay, Ev::MeshDelivered { pod: p, req });
            }
        }
    }

    /// The non-CPU latency of every hop of the chain to pod `p`.
    fn chain_latency(&self, p: u32, req: &Request) -> SimDuration {
        let Some(mesh) = self.mesh.as_ref() else {
            return SimDuration::ZERO;
        };
        (CLIENT..=SERVER)
            .filter(|&s| self.stage_proxy(s, p, req).is_some())
            .fold(SimDuration::ZERO, |sum, s| {
                sum + mesh.hops[s as usize].hop_latency
            })
    }

    /// An outcome of a traffic source: counted by flag if it is meshed.
    pub(crate) fn mesh_response(&mut self, t: usize, o: Outcome) {
        if let Some(mesh) = self.mesh.as_mut() {
            if mesh.meshed_source[t] {
                mesh.responses[response_flag(o)] += 1;
            }
        }
    }

    /// The mesh's gauges (at each sample): proxies running, their CPU over
    /// the sample period in cores, their memory now.
    pub(crate) fn sample_mesh(&mut self) {
        let now = self.engine.now();
        let mut sidecars = 0u32;
        let mut ztunnel_nodes = BTreeSet::new();
        for dep in &self.deps {
            for &p in &dep.live {
                match self.proxy_of(p) {
                    Some(ProxyAt::Sidecar(_)) => sidecars += 1,
                    Some(ProxyAt::Ztunnel(n)) => {
                        ztunnel_nodes.insert(n);
                    }
                    _ => {}
                }
            }
        }
        let Some(mesh) = self.mesh.as_mut() else {
            return;
        };
        let waypoint = u32::from(mesh.proxies.waypoint_spec.is_some());
        let proxies = sidecars + ztunnel_nodes.len() as u32 + waypoint;
        let (mut busy, mut memory) = (SimDuration::ZERO, 0u64);
        for (p, profile) in mesh.proxies.all() {
            busy = busy + p.stats().cpu_busy;
            memory += p.memory_bytes(profile);
        }
        let period = (now - mesh.last_sample).as_secs_f64();
        let cores = if period > 0.0 {
            (busy.as_secs_f64() - mesh.busy_at_last_sample.as_secs_f64()) / period
        } else {
            0.0
        };
        mesh.busy_at_last_sample = busy;
        mesh.last_sample = now;
        let (g, c, m) = (mesh.proxies_gauge, mesh.cpu_gauge, mesh.memory_gauge);
        self.metrics.set(g, f64::from(proxies));
        self.metrics.set(c, cores);
        self.metrics.set(m, memory as f64 / f64::from(1u32 << 20));
    }

    /// The mesh's figures over the run.
    pub(crate) fn mesh_output(&self) -> Option<MeshOutput> {
        let mesh = self.mesh.as_ref()?;
        let (mut busy, mut memory, mut handshakes, mut abandoned, mut proxies) =
            (SimDuration::ZERO, 0u64, 0u64, 0u64, 0u32);
        for (p, _) in mesh.proxies.all() {
            let s = p.stats();
            busy = busy + s.cpu_busy;
            memory += s.peak_memory;
            handshakes += s.handshakes;
            abandoned += s.abandoned;
            proxies += 1;
        }
        let has_waypoint = mesh.proxies.waypoint_spec.is_some();
        let hops = mesh
            .hops
            .iter()
            .enumerate()
            .filter(|(i, _)| *i as u32 != WAYPOINT || has_waypoint)
            .map(|(_, h)| h.clone())
            .collect();
        Some(MeshOutput {
            hops,
            responses: mesh.responses,
            proxies,
            cpu_cores: busy.as_secs_f64() / self.cfg.duration.as_secs_f64(),
            memory_bytes: memory,
            handshakes,
            abandoned,
        })
    }
}

/// The stage of a packed `Hop::at`.
fn h_stage(at: u32) -> u32 {
    at >> STAGE_SHIFT
}
