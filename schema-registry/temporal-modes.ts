/**
 * Debezium's `time.precision.mode` for dates, times and timestamps (docs/avro-types.md has the table):
 *
 * - `adaptive` (Debezium's default): Debezium's semantic types, the unit following the column's
 *   precision -- `io.debezium.time.Date` (days), `Time` (ms) / `MicroTime` (µs), `Timestamp` (ms) /
 *   `MicroTimestamp` (µs) for timestamps without a zone, `ZonedTimestamp` (ISO-8601 text in UTC)
 *   for timestamps with one (PostgreSQL `timestamptz`, MySQL `TIMESTAMP`), `ZonedTime` (ISO-8601
 *   text in UTC) for PostgreSQL `timetz`. MySQL `TIME` is always `MicroTime` (Debezium's MySQL
 *   default, adaptive_time_microseconds).
 * - `connect`: Kafka Connect's logical types, milliseconds (`date`, `time-millis`,
 *   `timestamp-millis`); finer digits are dropped, as Debezium does. `timetz` is `ZonedTime` here too.
 * - `avro`: the Avro specification's `date`, `time-micros`, `timestamp-micros` (Sluice before 0.2).
 *
 * Every form decodes to the same ColumnValue (days; microseconds), so sinks are unaffected.
 */
import { civilDate, daysFromCivil, digitsAt } from "../connectors/common/civil-calendar.ts";
import type { ColumnValue } from "../connectors/contracts.ts";
import { civilTimestamp, dateColumn, describeValue, microDurationColumn, refuseTimestampText, stringColumn, timeMicrosColumn, timestampMicrosColumn } from "./column-types.ts";
import type { AvroSchemaJson } from "./avro-schema.ts";
import type { ColumnAvroType, PresentValue } from "./column-types.ts";

export type TimePrecisionMode = "adaptive" | "connect" | "avro";

const INT64_MAX = 2n ** 63n - 1n;
const INT64_MIN = -(2n ** 63n);
const INT32_MAX = 2 ** 31 - 1;
const INT32_MIN = -(2 ** 31);

/** The column's fractional-second precision: its declared one, else 6. */
export function fractionDigits(args: readonly string[]): number {
  const declared = Number(args[0]);
  return args.length > 0 && Number.isInteger(declared) ? declared : 6;
}

function marked(base: ColumnAvroType, label: string, props: Readonly<Record<string, unknown>>): ColumnAvroType {
  return { ...base, label, schema: (scope) => ({ ...withoutLogicalType(base, scope), ...props }) as AvroSchemaJson };
}

/** The base type's JSON without its logical type (a semantic marker replaces it). */
function withoutLogicalType(base: ColumnAvroType, scope: Parameters<ColumnAvroType["schema"]>[0]): Record<string, unknown> {
  const schema = { ...(base.schema(scope) as Record<string, unknown>) };
  delete schema.logicalType;
  return schema;
}

function micros(value: PresentValue): bigint {
  if (typeof value === "bigint") return value;
  if (typeof value === "number" && Number.isInteger(value)) return BigInt(value);
  if (typeof value === "string" && /^[+-]?\d+$/.test(value.trim())) return BigInt(value.trim());
  refuseTimestampText(value);
  throw new TypeError(`expected microseconds, got ${describeValue(value)}`);
}

function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && a < 0n !== b < 0n ? q - 1n : q;
}

/**
 * Microseconds carried as milliseconds. PostgreSQL's infinity sentinels (the largest and smallest
 * longs) stay the largest and smallest value of the type, and come back as the sentinels.
 */
function millisColumn(base: ColumnAvroType, label: string, avroType: "int" | "long", props: Readonly<Record<string, unknown>>, asNumber: boolean): ColumnAvroType {
  const max = avroType === "int" ? BigInt(INT32_MAX) : INT64_MAX;
  const min = avroType === "int" ? BigInt(INT32_MIN) : INT64_MIN;
  return {
    ...base,
    label,
    schema: () => ({ type: avroType, ...props }),
    toAvro: (value) => {
      const n = micros(value);
      const ms = n === INT64_MAX ? max : n === INT64_MIN ? min : floorDiv(n, 1000n);
      if (ms > max || ms < min) throw new RangeError(`${String(n)} µs is beyond what ${label} holds`);
      return avroType === "int" ? Number(ms) : ms;
    },
    fromAvro: (value) => {
      const ms = BigInt(value as number | bigint);
      const n = avroType === "long" && ms === INT64_MAX ? INT64_MAX : avroType === "long" && ms === INT64_MIN ? INT64_MIN : ms * 1000n;
      return asNumber ? Number(n) : n;
    },
    zero: 0,
  };
}

const ZONED = /^([+-]?\d{4,})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/;

/** The last instant zonedText wrote and its text: the changes of a transaction often carry the same one (its now()). */
let lastZoned = { n: 0n, text: "1970-01-01T00:00:00Z" };

/** ISO-8601 text of a UTC instant, fraction without trailing zeros (Java's ISO_OFFSET_DATE_TIME), or PostgreSQL's infinities. */
export function zonedText(n: bigint): string {
  if (n === lastZoned.n) return lastZoned.text;
  if (n === INT64_MAX) return "infinity";
  if (n === INT64_MIN) return "-infinity";
  const text = n >= -FAST_ZONED_LIMIT && n <= FAST_ZONED_LIMIT ? zonedTextOfMicros(Number(n)) : civilTimestamp(n).replace(/(\.\d*?)0+Z$/, "$1Z").replace(/\.Z$/, "Z");
  lastZoned = { n, text };
  return text;
}

/** Within this many microseconds of 1970 (about 1716 to 2223) double arithmetic is exact. */
const FAST_ZONED_LIMIT = 8_000_000_000_000_000n;
const MICROS_PER_DAY_NUMBER = 86_400_000_000;
const twoDigits = (n: number) => (n < 10 ? `0${n}` : String(n));

/** The last day zonedText wrote and its date: a stream's timestamps mostly fall on few days. */
let lastZonedDay = { days: Number.NaN, text: "" };

/** zonedText of a safe number of microseconds, without bigint arithmetic or regular expressions (the same text). */
function zonedTextOfMicros(micros: number): string {
  let rest = micros % MICROS_PER_DAY_NUMBER;
  if (rest < 0) rest += MICROS_PER_DAY_NUMBER;
  const days = (micros - rest) / MICROS_PER_DAY_NUMBER;
  const fraction = rest % 1_000_000;
  const seconds = (rest - fraction) / 1_000_000;
  if (days !== lastZonedDay.days) lastZonedDay = { days, text: civilDate(days) };
  let text = `${lastZonedDay.text}T${twoDigits(Math.floor(seconds / 3600))}:${twoDigits(Math.floor(seconds / 60) % 60)}:${twoDigits(seconds % 60)}`;
  if (fraction !== 0) {
    let digits = String(fraction).padStart(6, "0");
    let end = digits.length;
    while (digits.charCodeAt(end - 1) === 48) end--;
    digits = digits.slice(0, end);
    text += `.${digits}`;
  }
  return `${text}Z`;
}

export function parseZoned(text: string): bigint {
  const plain = parsePlainZoned(text);
  if (plain !== null) return plain;
  if (text === "infinity") return INT64_MAX;
  if (text === "-infinity") return INT64_MIN;
  const match = ZONED.exec(text);
  if (!match) throw new TypeError(`not an ISO-8601 timestamp: ${JSON.stringify(text)}`);
  const [, year, month, day, hour, minute, second, fraction = "", zone] = match as unknown as string[];
  const days = BigInt(daysFromCivil(Number(year), Number(month), Number(day)));
  const seconds = BigInt(Number(hour) * 3600 + Number(minute) * 60 + Number(second));
  const offset = zone === "Z" ? 0n : BigInt((zone!.startsWith("-") ? -1 : 1) * (Number(zone!.slice(1, 3)) * 3600 + Number(zone!.slice(4, 6)) * 60));
  return (days * 86_400n + seconds - offset) * 1_000_000n + BigInt((fraction + "000000").slice(0, 6));
}

/**
 * The text zonedText writes for years 0000-9999 (`YYYY-MM-DDTHH:MM:SS[.f{1,6}]Z`), read by
 * character: a sink decodes one per timestamptz value, and the regular expression's match made a
 * dozen strings each. Null for any other form (ZONED reads those).
 */
function parsePlainZoned(text: string): bigint | null {
  const length = text.length;
  if (length < 20 || length === 21 || length > 27 || text.charCodeAt(length - 1) !== 90) return null;
  if (text.charCodeAt(4) !== 45 || text.charCodeAt(7) !== 45 || text.charCodeAt(10) !== 84 || text.charCodeAt(13) !== 58 || text.charCodeAt(16) !== 58) return null;
  const year = digitsAt(text, 0, 4);
  const month = digitsAt(text, 5, 2);
  const day = digitsAt(text, 8, 2);
  const hour = digitsAt(text, 11, 2);
  const minute = digitsAt(text, 14, 2);
  const second = digitsAt(text, 17, 2);
  if (year < 0 || month < 0 || day < 0 || hour < 0 || minute < 0 || second < 0) return null;
  let fraction = 0;
  if (length > 20) {
    const digits = length - 21;
    if (text.charCodeAt(19) !== 46) return null;
    fraction = digitsAt(text, 20, digits);
    if (fraction < 0) return null;
    fraction *= 10 ** (6 - digits);
  }
  const seconds = daysFromCivil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
  // One bigint instead of four while the microseconds are a safe number (through the year 2255).
  const micros = seconds * 1_000_000 + fraction;
  return Number.isSafeInteger(micros) ? BigInt(micros) : BigInt(seconds) * 1_000_000n + BigInt(fraction);
}

const ZONED_TIMESTAMP: ColumnAvroType = {
  ...timestampMicrosColumn,
  label: "string (ZonedTimestamp)",
  schema: () => ({ type: "string", "connect.name": "io.debezium.time.ZonedTimestamp", "connect.version": 1 }),
  toAvro: (value) => zonedText(micros(value)),
  fromAvro: (value): ColumnValue => parseZoned(value as string),
  zero: "1970-01-01T00:00:00Z",
};

const connect = (name: string) => ({ "connect.name": `org.apache.kafka.connect.data.${name}`, "connect.version": 1 });
const debezium = (name: string) => ({ "connect.name": `io.debezium.time.${name}`, "connect.version": 1 });

export function dateType(mode: TimePrecisionMode): ColumnAvroType {
  if (mode === "avro") return dateColumn;
  if (mode === "connect") return marked(dateColumn, "date (Connect Date)", { ...connect("Date"), logicalType: "date" });
  return marked(dateColumn, "int (Date)", debezium("Date"));
}

/** A time of day (PostgreSQL `time`). */
export function timeType(mode: TimePrecisionMode, digits: number): ColumnAvroType {
  if (mode === "avro") return timeMicrosColumn;
  if (mode === "connect") return millisColumn(timeMicrosColumn, "time-millis (Connect Time)", "int", { ...connect("Time"), logicalType: "time-millis" }, true);
  if (digits <= 3) return millisColumn(timeMicrosColumn, "int (Time)", "int", debezium("Time"), true);
  return marked(timeMicrosColumn, "long (MicroTime)", debezium("MicroTime"));
}

/** A signed duration (MySQL `TIME`): MicroTime except in connect mode. */
export function durationType(mode: TimePrecisionMode): ColumnAvroType {
  if (mode === "avro") return microDurationColumn;
  if (mode === "connect") return millisColumn(microDurationColumn, "time-millis (Connect Time)", "int", { ...connect("Time"), logicalType: "time-millis" }, true);
  return marked(microDurationColumn, "long (MicroTime)", debezium("MicroTime"));
}

/** A timestamp; `zoned` for types that name an instant (PostgreSQL `timestamptz`, MySQL `TIMESTAMP`). */
export function timestampType(mode: TimePrecisionMode, digits: number, zoned: boolean): ColumnAvroType {
  if (mode === "avro") return timestampMicrosColumn;
  if (mode === "connect") return millisColumn(timestampMicrosColumn, "timestamp-millis (Connect Timestamp)", "long", { ...connect("Timestamp"), logicalType: "timestamp-millis" }, false);
  if (zoned) return ZONED_TIMESTAMP;
  if (digits <= 3) return millisColumn(timestampMicrosColumn, "long (Timestamp)", "long", debezium("Timestamp"), false);
  return marked(timestampMicrosColumn, "long (MicroTimestamp)", debezium("MicroTimestamp"));
}

/** A time of day with an offset: "HH:MM:SS[.f]" then "Z", "±hh", "±hh:mm" or "±hh:mm:ss" (Sluice's timetz values are "±hh:mm[:ss]"). */
const OFFSET_TIME = /^(\d\d):(\d\d):(\d\d)(\.\d{1,9})?(?:(Z)|([+-])(\d\d)(?::?(\d\d))?(?::?(\d\d))?)$/;
const SECONDS_PER_DAY = 86_400;

interface OffsetTime {
  /** Seconds since midnight on the value's own clock (24:00:00 is 86 400). */
  readonly seconds: number;
  /** The fraction as written, with its point, or "". */
  readonly fraction: string;
  /** Seconds east of UTC. */
  readonly offset: number;
}

function parseOffsetTime(text: string): OffsetTime {
  const match = OFFSET_TIME.exec(text);
  if (!match) throw new TypeError(`not a time with a time zone offset: ${JSON.stringify(text)}`);
  const [, hours, minutes, seconds, fraction = "", utc, sign, offsetHours, offsetMinutes = "0", offsetSeconds = "0"] = match;
  const offset = utc === "Z" ? 0 : (sign === "-" ? -1 : 1) * (Number(offsetHours) * 3600 + Number(offsetMinutes) * 60 + Number(offsetSeconds));
  return { seconds: Number(hours) * 3600 + Number(minutes) * 60 + Number(seconds), fraction, offset };
}

const two = (n: number) => String(n).padStart(2, "0");

function clock(seconds: number, fraction: string): string {
  return `${two(Math.floor(seconds / 3600))}:${two(Math.floor(seconds / 60) % 60)}:${two(seconds % 60)}${fraction}`;
}

/** Sluice's value of a timetz: the clock as written, the offset as ±hh:mm[:ss] (connectors/postgres/values/civil-time.ts). */
function offsetTimeValue(time: OffsetTime): string {
  const east = Math.abs(time.offset);
  const seconds = east % 60;
  return `${clock(time.seconds, time.fraction)}${time.offset < 0 ? "-" : "+"}${two(Math.floor(east / 3600))}:${two(Math.floor(east / 60) % 60)}${seconds === 0 ? "" : `:${two(seconds)}`}`;
}

/**
 * Debezium's ZonedTime of a timetz: the same instant of the day in UTC, ISO-8601 (Java's
 * ISO_OFFSET_TIME: seconds always, fraction without trailing zeros, `Z`), wrapping past midnight
 * ("10:23:54.5+14:00" is "20:23:54.5Z"); PostgreSQL's end of day 24:00:00 at UTC stays "24:00:00Z",
 * as Debezium writes it.
 */
export function zonedTimeText(value: string): string {
  const time = parseOffsetTime(value);
  const fraction = time.fraction.replace(/\.?0+$/, "");
  if (time.seconds === SECONDS_PER_DAY && time.offset === 0) return `${clock(SECONDS_PER_DAY, fraction)}Z`;
  const utc = (((time.seconds - time.offset) % SECONDS_PER_DAY) + SECONDS_PER_DAY) % SECONDS_PER_DAY;
  return `${clock(utc, fraction)}Z`;
}

/**
 * PostgreSQL `timetz` as Debezium's `io.debezium.time.ZonedTime` (adaptive and connect modes).
 * Debezium's UTC form drops the value's own offset, which PostgreSQL keeps (`10:00+02` and
 * `08:00+00` are different timetz values): where it differs, the source's text goes beside the
 * record as a special value (record header `sluice.special`), so Sluice's sinks store it exactly.
 */
export const ZONED_TIME: ColumnAvroType = {
  ...stringColumn("string (ZonedTime)"),
  schema: () => ({ type: "string", "connect.name": "io.debezium.time.ZonedTime", "connect.version": 1 }),
  toAvro: (value, context, path) => {
    if (typeof value !== "string") throw new TypeError(`expected a time with a time zone offset, got ${describeValue(value)}`);
    const zoned = zonedTimeText(value);
    if (offsetTimeValue(parseOffsetTime(zoned)) !== value) context.special(path, value);
    return zoned;
  },
  fromAvro: (value, context, path): ColumnValue => context.special(path) ?? offsetTimeValue(parseOffsetTime(value as string)),
  zero: "00:00:00Z",
  mayBeSpecial: true,
};
