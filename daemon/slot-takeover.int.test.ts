/**
 * A new capture leader ends the walsender still holding ITS slot, and no other: against the real
 * PostgreSQL, with a second logical slot streaming to another reader (pg_recvlogical) on the same
 * server. The takeover's first query let the planner call pg_terminate_backend on every active
 * slot's walsender before testing the slot's name, ending every replication connection of the server.
 *
 * A term connects for the takeover while it fences the former leader (SlotTakeover.begin) and asks
 * nothing of the slot until take(): begun, it has its connection and the holder still streams.
 *
 * And a frozen former leader (its reader stopped with SIGSTOP, so its socket fills up): the
 * walsender ended once blocks writing its goodbye to a client that reads nothing and keeps the
 * slot; the takeover returns only once the slot is free. That runs on a private server: it writes
 * tens of megabytes of WAL, which every logical slot of the shared server would have to decode.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { after, test } from "node:test";
import pg from "pg";
import type { SluiceConfig } from "../config/schema.ts";
import { adminClient, randomName, sourceConfig } from "../connectors/postgres/int-test-support.ts";
import { captureNames } from "../connectors/postgres/slot-setup.ts";
import { postgres } from "../test/services/ports.ts";
import { PrivatePostgres } from "../test/services/private-postgres.ts";
import { createLogger } from "../runtime/logger.ts";
import type { RunSelection } from "./roles.ts";
import { SlotTakeover } from "./slot-takeover.ts";

const PG_RECVLOGICAL = process.env["SLUICE_PG_BIN"] ? `${process.env["SLUICE_PG_BIN"]}/pg_recvlogical` : "/usr/lib/postgresql/15/bin/pg_recvlogical";
/** A whole takeover as a term makes it: begin, take, close. */
async function takeOverSlots(config: SluiceConfig, selection: RunSelection): Promise<void> {
  const takeover = SlotTakeover.begin(config, selection, createLogger("silent"));
  try {
    await takeover.take(new AbortController().signal);
  } finally {
    await takeover.close();
  }
}

const readers: ChildProcess[] = [];
const slots: string[] = [];
let admin: pg.Client | null = null;

after(async () => {
  for (const reader of readers) reader.kill("SIGKILL");
  if (admin) {
    for (const slot of slots) {
      for (let i = 0; i < 50; i++) {
        const dropped = await admin.query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active", [slot]).then(() => true, () => false);
        const left = await admin.query("SELECT 1 FROM pg_replication_slots WHERE slot_name = $1", [slot]);
        if (dropped && left.rowCount === 0) break;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
    await admin.end();
  }
});

function stream(slot: string, server: { host: string; port: number; user: string; password: string; database: string } = postgres): ChildProcess {
  const reader = spawn(PG_RECVLOGICAL, ["-h", server.host, "-p", String(server.port), "-U", server.user, "-d", server.database, "--slot", slot, "--start", "-f", "/dev/null"], {
    env: { ...process.env, PGPASSWORD: server.password },
    stdio: "ignore",
  });
  readers.push(reader);
  return reader;
}

async function activePid(slot: string, db: pg.Client = admin!): Promise<number | null> {
  const { rows } = await db.query<{ pid: number | null }>("SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = $1", [slot]);
  return rows[0]?.pid ?? null;
}

async function waitActive(slot: string, db: pg.Client = admin!): Promise<number> {
  for (let i = 0; i < 300; i++) {
    const pid = await activePid(slot, db);
    if (pid !== null) return pid;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`slot ${slot} never became active`);
}

test("the takeover ends the walsender holding the source's slot and leaves other slots' walsenders alone", { timeout: 120_000 }, async () => {
  admin = await adminClient();
  const source = sourceConfig({ tables: ["takeover_none.*"] });
  const own = captureNames(source).slot;
  const other = randomName("other_slot");
  for (const slot of [own, other]) {
    await admin.query("SELECT pg_create_logical_replication_slot($1, 'test_decoding')", [slot]);
    slots.push(slot);
  }
  stream(own);
  stream(other);
  const ownPid = await waitActive(own);
  const otherPid = await waitActive(other);

  const selection: RunSelection = { sources: [source.name], sinks: [], roles: ["capture"] };
  await takeOverSlots({ sources: [source] } as unknown as SluiceConfig, selection);

  for (let i = 0; i < 50 && (await activePid(own)) === ownPid; i++) await new Promise((resolve) => setTimeout(resolve, 100));
  assert.notEqual(await activePid(own), ownPid, "the walsender holding the source's slot was ended");
  const alive = await admin.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1", [otherPid]);
  assert.equal(alive.rowCount, 1, "the other slot's walsender still runs");
  assert.equal(await activePid(other), otherPid, "the other slot is still held by its reader");
});

async function connectionsOf(source: { name: string }): Promise<number> {
  const { rows } = await admin!.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1", [`sluice:${source.name}:catalog`]);
  return Number(rows[0]!.n);
}

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting until ${what}`);
}

test("a takeover begun connects at once and ends the holder only at take(); one never taken closes its connection", { timeout: 120_000 }, async () => {
  admin ??= await adminClient();
  const source = sourceConfig({ tables: ["takeover_none.*"] });
  const slot = captureNames(source).slot;
  await admin.query("SELECT pg_create_logical_replication_slot($1, 'test_decoding')", [slot]);
  slots.push(slot);
  stream(slot);
  const holder = await waitActive(slot);
  const selection: RunSelection = { sources: [source.name], sinks: [], roles: ["capture"] };
  const config = { sources: [source] } as unknown as SluiceConfig;

  const begun = SlotTakeover.begin(config, selection, createLogger("silent"));
  await until("the takeover's connection is made", async () => (await connectionsOf(source)) === 1);
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(await activePid(slot), holder, "begun, the takeover has ended nothing: the holder still streams");
  await begun.take(new AbortController().signal);
  await begun.close();
  await until("the holder is ended", async () => (await activePid(slot)) !== holder);
  await until("the takeover's connection is closed", async () => (await connectionsOf(source)) === 0);

  const unused = SlotTakeover.begin(config, selection, createLogger("silent"));
  await until("the second takeover's connection is made", async () => (await connectionsOf(source)) === 1);
  await unused.close();
  await until("a takeover never taken closes its connection", async () => (await connectionsOf(source)) === 0);
});

test("a frozen former leader's walsender, blocked writing to its full socket, gives up the slot before the takeover returns", { timeout: 240_000 }, async (t) => {
  const server = await PrivatePostgres.start();
  const db = new pg.Client(server.connection);
  db.on("error", () => undefined);
  t.after(async () => {
    for (const reader of readers) reader.kill("SIGKILL");
    await db.end().catch(() => undefined);
    await server.destroy();
  });
  await db.connect();
  const source = sourceConfig({ tables: ["public.*"], ...server.connection });
  const slot = captureNames(source).slot;
  await db.query("CREATE TABLE filler (id bigserial PRIMARY KEY, pad text)");
  await db.query("SELECT pg_create_logical_replication_slot($1, 'test_decoding')", [slot]);
  const reader = stream(slot, server.connection);
  const walsender = await waitActive(slot, db);
  reader.kill("SIGSTOP");
  // Changes until the walsender waits for its client to read: its socket and the reader's are full.
  const waitEvent = async () => (await db.query<{ wait_event: string | null }>("SELECT wait_event FROM pg_stat_activity WHERE pid = $1", [walsender])).rows[0]?.wait_event ?? null;
  let blocked = 0;
  for (let round = 0; round < 100 && blocked < 3; round++) {
    await db.query("INSERT INTO filler (pad) SELECT repeat(md5(g::text), 32) FROM generate_series(1, 2000) g");
    blocked = (await waitEvent()) === "WalSenderWriteData" ? blocked + 1 : 0;
  }
  assert.equal(await waitEvent(), "WalSenderWriteData", "the walsender waits for its frozen client");

  const selection: RunSelection = { sources: [source.name], sinks: [], roles: ["capture"] };
  await takeOverSlots({ sources: [source] } as unknown as SluiceConfig, selection);

  assert.equal(await activePid(slot, db), null, "the slot is free when the takeover returns");
  assert.equal((await db.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1", [walsender])).rowCount, 0, "the walsender has exited");
});
