/**
 * A consumer with small fetch sizes (a sink's share of the memory budget, config/memory.ts) against
 * the real broker: records bigger than the per-partition and the whole fetch size still arrive,
 * whole and in order, on every partition, beside partitions of small records. The broker answers
 * (Fetch v3 and later, which kafkajs speaks) with the first record batch of the first partition
 * that has one even when it exceeds the limits; for the partitions after it, kafkajs drops the
 * truncated batch and asks again.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { Kafka } from "kafkajs";
import { createLogger } from "../../runtime/logger.ts";
import { readToEnd } from "../topics/contract-suite.ts";
import type { ProducedRecord } from "../topics/contract.ts";
import { KafkaTopicLog } from "./kafka-log.ts";
import { testDeployment, testKafkaConfig } from "./kafka-test-config.ts";

const MiB = 2 ** 20;
const logger = createLogger("warn");
const deployment = testDeployment("fetch");

after(async () => {
  const admin = new Kafka({ brokers: testKafkaConfig().brokers, logLevel: 0 }).admin();
  await admin.connect();
  const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${deployment}.`));
  if (topics.length > 0) await admin.deleteTopics({ topics });
  await admin.disconnect();
});

/** A value of `size` bytes that says which record it is, so a mix-up or a truncation shows. */
function value(name: string, size: number): Buffer {
  const out = Buffer.alloc(size, name.length % 26 + 97);
  out.write(`${name}|${size}|`);
  return out;
}

test("records bigger than the fetch sizes arrive whole and in order on every partition", { timeout: 180_000 }, async () => {
  const config = testKafkaConfig({ max_record_bytes: 8 * MiB });
  const writer = await KafkaTopicLog.open({ config, deployment, logger });
  const topic = `${deployment}.wide`;
  const produced: ProducedRecord[] = [];
  try {
    await writer.createTopic({ name: topic, partitions: 3, retentionMs: null, retentionBytes: null, compacted: false, maxRecordBytes: 8 * MiB });
    // Keys spread the records over the 3 partitions; sizes from 200 bytes to 3 MiB (three times the fetch limits).
    const sizes = [200, 3 * MiB, 300 * 1024, 200, 2 * MiB + 17, 1 * MiB + 1, 200, 3 * MiB];
    for (let round = 0; round < 4; round++) {
      const batch = sizes.map((size, i) => ({ topic, key: Buffer.from(`key-${i}`), value: value(`r${round}-${i}`, size), timestamp: 1_000 + round }));
      await writer.produce(batch);
      produced.push(...batch);
    }
  } finally {
    await writer.close();
  }

  const reader = await KafkaTopicLog.open({ config, deployment, logger, access: "read-only", readerLimits: { readAheadBytes: 1 * MiB, fetchBytes: 1 * MiB, partitionFetchBytes: 256 * 1024 } });
  try {
    const consumer = await reader.consumer(`${deployment}.reader`, [topic]);
    const read = await readToEnd(reader, consumer, [topic]);
    await consumer.close();
    const name = (r: ProducedRecord) => Buffer.from(r.value!).toString("latin1", 0, 16).split("|")[0]!;
    // Per key (so per partition) the same records in the same order, each whole.
    const order = (records: readonly ProducedRecord[]) => {
      const keys = new Map<string, string[]>();
      for (const r of records) keys.set(Buffer.from(r.key!).toString(), [...(keys.get(Buffer.from(r.key!).toString()) ?? []), name(r)]);
      return keys;
    };
    assert.equal(read.length, produced.length);
    assert.deepEqual(order(read), order(produced));
    const values = new Map(produced.map((r) => [name(r), Buffer.from(r.value!)]));
    for (const r of read) assert.ok(values.get(name(r))!.equals(Buffer.from(r.value!)), `${name(r)} read whole (${r.value!.length} bytes)`);
  } finally {
    await reader.close();
  }
});
