/**
 * Zero-downtime rebuild of a sink: every table gets a new generation filled from its topic from
 * the beginning while the live one keeps serving (and keeps receiving live writes, which the sink
 * mirrors into the new generation), then each table swaps atomically once caught up. Stored
 * offsets that belong to another log (a replaced log file, re-created topics: log-identity.ts) are
 * then moved to where the rebuild ended, so a sink refused for them reads on from there.
 */
import type { SinkChange, TableId, TopicLog } from "../connectors/contracts.ts";
import { SluiceError } from "../connectors/errors.ts";
import { isVersionedSink } from "../connectors/sinks/contract.ts";
import type { RebuildableSink } from "../connectors/sinks/contract.ts";
import { partitionKey, rebindOffsets } from "./log-identity.ts";
import type { Logger } from "./logger.ts";
import type { RecordDecoder } from "./sink-runner.ts";

export interface RebuildOptions {
  readonly sink: RebuildableSink;
  readonly log: TopicLog;
  readonly decoder: RecordDecoder;
  readonly topics: readonly string[];
  /** A consumer group of its own, so the sink's group is untouched. */
  readonly group: string;
  readonly logger: Logger;
  readonly signal: AbortSignal;
  readonly batchRecords?: number;
}

export interface RebuildReport {
  readonly tables: readonly string[];
  readonly records: number;
}

export function isRebuildable(sink: unknown): sink is RebuildableSink {
  return typeof (sink as Partial<RebuildableSink>).prepareRebuild === "function";
}

/** The table each topic carries, read from its first record; empty topics have none yet. */
async function tablesOf(options: RebuildOptions): Promise<Map<string, TableId>> {
  const tables = new Map<string, TableId>();
  const consumer = await options.log.consumer(`${options.group}.probe`, options.topics);
  try {
    for (const topic of options.topics) {
      for (const { partition } of await options.log.partitionOffsets(topic)) await consumer.seek(topic, partition, { kind: "earliest" });
    }
    const pending = new Set(options.topics);
    for (let round = 0; round < 20 && pending.size > 0; round++) {
      const records = await consumer.poll({ maxRecords: 1_000, maxBytes: 16 << 20, maxWaitMs: 100, signal: options.signal });
      if (records.length === 0) break;
      for (const record of records) {
        if (!pending.has(record.topic)) continue;
        const event = await options.decoder.decode(record);
        if (!event) continue;
        const { source, database, schema, table } = event.schema;
        tables.set(record.topic, { source, database, schema, table });
        pending.delete(record.topic);
      }
    }
  } finally {
    await consumer.close();
  }
  return tables;
}

export async function rebuildSink(options: RebuildOptions): Promise<RebuildReport> {
  const { sink, log, signal, logger } = options;
  const tables = await tablesOf(options);
  const prepared: TableId[] = [];
  try {
    for (const table of tables.values()) {
      await sink.prepareRebuild(table, signal);
      prepared.push(table);
    }
    // End offsets taken after the new generations exist: later changes reach them as live writes.
    const targets = new Map<string, bigint>();
    const rebuiltTo = new Map<string, bigint>();
    for (const topic of tables.keys()) {
      for (const end of await log.endOffsets(topic)) {
        targets.set(`${topic}:${end.partition}`, end.offset);
        rebuiltTo.set(partitionKey(topic, end.partition), end.offset);
      }
    }
    const consumer = await log.consumer(options.group, [...tables.keys()]);
    let records = 0;
    try {
      for (const key of targets.keys()) {
        const [topic, partition] = [key.slice(0, key.lastIndexOf(":")), Number(key.slice(key.lastIndexOf(":") + 1))];
        await consumer.seek(topic, partition, { kind: "earliest" });
      }
      const done = () => [...targets].every(([key, end]) => {
        const split = key.lastIndexOf(":");
        const position = consumer.position(key.slice(0, split), Number(key.slice(split + 1)));
        return end === 0n || (position !== null && position >= end);
      });
      while (!done()) {
        signal.throwIfAborted();
        const batch = await consumer.poll({ maxRecords: options.batchRecords ?? 5_000, maxBytes: 16 << 20, maxWaitMs: 200, signal });
        const changes: SinkChange[] = [];
        for (const record of batch) {
          const end = targets.get(`${record.topic}:${record.partition}`);
          if (end === undefined || record.offset >= end) continue;
          const event = await options.decoder.decode(record);
          if (event) changes.push({ event, origin: { topic: record.topic, partition: record.partition, offset: record.offset } });
        }
        if (changes.length === 0) continue;
        const result = await sink.writeRebuild(changes, signal);
        if (result.failures.length > 0) {
          const first = result.failures[0]!;
          throw new SluiceError(`rebuild of sink ${sink.name} failed: ${first.error.message}`, {
            code: "REBUILD_FAILED",
            cause: first.error,
            context: { component: "rebuild", sink: sink.name, table: changes[first.index]?.event.schema.table },
          });
        }
        records += changes.length;
      }
    } finally {
      await consumer.close();
    }
    for (const table of prepared) await sink.swap(table, signal);
    const names = prepared.map((t) => `${t.schema}.${t.table}`);
    logger.info({ sink: sink.name, tables: names, records }, "rebuild swapped in");
    if (isVersionedSink(sink)) {
      const rebound = await rebindOffsets(sink, log, options.topics, rebuiltTo, signal);
      if (rebound.length > 0) logger.info({ sink: sink.name, topics: [...new Set(rebound.map((o) => o.topic))] }, "stored offsets from another topic log moved to where the rebuild ended");
    }
    return { tables: names, records };
  } catch (error) {
    for (const table of prepared) await sink.abortRebuild(table, new AbortController().signal).catch(() => undefined);
    throw error;
  }
}
