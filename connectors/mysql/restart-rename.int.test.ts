/**
 * A table renamed (RENAME TABLE) or a column renamed (RENAME COLUMN) while Sluice is stopped: the binlog holds the
 * statement, which the resumed stream reads and follows as one seen live, so the new name's targets get every row,
 * not only those changed after the restart. The schema history kept beside the checkpoints (the daemon's file; here
 * one store for both runs) must not already know the new name at the resume position.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type { Connection } from "mysql2/promise";
import type { Checkpoint } from "../contracts.ts";
import type { Pump } from "../common/online-snapshot-test-support.ts";
import { Fold, noTasks, pump, stopPumps, waitFor } from "../common/online-snapshot-test-support.ts";
import { adminConnection, dropDatabase, newSource, randomName, sourceConfig } from "./int-test-support.ts";
import { MemorySchemaHistoryStore } from "./schema/schema-history.ts";
import type { SchemaHistoryStore } from "./schema/schema-history.ts";

const ROWS = 500;
const database = randomName("restartren");
const t = (table: string) => `\`${database}\`.\`${table}\``;
let admin: Connection;

before(async () => {
  admin = await adminConnection(database);
});

after(async () => {
  await dropDatabase(admin, database);
  await admin.end();
});

const config = sourceConfig({ tables: [`${database}.*`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 1000 }, heartbeat_interval: 500 });
const streaming = (state: Pump): boolean => state.checkpoint !== null && !(state.checkpoint.position.resume ?? "").includes('"snapshot":"incomplete"');

async function run(history: SchemaHistoryStore, from: Checkpoint | null, folds: readonly Fold[], work: (state: Pump) => Promise<void>): Promise<Checkpoint> {
  const source = newSource(config, { schemaHistory: history });
  const pumps: Pump[] = [];
  try {
    await source.connect(from, AbortSignal.timeout(30_000));
    const state = pump(source, folds);
    pumps.push(state);
    await work(state);
    return state.checkpoint!;
  } finally {
    await stopPumps(pumps, [source]);
  }
}

test("a table renamed, then a column renamed, while Sluice is stopped: the new name's targets hold every row after the next start", async () => {
  await admin.query(`CREATE TABLE ${t("orig")} (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(200))`);
  await admin.query(`INSERT INTO ${t("orig")} SELECT seq, seq, CONCAT('n', seq) FROM seq_1_to_${ROWS}`);
  const history = new MemorySchemaHistoryStore();
  const orig = new Fold("orig");
  let checkpoint = await run(history, null, [orig], async (state) => {
    await waitFor("the initial snapshot", () => streaming(state) && orig.visible().size === ROWS, 60_000);
    await admin.query(`UPDATE ${t("orig")} SET v = -v WHERE id = 1`);
    await waitFor("the update", () => orig.visible().get("1")?.["v"] === -1, 30_000);
  });

  await admin.query(`RENAME TABLE ${t("orig")} TO ${t("moved")}`);
  // A start that reads the new name's definition for want of history at the checkpoint, then dies before a later
  // checkpoint is stored: the next start from the same checkpoint still tells the rename.
  const early = newSource(config, { schemaHistory: history });
  await early.connect(checkpoint, AbortSignal.timeout(30_000));
  await early.close();
  const moved = new Fold("moved");
  checkpoint = await run(history, checkpoint, [moved], async (state) => {
    await admin.query(`UPDATE ${t("moved")} SET v = -v WHERE id = 2`);
    await waitFor("every row under the new name", () => moved.visible().size === ROWS && noTasks(state), 60_000);
  });
  assert.equal(moved.visible().get("1")?.["v"], -1);

  await admin.query(`ALTER TABLE ${t("moved")} RENAME COLUMN note TO remark`);
  await run(history, checkpoint, [moved], async (state) => {
    await admin.query(`UPDATE ${t("moved")} SET v = 3 WHERE id = 3`);
    await waitFor("every row with the renamed column", () => [...moved.visible().values()].filter((row) => row["remark"] !== undefined).length === ROWS && noTasks(state), 60_000);
  });
  assert.equal(moved.visible().get("7")?.["remark"], "n7");
});
