/**
 * Finds the items a target rejects when it can only accept or reject a whole request (DuckDB
 * statements, ClickHouse inserts): try everything, and on a data error split in halves until the
 * rejected items stand alone. Cost: about 2·log2(n) extra attempts per rejected item.
 */

export interface Rejected<T> {
  readonly item: T;
  readonly error: unknown;
}

/**
 * Runs `attempt` on `items`; when it throws an error `isDataError` accepts, bisects. Errors that
 * are not data errors (connection, schema) propagate. Returns the items rejected on their own.
 */
export async function isolateRejected<T>(
  items: readonly T[],
  attempt: (subset: readonly T[]) => Promise<void>,
  isDataError: (error: unknown) => boolean,
): Promise<Rejected<T>[]> {
  if (items.length === 0) return [];
  try {
    await attempt(items);
    return [];
  } catch (error) {
    if (!isDataError(error)) throw error;
    if (items.length === 1) return [{ item: items[0] as T, error }];
  }
  const middle = Math.ceil(items.length / 2);
  const left = await isolateRejected(items.slice(0, middle), attempt, isDataError);
  const right = await isolateRejected(items.slice(middle), attempt, isDataError);
  return [...left, ...right];
}
