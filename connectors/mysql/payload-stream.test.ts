/**
 * MySQL 8 compressed transactions (TRANSACTION_PAYLOAD_EVENT, binlog_transaction_compression) are streamed: zstd
 * decompresses the payload as its inner events are decoded, and the batcher hands its changes on in batches as they
 * come, so a payload may decompress to more than the decompression limit (before: MYSQL_EVENT_TOO_LARGE, the source
 * stopped). Scripted MySQL 8 bytes: there is no MySQL 8 server here.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { describe, it, test } from "node:test";
import { zstdCompressSync } from "node:zlib";
import { pino } from "pino";
import type { Logger } from "pino";
import { comparePositions } from "../contracts.ts";
import type { ChangeEvent } from "../contracts.ts";
import { ByteBoundedBuffer } from "../common/byte-bounded-buffer.ts";
import { BinlogWriter, lenenc, lenencString, rowImage } from "./protocol/binlog-writer.ts";
import { ColumnType, EventType } from "./protocol/constants.ts";
import { EventParser } from "./protocol/event-parser.ts";
import { streamPayloadEvents } from "./protocol/payload-stream.ts";
import { COMPRESSION_ZSTD } from "./protocol/events.ts";
import { decodeResumeToken } from "./resume-token.ts";
import type { ResumeToken } from "./resume-token.ts";
import { MemorySchemaHistoryStore } from "./schema/schema-history.ts";
import { SchemaTracker } from "./schema/schema-tracker.ts";
import { StreamBatcher } from "./stream-batcher.ts";
import { StreamDecoder } from "./stream-decoder.ts";
import type { DecodedEvent } from "./stream-decoder.ts";
import { CollationTable } from "./values/charsets.ts";

const logger = pino({ level: "silent" });
const MiB = 2 ** 20;
const LIMIT = MiB;
const FILE = "binlog.000012";
const COLUMN_NAME = 4;
const SIMPLE_PRIMARY_KEY = 8;
const ROWS_PER_EVENT = 40;

/** The inner events of one transaction on d.t(id INT PK, v VARCHAR(250)): BEGIN, its table map, `events` rows events of ROWS_PER_EVENT inserts, XID. */
function transaction(events: number): Buffer {
  const w = new BinlogWriter({ checksum: false });
  const map = w.tableMap(
    42,
    "d",
    "t",
    [
      { type: ColumnType.LONG, meta: Buffer.alloc(0), nullable: false },
      { type: ColumnType.VARCHAR, meta: Buffer.from([250, 0]), nullable: true },
    ],
    [
      [COLUMN_NAME, Buffer.concat([lenencString("id"), lenencString("v")])],
      [SIMPLE_PRIMARY_KEY, Buffer.from([0])],
    ],
  );
  const inner = [w.query("d", "BEGIN"), map];
  let id = 0;
  for (let e = 0; e < events; e++) {
    const images = Array.from({ length: ROWS_PER_EVENT }, () => {
      id++;
      const key = Buffer.alloc(4);
      key.writeInt32LE(id);
      return rowImage(2, [key, Buffer.concat([Buffer.from([200]), Buffer.from(String(id % 10).repeat(200))])]);
    });
    inner.push(w.rows(EventType.WRITE_ROWS_V2, 42, 2, images));
  }
  inner.push(w.xid(7n));
  return Buffer.concat(inner);
}

/** A TRANSACTION_PAYLOAD body: compressed size, zstd, the uncompressed size, end mark, the zstd data. */
function payloadBody(events: Buffer): Buffer {
  const data = zstdCompressSync(events);
  const field = (type: number, value: number) => {
    const encoded = lenenc(value);
    return Buffer.concat([lenenc(type), lenenc(encoded.length), encoded]);
  };
  return Buffer.concat([field(1, data.length), field(2, COMPRESSION_ZSTD), field(3, events.length), lenenc(0), data]);
}

interface DecoderSetup {
  stepPayloads?: boolean;
  onChange?: (event: ChangeEvent) => void;
  limit?: number;
  matches?: (database: string, table: string) => boolean;
  /** As the source sets it from the captured tables' config. */
  positionsConfig?: string;
  /** A restart from a checkpoint's token. */
  resume?: ResumeToken;
  logger?: Logger;
}

function decoderOn(options: DecoderSetup = {}) {
  const collations = CollationTable.builtIn();
  const parser = new EventParser(collations);
  parser.decompressionLimit = options.limit ?? LIMIT;
  const log = options.logger ?? logger;
  const tracker = new SchemaTracker({ store: new MemorySchemaHistoryStore(), catalog: null, matches: options.matches ?? ((d) => d === "d"), binding: { sourceName: "shop", collations, zeroDates: "null", mariadb: false }, logger: log, context: {} });
  const { resume } = options;
  return new StreamDecoder({
    sourceName: "shop",
    flavor: "mysql",
    parser,
    tracker,
    start: resume === undefined ? { file: FILE, offset: 4, gtid: null } : { file: resume.file, offset: resume.offset, gtid: resume.gtid },
    skipThrough: resume?.skipThrough ?? null,
    ...(resume === undefined ? {} : { skipPositionsKey: resume.positionsKey }),
    positionsConfig: options.positionsConfig ?? "d.*",
    snapshotThresholds: new Map(),
    logger: log,
    context: { source: "shop" },
    ...(options.stepPayloads === undefined ? {} : { stepPayloads: options.stepPayloads }),
    ...(options.onChange === undefined ? {} : { interleave: { watermarkColumns: () => null, watermark: () => false, changed: options.onChange } }),
  });
}

describe("MySQL 8 transaction payloads, streamed", () => {
  const EVENTS = 900;
  const inner = transaction(EVENTS);
  const CHANGES = EVENTS * ROWS_PER_EVENT;

  it("a payload decompressing to more than the limit is decoded whole, each change at its own increasing position", async () => {
    assert.ok(inner.length > 4 * LIMIT, `${inner.length} bytes decompressed`);
    const writer = new BinlogWriter();
    const decoder = decoderOn();
    const out: DecodedEvent[] = [];
    await decoder.apply(writer.formatDescription("8.0.36"), out);
    const start = writer.offset;
    await decoder.apply(writer.event(EventType.TRANSACTION_PAYLOAD, payloadBody(inner)), out);
    assert.equal(out.length, CHANGES);
    assert.deepEqual(out.slice(0, 2).map((o) => o.event.after), [{ id: 1, v: "1".repeat(200) }, { id: 2, v: "2".repeat(200) }]);
    assert.deepEqual(out.at(-1)!.event.after, { id: CHANGES, v: String(CHANGES % 10).repeat(200) });
    for (let i = 1; i < out.length; i++) assert.ok(comparePositions(out[i - 1]!.event.source.position, out[i]!.event.source.position) < 0, `change ${i}`);
    assert.equal(decoder.inTransaction, false);
    assert.equal(decoder.through.offset, writer.offset);
    assert.ok(out[0]!.transaction.offset === start);
  });

  it("through the batcher, its changes are handed on in batches while it is decompressed, with checkpoints that resume inside it", async () => {
    let decoded = 0;
    const decoder = decoderOn({ stepPayloads: true, onChange: () => void decoded++ });
    const buffer = new ByteBoundedBuffer<Buffer>(64 * MiB);
    const batcher = new StreamBatcher({ buffer, decoder, flavor: "mysql", serverId: 1, maxBatchEvents: 500, progressIntervalMs: 0, lastCheckpoint: null });
    const writer = new BinlogWriter();
    const format = writer.formatDescription("8.0.36");
    const payload = writer.event(EventType.TRANSACTION_PAYLOAD, payloadBody(inner));
    const end = writer.offset;
    for (const event of [format, payload]) buffer.push(event, event.length);
    const signal = AbortSignal.timeout(20_000);
    const first = await batcher.next(signal);
    // Decoded so far: the batch and at most the rest of one rows event, not the whole transaction.
    assert.equal(first.events.length, 500);
    assert.ok(decoded <= 500 + ROWS_PER_EVENT, `${decoded} changes decoded when the first batch was handed on`);
    const token = decodeResumeToken(first.checkpoint.resume!, "shop");
    assert.equal(token.offset, end - payload.length, "resumes at the payload");
    assert.deepEqual(token.skipThrough, first.events.at(-1)!.source.position);
    const events = [...first.events];
    while (events.length < CHANGES) events.push(...(await batcher.next(signal)).events);
    assert.equal(events.length, CHANGES);
    assert.deepEqual(events.map((e) => e.after!["id"]), Array.from({ length: CHANGES }, (_, i) => i + 1));
  });

  it("an inner event over the limit stops the source with MYSQL_EVENT_TOO_LARGE naming the payload's position", async () => {
    const w = new BinlogWriter({ checksum: false });
    const huge = w.query("d", `/* ${"x".repeat(LIMIT)} */ BEGIN`);
    const writer = new BinlogWriter();
    const decoder = decoderOn();
    const out: DecodedEvent[] = [];
    await decoder.apply(writer.formatDescription("8.0.36"), out);
    const start = writer.offset;
    await assert.rejects(
      async () => decoder.apply(writer.event(EventType.TRANSACTION_PAYLOAD, payloadBody(huge)), out),
      (error: Error & { code?: string; context?: Record<string, unknown> }) => {
        assert.equal(error.code, "MYSQL_EVENT_TOO_LARGE");
        assert.match(error.message, new RegExp(`binlog event at ${FILE}:${start}: transaction payload holds an event of ${huge.length} bytes .* over the limit of ${LIMIT}`));
        return true;
      },
    );
  });

  it("a rows event over the limit halts only its table: one change with a refusal naming the table, position and sizes; the same in a table not captured is passed over", async () => {
    const w = new BinlogWriter({ checksum: false });
    const columns = [
      { type: ColumnType.LONG, meta: Buffer.alloc(0), nullable: false },
      { type: ColumnType.VARCHAR, meta: Buffer.from([250, 0]), nullable: true },
    ];
    const names: [number, Buffer][] = [
      [COLUMN_NAME, Buffer.concat([lenencString("id"), lenencString("v")])],
      [SIMPLE_PRIMARY_KEY, Buffer.from([0])],
    ];
    const row = (id: number, chars: number) => {
      const key = Buffer.alloc(4);
      key.writeInt32LE(id);
      return rowImage(2, [key, Buffer.concat([Buffer.from([chars]), Buffer.alloc(chars, 0x61)])]);
    };
    const big = Array.from({ length: 6000 }, (_, i) => row(1000 + i, 200));
    const hugeRows = w.rows(EventType.WRITE_ROWS_V2, 42, 2, big);
    assert.ok(hugeRows.length > LIMIT);
    const inner = Buffer.concat([
      w.query("d", "BEGIN"),
      w.tableMap(42, "d", "t", columns, names),
      w.tableMap(44, "x", "other", columns, names),
      w.rows(EventType.WRITE_ROWS_V2, 42, 2, [row(1, 3)]),
      hugeRows,
      w.rows(EventType.WRITE_ROWS_V2, 44, 2, big),
      w.rows(EventType.WRITE_ROWS_V2, 42, 2, [row(2, 3)]),
      w.xid(7n),
    ]);
    const writer = new BinlogWriter();
    const decoder = decoderOn();
    const out: DecodedEvent[] = [];
    await decoder.apply(writer.formatDescription("8.0.36"), out);
    const start = writer.offset;
    await decoder.apply(writer.event(EventType.TRANSACTION_PAYLOAD, payloadBody(inner)), out);
    assert.deepEqual(out.map((o) => [o.event.source.table, o.event.op, o.event.after?.["id"] ?? null, o.event.refusal?.code ?? null]), [
      ["t", "c", 1, null],
      ["t", "c", null, "MYSQL_VALUE_TOO_LARGE"],
      ["t", "c", 2, null],
    ]);
    const refusal = out[1]!.event.refusal!;
    assert.match(refusal.message, new RegExp(`^table d\\.t: a rows event of the compressed transaction at ${FILE}:${start} is ${hugeRows.length} bytes \\(the transaction \\d+ compressed\\), over the limit of ${LIMIT} bytes`));
    assert.equal(refusal.context["bytes"], hugeRows.length);
    for (let i = 1; i < out.length; i++) assert.ok(comparePositions(out[i - 1]!.event.source.position, out[i]!.event.source.position) < 0, `change ${i}`);
    assert.equal(decoder.inTransaction, false);
  });

  it("yields the inner events one by one as they are decompressed, and refuses a payload that ends inside one", async () => {
    const events = transaction(3);
    const cut = async (data: Buffer) => {
      const got: Buffer[] = [];
      for await (const event of streamPayloadEvents({ compression: COMPRESSION_ZSTD, stated: data.length, data: zstdCompressSync(data) }, LIMIT)) {
        assert.ok(Buffer.isBuffer(event));
        got.push(Buffer.from(event));
      }
      return got;
    };
    const whole = await cut(events);
    assert.equal(Buffer.concat(whole).compare(events), 0);
    assert.deepEqual(whole.map((e) => e[4]), [EventType.QUERY, EventType.TABLE_MAP, EventType.WRITE_ROWS_V2, EventType.WRITE_ROWS_V2, EventType.WRITE_ROWS_V2, EventType.XID]);
    await assert.rejects(cut(events.subarray(0, events.length - 3)), /ends inside an event/);
  });
});

test("a compressed transaction whose changes would take more than the heap goes through on a 40 MiB heap (before: heap out of memory)", { timeout: 60_000 }, async () => {
  const child = spawn(process.execPath, ["--max-old-space-size=40", new URL("./payload-heap-child.ts", import.meta.url).pathname], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const [code] = (await once(child, "exit")) as [number | null];
  assert.equal(code, 0, `the child ended: ${stderr.slice(-600)}`);
  assert.equal(stdout.trim(), "done 12800");
});

/**
 * A checkpoint inside a compressed transaction stores skipThrough as one of its changes' positions, which count only
 * the rows decoded: a table not captured takes none, a rows event over the decompression limit one. A restart under
 * another limit (`memory`) or other captured tables numbers the changes differently, so the skip is not trusted there.
 */
describe("MySQL 8 transaction payloads: a restart from a checkpoint inside one", () => {
  const columns = [
    { type: ColumnType.LONG, meta: Buffer.alloc(0), nullable: false },
    { type: ColumnType.VARCHAR, meta: Buffer.from([250, 0]), nullable: true },
  ];
  const names: [number, Buffer][] = [
    [COLUMN_NAME, Buffer.concat([lenencString("id"), lenencString("v")])],
    [SIMPLE_PRIMARY_KEY, Buffer.from([0])],
  ];
  const row = (id: number, chars: number) => {
    const key = Buffer.alloc(4);
    key.writeInt32LE(id);
    return rowImage(2, [key, Buffer.concat([Buffer.from([chars]), Buffer.alloc(chars, 0x61 + (id % 26))])]);
  };
  /** A GTID event (as MySQL 8 writes before each transaction, its payload included): flags, server uuid, gno. */
  const gtid = (writer: BinlogWriter, gno: bigint) => {
    const number = Buffer.alloc(8);
    number.writeBigInt64LE(gno);
    return writer.event(EventType.GTID, Buffer.concat([Buffer.from([1]), Buffer.alloc(16, 0x3e), number]));
  };
  /** The binlog as the server sends it: format description, GTID, the payload of BEGIN, d.t's rows, d.u's 10 rows, XID. */
  const binlog = (tRows: readonly Buffer[]) => {
    const w = new BinlogWriter({ checksum: false });
    const inner = Buffer.concat([
      w.query("d", "BEGIN"),
      w.tableMap(42, "d", "t", columns, names),
      w.tableMap(43, "d", "u", columns, names),
      w.rows(EventType.WRITE_ROWS_V2, 42, 2, tRows),
      w.rows(EventType.WRITE_ROWS_V2, 43, 2, Array.from({ length: 10 }, (_, i) => row(i + 1, 3))),
      w.xid(7n),
    ]);
    const writer = new BinlogWriter();
    const format = writer.formatDescription("8.0.36");
    const gtidAt = writer.offset;
    return { format, gtidAt, events: [gtid(writer, 5n), writer.event(EventType.TRANSACTION_PAYLOAD, payloadBody(inner))] };
  };
  /** Decodes the binlog through the batcher; returns the first batch's changes and its checkpoint's token. */
  const firstBatch = async (log: ReturnType<typeof binlog>, batchSize: number, setup: DecoderSetup) => {
    const decoder = decoderOn({ ...setup, stepPayloads: true });
    const buffer = new ByteBoundedBuffer<Buffer>(64 * MiB);
    const batcher = new StreamBatcher({ buffer, decoder, flavor: "mysql", serverId: 1, maxBatchEvents: batchSize, progressIntervalMs: 0, lastCheckpoint: null });
    for (const event of [log.format, ...log.events]) buffer.push(event, event.length);
    const first = await batcher.next(AbortSignal.timeout(20_000));
    assert.equal(first.events.length, batchSize);
    return { events: first.events, token: decodeResumeToken(first.checkpoint.resume!, "shop") };
  };
  /** A new decoder (after kill -9) started from the token, fed what the server sends from there. */
  const restart = async (log: ReturnType<typeof binlog>, token: ResumeToken, setup: DecoderSetup) => {
    const decoder = decoderOn({ ...setup, resume: token });
    const out: DecodedEvent[] = [];
    await decoder.apply(log.format, out);
    for (const event of log.events) await decoder.apply(event, out);
    assert.equal(decoder.inTransaction, false);
    return out.map((o) => o.event);
  };
  const ids = (events: readonly ChangeEvent[], table: string) => events.filter((e) => e.source.table === table).map((e) => e.after?.["id"] ?? null);
  const warnings = () => {
    const lines: string[] = [];
    return { lines, logger: pino({ level: "warn" }, { write: (line: string) => void lines.push(line) }) };
  };

  it("under the same settings, a new decoder started from the checkpoint (at the GTID event) hands on exactly the changes after it, once", async () => {
    const log = binlog(Array.from({ length: 100 }, (_, i) => row(1000 + i, 3)));
    const { events, token } = await firstBatch(log, 105, {});
    assert.equal(token.offset, log.gtidAt, "resumes at the transaction's GTID event");
    assert.ok(token.positionsKey !== undefined, "the checkpoint names what its positions were taken under");
    assert.deepEqual(ids(events, "u"), [1, 2, 3, 4, 5]);
    const { lines, logger: log2 } = warnings();
    const after = await restart(log, token, { logger: log2 });
    assert.deepEqual(ids(after, "t"), []);
    assert.deepEqual(ids(after, "u"), [6, 7, 8, 9, 10]);
    assert.deepEqual(lines, []);
  });

  it("restarted with a smaller decompression limit (a rows event before the checkpoint now over it), the transaction is read again from its start: no change after the checkpoint is lost", async () => {
    const log = binlog(Array.from({ length: 6000 }, (_, i) => row(1000 + i, 200)));
    const { events, token } = await firstBatch(log, 6005, { limit: 4 * MiB });
    assert.deepEqual(ids(events, "u"), [1, 2, 3, 4, 5]);
    const { lines, logger: log2 } = warnings();
    const after = await restart(log, token, { limit: MiB, logger: log2 });
    // d.t's rows event is over 1 MiB: one refusal, which halts d.t; d.u's changes are all handed on again (1-5 twice in all).
    assert.deepEqual(ids(after, "t"), [null]);
    assert.equal(after[0]!.refusal?.code, "MYSQL_VALUE_TOO_LARGE");
    assert.deepEqual(ids(after, "u"), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.equal(lines.length, 1);
    assert.match(JSON.parse(lines[0]!).msg, new RegExp(`checkpoint is inside the compressed transaction at ${FILE}:${log.gtidAt} \\(3e3e3e3e-3e3e-3e3e-3e3e-3e3e3e3e3e3e:5\\), taken under another decompression limit`));
  });

  it("restarted with a table before the checkpoint no longer captured, the transaction is read again from its start: no change after the checkpoint is lost", async () => {
    const log = binlog(Array.from({ length: 100 }, (_, i) => row(1000 + i, 3)));
    const { token } = await firstBatch(log, 105, {});
    const { lines, logger: log2 } = warnings();
    const after = await restart(log, token, { matches: (d, t) => d === "d" && t !== "t", positionsConfig: "d.*, !d.t", logger: log2 });
    assert.deepEqual(ids(after, "t"), []);
    assert.deepEqual(ids(after, "u"), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    // Read again above the stored change: a sink keeping a row's newest position takes each of them, none dropped as older.
    const stored = token.skipThrough!;
    for (const event of after) assert.ok(comparePositions(event.source.position, stored) > 0, `re-read change ${JSON.stringify(event.after)} numbered above the checkpoint`);
    assert.equal(lines.length, 1);
  });

  it("a checkpoint inside one that names no positions key (written before it was recorded) is resumed from the transaction's start", async () => {
    const log = binlog(Array.from({ length: 100 }, (_, i) => row(1000 + i, 3)));
    const { token } = await firstBatch(log, 105, {});
    const after = await restart(log, { ...token, positionsKey: undefined }, {});
    assert.equal(ids(after, "t").length, 100);
    assert.deepEqual(ids(after, "u"), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });
});
