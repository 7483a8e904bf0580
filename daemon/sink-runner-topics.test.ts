/**
 * A sink learns of a topic created in its own process (capture's first record of a table) at
 * once, not at its next look at the topic list (issue 16: launch → first record). Here the sink
 * looks at the list only every 10 minutes, so a record applied within the test's wait came through
 * the topic log's notice.
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { Sink, SinkChange, SinkWriteResult } from "../connectors/contracts.ts";
import { EmbeddedTopicLog } from "../connectors/embedded/embedded-log.ts";
import type { TopicSpec } from "../connectors/topics/contract.ts";
import { serializeEvent } from "./event-json.ts";
import { SinkRunner } from "./sink-runner.ts";
import { event, runnerDefaults, silent } from "./sink-runner-test-support.ts";

const TEN_MINUTES = 600_000;

class ListSink implements Sink {
  readonly name = "list";
  readonly rows: string[] = [];
  async open(): Promise<void> {}
  async close(): Promise<void> {}
  async write(changes: readonly SinkChange[]): Promise<SinkWriteResult> {
    for (const { event: e } of changes) this.rows.push(`${e.schema.table}/${String(e.key["id"])}`);
    return { failures: [] };
  }
}

const spec = (name: string): TopicSpec => ({ name, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });

async function withSink(body: (log: EmbeddedTopicLog, sink: ListSink) => Promise<void>): Promise<void> {
  const log = EmbeddedTopicLog.open({ path: join(mkdtempSync(join(tmpdir(), "sluice-sink-topics-")), "log.db"), logger: silent });
  await log.createTopic(spec("t.dlq.list"));
  const sink = new ListSink();
  const runner = new SinkRunner({
    ...runnerDefaults,
    sink,
    log,
    group: "t.sink.list",
    topics: async () => (await log.topicNames()).filter((name) => name.startsWith("pg.public.")),
    topicRefreshMs: TEN_MINUTES,
    batch: { maxRows: 100, maxBytes: 1 << 20, maxWaitMs: 20 },
    deadLetterTopic: "t.dlq.list",
  });
  const stop = new AbortController();
  const running = runner.run(stop.signal);
  try {
    await until(() => runner.ready());
    await body(log, sink);
  } finally {
    stop.abort(new Error("stop"));
    await running;
    await log.close();
  }
}

/** Waits (up to a minute, far below the sink's 10-minute look at the topic list) for `done`. */
async function until(done: () => boolean): Promise<void> {
  for (let waited = 0; !done(); waited += 10) {
    if (waited > 60_000) assert.fail("not within a minute");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const produce = (log: EmbeddedTopicLog, table: string, id: number) => log.produce([{ topic: `pg.public.${table}`, key: Buffer.from(String(id)), value: Buffer.from(serializeEvent(event(table, id))), timestamp: 0 }]);

test("a sink with no topic yet reads the first one as soon as the topic log creates it in this process", async () => {
  await withSink(async (log, sink) => {
    await log.createTopic(spec("pg.public.a"));
    await produce(log, "a", 1);
    await until(() => sink.rows.includes("a/1"));
  });
});

test("a topic created while the sink reads others is read at once, not at the next look at the topic list", async () => {
  await withSink(async (log, sink) => {
    await log.createTopic(spec("pg.public.a"));
    await produce(log, "a", 1);
    await until(() => sink.rows.includes("a/1"));
    await log.createTopic(spec("pg.public.b"));
    await produce(log, "b", 2);
    await until(() => sink.rows.includes("b/2"));
    assert.deepEqual(sink.rows, ["a/1", "b/2"]);
  });
});
