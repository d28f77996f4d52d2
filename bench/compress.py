"""HORIZON's compressed tier (issue 22) on realistic values: keys per megabyte, hit ratio at the
same maxmemory, and what a GET of a compressed value costs.

Values are bench/docgen.py's JSON documents and HTML fragments (--mean bytes on average), never
repeated bytes. Each server replays the same Zipf stream as bench/hitratio.py does (GET, SET on a
miss, first fifth warm-up) at maxmemory = its empty used_memory + --share of the working set
(what Redis takes to hold every key), then reports its miss ratio and DBSIZE (keys per MB of
that budget). Servers: Redis allkeys-lru and allkeys-lfu, WarpEngine allkeys-horizon with
horizon-compress no and yes.

GET cost: the keys both WarpEngine servers hold whose MEMORY USAGE is smaller in the compressing
one are the compressed ones; each server then answers GETs of exactly those keys (pipelined,
--get-rounds rounds alternating between the servers), and the server's CPU time per GET is
compared (medians): the same keys and bytes, decompressed or copied. Also the client-seen
latency of single GETs (one round trip each, median and p99). Before these GETs both servers
switch to allkeys-lru with no maxmemory: under HORIZON the hits would make the keys hot, and a
hot key is made plain again, so the GETs would measure plain values after the first two.

Usage: python3 bench/compress.py [--keys N] [--requests R] [--share 0.1] [--mean 400]
    [--get-rounds 5] (needs redis-server and target/release/warpengine)."""

import argparse
import os
import shutil
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hitratio  # noqa: E402
from compare import cpu_seconds  # noqa: E402
from hitratio import replay, start, used_memory, working_set, zipf_stream  # noqa: E402

SERVERS = [
    ("Redis allkeys-lru", "redis", ["--maxmemory-policy", "allkeys-lru"]),
    ("Redis allkeys-lfu", "redis", ["--maxmemory-policy", "allkeys-lfu"]),
    ("WarpEngine horizon, compress no", "warp",
     ["--set", "maxmemory-policy=allkeys-horizon", "--set", "horizon-compress=no"]),
    ("WarpEngine horizon, compress yes", "warp",
     ["--set", "maxmemory-policy=allkeys-horizon", "--set", "horizon-compress=yes"]),
]


def all_keys(c):
    keys, cursor = [], b"0"
    while True:
        cursor, batch = c.call("SCAN", cursor, "COUNT", "1000")
        keys += batch
        if cursor == b"0":
            return keys


def usages(c, keys):
    out = {}
    for s in range(0, len(keys), 500):
        chunk = keys[s:s + 500]
        c.send([[b"MEMORY", b"USAGE", k] for k in chunk])
        for k in chunk:
            out[k] = int(c.read())
    return out


def get_cpu(proc, c, keys, repeat):
    """Server CPU seconds per GET of `keys`, each asked `repeat` times, pipelined by 500."""
    before = cpu_seconds(proc.pid)
    for _ in range(repeat):
        for s in range(0, len(keys), 500):
            chunk = keys[s:s + 500]
            c.send([[b"GET", k] for k in chunk])
            for _ in chunk:
                c.read()
    return (cpu_seconds(proc.pid) - before) / (len(keys) * repeat)


def single_gets(c, keys):
    times = []
    for k in keys:
        t = time.perf_counter()
        c.call("GET", k)
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.99)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=200_000)
    ap.add_argument("--requests", type=int, default=600_000)
    ap.add_argument("--share", type=float, default=0.1)
    ap.add_argument("--mean", type=int, default=400)
    ap.add_argument("--alpha", type=float, default=0.99)
    ap.add_argument("--get-rounds", type=int, default=5)
    a = ap.parse_args()
    cmd = (f"python3 bench/compress.py --keys {a.keys} --requests {a.requests} --share {a.share} "
           f"--mean {a.mean} --alpha {a.alpha} --get-rounds {a.get_rounds}")
    hitratio.DOC_MEAN = a.mean
    hitratio.set_values("docs")
    stream = zipf_stream(a.keys, a.alpha, a.requests, 2)
    ws = working_set(a.keys)
    budget = int(ws * a.share)
    print(f"# {cmd}")
    print(f"working set {ws / 1e6:.1f} MB in Redis ({ws / a.keys:.0f} bytes a key); budget "
          f"{budget / 1e6:.2f} MB; docgen values of mean {a.mean} bytes; Zipf {a.alpha}")
    print()
    print("| server | miss ratio | DBSIZE | keys per MB | vs Redis allkeys-lfu |")
    print("|---|---:|---:|---:|---:|")
    kept = {}
    results = {}
    try:
        for label, kind, extra in SERVERS:
            proc, tmp, c = start(kind, extra)
            c.call("CONFIG", "SET", "maxmemory", str(used_memory(c) + budget))
            miss = replay(c, stream)
            size = int(c.call("DBSIZE"))
            results[label] = (miss, size)
            lfu = results.get("Redis allkeys-lfu", (0, size))[1]
            print(f"| {label} | {miss:.4f} | {size} | {size / (budget / 1e6):.0f} "
                  f"| {size / lfu:.2f}x |", flush=True)
            if kind == "warp":
                stats = c.call("HORIZON", "STATS")
                stats = dict(zip(stats[::2], stats[1::2]))
                print(f"|  | (used_memory {int(stats[b'used_memory']) / 1e6:.2f} MB of "
                      f"maxmemory {int(stats[b'maxmemory']) / 1e6:.2f}; "
                      f"{int(stats[b'compressed'])} strings compressed over the run) |  |  |  |",
                      flush=True)
                kept[label] = (proc, tmp, c)
            else:
                proc.terminate()
                proc.wait()
                shutil.rmtree(tmp, ignore_errors=True)
        (p_no, _, c_no), (p_yes, _, c_yes) = kept.values()
        for c in (c_no, c_yes):
            c.call("CONFIG", "SET", "maxmemory", "0")
            c.call("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")
        common = sorted(set(all_keys(c_no)) & set(all_keys(c_yes)))
        u_no, u_yes = usages(c_no, common), usages(c_yes, common)
        packed = [k for k in common if u_yes[k] < u_no[k]]
        print()
        print(f"keys both hold: {len(common)}; compressed in the compressing server: "
              f"{len(packed)} ({len(packed) / max(1, len(common)):.0%}); their MEMORY USAGE "
              f"{sum(u_yes[k] for k in packed) / max(1, sum(u_no[k] for k in packed)):.3f}x "
              f"the plain one's")
        if not packed:
            return
        repeat = max(1, 200_000 // len(packed))
        no, yes = [], []
        for _ in range(a.get_rounds):
            no.append(get_cpu(p_no, c_no, packed, repeat))
            yes.append(get_cpu(p_yes, c_yes, packed, repeat))
        sample = packed[:2000]
        lat_no, lat_yes = single_gets(c_no, sample), single_gets(c_yes, sample)
        print()
        print(f"GET of the {len(packed)} compressed keys, {repeat} times each, pipelined by 500, "
              f"{a.get_rounds} alternating rounds (server CPU per GET, median):")
        print()
        print("| server | CPU us / GET | single GET p50 us | p99 us |")
        print("|---|---:|---:|---:|")
        print(f"| plain (compress no) | {statistics.median(no) * 1e6:.2f} "
              f"| {lat_no[0] * 1e6:.1f} | {lat_no[1] * 1e6:.1f} |")
        print(f"| compressed (compress yes) | {statistics.median(yes) * 1e6:.2f} "
              f"| {lat_yes[0] * 1e6:.1f} | {lat_yes[1] * 1e6:.1f} |")
        print()
        print(f"rounds, plain: {' '.join(f'{x * 1e6:.2f}' for x in no)}; compressed: "
              f"{' '.join(f'{x * 1e6:.2f}' for x in yes)}")
    finally:
        for proc, tmp, _ in kept.values():
            proc.terminate()
            proc.wait()
            shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(f"command: {cmd}")


if __name__ == "__main__":
    main()
