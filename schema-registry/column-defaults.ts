/**
 * Avro defaults from column defaults. A NOT NULL column added with a literal default (ALTER TABLE
 * ... ADD c int NOT NULL DEFAULT 0) then stays a backward-compatible change, as in Debezium.
 * Only plain literals are used; expressions (now(), nextval(...)) give no default.
 */
import type { ColumnAvroType, PresentValue } from "./column-types.ts";

/** The literal a default expression stands for, or undefined when it is an expression or NULL. */
export function literalOfDefault(expression: string): PresentValue | undefined {
  let text = expression.trim();
  for (;;) {
    const unwrapped = /^\((.*)\)$/s.exec(text);
    const cast = /^(.*?)::[a-z_][a-z0-9_ ]*(\(\d+(,\s*\d+)?\))?(\[\])?$/is.exec(text);
    if (unwrapped) text = (unwrapped[1] as string).trim();
    else if (cast) text = (cast[1] as string).trim();
    else break;
  }
  const quoted = /^(?:[a-z]?)'((?:[^']|'')*)'$/is.exec(text);
  if (quoted) return (quoted[1] as string).replace(/''/g, "'");
  if (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) return text;
  const lower = text.toLowerCase();
  if (lower === "true") return true;
  if (lower === "false") return false;
  return undefined;
}

/** The Avro default (JSON) for a column's default expression, when one can be derived exactly. */
export function avroDefaultOf(expression: string | null | undefined, type: ColumnAvroType): unknown {
  if (expression === null || expression === undefined) return undefined;
  const literal = literalOfDefault(expression);
  if (literal === undefined) return undefined;
  let encoded: unknown;
  try {
    encoded = type.toAvro(literal, { special: () => undefined }, "default");
  } catch {
    return undefined;
  }
  return jsonDefault(encoded);
}

function jsonDefault(value: unknown): unknown {
  if (typeof value === "boolean" || typeof value === "string") return value;
  if (typeof value === "number") return Number.isFinite(value) ? value : undefined;
  if (typeof value === "bigint") return Number.isSafeInteger(Number(value)) ? Number(value) : undefined;
  // Avro writes bytes defaults as strings whose code points are the bytes.
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("latin1");
  return undefined;
}
