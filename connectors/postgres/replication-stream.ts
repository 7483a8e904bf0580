/**
 * The logical replication connection: START_REPLICATION on pgoutput, received WAL messages into a
 * byte-bounded buffer, and the standby status updates that tell the server what is durable.
 *
 * Written on pg's wire connection rather than pg-logical-replication, because that library
 * acknowledges every message as it is emitted and on a timer (so the slot would move past data
 * not yet durable) and reports the same LSN as written, flushed and applied; its flow control
 * queue is unbounded by bytes.
 */
import pg from "pg";
import type { ClientConfig } from "pg";
import type { Logger } from "pino";
import { ConnectionError } from "../errors.ts";
import type { ErrorContext, SluiceError } from "../errors.ts";
import type { ByteBoundedBuffer } from "../common/byte-bounded-buffer.ts";
import { StallDetector } from "../common/stall-detector.ts";
import { quoteIdent, quoteReplicationLiteral } from "./connection-settings.ts";
import { epochMsToPostgresMicros, formatLsn } from "./lsn.ts";
import { isPublicationDropped, publicationDroppedError, toSluiceError } from "./pg-errors.ts";
import { CopyDataFramer } from "./protocol/copy-data-framer.ts";
import { decodeReplicationMessage, encodeStandbyStatusUpdate, XLOGDATA_HEADER_BYTES, XLOGDATA_TAG } from "./protocol/replication-messages.ts";
import { WalBuffer } from "./wal-buffer.ts";

/** One pgoutput message as received: its WAL position and its bytes. */
export interface WalMessage {
  readonly walStart: bigint;
  readonly payload: Buffer;
  /**
   * Set on a server keepalive, queued in order with the changes: `walStart` is then the server's
   * WAL end (everything before it is sent) and `payload` is empty.
   */
  readonly keepalive?: { readonly replyRequested: boolean };
}

/** The parts of pg's internal Connection used for the CopyBoth stream (not in pg's typings). */
interface WireConnection {
  on(event: "copyData", listener: (message: { chunk: Buffer }) => void): void;
  once(event: "replicationStart", listener: () => void): void;
  sendCopyFromChunk(chunk: Buffer): void;
  stream: WireStream;
}

interface WireStream {
  pause(): void;
  resume(): void;
  isPaused?(): boolean;
  listeners(event: "data"): ((chunk: Buffer) => void)[];
  removeListener(event: "data", listener: (chunk: Buffer) => void): void;
  on(event: "data", listener: (chunk: Buffer) => void): void;
}

export interface ReplicationStreamOptions {
  readonly client: ClientConfig;
  readonly slot: string;
  readonly publication: string;
  /** Where the server should start; it starts at the slot's confirmed_flush_lsn if that is later. */
  readonly startLsn: bigint;
  /** What is durable already: reported as flushed until acknowledge() moves it. */
  readonly flushedLsn: bigint;
  readonly buffer: ByteBoundedBuffer<WalMessage>;
  /** Status updates are sent at least this often, also while reading is paused. */
  readonly statusIntervalMs: number;
  /**
   * With nothing received for half of this, a status update asks the server for a reply; with
   * nothing for all of it, the stream fails (retriable) and its connection is dropped. 0: never;
   * default 60 s (the source's wal_receiver_timeout).
   */
  readonly receiveTimeoutMs?: number;
  readonly logger: Logger;
  readonly context: ErrorContext;
  /**
   * The publication was dropped while the slot still had changes to stream (PG_PUBLICATION_DROPPED): true when the
   * source takes a new snapshot on a new slot for it (snapshot.mode when-needed), which makes the failure retriable.
   */
  readonly publicationDropped?: () => boolean;
}

const EMPTY = Buffer.alloc(0);
/** PostgreSQL's own default for wal_receiver_timeout, and the config's. */
const DEFAULT_RECEIVE_TIMEOUT_MS = 60_000;

function formatSeconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}

export class ReplicationStream {
  private readonly options: ReplicationStreamOptions;
  private client: pg.Client | null = null;
  private wire: WireConnection | null = null;
  private receivedLsn: bigint;
  private flushedLsn: bigint;
  private statusTimer: NodeJS.Timeout | null = null;
  private silenceTimer: NodeJS.Timeout | null = null;
  /** Tells a silence check that comes far too late: this process was not running. */
  private stalls: StallDetector | null = null;
  /** When the socket last gave bytes (or reading resumed), and whether a reply was asked for since. */
  private heardAt = 0;
  private pinged = false;
  private paused = false;
  private stopping = false;
  private pauses = 0;
  /**
   * The last keepalive queued: later ones at the same WAL end are dropped unless they are the first
   * to ask for a reply. None at or before the start is queued: that position is already stored
   * (and after a snapshot it would sort below the snapshot's checkpoint).
   */
  private queuedKeepalive: { walEnd: bigint; replyRequested: boolean };

  constructor(options: ReplicationStreamOptions) {
    this.options = options;
    this.receivedLsn = options.flushedLsn;
    this.flushedLsn = options.flushedLsn;
    this.queuedKeepalive = { walEnd: options.startLsn, replyRequested: true };
  }

  private get receiveTimeoutMs(): number {
    return this.options.receiveTimeoutMs ?? DEFAULT_RECEIVE_TIMEOUT_MS;
  }

  get flushed(): bigint {
    return this.flushedLsn;
  }

  get received(): bigint {
    return this.receivedLsn;
  }

  /** How often reading was paused because the buffer was full. */
  get pauseCount(): number {
    return this.pauses;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** Connects and starts streaming; resolves once the server is in CopyBoth mode. */
  async start(): Promise<void> {
    const { slot, publication, startLsn, buffer, context } = this.options;
    const client = new pg.Client(this.options.client);
    this.client = client;
    client.on("error", (error) => this.fail(error, "replication connection failed"));
    client.on("end", () => this.fail(new Error("Connection terminated unexpectedly"), "replication connection closed"));
    try {
      await client.connect();
    } catch (error) {
      throw toSluiceError(error, "cannot open the replication connection", context);
    }
    // pg exposes the CopyBoth stream of START_REPLICATION only on its internal connection.
    const wire = (client as unknown as { connection: WireConnection }).connection;
    this.wire = wire;
    this.readCopyData(wire);
    buffer.onLowWater(() => this.resume());

    const started = new Promise<void>((resolve, reject) => {
      wire.once("replicationStart", () => resolve());
      const command =
        `START_REPLICATION SLOT ${quoteIdent(slot)} LOGICAL ${formatLsn(startLsn)} ` +
        `(proto_version '1', publication_names ${quoteReplicationLiteral(quoteIdent(publication))}, messages 'true')`;
      client.query(command).then(
        () => this.fail(new ConnectionError("the server ended the replication stream", { context }), "replication stream ended"),
        (error: unknown) => {
          reject(this.publicationDropped(error, context) ?? toSluiceError(error, `cannot stream from slot "${slot}"`, context));
          this.fail(error, "replication stream failed");
        },
      );
    });
    await started;
    this.statusTimer = setInterval(() => this.sendStatus(false), this.options.statusIntervalMs);
    this.statusTimer.unref();
    this.sendStatus(false);
    this.heard();
    const receiveTimeoutMs = this.receiveTimeoutMs;
    if (receiveTimeoutMs > 0) {
      const checkMs = Math.max(100, Math.min(5_000, Math.floor(receiveTimeoutMs / 4)));
      this.stalls = new StallDetector(checkMs);
      this.silenceTimer = setInterval(() => this.checkSilence(), checkMs);
      this.silenceTimer.unref();
    }
    this.options.logger.info({ slot, publication, start: formatLsn(startLsn), flushed: formatLsn(this.flushedLsn) }, "replication stream started");
  }

  /** Everything before `lsn` is durable downstream; the slot may release it. */
  acknowledge(lsn: bigint): void {
    if (lsn <= this.flushedLsn) return;
    this.flushedLsn = lsn;
    this.sendStatus(false);
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.statusTimer !== null) clearInterval(this.statusTimer);
    this.statusTimer = null;
    if (this.silenceTimer !== null) clearInterval(this.silenceTimer);
    this.silenceTimer = null;
    const client = this.client;
    this.client = null;
    this.wire = null;
    if (client === null) return;
    client.removeAllListeners("end");
    client.on("error", () => undefined);
    await client.end().catch(() => undefined);
  }

  /**
   * CopyData (the stream's messages) read from the socket's bytes by a CopyDataFramer, every other
   * message passed to pg's parser; pg's own reading (a 'copyData' event per message) where its
   * socket does not have exactly its one parsing listener. Set before START_REPLICATION, while
   * pg's parser holds no partial message.
   */
  private readCopyData(wire: WireConnection): void {
    const receive = (bytes: Buffer, start: number, end: number, owned = false) => this.receive(bytes, start, end, owned);
    const listeners = wire.stream.listeners("data");
    if (listeners.length !== 1) {
      wire.on("copyData", (message) => {
        this.heard();
        receive(message.chunk, 0, message.chunk.length);
      });
      return;
    }
    const pgParse = listeners[0]!;
    const framer = new CopyDataFramer(receive, pgParse);
    wire.stream.removeListener("data", pgParse);
    wire.stream.on("data", (chunk) => {
      this.heard();
      framer.push(chunk);
    });
  }

  /** The CopyData message in `bytes` from `start` to `end` (`owned`: a buffer of its own the framer let go, CopyDataHandler). */
  private receive(bytes: Buffer, start: number, end: number, owned: boolean): void {
    if (this.stopping) return;
    const { buffer } = this.options;
    if (end - start >= XLOGDATA_HEADER_BYTES && bytes[start] === XLOGDATA_TAG) {
      // Every change arrives this way: only its start LSN and a copy of its payload are needed
      // (the bytes are the socket's or pg's parser's, which reuses its receive buffer).
      // One bigint where the LSN fits a double's integers (below 2^53: every LSN for a long while), not readBigUInt64BE's several.
      const high = bytes.readUInt32BE(start + 1);
      const low = bytes.readUInt32BE(start + 5);
      const walStart = high < 0x200000 ? BigInt(high * 0x1_0000_0000 + low) : bytes.readBigUInt64BE(start + 1);
      if (walStart > this.receivedLsn) this.receivedLsn = walStart;
      if (buffer instanceof WalBuffer) {
        // Kept as bytes until read (wal-buffer.ts): no object per queued message.
        buffer.pushData(high, low, bytes, start + XLOGDATA_HEADER_BYTES, end, owned);
      } else {
        const payload = Buffer.allocUnsafe(end - start - XLOGDATA_HEADER_BYTES);
        bytes.copy(payload, 0, start + XLOGDATA_HEADER_BYTES, end);
        buffer.push({ walStart, payload }, end - start);
      }
      this.pauseWhenFull();
      return;
    }
    let message;
    try {
      message = decodeReplicationMessage(bytes.subarray(start, end));
    } catch (error) {
      this.fail(error, "undecodable replication message");
      return;
    }
    if (message.kind === "keepalive") {
      if (message.walEnd > this.receivedLsn) this.receivedLsn = message.walEnd;
      if (message.replyRequested) this.sendStatus(false);
      // The WAL end goes through the pipeline like a change: it is confirmed only once everything
      // received before it is durable (a fast shutdown waits for exactly that confirmation).
      const last = this.queuedKeepalive;
      if (message.walEnd > last.walEnd || (message.walEnd === last.walEnd && message.replyRequested && !last.replyRequested)) {
        this.queuedKeepalive = { walEnd: message.walEnd, replyRequested: message.replyRequested };
        buffer.push({ walStart: message.walEnd, payload: EMPTY, keepalive: { replyRequested: message.replyRequested } }, 0);
      }
    }
    this.pauseWhenFull();
  }

  private pauseWhenFull(): void {
    if (this.options.buffer.full && !this.paused) {
      // A slow reader slows the server: stop reading the socket until read() drains the buffer.
      this.paused = true;
      this.pauses++;
      this.wire?.stream.pause();
    }
  }

  private resume(): void {
    if (!this.paused || this.stopping) return;
    this.paused = false;
    // Silence while not reading is ours, not the server's.
    this.heard();
    this.wire?.stream.resume();
  }

  private heard(): void {
    this.heardAt = Date.now();
    this.pinged = false;
  }

  /**
   * A server that is paused (SIGSTOP), or a network that drops packets without a reset, leaves the
   * connection open with nothing arriving: no change, no keepalive. Asked for a reply at half the
   * timeout (as PostgreSQL's own subscribers do with wal_receiver_timeout), a server that answers
   * nothing by the whole timeout is given up on, and capture reconnects with backoff.
   */
  private checkSilence(): void {
    const now = Date.now();
    const stalledMs = this.stalls?.stalledMs(now) ?? null;
    if (this.paused || this.stopping) return;
    const { receiveTimeoutMs } = this;
    const { context } = this.options;
    if (stalledMs !== null) {
      // This process was not running (SIGSTOP, a frozen container or VM, a long pause of its event loop): what
      // the server sent meanwhile waits unread in the socket, read only after this timer. The silence is ours:
      // the server gets a whole timeout from now, asked for a reply at once.
      this.options.logger.warn({ stalledMs }, "this process did not run for a while; the replication connection's silence is measured again from now");
      this.heardAt = now;
      this.pinged = true;
      this.sendStatus(true);
      return;
    }
    const silentMs = now - this.heardAt;
    if (silentMs >= receiveTimeoutMs) {
      const source = context.source === undefined ? "" : `source ${context.source}: `;
      const server = context.server === undefined ? "the server" : `PostgreSQL at ${context.server}`;
      const error = new ConnectionError(
        `${source}nothing received from ${server} on the replication connection for ${formatSeconds(silentMs)} (wal_receiver_timeout ${formatSeconds(receiveTimeoutMs)}, ` +
          `not even a reply to a keepalive request): the server is paused or the network drops packets; reconnecting`,
        { code: "PG_RECEIVE_TIMEOUT", context: { ...context, position: formatLsn(this.receivedLsn) } },
      );
      this.fail(error, "replication connection silent");
    } else if (silentMs * 2 >= receiveTimeoutMs && !this.pinged) {
      this.pinged = true;
      this.sendStatus(true);
    }
  }

  private sendStatus(replyRequested: boolean): void {
    if (this.wire === null || this.stopping) return;
    const flushed = this.flushedLsn;
    const written = this.receivedLsn > flushed ? this.receivedLsn : flushed;
    this.wire.sendCopyFromChunk(
      encodeStandbyStatusUpdate({
        written,
        flushed,
        applied: flushed,
        clock: epochMsToPostgresMicros(Date.now()),
        replyRequested,
      }),
    );
  }

  /**
   * The publication was found missing by a look at the catalog (PostgreSQL 18 does not fail the stream for it): the
   * stream fails as it would for pgoutput's error, PG_PUBLICATION_DROPPED.
   */
  publicationMissing(): void {
    if (this.stopping) return;
    const context = { ...this.options.context, position: formatLsn(this.receivedLsn) };
    const cause = new Error(`publication "${this.options.publication}" not found in pg_publication by the catalog look`);
    this.fail(publicationDroppedError(cause, this.options, context, this.options.publicationDropped?.() ?? false, "look"), "publication missing");
  }

  private publicationDropped(error: unknown, context: ErrorContext): SluiceError | null {
    if (!isPublicationDropped(error, this.options.publication)) return null;
    return publicationDroppedError(error, this.options, context, this.options.publicationDropped?.() ?? false);
  }

  private fail(error: unknown, what: string): void {
    if (this.stopping) return;
    const context = { ...this.options.context, position: formatLsn(this.receivedLsn) };
    const failure = this.publicationDropped(error, context) ?? toSluiceError(error, what, context);
    this.options.logger.warn({ err: failure.message, ...failure.toLog() }, what);
    this.options.buffer.fail(failure);
    void this.stop();
  }
}
