/**
 * MySQL's binary dates and times to the integers Sluice uses: DATE -> days since 1970-01-01,
 * DATETIME/TIMESTAMP -> microseconds since 1970-01-01 (DATETIME as if it were UTC: it has no zone),
 * TIME -> signed microseconds (it is a duration, -838:59:59 to 838:59:59), YEAR -> the year.
 * Zero dates ("0000-00-00", or a zero month or day) and dates no calendar has ("2024-02-30", kept
 * under ALLOW_INVALID_DATES; MySQL's date functions give NULL for both) have no such integer:
 * decoders return null and the caller applies the zero_dates setting.
 */
import { daysFromCivil, isCivilDate } from "../../common/civil-calendar.ts";

const MICROS_PER_DAY = 86_400_000_000n;
const DATETIMEF_INT_OFS = 0x8000000000;
const TIMEF_INT_OFS = 0x800000;
const TIMEF_OFS = 0x800000000000;

function civilMicros(year: number, month: number, day: number, hour: number, minute: number, second: number, micros: number): bigint | null {
  if (!isCivilDate(year, month, day)) return null;
  return BigInt(daysFromCivil(year, month, day)) * MICROS_PER_DAY + BigInt((hour * 3600 + minute * 60 + second) * 1_000_000 + micros);
}

/** Bytes of the fractional part of TIME2/DATETIME2/TIMESTAMP2 for `fsp` digits. */
export function fractionBytes(fsp: number): number {
  return (fsp + 1) >> 1;
}

/** The fraction as microseconds: stored in units of 1/100, 1/10000 or 1/1000000 second. */
function fractionMicros(bytes: Uint8Array, offset: number, fsp: number): number {
  switch (fractionBytes(fsp)) {
    case 1:
      return bytes[offset]! * 10_000;
    case 2:
      return ((bytes[offset]! << 8) | bytes[offset + 1]!) * 100;
    case 3:
      return (bytes[offset]! << 16) | (bytes[offset + 1]! << 8) | bytes[offset + 2]!;
    default:
      return 0;
  }
}

function readUintBE(bytes: Uint8Array, offset: number, length: number): number {
  let value = 0;
  for (let i = 0; i < length; i++) value = value * 256 + bytes[offset + i]!;
  return value;
}

/** DATE: 3 bytes little-endian, day in bits 0-4, month in 5-8, year above. */
export function decodeDate(packed: number): number | null {
  const day = packed & 31;
  const month = (packed >> 5) & 15;
  const year = packed >> 9;
  if (!isCivilDate(year, month, day)) return null;
  return daysFromCivil(year, month, day);
}

/** DATETIME2: 5 bytes big-endian (offset by 2^39) then the fraction. */
export function decodeDatetime2(bytes: Uint8Array, offset: number, fsp: number): bigint | null {
  const packed = readUintBE(bytes, offset, 5) - DATETIMEF_INT_OFS;
  const ymd = Math.floor(packed / 2 ** 17);
  const hms = packed % 2 ** 17;
  const ym = ymd >> 5;
  return civilMicros(Math.floor(ym / 13), ym % 13, ymd & 31, hms >> 12, (hms >> 6) & 63, hms & 63, fractionMicros(bytes, offset + 5, fsp));
}

/** DATETIME before MySQL 5.6: the decimal digits YYYYMMDDhhmmss in a little-endian uint64. */
export function decodeDatetimeV1(value: bigint): bigint | null {
  const n = Number(value);
  const date = Math.floor(n / 1_000_000);
  const time = n % 1_000_000;
  return civilMicros(Math.floor(date / 10_000), Math.floor(date / 100) % 100, date % 100, Math.floor(time / 10_000), Math.floor(time / 100) % 100, time % 100, 0);
}

/** TIMESTAMP2: seconds since the epoch, 4 bytes big-endian, then the fraction. 0 is the zero timestamp. */
export function decodeTimestamp2(bytes: Uint8Array, offset: number, fsp: number): bigint | null {
  const seconds = readUintBE(bytes, offset, 4);
  const micros = fractionMicros(bytes, offset + 4, fsp);
  if (seconds === 0 && micros === 0) return null;
  return BigInt(seconds) * 1_000_000n + BigInt(micros);
}

/** TIME2: 3 bytes big-endian offset by 2^23 (hours in 10 bits, minutes, seconds), fraction stored with the integer's sign. */
export function decodeTime2(bytes: Uint8Array, offset: number, fsp: number): number {
  let packed: number;
  switch (fractionBytes(fsp)) {
    case 0:
      packed = (readUintBE(bytes, offset, 3) - TIMEF_INT_OFS) * 2 ** 24;
      break;
    case 1: {
      let integer = readUintBE(bytes, offset, 3) - TIMEF_INT_OFS;
      let fraction = bytes[offset + 3]!;
      if (integer < 0 && fraction !== 0) {
        integer++;
        fraction -= 0x100;
      }
      packed = integer * 2 ** 24 + fraction * 10_000;
      break;
    }
    case 2: {
      let integer = readUintBE(bytes, offset, 3) - TIMEF_INT_OFS;
      let fraction = (bytes[offset + 3]! << 8) | bytes[offset + 4]!;
      if (integer < 0 && fraction !== 0) {
        integer++;
        fraction -= 0x10000;
      }
      packed = integer * 2 ** 24 + fraction * 100;
      break;
    }
    default:
      packed = readUintBE(bytes, offset, 6) - TIMEF_OFS;
  }
  return timeFromPacked(packed);
}

/** MySQL's packed TIME (hms << 24 | microseconds) to signed microseconds. */
export function timeFromPacked(packed: number): number {
  const negative = packed < 0;
  const magnitude = Math.abs(packed);
  const hms = Math.floor(magnitude / 2 ** 24);
  const micros = magnitude % 2 ** 24;
  const hours = (hms >> 12) % 1024;
  const minutes = (hms >> 6) % 64;
  const seconds = hms % 64;
  const total = (hours * 3600 + minutes * 60 + seconds) * 1_000_000 + micros;
  return negative ? -total : total;
}

/** TIME before MySQL 5.6: the decimal digits ±HHMMSS in a 3-byte little-endian integer. */
export function decodeTimeV1(value: number): number {
  const magnitude = Math.abs(value);
  const total = (Math.floor(magnitude / 10_000) * 3600 + (Math.floor(magnitude / 100) % 100) * 60 + (magnitude % 100)) * 1_000_000;
  return value < 0 ? -total : total;
}

/*
 * MariaDB's 5.3 formats of DATETIME(n), TIMESTAMP(n) and TIME(n) with n > 0, kept by tables made
 * before MariaDB 10.1 or under mysql56_temporal_format=OFF. The binlog logs them with the old type
 * codes and no metadata: the digits n come from the declared type.
 */

/** Bytes of a 5.3-format DATETIME(n), by n. */
export const MARIADB_DATETIME_HIRES_BYTES: readonly number[] = [5, 6, 6, 7, 7, 7, 8];
/** Bytes of a 5.3-format TIME(n), by n. */
export const MARIADB_TIME_HIRES_BYTES: readonly number[] = [3, 4, 4, 5, 5, 5, 6];
/** Bytes of the fraction of a 5.3-format TIMESTAMP(n), by n (after its 4 bytes of seconds). */
export const MARIADB_TIMESTAMP_FRACTION_BYTES: readonly number[] = [0, 1, 1, 2, 2, 3, 3];

const POW10 = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000];
const MARIADB_TIME_ZERO_SECONDS = 838 * 3600 + 59 * 60 + 59 + 1;

function readBigUintBE(bytes: Uint8Array, offset: number, length: number): bigint {
  let value = 0n;
  for (let i = 0; i < length; i++) value = (value << 8n) | BigInt(bytes[offset + i]!);
  return value;
}

/** 5.3-format DATETIME(n): big-endian ((((((Y·13+M)·32+D)·24+h)·60+m)·60+s)·10^6+µs) / 10^(6-n). */
export function decodeMariadbDatetimeHires(bytes: Uint8Array, offset: number, fsp: number): bigint | null {
  let packed = readBigUintBE(bytes, offset, MARIADB_DATETIME_HIRES_BYTES[fsp]!) * BigInt(POW10[6 - fsp]!);
  const micros = Number(packed % 1_000_000n);
  packed /= 1_000_000n;
  const second = Number(packed % 60n);
  packed /= 60n;
  const minute = Number(packed % 60n);
  packed /= 60n;
  const hour = Number(packed % 24n);
  packed /= 24n;
  const day = Number(packed % 32n);
  const ym = Number(packed / 32n);
  return civilMicros(Math.floor(ym / 13), ym % 13, day, hour, minute, second, micros);
}

/** 5.3-format TIMESTAMP(n): seconds since the epoch, 4 bytes big-endian, then the fraction in units of 10^-n s. 0 is the zero timestamp. */
export function decodeMariadbTimestampHires(bytes: Uint8Array, offset: number, fsp: number): bigint | null {
  const seconds = readUintBE(bytes, offset, 4);
  const fraction = readUintBE(bytes, offset + 4, MARIADB_TIMESTAMP_FRACTION_BYTES[fsp]!) * POW10[6 - fsp]!;
  if (seconds === 0 && fraction === 0) return null;
  return BigInt(seconds) * 1_000_000n + BigInt(fraction);
}

/** 5.3-format TIME(n): big-endian, signed microseconds / 10^(6-n), offset by 838:59:59 + 1 s. */
export function decodeMariadbTimeHires(bytes: Uint8Array, offset: number, fsp: number): number {
  const zero = (MARIADB_TIME_ZERO_SECONDS * 1_000_000) / POW10[6 - fsp]!;
  return (readUintBE(bytes, offset, MARIADB_TIME_HIRES_BYTES[fsp]!) - zero) * POW10[6 - fsp]!;
}

export function decodeYear(byte: number): number {
  return byte === 0 ? 0 : 1900 + byte;
}

/** Text forms as MySQL prints them inside JSON documents (opaque DATE/TIME/DATETIME values). */
export function formatPackedDatetime(packed: bigint, kind: "date" | "datetime" | "time"): string {
  const negative = packed < 0n;
  const magnitude = negative ? -packed : packed;
  const micros = Number(magnitude % (1n << 24n));
  const integer = Number(magnitude >> 24n);
  const fraction = `.${String(micros).padStart(6, "0")}`;
  if (kind === "time") {
    const hours = (integer >> 12) % 1024;
    return `${negative ? "-" : ""}${pad(hours, 2)}:${pad((integer >> 6) % 64, 2)}:${pad(integer % 64, 2)}${fraction}`;
  }
  const ymd = Math.floor(integer / 2 ** 17);
  const hms = integer % 2 ** 17;
  const ym = ymd >> 5;
  const date = `${pad(Math.floor(ym / 13), 4)}-${pad(ym % 13, 2)}-${pad(ymd & 31, 2)}`;
  if (kind === "date") return date;
  return `${date} ${pad(hms >> 12, 2)}:${pad((hms >> 6) & 63, 2)}:${pad(hms & 63, 2)}${fraction}`;
}

function pad(value: number, width: number): string {
  return String(value).padStart(width, "0");
}
