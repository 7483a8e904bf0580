import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { UNCHANGED } from "../connectors/contracts.ts";
import type { ChangeEvent, TableSchema } from "../connectors/contracts.ts";
import { createAvroType } from "./avro-runtime.ts";
import { encodeEnvelope, fromEnvelope, SLUICE_SOURCE_VERSION, toEnvelope, UNCHANGED_HEADER } from "./envelope-codec.ts";
import { mapTable } from "./table-mapping.ts";

const POSTGRES_TABLE: TableSchema = {
  source: "shop",
  database: "shopdb",
  schema: "public",
  table: "items",
  sourceKind: "postgres",
  key: ["id"],
  columns: [
    { name: "id", dbType: "int8", nullable: false, primaryKeyIndex: 1 },
    { name: "doc", dbType: "text", nullable: true },
  ],
};

const MYSQL_TABLE: TableSchema = { ...POSTGRES_TABLE, schema: "shopdb", sourceKind: "mysql", columns: [{ name: "id", dbType: "bigint unsigned", nullable: false }] };

function event(table: TableSchema, overrides: Partial<ChangeEvent> = {}): ChangeEvent {
  return {
    op: "u",
    key: { id: 7n },
    before: { id: 7n, doc: "old" },
    after: { id: 7n, doc: UNCHANGED },
    source: {
      connector: table.sourceKind,
      name: table.source,
      db: table.database,
      schema: table.schema,
      table: table.table,
      position: { commit: 2n ** 60n + 3n, change: 2n ** 60n + 1n },
      txId: table.sourceKind === "postgres" ? "5001" : "3E11FA47-71CA-11E1-9E33-C80AA9429562:23",
      commitTimeMs: 1_700_000_000_123,
      snapshot: false,
    },
    schema: table,
    ...overrides,
  };
}

describe("envelope codec", () => {
  it("round-trips a PostgreSQL change through Avro binary, position exact", () => {
    const mapping = mapTable(POSTGRES_TABLE);
    const type = createAvroType(mapping.envelopeSchema);
    const original = event(POSTGRES_TABLE);
    const record = type.fromBuffer(type.toBuffer(toEnvelope(original, mapping, { processedAtMs: 1_700_000_000_500 })));
    assert.equal(record.op, "u");
    assert.equal(record.source.connector, "postgresql");
    assert.equal(record.source.version, SLUICE_SOURCE_VERSION);
    assert.equal(record.source.lsn, 2n ** 60n + 1n);
    assert.equal(record.source.txId, 5001n);
    assert.equal(record.source.sequence, `["${2n ** 60n + 3n}","${2n ** 60n + 1n}"]`);
    assert.equal(record.source.snapshot, "false");
    assert.equal(record.source.ts_us, 1_700_000_000_123_000n);
    assert.equal(record.source.ts_ns, 1_700_000_000_123_000_000n);
    assert.equal(record.ts_ms, 1_700_000_000_500n);
    assert.equal(record.ts_ns, 1_700_000_000_500_000_000n);
    assert.equal(record.transaction, null);
    assert.equal(record.after.doc, "old", "the unchanged TOAST value is copied from before (REPLICA IDENTITY FULL), as Debezium");
    assert.deepEqual(fromEnvelope(record, mapping), { ...original, after: { id: 7n, doc: "old" } });
  });

  it("gives each change its own sequence and lsn, within one transaction and across transactions", () => {
    const mapping = mapTable(POSTGRES_TABLE);
    const type = createAvroType(mapping.envelopeSchema);
    const positions = [
      { commit: 300n, change: 100n },
      { commit: 300n, change: 101n },
      { commit: 400n, change: 101n },
      { commit: 300n, change: 102n },
    ];
    for (const position of positions) {
      const original = event(POSTGRES_TABLE);
      const record = type.fromBuffer(type.toBuffer(toEnvelope({ ...original, source: { ...original.source, position } }, mapping)));
      assert.equal(record.source.sequence, `["${position.commit}","${position.change}"]`);
      assert.equal(record.source.lsn, position.change);
    }
  });

  it("writes Debezium's placeholder when before does not hold the value, and gives UNCHANGED back from the headers", () => {
    const mapping = mapTable(POSTGRES_TABLE);
    const type = createAvroType(mapping.envelopeSchema);
    const original = event(POSTGRES_TABLE, { before: null });
    const { value, headers } = encodeEnvelope(original, mapping);
    assert.equal((value.after as Record<string, unknown>).doc, "__debezium_unavailable_value");
    assert.deepEqual(Object.keys(headers), [UNCHANGED_HEADER]);
    assert.deepEqual(JSON.parse(headers[UNCHANGED_HEADER]!.toString()), { after: ["doc"] });
    const record = type.fromBuffer(type.toBuffer(value));
    assert.deepEqual(fromEnvelope(record, mapping, undefined, headers), original);
    assert.equal(fromEnvelope(record, mapping).after?.doc, "__debezium_unavailable_value", "without the headers it is the placeholder text");
  });

  it("keeps the earlier layout on request: bookkeeping fields in the row, null for unchanged values, ts_ns null", () => {
    const mapping = mapTable(POSTGRES_TABLE, { envelope: "sluice" });
    const original = event(POSTGRES_TABLE);
    const { value, headers } = encodeEnvelope(original, mapping);
    assert.deepEqual(headers, {});
    assert.deepEqual(value.after, { id: 7, doc: null, __sluice_unchanged: ["doc"] });
    assert.equal(value.ts_ns, null);
    assert.equal((value.source as Record<string, unknown>).ts_ns, null);
    assert.deepEqual(fromEnvelope(value, mapping), original);
  });

  it("says first/last of a snapshot in source.snapshot", () => {
    const mapping = mapTable(POSTGRES_TABLE);
    const read = event(POSTGRES_TABLE, { op: "r", before: null, after: { id: 1n, doc: "x" }, key: { id: 1n } });
    for (const marker of ["first", "first_in_data_collection", "last_in_data_collection", "last", "incremental"] as const) {
      const marked = { ...read, source: { ...read.source, snapshot: true, snapshotMarker: marker } };
      const value = toEnvelope(marked, mapping);
      assert.equal((value.source as Record<string, unknown>).snapshot, marker);
      assert.deepEqual(fromEnvelope(value, mapping), marked);
    }
    assert.equal((toEnvelope({ ...read, source: { ...read.source, snapshot: true } }, mapping).source as Record<string, unknown>).snapshot, "true");
  });

  it("round-trips a MySQL change, with binlog details and a transaction block", () => {
    const mapping = mapTable(MYSQL_TABLE);
    const type = createAvroType(mapping.envelopeSchema);
    const original = event(MYSQL_TABLE, { op: "c", before: null, after: { id: 2n ** 64n - 1n }, key: { id: 2n ** 64n - 1n } });
    const record = type.fromBuffer(
      type.toBuffer(
        toEnvelope(original, mapping, {
          transaction: { totalOrder: 3, dataCollectionOrder: 1 },
          mysql: { serverId: 223344, file: "mysql-bin.000003", pos: 154, row: 0, thread: 7 },
        }),
      ),
    );
    assert.equal(record.source.connector, "mysql");
    assert.equal(record.source.file, "mysql-bin.000003");
    assert.equal(record.source.server_id, 223344n);
    assert.equal(record.source.gtid, original.source.txId);
    assert.deepEqual({ ...record.transaction }, { id: original.source.txId, total_order: 3n, data_collection_order: 1n });
    assert.deepEqual(fromEnvelope(record, mapping), { ...original, source: { ...original.source, binlog: { serverId: 223344, file: "mysql-bin.000003", pos: 154, row: 0, thread: 7 } } });
  });

  it("fills MySQL's source block from the event's binlog coordinates", () => {
    const mapping = mapTable(MYSQL_TABLE);
    const binlog = { serverId: 1, file: "mariadb-bin.000002", pos: 4711, row: 2 };
    const original = event(MYSQL_TABLE, { op: "c", before: null, after: { id: 1n }, key: { id: 1n } });
    const withBinlog = { ...original, source: { ...original.source, binlog } };
    const source = toEnvelope(withBinlog, mapping).source as Record<string, unknown>;
    assert.deepEqual([source.server_id, source.file, source.pos, source.row, source.gtid], [1, "mariadb-bin.000002", 4711, 2, original.source.txId]);
    assert.deepEqual(fromEnvelope(toEnvelope(withBinlog, mapping), mapping), withBinlog);
  });

  it("takes the key from the row when no decoded key is given, and marks snapshot reads", () => {
    const mapping = mapTable(POSTGRES_TABLE);
    const read = event(POSTGRES_TABLE, { op: "r", before: null, after: { id: 9n, doc: "x" }, key: { id: 9n } });
    const withSnapshot = { ...read, source: { ...read.source, snapshot: true } };
    const decoded = fromEnvelope(toEnvelope(withSnapshot, mapping), mapping);
    assert.deepEqual(decoded.key, { id: 9n });
    assert.equal(decoded.source.snapshot, true);
  });

  it("rejects an unknown op", () => {
    const mapping = mapTable(POSTGRES_TABLE);
    const record = toEnvelope(event(POSTGRES_TABLE), mapping);
    assert.throws(() => fromEnvelope({ ...record, op: "x" }, mapping), /op "x"/);
  });
});
