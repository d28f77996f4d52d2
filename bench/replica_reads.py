#!/usr/bin/env python3
"""Reading a replica right after a write's reply: how often the write is not there yet.

A client writes `SET rr:<i%10> <i>` on the primary, and as soon as the reply is in, reads the key
on the replica (`GET`, again until it has the value). Redis writes a replica's buffer before
the clients' replies in the same event-loop turn, so the first read finds the write: clients
that read from replicas (redis-rs's and redis-py's cluster clients with read-from-replicas)
count on it. Prints, per primary (WarpEngine, then redis-server, fresh servers each round, a
redis-server replica by default), how many first reads were stale, and the time from the
write's reply to the value seen on the replica (p50/p90/p99, microseconds; medians over rounds).

  bench/replica_reads.py [--binary target/release/warpengine] [--rounds 2] [--writes 3000]
                         [--replica redis|warp]
"""
import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import redis

from resp import free_port


def start(kind, binary, port, extra=()):
    d = tempfile.mkdtemp(prefix="replica-reads-")
    if kind == "warp":
        cmd = [binary, "--port", str(port), "--dir", d, "--save", ""]
    else:
        cmd = ["redis-server", "--port", str(port), "--dir", d, "--save", "", "--appendonly", "no"]
    p = subprocess.Popen(cmd + list(extra), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    c = redis.Redis(port=port)
    for _ in range(200):
        try:
            c.ping()
            return p, d
        except redis.ConnectionError:
            time.sleep(0.05)
    sys.exit(f"{kind} did not start on port {port}")


def measure(kind, binary, writes, replica_kind):
    port, rport = free_port(), free_port()
    primary, d1 = start(kind, binary, port)
    replica, d2 = start(replica_kind, binary, rport, ["--replicaof", "127.0.0.1", str(port)])
    try:
        a, b = redis.Redis(port=port), redis.Redis(port=rport)
        for _ in range(400):
            if b.info("replication").get("master_link_status") == "up":
                break
            time.sleep(0.05)
        else:
            sys.exit("the replica's link did not come up")
        stale, seen_after = 0, []
        for i in range(writes):
            key, value = "rr:%d" % (i % 10), str(i).encode()
            a.set(key, value)
            replied = time.perf_counter()
            first = True
            while b.get(key) != value:
                stale += first
                first = False
            seen_after.append((time.perf_counter() - replied) * 1e6)
        seen_after.sort()
        at = lambda q: seen_after[min(len(seen_after) - 1, int(q * len(seen_after)))]
        return stale, at(0.5), at(0.9), at(0.99)
    finally:
        for p in (primary, replica):
            p.terminate()
            p.wait()
        shutil.rmtree(d1, ignore_errors=True)
        shutil.rmtree(d2, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/warpengine")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--writes", type=int, default=3000)
    ap.add_argument("--replica", choices=["redis", "warp"], default="redis")
    args = ap.parse_args()
    results = {"warp": [], "redis": []}
    for r in range(args.rounds):
        for kind in ("warp", "redis"):
            got = measure(kind, args.binary, args.writes, args.replica)
            results[kind].append(got)
            print("round %d %s primary: %d of %d first reads stale; seen on the replica %.0f / %.0f / "
                  "%.0f us after the reply (p50/p90/p99)" % ((r + 1, kind, got[0], args.writes) + got[1:]))
    for kind, rows in results.items():
        med = [statistics.median(col) for col in zip(*rows)]
        print("%s primary, medians: %d stale of %d; p50 %.0f p90 %.0f p99 %.0f us"
              % (kind, med[0], args.writes, med[1], med[2], med[3]))


if __name__ == "__main__":
    main()
