/**
 * The 8-column `bench.items` table that bench/capture-drain.ts writes, as the in-process benches
 * (capture-encode.ts, kafka-clients.ts) model it: its columns and each row's values as PostgreSQL's
 * text output. Data only, so a bench that loads Sluice's modules from another tree can use it too.
 */
import type { TableSchema } from "../connectors/contracts.ts";

/** name, type OID, type as PostgreSQL names it. */
export const COLUMNS: readonly [name: string, oid: number, dbType: string][] = [
  ["id", 20, "bigint"],
  ["account", 23, "integer"],
  ["name", 25, "text"],
  ["email", 25, "text"],
  ["amount", 1700, "numeric(12,2)"],
  ["active", 16, "boolean"],
  ["created_at", 1184, "timestamp with time zone"],
  ["note", 25, "text"],
];

export const ITEMS_SCHEMA: TableSchema = {
  source: "bench",
  database: "app",
  schema: "bench",
  table: "items",
  sourceKind: "postgres",
  key: ["id"],
  columns: COLUMNS.map(([name, , dbType], i) => ({ name, dbType, nullable: i !== 0, ...(i === 0 ? { primaryKeyIndex: 1 } : {}) })),
};

/** Row g's values in column order, as text; an update raises the amount by 1. */
export function itemText(g: number, update: boolean, createdAt: string): string[] {
  const amount = ((g % 100_000) / 100 + (update ? 1 : 0)).toFixed(2);
  return [String(g), String(g % 1000), `name ${g}`, `user${g}@example.com`, amount, g % 2 === 0 ? "t" : "f", createdAt, (g * 2_654_435_761).toString(16).padStart(32, "0").slice(0, 32)];
}

/** A text-heavy table (`--table texts` of capture-encode.ts): a bigint key and seven text columns of varied length and script. */
export const TEXT_COLUMNS: readonly [name: string, oid: number, dbType: string][] = [
  ["id", 20, "bigint"],
  ["title", 25, "text"],
  ["email", 25, "text"],
  ["body", 25, "text"],
  ["city", 25, "text"],
  ["tags", 25, "text"],
  ["greeting", 25, "text"],
  ["note", 25, "text"],
];

export const TEXTS_SCHEMA: TableSchema = {
  ...ITEMS_SCHEMA,
  table: "texts",
  columns: TEXT_COLUMNS.map(([name, , dbType], i) => ({ name, dbType, nullable: i !== 0, ...(i === 0 ? { primaryKeyIndex: 1 } : {}) })),
};

const CITIES = ["Zürich", "København", "東京", "São Paulo", "Kraków", "Paris"];

/** Row g of the text-heavy table as text; an update changes the title. */
export function textRow(g: number, update: boolean): string[] {
  const hex = (g * 2_654_435_761).toString(16).padStart(32, "0");
  return [
    String(g),
    `${update ? "Revised" : "Order"} ${g} for review`,
    `customer${g}@example.com`,
    `Line ${g}: ${"the quick brown fox jumps over the lazy dog ".repeat(4)}${hex}`,
    CITIES[g % CITIES.length]!,
    `tag-${g % 7},tag-${g % 11},tag-${g % 13},priority-${g % 3}`,
    g % 5 === 0 ? "Hello 👋 — ça va?" : "hello",
    g % 4 === 0 ? "" : hex.slice(0, 16),
  ];
}
