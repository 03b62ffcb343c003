//! # A mesh proxy as a CPU- and memory-limited server with its own queue
//!
//! ## Scope
//! One proxy of the mesh's data plane (an Istio sidecar's Envoy, Linkerd's
//! proxy, ambient's ztunnel or waypoint), request by request, in the
//! pattern of [`crate::coredns`]: every request costs the proxy CPU work,
//! and the proxy's CPU is `workers` worker threads, each running at
//! `min(1, cpu limit / workers)` of a core (Envoy's `--concurrency`, 2 in
//! Istio's sidecars and benchmarks). A request that finds every worker busy
//! waits, first come first served. Service times are exponential with mean
//! `cpu_per_request / speed`, so a proxy is an M/M/k queue whose knee is
//! its CPU limit. A request whose client has left by the time it leaves the
//! proxy is reset there, not passed on (Envoy resets the upstream stream
//! when the downstream goes: the `DC` flag); its CPU is spent.
//!
//! Apart from the CPU, each hop adds `hop_latency`: the time the request
//! and its response spend in the kernel and event loop between the
//! application and the proxy (the iptables redirect, loopback, epoll
//! wake-ups), which holds no worker. The caller adds it (the cluster run
//! passes the request on `hop_latency` after its worker is done).
//!
//! mTLS: the first request from a proxy to an upstream it has no pooled
//! connection to pays a handshake, `handshake_cpu` of CPU and
//! `handshake_latency` (one extra round trip) on the originating proxy's
//! worker; later requests reuse the connection (Envoy's and ztunnel's
//! connection pools per upstream). Which requests open a connection is the
//! caller's to say ([`Proxy::offer`]'s `handshake`).
//!
//! Memory ([`Proxy::memory_bytes`]): a base, plus `memory_per_connection`
//! for each pooled connection it holds, plus `memory_per_request` for each
//! request inside, fitted so that the sum equals the published figure at the
//! published load (16 connections, about one request in flight at 1,000
//! requests/s).
//!
//! OOM kill: the proxy's container has a memory limit (the cgroup's
//! `memory.max`). The charge that would take it past the limit (a request
//! arriving, a connection opening) invokes the kernel's OOM killer instead,
//! as for CoreDNS ([`crate::coredns`]): [`Passage::oom`] and the return of
//! [`Proxy::connection_opened`] say so (as does [`Proxy::over_limit`]), in
//! O(1), and [`Proxy::oom_kill`] records it (usage at the limit, as the
//! cgroup never passes it; docs/calibration.md, row `container-oom-kill`).
//! A restart, killed or not ([`Proxy::restart`]),
//! is a new process: no pooled connection, no request inside, idle
//! workers; the requests that were inside belong to the process before
//! ([`Proxy::epoch`] tells them apart) and are reset (the caller resets
//! them when their worker would have been done: the client sees the reset
//! up to its queue wait late). When the new process listens is the
//! lifecycle model's ([`crate::mesh::lifecycle`], the cluster's `starts`
//! room, with the kubelet's CrashLoopBackOff).
//!
//! Limitations: the CPU limit is taken at its long-run rate (CFS
//! throttling's stalls are not modelled); the handshake's round trip holds
//! the worker; pooled connections close only at a restart of either end
//! (no idle timeout, no GOAWAY); a response costs no CPU apart from its
//! request's (the published CPU figure covers both); memory is the fitted
//! linear sum above (no allocator slack, no config size: a proxy's base
//! grows with the mesh's size in reality, not here).
//!
//! ## Parameters
//! [`ProxyProfile`], per proxy (each figure's row of the calibration
//! document named below):
//! - Istio sidecar (Envoy, [`ProxyProfile::ISTIO_SIDECAR`]): 0.20 vCPU per
//!   1,000 requests/s of 1 KB, i.e. 0.2 ms of CPU per request; 60 MB at that
//!   load (docs/calibration.md, row `istio-sidecar-cost`, Istio 1.24); `hop_latency` 0.461 ms fitted
//!   so that a client and a server proxy add 1.7 ms to the p90 at 1,000
//!   requests/s (docs/calibration.md, row `istio-sidecar-latency`, measured on 1.12), 2 workers.
//! - Linkerd sidecar ([`ProxyProfile::LINKERD_SIDECAR`]): latency and memory
//!   scaled from Istio's by the vendor comparison (docs/calibration.md, row `linkerd-vs-istio`, low
//!   confidence: median +6 vs +17 ms, 26 vs 156 MB); CPU an assumption
//!   (half of Envoy's, docs/calibration.md, row `linkerd-proxy-cpu`).
//! - ztunnel ([`ProxyProfile::ZTUNNEL`]): 0.06 vCPU and 12 MB per 1,000
//!   requests/s (docs/calibration.md, row `istio-ztunnel-cost`, Istio 1.24); its hop latency an
//!   assumption (Envoy's scaled by the CPU ratio).
//! - waypoint ([`ProxyProfile::WAYPOINT`]): 0.25 vCPU and 60 MB per 1,000
//!   requests/s (docs/calibration.md, row `istio-waypoint-cost`, Istio 1.24); hop latency Envoy's.
//! - mTLS handshake and the memory split between base, connections and
//!   requests: assumptions (docs/calibration.md, rows `mesh-mtls-handshake`
//!   and `mesh-proxy-memory-split`).
//!
//! ## What it emits
//! Per request: its wait and its time on a worker ([`Passage`]).
//! [`ProxyStats`]: requests
//! abandoned in the queue, handshakes, CPU busy time, peak memory (never
//! above the limit), OOM kills, requests lost to restarts.
//!
//! ## Validation
//! Unit tests (`proxy_tests.rs`): the M/M/1 mean response time at one
//! worker, the CPU busy time equal to the work done, the speed cap of a CPU
//! limit below the workers, memory at the published load equal to the
//! published figure, handshake cost on new connections only, FCFS order,
//! the OOM kill at the first charge past the limit and the restart that
//! empties the proxy. The cluster
//! run's `mesh_sidecar_overhead` replay checks the added p90 against the
//! row it was fitted to (labelled calibration) and reports the p99 the fit
//! did not use.

use super::config::{ProxyKind, ProxyResources};
use sim_core::{SimDuration, SimRng, SimTime};

/// What one proxy costs and how it is built.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProxyProfile {
    /// CPU work per request (its response included), at one full core.
    pub cpu_per_request: SimDuration,
    /// Latency each hop adds that is not the proxy's CPU.
    pub hop_latency: SimDuration,
    /// Worker threads.
    pub workers: u32,
    /// Memory with no connection and no request \[bytes\].
    pub base_memory: u64,
    /// Memory per pooled connection \[bytes\].
    pub memory_per_connection: u64,
    /// Memory per request inside \[bytes\].
    pub memory_per_request: u64,
    /// CPU work of the mTLS handshake of a new upstream connection.
    pub handshake_cpu: SimDuration,
    /// The handshake's extra round trip.
    pub handshake_latency: SimDuration,
}

/// Connections the published benchmarks keep open (Istio's load test:
/// 16 client connections): where the memory split is fitted.
const BENCH_CONNECTIONS: u64 = 16;
/// Memory per pooled connection: an assumption (docs/calibration.md, row
/// `mesh-proxy-memory-split`).
const MEMORY_PER_CONNECTION: u64 = 32 << 10;
/// Memory per request inside: an assumption (same row).
const MEMORY_PER_REQUEST: u64 = 16 << 10;

/// The base that makes a proxy hold `published` bytes at the published
/// load: 16 connections, one request inside.
const fn base_for(published: u64) -> u64 {
    published - BENCH_CONNECTIONS * MEMORY_PER_CONNECTION - MEMORY_PER_REQUEST
}

/// Envoy's hop latency: (1.7 ms - 0.778 ms) / 2, where 0.778 ms is the p90
/// of the two proxies' CPU (a sum of two exponentials of mean 0.2 ms: 3.89
/// means) at 1,000 requests/s (docs/calibration.md, row
/// `istio-sidecar-latency`).
const ENVOY_HOP_LATENCY: SimDuration = SimDuration::from_micros(461);

/// mTLS handshake defaults: assumptions (docs/calibration.md, row
/// `mesh-mtls-handshake`).
const HANDSHAKE_CPU: SimDuration = SimDuration::from_micros(500);
const HANDSHAKE_LATENCY: SimDuration = SimDuration::from_micros(200);

impl ProxyProfile {
    /// Istio's sidecar (Envoy), 1.24 figures.
    pub const ISTIO_SIDECAR: ProxyProfile = ProxyProfile {
        cpu_per_request: SimDuration::from_micros(200),
        hop_latency: ENVOY_HOP_LATENCY,
        workers: 2,
        base_memory: base_for(60_000_000),
        memory_per_connection: MEMORY_PER_CONNECTION,
        memory_per_request: MEMORY_PER_REQUEST,
        handshake_cpu: HANDSHAKE_CPU,
        handshake_latency: HANDSHAKE_LATENCY,
    };

    /// Linkerd's proxy: Istio's latency x 6/17 and memory x 26/156 (the
    /// vendor's comparison), CPU half of Envoy's (an assumption).
    pub const LINKERD_SIDECAR: ProxyProfile = ProxyProfile {
        cpu_per_request: SimDuration::from_micros(100),
        hop_latency: SimDuration::from_nanos(ENVOY_HOP_LATENCY.as_nanos() * 6 / 17),
        workers: 2,
        base_memory: base_for(60_000_000 * 26 / 156),
        memory_per_connection: MEMORY_PER_CONNECTION,
        memory_per_request: MEMORY_PER_REQUEST,
        handshake_cpu: HANDSHAKE_CPU,
        handshake_latency: HANDSHAKE_LATENCY,
    };

    /// Ambient's ztunnel, 1.24 figures; its hop latency Envoy's x 0.06/0.20
    /// (an assumption).
    pub const ZTUNNEL: ProxyProfile = ProxyProfile {
        cpu_per_request: SimDuration::from_micros(60),
        hop_latency: SimDuration::from_nanos(ENVOY_HOP_LATENCY.as_nanos() * 6 / 20),
        workers: 2,
        base_memory: base_for(12_000_000),
        memory_per_connection: MEMORY_PER_CONNECTION,
        memory_per_request: MEMORY_PER_REQUEST,
        handshake_cpu: HANDSHAKE_CPU,
        handshake_latency: HANDSHAKE_LATENCY,
    };

    /// Ambient's waypoint (Envoy), 1.24 figures.
    pub const WAYPOINT: ProxyProfile = ProxyProfile {
        cpu_per_request: SimDuration::from_micros(250),
        hop_latency: ENVOY_HOP_LATENCY,
        workers: 2,
        base_memory: base_for(60_000_000),
        memory_per_connection: MEMORY_PER_CONNECTION,
        memory_per_request: MEMORY_PER_REQUEST,
        handshake_cpu: HANDSHAKE_CPU,
        handshake_latency: HANDSHAKE_LATENCY,
    };

    /// The sidecar of `kind`.
    pub fn sidecar(kind: ProxyKind) -> ProxyProfile {
        match kind {
            ProxyKind::Istio => Self::ISTIO_SIDECAR,
            ProxyKind::Linkerd => Self::LINKERD_SIDECAR,
        }
    }

    /// How fast each worker runs under `limits`: `min(1, cores / workers)`.
    pub fn speed(&self, limits: ProxyResources) -> f64 {
        (f64::from(limits.cpu_millis) / 1000.0 / f64::from(self.workers.max(1))).min(1.0)
    }
}

/// A proxy's profile under its container's limits, with what each
/// request's passage derives from them worked out once (a division and a
/// comparison fewer per request, on the request's critical path).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProxySpec {
    /// The profile.
    pub profile: ProxyProfile,
    /// Its container's limits.
    pub limits: ProxyResources,
    /// `profile.cpu_per_request` in seconds.
    cpu_secs: f64,
    /// [`ProxyProfile::speed`] under `limits`.
    speed: f64,
}

impl ProxySpec {
    /// `profile` under `limits`.
    pub fn new(profile: ProxyProfile, limits: ProxyResources) -> Self {
        ProxySpec {
            profile,
            limits,
            cpu_secs: profile.cpu_per_request.as_secs_f64(),
            speed: profile.speed(limits),
        }
    }
}

/// A proxy's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProxyStats {
    /// Requests that left it after their client had gone.
    pub abandoned: u64,
    /// mTLS handshakes it originated.
    pub handshakes: u64,
    /// CPU work done (at one full core).
    pub cpu_busy: SimDuration,
    /// The most memory it held \[bytes\] (at most its limit).
    pub peak_memory: u64,
    /// Times the kernel killed it at its memory limit.
    pub oom_kills: u64,
    /// Requests inside when it was killed or restarted (reset).
    pub reset: u64,
}

/// The [`ProxyStats`] a request rarely changes, kept off a proxy's first
/// cache line.
#[derive(Clone, Copy, Debug, Default)]
struct RareCounts {
    abandoned: u64,
    handshakes: u64,
    oom_kills: u64,
    reset: u64,
}

/// A request's passage through a proxy: how long it waits for a worker
/// and how long the worker takes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Passage {
    /// Time in the queue.
    pub wait: SimDuration,
    /// Time on a worker.
    pub service: SimDuration,
    /// Its charge took the proxy past its memory limit: the kernel kills
    /// it ([`Proxy::oom_kill`]).
    pub oom: bool,
}

/// The most worker threads a proxy is modelled with (Istio's sidecars,
/// waypoints and ztunnels run 2).
pub const MAX_WORKERS: usize = 4;

/// One proxy: its workers, pooled connections and counters.
///
/// The queue is first come, first served over `workers` workers, and each
/// request's CPU time is drawn when it arrives, so a request's start is
/// known then (the earliest time a worker is free, Kiefer and Wolfowitz's
/// recursion for the FCFS multi-server queue): the proxy keeps when each
/// worker is next free, not the requests waiting. Arrivals must be offered
/// in time order (the cluster run's events are).
///
/// What every request reads and writes shares one cache line, the counters
/// a request rarely changes the next: a run's thousands of proxies are
/// touched in no order.
#[derive(Clone, Debug, Default)]
#[repr(C, align(64))]
pub struct Proxy {
    free_at: [SimTime; MAX_WORKERS],
    cpu_busy: SimDuration,
    peak_memory: u64,
    inside: u32,
    connections: u32,
    /// Bumped at each restart: a request that entered an earlier process
    /// is not inside this one.
    epoch: u16,
    /// The counters a request rarely changes.
    stats: RareCounts,
}

impl Proxy {
    /// A request arrives at `now`; `handshake`: it opens a new upstream
    /// connection. Returns its wait and service; the caller tells
    /// [`Proxy::left`] when it has gone on.
    pub fn offer(
        &mut self,
        spec: &ProxySpec,
        now: SimTime,
        handshake: bool,
        rng: &mut SimRng,
    ) -> Passage {
        use rand::RngExt;
        let (profile, limits) = (&spec.profile, spec.limits);
        let workers = (profile.workers as usize).clamp(1, MAX_WORKERS);
        // The earliest free worker (the first of equals), without a
        // branch on which: the draw is random.
        let mut w = 0;
        for i in 1..workers {
            w = if self.free_at[i] < self.free_at[w] {
                i
            } else {
                w
            };
        }
        let start = self.free_at[w].max(now);
        let u: f64 = rng.random();
        let mut work = spec.cpu_secs * -(1.0 - u).ln();
        let mut extra = 0.0;
        if handshake {
            work += profile.handshake_cpu.as_secs_f64();
            extra = profile.handshake_latency.as_secs_f64();
            self.stats.handshakes += 1;
        }
        let cpu = SimDuration::from_secs_f64(work);
        let speed = spec.speed;
        // At full speed and no handshake the worker's time is the CPU's.
        let service = if speed == 1.0 && extra == 0.0 {
            cpu
        } else {
            SimDuration::from_secs_f64(work / speed + extra)
        };
        self.free_at[w] = start + service;
        self.cpu_busy = self.cpu_busy + cpu;
        self.inside += 1;
        let oom = self.note_memory(profile, limits);
        Passage {
            wait: start - now,
            service,
            oom,
        }
    }

    /// A request has gone on (`abandoned`: its client had left, so the
    /// proxy reset it instead of passing it on).
    pub fn left(&mut self, abandoned: bool) {
        self.inside = self.inside.saturating_sub(1);
        if abandoned {
            self.stats.abandoned += 1;
        }
    }

    /// A new pooled connection (originated or terminated here); true if
    /// it took the proxy past its memory limit.
    pub fn connection_opened(&mut self, profile: &ProxyProfile, limits: ProxyResources) -> bool {
        self.connections += 1;
        self.note_memory(profile, limits)
    }

    /// A pooled connection closed (its other end restarted).
    pub fn connection_closed(&mut self) {
        self.connections = self.connections.saturating_sub(1);
    }

    /// Peak memory: the cgroup's usage never passes its limit; true if
    /// the charge just made would.
    fn note_memory(&mut self, profile: &ProxyProfile, limits: ProxyResources) -> bool {
        let m = self.memory_bytes(profile);
        self.peak_memory = self.peak_memory.max(m.min(limits.memory_limit));
        m > limits.memory_limit
    }

    /// Whether the last charge took it past its memory limit: the kernel
    /// kills it ([`Proxy::oom_kill`]).
    pub fn over_limit(&self, profile: &ProxyProfile, limits: ProxyResources) -> bool {
        self.memory_bytes(profile) > limits.memory_limit
    }

    /// The kernel's OOM killer ends the process at `now` (usage at the
    /// limit); it restarts empty ([`Proxy::restart`]).
    pub fn oom_kill(&mut self, now: SimTime) {
        self.stats.oom_kills += 1;
        self.restart(now);
    }

    /// The process ends at `now` and a new one takes its place: no pooled
    /// connection, no request inside (those inside are reset), idle
    /// workers, a new [`Proxy::epoch`].
    pub fn restart(&mut self, now: SimTime) {
        self.stats.reset += u64::from(self.inside);
        self.inside = 0;
        self.connections = 0;
        self.free_at = [now; MAX_WORKERS];
        self.epoch = self.epoch.wrapping_add(1);
    }

    /// Which process this is (one more at each restart, wrapping): a
    /// request that entered under another epoch was reset with it.
    pub fn epoch(&self) -> u16 {
        self.epoch
    }

    /// Pooled connections it holds.
    pub fn connections(&self) -> u32 {
        self.connections
    }

    /// Requests inside (waiting, on a worker, or on their way out).
    pub fn in_flight(&self) -> usize {
        self.inside as usize
    }

    /// Memory held now \[bytes\].
    pub fn memory_bytes(&self, profile: &ProxyProfile) -> u64 {
        profile.base_memory
            + u64::from(self.connections) * profile.memory_per_connection
            + self.in_flight() as u64 * profile.memory_per_request
    }

    /// Its counters.
    pub fn stats(&self) -> ProxyStats {
        let RareCounts {
            abandoned,
            handshakes,
            oom_kills,
            reset,
        } = self.stats;
        ProxyStats {
            abandoned,
            handshakes,
            cpu_busy: self.cpu_busy,
            peak_memory: self.peak_memory,
            oom_kills,
            reset,
        }
    }
}

// The per-request fields fill the first cache line.
const _: () = assert!(std::mem::offset_of!(Proxy, stats) <= 64);

#[cfg(test)]
#[path = "proxy_tests.rs"]
mod tests;
