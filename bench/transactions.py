#!/usr/bin/env python3
"""MULTI + 3 SETs + EXEC (one write per transaction, as a transactional pipeline sends it),
on a real redis-server and on WarpEngine, side by side: transactions per second, latency, and
each server's CPU-seconds per million transactions.

  bench/transactions.py [--rounds N] [--seconds S] [--clients C] [--threads T]

Rows: keys on one shard (a shared hash tag) and keys spread over the shards. Redis has one
keyspace, so its two rows measure the same thing. Needs `cargo build --release -p warpengine
-p warpengine-load`; prints medians of --rounds alternating runs.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from physics import LOAD, Server, median_rows, print_table  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    if not os.path.exists(LOAD):
        sys.exit("build first: cargo build --release -p warpengine -p warpengine-load")
    common = ["--clients", str(a.clients), "--seconds", str(a.seconds)]

    def measure():
        rows = {}
        for kind, extra in [("redis", []), ("warp", ["--threads", str(a.threads)])]:
            for keys in ["one-shard", "spread"]:
                with Server(kind, extra) as s:
                    rows[f"{kind}, keys {keys}"] = s.run("transaction", "--keys", keys, *common)
        return rows

    rows = median_rows(a.rounds, measure)
    print_table(f"MULTI + 3 SET + EXEC; {a.clients} clients; medians of {a.rounds}; "
                f"WarpEngine --threads {a.threads}", rows, "redis, keys one-shard")


if __name__ == "__main__":
    main()
