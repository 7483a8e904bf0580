/**
 * Slot handling against the real server: a checkpoint whose slot is missing is refused (and no
 * slot is created); when-needed takes a new snapshot; a snapshot interrupted midway resumes on its
 * slot (or starts over on a new one when its checkpoint does not say how far it got); a slot in use
 * elsewhere is a retriable error.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type pg from "pg";
import type { Checkpoint } from "../contracts.ts";
import { SluiceError } from "../errors.ts";
import { exportedSnapshotProgress, isSnapshotIncomplete, SNAPSHOT_INCOMPLETE } from "./positions.ts";
import { adminClient, cleanUp, newSource, randomName, readUntil, slotRow, snapshotFinished, sourceConfig } from "./int-test-support.ts";

const schema = randomName("slot");
const q = (table: string) => `"${schema}".${table}`;
let admin: pg.Client;
const configs: ReturnType<typeof sourceConfig>[] = [];

before(async () => {
  admin = await adminClient();
  await admin.query(`CREATE SCHEMA "${schema}"`);
  await admin.query(`CREATE TABLE ${q("t")} (id int PRIMARY KEY)`);
  await admin.query(`INSERT INTO ${q("t")} SELECT generate_series(1, 50)`);
});

after(async () => {
  for (const config of configs) await cleanUp(admin, config);
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin.end();
});

function config(overrides: Partial<ReturnType<typeof sourceConfig>> = {}) {
  const c = sourceConfig({ tables: [`${schema}.t`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 10 }, ...overrides });
  configs.push(c);
  return c;
}

async function snapshotCheckpoint(c: ReturnType<typeof config>): Promise<Checkpoint> {
  const source = newSource(c);
  await source.connect(null, AbortSignal.timeout(30_000));
  try {
    const collected = await readUntil(source, snapshotFinished);
    assert.deepEqual(collected.events.map((e) => e.op), [...Array<string>(50).fill("r"), "t"], "the table's rows, then its reset");
    return collected.batches.at(-1)!.checkpoint;
  } finally {
    await source.close();
  }
}

test("a checkpoint whose slot is gone is refused with the data-loss error; no slot is created", async () => {
  const c = config();
  const checkpoint = await snapshotCheckpoint(c);
  await admin.query("SELECT pg_drop_replication_slot($1)", [c.slot]);
  const source = newSource(c);
  await assert.rejects(source.connect(checkpoint, AbortSignal.timeout(30_000)), (error: unknown) => {
    assert.ok(error instanceof SluiceError);
    assert.equal(error.code, "PG_SLOT_UNUSABLE");
    assert.equal(error.retriable, false);
    assert.match(error.message, /does not exist.*would lose the changes.*when-needed/s);
    return true;
  });
  assert.equal(await slotRow(admin, c.slot!), undefined);
  assert.equal(source.ready(), false);
});

/**
 * A source connected from the snapshot's checkpoint of table `table` (50 rows) after its publication was dropped and row
 * 51 written while it was missing, and the PG_PUBLICATION_DROPPED error its read fails with (the source stays open).
 */
async function readAfterPublicationDropped(table: string, overrides: Partial<ReturnType<typeof sourceConfig>> = {}) {
  await admin.query(`CREATE TABLE ${q(table)} (id int PRIMARY KEY)`);
  await admin.query(`INSERT INTO ${q(table)} SELECT generate_series(1, 50)`);
  const c = config({ tables: [`${schema}.${table}`], ...overrides });
  const checkpoint = await snapshotCheckpoint(c);
  await admin.query(`DROP PUBLICATION "${c.publication!}"`);
  await admin.query(`INSERT INTO ${q(table)} VALUES (51)`);
  // The start creates the publication again; the change made while it was missing is decoded with the catalog of then.
  const source = newSource(c);
  await source.connect(checkpoint, AbortSignal.timeout(30_000));
  const failure = await readUntil(source, (all) => all.events.some((e) => e.key["id"] === 51)).then(
    () => null,
    (error: unknown) => error,
  );
  if (!(failure instanceof SluiceError) || failure.code !== "PG_PUBLICATION_DROPPED") {
    await source.close();
    assert.fail(`the read fails with PG_PUBLICATION_DROPPED, not ${failure === null ? "succeeds" : String(failure)}`);
  }
  return { c, checkpoint, source, failure };
}

test("a publication dropped while the slot still has changes to stream stops capture with PG_PUBLICATION_DROPPED, saying how to capture again", async () => {
  const { c, source, failure } = await readAfterPublicationDropped("unpublished");
  try {
    assert.equal(failure.retriable, false);
    assert.match(failure.message, new RegExp(`publication "${c.publication!}".*creating it again does not help.*pg_drop_replication_slot\\('${c.slot!}'\\).*when-needed`, "s"));
  } finally {
    await source.close();
  }
});

test("under snapshot.mode when-needed, a publication dropped while the slot still had changes to stream fails retriably, and the reconnect takes a new snapshot on a new slot", async () => {
  const { checkpoint, source, failure } = await readAfterPublicationDropped("renewed", { snapshot: { mode: "when-needed", parallelism: 1, chunk_rows: 10 } });
  try {
    assert.equal(failure.retriable, true);
    assert.match(failure.message, /Taking a new snapshot on a new slot \(snapshot.mode when-needed\)/);
    // As capture does after a retriable failure: close, connect again from the stored checkpoint.
    await source.close();
    await source.connect(checkpoint, AbortSignal.timeout(30_000));
    const collected = await readUntil(source, snapshotFinished);
    const read = collected.events.filter((e) => e.op === "r").map((e) => Number(e.key["id"])).sort((a, b) => a - b);
    assert.deepEqual(read, Array.from({ length: 51 }, (_, i) => i + 1), "every row, the one inserted while the publication was missing too");
    assert.ok(collected.batches.at(-1)!.checkpoint.position.commit > checkpoint.position.commit, "a new slot's consistent point");
  } finally {
    await source.close();
  }
});

test("snapshot.mode when-needed takes a new snapshot instead", async () => {
  const c = config({ snapshot: { mode: "when-needed", parallelism: 1, chunk_rows: 10 } });
  const checkpoint = await snapshotCheckpoint(c);
  await admin.query("SELECT pg_drop_replication_slot($1)", [c.slot]);
  const source = newSource(c);
  await source.connect(checkpoint, AbortSignal.timeout(30_000));
  try {
    const collected = await readUntil(source, snapshotFinished);
    assert.equal(collected.events.filter((e) => e.op === "r").length, 50);
    assert.ok(collected.batches.at(-1)!.checkpoint.position.commit > checkpoint.position.commit);
  } finally {
    await source.close();
  }
});

test("a snapshot interrupted midway resumes on the same slot: the rows stored are not read again, the rest is read online and ends with the reset", async () => {
  await admin.query(`CREATE TABLE ${q("resumed")} (id int PRIMARY KEY)`);
  await admin.query(`INSERT INTO ${q("resumed")} SELECT generate_series(1, 50)`);
  const c = config({ tables: [`${schema}.resumed`] });
  const source = newSource(c, { maxBatchEvents: 10 });
  try {
    await source.connect(null, AbortSignal.timeout(30_000));
    const first = await readUntil(source, (collected) => collected.events.length >= 20);
    const interrupted = first.batches.at(-1)!.checkpoint;
    const progress = exportedSnapshotProgress(interrupted.position);
    assert.ok(progress !== null, `the checkpoint says how far the snapshot got: ${interrupted.position.resume}`);
    const stored = first.events.map((e) => Number(e.key["id"]));
    assert.deepEqual(progress.reading, [{ table: `${schema}.resumed`, lastKey: [String(stored.at(-1))], rowsDone: stored.length, keyColumns: ["id"] }]);
    await source.close();
    await admin.query(`DELETE FROM ${q("resumed")} WHERE id IN (3, 45)`);

    await source.connect(interrupted, AbortSignal.timeout(30_000));
    const collected = await readUntil(source, (all) => all.events.some((e) => e.op === "t"));
    const rows = collected.events.filter((e) => e.op === "r");
    assert.deepEqual(rows.map((e) => Number(e.key["id"])), Array.from({ length: 50 - stored.length }, (_, i) => stored.length + i + 1).filter((id) => id !== 45), "the rows after the last one stored, none twice");
    const deleted = collected.events.filter((e) => e.op === "d").map((e) => Number(e.key["id"]));
    assert.deepEqual(deleted, [3, 45], "the same slot: the stream from its consistent point carries the deletes since");
    // The reset closes the table: below every row of the interrupted attempt and of the rest, so it removes only what the source no longer has.
    const reset = collected.events.find((e) => e.op === "t")!;
    assert.equal(reset.source.snapshot, true);
    assert.ok([...first.events, ...rows].every((e) => e.source.position.change > reset.source.position.change), "the reset is below every snapshot row");
    assert.ok(rows.every((e) => e.source.position.change >= first.events[0]!.source.position.change), "rows read after the restart do not lose to the interrupted attempt's");
  } finally {
    await source.close();
  }
});

test("a snapshot interrupted midway with a checkpoint that does not say how far it got starts over on a new slot", async () => {
  const c = config();
  const source = newSource(c, { maxBatchEvents: 10 });
  await source.connect(null, AbortSignal.timeout(30_000));
  const first = await readUntil(source, (collected) => collected.events.length >= 10);
  // As checkpoints were written before the snapshot's progress was kept.
  const interrupted = { ...first.batches[0]!.checkpoint, position: { ...first.batches[0]!.checkpoint.position, resume: SNAPSHOT_INCOMPLETE } };
  await source.close();

  await source.connect(interrupted, AbortSignal.timeout(30_000));
  try {
    const collected = await readUntil(source, snapshotFinished);
    const rows = collected.events.filter((e) => e.op === "r");
    assert.deepEqual(rows.map((e) => e.key["id"]).sort((a, b) => Number(a) - Number(b)), Array.from({ length: 50 }, (_, i) => i + 1));
    assert.ok(rows[0]!.source.position.commit > interrupted.position.commit, "a new slot, a new consistent point");
    const reset = collected.events.at(-1)!;
    assert.equal(reset.op, "t");
    assert.ok(first.events.every((e) => e.source.position.change < reset.source.position.change), "the reset's version is above the interrupted attempt's");
    assert.ok(rows.every((e) => e.source.position.change > reset.source.position.change), "and below the new snapshot's rows");
  } finally {
    await source.close();
  }
});

test("a stop right after the snapshot's last batch resumes streaming: no new snapshot, no reset, the changes since arrive", async () => {
  await admin.query(`CREATE TABLE ${q("done")} (id int PRIMARY KEY)`);
  await admin.query(`INSERT INTO ${q("done")} SELECT generate_series(1, 50)`);
  const c = config({ tables: [`${schema}.done`] });
  const checkpoint = await snapshotCheckpoint(c);
  assert.equal(isSnapshotIncomplete(checkpoint.position), false, "the last snapshot batch carries a complete checkpoint");
  await admin.query(`DELETE FROM ${q("done")} WHERE id = 7`);
  await admin.query(`INSERT INTO ${q("done")} VALUES (51)`);
  const source = newSource(c);
  await source.connect(checkpoint, AbortSignal.timeout(30_000));
  try {
    const collected = await readUntil(source, (all) => all.events.some((e) => e.key["id"] === 51));
    assert.deepEqual(collected.events.map((e) => [e.op, e.key["id"], e.source.snapshot]), [["d", 7, false], ["c", 51, false]]);
  } finally {
    await source.close();
  }
});

test("a slot streamed by another consumer is a retriable error", async () => {
  const c = config({ snapshot: { mode: "never", parallelism: 1, chunk_rows: 10 } });
  const first = newSource(c);
  await first.connect(null, AbortSignal.timeout(30_000));
  const second = newSource(c);
  try {
    await assert.rejects(second.connect(null, AbortSignal.timeout(30_000)), (error: unknown) => {
      assert.ok(error instanceof SluiceError);
      assert.equal(error.retriable, true, error.message);
      assert.match(error.message, /active/);
      return true;
    });
  } finally {
    await second.close();
    await first.close();
  }
});

test("an existing publication is used as it is: its column list and row filter shape the snapshot and the stream", async () => {
  await admin.query(`CREATE TABLE ${q("filtered")} (id int PRIMARY KEY, region text NOT NULL, secret text)`);
  await admin.query(`INSERT INTO ${q("filtered")} VALUES (1, 'eu', 's1'), (2, 'us', 's2'), (3, 'eu', 's3')`);
  const c = config({ tables: [`${schema}.filtered`], create_publication: false });
  await admin.query(`CREATE PUBLICATION "${c.publication!}" FOR TABLE ${q("filtered")} (id, region) WHERE (region = 'eu')`);
  const source = newSource(c);
  await source.connect(null, AbortSignal.timeout(30_000));
  try {
    const collected = await readUntil(source, snapshotFinished);
    assert.deepEqual(collected.events.map((e) => e.after), [{ id: 1, region: "eu" }, { id: 3, region: "eu" }, null], "the rows the filter lets through, then the table's reset");
    await admin.query(`INSERT INTO ${q("filtered")} VALUES (4, 'us', 's4'), (5, 'eu', 's5')`);
    await readUntil(source, (all) => all.events.some((e) => e.key["id"] === 5), { into: collected });
    assert.deepEqual(collected.events.slice(3).map((e) => [e.op, e.after]), [["c", { id: 5, region: "eu" }]]);
    assert.deepEqual(collected.events.at(-1)!.schema.columns.map((col) => col.name), ["id", "region"]);
  } finally {
    await source.close();
  }
});
