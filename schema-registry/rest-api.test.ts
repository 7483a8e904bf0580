/**
 * The REST API over HTTP: Confluent's status codes, error codes and body shapes, including for bad input.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { LocalRegistry } from "./local-registry.ts";
import { openMemoryStore } from "./log-store.ts";
import { createRegistryHandler } from "./rest-handler.ts";
import { startRegistryServer } from "./rest-server.ts";
import type { RegistryServer } from "./rest-server.ts";
import { DaemonProcess, freePort } from "../test/deploy/daemon-process.ts";

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

describe("the daemon's registry API refuses bad and oversized schemas with 422 and 413, never 500 or a reset connection", () => {
  let daemon: DaemonProcess;
  let dir: string;
  let base: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "sluice-registry-api-"));
    const port = await freePort();
    const file = join(dir, "sluice.yaml");
    // The source is never reached (port 9): the daemon retries it and serves its HTTP API meanwhile.
    writeFileSync(
      file,
      `name: registry_api\nsources:\n  - {name: pg, kind: postgres, port: 9, database: app, user: u, tables: [public.t]}\n` +
        `topics: {kind: embedded, path: "${join(dir, "log.db")}"}\nhttp:\n  listen: "127.0.0.1:${port}"\n`,
    );
    daemon = new DaemonProcess(file);
    await daemon.waitForLine((line) => line.msg === "sluice started", 30_000);
    base = `http://127.0.0.1:${port}/registry`;
  });
  after(async () => {
    await daemon.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const register = async (subject: string, schema: unknown): Promise<Answer> => {
    const response = await fetch(`${base}/subjects/${subject}/versions`, {
      method: "POST",
      headers: { "content-type": CONTENT_TYPE },
      body: JSON.stringify({ schema: typeof schema === "string" ? schema : JSON.stringify(schema) }),
    });
    const text = await response.text();
    return { status: response.status, body: text === "" ? undefined : JSON.parse(text), contentType: response.headers.get("content-type") };
  };

  /** A POST on a connection of its own, read whole; a reset connection rejects. */
  const postOnNewConnection = (url: string, body: string): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const request = httpRequest(url, { method: "POST", agent: false, headers: { "content-type": CONTENT_TYPE } }, (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () => {
          const text = Buffer.concat(chunks).toString();
          resolve({ status: response.statusCode ?? 0, body: text === "" ? undefined : JSON.parse(text), contentType: response.headers["content-type"] ?? null });
        });
        response.on("error", reject);
      });
      request.on("error", reject);
      request.end(body);
    });

  it("refuses a decimal whose precision or scale makes no sense (42201), accepts a sound one", async () => {
    const decimal = (extra: Record<string, unknown>) => ({ type: "bytes", logicalType: "decimal", ...extra });
    await expectError(register("d1-value", decimal({ precision: -3, scale: 0 })), 422, 42201, /decimal precision -3 is not a whole number above 0/);
    await expectError(register("d2-value", decimal({ precision: 0 })), 422, 42201, /precision 0/);
    await expectError(register("d3-value", decimal({ precision: 2.5 })), 422, 42201, /precision 2\.5/);
    await expectError(register("d4-value", decimal({ scale: 2 })), 422, 42201, /precision undefined/);
    await expectError(register("d5-value", decimal({ precision: 3, scale: 5 })), 422, 42201, /scale 5 is not a whole number from 0 to the precision \(3\)/);
    await expectError(register("d6-value", decimal({ precision: 3, scale: -1 })), 422, 42201, /scale -1/);
    await expectError(register("d7-value", { type: "fixed", name: "F", size: 2, logicalType: "decimal", precision: 5 }), 422, 42201, /needs more than its 2 bytes \(at most 4 digits\)/);
    const inRecord = { type: "record", name: "Order", fields: [{ name: "price", type: decimal({ precision: 2, scale: 4 }) }] };
    await expectError(register("d8-value", inRecord), 422, 42201, /record "Order" field "price": decimal scale 4/);
    assert.equal((await register("d9-value", decimal({ precision: 10, scale: 2 }))).status, 200);
    assert.equal((await register("d10-value", { type: "fixed", name: "F", size: 2, logicalType: "decimal", precision: 4, scale: 4 })).status, 200);
  });

  it("refuses a schema nested deeper than it follows (42201), not a stack overflow", async () => {
    let nested = '"long"';
    for (let i = 0; i < 5_000; i++) nested = `{"type":"array","items":${nested}}`;
    await expectError(register("deep-value", nested), 422, 42201, /nest deeper than 100 levels/);
    let records = '"long"';
    for (let i = 0; i < 3_000; i++) records = `{"type":"record","name":"R${i}","fields":[{"name":"f","type":${records}}]}`;
    await expectError(register("deep-records-value", records), 422, 42201, /nest deeper than 100 levels/);
  });

  it("refuses a schema over the registry's size limit with 42201, and a body over the HTTP limit with 413 every time", async () => {
    const wide = { type: "record", name: "Wide", fields: Array.from({ length: 20_000 }, (_, i) => ({ name: `field_${i}`, type: ["null", "long"], default: null })) };
    const refused = await register("wide-value", wide);
    assert.equal(refused.status, 422, JSON.stringify(refused.body).slice(0, 300));
    await expectError(Promise.resolve(refused), 422, 42201, /the schema is \d+ bytes, more than the 524288 bytes this registry keeps/);
    for (const mib of [8, 100]) {
      const body = JSON.stringify({ schema: JSON.stringify({ type: "record", name: "Huge", doc: "x".repeat(mib * 2 ** 20), fields: [] }) });
      // A connection of its own per request: a pooled one the server closed while idle would fail the upload on the client's side.
      for (let attempt = 0; attempt < 3; attempt++) await expectError(postOnNewConnection(`${base}/subjects/huge-value/versions`, body), 413, 413, /4194304 bytes/);
    }
    assert.equal((await fetch(`${base}/subjects`)).status, 200, "the daemon still answers");
  });
});
