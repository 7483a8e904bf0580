/**
 * What the sink runner's tests share: a silent logger, a row's insert event, the JSON record decoder and encoder, and
 * (for the tests on real Kafka) a transactional sink that keeps its rows and offsets in memory.
 */
import { Writable } from "node:stream";
import type { ChangeEvent, ProducedRecord, SinkChange, StoredRecord, TopicPartitionOffset } from "../connectors/contracts.ts";
import type { OffsetWriteResult, StoredSinkOffset, TransactionalSink } from "../connectors/sinks/contract.ts";
import { createLogger } from "../runtime/logger.ts";
import { deserializeEvent, serializeEvent } from "./event-json.ts";

export const silent = createLogger("silent", new Writable({ write: (_c, _e, cb) => cb() }) as never);

/** The insert of row `id` (named "row <id>") into pg's `public.<table>` at source position `change`. */
export function event(table: string, id: number, change = BigInt(id)): ChangeEvent {
  return {
    op: "c",
    key: { id },
    before: null,
    after: { id, name: `row ${id}` },
    schema: { source: "pg", database: "app", schema: "public", table, sourceKind: "postgres", columns: [], key: ["id"] },
    source: { connector: "postgres", name: "pg", db: "app", schema: "public", table, position: { commit: change, change }, txId: null, commitTimeMs: 1_700_000_000_000 + Number(change), snapshot: false },
  };
}

/** Decodes records written with serializeEvent (null for a tombstone). */
export const jsonDecoder = { decode: async (r: StoredRecord) => (r.value ? deserializeEvent(Buffer.from(r.value).toString()) : null) };

/** The runner options these tests share: JSON records, a halt on a failed row, quick retries, a silent log. */
export const runnerDefaults = { decoder: jsonDecoder, onError: "halt", retry: { initialMs: 1, maxMs: 5 }, logger: silent, owner: "test" } as const;

/** The record capture would write for `e` to `topic`, as JSON (what jsonDecoder reads), keyed by its id. */
export function jsonRecord(topic: string, e: ChangeEvent): ProducedRecord {
  return { topic, key: Buffer.from(String(e.key["id"])), value: Buffer.from(serializeEvent(e)), timestamp: e.source.commitTimeMs };
}

/** The runner options of the tests on real Kafka: JSON records, small batches, a halt on a failed row, retries within a second. */
export const kafkaRunnerDefaults = { decoder: jsonDecoder, batch: { maxRows: 100, maxBytes: 1 << 20, maxWaitMs: 50 }, onError: "halt", retry: { initialMs: 100, maxMs: 1_000 }, owner: "test" } as const;

/** A transactional sink that keeps the ids of the rows it applied and its offsets in memory, starting from `offsets` (as a target that applied them before a restart). */
export class MemoryTransactionalSink implements TransactionalSink {
  readonly name: string;
  readonly offsetsAtomic = true;
  readonly rows = new Set<number>();
  offsets: TopicPartitionOffset[];
  private topicIds: ReadonlyMap<string, string> = new Map();
  constructor(name: string, offsets: TopicPartitionOffset[] = []) {
    this.name = name;
    this.offsets = offsets;
  }
  async open(): Promise<void> {}
  async close(): Promise<void> {}
  async write(changes: readonly SinkChange[], _signal: AbortSignal, offsets?: readonly TopicPartitionOffset[]): Promise<OffsetWriteResult> {
    for (const { event: e } of changes) this.rows.add(Number(e.key["id"]));
    if (offsets) await this.storeOffsets(offsets);
    return { failures: [], offsetsStored: Boolean(offsets) };
  }
  async storeOffsets(offsets: readonly TopicPartitionOffset[]): Promise<void> {
    const stored = new Map(this.offsets.map((o) => [o.partition, o]));
    for (const o of offsets) stored.set(o.partition, o);
    this.offsets = [...stored.values()];
  }
  useTopicIds(ids: ReadonlyMap<string, string>): void {
    this.topicIds = ids;
  }
  async committedOffsets(): Promise<StoredSinkOffset[]> {
    return this.offsets.map((o) => ({ ...o, topicId: this.topicIds.get(o.topic) ?? null }));
  }
}
