/**
 * Commands that do the daemon's work themselves when no daemon runs (sluice replay --rebuild,
 * sluice forget) decided "no daemon" on any failure of a 3 s /status call. Found on a live
 * deployment under load: /status took 4-5.6 s, `sluice replay --rebuild --execute` took the
 * daemon for absent and rebuilt the sink itself beside it (DuckDB's file lock stopped it; a
 * ClickHouse or Elasticsearch sink has no such lock). A listener that does not answer in time now
 * makes them refuse; only a connection nobody accepts means no daemon. A stand-in listener here
 * (the command's own logic; the e2e rebuild tests use the real daemon).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { createServer } from "node:net";
import type { AddressInfo, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { pino } from "pino";
import { loadConfigText } from "../config/load.ts";
import { daemonRunning } from "./daemon-client.ts";
import { runRebuildCommand } from "./rebuild-command.ts";

const configFor = (dir: string, port: number) =>
  loadConfigText(
    "test.yaml",
    [
      "name: busy",
      "sources:",
      "  - {name: pg, kind: postgres, host: 127.0.0.1, database: d, user: u, password: p, tables: ['public.*']}",
      `topics: {kind: embedded, path: ${join(dir, "log.db")}}`,
      `sinks: [{name: wh, kind: duckdb, path: ${join(dir, "wh.duckdb")}}]`,
      `http: {listen: 127.0.0.1:${port}}`,
    ].join("\n"),
  );

test("a listener that does not answer /status in time is not taken for no daemon: sluice replay --rebuild refuses instead of rebuilding beside it", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-busy-"));
  const held: Socket[] = [];
  const silent = createServer((socket) => void held.push(socket));
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  try {
    const config = configFor(dir, (silent.address() as AddressInfo).port);
    const unclear = await daemonRunning(config, 300);
    assert.equal(typeof unclear === "object" && unclear.timedOut, true);
    const err: string[] = [];
    const code = await runRebuildCommand(config, "wh", true, { stdout: () => undefined, stderr: (t) => err.push(t) }, pino({ level: "silent" }));
    assert.equal(code, 1);
    assert.match(err.join(""), /did not answer within 10 s .*nothing changed/);
  } finally {
    for (const socket of held) socket.destroy();
    await new Promise((resolve) => silent.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a listener whose call fails otherwise (a reset connection; a refused certificate alike) is not taken for no daemon either, and the message says why, not that it was slow", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-reset-"));
  const resetting = createServer((socket) => socket.once("data", () => socket.resetAndDestroy()));
  await new Promise<void>((resolve) => resetting.listen(0, "127.0.0.1", resolve));
  try {
    const config = configFor(dir, (resetting.address() as AddressInfo).port);
    const running = await daemonRunning(config, 5_000);
    assert.equal(typeof running, "object");
    assert.match((running as { reason: string }).reason, /ECONNRESET/);
    const err: string[] = [];
    const code = await runRebuildCommand(config, "wh", true, { stdout: () => undefined, stderr: (t) => err.push(t) }, pino({ level: "silent" }));
    assert.equal(code, 1);
    assert.match(err.join(""), /something listens at http:\/\/127\.0\.0\.1:\d+\/status but the call failed: .*ECONNRESET.*; nothing changed/);
    assert.doesNotMatch(err.join(""), /did not answer within/);
  } finally {
    await new Promise((resolve) => resetting.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  }
});

test("nothing listening is no daemon", async () => {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const port = (probe.address() as AddressInfo).port;
  await new Promise((resolve) => probe.close(resolve));
  assert.equal(await daemonRunning(configFor(tmpdir(), port), 2_000), false);
});

test("an answer that is not this deployment's daemon's (another server on the port, another deployment's daemon) is not taken for the daemon: sluice replay --rebuild refuses, naming what answered", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-foreign-"));
  // What answers GET /status: ClickHouse's HTTP port (404, text), another deployment's daemon, this one's daemon asking for a token.
  let answer: { status: number; body: string } = { status: 404, body: "Not Found" };
  const server = createHttpServer((_req, res) => {
    res.writeHead(answer.status, { "content-type": "application/json" });
    res.end(answer.body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const config = configFor(dir, (server.address() as AddressInfo).port);
    const rebuild = async () => {
      const err: string[] = [];
      const code = await runRebuildCommand(config, "wh", true, { stdout: () => undefined, stderr: (t) => err.push(t) }, pino({ level: "silent" }));
      return { code, err: err.join("") };
    };
    // Before: any HTTP answer was the daemon, and the rebuild was sent to it.
    const other = await rebuild();
    assert.equal(other.code, 1);
    assert.match(other.err, /something listens at http:\/\/127\.0\.0\.1:\d+\/status but it is not a Sluice daemon \(it answered HTTP 404 Not Found to GET \/status\); nothing changed/);
    answer = { status: 200, body: JSON.stringify({ deployment: "shop", ready: true }) };
    const shop = await rebuild();
    assert.equal(shop.code, 1);
    assert.match(shop.err, /it is the daemon of deployment "shop", not of "busy" \(this config's name\); nothing changed/);
    answer = { status: 401, body: JSON.stringify({ error: "GET /status needs a bearer token (Authorization: Bearer <token>)" }) };
    assert.equal(await daemonRunning(config, 2_000), true, "a daemon that refuses the token is still the daemon");
    answer = { status: 403, body: JSON.stringify({ error: "GET /status is refused: a browser's request (set http.admin_token; see docs/security.md)" }) };
    assert.equal(await daemonRunning(config, 2_000), true, "a daemon that refuses the request is still the daemon");
    // Before: any error status with a string "error" field was taken for this deployment's daemon.
    for (const status of [404, 500, 503]) {
      answer = { status, body: JSON.stringify({ error: "not found" }) };
      const running = await daemonRunning(config, 2_000);
      assert.equal(typeof running === "object" && running.foreign, true, `HTTP ${status} with an error field`);
      assert.match((running as { reason: string }).reason, new RegExp(`^it is not a Sluice daemon \\(it answered HTTP ${status} `));
    }
    answer = { status: 200, body: JSON.stringify({ deployment: "busy", ready: true }) };
    assert.equal(await daemonRunning(config, 2_000), true);
  } finally {
    await new Promise((resolve) => server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  }
});
