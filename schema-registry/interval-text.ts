/**
 * PostgreSQL `interval` as Debezium's `interval.handling.mode=string`: a string
 * `io.debezium.time.Interval` with every part, as Debezium writes it:
 * `P<years>Y<months>M<days>DT<hours>H<minutes>M<seconds>S`, each part signed on its own (as
 * PostgreSQL keeps them), seconds without trailing zeros: `P1Y2M3DT4H5M6.789S`, `P0Y0M-1DT0H0M-1S`,
 * `P0Y0M0DT0H0M0S`. Decodes to PostgreSQL's own ISO 8601 text (zero parts left out); where that
 * does not give the source's text back, the text travels in the record header `sluice.special`.
 */
import type { ColumnValue } from "../connectors/contracts.ts";
import { describeValue } from "./column-types.ts";
import type { ColumnAvroType } from "./column-types.ts";
import { intervalParts } from "./interval-micro-duration.ts";
import type { IntervalParts } from "./interval-micro-duration.ts";

const INTERVAL = "io.debezium.time.Interval";
const DEBEZIUM_TEXT = /^P(-?\d+)Y(-?\d+)M(-?\d+)DT(-?\d+)H(-?\d+)M(-?\d+(?:\.\d+)?)S$/;

/** Seconds as Debezium prints them (BigDecimal.stripTrailingZeros().toPlainString()): no trailing zeros, "0" for zero. */
function plainSeconds(text: string): string {
  const negative = text.startsWith("-");
  const [whole = "0", fraction = ""] = (negative ? text.slice(1) : text).split(".");
  const digits = whole.replace(/^0+(?=\d)/, "");
  const kept = fraction.replace(/0+$/, "");
  const body = kept === "" ? digits : `${digits}.${kept}`;
  return negative && body !== "0" ? `-${body}` : body;
}

export function debeziumIntervalText(parts: IntervalParts): string {
  return `P${parts.years}Y${parts.months}M${parts.days}DT${parts.hours}H${parts.minutes}M${plainSeconds(parts.seconds)}S`;
}

/** PostgreSQL's ISO 8601 text (intervalstyle iso_8601) of the parts: zero parts left out, `PT0S` for zero. */
export function postgresIntervalText(parts: IntervalParts): string {
  const seconds = plainSeconds(parts.seconds);
  const date = (parts.years === 0 ? "" : `${parts.years}Y`) + (parts.months === 0 ? "" : `${parts.months}M`) + (parts.days === 0 ? "" : `${parts.days}D`);
  const time = (parts.hours === 0 ? "" : `${parts.hours}H`) + (parts.minutes === 0 ? "" : `${parts.minutes}M`) + (seconds === "0" ? "" : `${seconds}S`);
  if (date === "" && time === "") return "PT0S";
  return `P${date}${time === "" ? "" : `T${time}`}`;
}

function partsOfDebeziumText(value: unknown): IntervalParts {
  const match = typeof value === "string" ? DEBEZIUM_TEXT.exec(value) : null;
  if (match === null) throw new TypeError(`expected Debezium's interval text P<y>Y<m>M<d>DT<h>H<m>M<s>S, got ${describeValue(value)}`);
  const [years, months, days, hours, minutes] = match.slice(1, 6).map(Number) as [number, number, number, number, number];
  return { years, months, days, hours, minutes, seconds: match[6] as string };
}

export const DEBEZIUM_INTERVAL: ColumnAvroType = {
  label: "string (io.debezium.time.Interval)",
  schema: () => ({ type: "string", "connect.version": 1, "connect.name": INTERVAL }),
  toAvro: (value, context, path) => {
    if (typeof value !== "string") throw new TypeError(`expected an interval, got ${describeValue(value)}`);
    const parts = intervalParts(value);
    if (postgresIntervalText(parts) !== value) context.special(path, value);
    return debeziumIntervalText(parts);
  },
  fromAvro: (value, context, path): ColumnValue => context.special(path) ?? postgresIntervalText(partsOfDebeziumText(value)),
  zero: "P0Y0M0DT0H0M0S",
  mayBeSpecial: true,
};
