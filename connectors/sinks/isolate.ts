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

/**
 * For `on_error: halt`: applies `items` (in version order) up to the first one the target rejects
 * and no further, so a halted table never shows a change that came after its poison row. Each
 * successful attempt is applied for good; a failing one is narrowed to its first half.
 */
export async function applyUntilRejected<T>(
  items: readonly T[],
  attempt: (subset: readonly T[]) => Promise<void>,
  isDataError: (error: unknown) => boolean,
): Promise<Rejected<T> | null> {
  let start = 0;
  while (start < items.length) {
    let end = items.length;
    for (;;) {
      try {
        await attempt(items.slice(start, end));
        start = end;
        break;
      } catch (error) {
        if (!isDataError(error)) throw error;
        if (end - start === 1) return { item: items[start] as T, error };
        end = start + Math.ceil((end - start) / 2);
      }
    }
  }
  return null;
}
