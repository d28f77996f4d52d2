"""HORIZON's policy choices by simulation: exact LRU, S3-FIFO with its fixed small FIFO (a tenth
of the keys), and S3-FIFO whose small FIFO's share adapts as ARC's recency target does (what
allkeys-horizon runs since issue 22's shifting-popularity work), over bench/hitratio.py's request
streams, at cache sizes counted in keys. No server: each policy replays the stream in Python (GET,
SET on a miss; the first fifth warms the cache and is not counted), so a variant is judged in
seconds before it is built into storage/src/eviction/horizon.rs and measured with hitratio.py.

The S3-FIFO here is the paper's, with queues in insertion order; the server's main queue is a
CLOCK hand over table positions and its ghosts are fingerprints in a direct-mapped table, so its
figures differ by a few percent (hitratio.py measures those).

Usage: python3 bench/horizon_sim.py [--keys N] [--requests R] [--sizes 2200,6600,22000]
    [--workloads LIST] [--promote-above 0|1] [--main-ghosts 0.3]
--promote-above: hits in the small FIFO a key needs beyond this to move to main (0: one hit,
what the server does; 1: two). --main-ghosts: main's ghost table, as a share of the cache."""

import argparse
import collections
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hitratio  # noqa: E402


def lru(stream, size, warm):
    cache = collections.OrderedDict()
    misses = 0
    for t, k in enumerate(stream):
        if k in cache:
            cache.move_to_end(k)
            continue
        misses += t >= warm
        cache[k] = True
        if len(cache) > size:
            cache.popitem(last=False)
    return misses / (len(stream) - warm), None


def s3fifo(stream, size, warm, adaptive, promote_above, main_ghosts):
    """S3-FIFO; with `adaptive`, the small FIFO's share moves between a tenth and nine tenths
    by ARC's rule (a ghost of small asked for again grows it by max(1, |B2|/|B1|) keys, a ghost
    of main shrinks it by max(1, |B1|/|B2|)), main's evictions are remembered too (B2), and keys
    entering main have a hit to spend while the share is above 15%.
    Returns the miss ratio and the share at the end."""
    small, main = collections.deque(), collections.deque()
    freq = {}
    b1, b2 = collections.OrderedDict(), collections.OrderedDict()
    b1_limit, b2_limit = int(size * 0.9), int(size * main_ghosts)
    share = 0.1
    misses = 0

    def entering():
        # As the server: a key entering main has one hit to spend while the share is above 15%.
        return 1 if adaptive and share > 0.15 else 0

    def remember(ghosts, k, limit):
        ghosts[k] = True
        if len(ghosts) > limit:
            ghosts.popitem(last=False)

    def evict():
        while True:
            if len(small) >= share * size or not main:
                k = small.popleft()
                if freq[k] > promote_above:
                    main.append(k)
                    freq[k] = entering()
                    continue
                del freq[k]
                remember(b1, k, b1_limit)
                return
            k = main.popleft()
            if freq[k] > 0:
                freq[k] -= 1
                main.append(k)
                continue
            del freq[k]
            if adaptive:
                remember(b2, k, b2_limit)
            return

    for t, k in enumerate(stream):
        if k in freq:
            freq[k] = min(3, freq[k] + 1)
            continue
        misses += t >= warm
        from_small, from_main = k in b1, k in b2
        b1.pop(k, None)
        b2.pop(k, None)
        if adaptive and from_small:
            share = min(0.9, share + max(1.0, len(b2) / max(1, len(b1))) / size)
        elif adaptive and from_main:
            share = max(0.1, share - max(1.0, len(b1) / max(1, len(b2))) / size)
        if len(freq) >= size:
            evict()
        if from_small or from_main:
            main.append(k)
            freq[k] = entering()
        else:
            small.append(k)
            freq[k] = 0
    return misses / (len(stream) - warm), share


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=200_000)
    ap.add_argument("--requests", type=int, default=600_000)
    ap.add_argument("--sizes", default="2200,6600,22000")
    ap.add_argument("--workloads", default="shifting,zipf 0.99,zipf 0.8,one-hit 25%,scan mix 30%")
    ap.add_argument("--promote-above", type=int, default=0)
    ap.add_argument("--main-ghosts", type=float, default=0.3)
    a = ap.parse_args()
    print(f"# bench/horizon_sim.py --keys {a.keys} --requests {a.requests} --sizes {a.sizes} "
          f"--promote-above {a.promote_above} --main-ghosts {a.main_ghosts}")
    print("| workload | cache (keys) | LRU | S3-FIFO | S3-FIFO, adaptive small | its share at the end |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in a.workloads.split(","):
        stream = hitratio.workload(name, a.keys, a.requests, 0)
        warm = len(stream) // 5
        for size in (int(s) for s in a.sizes.split(",")):
            plain = s3fifo(stream, size, warm, False, a.promote_above, a.main_ghosts)[0]
            adapted, share = s3fifo(stream, size, warm, True, a.promote_above, a.main_ghosts)
            print(f"| {name} | {size} | {lru(stream, size, warm)[0]:.4f} | {plain:.4f} | "
                  f"{adapted:.4f} | {share:.2f} |", flush=True)


if __name__ == "__main__":
    main()
