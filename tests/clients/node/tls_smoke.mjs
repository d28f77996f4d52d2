// WarpEngine's TLS port against Node's Redis clients, ioredis and node-redis, each with its own
// TLS options: a client certificate signed by the server's authority, SET/GET and a pipeline.
// Usage: node tls_smoke.mjs TLS_PORT CERT_DIR (ca.crt, client.crt, client.key in CERT_DIR).
import fs from "node:fs";
import Redis from "ioredis";
import { createClient } from "redis";

const port = Number(process.argv[2]);
const dir = process.argv[3];
const ca = fs.readFileSync(`${dir}/ca.crt`);
const cert = fs.readFileSync(`${dir}/client.crt`);
const key = fs.readFileSync(`${dir}/client.key`);

function assertEqual(got, want, what) {
  const g = JSON.stringify(got);
  const w = JSON.stringify(want);
  if (g !== w) throw new Error(`${what}: got ${g}, want ${w}`);
}

const io = new Redis({ port, host: "localhost", tls: { ca, cert, key } });
assertEqual(await io.set("io:tls", "secure"), "OK", "ioredis SET");
assertEqual(await io.get("io:tls"), "secure", "ioredis GET");
const results = await io.pipeline().incr("io:tls:n").incr("io:tls:n").exec();
assertEqual(results.map(([, v]) => v), [1, 2], "ioredis pipeline");
io.disconnect();

const client = createClient({ socket: { port, host: "localhost", tls: true, ca, cert, key } });
client.on("error", () => {});
await client.connect();
assertEqual(await client.get("io:tls"), "secure", "node-redis GET");
assertEqual(await client.incr("io:tls:n"), 3, "node-redis INCR");
await client.quit();
console.log("node tls: ok");
