/**
 * The read/batch/heartbeat loop a streaming source shares: fill a batch from the read-ahead buffer
 * up to maxBatchEvents or maxBatchBytes of buffered messages, and when no event arrived, hand on an empty batch whose checkpoint moves on
 * at most every progressIntervalMs (waiting on the buffer for the time left). Where a batch may be
 * cut safely, what it carries over and what its checkpoint is belong to the protocol: a policy.
 */
import { captureBatchBytes } from "../../config/memory.ts";
import type { ByteBoundedBuffer } from "./byte-bounded-buffer.ts";

/**
 * After a read: a batch to hand on; "idle" (no events: an empty batch may be due); "read" (read on
 * once more items arrive); "wait" (wait for the next item although some may be buffered).
 */
export type BatchDecision<Batch> = { readonly batch: Batch } | "idle" | "read" | "wait";

export interface StreamBatchPolicy<Item, Batch> {
  /** Starts a batch: with the events carried over from the last one. */
  begin(): void;
  /** The events in the batch under way. */
  size(): number;
  /** Whether a full batch still takes `next` (e.g. the rest of a run that may not be split). */
  takesBeyondFull(next: Item): boolean;
  /** Decodes one buffered item into the batch under way. */
  apply(item: Item): void | Promise<void>;
  /**
   * Whether the item last applied left more to decode (a MySQL transaction payload's inner events), taken with
   * applyPending, a part at a time, before the next item: a batch may end between two parts.
   */
  pending?(): boolean;
  /** Decodes the next part of what the item last applied left; returns its bytes (towards maxBatchBytes). */
  applyPending?(): Promise<number>;
  /** Whether a full batch still takes the next part of what the item left (as takesBeyondFull for an item). */
  takesPendingBeyondFull?(): boolean;
  /** Whether the read stops after the item just applied. */
  stopsRead(): boolean;
  /** `full`: the batch reached maxBatchEvents or maxBatchBytes. */
  decide(full: boolean): BatchDecision<Batch>;
  /** Idle: whether an empty batch would tell something (its checkpoint or time moved on). */
  hasNews(): boolean;
  /** Idle with news: the empty batch is wanted at once, not at the progress cadence. */
  urgent(): boolean;
  /** A batch without events; its checkpoint never goes back (without news: the last one handed on). */
  emptyBatch(): Batch;
}

export interface StreamBatchLoopOptions<Item> {
  readonly buffer: ByteBoundedBuffer<Item>;
  readonly maxBatchEvents: number;
  /**
   * Most bytes of buffered messages (as the buffer counts them) a batch takes, besides the count:
   * a batch of wide rows, its encoded records and the request that stores them stay within the
   * capture's heap. A message bigger than this still goes alone. Default: captureBatchBytes of
   * the buffer's bound (an eighth of the read-ahead, at least 1 MiB).
   */
  readonly maxBatchBytes?: number;
  /** Hand on an empty batch whose checkpoint advances at most this often; 0 never (unless urgent). */
  readonly progressIntervalMs: number;
}

export class StreamBatchLoop<Item, Batch> {
  private readonly options: StreamBatchLoopOptions<Item>;
  private readonly policy: StreamBatchPolicy<Item, Batch>;
  private lastHandedOnAt = Date.now();
  private handedOnBytes = 0;

  constructor(options: StreamBatchLoopOptions<Item>, policy: StreamBatchPolicy<Item, Batch>) {
    this.options = options;
    this.policy = policy;
  }

  /** Bytes of buffered messages (as the buffer counts them) the last batch handed on took. */
  get lastBatchBytes(): number {
    return this.handedOnBytes;
  }

  /**
   * The next batch. `prompt`: the caller waits for it to finish a run of batches (SourceBatch.more),
   * so when the buffered messages yield no events an empty batch comes at once, not at the progress
   * cadence or when the server next sends something.
   */
  async next(signal: AbortSignal, prompt = false): Promise<Batch> {
    const { buffer, maxBatchEvents, progressIntervalMs } = this.options;
    const maxBatchBytes = this.options.maxBatchBytes ?? captureBatchBytes(buffer.maxBytes);
    const policy = this.policy;
    policy.begin();
    let bytes = 0;
    const full = () => policy.size() >= maxBatchEvents || bytes >= maxBatchBytes;
    const pending = () => policy.pending?.() === true;
    for (;;) {
      signal.throwIfAborted();
      for (;;) {
        const left = pending();
        if (left ? full() && policy.takesPendingBeyondFull?.() !== true : buffer.length === 0 || (full() && !policy.takesBeyondFull(buffer.peek()!))) break;
        if (left) {
          // A payload may take many steps before the batch is handed on (takesPendingBeyondFull): a stop is not kept waiting for its end.
          signal.throwIfAborted();
          bytes += await policy.applyPending!();
        } else {
          bytes += buffer.nextBytes;
          const applying = policy.apply(buffer.shift()!);
          if (applying !== undefined) await applying;
        }
        // Messages that yield no event (transaction bounds, other tables) do not fill a batch.
        if (policy.size() === 0) bytes = 0;
        if (policy.stopsRead()) break;
      }
      const decision = policy.decide(full());
      if (typeof decision === "object") return this.handOn(decision.batch, bytes);
      // What an item left to decode is taken before waiting for the next item.
      if (pending()) continue;
      if (decision === "wait") {
        await buffer.waitForItem(signal);
        continue;
      }
      if (decision === "idle" && prompt) return this.handOn(policy.emptyBatch(), 0);
      if (decision === "idle" && policy.hasNews()) {
        if (policy.urgent()) return this.handOn(policy.emptyBatch(), 0);
        if (progressIntervalMs > 0) {
          const due = this.lastHandedOnAt + progressIntervalMs - Date.now();
          if (due <= 0) return this.handOn(policy.emptyBatch(), 0);
          if (buffer.length === 0) await buffer.waitForItem(signal, due);
          continue;
        }
      }
      if (buffer.length === 0) await buffer.waitForItem(signal);
    }
  }

  private handOn(batch: Batch, bytes: number): Batch {
    this.lastHandedOnAt = Date.now();
    this.handedOnBytes = bytes;
    return batch;
  }
}
