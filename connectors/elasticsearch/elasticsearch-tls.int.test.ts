/**
 * The Elasticsearch sink against a private Elasticsearch with its security module on (TLS on HTTP
 * with a required client certificate, basic auth; test/services/tls-sinks.ts): rows are applied
 * through the secure connection, and a wrong CA, a missing client certificate, a wrong password
 * or an unknown API key fail at once with a permanent error naming Elasticsearch and the node.
 * One server for the whole file (it takes the better part of a minute to start).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import type { SinkConfig } from "../../config/schema.ts";
import { makeCa } from "../../test/services/tls.ts";
import { startTlsElasticsearch } from "../../test/services/tls-sinks.ts";
import type { SecureElasticsearch } from "../../test/services/tls-sinks.ts";
import { SluiceError } from "../errors.ts";
import { TARGET_TEMPLATE } from "../sinks/conformance.ts";
import { renderTarget } from "../sinks/naming.ts";
import { testLogger, testSinkConfig } from "../sinks/test-config.ts";
import { Events, randomTableName, tableSchema } from "../sinks/test-events.ts";
import { ElasticsearchSink } from "./elasticsearch-sink.ts";

type ElasticsearchConfig = Extract<SinkConfig, { kind: "elasticsearch" }>;
const signal = () => AbortSignal.timeout(60_000);

describe("Elasticsearch sink with security on (HTTPS, client certificate, basic auth)", { timeout: 600_000 }, () => {
  let es: SecureElasticsearch;
  let otherCaDir: string;
  let otherCaFile: string;
  let url: string;

  before(async () => {
    es = await startTlsElasticsearch({ requireClientCert: true });
    url = `https://${es.host}:${es.port}`;
    otherCaDir = mkdtempSync("/var/tmp/sluice-other-ca-");
    otherCaFile = (await makeCa(otherCaDir, "other")).caFile;
  });
  after(async () => {
    await es?.stop();
    if (otherCaDir) rmSync(otherCaDir, { recursive: true, force: true });
  });

  function config(overrides: Partial<ElasticsearchConfig> = {}): ElasticsearchConfig {
    return testSinkConfig("elasticsearch", {
      name: `es_tls_${randomTableName("s")}`,
      nodes: [url],
      username: es.user,
      password: es.password,
      tls: { ca_file: es.ca.caFile, cert_file: es.client.certFile, key_file: es.client.keyFile },
      bulk_bytes: 5 * 2 ** 20,
      target: TARGET_TEMPLATE,
      ...overrides,
    });
  }

  /** Opening the sink must fail without retrying until the deadline; returns the error. */
  async function openFailure(sinkConfig: ElasticsearchConfig): Promise<SluiceError> {
    const sink = new ElasticsearchSink(sinkConfig, { logger: testLogger() });
    const deadline = AbortSignal.timeout(60_000);
    const error = await sink.open(deadline).then(
      () => null,
      (e: unknown) => e,
    );
    await sink.close().catch(() => undefined);
    assert.ok(error instanceof SluiceError, `expected a SluiceError, got ${String(error)}`);
    assert.equal(deadline.aborted, false, "failed at once, not after retrying");
    assert.equal(error.retriable, false, `${error.code}: ${error.message}`);
    return error;
  }

  test("applies rows over HTTPS with the CA file, a client certificate and basic auth", async () => {
    const sink = new ElasticsearchSink(config(), { logger: testLogger(), refresh: true });
    await sink.open(signal());
    const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
    try {
      await sink.write([events.insert(1n, { id: 1, v: "over tls" }), events.insert(2n, { id: 2, v: "second" }), events.delete(3n, { id: 2 })], signal());
    } finally {
      await sink.close();
    }
    const alias = renderTarget(TARGET_TEMPLATE, events.schema).toLowerCase();
    const answer = await es.request("POST", `/${alias}/_search`, { query: { match_all: {} } });
    assert.equal(answer.status, 200, JSON.stringify(answer.json));
    const hits = (answer.json as { hits: { hits: { _source: { id: number; v: string } }[] } }).hits.hits;
    assert.deepEqual(hits.map((h) => [h._source.id, h._source.v]), [[1, "over tls"]]);
  });

  test("a CA that did not sign the node's certificate: SINK_TLS_FAILED naming Elasticsearch and the node", async () => {
    const error = await openFailure(config({ tls: { ca_file: otherCaFile, cert_file: es.client.certFile, key_file: es.client.keyFile } }));
    assert.equal(error.code, "SINK_TLS_FAILED", error.message);
    assert.match(error.message, new RegExp(`^Elasticsearch ${url}: certificate verify failed`));
    assert.match(error.message, /tls\.ca_file/);
  });

  test("no client certificate where the node requires one: SINK_TLS_FAILED", async () => {
    const error = await openFailure(config({ tls: { ca_file: es.ca.caFile } }));
    assert.equal(error.code, "SINK_TLS_FAILED", error.message);
    assert.match(error.message, new RegExp(`^Elasticsearch ${url}: TLS handshake failed`));
  });

  test("a wrong password: SINK_AUTH_FAILED naming Elasticsearch and the node, without the password", async () => {
    const error = await openFailure(config({ password: "wrong-password-value" }));
    assert.equal(error.code, "SINK_AUTH_FAILED", error.message);
    assert.match(error.message, new RegExp(`^Elasticsearch ${url} refused the sink's credentials \\(401\\)`));
    assert.doesNotMatch(error.message, /wrong-password-value/);
  });

  test("an API key Elasticsearch does not know: SINK_AUTH_FAILED (the key is sent instead of basic auth)", async () => {
    const { username: _u, password: _p, ...withoutBasic } = config();
    const key = Buffer.from("unknown-id:unknown-api-key-value").toString("base64");
    const error = await openFailure({ ...withoutBasic, api_key: key });
    assert.equal(error.code, "SINK_AUTH_FAILED", error.message);
    assert.match(error.message, /api_key/);
    assert.doesNotMatch(error.message, new RegExp(key));
  });
});
