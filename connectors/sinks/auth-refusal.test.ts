/**
 * The sinks type their server's refusal of the login or of the user's rights as SINK_AUTH_FAILED, the code the sink
 * runner waits out once the sink ran (sink-runner-auth.test.ts): ClickHouse's error codes 192-194 and 516 (answered
 * here by a fake server, as 18.16 words them) naming the user and never the password; Elasticsearch's 401, and its
 * 403 security_exception (privileges narrowed), while another 403 (a cluster block) stays what it was. A password
 * given by password_file is read again at each open (a new connection), so a rotated file is taken at the reconnect.
 */
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { loadConfigFile } from "../../config/load.ts";
import { ClickHouseConnection } from "../clickhouse/connection.ts";
import { ElasticsearchSink } from "../elasticsearch/elasticsearch-sink.ts";
import type { ElasticsearchSinkConfig } from "../elasticsearch/config.ts";
import type { ClickHouseSinkConfig } from "../clickhouse/config.ts";
import { requestError } from "../elasticsearch/bulk.ts";
import { SluiceError } from "../errors.ts";
import { silent } from "../../daemon/sink-runner-test-support.ts";
import { AUTH_FAILED } from "./errors.ts";

test("ClickHouse's wrong-password error: SINK_AUTH_FAILED naming the server and the user, never the password", async () => {
  const server = createServer((_request, response) => {
    response.writeHead(500, { "content-type": "text/plain" });
    response.end("Code: 193, e.displayText() = DB::Exception: Wrong password for user sluice_writer, e.what() = DB::Exception\n");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const config = { name: "warehouse", url: `http://127.0.0.1:${port}`, database: "default", user: "sluice_writer", password: "s3cret-old", retry: { initial: 1, max: 2 } } as unknown as ClickHouseSinkConfig;
  const connection = new ClickHouseConnection(config, silent);
  try {
    const error = await connection.version(new AbortController().signal).then(
      () => assert.fail("the server refused the login"),
      (failure: unknown) => failure,
    );
    assert.ok(error instanceof SluiceError);
    assert.equal(error.code, AUTH_FAILED);
    assert.equal(error.retriable, false, "the runner, not the connection, decides whether it is waited out");
    assert.match(error.message, new RegExp(`^ClickHouse http://127\\.0\\.0\\.1:${port} refused the sink's login as user "sluice_writer" \\(error 193\\)`));
    assert.doesNotMatch(error.message, /s3cret/);
  } finally {
    await connection.close();
    server.close();
  }
});

const esError = (statusCode: number, type: string) => Object.assign(new Error(`${type}: refused`), { name: "ResponseError", meta: { statusCode, body: { error: { type } } } });

test("Elasticsearch: 401 and a 403 security_exception are SINK_AUTH_FAILED; a 403 cluster block is not", () => {
  const unauthenticated = requestError(esError(401, "security_exception"), "search", "bulk", "http://127.0.0.1:9200");
  assert.equal((unauthenticated as SluiceError).code, AUTH_FAILED);
  const forbidden = requestError(esError(403, "security_exception"), "search", "bulk", "http://127.0.0.1:9200");
  assert.equal((forbidden as SluiceError).code, AUTH_FAILED);
  assert.match(forbidden.message, /^Elasticsearch http:\/\/127\.0\.0\.1:9200 refused the sink's user the right to run bulk \(403\)/);
  const blocked = requestError(esError(403, "cluster_block_exception"), "search", "bulk", "http://127.0.0.1:9200");
  assert.equal((blocked as SluiceError).code, "SINK_REQUEST_FAILED");
});

test("a ClickHouse sink's password_file is read again by each new connection: the rotated password is sent at the reconnect", async () => {
  const keys: string[] = [];
  const server = createServer((request, response) => {
    const key = String(request.headers["x-clickhouse-key"] ?? Buffer.from(String(request.headers.authorization ?? "").replace(/^Basic /, ""), "base64").toString().split(":")[1]);
    keys.push(key);
    if (key === "rotated-pw") {
      response.writeHead(200, { "content-type": "text/tab-separated-values" });
      response.end("18.16.1\n");
      return;
    }
    response.writeHead(500, { "content-type": "text/plain" });
    response.end("Code: 193, e.displayText() = DB::Exception: Wrong password for user sluice_writer, e.what() = DB::Exception\n");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const dir = mkdtempSync(join(tmpdir(), "sluice-secret-file-"));
  writeFileSync(join(dir, "ch-password"), "first-pw\n");
  writeFileSync(
    join(dir, "c.yaml"),
    `name: shop\nsources:\n  - name: pg\n    kind: postgres\n    database: app\n    user: u\n    tables: [public.t]\nsinks:\n  - name: warehouse\n    kind: clickhouse\n    url: http://127.0.0.1:${port}\n    user: sluice_writer\n    password_file: ch-password\n`,
  );
  const config = loadConfigFile(join(dir, "c.yaml"), { env: {} }).sinks[0] as ClickHouseSinkConfig;
  assert.equal(config.password, "first-pw");
  const version = async () => {
    const connection = new ClickHouseConnection(config, silent);
    try {
      return await connection.version(new AbortController().signal);
    } finally {
      await connection.close();
    }
  };
  try {
    await assert.rejects(version(), (error: unknown) => error instanceof SluiceError && error.code === AUTH_FAILED);
    writeFileSync(join(dir, "ch-password"), "rotated-pw\n");
    assert.equal(await version(), "18.16.1");
    assert.deepEqual(keys, ["first-pw", "rotated-pw"]);
  } finally {
    server.close();
  }
});

test("an Elasticsearch sink's api_key_file is read again at each open: the rotated key is sent when it opens again", async () => {
  const sent: string[] = [];
  const server = createServer((request, response) => {
    sent.push(String(request.headers.authorization));
    response.writeHead(401, { "content-type": "application/json", "x-elastic-product": "Elasticsearch" });
    response.end(JSON.stringify({ error: { type: "security_exception", reason: "unable to authenticate with provided credentials" }, status: 401 }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const dir = mkdtempSync(join(tmpdir(), "sluice-secret-file-"));
  writeFileSync(join(dir, "es-key"), "Zmlyc3Qta2V5\n");
  writeFileSync(
    join(dir, "c.yaml"),
    `name: shop\nsources:\n  - name: pg\n    kind: postgres\n    database: app\n    user: u\n    tables: [public.t]\nsinks:\n  - name: search\n    kind: elasticsearch\n    nodes: [http://127.0.0.1:${port}]\n    api_key_file: es-key\n`,
  );
  const sink = new ElasticsearchSink(loadConfigFile(join(dir, "c.yaml"), { env: {} }).sinks[0] as ElasticsearchSinkConfig, { logger: silent });
  const refused = (error: unknown) => error instanceof SluiceError && error.code === AUTH_FAILED;
  try {
    await assert.rejects(sink.open(new AbortController().signal), refused);
    writeFileSync(join(dir, "es-key"), "cm90YXRlZC1rZXk=\n");
    await assert.rejects(sink.open(new AbortController().signal), refused);
    assert.deepEqual([...new Set(sent)], ["ApiKey Zmlyc3Qta2V5", "ApiKey cm90YXRlZC1rZXk="]);
  } finally {
    await sink.close();
    server.close();
  }
});
