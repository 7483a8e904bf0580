/**
 * A partition detached from a captured partitioned table (ALTER TABLE ... DETACH PARTITION, also CONCURRENTLY), or
 * dropped while attached: its rows leave the root with no change in the WAL (pgoutput sends nothing for either), so the
 * sinks kept them as the root's rows for good, unlike SELECT * FROM the root. The catalog look now sees a leaf gone
 * and reads the root again whole, whose closing reset removes them. Changes to the detached table afterwards are not
 * the root's (it is not in the publication) and never stream; attached again, its rows are read as any attached one's.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type pg from "pg";
import type { Checkpoint } from "../contracts.ts";
import type { Pump } from "../common/online-snapshot-test-support.ts";
import { Fold, noTasks, pump, stopPumps, waitCheckpointAt, waitFor } from "../common/online-snapshot-test-support.ts";
import { adminClient, checkpointing, cleanUp, newSource, randomName, sourceConfig } from "./int-test-support.ts";
import { isSnapshotIncomplete } from "./positions.ts";
import type { PostgresSource } from "./source.ts";

const schema = randomName("pgpart_detach");
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

async function caughtUp(state: Pump): Promise<void> {
  const lsn = (await admin.query<{ lsn: string }>("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::text AS lsn")).rows[0]!.lsn;
  await waitCheckpointAt(state, BigInt(lsn));
}

/** The root's rows as PostgreSQL shows them, as the fold holds them: id -> v. */
async function rootRows(table: string): Promise<Map<string, string>> {
  const rows = (await admin.query<{ id: string; v: string }>(`SELECT id::text AS id, v FROM "${schema}".${table} ORDER BY ${table}.id`)).rows;
  return new Map(rows.map((r) => [r.id, r.v]));
}

const held = (fold: Fold): Map<string, string> =>
  new Map([...fold.visible()].map(([id, row]) => [id, String(row["v"])] as const).sort((a, b) => Number(a[0]) - Number(b[0])));

/** Waits until the fold holds what SELECT * FROM the root holds, with no online snapshot left to run. */
async function matchesRoot(state: Pump, fold: Fold, table: string, what: string): Promise<void> {
  await caughtUp(state);
  const expected = await rootRows(table);
  await waitFor(what, () => noTasks(state) && JSON.stringify([...held(fold)]) === JSON.stringify([...expected]), 15_000).catch(() => undefined);
  assert.deepEqual(held(fold), expected, what);
}

async function partitioned(table: string, regions: readonly string[]): Promise<void> {
  await admin.query(`CREATE TABLE "${schema}".${table} (id int, region text, v text, PRIMARY KEY (id, region)) PARTITION BY LIST (region)`);
  for (const [i, region] of regions.entries()) {
    await admin.query(`CREATE TABLE "${schema}".${table}_${region} PARTITION OF "${schema}".${table} FOR VALUES IN ('${region}')`);
    await admin.query(`INSERT INTO "${schema}".${table} SELECT g, '${region}', 'r' || g FROM generate_series(${i * 10 + 1}, ${i * 10 + 3}) g`);
  }
}

function newConfig(table: string): ReturnType<typeof sourceConfig> {
  const c = sourceConfig({ tables: [`${schema}.${table}`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 100 }, heartbeat_interval: 300 });
  configs.push(c);
  return c;
}

async function run(config: ReturnType<typeof sourceConfig>, from: Checkpoint | null, fold: Fold, work: (state: Pump) => Promise<void>): Promise<Checkpoint> {
  const source: PostgresSource = newSource(config, { tableDiscoveryMs: 300 });
  const pumps: Pump[] = [];
  try {
    await source.connect(from, AbortSignal.timeout(30_000));
    const state = pump(source, [fold]);
    state.checkpoint = from;
    pumps.push(state);
    await waitFor("streaming", () => streaming(state) && noTasks(state), 30_000);
    await work(state);
    return state.checkpoint!;
  } finally {
    await stopPumps(pumps, [source]);
  }
}

test("a partition detached (also CONCURRENTLY) or dropped while capture streams: the sinks end up holding what the root holds", async () => {
  await partitioned("det", ["a", "b", "c", "d"]);
  const c = newConfig("det");
  const fold = new Fold("det");
  await run(c, null, fold, async (state) => {
    await matchesRoot(state, fold, "det", "the initial snapshot");
    // A look at the partitions before the detach (the first look takes them as they are).
    await new Promise((resolve) => setTimeout(resolve, 700));

    await admin.query(`ALTER TABLE "${schema}".det DETACH PARTITION "${schema}".det_b`);
    await admin.query(`INSERT INTO "${schema}".det_b VALUES (100, 'b', 'written to the detached table')`);
    await admin.query(`UPDATE "${schema}".det_b SET v = 'changed while detached' WHERE id = 11`);
    await admin.query(`INSERT INTO "${schema}".det VALUES (4, 'a', 'written to the root')`);
    await matchesRoot(state, fold, "det", "after DETACH PARTITION: the detached rows gone, the detached table's changes not the root's");

    await admin.query(`ALTER TABLE "${schema}".det DETACH PARTITION "${schema}".det_c CONCURRENTLY`);
    await admin.query(`UPDATE "${schema}".det_c SET v = 'changed while detached' WHERE id = 21`);
    await matchesRoot(state, fold, "det", "after DETACH PARTITION CONCURRENTLY");

    await admin.query(`ALTER TABLE "${schema}".det ATTACH PARTITION "${schema}".det_b FOR VALUES IN ('b')`);
    await matchesRoot(state, fold, "det", "a detached partition attached again: its rows as they are now");

    await admin.query(`DROP TABLE "${schema}".det_c`);
    await admin.query(`DROP TABLE "${schema}".det_d`);
    await matchesRoot(state, fold, "det", "a detached partition dropped (nothing changes), an attached one dropped (its rows gone)");
  });
});

test("a partition detached while Sluice is stopped: the next start removes its rows from the sinks", async () => {
  await partitioned("det_stop", ["a", "b"]);
  const c = newConfig("det_stop");
  const fold = new Fold("det_stop");
  const checkpoint = await run(c, null, fold, async (state) => {
    await matchesRoot(state, fold, "det_stop", "the initial snapshot");
    await new Promise((resolve) => setTimeout(resolve, 700));
    await caughtUp(state);
  });

  await admin.query(`ALTER TABLE "${schema}".det_stop DETACH PARTITION "${schema}".det_stop_b`);
  await admin.query(`INSERT INTO "${schema}".det_stop_b VALUES (100, 'b', 'written to the detached table')`);
  await admin.query(`INSERT INTO "${schema}".det_stop VALUES (4, 'a', 'written to the root')`);

  await run(c, checkpoint, fold, async (state) => {
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    await matchesRoot(state, fold, "det_stop", "after a detach while stopped");
  });
});

test("a partition detached while the publication leaves out deletes and truncates (purged rows kept on purpose): its rows stay in the sinks", async () => {
  await partitioned("det_kept", ["a", "b"]);
  const c = newConfig("det_kept");
  const fold = new Fold("det_kept");
  await run(c, null, fold, async (state) => {
    await admin.query(`ALTER PUBLICATION "${c.publication}" SET (publish = 'insert, update', publish_via_partition_root = true)`);
    await new Promise((resolve) => setTimeout(resolve, 700));
    const before = held(fold);
    assert.equal(before.size, 6);
    await admin.query(`ALTER TABLE "${schema}".det_kept DETACH PARTITION "${schema}".det_kept_b`);
    await admin.query(`INSERT INTO "${schema}".det_kept VALUES (4, 'a', 'written to the root')`);
    await caughtUp(state);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    assert.ok(noTasks(state), "the root is not read again");
    assert.deepEqual(held(fold), new Map([...before, ["4", "written to the root"] as [string, string]].sort((a, b) => Number(a[0]) - Number(b[0]))));
  });
});

test("with a publication that leaves out deletes and truncates, a partition rewritten (VACUUM FULL) or truncated later reads the root again with no reset: the rows kept on purpose stay", async () => {
  await partitioned("det_keep2", ["a", "b", "c"]);
  const c = newConfig("det_keep2");
  const fold = new Fold("det_keep2");
  await run(c, null, fold, async (state) => {
    await admin.query(`ALTER PUBLICATION "${c.publication}" SET (publish = 'insert, update', publish_via_partition_root = true)`);
    await new Promise((resolve) => setTimeout(resolve, 700));
    // Kept on purpose: a partition detached (pg_partman's retention) and a row deleted.
    await admin.query(`ALTER TABLE "${schema}".det_keep2 DETACH PARTITION "${schema}".det_keep2_b`);
    await admin.query(`DELETE FROM "${schema}".det_keep2 WHERE id = 2`);
    await admin.query(`UPDATE "${schema}".det_keep2 SET v = 'changed' WHERE id = 3`);
    await caughtUp(state);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const kept = new Map([...held(fold)]);
    assert.deepEqual([...kept.keys()], ["1", "2", "3", "11", "12", "13", "21", "22", "23"]);
    assert.equal(kept.get("3"), "changed");
    for (const [statement, readOf] of [[`VACUUM FULL "${schema}".det_keep2_a`, "1"], [`TRUNCATE "${schema}".det_keep2_c`, "1"]] as const) {
      const readsBefore = fold.reads.get(readOf) ?? 0;
      await admin.query(statement);
      await caughtUp(state);
      await waitFor(`the root read again after ${statement}`, () => (fold.reads.get(readOf) ?? 0) > readsBefore && noTasks(state), 30_000);
      assert.deepEqual(held(fold), kept, `after ${statement}: the rows kept on purpose stay`);
    }
  });
});

test("a partition detached, changed and attached again between two looks, or while Sluice is stopped: its changes meanwhile reach the sinks", async () => {
  await partitioned("det_back", ["a", "b"]);
  const c = newConfig("det_back");
  const fold = new Fold("det_back");
  // Same partition, same relfilenode: only its new pg_inherits row tells it was detached meanwhile.
  const detachedChangedAttached = (v: string) =>
    admin.query(`BEGIN;
      ALTER TABLE "${schema}".det_back DETACH PARTITION "${schema}".det_back_b;
      UPDATE "${schema}".det_back_b SET v = '${v}' WHERE id = 11;
      DELETE FROM "${schema}".det_back_b WHERE id = 12;
      INSERT INTO "${schema}".det_back_b VALUES (100, 'b', '${v}');
      ALTER TABLE "${schema}".det_back ATTACH PARTITION "${schema}".det_back_b FOR VALUES IN ('b');
      COMMIT`);
  const checkpoint = await run(c, null, fold, async (state) => {
    await matchesRoot(state, fold, "det_back", "the initial snapshot");
    await new Promise((resolve) => setTimeout(resolve, 700));
    await detachedChangedAttached("while detached");
    await matchesRoot(state, fold, "det_back", "detached, changed and attached again between two looks");
    await caughtUp(state);
  });
  await admin.query(`DELETE FROM "${schema}".det_back_b WHERE id = 100`);
  await detachedChangedAttached("while stopped");
  await run(c, checkpoint, fold, async (state) => {
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    await matchesRoot(state, fold, "det_back", "detached, changed and attached again while stopped");
  });
});
