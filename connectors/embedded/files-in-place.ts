/**
 * Whether the embedded log's files are still the ones this process writes. Deleted while the daemon runs (an operator
 * freeing disk space takes sluice.db-wal for a temporary file), SQLite writes on into the open, deleted files: what it
 * stores from then on is lost at a crash, and a process that opens the log meanwhile (a command, a restart, a sink
 * thread opening it again) creates new ones beside them and sees none of it.
 */
import { existsSync, statSync } from "node:fs";

export interface FileIdentity {
  readonly dev: number;
  readonly ino: number;
}

export function fileIdentity(path: string): FileIdentity {
  const { dev, ino } = statSync(path);
  return { dev, ino };
}

type Stat = (path: string) => FileIdentity;
type Exists = (path: string) => boolean;

/**
 * What became of the log's files, or null when they are in place. `wrote`: this connection committed a write, so its
 * -wal file exists for as long as it is open.
 */
export function filesGone(path: string, opened: FileIdentity, wrote: boolean, stat: Stat = statSync, exists: Exists = existsSync): string | null {
  let now: FileIdentity;
  try {
    now = stat(path);
  } catch {
    return `${path} was deleted`;
  }
  if (now.dev !== opened.dev || now.ino !== opened.ino) return `${path} was replaced by another file`;
  if (wrote && !exists(`${path}-wal`)) return `its write-ahead log ${path}-wal was deleted`;
  return null;
}
