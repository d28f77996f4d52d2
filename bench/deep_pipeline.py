#!/usr/bin/env python3
"""A client that sends a whole pipeline before it reads any reply (N SETRANGE commands, 40 MB
for a million), then reads every reply: redis-server and WarpEngine side by side. The server
must read on while the replies wait, or the two wait for each other (WarpEngine did, until
the connection kept reading while its replies waited). Prints the seconds to send all and to
get every reply, and each server's CPU-seconds per million commands; medians of --rounds
alternating runs.

  bench/deep_pipeline.py [--requests N] [--rounds R] [--threads T]

Needs `cargo build --release -p warpengine` and redis-server.
"""
import argparse
import os
import socket
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from physics import Server, cpu_seconds  # noqa: E402

COMMAND = b"*4\r\n$8\r\nSETRANGE\r\n$3\r\nkey\r\n$1\r\n0\r\n$5\r\nhello\r\n"
REPLY = b":5\r\n"


def one_run(port, n, timeout):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(timeout)
    started = time.time()
    chunk = COMMAND * 10000
    for _ in range(n // 10000):
        s.sendall(chunk)
    s.sendall(COMMAND * (n % 10000))
    sent = time.time() - started
    want = len(REPLY) * n
    got = bytearray()
    while len(got) < want:
        data = s.recv(1 << 20)
        if not data:
            break
        got += data
    total = time.time() - started
    s.close()
    if bytes(got) != REPLY * n:
        sys.exit(f"port {port}: {len(got)} of {want} reply bytes, or not all ':5'")
    return sent, total


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--requests", type=int, default=1_000_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--timeout", type=float, default=60)
    a = p.parse_args()
    runs = {"redis": [], "warp": []}
    for _ in range(a.rounds):
        for kind, extra in [("redis", []), ("warp", ["--threads", str(a.threads)])]:
            with Server(kind, extra) as s:
                before = cpu_seconds(s.proc.pid)
                sent, total = one_run(s.port, a.requests, a.timeout)
                cpu = (cpu_seconds(s.proc.pid) - before) / a.requests * 1e6
                runs[kind].append((sent, total, cpu))
    med = {k: [statistics.median(r[i] for r in v) for i in range(3)] for k, v in runs.items()}
    print(f"\n{a.requests} SETRANGE sent before any reply is read; medians of {a.rounds}; "
          f"WarpEngine --threads {a.threads}")
    print(f"{'':8} {'sent s':>8} {'all replies s':>14} {'CPU s/M':>8} {'time vs Redis':>14}")
    for kind in ["redis", "warp"]:
        sent, total, cpu = med[kind]
        print(f"{kind:8} {sent:8.2f} {total:14.2f} {cpu:8.2f} {total / med['redis'][1]:13.2f}x")


if __name__ == "__main__":
    main()
