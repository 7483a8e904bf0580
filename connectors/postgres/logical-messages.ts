/**
 * Logical decoding messages (pg_logical_emit_message) with the outbox prefix, as ChangeEvents of
 * a pseudo-table `pg_logical_message.<prefix>` with one row {prefix, content}: they travel the
 * capture path like row changes (positions, batches, acknowledgement, parking) and the outbox
 * router (daemon/outbox-router.ts) turns them into events.
 */
import type { ChangeEvent, TableSchema } from "../contracts.ts";
import type { EventOrigin } from "./change-events.ts";

/** The schema name of the pseudo-tables of logical messages. */
export const LOGICAL_MESSAGE_SCHEMA = "pg_logical_message";

export function logicalMessageTable(sourceName: string, database: string, prefix: string): TableSchema {
  return {
    source: sourceName,
    database,
    schema: LOGICAL_MESSAGE_SCHEMA,
    table: prefix,
    sourceKind: "postgres",
    columns: [
      { name: "prefix", dbType: "text", nullable: false },
      { name: "content", dbType: "text", nullable: false },
    ],
    key: [],
  };
}

export function logicalMessageEvent(table: TableSchema, content: Buffer, origin: EventOrigin): ChangeEvent {
  return {
    op: "c",
    key: {},
    before: null,
    after: { prefix: table.table, content: content.toString("utf8") },
    source: {
      connector: "postgres",
      name: origin.sourceName,
      db: table.database,
      schema: table.schema,
      table: table.table,
      position: origin.position,
      txId: origin.txId,
      commitTimeMs: origin.commitTimeMs,
      snapshot: false,
    },
    schema: table,
  };
}
