/**
 * PostgreSQL shut down or Sluice killed under a live replication stream, on a PRIVATE server (own
 * directory and port, test/services/private-postgres.ts; the shared one is never stopped):
 *
 * 1. `pg_ctl stop -m fast` finishes while Sluice is connected and capturing. The server's
 *    walsenders wait for the client to confirm everything up to the WAL end (its shutdown
 *    checkpoint included); Sluice confirms it once it is durable. Sluice waits the outage out and,
 *    after the restart, DuckDB equals PostgreSQL.
 * 2. With heartbeats off, writes to a table outside the publication still move the slot (the
 *    keepalive's WAL end is confirmed through the pipeline); kill -9 of the daemon right after such
 *    confirmations, while captured changes are in flight (2 times; SLUICE_E2E_KILL_ROUNDS=20 for the
 *    long run), never leaves the slot confirmed past the stored checkpoint: the restart resumes (no
 *    PG_SLOT_UNUSABLE) and nothing is lost.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import pg from "pg";
import { formatLsn } from "../../connectors/postgres/lsn.ts";
import { PrivatePostgres } from "../services/private-postgres.ts";
import { assertTablesEqual, expectedFor, killAllDaemons, lsnToBigInt, randomName, readDuckDb, readPostgres, removeDir, sleep, SluiceDaemon, tempDir, waitCaughtUp, waitFor } from "./helpers.ts";
import type { TableDef } from "./helpers.ts";

const items: TableDef = {
  schema: "app",
  name: "items",
  columns: [
    { name: "id", sql: "integer", kind: "int4" },
    { name: "v", sql: "text", kind: "text" },
  ],
  key: ["id"],
};
const dir = tempDir("pg-fast-shutdown");
const duckPath = join(dir, "warehouse.duckdb");
const deployment = randomName("dep");
const KILL_ROUNDS = Number(process.env["SLUICE_E2E_KILL_ROUNDS"] ?? 2);
let server: PrivatePostgres;
let admin: pg.Client;

function config(heartbeat: string | number): Record<string, unknown> {
  return {
    name: deployment,
    sources: [{ kind: "postgres", name: "shop", host: server.host, port: server.port, user: server.user, database: server.database, tables: ["app.items"], heartbeat_interval: heartbeat }],
    topics: { kind: "embedded", path: join(dir, "log.db") },
    sinks: [{ kind: "duckdb", name: "warehouse", path: duckPath, batch: { max_rows: 500, max_wait: "50ms" } }],
  };
}

async function connect(): Promise<pg.Client> {
  const client = new pg.Client({ ...server.connection, types: { getTypeParser: () => (text: string) => text } });
  client.on("error", () => undefined);
  await client.connect();
  return client;
}

before(async () => {
  server = await PrivatePostgres.start();
  admin = await connect();
  await admin.query("CREATE SCHEMA app");
  await admin.query("CREATE TABLE app.items (id int PRIMARY KEY, v text)");
  await admin.query("CREATE TABLE app.other (id serial PRIMARY KEY, v text)");
  await admin.query("INSERT INTO app.items SELECT i, 'seed ' || i FROM generate_series(1, 100) i");
});

after(async () => {
  await killAllDaemons();
  await admin?.end().catch(() => undefined);
  await server?.destroy();
  removeDir(dir);
});

let nextId = 101;

/**
 * Inserts captured rows (and rows of the uncaptured table) on its own connection until stopped
 * or until the server goes away. Which rows committed is read back from PostgreSQL afterwards.
 */
function startWriter(options: { captured: boolean; other: boolean }): { stop: () => Promise<void> } {
  let running = true;
  const done = (async () => {
    const client = await connect();
    try {
      while (running) {
        if (options.captured) await client.query("INSERT INTO app.items VALUES ($1, $2)", [nextId, `row ${nextId++}`]);
        if (options.other) await client.query("INSERT INTO app.other (v) SELECT md5(i::text) FROM generate_series(1, 20) i");
        await sleep(10);
      }
    } catch {
      // The server shut down: the writer ends with it.
    } finally {
      await client.end().catch(() => undefined);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await done;
    },
  };
}

async function confirmedFlush(client: pg.Client): Promise<bigint> {
  const row = (await client.query<{ lsn: string | null }>("SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = 'sluice_shop'")).rows[0];
  return row?.lsn ? lsnToBigInt(row.lsn) : 0n;
}

async function sourceReady(daemon: SluiceDaemon): Promise<boolean> {
  const { sources } = await daemon.status();
  return sources.length > 0 && sources.every((s) => s.ready);
}

async function assertDuckDbEqualsPostgres(label: string): Promise<void> {
  const [read] = await readDuckDb(duckPath, [{ def: items, target: "app_items" }]);
  const expected = expectedFor("duckdb", items, await readPostgres(admin, items));
  assertTablesEqual(expected, read!.rows, label);
}

test("pg_ctl stop -m fast finishes while Sluice captures; Sluice waits the outage out and loses nothing", { timeout: 300_000 }, async (t) => {
  const daemon = await SluiceDaemon.start(dir, config("1s"), "fast-shutdown");
  await waitFor("the source to be ready", () => sourceReady(daemon), { daemon, timeoutMs: 60_000 });
  await waitCaughtUp(daemon, admin, { timeoutMs: 120_000 });
  const writer = startWriter({ captured: true, other: true });
  await sleep(2_000);

  await admin.end();
  const stopped = await server.stop("fast", 90);
  await writer.stop();
  if (!stopped.ok) {
    // Leave the server running and no daemon behind for the next test.
    await daemon.kill();
    await server.stop("immediate", 60);
    await server.restart();
    admin = await connect();
  }
  assert.ok(stopped.ok, `pg_ctl stop -m fast did not finish within 90 s while Sluice was connected: ${stopped.output}`);
  t.diagnostic("fast shutdown finished");

  await waitFor("the source to report the outage", async () => !(await sourceReady(daemon)), { daemon, timeoutMs: 60_000 });
  await sleep(3_000);
  assert.equal(daemon.exitStatus, null, "the daemon waits the outage out");

  await server.restart();
  admin = await connect();
  const more = startWriter({ captured: true, other: false });
  await sleep(1_000);
  await more.stop();
  await waitCaughtUp(daemon, admin, { timeoutMs: 120_000 });
  await daemon.stop();
  await assertDuckDbEqualsPostgres("DuckDB after a fast shutdown and restart of PostgreSQL");
});

test("heartbeats off: uncaptured writes move the slot; kill -9 right after such confirmations loses nothing", { timeout: 300_000 + KILL_ROUNDS * 15_000 }, async (t) => {
  let daemon = await SluiceDaemon.start(dir, config(0), "keepalive-0");
  await waitFor("the source to be ready", () => sourceReady(daemon), { daemon, timeoutMs: 60_000 });
  const other = startWriter({ captured: false, other: true });
  await sleep(1_000);
  await other.stop();
  const target = lsnToBigInt((await admin.query<{ lsn: string }>("SELECT pg_current_wal_lsn()::text AS lsn")).rows[0]!.lsn);
  await waitFor(`confirmed_flush_lsn to pass ${formatLsn(target)} with only uncaptured writes (keepalives, no heartbeats)`, async () => (await confirmedFlush(admin)) >= target, { daemon, timeoutMs: 60_000 });

  for (let round = 1; round <= KILL_ROUNDS; round++) {
    const writer = startWriter({ captured: true, other: true });
    const before = await confirmedFlush(admin);
    await waitFor("the slot to be confirmed further while both tables are written", async () => (await confirmedFlush(admin)) > before, { daemon, timeoutMs: 60_000 });
    await daemon.kill();
    await writer.stop();
    t.diagnostic(`round ${round}: killed right after a confirmation (slot at ${formatLsn(before)} and on)`);
    daemon = await SluiceDaemon.start(dir, config(0), `keepalive-0-${round}`);
    await waitFor("the source to resume from its checkpoint", () => sourceReady(daemon), { daemon, timeoutMs: 60_000 });
  }
  await daemon.stop();

  daemon = await SluiceDaemon.start(dir, config("1s"), "keepalive-catch-up");
  await waitFor("the source to be ready", () => sourceReady(daemon), { daemon, timeoutMs: 60_000 });
  await waitCaughtUp(daemon, admin, { timeoutMs: 120_000 });
  await daemon.stop();
  await assertDuckDbEqualsPostgres("DuckDB after kill -9 right after keepalive-driven confirmations");
});
