/** Reads the events of a binlog file (a 4-byte magic number, then events back to back): for tests and benchmarks. */
import { readFile } from "node:fs/promises";

export const BINLOG_MAGIC = Buffer.from([0xfe, 0x62, 0x69, 0x6e]);

export interface FileEvent {
  /** Offset of the event's first byte in the file. */
  readonly offset: number;
  readonly bytes: Buffer;
}

export function* binlogFileEvents(file: Buffer): Generator<FileEvent> {
  if (!file.subarray(0, 4).equals(BINLOG_MAGIC)) throw new RangeError("not a binlog file (no 0xfe 'bin' magic number)");
  let offset = 4;
  while (offset + 19 <= file.length) {
    const size = file.readUInt32LE(offset + 9);
    if (size < 19 || offset + size > file.length) throw new RangeError(`event of ${size} bytes at offset ${offset} overruns the file (${file.length} bytes)`);
    yield { offset, bytes: file.subarray(offset, offset + size) };
    offset += size;
  }
}

export async function readBinlogFile(path: string): Promise<FileEvent[]> {
  return [...binlogFileEvents(await readFile(path))];
}
