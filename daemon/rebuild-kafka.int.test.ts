/**
 * Rebuilds through the real Kafka broker (issue 14, item 2), as daemon/rebuild.test.ts does with
 * the embedded log: every table is rebuilt (a consumer's first polls are empty while it joins its
 * group), and a topic whose first records are gone (DeleteRecords moves the log start offset, as
 * retention does) is refused before anything changes.
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { Kafka } from "kafkajs";
import type { SinkChange } from "../connectors/contracts.ts";
import { createDuckDbSink } from "../connectors/duckdb/duckdb-sink.ts";
import { KafkaTopicLog } from "../connectors/kafka/kafka-log.ts";
import { testDeployment, testKafkaConfig } from "../connectors/kafka/kafka-test-config.ts";
import { testLogger, testSinkConfig } from "../connectors/sinks/test-config.ts";
import { Events, tableSchema } from "../connectors/sinks/test-events.ts";
import { deserializeEvent, serializeEvent } from "./event-json.ts";
import { rebuildSink } from "./rebuild.ts";
import type { RebuildOptions } from "./rebuild.ts";

const deployment = testDeployment("rebuild");
const logger = testLogger();
const decoder: RebuildOptions["decoder"] = { decode: async (r) => (r.value ? deserializeEvent(Buffer.from(r.value).toString()) : null) };
const admin = new Kafka({ brokers: testKafkaConfig().brokers, logLevel: 0 }).admin();

after(async () => {
  const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${deployment}.`));
  if (topics.length > 0) await admin.deleteTopics({ topics });
  await admin.disconnect();
});

async function setup(name: string) {
  const log = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger });
  const tables = ["orders", "items"].map((table) => {
    const events = new Events(tableSchema(`${name}_${table}`, [["id", "integer"], ["name", "text"]]));
    return { events, topic: `${deployment}.${name}.${table}` };
  });
  for (const { topic } of tables) await log.createTopic({ name: topic, partitions: 3, retentionMs: null, retentionBytes: null, compacted: false });
  const dir = mkdtempSync(join(tmpdir(), "sluice-rebuild-kafka-"));
  const sink = createDuckDbSink(testSinkConfig("duckdb", { name: "wh", path: join(dir, "wh.duckdb") }), { logger });
  const signal = new AbortController().signal;
  await sink.open(signal);
  const produce = (topic: string, changes: readonly SinkChange[]) =>
    log.produce(changes.map(({ event }) => ({ topic, key: Buffer.from(String(event.key["id"])), value: Buffer.from(serializeEvent(event)), timestamp: Date.now() })));
  const rebuild = () => rebuildSink({ sink, log, decoder, topics: tables.map((t) => t.topic), group: `${deployment}.${name}.wh.rebuild`, logger, signal });
  return { log, sink, signal, tables, produce, rebuild };
}

test("Kafka: a rebuild reads every table's topic to the end offsets taken at its start and swaps them in", { timeout: 120_000 }, async () => {
  const { log, sink, signal, tables, produce, rebuild } = await setup("full");
  try {
    for (const { events, topic } of tables) {
      const history = Array.from({ length: 30 }, (_, i) => events.insert(BigInt(i + 1), { id: i + 1, name: `row ${i + 1}` }));
      history.push(events.update(31n, { id: 1, name: "uno" }), events.delete(32n, { id: 2 }));
      await produce(topic, history);
      // The live tables hold something stale: the rebuild replaces it with what the topics say.
      await sink.write([events.insert(1n, { id: 1, name: "one" }), events.insert(2n, { id: 99, name: "stale" })], signal);
    }
    const report = await rebuild();
    assert.deepEqual([...report.tables].sort(), ["public.full_items", "public.full_orders"]);
    assert.equal(report.records, 64);
    for (const table of ["public_full_orders", "public_full_items"]) {
      const rows = await sink.query(`SELECT id, name FROM ${table} ORDER BY id`);
      assert.equal(rows.length, 29);
      assert.deepEqual(rows[0], { id: 1, name: "uno" });
      assert.ok(!rows.some((r) => r["id"] === 2 || r["id"] === 99));
    }
  } finally {
    await sink.close();
    await log.close();
  }
});

test("Kafka: a rebuild from a topic whose first records are gone is refused, naming topic:partition and first offset; the sink is unchanged", { timeout: 120_000 }, async () => {
  const { log, sink, signal, tables, produce, rebuild } = await setup("gap");
  try {
    for (const { events, topic } of tables) {
      const rows = Array.from({ length: 30 }, (_, i) => events.insert(BigInt(i + 1), { id: i + 1, name: `row ${i + 1}` }));
      await produce(topic, rows);
      await sink.write(rows, signal);
    }
    await admin.connect();
    const [orders] = tables;
    await admin.fetchTopicMetadata({ topics: [orders!.topic] });
    const ends = await log.endOffsets(orders!.topic);
    const cut = ends.find((e) => e.offset > 1n)!;
    await admin.deleteTopicRecords({ topic: orders!.topic, partitions: [{ partition: cut.partition, offset: "1" }] });
    await assert.rejects(rebuild(), (error: Error & { code?: string }) => {
      assert.equal(error.code, "REBUILD_HISTORY_INCOMPLETE");
      assert.match(error.message, new RegExp(`retention removed the first records of 1 partition \\(${orders!.topic.replaceAll(".", "\\.")}:${cut.partition} starts at offset 1\\)`));
      return true;
    });
    for (const table of ["public_gap_orders", "public_gap_items"]) assert.deepEqual(await sink.query(`SELECT count(*)::INTEGER AS n FROM ${table}`), [{ n: 30 }]);
  } finally {
    await sink.close();
    await log.close();
  }
});
