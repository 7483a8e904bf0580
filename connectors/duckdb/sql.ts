/** Quoting for the SQL the DuckDB sink writes (identifiers may hold any character; values are literals). */

export function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export function literal(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

/** Errors of a statement that a different row set could avoid (poison rows), as opposed to I/O or catalog errors. */
export function isDuckDbDataError(error: unknown): boolean {
  return error instanceof Error && /^(Conversion|Constraint|Invalid Input|Out of Range|Mismatch Type) Error/.test(error.message);
}

/**
 * DuckDB's fatal errors (a checkpoint that could not write the file, a rollback that ran out of
 * memory) invalidate the database instance: every later statement on any of its connections fails
 * with "database has been invalidated ... Original error: ..." until the file is opened again.
 */
export function isDuckDbFatal(error: unknown): boolean {
  // DuckDB's own words at the start, not anywhere: a query's error may quote a value or a statement that holds them.
  return error instanceof Error && /^(?:FATAL Error|[A-Za-z ]*Error: Failed: database has been invalidated)/.test(error.message);
}
