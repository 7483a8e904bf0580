import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import type { ChangeEvent } from "../connectors/contracts.ts";
import { UNCHANGED } from "../connectors/contracts.ts";
import { deserializeEvent, deserializeEventBytes, serializeEvent, serializeEventBytes } from "./event-json.ts";

const SLICE = 1 << 16;

function event(after: Record<string, unknown>): ChangeEvent {
  return {
    op: "u",
    key: { id: 7n },
    before: { id: 7n, t: "before" },
    after,
    schema: { source: "s", schema: "d", table: "t", columns: [], key: ["id"] },
    source: { position: { commit: 12345678901234567890n, change: 3n }, commitTimeMs: 1 },
  } as unknown as ChangeEvent;
}

test("the byte form is serializeEvent's text, and reads back as deserializeEvent does, for values shorter and longer than a slice", () => {
  const bytes = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 37) % 256);
  const texts = [
    "",
    'quote " backslash \\ newline \n nul \u0000 tab \t',
    "é😀".repeat(SLICE), // surrogate pairs across every slice boundary
    "a".repeat(SLICE - 1) + "😀" + "b".repeat(SLICE),
    "\n".repeat(SLICE + 3) + "\u0001".repeat(SLICE + 1) + "x",
    "a".repeat(SLICE - 2) + "\\\\u0041" + "中".repeat(SLICE),
  ];
  for (const [i, t] of texts.entries()) {
    for (const b of [bytes(0), bytes(5), bytes(SLICE * 3), bytes(SLICE * 3 + 1), bytes(SLICE * 4 + 2)]) {
      const e = event({ id: 7n, t, b, big: 2n ** 70n, u: UNCHANGED, list: [1, null, "x", t.slice(0, 10)], n: null, f: 1.5 });
      const written = serializeEventBytes(e);
      assert.equal(written.toString(), serializeEvent(e), `text ${i}, ${b.length} bytes`);
      assert.deepEqual(deserializeEventBytes(written), deserializeEvent(written.toString()), `text ${i}, ${b.length} bytes`);
      assert.deepEqual(deserializeEventBytes(written).after, e.after);
    }
  }
});

test("a Buffer value is written as bytes (serializeEvent wrote its toJSON, which reads back as an object)", () => {
  const e = event({ id: 7n, b: Buffer.from([1, 2, 3]) });
  assert.deepEqual(deserializeEventBytes(serializeEventBytes(e)).after!["b"], new Uint8Array([1, 2, 3]));
});

test("an event of two 14 MB images is written and read back within a 40 MB heap (JSON.stringify of it ran out of memory)", () => {
  const script = `
    const { serializeEventBytes, deserializeEventBytes } = await import(${JSON.stringify(new URL("./event-json.ts", import.meta.url).href)});
    const image = (tag) => ({ id: 1, b: new Uint8Array(8_000_000).fill(tag), t: "é😀".repeat(1_000_000) + tag });
    let written = serializeEventBytes({ op: "u", key: { id: 1 }, before: image(1), after: image(2), source: { position: { commit: 1n, change: 1n } } });
    const back = deserializeEventBytes(written);
    written = null;
    if (back.after.b[7_999_999] !== 2 || back.before.t.length !== 3_000_001 || !back.after.t.endsWith("😀2")) throw new Error("not read back");
  `;
  const result = spawnSync(process.execPath, ["--max-old-space-size=40", "--input-type=module", "-e", script], { encoding: "utf8" });
  assert.equal(result.status, 0, result.stderr.slice(-2000));
});
