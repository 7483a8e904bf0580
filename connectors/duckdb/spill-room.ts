/**
 * Whether DuckDB's "failed to offload data block" means a full disk. DuckDB says it when a block it must spill does not
 * fit its temp directory's max_temp_directory_size, by default 90% of the free space of the disk holding the directory:
 * so either the disk is (nearly) full, which room coming free cures, or the write's spill alone is larger than that
 * (memory_limit too small for one table's work), which waiting never cures.
 */
import { existsSync, statfsSync } from "node:fs";
import { dirname, resolve } from "node:path";

export interface DiskSpace {
  /** Bytes free to this process's user. */
  readonly free: number;
  /** The file system's size in bytes. */
  readonly size: number;
}

export type DiskSpaceOf = (path: string) => DiskSpace;

export function diskSpace(path: string): DiskSpace {
  const stats = statfsSync(path);
  return { free: stats.bavail * stats.bsize, size: stats.blocks * stats.bsize };
}

/** Below this much free room (or this share of the disk) a disk is taken for full. */
const FULL_BYTES = 64 * 2 ** 20;
const FULL_SHARE = 0.02;

/** DuckDB's temp directory for a database file (its default: the file's path with .tmp), or the folder that will hold it. */
export function spillDirectory(databasePath: string): string {
  if (databasePath === ":memory:") return process.cwd();
  const temp = `${resolve(databasePath)}.tmp`;
  return existsSync(temp) ? temp : dirname(resolve(databasePath));
}

export interface SpillRoom {
  readonly directory: string;
  readonly space: DiskSpace | null;
  /** The disk is (nearly) full, or its room could not be read (then taken for full: waiting is the safe side). */
  readonly full: boolean;
}

export function spillRoom(databasePath: string, spaceOf: DiskSpaceOf = diskSpace): SpillRoom {
  const directory = spillDirectory(databasePath);
  let space: DiskSpace;
  try {
    space = spaceOf(directory);
  } catch {
    return { directory, space: null, full: true };
  }
  return { directory, space, full: space.free < Math.max(FULL_BYTES, space.size * FULL_SHARE) };
}

export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}
