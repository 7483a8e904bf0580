/**
 * ChangeEvent ↔ the avsc value of its envelope record (envelope-schema.ts).
 *
 * The source position travels in the source block's `sequence` field as `["<commit>","<change>"]`
 * (the layout Debezium's PostgreSQL connector uses for `[last commit LSN, LSN]`), so a consumer
 * gets the exact version to apply by; PostgreSQL also fills `lsn` with the change LSN. Fields
 * Sluice's SourceInfo does not know (MySQL binlog file, server id...) come from `extras` or are
 * left at neutral values ("", 0). Position.resume is not carried: it is for sources, not sinks.
 * `ts_ns` stays null: nanoseconds since the epoch exceed 2^53, which JavaScript consumers using
 * avsc's default long type cannot read, and Sluice's times are milliseconds anyway.
 */
import type { ChangeEvent, Op, Position, Row, SourceInfo } from "../connectors/contracts.ts";
import { DEBEZIUM_CONNECTOR_NAMES } from "./envelope-schema.ts";
import type { AvroRecordValue } from "./row-codec.ts";
import { AvroValueError } from "./schema-errors.ts";
import type { TableAvroMapping } from "./table-mapping.ts";

export const SLUICE_SOURCE_VERSION = "sluice-0.1.0";

export interface EnvelopeExtras {
  /** Debezium's transaction block; present only when given. */
  readonly transaction?: { readonly totalOrder: bigint | number; readonly dataCollectionOrder: bigint | number };
  /** MySQL binlog details Debezium records in the source block. */
  readonly mysql?: {
    readonly serverId?: bigint | number;
    readonly file?: string;
    readonly pos?: bigint | number;
    readonly row?: number;
    readonly thread?: bigint | number;
    readonly query?: string;
  };
  /** When Sluice processed the event (envelope ts_ms), milliseconds; defaults to now. */
  readonly processedAtMs?: number;
}

const OPS: ReadonlySet<string> = new Set<Op>(["c", "u", "d", "r", "t"]);

export function toEnvelope(event: ChangeEvent, mapping: TableAvroMapping, extras: EnvelopeExtras = {}): AvroRecordValue {
  const processedMs = extras.processedAtMs ?? Date.now();
  return {
    before: event.before === null ? null : mapping.valueCodec.toAvro(event.before),
    after: event.after === null ? null : mapping.valueCodec.toAvro(event.after),
    source: sourceBlock(event.source, extras),
    op: event.op,
    ts_ms: processedMs,
    ts_us: BigInt(processedMs) * 1000n,
    ts_ns: null,
    transaction:
      extras.transaction && event.source.txId !== null
        ? { id: event.source.txId, total_order: extras.transaction.totalOrder, data_collection_order: extras.transaction.dataCollectionOrder }
        : null,
  };
}

function sourceBlock(source: SourceInfo, extras: EnvelopeExtras): AvroRecordValue {
  const common = {
    version: SLUICE_SOURCE_VERSION,
    connector: DEBEZIUM_CONNECTOR_NAMES[source.connector],
    name: source.name,
    ts_ms: source.commitTimeMs,
    snapshot: source.snapshot ? "true" : "false",
    db: source.db,
    sequence: JSON.stringify([source.position.commit.toString(), source.position.change.toString()]),
    ts_us: BigInt(source.commitTimeMs) * 1000n,
    ts_ns: null,
  };
  if (source.connector === "postgres") {
    return {
      ...common,
      schema: source.schema,
      table: source.table,
      txId: source.txId !== null && /^\d+$/.test(source.txId) ? BigInt(source.txId) : null,
      lsn: source.position.change,
      xmin: null,
    };
  }
  const mysql = extras.mysql ?? {};
  return {
    ...common,
    table: source.table,
    server_id: mysql.serverId ?? 0,
    gtid: source.txId,
    file: mysql.file ?? "",
    pos: mysql.pos ?? 0,
    row: mysql.row ?? 0,
    thread: mysql.thread ?? null,
    query: mysql.query ?? null,
  };
}

/** Rebuilds the ChangeEvent. `key` is the decoded record key; without it the key is taken from the row. */
export function fromEnvelope(record: AvroRecordValue, mapping: TableAvroMapping, key?: Row): ChangeEvent {
  const op = record.op;
  if (typeof op !== "string" || !OPS.has(op)) throw new AvroValueError(`envelope op ${JSON.stringify(op)} is not one of c, u, d, r, t`);
  const before = record.before ? mapping.valueCodec.fromAvro(record.before as AvroRecordValue) : null;
  const after = record.after ? mapping.valueCodec.fromAvro(record.after as AvroRecordValue) : null;
  const source = record.source as AvroRecordValue;
  const transaction = record.transaction as { id: string } | null;
  const kind = mapping.table.sourceKind;
  const row = after ?? before;
  const sourceInfo: SourceInfo = {
    connector: kind,
    name: String(source.name),
    db: String(source.db),
    schema: kind === "postgres" ? String(source.schema) : String(source.db),
    table: String(source.table ?? mapping.table.table),
    position: positionOf(source),
    txId: transaction?.id ?? (kind === "postgres" ? (source.txId == null ? null : String(source.txId)) : ((source.gtid as string | null) ?? null)),
    commitTimeMs: Number(source.ts_ms),
    snapshot: source.snapshot != null && source.snapshot !== "false",
  };
  return {
    op: op as Op,
    key: key ?? (row === null ? {} : Object.fromEntries(mapping.table.key.map((column) => [column, row[column] ?? null]))),
    before,
    after,
    source: sourceInfo,
    schema: mapping.table,
  };
}

function positionOf(source: AvroRecordValue): Position {
  if (typeof source.sequence === "string") {
    try {
      const [commit, change] = JSON.parse(source.sequence) as [string, string];
      return { commit: BigInt(commit), change: BigInt(change) };
    } catch {
      // fall through to the LSN
    }
  }
  const lsn = typeof source.lsn === "bigint" ? source.lsn : 0n;
  return { commit: lsn, change: lsn };
}
