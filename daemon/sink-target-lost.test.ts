/**
 * A sink whose target keeps its own offsets (DuckDB: in the file, with the rows) and lost them
 * with its data, while its consumer group kept its committed offsets: a DuckDB file deleted or
 * replaced, before a restart or while the sink runs. Resuming from the group's offsets would fill
 * the new file with the changes since only, with no error; the sink reads its topics again from
 * the beginning instead. Real DuckDB, the embedded log, through the sink runner.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, test } from "node:test";
import { DuckDBInstance } from "@duckdb/node-api";
import type { ProducedRecord, SinkChange, TopicLog } from "../connectors/contracts.ts";
import { DuckDbSink } from "../connectors/duckdb/duckdb-sink.ts";
import { EmbeddedTopicLog } from "../connectors/embedded/embedded-log.ts";
import { testDeployment } from "../connectors/kafka/kafka-test-config.ts";
import { testSinkConfig } from "../connectors/sinks/test-config.ts";
import { Events, randomTableName, tableSchema } from "../connectors/sinks/test-events.ts";
import { createLogger } from "../runtime/logger.ts";
import { deserializeEvent, serializeEvent } from "./event-json.ts";
import { executeReplay, planReplay } from "./replay.ts";
import { SinkRunner } from "./sink-runner.ts";

const dir = mkdtempSync(join(tmpdir(), "sluice-target-lost-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const decoder = { decode: async (r: { value: Uint8Array | null }) => (r.value ? deserializeEvent(Buffer.from(r.value).toString()) : null) };

/** A logger whose lines are kept, parsed. */
function capturing(): { logger: ReturnType<typeof createLogger>; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split("\n")) if (line.trim() !== "") lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: createLogger("info", stream as never), lines };
}

function inserts(events: Events, from: number, to: number, timestamp = Date.now()): ProducedRecord[] {
  const records: ProducedRecord[] = [];
  for (let id = from; id <= to; id++) {
    const change: SinkChange = events.insert(BigInt(id), { id, v: `row ${id}` });
    records.push({ topic: events.topic, key: Buffer.from(String(id)), value: Buffer.from(serializeEvent(change.event)), timestamp });
  }
  return records;
}

type DuckConfig = ReturnType<typeof testSinkConfig<"duckdb">>;

interface Fixture {
  readonly log: EmbeddedTopicLog;
  readonly events: Events;
  readonly group: string;
  readonly duckPath: string;
  readonly config: DuckConfig;
  /**
   * The sink before a restart, on a file of another name. DuckDB keeps one database per path in
   * the process (its instance cache, which resolves links): the sink opened again here on the
   * same path would be handed the deleted file still open, where a restarted daemon finds a new
   * empty file. A new path is what the sink finds after a restart either way (the path changed
   * in the configuration, or the file deleted).
   */
  readonly earlierConfig: DuckConfig;
}

const HOUR = 3_600_000;

/** `retentionMs`: the topic's (the log runs its retention only when the test calls runMaintenance). */
async function fixture(name: string, retentionMs: number | null = null): Promise<Fixture> {
  const deployment = testDeployment(name);
  const events = new Events(tableSchema(randomTableName("lost"), [["id", "integer"], ["v", "text"]], ["id"], { source: `${deployment}.src` }));
  const log = EmbeddedTopicLog.open({ path: join(dir, `${deployment}.db`), logger: createLogger("silent"), maintenanceIntervalMs: 0 });
  await log.createTopic({ name: events.topic, partitions: 1, retentionMs, retentionBytes: null, compacted: false });
  const duckPath = join(dir, `${deployment}.duckdb`);
  const config = (path: string) => testSinkConfig("duckdb", { name: "wh", path, target: "{table}" });
  return { log, events, group: `${deployment}.sink.wh`, duckPath, config: config(duckPath), earlierConfig: config(join(dir, `${deployment}-earlier.duckdb`)) };
}

function start(f: Fixture, sink: DuckDbSink, logger: ReturnType<typeof createLogger>) {
  const runner = new SinkRunner({
    sink,
    log: f.log,
    group: f.group,
    topics: async () => [f.events.topic],
    decoder,
    batch: { maxRows: 4, maxBytes: 1 << 20, maxWaitMs: 20 },
    onError: "halt",
    deadLetterTopic: `${f.group}.dlq`,
    retry: { initialMs: 20, maxMs: 200 },
    logger,
    owner: `test-${randomBytes(3).toString("hex")}`,
  });
  const stop = new AbortController();
  const running = runner.run(stop.signal);
  running.catch(() => undefined);
  return {
    runner,
    async stop() {
      stop.abort(new Error("test done"));
      await running;
    },
  };
}

async function waitFor(what: string, condition: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function caughtUp(log: TopicLog, group: string, topic: string): Promise<boolean> {
  return (await log.groupLag(group, [topic])).every((p) => p.committed !== null && p.lag === 0n);
}

async function sinkIds(sink: DuckDbSink, target: string): Promise<number[]> {
  return (await sink.query(`SELECT id FROM main."${target}" ORDER BY id`).catch(() => [])).map((row) => Number(row["id"]));
}

/** The ids the file at `path` holds, read by an instance of its own (not the sink's, which may hold a deleted file). */
async function fileIds(path: string, target: string): Promise<number[]> {
  if (!existsSync(path)) return [];
  const instance = await DuckDBInstance.create(path, { access_mode: "READ_ONLY" });
  try {
    const connection = await instance.connect();
    try {
      const reader = await connection.runAndReadAll(`SELECT id FROM main."${target}" ORDER BY id`).catch(() => null);
      return reader === null ? [] : reader.getRowObjectsJson().map((row) => Number(row["id"]));
    } finally {
      connection.closeSync();
    }
  } finally {
    instance.closeSync();
  }
}

function removeDatabase(path: string): void {
  for (const suffix of ["", ".wal"]) rmSync(`${path}${suffix}`, { force: true });
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

test("a DuckDB file deleted (or another file configured) while the sink was stopped is filled again from the beginning of its topics, not from the group's offsets", async () => {
  const f = await fixture("lost_stopped");
  const target = f.events.schema.table;
  try {
    await f.log.produce(inserts(f.events, 1, 10));
    const first = new DuckDbSink(f.earlierConfig, { logger: createLogger("silent") });
    const run1 = start(f, first, createLogger("silent"));
    await waitFor("the first rows applied", async () => (await sinkIds(first, target)).length === 10 && (await caughtUp(f.log, f.group, f.events.topic)));
    await run1.stop();

    await f.log.produce(inserts(f.events, 11, 15));
    const { logger, lines } = capturing();
    const second = new DuckDbSink(f.config, { logger });
    const run2 = start(f, second, logger);
    try {
      await waitFor("the new rows applied", async () => (await sinkIds(second, target)).includes(15) && (await caughtUp(f.log, f.group, f.events.topic)));
      assert.deepEqual(await sinkIds(second, target), range(1, 15), "the new file holds every row, not only those changed since it was deleted");
      const told = lines.find((line) => line["code"] === "SINK_TARGET_OFFSETS_LOST");
      assert.ok(told, "the sink says why it reads from the beginning");
      assert.match(String(told["msg"]), new RegExp(`DuckDB file ${f.duckPath.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`), "naming the file");
    } finally {
      await run2.stop();
    }
    assert.deepEqual(await fileIds(f.duckPath, target), range(1, 15));
  } finally {
    await f.log.close();
  }
});

test("a new DuckDB file whose topic lost its first records to retention gets what the topic keeps, and the sink says rows are missing", async () => {
  const f = await fixture("lost_retention", HOUR);
  const target = f.events.schema.table;
  try {
    // Rows 1-4 in batches of their own, older than the topic's retention; 5-10 recent.
    for (let id = 1; id <= 4; id++) await f.log.produce(inserts(f.events, id, id, Date.now() - 3 * HOUR));
    await f.log.produce(inserts(f.events, 5, 10));
    const first = new DuckDbSink(f.earlierConfig, { logger: createLogger("silent") });
    const run1 = start(f, first, createLogger("silent"));
    await waitFor("the first rows applied", async () => (await sinkIds(first, target)).length === 10 && (await caughtUp(f.log, f.group, f.events.topic)));
    await run1.stop();
    f.log.runMaintenance();
    assert.equal((await f.log.partitionOffsets(f.events.topic))[0]?.start, 4n, "retention removed rows 1-4");

    const { logger, lines } = capturing();
    const second = new DuckDbSink(f.config, { logger });
    const run2 = start(f, second, logger);
    try {
      await waitFor("the kept rows applied", async () => (await sinkIds(second, target)).includes(10) && (await caughtUp(f.log, f.group, f.events.topic)));
      assert.deepEqual(await sinkIds(second, target), range(5, 10), "what the topic still holds");
      const lost = lines.find((line) => line["code"] === "SINK_TARGET_OFFSETS_LOST");
      assert.match(String(lost?.["msg"]), /no longer start at offset 0, so rows whose changes retention removed stay missing/);
      const incomplete = lines.find((line) => line["code"] === "SINK_HISTORY_INCOMPLETE");
      assert.deepEqual(incomplete?.["partitions"], [{ topic: f.events.topic, partition: 0, start: "4", from: null }], "told as for a new sink");
    } finally {
      await run2.stop();
    }
  } finally {
    await f.log.close();
  }
});

test("a replay the operator executed still wins over an empty DuckDB file: the sink reads from where the replay put its group", async () => {
  const f = await fixture("lost_replay");
  const target = f.events.schema.table;
  try {
    await f.log.produce(inserts(f.events, 1, 10));
    const first = new DuckDbSink(f.earlierConfig, { logger: createLogger("silent") });
    const run1 = start(f, first, createLogger("silent"));
    await waitFor("the first rows applied", async () => (await sinkIds(first, target)).length === 10 && (await caughtUp(f.log, f.group, f.events.topic)));
    await run1.stop();

    await executeReplay(f.log, await planReplay(f.log, f.group, [f.events.topic], { kind: "offset", topic: f.events.topic, partition: 0, offset: 6n }));
    const second = new DuckDbSink(f.config, { logger: createLogger("silent") });
    const run2 = start(f, second, createLogger("silent"));
    try {
      await waitFor("the replayed rows applied", async () => (await sinkIds(second, target)).includes(10) && (await caughtUp(f.log, f.group, f.events.topic)));
      assert.deepEqual(await sinkIds(second, target), range(7, 10), "read from the replay's offset, as asked");
    } finally {
      await run2.stop();
    }
  } finally {
    await f.log.close();
  }
});

for (const how of ["deleted", "replaced by another file"] as const) {
  test(`a DuckDB file ${how} while the sink runs: it stops writing into the old file and fills the one at the path from the beginning`, async () => {
    const f = await fixture(how === "deleted" ? "lost_running" : "replaced_running");
    const target = f.events.schema.table;
    const { logger, lines } = capturing();
    try {
      await f.log.produce(inserts(f.events, 1, 10));
      const sink = new DuckDbSink(f.config, { logger });
      const run = start(f, sink, logger);
      try {
        await waitFor("the first rows applied", async () => (await sinkIds(sink, target)).length === 10 && (await caughtUp(f.log, f.group, f.events.topic)));
        if (how === "deleted") {
          removeDatabase(f.duckPath);
        } else {
          // An empty database (as a restore of an old backup without this table would be) moved over the path.
          const other = join(dir, `other-${randomBytes(3).toString("hex")}.duckdb`);
          (await DuckDBInstance.create(other)).closeSync();
          renameSync(other, f.duckPath);
        }
        await f.log.produce(inserts(f.events, 11, 15));
        await waitFor("every row in the file at the path", async () => (await sinkIds(sink, target)).length === 15 && (await caughtUp(f.log, f.group, f.events.topic)));
      } finally {
        await run.stop();
      }
      assert.deepEqual(await fileIds(f.duckPath, target), range(1, 15), "the file at the path holds every row");
      const warned = lines.find((line) => line["code"] === "SINK_TARGET_REPLACED");
      assert.ok(warned, "the sink warns that the file was deleted or replaced");
      assert.ok(String(warned["msg"]).includes(f.duckPath), "naming the file");
    } finally {
      await f.log.close();
    }
  });
}
