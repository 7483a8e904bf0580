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
import { pino } from "pino";
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
async function whileCapturing(
  pattern: string,
  table: string,
  body: (c: PostgresSourceConfig, fold: Fold, state: Pump, source: PostgresSource) => Promise<void>,
  options: { logger?: Logger; expected?: (c: PostgresSourceConfig) => Promise<{ id: string; v: string }[]>; fold?: Fold } = {},
): Promise<void> {
  const c = sourceConfig({ tables: [pattern], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 100 }, heartbeat_interval: 500 });
  configs.push(c);
  const opened: PostgresSource[] = [];
  const pumps: Pump[] = [];
  const stopCheckpoints = checkpointing();
  try {
    const source = newSource(c, { tableDiscoveryMs: 300, ...(options.logger === undefined ? {} : { logger: options.logger }) });
    opened.push(source);
    await source.connect(null, AbortSignal.timeout(30_000));
    const fold = options.fold ?? new Fold(table);
    const state = pump(source, [fold]);
    pumps.push(state);
    await waitFor("the initial snapshot", () => state.checkpoint !== null && !isSnapshotIncomplete(state.checkpoint.position) && noTasks(state));
    await body(c, fold, state, source);

    const rows = (await options.expected?.(c)) ?? (await admin.query<{ id: string; v: string }>(`SELECT id, v FROM "${schema}".${table} ORDER BY id`)).rows;
    const visible = fold.visible();
    assert.deepEqual([...visible.keys()].map(Number).sort((a, b) => a - b), rows.map((r) => Number(r.id)), "the rows deleted meanwhile are gone");
    assert.ok(rows.every((r) => visible.get(r.id)?.["v"] === Number(r.v)), "every row with its latest value");
  } finally {
    await stopCheckpoints();
    await stopPumps(pumps, opened);
  }
}

/** A fold that, once watching, keeps the fewest rows it held after any change. */
class WatchedFold extends Fold {
  watching = false;
  least = Number.POSITIVE_INFINITY;

  override apply(event: Parameters<Fold["apply"]>[0]): void {
    super.apply(event);
    if (this.watching) this.least = Math.min(this.least, this.visible().size);
  }
}

test("a captured table dropped from the publication while capture streams is put back and read again without emptying its targets, without a restart", async () => {
  const watched = new WatchedFold("items");
  await whileCapturing(`${schema}.*`, "items", async (c, fold, state) => {
    assert.equal(fold.visible().size, 200);
    watched.watching = true;

    await admin.query(`ALTER PUBLICATION "${c.publication}" DROP TABLE "${schema}".items`);
    // Changes while the table is out of the publication: never streamed.
    await admin.query(`UPDATE "${schema}".items SET v = -v WHERE id <= 10`);
    await admin.query(`DELETE FROM "${schema}".items WHERE id > 190`);
    await admin.query(`INSERT INTO "${schema}".items VALUES (1000, 1000, 'while out')`);

    await waitFor("the table back in the publication", () => published(c.publication), 30_000);
    await waitFor("the table read again", () => fold.visible().get("1000")?.["note"] === "while out" && noTasks(state), 60_000);
    await admin.query(`INSERT INTO "${schema}".items VALUES (1001, 1001, 'streamed')`);
    await waitFor("a later change streamed", () => fold.visible().get("1001")?.["note"] === "streamed", 30_000);
    assert.ok(watched.least >= 190, `the targets keep their rows while the table is read again (fewest held: ${watched.least})`);
  }, { fold: watched });
});

/** Warnings a source logged (JSON lines at warn and above). */
function warnLog(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return { logger: pino({ level: "warn" }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) }), lines };
}

const optionsOf = async (publication: string | undefined): Promise<Record<string, boolean>> => {
  const row = (await admin.query<Record<string, unknown>>(`SELECT pubinsert, pubupdate, pubdelete, pubtruncate, pubviaroot FROM pg_publication WHERE pubname = $1`, [publication])).rows[0] ?? {};
  return Object.fromEntries(Object.entries(row).map(([name, value]) => [name, value === true || value === "t"]));
};

/** A few looks (300 ms apart) after the publication's change. */
const someLooks = () => new Promise((resolve) => setTimeout(resolve, 1_500));

test("a publication set to leave out updates and deletes is not changed and no target is emptied: warned once, shown in warnings(), then cleared when set back by hand", async () => {
  await admin.query(`CREATE TABLE "${schema}".acts (id int PRIMARY KEY, v int NOT NULL, note text)`);
  await admin.query(`INSERT INTO "${schema}".acts SELECT i, i, 'n' || i FROM generate_series(1, 200) i`);
  const log = warnLog();
  await whileCapturing(
    `${schema}.acts`,
    "acts",
    async (c, fold, state, source) => {
      await admin.query(`ALTER PUBLICATION "${c.publication}" SET (publish = 'insert, truncate')`);
      // pgoutput drops these: the sinks keep the old values and the deleted rows (deliberately, when the operator meant it).
      await admin.query(`UPDATE "${schema}".acts SET v = -v WHERE id <= 10`);
      await admin.query(`DELETE FROM "${schema}".acts WHERE id > 190`);
      await admin.query(`INSERT INTO "${schema}".acts VALUES (1000, 1000, 'while insert only')`);
      await waitFor("the insert streamed", () => fold.visible().get("1000")?.["note"] === "while insert only", 30_000);
      await waitFor("the warning", () => source.warnings().length === 1, 30_000);
      await someLooks();

      assert.deepEqual(await optionsOf(c.publication), { pubinsert: true, pubupdate: false, pubdelete: false, pubtruncate: true, pubviaroot: true }, "the publication as the operator left it");
      assert.ok(noTasks(state), "no table read again");
      assert.equal(fold.visible().get("1")?.["v"], 1, "not emptied: the sinks keep what they had");
      assert.ok(fold.visible().has("200"));
      const told = log.lines.filter((l) => l["publication"] === c.publication && Array.isArray(l["unpublished"]));
      assert.equal(told.length, 1, "warned once");
      assert.deepEqual(told[0]!["unpublished"], ["update", "delete"]);
      assert.equal(told[0]!["viaRoot"], true);
      assert.deepEqual(told[0]!["tables"], [`${schema}.acts`]);
      const message = String(told[0]!["msg"]);
      assert.match(message, new RegExp(`ALTER PUBLICATION "${c.publication!}" SET \\(publish = 'insert, update, delete, truncate'\\)`));
      assert.match(message, new RegExp(`sluice snapshot -c CONFIG --table ${schema}\\.acts --execute`));
      const [warning] = source.warnings();
      assert.equal(warning?.code, "PG_PUBLICATION_INCOMPLETE");
      assert.equal(warning?.message, message);

      await admin.query(`ALTER PUBLICATION "${c.publication}" SET (publish = 'insert, update, delete, truncate')`);
      await waitFor("the warning cleared", () => source.warnings().length === 0, 30_000);
      await admin.query(`UPDATE "${schema}".acts SET note = 'streamed', v = 1 WHERE id = 1`);
      await waitFor("a later update streamed", () => fold.visible().get("1")?.["note"] === "streamed", 30_000);
    },
    // What the sinks keep: every row as it was before the publication left out updates and deletes, and the insert.
    { logger: log.logger, expected: async () => (await admin.query<{ id: string; v: string }>("SELECT i::text AS id, i::text AS v FROM generate_series(1, 200) i UNION ALL SELECT '1000', '1000'")).rows },
  );
});

test("a publication set to stop publishing via the partition root is not set back and no target is emptied: warned once for the partitioned table", async () => {
  await admin.query(`CREATE TABLE "${schema}".parts (id int PRIMARY KEY, v int NOT NULL, note text) PARTITION BY RANGE (id)`);
  await admin.query(`CREATE TABLE "${schema}".parts_a PARTITION OF "${schema}".parts FOR VALUES FROM (0) TO (100)`);
  await admin.query(`CREATE TABLE "${schema}".parts_b PARTITION OF "${schema}".parts FOR VALUES FROM (100) TO (1000)`);
  await admin.query(`INSERT INTO "${schema}".parts SELECT i, i, 'n' || i FROM generate_series(1, 200) i`);
  const log = warnLog();
  await whileCapturing(
    `${schema}.parts`,
    "parts",
    async (c, fold, state, source) => {
      await admin.query(`ALTER PUBLICATION "${c.publication}" SET (publish_via_partition_root = false)`);
      await waitFor("the warning", () => source.warnings().length === 1, 30_000);
      await someLooks();
      assert.equal((await optionsOf(c.publication))?.pubviaroot, false, "the publication as the operator left it");
      assert.ok(noTasks(state), "no table read again");
      assert.equal(fold.visible().size, 200, "not emptied");
      const told = log.lines.filter((l) => l["publication"] === c.publication && l["viaRoot"] === false);
      assert.equal(told.length, 1, "warned once");
      assert.deepEqual(told[0]!["tables"], [`${schema}.parts`]);
      assert.match(String(told[0]!["msg"]), /publish_via_partition_root = true/);
      assert.equal(log.lines.filter((l) => String(l["msg"]).includes("taken out of publication")).length, 0, "the table is not taken for missing");

      await admin.query(`ALTER PUBLICATION "${c.publication}" SET (publish_via_partition_root = true)`);
      await waitFor("the warning cleared", () => source.warnings().length === 0, 30_000);
      await admin.query(`UPDATE "${schema}".parts SET note = 'streamed' WHERE id = 150`);
      await waitFor("a later update streamed", () => fold.visible().get("150")?.["note"] === "streamed", 30_000);
    },
    { logger: log.logger },
  );
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

test("a captured table taken out of the publication and put back between two looks is read again: its changes while out reach the targets", async () => {
  await admin.query(`CREATE TABLE "${schema}".quick (id int PRIMARY KEY, v int NOT NULL, note text)`);
  await admin.query(`INSERT INTO "${schema}".quick SELECT i, i, 'n' || i FROM generate_series(1, 100) i`);
  await whileCapturing(`${schema}.quick`, "quick", async (c, fold, state) => {
    // A look (300 ms apart) records the membership; out and back in one transaction, so no look can see it out.
    await someLooks();
    await admin.query(`BEGIN;
      ALTER PUBLICATION "${c.publication}" DROP TABLE "${schema}".quick;
      UPDATE "${schema}".quick SET v = -v WHERE id <= 10;
      DELETE FROM "${schema}".quick WHERE id > 90;
      INSERT INTO "${schema}".quick VALUES (1000, 1000, 'while out');
      ALTER PUBLICATION "${c.publication}" ADD TABLE "${schema}".quick;
      COMMIT`);
    await waitFor("the table read again", () => fold.visible().get("1000")?.["note"] === "while out" && noTasks(state), 20_000);
  });
});

test("tables taken out and put back between two looks, one of them with no key: the others are still read again, the keyless one is warned with what to do, and a table left out is put back", async () => {
  // Known tables are looked at in name order: the keyless one first.
  await admin.query(`CREATE TABLE "${schema}".rq_a_nokey (id int, v int); ALTER TABLE "${schema}".rq_a_nokey REPLICA IDENTITY FULL; INSERT INTO "${schema}".rq_a_nokey VALUES (1, 1)`);
  await admin.query(`CREATE TABLE "${schema}".rq_b (id int PRIMARY KEY, v int NOT NULL, note text); INSERT INTO "${schema}".rq_b SELECT i, i, 'n' || i FROM generate_series(1, 50) i`);
  await admin.query(`CREATE TABLE "${schema}".rq_c (id int PRIMARY KEY, v int NOT NULL)`);
  const lines: { msg: string; table?: string }[] = [];
  const logger = pino({ level: "warn" }, { write: (line: string) => void lines.push(JSON.parse(line) as { msg: string; table?: string }) });
  await whileCapturing(`${schema}.rq_*`, "rq_b", async (c, fold, state) => {
    await someLooks();
    await admin.query(`BEGIN;
      ALTER PUBLICATION "${c.publication}" DROP TABLE "${schema}".rq_a_nokey, "${schema}".rq_b, "${schema}".rq_c;
      INSERT INTO "${schema}".rq_b VALUES (1000, 1000, 'while out');
      DELETE FROM "${schema}".rq_b WHERE id BETWEEN 41 AND 50;
      ALTER PUBLICATION "${c.publication}" ADD TABLE "${schema}".rq_a_nokey, "${schema}".rq_b;
      COMMIT`);
    const inPublication = async (): Promise<boolean> =>
      (await admin.query(`SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = 'rq_c'`, [c.publication, schema])).rowCount === 1;
    let back = false;
    await waitFor("rq_b read again and rq_c put back", async () => (back ||= await inPublication()) && fold.visible().get("1000")?.["note"] === "while out" && noTasks(state), 20_000);
  }, { logger });
  const noKey = lines.filter((l) => l.table === `${schema}.rq_a_nokey` && l.msg.includes("put back since the last look"));
  assert.equal(noKey.length, 1, `the keyless table is warned once: ${JSON.stringify(lines)}`);
  assert.match(noKey[0]!.msg, /no primary key or replica identity index/);
  assert.match(noKey[0]!.msg, new RegExp(`sluice snapshot --table ${schema}\\.rq_a_nokey --execute`));
});

test("a table taken out and put back whose read again cannot be queued at one look (the source not streaming, say) is asked for again at the next look, warned once", async () => {
  await admin.query(`CREATE TABLE "${schema}".rr (id int PRIMARY KEY, v int NOT NULL, note text); INSERT INTO "${schema}".rr SELECT i, i, 'n' || i FROM generate_series(1, 20) i`);
  const lines: { msg: string; table?: string }[] = [];
  const logger = pino({ level: "warn" }, { write: (line: string) => void lines.push(JSON.parse(line) as { msg: string; table?: string }) });
  await whileCapturing(`${schema}.rr`, "rr", async (c, fold, state, source) => {
    await someLooks();
    // Queued without the planner's estimate (it locks the table), named by the new membership row so it is queued once.
    const queue = source.snapshots.queue.bind(source.snapshots);
    let refused = 0;
    const ids: string[] = [];
    source.snapshots.queue = (async (...args: Parameters<typeof queue>) => {
      ids.push(args[2]);
      if (refused++ < 2) throw new Error("not streaming yet");
      return queue(...args);
    }) as typeof queue;
    await admin.query(`BEGIN;
      ALTER PUBLICATION "${c.publication}" DROP TABLE "${schema}".rr;
      INSERT INTO "${schema}".rr VALUES (1000, 1000, 'while out');
      ALTER PUBLICATION "${c.publication}" ADD TABLE "${schema}".rr;
      COMMIT`);
    await waitFor("the table read again", () => fold.visible().get("1000")?.["note"] === "while out" && noTasks(state), 20_000);
    assert.equal(refused, 3, "asked for at three looks: refused twice, then queued");
    assert.equal(new Set(ids).size, 1, `the same request id at each look: ${ids.join(", ")}`);
    assert.match(ids[0]!, new RegExp(`^publication-readded@\\d+/${schema}\\.rr$`));
  }, { logger });
  const failed = lines.filter((l) => l.table === `${schema}.rr` && l.msg.includes("could not be queued"));
  assert.equal(failed.length, 1, `warned once: ${JSON.stringify(lines)}`);
  assert.match(failed[0]!.msg, /not streaming yet.*trying again at each look/);
});
