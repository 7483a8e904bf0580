/**
 * A JSON request body of the largest size the daemon takes (http.max_body_bytes, 4 MiB) that is all
 * structure (nested arrays, `{},` repeated) ended the daemon: parsed on its main thread, whose heap is
 * ~57 MiB, it takes 20-30 times its bytes (found live: one POST to /sinks/<sink>/rebuild/abandon, then
 * "FATAL ERROR: Reached heap limit"). Such bodies are refused unread (400), by the admin endpoints and
 * the schema registry alike, and the process keeps serving.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { test } from "node:test";

const MIB = 2 ** 20;
const bodies: Record<string, string> = {
  "nested arrays": `${"[".repeat(2 * MIB - 1)}${"]".repeat(2 * MIB - 1)}`,
  "empty objects": `[${"{},".repeat(MIB + MIB / 3 - 2)}{}]`,
  "a field of nested arrays": `{"tables": ${"[".repeat(2 * MIB - 10)}${"]".repeat(2 * MIB - 10)}}`,
  "a schema of nested arrays": JSON.stringify({ schema: `${"[".repeat(200_000)}${"]".repeat(200_000)}` }),
};

test("JSON bodies that would cost the main heap many times their bytes are refused unread (400); the process keeps serving", { timeout: 60_000 }, async () => {
  const child = spawn(process.execPath, ["--max-old-space-size=57", new URL("./json-body-heap-child.ts", import.meta.url).pathname], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  try {
    const [first] = (await once(child.stdout, "data")) as [Buffer];
    const base = `http://127.0.0.1:${first.toString().trim()}`;
    for (const [shape, body] of Object.entries(bodies)) {
      assert.ok(body.length <= 4 * MIB, `${shape}: within http.max_body_bytes`);
      for (const path of ["/admin", "/registry/subjects/s-value/versions"]) {
        const answer = await fetch(`${base}${path}`, { method: "POST", body, headers: { "content-type": "application/json" } }).then(
          async (response) => ({ status: response.status, text: await response.text() }),
          (error: Error) => ({ status: 0, text: `${error.message}; child: ${stderr.slice(0, 300)}` }),
        );
        if (shape === "a schema of nested arrays" && path === "/admin") {
          assert.equal(answer.status, 400, answer.text);
          continue;
        }
        assert.equal(answer.status, path === "/admin" ? 400 : shape === "a schema of nested arrays" ? 422 : 400, `${shape} to ${path}: ${answer.text}`);
        assert.match(answer.text, /refused unread/, `${shape} to ${path}`);
      }
    }
    assert.equal((await fetch(`${base}/healthz`)).status, 200, "still serving");
  } finally {
    child.kill();
  }
});
