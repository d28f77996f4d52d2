#!/usr/bin/env python3
"""PUBLISH to one channel with many subscribers, on a real redis-server and on WarpEngine side
by side: publishes per second, messages delivered per second (counted at the subscribers), and
each server's CPU-seconds per million deliveries.

  bench/pubsub.py [--rounds N] [--seconds S] [--subscribers N] [--clients C] [--threads T]

Needs `cargo build --release -p warpengine -p warpengine-load`; prints medians of --rounds
alternating runs. The subscribers and publishers share the machine's cores with the server.
"""
import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from physics import LOAD, Server  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--subscribers", type=int, default=100)
    p.add_argument("--clients", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    if not os.path.exists(LOAD):
        sys.exit("build first: cargo build --release -p warpengine -p warpengine-load")
    runs = {"redis": [], "warp": []}
    for _ in range(a.rounds):
        for kind, extra in [("redis", []), ("warp", ["--threads", str(a.threads)])]:
            with Server(kind, extra) as s:
                f = s.run("publish", "--subscribers", str(a.subscribers), "--clients",
                          str(a.clients), "--seconds", str(a.seconds))
                delivered = float(f["delivered"])
                # Server.run counts CPU per publish; per delivery is what the fan-out costs.
                cpu_per_m = f["cpu_s_per_m"] * float(f["ops"]) / max(delivered, 1)
                runs[kind].append((float(f["ops_per_s"]), float(f["delivered_per_s"]), cpu_per_m))
    med = {k: [statistics.median(r[i] for r in v) for i in range(3)] for k, v in runs.items()}
    print(f"\nPUBLISH of 16 bytes to {a.subscribers} subscribers, {a.clients} publishers; "
          f"medians of {a.rounds}; WarpEngine --threads {a.threads}")
    print(f"{'':8} {'publishes/s':>12} {'delivered/s':>12} {'CPU s/M deliveries':>19} {'vs Redis':>9}")
    for kind in ["redis", "warp"]:
        pub, dlv, cpu = med[kind]
        print(f"{kind:8} {pub:12.0f} {dlv:12.0f} {cpu:19.2f} {dlv / med['redis'][1]:8.2f}x")


if __name__ == "__main__":
    main()
