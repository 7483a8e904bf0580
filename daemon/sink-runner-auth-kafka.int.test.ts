/**
 * sluice_sink_auth_refused against the real Kafka: a sink whose server accepts its login and refuses every write keeps
 * the gauge at 1 (and credentialsRefusedSince at the first refusal) across its reopens. Regression: the first polls
 * after each reopen come back empty while the consumer joins its group, and an empty poll cleared the gauge, so the
 * SluiceSinkAuthRefused alert (for: 5m) never fired. Cleared once the writes are accepted again.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import type { SinkChange, TopicPartitionOffset } from "../connectors/contracts.ts";
import { SluiceError } from "../connectors/errors.ts";
import { KafkaTopicLog } from "../connectors/kafka/kafka-log.ts";
import { deleteKafkaDeployment, testDeployment, testKafkaConfig } from "../connectors/kafka/kafka-test-config.ts";
import type { OffsetWriteResult } from "../connectors/sinks/contract.ts";
import { AUTH_FAILED } from "../connectors/sinks/errors.ts";
import { createLogger } from "../runtime/logger.ts";
import { SluiceMetrics } from "./metrics.ts";
import { SinkRunner } from "./sink-runner.ts";
import { event, jsonRecord, kafkaRunnerDefaults, MemoryTransactionalSink } from "./sink-runner-test-support.ts";

const deployment = testDeployment("authgauge");
const topic = `${deployment}.pg.public.items`;
after(() => deleteKafkaDeployment(deployment));

/** Its server accepts the login and, while `refusing`, refuses each write (a role narrowed on the server). */
class NarrowedSink extends MemoryTransactionalSink {
  refusing = false;
  opens = 0;
  override async open(): Promise<void> {
    this.opens++;
  }
  override async write(changes: readonly SinkChange[], signal: AbortSignal, offsets?: readonly TopicPartitionOffset[]): Promise<OffsetWriteResult> {
    if (this.refusing) throw new SluiceError("403 security_exception: action [indices:data/write/bulk] is unauthorized for user [sluice]", { code: AUTH_FAILED, context: { component: "sink", sink: "auth" } });
    return super.write(changes, signal, offsets);
  }
}

async function until(done: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 1_200 && !(await done()); i++) await new Promise((resolve) => setTimeout(resolve, 50));
  assert.ok(await done(), `timed out waiting for ${what}`);
}

test("Kafka: sluice_sink_auth_refused stays 1 across reopens while every write is refused, and clears once one is applied", { timeout: 120_000 }, async () => {
  const logger = createLogger("error");
  const log = await KafkaTopicLog.open({ config: testKafkaConfig({ partitions: 1 }), deployment, logger });
  const stop = new AbortController();
  let running: Promise<void> | null = null;
  try {
    await log.createTopic({ name: topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
    await log.produce([jsonRecord(topic, event("items", 1))]);
    const sink = new NarrowedSink("auth");
    const metrics = new SluiceMetrics({ processMetrics: false });
    const runner = new SinkRunner({ ...kafkaRunnerDefaults, retry: { initialMs: 200, maxMs: 500 }, sink, log, group: `${deployment}.sink.auth`, topics: async () => [topic], deadLetterTopic: `${deployment}.dlq.auth`, logger, metrics });
    const gauge = async () => (await metrics.sinkAuthRefused.get()).values.find((v) => v.labels["sink"] === "auth")?.value;
    running = runner.run(stop.signal);
    await until(() => sink.rows.size === 1, "the first row");
    sink.refusing = true;
    await log.produce([jsonRecord(topic, event("items", 2))]);
    await until(async () => (await gauge()) === 1, "the refusal");
    const since = runner.credentialsRefusedSince();
    const opens = sink.opens;
    const readings: number[] = [];
    while (sink.opens < opens + 3) {
      readings.push((await gauge()) ?? -1);
      assert.equal(runner.credentialsRefusedSince(), since, "refused since the first refusal");
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.deepEqual([...new Set(readings)], [1], "the gauge stays 1 while every write is refused");
    sink.refusing = false;
    await until(() => sink.rows.has(2), "the refused row applied");
    await until(async () => (await gauge()) === 0, "the gauge cleared");
    assert.equal(runner.credentialsRefusedSince(), null);
  } finally {
    stop.abort(new Error("stop"));
    await running;
    await log.close();
  }
});
