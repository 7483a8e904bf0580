/**
 * Inserts and updates read straight from the message's bytes (StreamDecoder's changeFromBytes,
 * wholeRowFromTupleBytes, the ByteDecoders of scalars.ts) give the very events the general reading
 * gives (decodePgoutput, then insertEvent / updateEvents): the same values of the same types
 * (bigint, -0, NaN), the same row property order, the same errors, for every built-in scalar type
 * and the texts at the edges of the ones read from bytes.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { UNCHANGED } from "../contracts.ts";
import type { ChangeEvent, Position } from "../contracts.ts";
import type { CapturedTable } from "./captured-tables.ts";
import { insertEvent, updateEvents, wholeRowFromTupleBytes } from "./change-events.ts";
import type { EventOrigin } from "./change-events.ts";
import { decodePgoutput } from "./protocol/pgoutput.ts";
import type { InsertMessage, UpdateMessage } from "./protocol/pgoutput.ts";
import type { WalMessage } from "./replication-stream.ts";
import { StreamDecoder } from "./stream-decoder.ts";
import type { DecodedOutput } from "./stream-decoder.ts";
import { BUILTIN_SCALAR_DECODERS, BYTE_DECODERS, NOT_DECODED } from "./values/scalars.ts";

const RELID = 0x4000;
/** One column per built-in scalar type, the key first, and the texts each is given (PostgreSQL's and a few it never prints). */
const COLUMNS: readonly { readonly name: string; readonly oid: number; readonly texts: readonly string[] }[] = [
  { name: "id", oid: 20, texts: ["1", "-9223372036854775808", "9223372036854775807", "999999999999999", "-999999999999999", "1000000000000000", "0", "-0", "007"] },
  { name: "i2", oid: 21, texts: ["-32768", "32767", "0", "-0", "12"] },
  { name: "i4", oid: 23, texts: ["-2147483648", "2147483647", "1", "-1", "000"] },
  { name: "o", oid: 26, texts: ["4294967295", "0", "16384"] },
  { name: "f4", oid: 700, texts: ["16777217", "3.4028235e+38", "-0", "NaN", "Infinity", "-Infinity", "1.5", "123456789012345", "1234567890123456"] },
  { name: "f8", oid: 701, texts: ["9007199254740993", "123", "-1.5e-300", "NaN", "-Infinity", "999999999999999", "-0", "1e+308"] },
  { name: "b", oid: 16, texts: ["t", "f"] },
  { name: "t", oid: 25, texts: ["plain", "", "héllo ✓ 😀", "t", "12"] },
  { name: "n", oid: 1700, texts: ["-12.3400", "NaN", "0", "Infinity"] },
  { name: "ts", oid: 1184, texts: ["2026-12-08 00:18:27.123456+00", "infinity", "0044-03-15 12:00:00+00 BC", "-infinity"] },
  { name: "d", oid: 1082, texts: ["2000-01-01", "infinity"] },
  { name: "by", oid: 17, texts: ["\\x0aff", "\\x"] },
  { name: "m", oid: 790, texts: ["-$1,234.56", "$0.00"] },
];

const table: CapturedTable = {
  relid: RELID,
  kind: "r",
  schema: {
    source: "shop",
    database: "db",
    schema: "public",
    table: "wide",
    sourceKind: "postgres",
    columns: COLUMNS.map((c, i) => ({ name: c.name, dbType: String(c.oid), nullable: i > 0, default: null, ...(i === 0 ? { primaryKeyIndex: 1 } : {}) })),
    key: ["id"],
  },
  columns: COLUMNS.map((c) => ({ name: c.name, typeOid: c.oid, typeModifier: -1, sqlType: String(c.oid), decode: BUILTIN_SCALAR_DECODERS.get(c.oid) ?? ((text: string) => text) })),
  keyIndexes: [0],
  keySource: "primary key",
  uniqueKey: true,
  signature: "",
  rowFilter: null,
};

/** A tuple column as pgoutput sends it: a text, NULL, unchanged TOAST or binary. */
type Column = string | null | typeof UNCHANGED | { readonly binary: Buffer };

function tuple(columns: readonly Column[]): Buffer {
  const parts: Buffer[] = [Buffer.from([columns.length >> 8, columns.length & 0xff])];
  for (const column of columns) {
    if (column === null) parts.push(Buffer.from("n"));
    else if (column === UNCHANGED) parts.push(Buffer.from("u"));
    else {
      const bytes = typeof column === "string" ? Buffer.from(column, "utf8") : column.binary;
      const head = Buffer.alloc(5);
      head[0] = typeof column === "string" ? 0x74 : 0x62;
      head.writeUInt32BE(bytes.length, 1);
      parts.push(head, bytes);
    }
  }
  return Buffer.concat(parts);
}

const relationHead = (tag: string) => {
  const head = Buffer.alloc(6);
  head[0] = tag.charCodeAt(0);
  head.writeUInt32BE(RELID, 1);
  head[5] = 0x4e; // 'N'
  return head;
};
const insertPayload = (columns: readonly Column[]) => Buffer.concat([relationHead("I"), tuple(columns)]);
const updatePayload = (columns: readonly Column[]) => Buffer.concat([relationHead("U"), tuple(columns)]);

const COMMIT = 0x5000n;
const CHANGE = 0x4f00n;

function inTransaction(): StreamDecoder {
  const tables = new Map<number, CapturedTable | null>([[RELID, table]]);
  const decoder = new StreamDecoder({ sourceName: "shop", tables, resolveRelation: async () => table, transactionMetadata: false, skipThrough: null });
  const begin = Buffer.alloc(21);
  begin[0] = 0x42; // 'B'
  begin.writeBigUInt64BE(COMMIT, 1);
  begin.writeBigInt64BE(1n, 9);
  begin.writeUInt32BE(7, 17);
  void decoder.apply({ walStart: COMMIT - 0x100n, payload: begin }, { events: [], transactions: [] });
  return decoder;
}

/** What StreamDecoder hands on for one message (its fast path where it applies), or the error it throws. */
function decoded(payload: Buffer): ChangeEvent[] | Error {
  const out: DecodedOutput = { events: [], transactions: [] };
  const message: WalMessage = { walStart: CHANGE, payload };
  try {
    void inTransaction().apply(message, out);
  } catch (error) {
    return error as Error;
  }
  return out.events;
}

/** The general reading of the same message: decodePgoutput, then insertEvent / updateEvents. */
function general(payload: Buffer): ChangeEvent[] | Error {
  const origin: EventOrigin = { sourceName: "shop", position: { commit: COMMIT, change: CHANGE }, txId: "7", commitTimeMs: 946_684_800_000, snapshot: false };
  try {
    const message = decodePgoutput(payload) as InsertMessage | UpdateMessage;
    if (message.tag === "insert") return [insertEvent(table, message.newTuple, origin)];
    return updateEvents(table, message.oldKey, message.oldTuple, message.newTuple, origin);
  } catch (error) {
    return error as Error;
  }
}

function assertSame(payload: Buffer, what: string): void {
  const actual = decoded(payload);
  const expected = general(payload);
  if (expected instanceof Error || actual instanceof Error) {
    assert.ok(actual instanceof Error && expected instanceof Error, `${what}: ${String(actual)} against ${String(expected)}`);
    assert.equal(actual.constructor, expected.constructor, what);
    assert.equal(actual.message, expected.message, what);
    assert.deepEqual((actual as { code?: string }).code, (expected as { code?: string }).code, what);
    return;
  }
  // The events carry the same values of the same types (deepStrictEqual tells 0 from -0 and 1 from 1n) ...
  assert.deepStrictEqual(actual.map((event) => ({ ...event, source: { ...event.source } })), expected.map((event) => ({ ...event, source: { ...event.source } })), what);
  // ... in rows whose columns come in the same order.
  assert.deepEqual(actual.map((event) => Object.keys(event.after ?? {})), expected.map((event) => Object.keys(event.after ?? {})), what);
}

const rows = (): Column[][] => {
  const longest = Math.max(...COLUMNS.map((c) => c.texts.length));
  return Array.from({ length: longest }, (_, r) => COLUMNS.map((c) => c.texts[r % c.texts.length]!));
};

test("an insert or an update read from its bytes gives the general reading's events, for every built-in scalar type and the edge texts", () => {
  for (const row of rows()) {
    assertSame(insertPayload(row), `insert ${row.join(" | ")}`);
    assertSame(updatePayload(row), `update ${row.join(" | ")}`);
  }
});

test("NULL and unchanged TOAST columns read from the bytes are the general reading's, in a row of the same shape", () => {
  const [first] = rows();
  for (let i = 1; i < COLUMNS.length; i++) {
    const withNull = first!.map((text, c) => (c === i ? null : text));
    const withUnchanged = first!.map((text, c) => (c === i ? UNCHANGED : text));
    assertSame(insertPayload(withNull), `NULL in ${COLUMNS[i]!.name}`);
    assertSame(updatePayload(withUnchanged), `unchanged ${COLUMNS[i]!.name}`);
  }
  const events = decoded(updatePayload(first!.map((text, c) => (c === 7 ? UNCHANGED : c === 8 ? null : text))));
  assert.ok(Array.isArray(events));
  assert.equal(events[0]!.after!["t"], UNCHANGED);
  assert.equal(events[0]!.after!["n"], null);
});

test("a change the bytes cannot give is read by the general reading, whose error stands", () => {
  const [first] = rows();
  // No error: an int8 with a plus (BigInt reads it), a tuple with a column less (read as the columns it has), a NULL key (a null value).
  const readAnyway = new Set(["an int8 with a plus", "a tuple with a column less", "a key that is NULL"]);
  const cases: [string, Buffer][] = [
    ["an int4 that is no number", insertPayload(first!.map((text, c) => (c === 2 ? "12x" : text)))],
    ["an int8 with a plus", insertPayload(first!.map((text, c) => (c === 0 ? "+5" : text)))],
    ["a boolean that is neither t nor f", updatePayload(first!.map((text, c) => (c === 6 ? "true" : text)))],
    ["a binary column", insertPayload(first!.map((text, c) => (c === 3 ? { binary: Buffer.from([0, 0, 0, 1]) } : text)))],
    ["a tuple with a column more than the table", insertPayload([...first!, "extra"])],
    ["a tuple with a column less", insertPayload(first!.slice(0, -1))],
    ["a key that is NULL", insertPayload(first!.map((text, c) => (c === 0 ? null : text)))],
    ["a message cut inside a value", insertPayload(first!).subarray(0, 30)],
    ["a message cut after a column's kind", insertPayload(first!).subarray(0, 9)],
    ["a message cut in the column count", insertPayload(first!).subarray(0, 7)],
  ];
  for (const [what, payload] of cases) {
    const actual = decoded(payload);
    assert.equal(actual instanceof Error, !readAnyway.has(what), what);
    assertSame(payload, what);
  }
});

test("a ByteDecoder gives its TextDecoder's value for the texts it reads, and NOT_DECODED for the others", () => {
  const texts = ["0", "-0", "1", "-1", "42", "007", "999999999999999", "-999999999999999", "1000000000000000", "", "-", "+1", " 1", "1 ", "1.0", "1e3", "NaN", "t", "f", "true", "T", "٣", "9".repeat(30)];
  for (const [textDecoder, byteDecoder] of BYTE_DECODERS) {
    for (const text of texts) {
      const bytes = Buffer.from(`xx${text}yy`, "utf8");
      const value = byteDecoder(bytes, 2, bytes.length - 2);
      if (value === NOT_DECODED) continue;
      assert.deepStrictEqual(value, textDecoder(text), `${text}`);
    }
  }
  const int8 = BYTE_DECODERS.get(BUILTIN_SCALAR_DECODERS.get(20)!)!;
  const bytes = Buffer.from("123");
  assert.equal(int8(bytes, 0, 3), 123n);
  assert.equal(int8(Buffer.from("1000000000000000"), 0, 16), NOT_DECODED);
});

test("wholeRowFromTupleBytes reads the row's every column, and leaves a row it cannot read whole to the general reading", () => {
  const position: Position = { commit: COMMIT, change: CHANGE };
  const [first] = rows();
  const row = wholeRowFromTupleBytes(table, tuple(first!), 0, position);
  assert.ok(row !== undefined);
  assert.deepEqual(Object.keys(row), COLUMNS.map((c) => c.name));
  assert.equal(row["id"], 1n);
  assert.equal(row["b"], true);
  assert.equal(wholeRowFromTupleBytes(table, tuple(first!.map((text, c) => (c === 2 ? "no" : text))), 0, position), undefined);
});
