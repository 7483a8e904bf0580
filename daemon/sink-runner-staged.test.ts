/**
 * The sink runtime with a sink's staged write (connectors/sinks/contract.ts StagedWrite): plain
 * batches are handed over change by change and written by the staged write; a change the sink
 * cannot stage, or a staged write that fails, makes the batch go through `write` as before, whole.
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { ChangeEvent, SinkChange, TopicPartitionOffset } from "../connectors/contracts.ts";
import { EmbeddedTopicLog } from "../connectors/embedded/embedded-log.ts";
import type { OffsetWriteResult, StagedWrite, StagingSink, StoredSinkOffset } from "../connectors/sinks/contract.ts";
import { CONTROL_TOPIC_HEADER } from "./control-records.ts";
import { SluiceMetrics } from "./metrics.ts";
import { serializeEvent } from "./event-json.ts";
import { SinkRunner } from "./sink-runner.ts";
import { event, runnerDefaults, silent } from "./sink-runner-test-support.ts";

function encode(e: ChangeEvent) {
  return { topic: `pg.public.${e.schema.table}`, key: Buffer.from(String(e.key["id"])), value: Buffer.from(serializeEvent(e)), timestamp: e.source.commitTimeMs };
}

function named(e: ChangeEvent, name: string): ChangeEvent {
  return { ...e, after: { ...e.after, name } };
}

/** Rows named "unstaged" cannot be staged; `failStaged` staged writes throw. */
class StagingMemorySink implements StagingSink {
  readonly name = "mem";
  readonly offsetsAtomic = false;
  readonly rows = new Map<string, string>();
  offsets: TopicPartitionOffset[] = [];
  /** Changes per call, by path. */
  readonly staged: number[] = [];
  readonly written: number[] = [];
  failStaged = 0;
  async open(): Promise<void> {}
  async close(): Promise<void> {}
  useTopicIds(): void {}
  async committedOffsets(): Promise<StoredSinkOffset[]> {
    return this.offsets.map((o) => ({ ...o, topicId: null }));
  }
  async storeOffsets(offsets: readonly TopicPartitionOffset[]): Promise<void> {
    this.offsets = [...offsets];
  }
  async write(changes: readonly SinkChange[], _signal: AbortSignal, offsets?: readonly TopicPartitionOffset[]): Promise<OffsetWriteResult> {
    for (const { event: e } of changes) {
      if (e.op === "t") for (const key of [...this.rows.keys()]) if (key.startsWith(`${e.schema.table}/`)) this.rows.delete(key);
      if (e.op !== "t") this.rows.set(`${e.schema.table}/${String(e.key["id"])}`, String(e.after?.["name"]));
    }
    this.written.push(changes.length);
    if (offsets) this.offsets = [...offsets];
    return { failures: [], offsetsStored: offsets !== undefined };
  }
  stagedWrite(): StagedWrite {
    const events: ChangeEvent[] = [];
    return {
      stage: (e) => {
        if (e.after?.["name"] === "unstaged") return false;
        events.push(e);
        return true;
      },
      write: async (_signal, offsets) => {
        if (this.failStaged > 0) {
          this.failStaged--;
          throw new Error("staged insert refused");
        }
        for (const e of events) this.rows.set(`${e.schema.table}/${String(e.key["id"])}`, String(e.after?.["name"]));
        this.staged.push(events.length);
        if (offsets) this.offsets = [...offsets];
        return offsets !== undefined;
      },
    };
  }
}

async function withRunner(sink: StagingMemorySink, body: (log: EmbeddedTopicLog, waitFor: (done: () => boolean) => Promise<void>, metrics: SluiceMetrics) => Promise<void>): Promise<void> {
  const log = EmbeddedTopicLog.open({ path: join(mkdtempSync(join(tmpdir(), "sluice-sink-staged-")), "log.db"), logger: silent });
  for (const name of ["pg.public.a", "pg.public.b", "t.sluice.control"]) await log.createTopic({ name, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  const metrics = new SluiceMetrics();
  const runner = new SinkRunner({
    ...runnerDefaults,
    sink,
    log,
    metrics,
    group: "t.sink.staged",
    topics: async () => ["pg.public.a", "pg.public.b", "t.sluice.control"],
    batch: { maxRows: 100, maxBytes: 1 << 20, maxWaitMs: 50 },
    deadLetterTopic: "t.dlq.mem",
  });
  const stop = new AbortController();
  const running = runner.run(stop.signal);
  const waitFor = async (done: () => boolean) => {
    for (let i = 0; i < 2000 && !done(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
  };
  try {
    await body(log, waitFor, metrics);
  } finally {
    stop.abort(new Error("stop"));
    await running;
    await log.close();
  }
}

async function appliedCount(metrics: SluiceMetrics): Promise<number> {
  return (await metrics.sinkApplied.get()).values.reduce((sum, v) => sum + v.value, 0);
}

test("a plain batch goes through the staged write, with its offsets and statistics; write is not called", async () => {
  const sink = new StagingMemorySink();
  await withRunner(sink, async (log, waitFor, metrics) => {
    await log.produce([encode(event("a", 1, 10n)), encode(event("b", 2, 11n)), encode(event("a", 3, 12n))]);
    await waitFor(() => sink.rows.size === 3 && sink.offsets.length === 2);
    assert.deepEqual(sink.staged, [3]);
    assert.deepEqual(sink.written, []);
    assert.deepEqual(
      sink.offsets.map((o) => `${o.topic}:${o.offset}`).sort(),
      ["pg.public.a:2", "pg.public.b:1"],
    );
    for (let i = 0; i < 2000 && (await appliedCount(metrics)) < 3; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(await appliedCount(metrics), 3);
  });
});

test("a change the sink cannot stage, or a staged write that fails, writes the whole batch through write", async () => {
  const sink = new StagingMemorySink();
  await withRunner(sink, async (log, waitFor, metrics) => {
    await log.produce([encode(event("a", 1, 10n)), encode(named(event("a", 2, 11n), "unstaged")), encode(event("b", 3, 12n))]);
    await waitFor(() => sink.rows.size === 3 && sink.offsets.length === 2);
    assert.deepEqual(sink.staged, []);
    assert.deepEqual(sink.written, [3], "the batch, whole, through write");
    assert.equal(sink.rows.get("a/2"), "unstaged");
    for (let i = 0; i < 2000 && (await appliedCount(metrics)) < 3; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(await appliedCount(metrics), 3, "counted once");
  });
  const failing = new StagingMemorySink();
  failing.failStaged = 1;
  await withRunner(failing, async (log, waitFor) => {
    await log.produce([encode(event("a", 1, 10n)), encode(event("b", 2, 11n))]);
    await waitFor(() => failing.rows.size === 2 && failing.offsets.length === 2);
    assert.deepEqual(failing.staged, []);
    assert.deepEqual(failing.written, [2]);
  });
});

test("after a batch fell back, the next batches go through write for a while, then staging resumes", async () => {
  const sink = new StagingMemorySink();
  await withRunner(sink, async (log, waitFor) => {
    await log.produce([encode(named(event("a", 1, 10n), "unstaged"))]);
    await waitFor(() => sink.written.length === 1);
    for (let i = 0; i < 9; i++) {
      await log.produce([encode(event("a", 100 + i, BigInt(100 + i)))]);
      await waitFor(() => sink.written.length + sink.staged.length === i + 2);
    }
    assert.deepEqual(sink.written, Array.from({ length: 9 }, () => 1), "the fallen-back batch and the 8 after it");
    assert.deepEqual(sink.staged, [1]);
    assert.equal(sink.rows.size, 10);
  });
});

test("a control record in a batch is held as by write, and the rest of the batch is staged", async () => {
  const sink = new StagingMemorySink();
  await withRunner(sink, async (log, waitFor) => {
    await log.produce([encode(event("b", 1, 10n)), encode(event("b", 2, 11n))]);
    await waitFor(() => sink.rows.size === 2);
    const truncate: ChangeEvent = { ...event("b", 0, 20n), op: "t", key: {}, after: null };
    const control = { topic: "t.sluice.control", key: Buffer.from("pg\u0000public.b\u0000truncate"), value: Buffer.from(serializeEvent(truncate)), headers: { [CONTROL_TOPIC_HEADER]: Buffer.from("pg.public.b") }, timestamp: 0 };
    await log.produce([control, encode(event("a", 5, 30n))]);
    await waitFor(() => sink.rows.has("a/5") && !sink.rows.has("b/1"));
    assert.deepEqual([...sink.rows.keys()].sort(), ["a/5"], "the truncate applied once its table was applied past it");
    assert.deepEqual(sink.staged, [2, 1], "both batches staged");
    assert.deepEqual(sink.written, [1], "only the due truncate goes through write");
  });
});
