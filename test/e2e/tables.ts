/**
 * The tables the end-to-end tests capture, built in a random schema: one with (nearly) every
 * column type, one with a composite key, one keyed by a uuid.
 */
import type pg from "pg";
import type { ColumnDef, Rng, TableDef, WorkloadTable } from "./helpers.ts";
import { createTableSql, randomValue } from "./helpers.ts";

export const ENUM_LABELS = ["happy", "sad", "ok ok", "it's"] as const;

/** Every type the tests cover; ClickHouse/Elasticsearch scenarios use the same table. */
export function typesTable(schema: string): TableDef {
  const columns: ColumnDef[] = [
    { name: "id", sql: "bigint", kind: "int8" },
    { name: "i2", sql: "smallint", kind: "int2" },
    { name: "i4", sql: "integer", kind: "int4" },
    { name: "i8", sql: "bigint", kind: "int8" },
    { name: "dec", sql: "numeric(20,4)", kind: "decimal" },
    { name: "num", sql: "numeric", kind: "numeric" },
    { name: "f4", sql: "real", kind: "float4" },
    { name: "f8", sql: "double precision", kind: "float8" },
    { name: "b", sql: "boolean", kind: "bool" },
    { name: "t", sql: "text", kind: "text" },
    { name: "big", sql: "text", kind: "bigtext" },
    { name: "by", sql: "bytea", kind: "bytea" },
    { name: "d", sql: "date", kind: "date" },
    { name: "ts", sql: "timestamp", kind: "timestamp" },
    { name: "tstz", sql: "timestamptz", kind: "timestamptz" },
    { name: "u", sql: "uuid", kind: "uuid" },
    { name: "j", sql: "json", kind: "json" },
    { name: "jb", sql: "jsonb", kind: "jsonb" },
    { name: "ai", sql: "integer[]", kind: "int[]" },
    { name: "at", sql: "text[]", kind: "text[]" },
    { name: "e", sql: `"${schema}".mood`, kind: "enum" },
  ];
  return { schema, name: "types_all", columns, key: ["id"] };
}

export function ordersTable(schema: string): TableDef {
  return {
    schema,
    name: "orders",
    columns: [
      { name: "region", sql: "text", kind: "text" },
      { name: "id", sql: "integer", kind: "int4" },
      { name: "amount", sql: "numeric(12,2)", kind: "decimal" },
      { name: "note", sql: "text", kind: "text" },
      { name: "doc", sql: "text", kind: "bigtext" },
      { name: "placed", sql: "timestamptz", kind: "timestamptz" },
      { name: "tags", sql: "text[]", kind: "text[]" },
      { name: "paid", sql: "boolean", kind: "bool" },
    ],
    key: ["region", "id"],
  };
}

export function eventsTable(schema: string): TableDef {
  return {
    schema,
    name: "events",
    columns: [
      { name: "eid", sql: "uuid", kind: "uuid" },
      { name: "payload", sql: "jsonb", kind: "jsonb" },
      { name: "n", sql: "bigint", kind: "int8" },
      { name: "day", sql: "date", kind: "date" },
      { name: "score", sql: "double precision", kind: "float8" },
    ],
    key: ["eid"],
  };
}

export async function createSchema(client: pg.Client, schema: string, tables: readonly TableDef[]): Promise<void> {
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(`CREATE TYPE "${schema}".mood AS ENUM (${ENUM_LABELS.map((l) => `'${l.replace(/'/g, "''")}'`).join(", ")})`);
  for (const table of tables) await client.query(createTableSql(table));
}

/** Workload tables with key generators: ids beyond 2^53 for the types table, regions for orders, uuids for events. */
export function workloadTables(tables: readonly TableDef[]): WorkloadTable[] {
  let counter = 0;
  return tables.map((def) => {
    switch (def.name) {
      case "types_all":
        return { def, newKey: () => [String(++counter % 3 === 0 ? 2n ** 60n + BigInt(counter) : BigInt(counter))] };
      case "orders":
        return { def, newKey: (rng: Rng) => [rng.pick(["eu", "us", "ap", "sa west"]), String(++counter)] };
      default:
        return { def, newKey: (rng: Rng) => [randomValue("uuid", rng, { negativeZero: false }) as string] };
    }
  });
}
