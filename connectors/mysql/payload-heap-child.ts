/**
 * Child process of payload-stream.test.ts: on a heap of 40 MiB, a MySQL 8 compressed transaction whose changes take
 * about 50 MB of heap strings goes through the stream decoder and batcher as capture runs them, its batches dropped
 * once read. Decoded at once (before: the payload decompressed whole and all its changes decoded by one apply), they
 * would not fit; streamed, one batch of them is alive at a time. Prints "done <changes>".
 */
import { randomBytes } from "node:crypto";
import { zstdCompressSync } from "node:zlib";
import { pino } from "pino";
import { ByteBoundedBuffer } from "../common/byte-bounded-buffer.ts";
import { BinlogWriter, lenenc, lenencString, rowImage } from "./protocol/binlog-writer.ts";
import { ColumnType, EventType } from "./protocol/constants.ts";
import { EventParser } from "./protocol/event-parser.ts";
import { MemorySchemaHistoryStore } from "./schema/schema-history.ts";
import { SchemaTracker } from "./schema/schema-tracker.ts";
import { StreamBatcher } from "./stream-batcher.ts";
import { StreamDecoder } from "./stream-decoder.ts";
import { CollationTable } from "./values/charsets.ts";

const ROWS_PER_EVENT = 8;
const EVENTS = 1600;
const VALUE_CHARS = 4000;

function payload(): Buffer {
  const w = new BinlogWriter({ checksum: false });
  const map = w.tableMap(
    42,
    "d",
    "t",
    [
      { type: ColumnType.LONG, meta: Buffer.alloc(0), nullable: false },
      { type: ColumnType.VARCHAR, meta: Buffer.from([0xa0, 0x0f]), nullable: true },
    ],
    [
      [4, Buffer.concat([lenencString("id"), lenencString("v")])],
      [8, Buffer.from([0])],
    ],
  );
  // Each value starts with 16 random letters: the changes take more compressed bytes than there are changes (each
  // takes one of the payload's bytes as its position), the rest of the value compresses away.
  const rows = (event: number) => {
    const images = Array.from({ length: ROWS_PER_EVENT }, (_, i) => {
      const key = Buffer.alloc(4);
      key.writeInt32LE(event * ROWS_PER_EVENT + i + 1);
      const value = Buffer.alloc(2 + VALUE_CHARS, 0x61 + i);
      value.writeUInt16LE(VALUE_CHARS);
      for (const [at, byte] of randomBytes(16).entries()) value[2 + at] = 0x61 + (byte % 26);
      return rowImage(2, [key, value]);
    });
    return w.rows(EventType.WRITE_ROWS_V2, 42, 2, images);
  };
  const inner = Buffer.concat([w.query("d", "BEGIN"), map, ...Array.from({ length: EVENTS }, (_, e) => rows(e)), w.xid(7n)]);
  const data = zstdCompressSync(inner);
  const field = (type: number, value: number) => {
    const encoded = lenenc(value);
    return Buffer.concat([lenenc(type), lenenc(encoded.length), encoded]);
  };
  return Buffer.concat([field(1, data.length), field(2, 0), field(3, inner.length), lenenc(0), data]);
}

const logger = pino({ level: "silent" });
const collations = CollationTable.builtIn();
const parser = new EventParser(collations);
// High enough that decompressing the payload whole would be allowed: the heap is what is tested.
parser.decompressionLimit = 1024 * 2 ** 20;
const tracker = new SchemaTracker({ store: new MemorySchemaHistoryStore(), catalog: null, matches: (d) => d === "d", binding: { sourceName: "shop", collations, zeroDates: "null", mariadb: false }, logger, context: {} });
const decoder = new StreamDecoder({ sourceName: "shop", flavor: "mysql", parser, tracker, start: { file: "binlog.000012", offset: 4, gtid: null }, skipThrough: null, snapshotThresholds: new Map(), logger, context: {}, stepPayloads: true });
const buffer = new ByteBoundedBuffer<Buffer>(64 * 2 ** 20);
const batcher = new StreamBatcher({ buffer, decoder, flavor: "mysql", serverId: 1, maxBatchEvents: 500, progressIntervalMs: 0, lastCheckpoint: null });
const writer = new BinlogWriter();
for (const event of [writer.formatDescription("8.0.36"), writer.event(EventType.TRANSACTION_PAYLOAD, payload())]) buffer.push(event, event.length);
let changes = 0;
const signal = AbortSignal.timeout(60_000);
while (changes < ROWS_PER_EVENT * EVENTS) changes += (await batcher.next(signal)).events.length;
console.log(`done ${changes}`);
