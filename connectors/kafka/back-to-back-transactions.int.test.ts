/**
 * Kafka transactions one right after the other (each waits for the previous commit's markers;
 * transaction-retry.ts takes a CONCURRENT_TRANSACTIONS should the coordinator still refuse one).
 * Against the real broker: awaited one by one and overlapping, they store every record once, in
 * order, with the last checkpoint.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { createLogger } from "../../runtime/logger.ts";
import type { Checkpoint, ProducedRecord } from "../contracts.ts";
import { readToEnd } from "../topics/contract-suite.ts";
import { KafkaTopicLog } from "./kafka-log.ts";
import { deleteKafkaDeployment, testDeployment, testKafkaConfig } from "./kafka-test-config.ts";

const deployment = testDeployment("b2b");
after(() => deleteKafkaDeployment(deployment));

const records = (topic: string, from: number, count: number): ProducedRecord[] =>
  Array.from({ length: count }, (_, i) => ({ topic, key: Buffer.from(`k${(from + i) % 7}`), value: Buffer.from(String(from + i)), timestamp: 1_000 + from + i }));
const checkpoint = (source: string, n: number): Checkpoint => ({ source, position: { commit: BigInt(n), change: BigInt(n) } });

test("back-to-back and overlapping transactions store every record once, in order per key, with the last checkpoint", async () => {
  // linger 0: each produce call is its own transaction, started the moment the one before it commits.
  const log = await KafkaTopicLog.open({ config: testKafkaConfig({ linger: 0 }), deployment, logger: createLogger("warn") });
  try {
    const topic = `${deployment}.rows`;
    await log.createTopic({ name: topic, partitions: 3, retentionMs: null, retentionBytes: null, compacted: false });
    const source = `${deployment}-src`;
    const PER_CALL = 50;
    let n = 0;
    for (let call = 0; call < 30; call++, n += PER_CALL) await log.produce(records(topic, n, PER_CALL), checkpoint(source, n + PER_CALL));
    const overlapping: Promise<void>[] = [];
    const settled: number[] = [];
    for (let call = 0; call < 30; call++, n += PER_CALL) {
      const end = n + PER_CALL;
      overlapping.push(log.produce(records(topic, n, PER_CALL), checkpoint(source, end)).then(() => void settled.push(end)));
    }
    await Promise.all(overlapping);
    assert.deepEqual(settled, [...settled].sort((a, b) => a - b), "overlapping calls are durable in call order");
    assert.deepEqual(await log.readCheckpoint(source), checkpoint(source, n));

    const consumer = await log.consumer(`${deployment}.read`, [topic]);
    const read = await readToEnd(log, consumer, [topic]);
    await consumer.close();
    const values = read.map((r) => Number(Buffer.from(r.value!).toString()));
    assert.deepEqual([...values].sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i), "every record once");
    const perKey = new Map<string, number[]>();
    for (const r of read) {
      const key = Buffer.from(r.key!).toString();
      perKey.set(key, [...(perKey.get(key) ?? []), Number(Buffer.from(r.value!).toString())]);
    }
    for (const [key, list] of perKey) assert.deepEqual(list, [...list].sort((a, b) => a - b), `key ${key} in order`);
  } finally {
    await log.close();
  }
});
