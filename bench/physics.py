#!/usr/bin/env python3
"""The physics families' measured benefits (docs/physics.md), against plain Redis
commands on WarpEngine and on a real redis-server, side by side on this machine.

  bench/physics.py quantum     page fetches as N GETs, a pipeline, MGET, QUANTUM GET; LEARN precision
  bench/physics.py wormhole    MGET/MSET/SINTERSTORE of 4 keys, pinned and not; plain GET with and without pins
  bench/physics.py durability  SET latency per DURABILITY class under appendfsync everysec and always

Needs `cargo build --release -p warpengine -p warpengine-load`. Prints medians of --rounds runs
and the servers' CPU-seconds per million operations.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import ROOT, cpu_seconds, free_port, start  # noqa: E402

LOAD = os.path.join(ROOT, "target", "release", "physics-load")


def load(port, *args):
    out = subprocess.run([LOAD, args[0], "--port", str(port), *args[1:]],
                         check=True, capture_output=True, text=True).stdout.strip()
    return dict(re.findall(r"(\w+)=([\w.]+)", out))


class Server:
    def __init__(self, kind, extra=()):
        self.kind = kind
        self.port = free_port()
        self.proc, self.tmp = start(kind, self.port, list(extra))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run(self, *args):
        """Runs physics-load; returns its figures plus the server's CPU-seconds per million ops."""
        before = cpu_seconds(self.proc.pid)
        figures = load(self.port, *args)
        used = cpu_seconds(self.proc.pid) - before
        if "ops" in figures:
            figures["cpu_s_per_m"] = used / max(int(figures["ops"]), 1) * 1e6
        return figures


def median_rows(rounds, measure):
    """measure() -> {row: figures}; returns {row: {figure: median}} over rounds."""
    runs = [measure() for _ in range(rounds)]
    out = {}
    for row in runs[0]:
        out[row] = {k: statistics.median(float(r[row][k]) for r in runs)
                    for k in runs[0][row] if re.match(r"^[\d.]+$", str(runs[0][row][k]))}
    return out


def print_table(title, rows, base):
    print(f"\n{title}")
    print(f"{'':42} {'ops/s':>9} {'p50 µs':>7} {'p99 µs':>7} {'CPU s/M':>8} {'vs base':>8}")
    ref = rows[base]["ops_per_s"]
    for name, f in rows.items():
        print(f"{name:42} {f['ops_per_s']:9.0f} {f['p50_us']:7.0f} {f['p99_us']:7.0f} "
              f"{f.get('cpu_s_per_m', 0):8.1f} {f['ops_per_s'] / ref:7.2f}x")


def quantum(a):
    common = ["--clients", str(a.clients), "--seconds", str(a.seconds), "--pages", "10000"]

    def measure():
        rows = {}
        for kind in ["redis", "warp"]:
            extra = ["--threads", str(a.threads)] if kind == "warp" else []
            with Server(kind, extra) as s:
                s.run("page", "--mode", "seq", "--setup", "--seconds", "1", "--clients", "1")
                modes = ["seq", "pipeline", "mget"] + (["quantum"] if kind == "warp" else [])
                for mode in modes:
                    rows[f"{kind} page as {mode}"] = s.run("page", "--mode", mode, *common)
        return rows

    rows = median_rows(a.rounds, measure)
    print_table(f"QUANTUM: one page = 4 keys on any shard; {a.clients} clients, one page at a time "
                f"(ops = pages); WarpEngine --threads {a.threads}; medians of {a.rounds}",
                rows, "warp page as seq")
    print("\nQUANTUM LEARN (WINDOW 2 ms): 8 clients read pages of 4 keys in order, each read "
          "preceded by a random other key with probability `noise`, pausing `think` between pages; "
          "then QUANTUM GET of 500 pages' user keys")
    for noise, think in [("0.0", "5"), ("0.3", "5"), ("0.6", "5"), ("0.3", "0")]:
        with Server("warp", ["--threads", str(a.threads)]) as s:
            f = s.run("learn", "--noise", noise, "--think-ms", think, "--rounds", "8000",
                      "--pages", "500", "--clients", "8")
        print(f"  noise={noise} think={think} ms: precision {float(f['precision']):.3f}, "
              f"recall {float(f['recall']):.3f} ({f['partners_returned']} partners returned)")


def wormhole(a):
    common = ["--clients", str(a.clients), "--seconds", str(a.seconds), "--groups", "1000"]

    def measure():
        rows = {}
        for cmd in ["mget", "mset", "sinterstore"]:
            with Server("redis") as s:
                rows[f"redis {cmd} 4 keys"] = s.run("multikey", "--cmd", cmd, *common)
            for pinned in [False, True]:
                with Server("warp", ["--threads", str(a.threads)]) as s:
                    args = ["multikey", "--cmd", cmd, *common] + (["--pin"] if pinned else [])
                    f = s.run(*args)
                    stats = stats_of(s.port)
                    one, cross = stats["multi_key_one_shard"], stats["multi_key_cross_shard"]
                    f["one_shard_share"] = one / max(one + cross, 1)
                    rows[f"warp {cmd} 4 keys {'pinned' if pinned else 'spread'}"] = f
        return rows

    rows = median_rows(a.rounds, measure)
    print_table(f"WORMHOLE: multi-key commands on 4 keys of one group (1000 groups); "
                f"{a.clients} clients; WarpEngine --threads {a.threads}; medians of {a.rounds}",
                rows, "warp mget 4 keys spread")
    for name, f in rows.items():
        if "one_shard_share" in f:
            print(f"  {name}: {100 * f['one_shard_share']:.1f}% served by one shard")


def stats_of(port):
    out = subprocess.run(["redis-cli", "-p", str(port), "INFO", "physics"],
                         check=True, capture_output=True, text=True).stdout
    return {k: int(v) for k, v in re.findall(r"wormhole_(\w+):(\d+)", out)}


def plain_get(a):
    """GET throughput with no pins and with 10,000 pins on other keys (redis-benchmark)."""
    rows = {}
    for label, pins in [("no pins", 0), ("10000 pins elsewhere", 10000)]:
        vals = []
        for _ in range(a.rounds):
            with Server("warp", ["--threads", str(a.threads)]) as s:
                script = "".join(f"WORMHOLE PIN pin:{i} anchor:{i}\n" for i in range(pins))
                if script:
                    subprocess.run(["redis-cli", "-p", str(s.port)], input=script, text=True,
                                   check=True, capture_output=True)
                out = subprocess.run(["redis-benchmark", "-p", str(s.port), "-t", "get", "-n",
                                      "1000000", "-c", "50", "-P", "16", "-q"],
                                     check=True, capture_output=True, text=True).stdout
                vals.append(float(re.search(r"([\d.]+) requests per second", out).group(1)))
        rows[label] = statistics.median(vals)
    print("\nPlain GET (redis-benchmark -t get -n 1000000 -c 50 -P 16), medians:")
    for label, v in rows.items():
        print(f"  {label:24} {v:12.0f} req/s  {v / rows['no pins']:.3f}x")


def durability(a):
    common = ["--clients", str(a.clients), "--seconds", str(a.seconds)]

    def measure():
        rows = {}
        for fsync in ["everysec", "always"]:
            with Server("warp", ["--threads", str(a.threads), "--appendonly", "yes",
                                 "--appendfsync", fsync]) as s:
                for cls in ["default", "no", "everysec", "always"]:
                    rows[f"appendfsync {fsync}, SET DURABILITY {cls}"] = s.run(
                        "durability", "--class", cls, *common)
        return rows

    rows = median_rows(a.rounds, measure)
    print_table(f"Per-write durability: SET latency per class; {a.clients} clients; "
                f"medians of {a.rounds}", rows, "appendfsync everysec, SET DURABILITY default")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("family", choices=["quantum", "wormhole", "durability"])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    if not os.path.exists(LOAD):
        sys.exit("build first: cargo build --release -p warpengine -p warpengine-load")
    if a.family == "quantum":
        quantum(a)
    elif a.family == "wormhole":
        wormhole(a)
        plain_get(a)
    else:
        durability(a)


if __name__ == "__main__":
    main()
