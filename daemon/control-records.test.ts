/** The control records capture writes for truncates and snapshot resets (control-records.ts). */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { ChangeEvent } from "../connectors/contracts.ts";
import { controlledTopic, controlRecord } from "./control-records.ts";

function truncate(table: string, snapshot: boolean): ChangeEvent {
  return {
    op: "t",
    key: {},
    before: null,
    after: null,
    source: { connector: "postgres", name: "pg", db: "shop", schema: "public", table, position: { commit: 10n, change: 9n }, txId: null, commitTimeMs: 1_000, snapshot },
    schema: { source: "pg", database: "shop", schema: "public", table, columns: [], key: ["id"] },
  } as unknown as ChangeEvent;
}

test("a control record names its data topic in a header and carries the envelope as value; compaction keeps the newest truncate and the newest reset of each table apart", () => {
  const envelope = Buffer.from([0, 0, 0, 0, 7, 1]);
  const record = controlRecord("d.sluice.control", truncate("items", false), "d.pg.public.items", envelope);
  assert.equal(record.topic, "d.sluice.control");
  assert.deepEqual(Buffer.from(record.value!), envelope);
  assert.equal(controlledTopic({ headers: record.headers! }), "d.pg.public.items");
  assert.equal(controlledTopic({}), null, "a data record is no control record");
  const key = (table: string, snapshot: boolean) => Buffer.from(controlRecord("c", truncate(table, snapshot), "t", envelope).key!).toString();
  assert.equal(key("items", false), key("items", false), "every truncate of a table has one key");
  assert.notEqual(key("items", false), key("items", true), "a snapshot reset (written after truncates streamed during an online snapshot, with a lower version) has its own");
  assert.notEqual(key("items", false), key("orders", false));
});
