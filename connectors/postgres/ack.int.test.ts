/**
 * Acknowledgement and resume: the slot's confirmed_flush_lsn follows only what batch.ack() was
 * called for; a reconnect from a checkpoint (also one in the middle of a transaction, also after
 * the server killed the connection) resumes without loss or duplicates.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type pg from "pg";
import type { Checkpoint, ChangeEvent } from "../contracts.ts";
import { isRetriable } from "../errors.ts";
import { adminClient, cleanUp, newSource, randomName, readUntil, slotRow, sourceConfig } from "./int-test-support.ts";
import { formatLsn, parseLsn } from "./lsn.ts";
import { flushLsnFor } from "./positions.ts";

const schema = randomName("ack");
const q = (table: string) => `"${schema}".${table}`;
let admin: pg.Client;
const config = sourceConfig({ tables: [`${schema}.*`], snapshot: { mode: "never", parallelism: 1, chunk_rows: 100 }, heartbeat_interval: 0 });

before(async () => {
  admin = await adminClient();
  await admin.query(`CREATE SCHEMA "${schema}"`);
  await admin.query(`CREATE TABLE ${q("t")} (id int PRIMARY KEY, v int)`);
});

after(async () => {
  await cleanUp(admin, config, schema);
  await admin.end();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const ids = (events: readonly ChangeEvent[]) => events.map((e) => e.key["id"] as number);

async function confirmedFlush(): Promise<bigint> {
  return parseLsn((await slotRow(admin, config.slot!))!["confirmed_flush_lsn"]!);
}

async function waitForConfirmed(expected: bigint): Promise<bigint> {
  let seen = 0n;
  for (let i = 0; i < 50 && (seen = await confirmedFlush()) !== expected; i++) await sleep(100);
  return seen;
}

test("confirmed_flush_lsn moves only to what was acknowledged, in order", async () => {
  const source = newSource(config, { maxBatchEvents: 5 });
  await source.connect(null, AbortSignal.timeout(30_000));
  try {
    const start = await confirmedFlush();
    for (let i = 1; i <= 20; i++) await admin.query(`INSERT INTO ${q("t")} VALUES ($1, 0)`, [i]);
    const collected = await readUntil(source, (c) => c.events.length >= 20, { ack: false });
    await sleep(2500);
    assert.equal(await confirmedFlush(), start, "nothing acknowledged, nothing confirmed (status updates ran meanwhile)");

    const [first, second, third] = collected.batches;
    await third!.ack();
    await sleep(1500);
    assert.equal(await confirmedFlush(), start, "a later batch's ack does not confirm earlier unacknowledged ones");
    await first!.ack();
    assert.equal(formatLsn(await waitForConfirmed(flushLsnFor(first!.checkpoint.position))), formatLsn(flushLsnFor(first!.checkpoint.position)));
    await second!.ack();
    const upToThird = flushLsnFor(third!.checkpoint.position);
    assert.equal(formatLsn(await waitForConfirmed(upToThird)), formatLsn(upToThird));
    for (const batch of collected.batches) await batch.ack();
    const last = flushLsnFor(collected.batches.at(-1)!.checkpoint.position);
    assert.equal(formatLsn(await waitForConfirmed(last)), formatLsn(last));
    assert.equal(source.stats().flushedLsn, last);
  } finally {
    await source.close();
  }
});

test("close and reconnect from a checkpoint inside a transaction: nothing lost, nothing doubled", async () => {
  await admin.query(`TRUNCATE ${q("t")}`);
  const source = newSource(config, { maxBatchEvents: 10 });
  await source.connect(null, AbortSignal.timeout(30_000));
  let checkpoint: Checkpoint;
  let delivered: ChangeEvent[];
  try {
    await readUntil(source, (c) => c.events.some((e) => e.op === "t"));
    await admin.query(`INSERT INTO ${q("t")} SELECT i, 1 FROM generate_series(100, 149) i`);
    const collected = await readUntil(source, (c) => c.events.length >= 25, { ack: false });
    // Durable: the batches holding the first 10 or more rows; the checkpoint falls inside the 50-row transaction.
    let count = 0;
    const durable = collected.batches.filter((b) => (count += b.events.length) - b.events.length < 10);
    for (const batch of durable) await batch.ack();
    checkpoint = durable.at(-1)!.checkpoint;
    delivered = durable.flatMap((b) => b.events);
    assert.ok(checkpoint.position.change < checkpoint.position.commit, "checkpoint is inside the transaction");
    assert.ok(delivered.length >= 10 && delivered.length < 50, `${delivered.length} rows durable`);
  } finally {
    await source.close();
  }
  await admin.query(`INSERT INTO ${q("t")} SELECT i, 2 FROM generate_series(150, 159) i`);
  await admin.query(`UPDATE ${q("t")} SET v = 3 WHERE id = 100`);

  const resumed = newSource(config, { maxBatchEvents: 10 });
  await resumed.connect(checkpoint, AbortSignal.timeout(30_000));
  try {
    const collected = await readUntil(resumed, (c) => c.events.some((e) => e.op === "u"));
    const all = [...delivered, ...collected.events];
    assert.deepEqual(ids(all), [...Array.from({ length: 60 }, (_, i) => 100 + i), 100]);
    assert.equal(new Set(all.map((e) => `${String(e.key["id"])}/${e.source.position.change}/${e.op}`)).size, all.length);
  } finally {
    await resumed.close();
  }
});

test("the server ending the connection is a retriable error; reconnecting resumes", async () => {
  const source = newSource(config);
  await source.connect(null, AbortSignal.timeout(30_000));
  let checkpoint: Checkpoint;
  try {
    await admin.query(`INSERT INTO ${q("t")} VALUES (500, 0)`);
    const collected = await readUntil(source, (c) => c.events.some((e) => e.key["id"] === 500));
    checkpoint = collected.batches.at(-1)!.checkpoint;
    assert.equal(source.ready(), true);
    const row = await slotRow(admin, config.slot!);
    await admin.query("SELECT pg_terminate_backend($1)", [Number(row!["active_pid"])]);
    await assert.rejects(readUntil(source, () => false, { timeoutMs: 10_000 }), (error: unknown) => {
      assert.equal(isRetriable(error), true, String(error));
      return true;
    });
    assert.equal(source.ready(), false);
    await admin.query(`INSERT INTO ${q("t")} VALUES (501, 0)`);
    await source.close();
    for (let i = 0; i < 50 && (await slotRow(admin, config.slot!))?.["active"] === "t"; i++) await sleep(100);
    await source.connect(checkpoint, AbortSignal.timeout(30_000));
    const resumed = await readUntil(source, (c) => c.events.some((e) => e.key["id"] === 501));
    assert.deepEqual(ids(resumed.events), [501]);
  } finally {
    await source.close();
  }
});

test("an unreachable server is a retriable connection error", async () => {
  const source = newSource({ ...config, port: 1 });
  await assert.rejects(source.connect(null, AbortSignal.timeout(10_000)), (error: unknown) => {
    assert.equal(isRetriable(error), true);
    return true;
  });
  assert.equal(source.ready(), false);
});
