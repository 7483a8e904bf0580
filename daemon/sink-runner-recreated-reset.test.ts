/**
 * A truncate or snapshot reset read from the control topic after its table's data topic was deleted and created again,
 * but before this sink noticed the new identity (topicIdCheckMs), is applied: its barrier is the new topic's end
 * offsets (snapshot-reset-gate.ts forgetTopics). Regression: it was dropped when the identity check fired, and the rows
 * it removes stayed in the sink for good.
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { ChangeEvent, SinkChange, TopicPartitionOffset } from "../connectors/contracts.ts";
import { EmbeddedTopicLog } from "../connectors/embedded/embedded-log.ts";
import type { OffsetWriteResult, StoredSinkOffset, TransactionalSink } from "../connectors/sinks/contract.ts";
import { CONTROL_TOPIC_HEADER } from "./control-records.ts";
import { serializeEvent } from "./event-json.ts";
import { SinkRunner } from "./sink-runner.ts";
import { event, runnerDefaults, silent } from "./sink-runner-test-support.ts";

/** Applies a truncate as the sinks do: removes the table's rows at or below its version. */
class TruncatingSink implements TransactionalSink {
  readonly name = "mem";
  readonly offsetsAtomic = true;
  readonly rows = new Map<number, ChangeEvent>();
  offsets: StoredSinkOffset[] = [];
  topicIds: ReadonlyMap<string, string> = new Map();
  truncates = 0;
  async open(): Promise<void> {}
  async close(): Promise<void> {}
  async write(changes: readonly SinkChange[], _signal: AbortSignal, offsets?: readonly TopicPartitionOffset[]): Promise<OffsetWriteResult> {
    for (const { event: e } of changes) {
      if (e.op !== "t") this.rows.set(Number(e.key["id"]), e);
      else {
        this.truncates++;
        for (const [id, row] of this.rows) if (row.source.position.change <= e.source.position.change) this.rows.delete(id);
      }
    }
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

const dataTopic = "pg.public.a";
const record = (e: ChangeEvent) => ({ topic: dataTopic, key: Buffer.from(String(e.key["id"])), value: Buffer.from(serializeEvent(e)), timestamp: 0 });

async function until(done: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2_000 && !done(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
  assert.ok(done(), `timed out waiting for ${what}`);
}

test("a truncate whose barrier was taken against the re-created data topic is applied after the sink notices the new identity", async () => {
  const log = EmbeddedTopicLog.open({ path: join(mkdtempSync(join(tmpdir(), "sluice-reset-recreated-")), "log.db"), logger: silent });
  for (const name of [dataTopic, "t.sluice.control", "t.dlq.mem"]) await log.createTopic({ name, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  for (const id of [1, 2, 3]) await log.produce([record(event("a", id))]);
  // The topic deleted and created again (stood in for by its identity and its end offset: the new topic holds 10
  // records this sink has not read yet).
  let recreated = false;
  const recreating = new Proxy(log, {
    get(target, prop) {
      if (prop === "topicIds") return async (topics: readonly string[]) => new Map([...(await log.topicIds(topics))].map(([t, id]) => [t, recreated && t === dataTopic ? "new-identity" : id]));
      if (prop === "partitionOffsets") return async (topic: string) => (await log.partitionOffsets(topic)).map((r) => (recreated && topic === dataTopic ? { ...r, end: 10n } : r));
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  const sink = new TruncatingSink();
  const runner = new SinkRunner({
    ...runnerDefaults,
    sink,
    log: recreating as never,
    group: "t.sink.mem",
    topics: async () => [dataTopic, "t.sluice.control"],
    batch: { maxRows: 100, maxBytes: 1 << 20, maxWaitMs: 20 },
    deadLetterTopic: "t.dlq.mem",
    topicIdCheckMs: 500,
  });
  const stop = new AbortController();
  const running = runner.run(stop.signal);
  try {
    await until(() => sink.rows.size === 3, "the first 3 rows");
    recreated = true;
    // A TRUNCATE made after the re-creation reaches the control topic before the sink's next identity check.
    const truncate = { ...event("a", 0, 20n), op: "t", key: {}, after: null } as ChangeEvent;
    await log.produce([{ topic: "t.sluice.control", key: Buffer.from("pg\u0000public.a\u0000truncate"), value: Buffer.from(serializeEvent(truncate)), headers: { [CONTROL_TOPIC_HEADER]: Buffer.from(dataTopic) }, timestamp: 0 }]);
    await until(() => sink.offsets.some((o) => o.topic === dataTopic && o.topicId === "new-identity"), "the new identity followed");
    for (let id = 4; id <= 12; id++) await log.produce([record(event("a", id, 100n + BigInt(id)))]);
    await until(() => sink.rows.has(12), "the new topic's rows");
    await until(() => sink.truncates > 0, "the truncate made after the re-creation applied");
  } finally {
    stop.abort(new Error("stop"));
    await running;
    await log.close();
  }
  assert.equal(sink.truncates, 1, "the truncate made after the re-creation is applied");
  assert.deepEqual([...sink.rows.keys()].filter((id) => id <= 3), [], "the rows it truncated are gone");
});
