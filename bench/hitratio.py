"""Hit ratio of eviction policies at the same memory, real Redis vs WarpEngine (issue 5).

Each run starts a fresh server with maxmemory = its empty used_memory + SHARE x the working set
(the memory Redis takes to hold every key of the workload), then replays a request stream as a
cache does: GET, and SET on a miss. The first fifth of the stream warms the cache and is not
counted. Prints a table of miss ratios and writes a PNG of the miss-ratio curves.

Workloads (--workloads, comma-separated, or "matrix" for issue 22's three): Zipf 0.8, 0.99 and
1.2, Zipf 0.99 with scans of cold keys (the default four, issue 5's), and issue 22's: "shifting"
(Zipf 0.99 whose hot set moves to other keys every --shift-every requests, a sixth of the
stream by default), "scan mix 30%" (30% of requests read cold keys in order, interleaved with
Zipf 0.99), "one-hit 25%" (25% of requests ask for keys never asked for before).

Values (--values): "repeated" (200 bytes of 'v'; WarpEngine then runs with horizon-compress=no,
as those would compress to nothing) or "docs" (bench/docgen.py's JSON and HTML, mean 200
bytes). --warp-set NAME=VALUE adds a WarpEngine setting to every run.

Usage: python3 bench/hitratio.py [--keys N] [--requests R] [--shares 0.01,0.1] [--png FILE]
    [--workloads LIST|matrix] [--values repeated|docs] [--warp-set NAME=VALUE ...] [--only LABEL]
(needs redis-server; the PNG needs matplotlib). WARP_BINARY=PATH measures another WarpEngine build;
HITRATIO_DEBUG=1 prints each server's DBSIZE and, for HORIZON, HORIZON STATS after each replay."""

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
import docgen  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# WARP_BINARY: another build to measure (its figures compare with this one's).
WARP = os.environ.get("WARP_BINARY") or os.path.join(ROOT, "target", "release", "warpengine")
VALUE = b"v" * 200
# What a key's value is: "repeated" (VALUE, issue 5's runs) or "docs" (bench/docgen.py's JSON
# documents and HTML fragments, mean DOC_MEAN bytes: what a compressor meets in a real cache;
# HORIZON's compressed tier must be measured on these, never on repeated bytes).
VALUES = {"mode": "repeated"}
DOC_MEAN = 200
_docs = {}


def value_of(i):
    if VALUES["mode"] == "repeated":
        return VALUE
    v = _docs.get(i)
    if v is None:
        v = _docs[i] = docgen.value(i, DOC_MEAN)
    return v


def set_values(mode):
    """Chooses the values (--values) for every later replay and working_set."""
    assert mode in ("repeated", "docs"), mode
    VALUES["mode"] = mode

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
        if VALUES["mode"] == "repeated":
            # 200 bytes of one letter compress to a few: HORIZON's compressed tier would hold
            # them at a tenth of their size, which says nothing about real values.
            cmd += ["--set", "horizon-compress=no"]
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


def zipf_cdf(n, alpha):
    """The cumulative Zipf weights of ranks 0..n-1, and their total."""
    cdf, total = [], 0.0
    for r in range(n):
        total += 1.0 / (r + 1) ** alpha
        cdf.append(total)
    return cdf, total


def zipf_stream(n, alpha, count, seed, scans=False):
    cdf, total = zipf_cdf(n, alpha)
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


def shifting_stream(n, alpha, count, seed, every):
    """Zipf popularity whose hot set moves: every `every` requests the ranks are dealt to a
    fresh random permutation of the keys, so yesterday's hot keys become as cold as any."""
    cdf, total = zipf_cdf(n, alpha)
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        ids = list(range(n))
        rng.shuffle(ids)
        for _ in range(min(every, count - len(out))):
            out.append(ids[bisect.bisect_left(cdf, rng.random() * total)])
    return out


def mixed_stream(n, alpha, count, seed, share, kind):
    """Zipf requests with `share` of them replaced by other traffic, interleaved: "scan" reads
    cold keys in order (a cursor over a key space as large as the Zipf one, so a scanned key
    comes back only after n scan requests), "one-hit" reads keys never requested before."""
    base = zipf_stream(n, alpha, count, seed)
    rng = random.Random(seed + 1000)
    out, cursor = [], 0
    for i in base:
        if rng.random() < share:
            if kind == "scan":
                out.append(n + cursor % n)
            else:
                out.append(2 * n + cursor)
            cursor += 1
        else:
            out.append(i)
    return out


def workload(name, n, count, shift_every):
    """The request stream of a named workload (see WORKLOADS)."""
    kind, alpha, seed = WORKLOADS[name]
    if kind == "zipf":
        return zipf_stream(n, alpha, count, seed)
    if kind == "zipf+scans":
        return zipf_stream(n, alpha, count, seed, scans=True)
    if kind == "shifting":
        return shifting_stream(n, alpha, count, seed, shift_every or max(1, count // 6))
    if kind == "scan-mix":
        return mixed_stream(n, alpha, count, seed, 0.3, "scan")
    return mixed_stream(n, alpha, count, seed, 0.25, "one-hit")


# name: (kind, Zipf alpha, seed). The first four are issue 5's; the last three issue 22's matrix.
WORKLOADS = {
    "zipf 0.8": ("zipf", 0.8, 1),
    "zipf 0.99": ("zipf", 0.99, 2),
    "zipf 1.2": ("zipf", 1.2, 3),
    "zipf 0.99 + scans": ("zipf+scans", 0.99, 4),
    "shifting": ("shifting", 0.99, 5),
    "scan mix 30%": ("scan-mix", 0.99, 6),
    "one-hit 25%": ("one-hit", 0.99, 7),
}
DEFAULT_WORKLOADS = "zipf 0.8,zipf 0.99,zipf 1.2,zipf 0.99 + scans"
MATRIX = "shifting,scan mix 30%,one-hit 25%"


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
            c.send([[b"SET", b"key:%d" % i, value_of(i)] for i in miss_ids])
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
            c.send([[b"SET", b"key:%d" % i, value_of(i)] for i in range(s, min(s + 1000, n))])
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
    ap.add_argument("--workloads", default=DEFAULT_WORKLOADS,
                    help=f"comma-separated names of {list(WORKLOADS)}; 'matrix' is {MATRIX!r}")
    ap.add_argument("--values", default="repeated", choices=["repeated", "docs"],
                    help=f"200 bytes of 'v', or bench/docgen.py documents of mean {DOC_MEAN} bytes")
    ap.add_argument("--warp-set", action="append", default=[],
                    help="a WarpEngine config setting for every run, e.g. horizon-compress=no")
    ap.add_argument("--shift-every", type=int, default=0,
                    help="shifting: requests between moves of the hot set (default a sixth)")
    a = ap.parse_args()
    names = (MATRIX if a.workloads == "matrix" else a.workloads).split(",")
    set_values(a.values)
    servers = [s for s in SERVERS if a.only in s[0]]
    shares = [float(x) for x in a.shares.split(",")]
    ws = working_set(a.keys)
    print(f"# bench/hitratio.py --keys {a.keys} --requests {a.requests} --shares {a.shares} "
          f"--workloads '{a.workloads}' --values {a.values}"
          + "".join(f" --warp-set {s}" for s in a.warp_set) + f": working set {ws / 1e6:.1f} MB in Redis", flush=True)
    workloads = {w: workload(w, a.keys, a.requests, a.shift_every) for w in names}
    results = {}
    for wname, stream in workloads.items():
        for share in shares:
            for label, kind, policy in servers:
                warp_args = ["--set", f"maxmemory-policy={policy}"]
                for setting in a.warp_set:
                    warp_args += ["--set", setting]
                proc, tmp, c = start(kind, ["--maxmemory-policy", policy] if kind == "redis"
                                     else warp_args)
                try:
                    limit = used_memory(c) + int(ws * share)
                    c.call("CONFIG", "SET", "maxmemory", str(limit))
                    results[(wname, share, label)] = replay(c, stream)
                    if os.environ.get("HITRATIO_DEBUG"):
                        st = c.call("HORIZON", "STATS") if "horizon" in label else []
                        print(label, share, c.call("DBSIZE"), st, flush=True)
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
    fig, axes = plt.subplots(1, len(workloads), figsize=(5 * len(workloads), 4), sharey=False,
                             squeeze=False)
    axes = axes[0]
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
