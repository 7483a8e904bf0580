/**
 * The topic identities a running sink knows survive a reopen of its consumer (a new table's topic, a release, a
 * credentials wait) whose read of <deployment>.sluice.topic-ids lacks a topic's identity for a moment: the stored
 * offsets are not refused for it, and a topic created again later is still followed. Regression: the empty read
 * replaced the known identities, the sink refused with SINK_LOG_MISMATCH ('the log's topic is one without a recorded
 * identity') and, once the topic was created again, stayed refused instead of reading it from its first record.
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { ChangeEvent, SinkChange, TopicPartitionOffset } from "../connectors/contracts.ts";
import { EmbeddedTopicLog } from "../connectors/embedded/embedded-log.ts";
import type { OffsetWriteResult, StoredSinkOffset, TransactionalSink } from "../connectors/sinks/contract.ts";
import { serializeEvent } from "./event-json.ts";
import { SinkRunner } from "./sink-runner.ts";
import { event, runnerDefaults, silent } from "./sink-runner-test-support.ts";

/** Keeps what it applied in order, and offsets with the topic identities it was given, as the sinks do. */
class RecordingSink implements TransactionalSink {
  readonly name = "mem";
  readonly offsetsAtomic = true;
  readonly applied: string[] = [];
  offsets: StoredSinkOffset[] = [];
  private topicIds: ReadonlyMap<string, string> = new Map();
  async open(): Promise<void> {}
  async close(): Promise<void> {}
  async write(changes: readonly SinkChange[], _signal: AbortSignal, offsets?: readonly TopicPartitionOffset[]): Promise<OffsetWriteResult> {
    for (const { event: e } of changes) this.applied.push(`${e.schema.table}/${String(e.key["id"])}`);
    if (offsets) await this.storeOffsets(offsets);
    return { failures: [], offsetsStored: Boolean(offsets) };
  }
  async storeOffsets(offsets: readonly TopicPartitionOffset[]): Promise<void> {
    const stored = new Map(this.offsets.map((o) => [`${o.topic}/${o.partition}`, o]));
    for (const o of offsets) stored.set(`${o.topic}/${o.partition}`, { ...o, topicId: this.topicIds.get(o.topic) ?? null });
    this.offsets = [...stored.values()];
  }
  useTopicIds(ids: ReadonlyMap<string, string>): void {
    this.topicIds = ids;
  }
  async committedOffsets(): Promise<StoredSinkOffset[]> {
    return this.offsets;
  }
}

const record = (e: ChangeEvent) => ({ topic: `pg.public.${e.schema.table}`, key: Buffer.from(String(e.key["id"])), value: Buffer.from(serializeEvent(e)), timestamp: 0 });

async function until(done: () => boolean, what: string, runner: SinkRunner): Promise<void> {
  for (let i = 0; i < 1_000 && !done(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
  assert.ok(done(), `timed out waiting for ${what}; the sink waits for: ${runner.waitingFor() ?? "nothing"}`);
}

test("a consumer reopened while the topic identities read empty keeps those it knew: no refusal, and a topic created again later is followed", async () => {
  const log = EmbeddedTopicLog.open({ path: join(mkdtempSync(join(tmpdir(), "sluice-reopen-ids-")), "log.db"), logger: silent });
  for (const name of ["pg.public.a", "pg.public.b", "t.dlq.mem"]) await log.createTopic({ name, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  await log.produce([1, 2, 3].map((id) => record(event("a", id))));
  let identities: "as stored" | "none" | "a created again" = "as stored";
  let topics = ["pg.public.a"];
  const reading = new Proxy(log, {
    get(target, prop) {
      if (prop === "topicIds") {
        return async (names: readonly string[]) => {
          if (identities === "none") return new Map<string, string>();
          return new Map([...(await log.topicIds(names))].map(([t, id]) => [t, identities === "a created again" && t === "pg.public.a" ? "new-identity" : id]));
        };
      }
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  const sink = new RecordingSink();
  const runner = new SinkRunner({ ...runnerDefaults, sink, log: reading as never, group: "t.sink.mem", topics: async () => topics, topicRefreshMs: 20, batch: { maxRows: 100, maxBytes: 1 << 20, maxWaitMs: 20 }, deadLetterTopic: "t.dlq.mem", topicIdCheckMs: 20 });
  const stop = new AbortController();
  const running = runner.run(stop.signal);
  try {
    await until(() => sink.applied.length === 3, "the first rows", runner);
    identities = "none";
    // A new table's topic: the consumer is opened again, and reads no identity.
    topics = ["pg.public.a", "pg.public.b"];
    await log.produce([record(event("b", 1))]);
    await until(() => sink.applied.includes("b/1"), "the new table's row", runner);
    identities = "a created again";
    await until(() => sink.applied.filter((k) => k.startsWith("a/")).length === 6, "pg.public.a read again from its first record", runner);
  } finally {
    stop.abort(new Error("stop"));
    await running;
    await log.close();
  }
  assert.equal(sink.offsets.find((o) => o.topic === "pg.public.a")?.topicId, "new-identity");
});
