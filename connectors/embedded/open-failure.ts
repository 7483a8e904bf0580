/**
 * Why SQLite could not open the log file. Its own words name no cause ("unable to open database file"): found on a live
 * deployment with topics.path on a read-only mount, where the start failed with just that. SQLite needs to write the
 * file, and to create its -wal and -shm files beside it, in the same folder.
 */
import { accessSync, constants, existsSync } from "node:fs";
import { dirname } from "node:path";

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
