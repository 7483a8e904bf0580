/**
 * The type matrix's PostgreSQL values through capture's fast encoding path (schema-registry/
 * envelope-writer.ts): each value, decoded from its text as the PostgreSQL source decodes it,
 * gives byte for byte the records of the general path (envelope and row objects encoded by avsc),
 * in every time precision mode. Values written as SQL expressions (SELECT, ARRAY[...], E'...')
 * need the server to become text and are left to type-matrix.int.test.ts; MariaDB values are
 * binlog-decoded and covered by schema-registry/type-mapping.test.ts.
 */
import { describe, it } from "node:test";
import type { ColumnValue, Row, TableSchema } from "../../connectors/contracts.ts";
import { TypeCatalog } from "../../connectors/postgres/values/type-catalog.ts";
import type { PgTypeRow } from "../../connectors/postgres/values/type-catalog.ts";
import { ChangeEventEncoder } from "../../schema-registry/event-codec.ts";
import { assertFastPathAgrees } from "../../schema-registry/fast-path-test-support.ts";
import { LocalRegistry } from "../../schema-registry/local-registry.ts";
import { openMemoryStore } from "../../schema-registry/log-store.ts";
import type { TimePrecisionMode } from "../../schema-registry/temporal-modes.ts";
import { CASES } from "./cases.ts";

/** Built-in type OIDs (pg_type.dat) of the matrix's types; others decode as text. */
const OIDS: Readonly<Record<string, number>> = {
  bool: 16, bytea: 17, int8: 20, bigserial: 20, int2: 21, smallserial: 21, int4: 23, serial: 23, oid: 26,
  float4: 700, float: 700, float8: 701, money: 790, date: 1082, time: 1083, timestamp: 1114, timestamptz: 1184, timetz: 1266, numeric: 1700,
};
const ARRAY_OID_BASE = 100_000;

/** A catalog where `T[]` of every type above (and text) is an array type of its own OID. */
const catalog = new TypeCatalog(
  [...Object.values(OIDS), 25].map((element): PgTypeRow => ({
    oid: ARRAY_OID_BASE + element,
    name: `_${element}`,
    namespace: "pg_catalog",
    kind: "b",
    category: "A",
    elementOid: element,
    baseTypeOid: 0,
    baseTypeModifier: -1,
    delimiter: ",",
  })),
);

function oidOf(type: string): number {
  const array = type.endsWith("[]");
  const base = type.replace(/(\[\])+$/, "").replace(/\(.*\)$/, "");
  const element = OIDS[base] ?? 25;
  return array ? ARRAY_OID_BASE + element : element;
}

/** The text PostgreSQL sends for a literal, or null for an expression. */
function textOf(literal: string): string | null {
  if (literal === "true" || literal === "false") return literal[0]!;
  if (/^-?\d+(\.\d+)?(e-?\d+)?$/.test(literal)) return literal;
  const quoted = /^[Bb]?'((?:[^']|'')*)'$/.exec(literal);
  return quoted ? quoted[1]!.replace(/''/g, "'") : null;
}

describe("the type matrix through the fast encoding path", () => {
  for (const timePrecision of ["adaptive", "connect", "avro"] as TimePrecisionMode[]) {
    it(`gives the general path's records for every PostgreSQL value (time.precision.mode ${timePrecision})`, async () => {
      const registry = new LocalRegistry(await openMemoryStore());
      let tested = 0;
      for (const [index, matrixCase] of CASES.entries()) {
        if (matrixCase.source !== "postgres") continue;
        const text = textOf(matrixCase.literal);
        if (text === null) continue;
        let value: ColumnValue;
        try {
          value = catalog.decoderFor(oidOf(matrixCase.type))(text);
        } catch {
          continue; // a text form the source decodes only from the server's output (e.g. timetz offsets it normalises)
        }
        const table: TableSchema = {
          source: "pg1",
          database: "app",
          schema: "matrix",
          table: `case_${index}`,
          sourceKind: "postgres",
          key: ["id"],
          columns: [
            { name: "id", dbType: "integer", nullable: false, primaryKeyIndex: 1 },
            { name: "c", dbType: matrixCase.type, nullable: true },
          ],
        };
        const encoder = await ChangeEventEncoder.register(registry, table, { topic: `m.${timePrecision}.${index}`, name: "m", timePrecision });
        const after: Row = { id: index, c: value };
        const source = { connector: "postgres" as const, name: "pg1", db: "app", schema: "matrix", table: table.table, position: { commit: 100n, change: 90n }, txId: "7", commitTimeMs: 1_764_900_000_000, snapshot: false };
        const label = `${matrixCase.type} ${matrixCase.literal.slice(0, 40)}`;
        try {
          encoder.generalEncode({ op: "c", key: { id: index }, before: null, after, source, schema: table }, { processedAtMs: 1 });
        } catch {
          continue; // refused by the column's Avro type in this mode (the capture halts the table): the fallback test covers errors
        }
        assertFastPathAgrees(encoder, { op: "c", key: { id: index }, before: null, after, source, schema: table }, { processedAtMs: 1_764_900_000_001 }, label);
        assertFastPathAgrees(encoder, { op: "u", key: { id: index }, before: after, after: { id: index, c: null }, source, schema: table }, { processedAtMs: 1_764_900_000_002 }, label);
        assertFastPathAgrees(encoder, { op: "d", key: { id: index }, before: after, after: null, source, schema: table }, { processedAtMs: 1_764_900_000_003 }, label);
        tested++;
      }
      if (tested < 50) throw new Error(`only ${tested} PostgreSQL cases of the matrix could be decoded here`);
    });
  }
});
