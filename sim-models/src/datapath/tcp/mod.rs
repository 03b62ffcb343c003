//! # TCP: connection set-up, segments, retransmission, MSS and PMTU
//!
//! ## Scope
//! One TCP connection end as Linux runs it, as far as MTU outages need:
//! - the handshake, with the MSS option taken from the interface MTU and the
//!   cached path MTU, and SYN retransmission at 1 s doubling until
//!   `tcp_syn_retries` (SYN-ACKs likewise until `tcp_synack_retries`);
//! - data segments of the current MSS (timestamps on, so 12 bytes of options
//!   per segment, their TSval/TSecr carried), cumulative ACKs sent for every
//!   segment, out-of-order segments kept until the gap fills, fast
//!   retransmit after three duplicate ACKs;
//! - the congestion window from IW10 ([`congestion`]: CUBIC by default,
//!   Reno or BBR per `tcp_congestion_control`);
//! - the receive window ([`rcvbuf`]): window scaling in the handshake, the
//!   windows Linux advertises and `tcp_rmem` autotuning; a new segment goes
//!   out only if it fits the peer's window whole (`tcp_snd_wnd_test()`);
//! - the tail loss probe (`tcp_early_retrans` 3, RFC 8985), as
//!   `tcp_schedule_loss_probe()` and `tcp_send_loss_probe()` in
//!   net/ipv4/tcp_output.c do: with data out and nothing retransmitted, the
//!   timer is the probe timeout PTO = 2 SRTT + `TCP_TIMEOUT_MIN` (2 ms;
//!   `rto_min` instead when a single segment is out), at least 10 ms, never
//!   later than the RTO; when it fires one new segment goes out if the
//!   receive window allows, else the last segment again, and the RTO
//!   restarts from then (`tcp_rearm_rto()`). On a 20 ms path the probe
//!   leaves 42-46 ms after the flight (measured on Linux 6.18: 45-48 ms);
//! - the retransmission timer: SRTT/RTTVAR (RFC 6298) with Linux's floor on
//!   the variance term (`rto = srtt + max(4 rttvar, rto_min)`), 1 s before
//!   any sample, exponential backoff capped at `rto_max`, and Linux's give-up
//!   test `retransmits_timed_out()` (net/ipv4/tcp_timer.c, called from
//!   `tcp_write_timeout()`): elapsed time since `retrans_stamp`, the first
//!   retransmission of the outstanding data (set in `tcp_retransmit_skb()`,
//!   cleared once no retransmitted data is outstanding), against the time
//!   `tcp_retries2` backoffs from `rto_min` would take (924.6 s); before the
//!   first retransmission nothing has timed out;
//! - path MTU: an ICMP "fragmentation needed" lowers the MSS at once and the
//!   lost segments are resent at the new size (`tcp_v4_mtu_reduced`);
//! - `tcp_mtu_probing=1`: after `tcp_retries1` backoffs' worth of timeouts
//!   (3 s from `rto_min`, on the same `retrans_stamp` clock, so at small
//!   RTOs detection lands one RTO later than 3 s after the first send:
//!   6.5 s at a 210 ms RTO) the connection assumes a black hole and drops to
//!   `tcp_base_mss` (1024), as `tcp_mtu_probing()` in tcp_timer.c does;
//!   later timeouts (and with `=2`, where probing is on from the handshake,
//!   the first) halve it; then the upward search of [`mtu_probe`]. The arithmetic is the kernel's
//!   (net/ipv4/tcp_output.c): `tcp_mtup_init()` sets `search_low =
//!   tcp_mss_to_mtu(tcp_base_mss)` = 1024 + 32 (TCP header with
//!   timestamps) + 20 = 1076; `tcp_sync_mss()` takes the smaller of
//!   `tcp_mtu_to_mss(pmtu)` and `tcp_mtu_to_mss(search_low)`, and
//!   `tcp_mtu_to_mss()` clamps to the peer's MSS before it takes the 12
//!   timestamp bytes off. So the MSS is min(pmtu - 52, peer MSS - 12,
//!   1024): 1024 payload bytes after detection, as measured on Linux 6.18.
//!
//! Limitations: no FIN/TIME_WAIT (a connection ends when its transfer is
//! done or it gives up; a client that gives up sends RST); no SACK (the
//! loss probe, which Linux only sends on SACK connections, is modelled as
//! if SACK were on, as it is by default; the probe's own loss detection
//! via `tlp_high_seq` is not), no delayed ACKs, no Nagle.
//! The send buffer (`tcp_wmem`) is not a limit; the RTO is not rounded to
//! jiffies (the recording kernel's first RTO was 224 ms where the model's is
//! 220 ms).
//!
//! ## Parameters (Linux defaults)
//! From the calibration document's "TCP (Linux)" section (H): SYN RTO 1 s
//! doubling, `tcp_syn_retries` 6 (last retransmission at 63 s, give up at
//! 127 s; docs/calibration.md, row `tcp-syn-retransmit`); data RTO min
//! 200 ms, max 120 s, `tcp_retries2` 15 (>= 924.6 s; docs/calibration.md,
//! row `tcp-rto`); `tcp_mtu_probing` 0, `tcp_retries1` 3 (~3 s),
//! `tcp_base_mss` 1024 (docs/calibration.md, row `tcp-mtu-probing`).
//! From Documentation/networking/ip-sysctl.rst: `tcp_synack_retries` 5
//! (docs/calibration.md, row `tcp-synack-retries`). Initial window 10
//! segments (RFC 6928, Linux `TCP_INIT_CWND`; docs/calibration.md, row
//! `tcp-init-cwnd`). `tcp_rmem` and `tcp_adv_win_scale` (docs/calibration.md,
//! row `tcp-rwnd`); CUBIC, Reno, BBR (docs/calibration.md, row
//! `tcp-congestion-control`); go-back-N after a loss, with no SACK, has no
//! source and differs from Linux (docs/calibration.md, row
//! `tcp-loss-recovery`).
//!
//! ## What it emits
//! [`TcpOut`] actions for the network to carry out: segments to send,
//! timers to arm, bytes received, the connection's end (and its errno text:
//! `Connection timed out`), and notes when the MSS changes.
//!
//! ## Validation
//! Unit tests: the SYN schedule (1, 3, 7, 15, 31, 63 s, fail at 127 s), the
//! 924.6 s give-up time, the 3 s black-hole detection (validation: the
//! times come out of the kernel's timer algorithm, not copied from the
//! figures they are checked against), MSS from MTU and from
//! `tcp_sync_mss()`'s three bounds, the tail loss probe's timing and
//! segment, a transfer over a lossless loop, the SYN windows and scale the
//! recordings show, the window's growth within a 2 MB download, and each
//! congestion control's response. Conservation over random topologies is
//! checked in [`super::network`].

use sim_core::{SimDuration, SimTime};
use std::collections::{BTreeMap, VecDeque};

use super::packet::{TcpFlags, IPV4_HEADER, TCP_HEADER, TCP_TIMESTAMP_OPTION};

pub mod congestion;
pub mod mtu_probe;
pub mod rcvbuf;

pub use congestion::CongestionControl;
use congestion::{AckInfo, Congestion};
use mtu_probe::{MtuProbe, Probe, PROBE_FOLLOWERS, PROBE_MIN_CWND};
pub use rcvbuf::RcvSettings;
use rcvbuf::{ts_ms, RcvWindow};

/// Per-host TCP sysctls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpSettings {
    /// `net.ipv4.tcp_syn_retries`.
    pub syn_retries: u32,
    /// `net.ipv4.tcp_synack_retries`.
    pub synack_retries: u32,
    /// `net.ipv4.tcp_retries1`.
    pub retries1: u32,
    /// `net.ipv4.tcp_retries2`.
    pub retries2: u32,
    /// `net.ipv4.tcp_mtu_probing`: 0 off, 1 after a black hole is detected, 2 always.
    pub mtu_probing: u8,
    /// `net.ipv4.tcp_base_mss` \[bytes\].
    pub base_mss: u32,
    /// `net.ipv4.tcp_rmem` and `tcp_adv_win_scale`.
    pub rcv: RcvSettings,
    /// `net.ipv4.tcp_congestion_control`.
    pub cc: CongestionControl,
    /// `net.ipv4.tcp_probe_threshold` \[bytes\].
    pub probe_threshold: u32,
    /// `net.ipv4.tcp_probe_interval`.
    pub probe_interval: SimDuration,
}

impl Default for TcpSettings {
    fn default() -> Self {
        TcpSettings {
            syn_retries: 6,
            synack_retries: 5,
            retries1: 3,
            retries2: 15,
            mtu_probing: 0,
            base_mss: 1024,
            rcv: RcvSettings::default(),
            cc: CongestionControl::Cubic,
            probe_threshold: mtu_probe::PROBE_THRESHOLD,
            probe_interval: mtu_probe::PROBE_INTERVAL,
        }
    }
}

/// Lower bound of the data RTO (`TCP_RTO_MIN`).
pub const RTO_MIN: SimDuration = SimDuration::from_millis(200);
/// Upper bound of the RTO (`TCP_RTO_MAX`).
pub const RTO_MAX: SimDuration = SimDuration::from_secs(120);
/// RTO before any RTT sample, and the SYN RTO (`TCP_TIMEOUT_INIT`).
pub const RTO_INIT: SimDuration = SimDuration::from_secs(1);
/// `TCP_TIMEOUT_MIN`: what the loss probe timeout adds to 2 SRTT when more
/// than one segment is out (2 jiffies at HZ=1000).
pub const TCP_TIMEOUT_MIN: SimDuration = SimDuration::from_millis(2);
/// Floor of the loss probe timeout.
pub const PTO_MIN: SimDuration = SimDuration::from_millis(10);
/// Initial congestion window \[segments\].
pub const INIT_CWND: u32 = 10;
/// IP + TCP headers without options: MSS = MTU - this.
pub const MSS_HEADERS: u32 = IPV4_HEADER + TCP_HEADER;

/// Linux `retransmits_timed_out()`: how long `boundary` backoffs from
/// `rto_base` take, doubling up to [`RTO_MAX`] then linear.
pub fn retrans_timeout(boundary: u32, rto_base: SimDuration) -> SimDuration {
    let base = rto_base.as_nanos();
    let mut thresh = 0u32;
    while base.saturating_mul(2u64.saturating_pow(thresh + 1)) <= RTO_MAX.as_nanos() {
        thresh += 1;
    }
    if boundary <= thresh {
        SimDuration::from_nanos(((2u64 << boundary) - 1).saturating_mul(base))
    } else {
        SimDuration::from_nanos(
            ((2u64 << thresh) - 1).saturating_mul(base)
                + u64::from(boundary - thresh) * RTO_MAX.as_nanos(),
        )
    }
}

/// Linux `tcp_mss_to_mtu()` as `tcp_mtup_init()` uses it on `tcp_base_mss`:
/// the payload plus the TCP header with the timestamp option and the IP
/// header (1024 -> 1076).
pub fn mss_to_mtu(mss: u32) -> u32 {
    mss + MSS_HEADERS + TCP_TIMESTAMP_OPTION
}

/// Which end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Sent the SYN.
    Client,
    /// Answered it.
    Server,
}

/// Connection state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// SYN sent, waiting for SYN-ACK.
    SynSent,
    /// SYN received, SYN-ACK sent.
    SynRcvd,
    /// Data may flow.
    Established,
    /// Over.
    Closed,
}

/// The TCP fields of one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seg {
    /// Sequence number (relative; the SYN is 0).
    pub seq: u64,
    /// Acknowledgement number.
    pub ack: u64,
    /// Flags.
    pub flags: TcpFlags,
    /// MSS option \[bytes\].
    pub mss: Option<u32>,
    /// Payload \[bytes\].
    pub payload: u32,
    /// Window field (scaled by the sender's window scale except on SYNs).
    pub win: u16,
    /// Window-scale option (SYN and SYN-ACK only).
    pub wscale: Option<u8>,
    /// Timestamp option: TSval and TSecr \[ms\].
    pub ts: (u32, u32),
}

/// What the connection asks the network to do.
#[derive(Clone, Debug, PartialEq)]
pub enum TcpOut {
    /// Send a segment.
    Segment(Seg),
    /// (Re)arm the retransmission timer.
    Arm(SimDuration),
    /// Stop it.
    Disarm,
    /// The handshake completed.
    Established,
    /// In-order bytes received so far (cumulative).
    Received(u64),
    /// The connection gave up (`Connection timed out`) or was reset.
    Failed(&'static str),
    /// Something an operator would want to know (`MSS lowered to 1410`).
    Note(String),
}

#[derive(Clone, Copy, Debug)]
struct Sent {
    end: u64,
    first_sent: SimTime,
    retransmitted: bool,
}

/// One end of a TCP connection.
#[derive(Clone, Debug)]
pub struct Conn {
    /// Which end.
    pub role: Role,
    /// State.
    pub state: State,
    settings: TcpSettings,
    /// Our interface MTU, or the cached path MTU to the peer if lower.
    pmtu: u32,
    peer_mss: u32,
    /// `icsk_mtup`: MTU probing's search.
    mtup: MtuProbe,
    /// Payload bytes per full segment (`mss_cache`), set by `sync_mss()`.
    mss_cache: u32,
    /// Bytes the application has written (the stream's length).
    app_end: u64,
    snd_una: u64,
    snd_nxt: u64,
    /// The highest sequence number sent (after a go-back, `snd_nxt` is
    /// below it until the window reopens).
    snd_max: u64,
    in_flight: VecDeque<Sent>,
    cc: Congestion,
    /// The peer's window (`snd_wnd`) \[bytes\] and its scale.
    snd_wnd: u64,
    snd_wscale: u8,
    /// Our receive window.
    rcv: RcvWindow,
    /// The peer's latest TSval, echoed in ours (`ts_recent`).
    ts_recent: u32,
    dupacks: u32,
    srtt: Option<SimDuration>,
    rttvar: SimDuration,
    rto: SimDuration,
    retransmits: u32,
    /// Linux `retrans_stamp`: when the first retransmission of the
    /// outstanding data went out; the black-hole and give-up clocks run
    /// from here.
    retrans_stamp: Option<SimTime>,
    /// The pending timer is the tail loss probe (`ICSK_TIME_LOSS_PROBE`),
    /// not the RTO.
    tlp_armed: bool,
    rcv_nxt: u64,
    ooo: BTreeMap<u64, u64>,
    syn_sent_at: SimTime,
}

impl Conn {
    fn new(role: Role, settings: TcpSettings, pmtu: u32, now: SimTime) -> Self {
        // tcp_connect_init() rounds the first window to `advmss`;
        // tcp_openreq_init_rwin() to `advmss` less the timestamp option.
        let rcv_round_mss = match role {
            Role::Client => pmtu - MSS_HEADERS,
            Role::Server => pmtu - MSS_HEADERS - TCP_TIMESTAMP_OPTION,
        };
        let mut c = Conn {
            role,
            state: if role == Role::Client {
                State::SynSent
            } else {
                State::SynRcvd
            },
            settings,
            pmtu,
            peer_mss: 536,
            mtup: MtuProbe::new(mss_to_mtu(settings.base_mss), now),
            mss_cache: 0,
            app_end: 1,
            snd_una: 0,
            snd_nxt: 1,
            snd_max: 1,
            in_flight: VecDeque::new(),
            cc: Congestion::new(settings.cc, INIT_CWND, now),
            snd_wnd: 0,
            snd_wscale: 0,
            rcv: RcvWindow::new(settings.rcv, pmtu - MSS_HEADERS, rcv_round_mss),
            ts_recent: 0,
            dupacks: 0,
            srtt: None,
            rttvar: SimDuration::ZERO,
            rto: RTO_INIT,
            retransmits: 0,
            retrans_stamp: None,
            tlp_armed: false,
            rcv_nxt: 0,
            ooo: BTreeMap::new(),
            syn_sent_at: now,
        };
        c.sync_mss();
        c
    }

    /// Opens a connection: sends the SYN.
    pub fn connect(settings: TcpSettings, pmtu: u32, now: SimTime, out: &mut Vec<TcpOut>) -> Self {
        let c = Conn::new(Role::Client, settings, pmtu, now);
        out.push(c.syn(TcpFlags::SYN, now));
        out.push(TcpOut::Arm(RTO_INIT));
        c
    }

    /// Accepts a SYN: sends the SYN-ACK. Window scaling is used when the
    /// SYN offered it (RFC 7323), as ours always do.
    pub fn accept(
        settings: TcpSettings,
        pmtu: u32,
        syn: Seg,
        now: SimTime,
        out: &mut Vec<TcpOut>,
    ) -> Self {
        let mut c = Conn::new(Role::Server, settings, pmtu, now);
        c.peer_mss = syn.mss.unwrap_or(536);
        c.sync_mss();
        c.snd_wscale = syn.wscale.unwrap_or(0);
        c.snd_wnd = u64::from(syn.win);
        c.ts_recent = syn.ts.0;
        c.rcv_nxt = 1;
        out.push(c.syn(TcpFlags::SYN.with(TcpFlags::ACK), now));
        out.push(TcpOut::Arm(RTO_INIT));
        c
    }

    fn syn(&self, flags: TcpFlags, now: SimTime) -> TcpOut {
        TcpOut::Segment(Seg {
            seq: 0,
            ack: self.rcv_nxt,
            flags,
            mss: Some(self.pmtu - MSS_HEADERS),
            payload: 0,
            win: self.rcv.syn_window(),
            wscale: Some(self.rcv.wscale()),
            ts: (ts_ms(now), self.ts_recent),
        })
    }

    /// A segment with our current window and timestamps.
    fn seg(&mut self, now: SimTime, seq: u64, flags: TcpFlags, payload: u32) -> Seg {
        let held = self.ooo_bytes();
        Seg {
            seq,
            ack: self.rcv_nxt,
            flags,
            mss: None,
            payload,
            win: self.rcv.select(self.rcv_nxt, held),
            wscale: None,
            ts: (ts_ms(now), self.ts_recent),
        }
    }

    /// Out-of-order bytes held.
    fn ooo_bytes(&self) -> u64 {
        self.ooo.iter().map(|(s, e)| e - s).sum()
    }

    /// The congestion state.
    pub fn congestion(&self) -> &Congestion {
        &self.cc
    }

    /// The receive buffer now (`sk_rcvbuf`) \[bytes\].
    pub fn rcvbuf(&self) -> u32 {
        self.rcv.rcvbuf()
    }

    /// Linux `tcp_mtu_to_mss()`: payload bytes per segment for a path MTU
    /// of `mtu`: the headers off, clamped to the peer's MSS, then the
    /// timestamp option off, at least 48.
    fn mtu_to_mss(&self, mtu: u32) -> u32 {
        (mtu.saturating_sub(MSS_HEADERS))
            .min(self.peer_mss)
            .saturating_sub(TCP_TIMESTAMP_OPTION)
            .max(48)
    }

    /// Payload bytes per full segment now: Linux `tcp_sync_mss()`, the MSS
    /// of the path MTU, and with MTU probing on no more than the MSS of
    /// `search_low`.
    pub fn mss(&self) -> u32 {
        self.mss_cache
    }

    /// Linux `tcp_sync_mss()`: `search_high` no higher than the path MTU,
    /// and the MSS of the path MTU, with probing on no more than the MSS of
    /// `search_low`.
    fn sync_mss(&mut self) {
        self.mtup.search_high = self.mtup.search_high.min(self.pmtu);
        let mut mss = self.mtu_to_mss(self.pmtu);
        if self.mtup.enabled {
            mss = mss.min(self.mtu_to_mss(self.mtup.search_low));
        }
        self.mss_cache = mss;
    }

    /// Linux `tcp_mtup_init()` at the end of the handshake: the search runs
    /// from the base MSS to the peer's MSS; on at once with
    /// `tcp_mtu_probing` 2.
    fn mtup_init(&mut self, now: SimTime) {
        self.mtup = MtuProbe::new(mss_to_mtu(self.settings.base_mss), now);
        self.mtup.search_high = (self.peer_mss + MSS_HEADERS).min(self.pmtu);
        self.mtup.enabled = self.settings.mtu_probing >= 2;
    }

    /// Linux `tcp_mtu_probing()` (tcp_timer.c), at each timeout after
    /// `tcp_retries1`'s worth: the first turns probing on, later ones halve
    /// `search_low`; then `tcp_sync_mss()`.
    fn black_hole(&mut self, now: SimTime) {
        if !self.mtup.enabled {
            self.mtup.enabled = true;
            self.mtup.probe_timestamp = now;
        } else {
            let mss = (self.mtu_to_mss(self.mtup.search_low) >> 1)
                .min(self.settings.base_mss)
                .max(mtu_probe::PROBE_FLOOR);
            self.mtup.search_low = mss_to_mtu(mss);
        }
        self.mtup.probe = None;
        self.sync_mss();
    }

    /// Linux `tcp_mtu_probe()`: sends one probe segment of the MTU halfway
    /// through the search range if everything allows it; whether it did.
    fn mtu_probe(&mut self, now: SimTime, out: &mut Vec<TcpOut>) -> bool {
        if !self.mtup.enabled
            || self.mtup.probe.is_some()
            || self.retrans_stamp.is_some()
            || self.dupacks > 0
            || self.cc.cwnd() < PROBE_MIN_CWND
        {
            return false;
        }
        let size = self
            .mtup
            .next_probe_mtu(self.settings.probe_threshold)
            .map(|mid| self.mtu_to_mss(mid))
            .filter(|&size| size <= self.mtu_to_mss(self.mtup.search_high));
        let Some(size) = size else {
            // tcp_mtu_check_reprobe(): a new search every tcp_probe_interval.
            if now - self.mtup.probe_timestamp >= self.settings.probe_interval {
                self.mtup.search_high = (self.peer_mss + MSS_HEADERS).min(self.pmtu);
                self.mtup.search_low = mss_to_mtu(self.mss_cache);
                self.mtup.probe_timestamp = now;
            }
            return false;
        };
        let needed = u64::from(size + PROBE_FOLLOWERS * self.mss_cache);
        let flight = self.flight_segments();
        if self.app_end - self.snd_nxt < needed
            || self.snd_nxt + needed > self.snd_una + self.snd_wnd
            || flight + 2 > self.cc.cwnd()
        {
            return false;
        }
        let seg = self.seg(now, self.snd_nxt, TcpFlags::ACK.with(TcpFlags::PSH), size);
        out.push(TcpOut::Segment(seg));
        let start = self.snd_nxt;
        self.snd_nxt += u64::from(size);
        self.snd_max = self.snd_max.max(self.snd_nxt);
        self.in_flight.push_back(Sent {
            end: self.snd_nxt,
            first_sent: now,
            retransmitted: false,
        });
        self.mtup.probe = Some(Probe {
            mtu: mss_to_mtu(size),
            start,
            end: self.snd_nxt,
        });
        true
    }

    /// In-order bytes received (the SYN not counted).
    pub fn received(&self) -> u64 {
        self.rcv_nxt.saturating_sub(1)
    }

    /// Whether every byte written has been acknowledged.
    pub fn all_acked(&self) -> bool {
        self.snd_una >= self.app_end
    }

    /// The application writes `bytes` more.
    pub fn write(&mut self, bytes: u64, now: SimTime, out: &mut Vec<TcpOut>) {
        self.app_end += bytes;
        if self.state == State::Established {
            self.push(now, out);
        }
    }

    /// Aborts (the application closed with data pending): sends RST.
    pub fn abort(&mut self, now: SimTime, out: &mut Vec<TcpOut>) {
        if self.state != State::Closed {
            let mut rst = self.seg(now, self.snd_nxt, TcpFlags::RST, 0);
            rst.ack = 0;
            rst.win = 0;
            out.push(TcpOut::Segment(rst));
            out.push(TcpOut::Disarm);
            self.state = State::Closed;
        }
    }

    fn flight_segments(&self) -> u32 {
        self.in_flight.len() as u32
    }

    /// The length of the next new segment, if the peer's window takes it
    /// whole (`tcp_snd_wnd_test()`).
    fn next_len_in_window(&self) -> Option<u32> {
        let len = (self.app_end - self.snd_nxt).min(u64::from(self.mss()));
        (len > 0 && self.snd_nxt + len <= self.snd_una + self.snd_wnd).then_some(len as u32)
    }

    /// Sends the next segment of new data (at most one MSS).
    fn send_new_segment(&mut self, now: SimTime, out: &mut Vec<TcpOut>) {
        let len = (self.app_end - self.snd_nxt).min(u64::from(self.mss())) as u32;
        let seg = self.seg(now, self.snd_nxt, TcpFlags::ACK.with(TcpFlags::PSH), len);
        out.push(TcpOut::Segment(seg));
        self.snd_nxt += u64::from(len);
        self.snd_max = self.snd_max.max(self.snd_nxt);
        self.in_flight.push_back(Sent {
            end: self.snd_nxt,
            first_sent: now,
            retransmitted: false,
        });
    }

    /// Sends what the windows allow.
    fn push(&mut self, now: SimTime, out: &mut Vec<TcpOut>) {
        let was_idle = self.in_flight.is_empty();
        if self.state == State::Established {
            self.mtu_probe(now, out);
        }
        while self.flight_segments() < self.cc.cwnd() && self.next_len_in_window().is_some() {
            self.send_new_segment(now, out);
        }
        if was_idle && !self.in_flight.is_empty() {
            self.arm_xmit_timer(out);
        }
    }

    /// Linux `tcp_schedule_loss_probe()`, else `tcp_rearm_rto()`: with data
    /// out and no retransmission outstanding (`TCP_CA_Open`), arm the probe
    /// timeout, PTO = 2 SRTT + `TCP_TIMEOUT_MIN` (+ `rto_min` instead when
    /// one segment is out, for a delayed ACK), at least 10 ms, 1 s before
    /// any RTT sample, never later than the RTO; otherwise arm the RTO.
    fn arm_xmit_timer(&mut self, out: &mut Vec<TcpOut>) {
        self.tlp_armed = self.state == State::Established
            && !self.in_flight.is_empty()
            && self.retrans_stamp.is_none();
        if !self.tlp_armed {
            out.push(TcpOut::Arm(self.rto));
            return;
        }
        let pto = match self.srtt {
            Some(srtt) => {
                let extra = if self.in_flight.len() == 1 {
                    RTO_MIN
                } else {
                    TCP_TIMEOUT_MIN
                };
                (srtt.saturating_mul(2) + extra).max(PTO_MIN)
            }
            None => RTO_INIT,
        };
        out.push(TcpOut::Arm(pto.min(self.rto)));
    }

    /// Linux `tcp_send_loss_probe()`: the probe timeout fired. Send one new
    /// segment if there is one and the receive window allows it (the
    /// congestion window is ignored), else resend the last segment sent;
    /// then restart the RTO from now (`tcp_rearm_rto()`). The probe goes
    /// out through `__tcp_retransmit_skb()`, so it does not stamp
    /// `retrans_stamp`.
    fn send_loss_probe(&mut self, now: SimTime, out: &mut Vec<TcpOut>) {
        if self.next_len_in_window().is_some() {
            self.send_new_segment(now, out);
        } else if let Some(tail) = self.in_flight.back_mut() {
            tail.retransmitted = true;
            let end = tail.end;
            let n = self.in_flight.len();
            let start = if n >= 2 {
                self.in_flight[n - 2].end
            } else {
                self.snd_una
            };
            let seg = self.seg(
                now,
                start,
                TcpFlags::ACK.with(TcpFlags::PSH),
                (end - start) as u32,
            );
            out.push(TcpOut::Segment(seg));
        }
        out.push(TcpOut::Arm(self.rto));
    }

    /// Retransmits the oldest unacknowledged data at the current MSS; the
    /// first retransmission stamps `retrans_stamp` (`tcp_retransmit_skb`).
    fn retransmit_head(&mut self, now: SimTime, out: &mut Vec<TcpOut>) {
        let Some(head) = self.in_flight.front().copied() else {
            return;
        };
        self.retrans_stamp.get_or_insert(now);
        if self.tlp_armed {
            // Recovery starts: the probe gives way to the RTO
            // (`tcp_xmit_retransmit_queue()` rearms it).
            self.tlp_armed = false;
            out.push(TcpOut::Arm(self.rto));
        }
        // A probe whose data is sent again is abandoned (its range kept).
        self.mtup.probe = None;
        let mss = u64::from(self.mss());
        // Go back: everything after the head is sent again as the window reopens.
        let first_sent = head.first_sent;
        self.in_flight.clear();
        let end = (self.snd_una + mss).min(self.app_end);
        let seg = self.seg(
            now,
            self.snd_una,
            TcpFlags::ACK.with(TcpFlags::PSH),
            (end - self.snd_una) as u32,
        );
        out.push(TcpOut::Segment(seg));
        self.in_flight.push_back(Sent {
            end,
            first_sent,
            retransmitted: true,
        });
        self.snd_nxt = end;
    }

    /// Our SYN is acknowledged: take an RTT sample if it was not
    /// retransmitted (Karn), and move to ESTABLISHED.
    fn handshake_done(&mut self, now: SimTime, out: &mut Vec<TcpOut>) {
        self.snd_una = 1;
        if self.retransmits == 0 {
            self.update_rtt(now - self.syn_sent_at);
        }
        self.retransmits = 0;
        self.state = State::Established;
        self.rcv.established(self.rcv_nxt, now);
        // tcp_init_transfer() -> tcp_mtup_init(); a client also syncs its
        // MSS to it (tcp_connect_init() did), a server not until later.
        self.mtup_init(now);
        if self.role == Role::Client {
            self.sync_mss();
        }
        out.push(TcpOut::Disarm);
        out.push(TcpOut::Established);
    }

    fn update_rtt(&mut self, sample: SimDuration) {
        match self.srtt {
            None => {
                self.srtt = Some(sample);
                self.rttvar = SimDuration::from_nanos(sample.as_nanos() / 2);
            }
            Some(srtt) => {
                let (s, r, m) = (
                    srtt.as_nanos() as i128,
                    self.rttvar.as_nanos() as i128,
                    sample.as_nanos() as i128,
                );
                let rttvar = (3 * r + (s - m).abs()) / 4;
                let srtt = (7 * s + m) / 8;
                self.srtt = Some(SimDuration::from_nanos(srtt as u64));
                self.rttvar = SimDuration::from_nanos(rttvar as u64);
            }
        }
        let srtt = self.srtt.unwrap_or(sample);
        let var = SimDuration::from_nanos(self.rttvar.as_nanos().saturating_mul(4)).max(RTO_MIN);
        self.rto = (srtt + var).min(RTO_MAX);
    }

    /// Handles an arriving segment.
    pub fn on_segment(&mut self, now: SimTime, seg: Seg, out: &mut Vec<TcpOut>) {
        let Seg {
            seq,
            ack,
            flags,
            mss,
            payload,
            win,
            wscale,
            ts,
        } = seg;
        if self.state == State::Closed {
            return;
        }
        if seq <= self.rcv_nxt {
            // tcp_store_ts_recent(): the peer's clock, echoed in our segments.
            self.ts_recent = ts.0;
        }
        if flags.has(TcpFlags::RST) {
            self.state = State::Closed;
            out.push(TcpOut::Disarm);
            out.push(TcpOut::Failed("Connection reset by peer"));
            return;
        }
        match self.state {
            State::SynSent => {
                if flags.has(TcpFlags::SYN) && flags.has(TcpFlags::ACK) && ack >= 1 {
                    self.peer_mss = mss.unwrap_or(536);
                    self.sync_mss();
                    self.snd_wscale = wscale.unwrap_or(0);
                    self.snd_wnd = u64::from(win);
                    self.ts_recent = ts.0;
                    self.rcv_nxt = 1;
                    self.handshake_done(now, out);
                    let ack = self.ack_segment(now);
                    out.push(ack);
                    self.push(now, out);
                }
                return;
            }
            State::SynRcvd => {
                if flags.has(TcpFlags::SYN) {
                    // The client retransmitted its SYN: our SYN-ACK was lost.
                    out.push(self.syn(TcpFlags::SYN.with(TcpFlags::ACK), now));
                    return;
                }
                if !flags.has(TcpFlags::ACK) || ack < 1 {
                    return;
                }
                self.handshake_done(now, out);
            }
            _ => {
                if flags.has(TcpFlags::SYN) {
                    // A retransmitted SYN-ACK: our ACK was lost; ACK again.
                    let ack = self.ack_segment(now);
                    out.push(ack);
                    return;
                }
            }
        }
        // Data.
        if payload > 0 {
            let end = seq + u64::from(payload);
            if seq <= self.rcv_nxt && end > self.rcv_nxt {
                self.rcv_nxt = end;
                while let Some((&s, &e)) = self.ooo.iter().next() {
                    if s > self.rcv_nxt {
                        break;
                    }
                    self.rcv_nxt = self.rcv_nxt.max(e);
                    self.ooo.remove(&s);
                }
                let held = self.ooo_bytes();
                self.rcv.on_data(now, payload, ts.1, self.rcv_nxt, held);
                out.push(TcpOut::Received(self.received()));
            } else if seq > self.rcv_nxt {
                let e = self.ooo.entry(seq).or_insert(end);
                *e = (*e).max(end);
            }
            let ack = self.ack_segment(now);
            out.push(ack);
        }
        // Acknowledgements.
        if flags.has(TcpFlags::ACK) {
            if ack >= self.snd_una {
                // tcp_ack_update_window(): windows after the SYN are scaled.
                self.snd_wnd = u64::from(win) << self.snd_wscale;
            }
            self.on_ack(now, ack, payload, out);
        }
    }

    fn ack_segment(&mut self, now: SimTime) -> TcpOut {
        TcpOut::Segment(self.seg(now, self.snd_nxt, TcpFlags::ACK, 0))
    }

    fn on_ack(&mut self, now: SimTime, ack: u64, payload: u32, out: &mut Vec<TcpOut>) {
        if ack > self.snd_una && ack <= self.snd_max {
            // Data sent before a go-back and received out of order: what
            // the ACK covers need not be sent again.
            self.snd_nxt = self.snd_nxt.max(ack);
            let mut acked = 0;
            let mut sample = None;
            while let Some(s) = self.in_flight.front() {
                if s.end > ack {
                    break;
                }
                if !s.retransmitted {
                    sample = Some(now - s.first_sent);
                }
                acked += 1;
                self.in_flight.pop_front();
            }
            self.snd_una = ack;
            if self.mtup.probe.is_some_and(|p| ack >= p.end) {
                self.probe_succeeded(out);
            }
            if !self.in_flight.iter().any(|s| s.retransmitted) {
                // No retransmitted data left outstanding
                // (`tcp_retrans_stamp_cleanup`).
                self.retrans_stamp = None;
            }
            if let Some(r) = sample {
                self.update_rtt(r);
            }
            self.retransmits = 0;
            self.dupacks = 0;
            let mss = self.mss();
            self.cc.on_ack(AckInfo {
                now,
                acked,
                prior_flight: acked + self.flight_segments(),
                rtt: sample,
                delivered: ack,
                snd_nxt: self.snd_nxt,
                mss,
            });
            if self.in_flight.is_empty() {
                self.tlp_armed = false;
                out.push(TcpOut::Disarm);
            } else {
                self.arm_xmit_timer(out);
            }
            self.push(now, out);
            if self.in_flight.is_empty() && self.snd_nxt >= self.app_end {
                out.push(TcpOut::Disarm);
            }
        } else if ack == self.snd_una && payload == 0 && !self.in_flight.is_empty() {
            self.dupacks += 1;
            if self.dupacks == 3 {
                if self.mtup.probe.is_some_and(|p| p.start == self.snd_una) {
                    // tcp_mtup_probe_failed(), then tcp_simple_retransmit():
                    // the window is not reduced.
                    let lost = self.mtup.failed(now).unwrap_or(0);
                    out.push(TcpOut::Note(format!(
                        "tcp_mtu_probing: probe of {} bytes lost; MSS now {}",
                        lost - MSS_HEADERS - TCP_TIMESTAMP_OPTION,
                        self.mss()
                    )));
                } else {
                    self.cc.on_fast_retransmit(self.flight_segments());
                }
                self.retransmit_head(now, out);
            }
        }
    }

    /// Linux `tcp_mtup_probe_success()`: the probe arrived; the MSS grows to
    /// it and cwnd shrinks in proportion.
    fn probe_succeeded(&mut self, out: &mut Vec<TcpOut>) {
        let old_mtu = mss_to_mtu(self.mss_cache);
        let Some(mtu) = self.mtup.succeeded() else {
            return;
        };
        let cwnd = u64::from(self.cc.cwnd()) * u64::from(old_mtu) / u64::from(mtu);
        self.cc.set_cwnd(cwnd as u32);
        self.sync_mss();
        out.push(TcpOut::Note(format!(
            "tcp_mtu_probing: probe of {} bytes acknowledged; MSS now {}",
            mtu - MSS_HEADERS - TCP_TIMESTAMP_OPTION,
            self.mss()
        )));
    }

    /// The path MTU towards the peer fell to `mtu` (ICMP fragmentation
    /// needed): lower the MSS and resend what was lost at the new size.
    pub fn on_pmtu(&mut self, mtu: u32, now: SimTime, out: &mut Vec<TcpOut>) {
        if mtu >= self.pmtu || self.state == State::Closed {
            return;
        }
        self.pmtu = mtu.max(MSS_HEADERS + 68);
        self.sync_mss();
        out.push(TcpOut::Note(format!(
            "path MTU {} from ICMP fragmentation needed; MSS now {}",
            self.pmtu,
            self.mss()
        )));
        if self.state == State::Established {
            self.retransmit_head(now, out);
        }
    }

    /// The retransmission timer fired.
    pub fn on_timeout(&mut self, now: SimTime, out: &mut Vec<TcpOut>) {
        match self.state {
            State::Closed => {}
            State::SynSent | State::SynRcvd => {
                let limit = if self.state == State::SynSent {
                    self.settings.syn_retries
                } else {
                    self.settings.synack_retries
                };
                if self.retransmits >= limit {
                    self.state = State::Closed;
                    out.push(TcpOut::Failed("Connection timed out"));
                    return;
                }
                self.retransmits += 1;
                let flags = if self.state == State::SynSent {
                    TcpFlags::SYN
                } else {
                    TcpFlags::SYN.with(TcpFlags::ACK)
                };
                out.push(self.syn(flags, now));
                out.push(TcpOut::Arm(
                    RTO_INIT
                        .saturating_mul(1 << self.retransmits.min(20))
                        .min(RTO_MAX),
                ));
            }
            State::Established => {
                if self.in_flight.is_empty() {
                    return;
                }
                if self.tlp_armed {
                    self.tlp_armed = false;
                    self.send_loss_probe(now, out);
                    return;
                }
                // `retransmits_timed_out()`: time since `retrans_stamp`, the
                // first retransmission (none yet: nothing has timed out).
                let elapsed = self.retrans_stamp.map_or(SimDuration::ZERO, |t| now - t);
                if elapsed >= retrans_timeout(self.settings.retries2, RTO_MIN) {
                    self.state = State::Closed;
                    out.push(TcpOut::Failed("Connection timed out"));
                    return;
                }
                if self.mtup.probe.is_some() {
                    // A probe out when the RTO fires counts as lost.
                    self.mtup.failed(now);
                }
                if self.settings.mtu_probing >= 1
                    && elapsed >= retrans_timeout(self.settings.retries1, RTO_MIN)
                {
                    self.black_hole(now);
                    out.push(TcpOut::Note(format!(
                        "tcp_mtu_probing: black hole detected after {elapsed} of retransmissions; MSS now {}",
                        self.mss()
                    )));
                }
                self.cc.on_rto(self.retransmits == 0);
                self.dupacks = 0;
                self.retransmits += 1;
                self.rto = self.rto.saturating_mul(2).min(RTO_MAX);
                self.retransmit_head(now, out);
                out.push(TcpOut::Arm(self.rto));
            }
        }
    }
}

#[cfg(test)]
mod tests;
