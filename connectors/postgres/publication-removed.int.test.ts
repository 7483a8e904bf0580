/**
 * A captured table taken out of the publication Sluice owns while capture streams (an operator's or a migration
 * tool's ALTER PUBLICATION ... DROP TABLE / SET TABLE): its changes stop reaching the WAL stream. Found on a live
 * deployment: the table's changes were lost without a word until the next restart put it back. Now the catalog look
 * that finds new tables puts it back too, empties its targets and reads its rows again (its changes meanwhile,
 * deletes included, were never streamed).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type pg from "pg";
import type { Pump } from "../common/online-snapshot-test-support.ts";
import { Fold, noTasks, pump, stopPumps, waitFor } from "../common/online-snapshot-test-support.ts";
import { isSnapshotIncomplete } from "./positions.ts";
import { adminClient, checkpointing, cleanUp, newSource, randomName, sourceConfig } from "./int-test-support.ts";
import type { PostgresSource } from "./source.ts";
import type { PostgresSourceConfig } from "../../config/schema.ts";
import type { Logger } from "../../runtime/logger.ts";
import { listTables } from "./catalog.ts";
import { captureNames, ensurePublication } from "./slot-setup.ts";

const schema = randomName("unpub");
let admin: pg.Client;
const configs: ReturnType<typeof sourceConfig>[] = [];

before(async () => {
  admin = await adminClient();
  await admin.query(`CREATE SCHEMA "${schema}"`);
  await admin.query(`CREATE TABLE "${schema}".items (id int PRIMARY KEY, v int NOT NULL, note text)`);
  await admin.query(`INSERT INTO "${schema}".items SELECT i, i, 'n' || i FROM generate_series(1, 200) i`);
});

after(async () => {
  for (const c of configs) await cleanUp(admin, c);
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin.end();
});

const published = async (publication: string | undefined): Promise<boolean> =>
  (await admin.query(`SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = 'items'`, [publication, schema])).rowCount === 1;

/**
 * Streams the tables `pattern` names, once the initial snapshot is done, while `body` runs with what `table` received
 * (its fold); then `table`'s rows must be there as the server holds them (those deleted meanwhile gone, the rest with their
 * latest value).
 */
async function whileCapturing(pattern: string, table: string, body: (c: PostgresSourceConfig, fold: Fold, state: Pump) => Promise<void>): Promise<void> {
  const c = sourceConfig({ tables: [pattern], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 100 }, heartbeat_interval: 500 });
  configs.push(c);
  const opened: PostgresSource[] = [];
  const pumps: Pump[] = [];
  const stopCheckpoints = checkpointing();
  try {
    const source = newSource(c, { tableDiscoveryMs: 300 });
    opened.push(source);
    await source.connect(null, AbortSignal.timeout(30_000));
    const fold = new Fold(table);
    const state = pump(source, [fold]);
    pumps.push(state);
    await waitFor("the initial snapshot", () => state.checkpoint !== null && !isSnapshotIncomplete(state.checkpoint.position) && noTasks(state));
    await body(c, fold, state);

    const rows = await admin.query<{ id: string; v: string }>(`SELECT id, v FROM "${schema}".${table} ORDER BY id`);
    const visible = fold.visible();
    assert.deepEqual([...visible.keys()].map(Number).sort((a, b) => a - b), rows.rows.map((r) => Number(r.id)), "the rows deleted meanwhile are gone");
    assert.ok(rows.rows.every((r) => visible.get(r.id)?.["v"] === Number(r.v)), "every row with its latest value");
  } finally {
    await stopCheckpoints();
    await stopPumps(pumps, opened);
  }
}

test("a captured table dropped from the publication while capture streams is put back, emptied and read again, without a restart", async () => {
  await whileCapturing(`${schema}.*`, "items", async (c, fold, state) => {
    assert.equal(fold.visible().size, 200);

    await admin.query(`ALTER PUBLICATION "${c.publication}" DROP TABLE "${schema}".items`);
    // Changes while the table is out of the publication: never streamed.
    await admin.query(`UPDATE "${schema}".items SET v = -v WHERE id <= 10`);
    await admin.query(`DELETE FROM "${schema}".items WHERE id > 190`);
    await admin.query(`INSERT INTO "${schema}".items VALUES (1000, 1000, 'while out')`);

    await waitFor("the table back in the publication", () => published(c.publication), 30_000);
    await waitFor("the table read again", () => fold.visible().get("1000")?.["note"] === "while out" && noTasks(state), 60_000);
    await admin.query(`INSERT INTO "${schema}".items VALUES (1001, 1001, 'streamed')`);
    await waitFor("a later change streamed", () => fold.visible().get("1001")?.["note"] === "streamed", 30_000);
  });
});

test("a publication set to leave out updates and deletes while capture streams publishes them again, and the tables are emptied and read again", async () => {
  await admin.query(`CREATE TABLE "${schema}".acts (id int PRIMARY KEY, v int NOT NULL, note text)`);
  await admin.query(`INSERT INTO "${schema}".acts SELECT i, i, 'n' || i FROM generate_series(1, 200) i`);
  await whileCapturing(`${schema}.acts`, "acts", async (c, fold, state) => {
    await admin.query(`ALTER PUBLICATION "${c.publication}" SET (publish = 'insert')`);
    // pgoutput drops these: never streamed.
    await admin.query(`UPDATE "${schema}".acts SET v = -v WHERE id <= 10`);
    await admin.query(`DELETE FROM "${schema}".acts WHERE id > 190`);
    await admin.query(`INSERT INTO "${schema}".acts VALUES (1000, 1000, 'while insert only')`);

    const publishesAll = async () =>
      (await admin.query(`SELECT 1 FROM pg_publication WHERE pubname = $1 AND pubinsert AND pubupdate AND pubdelete AND pubtruncate`, [c.publication])).rowCount === 1;
    await waitFor("the publication publishing every operation again", publishesAll, 30_000);
    await waitFor("the table read again", () => fold.visible().get("1")?.["v"] === -1 && !fold.visible().has("200") && noTasks(state), 60_000);
    await admin.query(`UPDATE "${schema}".acts SET note = 'streamed' WHERE id = 2`);
    await waitFor("a later update streamed", () => fold.visible().get("2")?.["note"] === "streamed", 30_000);
  });
});

test("a publication set to stop publishing via the partition root while capture streams is set back, and the partitioned tables are emptied and read again", async () => {
  await admin.query(`CREATE TABLE "${schema}".parts (id int PRIMARY KEY, v int NOT NULL, note text) PARTITION BY RANGE (id)`);
  await admin.query(`CREATE TABLE "${schema}".parts_a PARTITION OF "${schema}".parts FOR VALUES FROM (0) TO (100)`);
  await admin.query(`CREATE TABLE "${schema}".parts_b PARTITION OF "${schema}".parts FOR VALUES FROM (100) TO (1000)`);
  await admin.query(`INSERT INTO "${schema}".parts SELECT i, i, 'n' || i FROM generate_series(1, 200) i`);
  await whileCapturing(`${schema}.parts`, "parts", async (c, fold, state) => {
    await admin.query(`ALTER PUBLICATION "${c.publication}" SET (publish_via_partition_root = false)`);
    // Sent under parts_a's and parts_b's names, which are not captured.
    await admin.query(`UPDATE "${schema}".parts SET v = -v WHERE id <= 10`);
    await admin.query(`DELETE FROM "${schema}".parts WHERE id > 190`);

    const viaRoot = async () => (await admin.query(`SELECT 1 FROM pg_publication WHERE pubname = $1 AND pubviaroot`, [c.publication])).rowCount === 1;
    await waitFor("the publication publishing via the root again", viaRoot, 30_000);
    await waitFor("the table read again", () => fold.visible().get("1")?.["v"] === -1 && !fold.visible().has("200") && noTasks(state), 60_000);
    await admin.query(`UPDATE "${schema}".parts SET note = 'streamed' WHERE id = 150`);
    await waitFor("a later update streamed", () => fold.visible().get("150")?.["note"] === "streamed", 30_000);
  });
});

test("a partitioned table in a publication that does not publish via the root is not taken for missing from it (the start warned it could not be added, 'so they are not captured')", async () => {
  await admin.query(`CREATE TABLE "${schema}".rooted (id int PRIMARY KEY) PARTITION BY RANGE (id)`);
  await admin.query(`CREATE TABLE "${schema}".rooted_a PARTITION OF "${schema}".rooted FOR VALUES FROM (0) TO (100)`);
  const c = sourceConfig({ tables: [`${schema}.rooted`] });
  configs.push(c);
  await admin.query(`CREATE PUBLICATION "${c.publication!}" FOR TABLE "${schema}".rooted WITH (publish_via_partition_root = false)`);
  const tables = await listTables(admin, (s, t) => s === schema && t === "rooted");
  assert.deepEqual(tables.map((t) => t.kind), ["p"]);
  const warnings: string[] = [];
  const logger = { info: () => undefined, warn: (_fields: unknown, message: string) => void warnings.push(message) } as unknown as Logger;
  const version = Number((await admin.query<{ v: string }>("SHOW server_version_num")).rows[0]!.v);
  const added = await ensurePublication(admin, c, captureNames(c), tables, version, logger, {});
  assert.deepEqual(added, []);
  assert.deepEqual(warnings, ["publication does not publish via the partition root: changes of partitioned tables arrive under the partitions' names"]);
});
