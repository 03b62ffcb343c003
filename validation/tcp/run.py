#!/usr/bin/env python3
"""Records what Linux's TCP does on knsim's MTU cases (issue 16).

Needs root on Linux, iproute2 (ip, tc, ss), iptables, ethtool and tcpdump;
Python 3 standard library only. Builds three network namespaces:

    tv-srv (sender, MTU 9001) --veth-- tv-rtr --veth-- tv-cli (receiver, MTU 9001)
                                       far side MTU 1500

The router's interface towards the client has MTU 1500 (the VPN of
scenarios/mtu_blackhole.yaml); both hosts have 9001 and so advertise an MSS
of 8961. Each direction has 10 ms of delay (netem) and 200 Mbit/s (netem
rate): a 20 ms round trip. Segmentation offloads are off on every veth, so
tcpdump on the sender's interface sees each segment as it is on the wire.
The ICMP "fragmentation needed" that the router sends is dropped in the
router's OUTPUT chain for the black-hole cases; the clamping case adds
`iptables -t mangle -A FORWARD ... -j TCPMSS --set-mss 1460` on the router.

The client connects, sends a 300-byte request, and the server answers with
2 MB (the `download` flow of mtu_blackhole) and closes. Recorded per run:
completion time, the data segments' sizes over time, retransmissions,
ICMP, the receive window the client advertised (scaled), and `ss -ti`
samples of the sender (mss, pmtu, cwnd, rto), with the kernel version and
every sysctl that matters.

Usage: sudo python3 validation/tcp/run.py [--runs 3] [--case NAME ...]
Writes validation/tcp/recordings/<case>.json (see README.md beside this).
"""

import argparse
import json
import os
import platform
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRV, RTR, WIRE, CLI = "tv-srv", "tv-rtr", "tv-wire", "tv-cli"
DELAY = 0.010  # one way [s]
SRV_IP, CLI_IP = "10.77.1.2", "10.77.2.2"
PORT = 5001
REQUEST = 300
RESPONSE = 2_000_000

# name: (description, options)
CASES = {
    "pmtud-cubic": ("ICMP frag-needed delivered: PMTUD lowers the MSS", {}),
    "pmtud-bbr": ("as pmtud-cubic with BBR", {"cc": "bbr"}),
    "plain1500-cubic": (
        "every MTU 1500: no PMTU event, the receive window's growth alone",
        {"mtu": 1500},
    ),
    "blackhole-cubic": (
        "ICMP filtered, tcp_mtu_probing=0: the download stalls",
        {"icmp": False, "timeout": 8.0},
    ),
    "blackhole-probing1-cubic": (
        "ICMP filtered, tcp_mtu_probing=1: detection, base MSS, upward probing",
        {"icmp": False, "probing": 1},
    ),
    "blackhole-probing1-bbr": (
        "as blackhole-probing1-cubic with BBR",
        {"icmp": False, "probing": 1, "cc": "bbr"},
    ),
    "probing2-cubic": (
        "ICMP filtered, tcp_mtu_probing=2: base MSS from the start, upward probing",
        {"icmp": False, "probing": 2},
    ),
    "clamp-cubic": (
        "ICMP filtered, the router clamps the SYN's MSS to 1460",
        {"icmp": False, "clamp": 1460},
    ),
}

SYSCTLS = [
    "net.ipv4.tcp_congestion_control",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
    "net.ipv4.tcp_window_scaling",
    "net.ipv4.tcp_adv_win_scale",
    "net.ipv4.tcp_moderate_rcvbuf",
    "net.ipv4.tcp_mtu_probing",
    "net.ipv4.tcp_base_mss",
    "net.ipv4.tcp_probe_threshold",
    "net.ipv4.tcp_probe_interval",
    "net.ipv4.tcp_mtu_probe_floor",
    "net.ipv4.tcp_retries1",
    "net.ipv4.tcp_retries2",
    "net.ipv4.tcp_early_retrans",
    "net.ipv4.tcp_sack",
    "net.ipv4.tcp_timestamps",
    "net.ipv4.tcp_slow_start_after_idle",
    "net.ipv4.tcp_no_metrics_save",
]


def sh(cmd, check=True):
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{cmd}: {r.stderr.strip()}")
    return r.stdout


def ns(name, cmd, check=True):
    return sh(f"ip netns exec {name} {cmd}", check)


def teardown():
    for n in (SRV, RTR, WIRE, CLI):
        sh(f"ip netns del {n}", check=False)


def setup(opts):
    teardown()
    mtu = opts.get("mtu", 9001)
    for n in (SRV, RTR, WIRE, CLI):
        sh(f"ip netns add {n}")
        ns(n, "ip link set lo up")
    sh(f"ip link add srv0 netns {SRV} type veth peer name rs0 netns {RTR}")
    sh(f"ip link add rc0 netns {RTR} type veth peer name wr0 netns {WIRE}")
    sh(f"ip link add cli0 netns {CLI} type veth peer name wc0 netns {WIRE}")
    for dev in ("wr0", "wc0"):
        ns(WIRE, f"ip link set {dev} mtu 9001 promisc on up")
        ns(WIRE, f"ethtool -K {dev} tx off tso off gso off gro off", check=False)
    for n, dev, addr, m in (
        (SRV, "srv0", "10.77.1.2/24", mtu),
        (RTR, "rs0", "10.77.1.1/24", mtu),
        (RTR, "rc0", "10.77.2.1/24", 1500),
        (CLI, "cli0", "10.77.2.2/24", mtu),
    ):
        ns(n, f"ip addr add {addr} dev {dev}")
        ns(n, f"ip link set {dev} mtu {m} up")
        ns(n, f"ethtool -K {dev} tx off tso off gso off gro off", check=False)
    ns(SRV, "ip route add default via 10.77.1.1")
    ns(CLI, "ip route add default via 10.77.2.1")
    ns(RTR, "sysctl -qw net.ipv4.ip_forward=1")
    # 200 Mbit/s each way (tbf on the router), 10 ms each way (netem where
    # the kernel has it, else the userspace wire; see `wire()`).
    for dev in ("rs0", "rc0"):
        ns(RTR, f"tc qdisc add dev {dev} root tbf rate 200mbit burst 32kb limit 1500kb")
    if not opts.get("icmp", True):
        ns(RTR, "iptables -A OUTPUT -p icmp --icmp-type fragmentation-needed -j DROP")
    if "clamp" in opts:
        ns(
            RTR,
            "iptables -t mangle -A FORWARD -p tcp --tcp-flags SYN,RST SYN "
            f"-j TCPMSS --set-mss {opts['clamp']}",
        )
    cc = opts.get("cc", "cubic")
    for n in (SRV, CLI):
        # The kernel's defaults, stated, so that a host's own settings do
        # not leak into the recording (a new namespace inherits some).
        # The congestion control is set on the sockets (TCP_CONGESTION): a
        # namespace may only choose from tcp_allowed_congestion_control.
        ns(n, f"sysctl -qw net.ipv4.tcp_congestion_control={cc}", check=False)
        ns(n, "sysctl -qw net.ipv4.tcp_rmem='4096 131072 6291456'")
        ns(n, "sysctl -qw net.ipv4.tcp_wmem='4096 16384 4194304'")
        ns(n, "sysctl -qw net.ipv4.tcp_no_metrics_save=1")
    ns(SRV, f"sysctl -qw net.ipv4.tcp_mtu_probing={opts.get('probing', 0)}")


def start_wire():
    """The 10 ms each way between the router and the client: netem on a
    bridge where the kernel has netem, else a userspace relay (`_wire`)."""
    ms = int(DELAY * 1000)
    ok = subprocess.run(
        f"ip netns exec {WIRE} tc qdisc add dev wr0 root netem delay {ms}ms limit 100000",
        shell=True, capture_output=True,
    ).returncode == 0
    if ok:
        ns(WIRE, f"tc qdisc add dev wc0 root netem delay {ms}ms limit 100000")
        ns(WIRE, "ip link add br0 type bridge")
        ns(WIRE, "ip link set wr0 master br0")
        ns(WIRE, "ip link set wc0 master br0")
        ns(WIRE, "ip link set br0 up")
        return None, "netem"
    p = subprocess.Popen(
        ["ip", "netns", "exec", WIRE, sys.executable, os.path.abspath(__file__), "_wire"],
        stdout=subprocess.PIPE, text=True,
    )
    assert p.stdout.readline().strip() == "ready"
    return p, "userspace relay (no netem in this kernel)"


def wire(_args):
    """In tv-wire: copy every frame between wr0 and wc0 after DELAY."""
    import heapq
    import select

    socks = {}
    for dev in ("wr0", "wc0"):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 24)
        s.bind((dev, 0))
        s.setblocking(False)
        socks[dev] = s
    other = {"wr0": socks["wc0"], "wc0": socks["wr0"]}
    by_fd = {s.fileno(): dev for dev, s in socks.items()}
    queue = []
    n = 0
    print("ready", flush=True)
    while True:
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, out, frame = heapq.heappop(queue)
            try:
                out.send(frame)
            except OSError:
                pass
        timeout = max(0.0, queue[0][0] - time.monotonic()) if queue else 1.0
        r, _, _ = select.select(list(socks.values()), [], [], timeout)
        now = time.monotonic()
        for s in r:
            dev = by_fd[s.fileno()]
            while True:
                try:
                    frame, addr = s.recvfrom(65536)
                except BlockingIOError:
                    break
                if addr[2] == socket.PACKET_OUTGOING:
                    continue
                n += 1
                heapq.heappush(queue, (now + DELAY, n, other[dev], frame))


def sysctls(n):
    out = {}
    for k in SYSCTLS:
        out[k] = " ".join(ns(n, f"sysctl -n {k}").split())
    return out


# ---- processes run inside the namespaces ------------------------------------


def serve(args):
    """In tv-srv: accept one connection, read the request, send the response,
    sample `ss -ti` every few ms until the data is acknowledged."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, args.cc.encode())
    ls.bind(("0.0.0.0", PORT))
    ls.listen(1)
    print("ready", flush=True)
    c, _ = ls.accept()
    got = 0
    while got < REQUEST:
        b = c.recv(REQUEST - got)
        if not b:
            break
        got += len(b)
    c.setblocking(False)
    payload = b"x" * RESPONSE
    sent = 0
    samples = []
    deadline = time.monotonic() + args.timeout
    last = 0.0
    while time.monotonic() < deadline:
        if sent < RESPONSE:
            try:
                sent += c.send(payload[sent : sent + 262144])
            except BlockingIOError:
                pass
        now = time.monotonic()
        if now - last >= 0.005:
            last = now
            out = subprocess.run(
                ["ss", "-tinH", "state", "established", "sport", f"= :{PORT}"],
                capture_output=True,
                text=True,
            ).stdout
            samples.append([now, " ".join(out.split())])
            done = sent >= RESPONSE and "unacked:" not in out
            if done:
                break
        time.sleep(0.001)
    c.close()
    json.dump({"samples": samples}, sys.stdout)


def fetch(args):
    """In tv-cli: connect, send the request, read the response."""
    s = socket.socket()
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, args.cc.encode())
    s.settimeout(args.timeout)
    t0 = time.monotonic()
    s.connect((SRV_IP, PORT))
    t_est = time.monotonic()
    s.sendall(b"r" * REQUEST)
    got = 0
    t_first = None
    try:
        while got < RESPONSE:
            b = s.recv(1 << 20)
            if not b:
                break
            if t_first is None:
                t_first = time.monotonic()
            got += len(b)
    except socket.timeout:
        pass
    t_end = time.monotonic()
    s.close()
    json.dump(
        {
            "t0": t0,
            "established_s": t_est - t0,
            "first_byte_s": None if t_first is None else t_first - t0,
            "end_s": t_end - t0,
            "bytes": got,
            "completed": got >= RESPONSE,
        },
        sys.stdout,
    )


# ---- pcap -------------------------------------------------------------------


def read_pcap(path):
    """(time, ip src, ip dst, proto, fields) per packet of a Linux-cooked or
    Ethernet pcap."""
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    nano = magic == 0xA1B23C4D
    linktype = struct.unpack("<I", data[20:24])[0]
    off = 24
    pkts = []
    while off + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack("<IIII", data[off : off + 16])
        off += 16
        frame = data[off : off + incl]
        off += incl
        t = sec + frac / (1e9 if nano else 1e6)
        l2 = 14 if linktype == 1 else 16
        ip = frame[l2:]
        if len(ip) < 20 or ip[0] >> 4 != 4:
            continue
        ihl = (ip[0] & 15) * 4
        total = struct.unpack("!H", ip[2:4])[0]
        proto = ip[9]
        src = socket.inet_ntoa(ip[12:16])
        dst = socket.inet_ntoa(ip[16:20])
        l4 = ip[ihl:]
        if proto == 6 and len(l4) >= 20:
            sport, dport, seq, ack, offflags, win = struct.unpack("!HHIIHH", l4[:16])
            doff = (offflags >> 12) * 4
            flags = offflags & 0x3F
            opts = l4[20:doff]
            mss = wscale = None
            i = 0
            while i < len(opts):
                k = opts[i]
                if k == 0:
                    break
                if k == 1:
                    i += 1
                    continue
                if i + 1 >= len(opts):
                    break
                ln = opts[i + 1]
                if k == 2 and ln == 4:
                    mss = struct.unpack("!H", opts[i + 2 : i + 4])[0]
                if k == 3 and ln == 3:
                    wscale = opts[i + 2]
                i += max(ln, 2)
            pkts.append(
                (t, src, dst, "tcp", {
                    "seq": seq, "ack": ack, "flags": flags, "win": win,
                    "len": total - ihl - doff, "mss": mss, "wscale": wscale,
                })
            )
        elif proto == 1 and len(l4) >= 8:
            pkts.append((t, src, dst, "icmp", {"type": l4[0], "code": l4[1],
                                                "mtu": struct.unpack("!H", l4[6:8])[0]}))
    return pkts


def summarise(pkts, t0_wall):
    """The timeline of one connection from the sender's interface."""
    syn = next(p for p in pkts if p[3] == "tcp" and p[4]["flags"] & 0x02 and not p[4]["flags"] & 0x10)
    t_syn = syn[0]
    rel = lambda t: round((t - t_syn) * 1000, 3)  # ms
    isn_srv = None
    wscale_cli = 0
    segments = []  # [t ms, rel seq, payload, retransmission]
    rwnd = []  # [t ms, advertised window bytes]
    icmp = []
    mss_opts = {}
    high = 0
    for t, src, dst, proto, f in pkts:
        if proto == "icmp":
            icmp.append([rel(t), f["type"], f["code"], f["mtu"]])
            continue
        if f["flags"] & 0x02:
            who = "server" if src == SRV_IP else "client"
            mss_opts[who] = f["mss"]
            if who == "server":
                isn_srv = f["seq"]
            else:
                wscale_cli = f["wscale"] or 0
            if who == "client":
                rwnd.append([rel(t), f["win"]])
            continue
        if src == SRV_IP and f["len"] > 0 and isn_srv is not None:
            s = (f["seq"] - isn_srv) % (1 << 32)
            end = s + f["len"]
            retrans = end <= high
            high = max(high, end)
            segments.append([rel(t), s, f["len"], retrans])
        elif src == CLI_IP:
            w = f["win"] << wscale_cli
            if not rwnd or rwnd[-1][1] != w:
                rwnd.append([rel(t), w])
    # Segment sizes over time: each change of the size of new full segments,
    # and every segment larger than the size before it (a probe).
    sizes = []
    for t, s, ln, rt in segments:
        if not sizes or sizes[-1][1] != ln:
            sizes.append([t, ln, rt])
    return {
        "syn_mss": mss_opts,
        "client_wscale": wscale_cli,
        "data_segments": len(segments),
        "retransmissions": [[t, s, ln] for t, s, ln, rt in segments if rt][:200],
        "retransmission_count": sum(1 for x in segments if x[3]),
        "segment_size_changes": sizes[:400],
        "max_payload_delivered_path": max((ln for _, _, ln, _ in segments), default=0),
        "icmp": icmp[:50],
        "rwnd": rwnd[:400],
        "last_data_ms": segments[-1][0] if segments else None,
    }


SS_KEYS = ("rto", "rtt", "mss", "pmtu", "cwnd", "ssthresh", "retrans", "unacked", "snd_wnd", "delivered")


def parse_ss(line):
    out = {}
    for cc in ("cubic", "bbr", "reno"):
        if f" {cc} " in f" {line} ":
            out["cc"] = cc
    for tok in line.split():
        if ":" in tok:
            k, v = tok.split(":", 1)
            if k in SS_KEYS:
                out[k] = v
    return out


def run_case(name, opts, timeout):
    cc = ["--cc", opts.get("cc", "cubic")]
    setup(opts)
    relay, delay_kind = start_wire()
    tmp = tempfile.mkdtemp(prefix="tcpval-")
    pcap = os.path.join(tmp, "srv.pcap")
    me = os.path.abspath(__file__)
    dump = subprocess.Popen(
        ["ip", "netns", "exec", SRV, "tcpdump", "-i", "srv0", "-s", "128", "-B", "32768", "-w", pcap,
         "tcp or icmp"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    time.sleep(0.5)
    server = subprocess.Popen(
        ["ip", "netns", "exec", SRV, sys.executable, me, "_serve", "--timeout", str(timeout)] + cc,
        stdout=subprocess.PIPE, text=True,
    )
    assert server.stdout.readline().strip() == "ready"
    client = subprocess.run(
        ["ip", "netns", "exec", CLI, sys.executable, me, "_fetch", "--timeout", str(timeout)] + cc,
        capture_output=True, text=True, check=True,
    )
    c = json.loads(client.stdout)
    s = json.loads(server.stdout.read() or '{"samples": []}')
    server.wait()
    time.sleep(0.3)
    dump.terminate()
    dropped = [ln for ln in dump.communicate()[1].splitlines() if "dropped by kernel" in ln]
    if relay is not None:
        relay.terminate()
        relay.wait()
    pkts = read_pcap(pcap)
    run = dict(c)
    t0 = run.pop("t0")
    run.update(summarise(pkts, t0))
    samples = []
    prev = None
    for t, line in s["samples"]:
        p = parse_ss(line)
        key = (p.get("mss"), p.get("pmtu"), p.get("cwnd"), p.get("rto"), p.get("retrans"))
        if p and key != prev:
            samples.append([round((t - t0) * 1000, 1), p])
            prev = key
    run["ss"] = samples[:300]
    run["delay"] = delay_kind
    run["capture"] = dropped
    run["congestion_control"] = next((p[1].get("cc") for p in samples if p[1].get("cc")), None)
    return run


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "_wire":
        wire(None)
        return
    if len(sys.argv) > 1 and sys.argv[1] in ("_serve", "_fetch"):
        ap = argparse.ArgumentParser()
        ap.add_argument("role")
        ap.add_argument("--timeout", type=float, default=30.0)
        ap.add_argument("--cc", default="cubic")
        a = ap.parse_args()
        (serve if a.role == "_serve" else fetch)(a)
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--case", action="append", choices=sorted(CASES))
    ap.add_argument("--out", default=os.path.join(HERE, "recordings"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    try:
        for name in a.case or CASES:
            desc, opts = CASES[name]
            runs = []
            for i in range(a.runs):
                runs.append(run_case(name, opts, opts.get("timeout", 30.0)))
                r = runs[-1]
                print(f"{name} run {i + 1}: completed={r['completed']} end={r['end_s']:.3f}s "
                      f"retrans={r['retransmission_count']} sizes={[x[1] for x in r['segment_size_changes']][:12]}",
                      flush=True)
            setup(opts)
            rec = {
                "case": name,
                "description": desc,
                "options": opts,
                "topology": {
                    "rtt_ms": 20, "bandwidth_mbit": 200, "sender_mtu": opts.get("mtu", 9001),
                    "receiver_mtu": opts.get("mtu", 9001), "path_mtu": 1500,
                    "request_bytes": REQUEST, "response_bytes": RESPONSE,
                },
                "kernel": platform.release(),
                "recorded": time.strftime("%Y-%m-%d"),
                "sender_sysctls": sysctls(SRV),
                "receiver_sysctls": sysctls(CLI),
                "runs": runs,
            }
            with open(os.path.join(a.out, f"{name}.json"), "w") as f:
                json.dump(rec, f, indent=1)
                f.write("\n")
    finally:
        teardown()


if __name__ == "__main__":
    main()
