"""How few misses can any policy have at the capacity Redis reaches? (issue 5's hit-ratio target)

bench/hitratio.py's Zipf streams follow the Independent Reference Model (IRM): every request
draws a key independently from a fixed distribution. Under IRM the optimal online policy is A0,
which keeps the C most probable keys; no online policy has fewer expected misses at capacity C
(Aho, Denning and Ullman 1971). A perfect LFU (complete request history) approaches A0 from
above. So if A0, holding as many keys as Redis holds in the same memory, misses more than the
target (0.8 x Redis allkeys-lfu's miss ratio), the target cannot be met by a better policy: it
needs more keys in the same memory, and this script says how many more.

It replays the stream exactly as hitratio.py does against real Redis (allkeys-lfu) and
WarpEngine (allkeys-horizon) at the same maxmemory rule, takes each server's DBSIZE at the end as
its capacity C, and computes on the same stream (warm-up fifth excluded): A0 at C (realized on
this stream, and expected: the probability mass outside the top C), perfect LFU at C, and the
smallest capacities C* at which A0 and perfect LFU reach the target.

Usage: python3 bench/hitratio_bound.py [--keys N] [--requests R] [--shares 0.1] [--alpha A]
[--seed S] [--all] [--warp-threads T] (needs redis-server and target/release/warpengine)."""

import argparse
import heapq
import os
import random
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hitratio import replay, start, used_memory, working_set, zipf_stream  # noqa: E402

SERVERS = [
    ("Redis allkeys-lfu", "redis", ["--maxmemory-policy", "allkeys-lfu"]),
    ("WarpEngine allkeys-horizon", "warp", ["--set", "maxmemory-policy=allkeys-horizon"]),
]
# With --all: the other policies too, for their capacities and miss ratios on the same replay.
MORE_SERVERS = [
    ("Redis allkeys-lru", "redis", ["--maxmemory-policy", "allkeys-lru"]),
    ("WarpEngine allkeys-lru", "warp", ["--set", "maxmemory-policy=allkeys-lru"]),
    ("WarpEngine allkeys-lfu", "warp", ["--set", "maxmemory-policy=allkeys-lfu"]),
]


def measure(kind, extra, budget, stream):
    """Miss ratio and final DBSIZE of a fresh server at maxmemory = empty used_memory + budget,
    and the part of the budget that is not keys: what used_memory keeps above the empty server's
    once maxmemory is lifted and FLUSHALL has freed the keys (buffers, tables' room, queues)."""
    proc, tmp, c = start(kind, extra)
    try:
        empty = used_memory(c)
        c.call("CONFIG", "SET", "maxmemory", str(empty + budget))
        miss = replay(c, stream)
        keys = int(c.call("DBSIZE"))
        c.call("CONFIG", "SET", "maxmemory", "0")
        c.call("FLUSHALL")
        return miss, keys, used_memory(c) - empty
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def ranks(n, seed, stream):
    """The true popularity rank of each request: zipf_stream draws rank r and emits ids[r], with
    ids = range(n) shuffled by random.Random(seed) before any draw."""
    ids = list(range(n))
    random.Random(seed).shuffle(ids)
    rank_of = [0] * n
    for r, i in enumerate(ids):
        rank_of[i] = r
    return [rank_of[i] for i in stream]


def a0_curve(n, rank_stream, warm):
    """misses[C] = counted requests whose rank is >= C, i.e. A0's misses at capacity C."""
    hist = [0] * (n + 1)
    for r in rank_stream[warm:]:
        hist[r] += 1
    misses, acc = [0] * (n + 1), 0
    for c in range(n, -1, -1):
        misses[c] = acc
        acc += hist[c - 1] if c else 0
    return misses


def perfect_lfu(stream, n, cap, warm):
    """LFU over complete history: a missed key is admitted when its count (this request
    included) exceeds the least-counted cached key's, which it evicts. Heap with lazy deletion."""
    count, cached, heap = [0] * n, bytearray(n), []
    size = misses = 0
    for pos, k in enumerate(stream):
        count[k] += 1
        if cached[k]:
            heapq.heappush(heap, (count[k], k))
            continue
        if pos >= warm:
            misses += 1
        if size < cap:
            cached[k], size = 1, size + 1
            heapq.heappush(heap, (count[k], k))
            continue
        while not cached[heap[0][1]] or count[heap[0][1]] != heap[0][0]:
            heapq.heappop(heap)
        if count[k] > heap[0][0]:
            cached[heapq.heappop(heap)[1]] = 0
            cached[k] = 1
            heapq.heappush(heap, (count[k], k))
    return misses / (len(stream) - warm)


def smallest(lo, hi, ok):
    """Smallest C in [lo, hi] with ok(C), assuming ok is monotone; None if ok(hi) fails."""
    if not ok(hi):
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid + 1, hi)
    return lo


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=200_000)
    ap.add_argument("--requests", type=int, default=600_000)
    ap.add_argument("--shares", default="0.1")
    ap.add_argument("--alpha", type=float, default=0.99)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--all", action="store_true", help="also Redis LRU, WarpEngine LRU and LFU")
    ap.add_argument("--warp-threads", type=int, default=0, help="WarpEngine's workers (0: default)")
    a = ap.parse_args()
    warp_more = ["--threads", str(a.warp_threads)] if a.warp_threads else []
    n = a.keys
    cmd = (f"python3 bench/hitratio_bound.py --keys {n} --requests {a.requests} "
           f"--shares {a.shares} --alpha {a.alpha} --seed {a.seed}" + (" --all" if a.all else "")
           + (f" --warp-threads {a.warp_threads}" if a.warp_threads else ""))
    stream = zipf_stream(n, a.alpha, a.requests, a.seed)
    warm, counted = len(stream) // 5, len(stream) - len(stream) // 5
    a0 = a0_curve(n, ranks(n, a.seed, stream), warm)
    weights = [1.0 / (r + 1) ** a.alpha for r in range(n)]
    total, top = sum(weights), [0.0]
    for w in weights:
        top.append(top[-1] + w)
    ws = working_set(n)
    print(f"# {cmd}")
    print(f"working set {ws / 1e6:.1f} MB in Redis; zipf {a.alpha}, {n} keys, {a.requests} "
          f"requests, seed {a.seed}, first fifth warm-up")
    print()
    print("| memory | server | measured miss | DBSIZE = C | bytes/key | not keys (KB) | A0 at C "
          "| A0 expected | perfect LFU at C |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    summary = []
    for share in [float(x) for x in a.shares.split(",")]:
        budget = int(ws * share)
        servers = SERVERS + (MORE_SERVERS if a.all else [])
        got = {label: measure(kind, extra + (warp_more if kind == "warp" else []), budget, stream)
               for label, kind, extra in servers}
        for label, (miss, cap, not_keys) in got.items():
            print(f"| {share:.0%} | {label} | {miss:.4f} | {cap} | {budget / cap:.0f} "
                  f"| {not_keys / 1024:.0f} | {a0[cap] / counted:.4f} | {1 - top[cap] / total:.4f} "
                  f"| {perfect_lfu(stream, n, cap, warm):.4f} |", flush=True)
        summary.append((share, budget, *got["Redis allkeys-lfu"][:2]))
    print()
    print("| memory | target (0.8 x Redis LFU) | Redis C | A0 C* | x Redis C | bytes/key "
          "| perfect LFU C* | x Redis C | bytes/key |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for share, budget, miss, cap in summary:
        target = 0.8 * miss
        c_a0 = smallest(0, n, lambda c: a0[c] <= target * counted)
        c_lfu = smallest(cap, n, lambda c: perfect_lfu(stream, n, c, warm) <= target)
        lfu = (f"{c_lfu} | {c_lfu / cap:.2f}x | {budget / c_lfu:.0f}" if c_lfu
               else "none (compulsory misses) | - | -")
        print(f"| {share:.0%} | {target:.4f} | {cap} | {c_a0} | {c_a0 / cap:.2f}x "
              f"| {budget / c_a0:.0f} | {lfu} |",
              flush=True)
    print()
    print(f"command: {cmd}")


if __name__ == "__main__":
    main()
