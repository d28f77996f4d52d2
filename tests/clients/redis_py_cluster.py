"""redis-py's RedisCluster against a one-node cluster: 1,000 keys written and read back, an
MGET of keys sharing a {tag}, and the CROSSSLOT error for keys that do not; a slot's keys
counted and listed; a script's key outside its slot refused. Usage: redis_py_cluster.py PORT.
Exits non-zero on any failure."""

import sys

from redis.cluster import RedisCluster
from redis.exceptions import ClusterCrossSlotError, ResponseError

rc = RedisCluster(host="127.0.0.1", port=int(sys.argv[1]))
for i in range(1000):
    rc.set(f"key:{i}", i)
assert all(int(rc.get(f"key:{i}")) == i for i in range(1000))
rc.set("{t}a", "1")
rc.set("{t}b", "2")
assert rc.mget("{t}a", "{t}b") == [b"1", b"2"]
assert rc.cluster_keyslot("{t}a") == rc.cluster_keyslot("t")
try:
    rc.execute_command("MGET", "a", "b", target_nodes=RedisCluster.PRIMARIES)
    sys.exit("MGET a b: no CROSSSLOT error")
except ClusterCrossSlotError:
    pass
slot = rc.cluster_keyslot("t")
assert rc.cluster_countkeysinslot(slot) == 2
keys = rc.cluster_get_keys_in_slot(slot, 10)
assert sorted(k.decode() if isinstance(k, bytes) else k for k in keys) == ["{t}a", "{t}b"], keys
try:
    rc.eval("#!lua\nreturn redis.call('get', 'b')", 1, "{t}a")
    sys.exit("a script's key outside its slot: no error")
except ResponseError as e:
    assert "do not hash to the same slot" in str(e), e
print("ok", rc.dbsize())
