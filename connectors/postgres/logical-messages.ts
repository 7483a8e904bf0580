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
      // Set only for a message over outbox.max_message_bytes: its size in bytes, `content` then holding its first bytes alone.
      { name: "content_bytes", dbType: "bigint", nullable: true },
    ],
    key: [],
  };
}

/** What is kept of a message (or an outbox row's payload) over outbox.max_message_bytes: its first bytes, at most this many. */
export const OUTBOX_KEPT_PREFIX_BYTES = 64 * 1024;

/**
 * `content` over `maxBytes` is not made a string: only its first bytes (OUTBOX_KEPT_PREFIX_BYTES, cut at a character's
 * start) and its size are kept, so the event, its batch and its dead letter never hold it whole; pgoutput sends the
 * message as one piece, so its bytes were in memory once, in the read-ahead, and are let go of with it.
 */
export function logicalMessageEvent(table: TableSchema, content: Buffer, origin: EventOrigin, maxBytes = Number.POSITIVE_INFINITY): ChangeEvent {
  const whole = content.length <= maxBytes;
  return {
    op: "c",
    key: {},
    before: null,
    after: whole ? { prefix: table.table, content: content.toString("utf8") } : { prefix: table.table, content: utf8Prefix(content, Math.min(maxBytes, OUTBOX_KEPT_PREFIX_BYTES)), content_bytes: content.length },
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

/** The text of `bytes`' first `at most` bytes, cut before a character that would be split. */
export function utf8Prefix(bytes: Uint8Array, atMost: number): string {
  let end = Math.min(atMost, bytes.length);
  // A continuation byte (10xxxxxx) at the cut: back to the start of its character.
  if (end < bytes.length) while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return Buffer.from(bytes.buffer, bytes.byteOffset, end).toString("utf8");
}
