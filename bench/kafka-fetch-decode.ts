/**
 * What a sink's Kafka reader allocates and spends per record to turn a fetch's record set into the
 * records it queues: kafkajs's decodeMessages (with Sluice's record batch decoder, or kafkajs's own
 * for comparison), kafkajs's consumer Batch (its filters), and storedRecordOf.
 *
 *   node --expose-gc --max-semi-space-size=128 bench/kafka-fetch-decode.ts [--decoder sluice|kafkajs] [--batches 3] [--records 1000] [--value-bytes 240]
 *
 * One fetch: `--batches` transactional record batches of `--records` records (a 30-byte key, a
 * value of `--value-bytes`, no headers), uncompressed. Allocation: the heap's growth over one
 * fetch after a forced collection (the young generation is large enough that none runs
 * meanwhile), the median of 40 fetches, per stage. CPU: 200 fetches through all stages.
 */
import { createRequire } from "node:module";
import { parseArgs } from "node:util";
import { storedRecordOf } from "../connectors/kafka/kafka-consumer.ts";
import { RECORD_BATCH_DECODER } from "../connectors/kafka/record-batch-decoder.ts";

const { values } = parseArgs({
  options: {
    decoder: { type: "string", default: "sluice" },
    batches: { type: "string", default: "3" },
    records: { type: "string", default: "1000" },
    "value-bytes": { type: "string", default: "240" },
  },
});
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --expose-gc");

interface KafkaDecoder {
  readonly buffer: Buffer;
  readonly offset: number;
}
interface Message {
  readonly offset: string;
  readonly timestamp: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: Record<string, Buffer>;
}
type Long = { readonly value: bigint };
const require = createRequire(import.meta.url);
const { RecordBatch } = require("kafkajs/src/protocol/recordBatch/v0/index.js") as {
  RecordBatch(options: { firstOffset: Long; firstTimestamp: number; maxTimestamp: number; lastOffsetDelta: number; records: unknown[]; transactional: boolean; producerId: Long }): Promise<{ buffer: Buffer }>;
};
const Record = require("kafkajs/src/protocol/recordBatch/record/v0/index.js") as (options: object) => unknown;
const Decoder = require("kafkajs/src/protocol/decoder.js") as new (buffer: Buffer) => KafkaDecoder;
const Long = require("kafkajs/src/utils/long.js") as { fromValue(value: number): Long };
const Batch = require("kafkajs/src/consumer/batch.js") as new (topic: string, fetchedOffset: string, partition: object) => { messages: Message[] };

// kafkajs's decoder: decodeMessages loaded again with kafkajs's record batch decoder in the cache.
const DECODE_MESSAGES = "kafkajs/src/protocol/requests/fetch/v4/decodeMessages.js";
function decodeMessagesWith(decoder: "sluice" | "kafkajs"): (decoder: KafkaDecoder) => Promise<Message[]> {
  if (decoder === "sluice") return require(DECODE_MESSAGES) as (decoder: KafkaDecoder) => Promise<Message[]>;
  const batchPath = require.resolve(RECORD_BATCH_DECODER);
  const messagesPath = require.resolve(DECODE_MESSAGES);
  const [ours, theirs] = [require.cache[batchPath], require.cache[messagesPath]];
  delete require.cache[batchPath];
  delete require.cache[messagesPath];
  try {
    return require(messagesPath) as (decoder: KafkaDecoder) => Promise<Message[]>;
  } finally {
    require.cache[batchPath] = ours;
    require.cache[messagesPath] = theirs;
  }
}
if (values.decoder !== "sluice" && values.decoder !== "kafkajs") throw new Error("--decoder sluice|kafkajs");
const decodeMessages = decodeMessagesWith(values.decoder);

const BATCHES = Number(values.batches);
const RECORDS = Number(values.records);
const FIRST = 1_000_000;
const parts: Buffer[] = [];
for (let b = 0; b < BATCHES; b++) {
  const records = Array.from({ length: RECORDS }, (_, i) => Record({ offsetDelta: i, timestampDelta: i, key: Buffer.alloc(30, 1), value: Buffer.alloc(Number(values["value-bytes"]), 2), headers: {} }));
  const first = Date.now();
  parts.push((await RecordBatch({ firstOffset: Long.fromValue(FIRST + b * RECORDS), firstTimestamp: first, maxTimestamp: first, lastOffsetDelta: RECORDS - 1, records, transactional: true, producerId: Long.fromValue(5) })).buffer);
}
const body = Buffer.concat(parts);
const fetch = Buffer.alloc(4 + body.length);
fetch.writeInt32BE(body.length, 0);
body.copy(fetch, 4);
const perFetch = BATCHES * RECORDS;

type Stage = "decode" | "batch" | "stored";
async function once(stage: Stage): Promise<unknown> {
  const messages = await decodeMessages(new Decoder(fetch));
  if (stage === "decode") return messages;
  const batch = new Batch("t", String(FIRST), { partition: 0, highWatermark: String(FIRST + perFetch), abortedTransactions: [], messages });
  if (stage === "batch") return batch;
  return batch.messages.map((message) => storedRecordOf("t", 0, message as never));
}

async function bytesPerRecord(stage: Stage): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < 40; i++) {
    gc!();
    const before = process.memoryUsage().heapUsed;
    const kept = await once(stage);
    samples.push((process.memoryUsage().heapUsed - before) / perFetch);
    if (kept === null) throw new Error("unreachable");
  }
  samples.sort((a, b) => a - b);
  return samples[20]!;
}

for (let i = 0; i < 30; i++) await once("stored");
const allocation = { decode: await bytesPerRecord("decode"), batch: await bytesPerRecord("batch"), stored: await bytesPerRecord("stored") };
const cpuStart = process.cpuUsage();
for (let i = 0; i < 200; i++) await once("stored");
const cpu = process.cpuUsage(cpuStart);
const us = (cpu.user + cpu.system) / (200 * perFetch);
process.stdout.write(
  `decoder ${values.decoder}, ${BATCHES} x ${RECORDS} records of ${values["value-bytes"]}-byte values: bytes allocated per record: decodeMessages ${allocation.decode.toFixed(0)}, ` +
    `+ kafkajs Batch ${allocation.batch.toFixed(0)}, + storedRecordOf ${allocation.stored.toFixed(0)}; CPU ${us.toFixed(2)} us per record (all three)\n`,
);
