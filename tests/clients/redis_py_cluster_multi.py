"""redis-py's RedisCluster against a multi-node cluster (tests/tests/cluster_multi.rs). Usage:

  redis_py_cluster_multi.py PORT smoke
      the client finds 3 primaries and their replicas; 1,000 keys over every node, pipelines
      across nodes, MGET of a {tag}, mget_nonatomic over slots, CROSSSLOT, a read from a replica
  redis_py_cluster_multi.py PORT write PREFIX N
      SETs PREFIX<i> to v<i> for i < N, pipelined (one batch per node per 2,000 keys)
  redis_py_cluster_multi.py PORT read PREFIX N
      reads them back and fails on the first missing or wrong one
  redis_py_cluster_multi.py PORT writer STOPFILE KEYS [FIRST_SLOT LAST_SLOT]
      SETs KEYS keys (w:<i>, those in slots FIRST_SLOT..LAST_SLOT if given) in turn to a
      growing sequence number, one at a time, until STOPFILE exists
      (at most 120 s); prints "started" after its first acknowledged write, then a line
      "report name=value ...": writes acknowledged and failed, when the last failure was (s),
      how many keys were written after it and in the last 2 seconds, the longest time without an
      acknowledged write, and how many keys were lost: whose value is not one
      this writer could have left there (the last acknowledged value, or a later write that
      failed: it may have landed); then the lost keys and the errors seen.

Prints "ok ..." on success; exits non-zero on any failure.
"""

import itertools
import os
import sys
import time

from redis.crc import key_slot
from redis.cluster import LoadBalancingStrategy, RedisCluster
from redis.exceptions import ClusterCrossSlotError, RedisError

BATCH = 2000


def connect(port, **options):
    return RedisCluster(
        host="127.0.0.1",
        port=port,
        socket_timeout=5,
        socket_connect_timeout=2,
        **options,
    )


def write(rc, prefix, n):
    for start in range(0, n, BATCH):
        pipe = rc.pipeline(transaction=False)
        for i in range(start, min(n, start + BATCH)):
            pipe.set(f"{prefix}{i}", f"v{i}")
        replies = pipe.execute()
        assert all(r is True for r in replies), replies[:5]
    print("ok wrote", n)


def read(rc, prefix, n):
    for start in range(0, n, BATCH):
        pipe = rc.pipeline(transaction=False)
        for i in range(start, min(n, start + BATCH)):
            pipe.get(f"{prefix}{i}")
        for i, value in zip(range(start, n), pipe.execute()):
            assert value == f"v{i}".encode(), f"{prefix}{i}: {value!r}"
    print("ok read", n)


def smoke(port):
    rc = connect(port)
    primaries, replicas = rc.get_primaries(), rc.get_replicas()
    assert len(primaries) == 3, primaries
    assert len(replicas) == 3, replicas
    for i in range(1000):
        rc.set(f"smoke:{i}", i)
    owners = {rc.get_node_from_key(f"smoke:{i}").name for i in range(1000)}
    assert owners == {p.name for p in primaries}, owners
    assert all(int(rc.get(f"smoke:{i}")) == i for i in range(1000))
    pipe = rc.pipeline(transaction=False)
    for i in range(1000):
        pipe.incr(f"smoke:{i}")
    assert pipe.execute() == list(range(1, 1001))
    assert rc.mget_nonatomic([f"smoke:{i}" for i in range(10)]) == [
        str(i + 1).encode() for i in range(10)
    ]
    rc.set("{t}a", "1")
    rc.set("{t}b", "2")
    assert rc.mget("{t}a", "{t}b") == [b"1", b"2"]
    try:
        rc.execute_command("MGET", "smoke:1", "smoke:2", target_nodes=primaries[0])
        sys.exit("MGET over two slots: no CROSSSLOT error")
    except ClusterCrossSlotError:
        pass
    assert rc.dbsize(target_nodes=RedisCluster.PRIMARIES) == 1002  # summed over the nodes
    # A read from a replica (READONLY on its connection), once the write reached it.
    key_node = rc.get_node_from_key("{t}a")
    rc.execute_command("WAIT", 1, 2000, target_nodes=key_node)
    reader = connect(port, load_balancing_strategy=LoadBalancingStrategy.RANDOM_REPLICA)
    node = reader.get_node_from_key("{t}a", replica=True)
    assert node.server_type == "replica", node
    assert reader.execute_command("GET", "{t}a", target_nodes=node) == b"1"
    print("ok smoke", len(primaries), "primaries", len(replicas), "replicas")


def writer(port, stopfile, nkeys, slots):
    rc = connect(port)
    names = (f"w:{i}" for i in itertools.count())
    keys = list(itertools.islice((k for k in names if key_slot(k.encode()) in slots), nkeys))
    begin = time.monotonic()
    possible = {}  # key -> the values it may hold
    last_ack = {}  # key -> seconds since begin of its last acknowledged write
    acked = failed = seq = 0
    last_error_s = None
    longest_stall_s = 0.0  # the longest time without an acknowledged write
    previous_ack_s = 0.0
    errors = []
    while not os.path.exists(stopfile) and time.monotonic() - begin < 120:
        key, value = keys[seq % nkeys], str(seq)
        seq += 1
        try:
            rc.set(key, value)
        except RedisError as e:
            failed += 1
            possible.setdefault(key, {None}).add(value.encode())
            last_error_s = time.monotonic() - begin
            if len(errors) < 5 and repr(e) not in errors:
                errors.append(repr(e))
            time.sleep(0.05)
            continue
        acked += 1
        possible[key] = {value.encode()}
        now = time.monotonic() - begin
        if acked > 1:
            longest_stall_s = max(longest_stall_s, now - previous_ack_s)
        previous_ack_s = last_ack[key] = now
        if acked == 1:
            print("started", flush=True)
    stopped_s = time.monotonic() - begin
    lost = []
    for key, values in possible.items():
        for _ in range(100):  # the cluster may still be settling after a failover
            try:
                got = rc.get(key)
                break
            except RedisError:
                time.sleep(0.1)
        else:
            sys.exit(f"cannot read {key} back")
        if got not in values:
            lost.append((key, got and got.decode(), sorted(v.decode() for v in values if v)))
    figures = {
        "acked": acked,
        "failed": failed,
        "last_error_s": "nan" if last_error_s is None else f"{last_error_s:.2f}",
        "keys": nkeys,
        "keys_acked_after_last_error": sum(
            1 for t in last_ack.values() if last_error_s is None or t > last_error_s
        ),
        "keys_acked_in_last_2s": sum(1 for t in last_ack.values() if t > stopped_s - 2),
        "longest_stall_s": f"{longest_stall_s:.2f}",
        "lost_count": len(lost),
        "elapsed_s": f"{stopped_s:.2f}",
    }
    print("report " + " ".join(f"{k}={v}" for k, v in figures.items()))
    print("lost (key, value, could be):", lost[:10])
    print("errors:", errors)


def main():
    port, what = int(sys.argv[1]), sys.argv[2]
    if what == "smoke":
        smoke(port)
    elif what == "write":
        write(connect(port), sys.argv[3], int(sys.argv[4]))
    elif what == "read":
        read(connect(port), sys.argv[3], int(sys.argv[4]))
    elif what == "writer":
        first, last = (int(sys.argv[5]), int(sys.argv[6])) if len(sys.argv) > 5 else (0, 16383)
        writer(port, sys.argv[3], int(sys.argv[4]), range(first, last + 1))
    else:
        sys.exit(f"unknown mode {what}")


main()
