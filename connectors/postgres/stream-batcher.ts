/**
 * Cuts the decoded stream into batches whose checkpoint is safe to store and acknowledge: the end
 * of a transaction, a heartbeat, a keepalive's WAL end, or a point inside a transaction after which no further event
 * shares the last event's LSN (one multi-insert record yields many rows with one LSN, and a
 * resume skips every event at or before the checkpoint).
 */
import { comparePositions } from "../contracts.ts";
import type { ChangeEvent, Position } from "../contracts.ts";
import type { ByteBoundedBuffer } from "../common/byte-bounded-buffer.ts";
import { StreamBatchLoop } from "../common/stream-batch-loop.ts";
import type { StreamBatchPolicy } from "../common/stream-batch-loop.ts";
import type { WalMessage } from "./replication-stream.ts";
import type { DecodedOutput, StreamDecoder, TransactionEvent } from "./stream-decoder.ts";

const COMMIT_TAG = 0x43;

export interface StreamBatch {
  readonly events: readonly ChangeEvent[];
  readonly transactions: readonly TransactionEvent[];
  readonly checkpoint: Position;
}

export interface StreamBatcherOptions {
  readonly buffer: ByteBoundedBuffer<WalMessage>;
  readonly decoder: StreamDecoder;
  readonly maxBatchEvents: number;
  /** Most bytes of WAL messages a batch takes besides the count (see StreamBatchLoopOptions). */
  readonly maxBatchBytes?: number;
  /** Hand on a batch without events whose checkpoint advances at most this often; 0 never. */
  readonly progressIntervalMs: number;
  /** The last checkpoint handed on (or resumed from). */
  readonly lastCheckpoint: Position | null;
}

export class StreamBatcher {
  private readonly options: StreamBatcherOptions;
  private readonly loop: StreamBatchLoop<WalMessage, StreamBatch>;
  private carried: ChangeEvent[] = [];
  private out: DecodedOutput = { events: [], transactions: [] };
  private lastCheckpoint: Position | null;
  /** The server asked for a reply since the last batch (it waits for a confirmation, e.g. to shut down). */
  private replyWanted = false;
  /** Set when the batch is full but all its events share one LSN: read on until that LSN ends. */
  private finishing: bigint | null = null;

  constructor(options: StreamBatcherOptions) {
    this.options = options;
    this.lastCheckpoint = options.lastCheckpoint;
    this.loop = new StreamBatchLoop(options, this.policy());
  }

  /** `prompt`: an empty batch at once when nothing more is decoded (StreamBatchLoop.next). */
  next(signal: AbortSignal, prompt = false): Promise<StreamBatch> {
    return this.loop.next(signal, prompt);
  }

  /** Bytes of WAL messages the last batch took (StreamBatchLoop.lastBatchBytes). */
  get lastBatchBytes(): number {
    return this.loop.lastBatchBytes;
  }

  private policy(): StreamBatchPolicy<WalMessage, StreamBatch> {
    const { buffer, decoder } = this.options;
    return {
      begin: () => {
        this.out = { events: this.carried, transactions: [] };
        this.carried = [];
        this.finishing = null;
      },
      size: () => this.out.events.length,
      takesBeyondFull: (next) => this.finishing !== null && next.walStart === this.finishing,
      apply: (message) => {
        if (message.keepalive?.replyRequested === true) this.replyWanted = true;
        return decoder.apply(message, this.out);
      },
      stopsRead: () => this.out.chunkHandedOn === true && !decoder.inTransaction,
      decide: (full) => {
        const out = this.out;
        // A full batch followed by its transaction's commit takes the commit too: its checkpoint then ends the transaction.
        if (full && buffer.peek()?.payload[0] === COMMIT_TAG) void decoder.apply(buffer.shift()!, out);
        const last = out.events.at(-1);
        const through = decoder.throughPosition;
        if (last === undefined) return "idle";
        if (through !== null && comparePositions(last.source.position, through) < 0) return { batch: this.handOn(out, through) };
        const cut = this.cutInsideTransaction(out.events, last.source.position.change);
        if (cut > 0) {
          this.carried = out.events.splice(cut);
          const lastKept = out.events[cut - 1]!.source.position;
          return { batch: this.handOn(out, through !== null && comparePositions(through, lastKept) > 0 ? through : lastKept) };
        }
        this.finishing = last.source.position.change;
        return "read";
      },
      // Nothing in flight: the position alone moves on, as an empty batch -- at once when the server waits for a reply.
      hasNews: () => {
        const through = decoder.throughPosition;
        return through !== null && (this.lastCheckpoint === null || comparePositions(through, this.lastCheckpoint) > 0);
      },
      urgent: () => this.replyWanted,
      emptyBatch: () => {
        const through = decoder.throughPosition;
        const last = this.lastCheckpoint;
        return this.handOn(this.out, last !== null && (through === null || comparePositions(through, last) <= 0) ? last : through!);
      },
    };
  }

  /** Where to end a batch that stops inside a transaction: before the trailing events of `lastLsn`, unless they are known to be complete. */
  private cutInsideTransaction(events: readonly ChangeEvent[], lastLsn: bigint): number {
    const next = this.options.buffer.peek();
    if (next !== undefined && next.walStart !== lastLsn) return events.length;
    let start = events.length;
    while (start > 0 && events[start - 1]!.source.position.change === lastLsn) start--;
    return start;
  }

  private handOn(out: DecodedOutput, checkpoint: Position): StreamBatch {
    this.lastCheckpoint = checkpoint;
    this.replyWanted = false;
    return { events: out.events, transactions: out.transactions, checkpoint };
  }
}
