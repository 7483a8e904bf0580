/**
 * Child process of outbox-message-heap.test.ts: the outbox router and the PostgreSQL source's reader
 * of its own logical messages, on a heap as small as the daemon's main thread (where capture runs),
 * holding some megabytes as the daemon does. Encodes logical messages and an outbox row of some
 * megabytes that are all structure, then a valid message, and prints one line for each: how it ended.
 */
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfigText } from "../config/load.ts";
import type { ChangeEvent, ProducedRecord, TableSchema, TopicLog } from "../connectors/contracts.ts";
import { SluiceError } from "../connectors/errors.ts";
import { logicalMessageEvent, logicalMessageTable } from "../connectors/postgres/logical-messages.ts";
import { parseTableMessage } from "../connectors/postgres/stream-decoder.ts";
import { LocalRegistry } from "../schema-registry/local-registry.ts";
import { openMemoryStore } from "../schema-registry/log-store.ts";
import { OutboxRouter } from "./outbox-router.ts";

// What the daemon's main thread holds besides (its modules, pipelines, caches): ~20 MB.
const held = Array.from({ length: 20 }, (_, i) => new Array<{ i: number }>(125_000).fill({ i }));

const schemaFile = join(tmpdir(), `sluice-outbox-heap-${process.pid}.avsc`);
writeFileSync(schemaFile, JSON.stringify({ type: "record", name: "Order", fields: [{ name: "total", type: "long" }] }));
const config = loadConfigText(
  "test.yaml",
  `name: dep
sources:
  - kind: postgres
    name: pg
    user: u
    database: shop
    tables: ["public.*"]
    outbox:
      tables: ["public.outbox"]
      message_prefix: outbox
      aggregate_types: [order]
      payload:
        format: avro
        schemas:
          order: ${JSON.stringify(schemaFile)}
`,
);
const log = { createTopic: async () => undefined, topicNames: async () => [] } as unknown as TopicLog;
const inner = { encode: async (): Promise<ProducedRecord[]> => [] };
const router = new OutboxRouter(config, config.sources[0] as never, inner, log, new LocalRegistry(await openMemoryStore()));

const OUTBOX: TableSchema = {
  source: "pg",
  database: "shop",
  schema: "public",
  table: "outbox",
  sourceKind: "postgres",
  columns: ["id", "aggregatetype", "aggregateid", "type", "payload"].map((name) => ({ name, dbType: "text", nullable: name === "payload" })),
  key: ["id"],
};
const origin = { sourceName: "pg", position: { commit: 9n, change: 8n }, txId: "2", commitTimeMs: 5, snapshot: false };
const outboxRow = (payload: string): ChangeEvent => ({
  op: "c",
  key: {},
  before: null,
  after: { id: "e1", aggregatetype: "order", aggregateid: "o-1", type: "order.paid", payload },
  source: { connector: "postgres", name: "pg", db: "shop", schema: "public", table: "outbox", position: origin.position, txId: "2", commitTimeMs: 5, snapshot: false },
  schema: OUTBOX,
});

const MIB = 2 ** 20;
const nested = (count: number) => `${"[".repeat(count)}${"]".repeat(count)}`;
// Each text is made when its turn comes, so the heap holds one at a time, as capture holds the message it decodes: held
// all at once they were 20 MiB more than the daemon holds, and left the child ~1.5 MiB under its limit, which a
// GC run late on a loaded machine overran after the last line (an out-of-memory exit with every outcome printed).
const inputs: { kind: "message" | "row" | "sluice.backfill"; text: () => string }[] = [
  { kind: "message", text: () => nested(2 * MIB) },
  { kind: "message", text: () => `[${"{},".repeat(MIB + MIB / 3 - 2)}{}]` },
  { kind: "message", text: () => `{"id":"m1","aggregatetype":"order","aggregateid":"o-1","type":"t","payload":${nested(2 * MIB - 60)}}` },
  { kind: "row", text: () => `{"total":${nested(2 * MIB - 10)}}` },
  { kind: "sluice.backfill", text: () => `{"slot":"s","table":${nested(2 * MIB - 20)}}` },
  { kind: "message", text: () => '{"id":"m2","aggregatetype":"order","aggregateid":"o-2","type":"t","payload":{"total":3}}' },
];
for (const { kind, text: make } of inputs) {
  const text = make();
  if (kind === "sluice.backfill") {
    process.stdout.write(`${JSON.stringify(parseTableMessage(text))}\n`);
    continue;
  }
  const event = kind === "row" ? outboxRow(text) : logicalMessageEvent(logicalMessageTable("pg", "shop", "outbox"), Buffer.from(text), origin);
  const outcome = await router.encode(event).then(
    (records) => `encoded ${records.length}`,
    (error: unknown) => (error instanceof SluiceError ? `${error.code}: ${error.message}` : `${(error as Error).message}`),
  );
  process.stdout.write(`${outcome}\n`);
}
process.stdout.write(`done ${held.length}\n`);
