"""WAL measurements that redis-benchmark alone cannot express (see BENCHMARKS.md):
  recovery  -- load N SETs with the log on, kill -9, restart: records replayed per second.
  snapshot  -- GET latency (p50/p99) from redis-benchmark with no snapshot running, and while
               background snapshots (BGSAVE) of the whole dataset run back to back.
Usage: python3 bench/durability.py recovery|snapshot [--keys N] [--rounds R]"""

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WARP = os.path.join(ROOT, "target", "release", "warpengine")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(port, *args):
    with socket.create_connection(("127.0.0.1", port)) as s:
        out = b"*%d\r\n" % len(args) + b"".join(
            b"$%d\r\n%s\r\n" % (len(a), a) for a in (x.encode() if isinstance(x, str) else x for x in args))
        s.sendall(out)
        data = b""
        while not data.endswith(b"\r\n") or (data.startswith(b"$") and data.count(b"\r\n") < 2):
            data += s.recv(1 << 20)
        return data


def start(port, tmp, log):
    # (The log is on stdout without a logfile, as Redis's; stderr too, for anything else.)
    proc = subprocess.Popen([WARP, "--port", str(port), "--dir", tmp, "--appendonly", "yes"],
                            stdout=log, stderr=log)
    started = time.time()
    while True:
        try:
            if command(port, "PING").startswith(b"+PONG"):
                return proc, time.time() - started
        except OSError:
            time.sleep(0.01)
        if proc.poll() is not None:
            raise RuntimeError("warpengine exited during start")


def load(port, n):
    subprocess.run(["redis-benchmark", "-p", str(port), "-t", "set", "-n", str(n), "-r", str(n),
                    "-P", "16", "-c", "50", "-d", "64", "-q"], check=True, capture_output=True)


def recovery(a):
    rates = []
    for _ in range(a.rounds):
        tmp = tempfile.mkdtemp(prefix="bench-recovery-")
        port = free_port()
        try:
            with open(os.path.join(tmp, "first.log"), "w") as log:
                proc, _ = start(port, tmp, log)
            load(port, a.keys)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            size = sum(os.path.getsize(os.path.join(tmp, "appendonlydir", f))
                       for f in os.listdir(os.path.join(tmp, "appendonlydir")) if f.startswith("log-"))
            with open(os.path.join(tmp, "second.log"), "w") as log:
                proc, ready = start(port, tmp, log)
            proc.terminate()
            proc.wait()
            text = open(os.path.join(tmp, "second.log")).read()
            m = re.search(r"recovered (\d+) keys from (\d+) records in ([\d.]+)s \((\d+) records/s", text)
            snap = re.search(r"snapshot written in ([\d.]+)s", text)
            print(f"log {size / 1e6:.1f} MB, {m.group(2)} records -> {m.group(1)} keys in {m.group(3)} s "
                  f"= {int(m.group(4)):,} records/s; then snapshot {snap.group(1)} s; ready after {ready:.2f} s",
                  flush=True)
            rates.append(int(m.group(4)))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"median replay rate: {statistics.median(rates):,.0f} records/s over {a.rounds} rounds")


def get_latency(port, n):
    out = subprocess.run(["redis-benchmark", "-p", str(port), "-t", "get", "-n", str(n), "-r",
                          str(n), "-c", "50", "-P", "1", "-d", "64"],
                         check=True, capture_output=True, text=True).stdout
    # "  avg       min       p50       p95       p99       max" then the figures.
    lines = out.splitlines()
    i = next(i for i, l in enumerate(lines) if "latency summary" in l)
    figures = [float(x) for x in lines[i + 2].split()]
    rps = float(re.findall(r"throughput summary: ([\d.]+) requests per second", out)[-1])
    return figures[2], figures[4], figures[5], rps


def snapshot(a):
    tmp = tempfile.mkdtemp(prefix="bench-snapshot-")
    port = free_port()
    try:
        with open(os.path.join(tmp, "server.log"), "w") as log:
            proc, _ = start(port, tmp, log)
        load(port, a.keys)
        keys = int(command(port, "DBSIZE")[1:].strip())
        print(f"{keys:,} keys loaded")
        rows = {"none": [], "bgsave": []}
        for _ in range(a.rounds):
            rows["none"].append(get_latency(port, a.requests))
            stop = threading.Event()
            saves = [0]

            def saver():
                while not stop.is_set():
                    command(port, "BGSAVE")
                    saves[0] += 1
                    while b"rdb_bgsave_in_progress:1" in command(port, "INFO", "persistence"):
                        time.sleep(0.005)

            t = threading.Thread(target=saver)
            t.start()
            rows["bgsave"].append(get_latency(port, a.requests))
            stop.set()
            t.join()
            print(f"round: {saves[0]} background snapshots during the GET run", flush=True)
        proc.terminate()
        proc.wait()
        print("| during | GET ops/s | p50 ms | p99 ms | max ms |")
        print("|---|---:|---:|---:|---:|")
        for k, v in rows.items():
            med = lambda i: statistics.median(x[i] for x in v)
            print(f"| {k} | {med(3):,.0f} | {med(0):.3f} | {med(1):.3f} | {med(2):.3f} |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["recovery", "snapshot"])
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=2_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    {"recovery": recovery, "snapshot": snapshot}[a.what](a)


if __name__ == "__main__":
    main()
