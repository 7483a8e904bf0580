/**
 * A non-transactional logical message (Sluice's heartbeat, or any other session's) carries the LSN
 * where its WAL record ends, which is where the next record starts: when that record is a commit,
 * the message reaches the stream just before that transaction and at its commit LSN. Taken as
 * "decoded through the commit LSN", it let a checkpoint claim the whole transaction while only its
 * first batch was read; a crash then resumed after the commit and lost the rest (issue 12: the
 * long chaos run's extra DuckDB row was a delete in the lost tail of a 45,000-row transaction).
 * Real PostgreSQL from test/services.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type pg from "pg";
import { comparePositions } from "../contracts.ts";
import type { ChangeEvent, Checkpoint } from "../contracts.ts";
import { adminClient, cleanUp, newSource, randomName, readUntil, sourceConfig } from "./int-test-support.ts";
import type { Collected } from "./int-test-support.ts";
import { throughPosition } from "./positions.ts";

const schema = randomName("msgedge");
const table = `"${schema}".items`;
const ROWS = 600;
let admin: pg.Client;
const config = sourceConfig({ tables: [`${schema}.*`], snapshot: { mode: "never", parallelism: 1, chunk_rows: 100 }, heartbeat_interval: 0 });

before(async () => {
  admin = await adminClient();
  await admin.query(`CREATE SCHEMA "${schema}"`);
  await admin.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v text)`);
});

after(async () => {
  await cleanUp(admin, config, schema);
  await admin.end();
});

const ids = (events: readonly ChangeEvent[], from: number) => events.filter((e) => e.source.table === "items" && Number(e.key["id"]) >= from && Number(e.key["id"]) < from + ROWS);

test("a logical message written just before a transaction's commit record does not let a checkpoint claim that transaction early; a resume from any batch's checkpoint reads the rest", { timeout: 180_000 }, async () => {
  let source = newSource(config, { maxBatchEvents: 50 });
  await source.connect(null, AbortSignal.timeout(30_000));
  let collected: Collected = { events: [], batches: [] };
  let from = 0;
  let commit = 0n;
  try {
    // The message must be the record right before the commit; another session's record in between
    // (the server is shared) spoils an attempt, so try a few times.
    for (let attempt = 0; attempt < 8; attempt++) {
      from = 1 + attempt * ROWS;
      await admin.query("BEGIN");
      await admin.query(`INSERT INTO ${table} SELECT g, repeat('x', 200) FROM generate_series($1::int, $2::int) AS g`, [from, from + ROWS - 1]);
      const { rows } = await admin.query<{ end: string }>("SELECT pg_logical_emit_message(false, 'test.edge', 'x')::text AS end");
      await admin.query("COMMIT");
      collected = await readUntil(source, (c) => ids(c.events, from).length === ROWS, { ack: false, timeoutMs: 60_000 });
      commit = ids(collected.events, from)[0]!.source.position.commit;
      const [hi, lo] = rows[0]!.end.split("/").map((part) => BigInt(`0x${part}`));
      if ((hi! << 32n) + lo! === commit) break;
      commit = 0n;
    }
    assert.notEqual(commit, 0n, "the message record never ended where the commit record began (too busy a server?)");

    const own = collected.batches.filter((b) => ids(b.events, from).length > 0);
    assert.ok(own.length > 2, `the transaction came in ${own.length} batches`);
    const complete = throughPosition(commit);
    for (const batch of own.slice(0, -1)) {
      assert.ok(comparePositions(batch.checkpoint.position, complete) < 0, `a batch with ${ids(batch.events, from).length} of the transaction's ${ROWS} rows has a checkpoint claiming all of it`);
    }
  } finally {
    await source.close();
  }

  // A crash after the first batch of the transaction: a new source resumes from its checkpoint and must read the rest.
  const first = collected.batches.find((b) => ids(b.events, from).length > 0)!;
  const seen = new Set(collected.batches.slice(0, collected.batches.indexOf(first) + 1).flatMap((b) => ids(b.events, from)).map((e) => Number(e.key["id"])));
  const checkpoint: Checkpoint = first.checkpoint;
  source = newSource(config, { maxBatchEvents: 50 });
  try {
    await source.connect(checkpoint, AbortSignal.timeout(30_000));
    await admin.query(`INSERT INTO ${table} VALUES (0, 'after')`);
    const resumed = await readUntil(source, (c) => c.events.some((e) => e.key["id"] === 0), { ack: false, timeoutMs: 60_000 });
    for (const e of ids(resumed.events, from)) seen.add(Number(e.key["id"]));
    assert.equal(seen.size, ROWS, `after resuming from ${JSON.stringify(checkpoint.position, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v))}, ${ROWS - seen.size} of the transaction's rows were never read`);
  } finally {
    await source.close();
  }
});
