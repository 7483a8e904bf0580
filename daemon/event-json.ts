/**
 * A lossless JSON form of a ChangeEvent, for records that cannot be Avro (events of a halted
 * table, dead letters): bigints, bytes and the unchanged-TOAST marker survive the round trip.
 */
import type { ChangeEvent } from "../connectors/contracts.ts";
import { UNCHANGED } from "../connectors/contracts.ts";

export function serializeEvent(event: ChangeEvent): string {
  return JSON.stringify(event, (_key, value: unknown) => {
    if (typeof value === "bigint") return { $bigint: value.toString() };
    if (value instanceof Uint8Array) return { $bytes: Buffer.from(value).toString("base64") };
    if (value === UNCHANGED) return { $unchanged: true };
    return value;
  });
}

export function deserializeEvent(text: string): ChangeEvent {
  return JSON.parse(text, (_key, value: unknown) => revive(value)) as ChangeEvent;
}

/** What a tagged object of the lossless form stands for (a bigint, bytes, the unchanged marker); any other value as it is. */
function revive(value: unknown): unknown {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    const tagged = value as Record<string, unknown>;
    if (typeof tagged["$bigint"] === "string") return BigInt(tagged["$bigint"]);
    if (typeof tagged["$bytes"] === "string") return new Uint8Array(Buffer.from(tagged["$bytes"], "base64"));
    if (tagged["$unchanged"] === true) return UNCHANGED;
  }
  return value;
}

/** One value in the lossless form (a parked change's sealed personal values, daemon/governance/parked-personal.ts). */
export function serializeValue(value: unknown): string {
  const out = new JsonBytes();
  writeJson(value, out);
  return out.finish().toString();
}

/** A value of serializeValue's text. */
export function deserializeValue(text: string): unknown {
  return JSON.parse(text, (_key, value: unknown) => revive(value));
}

/**
 * Strings and byte values longer than this are written and read in slices of about this size, so
 * that the JSON text of a large event (a row over topics.max_record_bytes being parked) never exists
 * as one string: the capture thread's heap is planned for records within that limit, and
 * JSON.stringify of a row of two 14 MB images built some 50 MB of strings and ran it out of memory.
 */
const SLICE = 1 << 16;

/** serializeEvent's text as UTF-8 bytes (a Buffer's bytes too, which serializeEvent writes as its toJSON), built without holding it, or a large value's escaped form, as one string. */
export function serializeEventBytes(event: ChangeEvent): Buffer {
  const out = new JsonBytes();
  writeJson(event, out);
  return out.finish();
}

class JsonBytes {
  private readonly chunks: Buffer[] = [];
  private pending = "";

  text(piece: string): void {
    this.pending += piece;
    if (this.pending.length >= SLICE) this.flush();
  }

  private flush(): void {
    if (this.pending.length === 0) return;
    this.chunks.push(Buffer.from(this.pending));
    this.pending = "";
  }

  finish(): Buffer {
    this.flush();
    return Buffer.concat(this.chunks);
  }
}

function writeJson(value: unknown, out: JsonBytes): void {
  if (value instanceof Uint8Array) {
    out.text(`{"$bytes":"`);
    const bytes = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    // Slices of a multiple of 3 bytes: their base64 texts join into the whole's.
    for (let at = 0; at < bytes.length; at += SLICE * 3) out.text(bytes.subarray(at, at + SLICE * 3).toString("base64"));
    return out.text(`"}`);
  }
  if (value !== null && typeof value === "object" && typeof (value as { toJSON?: unknown }).toJSON === "function") value = (value as { toJSON: () => unknown }).toJSON();
  if (typeof value === "bigint") return out.text(`{"$bigint":"${value.toString()}"}`);
  if (value === UNCHANGED) return out.text(`{"$unchanged":true}`);
  if (typeof value === "string") return writeString(value, out);
  if (Array.isArray(value)) {
    out.text("[");
    value.forEach((item, i) => {
      if (i > 0) out.text(",");
      if (item === undefined || typeof item === "function" || (typeof item === "symbol" && item !== UNCHANGED)) out.text("null");
      else writeJson(item, out);
    });
    return out.text("]");
  }
  if (value !== null && typeof value === "object") {
    out.text("{");
    let first = true;
    for (const [key, item] of Object.entries(value)) {
      if (item === undefined || typeof item === "function" || (typeof item === "symbol" && item !== UNCHANGED)) continue;
      out.text(first ? `${JSON.stringify(key)}:` : `,${JSON.stringify(key)}:`);
      first = false;
      writeJson(item, out);
    }
    return out.text("}");
  }
  out.text(JSON.stringify(value) ?? "null");
}

function writeString(value: string, out: JsonBytes): void {
  if (value.length <= SLICE) return out.text(JSON.stringify(value));
  out.text('"');
  for (let at = 0; at < value.length; ) {
    let end = Math.min(value.length, at + SLICE);
    // Not between the two halves of a surrogate pair, which JSON.stringify would escape each alone.
    const last = value.charCodeAt(end - 1);
    if (end < value.length && last >= 0xd800 && last <= 0xdbff) end--;
    const escaped = JSON.stringify(value.slice(at, end));
    out.text(escaped.slice(1, -1));
    at = end;
  }
  out.text('"');
}

/**
 * deserializeEvent of UTF-8 bytes, without making their whole text one string: string literals
 * longer than SLICE bytes are cut out of the text and decoded in slices (base64 ones straight to
 * bytes), and the rest, small, is parsed as usual.
 */
export function deserializeEventBytes(bytes: Uint8Array): ChangeEvent {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const large: { start: number; end: number }[] = [];
  const skeleton: Buffer[] = [];
  let copied = 0;
  for (let i = 0; i < buffer.length; i++) {
    if (buffer[i] !== QUOTE) continue;
    let end = i + 1;
    while (end < buffer.length && buffer[end] !== QUOTE) end += buffer[end] === BACKSLASH ? 2 : 1;
    if (end - i - 1 > SLICE) {
      skeleton.push(buffer.subarray(copied, i), Buffer.from(`{${JSON.stringify(LARGE_MARK)}:${large.length}}`));
      large.push({ start: i + 1, end });
      copied = end + 1;
    }
    i = end;
  }
  if (large.length === 0) return deserializeEvent(buffer.toString());
  skeleton.push(buffer.subarray(copied));
  const literal = (key: string, index: number): string | Uint8Array => {
    const { start, end } = large[index]!;
    const text = buffer.subarray(start, end);
    if (key === "$bytes") {
      const parts: Buffer[] = [];
      for (let at = 0; at < text.length; at += SLICE * 4) parts.push(Buffer.from(text.subarray(at, at + SLICE * 4).toString("latin1"), "base64"));
      return new Uint8Array(Buffer.concat(parts));
    }
    const parts: string[] = [];
    let at = 0;
    let cut = 0;
    while (cut < text.length) {
      // Whole escapes (\n, \uXXXX) and whole UTF-8 sequences: a slice parses on its own.
      const byte = text[cut]!;
      cut += byte === BACKSLASH ? (text[cut + 1] === 0x75 ? 6 : 2) : byte < 0x80 ? 1 : byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : 2;
      if (cut - at >= SLICE || cut >= text.length) {
        parts.push(JSON.parse(`"${text.subarray(at, cut).toString()}"`) as string);
        at = cut;
      }
    }
    return parts.join("");
  };
  return JSON.parse(Buffer.concat(skeleton).toString(), (key: string, value: unknown) => {
    if (value !== null && typeof value === "object" && !Array.isArray(value)) {
      const tagged = value as Record<string, unknown>;
      if (typeof tagged[LARGE_MARK] === "number") return literal(key, tagged[LARGE_MARK]);
      // A large base64 literal, already bytes.
      if (tagged["$bytes"] instanceof Uint8Array) return tagged["$bytes"];
    }
    return revive(value);
  }) as ChangeEvent;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
/** The key of a large literal's placeholder: no event has an object with it (its U+0000 is written escaped in every string). */
const LARGE_MARK = "\u0000large";
