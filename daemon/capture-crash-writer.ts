/**
 * Child process of capture-kill9.int.test.ts: runs the real capture pipeline (several batches in
 * flight) from a scripted source that always has another batch ready into a real topic log, opened
 * as the daemon opens it, until killed. Prints "produce <batches handed to the log and not yet
 * durable, this one included>" as a batch is handed over and "acked <batch>" when the source is
 * acknowledged.
 * Usage: node capture-crash-writer.ts '<CaptureCrashArgs as JSON>'
 */
import type { ChangeEvent, Checkpoint, ProducedRecord, Source, SourceBatch } from "../connectors/contracts.ts";
import { captureBatchBytes, STANDALONE_READ_AHEAD_BYTES } from "../config/memory.ts";
import { openTopicLog } from "../connectors/topics/open.ts";
import { createLogger } from "../runtime/logger.ts";
import { CAPTURE_CRASH_BASE } from "./capture-crash-args.ts";
import type { CaptureCrashArgs } from "./capture-crash-args.ts";
import { CapturePipeline } from "./capture.ts";

/** A source that has batch n+1 ready as soon as batch n was read, from its checkpoint on. */
class EndlessSource implements Source {
  readonly kind = "postgres" as const;
  readonly name: string;
  private next = 0;
  private readonly changes: number;
  constructor(name: string, changes: number) {
    this.name = name;
    this.changes = changes;
  }
  async connect(from: Checkpoint | null): Promise<void> {
    this.next = from === null ? 0 : Number(from.position.commit - CAPTURE_CRASH_BASE) + 1;
  }
  async read(): Promise<SourceBatch> {
    const batch = this.next++;
    const commit = CAPTURE_CRASH_BASE + BigInt(batch);
    const events = Array.from({ length: this.changes }, (_, i) => change(this.name, batch, i, commit));
    return {
      events,
      checkpoint: { source: this.name, position: { commit, change: commit } },
      ack: async () => void process.stdout.write(`acked ${batch}\n`),
    };
  }
  async close(): Promise<void> {}
}

function change(source: string, batch: number, index: number, commit: bigint): ChangeEvent {
  return {
    op: "c",
    key: { id: BigInt(index % 7) },
    before: null,
    after: { id: BigInt(index % 7), value: `${batch}:${String(index).padStart(4, "0")}` },
    schema: { source, database: "app", schema: "public", table: "crash", sourceKind: "postgres", columns: [{ name: "id", dbType: "bigint", nullable: false, primaryKeyIndex: 1 }], key: ["id"] },
    source: { connector: "postgres", name: source, db: "app", schema: "public", table: "crash", position: { commit, change: commit }, txId: String(batch), commitTimeMs: Date.now(), snapshot: false },
  };
}

let inFlight = 0;
const args = JSON.parse(process.argv[2]!) as CaptureCrashArgs;
const logger = createLogger("warn");
// As `sluice run` opens it: with Kafka, the producer registers the capture's transactional id only when capture first needs it.
const log = await openTopicLog(args.topics, args.deployment, logger, undefined, undefined, { lazyProducer: args.topics.kind === "kafka" });
const produce = log.produce.bind(log);
log.produce = async (records: readonly ProducedRecord[], checkpoint?: Checkpoint) => {
  inFlight++;
  process.stdout.write(`produce ${inFlight}\n`);
  try {
    await produce(records, checkpoint);
  } finally {
    inFlight--;
  }
};
const pipeline = new CapturePipeline({
  source: new EndlessSource(args.source, args.changesPerBatch),
  log,
  encoder: {
    async encode(event) {
      return [{ topic: args.topic, key: Buffer.from(`key-${String(event.key["id"])}`), value: Buffer.from(String(event.after!["value"])), timestamp: Date.now() }];
    },
  },
  logger,
  parkingTopic: `${args.topic}.parked`,
  reconnect: { initialMs: 50, maxMs: 500 },
  // As the daemon gives it: small batches go three at a time.
  inFlightBytes: 2 * captureBatchBytes(STANDALONE_READ_AHEAD_BYTES),
});
await pipeline.run(new AbortController().signal);
