//! Unit tests of the TCP connection and its mechanisms.

use super::*;

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
        Some(1460),
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
        mtu_probing: 2,
        ..TcpSettings::default()
    };
    let mss =
        |pmtu, peer| Conn::accept(probing, pmtu, Some(peer), SimTime::ZERO, &mut Vec::new()).mss();
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
    let mut s = Conn::accept(settings, 9001, Some(8961), SimTime::ZERO, &mut out);
    let t0 = SimTime::ZERO + SimDuration::from_millis(10);
    s.on_segment(
        t0,
        Seg {
            seq: 1,
            ack: 1,
            flags: TcpFlags::ACK,
            mss: None,
            payload: 0,
        },
        &mut out,
    );
    assert_eq!(s.state, State::Established);
    out.clear();
    s.write(100_000, t0, &mut out);
    let mut t = t0;
    let mut detected = None;
    let mut timeouts = Vec::new();
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
        }
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
    assert_eq!(s.mss(), 1024, "min(pmtu - 52, peer MSS - 12, base MSS)");
}

#[test]
fn tail_loss_probe_resends_the_last_segment_and_restarts_the_rto() {
    let mut out = Vec::new();
    let mut s = Conn::accept(
        TcpSettings::default(),
        1500,
        Some(1460),
        SimTime::ZERO,
        &mut out,
    );
    let t0 = SimTime::ZERO + SimDuration::from_millis(20);
    let ack = Seg {
        seq: 1,
        ack: 1,
        flags: TcpFlags::ACK,
        mss: None,
        payload: 0,
    };
    s.on_segment(t0, ack, &mut out);
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
    assert_eq!(
        out,
        [
            TcpOut::Segment(sent[9]),
            TcpOut::Arm(SimDuration::from_millis(220)),
        ],
        "the last segment again, then the RTO (20 ms + rto_min) from now"
    );
    out.clear();
    s.on_timeout(t0 + SimDuration::from_millis(262), &mut out);
    assert_eq!(out[0], TcpOut::Segment(sent[0]), "the RTO resends the head");
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
                    s = Some(Conn::accept(st, 1500, seg.mss, t, &mut o));
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
