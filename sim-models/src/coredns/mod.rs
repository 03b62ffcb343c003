//! # coredns: a CoreDNS pod as a CPU- and memory-limited server
//!
//! ## Scope
//! One CoreDNS container with the kubeadm Corefile (`kubernetes
//! cluster.local`, `forward . /etc/resolv.conf { max_concurrent 1000 }`,
//! `cache 30`), query by query. Request-level: a query is one event; the
//! network to the clients and the Service in front belong to the caller.
//!
//! A query first needs CPU. Every query costs the same CPU work
//! ([`CPU_PER_QUERY`] at one full core) and the pod's CPU is one server
//! running at `cpu_millicores / 1000` of a core, with exponential service
//! times: under Poisson load the pod is an M/M/1 queue, whose knee the
//! tests check. miekg/dns `serveUDP` starts a goroutine for every packet it
//! reads, so the queries waiting for CPU are runnable goroutines, served in
//! the Go scheduler's order (`runq`): first in, first out up to 256 waiting;
//! beyond that the newest 256 are served 60 picks in 61 and the overflow
//! waits in the global run queue. Then, in plugin order:
//! - `cache`: a fresh entry answers (success and denial caches of
//!   [`DEFAULT_CACHE_CAPACITY`] entries each, random eviction when full);
//! - `kubernetes`: names in the cluster zone are answered from the caller's
//!   ground truth ([`Existence`]) and cached with the plugin's TTL. With
//!   [`ClusterZone::Forward`] (NodeLocal DNSCache, [`CoreDnsSpec::node_local`])
//!   there is no `kubernetes` plugin: a cluster-zone miss is forwarded to the
//!   caller ([`CoreDnsAction::Forward`]), which answers it through
//!   [`CoreDns::on_forward_reply`] (the kube-dns Service it simulates); the
//!   same `max_concurrent`, read timeout, retries and deadline apply as for
//!   the upstream, and the answer is cached like an upstream one;
//! - `forward`: other names go upstream. More than `max_concurrent` queries
//!   waiting upstream: the extra one is answered REFUSED at once (forward
//!   plugin README; early versions said SERVFAIL). Each upstream try either
//!   answers after `latency`, answers SERVFAIL, or stays silent: the plugin
//!   retries after its 2 s read timeout while less than 5 s have passed
//!   since the first try (forward.go `defaultTimeout`), so a silent upstream
//!   gives SERVFAIL after 6 s. That SERVFAIL is written by the server, not
//!   through the cache, and is not cached; an upstream's own SERVFAIL reply
//!   is cached for `servfail_ttl`.
//!
//! Memory ([`CoreDns::memory_bytes`]) is the published sizing formula,
//! `MB = (pods + services) / 1000 + 54`, read as MiB, split the way its
//! source explains it: 30 MB of the 54 are a full cache of 10,000 entries,
//! so the model holds 24 MiB fixed, 1 MiB per 1,000 pods and services,
//! 30 MiB / 10,000 per cache entry, plus [`DEFAULT_MEMORY_PER_IN_FLIGHT`] per
//! query in the pod (queued for CPU or waiting upstream). With a full cache
//! and nothing in flight it equals the formula. Nothing else bounds the
//! queries inside: the reader takes every packet from the socket (a read
//! costs a small part of a query's CPU), so an overload grows the backlog
//! of goroutines, and its memory, until the limit. The container's usage
//! never passes `memory_limit`: the query whose memory does not fit
//! OOM-kills the container (the kernel's OOM killer, invoked by the charge
//! the cgroup refuses): every query in it is lost, the cache is
//! gone, and the kubelet restarts it with CrashLoopBackOff timing: at once
//! after the first crash, then after 10 s doubling to 5 min, reset when a
//! crash comes more than 10 min after the last restart (kubelet
//! `doBackOff`, client-go `flowcontrol.Backoff`, [`crate::kubelet`]).
//!
//! Limitations: CFS bandwidth control is taken at its long-run rate (real
//! CFS runs the pod at full speed until the period's quota, 10 ms of each
//! 100 ms at 100m, is spent, then stalls it: same capacity, lower latency
//! at light load, up to 90 ms stalls near the knee). kubeadm sets 100m as
//! the CPU *request* and no CPU limit; the rate here is what the pod gets
//! when limited to it (a LimitRange, or a node busy enough that it gets only
//! its request). The upstream exchange costs no extra CPU. A queued query
//! whose client has given up is still answered, as in CoreDNS (`serveDNS`
//! answers every packet it read; UDP carries no sign that the client left,
//! and the server's context has no deadline): wasted CPU, which the model
//! spends. The socket's receive buffer (`net.core.rmem_default` 212,992
//! bytes of skb truesize: some hundreds of small queries) is not modelled,
//! nor are its drops (`UdpRcvbufErrors`): at the long-run CPU rate the
//! reader keeps up; in real CFS the whole process, reader included, stalls
//! for up to 90 ms of each 100 ms period at 100m, and the queries beyond
//! what the buffer holds in one stall are lost at the socket (from some
//! thousands of queries/s to one pod). No TCP, no prefetch or serve_stale, no
//! autopath, no health checks of upstreams. Node-local
//! mode has one cache for the Corefile's two server blocks, so its 5 s
//! denial cap (the `cluster.local` block's) also applies to external
//! names, whose `.:53` block has `cache 30`, and both zones share one
//! success and one denial cache of 9,984 entries; `force_tcp` to kube-dns
//! is the caller's transport. The container
//! serves from the instant it restarts (no readiness delay, no `kubernetes`
//! plugin sync, which may delay serving by up to 5 s).
//!
//! ## Parameters
//! [`CoreDnsSpec`], defaults from the calibration document's "DNS: resolver
//! and CoreDNS" section:
//! - CPU: `cpu_millicores` 100 (docs/calibration.md, row
//!   `dns-coredns-defaults`, kubeadm request);
//!   `cpu_per_query` [`CPU_PER_QUERY`] = 1.9 core-s / 33,669 queries = 56.43
//!   us at one core (fitted: docs/calibration.md, row
//!   `dns-coredns-throughput`: ~1900m, internal names
//!   33,669 QPS; external names 6,733 client QPS = 33,667 server QPS, the
//!   same cost per server query within 0.01%). At 100m: 0.564 ms per query,
//!   capacity 1,772 queries/s, i.e. 354 external lookups/s with the
//!   benchmark's 5 queries per lookup.
//! - Memory: `memory_limit` 170 MiB (docs/calibration.md, row
//!   `dns-coredns-defaults`: kubeadm's CoreDNS Deployment; the upstream
//!   addon manifest, `cluster/addons/dns/coredns/coredns.yaml.base`, leaves
//!   `__DNS__MEMORY__LIMIT__` for the installer and requests 100m and
//!   70Mi); the formula (fitted: docs/calibration.md, row
//!   `dns-coredns-memory`, Scaling_CoreDNS.md; a newer fit there is
//!   `(P+S) x 0.000858 + 49.1`); `memory_per_in_flight` 4 KiB: the forward
//!   plugin README sizes "each concurrent query" at "about 2kb of memory",
//!   doubled because Go's collector (GOGC=100) lets the heap grow to twice
//!   its live data before collecting (docs/calibration.md, row
//!   `dns-coredns-in-flight-memory`), so the limit bounds the queries inside
//!   at `(memory_limit - startup memory) / memory_per_in_flight`
//!   ([`CoreDnsSpec::max_in_flight`]): 37,376 at 170 MiB with no cluster
//!   objects and an empty cache. `cluster_objects` (pods + services) is
//!   a scenario parameter, default 0.
//! - Run queue: 256 entries per P, the global queue checked every 61st pick
//!   (Go `runtime/proc.go`; docs/calibration.md, row
//!   `dns-coredns-goroutine-order`).
//! - Cache: capacity 9,984 per cache, TTL capped at 30 s (`cache 30`) for
//!   success and denial (NXDOMAIN, NODATA) answers alike (`denial_max_ttl`),
//!   at least 5 s, SERVFAIL 5 s; `kubernetes` plugin `ttl 30`
//!   (docs/calibration.md, row `dns-coredns-defaults`; cache plugin README).
//! - [`CoreDnsSpec::node_local`]: the node-local-dns DaemonSet's Corefile
//!   (kubernetes/kubernetes `cluster/addons/dns/nodelocaldns/nodelocaldns.yaml`):
//!   `cluster.local` forwarded to kube-dns, `cache { success 9984 30 denial
//!   9984 5 }`, no `max_concurrent`; no memory limit ([`NO_MEMORY_LIMIT`])
//!   and no CPU limit in the manifest (requests 25m, 5Mi): 1000m, one idle
//!   core of the node, is an assumption (docs/calibration.md, row
//!   `dns-node-local`). With no limit, what bounds its backlog in a real
//!   cluster is the node's memory (the kernel's OOM killer, or the
//!   kubelet's eviction); the model has no node memory, so a node-local
//!   backlog is bounded only by the queries offered.
//! - Forward: `max_concurrent` 1000 (docs/calibration.md, row
//!   `dns-coredns-defaults`), read timeout 2 s (forward README), deadline
//!   5 s (forward.go) (docs/calibration.md, row `dns-forward-timeouts`).
//!   Upstream `latency` 1 ms and no failures: assumptions (a cloud resolver
//!   in the same zone), not calibrated; scenarios set them
//!   (docs/calibration.md, row `dns-upstream`).
//!
//! ## What it emits
//! Per query exactly one of: a [`CoreDnsAction::Reply`] (NOERROR, NXDOMAIN,
//! REFUSED or SERVFAIL, with the [`AnswerSource`]), a
//! [`CoreDnsAction::Dropped`] (container not running, or killed with the
//! query inside), or still in flight when the run ends (possibly after
//! [`CoreDnsAction::Forward`] tries in node-local mode); [`CoreDnsStats`]
//! counts them (`received = answered + dropped + in flight`, a tested
//! property). Also [`CoreDnsAction::OomKilled`] and
//! [`CoreDnsAction::Started`] for the pod's timeline, and timers to set.
//!
//! ## Validation
//! Calibration tests (in-sample: they compare the model with the figures
//! `cpu_per_query` and the memory split were fitted to, so they show the
//! fit holds, not that the model predicts; docs/calibration.md, rows
//! `dns-coredns-throughput` and `dns-coredns-memory`): throughput per CPU
//! (closed loop at 1900m with 88 outstanding internal queries, or 81
//! outstanding external lookups through the [`crate::resolver`] state
//! machine, the outstanding counts derived from the published QPS x
//! latency: 33,669 QPS and 2.608 ms; 6,733 lookups/s, 12.02 ms per lookup
//! and 2.404 ms per server query; within 1% for rates and 3% for
//! latencies); the memory formula at several cluster sizes with a full
//! cache. Other tests pin: the M/M/1 mean response time at 80% of
//! the 100m capacity (within 5%) and the external-lookup knee against the
//! seed's ~500 QPS; REFUSED beyond `max_concurrent`; cache TTLs; an OOM loop
//! at a 100 MiB limit with its restart timeline; the run queue's order;
//! in an overload, the queries inside never above
//! [`CoreDnsSpec::max_in_flight`] nor memory above the limit, fresh queries
//! answered within the local run queue's length while the overflow waits,
//! and the backlog drained at the spare CPU once the load falls. Node-local mode: forwards
//! after the CPU, answers cached (denials 5 s), tries at 0, 2 and 4 s and
//! SERVFAIL at 6 s against a silent kube-dns, stale replies ignored, OOM
//! kills and shutdown invalidate tries, `max_concurrent` shared with
//! external forwards; conservation as a property test in both modes.
//!
//! ## References
//! coredns/deployment `kubernetes/Scaling_CoreDNS.md`; CoreDNS `forward`
//! and `cache` plugin READMEs and `plugin/forward/forward.go`; kubeadm
//! CoreDNS addon manifest; kubelet `kuberuntime_manager.go` (`doBackOff`).

use crate::kubelet::{next_backoff, BACKOFF_MAX};
use crate::resolver::{QType, Rcode, Reply};
use rand::RngExt;
use sim_core::{RngStreams, SimDuration, SimRng, SimTime};
use std::collections::{BTreeMap, HashMap};
use std::fmt;

mod runq;
use runq::RunQueue;
pub use runq::{GLOBAL_CHECK_EVERY, LOCAL_RUNQ};

/// CPU of the calibration runs \[millicores\] (both vCPUs of an n1-standard-2 pegged).
pub const CALIBRATION_MILLICORES: u32 = 1900;
/// Internal-name queries/s one CoreDNS served at [`CALIBRATION_MILLICORES`].
pub const CALIBRATION_INTERNAL_QPS: f64 = 33_669.0;
/// Mean latency of those queries \[ms\].
pub const CALIBRATION_INTERNAL_LATENCY_MS: f64 = 2.608;
/// External-name client lookups/s at [`CALIBRATION_MILLICORES`] (5 server queries each).
pub const CALIBRATION_EXTERNAL_CLIENT_QPS: f64 = 6_733.0;
/// Mean latency of one external lookup \[ms\].
pub const CALIBRATION_EXTERNAL_LATENCY_MS: f64 = 12.02;
/// Server-side queries/s in the external run.
pub const CALIBRATION_EXTERNAL_SERVER_QPS: f64 = 33_667.0;
/// Server-side latency per query in the external run \[ms\].
pub const CALIBRATION_EXTERNAL_SERVER_LATENCY_MS: f64 = 2.404;
/// CPU work of one query at one full core: 1.9 core-s / 33,669 queries
/// (fitted: docs/calibration.md, row `dns-coredns-throughput`).
pub const CPU_PER_QUERY: SimDuration = SimDuration::from_nanos(56_432);
/// The knee the seed story claims for CoreDNS at its default 100m \[QPS\].
pub const SEED_KNEE_QPS: f64 = 500.0;

const MIB: u64 = 1 << 20;
/// The sizing formula's constant \[MiB\]: `(pods + services) / 1000 + 54`.
pub const FORMULA_BASE_MIB: u64 = 54;
/// Of which a full cache of [`FORMULA_CACHE_ENTRIES`] entries \[MiB\].
pub const FORMULA_CACHE_MIB: u64 = 30;
/// Entries of the "completely filled" cache the formula includes.
pub const FORMULA_CACHE_ENTRIES: u64 = 10_000;
/// Memory per query in the pod \[bytes\]: 2 KB (forward README) x 2 (GOGC=100).
pub const DEFAULT_MEMORY_PER_IN_FLIGHT: u64 = 4 * 1024;
/// Memory limit of the kubeadm CoreDNS Deployment \[bytes\].
pub const DEFAULT_MEMORY_LIMIT: u64 = 170 * MIB;
/// Entries in each of the cache plugin's two caches (10,000 rounded to 256 shards).
pub const DEFAULT_CACHE_CAPACITY: u32 = 9_984;

/// `MB = (pods + services) / 1000 + 54`, the published sizing formula \[MiB\].
pub fn published_memory_mib(pods_plus_services: u64) -> f64 {
    pods_plus_services as f64 / 1000.0 + FORMULA_BASE_MIB as f64
}

/// The upstream resolver behind the `forward` plugin.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UpstreamSpec {
    /// Time from sending a query upstream to its answer.
    pub latency: SimDuration,
    /// Chance that one try gets no reply at all.
    pub failure_probability: f64,
    /// Chance that one try is answered SERVFAIL.
    pub servfail_probability: f64,
    /// TTL of the upstream's answers, before the cache's clamp.
    pub record_ttl: SimDuration,
}

impl Default for UpstreamSpec {
    fn default() -> Self {
        UpstreamSpec {
            latency: SimDuration::from_millis(1),
            failure_probability: 0.0,
            servfail_probability: 0.0,
            record_ttl: SimDuration::from_secs(30),
        }
    }
}

/// One CoreDNS container's resources and Corefile settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CoreDnsSpec {
    /// CPU the pod gets \[millicores\].
    pub cpu_millicores: u32,
    /// CPU work of one query at one full core (1000m).
    pub cpu_per_query: SimDuration,
    /// Container memory limit \[bytes\].
    pub memory_limit: u64,
    /// Pods plus Services in the cluster.
    pub cluster_objects: u64,
    /// Memory per query inside the pod \[bytes\].
    pub memory_per_in_flight: u64,
    /// Entries in each cache (success, denial); 0 disables caching.
    pub cache_capacity: u32,
    /// Longest time a success answer is cached (`cache 30`; `success CAP 30`).
    pub cache_max_ttl: SimDuration,
    /// Longest time a denial (NXDOMAIN or NODATA) answer is cached (`cache
    /// 30`: 30 s; `denial CAP 5`: 5 s).
    pub denial_max_ttl: SimDuration,
    /// Shortest time an answer is cached.
    pub cache_min_ttl: SimDuration,
    /// Time an upstream SERVFAIL is cached.
    pub servfail_ttl: SimDuration,
    /// TTL of the `kubernetes` plugin's answers.
    pub kubernetes_ttl: SimDuration,
    /// Queries waiting upstream at once; `None`: no limit.
    pub max_concurrent: Option<u32>,
    /// How long the forward plugin waits for one upstream try.
    pub forward_read_timeout: SimDuration,
    /// No new upstream try starts this long after the first.
    pub forward_deadline: SimDuration,
    /// The upstream resolver.
    pub upstream: UpstreamSpec,
    /// Who answers the cluster zone.
    pub cluster_zone: ClusterZone,
}

/// Who answers names in the cluster zone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClusterZone {
    /// The `kubernetes` plugin, from the caller's ground truth
    /// ([`DnsQuery::existence`]): a kube-dns pod.
    #[default]
    Kubernetes,
    /// `forward` to the caller ([`CoreDnsAction::Forward`], answered with
    /// [`CoreDns::on_forward_reply`]): a node-local-dns instance in front of
    /// the kube-dns Service.
    Forward,
}

/// Memory limit standing for "no limit" \[bytes\] (1 TiB).
pub const NO_MEMORY_LIMIT: u64 = 1 << 40;

impl Default for CoreDnsSpec {
    /// kubeadm's CoreDNS: see the module's Parameters.
    fn default() -> Self {
        CoreDnsSpec {
            cpu_millicores: 100,
            cpu_per_query: CPU_PER_QUERY,
            memory_limit: DEFAULT_MEMORY_LIMIT,
            cluster_objects: 0,
            memory_per_in_flight: DEFAULT_MEMORY_PER_IN_FLIGHT,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            cache_max_ttl: SimDuration::from_secs(30),
            denial_max_ttl: SimDuration::from_secs(30),
            cache_min_ttl: SimDuration::from_secs(5),
            servfail_ttl: SimDuration::from_secs(5),
            kubernetes_ttl: SimDuration::from_secs(30),
            max_concurrent: Some(1000),
            forward_read_timeout: SimDuration::from_secs(2),
            forward_deadline: SimDuration::from_secs(5),
            upstream: UpstreamSpec::default(),
            cluster_zone: ClusterZone::Kubernetes,
        }
    }
}

/// Why a [`CoreDnsSpec`] cannot run.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CoreDnsSpecError {
    /// No CPU at all.
    #[error("cpu_millicores must be at least 1")]
    NoCpu,
    /// A query that costs nothing.
    #[error("cpu_per_query must be positive (calibrated: 56.4us at one core)")]
    FreeQueries,
    /// A probability outside 0..=1, or two that add up to more than 1.
    #[error("upstream failure_probability {0} and servfail_probability {1} must be in 0..=1 and add up to at most 1")]
    Probability(f64, f64),
    /// Cache TTL bounds the wrong way round.
    #[error("cache_min_ttl {min} is above cache_max_ttl {max}")]
    TtlOrder {
        /// Shortest TTL.
        min: SimDuration,
        /// Longest TTL.
        max: SimDuration,
    },
    /// Denial TTL bounds the wrong way round.
    #[error("cache_min_ttl {min} is above denial_max_ttl {max}")]
    DenialTtlOrder {
        /// Shortest TTL.
        min: SimDuration,
        /// Longest denial TTL.
        max: SimDuration,
    },
    /// A zero forward timeout.
    #[error("forward_read_timeout and forward_deadline must be positive")]
    ForwardTimeout,
    /// `max_concurrent 0`.
    #[error("max_concurrent 0 means no limit in CoreDNS: write None")]
    MaxConcurrentZero,
    /// The container cannot even start.
    #[error("CoreDNS needs {need_mib:.1} MiB at start for {objects} pods+services (24 MiB + 1 MiB per 1,000), above its {limit_mib:.1} MiB limit: it would be OOMKilled at once")]
    TooSmall {
        /// Memory at start \[MiB\].
        need_mib: f64,
        /// Pods plus Services.
        objects: u64,
        /// The limit \[MiB\].
        limit_mib: f64,
    },
}

impl CoreDnsSpec {
    /// The NodeLocal DNSCache instance of one node (node-local-dns
    /// DaemonSet, KEP-1024), from kubernetes/kubernetes
    /// `cluster/addons/dns/nodelocaldns/nodelocaldns.yaml`: Corefile
    /// `cluster.local:53 { cache { success 9984 30  denial 9984 5 }  forward
    /// . <kube-dns ClusterIP> { force_tcp } }` and `.:53 { cache 30  forward
    /// . /etc/resolv.conf }`, so the cluster zone is forwarded to the caller,
    /// denials are cached 5 s (the minimum TTL, 5 s, is the cache plugin's
    /// default), and neither `forward` sets `max_concurrent` (no limit). The
    /// container requests 25m CPU and 5Mi memory and has no limits: memory
    /// is [`NO_MEMORY_LIMIT`]; CPU 1000m is an assumption (one idle core of
    /// the node, what an unlimited container gets on a quiet node). No
    /// `kubernetes` plugin: `cluster_objects` 0.
    pub fn node_local() -> CoreDnsSpec {
        CoreDnsSpec {
            cluster_zone: ClusterZone::Forward,
            cpu_millicores: 1000,
            memory_limit: NO_MEMORY_LIMIT,
            cluster_objects: 0,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            cache_max_ttl: SimDuration::from_secs(30),
            denial_max_ttl: SimDuration::from_secs(5),
            cache_min_ttl: SimDuration::from_secs(5),
            max_concurrent: None,
            ..CoreDnsSpec::default()
        }
    }

    /// Checks the spec.
    pub fn validate(&self) -> Result<(), CoreDnsSpecError> {
        if self.cpu_millicores == 0 {
            return Err(CoreDnsSpecError::NoCpu);
        }
        if self.cpu_per_query == SimDuration::ZERO {
            return Err(CoreDnsSpecError::FreeQueries);
        }
        let (f, s) = (
            self.upstream.failure_probability,
            self.upstream.servfail_probability,
        );
        let ok = |p: f64| (0.0..=1.0).contains(&p);
        if !ok(f) || !ok(s) || f + s > 1.0 {
            return Err(CoreDnsSpecError::Probability(f, s));
        }
        if self.cache_min_ttl > self.cache_max_ttl {
            return Err(CoreDnsSpecError::TtlOrder {
                min: self.cache_min_ttl,
                max: self.cache_max_ttl,
            });
        }
        if self.cache_min_ttl > self.denial_max_ttl {
            return Err(CoreDnsSpecError::DenialTtlOrder {
                min: self.cache_min_ttl,
                max: self.denial_max_ttl,
            });
        }
        if self.forward_read_timeout == SimDuration::ZERO
            || self.forward_deadline == SimDuration::ZERO
        {
            return Err(CoreDnsSpecError::ForwardTimeout);
        }
        if self.max_concurrent == Some(0) {
            return Err(CoreDnsSpecError::MaxConcurrentZero);
        }
        if self.startup_memory() >= self.memory_limit {
            return Err(CoreDnsSpecError::TooSmall {
                need_mib: self.startup_memory() as f64 / MIB as f64,
                objects: self.cluster_objects,
                limit_mib: self.memory_limit as f64 / MIB as f64,
            });
        }
        Ok(())
    }

    /// Mean CPU time of one query at this pod's CPU.
    pub fn mean_service_time(&self) -> SimDuration {
        let ns = u128::from(self.cpu_per_query.as_nanos()) * 1000
            / u128::from(self.cpu_millicores.max(1));
        SimDuration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    /// Queries per second the CPU can serve (the M/M/1 service rate).
    pub fn capacity_qps(&self) -> f64 {
        1.0 / self.mean_service_time().as_secs_f64()
    }

    /// Most queries a container holds at once: what its memory limit leaves
    /// after the startup memory, with an empty cache (queued for CPU or
    /// waiting upstream; one more OOM-kills it). `u64::MAX` when queries
    /// cost no memory.
    pub fn max_in_flight(&self) -> u64 {
        self.memory_limit
            .saturating_sub(self.startup_memory())
            .checked_div(self.memory_per_in_flight)
            .unwrap_or(u64::MAX)
    }

    /// Memory of a fresh container: fixed part plus the cluster's objects \[bytes\].
    pub fn startup_memory(&self) -> u64 {
        ((FORMULA_BASE_MIB - FORMULA_CACHE_MIB) * MIB)
            .saturating_add(self.cluster_objects.saturating_mul(MIB) / 1000)
    }
}

/// Which plugin answers a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zone {
    /// `cluster.local` (and reverse zones): the `kubernetes` plugin.
    Cluster,
    /// Everything else: `forward` to the upstream.
    External,
}

/// The authoritative truth about a name and type, from the caller's world.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existence {
    /// The name has this many records of the type.
    Records(u16),
    /// The name exists without records of the type.
    NoData,
    /// The name does not exist.
    NxDomain,
}

impl Existence {
    fn reply(self) -> Reply {
        match self {
            Existence::Records(n) => Reply::answer(n),
            Existence::NoData => Reply::NODATA,
            Existence::NxDomain => Reply::NXDOMAIN,
        }
    }
}

/// One query offered to the pod.
#[derive(Clone, Copy, Debug)]
pub struct DnsQuery<'a> {
    /// The caller's handle, returned with the reply or the drop.
    pub tag: u64,
    /// Query name (the cache key, with `qtype`).
    pub name: &'a str,
    /// Query type.
    pub qtype: QType,
    /// Which plugin answers it.
    pub zone: Zone,
    /// What the authoritative source would say.
    pub existence: Existence,
    /// The caller's handle on the records' data (which addresses), kept
    /// with a cached answer and returned with every reply built from it: a
    /// cache hit returns the data of the answer it cached, not today's.
    pub rdata: u64,
}

/// Who produced a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerSource {
    /// The cache plugin.
    Cache,
    /// The kubernetes plugin.
    Kubernetes,
    /// The upstream, through the forward plugin.
    Upstream,
    /// The forward plugin, over `max_concurrent`: REFUSED.
    MaxConcurrent,
    /// The forward plugin, no upstream answered in time: SERVFAIL.
    ForwardTimeout,
}

/// Why a query got no reply at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The container is not running (crash-looping).
    NotRunning,
    /// The container was OOM-killed with the query inside.
    OomKilled,
    /// The pod was deleted with the query inside.
    Deleted,
}

impl fmt::Display for DropReason {
    /// What an operator finds in `kubectl describe pod`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropReason::NotRunning => {
                f.write_str("Back-off restarting failed container coredns (CrashLoopBackOff)")
            }
            DropReason::OomKilled => {
                f.write_str("Last State: Terminated, Reason: OOMKilled, Exit Code: 137")
            }
            DropReason::Deleted => f.write_str("Killing: Stopping container coredns"),
        }
    }
}

/// A timer of one CoreDNS instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CoreDnsTimer(pub u64);

/// One try of a cluster-zone query forwarded to the caller
/// ([`ClusterZone::Forward`]); unique over the instance's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ForwardId(pub u64);

/// What the caller's event loop must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoreDnsAction {
    /// Send this reply to the query's client now.
    Reply {
        /// The query's tag.
        tag: u64,
        /// The reply.
        reply: Reply,
        /// Who produced it.
        source: AnswerSource,
        /// The records' data ([`DnsQuery::rdata`] of the query whose answer
        /// this is: the cached one for a cache hit).
        rdata: u64,
        /// TTL the client sees: the remaining time of a cached entry, the
        /// record TTL (capped at the cache's maximum, `denial_max_ttl` for
        /// NXDOMAIN and NODATA) otherwise, zero for replies that are not
        /// cached.
        ttl: SimDuration,
    },
    /// Send the query `tag` (the name and type the caller offered) to the
    /// cluster DNS now, and call [`CoreDns::on_forward_reply`] with `id`
    /// when its answer arrives ([`ClusterZone::Forward`] only).
    Forward {
        /// The query's tag.
        tag: u64,
        /// This try.
        id: ForwardId,
    },
    /// The query will get no reply.
    Dropped {
        /// The query's tag.
        tag: u64,
        /// Why.
        reason: DropReason,
    },
    /// Call [`CoreDns::on_timer`] with `token` at `at`.
    SetTimer {
        /// When.
        at: SimTime,
        /// Which timer.
        token: CoreDnsTimer,
    },
    /// The container was OOM-killed now.
    OomKilled {
        /// Memory at the kill \[bytes\].
        memory: u64,
        /// When the kubelet restarts it.
        restart_at: SimTime,
        /// Restarts so far, this one included.
        restarts: u32,
    },
    /// The container (re)started now and serves.
    Started,
}

/// Counters of one instance over the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoreDnsStats {
    /// Queries offered.
    pub received: u64,
    /// Queries answered (any rcode).
    pub answered: u64,
    /// Of which from the cache.
    pub cache_hits: u64,
    /// Of which sent upstream at least once.
    pub forwarded: u64,
    /// Of which REFUSED over `max_concurrent`.
    pub refused: u64,
    /// Of which SERVFAIL.
    pub servfail: u64,
    /// Queries dropped (not running, or killed inside).
    pub dropped: u64,
    /// OOM kills.
    pub oom_kills: u32,
    /// Most queries inside the pod at once.
    pub peak_in_flight: u64,
    /// Highest memory \[bytes\].
    pub peak_memory: u64,
    /// CPU time given to queries at the pod's rate (the sum of their
    /// service times; over wall time it is the share of the CPU limit used).
    pub cpu_busy: SimDuration,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    reply: Reply,
    rdata: u64,
    expires: SimTime,
}

/// One of the cache plugin's caches: fixed capacity, random eviction.
#[derive(Clone, Debug, Default)]
struct Cache {
    capacity: usize,
    entries: Vec<(Box<str>, QType, Entry)>,
    index: HashMap<Box<str>, [Option<usize>; 2]>,
}

fn slot(q: QType) -> usize {
    match q {
        QType::A => 0,
        QType::Aaaa => 1,
    }
}

impl Cache {
    fn get(&self, name: &str, q: QType, now: SimTime) -> Option<Entry> {
        let i = self.index.get(name)?[slot(q)]?;
        let e = self.entries.get(i)?.2;
        (e.expires > now).then_some(e)
    }

    fn insert(&mut self, name: &str, q: QType, entry: Entry, rng: &mut SimRng) {
        if self.capacity == 0 {
            return;
        }
        if let Some(i) = self.index.get(name).and_then(|s| s[slot(q)]) {
            if let Some(e) = self.entries.get_mut(i) {
                e.2 = entry;
            }
            return;
        }
        if self.entries.len() >= self.capacity {
            let victim = rng.random_range(0..self.entries.len());
            self.remove_at(victim);
        }
        let i = self.entries.len();
        self.entries.push((Box::from(name), q, entry));
        self.index.entry(Box::from(name)).or_default()[slot(q)] = Some(i);
    }

    fn remove_at(&mut self, i: usize) {
        let (name, q, _) = self.entries.swap_remove(i);
        if let Some(s) = self.index.get_mut(&name) {
            s[slot(q)] = None;
            if s.iter().all(Option::is_none) {
                self.index.remove(&name);
            }
        }
        if let Some((moved, mq, _)) = self.entries.get(i) {
            if let Some(s) = self.index.get_mut(moved) {
                s[slot(*mq)] = Some(i);
            }
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.index.clear();
    }
}

#[derive(Clone, Debug)]
struct InFlight {
    tag: u64,
    name: Box<str>,
    qtype: QType,
    zone: Zone,
    existence: Existence,
    rdata: u64,
    forward_start: Option<SimTime>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Upstream {
    Answer,
    ServFail,
    Silent,
}

#[derive(Clone, Copy, Debug)]
enum Timer {
    CpuDone(u64),
    Upstream(u64, Upstream),
    /// The read timeout of the forward try with this [`ForwardId`].
    ForwardTimeout(u64),
    Restart,
}

/// One CoreDNS container: an event-driven server.
#[derive(Clone, Debug)]
pub struct CoreDns {
    spec: CoreDnsSpec,
    cpu_rng: SimRng,
    upstream_rng: SimRng,
    cache_rng: SimRng,
    running: bool,
    in_flight: BTreeMap<u64, InFlight>,
    next_id: u64,
    cpu_queue: RunQueue,
    cpu_busy: bool,
    forwarding: u32,
    success: Cache,
    denial: Cache,
    timers: HashMap<u64, Timer>,
    next_timer: u64,
    /// Pending forward tries to the caller: [`ForwardId`] -> query id.
    forwards: HashMap<u64, u64>,
    next_forward: u64,
    restarts: u32,
    backoff: SimDuration,
    backoff_updated: Option<SimTime>,
    restart_fresh: bool,
    stats: CoreDnsStats,
}

impl CoreDns {
    /// A running container named `name` (its RNG streams are
    /// `coredns/<name>/cpu`, `.../upstream`, `.../cache`).
    pub fn new(
        spec: CoreDnsSpec,
        name: &str,
        rng: &RngStreams,
    ) -> Result<CoreDns, CoreDnsSpecError> {
        spec.validate()?;
        let cache = Cache {
            capacity: spec.cache_capacity as usize,
            ..Cache::default()
        };
        let mut dns = CoreDns {
            spec,
            cpu_rng: rng.stream(&format!("coredns/{name}/cpu")),
            upstream_rng: rng.stream(&format!("coredns/{name}/upstream")),
            cache_rng: rng.stream(&format!("coredns/{name}/cache")),
            running: true,
            in_flight: BTreeMap::new(),
            next_id: 0,
            cpu_queue: RunQueue::default(),
            cpu_busy: false,
            forwarding: 0,
            success: cache.clone(),
            denial: cache,
            timers: HashMap::new(),
            next_timer: 0,
            forwards: HashMap::new(),
            next_forward: 0,
            restarts: 0,
            backoff: SimDuration::ZERO,
            backoff_updated: None,
            restart_fresh: true,
            stats: CoreDnsStats::default(),
        };
        dns.stats.peak_memory = dns.memory_bytes();
        Ok(dns)
    }

    /// The spec it runs with.
    pub fn spec(&self) -> &CoreDnsSpec {
        &self.spec
    }

    /// Whether the container is running.
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Queries inside the pod (queued, in service, or waiting upstream).
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Entries in the two caches.
    pub fn cache_entries(&self) -> usize {
        self.success.len() + self.denial.len()
    }

    /// Current memory use \[bytes\] (see the module doc for the terms).
    pub fn memory_bytes(&self) -> u64 {
        let cache = self.cache_entries() as u64 * FORMULA_CACHE_MIB * MIB / FORMULA_CACHE_ENTRIES;
        let queries = (self.in_flight.len() as u64).saturating_mul(self.spec.memory_per_in_flight);
        self.spec
            .startup_memory()
            .saturating_add(cache)
            .saturating_add(queries)
    }

    /// Counters so far.
    pub fn stats(&self) -> &CoreDnsStats {
        &self.stats
    }

    /// Offers one query at `now`.
    pub fn offer(&mut self, now: SimTime, q: DnsQuery<'_>) -> Vec<CoreDnsAction> {
        let mut out = Vec::new();
        self.stats.received += 1;
        if !self.running {
            self.stats.dropped += 1;
            out.push(CoreDnsAction::Dropped {
                tag: q.tag,
                reason: DropReason::NotRunning,
            });
            return out;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.in_flight.insert(
            id,
            InFlight {
                tag: q.tag,
                name: Box::from(q.name),
                qtype: q.qtype,
                zone: q.zone,
                existence: q.existence,
                rdata: q.rdata,
                forward_start: None,
            },
        );
        self.cpu_queue.push(id);
        if self.check_memory(now, &mut out) {
            return out;
        }
        if !self.cpu_busy {
            self.start_cpu(now, &mut out);
        }
        out
    }

    /// The pod is deleted now: every query inside is lost (no `lameduck`
    /// drain is modelled) and no timer matters any more.
    pub fn shutdown(&mut self) -> Vec<CoreDnsAction> {
        let mut out = Vec::new();
        for q in std::mem::take(&mut self.in_flight).into_values() {
            self.stats.dropped += 1;
            out.push(CoreDnsAction::Dropped {
                tag: q.tag,
                reason: DropReason::Deleted,
            });
        }
        self.cpu_queue.clear();
        self.cpu_busy = false;
        self.forwarding = 0;
        self.timers.clear();
        self.forwards.clear();
        self.running = false;
        out
    }

    /// The timer `token` fired at `now`; stale tokens are ignored.
    pub fn on_timer(&mut self, now: SimTime, token: CoreDnsTimer) -> Vec<CoreDnsAction> {
        let mut out = Vec::new();
        let Some(timer) = self.timers.remove(&token.0) else {
            return out;
        };
        match timer {
            Timer::CpuDone(id) => {
                self.cpu_busy = false;
                self.serve(now, id, &mut out);
                if self.running && !self.cpu_busy {
                    self.start_cpu(now, &mut out);
                }
            }
            Timer::Upstream(id, result) => self.upstream_done(now, id, result, &mut out),
            Timer::ForwardTimeout(fwd) => {
                // Answered in time: the reply removed the try, nothing to do.
                if let Some(id) = self.forwards.remove(&fwd) {
                    self.retry_or_give_up(now, id, &mut out);
                }
            }
            Timer::Restart => {
                self.running = true;
                self.backoff = if self.restart_fresh {
                    next_backoff(SimDuration::ZERO)
                } else {
                    next_backoff(self.backoff)
                };
                self.backoff_updated = Some(now);
                out.push(CoreDnsAction::Started);
            }
        }
        out
    }

    fn set_timer(&mut self, at: SimTime, timer: Timer, out: &mut Vec<CoreDnsAction>) {
        let token = self.next_timer;
        self.next_timer += 1;
        self.timers.insert(token, timer);
        out.push(CoreDnsAction::SetTimer {
            at,
            token: CoreDnsTimer(token),
        });
    }

    fn start_cpu(&mut self, now: SimTime, out: &mut Vec<CoreDnsAction>) {
        let Some(id) = self.cpu_queue.pop() else {
            return;
        };
        self.cpu_busy = true;
        let mean = self.spec.mean_service_time().as_secs_f64();
        let u: f64 = self.cpu_rng.random();
        let service = SimDuration::from_secs_f64(-mean * (1.0 - u).ln());
        self.stats.cpu_busy = self.stats.cpu_busy + service;
        self.set_timer(now + service, Timer::CpuDone(id), out);
    }

    /// The query got its CPU: cache, kubernetes, or forward.
    fn serve(&mut self, now: SimTime, id: u64, out: &mut Vec<CoreDnsAction>) {
        let Some(q) = self.in_flight.get(&id) else {
            return;
        };
        let (zone, existence, qtype) = (q.zone, q.existence, q.qtype);
        let hit = self
            .success
            .get(&q.name, qtype, now)
            .or_else(|| self.denial.get(&q.name, qtype, now));
        if let Some(e) = hit {
            self.stats.cache_hits += 1;
            if let Some(q) = self.in_flight.get_mut(&id) {
                q.rdata = e.rdata;
            }
            let remaining = e.expires - now;
            self.reply(now, id, e.reply, AnswerSource::Cache, None, out);
            if let Some(CoreDnsAction::Reply { ttl, .. }) = out.last_mut() {
                *ttl = remaining;
            }
            return;
        }
        match (zone, self.spec.cluster_zone) {
            (Zone::Cluster, ClusterZone::Kubernetes) => {
                let ttl = self.spec.kubernetes_ttl;
                self.reply(
                    now,
                    id,
                    existence.reply(),
                    AnswerSource::Kubernetes,
                    Some(ttl),
                    out,
                );
            }
            (Zone::Cluster, ClusterZone::Forward) | (Zone::External, _) => {
                if self
                    .spec
                    .max_concurrent
                    .is_some_and(|m| self.forwarding >= m)
                {
                    self.stats.refused += 1;
                    let refused = Reply {
                        rcode: Rcode::Refused,
                        answers: 0,
                    };
                    self.reply(now, id, refused, AnswerSource::MaxConcurrent, None, out);
                    return;
                }
                self.forwarding += 1;
                self.stats.forwarded += 1;
                if let Some(q) = self.in_flight.get_mut(&id) {
                    q.forward_start = Some(now);
                }
                self.forward_try(now, id, out);
            }
        }
    }

    /// One try of the forward plugin: to the upstream model for external
    /// names, to the caller for a forwarded cluster zone.
    fn forward_try(&mut self, now: SimTime, id: u64, out: &mut Vec<CoreDnsAction>) {
        let Some(q) = self.in_flight.get(&id) else {
            return;
        };
        if q.zone == Zone::External {
            self.upstream_try(now, id, out);
            return;
        }
        let tag = q.tag;
        let fwd = self.next_forward;
        self.next_forward += 1;
        self.forwards.insert(fwd, id);
        out.push(CoreDnsAction::Forward {
            tag,
            id: ForwardId(fwd),
        });
        self.set_timer(
            now + self.spec.forward_read_timeout,
            Timer::ForwardTimeout(fwd),
            out,
        );
    }

    /// The cluster DNS answered the forward try `id` at `now` with `reply`,
    /// the records' data `rdata` and TTL `ttl`. The answer is cached like an
    /// upstream one (success and denial TTLs clamped, SERVFAIL for
    /// `servfail_ttl`, other rcodes not cached). Replies to tries that are
    /// no longer pending (answered, timed out, or lost with the container)
    /// are ignored.
    pub fn on_forward_reply(
        &mut self,
        now: SimTime,
        id: ForwardId,
        reply: Reply,
        rdata: u64,
        ttl: SimDuration,
    ) -> Vec<CoreDnsAction> {
        let mut out = Vec::new();
        let Some(qid) = self.forwards.remove(&id.0) else {
            return out;
        };
        let Some(q) = self.in_flight.get_mut(&qid) else {
            return out;
        };
        q.rdata = rdata;
        self.forwarding = self.forwarding.saturating_sub(1);
        let ttl = match reply.rcode {
            Rcode::NoError | Rcode::NxDomain => Some(ttl),
            Rcode::ServFail => {
                self.stats.servfail += 1;
                Some(self.spec.servfail_ttl)
            }
            // The cache plugin does not cache other errors.
            Rcode::FormErr | Rcode::NotImp | Rcode::Refused => None,
        };
        self.reply(now, qid, reply, AnswerSource::Upstream, ttl, &mut out);
        out
    }

    /// A try got no answer within the read timeout: another one while the
    /// deadline allows, else SERVFAIL (not cached).
    fn retry_or_give_up(&mut self, now: SimTime, id: u64, out: &mut Vec<CoreDnsAction>) {
        let Some(q) = self.in_flight.get(&id) else {
            return;
        };
        let start = q.forward_start.unwrap_or(now);
        if now < start + self.spec.forward_deadline {
            self.forward_try(now, id, out);
        } else {
            self.forwarding = self.forwarding.saturating_sub(1);
            self.stats.servfail += 1;
            self.reply(
                now,
                id,
                Reply::SERVFAIL,
                AnswerSource::ForwardTimeout,
                None,
                out,
            );
        }
    }

    fn upstream_try(&mut self, now: SimTime, id: u64, out: &mut Vec<CoreDnsAction>) {
        let u: f64 = self.upstream_rng.random();
        let up = self.spec.upstream;
        let (at, result) = if u < up.failure_probability {
            (now + self.spec.forward_read_timeout, Upstream::Silent)
        } else if u < up.failure_probability + up.servfail_probability {
            (now + up.latency, Upstream::ServFail)
        } else {
            (now + up.latency, Upstream::Answer)
        };
        self.set_timer(at, Timer::Upstream(id, result), out);
    }

    fn upstream_done(
        &mut self,
        now: SimTime,
        id: u64,
        result: Upstream,
        out: &mut Vec<CoreDnsAction>,
    ) {
        let Some(q) = self.in_flight.get(&id) else {
            return;
        };
        match result {
            Upstream::Answer => {
                self.forwarding = self.forwarding.saturating_sub(1);
                let ttl = self.spec.upstream.record_ttl;
                self.reply(
                    now,
                    id,
                    q.existence.reply(),
                    AnswerSource::Upstream,
                    Some(ttl),
                    out,
                );
            }
            Upstream::ServFail => {
                self.forwarding = self.forwarding.saturating_sub(1);
                self.stats.servfail += 1;
                let ttl = self.spec.servfail_ttl;
                self.reply(
                    now,
                    id,
                    Reply::SERVFAIL,
                    AnswerSource::Upstream,
                    Some(ttl),
                    out,
                );
            }
            Upstream::Silent => self.retry_or_give_up(now, id, out),
        }
    }

    /// Answers query `id`, caching the reply for `ttl` (clamped) if given.
    fn reply(
        &mut self,
        now: SimTime,
        id: u64,
        reply: Reply,
        source: AnswerSource,
        ttl: Option<SimDuration>,
        out: &mut Vec<CoreDnsAction>,
    ) {
        let Some(q) = self.in_flight.remove(&id) else {
            return;
        };
        self.stats.answered += 1;
        let denial =
            reply.rcode == Rcode::NxDomain || (reply.rcode == Rcode::NoError && reply.answers == 0);
        let max_ttl = if denial {
            self.spec.denial_max_ttl
        } else {
            self.spec.cache_max_ttl
        };
        let shown = ttl.map_or(SimDuration::ZERO, |t| t.min(max_ttl));
        out.push(CoreDnsAction::Reply {
            tag: q.tag,
            reply,
            source,
            rdata: q.rdata,
            ttl: shown,
        });
        if let Some(ttl) = ttl {
            let ttl = if reply.rcode == Rcode::ServFail {
                ttl
            } else {
                ttl.clamp(self.spec.cache_min_ttl, max_ttl)
            };
            let entry = Entry {
                reply,
                rdata: q.rdata,
                expires: now + ttl,
            };
            let cache = if reply.rcode == Rcode::NoError && reply.answers > 0 {
                &mut self.success
            } else {
                &mut self.denial
            };
            cache.insert(&q.name, q.qtype, entry, &mut self.cache_rng);
            self.check_memory(now, out);
        }
    }

    /// Records peaks; OOM-kills above the limit. True if killed.
    fn check_memory(&mut self, now: SimTime, out: &mut Vec<CoreDnsAction>) -> bool {
        let memory = self.memory_bytes();
        // The cgroup's usage never passes memory.max: the charge that would
        // is what invokes the OOM killer, with the usage at the limit.
        let limit = self.spec.memory_limit;
        self.stats.peak_memory = self.stats.peak_memory.max(memory.min(limit));
        if memory <= limit {
            self.stats.peak_in_flight = self.stats.peak_in_flight.max(self.in_flight.len() as u64);
            return false;
        }
        let memory = limit;
        self.stats.oom_kills += 1;
        for q in std::mem::take(&mut self.in_flight).into_values() {
            self.stats.dropped += 1;
            out.push(CoreDnsAction::Dropped {
                tag: q.tag,
                reason: DropReason::OomKilled,
            });
        }
        self.cpu_queue.clear();
        self.cpu_busy = false;
        self.forwarding = 0;
        self.success.clear();
        self.denial.clear();
        self.timers.clear();
        self.forwards.clear();
        self.running = false;
        // kubelet doBackOff: no live backoff entry (none yet, or the last
        // restart is more than 2 x 5 min old): restart at once.
        self.restart_fresh = self
            .backoff_updated
            .is_none_or(|t| now - t > BACKOFF_MAX.saturating_mul(2));
        let delay = if self.restart_fresh {
            SimDuration::ZERO
        } else {
            self.backoff
        };
        self.restarts += 1;
        out.push(CoreDnsAction::OomKilled {
            memory,
            restart_at: now + delay,
            restarts: self.restarts,
        });
        self.set_timer(now + delay, Timer::Restart, out);
        true
    }
}

#[cfg(test)]
mod tests;
