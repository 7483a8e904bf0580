/**
 * A stop while the initial (exported) snapshot is read: its checkpoints carried no catalog marks, so the start resuming
 * it read them afresh from the catalog and took a catalog change made meanwhile as the state of things: a captured
 * table taken out of the publication and put back while Sluice was stopped lost its changes in between, without a word.
 * The snapshot's checkpoints now carry the marks read before it, and the resuming start compares with them.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type pg from "pg";
import type { Pump } from "../common/online-snapshot-test-support.ts";
import { Fold, noTasks, pump, stopPumps, waitFor } from "../common/online-snapshot-test-support.ts";
import { adminClient, checkpointing, cleanUp, newSource, randomName, readUntil, sourceConfig } from "./int-test-support.ts";
import { exportedSnapshotProgress } from "./positions.ts";

const schema = randomName("pgpart_snapstop");
let admin: pg.Client;
let stopCheckpoints: () => Promise<void>;
const configs: ReturnType<typeof sourceConfig>[] = [];

before(async () => {
  admin = await adminClient();
  // The read again waits for the slot's restart_lsn to pass what was handed on: CHECKPOINTs move it on sooner.
  stopCheckpoints = checkpointing();
  await admin.query(`CREATE SCHEMA "${schema}"`);
});

after(async () => {
  await stopCheckpoints();
  for (const c of configs) await cleanUp(admin, c);
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin.end();
});

test("a table taken out of the publication and put back (or left out) while Sluice is stopped during the initial snapshot is read again when the snapshot resumes", async () => {
  // Largest first: `first` and `left` are read (and done) before `second`, in whose read the snapshot stops.
  await admin.query(`CREATE TABLE "${schema}".first (id int PRIMARY KEY, v text); INSERT INTO "${schema}".first SELECT i, 'r' || i FROM generate_series(1, 60) i`);
  await admin.query(`CREATE TABLE "${schema}".left (id int PRIMARY KEY, v text); INSERT INTO "${schema}".left SELECT i, 'r' || i FROM generate_series(1, 50) i`);
  await admin.query(`CREATE TABLE "${schema}".second (id int PRIMARY KEY, v text); INSERT INTO "${schema}".second SELECT i, 'r' || i FROM generate_series(1, 40) i`);
  await admin.query(`ANALYZE "${schema}".first; ANALYZE "${schema}".left; ANALYZE "${schema}".second`);
  const c = sourceConfig({ tables: [`${schema}.*`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 10 }, heartbeat_interval: 300 });
  configs.push(c);
  const fold = new Fold("first");
  const leftFold = new Fold("left");

  const interruptedSource = newSource(c, { maxBatchEvents: 10, tableDiscoveryMs: 300 });
  let interrupted;
  try {
    await interruptedSource.connect(null, AbortSignal.timeout(30_000));
    const collected = await readUntil(interruptedSource, (all) => all.events.some((e) => e.source.table === "second"));
    for (const event of collected.events) {
      fold.apply(event);
      leftFold.apply(event);
    }
    interrupted = collected.batches.at(-1)!.checkpoint;
  } finally {
    await interruptedSource.close();
  }
  assert.deepEqual(exportedSnapshotProgress(interrupted.position)?.done, [`${schema}.first`, `${schema}.left`], "stopped after `first` and `left`, during `second`");
  assert.equal(fold.visible().size, 60);

  // Stopped: out of the publication, changed, back in. pgoutput never sends the changes made while it was out.
  await admin.query(`ALTER PUBLICATION "${c.publication}" DROP TABLE "${schema}".first`);
  await admin.query(`UPDATE "${schema}".first SET v = 'while out' WHERE id <= 5`);
  await admin.query(`DELETE FROM "${schema}".first WHERE id > 55`);
  await admin.query(`ALTER PUBLICATION "${c.publication}" ADD TABLE "${schema}".first`);
  // Left out: the resuming start puts it back, with no backfill (it resumes a snapshot, nothing is asked for then).
  await admin.query(`ALTER PUBLICATION "${c.publication}" DROP TABLE "${schema}".left`);
  await admin.query(`UPDATE "${schema}".left SET v = 'while out' WHERE id = 1`);

  const source = newSource(c, { tableDiscoveryMs: 300 });
  const pumps: Pump[] = [];
  try {
    await source.connect(interrupted, AbortSignal.timeout(30_000));
    const state = pump(source, [fold, leftFold]);
    state.checkpoint = interrupted;
    pumps.push(state);
    await waitFor("first read again", () => fold.visible().get("1")?.["v"] === "while out" && fold.visible().size === 55 && leftFold.visible().get("1")?.["v"] === "while out" && noTasks(state), 60_000).catch(() => undefined);
    assert.equal(fold.visible().get("1")?.["v"], "while out", "the update made while out");
    assert.equal(fold.visible().size, 55, "the rows deleted while out removed");
    assert.equal(leftFold.visible().get("1")?.["v"], "while out", "the table left out, put back by the start");
  } finally {
    await stopPumps(pumps, [source]);
  }
});
