#!/usr/bin/env python3
"""Replication lag under a SET load: how long after a write on the primary its replica has it.

A replica (redis-server, or WarpEngine with --replica warp) follows a primary (WarpEngine, then redis-server, alternately, fresh servers
each round) while redis-benchmark runs SET (-c 50 -d 64 -r 1000000, pipeline --pipeline, 1 by
default: at P=16 WarpEngine outruns the replica that shares its two cores, whose link then falls
behind until the replica output limit drops it, and lag grows without bound) against the primary. A
probe writes `SET lag:probe <n>` on the primary every 10 ms; the replica publishes a keyspace event
when it applies it (`notify-keyspace-events K$` on the replica), and the lag is the time from
sending the SET to receiving that event. Prints p50/p99 in microseconds per primary (medians over
rounds), and the probes' count.

  bench/replication_lag.py [--binary target/release/warpengine] [--rounds 3] [--probes 300]
                           [--pipeline 1] [--replica redis|warp]
"""
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import redis


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(kind, binary, port, extra=()):
    d = tempfile.mkdtemp(prefix="repl-lag-")
    if kind == "warp":
        cmd = [binary, "--port", str(port), "--dir", d, "--threads", "2"]
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
    sys.exit(f"{kind} did not start")


def measure(kind, binary, probes, pipeline, replica_kind):
    port, rport = free_port(), free_port()
    primary, d1 = start(kind, binary, port)
    replica, d2 = start(replica_kind, binary, rport, ["--replicaof", "127.0.0.1", str(port),
                                                      "--notify-keyspace-events", "K$"])
    load = None
    try:
        r = redis.Redis(port=rport)
        for _ in range(400):
            if r.info("replication").get("master_link_status") == "up":
                break
            time.sleep(0.05)
        else:
            sys.exit("the replica did not link")
        sub = r.pubsub()
        sub.subscribe("__keyspace@0__:lag:probe")
        sub.get_message(timeout=1)
        load = subprocess.Popen(["redis-benchmark", "-p", str(port), "-n", "100000000", "-c", "50",
                                 "-P", str(pipeline), "-d", "64", "-r", "1000000", "-t", "set",
                                 "-q"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
        p = redis.Redis(port=port)
        lags = []
        for n in range(probes):
            t0 = time.perf_counter()
            p.set("lag:probe", n)
            while True:
                m = sub.get_message(timeout=5)
                if m is None:
                    info = r.info("replication")
                    sys.exit(f"no keyspace event from the replica (probe {n}): {info}")
                if m["type"] == "message":
                    break
            lags.append((time.perf_counter() - t0) * 1e6)
            time.sleep(0.01)
        lags.sort()
        return lags[len(lags) // 2], lags[int(len(lags) * 0.99) - 1]
    finally:
        if load:
            load.kill()
            load.wait()
        for proc in (replica, primary):
            proc.kill()
            proc.wait()
        shutil.rmtree(d1, ignore_errors=True)
        shutil.rmtree(d2, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--binary", default="target/release/warpengine")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--probes", type=int, default=300)
    ap.add_argument("--pipeline", type=int, default=1)
    ap.add_argument("--replica", choices=["redis", "warp"], default="redis")
    a = ap.parse_args()
    if not os.path.exists(a.binary):
        sys.exit(f"no binary at {a.binary} (cargo build --release -p warpengine)")
    runs = {"warp": [], "redis": []}
    for rnd in range(a.rounds):
        for kind in runs:
            p50, p99 = measure(kind, a.binary, a.probes, a.pipeline, a.replica)
            runs[kind].append((p50, p99))
            print(f"round {rnd + 1} {kind}>{a.replica} | lag p50 {p50:.0f} us p99 {p99:.0f} us")
    for kind, v in runs.items():
        p50 = statistics.median(x[0] for x in v)
        p99 = statistics.median(x[1] for x in v)
        print(f"median {kind}>{a.replica} | lag p50 {p50:.0f} us p99 {p99:.0f} us ({a.probes} probes x {a.rounds})")


if __name__ == "__main__":
    main()
