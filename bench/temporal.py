"""Trending top-k with exponential decay: WarpEngine's TEMPORAL against what a client does with plain
sorted-set commands (docs/physics.md, TEMPORAL).

One stream of updates (a member and +1, Zipf-distributed over MEMBERS members) with simulated event
times spanning many half-lives, and a top-10 query every QUERY_EVERY updates, is applied as:

- temporal:  TEMPORAL INCR key member 1 HALFLIFE h AT t; TEMPORAL TOP key 10 WITHSCORES.
- forward:   forward decay: ZINCRBY key 2^((t - t0)/h) member; when the factor passes 2^RESCALE_AT,
             ZUNIONSTORE key 1 key WEIGHTS 2^-((t - t0)/h) rescales the whole set and t0 = t.
             The client must know t0 (here: it holds it; several clients would have to share it).
- naive:     ZINCRBY key 1 member, plus a full rescale (ZUNIONSTORE ... WEIGHTS 2^(-1s/h)) every
             simulated second: the decay is applied in steps.

Every variant is pipelined in batches of BATCH commands, so the figures are server work, not
network waits. Round trips are what an unpipelined client would pay: commands sent per update and
per query. Server CPU is utime + stime of the server process (/proc/PID/stat) across the run,
scaled to a million updates. Each run starts a fresh server; the median of --runs runs is printed.
The top-10 of each variant at the end is checked against an exact computation in Python.

Usage: python3 bench/temporal.py [--updates N] [--runs R] [--only METHOD] (needs redis-server and
target/release/warpengine)."""

import argparse
import bisect
import math
import os
import sys
import random
import shutil
import statistics
import subprocess
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resp import Conn, free_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WARP = os.path.join(ROOT, "target", "release", "warpengine")
MEMBERS = 5000
HALFLIFE_S = 60
SIM_SPAN_S = 3600  # simulated seconds the stream spans: 60 half-lives
QUERY_EVERY = 1000
BATCH = 200
RESCALE_AT = 32  # forward decay rescales when the factor reaches 2^32
T_BASE_MS = 1_700_000_000_000
KEY = b"trending"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def start(kind, port, workdir):
    if kind == "redis":
        cmd = ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
               "--dir", workdir]
    else:
        cmd = [WARP, "--port", str(port), "--threads", "1"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            c = Conn(port, raise_errors=True)
            c.call(b"PING")
            return p, c
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise RuntimeError("%s did not start" % kind)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # Fields 14 and 15 (utime, stime), counted from after the command name.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def stream(n, seed=7):
    """(member, sim time ms) per update: Zipf(1.0) over MEMBERS, times evenly over SIM_SPAN_S."""
    rng = random.Random(seed)
    weights = [1.0 / (i + 1) for i in range(MEMBERS)]
    cum = []
    total = 0.0
    for w in weights:
        total += w
        cum.append(total)
    out = []
    for i in range(n):
        m = bisect.bisect_left(cum, rng.random() * total)
        t = T_BASE_MS + i * SIM_SPAN_S * 1000 // n
        out.append((b"m%d" % m, t))
    return out


def exact_top(updates, k=10):
    """Scores at the last event time, in forward-decay form relative to the first event."""
    t0 = updates[0][1]
    scores = {}
    for m, t in updates:
        scores[m] = scores.get(m, 0.0) + 2.0 ** ((t - t0) / (HALFLIFE_S * 1000))
    return [m for m, _ in sorted(scores.items(), key=lambda x: (-x[1], x[0]))][:k]


def commands(variant, updates):
    """The commands a client sends, in order: (args, is_query). Counts of each kind."""
    h_ms = HALFLIFE_S * 1000
    out = []
    t0 = updates[0][1]
    last_rescale = t0
    for i, (m, t) in enumerate(updates):
        if variant == "temporal":
            out.append(([b"TEMPORAL", b"INCR", KEY, m, b"1", b"HALFLIFE", b"%d" % HALFLIFE_S,
                         b"AT", b"%d" % t], "update"))
        elif variant == "forward":
            if (t - t0) / h_ms >= RESCALE_AT:
                w = 2.0 ** (-(t - t0) / h_ms)
                out.append(([b"ZUNIONSTORE", KEY, b"1", KEY, b"WEIGHTS", repr(w).encode()],
                            "rescale"))
                t0 = t
            out.append(([b"ZINCRBY", KEY, repr(2.0 ** ((t - t0) / h_ms)).encode(), m], "update"))
        else:
            while t - last_rescale >= 1000:
                w = 2.0 ** (-1000 / h_ms)
                out.append(([b"ZUNIONSTORE", KEY, b"1", KEY, b"WEIGHTS", repr(w).encode()],
                            "rescale"))
                last_rescale += 1000
            out.append(([b"ZINCRBY", KEY, b"1", m], "update"))
        if (i + 1) % QUERY_EVERY == 0:
            if variant == "temporal":
                out.append(([b"TEMPORAL", b"TOP", KEY, b"10", b"WITHSCORES"], "query"))
            else:
                out.append(([b"ZREVRANGE", KEY, b"0", b"9", b"WITHSCORES"], "query"))
    return out


def run(kind, variant, cmds):
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="bench-temporal-")
    p, c = start(kind, port, workdir)
    try:
        cpu0, wall0 = cpu_seconds(p.pid), time.time()
        for i in range(0, len(cmds), BATCH):
            chunk = [a for a, _ in cmds[i:i + BATCH]]
            c.send(chunk)
            for _ in chunk:
                c.read()
        cpu1, wall1 = cpu_seconds(p.pid), time.time()
        if variant == "temporal":
            top = c.call(b"TEMPORAL", b"TOP", KEY, b"10")
        else:
            top = c.call(b"ZREVRANGE", KEY, b"0", b"9")
        return cpu1 - cpu0, wall1 - wall0, top
    finally:
        p.kill()
        p.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--updates", type=int, default=300_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", help="run only the cases whose method is this (e.g. temporal)")
    args = ap.parse_args()
    updates = stream(args.updates)
    truth = exact_top(updates)
    cases = [
        ("WarpEngine", "warp", "temporal"),
        ("WarpEngine", "warp", "forward"),
        ("WarpEngine", "warp", "naive"),
        ("Redis", "redis", "forward"),
        ("Redis", "redis", "naive"),
    ]
    print("%d updates over %d members (Zipf 1.0), %d simulated s = %d half-lives, "
          "a top-10 query every %d updates, pipelined by %d, median of %d runs"
          % (args.updates, MEMBERS, SIM_SPAN_S, SIM_SPAN_S // HALFLIFE_S, QUERY_EVERY, BATCH,
             args.runs))
    print("| server | method | round trips / update | round trips / query | rescales "
          "| server CPU s / 1M updates | updates/s | top-10 = exact |")
    print("|---|---|---|---|---|---|---|---|")
    for name, kind, variant in cases:
        if args.only and variant != args.only:
            continue
        cmds = commands(variant, updates)
        n_upd = sum(1 for _, k in cmds if k == "update")
        n_resc = sum(1 for _, k in cmds if k == "rescale")
        n_q = sum(1 for _, k in cmds if k == "query")
        results = [run(kind, variant, cmds) for _ in range(args.runs)]
        cpu = statistics.median(r[0] for r in results) * 1e6 / n_upd
        rate = statistics.median(n_upd / r[1] for r in results)
        same = all(r[2] == truth for r in results)
        print("| %s | %s | %.4f | %d | %d | %.2f | %.0f | %s |"
              % (name, variant, (n_upd + n_resc) / n_upd, 1 if n_q else 0, n_resc, cpu, rate,
                 "yes" if same else "no"))


if __name__ == "__main__":
    main()
