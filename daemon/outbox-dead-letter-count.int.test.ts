/**
 * sluice_outbox_dead_lettered_total counts a dead letter once, when it is durable. It was counted when the outbox router
 * encoded it, and an encoding can be thrown away and done again: a write to the topic log that fails ends capture's
 * pump, capture connects again from its checkpoint and the source sends the same changes again, so the same message was
 * dead-lettered (and counted) a second time while the topic held one dead letter. Capture with the real PostgreSQL
 * source, the embedded log, and one write that fails.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type pg from "pg";
import { loadConfigText } from "../config/load.ts";
import type { PostgresSourceConfig } from "../config/schema.ts";
import type { ProducedRecord, TopicLog } from "../connectors/contracts.ts";
import { EmbeddedTopicLog } from "../connectors/embedded/embedded-log.ts";
import { SluiceError } from "../connectors/errors.ts";
import { adminClient, cleanUp, newSource, randomName, testLogger } from "../connectors/postgres/int-test-support.ts";
import { postgres } from "../test/services/ports.ts";
import { LocalRegistry } from "../schema-registry/local-registry.ts";
import { openMemoryStore } from "../schema-registry/log-store.ts";
import { CapturePipeline } from "./capture.ts";
import { withOutbox } from "./outbox-router.ts";

const schema = randomName("obcount");
const dir = mkdtempSync(join(tmpdir(), "sluice-outbox-count-"));
let admin: pg.Client;
let sourceConfig: PostgresSourceConfig | undefined;

before(async () => {
  admin = await adminClient();
  await admin.query(`CREATE SCHEMA "${schema}"`);
  await admin.query(`CREATE TABLE "${schema}".items (id int PRIMARY KEY)`);
});

after(async () => {
  if (sourceConfig !== undefined) await cleanUp(admin, sourceConfig, schema);
  await admin.end();
  rmSync(dir, { recursive: true, force: true });
});

test("a dead letter written again after a failed write and the source sending the change again is counted once", { timeout: 60_000 }, async () => {
  const prefix = randomName("events");
  const config = loadConfigText(
    "test.yaml",
    `name: dep
sources:
  - kind: postgres
    name: ${randomName("src")}
    host: ${postgres.host}
    port: ${postgres.port}
    user: ${postgres.user}
    password: ${postgres.password}
    database: ${postgres.database}
    slot: ${randomName("slot")}
    publication: ${randomName("pub")}
    tables: ["${schema}.*"]
    snapshot: { mode: never }
    outbox:
      message_prefix: ${prefix}
      aggregate_types: [order]
topics:
  kind: embedded
  path: ${join(dir, "log.db")}
`,
  );
  const source = config.sources[0] as PostgresSourceConfig;
  sourceConfig = source;
  const deadLetterTopic = `dep.dlq.${source.name}.messages`;
  const log = EmbeddedTopicLog.open({ path: join(dir, "log.db"), logger: testLogger() });
  await log.createTopic({ name: "dep.sluice.halted", partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  // The first write holding a dead letter fails, as a full disk or a lost broker fails it: retriable.
  let failed = 0;
  const flaky = new Proxy(log, {
    get(target, property) {
      if (property === "produce") {
        return (records: ProducedRecord[], ...rest: unknown[]) => {
          if (failed === 0 && records.some((r) => r.topic === deadLetterTopic)) {
            failed++;
            return Promise.reject(new SluiceError("the write failed (test)", { code: "TEST_WRITE_FAILED", retriable: true }));
          }
          return (target.produce as (...args: unknown[]) => Promise<void>)(records, ...rest);
        };
      }
      const value = Reflect.get(target, property) as unknown;
      return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  }) as TopicLog;
  const counted: string[] = [];
  const encoder = withOutbox(config, source, { encode: async () => [] }, flaky, new LocalRegistry(await openMemoryStore()), testLogger(), {
    topic: `dep.dlq.${source.name}`,
    messageTopic: deadLetterTopic,
    create: () => log.createTopic({ name: deadLetterTopic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false }),
    onDeadLetter: (table, reason) => void counted.push(`${table} ${reason}`),
  });
  const pipeline = new CapturePipeline({ source: newSource(source), log: flaky, encoder, logger: testLogger(), parkingTopic: "dep.sluice.halted", reconnect: { initialMs: 10, maxMs: 10 } });
  const stop = new AbortController();
  const running = pipeline.run(stop.signal);
  try {
    for (let i = 0; ; i++) {
      const { rows } = await admin.query("SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active", [source.slot]);
      if (rows.length > 0) break;
      assert.ok(i < 300, "the source never streamed");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await admin.query("BEGIN");
    await admin.query("SELECT pg_logical_emit_message(true, $1, 'not json {')", [prefix]);
    await admin.query("SELECT pg_logical_emit_message(true, $1, $2)", [prefix, JSON.stringify({ id: "m1", aggregatetype: "order", aggregateid: "o-1", type: "t", payload: {} })]);
    await admin.query("COMMIT");
    const published = async (topic: string) => (await log.topicNames()).includes(topic) ? (await log.endOffsets(topic)).reduce((sum, end) => sum + end.offset, 0n) : 0n;
    for (let i = 0; (await published("dep.outbox.order")) === 0n; i++) {
      assert.ok(i < 600, "the good event was never published");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    stop.abort();
    await running.catch(() => undefined);
  }
  assert.equal(failed, 1, "one write failed, and capture wrote the changes again");
  assert.equal((await log.endOffsets(deadLetterTopic)).reduce((sum, end) => sum + end.offset, 0n), 1n, "one dead letter stored");
  assert.deepEqual(counted, [`pg_logical_message.${prefix} invalid`], "counted once");
  await log.close();
});
