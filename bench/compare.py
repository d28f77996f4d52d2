"""Side-by-side redis-benchmark runs: real redis-server vs WarpEngine (see bench/compare.sh)."""

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from resp import server_pid

CLK_TCK = os.sysconf("SC_CLK_TCK")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WARP = os.path.join(ROOT, "target", "release", "warpengine")

# (label, redis-benchmark arguments, requests per run)
CONFIGS = [
    ("P=1  -c 50", ["-c", "50", "-P", "1"], 200_000),
    ("P=16 -c 50", ["-c", "50", "-P", "16"], 1_000_000),
    ("P=16 -c 100 --threads 2", ["-c", "100", "-P", "16", "--threads", "2"], 1_000_000),
]
TESTS = ["ping_mbulk", "set", "get", "incr", "mset"]
# Every test of a default redis-benchmark run (issue 3).
DATATYPES = ["ping_inline", "ping_mbulk", "set", "get", "incr", "lpush", "rpush", "lpop", "rpop",
             "sadd", "hset", "spop", "zadd", "zpopmin", "lrange_100", "lrange_300", "lrange_500",
             "lrange_600", "mset"]
# Tests that carry much more per request run fewer requests.
DIVISOR = {"mset": 4, "lrange_100": 4, "lrange_300": 10, "lrange_500": 10, "lrange_600": 10}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port, proc=None):
    """Waits until the server on `port` answers PING; with `proc`, until it is that process (a
    parallel test's server on the same free port would otherwise be measured in its place)."""
    deadline = time.time() + 20
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server for port {port} exited ({proc.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    if proc is not None and server_pid(port) != proc.pid:
                        proc.terminate()
                        raise RuntimeError(f"port {port} is another server's")
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on {port} did not start")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def start(kind, port, extra):
    tmp = tempfile.mkdtemp(prefix=f"bench-{kind}-")
    if kind == "redis":
        cmd = ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", tmp]
    else:
        cmd = [WARP, "--port", str(port), "--dir", tmp]
    proc = subprocess.Popen(cmd + extra, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(port, proc)
    return proc, tmp


# redis-benchmark -r: how many distinct keys the tests draw from (--keyspace).
KEYSPACE = 1_000_000


def run_benchmark(port, test, args, n):
    cmd = ["redis-benchmark", "-p", str(port), "-t", test, "-n", str(n), "-q",
           "-r", str(KEYSPACE), "-d", "64"] + args
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    # -q prints progress with \r; the final figure is the last "requests per second".
    found = re.findall(r"([\d.]+) requests per second", out)
    if not found:
        raise RuntimeError(f"no result in: {out}")
    if "ERR" in out:
        raise RuntimeError(f"errors in: {out}")
    return float(found[-1])


def measure(servers, rounds, configs, tests):
    """Rounds alternate between the servers so that drift in machine load hits both alike. Each
    (server, config, round) gets a fresh server; the tests run in order against it, so GET reads
    the keys SET wrote, as in a plain redis-benchmark run."""
    results = {}
    for _ in range(rounds):
        for label, args, n in configs:
            for kind, extra in servers:
                port = free_port()
                proc, tmp = start(kind, port, extra)
                try:
                    for test in tests:
                        runs = n // DIVISOR.get(test, 1)
                        before = cpu_seconds(proc.pid)
                        ops = run_benchmark(port, test, args, runs)
                        cpu = cpu_seconds(proc.pid) - before
                        results.setdefault((kind, label, test), []).append((ops, cpu / runs * 1e6))
                finally:
                    proc.terminate()
                    proc.wait()
                    shutil.rmtree(tmp, ignore_errors=True)
    return results


def main():
    global KEYSPACE
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="fewer requests, one config")
    ap.add_argument("--warp-args", default="", help="extra WarpEngine flags, e.g. '--threads 2'")
    ap.add_argument("--tests", default=",".join(TESTS))
    ap.add_argument("--preset", choices=["core", "datatypes"], default="core",
                    help="datatypes: every test of a default redis-benchmark run")
    ap.add_argument("--configs", default="", help="comma-separated config indexes (0: P=1, 1: P=16, 2: P=16 threads)")
    ap.add_argument("--durability", default="",
                    help="comma-separated appendfsync modes to compare (no-log, everysec, always): "
                         "both servers log with the same setting; 'no-log' is appendonly no")
    ap.add_argument("--keyspace", type=int, default=KEYSPACE,
                    help="redis-benchmark -r: a small keyspace keeps the tables in cache, so the "
                         "request path shows without the cost of memory misses")
    a = ap.parse_args()
    KEYSPACE = a.keyspace
    configs = CONFIGS
    if a.quick:
        configs = [(l, args, n // 4) for l, args, n in CONFIGS[1:2]]
    tests = DATATYPES if a.preset == "datatypes" else a.tests.split(",")
    if a.configs:
        configs = [CONFIGS[int(i)] for i in a.configs.split(",")]
    print(f"# bench/compare.sh {' '.join(sys.argv[1:])}  (rounds={a.rounds}, "
          f"redis-benchmark -r {KEYSPACE} -d 64; medians)", flush=True)
    if a.durability:
        durability_table(a, configs, tests)
        return
    results = measure([("redis", []), ("warp", a.warp_args.split())], a.rounds, configs, tests)
    print()
    print("| config | test | Redis ops/s | WarpEngine ops/s | ratio | Redis CPU-s/M req | WarpEngine CPU-s/M req | CPU ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for label, _, _ in configs:
        for test in tests:
            r = results[("redis", label, test)]
            w = results[("warp", label, test)]
            r_ops = statistics.median(x[0] for x in r)
            w_ops = statistics.median(x[0] for x in w)
            r_cpu = statistics.median(x[1] for x in r)
            w_cpu = statistics.median(x[1] for x in w)
            print(f"| {label} | {test.upper()} | {r_ops:,.0f} | {w_ops:,.0f} | {w_ops / r_ops:.2f}x | "
                  f"{r_cpu:.2f} | {w_cpu:.2f} | {w_cpu / r_cpu:.2f}x |")


def durability_table(a, configs, tests):
    """The same tests with each server logging under the same appendfsync setting."""
    modes = a.durability.split(",")
    rows = {}
    for mode in modes:
        log = [] if mode == "no-log" else ["--appendonly", "yes", "--appendfsync", mode]
        results = measure([("redis", log), ("warp", a.warp_args.split() + log)], a.rounds,
                          configs, tests)
        for key, runs in results.items():
            rows[(mode,) + key] = runs
    print()
    print("| appendfsync | config | test | Redis ops/s | WarpEngine ops/s | ratio | "
          "Redis CPU-s/M req | WarpEngine CPU-s/M req | WarpEngine vs its own no-log |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    med = lambda runs, i: statistics.median(x[i] for x in runs)
    for mode in modes:
        for label, _, _ in configs:
            for test in tests:
                r = rows[(mode, "redis", label, test)]
                w = rows[(mode, "warp", label, test)]
                base = rows.get(("no-log", "warp", label, test))
                own = f"{med(w, 0) / med(base, 0):.2f}x" if base else "-"
                print(f"| {mode} | {label} | {test.upper()} | {med(r, 0):,.0f} | {med(w, 0):,.0f} | "
                      f"{med(w, 0) / med(r, 0):.2f}x | {med(r, 1):.2f} | {med(w, 1):.2f} | {own} |")


if __name__ == "__main__":
    main()
