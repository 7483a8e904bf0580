/**
 * End to end (issue 12, item 6; issue 14, item 6): kill -9 of the daemon during the initial
 * snapshot, rows deleted and changed in PostgreSQL before each restart. The snapshot resumes on
 * the same slot instead of starting over: the table it finished is not read again, the table it
 * was reading goes on after its last stored key (online, docs/snapshots.md), and DuckDB must end
 * equal to PostgreSQL: no row the source deleted meanwhile ("ghosts") may stay. And because the
 * fix has to be in the topics, not only in the sink, a fresh sink that reads every topic from the
 * beginning after compaction, and an in-order reading of the topics the way a Debezium consumer
 * applies them, must also end with exactly the source's rows (the resets are in the control
 * topic, none in the data topics).
 *
 * Two kills: the first while the second of two tables is read in the exported snapshot
 * (parallelism 1, so the first table's rows are all published), the second while the resumed
 * snapshot reads the rest of it online. Rows published twice: at most one chunk per kill.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type pg from "pg";
import { EmbeddedTopicLog } from "../../connectors/embedded/embedded-log.ts";
import { controlTopic } from "../../connectors/topics/names.ts";
import { createLogger } from "../../runtime/logger.ts";
import {
  assertTablesEqual,
  createTableSql,
  dropPostgres,
  expectedFor,
  killAllDaemons,
  killDuringSnapshot,
  pgClient,
  pgSourceConfig,
  qualifiedName,
  randomName,
  readDuckDb,
  readEmbeddedTopics,
  readPostgres,
  removeDir,
  SluiceDaemon,
  snapshotRowsPublished,
  tempDir,
  waitCaughtUp,
  waitSnapshotDone,
} from "./helpers.ts";
import type { CanonicalTable, TableDef } from "./helpers.ts";

const schema = randomName("e2e_resnap");
const source = randomName("src");
const deployment = randomName("dep");
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
const table = (name: string): TableDef => ({
  schema,
  name,
  columns: [
    { name: "id", sql: "bigint", kind: "int8" },
    { name: "note", sql: "text", kind: "text" },
    { name: "n", sql: "integer", kind: "int4" },
  ],
  key: ["id"],
});
// Read in this order with parallelism 1: the larger estimate first.
const first = table("first_read");
const second = table("second_read");
const tables = [first, second];
// Enough chunks (CHUNK_ROWS each) for both kills to land inside the second table's read; the first is read whole before it.
const ROWS = { first_read: 5_000, second_read: 4_000 } as const;
const dir = tempDir("resnap");
const CHUNK_ROWS = 20;
const duckPath = join(dir, "warehouse.duckdb");
const freshPath = join(dir, "fresh.duckdb");
const topicOf = (def: TableDef) => `${deployment}.${source}.${schema}.${def.name}`;
const target = (def: TableDef) => `${schema}_${def.name}`;
const warehouse = { kind: "duckdb", name: "warehouse", path: duckPath, batch: { max_rows: 500, max_wait: "50ms" } };
const config = {
  name: deployment,
  // Small chunks and a small read-ahead: the snapshot takes a few seconds, so a kill lands in it.
  sources: [pgSourceConfig(source, [`${schema}.*`], { snapshot: { mode: "initial", parallelism: 1, chunk_rows: CHUNK_ROWS }, max_buffer_bytes: 64 * 1024 })],
  topics: { kind: "embedded", path: join(dir, "log.db") },
  sinks: [warehouse],
};
let client: pg.Client;

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  for (const def of tables) {
    await client.query(createTableSql(def));
    await client.query(`INSERT INTO ${qualifiedName(def)} SELECT g, 'row ' || g || repeat('.', 40), g % 97 FROM generate_series(1, ${ROWS[def.name as keyof typeof ROWS]}) g`);
    await client.query(`ANALYZE ${qualifiedName(def)}`);
  }
});

after(async () => {
  await killAllDaemons();
  await dropPostgres(client, names);
  await client.end();
  removeDir(dir);
});

/** Snapshot rows of `def` the daemon has published (stored in the log) so far. */
const published = (daemon: SluiceDaemon, def: TableDef) => snapshotRowsPublished(daemon, `${schema}.${def.name}`);

/** Starts the daemon and SIGKILLs it once this process has published `rows` snapshot rows of `def`; returns what each table published. */
const killDuringSnapshotOf = (def: TableDef, label: string, rows = 200) =>
  killDuringSnapshot(dir, config, label, { namespace: schema, table: def.name, rows, tables: tables.map((t) => t.name), timeoutMs: 90_000 });

/** Rows of `def` the running daemon's DuckDB sink shows that match `where` (its query endpoint); null before the table exists. */
async function sinkCount(daemon: SluiceDaemon, def: TableDef, where: string): Promise<number | null> {
  const response = await fetch(`${daemon.url}/sinks/warehouse/query`, { method: "POST", body: `SELECT count(*)::INTEGER AS n FROM main."${target(def)}" WHERE ${where}`, signal: AbortSignal.timeout(30_000) });
  if (response.status !== 200) return null;
  const body = (await response.json()) as { rows?: { n: number }[] };
  return body.rows?.[0]?.n ?? null;
}

/**
 * Samples the sink's rows of `def` that the source still has (`kept`: a condition on the key,
 * nothing writes meanwhile) until `stop` resolves: their count never goes down while the snapshot
 * is read on. Rows the source deleted (ghosts) may go, streamed deletes and the reset remove them.
 */
async function watchNoVanishing(daemon: SluiceDaemon, def: TableDef, kept: string, stop: Promise<unknown>): Promise<{ samples: number; drops: string[] }> {
  let done = false;
  void stop.finally(() => (done = true)).catch(() => undefined);
  let seen = 0;
  let samples = 0;
  const drops: string[] = [];
  while (!done) {
    const n = await sinkCount(daemon, def, kept).catch(() => null);
    if (n !== null) {
      samples++;
      if (n < seen) drops.push(`${n} rows the source has after ${seen}`);
      seen = Math.max(seen, n);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return { samples, drops };
}

/** Rows of `def` in the log: snapshot reads and everything else, per op. */
async function topicOps(def: TableDef): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const record of await readEmbeddedTopics(join(dir, "log.db"), [topicOf(def)], { decode: true })) {
    const op = record.event?.op ?? "tombstone";
    counts[op] = (counts[op] ?? 0) + 1;
  }
  return counts;
}

test("a snapshot resumed after kill -9 reads no finished table again, leaves no rows the source deleted meanwhile, in the sink and in the topics", { timeout: 300_000 }, async (t) => {
  await killDuringSnapshotOf(second, "run1");
  const afterFirstKill = { first: await topicOps(first), second: await topicOps(second) };
  t.diagnostic(`after the first kill: ${JSON.stringify(afterFirstKill)}`);
  assert.ok((afterFirstKill.first["r"] ?? 0) >= ROWS.first_read, "the first table was published whole before the kill");
  assert.ok((afterFirstKill.second["r"] ?? 0) > 0 && (afterFirstKill.second["r"] ?? 0) < ROWS.second_read, "the kill landed inside the snapshot of the second table");

  // Deleted (and changed) while no daemon runs: the stream from the slot's consistent point carries these.
  await client.query(`DELETE FROM ${qualifiedName(first)} WHERE id % 7 = 0`);
  await client.query(`DELETE FROM ${qualifiedName(second)} WHERE id % 5 = 0 OR id <= 50`);
  await client.query(`UPDATE ${qualifiedName(second)} SET note = 'changed' WHERE id % 11 = 0`);

  const run2 = await killDuringSnapshotOf(second, "run2", (afterFirstKill.second["r"] ?? 0) + 300 > ROWS.second_read ? 50 : 300);
  t.diagnostic(`run 2 published ${JSON.stringify(run2)} before its kill`);
  assert.equal(run2[first.name], 0, "the table the snapshot finished is not read again");
  await client.query(`DELETE FROM ${qualifiedName(first)} WHERE id % 3 = 0 OR id <= 100`);
  await client.query(`DELETE FROM ${qualifiedName(second)} WHERE id > ${ROWS.second_read - 300}`);
  await client.query(`INSERT INTO ${qualifiedName(second)} SELECT g, 'late ' || g, 1 FROM generate_series(${ROWS.second_read + 1}, ${ROWS.second_read + 500}) g`);

  let daemon = await SluiceDaemon.start(dir, config, "run3");
  // The rows of the second table the source still has, by the deletes above.
  const kept = `(id > 50 AND id % 5 <> 0 AND id <= ${ROWS.second_read - 300}) OR id > ${ROWS.second_read}`;
  const finished = waitSnapshotDone(daemon, `${schema}.${second.name}`).then(() => waitCaughtUp(daemon, client, { timeoutMs: 150_000 }));
  const watch = watchNoVanishing(daemon, second, kept, finished);
  await finished;
  const { samples, drops } = await watch;
  t.diagnostic(`${samples} samples of the sink while the resumed snapshot was applied`);
  assert.ok(samples > 0, "the sink was sampled");
  assert.deepEqual(drops.slice(0, 5), [], `rows the source still has vanished from the sink while ${second.name} was read on (${drops.length} samples)`);
  assert.equal(await published(daemon, first), 0, "the finished table is not read again after the second kill either");

  // Rows published twice (the log stores a batch and its checkpoint together): at most the chunk in flight at each kill.
  const reads = new Map<string, number>();
  for (const record of await readEmbeddedTopics(join(dir, "log.db"), [topicOf(second)], { decode: true })) {
    if (record.event?.op === "r") reads.set(String(record.event.key["id"]), (reads.get(String(record.event.key["id"])) ?? 0) + 1);
  }
  const twice = [...reads.values()].filter((n) => n > 1).length;
  t.diagnostic(`${second.name}: ${reads.size} rows read, ${twice} of them twice`);
  assert.ok(twice <= 2 * CHUNK_ROWS, `${twice} rows of ${second.name} published twice: more than one chunk (${CHUNK_ROWS}) per kill`);

  // Streamed after the completed snapshot: the resets never touch these.
  await client.query(`DELETE FROM ${qualifiedName(second)} WHERE id % 13 = 0`);
  await client.query(`INSERT INTO ${qualifiedName(first)} SELECT g, 'streamed ' || g, 2 FROM generate_series(${ROWS.first_read + 1}, ${ROWS.first_read + 300}) g`);
  await waitCaughtUp(daemon, client, { timeoutMs: 150_000 });
  await daemon.stop();

  const expected: CanonicalTable[] = [];
  for (const def of tables) expected.push(expectedFor("duckdb", def, await readPostgres(client, def))); // one query at a time on the client
  const read = await readDuckDb(duckPath, tables.map((def) => ({ def, target: target(def) })));
  for (const [i, def] of tables.entries()) assertTablesEqual(expected[i]!, read[i]!.rows, `DuckDB ${def.name} after two kills during the snapshot`);

  // Compacted first (a day later: every record is past min_compaction_lag), so the fresh sink reads
  // only each row's latest record and each table's newest reset from the control topic.
  const log = EmbeddedTopicLog.open({ path: join(dir, "log.db"), logger: createLogger("silent"), maintenanceIntervalMs: 0, clock: () => Date.now() + 86_400_000 });
  let compacted = 0;
  try {
    for (let idle = 0; idle < 2; ) {
      const result = log.runMaintenance();
      compacted += result.compactedRecords;
      idle = result.compactedRecords === 0 && result.deletedBatches === 0 ? idle + 1 : 0;
    }
  } finally {
    await log.close();
  }
  t.diagnostic(`compaction removed ${compacted} records`);
  assert.ok(compacted > 0, "the interrupted attempts' superseded records were compacted away");

  // A sink that never saw the earlier attempts reads every topic from the beginning.
  daemon = await SluiceDaemon.start(dir, { ...config, sinks: [warehouse, { ...warehouse, name: "fresh", path: freshPath }] }, "fresh");
  await waitCaughtUp(daemon, client, { timeoutMs: 150_000 });
  await daemon.stop();
  const fresh = await readDuckDb(freshPath, tables.map((def) => ({ def, target: target(def) })));
  for (const [i, def] of tables.entries()) assertTablesEqual(expected[i]!, fresh[i]!.rows, `a fresh DuckDB sink replaying ${def.name} from the beginning`);

  // In order, as a consumer that keeps each row's version applies them (docs/sinks.md): creates, reads
  // and updates upsert, deletes remove, a truncate removes the rows at or below its version.
  // One that ignores versions skips the snapshot resets: it ends with every source row (plus ghosts).
  for (const [i, def] of tables.entries()) {
    const versions = new Map<string, bigint>();
    const keys = new Set<string>();
    // The snapshot resets are in the control topic (naming the data topic in a header), not in the data topic.
    const control = controlTopic(deployment);
    const read = await readEmbeddedTopics(join(dir, "log.db"), [topicOf(def), control], { decode: true });
    assert.ok(read.some((r) => r.topic === control && r.headers["sluice.topic"] === topicOf(def)), `${def.name}: its resets are in ${control}`);
    assert.ok(!read.some((r) => r.topic === topicOf(def) && r.event?.op === "t"), `${def.name}: no op t in its data topic`);
    const resets = read.filter((r) => r.topic === control && r.headers["sluice.topic"] === topicOf(def));
    // A consumer applying by version may apply them after every row: they remove rows at or below their version only.
    for (const record of [...read.filter((r) => r.topic === topicOf(def)), ...resets]) {
      const event = record.event;
      if (event === null) continue;
      const key = String(event.key["id"]);
      const version = event.source.position.change;
      if (event.op === "t") {
        for (const [k, v] of versions) if (v <= version) versions.delete(k);
        if (!event.source.snapshot) keys.clear();
      } else if (event.op === "d") {
        versions.delete(key);
        keys.delete(key);
      } else {
        versions.set(key, version);
        keys.add(key);
      }
    }
    const wanted = [...expected[i]!.values()].map((row) => row["id"]!);
    assert.deepEqual([...versions.keys()].sort(), [...wanted].sort(), `${def.name}: the topic read in order with versions ends with exactly the source's rows`);
    const missing = wanted.filter((id) => !keys.has(String(id)));
    assert.deepEqual(missing, [], `${def.name}: the topic read in order without versions, snapshot resets skipped, keeps every source row`);
  }
});
