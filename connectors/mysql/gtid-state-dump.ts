/**
 * MariaDB's GTID state before a binlog coordinate, read through the replication protocol: what
 * BINLOG_GTID_POS answers, for a file the server cannot read that way. BINLOG_GTID_POS (and SHOW
 * BINLOG EVENTS) read the file in the server with max_allowed_packet as the largest event, and give
 * null for every coordinate past a larger one (one row of 16 MiB under the default, an update of an
 * 8 MiB row under binlog_row_image FULL); the binlog dump sends events up to
 * slave_max_allowed_packet (1 GiB by default). It reads the file from its start up to the
 * coordinate, so it is asked only where BINLOG_GTID_POS gives null.
 */
import type { ConnectionOptions } from "mysql2";
import type { Logger } from "pino";
import { ByteBoundedBuffer } from "../common/byte-bounded-buffer.ts";
import { SluiceError } from "../errors.ts";
import type { ErrorContext } from "../errors.ts";
import { BinlogStream } from "./binlog-stream.ts";
import type { Sql } from "./catalog.ts";
import { MariadbGtidPosition } from "./gtid.ts";
import { BinaryReader } from "./protocol/binary-reader.ts";
import { EventType } from "./protocol/constants.ts";
import { ARTIFICIAL_FLAG, EVENT_HEADER_BYTES, readEventHeader } from "./protocol/event-header.ts";
import { readMariadbGtid, readMariadbGtidList } from "./protocol/events.ts";

export interface GtidStateDumpOptions {
  readonly connection: ConnectionOptions;
  /** The source's server_id: the dump registers as that replica (the source's own stream is not running yet). */
  readonly serverId: number;
  /** Ends the dump's thread on the server once read, which would otherwise wait for more (the source's stream would find it and end it as a former leader's). */
  readonly catalog: Sql;
  readonly logger: Logger;
  readonly context: ErrorContext;
  /** Longest wait for the next event (the server sends a heartbeat each second when it has none). */
  readonly timeoutMs?: number;
}

const BUFFER_BYTES = 8 * 1024 * 1024;
/** A heartbeat comes after this long without events: the dump has sent all the file has so far. */
const HEARTBEAT_MS = 1_000;

/** The GTID state before file:offset, as BINLOG_GTID_POS gives it; null when no event of the file starts (or ends) there. */
export async function mariadbGtidStateByDump(options: GtidStateDumpOptions, file: string, offset: number): Promise<string | null> {
  const buffer = new ByteBoundedBuffer<Buffer>(BUFFER_BYTES);
  const stream = new BinlogStream({
    connection: options.connection,
    serverId: options.serverId,
    flavor: "mariadb",
    start: { file, offset: 4, gtid: null, useGtid: false },
    heartbeatMs: HEARTBEAT_MS,
    buffer,
    logger: options.logger,
    context: options.context,
  });
  const timeoutMs = options.timeoutMs ?? 60_000;
  const signal = new AbortController().signal;
  await stream.start();
  try {
    const state = new MariadbGtidPosition();
    let end = 4;
    let began = false;
    for (;;) {
      if (!(await buffer.waitForItem(signal, timeoutMs))) {
        throw new SluiceError(`reading the binlog ${file} up to ${offset} for its GTID state: no event for ${timeoutMs} ms`, { code: "MYSQL_BINLOG_UNAVAILABLE", retriable: true, context: options.context });
      }
      const event = buffer.shift()!;
      const header = readEventHeader(event);
      // The file's events so far are all sent (a heartbeat), or the dump went on to the next file (its artificial rotate).
      const fileDone = header.type === EventType.HEARTBEAT || header.type === EventType.HEARTBEAT_V2 || (began && header.type === EventType.ROTATE && (header.flags & ARTIFICIAL_FLAG) !== 0);
      if (fileDone) return end === offset ? state.toString() : null;
      if ((header.flags & ARTIFICIAL_FLAG) !== 0 || header.logPos === 0) continue;
      began = true;
      const start = header.logPos - header.size;
      if (start >= offset) return start === offset ? state.toString() : null;
      const body = new BinaryReader(event, EVENT_HEADER_BYTES);
      if (header.type === EventType.MARIADB_GTID_LIST) for (const gtid of readMariadbGtidList(body)) state.update(gtid);
      else if (header.type === EventType.MARIADB_GTID) state.update(readMariadbGtid(body, header.serverId).gtid);
      end = header.logPos;
      if (header.type === EventType.ROTATE) return end === offset ? state.toString() : null;
    }
  } finally {
    const thread = stream.threadId;
    await stream.stop();
    if (thread !== null) await options.catalog.rows(`KILL CONNECTION ${thread}`).catch(() => undefined);
  }
}
