/**
 * Column transforms at capture (config `sources[].governance.tables.<table>.transforms`): each
 * change event is rewritten before it is encoded, its table schema with it, so the registered
 * schema, the topics and every sink only ever see the result. A transform change is thus a schema
 * change like any other (the registry checks it; an incompatible one halts the table).
 */
import { createHmac, createSecretKey } from "node:crypto";
import type { ChangeEvent, ColumnSchema, ColumnValue, Row, TableSchema } from "../../connectors/contracts.ts";
import { tableName, UNCHANGED } from "../../connectors/contracts.ts";
import { SluiceError } from "../../connectors/errors.ts";
import type { ColumnTransform, GovernanceConfig } from "../../config/governance.ts";
import { absentColumns, absentGoverned } from "./absent-columns.ts";

type ValueTransform = (value: ColumnValue) => ColumnValue;

interface ShapedTable {
  readonly schema: TableSchema;
  /** Per kept column that changes: its value transform; dropped columns are in `dropped`. */
  readonly values: ReadonlyMap<string, ValueTransform>;
  readonly dropped: ReadonlySet<string>;
}

/** Text of a value as the transforms see it: numbers in decimal, bytes in hex, arrays as JSON. */
export function valueText(value: Exclude<ColumnValue, null | typeof UNCHANGED>): string {
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "bigint" || typeof value === "boolean") return String(value);
  if (value instanceof Uint8Array) return Buffer.from(value).toString("hex");
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === "bigint" ? v.toString() : v instanceof Uint8Array ? Buffer.from(v).toString("hex") : v));
}

function valueFunction(transform: ColumnTransform, hashKey: string | undefined): ValueTransform {
  const onText = (f: (text: string) => string): ValueTransform => (value) => (value === null || value === UNCHANGED ? value : f(valueText(value)));
  switch (transform.kind) {
    case "null":
      return (value) => (value === UNCHANGED ? value : null);
    case "mask":
      return onText((text) => {
        const chars = [...text];
        const kept = Math.min(transform.keep_last, chars.length);
        return "*".repeat(chars.length - kept) + chars.slice(chars.length - kept).join("");
      });
    case "truncate":
      return onText((text) => [...text].slice(0, transform.length).join(""));
    case "hash": {
      // A KeyObject spares HMAC setup from importing the key again for every value.
      const key = createSecretKey(Buffer.from(hashKey ?? "", "utf8"));
      return onText((text) => createHmac("sha256", key).update(text, "utf8").digest("hex"));
    }
    case "drop":
      return (value) => value;
  }
}

function shapedColumn(column: ColumnSchema, transform: ColumnTransform): ColumnSchema {
  const { default: _default, ...rest } = column;
  if (transform.kind === "null") return { ...rest, nullable: true };
  // mask, hash, truncate give text; a default of the original type would not fit it.
  return { ...rest, dbType: "text" };
}

/** The column transforms of one source, applied to its change events. */
export class ColumnTransforms {
  private readonly rules: ReadonlyMap<string, Readonly<Record<string, ColumnTransform>>>;
  private readonly hashKey: string | undefined;
  private readonly shaped = new WeakMap<TableSchema, ShapedTable | null>();
  /** Whether any table has a transform. */
  readonly active: boolean;

  constructor(config: GovernanceConfig) {
    this.hashKey = config?.hash_key;
    this.rules = new Map(Object.entries(config?.tables ?? {}).map(([table, rules]) => [table, rules.transforms]));
    this.active = [...this.rules.values()].some((columns) => Object.keys(columns).length > 0);
  }

  /** The event as published: transformed columns rewritten (dropped ones absent), in the row images and the schema. */
  apply(event: ChangeEvent): ChangeEvent {
    if (!this.active) return event;
    const shape = this.shapeOf(event.schema);
    if (shape === null) return event;
    const rewrite = (row: Row | null): Row | null => {
      if (row === null) return null;
      let out: Record<string, ColumnValue>;
      if (shape.dropped.size === 0) out = { ...row };
      else {
        out = {};
        for (const name in row) if (!shape.dropped.has(name)) out[name] = row[name]!;
      }
      for (const [name, f] of shape.values) if (name in row) out[name] = f(row[name]!);
      return out;
    };
    return { ...event, schema: shape.schema, before: rewrite(event.before), after: rewrite(event.after) };
  }

  private shapeOf(schema: TableSchema): ShapedTable | null {
    const known = this.shaped.get(schema);
    if (known !== undefined) return known;
    const table = tableName(schema);
    const rules = this.rules.get(table);
    let shape: ShapedTable | null = null;
    if (rules && Object.keys(rules).length > 0) {
      const keyed = Object.keys(rules).filter((column) => schema.key.includes(column));
      if (keyed.length > 0) {
        throw new SluiceError(
          `table ${table}: column${keyed.length > 1 ? "s" : ""} ${keyed.join(", ")} of the key cannot be transformed (governance.tables.${table}.transforms); the key identifies the row in every topic and sink. Remove the transform, or give the table another key`,
          { code: "SCHEMA_UNSUPPORTED", context: { component: "capture", source: schema.source, table, column: keyed[0] } },
        );
      }
      const absent = absentColumns(Object.keys(rules), schema.columns);
      if (absent.length > 0) {
        throw new SluiceError(`table ${table}: ${absentGoverned(table, schema.source, absent, "transformed", "transforms")}`, {
          code: "SCHEMA_UNSUPPORTED",
          context: { component: "capture", source: schema.source, table, column: absent[0] },
        });
      }
      const dropped = new Set<string>();
      const values = new Map<string, ValueTransform>();
      const columns: ColumnSchema[] = [];
      for (const column of schema.columns) {
        const transform = rules[column.name];
        if (transform === undefined) columns.push(column);
        else if (transform.kind === "drop") dropped.add(column.name);
        else {
          columns.push(shapedColumn(column, transform));
          values.set(column.name, valueFunction(transform, this.hashKey));
        }
      }
      shape = { schema: { ...schema, columns }, values, dropped };
    }
    this.shaped.set(schema, shape);
    return shape;
  }
}
