/**
 * The sink runtime waits out a topic log that fails for a while (issue 12, item 4): listing topics,
 * opening a consumer, polling, committing and seeking fail with retriable errors (a Kafka outage,
 * a consumer between a crash and its rejoin, a partition moved by a rebalance); the runner keeps
 * going with backoff, says what it waits for, and applies every record once the log answers.
 * A permanent error still ends it.
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import kafkajs from "kafkajs";
import type { Sink, SinkChange, SinkWriteResult } from "../connectors/contracts.ts";
import { EmbeddedTopicLog } from "../connectors/embedded/embedded-log.ts";
import { ConnectionError, SluiceError } from "../connectors/errors.ts";
import { kafkaError } from "../connectors/kafka/kafka-errors.ts";
import type { TopicConsumer, TopicLog } from "../connectors/topics/contract.ts";
import { serializeEvent } from "./event-json.ts";
import { SluiceMetrics } from "./metrics.ts";
import { SinkRunner } from "./sink-runner.ts";
import { event, jsonDecoder, silent } from "./sink-runner-test-support.ts";

const TOPICS = ["pg.public.a", "pg.public.b"];

class ListSink implements Sink {
  readonly name = "list";
  readonly rows = new Set<string>();
  async open(): Promise<void> {}
  async close(): Promise<void> {}
  async write(changes: readonly SinkChange[]): Promise<SinkWriteResult> {
    for (const { event: e } of changes) this.rows.add(`${e.schema.table}/${String(e.key["id"])}`);
    return { failures: [] };
  }
}

const unavailable = (operation: string) => new ConnectionError(`Kafka 127.0.0.1:9 unavailable during ${operation}: Connection error: connect ECONNREFUSED 127.0.0.1:9`, { code: "KAFKA_UNAVAILABLE" });
const rejoining = () => kafkaError(new kafkajs.KafkaJSNonRetriableError("Consumer group was not initialized, consumer#run must be called first"), "commit offsets", ["127.0.0.1:9"]);

/** Fails each named operation the given number of times before letting it through to the real log. */
function flaky(log: EmbeddedTopicLog, failures: { consumer?: number; poll?: number; commit?: number }): { log: TopicLog; seen: string[] } {
  const left = { consumer: 0, poll: 0, commit: 0, ...failures };
  const seen: string[] = [];
  const wrapConsumer = (consumer: TopicConsumer): TopicConsumer =>
    new Proxy(consumer, {
      get(target, name, receiver) {
        if (name === "poll") {
          return async (...args: Parameters<TopicConsumer["poll"]>) => {
            if (left.poll-- > 0) throw unavailable("consume");
            return target.poll(...args);
          };
        }
        if (name === "commit") {
          return async (...args: Parameters<TopicConsumer["commit"]>) => {
            if (left.commit-- > 0) throw rejoining();
            return target.commit(...args);
          };
        }
        const value = Reflect.get(target, name, receiver) as unknown;
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  const proxy = new Proxy(log, {
    get(target, name, receiver) {
      if (name === "consumer") {
        return async (group: string, topics: readonly string[]) => {
          if (left.consumer-- > 0) throw unavailable("start consumer");
          return wrapConsumer(await target.consumer(group, topics));
        };
      }
      const value = Reflect.get(target, name, receiver) as unknown;
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { log: proxy, seen };
}

async function setup() {
  const log = EmbeddedTopicLog.open({ path: join(mkdtempSync(join(tmpdir(), "sluice-sink-outage-")), "log.db"), logger: silent });
  for (const name of TOPICS) await log.createTopic({ name, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  const records = Array.from({ length: 20 }, (_, i) => event(i % 2 === 0 ? "a" : "b", i + 1));
  await log.produce(records.map((e) => ({ topic: `pg.public.${e.schema.table}`, key: Buffer.from(String(e.key["id"])), value: Buffer.from(serializeEvent(e)), timestamp: e.source.commitTimeMs })));
  return log;
}

function runner(log: TopicLog, sink: Sink, topics: () => Promise<string[]>, metrics?: SluiceMetrics) {
  return new SinkRunner({
    sink,
    log,
    group: "t.sink.list",
    topics,
    decoder: jsonDecoder,
    batch: { maxRows: 5, maxBytes: 1 << 20, maxWaitMs: 20 },
    onError: "halt",
    deadLetterTopic: "t.dlq.list",
    retry: { initialMs: 5, maxMs: 20 },
    logger: silent,
    owner: "test",
    ...(metrics ? { metrics } : {}),
  });
}

test("an outage of the topic log (list topics, open consumer, poll, commit) is waited out: the sink says what it waits for, then applies everything", async () => {
  const embedded = await setup();
  const { log } = flaky(embedded, { consumer: 2, poll: 2, commit: 4 });
  let listFailures = 3;
  const sink = new ListSink();
  const r = runner(log, sink, async () => {
    if (listFailures-- > 0) throw unavailable("list topics");
    return TOPICS;
  });
  const stop = new AbortController();
  const running = r.run(stop.signal);
  const waiting = new Set<string>();
  let readyWhileWaiting = false;
  for (let i = 0; i < 2000 && !(sink.rows.size === 20 && r.ready()); i++) {
    const reason = r.waitingFor();
    if (reason !== null && reason !== "starting") {
      waiting.add(reason);
      if (r.ready()) readyWhileWaiting = true;
    }
    await new Promise((res) => setTimeout(res, 2));
  }
  stop.abort(new Error("stop"));
  await running;
  assert.equal(sink.rows.size, 20, "every record applied once the log answered");
  assert.ok([...waiting].some((w) => /unavailable during list topics/.test(w)), `waits for the topic list: ${[...waiting].join(" | ")}`);
  assert.ok([...waiting].some((w) => /unavailable during (start consumer|consume)/.test(w)), `waits for the consumer: ${[...waiting].join(" | ")}`);
  assert.ok([...waiting].some((w) => /rejoining its group/.test(w)), `waits for the consumer's group: ${[...waiting].join(" | ")}`);
  assert.equal(readyWhileWaiting, false, "not ready while it waits");
  const committed = new Map((await embedded.committedOffsets("t.sink.list")).map((o) => [o.topic, o.offset]));
  assert.deepEqual([committed.get("pg.public.a"), committed.get("pg.public.b")], [10n, 10n], "the group's offsets are committed once the consumer rejoined");
  await embedded.close();
});

test("a target that cannot be opened (its server unreachable at the start) is named in what the sink waits for, not \"starting\"", async () => {
  const embedded = await setup();
  const sink = new ListSink();
  let openFailures = 40;
  sink.open = async () => {
    if (openFailures-- > 0) throw new ConnectionError("ClickHouse unreachable: connect ECONNREFUSED 127.0.0.1:58999", { code: "SINK_UNAVAILABLE" });
  };
  const metrics = new SluiceMetrics({ processMetrics: false });
  const r = runner(embedded, sink, async () => TOPICS, metrics);
  const stop = new AbortController();
  const running = r.run(stop.signal);
  const waiting = new Set<string>();
  for (let i = 0; i < 2000 && !(sink.rows.size === 20 && r.ready()); i++) {
    if (openFailures > 0) waiting.add(String(r.waitingFor()));
    await new Promise((res) => setTimeout(res, 2));
  }
  stop.abort(new Error("stop"));
  await running;
  assert.equal(sink.rows.size, 20, "every record applied once the target opened");
  assert.ok([...waiting].some((w) => /its target does not accept writes: .*ClickHouse unreachable: connect ECONNREFUSED 127\.0\.0\.1:58999/.test(w)), `names the unreachable server: ${[...waiting].join(" | ")}`);
  // Each failed open is a retry of sluice_sink_retries_total{sink}, as a failed write is (no batch was ever written here).
  const retries = (await metrics.sinkRetries.get()).values.filter((v) => v.value > 0);
  assert.deepEqual(retries.map((v) => [v.labels, v.value]), [[{ sink: "list" }, 40]]);
  await embedded.close();
});

test("a permanent error from the topic log still ends the sink", async () => {
  const embedded = await setup();
  const r = runner(embedded, new ListSink(), async () => {
    throw new SluiceError("embedded topic log x is corrupt", { code: "TOPIC_LOG_CORRUPT" });
  });
  await assert.rejects(r.run(new AbortController().signal), /corrupt/);
  await embedded.close();
});

test("sluice_sink_failing_seconds grows while the target's writes fail, between the retries too, and is 0 once a write succeeds", async () => {
  const embedded = await setup();
  const sink = new ListSink();
  let down = true;
  let attempts = 0;
  const write = sink.write.bind(sink);
  sink.write = async (changes) => {
    attempts++;
    if (down) throw new ConnectionError("Elasticsearch unreachable: connect ECONNREFUSED 127.0.0.1:59999", { code: "SINK_UNAVAILABLE" });
    return write(changes);
  };
  const metrics = new SluiceMetrics({ processMetrics: false });
  const failing = async () => (await metrics.sinkFailing.get()).values.find((v) => v.labels.sink === "list")?.value;
  const r = runner(embedded, sink, async () => TOPICS, metrics);
  const stop = new AbortController();
  const running = r.run(stop.signal);
  const until = async (done: () => boolean | Promise<boolean>) => {
    for (let i = 0; i < 5_000 && !(await done()); i++) await new Promise((res) => setTimeout(res, 2));
  };
  await until(() => attempts >= 3);
  const first = (await failing()) ?? 0;
  assert.ok(first > 0, `failing while the writes fail: ${first}`);
  // Read again with no attempt in between: a target down for good at the backoff's ceiling is retried rarely, and still pages.
  const before = attempts;
  await new Promise((res) => setTimeout(res, 5));
  const second = (await failing()) ?? 0;
  assert.ok(second > first, `grows on this clock: ${first} then ${second} (${attempts - before} attempts between)`);
  down = false;
  await until(() => sink.rows.size === 20 && r.ready());
  assert.equal(sink.rows.size, 20);
  assert.equal(await failing(), 0, "0 once a write succeeded");
  stop.abort(new Error("stop"));
  await running;
  assert.equal(await failing(), 0, "0 once the sink stopped");
  await embedded.close();
});
