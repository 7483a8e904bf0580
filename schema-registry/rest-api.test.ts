/**
 * The REST API over HTTP: Confluent's status codes, error codes and body shapes, including for bad input.
 */
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { LocalRegistry } from "./local-registry.ts";
import { openMemoryStore } from "./log-store.ts";
import { createRegistryHandler } from "./rest-handler.ts";
import { startRegistryServer } from "./rest-server.ts";
import type { RegistryServer } from "./rest-server.ts";

const CONTENT_TYPE = "application/vnd.schemaregistry.v1+json";
const USER_V1 = { type: "record", name: "User", fields: [{ name: "id", type: "long" }] };
const USER_V2 = { type: "record", name: "User", fields: [{ name: "id", type: "long" }, { name: "name", type: "string", default: "" }] };

let server: RegistryServer;

interface Answer {
  readonly status: number;
  readonly body: unknown;
  readonly contentType: string | null;
}

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: { "content-type": CONTENT_TYPE, ...headers },
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, body: text === "" ? undefined : JSON.parse(text), contentType: response.headers.get("content-type") };
}

async function expectError(answer: Promise<Answer>, status: number, errorCode: number, message?: RegExp): Promise<void> {
  const { status: actualStatus, body } = await answer;
  assert.equal(actualStatus, status, JSON.stringify(body));
  const error = body as { error_code: number; message: string };
  assert.equal(error.error_code, errorCode, error.message);
  assert.equal(typeof error.message, "string");
  if (message) assert.match(error.message, message);
}

before(async () => {
  server = await startRegistryServer({ port: 0, store: await openMemoryStore() });
});
after(async () => {
  await server.close();
});

describe("REST API", () => {
  it("binds to loopback and answers with Confluent's content type", async () => {
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const answer = await call("GET", "/subjects");
    assert.equal(answer.status, 200);
    assert.equal(answer.contentType, CONTENT_TYPE);
    assert.deepEqual(answer.body, []);
  });

  it("registers, fetches and looks up schemas", async () => {
    const registered = await call("POST", "/subjects/users-value/versions", { schema: JSON.stringify(USER_V1) });
    assert.equal(registered.status, 200);
    const { id } = registered.body as { id: number };
    assert.equal(id, 1);
    assert.deepEqual((await call("POST", "/subjects/users-value/versions", { schema: JSON.stringify(USER_V1), schemaType: "AVRO" })).body, {
      id: 1,
      version: 1,
      schema: '{"type":"record","name":"User","fields":[{"name":"id","type":"long"}]}',
    });
    assert.deepEqual((await call("GET", "/subjects/users-value/versions")).body, [1]);
    assert.deepEqual((await call("GET", "/subjects/users-value/versions/latest")).body, {
      subject: "users-value",
      version: 1,
      id: 1,
      schema: '{"type":"record","name":"User","fields":[{"name":"id","type":"long"}]}',
    });
    assert.deepEqual((await call("GET", "/subjects/users-value/versions/1/schema")).body, USER_V1);
    assert.deepEqual((await call("GET", "/schemas/ids/1")).body, { schema: '{"type":"record","name":"User","fields":[{"name":"id","type":"long"}]}' });
    assert.deepEqual((await call("GET", "/schemas/ids/1/schema")).body, USER_V1);
    assert.deepEqual((await call("GET", "/schemas/ids/1/subjects")).body, ["users-value"]);
    assert.deepEqual((await call("GET", "/schemas/ids/1/versions")).body, [{ subject: "users-value", version: 1 }]);
    assert.deepEqual((await call("GET", "/schemas/types")).body, ["AVRO"]);
    const lookup = await call("POST", "/subjects/users-value", { schema: JSON.stringify(USER_V1) });
    assert.deepEqual((lookup.body as { version: number; id: number }).version, 1);
    assert.deepEqual((await call("GET", "/subjects/users-value/versions/1/referencedby")).body, []);
  });

  it("checks compatibility against a version or all, verbosely on request", async () => {
    const incompatible = { schema: JSON.stringify({ type: "record", name: "User", fields: [{ name: "id", type: "int" }] }) };
    assert.deepEqual((await call("POST", "/compatibility/subjects/users-value/versions/latest", { schema: JSON.stringify(USER_V2) })).body, { is_compatible: true });
    assert.deepEqual((await call("POST", "/compatibility/subjects/users-value/versions/1", incompatible)).body, { is_compatible: false });
    const verbose = (await call("POST", "/compatibility/subjects/users-value/versions?verbose=true", incompatible)).body as { is_compatible: boolean; messages: string[] };
    assert.equal(verbose.is_compatible, false);
    assert.match(verbose.messages[0] ?? "", /field `id`: writer type long cannot be read as int \(TYPE_MISMATCH at \/fields\/0\/type/);
  });

  it("reads and sets compatibility levels and modes", async () => {
    assert.deepEqual((await call("GET", "/config")).body, { compatibilityLevel: "BACKWARD" });
    await expectError(call("GET", "/config/users-value"), 404, 40408);
    assert.deepEqual((await call("GET", "/config/users-value?defaultToGlobal=true")).body, { compatibilityLevel: "BACKWARD" });
    assert.deepEqual((await call("PUT", "/config/users-value", { compatibility: "FULL" })).body, { compatibility: "FULL" });
    assert.deepEqual((await call("GET", "/config/users-value")).body, { compatibilityLevel: "FULL" });
    assert.deepEqual((await call("DELETE", "/config/users-value")).body, { compatibilityLevel: "FULL" });
    assert.deepEqual((await call("GET", "/mode")).body, { mode: "READWRITE" });
    assert.deepEqual((await call("PUT", "/mode/frozen-value", { mode: "READONLY" })).body, { mode: "READONLY" });
    assert.deepEqual((await call("GET", "/mode/frozen-value")).body, { mode: "READONLY" });
    await expectError(call("POST", "/subjects/frozen-value/versions", { schema: '"int"' }), 422, 42205, /read-only/);
    assert.deepEqual((await call("DELETE", "/mode/frozen-value")).body, { mode: "READONLY" });
    await expectError(call("GET", "/mode/frozen-value"), 404, 40409);
  });

  it("answers bad input with Confluent's status and error code", async () => {
    await expectError(call("POST", "/subjects/bad/versions", { schema: '{"type": "record", "name": "R", "fields": [' }), 422, 42201, /not valid JSON/);
    await expectError(call("POST", "/subjects/bad/versions", { schema: JSON.stringify({ type: "record", name: "R", fields: [{ name: "a", type: "int", default: "zero" }] }) }), 422, 42201, /default value "zero"/);
    await expectError(
      call("POST", "/subjects/bad/versions", { schema: JSON.stringify({ type: "record", name: "R", fields: [{ name: "a", type: "int" }, { name: "a", type: "int" }] }) }),
      422,
      42201,
      /declared twice/,
    );
    await expectError(
      call("POST", "/subjects/bad/versions", { schema: JSON.stringify({ type: "record", name: "R", fields: [{ name: "a", type: { type: "enum", name: "R", symbols: ["X"] } }] }) }),
      422,
      42201,
      /defined twice/,
    );
    await expectError(call("POST", "/subjects/bad/versions", { schema: "syntax = 'proto3';", schemaType: "PROTOBUF" }), 422, 42201, /Invalid schema type PROTOBUF/);
    await expectError(call("POST", "/subjects/bad/versions", {}), 422, 42201, /Empty schema/);
    await expectError(call("POST", "/subjects/bad/versions", "{not json"), 400, 400);
    await expectError(call("POST", "/subjects/bad/versions", "[1]"), 422, 422);
    await expectError(call("POST", "/subjects/bad/versions", { schema: '"int"' }, { "content-type": "text/plain" }), 415, 415);
    await expectError(call("GET", "/subjects/nobody/versions"), 404, 40401, /Subject 'nobody' not found/);
    await expectError(call("GET", "/subjects/nobody/versions/1"), 404, 40401);
    await expectError(call("GET", "/subjects/users-value/versions/99"), 404, 40402, /Version 99 not found/);
    await expectError(call("GET", "/subjects/users-value/versions/abc"), 422, 42202);
    await expectError(call("GET", "/subjects/users-value/versions/0"), 422, 42202);
    await expectError(call("GET", "/schemas/ids/999"), 404, 40403, /Schema 999 not found/);
    await expectError(call("POST", "/subjects/users-value", { schema: '"string"' }), 404, 40403);
    await expectError(call("PUT", "/config", { compatibility: "SIDEWAYS" }), 422, 42203);
    await expectError(call("PUT", "/mode", { mode: "SOMETIMES" }), 422, 42204);
    await expectError(call("PATCH", "/subjects"), 405, 405);
    await expectError(call("GET", "/subjects/a/b/c/d/e"), 404, 404);
  });

  it("rejects an incompatible registration with 409", async () => {
    await call("POST", "/subjects/strict-value/versions", { schema: JSON.stringify(USER_V1) });
    await expectError(
      call("POST", "/subjects/strict-value/versions", { schema: JSON.stringify({ type: "record", name: "User", fields: [{ name: "id", type: "string" }] }) }),
      409,
      409,
      /incompatible with an earlier schema for subject "strict-value".*field `id`: writer type long cannot be read as string/,
    );
  });

  it("deletes softly, then permanently, with Confluent's errors in between", async () => {
    await call("POST", "/subjects/temp-value/versions", { schema: JSON.stringify(USER_V1) });
    await call("POST", "/subjects/temp-value/versions", { schema: JSON.stringify(USER_V2) });
    await expectError(call("DELETE", "/subjects/temp-value?permanent=true"), 404, 40405);
    await expectError(call("DELETE", "/subjects/temp-value/versions/1?permanent=true"), 404, 40407);
    assert.deepEqual((await call("DELETE", "/subjects/temp-value/versions/1")).body, 1);
    await expectError(call("DELETE", "/subjects/temp-value/versions/1"), 404, 40406);
    assert.deepEqual((await call("DELETE", "/subjects/temp-value")).body, [2]);
    await expectError(call("DELETE", "/subjects/temp-value"), 404, 40404);
    assert.ok(!((await call("GET", "/subjects")).body as string[]).includes("temp-value"));
    assert.ok(((await call("GET", "/subjects?deleted=true")).body as string[]).includes("temp-value"));
    assert.deepEqual((await call("GET", "/subjects/temp-value/versions?deleted=true")).body, [1, 2]);
    assert.deepEqual((await call("DELETE", "/subjects/temp-value?permanent=true")).body, [1, 2]);
    await expectError(call("GET", "/subjects/temp-value/versions?deleted=true"), 404, 40401);
  });

  it("handles subjects with characters that need escaping", async () => {
    const subject = "weird/subject name-value";
    assert.equal((await call("POST", `/subjects/${encodeURIComponent(subject)}/versions`, { schema: '"string"' })).status, 200);
    assert.ok(((await call("GET", "/subjects")).body as string[]).includes(subject));
  });
});

describe("REST API authentication", () => {
  let secured: RegistryServer;
  before(async () => {
    secured = await startRegistryServer({ port: 0, store: await openMemoryStore(), authToken: "s3cret" });
  });
  after(async () => {
    await secured.close();
  });

  it("answers 401 with a Confluent-style body without the token, 200 with it", async () => {
    const denied = await fetch(`${secured.url}/subjects`);
    assert.equal(denied.status, 401);
    assert.deepEqual(await denied.json(), { error_code: 401, message: "Unauthorized" });
    assert.equal((await fetch(`${secured.url}/subjects`, { headers: { authorization: "Bearer wrong" } })).status, 401);
    assert.equal((await fetch(`${secured.url}/subjects`, { headers: { authorization: "Bearer s3cret" } })).status, 200);
    const basic = `Basic ${Buffer.from("anyone:s3cret").toString("base64")}`;
    assert.equal((await fetch(`${secured.url}/subjects`, { headers: { authorization: basic } })).status, 200);
  });
});

describe("registry handler mounting", () => {
  it("serves under a prefix and leaves other paths to the host server", async () => {
    const handler = createRegistryHandler({ registry: new LocalRegistry(await openMemoryStore()), prefix: "/schema-registry" });
    const host = createServer((req, res) => {
      void handler(req, res).then((handled) => {
        if (!handled) {
          res.writeHead(299);
          res.end("daemon");
        }
      });
    });
    await new Promise<void>((resolve) => host.listen(0, "127.0.0.1", resolve));
    const base = `http://127.0.0.1:${(host.address() as AddressInfo).port}`;
    try {
      assert.equal((await fetch(`${base}/schema-registry/subjects`)).status, 200);
      assert.deepEqual(await (await fetch(`${base}/schema-registry`)).json(), {});
      assert.equal((await fetch(`${base}/metrics`)).status, 299);
      assert.equal((await fetch(`${base}/subjects`)).status, 299, "only the prefixed paths are the registry's");
      assert.equal((await fetch(`${base}/schema-registry/unknown`)).status, 404);
    } finally {
      await new Promise((resolve) => host.close(resolve));
    }
  });

  it("at root, claims only the registry's paths", async () => {
    const handler = createRegistryHandler({ registry: new LocalRegistry(await openMemoryStore()) });
    const host = createServer((req, res) => {
      void handler(req, res).then((handled) => {
        if (!handled) {
          res.writeHead(299);
          res.end();
        }
      });
    });
    await new Promise<void>((resolve) => host.listen(0, "127.0.0.1", resolve));
    const base = `http://127.0.0.1:${(host.address() as AddressInfo).port}`;
    try {
      assert.equal((await fetch(`${base}/healthz`)).status, 299);
      assert.equal((await fetch(`${base}/`)).status, 299);
      assert.equal((await fetch(`${base}/config`)).status, 200);
    } finally {
      await new Promise((resolve) => host.close(resolve));
    }
  });
});
