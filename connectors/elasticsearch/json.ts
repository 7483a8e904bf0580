/**
 * JSON for Elasticsearch that keeps 64-bit integers exact both ways: JSON.stringify cannot write
 * a bigint and JSON.parse rounds integers beyond 2^53, while versions, `long` fields and the
 * numbers inside JSON columns may be that large. Raw JSON text (a JSON column's value) is
 * embedded as it is.
 */
import { Serializer } from "@elastic/elasticsearch";

/** JSON text to embed verbatim. */
export class RawJson {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
}

export function encodeJson(value: unknown): string {
  if (value === null || value === undefined) return "null";
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "number":
      // String(-0) is "0": keep the sign of a negative zero.
      return Number.isFinite(value) ? (Object.is(value, -0) ? "-0.0" : String(value)) : "null";
    case "bigint":
      return value.toString();
    case "boolean":
      return value ? "true" : "false";
    case "object": {
      if (value instanceof RawJson) return value.text;
      if (Array.isArray(value)) return `[${value.map(encodeJson).join(",")}]`;
      let text = "";
      for (const key in value) {
        const field = (value as Record<string, unknown>)[key];
        if (field === undefined) continue;
        text += `${text === "" ? "" : ","}${JSON.stringify(key)}:${encodeJson(field)}`;
      }
      return `{${text}}`;
    }
    default:
      throw new TypeError(`cannot encode ${typeof value} as JSON`);
  }
}

/** Only a run of 16 or more digits can be an integer beyond 2^53. */
const LONG_DIGITS = /\d{16}/;

/** Parses JSON, turning integers beyond 2^53 into bigints (exact, from the source text). */
export function decodeJson(text: string): unknown {
  // The reviver is slow (called for every value): skip it when no number can need it.
  if (!LONG_DIGITS.test(text)) return JSON.parse(text);
  // The reviver's third argument (the source text of primitives) is available since Node 21.
  return JSON.parse(text, (_key: string, value: unknown, context?: { source?: string }) =>
    typeof value === "number" && Number.isInteger(value) && !Number.isSafeInteger(value) && context?.source !== undefined && /^-?\d+$/.test(context.source)
      ? BigInt(context.source)
      : value,
  );
}

/** The client's serializer with exact 64-bit integers in requests and responses. */
export class ExactSerializer extends Serializer {
  override serialize(object: Record<string, unknown>): string {
    return encodeJson(object);
  }

  override deserialize<T = unknown>(json: string): T {
    return decodeJson(json) as T;
  }
}
