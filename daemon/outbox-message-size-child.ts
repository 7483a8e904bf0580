/**
 * Child process of outbox-message-size.test.ts: the stream decoder and the outbox router on a heap as small as the
 * daemon's main thread, with an outbox message of 96 MiB (any user connected may emit one; PostgreSQL takes up to
 * 1 GB) as pgoutput sends it, one piece: a JSON object whose payload is one long string. argv[2]:
 * outbox.max_message_bytes, or "none" for no limit (as before it). Prints what the event kept and how the router ended.
 */
import { loadConfigText } from "../config/load.ts";
import type { ProducedRecord, TopicLog } from "../connectors/contracts.ts";
import { SluiceError } from "../connectors/errors.ts";
import { OutboxRouter } from "./outbox-router.ts";
import { LocalRegistry } from "../schema-registry/local-registry.ts";
import { openMemoryStore } from "../schema-registry/log-store.ts";
import { StreamDecoder } from "../connectors/postgres/stream-decoder.ts";
import type { DecodedOutput } from "../connectors/postgres/stream-decoder.ts";
import type { WalMessage } from "../connectors/postgres/replication-stream.ts";

const maxBytes = process.argv[2] === "none" ? undefined : Number(process.argv[2]);
const CONTENT_BYTES = 96 * 2 ** 20;
const COMMIT = 0x5000n;

function payload(...parts: (Buffer | number | bigint | string)[]): Buffer {
  return Buffer.concat(
    parts.map((part) => {
      if (Buffer.isBuffer(part)) return part;
      if (typeof part === "bigint") return Buffer.from(part.toString(16).padStart(16, "0"), "hex");
      if (typeof part === "string") return Buffer.from(`${part}\0`, "utf8");
      const b = Buffer.alloc(4);
      b.writeUInt32BE(part);
      return b;
    }),
  );
}
const time = 0x0002b7c1d2e3f405n;
const begin: WalMessage = { walStart: COMMIT - 0x100n, payload: payload(Buffer.from([0x42]), COMMIT, time, 7) };
const head = '{"id":"m1","aggregatetype":"order","aggregateid":"o-1","type":"t","payload":"';
const content = Buffer.alloc(CONTENT_BYTES, "x");
content.write(head, 0);
content.write('"}', CONTENT_BYTES - 2);
const message: WalMessage = { walStart: 0x4200n, payload: payload(Buffer.from([0x4d, 0x01]), 0x4200n, "outbox", CONTENT_BYTES, content) };
const commit: WalMessage = { walStart: COMMIT + 0x30n, payload: payload(Buffer.from([0x43, 0x00]), COMMIT, COMMIT + 0x30n, time) };

const decoder = new StreamDecoder({
  sourceName: "shop",
  tables: new Map(),
  resolveRelation: async () => null,
  transactionMetadata: false,
  skipThrough: null,
  outboxMessages: { prefix: "outbox", database: "shop", ...(maxBytes === undefined ? {} : { maxBytes }) },
});
const out: DecodedOutput = { events: [], transactions: [] };
for (const m of [begin, message, commit]) await decoder.apply(m, out);
const after = out.events[0]!.after!;
const config = loadConfigText("test.yaml", `name: dep
sources:
  - kind: postgres
    name: shop
    user: u
    database: shop
    tables: ["public.*"]
    outbox:
      message_prefix: outbox
      aggregate_types: [order]
${maxBytes === undefined ? "" : `      max_message_bytes: ${maxBytes}\n`}`);
const log = { createTopic: async () => undefined, topicNames: async () => [] } as unknown as TopicLog;
const router = new OutboxRouter(config, config.sources[0] as never, { encode: async (): Promise<ProducedRecord[]> => [] }, log, new LocalRegistry(await openMemoryStore()));
const outcome = await router.encode(out.events[0]!).then(
  (records) => `encoded ${records.length}`,
  (error: unknown) => (error instanceof SluiceError ? `${error.code}: ${error.message}` : String(error)),
);
process.stdout.write(`${JSON.stringify({ contentChars: String(after["content"]).length, contentBytes: after["content_bytes"] ?? null, outcome })}\n`);
