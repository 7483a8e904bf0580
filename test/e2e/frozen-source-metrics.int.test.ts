/**
 * A source server that stops answering without closing its connections (a frozen VM, a network that
 * drops packets) must not take the operator's view with it: /metrics and /status still answer, with
 * the figures that server would give left out. Before the fix, /metrics waited on the slot-lag query
 * of a PostgreSQL that never answered, so every scrape hung (and each one queued another query).
 * The server is a PRIVATE PostgreSQL (test/services/private-postgres.ts) frozen with SIGSTOP.
 *
 * Nor may a frozen server pass for a working one: before wal_receiver_timeout, /readyz stayed 200
 * and `sluice status` said capturing while nothing arrived (only the lag grew).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import pg from "pg";
import { PrivatePostgres } from "../services/private-postgres.ts";
import { killAllDaemons, randomName, removeDir, runSluice, SluiceDaemon, tempDir, waitCaughtUp, waitFor } from "./helpers.ts";

const run = promisify(execFile);
const dir = tempDir("frozen-source");
let server: PrivatePostgres;
let admin: pg.Client;
let frozen = false;

/** SIGSTOP / SIGCONT to the postmaster and every backend it started (the daemon's connections included). */
async function signalServer(signal: "STOP" | "CONT"): Promise<void> {
  const postmaster = Number(readFileSync(join(server.dir, "data", "postmaster.pid"), "utf8").split("\n")[0]);
  const { stdout } = await run("pgrep", ["-P", String(postmaster)]).catch(() => ({ stdout: "" }));
  const pids = [postmaster, ...stdout.split("\n").filter((line) => line.trim() !== "").map(Number)];
  await run("kill", [`-${signal}`, ...pids.map(String)]);
  frozen = signal === "STOP";
}

before(async () => {
  server = await PrivatePostgres.start();
  admin = new pg.Client(server.connection);
  admin.on("error", () => undefined);
  await admin.connect();
  await admin.query("CREATE TABLE items (id int PRIMARY KEY, v text)");
  await admin.query("INSERT INTO items SELECT i, 'row ' || i FROM generate_series(1, 50) i");
});

after(async () => {
  if (frozen) await signalServer("CONT");
  await killAllDaemons();
  await admin?.end().catch(() => undefined);
  await server?.destroy();
  removeDir(dir);
});

test("with its PostgreSQL frozen, /metrics and /status still answer; the slot's figures come back once it answers again", async () => {
  const daemon = await SluiceDaemon.start(dir, {
    name: randomName("dep"),
    sources: [{ kind: "postgres", name: "shop", host: server.host, port: server.port, user: server.user, database: server.database, tables: ["public.items"] }],
    topics: { kind: "embedded", path: join(dir, "log.db") },
    sinks: [{ kind: "duckdb", name: "warehouse", path: join(dir, "warehouse.duckdb") }],
  });
  await waitCaughtUp(daemon, admin);
  assert.match(await daemon.metrics(), /sluice_postgres_slot_lag_bytes\{[^}]*source="shop"/, "the slot's lag is exported while the server answers");

  await signalServer("STOP");
  // Two scrapes in a row: the second must not queue behind the first one's unanswered query either.
  for (let scrape = 0; scrape < 2; scrape++) {
    const metrics = await daemon.metrics();
    assert.match(metrics, /sluice_sink_changes_applied_total/, "the metrics of the threads that do answer are there");
  }
  assert.equal((await daemon.get("/status")).status, 200);

  await signalServer("CONT");
  await waitCaughtUp(daemon, admin);
  await daemon.stop();
});

test("a frozen PostgreSQL is reported not ready after wal_receiver_timeout, naming the source and the silence; capture reconnects by itself once it answers again", async () => {
  const daemon = await SluiceDaemon.start(
    dir,
    {
      name: randomName("dep"),
      sources: [{ kind: "postgres", name: "paused", host: server.host, port: server.port, user: server.user, database: server.database, tables: ["public.items"], wal_receiver_timeout: "3s", heartbeat_interval: "1s" }],
      topics: { kind: "embedded", path: join(dir, "paused-log.db") },
      sinks: [{ kind: "duckdb", name: "warehouse", path: join(dir, "paused.duckdb") }],
    },
    "paused",
  );
  await waitCaughtUp(daemon, admin);
  assert.equal((await daemon.get("/readyz")).status, 200);

  await signalServer("STOP");
  let waiting: string;
  let statusText: string;
  try {
    waiting = await waitFor(
      "/readyz to answer 503 for the frozen source",
      async () => {
        const response = await daemon.get("/readyz");
        const body = (await response.json()) as { waiting?: Record<string, string> };
        return response.status === 503 ? body.waiting?.["source paused"] : undefined;
      },
      { daemon, timeoutMs: 15_000, intervalMs: 200 },
    );
    statusText = (await runSluice(["status", "-c", daemon.configFile], dir)).stdout;
  } finally {
    await signalServer("CONT");
  }
  assert.match(waiting, /^source paused: nothing received from PostgreSQL at [^ ]+ on the replication connection for \d+(\.\d)? s/);
  assert.match(statusText, /paused\s+postgres\s+not ready/);
  assert.match(statusText, /source paused/);

  // Back by itself: no restart, and what was written after the freeze arrives.
  await admin.query("INSERT INTO items SELECT i, 'after ' || i FROM generate_series(51, 60) i");
  await waitFor("/readyz to answer 200 again", async () => (await daemon.get("/readyz")).status === 200, { daemon, timeoutMs: 90_000 });
  await waitCaughtUp(daemon, admin);
  assert.match(daemon.logTail(200), /replication connection silent/);
  await daemon.stop();
});
