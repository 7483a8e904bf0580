/**
 * Avro field names across a schema change on the real MariaDB: a column added FIRST whose name
 * sanitises to the name of an existing column's field takes a new name, and the existing column
 * keeps its field, so consumers reading by field name read the same column before and after.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Connection } from "mysql2/promise";
import type { ProducedRecord } from "../contracts.ts";
import { AvroChangeEncoder } from "../../schema-registry/change-encoder.ts";
import { ChangeEventDecoder } from "../../schema-registry/event-codec.ts";
import { LocalRegistry } from "../../schema-registry/local-registry.ts";
import { openMemoryStore } from "../../schema-registry/log-store.ts";
import { afterByField } from "../../schema-registry/record-fields-test-support.ts";
import { MemorySchemaHistoryStore } from "./schema/schema-history.ts";
import { adminConnection, dropDatabase, newSource, randomName, readUntil, sourceConfig } from "./int-test-support.ts";

describe("MySQL source to Avro: field names across ALTER TABLE", () => {
  const database = randomName("s_names");
  let admin: Connection;

  before(async () => {
    admin = await adminConnection(database);
  });

  after(async () => {
    await dropDatabase(admin, database);
    await admin.end();
  });

  it("a column added FIRST whose name sanitises to an existing field's gets a new field; the existing column keeps its own", async () => {
    await admin.query("CREATE TABLE t (id INT PRIMARY KEY, a_b INT)");
    const source = newSource(sourceConfig({ tables: [`${database}.t`], snapshot: { mode: "never", parallelism: 1, chunk_rows: 100 } }), { schemaHistory: new MemorySchemaHistoryStore() });
    await source.connect(null, AbortSignal.timeout(30_000));
    try {
      await admin.query("INSERT INTO t (id, a_b) VALUES (1, 10)");
      await admin.query("ALTER TABLE t ADD COLUMN `a-b` INT FIRST");
      await admin.query("INSERT INTO t (`a-b`, id, a_b) VALUES (200, 2, 20)");
      const { events } = await readUntil(source, (c) => c.events.length >= 2);
      assert.deepEqual(events[1]!.schema.columns.map((c) => c.name), ["a-b", "id", "a_b"]);

      const registry = new LocalRegistry(await openMemoryStore());
      const encoder = new AvroChangeEncoder({ registry, topicPrefix: (name) => `it.${name}` });
      const records: ProducedRecord[] = [];
      for (const event of events) records.push(...(await encoder.encode(event)));
      assert.equal(records.length, 2);

      const first = await afterByField(registry, records[0]!.value!);
      const second = await afterByField(registry, records[1]!.value!);
      assert.deepEqual(first.fields, { id: 1, a_b: 10 });
      assert.deepEqual(second.fields, { a_b_2: 200, id: 2, a_b: 20 }, "field a_b is column a_b's before and after the ALTER");
      assert.deepEqual(second.columns, { a_b_2: "a-b", id: "id", a_b: "a_b" });

      const decoder = new ChangeEventDecoder(registry);
      const decoded = await Promise.all(records.map((r) => decoder.decode(r.key, r.value, r.headers)));
      assert.deepEqual(decoded.map((e) => e?.after), [
        { id: 1, a_b: 10 },
        { "a-b": 200, id: 2, a_b: 20 },
      ]);
    } finally {
      await source.close();
    }
  });
});
