//! # Packetization-layer path MTU discovery (`tcp_mtu_probing`)
//!
//! ## Scope
//! The search state Linux keeps in `icsk_mtup` and the upward binary search
//! of RFC 4821 as net/ipv4/tcp_output.c, tcp_input.c and tcp_timer.c run
//! it:
//! - `tcp_mtup_init()` at the end of the handshake: `search_high` = the
//!   peer's MSS + 40 (`mss_clamp` + TCP + IP headers), `search_low` =
//!   `tcp_mss_to_mtu(tcp_base_mss)` (1076); enabled at once with
//!   `tcp_mtu_probing` 2 (the MSS is synced to it only at the next
//!   `tcp_sync_mss()`, so a server keeps the handshake's MSS until then);
//! - black-hole detection, `tcp_mtu_probing()` in tcp_timer.c (after
//!   `tcp_retries1` timeouts): the first time it enables probing; when
//!   probing is already on it halves: `search_low` = the MTU of
//!   min(`tcp_base_mss`, `tcp_mtu_to_mss(search_low)` / 2), at least
//!   `tcp_mtu_probe_floor` (48) (1024 with 1, 512 with 2 on the recordings);
//! - `tcp_mtu_probe()`: with probing on, no probe out, nothing being
//!   recovered (`TCP_CA_Open`) and cwnd >= 11, a probe of
//!   `tcp_mtu_to_mss((search_high + search_low) / 2)` payload bytes goes out
//!   if that is within `search_high` and the range is at least
//!   `tcp_probe_threshold` (8), the data (probe + 4 segments) is queued, the
//!   window takes it, and cwnd has room for 2 more;
//! - `tcp_mtup_probe_success()`: the probe's end is acknowledged:
//!   `search_low` = the probe's MTU, the MSS synced to it, cwnd scaled by
//!   old MTU / probe MTU; `tcp_mtup_probe_failed()` (from
//!   `tcp_fastretrans_alert()` when the first hole is the probe):
//!   `search_high` = probe MTU - 1, cwnd untouched, the lost data resent
//!   (`tcp_simple_retransmit()`);
//! - `tcp_mtu_check_reprobe()`: once the range is under the threshold, a
//!   new search from the current MSS every `tcp_probe_interval` (600 s).
//!
//! On mtu_blackhole's path this gives the kernel's sequence exactly: 4986,
//! 3004, 2013, 1518 lost, 1270, 1393 acknowledged, 1455 lost, 1423, 1438,
//! 1446 acknowledged, 1450 lost, then 1446 (range 1498..1501 < 8).
//!
//! Limitations: probes are detected lost by three duplicate ACKs only (the
//! model has no SACK); an RTO while a probe is out counts as a failure of
//! the probe too.
//!
//! ## Parameters
//! `tcp_base_mss` 1024, `tcp_probe_threshold` 8, `tcp_probe_interval`
//! 600 s, `tcp_mtu_probe_floor` 48 (Documentation/networking/ip-sysctl.rst;
//! docs/calibration.md, row `tcp-mtu-probing`).
//!
//! ## What it emits
//! The probe's size; the MSS the connection uses follows `search_low`.
//!
//! ## Validation
//! Unit tests in `tcp/tests.rs`: the search sequence on a 1500-byte path
//! from a 9001-byte interface (exactly the recording's), and the halving
//! with `tcp_mtu_probing` 2.

use sim_core::{SimDuration, SimTime};

/// `net.ipv4.tcp_probe_threshold` default \[bytes\].
pub const PROBE_THRESHOLD: u32 = 8;
/// `net.ipv4.tcp_probe_interval` default.
pub const PROBE_INTERVAL: SimDuration = SimDuration::from_secs(600);
/// `net.ipv4.tcp_mtu_probe_floor` default \[bytes\].
pub const PROBE_FLOOR: u32 = 48;
/// cwnd a probe needs (`tcp_mtu_probe()`: `tcp_snd_cwnd(tp) < 11` returns).
pub const PROBE_MIN_CWND: u32 = 11;
/// Full segments sent after a probe (`tp->reordering + 1`, reordering 3).
pub const PROBE_FOLLOWERS: u32 = 4;

/// One probe in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    /// Its MTU (`icsk_mtup.probe_size`).
    pub mtu: u32,
    /// First byte (`mtu_probe.probe_seq_start`).
    pub start: u64,
    /// One past its last byte (`mtu_probe.probe_seq_end`).
    pub end: u64,
}

/// `icsk_mtup`.
#[derive(Clone, Copy, Debug)]
pub struct MtuProbe {
    /// Probing on.
    pub enabled: bool,
    /// Largest MTU known to work.
    pub search_low: u32,
    /// Smallest MTU known not to, less one.
    pub search_high: u32,
    /// The probe out, if any.
    pub probe: Option<Probe>,
    /// When the search last (re)started.
    pub probe_timestamp: SimTime,
}

impl MtuProbe {
    /// `tcp_mtup_init()` before the peer's MSS is known.
    pub fn new(search_low: u32, now: SimTime) -> Self {
        MtuProbe {
            enabled: false,
            search_low,
            search_high: search_low,
            probe: None,
            probe_timestamp: now,
        }
    }

    /// The MTU halfway through the range (`tcp_mtu_probe()`), or `None`
    /// when the range is below `threshold` or the midpoint is past
    /// `search_high`.
    pub fn next_probe_mtu(&self, threshold: u32) -> Option<u32> {
        let interval = self.search_high.saturating_sub(self.search_low);
        if !self.enabled || self.probe.is_some() || interval < threshold {
            return None;
        }
        Some((self.search_high + self.search_low) >> 1)
    }

    /// `tcp_mtup_probe_success()`: returns the probe's MTU.
    pub fn succeeded(&mut self) -> Option<u32> {
        let p = self.probe.take()?;
        self.search_low = p.mtu;
        Some(p.mtu)
    }

    /// `tcp_mtup_probe_failed()`: returns the probe's MTU.
    pub fn failed(&mut self, now: SimTime) -> Option<u32> {
        let p = self.probe.take()?;
        self.search_high = p.mtu - 1;
        self.probe_timestamp = now;
        Some(p.mtu)
    }
}
