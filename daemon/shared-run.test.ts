import assert from "node:assert/strict";
import { test } from "node:test";
import { sharedRun } from "./shared-run.ts";

test("callers while a run is in progress share it; a caller after it settled starts another; a failure is shared, not kept", async () => {
  let runs = 0;
  let finish: (value: number) => void = () => undefined;
  const shared = sharedRun(() => {
    runs++;
    return new Promise<number>((resolve) => (finish = resolve));
  });
  const first = Array.from({ length: 100 }, () => shared());
  finish(1);
  assert.deepEqual(new Set(await Promise.all(first)), new Set([1]));
  assert.equal(runs, 1);
  const second = shared();
  finish(2);
  assert.equal(await second, 2);
  assert.equal(runs, 2);

  let fail = true;
  const flaky = sharedRun(async () => {
    if (fail) throw new Error("sink thread gone");
    return "ok";
  });
  const failed = await Promise.allSettled([flaky(), flaky()]);
  assert.deepEqual(failed.map((result) => result.status), ["rejected", "rejected"]);
  fail = false;
  assert.equal(await flaky(), "ok");
});
