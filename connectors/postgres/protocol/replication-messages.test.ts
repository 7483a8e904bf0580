import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeReplicationMessage, encodeStandbyStatusUpdate } from "./replication-messages.ts";
import { hex } from "./hex-fixture.ts";

test("XLogData: header fields and the payload view", () => {
  const bytes = hex(`
    77                  # 'w'
    00000016 b374d848   # walStart 16/B374D848
    00000016 b374d900   # walEnd
    0002 9f3b 1c2d 3e4f # sendTime
    42 0102             # payload (3 bytes)
  `);
  const message = decodeReplicationMessage(bytes);
  assert.deepEqual(message, {
    kind: "xlogdata",
    walStart: 0x16_b374d848n,
    walEnd: 0x16_b374d900n,
    sendTime: 0x0002_9f3b_1c2d_3e4fn,
    payload: Buffer.from([0x42, 0x01, 0x02]),
  });
});

test("primary keepalive with and without a reply request", () => {
  const base = `
    6b                  # 'k'
    00000000 0150a0b8   # walEnd 0/150A0B8
    0000 0000 0000 0001 # sendTime
  `;
  assert.deepEqual(decodeReplicationMessage(hex(`${base} 01`)), {
    kind: "keepalive",
    walEnd: 0x150a0b8n,
    sendTime: 1n,
    replyRequested: true,
  });
  assert.equal((decodeReplicationMessage(hex(`${base} 00`)) as { replyRequested: boolean }).replyRequested, false);
});

test("unknown replication message types and truncated messages are rejected", () => {
  assert.throws(() => decodeReplicationMessage(hex("64 00")), /unknown replication message type 0x64/);
  assert.throws(() => decodeReplicationMessage(hex("6b 0000")), /truncated message/);
});

test("standby status update: exact bytes", () => {
  const bytes = encodeStandbyStatusUpdate({
    written: 0x1_00000020n,
    flushed: 0x1_00000010n,
    applied: 0x1_00000010n,
    clock: 0x0002_9f3b_1c2d_3e4fn,
    replyRequested: false,
  });
  assert.deepEqual(
    bytes,
    hex(`
      72                  # 'r'
      00000001 00000020   # written
      00000001 00000010   # flushed
      00000001 00000010   # applied
      0002 9f3b 1c2d 3e4f # clock
      00                  # no reply requested
    `),
  );
});
