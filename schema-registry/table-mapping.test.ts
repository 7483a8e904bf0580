import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { UNCHANGED } from "../connectors/contracts.ts";
import type { ColumnSchema, Row, TableSchema } from "../connectors/contracts.ts";
import { parseSchema } from "./avro-parse.ts";
import { createAvroType } from "./avro-runtime.ts";
import type { AvroFieldJson, AvroRecordJson } from "./avro-schema.ts";
import { SPECIAL_FIELD, UNCHANGED_FIELD } from "./row-codec.ts";
import { tableSchemaFromAvro } from "./table-from-avro.ts";
import { mapTable } from "./table-mapping.ts";

function table(columns: readonly ColumnSchema[], key: string[], overrides: Partial<TableSchema> = {}): TableSchema {
  return { source: "shop", database: "shopdb", schema: "public", table: "orders", sourceKind: "postgres", columns, key, ...overrides };
}

function field(record: AvroRecordJson, name: string): AvroFieldJson {
  const found = record.fields.find((candidate) => candidate.name === name);
  assert.ok(found, `field ${name}`);
  return found;
}

const ORDERS = table(
  [
    { name: "id", dbType: "int8", nullable: false, primaryKeyIndex: 1 },
    { name: "region", dbType: "text", nullable: false, primaryKeyIndex: 2 },
    { name: "total", dbType: "numeric(12,2)", nullable: true },
    { name: "qty", dbType: "int4", nullable: false, default: "0" },
    { name: "note", dbType: "text", nullable: false, default: "'none'::text" },
    { name: "created", dbType: "timestamptz", nullable: false, default: "now()" },
    { name: "serial", dbType: "int8", nullable: false, default: "nextval('orders_serial_seq'::regclass)" },
    { name: "body", dbType: "jsonb", nullable: true },
  ],
  ["region", "id"],
);

describe("mapTable", () => {
  it("names records <name>.<schema>.<table>.Key|Value|Envelope", () => {
    const mapping = mapTable(ORDERS, { name: "prod" });
    assert.equal(mapping.namespace, "prod.public.orders");
    assert.equal(mapping.keySchema?.name, "Key");
    assert.equal(mapping.keySchema?.namespace, "prod.public.orders");
    assert.equal(mapping.valueSchema.name, "Value");
    assert.equal(mapping.envelopeSchema.name, "Envelope");
    assert.equal(mapping.envelopeSchema.namespace, "prod.public.orders");
    assert.equal(mapTable(ORDERS).namespace, "shop.public.orders", "defaults to the logical source name");
  });

  it("sanitises namespace parts that are not Avro names", () => {
    const mapping = mapTable(table(ORDERS.columns, ["id"], { schema: "my-schema", table: "2024.orders" }), { name: "acme.prod-eu" });
    assert.equal(mapping.namespace, "acme.prod_eu.my_schema._2024_orders", "dots of the prefix separate parts; those of schema and table names do not");
  });

  it("produces schemas that parse, as Avro and with avsc", () => {
    const mapping = mapTable(ORDERS);
    for (const schema of [mapping.keySchema, mapping.valueSchema, mapping.envelopeSchema]) {
      assert.doesNotThrow(() => parseSchema(schema));
      assert.doesNotThrow(() => createAvroType(schema as AvroRecordJson));
    }
  });

  it("builds the key record from the key columns, in key order", () => {
    const key = mapTable(ORDERS).keySchema;
    assert.deepEqual(
      key?.fields.map((f) => f.name),
      ["region", "id"],
    );
    assert.equal(mapTable(table(ORDERS.columns, [])).keySchema, null);
    assert.throws(() => mapTable(table(ORDERS.columns, ["missing"])), /key column `missing` is not a column/);
  });

  it("makes nullable columns [null, T] with default null, and uses literal column defaults for NOT NULL columns", () => {
    const value = mapTable(ORDERS).valueSchema;
    assert.deepEqual(field(value, "total").type, ["null", { type: "bytes", logicalType: "decimal", precision: 12, scale: 2 }]);
    assert.equal(field(value, "total").default, null);
    assert.equal(field(value, "qty").default, 0);
    assert.equal(field(value, "note").default, "none");
    assert.ok(!("default" in field(value, "created")), "an expression default gives no Avro default");
    assert.ok(!("default" in field(value, "serial")));
    assert.ok(!("default" in field(value, "id")));
    assert.equal(field(value, "body")["sluice.db.type"], "jsonb");
  });

  it("sanitises column names deterministically, resolves collisions in column order, and records the mapping", () => {
    const mapping = mapTable(
      table(
        [
          { name: "a-b", dbType: "int4", nullable: true },
          { name: "a_b", dbType: "int4", nullable: true },
          { name: "a b", dbType: "int4", nullable: true },
          { name: "1st", dbType: "int4", nullable: true },
          { name: "prix €", dbType: "int4", nullable: true },
          { name: "__sluice_unchanged", dbType: "int4", nullable: true },
          { name: "ok", dbType: "int4", nullable: true },
        ],
        [],
      ),
    );
    assert.deepEqual(
      [...mapping.fieldNames.entries()],
      [
        ["a-b", "a_b"],
        ["a_b", "a_b_2"],
        ["a b", "a_b_3"],
        ["1st", "_1st"],
        ["prix €", "prix__"],
        ["__sluice_unchanged", "__sluice_unchanged_2"],
        ["ok", "ok"],
      ],
    );
    assert.equal(field(mapping.valueSchema, "a_b_3")["sluice.original.name"], "a b");
    assert.ok(!("sluice.original.name" in field(mapping.valueSchema, "ok")));
    const again = mapTable(table([...mapping.table.columns], []));
    assert.deepEqual([...again.fieldNames], [...mapping.fieldNames], "same input, same names");
    const row: Row = { "a-b": 1, a_b: 2, "a b": 3, "1st": 4, "prix €": 5, __sluice_unchanged: 6, ok: 7 };
    const type = createAvroType(mapping.valueSchema);
    assert.deepEqual(mapping.valueCodec.fromAvro(type.fromBuffer(type.toBuffer(mapping.valueCodec.toAvro(row)))), row);
  });

  it("keeps the field names of the previous schema: a column added first or one dropped moves no name to another column", () => {
    const int = (name: string): ColumnSchema => ({ name, dbType: "int4", nullable: true });
    const v1 = mapTable(table([int("id"), int("a_b"), int("a b")], []));
    assert.deepEqual([...v1.fieldNames], [["id", "id"], ["a_b", "a_b"], ["a b", "a_b_2"]]);
    // ALTER TABLE ... ADD COLUMN `a-b` ... FIRST: the new column takes the next free name.
    const v2 = mapTable(table([int("a-b"), int("id"), int("a_b"), int("a b")], []), { fieldNames: v1.fieldNames });
    assert.deepEqual([...v2.fieldNames], [["a-b", "a_b_3"], ["id", "id"], ["a_b", "a_b"], ["a b", "a_b_2"]]);
    // Dropping a_b frees its name for a column added later; `a b` keeps a_b_2.
    const v3 = mapTable(table([int("a-b"), int("id"), int("a b"), int("a.b")], []), { fieldNames: v2.fieldNames });
    assert.deepEqual([...v3.fieldNames], [["a-b", "a_b_3"], ["id", "id"], ["a b", "a_b_2"], ["a.b", "a_b"]]);
    // Without the previous names, column order decides (the earlier behaviour, which moved a_b's name to `a-b`).
    assert.deepEqual([...mapTable(v2.table).fieldNames][0], ["a-b", "a_b"]);
    // A kept name that is not valid, reserved or taken is assigned again.
    const odd = mapTable(table([int("x"), int("y"), int("z")], []), { fieldNames: new Map([["x", "not valid"], ["y", UNCHANGED_FIELD], ["z", "x"]]) });
    assert.deepEqual([...odd.fieldNames], [["x", "x_2"], ["y", "y"], ["z", "x"]]);
    // The registered schema gives its names back, so a decoder maps each field to its column.
    const read = tableSchemaFromAvro(v2.valueSchema);
    assert.deepEqual([...mapTable(read.table, read.options).fieldNames], [...v2.fieldNames]);
  });

  it("lays out the envelope as Debezium does, with the connector's source block", () => {
    const postgres = mapTable(ORDERS).envelopeSchema;
    assert.deepEqual(
      postgres.fields.map((f) => f.name),
      ["before", "after", "source", "op", "ts_ms", "ts_us", "ts_ns", "transaction"],
    );
    assert.deepEqual(field(postgres, "after").type, ["null", "shop.public.orders.Value"]);
    const source = field(postgres, "source").type as AvroRecordJson;
    assert.equal(source.name, "io.debezium.connector.postgresql.Source");
    assert.deepEqual(
      source.fields.map((f) => f.name),
      ["version", "connector", "name", "ts_ms", "snapshot", "db", "sequence", "ts_us", "ts_ns", "schema", "table", "txId", "lsn", "xmin"],
    );
    const mysql = mapTable(table([{ name: "id", dbType: "int", nullable: false }], ["id"], { sourceKind: "mysql" })).envelopeSchema;
    const mysqlSource = field(mysql, "source").type as AvroRecordJson;
    assert.equal(mysqlSource.name, "io.debezium.connector.mysql.Source");
    assert.deepEqual(
      mysqlSource.fields.map((f) => f.name),
      ["version", "connector", "name", "ts_ms", "snapshot", "db", "sequence", "ts_us", "ts_ns", "table", "server_id", "gtid", "file", "pos", "row", "thread", "query"],
    );
    const transaction = (field(postgres, "transaction").type as [string, AvroRecordJson])[1];
    assert.equal(transaction.name, "event.block");
    assert.deepEqual(
      transaction.fields.map((f) => [f.name, f.type]),
      [
        ["id", "string"],
        ["total_order", "long"],
        ["data_collection_order", "long"],
      ],
    );
  });

  it("Sluice's earlier layout adds __sluice_special only when a column may hold NaN or Infinity", () => {
    assert.ok(mapTable(ORDERS, { envelope: "sluice" }).valueSchema.fields.some((f) => f.name === SPECIAL_FIELD));
    const mysql = mapTable(table([{ name: "d", dbType: "decimal(10,2)", nullable: true }], [], { sourceKind: "mysql" }), { envelope: "sluice" });
    assert.ok(!mysql.valueSchema.fields.some((f) => f.name === SPECIAL_FIELD));
    assert.ok(mysql.valueSchema.fields.some((f) => f.name === UNCHANGED_FIELD));
  });
});

describe("row codec (Sluice's earlier layout)", () => {
  const mapping = mapTable(ORDERS, { envelope: "sluice" });
  const type = createAvroType(mapping.valueSchema);
  const roundTrip = (row: Row): Row => mapping.valueCodec.fromAvro(type.fromBuffer(type.toBuffer(mapping.valueCodec.toAvro(row))));
  const full: Row = {
    id: 2n ** 62n + 1n,
    region: "eu",
    total: "12.50",
    qty: 3,
    note: "n",
    created: 1_700_000_000_000_000n,
    serial: 9n,
    body: '{"big":"x"}',
  };

  it("round-trips a full row exactly", () => {
    assert.deepEqual(roundTrip(full), full);
  });

  it("encodes UNCHANGED columns as null (nullable) or zero (NOT NULL) and lists them, both ways", () => {
    const row: Row = { ...full, body: UNCHANGED, note: UNCHANGED };
    const record = mapping.valueCodec.toAvro(row);
    assert.equal(record.body, null);
    assert.equal(record.note, "", "a NOT NULL string holds its zero value");
    assert.deepEqual(record[UNCHANGED_FIELD], ["note", "body"]);
    const back = roundTrip(row);
    assert.equal(back.body, UNCHANGED);
    assert.equal(back.note, UNCHANGED);
    assert.equal(back.total, "12.50");
  });

  it("treats absent columns (a before-image with only the key) as not sent", () => {
    const back = roundTrip({ id: 1n, region: "eu" });
    assert.deepEqual(back, { id: 1n, region: "eu", total: UNCHANGED, qty: UNCHANGED, note: UNCHANGED, created: UNCHANGED, serial: UNCHANGED, body: UNCHANGED });
  });

  it("refuses a key without a value", () => {
    assert.throws(() => mapping.keyCodec?.toAvro({ id: 1n }), /column `region`: key column has no value/);
    assert.throws(() => mapping.keyCodec?.toAvro({ id: 1n, region: null }), /NOT NULL/);
  });

  it("keeps NaN of a NOT NULL precise numeric beside the record", () => {
    const notNull = mapTable(table([{ name: "n", dbType: "numeric", nullable: false }], []), { envelope: "sluice" });
    const record = notNull.valueCodec.toAvro({ n: "NaN" });
    assert.deepEqual(record.n, { scale: 0, value: Buffer.of(0) });
    assert.deepEqual(record[SPECIAL_FIELD], { n: "NaN" });
    assert.deepEqual(notNull.valueCodec.fromAvro(record), { n: "NaN" });
  });

  it("decodes records of an older schema that lack the side fields", () => {
    const record = mapping.valueCodec.toAvro(full);
    delete record[UNCHANGED_FIELD];
    delete record[SPECIAL_FIELD];
    assert.deepEqual(mapping.valueCodec.fromAvro(record), full);
  });
});

describe("row codec (Debezium layout, the default)", () => {
  const mapping = mapTable(ORDERS);
  const type = createAvroType(mapping.valueSchema);
  const full: Row = { id: 5n, region: "eu", total: "1.50", qty: 3, note: "n", created: 1_700_000_000_000_000n, serial: 9n, body: '{"a":1}' };

  it("has exactly the table's columns: no bookkeeping fields", () => {
    assert.deepEqual(
      mapping.valueSchema.fields.map((f) => f.name),
      ORDERS.columns.map((c) => c.name),
    );
  });

  it("writes Debezium's placeholder for unchanged TOAST where the type holds it, and lists the fields beside the record", () => {
    const side = {};
    const record = mapping.valueCodec.toAvro({ ...full, body: UNCHANGED, note: UNCHANGED, qty: UNCHANGED }, side);
    assert.equal(record.body, "__debezium_unavailable_value");
    assert.equal(record.note, "__debezium_unavailable_value");
    assert.equal(record.qty, 0, "an int cannot hold the placeholder: its zero value");
    assert.deepEqual(side, { unchanged: ["qty", "note", "body"] });
    const back = mapping.valueCodec.fromAvro(type.fromBuffer(type.toBuffer(record)), side);
    assert.deepEqual(back, { ...full, body: UNCHANGED, note: UNCHANGED, qty: UNCHANGED });
  });

  it("writes null (or zero) for columns absent from a before-image, not the placeholder", () => {
    const side = {};
    const record = mapping.valueCodec.toAvro({ id: 1n, region: "eu" }, side);
    assert.equal(record.body, null);
    assert.equal(record.note, "");
    assert.deepEqual(side, { unchanged: ["total", "qty", "note", "created", "serial", "body"] });
  });

  it("keeps NaN of precise numerics beside the record", () => {
    const numbers = mapTable(table([{ name: "n", dbType: "numeric", nullable: true }], []));
    const side = {};
    const record = numbers.valueCodec.toAvro({ n: "NaN" }, side);
    assert.equal(record.n, null);
    assert.deepEqual(side, { special: { n: "NaN" } });
    assert.deepEqual(numbers.valueCodec.fromAvro(record, side), { n: "NaN" });
  });

  it("gives a nullable column with a literal default that default, its type first (as Debezium), so older records read as it", () => {
    const withDefault = mapTable(table([...ORDERS.columns, { name: "tier", dbType: "text", nullable: true, default: "'basic'::text" }], ["id"]));
    const tier = field(withDefault.valueSchema, "tier");
    assert.deepEqual(tier.type, ["string", "null"]);
    assert.equal(tier.default, "basic");
    assert.deepEqual((field(mapTable(ORDERS, { envelope: "sluice" }).valueSchema, "total").type as unknown[])[0], "null");
    const old = createAvroType(mapping.valueSchema).toBuffer(mapping.valueCodec.toAvro(full));
    const reader = createAvroType(withDefault.valueSchema);
    assert.equal((reader.fromBuffer(old, reader.createResolver(createAvroType(mapping.valueSchema))) as Record<string, unknown>).tier, "basic");
  });
});

describe("tableSchemaFromAvro", () => {
  it("rebuilds the table (columns, types, nullability, key) from a registered envelope", () => {
    const mapping = mapTable(
      table(
        [
          { name: "id", dbType: "int8", nullable: false, primaryKeyIndex: 1 },
          { name: "a-b", dbType: "numeric", nullable: true },
        ],
        ["id"],
      ),
      { name: "dep.shop", numericMode: "string" },
    );
    const { table: rebuilt, options } = tableSchemaFromAvro(JSON.stringify(mapping.envelopeSchema));
    assert.deepEqual(rebuilt, {
      source: "shop",
      database: "shopdb",
      schema: "public",
      table: "orders",
      sourceKind: "postgres",
      key: ["id"],
      columns: [
        { name: "id", dbType: "int8", nullable: false, primaryKeyIndex: 1 },
        { name: "a-b", dbType: "numeric", nullable: true },
      ],
    });
    // No hstore or interval column, so no mode of theirs in sluice.table: the earlier forms are assumed, which changes nothing here.
    assert.deepEqual(options, { name: "dep.shop", numericMode: "string", envelope: "debezium", timePrecision: "adaptive", decimals: "all", hstore: "map", interval: "string", intervalText: "postgres", bitBoolean: false, pointRecord: false, bits: false, fieldNames: new Map([["id", "id"], ["a-b", "a_b"]]) });
    assert.equal(tableSchemaFromAvro(mapTable(rebuilt, { ...options, envelope: "sluice" }).envelopeSchema).options.envelope, "sluice", "the earlier layout is recognised by its bookkeeping field");
    const again = mapTable(rebuilt, options);
    assert.deepEqual(again.valueSchema, mapping.valueSchema);
    assert.throws(() => tableSchemaFromAvro({ type: "record", name: "X", fields: [] }), /not a Sluice table schema/);
  });
  it("gives each column with a literal default the value a record written before the column reads as (defaultValue)", () => {
    const columns: ColumnSchema[] = [
      { name: "id", dbType: "int8", nullable: false, primaryKeyIndex: 1 },
      { name: "note", dbType: "text", nullable: true, default: "'hi'::text" },
      { name: "n", dbType: "bigint", nullable: false, default: "42" },
      { name: "price", dbType: "numeric(10,2)", nullable: false, default: "1.50" },
      { name: "day", dbType: "date", nullable: true, default: "'2024-02-29'::date" },
      { name: "raw", dbType: "bytea", nullable: true, default: "'\\x00ff'::bytea" },
      { name: "flag", dbType: "boolean", nullable: true, default: "true" },
      { name: "at", dbType: "timestamp with time zone", nullable: true, default: "now()" },
      { name: "plain", dbType: "text", nullable: true },
    ];
    const read = (envelope: "debezium" | "sluice") => tableSchemaFromAvro(JSON.stringify(mapTable(table(columns, ["id"]), { name: "shop", envelope }).envelopeSchema)).table;
    const values = (t: TableSchema) => Object.fromEntries(t.columns.filter((c) => c.defaultValue !== undefined).map((c) => [c.name, c.defaultValue]));
    // Capture derives no Avro default for every literal (here the date and the bytea): those give none.
    assert.deepEqual(values(read("debezium")), { note: "hi", n: 42n, price: "1.50", flag: true });
    // Sluice's earlier layout puts null first in a nullable column's union, so only NOT NULL columns carry their default.
    assert.deepEqual(values(read("sluice")), { n: 42n, price: "1.50" });
    // MySQL/MariaDB: the defaults the source reports as literals (integers; MariaDB's quoted text).
    const mysql = table(
      [
        { name: "id", dbType: "int", nullable: false, primaryKeyIndex: 1 },
        { name: "qty", dbType: "int", nullable: false, default: "7" },
        { name: "note", dbType: "varchar(10)", nullable: true, default: "'hi'" },
        { name: "at", dbType: "datetime", nullable: true, default: "current_timestamp()" },
      ],
      ["id"],
      { sourceKind: "mysql", database: "shop", schema: "shop" },
    );
    assert.deepEqual(values(tableSchemaFromAvro(JSON.stringify(mapTable(mysql, { name: "shop" }).envelopeSchema)).table), { qty: 7, note: "hi" });
  });
  it("keeps the mark of a whole-row key (a table without a primary key), so sinks can refuse it", () => {
    const keyless = { ...table([{ name: "a", dbType: "int4", nullable: false, primaryKeyIndex: 1 }], ["a"]), keyIsWholeRow: true };
    assert.equal(tableSchemaFromAvro(mapTable(keyless, { name: "shop" }).envelopeSchema).table.keyIsWholeRow, true);
    const keyed = table([{ name: "a", dbType: "int4", nullable: false, primaryKeyIndex: 1 }], ["a"]);
    assert.equal(tableSchemaFromAvro(mapTable(keyed, { name: "shop" }).envelopeSchema).table.keyIsWholeRow, undefined);
  });
});
