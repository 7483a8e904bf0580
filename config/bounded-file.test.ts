/**
 * The config, its secret files and PEM files are read on the daemon's main thread, also at SIGHUP while capture runs
 * there. Found on a live deployment: http.admin_token_file pointed at a FIFO, then SIGHUP: the open waited for a writer
 * and capture, the HTTP API and /healthz stood still until one came (19 s in the probe, for ever without one); a token
 * file at /dev/zero took `sluice validate` to 10 GB resident without an end. Only regular files, of bounded size, are read.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { FileRefused, readBoundedFile } from "./bounded-file.ts";
import { ConfigValidationError } from "./issues.ts";
import { loadConfigFile } from "./load.ts";

const loadUrl = new URL("./load.ts", import.meta.url).href;
const base = (extra: string) => `name: shop\nsources:\n  - name: pg\n    kind: postgres\n    database: app\n    user: u\n    tables: [public.t]\n${extra}`;

function mkfifo(path: string): void {
  const made = spawnSync("mkfifo", [path]);
  assert.equal(made.status, 0, String(made.stderr));
}

/** loadConfigFile in a child process: a read that blocks must not hang the test run (the child is killed, the test fails). */
function loadInChild(file: string): string {
  const script = `const { loadConfigFile } = await import(${JSON.stringify(loadUrl)}); try { loadConfigFile(process.argv[1], { env: {} }); console.log("accepted"); } catch (error) { console.log(error.message); }`;
  const child = spawnSync(process.execPath, ["--input-type=module", "-e", script, file], { timeout: 30_000, encoding: "utf8" });
  assert.equal(child.signal, null, `the config load did not return (killed by ${String(child.signal)}): it waited on the file`);
  assert.equal(child.status, 0, child.stderr);
  return child.stdout;
}

test("a secret file that is a FIFO is refused at its key, without waiting for a writer", () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-fifo-"));
  mkfifo(join(dir, "token"));
  writeFileSync(join(dir, "c.yaml"), base("http:\n  admin_token_file: token\n"));
  assert.match(loadInChild(join(dir, "c.yaml")), /c\.yaml:9:3: http\.admin_token_file: cannot read admin_token file "token" \(relative to the config file\): not a regular file \(a FIFO\) \(ENOTREG\)/);
});

test("a config file that is a FIFO is refused, without waiting for a writer", () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-fifo-"));
  mkfifo(join(dir, "c.yaml"));
  assert.match(loadInChild(join(dir, "c.yaml")), /cannot read config file: not a regular file \(a FIFO\) \(ENOTREG\)/);
});

test("a secret file larger than 64 KiB is refused, not read as the secret", () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-big-"));
  writeFileSync(join(dir, "pw"), "p".repeat(64 * 1024 + 1));
  writeFileSync(join(dir, "c.yaml"), base("    password_file: pw\n"));
  assert.throws(
    () => loadConfigFile(join(dir, "c.yaml"), { env: {} }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigValidationError);
      assert.match(error.message, /sources\[0\]\.password_file: cannot read password file "pw" \(relative to the config file\): 65537 bytes, more than the 64 KiB such a file may hold \(EFBIG\)/);
      return true;
    },
  );
  writeFileSync(join(dir, "pw"), `${"p".repeat(64 * 1024 - 1)}\n`);
  assert.equal(loadConfigFile(join(dir, "c.yaml"), { env: {} }).sources[0]!.password, "p".repeat(64 * 1024 - 1), "64 KiB is still read");
});

test("readBoundedFile: a device, a directory and a file past its size are refused; a regular file is read whole", () => {
  assert.throws(() => readBoundedFile("/dev/zero", 1024), (error: unknown) => error instanceof FileRefused && error.code === "ENOTREG" && /a device/.test(error.message));
  const dir = mkdtempSync(join(tmpdir(), "sluice-bounded-"));
  mkdirSync(join(dir, "d"));
  assert.throws(() => readBoundedFile(join(dir, "d"), 1024), { code: "EISDIR" });
  writeFileSync(join(dir, "sparse"), "");
  truncateSync(join(dir, "sparse"), 10 * 1024 * 1024);
  assert.throws(() => readBoundedFile(join(dir, "sparse"), 1024 * 1024), (error: unknown) => error instanceof FileRefused && error.code === "EFBIG");
  writeFileSync(join(dir, "f"), "x".repeat(200_000));
  assert.equal(readBoundedFile(join(dir, "f"), 200_000).length, 200_000);
  assert.throws(() => readBoundedFile(join(dir, "missing"), 10), { code: "ENOENT" });
});
