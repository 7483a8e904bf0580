import { randomUUID } from "node:crypto";
import { closeSync, openSync, statfsSync, unlinkSync } from "node:fs";
import { dirname, join } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import { SluiceError } from "../errors.ts";

const SQLITE_BUSY = 5;
const SQLITE_LOCKED = 6;
const SQLITE_NOMEM = 7;
const SQLITE_IOERR = 10;
const SQLITE_CORRUPT = 11;
const SQLITE_FULL = 13;

interface SqliteFailure {
  code?: unknown;
  errcode?: unknown;
  errstr?: unknown;
}

export function sqliteErrorCode(error: unknown): number | undefined {
  const failure = error as SqliteFailure | null;
  return failure?.code === "ERR_SQLITE_ERROR" && typeof failure.errcode === "number" ? failure.errcode & 0xff : undefined;
}

/** After SQLITE_FULL (and some I/O errors) SQLite has already rolled back: a ROLLBACK then would throw and hide the cause. */
export function rollBackQuietly(db: DatabaseSync): void {
  if (!db.isTransaction) return;
  try {
    db.exec("ROLLBACK");
  } catch {
    // the transaction is gone either way; the caller throws the error that ended it
  }
}

/**
 * The errno of creating a file in `folder` ("EROFS"), or undefined when it can be written. access(2) is not enough:
 * ext4 turned read-only after disk errors (errors=remount-ro, shown as emergency_ro) still passes W_OK.
 */
export function folderWriteRefusal(folder: string): string | undefined {
  // Not the pid alone: a probe left by a kill -9 under the same pid (1 in every container) would answer EEXIST, read
  // as writable, even once the file system turned read-only; and threads of one process share the pid.
  const probe = join(folder, `.sluice-write-check-${process.pid}-${randomUUID()}`);
  try {
    closeSync(openSync(probe, "wx"));
    unlinkSync(probe);
    return undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === "EEXIST" ? undefined : code;
  }
}

/** Below this much room left (a few SQLite pages), an I/O error is taken as the disk full. */
export const DISK_FULL_BYTES = 16 * 1024;

/** The bytes a non-root writer may still use on `folder`'s disk, or undefined when they cannot be read. */
export function folderFreeBytes(folder: string): number | undefined {
  try {
    const stats = statfsSync(folder);
    return stats.bavail * stats.bsize;
  } catch {
    return undefined;
  }
}

/** A SQLite failure as a SluiceError: disk full and lock contention may heal and are retriable; I/O errors and corruption are not. */
export function topicLogError(
  error: unknown,
  operation: string,
  path: string,
  writeRefusal: (folder: string) => string | undefined = folderWriteRefusal,
  freeBytes: (folder: string) => number | undefined = folderFreeBytes,
): SluiceError {
  if (error instanceof SluiceError) return error;
  const context = { component: "embedded-log", path, operation };
  const message = error instanceof Error ? error.message : String(error);
  switch (sqliteErrorCode(error)) {
    case SQLITE_FULL:
      return new SluiceError(`embedded topic log ${path}: disk full during ${operation}; nothing of it was stored (${message})`, { code: "TOPIC_LOG_DISK_FULL", retriable: true, context, cause: error });
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      // Capture and every sink thread write the file through connections of their own; a long write (a large batch, a slow disk) holds the others past the busy timeout.
      return new SluiceError(`embedded topic log ${path}: locked by another writer (the capture thread, a sink thread or another process) during ${operation}; retried (${message})`, { code: "TOPIC_LOG_BUSY", retriable: true, context, cause: error });
    case SQLITE_NOMEM:
      return new SluiceError(`embedded topic log ${path}: out of memory during ${operation} (${message})`, { code: "TOPIC_LOG_NO_MEMORY", retriable: true, context, cause: error });
    case SQLITE_IOERR:
      // SQLite says only "disk I/O error"; a file system turned read-only is the common cause, and one an operator can act on.
      if (writeRefusal(dirname(path)) === "EROFS") {
        // Not waited out: mending it (fsck, a remount) needs the file closed, which a waiting process would keep open.
        return new SluiceError(
          `embedded topic log ${path}: its file system turned read-only during ${operation} (EROFS; Linux does so after disk errors); nothing of it was stored. Check the disk (dmesg), repair it and mount it writable again, then start Sluice again: it goes on from the last stored checkpoint (${message})`,
          { code: "TOPIC_LOG_FILE_SYSTEM_READ_ONLY", context, cause: error },
        );
      }
      {
        // A disk filled to its last blocks while SQLite extends a file it has begun (its journal, the WAL) is said as "disk I/O error", not SQLITE_FULL.
        const free = freeBytes(dirname(path));
        if (free !== undefined && free < DISK_FULL_BYTES) {
          return new SluiceError(`embedded topic log ${path}: disk full during ${operation} (${free} bytes free); nothing of it was stored (${message})`, {
            code: "TOPIC_LOG_DISK_FULL",
            retriable: true,
            context,
            cause: error,
          });
        }
      }
      return new SluiceError(`embedded topic log ${path}: I/O error during ${operation} (${message})`, { code: "TOPIC_LOG_IO_ERROR", context, cause: error });
    case SQLITE_CORRUPT:
      return new SluiceError(`embedded topic log ${path} is corrupt (${message}); restore it from a backup or replay from the sources`, { code: "TOPIC_LOG_CORRUPT", context, cause: error });
    default:
      return new SluiceError(`embedded topic log ${path}: ${operation} failed: ${message}`, { code: "TOPIC_LOG_FAILED", context, cause: error });
  }
}
