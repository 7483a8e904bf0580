/**
 * A reader that closes the command's stdout early (`sluice status | head -3`). Found live:
 * `sluice replay ... | head -5` ended with "sluice: unexpected failure: Error: write EPIPE", a stack
 * trace and exit code 1, from wherever the command was (it could be in the middle of an --execute).
 * Now the rest of the output is dropped and the command finishes with its own exit code.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const SLUICE = join(dirname(fileURLToPath(import.meta.url)), "sluice.js");

test("a command whose stdout reader has gone finishes with its exit code and says nothing of EPIPE", async () => {
  const child = spawn(process.execPath, [SLUICE, "--help"], { stdio: ["ignore", "pipe", "pipe"] });
  child.stdout.destroy(); // the reader goes away before the command writes anything
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  assert.equal(stderr, "");
  assert.equal(code, 0);
});
