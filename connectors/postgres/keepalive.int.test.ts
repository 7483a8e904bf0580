/**
 * The server's keepalives move the slot on, through the pipeline and in order: writes the source
 * does not capture (a table outside the publication) advance confirmed_flush_lsn once they are
 * acknowledged as an empty batch, even without heartbeats, and never while an earlier batch with
 * changes is not acknowledged. Resuming from such a checkpoint loses and doubles nothing.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { PrivatePostgres } from "../../test/services/private-postgres.ts";
import type { PostgresSourceConfig } from "../../config/schema.ts";
import type { ChangeEvent, Checkpoint } from "../contracts.ts";
import { newSource, randomName, readUntil, slotRow, sourceConfig } from "./int-test-support.ts";
import type { Collected } from "./int-test-support.ts";
import { formatLsn, parseLsn } from "./lsn.ts";
import { flushLsnFor } from "./positions.ts";
import type { PostgresSource, PostgresSourceBatch } from "./source.ts";

const schema = randomName("keepalive");
const q = (table: string) => `"${schema}".${table}`;
// A private server: no other test's writes, and no other test's hand on its walsenders.
let server: PrivatePostgres;
let admin: pg.Client;
let config: PostgresSourceConfig;

before(async () => {
  server = await PrivatePostgres.start();
  const { host, port, user, database } = server.connection;
  // Heartbeats off: only the server's keepalives can carry the position past uncaptured writes.
  config = sourceConfig({ host, port, user, database, tables: [`${schema}.captured`], snapshot: { mode: "never", parallelism: 1, chunk_rows: 100 }, heartbeat_interval: 0 });
  admin = new pg.Client({ host, port, user, database });
  admin.on("error", () => undefined);
  await admin.connect();
  await admin.query(`CREATE SCHEMA "${schema}"`);
  await admin.query(`CREATE TABLE ${q("captured")} (id int PRIMARY KEY)`);
  await admin.query(`CREATE TABLE ${q("other")} (id serial PRIMARY KEY, v text)`);
});

after(async () => {
  await admin?.end().catch(() => undefined);
  await server?.destroy();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function confirmedFlush(): Promise<bigint> {
  return parseLsn((await slotRow(admin, config.slot!))!["confirmed_flush_lsn"]!);
}

async function currentLsn(): Promise<bigint> {
  return parseLsn((await admin.query<{ lsn: string }>("SELECT pg_current_wal_lsn()::text AS lsn")).rows[0]!.lsn);
}

/** Writes to the table outside the publication; returns the WAL position after them. */
async function writeOutside(rows: number): Promise<bigint> {
  for (let i = 0; i < rows; i += 10) await admin.query(`INSERT INTO ${q("other")} (v) SELECT md5(i::text) FROM generate_series(1, 10) i`);
  return currentLsn();
}

/** Reads in the background (acknowledging each batch unless `ack` is false) until stopped; `stop` rethrows a read's failure. */
function readInBackground(source: PostgresSource, options: { ack: boolean }): { collected: Collected; stop: () => Promise<void> } {
  const collected: Collected = { events: [], batches: [] };
  const controller = new AbortController();
  let failure: unknown = null;
  const running = (async (): Promise<void> => {
    for (;;) {
      let batch: PostgresSourceBatch;
      try {
        batch = await source.read(controller.signal);
      } catch (error) {
        if (controller.signal.aborted) return;
        throw error;
      }
      collected.batches.push(batch);
      collected.events.push(...batch.events);
      if (options.ack) await batch.ack();
    }
  })().catch((error: unknown) => {
    failure = error;
  });
  return {
    collected,
    stop: async () => {
      controller.abort();
      await running;
      if (failure !== null) throw failure;
    },
  };
}

async function waitUntil(what: string, probe: () => Promise<boolean> | boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(200);
  }
}

const ids = (events: readonly ChangeEvent[]) => events.map((e) => e.key["id"] as number);

/** A source whose keepalives move the position on every second instead of every 10 s: what is proven does not depend on the period. */
const keepaliveSource = (c: PostgresSourceConfig) => newSource(c, { keepaliveProgressMs: 1_000 });

test("writes to a table outside the publication advance confirmed_flush_lsn (no heartbeats)", { timeout: 120_000 }, async () => {
  const source = keepaliveSource(config);
  await source.connect(null, AbortSignal.timeout(30_000));
  const reader = readInBackground(source, { ack: true });
  try {
    const start = await confirmedFlush();
    const target = await writeOutside(200);
    assert.ok(target > start);
    let seen = start;
    await waitUntil(`confirmed_flush_lsn to pass ${formatLsn(target)} (from ${formatLsn(start)})`, async () => (seen = await confirmedFlush()) >= target);
    assert.equal(reader.collected.events.length, 0, "nothing of the other table is captured");
    const last = reader.collected.batches.at(-1)!;
    assert.ok(flushLsnFor(last.checkpoint.position) >= seen, `the slot is confirmed (${formatLsn(seen)}) no further than the last checkpoint handed on (${formatLsn(flushLsnFor(last.checkpoint.position))})`);
  } finally {
    await reader.stop().finally(() => source.close());
  }
});

test("a keepalive never confirms past a change that is not acknowledged; resuming from its checkpoint loses nothing", { timeout: 180_000 }, async () => {
  const source = keepaliveSource(config);
  await source.connect(null, AbortSignal.timeout(30_000));
  let checkpoint: Checkpoint;
  try {
    await admin.query(`INSERT INTO ${q("captured")} VALUES (1)`);
    const held = await readUntil(source, (c) => c.events.length >= 1, { ack: false });
    const pending = held.batches.at(-1)!;
    assert.deepEqual(ids(held.events), [1]);
    const before = await confirmedFlush();

    // Everything read after the unacknowledged change is acknowledged at once, like a pipeline
    // whose later batches finish first: the slot must still wait for the change.
    const reader = readInBackground(source, { ack: true });
    let target: bigint;
    try {
      target = await writeOutside(200);
      await waitUntil(`a batch through ${formatLsn(target)}`, () => reader.collected.batches.some((b) => flushLsnFor(b.checkpoint.position) >= target));
      await sleep(1500); // status updates go out meanwhile
      assert.equal(formatLsn(await confirmedFlush()), formatLsn(before), "the slot stays before the unacknowledged change");
      assert.ok(before <= pending.checkpoint.position.commit, "the unacknowledged change's transaction is not confirmed");

      await pending.ack();
      let seen = before;
      await waitUntil(`confirmed_flush_lsn to pass ${formatLsn(target)} once the change is acknowledged`, async () => (seen = await confirmedFlush()) >= target);
      const handedOn = reader.collected.batches.map((b) => flushLsnFor(b.checkpoint.position));
      assert.ok(handedOn.includes(seen) || handedOn.some((lsn) => lsn > seen), `confirmed ${formatLsn(seen)} is a checkpoint handed on, or below one`);
    } finally {
      await reader.stop();
    }
    checkpoint = reader.collected.batches.at(-1)!.checkpoint;
    assert.equal(reader.collected.events.length, 0);
  } finally {
    await source.close();
  }

  await admin.query(`INSERT INTO ${q("captured")} VALUES (2)`);
  const resumed = keepaliveSource(config);
  await resumed.connect(checkpoint, AbortSignal.timeout(30_000));
  try {
    const collected = await readUntil(resumed, (c) => c.events.length >= 1);
    await sleep(500);
    assert.deepEqual(ids(collected.events), [2], "the change after the checkpoint arrives once, the one before it is not repeated");
  } finally {
    await resumed.close();
  }
});

test("a quiet server with heartbeats off is not taken for a silent one: the reply asked for at half of wal_receiver_timeout keeps the stream", { timeout: 60_000 }, async () => {
  // Sluice's status updates (every second here) keep the walsender from sending keepalives of its own, so without the
  // request for a reply nothing at all would arrive while the server has no WAL to send.
  const quiet = { ...config, slot: randomName("slot"), publication: randomName("pub"), wal_receiver_timeout: 1_000 };
  const source = newSource(quiet);
  await source.connect(null, AbortSignal.timeout(30_000));
  const reader = readInBackground(source, { ack: true });
  try {
    await sleep(4_000);
    assert.equal(source.ready(), true, "the stream is still up after four timeouts of quiet");
  } finally {
    await reader.stop().finally(() => source.close());
  }
});

test("a process that did not run for longer than wal_receiver_timeout (SIGSTOP, a frozen VM, a long pause) does not take the server for silent", { timeout: 60_000 }, async () => {
  const source = newSource({ ...config, wal_receiver_timeout: 1_000 });
  await source.connect(null, AbortSignal.timeout(30_000));
  const reader = readInBackground(source, { ack: true });
  try {
    await sleep(600);
    // This thread does not run for 2.5 s, as under SIGSTOP: the server's replies wait unread in the socket meanwhile.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2_500);
    await admin.query(`INSERT INTO ${q("captured")} VALUES (42)`);
    await waitUntil("the row written after the pause", () => reader.collected.events.some((e) => e.key["id"] === 42), 20_000);
  } finally {
    // Before: the first check after the pause failed the stream (PG_RECEIVE_TIMEOUT, 'the server is paused ...'), which stop() rethrows.
    await reader.stop().finally(() => source.close());
  }
});
