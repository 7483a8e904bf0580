/**
 * A capture term's start (term-start.ts): nothing is read and no slot is taken before the former
 * leader is fenced; after it, the registry is read while the slots are taken; the takeover's
 * connections are closed however the start ends.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { startTerm } from "./term-start.ts";
import type { TermSteps } from "./term-start.ts";

interface Gate {
  readonly promise: Promise<void>;
  open(): void;
  fail(error: Error): void;
}

function gate(): Gate {
  let open = (): void => undefined;
  let fail = (_error: Error): void => undefined;
  const promise = new Promise<void>((resolve, reject) => [open, fail] = [resolve, reject]);
  return { promise, open, fail };
}

const turns = () => new Promise((resolve) => setImmediate(resolve));

function steps(gates: { fence: Gate; take: Gate; registry: Gate }, events: string[]): TermSteps<string> {
  return {
    takeover: {
      take: async () => {
        events.push("take");
        await gates.take.promise;
        events.push("taken");
      },
      close: async () => void events.push("close"),
    },
    prepareSources: async () => void events.push("prepare"),
    fence: async () => {
      events.push("fence");
      await gates.fence.promise;
      events.push("fenced");
    },
    readRegistry: async () => {
      events.push("read registry");
      await gates.registry.promise;
      return "registry";
    },
  };
}

test("the slots are taken and the registry read only after the fencing, the read while the slots are taken", async () => {
  const gates = { fence: gate(), take: gate(), registry: gate() };
  const events: string[] = [];
  const starting = startTerm(steps(gates, events), new AbortController().signal);
  await turns();
  assert.deepEqual(events, ["prepare", "fence"], "nothing read, no slot taken while fencing");
  gates.fence.open();
  await turns();
  assert.deepEqual(events, ["prepare", "fence", "fenced", "read registry", "take"], "the registry is read while the slots are taken");
  gates.take.open();
  const { registry } = await starting;
  assert.deepEqual(events.slice(-2), ["taken", "close"]);
  gates.registry.open();
  assert.equal(await registry, "registry");
});

test("a failed fencing reads nothing, takes no slot and closes the takeover's connections", async () => {
  const gates = { fence: gate(), take: gate(), registry: gate() };
  const events: string[] = [];
  const starting = startTerm(steps(gates, events), new AbortController().signal);
  gates.fence.fail(new Error("fenced ourselves"));
  await assert.rejects(starting, /fenced ourselves/);
  assert.deepEqual(events, ["prepare", "fence", "close"]);
});

test("a failed registry read is met where the registry is used, after the slots are taken", async () => {
  const gates = { fence: gate(), take: gate(), registry: gate() };
  const events: string[] = [];
  gates.fence.open();
  gates.take.open();
  gates.registry.fail(new Error("journal unreadable"));
  const { registry } = await startTerm(steps(gates, events), new AbortController().signal);
  assert.deepEqual(events, ["prepare", "fence", "fenced", "read registry", "take", "taken", "close"]);
  await assert.rejects(registry, /journal unreadable/);
});
