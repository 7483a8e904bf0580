/**
 * `sluice status`'s exit code tells a script what the daemon's answer shows: 0 ready, 3 NOT READY
 * (this process, or a source or sink another process runs), 1 no answer. Before, it exited 0 for an
 * answer it printed as NOT READY. A stand-in answering /status as the daemon does (the command
 * line's own logic; the daemon is not needed for it).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { EXIT_FAILURE, EXIT_NOT_READY, EXIT_OK, main } from "./cli.ts";

const dir = mkdtempSync(join(tmpdir(), "sluice-status-exit-"));
let answer: Record<string, unknown> = {};
const server = createServer((_req, res) => {
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify(answer));
});
let file = "";

before(async () => {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  file = configFile((server.address() as AddressInfo).port);
});
after(async () => {
  await new Promise((resolve) => server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

function configFile(port: number): string {
  const path = join(dir, `sluice-${port}.yaml`);
  writeFileSync(
    path,
    [
      "name: shop",
      "sources:",
      "  - {name: pg, kind: postgres, host: 127.0.0.1, database: d, user: u, password: p, tables: ['public.*']}",
      "topics: {kind: embedded, path: /nonexistent/log.db}",
      "sinks: [{name: wh, kind: duckdb, path: /nonexistent/wh.duckdb}]",
      `http: {listen: 127.0.0.1:${port}}`,
    ].join("\n"),
  );
  return path;
}

const status = (ready: boolean, instances: unknown[] = []) => ({
  deployment: "shop",
  version: "1.0.0",
  ready,
  topics: { kind: "kafka", ready: true },
  sources: [{ name: "pg", kind: "postgres", ready, position: null, lagSeconds: 0, halted: [] }],
  sinks: [],
  instances,
});

async function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await main(args, { stdout: (text) => void (out += text), stderr: (text) => void (err += text) });
  return { code, out, err };
}

test("sluice status exits 0 when everything it shows is ready", async () => {
  answer = status(true, [{ id: "a:1", roles: ["capture"], self: true, sources: [{ name: "pg", state: "leader", ready: true, lagSeconds: 0 }], sinks: [] }]);
  assert.equal((await run("status", "-c", file)).code, EXIT_OK);
  assert.equal((await run("status", "-c", file, "--json")).code, EXIT_OK);
});

test("sluice status exits 3 (EXIT_NOT_READY) when the daemon answers NOT READY, with --json too", async () => {
  answer = status(false);
  const shown = await run("status", "-c", file);
  assert.match(shown.out, /: NOT READY;/);
  assert.equal(shown.code, EXIT_NOT_READY, shown.out);
  assert.equal((await run("status", "-c", file, "--json")).code, EXIT_NOT_READY);
});

test("sluice status exits 3 when a sink or source another process runs is NOT READY, though this process is ready", async () => {
  const other = (sinkReady: boolean, sourceReady: boolean) => ({ id: "b:1", roles: ["capture", "sinks"], sources: [{ name: "pg", state: "leader", ready: sourceReady, lagSeconds: 0 }], sinks: [{ name: "wh", ready: sinkReady, partitions: [], lagRecords: 0 }], ageSeconds: 1 });
  answer = status(true, [{ id: "a:1", roles: ["sinks"], self: true, sources: [], sinks: [] }, other(false, true)]);
  const shown = await run("status", "-c", file);
  assert.match(shown.out, /wh:0p lag 0 NOT READY/);
  assert.equal(shown.code, EXIT_NOT_READY);
  answer = status(true, [other(true, false)]);
  assert.equal((await run("status", "-c", file)).code, EXIT_NOT_READY);
});

test("sluice status exits 3 when another process's report is stale, whatever it last said (a killed process's last word)", async () => {
  const killed = { id: "b:1", roles: ["sinks"], stale: true, ageSeconds: 31.5, sources: [], sinks: [{ name: "wh", ready: true, partitions: ["t-0"], lagRecords: 0 }] };
  answer = status(true, [{ id: "a:1", roles: ["capture"], self: true, sources: [{ name: "pg", state: "leader", ready: true, lagSeconds: 0 }], sinks: [] }, killed]);
  const shown = await run("status", "-c", file);
  assert.match(shown.out, /STALE 31\.5s ago/);
  assert.equal(shown.code, EXIT_NOT_READY, shown.out);
  assert.equal((await run("status", "-c", file, "--json")).code, EXIT_NOT_READY);
  answer = status(true, [{ ...killed, stale: false, ageSeconds: 2 }]);
  assert.equal((await run("status", "-c", file)).code, EXIT_OK, "a fresh report that says ready");
});

test("sluice status exits 1 when no daemon answers, naming the address", async () => {
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
  const port = (closed.address() as AddressInfo).port;
  await new Promise((resolve) => closed.close(resolve));
  const shown = await run("status", "-c", configFile(port));
  assert.equal(shown.code, EXIT_FAILURE);
  assert.match(shown.err, new RegExp(`no daemon answers at http://127\\.0\\.0\\.1:${port}/status .*"sluice run"`));
});
