/**
 * How the binlog decoder and batcher weave online snapshot chunks in (synthetic MariaDB events):
 * the watermark table's rows reach the interleave in binlog order with their positions, captured
 * changes are reported to it, and a chunk handed on at its high watermark stays whole in one batch
 * — however many rows it has — that ends with the watermark's transaction (its rows share one
 * position: a batch cut inside them would lose the rest on a resume).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pino } from "pino";
import type { ChangeEvent, Position, Row } from "../contracts.ts";
import { ByteBoundedBuffer } from "../common/byte-bounded-buffer.ts";
import { decodeResumeToken, encodeResumeToken } from "./resume-token.ts";
import { encodeResume } from "../common/incremental-snapshot-state.ts";
import { BinlogWriter, lenencString, rowImage } from "./protocol/binlog-writer.ts";
import { ColumnType, EventType } from "./protocol/constants.ts";
import { EventParser } from "./protocol/event-parser.ts";
import type { RowColumn } from "./protocol/rows-event.ts";
import type { TableMap } from "./protocol/table-map.ts";
import { MemorySchemaHistoryStore } from "./schema/schema-history.ts";
import { SchemaTracker } from "./schema/schema-tracker.ts";
import { StreamBatcher } from "./stream-batcher.ts";
import { StreamDecoder } from "./stream-decoder.ts";
import type { BinlogInterleave, DecodedEvent, TransactionContext } from "./stream-decoder.ts";
import { CollationTable } from "./values/charsets.ts";
import { markOf, watermarkTableOf, WatermarkTable } from "./watermarks.ts";

const logger = pino({ level: "silent" });
const FILE = "mariadb-bin.000007";
const COLUMN_NAME = 4;
const SIMPLE_PRIMARY_KEY = 8;
const collations = CollationTable.builtIn();
const binding = { sourceName: "s", collations, zeroDates: "null" as const, mariadb: true };

function int32(value: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeInt32LE(value);
  return out;
}

function varchar(text: string): Buffer {
  const bytes = Buffer.from(text);
  return Buffer.concat([Buffer.from([bytes.length]), bytes]);
}

/** Records what the decoder tells it; at a "high" mark hands on `chunkRows` reads. */
class FakeInterleave implements BinlogInterleave {
  readonly table = new WatermarkTable({ database: "d", table: "sluice_watermarks" }, "s", {});
  readonly marks: { mark: string; position: Position }[] = [];
  readonly changes: ChangeEvent[] = [];
  private readonly chunkRows: number;
  constructor(chunkRows: number) {
    this.chunkRows = chunkRows;
  }
  watermarkColumns(map: TableMap): readonly RowColumn[] | null {
    if (!this.table.is(map.database, map.table)) return null;
    const bound = this.table.columns(map, binding);
    return "columns" in bound ? bound.columns : null;
  }
  watermark(row: Row, position: Position, transaction: TransactionContext, out: DecodedEvent[]): boolean {
    const mark = markOf(row, "s");
    if (mark === null) return false;
    this.marks.push({ mark, position });
    if (mark !== "high") return false;
    const read = this.changes[0]!;
    for (let i = 0; i < this.chunkRows; i++) out.push({ event: { ...read, op: "r", source: { ...read.source, position, snapshot: true } }, transaction });
    return true;
  }
  changed(event: ChangeEvent): void {
    this.changes.push(event);
  }
}

function setUp(chunkRows: number) {
  const interleave = new FakeInterleave(chunkRows);
  const tracker = new SchemaTracker({ store: new MemorySchemaHistoryStore(), catalog: null, matches: (d, t) => d === "d" && t === "t", binding, logger, context: {} });
  const decoder = new StreamDecoder({ sourceName: "s", flavor: "mariadb", parser: new EventParser(collations), tracker, start: { file: FILE, offset: 4, gtid: "0-1-1" }, skipThrough: null, snapshotThresholds: new Map(), interleave, logger, context: {} });
  const buffer = new ByteBoundedBuffer<Buffer>(1 << 22);
  const batcher = new StreamBatcher({ buffer, decoder, flavor: "mariadb", serverId: 1, maxBatchEvents: 100, progressIntervalMs: 0, lastCheckpoint: null });
  const w = new BinlogWriter();
  const named = (...names: string[]) => [COLUMN_NAME, Buffer.concat(names.map((n) => lenencString(n)))] as [number, Buffer];
  const mapT = () => w.tableMap(42, "d", "t", [{ type: ColumnType.LONG, meta: Buffer.alloc(0), nullable: false }, { type: ColumnType.VARCHAR, meta: Buffer.from([80, 0]), nullable: true }], [named("id", "v"), [SIMPLE_PRIMARY_KEY, Buffer.from([0])]]);
  // As the server logs Sluice's watermark table without binlog_row_metadata=FULL: no names.
  const mapW = () => w.tableMap(43, "d", "sluice_watermarks", [{ type: ColumnType.VARCHAR, meta: Buffer.from([255, 0]), nullable: false }, { type: ColumnType.VARCHAR, meta: Buffer.from([255, 0]), nullable: false }]);
  const push = (...events: Buffer[]) => events.forEach((event) => buffer.push(event, event.length));
  let gtid = 10n;
  const change = (id: number) => [w.mariadbGtid(gtid++), w.query("d", "BEGIN"), mapT(), w.rows(EventType.WRITE_ROWS_V1, 42, 2, [rowImage(2, [int32(id), varchar("x")])]), w.xid(gtid)];
  const mark = (text: string) => [w.mariadbGtid(gtid++), w.query("d", "BEGIN"), mapW(), w.rows(EventType.WRITE_ROWS_V1, 43, 2, [rowImage(2, [varchar("s"), varchar(text)])]), w.xid(gtid)];
  push(w.formatDescription());
  return { interleave, batcher, push, change, mark, w };
}

describe("online snapshot watermarks in the binlog", () => {
  it("reports watermarks in binlog order and every captured change; a chunk larger than a batch stays whole and ends its batch", async () => {
    const { interleave, batcher, push, change, mark } = setUp(250);
    push(...change(1), ...mark("low"), ...change(2), ...mark("high"), ...change(3));
    const batch = await batcher.next(AbortSignal.timeout(5_000));
    assert.deepEqual(interleave.marks.map((m) => m.mark), ["low", "high"]);
    assert.ok(interleave.marks[0]!.position.change < interleave.marks[1]!.position.change);
    assert.deepEqual(interleave.changes.map((e) => e.key["id"]), [1, 2], "the changes before the batch ends, in order; not the chunk's reads");
    assert.equal(batch.events.length, 2 + 250, "both changes and the whole chunk, though a batch holds 100 events");
    assert.ok(batch.events.slice(2).every((e) => e.op === "r"));
    assert.ok(batch.checkpoint.change > interleave.marks[1]!.position.change, "the checkpoint is past the high watermark's transaction");
    const next = await batcher.next(AbortSignal.timeout(5_000));
    assert.deepEqual(next.events.map((e) => e.key["id"]), [3]);
  });

  it("another source's watermark rows are not this source's", () => {
    assert.equal(markOf({ source: new Uint8Array(Buffer.from("other")), mark: new Uint8Array(Buffer.from("x:1:low")) }, "s"), null);
    assert.equal(markOf({ source: new Uint8Array(Buffer.from("s")), mark: new Uint8Array(Buffer.from("x:1:low")) }, "s"), "x:1:low");
  });
});

describe("watermark table and checkpoint token", () => {
  it("defaults to sluice_watermarks in the first database a pattern names", () => {
    assert.deepEqual(watermarkTableOf({ tables: ["*.audit", "shop.*"], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 1 } }), { database: "shop", table: "sluice_watermarks" });
    assert.equal(watermarkTableOf({ tables: ["*.*"], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 1 } }), null);
    assert.deepEqual(watermarkTableOf({ tables: ["*.*"], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 1, watermark_table: "ops.marks" } }), { database: "ops", table: "marks" });
  });

  it("a resume token carries the captured patterns and reads back with snapshot progress after it", () => {
    const token = { flavor: "mariadb" as const, serverId: 1, file: FILE, offset: 4, gtid: "0-1-1", skipThrough: null, snapshotThresholds: {}, snapshotIncomplete: false, capturedTables: ["shop.*"] };
    const task = { id: "t", table: "shop.a", where: null, lastKey: ["5"], rowsDone: 5, rowsEstimated: 9, resetVersion: "7", requestedAtMs: 1, startedAtMs: 2, origin: "cli" };
    const decoded = decodeResumeToken(encodeResume(encodeResumeToken(token), [task]), "s");
    assert.deepEqual(decoded.capturedTables, ["shop.*"]);
    assert.equal(decoded.file, FILE);
  });
});
