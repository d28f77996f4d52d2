"""The pause an ENTROPY slot move costs (issue 22: "a client sees no pause beyond a bounded p99").

A move holds shard 0's lock and the old and new shard's while it finds and moves the slot's keys.
Without a slot index, finding them is a walk of the old shard's whole table; once a move has been
asked for, each worker builds a slot index a chunk per tick (docs/physics.md, ENTROPY). This fills
a server with --keys keys, then, if the build has an index (INFO physics `entropy_slot_index`),
makes one move and waits until the index is ready (how long it took, and the worst GET latency a
probe client saw meanwhile), and times --moves moves of different slots round trip: median and
max milliseconds, with the worst and 99th-percentile GET latency of the probe during the moves.
A build without the index (WARP_BINARY=older build) gives the walk's figures.

Usage: python3 bench/moveslot_pause.py [--keys 1000000] [--moves 20] [--threads 2]"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resp import Conn, free_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WARP = os.environ.get("WARP_BINARY") or os.path.join(ROOT, "target", "release", "warpengine")
SLOTS = 16384


def crc16(data):
    """Redis Cluster's CRC16 (XMODEM)."""
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def info_field(c, section, field):
    text = c.call("INFO", section).decode()
    for line in text.split("\r\n"):
        if line.startswith(field + ":"):
            return line.split(":", 1)[1]
    return None


class Probe(threading.Thread):
    """GETs of a few keys (on every shard) one at a time, each latency recorded with its time."""

    def __init__(self, port, keys):
        super().__init__(daemon=True)
        self.c = Conn(port)
        self.keys = keys
        self.samples = []
        self.stop = False

    def run(self):
        i = 0
        while not self.stop:
            t0 = time.perf_counter()
            self.c.call("GET", self.keys[i % len(self.keys)])
            t1 = time.perf_counter()
            self.samples.append((t0, t1 - t0))
            i += 1

    def between(self, start, end):
        return sorted(d for t, d in self.samples if start <= t <= end)


def tail(latencies):
    if not latencies:
        return "no samples"
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return f"GET p99 {p99 * 1000:.2f} ms, max {latencies[-1] * 1000:.2f} ms ({len(latencies)} GETs)"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--moves", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="moveslot-")
    proc = subprocess.Popen([WARP, "--port", str(port), "--dir", tmp, "--threads", str(a.threads), "--save", ""],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                c = Conn(port)
                if c.call("PING") == b"PONG":
                    break
            except OSError:
                time.sleep(0.05)
        t0 = time.perf_counter()
        for start in range(0, a.keys, 1000):
            n = min(1000, a.keys - start)
            c.send([[b"SET", b"k:%d" % i, b"v"] for i in range(start, start + n)])
            for _ in range(n):
                c.read()
        print(f"{WARP}: {a.threads} workers, {int(c.call('DBSIZE'))} keys loaded in "
              f"{time.perf_counter() - t0:.1f} s")
        by_slot = {}
        for i in range(0, a.keys, max(1, a.keys // 5000)):
            key = b"k:%d" % i
            by_slot.setdefault(crc16(key) % SLOTS, key)
        slots = sorted(by_slot)[:: max(1, len(by_slot) // (a.moves + 1))][: a.moves + 1]
        probe = Probe(port, [by_slot[s] for s in slots[:8]])
        probe.start()
        quiet = time.perf_counter()
        time.sleep(1.0)
        print(f"before any move: {tail(probe.between(quiet, time.perf_counter()))}")

        def move(slot):
            owner = slot * a.threads // SLOTS
            to = (owner + 1) % a.threads
            t = time.perf_counter()
            n = int(c.call("ENTROPY", "MOVESLOT", str(slot), str(to)))
            return time.perf_counter() - t, n

        if info_field(c, "physics", "entropy_slot_index") is None:
            print("this build keeps no slot index for ENTROPY: every move walks the old shard")
        else:
            took, n = move(slots.pop(0))
            asked = time.perf_counter()
            print(f"first move (the walk): {took * 1000:.2f} ms, {n} keys; entropy_slot_index "
                  f"{info_field(c, 'physics', 'entropy_slot_index')}")
            while info_field(c, "physics", "entropy_slot_index") != "ready":
                time.sleep(0.01)
            ready = time.perf_counter()
            print(f"index ready {ready - asked:.2f} s after the first move; meanwhile "
                  f"{tail(probe.between(asked, ready))}")
        start = time.perf_counter()
        times, keys = [], []
        for slot in slots[: a.moves]:
            took, n = move(slot)
            times.append(took)
            keys.append(n)
        end = time.perf_counter()
        probe.stop = True
        probe.join()
        print(f"{len(times)} moves of {min(keys)}-{max(keys)} keys: median {statistics.median(times) * 1000:.2f} ms, "
              f"max {max(times) * 1000:.2f} ms (round trip); during the moves {tail(probe.between(start, end))}")
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
