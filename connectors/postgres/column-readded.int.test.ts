/**
 * A column dropped and added again under its name, on the real PostgreSQL, while the stream still has changes made
 * before it to decode: those changes are decoded by the layout their Relation message announced, not by the catalog's.
 * The change sets off a read of the table again, which reads the catalog's layout; that layout used to replace the
 * one the stream decodes by, so the earlier tuples' values went into the wrong columns (two text columns: swapped,
 * silently) or failed to decode (PG_VALUE_UNDECODABLE, the daemon stopped).
 *
 * A column added with a default that is an expression (now(), gen_random_uuid()) gives the rows already there values
 * no change carries and no Avro default can give: the table is read again, as MySQL's source does; so does an identity
 * column added (its sequence fills the rows, with no default entry in the catalog).
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type pg from "pg";
import { pino } from "pino";
import type { ChangeEvent } from "../contracts.ts";
import { adminClient, byId, checkpointing, cleanUp, newSource, randomName, readUntil, snapshotFinished, sourceConfig } from "./int-test-support.ts";

const schema = randomName("s_readded");
const config = sourceConfig({ tables: [`${schema}.*`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 100 } });
let admin: pg.Client;

before(async () => {
  admin = await adminClient();
  await admin.query(`CREATE SCHEMA "${schema}"`);
  await admin.query(`CREATE TABLE "${schema}".same_tx (id int PRIMARY KEY, a text, b text)`);
  await admin.query(`CREATE TABLE "${schema}".lagging (id int PRIMARY KEY, a text, n int)`);
  await admin.query(`CREATE TABLE "${schema}".added (id int PRIMARY KEY, n int)`);
  await admin.query(`INSERT INTO "${schema}".added VALUES (1, 1), (2, 2), (3, 3)`);
  for (const table of ["identity_added", "partial_between"]) {
    await admin.query(`CREATE TABLE "${schema}".${table} (id int PRIMARY KEY, n int); INSERT INTO "${schema}".${table} VALUES (1, 1), (2, 2), (3, 3)`);
  }
  await admin.query(`INSERT INTO "${schema}".same_tx VALUES (1, 'a1', 'b1'); INSERT INTO "${schema}".lagging VALUES (1, 'a1', 1)`);
});

after(async () => {
  await cleanUp(admin, config, schema);
  await admin.end();
});

test("changes made before a column was dropped and added again are decoded by their own layout", { timeout: 60_000 }, async () => {
  const source = newSource(config);
  await source.connect(null, AbortSignal.timeout(30_000));
  try {
    await readUntil(source, snapshotFinished);
    // In the transaction of the DROP and ADD: the insert before them has the layout (id, a, b), the one after (id, b, a).
    await admin.query(`BEGIN; INSERT INTO "${schema}".same_tx VALUES (2, 'a2', 'b2');
      ALTER TABLE "${schema}".same_tx DROP COLUMN a; ALTER TABLE "${schema}".same_tx ADD COLUMN a text;
      INSERT INTO "${schema}".same_tx VALUES (3, 'b3', 'a3'); COMMIT`);
    // Committed before the DROP and ADD, decoded after them (a stream behind, or a restart): the catalog is (id, n, a) by then.
    await admin.query(`INSERT INTO "${schema}".lagging VALUES (2, 'a2', 2)`);
    await admin.query(`ALTER TABLE "${schema}".lagging DROP COLUMN a; ALTER TABLE "${schema}".lagging ADD COLUMN a text`);
    await admin.query(`INSERT INTO "${schema}".lagging VALUES (3, 3, 'a3')`);

    const ofTable = (events: readonly ChangeEvent[], table: string) => events.filter((e) => e.schema.table === table);
    const { events } = await readUntil(source, (c) => ofTable(c.events, "same_tx").filter((e) => e.op === "c").length >= 2 && ofTable(c.events, "lagging").filter((e) => e.op === "c").length >= 2);
    const sameTx = ofTable(events, "same_tx");
    const lagging = ofTable(events, "lagging");
    assert.deepEqual(byId(sameTx, 2, "c")?.after, { id: 2, a: "a2", b: "b2" }, "the insert before the DROP keeps a and b apart");
    assert.deepEqual(byId(sameTx, 3, "c")?.after, { id: 3, b: "b3", a: "a3" });
    assert.deepEqual(byId(lagging, 2, "c")?.after, { id: 2, a: "a2", n: 2 }, "the insert committed before the DROP decodes");
    assert.deepEqual(byId(lagging, 3, "c")?.after, { id: 3, n: 3, a: "a3" });
  } finally {
    await source.close();
  }
});

test("a column added with an expression default reads the table again, so rows not changed since get their values", { timeout: 60_000 }, async () => {
  const c = sourceConfig({ tables: [`${schema}.added`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 100 } });
  const source = newSource(c);
  await source.connect(null, AbortSignal.timeout(30_000));
  // Online reads wait for the slot's restart_lsn to pass the ALTER: checkpoints move it on within a second.
  const stopCheckpoints = checkpointing(300);
  try {
    await readUntil(source, snapshotFinished);
    await admin.query(`ALTER TABLE "${schema}".added ADD COLUMN made timestamptz NOT NULL DEFAULT now(), ADD COLUMN u uuid DEFAULT gen_random_uuid(), ADD COLUMN lit text DEFAULT 'x'`);
    await admin.query(`UPDATE "${schema}".added SET n = 10 WHERE id = 1`);
    const readAgain = (events: readonly ChangeEvent[], id: number) => events.find((e) => e.op === "r" && e.after?.["id"] === id && e.after["made"] != null);
    const { events } = await readUntil(source, (collected) => readAgain(collected.events, 2) !== undefined && readAgain(collected.events, 3) !== undefined, { timeoutMs: 20_000 });
    const rows = await admin.query<{ id: string; u: string }>(`SELECT id, u::text FROM "${schema}".added ORDER BY id`);
    for (const id of [2, 3]) {
      const after = readAgain(events, id)!.after!;
      assert.equal(after["u"], rows.rows[id - 1]!.u, `row ${id}: the uuid its ADD COLUMN gave it`);
      assert.equal(after["lit"], "x");
    }
  } finally {
    await stopCheckpoints();
    await source.close();
    await cleanUp(admin, c);
  }
});

test("an identity column added (no default entry: its sequence fills the rows already there) reads the table again", { timeout: 60_000 }, async () => {
  const c = sourceConfig({ tables: [`${schema}.identity_added`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 100 } });
  const warnings: string[] = [];
  const source = newSource(c, { logger: pino({ level: "warn" }, { write: (line: string) => void warnings.push((JSON.parse(line) as { msg: string }).msg) }) });
  await source.connect(null, AbortSignal.timeout(30_000));
  const stopCheckpoints = checkpointing(300);
  try {
    await readUntil(source, snapshotFinished);
    await admin.query(`ALTER TABLE "${schema}".identity_added ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY`);
    await admin.query(`UPDATE "${schema}".identity_added SET n = 10 WHERE id = 1`);
    const readAgain = (events: readonly ChangeEvent[], id: number) => events.find((e) => e.op === "r" && e.after?.["id"] === id && e.after["seq"] != null);
    const { events } = await readUntil(source, (collected) => readAgain(collected.events, 2) !== undefined && readAgain(collected.events, 3) !== undefined, { timeoutMs: 20_000 });
    const rows = await admin.query<{ id: number; seq: string }>(`SELECT id, seq::text FROM "${schema}".identity_added ORDER BY id`);
    for (const id of [2, 3]) assert.equal(String(readAgain(events, id)!.after!["seq"]), rows.rows[id - 1]!.seq, `row ${id}: the value its ADD COLUMN gave it`);
    const told = warnings.find((msg) => msg.includes("its rows are read again"));
    assert.match(told ?? "", /columns seq were added with values the rows already there took from a default that is no literal or an identity/);
    assert.doesNotMatch(told ?? "", /renamed/);
  } finally {
    await stopCheckpoints();
    await source.close();
    await cleanUp(admin, c);
  }
});

test("a column added with an expression default is read again even when an online snapshot of part of the table read the catalog between the ALTER and the stream's Relation message", { timeout: 60_000 }, async () => {
  const c = sourceConfig({ tables: [`${schema}.partial_between`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 100 } });
  const source = newSource(c);
  await source.connect(null, AbortSignal.timeout(30_000));
  const stopCheckpoints = checkpointing(300);
  try {
    await readUntil(source, snapshotFinished);
    // Online snapshots are taken once the stream runs: ask for one of no rows until it is taken.
    for (let attempt = 0; ; attempt++) {
      const taken = await source.snapshots.request(`${schema}.partial_between`, "id = 0", "test").then(
        () => true,
        (error: { code?: string }) => {
          if (error.code !== "SNAPSHOT_NOT_STREAMING" || attempt > 100) throw error;
          return false;
        },
      );
      if (taken) break;
      await readUntil(source, () => false, { timeoutMs: 100 }).catch(() => undefined);
    }
    await admin.query(`ALTER TABLE "${schema}".partial_between ADD COLUMN made timestamptz NOT NULL DEFAULT now()`);
    // No change of the table yet, so no Relation message: this request reads the new layout from the catalog first.
    await source.snapshots.request(`${schema}.partial_between`, "id = 1", "test");
    await admin.query(`UPDATE "${schema}".partial_between SET n = 20 WHERE id = 2`);
    const readAgain = (events: readonly ChangeEvent[], id: number) => events.find((e) => e.op === "r" && e.after?.["id"] === id && e.after["made"] != null);
    await readUntil(source, (collected) => readAgain(collected.events, 3) !== undefined, { timeoutMs: 20_000 });
  } finally {
    await stopCheckpoints();
    await source.close();
    await cleanUp(admin, c);
  }
});
