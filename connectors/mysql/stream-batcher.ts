/**
 * Cuts the decoded stream into batches with a checkpoint that is safe to store: after a transaction
 * (resume at the next one), or -- when a batch ends inside one -- at its last change (resume at the
 * transaction's first event and skip what is stored). When no captured table changes, a batch
 * without events still moves the checkpoint forward every heartbeat_interval, and while the server
 * is idle its heartbeats yield such a batch every heartbeat_interval too, saying the stream is
 * caught up (so source lag stays near zero). Such a batch carries the time through which the
 * stream is complete (`throughTimeMs`): behind, that is the commit time of the last transaction
 * read, so lag stays true.
 */
import { comparePositions } from "../contracts.ts";
import type { ChangeEvent, Position, TransactionMarker } from "../contracts.ts";
import type { ByteBoundedBuffer } from "../common/byte-bounded-buffer.ts";
import { StreamBatchLoop } from "../common/stream-batch-loop.ts";
import type { StreamBatchPolicy } from "../common/stream-batch-loop.ts";
import { encodeResumeToken } from "./resume-token.ts";
import type { Flavor } from "./resume-token.ts";
import type { DecodedEvent, StreamDecoder } from "./stream-decoder.ts";

export interface StreamBatch {
  readonly events: readonly ChangeEvent[];
  /** With its resume token. */
  readonly checkpoint: Position;
  /** Without events: the time through which the stream is complete (see StreamDecoder.throughTimeMs). */
  readonly throughTimeMs?: number;
  /** BEGIN markers of the transactions whose first change is in this batch, END markers of those whose commit it passes. */
  readonly transactions: readonly TransactionMarker[];
}

export interface StreamBatcherOptions {
  readonly buffer: ByteBoundedBuffer<Buffer>;
  readonly decoder: StreamDecoder;
  readonly flavor: Flavor;
  readonly serverId: number;
  /** The binlog history epoch the checkpoints carry (positions.ts). */
  readonly epoch?: number;
  readonly maxBatchEvents: number;
  /** Most bytes of binlog events a batch takes besides the count (see StreamBatchLoopOptions). */
  readonly maxBatchBytes?: number;
  /** Hand on an empty batch whose checkpoint advances at most this often; 0 never. */
  readonly progressIntervalMs: number;
  /** The checkpoint resumed from, if any. */
  readonly lastCheckpoint: Position | null;
}

export class StreamBatcher {
  private readonly options: StreamBatcherOptions;
  private readonly loop: StreamBatchLoop<Buffer, StreamBatch>;
  private carried: DecodedEvent[] = [];
  private out: DecodedEvent[] = [];
  private lastCheckpoint: Position | null;
  private lastThroughTimeMs: number | null = null;

  constructor(options: StreamBatcherOptions) {
    this.options = options;
    this.lastCheckpoint = options.lastCheckpoint;
    this.loop = new StreamBatchLoop(options, this.policy());
  }

  next(signal: AbortSignal): Promise<StreamBatch> {
    return this.loop.next(signal);
  }

  private policy(): StreamBatchPolicy<Buffer, StreamBatch> {
    const { decoder, maxBatchEvents } = this.options;
    return {
      begin: () => {
        this.out = this.carried;
        this.carried = [];
      },
      size: () => this.out.length,
      takesBeyondFull: () => decoder.chunkHandedOn,
      apply: (event) => decoder.apply(event, this.out),
      // A transaction payload's inner events, one at a time (the decoder's stepPayloads): a batch may end inside it.
      pending: () => decoder.payloadPending,
      applyPending: () => decoder.step(this.out),
      takesPendingBeyondFull: () => decoder.chunkHandedOn,
      stopsRead: () => decoder.chunkHandedOn && !decoder.inTransaction,
      decide: () => {
        const out = this.out;
        if (decoder.chunkHandedOn) {
          // An online snapshot chunk's rows share one position: the batch takes them whole and ends
          // with their watermark's transaction, so a crash reads at most that chunk again.
          if (decoder.inTransaction) return "wait";
          decoder.chunkHandedOn = false;
          return { batch: this.handOn(out, true) };
        }
        if (out.length === 0) return "idle";
        if (out.length > maxBatchEvents) this.carried = out.splice(maxBatchEvents);
        return { batch: this.handOn(out, this.carried.length === 0) };
      },
      hasNews: () => this.hasNews(),
      urgent: () => false,
      emptyBatch: () => this.handOn(this.out, true),
    };
  }

  /** Whether an empty batch would tell something: the position moved, or the stream is complete through a later time (a heartbeat). */
  private hasNews(): boolean {
    const { decoder } = this.options;
    if (this.lastCheckpoint === null || comparePositions(decoder.through.position, this.lastCheckpoint) > 0) return true;
    const time = decoder.throughTimeMs;
    return time !== null && (this.lastThroughTimeMs === null || time > this.lastThroughTimeMs);
  }

  /** `complete`: no decoded change is held back, so the decoder's through point may be the checkpoint. */
  private handOn(items: readonly DecodedEvent[], complete: boolean): StreamBatch {
    const { decoder, flavor, serverId } = this.options;
    const epoch = this.options.epoch ?? 0;
    const last = items.at(-1);
    const through = decoder.through;
    const thresholds = decoder.pendingThresholds();
    let checkpoint: Position;
    if (last === undefined || (complete && comparePositions(through.position, last.event.source.position) > 0)) {
      const token = { flavor, serverId, file: through.file, offset: through.offset, gtid: through.gtid, skipThrough: null, snapshotThresholds: thresholds, snapshotIncomplete: false, epoch, preparedXa: decoder.preparedXaAt(through.position.commit) };
      checkpoint = { ...through.position, resume: encodeResumeToken(token) };
    } else {
      const position = last.event.source.position;
      const { transaction } = last;
      const token = { flavor, serverId, file: transaction.file, offset: transaction.offset, gtid: transaction.gtidBefore, skipThrough: position, positionsKey: decoder.payloadPositionsKey(transaction.start), snapshotThresholds: thresholds, snapshotIncomplete: false, epoch, preparedXa: decoder.preparedXaAt(transaction.start) };
      checkpoint = { commit: position.commit, change: position.change, resume: encodeResumeToken(token) };
    }
    this.lastCheckpoint = checkpoint;
    const throughTimeMs = decoder.throughTimeMs;
    this.lastThroughTimeMs = throughTimeMs;
    const transactions = [...items.flatMap((item) => (item.begin ? [item.begin] : [])), ...decoder.takeEnds()];
    if (last === undefined && throughTimeMs !== null) return { events: [], checkpoint, throughTimeMs, transactions };
    return { events: items.map((item) => item.event), checkpoint, transactions };
  }
}
