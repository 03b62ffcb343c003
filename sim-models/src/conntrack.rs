//! # conntrack: the netfilter connection-tracking table of one node
//!
//! ## Scope
//! Every new flow that crosses a node's netfilter hooks (a pod's connection
//! to a ClusterIP, DNATed by kube-proxy; SNAT to the outside) gets an entry in
//! that node's conntrack table; later packets of the flow find it. This
//! module holds one such table: its size (`nf_conntrack_max`, the hash
//! buckets), the per-protocol, per-state timeouts, the insertion of new
//! flows with the kernel's behaviour when the table is full, state changes
//! (SYN_SENT to ESTABLISHED to TIME_WAIT...), refresh on traffic, expiry,
//! and explicit deletion (`conntrack -D`, as kube-proxy does for UDP
//! endpoints it removes).
//!
//! Flow-level, not packet-level: the caller says when a flow starts, changes
//! state, carries traffic or ends; the table does the bookkeeping. Cost per
//! call is O(1) amortised whatever the table's size: expiry times sit in
//! the engine's monotone radix queue ([`sim_core::EventQueue`]); a refresh
//! only moves the entry's deadline, and the timer, when it fires early,
//! re-arms itself once at the new deadline; the entries early drop may
//! evict are kept in an indexable set (swap-remove).
//!
//! **Table full.** When `count >= nf_conntrack_max`, the kernel's
//! `early_drop` looks at the entries near the new flow's hash bucket for one
//! it may evict; if it finds one, it evicts it and the new flow goes in;
//! otherwise the packet is dropped and the kernel logs `nf_conntrack: table
//! full, dropping packet`. Established flows already in the table keep
//! working. Which entries may go: those not ASSURED (a TCP flow before its
//! handshake completed, a UDP flow that has not seen two-way traffic) on
//! every kernel, and, since Linux 4.10 (2016), also TCP flows that are
//! closing (FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT, CLOSE:
//! `tcp_can_early_drop` in `nf_conntrack_proto_tcp.c`). The model does not
//! keep a hash table: early drop examines `8 x max(1, count / buckets)`
//! entries (`NF_CT_EVICTION_RANGE` buckets, each a chain of the table's
//! load factor), and each is evictable with probability (evictable /
//! count); one is found with probability `1 - (1 - f)^k`, and then a
//! uniformly chosen evictable entry is evicted.
//!
//! **UDP through DNAT** (for the DNS replays): [`udp_pair_second`] decides,
//! per kernel profile, whether the second of two same-socket UDP packets
//! (parallel A/AAAA) loses the conntrack insert ([`udp_clash_drop_probability`]
//! is its expected rate); [`UdpDnat`]
//! pins UDP flows to the endpoint chosen when their entry was created, so
//! a client that keeps sending to a deleted endpoint keeps its stale entry
//! until a 30 s pause or a flush.
//!
//! **eBPF data paths.** Cilium with kube-proxy replacement translates
//! Service addresses and tracks pod-to-pod and pod-to-Service flows in its
//! own BPF conntrack maps, not in the netfilter table:
//! [`DataPath::tracks_pod_flows`] says which flows reach this table. The BPF maps'
//! own capacity (LRU) is not modelled.
//!
//! Limitations: the server node's table is not modelled by the cluster
//! run (only the client node's, where the Service DNAT happens); ICMP and
//! generic timeouts are listed but no flow uses them; TCP states between
//! ESTABLISHED and TIME_WAIT (FIN_WAIT, LAST_ACK) are folded into the state
//! the caller gives; the gc worker's batching (entries may outlive their
//! timeout by up to seconds in real kernels) is not modelled: an entry
//! expires exactly at its deadline.
//!
//! ## Parameters
//! Each from its row of the calibration document (section "Kernel:
//! conntrack"):
//! - table size, kernel default (`nf_conntrack_init_start`): buckets =
//!   RAM / 131072 below 1 GiB (at least 32, from 5.15 at least 1024), above
//!   1 GiB 16384 (5.15: 65536), above 4 GiB 65536 (5.15: 262144);
//!   `nf_conntrack_max` = buckets on kernels from 2021-08 (5.15) on, 4 x
//!   buckets before (docs/calibration.md, rows `ct-kernel-buckets` and
//!   `ct-kernel-max`).
//! - table size set by kube-proxy: max(32768 x cores, 131072) (its
//!   `conntrack.maxPerCore` and `conntrack.min` defaults), with the buckets
//!   raised to max / 4 (docs/calibration.md, row `ct-kube-proxy-max`).
//! - timeouts: kernel TCP established 432000 s, close_wait 60 s, time_wait
//!   120 s, syn_sent 120 s, UDP 30 s, UDP stream 120 s, ICMP 30 s, generic
//!   600 s (docs/calibration.md, row `ct-timeouts-kernel`); kube-proxy sets
//!   established to 86400 s and close_wait to 3600 s (docs/calibration.md,
//!   row `ct-timeouts-kube-proxy`).
//! - `NF_CT_EVICTION_RANGE` = 8 (`nf_conntrack_core.c`; docs/calibration.md,
//!   row `ct-early-drop`).
//! - UDP insert clash (docs/calibration.md, row `ct-udp-clash`): dropped on
//!   3.10 whenever the two packets are concurrent; on 4.19 only when DNAT
//!   picked two different endpoints; never on 5.15 (clashing entries
//!   inserted, living 1 s). How often the two packets are concurrent has no
//!   calibrated value: callers pass it (docs/calibration.md, row
//!   `ct-udp-pair-concurrency`).
//!
//! ## What it emits
//! [`CtStats`]: entries inserted, expired, evicted by early drop, deleted,
//! and new flows dropped because the table was full (the kernel's `drop`
//! counter of `conntrack -S`, logged as [`TABLE_FULL_MESSAGE`]); the live
//! count ([`Table::live`]). Conservation holds at every instant: inserted =
//! live + expired + evicted + deleted.
//!
//! ## Validation
//! Unit tests: the sizing formulas against the calibration rows; expiry
//! exactly at the state's timeout and refresh on traffic; a full table drops
//! new flows while established ones keep working; early drop evicts
//! unassured entries first, and closing TCP entries only on kernels from
//! 4.10 on; the eBPF bypass; the UDP clash probability per kernel (and a
//! sampled rate against it); a stale UDP entry that lives while its client
//! keeps sending and goes after a 30 s pause or a flush. A property test
//! checks conservation over
//! random sequences of operations, and that the live count never exceeds
//! `nf_conntrack_max`.
//!
//! ## References
//! Linux `Documentation/networking/nf_conntrack-sysctl.rst`;
//! `net/netfilter/nf_conntrack_core.c` (`early_drop`,
//! `__nf_conntrack_alloc`); `nf_conntrack_proto_tcp.c`
//! (`tcp_can_early_drop`); kube-proxy `cmd/kube-proxy/app/conntrack.go`.

use rand::RngExt;
use sim_core::{EventId, EventQueue, SimDuration, SimRng, SimTime};
use std::collections::HashMap;

/// What the kernel logs (rate-limited) when it drops a packet because the
/// table is full.
pub const TABLE_FULL_MESSAGE: &str = "nf_conntrack: table full, dropping packet";

/// Entries (old kernels) or buckets (newer) early drop looks at.
pub const EVICTION_RANGE: u64 = 8;

/// kube-proxy `conntrack.maxPerCore` default \[entries per core\].
pub const KUBE_PROXY_MAX_PER_CORE: u64 = 32_768;

/// kube-proxy `conntrack.min` default \[entries\].
pub const KUBE_PROXY_MIN: u64 = 131_072;

/// The kernel behaviours that differ between releases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kernel {
    /// Linux 3.10 (RHEL/CentOS 7): `nf_conntrack_max` = 4 x buckets; early
    /// drop evicts only unassured entries.
    V3_10,
    /// Linux 4.19: 4 x buckets; early drop may also evict closing TCP
    /// flows (since 4.10).
    V4_19,
    /// Linux 5.15 and later: `nf_conntrack_max` = buckets (2021-08 change);
    /// early drop as 4.19.
    V5_15,
}

impl Kernel {
    /// Every profile, oldest first.
    pub const ALL: [Kernel; 3] = [Kernel::V3_10, Kernel::V4_19, Kernel::V5_15];

    /// The release as written in scenario files (`3.10`, `4.19`, `5.15`).
    pub fn name(self) -> &'static str {
        match self {
            Kernel::V3_10 => "3.10",
            Kernel::V4_19 => "4.19",
            Kernel::V5_15 => "5.15",
        }
    }

    /// The profile for a release name.
    pub fn parse(s: &str) -> Option<Kernel> {
        Kernel::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Default `nf_conntrack_max` per hash bucket.
    pub fn max_per_bucket(self) -> u64 {
        match self {
            Kernel::V3_10 | Kernel::V4_19 => 4,
            Kernel::V5_15 => 1,
        }
    }

    /// Whether early drop may evict ASSURED TCP flows that are closing.
    pub fn early_drops_closing_tcp(self) -> bool {
        self >= Kernel::V4_19
    }
}

/// Default `nf_conntrack_buckets` for a node's memory and kernel
/// \[buckets\], as `nf_conntrack_init_start` (net/netfilter/nf_conntrack_core.c)
/// computes it: one `hlist_head` (8 bytes) per 16384 bytes of RAM, so
/// RAM / 131072; before the 2021 change (commit d532bcd0b269, "netfilter:
/// conntrack: sanitize table size default settings", in 5.15) a node above
/// 4 GiB gets 65536 and one above 1 GiB 16384, with at least 32; from 5.15
/// above 4 GiB 262144, above 1 GiB 65536, at least 1024. The kernel compares
/// its usable pages (a little under the nominal RAM) with the tiers: a node
/// sold as 4 GiB is in the lower tier, as `ram_bytes` = 4 GiB is here
/// (docs/calibration.md, row `ct-kernel-buckets`).
pub fn kernel_buckets(ram_bytes: u64, kernel: Kernel) -> u64 {
    const GIB: u64 = 1 << 30;
    let computed = ram_bytes / 16_384 / 8;
    let (above_4, above_1, floor) = match kernel {
        Kernel::V3_10 | Kernel::V4_19 => (65_536, 16_384, 32),
        Kernel::V5_15 => (262_144, 65_536, 1_024),
    };
    if ram_bytes > 4 * GIB {
        above_4
    } else if ram_bytes > GIB {
        above_1
    } else {
        computed.max(floor)
    }
}

/// Default `nf_conntrack_max` for a node's memory and kernel \[entries\]:
/// 4 x buckets before 5.15, = buckets from 5.15 (docs/calibration.md, row
/// `ct-kernel-max`).
pub fn kernel_max(ram_bytes: u64, kernel: Kernel) -> u64 {
    kernel_buckets(ram_bytes, kernel) * kernel.max_per_bucket()
}

/// The `nf_conntrack_max` kube-proxy sets: max(32768 x cores, 131072)
/// \[entries\].
pub fn kube_proxy_max(cores: u32) -> u64 {
    (KUBE_PROXY_MAX_PER_CORE * u64::from(cores)).max(KUBE_PROXY_MIN)
}

/// Idle timeouts per protocol and state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// `nf_conntrack_tcp_timeout_syn_sent`.
    pub tcp_syn_sent: SimDuration,
    /// `nf_conntrack_tcp_timeout_established`.
    pub tcp_established: SimDuration,
    /// `nf_conntrack_tcp_timeout_close_wait`.
    pub tcp_close_wait: SimDuration,
    /// `nf_conntrack_tcp_timeout_time_wait`.
    pub tcp_time_wait: SimDuration,
    /// `nf_conntrack_udp_timeout` (one-way or single exchange).
    pub udp: SimDuration,
    /// `nf_conntrack_udp_timeout_stream` (assured UDP flows).
    pub udp_stream: SimDuration,
    /// `nf_conntrack_icmp_timeout`.
    pub icmp: SimDuration,
    /// `nf_conntrack_generic_timeout`.
    pub generic: SimDuration,
}

impl Timeouts {
    /// The kernel's defaults.
    pub fn kernel() -> Self {
        let s = SimDuration::from_secs;
        Timeouts {
            tcp_syn_sent: s(120),
            tcp_established: s(432_000),
            tcp_close_wait: s(60),
            tcp_time_wait: s(120),
            udp: s(30),
            udp_stream: s(120),
            icmp: s(30),
            generic: s(600),
        }
    }

    /// The kernel's defaults with kube-proxy's two overrides (established
    /// 86400 s, close_wait 3600 s).
    pub fn kube_proxy() -> Self {
        Timeouts {
            tcp_established: SimDuration::from_secs(86_400),
            tcp_close_wait: SimDuration::from_secs(3_600),
            ..Timeouts::kernel()
        }
    }
}

/// The state of a tracked flow, as `conntrack -L` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtState {
    /// TCP: SYN seen, no answer yet (not assured).
    SynSent,
    /// TCP: handshake complete (assured).
    Established,
    /// TCP: the server closed first, the client has not (assured; closing).
    CloseWait,
    /// TCP: both sides closed (assured; closing).
    TimeWait,
    /// UDP: packets in one direction only (`[UNREPLIED]`, not assured).
    UdpUnreplied,
    /// UDP: one reply seen (not assured yet).
    UdpReplied,
    /// UDP: two-way traffic seen more than once (`[ASSURED]`).
    UdpStream,
}

impl CtState {
    /// Idle timeout in this state.
    pub fn timeout(self, t: &Timeouts) -> SimDuration {
        match self {
            CtState::SynSent => t.tcp_syn_sent,
            CtState::Established => t.tcp_established,
            CtState::CloseWait => t.tcp_close_wait,
            CtState::TimeWait => t.tcp_time_wait,
            CtState::UdpUnreplied | CtState::UdpReplied => t.udp,
            CtState::UdpStream => t.udp_stream,
        }
    }

    /// Whether the kernel marks the flow ASSURED.
    pub fn assured(self) -> bool {
        matches!(
            self,
            CtState::Established | CtState::CloseWait | CtState::TimeWait | CtState::UdpStream
        )
    }

    /// Whether early drop may evict the entry on `kernel`.
    pub fn evictable(self, kernel: Kernel) -> bool {
        !self.assured()
            || (kernel.early_drops_closing_tcp()
                && matches!(self, CtState::CloseWait | CtState::TimeWait))
    }
}

/// Size, timeouts and kernel of one node's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConntrackConfig {
    /// `nf_conntrack_max` \[entries\].
    pub max: u64,
    /// `nf_conntrack_buckets` \[buckets\].
    pub buckets: u64,
    /// Idle timeouts.
    pub timeouts: Timeouts,
    /// Kernel release profile.
    pub kernel: Kernel,
}

impl ConntrackConfig {
    /// The kernel's own defaults for a node with `ram_bytes` of memory.
    pub fn kernel_default(ram_bytes: u64, kernel: Kernel) -> Self {
        ConntrackConfig {
            max: kernel_max(ram_bytes, kernel),
            buckets: kernel_buckets(ram_bytes, kernel),
            timeouts: Timeouts::kernel(),
            kernel,
        }
    }

    /// What a node looks like once kube-proxy has set the table up:
    /// `nf_conntrack_max` = max(32768 x cores, 131072), buckets raised to at
    /// least max / 4, its two TCP timeouts.
    pub fn kube_proxy(ram_bytes: u64, cores: u32, kernel: Kernel) -> Self {
        let max = kube_proxy_max(cores);
        ConntrackConfig {
            max,
            buckets: kernel_buckets(ram_bytes, kernel).max(max / 4),
            timeouts: Timeouts::kube_proxy(),
            kernel,
        }
    }
}

/// Which data path a flow takes, for [`DataPath::tracks_pod_flows`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataPath {
    /// kube-proxy (iptables, IPVS or nftables) over netfilter: every flow
    /// through the node is tracked in the netfilter table.
    Netfilter,
    /// An eBPF data path replacing kube-proxy (Cilium): pod-to-pod and
    /// pod-to-Service flows are tracked in its BPF maps instead.
    Ebpf,
}

impl DataPath {
    /// Whether a flow between pods (directly or through a Service) gets an
    /// entry in the node's netfilter table.
    pub fn tracks_pod_flows(self) -> bool {
        self == DataPath::Netfilter
    }
}

/// Names one entry; stale once the entry is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CtId {
    slot: u32,
    gen: u32,
}

/// Why a new flow got no entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// `nf_conntrack: table full, dropping packet`: the packet is dropped.
    TableFull,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::TableFull => f.write_str(TABLE_FULL_MESSAGE),
        }
    }
}

/// What happened to the table's entries so far \[entries\].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtStats {
    /// Entries created.
    pub inserted: u64,
    /// Entries that reached their timeout.
    pub expired: u64,
    /// Entries early drop evicted to make room.
    pub evicted: u64,
    /// Entries deleted on purpose (`conntrack -D`).
    pub deleted: u64,
    /// New flows dropped because the table was full.
    pub dropped_full: u64,
    /// Most entries live at once.
    pub peak: u64,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    gen: u32,
    live: bool,
    state: CtState,
    /// The entry expires at this instant unless refreshed.
    expires: SimTime,
    /// Its expiry timer (fires at or before `expires`).
    timer: Option<EventId>,
    /// Index in `evictable`, or `NONE`.
    evict_pos: u32,
}

const NONE: u32 = u32::MAX;

/// One node's conntrack table.
pub struct Table {
    cfg: ConntrackConfig,
    entries: Vec<Entry>,
    free: Vec<u32>,
    timers: EventQueue<(u32, u32)>,
    evictable: Vec<u32>,
    live: u64,
    stats: CtStats,
}

impl Table {
    /// An empty table.
    pub fn new(cfg: ConntrackConfig) -> Self {
        Table {
            cfg,
            entries: Vec::new(),
            free: Vec::new(),
            timers: EventQueue::new(),
            evictable: Vec::new(),
            live: 0,
            stats: CtStats::default(),
        }
    }

    /// The table's configuration.
    pub fn config(&self) -> &ConntrackConfig {
        &self.cfg
    }

    /// Entries live at `now` (expired ones are removed first).
    pub fn live(&mut self, now: SimTime) -> u64 {
        self.advance(now);
        self.live
    }

    /// What happened so far (call [`Table::live`] first to count expiries
    /// up to now).
    pub fn stats(&self) -> CtStats {
        self.stats
    }

    /// Entries early drop may evict, at the last update.
    pub fn evictable(&self) -> u64 {
        self.evictable.len() as u64
    }

    /// The state of a live entry.
    pub fn state(&mut self, now: SimTime, id: CtId) -> Option<CtState> {
        self.advance(now);
        self.get(id).map(|e| e.state)
    }

    /// Removes every entry whose deadline is at or before `now`.
    pub fn advance(&mut self, now: SimTime) {
        while let Some((t, (slot, gen))) = self.timers.pop_due(now) {
            let e = &mut self.entries[slot as usize];
            if !e.live || e.gen != gen {
                continue;
            }
            if e.expires <= t {
                e.timer = None;
                self.stats.expired += 1;
                self.release(slot);
            } else {
                let at = e.expires;
                e.timer = Some(self.timers.schedule(at, (slot, gen)));
            }
        }
    }

    /// A new flow's first packet: an entry in `state`, or the packet is
    /// dropped because the table is full and early drop found nothing to
    /// evict. `rng` draws early drop's luck.
    pub fn insert(
        &mut self,
        now: SimTime,
        state: CtState,
        rng: &mut SimRng,
    ) -> Result<CtId, Refused> {
        self.advance(now);
        if self.live >= self.cfg.max && !self.early_drop(rng) {
            self.stats.dropped_full += 1;
            return Err(Refused::TableFull);
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.entries.push(Entry {
                    gen: 0,
                    live: false,
                    state,
                    expires: now,
                    timer: None,
                    evict_pos: NONE,
                });
                (self.entries.len() - 1) as u32
            }
        };
        let e = &mut self.entries[slot as usize];
        e.gen = e.gen.wrapping_add(1);
        e.live = true;
        e.state = state;
        e.evict_pos = NONE;
        e.timer = None;
        let id = CtId { slot, gen: e.gen };
        self.live += 1;
        self.stats.inserted += 1;
        self.stats.peak = self.stats.peak.max(self.live);
        self.arm(slot, now);
        Ok(id)
    }

    /// The flow moved to `state` (a reply, a FIN...); its timeout restarts.
    /// Returns false if the entry is gone (expired, evicted or deleted).
    pub fn set_state(&mut self, now: SimTime, id: CtId, state: CtState) -> bool {
        self.advance(now);
        if self.get(id).is_none() {
            return false;
        }
        let slot = id.slot;
        if let Some(t) = self.entries[slot as usize].timer.take() {
            self.timers.cancel(t);
        }
        self.entries[slot as usize].state = state;
        self.arm(slot, now);
        true
    }

    /// A packet of the flow: its timeout restarts from `now`. Returns false
    /// if the entry is gone.
    pub fn touch(&mut self, now: SimTime, id: CtId) -> bool {
        self.advance(now);
        let timeouts = self.cfg.timeouts;
        match self.get_mut(id) {
            Some(e) => {
                e.expires = now + e.state.timeout(&timeouts);
                true
            }
            None => false,
        }
    }

    /// Deletes the entry (`conntrack -D`). Returns false if it was gone.
    pub fn delete(&mut self, now: SimTime, id: CtId) -> bool {
        self.advance(now);
        if self.get(id).is_none() {
            return false;
        }
        if let Some(t) = self.entries[id.slot as usize].timer.take() {
            self.timers.cancel(t);
        }
        self.stats.deleted += 1;
        self.release(id.slot);
        true
    }

    fn get(&self, id: CtId) -> Option<&Entry> {
        self.entries
            .get(id.slot as usize)
            .filter(|e| e.live && e.gen == id.gen)
    }

    fn get_mut(&mut self, id: CtId) -> Option<&mut Entry> {
        self.entries
            .get_mut(id.slot as usize)
            .filter(|e| e.live && e.gen == id.gen)
    }

    /// Sets the deadline from the entry's state, arms its timer and files it
    /// as evictable or not.
    fn arm(&mut self, slot: u32, now: SimTime) {
        let e = &mut self.entries[slot as usize];
        e.expires = now + e.state.timeout(&self.cfg.timeouts);
        e.timer = Some(self.timers.schedule(e.expires, (slot, e.gen)));
        let want = e.state.evictable(self.cfg.kernel);
        let has = e.evict_pos != NONE;
        if want && !has {
            e.evict_pos = self.evictable.len() as u32;
            self.evictable.push(slot);
        } else if !want && has {
            self.unfile(slot);
        }
    }

    fn unfile(&mut self, slot: u32) {
        let pos = self.entries[slot as usize].evict_pos;
        if pos == NONE {
            return;
        }
        self.evictable.swap_remove(pos as usize);
        if let Some(&moved) = self.evictable.get(pos as usize) {
            self.entries[moved as usize].evict_pos = pos;
        }
        self.entries[slot as usize].evict_pos = NONE;
    }

    fn release(&mut self, slot: u32) {
        self.unfile(slot);
        let e = &mut self.entries[slot as usize];
        e.live = false;
        if let Some(t) = e.timer.take() {
            self.timers.cancel(t);
        }
        self.free.push(slot);
        self.live -= 1;
    }

    /// The kernel's `early_drop`: true if an entry was evicted.
    fn early_drop(&mut self, rng: &mut SimRng) -> bool {
        if self.evictable.is_empty() || self.live == 0 {
            return false;
        }
        let load = (self.live / self.cfg.buckets.max(1)).max(1);
        let examined = (EVICTION_RANGE * load).min(self.live) as i32;
        let f = self.evictable.len() as f64 / self.live as f64;
        let found = 1.0 - (1.0 - f).powi(examined);
        if rng.random::<f64>() >= found {
            return false;
        }
        let i = rng.random_range(0..self.evictable.len());
        let slot = self.evictable[i];
        self.stats.evicted += 1;
        self.release(slot);
        true
    }
}

/// How long an entry inserted on a UDP clash lives on kernels that allow
/// clashing entries (2020, "netfilter: conntrack: allow insertion of
/// clashing entries"; docs/calibration.md, row `ct-udp-clash`).
pub const UDP_CLASH_ENTRY_TIMEOUT: SimDuration = SimDuration::from_secs(1);

/// The UDP insert clash: two packets of one UDP socket (the same 5-tuple,
/// e.g. glibc's parallel A and AAAA queries) pass a Service's DNAT at the
/// same time on two CPUs; each creates an unconfirmed entry, and the second
/// to confirm finds the tuple taken (docs/calibration.md, row `ct-udp-clash`;
/// kubernetes/kubernetes#56903; the Weave and XING posts, 2018).
///
/// Returns the probability that the second packet is dropped, given
/// `concurrent`, the probability that the two packets are processed at the
/// same time (an input: no source measures it; the caller states it), and
/// the number of endpoints kube-proxy's DNAT picks from at random:
/// - 3.10: any concurrent pair clashes and the second packet is dropped;
/// - 4.19: a clash between identical entries (both DNATed to the same
///   endpoint, probability 1/`endpoints`) is resolved by reusing the
///   confirmed entry (2018, "resolve clash for matching conntracks"); a
///   clash with different endpoints still drops;
/// - 5.15: clashing entries are inserted (living
///   [`UDP_CLASH_ENTRY_TIMEOUT`]), nothing is dropped.
pub fn udp_clash_drop_probability(kernel: Kernel, endpoints: u32, concurrent: f64) -> f64 {
    let concurrent = concurrent.clamp(0.0, 1.0);
    match kernel {
        Kernel::V3_10 => concurrent,
        Kernel::V4_19 => concurrent * (1.0 - 1.0 / f64::from(endpoints.max(1))),
        Kernel::V5_15 => 0.0,
    }
}

/// Where a UDP packet to a Service went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpSend {
    /// A live entry pinned the flow to this endpoint (chosen when the entry
    /// was created; it may since have been deleted: a stale entry).
    Existing(u32),
    /// A new entry, DNATed to this endpoint.
    New(u32),
    /// The Service has no endpoint.
    NoEndpoint,
    /// The table is full: dropped.
    TableFull,
}

/// UDP flows through a Service's DNAT on one node: each flow (a client
/// socket to a Service ip:port, named by the caller's key) is pinned to the
/// endpoint picked when its entry was created, for as long as the entry
/// lives. The entry's 30 s UDP timeout restarts with every packet, so a
/// client that keeps sending to a deleted endpoint keeps its stale entry
/// alive until it pauses 30 s or the entry is deleted (kube-proxy deletes
/// the UDP entries of an endpoint it removes: [`UdpDnat::flush_endpoint`])
/// (docs/calibration.md, row `ct-stale-udp`; Preply's
/// DNS postmortem, 2020). The stream timeout (`udp_stream`) that kernels
/// give flows still active after a reply is not applied: the calibration
/// row states 30 s. Cost per packet O(1) amortised: flows whose entry has
/// gone are forgotten in sweeps once the map has doubled since the last
/// one; a flush costs O(flows).
#[derive(Clone, Debug, Default)]
pub struct UdpDnat {
    /// Flow key -> (entry, endpoint). Sweeps only forget gone entries and
    /// flushes delete in key order, so the map's iteration order never
    /// reaches the table.
    flows: HashMap<u64, (CtId, u32)>,
    swept_at: usize,
}

/// Flows tracked before the first sweep of gone entries.
const UDP_SWEEP_MIN: usize = 1024;

impl UdpDnat {
    /// A client packet of flow `key`: follows its live entry, or creates one
    /// to the endpoint `pick` returns.
    pub fn send(
        &mut self,
        table: &mut Table,
        now: SimTime,
        key: u64,
        pick: impl FnOnce() -> Option<u32>,
        rng: &mut SimRng,
    ) -> UdpSend {
        if let Some(&(id, ep)) = self.flows.get(&key) {
            if table.touch(now, id) {
                return UdpSend::Existing(ep);
            }
        }
        let Some(ep) = pick() else {
            return UdpSend::NoEndpoint;
        };
        match table.insert(now, CtState::UdpUnreplied, rng) {
            Ok(id) => {
                self.flows.insert(key, (id, ep));
                if self.flows.len() > UDP_SWEEP_MIN.max(2 * self.swept_at) {
                    self.flows
                        .retain(|_, (id, _)| table.state(now, *id).is_some());
                    self.swept_at = self.flows.len();
                }
                UdpSend::New(ep)
            }
            Err(Refused::TableFull) => UdpSend::TableFull,
        }
    }

    /// A reply of flow `key` came back: the entry is `UdpReplied` (refreshed).
    pub fn reply(&mut self, table: &mut Table, now: SimTime, key: u64) -> bool {
        match self.flows.get(&key) {
            Some(&(id, _)) => table.set_state(now, id, CtState::UdpReplied),
            None => false,
        }
    }

    /// Deletes every entry (`conntrack -D -p udp` by hand); returns how
    /// many were live.
    pub fn flush_all(&mut self, table: &mut Table, now: SimTime) -> u64 {
        let gone: Vec<(u64, CtId)> = self.flows.drain().map(|(k, (id, _))| (k, id)).collect();
        Self::delete_in_key_order(table, now, gone)
    }

    /// Deletes every entry DNATed to `endpoint` (`conntrack -D
    /// --orig-dst SVC --reply-src ENDPOINT -p udp`); returns how many were
    /// live.
    pub fn flush_endpoint(&mut self, table: &mut Table, now: SimTime, endpoint: u32) -> u64 {
        let mut gone = Vec::new();
        self.flows.retain(|&k, &mut (id, ep)| {
            if ep == endpoint {
                gone.push((k, id));
            }
            ep != endpoint
        });
        Self::delete_in_key_order(table, now, gone)
    }

    /// Deletes entries in flow-key order, so the table's free slots (and
    /// what early drop later picks) do not depend on the map's layout.
    fn delete_in_key_order(table: &mut Table, now: SimTime, mut gone: Vec<(u64, CtId)>) -> u64 {
        gone.sort_unstable_by_key(|&(k, _)| k);
        gone.into_iter()
            .map(|(_, id)| u64::from(table.delete(now, id)))
            .sum()
    }
}

/// What became of the second packet of a same-socket pair (glibc's A and
/// AAAA) whose first packet created a new DNAT entry to `first`: the two
/// reach conntrack at once with probability `concurrent` (an input: no
/// source measures it); then the second packet's own DNAT picks an endpoint
/// (`pick`), and the kernel profile decides (docs/calibration.md, row
/// `ct-udp-clash`; kubernetes#56903): 3.10 drops it; 4.19 drops it unless both
/// picked the same endpoint (the clash is then resolved by reusing the
/// confirmed entry); 5.15 inserts the clashing entry (living
/// [`UDP_CLASH_ENTRY_TIMEOUT`]) and the packet goes to its own pick. The
/// expected drop rate is [`udp_clash_drop_probability`].
pub fn udp_pair_second(
    kernel: Kernel,
    first: u32,
    concurrent: f64,
    pick: impl FnOnce() -> Option<u32>,
    rng: &mut SimRng,
) -> UdpPairSecond {
    if rng.random::<f64>() >= concurrent.clamp(0.0, 1.0) {
        return UdpPairSecond::Follows(first);
    }
    let second = pick().unwrap_or(first);
    match kernel {
        Kernel::V3_10 => UdpPairSecond::InsertFailed,
        Kernel::V4_19 if second != first => UdpPairSecond::InsertFailed,
        Kernel::V4_19 => UdpPairSecond::Follows(first),
        Kernel::V5_15 => UdpPairSecond::Clashed(second),
    }
}

/// [`udp_pair_second`]'s verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpPairSecond {
    /// Not concurrent, or the clash resolved to the first entry: the packet
    /// follows the first one's endpoint.
    Follows(u32),
    /// Dropped: `insert_failed` in `conntrack -S`.
    InsertFailed,
    /// Inserted as a clashing entry; the packet goes to this endpoint.
    Clashed(u32),
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sim_core::RngStreams;

    const GIB: u64 = 1 << 30;

    fn at(s: u64) -> SimTime {
        SimTime::ZERO + SimDuration::from_secs(s)
    }

    fn rng() -> SimRng {
        RngStreams::new(1).stream("ct")
    }

    fn small(max: u64, kernel: Kernel) -> Table {
        Table::new(ConntrackConfig {
            max,
            buckets: max / 4,
            timeouts: Timeouts::kube_proxy(),
            kernel,
        })
    }

    #[test]
    fn sizes_follow_the_kernel_and_kube_proxy_formulas() {
        // nf_conntrack_init_start: the four measured cases...
        assert_eq!(kernel_max(8 * GIB, Kernel::V3_10), 262_144);
        assert_eq!(kernel_max(2 * GIB, Kernel::V4_19), 65_536);
        assert_eq!(kernel_max(2 * GIB, Kernel::V5_15), 65_536);
        assert_eq!(kernel_max(GIB, Kernel::V5_15), 8_192);
        // ...and the tiers' edges and floors.
        assert_eq!(kernel_buckets(16 * GIB, Kernel::V5_15), 262_144);
        assert_eq!(kernel_buckets(4 * GIB, Kernel::V5_15), 65_536);
        assert_eq!(kernel_buckets(GIB, Kernel::V4_19), 8_192);
        assert_eq!(kernel_buckets(16 * 1024 * 1024, Kernel::V5_15), 1_024);
        assert_eq!(kernel_buckets(2 * 1024 * 1024, Kernel::V3_10), 32);
        // max(32768 x cores, 131072)
        assert_eq!(kube_proxy_max(2), 131_072);
        assert_eq!(kube_proxy_max(4), 131_072);
        assert_eq!(kube_proxy_max(16), 524_288);
        let c = ConntrackConfig::kube_proxy(GIB, 16, Kernel::V5_15);
        assert_eq!((c.max, c.buckets), (524_288, 131_072));
        assert_eq!(c.timeouts.tcp_established, SimDuration::from_secs(86_400));
        assert_eq!(c.timeouts.tcp_close_wait, SimDuration::from_secs(3_600));
        assert_eq!(
            Timeouts::kernel().tcp_established,
            SimDuration::from_secs(432_000)
        );
        assert_eq!(Kernel::parse("4.19"), Some(Kernel::V4_19));
        assert_eq!(Kernel::parse("4.9"), None);
    }

    #[test]
    fn entries_expire_at_their_state_timeout_and_traffic_refreshes_them() {
        let mut t = small(100, Kernel::V5_15);
        let mut r = rng();
        let a = t.insert(at(0), CtState::SynSent, &mut r).unwrap();
        assert!(t.set_state(at(0), a, CtState::Established));
        assert!(t.set_state(at(10), a, CtState::TimeWait));
        assert_eq!(t.live(at(129)), 1);
        assert_eq!(t.live(at(130)), 0, "TIME_WAIT lasts 120 s");
        assert!(!t.touch(at(131), a), "a stale id does nothing");
        let u = t.insert(at(200), CtState::UdpUnreplied, &mut r).unwrap();
        assert!(t.touch(at(220), u));
        assert!(t.touch(at(240), u));
        assert_eq!(t.live(at(269)), 1, "refreshed at 240 s: lives to 270 s");
        assert_eq!(t.state(at(269), u), Some(CtState::UdpUnreplied));
        assert_eq!(t.live(at(270)), 0);
        let s = t.stats();
        assert_eq!((s.inserted, s.expired), (2, 2));
    }

    #[test]
    fn a_full_table_drops_new_flows_and_established_ones_keep_working() {
        let mut t = small(10, Kernel::V5_15);
        let mut r = rng();
        let ids: Vec<CtId> = (0..10)
            .map(|_| {
                let id = t.insert(at(0), CtState::SynSent, &mut r).unwrap();
                t.set_state(at(0), id, CtState::Established);
                id
            })
            .collect();
        assert_eq!(
            t.insert(at(1), CtState::SynSent, &mut r),
            Err(Refused::TableFull)
        );
        assert_eq!(Refused::TableFull.to_string(), TABLE_FULL_MESSAGE);
        assert!(ids.iter().all(|&id| t.touch(at(2), id)));
        assert_eq!(t.stats().dropped_full, 1);
        assert!(t.delete(at(3), ids[0]));
        assert!(t.insert(at(3), CtState::SynSent, &mut r).is_ok());
        assert_eq!(t.live(at(3)), 10);
    }

    #[test]
    fn early_drop_evicts_unassured_entries_first() {
        let mut t = small(10, Kernel::V3_10);
        let mut r = rng();
        let mut ids = Vec::new();
        for i in 0..10 {
            let id = t.insert(at(0), CtState::SynSent, &mut r).unwrap();
            if i > 0 {
                t.set_state(at(0), id, CtState::Established);
            }
            ids.push(id);
        }
        // One unassured entry in ten; a small table is examined whole (8 of 10).
        let mut inserted = 0;
        for _ in 0..50 {
            if t.insert(at(1), CtState::UdpStream, &mut r).is_ok() {
                inserted += 1;
            }
        }
        assert_eq!(inserted, 1, "only the one SYN_SENT entry may go");
        assert_eq!(t.state(at(1), ids[0]), None);
        assert!(ids[1..].iter().all(|&id| t.touch(at(1), id)));
        assert_eq!(t.stats().evicted, 1);
    }

    #[test]
    fn time_wait_entries_are_evictable_from_4_10_on() {
        for (kernel, evictable) in [(Kernel::V3_10, false), (Kernel::V4_19, true)] {
            let mut t = small(100, kernel);
            let mut r = rng();
            for _ in 0..100 {
                let id = t.insert(at(0), CtState::SynSent, &mut r).unwrap();
                t.set_state(at(0), id, CtState::TimeWait);
            }
            let ok = t.insert(at(1), CtState::SynSent, &mut r).is_ok();
            assert_eq!(ok, evictable, "{kernel:?}");
        }
    }

    #[test]
    fn ebpf_bypasses_the_netfilter_table_for_pod_flows() {
        assert!(DataPath::Netfilter.tracks_pod_flows());
        assert!(!DataPath::Ebpf.tracks_pod_flows());
    }

    #[test]
    fn udp_clash_drops_depend_on_the_kernel() {
        let p = |k| udp_clash_drop_probability(k, 2, 0.5);
        assert_eq!(p(Kernel::V3_10), 0.5);
        assert_eq!(p(Kernel::V4_19), 0.25);
        assert_eq!(p(Kernel::V5_15), 0.0);
        assert_eq!(udp_clash_drop_probability(Kernel::V4_19, 1, 1.0), 0.0);
        // The sampled verdicts meet the closed form.
        for (kernel, want) in [
            (Kernel::V3_10, 0.5),
            (Kernel::V4_19, 0.25),
            (Kernel::V5_15, 0.0),
        ] {
            let mut r = rng();
            let mut pick = RngStreams::new(1).stream("pick");
            let n = 40_000;
            let mut drops = 0;
            let mut clashed = 0;
            for _ in 0..n {
                let ep = || Some(pick.random_range(0..2u32));
                match udp_pair_second(kernel, 0, 0.5, ep, &mut r) {
                    UdpPairSecond::InsertFailed => drops += 1,
                    UdpPairSecond::Clashed(_) => clashed += 1,
                    UdpPairSecond::Follows(ep) => assert_eq!(ep, 0),
                }
            }
            let got = f64::from(drops) / f64::from(n);
            println!(
                "{}: 2 endpoints, concurrent 0.5: {got:.4} vs {want}",
                kernel.name()
            );
            assert!((got - want).abs() < 0.01, "{got}");
            assert_eq!(clashed > 0, kernel == Kernel::V5_15);
        }
    }

    #[test]
    fn udp_flows_of_gone_entries_are_forgotten() {
        // A new socket per lookup: 100 flows/s for 10 minutes, each entry
        // living 30 s; the map stays near the live count.
        let mut t = small(1 << 20, Kernel::V5_15);
        let mut d = UdpDnat::default();
        let mut r = rng();
        for i in 0..60_000u64 {
            let now = SimTime::ZERO + SimDuration::from_millis(i * 10);
            assert_eq!(d.send(&mut t, now, i, || Some(1), &mut r), UdpSend::New(1));
            assert!(d.flows.len() as u64 <= 2 * t.live(now) + UDP_SWEEP_MIN as u64);
        }
        assert!(d.flows.len() < 12_000, "{}", d.flows.len());
    }

    #[test]
    fn stale_udp_entries_outlive_their_endpoint_until_idle_or_flushed() {
        let mut t = small(100, Kernel::V5_15);
        let mut d = UdpDnat::default();
        let mut r = rng();
        assert_eq!(
            d.send(&mut t, at(0), 7, || Some(1), &mut r),
            UdpSend::New(1)
        );
        assert!(d.reply(&mut t, at(0), 7));
        // Endpoint 1 is deleted at 10 s; the client keeps querying every 5 s.
        for s in (5..300).step_by(5) {
            assert_eq!(
                d.send(&mut t, at(s), 7, || Some(2), &mut r),
                UdpSend::Existing(1),
                "at {s} s"
            );
        }
        // A 30 s pause lets the entry expire: the next query picks again.
        assert_eq!(
            d.send(&mut t, at(325), 7, || Some(2), &mut r),
            UdpSend::New(2)
        );
        // Flushing an endpoint's entries moves its flows at once.
        assert_eq!(
            d.send(&mut t, at(326), 8, || Some(2), &mut r),
            UdpSend::New(2)
        );
        assert_eq!(d.flush_endpoint(&mut t, at(327), 2), 2);
        assert_eq!(
            d.send(&mut t, at(328), 7, || Some(3), &mut r),
            UdpSend::New(3)
        );
        assert_eq!(
            d.send(&mut t, at(329), 9, || None, &mut r),
            UdpSend::NoEndpoint
        );
        let s = t.stats();
        assert_eq!(s.inserted, s.expired + s.deleted + t.live(at(329)));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u8),
        SetState(usize, u8),
        Touch(usize),
        Delete(usize),
        Wait(u16),
    }

    fn state_of(i: u8) -> CtState {
        [
            CtState::SynSent,
            CtState::Established,
            CtState::CloseWait,
            CtState::TimeWait,
            CtState::UdpUnreplied,
            CtState::UdpReplied,
            CtState::UdpStream,
        ][i as usize % 7]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => any::<u8>().prop_map(Op::Insert),
            2 => (any::<usize>(), any::<u8>()).prop_map(|(i, s)| Op::SetState(i, s)),
            1 => any::<usize>().prop_map(Op::Touch),
            1 => any::<usize>().prop_map(Op::Delete),
            2 => (0u16..200).prop_map(Op::Wait),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// inserted = live + expired + evicted + deleted, at every step; the
        /// live count never exceeds nf_conntrack_max; a refused insert only
        /// happens on a full table.
        #[test]
        fn entries_are_conserved(
            ops in proptest::collection::vec(op(), 1..400),
            max in 1u64..40,
            k in 0usize..3,
            seed in any::<u64>(),
        ) {
            let mut t = small(max, Kernel::ALL[k]);
            let mut r = RngStreams::new(seed).stream("ct");
            let mut ids: Vec<CtId> = Vec::new();
            let mut now = SimTime::ZERO;
            for o in ops {
                match o {
                    Op::Insert(s) => {
                        let before = t.live(now);
                        match t.insert(now, state_of(s), &mut r) {
                            Ok(id) => ids.push(id),
                            Err(_) => prop_assert_eq!(before, max),
                        }
                    }
                    Op::SetState(i, s) if !ids.is_empty() => { t.set_state(now, ids[i % ids.len()], state_of(s)); }
                    Op::Touch(i) if !ids.is_empty() => { t.touch(now, ids[i % ids.len()]); }
                    Op::Delete(i) if !ids.is_empty() => { t.delete(now, ids[i % ids.len()]); }
                    Op::Wait(s) => now += SimDuration::from_secs(u64::from(s)),
                    _ => {}
                }
                let live = t.live(now);
                let s = t.stats();
                prop_assert!(live <= max);
                prop_assert_eq!(s.inserted, live + s.expired + s.evicted + s.deleted);
                prop_assert!(t.evictable() <= live);
            }
        }
    }
}
