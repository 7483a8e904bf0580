/**
 * Why SQLite could not open the log file. Its own words name no cause ("unable to open database file"): found on a live
 * deployment with topics.path on a read-only mount, where the start failed with just that. SQLite needs to write the
 * file, and to create its -wal and -shm files beside it, in the same folder.
 */
import { accessSync, constants, existsSync } from "node:fs";
import { dirname } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import { sqliteErrorCode } from "./sqlite-errors.ts";

const WORDS: Readonly<Record<string, string>> = {
  EROFS: "a read-only file system",
  EACCES: "permission denied to this process's user",
  EPERM: "not permitted",
  ENOENT: "it does not exist",
  ENOTDIR: "a part of the path is not a folder",
};

type Access = (path: string, mode: number) => void;
type Exists = (path: string) => boolean;

/** The first of the log's folder and files this process may not write (read, when `readOnly`), said in words; "" when none. */
export function openFailureReason(path: string, readOnly: boolean, access: Access = accessSync, exists: Exists = existsSync): string {
  const checks: [string, string][] = readOnly
    ? [[path, "the file"]]
    : [
        [dirname(path), "its folder"],
        ...[path, `${path}-wal`, `${path}-shm`].filter((file) => exists(file)).map((file): [string, string] => [file, "the file"]),
      ];
  for (const [target, what] of checks) {
    try {
      access(target, readOnly ? constants.R_OK : constants.W_OK);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? "";
      return `${what} ${target} is not ${readOnly ? "readable" : "writable"}: ${WORDS[code] ?? (error as Error).message} (${code})`;
    }
  }
  return "";
}

const SQLITE_PERM = 3;
const SQLITE_READONLY = 8;
const SQLITE_CANTOPEN = 14;

/**
 * Whether SQLite can write the log it opened, "" when it can: SQLite's own verdict (a table created in a transaction
 * rolled back), not access(), which checks the real user and so refuses a process whose capabilities
 * (CAP_DAC_OVERRIDE) let it write. SQLite opens a file it may not write read-only without a word, and the first write
 * then fails: refused here with the reason in words when access() finds one. A busy lock (a daemon writing) says nothing.
 */
export function writeRefusal(db: DatabaseSync, path: string, access: Access = accessSync, exists: Exists = existsSync): string {
  try {
    db.exec("BEGIN IMMEDIATE");
    // BEGIN IMMEDIATE alone succeeds on a connection SQLite opened read-only: only a write is refused.
    db.exec("CREATE TABLE main._sluice_write_probe (x)");
    db.exec("ROLLBACK");
    return "";
  } catch (error) {
    if (db.isTransaction) db.exec("ROLLBACK");
    const code = sqliteErrorCode(error);
    if (code !== SQLITE_READONLY && code !== SQLITE_CANTOPEN && code !== SQLITE_PERM) return "";
    const reason = openFailureReason(path, false, access, exists);
    return reason !== "" ? reason : `SQLite cannot write it (${(error as Error).message})`;
  }
}

/** Why the log's missing folder could not be made: said of the nearest folder above it that exists, with mkdir's cause. */
export function folderCreationFailure(folder: string, error: unknown, exists: Exists = existsSync): string {
  let parent = dirname(folder);
  while (!exists(parent) && dirname(parent) !== parent) parent = dirname(parent);
  const code = (error as NodeJS.ErrnoException).code ?? "";
  const words = `${WORDS[code] ?? (error as Error).message} (${code})`;
  if (code === "ENOTDIR") return `cannot create its folder ${folder}: ${parent} is not a folder (${code})`;
  if (code === "EROFS" || code === "EACCES" || code === "EPERM") return `cannot create its folder ${folder}: the folder ${parent} is not writable: ${words}`;
  return `cannot create its folder ${folder} in ${parent}: ${words}`;
}
