/**
 * A schema whose name holds a dot ("sales.eu", a quoted identifier) on the real PostgreSQL. Its tables
 * are named "sales.eu.orders" in requests and checkpoints, which does not say which dot ends the
 * schema: the online snapshot a rename or renamed columns ask for, and `sluice snapshot --table`, read
 * it as the schema and table that exist (found live: splitting at the first dot read schema "sales",
 * table "eu.orders", so a renamed column's rows were never read again, silently, and a renamed table's
 * read was refused as "does not capture").
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type pg from "pg";
import type { Pump } from "../common/online-snapshot-test-support.ts";
import { Fold, noTasks, pump, stopPumps, waitFor } from "../common/online-snapshot-test-support.ts";
import { adminClient, checkpointing, cleanUp, newSource, randomName, sourceConfig } from "./int-test-support.ts";
import { isSnapshotIncomplete } from "./positions.ts";
import type { PostgresSource } from "./source.ts";

const base = randomName("dotted");
// A dot in the schema's name; the pattern's "?" matches it (patterns allow letters, digits, _ $ - and wildcards).
const schema = `${base}.eu`;
const t = (table: string) => `"${schema}"."${table}"`;
let admin: pg.Client;
const configs: ReturnType<typeof sourceConfig>[] = [];

before(async () => {
  admin = await adminClient();
  await admin.query(`CREATE SCHEMA "${schema}"`);
});

after(async () => {
  for (const c of configs) await cleanUp(admin, c);
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin.end();
});

const streamingOnly = (state: Pump): boolean => state.checkpoint !== null && !isSnapshotIncomplete(state.checkpoint.position) && noTasks(state);

test("a table of a schema named with a dot is read again after a column rename and a table rename, and sluice snapshot plans it", async () => {
  await admin.query(`CREATE TABLE ${t("orders")} (id int PRIMARY KEY, v int NOT NULL)`);
  await admin.query(`INSERT INTO ${t("orders")} SELECT i, i FROM generate_series(1, 300) i`);
  const c = sourceConfig({ tables: [`${base}?eu.*`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 100 }, heartbeat_interval: 500 });
  configs.push(c);
  const opened: PostgresSource[] = [];
  const pumps: Pump[] = [];
  const stopCheckpoints = checkpointing();
  const orders = new Fold("orders");
  const moved = new Fold("moved.x");
  try {
    const source = newSource(c, { tableDiscoveryMs: 300 });
    opened.push(source);
    await source.connect(null, AbortSignal.timeout(30_000));
    const state = pump(source, [orders, moved]);
    pumps.push(state);
    await waitFor("the initial snapshot", () => streamingOnly(state) && orders.reads.size === 300);

    const plan = await source.snapshots.plan(`${schema}.orders`, null);
    assert.deepEqual([plan.table, plan.key], [`${schema}.orders`, ["id"]]);

    // Rows not changed since would have no value under the new name without a read.
    await admin.query(`ALTER TABLE ${t("orders")} RENAME COLUMN v TO w`);
    await admin.query(`UPDATE ${t("orders")} SET w = -1 WHERE id = 1`);
    await admin.query("CHECKPOINT");
    await waitFor("every row read again", () => orders.reads.size === 300 && [...orders.reads.values()].every((n) => n === 2) && noTasks(state), 60_000);
    assert.equal(orders.visible().get("2")?.["w"], 2, "a row not changed since holds its value under the new name");

    // Renamed (to a name with a dot of its own): only the updated row would reach the new name without a read.
    await admin.query(`ALTER TABLE ${t("orders")} RENAME TO "moved.x"`);
    await admin.query(`UPDATE ${t("moved.x")} SET w = -2 WHERE id = 2`);
    await waitFor("every row under the new name", () => moved.visible().size === 300 && noTasks(state), 60_000);
    assert.equal(moved.visible().get("3")?.["w"], 3);
    assert.equal(moved.visible().get("2")?.["w"], -2);
  } finally {
    await stopCheckpoints();
    await stopPumps(pumps, opened);
  }
});
