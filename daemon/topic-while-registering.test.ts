/**
 * A table's first change (captureEncoder, components.ts): its data topic is created while its
 * schemas register, not after; nothing comes back to be written before both are done. A topic
 * name the log refuses halts that table.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { configSchema } from "../config/schema.ts";
import type { ChangeEvent, TableSchema } from "../connectors/contracts.ts";
import { EmbeddedTopicLog } from "../connectors/embedded/embedded-log.ts";
import { SluiceError } from "../connectors/errors.ts";
import { TOPIC_NAME_INVALID } from "../connectors/topics/names.ts";
import type { TopicSpec } from "../connectors/topics/contract.ts";
import { LocalRegistry, openMemoryStore } from "../schema-registry/index.ts";
import type { SchemaRegistry } from "../schema-registry/registry.ts";
import { createLogger } from "../runtime/logger.ts";
import { captureEncoder } from "./components.ts";

const dir = mkdtempSync(join(tmpdir(), "sluice-topic-while-registering-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const schema: TableSchema = {
  source: "pg",
  database: "shop",
  schema: "public",
  table: "items",
  sourceKind: "postgres",
  columns: [{ name: "id", dbType: "integer", nullable: false, primaryKeyIndex: 1 }],
  key: ["id"],
};
const insert: ChangeEvent = {
  op: "c",
  key: { id: 1 },
  before: null,
  after: { id: 1 },
  source: { connector: "postgres", name: "pg", db: "shop", schema: "public", table: "items", position: { commit: 10n, change: 9n }, txId: null, commitTimeMs: 1_000, snapshot: false },
  schema,
};

test("a table's first change: its topic is created while its schemas register, and encode returns once both are done", async () => {
  const config = configSchema.parse({
    name: "reg",
    sources: [{ name: "pg", kind: "postgres", user: "u", database: "shop", tables: ["public.*"] }],
    topics: { kind: "embedded", path: join(dir, "reg.db") },
    sinks: [{ name: "warehouse", kind: "duckdb" }],
  });
  const log = EmbeddedTopicLog.open({ path: join(dir, "reg.db"), logger: createLogger("silent"), maintenanceIntervalMs: 0 });
  const steps: string[] = [];
  // Registrations wait for `letRegister`; creations are noted as they start.
  let letRegister!: () => void;
  const registering = new Promise<void>((resolve) => (letRegister = resolve));
  const local = new LocalRegistry(await openMemoryStore());
  const registry: SchemaRegistry = Object.assign(Object.create(local) as SchemaRegistry, {
    async register(subject: string, input: Parameters<SchemaRegistry["register"]>[1]) {
      steps.push(`register ${subject}`);
      await registering;
      return local.register(subject, input);
    },
  });
  const createTopic = log.createTopic.bind(log);
  log.createTopic = async (spec: TopicSpec) => {
    steps.push(`create ${spec.name}`);
    await createTopic(spec);
  };
  try {
    let done = false;
    const encoding = captureEncoder(config, config.sources[0]!, registry, log).encode(insert).finally(() => (done = true));
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(steps.includes("create reg.pg.public.items"), `the topic is being created while the schemas wait: ${steps.join(", ")}`);
    assert.ok(steps.some((s) => s.startsWith("register ")), "the schemas are registering");
    assert.equal(done, false, "nothing comes back before the schemas are registered");
    letRegister();
    const records = await encoding;
    assert.deepEqual(records.map((r) => r.topic), ["reg.pg.public.items"]);
    assert.deepEqual((await log.listTopics()).map((t) => t.name).filter((n) => n === "reg.pg.public.items"), ["reg.pg.public.items"]);
    assert.equal(steps.filter((s) => s.startsWith("create ")).length, 1, "created once");
  } finally {
    await log.close();
  }
});

test("a table whose topic name the log refuses (Kafka: 'sp ace', or 'a.b' beside 'a_b') fails with SCHEMA_UNSUPPORTED naming the table, which halts it only", async () => {
  const config = configSchema.parse({
    name: "bad",
    sources: [{ name: "pg", kind: "postgres", user: "u", database: "shop", tables: ["public.*"] }],
    topics: { kind: "embedded", path: join(dir, "bad.db") },
    sinks: [{ name: "warehouse", kind: "duckdb" }],
  });
  const log = EmbeddedTopicLog.open({ path: join(dir, "bad.db"), logger: createLogger("silent"), maintenanceIntervalMs: 0 });
  // As the Kafka log refuses a name (kafka-log.ts); the embedded log takes any.
  log.createTopic = async (spec: TopicSpec) => {
    throw new SluiceError(`topic ${JSON.stringify(spec.name)}: Kafka topic names hold only ...`, { code: TOPIC_NAME_INVALID, context: { component: "kafka", topic: spec.name } });
  };
  const spaced: TableSchema = { ...schema, table: "sp ace" };
  try {
    await assert.rejects(captureEncoder(config, config.sources[0]!, new LocalRegistry(await openMemoryStore()), log).encode({ ...insert, schema: spaced }), (error: unknown) => {
      assert.ok(error instanceof SluiceError && error.code === "SCHEMA_UNSUPPORTED", String(error));
      assert.equal(error.context["table"], "public.sp ace");
      assert.match(error.message, /refuses its topic name/);
      return true;
    });
  } finally {
    await log.close();
  }
});
