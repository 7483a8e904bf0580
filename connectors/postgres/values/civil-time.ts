/**
 * PostgreSQL's text forms of dates, times and timestamps (DateStyle ISO) turned into the integers
 * their Avro logical types use: days since 1970-01-01, microseconds since midnight, microseconds
 * since 1970-01-01 UTC. Proleptic Gregorian calendar, astronomical years ("0044-03-15 BC" is year
 * -43), like PostgreSQL itself.
 */
import { daysFromCivil, digitsAt } from "../../common/civil-calendar.ts";

/** What `infinity` / `-infinity` become: PostgreSQL's own internal sentinels (INT32 and INT64 extremes). */
export const DATE_INFINITY = 2_147_483_647;
export const DATE_MINUS_INFINITY = -2_147_483_648;
export const TIMESTAMP_INFINITY = 9_223_372_036_854_775_807n;
export const TIMESTAMP_MINUS_INFINITY = -9_223_372_036_854_775_808n;

const MICROS_PER_DAY = 86_400_000_000n;

const DATE = /^(\d{4,})-(\d{2})-(\d{2})( BC)?$/;
const TIME = /^(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?/;
const OFFSET = /^([+-])(\d{2})(?::?(\d{2}))?(?::?(\d{2}))?/;

function astronomicalYear(digits: string, bc: boolean): number {
  const year = Number(digits);
  return bc ? 1 - year : year;
}

function fractionMicros(digits: string | undefined): number {
  return digits === undefined ? 0 : Number(digits.padEnd(6, "0"));
}

function bad(type: string, text: string): never {
  throw new TypeError(`cannot decode ${type} "${text}"`);
}

export function decodeDate(text: string): number {
  if (text === "infinity") return DATE_INFINITY;
  if (text === "-infinity") return DATE_MINUS_INFINITY;
  const match = DATE.exec(text) ?? bad("date", text);
  return daysFromCivil(astronomicalYear(match[1]!, match[4] !== undefined), Number(match[2]), Number(match[3]));
}

interface TimeParts {
  readonly micros: number;
  readonly length: number;
}

function parseTime(text: string, type: string): TimeParts {
  const match = TIME.exec(text) ?? bad(type, text);
  const seconds = (Number(match[1]) * 60 + Number(match[2])) * 60 + Number(match[3]);
  return { micros: seconds * 1_000_000 + fractionMicros(match[4]), length: match[0].length };
}

/** Seconds east of UTC from "+02", "-03:30", "+05:45:12"; and how many characters it took. */
function parseOffset(text: string, type: string, whole: string): { seconds: number; length: number; hhmm: string } {
  const match = OFFSET.exec(text) ?? bad(type, whole);
  const sign = match[1] === "-" ? -1 : 1;
  const seconds = sign * (Number(match[2]) * 3600 + Number(match[3] ?? 0) * 60 + Number(match[4] ?? 0));
  const hhmm = `${match[1]!}${match[2]!}:${match[3] ?? "00"}${match[4] === undefined ? "" : `:${match[4]}`}`;
  return { seconds, length: match[0].length, hhmm };
}

/** `time`: microseconds since midnight ("24:00:00" is 86 400 000 000). */
export function decodeTime(text: string): number {
  const time = parseTime(text, "time");
  if (time.length !== text.length) bad("time", text);
  return time.micros;
}

/** `timetz`: kept as ISO-8601 text with its offset, "HH:MM:SS[.ffffff]+hh:mm" (no Avro type carries the offset). */
export function decodeTimeTz(text: string): string {
  const time = parseTime(text, "timetz");
  const offset = parseOffset(text.slice(time.length), "timetz", text);
  if (time.length + offset.length !== text.length) bad("timetz", text);
  return `${text.slice(0, time.length)}${offset.hhmm}`;
}

/** Days whose microseconds, plus any time of day and offset, stay exact in a double (about 1696 to 2243). */
const FAST_DAYS = 100_000;

/**
 * The common forms ("2026-12-05 07:11:19.123456", then "+00" or "+05:30" with a zone) read
 * without regular expressions or bigint arithmetic: the same value as parseTimestamp, or
 * undefined for any other form (which parseTimestamp then reads or refuses).
 */
function fastTimestamp(text: string, withZone: boolean): bigint | undefined {
  const length = text.length;
  if (length < 19 || text.charCodeAt(4) !== 45 || text.charCodeAt(7) !== 45 || text.charCodeAt(10) !== 32 || text.charCodeAt(13) !== 58 || text.charCodeAt(16) !== 58) return undefined;
  const year = digitsAt(text, 0, 4);
  const month = digitsAt(text, 5, 2);
  const day = digitsAt(text, 8, 2);
  const hours = digitsAt(text, 11, 2);
  const minutes = digitsAt(text, 14, 2);
  const seconds = digitsAt(text, 17, 2);
  if (year < 0 || month < 0 || day < 0 || hours < 0 || minutes < 0 || seconds < 0) return undefined;
  let at = 19;
  let fraction = 0;
  if (text.charCodeAt(at) === 46) {
    let digits = 0;
    at++;
    while (at < length && digits < 7) {
      const digit = text.charCodeAt(at) - 48;
      if (digit < 0 || digit > 9) break;
      fraction = fraction * 10 + digit;
      digits++;
      at++;
    }
    if (digits === 0 || digits > 6) return undefined;
    for (; digits < 6; digits++) fraction *= 10;
  }
  let offsetSeconds = 0;
  if (withZone) {
    const sign = text.charCodeAt(at);
    if ((sign !== 43 && sign !== 45) || at + 3 > length) return undefined;
    const parts = [digitsAt(text, at + 1, 2)];
    at += 3;
    while (at < length && parts.length < 3) {
      if (text.charCodeAt(at) !== 58 || at + 3 > length) return undefined;
      parts.push(digitsAt(text, at + 1, 2));
      at += 3;
    }
    if (parts.some((part) => part < 0)) return undefined;
    offsetSeconds = (sign === 45 ? -1 : 1) * (parts[0]! * 3600 + (parts[1] ?? 0) * 60 + (parts[2] ?? 0));
  }
  if (at !== length) return undefined;
  const days = daysFromCivil(year, month, day);
  if (days > FAST_DAYS || days < -FAST_DAYS) return undefined;
  return BigInt(days * 86_400_000_000 + ((hours * 60 + minutes) * 60 + seconds) * 1_000_000 + fraction - offsetSeconds * 1_000_000);
}

/**
 * The general reading of a timestamp's text (every form PostgreSQL prints); exported for tests of
 * the fast one. The one finite value 2^63 - 1 µs after 1970 (294247-01-10 04:00:54.775807 UTC) is
 * the count `infinity` becomes: it stays PostgreSQL's text, which no timestamp type takes, so
 * capture halts its table (AVRO_VALUE_INVALID) instead of carrying it as infinity.
 */
export function parseTimestamp(text: string, withZone: boolean): bigint | string {
  const type = withZone ? "timestamptz" : "timestamp";
  if (text === "infinity") return TIMESTAMP_INFINITY;
  if (text === "-infinity") return TIMESTAMP_MINUS_INFINITY;
  const space = text.indexOf(" ");
  if (space < 0) bad(type, text);
  let rest = text.slice(space + 1);
  const bc = rest.endsWith(" BC");
  if (bc) rest = rest.slice(0, -3);
  const date = DATE.exec(text.slice(0, space)) ?? bad(type, text);
  const days = daysFromCivil(astronomicalYear(date[1]!, bc), Number(date[2]), Number(date[3]));
  const time = parseTime(rest, type);
  let offsetSeconds = 0;
  let consumed = time.length;
  if (withZone) {
    const offset = parseOffset(rest.slice(time.length), type, text);
    offsetSeconds = offset.seconds;
    consumed += offset.length;
  }
  if (consumed !== rest.length) bad(type, text);
  const micros = BigInt(days) * MICROS_PER_DAY + BigInt(time.micros) - BigInt(offsetSeconds) * 1_000_000n;
  return micros === TIMESTAMP_INFINITY ? text : micros;
}

/** The last text each decoder read and its value: the changes of a transaction often carry the same instant (its now()). */
let lastTimestamp: { text: string | undefined; value: bigint | string } = { text: undefined, value: 0n };
let lastTimestampTz: { text: string | undefined; value: bigint | string } = { text: undefined, value: 0n };

/** `timestamp`: microseconds since 1970-01-01 (wall clock, no zone), as bigint: year 9999 is beyond 2^53 µs. */
export function decodeTimestamp(text: string): bigint | string {
  if (text === lastTimestamp.text) return lastTimestamp.value;
  const value = fastTimestamp(text, false) ?? parseTimestamp(text, false);
  lastTimestamp = { text, value };
  return value;
}

/** `timestamptz`: microseconds since 1970-01-01 UTC, as bigint. */
export function decodeTimestampTz(text: string): bigint | string {
  if (text === lastTimestampTz.text) return lastTimestampTz.value;
  const value = fastTimestamp(text, true) ?? parseTimestamp(text, true);
  lastTimestampTz = { text, value };
  return value;
}
