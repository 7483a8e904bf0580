/**
 * A change that makes Sluice read a table (a table renamed live, a table created and added to the publication, whose
 * sluice.backfill message the stream decodes) while its online snapshot cannot be requested for a passing reason: the
 * stream fails (retriable, naming the table and where it was asked) instead of going on without the read, so capture
 * goes on from its last checkpoint before it, is told again and asks again; each table is then read once.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type pg from "pg";
import type { Source } from "../contracts.ts";
import { SluiceError } from "../errors.ts";
import { Fold, noTasks, pump, stopPumps, waitFor } from "../common/online-snapshot-test-support.ts";
import { adminClient, checkpointing, cleanUp, newSource, randomName, sourceConfig } from "./int-test-support.ts";
import { isSnapshotIncomplete } from "./positions.ts";
import { relationLayoutsOf } from "./relation-layouts.ts";

const ROWS = 200;
const schema = randomName("rereadfail");
const config = sourceConfig({ tables: [`${schema}.*`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 1000 }, heartbeat_interval: 500 });
let admin: pg.Client;
let stopCheckpoints: () => Promise<void>;

before(async () => {
  admin = await adminClient();
  stopCheckpoints = checkpointing();
  await admin.query(`CREATE SCHEMA "${schema}"`);
});

after(async () => {
  await stopCheckpoints();
  await cleanUp(admin, config);
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin.end();
});

test("a table renamed and a table created while their requests fail (the catalog connection lost, as the driver says it) fail the stream, which asks again from its last checkpoint: each is read once", async () => {
  await admin.query(`CREATE TABLE "${schema}".orig (id int PRIMARY KEY, v int NOT NULL)`);
  await admin.query(`INSERT INTO "${schema}".orig SELECT i, i FROM generate_series(1, ${ROWS}) i`);
  const source = newSource(config, { tableDiscoveryMs: 300 });
  // The catalog reads of a request for an armed table fail as a lost connection does, until the stream has failed for it.
  const armed = new Set<string>();
  const lost = () => Promise.reject(new Error("Connection terminated unexpectedly"));
  const { snapshots } = source;
  const request = snapshots.request.bind(snapshots);
  const queue = snapshots.queue.bind(snapshots);
  snapshots.request = (table, ...rest) => (armed.has(table) ? lost() : request(table, ...rest));
  snapshots.queue = (table, ...rest) => (armed.has(table) ? lost() : queue(table, ...rest));
  const failures: SluiceError[] = [];
  const watched: Pick<Source, "connect" | "read"> = {
    connect: (from, signal) => source.connect(from, signal),
    read: (signal) =>
      source.read(signal).catch((error: unknown) => {
        if (error instanceof SluiceError && error.code === "SNAPSHOT_REQUEST_FAILED") {
          failures.push(error);
          armed.delete(String(error.context.table));
        }
        throw error;
      }),
  };
  const orig = new Fold("orig");
  const moved = new Fold("moved");
  const created = new Fold("created");
  await source.connect(null, AbortSignal.timeout(30_000));
  const state = pump(watched, [orig, moved, created]);
  try {
    // A rename is told against the layouts the checkpoint carries (relation-layouts.ts), stored once streaming.
    await waitFor("the initial snapshot", () => orig.visible().size === ROWS && state.checkpoint !== null && !isSnapshotIncomplete(state.checkpoint.position) && relationLayoutsOf(state.checkpoint)?.size === 1, 15_000);

    armed.add(`${schema}.moved`);
    await admin.query(`ALTER TABLE "${schema}".orig RENAME TO moved`);
    await admin.query(`UPDATE "${schema}".moved SET v = -v WHERE id = 1`);
    await waitFor("every row under the new name", () => moved.visible().size === ROWS && noTasks(state), 15_000);
    assert.equal(moved.visible().get("1")?.["v"], -1);

    armed.add(`${schema}.created`);
    await admin.query(`CREATE TABLE "${schema}".created (id int PRIMARY KEY, v int NOT NULL)`);
    await admin.query(`INSERT INTO "${schema}".created SELECT i, i FROM generate_series(1, ${ROWS}) i`);
    await waitFor("every row of the created table", () => created.visible().size === ROWS && noTasks(state), 15_000);

    assert.deepEqual(
      failures.map((error) => error.context.table),
      [`${schema}.moved`, `${schema}.created`],
      "the stream failed once for each request",
    );
    assert.match(failures[0]!.message, /asked for at the Relation message of the transaction committed at [0-9A-F]+\/[0-9A-F]+/);
    assert.match(failures[1]!.message, /asked for at the sluice\.backfill message added-[0-9a-f]+/);
    assert.ok(failures.every((error) => error.retriable));
    assert.deepEqual(new Set(moved.reads.values()), new Set([1]), "each row of the renamed table read once");
    assert.deepEqual(new Set([...created.reads.values()]), new Set([1]), "each row of the created table read once");
  } finally {
    await stopPumps([state], [source]);
  }
});
