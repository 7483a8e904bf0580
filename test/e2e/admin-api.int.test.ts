/**
 * End to end (issue 13, item 1): the real daemon's HTTP API. With tokens configured (the admin
 * token from a file, the read token from an environment variable) over HTTPS with a certificate
 * made for the test: every admin endpoint answers 401 without a token or with a wrong one, 403 to
 * the read token, and serves the admin token; the read-only ones serve the read token; health,
 * readiness and metrics stay open, also on http.public_listen (which serves nothing else); the
 * CLI sends the config's token and trusts http.tls.ca_file; a token rotated in its file takes
 * effect at SIGHUP. Without a token and listening on every interface, the admin endpoints answer
 * loopback clients only, and the daemon says so at start.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type pg from "pg";
import { dropPostgres, freePort, pgClient, pgSourceConfig, randomName, removeDir, REPO, runSluice, sleep, tempDir, waitFor } from "./helpers.ts";

const schema = randomName("e2e_admin");
const source = randomName("src");
const deployment = randomName("dep");
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
const dir = tempDir("admin");
const ADMIN = `admin-${randomName("tok")}-0123456789`;
const READ = `read-${randomName("tok")}-0123456789`;
const ROTATED = `rotated-${randomName("tok")}-0123456789`;
let client: pg.Client;
const children: ChildProcess[] = [];

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** One request; `ca` makes it HTTPS trusting that CA. */
function call(url: string, options: { method?: string; token?: string; body?: string; ca?: Buffer } = {}): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (options.token !== undefined) headers["authorization"] = `Bearer ${options.token}`;
  if (options.body !== undefined) headers["content-type"] = "application/json";
  const send = url.startsWith("https:") ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(url, { method: options.method ?? "GET", headers, ...(options.ca ? { ca: options.ca } : {}), signal: AbortSignal.timeout(60_000) }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.once("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString("utf8") }));
    });
    req.once("error", reject);
    req.end(options.body);
  });
}

/** Starts `sluice run` on a config file; resolves with its output so far on demand. */
function startDaemon(configFile: string, env: Record<string, string> = {}): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, [join(REPO, "daemon/sluice.js"), "run", "-c", configFile], { cwd: dir, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let text = "";
  child.stdout!.on("data", (c: Buffer) => (text += c.toString("utf8")));
  child.stderr!.on("data", (c: Buffer) => (text += c.toString("utf8")));
  return { child, output: () => text };
}

async function stopDaemon(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  await exited;
}

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(`CREATE TABLE "${schema}".items (id int PRIMARY KEY, note text)`);
  await client.query(`INSERT INTO "${schema}".items SELECT g, 'note ' || g FROM generate_series(1, 5) g`);
  // A throwaway CA and a server certificate for 127.0.0.1 and localhost, signed by it.
  const ssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=sluice test CA");
  ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost");
  writeFileSync(join(dir, "san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext");
  // Another CA, which the CLI must not accept for the daemon's certificate.
  ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key", "-out", "other.pem", "-days", "2", "-subj", "/CN=another CA");
});

after(async () => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  await dropPostgres(client, names);
  await client.end();
  removeDir(dir);
});

describe("with tokens, over HTTPS", () => {
  let base: string;
  let publicBase: string;
  let ca: Buffer;
  let daemon: { child: ChildProcess; output: () => string };
  const configFile = join(dir, "tokens.yaml");
  const tokenFile = join(dir, "admin.token");

  const config = (extra: Record<string, unknown>, http: Record<string, unknown>) => ({
    name: deployment,
    sources: [pgSourceConfig(source, [`${schema}.*`])],
    topics: { kind: "embedded", path: join(dir, "log.db") },
    sinks: [{ kind: "duckdb", name: "warehouse", path: join(dir, "warehouse.duckdb"), batch: { max_wait: "50ms" } }],
    ...extra,
    http,
  });

  before(async () => {
    ca = readFileSync(join(dir, "ca.pem"));
    const port = await freePort();
    const publicPort = await freePort();
    base = `https://127.0.0.1:${port}`;
    publicBase = `http://127.0.0.1:${publicPort}`;
    writeFileSync(tokenFile, `${ADMIN}\n`);
    const http = {
      listen: `127.0.0.1:${port}`,
      public_listen: `127.0.0.1:${publicPort}`,
      admin_token_file: tokenFile,
      read_token: "${SLUICE_TEST_READ_TOKEN}",
      tls: { cert_file: join(dir, "server.pem"), key_file: join(dir, "server.key"), ca_file: join(dir, "ca.pem") },
    };
    writeFileSync(configFile, JSON.stringify(config({}, http), null, 2));
    // The CLI reads the same config, so the same variable is set for the commands this test runs.
    process.env["SLUICE_TEST_READ_TOKEN"] = READ;
    daemon = startDaemon(configFile);
    await waitFor("every source and sink to be ready", async () => {
      const answer = await call(`${base}/readyz`, { ca }).catch(() => null);
      return answer?.status === 200 || undefined;
    }, { timeoutMs: 90_000, intervalMs: 200 });
    // The snapshot reached DuckDB, so queries have a table to read.
    await waitFor("the snapshot in DuckDB", async () => {
      const answer = await call(`${base}/sinks/warehouse/query`, { method: "POST", token: READ, body: `SELECT count(*)::INT AS n FROM "${schema}_items"`, ca });
      return answer.status === 200 && (JSON.parse(answer.text) as { rows: { n: number }[] }).rows[0]?.n === 5 ? true : undefined;
    }, { timeoutMs: 60_000, intervalMs: 200 });
  });

  after(async () => {
    await stopDaemon(daemon.child);
  });

  test("health, readiness and metrics need no token, on both addresses; the public address serves nothing else", async () => {
    for (const root of [base, publicBase]) {
      const opts = root.startsWith("https") ? { ca } : {};
      assert.equal((await call(`${root}/healthz`, opts)).status, 200);
      assert.equal((await call(`${root}/readyz`, opts)).status, 200);
      // 503 here (an embedded log has no capture leader), not 401 (a probe has no token) nor 404 on the public address.
      const leader = await call(`${root}/readyz/leader`, opts);
      assert.equal(leader.status, 503, `${root}/readyz/leader: ${leader.text}`);
      assert.match(leader.text, /"capture":null/);
      const metrics = await call(`${root}/metrics`, opts);
      assert.equal(metrics.status, 200);
      assert.match(metrics.text, /sluice_/);
    }
    for (const path of ["/status", "/registry/subjects"]) {
      const answer = await call(`${publicBase}${path}`, { token: ADMIN });
      assert.equal(answer.status, 404, `${path} on the public address: ${answer.text}`);
    }
    const plainOnTls = await call(`${base.replace("https:", "http:")}/healthz`).then((a) => a.status, (error: Error) => error.message);
    assert.notEqual(plainOnTls, 200, "plain HTTP on the HTTPS listener must not be served");
  });

  const readEndpoints = [
    { method: "GET", path: "/status" },
    { method: "POST", path: "/sinks/warehouse/query", body: "SELECT 1 AS one" },
    { method: "GET", path: "/registry/subjects" },
  ];
  const adminEndpoints = [
    { method: "POST", path: "/sinks/warehouse/halted/retry", body: JSON.stringify({ table: `${schema}.items` }) },
    { method: "POST", path: "/sinks/warehouse/halted/skip", body: JSON.stringify({ table: `${schema}.items` }) },
    { method: "POST", path: `/sources/${source}/halted/retry`, body: JSON.stringify({ table: `${schema}.items` }) },
    { method: "POST", path: `/sources/${source}/halted/skip`, body: JSON.stringify({ table: `${schema}.items` }) },
    { method: "PUT", path: "/registry/config", body: JSON.stringify({ compatibility: "BACKWARD" }) },
    { method: "POST", path: "/registry/subjects/admin-test-value/versions", body: JSON.stringify({ schema: JSON.stringify({ type: "record", name: "T", fields: [{ name: "a", type: "long" }] }) }) },
    { method: "DELETE", path: "/registry/subjects/admin-test-value" },
    { method: "POST", path: "/sinks/warehouse/rebuild" },
  ];

  test("every admin and read-only endpoint: 401 with WWW-Authenticate without a token or with a wrong one", async () => {
    for (const endpoint of [...readEndpoints, ...adminEndpoints]) {
      for (const token of [undefined, "not-the-token-0123456789", `${ADMIN}x`, ADMIN.slice(0, -1)]) {
        const answer = await call(`${base}${endpoint.path}`, { method: endpoint.method, ...(token === undefined ? {} : { token }), ...(endpoint.body ? { body: endpoint.body } : {}), ca });
        assert.equal(answer.status, 401, `${endpoint.method} ${endpoint.path} with ${token === undefined ? "no token" : "a wrong token"}: ${answer.text}`);
        assert.match(String(answer.headers["www-authenticate"]), /^Bearer realm="sluice"/);
      }
    }
  });

  test("the read token serves the read-only endpoints and is refused (403) by the admin ones", async () => {
    for (const endpoint of readEndpoints) {
      const answer = await call(`${base}${endpoint.path}`, { method: endpoint.method, token: READ, ...(endpoint.body ? { body: endpoint.body } : {}), ca });
      assert.equal(answer.status, 200, `${endpoint.method} ${endpoint.path}: ${answer.text}`);
    }
    for (const endpoint of adminEndpoints) {
      const answer = await call(`${base}${endpoint.path}`, { method: endpoint.method, token: READ, ...(endpoint.body ? { body: endpoint.body } : {}), ca });
      assert.equal(answer.status, 403, `${endpoint.method} ${endpoint.path} with the read token: ${answer.text}`);
      assert.match(answer.text, /does not grant/);
    }
  });

  /** How many times the daemon's output so far holds `text`. */
  const logged = (text: string) => daemon.output().split(text).length - 1;

  test("the admin token is served by every endpoint (the handler's own answer, not a refusal)", async () => {
    for (const endpoint of [...readEndpoints, ...adminEndpoints]) {
      const answer = await call(`${base}${endpoint.path}`, { method: endpoint.method, token: ADMIN, ...(endpoint.body ? { body: endpoint.body } : {}), ca });
      assert.ok(answer.status !== 401 && answer.status !== 403, `${endpoint.method} ${endpoint.path}: ${answer.status} ${answer.text}`);
      // Not halted: the release endpoints say so; the others succeed.
      if (endpoint.path.includes("/halted/")) assert.equal(answer.status, 404, answer.text);
      else assert.equal(answer.status, 200, `${endpoint.method} ${endpoint.path}: ${answer.text}`);
    }
    // The rebuild answered once swapped in, but its log lines come on the daemon's standard output, which is not in step
    // with its HTTP answers: under load the last of them came after the answer, while the next test counted rebuilds.
    await waitFor("the rebuild's last log line", async () => (/"component":"rebuild"[^\n]*"msg":"rebuild swapped in"/.test(daemon.output()) ? true : undefined), { timeoutMs: 30_000, intervalMs: 50 });
  });

  test("a body that is not the endpoint's JSON object, or a malformed path, is answered 400 and does nothing; HEAD is served where GET is", async () => {
    // An array body read as "no tables given" rebuilt every table; null and text that is no JSON were 500s, as was a malformed %-encoding.
    const [rebuilds, failures] = [logged("rebuild swapped in"), logged("HTTP handler failed")];
    for (const [path, body] of [
      ["/sinks/warehouse/rebuild", JSON.stringify([`${schema}.items`])],
      ["/sinks/warehouse/rebuild", "null"],
      ["/sinks/warehouse/erase", "null"],
      ["/sinks/warehouse/erase", "not json"],
      ["/sinks/warehouse/halted/retry", "[]"],
      [`/sources/${source}/snapshots`, "7"],
    ] as const) {
      const answer = await call(`${base}${path}`, { method: "POST", token: ADMIN, body, ca });
      assert.equal(answer.status, 400, `${path} ${body}: ${answer.text}`);
      assert.match(answer.text, /the body must be a JSON object: \{/, `${path} ${body}`);
    }
    // An unknown source erased nothing and answered 200 {"rows":0}, as if the subject had been forgotten.
    const unknownSource = await call(`${base}/sinks/warehouse/erase`, { method: "POST", token: ADMIN, body: JSON.stringify({ source: "no_such_source", subject: "1" }), ca });
    assert.equal(unknownSource.status, 400, unknownSource.text);
    assert.match(unknownSource.text, /source \\"no_such_source\\" is not one of this deployment's sources/);
    // An empty list of tables rebuilt every table (and abandoned every interrupted rebuild): "every table" is the field left out.
    for (const [path, body] of [
      ["/sinks/warehouse/rebuild", JSON.stringify({ tables: [] })],
      ["/sinks/warehouse/rebuild/abandon", JSON.stringify({ tables: [], execute: true })],
    ] as const) {
      const answer = await call(`${base}${path}`, { method: "POST", token: ADMIN, body, ca });
      assert.equal(answer.status, 400, `${path} ${body}: ${answer.text}`);
      assert.match((JSON.parse(answer.text) as { error: string }).error, /^"tables" is an empty list, which names no table: leave "tables" out for every table/, `${path} ${body}`);
    }
    const malformed = await call(`${base}/sinks/%E0%A4%A/query`, { method: "POST", token: ADMIN, body: "SELECT 1", ca });
    assert.equal(malformed.status, 400, malformed.text);
    assert.match(malformed.text, /malformed percent-encoding/);
    await sleep(200);
    assert.deepEqual([logged("rebuild swapped in"), logged("HTTP handler failed")], [rebuilds, failures], "no rebuild, no handler failure");
    for (const path of ["/healthz", "/readyz", "/metrics"]) {
      const head = await call(`${base}${path}`, { method: "HEAD", ca });
      assert.equal(head.status, 200, path);
      assert.equal(head.text, "", path);
    }
  });

  test("the CLI sends the config's token over HTTPS, trusting http.tls.ca_file; a wrong token or CA fails clearly", async () => {
    const status = await runSluice(["status", "-c", configFile, "--json"], dir);
    assert.equal(status.code, 0, status.stderr);
    assert.equal((JSON.parse(status.stdout) as { deployment: string }).deployment, deployment);
    const query = await runSluice(["query", "-c", configFile, "--json", `SELECT count(*)::INT AS n FROM "${schema}_items"`], dir);
    assert.equal(query.code, 0, query.stderr);
    assert.deepEqual(JSON.parse(query.stdout), [{ n: 5 }]);
    const halted = await runSluice(["halted", "-c", configFile, "list"], dir);
    assert.equal(halted.code, 0, halted.stderr);
    assert.match(halted.stdout, /no halted tables/);
    const retry = await runSluice(["halted", "-c", configFile, "retry", "--sink", "warehouse", "--table", `${schema}.items`], dir);
    assert.equal(retry.code, 1);
    assert.doesNotMatch(retry.stderr, /401|403|token/, retry.stderr);
    // Every table, through the daemon: the CLI leaves "tables" out (it sent [], which the daemon refuses).
    const rebuild = await runSluice(["replay", "-c", configFile, "--sink", "warehouse", "--from-beginning", "--rebuild", "--execute"], dir);
    assert.equal(rebuild.code, 0, rebuild.stderr);
    assert.match(rebuild.stdout, new RegExp(`Done \\(by the running daemon\\): rebuilt 1 table \\(${schema}\\.items\\)`));
    const abandon = await runSluice(["replay", "-c", configFile, "--sink", "warehouse", "--abandon-rebuild", "--execute"], dir);
    assert.equal(abandon.code, 0, abandon.stderr);
    assert.match(abandon.stdout, /has no interrupted rebuild: nothing to abandon/);

    const parsed = JSON.parse(readFileSync(configFile, "utf8")) as { http: Record<string, unknown> };
    const wrongToken = join(dir, "wrong-token.yaml");
    writeFileSync(wrongToken, JSON.stringify({ ...parsed, http: { ...parsed.http, admin_token_file: undefined, admin_token: "wrong-wrong-wrong-wrong" } }));
    const refused = await runSluice(["status", "-c", wrongToken], dir);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /401/);
    assert.match(refused.stderr, /not valid/);
    assert.doesNotMatch(refused.stderr, /wrong-wrong-wrong-wrong/);

    const wrongCa = join(dir, "wrong-ca.yaml");
    writeFileSync(wrongCa, JSON.stringify({ ...parsed, http: { ...parsed.http, tls: { ...(parsed.http["tls"] as object), ca_file: join(dir, "other.pem") } } }));
    const untrusted = await runSluice(["status", "-c", wrongCa], dir);
    assert.equal(untrusted.code, 1);
    assert.match(untrusted.stderr, /the TLS connection to https:\/\/127\.0\.0\.1:\d+\/status failed \(.*certificate/);
  });

  test("a token rotated in its file takes effect at SIGHUP; the tokens never reach the log", async () => {
    writeFileSync(tokenFile, `${ROTATED}\n`);
    daemon.child.kill("SIGHUP");
    await waitFor("the rotated token to be taken", async () => ((await call(`${base}/status`, { token: ROTATED, ca })).status === 200 ? true : undefined), { timeoutMs: 10_000, intervalMs: 100 });
    assert.equal((await call(`${base}/status`, { token: ADMIN, ca })).status, 401);
    assert.equal((await call(`${base}/sinks/warehouse/rebuild`, { method: "POST", token: ROTATED, ca })).status, 200);
    await sleep(200);
    const output = daemon.output();
    assert.match(output, /reloaded the HTTP API's tokens and certificate/);
    assert.match(output, /admin API needs a bearer token/);
    assert.doesNotMatch(output, /not applied until the daemon is restarted/, "a token rotated is no change that needs a restart");
    for (const token of [ADMIN, READ, ROTATED]) assert.ok(!output.includes(token), "a token appeared in the daemon's output");
    // HTTPS taken out of the config: the listener stays HTTPS until a restart, and the log says so (it said "tls: true" and nothing else).
    const parsed = JSON.parse(readFileSync(configFile, "utf8")) as { http: Record<string, unknown> };
    // With it, a setting SIGHUP does not take: the log names it (it said nothing of it).
    writeFileSync(configFile, JSON.stringify({ ...parsed, http: { ...parsed.http, tls: undefined }, shutdown: { timeout: "7s" } }));
    daemon.child.kill("SIGHUP");
    await waitFor("the warning that HTTPS stays", async () => (/http\.tls was removed in the config: the HTTP API stays HTTPS until the daemon is restarted/.test(daemon.output()) ? true : undefined), { timeoutMs: 10_000, intervalMs: 100 });
    await waitFor("the warning naming the setting not applied", async () => (/these changes of the config are not applied until the daemon is restarted: shutdown\.timeout"/.test(daemon.output()) ? true : undefined), { timeoutMs: 10_000, intervalMs: 100 });
    assert.equal((await call(`${base}/status`, { token: ROTATED, ca })).status, 200);
  });
});

describe("without a token, listening on every interface", () => {
  let daemon: { child: ChildProcess; output: () => string };
  let port: number;
  const outside = Object.values(networkInterfaces())
    .flat()
    .find((i) => i !== undefined && i.family === "IPv4" && !i.internal)?.address;

  before(async () => {
    port = await freePort();
    const configFile = join(dir, "open.yaml");
    writeFileSync(
      configFile,
      JSON.stringify({
        name: `${deployment}_open`,
        sources: [pgSourceConfig(`${source}_o`, [`${schema}.*`])],
        topics: { kind: "embedded", path: join(dir, "open.db") },
        http: { listen: `0.0.0.0:${port}` },
      }),
    );
    daemon = startDaemon(configFile);
    await waitFor("the daemon to answer", async () => ((await call(`http://127.0.0.1:${port}/healthz`).catch(() => null))?.status === 200 ? true : undefined), { timeoutMs: 60_000, intervalMs: 100 });
  });

  after(async () => {
    await stopDaemon(daemon.child);
    await dropPostgres(client, { slot: `sluice_${source}_o`, publication: `sluice_${source}_o` });
  });

  test("admin endpoints answer loopback clients only; public ones answer everyone; the daemon said so at start", async () => {
    assert.ok(outside, "this host needs a non-loopback IPv4 address for this test");
    assert.equal((await call(`http://127.0.0.1:${port}/status`)).status, 200);
    const refused = await call(`http://${outside}:${port}/status`);
    assert.equal(refused.status, 403, refused.text);
    assert.match(refused.text, /loopback/);
    assert.equal((await call(`http://${outside}:${port}/sinks/x/rebuild`, { method: "POST" })).status, 403);
    assert.equal((await call(`http://${outside}:${port}/registry/subjects`)).status, 403);
    assert.equal((await call(`http://${outside}:${port}/healthz`)).status, 200);
    assert.equal((await call(`http://${outside}:${port}/metrics`)).status, 200);
    const lines = daemon.output().split("\n").filter((line) => line.includes("admin API without a token"));
    assert.equal(lines.length, 1, daemon.output());
    assert.match(lines[0]!, /loopback interface/);
    const status = await runSluice(["status", "-c", join(dir, "open.yaml")], dir);
    assert.equal(status.code, 0, status.stderr);
  });
});
