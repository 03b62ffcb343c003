//! # Congestion control: CUBIC (the default), Reno, BBR
//!
//! ## Scope
//! The congestion window in segments, as Linux's modules set it:
//! - common (net/ipv4/tcp_cong.c, tcp_input.c): slow start `tcp_slow_start()`
//!   (+1 per segment acknowledged, up to `ssthresh`), growth only while the
//!   window is the limit (`tcp_is_cwnd_limited()`: in slow start while cwnd
//!   < 2 x what was in flight); at fast retransmit the window falls to
//!   `ssthresh` (PRR's end point, reached at once here); at an RTO,
//!   `tcp_enter_loss()`: `ssthresh` from the algorithm on the first timeout
//!   of an episode only, cwnd 1;
//! - Reno, `tcp_reno_ssthresh()` max(cwnd / 2, 2) and `tcp_cong_avoid_ai()`
//!   (+1 per cwnd segments acknowledged);
//! - CUBIC, net/ipv4/tcp_cubic.c: `beta` 717/1024, `C` 0.4 (`bic_scale` 41),
//!   fast convergence and TCP friendliness on: `cubictcp_recalc_ssthresh()`
//!   (ssthresh max(cwnd x 717 / 1024, 2); `last_max_cwnd` cwnd, or
//!   cwnd x (1024 + 717) / 2048 below the previous one), `bictcp_update()`
//!   (target origin + C (t + min RTT - K)^3, K = cbrt((W_max - cwnd) / C),
//!   one segment per `cnt` acknowledged, `cnt` at most 20 before any loss,
//!   at least 2, the Reno estimate's `cnt` when that is faster), and
//!   `cubictcp_state()` resetting everything on an RTO;
//! - BBR (v1, net/ipv4/tcp_bbr.c), simplified: the bottleneck bandwidth as
//!   the maximum of per-round delivery rates over 10 rounds, the minimum RTT
//!   over 10 s, STARTUP (cwnd gain 2/ln 2 = 2.885, leaving when the
//!   bandwidth grew less than 25% in 3 rounds), DRAIN (until what is in
//!   flight is at most one BDP; its window is one BDP, standing in for the
//!   pacing gain 1/2.885), PROBE_BW (cwnd gain 2); the cwnd target is
//!   gain x BDP + 3 segments, at least 4 (`bbr_set_cwnd()`), approached by
//!   +acked per ACK; losses do not lower the model (`bbr_ssthresh()` leaves
//!   `ssthresh` infinite).
//!
//! Limitations: no HyStart (CUBIC's slow start ends at the first loss, not
//! at a delay increase); no pacing (BBR's pacing gain cycle and rate are not
//! modelled, so BBR sends cwnd-limited bursts), no PROBE_RTT, no ACK
//! aggregation estimate; fast recovery is not PRR's gradual descent.
//!
//! ## Parameters
//! Initial window 10 (docs/calibration.md, row `tcp-init-cwnd`); CUBIC's
//! beta 717/1024 and C 0.4 and BBR's gains (docs/calibration.md, row
//! `tcp-congestion-control`).
//!
//! ## What it emits
//! The congestion window and slow-start threshold the connection obeys.
//!
//! ## Validation
//! Unit tests in `tcp/tests.rs`: Reno's and CUBIC's ssthresh after a loss,
//! CUBIC's growth back to W_max about K seconds after the loss, BBR's window
//! near 2 BDP on a fixed-rate path.

use sim_core::{SimDuration, SimTime};

/// `net.ipv4.tcp_congestion_control`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CongestionControl {
    /// tcp_cubic.c, Linux's default.
    #[default]
    Cubic,
    /// RFC 5681 (Linux's built-in `reno`).
    Reno,
    /// tcp_bbr.c (BBRv1), simplified.
    Bbr,
}

impl CongestionControl {
    /// The sysctl's value.
    pub fn name(self) -> &'static str {
        match self {
            CongestionControl::Cubic => "cubic",
            CongestionControl::Reno => "reno",
            CongestionControl::Bbr => "bbr",
        }
    }
}

/// CUBIC's `beta` (of 1024).
pub const CUBIC_BETA: u32 = 717;
/// CUBIC's `C` \[segments / s^3\].
pub const CUBIC_C: f64 = 0.4;
/// BBR's STARTUP gain, 2 / ln 2.
pub const BBR_HIGH_GAIN: f64 = 2.885;
/// BBR's PROBE_BW cwnd gain.
pub const BBR_CWND_GAIN: f64 = 2.0;
const BBR_BW_ROUNDS: usize = 10;
const BBR_MIN_RTT_WIN: SimDuration = SimDuration::from_secs(10);

#[derive(Clone, Copy, Debug, Default)]
struct Cubic {
    last_max_cwnd: u32,
    epoch_start: Option<SimTime>,
    origin: f64,
    k: f64,
    delay_min: Option<SimDuration>,
    ack_cnt: u32,
    tcp_cwnd: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BbrMode {
    Startup,
    Drain,
    ProbeBw,
}

#[derive(Clone, Copy, Debug)]
struct Bbr {
    mode: BbrMode,
    /// Delivery rate per round \[bytes/s\], the last 10 rounds.
    bw: [f64; BBR_BW_ROUNDS],
    round: usize,
    round_start: SimTime,
    round_delivered: u64,
    round_end: u64,
    min_rtt: Option<SimDuration>,
    min_rtt_stamp: SimTime,
    full_bw: f64,
    full_bw_cnt: u32,
}

/// The congestion state of one sender.
#[derive(Clone, Copy, Debug)]
pub struct Congestion {
    algo: CongestionControl,
    cwnd: u32,
    ssthresh: u32,
    ai_cnt: u32,
    cubic: Cubic,
    bbr: Bbr,
}

/// What one ACK reports to the congestion control.
#[derive(Clone, Copy, Debug)]
pub struct AckInfo {
    /// Now.
    pub now: SimTime,
    /// Segments newly acknowledged.
    pub acked: u32,
    /// Segments in flight before this ACK.
    pub prior_flight: u32,
    /// An RTT sample, if the ACK gave one.
    pub rtt: Option<SimDuration>,
    /// Bytes acknowledged so far (cumulative).
    pub delivered: u64,
    /// The next sequence number to send (ends a BBR round when acknowledged).
    pub snd_nxt: u64,
    /// The payload per segment now \[bytes\].
    pub mss: u32,
}

impl Congestion {
    /// A new sender with the initial window `init_cwnd`.
    pub fn new(algo: CongestionControl, init_cwnd: u32, now: SimTime) -> Self {
        Congestion {
            algo,
            cwnd: init_cwnd,
            ssthresh: u32::MAX,
            ai_cnt: 0,
            cubic: Cubic::default(),
            bbr: Bbr {
                mode: BbrMode::Startup,
                bw: [0.0; BBR_BW_ROUNDS],
                round: 0,
                round_start: now,
                round_delivered: 0,
                round_end: 0,
                min_rtt: None,
                min_rtt_stamp: now,
                full_bw: 0.0,
                full_bw_cnt: 0,
            },
        }
    }

    /// The congestion window \[segments\].
    pub fn cwnd(&self) -> u32 {
        self.cwnd
    }

    /// The slow-start threshold \[segments\].
    pub fn ssthresh(&self) -> u32 {
        self.ssthresh
    }

    /// Sets the window (MTU probing rescales it).
    pub fn set_cwnd(&mut self, cwnd: u32) {
        self.cwnd = cwnd.max(1);
    }

    /// The algorithm.
    pub fn algo(&self) -> CongestionControl {
        self.algo
    }

    /// The algorithm's `ssthresh()` hook.
    fn recalc_ssthresh(&mut self) -> u32 {
        match self.algo {
            CongestionControl::Reno => (self.cwnd / 2).max(2),
            CongestionControl::Cubic => {
                let c = &mut self.cubic;
                c.epoch_start = None;
                c.last_max_cwnd = if self.cwnd < c.last_max_cwnd {
                    self.cwnd * (1024 + CUBIC_BETA) / 2048
                } else {
                    self.cwnd
                };
                (self.cwnd * CUBIC_BETA / 1024).max(2)
            }
            CongestionControl::Bbr => u32::MAX,
        }
    }

    /// Three duplicate ACKs: fast retransmit (`tcp_enter_recovery()`).
    pub fn on_fast_retransmit(&mut self, flight: u32) {
        self.ssthresh = self.recalc_ssthresh();
        self.cwnd = match self.algo {
            // Packet conservation (`bbr_set_cwnd_to_recover_or_restore()`).
            CongestionControl::Bbr => flight.max(4),
            _ => self.ssthresh,
        };
        self.ai_cnt = 0;
    }

    /// A retransmission timeout (`tcp_enter_loss()`); `first` for the first
    /// timeout of this episode.
    pub fn on_rto(&mut self, first: bool) {
        if first {
            self.ssthresh = self.recalc_ssthresh();
        }
        if self.algo == CongestionControl::Cubic {
            // cubictcp_state(TCP_CA_Loss): bictcp_reset().
            self.cubic = Cubic::default();
        }
        self.cwnd = 1;
        self.ai_cnt = 0;
    }

    /// An ACK that acknowledged new data.
    pub fn on_ack(&mut self, a: AckInfo) {
        if self.algo == CongestionControl::Bbr {
            self.bbr_on_ack(a);
            return;
        }
        if let Some(r) = a.rtt {
            let d = &mut self.cubic.delay_min;
            *d = Some(d.map_or(r, |m| m.min(r)));
        }
        let limited = if self.cwnd < self.ssthresh {
            self.cwnd < 2 * a.prior_flight
        } else {
            a.prior_flight >= self.cwnd
        };
        if !limited {
            return;
        }
        let mut acked = a.acked;
        if self.cwnd < self.ssthresh {
            let c = (self.cwnd + acked).min(self.ssthresh);
            acked -= c - self.cwnd;
            self.cwnd = c;
            if acked == 0 {
                return;
            }
        }
        let cnt = match self.algo {
            CongestionControl::Reno => self.cwnd,
            _ => self.cubic_update(a.now, acked),
        };
        // tcp_cong_avoid_ai().
        if self.ai_cnt >= cnt {
            self.ai_cnt = 0;
            self.cwnd += 1;
        }
        self.ai_cnt += acked;
        if self.ai_cnt >= cnt {
            let delta = self.ai_cnt / cnt;
            self.ai_cnt -= delta * cnt;
            self.cwnd += delta;
        }
    }

    /// `bictcp_update()`: segments to acknowledge per +1.
    fn cubic_update(&mut self, now: SimTime, acked: u32) -> u32 {
        let cwnd = self.cwnd;
        let c = &mut self.cubic;
        c.ack_cnt += acked;
        let epoch = match c.epoch_start {
            Some(e) => e,
            None => {
                c.epoch_start = Some(now);
                c.ack_cnt = acked;
                c.tcp_cwnd = cwnd;
                if c.last_max_cwnd <= cwnd {
                    c.k = 0.0;
                    c.origin = f64::from(cwnd);
                } else {
                    c.k = (f64::from(c.last_max_cwnd - cwnd) / CUBIC_C).cbrt();
                    c.origin = f64::from(c.last_max_cwnd);
                }
                now
            }
        };
        let t =
            (now - epoch).as_secs_f64() + c.delay_min.unwrap_or(SimDuration::ZERO).as_secs_f64();
        let target = c.origin + CUBIC_C * (t - c.k).powi(3);
        let w = f64::from(cwnd);
        let mut cnt = if target > w {
            ((w / (target - w)) as u32).max(1)
        } else {
            100 * cwnd
        };
        if c.last_max_cwnd == 0 {
            cnt = cnt.min(20);
        }
        // TCP friendliness: the Reno-equivalent window.
        let beta_scale = 8 * (1024 + CUBIC_BETA) / 3 / (1024 - CUBIC_BETA);
        let delta = (cwnd * beta_scale) >> 3;
        if delta > 0 {
            while c.ack_cnt > delta {
                c.ack_cnt -= delta;
                c.tcp_cwnd += 1;
            }
        }
        if c.tcp_cwnd > cwnd {
            let max_cnt = cwnd / (c.tcp_cwnd - cwnd);
            cnt = cnt.min(max_cnt);
        }
        cnt.max(2)
    }

    fn bbr_on_ack(&mut self, a: AckInfo) {
        let b = &mut self.bbr;
        if let Some(r) = a.rtt {
            if b.min_rtt
                .is_none_or(|m| r <= m || a.now - b.min_rtt_stamp > BBR_MIN_RTT_WIN)
            {
                b.min_rtt = Some(r);
                b.min_rtt_stamp = a.now;
            }
        }
        // A round ends when what was next to send at its start is acknowledged.
        if a.delivered >= b.round_end {
            let dt = (a.now - b.round_start).as_secs_f64();
            if dt > 0.0 && b.round_end > 0 {
                let rate = (a.delivered - b.round_delivered) as f64 / dt;
                b.round = (b.round + 1) % BBR_BW_ROUNDS;
                b.bw[b.round] = rate;
                if b.mode == BbrMode::Startup {
                    let bw = b.bw.iter().copied().fold(0.0, f64::max);
                    if bw >= b.full_bw * 1.25 {
                        b.full_bw = bw;
                        b.full_bw_cnt = 0;
                    } else {
                        b.full_bw_cnt += 1;
                        if b.full_bw_cnt >= 3 {
                            b.mode = BbrMode::Drain;
                        }
                    }
                }
            }
            b.round_start = a.now;
            b.round_delivered = a.delivered;
            b.round_end = a.snd_nxt;
        }
        let bw = b.bw.iter().copied().fold(0.0, f64::max);
        let bdp = match b.min_rtt {
            Some(r) if bw > 0.0 => bw * r.as_secs_f64() / f64::from(a.mss.max(1)),
            _ => f64::INFINITY,
        };
        // The in-flight target for a gain: gain x BDP plus 3 segments for
        // quantization (`bbr_inflight()`, `bbr_quantization_budget()`).
        let inflight = |gain: f64| {
            if bdp.is_finite() {
                ((gain * bdp) as u32 + 3).max(4)
            } else {
                u32::MAX
            }
        };
        if b.mode == BbrMode::Drain && a.prior_flight <= inflight(1.0) {
            b.mode = BbrMode::ProbeBw;
        }
        // DRAIN paces at 1/2.885 of the bandwidth; with no pacing modelled,
        // its window is one BDP instead, so what is queued drains.
        let target = inflight(match b.mode {
            BbrMode::Startup => BBR_HIGH_GAIN,
            BbrMode::Drain => 1.0,
            BbrMode::ProbeBw => BBR_CWND_GAIN,
        });
        let full = b.mode != BbrMode::Startup;
        self.cwnd = if full {
            (self.cwnd + a.acked).min(target)
        } else if self.cwnd < target {
            self.cwnd + a.acked
        } else {
            self.cwnd
        }
        .max(4);
    }
}
