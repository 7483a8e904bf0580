import assert from "node:assert/strict";
import { test } from "node:test";
import { ByteBoundedBuffer, ITEM_OVERHEAD_BYTES } from "../common/byte-bounded-buffer.ts";
import { XLOGDATA_HEADER_BYTES } from "./protocol/replication-messages.ts";
import type { WalMessage } from "./replication-stream.ts";
import { WalBuffer } from "./wal-buffer.ts";

/** An XLogData chunk as the server sends it: tag, start LSN, end LSN, clock, then the payload. */
function xlogData(walStart: bigint, payload: Buffer): Buffer {
  const header = Buffer.alloc(XLOGDATA_HEADER_BYTES);
  header[0] = 0x77;
  header.writeBigUInt64BE(walStart, 1);
  return Buffer.concat([header, payload]);
}

function pushData(buffer: WalBuffer, walStart: bigint, payload: Buffer): void {
  const chunk = xlogData(walStart, payload);
  buffer.pushData(chunk.readUInt32BE(1), chunk.readUInt32BE(5), chunk, XLOGDATA_HEADER_BYTES);
  // The server's receive buffer is reused: the queue must hold a copy.
  chunk.fill(0xee);
}

function plain(message: WalMessage | undefined): unknown {
  if (message === undefined) return undefined;
  return { walStart: message.walStart, payload: Buffer.from(message.payload).toString("hex"), keepalive: message.keepalive };
}

test("messages come out in order with their LSN and bytes, across slabs, a message larger than a slab, keepalives, and the ring's growth", () => {
  const wal = new WalBuffer(1 << 30);
  const reference = new ByteBoundedBuffer<WalMessage>(1 << 30);
  const expected: WalMessage[] = [];
  let lsn = 0x1_0000_0000n;
  for (let i = 0; i < 5000; i++) {
    lsn += BigInt(1 + (i % 300));
    if (i % 97 === 5) {
      const keepalive: WalMessage = { walStart: lsn, payload: Buffer.alloc(0), keepalive: { replyRequested: i % 2 === 0 } };
      wal.push(keepalive, 0);
      reference.push(keepalive, 0);
      expected.push(keepalive);
      continue;
    }
    // Mostly small payloads, some over the 256 KiB slab.
    const size = i % 1000 === 999 ? 300 * 1024 : 20 + ((i * 37) % 400);
    const payload = Buffer.alloc(size, i % 251);
    payload.writeUInt32BE(i, 0);
    pushData(wal, lsn, payload);
    reference.push({ walStart: lsn, payload }, payload.length + XLOGDATA_HEADER_BYTES);
    expected.push({ walStart: lsn, payload });
    // Read some while writing, as capture does.
    if (i % 7 === 0) {
      assert.equal(wal.nextBytes, reference.nextBytes);
      assert.deepEqual(plain(wal.peek()), plain(reference.peek()));
      assert.deepEqual(plain(wal.shift()), plain(reference.shift()));
      expected.shift();
    }
    assert.equal(wal.bytes, reference.bytes);
    assert.equal(wal.length, reference.length);
  }
  const kept: WalMessage[] = [];
  while (wal.length > 0) {
    const message = wal.shift()!;
    kept.push(message);
    assert.deepEqual(plain(message), plain(expected.shift()));
  }
  assert.equal(wal.shift(), undefined);
  assert.equal(wal.bytes, 0);
  assert.equal(expected.length, 0);
  // Payloads handed out stay valid after their slabs were let go and more was written and read.
  const before = kept.map(plain);
  for (let i = 0; i < 2000; i++) pushData(wal, 1n, Buffer.alloc(200, 0xaa));
  while (wal.length > 0) wal.shift();
  assert.deepEqual(kept.map(plain), before);
});

test("an LSN beyond 2^53 keeps its exact value", () => {
  const wal = new WalBuffer(1 << 20);
  const big = (1n << 60n) + 12345n;
  pushData(wal, big, Buffer.from("x"));
  wal.push({ walStart: big + 1n, payload: Buffer.alloc(0), keepalive: { replyRequested: true } }, 0);
  wal.push({ walStart: big + 2n, payload: Buffer.from("yz") }, 2);
  assert.deepEqual([wal.shift()!.walStart, wal.shift()!.walStart, wal.shift()!.walStart], [big, big + 1n, big + 2n]);
});

test("the bound, the low-water listener and clear count as ByteBoundedBuffer does", () => {
  const wal = new WalBuffer(4096);
  let lowWater = 0;
  wal.onLowWater(() => lowWater++);
  for (let i = 0; !wal.full; i++) pushData(wal, BigInt(i + 1), Buffer.alloc(500));
  assert.ok(wal.full);
  const queued = wal.length;
  while (wal.bytes > 2048) wal.shift();
  assert.ok(lowWater >= 1);
  assert.ok(!wal.full);
  wal.clear();
  assert.equal(wal.length, 0);
  assert.equal(wal.bytes, 0);
  assert.equal(wal.peek(), undefined);
  pushData(wal, 7n, Buffer.from("after"));
  assert.equal(wal.shift()!.payload.toString(), "after");
  assert.ok(queued > 1);
});

test("a failed buffer takes nothing more; what was queued can still be read", () => {
  const wal = new WalBuffer(1 << 20);
  pushData(wal, 1n, Buffer.from("a"));
  wal.fail(new Error("gone"));
  pushData(wal, 2n, Buffer.from("b"));
  wal.push({ walStart: 3n, payload: Buffer.from("c") }, 1);
  assert.equal(wal.length, 1);
  assert.equal(wal.shift()!.payload.toString(), "a");
});

test("a large message the framer put together in a buffer of its own is queued without a copy; a socket's chunk is copied", () => {
  const wal = new WalBuffer(1 << 30);
  const large = xlogData(0x2_0000_0000n, Buffer.alloc(1024 * 1024, 0xab));
  wal.pushData(large.readUInt32BE(1), large.readUInt32BE(5), large, XLOGDATA_HEADER_BYTES, large.length, true);
  const small = xlogData(0x2_0000_0100n, Buffer.from("after"));
  wal.pushData(small.readUInt32BE(1), small.readUInt32BE(5), small, XLOGDATA_HEADER_BYTES, small.length, true);
  const chunk = xlogData(0x2_0000_0200n, Buffer.alloc(1024 * 1024, 0xcd));
  wal.pushData(chunk.readUInt32BE(1), chunk.readUInt32BE(5), chunk, XLOGDATA_HEADER_BYTES);
  assert.equal(wal.bytes, large.length + small.length + chunk.length + 3 * ITEM_OVERHEAD_BYTES);
  const first = wal.shift()!;
  assert.equal(first.walStart, 0x2_0000_0000n);
  assert.equal(first.payload.buffer, large.buffer, "kept, not copied");
  assert.ok(first.payload.equals(large.subarray(XLOGDATA_HEADER_BYTES)));
  const second = wal.shift()!;
  assert.equal(second.walStart, 0x2_0000_0100n);
  assert.equal(second.payload.toString(), "after");
  assert.notEqual(second.payload.buffer, small.buffer, "a small message is copied into a slab");
  const third = wal.shift()!;
  assert.notEqual(third.payload.buffer, chunk.buffer, "not owned: copied");
  assert.ok(third.payload.equals(chunk.subarray(XLOGDATA_HEADER_BYTES)));
  assert.equal(wal.shift(), undefined);
  assert.equal(wal.bytes, 0);
});
