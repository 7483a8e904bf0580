/**
 * Anyone connected to a PostgreSQL database may emit a logical message with the outbox prefix (or
 * with the prefix of the source's own backfill requests), and capture parsed its content with
 * JSON.parse on the daemon's main thread (heap ~57 MiB): some megabytes of nested arrays, or of `{},`
 * repeated, take 20-30 times their bytes there and ended the daemon with its heap out of memory. So
 * did an outbox row's payload under `payload.format: avro`. Such texts are refused unread: the outbox
 * message or row is OUTBOX_EVENT_INVALID (it halts the outbox pseudo-table, its events parked), a
 * backfill message is no request; the process goes on.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { test } from "node:test";

test("outbox messages and payloads that would cost the main heap many times their bytes are refused unread (OUTBOX_EVENT_INVALID); the process goes on", { timeout: 60_000 }, async () => {
  const child = spawn(process.execPath, ["--max-old-space-size=57", new URL("./outbox-message-heap-child.ts", import.meta.url).pathname], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const [code] = (await once(child, "exit")) as [number | null];
  const lines = stdout.trim().split("\n");
  assert.equal(code, 0, `the child ended: ${stderr.slice(0, 400)}; it printed ${JSON.stringify(lines.map((l) => l.slice(0, 200)))}`);
  const [nestedMessage, objects, nestedPayload, avroRow, backfill, valid, done] = lines;
  for (const [what, line] of [["nested arrays", nestedMessage], ["empty objects", objects], ["a payload of nested arrays", nestedPayload]] as const) {
    assert.match(line!, /^OUTBOX_EVENT_INVALID: outbox pg_logical_message\.outbox: the logical message's content is refused unread: /, what);
  }
  assert.match(avroRow!, /^OUTBOX_EVENT_INVALID: outbox public\.outbox: the payload is refused unread: /);
  assert.equal(backfill, "null", "no backfill request");
  assert.equal(valid, "encoded 1", "a message within the limits is still an event");
  assert.match(done!, /^done/);
});
