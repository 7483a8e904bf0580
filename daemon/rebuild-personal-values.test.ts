import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { SinkChange, SinkWriteResult } from "../connectors/contracts.ts";
import { createDuckDbSink } from "../connectors/duckdb/duckdb-sink.ts";
import { EmbeddedTopicLog } from "../connectors/embedded/embedded-log.ts";
import type { RebuildableSink } from "../connectors/sinks/contract.ts";
import { markPersonalValues, PERSONAL_VALUE } from "../connectors/sinks/personal-values.ts";
import { testLogger, testSinkConfig } from "../connectors/sinks/test-config.ts";
import { Events, tableSchema } from "../connectors/sinks/test-events.ts";
import { deserializeEvent, serializeEvent } from "./event-json.ts";
import { rebuildSink } from "./rebuild.ts";
import type { RebuildOptions } from "./rebuild.ts";
import type { RebuildProgress } from "./rebuild-progress.ts";

const EMAIL = "ann.secret@example.com";

/** The sinks' decoder as it is with personal columns: the decrypted event is marked with its clear personal values. */
const decoder: RebuildOptions["decoder"] = {
  decode: async (record) => {
    if (!record.value) return null;
    const event = deserializeEvent(Buffer.from(record.value).toString());
    markPersonalValues(event, [String(event.after?.["email"])]);
    return event;
  },
};

test("a rebuild refused by its target for a row quoting a personal value fails without the value in its error or progress", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-rebuild-personal-"));
  const logger = testLogger();
  const log = EmbeddedTopicLog.open({ path: join(dir, "log.db"), logger });
  const events = new Events(tableSchema("customers", [["id", "integer"], ["email", "text"]]));
  await log.createTopic({ name: events.topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  const history: SinkChange[] = [events.insert(1n, { id: 1, email: EMAIL })];
  await log.produce(history.map(({ event }) => ({ topic: events.topic, key: Buffer.from(String(event.key["id"])), value: Buffer.from(serializeEvent(event)), timestamp: 0 })));
  const duck = createDuckDbSink(testSinkConfig("duckdb", { name: "wh", path: join(dir, "wh.duckdb") }), { logger });
  const signal = new AbortController().signal;
  await duck.open(signal);
  // The target refuses the row quoting its value, as a server does (a unique index added by hand to the new generation, say).
  const refusal = async (changes: SinkChange[]): Promise<SinkWriteResult> => ({ failures: changes.map((_c, index) => ({ index, error: new Error(`Constraint Error: Duplicate key "email: ${EMAIL}" violates unique constraint.`), retriable: false })) });
  const sink = new Proxy(duck, {
    get: (target, property) => {
      if (property === "writeRebuild") return refusal;
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  }) as RebuildableSink & typeof duck;
  const progress: RebuildProgress[] = [];
  try {
    const failure = await rebuildSink({ sink, log, decoder, topics: [events.topic], group: "wh.rebuild", logger, signal, onProgress: (p) => progress.push(p) }).then(
      () => assert.fail("the rebuild succeeded"),
      (error: unknown) => error as Error,
    );
    const texts = [failure.message, failure.stack ?? "", String((failure.cause as Error | undefined)?.message), JSON.stringify(progress)];
    for (const text of texts) assert.ok(!text.includes(EMAIL), `the value is in: ${text}`);
    assert.match(failure.message, /rebuild of sink wh failed at .*Duplicate key "email: \[personal value\]" violates unique constraint/);
    assert.ok(JSON.stringify(progress).includes(PERSONAL_VALUE), "the progress's failure names the refusal");
  } finally {
    await duck.close();
    await log.close();
  }
});
