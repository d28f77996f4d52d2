"""Hit ratio of eviction policies at the same memory, real Redis vs WarpEngine (issue 5).

Each run starts a fresh server with maxmemory = its empty used_memory + SHARE x the working set
(the memory Redis takes to hold every key of the workload), then replays a request stream as a
cache does: GET, and SET on a miss. The first fifth of the stream warms the cache and is not
counted. Prints a table of miss ratios and writes a PNG of the miss-ratio curves.

Usage: python3 bench/hitratio.py [--keys N] [--requests R] [--shares 0.01,0.1] [--png FILE]
(needs redis-server; the PNG needs matplotlib)."""

import argparse
import bisect
import os
import sys
import random
import shutil
import subprocess
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resp import Conn, free_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WARP = os.path.join(ROOT, "target", "release", "warpengine")
VALUE = b"v" * 200

SERVERS = [
    ("Redis allkeys-lru", "redis", "allkeys-lru"),
    ("Redis allkeys-lfu", "redis", "allkeys-lfu"),
    ("WarpEngine allkeys-lru", "warp", "allkeys-lru"),
    ("WarpEngine allkeys-lfu", "warp", "allkeys-lfu"),
    ("WarpEngine allkeys-horizon", "warp", "allkeys-horizon"),
]


def start(kind, extra):
    port = free_port()
    tmp = tempfile.mkdtemp(prefix=f"hitratio-{kind}-")
    if kind == "redis":
        cmd = ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", tmp]
    else:
        cmd = [WARP, "--port", str(port), "--dir", tmp]
    proc = subprocess.Popen(cmd + extra, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(400):
        try:
            c = Conn(port)
            if c.call("PING") == b"PONG":
                return proc, tmp, c
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def used_memory(c):
    info = c.call("INFO", "memory").decode()
    return int(next(l.split(":")[1] for l in info.split("\r\n") if l.startswith("used_memory:")))


def zipf_stream(n, alpha, count, seed, scans=False):
    weights = [1.0 / (r + 1) ** alpha for r in range(n)]
    cdf, total = [], 0.0
    for w in weights:
        total += w
        cdf.append(total)
    rng = random.Random(seed)
    ids = list(range(n))
    rng.shuffle(ids)
    scan_id = n
    out = []
    while len(out) < count:
        if scans and len(out) % (count // 10) == count // 20:
            # A batch job reading cold keys once each: a tenth of the key space.
            for _ in range(n // 10):
                out.append(scan_id)
                scan_id += 1
            continue
        out.append(ids[bisect.bisect_left(cdf, rng.random() * total)])
    return out[:count]


def replay(c, stream):
    warm = len(stream) // 5
    misses = counted = 0
    batch = 256
    for start in range(0, len(stream), batch):
        ids = stream[start:start + batch]
        c.send([[b"GET", b"key:%d" % i] for i in ids])
        replies = [c.read() for _ in ids]
        miss_ids = [i for i, r in zip(ids, replies) if r is None]
        if miss_ids:
            c.send([[b"SET", b"key:%d" % i, VALUE] for i in miss_ids])
            for _ in miss_ids:
                c.read()
        if start >= warm:
            counted += len(ids)
            misses += len(miss_ids)
    return misses / counted


def working_set(n):
    proc, tmp, c = start("redis", [])
    try:
        base = used_memory(c)
        for s in range(0, n, 1000):
            c.send([[b"SET", b"key:%d" % i, VALUE] for i in range(s, min(s + 1000, n))])
            for _ in range(s, min(s + 1000, n)):
                c.read()
        return used_memory(c) - base
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=200_000)
    ap.add_argument("--requests", type=int, default=600_000)
    ap.add_argument("--shares", default="0.01,0.03,0.1,0.3")
    ap.add_argument("--png", default=os.path.join(ROOT, "bench", "hitratio.png"))
    ap.add_argument("--only", default="", help="run only the servers whose label contains this")
    a = ap.parse_args()
    servers = [s for s in SERVERS if a.only in s[0]]
    shares = [float(x) for x in a.shares.split(",")]
    ws = working_set(a.keys)
    print(f"# bench/hitratio.py --keys {a.keys} --requests {a.requests} --shares {a.shares}: "
          f"working set {ws / 1e6:.1f} MB in Redis", flush=True)
    workloads = {
        "zipf 0.8": zipf_stream(a.keys, 0.8, a.requests, 1),
        "zipf 0.99": zipf_stream(a.keys, 0.99, a.requests, 2),
        "zipf 1.2": zipf_stream(a.keys, 1.2, a.requests, 3),
        "zipf 0.99 + scans": zipf_stream(a.keys, 0.99, a.requests, 4, scans=True),
    }
    results = {}
    for wname, stream in workloads.items():
        for share in shares:
            for label, kind, policy in servers:
                proc, tmp, c = start(kind, ["--maxmemory-policy", policy] if kind == "redis"
                                     else ["--set", f"maxmemory-policy={policy}"])
                try:
                    limit = used_memory(c) + int(ws * share)
                    c.call("CONFIG", "SET", "maxmemory", str(limit))
                    results[(wname, share, label)] = replay(c, stream)
                finally:
                    proc.terminate()
                    proc.wait()
                    shutil.rmtree(tmp, ignore_errors=True)
            row = " | ".join(f"{results[(wname, share, l)]:.4f}" for l, _, _ in servers)
            print(f"| {wname} | {share:.0%} | {row} |", flush=True)
    print()
    print(f"working set {ws / 1e6:.1f} MB in Redis")
    print("| workload | memory | " + " | ".join(l for l, _, _ in servers) + " |")
    print("|---|---:|" + "---:|" * len(servers))
    for wname in workloads:
        for share in shares:
            row = " | ".join(f"{results[(wname, share, l)]:.4f}" for l, _, _ in servers)
            print(f"| {wname} | {share:.0%} | {row} |")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no PNG")
        return
    fig, axes = plt.subplots(1, len(workloads), figsize=(5 * len(workloads), 4), sharey=False)
    if a.only:
        print("--only: no PNG (the curves compare every server)")
        return
    for ax, wname in zip(axes, workloads):
        for label, _, _ in servers:
            ax.plot([s * 100 for s in shares], [results[(wname, s, label)] for s in shares],
                    marker="o", label=label)
        ax.set_xscale("log")
        ax.set_title(wname)
        ax.set_xlabel("cache size, % of working set memory")
        ax.set_ylabel("miss ratio")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(a.png, dpi=90)
    print(f"wrote {a.png}")


if __name__ == "__main__":
    main()
