import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { ChangeEvent, Checkpoint, ProducedRecord, Source, SourceBatch, TableSchema, TopicLog } from "../connectors/contracts.ts";
import { ConnectionError, SluiceError } from "../connectors/errors.ts";
import { keepEntries } from "../connectors/topics/checkpoint-codec.ts";
import { CapturePipeline } from "./capture.ts";
import type { ParkedChangeSealer } from "./capture.ts";
import type { ChangeEncoder } from "./capture.ts";
import { deserializeEvent } from "./event-json.ts";
import { createLogger } from "../runtime/logger.ts";
import { Writable } from "node:stream";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

const silent = createLogger("silent", new Writable({ write: (_c, _e, cb) => cb() }) as never);

function schema(table: string): TableSchema {
  return { source: "pg", database: "app", schema: "public", table, sourceKind: "postgres", columns: [{ name: "id", dbType: "bigint", nullable: false, primaryKeyIndex: 1 }], key: ["id"] };
}

function event(table: string, id: bigint, commit: bigint): ChangeEvent {
  const s = schema(table);
  return {
    op: "c",
    key: { id },
    before: null,
    after: { id },
    schema: s,
    source: { connector: "postgres", name: "pg", db: "app", schema: "public", table, position: { commit, change: commit }, txId: "1", commitTimeMs: 0, snapshot: false },
  };
}

/** A scripted source: hands out the given batches, then waits until stopped. Records what was acknowledged. */
class ScriptedSource implements Source {
  readonly name = "pg";
  readonly kind = "postgres" as const;
  readonly acked: bigint[] = [];
  readonly connects: (Checkpoint | null)[] = [];
  private queue: ChangeEvent[][];
  private readonly all: ChangeEvent[][];
  constructor(batches: ChangeEvent[][]) {
    this.all = batches;
    this.queue = [...batches];
  }
  async connect(from: Checkpoint | null): Promise<void> {
    this.connects.push(from);
    // Like a real source: resume after the checkpoint.
    this.queue = this.all.filter((b) => from === null || b.at(-1)!.source.position.commit > from.position.commit);
  }
  async read(signal: AbortSignal): Promise<SourceBatch> {
    const events = this.queue.shift();
    if (!events) {
      await new Promise((_resolve, reject) => signal.addEventListener("abort", () => reject(new Error("aborted")), { once: true }));
      throw new Error("unreachable");
    }
    const position = events.at(-1)!.source.position;
    return { events, checkpoint: { source: this.name, position }, ack: async () => void this.acked.push(position.commit) };
  }
  async close(): Promise<void> {}
}

class MemoryLog implements Partial<TopicLog> {
  readonly records: ProducedRecord[] = [];
  checkpoint: Checkpoint | null = null;
  failNext = 0;
  async produce(records: readonly ProducedRecord[], checkpoint?: Checkpoint): Promise<void> {
    if (this.failNext > 0) {
      this.failNext--;
      throw new ConnectionError("log unavailable", {});
    }
    this.records.push(...records);
    if (checkpoint) this.checkpoint = checkpoint;
  }
  async readCheckpoint(): Promise<Checkpoint | null> {
    return this.checkpoint;
  }
  async endOffsets(topic: string) {
    return [{ topic, partition: 0, offset: 0n }];
  }
}

const encoder: ChangeEncoder = {
  async encode(e) {
    if (e.schema.table === "bad") throw new SluiceError("column `price`: writer type double cannot be read as int", { code: "SCHEMA_INCOMPATIBLE" });
    return [{ topic: `pg.public.${e.schema.table}`, key: Buffer.from(String(e.key["id"])), value: Buffer.from("v"), timestamp: 0 }];
  },
};

async function runUntil(pipeline: CapturePipeline, done: () => boolean): Promise<void> {
  const stop = new AbortController();
  const running = pipeline.run(stop.signal);
  for (let i = 0; i < 500 && !done(); i++) await new Promise((r) => setTimeout(r, 2));
  stop.abort(new Error("stop"));
  await running;
}

test("each batch is stored with its checkpoint before the source is acknowledged", async () => {
  const source = new ScriptedSource([[event("a", 1n, 10n)], [event("a", 2n, 20n), event("a", 3n, 20n)]]);
  const log = new MemoryLog();
  const acksSeenByLog: number[] = [];
  const produce = log.produce.bind(log);
  log.produce = async (records, checkpoint) => {
    acksSeenByLog.push(source.acked.length);
    await produce(records, checkpoint);
  };
  const pipeline = new CapturePipeline({ source, log: log as unknown as TopicLog, encoder, logger: silent, parkingTopic: "t.parked", reconnect: { initialMs: 1, maxMs: 1 } });
  await runUntil(pipeline, () => source.acked.length === 2);
  assert.deepEqual(source.acked, [10n, 20n]);
  assert.deepEqual(acksSeenByLog, [0, 1], "a batch is produced before its own ack, never after");
  assert.equal(log.records.length, 3);
  assert.equal(log.checkpoint?.position.commit, 20n);
});

test("a failed write is not acknowledged; capture reconnects from the last durable checkpoint", async () => {
  const source = new ScriptedSource([[event("a", 1n, 10n)], [event("a", 2n, 20n)]]);
  const log = new MemoryLog();
  const pipeline = new CapturePipeline({ source, log: log as unknown as TopicLog, encoder, logger: silent, parkingTopic: "t.parked", reconnect: { initialMs: 1, maxMs: 1 } });
  log.failNext = 0;
  const original = log.produce.bind(log);
  let calls = 0;
  log.produce = async (records, checkpoint) => {
    calls++;
    if (calls === 2) throw new ConnectionError("disk hiccup", {});
    return original(records, checkpoint);
  };
  await runUntil(pipeline, () => source.acked.includes(20n));
  assert.deepEqual(source.acked, [10n, 20n]);
  assert.deepEqual(source.connects.map((c) => c?.position.commit ?? null), [null, 10n]);
  assert.deepEqual(log.records.map((r) => r.key!.toString()), ["1", "2"], "nothing lost, nothing doubled");
});

test("a store that keeps failing (the topic log's disk is full) waits longer before each reconnect, not ready and saying why, instead of reconnecting to the source at once", async () => {
  const source = new ScriptedSource([[event("a", 1n, 10n)], [event("a", 2n, 20n)]]);
  const log = new MemoryLog();
  const full = () => new SluiceError("embedded topic log /x/log.db: disk full during produce; nothing of it was stored", { code: "TOPIC_LOG_DISK_FULL", retriable: true });
  let produced = 0;
  log.produce = async () => {
    produced++;
    throw full();
  };
  const pipeline = new CapturePipeline({ source, log: log as unknown as TopicLog, encoder, logger: silent, parkingTopic: "t.parked", reconnect: { initialMs: 60_000, maxMs: 60_000 } });
  const stop = new AbortController();
  const running = pipeline.run(stop.signal);
  for (let i = 0; i < 500 && produced === 0; i++) await new Promise((r) => setTimeout(r, 2));
  // Time enough for many reconnects, had capture not waited.
  for (let i = 0; i < 50; i++) await new Promise((r) => setTimeout(r, 2));
  const connects = source.connects.length;
  const waiting = pipeline.waitingFor();
  const ready = pipeline.ready();
  stop.abort(new Error("stop"));
  await running;
  assert.equal(connects, 1, "no reconnect before the backoff's delay");
  assert.equal(ready, false);
  assert.match(waiting ?? "", /disk full during produce/);
  assert.deepEqual(source.acked, []);
});

test("an incompatible schema halts only its table; its events are parked, not lost, and the position advances", async () => {
  const source = new ScriptedSource([[event("a", 1n, 10n), event("bad", 7n, 10n)], [event("bad", 8n, 20n), event("a", 2n, 20n)]]);
  const log = new MemoryLog();
  const pipeline = new CapturePipeline({ source, log: log as unknown as TopicLog, encoder, logger: silent, parkingTopic: "t.parked", reconnect: { initialMs: 1, maxMs: 1 } });
  await runUntil(pipeline, () => source.acked.length === 2);
  assert.deepEqual(pipeline.haltedTables().map((h) => [h.table, h.code]), [["public.bad", "SCHEMA_INCOMPATIBLE"]]);
  assert.deepEqual(log.records.map((r) => r.topic), ["pg.public.a", "t.parked", "t.parked", "pg.public.a"]);
  const parked = deserializeEvent(log.records[2]!.value!.toString());
  assert.equal(parked.key["id"], 8n);
  assert.equal(log.checkpoint?.position.commit, 20n);
});

test("a change its source could not read whole (ChangeEvent.refusal) halts its table with the refusal, whatever its code, and is parked unencoded; the other table flows on", async () => {
  const refusal = { code: "MYSQL_VALUE_TOO_LARGE", message: "table public.big, column doc: too large to decompress", context: { table: "public.big", column: "doc", bytes: 123 } };
  const refused = { ...event("big", 5n, 10n), refusal };
  const source = new ScriptedSource([[event("a", 1n, 10n), refused, event("big", 6n, 10n), event("a", 2n, 10n)]]);
  const log = new MemoryLog();
  const encoded: string[] = [];
  const counting: ChangeEncoder = { encode: async (e) => (encoded.push(`${e.schema.table}:${String(e.key["id"])}`), encoder.encode(e)), encodeNow: (e) => void encoded.push(`now ${e.schema.table}:${String(e.key["id"])}`) };
  const pipeline = new CapturePipeline({ source, log: log as unknown as TopicLog, encoder: counting, logger: silent, parkingTopic: "t.parked", reconnect: { initialMs: 1, maxMs: 1 } });
  await runUntil(pipeline, () => source.acked.length === 1);
  assert.deepEqual(pipeline.haltedTables().map((h) => [h.table, h.code, h.column, h.bytes, h.error]), [["public.big", "MYSQL_VALUE_TOO_LARGE", "doc", 123, refusal.message]]);
  assert.ok(!encoded.some((e) => e.includes("big")), `encoded: ${encoded.join(", ")}`);
  assert.deepEqual(log.records.map((r) => r.topic), ["pg.public.a", "t.parked", "t.parked", "pg.public.a"]);
  assert.deepEqual(deserializeEvent(log.records[1]!.value!.toString()).refusal, refusal);
  assert.equal(log.checkpoint?.position.commit, 10n);
});

test("a permanent source error stops capture with that error", async () => {
  const source = new ScriptedSource([]);
  source.connect = async () => {
    throw new SluiceError("replication slot sluice_pg is missing: data would be lost", { code: "SLOT_MISSING" });
  };
  const pipeline = new CapturePipeline({ source, log: new MemoryLog() as unknown as TopicLog, encoder, logger: silent, parkingTopic: "t.parked", reconnect: { initialMs: 1, maxMs: 1 } });
  await assert.rejects(pipeline.run(new AbortController().signal), /data would be lost/);
});

test("parked events go back to their topics, in order and once, when their schema is accepted again", async () => {
  const { EmbeddedTopicLog } = await import("../connectors/embedded/embedded-log.ts");
  const { mkdtempSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const log = EmbeddedTopicLog.open({ path: join(mkdtempSync(join(tmpdir(), "sluice-park-")), "log.db"), logger: silent });
  for (const name of ["t.parked", "pg.public.a", "pg.public.bad"]) await log.createTopic({ name, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  const options = { log, logger: silent, parkingTopic: "t.parked", reconnect: { initialMs: 1, maxMs: 1 } };

  // Run 1: "bad" is incompatible, so its two events are parked.
  const first = new ScriptedSource([[event("bad", 1n, 10n), event("a", 2n, 10n)], [event("bad", 3n, 20n)]]);
  await runUntil(new CapturePipeline({ ...options, source: first, encoder }), () => first.acked.length === 2);

  // Run 2: the operator fixed the schema; the parked events are re-published before new ones.
  const accepting: ChangeEncoder = { encode: async (e) => [{ topic: `pg.public.${e.schema.table}`, key: Buffer.from(String(e.key["id"])), value: Buffer.from("v"), timestamp: 0 }] };
  const second = new ScriptedSource([[event("bad", 1n, 10n), event("a", 2n, 10n)], [event("bad", 3n, 20n)], [event("bad", 4n, 30n)]]);
  const pipeline = new CapturePipeline({ ...options, source: second, encoder: accepting });
  await runUntil(pipeline, () => second.acked.includes(30n));
  assert.deepEqual(pipeline.haltedTables(), []);

  // Run 3: nothing is re-published twice.
  const third = new ScriptedSource([[event("bad", 4n, 30n)], [event("a", 5n, 40n)]]);
  await runUntil(new CapturePipeline({ ...options, source: third, encoder: accepting }), () => third.acked.includes(40n));

  const consumer = await log.consumer("check", ["pg.public.bad"]);
  const records = await consumer.poll({ maxRecords: 100, maxBytes: 1 << 20, maxWaitMs: 200 });
  await consumer.close();
  assert.deepEqual(records.map((r) => Buffer.from(r.key!).toString()), ["1", "3", "4"], "parked 1 and 3, then live 4; each once");
  await log.close();
});

test("a record over maxRecordBytes halts its table with RECORD_TOO_LARGE, is parked in parts that fit, and is re-published whole once the limit allows it", async () => {
  const { EmbeddedTopicLog } = await import("../connectors/embedded/embedded-log.ts");
  const { mkdtempSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const log = EmbeddedTopicLog.open({ path: join(mkdtempSync(join(tmpdir(), "sluice-size-")), "log.db"), logger: silent });
  for (const name of ["t.parked", "pg.public.a", "pg.public.big"]) await log.createTopic({ name, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  const text = "x".repeat(5_000);
  const wide = (id: bigint, commit: bigint): ChangeEvent => ({ ...event("big", id, commit), after: { id, text } });
  const sized: ChangeEncoder = { encode: async (e) => [{ topic: `pg.public.${e.schema.table}`, key: Buffer.from(String(e.key["id"])), value: Buffer.from(String(e.after?.["text"] ?? "v")), timestamp: 0 }] };
  const options = { log, logger: silent, parkingTopic: "t.parked", reconnect: { initialMs: 1, maxMs: 1 }, encoder: sized };

  const first = new ScriptedSource([[wide(1n, 10n), event("a", 2n, 10n)]]);
  const halting = new CapturePipeline({ ...options, source: first, maxRecordBytes: 2_048 });
  await runUntil(halting, () => first.acked.length === 1);
  const [halt] = halting.haltedTables();
  assert.equal(halt?.code, "RECORD_TOO_LARGE");
  assert.equal(halt?.key, '{"id":"1"}');
  assert.match(halt?.error ?? "", /table public\.big: the change of the row with key \{"id":"1"\} is a 5\d{3}-byte topic record, over topics\.max_record_bytes \(2048\)/);
  // Where: the topic and the source position (commit 10 as a PostgreSQL LSN), in the message and the halt's context.
  assert.match(halt?.error ?? "", /\(topic pg\.public\.big, source position 0\/A\)/);
  const consumer = await log.consumer("parts", ["t.parked"]);
  const parts = await consumer.poll({ maxRecords: 100, maxBytes: 1 << 20, maxWaitMs: 200 });
  await consumer.close();
  const n = parts.length;
  assert.ok(n >= 3, `${n} parts`);
  assert.deepEqual(parts.map((r) => Buffer.from(r.headers!["sluice.part"]!).toString()), parts.map((_r, i) => `${i + 1}/${n}`));
  assert.ok(parts.every((r) => r.value!.length < 2_048));

  // With a larger limit the parked change goes to its topic, whole, before anything newer.
  const second = new ScriptedSource([[wide(1n, 10n), event("a", 2n, 10n)], [wide(3n, 20n)]]);
  const pipeline = new CapturePipeline({ ...options, source: second, maxRecordBytes: 16_384 });
  await runUntil(pipeline, () => second.acked.includes(20n));
  assert.deepEqual(pipeline.haltedTables(), []);
  const check = await log.consumer("check", ["pg.public.big"]);
  const records = await check.poll({ maxRecords: 100, maxBytes: 1 << 20, maxWaitMs: 200 });
  await check.close();
  assert.deepEqual(records.map((r) => [Buffer.from(r.key!).toString(), r.value!.length]), [["1", 5_000], ["3", 5_000]]);
  await log.close();
});

test("a release whose write meets a Kafka limit lowered while the table was halted halts the table over it, not the release", async () => {
  const { EmbeddedTopicLog } = await import("../connectors/embedded/embedded-log.ts");
  const { mkdtempSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const log = EmbeddedTopicLog.open({ path: join(mkdtempSync(join(tmpdir(), "sluice-release-limit-")), "log.db"), logger: silent });
  for (const name of ["t.parked", "pg.public.a", "pg.public.bad"]) await log.createTopic({ name, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  // As Kafka does: the topic's max.message.bytes lowered to 2048 (by an operator, while the table was halted) is learnt at
  // the refusal of a write over it, which fails as retriable with nothing of it stored (KafkaTopicLog.readRecordLimitsAgain).
  let known: number | undefined;
  const produce = log.produce.bind(log);
  log.produce = async (records, checkpoint) => {
    if (known === undefined && records.some((r) => r.topic === "pg.public.bad" && (r.value?.length ?? 0) > 2_048)) {
      known = 2_048;
      throw new SluiceError("Kafka refused a record batch as larger than a topic's record limit, lower than Sluice knew", { code: "KAFKA_TOPIC_LIMIT_LOWERED", retriable: true });
    }
    return produce(records, checkpoint);
  };
  log.maxRecordBytes = (topic) => (topic === "pg.public.bad" ? known : undefined);
  let accepting = false;
  const wide = (id: bigint, commit: bigint): ChangeEvent => ({ ...event("bad", id, commit), after: { id, text: "x".repeat(5_000) } });
  const encoder: ChangeEncoder = {
    encode: async (e) => {
      if (e.schema.table === "bad" && !accepting) throw new SluiceError("column `price`: writer type double cannot be read as int", { code: "SCHEMA_INCOMPATIBLE" });
      return [{ topic: `pg.public.${e.schema.table}`, key: Buffer.from(String(e.key["id"])), value: Buffer.from(String(e.after?.["text"] ?? "v")), timestamp: 0 }];
    },
  };
  const source = new ScriptedSource([[wide(1n, 10n), event("a", 2n, 10n)]]);
  const pipeline = new CapturePipeline({ source, log, encoder, logger: silent, parkingTopic: "t.parked", reconnect: { initialMs: 1, maxMs: 1 } });
  const stop = new AbortController();
  const running = pipeline.run(stop.signal);
  for (let i = 0; i < 500 && source.acked.length === 0; i++) await new Promise((r) => setTimeout(r, 2));
  assert.equal(pipeline.haltedTables()[0]?.code, "SCHEMA_INCOMPATIBLE");
  accepting = true;
  const report = await pipeline.release("public.bad", "retry", true, stop.signal);
  stop.abort(new Error("stop"));
  await running;
  const [halt] = pipeline.haltedTables();
  assert.equal(halt?.code, "RECORD_TOO_LARGE");
  assert.match(halt?.error ?? "", /over max\.message\.bytes of topic pg\.public\.bad \(2048; raise it/);
  assert.match(report.description, /it halted again/);
  await log.close();
});

test("transaction markers go to the transaction topic in the same write as the batch", async () => {
  const source = new ScriptedSource([[event("a", 1n, 10n), event("a", 2n, 10n)]]);
  const read = source.read.bind(source);
  source.read = async (signal) => {
    const batch = await read(signal);
    const position = { commit: 10n, change: 10n };
    return Object.assign(batch, {
      transactions: [
        { status: "BEGIN" as const, txId: "77", position, commitTimeMs: 5 },
        { status: "END" as const, txId: "77", position, commitTimeMs: 5, eventCount: 2, tableEventCounts: { "public.a": 2 } },
      ],
    });
  };
  const log = new MemoryLog();
  const pipeline = new CapturePipeline({ source, log: log as unknown as TopicLog, encoder, logger: silent, parkingTopic: "t.parked", transactionTopic: "t.pg.transaction", reconnect: { initialMs: 1, maxMs: 1 } });
  await runUntil(pipeline, () => source.acked.length === 1);
  const markers = log.records.filter((r) => r.topic === "t.pg.transaction").map((r) => JSON.parse(Buffer.from(r.value!).toString()) as Record<string, unknown>);
  assert.deepEqual(markers.map((m) => [m["status"], m["id"], m["event_count"]]), [["BEGIN", "77", null], ["END", "77", 2]]);
  assert.deepEqual(markers[1]!["data_collections"], [{ data_collection: "public.a", event_count: 2 }]);
});

test("a batch without changes reports its source's through time as the last acknowledged commit time, or now without one", async () => {
  const hourAgo = Date.now() - 3_600_000;
  const empty = (commit: bigint, throughTimeMs?: number): SourceBatch => ({
    events: [],
    checkpoint: { source: "pg", position: { commit, change: commit } },
    ...(throughTimeMs === undefined ? {} : { throughTimeMs }),
    ack: async () => undefined,
  });
  const batches = [empty(10n, hourAgo), empty(20n)];
  const source = new ScriptedSource([]);
  const log = new MemoryLog();
  /** lastAckedCommitTime() before anything, and as each batch is acknowledged. */
  const observed: (number | null)[] = [];
  const pipeline: CapturePipeline = new CapturePipeline({
    source,
    log: log as unknown as TopicLog,
    encoder,
    logger: silent,
    parkingTopic: "t.parked",
    reconnect: { initialMs: 1, maxMs: 1 },
    stats: { onBatch: () => observed.push(pipeline.lastAckedCommitTime()) },
  });
  observed.push(pipeline.lastAckedCommitTime());
  source.read = async (signal) => {
    const batch = batches.shift();
    if (batch !== undefined) return batch;
    return new Promise((_resolve, reject) => signal.addEventListener("abort", () => reject(new Error("aborted")), { once: true }));
  };
  const before = Date.now();
  await runUntil(pipeline, () => observed.length === 3);
  assert.equal(observed[0], null);
  assert.equal(observed[1], hourAgo, "behind: the time the source is complete through, an hour ago");
  assert.ok(observed[2]! >= before, "caught up, no time given: now");
});

/**
 * A log whose produce calls stay pending until the test settles them, one by one: it records
 * which calls were made and what each stored, as a topic log stores overlapping calls in order.
 */
class GatedLog extends MemoryLog {
  readonly calls: { commit: bigint | undefined; settle: (error?: Error) => void }[] = [];
  override async produce(records: readonly ProducedRecord[], checkpoint?: Checkpoint): Promise<void> {
    const store = super.produce.bind(this);
    await new Promise<void>((resolve, reject) => {
      this.calls.push({ commit: checkpoint?.position.commit, settle: (error) => (error ? reject(error) : resolve()) });
    });
    await store(records, checkpoint);
  }
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2_000 && !condition(); i++) await new Promise((r) => setTimeout(r, 2));
  assert.ok(condition(), `timed out waiting for ${what}`);
}

const settled = () => new Promise((r) => setTimeout(r, 20));

test("several batches are handed to the log before the first is durable; each is acknowledged only after it and every batch before it are durable, in order", async () => {
  const source = new ScriptedSource([[event("a", 1n, 10n)], [event("a", 2n, 20n)], [event("a", 3n, 30n)]]);
  const log = new GatedLog();
  const pipeline = new CapturePipeline({ source, log: log as unknown as TopicLog, encoder, logger: silent, parkingTopic: "t.parked", reconnect: { initialMs: 1, maxMs: 1 } });
  const stop = new AbortController();
  const running = pipeline.run(stop.signal);
  await until(() => log.calls.length === 2, "two batches handed over");
  assert.deepEqual(log.calls.map((c) => c.commit), [10n, 20n], "handed over in order, the second not waiting for the first to be durable");
  // Durable out of order (a log never does this, but capture must not rely on it): nothing is acknowledged past a batch not yet durable.
  log.calls[1]!.settle();
  await settled();
  assert.deepEqual(source.acked, [], "batch 2 is durable, batch 1 is not: nothing acknowledged");
  assert.equal(pipeline.checkpoint(), null);
  log.calls[0]!.settle();
  await until(() => log.calls.length === 3, "the third handed over");
  log.calls[2]!.settle();
  await until(() => source.acked.length === 3, "all acknowledged");
  assert.deepEqual(source.acked, [10n, 20n, 30n]);
  assert.equal(pipeline.checkpoint()?.position.commit, 30n);
  stop.abort(new Error("stop"));
  await running;
});

test("a failed store acknowledges no batch after it, even one the log stored; capture resumes from the last durable checkpoint", async () => {
  const source = new ScriptedSource([[event("a", 1n, 10n)], [event("a", 2n, 20n)], [event("a", 3n, 30n)]]);
  const log = new GatedLog();
  const pipeline = new CapturePipeline({ source, log: log as unknown as TopicLog, encoder, logger: silent, parkingTopic: "t.parked", reconnect: { initialMs: 1, maxMs: 1 } });
  const stop = new AbortController();
  const running = pipeline.run(stop.signal);
  await until(() => log.calls.length === 2, "two batches handed over");
  log.calls[0]!.settle();
  await until(() => source.acked.length === 1 && log.calls.length === 3, "batch 1 acknowledged, batch 3 handed over");
  log.calls[2]!.settle();
  log.calls[1]!.settle(new ConnectionError("broker gone", {}));
  await until(() => source.connects.length === 2, "reconnected");
  assert.deepEqual(source.acked, [10n], "batch 3 was stored but follows the failed batch 2: not acknowledged");
  stop.abort(new Error("stop"));
  await running;
});

test("at most two batches wait for durability; the source is read no further meanwhile", async () => {
  const source = new ScriptedSource(Array.from({ length: 10 }, (_, i) => [event("a", BigInt(i + 1), BigInt((i + 1) * 10))]));
  const log = new GatedLog();
  let reads = 0;
  const read = source.read.bind(source);
  source.read = (signal) => (reads++, read(signal));
  const pipeline = new CapturePipeline({ source, log: log as unknown as TopicLog, encoder, logger: silent, parkingTopic: "t.parked", reconnect: { initialMs: 1, maxMs: 1 } });
  const stop = new AbortController();
  const running = pipeline.run(stop.signal);
  await until(() => log.calls.length === 2, "two batches handed over");
  await settled();
  assert.equal(log.calls.length, 2, "no third batch handed over while two wait");
  assert.equal(reads, 3, "the third batch is read and encoded, then waits");
  log.calls[0]!.settle();
  await until(() => log.calls.length === 3, "a third handed over once the first is durable");
  for (let i = 1; i < 10; i++) {
    await until(() => log.calls.length > i, `batch ${i + 1} handed over`);
    log.calls[i]!.settle();
  }
  await until(() => source.acked.length === 10, "all acknowledged");
  assert.deepEqual(source.acked, Array.from({ length: 10 }, (_, i) => BigInt((i + 1) * 10)));
  stop.abort(new Error("stop"));
  await running;
});

test("a third batch waits for durability beside two only while the three fit within inFlightBytes (small batches of a backlog), never a fourth", async () => {
  // Each record costs ~130 bytes (recordBytes): a batch of one change fits three times within 1,000, one of ten does not beside two others.
  const batches = [1, 2, 3, 4, 5, 6].map((i) => [event("a", BigInt(i), BigInt(i * 10))]);
  batches.splice(4, 0, Array.from({ length: 10 }, (_, j) => event("a", BigInt(100 + j), 45n)));
  const source = new ScriptedSource(batches);
  const log = new GatedLog();
  let reads = 0;
  const read = source.read.bind(source);
  source.read = (signal) => (reads++, read(signal));
  const pipeline = new CapturePipeline({ source, log: log as unknown as TopicLog, encoder, logger: silent, parkingTopic: "t.parked", reconnect: { initialMs: 1, maxMs: 1 }, inFlightBytes: 1_000 });
  const stop = new AbortController();
  const running = pipeline.run(stop.signal);
  await until(() => log.calls.length === 3, "three small batches handed over");
  await settled();
  assert.equal(log.calls.length, 3, "no fourth batch handed over while three wait");
  assert.equal(reads, 4, "the fourth batch is read and encoded, then waits");
  log.calls[0]!.settle();
  await until(() => log.calls.length === 4, "the fourth handed over once the first is durable");
  log.calls[1]!.settle();
  await settled();
  assert.equal(log.calls.length, 4, "the batch of ten does not go in beside two: the three would be over inFlightBytes");
  log.calls[2]!.settle();
  await until(() => log.calls.length === 5, "the batch of ten handed over beside one");
  assert.equal(log.calls[4]!.commit, 45n);
  for (let i = 3; i < 7; i++) {
    await until(() => log.calls.length > i, `batch ${i + 1} handed over`);
    log.calls[i]!.settle();
  }
  await until(() => source.acked.length === 7, "all acknowledged");
  assert.deepEqual(source.acked, [10n, 20n, 30n, 40n, 45n, 50n, 60n], "in order");
  stop.abort(new Error("stop"));
  await running;
});

test("acknowledged batches are not kept: memory stays bounded over a long stream", async () => {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  const refs: WeakRef<object>[] = [];
  let next = 0;
  const source = new ScriptedSource([]);
  source.read = async () => {
    // Like a real source, reading yields to the event loop.
    await new Promise((r) => setImmediate(r));
    const commit = BigInt(++next * 10);
    const events = [event("a", BigInt(next), commit)];
    refs.push(new WeakRef(events));
    return { events, checkpoint: { source: "pg", position: { commit, change: commit } }, ack: async () => void source.acked.push(commit) };
  };
  const log = new MemoryLog();
  log.produce = async () => undefined;
  const pipeline = new CapturePipeline({ source, log: log as unknown as TopicLog, encoder, logger: silent, parkingTopic: "t.parked", reconnect: { initialMs: 1, maxMs: 1 } });
  const stop = new AbortController();
  const running = pipeline.run(stop.signal);
  await until(() => source.acked.length >= 300, "300 batches acknowledged");
  // Measured while capture runs: what a running pump keeps is what a daemon keeps for ever.
  gc();
  const kept = refs.filter((ref) => ref.deref() !== undefined).length;
  stop.abort(new Error("stop"));
  await running;
  assert.ok(kept <= 10, `${kept} of ${refs.length} batches still reachable after they were acknowledged`);
});

test("a batch's events are let go of once handed to the log, before it is durable; what the statistics need is kept", async () => {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  let handedOut: WeakRef<object> | undefined;
  const source = new ScriptedSource([]);
  let served = false;
  source.read = async (signal) => {
    if (!served) {
      served = true;
      const events = [event("a", 1n, 10n), event("a", 2n, 10n), { ...event("b", 3n, 20n), op: "u" as const }];
      handedOut = new WeakRef(events);
      return { events, checkpoint: { source: "pg", position: { commit: 20n, change: 20n } }, ack: async () => void source.acked.push(20n) };
    }
    return new Promise((_resolve, reject) => signal.addEventListener("abort", () => reject(new Error("aborted")), { once: true }));
  };
  const log = new GatedLog();
  const summaries: unknown[] = [];
  const pipeline = new CapturePipeline({
    source,
    log: log as unknown as TopicLog,
    encoder,
    logger: silent,
    parkingTopic: "t.parked",
    reconnect: { initialMs: 1, maxMs: 1 },
    stats: { onBatch: (batch) => summaries.push(batch) },
  });
  const stop = new AbortController();
  const running = pipeline.run(stop.signal);
  await until(() => log.calls.length === 1, "the batch handed over");
  await settled();
  gc();
  const alive = handedOut!.deref() !== undefined;
  log.calls[0]!.settle();
  await until(() => source.acked.length === 1, "the batch acknowledged");
  stop.abort(new Error("stop"));
  await running;
  assert.equal(alive, false, "the events were still reachable while their batch waited for durability");
  assert.deepEqual(summaries, [
    {
      counts: [
        { table: "public.a", op: "c", count: 2 },
        { table: "public.b", op: "u", count: 1 },
      ],
      commitTimesMs: [0],
      lastCommitMs: 0,
      latestCommitMs: 0,
    },
  ]);
  assert.equal(pipeline.lastAckedCommitTime(), 0);
});

test("a batch encoded again after an operator's release is not encoded while the next batch is: one batch's per-batch encoder state at a time (data checks' unique_in_batch, personal data's plan)", async () => {
  const { EmbeddedTopicLog } = await import("../connectors/embedded/embedded-log.ts");
  const { mkdtempSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const log = EmbeddedTopicLog.open({ path: join(mkdtempSync(join(tmpdir(), "sluice-reencode-")), "log.db"), logger: silent });
  for (const name of ["t.parked", "pg.public.a", "pg.public.bad"]) await log.createTopic({ name, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  const many = (commit: bigint) => Array.from({ length: 300 }, (_, i) => event("a", BigInt(i), commit));
  // "bad" halts in the first batch; the operator releases it while the second is encoded, so the second is encoded again
  // (under the lock) while the pump encodes the third.
  const source = new ScriptedSource([[event("bad", 1n, 10n)], many(20n), many(30n)]);
  const stop = new AbortController();
  let accepting = false;
  let batches = 0;
  let current: bigint | null = null;
  const mixed: string[] = [];
  let released: Promise<unknown> | undefined;
  const record = (e: ChangeEvent): ProducedRecord[] => [{ topic: `pg.public.${e.schema.table}`, key: Buffer.from(String(e.key["id"])), value: Buffer.from(String(e.source.position.commit)), timestamp: 0 }];
  const encodeChecked = (e: ChangeEvent): ProducedRecord[] => {
    // A change costs time to encode.
    const until = performance.now() + 1;
    while (performance.now() < until);
    const commit = e.source.position.commit;
    if (current === null) current = commit;
    else if (current !== commit) mixed.push(`${commit} while encoding ${current}`);
    return record(e);
  };
  const checking: ChangeEncoder = {
    async encode(e) {
      if (e.schema.table === "bad") {
        if (!accepting) throw new SluiceError("column `price`: writer type double cannot be read as int", { code: "SCHEMA_INCOMPATIBLE" });
        return record(e);
      }
      // Waits for something first, as personal data's seal on the workers or a key read does.
      await new Promise((resolve) => setImmediate(resolve));
      return encodeChecked(e);
    },
    // Every 20th change is not encoded at once: `encode` takes it.
    encodeNow: (e) => (e.schema.table === "bad" || (e.key["id"] as bigint) % 20n === 0n ? undefined : encodeChecked(e)),
    startBatch() {
      current = null;
      if (++batches === 2) {
        accepting = true;
        released = pipeline.release("public.bad", "retry", true, stop.signal);
      }
    },
  };
  const pipeline = new CapturePipeline({ source, log, encoder: checking, logger: silent, parkingTopic: "t.parked", reconnect: { initialMs: 1, maxMs: 1 } });
  const running = pipeline.run(stop.signal);
  for (let i = 0; i < 2_000 && !source.acked.includes(30n); i++) await new Promise((r) => setTimeout(r, 5));
  await released;
  stop.abort(new Error("stop"));
  await running;
  assert.deepEqual(source.acked, [10n, 20n, 30n]);
  assert.deepEqual(mixed.slice(0, 3), [], "no change of another batch is encoded between a batch's startBatch and its last change");
  const consumer = await log.consumer("check", ["pg.public.a"]);
  const records = await consumer.poll({ maxRecords: 1_000, maxBytes: 1 << 22, maxWaitMs: 200 });
  await consumer.close();
  assert.deepEqual(records.map((r) => Buffer.from(r.value!).toString()), [...Array<string>(300).fill("20"), ...Array<string>(300).fill("30")], "each batch once, in order");
  await log.close();
});

test("an operator's release re-publishes the parked changes while no batch is being encoded: the pump's batch does not share their per-batch encoder state (data checks' unique_in_batch)", async () => {
  const { EmbeddedTopicLog } = await import("../connectors/embedded/embedded-log.ts");
  const { mkdtempSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const log = EmbeddedTopicLog.open({ path: join(mkdtempSync(join(tmpdir(), "sluice-release-encode-")), "log.db"), logger: silent });
  for (const name of ["t.parked", "pg.public.a", "pg.public.bad"]) await log.createTopic({ name, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  // "bad" id 1 halts in the first batch and is parked; the operator releases it while the pump encodes the second batch,
  // which ends with a newer change of the same row.
  const source = new ScriptedSource([[event("bad", 1n, 10n)], [...Array.from({ length: 300 }, (_, i) => event("a", BigInt(i), 20n)), event("bad", 1n, 20n)]]);
  const stop = new AbortController();
  let accepting = false;
  let batches = 0;
  const seen = new Set<string>();
  const duplicates: string[] = [];
  let released: Promise<unknown> | undefined;
  const record = (e: ChangeEvent): ProducedRecord[] => [{ topic: `pg.public.${e.schema.table}`, key: Buffer.from(String(e.key["id"])), value: Buffer.from(String(e.source.position.commit)), timestamp: 0 }];
  const checking: ChangeEncoder = {
    async encode(e) {
      if (e.schema.table === "bad") {
        if (!accepting) throw new SluiceError("column `price`: writer type double cannot be read as int", { code: "SCHEMA_INCOMPATIBLE" });
        // unique_in_batch: a key twice since startBatch.
        const key = `${e.schema.table}:${String(e.key["id"])}`;
        if (seen.has(key)) duplicates.push(`${key} at commit ${e.source.position.commit}`);
        seen.add(key);
        return record(e);
      }
      await new Promise((resolve) => setImmediate(resolve));
      return record(e);
    },
    encodeNow: (e) => {
      if (e.schema.table === "bad" || (e.key["id"] as bigint) % 20n === 0n) return undefined;
      const until = performance.now() + 1;
      while (performance.now() < until);
      return record(e);
    },
    startBatch() {
      seen.clear();
      if (++batches === 2) {
        accepting = true;
        released = pipeline.release("public.bad", "retry", true, stop.signal);
      }
    },
  };
  const pipeline = new CapturePipeline({ source, log, encoder: checking, logger: silent, parkingTopic: "t.parked", reconnect: { initialMs: 1, maxMs: 1 } });
  const running = pipeline.run(stop.signal);
  for (let i = 0; i < 2_000 && !source.acked.includes(20n); i++) await new Promise((r) => setTimeout(r, 5));
  await released;
  stop.abort(new Error("stop"));
  await running;
  assert.deepEqual(source.acked, [10n, 20n]);
  assert.deepEqual(duplicates, [], "the parked change and the pump's batch were encoded as one batch");
  const consumer = await log.consumer("check", ["pg.public.bad"]);
  const records = await consumer.poll({ maxRecords: 1_000, maxBytes: 1 << 22, maxWaitMs: 200 });
  await consumer.close();
  assert.deepEqual(records.map((r) => Buffer.from(r.value!).toString()), ["10", "20"], "the parked change, then the newer one");
  await log.close();
});

test("the event loop gets turns while a source answers at once and the log stores synchronously (a full read-ahead into the embedded log)", async () => {
  const LAST = 20_000;
  let next = 0;
  const source = new ScriptedSource([]);
  source.read = async (signal) => {
    // A read-ahead that never runs dry until the end: every read answers in a microtask.
    if (next >= LAST) return new Promise((_resolve, reject) => signal.addEventListener("abort", () => reject(new Error("aborted")), { once: true }));
    const commit = BigInt(++next * 10);
    return { events: [event("a", BigInt(next), commit)], checkpoint: { source: "pg", position: { commit, change: commit } }, ack: async () => void source.acked.push(commit) };
  };
  const log = new MemoryLog();
  log.produce = async () => undefined;
  let readsWhenTimerRan = -1;
  setTimeout(() => (readsWhenTimerRan = next), 0);
  const pipeline = new CapturePipeline({ source, log: log as unknown as TopicLog, encoder, logger: silent, parkingTopic: "t.parked", reconnect: { initialMs: 1, maxMs: 1 } });
  const stop = new AbortController();
  const running = pipeline.run(stop.signal);
  await until(() => source.acked.length === LAST, "every batch acknowledged");
  stop.abort(new Error("stop"));
  await running;
  assert.ok(readsWhenTimerRan >= 0 && readsWhenTimerRan < LAST, `a timer due at once ran only after ${readsWhenTimerRan} of ${LAST} reads: /metrics, /healthz and heartbeats wait that long`);
});

/** A scripted source whose batches say whether more is already read (SourceBatch.more): a run of them ends at the first without. */
class SlicedSource extends ScriptedSource {
  reads = 0;
  private readonly runs: boolean[];
  constructor(batches: ChangeEvent[][], more: boolean[]) {
    super(batches);
    this.runs = more;
  }
  override async read(signal: AbortSignal): Promise<SourceBatch> {
    const index = this.reads++;
    const batch = await super.read(signal);
    return this.runs[index] === true ? { ...batch, more: true } : batch;
  }
}

describe("runs of small source batches (SourceBatch.more)", () => {
  test("a run is encoded as it is read and stored in one write with its last checkpoint; its batches are acknowledged in order only after it is durable; statistics see one batch", async () => {
    const source = new SlicedSource([[event("a", 1n, 10n)], [event("a", 2n, 20n), event("b", 3n, 20n)], [event("a", 4n, 30n)], [event("a", 5n, 40n)]], [true, true, false, false]);
    const log = new GatedLog();
    const batches: { counts: string[]; records: number }[] = [];
    const pipeline = new CapturePipeline({
      source,
      log: log as unknown as TopicLog,
      encoder,
      logger: silent,
      parkingTopic: "t.parked",
      reconnect: { initialMs: 1, maxMs: 1 },
      stats: { onBatch: (summary, records) => batches.push({ counts: summary.counts.map((c) => `${c.table} ${c.op} ${c.count}`), records }) },
    });
    const stop = new AbortController();
    const running = pipeline.run(stop.signal);
    await until(() => log.calls.length === 2, "two writes");
    assert.deepEqual(log.calls.map((c) => c.commit), [30n, 40n], "the run of three is one write with the run's last checkpoint; the batch after it another");
    await settled();
    assert.deepEqual(source.acked, [], "nothing acknowledged before the run is durable");
    log.calls[0]!.settle();
    await until(() => source.acked.length === 3, "the run acknowledged");
    assert.deepEqual(source.acked, [10n, 20n, 30n], "each batch of the run, in order");
    log.calls[1]!.settle();
    await until(() => source.acked.length === 4, "the last acknowledged");
    assert.deepEqual(batches, [
      { counts: ["public.a c 3", "public.b c 1"], records: 4 },
      { counts: ["public.a c 1"], records: 1 },
    ]);
    stop.abort(new Error("stop"));
    await running;
    assert.deepEqual(log.records.map((r) => r.key!.toString()), ["1", "2", "3", "4", "5"]);
  });

  test("a run's write stores the entries of every batch's checkpoint (Checkpoint.entries), as storing each checkpoint in turn would: each batch is acknowledged", async () => {
    // The relations' record of PostgreSQL (relation-layouts.ts): an acknowledged checkpoint's entries are taken as stored.
    const entries: (Record<string, string | null> | undefined)[] = [{ "r/a": "1", "r/gone": "old" }, { "r/b": "2", "r/gone": null, "r/a": "1'" }, undefined, { "r/c": "3" }];
    class EntriesSource extends SlicedSource {
      override async read(signal: AbortSignal): Promise<SourceBatch> {
        const index = this.reads;
        const batch = await super.read(signal);
        const written = entries[index];
        return written === undefined ? batch : { ...batch, checkpoint: { ...batch.checkpoint, entries: written } };
      }
    }
    const source = new EntriesSource([[event("a", 1n, 10n)], [event("a", 2n, 20n)], [event("a", 3n, 30n)], [event("a", 4n, 40n)]], [true, true, false, false]);
    const log = new MemoryLog();
    // The log keeps "r/gone" from before, and every entry a checkpoint writes until one deletes it (keepEntries).
    log.checkpoint = { source: "pg", position: { commit: 1n, change: 1n }, entries: { "r/gone": "old" } };
    const writes: (Checkpoint | null)[] = [];
    const produce = log.produce.bind(log);
    log.produce = async (records, checkpoint) => {
      await produce(records, checkpoint === undefined ? undefined : keepEntries(log.checkpoint, checkpoint));
      writes.push(log.checkpoint);
    };
    const pipeline = new CapturePipeline({ source, log: log as unknown as TopicLog, encoder, logger: silent, parkingTopic: "t.parked", reconnect: { initialMs: 1, maxMs: 1 } });
    await runUntil(pipeline, () => source.acked.length === 4);
    assert.deepEqual(source.acked, [10n, 20n, 30n, 40n]);
    assert.deepEqual(writes.map((w) => w?.position.commit), [30n, 40n], "the run of three in one write, then the last batch");
    assert.deepEqual(writes[0]!.entries, { "r/a": "1'", "r/b": "2" }, "the first batch's entries too, the second's over them");
    assert.deepEqual(writes[1]!.entries, { "r/a": "1'", "r/b": "2", "r/c": "3" });
  });

  test("a run is one batch to the encoder: startBatch once (data checks' unique_in_batch see the whole run), prepare once per source batch", async () => {
    const source = new SlicedSource([[event("a", 1n, 10n)], [event("a", 1n, 20n)], [event("a", 2n, 30n)]], [true, false, false]);
    const log = new MemoryLog();
    const calls: string[] = [];
    const seen = new Set<string>();
    const checking: ChangeEncoder = {
      async encode(e) {
        const key = String(e.key["id"]);
        calls.push(seen.has(key) ? `duplicate ${key}` : `encode ${key}`);
        seen.add(key);
        return encoder.encode(e);
      },
      startBatch() {
        seen.clear();
        calls.push("startBatch");
      },
      async prepare(events) {
        calls.push(`prepare ${events.length}`);
      },
    };
    const pipeline = new CapturePipeline({ source, log: log as unknown as TopicLog, encoder: checking, logger: silent, parkingTopic: "t.parked", reconnect: { initialMs: 1, maxMs: 1 } });
    await runUntil(pipeline, () => source.acked.length === 3);
    assert.deepEqual(calls, ["startBatch", "prepare 1", "encode 1", "prepare 1", "duplicate 1", "startBatch", "prepare 1", "encode 2"]);
  });

  test("a batch that halts a table ends the run; while a table is halted the batches are stored one by one", async () => {
    const source = new SlicedSource([[event("a", 1n, 10n)], [event("bad", 2n, 20n)], [event("a", 3n, 30n)], [event("a", 4n, 40n)]], [true, true, true, false]);
    const log = new MemoryLog();
    const writes: { commit: bigint | undefined; topics: string[] }[] = [];
    const produce = log.produce.bind(log);
    log.produce = async (records, checkpoint) => {
      writes.push({ commit: checkpoint?.position.commit, topics: records.map((r) => r.topic) });
      await produce(records, checkpoint);
    };
    const pipeline = new CapturePipeline({ source, log: log as unknown as TopicLog, encoder, logger: silent, parkingTopic: "t.parked", reconnect: { initialMs: 1, maxMs: 1 } });
    await runUntil(pipeline, () => source.acked.length === 4);
    assert.deepEqual(source.acked, [10n, 20n, 30n, 40n]);
    assert.deepEqual(writes, [
      { commit: 20n, topics: ["pg.public.a", "t.parked"] },
      { commit: 30n, topics: ["pg.public.a"] },
      { commit: 40n, topics: ["pg.public.a"] },
    ]);
    assert.deepEqual(pipeline.haltedTables().map((h) => h.table), ["public.bad"]);
  });

  test("a run whose last batch halted a table, released before the run is handed to the log, has that batch encoded again: its changes are published, not parked", async () => {
    // Two batches wait for durability, so the run waits for room before its hand-over; the release comes meanwhile.
    const source = new SlicedSource([[event("x", 1n, 10n)], [event("x", 2n, 20n)], [event("a", 3n, 30n)], [event("bad", 4n, 40n)], [event("a", 5n, 50n)]], [false, false, true, true, false]);
    const log = new GatedLog();
    let accepting = false;
    let released: Promise<unknown> | undefined;
    const stop = new AbortController();
    const accepts: ChangeEncoder = {
      async encode(e) {
        if (e.schema.table === "bad" && accepting) return [{ topic: "pg.public.bad", key: Buffer.from("4"), value: Buffer.from("v"), timestamp: 0 }];
        return encoder.encode(e);
      },
    };
    const pipeline: CapturePipeline = new CapturePipeline({
      source,
      log: log as unknown as TopicLog,
      encoder: accepts,
      logger: silent,
      parkingTopic: "t.parked",
      reconnect: { initialMs: 1, maxMs: 1 },
      // The operator fixes the cause and releases the table at once, while the run is being encoded.
      stats: {
        onHalt: (table) => {
          accepting = true;
          released = pipeline.release(table, "retry", true, stop.signal);
        },
      },
    });
    const running = pipeline.run(stop.signal);
    await until(() => log.calls.length === 2 && released !== undefined, "two batches in flight, the release asked for");
    await settled();
    log.calls[0]!.settle();
    log.calls[1]!.settle();
    await until(() => log.calls.length === 4, "the run and the batch after it handed over");
    assert.deepEqual(log.calls.map((c) => c.commit), [10n, 20n, 40n, 50n]);
    log.calls[2]!.settle();
    log.calls[3]!.settle();
    await until(() => source.acked.length === 5, "all acknowledged");
    await released;
    stop.abort(new Error("stop"));
    await running;
    assert.deepEqual(pipeline.haltedTables(), []);
    assert.deepEqual(log.records.map((r) => r.topic), ["pg.public.x", "pg.public.x", "pg.public.a", "pg.public.bad", "pg.public.a"], "the released table's change is in its topic, none in the parking topic");
  });

  test("a run cut short by stop is still stored and acknowledged", async () => {
    const source = new SlicedSource([[event("a", 1n, 10n)], [event("a", 2n, 20n)]], [true, true]);
    const log = new MemoryLog();
    const pipeline = new CapturePipeline({ source, log: log as unknown as TopicLog, encoder, logger: silent, parkingTopic: "t.parked", reconnect: { initialMs: 1, maxMs: 1 } });
    const stop = new AbortController();
    const running = pipeline.run(stop.signal);
    // The third read waits: the source said more, but nothing came before the stop.
    await until(() => source.reads === 3, "the run waits for its next batch");
    stop.abort(new Error("stop"));
    await running;
    assert.deepEqual(source.acked, [10n, 20n]);
    assert.equal(log.checkpoint?.position.commit, 20n);
  });

  test("a failed read inside a run stores nothing of it; capture resumes from the last durable checkpoint", async () => {
    const source = new SlicedSource([[event("a", 1n, 10n)], [event("a", 2n, 20n)], [event("a", 3n, 30n)]], [false, true, false]);
    const read = source.read.bind(source);
    let failed = false;
    source.read = async (signal) => {
      if (source.reads === 2 && !failed) {
        failed = true;
        source.reads++;
        throw new ConnectionError("connection reset", {});
      }
      return read(signal);
    };
    const log = new MemoryLog();
    const pipeline = new CapturePipeline({ source, log: log as unknown as TopicLog, encoder, logger: silent, parkingTopic: "t.parked", reconnect: { initialMs: 1, maxMs: 1 } });
    await runUntil(pipeline, () => source.acked.includes(30n));
    assert.deepEqual(source.connects.map((c) => c?.position.commit ?? null), [null, 10n]);
    assert.deepEqual(log.records.map((r) => r.key!.toString()), ["1", "2", "3"], "nothing lost, nothing doubled");
  });
});

test("a parked change goes to the parking topic as the sealer seals it (with its headers), and a release reads the key topic again before it opens the first one; a change parked without the sealer's headers (an earlier version) is opened as it is", async () => {
  const { EmbeddedTopicLog } = await import("../connectors/embedded/embedded-log.ts");
  const { mkdtempSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const log = EmbeddedTopicLog.open({ path: join(mkdtempSync(join(tmpdir(), "sluice-park-sealed-")), "log.db"), logger: silent });
  for (const name of ["t.parked", "pg.public.bad"]) await log.createTopic({ name, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  const options = { log, logger: silent, parkingTopic: "t.parked", reconnect: { initialMs: 1, maxMs: 1 } };
  const withSecret = (e: ChangeEvent): ChangeEvent => ({ ...e, after: { ...e.after!, secret: `clear-${String(e.key["id"])}` } });
  const calls: string[] = [];
  const sealer: ParkedChangeSealer = {
    async seal(e) {
      return { event: { ...e, after: { ...e.after!, secret: "sealed" } }, headers: { "sluice.personal.sealed": Buffer.from('["secret"]') } };
    },
    async open(e, headers) {
      calls.push(`open ${String(e.key["id"])} ${headers?.["sluice.personal.sealed"] === undefined ? "plain" : "sealed"}`);
      return headers?.["sluice.personal.sealed"] === undefined ? e : { ...e, after: { ...e.after!, secret: "opened" } };
    },
    async refresh() {
      calls.push("refresh");
    },
  };
  // Run 1, an earlier version (no sealer): change 1 parked as it was captured. Run 2: change 3 parked sealed.
  const first = new ScriptedSource([[withSecret(event("bad", 1n, 10n))]]);
  await runUntil(new CapturePipeline({ ...options, source: first, encoder }), () => first.acked.length === 1);
  const second = new ScriptedSource([[withSecret(event("bad", 3n, 20n))]]);
  await runUntil(new CapturePipeline({ ...options, source: second, encoder, parkedSealer: sealer }), () => second.acked.includes(20n));
  const parking = await log.consumer("parked", ["t.parked"]);
  const parked = (await parking.poll({ maxRecords: 100, maxBytes: 1 << 20, maxWaitMs: 200 })).filter((r) => r.value !== null);
  await parking.close();
  assert.deepEqual(
    parked.map((r) => [deserializeEvent(Buffer.from(r.value!).toString()).after!["secret"], r.headers?.["sluice.personal.sealed"] === undefined ? "-" : "sealed"]),
    [
      ["clear-1", "-"],
      ["sealed", "sealed"],
    ],
  );
  // Run 2's start tried to re-publish change 1 (refused again: the table halted on it).
  assert.deepEqual(calls, ["refresh", "open 1 plain"]);
  calls.length = 0;

  // Run 3: the schema accepted again: both are re-published, opened after one refresh.
  const published: unknown[] = [];
  const accepting: ChangeEncoder = {
    encode: async (e) => {
      published.push(e.after!["secret"]);
      return [{ topic: `pg.public.${e.schema.table}`, key: Buffer.from(String(e.key["id"])), value: Buffer.from("v"), timestamp: 0 }];
    },
  };
  const third = new ScriptedSource([[event("bad", 3n, 20n)], [event("bad", 4n, 30n)]]);
  await runUntil(new CapturePipeline({ ...options, source: third, encoder: accepting, parkedSealer: sealer }), () => third.acked.includes(30n));
  assert.deepEqual(calls, ["refresh", "open 1 plain", "open 3 sealed"]);
  assert.deepEqual(published.slice(0, 2), ["clear-1", "opened"]);
  await log.close();
});

test("a login refused after capture ran (a password rotated on the database) is waited out: not ready naming it, connect retried with backoff, resumed from the checkpoint once accepted; at the first connect it stops capture", async () => {
  const refused = () => new SluiceError("connecting: PostgreSQL at db:5432 (source pg) refused the login: password authentication failed for user \"sluice\"; check user, password and pg_hba.conf", { code: "PG_AUTH_FAILED", retriable: false });
  const first = new ScriptedSource([]);
  first.connect = async () => {
    throw refused();
  };
  await assert.rejects(new CapturePipeline({ source: first, log: new MemoryLog() as unknown as TopicLog, encoder, logger: silent, parkingTopic: "t.parked", reconnect: { initialMs: 1, maxMs: 1 } }).run(new AbortController().signal), /refused the login/);

  const source = new ScriptedSource([[event("a", 1n, 10n)], [event("a", 2n, 20n)]]);
  const log = new MemoryLog();
  const connect = source.connect.bind(source);
  let refusing = false;
  let refusals = 0;
  source.connect = async (from) => {
    if (refusing) {
      refusals++;
      throw refused();
    }
    return connect(from);
  };
  const read = source.read.bind(source);
  let reads = 0;
  source.read = async (signal) => {
    // The server restarted with the new password after the first batch: the stream ends, the reconnect is refused.
    if (++reads === 2) {
      refusing = true;
      throw new ConnectionError("the replication connection ended: terminating connection due to administrator command", {});
    }
    return read(signal);
  };
  const pipeline = new CapturePipeline({ source, log: log as unknown as TopicLog, encoder, logger: silent, parkingTopic: "t.parked", reconnect: { initialMs: 1, maxMs: 2 } });
  const stop = new AbortController();
  let outcome: unknown = "running";
  const running = pipeline.run(stop.signal).then(
    () => (outcome = "returned"),
    (error: unknown) => (outcome = error),
  );
  try {
    for (let i = 0; i < 1000 && refusals < 3 && outcome === "running"; i++) await new Promise((r) => setTimeout(r, 2));
    assert.equal(outcome, "running", "capture neither stops nor returns: the refusal is waited out");
    assert.ok(refusals >= 3, "the connect is tried again");
    assert.equal(pipeline.ready(), false);
    assert.match(pipeline.waitingFor() ?? "", /refused the login/);
    refusing = false;
    for (let i = 0; i < 1000 && !source.acked.includes(20n); i++) await new Promise((r) => setTimeout(r, 2));
    assert.deepEqual(source.acked, [10n, 20n]);
    assert.equal(source.connects.at(-1)?.position.commit, 10n, "resumed from the checkpoint");
    assert.deepEqual(log.records.map((r) => r.key!.toString()), ["1", "2"], "nothing lost, nothing doubled");
  } finally {
    stop.abort(new Error("stop"));
    await running;
  }
});

test("a login refused when the source opens its stream at a read once it connected (MySQL's binlog connection, PostgreSQL's stream after the initial snapshot) is waited out, not fatal", async () => {
  const refused = () => new SluiceError("MySQL at db:3306 (source my) refused the login: Access denied for user 'sluice'", { code: "MYSQL_AUTH_FAILED", retriable: false });
  const source = new ScriptedSource([[event("a", 1n, 10n)], [event("a", 2n, 20n)]]);
  const log = new MemoryLog();
  const read = source.read.bind(source);
  let reads = 0;
  let refusing = true;
  source.read = async (signal) => {
    reads++;
    // The first batch (a snapshot), the connection drops, then the stream's own connection is refused until the password is fixed.
    if (reads === 2) throw new ConnectionError("the connection ended", {});
    if (reads >= 3 && refusing) throw refused();
    return read(signal);
  };
  const pipeline = new CapturePipeline({ source, log: log as unknown as TopicLog, encoder, logger: silent, parkingTopic: "t.parked", reconnect: { initialMs: 1, maxMs: 2 } });
  const stop = new AbortController();
  let outcome: unknown = "running";
  const running = pipeline.run(stop.signal).then(
    () => (outcome = "returned"),
    (error: unknown) => (outcome = error),
  );
  try {
    for (let i = 0; i < 1000 && reads < 6 && outcome === "running"; i++) await new Promise((r) => setTimeout(r, 2));
    assert.equal(outcome, "running", "capture neither stops nor returns: the refusal is waited out");
    assert.match(pipeline.waitingFor() ?? "", /refused the login.*waiting for the server to accept/);
    refusing = false;
    for (let i = 0; i < 1000 && !source.acked.includes(20n); i++) await new Promise((r) => setTimeout(r, 2));
    assert.deepEqual(source.acked, [10n, 20n]);
    assert.deepEqual(log.records.map((r) => r.key!.toString()), ["1", "2"], "nothing lost, nothing doubled");
  } finally {
    stop.abort(new Error("stop"));
    await running;
  }
});

test("a source that connected in an earlier capture term of this process (the Kafka capture lease) has a login refused at a later term's first connect waited out", async () => {
  const refused = () => new SluiceError("PostgreSQL at db:5432 (source pg) refused the login: password authentication failed", { code: "PG_AUTH_FAILED", retriable: false });
  const connectedSources = new Set<string>();
  const firstTerm = new ScriptedSource([[event("a", 1n, 10n)]]);
  const log = new MemoryLog();
  const options = { log: log as unknown as TopicLog, encoder, logger: silent, parkingTopic: "t.parked", reconnect: { initialMs: 1, maxMs: 2 }, connectedSources };
  await runUntil(new CapturePipeline({ ...options, source: firstTerm }), () => firstTerm.acked.includes(10n));

  const source = new ScriptedSource([[event("a", 1n, 10n)], [event("a", 2n, 20n)]]);
  const connect = source.connect.bind(source);
  let refusals = 0;
  source.connect = async (from) => {
    if (refusals < 3) {
      refusals++;
      throw refused();
    }
    return connect(from);
  };
  const pipeline = new CapturePipeline({ ...options, source });
  const stop = new AbortController();
  let outcome: unknown = "running";
  const running = pipeline.run(stop.signal).then(
    () => (outcome = "returned"),
    (error: unknown) => (outcome = error),
  );
  try {
    for (let i = 0; i < 1000 && !source.acked.includes(20n) && outcome === "running"; i++) await new Promise((r) => setTimeout(r, 2));
    assert.equal(outcome, "running", "the later term waits the refusal out");
    assert.deepEqual(source.acked, [20n]);
    assert.equal(source.connects.at(-1)?.position.commit, 10n, "resumed from the checkpoint");
  } finally {
    stop.abort(new Error("stop"));
    await running;
  }
});

test("a capture term that took over from another process (it stood by under the capture lease) waits out a login refused at its first connect, though the source never connected in this process", async () => {
  const refused = () => new SluiceError("MySQL at db:3306 (source my) refused the login: Access denied for user 'sluice'", { code: "MYSQL_AUTH_FAILED", retriable: false });
  const log = new MemoryLog();
  const options = { log: log as unknown as TopicLog, encoder, logger: silent, parkingTopic: "t.parked", reconnect: { initialMs: 1, maxMs: 2 }, connectedSources: new Set<string>() };
  // The process's first start, capturing at once: a config error, told at once.
  const atStart = new ScriptedSource([[event("a", 1n, 10n)]]);
  atStart.connect = async () => {
    throw refused();
  };
  await assert.rejects(new CapturePipeline({ ...options, source: atStart }).run(new AbortController().signal), { code: "MYSQL_AUTH_FAILED" });

  const source = new ScriptedSource([[event("a", 1n, 10n)]]);
  const connect = source.connect.bind(source);
  let refusals = 0;
  source.connect = async (from) => {
    if (refusals < 3) {
      refusals++;
      throw refused();
    }
    return connect(from);
  };
  // The source captured before, in the process that led: its checkpoint is stored.
  log.checkpoint = { source: "pg", position: { commit: 5n, change: 5n } };
  const pipeline = new CapturePipeline({ ...options, source, takeover: true });
  const stop = new AbortController();
  let outcome: unknown = "running";
  const running = pipeline.run(stop.signal).then(
    () => (outcome = "returned"),
    (error: unknown) => (outcome = error),
  );
  try {
    for (let i = 0; i < 1000 && !source.acked.includes(10n) && outcome === "running"; i++) await new Promise((r) => setTimeout(r, 2));
    assert.equal(outcome, "running", "the takeover waits the refusal out");
    assert.equal(refusals, 3);
    assert.deepEqual(source.acked, [10n]);
  } finally {
    stop.abort(new Error("stop"));
    await running;
  }
});

test("a capture term that took over a source with no stored checkpoint (it never captured, in any process) takes a refused login for the config error it is: a wrong password fails fast with several replicas too", async () => {
  const log = new MemoryLog();
  const source = new ScriptedSource([[event("a", 1n, 10n)]]);
  let refusals = 0;
  source.connect = async () => {
    refusals++;
    throw new SluiceError("MySQL at db:3306 (source my) refused the login: Access denied for user 'sluice'", { code: "MYSQL_AUTH_FAILED", retriable: false });
  };
  const pipeline = new CapturePipeline({ log: log as unknown as TopicLog, encoder, logger: silent, parkingTopic: "t.parked", reconnect: { initialMs: 1, maxMs: 2 }, connectedSources: new Set<string>(), source, takeover: true });
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(new Error("the refusal was waited out")), 2000);
  try {
    await assert.rejects(pipeline.run(stop.signal), { code: "MYSQL_AUTH_FAILED" });
    assert.equal(refusals, 1);
  } finally {
    clearTimeout(timer);
  }
});
