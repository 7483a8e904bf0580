/**
 * End to end: GET /metrics answers anyone who reaches the daemon, with no token. A flood of it
 * (500 connections, each sending 32 requests at once without waiting: 16,000 gatherings of every
 * sink thread's metrics in progress together) ran the main thread's heap out of memory and ended
 * the daemon; requests that come while the metrics are gathered now share that gathering, and past
 * 1,024 requests in progress a connection that sends a request ahead of its answer is cut.
 */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type pg from "pg";
import { dropPostgres, killAllDaemons, pgClient, pgSourceConfig, randomName, removeDir, SluiceDaemon, tempDir } from "./helpers.ts";

const schema = randomName("e2e_metrics_flood");
const source = randomName("src");
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
const dir = tempDir("metrics-flood");
let client: pg.Client;

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(`CREATE TABLE "${schema}".items (id int PRIMARY KEY, note text)`);
});

after(async () => {
  await killAllDaemons();
  await dropPostgres(client, names);
  await client.end();
  removeDir(dir);
});

/** Sends `depth` GET /metrics at once on a new connection; resolves with how many were answered 200 before the connection closed or all were. */
function pipelined(port: number, depth: number): Promise<number> {
  return new Promise((resolve) => {
    let answered = 0;
    // The end of the data before, too short to hold a whole status line: one split across two reads is counted once.
    let tail = "";
    const socket = connect(port, "127.0.0.1", () => socket.write("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".repeat(depth)));
    socket.on("data", (data: Buffer) => {
      const seen = tail + data.toString("latin1");
      answered += (seen.match(/HTTP\/1\.1 200 OK\r\n/g) ?? []).length;
      tail = seen.slice(-16);
      if (answered === depth) socket.end();
    });
    socket.on("error", () => undefined);
    socket.on("close", () => resolve(answered));
  });
}

test("a flood of GET /metrics from clients without a token is answered or cut, and the daemon goes on", { timeout: 240_000 }, async () => {
  const config = {
    name: randomName("dep"),
    sources: [pgSourceConfig(source, [`${schema}.*`])],
    topics: { kind: "embedded", path: join(dir, "log.db") },
    sinks: [{ kind: "duckdb", name: "warehouse", path: join(dir, "warehouse.duckdb") }],
  };
  const daemon = await SluiceDaemon.start(dir, config, "daemon");
  const answered = await Promise.all(Array.from({ length: 500 }, () => pipelined(daemon.port, 32)));
  const gone = `the daemon's exit: ${JSON.stringify(daemon.exitStatus)}; ${/heap out of memory/.test(daemon.logTail(100)) ? "heap out of memory" : "no heap failure"}`;
  assert.equal(daemon.child.exitCode, null, `the daemon still runs (${gone})`);
  // At least what the limit takes in at once, then more as answers go out.
  assert.ok(answered.reduce((sum, n) => sum + n, 0) >= 1_024, `answered: ${answered.reduce((sum, n) => sum + n, 0)} (${gone})`);
  assert.equal((await daemon.get("/healthz")).status, 200);
  assert.equal((await daemon.get("/metrics")).status, 200);
  // Pipelining is served again once the flood is over.
  assert.equal(await pipelined(daemon.port, 32), 32);
});
