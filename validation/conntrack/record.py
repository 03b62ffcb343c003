#!/usr/bin/env python3
"""Records the kernel's default conntrack table size on this machine.

The kernel sizes nf_conntrack's hash table when the module loads
(`nf_conntrack_init_start` in net/netfilter/nf_conntrack_core.c) from the
machine's usable RAM, and sets `nf_conntrack_max` from it. This script loads
the module if it is not loaded (modprobe nf_conntrack, root), and writes
recordings/<kernel release>.json: the kernel release, MemTotal (the kernel's
usable RAM, `totalram_pages`, in bytes), `nf_conntrack_buckets`,
`nf_conntrack_max`, the module's `hashsize` parameter and whether a
modprobe.d file sets it (then the figures are not the defaults and the
script refuses to record).

Usage: sudo python3 validation/conntrack/record.py
"""
import glob
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "recordings")


def read(path):
    with open(path) as f:
        return f.read().strip()


def mem_total_bytes():
    for line in read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    sys.exit("no MemTotal in /proc/meminfo")


def hashsize_set_by_hand():
    hits = []
    for f in glob.glob("/etc/modprobe.d/*.conf") + glob.glob("/lib/modprobe.d/*.conf"):
        for line in read(f).splitlines():
            if "nf_conntrack" in line and "hashsize" in line and not line.lstrip().startswith("#"):
                hits.append(f"{f}: {line.strip()}")
    cmdline = read("/proc/cmdline")
    if "nf_conntrack.hashsize" in cmdline:
        hits.append(f"/proc/cmdline: {cmdline}")
    return hits


def main():
    if not os.path.exists("/proc/sys/net/netfilter/nf_conntrack_buckets"):
        subprocess.run(["modprobe", "nf_conntrack"], check=True)
    by_hand = hashsize_set_by_hand()
    if by_hand:
        sys.exit("nf_conntrack's hashsize is set by hand, not the kernel default:\n" + "\n".join(by_hand))
    rec = {
        "kernel": platform.release(),
        "date": time.strftime("%Y-%m-%d"),
        "mem_total_bytes": mem_total_bytes(),
        "nf_conntrack_buckets": int(read("/proc/sys/net/netfilter/nf_conntrack_buckets")),
        "nf_conntrack_max": int(read("/proc/sys/net/netfilter/nf_conntrack_max")),
        "hashsize_parameter": int(read("/sys/module/nf_conntrack/parameters/hashsize")),
        "note": "nf_conntrack_max is as found: kube-proxy or an operator may have raised it "
        "since the module loaded; the buckets are fixed at load time",
    }
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, f"{rec['kernel']}.json")
    with open(path, "w") as f:
        json.dump(rec, f, indent=2)
        f.write("\n")
    print(f"wrote {path}: {rec['nf_conntrack_buckets']} buckets, max {rec['nf_conntrack_max']}")


if __name__ == "__main__":
    main()
