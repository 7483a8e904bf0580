import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { isRetriable } from "../connectors/errors.ts";
import { LocalRegistry } from "./local-registry.ts";
import { openMemoryStore } from "./log-store.ts";
import { IncompatibleSchemaError, RegistryError } from "./registry-errors.ts";
import { RemoteRegistry } from "./remote-registry.ts";
import { createRegistryHandler } from "./rest-handler.ts";

const V1 = { type: "record", name: "R", fields: [{ name: "a", type: "int" }] };
const V2 = { type: "record", name: "R", fields: [{ name: "a", type: "int" }, { name: "b", type: "int", default: 0 }] };

/** A real registry behind a server that counts requests and can be told to misbehave. */
class TestServer {
  readonly requests: string[] = [];
  mode: "normal" | "unavailable" | "slow" | "stalled-body" | "cut-body" = "normal";
  private server: Server | undefined;
  url = "";

  async start(authToken?: string): Promise<void> {
    const handler = createRegistryHandler({ registry: new LocalRegistry(await openMemoryStore()), ...(authToken ? { authToken } : {}) });
    this.server = createServer((req: IncomingMessage, res: ServerResponse) => {
      this.requests.push(`${req.method} ${req.url}`);
      if (this.mode === "unavailable") {
        res.writeHead(503, { "content-type": "application/json" });
        res.end(JSON.stringify({ error_code: 50003, message: "leader unavailable" }));
        return;
      }
      if (this.mode === "slow") return;
      if (this.mode === "stalled-body" || this.mode === "cut-body") {
        // The answer's head, then part of its body, then nothing more (or the connection cut).
        res.writeHead(200, { "content-type": "application/json", "content-length": "100" });
        res.write('["r-val');
        if (this.mode === "cut-body") setTimeout(() => res.destroy(), 20);
        return;
      }
      void handler(req, res);
    });
    await new Promise<void>((resolve) => this.server?.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((resolve) => this.server?.close(resolve));
  }
}

describe("RemoteRegistry", () => {
  const server = new TestServer();
  before(() => server.start());
  after(() => server.stop());

  it("implements the SchemaRegistry interface over the REST API", async () => {
    const registry = new RemoteRegistry({ url: `${server.url}/` });
    const id = await registry.register("r-value", V1);
    assert.equal(await registry.register("r-value", V2), id + 1);
    assert.match(await registry.getById(id), /"name":"R"/);
    assert.deepEqual(await registry.getLatest("r-value"), { subject: "r-value", version: 2, id: id + 1, schema: await registry.getById(id + 1) });
    assert.equal((await registry.getVersion("r-value", 1))?.id, id);
    assert.equal(await registry.getVersion("r-value", 7), null);
    assert.equal(await registry.getLatest("nobody"), null);
    assert.deepEqual(await registry.listSubjects(), ["r-value"]);
    assert.deepEqual(await registry.listVersions("r-value"), [1, 2]);
    assert.deepEqual(await registry.listVersions("nobody"), []);
    assert.equal(await registry.getCompatibilityLevel("r-value"), "BACKWARD");
    const report = await registry.checkCompatibility("r-value", { type: "record", name: "R", fields: [{ name: "a", type: "string" }] });
    assert.equal(report.compatible, false);
    assert.match(report.messages[0] ?? "", /field `a`: writer type int cannot be read as string/);
  });

  it("caches schemas by id and repeated registrations", async () => {
    const registry = new RemoteRegistry({ url: server.url });
    const id = await registry.register("cache-value", V1);
    const before = server.requests.length;
    await registry.register("cache-value", V1);
    await registry.getById(id);
    await registry.getById(id);
    assert.equal(server.requests.length - before, 1, "one GET for the id, nothing for the repeated registration");
  });

  it("keeps at most cacheSize schemas", async () => {
    const registry = new RemoteRegistry({ url: server.url, cacheSize: 1 });
    const a = await registry.register("bounded-a-value", '"int"');
    const b = await registry.register("bounded-b-value", '"string"');
    const before = server.requests.length;
    await registry.getById(a);
    await registry.getById(b);
    await registry.getById(a);
    assert.equal(server.requests.length - before, 3, "a was evicted by b");
  });

  it("reports an incompatible schema with the reasons, not retriable", async () => {
    const registry = new RemoteRegistry({ url: server.url });
    await registry.register("strict-value", V1);
    const error = await registry.register("strict-value", { type: "record", name: "R", fields: [{ name: "a", type: "string" }] }).catch((e: unknown) => e);
    assert.ok(error instanceof IncompatibleSchemaError);
    assert.equal(isRetriable(error), false);
    assert.equal(error.code, "SCHEMA_INCOMPATIBLE");
    assert.match(error.messages[0] ?? "", /field `a`: writer type int cannot be read as string \(TYPE_MISMATCH/);
  });

  it("maps 4xx answers to non-retriable errors with Confluent's code", async () => {
    const registry = new RemoteRegistry({ url: server.url });
    const notFound = await registry.getById(424242).catch((e: unknown) => e);
    assert.ok(notFound instanceof RegistryError);
    assert.equal(notFound.kind, "SCHEMA_NOT_FOUND");
    assert.equal(notFound.errorCode, 40403);
    assert.equal(notFound.retriable, false);
    const invalid = await registry.register("x-value", '{"type":"nope"}').catch((e: unknown) => e);
    assert.ok(invalid instanceof RegistryError);
    assert.equal(invalid.kind, "INVALID_SCHEMA");
    assert.equal(invalid.retriable, false);
  });

  it("maps 5xx answers to retriable errors", async () => {
    server.mode = "unavailable";
    try {
      const error = await new RemoteRegistry({ url: server.url }).listSubjects().catch((e: unknown) => e);
      assert.ok(error instanceof RegistryError);
      assert.equal(error.retriable, true);
      assert.equal(error.errorCode, 50003);
      assert.match(error.message, /leader unavailable/);
    } finally {
      server.mode = "normal";
    }
  });

  it("times out, retriably", async () => {
    server.mode = "slow";
    try {
      const error = await new RemoteRegistry({ url: server.url, timeoutMs: 100 }).listSubjects().catch((e: unknown) => e);
      assert.ok(error instanceof RegistryError);
      assert.equal(error.kind, "UNAVAILABLE");
      assert.equal(error.retriable, true);
      assert.match(error.message, /no answer within 100 ms/);
    } finally {
      server.mode = "normal";
    }
  });

  it("times out retriably, and does not throw the fetch's own TimeoutError, when the body stops coming after the head", async () => {
    for (const mode of ["stalled-body", "cut-body"] as const) {
      server.mode = mode;
      try {
        const error = await new RemoteRegistry({ url: server.url, timeoutMs: 200 }).listSubjects().catch((e: unknown) => e);
        assert.ok(error instanceof RegistryError, `${mode}: ${String(error)}`);
        assert.equal(error.kind, "UNAVAILABLE", mode);
        assert.ok(isRetriable(error), mode);
        assert.match(error.message, /GET \/subjects/, mode);
      } finally {
        server.mode = "normal";
      }
    }
  });

  it("reports a refused connection as retriable", async () => {
    const closed = new TestServer();
    await closed.start();
    await closed.stop();
    const error = await new RemoteRegistry({ url: closed.url }).getById(1).catch((e: unknown) => e);
    assert.ok(error instanceof RegistryError);
    assert.equal(error.retriable, true);
    assert.match(error.message, /unreachable.*ECONNREFUSED/);
  });
});

describe("RemoteRegistry authentication", () => {
  const server = new TestServer();
  before(() => server.start("t0ken"));
  after(() => server.stop());

  it("sends a bearer token or basic credentials", async () => {
    assert.deepEqual(await new RemoteRegistry({ url: server.url, auth: { bearerToken: "t0ken" } }).listSubjects(), []);
    assert.deepEqual(await new RemoteRegistry({ url: server.url, auth: { username: "svc", password: "t0ken" } }).listSubjects(), []);
    const denied = await new RemoteRegistry({ url: server.url, auth: { bearerToken: "wrong" } }).listSubjects().catch((e: unknown) => e);
    assert.ok(denied instanceof RegistryError);
    assert.equal(denied.kind, "UNAUTHORIZED");
    assert.equal(denied.retriable, false);
  });
});
