/**
 * How MySQL/MariaDB binlog coordinates become Sluice positions (docs/mysql.md, "Positions").
 *
 * A binlog coordinate is (file, byte offset). Files are numbered `<basename>.000042`; MySQL allows
 * at most 2^31-1 of them and offsets stay below 2^32 (the event header stores them in 4 bytes), so
 *
 *     at(file, offset) = fileIndex * 2^32 + offset  < 2^63
 *
 * orders every byte of the server's binlog history in a signed 64-bit integer (Elasticsearch's
 * external version, ClickHouse's UInt64 version, DuckDB's BIGINT all hold it).
 *
 * A binlog history epoch (docs/mysql.md, "A reset binlog") goes above the file index: after a
 * RESET MASTER or a move to another server, accepted under snapshot.mode: when-needed, the new
 * history's positions are taken one epoch higher, so they (and the new snapshot's reset markers)
 * sort above every version of the old one:
 *
 *     at(epoch, file, offset) = (epoch * 2^24 + fileIndex) * 2^32 + offset  < 2^63 for epoch <= 127
 *
 * Epoch 0 is the formula above unchanged (positions of every existing checkpoint, topic and target
 * stay the same, file indexes up to 2^31-1); an epoch above 0 needs file indexes below 2^24
 * (16,777,216 files: decades of a file a minute), and is refused beyond.
 *
 * A row change's `change` is at() of the first byte of its own row image inside its rows event: row
 * images occupy distinct, increasing bytes, so every row change -- however many a statement makes --
 * has its own, increasing version without any counter. An update that changes the key becomes a
 * delete (at its before image) and a create (at its after image). `commit` is at() of the first
 * event of the transaction (its GTID or BEGIN event): the binlog holds transactions whole, in commit
 * order, so ordering by where a transaction begins is ordering by commit, and a row can be stamped
 * without reading ahead to the XID (which would buffer whole transactions).
 *
 * "Everything up to x is done" positions (the end of a transaction, a heartbeat, a snapshot) have
 * commit === change === x, x being an event boundary. A row always has change > commit, so the
 * two kinds never collide; a transaction beginning at x sorts after the through-position x.
 */
import type { Position } from "../contracts.ts";
import { decodeResumeToken } from "./resume-token.ts";
import type { ResumeToken } from "./resume-token.ts";

const MAX_FILE_INDEX = 2 ** 31 - 1;
/** Files a binlog history epoch above 0 has room for. */
export const EPOCH_FILES = 2 ** 24;
export const MAX_BINLOG_EPOCH = 127;

/** The file's number, counted in `epoch` (binlogAt's file index): the number itself in epoch 0. */
export function binlogFileIndex(file: string, epoch = 0): number {
  const match = /\.(\d+)$/.exec(file);
  if (match === null) throw new RangeError(`binlog file name "${file}" does not end in .<number>`);
  const index = Number(match[1]);
  if (!Number.isSafeInteger(index) || index > MAX_FILE_INDEX) throw new RangeError(`binlog file number of "${file}" is beyond 2^31-1`);
  if (epoch === 0) return index;
  if (!Number.isInteger(epoch) || epoch < 0 || epoch > MAX_BINLOG_EPOCH) throw new RangeError(`binlog history epoch ${epoch} is beyond ${MAX_BINLOG_EPOCH}`);
  if (index >= EPOCH_FILES) throw new RangeError(`binlog file number of "${file}" is beyond 2^24-1, which binlog history epoch ${epoch} has room for`);
  return epoch * EPOCH_FILES + index;
}

/**
 * The binlog history epoch of a position (0 for every position of a binlog never reset under Sluice).
 * The number alone cannot tell epoch 0's file 2^24+n (epoch 0 allows file numbers up to 2^31-1) from
 * epoch 1's file n: `epoch`, when the caller knows it (a checkpoint's token, the stream's), decides;
 * without it a position is read as if its epoch 0 file were below 2^24.
 */
export function epochOf(at: bigint, epoch?: number): number {
  return epoch ?? Number(at >> 56n);
}

export function binlogAt(fileIndex: number, offset: number): bigint {
  return (BigInt(fileIndex) << 32n) | BigInt(offset);
}

/** The binlog file's own number (without the epoch; `epoch` as for epochOf). */
export function fileIndexOf(at: bigint, epoch?: number): number {
  return Number(at >> 32n) - epochOf(at, epoch) * EPOCH_FILES;
}

export function offsetOf(at: bigint): number {
  return Number(at & 0xffffffffn);
}

export function throughPosition(at: bigint): Position {
  return { commit: at, change: at };
}

export function rowPosition(transactionStart: bigint, change: bigint): Position {
  return { commit: transactionStart, change };
}

export function isThroughPosition(position: Position): boolean {
  return position.commit === position.change;
}

/**
 * A binlog coordinate as MySQL writes it, `mysql-bin.000042:1234`. The base name is not part of
 * `at`: it is taken from `sameServerFile` (the name of any binlog file of the same server); without
 * one the file shows as `*.000042`.
 */
export function formatAt(at: bigint, sameServerFile?: string, knownEpoch?: number): string {
  const epoch = epochOf(at, knownEpoch);
  return `${binlogFileName(fileIndexOf(at, epoch), sameServerFile)}:${offsetOf(at)}${epoch === 0 ? "" : ` (binlog epoch ${epoch})`}`;
}

function binlogFileName(index: number, sameServerFile: string | undefined): string {
  const match = sameServerFile === undefined ? null : /^(.*)\.(\d+)$/.exec(sameServerFile);
  return `${match ? match[1]! : "*"}.${String(index).padStart(match ? match[2]!.length : 6, "0")}`;
}

/**
 * A position for people (logs, /status, errors): `file:offset` when everything through there is
 * done; a row change's own coordinate followed by where its transaction begins. A checkpoint's
 * resume token adds the file's base name and the GTID state there.
 */
export function formatMysqlPosition(position: Position): string {
  const token = resumeTokenOf(position);
  const file = token?.file;
  const epoch = token === null ? undefined : (token.epoch ?? 0);
  let text = isThroughPosition(position) ? formatAt(position.commit, file, epoch) : `${formatAt(position.change, file, epoch)} (transaction at ${formatAt(position.commit, file, epoch)})`;
  if (token?.gtid) text += `, GTID ${token.gtid}`;
  if (token?.snapshotIncomplete) text += ", snapshot incomplete";
  return text;
}

function resumeTokenOf(position: Position): ResumeToken | null {
  if (position.resume === undefined) return null;
  try {
    return decodeResumeToken(position.resume, "");
  } catch {
    return null;
  }
}
