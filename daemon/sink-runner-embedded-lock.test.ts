/**
 * The embedded log is one SQLite file written by the capture thread and by every sink thread
 * (offsets, leases), each with a connection of its own. A large write from capture (here ~100 MB
 * of records, and one transaction held longer than SQLite's busy timeout, as on a slow disk) must
 * not fail a sink reading and committing at the same time with "database is locked": the sink
 * waits for the lock and goes on (issue 12, item 4).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import type { Sink, SinkChange, SinkWriteResult } from "../connectors/contracts.ts";
import { EmbeddedTopicLog } from "../connectors/embedded/embedded-log.ts";
import { deserializeEvent } from "./event-json.ts";
import { createLogger } from "../runtime/logger.ts";
import { SinkRunner } from "./sink-runner.ts";

const silent = createLogger("silent", new Writable({ write: (_c, _e, cb) => cb() }) as never);
const TOPIC = "pg.public.big";
const BIG_RECORDS = 4;
const BIG_BYTES = 25 * 2 ** 20;
/** Longer than the embedded log's busy timeout (5 s). */
const HOLD_MS = 7_000;

/** The capture side, in a thread of its own like the daemon's: holds the write lock (slow disk), then writes large records. */
const CAPTURE = `
const { parentPort, workerData } = require("node:worker_threads");
const { Writable } = require("node:stream");
(async () => {
  const { EmbeddedTopicLog } = await import(workerData.logModule);
  const { createLogger } = await import(workerData.loggerModule);
  const { serializeEvent } = await import(workerData.eventModule);
  const log = EmbeddedTopicLog.open({ path: workerData.path, logger: createLogger("silent", new Writable({ write: (_c, _e, cb) => cb() })), maintenanceIntervalMs: 0 });
  const event = (id, text) => ({
    op: "c", key: { id }, before: null, after: { id, text },
    schema: { source: "pg", database: "app", schema: "public", table: "big", sourceKind: "postgres", columns: [], key: ["id"] },
    source: { connector: "postgres", name: "pg", db: "app", schema: "public", table: "big", position: { commit: BigInt(id), change: BigInt(id) }, txId: null, commitTimeMs: 1700000000000 + id, snapshot: false },
  });
  const record = (e) => ({ topic: workerData.topic, key: Buffer.from(String(e.key.id)), value: Buffer.from(serializeEvent(e)), timestamp: e.source.commitTimeMs });
  log.write("slow disk", () => {
    parentPort.postMessage("locked");
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, workerData.holdMs);
  });
  let id = 100;
  for (let round = 0; round < workerData.bigRecords / 2; round++) {
    const big = [event(id++, "x".repeat(workerData.bigBytes)), event(id++, "y".repeat(workerData.bigBytes))];
    await log.produce(big.map(record));
    await log.produce([record(event(id++, "small"))]);
  }
  await log.close();
  parentPort.postMessage("done");
})().catch((error) => parentPort.postMessage("failed: " + (error && error.stack || error)));
`;

class SizeSink implements Sink {
  readonly name = "sizes";
  readonly rows = new Map<number, number>();
  async open(): Promise<void> {}
  async close(): Promise<void> {}
  async write(changes: readonly SinkChange[]): Promise<SinkWriteResult> {
    for (const { event } of changes) this.rows.set(Number(event.key["id"]), String(event.after?.["text"] ?? "").length);
    return { failures: [] };
  }
}

test("a sink reads and commits while capture holds the embedded log's write lock past the busy timeout and writes ~100 MB: no 'database is locked' failure", { timeout: 120_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-embedded-lock-"));
  t.after(() => rmSync(dir, { recursive: true, force: true })); // ~100 MB a run
  const path = join(dir, "log.db");
  const log = EmbeddedTopicLog.open({ path, logger: silent, maintenanceIntervalMs: 0 });
  await log.createTopic({ name: TOPIC, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  const module = (file: string) => new URL(file, import.meta.url).href;
  const capture = new Worker(CAPTURE, {
    eval: true,
    workerData: { path, topic: TOPIC, holdMs: HOLD_MS, bigRecords: BIG_RECORDS, bigBytes: BIG_BYTES, logModule: module("../connectors/embedded/embedded-log.ts"), loggerModule: module("../runtime/logger.ts"), eventModule: module("./event-json.ts") },
  });
  const messages: string[] = [];
  const captureDone = new Promise<void>((resolve) => capture.on("exit", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    capture.on("message", (message: string) => {
      messages.push(message);
      if (message === "locked") resolve();
      if (message.startsWith("failed")) reject(new Error(message));
    });
    capture.once("error", reject);
  });

  // The sink starts while capture holds the lock (its lease and first reads meet the lock at once).
  const sink = new SizeSink();
  const runner = new SinkRunner({
    sink,
    log,
    group: "t.sink.sizes",
    topics: async () => [TOPIC],
    decoder: { decode: async (r) => (r.value ? deserializeEvent(Buffer.from(r.value).toString()) : null) },
    batch: { maxRows: 10, maxBytes: 64 * 2 ** 20, maxWaitMs: 20 },
    onError: "halt",
    deadLetterTopic: "t.dlq.sizes",
    retry: { initialMs: 50, maxMs: 500 },
    logger: silent,
    owner: "test",
  });
  const stop = new AbortController();
  let failure: unknown = null;
  const running = runner.run(stop.signal).catch((error: unknown) => (failure = error));
  const expected = BIG_RECORDS + BIG_RECORDS / 2;
  for (let i = 0; i < 1000 && sink.rows.size < expected && failure === null; i++) await new Promise((r) => setTimeout(r, 100));
  await captureDone;
  stop.abort(new Error("stop"));
  await running;
  assert.equal(failure, null, `the sink failed: ${String(failure)}`);
  assert.deepEqual(messages.filter((m) => m !== "locked"), ["done"], "capture wrote everything");
  assert.equal(sink.rows.size, expected, "every record applied");
  assert.equal([...sink.rows.values()].filter((length) => length === BIG_BYTES).length, BIG_RECORDS, "the large records arrived whole");
  const committed = await log.committedOffsets("t.sink.sizes");
  assert.deepEqual(committed.map((o) => o.offset), [BigInt(expected)], "the sink's offsets are committed");
  await log.close();
});
