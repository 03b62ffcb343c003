#!/usr/bin/env python3
"""Runs getaddrinfo (glibc's, through Python's socket module) for each lookup
of a case, one after the other in ONE thread, and prints one JSON line per
lookup (start and end on CLOCK_MONOTONIC, outcome). A warm-up lookup of
`localhost` (from /etc/hosts) comes first and is not printed.

Usage: client.py LOOKUPS.json   with [{"name": ..., "family": "UNSPEC"|"INET"}, ...]
"""
import json
import socket
import sys
import time

FAMILIES = {"UNSPEC": socket.AF_UNSPEC, "INET": socket.AF_INET, "INET6": socket.AF_INET6}


def main():
    with open(sys.argv[1]) as f:
        lookups = json.load(f)
    # Warm-up: load the NSS modules before the clock starts (no DNS query:
    # localhost comes from the namespace's /etc/hosts).
    socket.getaddrinfo("localhost", None)
    for lk in lookups:
        t0 = time.monotonic_ns()
        try:
            res = socket.getaddrinfo(lk["name"], None, FAMILIES[lk["family"]],
                                     socket.SOCK_DGRAM)
            a = sum(1 for r in res if r[0] == socket.AF_INET)
            aaaa = sum(1 for r in res if r[0] == socket.AF_INET6)
            outcome = {"a": a, "aaaa": aaaa}
        except socket.gaierror as e:
            outcome = {"error": e.strerror}
        t1 = time.monotonic_ns()
        print(json.dumps({"name": lk["name"], "family": lk["family"],
                          "start_ns": t0, "end_ns": t1, "outcome": outcome}), flush=True)


if __name__ == "__main__":
    main()
