//! # The receive window: window scaling and receive-buffer autotuning
//!
//! ## Scope
//! What a Linux receiver advertises, as net/ipv4/tcp_output.c and
//! tcp_input.c compute it, for an application that reads every byte as soon
//! as it arrives (so the buffer holds only out-of-order data):
//! - the SYN's window and window-scale option, `tcp_select_initial_window()`:
//!   the space `tcp_win_from_space(tcp_rmem[1])`, rounded down to a multiple
//!   of the MSS passed in (the client passes `advmss`, the server `advmss`
//!   less the 12 timestamp bytes, as `tcp_connect_init()` and
//!   `tcp_openreq_init_rwin()` do), at most 65,535; the scale
//!   `ilog2(max(space, tcp_rmem[2], rmem_max)) - 15`, 0..14 (7 for the
//!   default 6 MB `tcp_rmem[2]`); `tcp_init_buffer_space()` then sets
//!   `window_clamp` to the full space and `rcvq_space.space` to
//!   min(`rcv_ssthresh`, `rcv_wnd`, 10 `advmss`);
//! - every later window, `tcp_select_window()` / `__tcp_select_window()`:
//!   the free space, at most `rcv_ssthresh`, rounded up to the scale's
//!   granularity, never moving the window's right edge back (a smaller
//!   window than the one already offered is not advertised);
//! - `rcv_ssthresh` growth, `tcp_grow_window()`: per in-order segment of
//!   128 bytes or more, by max(2 `advmss`, 2 len), at most up to
//!   min(`window_clamp`, free space);
//! - dynamic right-sizing, `tcp_rcv_space_adjust()` (`tcp_moderate_rcvbuf`
//!   1): once per receiver RTT estimate, if the bytes read in that time
//!   (`copied`) exceed `rcvq_space.space`, `rcvwin = 2 copied + 16 advmss`,
//!   plus twice `rcvwin * (copied - space) / space` for a sender still in
//!   slow start, and `sk_rcvbuf` grows to `tcp_space_from_win(rcvwin)` (at
//!   most `tcp_rmem[2]`), `window_clamp` with it;
//! - the receiver's RTT estimate, `tcp_rcv_rtt_measure_ts()` and
//!   `tcp_rcv_rtt_update()`: from the timestamp echoed in full-size data
//!   segments (millisecond clock), once per distinct echo; a smaller sample
//!   replaces the estimate, a larger one moves it by 1/8.
//!
//! Limitations: the window-to-buffer ratio is `tcp_adv_win_scale`'s fixed
//! one (1: half the buffer is window), as kernels before 6.6 had it; 6.6 and
//! later measure it per connection (`scaling_ratio`, payload / truesize),
//! which on the recordings' path gave about 0.61 (80,512 bytes offered from
//! a 131,072-byte buffer), so the model's windows are about 20% smaller than
//! the recording kernel's at the same buffer size. No memory pressure, no
//! zero windows (the application reads at once), no window probes.
//!
//! ## Parameters
//! `tcp_rmem` 4096 131072 6291456, `tcp_adv_win_scale` 1, `rmem_max`
//! 212992 (Documentation/networking/ip-sysctl.rst; docs/calibration.md, row
//! `tcp-rwnd`).
//!
//! ## What it emits
//! The 16-bit window field of each segment and the SYN's scale.
//!
//! ## Validation
//! Unit tests in `tcp/tests.rs`: the SYN windows the recordings show
//! (62,727 from a 9001 MTU, 64,240 from 1500, scale 7), the first scaled
//! window (62,848), and growth to megabytes within a 2 MB transfer.

use sim_core::{SimDuration, SimTime};

/// `net.core.rmem_max` default.
pub const RMEM_MAX: u32 = 212_992;
/// `TCP_MAX_WSCALE`.
pub const MAX_WSCALE: u8 = 14;

/// Receive-side sysctls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RcvSettings {
    /// `net.ipv4.tcp_rmem`: min, default, max \[bytes\].
    pub rmem: [u32; 3],
    /// `net.ipv4.tcp_adv_win_scale`.
    pub adv_win_scale: i8,
}

impl Default for RcvSettings {
    fn default() -> Self {
        RcvSettings {
            rmem: [4096, 131_072, 6_291_456],
            adv_win_scale: 1,
        }
    }
}

impl RcvSettings {
    /// `tcp_win_from_space()`: the window a buffer of `space` bytes offers.
    pub fn win_from_space(&self, space: u32) -> u32 {
        let s = self.adv_win_scale;
        if s <= 0 {
            space >> (-s).min(31)
        } else {
            space - (space >> s.min(31))
        }
    }

    /// `tcp_space_from_win()`: the buffer a window of `win` bytes needs.
    pub fn space_from_win(&self, win: u64) -> u64 {
        let s = self.adv_win_scale;
        if s <= 0 {
            win << (-s).min(31)
        } else {
            let s = s.min(31) as u32;
            (win << s) / ((1u64 << s) - 1)
        }
    }
}

/// One end's receive window state.
#[derive(Clone, Copy, Debug)]
pub struct RcvWindow {
    set: RcvSettings,
    advmss: u32,
    /// `sk_rcvbuf`.
    rcvbuf: u32,
    rcv_ssthresh: u32,
    window_clamp: u32,
    /// Our window scale (sent in the SYN).
    wscale: u8,
    /// The window last advertised, and the `rcv_nxt` it was advertised at.
    rcv_wnd: u32,
    rcv_wup: u64,
    /// `rcvq_space`: bytes per RTT last measured, from where, since when.
    space: u32,
    space_seq: u64,
    space_time: SimTime,
    /// `rcv_rtt_est` and the echo it was last taken from.
    rtt_est: Option<SimDuration>,
    last_tsecr: Option<u32>,
}

impl RcvWindow {
    /// `tcp_select_initial_window()` for a SYN or SYN-ACK whose MSS for
    /// rounding is `mss`; `advmss` is the MSS we advertise.
    pub fn new(set: RcvSettings, advmss: u32, mss: u32) -> Self {
        let rcvbuf = set.rmem[1];
        let mut space = set.win_from_space(rcvbuf);
        if space > mss {
            space -= space % mss;
        }
        let rcv_wnd = space.min(u32::from(u16::MAX));
        let big = space.max(set.rmem[2]).max(RMEM_MAX);
        let wscale = (big.ilog2() as i32 - 15).clamp(0, i32::from(MAX_WSCALE)) as u8;
        RcvWindow {
            set,
            advmss,
            rcvbuf,
            rcv_ssthresh: rcv_wnd,
            window_clamp: u32::from(u16::MAX) << wscale,
            wscale,
            rcv_wnd,
            rcv_wup: 0,
            space: 0,
            space_seq: 0,
            space_time: SimTime::ZERO,
            rtt_est: None,
            last_tsecr: None,
        }
    }

    /// Our window scale (the SYN's option).
    pub fn wscale(&self) -> u8 {
        self.wscale
    }

    /// The SYN's window field (never scaled).
    pub fn syn_window(&self) -> u16 {
        self.rcv_wnd.min(u32::from(u16::MAX)) as u16
    }

    /// The receive buffer now (`sk_rcvbuf`) \[bytes\].
    pub fn rcvbuf(&self) -> u32 {
        self.rcvbuf
    }

    /// `tcp_init_buffer_space()` at the end of the handshake; `rcv_nxt` is
    /// the first byte expected.
    pub fn established(&mut self, rcv_nxt: u64, now: SimTime) {
        let full = self.set.win_from_space(self.rcvbuf);
        self.window_clamp = self.window_clamp.min(full);
        self.rcv_ssthresh = self.rcv_ssthresh.min(self.window_clamp);
        self.space = self
            .rcv_ssthresh
            .min(self.rcv_wnd)
            .min(super::INIT_CWND * self.advmss);
        self.space_seq = rcv_nxt;
        self.space_time = now;
        self.rcv_wup = rcv_nxt;
    }

    /// Free window space with `held` bytes of out-of-order data queued.
    fn free_space(&self, held: u64) -> u32 {
        let used = self.set.space_from_win(held).min(u64::from(self.rcvbuf)) as u32;
        self.set.win_from_space(self.rcvbuf - used)
    }

    /// An in-order data segment of `len` bytes arrived, carrying the echo
    /// `tsecr` (ms); `rcv_nxt` after it, `held` out-of-order bytes still
    /// queued. The application reads everything in order at once.
    pub fn on_data(&mut self, now: SimTime, len: u32, tsecr: u32, rcv_nxt: u64, held: u64) {
        // tcp_rcv_rtt_measure_ts(): full-size segments, one sample per echo.
        if self.last_tsecr != Some(tsecr) {
            self.last_tsecr = Some(tsecr);
            if len >= self.advmss.min(536) {
                let now_ms = ts_ms(now);
                let delta = now_ms.wrapping_sub(tsecr);
                if delta < 1 << 30 {
                    let sample = SimDuration::from_millis(u64::from(delta.max(1)));
                    self.rtt_est = Some(match self.rtt_est {
                        Some(old) if sample >= old => {
                            SimDuration::from_nanos(old.as_nanos() - old.as_nanos() / 8)
                                + SimDuration::from_nanos(sample.as_nanos() / 8)
                        }
                        _ => sample,
                    });
                }
            }
        }
        // tcp_grow_window().
        if len >= 128 {
            let room = i64::from(self.window_clamp.min(self.free_space(held)))
                - i64::from(self.rcv_ssthresh);
            if room > 0 {
                let incr = (2 * self.advmss).max(2 * len);
                self.rcv_ssthresh += (room as u32).min(incr);
            }
        }
        // tcp_rcv_space_adjust(), as the read returns.
        let Some(rtt) = self.rtt_est else { return };
        if now - self.space_time < rtt {
            return;
        }
        let copied = rcv_nxt - self.space_seq;
        if copied > u64::from(self.space) {
            let space = u64::from(self.space.max(1));
            let mut rcvwin = (copied << 1) + 16 * u64::from(self.advmss);
            let grow = rcvwin * (copied - space) / space;
            rcvwin += grow << 1;
            let rcvbuf = self
                .set
                .space_from_win(rcvwin)
                .min(u64::from(self.set.rmem[2])) as u32;
            if rcvbuf > self.rcvbuf {
                self.rcvbuf = rcvbuf;
                self.window_clamp = self.set.win_from_space(rcvbuf);
            }
            self.space = copied.min(u64::from(u32::MAX)) as u32;
        }
        self.space_seq = rcv_nxt;
        self.space_time = now;
    }

    /// `tcp_select_window()`: the window field for a segment sent now, with
    /// `rcv_nxt` expected next and `held` bytes out of order.
    pub fn select(&mut self, rcv_nxt: u64, held: u64) -> u16 {
        let cur = (self.rcv_wup + u64::from(self.rcv_wnd)).saturating_sub(rcv_nxt);
        let full = self.window_clamp.min(self.set.win_from_space(self.rcvbuf));
        let free = self.free_space(held).min(full).min(self.rcv_ssthresh);
        let unit = 1u64 << self.wscale;
        let mut win = u64::from(free).div_ceil(unit) * unit;
        if win < cur {
            win = cur.div_ceil(unit) * unit;
        }
        let win = win.min(u64::from(u16::MAX) << self.wscale);
        self.rcv_wnd = win as u32;
        self.rcv_wup = rcv_nxt;
        (win >> self.wscale) as u16
    }
}

/// The TCP timestamp clock (`tcp_time_stamp_ts`, 1 ms).
pub fn ts_ms(t: SimTime) -> u32 {
    (t.since_start().as_nanos() / 1_000_000) as u32
}
