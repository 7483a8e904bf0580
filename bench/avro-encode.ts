/**
 * Avro encode/decode of a 12-column row with Confluent framing, against JSON.stringify/JSON.parse
 * of the same rows in the same run. One core, no I/O.
 *
 *   node bench/avro-encode.ts [seconds per measurement, default 3]
 */
import type { ChangeEvent, Row, TableSchema } from "../connectors/contracts.ts";
import { createAvroType } from "../schema-registry/avro-runtime.ts";
import { toEnvelope } from "../schema-registry/envelope-codec.ts";
import { mapTable } from "../schema-registry/table-mapping.ts";
import { encodeFramed, unframe } from "../schema-registry/wire-format.ts";

const SECONDS = Number(process.argv[2] ?? 3);
const POOL_SIZE = 1024;

const TABLE: TableSchema = {
  source: "bench",
  database: "shop",
  schema: "public",
  table: "orders",
  sourceKind: "postgres",
  key: ["id"],
  columns: [
    { name: "id", dbType: "int8", nullable: false, primaryKeyIndex: 1 },
    { name: "customer_id", dbType: "int4", nullable: false },
    { name: "quantity", dbType: "int2", nullable: false },
    { name: "name", dbType: "text", nullable: false },
    { name: "email", dbType: "varchar(255)", nullable: true },
    { name: "status", dbType: "text", nullable: false },
    { name: "price", dbType: "numeric(10,2)", nullable: false },
    { name: "discount", dbType: "numeric(5,2)", nullable: true },
    { name: "created_at", dbType: "timestamptz", nullable: false },
    { name: "updated_at", dbType: "timestamptz", nullable: true },
    { name: "attributes", dbType: "jsonb", nullable: true },
    { name: "note", dbType: "text", nullable: true },
  ],
};

function row(i: number): Row {
  return {
    id: 1_000_000_000n + BigInt(i),
    customer_id: 10_000 + (i % 5000),
    quantity: 1 + (i % 12),
    name: `Product number ${i} with a moderately long name`,
    email: `customer${i % 5000}@example.com`,
    status: ["new", "paid", "shipped", "delivered"][i % 4] as string,
    price: `${(i % 100_000) + 1}.${String(i % 100).padStart(2, "0")}`,
    discount: i % 3 === 0 ? null : `${i % 50}.50`,
    created_at: 1_700_000_000_000_000n + BigInt(i) * 1_000_003n,
    updated_at: 1_700_000_100_000_000n + BigInt(i) * 997n,
    attributes: `{"color":"${["red", "green", "blue"][i % 3]}","size":${i % 44},"tags":["a","b"]}`,
    note: i % 2 === 0 ? null : "leave at the door",
  };
}

function measure(label: string, work: (i: number) => number): { perSecond: number; bytes: number } {
  for (let i = 0; i < 50_000; i++) work(i % POOL_SIZE);
  let count = 0;
  let bytes = 0;
  const deadline = performance.now() + SECONDS * 1000;
  const start = performance.now();
  while (performance.now() < deadline) {
    for (let batch = 0; batch < 1000; batch++) {
      bytes += work(count % POOL_SIZE);
      count++;
    }
  }
  const perSecond = count / ((performance.now() - start) / 1000);
  console.log(`${label.padEnd(38)} ${Math.round(perSecond).toLocaleString("en-US").padStart(12)} rows/s   ${(bytes / count).toFixed(0).padStart(4)} bytes/row`);
  return { perSecond, bytes: bytes / count };
}

const bigintAsString = (_key: string, value: unknown): unknown => (typeof value === "bigint" ? value.toString() : value);

const mapping = mapTable(TABLE);
const type = createAvroType(mapping.valueSchema);
const rows = Array.from({ length: POOL_SIZE }, (_, i) => row(i));
const framed = rows.map((r) => encodeFramed(7, type, mapping.valueCodec.toAvro(r)));
const json = rows.map((r) => JSON.stringify(r, bigintAsString));

console.log(`Node ${process.version}, ${TABLE.columns.length}-column row, ${SECONDS} s per measurement, one core`);
const avroEncode = measure("Avro encode (row → framed bytes)", (i) => encodeFramed(7, type, mapping.valueCodec.toAvro(rows[i] as Row)).length);
const jsonEncode = measure("JSON.stringify", (i) => JSON.stringify(rows[i], bigintAsString).length);
const avroDecode = measure("Avro decode (framed bytes → row)", (i) => {
  const { payload } = unframe(framed[i] as Buffer);
  mapping.valueCodec.fromAvro(type.fromBuffer(payload));
  return payload.length + 5;
});
const jsonDecode = measure("JSON.parse", (i) => {
  JSON.parse(json[i] as string);
  return (json[i] as string).length;
});
const envelopeType = createAvroType(mapping.envelopeSchema);
const events = rows.map(
  (after, i): ChangeEvent => ({
    op: "u",
    key: { id: after.id as bigint },
    before: null,
    after,
    source: {
      connector: "postgres",
      name: "bench",
      db: "shop",
      schema: "public",
      table: "orders",
      position: { commit: 1_000_000n + BigInt(i), change: 999_000n + BigInt(i) },
      txId: String(5000 + i),
      commitTimeMs: 1_700_000_000_000 + i,
      snapshot: false,
    },
    schema: TABLE,
  }),
);
measure("Avro encode envelope (event → bytes)", (i) => encodeFramed(8, envelopeType, toEnvelope(events[i] as ChangeEvent, mapping, { processedAtMs: 1 })).length);
console.log(`encode: Avro/JSON = ${(avroEncode.perSecond / jsonEncode.perSecond).toFixed(2)}   decode: Avro/JSON = ${(avroDecode.perSecond / jsonDecode.perSecond).toFixed(2)}`);
console.log(`size:   Avro/JSON = ${(avroEncode.bytes / jsonEncode.bytes).toFixed(2)}`);
