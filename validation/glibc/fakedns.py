#!/usr/bin/env python3
"""A scripted fake DNS server for the glibc recordings (UDP only).

Run inside the server namespace by record.py. It answers every query by the
first matching rule of the case's script and appends one JSON line per query
received (time on CLOCK_MONOTONIC, which every network namespace shares) to
the log file.

Rules (first match wins), each a dict:
  {"qtype": "A"|"AAAA"|"*", "name": "suffix or *", "action": ACTION,
   "count": N (optional: the rule applies to its first N matches only)}
ACTION is one of "answer", "nxdomain", "nodata", "servfail", "refused",
"drop", or "drop_if_parallel": drop the query when a query for the same
name from the same source port is still waiting for its reply (the A/AAAA
pair sent together, as the conntrack insert race loses it), answer it
otherwise. "delay_ms": N holds the reply N ms. A query no rule matches is
answered NXDOMAIN.

With the script `null` nothing listens on port 53 (the kernel answers with
ICMP port unreachable); the queries are then read off the interface with a
packet socket, so they are logged the same way.

Usage: fakedns.py ADDR[,ADDR...] SCRIPT.json LOG.jsonl READY_FILE
"""
import json
import socket
import select
import struct
import sys
import time

QTYPES = {1: "A", 28: "AAAA"}
RCODES = {"answer": 0, "nodata": 0, "nxdomain": 3, "servfail": 2, "refused": 5}


SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
# CLOCK_REALTIME minus CLOCK_MONOTONIC: kernel receive stamps are realtime.
REAL_TO_MONO = time.time_ns() - time.monotonic_ns()


def recv_stamped(s):
    """A datagram, its sender and the kernel's receive time on CLOCK_MONOTONIC
    (SO_TIMESTAMPNS): the time the packet arrived, not when Python read it."""
    data, anc, _flags, peer = s.recvmsg(65535, 1024)
    t = time.monotonic_ns()
    for level, kind, raw in anc:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            sec, nsec = struct.unpack("qq", raw[:16])
            t = sec * 1_000_000_000 + nsec - REAL_TO_MONO
    return data, peer, t


def parse_query(data):
    (qid, flags, qd, _an, _ns, _ar) = struct.unpack("!HHHHHH", data[:12])
    labels, i = [], 12
    while data[i] != 0:
        n = data[i]
        labels.append(data[i + 1:i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    qtype, _qclass = struct.unpack("!HH", data[i + 1:i + 5])
    question = data[12:i + 5]
    return qid, flags, ".".join(labels), qtype, question


def build_reply(qid, flags, qtype, question, action):
    rcode = RCODES[action]
    rd = flags & 0x0100
    # QR, AA, RD copied, RA
    rflags = 0x8000 | 0x0400 | rd | 0x0080 | rcode
    answers = b""
    an = 0
    if action == "answer":
        if qtype == 1:
            rdata = bytes([192, 0, 2, 7])
        elif qtype == 28:
            rdata = bytes.fromhex("20010db8000000000000000000000007")
        else:
            rdata = None
        if rdata is not None:
            an = 1
            answers = struct.pack("!HHHIH", 0xC00C, qtype, 1, 30, len(rdata)) + rdata
    return struct.pack("!HHHHHH", qid, rflags, 1, an, 0, 0) + question + answers


def sniff(log, ready_file):
    """Logs the UDP datagrams to port 53 seen on any interface (IPv4)."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    with open(ready_file, "w") as f:
        f.write("ready\n")
    while True:
        frame, addr, t = recv_stamped(s)
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        ip = frame[14:]
        if len(ip) < 28 or ip[9] != 17:
            continue
        ihl = (ip[0] & 15) * 4
        sport, dport = struct.unpack("!HH", ip[ihl:ihl + 4])
        if dport != 53:
            continue
        try:
            _qid, _flags, name, qtype, _q = parse_query(ip[ihl + 8:])
        except (IndexError, struct.error):
            continue
        log.write(json.dumps({"t_ns": t, "name": name, "qtype": QTYPES.get(qtype, str(qtype)),
                              "server": socket.inet_ntoa(ip[16:20]), "src_port": sport,
                              "action": "unreachable"}) + "\n")


def main():
    addrs = sys.argv[1].split(",")
    with open(sys.argv[2]) as f:
        rules = json.load(f)
    log = open(sys.argv[3], "a", buffering=1)
    if rules is None:
        sniff(log, sys.argv[4])
        return
    used = [0] * len(rules)
    socks = []
    for a in addrs:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((a, 53))
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        socks.append(s)
    with open(sys.argv[4], "w") as f:
        f.write("ready\n")
    pending = []  # (due_ns, sock, reply, peer, name)
    while True:
        now = time.monotonic_ns()
        for p in [p for p in pending if p[0] <= now]:
            p[1].sendto(p[2], p[3])
            pending.remove(p)
        wait = None
        if pending:
            wait = max(0.0, (min(p[0] for p in pending) - now) / 1e9)
        ready, _, _ = select.select(socks, [], [], wait)
        for s in ready:
            data, peer, t = recv_stamped(s)
            try:
                qid, flags, name, qtype, question = parse_query(data)
            except (IndexError, struct.error):
                continue
            tname = QTYPES.get(qtype, str(qtype))
            action = "nxdomain"
            for i, r in enumerate(rules):
                if r.get("qtype", "*") not in ("*", tname):
                    continue
                suffix = r.get("name", "*")
                if suffix != "*" and name != suffix and not name.endswith("." + suffix):
                    continue
                if "count" in r and used[i] >= r["count"]:
                    continue
                used[i] += 1
                action = r["action"]
                delay_ns = int(r.get("delay_ms", 0) * 1e6)
                break
            else:
                delay_ns = 0
            if action == "drop_if_parallel":
                parallel = any(p[3] == peer and p[4] == name for p in pending)
                action = "drop" if parallel else "answer"
            log.write(json.dumps({"t_ns": t, "name": name, "qtype": tname,
                                  "server": s.getsockname()[0],
                                  "src_port": peer[1], "action": action}) + "\n")
            if action != "drop":
                reply = build_reply(qid, flags, qtype, question, action)
                if delay_ns:
                    pending.append((t + delay_ns, s, reply, peer, name))
                else:
                    s.sendto(reply, peer)


if __name__ == "__main__":
    main()
