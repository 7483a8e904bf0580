/**
 * Compressed binlog events are decompressed within a bound: MySQL 8's zstd TRANSACTION_PAYLOAD (a real one from
 * MySQL 8.0.32, and crafted ones a hostile server could send: no MySQL 8 server here) and MariaDB's QUERY_COMPRESSED.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { zstdCompressSync, deflateSync } from "node:zlib";
import { pino } from "pino";
import { fixturePath } from "../fixture-support.ts";
import { MemorySchemaHistoryStore } from "../schema/schema-history.ts";
import { SchemaTracker } from "../schema/schema-tracker.ts";
import { StreamDecoder } from "../stream-decoder.ts";
import type { DecodedEvent } from "../stream-decoder.ts";
import { CollationTable } from "../values/charsets.ts";
import { readBinlogFile } from "./binlog-file.ts";
import { BinlogWriter, lenenc } from "./binlog-writer.ts";
import { EventType } from "./constants.ts";
import { DecompressionLimitError, defaultDecompressionLimit, MAX_EVENT_BYTES } from "./decompression-limit.ts";
import { EventParser } from "./event-parser.ts";
import { decompressPayload } from "./events.ts";
import { uncompressColumnValue } from "../values/compressed-column.ts";

const MiB = 2 ** 20;
const COMPRESSION_ZSTD = 0;

/** A TRANSACTION_PAYLOAD body: its header fields (the uncompressed size only when `stated` is given), then the data. */
function payloadBody(data: Buffer, stated: number | null): Buffer {
  const field = (type: number, value: number) => {
    const encoded = lenenc(value);
    return Buffer.concat([lenenc(type), lenenc(encoded.length), encoded]);
  };
  return Buffer.concat([field(1, data.length), field(2, COMPRESSION_ZSTD), ...(stated === null ? [] : [field(3, stated)]), lenenc(0), data]);
}

/** A TRANSACTION_PAYLOAD event decompressed whole (decompressPayload, as binlog files are read in tests and tools) under the parser's limit. */
function whole(parser: EventParser, event: Buffer): Buffer {
  const { body } = parser.parse(event);
  assert.equal(body.kind, "payload");
  return decompressPayload((body as Extract<typeof body, { kind: "payload" }>).payload, parser.decompressionLimit);
}

function parserAfterFormat(writer: BinlogWriter, limit: number): EventParser {
  const parser = new EventParser(CollationTable.builtIn());
  parser.parse(writer.formatDescription());
  parser.decompressionLimit = limit;
  return parser;
}

/** zstd of `size` zero bytes: a few kilobytes standing for many megabytes. */
const bomb = (size: number) => zstdCompressSync(Buffer.alloc(size));

describe("decompressing compressed binlog events within a bound", () => {
  it("decompressed whole, a payload whose data decompresses to more than its header states is refused at the stated size", () => {
    const writer = new BinlogWriter();
    const parser = parserAfterFormat(writer, 16 * MiB);
    const data = bomb(64 * MiB);
    assert.ok(data.length < 64 * 1024);
    const event = writer.event(EventType.TRANSACTION_PAYLOAD, payloadBody(data, 1000));
    assert.throws(() => whole(parser, event), (error: unknown) => {
      assert.ok(error instanceof DecompressionLimitError);
      assert.match(error.message, /decompresses to more than the 1000 bytes its header states/);
      return true;
    });
  });

  it("decompressed whole, a payload whose header states a size over the limit is refused before it is decompressed", () => {
    const writer = new BinlogWriter();
    const parser = parserAfterFormat(writer, 16 * MiB);
    // Not zstd at all: decompressing it would fail with zstd's own error, not the limit's.
    const event = writer.event(EventType.TRANSACTION_PAYLOAD, payloadBody(Buffer.from("not zstd data"), 8 * 1024 * MiB));
    assert.throws(() => whole(parser, event), (error: unknown) => {
      assert.ok(error instanceof DecompressionLimitError);
      assert.match(error.message, /states 8589934592 bytes uncompressed, over the limit of 16777216/);
      return true;
    });
  });

  it("decompressed whole, a payload without its uncompressed size is bounded by the limit", () => {
    const writer = new BinlogWriter();
    const parser = parserAfterFormat(writer, 1 * MiB);
    const event = writer.event(EventType.TRANSACTION_PAYLOAD, payloadBody(bomb(8 * MiB), null));
    assert.throws(() => whole(parser, event), (error: unknown) => error instanceof DecompressionLimitError && /more than the limit of 1048576 bytes/.test(error.message));
  });

  it("MySQL 8.0.32's own payload decodes within the default limit and is refused under a limit below its size", async () => {
    const events = (await readBinlogFile(fixturePath("rust_mysql_common/transaction_compression.000001"))).map((e) => e.bytes);
    const payload = events.find((bytes) => bytes[4] === EventType.TRANSACTION_PAYLOAD)!;
    const decode = (limit: number) => {
      const parser = new EventParser(CollationTable.builtIn());
      parser.decompressionLimit = limit;
      for (const bytes of events) if (bytes !== payload) parser.parse(bytes);
      return whole(parser, payload);
    };
    const size = decode(defaultDecompressionLimit()).length;
    assert.ok(size > 0);
    assert.throws(() => decode(size - 1), DecompressionLimitError);
    assert.equal(decode(size).length, size);
  });

  it("MariaDB's QUERY_COMPRESSED stating a length over the limit is refused before it is inflated", () => {
    const writer = new BinlogWriter();
    const parser = parserAfterFormat(writer, 1 * MiB);
    const head = Buffer.alloc(13);
    head.writeUInt8(1, 8);
    const length = Buffer.alloc(4);
    length.writeUInt32BE(0xffff_fff0);
    const statement = Buffer.concat([Buffer.from([0x84]), length, deflateSync(Buffer.from("BEGIN"))]);
    const event = writer.event(EventType.MARIADB_QUERY_COMPRESSED, Buffer.concat([head, Buffer.from("d"), Buffer.from([0]), statement]));
    assert.throws(() => parser.parse(event), (error: unknown) => error instanceof DecompressionLimitError && /states 4294967280 bytes uncompressed/.test(error.message));
  });

  it("a MariaDB COMPRESSED column value is refused when it states more than the limit, before it is inflated", () => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(0xffff_fff0);
    // zlib, four length bytes; the data inflates to 64 MiB (it would be inflated whole, then found shorter than stated).
    const stored = Buffer.concat([Buffer.from([0x84]), length, deflateSync(Buffer.alloc(64 * MiB))]);
    assert.throws(() => uncompressColumnValue(stored, "doc", 16 * MiB), (error: unknown) => error instanceof DecompressionLimitError && /column doc: COMPRESSED value .* states 4294967280 bytes uncompressed, over the limit of 16777216/.test(error.message));
    const small = Buffer.concat([Buffer.from([0x81, 5]), deflateSync(Buffer.from("hello"))]);
    assert.equal(uncompressColumnValue(small, "doc", 16 * MiB).toString(), "hello");
  });

  it("the default limit is a quarter of the heap limit, within 16 MiB and MySQL's largest event", () => {
    const limit = defaultDecompressionLimit();
    assert.ok(limit >= 16 * MiB && limit <= MAX_EVENT_BYTES);
  });

  it("the stream refuses a payload decompressing to more than it states with MYSQL_EVENT_TOO_LARGE naming the source, the binlog position and what to do", async () => {
    const writer = new BinlogWriter();
    const collations = CollationTable.builtIn();
    const logger = pino({ level: "silent" });
    const parser = new EventParser(collations);
    parser.decompressionLimit = 1 * MiB;
    const tracker = new SchemaTracker({ store: new MemorySchemaHistoryStore(), catalog: null, matches: () => true, binding: { sourceName: "shop", collations, zeroDates: "null", mariadb: false }, logger, context: {} });
    const decoder = new StreamDecoder({
      sourceName: "shop",
      flavor: "mysql",
      parser,
      tracker,
      start: { file: "binlog.000012", offset: 4, gtid: null },
      skipThrough: null,
      snapshotThresholds: new Map(),
      logger,
      context: { source: "shop" },
    });
    const out: DecodedEvent[] = [];
    await decoder.apply(writer.formatDescription("8.0.36"), out);
    const start = writer.offset;
    const event = writer.event(EventType.TRANSACTION_PAYLOAD, payloadBody(bomb(32 * MiB), 100));
    await assert.rejects(
      async () => decoder.apply(event, out),
      (error: Error & { code?: string; retriable?: boolean; context?: Record<string, unknown> }) => {
        assert.equal(error.code, "MYSQL_EVENT_TOO_LARGE");
        assert.equal(error.retriable, false);
        assert.match(error.message, /source "shop"/);
        assert.match(error.message, new RegExp(`binlog\\.000012:${start}`));
        assert.match(error.message, /memory/);
        assert.equal(error.context?.["position"], `binlog.000012:${start}`);
        return true;
      },
    );
    assert.deepEqual(out, []);
  });
});
