import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Row, TableSchema } from "../contracts.ts";
import { UNCHANGED } from "../contracts.ts";
import type { RowChange } from "../sinks/batch.ts";
import { DELETED_COLUMN, VERSION_COLUMN } from "../sinks/columns.ts";
import type { TargetColumn } from "../sinks/columns.ts";
import { ValueRejected } from "../sinks/errors.ts";
import { keyId } from "../sinks/keys.ts";
import { cellOf } from "../sinks/rows.ts";
import { packBodies } from "./bulk.ts";
import { writeIndexOperation } from "./documents.ts";
import type { StoredDocument } from "./documents.ts";
import { encodeJson } from "./json.ts";
import { documentValue } from "./mapping.ts";
import { NdjsonOperations } from "./ndjson-operations.ts";

/** The operation as the sink built it before documents.ts: the document and action objects, each through encodeJson. */
function objectOperation(physical: string | null, columns: readonly TargetColumn[], change: RowChange, stored: StoredDocument | undefined): string[] {
  const id = keyId(change.key, columns.filter((c) => c.key).map((c) => c.name));
  const document: Record<string, unknown> = {};
  for (const column of columns) {
    if (change.deleted && !column.key) continue;
    const value = cellOf(change, column);
    document[column.name] = value === UNCHANGED ? (stored && !stored.deleted ? (stored.source[column.name] ?? null) : null) : documentValue(column.type, value);
  }
  document[VERSION_COLUMN] = change.version;
  document[DELETED_COLUMN] = change.deleted;
  return [encodeJson({ index: { ...(physical === null ? {} : { _index: physical }), _id: id, version: change.version, version_type: "external" } }), encodeJson(document)];
}

/** The operation's NDJSON, written alone. */
function ndjson(physical: string | null, columns: readonly TargetColumn[], change: RowChange, stored: StoredDocument | undefined): string {
  const operations = new NdjsonOperations(16);
  writeIndexOperation(operations, physical, columns, change, stored);
  assert.equal(operations.length, 1);
  return operations.bytesOf([0]).toString();
}
const ndjsonOf = (lines: readonly string[]) => `${lines.join("\n")}\n`;

const COLUMNS: TargetColumn[] = [
  { name: "id", type: { kind: "integer", bits: 64, unsigned: false }, key: true },
  { name: "region", type: { kind: "string" }, key: true },
  { name: "total", type: { kind: "decimal", precision: 12, scale: 2 }, key: false },
  { name: "big", type: { kind: "integer", bits: 64, unsigned: true }, key: false },
  { name: "ratio", type: { kind: "float", bits: 64 }, key: false },
  { name: "doc", type: { kind: "json" }, key: false },
  { name: "at", type: { kind: "timestamp", tz: true }, key: false },
  { name: "tags", type: { kind: "array", element: { kind: "string" } }, key: false },
  { name: "raw", type: { kind: "bytes" }, key: false },
  { name: "note \"quoted\"\n", type: { kind: "string" }, key: false },
];
const SCHEMA = { source: "s", database: "d", schema: "p", table: "t", sourceKind: "postgres", key: ["id", "region"], columns: [] } as unknown as TableSchema;

function change(row: Row | null, version: bigint, key: Row = { id: 7n, region: "eu \"west\"" }): RowChange {
  return { id: "x", key, version, position: { commit: version, change: version }, deleted: row === null, row, schema: SCHEMA, indices: [0] };
}

describe("Elasticsearch bulk operations written as text", () => {
  test("are what encodeJson of the document and action objects gives, field for field", () => {
    const full: Row = { id: 7n, region: "eu \"west\"", total: "12.5", big: 18_446_744_073_709_551_615n, ratio: -0, doc: '{"a":\n[1, 2]}', at: 1_700_000_000_123_456n, tags: ["x", null, "ü"], raw: new Uint8Array([0, 255]), "note \"quoted\"\n": "line\nbreak" };
    const stored: StoredDocument = { version: 3n, deleted: false, source: { total: "1.00", doc: { kept: true }, tags: null } };
    const cases: [RowChange, StoredDocument | undefined][] = [
      [change(full, 10n), undefined],
      [change({ ...full, total: null, ratio: Number.NaN, doc: '"text"', tags: [] }, 2n ** 63n - 1n), undefined],
      [change({ ...full, total: UNCHANGED, doc: UNCHANGED, tags: UNCHANGED }, 11n), stored],
      [change({ ...full, total: UNCHANGED }, 12n), { ...stored, deleted: true }],
      [change({ id: 7n, region: "eu \"west\"" }, 13n), undefined],
      [change(null, 14n), stored],
      [change(full, 0n, { id: -1n, region: "" }), undefined],
    ];
    for (const [i, [rowChange, before]] of cases.entries()) {
      assert.equal(ndjson("sluice_t__v2", COLUMNS, rowChange, before), ndjsonOf(objectOperation("sluice_t__v2", COLUMNS, rowChange, before)), `case ${i}`);
    }
    // An index's columns changed (a new array): the new layout is used.
    const fewer = COLUMNS.slice(0, 3);
    assert.equal(ndjson("sluice_t__v2", fewer, change(full, 15n), undefined), ndjsonOf(objectOperation("sluice_t__v2", fewer, change(full, 15n), undefined)));
  });

  test("leave _index out of the action line for a request that names the index in its path, and name it again when asked after", () => {
    const row: Row = { id: 7n, region: "eu", total: "1.25", big: 1n, ratio: 0.5, doc: "{}", at: 0n, tags: [], raw: new Uint8Array(), "note \"quoted\"\n": "n" };
    for (const [i, physical] of [null, "sluice_t__v2", null].entries()) {
      const written = ndjson(physical, COLUMNS, change(row, 20n), undefined);
      assert.equal(written, ndjsonOf(objectOperation(physical, COLUMNS, change(row, 20n), undefined)), `case ${i}`);
      assert.equal(written.startsWith('{"index":{"_id":'), physical === null, `case ${i}`);
    }
  });

  test("the types written byte by byte (integers, strings, scaled decimals, dates, timestamps, booleans) are what encodeJson gives, for every form of value", () => {
    const columns: TargetColumn[] = [
      { name: "k", type: { kind: "integer", bits: 32, unsigned: false }, key: true },
      { name: "i16", type: { kind: "integer", bits: 16, unsigned: true }, key: false },
      { name: "i64", type: { kind: "integer", bits: 64, unsigned: false }, key: false },
      { name: "s", type: { kind: "string" }, key: false },
      { name: "d", type: { kind: "decimal", precision: 12, scale: 2 }, key: false },
      { name: "d0", type: { kind: "decimal", precision: 5, scale: 0 }, key: false },
      { name: "day", type: { kind: "date" }, key: false },
      { name: "ts", type: { kind: "timestamp", tz: false }, key: false },
      { name: "tstz", type: { kind: "timestamp", tz: true }, key: false },
      { name: "b", type: { kind: "boolean" }, key: false },
    ];
    const rows: Row[] = [
      { k: 1, i16: 65_535, i64: 9_223_372_036_854_775_807n, s: "plain", d: "12.50", d0: "7", day: 0, ts: 0n, tstz: -1n, b: true },
      { k: -2_147_483_648, i16: 0n, i64: -9_007_199_254_740_993n, s: "ü € 😀 \"q\" \\ \n \u0001 \u007f", d: "-0.5", d0: "1e3", day: -719_162, ts: 253_402_300_799_999_999n, tstz: 1_700_000_000_123_456n, b: 0 },
      { k: 3, i16: "42", i64: 9_007_199_254_740_991, s: "\ud800 lone", d: "NaN", d0: "-Infinity", day: 2_932_896, ts: -62_135_596_800_000_000n, tstz: 0, b: 1n },
      { k: 4, i16: null, i64: -0, s: 42n, d: 3, d0: 12_345n, day: null, ts: null, tstz: null, b: false },
      { k: 5, i16: true, i64: "  17 ", s: "", d: " 1.5", d0: "00042", day: 19_000n, ts: 1, tstz: 86_400_000_000n, b: null },
    ];
    for (const [i, row] of rows.entries()) {
      const rowChange = change(row, BigInt(20 + i), { k: row.k ?? 0 });
      assert.equal(ndjson("sluice_t__v3", columns, rowChange, undefined), ndjsonOf(objectOperation("sluice_t__v3", columns, rowChange, undefined)), `row ${i}`);
    }
    const refused: Row[] = [{ k: 1, i16: 65_536 }, { k: 1, i16: -1 }, { k: 1, i64: 1.5 }, { k: 1, i64: 2n ** 63n }, { k: 1, d: "123456789012.5" }, { k: 1, d: "12.345" }, { k: 1, day: 2_932_897 }, { k: 1, b: 2 }, { k: 1, s: new Uint8Array(1) }];
    for (const row of refused) {
      const operations = new NdjsonOperations(16);
      operations.add("{\"delete\":{}}\n");
      const column = Object.keys(row).find((name) => name !== "k");
      assert.throws(() => writeIndexOperation(operations, "i", columns, change(row, 1n, { k: 1 }), undefined), (error: unknown) => error instanceof ValueRejected && error.column === column, JSON.stringify(row, (_, v: unknown) => (typeof v === "bigint" ? String(v) : v)));
      assert.equal(operations.length, 1, "nothing of the refused row is kept");
      writeIndexOperation(operations, "i", columns, change({ k: 2 }, 2n, { k: 2 }), undefined);
      assert.equal(operations.bytesOf([0, 1]).toString(), `{"delete":{}}\n${ndjsonOf(objectOperation("i", columns, change({ k: 2 }, 2n, { k: 2 }), undefined))}`);
    }
  });

  test("refuse what Elasticsearch cannot take, naming the column", () => {
    assert.throws(() => ndjson("i", COLUMNS, change({ id: 7n, region: "r", ratio: "not a number" }, 1n), undefined), (error: unknown) => error instanceof ValueRejected);
    assert.throws(() => ndjson("i", COLUMNS, change({ id: 7n, region: "r" }, -1n), undefined), /outside Elasticsearch's external versions/);
    assert.throws(() => ndjson("i", COLUMNS, change({ id: 7n, region: "r" }, 1n, { id: 7n, region: "r".repeat(600) }), undefined), /512-byte document id limit/);
    assert.throws(() => ndjson("i", COLUMNS, change({ id: 7n, region: UNCHANGED }, 1n, { id: 7n, region: UNCHANGED }), undefined), (error: unknown) => error instanceof ValueRejected);
  });

  test("bulk bodies hold each operation's lines, one per line, within the byte limit", () => {
    const operations = NdjsonOperations.ofLines([["{\"delete\":{}}"], ["{\"index\":{}}", "{\"ü\":1}"], ["{\"index\":{}}", "{}"]]);
    const text = (bodies: { body: Buffer; members: number[] }[]) => bodies.map(({ body, members }) => ({ body: body.toString(), members }));
    const bodies = text(packBodies(operations, 30));
    assert.deepEqual(bodies, [
      { body: "{\"delete\":{}}\n", members: [0] },
      { body: "{\"index\":{}}\n{\"ü\":1}\n", members: [1] },
      { body: "{\"index\":{}}\n{}\n", members: [2] },
    ]);
    assert.deepEqual(text(packBodies(operations, 1000)), [{ body: "{\"delete\":{}}\n{\"index\":{}}\n{\"ü\":1}\n{\"index\":{}}\n{}\n", members: [0, 1, 2] }]);
  });
});
