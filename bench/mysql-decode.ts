/**
 * MySQL/MariaDB binlog decoding: a binlog of 1M row changes (a 13-column table of mixed types —
 * BIGINT, INT, SMALLINT, VARCHAR in utf8mb4, ENUM, DECIMAL, DATETIME(6), TIMESTAMP(6), JSON as
 * LONGTEXT, TEXT, DOUBLE, with NULLs; inserts, updates and deletes, 50 rows per event, MariaDB 10.11
 * events with CRC32 and FULL row metadata) is synthesised byte by byte once and cached in the temp
 * directory, then read in 8 MiB chunks and decoded by the stream decoder into ChangeEvents, which
 * are counted and dropped. One core, no server, no I/O beyond the file. Prints row events/s, MB/s
 * and peak RSS.
 *
 *   node bench/mysql-decode.ts [row changes, default 1000000]
 */
import { existsSync } from "node:fs";
import { mkdir, open, rename } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { BINLOG_MAGIC } from "../connectors/mysql/protocol/binlog-file.ts";
import { BinlogWriter, lenencString, rowImage } from "../connectors/mysql/protocol/binlog-writer.ts";
import type { TableMapColumnSpec } from "../connectors/mysql/protocol/binlog-writer.ts";
import { ColumnType, EventType } from "../connectors/mysql/protocol/constants.ts";
import { EventParser } from "../connectors/mysql/protocol/event-parser.ts";
import { MemorySchemaHistoryStore } from "../connectors/mysql/schema/schema-history.ts";
import { SchemaTracker } from "../connectors/mysql/schema/schema-tracker.ts";
import { StreamDecoder } from "../connectors/mysql/stream-decoder.ts";
import type { DecodedEvent } from "../connectors/mysql/stream-decoder.ts";
import { CollationTable } from "../connectors/mysql/values/charsets.ts";

const CHANGES = Number(process.argv[2] ?? 1_000_000);
const ROWS_PER_EVENT = 50;
const FILE_NAME = "mariadb-bin.000001";
const path = join(tmpdir(), "sluice-bench", `mysql-decode-${CHANGES}.binlog`);

const COLUMNS: (TableMapColumnSpec & { name: string })[] = [
  { name: "id", type: ColumnType.LONGLONG, meta: Buffer.alloc(0), nullable: false },
  { name: "customer_id", type: ColumnType.LONG, meta: Buffer.alloc(0), nullable: false },
  { name: "quantity", type: ColumnType.SHORT, meta: Buffer.alloc(0), nullable: false },
  { name: "name", type: ColumnType.VARCHAR, meta: Buffer.from([0x90, 0x01]), nullable: false },
  { name: "email", type: ColumnType.VARCHAR, meta: Buffer.from([0xfc, 0x03]), nullable: true },
  { name: "status", type: ColumnType.STRING, meta: Buffer.from([ColumnType.ENUM, 1]), nullable: false },
  { name: "price", type: ColumnType.NEWDECIMAL, meta: Buffer.from([10, 2]), nullable: false },
  { name: "discount", type: ColumnType.NEWDECIMAL, meta: Buffer.from([5, 2]), nullable: true },
  { name: "created_at", type: ColumnType.DATETIME2, meta: Buffer.from([6]), nullable: false },
  { name: "updated_at", type: ColumnType.TIMESTAMP2, meta: Buffer.from([6]), nullable: true },
  { name: "attributes", type: ColumnType.BLOB, meta: Buffer.from([4]), nullable: true },
  { name: "note", type: ColumnType.BLOB, meta: Buffer.from([2]), nullable: true },
  { name: "score", type: ColumnType.DOUBLE, meta: Buffer.from([8]), nullable: false },
];
const STATUSES = ["new", "paid", "shipped", "delivered"];

const u = (bytes: number, value: number | bigint) => {
  const out = Buffer.alloc(bytes);
  if (bytes === 8) out.writeBigInt64LE(BigInt(value));
  else out.writeIntLE(Number(value), 0, bytes);
  return out;
};
const varchar = (text: string) => {
  const bytes = Buffer.from(text);
  return Buffer.concat([u(2, bytes.length), bytes]);
};
const blob = (text: string, lengthBytes: number) => {
  const bytes = Buffer.from(text);
  return Buffer.concat([u(lengthBytes, bytes.length), bytes]);
};
/** Binary DECIMAL of a non-negative value with 2 fraction digits: integer groups, then one fraction byte. */
const decimal = (cents: number, integerBytes: number) => {
  const out = Buffer.alloc(integerBytes + 1);
  out.writeUIntBE(Math.floor(cents / 100), 0, integerBytes);
  out[integerBytes] = cents % 100;
  out[0]! |= 0x80;
  return out;
};
const datetime6 = (micros: number) => {
  const date = new Date(Math.floor(micros / 1000));
  const ymd = ((date.getUTCFullYear() * 13 + date.getUTCMonth() + 1) << 5) | date.getUTCDate();
  const hms = (date.getUTCHours() << 12) | (date.getUTCMinutes() << 6) | date.getUTCSeconds();
  const out = Buffer.alloc(8);
  out.writeUIntBE(ymd * 2 ** 17 + hms + 0x8000000000, 0, 5);
  out.writeUIntBE(micros % 1_000_000, 5, 3);
  return out;
};
const timestamp6 = (micros: number) => {
  const out = Buffer.alloc(7);
  out.writeUInt32BE(Math.floor(micros / 1_000_000), 0);
  out.writeUIntBE(micros % 1_000_000, 4, 3);
  return out;
};
const double = (value: number) => {
  const out = Buffer.alloc(8);
  out.writeDoubleLE(value);
  return out;
};

function row(i: number, version: number): Buffer {
  return rowImage(COLUMNS.length, [
    u(8, 1_000_000_000 + i),
    u(4, 10_000 + (i % 5000)),
    u(2, 1 + ((i + version) % 12)),
    varchar(`Product number ${i} with a moderately long name`),
    i % 7 === 0 ? null : varchar(`customer${i % 5000}@example.com`),
    Buffer.from([1 + ((i + version) % STATUSES.length)]),
    decimal(((i % 100_000) + 1) * 100 + (i % 100), 4),
    i % 3 === 0 ? null : decimal((i % 50) * 100 + 50, 2),
    datetime6(1_700_000_000_000_000 + i * 1_000_003),
    version === 0 ? null : timestamp6(1_700_000_100_000_000 + i * 997),
    i % 2 === 0 ? blob(`{"color": "${["red", "green", "blue"][i % 3]}", "size": ${i % 44}, "tags": ["a", "b"]}`, 4) : null,
    i % 2 === 1 ? blob("leave at the door", 2) : null,
    double(i / 7),
  ]);
}

async function generate(): Promise<void> {
  await mkdir(join(tmpdir(), "sluice-bench"), { recursive: true });
  const partial = `${path}.partial`;
  const file = await open(partial, "w");
  const w = new BinlogWriter({ serverId: 1 });
  const pending: Buffer[] = [BINLOG_MAGIC, w.formatDescription()];
  let pendingBytes = 0;
  const flush = async (force: boolean) => {
    if (!force && pendingBytes < 8 * 2 ** 20) return;
    await file.write(Buffer.concat(pending));
    pending.length = 0;
    pendingBytes = 0;
  };
  const add = (event: Buffer) => {
    pending.push(event);
    pendingBytes += event.length;
  };
  const tableMap = () =>
    w.tableMap(
      77,
      "shop",
      "orders",
      COLUMNS,
      [
        [1, Buffer.from([0x00])], // SIGNEDNESS: all signed
        [2, Buffer.from([45])], // DEFAULT_CHARSET utf8mb4_general_ci
        [4, Buffer.concat(COLUMNS.map((c) => lenencString(c.name)))],
        [6, Buffer.concat([Buffer.from([STATUSES.length]), ...STATUSES.map((s) => lenencString(s))])],
        [8, Buffer.from([0])], // SIMPLE_PRIMARY_KEY: id
      ],
    );
  let written = 0;
  let transaction = 0;
  let nextId = 0;
  while (written < CHANGES) {
    const count = Math.min(ROWS_PER_EVENT, CHANGES - written);
    add(w.mariadbGtid(BigInt(++transaction)));
    add(w.query("shop", "BEGIN"));
    add(tableMap());
    const kind = transaction % 10;
    if (kind < 6 || nextId < count) {
      add(w.rows(EventType.WRITE_ROWS_V1, 77, COLUMNS.length, Array.from({ length: count }, (_, k) => row(nextId + k, 0))));
      nextId += count;
    } else if (kind < 9) {
      const first = (transaction * 37) % (nextId - count);
      add(w.rows(EventType.UPDATE_ROWS_V1, 77, COLUMNS.length, Array.from({ length: count }, (_, k) => [row(first + k, 0), row(first + k, 1)]).flat()));
    } else {
      const first = (transaction * 53) % (nextId - count);
      add(w.rows(EventType.DELETE_ROWS_V1, 77, COLUMNS.length, Array.from({ length: count }, (_, k) => row(first + k, 1))));
    }
    add(w.xid(BigInt(transaction)));
    written += count;
    await flush(false);
  }
  await flush(true);
  await file.close();
  await rename(partial, path);
}

/** The events of a binlog file, read in 8 MiB chunks (an event may straddle two). */
async function* fileEvents(file: string): AsyncGenerator<Buffer> {
  const handle = await open(file, "r");
  let carry = Buffer.alloc(0);
  let first = true;
  try {
    for (;;) {
      const chunk = Buffer.allocUnsafe(8 * 2 ** 20);
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) break;
      let data = carry.length === 0 ? chunk.subarray(0, bytesRead) : Buffer.concat([carry, chunk.subarray(0, bytesRead)]);
      if (first) {
        data = data.subarray(4);
        first = false;
      }
      let offset = 0;
      while (offset + 19 <= data.length) {
        const size = data.readUInt32LE(offset + 9);
        if (offset + size > data.length) break;
        yield data.subarray(offset, offset + size);
        offset += size;
      }
      carry = Buffer.from(data.subarray(offset));
    }
  } finally {
    await handle.close();
  }
}

if (!existsSync(path)) {
  const started = performance.now();
  await generate();
  console.log(`generated ${path} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

const logger = pino({ level: "warn" });
const collations = CollationTable.builtIn();
const tracker = new SchemaTracker({
  store: new MemorySchemaHistoryStore(),
  catalog: null,
  matches: (database) => database === "shop",
  binding: { sourceName: "bench", collations, zeroDates: "null", mariadb: true },
  logger,
  context: {},
});
const decoder = new StreamDecoder({
  sourceName: "bench",
  flavor: "mariadb",
  parser: new EventParser(collations),
  tracker,
  start: { file: FILE_NAME, offset: 4, gtid: "" },
  skipThrough: null,
  snapshotThresholds: new Map(),
  logger,
  context: {},
});

let peakRss = process.memoryUsage().rss;
const rssTimer = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 20);
let changes = 0;
let bytes = 0;
let last: DecodedEvent | undefined;
const out: DecodedEvent[] = [];
const started = performance.now();
for await (const event of fileEvents(path)) {
  bytes += event.length;
  const pending = decoder.apply(event, out);
  if (pending !== undefined) await pending;
  if (out.length > 0) {
    changes += out.length;
    last = out[out.length - 1];
    out.length = 0;
  }
}
const seconds = (performance.now() - started) / 1000;
clearInterval(rssTimer);
peakRss = Math.max(peakRss, process.memoryUsage().rss);
console.log(`decoded ${changes.toLocaleString("en")} row changes (${(bytes / 2 ** 20).toFixed(0)} MiB of binlog) in ${seconds.toFixed(2)} s`);
console.log(`  ${Math.round(changes / seconds).toLocaleString("en")} row events/s, ${(bytes / 2 ** 20 / seconds).toFixed(0)} MiB/s, peak RSS ${(peakRss / 2 ** 20).toFixed(0)} MiB`);
console.log(`  last: ${last?.event.op} ${last?.event.source.table} at ${last?.event.source.position.change}`);
