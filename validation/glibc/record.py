#!/usr/bin/env python3
"""Records what the real glibc resolver puts on the wire, case by case.

Needs root on Linux (network namespaces), python3 and iproute2. For each case
it builds two namespaces joined by a veth pair (server 10.53.0.1 and
10.53.0.3, client 10.53.0.2: addresses inside namespaces this script makes
and deletes), writes /etc/netns/<client>/resolv.conf (which `ip netns exec`
bind-mounts over /etc/resolv.conf), starts fakedns.py in the server namespace
(unless the case has no server: then the kernel answers with ICMP port
unreachable), runs client.py (getaddrinfo, the lookups one after the other in
one thread) in the client namespace, and writes
recordings/<case>.json: the case (resolv.conf, server script, lookups), the
glibc and kernel versions, every query the server received (name, type,
server, source port, time since the first lookup started) and every lookup's
start, duration and outcome.

Usage: sudo python3 validation/glibc/record.py [CASE ...]
"""
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "recordings")
SRV_NS, CLI_NS = "knsim-dns-srv", "knsim-dns-cli"
NS1, NS2, CLIENT = "10.53.0.1", "10.53.0.3", "10.53.0.2"
SEARCH = "search prod.svc.cluster.local svc.cluster.local cluster.local\n"

ANSWER_ALL = [{"action": "answer"}]
CLUSTER = [
    {"name": "api.example.com", "action": "answer"},
    {"name": "kube-dns.kube-system.svc.cluster.local", "action": "answer"},
    {"name": "a.b.c.d.e.example.com", "action": "answer"},
]


def lk(name, family="UNSPEC"):
    return {"name": name, "family": family}


CASES = {
    # resolv.conf(5) search and ndots: the walk over the search list.
    "search_ndots_a": {
        "resolv_conf": f"nameserver {NS1}\n{SEARCH}options ndots:5\n",
        "script": CLUSTER,
        "lookups": [lk("api.example.com", "INET"), lk("kube-dns.kube-system", "INET"),
                    lk("a.b.c.d.e.example.com", "INET"), lk("nothere.example", "INET")],
    },
    "search_ndots_unspec": {
        "resolv_conf": f"nameserver {NS1}\n{SEARCH}options ndots:5\n",
        "script": CLUSTER,
        "lookups": [lk("api.example.com"), lk("kube-dns.kube-system"),
                    lk("a.b.c.d.e.example.com"), lk("nothere.example")],
    },
    # A and AAAA in parallel (sendmmsg on one socket).
    "a_aaaa": {
        "resolv_conf": f"nameserver {NS1}\n",
        "script": [{"name": "v4only.example.com", "qtype": "AAAA", "action": "nodata"}]
        + ANSWER_ALL,
        "lookups": [lk("www.example.com"), lk("v4only.example.com")],
    },
    "single_request": {
        "resolv_conf": f"nameserver {NS1}\noptions single-request\n",
        "script": [{"name": "v4only.example.com", "qtype": "AAAA", "action": "nodata"}]
        + ANSWER_ALL,
        "lookups": [lk("www.example.com"), lk("v4only.example.com")],
    },
    "single_request_reopen": {
        "resolv_conf": f"nameserver {NS1}\noptions single-request-reopen\n",
        "script": [{"name": "v4only.example.com", "qtype": "AAAA", "action": "nodata"}]
        + ANSWER_ALL,
        "lookups": [lk("www.example.com"), lk("v4only.example.com")],
    },
    # A silent server: timeout and attempts.
    "timeout_attempts": {
        "resolv_conf": f"nameserver {NS1}\noptions timeout:1 attempts:3\n",
        "script": [{"action": "drop"}],
        "lookups": [lk("www.example.com", "INET"), lk("www.example.com")],
    },
    "timeout_two_servers": {
        "resolv_conf": f"nameserver {NS1}\nnameserver {NS2}\noptions timeout:1 attempts:2\n",
        "script": [{"action": "drop"}],
        "lookups": [lk("www.example.com", "INET")],
    },
    # SERVFAIL for everything, with and without single-request.
    "servfail": {
        "resolv_conf": f"nameserver {NS1}\noptions timeout:1\n",
        "script": [{"action": "servfail"}],
        "lookups": [lk("www.example.com"), lk("www.example.com", "INET")],
    },
    "servfail_single_request": {
        "resolv_conf": f"nameserver {NS1}\noptions timeout:1 single-request\n",
        "script": [{"action": "servfail"}],
        "lookups": [lk("www.example.com"), lk("www.example.com", "INET")],
    },
    "servfail_single_request_reopen": {
        "resolv_conf": f"nameserver {NS1}\noptions timeout:1 single-request-reopen\n",
        "script": [{"action": "servfail"}],
        "lookups": [lk("www.example.com")],
    },
    # The first AAAA query is lost (the conntrack insert race): three
    # lookups in one thread.
    "lost_aaaa_thread": {
        "resolv_conf": f"nameserver {NS1}\noptions timeout:1\n",
        "script": [{"qtype": "AAAA", "action": "drop", "count": 1}] + ANSWER_ALL,
        "lookups": [lk("www.example.com"), lk("www.example.com"), lk("www.example.com")],
    },
    # The conntrack insert race: an AAAA sent together with its A is lost,
    # one sent after the A's reply is not. Three lookups in one thread.
    "race_aaaa_thread": {
        "resolv_conf": f"nameserver {NS1}\noptions timeout:1\n",
        "script": [{"qtype": "A", "action": "answer", "delay_ms": 5},
                   {"qtype": "AAAA", "action": "drop_if_parallel"}],
        "lookups": [lk("www.example.com"), lk("www.example.com"), lk("www.example.com")],
    },
    # Nothing listens on port 53: ICMP port unreachable.
    "nothing_listening": {
        "resolv_conf": f"nameserver {NS1}\noptions timeout:1\n",
        "script": None,
        "lookups": [lk("www.example.com"), lk("www.example.com", "INET")],
    },
    # rotate over two nameservers: glibc's process-wide counter.
    "rotate": {
        "resolv_conf": f"nameserver {NS1}\nnameserver {NS2}\noptions rotate\n",
        "script": ANSWER_ALL,
        "lookups": [lk("www.example.com", "INET")] * 4,
    },
}


def sh(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True)


def teardown():
    for ns in (SRV_NS, CLI_NS):
        sh("ip", "netns", "del", ns, check=False)


def setup():
    teardown()
    sh("ip", "netns", "add", SRV_NS)
    sh("ip", "netns", "add", CLI_NS)
    sh("ip", "link", "add", "kdns-s", "netns", SRV_NS, "type", "veth",
       "peer", "name", "kdns-c", "netns", CLI_NS)
    for ns, dev, addrs in ((SRV_NS, "kdns-s", [NS1, NS2]), (CLI_NS, "kdns-c", [CLIENT])):
        for a in addrs:
            sh("ip", "-n", ns, "addr", "add", f"{a}/24", "dev", dev)
        sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")


def record(name, case):
    setup()
    os.makedirs(f"/etc/netns/{CLI_NS}", exist_ok=True)
    with open(f"/etc/netns/{CLI_NS}/resolv.conf", "w") as f:
        f.write(case["resolv_conf"])
    with open(f"/etc/netns/{CLI_NS}/hosts", "w") as f:
        f.write("127.0.0.1 localhost\n")
    tmp = tempfile.mkdtemp(prefix="knsim-glibc-")
    log = os.path.join(tmp, "queries.jsonl")
    open(log, "w").close()
    script = os.path.join(tmp, "script.json")
    with open(script, "w") as f:
        json.dump(case["script"], f)
    ready = os.path.join(tmp, "ready")
    server = subprocess.Popen(["ip", "netns", "exec", SRV_NS, sys.executable,
                                   os.path.join(HERE, "fakedns.py"), f"{NS1},{NS2}",
                               script, log, ready])
    for _ in range(200):
        if os.path.exists(ready):
            break
        time.sleep(0.01)
    lookups_file = os.path.join(tmp, "lookups.json")
    with open(lookups_file, "w") as f:
        json.dump(case["lookups"], f)
    out = sh("ip", "netns", "exec", CLI_NS, sys.executable,
             os.path.join(HERE, "client.py"), lookups_file).stdout
    time.sleep(0.2)
    server.terminate()
    server.wait()
    lookups = [json.loads(line) for line in out.splitlines() if line.strip()]
    queries = [json.loads(line) for line in open(log) if line.strip()]
    t0 = lookups[0]["start_ns"]
    ms = lambda ns: round((ns - t0) / 1e6, 3)
    rec = {
        "case": name,
        "glibc": sh("ldd", "--version").stdout.splitlines()[0],
        "kernel": platform.release(),
        "recorded_by": "validation/glibc/record.py",
        "resolv_conf": case["resolv_conf"],
        "server": "none (ICMP port unreachable)" if case["script"] is None else "fakedns.py",
        "script": case["script"],
        "lookups": [{"name": l["name"], "family": l["family"],
                     "start_ms": ms(l["start_ns"]),
                     "duration_ms": round((l["end_ns"] - l["start_ns"]) / 1e6, 3),
                     "outcome": l["outcome"]} for l in lookups],
        "queries": [{"t_ms": ms(q["t_ns"]), "name": q["name"], "qtype": q["qtype"],
                     "server": q["server"], "src_port": q["src_port"],
                     "action": q["action"]} for q in queries],
    }
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, f"{name}.json"), "w") as f:
        json.dump(rec, f, indent=1)
        f.write("\n")
    teardown()
    return rec


def main():
    if os.geteuid() != 0:
        sys.exit("record.py needs root (network namespaces)")
    names = sys.argv[1:] or list(CASES)
    try:
        for n in names:
            rec = record(n, CASES[n])
            print(n, [(l["duration_ms"], l["outcome"]) for l in rec["lookups"]],
                  len(rec["queries"]), "queries")
    finally:
        teardown()
        for f in ("resolv.conf", "hosts"):
            try:
                os.remove(f"/etc/netns/{CLI_NS}/{f}")
            except FileNotFoundError:
                pass


if __name__ == "__main__":
    main()
