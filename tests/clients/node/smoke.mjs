// WarpEngine against Node's Redis clients, ioredis and node-redis: strings, pipelines, errors,
// transactions (MULTI/EXEC, WATCH), Pub/Sub (channels and patterns), keyspace notifications and
// client-side caching invalidations (CLIENT TRACKING ... REDIRECT), Lua scripts (EVAL, EVALSHA,
// SCRIPT) and functions (FUNCTION LOAD, FCALL), HyperLogLog (PFADD, PFCOUNT, PFMERGE), GEO
// commands, DUMP and RESTORE, streams and consumer groups (with a blocking XREAD woken by another
// connection's XADD), ROLE, REPLCONF and REPLICAOF, GRAVITY REPLICATE, each library's own way.
// Usage: node smoke.mjs PORT (after `npm install` in this folder).
import Redis from "ioredis";
import { createClient, commandOptions } from "redis";
import { assertEqual, assertRejects, check, report } from "./checks.mjs";

const port = Number(process.argv[2]);

/** Resolves with the first `count` messages `subscribe` delivers, or fails after 5 s. */
// A connection that has finished ioredis's connect handshake (its ready check, an INFO): a
// SUBSCRIBE queued before then can reach the server first, and the ready check then fails in
// subscribed mode and ioredis reconnects without the subscription (seen against redis-server too).
async function ready(port) {
  const c = new Redis({ port, lazyConnect: true });
  await c.connect();
  return c;
}

function collect(count, subscribe) {
  return new Promise((resolve, reject) => {
    const got = [];
    const timer = setTimeout(() => reject(new Error(`only ${JSON.stringify(got)}`)), 5000);
    subscribe((m) => {
      got.push(m);
      if (got.length === count) {
        clearTimeout(timer);
        resolve(got);
      }
    });
  });
}

// ioredis
{
  const r = new Redis({ port, lazyConnect: true });
  await r.connect();
  await r.flushdb();
  await check("ioredis-strings", async () => {
    assertEqual(await r.set("k", "v"), "OK", "SET");
    assertEqual(await r.get("k"), "v", "GET");
    assertEqual(await r.incrby("n", 5), 5, "INCRBY");
    assertEqual(await r.mget("k", "missing"), ["v", null], "MGET");
  });
  await check("ioredis-pipeline", async () => {
    const out = await r.pipeline().set("p", "1").get("p").exec();
    assertEqual(out, [[null, "OK"], [null, "1"]], "pipeline");
  });
  await check("ioredis-errors", async () => {
    await r.set("s", "text");
    let err = null;
    await r.incr("s").catch((e) => (err = e));
    if (!err || !/not an integer/.test(err.message)) throw new Error(`no error: ${err}`);
  });
  await check("ioredis-multi", async () => {
    const out = await r.multi().set("t", "1").incr("t").get("t").exec();
    assertEqual(out, [[null, "OK"], [null, 2], [null, "2"]], "EXEC");
  });
  await check("ioredis-watch", async () => {
    const other = await ready(port);
    await r.set("w", "0");
    await r.watch("w");
    await other.set("w", "changed");
    const out = await r.multi().set("w", "mine").exec();
    assertEqual(out, null, "EXEC after a watched key changed");
    assertEqual(await r.get("w"), "changed", "value");
    other.disconnect();
  });
  await check("ioredis-pubsub", async () => {
    const sub = await ready(port);
    const pub = await ready(port);
    const messages = collect(2, (push) => {
      sub.on("message", (ch, msg) => push(["message", ch, msg]));
      sub.on("pmessage", (pat, ch, msg) => push(["pmessage", pat, ch, msg]));
    });
    await sub.subscribe("news");
    await sub.psubscribe("spo*");
    assertEqual(await pub.publish("news", "one"), 1, "PUBLISH news");
    assertEqual(await pub.publish("sport", "two"), 1, "PUBLISH sport");
    assertEqual(
      await messages,
      [["message", "news", "one"], ["pmessage", "spo*", "sport", "two"]],
      "messages",
    );
    sub.disconnect();
    pub.disconnect();
  });
  await check("ioredis-keyspace-events", async () => {
    const sub = await ready(port);
    const events = collect(2, (push) => {
      sub.on("pmessage", (pat, ch, msg) => push([ch, msg]));
    });
    await r.config("SET", "notify-keyspace-events", "KEg$");
    await sub.psubscribe("__key*@0__:ksn");
    await r.set("ksn", "1");
    await r.del("ksn");
    assertEqual(await events, [["__keyspace@0__:ksn", "set"], ["__keyspace@0__:ksn", "del"]], "events");
    await r.config("SET", "notify-keyspace-events", "");
    sub.disconnect();
  });
  await check("ioredis-tracking", async () => {
    const sub = await ready(port);
    const other = await ready(port);
    const id = await sub.client("ID");
    const invalidations = collect(1, (push) => {
      sub.on("message", (ch, msg) => push([ch, msg]));
    });
    await sub.subscribe("__redis__:invalidate");
    assertEqual(await r.client("TRACKING", "ON", "REDIRECT", id), "OK", "TRACKING ON");
    await r.get("cached");
    await other.set("cached", "new");
    assertEqual(await invalidations, [["__redis__:invalidate", "cached"]], "invalidation");
    assertEqual(await r.client("TRACKING", "OFF"), "OK", "TRACKING OFF");
    sub.disconnect();
    other.disconnect();
  });
  await check("ioredis-operability", async () => {
    assertEqual(await r.config("SET", "hash-max-ziplist-entries", "9"), "OK", "CONFIG SET alias");
    assertEqual(await r.config("GET", "hash-max-listpack-entries"), ["hash-max-listpack-entries", "9"], "GET");
    await r.config("SET", "hash-max-listpack-entries", "512");
    await r.config("SET", "slowlog-log-slower-than", "0");
    await r.set("slow", "1");
    const log = await r.slowlog("GET", "2");
    if (!log.some((e) => e[3][0] === "set")) throw new Error(`no SET in ${JSON.stringify(log)}`);
    assertEqual(await r.slowlog("RESET"), "OK", "SLOWLOG RESET");
    await r.config("SET", "slowlog-log-slower-than", "10000");
    assertEqual(await r.call("LATENCY", "RESET"), 0, "LATENCY RESET");
  });
  await check("ioredis-geo", async () => {
    await r.del("io:geo", "io:geo2");
    assertEqual(await r.geoadd("io:geo", 13.361389, 38.115556, "Palermo", 15.087269, 37.502669, "Catania"), 2, "GEOADD");
    assertEqual(await r.geodist("io:geo", "Palermo", "Catania", "km"), "166.2742", "GEODIST");
    assertEqual(await r.geopos("io:geo", "Catania", "nosuch"), [["15.08726745843887329", "37.50266842333162032"], null], "GEOPOS");
    assertEqual(await r.geohash("io:geo", "Palermo"), ["sqc8b49rny0"], "GEOHASH");
    const near = await r.geosearch("io:geo", "FROMLONLAT", 15, 37, "BYRADIUS", 200, "km", "ASC", "WITHDIST");
    assertEqual(near, [["Catania", "56.4413"], ["Palermo", "190.4424"]], "GEOSEARCH");
    assertEqual(await r.georadius("io:geo", 15, 37, 200, "km", "STORE", "io:geo2"), 2, "GEORADIUS STORE");
    assertEqual(await r.zrange("io:geo2", 0, -1), ["Palermo", "Catania"], "stored");
    await assertRejects(() => r.geoadd("io:geo", 200, 100, "bad"), /invalid longitude,latitude pair/, "invalid position");
  });
  await check("ioredis-scripting", async () => {
    // defineCommand runs EVALSHA and falls back to EVAL on NOSCRIPT, as ioredis users do.
    r.defineCommand("addAndGet", {
      numberOfKeys: 2,
      lua: "redis.call('incrby', KEYS[1], ARGV[1]); redis.call('incrby', KEYS[2], ARGV[1]); return {redis.call('get', KEYS[1]), tonumber(redis.call('get', KEYS[2]))}",
    });
    await r.del("io:s1", "io:s2");
    assertEqual(await r.addAndGet("io:s1", "io:s2", 5), ["5", 5], "first call (EVAL fallback)");
    assertEqual(await r.addAndGet("io:s1", "io:s2", 2), ["7", 7], "EVALSHA");
    assertEqual(await r.eval("return cjson.encode({a=ARGV[1]})", 0, "x"), '{"a":"x"}', "cjson");
    await r.set("io:str", "text");
    await assertRejects(() => r.eval("return redis.call('incr', KEYS[1])", 1, "io:str"), /not an integer/, "error reply");
    const sha = await r.script("LOAD", "return ARGV[1]");
    assertEqual(await r.script("EXISTS", sha), [1], "SCRIPT EXISTS");
    assertEqual(await r.evalsha(sha, 0, "y"), "y", "EVALSHA");
    const lib = "#!lua name=iolib\nredis.register_function('io_echo', function(keys, args) return {keys[1], args[1]} end)";
    assertEqual(await r.function("LOAD", "REPLACE", lib), "iolib", "FUNCTION LOAD");
    assertEqual(await r.fcall("io_echo", 1, "k", "a"), ["k", "a"], "FCALL");
  });
  await check("ioredis-acl", async () => {
    assertEqual(await r.acl("SETUSER", "io_acl", "reset", "on", ">pw", "+get", "+set", "+acl|whoami", "~io:acl:*"), "OK", "ACL SETUSER");
    const u = new Redis({ port, username: "io_acl", password: "pw", enableReadyCheck: false });
    assertEqual(await u.acl("WHOAMI"), "io_acl", "AUTH with a username");
    assertEqual(await u.set("io:acl:k", "v"), "OK", "own key");
    await assertRejects(() => u.get("io:other"), /NOPERM/, "other key");
    u.disconnect();
    assertEqual(await r.acl("DELUSER", "io_acl"), 1, "ACL DELUSER");
  });
  await check("ioredis-hyperloglog", async () => {
    await r.del("io:h1", "io:h2", "io:hm");
    assertEqual(await r.pfadd("io:h1", "a", "b", "c"), 1, "PFADD");
    assertEqual(await r.pfadd("io:h1", "a"), 0, "PFADD again");
    assertEqual(await r.pfadd("io:h2", "c", "d"), 1, "PFADD h2");
    assertEqual(await r.pfcount("io:h1"), 3, "PFCOUNT");
    assertEqual(await r.pfcount("io:h1", "io:h2"), 4, "PFCOUNT union");
    assertEqual(await r.pfmerge("io:hm", "io:h1", "io:h2"), "OK", "PFMERGE");
    assertEqual(await r.pfcount("io:hm"), 4, "PFCOUNT merged");
    const raw = await r.getBuffer("io:hm");
    assertEqual(raw.subarray(0, 4).toString(), "HYLL", "the bytes of an HLL");
    await r.set("io:hs", "text");
    await assertRejects(() => r.pfcount("io:hs"), /not a valid HyperLogLog/, "PFCOUNT of a plain string");
  });
  await check("ioredis-dump-restore", async () => {
    await r.del("io:d1", "io:d2");
    await r.hset("io:d1", "f", "v", "n", "1");
    const payload = await r.dumpBuffer("io:d1");
    assertEqual(payload[0], 16, "listpack hash type byte");
    assertEqual(await r.restore("io:d2", 0, payload), "OK", "RESTORE");
    assertEqual(await r.hgetall("io:d2"), { f: "v", n: "1" }, "restored hash");
    await assertRejects(() => r.restore("io:d2", 0, payload), /BUSYKEY/, "RESTORE over a present key");
    assertEqual(await r.restore("io:d2", 0, payload, "REPLACE"), "OK", "RESTORE REPLACE");
    await r.del("io:x1", "io:x2");
    await r.xadd("io:x1", "1-1", "f", "v");
    await r.xgroup("CREATE", "io:x1", "g", "0");
    await r.xreadgroup("GROUP", "g", "alice", "STREAMS", "io:x1", ">");
    const stream = await r.dumpBuffer("io:x1");
    assertEqual(stream[0], 19, "stream type byte");
    assertEqual(await r.restore("io:x2", 0, stream), "OK", "RESTORE of a stream");
    assertEqual(await r.xpending("io:x2", "g"), [1, "1-1", "1-1", [["alice", "1"]]], "restored group");
  });
  await check("ioredis-streams", async () => {
    await r.del("io:st");
    assertEqual(await r.xadd("io:st", "1-1", "f", "1"), "1-1", "XADD");
    assertEqual(await r.xadd("io:st", "MAXLEN", "=", "10", "2-1", "f", "2"), "2-1", "XADD MAXLEN");
    assertEqual(await r.xrange("io:st", "-", "+", "COUNT", 1), [["1-1", ["f", "1"]]], "XRANGE");
    assertEqual(await r.xrevrange("io:st", "+", "-", "COUNT", 1), [["2-1", ["f", "2"]]], "XREVRANGE");
    // A blocking XREAD on its own connection, woken by an XADD from this one.
    const reader = new Redis({ port, lazyConnect: false });
    const pending = reader.xread("BLOCK", 5000, "STREAMS", "io:st", "$");
    await new Promise((resolve) => setTimeout(resolve, 100));
    await r.xadd("io:st", "3-1", "f", "3");
    assertEqual(await pending, [["io:st", [["3-1", ["f", "3"]]]]], "XREAD BLOCK");
    reader.disconnect();
    assertEqual(await r.xgroup("CREATE", "io:st", "grp", "0"), "OK", "XGROUP CREATE");
    const got = await r.xreadgroup("GROUP", "grp", "alice", "COUNT", 2, "STREAMS", "io:st", ">");
    assertEqual(got[0][1].map((e) => e[0]), ["1-1", "2-1"], "XREADGROUP");
    assertEqual(await r.xack("io:st", "grp", "1-1"), 1, "XACK");
    assertEqual(await r.xpending("io:st", "grp"), [1, "2-1", "2-1", [["alice", "1"]]], "XPENDING");
    assertEqual(await r.xclaim("io:st", "grp", "bob", 0, "2-1", "JUSTID"), ["2-1"], "XCLAIM");
    assertEqual(await r.xlen("io:st"), 3, "XLEN");
    assertEqual(await r.type("io:st"), "stream", "TYPE");
  });
  await check("ioredis-gravity", async () => {
    await r.set("io:hot", "v1");
    assertEqual(await r.call("GRAVITY", "REPLICATE", "io:hot"), 1, "REPLICATE");
    assertEqual(await r.get("io:hot"), "v1", "GET");
    await r.set("io:hot", "v2");
    assertEqual(await r.get("io:hot"), "v2", "GET after SET");
    const rows = await r.call("GRAVITY", "LIST");
    assertEqual(rows.map((row) => row.slice(1, 3)), [["io:hot", "manual"]], "LIST");
    assertEqual(await r.call("GRAVITY", "UNREPLICATE", "io:hot"), 1, "UNREPLICATE");
  });
  await check("ioredis-replication", async () => {
    assertEqual(await r.role(), ["master", 0, []], "ROLE");
    assertEqual(await r.wait(1, 50), 0, "WAIT");
    assertEqual(await r.call("REPLCONF", "listening-port", "6380", "capa", "psync2"), "OK", "REPLCONF");
    await assertRejects(() => r.call("REPLCONF", "nosuch", "x"), /Unrecognized REPLCONF option: nosuch/, "REPLCONF nosuch");
    // A replica of a primary that is not there (port 1): ROLE, READONLY, then a primary again.
    assertEqual(await r.call("REPLICAOF", "127.0.0.1", "1"), "OK", "REPLICAOF");
    const role = await r.role();
    assertEqual([role[0], role[1], role[2], role[4]], ["slave", "127.0.0.1", 1, -1], "ROLE of a replica");
    await assertRejects(() => r.set("io:ro", "v"), /READONLY You can't write against a read only replica/, "SET");
    await assertRejects(() => r.wait(0, 0), /WAIT cannot be used with replica instances/, "WAIT on a replica");
    assertEqual(await r.call("REPLICAOF", "NO", "ONE"), "OK", "REPLICAOF NO ONE");
    await assertRejects(() => r.call("FAILOVER"), /FAILOVER requires connected replicas/, "FAILOVER");
  });
  await check("ioredis-cluster", async () => {
    // Not started as a cluster node: CLUSTER is refused as Redis refuses it.
    await assertRejects(() => r.cluster("INFO"), /This instance has cluster support disabled/, "CLUSTER INFO");
  });
  r.disconnect();
}

// node-redis
{
  const client = createClient({ socket: { port } });
  await client.connect();
  await check("node-redis-strings", async () => {
    assertEqual(await client.set("nk", "v"), "OK", "SET");
    assertEqual(await client.get("nk"), "v", "GET");
    assertEqual(await client.incrBy("nn", 3), 3, "INCRBY");
  });
  await check("node-redis-multi", async () => {
    const out = await client.multi().set("nt", "1").incr("nt").get("nt").exec();
    assertEqual(out, ["OK", 2, "2"], "EXEC");
  });
  await check("node-redis-watch", async () => {
    const other = client.duplicate();
    await other.connect();
    await client.set("nw", "0");
    await client.watch("nw");
    await other.set("nw", "changed");
    let err = null;
    await client
      .multi()
      .set("nw", "mine")
      .exec()
      .catch((e) => (err = e));
    if (!err || !/watched keys has been changed/.test(err.message)) throw new Error(`no WatchError: ${err}`);
    await other.quit();
  });
  await check("node-redis-pubsub", async () => {
    const sub = client.duplicate();
    await sub.connect();
    let push;
    const messages = collect(2, (p) => (push = p));
    await sub.subscribe("nchan", (msg, ch) => push(["message", ch, msg]));
    await sub.pSubscribe("np*", (msg, ch) => push(["pmessage", ch, msg]));
    assertEqual(await client.publish("nchan", "one"), 1, "PUBLISH nchan");
    assertEqual(await client.publish("npat", "two"), 1, "PUBLISH npat");
    assertEqual(
      await messages,
      [["message", "nchan", "one"], ["pmessage", "npat", "two"]],
      "messages",
    );
    await sub.quit();
  });
  await check("node-redis-keyspace-events", async () => {
    const sub = client.duplicate();
    await sub.connect();
    let push;
    const events = collect(1, (p) => (push = p));
    await client.configSet("notify-keyspace-events", "E$");
    await sub.pSubscribe("__keyevent@0__:*", (msg, ch) => push([ch, msg]));
    await client.incr("nksn");
    assertEqual(await events, [["__keyevent@0__:incrby", "nksn"]], "events");
    await client.configSet("notify-keyspace-events", "");
    await sub.quit();
  });
  await check("node-redis-tracking", async () => {
    const sub = client.duplicate();
    await sub.connect();
    const id = await sub.clientId();
    let push;
    const invalidations = collect(1, (p) => (push = p));
    await sub.subscribe("__redis__:invalidate", (msg, ch) => push([ch, msg]));
    const tracked = client.duplicate();
    await tracked.connect();
    assertEqual(await tracked.sendCommand(["CLIENT", "TRACKING", "ON", "REDIRECT", String(id)]), "OK", "ON");
    await tracked.get("ncached");
    await client.set("ncached", "new");
    assertEqual(await invalidations, [["__redis__:invalidate", ["ncached"]]], "invalidation");
    await tracked.quit();
    await sub.quit();
  });
  await check("node-redis-operability", async () => {
    assertEqual(await client.configSet("zset-max-ziplist-entries", "9"), "OK", "CONFIG SET alias");
    assertEqual(await client.configGet("zset-max-listpack-entries"), { "zset-max-listpack-entries": "9" }, "GET");
    await client.configSet("zset-max-listpack-entries", "128");
    await client.configSet("slowlog-log-slower-than", "0");
    await client.get("nslow");
    assertEqual((await client.sendCommand(["SLOWLOG", "GET", "1"])).length, 1, "SLOWLOG GET");
    assertEqual(await client.sendCommand(["SLOWLOG", "RESET"]), "OK", "SLOWLOG RESET");
    await client.configSet("slowlog-log-slower-than", "10000");
    const histogram = await client.sendCommand(["LATENCY", "HISTOGRAM", "get"]);
    if (!JSON.stringify(histogram).includes("calls")) throw new Error(JSON.stringify(histogram));
  });
  await check("node-redis-geo", async () => {
    await client.del(["nr:geo", "nr:geo2"]);
    const sicily = [
      { longitude: 13.361389, latitude: 38.115556, member: "Palermo" },
      { longitude: 15.087269, latitude: 37.502669, member: "Catania" },
    ];
    assertEqual(await client.geoAdd("nr:geo", sicily), 2, "GEOADD");
    assertEqual(await client.geoDist("nr:geo", "Palermo", "Catania", "km"), 166.2742, "GEODIST");
    const pos = await client.geoPos("nr:geo", ["Catania", "nosuch"]);
    assertEqual(pos, [{ longitude: "15.08726745843887329", latitude: "37.50266842333162032" }, null], "GEOPOS");
    assertEqual(await client.geoSearch("nr:geo", { longitude: 15, latitude: 37 }, { radius: 100, unit: "km" }), ["Catania"], "GEOSEARCH");
    const box = { width: 400, height: 400, unit: "km" };
    const near = await client.geoSearchWith("nr:geo", "Palermo", box, ["WITHDIST"], { SORT: "ASC" });
    assertEqual(near, [{ member: "Palermo", distance: "0.0000" }, { member: "Catania", distance: "166.2742" }], "GEOSEARCH WITHDIST");
    const stored = await client.geoSearchStore("nr:geo2", "nr:geo", "Palermo", { radius: 200, unit: "km" }, { STOREDIST: true });
    assertEqual(stored, 2, "GEOSEARCHSTORE");
    assertEqual((await client.zScore("nr:geo2", "Catania")).toFixed(4), "166.2742", "stored distance");
  });
  await check("node-redis-scripting", async () => {
    await client.del(["nr:s1", "nr:s2"]);
    const script = "redis.call('set', KEYS[1], ARGV[1]); redis.call('set', KEYS[2], ARGV[1]); return redis.call('mget', KEYS[1], KEYS[2])";
    assertEqual(await client.eval(script, { keys: ["nr:s1", "nr:s2"], arguments: ["v"] }), ["v", "v"], "EVAL");
    const sha = await client.scriptLoad("return {KEYS[1], ARGV[1], 3}");
    assertEqual(await client.evalSha(sha, { keys: ["k"], arguments: ["a"] }), ["k", "a", 3], "EVALSHA");
    assertEqual(await client.evalRo("return redis.call('get', KEYS[1])", { keys: ["nr:s1"] }), "v", "EVAL_RO");
    assertEqual(await client.scriptExists(sha), [true], "SCRIPT EXISTS");
    assertEqual(await client.scriptFlush(), "OK", "SCRIPT FLUSH");
    let refused = false;
    try {
      await client.evalSha(sha);
    } catch (e) {
      refused = /NOSCRIPT/.test(String(e));
    }
    if (!refused) throw new Error("EVALSHA after SCRIPT FLUSH was not refused");
    const lib = "#!lua name=nrlib\nredis.register_function{function_name='nr_get', callback=function(keys) return redis.call('get', keys[1]) end, flags={'no-writes'}}";
    assertEqual(await client.functionLoad(lib, { REPLACE: true }), "nrlib", "FUNCTION LOAD");
    assertEqual(await client.fCallRo("nr_get", { keys: ["nr:s1"] }), "v", "FCALL_RO");
    const listed = await client.functionList();
    if (!JSON.stringify(listed).includes("nr_get")) throw new Error(JSON.stringify(listed));
  });
  await check("node-redis-acl", async () => {
    assertEqual(await client.aclSetUser("nr_acl", ["reset", "on", ">pw", "+get", "+set", "+acl|whoami", "~nr:acl:*"]), "OK", "ACL SETUSER");
    const u = createClient({ socket: { port }, username: "nr_acl", password: "pw" });
    await u.connect();
    assertEqual(await u.aclWhoAmI(), "nr_acl", "AUTH with a username");
    assertEqual(await u.set("nr:acl:k", "v"), "OK", "own key");
    await assertRejects(() => u.get("nr:other"), /NOPERM/, "other key");
    await u.quit();
    assertEqual(await client.aclDelUser("nr_acl"), 1, "ACL DELUSER");
  });
  await check("node-redis-hyperloglog", async () => {
    await client.del(["nr:h1", "nr:h2", "nr:hm"]);
    assertEqual(await client.pfAdd("nr:h1", ["a", "b", "c"]), true, "PFADD");
    assertEqual(await client.pfAdd("nr:h1", "a"), false, "PFADD again");
    await client.pfAdd("nr:h2", ["c", "d"]);
    assertEqual(await client.pfCount("nr:h1"), 3, "PFCOUNT");
    assertEqual(await client.pfCount(["nr:h1", "nr:h2"]), 4, "PFCOUNT union");
    assertEqual(await client.pfMerge("nr:hm", ["nr:h1", "nr:h2"]), "OK", "PFMERGE");
    assertEqual(await client.pfCount("nr:hm"), 4, "PFCOUNT merged");
    assertEqual(await client.sendCommand(["PFDEBUG", "ENCODING", "nr:hm"]), "sparse", "PFDEBUG ENCODING");
  });
  await check("node-redis-dump-restore", async () => {
    await client.del(["nr:d1", "nr:d2"]);
    await client.zAdd("nr:d1", [{ score: 1.5, value: "a" }, { score: 2, value: "b" }]);
    const payload = await client.dump(commandOptions({ returnBuffers: true }), "nr:d1");
    assertEqual(payload[0], 17, "listpack zset type byte");
    assertEqual(await client.restore("nr:d2", 0, payload), "OK", "RESTORE");
    assertEqual(await client.zRangeWithScores("nr:d2", 0, -1), [{ value: "a", score: 1.5 }, { value: "b", score: 2 }], "restored zset");
    assertEqual(await client.restore("nr:d2", 0, payload, { REPLACE: true, ABSTTL: true }), "OK", "RESTORE REPLACE ABSTTL");
    await client.del(["nr:x1", "nr:x2"]);
    await client.xAdd("nr:x1", "1-1", { f: "v" });
    await client.xGroupCreate("nr:x1", "g", "0");
    const stream = await client.dump(commandOptions({ returnBuffers: true }), "nr:x1");
    assertEqual(stream[0], 19, "stream type byte");
    assertEqual(await client.restore("nr:x2", 0, stream), "OK", "RESTORE of a stream");
    assertEqual(await client.xRange("nr:x2", "-", "+"), [{ id: "1-1", message: { f: "v" } }], "restored entries");
    assertEqual((await client.xInfoGroups("nr:x2")).map((g) => g.name), ["g"], "restored group");
  });
  await check("node-redis-streams", async () => {
    await client.del("nr:st");
    assertEqual(await client.xAdd("nr:st", "1-1", { f: "1" }), "1-1", "XADD");
    assertEqual(await client.xAdd("nr:st", "*", { f: "2" }, { TRIM: { strategy: "MAXLEN", threshold: 10 } }) > "1-1", true, "XADD *");
    const range = await client.xRange("nr:st", "-", "+");
    assertEqual(range.map((e) => e.message.f), ["1", "2"], "XRANGE");
    const read = await client.xRead({ key: "nr:st", id: "0" }, { COUNT: 1 });
    assertEqual(read, [{ name: "nr:st", messages: [{ id: "1-1", message: { f: "1" } }] }], "XREAD");
    assertEqual(await client.xGroupCreate("nr:st", "grp", "0"), "OK", "XGROUP CREATE");
    const group = await client.xReadGroup("grp", "alice", { key: "nr:st", id: ">" }, { COUNT: 1 });
    assertEqual(group[0].messages[0].id, "1-1", "XREADGROUP");
    const pending = await client.xPending("nr:st", "grp");
    assertEqual([pending.pending, pending.consumers], [1, [{ name: "alice", deliveriesCounter: 1 }]], "XPENDING");
    assertEqual(await client.xAck("nr:st", "grp", "1-1"), 1, "XACK");
    const info = await client.xInfoStream("nr:st");
    assertEqual([info.length, info.groups, info.firstEntry.id], [2, 1, "1-1"], "XINFO STREAM");
    assertEqual(await client.xTrim("nr:st", "MAXLEN", 0), 2, "XTRIM");
  });
  await check("node-redis-gravity", async () => {
    await client.set("nr:hot", "v1");
    assertEqual(await client.sendCommand(["GRAVITY", "REPLICATE", "nr:hot"]), 1, "REPLICATE");
    assertEqual(await client.get("nr:hot"), "v1", "GET");
    await client.set("nr:hot", "v2");
    assertEqual(await client.get("nr:hot"), "v2", "GET after SET");
    const rows = await client.sendCommand(["GRAVITY", "LIST"]);
    assertEqual(rows.map((r) => r.slice(1, 3)), [["nr:hot", "manual"]], "LIST");
    assertEqual(await client.sendCommand(["GRAVITY", "UNREPLICATE", "nr:hot"]), 1, "UNREPLICATE");
  });
  await check("node-redis-replication", async () => {
    assertEqual(await client.sendCommand(["ROLE"]), ["master", 0, []], "ROLE");
    assertEqual(await client.sendCommand(["WAIT", "1", "50"]), 0, "WAIT");
    assertEqual(await client.sendCommand(["REPLCONF", "listening-port", "6380"]), "OK", "REPLCONF");
    assertEqual(await client.sendCommand(["REPLICAOF", "127.0.0.1", "1"]), "OK", "REPLICAOF");
    const role = await client.sendCommand(["ROLE"]);
    assertEqual([role[0], role[2], role[4]], ["slave", 1, -1], "ROLE of a replica");
    await assertRejects(() => client.set("nr:ro", "v"), /READONLY/, "SET");
    assertEqual(await client.sendCommand(["REPLICAOF", "NO", "ONE"]), "OK", "REPLICAOF NO ONE");
    await assertRejects(() => client.sendCommand(["FAILOVER", "ABORT"]), /No failover in progress/, "FAILOVER ABORT");
  });
  await client.quit();
}

report("node");
