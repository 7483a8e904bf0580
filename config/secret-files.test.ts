/**
 * A sink's secret file read again at each (re)connection (currentSecret): one that cannot be read then is told
 * (the file, its errno, never a secret) and the value read last is used, not the one read at the start.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { currentSecret, reportUnreadableSecretFiles } from "./secret-files.ts";
import type { UnreadableSecretFile } from "./secret-files.ts";

after(() => reportUnreadableSecretFiles(null));

test("a secret file unreadable at a reconnection is reported with its path and errno, never a secret, and the value read last is used", () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-secret-"));
  const file = join(dir, "password");
  writeFileSync(file, "first-secret\n");
  // As the config load leaves it: the value read at the start, and where it came from.
  const sinkConfig = { password: "first-secret", secret_files: { password: file } };
  const told: UnreadableSecretFile[] = [];
  reportUnreadableSecretFiles((problem) => told.push(problem));

  writeFileSync(file, "rotated-secret\n");
  assert.equal(currentSecret(sinkConfig, "password"), "rotated-secret");
  assert.equal(told.length, 0);

  rmSync(file);
  assert.equal(currentSecret(sinkConfig, "password"), "rotated-secret", "the value read last, not the start's");
  assert.equal(told.length, 1);
  const first = told[0]!;
  assert.deepEqual({ key: first.key, file: first.file, code: first.code }, { key: "password", file, code: "ENOENT" });
  assert.doesNotMatch(JSON.stringify(told), /first-secret|rotated-secret/);

  // A folder where the file was (a mount half swapped): EISDIR, told the same way.
  mkdirSync(file);
  assert.equal(currentSecret(sinkConfig, "password"), "rotated-secret");
  assert.equal(told[1]?.code, "EISDIR");
});

test("a secret given in the config itself is not a file: nothing read, nothing told", () => {
  const told: UnreadableSecretFile[] = [];
  reportUnreadableSecretFiles((problem) => told.push(problem));
  assert.equal(currentSecret({ password: "inline" }, "password"), "inline");
  assert.deepEqual(told, []);
});
