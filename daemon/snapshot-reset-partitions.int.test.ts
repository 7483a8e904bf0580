/**
 * A restarted snapshot's reset (op "t", source.snapshot true, one version below the snapshot's
 * rows) has no key, so it sits in partition 0 of the table's topic, after that partition's rows
 * only. A sink that reached it before the same snapshot's rows in the other partitions dropped
 * the earlier attempt's rows for those keys before their new versions arrived: rows vanished
 * from the sink for seconds (issue 12, chaos runs over Kafka with 3 partitions). The sink must
 * never show fewer rows than the source has while such a reset is applied, and must still apply
 * it (an earlier attempt's row the source deleted goes). Real Kafka (3 partitions) and a real
 * DuckDB file; the embedded log with 3 partitions too.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { Kafka, logLevel } from "kafkajs";
import type { ChangeEvent, SinkChange, TopicLog, TopicPartitionOffset } from "../connectors/contracts.ts";
import { DuckDbSink } from "../connectors/duckdb/duckdb-sink.ts";
import { EmbeddedTopicLog } from "../connectors/embedded/embedded-log.ts";
import { KafkaTopicLog } from "../connectors/kafka/kafka-log.ts";
import { testDeployment, testKafkaConfig } from "../connectors/kafka/kafka-test-config.ts";
import type { OffsetWriteResult } from "../connectors/sinks/contract.ts";
import { testSinkConfig } from "../connectors/sinks/test-config.ts";
import { randomTableName, tableSchema } from "../connectors/sinks/test-events.ts";
import { partitionForKey } from "../connectors/topics/partitioner.ts";
import { deserializeEvent, serializeEvent } from "./event-json.ts";
import { createLogger } from "../runtime/logger.ts";
import { SinkRunner } from "./sink-runner.ts";

const logger = createLogger(process.env["SLUICE_TEST_LOG"] ?? "silent");
const PARTITIONS = 3;
/** Rows per snapshot attempt; with ~800-byte rows each of partitions 1 and 2 holds more than one fetch (1 MiB) of them. */
const ROWS = 6_000;
const dir = mkdtempSync(join(tmpdir(), "sluice-reset-partitions-"));
const deployments: string[] = [];

after(async () => {
  rmSync(dir, { recursive: true, force: true });
  if (deployments.length === 0) return;
  const admin = new Kafka({ brokers: testKafkaConfig().brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  const topics = (await admin.listTopics()).filter((t) => deployments.some((d) => t.startsWith(`${d}.`)));
  if (topics.length > 0) await admin.deleteTopics({ topics }).catch(() => undefined);
  await admin.deleteGroups(deployments.map((d) => `${d}.sink.wh`)).catch(() => undefined);
  await admin.disconnect();
});

const keyOf = (id: number) => Buffer.from(String(id));

/** Ids whose records land outside partition 0, where the keyless reset goes: the reset's partition is read long before theirs. */
function idsOutsidePartitionZero(count: number): number[] {
  const ids: number[] = [];
  for (let id = 1; ids.length < count; id++) if (partitionForKey(keyOf(id), PARTITIONS) !== 0) ids.push(id);
  return ids;
}

/** Counts the rows users see after every write. */
class WatchedDuckDbSink extends DuckDbSink {
  readonly counts: number[] = [];
  target = "";

  override async write(changes: readonly SinkChange[], signal: AbortSignal, offsets?: readonly TopicPartitionOffset[]): Promise<OffsetWriteResult> {
    const result = await super.write(changes, signal, offsets);
    const [row] = await this.query(`SELECT count(*) AS n FROM main."${this.target}"`);
    this.counts.push(Number(row?.["n"]));
    return result;
  }

  async values(): Promise<Map<number, string>> {
    const rows = await this.query(`SELECT id, v FROM main."${this.target}"`);
    return new Map(rows.map((r) => [Number(r["id"]), String(r["v"])]));
  }
}

async function resetKeepsRowsVisible(openLog: (deployment: string) => Promise<TopicLog>): Promise<void> {
  const deployment = testDeployment("resetparts");
  deployments.push(deployment);
  const table = randomTableName("items");
  const schema = tableSchema(table, [
    ["id", "integer"],
    ["v", "text"],
  ]);
  const topic = `${deployment}.pg.public.${table}`;
  const event = (op: "r" | "t", version: bigint, id: number | null, v: string): ChangeEvent => ({
    op,
    key: id === null ? {} : { id },
    before: null,
    after: id === null ? null : { id, v },
    schema,
    source: { connector: "postgres", name: "pg", db: "db", schema: "public", table, position: { commit: version, change: version }, txId: null, commitTimeMs: 1_700_000_000_000, snapshot: true },
  });
  const record = (e: ChangeEvent) => ({ topic, key: e.op === "t" ? null : keyOf(Number(e.key["id"])), value: Buffer.from(serializeEvent(e)), timestamp: e.source.commitTimeMs });
  /** A snapshot attempt as capture writes it: every row at the snapshot's version, then the reset one below, last. */
  const attempt = (version: bigint, ids: readonly number[], tag: string) => [...ids.map((id) => event("r", version, id, `${tag}${id}:${"x".repeat(700)}`)), event("t", version - 1n, null, "")].map(record);

  const ids = idsOutsidePartitionZero(ROWS);
  const ghost = ids.at(-1)! + 1_000_000;
  const log = await openLog(deployment);
  /** As capture writes a snapshot: in batches (each its own Kafka record batches per partition), the reset in the last. */
  const produce = async (records: ReturnType<typeof record>[]) => {
    for (let i = 0; i < records.length; i += 250) await log.produce(records.slice(i, i + 250));
  };
  const path = join(dir, `${deployment}.duckdb`);
  /** A sink process: a runner over a fresh DuckDB sink on the same file, until `stop`. */
  const start = () => {
    const sink = new WatchedDuckDbSink(testSinkConfig("duckdb", { name: "wh", path }), { logger });
    sink.target = `public_${table}`;
    const runner = new SinkRunner({
      sink,
      log,
      group: `${deployment}.sink.wh`,
      topics: async () => [topic],
      decoder: { decode: async (r) => (r.value ? deserializeEvent(Buffer.from(r.value).toString()) : null) },
      batch: { maxRows: 500, maxBytes: 1 << 20, maxWaitMs: 50 },
      onError: "halt",
      deadLetterTopic: `${deployment}.dlq.wh`,
      retry: { initialMs: 100, maxMs: 1_000 },
      logger,
      owner: "test",
    });
    const stop = new AbortController();
    const state = { failure: null as unknown };
    const running = runner.run(stop.signal).catch((error: unknown) => (state.failure = error));
    const waitUntil = async (what: string, done: () => Promise<boolean>, timeoutMs: number) => {
      const deadline = Date.now() + timeoutMs;
      while (state.failure === null && Date.now() < deadline && !(await done().catch(() => false))) await new Promise((r) => setTimeout(r, 100));
      assert.equal(state.failure, null, `the sink stopped while waiting for ${what}: ${String(state.failure)}`);
      assert.ok(await done(), `timed out waiting for ${what}`);
    };
    const end = async () => {
      stop.abort(new Error("test over"));
      await running;
      assert.equal(state.failure, null);
    };
    return { sink, waitUntil, end };
  };
  try {
    await log.createTopic({ name: topic, partitions: PARTITIONS, retentionMs: null, retentionBytes: null, compacted: false });
    // A first snapshot attempt (with a row the source deletes before the next attempt) is in the sink.
    const first = start();
    try {
      await produce(attempt(1_000n, [...ids, ghost], "a"));
      await first.waitUntil("the first attempt's rows", async () => (await first.sink.values()).size === ROWS + 1, 120_000);
    } finally {
      await first.end();
    }

    // The snapshot starts over while the sink is stopped: the same rows again at a later version, then its reset.
    await produce(attempt(2_000n, ids, "b"));
    const second = start();
    try {
      await second.waitUntil("the second attempt's rows, its reset applied", async () => {
        const values = await second.sink.values();
        return values.size === ROWS && ids.every((id) => values.get(id)?.startsWith(`b${id}:`));
      }, 120_000);
      const counts = second.sink.counts;
      const fewest = Math.min(...counts);
      assert.ok(
        fewest >= ROWS,
        `the sink showed ${fewest} rows while the restarted snapshot was applied; the source has ${ROWS} throughout (counts after each write: ${counts.slice(0, 12).join(", ")}...)`,
      );
      assert.equal((await second.sink.values()).has(ghost), false, "the earlier attempt's row the source deleted is gone");
    } finally {
      await second.end();
    }
  } finally {
    await log.close();
  }
}

test("over Kafka with 3 partitions, a restarted snapshot's reset never removes rows whose new versions are still unread in other partitions", { timeout: 300_000 }, async () => {
  await resetKeepsRowsVisible((deployment) => KafkaTopicLog.open({ config: testKafkaConfig({ partitions: PARTITIONS }), deployment, logger }));
});

test("over the embedded log with 3 partitions, likewise", { timeout: 300_000 }, async () => {
  await resetKeepsRowsVisible(async (deployment) => EmbeddedTopicLog.open({ path: join(dir, `${deployment}.log.db`), logger }));
});
