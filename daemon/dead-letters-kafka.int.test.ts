/**
 * `sluice dead-letters` on Kafka (the real broker): the dead-letter topics are read read-only by
 * offset range, with no consumer group, across the transaction markers between the records (each
 * dead letter here is written in a transaction of its own, so offsets have gaps), and a sink's
 * Avro record is decoded through the built-in registry kept in Kafka.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import type { SluiceConfig } from "../config/schema.ts";
import type { ChangeEvent, TableSchema } from "../connectors/contracts.ts";
import { KafkaTopicLog } from "../connectors/kafka/kafka-log.ts";
import { deleteKafkaDeployment, testDeployment, testKafkaConfig } from "../connectors/kafka/kafka-test-config.ts";
import { createLogger } from "../runtime/logger.ts";
import { AvroChangeEncoder } from "../schema-registry/index.ts";
import { openRegistry } from "./components.ts";
import { runDeadLettersCommand } from "./dead-letters-command.ts";
import { serializeEventBytes } from "./event-json.ts";

const deployment = testDeployment("dlqcmd");
after(() => deleteKafkaDeployment(deployment));
const logger = createLogger("warn");

const TABLE: TableSchema = {
  source: "src",
  database: "app",
  schema: "shop",
  table: "orders",
  sourceKind: "postgres",
  key: ["id"],
  columns: [
    { name: "id", dbType: "int4", nullable: false, primaryKeyIndex: 1 },
    { name: "email", dbType: "text", nullable: true },
  ],
};

const insert = (id: number, email: string | null): ChangeEvent => ({
  op: "c",
  key: { id },
  before: null,
  after: { id, email },
  source: { connector: "postgres", name: "src", db: "app", schema: "shop", table: "orders", position: { commit: 10n, change: 9n }, txId: "1", commitTimeMs: 1_700_000_000_000, snapshot: false },
  schema: TABLE,
});

test("a source's and a sink's dead letters on Kafka, read by offset beside transaction markers", { timeout: 120_000 }, async () => {
  const config = {
    name: deployment,
    topics: testKafkaConfig({ linger: 0 }),
    schema_registry: { kind: "builtin", compatibility: "BACKWARD" },
    sources: [{ name: "src", kind: "postgres" }],
    sinks: [{ name: "wh", kind: "duckdb" }],
  } as unknown as SluiceConfig;
  const log = await KafkaTopicLog.open({ config: config.topics as never, deployment, logger });
  try {
    const spec = { partitions: 1, retentionMs: null, retentionBytes: null, compacted: false };
    await log.createTopic({ name: `${deployment}.dlq.src`, ...spec });
    await log.createTopic({ name: `${deployment}.dlq.wh`, ...spec });
    for (const id of [1, 2, 3]) {
      const headers = { "sluice.reason": Buffer.from("data check not_null of column email: the value is null"), "sluice.check": Buffer.from("not_null"), "sluice.column": Buffer.from("email"), "sluice.table": Buffer.from("shop.orders") };
      await log.produce([{ topic: `${deployment}.dlq.src`, key: Buffer.from("shop.orders"), value: serializeEventBytes(insert(id, null)), headers, timestamp: 1_700_000_000_000 }]);
    }
    const { registry } = await openRegistry(config, log);
    const [record] = await new AvroChangeEncoder({ registry, topicPrefix: (source) => `${deployment}.${source}` }).encode(insert(7, "secret@example.com"));
    const headers = { ...record!.headers, "sluice.error": Buffer.from("refused"), "sluice.sink": Buffer.from("wh"), "sluice.origin": Buffer.from(`${deployment}.src.shop.orders:0:4`) };
    await log.produce([{ topic: `${deployment}.dlq.wh`, key: record!.key, value: record!.value, headers, timestamp: 1_700_000_000_000 }]);
  } finally {
    await log.close();
  }

  const run = async (args: Partial<Parameters<typeof runDeadLettersCommand>[1]>) => {
    let stdout = "";
    let stderr = "";
    const code = await runDeadLettersCommand(config, { values: false, ...args }, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) }, logger);
    return { code, stdout, stderr };
  };
  const source = await run({ source: "src", limit: "2" });
  assert.equal(source.code, 0, source.stderr);
  const offsets = [...source.stdout.matchAll(/^offset (\d+) .* key \{"id":(\d)\}$/gm)].map((m) => [Number(m[1]), Number(m[2])]);
  assert.equal(offsets.length, 2, source.stdout);
  assert.deepEqual(offsets.map(([, id]) => id), [1, 2]);
  const more = /2 dead letters shown; 1 more from offset (\d+) \(run again with --from \1,/.exec(source.stdout);
  assert.ok(more, source.stdout);
  assert.ok(Number(more[1]) > offsets[1]![0]! + 1, "a transaction marker between the records (offsets have gaps)");
  const rest = await run({ source: "src", from: more[1] });
  assert.match(rest.stdout, /key \{"id":3\}\n {2}check not_null, column email\n/);
  assert.match(rest.stdout, /1 dead letter, to the end of the topic\n$/);

  const sink = await run({ sink: "wh" });
  assert.equal(sink.code, 0, sink.stderr);
  assert.match(sink.stdout, new RegExp(`\\noffset 0  2023-11-14T22:13:20\\.000Z  shop\\.orders  op c  key \\{"id":7\\}\\n  reason: refused\\n  from ${deployment}\\.src\\.shop\\.orders:0:4\\n`));
  assert.ok(!sink.stdout.includes("secret@example.com"));
  assert.match((await run({ sink: "wh", values: true })).stdout, /\n {2}after: \{"id":7,"email":"secret@example\.com"\}\n/);

  const other = { ...config, sources: [{ name: "other", kind: "postgres" }] } as unknown as SluiceConfig;
  let text = "";
  assert.equal(await runDeadLettersCommand(other, { source: "other", values: false }, { stdout: (t) => (text += t), stderr: (t) => (text += t) }, logger), 0);
  assert.match(text, new RegExp(`no dead letters \\(its dead-letter topic ${deployment}\\.dlq\\.other does not exist yet`));
});
