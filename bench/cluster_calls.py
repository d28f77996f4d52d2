"""The calls `redis-cli --cluster reshard` makes, timed one at a time on a 3-primary, 3-replica
cluster whose first node is at BASE (scripts/cluster-local.sh start 6 BASE --replicas 1): a pair
of CLUSTER SETSLOT (IMPORTING then STABLE), CLUSTER GETKEYSINSLOT 10, MIGRATE of 10 keys (COPY
REPLACE into a node importing the slot), each the mean ms over CALLS calls; then how long every
node, replicas included, takes to list a slot's new owner in CLUSTER SLOTS after SETSLOT NODE
on the three primaries (5 slots moved, seconds each).
    python3 bench/cluster_calls.py BASE NAME [CALLS]"""
import sys
import time

import redis

base, name = int(sys.argv[1]), sys.argv[2]
calls = int(sys.argv[3]) if len(sys.argv) > 3 else 300
nodes = [redis.Redis(port=base + i) for i in range(6)]
a, b = nodes[0], nodes[1]
aid = a.execute_command("cluster", "myid").decode()
bid = b.execute_command("cluster", "myid").decode()


def mean_ms(call):
    start = time.time()
    for _ in range(calls):
        call()
    return (time.time() - start) / calls * 1e3


slot = 0  # a's (the first primary's)
setslot = mean_ms(lambda: (b.execute_command("cluster", "setslot", slot, "importing", aid),
                           b.execute_command("cluster", "setslot", slot, "stable")))
getkeys = mean_ms(lambda: a.execute_command("cluster", "getkeysinslot", slot, 10))
b.execute_command("cluster", "setslot", slot, "importing", aid)
keys, i = [], 0
while len(keys) < 10:
    if a.execute_command("cluster", "keyslot", f"x{i}") == slot:
        keys.append(f"x{i}")
    i += 1
for k in keys:
    a.set(k, "v" * 64)
migrate = mean_ms(lambda: a.execute_command(
    "migrate", "127.0.0.1", base + 1, "", 0, 5000, "COPY", "REPLACE", "KEYS", *keys))
b.execute_command("cluster", "setslot", slot, "stable")
print(f"{name} | setslot pair {setslot:.3f} ms | getkeysinslot {getkeys:.3f} ms | "
      f"migrate 10 keys {migrate:.3f} ms")


def owner_port(node, s):
    for r in node.execute_command("cluster", "slots"):
        if r[0] <= s <= r[1]:
            return r[2][1]


seconds = []
for s in range(100, 105):  # empty slots of a's, moved to b
    b.execute_command("cluster", "setslot", s, "importing", aid)
    a.execute_command("cluster", "setslot", s, "migrating", bid)
    start = time.time()
    for n in nodes[:3]:
        n.execute_command("cluster", "setslot", s, "node", bid)
    while not all(owner_port(n, s) == base + 1 for n in nodes):
        if time.time() - start > 30:
            sys.exit(f"slot {s}: not every node lists its new owner after 30 s")
        time.sleep(0.01)
    seconds.append(time.time() - start)
print(f"{name} | new owner known everywhere in " + " ".join(f"{x:.3f}" for x in seconds) + " s")
