/** A source's password_file unreadable at a reconnection is warned (source, file, errno; never a value) and counted. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, test } from "node:test";
import { currentSecret, reportUnreadableSecretFiles } from "../config/secret-files.ts";
import { createLogger } from "../runtime/logger.ts";
import { SluiceMetrics } from "./metrics.ts";
import { watchSourceSecretFiles } from "./source-secret-files.ts";

after(() => reportUnreadableSecretFiles(null));

test("a source's password_file unreadable at a reconnection: a warning naming the source, the file and the errno, the counter, the value read before", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-source-secret-"));
  const file = join(dir, "pg-password");
  writeFileSync(file, "first-pw\n");
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("warn", new Writable({ write: (chunk: Buffer, _e, done) => (lines.push(...chunk.toString().split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as Record<string, unknown>)), done()) }));
  const metrics = new SluiceMetrics({ processMetrics: false });
  watchSourceSecretFiles(logger, metrics);
  const source = { name: "shop", kind: "postgres", password: "first-pw", secret_files: { password: file } };
  assert.equal(currentSecret(source, "password"), "first-pw");
  rmSync(file);
  assert.equal(currentSecret(source, "password"), "first-pw");
  const warning = lines.find((l) => String(l["msg"]).includes("cannot be read"));
  assert.ok(warning, "warned");
  assert.equal(warning["source"], "shop");
  assert.equal(warning["file"], file);
  assert.equal(warning["code"], "ENOENT");
  assert.match(String(warning["msg"]), /^source shop: its password_file .*pg-password cannot be read \(ENOENT/);
  assert.doesNotMatch(JSON.stringify(lines), /first-pw/);
  assert.equal((await metrics.sourceSecretFileUnreadable.get()).values.find((v) => v.labels["source"] === "shop")?.value, 1);
});
