/**
 * Rows per snapshot chunk, so one chunk's rows take about `targetBytes` of memory (the source's
 * read-ahead, a share of the memory budget): a chunk is held whole while its rows go into the
 * buffer, and 10,000 rows of 16 KB text would be 160 MB. The first chunk is a small probe (rows
 * may be hundreds of KiB each); later ones follow the rows' measured size, growing at most
 * eightfold a chunk, never more than chunk_rows.
 */
export class ChunkSizer {
  readonly maxRows: number;
  readonly targetBytes: number;
  #rows = 0;
  #bytes = 0;
  #last = 0;

  constructor(maxRows: number, targetBytes: number) {
    this.maxRows = maxRows;
    this.targetBytes = targetBytes;
  }

  next(): number {
    const fit = this.#rows === 0 ? FIRST_CHUNK_ROWS : Math.floor(this.targetBytes / (this.#bytes / this.#rows));
    const rows = Math.max(1, Math.min(this.maxRows, fit, this.#last === 0 ? FIRST_CHUNK_ROWS : this.#last * GROWTH));
    this.#last = rows;
    return rows;
  }

  observe(rows: number, bytes: number): void {
    this.#rows += rows;
    this.#bytes += bytes;
  }
}

const FIRST_CHUNK_ROWS = 4;
const GROWTH = 8;
