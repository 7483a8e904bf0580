/**
 * The replication connection: authenticates through mysql2 (TLS, caching_sha2_password and the rest
 * come from it), registers as a replica with its own server id, asks for the binlog from a GTID set or
 * a file and offset, and puts every raw event into a byte-bounded buffer -- pausing the socket while
 * the buffer is full.
 *
 * mysql2 parses only four binlog event types and gives no raw access through its public API, so the
 * dump runs as a command of our own on mysql2's command queue (the duck-typed protocol of its
 * internal Command class: execute(packet) until it returns true), which hands on each packet's
 * bytes as they arrive; the events themselves are decoded by ./protocol.
 */
import { EventEmitter } from "node:events";
import { hostname } from "node:os";
import mysql from "mysql2";
import type { Connection, ConnectionOptions } from "mysql2";
import type { Logger } from "pino";
import type { ByteBoundedBuffer } from "../common/byte-bounded-buffer.ts";
import { StallDetector } from "../common/stall-detector.ts";
import { ConnectionError, SluiceError } from "../errors.ts";
import type { ErrorContext } from "../errors.ts";
import { verifyIpIdentity } from "./connection-settings.ts";
import { MysqlGtidSet } from "./gtid.ts";
import type { HeartbeatArrivals } from "./heartbeat-arrivals.ts";
import { ER_MASTER_FATAL_ERROR_READING_BINLOG, isReplicaReplaced, MYSQL_REPLICA_REPLACED, toSluiceError } from "./mysql-errors.ts";
import { binlogDump, binlogDumpGtid, registerReplica } from "./protocol/replica-commands.ts";
import type { Flavor } from "./resume-token.ts";

/** The parts of mysql2's connection and packet a raw command uses (not in mysql2's typings). */
interface WireConnection {
  sequenceId: number;
  /** The encoding of the server's messages (error texts). */
  clientEncoding?: string;
  write(buffer: Buffer): void;
  _resetSequenceId(): void;
  _bumpSequenceId(count: number): void;
  addCommand(command: unknown): void;
}

interface WirePacket {
  buffer: Buffer;
  offset: number;
  end: number;
  isError(): boolean;
  asError(encoding?: string): Error;
}

/**
 * A command on mysql2's queue that sends one request and passes every response packet's payload on
 * until `onPacket` returns true (done); errors -- error packets, or a lost connection -- go to `onError`.
 */
class RawCommand extends EventEmitter {
  private started = false;
  private readonly request: Buffer;
  private readonly onPacket: (payload: Buffer) => boolean;
  private readonly onError: (error: Error) => void;

  constructor(request: Buffer, onPacket: (payload: Buffer) => boolean, onError: (error: Error) => void) {
    super();
    this.request = request;
    this.onPacket = onPacket;
    this.onError = onError;
  }

  /** mysql2 calls this with each packet for the command at the head of its queue; true ends the command. */
  execute(packet: WirePacket | undefined, connection: WireConnection): boolean {
    try {
      if (!this.started) {
        this.started = true;
        connection._resetSequenceId();
        const header = Buffer.alloc(4);
        header.writeUIntLE(this.request.length, 0, 3);
        header[3] = connection.sequenceId;
        connection._bumpSequenceId(1);
        connection.write(Buffer.concat([header, this.request]));
        return false;
      }
      if (packet === undefined) return false;
      if (packet.isError()) {
        // Without the connection's encoding mysql2 cannot read the message, and throws instead of naming the server's error.
        this.onError(packet.asError(connection.clientEncoding));
        return true;
      }
      return this.onPacket(packet.buffer.subarray(packet.offset, packet.end));
    } catch (error) {
      this.onError(error as Error);
      return true;
    }
  }

  /** mysql2 reports connection-level failures of the running command here. */
  onResult(error: Error | null): void {
    if (error !== null) this.onError(error);
  }
}

export interface BinlogStart {
  readonly file: string;
  readonly offset: number;
  /** GTID state to start after; used when `useGtid`. */
  readonly gtid: string | null;
  readonly useGtid: boolean;
}

export interface BinlogStreamOptions {
  readonly connection: ConnectionOptions;
  readonly serverId: number;
  readonly flavor: Flavor;
  readonly start: BinlogStart;
  /** The server sends a heartbeat after this long without events; 0: Sluice's default of 30 s. */
  readonly heartbeatMs: number;
  readonly buffer: ByteBoundedBuffer<Buffer>;
  /** Stamped with each heartbeat's arrival, for the decoder of `buffer`. */
  readonly heartbeatArrivals?: HeartbeatArrivals;
  /** Nothing received for longer than this fails the stream; default twice the heartbeat plus 10 s. */
  readonly silenceTimeoutMs?: number;
  /** MariaDB refused a dump asked for by GTID before sending anything: the next stream should start by file and offset. */
  readonly onGtidStartRefused?: () => void;
  readonly logger: Logger;
  readonly context: ErrorContext;
}

const DEFAULT_HEARTBEAT_MS = 30_000;

export class BinlogStream {
  private readonly options: BinlogStreamOptions;
  private connection: Connection | null = null;
  private stopping = false;
  private paused = false;
  private pauses = 0;
  private bytes = 0;
  private lastPacketAt = Date.now();
  private watchdog: NodeJS.Timeout | null = null;

  constructor(options: BinlogStreamOptions) {
    this.options = options;
  }

  get pauseCount(): number {
    return this.pauses;
  }

  get receivedBytes(): number {
    return this.bytes;
  }

  /** The server's id of the replication connection (to KILL its dump thread), null before connecting. */
  get threadId(): number | null {
    return this.connection?.threadId ?? null;
  }

  /** Connects and asks for the binlog; resolves once the dump request is sent. */
  async start(): Promise<void> {
    const { options } = this;
    const connection = mysql.createConnection(options.connection);
    this.connection = connection;
    connection.on("error", (error) => this.fail(error, "binlog connection failed"));
    await new Promise<void>((resolve, reject) => connection.connect((error) => (error === null ? resolve() : reject(error))))
      .then(() => verifyIpIdentity(options.connection, (connection as unknown as { stream?: unknown }).stream))
      .catch((error: unknown) => {
        throw toSluiceError(error, "cannot open the binlog connection", options.context);
      });
    const heartbeatMs = options.heartbeatMs > 0 ? options.heartbeatMs : DEFAULT_HEARTBEAT_MS;
    const period = BigInt(heartbeatMs) * 1_000_000n;
    // MySQL 8.0.26+ reads the source_ names, older servers and MariaDB the master_ ones.
    const settings = [
      "SET @master_binlog_checksum = @@global.binlog_checksum",
      "SET @source_binlog_checksum = @@global.binlog_checksum",
      `SET @master_heartbeat_period = ${period}`,
      `SET @source_heartbeat_period = ${period}`,
    ];
    if (options.flavor === "mariadb") {
      settings.push("SET @mariadb_slave_capability = 4");
      if (options.start.useGtid) {
        settings.push(`SET @slave_connect_state = ${connection.escape(options.start.gtid ?? "")}`, "SET @slave_gtid_strict_mode = 1", "SET @slave_gtid_ignore_duplicates = 0");
      }
    }
    for (const sql of settings) await this.query(sql);
    await this.register();
    this.dump();
    this.options.buffer.onLowWater(() => this.resume());
    this.lastPacketAt = Date.now();
    const silenceTimeoutMs = options.silenceTimeoutMs ?? heartbeatMs * 2 + 10_000;
    const checkMs = Math.min(heartbeatMs, 5_000);
    const stalls = new StallDetector(checkMs);
    this.watchdog = setInterval(() => this.checkAlive(silenceTimeoutMs, stalls), checkMs);
    this.watchdog.unref();
    options.logger.info(
      { file: options.start.file, offset: options.start.offset, gtid: options.start.useGtid ? options.start.gtid : undefined, serverId: options.serverId },
      "binlog stream started",
    );
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.watchdog !== null) clearInterval(this.watchdog);
    this.watchdog = null;
    const connection = this.connection;
    this.connection = null;
    if (connection === null) return;
    connection.removeAllListeners("error");
    connection.on("error", () => undefined);
    // A dump never ends on its own: drop the socket rather than wait for the server to close its side.
    connection.destroy();
    (connection as unknown as { stream?: { destroy(): void } }).stream?.destroy();
  }

  private query(sql: string): Promise<void> {
    return new Promise((resolve, reject) =>
      this.connection!.query(sql, (error) => (error === null ? resolve() : reject(toSluiceError(error, `binlog connection setup (${sql.split("=")[0]!.trim()})`, this.options.context)))),
    );
  }

  private register(): Promise<void> {
    return new Promise((resolve, reject) => {
      const command = new RawCommand(
        registerReplica(this.options.serverId, hostname()),
        () => {
          resolve();
          return true;
        },
        (error) => reject(toSluiceError(error, `cannot register as replica ${this.options.serverId}`, this.options.context)),
      );
      (this.connection as unknown as WireConnection).addCommand(command);
    });
  }

  private dump(): void {
    const { serverId, start, flavor } = this.options;
    let request: Buffer;
    if (start.useGtid && flavor === "mysql") request = binlogDumpGtid(serverId, MysqlGtidSet.parse(start.gtid ?? "").encode());
    else if (start.useGtid) request = binlogDump(serverId, "", 4);
    else request = binlogDump(serverId, start.file, start.offset);
    const command = new RawCommand(request, (payload) => this.receive(payload), (error) => this.fail(error, "binlog stream failed"));
    (this.connection as unknown as WireConnection).addCommand(command);
  }

  private receive(payload: Buffer): boolean {
    if (this.stopping) return true;
    this.lastPacketAt = Date.now();
    const marker = payload[0];
    if (marker === 0xfe && payload.length < 9) {
      this.fail(new ConnectionError("the server ended the binlog stream", { context: this.options.context }), "binlog stream ended");
      return true;
    }
    const event = payload.subarray(1);
    this.bytes += event.length;
    const { buffer } = this.options;
    this.options.heartbeatArrivals?.received(event, this.lastPacketAt);
    buffer.push(event, event.length);
    if (buffer.full && !this.paused) {
      // A slow reader slows the server: stop reading the socket until read() drains the buffer.
      this.paused = true;
      this.pauses++;
      this.connection?.pause();
    }
    return false;
  }

  private resume(): void {
    if (!this.paused || this.stopping) return;
    this.paused = false;
    this.lastPacketAt = Date.now();
    this.connection?.resume();
  }

  private checkAlive(silenceTimeoutMs: number, stalls: StallDetector): void {
    const now = Date.now();
    const stalledMs = stalls.stalledMs(now);
    if (this.paused || this.stopping) return;
    if (stalledMs !== null) {
      // This process did not run: the server's heartbeats wait unread in the socket. It gets a whole timeout from now.
      this.options.logger.warn({ stalledMs }, "this process did not run for a while; the binlog stream's silence is measured again from now");
      this.lastPacketAt = now;
      return;
    }
    const silentMs = now - this.lastPacketAt;
    if (silentMs > silenceTimeoutMs) {
      this.fail(new ConnectionError(`no data nor heartbeat from the server for ${Math.round(silentMs / 1000)} s`, { context: this.options.context }), "binlog stream silent");
    }
  }

  private fail(error: unknown, what: string): void {
    if (this.stopping) return;
    const failure = this.classify(error, what);
    this.options.logger.warn({ err: failure.message, ...failure.toLog() }, what);
    this.options.buffer.fail(failure);
    void this.stop();
  }

  private classify(error: unknown, what: string): SluiceError {
    const errno = (error as { errno?: unknown } | null)?.errno;
    const { start, context, serverId } = this.options;
    if (isReplicaReplaced(error)) {
      // Not retriable: connecting again would end the other stream the same way, and so on.
      return new SluiceError(
        `the server ended the binlog stream: another replica asked for the binlog with this source's server_id ${serverId} (${(error as Error).message}). ` +
          `Under the capture lease that is the standby taking over from this process; otherwise another process or replica uses the same server_id: give each source its own`,
        { code: MYSQL_REPLICA_REPLACED, cause: error, context: { ...context, serverId } },
      );
    }
    if (errno === ER_MASTER_FATAL_ERROR_READING_BINLOG && start.useGtid && this.options.flavor === "mariadb" && this.bytes === 0) {
      // MariaDB's GTID lookup fails where GTIDs were written out of order (gtid_strict_mode=OFF allows a session's
      // gtid_seq_no below the domain's last): "Could not find GTID state requested by slave in any binlog files", or
      // "... requested to start from GTID X, which is not in the master's binlog", though the file is there. The
      // start checks again whether the checkpoint's file is there and its GTID state is the checkpoint's
      // (binlog-reset.ts) before a stream by file and offset; a binlog really purged or reset is refused there.
      this.options.onGtidStartRefused?.();
      return new SluiceError(
        `MariaDB refused to send the binlog from GTID ${start.gtid} (${(error as Error).message}); capture connects again and reads from the checkpoint's binlog file and offset ${start.file}:${start.offset} instead, once it has checked that file is still there (GTIDs written out of order, which gtid_strict_mode=OFF allows, hide a position from the server's GTID lookup)`,
        { code: "MYSQL_GTID_START_REFUSED", retriable: true, cause: error, context: { ...context, position: `GTID ${start.gtid}` } },
      );
    }
    if (errno === ER_MASTER_FATAL_ERROR_READING_BINLOG) {
      const detail = (error as Error).message;
      const from = start.useGtid ? `GTID ${start.gtid}` : `${start.file}:${start.offset}`;
      const purged = /purged|could not find|not find first log|no longer|not in the master's binlog/i.test(detail);
      return new SluiceError(
        purged
          ? `the server no longer has the binlog from ${from} (${detail}): it was purged, or reset (RESET MASTER); the changes since are lost to the binlog. The next start tells which: a purged binlog is snapshotted again under snapshot.mode: when-needed (MYSQL_POSITION_PURGED otherwise), a reset is snapshotted again in a new binlog history epoch under when-needed too (MYSQL_BINLOG_RESET otherwise; docs/mysql.md#a-reset-binlog-or-another-server)`
          : `the server cannot send the binlog from ${from}: ${detail}`,
        { code: purged ? "MYSQL_POSITION_PURGED" : "MYSQL_BINLOG_UNAVAILABLE", cause: error, context: { ...context, position: from } },
      );
    }
    return toSluiceError(error, what, context);
  }
}
