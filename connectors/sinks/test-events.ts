/**
 * Builds TableSchemas and ChangeEvents for sink tests and benchmarks: one table, versions given
 * explicitly (position = {commit: version, change: version}), topic origins numbered in order.
 */
import { randomBytes } from "node:crypto";
import type { ChangeEvent, ColumnSchema, Op, Row, SinkChange, SourceKind, TableSchema } from "../contracts.ts";

export function randomTableName(prefix = "t"): string {
  return `${prefix}_${randomBytes(5).toString("hex")}`;
}

export function tableSchema(
  table: string,
  columns: readonly (readonly [name: string, dbType: string])[],
  key: readonly string[] = ["id"],
  options: { source?: string; database?: string; schema?: string; sourceKind?: SourceKind } = {},
): TableSchema {
  const schemaColumns: ColumnSchema[] = columns.map(([name, dbType]) => {
    const rank = key.indexOf(name);
    return rank >= 0 ? { name, dbType, nullable: false, primaryKeyIndex: rank + 1 } : { name, dbType, nullable: true };
  });
  return {
    source: options.source ?? "src",
    database: options.database ?? "db",
    schema: options.schema ?? "public",
    table,
    sourceKind: options.sourceKind ?? "postgres",
    columns: schemaColumns,
    key: [...key],
  };
}

export class Events {
  schema: TableSchema;
  readonly topic: string;
  #offset = 0n;

  constructor(schema: TableSchema) {
    this.schema = schema;
    this.topic = `${schema.source}.${schema.schema}.${schema.table}`;
  }

  insert(version: bigint, after: Row, op: Op = "c"): SinkChange {
    return this.#change(op, version, this.#key(after), null, after);
  }

  update(version: bigint, after: Row, before: Row | null = null): SinkChange {
    return this.#change("u", version, this.#key(after), before, after);
  }

  delete(version: bigint, key: Row): SinkChange {
    return this.#change("d", version, this.#key(key), key, null);
  }

  truncate(version: bigint): SinkChange {
    return this.#change("t", version, {}, null, null);
  }

  #key(row: Row): Row {
    return Object.fromEntries(this.schema.key.map((column) => [column, row[column] ?? null]));
  }

  #change(op: Op, version: bigint, key: Row, before: Row | null, after: Row | null): SinkChange {
    const event: ChangeEvent = {
      op,
      key,
      before,
      after,
      source: {
        connector: this.schema.sourceKind,
        name: this.schema.source,
        db: this.schema.database,
        schema: this.schema.schema,
        table: this.schema.table,
        position: { commit: version, change: version },
        txId: null,
        commitTimeMs: 1_700_000_000_000,
        snapshot: op === "r",
      },
      schema: this.schema,
    };
    return { event, origin: { topic: this.topic, partition: 0, offset: this.#offset++ } };
  }
}
