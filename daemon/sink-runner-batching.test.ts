/**
 * How the sink runtime cuts batches on a quiet pipeline: what arrived together is applied together.
 * Kafka's consumer hands a fetch response over one partition at a time (kafkajs calls eachBatch per
 * partition, in microtasks of one turn of the event loop), so a poll that was waiting wakes with
 * the first partition alone; the rest of the same response must go into the same batch, not wait
 * for the first one's write (a source transaction spans the partitions: its last change would be
 * applied a whole batch later, and every extra batch costs the target's fixed per-batch work).
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { ChangeEvent, Sink, SinkChange, SinkWriteResult, StoredRecord } from "../connectors/contracts.ts";
import type { OffsetWriteResult, StoredSinkOffset, TransactionalSink } from "../connectors/sinks/contract.ts";
import { EmbeddedTopicLog } from "../connectors/embedded/embedded-log.ts";
import type { PollOptions, SeekTarget, TopicConsumer, TopicLog, TopicPartitionOffset } from "../connectors/topics/contract.ts";
import { deserializeEvent, serializeEvent } from "./event-json.ts";
import { SinkRunner } from "./sink-runner.ts";
import { event, runnerDefaults, silent } from "./sink-runner-test-support.ts";

function encode(e: ChangeEvent) {
  return { topic: `pg.public.${e.schema.table}`, key: Buffer.from(String(e.key["id"])), value: Buffer.from(serializeEvent(e)), timestamp: e.source.commitTimeMs };
}

/** Counts the batches it has applied. */
class CountingSink implements Sink {
  readonly name = "mem";
  readonly batches: number[] = [];
  readonly rows = new Set<string>();
  async open(): Promise<void> {}
  async close(): Promise<void> {}
  async write(changes: readonly SinkChange[], _signal?: AbortSignal, offsets?: readonly TopicPartitionOffset[]): Promise<SinkWriteResult> {
    // A target's write takes I/O: the event loop turns meanwhile, and timers due by then (a test's wait) run first.
    await new Promise((resolve) => setImmediate(resolve));
    // What the write applied shows all at once when it is done, as a target's transaction commits: a test that
    // sees a batch counted sees its rows and offsets too, however late the write's turn comes on a loaded machine.
    this.applied(changes, offsets);
    return { failures: [] };
  }
  protected applied(changes: readonly SinkChange[], _offsets?: readonly TopicPartitionOffset[]): void {
    this.batches.push(changes.length);
    for (const { event: e } of changes) this.rows.add(`${e.schema.table}/${String(e.key["id"])}`);
  }
}

/** Keeps its offsets with the data, as the DuckDB, ClickHouse and Elasticsearch sinks do. */
class OffsetKeepingSink extends CountingSink implements TransactionalSink {
  readonly offsetsAtomic = true;
  stored: TopicPartitionOffset[] = [];
  override async write(changes: readonly SinkChange[], signal?: AbortSignal, offsets?: readonly TopicPartitionOffset[]): Promise<OffsetWriteResult> {
    await super.write(changes, signal, offsets);
    return { failures: [], offsetsStored: offsets !== undefined };
  }
  protected override applied(changes: readonly SinkChange[], offsets?: readonly TopicPartitionOffset[]): void {
    super.applied(changes);
    if (offsets) this.stored = [...offsets];
  }
  async storeOffsets(offsets: readonly TopicPartitionOffset[]): Promise<void> {
    this.stored = [...offsets];
  }
  useTopicIds(): void {}
  async committedOffsets(): Promise<StoredSinkOffset[]> {
    return this.stored.map((o) => ({ ...o, topicId: null }));
  }
}

/** The group's commits wait until `open()`: a slow round trip to the topic log, made visible. */
class GatedConsumer implements TopicConsumer {
  private readonly inner: TopicConsumer;
  private readonly gate: Promise<void>;
  readonly open: () => void;
  commits = 0;

  constructor(inner: TopicConsumer) {
    this.inner = inner;
    let open!: () => void;
    this.gate = new Promise((resolve) => (open = resolve));
    this.open = open;
  }

  poll(options: PollOptions): Promise<StoredRecord[]> {
    return this.inner.poll(options);
  }

  async commit(offsets: readonly TopicPartitionOffset[]): Promise<void> {
    this.commits++;
    await this.gate;
    return this.inner.commit(offsets);
  }

  seek(topic: string, partition: number, target: SeekTarget): Promise<void> {
    return this.inner.seek(topic, partition, target);
  }

  position(topic: string, partition: number): bigint | null {
    return this.inner.position(topic, partition);
  }

  assignment() {
    return this.inner.assignment();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/**
 * A consumer that hands over what the log holds as kafkajs does: the records of one partition
 * wake a waiting poll, the other partitions' follow a few microtasks later in the same turn.
 */
class PiecewiseConsumer implements TopicConsumer {
  private readonly inner: TopicConsumer;
  private readonly delivered: StoredRecord[] = [];
  private readonly positions = new Map<string, bigint>();
  private arriving = false;

  constructor(inner: TopicConsumer) {
    this.inner = inner;
  }

  async poll(options: PollOptions): Promise<StoredRecord[]> {
    if (this.delivered.length === 0 && !this.arriving) {
      const read = await this.inner.poll({ ...options, maxRecords: 10_000 });
      const partitions = new Map<string, StoredRecord[]>();
      for (const record of read) {
        const key = `${record.topic}/${record.partition}`;
        partitions.set(key, [...(partitions.get(key) ?? []), record]);
      }
      const [first, ...rest] = [...partitions.values()];
      if (first) this.delivered.push(...first);
      if (rest.length > 0) {
        this.arriving = true;
        void Promise.resolve()
          .then(() => undefined)
          .then(() => {
            this.delivered.push(...rest.flat());
            this.arriving = false;
          });
      }
    }
    const out = this.delivered.splice(0, options.maxRecords);
    for (const record of out) this.positions.set(`${record.topic}/${record.partition}`, record.offset + 1n);
    return out;
  }

  commit(offsets: readonly TopicPartitionOffset[]): Promise<void> {
    return this.inner.commit(offsets);
  }

  seek(topic: string, partition: number, target: SeekTarget): Promise<void> {
    this.delivered.length = 0;
    return this.inner.seek(topic, partition, target);
  }

  position(topic: string, partition: number): bigint | null {
    return this.positions.get(`${topic}/${partition}`) ?? null;
  }

  assignment() {
    return this.inner.assignment();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** The embedded log, its consumers wrapped. */
function wrapped(log: EmbeddedTopicLog, wrap: (consumer: TopicConsumer) => TopicConsumer): TopicLog {
  return new Proxy(log as TopicLog, {
    get(target, property) {
      if (property === "consumer") return async (group: string, topics: readonly string[]) => wrap(await target.consumer(group, topics));
      const value = Reflect.get(target, property, target) as unknown;
      return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

test("records of several partitions that arrive together are applied in one batch, not one batch per partition", async () => {
  const log = EmbeddedTopicLog.open({ path: join(mkdtempSync(join(tmpdir(), "sluice-sink-batching-")), "log.db"), logger: silent });
  const topics = ["pg.public.rows", "pg.public.markers"];
  for (const name of topics) await log.createTopic({ name, partitions: 2, retentionMs: null, retentionBytes: null, compacted: false });
  const sink = new CountingSink();
  const runner = new SinkRunner({
    ...runnerDefaults,
    sink,
    log: wrapped(log, (consumer) => new PiecewiseConsumer(consumer)),
    group: "t.sink.batching",
    topics: async () => topics,
    batch: { maxRows: 100, maxBytes: 1 << 20, maxWaitMs: 50 },
    deadLetterTopic: "t.dlq.mem",
  });
  const stop = new AbortController();
  const running = runner.run(stop.signal);
  try {
    // One source transaction: rows in both partitions of one topic, its marker in another topic.
    const transaction = [
      ...Array.from({ length: 6 }, (_, i) => ({ ...encode(event("rows", i, BigInt(10 + i))), partition: i % 2 })),
      { ...encode(event("markers", 1, 16n)), partition: 0 },
    ];
    await log.produce(transaction);
    for (let i = 0; i < 2000 && sink.rows.size < transaction.length; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(sink.rows.size, transaction.length, "every change applied");
    assert.deepEqual(sink.batches, [transaction.length], "one batch for what arrived together");
  } finally {
    stop.abort(new Error("stop"));
    await running;
    await log.close();
  }
});

test("a sink whose target keeps its offsets applies the next batch while the group's commit of the last one is under way; the group's offsets end in order", async () => {
  const log = EmbeddedTopicLog.open({ path: join(mkdtempSync(join(tmpdir(), "sluice-sink-batching-")), "log.db"), logger: silent });
  const topic = "pg.public.rows";
  await log.createTopic({ name: topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  const sink = new OffsetKeepingSink();
  let consumer: GatedConsumer | undefined;
  const group = "t.sink.commits";
  const runner = new SinkRunner({
    ...runnerDefaults,
    sink,
    log: wrapped(log, (inner) => (consumer = new GatedConsumer(inner))),
    group,
    topics: async () => [topic],
    batch: { maxRows: 100, maxBytes: 1 << 20, maxWaitMs: 50 },
    deadLetterTopic: "t.dlq.mem",
  });
  const stop = new AbortController();
  const running = runner.run(stop.signal);
  const waitFor = async (done: () => boolean) => {
    for (let i = 0; i < 2000 && !done(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
  };
  try {
    await log.produce([encode(event("rows", 1, 10n))]);
    await waitFor(() => (consumer?.commits ?? 0) >= 1);
    assert.equal(consumer?.commits, 1, "the first batch's offsets go to the group");
    // Its commit hangs: the next changes are applied all the same.
    await log.produce([encode(event("rows", 2, 11n))]);
    await waitFor(() => sink.batches.length >= 2);
    await log.produce([encode(event("rows", 3, 12n))]);
    await waitFor(() => sink.batches.length >= 3);
    assert.deepEqual(sink.batches, [1, 1, 1], "the later batches were applied while the first commit was under way");
    assert.deepEqual(
      sink.stored.map((o) => o.offset),
      [3n],
      "the target holds the offsets of all three",
    );
    consumer!.open();
    let groupOffset: bigint | undefined;
    for (let i = 0; i < 2000 && groupOffset !== 3n; i++) {
      groupOffset = (await log.committedOffsets(group))[0]?.offset;
      if (groupOffset !== 3n) await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.equal(groupOffset, 3n, "the group's offset reaches the last batch's");
    assert.equal(consumer!.commits, 2, "the offsets stored while a commit was under way go to the group in one commit, not one per batch");
  } finally {
    consumer?.open();
    stop.abort(new Error("stop"));
    await running;
  }
  assert.deepEqual(
    (await log.committedOffsets(group)).map((o) => o.offset),
    [3n],
    "the group's offset is the last batch's, once its commits are done",
  );
  await log.close();
});

test("a big batch is decoded in slices: the sink's thread answers other work (a query, /metrics) before the whole batch is decoded", async () => {
  const log = EmbeddedTopicLog.open({ path: join(mkdtempSync(join(tmpdir(), "sluice-sink-batching-")), "log.db"), logger: silent });
  const topic = "pg.public.rows";
  await log.createTopic({ name: topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  const sink = new CountingSink();
  const total = 1_000;
  let decodes = 0;
  /** How many records were decoded when a task queued at the first decode ran. */
  let decodedWhenAnswered: number | undefined;
  const runner = new SinkRunner({
    sink,
    log,
    group: "t.sink.slices",
    topics: async () => [topic],
    decoder: {
      decode: async (r) => {
        if (decodes++ === 0) setImmediate(() => (decodedWhenAnswered = decodes));
        return r.value ? deserializeEvent(Buffer.from(r.value).toString()) : null;
      },
    },
    batch: { maxRows: total, maxBytes: 16 << 20, maxWaitMs: 50 },
    onError: "halt",
    deadLetterTopic: "t.dlq.mem",
    retry: { initialMs: 1, maxMs: 5 },
    logger: silent,
    owner: "test",
  });
  await log.produce(Array.from({ length: total }, (_, i) => encode(event("rows", i, BigInt(10 + i)))));
  const stop = new AbortController();
  const running = runner.run(stop.signal);
  try {
    for (let i = 0; i < 2000 && sink.rows.size < total; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.deepEqual(sink.batches, [total], "one batch");
    // Slices of 64 records: a read through the query endpoint waits for up to one slice per step.
    assert.ok(decodedWhenAnswered !== undefined && decodedWhenAnswered <= 64, `the task queued at the first decode ran after ${decodedWhenAnswered} of ${total} records were decoded`);
  } finally {
    stop.abort(new Error("stop"));
    await running;
    await log.close();
  }
});

/**
 * Hands over what the log holds with its partitions' records interleaved (as several fetched chunks
 * of a partition can be, between another's), each partition's position one past its last record, as
 * a Kafka transaction's commit marker leaves it.
 */
class InterleavingConsumer extends GatedConsumer {
  private readonly positions = new Map<string, bigint>();

  override async poll(options: PollOptions): Promise<StoredRecord[]> {
    const read = await super.poll(options);
    const interleaved = [...read].sort((a, b) => (a.offset === b.offset ? a.partition - b.partition : a.offset < b.offset ? -1 : 1));
    for (const record of interleaved) this.positions.set(`${record.topic}/${record.partition}`, record.offset + 2n);
    return interleaved;
  }

  override position(topic: string, partition: number): bigint | null {
    return this.positions.get(`${topic}/${partition}`) ?? null;
  }
}

test("a batch with its partitions' records interleaved stores each partition's position after its last record", async () => {
  const log = EmbeddedTopicLog.open({ path: join(mkdtempSync(join(tmpdir(), "sluice-sink-batching-")), "log.db"), logger: silent });
  const topic = "pg.public.rows";
  await log.createTopic({ name: topic, partitions: 2, retentionMs: null, retentionBytes: null, compacted: false });
  const sink = new OffsetKeepingSink();
  let consumer: InterleavingConsumer | undefined;
  const runner = new SinkRunner({
    ...runnerDefaults,
    sink,
    log: wrapped(log, (inner) => {
      consumer = new InterleavingConsumer(inner);
      consumer.open();
      return consumer;
    }),
    group: "t.sink.interleaved",
    topics: async () => [topic],
    batch: { maxRows: 100, maxBytes: 1 << 20, maxWaitMs: 50 },
    deadLetterTopic: "t.dlq.mem",
  });
  const stop = new AbortController();
  const running = runner.run(stop.signal);
  try {
    // The keys put 2 and 3 records in the partitions: handed over as 0/0 1/0 0/1 1/1 1/2.
    await log.produce(Array.from({ length: 5 }, (_, i) => encode(event("rows", i, BigInt(10 + i)))));
    const ends = (await log.partitionOffsets(topic)).map((p) => [p.partition, p.end]);
    assert.deepEqual(ends, [
      [0, 2n],
      [1, 3n],
    ]);
    for (let i = 0; i < 2000 && (sink.rows.size < 5 || sink.stored.length < 2); i++) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(sink.rows.size, 5, "every change applied");
    assert.deepEqual(sink.batches, [5], "in one batch");
    assert.deepEqual(
      [...sink.stored].sort((a, b) => a.partition - b.partition).map((o) => [o.partition, o.offset]),
      [
        [0, 3n],
        [1, 4n],
      ],
      "each partition's offset is its position after its last record, stored with the data",
    );
  } finally {
    stop.abort(new Error("stop"));
    await running;
    await log.close();
  }
});
