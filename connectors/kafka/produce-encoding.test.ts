import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { test } from "node:test";
import type { ProduceRequestArgs } from "./produce-encoding.ts";
import { crc32c, encodeProduceRequest, fastProduceRequestInstalled, FRAME_HEADROOM, kafkajsProduceRequest } from "./produce-encoding.ts";
// The producer's module graph: the encoder must be in place once Sluice's producer is loaded.
import "./batching-producer.ts";

const require = createRequire(import.meta.url);
const jsCrc32c = require("kafkajs/src/protocol/recordBatch/crc32C/index.js") as (buffer: Buffer) => number;
const Long = require("kafkajs/src/utils/long.js") as { fromValue(value: unknown): unknown };
const GZIP = 1;

/** Small deterministic PRNG (mulberry32), so a failure names a reproducible seed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NOW = 1_764_000_000_123;

function withFixedNow<T>(run: () => Promise<T>): Promise<T> {
  const real = Date.now;
  Date.now = () => NOW;
  return run().finally(() => (Date.now = real));
}

async function kafkajsBytes(args: ProduceRequestArgs): Promise<Buffer> {
  const encoder = (await kafkajsProduceRequest(args).encode()) as unknown as { buffer: Buffer };
  return encoder.buffer;
}

function generatedRequest(seed: number): ProduceRequestArgs {
  const next = random(seed);
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(...options: T[]): T => options[int(options.length)]!;
  const bytes = (max: number) => {
    // Lengths around the varint boundaries (127/128, 16383/16384) as well as anywhere below max.
    const length = pick(int(max), 0, 127, 128, int(3) + 16_382, int(300));
    const buffer = Buffer.alloc(Math.min(length, max));
    for (let i = 0; i < buffer.length; i++) buffer[i] = int(256);
    return buffer;
  };
  const timestampMode = pick("none", "strings", "numbers", "mixed", "some");
  const timestamp = (): string | number | undefined => {
    const ms = NOW + int(400_000) - 200_000;
    switch (timestampMode) {
      case "none":
        return undefined;
      case "strings":
        return String(ms);
      case "numbers":
        return ms;
      case "mixed":
        return pick<string | number>(String(ms), ms);
      default:
        return pick(undefined, String(ms));
    }
  };
  const headerNames = ["trace", "sluice.op", "ünïcødé", "x"];
  const message = () => {
    const headers = pick<"none" | "empty" | "some">("none", "none", "empty", "some");
    return {
      key: pick<Buffer | null | undefined>(bytes(300), bytes(40), null, undefined),
      value: pick<Buffer | null>(bytes(20_000), bytes(600), null),
      ...(headers === "none" ? {} : { headers: headers === "empty" ? {} : Object.fromEntries(headerNames.slice(0, 1 + int(3)).map((name) => [name, bytes(50)])) }),
      ...(timestampMode === "none" ? {} : { timestamp: timestamp() }),
    };
  };
  const topics = Array.from({ length: 1 + int(3) }, (_, t) => ({
    topic: pick(`deployment.pg.public.items_${t}`, `déploiement.sørce.${t}`),
    partitions: Array.from({ length: 1 + int(4) }, (_, p) => ({
      partition: p * 2 + int(2),
      ...(next() < 0.8 ? { firstSequence: int(2 ** 31) } : {}),
      messages: Array.from({ length: pick(0, 1, int(40), int(300)) }, message),
    })),
  }));
  return {
    acks: pick(-1, 1, 0),
    timeout: pick(30_000, 5_000),
    ...pick({}, { transactionalId: null }, { transactionalId: "sluice.capture-1" }, { transactionalId: "tx-ünï" }),
    ...pick({}, { producerId: Long.fromValue(int(2 ** 31) * 1000 + 7) }, { producerId: int(1_000_000) }, { producerId: "9007199254740993" }),
    ...pick({}, { producerEpoch: int(32_767) }),
    ...pick({}, { compression: 0 }),
    topicData: topics,
  };
}

test("the produce request's bytes equal kafkajs's own encoding, over generated requests", async () => {
  await withFixedNow(async () => {
    for (let seed = 1; seed <= 120; seed++) {
      const args = generatedRequest(seed);
      const fast = encodeProduceRequest(args);
      assert.ok(fast, `seed ${seed}: the fast encoder took the request`);
      assert.ok(fast.equals(await kafkajsBytes(args)), `seed ${seed}: the same bytes as kafkajs`);
    }
  });
});

test("the edge cases: empty partitions, a timestamp-less record among timestamped ones, negative deltas, large producer ids", async () => {
  await withFixedNow(async () => {
    const key = Buffer.from("k");
    const cases: ProduceRequestArgs[] = [
      { acks: -1, timeout: 1, topicData: [{ topic: "t", partitions: [{ partition: 0, messages: [] }] }] },
      { acks: -1, timeout: 1, topicData: [] },
      { acks: -1, timeout: 1, transactionalId: "x", producerId: "9223372036854775807", producerEpoch: 32_767, topicData: [{ topic: "t", partitions: [{ partition: 3, firstSequence: 2 ** 31 - 1, messages: [{ key, value: null, timestamp: String(NOW) }, { key, value: key }, { key: null, value: key, timestamp: String(NOW - 5_000_000) }] }] }] },
      // As strings, "999" sorts after "1000": kafkajs's first timestamp is then the later one, and so is this encoder's.
      { acks: -1, timeout: 1, topicData: [{ topic: "t", partitions: [{ partition: 0, messages: [{ key, value: key, timestamp: "1000" }, { key, value: key, timestamp: "999" }] }] }] },
      // Equal as text, different as values: which one is first and which max decides how int64 and deltas are written.
      { acks: -1, timeout: 1, topicData: [{ topic: "t", partitions: [{ partition: 0, messages: [{ key, value: key, timestamp: 1000 }, { key, value: key, timestamp: "1000" }, { key, value: key, timestamp: "999" }, { key, value: key, timestamp: 999 }, { key, value: key }] }] }] },
      { acks: -1, timeout: 1, topicData: [{ topic: "t", partitions: [{ partition: 0, messages: [{ key, value: Buffer.alloc(3_000_000, 7), headers: { a: Buffer.alloc(0) } }] }] }] },
    ];
    for (const [i, args] of cases.entries()) {
      const fast = encodeProduceRequest(args);
      assert.ok(fast, `case ${i}`);
      assert.ok(fast.equals(await kafkajsBytes(args)), `case ${i}: the same bytes as kafkajs`);
    }
  });
});

test("requests the fast encoder does not handle go to kafkajs's encoder", async () => {
  const value = Buffer.from("v");
  const others: ProduceRequestArgs[] = [
    { acks: -1, timeout: 1, compression: GZIP, topicData: [{ topic: "t", partitions: [{ partition: 0, messages: [{ value }] }] }] },
    { acks: -1, timeout: 1, topicData: [{ topic: "t", partitions: [{ partition: 0, messages: [{ key: "a string", value }] }] }] },
    { acks: -1, timeout: 1, topicData: [{ topic: "t", partitions: [{ partition: 0, messages: [{ value: "a string" }] }] }] },
    { acks: -1, timeout: 1, topicData: [{ topic: "t", partitions: [{ partition: 0, messages: [{ value, headers: { h: "a string" } }] }] }] },
    { acks: -1, timeout: 1, topicData: [{ topic: "t", partitions: [{ partition: 0, messages: [{ value, headers: { h: [value, value] } }] }] }] },
    { acks: -1, timeout: 1, topicData: [{ topic: "t", partitions: [{ partition: 0, messages: [{ value, timestamp: 1000 }, { value, timestamp: 1000.5 }] }] }] },
  ];
  for (const [i, args] of others.entries()) assert.equal(encodeProduceRequest(args), undefined, `case ${i}`);
  // Through kafkajs's module (what its producer calls), such a request is kafkajs's own encoding.
  const produce = require("kafkajs/src/protocol/requests/produce/index.js") as { protocol(v: { version: number }): (args: ProduceRequestArgs) => { request: { encode(): Promise<{ buffer: Buffer }> } } };
  await withFixedNow(async () => {
    // The same bytes, or the same error (kafkajs refuses a fractional timestamp delta).
    const outcome = (encoding: Promise<Buffer>) => encoding.then((bytes) => bytes.toString("hex"), (error: Error) => `error: ${error.message}`);
    for (const args of others) {
      const viaKafkajs = await outcome(produce.protocol({ version: 7 })(args).request.encode().then((encoder) => encoder.buffer));
      assert.equal(viaKafkajs, await outcome(kafkajsBytes(args)));
    }
  });
});

test("kafkajs's producer uses the fast encoder for every produce version from v3 on", async () => {
  assert.equal(fastProduceRequestInstalled(), true);
  const produce = require("kafkajs/src/protocol/requests/produce/index.js") as { protocol(v: { version: number }): (args: ProduceRequestArgs) => { request: { apiVersion: number; encode(): Promise<{ buffer: Buffer }> } } };
  await withFixedNow(async () => {
    const args = generatedRequest(7);
    const { request } = produce.protocol({ version: 7 })(args);
    assert.equal(request.apiVersion, 7);
    assert.ok((await request.encode()).buffer.equals(await kafkajsBytes(args)));
  });
});

test("kafkajs frames the request in the room left in front of it, with the same bytes as its own framing; a longer client id is framed by copying", async () => {
  const createRequest = require("kafkajs/src/protocol/request.js") as (args: { correlationId: number; clientId: string; request: { apiKey: number; apiVersion: number; encode(): Promise<unknown> } }) => Promise<{ buf: Buffer; buffer: Buffer }>;
  const produce = require("kafkajs/src/protocol/requests/produce/index.js") as { protocol(v: { version: number }): (args: ProduceRequestArgs) => { request: { apiKey: number; apiVersion: number; encode(): Promise<{ buf: Buffer }> } } };
  await withFixedNow(async () => {
    for (const [seed, clientId] of [[3, "sluice"], [11, "sluice-ünïcødé"], [12, "x".repeat(FRAME_HEADROOM)]] as const) {
      const args = generatedRequest(seed);
      const { request } = produce.protocol({ version: 7 })(args);
      const encoded = await request.encode();
      const framed = await createRequest({ correlationId: 77, clientId, request: { apiKey: request.apiKey, apiVersion: request.apiVersion, encode: async () => encoded } });
      const body = await kafkajsBytes(args);
      const header = Buffer.alloc(10);
      header.writeInt16BE(request.apiKey, 0);
      header.writeInt16BE(request.apiVersion, 2);
      header.writeInt32BE(77, 4);
      header.writeInt16BE(Buffer.byteLength(clientId), 8);
      const payload = Buffer.concat([header, Buffer.from(clientId), body]);
      const size = Buffer.alloc(4);
      size.writeInt32BE(payload.length);
      assert.ok(framed.buffer.equals(Buffer.concat([size, payload])), `seed ${seed}: kafkajs's frame around kafkajs's encoding`);
      assert.equal(framed.buf.buffer === encoded.buf.buffer, Buffer.byteLength(clientId) <= FRAME_HEADROOM - 14, `seed ${seed}: framed in place only when the client id fits the room`);
    }
  });
  // kafkajs's other encoders append as before.
  const Encoder = require("kafkajs/src/protocol/encoder.js") as new () => { writeInt8(v: number): unknown; writeEncoder(e: unknown): { buffer: Buffer } };
  const inner = new Encoder();
  inner.writeInt8(2);
  const outer = new Encoder();
  outer.writeInt8(1);
  assert.deepEqual([...outer.writeEncoder(inner).buffer], [1, 2]);
});

test("CRC32C equals kafkajs's JavaScript one", () => {
  const next = random(42);
  assert.equal(crc32c(Buffer.from("123456789")), 0xe3069283);
  for (let i = 0; i < 200; i++) {
    const buffer = Buffer.alloc(Math.floor(next() * 5_000));
    for (let j = 0; j < buffer.length; j++) buffer[j] = Math.floor(next() * 256);
    assert.equal(crc32c(buffer), jsCrc32c(buffer), `buffer ${i} of ${buffer.length} bytes`);
  }
});
