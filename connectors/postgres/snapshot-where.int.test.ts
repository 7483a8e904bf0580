/**
 * An online snapshot's WHERE condition on the real PostgreSQL. It may come from whoever can write the
 * signal table, and it is evaluated with the capture role's privileges: found live, a condition
 * calling nextval() advanced a sequence once per row read (any function that writes would have run:
 * lo_from_bytea, setval, ...). The chunk reads now run in a read-only transaction, rolled back after
 * the read, so such a condition fails the snapshot and changes nothing, not even a setting.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type pg from "pg";
import type { Pump } from "../common/online-snapshot-test-support.ts";
import { Fold, noTasks, pump, stopPumps, waitFor } from "../common/online-snapshot-test-support.ts";
import { adminClient, checkpointing, cleanUp, newSource, randomName, sourceConfig } from "./int-test-support.ts";
import type { PostgresSource } from "./source.ts";

const schema = randomName("where");
const q = (name: string) => `"${schema}".${name}`;
let admin: pg.Client;
const configs: ReturnType<typeof sourceConfig>[] = [];

before(async () => {
  admin = await adminClient();
  await admin.query(`CREATE SCHEMA "${schema}"`);
  await admin.query(`CREATE TABLE ${q("items")} (id int PRIMARY KEY, v int NOT NULL)`);
  await admin.query(`INSERT INTO ${q("items")} SELECT i, i FROM generate_series(1, 50) i`);
  await admin.query(`CREATE SEQUENCE ${q("counter")}`);
});

after(async () => {
  for (const c of configs) await cleanUp(admin, c);
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin.end();
});

test("a snapshot's WHERE condition cannot write through a function it calls, nor change a setting of the connection; a condition that only reads works", async () => {
  const c = sourceConfig({ tables: [`${schema}.*`], snapshot: { mode: "never", parallelism: 1, chunk_rows: 20 }, heartbeat_interval: 500 });
  configs.push(c);
  const opened: PostgresSource[] = [];
  const pumps: Pump[] = [];
  const fold = new Fold("items");
  // Each snapshot's reads wait for the slot to pass its watermark: a record of the running transactions every 500 ms instead of the server's ~15 s.
  const stopCheckpoints = checkpointing();
  try {
    const source = newSource(c);
    opened.push(source);
    await source.connect(null, AbortSignal.timeout(30_000));
    const state = pump(source, [fold]);
    pumps.push(state);

    await source.snapshots.request(`${schema}.items`, `nextval('${q("counter")}') > 0`, "test");
    await waitFor("the snapshot refused", () => source.snapshots.list().failed.length === 1 && noTasks(state), 30_000);
    assert.match(source.snapshots.list().failed[0]!.error, /read-only transaction/);
    const advanced = async () => (await admin.query<{ called: string }>(`SELECT is_called::text AS called FROM ${q("counter")}`)).rows[0]!.called;
    assert.equal(await advanced(), "false", "the sequence was never advanced");
    assert.equal(fold.reads.size, 0);

    // A setting made by the condition does not outlive the chunk: the next chunk's read stays read-only.
    await source.snapshots.request(`${schema}.items`, `set_config('default_transaction_read_only', 'off', false) IS NOT NULL AND (id <= 20 OR nextval('${q("counter")}') > 0)`, "test");
    await waitFor("the second snapshot refused", () => source.snapshots.list().failed.length === 2 && noTasks(state), 30_000);
    assert.equal(await advanced(), "false");

    await source.snapshots.request(`${schema}.items`, "v % 2 = 0", "test");
    // Reads go above the earlier ones: a record of the running transactions lets restart_lsn pass them without waiting for the next.
    await admin.query("CHECKPOINT");
    // (The refused second snapshot's first chunk, ids 1 to 20, was read before its second failed.)
    const evens = Array.from({ length: 25 }, (_, i) => String(2 * (i + 1)));
    await waitFor("the even rows read", () => evens.every((id) => fold.reads.has(id)) && noTasks(state), 90_000);
    assert.ok([...fold.reads.keys()].every((id) => Number(id) <= 20 || Number(id) % 2 === 0), "only the rows the condition selects");
  } finally {
    await stopCheckpoints();
    await stopPumps(pumps, opened);
  }
});

test("a WHERE condition that would close the chunk query's parenthesis (adding rows of its choosing) is refused when the snapshot is planned", async () => {
  const c = sourceConfig({ tables: [`${schema}.*`], snapshot: { mode: "never", parallelism: 1, chunk_rows: 20 }, heartbeat_interval: 500 });
  configs.push(c);
  const source = newSource(c);
  try {
    await source.connect(null, AbortSignal.timeout(30_000));
    for (const condition of ["true) UNION ALL SELECT 1 WHERE (true", "v = E'\\\\') OR (true OR ''", "v::text = $$($$) OR ($$)$$ = ''"]) {
      await assert.rejects(source.snapshots.plan(`${schema}.items`, condition), (error: { code?: string; message: string }) => error.code === "SNAPSHOT_WHERE_INVALID" && /one SQL expression/.test(error.message), condition);
    }
    const plan = await source.snapshots.plan(`${schema}.items`, "v::text = ')' OR (id < 3)");
    assert.ok(plan, "parentheses inside a string are text");
  } finally {
    await stopPumps([], [source]);
  }
});
