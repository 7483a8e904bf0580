/**
 * Cuts the decoded stream into batches with a checkpoint that is safe to store: after a transaction
 * (resume at the next one), or — when a batch ends inside one — at its last change (resume at the
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
  readonly maxBatchEvents: number;
  /** Hand on an empty batch whose checkpoint advances at most this often; 0 never. */
  readonly progressIntervalMs: number;
  /** The checkpoint resumed from, if any. */
  readonly lastCheckpoint: Position | null;
}

export class StreamBatcher {
  private readonly options: StreamBatcherOptions;
  private carried: DecodedEvent[] = [];
  private lastCheckpoint: Position | null;
  private lastHandedOnAt = Date.now();
  private lastThroughTimeMs: number | null = null;

  constructor(options: StreamBatcherOptions) {
    this.options = options;
    this.lastCheckpoint = options.lastCheckpoint;
  }

  async next(signal: AbortSignal): Promise<StreamBatch> {
    const { buffer, decoder, maxBatchEvents, progressIntervalMs } = this.options;
    const out = this.carried;
    this.carried = [];
    for (;;) {
      signal.throwIfAborted();
      while ((out.length < maxBatchEvents || decoder.chunkHandedOn) && buffer.length > 0) {
        const pending = decoder.apply(buffer.shift()!, out);
        if (pending !== undefined) await pending;
        if (decoder.chunkHandedOn && !decoder.inTransaction) break;
      }
      if (decoder.chunkHandedOn) {
        // An online snapshot chunk's rows share one position: the batch takes them whole and ends
        // with their watermark's transaction, so a crash reads at most that chunk again.
        if (decoder.inTransaction) {
          await buffer.waitForItem(signal);
          continue;
        }
        decoder.chunkHandedOn = false;
        return this.handOn(out, true);
      }
      if (out.length > 0) {
        if (out.length > maxBatchEvents) this.carried = out.splice(maxBatchEvents);
        return this.handOn(out, this.carried.length === 0);
      }
      if (progressIntervalMs > 0 && this.hasNews()) {
        const due = this.lastHandedOnAt + progressIntervalMs - Date.now();
        if (due <= 0) return this.handOn(out, true);
        if (buffer.length === 0) await buffer.waitForItem(signal, due);
        continue;
      }
      if (buffer.length === 0) await buffer.waitForItem(signal);
    }
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
    const last = items.at(-1);
    const through = decoder.through;
    const thresholds = decoder.pendingThresholds();
    let checkpoint: Position;
    if (last === undefined || (complete && comparePositions(through.position, last.event.source.position) > 0)) {
      const token = { flavor, serverId, file: through.file, offset: through.offset, gtid: through.gtid, skipThrough: null, snapshotThresholds: thresholds, snapshotIncomplete: false };
      checkpoint = { ...through.position, resume: encodeResumeToken(token) };
    } else {
      const position = last.event.source.position;
      const { transaction } = last;
      const token = { flavor, serverId, file: transaction.file, offset: transaction.offset, gtid: transaction.gtidBefore, skipThrough: position, snapshotThresholds: thresholds, snapshotIncomplete: false };
      checkpoint = { commit: position.commit, change: position.change, resume: encodeResumeToken(token) };
    }
    this.lastCheckpoint = checkpoint;
    this.lastHandedOnAt = Date.now();
    const throughTimeMs = decoder.throughTimeMs;
    this.lastThroughTimeMs = throughTimeMs;
    const transactions = [...items.flatMap((item) => (item.begin ? [item.begin] : [])), ...decoder.takeEnds()];
    if (last === undefined && throughTimeMs !== null) return { events: [], checkpoint, throughTimeMs, transactions };
    return { events: items.map((item) => item.event), checkpoint, transactions };
  }
}
