import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { NdjsonOperations } from "./ndjson-operations.ts";

describe("NDJSON operations in one buffer", () => {
  test("each operation's bytes whole, also where the buffer grows in the middle of a multi-byte character", () => {
    const texts = ["{\"a\":1}\n", "{\"ü\":\"€😀\"}\n", `${"é".repeat(40)}\n`, "x\n", `{"v":"${"😀".repeat(100)}"}\n`];
    // Small capacities put the end of the room inside every text and every character's bytes.
    for (let capacity = 1; capacity <= 64; capacity++) {
      const operations = new NdjsonOperations(capacity);
      for (const text of texts) operations.add(text);
      assert.equal(operations.length, texts.length);
      assert.equal(operations.byteLength, Buffer.byteLength(texts.join("")), `capacity ${capacity}`);
      texts.forEach((text, i) => {
        assert.equal(operations.sizeOf(i), Buffer.byteLength(text));
        assert.equal(operations.bytesOf([i]).toString(), text, `capacity ${capacity}, operation ${i}`);
      });
      assert.equal(operations.bytesOf([0, 1, 2, 3, 4]).toString(), texts.join(""));
    }
  });

  test("consecutive operations are one view; others are copied in their order", () => {
    const operations = NdjsonOperations.ofLines([["{\"delete\":{}}"], ["{\"index\":{}}", "{}"], ["{\"index\":{}}", "{\"b\":2}"], ["{\"index\":{}}", "{\"c\":3}"]]);
    const run = operations.bytesOf([1, 2]);
    assert.equal(run.toString(), "{\"index\":{}}\n{}\n{\"index\":{}}\n{\"b\":2}\n");
    assert.equal(run.buffer, operations.bytesOf([0]).buffer, "a view of the operations' buffer");
    assert.equal(operations.bytesOf([0, 2, 3]).toString(), "{\"delete\":{}}\n{\"index\":{}}\n{\"b\":2}\n{\"index\":{}}\n{\"c\":3}\n");
    assert.equal(operations.bytesOf([]).length, 0);
  });
});
