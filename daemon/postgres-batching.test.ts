import assert from "node:assert/strict";
import { test } from "node:test";
import { postgresBatching } from "./components.ts";

const personal = { governance: { tables: { "public.customers": { personal: { subject: "customer_id", columns: ["email"] } } } } };

test("a PostgreSQL source with personal columns hands on whole batches, not slices (sealing spreads a batch over the seal workers)", () => {
  const { sliceEvents } = postgresBatching(personal as never);
  assert.ok(sliceEvents !== undefined && sliceEvents >= 4096, "slices as large as a batch: no run of slices");
});

test("a PostgreSQL source without personal columns keeps the stream's slices", () => {
  assert.deepEqual(postgresBatching({}), {});
  assert.deepEqual(postgresBatching({ governance: { tables: { "public.orders": { checks: [] } } } } as never), {});
});
