/**
 * Whether the embedded log's files are still the ones this process writes. Deleted while the daemon runs (an operator
 * freeing disk space takes sluice.db-wal for a temporary file), SQLite writes on into the open, deleted files: what it
 * stores from then on is lost at a crash, and a process that opens the log meanwhile (a command, a restart) creates new
 * -wal and -shm files beside them: two processes then write two write-ahead logs under two separate locks.
 * So the files are told by identity (device and inode), not by name: a -wal created again by another process exists
 * under the same name but is not the one this connection writes.
 */
import { statSync } from "node:fs";

export interface FileIdentity {
  readonly dev: number;
  readonly ino: number;
}

export function fileIdentity(path: string): FileIdentity {
  const { dev, ino } = statSync(path);
  return { dev, ino };
}

/** The identities this connection holds: the file, and its -wal and -shm once they exist for it. */
export interface LogFiles {
  readonly main: FileIdentity;
  wal: FileIdentity | null;
  shm: FileIdentity | null;
}

type Stat = (path: string) => FileIdentity;

export type FilesVerdict =
  | { readonly state: "in place" }
  /** Deleted or replaced: permanent. */
  | { readonly state: "gone"; readonly what: string }
  /** Could not be looked at (EACCES after a folder's mode changed, EIO, ESTALE...): says nothing about the files. */
  | { readonly state: "unknown"; readonly path: string; readonly error: Error };

const GONE_CODES = new Set(["ENOENT", "ENOTDIR"]);

/** Only these errors of stat mean the file is not there any more. */
function isGone(error: unknown): boolean {
  return GONE_CODES.has((error as NodeJS.ErrnoException).code ?? "");
}

function same(a: FileIdentity, b: FileIdentity): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

/**
 * What became of the log's files, compared with the identities held. A -wal or -shm not yet held (before this
 * connection's first write the -wal may not exist) is recorded in `held` when found, and compared from then on.
 */
export function filesVerdict(path: string, held: LogFiles, stat: Stat = statSync): FilesVerdict {
  const files: Array<{ path: string; key: "main" | "wal" | "shm"; name: string }> = [
    { path, key: "main", name: path },
    { path: `${path}-wal`, key: "wal", name: `its write-ahead log ${path}-wal` },
    { path: `${path}-shm`, key: "shm", name: `its shared-memory file ${path}-shm` },
  ];
  for (const file of files) {
    const expected = held[file.key];
    let now: FileIdentity;
    try {
      now = stat(file.path);
    } catch (error) {
      if (!isGone(error)) return { state: "unknown", path: file.path, error: error as Error };
      if (expected === null) continue;
      return { state: "gone", what: `${file.name} was deleted` };
    }
    if (expected === null) {
      if (file.key !== "main") held[file.key] = { dev: now.dev, ino: now.ino };
      continue;
    }
    if (!same(now, expected)) return { state: "gone", what: `${file.name} was replaced by another file (deleted and created again, by another process opening the log?)` };
  }
  return { state: "in place" };
}
