/**
 * What `sluice` loads at start (issue 16: launch → first record): the command line loads no
 * connector or sink library before a command needs it, and Node's compile cache is on.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

const cli = new URL("./cli.ts", import.meta.url).href;
const sluice = new URL("./sluice.js", import.meta.url).pathname;

/** Libraries only some configs or commands use: DuckDB's native library, the SQL parsers' WebAssembly, the Kafka, MySQL, Elasticsearch and ClickHouse clients. */
const ON_DEMAND = /\/node_modules\/(@duckdb|libpg-query|kafkajs|mysql2|@elastic|@clickhouse|lz4-napi|pg-logical-replication)\//;

test("importing the command line loads no connector or sink library (each loads when a config or command uses it)", () => {
  const script = `
    import { registerHooks } from "node:module";
    const loaded = [];
    registerHooks({ load(url, context, next) { loaded.push(url); return next(url, context); } });
    await import(${JSON.stringify(cli)});
    process.stdout.write(JSON.stringify(loaded));
  `;
  const result = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
  assert.equal(result.status, 0, result.stderr);
  const loaded = JSON.parse(result.stdout) as string[];
  assert.ok(loaded.some((url) => url.endsWith("/daemon/daemon.ts")), "the hook saw the daemon's modules load");
  assert.deepEqual(loaded.filter((url) => ON_DEMAND.test(url)), []);
});

/** Runs `sluice version` with its temporary directory in `dir` and no compile cache setting. */
function versionWithTemporaryDirectory(dir: string): void {
  const env: Record<string, string | undefined> = { ...process.env, TMPDIR: dir, SLUICE_CONFIG: "" };
  delete env["NODE_COMPILE_CACHE"];
  delete env["NODE_DISABLE_COMPILE_CACHE"];
  const result = spawnSync(process.execPath, [sluice, "version"], { encoding: "utf8", env });
  assert.equal(result.status, 0, result.stderr);
}

const userCacheName = `sluice-compile-cache-${process.getuid?.() ?? "user"}`;

test("sluice turns on Node's module compile cache (in a directory of its user's under the temporary directory unless NODE_COMPILE_CACHE says where)", () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-startup-"));
  try {
    versionWithTemporaryDirectory(dir);
    const cache = join(dir, userCacheName);
    const entries = readdirSync(cache, { recursive: true });
    assert.ok(entries.length > 10, `compiled modules cached in ${cache}: ${entries.length} entries`);
    assert.equal(statSync(cache).mode & 0o077, 0, "nobody else can write or read the cache");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a cache directory that others can write (made first by another user) is not used: compiled code there could be planted", () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-startup-"));
  try {
    const planted = join(dir, userCacheName);
    mkdirSync(planted);
    chmodSync(planted, 0o777);
    versionWithTemporaryDirectory(dir);
    assert.deepEqual(readdirSync(planted), [], "nothing was cached in (or read from) the open directory");
    assert.deepEqual(readdirSync(dir).sort(), [userCacheName], "and Node's shared default directory was not used instead");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
