/**
 * ChangeEvent <-> the avsc value of its envelope record (envelope-schema.ts).
 *
 * The source position travels in the source block's `sequence` field as `["<commit>","<change>"]`
 * (the layout Debezium's PostgreSQL connector uses for `[last commit LSN, LSN]`), so a consumer
 * gets the exact version to apply by; PostgreSQL also fills `lsn` with the change LSN, MySQL
 * `server_id`, `file`, `pos`, `row` (and `thread`) from the binlog. Position.resume is not
 * carried: it is for sources, not sinks.
 *
 * In the Debezium layout (mapping.envelope "debezium") the value is exactly Debezium's envelope:
 * an unchanged TOAST value is copied from `before` when the replica identity sent it, else it is
 * Debezium's placeholder (`__debezium_unavailable_value`) where the type can hold it; which
 * fields were unavailable, and the NaN/±Infinity of exact numerics, travel in the record headers
 * `sluice.unchanged` and `sluice.special` (JSON, {"before": ..., "after": ...}), so Sluice's sinks
 * still keep the stored value. In Sluice's earlier layout they are fields of the row records.
 */
import type { BinlogCoordinates, ChangeEvent, ColumnValue, Op, Position, Row, SnapshotMarker, SourceInfo } from "../connectors/contracts.ts";
import { UNCHANGED } from "../connectors/contracts.ts";
import { DEBEZIUM_CONNECTOR_NAMES } from "./envelope-schema.ts";
import type { AvroRecordValue, RowSide } from "./row-codec.ts";
import { AvroValueError } from "./schema-errors.ts";
import type { TableAvroMapping } from "./table-mapping.ts";

export const SLUICE_SOURCE_VERSION = "sluice-0.1.0";

/** Record header: fields whose value the source did not send, JSON `{"before"?: [field...], "after"?: [field...]}`. */
export const UNCHANGED_HEADER = "sluice.unchanged";
/** Record header: NaN/±Infinity of exact numerics, JSON `{"before"?: {field: "NaN"}, "after"?: {...}}`. */
export const SPECIAL_HEADER = "sluice.special";

export type RecordHeaders = Record<string, Buffer>;

export interface EnvelopeExtras {
  /** Debezium's transaction block; present only when given. */
  readonly transaction?: { readonly totalOrder: bigint | number; readonly dataCollectionOrder: bigint | number };
  /** MySQL binlog details Debezium records in the source block; default: the event's `source.binlog`. */
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

/** The envelope value of an event (its record headers are dropped; see encodeEnvelope). */
export function toEnvelope(event: ChangeEvent, mapping: TableAvroMapping, extras: EnvelopeExtras = {}): AvroRecordValue {
  return encodeEnvelope(event, mapping, extras).value;
}

/** The envelope value of an event and, in the Debezium layout, the headers with its bookkeeping. */
export function encodeEnvelope(event: ChangeEvent, mapping: TableAvroMapping, extras: EnvelopeExtras = {}): { value: AvroRecordValue; headers: RecordHeaders } {
  const processedMs = extras.processedAtMs ?? Date.now();
  const debezium = mapping.envelope === "debezium";
  const after = debezium && event.after !== null && event.before !== null ? withUnchangedFromBefore(event.after, event.before) : event.after;
  const beforeSide: RowSide = {};
  const afterSide: RowSide = {};
  const value = {
    before: event.before === null ? null : mapping.valueCodec.toAvro(event.before, beforeSide),
    after: after === null ? null : mapping.valueCodec.toAvro(after, afterSide),
    source: sourceBlock(event.source, extras, debezium),
    op: event.op,
    ts_ms: processedMs,
    ts_us: BigInt(processedMs) * 1000n,
    // Beyond 2^53: JavaScript consumers need an exact long type (as Sluice's avro-runtime.ts); the earlier layout left it null.
    ts_ns: debezium ? BigInt(processedMs) * 1_000_000n : null,
    transaction:
      extras.transaction && event.source.txId !== null
        ? { id: event.source.txId, total_order: extras.transaction.totalOrder, data_collection_order: extras.transaction.dataCollectionOrder }
        : null,
  };
  const headers: RecordHeaders = {};
  const unchanged = sideJson(beforeSide.unchanged, afterSide.unchanged);
  if (unchanged !== null) headers[UNCHANGED_HEADER] = unchanged;
  const special = sideJson(beforeSide.special, afterSide.special);
  if (special !== null) headers[SPECIAL_HEADER] = special;
  return { value, headers };
}

export function sideJson(before: unknown, after: unknown): Buffer | null {
  if (before === undefined && after === undefined) return null;
  return Buffer.from(JSON.stringify({ ...(before === undefined ? {} : { before }), ...(after === undefined ? {} : { after }) }));
}

/** As Debezium: an unchanged TOAST value the before-image holds (REPLICA IDENTITY FULL) is the after value too. */
export function withUnchangedFromBefore(after: Row, before: Row): Row {
  let filled: Record<string, ColumnValue> | undefined;
  for (const [column, value] of Object.entries(after)) {
    if (value !== UNCHANGED) continue;
    const previous = before[column];
    if (previous === undefined || previous === UNCHANGED) continue;
    (filled ??= { ...after })[column] = previous;
  }
  return filled ?? after;
}

/** The bookkeeping of a record's headers (Debezium layout), for fromEnvelope. */
const NO_SIDES: { before?: RowSide; after?: RowSide } = Object.freeze({});

export function sideOfHeaders(headers: Readonly<Record<string, Uint8Array>> | undefined): { before?: RowSide; after?: RowSide } {
  // Most records carry neither header: nothing to parse or build.
  if (headers?.[UNCHANGED_HEADER] === undefined && headers?.[SPECIAL_HEADER] === undefined) return NO_SIDES;
  const read = (name: string): Record<string, unknown> => {
    const bytes = headers?.[name];
    return bytes === undefined ? {} : (JSON.parse(Buffer.from(bytes).toString("utf8")) as Record<string, unknown>);
  };
  const unchanged = read(UNCHANGED_HEADER);
  const special = read(SPECIAL_HEADER);
  const side = (part: "before" | "after"): RowSide | undefined => {
    if (unchanged[part] === undefined && special[part] === undefined) return undefined;
    return {
      ...(unchanged[part] === undefined ? {} : { unchanged: unchanged[part] as string[] }),
      ...(special[part] === undefined ? {} : { special: special[part] as Record<string, string> }),
    };
  };
  const before = side("before");
  const after = side("after");
  return { ...(before ? { before } : {}), ...(after ? { after } : {}) };
}

/** The last commit time's microseconds and nanoseconds: the changes of a transaction share it. */
let lastCommitTime = { ms: Number.NaN, us: 0n, ns: 0n };
/** The last PostgreSQL transaction id as a long (or null when it is not a number). */
let lastTxId: { text: string | null; value: bigint | null } = { text: null, value: null };

function commitTimes(ms: number): { us: bigint; ns: bigint } {
  if (ms !== lastCommitTime.ms) lastCommitTime = { ms, us: BigInt(ms) * 1000n, ns: BigInt(ms) * 1_000_000n };
  return lastCommitTime;
}

function postgresTxId(text: string | null): bigint | null {
  if (text !== lastTxId.text) lastTxId = { text, value: text !== null && /^\d+$/.test(text) ? BigInt(text) : null };
  return lastTxId.value;
}

/** The last commit position's part of a sequence, `["<commit>","`: the changes of a transaction share it. */
let lastSequenceCommit = { commit: -1n, prefix: "" };

/** JSON of the two positions' digit strings, ["<commit>","<change>"] (nothing in them needs escaping). */
export function sequenceOf(position: Position): string {
  if (position.commit !== lastSequenceCommit.commit) lastSequenceCommit = { commit: position.commit, prefix: `["${position.commit.toString()}","` };
  return `${lastSequenceCommit.prefix}${position.change.toString()}"]`;
}

function snapshotOf(source: SourceInfo): string {
  return source.snapshot ? (source.snapshotMarker ?? "true") : "false";
}

/**
 * The PostgreSQL source block's fields in order, each from the SourceInfo: what sourceBlock
 * builds, for writers that take the fields one by one without the record object
 * (envelope-writer.ts).
 */
export const POSTGRES_SOURCE_FIELDS: readonly (readonly [name: string, value: (source: SourceInfo, debezium: boolean) => unknown])[] = [
  ["version", () => SLUICE_SOURCE_VERSION],
  ["connector", () => DEBEZIUM_CONNECTOR_NAMES.postgres],
  ["name", (source) => source.name],
  ["ts_ms", (source) => source.commitTimeMs],
  ["snapshot", snapshotOf],
  ["db", (source) => source.db],
  ["sequence", (source) => sequenceOf(source.position)],
  ["ts_us", (source) => commitTimes(source.commitTimeMs).us],
  ["ts_ns", (source, debezium) => (debezium ? commitTimes(source.commitTimeMs).ns : null)],
  ["schema", (source) => source.schema],
  ["table", (source) => source.table],
  ["txId", (source) => postgresTxId(source.txId)],
  ["lsn", (source) => source.position.change],
  ["xmin", () => null],
];

/** The PostgreSQL source block's fields that come from the change's position, different for each change. */
export const POSTGRES_POSITION_FIELDS: readonly string[] = ["sequence", "lsn"];

/**
 * Whether two PostgreSQL SourceInfos give the same values to every field of POSTGRES_SOURCE_FIELDS
 * but the POSTGRES_POSITION_FIELDS: they agree on every other property those fields read (kept in
 * step with them).
 */
export function samePostgresBlockButPosition(a: SourceInfo, b: SourceInfo): boolean {
  return (
    a.commitTimeMs === b.commitTimeMs &&
    a.txId === b.txId &&
    a.table === b.table &&
    a.schema === b.schema &&
    a.db === b.db &&
    a.name === b.name &&
    a.snapshot === b.snapshot &&
    a.snapshotMarker === b.snapshotMarker
  );
}

export function sourceBlock(source: SourceInfo, extras: EnvelopeExtras, debezium: boolean): AvroRecordValue {
  if (source.connector === "postgres") {
    const block: AvroRecordValue = {};
    for (const [name, value] of POSTGRES_SOURCE_FIELDS) block[name] = value(source, debezium);
    return block;
  }
  const times = commitTimes(source.commitTimeMs);
  const sequence = sequenceOf(source.position);
  const snapshot = snapshotOf(source);
  const common = {
    version: SLUICE_SOURCE_VERSION,
    connector: DEBEZIUM_CONNECTOR_NAMES[source.connector],
    name: source.name,
    ts_ms: source.commitTimeMs,
    snapshot,
    db: source.db,
    sequence,
    ts_us: times.us,
    ts_ns: debezium ? times.ns : null,
  };
  const binlog = source.binlog;
  const mysql = extras.mysql ?? (binlog ? { serverId: binlog.serverId, file: binlog.file, pos: binlog.pos, row: binlog.row, ...(binlog.thread === undefined ? {} : { thread: binlog.thread }) } : {});
  return {
    ...common,
    table: source.table,
    server_id: mysql.serverId ?? 0,
    // Without GTIDs the transaction id is Debezium's "file=...,pos=..." (stream-decoder.ts), not a GTID.
    gtid: source.txId !== null && !source.txId.startsWith("file=") ? source.txId : null,
    file: mysql.file ?? "",
    pos: mysql.pos ?? 0,
    row: mysql.row ?? 0,
    thread: mysql.thread ?? null,
    query: mysql.query ?? null,
  };
}

/**
 * Rebuilds the ChangeEvent. `key` is the decoded record key; without it the key is taken from the
 * row. `headers` are the record's (the bookkeeping of the Debezium layout).
 */
export function fromEnvelope(record: AvroRecordValue, mapping: TableAvroMapping, key?: Row, headers?: Readonly<Record<string, Uint8Array>>): ChangeEvent {
  const op = record.op;
  if (typeof op !== "string" || !OPS.has(op)) throw new AvroValueError(`envelope op ${JSON.stringify(op)} is not one of c, u, d, r, t`);
  const side = mapping.envelope === "debezium" ? sideOfHeaders(headers) : NO_SIDES;
  const before = record.before ? mapping.valueCodec.fromAvro(record.before as AvroRecordValue, side.before) : null;
  const after = record.after ? mapping.valueCodec.fromAvro(record.after as AvroRecordValue, side.after) : null;
  const source = record.source as AvroRecordValue;
  const transaction = record.transaction as { id: string } | null;
  const kind = mapping.table.sourceKind;
  const row = after ?? before;
  const sourceInfo: { -readonly [K in keyof SourceInfo]: SourceInfo[K] } = {
    connector: kind,
    name: recent.name.of(String(source.name)),
    db: recent.db.of(String(source.db)),
    schema: recent.schema.of(kind === "postgres" ? String(source.schema) : String(source.db)),
    table: recent.table.of(String(source.table ?? mapping.table.table)),
    position: positionOf(source),
    txId: recent.txId.ofNullable(transaction?.id ?? (kind === "postgres" ? (source.txId == null ? null : recentText.of(source.txId)) : ((source.gtid as string | null) ?? null))),
    commitTimeMs: Number(source.ts_ms),
    snapshot: source.snapshot != null && source.snapshot !== "false",
  };
  // Assigned rather than spread in: a spread of a conditional makes an object per change.
  if (typeof source.snapshot === "string" && SNAPSHOT_MARKERS.has(source.snapshot)) sourceInfo.snapshotMarker = source.snapshot as SnapshotMarker;
  if (kind === "mysql" && typeof source.file === "string" && source.file !== "") sourceInfo.binlog = binlogOf(source);
  return {
    op: op as Op,
    key: key === undefined ? (row === null ? {} : Object.fromEntries(mapping.table.key.map((column) => [column, row[column] ?? null]))) : exactKey(key, row, mapping),
    before,
    after,
    source: sourceInfo,
    schema: mapping.table,
  };
}

/**
 * The record key, with the row's own value for key columns whose Avro form drops something the
 * record headers give back (a timetz's offset, a numeric NaN): key records carry no headers, the
 * row does (and holds every key column).
 */
function exactKey(key: Row, row: Row | null, mapping: TableAvroMapping): Row {
  const codec = mapping.keyCodec;
  if (row === null || codec === null || !codec.hasSpecialField) return key;
  let exact: Record<string, ColumnValue> | undefined;
  for (const { column, type } of codec.bindings) {
    const value = row[column];
    if (!type.mayBeSpecial || value === undefined || value === null || value === UNCHANGED) continue;
    (exact ??= { ...key })[column] = value;
  }
  return exact ?? key;
}

const SNAPSHOT_MARKERS: ReadonlySet<string> = new Set<SnapshotMarker>(["first", "first_in_data_collection", "last_in_data_collection", "last", "incremental"]);

function binlogOf(source: AvroRecordValue): BinlogCoordinates {
  return {
    serverId: Number(source.server_id),
    file: String(source.file),
    pos: Number(source.pos),
    row: Number(source.row),
    ...(source.thread == null ? {} : { thread: Number(source.thread) }),
  };
}

/**
 * Where `","` is in `["<commit>","<change>"]` as sourceBlock writes it (digits only, each at least
 * one), or -1 for any other text: read without JSON.parse or a regular expression (once per change a sink reads).
 */
function plainSequenceComma(sequence: string): number {
  const end = sequence.length - 2;
  if (end < 7 || sequence.charCodeAt(0) !== 91 || sequence.charCodeAt(1) !== 34 || sequence.charCodeAt(end) !== 34 || sequence.charCodeAt(end + 1) !== 93) return -1;
  let comma = -1;
  for (let i = 2; i < end; i++) {
    const code = sequence.charCodeAt(i);
    if (code >= 48 && code <= 57) continue;
    if (comma !== -1 || code !== 34 || sequence.charCodeAt(i + 1) !== 44 || sequence.charCodeAt(i + 2) !== 34) return -1;
    comma = i;
    i += 2;
  }
  return comma > 2 && comma + 3 < end ? comma : -1;
}

/**
 * The last value of a text every change of a table or transaction repeats, handed out again for
 * an equal one: a sink's batch then holds one copy instead of one per change, and the copy just
 * decoded dies young (a sink thread's collector otherwise copies and promotes them with the batch).
 */
class Recent {
  private last: string | null = null;

  of(text: string): string {
    if (text === this.last) return this.last;
    this.last = text;
    return text;
  }

  ofNullable(text: string | null): string | null {
    return text === null ? null : this.of(text);
  }
}

const recent = { name: new Recent(), db: new Recent(), schema: new Recent(), table: new Recent(), txId: new Recent() };

/** The text of the last value given, for the same value again (a transaction's id, read as the same bigint for each of its changes: event-codec.ts REPEATED_FIELDS). */
class RecentText {
  private last: unknown = undefined;
  private text = "";

  of(value: unknown): string {
    if (value !== this.last) {
      this.last = value;
      this.text = String(value);
    }
    return this.text;
  }
}

const recentText = new RecentText();
/** The last commit position read, as text and as bigint: a transaction's changes share it. */
let lastCommit = { text: "", value: 0n };

/** The decimal digits of `text` from `start` to before `end` as a bigint, without a slice of them while they are a safe number. */
function digitsValue(text: string, start: number, end: number): bigint {
  if (end - start > 15) return BigInt(text.slice(start, end));
  let value = 0;
  for (let i = start; i < end; i++) value = value * 10 + text.charCodeAt(i) - 48;
  return BigInt(value);
}

function positionOf(source: AvroRecordValue): Position {
  if (typeof source.sequence === "string") {
    const sequence = source.sequence;
    // `["<commit>","<change>"]` read by character (the regular expression's match made five strings a change); the commit's text only when it changed.
    const comma = plainSequenceComma(sequence);
    if (comma > 0) {
      const commitLength = comma - 2;
      if (commitLength !== lastCommit.text.length || !sequence.startsWith(lastCommit.text, 2)) {
        const text = sequence.slice(2, comma);
        lastCommit = { text, value: BigInt(text) };
      }
      return { commit: lastCommit.value, change: digitsValue(sequence, comma + 3, sequence.length - 2) };
    }
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
