/**
 * Whether DuckDB's "failed to offload data block" means a full disk. DuckDB says it when the block it must spill does not
 * fit its temp directory's max_temp_directory_size ("failed to offload data block of size B (U/L used)": refused when
 * U + B > L), by default 90% of the free space of the disk holding the directory, taken when the database first spills
 * and kept until it is opened again. So either DuckDB had next to no room to spill into (the disk full), which room
 * coming free cures, or it had room and this write's spill needed more (memory_limit too small for the work), which the
 * out-of-memory way handles: halved (each half in a database opened again, which takes the limit afresh from the disk),
 * and one change that alone never fits halts its table. Which one is DuckDB's own verdict: the limit it refused with,
 * or the limit it would take from the disk now, whichever is larger, against FULL_BYTES; not a share of the disk's size,
 * which on a large disk called gigabytes free "full".
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

/** Below this much room to spill into a disk is taken for full: DuckDB could spill next to nothing there. */
const FULL_BYTES = 64 * 2 ** 20;
/** DuckDB's default max_temp_directory_size: this share of the disk's free space. */
const DEFAULT_TEMP_SHARE = 0.9;

/** DuckDB's temp directory for a database file (its default: the file's path with .tmp), or the folder that will hold it. */
export function spillDirectory(databasePath: string): string {
  if (databasePath === ":memory:") return process.cwd();
  const temp = `${resolve(databasePath)}.tmp`;
  return existsSync(temp) ? temp : dirname(resolve(databasePath));
}

export interface SpillRoom {
  readonly directory: string;
  readonly space: DiskSpace | null;
  /** The max_temp_directory_size DuckDB refused the spill with (from its message), or null when it did not say. */
  readonly limit: number | null;
  /** DuckDB had (and would have now) less than FULL_BYTES to spill into, or neither could be read (then taken for full: waiting is the safe side). */
  readonly full: boolean;
}

/** DuckDB's spill refusal: the block's size, the temp directory's use and its limit, as DuckDB writes sizes (256.0 KiB, 12 bytes). */
const OFFLOAD_REFUSAL = /failed to offload data block of size (\d+(?:\.\d+)? \w+) \((\d+(?:\.\d+)? \w+)\/(\d+(?:\.\d+)? \w+) used\)/;
const UNITS: Readonly<Record<string, number>> = { byte: 1, bytes: 1, KiB: 2 ** 10, MiB: 2 ** 20, GiB: 2 ** 30, TiB: 2 ** 40, PiB: 2 ** 50, kB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, PB: 1e15 };

function parseSize(text: string): number | null {
  const [number, unit] = text.split(" ");
  const multiplier = UNITS[unit ?? ""];
  return multiplier === undefined ? null : Number(number) * multiplier;
}

/** The limit (max_temp_directory_size) in DuckDB's "failed to offload data block" message, or null. */
export function offloadLimit(message: string): number | null {
  const match = OFFLOAD_REFUSAL.exec(message);
  return match === null ? null : parseSize(match[3]!);
}

export function spillRoom(databasePath: string, message: string, spaceOf: DiskSpaceOf = diskSpace): SpillRoom {
  const directory = spillDirectory(databasePath);
  const limit = offloadLimit(message);
  let space: DiskSpace | null;
  try {
    space = spaceOf(directory);
  } catch {
    space = null;
  }
  if (space === null && limit === null) return { directory, space, limit, full: true };
  const room = Math.max(limit ?? 0, space === null ? 0 : space.free * DEFAULT_TEMP_SHARE);
  return { directory, space, limit, full: room < FULL_BYTES };
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
