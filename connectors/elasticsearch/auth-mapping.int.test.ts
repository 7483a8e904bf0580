/**
 * A mapping change the server refuses for the sink's credentials (401, or 403 security_exception: the key revoked,
 * a privilege taken away just when a table gains a column) is the sink's outage, thrown as SINK_AUTH_FAILED for the
 * runtime to wait out, not a mapping refusal that halts the table. Against the shared Elasticsearch, behind a proxy
 * that refuses only the put-mapping request (the shared server has no security module).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createServer, request } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { Client } from "@elastic/elasticsearch";
import { elasticsearch } from "../../test/services/ports.ts";
import { SluiceError } from "../errors.ts";
import { AUTH_FAILED } from "../sinks/errors.ts";
import { testLogger, testSinkConfig } from "../sinks/test-config.ts";
import { Events, randomTableName, tableSchema } from "../sinks/test-events.ts";
import { ElasticsearchSink } from "./elasticsearch-sink.ts";

test("a put-mapping refused with 403 security_exception fails the write with SINK_AUTH_FAILED, not the table's mapping refusal", async () => {
  const upstream = new URL(elasticsearch.url);
  let refuseMappings = false;
  const proxy = createServer((incoming, outgoing) => {
    if (refuseMappings && incoming.method === "PUT" && /\/_mapping(\?|$)/.test(incoming.url ?? "")) {
      incoming.resume();
      outgoing.writeHead(403, { "content-type": "application/json", "x-elastic-product": "Elasticsearch" });
      outgoing.end(JSON.stringify({ error: { type: "security_exception", reason: "action [indices:admin/mapping/put] is unauthorized for API key id [k1] of user [sluice]" }, status: 403 }));
      return;
    }
    const forward = request({ host: upstream.hostname, port: upstream.port, method: incoming.method, path: incoming.url, headers: incoming.headers }, (answer) => {
      outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(outgoing);
    });
    forward.on("error", () => outgoing.destroy());
    incoming.pipe(forward);
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  const { port } = proxy.address() as AddressInfo;
  const prefix = `sluice_auth_${randomBytes(3).toString("hex")}`;
  const sink = new ElasticsearchSink(testSinkConfig("elasticsearch", { name: `es_${randomTableName("a")}`, nodes: [`http://127.0.0.1:${port}`], bulk_bytes: 2 ** 20, target: `${prefix}_{table}` }), { logger: testLogger(), refresh: true });
  const admin = new Client({ node: elasticsearch.url });
  const signal = new AbortController().signal;
  try {
    const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
    const widened = new Events({ ...events.schema, columns: [...events.schema.columns, { name: "extra", dbType: "text", nullable: true }] });
    await sink.open(signal);
    assert.deepEqual((await sink.write([events.insert(1n, { id: 1, v: "a" })], signal)).failures, []);
    refuseMappings = true;
    const outcome = await sink.write([widened.insert(2n, { id: 2, v: "b", extra: "x" })], signal).then(
      (result) => result.failures.map((f) => (f.error instanceof SluiceError ? f.error.code : String(f.error))),
      (error: unknown) => error,
    );
    assert.ok(outcome instanceof SluiceError, `the write must fail as a whole, not per row: ${JSON.stringify(outcome)}`);
    assert.equal(outcome.code, AUTH_FAILED, outcome.message);
    assert.match(outcome.message, /refused the sink's user the right to run .* \(403\)/);
    refuseMappings = false;
    assert.deepEqual((await sink.write([widened.insert(2n, { id: 2, v: "b", extra: "x" })], signal)).failures, [], "written once the mapping is allowed again");
  } finally {
    await sink.close();
    await admin.indices.delete({ index: `${prefix}_*`, ignore_unavailable: true, expand_wildcards: "all" }).catch(() => undefined);
    await admin.close();
    proxy.close();
  }
});
