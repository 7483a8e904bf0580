/**
 * The stream batcher over synthetic MariaDB binlog events: batches without changes say through
 * which time the stream is complete — the commit time of a backlog it read, or the arrival of a
 * heartbeat saying the server is idle — so source lag is true both behind and caught up.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pino } from "pino";
import { comparePositions } from "../contracts.ts";
import { ByteBoundedBuffer } from "../common/byte-bounded-buffer.ts";
import { HeartbeatArrivals } from "./heartbeat-arrivals.ts";
import { BinlogWriter } from "./protocol/binlog-writer.ts";
import { EventParser } from "./protocol/event-parser.ts";
import { MemorySchemaHistoryStore } from "./schema/schema-history.ts";
import { SchemaTracker } from "./schema/schema-tracker.ts";
import { StreamBatcher } from "./stream-batcher.ts";
import { StreamDecoder } from "./stream-decoder.ts";
import { CollationTable } from "./values/charsets.ts";

const logger = pino({ level: "silent" });
const FILE = "mariadb-bin.000003";
const INTERVAL_MS = 40;

function setUp() {
  const collations = CollationTable.builtIn();
  const tracker = new SchemaTracker({ store: new MemorySchemaHistoryStore(), catalog: null, matches: (d) => d === "captured", binding: { sourceName: "s", collations, zeroDates: "null", mariadb: true }, logger, context: {} });
  const heartbeatArrivals = new HeartbeatArrivals();
  const decoder = new StreamDecoder({
    sourceName: "s",
    flavor: "mariadb",
    parser: new EventParser(collations),
    tracker,
    start: { file: FILE, offset: 4, gtid: "0-1-1" },
    skipThrough: null,
    snapshotThresholds: new Map(),
    heartbeatArrivals,
    logger,
    context: {},
  });
  const buffer = new ByteBoundedBuffer<Buffer>(1 << 20);
  const batcher = new StreamBatcher({ buffer, decoder, flavor: "mariadb", serverId: 1, maxBatchEvents: 100, progressIntervalMs: INTERVAL_MS, lastCheckpoint: null });
  const writer = new BinlogWriter();
  /** Receives the events as the binlog stream does. */
  const push = (...events: Buffer[]) =>
    events.forEach((event) => {
      heartbeatArrivals.received(event, Date.now());
      buffer.push(event, event.length);
    });
  /** A transaction on a table not captured. */
  const transaction = (seq: bigint) => [writer.mariadbGtid(seq), writer.query("elsewhere", "BEGIN"), writer.xid(seq)];
  push(writer.formatDescription());
  return { batcher, writer, push, transaction };
}

describe("stream batcher", () => {
  it("reading a backlog, a batch without changes is complete through the backlog's commit time, not now", async () => {
    const { batcher, writer, push, transaction } = setUp();
    const hourAgoSeconds = Math.floor(Date.now() / 1000) - 3600;
    writer.timestamp = hourAgoSeconds;
    push(...transaction(2n), ...transaction(3n));
    const batch = await batcher.next(AbortSignal.timeout(5_000));
    assert.deepEqual(batch.events, []);
    assert.equal(batch.throughTimeMs, hourAgoSeconds * 1000);
  });

  it("once a heartbeat says the server is idle, a batch without changes is complete through now, every interval while idle", async () => {
    const { batcher, writer, push, transaction } = setUp();
    writer.timestamp = Math.floor(Date.now() / 1000) - 3600;
    push(...transaction(2n));
    const behind = await batcher.next(AbortSignal.timeout(5_000));

    const firstBeatAt = Date.now();
    push(writer.heartbeat(FILE));
    const caughtUp = await batcher.next(AbortSignal.timeout(5_000));
    assert.deepEqual(caughtUp.events, []);
    assert.ok(caughtUp.throughTimeMs !== undefined && caughtUp.throughTimeMs >= firstBeatAt, `complete through the heartbeat, not an hour ago: ${caughtUp.throughTimeMs}`);
    assert.equal(comparePositions(caughtUp.checkpoint, behind.checkpoint), 0, "nothing new was written: the position stays");

    await assert.rejects(batcher.next(AbortSignal.timeout(4 * INTERVAL_MS)), "no heartbeat, no news: nothing to hand on");

    const secondBeatAt = Date.now();
    push(writer.heartbeat(FILE));
    const again = await batcher.next(AbortSignal.timeout(5_000));
    assert.ok(again.throughTimeMs !== undefined && again.throughTimeMs >= secondBeatAt, "each heartbeat brings a later time");
  });

  it("a heartbeat read late says the stream is complete through when it arrived, not when it is decoded", async () => {
    const { batcher, writer, push, transaction } = setUp();
    writer.timestamp = Math.floor(Date.now() / 1000) - 3600;
    push(...transaction(2n));
    await batcher.next(AbortSignal.timeout(5_000));

    const beforeBeat = Date.now();
    push(writer.heartbeat(FILE));
    const arrivedBy = Date.now();
    // The reader comes back only after the clock has moved on: whatever was written meanwhile may still be on its way.
    while (Date.now() <= arrivedBy) await new Promise((resolve) => setTimeout(resolve, 5));
    const caughtUp = await batcher.next(AbortSignal.timeout(5_000));
    assert.ok(caughtUp.throughTimeMs !== undefined && caughtUp.throughTimeMs >= beforeBeat && caughtUp.throughTimeMs <= arrivedBy, `complete through the heartbeat's arrival (${beforeBeat}-${arrivedBy}): ${caughtUp.throughTimeMs}`);

    // Arrivals stay in step with the heartbeats, read together or one by one.
    const beats: number[] = [];
    for (let i = 0; i < 3; i++) {
      const at = Date.now();
      push(writer.heartbeat(FILE));
      beats.push(at);
      while (Date.now() <= at) await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const together = await batcher.next(AbortSignal.timeout(5_000));
    assert.ok(together.throughTimeMs !== undefined && together.throughTimeMs >= beats[2]! && together.throughTimeMs < Date.now(), `through the last heartbeat's arrival: ${together.throughTimeMs}, beats ${beats.join(", ")}`);
  });
});
