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
//! [`crate::mesh::proxy::Proxy`]: its CPU work queues at its workers, and
//! the request goes on its hop's non-CPU latency after its worker is done
//! (one event per hop); after the last proxy it reaches the pod's server
//! as without a mesh ([`Sim::offer_app`]). A request whose client has left
//! by then is reset at the proxy (timed out, `DC`).
//!
//! mTLS: each proxy keeps one pooled connection per upstream proxy (a
//! sidecar per server pod, a ztunnel per destination node, the waypoint);
//! the first request over a pair pays the handshake on the originating
//! proxy and opens a connection on both.
//!
//! Memory limit: a charge (a request in, a connection opened) that takes
//! a proxy past its container's limit OOM-kills it on the spot (an O(1)
//! check, [`crate::mesh::proxy::Passage::oom`]); a sidecar restarts
//! through the `starts` room as a `proxy_restart` does (pod out of its
//! Services, connections refused until the new proxy listens, the
//! kubelet's CrashLoopBackOff, a kernel `OOMKilling` event and the
//! restart's `Reason: OOMKilled`); a ztunnel or the waypoint restarts at
//! once. Any restart closes the proxy's pooled connections at both ends
//! ([`Sim::mesh_proxy_restarted`], over the pools it was part of) and
//! resets the requests inside it: the event of a request at a proxy carries
//! the proxy's epoch, so the one that left a dead process is told apart in
//! O(1) when its worker would have been done.
//!
//! [`Sim::proxy_of`] answers "the proxy of this pod" in O(1), from an
//! array by pod id filled when the pod gets its node (not from the pod's
//! record, a cache miss at thousands of pods): a sidecar is indexed by its
//! pod's id, a ztunnel by its node's index. Per request the
//! mesh costs one event per proxy, one pool lookup per proxy pair, no
//! allocation (a proxy keeps when each worker is next free, not a queue of
//! requests); hop latencies reach their histograms 1,024 at a time.
//!
//! What it emits ([`MeshOutput`]): per hop, requests and the latency at
//! the proxy (queue and CPU); responses of meshed traffic by what the
//! client's proxy would log (`response_flags`-style: a reset by a
//! restarting or OOM-killed sidecar is Envoy's `UC`, upstream connection
//! termination, also when the client's own sidecar is the one that went,
//! which no proxy would log: a simplification); proxies' CPU (cores over
//! the run) and memory (the sum of each proxy's peak); handshakes; OOM
//! kills; the gauges `mesh_proxies`, `mesh_proxy_cpu_cores`,
//! `mesh_proxy_memory_mib`.
//!
//! Limitations: the mesh does not change which endpoint kube-proxy or the
//! client picks (L7 balancing is the proxies' L7 model's, in the client
//! sidecar or the waypoint: the `l7` room); traffic through
//! a cloud load balancer or an ingress controller passes only the server
//! side; a sidecar's start is modelled only with `mesh.lifecycle` (without
//! it, an OOM-killed sidecar listens as soon as the kubelet restarts it);
//! a ztunnel's or the waypoint's restart is instant (their pods' start and
//! back-off are not modelled).
//!
//! Validation: `mesh_tests.rs` (hops, CPU, memory; a throttled sidecar
//! with a tight memory limit OOM-killed and crash-looping, its resets
//! counted `UC`, conservation held) and the mesh replays.

use super::*;
use crate::mesh::proxy::{Passage, Proxy, ProxyProfile, ProxySpec};
use crate::mesh::{MeshConfig, MeshMode};

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
    /// The proxy whose [`ProxyAt::key`] is `k`.
    fn of_key(k: u64) -> Self {
        match k {
            k if k == u64::from(u32::MAX) => ProxyAt::Waypoint,
            k if k & (1 << 31) != 0 => ProxyAt::Ztunnel((k & !(1 << 31)) as u32),
            k => ProxyAt::Sidecar(k as u32),
        }
    }

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

/// Responses of meshed traffic by what the client's proxy logs (Envoy's
/// `%RESPONSE_FLAGS%`; docs/calibration.md, row `envoy-uc-flag`).
pub const RESPONSE_FLAGS: [&str; 6] = [
    "200",
    "503 (from the app)",
    "503 UF (upstream connect failure)",
    "DC (client gave up)",
    "UC (upstream connection reset)",
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
    /// Proxies running, the most at a sample.
    pub proxies: u32,
    /// Their CPU work over the run, in cores (busy time / duration).
    pub cpu_cores: f64,
    /// The proxies' memory summed, the most at a sample \[bytes\] (a
    /// proxy with no traffic holds its base).
    pub memory_bytes: u64,
    /// mTLS handshakes (new pooled connections).
    pub handshakes: u64,
    /// Requests a proxy reset because their client had left.
    pub abandoned: u64,
    /// Proxies the kernel killed at their memory limit.
    pub oom_kills: u64,
}

/// The run's proxies.
struct Proxies {
    /// The per-pod or per-node proxy's profile and limits.
    local: ProxySpec,
    /// The waypoint's, when there is one.
    waypoint_spec: Option<ProxySpec>,
    /// Sidecars by pod id (grown as pods are created).
    sidecars: Vec<Proxy>,
    /// ztunnels by node.
    ztunnels: Vec<Proxy>,
    waypoint: Proxy,
}

/// What the run tracks of the mesh.
pub(crate) struct MeshRt {
    proxies_gauge: GaugeId,
    cpu_gauge: GaugeId,
    memory_gauge: GaugeId,
    proxies: Proxies,
    /// Pooled mTLS connections: (originating proxy key << 32 | upstream key).
    pools: IdHashSet,
    /// Per proxy key, the pools it opened or accepted (some since closed
    /// by the other end's restart: see `pooled_by`), so that a restart
    /// closes its own in O(its pools), not O(the run's).
    pools_of: IdMap<Vec<u64>>,
    /// Per pod id: its proxy once it has a node (`None`: not yet, or its
    /// workload is not in the mesh); 8 bytes a pod, read on every hop
    /// instead of the pod's record.
    pod_proxy: Vec<Option<ProxyAt>>,
    rng: SimRng,
    hops: [MeshHopStats; 3],
    /// Per hop, the latencies not yet in its histogram.
    hop_batches: [HopBatch; 3],
    /// Per traffic source: its client or its target is in the mesh.
    meshed_source: Vec<bool>,
    responses: [u64; RESPONSE_FLAGS.len()],
    busy_at_last_sample: SimDuration,
    last_sample: SimTime,
    peak_memory: u64,
    peak_proxies: u32,
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
                waypoint.map(|w| ProxySpec::new(ProxyProfile::WAYPOINT, w)),
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
                    || t.service
                        .and_then(|s| services.get(s))
                        .is_some_and(|s| s.workloads.iter().any(|&w| mesh.is_meshed(w)))
            })
            .collect();
        MeshRt {
            proxies_gauge: m.gauge("mesh_proxies"),
            cpu_gauge: m.gauge("mesh_proxy_cpu_cores"),
            memory_gauge: m.gauge("mesh_proxy_memory_mib"),
            proxies: Proxies {
                local: ProxySpec::new(local, mesh.resources),
                waypoint_spec,
                sidecars: Vec::new(),
                ztunnels: cfg.nodes.iter().map(|_| Proxy::default()).collect(),
                waypoint: Proxy::default(),
            },
            pools: IdHashSet::default(),
            pools_of: IdMap::default(),
            pod_proxy: Vec::new(),
            rng: rng.stream("mesh/proxy-cpu"),
            hops: [
                stage(0, &local),
                stage(1, &waypoint_spec.map_or(local, |w| w.profile)),
                stage(2, &local),
            ],
            hop_batches: Default::default(),
            meshed_source,
            responses: [0; RESPONSE_FLAGS.len()],
            busy_at_last_sample: SimDuration::ZERO,
            last_sample: SimTime::ZERO,
            peak_memory: 0,
            peak_proxies: 0,
        }
    }
}

/// Latencies recorded per hop at a time: a batch of 1,024 touches each
/// line of a histogram's busy pages about twice (64 touched a new line for
/// nearly every value), 1.5% less time per request through sidecars.
const HOP_BATCH: usize = 1024;

/// A hop's latencies on their way to its histogram, a batch at a time: a
/// histogram's pages are out of the cache by the next request, the batch
/// is not.
struct HopBatch {
    values: Box<[SimDuration]>,
    len: usize,
}

impl Default for HopBatch {
    fn default() -> Self {
        HopBatch {
            values: vec![SimDuration::ZERO; HOP_BATCH].into_boxed_slice(),
            len: 0,
        }
    }
}

impl HopBatch {
    /// Records `d` for the hop `h`.
    #[inline]
    fn push(&mut self, d: SimDuration, h: &mut MeshHopStats) {
        self.values[self.len] = d;
        self.len += 1;
        if self.len == HOP_BATCH {
            self.record_into(h);
            self.len = 0;
        }
    }

    /// Records the latencies waiting in `h`'s histogram.
    fn record_into(&self, h: &mut MeshHopStats) {
        for &d in &self.values[..self.len] {
            h.latency.record(d);
        }
    }
}

impl Proxies {
    /// The proxy at `at` with its profile and limits.
    #[inline]
    fn get(&mut self, at: ProxyAt) -> (&mut Proxy, &ProxySpec) {
        let local = &self.local;
        match at {
            ProxyAt::Sidecar(p) => {
                let i = p as usize;
                if i >= self.sidecars.len() {
                    self.sidecars.resize_with(i + 1, Proxy::default);
                }
                (&mut self.sidecars[i], local)
            }
            ProxyAt::Ztunnel(n) => (&mut self.ztunnels[n as usize], local),
            ProxyAt::Waypoint => (
                &mut self.waypoint,
                self.waypoint_spec.as_ref().unwrap_or(local),
            ),
        }
    }

    /// Every proxy that ran, with its profile.
    fn all(&self) -> impl Iterator<Item = (&Proxy, &ProxyProfile)> {
        let local = &self.local.profile;
        let wp = self
            .waypoint_spec
            .as_ref()
            .map(|w| (&self.waypoint, &w.profile));
        self.sidecars
            .iter()
            .chain(&self.ztunnels)
            .map(move |p| (p, local))
            .chain(wp)
    }
}

/// The pool `pair` opened with the proxy keyed `proxy` at one end: noted
/// in its list. A list keeps the pools the other end's restarts closed
/// until it doubles, then drops them (and repeats of a pool reopened):
/// O(1) a new pool, amortized.
fn pooled_by(pools_of: &mut IdMap<Vec<u64>>, pools: &IdHashSet, proxy: u64, pair: u64) {
    let list = pools_of.entry(proxy).or_default();
    list.push(pair);
    if list.len() >= 64 && list.len().is_power_of_two() {
        list.sort_unstable();
        list.dedup();
        list.retain(|p| pools.contains(p));
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
        // A sidecar's restart reset the connection the request was on.
        Outcome::ProxyReset => 4,
        _ => 5,
    }
}

impl Sim<'_> {
    /// Pod `p` of workload `d` got node `n`: its proxy (its sidecar, or
    /// the node's ztunnel) if the workload is in the mesh.
    pub(crate) fn mesh_pod_placed(&mut self, p: u32, d: usize, n: u32) {
        let (Some(cfg), Some(mesh)) = (self.cfg.mesh.as_ref(), self.mesh.as_mut()) else {
            return;
        };
        let i = p as usize;
        if i >= mesh.pod_proxy.len() {
            mesh.pod_proxy.resize(i + 1, None);
        }
        mesh.pod_proxy[i] = cfg.is_meshed(d).then_some(match cfg.mode {
            MeshMode::Sidecar(_) => ProxyAt::Sidecar(p),
            MeshMode::Ambient { .. } => ProxyAt::Ztunnel(n),
        });
    }

    /// The proxy of pod `p`: its sidecar, or its node's ztunnel; `None`:
    /// no mesh, the pod's workload is not in it, or the pod has no node.
    #[inline]
    pub(crate) fn proxy_of(&self, p: u32) -> Option<ProxyAt> {
        self.mesh
            .as_ref()?
            .pod_proxy
            .get(p as usize)
            .copied()
            .flatten()
    }

    /// The proxy of stage `stage` for a request from `req`'s client to
    /// pod `p`, if the chain has one there.
    #[inline]
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

    /// The first stage at or after `from` with a proxy, and the proxy: the
    /// client's; then, if the server pod is in the mesh, the waypoint (if
    /// deployed) and the server's.
    #[inline]
    fn next_stage(&self, from: u32, p: u32, req: &Request) -> Option<(u32, ProxyAt)> {
        if from == CLIENT {
            if let Some(x) = req.client.get().and_then(|c| self.proxy_of(c)) {
                return Some((CLIENT, x));
            }
        }
        if from > SERVER {
            return None;
        }
        let server = self.proxy_of(p)?;
        let waypoint = self.mesh.as_ref()?.proxies.waypoint_spec.is_some();
        Some(match from <= WAYPOINT && waypoint {
            true => (WAYPOINT, ProxyAt::Waypoint),
            false => (SERVER, server),
        })
    }

    /// A request for pod `p` enters the mesh; false: no proxy is on its
    /// way (the caller offers it to the pod). A waypoint's retry
    /// ([`l7::FROM_WAYPOINT`]) starts at the waypoint.
    pub(crate) fn mesh_offer(&mut self, p: u32, req: Request) -> bool {
        let first = match req.id & l7::FROM_WAYPOINT {
            0 => CLIENT,
            _ => WAYPOINT,
        };
        match self.next_stage(first, p, &req) {
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
        let starts = &self.starts;
        let Some(MeshRt {
            proxies,
            pools,
            pools_of,
            rng,
            ..
        }) = self.mesh.as_mut()
        else {
            return;
        };
        let pair = upstream.map(|u| (at.key() << 32) | u.key());
        let mut handshake = pair.is_some_and(|k| pools.insert(k));
        if let (true, Some(ProxyAt::Sidecar(q))) = (handshake, upstream) {
            // No connection opens to a sidecar that does not listen.
            if starts.closed(q, now) {
                pools.remove(&pair.unwrap_or_default());
                handshake = false;
            }
        }
        let mut up_killed = None;
        if let (true, Some(u), Some(k)) = (handshake, upstream, pair) {
            pooled_by(pools_of, pools, at.key(), k);
            pooled_by(pools_of, pools, u.key(), k);
            let (up, spec) = proxies.get(u);
            if up.connection_opened(&spec.profile, spec.limits) {
                up_killed = Some(u);
            }
        }
        let (proxy, spec) = proxies.get(at);
        // Past the limit by the connection or by the request: the request
        // is inside when the kernel kills the process.
        let conn_oom = handshake && proxy.connection_opened(&spec.profile, spec.limits);
        let Passage { wait, service, oom } = proxy.offer(spec, now, handshake, rng);
        let killed = conn_oom || oom;
        let hop = spec.profile.hop_latency;
        // The request belongs to this process of the proxy (see proxy_done).
        let epoch = proxy.epoch();
        if let Some(m) = self.mesh.as_mut() {
            m.hops[stage as usize].requests += 1;
            m.hop_batches[stage as usize].push(wait + service, &mut m.hops[stage as usize]);
        }
        self.engine.schedule_in(
            wait + service + hop,
            Ev::ProxyDone {
                at: p | (stage << STAGE_SHIFT),
                epoch,
                req,
            },
        );
        // The charge past a memory limit OOM-kills that proxy.
        if up_killed.is_some() || killed {
            self.proxies_oom_killed(up_killed, killed.then_some(at));
        }
    }

    /// The charge just made killed these proxies.
    #[cold]
    #[inline(never)]
    fn proxies_oom_killed(&mut self, up: Option<ProxyAt>, at: Option<ProxyAt>) {
        for x in up.into_iter().chain(at) {
            self.proxy_oom_killed(x);
        }
    }

    /// The proxy `at` restarts now (`oom`: the kernel killed it at its
    /// memory limit): a new process with no request inside and no pooled
    /// connection, so the proxies it was pooled with lose theirs to it.
    /// O(the pools it was part of).
    pub(crate) fn mesh_proxy_restarted(&mut self, at: ProxyAt, oom: bool) {
        let now = self.engine.now();
        let Some(MeshRt {
            proxies,
            pools,
            pools_of,
            ..
        }) = self.mesh.as_mut()
        else {
            return;
        };
        let k = at.key();
        for pair in pools_of.remove(&k).unwrap_or_default() {
            // Closed already by the other end's restart: nothing to close.
            if !pools.remove(&pair) {
                continue;
            }
            let (from, to) = (pair >> 32, pair & u64::from(u32::MAX));
            let other = if from == k { to } else { from };
            proxies.get(ProxyAt::of_key(other)).0.connection_closed();
        }
        let proxy = proxies.get(at).0;
        if oom {
            proxy.oom_kill(now);
        } else {
            proxy.restart(now);
        }
    }

    /// A request leaves the proxy of stage `at >> 30` for pod `at`'s: on
    /// to the next proxy, or to the pod; reset if its client has left.
    pub(crate) fn proxy_done(&mut self, at: u32, epoch: u16, req: Request) {
        let stage = at >> STAGE_SHIFT;
        let p = at & ((1 << STAGE_SHIFT) - 1);
        let now = self.engine.now();
        let gone = req.deadline <= now;
        let mut reset = false;
        if let Some(x) = self.stage_proxy(stage, p, &req) {
            if let Some(mesh) = self.mesh.as_mut() {
                let proxy = mesh.proxies.get(x).0;
                // The process it entered restarted meanwhile: reset.
                reset = proxy.epoch() != epoch;
                if !reset {
                    proxy.left(gone);
                }
            }
        }
        if reset {
            return self.proxy_reset(p, req);
        }
        if gone {
            self.lb_end(p, &req);
            self.outcome(req, Outcome::TimedOut);
            self.request_done(req, false);
            return;
        }
        match self.next_stage(stage + 1, p, &req) {
            // The next sidecar is down (restarting): RST.
            Some((_, ProxyAt::Sidecar(q))) if self.proxy_closed(q) => self.proxy_reset(p, req),
            Some((s, x)) => self.enter_proxy(s, x, p, req),
            None => self.offer_app(p, req),
        }
    }

    /// A restarting sidecar reset `req` (bound for pod `p`): RST.
    #[cold]
    #[inline(never)]
    fn proxy_reset(&mut self, p: u32, req: Request) {
        self.lb_end(p, &req);
        self.outcome(req, Outcome::ProxyReset);
        self.request_done(req, false);
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
        let Some(rt) = self.mesh.as_ref() else {
            return;
        };
        // Every running proxy holds at least its base, traffic or not.
        let local = &rt.proxies.local.profile;
        let memory_of = |x: Option<&Proxy>| x.map_or(local.base_memory, |x| x.memory_bytes(local));
        let (mut proxies, mut memory) = (0u32, 0u64);
        let mut ztunnel_nodes = BTreeSet::new();
        for dep in &self.deps {
            for &p in &dep.live {
                match self.proxy_of(p) {
                    Some(ProxyAt::Sidecar(_)) => {
                        proxies += 1;
                        memory += memory_of(rt.proxies.sidecars.get(p as usize));
                    }
                    Some(ProxyAt::Ztunnel(n)) if ztunnel_nodes.insert(n) => {
                        proxies += 1;
                        memory += memory_of(rt.proxies.ztunnels.get(n as usize));
                    }
                    _ => {}
                }
            }
        }
        if let Some(w) = &rt.proxies.waypoint_spec {
            proxies += 1;
            memory += rt.proxies.waypoint.memory_bytes(&w.profile);
        }
        let Some(mesh) = self.mesh.as_mut() else {
            return;
        };
        mesh.peak_memory = mesh.peak_memory.max(memory);
        mesh.peak_proxies = mesh.peak_proxies.max(proxies);
        let mut busy = SimDuration::ZERO;
        for (p, _) in mesh.proxies.all() {
            busy = busy + p.stats().cpu_busy;
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
        let (mut busy, mut handshakes, mut abandoned, mut oom_kills) =
            (SimDuration::ZERO, 0u64, 0u64, 0u64);
        for (p, _) in mesh.proxies.all() {
            let s = p.stats();
            busy = busy + s.cpu_busy;
            handshakes += s.handshakes;
            abandoned += s.abandoned;
            oom_kills += s.oom_kills;
        }
        let has_waypoint = mesh.proxies.waypoint_spec.is_some();
        let hops = mesh
            .hops
            .iter()
            .enumerate()
            .filter(|(i, _)| *i as u32 != WAYPOINT || has_waypoint)
            .map(|(i, h)| {
                let mut h = h.clone();
                mesh.hop_batches[i].record_into(&mut h);
                h
            })
            .collect();
        Some(MeshOutput {
            hops,
            responses: mesh.responses,
            proxies: mesh.peak_proxies,
            cpu_cores: busy.as_secs_f64() / self.cfg.duration.as_secs_f64(),
            memory_bytes: mesh.peak_memory,
            handshakes,
            abandoned,
            oom_kills,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A proxy whose pools the other ends' restarts keep closing and
    /// reopening keeps a short list: the closed ones and the repeats go at
    /// each doubling, the open ones stay.
    #[test]
    fn a_proxys_pool_list_stays_as_long_as_its_open_pools() {
        let (mut pools, mut pools_of) = (IdHashSet::default(), IdMap::default());
        let pair = |to: u64| (7 << 32) | to;
        for to in 0..10 {
            pools.insert(pair(to));
            pooled_by(&mut pools_of, &pools, 7, pair(to));
        }
        for round in 0..1_000 {
            // Upstream 0 restarts (its pool closes) and is dialled again.
            pools.remove(&pair(0));
            assert!(pools.insert(pair(0)));
            pooled_by(&mut pools_of, &pools, 7, pair(0));
            let list = &pools_of[&7];
            assert!(list.len() < 128, "round {round}: {}", list.len());
        }
        let mut list = pools_of[&7].clone();
        list.sort_unstable();
        list.dedup();
        assert_eq!(list, (0..10).map(pair).collect::<Vec<_>>());
    }

    /// A batch records what it was given, the same as recording each
    /// value at once, across batch boundaries and with a batch pending.
    #[test]
    fn a_hop_batch_records_every_latency_once() {
        let hop = || MeshHopStats {
            hop: "client sidecar",
            requests: 0,
            latency: LatencyHistogram::new(),
            hop_latency: SimDuration::ZERO,
        };
        let (mut batched, mut direct) = (hop(), hop());
        let mut batch = HopBatch::default();
        let values: Vec<_> = (0..3 * HOP_BATCH as u64 + 7)
            .map(|i| SimDuration::from_micros(1 + i * 37 % 1_000))
            .collect();
        for &d in &values {
            batch.push(d, &mut batched);
            direct.latency.record(d);
        }
        assert_eq!(batched.latency.count(), 3 * HOP_BATCH as u64);
        batch.record_into(&mut batched);
        assert_eq!(batched.latency.count(), values.len() as u64);
        for q in [0.1, 0.5, 0.9, 0.99, 1.0] {
            assert_eq!(
                batched.latency.quantile(q),
                direct.latency.quantile(q),
                "{q}"
            );
        }
    }
}
