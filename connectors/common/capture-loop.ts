/**
 * The life of a capturing source, the same for PostgreSQL and MySQL: connect (the database's
 * set-up begins an initial snapshot or the stream), read batches (the snapshot's rows first, then
 * the stream, opened at the first read after the snapshot), keep the first failure for every later
 * read, and close in order (online snapshots, the snapshot, the stream, the connections left).
 * What is the database's -- the set-up, how a snapshot row becomes an event and what its batches'
 * checkpoints are, how the stream is opened and cut into batches -- comes in through a driver.
 */
import { captureBatchBytes } from "../../config/memory.ts";
import type { ChangeEvent, Checkpoint, TableSnapshotProgress } from "../contracts.ts";
import { SluiceError } from "../errors.ts";
import type { ErrorContext } from "../errors.ts";
import { ByteBoundedBuffer } from "./byte-bounded-buffer.ts";
import type { SnapshotMarkers } from "./snapshot-markers.ts";

export type CapturePhase = "idle" | "snapshot" | "streaming" | "failed" | "closed";

/** What every source's stats say of its capture (each source adds its own positions). */
export interface CaptureStats {
  readonly phase: CapturePhase;
  /** Bytes read ahead of read() right now, the most ever, and the bound (max_buffer_bytes). */
  readonly bufferBytes: number;
  readonly bufferPeakBytes: number;
  readonly maxBufferBytes: number;
  /** Times reading from the server paused because the buffer was full. */
  readonly pauses: number;
}

/** An initial snapshot: its reader fills the buffer while read() drains it into batches. */
export interface InitialSnapshot<Row, Batch> {
  readonly reader: { progress(): TableSnapshotProgress[]; run(signal: AbortSignal): Promise<void>; close(): Promise<void> };
  readonly buffer: ByteBoundedBuffer<Row>;
  /** Debezium's first/last marks on the reads (holds back each table's latest read). */
  readonly markers: SnapshotMarkers;
  readonly controller: AbortController;
  /** The event a buffered row stands for. */
  event(row: Row): ChangeEvent;
  /** The batch of `events`: one while the snapshot reads on, or (finished) its last: the reader is closed and the stream comes next. */
  batch(events: readonly ChangeEvent[], finished: boolean): Batch;
}

/** The stream, opened: read() takes its batches until it is stopped. */
export interface OpenedStream<Batch> {
  readonly buffer: ByteBoundedBuffer<unknown>;
  /** Times reading from the server paused because the buffer was full. */
  pauses(): number;
  /** Starts reading from the server (the loop holds the stream before, so a start that fails is still stopped). */
  start(): Promise<void>;
  next(signal: AbortSignal): Promise<Batch>;
  /** Stops reading (its buffer has failed with SOURCE_CLOSED already). */
  stop(): Promise<void>;
}

export interface CaptureDriver<Batch, Stream extends OpenedStream<Batch>> {
  readonly context: ErrorContext;
  /** Most events per snapshot batch. */
  readonly maxBatchEvents: number;
  /** The bound of each read-ahead buffer (max_buffer_bytes). */
  readonly readAheadBytes: number;
  /** What the database's errors are as Sluice errors: `what` says what failed. */
  toError(error: unknown, what: string): SluiceError;
  /** Before a set-up: takes what the checkpoint carries (the loop has closed everything before). */
  prepare(from: Checkpoint | null): void;
  /** Connects and begins an initial snapshot (holdSnapshot, runSnapshot) or the stream (streamNext, openStream). */
  setUp(from: Checkpoint | null, signal: AbortSignal): Promise<void>;
  /** The stream from where the set-up or the finished snapshot left it, not started yet. */
  openStream(): Stream;
  /** The online snapshots: stopped first when the source closes; their progress follows the initial snapshot's. */
  readonly online: { stop(): Promise<void>; progress(): TableSnapshotProgress[] };
  /** Last when the source closes: ends the connections left (the catalog). */
  release(): Promise<void>;
}

/** A source on a capture loop: connect, read, close, readiness and snapshot progress are the loop's. */
export abstract class CaptureSource<Batch, Stream extends OpenedStream<Batch>> {
  protected abstract readonly loop: CaptureLoop<Batch, Stream>;

  connect(from: Checkpoint | null, signal: AbortSignal): Promise<void> {
    return this.loop.connect(from, signal);
  }

  read(signal: AbortSignal): Promise<Batch> {
    return this.loop.read(signal);
  }

  close(): Promise<void> {
    return this.loop.close();
  }

  /** Connected, and neither failed nor closed. */
  ready(): boolean {
    return this.loop.ready();
  }

  snapshotProgress(): readonly TableSnapshotProgress[] {
    return this.loop.snapshotProgress();
  }
}

export class CaptureLoop<Batch, Stream extends OpenedStream<Batch>> {
  private readonly driver: CaptureDriver<Batch, Stream>;
  private phaseNow: CapturePhase = "idle";
  private failure: SluiceError | null = null;
  private snapshot: InitialSnapshot<unknown, Batch> | null = null;
  private lastSnapshotProgress: TableSnapshotProgress[] = [];
  private streaming: Stream | null = null;

  constructor(driver: CaptureDriver<Batch, Stream>) {
    this.driver = driver;
  }

  get phase(): CapturePhase {
    return this.phaseNow;
  }

  /** The stream while it is open. */
  get stream(): Stream | null {
    return this.streaming;
  }

  /** The buffer read ahead of read(): the snapshot's, else the stream's. */
  get buffer(): ByteBoundedBuffer<unknown> | null {
    return (this.snapshot?.buffer as ByteBoundedBuffer<unknown> | undefined) ?? this.streaming?.buffer ?? null;
  }

  /** A read-ahead buffer (the snapshot's or the stream's) with the source's bound. */
  readAheadBuffer<Item>(make: (maxBytes: number) => ByteBoundedBuffer<Item> = (maxBytes) => new ByteBoundedBuffer<Item>(maxBytes)): ByteBoundedBuffer<Item> {
    return make(this.driver.readAheadBytes);
  }

  stats(): CaptureStats {
    const buffer = this.buffer;
    return {
      phase: this.phaseNow,
      bufferBytes: buffer?.bytes ?? 0,
      bufferPeakBytes: buffer?.peakBytes ?? 0,
      maxBufferBytes: this.driver.readAheadBytes,
      pauses: this.streaming?.pauses() ?? 0,
    };
  }

  /** Connected, and neither failed nor closed. */
  ready(): boolean {
    return (this.phaseNow === "snapshot" || this.phaseNow === "streaming") && this.failure === null && this.buffer?.failed == null;
  }

  snapshotProgress(): readonly TableSnapshotProgress[] {
    const initial = this.snapshot?.reader.progress() ?? this.lastSnapshotProgress;
    const online = this.driver.online.progress();
    return online.length === 0 ? initial : [...initial, ...online];
  }

  async connect(from: Checkpoint | null, signal: AbortSignal): Promise<void> {
    await this.teardown();
    this.failure = null;
    this.driver.prepare(from);
    try {
      await this.driver.setUp(from, signal);
    } catch (error) {
      await this.teardown();
      this.phaseNow = "failed";
      if (signal.aborted) throw signal.reason;
      throw this.driver.toError(error, "cannot start capture");
    }
  }

  async read(signal: AbortSignal): Promise<Batch> {
    try {
      if (this.failure !== null) throw this.failure;
      if (this.phaseNow === "snapshot") return await this.readSnapshot(signal);
      if (this.phaseNow === "streaming") {
        const stream = this.streaming ?? (await this.openStream());
        return await stream.next(signal);
      }
      throw new SluiceError(`read() while ${this.phaseNow}`, { code: "SOURCE_NOT_CONNECTED", retriable: this.phaseNow !== "closed", context: this.driver.context });
    } catch (error) {
      if (signal.aborted) throw error;
      const failure = this.driver.toError(error, "capture failed");
      this.failure ??= failure;
      this.phaseNow = this.phaseNow === "closed" ? "closed" : "failed";
      throw failure;
    }
  }

  async close(): Promise<void> {
    await this.teardown();
    this.phaseNow = "closed";
  }

  /** Keeps a snapshot being set up, so that closing the source closes its reader. */
  holdSnapshot<Row>(snapshot: InitialSnapshot<Row, Batch>): void {
    this.snapshot = snapshot as InitialSnapshot<unknown, Batch>;
  }

  /** Runs the snapshot held: read() hands on its rows from now on. */
  runSnapshot(): void {
    const { reader, buffer, controller } = this.snapshot!;
    this.phaseNow = "snapshot";
    reader.run(controller.signal).then(
      () => buffer.end(),
      (error: unknown) => buffer.fail(this.driver.toError(error, "snapshot failed")),
    );
  }

  /** The stream comes next: it opens at the next read. */
  streamNext(): void {
    this.phaseNow = "streaming";
  }

  /** The stream comes next, opened now. */
  async openStream(): Promise<Stream> {
    this.phaseNow = "streaming";
    const stream = this.driver.openStream();
    this.streaming = stream;
    await stream.start();
    return stream;
  }

  private async readSnapshot(signal: AbortSignal): Promise<Batch> {
    const snapshot = this.snapshot!;
    const { buffer, markers, reader } = snapshot;
    await buffer.waitForItem(signal);
    const events: ChangeEvent[] = [];
    // Bounded by bytes too (as streamed batches are: StreamBatchLoop), so a batch of wide rows stays within capture's heap.
    const maxBytes = captureBatchBytes(buffer.maxBytes);
    for (let bytes = 0; events.length < this.driver.maxBatchEvents && bytes < maxBytes && buffer.length > 0; ) {
      bytes += buffer.nextBytes;
      events.push(...markers.next(snapshot.event(buffer.shift()!)));
    }
    const finished = buffer.ended && buffer.length === 0;
    if (!finished) return snapshot.batch(events, false);
    events.push(...markers.flush());
    this.lastSnapshotProgress = reader.progress();
    await reader.close();
    this.snapshot = null;
    this.phaseNow = "streaming";
    return snapshot.batch(events, true);
  }

  private async teardown(): Promise<void> {
    await this.driver.online.stop();
    const { snapshot, streaming } = this;
    this.snapshot = null;
    this.streaming = null;
    if (snapshot !== null) {
      this.lastSnapshotProgress = snapshot.reader.progress();
      snapshot.controller.abort(this.closed());
      snapshot.buffer.fail(this.closed());
      await snapshot.reader.close();
    }
    if (streaming !== null) {
      streaming.buffer.fail(this.closed());
      await streaming.stop();
    }
    await this.driver.release();
    if (this.phaseNow !== "closed") this.phaseNow = "idle";
  }

  private closed(): SluiceError {
    return new SluiceError("the source was closed", { code: "SOURCE_CLOSED", retriable: true, context: { component: this.driver.context.component } });
  }
}
