import assert from "node:assert/strict";
import { test } from "node:test";
import { LARGE_VALUE_BYTES, releaseLargeValue } from "./large-values.ts";

/** A WeakRef to a buffer nothing else holds; its target is kept until the job that made it ends. */
async function dropped(): Promise<WeakRef<object>> {
  const ref = new WeakRef(Buffer.alloc(1024));
  await new Promise((resolve) => setImmediate(resolve));
  return ref;
}

test("letting go of a value of LARGE_VALUE_BYTES or more collects at once; a smaller one costs nothing", async () => {
  const small = await dropped();
  releaseLargeValue(LARGE_VALUE_BYTES - 1);
  const large = await dropped();
  releaseLargeValue(LARGE_VALUE_BYTES);
  assert.equal(large.deref(), undefined, "collected");
  assert.equal(small.deref(), undefined, "collected by the same collection");
  assert.equal((globalThis as { gc?: unknown }).gc, undefined, "no global gc is left behind");
});
