#!/usr/bin/env python3
"""SET throughput with eviction active (issue 5): maxmemory at half of what Redis needs to hold the
whole key space, so most SETs of new keys evict. Redis allkeys-lru against WarpEngine allkeys-lru
and allkeys-horizon, redis-benchmark -P 16, medians of --rounds fresh-server runs, with the
servers' CPU-seconds per million SETs.

Usage: python3 bench/evict_throughput.py [--keys 1000000] [--rounds 3] [--threads 2]
(needs target/release/warpengine and redis-server/redis-benchmark)."""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import cpu_seconds, free_port, start  # noqa: E402

# What Redis 7.0 takes per 64-byte string with a 16-byte key (bench/memory.py): 175 bytes.
REDIS_BYTES_PER_KEY = 175


def benchmark(port, keys, n):
    out = subprocess.run(["redis-benchmark", "-p", str(port), "-t", "set", "-n", str(n), "-r", str(keys),
                          "-d", "64", "-c", "50", "-P", "16", "-q"],
                         check=True, capture_output=True, text=True).stdout
    return float(re.findall(r"([\d.]+) requests per second", out.replace("\r", "\n"))[-1])


def run(kind, policy, maxmemory, a):
    port = free_port()
    if kind == "redis":
        extra = ["--maxmemory", str(maxmemory), "--maxmemory-policy", policy]
    else:
        extra = ["--threads", str(a.threads), "--set", f"maxmemory={maxmemory}",
                 "--set", f"maxmemory-policy={policy}"]
    proc, tmp = start(kind, port, extra)
    try:
        benchmark(port, a.keys, a.keys * 2)  # fill to the limit: eviction from here on
        before = cpu_seconds(proc.pid)
        ops = benchmark(port, a.keys, a.keys * 2)
        cpu = (cpu_seconds(proc.pid) - before) / (a.keys * 2) * 1e6
        info = subprocess.run(["redis-cli", "-p", str(port), "INFO", "stats"],
                              capture_output=True, text=True).stdout
        evicted = int(re.search(r"evicted_keys:(\d+)", info).group(1))
        return ops, cpu, evicted
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--keys", type=int, default=1_000_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    maxmemory = a.keys * REDIS_BYTES_PER_KEY // 2
    rows = [("Redis allkeys-lru", "redis", "allkeys-lru"),
            ("WarpEngine allkeys-lru", "warp", "allkeys-lru"),
            ("WarpEngine allkeys-horizon", "warp", "allkeys-horizon")]
    results = {name: [] for name, _, _ in rows}
    for _ in range(a.rounds):
        for name, kind, policy in rows:
            results[name].append(run(kind, policy, maxmemory, a))
    print(f"SET -r {a.keys} -d 64 -c 50 -P 16, maxmemory {maxmemory / 1e6:.1f} MB "
          f"(half of Redis's {a.keys} keys); WarpEngine --threads {a.threads}; medians of {a.rounds}")
    print(f"{'':28} {'SET/s':>10} {'CPU s/M':>8} {'evicted':>9} {'vs Redis':>9}")
    base = statistics.median(r[0] for r in results["Redis allkeys-lru"])
    for name, runs in results.items():
        ops = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        ev = statistics.median(r[2] for r in runs)
        print(f"{name:28} {ops:10.0f} {cpu:8.2f} {ev:9.0f} {ops / base:8.2f}x")


if __name__ == "__main__":
    main()
