/**
 * Avro field names across a schema change on the real PostgreSQL: a dropped column whose name
 * sanitised to the same field name as a later column's does not hand that column its name, so
 * consumers reading by field name read the same column before and after.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type pg from "pg";
import type { ProducedRecord } from "../contracts.ts";
import { AvroChangeEncoder } from "../../schema-registry/change-encoder.ts";
import { ChangeEventDecoder } from "../../schema-registry/event-codec.ts";
import { LocalRegistry } from "../../schema-registry/local-registry.ts";
import { openMemoryStore } from "../../schema-registry/log-store.ts";
import { afterByField } from "../../schema-registry/record-fields-test-support.ts";
import { adminClient, cleanUp, newSource, randomName, readUntil, sourceConfig } from "./int-test-support.ts";

const schema = randomName("s_names");
const config = sourceConfig({ tables: [`${schema}.*`], snapshot: { mode: "never", parallelism: 1, chunk_rows: 100 } });
let admin: pg.Client;

before(async () => {
  admin = await adminClient();
  await admin.query(`CREATE SCHEMA "${schema}"; CREATE TABLE "${schema}".t (id int PRIMARY KEY, "a-b" int, a_b int)`);
});

after(async () => {
  await cleanUp(admin, config, schema);
  await admin.end();
});

test("after DROP COLUMN of a column whose field name another column's sanitises to, that column keeps its own field", async () => {
  const source = newSource(config);
  await source.connect(null, AbortSignal.timeout(30_000));
  try {
    await admin.query(`INSERT INTO "${schema}".t VALUES (1, 100, 10)`);
    await admin.query(`ALTER TABLE "${schema}".t DROP COLUMN "a-b"`);
    await admin.query(`INSERT INTO "${schema}".t VALUES (2, 20)`);
    const { events } = await readUntil(source, (c) => c.events.length >= 2);
    assert.deepEqual(events[1]!.schema.columns.map((c) => c.name), ["id", "a_b"]);

    const registry = new LocalRegistry(await openMemoryStore());
    const encoder = new AvroChangeEncoder({ registry, topicPrefix: (name) => `it.${name}` });
    const records: ProducedRecord[] = [];
    for (const event of events) records.push(...(await encoder.encode(event)));
    const first = await afterByField(registry, records[0]!.value!);
    const second = await afterByField(registry, records[1]!.value!);
    assert.deepEqual(first.columns, { id: "id", a_b: "a-b", a_b_2: "a_b" });
    assert.deepEqual(first.fields, { id: 1, a_b: 100, a_b_2: 10 });
    assert.deepEqual(second.fields, { id: 2, a_b_2: 20 }, "field a_b_2 is column a_b's before and after the DROP");
    assert.deepEqual(second.columns, { id: "id", a_b_2: "a_b" });

    const decoder = new ChangeEventDecoder(registry);
    const decoded = await Promise.all(records.map((r) => decoder.decode(r.key, r.value, r.headers)));
    assert.deepEqual(decoded.map((e) => e?.after), [
      { id: 1, "a-b": 100, a_b: 10 },
      { id: 2, a_b: 20 },
    ]);
  } finally {
    await source.close();
  }
});
