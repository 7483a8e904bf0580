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
