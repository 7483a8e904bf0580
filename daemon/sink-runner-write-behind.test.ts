/**
 * The sink runtime overlapping a staged write with reading and staging the next batch (sink-runner.ts
 * writeBehind): one write at a time, at most one batch staged ahead of it; the staged batch is written
 * only after the earlier one succeeded (a failed write is written again, retried, first); offsets are
 * stored in order and never past a batch not written; a halt in the earlier batch covers the staged
 * batch's records of that table; shutdown waits for the write under way and writes nothing after it.
 * The sink is a fake of our own logic whose staged writes wait for the test to let them finish.
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { ChangeEvent, SinkChange, SinkItemFailure, TopicPartitionOffset } from "../connectors/contracts.ts";
import { EmbeddedTopicLog } from "../connectors/embedded/embedded-log.ts";
import { SluiceError } from "../connectors/errors.ts";
import type { OffsetWriteResult, StagedWrite, StagingSink, StoredSinkOffset } from "../connectors/sinks/contract.ts";
import { CONTROL_TOPIC_HEADER } from "./control-records.ts";
import { serializeEvent } from "./event-json.ts";
import { LARGE_VALUE_BYTES } from "../runtime/large-values.ts";
import { SinkRunner } from "./sink-runner.ts";
import type { SinkRunnerOptions } from "./sink-runner.ts";
import { event, runnerDefaults, silent } from "./sink-runner-test-support.ts";

function encode(e: ChangeEvent) {
  return { topic: `pg.public.${e.schema.table}`, key: Buffer.from(String(e.key["id"])), value: Buffer.from(serializeEvent(e)), timestamp: e.source.commitTimeMs };
}

/** Row `id` of `table` as its topic's record at `offset` (carried in the row, for the sink's check of stored offsets). */
function row(table: string, id: number, offset: number, version: bigint, name?: string): ChangeEvent {
  const e = event(table, id, version);
  return { ...e, after: { ...e.after, ...(name === undefined ? {} : { name }), offset } };
}

function gate(): { promise: Promise<void>; open: () => void } {
  let open = () => {};
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/**
 * Staged writes wait for `release()` (one gate per write, in turn) and the first `failStaged` of
 * them throw a retriable error after it; `write` throws retriably `failWrites` times, and reports a
 * row named "poison" as a failure it cannot apply. Every change applied and every offset stored is
 * logged in order; an offset stored past a row not applied is a violation.
 */
class SlowStagingSink implements StagingSink {
  readonly name = "slow";
  readonly offsetsAtomic = false;
  readonly rows = new Map<string, string>();
  /** What happened, in order: "staged a/4" (handed to a staged write), "applied a/4", "offsets a:3", "write started", "write done". */
  readonly log: string[] = [];
  readonly violations: string[] = [];
  readonly stored = new Map<string, bigint>();
  failStaged = 0;
  failWrites = 0;
  #gates: { promise: Promise<void>; open: () => void }[] = [];
  #applied = new Set<string>();
  #writesStarted = 0;

  get writesStarted(): number {
    return this.#writesStarted;
  }

  /** Lets the oldest staged write waiting (or the next one to start) finish. */
  release(): void {
    this.#gateAt(this.#released++).open();
  }
  #released = 0;

  #gateAt(index: number) {
    while (this.#gates.length <= index) this.#gates.push(gate());
    return this.#gates[index]!;
  }

  async open(): Promise<void> {}
  async close(): Promise<void> {}
  useTopicIds(): void {}
  async committedOffsets(): Promise<StoredSinkOffset[]> {
    return [...this.stored].map(([key, offset]) => {
      const [topic, partition] = key.split(":");
      return { topic: topic!, partition: Number(partition), offset, topicId: null };
    });
  }
  async storeOffsets(offsets: readonly TopicPartitionOffset[]): Promise<void> {
    this.#store(offsets);
  }

  #apply(e: ChangeEvent): void {
    const row = `${e.schema.table}/${String(e.key["id"])}`;
    this.rows.set(row, String(e.after?.["name"]));
    this.#applied.add(`${e.schema.table}@${String(e.after?.["offset"])}`);
    this.log.push(`applied ${row}`);
  }

  #store(offsets: readonly TopicPartitionOffset[]): void {
    for (const o of offsets) {
      if (!o.topic.startsWith("pg.public.")) continue;
      const table = o.topic.slice("pg.public.".length);
      const before = this.stored.get(`${o.topic}:${o.partition}`) ?? 0n;
      if (o.offset < before) this.violations.push(`offsets of ${o.topic} moved back from ${before} to ${o.offset}`);
      // Every record below the stored offset must be applied.
      for (let offset = 0n; offset < o.offset; offset++) {
        if (!this.#applied.has(`${table}@${offset}`)) this.violations.push(`offset ${o.topic}:${o.offset} stored before the record at ${offset} was applied`);
      }
      this.stored.set(`${o.topic}:${o.partition}`, o.offset);
      this.log.push(`offsets ${table}:${o.offset}`);
    }
  }

  async write(changes: readonly SinkChange[], _signal: AbortSignal, offsets?: readonly TopicPartitionOffset[]): Promise<OffsetWriteResult> {
    if (this.failWrites > 0) {
      this.failWrites--;
      this.log.push("write refused");
      throw new SluiceError("target unreachable", { code: "TEST_UNREACHABLE", retriable: true });
    }
    const failures: SinkItemFailure[] = [];
    changes.forEach(({ event: e }, index) => {
      if (e.op === "t") this.log.push(`truncate ${e.schema.table}`);
      else if (e.after?.["name"] === "poison") failures.push({ index, error: new Error("row rejected"), retriable: false });
      else this.#apply(e);
    });
    if (offsets && failures.length === 0) this.#store(offsets);
    return { failures, offsetsStored: offsets !== undefined && failures.length === 0 };
  }

  stagedWrite(): StagedWrite {
    const events: ChangeEvent[] = [];
    return {
      stage: (e) => {
        events.push(e);
        this.log.push(`staged ${e.schema.table}/${String(e.key["id"])}`);
        return true;
      },
      write: async (_signal, offsets) => {
        const number = this.#writesStarted++;
        this.log.push("write started");
        await this.#gateAt(number).promise;
        if (this.failStaged > 0) {
          this.failStaged--;
          this.log.push("write failed");
          throw new SluiceError("staged insert refused", { code: "TEST_REFUSED", retriable: true });
        }
        for (const e of events) this.#apply(e);
        if (offsets) this.#store(offsets);
        this.log.push("write done");
        return offsets !== undefined;
      },
    };
  }
}

async function until(done: () => boolean, what: string, sink?: SlowStagingSink): Promise<void> {
  for (let i = 0; i < 2000 && !done(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
  assert.ok(done(), `timed out waiting for ${what}${sink ? `; the sink saw: ${sink.log.join(", ")}` : ""}`);
}

async function withRunner(
  sink: SlowStagingSink,
  body: (log: EmbeddedTopicLog, stop: AbortController, running: Promise<void>, runner: SinkRunner) => Promise<void>,
  maxWaitMs = 20,
  extra: Partial<SinkRunnerOptions> = {},
): Promise<void> {
  const log = EmbeddedTopicLog.open({ path: join(mkdtempSync(join(tmpdir(), "sluice-sink-behind-")), "log.db"), logger: silent });
  for (const name of ["pg.public.a", "pg.public.b", "t.sluice.control"]) await log.createTopic({ name, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  const runner = new SinkRunner({
    ...runnerDefaults,
    sink,
    log,
    group: "t.sink.behind",
    topics: async () => ["pg.public.a", "pg.public.b", "t.sluice.control"],
    batch: { maxRows: 100, maxBytes: 1 << 20, maxWaitMs },
    deadLetterTopic: "t.dlq.slow",
    ...extra,
  });
  const stop = new AbortController();
  const running = runner.run(stop.signal);
  try {
    await body(log, stop, running, runner);
  } finally {
    stop.abort(new Error("stop"));
    for (let i = 0; i < 20; i++) sink.release();
    await running;
    await log.close();
  }
}

test("the next batch is staged while a write is under way and written after it; a failed write is written again, retried, first", async () => {
  const sink = new SlowStagingSink();
  sink.failStaged = 1;
  sink.failWrites = 2;
  await withRunner(sink, async (log) => {
    await log.produce([encode(row("a", 1, 0, 10n)), encode(row("a", 2, 1, 11n)), encode(row("a", 3, 2, 12n))]);
    await until(() => sink.writesStarted === 1, "the first staged write");
    await log.produce([encode(row("a", 1, 3, 20n, "second")), encode(row("a", 4, 4, 21n))]);
    await until(() => sink.log.includes("staged a/4"), "the second batch staged ahead of the first's write");
    assert.equal(sink.writesStarted, 1, "one write at a time");
    assert.deepEqual([...sink.stored], [], "no offsets before the first write is done");
    sink.release();
    await until(() => sink.rows.get("a/1") === "second" && sink.rows.has("a/4") && sink.stored.get("pg.public.a:0") === 5n, "both batches applied", sink);
    assert.deepEqual(sink.violations, []);
    const applied = sink.log.filter((line) => line.startsWith("applied ") || line.startsWith("offsets ") || line === "write refused");
    assert.deepEqual(
      applied,
      ["write refused", "write refused", "applied a/1", "applied a/2", "applied a/3", "offsets a:3", "applied a/1", "applied a/4", "offsets a:5"],
      "the first batch (its staged write failed) written again through write after two refusals, then the second",
    );
  });
});

test("while writes succeed, batches are staged ahead and written in turn, offsets stored after each", async () => {
  const sink = new SlowStagingSink();
  await withRunner(sink, async (log) => {
    await log.produce([encode(row("a", 1, 0, 10n)), encode(row("b", 1, 0, 11n))]);
    await until(() => sink.writesStarted === 1, "the first staged write");
    await log.produce([encode(row("a", 2, 1, 20n)), encode(row("b", 2, 1, 21n))]);
    await until(() => sink.log.includes("staged b/2"), "the second batch staged ahead");
    assert.deepEqual(sink.log.filter((line) => line.startsWith("applied ")), [], "nothing applied before the first write finishes");
    sink.release();
    await until(() => sink.writesStarted === 2, "the second staged write");
    await until(() => sink.stored.get("pg.public.a:0") === 1n && sink.stored.get("pg.public.b:0") === 1n, "the first batch's offsets");
    assert.ok(!sink.rows.has("a/2"), "the second batch waits for its write");
    sink.release();
    await until(() => sink.stored.get("pg.public.a:0") === 2n && sink.stored.get("pg.public.b:0") === 2n, "the second batch's offsets");
    assert.deepEqual(sink.violations, []);
    const order = sink.log.filter((line) => line !== "write started");
    assert.ok(order.indexOf("write done") < order.indexOf("applied a/2"), "the second batch is applied after the first write is done");
  });
});

test("a table halted in the batch being written is halted for the batch staged ahead too: none of its later records are applied", async () => {
  const sink = new SlowStagingSink();
  sink.failStaged = 1;
  await withRunner(sink, async (log) => {
    await log.produce([encode(row("a", 1, 0, 10n)), encode(row("a", 2, 1, 11n, "poison")), encode(row("b", 1, 0, 12n))]);
    await until(() => sink.writesStarted === 1, "the first staged write");
    await log.produce([encode(row("a", 3, 2, 20n)), encode(row("b", 2, 1, 21n))]);
    await until(() => sink.log.includes("staged b/2"), "the second batch staged ahead");
    sink.release();
    await until(() => sink.rows.has("b/2") && sink.stored.get("pg.public.b:0") === 2n, "table b applied on");
    assert.ok(sink.rows.has("a/1"), "the row before the poison applied");
    assert.ok(!sink.rows.has("a/2") && !sink.rows.has("a/3"), "nothing of a from its poison row on");
    assert.equal(sink.stored.get("pg.public.a:0"), 1n, "a's offset stays at its poison row");
    assert.deepEqual(sink.violations, []);
  });
});

test("shutdown waits for the write under way and writes nothing after it", async () => {
  const sink = new SlowStagingSink();
  await withRunner(sink, async (log, stop, running) => {
    await log.produce([encode(row("a", 1, 0, 10n)), encode(row("a", 2, 1, 11n))]);
    await until(() => sink.writesStarted === 1, "the first staged write");
    await log.produce([encode(row("a", 3, 2, 20n))]);
    await until(() => sink.log.includes("staged a/3"), "the second batch staged ahead");
    stop.abort(new Error("stop"));
    let ended = false;
    void running.then(() => (ended = true));
    // Some turns for a runner that would not wait to end.
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(ended, false, "the runner waits for the write under way");
    sink.release();
    await running;
    assert.equal(sink.writesStarted, 1, "the staged-ahead batch is not written");
    assert.ok(!sink.rows.has("a/3"));
    assert.ok((sink.stored.get("pg.public.a:0") ?? 0n) <= 2n, "no offset past the written batch");
    assert.deepEqual(sink.violations, []);
  });
});

test("an operation between batches (sluice forget) runs after the write under way, with its offsets stored", async () => {
  const sink = new SlowStagingSink();
  await withRunner(sink, async (log, _stop, _running, runner) => {
    await log.produce([encode(row("a", 1, 0, 10n)), encode(row("a", 2, 1, 11n))]);
    await until(() => sink.writesStarted === 1, "the first staged write");
    const between = runner.betweenBatches(async () => {
      sink.log.push("between batches");
    });
    for (let i = 0; i < 10; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.ok(!sink.log.includes("between batches"), "not while the write is under way");
    sink.release();
    await between;
    const order = sink.log.filter((line) => line === "write done" || line === "between batches" || line.startsWith("offsets "));
    assert.deepEqual(order, ["offsets a:2", "write done", "between batches"], "the staged write stores its offsets with its rows");
    assert.deepEqual(sink.violations, []);
  });
});

test("a waiting truncate is applied once its table is written past it, not when a batch read ahead reaches it", async () => {
  const sink = new SlowStagingSink();
  await withRunner(
    sink,
    async (log) => {
      await log.produce([encode(row("b", 1, 0, 10n))]);
      await until(() => sink.writesStarted === 1, "the first staged write");
      // Read while the write is under way: not staged ahead (a control record); held once the write is done.
      const truncate: ChangeEvent = { ...event("b", 0, 20n), op: "t", key: {}, after: null };
      await log.produce([{ topic: "t.sluice.control", key: Buffer.from("pg\u0000public.b\u0000truncate"), value: Buffer.from(serializeEvent(truncate)), headers: { [CONTROL_TOPIC_HEADER]: Buffer.from("pg.public.b") }, timestamp: 0 }]);
      for (let i = 0; i < 40; i++) await new Promise((resolve) => setTimeout(resolve, 5));
      // Written before the truncate: the truncate waits until b is applied up to here.
      await log.produce([encode(row("b", 2, 1, 15n))]);
      sink.release();
      await until(() => sink.writesStarted === 2, "the write of b/2, staged ahead while the truncate waits");
      assert.ok(!sink.log.includes("truncate b"), "the truncate waits for b/2's write");
      sink.release();
      await until(() => sink.log.includes("truncate b"), "the truncate", sink);
      const order = sink.log.filter((line) => line.startsWith("applied b/") || line === "truncate b");
      assert.deepEqual(order, ["applied b/1", "applied b/2", "truncate b"]);
      assert.deepEqual(sink.violations, []);
    },
    500,
  );
});

test("a failed write settled by an operation between batches: the batch polled meanwhile is not written, no offset passes the failed one, the operation is refused", async () => {
  const sink = new SlowStagingSink();
  sink.failStaged = 1;
  // The first batch's staged write fails, and so does writing it again through write (not retriable).
  let refuseWrite = true;
  const write = sink.write.bind(sink);
  sink.write = async (changes, signal, offsets) => {
    if (refuseWrite) {
      refuseWrite = false;
      sink.log.push("write threw");
      throw new SluiceError("refused for good", { code: "TEST_PERMANENT", retriable: false });
    }
    return write(changes, signal, offsets);
  };
  let operationOutcome = "not settled";
  // The runner stops with the failure (not retriable), as it does when the loop writes the batch itself.
  const run = withRunner(sink, async (log, _stop, running, runner) => {
    running.catch(() => undefined);
    await log.produce([encode(row("a", 1, 0, 10n)), encode(row("a", 2, 1, 11n)), encode(row("a", 3, 2, 12n))]);
    await until(() => sink.writesStarted === 1, "the first staged write");
    // Queued on the runner's lock first (sluice forget, halted release, an automatic retry), while the loop polls the next batch.
    const operation = runner.betweenBatches(async () => void sink.log.push("operation ran"));
    await log.produce([encode(row("a", 4, 3, 20n)), encode(row("a", 5, 4, 21n))]);
    for (let i = 0; i < 40; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    sink.release();
    operationOutcome = await operation.then(
      () => "ran",
      (error: unknown) => `refused: ${String(error)}`,
    );
    for (let i = 0; i < 4; i++) sink.release();
    for (let i = 0; i < 60; i++) await new Promise((resolve) => setTimeout(resolve, 5));
  });
  await assert.rejects(run, /refused for good/);
  assert.deepEqual(sink.violations, [], `the sink saw: ${sink.log.join(", ")}`);
  assert.deepEqual([...sink.stored], [], "no offset stored past the unwritten batch");
  assert.ok(!sink.log.includes("applied a/4"), `the batch polled meanwhile is not written: ${sink.log.join(", ")}`);
  assert.match(operationOutcome, /^refused: .*refused for good/, "the operation does not run past a batch not written");
});

test("a large value written by a staged write is let go of (a collection) once its write is settled, not while the write holds it", async () => {
  const sink = new SlowStagingSink();
  const letGo: number[] = [];
  await withRunner(
    sink,
    async (log) => {
      await log.produce([encode(row("a", 1, 0, 10n, "x".repeat(LARGE_VALUE_BYTES)))]);
      await until(() => sink.writesStarted === 1, "the staged write");
      // Some turns of a runner that would let go of the batch while its write is under way.
      for (let i = 0; i < 20; i++) await new Promise((resolve) => setTimeout(resolve, 5));
      assert.deepEqual(letGo.filter((bytes) => bytes >= LARGE_VALUE_BYTES), [], "the write under way holds the batch");
      sink.release();
      await until(() => letGo.some((bytes) => bytes >= LARGE_VALUE_BYTES), "the batch let go of after its write", sink);
      assert.equal(sink.stored.get("pg.public.a:0"), 1n);
    },
    20,
    { onLetGo: (bytes) => letGo.push(bytes) },
  );
});
