/**
 * A consumer whose read-ahead is much smaller than the backlog (a sink's share of the memory
 * budget, config/memory.ts) against the real broker. Its queue fills after every fetch or two: it
 * must wait for poll() to make room and fetch again at once, not pause the kafkajs consumer, which
 * then sleeps its whole fetch wait before fetching again (a busy sink read one read-ahead per
 * fetch wait: ~7k changes/s under the default budget). And a sink that does not poll for longer than
 * its group session keeps its partitions: nothing is read twice or skipped.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createLogger } from "../../runtime/logger.ts";
import { readToEnd } from "../topics/contract-suite.ts";
import type { ProducedRecord, StoredRecord } from "../topics/contract.ts";
import { KafkaTopicLog } from "./kafka-log.ts";
import { deleteKafkaDeployment, testDeployment, testKafkaConfig } from "./kafka-test-config.ts";

const KiB = 1024;
const logger = createLogger("warn");
const deployment = testDeployment("readahead");
const limits = { readAheadBytes: 128 * KiB, fetchBytes: 256 * KiB, partitionFetchBytes: 128 * KiB };

after(() => deleteKafkaDeployment(deployment));

/** `count` records of ~200 bytes on a 3-partition topic; returns the topic. */
async function backlog(name: string, count: number): Promise<string> {
  const config = testKafkaConfig();
  const writer = await KafkaTopicLog.open({ config, deployment, logger });
  const topic = `${deployment}.${name}`;
  try {
    await writer.createTopic({ name: topic, partitions: 3, retentionMs: null, retentionBytes: null, compacted: false });
    for (let from = 0; from < count; from += 2_000) {
      const batch: ProducedRecord[] = [];
      for (let i = from; i < Math.min(count, from + 2_000); i++) batch.push({ topic, key: Buffer.from(`key-${i % 97}`), value: Buffer.from(`${i}|`.padEnd(200, "x")), timestamp: 1_000 });
      await writer.produce(batch);
    }
  } finally {
    await writer.close();
  }
  return topic;
}

/** Every record produced read once: each partition's offsets rising, and as many records as produced. */
function assertEachOnce(records: readonly StoredRecord[], count: number): void {
  const last = new Map<number, bigint>();
  for (const r of records) {
    const before = last.get(r.partition);
    assert.ok(before === undefined || r.offset > before, `partition ${r.partition}: offset ${r.offset} after ${before}`);
    last.set(r.partition, r.offset);
  }
  assert.equal(records.length, count);
  assert.equal(new Set(records.map((r) => Buffer.from(r.value!).toString().split("|")[0])).size, count);
}

test("a backlog many times the read-ahead is read without waiting the fetch wait at each full queue", { timeout: 180_000 }, async () => {
  const count = 30_000;
  const topic = await backlog("drain", count);
  const reader = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger, access: "read-only", readerLimits: limits });
  try {
    // A fetch wait far longer than the polls below may take together: before, each full queue
    // paused the consumer, and kafkajs slept this long before fetching again (30,000 records are
    // ~100 queues of 128 KiB), so the backlog did not arrive within 300 polls (at most a minute).
    const consumer = await reader.consumer(`${deployment}.drain`, [topic], { fetchWaitMs: 8_000 });
    const ends = await reader.partitionOffsets(topic);
    const read: StoredRecord[] = [];
    // Like a sink: batches of 500 records, each applied (5 ms here) before the next poll, so the
    // queue is still full when kafkajs's next fetch would go out.
    for (let polls = 0; polls < 300 && !ends.every((e) => (consumer.position(topic, e.partition) ?? -1n) >= e.end); polls++) {
      const batch = await consumer.poll({ maxRecords: 500, maxBytes: 1024 * KiB, maxWaitMs: 200 });
      read.push(...batch);
      if (batch.length > 0) await sleep(5);
    }
    assertEachOnce(read, count);
    await consumer.close();
  } finally {
    await reader.close();
  }
});

test("a sink that does not poll for longer than its session keeps its partitions: nothing read twice or skipped", { timeout: 180_000 }, async () => {
  const count = 6_000;
  const topic = await backlog("slow", count);
  const session = process.env["SLUICE_KAFKA_SESSION_MS"];
  process.env["SLUICE_KAFKA_SESSION_MS"] = "6000";
  const reader = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger, access: "read-only", readerLimits: limits });
  try {
    const consumer = await reader.consumer(`${deployment}.slow`, [topic]);
    if (session === undefined) delete process.env["SLUICE_KAFKA_SESSION_MS"];
    else process.env["SLUICE_KAFKA_SESSION_MS"] = session;
    const read: StoredRecord[] = [];
    for (let i = 0; i < 100 && read.length === 0; i++) read.push(...(await consumer.poll({ maxRecords: 100, maxBytes: 64 * KiB, maxWaitMs: 200 })));
    assert.ok(read.length > 0);
    // The queue is full and a fetched batch waits for room: one and a half sessions without a poll (a member whose
    // heartbeats stopped with its polls is out of the group 6 s after its last one, well within these 9 s).
    await sleep(9_000);
    read.push(...(await readToEnd(reader, consumer, [topic])));
    assertEachOnce(read, count);
    await consumer.close();
  } finally {
    await reader.close();
  }
});
