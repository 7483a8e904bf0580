/**
 * MySQL/MariaDB spatial columns in Debezium's layout: the record io.debezium.data.geometry.Geometry
 * {wkb: bytes, srid: ["null", "int"]}. The ColumnValue is the value as MySQL stores it, a 4-byte
 * little-endian SRID followed by the WKB, so the SRID travels with the shape to every sink.
 */
import type { ColumnValue } from "../connectors/contracts.ts";
import { asBuffer } from "./column-types.ts";
import type { ColumnAvroType } from "./column-types.ts";

const GEOMETRY = "io.debezium.data.geometry.Geometry";
const SRID_BYTES = 4;

export const geometryColumn: ColumnAvroType = {
  label: "Geometry {wkb, srid}",
  schema: (scope) =>
    scope.define(GEOMETRY, () => ({
      type: "record",
      name: GEOMETRY,
      fields: [
        { name: "wkb", type: "bytes" },
        { name: "srid", type: ["null", "int"], default: null },
      ],
      "connect.name": GEOMETRY,
      "connect.doc": "Geometry in WKB with its SRID",
    })),
  toAvro: (value) => {
    if (!(value instanceof Uint8Array) || value.length < SRID_BYTES) {
      throw new TypeError(`expected a geometry (a 4-byte SRID followed by WKB), got ${value instanceof Uint8Array ? `${value.length} bytes` : typeof value}`);
    }
    const bytes = asBuffer(value);
    return { wkb: bytes.subarray(SRID_BYTES), srid: bytes.readInt32LE(0) };
  },
  fromAvro: (value): ColumnValue => {
    const record = value as { wkb: Uint8Array; srid: number | null };
    const out = new Uint8Array(SRID_BYTES + record.wkb.length);
    new DataView(out.buffer).setInt32(0, record.srid ?? 0, true);
    out.set(record.wkb, SRID_BYTES);
    return out;
  },
  zero: { wkb: Buffer.alloc(0), srid: null },
  mayBeSpecial: false,
};

const POINT = "io.debezium.data.geometry.Point";
const POINT_TEXT = /^\(\s*([^,()\s]+)\s*,\s*([^,()\s]+)\s*\)$/;

/** A WKB point (little-endian), as Debezium fills the Point's wkb. */
function pointWkb(x: number, y: number): Buffer {
  const wkb = Buffer.alloc(21);
  wkb.writeUInt8(1, 0);
  wkb.writeUInt32LE(1, 1);
  wkb.writeDoubleLE(x, 5);
  wkb.writeDoubleLE(y, 13);
  return wkb;
}

function pointText(x: number, y: number): string {
  return `(${String(x)},${String(y)})`;
}

/**
 * PostgreSQL `point` as Debezium's record io.debezium.data.geometry.Point {x, y, wkb, srid}. The
 * source's text comes back from x and y in most cases; where it does not (`-0`, exponents PostgreSQL
 * writes otherwise), the text travels in the record header `sluice.special`.
 */
export const pointColumn: ColumnAvroType = {
  label: "Point {x, y, wkb, srid}",
  schema: (scope) =>
    scope.define(POINT, () => ({
      type: "record",
      name: POINT,
      fields: [
        { name: "x", type: "double" },
        { name: "y", type: "double" },
        { name: "wkb", type: ["null", "bytes"], default: null },
        { name: "srid", type: ["null", "int"], default: null },
      ],
      "connect.version": 1,
      "connect.doc": "Geometry (POINT)",
      "connect.name": POINT,
    })),
  toAvro: (value, context, path) => {
    const match = typeof value === "string" ? POINT_TEXT.exec(value) : null;
    const x = Number(match?.[1]);
    const y = Number(match?.[2]);
    if (match === null || (Number.isNaN(x) && match[1] !== "NaN") || (Number.isNaN(y) && match[2] !== "NaN")) {
      throw new TypeError(`expected a point (x,y), got ${typeof value === "string" ? JSON.stringify(value) : typeof value}`);
    }
    if (pointText(x, y) !== value) context.special(path, value as string);
    return { x, y, wkb: pointWkb(x, y), srid: null };
  },
  fromAvro: (value, context, path): ColumnValue => {
    const record = value as { x: number; y: number };
    return context.special(path) ?? pointText(record.x, record.y);
  },
  zero: { x: 0, y: 0, wkb: null, srid: null },
  mayBeSpecial: true,
};
