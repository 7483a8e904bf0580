import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createAvroType } from "./avro-runtime.ts";
import { FramedDecoder } from "./framed-codec.ts";
import { encodeFramed, frame, unframe } from "./wire-format.ts";

const V1 = { type: "record", name: "User", fields: [{ name: "id", type: "long" }] };
const V2 = {
  type: "record",
  name: "User",
  fields: [
    { name: "id", type: "long" },
    { name: "email", type: ["null", "string"], default: null },
  ],
};

function countingRegistry(schemas: Record<number, unknown>): { getById(id: number): Promise<string>; calls: number[] } {
  const calls: number[] = [];
  return {
    calls,
    async getById(id: number) {
      calls.push(id);
      const schema = schemas[id];
      if (schema === undefined) throw new Error(`no schema ${id}`);
      return JSON.stringify(schema);
    },
  };
}

describe("wire format", () => {
  it("frames with magic byte 0 and a big-endian 4-byte id", () => {
    const message = frame(0x01020304, Buffer.from([9, 8]));
    assert.deepEqual([...message], [0, 1, 2, 3, 4, 9, 8]);
    const { schemaId, payload } = unframe(message);
    assert.equal(schemaId, 0x01020304);
    assert.deepEqual([...payload], [9, 8]);
  });

  it("rejects a wrong magic byte and short messages", () => {
    assert.throws(() => unframe(Buffer.from([1, 0, 0, 0, 1, 0])), /not the magic byte/);
    assert.throws(() => unframe(Buffer.from([0, 0, 1])), /too short/);
    assert.throws(() => frame(-1, Buffer.alloc(0)), /does not fit/);
  });

  it("encodes in one pass exactly as frame(id, toBuffer(value)), however large the value", () => {
    const type = createAvroType({ type: "record", name: "Blob", fields: [{ name: "data", type: "string" }] });
    for (const size of [0, 10, 200_000]) {
      const value = { data: "x".repeat(size) };
      assert.deepEqual(encodeFramed(42, type, value), frame(42, type.toBuffer(value)));
    }
  });

  it("encodes longs beyond 2^53 exactly", () => {
    const type = createAvroType(V1);
    for (const id of [2n ** 63n - 1n, -(2n ** 63n), 2n ** 53n + 1n, -1n, 0n]) {
      assert.equal(type.fromBuffer(unframe(encodeFramed(1, type, { id })).payload).id, id);
    }
  });
});

describe("FramedDecoder", () => {
  it("decodes with the writer's schema, fetched once per id", async () => {
    const registry = countingRegistry({ 1: V1 });
    const decoder = new FramedDecoder(registry);
    const message = encodeFramed(1, createAvroType(V1), { id: 5n });
    assert.deepEqual({ ...((await decoder.decode(message)).value as object) }, { id: 5n });
    assert.deepEqual({ ...((await decoder.decode(message)).value as object) }, { id: 5n });
    assert.deepEqual(registry.calls, [1]);
  });

  it("resolves an old writer schema against a newer reader schema", async () => {
    const registry = countingRegistry({ 1: V1, 2: V2 });
    const decoder = new FramedDecoder(registry);
    const reader = createAvroType(V2);
    const old = await decoder.decode(encodeFramed(1, createAvroType(V1), { id: 7n }), reader);
    assert.equal(old.schemaId, 1);
    assert.deepEqual({ ...(old.value as object) }, { id: 7n, email: null });
    const current = await decoder.decode(encodeFramed(2, createAvroType(V2), { id: 8n, email: "a@b" }), reader);
    assert.deepEqual({ ...(current.value as object) }, { id: 8n, email: "a@b" });
  });

  it("reads the payload after the header, refusing a truncated payload, trailing bytes and a bad header; a Uint8Array view reads its own bytes", async () => {
    const decoder = new FramedDecoder(countingRegistry({ 1: V2 }));
    const type = createAvroType(V2);
    const message = encodeFramed(1, type, { id: 300n, email: "a@b" });
    assert.deepEqual({ ...((await decoder.decode(message)).value as object) }, { id: 300n, email: "a@b" });
    assert.deepEqual({ ...(decoder.decodeNow(message)?.value as object) }, { id: 300n, email: "a@b" });
    await assert.rejects(decoder.decode(message.subarray(0, message.length - 1)), /truncated buffer/);
    assert.throws(() => decoder.decodeNow(Buffer.concat([message, Buffer.of(0)])), /trailing data/);
    await assert.rejects(decoder.decode(Buffer.concat([Buffer.of(1), message.subarray(1)])), /magic byte/);
    await assert.rejects(decoder.decode(message.subarray(0, 4)), /too short/);
    const backing = new Uint8Array(message.length + 6).fill(0xff);
    backing.set(message, 3);
    const view = new Uint8Array(backing.buffer, 3, message.length);
    assert.deepEqual({ ...(decoder.decodeNow(view)?.value as object) }, { id: 300n, email: "a@b" });
  });

  it("retries a schema whose fetch failed", async () => {
    let fail = true;
    const decoder = new FramedDecoder({
      getById: async () => {
        if (fail) throw new Error("registry down");
        return JSON.stringify(V1);
      },
    });
    const message = encodeFramed(3, createAvroType(V1), { id: 1n });
    await assert.rejects(decoder.decode(message), /registry down/);
    fail = false;
    assert.deepEqual({ ...((await decoder.decode(message)).value as object) }, { id: 1n });
  });
});
