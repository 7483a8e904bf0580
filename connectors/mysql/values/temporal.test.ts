import assert from "node:assert/strict";
import { test } from "node:test";
import {
  decodeDate,
  decodeDatetime2,
  decodeDatetimeV1,
  decodeMariadbDatetimeHires,
  decodeMariadbTimeHires,
  decodeMariadbTimestampHires,
  decodeTime2,
  decodeTimestamp2,
  decodeTimeV1,
  decodeYear,
  formatPackedDatetime,
  MARIADB_DATETIME_HIRES_BYTES,
  MARIADB_TIME_HIRES_BYTES,
} from "./temporal.ts";

const hex = (text: string) => Buffer.from(text.replace(/\s+/g, ""), "hex");
const days = (y: number, m: number, d: number) => Date.UTC(y, m - 1, d) / 86_400_000;

test("DATE: day, month and year bit fields; zero parts have no day number", () => {
  assert.equal(decodeDate(1985 * 512 + 10 * 32 + 23), days(1985, 10, 23));
  assert.equal(decodeDate(1000 * 512 + 1 * 32 + 1), days(1000, 1, 1));
  assert.equal(decodeDate(0), null);
  assert.equal(decodeDate(2020 * 512 + 5 * 32), null);
});

test("DATE and DATETIME2: a day no calendar has (ALLOW_INVALID_DATES) has no day number either, never the next month's", () => {
  assert.equal(decodeDate(2024 * 512 + 2 * 32 + 29), days(2024, 2, 29));
  assert.equal(decodeDate(2024 * 512 + 2 * 32 + 30), null);
  assert.equal(decodeDate(2023 * 512 + 2 * 32 + 29), null);
  assert.equal(decodeDate(2023 * 512 + 4 * 32 + 31), null);
  assert.equal(decodeDate(2000 * 512 + 2 * 32 + 29), days(2000, 2, 29));
  assert.equal(decodeDate(1900 * 512 + 2 * 32 + 29), null);
  const april31 = Buffer.alloc(5);
  april31.writeUIntBE(((2023 * 13 + 4) * 32 + 31) * 2 ** 17 + (10 << 12) + 0x8000000000, 0, 5);
  assert.equal(decodeDatetime2(april31, 0, 0), null);
});

test("DATETIME2 with every fraction width", () => {
  // 2020-02-29 12:34:56: ym = 2020*13+2, ymd = ym<<5 | 29, hms = 12<<12 | 34<<6 | 56, + 2^39.
  const packed = (((2020 * 13 + 2) * 32 + 29) * 2 ** 17 + ((12 << 12) | (34 << 6) | 56)) + 0x8000000000;
  const integer = Buffer.alloc(5);
  integer.writeUIntBE(packed, 0, 5);
  const base = BigInt(Date.UTC(2020, 1, 29, 12, 34, 56)) * 1000n;
  assert.equal(decodeDatetime2(integer, 0, 0), base);
  assert.equal(decodeDatetime2(Buffer.concat([integer, hex("4e")]), 0, 2), base + 780_000n);
  assert.equal(decodeDatetime2(Buffer.concat([integer, hex("1e 79")]), 0, 4), base + 780_100n);
  assert.equal(decodeDatetime2(Buffer.concat([integer, hex("0f 42 3f")]), 0, 6), base + 999_999n);
  assert.equal(decodeDatetime2(hex("80 00 00 00 00"), 0, 0), null);
});

test("TIMESTAMP2: UTC seconds and fraction; zero is the zero timestamp", () => {
  assert.equal(decodeTimestamp2(hex("7f ff ff ff 0f 42 3f"), 0, 6), 2_147_483_647_999_999n);
  assert.equal(decodeTimestamp2(hex("00 00 00 01"), 0, 0), 1_000_000n);
  assert.equal(decodeTimestamp2(hex("00 00 00 00"), 0, 0), null);
});

test("TIME2: sign, hours beyond a day, negative fractions", () => {
  assert.equal(decodeTime2(hex("60 43 e5"), 0, 0), -(507 * 3600 + 48 * 60 + 27) * 1_000_000);
  // 838:59:59 = 0x800000 + (838<<12 | 59<<6 | 59)
  const max = 0x800000 + ((838 << 12) | (59 << 6) | 59);
  assert.equal(decodeTime2(Buffer.from([max >> 16, (max >> 8) & 0xff, max & 0xff]), 0, 0), (838 * 3600 + 59 * 60 + 59) * 1_000_000);
  // -00:00:01.5 at fsp 3 is stored as integer -2 and fraction 0x10000 - 5000 (in 1/10000 s).
  assert.equal(decodeTime2(hex("7f ff fe ec 78"), 0, 3), -1_500_000);
  assert.equal(decodeTime2(hex("80 00 00 00 00 00"), 0, 6), 0);
});

test("the pre-5.6 forms and YEAR", () => {
  assert.equal(decodeDatetimeV1(20200229123456n), BigInt(Date.UTC(2020, 1, 29, 12, 34, 56)) * 1000n);
  assert.equal(decodeDatetimeV1(0n), null);
  assert.equal(decodeTimeV1(-123456), -(12 * 3600 + 34 * 60 + 56) * 1_000_000);
  assert.equal(decodeYear(0), 0);
  assert.equal(decodeYear(255), 2155);
});

test("prints packed JSON datetimes as MySQL does", () => {
  const ymdhms = ((((2012 * 13 + 3) << 5) | 18) * 2 ** 17 + ((11 << 12) | (30 << 6) | 45));
  assert.equal(formatPackedDatetime(BigInt(ymdhms) << 24n, "datetime"), "2012-03-18 11:30:45.000000");
  assert.equal(formatPackedDatetime(BigInt(ymdhms) << 24n, "date"), "2012-03-18");
  assert.equal(formatPackedDatetime(-((BigInt((87 << 12) | (31 << 6) | 46) << 24n) | 654321n), "time"), "-87:31:46.654321");
});

test("MariaDB's 5.3 formats of DATETIME(n), TIMESTAMP(n) and TIME(n) (mysql56_temporal_format=OFF, or tables from before 10.1), as MariaDB 10.11 logged them", () => {
  const micros = (iso: string, extra: number) => BigInt(Date.parse(`${iso}Z`)) * 1000n + BigInt(extra);
  // '2020-01-02 03:04:05.123' in a DATETIME(3), '1999-12-31 23:59:59.999999' in a DATETIME(6).
  assert.deepEqual([MARIADB_DATETIME_HIRES_BYTES[3], MARIADB_DATETIME_HIRES_BYTES[6]], [7, 8]);
  assert.equal(decodeMariadbDatetimeHires(hex("00 42 09 0a 66 c1 03"), 0, 3), micros("2020-01-02T03:04:05", 123_000));
  assert.equal(decodeMariadbDatetimeHires(hex("00 ff 62 d8 40 bf ff ff"), 0, 6), micros("1999-12-31T23:59:59", 999_999));
  assert.equal(decodeMariadbDatetimeHires(hex("00 00 00 00 00 00 00"), 0, 3), null);
  // '2001-02-03 04:05:06.78' in a TIMESTAMP(2): seconds big-endian, then hundredths.
  assert.equal(decodeMariadbTimestampHires(hex("3a 7b 83 72 4e"), 0, 2), micros("2001-02-03T04:05:06", 780_000));
  assert.equal(decodeMariadbTimestampHires(hex("00 00 00 00 00"), 0, 2), null);
  // '-12:34:56.7891' in a TIME(4): offset by 838:59:59 + 1 s.
  assert.equal(MARIADB_TIME_HIRES_BYTES[4], 5);
  assert.equal(decodeMariadbTimeHires(hex("06 ed 4c b9 2d"), 0, 4), -((12 * 3600 + 34 * 60 + 56) * 1_000_000 + 789_100));
});
