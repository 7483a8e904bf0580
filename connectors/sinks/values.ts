/**
 * Exact conversions of ColumnValues (contracts.ts) shared by the sinks: integers with range
 * checks, decimals scaled without rounding, and the text forms of dates, times and timestamps.
 * Every function throws ValueRejected for a value it cannot represent exactly.
 */
import type { ColumnValue } from "../contracts.ts";
import { UNCHANGED } from "../contracts.ts";
import { ValueRejected } from "./errors.ts";
import { integerRange } from "./logical-type.ts";
import { formatUnscaled, smallUnscaled } from "../../schema-registry/decimal.ts";
import type { IntegerBits } from "./logical-type.ts";

export function describeValue(value: ColumnValue | undefined): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (value === UNCHANGED) return "the unchanged-TOAST marker";
  if (value instanceof Uint8Array) return `${value.length} bytes`;
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  return `${typeof value} ${String(value)}`;
}

const INTEGER_TEXT = /^[+-]?\d+$/;

export function toBigInt(value: ColumnValue): bigint {
  if (typeof value === "bigint") return value;
  if (typeof value === "number" && Number.isInteger(value)) return BigInt(value);
  if (typeof value === "boolean") return value ? 1n : 0n;
  if (typeof value === "string" && INTEGER_TEXT.test(value.trim())) return BigInt(value.trim());
  throw new ValueRejected(`expected an integer, got ${describeValue(value)}`);
}

export function checkedInteger(value: ColumnValue, type: { bits: IntegerBits; unsigned: boolean }): bigint {
  const n = toBigInt(value);
  const { min, max } = integerRange(type);
  if (n < min || n > max) throw new ValueRejected(`${n} is out of range for ${type.unsigned ? "u" : ""}int${type.bits} (${min}..${max})`);
  return n;
}

export function toFloat(value: ColumnValue): number {
  if (typeof value === "number") return value;
  if (typeof value === "bigint") return Number(value);
  if (typeof value === "string") {
    const special = SPECIAL_FLOATS.get(value.trim().toLowerCase());
    if (special !== undefined) return special;
    const n = Number(value);
    if (value.trim() !== "" && !Number.isNaN(n)) return n;
  }
  throw new ValueRejected(`expected a floating-point number, got ${describeValue(value)}`);
}

const SPECIAL_FLOATS = new Map<string, number>([
  ["nan", Number.NaN],
  ["infinity", Number.POSITIVE_INFINITY],
  ["+infinity", Number.POSITIVE_INFINITY],
  ["-infinity", Number.NEGATIVE_INFINITY],
  ["inf", Number.POSITIVE_INFINITY],
  ["-inf", Number.NEGATIVE_INFINITY],
]);

export interface ExactDecimal {
  readonly negative: boolean;
  /** Digits before the point, no leading zeros ("" for zero). */
  readonly integer: string;
  /** Digits after the point, trailing zeros removed. */
  readonly fraction: string;
}

const DECIMAL_TEXT = /^([+-]?)(\d*)(?:\.(\d*))?(?:e([+-]?\d+))?$/i;

/** Parses a decimal's exact digits ("-12.3400", "1e3", 42, 42n); NaN and infinities are rejected. */
export function parseExactDecimal(value: ColumnValue): ExactDecimal {
  let text: string;
  if (typeof value === "string") text = value.trim();
  else if (typeof value === "bigint") text = value.toString();
  else if (typeof value === "number" && Number.isFinite(value)) text = String(value);
  else throw new ValueRejected(`expected a decimal, got ${describeValue(value)}`);
  const match = DECIMAL_TEXT.exec(text);
  if (!match || ((match[2] ?? "") === "" && (match[3] ?? "") === "")) throw new ValueRejected(`expected a decimal, got ${describeValue(value)}`);
  let digits = `${match[2] ?? ""}${match[3] ?? ""}`;
  let point = (match[2] ?? "").length + Number(match[4] ?? 0);
  if (point < 0) {
    digits = "0".repeat(-point) + digits;
    point = 0;
  }
  if (point > digits.length) digits += "0".repeat(point - digits.length);
  const integer = digits.slice(0, point).replace(/^0+/, "");
  const fraction = digits.slice(point).replace(/0+$/, "");
  return { negative: match[1] === "-" && (integer !== "" || fraction !== ""), integer, fraction };
}

/**
 * The decimal scaled to `scale` as an integer (12.5 at scale 2 -> 1250n); rejects lost digits or too many integer digits.
 * Plain text ("-12.50", as decoders give decimals) of at most 15 digits is read in double arithmetic.
 */
export function scaledDecimal(value: ColumnValue, precision: number, scale: number): bigint {
  if (typeof value === "string") {
    const unscaled = plainScaled(value, precision, scale);
    if (unscaled !== undefined) return BigInt(unscaled);
  }
  return generalScaledDecimal(value, precision, scale);
}

/**
 * The unscaled value of plain decimal text ("-?digits[.digits]") that fits `precision` and `scale` and
 * is exact in a double; undefined for any other text (exponents, signs, spaces, lost digits, too large),
 * which the general reading handles or rejects.
 */
function plainScaled(text: string, precision: number, scale: number): number | undefined {
  // Below 10^precision fits: with no integer digits allowed (precision < scale) the general reading decides.
  const unscaled = precision < scale ? undefined : smallUnscaled(text, scale);
  return unscaled === undefined || Math.abs(unscaled) >= 10 ** precision ? undefined : unscaled;
}

/**
 * Text of a decimal with exactly `scale` digits after the point (scale 0: no point): plain text
 * already in that form ("-12.50" at scale 2, as decoders give decimals) is returned as it is.
 */
export function decimalText(value: ColumnValue, precision: number, scale: number): string {
  if (typeof value === "string" && isScaledText(value, precision, scale)) return value;
  return formatUnscaled(scaledDecimal(value, precision, scale), scale);
}

/** Whether `text` is what formatUnscaled writes for a value that fits `precision` and `scale`. */
function isScaledText(text: string, precision: number, scale: number): boolean {
  if (scale < 0) return false;
  const length = text.length;
  const negative = text.charCodeAt(0) === 45;
  let i = negative ? 1 : 0;
  const integerStart = i;
  while (i < length && isDigit(text.charCodeAt(i))) i++;
  const integerLength = i - integerStart;
  // One leading zero only, and only for a zero integer part ("0.50", not "00.50" or "05.00").
  if (integerLength === 0 || (integerLength > 1 && text.charCodeAt(integerStart) === 48)) return false;
  const significant = text.charCodeAt(integerStart) === 48 ? 0 : integerLength;
  if (significant > precision - scale) return false;
  let nonZero = significant > 0;
  if (scale > 0) {
    if (i !== length - scale - 1 || text.charCodeAt(i) !== 46) return false;
    for (i++; i < length; i++) {
      const code = text.charCodeAt(i);
      if (!isDigit(code)) return false;
      if (code !== 48) nonZero = true;
    }
  } else if (i !== length) return false;
  // formatUnscaled writes zero without a sign.
  return !negative || nonZero;
}

function isDigit(code: number): boolean {
  return code >= 48 && code <= 57;
}

/** scaledDecimal through parseExactDecimal, for any value (exported for tests of the double one). */
export function generalScaledDecimal(value: ColumnValue, precision: number, scale: number): bigint {
  const d = parseExactDecimal(value);
  if (d.fraction.length > scale) throw new ValueRejected(`${describeValue(value)} has more than ${scale} digits after the point`);
  if (d.integer.length > precision - scale) throw new ValueRejected(`${describeValue(value)} does not fit decimal(${precision},${scale})`);
  const unscaled = BigInt(`${d.integer}${d.fraction.padEnd(scale, "0")}` || "0");
  return d.negative ? -unscaled : unscaled;
}

/** A decimal's text as given when it is a valid decimal (exact, any scale); NaN/±Infinity kept as words. */
export function plainDecimalText(value: ColumnValue): string {
  if (typeof value === "string") {
    const trimmed = value.trim();
    if (/^[+-]?(nan|infinity|inf)$/i.test(trimmed)) return trimmed.replace(/^\+/, "");
    parseExactDecimal(trimmed);
    return trimmed;
  }
  if (typeof value === "number" && !Number.isFinite(value)) return Number.isNaN(value) ? "NaN" : value > 0 ? "Infinity" : "-Infinity";
  const d = parseExactDecimal(value);
  return `${d.negative ? "-" : ""}${d.integer || "0"}${d.fraction ? `.${d.fraction}` : ""}`;
}

/**
 * PostgreSQL's `infinity` and `-infinity` as the sources carry them (docs/avro-types.md): the
 * largest and smallest 32-bit day counts and 64-bit microsecond counts.
 */
export const DATE_INFINITY_DAYS = 2_147_483_647;
export const DATE_MINUS_INFINITY_DAYS = -2_147_483_648;
export const TIMESTAMP_INFINITY_MICROS = 9_223_372_036_854_775_807n;
export const TIMESTAMP_MINUS_INFINITY_MICROS = -9_223_372_036_854_775_808n;

/** "infinity", "-infinity" or null: whether a date (days) or timestamp (µs) value is one of PostgreSQL's infinities. */
export function infinityOf(value: ColumnValue, kind: "date" | "timestamp"): "infinity" | "-infinity" | null {
  if (typeof value !== "number" && typeof value !== "bigint") return null;
  const n = BigInt(value);
  if (n === (kind === "date" ? BigInt(DATE_INFINITY_DAYS) : TIMESTAMP_INFINITY_MICROS)) return "infinity";
  if (n === (kind === "date" ? BigInt(DATE_MINUS_INFINITY_DAYS) : TIMESTAMP_MINUS_INFINITY_MICROS)) return "-infinity";
  return null;
}

const MICROS_PER_DAY = 86_400_000_000n;
const MIN_DAYS = -719_162; // 0001-01-01
const MAX_DAYS = 2_932_896; // 9999-12-31

function civilFromDays(days: number): { year: number; month: number; day: number } {
  const date = new Date(days * 86_400_000);
  return { year: date.getUTCFullYear(), month: date.getUTCMonth() + 1, day: date.getUTCDate() };
}

export function toDays(value: ColumnValue): number {
  const n = toBigInt(value);
  const infinity = infinityOf(n, "date");
  if (infinity !== null) throw new ValueRejected(`date ${infinity} (PostgreSQL) has no equivalent here: dates must lie within 0001-01-01..9999-12-31`);
  if (n < BigInt(MIN_DAYS) || n > BigInt(MAX_DAYS)) throw new ValueRejected(`date ${n} (days since 1970-01-01) is outside 0001-01-01..9999-12-31`);
  return Number(n);
}

/** "YYYY-MM-DD" for days since 1970-01-01 (years 1..9999). */
export function formatDate(value: ColumnValue): string {
  const { year, month, day } = civilFromDays(toDays(value));
  return `${String(year).padStart(4, "0")}-${pad2(month)}-${pad2(day)}`;
}

const SAFE_MICROS = BigInt(Number.MAX_SAFE_INTEGER);
const MICROS_PER_DAY_NUMBER = 86_400_000_000;
/** The day formatTimestamp formatted last, and its text: a batch's timestamps mostly share a day. */
let lastDay = { days: Number.NaN, text: "" };

/** "YYYY-MM-DD HH:MM:SS.ffffff" (`separator` " " or "T") for microseconds since the epoch. */
export function formatTimestamp(value: ColumnValue, separator: " " | "T" = "T"): string {
  const micros = toBigInt(value);
  // Within ±2^53 µs (years 1685..2255) in doubles, exactly: no BigInt per division (a sink formats one per timestamp value).
  if (micros > -SAFE_MICROS && micros < SAFE_MICROS) {
    const n = Number(micros);
    let days = Math.floor(n / MICROS_PER_DAY_NUMBER);
    let rest = n - days * MICROS_PER_DAY_NUMBER;
    if (rest < 0) {
      days -= 1;
      rest += MICROS_PER_DAY_NUMBER;
    } else if (rest >= MICROS_PER_DAY_NUMBER) {
      days += 1;
      rest -= MICROS_PER_DAY_NUMBER;
    }
    if (days !== lastDay.days) lastDay = { days, text: formatDate(days) };
    const fraction = rest % 1_000_000;
    const seconds = (rest - fraction) / 1_000_000;
    return `${lastDay.text}${separator}${pad2(Math.floor(seconds / 3600))}:${pad2(Math.floor(seconds / 60) % 60)}:${pad2(seconds % 60)}.${String(fraction).padStart(6, "0")}`;
  }
  const infinity = infinityOf(micros, "timestamp");
  if (infinity !== null) throw new ValueRejected(`timestamp ${infinity} (PostgreSQL) has no equivalent here: timestamps must lie within 0001-01-01..9999-12-31`);
  const days = floorDiv(micros, MICROS_PER_DAY);
  const date = formatDate(days);
  return `${date}${separator}${formatTimeOfDay(micros - days * MICROS_PER_DAY)}`;
}

/** "HH:MM:SS.ffffff" for microseconds since midnight (0..24h). */
export function formatTime(value: ColumnValue): string {
  const micros = toBigInt(value);
  if (micros < 0n || micros > MICROS_PER_DAY) throw new ValueRejected(`time ${micros} µs is outside 00:00..24:00`);
  return formatTimeOfDay(micros);
}

/** "[-]H...H:MM:SS.ffffff" for a signed duration in microseconds (MySQL TIME). */
export function formatDuration(value: ColumnValue): string {
  const micros = toBigInt(value);
  const negative = micros < 0n;
  const abs = negative ? -micros : micros;
  const hours = abs / 3_600_000_000n;
  const rest = abs % 3_600_000_000n;
  const text = `${String(hours).padStart(2, "0")}${formatTimeOfDay(rest).slice(2)}`;
  return negative ? `-${text}` : text;
}

function formatTimeOfDay(micros: bigint): string {
  const seconds = micros / 1_000_000n;
  const fraction = micros % 1_000_000n;
  const h = seconds / 3600n;
  const m = (seconds % 3600n) / 60n;
  const s = seconds % 60n;
  return `${pad2(Number(h))}:${pad2(Number(m))}:${pad2(Number(s))}.${String(fraction).padStart(6, "0")}`;
}

function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && a < 0n !== b < 0n ? q - 1n : q;
}

function pad2(n: number): string {
  return String(n).padStart(2, "0");
}

const UUID_TEXT = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

export function uuidText(value: ColumnValue): string {
  if (typeof value !== "string" || !UUID_TEXT.test(value.trim())) throw new ValueRejected(`expected a UUID, got ${describeValue(value)}`);
  const hex = value.trim().replace(/-/g, "").toLowerCase();
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** JSON text after checking it parses (values arrive as their text). */
export function jsonText(value: ColumnValue): string {
  if (typeof value !== "string") throw new ValueRejected(`expected JSON text, got ${describeValue(value)}`);
  try {
    JSON.parse(value);
  } catch (error) {
    throw new ValueRejected(`invalid JSON: ${(error as Error).message}`);
  }
  return value;
}

export function stringText(value: ColumnValue): string {
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "bigint" || typeof value === "boolean") return String(value);
  throw new ValueRejected(`expected a string, got ${describeValue(value)}`);
}

export function bytesValue(value: ColumnValue): Uint8Array {
  if (value instanceof Uint8Array) return value;
  throw new ValueRejected(`expected bytes, got ${describeValue(value)}`);
}

export function booleanValue(value: ColumnValue): boolean {
  if (typeof value === "boolean") return value;
  if (value === 0 || value === 1 || value === 0n || value === 1n) return value === 1 || value === 1n;
  throw new ValueRejected(`expected a boolean, got ${describeValue(value)}`);
}

export function arrayItems(value: ColumnValue): readonly ColumnValue[] {
  if (Array.isArray(value)) return value as readonly ColumnValue[];
  throw new ValueRejected(`expected an array, got ${describeValue(value)}`);
}
