// Node's cluster clients against a multi-node cluster of 3 primaries with a replica each
// (tests/tests/cluster_multi.rs): ioredis `Redis.Cluster` and node-redis `createCluster` find
// the nodes from one seed, spread 1,000 keys over every primary, run per-slot pipelines and
// multi-key commands on a {tag}, pass the server's CROSSSLOT error on; ioredis reads from a
// replica (scaleReads), node-redis lists the replicas (useReplicas).
// Usage: node cluster_smoke.mjs PORT (a node of the cluster; after `npm ci` in this folder).
import Redis from "ioredis";
import { createCluster } from "redis";
import { assertEqual, assertRejects, check, report } from "./checks.mjs";

const port = Number(process.argv[2]);
const keys = Array.from({ length: 1000 }, (_, i) => `node:${i}`);

// ioredis
{
  const cluster = new Redis.Cluster([{ host: "127.0.0.1", port }], {
    scaleReads: "master",
    redisOptions: { connectTimeout: 2000 },
  });
  await check("ioredis-cluster-topology", async () => {
    await cluster.ping();
    assertEqual(cluster.nodes("master").length, 3, "primaries");
    assertEqual(cluster.nodes("slave").length, 3, "replicas");
  });
  await check("ioredis-cluster-keys", async () => {
    await Promise.all(keys.map((k, i) => cluster.set(k, `io${i}`)));
    const got = await Promise.all(keys.map((k) => cluster.get(k)));
    assertEqual(got, keys.map((_, i) => `io${i}`), "GET after SET");
    const sizes = await Promise.all(cluster.nodes("master").map((n) => n.dbsize()));
    if (sizes.some((s) => s === 0)) throw new Error(`a primary holds no key: ${sizes}`);
  });
  await check("ioredis-cluster-tag", async () => {
    const out = await cluster.pipeline().set("{io}a", "1").set("{io}b", "2").mget("{io}a", "{io}b").exec();
    assertEqual(out, [[null, "OK"], [null, "OK"], [null, ["1", "2"]]], "pipeline on one slot");
    assertEqual(await cluster.multi().incr("{io}a").incr("{io}b").exec(), [[null, 2], [null, 3]], "MULTI");
    await assertRejects(() => cluster.mget("node:1", "node:2"), /CROSSSLOT/, "MGET over two slots");
  });
  await check("ioredis-cluster-replica-read", async () => {
    await cluster.set("{io}r", "replicated");
    // Replication is asynchronous: the replica may see the write a moment later.
    const reader = new Redis.Cluster([{ host: "127.0.0.1", port }], { scaleReads: "slave" });
    let got = null;
    for (let i = 0; i < 50 && got !== "replicated"; i += 1) {
      got = await reader.get("{io}r");
      if (got !== "replicated") await new Promise((r) => setTimeout(r, 100));
    }
    reader.disconnect();
    assertEqual(got, "replicated", "GET from a replica");
  });
  cluster.disconnect();
}

// node-redis
{
  const cluster = createCluster({
    rootNodes: [{ url: `redis://127.0.0.1:${port}` }],
    defaults: { socket: { connectTimeout: 2000, reconnectStrategy: false } },
  });
  cluster.on("error", () => {});
  await cluster.connect();
  // node-redis lists a node once per slot range it serves: count addresses.
  const distinct = (nodes) => new Set(nodes.map((n) => n.address)).size;
  await check("node-redis-cluster-topology", async () => {
    assertEqual(distinct(cluster.masters), 3, "primaries");
    // Replicas are known (and read from, at random with their primary) with useReplicas.
    const withReplicas = createCluster({
      rootNodes: [{ url: `redis://127.0.0.1:${port}` }],
      useReplicas: true,
      defaults: { socket: { connectTimeout: 2000, reconnectStrategy: false } },
    });
    withReplicas.on("error", () => {});
    await withReplicas.connect();
    assertEqual(distinct(withReplicas.replicas), 3, "replicas");
    await withReplicas.quit();
  });
  await check("node-redis-cluster-keys", async () => {
    await Promise.all(keys.map((k, i) => cluster.set(k, `nr${i}`)));
    const got = await Promise.all(keys.map((k) => cluster.get(k)));
    assertEqual(got, keys.map((_, i) => `nr${i}`), "GET after SET");
  });
  await check("node-redis-cluster-tag", async () => {
    assertEqual(await cluster.mSet(["{nr}a", "1", "{nr}b", "2"]), "OK", "MSET on one slot");
    assertEqual(await cluster.mGet(["{nr}a", "{nr}b"]), ["1", "2"], "MGET on one slot");
    const out = await cluster.multi("{nr}").incr("{nr}a").incr("{nr}b").exec();
    assertEqual(out, [2, 3], "MULTI on one slot");
    await assertRejects(() => cluster.mGet(["node:1", "node:2"]), /CROSSSLOT/, "MGET over two slots");
  });
  await cluster.quit();
}

report("node cluster");
