/**
 * Where capture writes a truncate (captureEncoder, components.ts): always to the control topic;
 * into the table's data topic only when skipped_operations leaves truncates in, or with envelope
 * sluice (then keyed by its table on a compacted topic). The sinks' decoder reads each back as
 * the truncate.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { configSchema } from "../config/schema.ts";
import type { ChangeEvent, TableSchema } from "../connectors/contracts.ts";
import { EmbeddedTopicLog } from "../connectors/embedded/embedded-log.ts";
import { LocalRegistry, openMemoryStore } from "../schema-registry/index.ts";
import { captureEncoder, recordDecoder } from "./components.ts";
import { controlledTopic } from "./control-records.ts";
import { createLogger } from "../runtime/logger.ts";

const dir = mkdtempSync(join(tmpdir(), "sluice-truncate-routing-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const logger = createLogger("silent");

const schema: TableSchema = {
  source: "pg",
  database: "shop",
  schema: "public",
  table: "items",
  sourceKind: "postgres",
  columns: [{ name: "id", dbType: "integer", nullable: false, primaryKeyIndex: 1 }],
  key: ["id"],
};
const truncate: ChangeEvent = {
  op: "t",
  key: {},
  before: null,
  after: null,
  source: { connector: "postgres", name: "pg", db: "shop", schema: "public", table: "items", position: { commit: 10n, change: 9n }, txId: null, commitTimeMs: 1_000, snapshot: false },
  schema,
};

async function encode(name: string, source: Record<string, unknown>, retention: Record<string, unknown> = {}) {
  const config = configSchema.parse({
    name,
    sources: [{ name: "pg", kind: "postgres", user: "u", database: "shop", tables: ["public.*"], ...source }],
    topics: { kind: "embedded", path: join(dir, `${name}.db`), retention },
    sinks: [{ name: "warehouse", kind: "duckdb" }],
  });
  const log = EmbeddedTopicLog.open({ path: join(dir, `${name}.db`), logger, maintenanceIntervalMs: 0 });
  const registry = new LocalRegistry(await openMemoryStore());
  try {
    const records = await captureEncoder(config, config.sources[0]!, registry, log).encode(truncate);
    const topics = new Map((await log.listTopics()).map((t) => [t.name, t.compacted]));
    const decoder = recordDecoder(registry);
    const decoded = await Promise.all(records.map((r) => decoder.decode({ ...r, partition: 0, offset: 0n })));
    return { records, topics, decoded };
  } finally {
    await log.close();
  }
}

test("by default (truncates skipped for Debezium consumers, compacted data topics) a truncate goes to the control topic only; both topics exist", async () => {
  const { records, topics, decoded } = await encode("dflt", {});
  assert.deepEqual(records.map((r) => r.topic), ["dflt.sluice.control"]);
  assert.equal(controlledTopic(records[0]!), "dflt.pg.public.items");
  assert.deepEqual([topics.get("dflt.sluice.control"), topics.get("dflt.pg.public.items")], [true, true], "the control topic is compacted; the data topic exists for sinks to wait on");
  assert.deepEqual(decoded.map((e) => [e?.op, e?.source.position.change]), [["t", 9n]]);
});

test("with skipped_operations [] or envelope sluice, the data topic gets the op t record too (keyed by its table when compacted), and the control topic still has it", async () => {
  for (const [name, source, retention, keyed] of [
    ["none", { skipped_operations: [] }, {}, true],
    ["legacy", { envelope: "sluice" }, {}, true],
    ["del", { skipped_operations: [] }, { cleanup_policy: "delete" }, false],
  ] as const) {
    const { records, topics, decoded } = await encode(name, source, retention);
    assert.deepEqual(records.map((r) => r.topic).sort(), [`${name}.pg.public.items`, `${name}.sluice.control`], name);
    const data = records.find((r) => r.topic === `${name}.pg.public.items`)!;
    assert.equal(data.key !== null, keyed, `${name}: a compacted data topic refuses keyless records`);
    assert.equal(topics.get(`${name}.sluice.control`), true, `${name}: the control topic is compacted whatever the data topics' policy`);
    assert.deepEqual(decoded.map((e) => e?.op), ["t", "t"], name);
  }
});
