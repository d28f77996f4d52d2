"""redis-py against WarpEngine, RESP2 and RESP3: the library's own handshake (HELLO, CLIENT
SETINFO, SELECT, AUTH), strings, expiry, pipelines (transactional, redis-py's default, and not),
WATCH through `transaction()`, error mapping, Lua scripts (register_script, Lock) and functions,
HyperLogLog (PFADD, PFCOUNT, PFMERGE), GEO commands, DUMP and RESTORE, streams and consumer groups
(XREAD's reply is a dict in RESP3), client-output-buffer-limit closing a pipeline's client, ROLE,
REPLCONF and REPLICAOF, GRAVITY REPLICATE.
Usage: python3 redis_py_smoke.py PORT [PASSWORD]"""

import sys

import redis

port = int(sys.argv[1])
password = sys.argv[2] if len(sys.argv) > 2 else None
passed = failed = 0


def check(name, fn):
    global passed, failed
    try:
        fn()
        passed += 1
    except Exception as e:  # report every failure, keep going
        failed += 1
        print(f"FAIL {name}: {e!r}")


for protocol in (2, 3):
    r = redis.Redis(port=port, password=password, protocol=protocol, db=1, decode_responses=True,
                    client_name=f"smoke{protocol}", lib_name="redis-py-smoke", lib_version="1")
    r.flushdb()

    def strings():
        assert r.set("k", "v") is True
        assert r.get("k") == "v"
        assert r.set("k", "w", nx=True) is None
        assert r.set("k", "w", xx=True, get=True) == "v"
        assert r.incrby("n", 5) == 5
        assert r.incrbyfloat("f", 1.5) == 1.5
        assert r.append("k", "!") == 2
        assert r.getrange("k", 0, 0) == "w"
        assert r.mset({"a": "1", "b": "2"}) is True
        assert r.mget(["a", "b", "missing"]) == ["1", "2", None]

    def expiry():
        r.set("t", "x", ex=100)
        assert 99 <= r.ttl("t") <= 100
        assert r.persist("t") is True
        assert r.ttl("t") == -1
        assert r.expire("t", 50, nx=True) is True

    def keyspace():
        assert r.exists("a", "b", "zz") == 2
        assert r.type("a") == "string"
        assert r.rename("a", "a2") is True
        assert sorted(r.keys("a*")) == ["a2"]
        assert set(r.scan_iter(match="*")) >= {"a2", "b", "k"}
        assert r.dbsize() >= 3
        assert r.delete("a2", "b") == 2

    def pipeline():
        p = r.pipeline(transaction=False)
        for i in range(100):
            p.set(f"p{i}", i)
            p.get(f"p{i}")
        out = p.execute()
        assert out[1] == "0" and out[-1] == "99"

    def transactions():
        # redis-py's default pipeline wraps the commands in MULTI/EXEC.
        p = r.pipeline()
        p.set("tx", 1).incr("tx").get("tx")
        assert p.execute() == [True, 2, "2"]
        # An error inside EXEC is that command's result; the others run.
        p = r.pipeline()
        p.set("txs", "text").incr("txs").get("txs")
        out = p.execute(raise_on_error=False)
        assert out[0] is True and isinstance(out[1], redis.ResponseError) and out[2] == "text"
        # An error while queuing aborts the whole transaction.
        p = r.pipeline()
        p.set("txa", 1).execute_command("NOSUCHCOMMAND")
        try:
            p.execute()
            raise AssertionError("no error")
        except redis.ResponseError as e:
            assert "EXECABORT" in str(e) or "unknown command" in str(e), e
        assert r.get("txa") is None
        # WATCH: redis-py retries the function when another client changed the key.
        other = redis.Redis(port=port, password=password, protocol=protocol, db=1,
                            decode_responses=True)
        r.set("wx", 0)
        calls = []

        def bump(pipe):
            v = int(pipe.get("wx"))
            if not calls:
                other.incr("wx")  # a concurrent change: the first EXEC must fail
            calls.append(v)
            pipe.multi()
            pipe.set("wx", v + 10)
        r.transaction(bump, "wx")
        assert calls == [0, 1], calls
        assert r.get("wx") == "11"
        other.close()

    def errors():
        r.set("s", "text")
        try:
            r.incr("s")
            raise AssertionError("no error")
        except redis.ResponseError as e:
            assert "not an integer" in str(e)

    def dump_restore():
        r.delete("py:d1", "py:d2")
        r.rpush("py:d1", "a", "b", 3)
        payload = r.dump("py:d1")
        assert isinstance(payload, bytes) and payload[0] == 18, payload
        assert r.restore("py:d2", 0, payload) in (True, "OK")
        assert r.lrange("py:d2", 0, -1) == ["a", "b", "3"]
        try:
            r.restore("py:d2", 0, payload)
            raise AssertionError("RESTORE over a present key did not fail")
        except redis.ResponseError as e:
            assert "BUSYKEY" in str(e), e
        assert r.restore("py:d2", 5000, payload, replace=True) in (True, "OK")
        assert 0 < r.pttl("py:d2") <= 5000
        # A stream with a group, a consumer and a pending entry.
        r.delete("py:x1", "py:x2")
        r.xadd("py:x1", {"f": "v"}, id="1-1")
        r.xgroup_create("py:x1", "g", id="0")
        r.xreadgroup("g", "alice", {"py:x1": ">"})
        payload = r.dump("py:x1")
        assert payload[0] == 19, payload
        assert r.restore("py:x2", 0, payload) in (True, "OK")
        assert r.xrange("py:x2") == [("1-1", {"f": "v"})]
        assert r.xpending("py:x2", "g")["consumers"] == [{"name": "alice", "pending": 1}]

    def server():
        info = r.info()
        assert info["redis_version"].startswith("7.")
        assert r.client_getname() == f"smoke{protocol}"
        assert r.config_get("maxmemory") == {"maxmemory": "0"}
        assert r.ping() is True
        assert r.echo("hi") == "hi"

    def operability():
        assert r.config_set("hash-max-ziplist-entries", 9) is True
        assert r.config_get("hash-max-listpack-entries") == {"hash-max-listpack-entries": "9"}
        r.config_set("hash-max-listpack-entries", 512)
        r.config_set("slowlog-log-slower-than", 0)
        r.get("slow")
        entries = r.slowlog_get(2)
        command = lambda e: e["command"].decode() if isinstance(e["command"], bytes) else e["command"]
        assert any(command(e).startswith("GET slow") for e in entries), entries
        assert r.slowlog_len() >= 1
        assert r.slowlog_reset() is True
        r.config_set("slowlog-log-slower-than", 10000)
        assert "latency_percentiles_usec_get" in r.info("latencystats")

    def scripting():
        r.delete("py:s1", "py:s2")
        add = r.register_script(
            "redis.call('incrby', KEYS[1], ARGV[1]) redis.call('incrby', KEYS[2], ARGV[1]) "
            "return {tonumber(redis.call('get', KEYS[1])), redis.call('get', KEYS[2])}")
        assert add(keys=["py:s1", "py:s2"], args=[4]) == [4, "4"]
        assert add(keys=["py:s1", "py:s2"], args=[1]) == [5, "5"]
        assert r.eval("return redis.call('get', KEYS[1])", 1, "py:s1") == "5"
        assert r.script_exists(add.sha) == [True]
        # redis-py's Lock runs its own Lua scripts to extend and release.
        lock = r.lock("py:lock", timeout=5)
        assert lock.acquire(blocking=False)
        assert lock.extend(5)
        assert lock.locked()
        lock.release()
        assert not lock.locked()
        try:
            r.eval("return redis.call('nosuch')", 0)
            raise AssertionError("an unknown command inside a script did not fail")
        except redis.exceptions.ResponseError as e:
            assert "Unknown Redis command called from script" in str(e), e
        assert r.script_flush() is True
        assert r.script_exists(add.sha) == [False]
        # The script object reloads itself after a flush (NOSCRIPT, then EVAL).
        assert add(keys=["py:s1", "py:s2"], args=[1]) == [6, "6"]
        lib = ("#!lua name=pylib\n"
               "redis.register_function('py_bump', function(keys, args) return redis.call('incrby', keys[1], args[1]) end)")
        assert r.function_load(lib, replace=True) == "pylib"
        assert r.fcall("py_bump", 1, "py:s1", 4) == 10
        assert "pylib" in str(r.function_list())

    def hyperloglog():
        r.delete("py:h1", "py:h2", "py:hm")
        assert r.pfadd("py:h1", "a", "b", "c") == 1
        assert r.pfadd("py:h1", "a") == 0
        assert r.pfadd("py:h2", "c", "d") == 1
        assert r.pfcount("py:h1") == 3
        assert r.pfcount("py:h1", "py:h2") == 4
        assert r.pfmerge("py:hm", "py:h1", "py:h2") is True
        assert r.pfcount("py:hm") == 4
        assert r.getrange("py:hm", 0, 3) == "HYLL"
        r.set("py:hs", "text")
        try:
            r.pfcount("py:hs")
            raise AssertionError("PFCOUNT of a plain string did not fail")
        except redis.exceptions.ResponseError as e:
            assert "not a valid HyperLogLog" in str(e), e

    def geo():
        assert r.geoadd("py:geo", [13.361389, 38.115556, "Palermo", 15.087269, 37.502669, "Catania"]) == 2
        assert r.geoadd("py:geo", [13.4, 38.1, "Palermo"], xx=True, ch=True) == 1
        assert r.geodist("py:geo", "Palermo", "Catania", unit="km") == 162.4846
        (lon, lat), missing = r.geopos("py:geo", "Catania", "nosuch")
        assert (round(lon, 6), round(lat, 6), missing) == (15.087267, 37.502668, None)
        assert r.geohash("py:geo", "Catania") == ["sqdtr74hyu0"]
        near = r.geosearch("py:geo", longitude=15, latitude=37, radius=200, unit="km", sort="ASC",
                           withdist=True, withcoord=True, withhash=True)
        assert [m[0] for m in near] == ["Catania", "Palermo"] and near[0][1] == 56.4413, near
        assert near[0][2] == 3479447370796909, near
        assert r.georadius("py:geo", 15, 37, 100, unit="km") == ["Catania"]
        assert r.georadiusbymember("py:geo", "Palermo", 300, unit="km", count=1, sort="DESC") == ["Catania"]
        assert r.geosearchstore("py:geo2", "py:geo", member="Palermo", width=400, height=400, unit="km",
                                storedist=True) == 2
        assert r.zscore("py:geo2", "Palermo") == 0.0
        try:
            r.geoadd("py:geo", [200, 100, "bad"])
            raise AssertionError("an invalid position was accepted")
        except redis.exceptions.ResponseError as e:
            assert "invalid longitude,latitude pair 200.000000,100.000000" in str(e), e

    def streams():
        r.delete("py:st")
        first = r.xadd("py:st", {"f": "1"}, id="1-1")
        assert first == "1-1", first
        r.xadd("py:st", {"f": "2", "g": "x"}, maxlen=10, approximate=False)
        entries = r.xrange("py:st")
        assert [e[1] for e in entries] == [{"f": "1"}, {"f": "2", "g": "x"}], entries
        assert r.xlen("py:st") == 2
        read = r.xread({"py:st": "0"}, count=1)
        # RESP2: [[name, entries]]; RESP3: {name: [entries]} (redis-py keeps the server's shape).
        if protocol == 3:
            assert read == {"py:st": [[("1-1", {"f": "1"})]]}, read
        else:
            assert read == [["py:st", [("1-1", {"f": "1"})]]], read
        assert r.xread({"py:st": "$"}, block=50) in (None, {}, []), "a timeout"
        assert r.xgroup_create("py:st", "grp", id="0") is True
        got = r.xreadgroup("grp", "alice", {"py:st": ">"}, count=1)
        ids = [e[0] for e in (got["py:st"][0] if protocol == 3 else got[0][1])]
        assert ids == ["1-1"], got
        assert r.xpending("py:st", "grp")["pending"] == 1
        assert r.xack("py:st", "grp", "1-1") == 1
        r.xreadgroup("grp", "bob", {"py:st": ">"})
        claimed = r.xautoclaim("py:st", "grp", "carol", min_idle_time=0, start_id="0-0", justid=True)
        # (redis-py keeps only the claimed IDs of a JUSTID reply.)
        assert len(claimed) == 1, claimed
        info = r.xinfo_stream("py:st")
        assert info["length"] == 2 and info["groups"] == 1, info
        assert r.xinfo_groups("py:st")[0]["pending"] == 1
        assert [c["name"] for c in r.xinfo_consumers("py:st", "grp")] == ["alice", "bob", "carol"]
        assert r.xtrim("py:st", maxlen=0) == 2
        assert r.type("py:st") == "stream"

    def client_limits():
        r.set("py:big", "x" * (1 << 20))
        r.config_set("client-output-buffer-limit", "normal 4mb 0 0")
        greedy = redis.Redis(port=port, password=password, protocol=protocol, db=1)
        pipe = greedy.pipeline(transaction=False)
        for _ in range(16):
            pipe.get("py:big")
        try:
            pipe.execute()
            raise AssertionError("16 MB of replies passed a 4 MB output limit")
        except redis.exceptions.ConnectionError:
            pass
        finally:
            r.config_set("client-output-buffer-limit", "normal 0 0 0")
        assert r.strlen("py:big") == 1 << 20
        assert r.client_no_evict("on") == "OK"

    def acl():
        r.execute_command("ACL", "SETUSER", "py_acl", "reset", "on", ">pw", "+get", "+set", "+acl|whoami", "~py:acl:*")
        info = r.acl_getuser("py_acl")
        assert info["enabled"] is True, info
        assert "~py:acl:*" in str(info["keys"]), info
        u = redis.Redis(port=port, username="py_acl", password="pw", protocol=protocol, db=0, decode_responses=True)
        assert u.acl_whoami() == "py_acl"
        assert u.set("py:acl:k", "v") is True
        assert u.get("py:acl:k") == "v"
        try:
            u.get("py:other")
            raise AssertionError("a key outside the user's patterns was read")
        except redis.exceptions.NoPermissionError as e:
            assert "no permissions to access one of the keys" in str(e), e
        try:
            redis.Redis(port=port, username="py_acl", password="wrong", protocol=protocol).ping()
            raise AssertionError("a wrong password was accepted")
        except redis.exceptions.AuthenticationError as e:
            assert "WRONGPASS" in str(e) or "invalid username-password" in str(e), e
        u.close()
        assert r.acl_deluser("py_acl") == 1

    def replication():
        # A primary without replicas; REPLCONF as a replica's handshake sends it.
        assert r.role() == ["master", 0, []], r.role()
        assert r.wait(0, 100) == 0 and r.wait(1, 50) == 0
        assert r.execute_command("REPLCONF", "listening-port", 6380, "capa", "eof") in (True, "OK")
        try:
            r.execute_command("REPLCONF", "nosuch", "x")
            raise AssertionError("no error")
        except redis.ResponseError as e:
            assert str(e) == "Unrecognized REPLCONF option: nosuch", e
        # A replica of a primary that is not there (port 1): ROLE, READONLY, then a primary again.
        assert r.execute_command("REPLICAOF", "127.0.0.1", 1) in (True, "OK")
        role = r.role()
        assert [role[0], role[1], role[2], role[4]] == ["slave", "127.0.0.1", 1, -1], role
        assert r.info("replication")["role"] == "slave"
        try:
            r.set("py:ro", "v")
            raise AssertionError("a replica took a write")
        except redis.exceptions.ReadOnlyError as e:
            assert "read only replica" in str(e), e
        assert r.execute_command("REPLICAOF", "NO", "ONE") in (True, "OK")
        # FAILOVER needs a replica to hand over to.
        try:
            r.execute_command("FAILOVER", "TIMEOUT", 100)
            raise AssertionError("no error")
        except redis.ResponseError as e:
            assert str(e) == "FAILOVER requires connected replicas.", e
        assert r.info("replication")["master_failover_state"] == "no-failover"

    def cluster():
        # Not started as a cluster node: CLUSTER is refused as Redis refuses it (a one-node cluster
        # is driven by tests/clients/redis_py_cluster.py).
        assert r.info("cluster")["cluster_enabled"] == 0
        try:
            r.execute_command("CLUSTER", "INFO")
            raise AssertionError("no error")
        except redis.ResponseError as e:
            assert str(e) == "This instance has cluster support disabled", e

    def gravity():
        # GRAVITY REPLICATE (WarpEngine's own): the key is read from copies, writes reach them.
        r.set("g:hot", "v1")
        assert r.execute_command("GRAVITY", "REPLICATE", "g:hot") == 1
        assert r.get("g:hot") == "v1"
        r.set("g:hot", "v2")
        assert r.get("g:hot") == "v2"
        rows = r.execute_command("GRAVITY", "LIST")
        assert [row[1:3] for row in rows] == [["g:hot", "manual"]], rows
        assert r.execute_command("GRAVITY", "UNREPLICATE", "g:hot") == 1
        assert r.execute_command("GRAVITY", "LIST") == []

    for name, fn in [("gravity", gravity), ("scripting", scripting), ("geo", geo), ("streams", streams), ("strings", strings), ("expiry", expiry),
                     ("keyspace", keyspace), ("pipeline", pipeline), ("transactions", transactions), ("errors", errors),
                     ("dump", dump_restore), ("server", server), ("operability", operability), ("hyperloglog", hyperloglog),
                     ("client-limits", client_limits), ("acl", acl), ("replication", replication),
                     ("cluster", cluster)]:
        check(f"resp{protocol}-{name}", fn)

print(f"redis-py: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
