/**
 * Catalog changes that leave no trace in the stream, made while Sluice is stopped or in the seconds after a start
 * before its first catalog look (real PostgreSQL). The looks compared with what they saw since the process started, so
 * the first look after a start took such a change as the state of things: a table taken out of the publication and put
 * back lost its changes meanwhile, an attached partition's rows and a truncated partition's removal never reached the
 * sinks, a renamed enum label stayed old in every row not changed since, all without a word. What the looks saw now
 * rides the checkpoints (catalog-marks.ts), and a new start (or a standby taking over from the checkpoint) compares
 * with it. Each case runs a source to a checkpoint, stops it, changes the catalog, and starts another from the checkpoint.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type pg from "pg";
import type { Checkpoint } from "../contracts.ts";
import type { Pump } from "../common/online-snapshot-test-support.ts";
import { Fold, noTasks, pump, stopPumps, waitCheckpointAt, waitFor } from "../common/online-snapshot-test-support.ts";
import { adminClient, checkpointing, cleanUp, newSource, randomName, sourceConfig } from "./int-test-support.ts";
import { isSnapshotIncomplete } from "./positions.ts";
import type { PostgresSource, PostgresSourceOptions } from "./source.ts";

const schema = randomName("catrestart");
let admin: pg.Client;
let stopCheckpoints: () => Promise<void>;
const configs: ReturnType<typeof sourceConfig>[] = [];

before(async () => {
  admin = await adminClient();
  stopCheckpoints = checkpointing();
  await admin.query(`CREATE SCHEMA "${schema}"`);
});

after(async () => {
  await stopCheckpoints();
  for (const c of configs) await cleanUp(admin, c);
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin.end();
});

const streaming = (state: Pump): boolean => state.checkpoint !== null && !isSnapshotIncomplete(state.checkpoint.position);

/** Waits until the pump's checkpoint passed everything committed so far. */
async function caughtUp(state: Pump): Promise<void> {
  const lsn = (await admin.query<{ lsn: string }>("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::text AS lsn")).rows[0]!.lsn;
  await waitCheckpointAt(state, BigInt(lsn));
}

/** Runs a source from `from` while `work` runs; returns its last checkpoint (entries kept as a topic log keeps them). */
async function run(
  config: ReturnType<typeof sourceConfig>,
  from: Checkpoint | null,
  fold: Fold,
  work: (state: Pump, source: PostgresSource) => Promise<void>,
  options: Partial<PostgresSourceOptions> = {},
): Promise<Checkpoint> {
  const source = newSource(config, { tableDiscoveryMs: 300, ...options });
  const pumps: Pump[] = [];
  try {
    await source.connect(from, AbortSignal.timeout(30_000));
    const state = pump(source, [fold]);
    // The entries stored so far, as a topic log keeps them: a checkpoint writes only those that changed.
    state.checkpoint = from;
    pumps.push(state);
    await work(state, source);
    return state.checkpoint!;
  } finally {
    await stopPumps(pumps, [source]);
  }
}

/** A first run: the initial snapshot, then streaming until caught up. */
async function firstRun(config: ReturnType<typeof sourceConfig>, fold: Fold, rows: number): Promise<Checkpoint> {
  return run(config, null, fold, async (state) => {
    await waitFor("the initial snapshot", () => streaming(state) && noTasks(state) && fold.visible().size === rows, 30_000);
    // A look or two, then a checkpoint after them.
    await new Promise((resolve) => setTimeout(resolve, 700));
    await caughtUp(state);
  });
}

function newConfig(tables: string[]): ReturnType<typeof sourceConfig> {
  const c = sourceConfig({ tables, snapshot: { mode: "initial", parallelism: 1, chunk_rows: 100 }, heartbeat_interval: 300 });
  configs.push(c);
  return c;
}

test("a table taken out of the publication and put back while Sluice is stopped is read again at the next start: its changes while out reach the targets", async () => {
  await admin.query(`CREATE TABLE "${schema}".pub_items (id int PRIMARY KEY, v int NOT NULL, note text)`);
  await admin.query(`INSERT INTO "${schema}".pub_items SELECT i, i, 'n' || i FROM generate_series(1, 50) i`);
  const c = newConfig([`${schema}.pub_items`]);
  const checkpoint = await firstRun(c, new Fold("pub_items"), 50);

  // Stopped: out of the publication, changed, back in. pgoutput never sends the changes made while it was out.
  await admin.query(`ALTER PUBLICATION "${c.publication}" DROP TABLE "${schema}".pub_items`);
  await admin.query(`INSERT INTO "${schema}".pub_items VALUES (1000, 1000, 'while out')`);
  await admin.query(`UPDATE "${schema}".pub_items SET v = -v WHERE id <= 5`);
  await admin.query(`DELETE FROM "${schema}".pub_items WHERE id BETWEEN 46 AND 50`);
  await admin.query(`ALTER PUBLICATION "${c.publication}" ADD TABLE "${schema}".pub_items`);

  const fold = new Fold("pub_items");
  await run(c, checkpoint, fold, async (state) => {
    await waitFor("the table read again", () => fold.visible().get("1000")?.["note"] === "while out" && noTasks(state), 10_000);
  });
  assert.equal(fold.visible().get("1")?.["v"], -1, "the update made while out");
  assert.equal(fold.visible().size, 46, "the rows deleted while out are not read");
});

test("a table taken out of the publication while Sluice is stopped and left out is put back by the start and read once, by its backfill, not again as taken out and put back", async () => {
  await admin.query(`CREATE TABLE "${schema}".pub_left (id int PRIMARY KEY, v int NOT NULL, note text)`);
  await admin.query(`INSERT INTO "${schema}".pub_left SELECT i, i, 'n' || i FROM generate_series(1, 20) i`);
  const c = newConfig([`${schema}.pub_left`]);
  const checkpoint = await firstRun(c, new Fold("pub_left"), 20);

  await admin.query(`ALTER PUBLICATION "${c.publication}" DROP TABLE "${schema}".pub_left`);
  await admin.query(`INSERT INTO "${schema}".pub_left VALUES (1000, 1000, 'while out')`);
  const fold = new Fold("pub_left");
  await run(c, checkpoint, fold, async (state) => {
    await waitFor("the table read by its backfill", () => fold.visible().get("1000")?.["note"] === "while out" && noTasks(state), 10_000);
    // A few looks after it (300 ms apart, the first at once): none reads it again.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    assert.ok(noTasks(state));
  });
  assert.deepEqual(new Set(fold.reads.values()), new Set([1]), "each row read once");
});

test("a table taken out and put back whose read again could not be queued before the process stopped is read again at the next start", async () => {
  await admin.query(`CREATE TABLE "${schema}".pub_pending (id int PRIMARY KEY, v int NOT NULL, note text)`);
  await admin.query(`INSERT INTO "${schema}".pub_pending SELECT i, i, 'n' || i FROM generate_series(1, 20) i`);
  const c = newConfig([`${schema}.pub_pending`]);
  const first = new Fold("pub_pending");
  let refused = 0;
  const checkpoint = await run(c, null, first, async (state, source) => {
    await waitFor("the initial snapshot", () => streaming(state) && noTasks(state) && first.visible().size === 20, 30_000);
    await new Promise((resolve) => setTimeout(resolve, 700));
    // Every read again refused (the source not streaming yet, say), then the process stops.
    source.snapshots.queue = async () => {
      refused++;
      throw new Error("not streaming yet");
    };
    await admin.query(`BEGIN;
      ALTER PUBLICATION "${c.publication}" DROP TABLE "${schema}".pub_pending;
      INSERT INTO "${schema}".pub_pending VALUES (1000, 1000, 'while out');
      ALTER PUBLICATION "${c.publication}" ADD TABLE "${schema}".pub_pending;
      COMMIT`);
    await waitFor("a look that could not queue the read", () => refused >= 2, 10_000);
    await caughtUp(state);
  });
  assert.equal(first.visible().has("1000"), false, "not read before the stop");

  const fold = new Fold("pub_pending");
  await run(c, checkpoint, fold, async (state) => {
    await waitFor("the table read again", () => fold.visible().get("1000")?.["note"] === "while out" && noTasks(state), 10_000);
  });
});

test("a table a look found out of the publication, whose put-back a lock kept off, put back by hand while Sluice is stopped is read again at the next start", async () => {
  await admin.query(`CREATE TABLE "${schema}".pub_locked (id int PRIMARY KEY, v int NOT NULL, note text)`);
  await admin.query(`INSERT INTO "${schema}".pub_locked SELECT i, i, 'n' || i FROM generate_series(1, 20) i`);
  const c = newConfig([`${schema}.pub_locked`]);
  const first = new Fold("pub_locked");
  const holder = await adminClient();
  try {
    const checkpoint = await run(
      c,
      null,
      first,
      async (state) => {
        await waitFor("the initial snapshot", () => streaming(state) && noTasks(state) && first.visible().size === 20, 30_000);
        await admin.query(`ALTER PUBLICATION "${c.publication}" DROP TABLE "${schema}".pub_locked`);
        // A long transaction keeps Sluice's put-back off (tried again only minutes later).
        await holder.query("BEGIN");
        await holder.query(`LOCK TABLE "${schema}".pub_locked IN SHARE UPDATE EXCLUSIVE MODE`);
        await admin.query(`INSERT INTO "${schema}".pub_locked VALUES (1000, 1000, 'while out')`);
        // Looks (300 ms apart) that find it out and fail to put it back, then a checkpoint after them.
        await new Promise((resolve) => setTimeout(resolve, 1_500));
        await caughtUp(state);
      },
      { catalogLockTimeoutMs: 200 },
    );
    assert.equal(first.visible().has("1000"), false, "not read before the stop");
    await holder.query("ROLLBACK");
    // Stopped: put back by hand (not by the next start, which finds it in the publication).
    await admin.query(`ALTER PUBLICATION "${c.publication}" ADD TABLE "${schema}".pub_locked`);

    const fold = new Fold("pub_locked");
    await run(c, checkpoint, fold, async (state) => {
      await waitFor("the table read again", () => fold.visible().get("1000")?.["note"] === "while out" && noTasks(state), 10_000);
    });
  } finally {
    await holder.query("ROLLBACK").catch(() => undefined);
    await holder.end();
  }
});

test("a table taken out and put back whose read again is pending, taken out again and put back by Sluice with its backfill (a reconnect's or a look's), is read once more, not twice", async () => {
  await admin.query(`CREATE TABLE "${schema}".pub_twice (id int PRIMARY KEY, v int NOT NULL, note text)`);
  await admin.query(`INSERT INTO "${schema}".pub_twice SELECT i, i, 'n' || i FROM generate_series(1, 20) i`);
  const c = newConfig([`${schema}.pub_twice`]);
  const fold = new Fold("pub_twice");
  await run(c, null, fold, async (state, source) => {
    await waitFor("the initial snapshot", () => streaming(state) && noTasks(state) && fold.visible().size === 20, 30_000);
    await new Promise((resolve) => setTimeout(resolve, 700));
    // The read again of a table taken out and put back refused (the source not streaming yet, say): pending.
    const queue = source.snapshots.queue.bind(source.snapshots);
    let refused = 0;
    let refusing = true;
    source.snapshots.queue = async (table, origin, id, above) => {
      if (refusing && origin === "publication-readded") {
        refused++;
        throw new Error("not streaming yet");
      }
      return queue(table, origin, id, above);
    };
    await admin.query(`BEGIN;
      ALTER PUBLICATION "${c.publication}" DROP TABLE "${schema}".pub_twice;
      INSERT INTO "${schema}".pub_twice VALUES (1000, 1000, 'while out');
      ALTER PUBLICATION "${c.publication}" ADD TABLE "${schema}".pub_twice;
      COMMIT`);
    await waitFor("a look that could not queue the read", () => refused >= 1, 10_000);
    // Out again, and the stream broken: the reconnect (or the next look) puts it back, with its backfill.
    await admin.query(`ALTER PUBLICATION "${c.publication}" DROP TABLE "${schema}".pub_twice`);
    const slot = await admin.query<{ pid: number | null }>("SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = $1", [c.slot]);
    if (slot.rows[0]?.pid != null) await admin.query("SELECT pg_terminate_backend($1)", [slot.rows[0].pid]);
    const member = async () => (await admin.query(`SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = 'pub_twice'`, [c.publication, schema])).rowCount === 1;
    await waitFor("put back by Sluice", member, 10_000);
    refusing = false;
    await waitFor("the backfill", () => fold.visible().get("1000")?.["note"] === "while out" && noTasks(state), 10_000);
    // A few looks after it (300 ms apart): none reads it again.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    await waitFor("nothing running", () => noTasks(state), 10_000);
  });
  assert.equal(fold.reads.get("1000"), 1, "the row inserted while out read once");
  assert.equal(fold.reads.get("1"), 2, "a row read by the initial snapshot and the backfill only");
});

test("a partition attached while Sluice is stopped has its rows read at the next start; one truncated while stopped has its rows removed", async () => {
  await admin.query(`CREATE TABLE "${schema}".parts (id int, region text, v text, PRIMARY KEY (id, region)) PARTITION BY LIST (region)`);
  await admin.query(`CREATE TABLE "${schema}".parts_eu PARTITION OF "${schema}".parts FOR VALUES IN ('eu')`);
  await admin.query(`CREATE TABLE "${schema}".parts_us PARTITION OF "${schema}".parts FOR VALUES IN ('us')`);
  await admin.query(`INSERT INTO "${schema}".parts VALUES (1, 'eu', 'a'), (2, 'eu', 'b'), (3, 'us', 'c')`);
  const c = newConfig([`${schema}.parts`]);
  let checkpoint = await firstRun(c, new Fold("parts"), 3);

  await admin.query(`CREATE TABLE "${schema}".parts_asia (id int, region text, v text, PRIMARY KEY (id, region))`);
  await admin.query(`INSERT INTO "${schema}".parts_asia SELECT i, 'asia', 'held ' || i FROM generate_series(10, 14) i`);
  await admin.query(`ALTER TABLE "${schema}".parts ATTACH PARTITION "${schema}".parts_asia FOR VALUES IN ('asia')`);

  const attached = new Fold("parts");
  checkpoint = await run(c, checkpoint, attached, async (state) => {
    await waitFor("the attached partition's rows read", () => [10, 11, 12, 13, 14].every((id) => attached.visible().has(String(id))) && noTasks(state), 10_000);
    await caughtUp(state);
  });
  assert.equal(attached.visible().size, 5, `only the attached partition's rows are read: ${[...attached.visible().keys()].join(", ")}`);

  // Not sent by pgoutput when the publication publishes through the root.
  await admin.query(`TRUNCATE "${schema}".parts_us`);
  const truncated = new Fold("parts");
  await run(c, checkpoint, truncated, async (state) => {
    await waitFor("the root read again", () => truncated.visible().size === 7 && noTasks(state), 10_000);
  });
  assert.ok(![...truncated.visible().values()].some((row) => row["region"] === "us"), "the truncated partition's rows are gone");
});

test("an enum label renamed just after a start, before the first catalog look, reads the tables using it again", async () => {
  await admin.query(`CREATE TYPE "${schema}".mood AS ENUM ('sad', 'ok')`);
  await admin.query(`CREATE TABLE "${schema}".moods (id int PRIMARY KEY, m "${schema}".mood)`);
  await admin.query(`INSERT INTO "${schema}".moods VALUES (1, 'sad'), (2, 'ok')`);
  const c = newConfig([`${schema}.moods`]);
  const checkpoint = await firstRun(c, new Fold("moods"), 2);

  const fold = new Fold("moods");
  // The first look comes 3 s after the start; the rename lands before it.
  await run(
    c,
    checkpoint,
    fold,
    async (state) => {
      await admin.query(`ALTER TYPE "${schema}".mood RENAME VALUE 'sad' TO 'blue'`);
      await waitFor("the table read again", () => fold.visible().get("1")?.["m"] === "blue" && noTasks(state), 10_000);
    },
    { tableDiscoveryMs: 3_000 },
  );
});

test("a partition attached just after a first start (no marks stored yet), before the first catalog look, has its rows read", async () => {
  await admin.query(`CREATE TABLE "${schema}".fresh (id int, region text, v text, PRIMARY KEY (id, region)) PARTITION BY LIST (region)`);
  await admin.query(`CREATE TABLE "${schema}".fresh_eu PARTITION OF "${schema}".fresh FOR VALUES IN ('eu')`);
  await admin.query(`INSERT INTO "${schema}".fresh VALUES (1, 'eu', 'a')`);
  const c = newConfig([`${schema}.fresh`]);
  const fold = new Fold("fresh");
  await run(
    c,
    null,
    fold,
    async (state) => {
      // After the initial snapshot's export (connect made the slot): its rows are not in it, and the first look is 3 s away.
      await admin.query(`CREATE TABLE "${schema}".fresh_asia (id int, region text, v text, PRIMARY KEY (id, region))`);
      await admin.query(`INSERT INTO "${schema}".fresh_asia SELECT i, 'asia', 'held ' || i FROM generate_series(10, 12) i`);
      await admin.query(`ALTER TABLE "${schema}".fresh ATTACH PARTITION "${schema}".fresh_asia FOR VALUES IN ('asia')`);
      await waitFor("the attached partition's rows read", () => fold.visible().size === 4 && streaming(state) && noTasks(state), 10_000);
    },
    { tableDiscoveryMs: 3_000 },
  );
});
