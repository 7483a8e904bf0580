import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { SinkChange } from "../connectors/contracts.ts";
import { createDuckDbSink } from "../connectors/duckdb/duckdb-sink.ts";
import { EmbeddedTopicLog } from "../connectors/embedded/embedded-log.ts";
import { testLogger, testSinkConfig } from "../connectors/sinks/test-config.ts";
import { Events, tableSchema } from "../connectors/sinks/test-events.ts";
import { deserializeEvent, serializeEvent } from "./event-json.ts";
import { rebuildSink } from "./rebuild.ts";

test("a rebuild fills a new generation from the topic while the old one serves, then swaps", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-rebuild-"));
  const logger = testLogger();
  const log = EmbeddedTopicLog.open({ path: join(dir, "log.db"), logger });
  const events = new Events(tableSchema("items", [["id", "integer"], ["name", "text"]]));
  await log.createTopic({ name: events.topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  const history: SinkChange[] = [
    events.insert(1n, { id: 1, name: "one" }),
    events.insert(2n, { id: 2, name: "two" }),
    events.update(3n, { id: 1, name: "uno" }),
    events.delete(4n, { id: 2 }),
    events.insert(5n, { id: 3, name: "three" }),
  ];
  await log.produce(history.map(({ event }) => ({ topic: events.topic, key: Buffer.from(String(event.key["id"])), value: Buffer.from(serializeEvent(event)), timestamp: 0 })));

  const sink = createDuckDbSink(testSinkConfig("duckdb", { name: "wh", path: join(dir, "wh.duckdb") }), { logger });
  const signal = new AbortController().signal;
  await sink.open(signal);
  // The live table holds something stale: the rebuild must replace it with what the topic says.
  await sink.write([events.insert(1n, { id: 1, name: "one" }), events.insert(9n, { id: 7, name: "stale" })], signal);
  const before = await sink.query(`SELECT id, name FROM public_items ORDER BY id`);
  assert.deepEqual(before, [{ id: 1, name: "one" }, { id: 7, name: "stale" }]);

  const report = await rebuildSink({
    sink,
    log,
    decoder: { decode: async (r) => (r.value ? deserializeEvent(Buffer.from(r.value).toString()) : null) },
    topics: [events.topic],
    group: "wh.rebuild",
    logger,
    signal,
  });
  assert.deepEqual(report, { tables: ["public.items"], records: 5 });
  assert.deepEqual(await sink.query(`SELECT id, name FROM public_items ORDER BY id`), [{ id: 1, name: "uno" }, { id: 3, name: "three" }]);
  await sink.close();
  await log.close();
});
