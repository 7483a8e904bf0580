/**
 * Sink offsets are bound to the log they came from (issue 12, item 5), against the real services:
 * a replaced embedded log file (DuckDB sink), Kafka topics deleted and created again (DuckDB sink),
 * and a stale `sluice-offsets` document of another deployment (Elasticsearch sink). In each the
 * sink must refuse with SINK_LOG_MISMATCH instead of resuming at the old offsets and skipping the
 * new log's first records; a rebuild then lets it read on. Offsets stored before identities were
 * recorded (an upgrade) are adopted, not refused.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { DuckDBInstance } from "@duckdb/node-api";
import { Client } from "@elastic/elasticsearch";
import { elasticsearch } from "../test/services/ports.ts";
import type { ProducedRecord, SinkChange, TopicLog } from "../connectors/contracts.ts";
import { DuckDbSink } from "../connectors/duckdb/duckdb-sink.ts";
import { OFFSETS_INDEX } from "../connectors/elasticsearch/config.ts";
import { ElasticsearchSink } from "../connectors/elasticsearch/elasticsearch-sink.ts";
import { EmbeddedTopicLog } from "../connectors/embedded/embedded-log.ts";
import type { SluiceError } from "../connectors/errors.ts";
import { KafkaTopicLog } from "../connectors/kafka/kafka-log.ts";
import { deleteKafkaDeployment, testDeployment, testKafkaConfig } from "../connectors/kafka/kafka-test-config.ts";
import type { TransactionalSink } from "../connectors/sinks/contract.ts";
import { testLogger, testSinkConfig } from "../connectors/sinks/test-config.ts";
import { Events, randomTableName, tableSchema } from "../connectors/sinks/test-events.ts";
import { deserializeEvent, serializeEvent } from "./event-json.ts";
import { rebuildSink } from "./rebuild.ts";
import { executeReplay, planReplay } from "./replay.ts";
import { SinkRunner } from "./sink-runner.ts";

const logger = testLogger();
const dir = mkdtempSync(join(tmpdir(), "sluice-identity-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const decoder = { decode: async (r: { value: Uint8Array | null }) => (r.value ? deserializeEvent(Buffer.from(r.value).toString()) : null) };

function table(deployment: string): Events {
  return new Events(tableSchema(randomTableName("ident"), [["id", "integer"], ["v", "text"]], ["id"], { source: `${deployment}.src` }));
}

/** Inserts of ids `from`..`to`, as the topic log stores them. */
function inserts(events: Events, from: number, to: number, versionBase: bigint): ProducedRecord[] {
  const records: ProducedRecord[] = [];
  for (let id = from; id <= to; id++) {
    const change: SinkChange = events.insert(versionBase + BigInt(id), { id, v: `row ${id}` });
    records.push({ topic: events.topic, key: Buffer.from(String(id)), value: Buffer.from(serializeEvent(change.event)), timestamp: Date.now() });
  }
  return records;
}

function topicSpec(name: string) {
  return { name, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false };
}

function start(log: TopicLog, sink: TransactionalSink, group: string, topics: string[]) {
  const runner = new SinkRunner({
    sink,
    log,
    group,
    topics: async () => topics,
    decoder,
    batch: { maxRows: 4, maxBytes: 1 << 20, maxWaitMs: 20 },
    onError: "halt",
    deadLetterTopic: `${group}.dlq`,
    retry: { initialMs: 20, maxMs: 200 },
    logger,
    owner: `test-${randomBytes(3).toString("hex")}`,
  });
  const stop = new AbortController();
  const running = runner.run(stop.signal);
  running.catch(() => undefined);
  return {
    runner,
    running,
    async stop() {
      stop.abort(new Error("test done"));
      await running;
    },
  };
}

async function waitFor(what: string, condition: () => Promise<boolean> | boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Waits until the runner refused or read everything (then it resumed somewhere: it must not have skipped). */
async function refusedOrCaughtUp(log: TopicLog, runner: SinkRunner, group: string, topic: string): Promise<SluiceError | null> {
  const refusal = () => (typeof runner.refusal === "function" ? runner.refusal() : null);
  await waitFor("the sink to refuse or catch up", async () => refusal() !== null || (await log.groupLag(group, [topic])).every((p) => p.committed !== null && p.lag === 0n));
  return refusal();
}

function assertRefusal(refusal: SluiceError | null, sink: string, topic: string): void {
  assert.ok(refusal, "the sink must refuse, not resume at offsets taken from another log");
  assert.equal(refusal.code, "SINK_LOG_MISMATCH");
  assert.equal(refusal.context["sink"], sink);
  assert.equal(refusal.context["topic"], topic);
  assert.notEqual(refusal.context["expectedTopicId"], refusal.context["foundTopicId"]);
  assert.match(refusal.message, new RegExp(`sluice replay -c CONFIG --sink ${sink} --from-beginning --rebuild --table ${topic.replaceAll(".", "\\.")} --execute`));
}

async function duckIds(sink: DuckDbSink, target: string): Promise<number[]> {
  return (await sink.query(`SELECT id FROM main."${target}" ORDER BY id`)).map((row) => Number(row["id"]));
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("embedded log → DuckDB", () => {
  test("a replaced log file is refused (not resumed at the old offsets), and a rebuild lets the sink read on", async () => {
    const deployment = testDeployment("ident_emb");
    const logPath = join(dir, `${deployment}.db`);
    const duckPath = join(dir, `${deployment}.duckdb`);
    const events = table(deployment);
    const group = `${deployment}.sink.wh`;
    const config = testSinkConfig("duckdb", { name: "wh", path: duckPath, target: "{table}" });

    const first = EmbeddedTopicLog.open({ path: logPath, logger });
    await first.createTopic(topicSpec(events.topic));
    await first.produce(inserts(events, 1, 10, 0n));
    const sink = new DuckDbSink(config, { logger });
    const run1 = start(first, sink, group, [events.topic]);
    await waitFor("the first log applied", async () => (await duckIds(sink, events.schema.table).catch(() => [])).length === 10);
    await run1.stop();
    await first.close();

    // The file is replaced by a new log with the same topic names and other records.
    for (const suffix of ["", "-wal", "-shm"]) rmSync(`${logPath}${suffix}`, { force: true });
    const second = EmbeddedTopicLog.open({ path: logPath, logger });
    await second.createTopic(topicSpec(events.topic));
    await second.produce(inserts(events, 101, 115, 1_000n));
    const sink2 = new DuckDbSink(config, { logger });
    const run2 = start(second, sink2, group, [events.topic]);
    try {
      const refusal = await refusedOrCaughtUp(second, run2.runner, group, events.topic);
      assert.deepEqual(await duckIds(sink2, events.schema.table), range(1, 10), "nothing of the new log applied from the old offsets");
      assertRefusal(refusal, "wh", events.topic);
      assert.equal(run2.runner.ready(), false, "a refused sink is not ready");
      assert.match(run2.runner.waitingFor() ?? "", /^refused: sink wh: its stored offsets were taken from another topic log/, "readiness says why");

      // The rebuild the error names fills the table from the log as it is now; the sink then reads on.
      await rebuildSink({ sink: sink2, log: second, decoder, topics: [events.topic], group: `${group}.rebuild`, logger, signal: AbortSignal.timeout(60_000) });
      await second.produce(inserts(events, 116, 117, 1_000n));
      await waitFor("the sink reading on after the rebuild", async () => run2.runner.refusal() === null && (await duckIds(sink2, events.schema.table)).length === 17);
      assert.deepEqual(await duckIds(sink2, events.schema.table), range(101, 117));
    } finally {
      await run2.stop();
      await second.close();
    }
  });

  test("offsets stored before identities were recorded (an older Sluice) are adopted once, not refused", async () => {
    const deployment = testDeployment("ident_up");
    const logPath = join(dir, `${deployment}.db`);
    const duckPath = join(dir, `${deployment}.duckdb`);
    const events = table(deployment);
    const group = `${deployment}.sink.wh`;
    const log = EmbeddedTopicLog.open({ path: logPath, logger });
    await log.createTopic(topicSpec(events.topic));
    await log.produce(inserts(events, 1, 6, 0n));
    // The offsets table as Sluice wrote it before: no topic_id column; the sink applied the first 4.
    const instance = await DuckDBInstance.fromCache(duckPath);
    const connection = await instance.connect();
    await connection.run(`CREATE SCHEMA _sluice`);
    await connection.run(`CREATE TABLE _sluice.offsets (sink VARCHAR NOT NULL, topic VARCHAR NOT NULL, "partition" INTEGER NOT NULL, "offset" BIGINT NOT NULL, PRIMARY KEY (sink, topic, "partition"))`);
    await connection.run(`INSERT INTO _sluice.offsets VALUES ('wh', '${events.topic}', 0, 4)`);
    connection.closeSync();
    const sink = new DuckDbSink(testSinkConfig("duckdb", { name: "wh", path: duckPath, target: "{table}" }), { logger });
    const run = start(log, sink, group, [events.topic]);
    try {
      await waitFor("the rest applied", async () => (await duckIds(sink, events.schema.table).catch(() => [])).length === 2);
      assert.equal(run.runner.refusal(), null);
      assert.deepEqual(await duckIds(sink, events.schema.table), [5, 6], "resumed at the stored offset");
      const [stored] = await sink.committedOffsets();
      assert.equal(stored?.offset, 6n);
      assert.equal(stored?.topicId, (await log.topicIds([events.topic])).get(events.topic), "bound to the log's identity now");
    } finally {
      await run.stop();
      await log.close();
    }
  });
});

describe("Kafka → DuckDB", () => {
  test("topics deleted and created again under the same names are refused; a replay from the beginning clears it", async () => {
    const deployment = testDeployment("ident_kafka");
    const kafka = testKafkaConfig({ partitions: 1 });
    const events = table(deployment);
    const group = `${deployment}.sink.wh`;
    const duckPath = join(dir, `${deployment}.duckdb`);
    const config = testSinkConfig("duckdb", { name: "wh", path: duckPath, target: "{table}" });
    // The capture's log (creates topics) and the sink's, as the daemon's threads have.
    const capture = await KafkaTopicLog.open({ config: kafka, deployment, logger });
    const sinkLog = await KafkaTopicLog.open({ config: kafka, deployment, logger, transactionalId: `${deployment}.sink.wh` });
    try {
      await capture.createTopic(topicSpec(events.topic));
      await capture.produce(inserts(events, 1, 5, 0n));
      const sink = new DuckDbSink(config, { logger });
      const run1 = start(sinkLog, sink, group, [events.topic]);
      await waitFor("the first topic applied", async () => (await duckIds(sink, events.schema.table).catch(() => [])).length === 5);
      await run1.stop();

      // Deleted (as with kafka-topics --delete), then created again by Sluice with more records than before.
      await capture.deleteTopic(events.topic);
      await waitFor("the topic deleted", async () => !(await capture.topicNames()).includes(events.topic));
      await waitFor("the topic created again", async () => {
        try {
          await capture.createTopic(topicSpec(events.topic));
          return true;
        } catch {
          return false; // still being deleted
        }
      });
      await capture.produce(inserts(events, 101, 112, 1_000n));

      const sink2 = new DuckDbSink(config, { logger });
      const run2 = start(sinkLog, sink2, group, [events.topic]);
      try {
        const refusal = await refusedOrCaughtUp(sinkLog, run2.runner, group, events.topic);
        assert.deepEqual(await duckIds(sink2, events.schema.table), range(1, 5), "nothing of the new topic applied from the old offsets");
        assertRefusal(refusal, "wh", events.topic);
      } finally {
        await run2.stop();
      }
      // `sluice replay --sink wh --from-beginning --execute` with the sink stopped: it reads the new topic from its start.
      await executeReplay(sinkLog, await planReplay(sinkLog, group, [events.topic], { kind: "beginning" }));
      const run3 = start(sinkLog, sink2, group, [events.topic]);
      try {
        await waitFor("the new topic applied from its start", async () => (await duckIds(sink2, events.schema.table).catch(() => [])).length === 17);
        assert.equal(run3.runner.refusal(), null);
        assert.deepEqual(await duckIds(sink2, events.schema.table), [...range(1, 5), ...range(101, 112)], "the old rows stay (a rebuild would drop them)");
        const stored = await sink2.committedOffsets();
        assert.deepEqual(stored.map((o) => o.topicId), [(await sinkLog.topicIds([events.topic])).get(events.topic)], "bound to the topic as it is now");
        assert.ok(stored[0]!.offset >= 12n, "past the new topic's records (and its transaction markers)");
      } finally {
        await run3.stop();
      }
    } finally {
      await sinkLog.close();
      await capture.close();
      await deleteKafkaDeployment(deployment);
    }
  });
});

describe("Elasticsearch", () => {
  const admin = new Client({ node: elasticsearch.url });
  const sinkName = `es_ident_${randomBytes(4).toString("hex")}`;
  const prefix = `sluice_ident_${randomBytes(3).toString("hex")}`;
  after(async () => {
    await admin.indices.delete({ index: `${prefix}_*`, ignore_unavailable: true, expand_wildcards: "all" });
    await admin.indices.refresh({ index: OFFSETS_INDEX });
    const mine = await admin.search({ index: OFFSETS_INDEX, size: 1_000, query: { term: { sink: sinkName } } });
    if (mine.hits.hits.length > 0) await admin.bulk({ operations: mine.hits.hits.map((hit) => ({ delete: { _index: OFFSETS_INDEX, _id: hit._id } })) });
    await admin.close();
  });

  test("a stale sluice-offsets document of another deployment with the same sink name does not make the sink skip rows", async () => {
    const deployment = testDeployment("ident_es");
    const events = table(deployment);
    const group = `${deployment}.sink.${sinkName}`;
    const log = EmbeddedTopicLog.open({ path: join(dir, `${deployment}.db`), logger });
    await log.createTopic(topicSpec(events.topic));
    await log.produce(inserts(events, 1, 7, 0n));
    const sink = new ElasticsearchSink(testSinkConfig("elasticsearch", { name: sinkName, nodes: [elasticsearch.url], bulk_bytes: 5 * 2 ** 20, target: `${prefix}_{table}` }), { logger, refresh: true });
    // Another deployment of the same name, on another log, used this sink name and got to offset 4 there.
    await sink.open(AbortSignal.timeout(30_000));
    await sink.close();
    await admin.indices.putMapping({ index: OFFSETS_INDEX, expand_wildcards: "all", properties: { topic_id: { type: "keyword" } } });
    await admin.index({ index: OFFSETS_INDEX, id: `${sinkName}/${events.topic}/0`, document: { sink: sinkName, topic: events.topic, partition: 0, offset: 4, topic_id: "another-log/1@1" }, refresh: true });

    const run = start(log, sink, group, [events.topic]);
    try {
      const refusal = await refusedOrCaughtUp(log, run.runner, group, events.topic);
      const target = `${prefix}_${events.schema.table}`.toLowerCase();
      await admin.indices.refresh({ index: target, ignore_unavailable: true });
      const indexed = await admin.search({ index: target, ignore_unavailable: true, size: 100 }).then((r) => r.hits.hits.length, () => 0);
      assertRefusal(refusal, sinkName, events.topic);
      assert.equal(indexed, 0, "no rows applied from the stale offsets");
    } finally {
      await run.stop();
      await log.close();
    }
  });
});
