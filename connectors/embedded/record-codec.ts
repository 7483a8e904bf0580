/**
 * The binary layout of one stored batch row: the records of one produce call for one partition,
 * concatenated. Storing a batch per row (as Kafka stores record batches) instead of a row per
 * record is what makes 1 KiB records cheap to write and read.
 *
 * Per record: u32 offset delta from the row's base offset, f64 timestamp (ms), i32 key length
 * (-1: null) + key, i32 value length (-1: tombstone) + value, u16 header count, and per header
 * u16 name length + UTF-8 name, u32 value length + value. Little-endian.
 */

export interface CodecRecord {
  readonly key: Uint8Array | null;
  readonly value: Uint8Array | null;
  readonly headers?: Readonly<Record<string, Uint8Array>> | undefined;
  readonly timestamp: number;
}

export interface DecodedRecord {
  readonly offsetDelta: number;
  readonly timestamp: number;
  readonly key: Uint8Array | null;
  readonly value: Uint8Array | null;
  readonly headers: Readonly<Record<string, Uint8Array>> | undefined;
  /** Encoded size, used for byte bounds and retention by size. */
  readonly size: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Encoded size of a record without header names encoded (they are measured in UTF-8). */
export function encodedSize(record: CodecRecord): number {
  let size = 4 + 8 + 4 + (record.key?.length ?? 0) + 4 + (record.value?.length ?? 0) + 2;
  if (record.headers) {
    for (const name in record.headers) size += 2 + Buffer.byteLength(name) + 4 + record.headers[name]!.length;
  }
  return size;
}

/** Encodes records whose offsets are base + offsetDeltas[i] (consecutive when omitted). */
export function encodeBatch(records: readonly CodecRecord[], totalSize: number, offsetDeltas?: readonly number[]): Uint8Array {
  const out = Buffer.allocUnsafe(totalSize);
  let at = 0;
  for (let i = 0; i < records.length; i++) {
    const record = records[i]!;
    out.writeUInt32LE(offsetDeltas ? offsetDeltas[i]! : i, at);
    out.writeDoubleLE(record.timestamp, at + 4);
    at += 12;
    at = writeBytes(out, at, record.key);
    at = writeBytes(out, at, record.value);
    const names = record.headers ? Object.keys(record.headers) : [];
    out.writeUInt16LE(names.length, at);
    at += 2;
    for (const name of names) {
      const nameBytes = encoder.encode(name);
      out.writeUInt16LE(nameBytes.length, at);
      out.set(nameBytes, at + 2);
      at += 2 + nameBytes.length;
      const value = record.headers![name]!;
      out.writeUInt32LE(value.length, at);
      out.set(value, at + 4);
      at += 4 + value.length;
    }
  }
  if (at !== totalSize) throw new Error(`batch encoding size mismatch: wrote ${at} of ${totalSize} bytes`);
  return out;
}

function writeBytes(out: Buffer, at: number, bytes: Uint8Array | null): number {
  if (bytes === null) {
    out.writeInt32LE(-1, at);
    return at + 4;
  }
  out.writeInt32LE(bytes.length, at);
  out.set(bytes, at + 4);
  return at + 4 + bytes.length;
}

/** Decodes a stored batch; keys, values and header values are views into `payload`. */
export function decodeBatch(payload: Uint8Array): DecodedRecord[] {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const records: DecodedRecord[] = [];
  let at = 0;
  while (at < payload.length) {
    const start = at;
    const offsetDelta = view.getUint32(at, true);
    const timestamp = view.getFloat64(at + 4, true);
    at += 12;
    const keyLength = view.getInt32(at, true);
    at += 4;
    const key = keyLength < 0 ? null : payload.subarray(at, at + keyLength);
    at += Math.max(keyLength, 0);
    const valueLength = view.getInt32(at, true);
    at += 4;
    const value = valueLength < 0 ? null : payload.subarray(at, at + valueLength);
    at += Math.max(valueLength, 0);
    const headerCount = view.getUint16(at, true);
    at += 2;
    let headers: Record<string, Uint8Array> | undefined;
    if (headerCount > 0) {
      headers = {};
      for (let h = 0; h < headerCount; h++) {
        const nameLength = view.getUint16(at, true);
        const name = decoder.decode(payload.subarray(at + 2, at + 2 + nameLength));
        at += 2 + nameLength;
        const valueLength = view.getUint32(at, true);
        headers[name] = payload.subarray(at + 4, at + 4 + valueLength);
        at += 4 + valueLength;
      }
    }
    records.push({ offsetDelta, timestamp, key, value, headers, size: at - start });
  }
  return records;
}

/** Offset deltas and timestamps of a stored batch, skipping keys, values and headers (for the timestamp search). */
export function* recordTimestamps(payload: Uint8Array): Generator<{ offsetDelta: number; timestamp: number }> {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  let at = 0;
  while (at < payload.length) {
    const offsetDelta = view.getUint32(at, true);
    const timestamp = view.getFloat64(at + 4, true);
    at += 12;
    at = skipValueAndHeaders(view, at + 4 + Math.max(view.getInt32(at, true), 0));
    yield { offsetDelta, timestamp };
  }
}

/** Calls `visit` with the bounds in `payload` and the offset delta of each record's key, skipping keyless records, values and headers (for the key index). */
export function forEachKey(payload: Uint8Array, visit: (start: number, end: number, offsetDelta: number) => void): void {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  let at = 0;
  while (at < payload.length) {
    const offsetDelta = view.getUint32(at, true);
    const keyLength = view.getInt32(at + 12, true);
    at += 16;
    if (keyLength >= 0) {
      visit(at, at + keyLength, offsetDelta);
      at += keyLength;
    }
    at = skipValueAndHeaders(view, at);
  }
}

/** Where the record goes on after its value (length-prefixed, -1 for none) and headers, which start at `at`. */
function skipValueAndHeaders(view: DataView, at: number): number {
  at += 4 + Math.max(view.getInt32(at, true), 0);
  const headerCount = view.getUint16(at, true);
  at += 2;
  for (let h = 0; h < headerCount; h++) {
    at += 2 + view.getUint16(at, true);
    at += 4 + view.getUint32(at, true);
  }
  return at;
}
