/**
 * Every sink that keeps its offsets in its target names that target for messages (SINK_TARGET_OFFSETS_LOST: "sink ch:
 * ClickHouse database cdc at ... keeps no offsets ..."), never a credential of its URL. Constructing a sink connects to nothing.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ClickHouseSink } from "../clickhouse/clickhouse-sink.ts";
import { DuckDbSink } from "../duckdb/duckdb-sink.ts";
import { ElasticsearchSink } from "../elasticsearch/elasticsearch-sink.ts";
import { testLogger, testSinkConfig } from "./test-config.ts";

test("each sink names the target its offsets are kept in, without the URL's credentials", () => {
  const logger = testLogger();
  const clickhouse = new ClickHouseSink(testSinkConfig("clickhouse", { name: "ch", url: "http://ops:secret@ch.internal:8123/", user: "sluice", database: "cdc", native_deletes: false }), { logger });
  assert.equal(clickhouse.targetLabel, "ClickHouse database cdc at http://ch.internal:8123");
  const elasticsearch = new ElasticsearchSink(testSinkConfig("elasticsearch", { name: "es", nodes: ["https://ops:secret@es-1.internal:9200", "https://es-2.internal:9200"], bulk_bytes: 2 ** 20 }), { logger });
  assert.equal(elasticsearch.targetLabel, "the sink's documents in Elasticsearch index sluice-offsets at https://es-1.internal:9200,https://es-2.internal:9200");
  assert.equal(new DuckDbSink(testSinkConfig("duckdb", { name: "wh", path: "/data/wh.duckdb" }), { logger }).targetLabel, "DuckDB file /data/wh.duckdb");
});
