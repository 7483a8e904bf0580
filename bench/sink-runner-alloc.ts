/**
 * What the sink runner itself allocates and spends per record, around the decoder and the sink:
 * SinkRunner.applyBatch over batches of 5,000 records with a decoder that returns one prepared
 * event and a sink that writes nothing, the consumer's position looked up by a topic/partition
 * string per call as the Kafka consumer does.
 *
 *   node --expose-gc --max-semi-space-size=128 bench/sink-runner-alloc.ts [--partitions 1] [--root CHECKOUT]
 *
 * Allocation: the heap's growth over one batch after a forced collection (the young generation is
 * large enough that no collection runs meanwhile), the median of 40 batches. CPU: 200 batches.
 * `--root` runs another checkout's runner (a worktree of an older commit), to compare alternating.
 */
import { Writable } from "node:stream";
import { parseArgs } from "node:util";
import type { ChangeEvent, StoredRecord } from "../connectors/contracts.ts";
import type { TopicConsumer, TopicPartitionOffset } from "../connectors/topics/contract.ts";
import type { SinkRunner as Runner } from "../daemon/sink-runner.ts";
import type { createLogger as CreateLogger } from "../runtime/logger.ts";

const { values } = parseArgs({ options: { partitions: { type: "string", default: "1" }, root: { type: "string", default: new URL("..", import.meta.url).pathname } } });
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --expose-gc");
const root = values.root.replace(/\/$/, "");
const { SinkRunner } = (await import(`${root}/daemon/sink-runner.ts`)) as { SinkRunner: typeof Runner };
const { createLogger } = (await import(`${root}/runtime/logger.ts`)) as { createLogger: typeof CreateLogger };

const BATCH = 5_000;
const partitions = Number(values.partitions);
const perPartition = Math.floor(BATCH / partitions);
const topic = "bench.pg.s.rows";
const event: ChangeEvent = {
  op: "c",
  key: { id: 1 },
  before: null,
  after: { id: 1 },
  schema: { source: "pg", database: "db", schema: "s", table: "rows", sourceKind: "postgres", columns: [], key: ["id"] },
  source: { connector: "postgres", name: "pg", db: "db", schema: "s", table: "rows", position: { commit: 1n, change: 1n }, txId: null, commitTimeMs: 0, snapshot: false },
};
const value = new Uint8Array(10);
const records: StoredRecord[] = Array.from({ length: perPartition * partitions }, (_, i) => ({ topic, partition: Math.floor(i / perPartition), offset: BigInt(i % perPartition), key: null, value, timestamp: 0 }));
const positions = new Map<string, bigint>();
for (let p = 0; p < partitions; p++) positions.set(`${topic}\u0000${p}`, BigInt(perPartition));
const consumer = {
  position: (t: string, p: number) => positions.get(`${t}\u0000${p}`) ?? null,
  commit: async (_offsets: readonly TopicPartitionOffset[]) => {},
  assignment: () => [],
} as unknown as TopicConsumer;
const sink = { name: "none", open: async () => {}, close: async () => {}, write: async () => ({ failures: [] }) };
const runner = new SinkRunner({
  sink,
  log: {} as never,
  group: "bench",
  topics: async () => [topic],
  decoder: { decode: () => event },
  batch: { maxRows: BATCH, maxBytes: 2 ** 30, maxWaitMs: 0 },
  onError: "halt",
  deadLetterTopic: "bench.dlq",
  retry: { initialMs: 1, maxMs: 5 },
  logger: createLogger("silent", new Writable({ write: (_c, _e, done) => done() }) as never),
  owner: "bench",
});
const stop = new AbortController().signal;
// applyBatch is private: the bench drives one batch at a time, without a topic log.
const apply = (runner as unknown as { applyBatch: (c: TopicConsumer, r: StoredRecord[], s: AbortSignal) => Promise<void> }).applyBatch.bind(runner);

for (let i = 0; i < 50; i++) await apply(consumer, records, stop);
const samples: number[] = [];
for (let i = 0; i < 40; i++) {
  gc();
  const before = process.memoryUsage().heapUsed;
  await apply(consumer, records, stop);
  samples.push(process.memoryUsage().heapUsed - before);
}
samples.sort((a, b) => a - b);
const cpu = process.cpuUsage();
for (let i = 0; i < 200; i++) await apply(consumer, records, stop);
const used = process.cpuUsage(cpu);
console.log(
  `${root}, ${partitions} partition(s): ${(samples[20]! / records.length).toFixed(0)} bytes allocated per record (median of 40 batches), ` +
    `${((used.user + used.system) / (200 * records.length)).toFixed(3)} CPU-µs per record`,
);
