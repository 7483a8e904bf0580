import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { test } from "node:test";
import type { ChangeEvent, TableSchema } from "../../connectors/contracts.ts";
import { UNCHANGED } from "../../connectors/contracts.ts";
import { SluiceError } from "../../connectors/errors.ts";
import { ColumnTransforms } from "./transforms.ts";

const KEY = "0123456789abcdef-secret";
const schema: TableSchema = {
  source: "pg",
  database: "db",
  schema: "app",
  table: "customers",
  sourceKind: "postgres",
  key: ["id"],
  columns: [
    { name: "id", dbType: "integer", nullable: false, primaryKeyIndex: 1 },
    { name: "email", dbType: "character varying(200)", nullable: false, default: "'x'::character varying" },
    { name: "phone", dbType: "text", nullable: true },
    { name: "ssn", dbType: "text", nullable: true },
    { name: "notes", dbType: "text", nullable: true },
    { name: "score", dbType: "integer", nullable: false },
    { name: "secret", dbType: "bytea", nullable: true },
  ],
};

function event(after: Record<string, unknown>, before: Record<string, unknown> | null = null): ChangeEvent {
  return {
    op: before ? "u" : "c",
    key: { id: after["id"] as number },
    before: before as ChangeEvent["before"],
    after: after as ChangeEvent["after"],
    schema,
    source: { connector: "postgres", name: "pg", db: "db", schema: "app", table: "customers", position: { commit: 1n, change: 1n }, txId: null, commitTimeMs: 0, snapshot: false },
  } as unknown as ChangeEvent;
}

const transforms = new ColumnTransforms({
  hash_key: KEY,
  tables: {
    "app.customers": {
      checks: [],
      transforms: {
        email: { kind: "hash" },
        phone: { kind: "mask", keep_last: 4 },
        ssn: { kind: "drop" },
        notes: { kind: "truncate", length: 5 },
        score: { kind: "hash" },
        secret: { kind: "null" },
      },
    },
  },
});

test("each transform rewrites the row images and the table schema", () => {
  const row = { id: 7, email: "ann@example.com", phone: "+33 6 12 34 56 78", ssn: "123-45-6789", notes: "héllo world", score: 42, secret: Buffer.from("x") };
  const out = transforms.apply(event(row, { ...row, email: "old@example.com" }));
  const hmac = (text: string) => createHmac("sha256", KEY).update(text).digest("hex");
  assert.deepEqual(out.after, { id: 7, email: hmac("ann@example.com"), phone: "*************6 78", notes: "héllo", score: hmac("42"), secret: null });
  assert.equal(out.before?.["email"], hmac("old@example.com"));
  assert.equal("ssn" in (out.before ?? {}), false);
  assert.deepEqual(
    out.schema.columns.map((c) => [c.name, c.dbType, c.nullable, c.default]),
    [
      ["id", "integer", false, undefined],
      ["email", "text", false, undefined],
      ["phone", "text", true, undefined],
      ["notes", "text", true, undefined],
      ["score", "text", false, undefined],
      ["secret", "bytea", true, undefined],
    ],
  );
  assert.deepEqual(out.key, { id: 7 });
});

test("hashing is stable across events and instances, so hashed columns still join", () => {
  const again = new ColumnTransforms({ hash_key: KEY, tables: { "app.customers": { checks: [], transforms: { email: { kind: "hash" } } } } });
  const a = transforms.apply(event({ id: 1, email: "same@example.com", score: 1 })).after!["email"];
  const b = again.apply(event({ id: 2, email: "same@example.com", score: 2 })).after!["email"];
  assert.equal(a, b);
  const otherKey = new ColumnTransforms({ hash_key: `${KEY}-other`, tables: { "app.customers": { checks: [], transforms: { email: { kind: "hash" } } } } });
  assert.notEqual(otherKey.apply(event({ id: 1, email: "same@example.com", score: 1 })).after!["email"], a);
});

test("one schema object gives one transformed schema object (the encoder caches by identity)", () => {
  const first = transforms.apply(event({ id: 1, email: "a", score: 1 })).schema;
  const second = transforms.apply(event({ id: 2, email: "b", score: 2 })).schema;
  assert.equal(first, second);
});

test("null and unchanged TOAST values pass through; masking keeps short values readable", () => {
  const out = transforms.apply(event({ id: 1, email: null, phone: "12", notes: UNCHANGED, score: 3 }));
  assert.equal(out.after!["email"], null);
  assert.equal(out.after!["phone"], "12");
  assert.equal(out.after!["notes"], UNCHANGED);
});

test("tables without transforms are untouched (the same event object)", () => {
  const other = { ...event({ id: 1 }), schema: { ...schema, table: "orders" } };
  assert.equal(transforms.apply(other), other);
});

test("a transform of a key column is refused with a table-halting error naming it", () => {
  const keyed = new ColumnTransforms({ tables: { "app.customers": { checks: [], transforms: { id: { kind: "mask", keep_last: 1 } } } } });
  assert.throws(
    () => keyed.apply(event({ id: 1 })),
    (error: unknown) => error instanceof SluiceError && error.code === "SCHEMA_UNSUPPORTED" && /column id of the key cannot be transformed/.test(error.message),
  );
});

test("a transformed column the table does not have (renamed at the source, misspelt) halts the table instead of publishing it untransformed", () => {
  const renamed: TableSchema = { ...schema, columns: schema.columns.map((c) => (c.name === "phone" ? { ...c, name: "mobile" } : c)) };
  assert.throws(
    () => transforms.apply({ ...event({ id: 1, mobile: "555-1234" }), schema: renamed }),
    (error: unknown) => error instanceof SluiceError && error.code === "SCHEMA_UNSUPPORTED" && error.context["column"] === "phone" && /transformed column phone is not a column of the table/.test(error.message),
  );
});
