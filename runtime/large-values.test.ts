import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { COLLECT_TIME_SHARE, LARGE_VALUE_BYTES, LargeValueReleaser, MIN_COLLECT_INTERVAL_MS, releaseLargeValue } from "./large-values.ts";

/** A WeakRef to a buffer of `bytes` nothing else holds; its target is kept until the job that made it ends. */
async function dropped(bytes: number): Promise<WeakRef<object>> {
  const ref = new WeakRef(Buffer.alloc(bytes));
  await new Promise((resolve) => setImmediate(resolve));
  return ref;
}

test("letting go of a value of LARGE_VALUE_BYTES or more collects at once; a smaller one costs nothing", async () => {
  const small = await dropped(1024);
  releaseLargeValue(LARGE_VALUE_BYTES - 1);
  const large = await dropped(LARGE_VALUE_BYTES);
  releaseLargeValue(LARGE_VALUE_BYTES);
  assert.equal(large.deref(), undefined, "collected");
  assert.equal(small.deref(), undefined, "collected by the same collection");
  assert.equal((globalThis as { gc?: unknown }).gc, undefined, "no global gc is left behind");
});

/** A releaser on a clock of the test's, whose collections take `collectMs` and free all external memory but `baseline`. */
function fake(collectMs = 10, baseline = 0) {
  const state = { now: 0, external: 0, collections: 0, scheduled: [] as { at: number; run: () => void }[], gcTaken: 0 };
  const releaser = new LargeValueReleaser({
    collect: () => {
      state.gcTaken++;
      return () => {
        state.collections++;
        state.now += collectMs;
        state.external = baseline;
      };
    },
    externalBytes: () => state.external,
    now: () => state.now,
    schedule: (run, ms) => state.scheduled.push({ at: state.now + ms, run }),
  });
  /** Moves the clock to `ms`, running what was scheduled until then. */
  const advance = (ms: number) => {
    state.now = ms;
    for (const due of state.scheduled.filter((s) => s.at <= ms)) {
      state.scheduled.splice(state.scheduled.indexOf(due), 1);
      due.run();
    }
  };
  return { state, releaser, advance };
}

test("a thread letting go of a large value batch after batch collects at most once an interval, plus once at its end", () => {
  const { state, releaser, advance } = fake();
  for (let batch = 0; batch < 50; batch++) {
    state.external += LARGE_VALUE_BYTES;
    releaser.release(LARGE_VALUE_BYTES);
    advance(state.now + 10);
  }
  // 50 batches 10 ms apart (~0.5 s + the collection): one now, one due at the interval's end.
  assert.equal(state.collections, 1);
  assert.equal(state.scheduled.length, 1, "one collection left due, not one per batch");
  advance(MIN_COLLECT_INTERVAL_MS + 10);
  assert.equal(state.collections, 2);
  assert.equal(state.gcTaken, 1, "gc taken once for the thread");
});

test("a collection that took long spaces the next ones further apart", () => {
  const collectMs = 200;
  const { state, releaser, advance } = fake(collectMs);
  state.external = LARGE_VALUE_BYTES;
  releaser.release(LARGE_VALUE_BYTES);
  assert.equal(state.collections, 1);
  state.external = LARGE_VALUE_BYTES;
  advance(collectMs + MIN_COLLECT_INTERVAL_MS + 1);
  releaser.release(LARGE_VALUE_BYTES);
  assert.equal(state.collections, 1, "not yet: the last collection took 200 ms");
  advance(collectMs + COLLECT_TIME_SHARE * collectMs);
  assert.equal(state.collections, 2);
});

test("a value still held during one collection and let go of after it is collected at the next release", () => {
  // The first collection leaves the value (another stage still held it) outside the heap: it is part of what remains.
  const { state, releaser } = fake(10, LARGE_VALUE_BYTES);
  state.external = 2 * LARGE_VALUE_BYTES;
  releaser.release(LARGE_VALUE_BYTES);
  assert.equal(state.collections, 1);
  state.now += MIN_COLLECT_INTERVAL_MS + 1;
  releaser.release(LARGE_VALUE_BYTES);
  assert.equal(state.collections, 2, "collected although external memory did not grow since the last collection");
});

test("no collection when less than a large value is outside the heap (freed already)", () => {
  const { state, releaser } = fake();
  state.external = LARGE_VALUE_BYTES - 1;
  releaser.release(LARGE_VALUE_BYTES);
  assert.equal(state.collections, 0);
  assert.equal(state.gcTaken, 0);
});

test("no gc to be had: releasing does nothing and throws nothing, and gc is sought again a few times only", () => {
  let sought = 0;
  const releaser = new LargeValueReleaser({ collect: () => (sought++, null), externalBytes: () => LARGE_VALUE_BYTES, now: () => 0, schedule: () => {} });
  for (let i = 0; i < 10; i++) releaser.release(LARGE_VALUE_BYTES);
  assert.equal(sought, 3);
});

test("a process started with --expose-gc keeps gc in threads started after a collection", () => {
  const module = fileURLToPath(new URL("./large-values.ts", import.meta.url));
  const script = `
    import { Worker } from "node:worker_threads";
    const { releaseLargeValue, LARGE_VALUE_BYTES } = await import(${JSON.stringify(module)});
    let big = Buffer.alloc(LARGE_VALUE_BYTES); big = null;
    releaseLargeValue(LARGE_VALUE_BYTES);
    const worker = new Worker("import { parentPort } from 'node:worker_threads'; parentPort.postMessage(typeof gc);", { eval: true });
    worker.once("message", (type) => { console.log("main " + typeof gc + ", worker " + type); worker.terminate(); });
  `;
  const child = spawnSync(process.execPath, ["--expose-gc", "--input-type=module", "-e", script], { encoding: "utf8" });
  assert.equal(child.stderr, "");
  assert.equal(child.stdout.trim(), "main function, worker function");
});
