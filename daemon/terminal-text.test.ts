import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { main } from "./cli.ts";
import { progressLine } from "./progress-display.ts";
import { oneLine } from "./terminal-text.ts";

const dir = mkdtempSync(join(tmpdir(), "sluice-terminal-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("what a command prints reaches the terminal with control characters escaped, tabs and line breaks kept", async () => {
  // A name from the source (here the config's own path) with an escape sequence that would set the terminal's title.
  const file = join(dir, "shop\u001b]0;owned\u0007.yaml");
  copyFileSync(new URL("../config/examples/minimal.yaml", import.meta.url), file);
  let out = "";
  const code = await main(["validate", "-c", file], { stdout: (text) => void (out += text), stderr: (text) => void (out += text) });
  assert.equal(code, 0, out);
  assert.ok(out.includes("shop\\u001b]0;owned\\u0007.yaml"), out);
  assert.ok(out.endsWith("\n"));
  assert.doesNotMatch(out, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
});

test("a snapshot progress line (redrawn in place on standard error) shows a table name on one line, escaped", () => {
  const line = progressLine("pg", { table: "public.a\u001b[2K\nb", state: "running", rowsDone: 1, rowsEstimated: 2, rowsPerSecond: 0, startedAtMs: 0, finishedAtMs: null });
  assert.ok(line.includes("public.a\\u001b[2K\\u000ab"), line);
});

test("a cell on one line shows the bidi embedding, override and isolate characters escaped, other text as it is", () => {
  assert.equal(oneLine("a\u202ab\u202ec\u2066d\u2069e\u200ff é"), "a\\u202ab\\u202ec\\u2066d\\u2069e\u200ff é");
});
