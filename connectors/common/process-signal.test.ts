import assert from "node:assert/strict";
import { once } from "node:events";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import { processSignal, raiseProcessSignal } from "./process-signal.ts";

const MODULE = new URL("./process-signal.ts", import.meta.url).href;

/**
 * A worker that listens to the signal `name`, reports each time it hears it ("heard") and whether
 * Node's bundled undici is loaded in it, and raises the signal when told to ("raise").
 */
function listener(name: string): Worker {
  const code = `
    const { parentPort } = require("node:worker_threads");
    import(${JSON.stringify(MODULE)}).then(({ processSignal, raiseProcessSignal }) => {
      const signal = processSignal(${JSON.stringify(name)}, "go");
      signal.on("go", () => parentPort.postMessage({ heard: true, undici: process.moduleLoadList.some((m) => m.includes("deps/undici")) }));
      parentPort.on("message", (m) => { if (m === "raise") raiseProcessSignal(signal); if (m === "stop") parentPort.close(); });
      parentPort.postMessage({ ready: true });
    });`;
  return new Worker(code, { eval: true });
}

async function next(worker: Worker): Promise<{ heard?: boolean; ready?: boolean; undici?: boolean }> {
  const [message] = (await once(worker, "message")) as [{ heard?: boolean; ready?: boolean; undici?: boolean }];
  return message;
}

test("a signal raised in one thread is heard in the others, once in the thread that raised it", async () => {
  const name = `test-signal-${process.pid}-${Date.now()}`;
  const local = processSignal(name, "go");
  let heardHere = 0;
  local.on("go", () => heardHere++);
  const worker = listener(name);
  try {
    assert.deepEqual(await next(worker), { ready: true });
    raiseProcessSignal(local);
    assert.equal(heardHere, 1);
    assert.equal((await next(worker)).heard, true);

    const heard = once(local, "go");
    worker.postMessage("raise");
    await heard;
    assert.equal((await next(worker)).heard, true, "the raising worker hears its own signal");
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(heardHere, 2, "each raise is heard once here");
  } finally {
    await worker.terminate();
  }
});

test("hearing a signal does not load Node's bundled undici into a thread (a BroadcastChannel's MessageEvent did: ~5 MiB RSS per thread)", async () => {
  const name = `test-signal-undici-${process.pid}-${Date.now()}`;
  const worker = listener(name);
  try {
    assert.deepEqual(await next(worker), { ready: true });
    raiseProcessSignal(processSignal(name, "go"));
    const message = await next(worker);
    assert.equal(message.heard, true);
    assert.equal(message.undici, false);
  } finally {
    await worker.terminate();
  }
});

test("listening keeps no thread alive: a worker that only listens ends by itself", async () => {
  const name = `test-signal-exit-${process.pid}-${Date.now()}`;
  const worker = listener(name);
  assert.deepEqual(await next(worker), { ready: true });
  worker.postMessage("stop");
  const [code] = (await once(worker, "exit")) as [number];
  assert.equal(code, 0);
});

test("different names are separate signals", async () => {
  const stamp = `${process.pid}-${Date.now()}`;
  const a = processSignal(`test-signal-a-${stamp}`, "go");
  const b = processSignal(`test-signal-b-${stamp}`, "go");
  let heardB = 0;
  b.on("go", () => heardB++);
  raiseProcessSignal(a);
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(heardB, 0);
});
