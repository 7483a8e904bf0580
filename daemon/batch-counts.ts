/**
 * What capture's and the sinks' statistics need of a batch's changes: counts per table and op, and
 * the commit times of its transactions. Capture takes them when it hands a batch to the topic log
 * (BatchSummary) and lets go of the events then, not when the batch is acknowledged: held that
 * long, the events of every batch in flight were copied by each scavenge and promoted.
 */
import type { ChangeEvent } from "../connectors/contracts.ts";
import { tableName } from "../connectors/contracts.ts";
import { maxOf } from "../runtime/arrays.ts";

/** Changes per table and op, so a counter takes one labelled increment per pair: one per change is a measurable cost at tens of thousands a second. */
export function countPerTableAndOp(events: readonly ChangeEvent[]): { table: string; op: string; count: number }[] {
  const counts = new Map<string, { table: string; op: string; count: number }>();
  // A batch's changes come in runs of one table (one schema object): its name is built once a run.
  // Its entry is looked up once a run of one table and op, not once a change (a key string per change was garbage).
  let schema: ChangeEvent["schema"] | undefined;
  let table = "";
  let op = "";
  let entry: { table: string; op: string; count: number } | undefined;
  // Indexed: once a batch, a for-of allocated an iterator result per change (runtime/arrays.ts).
  for (let e = 0; e < events.length; e++) {
    const event = events[e]!;
    if (event.schema !== schema || event.op !== op || entry === undefined) {
      if (event.schema !== schema) {
        schema = event.schema;
        table = tableName(schema);
      }
      op = event.op;
      const key = `${table}\u0000${op}`;
      entry = counts.get(key);
      if (entry === undefined) counts.set(key, (entry = { table, op, count: 0 }));
    }
    entry.count++;
  }
  return [...counts.values()];
}

/** At most this many commit times per batch feed the latency histograms: the cost per batch stays bounded when transactions are tiny. */
const MAX_LATENCY_SAMPLES = 64;

/**
 * The commit times (ms) of the transactions in a batch, one per run of equal commit times
 * (a transaction's changes share one), evenly sampled down to MAX_LATENCY_SAMPLES; snapshot
 * reads are left out (their commit time is when the snapshot began, not a commit).
 */
export function commitTimesOf(events: readonly ChangeEvent[]): number[] {
  const times: number[] = [];
  let previous = Number.NaN;
  for (let e = 0; e < events.length; e++) {
    const event = events[e]!;
    const at = event.source.commitTimeMs;
    if (at === previous || event.source.snapshot) continue;
    times.push(at);
    previous = at;
  }
  return sampled(times);
}

/** Evenly sampled down to MAX_LATENCY_SAMPLES. */
function sampled(times: number[]): number[] {
  if (times.length <= MAX_LATENCY_SAMPLES) return times;
  const step = times.length / MAX_LATENCY_SAMPLES;
  return Array.from({ length: MAX_LATENCY_SAMPLES }, (_, i) => times[Math.floor(i * step)]!);
}

/** A batch's changes as capture's statistics see them once its events are let go of. */
export interface BatchSummary {
  /** Changes per table and op (countPerTableAndOp). */
  readonly counts: readonly { readonly table: string; readonly op: string; readonly count: number }[];
  /** The commit times of its transactions, sampled (commitTimesOf). */
  readonly commitTimesMs: readonly number[];
  /** The last change's commit time (ms), and the latest of them; null for a batch without changes. */
  readonly lastCommitMs: number | null;
  readonly latestCommitMs: number | null;
}

export function summarizeBatch(events: readonly ChangeEvent[]): BatchSummary {
  return {
    counts: countPerTableAndOp(events),
    commitTimesMs: commitTimesOf(events),
    lastCommitMs: events.length === 0 ? null : events[events.length - 1]!.source.commitTimeMs,
    latestCommitMs: events.length === 0 ? null : maxOf(events, (e) => e.source.commitTimeMs),
  };
}

/** The summary of a run of batches stored as one (capture joins small source batches): counts added, commit times sampled as for one batch. */
export function mergeSummaries(summaries: readonly BatchSummary[]): BatchSummary {
  if (summaries.length === 1) return summaries[0]!;
  const counts = new Map<string, { table: string; op: string; count: number }>();
  const times: number[] = [];
  let lastCommitMs: number | null = null;
  let latestCommitMs: number | null = null;
  for (let s = 0; s < summaries.length; s++) {
    const summary = summaries[s]!;
    for (const { table, op, count } of summary.counts) {
      const key = `${table}\u0000${op}`;
      const entry = counts.get(key);
      if (entry === undefined) counts.set(key, { table, op, count });
      else entry.count += count;
    }
    // A transaction split over two batches has its commit time in both.
    for (const at of summary.commitTimesMs) if (at !== times[times.length - 1]) times.push(at);
    if (summary.lastCommitMs !== null) lastCommitMs = summary.lastCommitMs;
    if (summary.latestCommitMs !== null && (latestCommitMs === null || summary.latestCommitMs > latestCommitMs)) latestCommitMs = summary.latestCommitMs;
  }
  return { counts: [...counts.values()], commitTimesMs: sampled(times), lastCommitMs, latestCommitMs };
}
