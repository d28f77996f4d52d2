"""Resident memory per key: loads N keys of one shape into a fresh redis-server and a fresh
WarpEngine and reports the RSS growth per key for each (--by used_memory: INFO's used_memory
growth instead). The stream shapes add N entries to one stream, so their figure is per entry. With --accounting, WarpEngine only:
its used_memory growth against its RSS growth, for each shape at each of --sizes. Usage:
    python3 bench/memory.py [--keys N] [--shape strings|strings200|strings-ttl|hash10|set10|zset10|list10|list300|list300-lpush|stream3|stream2-ids]
        [--warp BINARY] [--by rss|used_memory]
    python3 bench/memory.py --accounting [--sizes 50000,300000,1000000] [--shape ...]"""

import argparse
import os
import shutil
import socket
import subprocess
import tempfile
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resp import free_port, server_pid  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WARP = os.path.join(ROOT, "target", "release", "warpengine")


def rss(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def commands(shape, n):
    for i in range(n):
        key = b"key:%012d" % i
        if shape == "strings":
            yield encode(b"SET", key, b"v" * 64)
        elif shape == "strings200":
            # bench/hitratio.py's keys and values (issue 22: keys per MB at 200-byte values).
            yield encode(b"SET", b"key:%d" % i, b"v" * 200)
        elif shape == "strings-ttl":
            yield encode(b"SET", key, b"v" * 64, b"EX", b"100000")
        elif shape == "hash10":
            yield encode(b"HSET", key, *[x for f in range(10) for x in (b"field%d" % f, b"value%d" % f)])
        elif shape == "set10":
            yield encode(b"SADD", key, *[b"member:%d" % f for f in range(10)])
        elif shape == "zset10":
            yield encode(b"ZADD", key, *[x for f in range(10) for x in (str(f), b"member:%d" % f)])
        elif shape == "list10":
            yield encode(b"RPUSH", key, *[b"item:%d" % f for f in range(10)])
        elif shape == "list300":
            yield encode(b"RPUSH", key, *[b"item:%d" % f for f in range(300)])
        elif shape == "list300-lpush":
            # Pushed one at a time at the head, as a queue fed by LPUSH grows.
            for f in range(300):
                yield encode(b"LPUSH", key, b"item:%d" % f)
        elif shape == "stream3":
            # A sensor feed: generated IDs, the same three small fields in every entry.
            yield encode(b"XADD", b"stream", b"*", b"temp", str(20 + i % 15), b"humidity",
                         str(40 + i % 37), b"sensor", b"s-%d" % (i % 100))
        elif shape == "stream2-ids":
            # Explicit IDs a millisecond apart, two fields.
            yield encode(b"XADD", b"stream", b"%d-0" % (i + 1), b"user", b"u%d" % (i % 1000),
                         b"action", b"click")


def load(port, shape, n):
    s = socket.create_connection(("127.0.0.1", port))
    batch, sent = [], 0
    for cmd in commands(shape, n):
        batch.append(cmd)
        if len(batch) == 1000:
            s.sendall(b"".join(batch))
            sent += len(batch)
            batch = []
            # Drain replies so the server never buffers much.
            got = 0
            while got < 1000:
                got += s.recv(1 << 20).count(b"\r\n")
    if batch:
        s.sendall(b"".join(batch))
    time.sleep(0.5)
    s.close()


def start(kind, tmp):
    """A fresh server with no persistence in `tmp`, accepting connections: (process, port). The
    port is checked to be this process's (INFO's process_id): another server started meanwhile
    on the free port chosen (a parallel test's) would otherwise answer in its place, and end
    the load when it stops (once seen in CI as "Connection reset by peer"); then another port."""
    for _ in range(5):
        port = free_port()
        cmd = (["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", tmp]
               if kind == "redis" else [WARP, "--port", str(port), "--threads", "2", "--dir", tmp])
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            if p.poll() is not None:
                break
            try:
                if server_pid(port) == p.pid:
                    return p, port
                break
            except OSError:
                time.sleep(0.05)
        p.terminate()
        p.wait()
    raise RuntimeError(f"{kind} did not start on a port of its own")


def measure(kind, shape, n, by="rss"):
    tmp = tempfile.mkdtemp()
    p, port = start(kind, tmp)
    try:
        size = (lambda: rss(p.pid)) if by == "rss" else (lambda: used_memory(port))
        before = size()
        load(port, shape, n)
        after = size()
    finally:
        # (A failed load once left its server running an hour after the test.)
        p.terminate()
        p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    return (after - before) / n


def used_memory(port):
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"INFO memory\r\n")
        text = b""
        while b"used_memory:" not in text or not text.endswith(b"\r\n"):
            text += s.recv(1 << 16)
    line = [l for l in text.decode().split("\r\n") if l.startswith("used_memory:")][0]
    return int(line.split(":")[1])


def accounting(shape, n):
    """WarpEngine's used_memory growth / RSS growth after loading n keys of one shape."""
    tmp = tempfile.mkdtemp()
    p, port = start("warp", tmp)
    try:
        time.sleep(0.3)
        rss0, used0 = rss(p.pid), used_memory(port)
        load(port, shape, n)
        rss1, used1 = rss(p.pid), used_memory(port)
    finally:
        p.terminate()
        p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    return (used1 - used0) / (rss1 - rss0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=200_000)
    ap.add_argument("--shape", default="strings,hash10,set10,zset10,list10")
    ap.add_argument("--accounting", action="store_true")
    ap.add_argument("--sizes", default="50000,300000,1000000")
    ap.add_argument("--warp", default=None, help="the WarpEngine binary (another build to compare)")
    ap.add_argument("--by", default="rss", choices=["rss", "used_memory"])
    a = ap.parse_args()
    global WARP
    WARP = a.warp or WARP
    if a.accounting:
        sizes = [int(n) for n in a.sizes.split(",")]
        print("# bench/memory.py --accounting: WarpEngine used_memory growth / RSS growth")
        print("| shape | " + " | ".join(f"{n:,}" for n in sizes) + " |")
        print("|---|" + "---:|" * len(sizes))
        for shape in a.shape.split(","):
            ratios = [accounting(shape, n) for n in sizes]
            print(f"| {shape} | " + " | ".join(f"{r:.3f}" for r in ratios) + " |", flush=True)
        return
    print(f"# bench/memory.py --keys {a.keys} --by {a.by}: growth per key (stream shapes: per entry), bytes")
    print("| shape | Redis | WarpEngine | ratio |")
    print("|---|---:|---:|---:|")
    for shape in a.shape.split(","):
        r = measure("redis", shape, a.keys, a.by)
        w = measure("warp", shape, a.keys, a.by)
        print(f"| {shape} | {r:.0f} | {w:.0f} | {w / r:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
