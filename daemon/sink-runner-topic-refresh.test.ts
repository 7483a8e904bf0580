/**
 * The sink runtime looks for new topics (tables) every `topicRefreshMs`: with Kafka that is a
 * metadata request listing every topic of the cluster. It must neither run before every batch
 * once the first refresh is due nor hold up the batches while it is under way.
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mock, test } from "node:test";
import type { ChangeEvent, Sink, SinkChange, SinkWriteResult } from "../connectors/contracts.ts";
import { EmbeddedTopicLog } from "../connectors/embedded/embedded-log.ts";
import { serializeEvent } from "./event-json.ts";
import { SinkRunner } from "./sink-runner.ts";
import { event, runnerDefaults, silent } from "./sink-runner-test-support.ts";

const TOPIC = "pg.public.rows";

function encode(e: ChangeEvent) {
  return { topic: TOPIC, key: Buffer.from(String(e.key["id"])), value: Buffer.from(serializeEvent(e)), timestamp: e.source.commitTimeMs };
}

class CountingSink implements Sink {
  readonly name = "mem";
  readonly batches: number[] = [];
  async open(): Promise<void> {}
  async close(): Promise<void> {}
  async write(changes: readonly SinkChange[]): Promise<SinkWriteResult> {
    this.batches.push(changes.length);
    await new Promise((resolve) => setImmediate(resolve));
    return { failures: [] };
  }
}

async function until(done: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 6000 && !done(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
  assert.ok(done(), `timed out waiting for ${what}`);
}

async function openLog(): Promise<EmbeddedTopicLog> {
  const log = EmbeddedTopicLog.open({ path: join(mkdtempSync(join(tmpdir(), "sluice-sink-refresh-")), "log.db"), logger: silent });
  await log.createTopic({ name: TOPIC, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  return log;
}

test("once a refresh was due, the topic list is asked for once per refresh interval, not before every batch", async (t) => {
  // The clock jumps past the first refresh; real time then stays far below the next.
  let offsetMs = 0;
  const realNow = Date.now.bind(Date);
  mock.method(Date, "now", () => realNow() + offsetMs);
  t.after(() => mock.restoreAll());
  const log = await openLog();
  const sink = new CountingSink();
  let listings = 0;
  const runner = new SinkRunner({
    ...runnerDefaults,
    sink,
    log,
    group: "t.sink.refresh-count",
    topics: async () => {
      listings++;
      return [TOPIC];
    },
    topicRefreshMs: 2_000,
    batch: { maxRows: 100, maxBytes: 1 << 20, maxWaitMs: 20 },
    deadLetterTopic: "t.dlq.mem",
  });
  const stop = new AbortController();
  const running = runner.run(stop.signal);
  try {
    await log.produce([encode(event("rows", 0, 10n))]);
    await until(() => sink.batches.length === 1, "the first batch");
    offsetMs = 3_000;
    const before = listings;
    const batches = 20;
    for (let i = 1; i <= batches; i++) {
      await log.produce([encode(event("rows", i, BigInt(10 + i)))]);
      await until(() => sink.batches.length === 1 + i, `batch ${1 + i}`);
    }
    const during = listings - before;
    assert.ok(during >= 1, "the refresh that was due ran");
    assert.ok(during < batches / 2, `the topic list was asked for ${during} times during ${batches} batches`);
  } finally {
    stop.abort(new Error("stop"));
    await running;
    await log.close();
  }
});

test("a topic listing under way does not hold up the batches", async () => {
  const log = await openLog();
  const sink = new CountingSink();
  let listings = 0;
  let release!: () => void;
  const hanging = new Promise<void>((resolve) => (release = resolve));
  const runner = new SinkRunner({
    ...runnerDefaults,
    sink,
    log,
    group: "t.sink.refresh-hang",
    topics: async () => {
      // The first listing opens the consumer; the refreshes after it hang (a slow metadata request).
      if (listings++ > 0) await hanging;
      return [TOPIC];
    },
    topicRefreshMs: 50,
    batch: { maxRows: 100, maxBytes: 1 << 20, maxWaitMs: 20 },
    deadLetterTopic: "t.dlq.mem",
  });
  const stop = new AbortController();
  const running = runner.run(stop.signal);
  try {
    await until(() => listings >= 2, "a refresh to start");
    for (let i = 0; i < 3; i++) {
      await log.produce([encode(event("rows", i, BigInt(10 + i)))]);
      await until(() => sink.batches.length === 1 + i, `batch ${1 + i} while the listing hangs`);
    }
    assert.deepEqual(sink.batches, [1, 1, 1]);
  } finally {
    release();
    stop.abort(new Error("stop"));
    await running;
    await log.close();
  }
});
