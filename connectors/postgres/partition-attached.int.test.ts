/**
 * A table holding rows attached as a partition of a captured partitioned table while capture streams (ALTER TABLE
 * ... ATTACH PARTITION): its rows are in the root from then on, but no change in the WAL carries them. Found on a
 * live deployment: the sinks never had them (the root's other rows and later changes arrived). The catalog look that
 * finds new tables now sees the new partition and reads its rows by an online snapshot limited to it. Likewise a
 * TRUNCATE of one partition, which pgoutput does not send when the publication publishes through the root (found
 * live too: the sinks kept the partition's rows): its new relfilenode makes the root be read again whole.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import pino from "pino";
import type { Pump } from "../common/online-snapshot-test-support.ts";
import { Fold, noTasks, pump, stopPumps, waitFor } from "../common/online-snapshot-test-support.ts";
import { postgres } from "../../test/services/ports.ts";
import { attachedLeaves } from "./catalog.ts";
import { isSnapshotIncomplete } from "./positions.ts";
import { adminClient, checkpointing, cleanUp, newSource, randomName, sourceConfig } from "./int-test-support.ts";
import type { PostgresSource } from "./source.ts";

const schema = randomName("attach");
/** A role with the grants docs/postgres.md lists: SELECT on the captured (root) table, none on its partitions. */
const reader = `${schema}_reader`;
const readerPassword = "partition-reader-secret";
let admin: pg.Client;
const configs: ReturnType<typeof sourceConfig>[] = [];

before(async () => {
  admin = await adminClient();
  await admin.query(`CREATE SCHEMA "${schema}"`);
  await admin.query(`CREATE TABLE "${schema}".part (id int, region text, v text, PRIMARY KEY (id, region)) PARTITION BY LIST (region)`);
  await admin.query(`CREATE TABLE "${schema}".part_eu PARTITION OF "${schema}".part FOR VALUES IN ('eu')`);
  await admin.query(`INSERT INTO "${schema}".part VALUES (1, 'eu', 'a'), (2, 'eu', 'b')`);
  await admin.query(`CREATE TABLE "${schema}".granted (id int, region text, v text, PRIMARY KEY (id, region)) PARTITION BY LIST (region)`);
  await admin.query(`CREATE TABLE "${schema}".granted_eu PARTITION OF "${schema}".granted FOR VALUES IN ('eu')`);
  await admin.query(`INSERT INTO "${schema}".granted VALUES (1, 'eu', 'a'), (2, 'eu', 'b')`);
  await admin.query(`CREATE ROLE "${reader}" LOGIN REPLICATION PASSWORD '${readerPassword}'`);
  await admin.query(`GRANT USAGE ON SCHEMA "${schema}" TO "${reader}"`);
  await admin.query(`GRANT SELECT ON "${schema}".granted TO "${reader}"`);
});

after(async () => {
  for (const c of configs) await cleanUp(admin, c);
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin.query(`DROP OWNED BY "${reader}"`).catch(() => undefined);
  await admin.query(`DROP ROLE IF EXISTS "${reader}"`);
  await admin.end();
});

test("a table holding rows attached as a partition of a captured table while capture streams has its rows read; a partition truncated has them removed", async () => {
  const c = sourceConfig({ tables: [`${schema}.part`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 100 }, heartbeat_interval: 500 });
  configs.push(c);
  const opened: PostgresSource[] = [];
  const pumps: Pump[] = [];
  const stopCheckpoints = checkpointing();
  try {
    const source = newSource(c, { tableDiscoveryMs: 300 });
    opened.push(source);
    await source.connect(null, AbortSignal.timeout(30_000));
    const fold = new Fold("part");
    const state = pump(source, [fold]);
    pumps.push(state);
    await waitFor("the initial snapshot", () => state.checkpoint !== null && !isSnapshotIncomplete(state.checkpoint.position) && noTasks(state));
    assert.equal(fold.visible().size, 2);
    // A look at the partitions before the attach (the first look takes them as they are).
    await new Promise((resolve) => setTimeout(resolve, 700));

    await admin.query(`CREATE TABLE "${schema}".part_asia (id int, region text, v text, PRIMARY KEY (id, region))`);
    await admin.query(`INSERT INTO "${schema}".part_asia SELECT i, 'asia', 'held ' || i FROM generate_series(10, 14) i`);
    await admin.query(`ALTER TABLE "${schema}".part ATTACH PARTITION "${schema}".part_asia FOR VALUES IN ('asia')`);
    await admin.query(`INSERT INTO "${schema}".part VALUES (3, 'eu', 'streamed')`);

    // The attached partition is read alone: with the other partition locked, a read of the root (where tableoid IN
    // ..., which PostgreSQL does not prune by: it walks every partition's key index) would wait for the lock.
    const locker = await adminClient();
    try {
      await locker.query("BEGIN");
      await locker.query(`LOCK TABLE "${schema}".part_eu IN ACCESS EXCLUSIVE MODE`);
      await waitFor("the attached partition's rows read", () => fold.visible().size === 8 && noTasks(state), 10_000);
    } finally {
      await locker.query("ROLLBACK").catch(() => undefined);
      await locker.end();
    }
    const rows = (await admin.query<{ id: string; v: string }>(`SELECT id, v FROM "${schema}".part ORDER BY id`)).rows.map((r) => ({ id: Number(r.id), v: r.v }));
    const visible = [...fold.visible().values()].map((r) => ({ id: Number(r["id"]), v: r["v"] })).sort((a, b) => a.id - b.id);
    assert.deepEqual(visible, rows, "every row of the root with its value, the attached partition's included");

    // A TRUNCATE of a partition is not streamed when the publication publishes through the root.
    await admin.query(`TRUNCATE "${schema}".part_asia`);
    await waitFor("the truncated partition's rows gone", () => fold.visible().size === 3 && noTasks(state), 30_000);
    assert.deepEqual([...fold.visible().values()].map((r) => Number(r["id"])).sort((a, b) => a - b), [1, 2, 3], "the other partitions' rows kept");

    // A new stream (capture opens one after every retriable failure) keeps the partitions seen before: one attached
    // while none was open, before the new stream's first look, is read too. An empty one attached with it is not read.
    state.stop = true;
    await state.done;
    await source.close();
    await admin.query(`CREATE TABLE "${schema}".part_us (id int, region text, v text, PRIMARY KEY (id, region))`);
    await admin.query(`INSERT INTO "${schema}".part_us SELECT i, 'us', 'held ' || i FROM generate_series(20, 22) i`);
    await admin.query(`ALTER TABLE "${schema}".part ATTACH PARTITION "${schema}".part_us FOR VALUES IN ('us')`);
    await admin.query(`CREATE TABLE "${schema}".part_empty PARTITION OF "${schema}".part FOR VALUES IN ('empty')`);
    await source.connect(state.checkpoint, AbortSignal.timeout(30_000));
    const resumed = pump(source, [fold]);
    resumed.checkpoint = state.checkpoint;
    pumps.push(resumed);
    await waitFor("the partition attached between streams read", () => fold.visible().size === 6 && noTasks(resumed), 10_000);
    assert.deepEqual([...fold.visible().values()].map((r) => Number(r["id"])).sort((a, b) => a - b), [1, 2, 3, 20, 21, 22]);
    assert.deepEqual(
      source.snapshotProgress().filter((p) => p.state === "done" && p.rowsDone === 0),
      [],
      "no read of the empty partition",
    );
  } finally {
    await stopCheckpoints();
    await stopPumps(pumps, opened);
  }
});

test("with SELECT on the partitioned table only (no grant on its partitions), a partition attached holding rows is read through the root", async () => {
  const publication = randomName("attach_pub");
  await admin.query(`CREATE PUBLICATION "${publication}" FOR TABLE "${schema}".granted WITH (publish_via_partition_root = true)`);
  const c = sourceConfig({
    tables: [`${schema}.granted`],
    user: reader,
    password: readerPassword,
    publication,
    create_publication: false,
    snapshot: { mode: "initial", parallelism: 1, chunk_rows: 100 },
    heartbeat_interval: 500,
  });
  configs.push(c);
  const lines: string[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => void lines.push(line) });
  const source = newSource(c, { tableDiscoveryMs: 300, logger });
  const pumps: Pump[] = [];
  const stopCheckpoints = checkpointing();
  try {
    await source.connect(null, AbortSignal.timeout(30_000));
    const fold = new Fold("granted");
    const state = pump(source, [fold]);
    pumps.push(state);
    await waitFor("the initial snapshot", () => state.checkpoint !== null && !isSnapshotIncomplete(state.checkpoint.position) && noTasks(state));
    await new Promise((resolve) => setTimeout(resolve, 700));

    await admin.query(`CREATE TABLE "${schema}".granted_asia (id int, region text, v text, PRIMARY KEY (id, region))`);
    await admin.query(`INSERT INTO "${schema}".granted_asia SELECT i, 'asia', 'held ' || i FROM generate_series(10, 12) i`);
    await admin.query(`ALTER TABLE "${schema}".granted ATTACH PARTITION "${schema}".granted_asia FOR VALUES IN ('asia')`);
    await waitFor("the attached partition's rows read", () => fold.visible().size === 5 && noTasks(state), 10_000);
    assert.deepEqual([...fold.visible().values()].map((r) => Number(r["id"])).sort((a, b) => a - b), [1, 2, 10, 11, 12]);
    assert.ok(lines.some((line) => line.includes("may not SELECT from these partitions")), "why it is read through the root, said");
    assert.ok(!lines.some((line) => line.includes("could not look for new tables")), lines.join(""));
  } finally {
    await stopCheckpoints();
    await stopPumps(pumps, [source]);
  }
});

test("the partitions attached are looked up in one catalog query and probed in one more per chunk of them", async () => {
  await admin.query(`CREATE TABLE "${schema}".many (id int, region text, PRIMARY KEY (id, region)) PARTITION BY LIST (region)`);
  const relids: number[] = [];
  for (let i = 0; i < 40; i++) {
    await admin.query(`CREATE TABLE "${schema}".many_${i} PARTITION OF "${schema}".many FOR VALUES IN ('r${i}')`);
    relids.push(Number((await admin.query<{ oid: string }>(`SELECT '"${schema}".many_${i}'::regclass::oid AS oid`)).rows[0]!.oid));
  }
  // Rows in 0 and 1; SELECT granted on all but 1 and 2; 39 dropped (gone since it was seen).
  await admin.query(`INSERT INTO "${schema}".many VALUES (1, 'r0'), (2, 'r1'), (3, 'r1')`);
  for (let i = 0; i < 40; i++) if (i !== 1 && i !== 2) await admin.query(`GRANT SELECT ON "${schema}".many_${i} TO "${reader}"`);
  await admin.query(`DROP TABLE "${schema}".many_39`);
  const client = new pg.Client({ ...postgres, user: reader, password: readerPassword, types: { getTypeParser: () => (text: string) => text } });
  await client.connect();
  try {
    let queries = 0;
    const counted = { query: ((...args: Parameters<pg.Client["query"]>) => (queries++, client.query(...args))) as pg.Client["query"] };
    const { held, unreadable } = await attachedLeaves(counted, relids);
    assert.deepEqual(held, [{ relid: relids[0], name: `"${schema}"."many_0"` }]);
    assert.deepEqual(unreadable, [1, 2].map((i) => ({ relid: relids[i], name: `"${schema}"."many_${i}"` })));
    assert.equal(queries, 2);
    // 37 readable ones, probed 16 per statement on the server: the same answer in 1 + 3 queries.
    queries = 0;
    assert.deepEqual(await attachedLeaves(counted, relids, 16), { held, unreadable });
    assert.equal(queries, 4);
  } finally {
    await client.end();
  }
});
