/**
 * Zero-downtime rebuild of a sink: every table gets a new generation filled from its topic from
 * the beginning while the live one keeps serving (and keeps receiving live writes, which the sink
 * mirrors into the new generation), then each table swaps atomically once caught up. Stored
 * offsets that belong to another log (a replaced log file, re-created topics: log-identity.ts) are
 * then moved to where the rebuild ended, so a sink refused for them reads on from there.
 */
import type { PartitionOffsets, Position, SinkChange, TableId, TableSchema, TopicLog } from "../connectors/contracts.ts";
import { ConnectionError, SluiceError } from "../connectors/errors.ts";
import { isVersionedSink } from "../connectors/sinks/contract.ts";
import { errorMessage } from "../connectors/sinks/errors.ts";
import { personalValuesOf, redactFailures, Redactor } from "../connectors/sinks/personal-values.ts";
import type { RebuildableSink, RebuildRowCounts } from "../connectors/sinks/contract.ts";
import { controlledTopic } from "./control-records.ts";
import { partitionKey, rebindOffsets } from "./log-identity.ts";
import type { Logger } from "../runtime/logger.ts";
import { retry } from "../runtime/backoff.ts";
import type { BackoffPolicy } from "../runtime/backoff.ts";
import type { RecordDecoder } from "./sink-runner.ts";
import { RebuildProgressMeter } from "./rebuild-progress.ts";
import { Misfits, ReplayShapes } from "./rebuild-shape.ts";
import type { RebuildProgress } from "./rebuild-progress.ts";
import { RebuildDecoder, recordWhere } from "./rebuild-records.ts";
import type { LeftOutRecord } from "./rebuild-records.ts";
import { REBUILD_SINK_SHARED, sinkSharedError } from "./rebuild-sharing.ts";
import type { OtherSinkProcess } from "./rebuild-sharing.ts";

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
  /**
   * The sink's retry backoff (its `retry.initial`/`retry.max`): a step that meets a retriable
   * failure of the target (unreachable, overloaded) is tried again until it succeeds or the
   * rebuild is stopped, as the live sink waits out an outage. Default 200 ms doubling to 30 s.
   */
  readonly retry?: BackoffPolicy;
  /** Progress as it goes (at most twice a second, and at every step): for /status, metrics and a terminal. */
  readonly onProgress?: (progress: RebuildProgress) => void;
  /**
   * Erasures (`sluice forget`) made while the rebuild runs, erased again after each batch and before
   * the swap: a value decrypted before its key was dropped and written after the erase would
   * otherwise be swapped in (governance/rebuild-erasures.ts). Needed wherever personal columns are decrypted.
   */
  readonly erasures?: RebuildErasures;
  /**
   * Runs each step of the rebuild that writes (a batch from its first record decoded to its erasures;
   * the swap) as one, so that the erasures of the same process do not run inside one (sink-erasures.ts).
   */
  readonly exclusive?: <T>(step: () => Promise<T>) => Promise<T>;
  /**
   * The other processes that run the sink now (rebuild-sharing.ts): the rebuild is refused
   * (REBUILD_SINK_SHARED) when there are any before it starts, while it reads (checked at most
   * once a second) and just before its swap. `changed`: another process joined the group since the
   * rebuild began (a command's hold saw it rebalance; a running sink's consumer saw its member:
   * runningSinkSharing), which refuses the swap too (a process that joined and left between two checks).
   */
  readonly sharing?: { readonly group: string; readonly others: () => Promise<readonly OtherSinkProcess[]>; readonly changed?: () => boolean };
}

/** The erasures a rebuild erases again in its new generations (RebuildOptions.erasures). */
export interface RebuildErasures {
  /**
   * Erases in the sink (every generation of its tables) the subjects whose keys were destroyed since
   * the rebuild began and that it did not erase yet; `final`, just before the swap: after reading
   * the key topic to its end.
   */
  eraseDestroyed(final: boolean): Promise<void>;
}

export interface RebuildReport {
  readonly tables: readonly string[];
  readonly records: number;
  /** Records no decoder could read (rebuild-records.ts), left out of the rebuild. */
  readonly leftOut: number;
  /** The first of them, with where they are and why. */
  readonly leftOutRecords: readonly LeftOutRecord[];
}

export function isRebuildable(sink: unknown): sink is RebuildableSink {
  return typeof (sink as Partial<RebuildableSink>).prepareRebuild === "function";
}

/** A partition whose first records are gone (retention by age or size, or removed by hand). */
export interface HistoryGap {
  readonly topic: string;
  readonly partition: number;
  /** The first offset still kept: records 0 to start - 1 are gone. */
  readonly start: bigint;
  /** Found while the rebuild read: the first offset gone that it had not read yet (records before it were read). */
  readonly from?: bigint;
}

/**
 * Where the topics' history is incomplete: partitions that no longer start at offset 0. Compaction
 * keeps the latest record of every key and never moves a partition's first offset (Kafka's log
 * cleaner does not, nor does the embedded log's), so a compacted partition that starts at 0 holds
 * the current state of every key; only deletion moves it: retention by age or size (cleanup policy
 * delete or compact,delete, also before a topic was switched to compact) or DeleteRecords.
 */
export async function historyGaps(log: TopicLog, topics: readonly string[]): Promise<HistoryGap[]> {
  const gaps: HistoryGap[] = [];
  for (const topic of topics) {
    for (const range of await log.partitionOffsets(topic)) if (range.start > 0n) gaps.push({ topic, partition: range.partition, start: range.start });
  }
  return gaps;
}

const SHOWN_GAPS = 10;

/**
 * Every partition whose records retention deleted before the rebuild read them: those the consumer
 * skipped (it tells only the partitions it polled), and those whose first offset is now past where
 * the consumer is (not polled since). Before, the refusal named only the partitions of the poll
 * that met the gap, often one, and the operator did not know the extent.
 */
async function gapsWhileReading(
  log: TopicLog,
  targets: ReadonlyMap<string, bigint>,
  skipped: readonly { readonly topic: string; readonly partition: number; readonly from: bigint; readonly to: bigint }[],
  position: (topic: string, partition: number) => bigint | null,
  logger: Logger,
  sink: string,
): Promise<{ gaps: HistoryGap[]; unchecked?: string }> {
  const gaps = new Map<string, HistoryGap>();
  let unchecked: string | undefined;
  for (const s of skipped) gaps.set(partitionKey(s.topic, s.partition), { topic: s.topic, partition: s.partition, start: s.to, from: s.from });
  for (const topic of new Set([...targets.keys()].map((key) => key.slice(0, key.lastIndexOf(":"))))) {
    // The topic log failing now (unreachable) must not hide the refusal: the partitions the consumer skipped are named still.
    let ranges: PartitionOffsets[];
    try {
      ranges = await log.partitionOffsets(topic);
    } catch (error) {
      logger.warn({ err: error, sink, topic }, "could not look up the first offsets of the topic's partitions for the rebuild's refusal: it names only the partitions the rebuild met");
      unchecked = errorMessage(error);
      break;
    }
    for (const range of ranges) {
      const end = targets.get(`${topic}:${range.partition}`);
      const at = position(topic, range.partition) ?? 0n;
      if (end === undefined || gaps.has(partitionKey(topic, range.partition)) || at >= end || range.start <= at) continue;
      gaps.set(partitionKey(topic, range.partition), { topic, partition: range.partition, start: range.start, from: at });
    }
  }
  const sorted = [...gaps.values()].sort((a, b) => (a.topic === b.topic ? a.partition - b.partition : a.topic < b.topic ? -1 : 1));
  return unchecked === undefined ? { gaps: sorted } : { gaps: sorted, unchecked };
}

/** What a rebuild from incomplete history would do, and what the operator can do instead. */
export function describeHistoryGaps(sink: string, gaps: readonly HistoryGap[]): string {
  const shown = gaps
    .slice(0, SHOWN_GAPS)
    .map((g) => `${g.topic}:${g.partition} starts at offset ${g.start}${g.from !== undefined && g.from > 0n && g.from < g.start ? ` (offsets ${g.from} to ${g.start - 1n} gone before the rebuild read them)` : ""}`)
    .join(", ");
  const more = gaps.length > SHOWN_GAPS ? ` and ${gaps.length - SHOWN_GAPS} more` : "";
  return (
    `the topics' history is incomplete: retention removed the first records of ${gaps.length} partition${gaps.length === 1 ? "" : "s"} (${shown}${more}), ` +
    `so a rebuild of sink "${sink}" would lose every row whose changes are gone. ` +
    "Re-snapshot instead: the snapshot rewrites each table, starting with a reset, into the current tables (no rebuild needed); " +
    "see docs/operations.md, \"Rebuilds need complete history\""
  );
}

/** `unchecked`: why the other partitions could not be looked up (the refusal names only those met). */
export function historyIncompleteError(sink: string, gaps: readonly HistoryGap[], unchecked?: string): SluiceError {
  const first = gaps[0]!;
  const note = unchecked === undefined ? "" : ` (other partitions not checked: ${unchecked})`;
  return new SluiceError(`rebuild refused: ${describeHistoryGaps(sink, gaps)}${note}. Nothing changed.`, {
    code: "REBUILD_HISTORY_INCOMPLETE",
    context: { component: "rebuild", sink, topic: first.topic, partition: first.partition, offset: first.start.toString(), partitions: gaps.length },
  });
}

export interface RowCountCheck {
  /** schema.table */
  readonly table: string;
  readonly counts: RebuildRowCounts;
  /** Records the live target may not have applied yet (see rebuildTolerance). */
  readonly tolerance: bigint;
}

export interface RowCountMismatch {
  readonly table: string;
  readonly expected: number;
  readonly found: number;
  readonly tolerance: bigint;
}

/**
 * Tables whose shadow differs from the live target by more rows than the changes in flight can
 * explain. Each record changes a table's row count by at most one, so live and shadow, which get
 * the same live writes since the rebuild began, differ by at most the records one of them has
 * not applied yet. A table without a live target is not checked.
 */
export function rowCountMismatches(checks: readonly RowCountCheck[]): RowCountMismatch[] {
  const out: RowCountMismatch[] = [];
  for (const { table, counts, tolerance } of checks) {
    if (counts.live === null) continue;
    const difference = BigInt(counts.live - counts.shadow);
    if ((difference < 0n ? -difference : difference) > tolerance) out.push({ table, expected: counts.live, found: counts.shadow, tolerance });
  }
  return out;
}

/**
 * Per partition, the records past what the live target applied (its stored offsets) up to the
 * log's end now: the shadow has those the rebuild read (below its targets), and both may be
 * part-way through the newest ones. A partition the live target never applied counts whole.
 */
export function rebuildTolerance(partitions: readonly { readonly start: bigint; readonly end: bigint; readonly applied: bigint | null }[]): bigint {
  let total = 0n;
  for (const { start, end, applied } of partitions) {
    const from = applied ?? start;
    if (end > from) total += end - from;
  }
  return total;
}

function rowCountError(sink: string, mismatches: readonly RowCountMismatch[]): SluiceError {
  const list = mismatches.map((m) => `${m.table}: expected ${m.expected} rows (the live target), found ${m.found} in the rebuilt one (changes in flight explain up to ${m.tolerance})`).join("; ");
  const first = mismatches[0]!;
  return new SluiceError(
    `rebuild of sink "${sink}" refused before the swap: ${list}. The live tables are unchanged and keep serving; the rebuilt ones were dropped. ` +
      "Check the topics' history (docs/operations.md, \"Rebuilds need complete history\") and run the rebuild again when the sink has caught up.",
    { code: "REBUILD_ROW_COUNT_MISMATCH", context: { component: "rebuild", sink, table: first.table, expected: first.expected, found: first.found } },
  );
}

/** Records read back from a partition's end at first, for its newest change; 16 times more each time a topic shows none. */
const TAIL_RECORDS = 64n;

/**
 * The schema of each data topic's newest change (by version), from the partitions' last records
 * (further back while they hold no change: tombstones), and the control topics among the topics
 * (their records name their table's topic: control-records.ts). Empty topics have none yet.
 */
async function tablesOf(options: RebuildOptions, decoder: RebuildDecoder): Promise<{ tables: Map<string, TableSchema>; controls: Set<string> }> {
  const tables = new Map<string, TableSchema>();
  const newest = new Map<string, bigint>();
  const controls = new Set<string>();
  const ranges = new Map<string, PartitionOffsets[]>();
  for (const topic of options.topics) ranges.set(topic, await options.log.partitionOffsets(topic));
  const filled = (topic: string) => ranges.get(topic)!.filter((range) => range.end > range.start);
  let pending = options.topics.filter((topic) => filled(topic).length > 0);
  const consumer = await options.log.consumer(`${options.group}.probe`, options.topics);
  try {
    for (let tail = TAIL_RECORDS; pending.length > 0; tail *= 16n) {
      for (const topic of pending) {
        for (const range of filled(topic)) await consumer.seek(topic, range.partition, { kind: "offset", offset: range.end - tail > range.start ? range.end - tail : range.start });
      }
      // Read to the end offsets taken at the start: a Kafka consumer's first polls are empty while it fetches, so an empty poll proves nothing.
      const reading = new Set(pending);
      const exhausted = (topic: string) => filled(topic).every((range) => (consumer.position(topic, range.partition) ?? -1n) >= range.end);
      for (;;) {
        for (const topic of reading) if (exhausted(topic)) reading.delete(topic);
        if (reading.size === 0) break;
        options.signal.throwIfAborted();
        const records = await consumer.poll({ maxRecords: 1_000, maxBytes: 16 << 20, maxWaitMs: 200, signal: options.signal });
        for (const record of records) {
          if (!reading.has(record.topic)) continue;
          if (controlledTopic(record) !== null) {
            controls.add(record.topic);
            continue;
          }
          const event = await decoder.decode(record);
          if (!event) continue;
          const version = event.source.position.change;
          if (version < (newest.get(record.topic) ?? -1n)) continue;
          newest.set(record.topic, version);
          tables.set(record.topic, event.schema);
        }
      }
      pending = pending.filter((topic) => !tables.has(topic) && !controls.has(topic) && filled(topic).some((range) => range.end - tail > range.start));
    }
  } finally {
    await consumer.close();
  }
  return { tables, controls };
}

/**
 * Per data topic, its newest truncate (a TRUNCATE or a snapshot's closing reset) in the control
 * topics: changes at or below it are left out of the replay, as the truncate removes them anyway;
 * and its newest snapshot reset, whose snapshot may cover changes that do not fit the table's
 * newest shape (rebuild-shape.ts, Misfits).
 */
/** Whether `next` is a newer truncate than `known`: by version, then by commit (an online snapshot's reset may have the version of an earlier one). */
function newerTruncate(known: Position | undefined, next: Position): boolean {
  return known === undefined || known.change < next.change || (known.change === next.change && known.commit < next.commit);
}

async function newestTruncates(
  options: RebuildOptions,
  decoder: RebuildDecoder,
  controls: ReadonlySet<string>,
  tables: ReadonlyMap<string, TableSchema>,
): Promise<{ truncates: Map<string, SinkChange>; resets: Map<string, Position> }> {
  const truncates = new Map<string, SinkChange>();
  const resets = new Map<string, Position>();
  if (controls.size === 0) return { truncates, resets };
  const ends = new Map<string, bigint>();
  for (const topic of controls) for (const end of await options.log.endOffsets(topic)) ends.set(`${topic}:${end.partition}`, end.offset);
  const consumer = await options.log.consumer(`${options.group}.probe`, [...controls]);
  try {
    for (const key of ends.keys()) await consumer.seek(key.slice(0, key.lastIndexOf(":")), Number(key.slice(key.lastIndexOf(":") + 1)), { kind: "earliest" });
    const done = () => [...ends].every(([key, end]) => end === 0n || (consumer.position(key.slice(0, key.lastIndexOf(":")), Number(key.slice(key.lastIndexOf(":") + 1))) ?? -1n) >= end);
    while (!done()) {
      options.signal.throwIfAborted();
      for (const record of await consumer.poll({ maxRecords: 1_000, maxBytes: 16 << 20, maxWaitMs: 200, signal: options.signal })) {
        const end = ends.get(`${record.topic}:${record.partition}`);
        const controlled = controlledTopic(record);
        if (end === undefined || record.offset >= end || controlled === null || !tables.has(controlled)) continue;
        const event = await decoder.decode(record);
        if (!event) continue;
        if (newerTruncate(truncates.get(controlled)?.event.source.position, event.source.position)) {
          truncates.set(controlled, { event, origin: { topic: record.topic, partition: record.partition, offset: record.offset } });
        }
        if (event.source.snapshot && newerTruncate(resets.get(controlled), event.source.position)) resets.set(controlled, event.source.position);
      }
    }
  } finally {
    await consumer.close();
  }
  return { truncates, resets };
}

async function writeRebuildBatch(sink: RebuildableSink, changes: SinkChange[], signal: AbortSignal, waitOut: TargetRetry): Promise<number> {
  if (changes.length === 0) return 0;
  // A server's refusal may quote a row's values: the personal ones never reach the rebuild's error (log, progress, command output).
  // Redacted inside the retried step, as each failure is warned and shown while the rebuild waits; in place, so it stays retriable or not.
  let redactor: Redactor | undefined;
  const redacted = (error: unknown) => {
    redactor ??= new Redactor(personalValuesOf(changes.map((c) => c.event)));
    return error instanceof Error ? redactor.error(error) : error;
  };
  // The batch's positions still to write: items the target refused as temporary (an Elasticsearch item's 429 or 5xx)
  // are written again, alone, as the live sink writes them again; refused for longer than the sink's own rounds, they
  // are waited out as a whole request's 429 is, never ending the rebuild.
  let pending = changes.map((_, index) => index);
  const write = async () => {
    let result: Awaited<ReturnType<RebuildableSink["writeRebuild"]>>;
    try {
      result = await sink.writeRebuild(pending.map((index) => changes[index]!), signal);
    } catch (error) {
      throw redacted(error);
    }
    const permanent = result.failures.filter((f) => !f.retriable);
    if (permanent.length > 0 || result.failures.length === 0) return { failures: permanent.map((f) => ({ ...f, index: pending[f.index]! })) };
    const refused = result.failures.map((f) => pending[f.index]!);
    const first = result.failures[0]!;
    const change = changes[refused[0]!]!;
    pending = refused;
    throw redacted(
      new ConnectionError(`the target refused ${refused.length} item${refused.length === 1 ? "" : "s"} as temporary (first at ${recordWhere(change.origin)}: ${first.error.message})`, {
        code: "REBUILD_ITEMS_REFUSED",
        context: { component: "rebuild", sink: sink.name, table: change.event.schema.table, topic: change.origin.topic, partition: change.origin.partition, offset: change.origin.offset.toString() },
        cause: first.error,
      }),
    );
  };
  // Written again after a retriable failure of the whole request: the new generation applies by version, so rows written twice are written once.
  const result = await waitOut("write", write);
  if (result.failures.length > 0) {
    const first = result.failures[0]!;
    redactFailures([first], changes);
    const change = changes[first.index];
    const at = change ? ` at ${recordWhere(change.origin)}` : "";
    throw new SluiceError(`rebuild of sink ${sink.name} failed${at}: ${first.error.message}`, {
      code: "REBUILD_FAILED",
      cause: first.error,
      context: {
        component: "rebuild",
        sink: sink.name,
        table: change?.event.schema.table,
        ...(change ? { topic: change.origin.topic, partition: change.origin.partition, offset: change.origin.offset.toString() } : {}),
      },
    });
  }
  return changes.length;
}

export async function rebuildSink(options: RebuildOptions): Promise<RebuildReport> {
  const meter = new RebuildProgressMeter(options.sink.name, options.onProgress ?? (() => undefined));
  try {
    const report = await rebuild(options, meter);
    meter.step("done");
    return report;
  } catch (error) {
    meter.step("failed", error instanceof Error ? error.message : String(error));
    throw error;
  }
}

async function rebuild(options: RebuildOptions, meter: RebuildProgressMeter): Promise<RebuildReport> {
  const { sink, log, signal, logger } = options;
  const exclusive = options.exclusive ?? (<T>(step: () => Promise<T>) => step());
  const waitOut = targetRetry(options, meter);
  const gaps = await historyGaps(log, options.topics);
  if (gaps.length > 0) throw historyIncompleteError(sink.name, gaps);
  const alone = sharedCheck(options);
  await alone(false);
  const decoder = new RebuildDecoder(options.decoder, sink.name, logger);
  const { tables, controls } = await tablesOf(options, decoder);
  const shapes = new ReplayShapes(sink.name, tables);
  /** Per data topic, its newest truncate: applied once every row is written (it removes rows at or below its version only). */
  const { truncates, resets } = await newestTruncates(options, decoder, controls, tables);
  const misfits = new Misfits(resets);
  const prepared: TableId[] = [];
  try {
    // Each new generation in its table's newest shape: older changes convert into it (numbers into text) or stop the rebuild here.
    for (const schema of tables.values()) {
      const table: TableId = { source: schema.source, database: schema.database, schema: schema.schema, table: schema.table };
      await waitOut("prepare", () => sink.prepareRebuild(table, signal, schema));
      prepared.push(table);
    }
    // End offsets taken after the new generations exist: later changes reach them as live writes.
    const targets = new Map<string, bigint>();
    const rebuiltTo = new Map<string, bigint>();
    for (const topic of [...tables.keys(), ...controls]) {
      for (const end of await log.endOffsets(topic)) {
        targets.set(`${topic}:${end.partition}`, end.offset);
        rebuiltTo.set(partitionKey(topic, end.partition), end.offset);
      }
    }
    // Progress counts offsets from each partition's first (records before it are gone or never were) to the targets.
    const starts = new Map<string, bigint>();
    for (const topic of [...tables.keys(), ...controls]) for (const range of await log.partitionOffsets(topic)) starts.set(`${topic}:${range.partition}`, range.start);
    const startOf = (key: string) => starts.get(key) ?? 0n;
    let total = 0n;
    for (const [key, end] of targets) if (end > startOf(key)) total += end - startOf(key);
    meter.planned([...tables.values()].map((t) => `${t.schema}.${t.table}`), Number(total));
    const consumer = await log.consumer(options.group, [...tables.keys(), ...controls]);
    // A process that joined meanwhile (it may not know of the new generations) refuses the rebuild too.
    await alone(true);
    let records = 0;
    try {
      for (const key of targets.keys()) {
        const [topic, partition] = [key.slice(0, key.lastIndexOf(":")), Number(key.slice(key.lastIndexOf(":") + 1))];
        // Offset 0, where the history check found every partition starting: records retention deleted since are told as skipped (below).
        await consumer.seek(topic, partition, { kind: "offset", offset: 0n });
      }
      const readSoFar = () => {
        let read = 0n;
        for (const [key, end] of targets) {
          const split = key.lastIndexOf(":");
          const position = consumer.position(key.slice(0, split), Number(key.slice(split + 1))) ?? startOf(key);
          const upTo = position < end ? position : end;
          if (upTo > startOf(key)) read += upTo - startOf(key);
        }
        return Number(read);
      };
      const done = () => [...targets].every(([key, end]) => {
        const split = key.lastIndexOf(":");
        const position = consumer.position(key.slice(0, split), Number(key.slice(split + 1)));
        return end === 0n || (position !== null && position >= end);
      });
      while (!done()) {
        signal.throwIfAborted();
        const batch = await consumer.poll({ maxRecords: options.batchRecords ?? 5_000, maxBytes: 16 << 20, maxWaitMs: 200, signal });
        // Retention deleted records while the rebuild read (it started complete): the new generation would miss their rows.
        const skipped = consumer.takeSkipped?.() ?? [];
        if (skipped.length > 0) {
          const { gaps, unchecked } = await gapsWhileReading(log, targets, skipped, (topic, partition) => consumer.position(topic, partition), logger, sink.name);
          throw historyIncompleteError(sink.name, gaps, unchecked);
        }
        records += await exclusive(async () => {
          const changes: SinkChange[] = [];
          for (const record of batch) {
            const end = targets.get(`${record.topic}:${record.partition}`);
            if (end === undefined || record.offset >= end) continue;
            const controlled = controlledTopic(record);
            if (controlled !== null && !tables.has(controlled)) continue;
            const event = await decoder.decode(record);
            if (!event) continue;
            const change = { event, origin: { topic: record.topic, partition: record.partition, offset: record.offset } };
            if (controlled === null) {
              if (event.source.position.change <= (truncates.get(record.topic)?.event.source.position.change ?? -1n)) continue;
              const refusal = shapes.misfit(change);
              if (refusal) {
                misfits.add(change, refusal);
                continue;
              }
              misfits.fits(change);
              changes.push(change);
            } else if (newerTruncate(truncates.get(controlled)?.event.source.position, event.source.position)) truncates.set(controlled, change);
          }
          const written = await writeRebuildBatch(sink, changes, signal, waitOut);
          await options.erasures?.eraseDestroyed(false);
          return written;
        });
        meter.leftOut(decoder.leftOut);
        meter.read(readSoFar());
        await alone(true, READING_SHARED_CHECK_MS);
      }
      misfits.check();
      // A truncate carries no row: written under its table's newest schema, which the new generation has.
      const closing = [...truncates].map(([topic, change]) => ({ ...change, event: { ...change.event, schema: tables.get(topic) ?? change.event.schema } }));
      records += await exclusive(() => writeRebuildBatch(sink, closing, signal, waitOut));
      meter.leftOut(decoder.leftOut);
      meter.read(readSoFar());
    } finally {
      await consumer.close();
    }
    meter.step("checking");
    await checkRowCounts(sink, log, tables, signal, logger, waitOut);
    meter.step("swapping");
    await alone(true);
    await exclusive(async () => {
      // After every write of the rebuild: an erasure whose tombstone this last read misses erases after them, in the new generation too.
      await options.erasures?.eraseDestroyed(true);
      // Again at the last moment: the erasures may have taken a while.
      await alone(true);
      // Each table's swap waits out its target like the steps before it: a sink's swap tried again finds it done when the
      // server made it and its reply was lost, so a table is never swapped twice nor reported failed after all the work.
      for (const table of prepared) await waitOut("swap", () => sink.swap(table, signal));
    });
    const names = prepared.map((t) => `${t.schema}.${t.table}`).sort();
    if (options.sharing?.changed?.()) {
      // Between the last check and the swap: a daemon that started the sink before the rebuild held its group writes to the tables the swap replaced.
      logger.warn({ sink: sink.name, group: options.sharing.group }, "a process joined or left the sink's consumer group while the rebuild swapped in its tables: restart the sink's other processes, so that they write to the new tables");
    }
    logger.info({ sink: sink.name, tables: names, records, leftOut: decoder.leftOut }, "rebuild swapped in");
    if (isVersionedSink(sink)) {
      const rebound = await rebindOffsets(sink, log, options.topics, rebuiltTo, signal);
      if (rebound.length > 0) logger.info({ sink: sink.name, topics: [...new Set(rebound.map((o) => o.topic))] }, "stored offsets from another topic log moved to where the rebuild ended");
    }
    return { tables: names, records, leftOut: decoder.leftOut, leftOutRecords: decoder.leftOutShown };
  } catch (error) {
    // Refused because another process runs the sink: it may have found the new tables at its start and write into them; they stay, as an interrupted rebuild.
    if (error instanceof SluiceError && error.code === REBUILD_SINK_SHARED && prepared.length > 0) {
      logger.warn({ sink: sink.name, tables: prepared.map((t) => `${t.schema}.${t.table}`) }, "rebuild refused before its swap: its half-built tables are left for a rebuild run again (or sluice replay --abandon-rebuild)");
    } else {
      for (const table of prepared) await sink.abortRebuild(table, new AbortController().signal).catch(() => undefined);
    }
    throw error;
  }
}

/** Runs one step of the rebuild against the sink's target, waiting out its retriable failures (RebuildOptions.retry). */
type TargetRetry = <T>(step: "prepare" | "write" | "check" | "swap", operation: () => Promise<T>) => Promise<T>;

const DEFAULT_TARGET_RETRY: BackoffPolicy = { initialMs: 200, maxMs: 30_000 };

/**
 * A target that cannot be reached for a while (restarted, a network cut) no longer ends the rebuild:
 * its step is tried again with the sink's backoff, warned each time and shown in its progress
 * (`waiting`), until it goes through or the rebuild is stopped. Before, the first such failure
 * ended it, and its new generations could not be dropped on an unreachable target: they were left
 * and reported as a rebuild interrupted by a stopped process. Failures that are not retriable (a
 * refused row, a type the target refuses) still end it at once.
 */
function targetRetry(options: RebuildOptions, meter: RebuildProgressMeter): TargetRetry {
  const policy = options.retry ?? DEFAULT_TARGET_RETRY;
  return async (step, operation) => {
    let waited = false;
    try {
      return await retry(operation, {
        ...policy,
        signal: options.signal,
        onRetry: (error, attempt, delayMs) => {
          waited = true;
          const reason = error instanceof Error ? error.message : String(error);
          meter.waiting(`its target failed (${reason}); trying the ${step} again in ${Math.ceil(delayMs / 1000)} s`);
          options.logger.warn({ sink: options.sink.name, step, attempt: attempt + 1, delayMs, err: reason }, `rebuild of sink "${options.sink.name}" waits for its target: the ${step} failed and is tried again`);
        },
      });
    } finally {
      if (waited) meter.waiting(null);
    }
  };
}

/** How often a rebuild looks for other processes of its sink while it reads. */
const READING_SHARED_CHECK_MS = 1_000;

/** Throws REBUILD_SINK_SHARED when other processes run the sink (RebuildOptions.sharing); `everyMs`: not again sooner. */
function sharedCheck(options: RebuildOptions): (prepared: boolean, everyMs?: number) => Promise<void> {
  const sharing = options.sharing;
  let lastMs = -Infinity;
  return async (prepared, everyMs = 0) => {
    if (sharing === undefined || performance.now() - lastMs < everyMs) return;
    lastMs = performance.now();
    const others = await sharing.others();
    if (others.length > 0 || sharing.changed?.() === true) throw sinkSharedError(options.sink.name, sharing.group, others, "rebuild", prepared);
  };
}

/** Refuses the swap (REBUILD_ROW_COUNT_MISMATCH) when a shadow's row count is off beyond the changes in flight. */
async function checkRowCounts(sink: RebuildableSink, log: TopicLog, tables: ReadonlyMap<string, TableId>, signal: AbortSignal, logger: Logger, waitOut: TargetRetry): Promise<void> {
  const rowCounts = sink.rebuildRowCounts?.bind(sink);
  if (!rowCounts) return;
  const applied = isVersionedSink(sink) ? await waitOut("check", () => sink.committedOffsets(signal)) : [];
  const checks: RowCountCheck[] = [];
  for (const [topic, table] of tables) {
    const counts = await waitOut("check", () => rowCounts(table, signal));
    // Offsets read after counting: changes arriving in between widen the tolerance, never narrow it.
    const partitions = (await log.partitionOffsets(topic)).map((range) => ({
      start: range.start,
      end: range.end,
      applied: applied.find((o) => o.topic === topic && o.partition === range.partition)?.offset ?? null,
    }));
    checks.push({ table: `${table.schema}.${table.table}`, counts, tolerance: rebuildTolerance(partitions) });
  }
  logger.info({ sink: sink.name, counts: checks.map((c) => ({ table: c.table, live: c.counts.live, rebuilt: c.counts.shadow, tolerance: c.tolerance.toString() })) }, "rebuild row counts");
  const mismatches = rowCountMismatches(checks);
  if (mismatches.length > 0) throw rowCountError(sink.name, mismatches);
}
