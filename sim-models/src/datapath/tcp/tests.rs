//! Unit tests of the TCP connection and its mechanisms.

use super::*;

/// A peer's SYN with MSS `mss`, window scale 7, the window a Linux client
/// offers.
fn syn(mss: u32) -> Seg {
    Seg {
        seq: 0,
        ack: 0,
        flags: TcpFlags::SYN,
        mss: Some(mss),
        payload: 0,
        win: 64_240,
        wscale: Some(7),
        ts: (0, 0),
    }
}

/// A pure ACK of `ack` with an unlimited window (scale 7).
fn ack_of(ack: u64) -> Seg {
    Seg {
        seq: 1,
        ack,
        flags: TcpFlags::ACK,
        mss: None,
        payload: 0,
        win: u16::MAX,
        wscale: None,
        ts: (0, 0),
    }
}

#[test]
fn give_up_times_match_ip_sysctl() {
    // Validation, docs/calibration.md, rows `tcp-rto`, `tcp-mtu-probing`
    // and `tcp-syn-retransmit`: tcp_retries2 15 -> 924.6 s; tcp_retries1 3 -> ~3 s;
    // tcp_syn_retries 6 -> 127 s from a 1 s base.
    assert_eq!(
        retrans_timeout(15, RTO_MIN),
        SimDuration::from_millis(924_600)
    );
    assert_eq!(retrans_timeout(3, RTO_MIN), SimDuration::from_secs(3));
    assert_eq!(retrans_timeout(6, RTO_INIT), SimDuration::from_secs(127));
}

#[test]
fn syn_retransmission_schedule() {
    let mut out = Vec::new();
    let mut t = SimTime::ZERO;
    let mut c = Conn::connect(TcpSettings::default(), 1500, t, &mut out);
    let mut sends = vec![0.0];
    loop {
        let arm = out.iter().rev().find_map(|o| match o {
            TcpOut::Arm(d) => Some(*d),
            _ => None,
        });
        let Some(d) = arm else { break };
        out.clear();
        t += d;
        c.on_timeout(t, &mut out);
        if out.iter().any(|o| matches!(o, TcpOut::Segment(_))) {
            sends.push(t.as_secs_f64());
        }
        if out.contains(&TcpOut::Failed("Connection timed out")) {
            sends.push(-t.as_secs_f64());
            break;
        }
    }
    // Retransmissions at 1, 3, 7, 15, 31, 63 s; gives up at 127 s.
    assert_eq!(sends, [0.0, 1.0, 3.0, 7.0, 15.0, 31.0, 63.0, -127.0]);
}

#[test]
fn mss_comes_from_the_mtu() {
    let mut out = Vec::new();
    let c = Conn::connect(TcpSettings::default(), 1500, SimTime::ZERO, &mut out);
    assert!(matches!(
        out[0],
        TcpOut::Segment(Seg {
            mss: Some(1460),
            ..
        })
    ));
    let mut out = Vec::new();
    let s = Conn::accept(
        TcpSettings::default(),
        9001,
        syn(1460),
        SimTime::ZERO,
        &mut out,
    );
    assert_eq!(s.mss(), 1448, "peer MSS 1460 less 12 bytes of timestamps");
    assert!(matches!(
        out[0],
        TcpOut::Segment(Seg {
            mss: Some(8961),
            ..
        })
    ));
    assert_eq!(c.mss(), 524, "before the SYN-ACK: RFC 9293's 536 default");
}

#[test]
fn mss_is_min_of_pmtu_peer_and_base_as_tcp_sync_mss() {
    let probing = TcpSettings {
        mtu_probing: 1,
        ..TcpSettings::default()
    };
    let mss = |pmtu, peer| {
        let mut c = Conn::accept(probing, pmtu, syn(peer), SimTime::ZERO, &mut Vec::new());
        c.black_hole(SimTime::ZERO);
        c.mss()
    };
    assert_eq!(mss_to_mtu(1024), 1076, "tcp_mtup_init's search_low");
    assert_eq!(mss(1500, 1460), 1024, "the base MSS keeps its 1024 bytes");
    assert_eq!(mss(1000, 1460), 948, "pmtu - 52");
    assert_eq!(mss(1500, 1000), 988, "peer MSS - 12");
}

#[test]
fn black_hole_detection_after_three_seconds() {
    let settings = TcpSettings {
        mtu_probing: 1,
        ..TcpSettings::default()
    };
    let mut out = Vec::new();
    let mut s = Conn::accept(settings, 9001, syn(8961), SimTime::ZERO, &mut out);
    let t0 = SimTime::ZERO + SimDuration::from_millis(10);
    s.on_segment(t0, ack_of(1), &mut out);
    assert_eq!(s.state, State::Established);
    out.clear();
    s.write(100_000, t0, &mut out);
    let mut t = t0;
    let mut detected = None;
    let mut timeouts = Vec::new();
    let (mut mss_at_detection, mut mss_now) = (0, 0);
    for _ in 0..8 {
        let d = out
            .iter()
            .rev()
            .find_map(|o| match o {
                TcpOut::Arm(d) => Some(*d),
                _ => None,
            })
            .unwrap();
        out.clear();
        t += d;
        s.on_timeout(t, &mut out);
        timeouts.push(t);
        if detected.is_none() && out.iter().any(|o| matches!(o, TcpOut::Note(_))) {
            detected = Some(timeouts.len() - 1);
            mss_at_detection = s.mss();
        }
        mss_now = s.mss();
    }
    // The first timer is the tail loss probe, 2 SRTT + 2 ms = 22 ms
    // (tcp_schedule_loss_probe); it does not stamp retrans_stamp.
    assert_eq!(timeouts[0] - t0, SimDuration::from_millis(22));
    // retransmits_timed_out(): the clock starts at the first
    // retransmission (retrans_stamp, the first RTO), and detection is at
    // the first timeout 3 s or more after it.
    let i = detected.unwrap();
    let since_first = |k: usize| (timeouts[k] - timeouts[1]).as_secs_f64();
    println!(
        "black hole detected {} s after the first send, {} s after the first retransmission",
        (timeouts[i] - t0).as_secs_f64(),
        since_first(i)
    );
    assert!(since_first(i) >= 3.0, "{}", since_first(i));
    assert!(since_first(i - 1) < 3.0, "{}", since_first(i - 1));
    // RTO 210 ms (10 ms SYN RTT + rto_min) restarted after the probe:
    // RTOs at 0.232, 0.652, 1.492, 3.172, 6.532 s; the kernel detects at
    // 6.532 s, not 3.172 s.
    assert_eq!(timeouts[i] - t0, SimDuration::from_millis(6_532));
    // Linux: search_low = tcp_mss_to_mtu(1024) = 1076, and
    // tcp_mtu_to_mss(1076) = 1076 - 40 - 12 = 1024 payload bytes
    // (measured on Linux 6.18: 1024-byte payloads after detection).
    assert_eq!(
        mss_at_detection, 1024,
        "min(pmtu - 52, peer MSS - 12, base MSS)"
    );
    // tcp_mtu_probing() runs at every later timeout too, halving
    // search_low each time: 1024 -> 512 -> 256 by the 8th timeout.
    assert_eq!(mss_now, 256);
}

#[test]
fn tail_loss_probe_resends_the_last_segment_and_restarts_the_rto() {
    let mut out = Vec::new();
    let mut s = Conn::accept(
        TcpSettings::default(),
        1500,
        syn(1460),
        SimTime::ZERO,
        &mut out,
    );
    let t0 = SimTime::ZERO + SimDuration::from_millis(20);
    s.on_segment(t0, ack_of(1), &mut out);
    out.clear();
    // One flight of 10 segments (IW10), all lost.
    s.write(10 * 1448, t0, &mut out);
    let sent: Vec<Seg> = out
        .iter()
        .filter_map(|o| match o {
            TcpOut::Segment(g) => Some(*g),
            _ => None,
        })
        .collect();
    assert_eq!(sent.len(), 10);
    // PTO = 2 SRTT (20 ms from the handshake) + TCP_TIMEOUT_MIN = 42 ms.
    assert_eq!(out.last(), Some(&TcpOut::Arm(SimDuration::from_millis(42))));
    out.clear();
    s.on_timeout(t0 + SimDuration::from_millis(42), &mut out);
    let seq_len = |o: &TcpOut| match o {
        TcpOut::Segment(g) => Some((g.seq, g.payload)),
        _ => None,
    };
    assert_eq!(
        (seq_len(&out[0]), &out[1..]),
        (
            Some((sent[9].seq, sent[9].payload)),
            &[TcpOut::Arm(SimDuration::from_millis(220))][..]
        ),
        "the last segment again, then the RTO (20 ms + rto_min) from now"
    );
    out.clear();
    s.on_timeout(t0 + SimDuration::from_millis(262), &mut out);
    assert_eq!(
        seq_len(&out[0]),
        Some((sent[0].seq, sent[0].payload)),
        "the RTO resends the head"
    );
    assert_eq!(
        out.last(),
        Some(&TcpOut::Arm(SimDuration::from_millis(440)))
    );
}

#[test]
fn transfer_over_a_lossless_loop_completes() {
    let mut out = Vec::new();
    let st = TcpSettings::default();
    let mut c = Conn::connect(st, 1500, SimTime::ZERO, &mut out);
    let mut s = None::<Conn>;
    let rtt_half = SimDuration::from_millis(5);
    let mut t = SimTime::ZERO;
    // (to_server, segment)
    let mut wire: VecDeque<(bool, TcpOut)> = out.drain(..).map(|o| (true, o)).collect();
    let mut got = 0;
    for _ in 0..100_000 {
        let Some((to_server, seg)) = wire.pop_front() else {
            break;
        };
        let TcpOut::Segment(seg) = seg else {
            continue;
        };
        t += rtt_half;
        let mut o = Vec::new();
        if to_server {
            match s.as_mut() {
                None => {
                    s = Some(Conn::accept(st, 1500, seg, t, &mut o));
                }
                Some(s) => {
                    s.on_segment(t, seg, &mut o);
                    if o.contains(&TcpOut::Established) {
                        s.write(200_000, t, &mut o);
                    }
                }
            }
        } else {
            c.on_segment(t, seg, &mut o);
            if let Some(n) = o.iter().find_map(|x| match x {
                TcpOut::Received(n) => Some(*n),
                _ => None,
            }) {
                got = n;
            }
        }
        wire.extend(o.into_iter().map(|x| (!to_server, x)));
    }
    assert_eq!(got, 200_000);
    assert!(s.unwrap().all_acked());
}

/// The segments of `out`.
fn segments(out: &[TcpOut]) -> Vec<Seg> {
    out.iter()
        .filter_map(|o| match o {
            TcpOut::Segment(g) => Some(*g),
            _ => None,
        })
        .collect()
}

#[test]
fn syn_windows_and_scale_as_linux_computes_them() {
    // Validation against validation/tcp/recordings: the client's SYN offers
    // 62,727 bytes from a 9001 MTU and 64,240 from 1500, scale 7, and its
    // first scaled window is 62,848 (491 x 128). Computed by
    // tcp_select_initial_window() and tcp_select_window(), not copied.
    let mut out = Vec::new();
    let mut c = Conn::connect(TcpSettings::default(), 9001, SimTime::ZERO, &mut out);
    let s = segments(&out)[0];
    assert_eq!((s.win, s.wscale), (62_727, Some(7)));
    let mut out = Vec::new();
    Conn::connect(TcpSettings::default(), 1500, SimTime::ZERO, &mut out);
    assert_eq!(segments(&out)[0].win, 64_240);
    let mut out = Vec::new();
    let mut synack = syn(8961);
    synack.flags = TcpFlags::SYN.with(TcpFlags::ACK);
    synack.ack = 1;
    c.on_segment(
        SimTime::ZERO + SimDuration::from_millis(20),
        synack,
        &mut out,
    );
    let ack = segments(&out)[0];
    assert_eq!(u32::from(ack.win) << 7, 62_848);
}

/// Runs a download of `bytes` from a server to a client over a lossless
/// path with `one_way` delay and no bandwidth limit; returns the client,
/// the server, the largest window the client advertised \[bytes\] and the
/// completion time.
fn lossless_download(st: TcpSettings, bytes: u64, one_way: SimDuration) -> (Conn, Conn, u64, f64) {
    let (c, s, w, done, _) = download(st, st, bytes, one_way, 1500, None);
    (c, s, w, done)
}

/// As [`lossless_download`], with both ends' settings and MTU, and a hop of
/// MTU `hole` that silently drops the server's larger packets (a black
/// hole); also returns the server's notes.
fn download(
    cst: TcpSettings,
    st: TcpSettings,
    bytes: u64,
    one_way: SimDuration,
    mtu: u32,
    hole: Option<u32>,
) -> (Conn, Conn, u64, f64, Vec<(f64, String)>) {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    let mut c = Conn::connect(cst, mtu, SimTime::ZERO, &mut out);
    let mut s: Option<Conn> = None;
    // (arrival ns, order) -> (to_server, segment)
    let mut wire = BTreeMap::new();
    let mut n = 0u64;
    let mut put = |wire: &mut BTreeMap<(u64, u64), (bool, Seg)>,
                   t: SimTime,
                   to_server: bool,
                   out: &mut Vec<TcpOut>| {
        for g in segments(out) {
            n += 1;
            wire.insert(((t + one_way).as_nanos(), n), (to_server, g));
        }
        out.clear();
    };
    put(&mut wire, SimTime::ZERO, true, &mut out);
    let mut max_win = 0;
    let mut done = 0.0;
    let ws = c.rcv.wscale();
    // The server's retransmission timer.
    let mut timer: Option<SimTime> = None;
    loop {
        let next = wire.first_key_value().map(|(k, _)| k.0);
        let fire = match (timer, next) {
            (Some(tm), Some(at)) => tm.as_nanos() < at,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let (t, to_server, g) = if fire {
            let tm = timer.take().unwrap();
            if let Some(s) = s.as_mut() {
                s.on_timeout(tm, &mut out);
            }
            (tm, true, None)
        } else {
            let ((at, _), (to_server, g)) = wire.pop_first().unwrap();
            (SimTime::from_nanos(at), to_server, Some(g))
        };
        if t.as_secs_f64() > 60.0 {
            break;
        }
        if to_server {
            match (s.as_mut(), g) {
                (_, None) => {}
                (None, Some(g)) => s = Some(Conn::accept(st, mtu, g, t, &mut out)),
                (Some(s), Some(g)) => {
                    s.on_segment(t, g, &mut out);
                    if out.contains(&TcpOut::Established) {
                        s.write(bytes, t, &mut out);
                    }
                }
            }
            for o in &out {
                match o {
                    TcpOut::Arm(d) => timer = Some(t + *d),
                    TcpOut::Disarm => timer = None,
                    _ => {}
                }
            }
            for o in &out {
                if let TcpOut::Note(n) = o {
                    notes.push((t.as_secs_f64(), n.clone()));
                }
            }
            if let Some(h) = hole {
                out.retain(|o| {
                    !matches!(o, TcpOut::Segment(g) if g.payload + MSS_HEADERS + TCP_TIMESTAMP_OPTION > h)
                });
            }
            put(&mut wire, t, false, &mut out);
        } else if let Some(g) = g {
            c.on_segment(t, g, &mut out);
            if out.contains(&TcpOut::Received(bytes)) {
                done = t.as_secs_f64();
            }
            for a in segments(&out) {
                if !a.flags.has(TcpFlags::SYN) {
                    max_win = max_win.max(u64::from(a.win) << ws);
                }
            }
            put(&mut wire, t, true, &mut out);
        }
    }
    (c, s.unwrap(), max_win, done, notes)
}

#[test]
fn receive_window_grows_to_megabytes_within_a_2_mb_download() {
    // Validation (docs/calibration.md, row `tcp-rwnd`): on Linux 6.18 the
    // window grew from 62,848 bytes to 0.8-3.5 MB within a 2 MB download on
    // a 20 ms path. Here: tcp_rcv_space_adjust() once per receiver RTT.
    let (c, s, max_win, done) = lossless_download(
        TcpSettings::default(),
        2_000_000,
        SimDuration::from_millis(10),
    );
    assert!(s.all_acked());
    println!(
        "rcvbuf {} B, largest window {max_win} B, done at {done:.3} s",
        c.rcvbuf()
    );
    assert!(max_win >= 800_000, "{max_win}");
    assert!(c.rcvbuf() <= 6_291_456);
    // With a fixed 64 KiB window this download takes 31 round trips
    // (0.64 s); autotuning lets slow start run: under 10 round trips.
    assert!(done < 0.2, "{done}");
}

#[test]
fn without_autotuning_room_the_window_stays_near_the_initial_one() {
    // tcp_rmem max = default: the buffer cannot grow; the window stays at
    // half of 131,072 (the test can fail: it would with a fixed window of
    // another size, or with growth past tcp_rmem[2]).
    let st = TcpSettings {
        rcv: RcvSettings {
            rmem: [4096, 131_072, 131_072],
            adv_win_scale: 1,
        },
        ..TcpSettings::default()
    };
    let (c, _, max_win, done) = lossless_download(st, 2_000_000, SimDuration::from_millis(10));
    assert_eq!(c.rcvbuf(), 131_072);
    assert!((62_000..=65_536).contains(&max_win), "{max_win}");
    assert!(done > 0.5, "{done}");
}

#[test]
fn ssthresh_after_a_loss_per_algorithm() {
    // tcp_reno_ssthresh(): cwnd / 2; cubictcp_recalc_ssthresh(): cwnd x
    // 717 / 1024; BBR leaves ssthresh alone and keeps what is in flight.
    let t = SimTime::ZERO;
    let grow = |algo| {
        let mut cc = congestion::Congestion::new(algo, 10, t);
        cc.set_cwnd(40);
        cc.on_fast_retransmit(40);
        (cc.ssthresh(), cc.cwnd())
    };
    assert_eq!(grow(CongestionControl::Reno), (20, 20));
    assert_eq!(grow(CongestionControl::Cubic), (28, 28));
    assert_eq!(grow(CongestionControl::Bbr), (u32::MAX, 40));
    let mut cc = congestion::Congestion::new(CongestionControl::Cubic, 10, t);
    cc.set_cwnd(40);
    cc.on_rto(true);
    assert_eq!((cc.ssthresh(), cc.cwnd()), (28, 1));
    cc.on_rto(false);
    assert_eq!(
        cc.ssthresh(),
        28,
        "a second timeout keeps the first ssthresh"
    );
}

/// Feeds one ACK per segment for `rounds` round trips of `rtt`, the window
/// always full; returns cwnd per round.
fn cwnd_per_round(
    cc: &mut congestion::Congestion,
    start: SimTime,
    rtt: SimDuration,
    rounds: u32,
) -> Vec<u32> {
    let mut t = start;
    let mut v = Vec::new();
    let mut delivered = 0;
    for _ in 0..rounds {
        let w = cc.cwnd();
        for i in 0..w {
            delivered += 1000;
            cc.on_ack(congestion::AckInfo {
                now: t + SimDuration::from_nanos(rtt.as_nanos() * u64::from(i) / u64::from(w)),
                acked: 1,
                prior_flight: cc.cwnd(),
                rtt: Some(rtt),
                delivered,
                snd_nxt: delivered + u64::from(w) * 1000,
                mss: 1000,
            });
        }
        t += rtt;
        v.push(cc.cwnd());
    }
    v
}

#[test]
fn cubic_returns_to_w_max_after_k_seconds() {
    // W_max 100, cwnd 70 after the loss: K = cbrt(30 / 0.4) = 4.2 s; the
    // window climbs fast, flattens around W_max near K, then probes beyond.
    let rtt = SimDuration::from_millis(100);
    let t0 = SimTime::ZERO + SimDuration::from_secs(1);
    let mut cc = congestion::Congestion::new(CongestionControl::Cubic, 10, SimTime::ZERO);
    cc.set_cwnd(100);
    cwnd_per_round(&mut cc, SimTime::ZERO, rtt, 1);
    cc.set_cwnd(100);
    cc.on_fast_retransmit(100);
    assert_eq!(cc.cwnd(), 70);
    let w = cwnd_per_round(&mut cc, t0, rtt, 80);
    // bictcp_update()'s curve, W(t) = W_max + C (t - K)^3, t from the
    // epoch's start plus the min RTT; the window follows it one RTT behind.
    let k = (30.0f64 / 0.4).cbrt();
    for (i, &c) in w.iter().enumerate() {
        let t = 0.1 * i as f64 + 0.1;
        let curve = 100.0 + 0.4 * (t - k).powi(3);
        assert!(
            (f64::from(c) - curve).abs() <= 1.5,
            "round {i}: cwnd {c}, curve {curve:.1}: {w:?}"
        );
    }
    // Reno would climb one segment per RTT: at 100 after 3 s, 130 at 6 s.
    assert!(w[59] < 110, "{w:?}");
}

#[test]
fn bbr_settles_near_two_bdp() {
    // A path of 1000 segments/s and 100 ms min RTT: BDP 100 segments.
    // BBR's PROBE_BW cwnd is 2 BDP + 3; what it delivers per round is
    // capped by the path, and the RTT grows with the queue.
    let mut cc = congestion::Congestion::new(CongestionControl::Bbr, 10, SimTime::ZERO);
    let mut t = SimTime::ZERO;
    let mut delivered = 0u64;
    for _ in 0..40 {
        let w = cc.cwnd();
        let round = (f64::from(w) / 1000.0).max(0.1);
        for i in 0..w {
            delivered += 1000;
            cc.on_ack(congestion::AckInfo {
                now: t + SimDuration::from_secs_f64(round * f64::from(i + 1) / f64::from(w)),
                acked: 1,
                prior_flight: w,
                rtt: Some(SimDuration::from_secs_f64(round)),
                delivered,
                snd_nxt: delivered + u64::from(w) * 1000,
                mss: 1000,
            });
        }
        t += SimDuration::from_secs_f64(round);
    }
    assert!((190..=215).contains(&cc.cwnd()), "{}", cc.cwnd());
}

/// The probe outcomes in `notes`: (payload, acknowledged).
fn probes(notes: &[(f64, String)]) -> Vec<(u32, bool)> {
    notes
        .iter()
        .filter_map(|(_, n)| {
            let rest = n.strip_prefix("tcp_mtu_probing: probe of ")?;
            let (size, rest) = rest.split_once(" bytes ")?;
            Some((size.parse().ok()?, rest.starts_with("acknowledged")))
        })
        .collect()
}

#[test]
fn mtu_probing_searches_up_to_1446_as_linux_does() {
    // Validation against validation/tcp/recordings/blackhole-probing1-cubic
    // (Linux 6.18): after detection the kernel probed 4986, 3004, 2013,
    // 1518 (lost), 1270, 1393 (acknowledged), 1455 (lost), 1423, 1438, 1446
    // (acknowledged), 1450 (lost), and stayed at 1446. The sizes come out of
    // tcp_mtu_probe()'s binary search here, not from that list.
    let st = TcpSettings {
        mtu_probing: 1,
        ..TcpSettings::default()
    };
    let (_, s, _, done, notes) = download(
        TcpSettings::default(),
        st,
        2_000_000,
        SimDuration::from_millis(10),
        9001,
        Some(1500),
    );
    for n in &notes {
        println!("{:.3} {}", n.0, n.1);
    }
    assert!(s.all_acked(), "done at {done}");
    assert_eq!(
        probes(&notes),
        [
            (4986, false),
            (3004, false),
            (2013, false),
            (1518, false),
            (1270, true),
            (1393, true),
            (1455, false),
            (1423, true),
            (1438, true),
            (1446, true),
            (1450, false),
        ]
    );
    assert_eq!(s.mss(), 1446);
}

#[test]
fn mtu_probing_2_halves_the_base_mss_at_detection() {
    // validation/tcp/recordings/probing2-cubic (Linux 6.18): with
    // tcp_mtu_probing 2 the server still sends 8949-byte segments (its MSS
    // is synced to search_low only later), detection halves: 512-byte
    // segments, then probes from 4730 up.
    let st = TcpSettings {
        mtu_probing: 2,
        ..TcpSettings::default()
    };
    let (_, s, _, _, notes) = download(
        TcpSettings::default(),
        st,
        2_000_000,
        SimDuration::from_millis(10),
        9001,
        Some(1500),
    );
    assert!(s.all_acked());
    assert!(notes[0].1.ends_with("MSS now 512"), "{notes:?}");
    assert_eq!(probes(&notes)[..2], [(4730, false), (2620, false)]);
}
