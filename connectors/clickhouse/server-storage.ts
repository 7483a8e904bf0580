/**
 * ClickHouse refusing a write because its own storage has no room or turned read-only. 18.16 reports
 * a full disk as error 75 (CANNOT_WRITE_TO_FILE_DESCRIPTOR) quoting the errno ("errno: 28, strerror:
 * No space left on device"), newer servers also as 243 (NOT_ENOUGH_SPACE) when a part cannot reserve
 * room. Either lifts once an operator frees space or remounts the disk, so the sink waits instead of
 * stopping; any other error 75 (an I/O error) stays a failure. Other codes carry a full disk too (CANNOT_FSYNC
 * 95 with errno 28, CANNOT_CLOSE_FILE 77, POCO_EXCEPTION 1000 from createDirectories), so the message is read
 * for any code except the data codes, whose messages may quote a row's text ("No space left on device" in a
 * value a parse error shows): read as a storage refusal, that row would be retried for ever instead of isolated.
 */

import { DATA_CODES } from "./server-codes.ts";

/** NOT_ENOUGH_SPACE: no disk of the table's storage policy can reserve the part's size. */
const NOT_ENOUGH_SPACE = 243;

/** The errnos of a full or read-only disk: ENOSPC, EDQUOT, EROFS. */
const STORAGE_ERRNOS: ReadonlyMap<number, string> = new Map([
  [28, "its disk is full"],
  [122, "its disk quota is used up"],
  [30, "its disk is read-only"],
]);

/** Why the server's storage refused the write, in a few words, or null when the error is not about its storage. */
export function storageRefusal(code: number | null, message: string): string | null {
  if (code === NOT_ENOUGH_SPACE) return "its disk is full";
  if (code !== null && DATA_CODES.has(code)) return null;
  const errno = /errno: (\d+)/.exec(message);
  if (errno !== null) return STORAGE_ERRNOS.get(Number(errno[1])) ?? null;
  if (/No space left on device/i.test(message)) return "its disk is full";
  if (/Disk quota exceeded/i.test(message)) return "its disk quota is used up";
  if (/Read-only file system/i.test(message)) return "its disk is read-only";
  return null;
}

/** The path the server named in its refusal ("Cannot write to file /var/lib/clickhouse/..."), if any. */
export function refusedPath(message: string): string | null {
  return /(?:file|directory) (\/\S+?),/.exec(message)?.[1] ?? null;
}
