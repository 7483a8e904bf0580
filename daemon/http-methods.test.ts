/**
 * A method a path does not take is answered 405 with the methods it takes in Allow (it was 404, "no
 * such endpoint", which told a client that used the wrong method to look for another path), OPTIONS
 * 204 with Allow, and HEAD as GET wherever GET is served, the prefix handlers' paths and the schema
 * registry's included.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { createLogger } from "../runtime/logger.ts";
import { LocalRegistry } from "../schema-registry/local-registry.ts";
import { openMemoryStore } from "../schema-registry/log-store.ts";
import { createRegistryHandler } from "../schema-registry/rest-handler.ts";
import { AccessPolicy } from "./admin-auth.ts";
import { haltedHandler } from "./halted-admin.ts";
import { HttpServer, sendJson } from "./http-server.ts";
import { snapshotHandler } from "./snapshot-admin.ts";
import { queryHandler } from "./sink-query.ts";

const ADMIN = "admin-token-0123456789abcdef";

function serverWith(access?: AccessPolicy): HttpServer {
  const server = new HttpServer(createLogger("silent"), access ? { access } : {});
  server.route("GET", "/healthz", (_req, res) => sendJson(res, 200, { status: "ok" }));
  server.route("GET", "/status", (_req, res) => sendJson(res, 200, { ready: true }));
  server.mount("/sinks", queryHandler(new Map()));
  const halted = haltedHandler(new Map());
  server.mount("/sinks", halted);
  server.mount("/sources", halted);
  const snapshots = { plan: async () => ({}), request: async () => ({}), list: () => ({ tasks: [], failed: [] }) } as never;
  server.mount("/sources", snapshotHandler((name) => (name === "pg" ? { snapshots } : undefined), () => ["pg"]));
  return server;
}

const open = serverWith();
const READ = "read-token-0123456789abcdef";
const guarded = serverWith(new AccessPolicy({ publicPaths: ["/healthz"], registryPrefix: "/registry", tokens: { admin: ADMIN, read: READ } }));
let openPort = 0;
let guardedPort = 0;
let publicPort = 0;

before(async () => {
  open.mount("/registry", createRegistryHandler({ registry: new LocalRegistry(await openMemoryStore()), prefix: "/registry" }));
  openPort = (await open.listen("127.0.0.1", 0)).port;
  guardedPort = (await guarded.listen("127.0.0.1", 0)).port;
  publicPort = (await guarded.listen("127.0.0.1", 0, { publicOnly: true })).port;
});
after(async () => {
  await open.close();
  await guarded.close();
});

async function call(port: number, method: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; allow: string | null; body: string }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, { method, headers });
  return { status: response.status, allow: response.headers.get("allow"), body: await response.text() };
}

test("a method an exact route does not take is answered 405 with Allow, OPTIONS 204 with Allow", async () => {
  for (const method of ["POST", "PUT", "DELETE", "PATCH"]) {
    const answer = await call(openPort, method, "/status");
    assert.equal(answer.status, 405, method);
    assert.equal(answer.allow, "GET, HEAD, OPTIONS", method);
    assert.match(answer.body, /"code":"HTTP_METHOD_NOT_ALLOWED"/);
    assert.match(answer.body, new RegExp(`${method} is not a method of /status: it takes GET, HEAD, OPTIONS`));
  }
  const options = await call(openPort, "OPTIONS", "/status");
  assert.deepEqual([options.status, options.allow, options.body], [204, "GET, HEAD, OPTIONS", ""]);
  assert.equal((await call(openPort, "HEAD", "/status")).status, 200);
});

test("a path a prefix handler serves with other methods is answered 405 with its methods; HEAD is its GET without the body", async () => {
  for (const path of ["/sinks/warehouse/query", "/sinks/warehouse/halted/retry", "/sources/pg/halted/skip"]) {
    const answer = await call(openPort, "GET", path);
    assert.deepEqual([answer.status, answer.allow], [405, "OPTIONS, POST"], path);
    const options = await call(openPort, "OPTIONS", path);
    assert.deepEqual([options.status, options.allow], [204, "OPTIONS, POST"], path);
  }
  const deleted = await call(openPort, "DELETE", "/sources/pg/snapshots");
  assert.deepEqual([deleted.status, deleted.allow], [405, "GET, HEAD, OPTIONS, POST"]);
  const head = await fetch(`http://127.0.0.1:${openPort}/sources/pg/snapshots`, { method: "HEAD" });
  const get = await fetch(`http://127.0.0.1:${openPort}/sources/pg/snapshots`);
  assert.equal(head.status, 200);
  assert.equal(await head.text(), "");
  assert.equal(head.headers.get("content-length"), String((await get.text()).length));
});

test("a path no handler serves is still 404, whatever the method", async () => {
  for (const method of ["GET", "POST", "OPTIONS", "HEAD"]) {
    assert.equal((await call(openPort, method, "/nowhere")).status, 404, method);
    assert.equal((await call(openPort, method, "/sinks/warehouse/nothing")).status, 404, method);
    assert.equal((await call(openPort, method, "/status/")).status, 404, method);
  }
});

test("the schema registry's 405 carries Allow, OPTIONS is 204, HEAD is its GET", async () => {
  const patch = await call(openPort, "PATCH", "/registry/subjects");
  assert.deepEqual([patch.status, patch.allow], [405, "GET, HEAD, OPTIONS"]);
  assert.match(patch.body, /"error_code":405/);
  const options = await call(openPort, "OPTIONS", "/registry/config");
  assert.deepEqual([options.status, options.allow], [204, "DELETE, GET, HEAD, OPTIONS, PUT"]);
  assert.equal((await call(openPort, "HEAD", "/registry/subjects")).status, 200);
  assert.deepEqual([(await call(openPort, "POST", "/registry")).status, (await call(openPort, "POST", "/registry")).allow], [405, "GET, HEAD, OPTIONS"]);
});

test("with tokens, a public path's other methods are 405 without a credential; other paths still need one before their methods are told", async () => {
  for (const port of [guardedPort, publicPort]) {
    const answer = await call(port, "POST", "/healthz");
    assert.deepEqual([answer.status, answer.allow], [405, "GET, HEAD, OPTIONS"], `port ${port}`);
  }
  assert.equal((await call(guardedPort, "PUT", "/status")).status, 401);
  assert.equal((await call(guardedPort, "GET", "/sinks/warehouse/query")).status, 401);
  const authorized = { authorization: `Bearer ${ADMIN}` };
  assert.deepEqual([(await call(guardedPort, "PUT", "/status", authorized)).status, (await call(guardedPort, "PUT", "/status", authorized)).allow], [405, "GET, HEAD, OPTIONS"]);
  assert.equal((await call(publicPort, "PUT", "/status", authorized)).status, 404, "the public listener serves no other path");
});

test("OPTIONS needs the read scope, as a GET: the read token is told a path's methods (it was 403 while GET /status was 200)", async () => {
  const read = { authorization: `Bearer ${READ}` };
  assert.equal((await call(guardedPort, "GET", "/status", read)).status, 200);
  const options = await call(guardedPort, "OPTIONS", "/status", read);
  assert.deepEqual([options.status, options.allow], [204, "GET, HEAD, OPTIONS"]);
  const snapshots = await call(guardedPort, "OPTIONS", "/sources/pg/snapshots", read);
  assert.deepEqual([snapshots.status, snapshots.allow], [204, "GET, HEAD, OPTIONS, POST"]);
  assert.equal((await call(guardedPort, "OPTIONS", "/status")).status, 401, "still not without a token");
  assert.equal((await call(guardedPort, "PUT", "/status", read)).status, 403, "other methods stay admin");
  assert.equal((await call(guardedPort, "POST", "/sources/pg/snapshots", read)).status, 403);
});
