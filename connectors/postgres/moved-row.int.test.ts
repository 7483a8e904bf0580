import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type pg from "pg";
import { adminClient } from "./int-test-support.ts";
import { TRANSACTION_VISIBLE_SQL } from "./moved-row.ts";

let writer: pg.Client;
let reader: pg.Client;

before(async () => {
  writer = await adminClient();
  reader = await adminClient();
});

after(async () => {
  await writer.end();
  await reader.end();
});

async function visible(xid: string): Promise<boolean> {
  // As the catalog client reads it: text.
  return (await reader.query<{ visible: string }>(TRANSACTION_VISIBLE_SQL, [xid])).rows[0]!.visible === "true";
}

/** The 32-bit xid pgoutput sends for the writer's current transaction. */
async function currentXid(): Promise<string> {
  return (await writer.query<{ xid: string }>("SELECT (txid_current() % 4294967296)::text AS xid")).rows[0]!.xid;
}

test("a transaction's visibility by its 32-bit xid: committed is visible, in progress and not yet begun are not", async () => {
  const committed = await currentXid();
  await writer.query("BEGIN");
  try {
    const running = await currentXid();
    assert.equal(await visible(committed), true, "committed before");
    assert.equal(await visible(running), false, "in progress");
    assert.equal(await visible(String(Number(running) + 1_000)), false, "not yet begun");
    await writer.query("COMMIT");
    assert.equal(await visible(running), true, "committed now");
  } finally {
    await writer.query("ROLLBACK").catch(() => undefined);
  }
});
