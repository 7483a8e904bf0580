/**
 * MySQL's binary JSON (the JSON column type) to a document tree and to the text MySQL prints
 * (`{"a": 1, "b": [1, 2]}`: ", " and ": " separators, keys in stored order). The tree is kept
 * for partial updates (json-diff.ts), which edit it before it is printed.
 *
 * Layout: a type byte, then for objects/arrays an element count and byte size (2 bytes each in the
 * small form, 4 in the large), key entries (offset, 2-byte length), value entries (type byte and
 * either the value inlined or its offset). Offsets are relative to the start of the container.
 */
import { decodeDecimal } from "./decimal.ts";
import { formatPackedDatetime } from "./temporal.ts";

export type JsonNode =
  | { readonly kind: "object"; readonly entries: [string, JsonNode][] }
  | { readonly kind: "array"; readonly items: JsonNode[] }
  /** A scalar as the JSON text it prints as: `"text"`, `12`, `1.5`, `true`, `null`. */
  | { readonly kind: "scalar"; readonly text: string };

const JsonType = {
  SMALL_OBJECT: 0x00,
  LARGE_OBJECT: 0x01,
  SMALL_ARRAY: 0x02,
  LARGE_ARRAY: 0x03,
  LITERAL: 0x04,
  INT16: 0x05,
  UINT16: 0x06,
  INT32: 0x07,
  UINT32: 0x08,
  INT64: 0x09,
  UINT64: 0x0a,
  DOUBLE: 0x0b,
  STRING: 0x0c,
  OPAQUE: 0x0f,
} as const;

const FIELD_TYPE_NEWDECIMAL = 246;
const FIELD_TYPE_DATE = 10;
const FIELD_TYPE_TIME = 11;
const FIELD_TYPE_DATETIME = 12;
const FIELD_TYPE_TIMESTAMP = 7;

const NULL_NODE: JsonNode = { kind: "scalar", text: "null" };

/** A whole JSON value as logged: type byte first. An empty value is JSON null. */
export function decodeJsonBinary(bytes: Buffer, start: number, end: number): JsonNode {
  if (end <= start) return NULL_NODE;
  return decodeValue(bytes, bytes[start]!, start + 1, end);
}

export function decodeJsonText(bytes: Buffer, start: number, end: number): string {
  return printJson(decodeJsonBinary(bytes, start, end));
}

function decodeValue(bytes: Buffer, type: number, offset: number, end: number): JsonNode {
  switch (type) {
    case JsonType.SMALL_OBJECT:
    case JsonType.LARGE_OBJECT:
    case JsonType.SMALL_ARRAY:
    case JsonType.LARGE_ARRAY:
      return decodeContainer(bytes, type, offset, end);
    case JsonType.LITERAL:
      return literal(bytes[offset]!);
    case JsonType.INT16:
      return scalar(String(bytes.readInt16LE(offset)));
    case JsonType.UINT16:
      return scalar(String(bytes.readUInt16LE(offset)));
    case JsonType.INT32:
      return scalar(String(bytes.readInt32LE(offset)));
    case JsonType.UINT32:
      return scalar(String(bytes.readUInt32LE(offset)));
    case JsonType.INT64:
      return scalar(String(bytes.readBigInt64LE(offset)));
    case JsonType.UINT64:
      return scalar(String(bytes.readBigUInt64LE(offset)));
    case JsonType.DOUBLE:
      return scalar(formatJsonDouble(bytes.readDoubleLE(offset)));
    case JsonType.STRING: {
      const [length, at] = readVariableLength(bytes, offset);
      return scalar(JSON.stringify(bytes.toString("utf8", at, at + length)));
    }
    case JsonType.OPAQUE:
      return decodeOpaque(bytes, offset);
    default:
      throw new RangeError(`unknown JSON value type 0x${type.toString(16)}`);
  }
}

function decodeContainer(bytes: Buffer, type: number, start: number, end: number): JsonNode {
  const large = type === JsonType.LARGE_OBJECT || type === JsonType.LARGE_ARRAY;
  const isObject = type === JsonType.SMALL_OBJECT || type === JsonType.LARGE_OBJECT;
  const width = large ? 4 : 2;
  const read = (at: number) => (large ? bytes.readUInt32LE(at) : bytes.readUInt16LE(at));
  const count = read(start);
  const size = read(start + width);
  if (start + size > end) throw new RangeError(`JSON container of ${size} bytes overruns its value (${end - start} bytes)`);
  const keyEntries = start + 2 * width;
  const valueEntries = keyEntries + (isObject ? count * (width + 2) : 0);
  const valueAt = (index: number): JsonNode => {
    const entry = valueEntries + index * (1 + width);
    const valueType = bytes[entry]!;
    if (isInlined(valueType, large)) return decodeValue(bytes, valueType, entry + 1, end);
    return decodeValue(bytes, valueType, start + read(entry + 1), start + size);
  };
  if (!isObject) {
    const items: JsonNode[] = [];
    for (let i = 0; i < count; i++) items.push(valueAt(i));
    return { kind: "array", items };
  }
  const entries: [string, JsonNode][] = [];
  for (let i = 0; i < count; i++) {
    const keyEntry = keyEntries + i * (width + 2);
    const keyOffset = start + read(keyEntry);
    const keyLength = bytes.readUInt16LE(keyEntry + width);
    entries.push([bytes.toString("utf8", keyOffset, keyOffset + keyLength), valueAt(i)]);
  }
  return { kind: "object", entries };
}

function isInlined(type: number, large: boolean): boolean {
  return type === JsonType.LITERAL || type === JsonType.INT16 || type === JsonType.UINT16 || (large && (type === JsonType.INT32 || type === JsonType.UINT32));
}

/** Lengths of strings and opaque values: 7 bits per byte, low bits first, high bit = more. */
function readVariableLength(bytes: Buffer, offset: number): [number, number] {
  let length = 0;
  for (let i = 0; i < 5; i++) {
    const byte = bytes[offset + i]!;
    length |= (byte & 0x7f) << (7 * i);
    if ((byte & 0x80) === 0) return [length >>> 0, offset + i + 1];
  }
  throw new RangeError("JSON variable length is too long");
}

function decodeOpaque(bytes: Buffer, offset: number): JsonNode {
  const fieldType = bytes[offset]!;
  const [length, at] = readVariableLength(bytes, offset + 1);
  switch (fieldType) {
    case FIELD_TYPE_NEWDECIMAL:
      return scalar(decodeDecimal(bytes, at + 2, bytes[at]!, bytes[at + 1]!));
    case FIELD_TYPE_DATE:
      return scalar(JSON.stringify(formatPackedDatetime(bytes.readBigInt64LE(at), "date")));
    case FIELD_TYPE_TIME:
      return scalar(JSON.stringify(formatPackedDatetime(bytes.readBigInt64LE(at), "time")));
    case FIELD_TYPE_DATETIME:
    case FIELD_TYPE_TIMESTAMP:
      return scalar(JSON.stringify(formatPackedDatetime(bytes.readBigInt64LE(at), "datetime")));
    default:
      return scalar(JSON.stringify(`base64:type${fieldType}:${bytes.toString("base64", at, at + length)}`));
  }
}

function literal(code: number): JsonNode {
  if (code === 0x00) return NULL_NODE;
  if (code === 0x01) return scalar("true");
  if (code === 0x02) return scalar("false");
  throw new RangeError(`unknown JSON literal 0x${code.toString(16)}`);
}

function scalar(text: string): JsonNode {
  return { kind: "scalar", text };
}

/** Doubles as MySQL prints them in JSON: shortest round-trip digits, ".0" on integral values, exponent without "+". */
export function formatJsonDouble(value: number): string {
  const text = String(value).replace("e+", "e");
  return /^-?\d+$/.test(text) ? `${text}.0` : text;
}

export function printJson(node: JsonNode): string {
  switch (node.kind) {
    case "scalar":
      return node.text;
    case "array":
      return `[${node.items.map(printJson).join(", ")}]`;
    case "object":
      return `{${node.entries.map(([key, value]) => `${JSON.stringify(key)}: ${printJson(value)}`).join(", ")}}`;
  }
}
