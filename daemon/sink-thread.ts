/**
 * Runs one sink in a worker thread of its own (daemon/sink-worker.ts), so capture and each sink
 * decode, encode and apply on separate cores instead of sharing the main thread. The main thread
 * keeps the HTTP server, the schema registry and the metrics endpoint: the sink thread asks it for
 * schemas by id, reports its state, and answers metric, query and rebuild calls.
 */
import { Worker } from "node:worker_threads";
// Makes the process-wide signals' shared memory before any sink thread starts, so every one inherits it.
import "../connectors/common/process-signal.ts";
import type { MetricObjectWithValues, MetricValue } from "prom-client";
import type { HeapLimits } from "../config/memory.ts";
import type { SluiceConfig } from "../config/schema.ts";
import { SluiceError } from "../connectors/errors.ts";
import type { ErrorContext } from "../connectors/errors.ts";
import type { KafkaReaderLimits } from "../connectors/kafka/kafka-consumer.ts";
import type { SchemaRegistry } from "../schema-registry/index.ts";
import type { RebuildReport } from "./rebuild.ts";
import type { RebuildProgress } from "./rebuild-progress.ts";
import type { HaltAction, HaltedSinkTable, HaltReleaseReport } from "./halted.ts";
import type { InterruptedRebuild } from "./interrupted-rebuilds.ts";
import type { AbandonReport } from "./rebuild-abandon.ts";

export interface SinkThreadData {
  readonly config: SluiceConfig;
  readonly sink: string;
  /** Lease owner id of this process. */
  readonly owner: string;
  /** Kafka topics with a memory budget: the sink's consumer sizes, its share (config/memory.ts). */
  readonly reader?: KafkaReaderLimits;
  /** The brokers accepted the main thread's Kafka credentials: a refusal at the sink's first connection is waited out. */
  readonly kafkaAccepted?: boolean;
}

export type MetricsSnapshot = MetricObjectWithValues<MetricValue<string>>[];

export interface SerializedError {
  readonly message: string;
  readonly code?: string;
  readonly retriable?: boolean;
  readonly context?: ErrorContext;
}

export type SinkThreadCall =
  | { readonly method: "metrics" }
  | { readonly method: "query"; readonly sql: string }
  | { readonly method: "rebuild"; readonly tables: readonly string[] }
  | { readonly method: "abandon-rebuild"; readonly tables: readonly string[]; readonly execute: boolean }
  | { readonly method: "release"; readonly table: string; readonly action: HaltAction; readonly execute: boolean; readonly through?: string | null; readonly force?: boolean }
  | { readonly method: "erase"; readonly source: string; readonly subject: string };

export type ToSinkThread =
  | { readonly type: "stop" }
  | ({ readonly type: "call"; readonly id: number } & SinkThreadCall)
  | { readonly type: "schema"; readonly id: number; readonly schema: string }
  | { readonly type: "schema"; readonly id: number; readonly error: SerializedError };

export interface SinkThreadState {
  readonly ready: boolean;
  /** What the sink waits for while not ready (the topic log or its target), or null. */
  readonly waiting: string | null;
  readonly lastAppliedCommitMs: number | null;
  /** Since when (ms) the sink's server refuses its credentials, the sink waiting it out; null while accepted. */
  readonly credentialsRefusedSinceMs?: number | null;
  readonly halted: readonly HaltedSinkTable[];
  /** The partitions this process reads, `topic:partition`. */
  readonly partitions: readonly string[];
  /** The running or last rebuild (sluice replay --rebuild), null when none ran. */
  readonly rebuild: RebuildProgress | null;
  /** Shadows of a rebuild that stopped before its swap, found in the target (interrupted-rebuilds.ts); null when none. */
  readonly interrupted: InterruptedRebuild | null;
}

export type FromSinkThread =
  | { readonly type: "log"; readonly line: string }
  | { readonly type: "started"; readonly queryable: boolean; readonly rebuildable: boolean }
  | ({ readonly type: "state" } & SinkThreadState)
  | { readonly type: "schema-request"; readonly id: number; readonly schemaId: number }
  | { readonly type: "result"; readonly id: number; readonly value?: unknown; readonly error?: SerializedError }
  | { readonly type: "failed"; readonly error: SerializedError }
  | { readonly type: "stopped" };

export function serializeError(error: unknown): SerializedError {
  if (error instanceof SluiceError) return { message: error.message, code: error.code, retriable: error.retriable, context: error.context };
  return { message: error instanceof Error ? error.message : String(error) };
}

export function deserializeError(error: SerializedError): Error {
  if (error.code === undefined) return new Error(error.message);
  return new SluiceError(error.message, { code: error.code, retriable: error.retriable ?? false, ...(error.context ? { context: error.context } : {}) });
}

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
}

export interface SinkThreadOptions {
  readonly data: SinkThreadData;
  readonly registry: Pick<SchemaRegistry, "getById">;
  /** Where the thread's JSON log lines go (written from this thread, so lines never interleave). */
  readonly writeLogLine: (line: string) => void;
  /** The thread's V8 heap, its share of the memory budget (config/memory.ts); without it V8's defaults (about 4 GiB). */
  readonly heap?: HeapLimits;
  /** Called when the sink's rebuild progress changes (a terminal draws it). */
  readonly onRebuildProgress?: (progress: RebuildProgress) => void;
}

export class SinkThread {
  readonly name: string;
  /** Settles when the thread has ended: resolves after a requested stop, rejects when the sink failed or the thread died. */
  readonly finished: Promise<void>;
  queryable = false;
  rebuildable = false;
  private readonly worker: Worker;
  private readonly options: SinkThreadOptions;
  private readonly pending = new Map<number, Pending>();
  private nextCallId = 0;
  private state: SinkThreadState = { ready: false, waiting: "starting", lastAppliedCommitMs: null, halted: [], partitions: [], rebuild: null, interrupted: null };
  private settle!: { resolve(): void; reject(error: Error): void };
  private startup!: { resolve(): void; reject(error: Error): void };
  private readonly started: Promise<void>;
  private ended = false;

  private constructor(options: SinkThreadOptions) {
    this.options = options;
    this.name = options.data.sink;
    this.finished = new Promise<void>((resolve, reject) => (this.settle = { resolve, reject }));
    this.finished.catch(() => undefined);
    this.started = new Promise<void>((resolve, reject) => (this.startup = { resolve, reject }));
    this.started.catch(() => undefined);
    const resourceLimits = options.heap ? { maxOldGenerationSizeMb: options.heap.oldMb, maxYoungGenerationSizeMb: options.heap.youngMb } : undefined;
    this.worker = new Worker(new URL("./sink-worker.ts", import.meta.url), { workerData: options.data, name: `sink ${this.name}`, ...(resourceLimits ? { resourceLimits } : {}) });
    this.worker.on("message", (message: FromSinkThread) => this.receive(message));
    this.worker.on("error", (error) => this.end(new SluiceError(`sink ${this.name}: its thread failed: ${error.message}`, { code: "SINK_THREAD_FAILED", cause: error, context: { component: "sink", sink: this.name } })));
    this.worker.on("exit", (code) => this.end(new SluiceError(`sink ${this.name}: its thread exited unexpectedly (code ${code})`, { code: "SINK_THREAD_FAILED", context: { component: "sink", sink: this.name } })));
  }

  /** Starts the thread; resolves once its sink is created and its topic log open, rejects if that fails. */
  static async start(options: SinkThreadOptions): Promise<SinkThread> {
    const thread = new SinkThread(options);
    await thread.started;
    return thread;
  }

  ready(): boolean {
    return !this.ended && this.state.ready;
  }

  /** The thread's V8 heap (null once it has ended). */
  async heapStatistics(): Promise<{ used: number; limit: number } | null> {
    if (this.ended) return null;
    const heap = await this.worker.getHeapStatistics().catch(() => null);
    return heap === null ? null : { used: heap.used_heap_size, limit: heap.heap_size_limit };
  }

  /** What the sink waits for while not ready, or null when ready. */
  waitingFor(): string | null {
    if (this.ended) return "its thread has ended";
    return this.state.ready ? null : (this.state.waiting ?? "starting");
  }

  /** Ends the thread at once, whatever it is doing (for a shutdown past its deadline). */
  async terminate(): Promise<void> {
    this.end(null);
    await this.worker.terminate().catch(() => undefined);
  }

  lastAppliedCommitTime(): number | null {
    return this.state.lastAppliedCommitMs;
  }

  /** Since when (ms) the sink's server refuses its credentials, as last reported; null while accepted. */
  credentialsRefusedSince(): number | null {
    return this.ended ? null : (this.state.credentialsRefusedSinceMs ?? null);
  }

  /** The partitions this process's sink reads, `topic:partition`, as last reported. */
  partitions(): readonly string[] {
    return this.state.partitions;
  }

  haltedTables(): HaltedSinkTable[] {
    return [...this.state.halted];
  }

  /** The running or last rebuild, as last reported. */
  rebuildProgress(): RebuildProgress | null {
    return this.state.rebuild;
  }

  /** Shadows of a rebuild that stopped before its swap, as last reported. */
  interruptedRebuild(): InterruptedRebuild | null {
    return this.state.interrupted;
  }

  metrics(): Promise<MetricsSnapshot> {
    return this.call({ method: "metrics" }) as Promise<MetricsSnapshot>;
  }

  /** One read-only SELECT, run by the sink's worker thread (see connectors/duckdb/read-query.ts): the answer's JSON text in UTF-8. */
  readQueryJson(sql: string): Promise<Uint8Array> {
    return this.call({ method: "query", sql }) as Promise<Uint8Array>;
  }

  /** Rebuilds the sink's `tables` (schema.table or topic), every table when none is given. */
  rebuild(tables: readonly string[] = []): Promise<RebuildReport> {
    return this.call({ method: "rebuild", tables }) as Promise<RebuildReport>;
  }

  /** Drops the shadows an interrupted rebuild left of `tables` (every one when none is given); a dry run unless `execute`. */
  abandonRebuild(tables: readonly string[], execute: boolean): Promise<AbandonReport> {
    return this.call({ method: "abandon-rebuild", tables, execute }) as Promise<AbandonReport>;
  }

  /** Releases a halted table (`sluice halted retry|skip`); a dry run unless `execute`. */
  release(table: string, action: HaltAction, execute: boolean, through: string | null = null, force = false): Promise<HaltReleaseReport> {
    return this.call({ method: "release", table, action, execute, through, force }) as Promise<HaltReleaseReport>;
  }

  /** `sluice forget`: the sink stops decrypting the subject's values, then nulls its personal columns in rows already applied; the rows changed where the target says. */
  erase(source: string, subject: string): Promise<number | null> {
    return this.call({ method: "erase", source, subject }) as Promise<number | null>;
  }

  /** Asks the sink to finish its batch and stop; resolves when the thread has exited. */
  async stop(): Promise<void> {
    if (!this.ended) this.post({ type: "stop" });
    await this.finished.catch(() => undefined);
  }

  private call(call: SinkThreadCall): Promise<unknown> {
    if (this.ended) return Promise.reject(new Error(`sink ${this.name} is not running`));
    const id = this.nextCallId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.post({ type: "call", id, ...call });
    });
  }

  private post(message: ToSinkThread): void {
    this.worker.postMessage(message);
  }

  private receive(message: FromSinkThread): void {
    switch (message.type) {
      case "log":
        this.options.writeLogLine(message.line);
        return;
      case "started":
        this.queryable = message.queryable;
        this.rebuildable = message.rebuildable;
        this.startup.resolve();
        return;
      case "state":
        if (message.rebuild !== null && message.rebuild !== undefined && JSON.stringify(message.rebuild) !== JSON.stringify(this.state.rebuild)) this.options.onRebuildProgress?.(message.rebuild);
        this.state = { ready: message.ready, waiting: message.waiting, lastAppliedCommitMs: message.lastAppliedCommitMs, credentialsRefusedSinceMs: message.credentialsRefusedSinceMs ?? null, halted: message.halted, partitions: message.partitions, rebuild: message.rebuild, interrupted: message.interrupted ?? null };
        return;
      case "schema-request":
        this.options.registry.getById(message.schemaId).then(
          (schema) => this.post({ type: "schema", id: message.id, schema }),
          (error: unknown) => this.post({ type: "schema", id: message.id, error: serializeError(error) }),
        );
        return;
      case "result": {
        const pending = this.pending.get(message.id);
        this.pending.delete(message.id);
        if (message.error) pending?.reject(deserializeError(message.error));
        else pending?.resolve(message.value);
        return;
      }
      case "failed":
        this.end(deserializeError(message.error));
        return;
      case "stopped":
        this.end(null);
        return;
    }
  }

  /** The thread is done: `error` null for a requested stop. Later reports are ignored. */
  private end(error: Error | null): void {
    if (this.ended) return;
    this.ended = true;
    this.state = { ...this.state, ready: false };
    for (const pending of this.pending.values()) pending.reject(error ?? new Error(`sink ${this.name} stopped`));
    this.pending.clear();
    if (error) {
      this.startup.reject(error);
      this.settle.reject(error);
    } else {
      this.startup.resolve();
      this.settle.resolve();
    }
    // A thread that reported its end has nothing left to do; one that failed may be stuck.
    void this.worker.terminate();
  }
}
