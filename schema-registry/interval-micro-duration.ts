/**
 * PostgreSQL `interval` as Debezium's default `interval.handling.mode=numeric`: a long
 * `io.debezium.time.MicroDuration`, computed as Debezium computes it (a month is 365.25 / 12 =
 * 30.4375 days, in double arithmetic, truncated to whole microseconds, saturating at the long's
 * range). Months and days do not survive that count, so where the count does not give the
 * source's text back, the text travels in the record header `sluice.special` (as timetz's offset
 * does) and Sluice's sinks store it exactly.
 *
 * Values arrive as PostgreSQL's ISO 8601 text (the connection sets intervalstyle iso_8601), e.g.
 * `P1Y2M3DT4H5M6.789S`, `P-1DT-1S`, `PT0S`.
 */
import type { ColumnValue } from "../connectors/contracts.ts";
import { describeValue } from "./column-types.ts";
import type { ColumnAvroType } from "./column-types.ts";

const DAYS_PER_MONTH = 365.25 / 12;
const INT64_MAX = 2n ** 63n - 1n;
const INT64_MIN = -(2n ** 63n);
const ISO_INTERVAL = /^P(?:(-?\d+)Y)?(?:(-?\d+)M)?(?:(-?\d+)D)?(?:T(?:(-?\d+)H)?(?:(-?\d+)M)?(?:(-?\d+(?:\.\d+)?)S)?)?$/;

/** The signed parts of PostgreSQL's ISO 8601 text of an interval; seconds as their decimal text ("0" when absent). */
export interface IntervalParts {
  readonly years: number;
  readonly months: number;
  readonly days: number;
  readonly hours: number;
  readonly minutes: number;
  readonly seconds: string;
}

export function intervalParts(text: string): IntervalParts {
  const match = ISO_INTERVAL.exec(text);
  if (match === null || text === "P" || text.endsWith("T")) throw new TypeError(`expected an ISO 8601 interval (intervalstyle iso_8601), got ${describeValue(text)}`);
  const [years, months, days, hours, minutes] = match.slice(1, 6).map((part) => Number(part ?? 0)) as [number, number, number, number, number];
  return { years, months, days, hours, minutes, seconds: match[6] ?? "0" };
}

/** Debezium's MicroDuration of an ISO 8601 interval. */
export function intervalMicros(text: string): bigint {
  const parts = intervalParts(text);
  const { years, months, days, hours, minutes } = parts;
  const seconds = Number(parts.seconds);
  const totalDays = (years * 12 + months) * DAYS_PER_MONTH + days;
  const totalSeconds = ((totalDays * 24 + hours) * 60 + minutes) * 60 + seconds;
  const micros = Math.trunc(totalSeconds * 1e6);
  if (micros >= 2 ** 63) return INT64_MAX;
  if (micros <= -(2 ** 63)) return INT64_MIN;
  return BigInt(micros);
}

/** PostgreSQL's ISO 8601 text of an interval of whole hours, minutes and seconds (no months or days). */
export function formatTimeInterval(micros: bigint): string {
  if (micros === 0n) return "PT0S";
  const sign = micros < 0n ? -1n : 1n;
  const abs = micros * sign;
  const hours = abs / 3_600_000_000n;
  const minutes = (abs / 60_000_000n) % 60n;
  const secondMicros = abs % 60_000_000n;
  const signed = (n: bigint): string => (sign < 0n ? "-" : "") + n.toString();
  let text = "PT";
  if (hours !== 0n) text += `${signed(hours)}H`;
  if (minutes !== 0n) text += `${signed(minutes)}M`;
  if (secondMicros !== 0n) {
    const whole = secondMicros / 1_000_000n;
    const fraction = (secondMicros % 1_000_000n).toString().padStart(6, "0").replace(/0+$/, "");
    text += `${signed(whole)}${fraction === "" ? "" : `.${fraction}`}S`;
  }
  return text;
}

function longOf(value: unknown): bigint {
  if (typeof value === "bigint") return value;
  if (typeof value === "number" && Number.isInteger(value)) return BigInt(value);
  throw new TypeError(`expected a long, got ${describeValue(value)}`);
}

export const MICRO_DURATION_INTERVAL: ColumnAvroType = {
  label: "long (MicroDuration)",
  schema: () => ({ type: "long", "connect.name": "io.debezium.time.MicroDuration", "connect.version": 1 }),
  toAvro: (value, context, path) => {
    if (typeof value !== "string") throw new TypeError(`expected an interval, got ${describeValue(value)}`);
    const micros = intervalMicros(value);
    if (formatTimeInterval(micros) !== value) context.special(path, value);
    return micros >= BigInt(Number.MIN_SAFE_INTEGER) && micros <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(micros) : micros;
  },
  fromAvro: (value, context, path): ColumnValue => context.special(path) ?? formatTimeInterval(longOf(value)),
  zero: 0,
  mayBeSpecial: true,
};
