import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { pino } from "pino";
import { loadConfigText } from "../config/load.ts";
import { callDaemon } from "./daemon-client.ts";
import { Daemon } from "./daemon.ts";
import { runHaltedCommand } from "./halted-command.ts";
import { runRebuildCommand } from "./rebuild-command.ts";
import { apiAddress, sinkNotHere } from "./sink-elsewhere.ts";
import type { SeenInstance } from "./sink-elsewhere.ts";

const placement = { configured: ["warehouse", "search"], here: [], roles: ["capture"] };
const instance = (id: string, sinks: string[], stale = false, api?: string): SeenInstance => ({
  id,
  host: id.split(":")[0]!,
  stale,
  self: false,
  sinks: sinks.map((name) => ({ name, ready: true, partitions: [], lagRecords: 0 })),
  ...(api === undefined ? {} : { api }),
});

test("a sink of the config that this process does not run is told as such, with where it runs from the instance reports", () => {
  assert.equal(sinkNotHere("warehouse", { ...placement, here: ["warehouse"] }, []), null, "runs here");
  assert.equal(sinkNotHere("nope", placement, []), 'no sink "nope" in the config; sinks: warehouse, search');
  const running = sinkNotHere("warehouse", placement, [instance("vm1:7", ["warehouse"], false, "http://vm1:8080"), instance("vm2:9", ["search"])]) ?? "";
  assert.equal(
    running,
    'sink "warehouse" is in the config but does not run in this process (roles: capture; sinks run here: none). It runs in vm1:7 (host:pid, from the deployment\'s instance reports); send the request there: vm1:7 listens on vm1:8080: run the command with http.listen vm1:8080',
  );
  assert.doesNotMatch(running, /vm2/);
  // http.listen's default: a URL of 127.0.0.1 would point the command on this host at its own process (the same 404).
  const loopback = sinkNotHere("warehouse", placement, [instance("vm1:7", ["warehouse"], false, "http://127.0.0.1:8080")]) ?? "";
  assert.match(loopback, /: vm1:7 listens on loopback only \(127\.0\.0\.1:8080\): run the command on host vm1, with http\.listen 127\.0\.0\.1:8080$/);
  assert.doesNotMatch(loopback, /http:\/\//);
  const tls = sinkNotHere("warehouse", placement, [instance("vm1:7", ["warehouse"], false, "https://[::1]:8443"), instance("vm3:2", ["warehouse"], false, "https://10.0.0.5:8443")]) ?? "";
  assert.match(tls, /It runs in vm1:7, vm3:2 \(host:pid/);
  assert.match(tls, /vm1:7 listens on loopback only \(\[::1\]:8443\): run the command on host vm1, with http\.listen \[::1\]:8443, and the http\.tls settings of that process \(it serves TLS\); /);
  assert.match(tls, /vm3:2 listens on 10\.0\.0\.5:8443: run the command with http\.listen 10\.0\.0\.5:8443, and the http\.tls settings of that process \(it serves TLS\)$/);
  assert.match(sinkNotHere("warehouse", placement, [instance("vm1:7", ["warehouse"])]) ?? "", /vm1:7 does not report its admin API \(an earlier version\): run the command with the config of that process$/);
  assert.match(sinkNotHere("warehouse", placement, [instance("vm1:7", ["warehouse"], true)]) ?? "", /vm1:7 announced it but has not reported for a while \(stale\)/);
  assert.match(sinkNotHere("warehouse", placement, [{ ...instance("me:1", ["warehouse"]), self: true }]) ?? "", /no other process of the deployment announces it/);
});

test("the admin API's address in an instance report names the host where it listens on every interface", () => {
  assert.equal(apiAddress({ address: "10.0.0.5", port: 8080 }, false), "http://10.0.0.5:8080");
  assert.equal(apiAddress({ address: "::1", port: 8443 }, true), "https://[::1]:8443");
  assert.doesNotMatch(apiAddress({ address: "0.0.0.0", port: 8080 }, false), /0\.0\.0\.0/);
});

test("a capture-only process answers every sink-scoped request for a sink of the config that it does not run by saying so, and sluice replay --rebuild prints it", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-elsewhere-"));
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const port = (probe.address() as AddressInfo).port;
  await new Promise((resolve) => probe.close(resolve));
  const config = loadConfigText(
    "test.yaml",
    [
      "name: elsewhere",
      "sources: [{name: pg, kind: postgres, host: 127.0.0.1, port: 1, database: d, user: u, password: p, tables: ['public.*']}]",
      `topics: {kind: embedded, path: ${join(dir, "log.db")}}`,
      `sinks: [{name: wh, kind: duckdb, path: ${join(dir, "wh.duckdb")}}]`,
      `http: {listen: 127.0.0.1:${port}}`,
    ].join("\n"),
  );
  // --role capture with no source of its own to capture: a process that runs no sink, and starts without a database.
  const daemon = new Daemon(config, pino({ level: "silent" }), { selection: { sources: [], sinks: [], roles: ["capture"] }, writeLogLine: () => undefined });
  try {
    await daemon.start();
    const notHere = /^sink "wh" is in the config but does not run in this process \(roles: capture; sinks run here: none\)/;
    const requests: [string, string][] = [
      ["/sinks/wh/rebuild", "{}"],
      ["/sinks/wh/rebuild/abandon", "{}"],
      ["/sinks/wh/query", "SELECT 1"],
      ["/sinks/wh/erase", '{"source": "pg", "subject": "1"}'],
      ["/sinks/wh/halted/retry", '{"table": "public.t"}'],
    ];
    for (const [path, body] of requests) {
      const answer = await callDaemon(config, path, { method: "POST", body, timeoutMs: 10_000 });
      // Before: 404 'no rebuildable sink "wh"' (and 'no queryable sink', 'no sink "wh" runs here'), as for a name not in the config.
      assert.equal(answer.status, 404, path);
      assert.match((answer.json() as { error: string }).error, notHere, path);
    }
    // The daemon's answer says where the sink runs: no "halted at capture? use --source" after it.
    const halted: string[] = [];
    const retry = await runHaltedCommand(config, ["retry"], { sink: "wh", table: "public.t", execute: false, json: false }, { stdout: () => undefined, stderr: (text) => halted.push(text) });
    assert.equal(retry, 1);
    assert.match(halted.join(""), /^sluice halted retry: sink "wh" is in the config but does not run in this process/);
    assert.doesNotMatch(halted.join(""), /--source NAME instead of --sink/);
    const unknown = await callDaemon(config, "/sinks/nope/rebuild", { method: "POST", body: "{}", timeoutMs: 10_000 });
    assert.equal((unknown.json() as { error: string }).error, 'no sink "nope" in the config; sinks: wh');
    const err: string[] = [];
    const code = await runRebuildCommand(config, "wh", true, { stdout: () => undefined, stderr: (text) => err.push(text) }, pino({ level: "silent" }));
    assert.equal(code, 1);
    assert.match(err.join(""), /^sluice replay: the daemon could not rebuild sink "wh": sink "wh" is in the config but does not run in this process/);
    // The dry run says so too (it said "The running daemon will do it").
    const dry: string[] = [];
    const out: string[] = [];
    assert.equal(await runRebuildCommand(config, "wh", false, { stdout: (text) => out.push(text), stderr: (text) => dry.push(text) }, pino({ level: "silent" })), 1);
    assert.match(dry.join(""), /^sluice replay: the daemon at http.listen would not rebuild sink "wh": sink "wh" is in the config but does not run in this process .*\nDry run: nothing changed\.\n$/s);
    assert.deepEqual(out, []);
  } finally {
    await daemon.stop("test done");
    rmSync(dir, { recursive: true, force: true });
  }
});
