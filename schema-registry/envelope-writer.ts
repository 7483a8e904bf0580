/**
 * Capture's fast encoder of one table's change events (Debezium layout): the key record and the
 * envelope are written straight from the ChangeEvent into one reused buffer by writers compiled
 * from the registered schemas (avro-writer.ts), framed as the wire format says -- without the
 * envelope and row objects that the general path (envelope-codec.ts, then avsc) builds for every
 * change. The source block's values come from the same functions as the general path's.
 *
 * It writes the same bytes and headers as the general path; for a value it cannot write it
 * throws, and ChangeEventEncoder then takes the general path, whose result or error stands.
 */
import type { Type } from "avsc";
import type { ChangeEvent, Row, SourceInfo } from "../connectors/contracts.ts";
import { AvroOutput, AvroWriteError, AvroWriterCompiler, digitCount, UnsupportedSchemaError } from "./avro-writer.ts";
import type { AvroWriter, FieldWriter } from "./avro-writer.ts";
import { POSTGRES_POSITION_FIELDS, POSTGRES_SOURCE_FIELDS, samePostgresBlockButPosition, sequenceOf, sideJson, sourceBlock, SPECIAL_HEADER, UNCHANGED_HEADER, withUnchangedFromBefore } from "./envelope-codec.ts";
import type { EnvelopeExtras, RecordHeaders } from "./envelope-codec.ts";
import type { RowCodec, RowSide } from "./row-codec.ts";
import type { TableAvroMapping } from "./table-mapping.ts";
import { HEADER_LENGTH, MAGIC_BYTE } from "./wire-format.ts";

export interface FastEncodedEvent {
  readonly key: Buffer | null;
  readonly value: Buffer;
  readonly headers: RecordHeaders;
}

/** One change being written: what the envelope's field writers read. */
interface Current {
  event: ChangeEvent;
  extras: EnvelopeExtras;
  processedMs: number;
  beforeSide: RowSide;
  afterSide: RowSide;
}

type Emit = (out: AvroOutput, current: Current) => void;

const NO_EXTRAS: EnvelopeExtras = Object.freeze({});
/** The encoder's current change between two encodes: none (never read then). */
const NO_EVENT = null as unknown as ChangeEvent;
/** The headers of most changes (no unavailable or special values): one object for all of them, never written to. */
const NO_HEADERS: RecordHeaders = Object.freeze({});
const SHARED_OUTPUT = new AvroOutput();

/** The envelope fields this writer knows (envelope-schema.ts); any other schema keeps the general path. */
const ENVELOPE_FIELDS = ["before", "after", "source", "op", "ts_ms", "ts_us", "ts_ns", "transaction"];

/** A record's row writers: the row codec's bindings must be the record's fields, in order. */
function rowWriters(codec: RowCodec, fields: readonly FieldWriter[]): AvroWriter[] {
  const names = codec.bindings.map((binding) => binding.field);
  if (names.length !== fields.length || names.some((name, i) => fields[i]!.name !== name)) throw new UnsupportedSchemaError("record fields are not the row's columns");
  // A row's fields always have a value (null or the type's zero where there is none): no default to fall back on.
  return fields.map((field) => field.present);
}

/** The branches of a ["null", record] union. */
function nullableRecord(type: Type): { nullIndex: number; recordIndex: number; record: Type } {
  const branches = (type as unknown as { types?: readonly Type[] }).types ?? [];
  const names = branches.map((branch) => (branch as unknown as { typeName: string }).typeName);
  const nullIndex = names.indexOf("null");
  const recordIndex = names.indexOf("record");
  if (branches.length !== 2 || nullIndex === -1 || recordIndex === -1) throw new UnsupportedSchemaError("not a nullable record");
  return { nullIndex, recordIndex, record: branches[recordIndex]! };
}

/** Microseconds and nanoseconds of a millisecond time, as avro longs (nanoseconds pass 2^53: bigint). */
function microsOf(ms: number): number | bigint {
  if (!Number.isSafeInteger(ms)) throw new AvroWriteError(`time ${ms} ms is not an integer`);
  const micros = ms * 1000;
  return Number.isSafeInteger(micros) ? micros : BigInt(ms) * 1000n;
}

/** The last value's bigint nanoseconds: a transaction's changes share their commit time, a batch's mostly their processing millisecond. */
class NanosCache {
  private ms = Number.NaN;
  private nanos = 0n;

  of(ms: number): bigint {
    if (ms !== this.ms) {
      if (!Number.isSafeInteger(ms)) throw new AvroWriteError(`time ${ms} ms is not an integer`);
      this.nanos = BigInt(ms) * 1_000_000n;
      this.ms = ms;
    }
    return this.nanos;
  }
}

export class FastEventEncoder {
  private readonly mapping: TableAvroMapping;
  /** Shared by every table's encoder: encode() runs to its end before another starts, and one buffer per table would add up. */
  private readonly out = SHARED_OUTPUT;
  private readonly keyHeader: Buffer | null;
  private readonly valueHeader: Buffer;
  private readonly keyWriters: readonly AvroWriter[] | null;
  private readonly emits: readonly Emit[];
  private readonly current: Current = { event: NO_EVENT, extras: NO_EXTRAS, processedMs: 0, beforeSide: {}, afterSide: {} };

  private constructor(mapping: TableAvroMapping, keyHeader: Buffer | null, valueHeader: Buffer, keyWriters: readonly AvroWriter[] | null, emits: readonly Emit[]) {
    this.mapping = mapping;
    this.keyHeader = keyHeader;
    this.valueHeader = valueHeader;
    this.keyWriters = keyWriters;
    this.emits = emits;
  }

  /** The fast encoder of a mapping's registered schemas, or null where only the general path applies (Sluice's earlier layout). */
  static create(mapping: TableAvroMapping, keyType: Type | null, keySchemaId: number | null, valueType: Type, valueSchemaId: number): FastEventEncoder | null {
    if (mapping.envelope !== "debezium" || !mapping.valueCodec.sideInHeaders) return null;
    try {
      const compiler = new AvroWriterCompiler();
      const keyWriters = keyType && mapping.keyCodec && keySchemaId !== null ? rowWriters(mapping.keyCodec, compiler.fieldsOf(keyType)) : null;
      const fields = compiler.fieldsOf(valueType);
      const envelopeFields = (valueType as unknown as { fields: readonly { name: string; type: Type }[] }).fields;
      if (fields.length !== ENVELOPE_FIELDS.length || fields.some((field, i) => field.name !== ENVELOPE_FIELDS[i])) throw new UnsupportedSchemaError("not the Debezium envelope");
      const rows = nullableRecord(envelopeFields[0]!.type);
      const after = nullableRecord(envelopeFields[1]!.type);
      if (after.record !== rows.record || after.nullIndex !== rows.nullIndex) throw new UnsupportedSchemaError("before and after differ");
      const valueWriters = rowWriters(mapping.valueCodec, compiler.fieldsOf(rows.record));
      const sourceEmit = FastEventEncoder.sourceEmit(compiler, envelopeFields[2]!.type, fields[2]!.write);
      const emits = FastEventEncoder.envelopeEmits(mapping, fields, rows.nullIndex, rows.recordIndex, valueWriters, sourceEmit);
      return new FastEventEncoder(mapping, keySchemaId === null ? null : framingHeader(keySchemaId), framingHeader(valueSchemaId), keyWriters, emits);
    } catch (error) {
      if (error instanceof UnsupportedSchemaError) return null;
      throw error;
    }
  }

  /**
   * The source block: PostgreSQL's written field by field from the SourceInfo (no block object per
   * change) when the schema's source record has exactly POSTGRES_SOURCE_FIELDS; otherwise, and for
   * other sources, sourceBlock's object through the record's writer.
   */
  private static sourceEmit(compiler: AvroWriterCompiler, sourceType: Type, source: AvroWriter): Emit {
    const general: Emit = (out, c) => source(out, sourceBlock(c.event.source, c.extras, true));
    let fields: FieldWriter[];
    try {
      fields = compiler.fieldsOf(sourceType);
    } catch (error) {
      if (error instanceof UnsupportedSchemaError) return general;
      throw error;
    }
    if (fields.length !== POSTGRES_SOURCE_FIELDS.length || fields.some((field, i) => field.name !== POSTGRES_SOURCE_FIELDS[i]![0])) return general;
    const writers = fields.map((field) => field.write);
    const values = POSTGRES_SOURCE_FIELDS.map(([, value]) => value);
    // The sequence text is written from the position, without a string per change, when the field is a nullable string.
    const sequence = POSTGRES_SOURCE_FIELDS.findIndex(([name]) => name === "sequence");
    const stringBranch = nullableStringBranch((sourceType as unknown as { fields: readonly { type: Type }[] }).fields[sequence]!.type);
    if (stringBranch !== undefined) {
      writers[sequence] = (out, info) => writeSequence(out, stringBranch, info as SourceInfo);
      values[sequence] = (info) => info;
    }
    // The fields between sequence and lsn, which come from the change's position, are the same for a transaction's
    // changes: each run of them is written for a transaction's first change and its bytes copied for the others.
    const perChange = (i: number) => POSTGRES_POSITION_FIELDS.includes(POSTGRES_SOURCE_FIELDS[i]![0]);
    const parts: { readonly from: number; readonly to: number; bytes: Buffer | null }[] = [];
    for (let from = 0; from < writers.length; ) {
      let to = from + 1;
      if (!perChange(from)) while (to < writers.length && !perChange(to)) to++;
      parts.push({ from, to, bytes: null });
      from = to;
    }
    const repeated = parts.map((part) => !perChange(part.from));
    let last: SourceInfo | null = null;
    return (out, c) => {
      const info = c.event.source;
      if (info.connector !== "postgres") return general(out, c);
      const same = last !== null && samePostgresBlockButPosition(info, last);
      // Until every part is written: a write that fails leaves no bytes to be taken for the next change's.
      last = null;
      for (let p = 0; p < parts.length; p++) {
        const part = parts[p]!;
        if (same && part.bytes !== null) {
          out.writeFixed(part.bytes);
          continue;
        }
        const start = out.pos;
        for (let i = part.from; i < part.to; i++) writers[i]!(out, values[i]!(info, true));
        if (repeated[p]) part.bytes = Buffer.from(out.buf.subarray(start, out.pos));
      }
      last = info;
    };
  }

  private static envelopeEmits(mapping: TableAvroMapping, fields: readonly FieldWriter[], nullIndex: number, recordIndex: number, valueWriters: readonly AvroWriter[], sourceEmit: Emit): Emit[] {
    const codec = mapping.valueCodec;
    const row = (out: AvroOutput, value: Row | null, side: RowSide) => {
      if (value === null) {
        out.writeLong(nullIndex);
        return;
      }
      out.writeLong(recordIndex);
      codec.writeAvro(value, side, out, valueWriters);
    };
    const [, , , op, tsMs, tsUs, tsNs, transaction] = fields.map((field) => field.write) as [AvroWriter, AvroWriter, AvroWriter, AvroWriter, AvroWriter, AvroWriter, AvroWriter, AvroWriter];
    const nanos = new NanosCache();
    const times: { op: string; ms: number; bytes: Buffer | null } = { op: "", ms: Number.NaN, bytes: null };
    return [
      (out, c) => row(out, c.event.before, c.beforeSide),
      (out, c) => {
        const { before, after } = c.event;
        row(out, after !== null && before !== null ? withUnchangedFromBefore(after, before) : after, c.afterSide);
      },
      sourceEmit,
      // op and the processing times, the same for most changes of a batch: written once, then copied while they are.
      (out, c) => {
        const { op: opValue } = c.event;
        const ms = c.processedMs;
        if (times.bytes !== null && opValue === times.op && ms === times.ms) {
          out.writeFixed(times.bytes);
          return;
        }
        times.bytes = null;
        const start = out.pos;
        op(out, opValue);
        tsMs(out, ms);
        tsUs(out, microsOf(ms));
        tsNs(out, nanos.of(ms));
        times.bytes = Buffer.from(out.buf.subarray(start, out.pos));
        times.op = opValue;
        times.ms = ms;
      },
      (out, c) => {
        const block = c.extras.transaction;
        const txId = c.event.source.txId;
        transaction(out, block && txId !== null ? { id: txId, total_order: block.totalOrder, data_collection_order: block.dataCollectionOrder } : null);
      },
    ];
  }

  encode(event: ChangeEvent, extras: EnvelopeExtras = NO_EXTRAS): FastEncodedEvent {
    const key = event.op !== "t" ? this.encodeKey(event.key) : null;
    // One Current for every change: nothing keeps it (the sides' lists are handed to the headers only).
    const current = this.current;
    current.event = event;
    current.extras = extras;
    current.processedMs = extras.processedAtMs ?? Date.now();
    current.beforeSide.unchanged = current.beforeSide.special = undefined;
    current.afterSide.unchanged = current.afterSide.special = undefined;
    const out = this.out;
    out.reset();
    out.writeFixed(this.valueHeader);
    const emits = this.emits;
    let value: Buffer;
    try {
      for (let i = 0; i < emits.length; i++) emits[i]!(out, current);
      value = out.take();
    } finally {
      // Not kept until the next change: the encoder lives as long as its table's schema, and a large value of its last change with it.
      current.event = NO_EVENT;
      current.extras = NO_EXTRAS;
    }
    const unchanged = sideJson(current.beforeSide.unchanged, current.afterSide.unchanged);
    const special = sideJson(current.beforeSide.special, current.afterSide.special);
    if (unchanged === null && special === null) return { key, value, headers: NO_HEADERS };
    const headers: RecordHeaders = {};
    if (unchanged !== null) headers[UNCHANGED_HEADER] = unchanged;
    if (special !== null) headers[SPECIAL_HEADER] = special;
    return { key, value, headers };
  }

  /** The framed key record of a key row, or null for a table without a key. */
  encodeKey(key: Row): Buffer | null {
    const codec = this.mapping.keyCodec;
    if (!codec || !this.keyWriters || !this.keyHeader) return null;
    const out = this.out;
    out.reset();
    out.writeFixed(this.keyHeader);
    codec.writeAvro(key, undefined, out, this.keyWriters);
    return out.take();
  }
}

/** The branch index of `string` in a union of null and string (how the source block's optional strings are declared), or undefined for any other type. */
function nullableStringBranch(type: Type): number | undefined {
  const branches = (type as unknown as { typeName: string; types?: readonly Type[] }).types;
  if ((type as unknown as { typeName: string }).typeName !== "union:unwrapped" || branches?.length !== 2) return undefined;
  const names = branches.map((branch) => (branch as unknown as { typeName: string }).typeName);
  const index = names.indexOf("string");
  return index !== -1 && names.includes("null") ? index : undefined;
}

const MAX_SAFE_BIG = BigInt(Number.MAX_SAFE_INTEGER);

/** The `sequence` field as sequenceOf's text, `["<commit>","<change>"]`, written digit by digit (positions beyond 2^53 through the text). */
function writeSequence(out: AvroOutput, stringBranch: number, info: SourceInfo): void {
  out.writeLong(stringBranch);
  const { commit, change } = info.position;
  if (commit < 0n || change < 0n || commit > MAX_SAFE_BIG || change > MAX_SAFE_BIG) {
    out.writeString(sequenceOf(info.position));
    return;
  }
  // A transaction's changes share the commit's part, `["<commit>","`.
  if (commit !== lastCommit.commit) lastCommit = { commit, prefix: Buffer.from(`["${commit.toString()}","`, "latin1") };
  const n = Number(change);
  const length = lastCommit.prefix.length + digitCount(n) + 2;
  out.writeLong(length);
  out.writeFixed(lastCommit.prefix);
  out.writeDigits(n);
  out.ensure(2);
  out.buf[out.pos++] = 0x22; // "
  out.buf[out.pos++] = 0x5d; // ]
}

let lastCommit = { commit: -1n, prefix: Buffer.alloc(0) };

/** Magic byte and big-endian schema id (wire-format.ts). */
function framingHeader(schemaId: number): Buffer {
  if (!Number.isInteger(schemaId) || schemaId < 0 || schemaId > 0xffffffff) throw new UnsupportedSchemaError(`schema id ${schemaId}`);
  const header = Buffer.alloc(HEADER_LENGTH);
  header[0] = MAGIC_BYTE;
  header.writeUInt32BE(schemaId, 1);
  return header;
}
