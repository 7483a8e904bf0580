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
import { indexOperation } from "./documents.ts";
import type { StoredDocument } from "./documents.ts";
import { encodeJson } from "./json.ts";
import { documentValue } from "./mapping.ts";
import { NdjsonOperations } from "./ndjson-operations.ts";

/** The operation as the sink built it before documents.ts: the document and action objects, each through encodeJson. */
function objectOperation(physical: string, columns: readonly TargetColumn[], change: RowChange, stored: StoredDocument | undefined): string[] {
  const id = keyId(change.key, columns.filter((c) => c.key).map((c) => c.name));
  const document: Record<string, unknown> = {};
  for (const column of columns) {
    if (change.deleted && !column.key) continue;
    const value = cellOf(change, column);
    document[column.name] = value === UNCHANGED ? (stored && !stored.deleted ? (stored.source[column.name] ?? null) : null) : documentValue(column.type, value);
  }
  document[VERSION_COLUMN] = change.version;
  document[DELETED_COLUMN] = change.deleted;
  return [encodeJson({ index: { _index: physical, _id: id, version: change.version, version_type: "external" } }), encodeJson(document)];
}

const ndjson = (operation: string) => operation;
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
      assert.equal(ndjson(indexOperation("sluice_t__v2", COLUMNS, rowChange, before)), ndjsonOf(objectOperation("sluice_t__v2", COLUMNS, rowChange, before)), `case ${i}`);
    }
    // An index's columns changed (a new array): the new layout is used.
    const fewer = COLUMNS.slice(0, 3);
    assert.equal(ndjson(indexOperation("sluice_t__v2", fewer, change(full, 15n), undefined)), ndjsonOf(objectOperation("sluice_t__v2", fewer, change(full, 15n), undefined)));
  });

  test("refuse what Elasticsearch cannot take, naming the column", () => {
    assert.throws(() => indexOperation("i", COLUMNS, change({ id: 7n, region: "r", ratio: "not a number" }, 1n), undefined), (error: unknown) => error instanceof ValueRejected);
    assert.throws(() => indexOperation("i", COLUMNS, change({ id: 7n, region: "r" }, -1n), undefined), /outside Elasticsearch's external versions/);
    assert.throws(() => indexOperation("i", COLUMNS, change({ id: 7n, region: "r" }, 1n, { id: 7n, region: "r".repeat(600) }), undefined), /512-byte document id limit/);
    assert.throws(() => indexOperation("i", COLUMNS, change({ id: 7n, region: UNCHANGED }, 1n, { id: 7n, region: UNCHANGED }), undefined), (error: unknown) => error instanceof ValueRejected);
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
