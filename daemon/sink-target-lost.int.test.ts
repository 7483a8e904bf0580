/**
 * The other sinks that keep their offsets in their target, in the situation of
 * sink-target-lost.test.ts (a DuckDB file deleted): a ClickHouse database dropped while the sink
 * was stopped. Its open makes the database and an empty offsets table again; resuming from the
 * consumer group's offsets would fill it with the changes since only. Real ClickHouse, the
 * embedded log, through the sink runner.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { ClickHouseLogLevel, createClient } from "@clickhouse/client";
import { clickhouse } from "../test/services/ports.ts";
import type { ProducedRecord, SinkChange, TopicLog } from "../connectors/contracts.ts";
import { ClickHouseSink } from "../connectors/clickhouse/clickhouse-sink.ts";
import { EmbeddedTopicLog } from "../connectors/embedded/embedded-log.ts";
import { testDeployment } from "../connectors/kafka/kafka-test-config.ts";
import type { TransactionalSink } from "../connectors/sinks/contract.ts";
import { testSinkConfig } from "../connectors/sinks/test-config.ts";
import { Events, randomTableName, tableSchema } from "../connectors/sinks/test-events.ts";
import { createLogger } from "../runtime/logger.ts";
import { deserializeEvent, serializeEvent } from "./event-json.ts";
import { SinkRunner } from "./sink-runner.ts";

const dir = mkdtempSync(join(tmpdir(), "sluice-target-lost-int-"));
const database = `sluice_lost_${randomBytes(4).toString("hex")}`;
const admin = createClient({ url: clickhouse.url, username: clickhouse.username, password: clickhouse.password, log: { level: ClickHouseLogLevel.OFF } });
after(async () => {
  await admin.command({ query: `DROP DATABASE IF EXISTS \`${database}\`` });
  await admin.close();
  rmSync(dir, { recursive: true, force: true });
});

const logger = createLogger("silent");
const decoder = { decode: async (r: { value: Uint8Array | null }) => (r.value ? deserializeEvent(Buffer.from(r.value).toString()) : null) };

function inserts(events: Events, from: number, to: number): ProducedRecord[] {
  const records: ProducedRecord[] = [];
  for (let id = from; id <= to; id++) {
    const change: SinkChange = events.insert(BigInt(id), { id, v: `row ${id}` });
    records.push({ topic: events.topic, key: Buffer.from(String(id)), value: Buffer.from(serializeEvent(change.event)), timestamp: Date.now() });
  }
  return records;
}

/** A sink runner applying `topic` to `sink` until `stop`, which throws what ended the run early; `failure` tells it meanwhile. */
function start(log: TopicLog, sink: TransactionalSink, group: string, topic: string) {
  const stop = new AbortController();
  const runner = new SinkRunner({
    sink,
    log,
    group,
    topics: async () => [topic],
    decoder,
    batch: { maxRows: 4, maxBytes: 1 << 20, maxWaitMs: 20 },
    onError: "halt",
    deadLetterTopic: `${group}.dlq`,
    retry: { initialMs: 20, maxMs: 200 },
    logger,
    owner: `test-${randomBytes(3).toString("hex")}`,
  });
  let failure: unknown = null;
  const running = runner.run(stop.signal).catch((error: unknown) => void (failure = error));
  return {
    failure: () => failure,
    stop: async () => {
      stop.abort(new Error("test done"));
      await running;
      if (failure !== null) throw failure;
    },
  };
}

/** A deployment on the embedded log whose table's topic holds rows 1 to 10, and its ClickHouse sink's config (target: the table's name). */
async function deploymentWithRows(name: string) {
  const deployment = testDeployment(name);
  const events = new Events(tableSchema(randomTableName("lost"), [["id", "integer"], ["v", "text"]], ["id"], { source: `${deployment}.src` }));
  const log = EmbeddedTopicLog.open({ path: join(dir, `${deployment}.db`), logger });
  const config = testSinkConfig("clickhouse", { name: "ch", url: clickhouse.url, user: clickhouse.username, password: clickhouse.password, database, native_deletes: false, target: "{table}" });
  try {
    await log.createTopic({ name: events.topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
    await log.produce(inserts(events, 1, 10));
  } catch (error) {
    await log.close();
    throw error;
  }
  return { events, log, group: `${deployment}.sink.ch`, target: events.schema.table, config };
}

async function waitFor(what: string, condition: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const caughtUp = async (log: TopicLog, group: string, topic: string) => (await log.groupLag(group, [topic])).every((p) => p.committed !== null && p.lag === 0n);

async function chIds(target: string): Promise<number[]> {
  try {
    const result = await admin.query({ query: `SELECT id FROM \`${database}\`.\`${target}\` ORDER BY id`, format: "JSONEachRow" });
    return ((await result.json()) as { id: number | string }[]).map((row) => Number(row.id));
  } catch {
    return [];
  }
}

test("a ClickHouse database dropped while the sink was stopped is filled again from the beginning of its topics, not from the group's offsets", async () => {
  const { events, log, group, target, config } = await deploymentWithRows("lost_ch");
  try {
    const first = start(log, new ClickHouseSink(config, { logger }), group, events.topic);
    await waitFor("the first rows applied", async () => (await chIds(target)).length === 10 && (await caughtUp(log, group, events.topic)));
    await first.stop();

    await admin.command({ query: `DROP DATABASE \`${database}\`` });
    await log.produce(inserts(events, 11, 15));
    const second = start(log, new ClickHouseSink(config, { logger }), group, events.topic);
    try {
      await waitFor("the new rows applied", async () => (await chIds(target)).includes(15) && (await caughtUp(log, group, events.topic)));
      assert.deepEqual(await chIds(target), Array.from({ length: 15 }, (_, i) => i + 1), "every row, not only those changed since the database was dropped");
    } finally {
      await second.stop();
    }
  } finally {
    await log.close();
  }
});

/**
 * Runs the sink, does `lose` once rows 1 to 10 are applied, and expects it to apply rows 11 to 15 on top, every row
 * there, without stopping.
 */
async function loseWhileRunning(name: string, lose: string, applied: string, message?: string): Promise<void> {
  const { events, log, group, target, config } = await deploymentWithRows(name);
  const sink = start(log, new ClickHouseSink(config, { logger }), group, events.topic);
  try {
    await waitFor("the first rows applied", async () => (await chIds(target)).length === 10 && (await caughtUp(log, group, events.topic)));
    await admin.command({ query: lose });
    await log.produce(inserts(events, 11, 15));
    await waitFor(applied, async () => {
      if (sink.failure() !== null) throw new Error(`the sink stopped: ${String(sink.failure())}`);
      return (await chIds(target)).includes(15) && (await caughtUp(log, group, events.topic));
    });
    assert.deepEqual(await chIds(target), Array.from({ length: 15 }, (_, i) => i + 1), message);
    await sink.stop();
  } finally {
    await sink.stop().catch(() => undefined);
    await log.close();
  }
}

test("a ClickHouse database dropped while the sink runs: the sink makes it again and fills it from the beginning of its topics, instead of stopping", async () => {
  // Found on a live deployment: DROP DATABASE under a running daemon stopped the sink with 'ClickHouse error 81:
  // Database ... doesn't exist', and the daemon with it (capture and the other sinks); a restart then refilled it.
  await loseWhileRunning("lost_ch_running", `DROP DATABASE \`${database}\``, "every row in the database made again", "every row, not only those written after the drop");
});

test("one of Sluice's own ClickHouse tables gone while the sink runs (DROP DATABASE drops them one by one; or dropped by hand): the sink opens again and reads on, instead of stopping", async () => {
  // Found on a live deployment: DROP DATABASE under a running daemon met the offsets insert between its table drops
  // ('ClickHouse error 60: Table <db>._sluice_offsets doesn't exist'), not error 81, and stopped the sink and the daemon.
  await loseWhileRunning("lost_ch_own", `DROP TABLE \`${database}\`.\`_sluice_offsets\``, "every row applied, the offsets kept again");
});
