"""redis-py's RedisCluster against a one-node cluster: 1,000 keys written and read back, an
MGET of keys sharing a {tag}, and the CROSSSLOT error for keys that do not. Usage:
redis_py_cluster.py PORT. Exits non-zero on any failure."""

import sys

from redis.cluster import RedisCluster
from redis.exceptions import ClusterCrossSlotError

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
print("ok", rc.dbsize())
