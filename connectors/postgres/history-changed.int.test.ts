/**
 * A checkpoint beyond the end of the server's WAL (the database restored from a backup or a disk
 * snapshot, or into a new cluster, or failed over to a server behind the old one: LSNs lower than
 * the checkpoint's) is refused with PG_HISTORY_CHANGED, under snapshot.mode: when-needed too.
 * Before, when-needed took a new snapshot on a new slot, whose versions sorted below those the
 * topics and sinks held (they kept their old rows); with the slot restored along with the data,
 * the stream resumed at the checkpoint's LSN, skipping this server's changes up to it. The
 * restored server is played by a checkpoint moved 1 TiB of WAL ahead of the shared server's.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type pg from "pg";
import type { Checkpoint } from "../contracts.ts";
import { SluiceError } from "../errors.ts";
import { adminClient, cleanUp, newSource, randomName, readUntil, slotRow, snapshotFinished, sourceConfig } from "./int-test-support.ts";

const schema = randomName("history");
let admin: pg.Client;
const configs: ReturnType<typeof sourceConfig>[] = [];

before(async () => {
  admin = await adminClient();
  await admin.query(`CREATE SCHEMA "${schema}"`);
  await admin.query(`CREATE TABLE "${schema}".t (id int PRIMARY KEY)`);
  await admin.query(`INSERT INTO "${schema}".t SELECT generate_series(1, 20)`);
});

after(async () => {
  for (const config of configs) await cleanUp(admin, config);
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin.end();
});

/** A checkpoint of a first run, moved `ahead` bytes of WAL beyond where it was taken. */
async function checkpointAhead(mode: "initial" | "when-needed", ahead: bigint): Promise<{ config: ReturnType<typeof sourceConfig>; checkpoint: Checkpoint }> {
  const config = sourceConfig({ tables: [`${schema}.t`], snapshot: { mode, parallelism: 1, chunk_rows: 100 } });
  configs.push(config);
  const source = newSource(config);
  await source.connect(null, AbortSignal.timeout(30_000));
  try {
    const { position } = (await readUntil(source, snapshotFinished)).batches.at(-1)!.checkpoint;
    return { config, checkpoint: { source: config.name, position: { ...position, commit: position.commit + ahead, change: position.change + ahead } } };
  } finally {
    await source.close();
  }
}

const historyChanged = (error: unknown): boolean => {
  assert.ok(error instanceof SluiceError);
  assert.equal(error.code, "PG_HISTORY_CHANGED");
  assert.equal(error.retriable, false);
  assert.match(error.message, /beyond the end of this server's WAL.*new deployment name/s);
  return true;
};

test("a checkpoint beyond the server's WAL end is refused under when-needed, and no new slot is taken", async () => {
  const { config, checkpoint } = await checkpointAhead("when-needed", 1n << 40n);
  await admin.query("SELECT pg_drop_replication_slot($1)", [config.slot]); // a restore into a new cluster has no slot
  const source = newSource(config);
  try {
    await assert.rejects(source.connect(checkpoint, AbortSignal.timeout(30_000)), historyChanged);
  } finally {
    await source.close();
  }
  assert.equal(await slotRow(admin, config.slot!), undefined, "no slot created");
});

test("a checkpoint beyond the server's WAL end is refused when the slot is there (restored with the data directory)", async () => {
  const { config, checkpoint } = await checkpointAhead("initial", 1n << 40n);
  const source = newSource(config);
  try {
    await assert.rejects(source.connect(checkpoint, AbortSignal.timeout(30_000)), historyChanged);
  } finally {
    await source.close();
  }
});
