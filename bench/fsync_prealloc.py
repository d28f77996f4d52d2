#!/usr/bin/env python3
"""fdatasync latency after an append that grows a file, against after an overwrite of bytes
already on disk (a pre-zeroed file), with one file and with two files synced at once by two
threads: what made the log writer lay down zeros ahead of its records (BENCHMARKS.md).

  bench/fsync_prealloc.py [--syncs N] [--dir DIR]     (DIR: on the disk to measure; default: a temp dir)
"""
import argparse
import os
import statistics
import tempfile
import threading
import time

RECORD = b"x" * 300


def run(path, prealloc, syncs, out=None):
    """Median fdatasync time in µs over `syncs` 300-byte records."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        if prealloc:
            os.write(fd, b"\0" * (syncs * len(RECORD) + 4096))
            os.fdatasync(fd)
        lat = []
        for i in range(syncs):
            os.pwrite(fd, RECORD, i * len(RECORD))
            t = time.perf_counter()
            os.fdatasync(fd)
            lat.append(time.perf_counter() - t)
    finally:
        os.close(fd)
    median = statistics.median(lat) * 1e6
    if out is not None:
        out.append(median)
    return median


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--syncs", type=int, default=2000)
    p.add_argument("--dir", default=None)
    a = p.parse_args()
    with tempfile.TemporaryDirectory(dir=a.dir) as d:
        for prealloc, label in [(False, "growing file"), (True, "pre-zeroed file")]:
            one = run(os.path.join(d, "one"), prealloc, a.syncs)
            medians = []
            threads = [threading.Thread(target=run, args=(os.path.join(d, f"two{k}"), prealloc,
                                                          a.syncs, medians)) for k in (1, 2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            print(f"{label:16} one file: {one:6.0f} µs median; two at once: "
                  f"{' and '.join(f'{m:.0f}' for m in medians)} µs")


if __name__ == "__main__":
    main()
