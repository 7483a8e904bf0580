/**
 * A daemon killed (or restarted) under a command's call: found on a live deployment, `sluice replay
 * --rebuild --execute` printed "unexpected failure: Error: socket hang up" and a stack trace when the
 * daemon was killed -9 during the rebuild. A stand-in listener that cuts the connection once the
 * request came (the command line's own logic; the daemon is not needed for it).
 */
import assert from "node:assert/strict";
import { createServer as createHttpServer } from "node:http";
import { get as httpsGet } from "node:https";
import { createServer } from "node:net";
import type { AddressInfo, Socket } from "node:net";
import { test } from "node:test";
import { loadConfigText } from "../config/load.ts";
import { SluiceError } from "../connectors/errors.ts";
import { callDaemon, callFailure, daemonRunning } from "./daemon-client.ts";
import { main } from "./cli.ts";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const configText = (port: number) =>
  [
    "name: cut",
    "sources:",
    "  - {name: pg, kind: postgres, host: 127.0.0.1, database: d, user: u, password: p, tables: ['public.*']}",
    "topics: {kind: embedded, path: /nonexistent/log.db}",
    "sinks: [{name: wh, kind: duckdb, path: /nonexistent/wh.duckdb}]",
    `http: {listen: 127.0.0.1:${port}}`,
  ].join("\n");

async function withCuttingListener(run: (port: number) => Promise<void>): Promise<void> {
  const cutting = createServer((socket) => socket.once("data", () => socket.resetAndDestroy()));
  await new Promise<void>((resolve) => cutting.listen(0, "127.0.0.1", resolve));
  try {
    await run((cutting.address() as AddressInfo).port);
  } finally {
    await new Promise((resolve) => cutting.close(resolve));
  }
}

test("a call the daemon's end cuts off before answering rejects with DAEMON_CONNECTION_LOST, saying what was asked and that whether it was done is not known", async () => {
  await withCuttingListener(async (port) => {
    const config = loadConfigText("test.yaml", configText(port));
    await assert.rejects(callDaemon(config, "/sinks/wh/rebuild", { method: "POST", body: "{}", timeoutMs: 5_000 }), (error: unknown) => {
      assert.ok(error instanceof SluiceError, String(error));
      assert.equal(error.code, "DAEMON_CONNECTION_LOST");
      assert.match(error.message, /closed the connection before answering POST \/sinks\/wh\/rebuild \(.*ECONNRESET\).*Whether it was done is not known; see "sluice status"/);
      return true;
    });
    // The probe of whether a daemon runs still says what happened, as it came.
    const running = await daemonRunning(config, 5_000);
    assert.equal(typeof running, "object");
    assert.match((running as { reason: string }).reason, /^read ECONNRESET \(ECONNRESET\)$/);
  });
});

test("sluice replay --rebuild --execute whose daemon is killed under it prints what happened, not an unexpected failure with a stack trace", async () => {
  // Answers /status (a daemon runs), then cuts the rebuild's call as a daemon killed -9 does.
  const daemon = createServer((socket) =>
    socket.once("data", (head: Buffer) => {
      // A daemon's status names its deployment (a stand-in answering {} is not taken for the daemon).
      if (head.toString("latin1").startsWith("GET /status ")) socket.end('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 20\r\nconnection: close\r\n\r\n{"deployment":"cut"}');
      else socket.resetAndDestroy();
    }),
  );
  await new Promise<void>((resolve) => daemon.listen(0, "127.0.0.1", resolve));
  const dir = mkdtempSync(join(tmpdir(), "sluice-cut-"));
  try {
    const file = join(dir, "sluice.yaml");
    writeFileSync(file, configText((daemon.address() as AddressInfo).port));
    const err: string[] = [];
    const code = await main(["replay", "-c", file, "--sink", "wh", "--from-beginning", "--rebuild", "--execute"], { stdout: () => undefined, stderr: (text) => err.push(text) });
    assert.equal(code, 1);
    assert.doesNotMatch(err.join(""), /unexpected failure|\n\s+at /);
    assert.match(err.join(""), /^sluice replay: the daemon at http:\/\/127\.0\.0\.1:\d+ closed the connection before answering POST \/sinks\/wh\/rebuild/);
  } finally {
    await new Promise((resolve) => daemon.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a call that changes something is not sent where GET /status shows another deployment's daemon or another server: DAEMON_FOREIGN, naming what answers; a GET is sent as it is", async () => {
  const seen: string[] = [];
  let status = JSON.stringify({ deployment: "other", ready: true });
  const server = createHttpServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    res.writeHead(200, { "content-type": "application/json" });
    res.end(req.url === "/status" ? status : "{}");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const config = loadConfigText("test.yaml", configText((server.address() as AddressInfo).port));
    const skip = () => callDaemon(config, "/sinks/wh/halted/skip", { method: "POST", body: JSON.stringify({ table: "public.t", execute: true }), timeoutMs: 5_000 });
    // Before: sent, and the other deployment's daemon skipped its own sink wh's record.
    await assert.rejects(skip(), (error: unknown) => {
      assert.ok(error instanceof SluiceError && error.code === "DAEMON_FOREIGN", String(error));
      assert.match(error.message, /^something answers at http:\/\/127\.0\.0\.1:\d+\/status, but it is the daemon of deployment "other", not of "cut" \(this config's name\): is http\.listen \(127\.0\.0\.1:\d+\) this deployment's daemon's address\? Nothing was sent$/);
      return true;
    });
    status = "<html>not a daemon</html>";
    await assert.rejects(skip(), /it is not a Sluice daemon \(it answered HTTP 200 OK to GET \/status\)/);
    assert.deepEqual(seen, ["GET /status", "GET /status"], "the skip was never sent");
    assert.equal((await callDaemon(config, "/sources/pg/snapshots", { timeoutMs: 5_000 })).status, 200, "a GET goes as it is");
    status = JSON.stringify({ deployment: "cut", ready: true });
    assert.equal((await skip()).status, 200, "sent to this deployment's daemon");
    assert.deepEqual(seen.slice(2), ["GET /sources/pg/snapshots", "GET /status", "POST /sinks/wh/halted/skip"]);
    // Shown once to be this deployment's daemon, it is not asked again before each call (rebuild and forget probe first).
    await skip();
    assert.deepEqual(seen.slice(5), ["POST /sinks/wh/halted/skip"]);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

test("sluice query where http.listen answers as another deployment's daemon: DAEMON_FOREIGN told, exit 1, neither the query sent nor the DuckDB file opened", async () => {
  const seen: string[] = [];
  const server = createHttpServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    res.writeHead(200, { "content-type": "application/json" });
    res.end(req.url === "/status" ? JSON.stringify({ deployment: "other", ready: true }) : '{"rows":[]}');
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const dir = mkdtempSync(join(tmpdir(), "sluice-foreign-query-"));
  try {
    const file = join(dir, "sluice.yaml");
    writeFileSync(file, configText((server.address() as AddressInfo).port));
    const err: string[] = [];
    const code = await main(["query", "-c", file, "SELECT 1"], { stdout: () => undefined, stderr: (text) => err.push(text) });
    assert.equal(code, 1);
    // Before: the refusal was swallowed and the file opened locally ("cannot open DuckDB file").
    assert.match(err.join(""), /^sluice query: something answers at http:\/\/127\.0\.0\.1:\d+\/status, but it is the daemon of deployment "other", not of "cut"/);
    assert.deepEqual(seen, ["GET /status"]);
  } finally {
    await new Promise((resolve) => server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  }
});

test("sluice query with no daemon at http.listen and no DuckDB file to read instead says no daemon answers there and suggests sluice run", async () => {
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
  const port = (closed.address() as AddressInfo).port;
  await new Promise((resolve) => closed.close(resolve));
  const dir = mkdtempSync(join(tmpdir(), "sluice-no-daemon-query-"));
  try {
    const file = join(dir, "sluice.yaml");
    writeFileSync(file, configText(port));
    const err: string[] = [];
    const code = await main(["query", "-c", file, "SELECT 1"], { stdout: () => undefined, stderr: (text) => err.push(text) });
    assert.equal(code, 1);
    // Before: only "cannot open DuckDB file /nonexistent/wh.duckdb: ...", nothing of the daemon.
    assert.match(err.join(""), new RegExp(`^sluice query: no daemon answers at http://127\\.0\\.0\\.1:${port} \\(connect ECONNREFUSED 127\\.0\\.0\\.1:${port}\\); is "sluice run" running with this config\\? Reading sink wh's file without it failed: cannot open DuckDB file /nonexistent/wh\\.duckdb`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a failed call is worded by its failure: nothing listening, the TLS connection refused, or no answer in time", async () => {
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
  const closedPort = (closed.address() as AddressInfo).port;
  await new Promise((resolve) => closed.close(resolve));
  const refused = await callDaemon(loadConfigText("test.yaml", configText(closedPort)), "/status", { timeoutMs: 5_000 }).catch((error: unknown) => error);
  assert.deepEqual(callFailure("U", refused, 5_000), { text: `no daemon answers at U (connect ECONNREFUSED 127.0.0.1:${closedPort})`, nobody: true });

  // A listener that takes the connection and never answers (a daemon too busy), and one that speaks no TLS to an https call.
  const held = new Set<Socket>();
  const silent = createServer((socket) => void held.add(socket));
  const plain = createHttpServer((_req, res) => res.end("{}"));
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  await new Promise<void>((resolve) => plain.listen(0, "127.0.0.1", resolve));
  try {
    const timedOut = await callDaemon(loadConfigText("test.yaml", configText((silent.address() as AddressInfo).port)), "/status", { timeoutMs: 200 }).catch((error: unknown) => error);
    assert.deepEqual(callFailure("U", timedOut, 200), { text: "something listens at U but did not answer within 0.2 s (a busy daemon?)", nobody: false });
    const tls = await new Promise<unknown>((resolve) => httpsGet(`https://127.0.0.1:${(plain.address() as AddressInfo).port}/status`, () => resolve(null)).once("error", resolve));
    const worded = callFailure("U", tls, 5_000);
    assert.equal(worded.nobody, false);
    assert.match(worded.text, /^the TLS connection to U failed \(.*\): see that http\.tls in this config/);

    // sluice status said "no daemon answers at ..." for a daemon that did not answer within its 5 s.
    const dir = mkdtempSync(join(tmpdir(), "sluice-silent-daemon-"));
    try {
      const file = join(dir, "sluice.yaml");
      writeFileSync(file, configText((silent.address() as AddressInfo).port));
      const err: string[] = [];
      assert.equal(await main(["status", "-c", file], { stdout: () => undefined, stderr: (text) => err.push(text) }), 1);
      assert.match(err.join(""), /^sluice status: something listens at http:\/\/127\.0\.0\.1:\d+\/status but did not answer within 5 s \(a busy daemon\?\)\n$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  } finally {
    plain.close();
    for (const socket of held) socket.destroy();
    await new Promise((resolve) => silent.close(resolve));
  }
});

test("sluice query does not read the DuckDB file when something listens at http.listen but the call fails (TLS refused, connection cut): it says what failed, exit 1", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-query-no-fallback-"));
  // A readable file beside a daemon that runs: what it holds apart from the daemon is stale (or the file locked).
  const path = join(dir, "wh.duckdb");
  const { DuckDBInstance } = await import("@duckdb/node-api");
  const instance = await DuckDBInstance.create(path);
  const connection = await instance.connect();
  await connection.run("CREATE TABLE t AS SELECT 'stale' AS v");
  connection.closeSync();
  instance.closeSync();
  const plain = createHttpServer((_req, res) => res.end("{}"));
  await new Promise<void>((resolve) => plain.listen(0, "127.0.0.1", resolve));
  const query = async (text: string) => {
    const file = join(dir, "sluice.yaml");
    writeFileSync(file, text.replace("/nonexistent/wh.duckdb", path));
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(["query", "-c", file, "SELECT v FROM t"], { stdout: (t) => out.push(t), stderr: (t) => err.push(t) });
    return { code, out: out.join(""), err: err.join("") };
  };
  try {
    // The config speaks https to a listener that speaks plain HTTP (as a daemon whose certificate the CLI refuses).
    const tls = await query(configText((plain.address() as AddressInfo).port).replace(/http: \{listen: ([^}]+)\}/, `http: {listen: $1, tls: {cert_file: ${join(dir, "c.pem")}, key_file: ${join(dir, "k.pem")}}}`));
    // Before: the rows of the file ("stale"), exit 0, the TLS failure hidden.
    assert.equal(tls.code, 1, tls.out);
    assert.equal(tls.out, "");
    assert.match(tls.err, /^sluice query: the TLS connection to https:\/\/127\.0\.0\.1:\d+ failed \(.*\): see that http\.tls in this config .*\. Sink wh's file was not read instead: a daemon may run there, holding it\.\n$/);
    await withCuttingListener(async (port) => {
      const cut = await query(configText(port));
      assert.equal(cut.code, 1, cut.out);
      assert.equal(cut.out, "");
      assert.match(cut.err, /^sluice query: the call to http:\/\/127\.0\.0\.1:\d+ failed \(read ECONNRESET\)\. Sink wh's file was not read instead/);
    });
    // Nothing listening: the file is read.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const none = await query(configText(port));
    assert.equal(none.code, 0, none.err);
    assert.match(none.out, /stale/);
  } finally {
    await new Promise((resolve) => plain.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  }
});
