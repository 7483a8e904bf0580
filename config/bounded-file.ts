/**
 * Reads a small file Sluice is pointed at (the config, a secret, a PEM file) without trusting what the path names.
 * The daemon reads these on its main thread, at start and again at SIGHUP while capture runs there: a FIFO's open
 * waits for a writer and blocked capture, the HTTP API and the health probes with it; a device such as /dev/zero
 * never ends and ran the heap out of memory. Only a regular file of at most `maxBytes` is read.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";

/** A path that names something other than a regular file, or one too large: `code` as describeFsError reads it. */
export class FileRefused extends Error {
  readonly code: "ENOTREG" | "EFBIG";

  constructor(code: "ENOTREG" | "EFBIG", message: string) {
    super(message);
    this.name = "FileRefused";
    this.code = code;
  }
}

export const KiB = 1024;
export const MiB = 1024 * KiB;

/** Far above any real config: a larger file is a wrong path, never read whole. */
export const CONFIG_FILE_MAX_BYTES = 4 * MiB;

/** A certificate, key or CA bundle (a system's whole bundle is ~200 KB). */
export const PEM_FILE_MAX_BYTES = 4 * MiB;

/** A token, password or key is short; a larger file is a wrong path (a log, a dump), never read whole. */
export const SECRET_FILE_MAX_BYTES = 64 * KiB;

function sizeText(bytes: number): string {
  return bytes % MiB === 0 ? `${bytes / MiB} MiB` : `${Math.ceil(bytes / KiB)} KiB`;
}

export function readBoundedFile(path: string, maxBytes: number): Buffer {
  // O_NONBLOCK: opening a FIFO for reading does not wait for a writer; for a regular file it changes nothing.
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const stat = fstatSync(fd);
    if (stat.isDirectory()) throw Object.assign(new Error(`EISDIR: illegal operation on a directory, read '${path}'`), { code: "EISDIR" });
    if (!stat.isFile()) throw new FileRefused("ENOTREG", `not a regular file (${kindOf(stat)})`);
    if (stat.size > maxBytes) throw new FileRefused("EFBIG", `${stat.size} bytes, more than the ${sizeText(maxBytes)} such a file may hold`);
    // Read to the end, not to the size seen: the file may be growing; one byte past the limit tells it is too large.
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(64 * KiB, maxBytes + 1 - total));
      const read = readSync(fd, chunk, 0, chunk.length, null);
      if (read === 0) break;
      chunks.push(chunk.subarray(0, read));
      total += read;
      if (total > maxBytes) throw new FileRefused("EFBIG", `more than the ${sizeText(maxBytes)} such a file may hold`);
    }
    return Buffer.concat(chunks, total);
  } finally {
    closeSync(fd);
  }
}

function kindOf(stat: ReturnType<typeof fstatSync>): string {
  if (stat.isFIFO()) return "a FIFO";
  if (stat.isSocket()) return "a socket";
  if (stat.isCharacterDevice() || stat.isBlockDevice()) return "a device";
  return "not a file";
}

/** A secret given by file (`<key>_file`): its contents, trailing newline removed. */
export function readSecretFile(path: string): string {
  return readBoundedFile(path, SECRET_FILE_MAX_BYTES).toString("utf8").replace(/\r?\n$/, "");
}
