import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { test } from "node:test";
import type { SinkChange, TopicLog } from "../connectors/contracts.ts";
import { createDuckDbSink } from "../connectors/duckdb/duckdb-sink.ts";
import { EmbeddedTopicLog } from "../connectors/embedded/embedded-log.ts";
import { markPersonalValues, PERSONAL_VALUE } from "../connectors/sinks/personal-values.ts";
import { testLogger, testSinkConfig } from "../connectors/sinks/test-config.ts";
import { Events, tableSchema } from "../connectors/sinks/test-events.ts";
import { CONTROL_TOPIC_HEADER } from "./control-records.ts";
import { deserializeEvent, serializeEvent } from "./event-json.ts";
import { ConnectionError, SluiceError } from "../connectors/errors.ts";
import { createLogger } from "../runtime/logger.ts";
import { historyGaps, rebuildSink, rebuildTolerance, rowCountMismatches } from "./rebuild.ts";
import { Misfits } from "./rebuild-shape.ts";
import { abandonRebuild } from "./rebuild-abandon.ts";
import type { RebuildOptions } from "./rebuild.ts";
import type { RebuildProgress } from "./rebuild-progress.ts";

test("a rebuild fills a new generation from the topic while the old one serves, then swaps", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-rebuild-"));
  const logger = testLogger();
  const log = EmbeddedTopicLog.open({ path: join(dir, "log.db"), logger });
  const events = new Events(tableSchema("items", [["id", "integer"], ["name", "text"]]));
  await log.createTopic({ name: events.topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  const history: SinkChange[] = [
    events.insert(1n, { id: 1, name: "one" }),
    events.insert(2n, { id: 2, name: "two" }),
    events.update(3n, { id: 1, name: "uno" }),
    events.delete(4n, { id: 2 }),
    events.insert(5n, { id: 3, name: "three" }),
  ];
  await log.produce(history.map(({ event }) => ({ topic: events.topic, key: Buffer.from(String(event.key["id"])), value: Buffer.from(serializeEvent(event)), timestamp: 0 })));

  const sink = createDuckDbSink(testSinkConfig("duckdb", { name: "wh", path: join(dir, "wh.duckdb") }), { logger });
  const signal = new AbortController().signal;
  await sink.open(signal);
  // The live table holds something stale: the rebuild must replace it with what the topic says.
  await sink.write([events.insert(1n, { id: 1, name: "one" }), events.insert(9n, { id: 7, name: "stale" })], signal);
  const before = await sink.query(`SELECT id, name FROM public_items ORDER BY id`);
  assert.deepEqual(before, [{ id: 1, name: "one" }, { id: 7, name: "stale" }]);

  const progress: RebuildProgress[] = [];
  const report = await rebuildSink({
    sink,
    log,
    decoder: { decode: async (r) => (r.value ? deserializeEvent(Buffer.from(r.value).toString()) : null) },
    topics: [events.topic],
    group: "wh.rebuild",
    logger,
    signal,
    onProgress: (p) => progress.push(p),
  });
  assert.deepEqual(report, { tables: ["public.items"], records: 5, leftOut: 0, leftOutRecords: [] });
  // Progress: the records to read once planned, then every step to the swap.
  assert.deepEqual([...new Set(progress.map((p) => p.state))], ["reading", "checking", "swapping", "done"]);
  assert.deepEqual([progress[0]!.recordsDone, progress[0]!.recordsTotal], [0, 5]);
  assert.ok(progress.filter((p) => p.state !== "reading").every((p) => p.recordsDone === 5 && p.recordsTotal === 5), "every record read before the check");
  assert.deepEqual(progress.at(-1)!.tables, ["public.items"]);
  assert.deepEqual(await sink.query(`SELECT id, name FROM public_items ORDER BY id`), [{ id: 1, name: "uno" }, { id: 3, name: "three" }]);
  await sink.close();
  await log.close();
});

const jsonDecoder: RebuildOptions["decoder"] = { decode: async (r) => (r.value ? deserializeEvent(Buffer.from(r.value).toString()) : null) };

function produceAll(log: EmbeddedTopicLog, topic: string, changes: readonly SinkChange[]) {
  return log.produce(changes.map(({ event }) => ({ topic, key: Buffer.from(String(event.key["id"])), value: Buffer.from(serializeEvent(event)), timestamp: 0 })));
}

test("row counts: a mismatch beyond the records in flight is reported with table, expected and found", () => {
  assert.deepEqual(rowCountMismatches([
    { table: "public.same", counts: { live: 1_000, shadow: 1_000 }, tolerance: 0n },
    { table: "public.lost", counts: { live: 1_000, shadow: 1 }, tolerance: 0n },
    { table: "public.in_flight", counts: { live: 1_000, shadow: 1_003 }, tolerance: 3n },
    { table: "public.extra", counts: { live: 10, shadow: 14 }, tolerance: 3n },
    { table: "public.new", counts: { live: null, shadow: 5 }, tolerance: 0n },
  ]), [
    { table: "public.lost", expected: 1_000, found: 1, tolerance: 0n },
    { table: "public.extra", expected: 10, found: 14, tolerance: 3n },
  ]);
  // The records past what the live target applied, per partition; a partition it never applied counts whole.
  assert.equal(rebuildTolerance([{ start: 0n, end: 100n, applied: 100n }, { start: 0n, end: 50n, applied: 45n }, { start: 10n, end: 30n, applied: null }, { start: 0n, end: 5n, applied: 9n }]), 25n);
});

test("a rebuild from a topic whose first records expired is refused, naming the partition and its first offset; the sink is unchanged", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-rebuild-gap-"));
  const logger = testLogger();
  let now = 1_000_000;
  const log = EmbeddedTopicLog.open({ path: join(dir, "log.db"), logger, maintenanceIntervalMs: 0, clock: () => now });
  const events = new Events(tableSchema("items", [["id", "integer"], ["name", "text"]]));
  await log.createTopic({ name: events.topic, partitions: 1, retentionMs: 20_000, retentionBytes: null, compacted: false });
  const rows = Array.from({ length: 20 }, (_, i) => events.insert(BigInt(i + 1), { id: i + 1, name: `row ${i + 1}` }));
  await produceAll(log, events.topic, rows);
  now += 60_000;
  await produceAll(log, events.topic, [events.update(21n, { id: 1, name: "one" })]);
  log.runMaintenance();
  const start = (await log.partitionOffsets(events.topic))[0]!.start;
  assert.ok(start > 0n, "retention removed the first records");

  const sink = createDuckDbSink(testSinkConfig("duckdb", { name: "wh", path: join(dir, "wh.duckdb") }), { logger });
  const signal = new AbortController().signal;
  await sink.open(signal);
  await sink.write(rows, signal);
  await assert.rejects(
    rebuildSink({ sink, log, decoder: jsonDecoder, topics: [events.topic], group: "wh.rebuild", logger, signal }),
    (error: Error & { code?: string }) => {
      assert.equal(error.code, "REBUILD_HISTORY_INCOMPLETE");
      assert.match(error.message, new RegExp(`${events.topic.replaceAll(".", "\\.")}:0 starts at offset ${start}`));
      assert.match(error.message, /Re-snapshot instead/);
      return true;
    },
  );
  assert.deepEqual(await sink.query(`SELECT count(*)::INTEGER AS n FROM public_items`), [{ n: 20 }]);
  await sink.close();
  await log.close();
});

test("a rebuild during which retention deletes records it has not read yet is refused, naming the partition; the sink is unchanged", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-rebuild-expiring-"));
  const logger = testLogger();
  const now = 1_000_000;
  const log = EmbeddedTopicLog.open({ path: join(dir, "log.db"), logger, maintenanceIntervalMs: 0, clock: () => now });
  const events = new Events(tableSchema("items", [["id", "integer"], ["name", "text"]]));
  await log.createTopic({ name: events.topic, partitions: 1, retentionMs: 20_000, retentionBytes: null, compacted: false });
  const rows = Array.from({ length: 20 }, (_, i) => events.insert(BigInt(i + 1), { id: i + 1, name: `row ${i + 1}` }));
  // One stored batch per row, all older than the retention: nothing is deleted until the job runs.
  for (const row of rows) await produceAll(log, events.topic, [row]);
  const recent = Array.from({ length: 20 }, (_, i) => events.insert(BigInt(i + 21), { id: i + 21, name: `row ${i + 21}` }));
  await log.produce(recent.map(({ event }) => ({ topic: events.topic, key: Buffer.from(String(event.key["id"])), value: Buffer.from(serializeEvent(event)), timestamp: now })));

  const sink = createDuckDbSink(testSinkConfig("duckdb", { name: "wh", path: join(dir, "wh.duckdb") }), { logger });
  const signal = new AbortController().signal;
  await sink.open(signal);
  await sink.write([...rows, ...recent], signal);
  let decoded = 0;
  // The retention job runs once the rebuild has begun reading (after its check that every partition starts at 0).
  const decoder: RebuildOptions["decoder"] = {
    decode: async (r) => {
      if (decoded++ === 0) log.runMaintenance();
      return jsonDecoder.decode(r);
    },
  };
  await assert.rejects(
    rebuildSink({ sink, log, decoder, topics: [events.topic], group: "wh.rebuild", logger, signal, batchRecords: 1 }),
    (error: Error & { code?: string }) => {
      assert.equal(error.code, "REBUILD_HISTORY_INCOMPLETE");
      assert.match(error.message, new RegExp(`${events.topic.replaceAll(".", "\\.")}:0 starts at offset 20`));
      return true;
    },
  );
  assert.deepEqual(await sink.query(`SELECT count(*)::INTEGER AS n FROM public_items`), [{ n: 40 }]);
  await sink.close();
  await log.close();
});

test("a rebuilt table with fewer rows than the live one, beyond the changes in flight, is not swapped in", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-rebuild-count-"));
  const logger = testLogger();
  const log = EmbeddedTopicLog.open({ path: join(dir, "log.db"), logger, maintenanceIntervalMs: 0 });
  const events = new Events(tableSchema("items", [["id", "integer"], ["name", "text"]]));
  await log.createTopic({ name: events.topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  const history = [events.insert(1n, { id: 1, name: "one" }), events.insert(2n, { id: 2, name: "two" })];
  await produceAll(log, events.topic, history);

  // The live table applied the whole topic (its stored offsets say so), yet holds a row the topic
  // does not: the rebuilt table cannot be right and nothing in flight explains the difference.
  const sink = createDuckDbSink(testSinkConfig("duckdb", { name: "wh", path: join(dir, "wh.duckdb") }), { logger });
  const signal = new AbortController().signal;
  await sink.open(signal);
  await sink.write([...history, events.insert(3n, { id: 3, name: "three" })], signal, [{ topic: events.topic, partition: 0, offset: 2n }]);
  await assert.rejects(
    rebuildSink({ sink, log, decoder: jsonDecoder, topics: [events.topic], group: "wh.rebuild", logger, signal }),
    (error: Error & { code?: string }) => {
      assert.equal(error.code, "REBUILD_ROW_COUNT_MISMATCH");
      assert.match(error.message, /public\.items: expected 3 rows \(the live target\), found 2 in the rebuilt one \(changes in flight explain up to 0\)/);
      return true;
    },
  );
  assert.deepEqual(await sink.query(`SELECT id, name FROM public_items ORDER BY id`), [{ id: 1, name: "one" }, { id: 2, name: "two" }, { id: 3, name: "three" }]);
  // The shadow was dropped: a write reaches the live table only, and a later rebuild starts afresh.
  assert.deepEqual(await sink.query(`SELECT count(*)::INTEGER AS n FROM information_schema.tables WHERE table_name LIKE '%items%' AND table_type = 'BASE TABLE'`), [{ n: 1 }]);
  await sink.close();
  await log.close();
});

test("history check: partitions not starting at 0 are gaps, compacted or not (compaction never moves the start; retention before or besides it does)", async () => {
  const ranges: Record<string, [number, bigint][]> = { kept: [[0, 0n], [1, 0n]], expired: [[0, 0n], [1, 40n]], compacted: [[0, 0n]], migrated: [[0, 17n]] };
  const log = {
    listTopics: async () => Object.keys(ranges).map((name) => ({ name, partitions: ranges[name]!.length, retentionMs: null, retentionBytes: null, compacted: name === "compacted" || name === "migrated" })),
    partitionOffsets: async (topic: string) => ranges[topic]!.map(([partition, start]) => ({ topic, partition, start, end: 100n })),
  } as unknown as TopicLog;
  assert.deepEqual(await historyGaps(log, ["kept", "expired", "compacted", "migrated"]), [{ topic: "expired", partition: 1, start: 40n }, { topic: "migrated", partition: 0, start: 17n }]);
});

/** A table whose `amount` was numeric(12,2) and then became `type`: the live target took the first schema, the topic holds both. */
async function typeChanged(name: string, from: string, to: string) {
  const dir = mkdtempSync(join(tmpdir(), `sluice-rebuild-${name}-`));
  const logger = testLogger();
  const log = EmbeddedTopicLog.open({ path: join(dir, "log.db"), logger, maintenanceIntervalMs: 0 });
  const older = new Events(tableSchema("orders", [["id", "integer"], ["amount", from]]));
  const newer = new Events(tableSchema("orders", [["id", "integer"], ["amount", to]]));
  await log.createTopic({ name: older.topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  const sink = createDuckDbSink(testSinkConfig("duckdb", { name: "wh", path: join(dir, "wh.duckdb") }), { logger });
  const signal = new AbortController().signal;
  await sink.open(signal);
  const rebuild = () => rebuildSink({ sink, log, decoder: jsonDecoder, topics: [older.topic], group: "wh.rebuild", logger, signal });
  const amountType = async () => (await sink.query(`SELECT data_type FROM information_schema.columns WHERE table_name = 'public_orders' AND column_name = 'amount'`))[0]?.["data_type"];
  return { log, sink, signal, older, newer, rebuild, amountType };
}

test("a rebuild makes the table in its newest shape: a number column that became text holds the older numbers' text, and the live generation it replaces could not follow", async () => {
  const { log, sink, signal, older, newer, rebuild, amountType } = await typeChanged("to-text", "numeric(12,2)", "text");
  const history = [older.insert(1n, { id: 1, amount: "1.23" }), older.insert(2n, { id: 2, amount: "20.00" }), older.update(3n, { id: 1, amount: "-0.50" })];
  await sink.write(history, signal);
  const changed = [newer.insert(4n, { id: 3, amount: "n/a" }), newer.update(5n, { id: 2, amount: "twenty" })];
  // The live target cannot change decimal(12,2) to text: the sink runner halts the table on this.
  await assert.rejects(sink.write(changed, signal), (error: Error & { code?: string }) => error.code === "SINK_SCHEMA_UNSUPPORTED" && /cannot change type from decimal\(12,2\) to string/.test(error.message));
  await produceAll(log, older.topic, [...history, ...changed]);

  assert.deepEqual(await rebuild(), { tables: ["public.orders"], records: 5, leftOut: 0, leftOutRecords: [] });
  assert.equal(await amountType(), "VARCHAR");
  assert.deepEqual(await sink.query(`SELECT id, amount FROM public_orders ORDER BY id`), [{ id: 1, amount: "-0.50" }, { id: 2, amount: "twenty" }, { id: 3, amount: "n/a" }]);
  // The rebuilt generation is live: it takes the records that halted the old one, and older ones again (as their text).
  assert.deepEqual((await sink.write([...changed, newer.insert(6n, { id: 4, amount: "x" })], signal)).failures, []);
  assert.deepEqual((await sink.write(history, signal)).failures, []);
  assert.deepEqual(await sink.query(`SELECT id, amount FROM public_orders ORDER BY id`), [{ id: 1, amount: "-0.50" }, { id: 2, amount: "twenty" }, { id: 3, amount: "n/a" }, { id: 4, amount: "x" }]);
  await sink.close();
  await log.close();
});

test("a rebuild whose older records have no exact conversion into the newest type (text into a number) is refused before the swap, naming sink, table, column, both types and the record", async () => {
  const { log, sink, signal, older, newer, rebuild, amountType } = await typeChanged("from-text", "text", "numeric(12,2)");
  const history = [older.insert(1n, { id: 1, amount: "1.23" }), older.insert(2n, { id: 2, amount: "about 2" })];
  await sink.write(history, signal);
  await produceAll(log, older.topic, [...history, newer.insert(3n, { id: 3, amount: "3.00" })]);
  await assert.rejects(rebuild(), (error: Error & { code?: string; context?: Record<string, unknown> }) => {
    assert.equal(error.code, "REBUILD_SCHEMA_UNSUPPORTED");
    assert.match(
      error.message,
      new RegExp(
        `^rebuild of sink "wh" refused before the swap: table src\\.public\\.orders, column "amount": the record at ${older.topic.replaceAll(".", "\\.")}:0:0 has it as string \\(text\\), ` +
          "the table's newest schema as decimal\\(12,2\\), and string values have no exact conversion to decimal\\(12,2\\)",
      ),
    );
    assert.match(error.message, /The live tables are unchanged and keep serving/);
    assert.deepEqual([error.context?.["sink"], error.context?.["column"], error.context?.["record"]], ["wh", "amount", `${older.topic}:0:0`]);
    return true;
  });
  // The live generation serves on unchanged; the shadow is gone.
  assert.equal(await amountType(), "VARCHAR");
  assert.deepEqual(await sink.query(`SELECT id, amount FROM public_orders ORDER BY id`), [{ id: 1, amount: "1.23" }, { id: 2, amount: "about 2" }]);
  assert.deepEqual(await sink.query(`SELECT count(*)::INTEGER AS n FROM information_schema.tables WHERE table_name LIKE '%orders%' AND table_type = 'BASE TABLE'`), [{ n: 1 }]);
  await sink.close();
  await log.close();
});

test("a changed key: records under the old key stop the rebuild (a delete has only the old key's columns) until a snapshot under the new key covers them, which the rebuild then leaves out", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-rebuild-key-"));
  const logger = testLogger();
  const log = EmbeddedTopicLog.open({ path: join(dir, "log.db"), logger, maintenanceIntervalMs: 0 });
  const older = new Events(tableSchema("pairs", [["id", "integer"], ["v", "integer"], ["name", "text"]], ["id"]));
  const newer = new Events(tableSchema("pairs", [["id", "integer"], ["v", "integer"], ["name", "text"]], ["id", "v"]));
  const control = "src.sluice.control";
  for (const topic of [older.topic, control]) await log.createTopic({ name: topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  const sink = createDuckDbSink(testSinkConfig("duckdb", { name: "wh", path: join(dir, "wh.duckdb") }), { logger });
  const signal = new AbortController().signal;
  await sink.open(signal);
  const history = [older.insert(1n, { id: 1, v: 1, name: "a" }), older.insert(2n, { id: 2, v: 1, name: "b" }), older.update(3n, { id: 1, v: 2, name: "a" }), older.delete(4n, { id: 2 })];
  await sink.write(history, signal);
  await produceAll(log, older.topic, [...history, newer.insert(5n, { id: 1, v: 3, name: "c" })]);
  const rebuild = () => rebuildSink({ sink, log, decoder: jsonDecoder, topics: [older.topic, control], group: "wh.rebuild", logger, signal });
  await assert.rejects(rebuild(), (error: Error & { code?: string }) => {
    assert.equal(error.code, "REBUILD_SCHEMA_UNSUPPORTED");
    assert.match(error.message, new RegExp(`the key is \\(id\\) in the record at ${older.topic.replaceAll(".", "\\.")}:0:0 and \\(id, v\\) in the table's newest schema`));
    assert.match(error.message, /re-snapshot the table first \(sluice snapshot --table T --execute\)/);
    return true;
  });
  assert.deepEqual(await sink.query(`SELECT id, v, name FROM public_pairs ORDER BY id`), [{ id: 1, v: 2, name: "a" }]);

  // An online snapshot under the new key, done: its reset (written after its rows, at commit 20) sits at version 2, below the
  // changes under the old key at 3 and 4 (an online snapshot's reset is below the slot's restart position when it began);
  // its reads, all under the new key and read after those were committed, stand for the table.
  const reset = newer.truncate(2n).event;
  const snapshotReset = { ...reset, source: { ...reset.source, snapshot: true, position: { commit: 20n, change: 2n } } };
  await log.produce([{ topic: control, key: Buffer.from("reset"), value: Buffer.from(serializeEvent(snapshotReset)), headers: { [CONTROL_TOPIC_HEADER]: Buffer.from(older.topic) }, timestamp: 0 }]);
  // Its reads are versioned just above its reset, and carry the commit position of when they were read.
  const online = (change: SinkChange) => ({
    ...change,
    event: { ...change.event, source: { ...change.event.source, snapshotMarker: "incremental" as const, position: { commit: 11n, change: 3n } } },
  });
  await produceAll(log, older.topic, [online(newer.insert(11n, { id: 1, v: 2, name: "a" }, "r")), online(newer.insert(11n, { id: 1, v: 3, name: "c" }, "r")), newer.insert(12n, { id: 1, v: 4, name: "d" })]);
  await rebuild();
  assert.deepEqual(await sink.query(`SELECT id, v, name FROM public_pairs ORDER BY id, v`), [{ id: 1, v: 2, name: "a" }, { id: 1, v: 3, name: "c" }, { id: 1, v: 4, name: "d" }]);
  // The rebuilt generation has the new key: rows the old key folded into one stay apart.
  assert.deepEqual((await sink.write([newer.insert(13n, { id: 1, v: 5, name: "e" })], signal)).failures, []);
  assert.deepEqual(await sink.query(`SELECT count(*)::INTEGER AS n FROM public_pairs WHERE id = 1`), [{ n: 4 }]);
  await sink.close();
  await log.close();
});

test("changes that do not fit the newest shape are left out only where a finished snapshot, all under the newest shape, read the table after every one of them was committed", () => {
  const events = new Events(tableSchema("t", [["id", "integer"]]));
  const refusal = new SluiceError("does not fit", { code: "REBUILD_SCHEMA_UNSUPPORTED" });
  const at = (version: bigint, op: "c" | "r" = "c") => {
    const change = events.insert(version, { id: Number(version) }, op);
    return op === "c" ? change : { ...change, event: { ...change.event, source: { ...change.event.source, snapshotMarker: "incremental" as const } } };
  };
  const covered = () => new Misfits(new Map([[events.topic, { commit: 20n, change: 2n }]]));
  // No snapshot since: refused at once.
  assert.throws(() => new Misfits(new Map()).add(at(3n), refusal), /does not fit/);
  // A read of the snapshot itself does not fit (it began before the change): refused at once.
  assert.throws(() => covered().add(at(5n, "r"), refusal), /does not fit/);
  // Older than the snapshot's first row: left out (the initial snapshot's reads too, which are not an online snapshot's).
  const older = covered();
  older.add(at(3n), refusal);
  older.add({ ...events.insert(6n, { id: 6 }, "r") }, refusal);
  older.add(at(4n), refusal);
  older.fits(at(12n, "r"));
  older.fits(at(11n, "r"));
  older.fits(at(25n, "r")); // a later snapshot's, not yet closed by a reset: not the covering one
  older.check();
  // Newer than the snapshot's first read, or no read of the snapshot seen: refused once everything was read.
  const newer = covered();
  newer.add(at(15n), refusal);
  newer.fits(at(11n, "r"));
  assert.throws(() => newer.check(), /does not fit/);
  // A change replayed that is older than one left out: the snapshot's reads, versioned below it, would not outrank it.
  const interleaved = covered();
  interleaved.add(at(5n), refusal);
  interleaved.fits(at(4n));
  interleaved.fits(at(11n, "r"));
  assert.throws(() => interleaved.check(), /does not fit/);
  const rowless = covered();
  rowless.add(at(3n), refusal);
  rowless.fits(at(25n, "r"));
  assert.throws(() => rowless.check(), /does not fit/);
});

/** Two tables in a DuckDB sink; a foreign producer's record (not Sluice's encoding) sits in the customers topic. */
async function withForeignRecord() {
  const dir = mkdtempSync(join(tmpdir(), "sluice-rebuild-foreign-"));
  const logger = testLogger();
  const log = EmbeddedTopicLog.open({ path: join(dir, "log.db"), logger, maintenanceIntervalMs: 0 });
  const customers = new Events(tableSchema("customers", [["id", "integer"], ["name", "text"]]));
  const orders = new Events(tableSchema("orders", [["id", "integer"], ["amount", "integer"]]));
  for (const topic of [customers.topic, orders.topic]) await log.createTopic({ name: topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  await produceAll(log, customers.topic, [customers.insert(1n, { id: 1, name: "one" })]);
  await log.produce([{ topic: customers.topic, key: Buffer.from('{"id":1}'), value: Buffer.from("garbage"), timestamp: 0 }]);
  await produceAll(log, customers.topic, [customers.insert(3n, { id: 2, name: "two" })]);
  await produceAll(log, orders.topic, [orders.insert(2n, { id: 1, amount: 10 }), orders.update(4n, { id: 1, amount: 11 })]);
  const sink = createDuckDbSink(testSinkConfig("duckdb", { name: "wh", path: join(dir, "wh.duckdb") }), { logger });
  const signal = new AbortController().signal;
  await sink.open(signal);
  return { log, sink, signal, logger, customers, orders };
}

test("a record no decoder can read (a foreign producer's) is left out of a rebuild, which succeeds and reports it with its topic, partition and offset", async () => {
  const { log, sink, signal, logger, customers, orders } = await withForeignRecord();
  const progress: RebuildProgress[] = [];
  const report = await rebuildSink({ sink, log, decoder: jsonDecoder, topics: [customers.topic, orders.topic], group: "wh.rebuild", logger, signal, onProgress: (p) => progress.push(p) });
  assert.deepEqual({ ...report, leftOutRecords: report.leftOutRecords.map((r) => `${r.topic}:${r.partition}:${r.offset}`) }, {
    tables: ["public.customers", "public.orders"],
    records: 4,
    leftOut: 1,
    leftOutRecords: [`${customers.topic}:0:1`],
  });
  assert.ok(report.leftOutRecords[0]!.reason.length > 0, "the reason is given");
  assert.equal(progress.at(-1)!.recordsLeftOut, 1);
  assert.deepEqual(await sink.query(`SELECT id, name FROM public_customers ORDER BY id`), [{ id: 1, name: "one" }, { id: 2, name: "two" }]);
  assert.deepEqual(await sink.query(`SELECT id, amount FROM public_orders ORDER BY id`), [{ id: 1, amount: 11 }]);
  await sink.close();
  await log.close();
});

test("a rebuild of one table is not stopped by a foreign record in another table's topic; a decoding failure that may heal ends it naming the record", async () => {
  const { log, sink, signal, logger, customers, orders } = await withForeignRecord();
  assert.deepEqual(await rebuildSink({ sink, log, decoder: jsonDecoder, topics: [orders.topic], group: "wh.rebuild", logger, signal }), { tables: ["public.orders"], records: 2, leftOut: 0, leftOutRecords: [] });
  const unreachable: RebuildOptions["decoder"] = {
    decode: async (r) => {
      if (r.topic === customers.topic && r.offset === 1n) throw new ConnectionError("schema registry unreachable", { context: { component: "registry" } });
      return jsonDecoder.decode(r);
    },
  };
  await assert.rejects(rebuildSink({ sink, log, decoder: unreachable, topics: [customers.topic, orders.topic], group: "wh.rebuild", logger, signal }), (error: SluiceError) => {
    assert.match(error.message, new RegExp(`${customers.topic.replaceAll(".", "\\.")}:0:1: schema registry unreachable`));
    assert.equal(error.retriable, true);
    assert.deepEqual([error.context["topic"], error.context["partition"], error.context["offset"]], [customers.topic, 0, "1"]);
    return true;
  });
  // Nothing swapped: the live customers table is as it was (never written).
  assert.deepEqual(await sink.query(`SELECT count(*)::INTEGER AS n FROM information_schema.tables WHERE table_name = 'public_customers'`), [{ n: 0 }]);
  await sink.close();
  await log.close();
});

test("a rebuild is refused while other processes run the sink: before it starts (nothing made), when one joins before its swap, or when its group changed meanwhile (its new generation left for a rerun); the live table is unchanged", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-rebuild-shared-"));
  const logger = testLogger();
  const log = EmbeddedTopicLog.open({ path: join(dir, "log.db"), logger });
  const events = new Events(tableSchema("items", [["id", "integer"], ["name", "text"]]));
  await log.createTopic({ name: events.topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  await produceAll(log, events.topic, [events.insert(1n, { id: 1, name: "one" }), events.update(2n, { id: 1, name: "uno" })]);
  const sink = createDuckDbSink(testSinkConfig("duckdb", { name: "wh", path: join(dir, "wh.duckdb") }), { logger });
  const signal = new AbortController().signal;
  await sink.open(signal);
  await sink.write([events.insert(1n, { id: 1, name: "stale" })], signal);
  const other = { clientId: "sluice.p4242s1n2b00000000-0000-0000-0000-000000000000", host: "10.0.0.7", pid: 4242, heldFor: null };

  // A process there before it starts; one that joins once its new generation exists (reading); one that joins just before the swap;
  // one that joined and left again while it read (only the group's change tells, as a command's hold on the group sees it).
  for (const joins of ["before", "reading", "swapping", "came and went"] as const) {
    let state = "";
    let calls = 0;
    const others = async () => {
      calls++;
      return joins === "before" || state === joins ? [other] : [];
    };
    const changed = () => joins === "came and went" && (state === "checking" || state === "swapping");
    await assert.rejects(
      rebuildSink({ sink, log, decoder: jsonDecoder, topics: [events.topic], group: "wh.rebuild", logger, signal, onProgress: (p) => (state = p.state), sharing: { group: "dep.sink.wh", others, changed } }),
      (error: Error & { code?: string }) => {
        assert.equal(error.code, "REBUILD_SINK_SHARED", `${joins}: ${error.message}`);
        if (joins === "came and went") assert.match(error.message, /refused before the swap: a process joined or left sink "wh"'s consumer group dep\.sink\.wh while it ran/);
        else assert.match(error.message, /another process runs sink "wh" \(consumer group dep\.sink\.wh: process 4242 on 10\.0\.0\.7\)/);
        assert.match(error.message, joins === "before" ? /Nothing changed\.$/ : /the half-built new ones are left, since a process that started meanwhile may write into them/);
        return true;
      },
    );
    if (joins === "before") assert.equal(calls, 1, "refused before anything is read");
    assert.equal((await sink.rebuildShadows(signal)).length, joins === "before" ? 0 : 1, `${joins}: the new generation is left once made`);
    assert.deepEqual(await sink.query(`SELECT id, name FROM public_items`), [{ id: 1, name: "stale" }], joins);
  }
  // Alone, it rebuilds (starting the half-built generation over).
  await rebuildSink({ sink, log, decoder: jsonDecoder, topics: [events.topic], group: "wh.rebuild", logger, signal, sharing: { group: "dep.sink.wh", others: async () => [], changed: () => false } });
  assert.deepEqual(await sink.query(`SELECT id, name FROM public_items`), [{ id: 1, name: "uno" }]);
  assert.deepEqual(await sink.rebuildShadows(signal), []);
  await sink.close();
  await log.close();
});

test("abandoning an interrupted rebuild is refused while other processes run the sink (they may write into its half-built table); a dry run is not; alone, it drops it", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-abandon-shared-"));
  const logger = testLogger();
  const events = new Events(tableSchema("items", [["id", "integer"], ["name", "text"]]));
  const sink = createDuckDbSink(testSinkConfig("duckdb", { name: "wh", path: join(dir, "wh.duckdb") }), { logger });
  const signal = new AbortController().signal;
  await sink.open(signal);
  await sink.write([events.insert(1n, { id: 1, name: "one" })], signal);
  await sink.prepareRebuild(events.schema, signal, events.schema);
  const shadows = await sink.rebuildShadows(signal);
  assert.equal(shadows.length, 1);
  const other = { clientId: "sluice.p77s1n2b00000000-0000-0000-0000-000000000000", host: "10.0.0.8", pid: 77, heldFor: null };
  const sharing = { group: "dep.sink.wh", others: async () => [other] };

  assert.deepEqual((await abandonRebuild(sink, [], false, signal, logger, sharing)).shadows.length, 1, "a dry run lists it");
  await assert.rejects(abandonRebuild(sink, [], true, signal, logger, sharing), (error: Error & { code?: string }) => {
    assert.equal(error.code, "REBUILD_SINK_SHARED");
    assert.match(error.message, /^abandoning the interrupted rebuild of sink "wh" refused: another process runs sink "wh" \(consumer group dep\.sink\.wh: process 77 on 10\.0\.0\.8\)/);
    assert.match(error.message, /Nothing changed\.$/);
    return true;
  });
  assert.deepEqual(await sink.rebuildShadows(signal), shadows, "the half-built table is still there");
  const report = await abandonRebuild(sink, [], true, signal, logger, { group: "dep.sink.wh", others: async () => [] });
  assert.equal(report.dropped, true);
  assert.deepEqual(await sink.rebuildShadows(signal), []);
  assert.deepEqual(await sink.query(`SELECT id, name FROM public_items`), [{ id: 1, name: "one" }]);
  await sink.close();
});

test("a retriable write failure quoting a personal value is waited out with the value redacted in its warning and in the progress", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-rebuild-redact-"));
  const lines: string[] = [];
  const logger = createLogger("warn", new Writable({ write: (chunk, _e, done) => (lines.push(String(chunk)), done()) }) as never);
  const log = EmbeddedTopicLog.open({ path: join(dir, "log.db"), logger });
  const events = new Events(tableSchema("people", [["id", "integer"], ["email", "text"]]));
  await log.createTopic({ name: events.topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  const email = "ann.secret@example.com";
  await produceAll(log, events.topic, [events.insert(1n, { id: 1, email })]);
  const sink = createDuckDbSink(testSinkConfig("duckdb", { name: "wh", path: join(dir, "wh.duckdb") }), { logger });
  const signal = new AbortController().signal;
  await sink.open(signal);
  // As the personal-data decryptor marks the clear values it put into an event.
  const decoder: RebuildOptions["decoder"] = {
    decode: async (record) => {
      const event = await jsonDecoder.decode(record);
      if (event) markPersonalValues(event, [String(event.after?.["email"])]);
      return event;
    },
  };
  const writeRebuild = sink.writeRebuild.bind(sink);
  let calls = 0;
  sink.writeRebuild = async (changes, writeSignal) => {
    if (++calls === 1) throw new ConnectionError(`target went away while writing '${email}'`, { context: { component: "test", row: email } });
    return writeRebuild(changes, writeSignal);
  };
  const progress: RebuildProgress[] = [];
  const report = await rebuildSink({ sink, log, decoder, topics: [events.topic], group: "wh.rebuild", logger, signal, retry: { initialMs: 1, maxMs: 1 }, onProgress: (p) => progress.push(p) });
  assert.equal(report.records, 1);
  assert.equal(calls, 2, "the write was tried again");
  const waiting = progress.map((p) => p.waiting).filter((w) => typeof w === "string");
  assert.equal(waiting.length, 1);
  assert.match(waiting[0]!, /target went away while writing '\[personal value\]'/);
  const warnings = lines.filter((line) => line.includes("waits for its target"));
  assert.equal(warnings.length, 1);
  assert.ok(warnings[0]!.includes(PERSONAL_VALUE));
  for (const text of [...waiting, ...lines]) assert.ok(!text.includes(email), `the personal value reached: ${text}`);
  assert.deepEqual(await sink.query(`SELECT id, email FROM public_people`), [{ id: 1, email }]);
  await sink.close();
  await log.close();
});

test("DuckDB: a swap whose commit landed but that failed as retriable is tried again and found done, not failed nor swapped twice", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-rebuild-swap-"));
  const logger = testLogger();
  const log = EmbeddedTopicLog.open({ path: join(dir, "log.db"), logger });
  const events = new Events(tableSchema("items", [["id", "integer"], ["name", "text"]]));
  await log.createTopic({ name: events.topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  const rows = [events.insert(1n, { id: 1, name: "one" }), events.insert(2n, { id: 2, name: "two" }), events.update(3n, { id: 1, name: "uno" })];
  await produceAll(log, events.topic, rows);
  const sink = createDuckDbSink(testSinkConfig("duckdb", { name: "wh", path: join(dir, "wh.duckdb") }), { logger });
  const signal = new AbortController().signal;
  await sink.open(signal);
  await sink.write([events.insert(1n, { id: 7, name: "stale" })], signal);
  // The file took the swap and the step still reported a retriable failure (the database invalidated at its commit, as after running out of memory).
  const swap = sink.swap.bind(sink);
  let swaps = 0;
  sink.swap = async (table, swapSignal) => {
    await swap(table, swapSignal);
    if (++swaps === 1) throw new ConnectionError("the swap's commit landed and the step failed", { context: { component: "test" } });
  };
  const progress: RebuildProgress[] = [];
  const report = await rebuildSink({ sink, log, decoder: jsonDecoder, topics: [events.topic], group: "wh.rebuild", logger, signal, retry: { initialMs: 10, maxMs: 20 }, onProgress: (p) => progress.push(p) });
  assert.equal(swaps, 2, "the swap was tried again");
  assert.deepEqual(report.tables, ["public.items"]);
  assert.match(progress.find((p) => p.waiting)?.waiting ?? "", /trying the swap again/);
  assert.equal(progress.at(-1)!.state, "done");
  assert.deepEqual(await sink.query(`SELECT id, name FROM public_items ORDER BY id`), [{ id: 1, name: "uno" }, { id: 2, name: "two" }]);
  assert.deepEqual(await sink.query(`SELECT count(*)::INTEGER AS n FROM duckdb_tables() WHERE table_name LIKE 'public_items__v%'`), [{ n: 1 }], "one generation left");
  await sink.close();
  await log.close();
});

test("a rebuild during which retention deletes records it has not read yet, the topic log failing as the gaps are looked up: still refused as incomplete history, naming the partition it met", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-rebuild-expiring-unreachable-"));
  const logger = testLogger();
  const now = 1_000_000;
  const embedded = EmbeddedTopicLog.open({ path: join(dir, "log.db"), logger, maintenanceIntervalMs: 0, clock: () => now });
  let expired = false;
  // The embedded log, whose partitionOffsets fails once retention ran (as a Kafka cluster gone unreachable would).
  const log = new Proxy(embedded, {
    get: (target, property) => {
      if (property === "partitionOffsets" && expired) return async () => Promise.reject(new Error("connect ECONNREFUSED (test)"));
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const events = new Events(tableSchema("orders", [["id", "integer"], ["name", "text"]]));
  const sink = createDuckDbSink(testSinkConfig("duckdb", { name: "wh", path: join(dir, "wh.duckdb") }), { logger });
  const signal = new AbortController().signal;
  await sink.open(signal);
  await embedded.createTopic({ name: events.topic, partitions: 1, retentionMs: 20_000, retentionBytes: null, compacted: false });
  const rows = Array.from({ length: 20 }, (_, i) => events.insert(BigInt(i + 1), { id: i + 1, name: `row ${i + 1}` }));
  for (const row of rows) await produceAll(embedded, events.topic, [row]);
  const recent = events.insert(21n, { id: 21, name: "row 21" });
  await embedded.produce([{ topic: events.topic, key: Buffer.from("21"), value: Buffer.from(serializeEvent(recent.event)), timestamp: now }]);
  await sink.write([...rows, recent], signal);
  const decodedOnce = new Set<string>();
  const decoder: RebuildOptions["decoder"] = {
    decode: async (r) => {
      const key = `${r.topic}:${r.partition}:${r.offset}`;
      if (!expired && decodedOnce.has(key)) {
        expired = true;
        embedded.runMaintenance();
      }
      decodedOnce.add(key);
      return jsonDecoder.decode(r);
    },
  };
  await assert.rejects(
    rebuildSink({ sink, log, decoder, topics: [events.topic], group: "wh.rebuild", logger, signal, batchRecords: 1 }),
    (error: SluiceError) => {
      assert.equal(error.code, "REBUILD_HISTORY_INCOMPLETE");
      assert.match(error.message, /orders:0 starts at offset 20 \(offsets 1 to 19 gone before the rebuild read them\)/);
      assert.match(error.message, /\(other partitions not checked: connect ECONNREFUSED \(test\)\)\. Nothing changed\./, "the refusal says its list may be partial, and why");
      return true;
    },
  );
  await sink.close();
  await embedded.close();
});

test("a rebuild during which retention deletes records it has not read yet in several partitions names every one of them, not only the one it met", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-rebuild-expiring-all-"));
  const logger = testLogger();
  const now = 1_000_000;
  const log = EmbeddedTopicLog.open({ path: join(dir, "log.db"), logger, maintenanceIntervalMs: 0, clock: () => now });
  const tables = ["orders", "items"].map((name) => new Events(tableSchema(name, [["id", "integer"], ["name", "text"]])));
  const sink = createDuckDbSink(testSinkConfig("duckdb", { name: "wh", path: join(dir, "wh.duckdb") }), { logger });
  const signal = new AbortController().signal;
  await sink.open(signal);
  for (const events of tables) {
    await log.createTopic({ name: events.topic, partitions: 1, retentionMs: 20_000, retentionBytes: null, compacted: false });
    const rows = Array.from({ length: 20 }, (_, i) => events.insert(BigInt(i + 1), { id: i + 1, name: `row ${i + 1}` }));
    // One stored batch per row, all older than the retention: nothing is deleted until the job runs.
    for (const row of rows) await produceAll(log, events.topic, [row]);
    const recent = Array.from({ length: 5 }, (_, i) => events.insert(BigInt(i + 21), { id: i + 21, name: `row ${i + 21}` }));
    await log.produce(recent.map(({ event }) => ({ topic: events.topic, key: Buffer.from(String(event.key["id"])), value: Buffer.from(serializeEvent(event)), timestamp: now })));
    await sink.write([...rows, ...recent], signal);
  }
  // Retention runs at the read loop's first record: the records before it (finding the tables) are read again there, so the first one decoded twice.
  const decodedOnce = new Set<string>();
  let expired = false;
  const decoder: RebuildOptions["decoder"] = {
    decode: async (r) => {
      const key = `${r.topic}:${r.partition}:${r.offset}`;
      if (!expired && decodedOnce.has(key)) {
        expired = true;
        log.runMaintenance();
      }
      decodedOnce.add(key);
      return jsonDecoder.decode(r);
    },
  };
  await assert.rejects(
    rebuildSink({ sink, log, decoder, topics: tables.map((t) => t.topic), group: "wh.rebuild", logger, signal, batchRecords: 1 }),
    (error: SluiceError) => {
      assert.equal(error.code, "REBUILD_HISTORY_INCOMPLETE");
      assert.match(error.message, /retention removed the first records of 2 partitions/);
      for (const { topic } of tables) assert.match(error.message, new RegExp(`${topic.replaceAll(".", "\\.")}:0 starts at offset 20`));
      // The partition the loop had begun: where it was, and what it lost.
      assert.match(error.message, /orders:0 starts at offset 20 \(offsets 1 to 19 gone before the rebuild read them\)/);
      assert.equal(error.context["partitions"], 2);
      return true;
    },
  );
  for (const table of ["public_orders", "public_items"]) assert.deepEqual(await sink.query(`SELECT count(*)::INTEGER AS n FROM ${table}`), [{ n: 25 }]);
  await sink.close();
  await log.close();
});
