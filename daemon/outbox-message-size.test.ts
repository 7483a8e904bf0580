/**
 * An outbox message of 96 MiB (any user connected may emit one with the prefix; PostgreSQL takes up to 1 GB) on a heap
 * as small as the daemon's main thread: with outbox.max_message_bytes it is cut when decoded, keeping its first 64 KiB
 * and its size, and refused as too large without being parsed; the process goes on. Before, the decoder made it one
 * string and the router parsed it: the heap ran out (SIGABRT).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { test } from "node:test";

function runChild(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ["--max-old-space-size=57", new URL("./outbox-message-size-child.ts", import.meta.url).pathname, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
}

test("an outbox message of 96 MiB is cut at decoding (64 KiB and its size kept) and refused as too large unparsed; the process goes on", { timeout: 60_000 }, async () => {
  const outbox = await runChild(["4194304"]);
  assert.equal(outbox.code, 0, `the child ended: ${outbox.stderr.slice(0, 400)}`);
  const result = JSON.parse(outbox.stdout) as { contentChars: number; contentBytes: number; outcome: string };
  assert.equal(result.contentChars, 65_536);
  assert.equal(result.contentBytes, 96 * 2 ** 20);
  assert.match(result.outcome, /^OUTBOX_EVENT_INVALID: outbox pg_logical_message\.outbox: the logical message's content is 100663296 bytes, over outbox\.max_message_bytes \(4194304\); only its first bytes were kept$/);
});
