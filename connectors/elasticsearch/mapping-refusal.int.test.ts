/**
 * Review of 689cd96 against the real server: a mapping change refused because an index template maps the field, or
 * because of the index's field limit, no longer advises a rebuild (whose new index would be refused the same way).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import { Client } from "@elastic/elasticsearch";
import { elasticsearch } from "../../test/services/ports.ts";
import type { TableSchema } from "../contracts.ts";
import type { SluiceError } from "../errors.ts";
import { TARGET_TEMPLATE } from "../sinks/conformance.ts";
import { renderTarget } from "../sinks/naming.ts";
import { testLogger, testSinkConfig } from "../sinks/test-config.ts";
import { Events, randomTableName, tableSchema } from "../sinks/test-events.ts";
import { ElasticsearchSink } from "./elasticsearch-sink.ts";
import { ExactSerializer } from "./json.ts";

const prefix = `sluice_test_${randomBytes(3).toString("hex")}`;
const template = `${prefix}_${TARGET_TEMPLATE}`;
const indexTemplate = `${prefix}_maps_w`;
const admin = new Client({ node: elasticsearch.url, Serializer: ExactSerializer });
const signal = () => AbortSignal.timeout(60_000);
const targetOf = (schema: TableSchema) => renderTarget(template, schema).toLowerCase();
let sink: ElasticsearchSink;

before(async () => {
  sink = new ElasticsearchSink(testSinkConfig("elasticsearch", { name: `es_${randomTableName("s")}`, nodes: [elasticsearch.url], bulk_bytes: 5 * 2 ** 20, target: template, on_error: "halt" }), {
    logger: testLogger(),
    refresh: true,
  });
  await sink.open(signal());
});

after(async () => {
  await sink.close();
  await admin.indices.deleteIndexTemplate({ name: indexTemplate }, { ignore: [404] });
  await admin.indices.delete({ index: `${prefix}_*`, ignore_unavailable: true, expand_wildcards: "all" });
  await admin.close();
});

/** The table written once with id and v, then a change adding a text column w: the error the write fails with. */
async function addTextColumn(beforeAdding: (index: string) => Promise<void>): Promise<SluiceError> {
  const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
  assert.deepEqual((await sink.write([events.insert(1n, { id: 1, v: "a" })], signal())).failures, []);
  const index = Object.keys(await admin.indices.getAlias({ name: targetOf(events.schema) }))[0]!;
  await beforeAdding(index);
  const wider = new Events(tableSchema(events.schema.table, [["id", "integer"], ["v", "text"], ["w", "text"]]));
  return (await sink.write([wider.insert(2n, { id: 2, v: "b", w: "x" })], signal()).then(
    () => assert.fail("the mapping change must be refused"),
    (error: unknown) => error,
  )) as SluiceError;
}

test("a field an index template maps: the error names the template, not a rebuild alone", async () => {
  await admin.indices.putIndexTemplate({ name: indexTemplate, index_patterns: [`${prefix}_*`], priority: 900, template: { mappings: { properties: { w: { type: "long" } } } } });
  try {
    const error = await addTextColumn(async () => undefined);
    assert.equal(error.code, "SINK_SCHEMA_UNSUPPORTED");
    assert.match(error.message, /mapper \[w\] cannot be changed from type \[long\].*an index template matching \S+ maps the field "w" \(\{"type":"long"\}.*a rebuild's new index would be refused the same way/s);
    assert.doesNotMatch(error.message, /Sluice did not put there/);
  } finally {
    await admin.indices.deleteIndexTemplate({ name: indexTemplate });
  }
});

test("the index's field limit reached: the error names index.mapping.total_fields.limit, no rebuild", async () => {
  const error = await addTextColumn((index) => admin.indices.putSettings({ index, settings: { "index.mapping.total_fields.limit": 1 } }).then(() => undefined));
  assert.equal(error.code, "SINK_SCHEMA_UNSUPPORTED");
  assert.match(error.message, /field limit \(index\.mapping\.total_fields\.limit, 1\), and a rebuild's new index would meet the same limit/);
  assert.doesNotMatch(error.message, /--rebuild|Sluice did not put there/);
});
