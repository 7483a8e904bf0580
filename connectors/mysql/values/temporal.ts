/**
 * MySQL's binary dates and times to the integers Sluice uses: DATE → days since 1970-01-01,
 * DATETIME/TIMESTAMP → microseconds since 1970-01-01 (DATETIME as if it were UTC: it has no zone),
 * TIME → signed microseconds (it is a duration, -838:59:59 to 838:59:59), YEAR → the year.
 * Zero dates ("0000-00-00", or a zero month or day) have no such integer: decoders return null
 * and the caller applies the zero_dates setting.
 */
import { daysFromCivil } from "../../common/civil-calendar.ts";

const MICROS_PER_DAY = 86_400_000_000n;
const DATETIMEF_INT_OFS = 0x8000000000;
const TIMEF_INT_OFS = 0x800000;
const TIMEF_OFS = 0x800000000000;

function civilMicros(year: number, month: number, day: number, hour: number, minute: number, second: number, micros: number): bigint | null {
  if (month === 0 || day === 0) return null;
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
  if (month === 0 || day === 0) return null;
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
