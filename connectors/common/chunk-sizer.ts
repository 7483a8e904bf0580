/**
 * Rows per snapshot chunk, so one chunk's rows take about `targetBytes` of memory (the source's
 * read-ahead, a share of the memory budget): a chunk is held whole while its rows go into the
 * buffer, and 10,000 rows of 16 KB text would be 160 MB. The first chunk is a small probe; later
 * ones follow the rows' measured size, never more than chunk_rows.
 */
export class ChunkSizer {
  readonly maxRows: number;
  readonly targetBytes: number;
  #rows = 0;
  #bytes = 0;

  constructor(maxRows: number, targetBytes: number) {
    this.maxRows = maxRows;
    this.targetBytes = targetBytes;
  }

  next(): number {
    if (this.#rows === 0) return Math.min(this.maxRows, FIRST_CHUNK_ROWS);
    return Math.max(1, Math.min(this.maxRows, Math.floor(this.targetBytes / (this.#bytes / this.#rows))));
  }

  observe(rows: number, bytes: number): void {
    this.#rows += rows;
    this.#bytes += bytes;
  }
}

const FIRST_CHUNK_ROWS = 500;
