/**
 * An Elasticsearch sink made as a sink thread makes it (daemon/sink-components.ts createSink)
 * connects through the parts of undici and @opentelemetry/core that @elastic/transport uses, and
 * loads neither package whole, nor every module of the client's API (transport-imports.ts). Its own process: the modules a process
 * loaded stay loaded, so nothing here may import the client before createSink.
 */
import assert from "node:assert/strict";
import { createRequire, registerHooks } from "node:module";
import { test } from "node:test";
import { createSink } from "../../daemon/sink-components.ts";
import { elasticsearch } from "../../test/services/ports.ts";
import { testLogger, testSinkConfig } from "../sinks/test-config.ts";

const requireAsTransport = createRequire(import.meta.resolve("@elastic/transport"));
const loaded = (specifier: string) => requireAsTransport.resolve(specifier) in requireAsTransport.cache;
const modulesLoaded: string[] = [];
registerHooks({
  load(url, context, next) {
    modulesLoaded.push(url);
    return next(url, context);
  },
});
const clientModule = (path: string) => new URL(path, import.meta.resolve("@elastic/elasticsearch")).href;

test("an Elasticsearch sink made for a sink thread connects without loading undici's and OpenTelemetry core's whole packages", async () => {
  const sink = await createSink(testSinkConfig("elasticsearch", { name: "es_transport_imports", nodes: [elasticsearch.url], bulk_bytes: 5 * 2 ** 20, target: "sluice_test_imports_{table}" }), testLogger());
  await sink.open(AbortSignal.timeout(30_000));
  await sink.close();
  assert.ok(loaded("undici/lib/dispatcher/pool"), "the client connected through undici's Pool");
  assert.ok(!loaded("undici"), "undici's index (fetch, WebSocket, caches, mocks) was loaded");
  assert.ok(!loaded("@opentelemetry/core"), "@opentelemetry/core's index (the SDK core, the semantic conventions) was loaded");
  assert.ok(modulesLoaded.includes(clientModule("api/api/cluster.js")), "the client's cluster API (the sink's health check) was loaded");
  assert.ok(!modulesLoaded.includes(clientModule("api/index.js")), "the client's API index (all 91 API modules) was loaded");
  assert.ok(modulesLoaded.filter((url) => url.includes("/api/api/")).length < 10, "more than 9 API modules loaded");
});
