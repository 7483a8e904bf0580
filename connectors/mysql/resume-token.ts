/**
 * The resume token a MySQL checkpoint carries in Position.resume: where to reconnect (binlog file and
 * offset, and the GTID state at that point for servers with GTIDs), which events already read again
 * from there are to be skipped, and -- right after a snapshot -- the per-table positions below which a
 * table's stream changes are already in its snapshot.
 */
import type { Position } from "../contracts.ts";
import { SluiceError } from "../errors.ts";
import { resumeBase } from "../common/incremental-snapshot-state.ts";
import { parseExportedSnapshotProgress } from "../common/exported-snapshot-progress.ts";
import type { ExportedSnapshotProgress } from "../common/exported-snapshot-progress.ts";
import { MAX_BINLOG_EPOCH } from "./positions.ts";

export type Flavor = "mysql" | "mariadb";

export interface ResumeToken {
  readonly flavor: Flavor;
  /** @@server_id of the server the positions belong to (positions are per server). */
  readonly serverId: number;
  /** Where to start reading: the first event of the transaction the checkpoint is in, or the next after it. */
  readonly file: string;
  readonly offset: number;
  /** GTID state of everything before file:offset (MySQL gtid_executed form or MariaDB gtid position); null without GTIDs. */
  readonly gtid: string | null;
  /** Events at or below this position were stored already. */
  readonly skipThrough: Position | null;
  /**
   * When skipThrough is inside a MySQL 8 compressed transaction: what its changes' positions were taken under (the
   * decompression limit, the captured tables: StreamDecoder.positionsKey). Resumed under another, the skip is not
   * trusted and the transaction is read again from its start.
   */
  readonly positionsKey?: string | undefined;
  /** "db.table" -> `change` below which that table's stream events are in its snapshot. */
  readonly snapshotThresholds: Readonly<Record<string, bigint>>;
  /** The snapshot was still running: it resumes from exportedProgress, or without one is taken again. */
  readonly snapshotIncomplete: boolean;
  /** While the snapshot runs: how far the rows stored with this checkpoint got (common/exported-snapshot-progress.ts). */
  readonly exportedProgress?: ExportedSnapshotProgress;
  /** The config's `tables` patterns when the checkpoint was taken: a table they did not match is backfilled (online-snapshots.ts). */
  readonly capturedTables?: readonly string[];
  /** The binlog history epoch of the positions (positions.ts): above 0 once a reset binlog or another server was accepted. */
  readonly epoch?: number;
  /** XA transactions prepared before the resume point whose rollback may come after it: xid -> the captured tables each changed (StreamDecoder.preparedXaAt). */
  readonly preparedXa?: Readonly<Record<string, readonly string[]>> | undefined;
}

const PREFIX = "mysql:";
/**
 * Version 1: positions in binlog history epoch 0. Version 2: in the token's epoch above 0, which a
 * Sluice before epochs would read as epoch 0 positions (sorting below what the sinks hold): it refuses
 * a version it does not know instead. An epoch 0 token stays version 1, byte for byte.
 */
const VERSION = 1;
const EPOCH_VERSION = 2;

export function encodeResumeToken(token: ResumeToken): string {
  return (
    PREFIX +
    JSON.stringify({
      v: token.epoch === undefined || token.epoch === 0 ? VERSION : EPOCH_VERSION,
      flavor: token.flavor,
      server: token.serverId,
      file: token.file,
      offset: token.offset,
      gtid: token.gtid,
      skip: token.skipThrough === null ? null : [token.skipThrough.commit.toString(), token.skipThrough.change.toString()],
      ...(token.skipThrough === null || token.positionsKey === undefined ? {} : { pk: token.positionsKey }),
      thresholds: Object.fromEntries(Object.entries(token.snapshotThresholds).map(([table, at]) => [table, at.toString()])),
      ...(token.snapshotIncomplete ? { snapshot: "incomplete" } : {}),
      ...(token.exportedProgress === undefined ? {} : { progress: token.exportedProgress }),
      ...(token.capturedTables === undefined ? {} : { tables: token.capturedTables }),
      ...(token.epoch === undefined || token.epoch === 0 ? {} : { epoch: token.epoch }),
      ...(token.preparedXa === undefined || Object.keys(token.preparedXa).length === 0 ? {} : { xa: token.preparedXa }),
    })
  );
}

/** Decodes the token at the start of Position.resume (online snapshot progress may follow it). */
export function decodeResumeToken(resume: string | undefined, source: string): ResumeToken {
  const text = resume === undefined ? undefined : resumeBase(resume);
  const bad = (why: string) =>
    new SluiceError(`the checkpoint of source "${source}" is not a MySQL resume token (${why}); was it written by another source kind?`, {
      code: "MYSQL_CHECKPOINT_INVALID",
      context: { component: "mysql-source", source },
    });
  if (text === undefined || !text.startsWith(PREFIX)) throw bad("no mysql: token");
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text.slice(PREFIX.length)) as Record<string, unknown>;
  } catch {
    throw bad("not JSON");
  }
  const { flavor, server, file, offset, gtid, skip, pk, thresholds, snapshot, tables, progress, epoch, xa } = raw;
  const version = raw["v"];
  if (typeof version === "number" && version > EPOCH_VERSION) throw bad(`token version ${version}, written by a newer Sluice`);
  if ((version !== VERSION && version !== EPOCH_VERSION) || (flavor !== "mysql" && flavor !== "mariadb") || typeof server !== "number" || typeof file !== "string" || typeof offset !== "number") throw bad("missing fields");
  if (gtid !== null && typeof gtid !== "string") throw bad("bad gtid");
  if (version === EPOCH_VERSION && epoch === undefined) throw bad("version 2 without an epoch");
  if (epoch !== undefined && !(Number.isInteger(epoch) && (epoch as number) > 0 && (epoch as number) <= MAX_BINLOG_EPOCH)) throw bad("bad epoch");
  const skipThrough = Array.isArray(skip) && skip.length === 2 ? { commit: BigInt(String(skip[0])), change: BigInt(String(skip[1])) } : null;
  const snapshotThresholds: Record<string, bigint> = {};
  for (const [table, at] of Object.entries((thresholds ?? {}) as Record<string, unknown>)) snapshotThresholds[table] = BigInt(String(at));
  const capturedTables = Array.isArray(tables) && tables.every((t) => typeof t === "string") ? { capturedTables: tables as string[] } : {};
  const exported = parseExportedSnapshotProgress(progress);
  const xaValid = typeof xa === "object" && xa !== null && !Array.isArray(xa) && Object.values(xa).every((t) => Array.isArray(t) && t.every((name) => typeof name === "string"));
  if (xa !== undefined && !xaValid) throw bad("bad prepared XA transactions");
  const positionsKey = skipThrough !== null && typeof pk === "string" ? { positionsKey: pk } : {};
  return { flavor, serverId: server, file, offset, gtid, skipThrough, ...positionsKey, snapshotThresholds, snapshotIncomplete: snapshot === "incomplete", ...capturedTables, ...(exported === null ? {} : { exportedProgress: exported }), ...(epoch === undefined ? {} : { epoch: epoch as number }), ...(xa === undefined ? {} : { preparedXa: xa as Record<string, string[]> }) };
}
